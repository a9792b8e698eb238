//! The HTTP API: Vault's wire format for the subset leasehold serves.
//!
//! The only module that knows HTTP. Every request passes, in order: its body
//! read within limits ([`read_body`]); its one canonical path, route and
//! operation, and the sealed gate ([`front`], from the table in
//! [`system_routes`] and [`mount_paths::routes`]); authorization
//! ([`authorize`]); its JSON body parsed once ([`body`]); the audit log
//! ([`audit_log`]); response wrapping ([`wrap_response`]); rate limits; then
//! its handler. Conventions for every
//! endpoint: Vault's envelope and `{"errors": [...]}` ([`response`]), `POST` the
//! same as `PUT`, 404 and 405 with a JSON body, and 503 for everything but the
//! lifecycle endpoints while sealed.

mod audit_log;
mod auth_token;
mod authorize;
pub mod body;
mod canonical;
mod duration;
mod errors;
mod front;
mod mount_paths;
mod query;
mod read_body;
pub mod response;
mod routes;
mod sys_audit;
mod sys_capabilities;
mod sys_grants;
mod sys_leases;
mod sys_lifecycle;
mod sys_mounts;
mod sys_plugins;
mod sys_policy;
mod sys_quotas;
mod sys_wrapping;
mod wrap_response;

use crate::audit::AuditRegistry;
use crate::auth::TokenStore;
use crate::barrier::Barrier;
use crate::lifecycle::Lifecycle;
use crate::policy::PolicyStore;
use crate::secrets::Secrets;
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use routes::{Existence, Matcher, Route};
pub use routes::{Operation, RouteSpec};
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
    /// Wrapped responses.
    pub wrapping: crate::wrapping::Wrapping,
    /// Rate-limit and lease-count quotas.
    pub quotas: Arc<crate::quotas::Quotas>,
    /// Where `sys/plugins/catalog` finds components named by file.
    pub plugin_dir: Option<std::path::PathBuf>,
}

impl AppState {
    /// What revokes a token with its children, leases and wrapped responses.
    pub fn revoker(&self) -> crate::revocation::Revoker {
        crate::revocation::Revoker {
            tokens: self.tokens.clone(),
            leases: self.secrets.leases.clone(),
            wrapping: self.wrapping.clone(),
        }
    }
}

/// Every route of the broker's own (`sys/…`, `auth/token/…`). Paths under a
/// mount are declared by [`mount_paths::routes`].
fn system_routes() -> Vec<Route> {
    use sys_leases as leases;
    vec![
        Route::at("sys/health").read(sys_lifecycle::health).open(),
        Route::at("sys/init")
            .read(sys_lifecycle::init_status)
            .write(sys_lifecycle::init)
            .open(),
        Route::at("sys/seal-status")
            .read(sys_lifecycle::seal_status)
            .open(),
        Route::at("sys/unseal").write(sys_lifecycle::unseal).open(),
        Route::at("sys/leader").read(sys_lifecycle::leader).open(),
        Route::at("sys/seal").write(sys_lifecycle::seal).sudo(),
        Route::at("sys/rotate").write(sys_lifecycle::rotate).sudo(),
        // OpenBao 2.x's `bao operator rotate` calls this one.
        Route::at("sys/rotate/keyring")
            .write(sys_lifecycle::rotate)
            .sudo(),
        Route::at("sys/capabilities-self").write(sys_capabilities::of_self),
        Route::at("sys/capabilities").write(sys_capabilities::of_token),
        Route::at("sys/capabilities-accessor").write(sys_capabilities::of_accessor),
        Route::at("sys/key-status").read(sys_lifecycle::key_status),
        Route::at("auth/token/lookup-self").read(auth_token::lookup_self),
        Route::at("auth/token/create").write(auth_token::create),
        Route::at("auth/token/create-orphan").write(auth_token::create_orphan),
        Route::at("auth/token/lookup").write(auth_token::lookup),
        Route::at("auth/token/lookup-accessor").write(auth_token::lookup_accessor),
        Route::at("auth/token/renew").write(auth_token::renew),
        Route::at("auth/token/renew-self").write(auth_token::renew_self),
        Route::at("auth/token/revoke").write(auth_token::revoke),
        Route::at("auth/token/revoke-self").write(auth_token::revoke_self),
        Route::at("auth/token/revoke-accessor").write(auth_token::revoke_accessor),
        Route::at("sys/policies/acl").list(sys_policy::list),
        Route::at("sys/policies/acl/{name}")
            .read(sys_policy::read)
            .write(sys_policy::write)
            .delete(sys_policy::delete)
            .existence(Existence::Policy),
        Route::at("sys/policy")
            .read(sys_policy::legacy_list)
            .list(sys_policy::list),
        Route::at("sys/policy/{name}")
            .read(sys_policy::legacy_read)
            .write(sys_policy::write)
            .delete(sys_policy::delete)
            .existence(Existence::Policy),
        Route::at("sys/audit").read(sys_audit::list).sudo(),
        Route::at("sys/audit/{*path}")
            .write(sys_audit::enable)
            .delete(sys_audit::disable)
            .sudo(),
        Route::at("sys/audit-hash/{*path}").write(sys_audit::hash),
        Route::at("sys/audit-verify/{*path}")
            .read(sys_audit::verify)
            .sudo(),
        Route::at("sys/plugins/catalog")
            .read(sys_plugins::catalog)
            .sudo(),
        Route::at("sys/plugins/catalog/{kind}")
            .list(sys_plugins::list)
            .sudo(),
        Route::at("sys/plugins/catalog/{kind}/{name}")
            .read(sys_plugins::read)
            .write(sys_plugins::register)
            .delete(sys_plugins::deregister)
            .sudo(),
        Route::at("sys/plugins/reload/backend")
            .write(sys_plugins::reload)
            .sudo()
            .in_clear(&["plugin", "mounts", "scope"]),
        Route::at("sys/mounts").read(sys_mounts::list),
        Route::at("sys/mounts/{*path}")
            .read(sys_mounts::read)
            .write(sys_mounts::mount)
            .delete(sys_mounts::unmount)
            .in_clear(&["type", "plugin_name", "plugin_version"]),
        Route::at("sys/grants/{*path}")
            .read(sys_grants::read)
            .write(sys_grants::write)
            .sudo()
            .in_clear(sys_grants::GRANT_FIELDS),
        Route::at("sys/leases").read(leases::irrevocable).sudo(),
        Route::at("sys/leases/count").read(leases::count),
        Route::at("sys/leases/renew").write(leases::renew),
        Route::at("sys/leases/renew/{*lease_id}").write(leases::renew_path),
        Route::at("sys/renew").write(leases::renew),
        Route::at("sys/renew/{*lease_id}").write(leases::renew_path),
        Route::at("sys/leases/revoke").write(leases::revoke),
        Route::at("sys/leases/revoke/{*lease_id}").write(leases::revoke_path),
        Route::at("sys/revoke").write(leases::revoke),
        Route::at("sys/revoke/{*lease_id}").write(leases::revoke_path),
        Route::at("sys/leases/lookup")
            .write(leases::lookup)
            .list(leases::list_root)
            .sudo_to_list(),
        Route::at("sys/leases/lookup/{*prefix}")
            .list(leases::list)
            .sudo(),
        Route::at("sys/leases/revoke-prefix/{*prefix}")
            .write(leases::revoke_prefix)
            .sudo(),
        Route::at("sys/revoke-prefix/{*prefix}")
            .write(leases::revoke_prefix)
            .sudo(),
        Route::at("sys/leases/revoke-force/{*prefix}")
            .write(leases::revoke_force)
            .sudo(),
        Route::at("sys/revoke-force/{*prefix}")
            .write(leases::revoke_force)
            .sudo(),
        Route::at("sys/metrics").read(leases::metrics),
        Route::at("sys/wrapping/wrap").write(sys_wrapping::wrap),
        Route::at("sys/wrapping/unwrap")
            .write(sys_wrapping::unwrap)
            .takes_wrapping_token(),
        Route::at("sys/wrapping/lookup")
            .read(sys_wrapping::lookup)
            .write(sys_wrapping::lookup)
            .without_token(),
        Route::at("sys/wrapping/rewrap")
            .write(sys_wrapping::rewrap)
            .takes_wrapping_token(),
        Route::at("sys/quotas/rate-limit").list(sys_quotas::list_rate_limits),
        Route::at("sys/quotas/rate-limit/{name}")
            .read(sys_quotas::read_rate_limit)
            .write(sys_quotas::write_rate_limit)
            .delete(sys_quotas::delete_rate_limit)
            .existence(Existence::RateLimitQuota),
        Route::at("sys/quotas/lease-count").list(sys_quotas::list_lease_counts),
        Route::at("sys/quotas/lease-count/{name}")
            .read(sys_quotas::read_lease_count)
            .write(sys_quotas::write_lease_count)
            .delete(sys_quotas::delete_lease_count)
            .existence(Existence::LeaseCountQuota),
    ]
}

/// What the broker's own routes declare (the table [`router`] serves).
pub fn declared_routes() -> Vec<RouteSpec> {
    system_routes()
        .into_iter()
        .map(|route| route.spec)
        .collect()
}

/// What the routes under every mount declare, relative to the mount.
pub fn declared_mount_routes() -> Vec<RouteSpec> {
    mount_paths::routes()
        .into_iter()
        .map(|route| route.spec)
        .collect()
}

/// The whole API; request bodies must arrive within `body_read_timeout`.
pub fn router(state: AppState, body_read_timeout: std::time::Duration) -> Router {
    let mut inner = Router::new();
    let mut specs = Vec::new();
    for route in system_routes() {
        specs.push(route.spec.clone());
        let pattern = format!("/v1/{}", route.spec.pattern);
        inner = inner.route(&pattern, route.into_service(&state));
    }
    let routes = Arc::new(front::Routes {
        system: Matcher::new(specs),
        mount: Matcher::new(declared_mount_routes()),
        unknown: Arc::new(RouteSpec::at("").serves(&[
            Operation::Read,
            Operation::List,
            Operation::Write,
            Operation::Delete,
        ])),
    });
    let inner = inner
        .fallback({
            let mount_routes = mount_paths::MountRoutes::new(&state);
            move |request: axum::extract::Request| mount_routes.dispatch(request)
        })
        // Innermost first: a use of a use-limited token taken (only for a request
        // that reaches its handler), rate limits (on the caller authorization found),
        // response wrapping (inside the audit log, which records the wrapped
        // response, never the original), the audit log (which sees the body
        // as the handler will), the body parsed once, then authorization
        // outside them, so a request without a valid token is recorded
        // without its body and costs nothing more.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authorize::spend_use,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            sys_quotas::rate_limit,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            wrap_response::wrap,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            audit_log::audit,
        ))
        .layer(middleware::from_fn(body::parse_once))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            authorize::authorize,
        ))
        .with_state(state.clone());
    // The canonical path is written into the URI before routing, so this
    // wraps the router rather than being one of its layers.
    Router::new()
        .fallback_service(inner)
        .layer(middleware::from_fn_with_state(
            front::Front {
                state: state.clone(),
                routes,
            },
            front::front,
        ))
        // Each path's body limit is decided once, in `read_body`.
        .layer(DefaultBodyLimit::disable())
        // Outermost: nothing inside waits on a client's body.
        .layer(middleware::from_fn_with_state(
            (body_read_timeout, state),
            read_body::read_body,
        ))
}
