//! The audit log through the real binary: every request and response recorded
//! with secrets HMAC'd, a verifiable chain, and refusal when no device can write.

mod support;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use std::process::Command;
use support::{Server, data_dir};

fn call(
    client: &Client,
    server: &Server,
    method: &str,
    path: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let response = client
        .request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            server.url(path),
        )
        .header("X-Vault-Token", token)
        .json(&body)
        .send()
        .unwrap();
    let status = response.status();
    (status, response.json().unwrap_or(Value::Null))
}

fn verify(file: &std::path::Path) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["audit", "verify"])
        .arg(file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// Enables a file device at `file/` writing to `log`.
fn enable_file_device(client: &Client, server: &Server, token: &str, log: &std::path::Path) {
    let (status, body) = call(
        client,
        server,
        "PUT",
        "sys/audit/file",
        token,
        json!({ "type": "file", "options": { "file_path": log.to_str().unwrap() } }),
    );
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[test]
fn requests_are_audited_hmacd_chained_and_refused_when_no_device_writes() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&data_dir(&root));
    let client = Client::new();
    let token = server.init_and_unseal();

    // A device that cannot be written, or of a type there is none of, is refused.
    for bad in [
        json!({ "type": "file", "options": { "file_path": "/proc/leasehold-audit.log" } }),
        json!({ "type": "syslog" }),
    ] {
        let (status, body) = call(&client, &server, "PUT", "sys/audit/bad", &token, bad);
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    }

    let log = root.path().join("audit.log");
    enable_file_device(&client, &server, &token, &log);
    let (_, devices) = call(&client, &server, "GET", "sys/audit", &token, Value::Null);
    assert_eq!(devices["data"]["file/"]["type"], json!("file"));

    // Some traffic, including a secret in a request body and a token in a response.
    let secret_policy = "path \"secret-marker-9c1e/*\" { capabilities = [\"read\"] }";
    call(
        &client,
        &server,
        "PUT",
        "sys/policies/acl/marked",
        &token,
        json!({ "policy": secret_policy }),
    );
    let (_, created) = call(
        &client,
        &server,
        "POST",
        "auth/token/create",
        &token,
        json!({ "policies": ["marked"] }),
    );
    let child = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, _) = call(&client, &server, "PUT", "sys/seal", &child, json!({}));
    assert_eq!(status, StatusCode::FORBIDDEN);

    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.len() >= 8, "{text}");
    for secret in [token.as_str(), child.as_str(), "secret-marker-9c1e"] {
        assert!(
            !text.contains(secret),
            "{secret} is in the audit log in clear"
        );
    }
    // The denied request is there, with its error and readable path.
    let denied = lines
        .iter()
        .find(|l| l["type"] == "response" && l["request"]["path"] == "sys/seal")
        .expect("the denied seal is audited");
    assert_eq!(denied["response"]["status"], json!(403));
    assert_eq!(denied["error"], json!("permission denied"));
    // audit-hash finds the root token's entries.
    let (_, hashed) = call(
        &client,
        &server,
        "PUT",
        "sys/audit-hash/file",
        &token,
        json!({ "input": token }),
    );
    let hash = hashed["data"]["hash"].as_str().unwrap().to_owned();
    assert!(hash.starts_with("hmac-sha256:"));
    assert!(
        lines
            .iter()
            .any(|l| l["auth"]["client_token"] == json!(hash))
    );
    // The response carrying the child token has it hashed too.
    let creation = lines
        .iter()
        .find(|l| l["type"] == "response" && l["request"]["path"] == "auth/token/create")
        .unwrap();
    assert!(
        creation["response"]["data"]["auth"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );

    // The chain verifies, and breaks where a line is deleted or edited.
    let (ok, report) = verify(&log);
    assert!(ok, "{report}");
    let original: Vec<&str> = text.lines().collect();
    let deleted = root.path().join("deleted.log");
    let mut without: Vec<&str> = original.clone();
    without.remove(3);
    std::fs::write(&deleted, without.join("\n") + "\n").unwrap();
    let (ok, report) = verify(&deleted);
    assert!(
        !ok && report.contains("line 4 does not follow line 3"),
        "{report}"
    );
    let edited = root.path().join("edited.log");
    let mut changed: Vec<String> = original.iter().map(|l| l.to_string()).collect();
    changed[2] = changed[2].replacen("\"time\":\"2", "\"time\":\"1", 1);
    assert_ne!(changed[2], original[2]);
    std::fs::write(&edited, changed.join("\n") + "\n").unwrap();
    let (ok, report) = verify(&edited);
    assert!(
        !ok && report.contains("line 4 does not follow line 3"),
        "{report}"
    );

    // No device can write: requests are refused and change nothing.
    std::fs::remove_file(&log).unwrap();
    std::fs::create_dir(&log).unwrap();
    let (status, body) = call(
        &client,
        &server,
        "PUT",
        "sys/policies/acl/after",
        &token,
        json!({ "policy": secret_policy }),
    );
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("no audit device could record"),
        "{body}"
    );
    std::fs::remove_dir(&log).unwrap();
    let (status, _) = call(
        &client,
        &server,
        "GET",
        "sys/policies/acl/after",
        &token,
        Value::Null,
    );
    assert_eq!(status, StatusCode::NOT_FOUND, "the refused write happened");
    // The recreated file continues the chain, so it shows where it was cut.
    let (ok, report) = verify(&log);
    assert!(!ok && report.contains("cut off"), "{report}");
    // Disabling the device lets requests through unaudited.
    assert_eq!(
        call(
            &client,
            &server,
            "DELETE",
            "sys/audit/file",
            &token,
            Value::Null
        )
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        call(&client, &server, "GET", "sys/audit", &token, Value::Null).1["data"],
        json!({})
    );
}

#[test]
fn sealing_with_an_audit_device_enabled_works_and_is_audited() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&data_dir(&root));
    let client = Client::new();
    let (token, share) = server.init_and_unseal_keeping_share();
    let log = root.path().join("audit.log");
    enable_file_device(&client, &server, &token, &log);

    let (status, body) = call(&client, &server, "PUT", "sys/seal", &token, json!({}));
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let text = std::fs::read_to_string(&log).unwrap();
    let sealed = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|l| l["type"] == "response" && l["request"]["path"] == "sys/seal")
        .expect("the seal's response is audited");
    assert_eq!(sealed["response"]["status"], json!(204));
    let (ok, report) = verify(&log);
    assert!(ok, "{report}");

    // Sealed indeed, and it unseals again with audit still on.
    let (status, _) = call(&client, &server, "GET", "sys/mounts", &token, Value::Null);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    server.unseal(&share);
    let (status, _) = call(&client, &server, "GET", "sys/mounts", &token, Value::Null);
    assert_eq!(status, StatusCode::OK);
}

#[test]
fn anonymous_floods_cost_the_log_a_line_and_every_entry_is_bounded() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&data_dir(&root));
    let token = server.init_and_unseal();
    let client = Client::new();
    let log = root.path().join("audit.log");
    enable_file_device(&client, &server, &token, &log);
    // A megabyte of empty strings, without a token, then with a bad one, from
    // a few clients at once.
    let flood = format!("[{}\"\"]", "\"\",".repeat(300_000));
    let before = std::fs::metadata(&log).unwrap().len();
    let senders: Vec<_> = (0..4)
        .map(|i| {
            let (url, flood) = (server.url("sys/policies/acl/flood"), flood.clone());
            std::thread::spawn(move || {
                let mut request = Client::new().put(url).body(flood);
                if i % 2 == 1 {
                    request = request.header("X-Vault-Token", "not-a-token");
                }
                request.send().unwrap().status()
            })
        })
        .collect();
    for sender in senders {
        assert_eq!(sender.join().unwrap(), StatusCode::FORBIDDEN);
    }
    let grown = std::fs::metadata(&log).unwrap().len() - before;
    assert!(
        grown < 16 << 10,
        "four refused requests grew the log by {grown} bytes"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    let refused: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["request"]["path"] == "sys/policies/acl/flood")
        .collect();
    assert_eq!(refused.len(), 8, "{text}");
    for entry in refused.iter().filter(|e| e["type"] == "response") {
        assert_eq!(entry["response"]["status"], 403);
        assert_eq!(entry["request"]["operation"], "update");
        assert_eq!(entry["request"]["remote_address"], "127.0.0.1");
        assert!(entry["request"]["data"].is_null(), "{entry}");
    }

    // An authorized request's body is recorded bounded, as the handler saw it.
    let (status, _) = call(
        &client,
        &server,
        "PUT",
        "sys/policies/acl/flood?force=true",
        &token,
        json!({ "policy": "path \"a\" { capabilities = [\"read\"] }", "extra": vec![""; 100_000] }),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = std::fs::read_to_string(&log).unwrap();
    let last = text.lines().last().unwrap();
    assert!(last.len() < 32 << 10, "an entry of {} bytes", last.len());
    let entry: Value = serde_json::from_str(last).unwrap();
    assert_eq!(entry["request"]["query"], "force=true");
    assert_eq!(
        entry["request"]["data"]["extra"][64],
        "[audit: 99936 more cut]",
        "{}",
        &last[..last.len().min(600)]
    );
    assert!(verify(&log).0);
}
