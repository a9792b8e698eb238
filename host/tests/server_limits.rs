//! What a hostile or careless client can hold: connections that send half a
//! request, or nothing, or stop half-way through a body, are closed after the
//! listener's timeouts; hundreds of them do not keep `sys/health` from
//! answering; and a client that sends a body over the limit reliably receives
//! its 413.

mod support;

use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};
use support::Server;

const LISTENER: &str = "[listener]\nheader_read_timeout = \"2s\"\nbody_read_timeout = \"2s\"\n\
                        idle_timeout = \"3s\"\n";

fn address(server: &Server) -> String {
    server.base.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection; what it sent before that.
fn until_closed(stream: &mut TcpStream) -> String {
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut seen = Vec::new();
    let mut buffer = [0u8; 4096];
    loop {
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(n) => seen.extend_from_slice(&buffer[..n]),
            Err(err) if err.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(err) => panic!("the server held the connection: {err}"),
        }
    }
    String::from_utf8_lossy(&seen).into_owned()
}

#[test]
fn slow_and_silent_connections_are_closed_and_do_not_crowd_out_others() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_config(&support::data_dir(&root), LISTENER);
    server.init_and_unseal();
    let addr = address(&server);

    // Half a request line: closed after the header timeout, nothing answered.
    let mut half = TcpStream::connect(&addr).unwrap();
    half.write_all(b"GET /v1/sys/hea").unwrap();
    let started = Instant::now();
    assert_eq!(until_closed(&mut half), "");
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "closed too early"
    );

    // 500 such connections at once; health still answers meanwhile.
    let held: Vec<TcpStream> = (0..500)
        .map(|_| {
            let mut stream = TcpStream::connect(&addr).unwrap();
            stream
                .write_all(b"PUT /v1/sys/policies/acl/x HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            stream
        })
        .collect();
    let health = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
        .get(server.url("sys/health"))
        .send()
        .unwrap();
    assert_eq!(health.status(), 200);
    // And every one of them is closed in its turn.
    for mut stream in held {
        assert_eq!(until_closed(&mut stream), "");
    }

    // A client that sends nothing at all is closed too.
    let mut silent = TcpStream::connect(&addr).unwrap();
    assert_eq!(until_closed(&mut silent), "");

    // A body that stops half-way: 408 and the connection closed.
    let mut slow_body = TcpStream::connect(&addr).unwrap();
    slow_body
        .write_all(
            b"PUT /v1/sys/policies/acl/x HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"policy\":",
        )
        .unwrap();
    let answer = until_closed(&mut slow_body);
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");

    // A keep-alive connection left idle after its request is closed too.
    let mut idle = TcpStream::connect(&addr).unwrap();
    idle.write_all(b"GET /v1/sys/health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let answer = until_closed(&mut idle);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_body_over_the_limit_always_gets_its_413_and_changes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let huge = json!({ "policy": "x".repeat(2 << 20) }).to_string();
    // Repeated on one keep-alive client: each must read a 413, never a reset.
    for attempt in 0..20 {
        let response = client
            .put(server.url("sys/policies/acl/huge"))
            .header("X-Vault-Token", &token)
            .body(huge.clone())
            .send()
            .unwrap_or_else(|err| panic!("attempt {attempt}: no answer: {err}"));
        assert_eq!(response.status(), 413, "attempt {attempt}");
    }
    // A chunked body (no Content-Length) over the limit too.
    let chunks = std::iter::repeat_n(vec![b' '; 64 * 1024], 40).map(Ok::<_, std::io::Error>);
    let response = client
        .put(server.url("sys/policies/acl/huge"))
        .header("X-Vault-Token", &token)
        .body(reqwest::blocking::Body::new(ChunkedReader::new(chunks)))
        .send()
        .unwrap();
    assert_eq!(response.status(), 413);
    let (status, _) = server.api(&token).get("sys/policies/acl/huge");
    assert_eq!(status, 404, "the refused policy was written");
}

#[test]
fn only_a_caller_who_may_upload_gets_the_upload_limit() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    api.ok(
        "sys/policies/acl/no-sudo",
        json!({"policy": r#"path "sys/plugins/catalog/*" { capabilities = ["create", "update"] }"#}),
    );
    let (_, created) = api.put("auth/token/create", json!({"policies": ["no-sudo"]}));
    let no_sudo = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    // Two MiB: over the ordinary limit, far under the upload limit.
    let upload = json!({ "sha256": "00", "wasm": "A".repeat(2 << 20) }).to_string();
    let send = |token: Option<&str>| {
        let mut request = client
            .put(server.url("sys/plugins/catalog/secret/big"))
            .body(upload.clone());
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        request.send().unwrap().status().as_u16()
    };
    // No token, a wrong one, or one without sudo: the body is not buffered.
    assert_eq!(send(None), 413);
    assert_eq!(send(Some("not-a-token")), 413);
    assert_eq!(send(Some(&no_sudo)), 413);
    // The root token's body is read whole, then refused for what it holds.
    assert_eq!(send(Some(&token)), 400);
}

/// A reader over chunks, so reqwest sends the body without a length.
struct ChunkedReader<I> {
    chunks: I,
    current: std::io::Cursor<Vec<u8>>,
}

impl<I: Iterator<Item = std::io::Result<Vec<u8>>>> ChunkedReader<I> {
    fn new(chunks: I) -> Self {
        Self {
            chunks,
            current: std::io::Cursor::new(Vec::new()),
        }
    }
}

impl<I: Iterator<Item = std::io::Result<Vec<u8>>>> Read for ChunkedReader<I> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            let n = self.current.read(buf)?;
            if n > 0 {
                return Ok(n);
            }
            match self.chunks.next() {
                Some(chunk) => self.current = std::io::Cursor::new(chunk?),
                None => return Ok(0),
            }
        }
    }
}
