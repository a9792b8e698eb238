//! The one check every request passes: who is calling, and may they do this here.
//!
//! Runs for every route not declared open (health, init, seal-status, unseal).
//! The token comes from `X-Vault-Token` or `Authorization: Bearer`; its policies
//! decide the capability the request's declared operation needs on its canonical
//! path ([`Resolved::capability`]: read, list, delete, and create or update by
//! whether the object exists), and routes declared root-protected also need
//! `sudo`. The handler then finds the [`Caller`] in the request. A refused
//! request is audited here, without its body, which is never parsed.
//!
//! A response-wrapping token authorizes like any token, by its one policy
//! (`response-wrapping`: it may unwrap itself); on the routes that take it as
//! their subject, an unknown or used one is Vault's 400 rather than 403.

use super::AppState;
use super::response::ApiError;
use super::routes::{Operation, Resolved};
use crate::auth::{Token, TokenEntry, TokenError};
use crate::policy::Capability;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The authenticated caller of a request.
#[derive(Clone)]
pub struct Caller {
    /// The token as presented.
    pub token: Token,
    /// What it is.
    pub entry: TokenEntry,
    /// Whether its policies grant `sudo` on this request's path.
    pub sudo: bool,
    /// The capability the request was authorized with.
    pub capability: Capability,
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

/// The token as sent: `X-Vault-Token`, else `Authorization: Bearer`. The one
/// reading of these headers, for authorization and the audit log alike.
pub(super) fn presented_text(headers: &axum::http::HeaderMap) -> Option<&str> {
    if let Some(value) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(value.trim());
    }
    headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?
        .strip_prefix("Bearer ")
        .map(str::trim)
}

fn presented(headers: &axum::http::HeaderMap) -> Option<Token> {
    presented_text(headers).map(Token::from_request)
}

/// The middleware.
pub async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(resolved) = request.extensions().get::<Resolved>().cloned() else {
        return ApiError::internal("a request reached authorization unresolved").into_response();
    };
    if resolved.route.unauthenticated {
        return next.run(request).await;
    }
    // A body is not `Sync`: only the head is looked at across the awaits.
    let (mut parts, body) = request.into_parts();
    match check(&state, &parts, &resolved).await {
        Ok(_) if resolved.unsupported => {
            super::routes::unsupported(&parts.method, resolved.operation).into_response()
        }
        Ok(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, body)).await
        }
        Err(refusal) => super::audit_log::record_refused(&state, &parts, &resolved, refusal).await,
    }
}

/// Takes a use of a use-limited token, innermost, just before the handler:
/// a request refused on the way in (its wrap header, its rate limit, its
/// audit line) costs no use, so a single-use token is not lost to it. After
/// the token's last use it is revoked, with its children, leases and wrapped
/// responses, in a task of its own (a client that hangs up cannot stop it),
/// the leases queued for the revocation worker.
pub async fn spend_use(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(caller) = request.extensions().get::<Caller>().cloned() else {
        return next.run(request).await;
    };
    if caller.entry.num_uses == 0 {
        return next.run(request).await;
    }
    let last = match state.tokens.spend_use(&caller.token).await {
        Ok(last) => last,
        Err(err) => {
            let resolved = request.extensions().get::<Resolved>().cloned();
            return match resolved {
                Some(resolved) => unknown_token(&resolved, err),
                None => ApiError::permission_denied(),
            }
            .into_response();
        }
    };
    let response = next.run(request).await;
    if last {
        let revoker = state.revoker();
        let accessor = caller.entry.accessor.clone();
        tokio::spawn(async move {
            let revoked = crate::revocation::revoke_token_tree(
                &revoker,
                &accessor,
                crate::revocation::LeaseHandling::Queue,
            )
            .await;
            if let Err(err) = revoked {
                tracing::error!(error = %err, "revoking a token after its last use failed; it expires on its own");
            }
        });
    }
    response
}

/// Whether the token in `headers` may write the request path `raw` (as sent,
/// `/v1/...`) with `sudo`. Decides nothing by itself: [`read_body`] asks it
/// before reading a body, to give the large component-upload limit only to a
/// caller who could use it, so an anonymous client cannot make the broker
/// buffer 64 MiB. The request is then authorized as every other.
///
/// [`read_body`]: super::read_body
pub(super) async fn may_write_with_sudo(
    state: &AppState,
    headers: &axum::http::HeaderMap,
    raw: &str,
) -> bool {
    let Some(path) = raw
        .strip_prefix("/v1/")
        .and_then(|rest| super::canonical::canonical(rest).ok())
    else {
        return false;
    };
    let Some(token) = presented(headers) else {
        return false;
    };
    let Ok(entry) = state.tokens.lookup(&token).await else {
        return false;
    };
    let Ok(acl) = state.policies.acl(&entry.policies).await else {
        return false;
    };
    [Capability::Create, Capability::Update]
        .into_iter()
        .any(|capability| {
            let decision = acl.decide(&path, capability);
            decision.allowed && decision.sudo
        })
}

/// The refusal for a token that cannot be used: Vault's 400 on the routes that
/// take a wrapping token as their subject, 403 elsewhere.
fn unknown_token(resolved: &Resolved, err: TokenError) -> ApiError {
    match err {
        TokenError::Unknown if resolved.route.wrapping_token => {
            crate::wrapping::WrappingError::Invalid.into()
        }
        TokenError::Unknown => ApiError::permission_denied(),
        err => ApiError::internal(err),
    }
}

async fn check(state: &AppState, parts: &Parts, resolved: &Resolved) -> Result<Caller, ApiError> {
    let token = presented(&parts.headers).ok_or_else(ApiError::permission_denied)?;
    let entry = match state.tokens.lookup(&token).await {
        // A token whose last use was taken authorizes nothing more.
        Ok(entry) if entry.spent => return Err(unknown_token(resolved, TokenError::Unknown)),
        Ok(entry) => entry,
        Err(err) => return Err(unknown_token(resolved, err)),
    };
    let acl = state
        .policies
        .acl(&entry.policies)
        .await
        .map_err(ApiError::internal)?;
    let capability = resolved.capability(state).await?;
    // A list is of what is below the path, as in Vault, whose `LIST db/roles`
    // is checked as `db/roles/` (so `path "db/roles/*"` grants it).
    let decision = if resolved.operation == Operation::List {
        acl.decide(&format!("{}/", resolved.path), capability)
    } else {
        acl.decide(&resolved.path, capability)
    };
    if !decision.allowed || (resolved.route.needs_sudo(resolved.operation) && !decision.sudo) {
        return Err(ApiError::permission_denied());
    }
    Ok(Caller {
        token,
        entry,
        sudo: decision.sudo,
        capability,
    })
}
