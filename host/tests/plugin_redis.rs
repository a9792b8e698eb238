//! The bundled `redis` plugin through the running broker against a real Redis 7:
//! credentials with exactly their ACL rules, connections killed at revoke, users
//! gone at expiry, a rotated admin password, and grants that hold.

mod support;

use leasehold_test_support::{RedisClient, RedisServer};
use serde_json::{Value, json};
use std::time::Duration;
use support::{Server, eventually};

const ADMIN_PASSWORD: &str = "admin-password-3c9a";

fn user_client(redis: &RedisServer, issued: &Value) -> Option<RedisClient> {
    let mut client = redis.client();
    client
        .auth(
            issued["data"]["username"].as_str().unwrap(),
            issued["data"]["password"].as_str().unwrap(),
        )
        .then_some(client)
}

/// The users Redis has, sorted.
fn users(redis: &RedisServer, password: &str) -> Vec<String> {
    let mut admin = redis.client();
    assert!(admin.auth("admin", password));
    let mut names: Vec<String> = admin
        .send("ACL USERS")
        .unwrap()
        .split(',')
        .map(str::to_owned)
        .collect();
    names.sort();
    names
}

#[test]
fn redis_users_have_their_rules_and_go_at_revoke_and_expiry() {
    let root = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(root.path(), ADMIN_PASSWORD);
    let mut admin = redis.client();
    assert!(admin.auth("admin", ADMIN_PASSWORD));
    assert_eq!(admin.send("SET app:x 1").as_deref(), Some("+OK"));
    assert_eq!(admin.send("SET other:x 2").as_deref(), Some("+OK"));

    let server = Server::with_data_dir(&support::data_dir(&root));
    let api = server.api(&server.init_and_unseal());
    api.ok("sys/mounts/cache", json!({"type": "redis"}));
    let grant = format!("127.0.0.1:{}", redis.port);

    // A grant that omits the server's port: verify_connection fails, clearly.
    api.grant("cache", json!({"allowed_hosts": ["127.0.0.1:1"]}));
    let (status, refused) = api.put(
        "cache/config/main",
        json!({"host": "127.0.0.1", "port": redis.port, "username": "admin",
               "password": ADMIN_PASSWORD}),
    );
    assert!(status == 400 || status == 502, "{status} {refused}");
    let message = refused["errors"][0].as_str().unwrap();
    assert!(message.contains(&redis.port.to_string()), "{message}");
    assert!(!message.contains(ADMIN_PASSWORD), "{message}");
    assert_eq!(api.get("cache/config/main").0, 404);

    api.grant("cache", json!({"allowed_hosts": [grant]}));
    api.ok(
        "cache/config/main",
        json!({"host": "127.0.0.1", "port": redis.port, "username": "admin",
               "password": ADMIN_PASSWORD, "allowed_roles": "*"}),
    );
    api.ok(
        "cache/roles/reader",
        json!({"db_name": "main", "acl_rules": ["~app:*", "+@read"], "default_ttl": "1h"}),
    );
    api.ok(
        "cache/roles/short",
        json!({"db_name": "main", "acl_rules": ["~app:*", "+get"], "default_ttl": "2s"}),
    );
    // Rules that would take the user over are refused, and nothing is made.
    for bad in [json!(["nopass"]), json!(["~*"]), json!([">pw"])] {
        let (status, reply) = api.put(
            "cache/roles/bad",
            json!({"db_name": "main", "acl_rules": bad}),
        );
        assert_eq!(status, 400, "{reply}");
    }
    assert_eq!(
        users(&redis, ADMIN_PASSWORD),
        ["admin", "default"],
        "a refused role made a user"
    );

    // The credential reads app:*, and nothing else.
    let (status, issued) = api.get("cache/creds/reader");
    assert_eq!(status, 200, "{issued}");
    let mut user = user_client(&redis, &issued).expect("the credential logs in");
    assert_eq!(user.send("GET app:x").as_deref(), Some("1"));
    assert!(user.send("GET other:x").unwrap().starts_with("-NOPERM"));
    assert!(user.send("SET app:x 2").unwrap().starts_with("-NOPERM"));

    // Revoke: the open connection is killed and the login fails.
    let (status, _) = api.put("sys/leases/revoke", json!({"lease_id": issued["lease_id"]}));
    assert_eq!(status, 204);
    assert_eq!(
        user.send("PING"),
        None,
        "the user's connection is still open"
    );
    assert!(user_client(&redis, &issued).is_none());

    // Expiry, with no request.
    let issued_at = std::time::Instant::now();
    let (_, short) = api.get("cache/creds/short");
    support::while_live(issued_at, Duration::from_secs(2), || {
        user_client(&redis, &short).is_some()
    });
    assert!(
        eventually(Duration::from_secs(15), || user_client(&redis, &short)
            .is_none()),
        "the expired user still logs in"
    );
    assert_eq!(users(&redis, ADMIN_PASSWORD), ["admin", "default"]);

    // rotate-root: the old admin password stops working; issuing goes on.
    let (status, reply) = api.put("cache/rotate-root/main", json!({}));
    assert_eq!(status, 204, "{reply}");
    assert!(!RedisClient::connect(redis.port).auth("admin", ADMIN_PASSWORD));
    let (status, issued) = api.get("cache/creds/reader");
    assert_eq!(status, 200, "{issued}");
    assert!(user_client(&redis, &issued).is_some());
    let (status, _) = api.put("sys/leases/revoke-prefix/cache", json!({}));
    assert_eq!(status, 204);
    assert!(user_client(&redis, &issued).is_none());
}
