//! Request bodies: JSON, size-limited, strict about field names, clear about
//! what is wrong.
//!
//! An empty body is `{}`. Its size was limited before it got here (413, in
//! the `read_body` middleware). Malformed JSON, a wrong
//! type or an unknown field is 400 naming the field; serde's message would quote
//! the offending value, which may be a secret (an unseal key in the wrong field),
//! so for wrong values only the path is reported.

use super::response::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

/// Largest request body accepted.
pub const MAX_BODY_BYTES: usize = 1 << 20;

/// A JSON body parsed into `T`.
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                ApiError::bad_request(format!("could not read the request body: {rejection}"))
            })?;
        let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            &bytes
        };
        parse(text).map(JsonBody)
    }
}

fn parse<T: DeserializeOwned>(text: &[u8]) -> Result<T, ApiError> {
    let deserializer = &mut serde_json::Deserializer::from_slice(text);
    serde_path_to_error::deserialize(deserializer).map_err(|err| {
        let path = err.path().to_string();
        let inner = err.into_inner();
        let message = inner.to_string();
        let explained = if inner.is_syntax() || inner.is_eof() {
            format!(
                "the request body is not valid JSON (line {}, column {})",
                inner.line(),
                inner.column()
            )
        } else if message.starts_with("invalid type") || message.starts_with("invalid value") {
            format!("field `{path}` has the wrong type or value")
        } else {
            // Missing and unknown fields: serde names the field, not a value.
            // Other messages are this crate's own (durations), which never quote
            // the value either; they get the field's path in front.
            let message = message.split(" at line ").next().unwrap_or(&message);
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
