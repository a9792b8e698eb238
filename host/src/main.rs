//! The `leasehold` command: the server, and (as it grows) the CLI that talks to it.

use clap::{Parser, Subcommand};
use leasehold_host::config::ServerConfig;
use leasehold_host::server::{self, Mode};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "leasehold",
    version,
    about = "A dynamic-secrets broker with sandboxed WebAssembly plugins"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs the broker.
    Server {
        /// Development mode: temporary storage, initialized, unsealed, root token
        /// printed. Never for real secrets.
        #[arg(long, conflicts_with = "config")]
        dev: bool,
        /// Path of leasehold.toml.
        #[arg(long, required_unless_present = "dev")]
        config: Option<PathBuf>,
        /// Address to listen on (overrides the config; `--dev` default 127.0.0.1:8200).
        #[arg(long)]
        listen: Option<SocketAddr>,
    },
    /// Audit log tools.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Checks the hash chain of an audit file and reports the first broken link.
    Verify {
        /// The audit file.
        file: PathBuf,
    },
}

fn verify_audit_file(file: &std::path::Path) -> Result<(), String> {
    let text = std::fs::read_to_string(file)
        .map_err(|err| format!("reading {}: {err}", file.display()))?;
    let entries =
        leasehold_host::audit::verify(&text).map_err(|err| format!("{}: {err}", file.display()))?;
    println!("{}: {entries} entries, chain intact", file.display());
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEASEHOLD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: starting the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let result = match cli.command {
        Command::Audit {
            command: AuditCommand::Verify { file },
        } => verify_audit_file(&file),
        Command::Server {
            dev,
            config,
            listen,
        } => {
            let mode = if dev {
                Ok(Mode::Dev {
                    listen: listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8200))),
                })
            } else {
                let path = config.expect("clap requires --config without --dev");
                ServerConfig::load(&path).map(|mut config| {
                    if let Some(listen) = listen {
                        config.listen = listen;
                    }
                    Mode::Configured(config)
                })
            };
            match mode {
                Ok(mode) => runtime.block_on(server::run(mode)),
                Err(err) => Err(err),
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}
