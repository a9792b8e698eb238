//! Query strings, read as Vault reads them: booleans as Go's `ParseBool` takes
//! them (`1`, `t`, `True`, `false`, …, as hvac sends `standbyok=True`), and a
//! query that does not fit answered like any bad request, `{"errors": […]}`.

use super::response::ApiError;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer};

/// The query string parsed into `T`.
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str(query)
            .map(Query)
            .map_err(|err| ApiError::bad_request(format!("invalid query string: {err}")))
    }
}

pub use crate::secrets::schema::go_bool;

/// `#[serde(deserialize_with = "go_bool_field")]` for an `Option<bool>`.
pub fn go_bool_field<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<bool>, D::Error> {
    let text = Option::<String>::deserialize(deserializer)?;
    match text.as_deref() {
        None | Some("") => Ok(None),
        Some(text) => go_bool(text).map(Some).ok_or_else(|| {
            serde::de::Error::custom("a boolean is one of true, false, 1, 0, t, f (any case)")
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::go_bool;

    #[test]
    fn booleans_as_go_reads_them() {
        for yes in ["1", "t", "T", "true", "True", "TRUE"] {
            assert_eq!(go_bool(yes), Some(true), "{yes}");
        }
        for no in ["0", "f", "F", "false", "False", "FALSE"] {
            assert_eq!(go_bool(no), Some(false), "{no}");
        }
        for neither in ["yes", "tRuE", "", "2"] {
            assert_eq!(go_bool(neither), None, "{neither}");
        }
    }
}
