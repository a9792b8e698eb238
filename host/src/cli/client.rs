//! The CLI's HTTP client: the server's address and the caller's token from the
//! environment, Vault's names as a fallback.

use reqwest::blocking::Client as Http;
use reqwest::{Method, StatusCode};
use serde_json::Value;

/// Talks to one server as one token.
pub struct Client {
    http: Http,
    address: String,
    token: Option<String>,
}

/// A failed call: the server's status and messages, or why it was not reached.
#[derive(Debug)]
pub struct CallError(pub String);

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn env(primary: &str, fallback: &str) -> Option<String> {
    std::env::var(primary)
        .ok()
        .or_else(|| std::env::var(fallback).ok())
        .filter(|v| !v.is_empty())
}

impl Client {
    /// From `LEASEHOLD_ADDR`/`VAULT_ADDR` (default `http://127.0.0.1:8200`) and
    /// `LEASEHOLD_TOKEN`/`VAULT_TOKEN`.
    pub fn from_env() -> Self {
        Self {
            http: Http::new(),
            address: env("LEASEHOLD_ADDR", "VAULT_ADDR")
                .unwrap_or_else(|| "http://127.0.0.1:8200".into())
                .trim_end_matches('/')
                .to_owned(),
            token: env("LEASEHOLD_TOKEN", "VAULT_TOKEN"),
        }
    }

    /// Sends `method` to `/v1/<path>` with an optional JSON body. A 204 is
    /// `Value::Null`; a 4xx or 5xx is an error with the server's messages.
    pub fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, CallError> {
        let method = Method::from_bytes(method.as_bytes())
            .map_err(|_| CallError(format!("bad method {method}")))?;
        let path = path.trim_start_matches('/');
        let url = format!("{}/v1/{path}", self.address);
        let mut request = self.http.request(method, &url);
        if let Some(token) = &self.token {
            request = request.header("X-Vault-Token", token);
        }
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .map_err(|err| CallError(format!("cannot reach {}: {err}", self.address)))?;
        let status = response.status();
        let text = response.text().unwrap_or_default();
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_client_error() || status.is_server_error() {
            let errors: Vec<String> = value["errors"]
                .as_array()
                .map(|e| {
                    e.iter()
                        .filter_map(|m| m.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            let detail = if errors.is_empty() {
                "no message".to_owned()
            } else {
                errors.join("; ")
            };
            return Err(CallError(format!(
                "{} {path}: {} ({detail})",
                status.as_u16(),
                reason(status)
            )));
        }
        Ok(value)
    }
}

fn reason(status: StatusCode) -> &'static str {
    status.canonical_reason().unwrap_or("error")
}
