//! The bundled `postgres` plugin through the running broker against a real
//! PostgreSQL 15 (initdb into a temporary directory, SCRAM authentication): a
//! credential that can select and not insert, gone at revoke and at expiry, a
//! rotated root password, typed statement errors, and grants that hold.

mod support;

use leasehold_test_support::PostgresServer;
use serde_json::{Value, json};
use std::time::Duration;
use support::{Server, eventually};

const ADMIN_PASSWORD: &str = "admin-password-71e2";

fn credential(issued: &Value) -> (String, String) {
    (
        issued["data"]["username"].as_str().unwrap().to_owned(),
        issued["data"]["password"].as_str().unwrap().to_owned(),
    )
}

/// How many roles the broker made are still in the server.
fn leftover_roles(pg: &PostgresServer, admin_password: &str) -> String {
    pg.query(
        "admin",
        admin_password,
        "SELECT count(*) FROM pg_roles WHERE rolname LIKE 'v-%'",
    )
}

fn role_exists(pg: &PostgresServer, admin_password: &str, name: &str) -> bool {
    pg.query(
        "admin",
        admin_password,
        &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{name}'"),
    ) == "1"
}

#[test]
fn postgres_roles_select_only_and_go_at_revoke_expiry_and_rotation() {
    let root = tempfile::tempdir().unwrap();
    let pg_dir = root.path().join("pg");
    std::fs::create_dir(&pg_dir).unwrap();
    let pg = PostgresServer::start(&pg_dir, ADMIN_PASSWORD);
    pg.query(
        "admin",
        ADMIN_PASSWORD,
        "CREATE TABLE items (id int); INSERT INTO items VALUES (1), (2);",
    );

    let server = Server::with_data_dir(&support::data_dir(&root));
    let api = server.api(&server.init_and_unseal());
    // Vault's habit: a `database` mount, the plugin named per connection.
    api.ok("sys/mounts/db", json!({"type": "database"}));
    let url = format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres",
        pg.port
    );
    let grant = format!("127.0.0.1:{}", pg.port);

    // A grant that omits the server's port: verify_connection fails clearly.
    api.grant("db", json!({"allowed_hosts": ["127.0.0.1:1"]}));
    let (status, refused) = api.put(
        "db/config/pg",
        json!({"plugin_name": "postgres", "connection_url": url, "username": "admin",
               "password": ADMIN_PASSWORD}),
    );
    assert!(status == 400 || status == 502, "{status} {refused}");
    let message = refused["errors"][0].as_str().unwrap();
    assert!(message.contains(&pg.port.to_string()), "{message}");
    assert!(!message.contains(ADMIN_PASSWORD), "{message}");
    assert_eq!(api.get("db/config/pg").0, 404);

    api.grant("db", json!({"allowed_hosts": [grant]}));
    api.ok(
        "db/config/pg",
        json!({"plugin_name": "postgres", "connection_url": url, "username": "admin",
               "password": ADMIN_PASSWORD, "allowed_roles": "*"}),
    );
    let create = json!([
        "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
        "GRANT SELECT ON items TO \"{{name}}\";"
    ]);
    api.ok(
        "db/roles/ro",
        json!({"db_name": "pg", "creation_statements": create, "default_ttl": "1h", "max_ttl": "2h"}),
    );
    // As `vault write` sends it: one string, statements separated by `;`.
    api.ok(
        "db/roles/short",
        json!({"db_name": "pg", "default_ttl": "2s", "creation_statements":
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; \
             GRANT SELECT ON items TO \"{{name}}\";"}),
    );

    // The credential logs in, can select, cannot insert.
    let (status, issued) = api.get("db/creds/ro");
    assert_eq!(status, 200, "{issued}");
    let (user, password) = credential(&issued);
    assert_eq!(
        pg.query(&user, &password, "SELECT count(*) FROM items"),
        "2"
    );
    let insert = pg.psql(&user, &password, "INSERT INTO items VALUES (3)");
    assert!(!insert.status.success());
    assert!(String::from_utf8_lossy(&insert.stderr).contains("permission denied"));

    // Renew moves VALID UNTIL.
    let until = |name: &str| {
        pg.query(
            "admin",
            ADMIN_PASSWORD,
            &format!("SELECT rolvaliduntil FROM pg_roles WHERE rolname = '{name}'"),
        )
    };
    let before = until(&user);
    let (status, renewed) = api.put(
        "sys/leases/renew",
        json!({"lease_id": issued["lease_id"], "increment": "90m"}),
    );
    assert_eq!(status, 200, "{renewed}");
    assert_ne!(until(&user), before, "VALID UNTIL did not move");

    // Revoke: the login fails and the role is gone.
    let (status, _) = api.put("sys/leases/revoke", json!({"lease_id": issued["lease_id"]}));
    assert_eq!(status, 204);
    assert!(!pg.psql(&user, &password, "SELECT 1").status.success());
    assert!(!role_exists(&pg, ADMIN_PASSWORD, &user));

    // Expiry does the same with no request.
    let issued_at = std::time::Instant::now();
    let (_, short) = api.get("db/creds/short");
    let (short_user, short_password) = credential(&short);
    support::while_live(issued_at, Duration::from_secs(2), || {
        pg.psql(&short_user, &short_password, "SELECT 1")
            .status
            .success()
    });
    assert!(
        eventually(Duration::from_secs(15), || !role_exists(
            &pg,
            ADMIN_PASSWORD,
            &short_user
        )),
        "the expired role still exists"
    );

    // A failing statement: a typed error with SQLSTATE, no password, nothing left.
    api.ok(
        "db/roles/broken",
        json!({"db_name": "pg", "creation_statements": [
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}';",
            "GRANT SELECT ON no_such_table TO \"{{name}}\";"
        ]}),
    );
    let (status, failed) = api.get("db/creds/broken");
    assert_eq!(status, 400, "{failed}");
    let message = failed["errors"][0].as_str().unwrap();
    assert!(message.contains("42P01"), "{message}");
    assert_eq!(
        leftover_roles(&pg, ADMIN_PASSWORD),
        "0",
        "a failed create left a role"
    );

    // rotate-root: the old root password fails, new issues still work.
    let (status, reply) = api.put("db/rotate-root/pg", json!({}));
    assert_eq!(status, 204, "{reply}");
    assert!(
        !pg.psql("admin", ADMIN_PASSWORD, "SELECT 1")
            .status
            .success()
    );
    let (status, issued) = api.get("db/creds/ro");
    assert_eq!(status, 200, "{issued}");
    let (user, password) = credential(&issued);
    assert_eq!(
        pg.query(&user, &password, "SELECT count(*) FROM items"),
        "2"
    );
    let (status, _) = api.put("sys/leases/revoke-prefix/db", json!({}));
    assert_eq!(status, 204);
    assert!(!pg.psql(&user, &password, "SELECT 1").status.success());
}

/// Calls on one connection never fail because of each other: concurrent
/// `GRANT`s on one table (PostgreSQL's "tuple concurrently updated") and
/// concurrent revocations of roles that hold grants.
#[test]
fn many_clients_at_once_on_one_connection_never_fail_each_other() {
    let root = tempfile::tempdir().unwrap();
    let pg_dir = root.path().join("pg");
    std::fs::create_dir(&pg_dir).unwrap();
    let pg = PostgresServer::start(&pg_dir, ADMIN_PASSWORD);
    pg.query("admin", ADMIN_PASSWORD, "CREATE TABLE items (id int);");

    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    api.ok("sys/mounts/db", json!({"type": "database"}));
    api.grant(
        "db",
        json!({"allowed_hosts": [format!("127.0.0.1:{}", pg.port)]}),
    );
    api.ok(
        "db/config/pg",
        json!({"plugin_name": "postgres", "host": "127.0.0.1", "port": pg.port,
               "username": "admin", "password": ADMIN_PASSWORD,
               "allowed_hosts": [format!("127.0.0.1:{}", pg.port)], "allowed_roles": "*",
               "max_open_connections": 8}),
    );
    let (_, read) = api.get("db/config/pg");
    assert_eq!(read["data"]["max_parallel"], 8, "{read}");
    api.ok(
        "db/roles/ro",
        json!({"db_name": "pg", "default_ttl": "1h", "creation_statements": [
            "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';",
            "GRANT SELECT, INSERT ON items TO \"{{name}}\";"
        ]}),
    );

    // 20 clients issuing at once, 50 leases in all: every one succeeds.
    let issuers: Vec<_> = (0..20)
        .map(|i| {
            let (base, token) = (server.base.clone(), token.clone());
            std::thread::spawn(move || {
                let api = support::Api::new(&base, &token);
                (0..if i < 10 { 3 } else { 2 })
                    .map(|_| {
                        let (status, reply) = api.get("db/creds/ro");
                        assert_eq!(status, 200, "{reply}");
                        credential(&reply)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let credentials: Vec<(String, String)> = issuers
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert_eq!(credentials.len(), 50);
    for (user, password) in credentials.iter().step_by(10) {
        assert_eq!(pg.query(user, password, "SELECT count(*) FROM items"), "0");
    }

    // All 50, each holding grants on the same table, revoked at once.
    let (status, reply) = api.put("sys/leases/revoke-prefix/db/creds/ro", json!({}));
    assert_eq!(status, 204, "{reply}");
    assert_eq!(
        leftover_roles(&pg, ADMIN_PASSWORD),
        "0",
        "roles were left behind"
    );
    assert_eq!(api.list("sys/leases/lookup/db/creds/ro/").0, 404);
}
