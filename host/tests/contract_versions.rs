//! The plugin contract is versioned for real, through the real broker.
//!
//! `contract-0-1-0` is a plugin built against `leasehold:provider@0.1.0` with
//! wit-bindgen directly, not with the SDK, so it stays a 0.1.0 plugin whatever
//! the SDK moves on to (0.2.0 now): every operation must keep working on it,
//! beside the SDK's 0.2.0 plugins in the same broker, and the
//! catalog and the CLI must say which contract it was built against. A
//! component built against a version this broker does not know is refused at
//! registration, naming its version and the supported ones.

mod support;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};
use support::{Api, Server};

const PINNED: &str = "contract-0-1-0";

fn upload(bytes: &[u8]) -> Value {
    json!({
        "sha256": hex::encode(Sha256::digest(bytes)),
        "wasm": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// The lines of the credential file `name` on the target.
fn credential_lines(target: &Path, name: &str) -> Vec<String> {
    std::fs::read_to_string(target.join("leases").join(name))
        .unwrap_or_else(|err| panic!("credential file {name}: {err}"))
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The timestamp after `word` on `line`.
fn stamp(line: &str, word: &str) -> u64 {
    line.strip_prefix(word)
        .and_then(|rest| rest.trim().parse().ok())
        .unwrap_or_else(|| panic!("`{line}` is not `{word} <seconds>`"))
}

/// `leasehold plugin info NAME` in table form.
fn cli_plugin_info(api: &Api, name: &str) -> String {
    let output = Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["plugin", "info", name])
        .env("LEASEHOLD_ADDR", &api.base)
        .env("LEASEHOLD_TOKEN", &api.token)
        .env_remove("VAULT_ADDR")
        .env_remove("VAULT_TOKEN")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "leasehold plugin info {name}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[test]
fn a_plugin_built_against_contract_0_1_0_keeps_working() {
    let root = tempfile::tempdir().unwrap();
    let target = root.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let api = server.api(&server.init_and_unseal());

    // Registered, it says which contract it was built against: in the
    // catalog entry, the catalog listing, and the CLI.
    let bytes = leasehold_plugin_artifacts::read(leasehold_plugin_artifacts::CONTRACT_0_1_0);
    let registered = api.ok(
        &format!("sys/plugins/catalog/secret/{PINNED}"),
        upload(&bytes),
    );
    let (status, entry) = api.get(&format!("sys/plugins/catalog/secret/{PINNED}"));
    assert_eq!(status, 200, "{entry} (registered: {registered})");
    assert_eq!(entry["data"]["contract_version"], "0.1.0", "{entry}");
    assert_eq!(entry["data"]["name"], PINNED);
    let (_, catalog) = api.get("sys/plugins/catalog");
    let listed = catalog["data"]["detailed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|plugin| plugin["name"] == PINNED)
        .unwrap_or_else(|| panic!("{PINNED} is not in the catalog: {catalog}"));
    assert_eq!(listed["contract_version"], "0.1.0");
    // The bundled plugins, built with the SDK, are on 0.2.0, and say so.
    let noop = catalog["data"]["detailed"]
        .as_array()
        .unwrap()
        .iter()
        .find(|plugin| plugin["name"] == "noop")
        .unwrap();
    assert_eq!(noop["contract_version"], "0.2.0");
    let table = cli_plugin_info(&api, PINNED);
    assert!(
        table
            .lines()
            .any(|line| line.split_whitespace().eq(["contract_version", "0.1.0"])),
        "{table}"
    );

    // Mounted, granted its directory, configured: `validate` ran on the target.
    api.ok("sys/mounts/pinned", json!({"type": PINNED}));
    api.grant("pinned", json!({"directory": target}));
    api.ok(
        "pinned/config/files",
        json!({"directory": target, "allowed_roles": "*", "generation": 0}),
    );
    assert!(target.join("leases").is_dir(), "validate did not run");
    api.ok(
        "pinned/roles/reader",
        json!({"db_name": "files", "default_ttl": "1h"}),
    );

    // Issue: `create` got the lease and made the credential on the target.
    let issued_at = now();
    let (status, issued) = api.get("pinned/creds/reader");
    assert_eq!(status, 200, "{issued}");
    let lease_id = issued["lease_id"].as_str().unwrap().to_owned();
    let username = issued["data"]["username"].as_str().unwrap().to_owned();
    assert_eq!(username, lease_id.replace('/', "-"));
    assert_eq!(issued["data"]["contract"], "0.1.0");
    assert!(issued["data"]["password"].is_string(), "{issued}");
    let lines = credential_lines(&target, &username);
    assert_eq!(lines.len(), 1, "{lines:?}");
    let expires = stamp(&lines[0], "created");
    assert!(
        (issued_at + 3590..=now() + 3610).contains(&expires),
        "created with expires-at {expires}, issued at {issued_at}"
    );

    // Renew: `renew` got the handle and the renewed lease.
    let renewed_at = now();
    let (status, renewed) = api.put(
        "sys/leases/renew",
        json!({"lease_id": lease_id, "increment": 600}),
    );
    assert_eq!(status, 200, "{renewed}");
    let lines = credential_lines(&target, &username);
    assert_eq!(lines.len(), 2, "{lines:?}");
    let expires = stamp(&lines[1], "renewed");
    assert!(
        (renewed_at + 590..=now() + 610).contains(&expires),
        "renewed to expires-at {expires}, at {renewed_at}"
    );

    // Rotate the root: the plugin's new config is stored.
    let (status, reply) = api.put("pinned/rotate-root/files", json!({}));
    assert_eq!(status, 204, "{reply}");
    let (_, config) = api.get("pinned/config/files");
    assert_eq!(
        config["data"]["connection_details"],
        json!({"generation": 1}),
        "{config}"
    );

    // Revoke: `revoke` removed the credential from the target.
    let (status, reply) = api.put("sys/leases/revoke", json!({"lease_id": lease_id}));
    assert_eq!(status, 204, "{reply}");
    assert!(
        !target.join("leases").join(&username).exists(),
        "the credential is still on the target"
    );
    let (status, _) = api.put("sys/leases/lookup", json!({"lease_id": lease_id}));
    assert_ne!(status, 200, "the lease outlived its revocation");

    // A 0.2.0 plugin in the same broker, meanwhile, issues and revokes too.
    api.ok("sys/mounts/newer", json!({"type": "noop"}));
    api.ok("newer/config/main", json!({"allowed_roles": "*"}));
    api.ok(
        "newer/roles/r",
        json!({"db_name": "main", "default_ttl": "1h"}),
    );
    let (status, issued) = api.get("newer/creds/r");
    assert_eq!(status, 200, "{issued}");
    let (status, reply) = api.put("sys/leases/revoke", json!({"lease_id": issued["lease_id"]}));
    assert_eq!(status, 204, "{reply}");
}

#[test]
fn a_plugin_built_against_an_unknown_contract_version_is_refused_at_registration() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let api = server.api(&server.init_and_unseal());

    let bytes = leasehold_plugin_artifacts::read(leasehold_plugin_artifacts::FUTURE_CONTRACT);
    let (status, reply) = api.put("sys/plugins/catalog/secret/future", upload(&bytes));
    assert_eq!(status, 400, "{reply}");
    let message = reply["errors"][0].as_str().unwrap_or_default();
    assert!(message.contains("leasehold:provider@0.9.0"), "{message}");
    assert!(message.contains("supports 0.1.0"), "{message}");

    // Nothing was registered.
    let (status, _) = api.get("sys/plugins/catalog/secret/future");
    assert_eq!(status, 404);
    let (_, catalog) = api.get("sys/plugins/catalog");
    assert!(
        !catalog["data"]["secret"]
            .as_array()
            .unwrap()
            .contains(&json!("future")),
        "{catalog}"
    );
}
