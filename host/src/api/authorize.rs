//! The one check every request passes: who is calling, and may they do this here.
//!
//! Runs after routing for every path except the few Vault leaves open (health,
//! init, seal-status, unseal). The token comes from `X-Vault-Token` or
//! `Authorization: Bearer`; its policies decide the operation's capability on the
//! path (GET read, LIST list, PUT/POST update, DELETE delete), and paths Vault marks
//! root-protected also need `sudo`. The handler then finds the [`Caller`] in the
//! request.

use super::AppState;
use super::response::ApiError;
use crate::auth::{Token, TokenEntry, TokenError};
use crate::policy::Capability;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::Method;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Paths any client may call without a token.
const UNAUTHENTICATED: &[&str] = &["sys/health", "sys/init", "sys/seal-status", "sys/unseal"];

/// Paths (or prefixes, ending in `/`) that need `sudo` besides the operation's
/// capability, as in Vault.
const SUDO: &[&str] = &[
    "sys/seal",
    "sys/rotate",
    "sys/audit",
    "sys/audit/",
    "sys/leases/revoke-prefix/",
    "sys/leases/revoke-force/",
    "sys/leases",
    "sys/leases/lookup/",
    "sys/revoke-prefix/",
    "sys/revoke-force/",
    "sys/plugins/catalog",
    "sys/plugins/catalog/",
    "sys/plugins/reload/backend",
    "sys/raw/",
    "auth/token/accessors",
];

/// Paths that need `sudo` only to be listed, as in Vault: looking up one lease
/// is open to any token that has its id, listing every lease is not.
const SUDO_TO_LIST: &[&str] = &["sys/leases/lookup"];

fn needs_sudo(path: &str, capability: Capability) -> bool {
    let listed = capability == Capability::List && SUDO_TO_LIST.contains(&path);
    listed
        || SUDO.iter().any(|p| {
            if p.ends_with('/') {
                path.starts_with(p)
            } else {
                path == *p
            }
        })
}

/// The authenticated caller of a request.
#[derive(Clone)]
pub struct Caller {
    /// The token as presented.
    pub token: Token,
    /// What it is.
    pub entry: TokenEntry,
    /// Whether its policies grant `sudo` on this request's path.
    pub sudo: bool,
}

impl Caller {
    /// Whether the caller holds the `root` policy.
    pub fn is_root(&self) -> bool {
        self.entry.policies.iter().any(|p| p == "root")
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(ApiError::permission_denied)
    }
}

fn presented(request: &Request) -> Option<Token> {
    let headers = request.headers();
    if let Some(value) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(Token::from_request(value.trim()));
    }
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?
        .strip_prefix("Bearer ")?;
    Some(Token::from_request(bearer.trim()))
}

/// Whether the request is a `LIST` (after [`list_as_get`], `?list=true`).
pub(super) fn is_list(request: &Request) -> bool {
    request
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "list=true"))
}

/// The middleware.
pub async fn authorize(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request
        .uri()
        .path()
        .trim_start_matches("/v1/")
        .trim_end_matches('/')
        .to_owned();
    if UNAUTHENTICATED.contains(&path.as_str()) {
        return next.run(request).await;
    }
    let Some(token) = presented(&request) else {
        return ApiError::permission_denied().into_response();
    };
    let entry = match state.tokens.lookup(&token).await {
        Ok(entry) => entry,
        Err(TokenError::Unknown) => return ApiError::permission_denied().into_response(),
        Err(err) => return ApiError::internal(err).into_response(),
    };
    let acl = match state.policies.acl(&entry.policies).await {
        Ok(acl) => acl,
        Err(err) => return ApiError::internal(err).into_response(),
    };
    let capability = match *request.method() {
        Method::GET | Method::HEAD if is_list(&request) => Capability::List,
        Method::GET | Method::HEAD => Capability::Read,
        Method::DELETE => Capability::Delete,
        _ => Capability::Update,
    };
    let decision = acl.decide(&path, capability);
    if !decision.allowed || (needs_sudo(&path, capability) && !decision.sudo) {
        return ApiError::permission_denied().into_response();
    }
    let audited = super::audit_log::AuditedCaller {
        accessor: entry.accessor.clone(),
        policies: entry.policies.clone(),
        display_name: entry.display_name.clone(),
    };
    request.extensions_mut().insert(Caller {
        token,
        entry,
        sudo: decision.sudo,
    });
    let mut response = next.run(request).await;
    response.extensions_mut().insert(audited);
    response
}

/// Vault clients send `LIST`; axum routes standard methods only, so a `LIST` is
/// rewritten to `GET ?list=true` before routing, which Vault treats as the same.
pub async fn list_as_get(mut request: Request, next: Next) -> Response {
    if request.method().as_str() == "LIST" {
        *request.method_mut() = Method::GET;
        let uri = request.uri();
        let query = match uri.query() {
            Some(q) => format!("{q}&list=true"),
            None => "list=true".to_owned(),
        };
        if let Ok(rewritten) = format!("{}?{query}", uri.path()).parse() {
            *request.uri_mut() = rewritten;
        }
    }
    next.run(request).await
}
