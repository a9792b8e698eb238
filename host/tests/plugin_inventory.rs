//! The SDK's front-page plugin (`tests/fixtures/inventory`) through the running
//! broker, against an in-house user API built on Python's standard-library
//! `http.server`, which reads request bodies only by `Content-Length`: users are
//! created and revoked, every body is framed with `Content-Length` and a DELETE
//! carries none; a create whose connection broke after the request went out is
//! revoked by the name derived from the lease; and a service that is not there
//! gets an error in words.

mod support;

use leasehold_test_support::{InventoryService, Recorded};
use serde_json::{Value, json};
use std::time::Duration;
use support::{Server, eventually};

const API_KEY: &str = "inventory-admin-key-hunter2";

/// The only request the service read with `method` and `path`.
fn one(requests: &[Recorded], method: &str, path: &str) -> Recorded {
    let found: Vec<_> = requests
        .iter()
        .filter(|r| r.method == method && r.path == path)
        .collect();
    assert_eq!(found.len(), 1, "{method} {path} in {requests:#?}");
    found[0].clone()
}

fn error_of(reply: &Value) -> &str {
    reply["errors"][0].as_str().unwrap_or_default()
}

/// A loopback URL nothing listens on.
fn closed_url() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn inventory_users_live_on_a_python_http_server_service() {
    let root = tempfile::tempdir().unwrap();
    let service = InventoryService::start(API_KEY);
    let server = Server::with_config(
        &support::data_dir(&root),
        "[leases]\nretry_base_seconds = 1\nretry_max_seconds = 2\n",
    );
    let api = server.api(&server.init_and_unseal());
    api.mount_plugin(
        "inventory",
        leasehold_plugin_artifacts::INVENTORY,
        "inventory",
    );
    let closed = closed_url();
    api.grant(
        "inventory",
        json!({"allowed_origins": [service.url(), closed.clone()]}),
    );
    // Writing the connection validates it: a GET with the key.
    api.ok(
        "inventory/config/users",
        json!({"url": service.url(), "api_key": API_KEY, "allowed_roles": "*"}),
    );
    api.ok(
        "inventory/roles/dev",
        json!({"db_name": "users", "groups": ["dev"], "default_ttl": "1h"}),
    );

    // Issue: the user is on the service with the credential's password.
    let (status, issued) = api.get("inventory/creds/dev");
    assert_eq!(status, 200, "{issued}");
    let name = issued["data"]["username"].as_str().unwrap().to_owned();
    assert!(
        name.starts_with("v-root-dev-") && name.len() <= 32,
        "{name}"
    );
    assert_eq!(
        service.users(),
        vec![json!({"name": name, "password": issued["data"]["password"], "groups": ["dev"]})]
    );

    // Revoke: the user is gone.
    let (status, reply) = api.put("sys/leases/revoke", json!({"lease_id": issued["lease_id"]}));
    assert_eq!(status, 204, "{reply}");
    assert!(service.users().is_empty());

    // How the requests were framed: the POST's body by Content-Length, the
    // GET and the DELETE with no body at all; nothing chunked.
    let requests = service.requests();
    let post = one(&requests, "POST", "/api/users");
    assert!(post.body_length > 0);
    assert_eq!(
        post.header("content-length"),
        Some(post.body_length.to_string().as_str())
    );
    let delete = one(&requests, "DELETE", &format!("/api/users/{name}"));
    assert_eq!(delete.body_length, 0);
    assert_eq!(delete.header("content-length"), None, "{delete:?}");
    let gets: Vec<_> = requests.iter().filter(|r| r.method == "GET").collect();
    assert!(!gets.is_empty(), "{requests:#?}");
    for get in gets {
        assert_eq!(
            (get.header("content-length"), get.body_length),
            (None, 0),
            "{get:?}"
        );
    }
    for request in &requests {
        assert_eq!(request.header("transfer-encoding"), None, "{request:?}");
        assert_eq!(
            request.header("authorization"),
            Some(format!("Bearer {API_KEY}").as_str())
        );
    }

    // The service makes the user, then closes the connection without an
    // answer: the create fails in words, and the broker revokes the lease
    // without a handle, by the name derived from it.
    api.ok(
        "inventory/roles/flaky",
        json!({"db_name": "users", "groups": ["close-before-answering"], "default_ttl": "1h"}),
    );
    let (status, failed) = api.get("inventory/creds/flaky");
    assert_eq!(status, 500, "{failed}");
    let message = error_of(&failed);
    assert!(
        message.contains("POST http://127.0.0.1:")
            && message.contains("closed the connection before answering")
            && message.contains("may have reached the service"),
        "{failed}"
    );
    assert!(!message.contains("ErrorCode"), "{failed}");
    assert!(!message.contains(API_KEY), "{failed}");
    assert_eq!(service.users().len(), 1, "the service made the user");
    assert!(
        eventually(Duration::from_secs(30), || service.users().is_empty()),
        "the broker did not revoke what the failed create made: {:?}",
        service.users()
    );
    let deletes = service
        .requests()
        .into_iter()
        .filter(|r| r.method == "DELETE")
        .count();
    assert_eq!(
        deletes, 2,
        "one DELETE for the revoke, one for the recovery"
    );

    // A service that is not there: the connection's check and an issue both
    // say so in words, as retryable, and nothing is recorded.
    let (status, refused) = api.put(
        "inventory/config/down",
        json!({"url": closed, "api_key": API_KEY, "allowed_roles": "*"}),
    );
    assert_eq!(status, 502, "{refused}");
    let words = format!(
        "connection refused by {}",
        closed.trim_start_matches("http://")
    );
    assert!(error_of(&refused).contains(&words), "{refused}");
    // A role is checked against its connection when written, so the service
    // goes away after both are in place.
    api.ok(
        "inventory/config/down",
        json!({"url": service.url(), "api_key": API_KEY, "allowed_roles": "*"}),
    );
    api.ok(
        "inventory/roles/down",
        json!({"db_name": "down", "groups": ["dev"], "default_ttl": "1h"}),
    );
    api.ok(
        "inventory/config/down",
        json!({"url": closed, "api_key": API_KEY, "allowed_roles": "*", "verify_connection": false}),
    );
    let (status, failed) = api.get("inventory/creds/down");
    assert_eq!(status, 502, "{failed}");
    let message = error_of(&failed);
    assert!(
        message.contains(&format!("POST {closed}/api/users: {words}"))
            && message.contains("retryable"),
        "{failed}"
    );
    assert!(!message.contains("ErrorCode"), "{failed}");
    assert!(
        api.list("sys/leases/lookup/inventory/creds/down/").0 == 404,
        "a failed issue left a lease"
    );
}
