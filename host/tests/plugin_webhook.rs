//! The bundled `webhook` plugin through the running broker, against an in-house
//! service written in the test (axum, real loopback HTTP) that speaks the
//! Akeyless custom-producer protocol and checks the plugin's signature.

mod support;

use leasehold_test_support::{InHouse, Users};
use serde_json::{Value, json};
use std::time::Duration;
use support::{Api, Server, eventually};

const SIGNING_KEY: &str = "signing-key-of-the-in-house-team";
const BEARER: &str = "bearer-token-of-the-broker";
const PAYLOAD: &str = "admin-payload-hunter2";

/// The status `/login` answers for the credential in `issued`.
fn login(service: &InHouse, issued: &Value) -> u16 {
    reqwest::blocking::Client::new()
        .get(format!("{}/login", service.url()))
        .basic_auth(
            issued["data"]["username"].as_str().unwrap(),
            issued["data"]["password"].as_str(),
        )
        .send()
        .unwrap()
        .status()
        .as_u16()
}

fn set_up(api: &Api, service: &InHouse) {
    api.ok("sys/mounts/hooks", json!({"type": "webhook"}));
    api.grant("hooks", json!({"allowed_origins": [service.url()]}));
    api.ok(
        "hooks/config/users",
        json!({
            "url": service.url(),
            "payload": PAYLOAD,
            "signing_key": SIGNING_KEY,
            "bearer_token": BEARER,
            "timeout_seconds": 3,
            "allowed_roles": ["dev"],
        }),
    );
    api.ok(
        "hooks/roles/dev",
        json!({"db_name": "users", "input": {"group": "dev"}, "sub_claims": {"team": ["a"]}, "default_ttl": "1h"}),
    );
}

#[test]
fn webhook_users_are_created_signed_revoked_and_retried_through_outages() {
    let root = tempfile::tempdir().unwrap();
    let users = Users::new(PAYLOAD);
    let service = InHouse::start(&users, SIGNING_KEY, Some(BEARER), 0);
    let server = Server::with_config(
        &support::data_dir(&root),
        "[leases]\nretry_base_seconds = 1\nretry_max_seconds = 2\n",
    );
    let api = server.api(&server.init_and_unseal());
    set_up(&api, &service);

    // Secrets stay write-only.
    let (_, read) = api.get("hooks/config/users");
    let details = read["data"]["connection_details"].as_object().unwrap();
    for secret in ["payload", "signing_key", "bearer_token"] {
        assert!(!details.contains_key(secret), "{read}");
    }

    // Issue: the service got the role's input, the requester and the lease id.
    let (status, issued) = api.get("hooks/creds/dev");
    assert_eq!(status, 200, "{issued}");
    assert_eq!(login(&service, &issued), 200);
    let made = users.all();
    assert_eq!(made.len(), 1);
    assert_eq!(made[0].input, json!({"group": "dev"}));
    assert_eq!(made[0].client_info["access_id"], "root");
    assert_eq!(made[0].client_info["sub_claims"], json!({"team": ["a"]}));
    assert_eq!(made[0].lease_id, issued["lease_id"].as_str().unwrap());

    // Revoke: the login fails.
    let (status, _) = api.put("sys/leases/revoke", json!({"lease_id": issued["lease_id"]}));
    assert_eq!(status, 204);
    assert_eq!(login(&service, &issued), 401);
    assert!(users.all().is_empty());

    // A call without the plugin's signature is refused by the service.
    let forged = reqwest::blocking::Client::new()
        .post(format!("{}/sync/create", service.url()))
        .header("X-Leasehold-Timestamp", "1")
        .header("X-Leasehold-Signature", "v1=00")
        .header("Authorization", format!("Bearer {BEARER}"))
        .json(&json!({"payload": PAYLOAD, "input": {}, "client_info": {}}))
        .send()
        .unwrap();
    assert_eq!(forged.status().as_u16(), 401);
    assert!(users.all().is_empty());

    // The service down: the issue fails as retryable and nothing is recorded.
    let port = service.stop();
    let (status, failed) = api.get("hooks/creds/dev");
    assert_eq!(status, 502, "{failed}");
    assert!(
        failed["errors"][0].as_str().unwrap().contains("retryable"),
        "{failed}"
    );
    assert_eq!(
        api.list("sys/leases/lookup/hooks/").0,
        404,
        "a failed issue left a lease"
    );

    // Revoke while it is down: refused now, retried until it is back.
    let service = InHouse::start(&users, SIGNING_KEY, Some(BEARER), port);
    let (status, issued) = api.get("hooks/creds/dev");
    assert_eq!(status, 200, "{issued}");
    let port = service.stop();
    let (status, reply) = api.put("sys/leases/revoke", json!({"lease_id": issued["lease_id"]}));
    assert_eq!(status, 502, "{reply}");
    assert_eq!(users.all().len(), 1, "the user is still on the service");
    let service = InHouse::start(&users, SIGNING_KEY, Some(BEARER), port);
    assert!(
        eventually(Duration::from_secs(20), || users.all().is_empty()),
        "the revocation was not retried once the service came back"
    );
    assert_eq!(login(&service, &issued), 401);
    assert_eq!(
        api.put("sys/leases/lookup", json!({"lease_id": issued["lease_id"]}))
            .0,
        400
    );

    // rotate-root: the service hands out a new payload; issuing goes on with it.
    let (status, reply) = api.put("hooks/rotate-root/users", json!({}));
    assert_eq!(status, 204, "{reply}");
    assert_eq!(users.payloads().len(), 2);
    let (status, issued) = api.get("hooks/creds/dev");
    assert_eq!(status, 200, "{issued}");
    assert_eq!(login(&service, &issued), 200);
    let (status, _) = api.put("sys/leases/revoke-prefix/hooks", json!({}));
    assert_eq!(status, 204);
    assert!(users.all().is_empty());
}
