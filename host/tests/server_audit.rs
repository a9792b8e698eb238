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

/// `leasehold audit verify file` against `server`: whether the chain is
/// intact, and what the command said.
fn verify(server: &Server, token: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["audit", "verify", "file"])
        .env("LEASEHOLD_ADDR", &server.base)
        .env("LEASEHOLD_TOKEN", token)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

/// An unsealed server with a file device at `file/` writing to `audit.log` in
/// the temporary root; the root token.
fn audited_server() -> (
    tempfile::TempDir,
    Server,
    Client,
    String,
    std::path::PathBuf,
) {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&data_dir(&root));
    let client = Client::new();
    let token = server.init_and_unseal();
    let log = root.path().join("audit.log");
    enable_file_device(&client, &server, &token, &log);
    (root, server, client, token, log)
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
        creation["response"]["auth"]["client_token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:")
    );

    // The chain verifies (see `every_change_to_the_file_is_found` for breaks).
    let (ok, report) = verify(&server, &token);
    assert!(ok, "{report}");

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
    let (ok, report) = verify(&server, &token);
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

    // Sealed indeed, and it unseals again with audit still on. The seal's
    // response was written after the barrier closed, so its checkpoint could
    // not be: the chain still verifies, that line included.
    let (status, _) = call(&client, &server, "GET", "sys/mounts", &token, Value::Null);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    server.unseal(&share);
    let (status, _) = call(&client, &server, "GET", "sys/mounts", &token, Value::Null);
    assert_eq!(status, StatusCode::OK);
    let (ok, report) = verify(&server, &token);
    assert!(ok, "{report}");
}

fn lines_of(log: &std::path::Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn write_lines(log: &std::path::Path, lines: &[String]) {
    let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(log, text).unwrap();
}

#[test]
fn every_change_to_the_file_is_found_even_across_a_restart() {
    let root = tempfile::tempdir().unwrap();
    let data = data_dir(&root);
    let server = Server::with_data_dir(&data);
    let client = Client::new();
    let (token, share) = server.init_and_unseal_keeping_share();
    let log = root.path().join("audit.log");
    enable_file_device(&client, &server, &token, &log);
    for n in 0..4 {
        call(
            &client,
            &server,
            "PUT",
            &format!("sys/policies/acl/p{n}"),
            &token,
            json!({ "policy": "path \"a\" { capabilities = [\"read\"] }" }),
        );
    }
    let (ok, report) = verify(&server, &token);
    assert!(ok, "{report}");

    // Each change is found; putting the original lines back (with what was
    // written since) makes the file whole again, so each case stands alone.
    type Tamper = fn(&mut Vec<String>);
    let cases: [(&str, Tamper, &str); 7] = [
        (
            "first line deleted",
            |l| drop(l.remove(0)),
            "claims a predecessor",
        ),
        (
            "middle line deleted",
            |l| drop(l.remove(3)),
            "line 4 does not follow line 3",
        ),
        (
            "line edited",
            |l| l[2] = l[2].replacen("\"time\":\"2", "\"time\":\"1", 1),
            "line 4 does not follow line 3",
        ),
        (
            "lines swapped",
            |l| l.swap(2, 3),
            "line 3 does not follow line 2",
        ),
        ("last line deleted", |l| drop(l.pop()), "does not follow"),
        (
            "last line edited",
            |l| {
                let last = l.len() - 1;
                l[last] = l[last].replace("\"response\"", "\"Response\"");
            },
            "does not follow",
        ),
        ("file emptied", |l| l.clear(), "claims a predecessor"),
    ];
    for (what, tamper, expected) in cases {
        let original = lines_of(&log);
        let mut tampered = original.clone();
        tamper(&mut tampered);
        assert_ne!(tampered, original, "{what}: nothing changed");
        write_lines(&log, &tampered);
        let (ok, report) = verify(&server, &token);
        assert!(!ok && report.contains(expected), "{what}: {report}");
        let mut restored = original;
        restored.extend(lines_of(&log).split_off(tampered.len()));
        write_lines(&log, &restored);
        let (ok, report) = verify(&server, &token);
        assert!(ok, "{what}, restored: {report}");
    }

    // A chain recomputed without the key (as SHA-256 of each line) is no chain.
    let original = lines_of(&log);
    let mut forged: Vec<Value> = original
        .iter()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    forged.remove(3);
    let mut lines: Vec<String> = Vec::new();
    for entry in &mut forged {
        if let Some(previous) = lines.last() {
            use sha2::Digest as _;
            entry["prev_hash"] = json!(format!(
                "hmac-sha256:{}",
                hex::encode(sha2::Sha256::digest(previous.as_bytes()))
            ));
        }
        lines.push(entry.to_string());
    }
    write_lines(&log, &lines);
    let (ok, report) = verify(&server, &token);
    assert!(!ok, "a forged chain verified: {report}");
    let mut restored = original;
    restored.extend(lines_of(&log).split_off(lines.len()));
    write_lines(&log, &restored);
    assert!(verify(&server, &token).0);

    // The last line deleted while the broker is stopped: it does not take the
    // file as it finds it, so the deletion still shows after the restart.
    server.stop();
    let mut cut = lines_of(&log);
    cut.pop();
    write_lines(&log, &cut);
    let server = Server::with_data_dir(&data);
    server.unseal(&share);
    let (ok, report) = verify(&server, &token);
    assert!(!ok && report.contains("does not follow"), "{report}");
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

    // A path refused for its spelling is recorded too, as sent, without body.
    let (status, _) = call(
        &client,
        &server,
        "DELETE",
        "sys/mounts/a%2Fb",
        &token,
        Value::Null,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let text = std::fs::read_to_string(&log).unwrap();
    let spelled = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|e| e["type"] == "response" && e["request"]["path"] == "/v1/sys/mounts/a%2Fb")
        .expect("the refused spelling is audited");
    assert_eq!(spelled["response"]["status"], 400);
    assert_eq!(spelled["request"]["operation"], "delete");

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
    // The query's names in clear, its values HMAC'd.
    assert!(
        entry["request"]["query"]["force"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:"),
        "{entry}"
    );
    assert_eq!(
        entry["request"]["data"]["extra"][64],
        "[audit: 99936 more cut]",
        "{}",
        &last[..last.len().min(600)]
    );
    assert!(verify(&server, &token).0);
}

#[test]
fn the_chain_holds_while_devices_change_under_dozens_of_clients() {
    let (root, server, client, token, _log) = audited_server();

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let clients: Vec<_> = (0..32)
        .map(|n| {
            let (stop, url, token) = (stop.clone(), server.url(""), token.clone());
            std::thread::spawn(move || {
                let client = Client::new();
                let mut answers = Vec::new();
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let response = client
                        .put(format!("{url}sys/policies/acl/p{n}"))
                        .header("X-Vault-Token", &token)
                        .json(&json!({ "policy": "path \"a\" { capabilities = [\"read\"] }" }))
                        .send()
                        .unwrap();
                    answers.push(response.status());
                }
                answers
            })
        })
        .collect();
    // Devices enabled and disabled while every client writes: each change
    // drops the set of open devices while requests still hold the old one.
    for round in 0..6 {
        let other = root.path().join(format!("other-{round}.log"));
        let (status, body) = call(
            &client,
            &server,
            "PUT",
            "sys/audit/other",
            &token,
            json!({ "type": "file", "options": { "file_path": other } }),
        );
        assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
        let (status, _) = call(
            &client,
            &server,
            "DELETE",
            "sys/audit/other",
            &token,
            Value::Null,
        );
        assert_eq!(status, StatusCode::NO_CONTENT);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut answered = 0;
    for client in clients {
        for status in client.join().unwrap() {
            assert_eq!(status, StatusCode::NO_CONTENT);
            answered += 1;
        }
    }
    assert!(answered >= 32, "only {answered} requests were answered");
    let (ok, report) = verify(&server, &token);
    assert!(ok, "after {answered} requests: {report}");
}

#[test]
fn a_device_file_must_be_a_file_of_its_own() {
    let (root, server, client, token, log) = audited_server();
    let fifo = root.path().join("fifo");
    assert!(
        Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let link = root.path().join("link.log");
    std::os::unix::fs::symlink(&log, &link).unwrap();
    // A FIFO would block the writer; a symlink sends the lines elsewhere; a
    // second device on one file would break both chains.
    for file in [&fifo, &link, &log] {
        let (status, body) = call(
            &client,
            &server,
            "PUT",
            "sys/audit/second",
            &token,
            json!({ "type": "file", "options": { "file_path": file } }),
        );
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{}: {body}",
            file.display()
        );
    }
    let (_, devices) = call(&client, &server, "GET", "sys/audit", &token, Value::Null);
    assert_eq!(devices["data"].as_object().unwrap().len(), 1, "{devices}");
    let (ok, report) = verify(&server, &token);
    assert!(ok, "{report}");
}

#[test]
fn a_credential_is_audited_where_vaults_consumers_look_for_it() {
    let (_root, server, _client, token, log) = audited_server();
    let api = server.api(&token);
    api.ok("sys/mounts/n", json!({"type": "noop"}));
    api.ok("n/config/c", json!({"allowed_roles": "*"}));
    api.ok("n/roles/r", json!({"db_name": "c"}));
    let (status, issued) = api.get("n/creds/r");
    assert_eq!(status, 200, "{issued}");
    let lease_id = issued["lease_id"].as_str().unwrap();

    let text = std::fs::read_to_string(&log).unwrap();
    let entries: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["request"]["path"] == "n/creds/r")
        .collect();
    let hashed = |value: &Value| {
        value
            .as_str()
            .is_some_and(|s| s.starts_with("hmac-sha256:"))
    };
    let (request, response) = (&entries[0], &entries[1]);
    for entry in [request, response] {
        let section = &entry["request"];
        assert!(section["id"].is_string(), "{entry}");
        assert_eq!(section["operation"], "read");
        assert!(hashed(&section["client_token"]), "{entry}");
        assert!(hashed(&section["client_token_accessor"]), "{entry}");
        assert_eq!(section["remote_address"], "127.0.0.1");
        assert_eq!(section["mount_point"], "n/");
        assert_eq!(section["mount_type"], "noop");
        assert!(hashed(&entry["auth"]["client_token"]), "{entry}");
        assert!(hashed(&entry["auth"]["accessor"]), "{entry}");
        assert_eq!(entry["auth"]["policies"], json!(["root"]));
    }
    assert_eq!(request["type"], "request");
    assert_eq!(response["type"], "response");
    // The credential's fields straight under `response.data`, HMAC'd; the
    // lease id in clear under `response.secret`, to correlate with leases.
    let data = &response["response"]["data"];
    assert!(
        hashed(&data["username"]) && hashed(&data["password"]),
        "{response}"
    );
    assert_eq!(response["response"]["secret"]["lease_id"], lease_id);
    assert_eq!(response["response"]["mount_point"], "n/");
    assert_eq!(response["response"]["mount_type"], "noop");
    for secret in [issued["data"]["password"].as_str().unwrap(), token.as_str()] {
        assert!(
            !text.contains(secret),
            "a secret is in the audit log in clear"
        );
    }
}
