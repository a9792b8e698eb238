//! The listener over TLS: a real HTTPS client (curl) that trusts the server's
//! certificate gets answers; plain HTTP does not; a client that never finishes
//! its handshake is closed; a bad key file stops startup with a clear error.

mod support;

use leasehold_test_support::TestCa;
use std::process::Command;
use support::Server;

#[test]
fn the_api_is_served_over_tls_when_configured() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&root.path().join("ca"));
    let (cert, key) = (&ca.server.cert, &ca.server.key);
    let config = root.path().join("leasehold.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[tls]\ncert_file = {:?}\nkey_file = {:?}\n\
             [listener]\ntls_handshake_timeout = \"2s\"\n",
            root.path().join("data").display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start(&["server", "--config", config.to_str().unwrap()]);
    assert!(
        server.base.starts_with("https://127.0.0.1:"),
        "{}",
        server.base
    );

    let curl = |extra: &[&str], url: String| {
        Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "--max-time",
                "5",
            ])
            .args(extra)
            .arg(url)
            .output()
            .unwrap()
    };
    let trusted = curl(
        &["--cacert", ca.ca_cert.to_str().unwrap()],
        server.url("sys/health"),
    );
    assert_eq!(
        String::from_utf8_lossy(&trusted.stdout),
        "501",
        "uninitialized health over HTTPS"
    );
    let untrusted = curl(&[], server.url("sys/health"));
    assert!(
        !untrusted.status.success(),
        "an untrusted certificate was accepted"
    );
    let plain = curl(&[], server.url("sys/health").replace("https://", "http://"));
    assert_ne!(
        String::from_utf8_lossy(&plain.stdout),
        "501",
        "plain HTTP was served"
    );

    // A client that connects and never starts its handshake is closed after
    // the handshake timeout, not held.
    let mut silent =
        std::net::TcpStream::connect(server.base.trim_start_matches("https://")).unwrap();
    silent
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut byte = [0u8; 1];
    let closed = std::io::Read::read(&mut silent, &mut byte);
    assert!(
        matches!(closed, Ok(0))
            || closed
                .as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "the silent TLS client was held: {closed:?}"
    );

    // A key that is not a key stops the server before it listens.
    drop(server);
    std::fs::write(key, "not a key").unwrap();
    let failed = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["server", "--config", config.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("TLS key") && stderr.contains(key.to_str().unwrap()),
        "{stderr}"
    );
}
