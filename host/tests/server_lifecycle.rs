//! The server's lifecycle through the real binary and a real HTTP client: init,
//! unseal by shares, seal, restart, key rotation, dev mode, bad input, and a
//! seal and unseal with mounts, leases, quotas and an audit device in use.

mod support;

use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use support::{Server, data_dir};

fn client() -> Client {
    Client::new()
}

fn get(server: &Server, path: &str, token: Option<&str>) -> (StatusCode, Value) {
    let mut request = client().get(server.url(path));
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    let response = request.send().unwrap();
    let status = response.status();
    (status, response.json().unwrap_or(Value::Null))
}

fn put(server: &Server, path: &str, token: Option<&str>, body: Value) -> (StatusCode, Value) {
    let mut request = client().put(server.url(path)).json(&body);
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    let response = request.send().unwrap();
    let status = response.status();
    (status, response.json().unwrap_or(Value::Null))
}

fn unseal_with(server: &Server, keys: &[&Value]) -> Value {
    let mut last = Value::Null;
    for key in keys {
        let (status, body) = put(server, "sys/unseal", None, json!({ "key": key }));
        assert_eq!(status, StatusCode::OK, "{body}");
        last = body;
    }
    last
}

#[test]
fn init_unseal_seal_restart_and_rotate() {
    let root = tempfile::tempdir().unwrap();
    let dir = data_dir(&root);
    let server = Server::with_data_dir(&dir);

    assert_eq!(
        get(&server, "sys/health", None).0,
        StatusCode::NOT_IMPLEMENTED
    );
    assert_eq!(
        get(&server, "sys/init", None).1,
        json!({ "initialized": false })
    );

    let (status, init) = put(
        &server,
        "sys/init",
        None,
        json!({ "secret_shares": 5, "secret_threshold": 3 }),
    );
    assert_eq!(status, StatusCode::OK, "{init}");
    let keys = init["keys"].as_array().unwrap().clone();
    assert_eq!(keys.len(), 5);
    assert_eq!(init["keys_base64"].as_array().unwrap().len(), 5);
    let root_token = init["root_token"].as_str().unwrap().to_owned();
    assert!(root_token.starts_with("hvs."));

    // Initialized but sealed, as in Vault.
    let (status, health) = get(&server, "sys/health", None);
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        (health["initialized"].clone(), health["sealed"].clone()),
        (json!(true), json!(true))
    );
    let (status, body) = get(&server, "auth/token/lookup-self", Some(&root_token));
    assert_eq!(
        (status, body),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({ "errors": ["leasehold is sealed"] })
        )
    );
    assert_eq!(
        put(
            &server,
            "sys/init",
            None,
            json!({ "secret_shares": 1, "secret_threshold": 1 })
        )
        .0,
        StatusCode::BAD_REQUEST
    );

    // Three of five shares, one at a time; the progress shows.
    let status = unseal_with(&server, &[&keys[0], &keys[3]]);
    assert_eq!(
        (
            status["sealed"].clone(),
            status["progress"].clone(),
            status["t"].clone(),
            status["n"].clone()
        ),
        (json!(true), json!(2), json!(3), json!(5))
    );
    let status = unseal_with(&server, &[&keys[4]]);
    assert_eq!(
        (status["sealed"].clone(), status["progress"].clone()),
        (json!(false), json!(0))
    );
    assert_eq!(get(&server, "sys/health", None).0, StatusCode::OK);

    let (status, me) = get(&server, "auth/token/lookup-self", Some(&root_token));
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["data"]["policies"], json!(["root"]));
    for key in [
        "request_id",
        "lease_id",
        "renewable",
        "lease_duration",
        "data",
        "wrap_info",
        "warnings",
        "auth",
    ] {
        assert!(me.get(key).is_some(), "envelope lacks {key}: {me}");
    }
    assert_eq!(
        get(&server, "auth/token/lookup-self", Some("hvs.not-a-token")).0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get(&server, "auth/token/lookup-self", None).1,
        json!({ "errors": ["permission denied"] })
    );
    // Authorization: Bearer works like X-Vault-Token.
    let bearer = client()
        .get(server.url("auth/token/lookup-self"))
        .bearer_auth(&root_token)
        .send()
        .unwrap();
    assert_eq!(bearer.status(), StatusCode::OK);

    // Seal: everything but the lifecycle endpoints answers 503.
    assert_eq!(
        put(&server, "sys/seal", Some("hvs.wrong"), json!({})).0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        put(&server, "sys/seal", Some(&root_token), json!({})).0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        get(&server, "auth/token/lookup-self", Some(&root_token)).0,
        StatusCode::SERVICE_UNAVAILABLE
    );
    unseal_with(&server, &[&keys[1], &keys[2], &keys[4]]);
    assert_eq!(
        get(&server, "auth/token/lookup-self", Some(&root_token)).0,
        StatusCode::OK
    );

    // A restart: initialized, sealed, and the data (the root token) still there.
    server.stop();
    let server = Server::with_data_dir(&dir);
    let (_, status) = get(&server, "sys/seal-status", None);
    assert_eq!(
        (status["initialized"].clone(), status["sealed"].clone()),
        (json!(true), json!(true))
    );
    unseal_with(&server, &[&keys[0], &keys[1], &keys[2]]);
    assert_eq!(
        get(&server, "auth/token/lookup-self", Some(&root_token)).0,
        StatusCode::OK
    );

    // Rotation installs term 2 online; after a restart both old and new values read.
    assert_eq!(
        get(&server, "sys/key-status", Some(&root_token)).1["data"]["term"],
        json!(1)
    );
    assert_eq!(
        put(&server, "sys/rotate", Some(&root_token), json!({})).0,
        StatusCode::NO_CONTENT
    );
    let (_, key_status) = get(&server, "sys/key-status", Some(&root_token));
    assert_eq!(
        (
            key_status["data"]["term"].clone(),
            key_status["term"].clone()
        ),
        (json!(2), json!(2))
    );
    server.stop();
    let server = Server::with_data_dir(&dir);
    unseal_with(&server, &[&keys[2], &keys[3], &keys[4]]);
    assert_eq!(
        get(&server, "sys/key-status", Some(&root_token)).1["data"]["term"],
        json!(2)
    );
    // The root token was written under term 1 and still reads.
    assert_eq!(
        get(&server, "auth/token/lookup-self", Some(&root_token)).0,
        StatusCode::OK
    );

    // No secret in the server's own output.
    let output = server.stop();
    assert!(
        !output.contains(&root_token),
        "the root token reached the log"
    );
    for key in &keys {
        assert!(
            !output.contains(key.as_str().unwrap()),
            "an unseal share reached the log"
        );
    }
}

#[test]
fn shares_that_do_not_belong_together_reset_the_progress() {
    let (root_a, root_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Server::with_data_dir(&data_dir(&root_a));
    let b = Server::with_data_dir(&data_dir(&root_b));
    let init = json!({ "secret_shares": 3, "secret_threshold": 2 });
    let keys_a = put(&a, "sys/init", None, init.clone()).1["keys"].clone();
    let keys_b = put(&b, "sys/init", None, init).1["keys"].clone();

    unseal_with(&a, &[&keys_a[0]]);
    let (status, body) = put(&a, "sys/unseal", None, json!({ "key": keys_b[1] }));
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("do not belong together"),
        "{body}"
    );
    let (_, status) = get(&a, "sys/seal-status", None);
    assert_eq!(
        (status["sealed"].clone(), status["progress"].clone()),
        (json!(true), json!(0))
    );
    // The right shares still unseal.
    let status = unseal_with(&a, &[&keys_a[2], &keys_a[1]]);
    assert_eq!(status["sealed"], json!(false));

    // `reset` drops a half-done attempt.
    put(&b, "sys/unseal", None, json!({ "key": keys_b[0] }));
    let (_, status) = put(&b, "sys/unseal", None, json!({ "reset": true }));
    assert_eq!(status["progress"], json!(0));
}

#[test]
fn dev_mode_is_ready_and_prints_how_to_talk_to_it() {
    let (server, token) = Server::dev();
    let output = server.output();
    assert!(
        output.contains(&format!("export LEASEHOLD_ADDR={}", server.base)),
        "{output}"
    );
    assert_eq!(get(&server, "sys/health", None).0, StatusCode::OK);
    assert_eq!(
        get(&server, "auth/token/lookup-self", Some(&token)).0,
        StatusCode::OK
    );
    // The bundled plugins are registered and mountable.
    let (status, catalog) = get(&server, "sys/plugins/catalog", Some(&token));
    assert_eq!(status, StatusCode::OK);
    for bundled in ["htpasswd", "noop"] {
        assert!(
            catalog["data"]["secret"]
                .as_array()
                .unwrap()
                .contains(&Value::from(bundled)),
            "{catalog}"
        );
    }
    let (status, _) = put(
        &server,
        "sys/mounts/noop",
        Some(&token),
        serde_json::json!({"type": "noop"}),
    );
    assert_eq!(status, StatusCode::NO_CONTENT);
}

#[test]
fn bad_requests_get_clear_errors_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&data_dir(&root));
    let raw = |method: reqwest::Method, path: &str, body: &'static str| {
        let response = client()
            .request(method, server.url(path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .unwrap();
        let status = response.status();
        (status, response.json::<Value>().unwrap())
    };
    let message = |body: &Value| body["errors"][0].as_str().unwrap_or_default().to_owned();

    let (status, body) = raw(reqwest::Method::PUT, "sys/init", "{\"secret_shares\": 5,");
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("not valid JSON"), "{body}");

    let (status, body) = raw(
        reqwest::Method::PUT,
        "sys/init",
        r#"{"secret_shares": "five", "secret_threshold": 3}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        message(&body),
        "field `secret_shares` has the wrong type or value"
    );

    let (status, body) = raw(
        reqwest::Method::PUT,
        "sys/init",
        r#"{"secret_shares": 5, "secret_threshold": 3, "shares": 2}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("unknown field `shares`"), "{body}");

    let (status, body) = raw(
        reqwest::Method::PUT,
        "sys/init",
        r#"{"secret_shares": 3, "secret_threshold": 5}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("cannot be larger"), "{body}");

    let (status, body) = raw(
        reqwest::Method::PUT,
        "sys/init",
        r#"{"secret_shares": 3, "secret_threshold": 2, "pgp_keys": ["abc"]}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(message(&body).contains("pgp_keys"), "{body}");

    let big = format!(
        "{{\"secret_shares\": 5, \"pad\": \"{}\"}}",
        "x".repeat(2 << 20)
    );
    let response = client()
        .put(server.url("sys/init"))
        .body(big)
        .send()
        .unwrap();
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Sealed, every path outside the lifecycle answers 503, known or not.
    let (status, _) = raw(reqwest::Method::GET, "sys/no-such-thing", "");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    let (status, body) = raw(reqwest::Method::DELETE, "sys/init", "");
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert!(message(&body).contains("DELETE"), "{body}");

    let (status, body) = raw(
        reqwest::Method::PUT,
        "sys/unseal",
        r#"{"key": "zz-not-a-share"}"#,
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    // Nothing changed: still uninitialized.
    assert_eq!(
        get(&server, "sys/init", None).1,
        json!({ "initialized": false })
    );
    // JSON nulls a client library sends for defaults are accepted.
    let (status, body) = raw(
        reqwest::Method::POST,
        "sys/init",
        r#"{"secret_shares": 1, "secret_threshold": 1, "pgp_keys": null, "root_token_pgp_key": null, "stored_shares": null}"#,
    );
    assert_eq!(status, StatusCode::OK, "{body}");

    // Unsealed: without a token every path is 403; with one, an unknown path is
    // 404 with a message.
    let root_token = body["root_token"].as_str().unwrap().to_owned();
    unseal_with(&server, &[&body["keys"][0]]);
    let (status, _) = raw(reqwest::Method::GET, "sys/no-such-thing", "");
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, body) = get(&server, "sys/no-such-thing", Some(&root_token));
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(message(&body), "no handler for route \"sys/no-such-thing\"");
}

#[test]
fn a_seal_closes_every_mount_and_the_next_unseal_brings_it_all_back() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&data_dir(&root));
    let (token, share) = server.init_and_unseal_keeping_share();
    let api = server.api(&token);
    let log = root.path().join("audit.log");
    api.ok(
        "sys/audit/file",
        json!({ "type": "file", "options": { "file_path": log.to_str().unwrap() } }),
    );
    api.ok("sys/mounts/n", json!({ "type": "noop" }));
    api.ok("n/config/c", json!({ "allowed_roles": "*" }));
    api.ok("n/roles/r", json!({ "db_name": "c", "default_ttl": "1h" }));
    api.ok(
        "sys/quotas/lease-count/two",
        json!({ "path": "n/creds/r", "max_leases": 2 }),
    );
    let (status, before) = api.get("n/creds/r");
    assert_eq!(status, 200, "{before}");
    let held = json!({ "lease_id": before["lease_id"] });

    assert_eq!(api.put("sys/seal", json!({})).0, 204);
    let sealed = (503, json!({ "errors": ["leasehold is sealed"] }));
    assert_eq!(api.get("n/creds/r"), sealed);
    assert_eq!(api.put("sys/leases/lookup", held.clone()), sealed);

    // The unseal answers once the broker serves again: the mount, the lease
    // taken before the seal, and the lease count (one held, so one more fits).
    server.unseal(&share);
    let (status, after) = api.get("n/creds/r");
    assert_eq!(status, 200, "{after}");
    assert_eq!(api.get("n/creds/r").0, 429);
    let (status, found) = api.put("sys/leases/lookup", held.clone());
    assert_eq!(status, 200, "{found}");
    assert_eq!(api.put("sys/leases/renew", held.clone()).0, 200);
    assert_eq!(api.put("sys/leases/revoke", held).0, 204);
    assert_eq!(api.get("n/creds/r").0, 200);

    // One audit chain across the seal: the devices opened again after the
    // unseal continue it.
    let verified = std::process::Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["audit", "verify", "file"])
        .env("LEASEHOLD_ADDR", &server.base)
        .env("LEASEHOLD_TOKEN", &token)
        .output()
        .unwrap();
    assert!(
        verified.status.success(),
        "{}{}",
        String::from_utf8_lossy(&verified.stdout),
        String::from_utf8_lossy(&verified.stderr)
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.lines()
            .map(|l| serde_json::from_str::<Value>(l).unwrap())
            .any(|l| l["type"] == "response"
                && l["request"]["path"] == "n/creds/r"
                && l["response"]["status"] == 429),
        "the refusal after the unseal is audited:\n{text}"
    );
}
