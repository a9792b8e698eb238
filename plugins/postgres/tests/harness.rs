//! The postgres plugin in the real sandbox, without a broker, against a real
//! PostgreSQL.

use leasehold_plugin_artifacts::POSTGRES;
use leasehold_sdk::testing::{Grants, TestPlugin, lease};
use leasehold_test_support::PostgresServer;
use serde_json::json;

#[test]
fn create_revoke_recover_and_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pg = PostgresServer::start(dir.path(), "root-pw");
    let plugin = TestPlugin::load(POSTGRES).with_grants(
        Grants::none()
            .allow_tcp(&format!("127.0.0.1:{}", pg.port))
            .unwrap(),
    );
    let config = json!({"host": "127.0.0.1", "port": pg.port, "username": "admin", "password": "root-pw",
                        "username_template": "app-{{.RoleName}}-{{random 16}}",
                        "password_policy": {"length": 32, "symbols": ""}});
    let role = json!({"creation_statements": ["CREATE ROLE {{name}} LOGIN PASSWORD {{password}} VALID UNTIL {{expiration}}"]});
    plugin.validate(&config, Some(&role)).unwrap();

    let first = lease("web");
    let issued = plugin.create(&config, &role, &first).unwrap();
    let user = issued.credential.get("username").unwrap().to_owned();
    let password = issued.credential.get("password").unwrap().to_owned();
    assert!(user.starts_with("app-web-"), "{user}");
    assert_eq!(password.len(), 32);
    assert!(pg.psql(&user, &password, "SELECT 1").status.success());
    plugin.revoke(&config, &role, Some(&user), &first).unwrap();
    assert!(!pg.psql(&user, &password, "SELECT 1").status.success());

    // No handle: the template gives the same name from the lease.
    let second = lease("web");
    let issued = plugin.create(&config, &role, &second).unwrap();
    let user = issued.credential.get("username").unwrap().to_owned();
    plugin.revoke(&config, &role, None, &second).unwrap();
    assert_eq!(
        pg.query(
            "admin",
            "root-pw",
            &format!("SELECT count(*) FROM pg_roles WHERE rolname = '{user}'")
        ),
        "0"
    );

    // A statement error: SQLSTATE and message, the password redacted.
    let bad = json!({"creation_statements": ["CREATE ROLE {{name}} LOGIN PASSWORD {{password}} NONSENSE"]});
    let err = plugin.create(&config, &bad, &lease("web")).unwrap_err();
    assert!(err.to_string().contains("42601"), "{err}");
    // A wrong root password is denied.
    let wrong =
        json!({"host": "127.0.0.1", "port": pg.port, "username": "admin", "password": "nope"});
    assert_eq!(plugin.validate(&wrong, None).unwrap_err().kind(), "denied");
    // Unknown placeholders are refused before anything runs.
    let typo = json!({"creation_statements": ["CREATE ROLE {{nmae}}"]});
    assert!(plugin.validate(&config, Some(&typo)).is_err());
}
