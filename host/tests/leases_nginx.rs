//! Dynamic credentials end to end: the real server, the bundled `htpasswd`
//! plugin, and a real nginx as the target. A credential logs in; after revoke,
//! expiry, token revocation or prefix revocation it no longer does.

mod support;

use leasehold_test_support::Nginx;
use serde_json::{Value, json};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{Api, Server, eventually};

/// A directory nginx's unprivileged worker can read, with an htpasswd file in a
/// granted subdirectory holding one user the broker does not own.
fn target(root: &Path) -> (PathBuf, PathBuf) {
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755)).unwrap();
    let granted = root.join("auth");
    std::fs::create_dir(&granted).unwrap();
    std::fs::set_permissions(&granted, std::fs::Permissions::from_mode(0o755)).unwrap();
    let users = granted.join("htpasswd");
    let alice = bcrypt::hash("alice-password", 4).unwrap();
    std::fs::write(&users, format!("alice:{alice}\n")).unwrap();
    (granted, users)
}

fn credential(reply: &Value) -> (String, String) {
    (
        reply["data"]["username"].as_str().unwrap().to_owned(),
        reply["data"]["password"].as_str().unwrap().to_owned(),
    )
}

/// Mounts htpasswd at `web/` with a connection `site` and roles `reader`
/// (10 min, up to 1 h) and `short` (2 s).
fn set_up(api: &Api, granted: &Path) {
    api.ok(
        "sys/mounts/web",
        json!({"type": "htpasswd", "config": {"default_lease_ttl": "1h", "max_lease_ttl": "2h"}}),
    );
    api.grant("web", json!({"directory": granted}));
    api.ok(
        "web/config/site",
        json!({
            "file": "htpasswd",
            "bcrypt_cost": 4,
            "allowed_roles": ["reader", "short"],
        }),
    );
    api.ok(
        "web/roles/reader",
        json!({"db_name": "site", "default_ttl": 600, "max_ttl": "1h"}),
    );
    api.ok(
        "web/roles/short",
        json!({"db_name": "site", "default_ttl": "2s", "max_ttl": "2s"}),
    );
}

#[test]
fn issue_login_renew_revoke_expire_and_cascade() {
    let root = tempfile::tempdir().unwrap();
    let (granted, users) = target(root.path());
    let nginx = Nginx::start(root.path(), &users);
    let server = Server::with_data_dir(&support::data_dir(&root));
    let api = server.api(&server.init_and_unseal());
    set_up(&api, &granted);

    // The bundled plugins are in the catalog.
    let (status, catalog) = api.get("sys/plugins/catalog");
    assert_eq!(status, 200);
    assert!(
        catalog["data"]["secret"]
            .as_array()
            .unwrap()
            .contains(&json!("htpasswd"))
    );

    // Issue: Vault's envelope, a lease under the role's path, a working login.
    let (status, issued) = api.get("web/creds/reader");
    assert_eq!(status, 200, "{issued}");
    let lease_id = issued["lease_id"].as_str().unwrap().to_owned();
    assert!(lease_id.starts_with("web/creds/reader/"), "{lease_id}");
    assert_eq!(issued["lease_duration"], 600);
    assert_eq!(issued["renewable"], true);
    for key in ["request_id", "wrap_info", "warnings", "auth"] {
        assert!(issued.get(key).is_some(), "envelope lacks {key}");
    }
    let (user, password) = credential(&issued);
    assert_eq!(nginx.status(&user, &password), 200);

    // Renew counts from now; lookup shows the new expiry.
    let (_, before) = api.put("sys/leases/lookup", json!({"lease_id": lease_id}));
    let renewed = api.ok(
        "sys/leases/renew",
        json!({"lease_id": lease_id, "increment": 1200}),
    );
    assert_eq!(renewed["lease_id"], lease_id.as_str());
    assert_eq!(renewed["lease_duration"], 1200);
    let (status, after) = api.put("sys/leases/lookup", json!({"lease_id": lease_id}));
    assert_eq!(status, 200);
    assert!(after["data"]["ttl"].as_u64().unwrap() > 1100, "{after}");
    assert_ne!(after["data"]["expire_time"], before["data"]["expire_time"]);
    assert!(after["data"]["last_renewal"].is_string());
    // Past the max TTL: capped, with Vault's warning.
    let capped = api.ok(
        "sys/leases/renew",
        json!({"lease_id": lease_id, "increment": "48h"}),
    );
    assert!(
        capped["lease_duration"].as_u64().unwrap() <= 3600,
        "{capped}"
    );
    assert!(
        capped["warnings"][0].as_str().unwrap().contains("capped"),
        "{capped}"
    );
    // hvac sends a null increment: the role's default.
    let default = api.ok(
        "sys/leases/renew",
        json!({"lease_id": lease_id, "increment": null}),
    );
    assert_eq!(default["lease_duration"], 600);

    // Revoke: the login fails, the lease is gone, alice is untouched.
    let (status, _) = api.put("sys/leases/revoke", json!({"lease_id": lease_id}));
    assert_eq!(status, 204);
    assert_eq!(nginx.status(&user, &password), 401);
    assert_eq!(
        api.put("sys/leases/lookup", json!({"lease_id": lease_id}))
            .0,
        400
    );
    assert_eq!(nginx.status("alice", "alice-password"), 200);

    // Expiry, with no request: a 2 s lease's user leaves the file.
    let issued_at = std::time::Instant::now();
    let (status, short) = api.get("web/creds/short");
    assert_eq!(status, 200, "{short}");
    assert_eq!(short["lease_duration"], 2);
    let (short_user, short_password) = credential(&short);
    support::while_live(issued_at, Duration::from_secs(2), || {
        nginx.status(&short_user, &short_password) == 200
    });
    assert!(
        eventually(Duration::from_secs(15), || !std::fs::read_to_string(&users)
            .unwrap()
            .contains(&short_user)),
        "the expired user is still in the file"
    );
    assert_eq!(nginx.status(&short_user, &short_password), 401);

    // Token revocation takes the token's leases (and its children's) along.
    api.ok(
        "sys/policies/acl/web-reader",
        json!({"policy": "path \"web/creds/reader\" { capabilities = [\"read\"] }\n\
                           path \"auth/token/create\" { capabilities = [\"update\"] }"}),
    );
    let (_, token) = api.put("auth/token/create", json!({"policies": ["web-reader"]}));
    let reader = server.api(token["auth"]["client_token"].as_str().unwrap());
    let (_, child) = reader.put("auth/token/create", json!({"policies": ["web-reader"]}));
    let child = server.api(child["auth"]["client_token"].as_str().unwrap());
    let (status, by_parent) = reader.get("web/creds/reader");
    assert_eq!(status, 200, "{by_parent}");
    let (status, by_child) = child.get("web/creds/reader");
    assert_eq!(status, 200, "{by_child}");
    for reply in [&by_parent, &by_child] {
        let (u, p) = credential(reply);
        assert_eq!(nginx.status(&u, &p), 200);
    }
    let (status, _) = api.put("auth/token/revoke", json!({"token": reader.token}));
    assert_eq!(status, 204);
    for reply in [&by_parent, &by_child] {
        let (u, p) = credential(reply);
        assert_eq!(
            nginx.status(&u, &p),
            401,
            "a revoked token's lease still logs in"
        );
    }

    // Prefix revocation: every lease of the role.
    let issued: Vec<Value> = (0..3).map(|_| api.get("web/creds/reader").1).collect();
    let (status, listed) = api.list("sys/leases/lookup/web/creds/reader/");
    assert_eq!(status, 200);
    assert_eq!(listed["data"]["keys"].as_array().unwrap().len(), 3);
    let (status, _) = api.put("sys/leases/revoke-prefix/web/creds/reader", json!({}));
    assert_eq!(status, 204);
    for reply in &issued {
        let (u, p) = credential(reply);
        assert_eq!(nginx.status(&u, &p), 401);
    }
    assert_eq!(api.list("sys/leases/lookup/web/creds/reader/").0, 404);
    assert_eq!(nginx.status("alice", "alice-password"), 200);

    // Metrics count what happened.
    let (status, metrics) = api.get("sys/metrics?format=prometheus");
    assert_eq!(status, 200);
    let text = metrics.as_str().unwrap();
    for line in [
        "leasehold_leases_issued_total{mount=\"web/\"} 7",
        "leasehold_leases_revoked_total{mount=\"web/\"} 7",
        "leasehold_leases_renewed_total{mount=\"web/\"} 3",
        "leasehold_leases{mount=\"web/\",state=\"active\"} 0",
        "leasehold_plugin_call_seconds_count{plugin=\"htpasswd\",operation=\"create\"} 7",
    ] {
        assert!(text.contains(line), "metrics lack `{line}`:\n{text}");
    }
    assert!(
        text.contains("leasehold_lease_issue_seconds_bucket"),
        "{text}"
    );
}

#[test]
fn policies_limit_roles_and_prefix_revocation() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let api = server.api(&server.init_and_unseal());
    api.ok("sys/mounts/db", json!({"type": "noop"}));
    api.ok("db/config/none", json!({"allowed_roles": "*"}));
    api.ok("db/roles/ro", json!({"db_name": "none"}));
    api.ok("db/roles/rw", json!({"db_name": "none"}));
    api.ok(
        "sys/policies/acl/ro-only",
        json!({"policy": "path \"db/creds/ro\" { capabilities = [\"read\"] }"}),
    );
    let (_, token) = api.put("auth/token/create", json!({"policies": ["ro-only"]}));
    let ro = server.api(token["auth"]["client_token"].as_str().unwrap());
    let (status, reply) = ro.get("db/creds/ro");
    assert_eq!(status, 200, "{reply}");
    // The default policy lets any token look up and renew a lease by its id,
    // as in Vault: no sudo for that.
    let (status, looked) = ro.put("sys/leases/lookup", json!({"lease_id": reply["lease_id"]}));
    assert_eq!(status, 200, "{looked}");
    let (status, renewed) = ro.put("sys/leases/renew", json!({"lease_id": reply["lease_id"]}));
    assert_eq!(status, 200, "{renewed}");
    for (status, reply) in [
        ro.get("db/creds/rw"),
        ro.put("sys/leases/revoke-prefix/db", json!({})),
        ro.put("sys/leases/revoke-force/db", json!({})),
        ro.list("sys/leases/lookup/db/"),
        ro.list("sys/leases/lookup"),
        ro.get("sys/leases?type=irrevocable"),
    ] {
        assert_eq!(status, 403, "{reply}");
        assert_eq!(reply, json!({"errors": ["permission denied"]}));
    }
    // Nothing was revoked by the refused calls.
    let (status, listed) = api.list("sys/leases/lookup/db/creds/ro/");
    assert_eq!(status, 200);
    assert_eq!(listed["data"]["keys"].as_array().unwrap().len(), 1);

    // A queued revocation (`sync=false`) answers 202 at once, and the lease
    // cannot be renewed back to life before the worker gets to it.
    let (_, queued) = api.get("db/creds/rw");
    let (status, _) = api.put(
        "sys/leases/revoke",
        json!({"lease_id": queued["lease_id"], "sync": false}),
    );
    assert_eq!(status, 202);
    let (status, refused) = api.put("sys/leases/renew", json!({"lease_id": queued["lease_id"]}));
    assert_eq!(status, 400, "{refused}");
    assert!(
        support::eventually(std::time::Duration::from_secs(10), || api
            .put("sys/leases/lookup", json!({"lease_id": queued["lease_id"]}))
            .0
            == 400),
        "the queued revocation never happened"
    );
}
