//! Runs the real `leasehold` binary as a process for end-to-end tests.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running server, killed on drop. Its stdout and stderr are kept for checks.
pub struct Server {
    child: Child,
    pub base: String,
    pub output: Arc<Mutex<String>>,
}

impl Server {
    /// `leasehold server` with `args`, waiting until it listens.
    pub fn start(args: &[&str]) -> Self {
        Self::start_logging(args, "info")
    }

    /// Like [`Server::start`], with `LEASEHOLD_LOG` set to `filter`.
    pub fn start_logging(args: &[&str], filter: &str) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_leasehold"))
            .args(args)
            .env("LEASEHOLD_LOG", filter)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting leasehold");
        let output = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        for (stream, tx) in [
            (Box::new(stdout) as Box<dyn std::io::Read + Send>, Some(tx)),
            (Box::new(stderr), None),
        ] {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let (Some(tx), Some(address)) = (&tx, line.strip_prefix("listening on ")) {
                        let _ = tx.send(address.to_owned());
                    }
                    let mut output = output.lock().unwrap();
                    output.push_str(&line);
                    output.push('\n');
                }
            });
        }
        let base = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("leasehold did not start:\n{}", output.lock().unwrap()));
        Self {
            child,
            base,
            output,
        }
    }

    /// `leasehold server --dev` on a free port, and the root token it printed.
    pub fn dev() -> (Self, String) {
        let server = Self::start(&["server", "--dev", "--listen", "127.0.0.1:0"]);
        let output = server.output();
        let token = output
            .lines()
            .find_map(|line| line.strip_prefix("Root token: "))
            .unwrap_or_else(|| panic!("no root token printed:\n{output}"))
            .to_owned();
        (server, token)
    }

    /// A server on `data_dir` with a config file, on a free port.
    pub fn with_data_dir(data_dir: &Path) -> Self {
        Self::with_config(data_dir, "")
    }

    /// Like [`Server::with_data_dir`], with more TOML after the basics.
    /// Unless `extra` says otherwise, directories under the system's temporary
    /// directory may be granted. The config file gets a directory of its own
    /// beside the data directory (the broker never grants it).
    pub fn with_config(data_dir: &Path, extra: &str) -> Self {
        let config_dir = data_dir.with_file_name("config");
        std::fs::create_dir_all(&config_dir).unwrap();
        let config = config_dir.join("leasehold.toml");
        let grants = if extra.contains("[grants]") {
            String::new()
        } else {
            format!(
                "[grants]\ndirectories = [{:?}]\n",
                std::env::temp_dir().display().to_string()
            )
        };
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{extra}\n{grants}",
                data_dir.display().to_string()
            ),
        )
        .unwrap();
        Self::start(&["server", "--config", config.to_str().unwrap()])
    }

    /// Initializes with one share, unseals, and returns the root token.
    pub fn init_and_unseal(&self) -> String {
        self.init_and_unseal_keeping_share().0
    }

    /// Initializes with one share, unseals, and returns the root token and the
    /// share (to unseal again after a restart).
    pub fn init_and_unseal_keeping_share(&self) -> (String, String) {
        let client = reqwest::blocking::Client::new();
        let init: serde_json::Value = client
            .put(self.url("sys/init"))
            .json(&serde_json::json!({ "secret_shares": 1, "secret_threshold": 1 }))
            .send()
            .unwrap()
            .json()
            .unwrap();
        let unsealed = client
            .put(self.url("sys/unseal"))
            .json(&serde_json::json!({ "key": init["keys"][0] }))
            .send()
            .unwrap();
        assert!(unsealed.status().is_success());
        (
            init["root_token"].as_str().unwrap().to_owned(),
            init["keys"][0].as_str().unwrap().to_owned(),
        )
    }

    /// Submits one unseal share.
    pub fn unseal(&self, share: &str) {
        let response = reqwest::blocking::Client::new()
            .put(self.url("sys/unseal"))
            .json(&serde_json::json!({ "key": share }))
            .send()
            .unwrap();
        assert!(response.status().is_success());
    }

    /// The process id, to look at its open files.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How many file descriptors the process has open.
    pub fn open_files(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|dir| dir.count())
            .unwrap_or(0)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/v1/{path}", self.base)
    }

    /// Stops the process with SIGTERM and waits for it to exit.
    pub fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "leasehold did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        self.output.lock().unwrap().clone()
    }

    pub fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    /// Kills the process with SIGKILL: no shutdown, no flush beyond what each
    /// acknowledged write already did.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// A client for the API with `token`.
    pub fn api(&self, token: &str) -> Api {
        Api {
            client: reqwest::blocking::Client::new(),
            base: self.base.clone(),
            token: token.to_owned(),
        }
    }
}

/// A Vault-style API client: every call returns the status and the JSON body
/// (`null` for an empty body).
pub struct Api {
    client: reqwest::blocking::Client,
    pub base: String,
    pub token: String,
}

impl Api {
    /// A client for the server at `base` with `token`.
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            client: reqwest::blocking::Client::new(),
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    /// `method path` with an optional JSON body.
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, format!("{}/v1/{path}", self.base))
            .header("X-Vault-Token", &self.token)
            .timeout(Duration::from_secs(60));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        let text = response.text().unwrap();
        let value = if text.trim().is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text))
        };
        (status, value)
    }

    pub fn get(&self, path: &str) -> (u16, serde_json::Value) {
        self.call("GET", path, None)
    }

    pub fn put(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
        self.call("PUT", path, Some(body))
    }

    pub fn list(&self, path: &str) -> (u16, serde_json::Value) {
        self.call("LIST", path, None)
    }

    pub fn delete(&self, path: &str) -> (u16, serde_json::Value) {
        self.call("DELETE", path, None)
    }

    /// Sets what the plugin of `mount` may reach (needs sudo, which the root
    /// token has) and checks it was accepted.
    pub fn grant(&self, mount: &str, grants: serde_json::Value) {
        let (status, body) = self.put(&format!("sys/grants/{mount}"), grants);
        assert_eq!(status, 200, "granting on {mount}: {body}");
    }

    /// Registers the component at `path` (one of `leasehold_plugin_artifacts`'
    /// paths) in the catalog as `name`, by upload with its sha256, and mounts
    /// it at `mount`.
    pub fn mount_plugin(&self, name: &str, path: &str, mount: &str) {
        use base64::Engine as _;
        use sha2::Digest as _;
        let bytes = leasehold_plugin_artifacts::read(path);
        self.ok(
            &format!("sys/plugins/catalog/secret/{name}"),
            serde_json::json!({
                "sha256": hex::encode(sha2::Sha256::digest(&bytes)),
                "wasm": base64::engine::general_purpose::STANDARD.encode(&bytes),
            }),
        );
        self.ok(
            &format!("sys/mounts/{mount}"),
            serde_json::json!({"type": name}),
        );
    }

    /// `PUT` that must answer 2xx.
    pub fn ok(&self, path: &str, body: serde_json::Value) -> serde_json::Value {
        let (status, reply) = self.put(path, body);
        assert!((200..300).contains(&status), "PUT {path}: {status} {reply}");
        reply
    }
}

/// Polls `check` every 100 ms until it holds or `limit` passes.
pub fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if check() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Server {
    /// SIGTERM first, so the server shuts down as it would in production (and a
    /// `--dev` server removes its temporary directory); SIGKILL if it hangs.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A temporary data directory path (not created: the server creates it).
pub fn data_dir(root: &tempfile::TempDir) -> PathBuf {
    root.path().join("data")
}

/// Checks `live` (the credential works) only while a lease issued at `issued`
/// with `ttl` cannot have expired yet: on a loaded machine the check may come
/// late, and a lease that is already gone is what the test waits for next.
pub fn while_live(issued: Instant, ttl: Duration, live: impl FnOnce() -> bool) {
    let ok = live();
    assert!(
        ok || issued.elapsed() >= ttl,
        "the credential did not work before its lease expired"
    );
}
