//! An in-house user service, as a team would write it for the `webhook` plugin:
//! `/sync/create`, `/sync/revoke` and `/sync/rotate` in the Akeyless
//! custom-producer shape, refusing calls without a valid `v2` signature (see
//! the plugin's README), answering a create sent again for one lease with the
//! user the first one made, and a `/login` that checks basic-auth credentials
//! against its users.
//!
//! It runs on its own thread and runtime, so blocking tests can use it; stopping
//! and starting it again on the same port keeps its users (a service outage).

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// How far a call's timestamp may be from the service's clock, in seconds, and
/// so how long a create's idempotency key is remembered: a replay the clock
/// still lets through is answered from memory.
const WINDOW: u64 = 300;

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

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
    /// The id each create's idempotency key (its lease id) made, and when.
    keys: HashMap<String, (String, u64)>,
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

/// The text a `v2` signature covers, from the request as the service got it:
/// timestamp, method, Host (lowercased), path with query and the hex SHA-256 of
/// the body, joined by `\n`.
fn canonical(timestamp: &str, parts: &Parts, body: &[u8]) -> Option<String> {
    let host = parts
        .headers
        .get("host")
        .and_then(|v| v.to_str().ok())
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))?;
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    Some(format!(
        "{timestamp}\n{}\n{}\n{path}\n{}",
        parts.method,
        host.to_ascii_lowercase(),
        hex::encode(Sha256::digest(body))
    ))
}

impl Service {
    /// The plugin's signature and bearer token, checked the way the README of
    /// the webhook plugin tells a service to.
    fn authentic(&self, parts: &Parts, body: &[u8]) -> bool {
        let header = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
        let (Some(timestamp), Some(signature)) = (
            header("x-leasehold-timestamp"),
            header("x-leasehold-signature"),
        ) else {
            return false;
        };
        let Some(given) = signature
            .strip_prefix("v2=")
            .and_then(|hex_mac| hex::decode(hex_mac).ok())
        else {
            return false;
        };
        let fresh = timestamp
            .parse::<u64>()
            .is_ok_and(|t| now().abs_diff(t) <= WINDOW);
        let Some(signed) = canonical(timestamp, parts, body) else {
            return false;
        };
        let mut mac = Hmac::<Sha256>::new_from_slice(self.signing_key.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        let bearer_ok = match &self.bearer {
            Some(token) => header("authorization") == Some(&format!("Bearer {token}")),
            None => true,
        };
        fresh && bearer_ok && mac.verify_slice(&given).is_ok()
    }

    fn checked(&self, parts: &Parts, body: &[u8]) -> Result<Value, (StatusCode, &'static str)> {
        if !self.authentic(parts, body) {
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

/// The answer to a create that made (or had made) user `id`.
fn created(id: &str, user: &User) -> Response {
    axum::Json(
        json!({"id": id, "response": {"username": user.username, "password": user.password}}),
    )
    .into_response()
}

async fn create(State(service): State<Service>, parts: Parts, body: Bytes) -> Response {
    let request = match service.checked(&parts, &body) {
        Ok(value) => value,
        Err(refused) => return refused.into_response(),
    };
    // The key is trusted as the signed body's lease id, not as a header alone.
    let lease_id = request["lease_id"].as_str().unwrap_or_default().to_owned();
    let key = parts
        .headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok());
    if lease_id.is_empty() || key != Some(lease_id.as_str()) {
        return (
            StatusCode::BAD_REQUEST,
            "Idempotency-Key must be the lease_id",
        )
            .into_response();
    }
    let now = now();
    let mut shared = service.users.inner.lock().unwrap();
    shared
        .keys
        .retain(|_, (_, at)| now.saturating_sub(*at) <= WINDOW);
    if let Some((id, _)) = shared.keys.get(&lease_id) {
        return match shared.users.get(id) {
            Some(user) => created(id, user),
            // Revoked since: a late copy of the create must not bring it back.
            None => (StatusCode::CONFLICT, "that lease's user was revoked").into_response(),
        };
    }
    shared.next += 1;
    let id = format!("id-{}", shared.next);
    let user = User {
        username: format!("user{}", shared.next),
        password: format!("pw-{}-{}", shared.next, std::process::id()),
        lease_id: lease_id.clone(),
        input: request["input"].clone(),
        client_info: request["client_info"].clone(),
    };
    let response = created(&id, &user);
    shared.keys.insert(lease_id, (id.clone(), now));
    shared.users.insert(id, user);
    response
}

async fn revoke(State(service): State<Service>, parts: Parts, body: Bytes) -> Response {
    let request = match service.checked(&parts, &body) {
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

async fn rotate(State(service): State<Service>, parts: Parts, body: Bytes) -> Response {
    if let Err(refused) = service.checked(&parts, &body) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    const KEY: &str = "a-signing-key-of-16+";

    /// A call to the service, signed as the plugin's README says unless a test
    /// changes what was signed.
    struct Call {
        method: &'static str,
        path: &'static str,
        host: String,
        timestamp: u64,
        body: Vec<u8>,
        key: Option<String>,
    }

    impl Call {
        fn create(port: u16, lease_id: &str) -> Self {
            Self {
                method: "POST",
                path: "/sync/create",
                host: format!("127.0.0.1:{port}"),
                timestamp: now(),
                body: json!({"payload": "p", "input": {}, "client_info": {}, "lease_id": lease_id})
                    .to_string()
                    .into_bytes(),
                key: Some(lease_id.to_owned()),
            }
        }

        fn signature(&self) -> String {
            let text = format!(
                "{}\n{}\n{}\n{}\n{}",
                self.timestamp,
                self.method,
                self.host.to_ascii_lowercase(),
                self.path,
                hex::encode(Sha256::digest(&self.body))
            );
            let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
            mac.update(text.as_bytes());
            format!("v2={}", hex::encode(mac.finalize().into_bytes()))
        }

        /// Sends `sent` (this call, perhaps changed after signing) with this
        /// call's signature: the status and the body of the answer.
        fn send_as(&self, port: u16, sent: &Call, signature: &str) -> (u16, Value) {
            let mut head = format!(
                "{} {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\
                 X-Leasehold-Timestamp: {}\r\nX-Leasehold-Signature: {signature}\r\n",
                sent.method,
                sent.path,
                sent.host,
                sent.body.len(),
                sent.timestamp
            );
            if let Some(key) = &sent.key {
                head.push_str(&format!("Idempotency-Key: {key}\r\n"));
            }
            head.push_str("\r\n");
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
            stream.write_all(head.as_bytes()).unwrap();
            stream.write_all(&sent.body).unwrap();
            let mut answer = String::new();
            stream.read_to_string(&mut answer).unwrap();
            let status = answer[9..12].parse().unwrap();
            let body = answer.split_once("\r\n\r\n").map_or("", |(_, body)| body);
            (status, serde_json::from_str(body).unwrap_or(Value::Null))
        }

        fn send(&self, port: u16) -> (u16, Value) {
            self.send_as(port, self, &self.signature())
        }
    }

    #[test]
    fn a_signature_covers_every_part_and_a_replay_makes_no_second_user() {
        let users = Users::new("p");
        let service = InHouse::start(&users, KEY, None, 0);
        let port = service.port;

        let call = Call::create(port, "test/creds/dev/one");
        let (status, first) = call.send(port);
        assert_eq!(status, 200, "{first}");
        // Sent again (a retry, or a replay inside the window): the same user.
        let again = Call {
            timestamp: call.timestamp + 1,
            ..Call::create(port, "test/creds/dev/one")
        };
        assert_eq!(again.send(port), (200, first.clone()));
        assert_eq!(users.all().len(), 1);

        // Sent to another path, or with another body, than was signed: refused.
        for sent in [
            Call {
                path: "/sync/revoke",
                ..Call::create(port, "test/creds/dev/one")
            },
            Call::create(port, "test/creds/dev/two"),
        ] {
            assert_eq!(call.send_as(port, &sent, &call.signature()).0, 401);
        }
        // Outside the window, or in the old scheme: refused however signed.
        let stale = Call {
            timestamp: now() - WINDOW - 5,
            ..Call::create(port, "test/creds/dev/three")
        };
        assert_eq!(stale.send(port).0, 401);
        let v1 = call.signature().replacen("v2=", "v1=", 1);
        assert_eq!(call.send_as(port, &call, &v1).0, 401);
        // The idempotency key must be the signed lease id.
        for key in [None, Some("test/creds/dev/other".to_owned())] {
            let unkeyed = Call {
                key,
                ..Call::create(port, "test/creds/dev/four")
            };
            assert_eq!(unkeyed.send(port).0, 400);
        }
        assert_eq!(users.all().len(), 1);

        // Revoked by lease id, a late copy of the create does not bring it back.
        let revoke = Call {
            path: "/sync/revoke",
            body: json!({"payload": "p", "ids": ["test/creds/dev/one"]})
                .to_string()
                .into_bytes(),
            key: None,
            ..Call::create(port, "")
        };
        assert_eq!(revoke.send(port).0, 200);
        assert!(users.all().is_empty());
        assert_eq!(call.send(port).0, 409);
        assert!(users.all().is_empty());
    }

    #[test]
    fn every_signed_part_is_checked() {
        let service = Service {
            users: Users::new("p"),
            signing_key: KEY.to_owned(),
            bearer: None,
        };
        let parts = |call: &Call| {
            let mut request = axum::http::Request::builder()
                .method(call.method)
                .uri(call.path)
                .header("host", &call.host)
                .header("x-leasehold-timestamp", call.timestamp.to_string());
            if let Some(key) = &call.key {
                request = request.header("idempotency-key", key);
            }
            request.body(()).unwrap().into_parts().0
        };
        let one = || Call {
            host: "users.internal:8443".to_owned(),
            ..Call::create(8443, "test/creds/dev/one")
        };
        let call = one();
        // The text the plugin's own test expects for the same call.
        let example = axum::http::Request::post("/leasehold/sync/create")
            .header("host", "Users.Internal:8443")
            .body(())
            .unwrap()
            .into_parts()
            .0;
        assert_eq!(
            canonical("1795356935", &example, b"{}").unwrap(),
            "1795356935\nPOST\nusers.internal:8443\n/leasehold/sync/create\n\
             44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        let signed = |sent: &Call| {
            let mut parts = parts(sent);
            parts
                .headers
                .insert("x-leasehold-signature", call.signature().parse().unwrap());
            service.authentic(&parts, &sent.body)
        };
        assert!(signed(&call));
        // The host is compared lowercased; a proxy may change its case.
        assert!(signed(&Call {
            host: "Users.INTERNAL:8443".to_owned(),
            ..one()
        }));
        for sent in [
            Call {
                timestamp: call.timestamp + 1,
                ..one()
            },
            Call {
                method: "PUT",
                ..one()
            },
            Call {
                host: "users.internal:8444".to_owned(),
                ..one()
            },
            Call {
                path: "/sync/create?again=1",
                ..one()
            },
            Call {
                host: "users.internal:8443".to_owned(),
                ..Call::create(8443, "test/creds/dev/two")
            },
        ] {
            assert!(
                !signed(&sent),
                "{} {} {}",
                sent.method,
                sent.host,
                sent.path
            );
        }
    }
}
