//! The `webhook` plugin: credentials in an in-house system that can create and
//! delete a user over HTTP, speaking the Akeyless custom-producer protocol so
//! existing webhooks work unchanged.
//!
//! - create: `POST {url}/sync/create` with `{"payload", "input", "client_info":
//!   {"access_id", "sub_claims"}, "lease_id"}`; the answer `{"id", "response"}`
//!   gives the revocation handle (`id`) and the credential (`response`'s fields);
//! - revoke: `POST {url}/sync/revoke` with `{"payload", "ids": [id]}`; the id must
//!   come back in `revoked`. Without a handle the lease id is sent, which create
//!   also passed along, so a webhook can clean up what it made for that lease;
//! - rotate-root: `POST {url}/sync/rotate` with `{"payload"}`, answered with the
//!   new `{"payload"}`.
//!
//! Every call is signed: `X-Leasehold-Timestamp` (Unix seconds) and
//! `X-Leasehold-Signature: v1=<hex HMAC-SHA256(signing_key, timestamp + "." + body)>`,
//! plus `Authorization: Bearer` when the config has a `bearer_token`.

use hmac::{Hmac, Mac};
use leasehold_sdk::http;
use leasehold_sdk::prelude::*;
use serde_json::{Map, Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header carrying the signing time.
pub const TIMESTAMP_HEADER: &str = "X-Leasehold-Timestamp";
/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Leasehold-Signature";
/// Seconds a call may take when the config does not say.
const DEFAULT_TIMEOUT: u32 = 8;

/// Where the webhook is and how to talk to it.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Base URL of the webhook (`https://users.internal:8443/leasehold`); the
    /// calls go to `{url}/sync/create`, `/sync/revoke` and `/sync/rotate`. Grant
    /// its origin in the connection's `allowed_origins`.
    url: String,
    /// Opaque data sent with every call (typically the webhook's admin
    /// credential), as Akeyless sends its producer payload.
    #[serde(default)]
    payload: Secret,
    /// Key of the HMAC-SHA256 signature on every call (at least 16 characters).
    signing_key: Secret,
    /// Sent as `Authorization: Bearer` when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bearer_token: Option<Secret>,
    /// Seconds a call may take (default 8; keep it under the broker's plugin
    /// call timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 300))]
    timeout_seconds: Option<u32>,
}

/// What the webhook gets for a user of this role.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Role {
    /// Sent as `input` on create (any JSON; `{}` when not set).
    #[serde(default)]
    input: Option<Value>,
    /// Sent as `client_info.sub_claims`.
    #[serde(default)]
    sub_claims: BTreeMap<String, Vec<String>>,
}

impl Config {
    fn check(&self) -> Result<()> {
        let scheme_ok = self.url.starts_with("http://") || self.url.starts_with("https://");
        if !scheme_ok || self.url.contains(char::is_whitespace) {
            return Err(Error::invalid_config(
                "url must be an http:// or https:// URL",
            ));
        }
        if self.signing_key.expose().len() < 16 {
            return Err(Error::invalid_config(
                "signing_key must be at least 16 characters",
            ));
        }
        Ok(())
    }

    /// A signed `POST {url}/sync/{call}` with `body`, answered 2xx.
    fn call(&self, call: &str, body: &Value) -> Result<http::Response> {
        self.send(call, body)?.success()
    }

    /// A signed `POST {url}/sync/{call}` with `body`, whatever its status.
    fn send(&self, call: &str, body: &Value) -> Result<http::Response> {
        self.check()?;
        let body = serde_json::to_vec(body).map_err(|e| Error::internal(e.to_string()))?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let mut request = http::post(format!("{}/sync/{call}", self.url.trim_end_matches('/')))
            .header("content-type", "application/json")
            .header(TIMESTAMP_HEADER, &timestamp)
            .header(
                SIGNATURE_HEADER,
                sign(self.signing_key.expose(), &timestamp, &body),
            )
            .timeout(Duration::from_secs(
                self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT).into(),
            ))
            .body(body);
        if let Some(token) = &self.bearer_token {
            request = request.bearer(token.expose());
        }
        request.send()
    }
}

/// `v1=` and the hex HMAC-SHA256 of `timestamp.body`.
fn sign(key: &str, timestamp: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("v1={}", hex::encode(mac.finalize().into_bytes()))
}

#[derive(Deserialize)]
struct Created {
    id: String,
    #[serde(default)]
    response: Map<String, Value>,
}

#[derive(Deserialize)]
struct Revoked {
    #[serde(default)]
    revoked: Vec<String>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize)]
struct Rotated {
    payload: String,
}

struct Webhook;

impl Provider for Webhook {
    const NAME: &'static str = "webhook";
    const DESCRIPTION: &'static str =
        "Users in an in-house system over HTTP (Akeyless custom-producer protocol, signed calls)";
    const CAN_ROTATE_ROOT: bool = true;

    type Config = Config;
    type Role = Role;

    fn validate(config: &Config, _: Option<&Role>) -> Result<()> {
        config.check()
    }

    fn create(config: &Config, role: &Role, lease: &Lease) -> Result<Issued> {
        let body = json!({
            "payload": config.payload.expose(),
            "input": role.input.clone().unwrap_or_else(|| json!({})),
            "client_info": {
                "access_id": lease.requester(),
                "sub_claims": role.sub_claims,
            },
            "lease_id": lease.id(),
        });
        let response = match config.send("create", &body) {
            // A gateway's 502 or 504: the webhook may have acted behind it.
            Ok(response) if matches!(response.status(), 502 | 504) => {
                return Err(Error::internal(format!(
                    "a gateway answered {} for the webhook, which may have created the user; it is revoked by lease id",
                    response.status()
                )));
            }
            Ok(response) => response.success()?,
            // The webhook may have made the user before the answer was lost:
            // `internal` makes the host revoke by lease id.
            Err(err) if http::may_have_been_delivered(&err) => {
                return Err(Error::internal(format!(
                    "{}; the webhook may have created the user, which is revoked by lease id",
                    err.message()
                )));
            }
            Err(err) => return Err(err),
        };
        // A 2xx the plugin cannot read is `internal` too: the user may exist.
        let created: Created = response.json()?;
        if created.id.is_empty() {
            return Err(Error::internal("the webhook answered create without an id"));
        }
        let mut issued = Issued::new(&created.id);
        for (name, value) in created.response {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            issued = issued.secret(name, text);
        }
        Ok(issued)
    }

    fn revoke(config: &Config, _: &Role, handle: Option<&str>, lease: &Lease) -> Result<()> {
        let id = handle.unwrap_or(lease.id()).to_owned();
        let body = json!({ "payload": config.payload.expose(), "ids": [id] });
        let revoked: Revoked = config.call("revoke", &body)?.json()?;
        if revoked.revoked.contains(&id) {
            Ok(())
        } else {
            Err(Error::unavailable(format!(
                "the webhook did not revoke the id: {}",
                revoked.message.unwrap_or_default()
            )))
        }
    }

    fn rotate_root(config: &Config) -> Result<Config> {
        let body = json!({ "payload": config.payload.expose() });
        let rotated: Rotated = config.call("rotate", &body)?.json()?;
        Ok(Config {
            url: config.url.clone(),
            payload: Secret::new(rotated.payload),
            signing_key: config.signing_key.clone(),
            bearer_token: config.bearer_token.clone(),
            timeout_seconds: config.timeout_seconds,
        })
    }
}

export_provider!(Webhook);
