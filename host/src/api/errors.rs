//! Every error of the broker's modules as an HTTP status and message: the one
//! place that decides what a client sees when something fails.

use super::response::ApiError;
use crate::audit::AuditError;
use crate::auth::TokenError;
use crate::barrier::BarrierError;
use crate::catalog::CatalogError;
use crate::leases::LeaseError;
use crate::lifecycle::LifecycleError;
use crate::plugin::{Failure, PluginError};
use crate::policy::PolicyStoreError;
use crate::quotas::QuotaError;
use crate::secrets::SecretsError;
use crate::wrapping::WrappingError;
use axum::http::StatusCode;

impl From<TokenError> for ApiError {
    fn from(err: TokenError) -> Self {
        match err {
            // Vault's answer to a token that does not exist (or was revoked).
            TokenError::Unknown => ApiError::new(StatusCode::FORBIDDEN, "bad token"),
            TokenError::NotRenewable => ApiError::bad_request(err.to_string()),
            TokenError::Barrier(e) => e.into(),
            TokenError::Corrupt => ApiError::internal(err),
        }
    }
}

impl From<SecretsError> for ApiError {
    fn from(err: SecretsError) -> Self {
        match err {
            SecretsError::Invalid(message) => ApiError::bad_request(message),
            SecretsError::NotFound => ApiError::not_found(),
            SecretsError::Plugin(err) => plugin_error(err),
            SecretsError::Lease(err) => err.into(),
            SecretsError::Catalog(err) => err.into(),
            SecretsError::Barrier(err) => err.into(),
            SecretsError::Internal(message) => ApiError::internal(message),
        }
    }
}

/// A plugin failure as an HTTP error: the request or config is wrong (400), the
/// target is unavailable or refused (502), the connection's or the pool's calls
/// are all taken (429), the target keeps timing out (503), or the plugin broke
/// (500). Refusals carry `Retry-After`.
pub fn plugin_error(err: PluginError) -> ApiError {
    let status = match &err {
        PluginError::Failed(Failure::InvalidConfig(_) | Failure::InvalidRequest(_))
        | PluginError::CapabilityDenied(_) => StatusCode::BAD_REQUEST,
        PluginError::Failed(Failure::Unavailable(_) | Failure::Denied(_))
        | PluginError::Timeout(_) => StatusCode::BAD_GATEWAY,
        PluginError::Busy { .. } => StatusCode::TOO_MANY_REQUESTS,
        PluginError::CircuitOpen { .. } => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    let retry = if err.is_retryable() {
        " (retryable)"
    } else {
        ""
    };
    let error = ApiError::new(status, format!("plugin error: {err}{retry}"));
    match err.retry_after() {
        Some(after) => error.retry_after(after),
        None => error,
    }
}

impl From<AuditError> for ApiError {
    fn from(err: AuditError) -> Self {
        match err {
            AuditError::Barrier(e) => e.into(),
            AuditError::NoDeviceWrote => ApiError::internal(err),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

impl From<LeaseError> for ApiError {
    fn from(err: LeaseError) -> Self {
        match err {
            LeaseError::NotFound => ApiError::bad_request("invalid lease"),
            LeaseError::QuotaExceeded(_) => {
                ApiError::new(StatusCode::TOO_MANY_REQUESTS, err.to_string())
            }
            LeaseError::PastMax | LeaseError::NotRenewable(_) | LeaseError::TokenExpiring => {
                ApiError::bad_request(err.to_string())
            }
            LeaseError::Plugin(err) => plugin_error(err),
            LeaseError::Deferred(ref refused) => {
                let after = refused
                    .retry_after()
                    .unwrap_or(std::time::Duration::from_secs(1));
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, err.to_string()).retry_after(after)
            }
            LeaseError::Target(_) => ApiError::bad_request(err.to_string()),
            LeaseError::RevokeFailed(_) => ApiError::new(StatusCode::BAD_GATEWAY, err.to_string()),
            LeaseError::Barrier(e) => e.into(),
        }
    }
}

impl From<LifecycleError> for ApiError {
    fn from(err: LifecycleError) -> Self {
        match err {
            LifecycleError::Invalid(_)
            | LifecycleError::AlreadyInitialized
            | LifecycleError::NotInitialized
            | LifecycleError::WrongShares => ApiError::bad_request(err.to_string()),
            LifecycleError::Barrier(_)
            | LifecycleError::Token(_)
            | LifecycleError::KeyFile(_)
            | LifecycleError::UnsealingWithKeyFile { .. } => ApiError::internal(err),
        }
    }
}

impl From<BarrierError> for ApiError {
    fn from(err: BarrierError) -> Self {
        match err {
            BarrierError::Sealed => ApiError::sealed(),
            other => ApiError::internal(other),
        }
    }
}

impl From<CatalogError> for ApiError {
    fn from(err: CatalogError) -> Self {
        match err {
            CatalogError::Barrier(e) => e.into(),
            CatalogError::Unknown(_) => ApiError::new(StatusCode::NOT_FOUND, err.to_string()),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

impl From<PolicyStoreError> for ApiError {
    fn from(err: PolicyStoreError) -> Self {
        match err {
            PolicyStoreError::Barrier(e) => e.into(),
            other => ApiError::bad_request(other.to_string()),
        }
    }
}

impl From<QuotaError> for ApiError {
    fn from(err: QuotaError) -> Self {
        match err {
            QuotaError::Invalid(message) => ApiError::bad_request(message),
            QuotaError::Barrier(e) => e.into(),
        }
    }
}

impl From<WrappingError> for ApiError {
    fn from(err: WrappingError) -> Self {
        match err {
            WrappingError::Invalid | WrappingError::Ttl(_) => {
                ApiError::bad_request(err.to_string())
            }
            WrappingError::Token(e) => e.into(),
            WrappingError::Barrier(e) => e.into(),
            WrappingError::Corrupt => ApiError::internal(err),
        }
    }
}
