//! Rate-limit and lease-count quotas through the running server: set, read,
//! listed and deleted over HTTP; over the limit is 429 with a clear message
//! (and `Retry-After` for rates); concurrent requests cannot overshoot a lease
//! count; both show in `sys/metrics`; bad input changes nothing.

mod support;

use serde_json::json;
use support::Server;

fn metrics(server: &Server, token: &str) -> String {
    reqwest::blocking::Client::new()
        .get(server.url("sys/metrics?format=prometheus"))
        .header("X-Vault-Token", token)
        .send()
        .unwrap()
        .text()
        .unwrap()
}

#[test]
fn a_rate_limit_refuses_a_client_over_its_rate_and_no_one_else() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let root_token = server.init_and_unseal();
    let api = server.api(&root_token);
    api.ok(
        "sys/policies/acl/reader",
        json!({"policy": "path \"sys/mounts\" { capabilities = [\"read\"] }"}),
    );
    let (_, other) = api.put("auth/token/create", json!({"policies": ["reader"]}));
    let other = server.api(other["auth"]["client_token"].as_str().unwrap());

    // A token without a policy on sys/quotas can neither set nor remove one.
    let (status, _) = other.put(
        "sys/quotas/rate-limit/mounts",
        json!({"path": "sys/mounts", "rate": 1}),
    );
    assert_eq!(status, 403);
    assert_eq!(api.list("sys/quotas/rate-limit").0, 404);

    // As Vault's clients write it (Terraform sends `role` and `inheritable`).
    api.ok(
        "sys/quotas/rate-limit/mounts",
        json!({"path": "sys/mounts", "rate": 3, "interval": "1h", "role": "",
               "inheritable": false, "group_by": "entity_then_ip", "type": "rate-limit"}),
    );
    assert_eq!(other.delete("sys/quotas/rate-limit/mounts").0, 403);
    let (status, read) = api.get("sys/quotas/rate-limit/mounts");
    assert_eq!(status, 200, "{read}");
    assert_eq!(read["data"]["rate"], 3.0);
    assert_eq!(read["data"]["interval"], 3600);
    assert_eq!(read["data"]["path"], "sys/mounts");

    for _ in 0..3 {
        assert_eq!(api.get("sys/mounts").0, 200);
    }
    let refused = reqwest::blocking::Client::new()
        .get(server.url("sys/mounts"))
        .header("X-Vault-Token", &root_token)
        .send()
        .unwrap();
    assert_eq!(refused.status(), 429);
    let retry_after: u64 = refused.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 60, "{retry_after}");
    let body: serde_json::Value = refused.json().unwrap();
    assert!(
        body["errors"][0]
            .as_str()
            .unwrap()
            .contains("rate limit quota exceeded"),
        "{body}"
    );
    // Other paths, other clients and the health check are not limited.
    assert_eq!(api.get("sys/policies/acl").0, 405);
    assert_eq!(api.list("sys/policies/acl").0, 200);
    assert_eq!(other.get("sys/mounts").0, 200);
    assert_eq!(api.get("sys/health").0, 200);
    assert!(
        metrics(&server, &root_token)
            .contains("leasehold_quota_rate_limited_total{quota=\"mounts\"} 1")
    );

    // Twenty requests at once under a rate of five: exactly five get through.
    api.ok(
        "sys/quotas/rate-limit/policies",
        json!({"path": "sys/policies/acl", "rate": 5, "interval": "1h"}),
    );
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let (base, token) = (server.base.clone(), root_token.clone());
            std::thread::spawn(move || support::Api::new(&base, &token).list("sys/policies/acl").0)
        })
        .collect();
    let statuses: Vec<u16> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        5,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        15,
        "{statuses:?}"
    );
    assert_eq!(api.delete("sys/quotas/rate-limit/policies").0, 204);

    // Listed, then deleted: the limit is gone at once.
    let (status, listed) = api.list("sys/quotas/rate-limit");
    assert_eq!(status, 200);
    assert_eq!(listed["data"]["keys"], json!(["mounts"]));
    assert_eq!(api.delete("sys/quotas/rate-limit/mounts").0, 204);
    assert_eq!(api.get("sys/mounts").0, 200);
    assert_eq!(api.get("sys/quotas/rate-limit/mounts").0, 404);
}

#[test]
fn a_lease_count_holds_under_concurrent_requests_and_frees_on_revoke() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    api.ok("sys/mounts/n", json!({"type": "noop"}));
    api.ok("n/config/c", json!({"allowed_roles": "*"}));
    api.ok("n/roles/r", json!({"db_name": "c", "default_ttl": "1h"}));
    api.ok(
        "n/roles/other",
        json!({"db_name": "c", "default_ttl": "1h"}),
    );
    api.ok(
        "sys/quotas/lease-count/five",
        json!({"path": "n/creds/r", "max_leases": 5}),
    );

    // Twenty clients at once: exactly five leases, fifteen clear refusals.
    let callers: Vec<_> = (0..20)
        .map(|_| {
            let (base, token) = (server.base.clone(), token.clone());
            std::thread::spawn(move || support::Api::new(&base, &token).get("n/creds/r"))
        })
        .collect();
    let answers: Vec<_> = callers.into_iter().map(|c| c.join().unwrap()).collect();
    let issued: Vec<&serde_json::Value> = answers
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, reply)| reply)
        .collect();
    assert_eq!(issued.len(), 5, "{answers:?}");
    for (status, reply) in answers.iter().filter(|(status, _)| *status != 200) {
        assert_eq!(*status, 429, "{reply}");
        assert!(
            reply["errors"][0]
                .as_str()
                .unwrap()
                .contains("lease count quota `five` exceeded"),
            "{reply}"
        );
    }
    // Another role of the mount is outside the quota's path.
    assert_eq!(api.get("n/creds/other").0, 200);

    let (status, read) = api.get("sys/quotas/lease-count/five");
    assert_eq!(status, 200);
    assert_eq!(read["data"]["counter"], 5);
    let text = metrics(&server, &token);
    assert!(
        text.contains("leasehold_quota_lease_count{quota=\"five\"} 5"),
        "{text}"
    );
    assert!(
        text.contains("leasehold_quota_lease_count_max{quota=\"five\"} 5"),
        "{text}"
    );

    // A revocation frees a place.
    api.ok(
        "sys/leases/revoke",
        json!({"lease_id": issued[0]["lease_id"]}),
    );
    assert_eq!(api.get("n/creds/r").0, 200);
    assert_eq!(api.get("n/creds/r").0, 429);
}

#[test]
fn bad_quotas_are_refused_clearly_and_create_nothing() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let api = server.api(&server.init_and_unseal());
    for (path, body, says) in [
        ("sys/quotas/rate-limit/q", json!({"rate": 0}), "rate"),
        ("sys/quotas/rate-limit/q", json!({"rate": -1}), "rate"),
        ("sys/quotas/rate-limit/q", json!({"rate": "many"}), "rate"),
        (
            "sys/quotas/rate-limit/q",
            json!({"rate": 1, "interval": "soon"}),
            "interval",
        ),
        (
            "sys/quotas/rate-limit/q",
            json!({"rate": 1, "path": "/sys"}),
            "path",
        ),
        (
            "sys/quotas/rate-limit/q",
            json!({"rate": 1, "path": "db/*"}),
            "path",
        ),
        (
            "sys/quotas/rate-limit/q",
            json!({"rate": 1, "burst": 3}),
            "burst",
        ),
        (
            "sys/quotas/rate-limit/q",
            json!({"rate": 1, "role": "web"}),
            "role",
        ),
        (
            "sys/quotas/rate-limit/q",
            json!({"rate": 1, "group_by": "moon"}),
            "group_by",
        ),
        (
            "sys/quotas/rate-limit/q",
            json!({"rate": 1, "secondary_rate": 5}),
            "secondary_rate",
        ),
        (
            "sys/quotas/rate-limit/q",
            json!({"rate": 1, "name": "other"}),
            "other",
        ),
        ("sys/quotas/rate-limit/bad name", json!({"rate": 1}), "name"),
        (
            "sys/quotas/lease-count/q",
            json!({"max_leases": 0}),
            "max_leases",
        ),
        ("sys/quotas/lease-count/q", json!({}), "max_leases"),
        (
            "sys/quotas/lease-count/q",
            json!({"max_leases": 1, "type": "rate-limit"}),
            "rate-limit",
        ),
    ] {
        let (status, reply) = api.put(path, body.clone());
        assert_eq!(status, 400, "{path} {body}: {reply}");
        let message = reply["errors"][0].as_str().unwrap();
        assert!(message.contains(says), "{path} {body}: {message}");
    }
    assert_eq!(api.list("sys/quotas/rate-limit").0, 404);
    assert_eq!(api.list("sys/quotas/lease-count").0, 404);
}
