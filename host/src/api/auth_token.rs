//! `auth/token/*`: creating, looking up, renewing and revoking tokens.

use super::AppState;
use super::authorize::Caller;
use super::body::JsonBody;
use super::duration::Seconds;
use super::response::{ApiError, Envelope};
use crate::auth::{MAX_TTL, NewToken, Token, TokenEntry};
use crate::clock::{rfc3339, unix_now};
use crate::policy::RESPONSE_WRAPPING_POLICY;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// `lookup` data; `id` only where the caller already holds the token.
fn lookup_data(entry: &TokenEntry, id: Option<&Token>) -> Value {
    let mut data = json!({
        "accessor": entry.accessor,
        "creation_time": entry.creation_time,
        "creation_ttl": entry.ttl,
        "display_name": entry.display_name,
        "entity_id": "",
        "expire_time": entry.expire_time.map(rfc3339),
        "explicit_max_ttl": entry.explicit_max_ttl,
        "id": "",
        "identity_policies": [],
        "issue_time": rfc3339(entry.creation_time),
        "meta": entry.meta,
        "num_uses": entry.num_uses,
        "period": entry.period,
        "orphan": entry.orphan,
        "path": entry.path,
        "policies": entry.policies,
        "renewable": entry.renewable,
        "ttl": entry.ttl_remaining(unix_now()),
        "type": "service",
    });
    if let Some(token) = id {
        data["id"] = json!(token.expose());
    }
    data
}

/// The `auth` block of a create or renew response. The lease duration is the
/// TTL the token was just given, not what is left of it a moment later (which a
/// second boundary in between would make one less).
fn auth_block(token: &Token, entry: &TokenEntry) -> Value {
    json!({
        "client_token": token.expose(),
        "accessor": entry.accessor,
        "policies": entry.policies,
        "token_policies": entry.policies,
        "identity_policies": null,
        "metadata": entry.meta,
        "lease_duration": entry.ttl,
        "renewable": entry.renewable,
        "entity_id": "",
        "token_type": "service",
        "orphan": entry.orphan,
        "mfa_requirement": null,
        "num_uses": 0,
    })
}

/// `auth/token/create` body. Fields Vault has but leasehold does not (batch
/// tokens, entity aliases, chosen ids) are refused when set, so a client never
/// gets a token weaker or longer-lived than it asked for.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    #[serde(default)]
    policies: Option<Vec<String>>,
    #[serde(default)]
    meta: Option<BTreeMap<String, String>>,
    #[serde(default)]
    no_parent: Option<bool>,
    #[serde(default)]
    no_default_policy: Option<bool>,
    #[serde(default)]
    renewable: Option<bool>,
    #[serde(default)]
    ttl: Option<Seconds>,
    #[serde(default)]
    explicit_max_ttl: Option<Seconds>,
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    num_uses: Option<u64>,
    #[serde(default)]
    period: Option<Seconds>,
    #[serde(default, rename = "type")]
    token_type: Option<String>,
    #[serde(default)]
    entity_alias: Option<String>,
    #[serde(default)]
    id: Option<String>,
}

fn refuse_unsupported(request: &CreateRequest) -> Result<(), ApiError> {
    let unsupported = [
        (
            "entity_alias",
            request.entity_alias.as_ref().is_some_and(|a| !a.is_empty()),
        ),
        ("id", request.id.as_ref().is_some_and(|i| !i.is_empty())),
        (
            "type",
            request
                .token_type
                .as_deref()
                .is_some_and(|t| !t.is_empty() && t != "service" && t != "default"),
        ),
    ];
    match unsupported.iter().find(|(_, used)| *used) {
        Some((field, _)) => Err(ApiError::bad_request(format!(
            "`{field}` is not supported by leasehold"
        ))),
        None => Ok(()),
    }
}

async fn create_token(
    state: &AppState,
    caller: &Caller,
    request: CreateRequest,
    orphan: bool,
    path: &str,
) -> Result<Envelope, ApiError> {
    refuse_unsupported(&request)?;
    // As in Vault: a use-limited token cannot escape its limit through
    // children, and only root or sudo makes a periodic token.
    if caller.entry.num_uses > 0 || caller.entry.spent {
        return Err(ApiError::bad_request(
            "restricted use token cannot generate child tokens",
        ));
    }
    if request.period.is_some_and(|p| p.0 > 0) && !(caller.is_root() || caller.sudo) {
        return Err(ApiError::bad_request(
            "root or sudo privileges are required to create a periodic token",
        ));
    }
    let orphan = orphan || request.no_parent.unwrap_or(false);
    if request.no_parent == Some(true) && !(caller.is_root() || caller.sudo) {
        return Err(ApiError::bad_request(
            "root or sudo privileges are required to create an orphan token with no_parent (or use auth/token/create-orphan)",
        ));
    }
    let mut policies = request
        .policies
        .unwrap_or_else(|| caller.entry.policies.clone());
    policies.retain(|p| !p.is_empty());
    for p in &mut policies {
        *p = p.to_ascii_lowercase();
    }
    // Only the broker makes wrapping tokens: one made here would look like
    // one to `sys/wrapping/*` (Vault's non-assignable policy).
    if policies.iter().any(|p| p == RESPONSE_WRAPPING_POLICY) {
        return Err(ApiError::bad_request(format!(
            "cannot assign policy \"{RESPONSE_WRAPPING_POLICY}\""
        )));
    }
    if !caller.is_root() {
        if policies.iter().any(|p| p == "root") {
            return Err(ApiError::bad_request(
                "only a root token can create a root token",
            ));
        }
        let outside: Vec<&String> = policies
            .iter()
            .filter(|p| *p != "default" && !caller.entry.policies.contains(p))
            .collect();
        if !outside.is_empty() {
            return Err(ApiError::bad_request(format!(
                "child policies must be a subset of the parent's; not held: {}",
                outside
                    .iter()
                    .map(|p| p.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
    }
    if !request.no_default_policy.unwrap_or(false) && !policies.iter().any(|p| p == "root") {
        policies.push("default".into());
    }
    policies.sort();
    policies.dedup();

    let mut warnings = Vec::new();
    for name in &policies {
        if name != "root"
            && name != "default"
            && state
                .policies
                .read(name)
                .await
                .map_err(ApiError::internal)?
                .is_none()
        {
            warnings.push(format!("Policy \"{name}\" does not exist"));
        }
    }
    let display = request.display_name.unwrap_or_default();
    let display_name = if display.is_empty() {
        "token".to_owned()
    } else {
        format!("token-{display}")
    };
    let ttl = request.ttl.unwrap_or_default().0;
    let mut period = request.period.unwrap_or_default().0;
    if period > MAX_TTL {
        warnings.push(format!(
            "period of {period}s is longer than the maximum of {MAX_TTL}s; capped"
        ));
        period = MAX_TTL;
    }
    let explicit_max_ttl = request.explicit_max_ttl.unwrap_or_default().0;
    if ttl > MAX_TTL {
        warnings.push(format!(
            "TTL of {ttl}s is longer than the maximum of {MAX_TTL}s; capped"
        ));
    }
    let (token, entry) = state
        .tokens
        .create(NewToken {
            policies,
            meta: request.meta.unwrap_or_default(),
            display_name,
            ttl,
            explicit_max_ttl,
            renewable: request.renewable.unwrap_or(true),
            parent: (!orphan).then(|| caller.entry.accessor.clone()),
            path: path.to_owned(),
            num_uses: request.num_uses.unwrap_or(0),
            period,
        })
        .await?;
    Ok(warnings
        .into_iter()
        .fold(Envelope::auth(auth_block(&token, &entry)), Envelope::warn))
}

/// `POST auth/token/create`.
pub async fn create(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateRequest>,
) -> Result<Envelope, ApiError> {
    create_token(&state, &caller, request, false, "auth/token/create").await
}

/// `POST auth/token/create-orphan`.
pub async fn create_orphan(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(request): JsonBody<CreateRequest>,
) -> Result<Envelope, ApiError> {
    create_token(&state, &caller, request, true, "auth/token/create-orphan").await
}

/// `GET auth/token/lookup-self`.
pub async fn lookup_self(caller: Caller) -> Envelope {
    Envelope::data(lookup_data(&caller.entry, Some(&caller.token)))
}

/// Body naming a token.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenBody {
    token: String,
    #[serde(default)]
    increment: Option<Seconds>,
}

/// Body naming an accessor.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessorBody {
    accessor: String,
}

/// Body of `renew-self`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IncrementBody {
    #[serde(default)]
    increment: Option<Seconds>,
}

/// `POST auth/token/lookup`.
pub async fn lookup(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<Envelope, ApiError> {
    let token = Token::from_request(&body.token);
    let entry = live(state.tokens.lookup(&token).await?)?;
    Ok(Envelope::data(lookup_data(&entry, Some(&token))))
}

/// A token that may still be used: one whose last use was taken is, to
/// everyone else, already gone.
fn live(entry: TokenEntry) -> Result<TokenEntry, ApiError> {
    if entry.spent {
        return Err(crate::auth::TokenError::Unknown.into());
    }
    Ok(entry)
}

/// `POST auth/token/lookup-accessor`: never shows the token itself.
pub async fn lookup_accessor(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<AccessorBody>,
) -> Result<Envelope, ApiError> {
    let entry = live(state.tokens.lookup_accessor(&body.accessor).await?)?;
    Ok(Envelope::data(lookup_data(&entry, None)))
}

async fn renew_token(
    state: &AppState,
    token: &Token,
    increment: Option<Seconds>,
) -> Result<Envelope, ApiError> {
    let (entry, capped) = state.tokens.renew(token, increment.map(|s| s.0)).await?;
    let envelope = Envelope::auth(auth_block(token, &entry));
    Ok(if capped {
        envelope
            .warn("TTL of the renewal exceeded the token's maximum TTL; it was capped accordingly")
    } else {
        envelope
    })
}

/// `POST auth/token/renew-self`.
pub async fn renew_self(
    State(state): State<AppState>,
    caller: Caller,
    JsonBody(body): JsonBody<IncrementBody>,
) -> Result<Envelope, ApiError> {
    renew_token(&state, &caller.token, body.increment).await
}

/// `POST auth/token/renew`.
pub async fn renew(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<Envelope, ApiError> {
    renew_token(&state, &Token::from_request(&body.token), body.increment).await
}

/// `POST auth/token/revoke-self`.
pub async fn revoke_self(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    revoke_tree(&state, &caller.token).await
}

/// Revokes a token's leases and its descendants' leases, then the tokens: a
/// lease never outlives the token that asked for it. Leases whose revocation
/// fails stay queued for retry; the tokens go regardless.
async fn revoke_tree(state: &AppState, token: &Token) -> Result<StatusCode, ApiError> {
    if let Some(accessor) = state.tokens.accessor_of(token).await? {
        revoke_accessor_tree(state, &accessor).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn revoke_accessor_tree(state: &AppState, accessor: &str) -> Result<(), ApiError> {
    use crate::revocation::{LeaseHandling, RevocationError, revoke_token_tree};
    revoke_token_tree(&state.revoker(), accessor, LeaseHandling::RevokeNow)
        .await
        .map_err(|err| match err {
            RevocationError::Token(err) => err.into(),
            RevocationError::Lease(err) => err.into(),
            RevocationError::Wrapping(err) => err.into(),
        })
}

/// `POST auth/token/revoke`: the token and its descendants.
pub async fn revoke(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<TokenBody>,
) -> Result<StatusCode, ApiError> {
    revoke_tree(&state, &Token::from_request(&body.token)).await
}

/// `POST auth/token/revoke-accessor`.
pub async fn revoke_accessor(
    State(state): State<AppState>,
    _caller: Caller,
    JsonBody(body): JsonBody<AccessorBody>,
) -> Result<StatusCode, ApiError> {
    revoke_accessor_tree(&state, &body.accessor).await?;
    Ok(StatusCode::NO_CONTENT)
}
