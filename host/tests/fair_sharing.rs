//! One tenant cannot starve another: a mount whose target hangs (a tarpit that
//! accepts and never answers) takes only its own connection's share, its
//! callers are refused fast once its breaker opens, and every request of
//! another mount succeeds meanwhile. Expiry works the same way: thousands of
//! overdue leases on a hung target do not delay the revocation of leases on a
//! healthy one.

mod support;

use leasehold_test_support::{InHouse, Tarpit, Users};
use serde_json::json;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::{Api, Server, eventually};

const SIGNING_KEY: &str = "signing-key-of-the-in-house-team";
const PAYLOAD: &str = "admin-payload";

/// Plugin calls stop after two seconds; calls wait at most three for a turn.
const LIMITS: &str = "[plugins]\ncall_timeout_seconds = 2\nqueue_timeout_seconds = 3\n\
                      max_instances = 24\nmax_calls_per_mount = 8\n\
                      [leases]\nrevocation_workers = 8\nretry_base_seconds = 1\nretry_max_seconds = 2\n";

/// A webhook mount at `mount` pointed at `url`, with role `dev`.
fn webhook_mount(api: &Api, mount: &str, url: &str, ttl: &str) {
    api.ok(&format!("sys/mounts/{mount}"), json!({"type": "webhook"}));
    api.grant(mount, json!({"allowed_origins": [url]}));
    api.ok(
        &format!("{mount}/config/users"),
        json!({
            "url": url, "payload": PAYLOAD, "signing_key": SIGNING_KEY,
            // Longer than the host's deadline: the host decides when to give up.
            "timeout_seconds": 60,
            "allowed_roles": ["dev"],
            "verify_connection": false,
        }),
    );
    api.ok(
        &format!("{mount}/roles/dev"),
        json!({"db_name": "users", "default_ttl": ttl}),
    );
}

fn noop_mount(api: &Api, mount: &str, ttl: &str) {
    api.ok(&format!("sys/mounts/{mount}"), json!({"type": "noop"}));
    api.ok(
        &format!("{mount}/config/c"),
        json!({"allowed_roles": ["r"]}),
    );
    api.ok(
        &format!("{mount}/roles/r"),
        json!({"db_name": "c", "default_ttl": ttl}),
    );
}

#[test]
fn a_hung_target_takes_only_its_own_share_and_its_breaker_fails_fast() {
    let root = tempfile::tempdir().unwrap();
    let tarpit = Tarpit::start(0);
    let server = Server::with_config(&support::data_dir(&root), LIMITS);
    let token = server.init_and_unseal();
    let api = server.api(&token);
    webhook_mount(&api, "slow", &tarpit.url(), "1h");
    noop_mount(&api, "fast", "1h");

    // 40 callers on the hung mount at once, while 8 callers use the other one.
    let hammering = Arc::new(AtomicBool::new(true));
    let slow_answers = Arc::new(Mutex::new(Vec::new()));
    let slow: Vec<_> = (0..40)
        .map(|_| {
            let (url, token, answers) = (
                server.url("slow/creds/dev"),
                token.clone(),
                slow_answers.clone(),
            );
            std::thread::spawn(move || {
                let response = reqwest::blocking::Client::new()
                    .get(url)
                    .header("X-Vault-Token", token)
                    .timeout(Duration::from_secs(120))
                    .send()
                    .unwrap();
                let retry_after = response.headers().contains_key("retry-after");
                answers.lock().unwrap().push((
                    response.status().as_u16(),
                    retry_after,
                    response.text().unwrap(),
                ));
            })
        })
        .collect();
    let fast: Vec<_> = (0..8)
        .map(|_| {
            let (base, token, hammering) = (server.base.clone(), token.clone(), hammering.clone());
            std::thread::spawn(move || {
                let api = Api::new(&base, &token);
                let mut issued = 0;
                while hammering.load(Ordering::Relaxed) {
                    let (status, reply) = api.get("fast/creds/r");
                    assert_eq!(status, 200, "the healthy mount failed meanwhile: {reply}");
                    issued += 1;
                }
                issued
            })
        })
        .collect();
    for caller in slow {
        caller.join().unwrap();
    }
    hammering.store(false, Ordering::Relaxed);
    let fast_issued: usize = fast.into_iter().map(|t| t.join().unwrap()).sum();
    assert!(fast_issued > 0);

    // Every caller of the hung mount got a clear, deliberate answer: its call
    // timed out (502), or it was refused with Retry-After (429: waited too
    // long for a turn; 503: the breaker is open).
    let answers = slow_answers.lock().unwrap();
    for (status, retry_after, body) in answers.iter() {
        match status {
            502 => assert!(body.contains("did not finish"), "{body}"),
            429 | 503 => assert!(retry_after, "{status} without Retry-After: {body}"),
            other => panic!("unexpected answer {other}: {body}"),
        }
    }
    assert!(
        answers.iter().any(|(status, ..)| *status == 503),
        "the breaker never opened: {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    // The hung target saw only its connection's share at once, never 40.
    assert!(
        tarpit.accepted() < 40,
        "{} connections reached the tarpit",
        tarpit.accepted()
    );

    // With the breaker open, a caller is refused at once, not after a timeout.
    // (If the cooldown just ended, this caller is the probe: it times out, the
    // breaker opens again for longer, and the next caller is refused.)
    let mut refused_fast = None;
    for _ in 0..3 {
        let started = Instant::now();
        let (status, reply) = api.get("slow/creds/dev");
        match status {
            503 => {
                refused_fast = Some((started.elapsed(), reply));
                break;
            }
            502 => continue,
            other => panic!("unexpected answer {other}: {reply}"),
        }
    }
    let (took, refused) = refused_fast.expect("the breaker never refused a caller");
    assert!(took < Duration::from_secs(2), "{took:?}");
    assert!(
        refused["errors"][0]
            .as_str()
            .unwrap()
            .contains("timing out")
    );
    // And the healthy mount still answers.
    assert_eq!(api.get("fast/creds/r").0, 200);
}

#[test]
fn overdue_leases_on_a_hung_target_do_not_delay_a_healthy_ones_expiry() {
    let root = tempfile::tempdir().unwrap();
    let users = Users::new(PAYLOAD);
    let service = InHouse::start(&users, SIGNING_KEY, None, 0);
    let server = Server::with_config(&support::data_dir(&root), LIMITS);
    let token = server.init_and_unseal();
    let api = server.api(&token);
    webhook_mount(&api, "doomed", &service.url(), "1h");
    noop_mount(&api, "healthy", "3s");

    // A thousand leases on a target that then hangs.
    let issuers: Vec<_> = (0..16)
        .map(|_| {
            let (base, token) = (server.base.clone(), token.clone());
            std::thread::spawn(move || {
                let api = Api::new(&base, &token);
                for _ in 0..64 {
                    let (status, reply) = api.get("doomed/creds/dev");
                    assert_eq!(status, 200, "{reply}");
                }
            })
        })
        .collect();
    for issuer in issuers {
        issuer.join().unwrap();
    }
    assert_eq!(users.all().len(), 1024);
    let port = service.stop();
    let tarpit = Tarpit::start(port);
    // All due at once (as if they had expired together), on a hung target.
    let (status, reply) = api.put("sys/leases/revoke-prefix/doomed", json!({"sync": false}));
    assert_eq!(status, 202, "{reply}");

    // Once the worker is busy with them, a few leases on a healthy target.
    assert!(
        eventually(Duration::from_secs(30), || tarpit.accepted() > 0),
        "the worker never tried to revoke the overdue leases"
    );
    let healthy: Vec<String> = (0..5)
        .map(|_| {
            let (status, reply) = api.get("healthy/creds/r");
            assert_eq!(status, 200, "{reply}");
            reply["lease_id"].as_str().unwrap().to_owned()
        })
        .collect();
    let expires = Instant::now() + Duration::from_secs(3);
    assert!(
        eventually(Duration::from_secs(20), || healthy.iter().all(|id| {
            api.put("sys/leases/lookup", json!({"lease_id": id})).0 == 400
        })),
        "the healthy leases were not revoked within seconds of their expiry"
    );
    eprintln!(
        "healthy leases revoked {:?} after their expiry",
        Instant::now().saturating_duration_since(expires)
    );
    // The hung target's leases are still there, waiting for it.
    let (status, listed) = api.list("sys/leases/lookup/doomed/creds/dev/");
    assert_eq!(status, 200, "{listed}");
    assert!(listed["data"]["keys"].as_array().unwrap().len() > 900);
}
