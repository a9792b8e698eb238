//! An in-house user service, as a team would write it for the `webhook` plugin:
//! `/sync/create`, `/sync/revoke` and `/sync/rotate` in the Akeyless
//! custom-producer shape, refusing calls without a valid signature, and a
//! `/login` that checks basic-auth credentials against its users.
//!
//! It runs on its own thread and runtime, so blocking tests can use it; stopping
//! and starting it again on the same port keeps its users (a service outage).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// What the service remembers about a user.
#[derive(Debug, Clone)]
pub struct User {
    /// Login name.
    pub username: String,
    /// Password.
    pub password: String,
    /// The lease id create was called for.
    pub lease_id: String,
    /// The `input` create got.
    pub input: Value,
    /// The `client_info` create got.
    pub client_info: Value,
}

/// Users by id, plus the payload the service accepts; shared across restarts.
#[derive(Clone, Default)]
pub struct Users {
    inner: Arc<Mutex<Shared>>,
}

#[derive(Default)]
struct Shared {
    users: HashMap<String, User>,
    payloads: Vec<String>,
    next: u64,
}

impl Users {
    /// No users; `payload` is the admin credential the service accepts.
    pub fn new(payload: &str) -> Self {
        let users = Self::default();
        users
            .inner
            .lock()
            .unwrap()
            .payloads
            .push(payload.to_owned());
        users
    }

    /// A copy of every user.
    pub fn all(&self) -> Vec<User> {
        self.inner.lock().unwrap().users.values().cloned().collect()
    }

    /// The payloads the service accepts (the latest last).
    pub fn payloads(&self) -> Vec<String> {
        self.inner.lock().unwrap().payloads.clone()
    }
}

#[derive(Clone)]
struct Service {
    users: Users,
    signing_key: String,
    bearer: Option<String>,
}

impl Service {
    /// The plugin's signature and bearer token, checked the way the README of
    /// the webhook plugin tells a service to.
    fn authentic(&self, headers: &HeaderMap, body: &[u8]) -> bool {
        let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(timestamp), Some(signature)) = (
            header("x-leasehold-timestamp"),
            header("x-leasehold-signature"),
        ) else {
            return false;
        };
        let Some(hex_mac) = signature.strip_prefix("v1=") else {
            return false;
        };
        let Ok(given) = hex::decode(hex_mac) else {
            return false;
        };
        let fresh = timestamp.parse::<u64>().is_ok_and(|t| {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs();
            now.abs_diff(t) <= 300
        });
        let mut mac = Hmac::<Sha256>::new_from_slice(self.signing_key.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body);
        let bearer_ok = match &self.bearer {
            Some(token) => header("authorization") == Some(&format!("Bearer {token}")),
            None => true,
        };
        fresh && bearer_ok && mac.verify_slice(&given).is_ok()
    }

    fn checked(
        &self,
        headers: &HeaderMap,
        body: &[u8],
    ) -> Result<Value, (StatusCode, &'static str)> {
        if !self.authentic(headers, body) {
            return Err((StatusCode::UNAUTHORIZED, "bad signature"));
        }
        let value: Value =
            serde_json::from_slice(body).map_err(|_| (StatusCode::BAD_REQUEST, "not JSON"))?;
        let payload = value["payload"].as_str().unwrap_or_default();
        if !self.users.payloads().iter().any(|p| p == payload) {
            return Err((StatusCode::FORBIDDEN, "wrong payload"));
        }
        Ok(value)
    }
}

async fn create(State(service): State<Service>, headers: HeaderMap, body: Bytes) -> Response {
    let request = match service.checked(&headers, &body) {
        Ok(value) => value,
        Err(refused) => return refused.into_response(),
    };
    let mut shared = service.users.inner.lock().unwrap();
    shared.next += 1;
    let id = format!("id-{}", shared.next);
    let user = User {
        username: format!("user{}", shared.next),
        password: format!("pw-{}-{}", shared.next, std::process::id()),
        lease_id: request["lease_id"].as_str().unwrap_or_default().to_owned(),
        input: request["input"].clone(),
        client_info: request["client_info"].clone(),
    };
    let response =
        json!({"id": id, "response": {"username": user.username, "password": user.password}});
    shared.users.insert(id, user);
    axum::Json(response).into_response()
}

async fn revoke(State(service): State<Service>, headers: HeaderMap, body: Bytes) -> Response {
    let request = match service.checked(&headers, &body) {
        Ok(value) => value,
        Err(refused) => return refused.into_response(),
    };
    let ids: Vec<String> = request["ids"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    let mut shared = service.users.inner.lock().unwrap();
    // An id is the service's own id, or the lease id create was called for.
    shared
        .users
        .retain(|id, user| !ids.contains(id) && !ids.contains(&user.lease_id));
    axum::Json(json!({"revoked": ids, "message": ""})).into_response()
}

async fn rotate(State(service): State<Service>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(refused) = service.checked(&headers, &body) {
        return refused.into_response();
    }
    let mut shared = service.users.inner.lock().unwrap();
    let next = format!("rotated-payload-{}", shared.payloads.len());
    shared.payloads.push(next.clone());
    axum::Json(json!({"payload": next})).into_response()
}

async fn login(State(service): State<Service>, headers: HeaderMap) -> StatusCode {
    let credentials = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(|v| base64::engine::general_purpose::STANDARD.decode(v).ok())
        .and_then(|v| String::from_utf8(v).ok());
    let Some((user, password)) = credentials.as_deref().and_then(|c| c.split_once(':')) else {
        return StatusCode::UNAUTHORIZED;
    };
    let shared = service.users.inner.lock().unwrap();
    if shared
        .users
        .values()
        .any(|u| u.username == user && u.password == password)
    {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

/// A running service; stopped on drop.
pub struct InHouse {
    /// Its address.
    pub port: u16,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl InHouse {
    /// Starts the service with `users` on `port` (0: a free one), checking
    /// signatures with `signing_key` and, when given, a bearer token.
    pub fn start(users: &Users, signing_key: &str, bearer: Option<&str>, port: u16) -> Self {
        let service = Service {
            users: users.clone(),
            signing_key: signing_key.to_owned(),
            bearer: bearer.map(str::to_owned),
        };
        let app = Router::new()
            .route("/sync/create", post(create))
            .route("/sync/revoke", post(revoke))
            .route("/sync/rotate", post(rotate))
            .route("/login", get(login))
            .with_state(service);
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", port)).expect("binding the service");
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                // Stopping drops the server and, with the runtime, every open
                // connection: an outage, not a graceful drain.
                tokio::select! {
                    served = axum::serve(listener, app) => served.unwrap(),
                    _ = rx => {}
                }
            });
        });
        Self {
            port,
            shutdown: Some(tx),
            thread: Some(thread),
        }
    }

    /// Its base URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Stops it (an outage); start again with the same port to recover.
    pub fn stop(mut self) -> u16 {
        self.halt();
        self.port
    }

    fn halt(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for InHouse {
    fn drop(&mut self) {
        self.halt();
    }
}
