//! Leases survive crashes and outages: kill -9 mid-create, kill -9 with a
//! thousand leases held, a target that fails revocations for a while, and one
//! that never recovers; queued revocations that overlap each other and the
//! clients' own revocations all end on the target.
//!
//! The target is the `gated` test plugin: one file per credential in the
//! granted directory, with switch files that hold `create` and fail `revoke`.

mod support;

use serde_json::{Value, json};
use std::path::Path;
use std::time::Duration;
use support::{Api, Server, eventually};

/// Registers the gated plugin by upload and mounts it at `files/`.
fn mount_gated(api: &Api) {
    api.mount_plugin("gated", leasehold_plugin_artifacts::GATED, "files");
}

/// A connection `name` on `dir` and a role `name` with `ttl`.
fn connection_and_role(api: &Api, name: &str, dir: &Path, ttl: &str) {
    std::fs::create_dir_all(dir).unwrap();
    // The mount's grant is the whole test directory; each connection narrows
    // it to its own.
    api.grant("files", json!({"directory": dir.parent().unwrap()}));
    api.ok(
        &format!("files/config/{name}"),
        json!({"directory": dir, "allowed_roles": "*"}),
    );
    api.ok(
        &format!("files/roles/{name}"),
        json!({"db_name": name, "default_ttl": ttl}),
    );
}

/// Whether the lease gauge shows `n` leases of `files/` in `state`.
fn gauge_shows(api: &Api, state: &str, n: u64) -> bool {
    let (_, metrics) = api.get("sys/metrics?format=prometheus");
    metrics.as_str().unwrap_or_default().contains(&format!(
        "leasehold_leases{{mount=\"files/\",state=\"{state}\"}} {n}"
    ))
}

fn users(dir: &Path) -> Vec<String> {
    match std::fs::read_dir(dir.join("users")) {
        Ok(entries) => entries
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[test]
fn a_crash_during_create_leaves_no_credential_behind() {
    let root = tempfile::tempdir().unwrap();
    let data = support::data_dir(&root);
    let target = root.path().join("granted/target");
    let server = Server::with_data_dir(&data);
    let (token, share) = server.init_and_unseal_keeping_share();
    let api = server.api(&token);
    mount_gated(&api);
    connection_and_role(&api, "held", &target, "1h");

    // The plugin creates its user, then waits for a `release` that never comes.
    std::fs::write(target.join("hold"), "").unwrap();
    let base = api.base.clone();
    let request = std::thread::spawn(move || {
        let _ = reqwest::blocking::Client::new()
            .get(format!("{base}/v1/files/creds/held"))
            .header("X-Vault-Token", token)
            .timeout(Duration::from_secs(30))
            .send();
    });
    assert!(
        eventually(Duration::from_secs(20), || users(&target).len() == 1),
        "the plugin never created its user"
    );
    server.kill9();
    let _ = request.join();
    std::fs::remove_file(target.join("hold")).unwrap();
    assert_eq!(users(&target).len(), 1, "the user exists on the target");

    // At restart, unsealing revokes the pending lease through the plugin.
    let server = Server::with_data_dir(&data);
    server.unseal(&share);
    let (token, _) = (api.token.clone(), ());
    let api = server.api(&token);
    assert!(
        eventually(Duration::from_secs(10), || users(&target).is_empty()),
        "the user created before the crash is still on the target"
    );
    let (status, listed) = api.list("sys/leases/lookup/files/creds/held/");
    assert_eq!(status, 404, "the pending lease is still there: {listed}");
}

#[test]
fn a_thousand_leases_survive_kill_9_and_expiry_resumes() {
    let root = tempfile::tempdir().unwrap();
    let data = support::data_dir(&root);
    let long = root.path().join("granted/long");
    let short = root.path().join("granted/short");
    let server = Server::with_data_dir(&data);
    let (token, share) = server.init_and_unseal_keeping_share();
    let api = server.api(&token);
    mount_gated(&api);
    connection_and_role(&api, "long", &long, "1h");
    connection_and_role(&api, "short", &short, "8s");

    // The short ones last, so they are all still live at the kill however long
    // the first 990 took.
    let mut short_leases = Vec::new();
    for i in 0..1000 {
        let role = if i < 990 { "long" } else { "short" };
        let (status, reply) = api.get(&format!("files/creds/{role}"));
        assert_eq!(status, 200, "{reply}");
        if role == "short" {
            short_leases.push(reply["lease_id"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(users(&long).len(), 990);
    assert_eq!(users(&short).len(), 10);
    server.kill9();

    let server = Server::with_data_dir(&data);
    server.unseal(&share);
    let api = server.api(&token);
    let (status, listed) = api.list("sys/leases/lookup/files/creds/long/");
    assert_eq!(status, 200);
    assert_eq!(listed["data"]["keys"].as_array().unwrap().len(), 990);

    // Expiry resumes: the short leases go on their own.
    assert!(
        eventually(Duration::from_secs(30), || users(&short).is_empty()),
        "short leases did not expire after the restart: {} left",
        users(&short).len()
    );
    for id in &short_leases {
        assert_eq!(api.put("sys/leases/lookup", json!({"lease_id": id})).0, 400);
    }
    // The restart counted the leases it found (the gauge and quotas start
    // from that count): the 990 long ones, and none of the expired.
    assert!(
        eventually(Duration::from_secs(10), || gauge_shows(&api, "active", 990)),
        "the restart did not count the 990 leases"
    );
    // Every long lease is still revocable.
    let (status, reply) = api.put("sys/leases/revoke-prefix/files/creds/long", json!({}));
    assert_eq!(status, 204, "{reply}");
    assert!(users(&long).is_empty(), "{} users left", users(&long).len());
    assert!(
        eventually(Duration::from_secs(10), || gauge_shows(&api, "active", 0)),
        "the gauge still counts leases"
    );
}

#[test]
fn failed_revocations_back_off_then_succeed_or_become_irrevocable() {
    let root = tempfile::tempdir().unwrap();
    let data = support::data_dir(&root);
    let server = Server::with_config(
        &data,
        "[leases]\nretry_base_seconds = 1\nretry_max_seconds = 2\nretry_budget_seconds = 4\nirrevocable_retry_seconds = 3600\n",
    );
    let api = server.api(&server.init_and_unseal());
    mount_gated(&api);
    let flaky = root.path().join("granted/flaky");
    let dead = root.path().join("granted/dead");
    connection_and_role(&api, "flaky", &flaky, "1s");
    connection_and_role(&api, "dead", &dead, "1s");
    std::fs::write(flaky.join("fail-revoke"), "2").unwrap();
    std::fs::write(dead.join("fail-revoke"), "always").unwrap();

    let (_, flaky_lease) = api.get("files/creds/flaky");
    let (_, dead_lease) = api.get("files/creds/dead");
    let lookup =
        |lease: &Value| api.put("sys/leases/lookup", json!({"lease_id": lease["lease_id"]}));

    // The flaky target fails twice, is retried with backoff, and is cleaned up,
    // while the dead one keeps failing beside it.
    assert!(
        eventually(Duration::from_secs(10), || {
            lookup(&flaky_lease).1["data"]["revoke_attempts"]
                .as_u64()
                .is_some_and(|n| n >= 1)
        }),
        "no failed attempt recorded"
    );
    assert!(
        eventually(Duration::from_secs(20), || users(&flaky).is_empty()),
        "the flaky target was never cleaned up"
    );
    assert_eq!(lookup(&flaky_lease).0, 400);

    // The dead target's lease becomes irrevocable: listed, with its error, and
    // in the metrics; revoke-force removes the lease.
    assert!(
        eventually(
            Duration::from_secs(20),
            || lookup(&dead_lease).1["data"]["state"] == "irrevocable"
        ),
        "{}",
        lookup(&dead_lease).1
    );
    let (status, irrevocable) = api.get("sys/leases?type=irrevocable");
    assert_eq!(status, 200);
    assert_eq!(irrevocable["data"]["lease_count"], 1);
    let listed = &irrevocable["data"]["leases"][0];
    assert_eq!(listed["lease_id"], dead_lease["lease_id"]);
    assert!(
        listed["error"].as_str().unwrap().contains("target is down"),
        "{listed}"
    );
    assert!(
        gauge_shows(&api, "irrevocable", 1),
        "not counted irrevocable"
    );
    // The mount cannot be disabled while the lease cannot be revoked.
    let (status, refused) = api.delete("sys/mounts/files");
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["errors"][0]
            .as_str()
            .unwrap()
            .contains("could not be revoked"),
        "{refused}"
    );
    assert!(api.get("sys/mounts").1["data"].get("files/").is_some());
    let (status, _) = api.put("sys/leases/revoke-force/files/creds/dead", json!({}));
    assert_eq!(status, 204);
    assert_eq!(lookup(&dead_lease).0, 400);
    let (_, irrevocable) = api.get("sys/leases?type=irrevocable");
    assert_eq!(irrevocable["data"]["lease_count"], 0);
}

#[test]
fn overlapping_queued_revocations_and_client_revocations_all_end_on_the_target() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    mount_gated(&api);
    let a = root.path().join("granted/a");
    let b = root.path().join("granted/b");
    connection_and_role(&api, "a", &a, "1h");
    connection_and_role(&api, "b", &b, "1h");
    let mut ids = Vec::new();
    for i in 0..600 {
        let role = if i % 2 == 0 { "a" } else { "b" };
        let (status, reply) = api.get(&format!("files/creds/{role}"));
        assert_eq!(status, 200, "{reply}");
        ids.push(reply["lease_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(users(&a).len() + users(&b).len(), 600);

    // At once: queued revocations of a role, of the whole mount, and of one
    // lease by its id as a prefix (listed after the rest, so in another order
    // than the mount's), while clients revoke leases one by one.
    let base = api.base.clone();
    let mut clients = Vec::new();
    let queued = [
        "sys/leases/revoke-prefix/files/creds/a".to_owned(),
        "sys/leases/revoke-prefix/files".to_owned(),
        format!("sys/leases/revoke-prefix/{}", ids[10]),
    ];
    for path in queued {
        let api = Api::new(&base, &token);
        clients.push(std::thread::spawn(move || {
            let (status, reply) = api.put(&path, json!({"sync": false}));
            assert_eq!(status, 202, "{path}: {reply}");
        }));
    }
    for chunk in ids.chunks(100).take(3) {
        let api = Api::new(&base, &token);
        let chunk = chunk.to_vec();
        clients.push(std::thread::spawn(move || {
            for id in chunk {
                let (status, reply) = api.put("sys/leases/revoke", json!({"lease_id": id}));
                // Gone already (the worker was first) or revoked now.
                assert!(status == 204 || status == 400, "{status} {reply}");
            }
        }));
    }
    for client in clients {
        client.join().unwrap();
    }
    assert!(
        eventually(Duration::from_secs(60), || users(&a).is_empty()
            && users(&b).is_empty()),
        "credentials left on the target: {} and {}",
        users(&a).len(),
        users(&b).len()
    );
    assert!(
        eventually(Duration::from_secs(30), || api
            .list("sys/leases/lookup/files/creds/b/")
            .0
            == 404
            && api.list("sys/leases/lookup/files/creds/a/").0 == 404),
        "leases left after their credentials were revoked"
    );
    for id in &ids {
        assert_eq!(api.put("sys/leases/lookup", json!({"lease_id": id})).0, 400);
    }
    assert!(
        eventually(Duration::from_secs(10), || gauge_shows(&api, "active", 0)),
        "the gauge still counts leases"
    );
}
