//! An in-house user API built on Python's standard-library `http.server`
//! (`inventory_service.py` beside this file), which cannot read a chunked
//! request body: the target of the `inventory` fixture plugin. It records every
//! request's method, path, headers and body length, so a test can check how the
//! plugin's requests were framed.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const SCRIPT: &str = include_str!("inventory_service.py");

/// How long the service may take to start: generous, for a loaded machine.
const START_LIMIT: Duration = Duration::from_secs(60);

/// A running service, stopped on drop.
pub struct InventoryService {
    child: Child,
    port: u16,
}

/// One request as the service read it.
#[derive(Debug, Clone)]
pub struct Recorded {
    /// `GET`, `POST`, `DELETE`.
    pub method: String,
    /// The request target.
    pub path: String,
    /// The headers, names lowercased.
    pub headers: serde_json::Map<String, Value>,
    /// The bytes of body the service read (by `Content-Length`).
    pub body_length: u64,
}

impl Recorded {
    /// The value of header `name` (lowercase), if it came.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }
}

impl InventoryService {
    /// Starts the service on a free loopback port, accepting `api_key`, and
    /// waits until it answers.
    pub fn start(api_key: &str) -> Self {
        let python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .find(|p| !p.starts_with('/') || Path::new(p).exists())
            .unwrap();
        let mut child = Command::new(python)
            .args(["-c", SCRIPT, api_key])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting python3 (run scripts/setup)");
        let stdout = child.stdout.take().unwrap();
        let (sender, receiver) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(line);
        });
        let line = receiver.recv_timeout(START_LIMIT).unwrap_or_default();
        let Ok(port) = line.trim().parse::<u16>() else {
            let _ = child.kill();
            panic!("the Python service did not say its port within {START_LIMIT:?}: {line:?}");
        };
        let service = Self { child, port };
        let deadline = Instant::now() + START_LIMIT;
        while service.try_state().is_none() {
            assert!(
                Instant::now() < deadline,
                "the Python service on port {port} did not answer within {START_LIMIT:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        service
    }

    /// Its base URL, `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Every user: `{"name", "password", "groups"}`.
    pub fn users(&self) -> Vec<Value> {
        self.state()["users"].as_array().unwrap().clone()
    }

    /// Every request the service read, oldest first.
    pub fn requests(&self) -> Vec<Recorded> {
        self.state()["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| Recorded {
                method: r["method"].as_str().unwrap().to_owned(),
                path: r["path"].as_str().unwrap().to_owned(),
                headers: r["headers"].as_object().unwrap().clone(),
                body_length: r["body_length"].as_u64().unwrap(),
            })
            .collect()
    }

    fn state(&self) -> Value {
        self.try_state()
            .expect("the Python service's state could not be read")
    }

    /// `GET /_test/state` over a plain socket, as HTTP/1.0.
    fn try_state(&self) -> Option<Value> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .ok()?;
        stream
            .write_all(b"GET /_test/state HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).ok()?;
        let answer = String::from_utf8(answer).ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        if !head.starts_with("HTTP/1.0 200") {
            return None;
        }
        serde_json::from_str(body).ok()
    }
}

impl Drop for InventoryService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
