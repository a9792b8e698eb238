//! The plugin in the broker's sandbox against the service in `service/`, started
//! by each test on a free loopback port.

use leasehold_sdk::testing::{Grants, TestPlugin, lease};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

const ADMIN_TOKEN: &str = "a-test-admin-token";

/// The service, stopped when dropped.
struct Service {
    child: Child,
    port: u16,
}

impl Service {
    fn start() -> Self {
        let mut child = Command::new("python3")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/service/keyserver.py"))
            .args(["--admin-token", ADMIN_TOKEN])
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the test service");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the service starts");
        let port = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|p| p.parse().ok());
        Self {
            port: port.expect("the service prints its port"),
            child,
        }
    }

    fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Whether the service takes these credentials.
    fn login(&self, username: &str, password: &str) -> bool {
        let mut stream = TcpStream::connect(self.address()).unwrap();
        writeln!(stream, "LOGIN {username} {password}").unwrap();
        let mut answer = String::new();
        BufReader::new(stream).read_line(&mut answer).unwrap();
        answer.trim_end() == "OK"
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn plugin(service: &Service) -> TestPlugin {
    TestPlugin::this_crate().with_grants(Grants::none().allow_tcp(&service.address()).unwrap())
}

fn config(service: &Service) -> Value {
    json!({"host": "127.0.0.1", "port": service.port, "admin_token": ADMIN_TOKEN})
}

#[test]
fn a_credential_works_until_it_is_revoked() {
    let service = Service::start();
    let plugin = plugin(&service);
    let lease = lease("reader");

    let issued = plugin
        .create(&config(&service), &json!({}), &lease)
        .unwrap();
    let username = issued.credential.get("username").unwrap();
    let password = issued.credential.get("password").unwrap();
    assert!(service.login(username, password));

    // No handle: as after a crash, the name comes from the lease again.
    plugin
        .revoke(&config(&service), &json!({}), None, &lease)
        .unwrap();
    assert!(!service.login(username, password));
    // Revoking again is not an error: the user is already gone.
    plugin
        .revoke(&config(&service), &json!({}), None, &lease)
        .unwrap();
}

#[test]
fn validate_checks_the_admin_token() {
    let service = Service::start();
    let plugin = plugin(&service);
    plugin.validate(&config(&service), None).unwrap();

    let mut wrong = config(&service);
    wrong["admin_token"] = json!("not-it");
    let err = plugin.validate(&wrong, None).unwrap_err();
    assert!(err.to_string().contains("bad admin token"), "{err}");
}

#[test]
fn a_host_that_is_not_granted_is_refused() {
    let service = Service::start();
    let plugin = TestPlugin::this_crate();
    let err = plugin.validate(&config(&service), None).unwrap_err();
    assert!(err.to_string().contains("not granted"), "{err}");
}
