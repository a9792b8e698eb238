//! `leasehold server`: opens storage, unseals when it can, serves the API, and
//! shuts down gracefully on SIGINT or SIGTERM (in-flight requests finish; every
//! acknowledged write is already flushed).

use crate::api::{self, AppState};
use crate::audit::AuditRegistry;
use crate::auth::TokenStore;
use crate::barrier::{Barrier, UnsealShare};
use crate::catalog::Catalog;
use crate::config::ServerConfig;
use crate::lifecycle::Lifecycle;
use crate::plugin::Runtime;
use crate::policy::PolicyStore;
use crate::secrets::{GrantLimits, Secrets};
use crate::storage::RedbStorage;
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
    let storage = Arc::new(RedbStorage::open(&config.data_dir).map_err(|err| err.to_string())?);
    let barrier = Arc::new(Barrier::new(storage));
    let tokens = TokenStore::new(barrier.clone());
    let lifecycle = Arc::new(Lifecycle::new(barrier.clone(), tokens.clone()));
    // Cached artifacts are trusted only by their digests in the barrier, and a
    // `--dev` barrier dies with the process: its plugins are compiled each time.
    let cache_dir = (!dev).then(|| config.data_dir.join("plugin-cache"));
    let runtime = Runtime::new(
        config
            .plugins
            .runtime_config(cache_dir.clone(), config.leases.revocation_workers),
    )
    .map_err(|err| format!("starting the plugin runtime: {err}"))?;
    let catalog = Arc::new(Catalog::new(barrier.clone(), Arc::new(runtime)));
    let secrets = Arc::new(Secrets::new(
        barrier.clone(),
        catalog,
        config.leases.clone(),
        grant_limits(&config, cache_dir.as_deref()),
    ));
    tokio::spawn(secrets.leases.clone().run_worker());
    tokio::spawn(crate::revocation::run_token_expiry(
        barrier.clone(),
        tokens.clone(),
        secrets.leases.clone(),
    ));
    crate::metrics::handle();

    let banner = if dev {
        let initialized = lifecycle.init(1, 1).await.map_err(|err| err.to_string())?;
        let share = initialized.shares[0].to_base64();
        lifecycle
            .unseal(Some(initialized.shares[0].clone()), false)
            .await
            .map_err(|err| err.to_string())?;
        activate(&secrets).await;
        Some((share, initialized.root_token))
    } else {
        if let Some(path) = &config.unseal_key_file {
            unseal_from_file(&lifecycle, path).await?;
            activate(&secrets).await;
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

    let policies = PolicyStore::new(barrier.clone());
    let quotas = Arc::new(crate::quotas::Quotas::new(barrier.clone()));
    tokio::spawn(sweep_quotas(quotas.clone()));
    let audit = Arc::new(AuditRegistry::new(barrier.clone()));
    let app = api::router(
        AppState {
            lifecycle,
            barrier,
            tokens,
            policies,
            audit,
            secrets,
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

/// What follows every unseal: bundled plugins registered, pending leases of a
/// process that died mid-create revoked. A failure is logged, not fatal: the
/// worker keeps retrying what it could not revoke.
pub async fn activate(secrets: &Secrets) {
    if let Err(err) = secrets.activate().await {
        tracing::error!(error = %err, "after unseal: registering bundled plugins or recovering leases failed");
    }
}

/// Forgets idle rate-limit buckets once a minute, off the request path.
async fn sweep_quotas(quotas: Arc<crate::quotas::Quotas>) {
    loop {
        tokio::time::sleep(std::time::Duration::from_secs(60)).await;
        let quotas = quotas.clone();
        let _ = tokio::task::spawn_blocking(move || quotas.sweep()).await;
    }
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

/// Unseals with the shares in `path`, one per line (hex or base64), for unattended
/// restarts. Weaker than shares held by people: whoever reads the file can unseal.
async fn unseal_from_file(lifecycle: &Lifecycle, path: &std::path::Path) -> Result<(), String> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|err| format!("reading unseal key file {}: {err}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(format!(
                "unseal key file {} may be read or written by others (mode {:o}); it unseals everything: chmod 600 it",
                path.display(),
                mode & 0o777
            ));
        }
    }
    let text = zeroize::Zeroizing::new(
        std::fs::read_to_string(path)
            .map_err(|err| format!("reading unseal key file {}: {err}", path.display()))?,
    );
    let mut status = None;
    for (number, line) in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .enumerate()
    {
        let share = UnsealShare::parse(line).ok_or_else(|| {
            format!(
                "unseal key file {} line {}: not an unseal key share",
                path.display(),
                number + 1
            )
        })?;
        status = Some(
            lifecycle
                .unseal(Some(share), false)
                .await
                .map_err(|err| format!("unsealing with {}: {err}", path.display()))?,
        );
    }
    match status {
        Some(status) if !status.sealed => {
            tracing::info!("unsealed with the unseal key file");
            Ok(())
        }
        _ => Err(format!(
            "unseal key file {} does not hold enough shares to unseal",
            path.display()
        )),
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
