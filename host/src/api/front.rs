//! The first thing every request meets after its body is read: its one
//! canonical path, its route and operation ([`Resolved`]), and the sealed gate.
//!
//! Runs before routing, so the router, authorization, the audit log and the
//! handlers all see the canonical path this module wrote back into the URI.

use super::AppState;
use super::canonical::{canonical, to_uri_path};
use super::response::ApiError;
use super::routes::{Matcher, Operation, Resolved, RouteSpec};
use axum::extract::{Request, State};
use axum::http::uri::PathAndQuery;
use axum::http::{Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// The declared routes: the broker's own, and those under every mount.
pub struct Routes {
    /// `sys/…` and `auth/token/…`.
    pub system: Matcher,
    /// Relative to a mount (`config/{name}`, `creds/{name}`, …).
    pub mount: Matcher,
    /// What a path no route serves resolves to: it is authorized like any
    /// other (so a caller without access learns only 403, as from Vault, not
    /// which paths exist), then answered 404.
    pub unknown: Arc<RouteSpec>,
}

/// The middleware's state.
#[derive(Clone)]
pub struct Front {
    /// The API's state.
    pub state: AppState,
    /// The routes.
    pub routes: Arc<Routes>,
}

/// Longest path and query accepted (Vault's clients never come close).
const MAX_URI_BYTES: usize = 8 << 10;

fn asked_for_list(query: Option<&str>) -> bool {
    query.is_some_and(|q| q.split('&').any(|pair| pair == "list=true"))
}

/// The middleware.
pub async fn front(State(front): State<Front>, mut request: Request, next: Next) -> Response {
    let (uri, method) = (request.uri().clone(), request.method().clone());
    match resolve(&front, &uri, &method).await {
        Ok(resolved) => {
            let path = to_uri_path(&resolved.path);
            let rewritten = match request.uri().query() {
                Some(query) => format!("{path}?{query}"),
                None => path,
            };
            let mut parts = request.uri().clone().into_parts();
            let Ok(path_and_query) = rewritten.parse::<PathAndQuery>() else {
                return ApiError::bad_request("invalid request path").into_response();
            };
            parts.path_and_query = Some(path_and_query);
            match axum::http::Uri::from_parts(parts) {
                Ok(uri) => *request.uri_mut() = uri,
                Err(_) => return ApiError::bad_request("invalid request path").into_response(),
            }
            // Axum routes standard methods only; the operation is already known.
            if request.method().as_str() == "LIST" {
                *request.method_mut() = Method::GET;
            }
            request.extensions_mut().insert(resolved);
            next.run(request).await
        }
        // A path refused for its spelling is an attack signal: audited like a
        // request refused for its token, with the path as sent (it is at
        // most `MAX_URI_BYTES`) and no body.
        Err(err) if err.status() == axum::http::StatusCode::BAD_REQUEST => {
            match Operation::of(&method, asked_for_list(uri.query())) {
                Some(operation) => {
                    let refused = Resolved {
                        path: uri.path().to_owned(),
                        route: front.routes.unknown.clone(),
                        operation,
                        params: Vec::new(),
                        mount: None,
                        unsupported: false,
                    };
                    let (parts, _) = request.into_parts();
                    super::audit_log::record_refused(&front.state, &parts, &refused, err).await
                }
                None => err.into_response(),
            }
        }
        Err(err) => err.into_response(),
    }
}

async fn resolve(front: &Front, uri: &Uri, method: &Method) -> Result<Resolved, ApiError> {
    let raw = uri.path();
    if uri.path_and_query().map_or(0, |p| p.as_str().len()) > MAX_URI_BYTES {
        return Err(ApiError::new(
            axum::http::StatusCode::URI_TOO_LONG,
            format!("the request path and query are longer than {MAX_URI_BYTES} bytes"),
        ));
    }
    let Some(rest) = raw.strip_prefix("/v1/") else {
        return Err(ApiError::no_route(raw));
    };
    let path = canonical(rest).map_err(|refused| ApiError::bad_request(refused.to_string()))?;
    let operation = Operation::of(method, asked_for_list(uri.query())).ok_or_else(|| {
        ApiError::new(
            axum::http::StatusCode::METHOD_NOT_ALLOWED,
            format!("unsupported method {method}"),
        )
    })?;
    let state = &front.state;
    let open = !state.barrier.is_sealed() && state.secrets.is_active();
    let system = front.routes.system.find(&path);
    if !open && !system.as_ref().is_some_and(|(route, _)| route.while_sealed) {
        return Err(ApiError::sealed());
    }
    let under_mount = match system {
        Some(_) => None,
        None => match state.secrets.resolve(&path).await? {
            Some((mount, rest)) => front
                .routes
                .mount
                .find(&rest)
                .map(|(route, params)| (route, params, mount)),
            None => None,
        },
    };
    let (route, params, mount) = match (system, under_mount) {
        (Some((route, params)), _) => (route, params, None),
        (None, Some((route, params, mount))) => (route, params, Some(mount)),
        (None, None) => (front.routes.unknown.clone(), Vec::new(), None),
    };
    // `HEAD` runs a read handler and drops its body: only for the open
    // status routes, never for a read that does something (a credential).
    let head_refused = method == Method::HEAD && !route.unauthenticated;
    let unsupported = head_refused || !route.operations.contains(&operation);
    if unsupported && route.unauthenticated {
        return Err(super::routes::unsupported(method, operation));
    }
    Ok(Resolved {
        path,
        route,
        operation,
        params,
        mount,
        unsupported,
    })
}
