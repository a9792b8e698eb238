//! A Vault client library, unchanged, against leasehold: hvac (Debian's
//! `python3-hvac`, installed by `scripts/setup`) runs the database-engine calls
//! its docs show — enable, configure, create role, generate credentials, lookup,
//! renew, list, revoke — and checks each credential on a real nginx.

mod support;

use leasehold_test_support::Nginx;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;
use support::Server;

#[test]
fn hvac_drives_the_database_engine_end_to_end() {
    let root = tempfile::tempdir().unwrap();
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let granted = root.path().join("auth");
    std::fs::create_dir(&granted).unwrap();
    std::fs::set_permissions(&granted, std::fs::Permissions::from_mode(0o755)).unwrap();
    let users = granted.join("htpasswd");
    std::fs::write(&users, "").unwrap();
    let nginx = Nginx::start(root.path(), &users);

    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vault_client/database_engine.py"
    );
    let output = Command::new("/usr/bin/python3")
        .arg(script)
        .env("VAULT_ADDR", &server.base)
        .env("VAULT_TOKEN", &token)
        .env("NGINX_PORT", nginx.port().to_string())
        .env("TARGET_DIR", &granted)
        .output()
        .expect("running /usr/bin/python3 (scripts/setup installs python3-hvac)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "hvac script failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        server.output()
    );
    assert!(stdout.contains("hvac: every call worked"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(&users).unwrap(),
        "",
        "a user was left behind"
    );
}
