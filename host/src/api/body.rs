//! Request bodies: JSON, size-limited, parsed once, strict about field names,
//! clear about what is wrong.
//!
//! The body is parsed once, by [`parse_once`], into the value both the audit
//! log records and the handler acts on ([`JsonBody`] reads it from there), so
//! the two cannot read one body differently. An empty body is `{}`; bytes after
//! the JSON value are a 400. Its size was limited before it got here (413, in
//! the `read_body` middleware). Malformed JSON, a wrong
//! type or an unknown field is 400 naming the field; serde's message would quote
//! the offending value, which may be a secret (an unseal key in the wrong field),
//! so for wrong values only the path is reported.

use super::response::ApiError;
use axum::body::{Body, to_bytes};
use axum::extract::{FromRequest, Request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::sync::Arc;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// The request's body as parsed once.
#[derive(Debug, Clone)]
pub struct RequestData(pub Arc<Value>);

/// Parses the body once, leaving [`RequestData`] on the request.
pub async fn parse_once(request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    // Already in memory and within its path's limit (`read_body`).
    let bytes = match to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(err) => {
            return ApiError::bad_request(format!("could not read the request body: {err}"))
                .into_response();
        }
    };
    let value = match parse_value(&bytes) {
        Ok(value) => value,
        Err(err) => return err.into_response(),
    };
    parts.extensions.insert(RequestData(Arc::new(value)));
    next.run(Request::from_parts(parts, Body::empty())).await
}

/// The JSON value of `bytes`: `{}` if blank, 400 if malformed or followed by
/// anything but whitespace.
fn parse_value(bytes: &[u8]) -> Result<Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(bytes).map_err(|err| {
        let message = err.to_string();
        let what = if message.starts_with("trailing characters") {
            "the request body has bytes after its JSON value"
        } else {
            "the request body is not valid JSON"
        };
        ApiError::bad_request(format!(
            "{what} (line {}, column {})",
            err.line(),
            err.column()
        ))
    })
}

/// A JSON body parsed into `T`, from the value [`parse_once`] made.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let data = request
            .extensions()
            .get::<RequestData>()
            .cloned()
            .ok_or_else(|| ApiError::internal("the request body was not parsed"))?;
        into(&data.0).map(JsonBody)
    }
}

/// `value` as a `T`, refused as a body that does not fit would be.
pub(super) fn into<T: DeserializeOwned>(value: &Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        let explained =
            if message.starts_with("invalid type") || message.starts_with("invalid value") {
                format!("field `{path}` has the wrong type or value")
            } else {
                // Missing and unknown fields: serde names the field, not a value.
                // Other messages are this crate's own (durations), which never quote
                // the value either; they get the field's path in front.
                let names_field =
                    message.starts_with("missing field") || message.starts_with("unknown field");
                if names_field || path.is_empty() || path == "." {
                    format!("invalid request body: {message}")
                } else {
                    format!("field `{path}`: {message}")
                }
            };
        ApiError::bad_request(explained)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_or_a_clear_refusal() {
        assert_eq!(parse_value(b" \n").unwrap(), serde_json::json!({}));
        assert_eq!(
            parse_value(b"{\"a\":1} \n").unwrap(),
            serde_json::json!({"a": 1})
        );
        let trailing = parse_value(b"{\"a\":1} {\"a\":2}").unwrap_err();
        assert!(
            trailing.messages()[0].contains("bytes after its JSON value"),
            "{trailing:?}"
        );
        assert!(parse_value(b"{\"a\":").is_err());
    }
}
