//! Routes as data: what each path serves and what it takes to be served.
//!
//! Every endpoint is declared once, as a [`Route`]: its pattern, the handler of
//! each [`Operation`] it supports, whether it needs `sudo`, whether it answers
//! without a token or while sealed, and which store decides whether a write
//! creates or updates. The router, the sealed gate, authorization and the audit
//! log all read these declarations (through [`Resolved`], which the front
//! middleware attaches to each request), so they cannot disagree about what a
//! request is. An operation a route does not declare is a 405, so a `LIST` is
//! never served by a read handler.

use super::AppState;
use super::response::ApiError;
use crate::policy::Capability;
use crate::secrets::MountEntry;
use axum::extract::Request;
use axum::handler::Handler;
use axum::http::{Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::MethodRouter;
use std::sync::Arc;
use tower::ServiceExt;

/// What a request asks of a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    /// `GET` (and `HEAD`).
    Read,
    /// `LIST`, or `GET ?list=true`.
    List,
    /// `PUT` or `POST`: a create or an update, by whether the object exists.
    Write,
    /// `DELETE`.
    Delete,
}

impl Operation {
    /// The operation of `method` (`list`: the query asked for a list).
    pub fn of(method: &Method, list: bool) -> Option<Self> {
        Some(match method.as_str() {
            "LIST" => Self::List,
            "GET" | "HEAD" if list => Self::List,
            "GET" | "HEAD" => Self::Read,
            "PUT" | "POST" => Self::Write,
            "DELETE" => Self::Delete,
            _ => return None,
        })
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// When a route needs `sudo` besides the operation's own capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sudo {
    /// Never.
    Never,
    /// For every operation (Vault's root-protected paths).
    Always,
    /// Only to list (looking up one lease is open to whoever has its id).
    ToList,
}

/// The store that says whether a write to a route creates or updates: Vault's
/// existence check. Without one, a write needs `update`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existence {
    /// An ACL policy named by `{name}`.
    Policy,
    /// A rate-limit quota named by `{name}`.
    RateLimitQuota,
    /// A lease-count quota named by `{name}`.
    LeaseCountQuota,
    /// A connection of the mount, named by `{name}`.
    Connection,
    /// A role of the mount, named by `{name}`.
    Role,
}

/// What is declared about a route, without its handlers.
#[derive(Debug, Clone)]
pub struct RouteSpec {
    /// The pattern after `/v1/`, `{name}` for a segment, `{*rest}` for the rest.
    pub pattern: &'static str,
    /// Operations served.
    pub operations: Vec<Operation>,
    /// When `sudo` is needed.
    pub sudo: Sudo,
    /// Served without a token.
    pub unauthenticated: bool,
    /// Served while sealed.
    pub while_sealed: bool,
    /// The request's own token may be a response-wrapping token, which is
    /// then what the request is about (unwrap, rewrap): an unknown or expired
    /// one is Vault's 400 "wrapping token is not valid or does not exist",
    /// not a 403.
    pub wrapping_token: bool,
    /// Create or update.
    pub existence: Option<Existence>,
    /// Request fields the audit log records in clear: never secrets, and what
    /// an operator reading the log must see (the grants a request gives).
    /// Every other string is HMAC'd.
    pub in_clear: &'static [&'static str],
}

impl RouteSpec {
    /// A route at `pattern` serving nothing yet.
    pub fn at(pattern: &'static str) -> Self {
        Self {
            pattern,
            operations: Vec::new(),
            sudo: Sudo::Never,
            unauthenticated: false,
            while_sealed: false,
            wrapping_token: false,
            existence: None,
            in_clear: &[],
        }
    }

    /// Serves `operations` too.
    pub fn serves(mut self, operations: &[Operation]) -> Self {
        self.operations.extend_from_slice(operations);
        self
    }

    /// Needs `sudo` for every operation.
    pub fn sudo(mut self) -> Self {
        self.sudo = Sudo::Always;
        self
    }

    /// Needs `sudo` to list.
    pub fn sudo_to_list(mut self) -> Self {
        self.sudo = Sudo::ToList;
        self
    }

    /// Answers anyone, sealed or not (health, init, unseal).
    pub fn open(mut self) -> Self {
        self.unauthenticated = true;
        self.while_sealed = true;
        self
    }

    /// Answers anyone, but only while unsealed (Vault's unauthenticated
    /// paths that read the barrier: `sys/wrapping/lookup`).
    pub fn without_token(mut self) -> Self {
        self.unauthenticated = true;
        self
    }

    /// See [`RouteSpec::wrapping_token`].
    pub fn takes_wrapping_token(mut self) -> Self {
        self.wrapping_token = true;
        self
    }

    /// Writes create or update by what `store` holds.
    pub fn existence(mut self, store: Existence) -> Self {
        self.existence = Some(store);
        self
    }

    /// Records `fields` of the request in clear in the audit log.
    pub fn in_clear(mut self, fields: &'static [&'static str]) -> Self {
        self.in_clear = fields;
        self
    }

    /// Whether `operation` here needs `sudo`.
    pub fn needs_sudo(&self, operation: Operation) -> bool {
        match self.sudo {
            Sudo::Never => false,
            Sudo::Always => true,
            Sudo::ToList => operation == Operation::List,
        }
    }
}

/// A route with its handlers.
pub struct Route {
    /// What is declared.
    pub spec: RouteSpec,
    handlers: [Option<MethodRouter<AppState>>; 4],
}

impl Route {
    /// A route at `pattern` serving nothing yet.
    pub fn at(pattern: &'static str) -> Self {
        Self {
            spec: RouteSpec::at(pattern),
            handlers: Default::default(),
        }
    }

    fn serve<H, T>(mut self, operation: Operation, handler: H) -> Self
    where
        H: Handler<T, AppState>,
        T: 'static,
    {
        self.spec.operations.push(operation);
        self.handlers[operation.index()] = Some(axum::routing::any(handler));
        self
    }

    /// `handler` reads.
    pub fn read<H: Handler<T, AppState>, T: 'static>(self, handler: H) -> Self {
        self.serve(Operation::Read, handler)
    }

    /// `handler` lists.
    pub fn list<H: Handler<T, AppState>, T: 'static>(self, handler: H) -> Self {
        self.serve(Operation::List, handler)
    }

    /// `handler` writes.
    pub fn write<H: Handler<T, AppState>, T: 'static>(self, handler: H) -> Self {
        self.serve(Operation::Write, handler)
    }

    /// `handler` deletes.
    pub fn delete<H: Handler<T, AppState>, T: 'static>(self, handler: H) -> Self {
        self.serve(Operation::Delete, handler)
    }

    /// See [`RouteSpec::sudo`].
    pub fn sudo(mut self) -> Self {
        self.spec = self.spec.sudo();
        self
    }

    /// See [`RouteSpec::sudo_to_list`].
    pub fn sudo_to_list(mut self) -> Self {
        self.spec = self.spec.sudo_to_list();
        self
    }

    /// See [`RouteSpec::open`].
    pub fn open(mut self) -> Self {
        self.spec = self.spec.open();
        self
    }

    /// See [`RouteSpec::without_token`].
    pub fn without_token(mut self) -> Self {
        self.spec = self.spec.without_token();
        self
    }

    /// See [`RouteSpec::wrapping_token`].
    pub fn takes_wrapping_token(mut self) -> Self {
        self.spec = self.spec.takes_wrapping_token();
        self
    }

    /// See [`RouteSpec::existence`].
    pub fn existence(mut self, store: Existence) -> Self {
        self.spec = self.spec.existence(store);
        self
    }

    /// See [`RouteSpec::in_clear`].
    pub fn in_clear(mut self, fields: &'static [&'static str]) -> Self {
        self.spec = self.spec.in_clear(fields);
        self
    }

    /// The service that hands a request to its operation's handler. The
    /// operation was decided (and checked against the route) before routing.
    pub fn into_service(self, state: &AppState) -> MethodRouter<AppState> {
        let handlers: Arc<[Option<MethodRouter<()>>; 4]> = Arc::new(
            self.handlers
                .map(|handler| handler.map(|h| h.with_state(state.clone()))),
        );
        axum::routing::any(move |request: Request| async move {
            let operation = request.extensions().get::<Resolved>().map(|r| r.operation);
            match operation.and_then(|op| handlers[op.index()].clone()) {
                Some(handler) => handler.oneshot(request).await.into_response(),
                None => ApiError::internal("a request reached a route it was not resolved to")
                    .into_response(),
            }
        })
    }
}

/// A pattern's named segments and their values.
pub type Params = Vec<(String, String)>;

/// A request's place in the routes, decided once before anything reads it.
#[derive(Debug, Clone)]
pub struct Resolved {
    /// The canonical path (after `/v1/`).
    pub path: String,
    /// The route it matched.
    pub route: Arc<RouteSpec>,
    /// What it asks.
    pub operation: Operation,
    /// The pattern's named segments.
    pub params: Params,
    /// For a path under a mount: the mount (`path` still includes its prefix).
    pub mount: Option<MountEntry>,
    /// The route does not serve the operation: 405, but only once the caller
    /// is authorized, so an anonymous client cannot learn which mounts exist.
    pub unsupported: bool,
}

impl Resolved {
    /// The value of the pattern's `{name}`.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// The capability the request needs: `create` or `update` for a write, by
    /// whether the route's object exists.
    pub async fn capability(&self, state: &AppState) -> Result<Capability, ApiError> {
        Ok(match self.operation {
            Operation::Read => Capability::Read,
            Operation::List => Capability::List,
            Operation::Delete => Capability::Delete,
            Operation::Write => match self.route.existence {
                Some(store) if !self.exists(state, store).await? => Capability::Create,
                _ => Capability::Update,
            },
        })
    }

    async fn exists(&self, state: &AppState, store: Existence) -> Result<bool, ApiError> {
        let Some(name) = self.param("name") else {
            return Ok(false);
        };
        let uuid = self.mount.as_ref().map(|m| m.uuid.as_str()).unwrap_or("");
        Ok(match store {
            Existence::Policy => state.policies.read(name).await?.is_some(),
            Existence::RateLimitQuota => state.quotas.rate_limit(name).await?.is_some(),
            Existence::LeaseCountQuota => state.quotas.lease_count(name).await?.is_some(),
            Existence::Connection => state.secrets.data.connection(uuid, name).await?.is_some(),
            Existence::Role => state.secrets.data.role(uuid, name).await?.is_some(),
        })
    }
}

/// Routes matched by pattern.
pub struct Matcher {
    router: matchit::Router<Arc<RouteSpec>>,
}

impl Matcher {
    /// A matcher over `specs`. Panics on a pattern the table got wrong (two
    /// routes for one path), which no request could fix.
    pub fn new(specs: impl IntoIterator<Item = RouteSpec>) -> Self {
        let mut router = matchit::Router::new();
        for spec in specs {
            let pattern = spec.pattern;
            router
                .insert(pattern, Arc::new(spec))
                .unwrap_or_else(|err| panic!("route `{pattern}`: {err}"));
        }
        Self { router }
    }

    /// The route of `path` and its named segments.
    pub fn find(&self, path: &str) -> Option<(Arc<RouteSpec>, Params)> {
        let matched = self.router.at(path).ok()?;
        let params = matched
            .params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Some((matched.value.clone(), params))
    }
}

/// 405 for an operation a route does not serve.
pub fn unsupported(method: &Method, operation: Operation) -> ApiError {
    let what = match operation {
        Operation::List => "LIST".to_owned(),
        _ => method.to_string(),
    };
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!("unsupported operation: {what} on this path"),
    )
}
