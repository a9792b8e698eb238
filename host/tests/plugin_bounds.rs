//! A hostile plugin inside the running broker cannot exhaust it: the sockets it
//! may hold per call are capped (so the broker's file descriptors stay
//! bounded, and return to where they were), its log output per call is capped,
//! and a result too large to return is refused and its lease cleaned up.

mod support;

use leasehold_test_support::Tarpit;
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use support::{Server, eventually};

#[test]
fn a_hostile_plugin_cannot_exhaust_descriptors_logs_or_memory() {
    let root = tempfile::tempdir().unwrap();
    let tarpit = Tarpit::start(0);
    let target = format!("127.0.0.1:{}", tarpit.port);
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    api.mount_plugin("hostile", leasehold_plugin_artifacts::HOSTILE, "h");
    api.grant("h", json!({"allowed_hosts": [target]}));
    api.ok(
        "h/config/c",
        json!({"target": target, "allowed_roles": "*",
               "max_parallel": 16, "verify_connection": false}),
    );
    for act in ["sockets", "flood-log", "huge-result"] {
        api.ok(
            &format!("h/roles/{act}"),
            json!({"db_name": "c", "act": act}),
        );
    }
    let baseline = server.open_files();

    // 16 calls at once, each grabbing every socket it can.
    let peak = Arc::new(AtomicUsize::new(0));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling, pid) = (peak.clone(), sampling.clone(), server.pid());
        std::thread::spawn(move || {
            while sampling.load(Ordering::Relaxed) {
                let open = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count());
                peak.fetch_max(open, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let callers: Vec<_> = (0..16)
        .map(|_| {
            let (base, token) = (server.base.clone(), token.clone());
            std::thread::spawn(move || support::Api::new(&base, &token).get("h/creds/sockets"))
        })
        .collect();
    for caller in callers {
        let (status, reply) = caller.join().unwrap();
        assert_eq!(status, 200, "{reply}");
        assert_eq!(reply["data"]["held"], "16", "{reply}");
    }
    sampling.store(false, Ordering::Relaxed);
    sampler.join().unwrap();
    // Exactly the cap reached the target: 16 calls of 16 sockets. The last
    // may still wait in the tarpit's accept queue when the calls return.
    assert!(
        eventually(Duration::from_secs(10), || tarpit.accepted() >= 16 * 16),
        "{} connections reached the target",
        tarpit.accepted()
    );
    assert_eq!(tarpit.accepted(), 16 * 16);
    let peak = peak.load(Ordering::Relaxed);
    assert!(
        peak <= baseline + 16 * 16 + 64,
        "the broker held {peak} descriptors (from {baseline})"
    );
    assert!(
        eventually(Duration::from_secs(10), || server.open_files()
            <= baseline + 16),
        "descriptors were not given back: {} open, {baseline} before",
        server.open_files()
    );

    // A flood of log lines: the call succeeds, the broker's log grows by a
    // bounded amount (20 MB were written).
    let before = server.output().len();
    let (status, reply) = api.get("h/creds/flood-log");
    assert_eq!(status, 200, "{reply}");
    let grown = server.output().len() - before;
    assert!(grown < 2 << 20, "the log grew by {grown} bytes");
    assert!(server.output().contains("the rest is dropped"));

    // Ten megabytes of credential: refused, and the lease does not stay.
    let (status, reply) = api.get("h/creds/huge-result");
    assert_eq!(status, 500, "{reply}");
    let message = reply["errors"][0].as_str().unwrap();
    assert!(message.contains("more than the 65536"), "{message}");
    assert!(
        eventually(Duration::from_secs(15), || api
            .list("sys/leases/lookup/h/creds/huge-result/")
            .0
            == 404),
        "the refused credential's lease was not cleaned up"
    );
}
