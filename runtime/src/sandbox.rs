//! The state of one sandboxed call: everything a plugin instance can touch.
//!
//! Built fresh for every call from the mount's [`Grants`] and dropped with the
//! call, so nothing survives from one lease to the next. Nothing is inherited from
//! the host: no environment variables, no arguments, an empty stdin, captured
//! stdout and stderr, at most one directory, and sockets, connections and HTTP
//! only through the checks in [`super::grants`], [`super::connections`] and
//! [`super::egress`]. Only connections a plugin explicitly keeps outlive the call.

use super::PluginError;
use super::connections::{CallConnections, PoolScope};
use super::denials::DenialLog;
use super::egress::HttpEgress;
use super::grants::{Grants, ResolvedGrants, SocketDecision};
use super::http_clients::HttpClients;
use super::output::PluginOutput;
use rustix::fd::AsRawFd;
use rustix::fs::{Mode, OFlags, ResolveFlags};
use std::sync::Arc;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::sockets::SocketAddrUse;
use wasmtime_wasi::{FsPerms, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// Handles (streams, sockets, pollables, HTTP requests...) one instance may
/// hold at once; a Rust plugin uses a few dozen. wasmtime's own default is a
/// million, each a host allocation.
const MAX_HANDLES: usize = 4096;

/// The store data of one call.
pub(crate) struct Sandbox {
    wasi: WasiCtx,
    http: WasiHttpCtx,
    egress: HttpEgress,
    table: ResourceTable,
    pub(crate) memory: MemoryLimiter,
    pub(crate) output: PluginOutput,
    pub(crate) grants: Arc<ResolvedGrants>,
    pub(crate) denials: DenialLog,
    /// Sockets created so far in this call (see `socket_limit`), including
    /// the connections it opened through `connections`.
    pub(crate) sockets_created: u32,
    /// Connections the host holds for the plugin (contract 0.2.0 and later).
    pub(crate) connections: CallConnections,
}

/// Who a call runs for, for logs and denials.
#[derive(Debug, Clone)]
pub(crate) struct CallLabels {
    pub(crate) plugin: Arc<str>,
    pub(crate) mount: Arc<str>,
}

impl Sandbox {
    /// Builds the sandbox for one call.
    pub(crate) async fn build(
        grants: &Grants,
        labels: CallLabels,
        memory_limit: usize,
        pool: Option<PoolScope>,
        http_clients: Arc<HttpClients>,
    ) -> Result<Self, PluginError> {
        let resolved = Arc::new(grants.resolve().await);
        let denials = DenialLog::new(labels.plugin.clone(), labels.mount.clone());
        let labels_mount = labels.mount.clone();
        let output = PluginOutput::new(labels.plugin, labels.mount);

        let mut wasi = WasiCtxBuilder::new();
        wasi.stdout(output.stdout.clone())
            .stderr(output.stderr.clone());
        if let Some(dir) = grants.granted_directory() {
            // The directory was checked as this exact path, symlinks resolved.
            // Opened without following any symlink, it is that directory or
            // nothing; the preopen then goes through the open descriptor, so
            // a symlink swapped onto the path in between cannot redirect it.
            let opened = rustix::fs::openat2(
                rustix::fs::CWD,
                dir,
                OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
                Mode::empty(),
                ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS,
            )
            .map_err(|err| {
                PluginError::Sandbox(format!(
                    "opening the granted directory {}: {err}",
                    dir.display()
                ))
            })?;
            let through = format!("/proc/self/fd/{}", opened.as_raw_fd());
            wasi.preopened_dir(&through, "/", FsPerms::ReadWrite)
                .map_err(|err| {
                    PluginError::Sandbox(format!("opening the granted directory: {err}"))
                })?;
        }
        // With a TCP grant, TCP is on so that every attempt reaches the address
        // check below, which denies (and records) anything not granted. Without
        // one, creating a socket is refused outright: no descriptor is made. UDP
        // has no grant form.
        wasi.allow_tcp(grants.grants_tcp()).allow_udp(false);
        // Lookups are answered by `name_lookup` from the resolved grants, never by DNS.
        wasi.allow_ip_name_lookup(false);
        let (check_grants, check_denials) = (resolved.clone(), denials.clone());
        wasi.socket_addr_check(move |addr, use_| {
            let decision = match use_ {
                SocketAddrUse::TcpConnect => check_grants.tcp_connect(addr),
                SocketAddrUse::TcpBind => check_grants.tcp_bind(addr),
                _ => SocketDecision::Deny,
            };
            if decision == SocketDecision::Deny {
                let what = match use_ {
                    SocketAddrUse::TcpConnect => format!("TCP connect to {addr}"),
                    SocketAddrUse::TcpBind => format!("TCP bind to {addr}"),
                    other => format!("{other:?} on {addr}"),
                };
                check_denials.record(what);
            }
            Box::pin(async move { decision == SocketDecision::Allow })
        });

        Ok(Self {
            wasi: wasi.build(),
            http: WasiHttpCtx::new(),
            egress: HttpEgress {
                grants: resolved.clone(),
                denials: denials.clone(),
                sent: 0,
                clients: http_clients,
                mount: labels_mount,
            },
            table: {
                let mut table = ResourceTable::new();
                table.set_max_capacity(MAX_HANDLES);
                table
            },
            memory: MemoryLimiter::new(memory_limit),
            output,
            connections: CallConnections::new(resolved.clone(), denials.clone(), pool),
            grants: resolved,
            denials,
            sockets_created: 0,
        })
    }
}

impl Sandbox {
    /// The resource table, for host functions defined outside wasmtime-wasi.
    pub(crate) fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

impl WasiView for Sandbox {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl WasiHttpView for Sandbox {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.egress,
        }
    }
}

/// Caps the total linear memory of one instance and remembers whether the plugin
/// ran into the cap, so the call reports a memory limit rather than a crash.
pub(crate) struct MemoryLimiter {
    limit: usize,
    in_use: usize,
    pub(crate) exceeded: bool,
}

impl MemoryLimiter {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            in_use: 0,
            exceeded: false,
        }
    }
}

/// Most table elements one instance may have; Rust components use a few hundred.
const MAX_TABLE_ELEMENTS: usize = 100_000;

impl MemoryLimiter {
    /// The limit in force, in bytes.
    pub(crate) fn limit(&self) -> usize {
        self.limit
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let after = self.in_use - current.min(self.in_use) + desired;
        if after > self.limit {
            self.exceeded = true;
            return Ok(false);
        }
        self.in_use = after;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}
