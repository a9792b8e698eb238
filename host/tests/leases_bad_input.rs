//! Bad input on the catalog, mount, connection, role, creds and lease endpoints:
//! a clear 4xx naming what is wrong (never echoing a value), and nothing created,
//! in the broker or on the target.

mod support;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use support::{Api, Server};

fn expect(api: &Api, method: &str, path: &str, body: Option<Value>, status: u16, words: &str) {
    let (got, reply) = api.call(method, path, body);
    assert_eq!(got, status, "{method} {path}: {reply}");
    let message = reply["errors"][0].as_str().unwrap_or_default();
    assert!(
        message.contains(words),
        "{method} {path}: `{message}` does not mention `{words}`"
    );
    assert!(
        !message.contains("hunter2"),
        "{method} {path} echoed a value: {message}"
    );
}

fn upload(bytes: &[u8], sha256: &str) -> Value {
    json!({
        "sha256": sha256,
        "wasm": base64::engine::general_purpose::STANDARD.encode(bytes),
    })
}

#[test]
fn bad_requests_are_refused_clearly_and_create_nothing() {
    let root = tempfile::tempdir().unwrap();
    let granted = root.path().join("auth");
    std::fs::create_dir(&granted).unwrap();
    let users = granted.join("htpasswd");
    std::fs::write(&users, "alice:x\n").unwrap();
    let data_dir = support::data_dir(&root);
    let server = Server::with_data_dir(&data_dir);
    let api = server.api(&server.init_and_unseal());

    // Catalog.
    let gated = leasehold_plugin_artifacts::read(leasehold_plugin_artifacts::GATED);
    let wrong = leasehold_plugin_artifacts::read(leasehold_plugin_artifacts::WRONG_WORLD);
    let sha = |b: &[u8]| hex::encode(Sha256::digest(b));
    let catalog = "sys/plugins/catalog/secret/gated";
    expect(
        &api,
        "PUT",
        catalog,
        Some(upload(&gated, &sha(&wrong))),
        400,
        "sha256 mismatch",
    );
    expect(
        &api,
        "PUT",
        "sys/plugins/catalog/secret/wrong",
        Some(upload(&wrong, &sha(&wrong))),
        400,
        "not a usable plugin",
    );
    expect(
        &api,
        "PUT",
        catalog,
        Some(upload(b"not wasm", &sha(b"not wasm"))),
        400,
        "not a usable plugin",
    );
    expect(
        &api,
        "PUT",
        catalog,
        Some(json!({"sha256": "00", "wasm": "!!"})),
        400,
        "base64",
    );
    expect(
        &api,
        "PUT",
        catalog,
        Some(json!({"wasm": "AA=="})),
        400,
        "sha256",
    );
    expect(
        &api,
        "PUT",
        catalog,
        Some(json!({"sha256": sha(&gated)})),
        400,
        "missing the component",
    );
    expect(
        &api,
        "PUT",
        // Another component cannot take a registered plugin's name and version.
        "sys/plugins/catalog/secret/noop",
        Some(upload(&gated, &sha(&gated))),
        400,
        "already registered with another sha256",
    );
    expect(
        &api,
        "PUT",
        "sys/plugins/catalog/auth/gated",
        Some(upload(&gated, &sha(&gated))),
        400,
        "plugin type",
    );
    expect(
        &api,
        "PUT",
        catalog,
        Some(json!({"sha256": sha(&gated), "command": "../gated.wasm"})),
        400,
        "plugin directory",
    );
    assert_eq!(api.get(catalog).0, 404, "a refused plugin was registered");
    assert_eq!(api.get("sys/plugins/catalog/secret/wrong").0, 404);

    // Mounts.
    expect(
        &api,
        "PUT",
        "sys/mounts/web",
        Some(json!({"type": "nosuch"})),
        400,
        "not in the catalog",
    );
    expect(
        &api,
        "PUT",
        "sys/mounts/sys",
        Some(json!({"type": "htpasswd"})),
        400,
        "reserved",
    );
    expect(
        &api,
        "PUT",
        "sys/mounts/web",
        Some(json!({"type": "htpasswd", "colour": "hunter2"})),
        400,
        "colour",
    );
    expect(
        &api,
        "PUT",
        "sys/mounts/web",
        Some(json!({"type": 5})),
        400,
        "type",
    );
    expect(
        &api,
        "PUT",
        "sys/mounts/web",
        Some(
            json!({"type": "htpasswd", "config": {"default_lease_ttl": "2h", "max_lease_ttl": "1h"}}),
        ),
        400,
        "greater than",
    );
    expect(
        &api,
        "PUT",
        "sys/mounts/web",
        Some(json!({"type": "htpasswd", "config": {"max_lease_ttl": "soon"}})),
        400,
        "max_lease_ttl",
    );
    let (_, mounts) = api.get("sys/mounts");
    assert_eq!(mounts["data"], json!({}), "a refused mount exists");
    api.ok("sys/mounts/web", json!({"type": "htpasswd"}));
    expect(
        &api,
        "PUT",
        "sys/mounts/web/inner",
        Some(json!({"type": "htpasswd"})),
        400,
        "existing mount",
    );

    // Grants: only a directory that exists, within the configured roots,
    // never the broker's own; hosts and origins well-formed; nothing else.
    let dir = granted.display().to_string();
    for (bad, needle) in [
        (
            json!({"directory": "/no/such/dir"}),
            "not an existing directory",
        ),
        (json!({"directory": "/"}), "never granted"),
        (json!({"directory": "/etc"}), "outside the directories"),
        (json!({"directory": data_dir}), "data directory"),
        (json!({"allowed_hosts": ["not a host"]}), "host:port"),
        (json!({"allowed_origins": ["ftp://x"]}), "origin"),
        (json!({"allowed_hosts": "a:1", "colour": "red"}), "colour"),
        (json!({"allowed_hosts": 5}), "allowed_hosts"),
    ] {
        expect(&api, "PUT", "sys/grants/web", Some(bad), 400, needle);
    }
    expect(&api, "PUT", "sys/grants/nowhere", Some(json!({})), 404, "");
    assert_eq!(
        api.get("sys/grants/web").1["data"],
        json!({"allowed_hosts": [], "allowed_origins": [], "directory": null}),
        "a refused grant changed the mount"
    );
    api.grant("web", json!({"directory": dir}));

    // Connections.
    let config = "web/config/site";
    expect(
        &api,
        "PUT",
        config,
        Some(json!({"file": "htpasswd", "colour": "hunter2"})),
        400,
        "colour",
    );
    expect(
        &api,
        "PUT",
        config,
        Some(json!({"file": 5, "bcrypt_cost": "hunter2"})),
        400,
        "bcrypt_cost",
    );
    expect(
        &api,
        "PUT",
        config,
        Some(json!({"file": "htpasswd", "directory": "/tmp"})),
        400,
        "grants",
    );
    expect(
        &api,
        "PUT",
        config,
        Some(json!({"file": "../escape"})),
        400,
        "invalid config",
    );
    expect(
        &api,
        "PUT",
        config,
        Some(json!({"file": "htpasswd", "allowed_roles": 5})),
        400,
        "allowed_roles",
    );
    expect(
        &api,
        "PUT",
        config,
        Some(json!({"file": "htpasswd", "allowed_hosts": ["not a host"]})),
        400,
        "grants",
    );
    let (status, reply) = api.call("PUT", config, None);
    assert_eq!(status, 400, "{reply}");
    let too_big = "x".repeat(2 << 20);
    let (status, _) = api.put(config, json!({"file": too_big}));
    assert_eq!(status, 413);
    assert_eq!(api.get(config).0, 404, "a refused connection was stored");

    // Roles.
    api.ok(
        config,
        json!({"file": "htpasswd", "allowed_roles": ["ok"], "bcrypt_cost": 4}),
    );
    expect(&api, "PUT", "web/roles/r", Some(json!({})), 400, "db_name");
    // A role may name a connection written later, as in Vault; it issues
    // nothing until then.
    api.ok("web/roles/later", json!({"db_name": "nosuch"}));
    expect(&api, "GET", "web/creds/later", None, 400, "does not exist");
    assert_eq!(api.delete("web/roles/later").0, 204);
    expect(
        &api,
        "PUT",
        "web/roles/r",
        Some(json!({"db_name": "site", "colour": "hunter2"})),
        400,
        "colour",
    );
    expect(
        &api,
        "PUT",
        "web/roles/r",
        Some(json!({"db_name": "site", "default_ttl": "2h", "max_ttl": "1h"})),
        400,
        "greater than",
    );
    expect(
        &api,
        "PUT",
        "web/roles/r",
        Some(json!({"db_name": "site", "default_ttl": "soon"})),
        400,
        "default_ttl",
    );
    expect(
        &api,
        "PUT",
        "web/roles/bad name",
        Some(json!({"db_name": "site"})),
        400,
        "role name",
    );
    assert_eq!(api.get("web/roles/r").0, 404, "a refused role was stored");

    // Credentials.
    api.ok("web/roles/r", json!({"db_name": "site"}));
    expect(&api, "GET", "web/creds/nosuch", None, 400, "unknown role");
    expect(&api, "GET", "web/creds/r", None, 400, "allowed_roles");
    expect(
        &api,
        "DELETE",
        "web/creds/r",
        None,
        405,
        "unsupported operation",
    );
    expect(&api, "GET", "web/nothing/here", None, 404, "no handler");
    // A connection with a lease cannot be deleted from under it.
    api.ok("web/roles/ok", json!({"db_name": "site"}));
    let (status, issued) = api.get("web/creds/ok");
    assert_eq!(status, 200, "{issued}");
    expect(&api, "DELETE", "web/config/site", None, 400, "has leases");
    let (status, _) = api.put("sys/leases/revoke", json!({"lease_id": issued["lease_id"]}));
    assert_eq!(status, 204);

    // Leases.
    expect(
        &api,
        "PUT",
        "sys/leases/renew",
        Some(json!({})),
        400,
        "lease_id",
    );
    expect(
        &api,
        "PUT",
        "sys/leases/renew",
        Some(json!({"lease_id": "web/creds/r/nope"})),
        400,
        "invalid lease",
    );
    expect(
        &api,
        "PUT",
        "sys/leases/renew",
        Some(json!({"lease_id": "x", "increment": "soon"})),
        400,
        "increment",
    );
    expect(
        &api,
        "PUT",
        "sys/leases/revoke",
        Some(json!({"lease_id": "x", "colour": 1})),
        400,
        "colour",
    );
    expect(
        &api,
        "PUT",
        "sys/leases/lookup",
        Some(json!({"lease_id": "web/creds/r/nope"})),
        400,
        "invalid lease",
    );
    expect(
        &api,
        "GET",
        "sys/leases?type=everything",
        None,
        400,
        "irrevocable",
    );
    assert_eq!(api.list("sys/leases/lookup/web/").0, 404);

    // Nothing reached the target.
    assert_eq!(std::fs::read_to_string(&users).unwrap(), "alice:x\n");
}
