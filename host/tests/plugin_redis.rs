//! The bundled `redis` plugin through the running broker against a real Redis 7:
//! credentials with exactly their ACL rules, connections killed at revoke, users
//! gone at expiry, a rotated admin password, and grants that hold.

mod support;

use leasehold_test_support::{RedisClient, RedisServer, TestCa};
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
    let greeting = admin.send(&format!("AUTH admin {ADMIN_PASSWORD}"));
    assert_eq!(greeting.as_deref(), Some("+OK"), "port {}", redis.port);
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

/// The ids of the broker's admin connections, from `CLIENT LIST` (less the
/// asking connection itself).
fn broker_connections(redis: &RedisServer, password: &str) -> Vec<String> {
    let mut admin = redis.client();
    assert!(admin.auth("admin", password));
    let listed = admin.send("CLIENT LIST").unwrap();
    let mut ids: Vec<String> = listed
        .lines()
        .filter(|line| line.contains(" user=admin ") && !line.contains("cmd=client|list"))
        .filter_map(|line| {
            line.split(' ')
                .next()?
                .strip_prefix("id=")
                .map(str::to_owned)
        })
        .collect();
    ids.sort();
    ids
}

#[test]
fn redis_over_tls_with_one_kept_session() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&root.path().join("ca"));
    let start = |name: &str, certificate| {
        let dir = root.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        RedisServer::start_with_tls(&dir, ADMIN_PASSWORD, certificate)
    };
    let redis = start("right", &ca.server);
    let wrong = start("wrong", &ca.wrong_name);
    let (tls_port, wrong_port) = (redis.tls_port.unwrap(), wrong.tls_port.unwrap());

    let server = Server::with_data_dir(&support::data_dir(&root));
    let api = server.api(&server.init_and_unseal());
    api.ok("sys/mounts/cache", json!({"type": "redis"}));
    let grants: Vec<String> = [tls_port, redis.port, wrong_port]
        .iter()
        .map(|port| format!("127.0.0.1:{port}"))
        .collect();
    api.grant("cache", json!({"allowed_hosts": grants}));
    let config = |port: u16, extra: Value| {
        let mut config = json!({"host": "127.0.0.1", "port": port, "username": "admin",
                                "password": ADMIN_PASSWORD, "allowed_roles": "*", "tls": true});
        for (key, value) in extra.as_object().unwrap() {
            config[key] = value.clone();
        }
        config
    };
    let error_of = |reply: &Value| reply["errors"][0].as_str().unwrap_or_default().to_owned();

    // TLS, verified against the test's CA: credentials work, and every one was
    // made on the same kept admin session.
    api.ok(
        "cache/config/main",
        config(tls_port, json!({"ca_cert": ca.ca_pem})),
    );
    api.ok(
        "cache/roles/reader",
        json!({"db_name": "main", "acl_rules": ["~app:*", "+@read"], "default_ttl": "1h"}),
    );
    let (status, issued) = api.get("cache/creds/reader");
    assert_eq!(status, 200, "{issued}");
    assert!(user_client(&redis, &issued).is_some());
    let kept = broker_connections(&redis, ADMIN_PASSWORD);
    assert_eq!(kept.len(), 1, "{kept:?}");
    for _ in 0..3 {
        assert_eq!(api.get("cache/creds/reader").0, 200);
    }
    assert_eq!(broker_connections(&redis, ADMIN_PASSWORD), kept);

    // The system's roots do not hold the test CA.
    let (status, reply) = api.put("cache/config/roots", config(tls_port, json!({})));
    assert_eq!(status, 400, "{reply}");
    assert!(error_of(&reply).contains("UnknownIssuer"), "{reply}");

    // A certificate for another name is refused, unless verification is off.
    let (status, reply) = api.put(
        "cache/config/wrong",
        config(wrong_port, json!({"ca_cert": ca.ca_pem})),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(error_of(&reply).contains("not valid for name"), "{reply}");
    let (status, reply) = api.put(
        "cache/config/insecure",
        config(wrong_port, json!({"insecure_tls": true})),
    );
    assert_eq!(status, 204, "{reply}");

    // TLS to the plain port fails the handshake and says so.
    let (status, reply) = api.put(
        "cache/config/plain",
        config(redis.port, json!({"ca_cert": ca.ca_pem})),
    );
    assert!(status == 400 || status == 502, "{status} {reply}");
    assert!(error_of(&reply).contains("TLS"), "{reply}");
    assert!(!error_of(&reply).contains(ADMIN_PASSWORD), "{reply}");

    // TLS options without TLS are a mistake, not ignored.
    let (status, reply) = api.put(
        "cache/config/confused",
        config(redis.port, json!({"tls": false, "ca_cert": ca.ca_pem})),
    );
    assert_eq!(status, 400, "{reply}");
}
