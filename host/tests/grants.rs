//! Grants belong to the operator: what a mount's plugin may reach is set on the
//! mount by a sudo holder, within the config's limits, and a connection can
//! only narrow it. Driven through the real binary, checked on the files the
//! htpasswd plugin writes.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use support::{Api, Server};

fn users_in(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split(':').next())
        .map(str::to_owned)
        .collect()
}

fn token_with(api: &Api, base: &str, name: &str, policy: &str) -> Api {
    api.ok(
        &format!("sys/policies/acl/{name}"),
        json!({ "policy": policy }),
    );
    let (_, created) = api.put("auth/token/create", json!({"policies": [name]}));
    Api::new(base, created["auth"]["client_token"].as_str().unwrap())
}

#[test]
fn only_a_sudo_holder_grants_and_a_connection_only_narrows() {
    let root = tempfile::tempdir().unwrap();
    let granted = tempfile::tempdir().unwrap();
    let site = granted.path().join("site");
    let inner = site.join("inner");
    let elsewhere = granted.path().join("elsewhere");
    for dir in [&inner, &elsewhere] {
        std::fs::create_dir_all(dir).unwrap();
    }
    let server = Server::with_config(
        &support::data_dir(&root),
        &format!(
            "[grants]\ndirectories = [{:?}]\n",
            granted.path().display().to_string()
        ),
    );
    let api = server.api(&server.init_and_unseal());
    let audit_log = root.path().join("audit.log");
    api.ok(
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": audit_log}}),
    );
    api.ok("sys/mounts/web", json!({"type": "htpasswd"}));

    // Everything on the grants and connections except sudo: refused, and the
    // mount keeps its (empty) grants.
    let operator = token_with(
        &api,
        &server.base,
        "almost",
        r#"path "sys/grants/*" { capabilities = ["create", "read", "update"] }
           path "web/*" { capabilities = ["create", "read", "update"] }"#,
    );
    let (status, reply) = operator.put("sys/grants/web", json!({"directory": site}));
    assert_eq!(status, 403, "{reply}");
    assert_eq!(operator.get("sys/grants/web").0, 403);
    let empty = json!({"allowed_hosts": [], "allowed_origins": [], "directory": null});
    assert_eq!(api.get("sys/grants/web").1["data"], empty);

    // Nor can a connection bring its own grants: nothing is granted yet.
    let (status, reply) = operator.put(
        "web/config/site",
        json!({"file": "htpasswd", "bcrypt_cost": 4, "directory": site, "allowed_roles": "*"}),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["errors"][0].as_str().unwrap().contains("only narrow"),
        "{reply}"
    );
    assert_eq!(api.get("web/config/site").0, 404);

    // The sudo holder grants `site`; the connection may narrow to `inner`, not
    // widen to the parent, `/` or a sibling.
    let (status, reply) = api.put("sys/grants/web", json!({"directory": site}));
    assert_eq!(status, 200, "{reply}");
    for wider in [granted.path(), Path::new("/"), elsewhere.as_path()] {
        let (status, reply) = operator.put(
            "web/config/site",
            json!({"file": "htpasswd", "directory": wider, "allowed_roles": "*"}),
        );
        assert_eq!(status, 400, "{}: {reply}", wider.display());
        assert_eq!(api.get("web/config/site").0, 404);
    }
    let (status, reply) = operator.put(
        "web/config/site",
        json!({"file": "htpasswd", "allowed_hosts": ["10.0.0.1:22"], "allowed_roles": "*"}),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(reply["errors"][0].as_str().unwrap().contains("10.0.0.1:22"));
    operator.ok(
        "web/config/site",
        json!({"file": "htpasswd", "bcrypt_cost": 4, "directory": inner, "allowed_roles": "*"}),
    );
    operator.ok("web/roles/r", json!({"db_name": "site"}));
    let (status, issued) = operator.get("web/creds/r");
    assert_eq!(status, 200, "{issued}");
    let user = issued["data"]["username"].as_str().unwrap();
    // Written where the connection narrowed to, nowhere else.
    assert_eq!(users_in(&inner.join("htpasswd")), vec![user.to_owned()]);
    assert!(!site.join("htpasswd").exists());

    // The operator moves the mount elsewhere: the connection, narrowed to a
    // directory the mount no longer grants, loses it (and is told so).
    let (status, reply) = api.put("sys/grants/web", json!({"directory": elsewhere}));
    assert_eq!(status, 200, "{reply}");
    let warnings = reply["warnings"].to_string();
    assert!(warnings.contains("`site`"), "{reply}");
    let (status, reply) = operator.get("web/creds/r");
    assert!(status >= 400, "issued without a directory: {reply}");
    assert_eq!(users_in(&inner.join("htpasswd")), vec![user.to_owned()]);
    assert!(!elsewhere.join("htpasswd").exists());

    // Every grant change is in the audit log, grants in clear, with who made
    // it: the refused one and the two that took.
    let entries: Vec<Value> = std::fs::read_to_string(&audit_log)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .filter(|e: &Value| e["type"] == "response" && e["request"]["path"] == "sys/grants/web")
        .filter(|e| e["request"]["operation"] == "update")
        .collect();
    let statuses: Vec<u64> = entries
        .iter()
        .map(|e| e["response"]["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, vec![403, 200, 200], "{entries:?}");
    assert_eq!(
        entries[1]["request"]["data"]["directory"],
        json!(site),
        "{}",
        entries[1]
    );
    assert_eq!(entries[2]["request"]["data"]["directory"], json!(elsewhere));
    assert_eq!(entries[1]["auth"]["policies"], json!(["root"]));
}

#[test]
fn the_brokers_own_directories_are_never_granted() {
    let root = tempfile::tempdir().unwrap();
    let data = support::data_dir(&root);
    let plugins = root.path().join("plugins");
    std::fs::create_dir(&plugins).unwrap();
    // Even an operator who allows everything under `/` gets none of these.
    let server = Server::with_config(
        &data,
        &format!(
            "[plugins]\ndirectory = {:?}\n[grants]\ndirectories = [\"/\"]\n",
            plugins.display().to_string()
        ),
    );
    let api = server.api(&server.init_and_unseal());
    api.ok("sys/mounts/web", json!({"type": "htpasswd"}));
    let config_dir = root.path().join("config");
    for (dir, what) in [
        (Path::new("/").to_owned(), "never granted"),
        (data.clone(), "data directory"),
        (data.join("plugin-cache"), "data directory"),
        (plugins.clone(), "plugin directory"),
        (config_dir.clone(), "configuration file"),
        // Holding the broker's directories is as bad as being one.
        (root.path().to_owned(), "overlaps"),
    ] {
        let (status, reply) = api.put("sys/grants/web", json!({"directory": dir}));
        assert_eq!(status, 400, "{}: {reply}", dir.display());
        let message = reply["errors"][0].as_str().unwrap();
        assert!(message.contains(what), "{}: {message}", dir.display());
    }
    // A symlink to the data directory is the data directory.
    let link = tempfile::tempdir().unwrap();
    let alias = link.path().join("alias");
    std::os::unix::fs::symlink(&data, &alias).unwrap();
    let (status, reply) = api.put("sys/grants/web", json!({"directory": alias}));
    assert_eq!(status, 400, "{reply}");
    assert_eq!(
        api.get("sys/grants/web").1["data"]["directory"],
        Value::Null
    );
    // A directory holding an audit log is not granted (its plugin could
    // delete or replace the log), nor is a log enabled in a granted one.
    let logs = tempfile::tempdir().unwrap();
    api.ok(
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": logs.path().join("audit.log")}}),
    );
    let (status, reply) = api.put("sys/grants/web", json!({"directory": logs.path()}));
    assert_eq!(status, 400, "{reply}");
    assert!(reply["errors"][0].as_str().unwrap().contains("audit log"));
    // A directory of its own is fine.
    api.grant("web", json!({"directory": link.path()}));
    let (status, reply) = api.put(
        "sys/audit/inside",
        json!({"type": "file", "options": {"file_path": link.path().join("audit.log")}}),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(!link.path().join("audit.log").exists());
}
