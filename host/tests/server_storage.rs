//! What is on disk: a data directory only the broker's user can read, an unseal
//! key file for unattended restarts (refused when others can read it), and
//! values that were altered or moved in the data directory, which must be
//! errors, never data.

mod support;

use leasehold_host::storage::{RedbStorage, Storage};
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::{Value, json};
use support::Server;

fn config(root: &std::path::Path, extra: &str) -> std::path::PathBuf {
    let path = root.join("leasehold.toml");
    std::fs::write(
        &path,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n{extra}",
            root.join("data").display().to_string()
        ),
    )
    .unwrap();
    path
}

#[test]
fn an_unseal_key_file_unseals_at_start() {
    let root = tempfile::tempdir().unwrap();
    let plain = config(root.path(), "");
    let server = Server::start(&["server", "--config", plain.to_str().unwrap()]);
    let init: Value = Client::new()
        .put(server.url("sys/init"))
        .json(&json!({ "secret_shares": 3, "secret_threshold": 2 }))
        .send()
        .unwrap()
        .json()
        .unwrap();
    server.stop();
    // The data directory and the database are the broker's user's alone.
    let mode = |path: std::path::PathBuf| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    };
    assert_eq!(mode(root.path().join("data")), 0o700);
    assert_eq!(mode(root.path().join("data").join("leasehold.redb")), 0o600);
    assert_eq!(mode(root.path().join("data").join("plugin-cache")), 0o700);

    let key_file = root.path().join("unseal.keys");
    std::fs::write(
        &key_file,
        format!(
            "{}\n{}\n",
            init["keys"][0].as_str().unwrap(),
            init["keys_base64"][2].as_str().unwrap()
        ),
    )
    .unwrap();
    let with_file = config(
        root.path(),
        &format!("unseal_key_file = {:?}\n", key_file.display().to_string()),
    );
    // Readable by others: refused, naming the fix and no share.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["server", "--config", with_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("chmod 600"), "{stderr}");
    assert!(!stderr.contains(init["keys"][0].as_str().unwrap()));
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_file, std::fs::Permissions::from_mode(0o600)).unwrap();
    let server = Server::start(&["server", "--config", with_file.to_str().unwrap()]);
    assert_eq!(
        Client::new()
            .get(server.url("sys/health"))
            .send()
            .unwrap()
            .status(),
        StatusCode::OK
    );
    // Unsealed by the file is ready, as after `sys/unseal`: the steps after an
    // unseal ran (the bundled plugins are registered; this data directory was
    // never unsealed before), and the API serves, not just the health check.
    let (status, catalog) = server
        .api(init["root_token"].as_str().unwrap())
        .get("sys/plugins/catalog");
    assert_eq!(status, 200, "{catalog}");
    assert!(
        catalog["data"]["secret"]
            .as_array()
            .is_some_and(|names| names.contains(&json!("noop"))),
        "{catalog}"
    );
    server.stop();

    // One share is not enough: the server says so and does not start.
    std::fs::write(
        &key_file,
        format!("{}\n", init["keys"][0].as_str().unwrap()),
    )
    .unwrap();
    let failed = std::process::Command::new(env!("CARGO_BIN_EXE_leasehold"))
        .args(["server", "--config", with_file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("does not hold enough shares"), "{stderr}");
    assert!(
        !stderr.contains(init["keys"][0].as_str().unwrap()),
        "a share reached the error"
    );
}

#[test]
fn altered_or_moved_values_in_the_data_directory_are_errors_not_data() {
    let root = tempfile::tempdir().unwrap();
    let path = config(root.path(), "");
    let server = Server::start(&["server", "--config", path.to_str().unwrap()]);
    let (token, share) = server.init_and_unseal_keeping_share();
    let client = Client::new();
    let write = |name: &str, rule: &str| {
        let status = client
            .put(server.url(&format!("sys/policies/acl/{name}")))
            .header("X-Vault-Token", &token)
            .json(&json!({ "policy": format!("path \"{rule}\" {{ capabilities = [\"read\"] }}") }))
            .send()
            .unwrap()
            .status();
        assert_eq!(status, StatusCode::NO_CONTENT);
    };
    write("a", "a/*");
    write("b", "b/*");
    write("c", "c/*");
    server.stop();

    // Edit the database directly, as someone with the data directory could.
    {
        let storage = RedbStorage::open(&root.path().join("data"), 16 << 20).unwrap();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let mut a = storage.get("sys/policy/a").await.unwrap().unwrap();
            let last = a.len() - 1;
            a[last] ^= 0x01;
            storage.put("sys/policy/a", a).await.unwrap();
            let c = storage.get("sys/policy/c").await.unwrap().unwrap();
            storage.put("sys/policy/b", c).await.unwrap();
        });
    }

    let server = Server::start(&["server", "--config", path.to_str().unwrap()]);
    server.unseal(&share);
    let read = |name: &str| {
        let response = client
            .get(server.url(&format!("sys/policies/acl/{name}")))
            .header("X-Vault-Token", &token)
            .send()
            .unwrap();
        let status = response.status();
        (status, response.json::<Value>().unwrap())
    };
    // A flipped byte: refused, naming the value, showing none of it.
    let (status, body) = read("a");
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    let message = body["errors"][0].as_str().unwrap();
    assert!(
        message.contains("sys/policy/a") && message.contains("integrity"),
        "{message}"
    );
    // A value moved from another key: refused too, not served as `b`.
    let (status, body) = read("b");
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "{body}");
    assert!(!body.to_string().contains("c/*"), "{body}");
    // Untouched values, and everything else, still work.
    let (status, body) = read("c");
    assert_eq!(
        (
            status,
            body["data"]["policy"].as_str().unwrap().contains("c/*")
        ),
        (StatusCode::OK, true)
    );
    let me = client
        .get(server.url("auth/token/lookup-self"))
        .header("X-Vault-Token", &token)
        .send()
        .unwrap();
    assert_eq!(me.status(), StatusCode::OK);
}
