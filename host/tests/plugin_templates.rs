//! A plugin from outside this repository, as its authors make it: `leasehold
//! plugin new` for each template into a directory outside the workspace, the
//! crate's own `cargo test` against the service its template includes, then the
//! built component registered by upload in a running broker, mounted with
//! grants, a credential issued, used on the service, revoked, and refused.
//!
//! The generated crates build in `target/plugin-templates` (both share it), so a
//! cold run builds the sandbox once; later runs only rebuild what changed.

mod support;

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use support::{Server, data_dir};

const ADMIN_TOKEN: &str = "the-services-admin-token";

fn leasehold(args: &[&str], server: Option<(&Server, &str)>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_leasehold"));
    command
        .args(args)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN");
    if let Some((server, token)) = server {
        command
            .env("LEASEHOLD_ADDR", &server.base)
            .env("LEASEHOLD_TOKEN", token);
    }
    command.output().unwrap()
}

fn ok(output: Output, what: &str) -> String {
    assert!(
        output.status.success(),
        "{what} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// Where the generated crates build: beside the workspace's own builds.
fn target_dir() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("plugin-templates")
}

/// `cargo ARGS` in the generated crate, with the shared target directory.
fn cargo(dir: &Path, args: &[&str]) -> Output {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
        .args(args)
        .current_dir(dir)
        .env("CARGO_TARGET_DIR", target_dir())
        .output()
        .unwrap()
}

/// The template's own service, run as its README says, stopped when dropped.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start(script: &Path) -> Self {
        let mut child = Command::new("python3")
            .arg(script)
            .args(["--admin-token", ADMIN_TOKEN])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the template's service");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap();
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap()
            .parse()
            .unwrap();
        Self { child, port }
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Logs in to the HTTP template's service: the status it answers.
fn http_login(port: u16, username: &str, password: &str) -> u16 {
    let body = serde_json::json!({"username": username, "password": password}).to_string();
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = String::new();
    stream.read_to_string(&mut reply).unwrap();
    reply.split(' ').nth(1).unwrap().parse().unwrap()
}

/// Logs in to the TCP template's service: whether it says OK.
fn tcp_login(port: u16, username: &str, password: &str) -> bool {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    writeln!(stream, "LOGIN {username} {password}").unwrap();
    let mut answer = String::new();
    BufReader::new(stream).read_line(&mut answer).unwrap();
    answer.trim_end() == "OK"
}

/// Generates the crate, runs its tests, checks what they depend on, builds
/// the component and returns its path.
fn generate_test_and_build(root: &Path, name: &str, template: &str) -> (PathBuf, PathBuf) {
    let dir = root.join(name);
    let created = ok(
        leasehold(
            &[
                "plugin",
                "new",
                name,
                "--template",
                template,
                "--path",
                dir.to_str().unwrap(),
            ],
            None,
        ),
        "plugin new",
    );
    assert!(created.contains("cargo test"), "{created}");

    ok(
        cargo(&dir, &["test"]),
        &format!("cargo test of the {template} template"),
    );

    // Testing a plugin never builds the broker: the harness is the runtime crate.
    let tree = ok(
        cargo(
            &dir,
            &["tree", "-e", "normal,dev,build", "--prefix", "none"],
        ),
        "cargo tree",
    );
    assert!(tree.contains("leasehold-runtime"), "{tree}");
    assert!(!tree.contains("leasehold-host"), "{tree}");
    assert!(!tree.contains("leasehold-plugin-artifacts"), "{tree}");

    ok(
        cargo(&dir, &["build", "--release", "--target", "wasm32-wasip2"]),
        "building the component",
    );
    let wasm = target_dir().join(format!(
        "wasm32-wasip2/release/{}.wasm",
        name.replace('-', "_")
    ));
    assert!(wasm.is_file(), "{} was built", wasm.display());
    (dir, wasm)
}

/// Registers `wasm` by upload, mounts it at its name with `grants`, writes the
/// connection and a role, and issues a credential: (lease id, username, password).
fn issue_through_the_broker(
    server: &Server,
    token: &str,
    name: &str,
    wasm: &Path,
    grants: &str,
    config: &[&str],
    role: &[&str],
) -> (String, String, String) {
    let cli = |args: &[&str]| ok(leasehold(args, Some((server, token))), &format!("{args:?}"));
    let registered = cli(&["plugin", "register", wasm.to_str().unwrap()]);
    assert!(
        registered.contains(&format!("Registered plugin `{name}` version 0.1.0")),
        "{registered}"
    );
    assert!(
        registered.contains(&format!("leasehold secrets enable -path={name} {name}")),
        "{registered}"
    );

    cli(&["secrets", "enable", &format!("-path={name}"), name]);
    cli(&["write", &format!("sys/grants/{name}"), grants]);
    let mut write_config = vec!["write".to_owned(), format!("{name}/config/main")];
    write_config.extend(config.iter().map(|c| c.to_string()));
    write_config.push("allowed_roles=reader".into());
    cli(&write_config.iter().map(String::as_str).collect::<Vec<_>>());
    let role_path = format!("{name}/roles/reader");
    let mut write_role = vec![
        "write",
        role_path.as_str(),
        "db_name=main",
        "default_ttl=1h",
    ];
    write_role.extend(role);
    cli(&write_role);

    let issued: Value = serde_json::from_str(&cli(&[
        "read",
        &format!("{name}/creds/reader"),
        "-format=json",
    ]))
    .unwrap();
    (
        issued["lease_id"].as_str().unwrap().to_owned(),
        issued["data"]["username"].as_str().unwrap().to_owned(),
        issued["data"]["password"].as_str().unwrap().to_owned(),
    )
}

#[test]
fn a_plugin_from_each_template_is_tested_registered_and_gives_working_credentials() {
    let root = tempfile::tempdir().unwrap();
    let (http_dir, http_wasm) = generate_test_and_build(root.path(), "inventory", "http");
    let (tcp_dir, tcp_wasm) = generate_test_and_build(root.path(), "keys", "tcp");

    let data = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&data_dir(&data));
    let token = server.init_and_unseal();
    let revoke = |lease: &str| {
        ok(
            leasehold(&["lease", "revoke", lease], Some((&server, &token))),
            "lease revoke",
        )
    };

    // The HTTP template, against its Python http.server service.
    let inventory = Service::start(&http_dir.join("service/inventory.py"));
    let origin = format!("http://127.0.0.1:{}", inventory.port);
    let (lease, username, password) = issue_through_the_broker(
        &server,
        &token,
        "inventory",
        &http_wasm,
        &format!("allowed_origins={origin}"),
        &[
            &format!("url={origin}"),
            &format!("admin_token={ADMIN_TOKEN}"),
        ],
        &["group=readers"],
    );
    assert_eq!(http_login(inventory.port, &username, &password), 200);

    // Shipping a fix, as the guide says: a new version, registered, the mount
    // tuned to it. New leases run it; the old lease is revoked by it.
    let manifest = http_dir.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(
        &manifest,
        text.replacen("version = \"0.1.0\"", "version = \"0.1.1\"", 1),
    )
    .unwrap();
    ok(
        cargo(
            &http_dir,
            &["build", "--release", "--target", "wasm32-wasip2"],
        ),
        "building 0.1.1",
    );
    let cli = |args: &[&str]| {
        ok(
            leasehold(args, Some((&server, &token))),
            &format!("{args:?}"),
        )
    };
    let registered = cli(&["plugin", "register", http_wasm.to_str().unwrap()]);
    assert!(
        registered.contains("Registered plugin `inventory` version 0.1.1"),
        "{registered}"
    );
    cli(&["write", "sys/mounts/inventory/tune", "plugin_version=0.1.1"]);
    cli(&["plugin", "reload", "-plugin", "inventory"]);
    let issued: Value =
        serde_json::from_str(&cli(&["read", "inventory/creds/reader", "-format=json"])).unwrap();
    let newer = issued["lease_id"].as_str().unwrap();
    let version_of = |lease: &str| {
        let found: Value =
            serde_json::from_str(&cli(&["lease", "lookup", lease, "-format=json"])).unwrap();
        found["data"]["plugin_version"].as_str().unwrap().to_owned()
    };
    assert_eq!(version_of(&lease), "0.1.0");
    assert_eq!(version_of(newer), "0.1.1");

    revoke(&lease);
    assert_eq!(http_login(inventory.port, &username, &password), 401);
    revoke(newer);
    let newer_user = issued["data"]["username"].as_str().unwrap();
    let newer_password = issued["data"]["password"].as_str().unwrap();
    assert_eq!(http_login(inventory.port, newer_user, newer_password), 401);

    // The TCP template, against its line-protocol service.
    let keys = Service::start(&tcp_dir.join("service/keyserver.py"));
    let (lease, username, password) = issue_through_the_broker(
        &server,
        &token,
        "keys",
        &tcp_wasm,
        &format!("allowed_hosts=127.0.0.1:{}", keys.port),
        &[
            "host=127.0.0.1",
            &format!("port={}", keys.port),
            &format!("admin_token={ADMIN_TOKEN}"),
        ],
        &[],
    );
    assert!(tcp_login(keys.port, &username, &password));
    revoke(&lease);
    assert!(!tcp_login(keys.port, &username, &password));
}
