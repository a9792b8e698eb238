//! The `postgres` plugin's sessions, as the real PostgreSQL sees them: one
//! authenticated session the host keeps serves credential after credential
//! (counted in `pg_stat_activity`), no more sessions than calls may run at once,
//! nothing one role's statements set on a session reaches another's call, and a
//! kept session is never used again after `rotate-root`, a config change, an
//! error in the middle of a transaction, or a grant taken away. And TLS, done
//! by the host: `verify-full` against the right certificate (`pg_stat_ssl` shows
//! the session encrypted), refused against a wrong name or an unknown CA;
//! `verify-ca` ignoring the name; `require` against a server without SSL
//! refused.

mod support;

use leasehold_test_support::{PostgresServer, TestCa};
use serde_json::{Value, json};
use std::time::Duration;
use support::{Api, Server, eventually};

const ADMIN_PASSWORD: &str = "admin-password-5c1d";

const CREATE: &str =
    "CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}';";

/// The backend pids of the broker's sessions, as the server lists them.
fn sessions(pg: &PostgresServer, admin_password: &str) -> Vec<String> {
    let listed = pg.query(
        "admin",
        admin_password,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'leasehold' ORDER BY pid",
    );
    listed.lines().map(str::to_owned).collect()
}

/// Waits until the broker holds no session on `pg`.
fn no_sessions_left(pg: &PostgresServer, admin_password: &str) -> bool {
    eventually(Duration::from_secs(15), || {
        sessions(pg, admin_password).is_empty()
    })
}

fn issue(api: &Api, role: &str) -> Value {
    let (status, issued) = api.get(&format!("db/creds/{role}"));
    assert_eq!(status, 200, "{issued}");
    issued
}

fn start_postgres(root: &tempfile::TempDir, name: &str) -> PostgresServer {
    let dir = root.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    PostgresServer::start(&dir, ADMIN_PASSWORD)
}

#[test]
fn one_kept_session_serves_many_credentials_until_its_config_changes() {
    let root = tempfile::tempdir().unwrap();
    let pg = start_postgres(&root, "pg");
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    api.ok("sys/mounts/db", json!({"type": "database"}));
    let grant = format!("127.0.0.1:{}", pg.port);
    api.grant("db", json!({"allowed_hosts": [grant]}));
    let config = json!({"plugin_name": "postgres", "host": "127.0.0.1", "port": pg.port,
                        "username": "admin", "password": ADMIN_PASSWORD, "allowed_roles": "*",
                        "max_open_connections": 3});
    api.ok("db/config/pg", config.clone());
    // Checking the config before it is saved keeps nothing.
    assert!(no_sessions_left(&pg, ADMIN_PASSWORD));
    api.ok(
        "db/roles/ro",
        json!({"db_name": "pg", "creation_statements": [CREATE], "default_ttl": "1h"}),
    );

    // One session, the same one, for create after create and for revoke.
    let first = issue(&api, "ro");
    let kept = sessions(&pg, ADMIN_PASSWORD);
    assert_eq!(kept.len(), 1, "{kept:?}");
    let mut leases = vec![first["lease_id"].clone()];
    for _ in 0..4 {
        leases.push(issue(&api, "ro")["lease_id"].clone());
    }
    let (status, _) = api.put("sys/leases/revoke", json!({"lease_id": leases.pop()}));
    assert_eq!(status, 204);
    assert_eq!(
        sessions(&pg, ADMIN_PASSWORD),
        kept,
        "a session was not reused"
    );

    // Many clients at once: never more sessions than calls may run at once.
    let clients: Vec<_> = (0..12)
        .map(|_| {
            let (base, token) = (server.base.clone(), token.clone());
            std::thread::spawn(move || {
                let api = Api::new(&base, &token);
                (0..3).for_each(|_| drop(issue(&api, "ro")));
            })
        })
        .collect();
    clients.into_iter().for_each(|c| c.join().unwrap());
    let busy = sessions(&pg, ADMIN_PASSWORD);
    assert!(
        (1..=3).contains(&busy.len()),
        "max_open_connections is 3, the server has {busy:?}"
    );

    // A statement that fails inside the transaction: that session is closed,
    // not handed to the next call.
    api.ok(
        "db/roles/broken",
        json!({"db_name": "pg", "creation_statements": [
            CREATE, "GRANT SELECT ON no_such_table TO \"{{name}}\";"
        ]}),
    );
    let before = sessions(&pg, ADMIN_PASSWORD);
    let (status, failed) = api.get("db/creds/broken");
    assert_eq!(status, 400, "{failed}");
    assert!(
        eventually(Duration::from_secs(15), || {
            let after = sessions(&pg, ADMIN_PASSWORD);
            after.len() + 1 == before.len() && after.iter().all(|pid| before.contains(pid))
        }),
        "the failed call's session stayed open: {before:?}"
    );

    // What one role's statements set on the session does not follow it into
    // another role's call: here a search_path under which `items` is not found.
    pg.query("admin", ADMIN_PASSWORD, "CREATE TABLE items (id int)");
    api.ok(
        "db/roles/unsettling",
        json!({"db_name": "pg", "creation_statements": [CREATE, "SET search_path = nowhere;"]}),
    );
    api.ok(
        "db/roles/reader",
        json!({"db_name": "pg", "creation_statements": [
            CREATE, "GRANT SELECT ON items TO \"{{name}}\";"
        ]}),
    );
    for _ in 0..3 {
        issue(&api, "unsettling");
        issue(&api, "reader");
    }

    // A config change closes every kept session; the next call opens one.
    let old = sessions(&pg, ADMIN_PASSWORD);
    let mut changed = config.clone();
    changed["username_template"] = json!("w-{{.RoleName}}-{{random 20}}");
    api.ok("db/config/pg", changed);
    assert!(no_sessions_left(&pg, ADMIN_PASSWORD));
    issue(&api, "ro");
    let new = sessions(&pg, ADMIN_PASSWORD);
    assert_eq!(new.len(), 1);
    assert!(!old.contains(&new[0]), "{old:?} {new:?}");

    // rotate-root: the sessions authenticated with the old password go.
    let (status, reply) = api.put("db/rotate-root/pg", json!({}));
    assert_eq!(status, 204, "{reply}");
    // The admin's password is the broker's now: look with a role of our own.
    let (watcher, watcher_password) = credentials(&issue(&api, "ro"));
    let rotated = watch_sessions(&pg, &watcher, &watcher_password);
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert!(
        !new.contains(&rotated[0]),
        "a session from before rotate-root was reused"
    );

    // A grant taken away: the kept session is not used, and is closed.
    api.grant("db", json!({"allowed_hosts": ["127.0.0.1:1"]}));
    let (status, refused) = api.get("db/creds/ro");
    assert!(status >= 400, "{status} {refused}");
    assert!(
        eventually(Duration::from_secs(15), || watch_sessions(
            &pg,
            &watcher,
            &watcher_password
        )
        .is_empty()),
        "a session to an address no longer granted stayed open"
    );
}

fn credentials(issued: &Value) -> (String, String) {
    (
        issued["data"]["username"].as_str().unwrap().to_owned(),
        issued["data"]["password"].as_str().unwrap().to_owned(),
    )
}

/// [`sessions`], seen by an ordinary role (after `rotate-root` only the broker
/// knows the admin's password). `pg_stat_activity` shows every session's pid and
/// application name to any role.
fn watch_sessions(pg: &PostgresServer, user: &str, password: &str) -> Vec<String> {
    pg.query(
        user,
        password,
        "SELECT pid FROM pg_stat_activity WHERE application_name = 'leasehold' ORDER BY pid",
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// Writes connection `name` for `pg` with `extra` fields; the status and reply.
fn connect(api: &Api, name: &str, pg: &PostgresServer, extra: Value) -> (u16, Value) {
    let mut config = json!({"plugin_name": "postgres", "host": "127.0.0.1", "port": pg.port,
                            "username": "admin", "password": ADMIN_PASSWORD,
                            "allowed_roles": "*"});
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    api.put(&format!("db/config/{name}"), config)
}

fn error_of(reply: &Value) -> String {
    reply["errors"][0].as_str().unwrap_or_default().to_owned()
}

#[test]
fn tls_to_postgresql_is_verified_as_sslmode_says() {
    let root = tempfile::tempdir().unwrap();
    let ca = TestCa::new(&root.path().join("ca"));
    let with_ssl = |name: &str, certificate| {
        let dir = root.path().join(name);
        std::fs::create_dir(&dir).unwrap();
        PostgresServer::start_with_ssl(&dir, ADMIN_PASSWORD, certificate)
    };
    let right = with_ssl("right", &ca.server);
    let wrong = with_ssl("wrong", &ca.wrong_name);
    let plain = start_postgres(&root, "plain");

    let server = Server::with_data_dir(&support::data_dir(&root));
    let api = server.api(&server.init_and_unseal());
    api.ok("sys/mounts/db", json!({"type": "database"}));
    let grants: Vec<String> = [&right, &wrong, &plain]
        .iter()
        .map(|pg| format!("127.0.0.1:{}", pg.port))
        .collect();
    api.grant("db", json!({"allowed_hosts": grants}));

    // verify-full with the CA that signed the server's certificate: the session
    // the credential is made on is encrypted, as the server itself reports.
    let (status, reply) = connect(
        &api,
        "full",
        &right,
        json!({"sslmode": "verify-full", "tls_ca": ca.ca_pem}),
    );
    assert_eq!(status, 204, "{reply}");
    // pg_stat_ssl shows other users' sessions only to pg_read_all_stats.
    api.ok(
        "db/roles/full",
        json!({"db_name": "full", "creation_statements": [
            CREATE, "GRANT pg_read_all_stats TO \"{{name}}\";"
        ]}),
    );
    let (user, password) = credentials(&issue(&api, "full"));
    let encrypted = right.query(
        &user,
        &password,
        "SELECT string_agg(s.ssl::text, ',') FROM pg_stat_ssl s \
         JOIN pg_stat_activity a USING (pid) WHERE a.application_name = 'leasehold'",
    );
    assert_eq!(encrypted, "true", "the broker's session is not encrypted");

    // The same in Vault's shape, sslmode in the URL.
    let url = format!(
        "postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres?sslmode=verify-full",
        right.port
    );
    let (status, reply) = api.put(
        "db/config/url",
        json!({"plugin_name": "postgres", "connection_url": url, "username": "admin",
               "password": ADMIN_PASSWORD, "tls_ca": ca.ca_pem, "allowed_roles": "*"}),
    );
    assert_eq!(status, 204, "{reply}");

    // A certificate for another name: verify-full refuses, saying why.
    let (status, reply) = connect(
        &api,
        "wrong-name",
        &wrong,
        json!({"sslmode": "verify-full", "tls_ca": ca.ca_pem}),
    );
    assert_eq!(status, 400, "{reply}");
    let message = error_of(&reply);
    assert!(message.contains("not valid for name"), "{message}");
    assert!(!message.contains(ADMIN_PASSWORD), "{message}");
    assert_eq!(api.get("db/config/wrong-name").0, 404);

    // verify-ca checks the chain only, so the same server passes.
    let (status, reply) = connect(
        &api,
        "chain-only",
        &wrong,
        json!({"sslmode": "verify-ca", "tls_ca": ca.ca_pem}),
    );
    assert_eq!(status, 204, "{reply}");

    // verify-full against the system's roots: the test CA is not among them.
    let (status, reply) = connect(
        &api,
        "system-roots",
        &right,
        json!({"sslmode": "verify-full"}),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(error_of(&reply).contains("UnknownIssuer"), "{reply}");

    // require against a server without SSL: refused, in words.
    let (status, reply) = connect(&api, "plain", &plain, json!({"sslmode": "require"}));
    assert_eq!(status, 400, "{reply}");
    assert!(error_of(&reply).contains("does not accept SSL"), "{reply}");
    // prefer (the default) goes on in clear there, and encrypts where it can.
    let (status, reply) = connect(&api, "prefer", &plain, json!({}));
    assert_eq!(status, 204, "{reply}");

    // A mode that does not exist is refused before anything is dialled.
    let (status, reply) = connect(&api, "bad", &right, json!({"sslmode": "sometimes"}));
    assert_eq!(status, 400, "{reply}");
    assert!(error_of(&reply).contains("verify-full"), "{reply}");
}
