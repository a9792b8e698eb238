//! `leasehold server`: opens storage, wires the broker's parts together, has
//! the [`Lifecycle`] unseal when it can, serves the API, and shuts down
//! gracefully on SIGINT or SIGTERM (in-flight requests finish; every
//! acknowledged write is already flushed).

use crate::api::{self, AppState};
use crate::audit::AuditRegistry;
use crate::auth::TokenStore;
use crate::barrier::Barrier;
use crate::catalog::Catalog;
use crate::config::ServerConfig;
use crate::lifecycle::Lifecycle;
use crate::plugin::Runtime;
use crate::policy::PolicyStore;
use crate::quotas::Quotas;
use crate::secrets::{GrantLimits, Secrets};
use crate::storage::RedbStorage;
use crate::wrapping::Wrapping;
use std::sync::Arc;

/// How the server was asked to start.
pub enum Mode {
    /// A config file.
    Configured(Box<ServerConfig>),
    /// `--dev`: storage in a temporary directory, initialized and unsealed with one
    /// share, root token printed. Nothing survives the process.
    Dev {
        /// Address to listen on.
        listen: std::net::SocketAddr,
    },
}

/// Runs the server until a shutdown signal.
pub async fn run(mode: Mode) -> Result<(), String> {
    let (config, _dev_dir) = match mode {
        Mode::Configured(config) => (*config, None),
        Mode::Dev { listen } => {
            let dir = tempfile::Builder::new()
                .prefix("leasehold-dev-")
                .tempdir()
                .map_err(|err| format!("creating the dev data directory: {err}"))?;
            let config = ServerConfig {
                listen,
                data_dir: dir.path().to_owned(),
                storage: Default::default(),
                unseal_key_file: None,
                plugins: Default::default(),
                leases: Default::default(),
                tls: None,
                listener: Default::default(),
                // Dev mode is for trying things out: any directory under the
                // system's temporary directory may be granted.
                grants: crate::config::GrantSettings {
                    directories: vec![std::env::temp_dir()],
                },
                file: None,
            };
            (config, Some(dir))
        }
    };
    let dev = _dev_dir.is_some();
    // Configuration mistakes stop the server before it touches storage.
    let tls = config.tls.as_ref().map(crate::tls::acceptor).transpose()?;
    let scheme = if tls.is_some() { "https" } else { "http" };

    raise_open_file_limit();
    let storage = Arc::new(
        RedbStorage::open(&config.data_dir, config.storage.cache_mb << 20)
            .map_err(|err| err.to_string())?,
    );
    let barrier = Arc::new(Barrier::new(storage));
    let tokens = TokenStore::new(barrier.clone());
    // Cached artifacts are trusted only by their digests in the barrier, and a
    // `--dev` barrier dies with the process: its plugins are compiled each time.
    let cache_dir = (!dev).then(|| config.data_dir.join("plugin-cache"));
    let runtime = Runtime::new(
        config
            .plugins
            .runtime_config(cache_dir.clone(), config.leases.revocation_workers),
    )
    .map_err(|err| format!("starting the plugin runtime: {err}"))?;
    let catalog =
        Arc::new(Catalog::new(barrier.clone(), Arc::new(runtime)).replacing_versions(dev));
    let secrets = Arc::new(Secrets::new(
        barrier.clone(),
        catalog,
        config.leases.clone(),
        grant_limits(&config, cache_dir.as_deref()),
    ));
    let policies = PolicyStore::new(barrier.clone());
    let quotas = Arc::new(Quotas::new(barrier.clone()));
    let audit = Arc::new(AuditRegistry::new(barrier.clone()));
    let wrapping = Wrapping::new(barrier.clone(), tokens.clone());
    let lifecycle = Arc::new(Lifecycle::new(
        barrier.clone(),
        tokens.clone(),
        secrets.clone(),
        wrapping.clone(),
        audit.clone(),
        quotas.clone(),
    ));
    lifecycle.spawn_workers();
    crate::metrics::handle();

    let banner = if dev {
        let initialized = lifecycle.start_dev().await.map_err(|err| err.to_string())?;
        Some((initialized.shares[0].to_base64(), initialized.root_token))
    } else {
        if let Some(path) = &config.unseal_key_file {
            lifecycle
                .unseal_from_file(path)
                .await
                .map_err(|err| err.to_string())?;
        }
        None
    };

    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|err| format!("listening on {}: {err}", config.listen))?;
    let address = listener.local_addr().map_err(|err| err.to_string())?;
    if let Some((share, root_token)) = &banner {
        // The dev banner is for the person at the terminal: stdout, not the log.
        println!(
            "leasehold is running in dev mode: storage in a temporary directory, already unsealed."
        );
        println!();
        println!("    export LEASEHOLD_ADDR={scheme}://{address}");
        println!("    export LEASEHOLD_TOKEN={}", root_token.expose());
        println!();
        println!("Unseal key (one share): {}", share.as_str());
        println!("Root token: {}", root_token.expose());
        println!(
            "Vault clients work too: VAULT_ADDR={scheme}://{address} VAULT_TOKEN=<root token>"
        );
    }
    println!("listening on {scheme}://{address}");

    let app = api::router(
        AppState {
            lifecycle,
            barrier,
            tokens,
            policies,
            audit,
            secrets,
            wrapping,
            quotas,
            plugin_dir: config.plugins.directory.clone(),
        },
        config.listener.body_read_timeout,
    );
    crate::listener::serve(
        listener,
        tls,
        app,
        config.listener.clone(),
        shutdown_signal(),
    )
    .await;
    tracing::info!("shut down");
    Ok(())
}

/// Where directory grants may point: within `[grants] directories`, never on
/// what the broker itself reads or writes.
fn grant_limits(config: &ServerConfig, cache_dir: Option<&std::path::Path>) -> GrantLimits {
    let parent = |file: &std::path::Path| {
        std::path::absolute(file)
            .ok()
            .and_then(|f| f.parent().map(|p| p.to_owned()))
    };
    let mut reserved = vec![(config.data_dir.clone(), "data directory")];
    reserved.extend(cache_dir.map(|dir| (dir.to_owned(), "plugin cache")));
    reserved.extend(
        config
            .plugins
            .directory
            .clone()
            .map(|dir| (dir, "plugin directory")),
    );
    reserved.extend(
        config
            .file
            .as_deref()
            .and_then(parent)
            .map(|dir| (dir, "configuration file's directory")),
    );
    if let Some(tls) = &config.tls {
        for file in [&tls.cert_file, &tls.key_file] {
            reserved.extend(parent(file).map(|dir| (dir, "TLS files' directory")));
        }
    }
    reserved.extend(
        config
            .unseal_key_file
            .as_deref()
            .and_then(parent)
            .map(|dir| (dir, "unseal key file's directory")),
    );
    GrantLimits::new(&config.grants.directories, reserved)
}

/// Raises the soft limit on open files to the hard limit: every client
/// connection and every plugin socket is a descriptor, and the listener's
/// `max_connections` is meant to be the bound, not a default of 1024.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        if let Err(err) = setrlimit(Resource::Nofile, limit) {
            tracing::warn!(error = %err, "could not raise the open-file limit");
        }
    }
}

async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
    tracing::info!("shutdown signal received; finishing in-flight requests");
}
