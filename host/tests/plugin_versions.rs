//! Operators change plugins at run time without dropping anything: a mount
//! tuned to another registered version, a `database` connection written with
//! one, `sys/plugins/reload/backend`, and in `--dev` a version registered again
//! with new bytes. Calls in flight finish on the component they started with,
//! the next ones run the new one; a lease records the version that issued it
//! and is revoked by the version its mount runs now.
//!
//! The plugin is the `gated` fixture: one file per credential in the granted
//! directory, and a `hold` file there keeps a create in flight. Its second
//! version is the same component with the one version string in its data
//! rewritten: other bytes, reporting another version.

mod support;

use base64::Engine as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Api, Server, eventually};

/// The version every component of the workspace reports.
const V1: &str = env!("CARGO_PKG_VERSION");

/// A version of the same length as [`V1`] (so the component's bytes keep
/// their layout): its last digit changed.
fn second_version() -> String {
    let mut version = V1.to_owned();
    let last = version.pop().unwrap();
    assert!(
        last.is_ascii_digit(),
        "the workspace version ends in a digit"
    );
    version.push(if last == '9' {
        '8'
    } else {
        (last as u8 + 1) as char
    });
    version
}

fn gated() -> Vec<u8> {
    leasehold_plugin_artifacts::read(leasehold_plugin_artifacts::GATED)
}

/// `component` reporting `version`: the version string its `info` returns is
/// the one occurrence of [`V1`] that is not part of an interface name
/// (`leasehold:provider/types@0.1.0`).
fn reporting(component: &[u8], version: &str) -> Vec<u8> {
    let own = V1.as_bytes();
    assert_eq!(version.len(), own.len());
    let at: Vec<usize> = (1..component.len().saturating_sub(own.len()))
        .filter(|&i| &component[i..i + own.len()] == own && component[i - 1] != b'@')
        .collect();
    assert_eq!(at.len(), 1, "the component's own version string, once");
    let mut patched = component.to_vec();
    patched[at[0]..at[0] + own.len()].copy_from_slice(version.as_bytes());
    patched
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Registers `bytes` as catalog plugin `name` by upload.
fn register(api: &Api, name: &str, bytes: &[u8]) -> (u16, Value) {
    api.put(
        &format!("sys/plugins/catalog/secret/{name}"),
        json!({
            "sha256": sha(bytes),
            "wasm": base64::engine::general_purpose::STANDARD.encode(bytes),
        }),
    )
}

/// A connection `name` on `mount` narrowed to `dir`, and a role `name` on it.
fn connection_and_role(api: &Api, mount: &str, name: &str, dir: &Path, extra: Value) {
    std::fs::create_dir_all(dir).unwrap();
    let mut body = json!({"directory": dir, "allowed_roles": "*", "max_parallel": 32});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    api.ok(&format!("{mount}/config/{name}"), body);
    api.ok(
        &format!("{mount}/roles/{name}"),
        json!({"db_name": name, "default_ttl": "1h"}),
    );
}

fn users(dir: &Path) -> usize {
    std::fs::read_dir(dir.join("users")).map_or(0, |entries| entries.count())
}

/// Issues a credential of `role` on `mount`: its lease id.
fn issue(api: &Api, mount: &str, role: &str) -> String {
    let (status, reply) = api.get(&format!("{mount}/creds/{role}"));
    assert_eq!(status, 200, "{reply}");
    reply["lease_id"].as_str().unwrap().to_owned()
}

/// The plugin version a lease lookup shows.
fn version_of(api: &Api, lease_id: &str) -> Value {
    let (status, lease) = api.put("sys/leases/lookup", json!({"lease_id": lease_id}));
    assert_eq!(status, 200, "{lease}");
    lease["data"]["plugin_version"].clone()
}

fn revoke(api: &Api, lease_id: &str) {
    let (status, reply) = api.put("sys/leases/revoke", json!({"lease_id": lease_id}));
    assert_eq!(status, 204, "{reply}");
}

/// A server with versions [`V1`] and [`second_version`] of `gated` registered, the first
/// mounted at `files/`, which may reach `granted/` under the test directory.
struct TwoVersions {
    root: tempfile::TempDir,
    /// Stopped on drop.
    _server: Server,
    api: Api,
}

impl TwoVersions {
    fn start(config: &str) -> Self {
        let root = tempfile::tempdir().unwrap();
        let server = Server::with_config(&support::data_dir(&root), config);
        let api = server.api(&server.init_and_unseal());
        assert_eq!(register(&api, "gated", &gated()).0, 204);
        assert_eq!(
            register(&api, "gated", &reporting(&gated(), &second_version())).0,
            204
        );
        api.ok(
            "sys/mounts/files",
            json!({"type": "gated", "plugin_version": V1}),
        );
        std::fs::create_dir(root.path().join("granted")).unwrap();
        api.grant("files", json!({"directory": root.path().join("granted")}));
        Self {
            root,
            _server: server,
            api,
        }
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.root.path().join("granted").join(name)
    }

    /// `sys/mounts/files` and its tune as read now.
    fn mount(&self) -> (Value, Value) {
        let (status, mount) = self.api.get("sys/mounts/files");
        assert_eq!(status, 200, "{mount}");
        let (status, tune) = self.api.get("sys/mounts/files/tune");
        assert_eq!(status, 200, "{tune}");
        (mount["data"].clone(), tune["data"].clone())
    }
}

#[test]
fn a_tuned_mount_issues_on_the_new_version_and_revokes_old_leases_on_it() {
    let setup = TwoVersions::start("");
    let (api, v2) = (&setup.api, second_version());
    let dir = setup.dir("site");
    connection_and_role(api, "files", "site", &dir, json!({}));

    let old = issue(api, "files", "site");
    assert_eq!(version_of(api, &old), V1);
    let (mount, tune) = setup.mount();
    assert_eq!(mount["plugin_version"], V1);
    assert_eq!(mount["running_plugin_version"], V1);
    assert_eq!(mount["running_sha256"], sha(&gated()));
    assert_eq!(tune["plugin_version"], V1);

    let (status, reply) = api.put("sys/mounts/files/tune", json!({"plugin_version": v2}));
    assert_eq!(status, 204, "{reply}");
    let (mount, tune) = setup.mount();
    assert_eq!(mount["plugin_version"], v2.as_str());
    assert_eq!(mount["running_plugin_version"], v2.as_str());
    assert_eq!(mount["running_sha256"], sha(&reporting(&gated(), &v2)));
    assert_eq!(tune["plugin_version"], v2.as_str());
    let (_, listed) = api.get("sys/mounts");
    assert_eq!(
        listed["data"]["files/"]["running_plugin_version"],
        v2.as_str()
    );
    let (_, connection) = api.get("files/config/site");
    assert_eq!(connection["data"]["plugin_version"], v2.as_str());

    let new = issue(api, "files", "site");
    assert_eq!(version_of(api, &new), v2.as_str());
    // The old lease keeps the version that issued it, and is revoked (its
    // file removed) by the version the mount runs now.
    assert_eq!(version_of(api, &old), V1);
    assert_eq!(users(&dir), 2);
    revoke(api, &old);
    assert_eq!(users(&dir), 1);
    revoke(api, &new);
    assert_eq!(users(&dir), 0);

    // The version the mount left can go; the one it runs stays, and the
    // refusal says what to do.
    let (status, reply) = api.delete(&format!("sys/plugins/catalog/secret/gated?version={v2}"));
    assert_eq!(status, 400, "{reply}");
    let message = reply["errors"][0].as_str().unwrap();
    assert!(
        message.contains("mount files/") && message.contains("tune it to another version"),
        "{message}"
    );
    let (status, reply) = api.delete(&format!("sys/plugins/catalog/secret/gated?version={V1}"));
    assert_eq!(status, 204, "{reply}");
    let (_, info) = api.get("sys/plugins/catalog/secret/gated");
    assert_eq!(info["data"]["versions"], json!([v2]));
}

#[test]
fn a_database_connection_runs_the_version_written_on_it() {
    let setup = TwoVersions::start("");
    let (api, v2) = (&setup.api, second_version());
    api.ok("sys/mounts/db", json!({"type": "database"}));
    api.grant(
        "db",
        json!({"directory": setup.root.path().join("granted")}),
    );
    let dir = setup.dir("db");
    connection_and_role(
        api,
        "db",
        "pg",
        &dir,
        json!({"plugin_name": "gated", "plugin_version": V1}),
    );
    let old = issue(api, "db", "pg");
    assert_eq!(version_of(api, &old), V1);

    api.ok("db/config/pg", json!({"plugin_version": v2}));
    let (_, connection) = api.get("db/config/pg");
    assert_eq!(connection["data"]["plugin_version"], v2.as_str());
    let new = issue(api, "db", "pg");
    assert_eq!(version_of(api, &new), v2.as_str());
    revoke(api, &old);
    revoke(api, &new);
    assert_eq!(users(&dir), 0);

    // A `database` mount is not tuned to a version: each connection says its own.
    let (status, reply) = api.put("sys/mounts/db/tune", json!({"plugin_version": V1}));
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["errors"][0]
            .as_str()
            .unwrap()
            .contains("db/config/<name>"),
        "{reply}"
    );
    let (status, reply) = api.delete(&format!("sys/plugins/catalog/secret/gated?version={v2}"));
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["errors"][0]
            .as_str()
            .unwrap()
            .contains("connection db/config/pg"),
        "{reply}"
    );
}

/// Clients issuing credentials on `files/creds/load` until stopped: every
/// answer, with when its request was sent.
struct Load {
    stop: Arc<AtomicBool>,
    issued: Arc<Mutex<Vec<(Instant, String)>>>,
    failures: Arc<Mutex<Vec<String>>>,
    clients: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(base: &str, token: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let issued = Arc::new(Mutex::new(Vec::new()));
        let failures = Arc::new(Mutex::new(Vec::new()));
        let clients = (0..clients)
            .map(|_| {
                let (stop, issued, failures) = (stop.clone(), issued.clone(), failures.clone());
                let api = Api::new(base, token);
                std::thread::spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        let sent = Instant::now();
                        let (status, reply) = api.get("files/creds/load");
                        match reply["lease_id"].as_str() {
                            Some(id) if status == 200 => {
                                issued.lock().unwrap().push((sent, id.to_owned()))
                            }
                            _ => failures.lock().unwrap().push(format!("{status} {reply}")),
                        }
                    }
                })
            })
            .collect();
        Self {
            stop,
            issued,
            failures,
            clients,
        }
    }

    fn count(&self) -> usize {
        self.issued.lock().unwrap().len()
    }

    /// Waits until `more` credentials were issued after this call.
    fn wait_for(&self, more: usize) {
        let target = self.count() + more;
        assert!(
            eventually(Duration::from_secs(120), || self.count() >= target),
            "the clients stalled: {} issued, failures: {:?}",
            self.count(),
            self.failures.lock().unwrap().first()
        );
    }

    fn stop(self) -> (Vec<(Instant, String)>, Vec<String>) {
        self.stop.store(true, Ordering::SeqCst);
        for client in self.clients {
            client.join().unwrap();
        }
        let issued = std::mem::take(&mut *self.issued.lock().unwrap());
        let failures = std::mem::take(&mut *self.failures.lock().unwrap());
        (issued, failures)
    }
}

#[test]
fn reload_and_tune_under_load_drop_nothing() {
    // The held create must outlive every step below.
    let setup = TwoVersions::start("[plugins]\ncall_timeout_seconds = 120\n");
    let (api, v2) = (&setup.api, second_version());
    let audit_log = setup.root.path().join("audit.log");
    api.ok(
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": audit_log}}),
    );
    let (load, held) = (setup.dir("load"), setup.dir("held"));
    connection_and_role(api, "files", "load", &load, json!({}));
    connection_and_role(api, "files", "held", &held, json!({}));

    // One create held in flight on the first version.
    std::fs::write(held.join("hold"), "").unwrap();
    let held_request = {
        let api = Api::new(&api.base, &api.token);
        std::thread::spawn(move || api.get("files/creds/held"))
    };
    assert!(
        eventually(Duration::from_secs(60), || users(&held) == 1),
        "the held create never started"
    );

    let clients = Load::start(&api.base, &api.token, 24);
    clients.wait_for(48);
    let (status, reloaded) = api.put("sys/plugins/reload/backend", json!({"plugin": "gated"}));
    assert_eq!(status, 200, "{reloaded}");
    assert!(reloaded["data"]["reload_id"].is_string(), "{reloaded}");
    assert_eq!(reloaded["data"]["reload_id"], reloaded["request_id"]);
    clients.wait_for(48);

    // The tune does not wait for the held create: it is released only after.
    let tune_sent = Instant::now();
    let (status, reply) = api.put("sys/mounts/files/tune", json!({"plugin_version": v2}));
    assert_eq!(status, 204, "{reply}");
    let tuned = Instant::now();
    assert!(
        !held_request.is_finished(),
        "the held create ended before it was released"
    );
    clients.wait_for(48);
    let (status, reply) = api.put(
        "sys/plugins/reload/backend",
        json!({"plugin": "", "mounts": ["files"], "scope": ""}),
    );
    assert_eq!(status, 200, "{reply}");
    clients.wait_for(48);

    std::fs::write(held.join("release"), "").unwrap();
    let (status, reply) = held_request.join().unwrap();
    assert_eq!(status, 200, "the held create: {reply}");
    let held_lease = reply["lease_id"].as_str().unwrap().to_owned();
    let (issued, failures) = clients.stop();
    assert!(
        failures.is_empty(),
        "{} requests failed, first: {}",
        failures.len(),
        failures[0]
    );

    // The held create finished on the version it started with; each lease
    // shows the version that issued it.
    assert_eq!(version_of(api, &held_lease), V1);
    let (mut before, mut after) = (0, 0);
    for (sent, id) in &issued {
        let version = version_of(api, id);
        if *sent > tuned {
            assert_eq!(version, v2.as_str(), "{id} was asked for after the tune");
            after += 1;
        } else if *sent < tune_sent {
            // Requests sent before the tune may have started before it or not.
            before += usize::from(version == V1);
        }
    }
    assert!(before > 0 && after > 0, "{before} before, {after} after");

    // Every lease is revocable, on the version the mount runs now.
    revoke(api, &held_lease);
    assert_eq!(users(&held), 0);
    assert_eq!(users(&load), issued.len());
    let (status, reply) = api.put("sys/leases/revoke-prefix/files/creds/load", json!({}));
    assert_eq!(status, 204, "{reply}");
    assert_eq!(users(&load), 0);

    // Both changes went through the audit log like any write, with what they
    // named in clear.
    let log = std::fs::read_to_string(&audit_log).unwrap();
    let entries: Vec<Value> = log
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let audited = |path: &str, field: &str, value: Value| {
        entries
            .iter()
            .filter(|e| e["request"]["path"] == path && e["request"]["data"][field] == value)
            .map(|e| e["type"].as_str().unwrap().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        audited("sys/plugins/reload/backend", "plugin", json!("gated")),
        ["request", "response"]
    );
    assert_eq!(
        audited("sys/plugins/reload/backend", "mounts", json!(["files"])),
        ["request", "response"]
    );
    assert_eq!(
        audited("sys/mounts/files/tune", "plugin_version", json!(v2)),
        ["request", "response"]
    );
}

#[test]
fn refused_version_changes_change_nothing() {
    let setup = TwoVersions::start("");
    let (api, v2) = (&setup.api, second_version());
    let dir = setup.dir("site");
    connection_and_role(api, "files", "site", &dir, json!({}));
    let unchanged = |setup: &TwoVersions| {
        let (mount, tune) = setup.mount();
        assert_eq!(mount["running_plugin_version"], V1, "{mount}");
        assert_eq!(mount["running_sha256"], sha(&gated()), "{mount}");
        assert_eq!(tune["plugin_version"], V1, "{tune}");
        let (_, info) = setup.api.get("sys/plugins/catalog/secret/gated");
        assert_eq!(
            info["data"]["versions"],
            json!([V1, second_version()]),
            "{info}"
        );
    };

    // A version the catalog does not have: 400, naming what it has.
    let (status, reply) = api.put(
        "sys/mounts/files/tune",
        json!({"plugin_version": "7.7.7", "default_lease_ttl": "5m"}),
    );
    assert_eq!(status, 400, "{reply}");
    let message = reply["errors"][0].as_str().unwrap();
    assert!(
        message.contains("7.7.7") && message.contains(V1),
        "{message}"
    );
    let (_, tune) = api.get("sys/mounts/files/tune");
    assert_ne!(
        tune["data"]["default_lease_ttl"], 300,
        "half a tune was kept"
    );
    unchanged(&setup);

    // Without sudo: no version change, whatever else the token may tune.
    let policy = r#"path "sys/mounts/*" { capabilities = ["read", "update"] }
path "sys/plugins/*" { capabilities = ["update"] }"#;
    api.ok("sys/policies/acl/tuner", json!({"policy": policy}));
    let (_, created) = api.put("auth/token/create", json!({"policies": ["tuner"]}));
    let tuner = Api::new(&api.base, created["auth"]["client_token"].as_str().unwrap());
    let (status, reply) = tuner.put("sys/mounts/files/tune", json!({"plugin_version": v2}));
    assert_eq!(status, 403, "{reply}");
    assert_eq!(
        tuner
            .put("sys/mounts/files/tune", json!({"description": "tuned"}))
            .0,
        204
    );
    let (status, reply) = tuner.put("sys/plugins/reload/backend", json!({"plugin": "gated"}));
    assert_eq!(status, 403, "{reply}");

    // A connection of a one-plugin mount runs the mount's version.
    let (status, reply) = api.put("files/config/site", json!({"plugin_version": v2}));
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["errors"][0].as_str().unwrap().contains("tune"),
        "{reply}"
    );

    // Reload: exactly one of `plugin` and `mounts`, both known.
    for (body, expected) in [
        (json!({"plugin": "gated", "mounts": ["files"]}), "not both"),
        (json!({}), "give `plugin`"),
        (
            json!({"plugin": "", "mounts": null, "scope": ""}),
            "give `plugin`",
        ),
        (
            json!({"mounts": ["files", "nowhere"]}),
            "no mount at nowhere/",
        ),
        (json!({"plugin": "absent"}), "no plugin `absent`"),
        (json!({"plugin": "gated", "scope": "galaxy"}), "scope"),
        (json!({"plugin": "gated", "extra": 1}), "extra"),
    ] {
        let (status, reply) = api.put("sys/plugins/reload/backend", body.clone());
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(
            reply["errors"][0].as_str().unwrap().contains(expected),
            "{body}: {reply}"
        );
    }

    // Outside --dev a registered version never changes: the refusal says how
    // to ship a new one.
    let rebuilt = leasehold_plugin_artifacts::read(leasehold_plugin_artifacts::NOOP);
    let (status, reply) = register(api, "gated", &rebuilt);
    assert_eq!(status, 400, "{reply}");
    let message = reply["errors"][0].as_str().unwrap();
    assert!(
        message.contains("new version")
            && message.contains("register it")
            && message.contains("plugin_version")
            && message.contains("tune"),
        "{message}"
    );
    // Nor can the version in use be deregistered.
    let (status, reply) = api.delete(&format!("sys/plugins/catalog/secret/gated?version={V1}"));
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = api.delete("sys/plugins/catalog/secret/gated");
    assert_eq!(status, 400, "{reply}");
    unchanged(&setup);

    // Still issuing and revoking on the first version.
    let lease = issue(api, "files", "site");
    assert_eq!(version_of(api, &lease), V1);
    revoke(api, &lease);
    assert_eq!(users(&dir), 0);
}

#[test]
fn in_dev_a_version_registered_again_replaces_it_for_the_next_call() {
    let (server, token) = Server::dev();
    let api = server.api(&token);
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("granted/site");
    std::fs::create_dir_all(&dir).unwrap();
    assert_eq!(register(&api, "gated", &gated()).0, 204);
    api.ok("sys/mounts/files", json!({"type": "gated"}));
    api.grant("files", json!({"directory": root.path().join("granted")}));
    connection_and_role(&api, "files", "site", &dir, json!({}));
    let first = issue(&api, "files", "site");
    assert_eq!(users(&dir), 1);

    // The same name and version with other bytes (here a plugin that makes
    // no files): replaced, and the very next call runs it.
    let rebuilt = leasehold_plugin_artifacts::read(leasehold_plugin_artifacts::NOOP);
    let (status, reply) = register(&api, "gated", &rebuilt);
    assert_eq!(status, 204, "{reply}");
    let (_, info) = api.get("sys/plugins/catalog/secret/gated");
    assert_eq!(info["data"]["sha256"], sha(&rebuilt));
    assert_eq!(info["data"]["versions"], json!([V1]));
    let (_, mount) = api.get("sys/mounts/files");
    assert_eq!(mount["data"]["running_sha256"], sha(&rebuilt));
    let second = issue(&api, "files", "site");
    assert_eq!(users(&dir), 1, "the replaced component still ran");
    assert_eq!(version_of(&api, &second), V1);
    revoke(&api, &second);

    // And back: the files plugin again, which revokes what it made.
    assert_eq!(register(&api, "gated", &gated()).0, 204);
    let third = issue(&api, "files", "site");
    assert_eq!(users(&dir), 2);
    revoke(&api, &first);
    revoke(&api, &third);
    assert_eq!(users(&dir), 0);
}
