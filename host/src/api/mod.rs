//! The HTTP API: Vault's wire format for the subset leasehold serves.
//!
//! The only module that knows HTTP. Conventions for every endpoint: JSON bodies
//! ([`body`]), Vault's envelope and `{"errors": [...]}` ([`response`]), `POST` the
//! same as `PUT`, 404 and 405 with a JSON body, and 503 for everything but the
//! lifecycle endpoints while sealed.

mod audit_log;
mod auth_token;
mod authorize;
pub mod body;
mod duration;
mod mount_paths;
mod read_body;
pub mod response;
mod sys_audit;
mod sys_leases;
mod sys_lifecycle;
mod sys_mounts;
mod sys_plugins;
mod sys_policy;
mod sys_quotas;

pub use authorize::list_as_get;

use crate::audit::AuditRegistry;
use crate::auth::TokenStore;
use crate::barrier::Barrier;
use crate::lifecycle::Lifecycle;
use crate::policy::PolicyStore;
use crate::secrets::Secrets;
use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::Method;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use response::ApiError;
use std::sync::Arc;

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// Init, unseal, seal.
    pub lifecycle: Arc<Lifecycle>,
    /// Encryption at rest.
    pub barrier: Arc<Barrier>,
    /// Tokens.
    pub tokens: TokenStore,
    /// ACL policies.
    pub policies: PolicyStore,
    /// Audit devices.
    pub audit: Arc<AuditRegistry>,
    /// Mounts, connections, roles, leases.
    pub secrets: Arc<Secrets>,
    /// Rate-limit and lease-count quotas.
    pub quotas: Arc<crate::quotas::Quotas>,
    /// Where `sys/plugins/catalog` finds components named by file.
    pub plugin_dir: Option<std::path::PathBuf>,
}

/// Paths that work while sealed.
const OPEN_WHILE_SEALED: &[&str] = &[
    "/v1/sys/health",
    "/v1/sys/seal-status",
    "/v1/sys/init",
    "/v1/sys/unseal",
];

/// `PUT` and `POST` to one handler: Vault treats them the same.
fn write<H, T>(handler: H) -> axum::routing::MethodRouter<AppState>
where
    H: axum::handler::Handler<T, AppState> + Clone,
    T: 'static,
{
    axum::routing::put(handler.clone()).post(handler)
}

/// The whole API; request bodies must arrive within `body_read_timeout`.
pub fn router(state: AppState, body_read_timeout: std::time::Duration) -> Router {
    Router::new()
        .route("/v1/sys/health", get(sys_lifecycle::health))
        .route(
            "/v1/sys/init",
            get(sys_lifecycle::init_status)
                .put(sys_lifecycle::init)
                .post(sys_lifecycle::init),
        )
        .route("/v1/sys/seal-status", get(sys_lifecycle::seal_status))
        .route(
            "/v1/sys/unseal",
            axum::routing::put(sys_lifecycle::unseal).post(sys_lifecycle::unseal),
        )
        .route(
            "/v1/sys/seal",
            axum::routing::put(sys_lifecycle::seal).post(sys_lifecycle::seal),
        )
        .route(
            "/v1/sys/rotate",
            axum::routing::put(sys_lifecycle::rotate).post(sys_lifecycle::rotate),
        )
        .route("/v1/sys/key-status", get(sys_lifecycle::key_status))
        .route("/v1/auth/token/lookup-self", get(auth_token::lookup_self))
        .route("/v1/auth/token/create", write(auth_token::create))
        .route(
            "/v1/auth/token/create-orphan",
            write(auth_token::create_orphan),
        )
        .route("/v1/auth/token/lookup", write(auth_token::lookup))
        .route(
            "/v1/auth/token/lookup-accessor",
            write(auth_token::lookup_accessor),
        )
        .route("/v1/auth/token/renew", write(auth_token::renew))
        .route("/v1/auth/token/renew-self", write(auth_token::renew_self))
        .route("/v1/auth/token/revoke", write(auth_token::revoke))
        .route("/v1/auth/token/revoke-self", write(auth_token::revoke_self))
        .route(
            "/v1/auth/token/revoke-accessor",
            write(auth_token::revoke_accessor),
        )
        .route("/v1/sys/policies/acl", get(sys_policy::list))
        .route(
            "/v1/sys/policies/acl/{name}",
            get(sys_policy::read)
                .put(sys_policy::write)
                .post(sys_policy::write)
                .delete(sys_policy::delete),
        )
        .route("/v1/sys/policy", get(sys_policy::legacy_list))
        .route(
            "/v1/sys/policy/{name}",
            get(sys_policy::legacy_read)
                .put(sys_policy::write)
                .post(sys_policy::write)
                .delete(sys_policy::delete),
        )
        .route("/v1/sys/audit", get(sys_audit::list))
        .route(
            "/v1/sys/audit/{*path}",
            axum::routing::put(sys_audit::enable)
                .post(sys_audit::enable)
                .delete(sys_audit::disable),
        )
        .route("/v1/sys/audit-hash/{*path}", write(sys_audit::hash))
        .route("/v1/sys/plugins/catalog", get(sys_plugins::catalog))
        .route("/v1/sys/plugins/catalog/{kind}", get(sys_plugins::list))
        .route(
            "/v1/sys/plugins/catalog/{kind}/{name}",
            get(sys_plugins::read)
                .put(sys_plugins::register)
                .post(sys_plugins::register)
                .delete(sys_plugins::deregister),
        )
        .route("/v1/sys/mounts", get(sys_mounts::list))
        .route(
            "/v1/sys/mounts/{*path}",
            get(sys_mounts::read)
                .put(sys_mounts::mount)
                .post(sys_mounts::mount)
                .delete(sys_mounts::unmount),
        )
        .route("/v1/sys/leases", get(sys_leases::irrevocable))
        .route("/v1/sys/leases/count", get(sys_leases::count))
        .route("/v1/sys/leases/renew", write(sys_leases::renew))
        .route(
            "/v1/sys/leases/renew/{*lease_id}",
            write(sys_leases::renew_path),
        )
        .route("/v1/sys/renew", write(sys_leases::renew))
        .route("/v1/sys/renew/{*lease_id}", write(sys_leases::renew_path))
        .route("/v1/sys/leases/revoke", write(sys_leases::revoke))
        .route(
            "/v1/sys/leases/revoke/{*lease_id}",
            write(sys_leases::revoke_path),
        )
        .route("/v1/sys/revoke", write(sys_leases::revoke))
        .route("/v1/sys/revoke/{*lease_id}", write(sys_leases::revoke_path))
        .route(
            "/v1/sys/leases/lookup",
            write(sys_leases::lookup).get(sys_leases::list_root),
        )
        .route("/v1/sys/leases/lookup/{*prefix}", get(sys_leases::list))
        .route(
            "/v1/sys/leases/revoke-prefix/{*prefix}",
            write(sys_leases::revoke_prefix),
        )
        .route(
            "/v1/sys/revoke-prefix/{*prefix}",
            write(sys_leases::revoke_prefix),
        )
        .route(
            "/v1/sys/leases/revoke-force/{*prefix}",
            write(sys_leases::revoke_force),
        )
        .route(
            "/v1/sys/revoke-force/{*prefix}",
            write(sys_leases::revoke_force),
        )
        .route("/v1/sys/metrics", get(sys_leases::metrics))
        .route(
            "/v1/sys/quotas/rate-limit",
            get(sys_quotas::list_rate_limits),
        )
        .route(
            "/v1/sys/quotas/rate-limit/{name}",
            get(sys_quotas::read_rate_limit)
                .put(sys_quotas::write_rate_limit)
                .post(sys_quotas::write_rate_limit)
                .delete(sys_quotas::delete_rate_limit),
        )
        .route(
            "/v1/sys/quotas/lease-count",
            get(sys_quotas::list_lease_counts),
        )
        .route(
            "/v1/sys/quotas/lease-count/{name}",
            get(sys_quotas::read_lease_count)
                .put(sys_quotas::write_lease_count)
                .post(sys_quotas::write_lease_count)
                .delete(sys_quotas::delete_lease_count),
        )
        .fallback(mount_paths::dispatch)
        .method_not_allowed_fallback(method_not_allowed)
        // Innermost first: rate limits (on the caller authorization found),
        // authorization, then audit around it (so denied requests are recorded
        // too), then the sealed gate outside everything.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            sys_quotas::rate_limit,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authorize::authorize,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit_log::audit,
        ))
        .layer(middleware::from_fn_with_state(state.clone(), sealed_gate))
        // Each path's body limit is decided once, in `read_body`.
        .layer(DefaultBodyLimit::disable())
        // Outermost: nothing inside waits on a client's body.
        .layer(middleware::from_fn_with_state(
            body_read_timeout,
            read_body::read_body,
        ))
        .with_state(state)
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        format!("unsupported operation: {method} on this path"),
    )
}

/// While sealed (or not yet activated after an unseal), only the lifecycle
/// endpoints answer.
async fn sealed_gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let open = !state.barrier.is_sealed() && state.secrets.is_active();
    if !open && !OPEN_WHILE_SEALED.contains(&request.uri().path()) {
        return ApiError::sealed().into_response();
    }
    next.run(request).await
}
