//! The `leasehold` CLI against a real server: every verb, table and JSON output,
//! Vault-style flags, and Vault's environment variables as a fallback.

mod support;

use serde_json::Value;
use std::io::Write;
use std::process::{Command, Output, Stdio};
use support::{Server, data_dir};

struct Cli<'a> {
    server: &'a Server,
    token: Option<String>,
}

impl Cli<'_> {
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_stdin(args, "")
    }

    fn run_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut command = Command::new(env!("CARGO_BIN_EXE_leasehold"));
        command
            .args(args)
            .env("LEASEHOLD_ADDR", &self.server.base)
            .env_remove("LEASEHOLD_TOKEN")
            .env_remove("VAULT_ADDR")
            .env_remove("VAULT_TOKEN")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(token) = &self.token {
            command.env("LEASEHOLD_TOKEN", token);
        }
        let mut child = command.spawn().unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Runs and expects success; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "leasehold {args:?} failed:\n{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.push("-format=json");
        serde_json::from_str(&self.ok(&args)).unwrap()
    }
}

#[test]
fn every_cli_verb_against_a_real_server() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&data_dir(&root));
    let mut cli = Cli {
        server: &server,
        token: None,
    };

    // operator init (Vault-style flags) and unseal, one share from stdin.
    let init = cli.json(&["operator", "init", "-key-shares=3", "-key-threshold=2"]);
    let keys: Vec<String> = init["keys_base64"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(keys.len(), 3);
    let sealed = cli.run(&["status"]);
    assert_eq!(sealed.status.code(), Some(2), "status exits 2 while sealed");
    cli.ok(&["operator", "unseal", &keys[0]]);
    // No key argument: read from stdin (a terminal would be prompted, without
    // echo); the key never shows in what the command prints.
    let unsealed = cli.run_with_stdin(&["operator", "unseal"], &format!("{}\n", keys[2]));
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&unsealed.stdout),
        String::from_utf8_lossy(&unsealed.stderr)
    );
    assert!(printed.contains("sealed"), "{printed}");
    assert!(!printed.contains(keys[2].as_str()), "{printed}");
    let status = cli.ok(&["status"]);
    assert!(
        status
            .lines()
            .any(|l| l.starts_with("sealed") && l.ends_with("false")),
        "{status}"
    );

    cli.token = Some(init["root_token"].as_str().unwrap().to_owned());

    // -field prints one value, raw.
    let token = cli.ok(&["token", "create", "-ttl=10m", "-field=token"]);
    assert!(
        token.trim().starts_with("hvs.") && token.lines().count() == 1,
        "{token}"
    );
    let accessor = cli.ok(&["token", "lookup", token.trim(), "-field=accessor"]);
    assert_eq!(accessor.lines().count(), 1, "{accessor}");
    assert_eq!(
        cli.ok(&["read", "auth/token/lookup-self", "-field=display_name"])
            .trim(),
        "root"
    );
    assert_eq!(
        cli.ok(&["read", "sys/seal-status", "-field=sealed"]).trim(),
        "false"
    );
    let missing = cli.run(&["read", "auth/token/lookup-self", "-field=nope"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("`nope`"));

    // policy write (file and stdin), read, list, delete.
    let policy_file = root.path().join("web.hcl");
    std::fs::write(
        &policy_file,
        "path \"web/*\" { capabilities = [\"read\"] }\n",
    )
    .unwrap();
    cli.ok(&["policy", "write", "web", policy_file.to_str().unwrap()]);
    let written = cli.run_with_stdin(
        &["policy", "write", "ops", "-"],
        "path \"ops/*\" { capabilities = [\"list\"] }",
    );
    assert!(written.status.success());
    assert_eq!(
        cli.ok(&["policy", "read", "web"]).trim(),
        "path \"web/*\" { capabilities = [\"read\"] }"
    );
    assert_eq!(cli.ok(&["policy", "list"]), "default\nops\nroot\nweb\n");
    cli.ok(&["policy", "delete", "ops"]);
    assert_eq!(cli.ok(&["policy", "list"]), "default\nroot\nweb\n");

    // token create (table), lookup, renew, revoke.
    let table = cli.ok(&[
        "token",
        "create",
        "-policy=web",
        "-ttl=1h",
        "-display-name=ci",
    ]);
    let child = table
        .lines()
        .find_map(|l| l.strip_prefix("token ").map(|v| v.trim().to_owned()))
        .unwrap_or_else(|| panic!("no token row:\n{table}"));
    assert!(table.contains("[default web]"), "{table}");
    let looked = cli.json(&["token", "lookup", &child]);
    assert_eq!(looked["data"]["display_name"], "token-ci");
    let accessor = looked["data"]["accessor"].as_str().unwrap().to_owned();
    assert_eq!(
        cli.json(&["token", "lookup", "-accessor", &accessor])["data"]["id"],
        ""
    );
    let renewed = cli.json(&["token", "renew", &child, "-increment=30m"]);
    assert_eq!(renewed["auth"]["lease_duration"], 1800);
    cli.ok(&["token", "revoke", &child]);
    let gone = cli.run(&["token", "lookup", &child]);
    assert!(!gone.status.success());
    assert!(
        String::from_utf8_lossy(&gone.stderr).contains("Error: 403"),
        "{}",
        String::from_utf8_lossy(&gone.stderr)
    );

    // Generic read/write/list/delete with key=value and key=@file.
    cli.ok(&[
        "write",
        "sys/policies/acl/generic",
        &format!("policy=@{}", policy_file.display()),
    ]);
    assert_eq!(
        cli.json(&["read", "sys/policies/acl/generic"])["data"]["name"],
        "generic"
    );
    assert!(
        cli.json(&["list", "sys/policies/acl"])["data"]["keys"]
            .as_array()
            .unwrap()
            .contains(&Value::from("generic"))
    );
    cli.ok(&["delete", "sys/policies/acl/generic"]);

    // audit enable, list, verify, disable.
    let log = root.path().join("audit.log");
    cli.ok(&[
        "audit",
        "enable",
        "file",
        &format!("file_path={}", log.display()),
    ]);
    assert!(cli.ok(&["audit", "list"]).contains("file/"));
    cli.ok(&["read", "sys/policies/acl/web"]);
    let verified = cli.ok(&["audit", "verify", "file"]);
    assert!(verified.contains("chain intact"), "{verified}");
    cli.ok(&["audit", "disable", "file"]);

    // plugin register (upload), list, info; secrets enable; a credential; lease
    // lookup, renew, revoke; secrets disable; plugin deregister.
    let gated = leasehold_plugin_artifacts::GATED;
    let sha256 = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(std::fs::read(gated).unwrap()))
    };
    cli.ok(&[
        "plugin",
        "register",
        &format!("-sha256={sha256}"),
        &format!("-wasm={gated}"),
        "secret",
        "gated",
    ]);
    let table = cli.ok(&["plugin", "list"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["Name", "Type", "Version"], "{table}");
    assert!(
        table
            .lines()
            .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["gated", "secret", "0.1.0"]),
        "{table}"
    );
    let listed = cli.json(&["plugin", "list"]);
    assert!(
        listed["data"]["secret"]
            .as_array()
            .unwrap()
            .contains(&Value::from("gated"))
    );
    assert_eq!(
        cli.json(&["plugin", "info", "gated"])["data"]["sha256"],
        sha256
    );
    cli.ok(&[
        "secrets",
        "enable",
        "-path=files",
        "-default-lease-ttl=1h",
        "gated",
    ]);
    assert!(cli.ok(&["secrets", "list"]).contains("files/"));
    let target = root.path().join("target");
    std::fs::create_dir(&target).unwrap();
    // Grants are the sudo holder's, on the mount (the root token is one).
    cli.ok(&[
        "write",
        "sys/grants/files",
        &format!("directory={}", target.display()),
    ]);
    cli.ok(&["write", "files/config/c", "allowed_roles=*"]);
    cli.ok(&["write", "files/roles/r", "db_name=c"]);
    let issued = cli.json(&["read", "files/creds/r"]);
    let lease_id = issued["lease_id"].as_str().unwrap().to_owned();
    let user = issued["data"]["username"].as_str().unwrap().to_owned();
    assert!(target.join("users").join(&user).exists());
    assert_eq!(
        cli.json(&["lease", "lookup", &lease_id])["data"]["id"],
        lease_id
    );
    assert_eq!(
        cli.json(&["lease", "renew", "-increment=30m", &lease_id])["lease_duration"],
        1800
    );
    cli.ok(&["lease", "revoke", &lease_id]);
    assert!(
        !target.join("users").join(&user).exists(),
        "revoked user left behind"
    );
    let second = cli.json(&["read", "files/creds/r"])["data"]["username"]
        .as_str()
        .unwrap()
        .to_owned();
    cli.ok(&["lease", "revoke", "-prefix", "files/creds/r"]);
    assert!(!target.join("users").join(&second).exists());
    let in_use = cli.run(&["plugin", "deregister", "secret", "gated"]);
    assert!(
        !in_use.status.success(),
        "a mounted plugin was deregistered"
    );
    cli.ok(&["secrets", "disable", "files"]);
    cli.ok(&["plugin", "deregister", "secret", "gated"]);
    assert!(!cli.run(&["plugin", "info", "gated"]).status.success());

    // operator rotate and seal; Vault's variables work when ours are unset.
    let rotated = cli.json(&["operator", "rotate"]);
    assert_eq!(rotated["data"]["term"], 2);
    let token = cli.token.clone().unwrap();
    let vault_env = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["token", "lookup", "-format=json"])
        .env_remove("LEASEHOLD_ADDR")
        .env_remove("LEASEHOLD_TOKEN")
        .env("VAULT_ADDR", &server.base)
        .env("VAULT_TOKEN", &token)
        .output()
        .unwrap();
    assert!(
        vault_env.status.success(),
        "{}",
        String::from_utf8_lossy(&vault_env.stderr)
    );
    cli.ok(&["operator", "seal"]);
    assert_eq!(cli.run(&["status"]).status.code(), Some(2));

    // A bad verb or flag is a usage error, not a request.
    let bad = cli.run(&["token", "create", "-no-such-flag"]);
    assert_eq!(bad.status.code(), Some(2));
}
