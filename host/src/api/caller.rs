//! Who is calling: the token from `X-Vault-Token` or `Authorization: Bearer`,
//! looked up before the handler runs.

use super::AppState;
use super::response::ApiError;
use crate::auth::{Token, TokenEntry, TokenError};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;

/// The caller's token and its entry. Extracting it fails with 403 when the token
/// is missing, unknown or expired.
pub struct Caller {
    /// The token as presented.
    pub token: Token,
    /// What it may do.
    pub entry: TokenEntry,
}

impl Caller {
    /// Whether the caller holds the `root` policy (sudo on everything, until ACL
    /// policies arrive).
    pub fn is_root(&self) -> bool {
        self.entry.policies.iter().any(|p| p == "root")
    }

    /// 403 unless the caller is root.
    pub fn require_root(&self) -> Result<(), ApiError> {
        if self.is_root() {
            Ok(())
        } else {
            Err(ApiError::permission_denied())
        }
    }
}

fn presented(parts: &Parts) -> Option<Token> {
    let headers = &parts.headers;
    if let Some(value) = headers.get("x-vault-token").and_then(|v| v.to_str().ok()) {
        return Some(Token::from_request(value.trim()));
    }
    let bearer = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())?
        .strip_prefix("Bearer ")?;
    Some(Token::from_request(bearer.trim()))
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = presented(parts).ok_or_else(ApiError::permission_denied)?;
        match state.tokens.lookup(&token).await {
            Ok(entry) => Ok(Self { token, entry }),
            Err(TokenError::Unknown) => Err(ApiError::permission_denied()),
            Err(err) => Err(ApiError::internal(err)),
        }
    }
}
