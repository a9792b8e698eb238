//! The server under load, as a deployment uses it: 32 clients at once issue,
//! renew and revoke `noop` leases for about twenty seconds against the real
//! binary (debug build). Nothing may hang, every answer is a 2xx or a
//! deliberate 429/503 with `Retry-After`, `sys/health` keeps answering within a
//! second, and afterwards the books balance: issued − revoked = active, in
//! `sys/metrics` and in `LIST sys/leases/lookup`, before and after a restart.

mod support;

use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use support::Server;

const CLIENTS: usize = 32;
const SOAK: Duration = Duration::from_secs(20);
/// What `sys/health` must answer within while the soak runs.
const HEALTHY: Duration = Duration::from_secs(1);

/// What the clients saw, all together.
#[derive(Default)]
struct Tally {
    issued: AtomicU64,
    revoked: AtomicU64,
    renewed: AtomicU64,
    refused: AtomicU64,
    /// Answers that were neither a success nor a deliberate refusal.
    wrong: Mutex<Vec<String>>,
}

impl Tally {
    /// Checks one answer; true for a success.
    fn check(
        &self,
        what: &str,
        response: reqwest::Result<reqwest::blocking::Response>,
    ) -> Option<Value> {
        let response = match response {
            Ok(response) => response,
            Err(err) => {
                self.wrong
                    .lock()
                    .unwrap()
                    .push(format!("{what}: no answer: {err}"));
                return None;
            }
        };
        let status = response.status().as_u16();
        let retry_after = response.headers().contains_key("retry-after");
        let body = response.text().unwrap_or_default();
        match status {
            200..=299 => Some(serde_json::from_str(&body).unwrap_or(Value::Null)),
            429 | 503 if retry_after => {
                self.refused.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(50));
                None
            }
            _ => {
                self.wrong
                    .lock()
                    .unwrap()
                    .push(format!("{what}: {status} {body}"));
                None
            }
        }
    }
}

/// One client: issue, and now and then renew or revoke one of its own leases.
fn client(base: String, token: String, tally: Arc<Tally>, until: Instant, seed: u64) {
    let http = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap();
    let call = |method: reqwest::Method, path: &str, body: Option<Value>| {
        let mut request = http
            .request(method, format!("{base}/v1/{path}"))
            .header("X-Vault-Token", &token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send()
    };
    let mut held: Vec<String> = Vec::new();
    let mut n = seed;
    while Instant::now() < until {
        n = n
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let dice = (n >> 33) % 10;
        if dice < 2 && !held.is_empty() {
            let lease = held[(n as usize >> 7) % held.len()].clone();
            let renewed = call(
                reqwest::Method::PUT,
                "sys/leases/renew",
                Some(json!({"lease_id": lease, "increment": 3600})),
            );
            if tally.check("renew", renewed).is_some() {
                tally.renewed.fetch_add(1, Ordering::Relaxed);
            }
        } else if dice < 5 && !held.is_empty() {
            let lease = held.swap_remove((n as usize >> 7) % held.len());
            let revoked = call(
                reqwest::Method::PUT,
                "sys/leases/revoke",
                Some(json!({"lease_id": lease})),
            );
            match tally.check("revoke", revoked) {
                Some(_) => {
                    tally.revoked.fetch_add(1, Ordering::Relaxed);
                }
                // Refused: still held, try again later.
                None => held.push(lease),
            }
        } else if let Some(issued) =
            tally.check("issue", call(reqwest::Method::GET, "soak/creds/load", None))
        {
            tally.issued.fetch_add(1, Ordering::Relaxed);
            held.push(issued["lease_id"].as_str().unwrap().to_owned());
        }
    }
}

/// The `leasehold_leases` gauge for `mount` and `state` in `sys/metrics`.
fn gauge(server: &Server, token: &str, mount: &str, state: &str) -> u64 {
    let (status, _) = server.api(token).get("sys/health");
    assert_eq!(status, 200);
    let text = reqwest::blocking::Client::new()
        .get(server.url("sys/metrics?format=prometheus"))
        .header("X-Vault-Token", token)
        .send()
        .unwrap()
        .text()
        .unwrap();
    let mount_label = format!("mount=\"{mount}\"");
    let state_label = format!("state=\"{state}\"");
    text.lines()
        .find(|line| {
            line.starts_with("leasehold_leases{")
                && line.contains(&mount_label)
                && line.contains(&state_label)
        })
        .and_then(|line| line.rsplit(' ').next())
        .map(|n| n.parse::<f64>().unwrap() as u64)
        .unwrap_or_else(|| panic!("no leasehold_leases gauge for {mount} {state}:\n{text}"))
}

/// Lease ids under the role, through `LIST sys/leases/lookup`.
fn listed(server: &Server, token: &str) -> u64 {
    let (status, reply) = server.api(token).list("sys/leases/lookup/soak/creds/load/");
    match status {
        200 => reply["data"]["keys"].as_array().unwrap().len() as u64,
        404 => 0,
        other => panic!("LIST answered {other}: {reply}"),
    }
}

#[test]
fn thirty_two_clients_issue_renew_and_revoke_and_the_books_balance() {
    let root = tempfile::tempdir().unwrap();
    let data = support::data_dir(&root);
    let server = Server::with_data_dir(&data);
    let (token, share) = server.init_and_unseal_keeping_share();
    let api = server.api(&token);
    api.ok("sys/mounts/soak", json!({"type": "noop"}));
    api.ok(
        "soak/config/target",
        json!({"allowed_roles": ["load"], "max_parallel": 8}),
    );
    api.ok(
        "soak/roles/load",
        json!({"db_name": "target", "default_ttl": "1h"}),
    );

    let tally = Arc::new(Tally::default());
    let until = Instant::now() + SOAK;
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let (base, token, tally) = (server.base.clone(), token.clone(), tally.clone());
            std::thread::spawn(move || client(base, token, tally, until, i as u64 + 1))
        })
        .collect();

    // Meanwhile, the server must stay responsive.
    let soaking = Arc::new(AtomicBool::new(true));
    let health = {
        let (url, soaking) = (server.url("sys/health"), soaking.clone());
        std::thread::spawn(move || {
            let http = reqwest::blocking::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap();
            let mut slowest = Duration::ZERO;
            let mut checks = 0;
            while soaking.load(Ordering::Relaxed) {
                let started = Instant::now();
                let status = http.get(&url).send().map(|r| r.status().as_u16());
                assert_eq!(status.ok(), Some(200), "sys/health failed during the soak");
                slowest = slowest.max(started.elapsed());
                checks += 1;
                std::thread::sleep(Duration::from_millis(200));
            }
            (slowest, checks)
        })
    };
    for client in clients {
        client.join().unwrap();
    }
    soaking.store(false, Ordering::Relaxed);
    let (slowest, checks) = health.join().unwrap();

    let wrong = tally.wrong.lock().unwrap().clone();
    assert!(
        wrong.is_empty(),
        "{} answers were neither 2xx nor a deliberate refusal; first: {:?}",
        wrong.len(),
        &wrong[..wrong.len().min(5)]
    );
    let issued = tally.issued.load(Ordering::Relaxed);
    let revoked = tally.revoked.load(Ordering::Relaxed);
    let renewed = tally.renewed.load(Ordering::Relaxed);
    eprintln!(
        "soak: {issued} issued, {renewed} renewed, {revoked} revoked, {} refused; sys/health slowest {slowest:?} over {checks} checks",
        tally.refused.load(Ordering::Relaxed)
    );
    assert!(
        issued > 200 && revoked > 50 && renewed > 20,
        "the soak did too little"
    );
    assert!(
        slowest < HEALTHY,
        "sys/health took {slowest:?} at its slowest during the soak"
    );

    let held = issued - revoked;
    assert_eq!(gauge(&server, &token, "soak/", "active"), held);
    assert_eq!(gauge(&server, &token, "soak/", "pending"), 0);
    assert_eq!(listed(&server, &token), held);

    // The same after a restart: every acknowledged write was durable.
    server.stop();
    let server = Server::with_data_dir(&data);
    server.unseal(&share);
    assert_eq!(listed(&server, &token), held);
    assert_eq!(gauge(&server, &token, "soak/", "active"), held);
}
