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
//! Every call is signed, so the webhook can tell the broker's calls from anyone
//! else's and a captured call cannot be sent again elsewhere or later. Scheme
//! `v2`: the canonical text of a call is five lines joined by `\n` (no `\n`
//! at the end):
//!
//! ```text
//! <timestamp>            X-Leasehold-Timestamp: Unix seconds, decimal
//! <method>               POST
//! <host>                 the Host header, lowercased: url's host[:port] as written
//! <path>                 the request target: url's path + /sync/<call> (+ ?query)
//! <body hash>            lowercase hex SHA-256 of the raw body (of nothing: e3b0c4...)
//! ```
//!
//! and `X-Leasehold-Signature: v2=<lowercase hex HMAC-SHA256(signing_key, that
//! text)>`. A webhook recomputes it from the request it got, compares in
//! constant time, and refuses a timestamp more than 300 seconds from its clock.
//! `Authorization: Bearer` comes too when the config has a `bearer_token`.
//!
//! A create also carries `Idempotency-Key: <lease id>`, the body's `lease_id`
//! (which the signature covers): a create sent again for one lease (a retry, a
//! replay inside the window) must get the user the first one made, not a second.
//!
//! `http://` goes only to loopback (`127.0.0.0/8`, `::1`, `localhost`) unless the
//! config sets `allow_insecure_http`: the payload, the bearer token and every
//! credential would cross the network in clear text.

use hmac::{Hmac, Mac};
use leasehold_sdk::prelude::*;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header carrying the signing time.
pub const TIMESTAMP_HEADER: &str = "X-Leasehold-Timestamp";
/// Header carrying the signature.
pub const SIGNATURE_HEADER: &str = "X-Leasehold-Signature";
/// Header carrying a create's lease id, its idempotency key.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
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
    /// Allow an `http://` url to a host that is not loopback, in clear text.
    #[serde(default)]
    allow_insecure_http: bool,
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

/// Where the calls go: `url` in the pieces a signature covers.
#[derive(Debug, PartialEq)]
struct Endpoint<'a> {
    /// `http` or `https`.
    scheme: &'a str,
    /// `host[:port]` as written, which the call's `Host` header carries.
    authority: &'a str,
    /// The path of `url`, without its trailing `/`.
    base_path: &'a str,
}

impl<'a> Endpoint<'a> {
    /// `url`'s pieces; `allow_insecure_http` lets `http://` reach beyond loopback.
    fn parse(url: &'a str, allow_insecure_http: bool) -> Result<Self> {
        let Some((scheme @ ("http" | "https"), rest)) = url.split_once("://") else {
            return Err(Error::invalid_config(
                "url must be an http:// or https:// URL",
            ));
        };
        if url.contains(char::is_whitespace) || url.contains(['?', '#']) {
            return Err(Error::invalid_config(
                "url must be a URL without spaces, query or fragment: the calls go to {url}/sync/...",
            ));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(Error::invalid_config(
                "url must name a host and hold no user or password (use bearer_token)",
            ));
        }
        if scheme == "http" && !allow_insecure_http && !is_loopback(authority) {
            return Err(Error::invalid_config(format!(
                "url: http:// to {authority} would send the payload, the bearer token and every \
                 credential in clear text; use https://, or set allow_insecure_http: true"
            )));
        }
        Ok(Self {
            scheme,
            authority,
            base_path: path.trim_end_matches('/'),
        })
    }
}

/// Whether the host of `authority` (`host[:port]`) is a loopback address or
/// `localhost`.
fn is_loopback(authority: &str) -> bool {
    let host = match authority.strip_prefix('[') {
        Some(bracketed) => bracketed.split(']').next().unwrap_or_default(),
        None => authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host),
    };
    host.eq_ignore_ascii_case("localhost")
        || host.parse::<Ipv4Addr>().is_ok_and(|ip| ip.is_loopback())
        || host.parse::<Ipv6Addr>().is_ok_and(|ip| ip.is_loopback())
}

impl Config {
    fn check(&self) -> Result<Endpoint<'_>> {
        let endpoint = Endpoint::parse(&self.url, self.allow_insecure_http)?;
        if self.signing_key.expose().len() < 16 {
            return Err(Error::invalid_config(
                "signing_key must be at least 16 characters",
            ));
        }
        Ok(endpoint)
    }

    /// A signed `POST {url}/sync/{call}` with `body`, answered 2xx.
    fn call(&self, call: &str, body: &Value) -> Result<http::Response> {
        self.send(call, body, None)?.success()
    }

    /// A signed `POST {url}/sync/{call}` with `body` (and `Idempotency-Key:
    /// <key>`), whatever its status.
    fn send(&self, call: &str, body: &Value, key: Option<&str>) -> Result<http::Response> {
        let endpoint = self.check()?;
        let body = serde_json::to_vec(body).map_err(|e| Error::internal(e.to_string()))?;
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let path = format!("{}/sync/{call}", endpoint.base_path);
        let signed = canonical(&timestamp, "POST", endpoint.authority, &path, &body);
        let mut request = http::post(format!(
            "{}://{}{path}",
            endpoint.scheme, endpoint.authority
        ))
        .header("content-type", "application/json")
        .header(TIMESTAMP_HEADER, &timestamp)
        .header(SIGNATURE_HEADER, sign(self.signing_key.expose(), &signed))
        .timeout(Duration::from_secs(
            self.timeout_seconds.unwrap_or(DEFAULT_TIMEOUT).into(),
        ))
        .body(body);
        if let Some(key) = key {
            request = request.header(IDEMPOTENCY_HEADER, key);
        }
        if let Some(token) = &self.bearer_token {
            request = request.bearer(token.expose());
        }
        Ok(request.send()?)
    }
}

/// The text a `v2` signature covers (see the module docs): timestamp, method,
/// host (lowercased), path with query and the body's SHA-256, one per line.
fn canonical(timestamp: &str, method: &str, host: &str, path: &str, body: &[u8]) -> String {
    format!(
        "{timestamp}\n{method}\n{}\n{path}\n{}",
        host.to_ascii_lowercase(),
        hex::encode(Sha256::digest(body))
    )
}

/// `v2=` and the hex HMAC-SHA256 of the `canonical` text.
fn sign(key: &str, canonical: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).expect("HMAC takes any key");
    mac.update(canonical.as_bytes());
    format!("v2={}", hex::encode(mac.finalize().into_bytes()))
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
        config.check().map(drop)
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
        // A create sent again for this lease gets the user the first one made.
        // One whose request may have reached the webhook before the answer was
        // lost (or that a gateway answered 502 or 504) fails as uncertain, and
        // the broker revokes by lease id whatever it may have made.
        let response = config.send("create", &body, Some(lease.id()))?.success()?;
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
            allow_insecure_http: config.allow_insecure_http,
        })
    }
}

export_provider!(Webhook);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_canonical_text_covers_every_part_of_a_call() {
        let text = canonical(
            "1795356935",
            "POST",
            "Users.Internal:8443",
            "/leasehold/sync/create",
            b"{}",
        );
        assert_eq!(
            text,
            "1795356935\nPOST\nusers.internal:8443\n/leasehold/sync/create\n\
             44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
        );
        // An empty body hashes to SHA-256 of nothing.
        assert!(
            canonical("1", "POST", "h", "/", b"")
                .ends_with("\ne3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        // The HMAC of that text under the key, as a webhook recomputes it.
        let mut mac = Hmac::<Sha256>::new_from_slice(b"a-signing-key-of-16+").unwrap();
        mac.update(text.as_bytes());
        let expected = format!("v2={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(sign("a-signing-key-of-16+", &text), expected);
        // Each part changes the signature.
        let base = sign("k", &text);
        for other in [
            canonical(
                "1795356936",
                "POST",
                "users.internal:8443",
                "/leasehold/sync/create",
                b"{}",
            ),
            canonical(
                "1795356935",
                "PUT",
                "users.internal:8443",
                "/leasehold/sync/create",
                b"{}",
            ),
            canonical(
                "1795356935",
                "POST",
                "users.internal:8444",
                "/leasehold/sync/create",
                b"{}",
            ),
            canonical(
                "1795356935",
                "POST",
                "users.internal:8443",
                "/leasehold/sync/revoke",
                b"{}",
            ),
            canonical(
                "1795356935",
                "POST",
                "users.internal:8443",
                "/leasehold/sync/create",
                b"[]",
            ),
        ] {
            assert_ne!(sign("k", &other), base, "{other}");
        }
    }

    #[test]
    fn endpoints_split_as_the_calls_are_sent() {
        let endpoint = Endpoint::parse("https://Users.internal:8443/leasehold/", false).unwrap();
        assert_eq!(
            endpoint,
            Endpoint {
                scheme: "https",
                authority: "Users.internal:8443",
                base_path: "/leasehold",
            }
        );
        assert_eq!(Endpoint::parse("https://h", false).unwrap().base_path, "");
        for bad in [
            "ftp://h",
            "https://",
            "https:///path",
            "https://user:pw@h",
            "https://h/a b",
            "https://h/?x=1",
            "https://h/#f",
            "h:80",
        ] {
            assert!(Endpoint::parse(bad, true).is_err(), "{bad}");
        }
    }

    #[test]
    fn plain_http_only_to_loopback_unless_allowed() {
        for loopback in [
            "http://127.0.0.1:8080",
            "http://127.3.2.1/hooks",
            "http://[::1]:8080/",
            "http://localhost",
            "http://LOCALHOST:9000",
        ] {
            Endpoint::parse(loopback, false).unwrap();
        }
        for remote in [
            "http://10.0.0.5:8080",
            "http://users.internal",
            "http://localhost.evil.example",
            "http://127.0.0.1.nip.io",
            "http://[::ffff:127.0.0.1]",
            "http://[fe80::1]",
            "http://0.0.0.0",
        ] {
            let err = Endpoint::parse(remote, false).unwrap_err();
            assert!(
                err.message().contains("allow_insecure_http"),
                "{remote}: {err:?}"
            );
            Endpoint::parse(remote, true).unwrap();
        }
        Endpoint::parse("https://users.internal", false).unwrap();
    }
}
