//! Vault's client library, unchanged, against leasehold: hvac runs the calls its
//! docs show. The current release (pinned in `scripts/setup`, installed into
//! `target/clients`) runs the system backend, tokens, policies, mounts,
//! leases and audit calls, and the database engine's; Debian's `python3-hvac`
//! (0.11, what a Debian user has) runs the database engine's too. Each
//! credential is checked on a real nginx.

mod support;

use leasehold_test_support::Nginx;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use support::Server;

/// The current hvac's Python, from `scripts/setup`.
fn current_hvac() -> PathBuf {
    let python = Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/clients/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run scripts/setup (it installs the current hvac)",
        python.display()
    );
    python
}

/// Runs `script` (in `tests/vault_client/`) with `python` against `server`.
fn run(python: &Path, script: &str, server: &Server, token: &str, env: &[(&str, String)]) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/vault_client")
        .join(script);
    let output = Command::new(python)
        .arg(&path)
        .env("VAULT_ADDR", &server.base)
        .env("VAULT_TOKEN", token)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap_or_else(|err| panic!("running {}: {err}", python.display()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} with {} failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        python.display(),
        server.output()
    );
    assert!(stdout.contains("hvac: every call worked"), "{stdout}");
}

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

    // Debian's hvac, then the current one, each on a server of its own.
    for (n, python) in [PathBuf::from("/usr/bin/python3"), current_hvac()]
        .iter()
        .enumerate()
    {
        let data = root.path().join(format!("data-{n}"));
        let server = Server::with_data_dir(&data);
        let token = server.init_and_unseal();
        run(
            python,
            "database_engine.py",
            &server,
            &token,
            &[
                ("NGINX_PORT", nginx.port().to_string()),
                ("TARGET_DIR", granted.display().to_string()),
            ],
        );
        assert_eq!(
            std::fs::read_to_string(&users).unwrap(),
            "",
            "a user was left behind"
        );
    }
}

#[test]
fn the_current_hvac_drives_tokens_policies_mounts_leases_and_audit() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    run(
        &current_hvac(),
        "sys_and_tokens.py",
        &server,
        &token,
        &[(
            "AUDIT_FILE",
            root.path().join("audit.log").display().to_string(),
        )],
    );
}
