//! Connections: plugins registered from the plugin directory, secret fields that
//! are never read back, partial updates that keep them, root rotation stored in
//! one write, and the checks that tie roles, connections and plugins together.

mod support;

use serde_json::json;
use sha2::{Digest, Sha256};
use support::Server;

#[test]
fn connections_keep_secrets_and_rotate_their_root() {
    let root = tempfile::tempdir().unwrap();
    let plugins = root.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    let gated = leasehold_plugin_artifacts::read(leasehold_plugin_artifacts::GATED);
    std::fs::write(plugins.join("gated.wasm"), &gated).unwrap();
    let server = Server::with_config(
        &support::data_dir(&root),
        &format!(
            "[plugins]\ndirectory = {:?}\n",
            plugins.display().to_string()
        ),
    );
    let api = server.api(&server.init_and_unseal());

    // Registered by file name in the plugin directory, with its sha256; again is fine.
    let register = json!({"sha256": hex::encode(Sha256::digest(&gated)), "command": "gated.wasm"});
    api.ok("sys/plugins/catalog/secret/gated", register.clone());
    api.ok("sys/plugins/catalog/secret/gated", register);
    let (status, info) = api.get("sys/plugins/catalog/secret/gated");
    assert_eq!(status, 200);
    assert_eq!(info["data"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(info["data"]["can_rotate_root"], true);
    assert!(
        info["data"]["config_schema"]["properties"]["password"].is_object(),
        "{info}"
    );

    let target = root.path().join("target");
    std::fs::create_dir(&target).unwrap();
    api.ok("sys/mounts/files", json!({"type": "gated"}));
    api.grant("files", json!({"directory": target}));
    api.ok(
        "files/config/c",
        json!({"password": "hunter2-root", "directory": target, "allowed_roles": "*"}),
    );
    let (status, read) = api.get("files/config/c");
    assert_eq!(status, 200);
    // The secret is stored but never shown; what was not given is not invented.
    assert_eq!(read["data"]["connection_details"], json!({}));
    assert_eq!(read["data"]["plugin_name"], "gated");
    assert!(!read.to_string().contains("hunter2"), "{read}");
    assert_eq!(api.list("files/config").1["data"]["keys"], json!(["c"]));

    // A partial update keeps the fields it does not name.
    api.ok("files/config/c", json!({"allowed_roles": ["r"]}));
    let (_, read) = api.get("files/config/c");
    assert_eq!(read["data"]["allowed_roles"], json!(["r"]));
    assert_eq!(read["data"]["directory"], json!(target));

    // rotate-root stores the config the plugin returns.
    let (status, reply) = api.put("files/rotate-root/c", json!({}));
    assert_eq!(status, 204, "{reply}");
    let (_, read) = api.get("files/config/c");
    assert_eq!(read["data"]["connection_details"], json!({"generation": 1}));
    // And the rotated connection still issues.
    api.ok("files/roles/r", json!({"db_name": "c"}));
    let (status, issued) = api.get("files/creds/r");
    assert_eq!(status, 200, "{issued}");
    assert!(
        issued["data"]["username"]
            .as_str()
            .unwrap()
            .starts_with("v-root-r-"),
        "the requester's display name reaches the plugin: {issued}"
    );
    // The older `sys/renew` and `sys/revoke` paths, with the lease in the path.
    let lease_id = issued["lease_id"].as_str().unwrap();
    let (status, renewed) = api.put(&format!("sys/renew/{lease_id}"), json!({"increment": 60}));
    assert_eq!(
        (status, renewed["lease_duration"].clone()),
        (200, json!(60))
    );
    let (status, _) = api.put(&format!("sys/revoke/{lease_id}"), json!({}));
    assert_eq!(status, 204);
    assert_eq!(std::fs::read_dir(target.join("users")).unwrap().count(), 0);

    // A plugin that cannot rotate says so; a connection cannot switch plugins
    // on a mount of one plugin; a plugin in use cannot be deregistered.
    api.ok("sys/mounts/web", json!({"type": "htpasswd"}));
    let auth = root.path().join("auth");
    std::fs::create_dir(&auth).unwrap();
    api.grant("web", json!({"directory": auth}));
    api.ok("web/config/site", json!({"file": "htpasswd"}));
    let (status, reply) = api.put("web/rotate-root/site", json!({}));
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["errors"][0]
            .as_str()
            .unwrap()
            .contains("cannot rotate")
    );
    let (status, reply) = api.put("web/config/other", json!({"plugin_name": "gated"}));
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = api.delete("sys/plugins/catalog/secret/gated");
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["errors"][0].as_str().unwrap().contains("in use"),
        "{reply}"
    );

    // Vault's Go client sends every `config` field, nulls included, and puts
    // the description and plugin version there.
    api.ok(
        "sys/mounts/go",
        json!({"type": "noop", "description": "", "local": false, "seal_wrap": false,
               "external_entropy_access": false, "options": null,
               "config": {"default_lease_ttl": "1h", "max_lease_ttl": "", "force_no_cache": false,
                          "description": "from the Go client", "plugin_version": "",
                          "options": null, "listing_visibility": "",
                          "audit_non_hmac_request_keys": null, "audit_non_hmac_response_keys": null,
                          "passthrough_request_headers": null, "allowed_response_headers": null,
                          "token_type": "", "allowed_managed_keys": null,
                          "delegated_auth_accessors": null, "identity_token_key": "",
                          "user_lockout_config": null}}),
    );
    let (_, go) = api.get("sys/mounts/go");
    assert_eq!(go["data"]["description"], "from the Go client");
    assert_eq!(go["data"]["config"]["default_lease_ttl"], 3600);

    // Disabling a mount removes its connections and roles; then the plugin can go.
    let (status, _) = api.delete("sys/mounts/files");
    assert_eq!(status, 204);
    assert_eq!(api.get("sys/mounts").1["data"].get("files/"), None);
    let (status, _) = api.delete("sys/plugins/catalog/secret/gated");
    assert_eq!(status, 204);
    assert_eq!(api.get("sys/plugins/catalog/secret/gated").0, 404);
}

#[test]
fn repointing_a_connection_without_its_secret_is_refused_and_nothing_is_sent() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    // A webhook connection whose signing key is stored; a listener of the
    // attacker's that records whatever reaches it.
    let trap = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    trap.set_nonblocking(true).unwrap();
    let trap_url = format!("http://127.0.0.1:{}", trap.local_addr().unwrap().port());
    let service = "http://127.0.0.1:1";
    api.ok("sys/mounts/hook", json!({"type": "webhook"}));
    // The operator grants both; the connection narrows to the service.
    api.grant("hook", json!({"allowed_origins": [service, trap_url]}));
    api.ok(
        "hook/config/c",
        json!({"url": service, "signing_key": "a-signing-key-of-length",
               "allowed_origins": [service], "allowed_roles": "*",
               "verify_connection": false}),
    );
    for change in [
        json!({"url": trap_url}),
        json!({"allowed_origins": [trap_url]}),
        json!({"url": trap_url, "allowed_origins": [trap_url]}),
    ] {
        let (status, reply) = api.put("hook/config/c", change.clone());
        assert_eq!(status, 400, "{change}: {reply}");
        let message = reply["errors"][0].as_str().unwrap();
        assert!(message.contains("`signing_key`"), "{message}");
    }
    assert!(trap.accept().is_err(), "something reached the new target");
    let (_, read) = api.get("hook/config/c");
    assert_eq!(read["data"]["connection_details"]["url"], service, "{read}");
    // Harmless changes need no secret; a retarget with the secret is allowed.
    api.ok("hook/config/c", json!({"allowed_roles": ["r"]}));
    api.ok(
        "hook/config/c",
        json!({"url": trap_url, "allowed_origins": [trap_url],
               "signing_key": "a-new-signing-key-of-length", "verify_connection": false}),
    );
}
