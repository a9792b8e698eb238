//! Vault's response shapes: the envelope for logical responses, `{"errors": [...]}`
//! for failures, 204 for writes with nothing to say.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

/// A failed request: a status and messages for the operator.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    messages: Vec<String>,
    /// Sent as `Retry-After` (whole seconds, at least 1).
    retry_after: Option<std::time::Duration>,
}

impl ApiError {
    /// Any status with one message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            messages: vec![message.into()],
            retry_after: None,
        }
    }

    /// The status it answers with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// 400: the request is wrong.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 403, with Vault's wording.
    pub fn permission_denied() -> Self {
        Self::new(StatusCode::FORBIDDEN, "permission denied")
    }

    /// 404 for a path no handler serves.
    pub fn no_route(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            format!(
                "no handler for route \"{}\"",
                path.trim_start_matches("/v1/")
            ),
        )
    }

    /// 404 for a read that found nothing: Vault's empty error list.
    pub fn not_found() -> Self {
        Self {
            status: StatusCode::NOT_FOUND,
            messages: Vec::new(),
            retry_after: None,
        }
    }

    /// 503 while sealed.
    pub fn sealed() -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "leasehold is sealed")
    }

    /// 500, logged; the client learns only that it failed.
    pub fn internal(err: impl std::fmt::Display) -> Self {
        tracing::error!(error = %err, "request failed");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {err}"),
        )
    }
}

impl ApiError {
    /// Its messages, for the operator.
    pub fn messages(&self) -> &[String] {
        &self.messages
    }

    /// Tells the client when to try again.
    pub fn retry_after(mut self, after: std::time::Duration) -> Self {
        self.retry_after = Some(after);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(json!({ "errors": self.messages }))).into_response();
        if let Some(after) = self.retry_after {
            let seconds = after.as_secs_f64().ceil().max(1.0) as u64;
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}

/// The envelope's own keys.
const ENVELOPE_KEYS: &[&str] = &[
    "request_id",
    "lease_id",
    "renewable",
    "lease_duration",
    "data",
    "wrap_info",
    "warnings",
    "auth",
];

/// The logical response envelope, with every key present.
#[derive(Debug, Serialize)]
pub struct Envelope {
    request_id: String,
    lease_id: String,
    renewable: bool,
    lease_duration: u64,
    data: Option<Value>,
    wrap_info: Option<Value>,
    warnings: Option<Vec<String>>,
    auth: Option<Value>,
    /// `sys/` responses repeat `data`'s keys at the top level, as Vault does for
    /// older clients.
    #[serde(flatten)]
    top_level: serde_json::Map<String, Value>,
}

impl Envelope {
    /// An envelope around `data`.
    pub fn data(data: Value) -> Self {
        Self {
            request_id: crate::ids::uuid(),
            lease_id: String::new(),
            renewable: false,
            lease_duration: 0,
            data: Some(data),
            wrap_info: None,
            warnings: None,
            auth: None,
            top_level: serde_json::Map::new(),
        }
    }

    /// Vault's answer to a `LIST`: the keys, or 404 when there are none.
    pub fn keys(keys: Vec<String>) -> Result<Self, ApiError> {
        if keys.is_empty() {
            return Err(ApiError::not_found());
        }
        Ok(Self::data(json!({ "keys": keys })))
    }

    /// An envelope with an `auth` block and no data (token creation, renewal).
    pub fn auth(auth: Value) -> Self {
        let mut envelope = Self::data(Value::Null);
        envelope.data = None;
        envelope.auth = Some(auth);
        envelope
    }

    /// The envelope of a leased secret (or a renewal): its lease, and `data`.
    pub fn lease(
        lease_id: &str,
        renewable: bool,
        lease_duration: u64,
        data: Option<Value>,
    ) -> Self {
        let mut envelope = Self::data(Value::Null);
        envelope.lease_id = lease_id.to_owned();
        envelope.renewable = renewable;
        envelope.lease_duration = lease_duration;
        envelope.data = data;
        envelope
    }

    /// A wrapped response: `wrap_info` and nothing else (Vault's shape).
    pub fn wrapped(wrap_info: Value) -> Self {
        let mut envelope = Self::data(Value::Null);
        envelope.data = None;
        envelope.wrap_info = Some(wrap_info);
        envelope
    }

    /// The same envelope under request id `id`, for an answer that names its
    /// own request (a reload's `reload_id`).
    pub fn with_request_id(mut self, id: String) -> Self {
        self.request_id = id;
        self
    }

    /// Adds a warning.
    pub fn warn(mut self, warning: impl Into<String>) -> Self {
        self.warnings
            .get_or_insert_with(Vec::new)
            .push(warning.into());
        self
    }

    /// An envelope for a `sys/` path: `data` is also copied to the top level.
    pub fn sys(data: Value) -> Self {
        let mut envelope = Self::data(data.clone());
        if let Value::Object(mut map) = data {
            // A key of the envelope's own stays the envelope's: the same key
            // twice in one object is invalid JSON to a typed client (the
            // catalog's `auth` list, a lease's `renewable`).
            map.retain(|key, _| !ENVELOPE_KEYS.contains(&key.as_str()));
            envelope.top_level = map;
        }
        envelope
    }
}

impl IntoResponse for Envelope {
    fn into_response(self) -> Response {
        (StatusCode::OK, Json(self)).into_response()
    }
}
