//! The plugin in the broker's sandbox against the service in `service/`, started
//! by each test on a free loopback port.

use leasehold_sdk::testing::{Grants, PluginError, TestPlugin, lease};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
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
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/service/inventory.py"))
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

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The status `POST /login` answers for these credentials.
    fn login(&self, username: &str, password: &str) -> u16 {
        let body = json!({"username": username, "password": password}).to_string();
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "POST /login HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .expect("an HTTP status line")
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn plugin(service: &Service) -> TestPlugin {
    TestPlugin::this_crate().with_grants(Grants::none().allow_http(&service.url()).unwrap())
}

fn config(service: &Service) -> Value {
    json!({"url": service.url(), "admin_token": ADMIN_TOKEN})
}

#[test]
fn a_credential_works_until_it_is_revoked() {
    let service = Service::start();
    let plugin = plugin(&service);
    let role = json!({"group": "readers"});
    let lease = lease("reader");

    let issued = plugin.create(&config(&service), &role, &lease).unwrap();
    let username = issued.credential.get("username").unwrap();
    let password = issued.credential.get("password").unwrap();
    assert_eq!(service.login(username, password), 200);

    // No handle: as after a crash, the name comes from the lease again.
    plugin
        .revoke(&config(&service), &role, None, &lease)
        .unwrap();
    assert_eq!(service.login(username, password), 401);
    // Revoking again is not an error: the user is already gone.
    plugin
        .revoke(&config(&service), &role, None, &lease)
        .unwrap();
}

#[test]
fn validate_checks_the_url_and_the_token() {
    let service = Service::start();
    let plugin = plugin(&service);
    plugin.validate(&config(&service), None).unwrap();

    let wrong_token = json!({"url": service.url(), "admin_token": "not-it"});
    let err = plugin.validate(&wrong_token, None).unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
}

#[test]
fn an_origin_that_is_not_granted_is_refused() {
    let service = Service::start();
    let plugin = TestPlugin::this_crate();
    let err = plugin.validate(&config(&service), None).unwrap_err();
    assert!(matches!(err, PluginError::CapabilityDenied(_)), "{err:?}");
    assert!(err.to_string().contains("not granted"), "{err}");
}
