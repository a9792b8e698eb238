//! The `leasehold` command line: the server, and the verbs that talk to one.
//!
//! Everything but `server` and `audit verify` is an HTTP client of a running
//! server at `LEASEHOLD_ADDR` (or `VAULT_ADDR`) with `LEASEHOLD_TOKEN` (or
//! `VAULT_TOKEN`). Flags may be written Vault's way, with one dash
//! (`-format=json`).

mod client;
mod output;
mod plugin_new;

use crate::config::ServerConfig;
use crate::server::{self, Mode};
use clap::{Parser, Subcommand};
use client::Client;
use output::Format;
use serde_json::{Map, Value, json};
use std::io::Read;
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
    /// Output format for commands that print a response.
    #[arg(long, global = true, value_enum, default_value = "table")]
    format: Format,
    /// Prints only this field of the answer, raw (as `bao -field=NAME`): from
    /// its data, or its auth for token commands (`token`, `token_accessor`…).
    #[arg(long, global = true)]
    field: Option<String>,
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
    /// Initializes, unseals, seals, rotates.
    Operator {
        #[command(subcommand)]
        command: OperatorCommand,
    },
    /// Shows whether the server is initialized and sealed (exit 2 when sealed).
    Status,
    /// Creates, looks up, renews and revokes tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Writes, reads, lists and deletes ACL policies.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Audit devices and the audit file.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Registers, lists, describes and deregisters plugins in the catalog.
    Plugin {
        #[command(subcommand)]
        command: PluginCommand,
    },
    /// Mounts plugins at paths: enable, list, disable.
    Secrets {
        #[command(subcommand)]
        command: SecretsCommand,
    },
    /// Looks up, renews and revokes leases.
    Lease {
        #[command(subcommand)]
        command: LeaseCommand,
    },
    /// Reads a path.
    Read { path: String },
    /// Writes `key=value` pairs (`key=@file` reads a file) to a path.
    Write { path: String, pairs: Vec<String> },
    /// Lists keys under a path.
    List { path: String },
    /// Deletes a path.
    Delete { path: String },
}

#[derive(Subcommand)]
enum OperatorCommand {
    /// Initializes a new server: prints the unseal key shares and root token once.
    Init {
        #[arg(long, default_value_t = 5)]
        key_shares: u8,
        #[arg(long, default_value_t = 3)]
        key_threshold: u8,
    },
    /// Submits one unseal key share (read from stdin when not given).
    Unseal {
        key: Option<String>,
        /// Discards the shares submitted so far.
        #[arg(long)]
        reset: bool,
    },
    /// Seals the server.
    Seal,
    /// Installs a new data encryption key.
    Rotate,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Creates a child token (or an orphan).
    Create {
        #[arg(long = "policy")]
        policies: Vec<String>,
        #[arg(long)]
        ttl: Option<String>,
        #[arg(long)]
        explicit_max_ttl: Option<String>,
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        orphan: bool,
        #[arg(long)]
        renewable: Option<bool>,
    },
    /// Looks up a token (the caller's own when none is given).
    Lookup {
        token: Option<String>,
        /// The argument is an accessor.
        #[arg(long)]
        accessor: bool,
    },
    /// Renews a token (the caller's own when none is given).
    Renew {
        token: Option<String>,
        #[arg(long)]
        increment: Option<String>,
    },
    /// Revokes a token and its children.
    Revoke {
        token: Option<String>,
        /// Revoke the caller's own token.
        #[arg(long = "self")]
        own: bool,
        /// The argument is an accessor.
        #[arg(long)]
        accessor: bool,
    },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Writes a policy from a file (`-` for stdin).
    Write { name: String, file: String },
    /// Prints a policy.
    Read { name: String },
    /// Lists policies.
    List,
    /// Deletes a policy.
    Delete { name: String },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Enables a device: `audit enable file file_path=/var/log/leasehold.log`.
    Enable {
        kind: String,
        options: Vec<String>,
        /// Where to mount it (default: the type).
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// Lists devices.
    List,
    /// Disables a device.
    Disable { path: String },
    /// Has the server check a device's file, line by line, against the keyed
    /// chain and the checkpoint it keeps; reports the first break (needs sudo).
    Verify { path: String },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Starts a plugin crate of its own from a template: provider, local test
    /// service and harness tests that pass as generated.
    New {
        /// The plugin's name (lowercase letters, digits, dashes); also the crate's.
        name: String,
        /// What kind of target the plugin talks to.
        #[arg(long, value_enum, default_value = "http")]
        template: plugin_new::Template,
        /// Where to create the crate (default: ./NAME).
        #[arg(long)]
        path: Option<PathBuf>,
        /// The SDK's directory (default: the one this binary was built with).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Registers a component. `plugin register FILE.wasm` uploads a local build
    /// under the file's name (or `-name`), computing its SHA-256;
    /// `plugin register -sha256 HEX -wasm FILE [secret] NAME` is Vault's form, and
    /// `-command FILE` names a file in the server's plugin directory instead.
    Register {
        /// `FILE.wasm`, or `[secret|database] NAME`.
        #[arg(required = true, num_args = 1..=2)]
        names: Vec<String>,
        /// SHA-256 of the component, hex; the server refuses other bytes. Computed
        /// from an uploaded file when not given.
        #[arg(long)]
        sha256: Option<String>,
        /// A local `.wasm` file to upload.
        #[arg(long, conflicts_with = "command")]
        wasm: Option<PathBuf>,
        /// A file name in the server's plugin directory.
        #[arg(long)]
        command: Option<String>,
        /// The version the component must report.
        #[arg(long)]
        version: Option<String>,
        /// The name to register a `FILE.wasm` under (default: the file's stem,
        /// `_` as `-`).
        #[arg(long)]
        name: Option<String>,
    },
    /// Loads a plugin's registered bytes again (`-plugin NAME`) or those of the
    /// plugins of some mounts (`-mounts a/,b/`): new calls run the loaded
    /// component, calls in flight finish on theirs.
    Reload {
        #[arg(long, conflicts_with = "mounts", required_unless_present = "mounts")]
        plugin: Option<String>,
        #[arg(long, value_delimiter = ',')]
        mounts: Vec<String>,
    },
    /// Lists registered plugins and versions.
    List,
    /// Shows a plugin: version, sha256, schemas (`[secret] NAME`).
    Info {
        #[arg(required = true, num_args = 1..=2)]
        names: Vec<String>,
        #[arg(long)]
        version: Option<String>,
    },
    /// Removes a plugin (every version, or `-version`), unless a mount uses it.
    Deregister {
        #[arg(required = true, num_args = 1..=2)]
        names: Vec<String>,
        #[arg(long)]
        version: Option<String>,
    },
}

#[derive(Subcommand)]
enum SecretsCommand {
    /// Mounts a catalog plugin (or `database`) at `-path` (default: its name).
    Enable {
        kind: String,
        #[arg(long)]
        path: Option<String>,
        #[arg(long)]
        description: Option<String>,
        #[arg(long)]
        default_lease_ttl: Option<String>,
        #[arg(long)]
        max_lease_ttl: Option<String>,
        #[arg(long)]
        plugin_version: Option<String>,
    },
    /// Lists mounts.
    List,
    /// Unmounts a path after revoking its leases.
    Disable {
        path: String,
        /// Remove leases that cannot be revoked.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Subcommand)]
enum LeaseCommand {
    /// Shows a lease.
    Lookup { lease_id: String },
    /// Renews a lease from now.
    Renew {
        lease_id: String,
        #[arg(long)]
        increment: Option<String>,
    },
    /// Revokes a lease, or every lease under a prefix.
    Revoke {
        lease_id: String,
        /// The argument is a prefix (a mount, a role).
        #[arg(long)]
        prefix: bool,
        /// Remove the leases even when the target fails (needs -prefix).
        #[arg(long, requires = "prefix")]
        force: bool,
    },
}

/// `[type] name` of the plugin commands.
fn plugin_path(names: &[String]) -> String {
    match names {
        [kind, name] => format!("sys/plugins/catalog/{kind}/{name}"),
        [name] => format!("sys/plugins/catalog/secret/{name}"),
        _ => unreachable!("clap checks 1..=2"),
    }
}

/// Vault writes long flags with one dash; clap wants two.
fn vault_style_flags(args: impl Iterator<Item = String>) -> Vec<String> {
    args.map(|arg| {
        let single_dash_word = arg.starts_with('-')
            && !arg.starts_with("--")
            && arg.len() > 2
            && arg[1..]
                .chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic());
        if single_dash_word {
            format!("-{arg}")
        } else {
            arg
        }
    })
    .collect()
}

/// Runs the command line.
pub fn run() -> ExitCode {
    let cli = Cli::parse_from(vault_style_flags(std::env::args()));
    init_logging();
    let format = cli.format;
    let result = match cli.command {
        Command::Server {
            dev,
            config,
            listen,
        } => run_server(dev, config, listen),
        Command::Status => return status(format),
        other => remote(other, &Client::from_env(), format, cli.field.as_deref()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("LEASEHOLD_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

fn run_server(
    dev: bool,
    config: Option<PathBuf>,
    listen: Option<SocketAddr>,
) -> Result<(), String> {
    let mode = if dev {
        Mode::Dev {
            listen: listen.unwrap_or(SocketAddr::from(([127, 0, 0, 1], 8200))),
        }
    } else {
        let path = config.ok_or("--config is required without --dev")?;
        let mut config = ServerConfig::load(&path)?;
        if let Some(listen) = listen {
            config.listen = listen;
        }
        Mode::Configured(Box::new(config))
    };
    tokio::runtime::Runtime::new()
        .map_err(|err| format!("starting the async runtime: {err}"))?
        .block_on(server::run(mode))
}

/// Prints what the server found in a device's file; an error if the chain broke.
fn report_verification(path: &str, found: &Value, format: Format) -> Result<(), String> {
    let data = &found["data"];
    if format == Format::Json {
        output::response(format, found);
    } else if data["intact"] == json!(true) {
        println!(
            "{path}: {} entries, chain intact up to the broker's last record",
            data["lines"]
        );
    }
    if data["intact"] == json!(true) {
        Ok(())
    } else {
        Err(format!(
            "audit device {path}: {}",
            data["error"].as_str().unwrap_or("the chain is broken")
        ))
    }
}

fn status(format: Format) -> ExitCode {
    match Client::from_env().call("GET", "sys/seal-status", None) {
        Ok(value) => {
            output::response(format, &value);
            if value["sealed"] == json!(true) {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(err) => {
            eprintln!("Error: {err}");
            ExitCode::FAILURE
        }
    }
}

/// `key=value` pairs as a JSON object; values that are JSON (numbers, booleans,
/// arrays, objects) are sent as such, `@file` reads a file.
fn pairs_to_body(pairs: &[String]) -> Result<Value, String> {
    let mut body = Map::new();
    for pair in pairs {
        let (key, raw) = pair
            .split_once('=')
            .ok_or_else(|| format!("`{pair}` is not key=value"))?;
        let raw = match raw.strip_prefix('@') {
            Some(file) => {
                std::fs::read_to_string(file).map_err(|err| format!("reading {file}: {err}"))?
            }
            None => raw.to_owned(),
        };
        let value = match serde_json::from_str::<Value>(&raw) {
            Ok(v @ (Value::Number(_) | Value::Bool(_) | Value::Array(_) | Value::Object(_))) => v,
            _ => Value::String(raw),
        };
        body.insert(key.to_owned(), value);
    }
    Ok(Value::Object(body))
}

fn read_input(file: &str) -> Result<String, String> {
    if file == "-" {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|err| format!("reading stdin: {err}"))?;
        Ok(text)
    } else {
        std::fs::read_to_string(file).map_err(|err| format!("reading {file}: {err}"))
    }
}

/// A secret typed at the terminal without echo, or one line of stdin when it
/// is not a terminal (a script piping the key in).
fn prompt_hidden(prompt: &str) -> Result<String, String> {
    use rustix::termios::{LocalModes, OptionalActions, isatty, tcgetattr, tcsetattr};
    let stdin = std::io::stdin();
    let mut line = String::new();
    if !isatty(&stdin) {
        stdin
            .read_line(&mut line)
            .map_err(|err| format!("reading stdin: {err}"))?;
        return Ok(line.trim().to_owned());
    }
    eprint!("{prompt}");
    let saved = tcgetattr(&stdin).map_err(|err| format!("reading the terminal: {err}"))?;
    let mut hidden = saved.clone();
    hidden.local_modes.remove(LocalModes::ECHO);
    tcsetattr(&stdin, OptionalActions::Now, &hidden)
        .map_err(|err| format!("setting up the terminal: {err}"))?;
    let read = stdin.read_line(&mut line);
    // The echo comes back whatever happened to the read.
    let _ = tcsetattr(&stdin, OptionalActions::Now, &saved);
    eprintln!();
    read.map_err(|err| format!("reading the terminal: {err}"))?;
    Ok(line.trim().to_owned())
}

fn print_or_success(format: Format, value: &Value) {
    if value.is_null() {
        println!("Success!");
    } else {
        output::response(format, value);
    }
}

fn remote(
    command: Command,
    client: &Client,
    format: Format,
    field: Option<&str>,
) -> Result<(), String> {
    let call = |method: &str, path: &str, body: Option<Value>| {
        client
            .call(method, path, body.as_ref())
            .map_err(|e| e.to_string())
    };
    let value = match command {
        Command::Operator { command } => match command {
            OperatorCommand::Init {
                key_shares,
                key_threshold,
            } => {
                let init = call(
                    "PUT",
                    "sys/init",
                    Some(json!({ "secret_shares": key_shares, "secret_threshold": key_threshold })),
                )?;
                if format == Format::Json {
                    output::response(format, &init);
                } else {
                    for (i, key) in init["keys_base64"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .enumerate()
                    {
                        println!("Unseal Key {}: {}", i + 1, key.as_str().unwrap_or_default());
                    }
                    println!(
                        "\nInitial Root Token: {}",
                        init["root_token"].as_str().unwrap_or_default()
                    );
                    println!(
                        "\nThe server is sealed: unseal it with {key_threshold} of these {key_shares} keys."
                    );
                }
                return Ok(());
            }
            OperatorCommand::Unseal { key, reset } => {
                let body = if reset {
                    json!({ "reset": true })
                } else {
                    let key = match key {
                        Some(key) => key,
                        None => prompt_hidden("Unseal Key (will be hidden): ")?,
                    };
                    json!({ "key": key })
                };
                call("PUT", "sys/unseal", Some(body))?
            }
            OperatorCommand::Seal => call("PUT", "sys/seal", Some(json!({})))?,
            OperatorCommand::Rotate => {
                call("PUT", "sys/rotate", Some(json!({})))?;
                call("GET", "sys/key-status", None)?
            }
        },
        Command::Token { command } => match command {
            TokenCommand::Create {
                policies,
                ttl,
                explicit_max_ttl,
                display_name,
                orphan,
                renewable,
            } => {
                let mut body = Map::new();
                if !policies.is_empty() {
                    body.insert("policies".into(), json!(policies));
                }
                for (key, value) in [
                    ("ttl", ttl),
                    ("explicit_max_ttl", explicit_max_ttl),
                    ("display_name", display_name),
                ] {
                    if let Some(value) = value {
                        body.insert(key.into(), json!(value));
                    }
                }
                if let Some(renewable) = renewable {
                    body.insert("renewable".into(), json!(renewable));
                }
                let path = if orphan {
                    "auth/token/create-orphan"
                } else {
                    "auth/token/create"
                };
                call("POST", path, Some(Value::Object(body)))?
            }
            TokenCommand::Lookup { token: None, .. } => {
                call("GET", "auth/token/lookup-self", None)?
            }
            TokenCommand::Lookup {
                token: Some(accessor),
                accessor: true,
            } => call(
                "POST",
                "auth/token/lookup-accessor",
                Some(json!({ "accessor": accessor })),
            )?,
            TokenCommand::Lookup {
                token: Some(token),
                accessor: false,
            } => call("POST", "auth/token/lookup", Some(json!({ "token": token })))?,
            TokenCommand::Renew { token, increment } => {
                let mut body = Map::new();
                if let Some(increment) = increment {
                    body.insert("increment".into(), json!(increment));
                }
                match token {
                    Some(token) => {
                        body.insert("token".into(), json!(token));
                        call("POST", "auth/token/renew", Some(Value::Object(body)))?
                    }
                    None => call("POST", "auth/token/renew-self", Some(Value::Object(body)))?,
                }
            }
            TokenCommand::Revoke { own: true, .. } => {
                call("POST", "auth/token/revoke-self", Some(json!({})))?
            }
            TokenCommand::Revoke {
                token: Some(accessor),
                accessor: true,
                ..
            } => call(
                "POST",
                "auth/token/revoke-accessor",
                Some(json!({ "accessor": accessor })),
            )?,
            TokenCommand::Revoke {
                token: Some(token), ..
            } => call("POST", "auth/token/revoke", Some(json!({ "token": token })))?,
            TokenCommand::Revoke { token: None, .. } => {
                return Err("name a token to revoke, or use -self".into());
            }
        },
        Command::Policy { command } => match command {
            PolicyCommand::Write { name, file } => {
                let text = read_input(&file)?;
                call(
                    "PUT",
                    &format!("sys/policies/acl/{name}"),
                    Some(json!({ "policy": text })),
                )?
            }
            PolicyCommand::Read { name } => {
                let value = call("GET", &format!("sys/policies/acl/{name}"), None)?;
                if format == Format::Table {
                    println!(
                        "{}",
                        value["data"]["policy"].as_str().unwrap_or_default().trim()
                    );
                    return Ok(());
                }
                value
            }
            PolicyCommand::List => {
                let value = call("LIST", "sys/policies/acl", None)?;
                if format == Format::Table {
                    for name in value["data"]["keys"].as_array().into_iter().flatten() {
                        println!("{}", name.as_str().unwrap_or_default());
                    }
                    return Ok(());
                }
                value
            }
            PolicyCommand::Delete { name } => {
                call("DELETE", &format!("sys/policies/acl/{name}"), None)?
            }
        },
        Command::Audit { command } => match command {
            AuditCommand::Enable {
                kind,
                options,
                path,
                description,
            } => {
                let options = pairs_to_body(&options)?;
                let path = path.unwrap_or_else(|| kind.clone());
                let mut body = json!({ "type": kind, "options": options });
                if let Some(description) = description {
                    body["description"] = json!(description);
                }
                call("PUT", &format!("sys/audit/{path}"), Some(body))?
            }
            AuditCommand::List => call("GET", "sys/audit", None)?,
            AuditCommand::Disable { path } => call("DELETE", &format!("sys/audit/{path}"), None)?,
            AuditCommand::Verify { path } => {
                let path = path.trim_end_matches('/');
                let found = call("GET", &format!("sys/audit-verify/{path}"), None)?;
                return report_verification(path, &found, format);
            }
        },
        Command::Plugin { command } => match command {
            PluginCommand::New {
                name,
                template,
                path,
                sdk,
            } => {
                let dir = path.unwrap_or_else(|| PathBuf::from(&name));
                print!(
                    "{}",
                    plugin_new::create(&name, template, &dir, sdk.as_deref())?
                );
                return Ok(());
            }
            PluginCommand::Register {
                mut names,
                sha256,
                mut wasm,
                command,
                version,
                name,
            } => {
                // `register FILE.wasm`: the file is the upload, named after itself.
                let lone_file = match names.as_slice() {
                    [file] if wasm.is_none() && command.is_none() && file.ends_with(".wasm") => {
                        Some(PathBuf::from(file))
                    }
                    _ => None,
                };
                if let Some(file) = lone_file {
                    let stem = file.file_stem().unwrap_or_default().to_string_lossy();
                    names = vec![name.clone().unwrap_or_else(|| stem.replace('_', "-"))];
                    wasm = Some(file);
                } else if name.is_some() {
                    return Err("-name goes with `register FILE.wasm`; otherwise name the plugin after its type".into());
                }
                let mut body = json!({ "version": version });
                let uploaded_sha256 = match (wasm, command) {
                    (Some(file), _) => {
                        let bytes = std::fs::read(&file)
                            .map_err(|err| format!("reading {}: {err}", file.display()))?;
                        let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
                        if sha256
                            .as_ref()
                            .is_some_and(|given| !given.eq_ignore_ascii_case(&digest))
                        {
                            return Err(format!(
                                "{} has SHA-256 {digest}, not the one given with -sha256",
                                file.display()
                            ));
                        }
                        body["wasm"] = json!(base64::Engine::encode(
                            &base64::engine::general_purpose::STANDARD,
                            bytes
                        ));
                        digest
                    }
                    (None, Some(command)) => {
                        body["command"] = json!(command);
                        sha256
                            .clone()
                            .ok_or("-command needs -sha256: the server refuses other bytes")?
                    }
                    (None, None) => {
                        return Err("give FILE.wasm, -wasm FILE or -command NAME".into());
                    }
                };
                body["sha256"] = json!(uploaded_sha256);
                let answer = call("PUT", &plugin_path(&names), Some(body))?;
                if format == Format::Table && field.is_none() {
                    // The latest version is shown unless asked; find the one just sent.
                    let mut info = call("GET", &plugin_path(&names), None)?;
                    let versions = info["data"]["versions"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    for version in versions.iter().filter_map(Value::as_str) {
                        if info["data"]["sha256"] == json!(uploaded_sha256) {
                            break;
                        }
                        info = call(
                            "GET",
                            &format!("{}?version={version}", plugin_path(&names)),
                            None,
                        )?;
                    }
                    print!(
                        "{}",
                        output::registered(&names, &info["data"], &uploaded_sha256)
                    );
                    return Ok(());
                }
                answer
            }
            PluginCommand::Reload { plugin, mounts } => {
                let body = match plugin {
                    Some(plugin) => json!({ "plugin": plugin }),
                    None => json!({ "mounts": mounts }),
                };
                call("PUT", "sys/plugins/reload/backend", Some(body))?
            }
            PluginCommand::List => {
                let value = call("GET", "sys/plugins/catalog", None)?;
                if format == Format::Table && field.is_none() {
                    output::plugin_table(&value);
                    return Ok(());
                }
                value
            }
            PluginCommand::Info { names, version } => {
                let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
                call("GET", &format!("{}{query}", plugin_path(&names)), None)?
            }
            PluginCommand::Deregister { names, version } => {
                let query = version.map(|v| format!("?version={v}")).unwrap_or_default();
                call("DELETE", &format!("{}{query}", plugin_path(&names)), None)?
            }
        },
        Command::Secrets { command } => match command {
            SecretsCommand::Enable {
                kind,
                path,
                description,
                default_lease_ttl,
                max_lease_ttl,
                plugin_version,
            } => {
                let path = path.unwrap_or_else(|| kind.clone());
                let body = json!({
                    "type": kind,
                    "description": description,
                    "plugin_version": plugin_version,
                    "config": {
                        "default_lease_ttl": default_lease_ttl,
                        "max_lease_ttl": max_lease_ttl,
                    },
                });
                call("POST", &format!("sys/mounts/{path}"), Some(body))?
            }
            SecretsCommand::List => call("GET", "sys/mounts", None)?,
            SecretsCommand::Disable { path, force } => {
                let query = if force { "?force=true" } else { "" };
                call("DELETE", &format!("sys/mounts/{path}{query}"), None)?
            }
        },
        Command::Lease { command } => match command {
            LeaseCommand::Lookup { lease_id } => call(
                "PUT",
                "sys/leases/lookup",
                Some(json!({ "lease_id": lease_id })),
            )?,
            LeaseCommand::Renew {
                lease_id,
                increment,
            } => call(
                "PUT",
                "sys/leases/renew",
                Some(json!({ "lease_id": lease_id, "increment": increment })),
            )?,
            LeaseCommand::Revoke {
                lease_id,
                prefix: false,
                ..
            } => call(
                "PUT",
                "sys/leases/revoke",
                Some(json!({ "lease_id": lease_id })),
            )?,
            LeaseCommand::Revoke {
                lease_id, force, ..
            } => {
                let kind = if force {
                    "revoke-force"
                } else {
                    "revoke-prefix"
                };
                call(
                    "PUT",
                    &format!("sys/leases/{kind}/{lease_id}"),
                    Some(json!({})),
                )?
            }
        },
        Command::Read { path } => call("GET", &path, None)?,
        Command::Write { path, pairs } => call("PUT", &path, Some(pairs_to_body(&pairs)?))?,
        Command::List { path } => call("LIST", &path, None)?,
        Command::Delete { path } => call("DELETE", &path, None)?,
        Command::Server { .. } | Command::Status => unreachable!("handled locally"),
    };
    match field {
        Some(name) => output::field(&value, name),
        None => {
            print_or_success(format, &value);
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vault_style_single_dash_flags_become_long_flags() {
        let args = [
            "leasehold",
            "-format=json",
            "token",
            "create",
            "-policy=web",
            "-",
            "--ttl",
            "1h",
        ]
        .map(String::from);
        assert_eq!(
            vault_style_flags(args.into_iter()),
            [
                "leasehold",
                "--format=json",
                "token",
                "create",
                "--policy=web",
                "-",
                "--ttl",
                "1h"
            ]
        );
    }

    #[test]
    fn pairs_become_typed_json() {
        let body = pairs_to_body(&[
            "secret_shares=5".into(),
            "name=web".into(),
            "list=[\"a\"]".into(),
            "on=true".into(),
        ])
        .unwrap();
        assert_eq!(
            body,
            json!({ "secret_shares": 5, "name": "web", "list": ["a"], "on": true })
        );
        assert!(pairs_to_body(&["novalue".into()]).is_err());
    }
}
