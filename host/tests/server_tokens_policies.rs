//! Tokens and policies through the real binary: a child token with a policy is
//! allowed exactly what the policy says; revoking a token revokes its children.

mod support;

use reqwest::blocking::Client;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use support::{Server, data_dir};

struct Api {
    server: Server,
    client: Client,
}

impl Api {
    fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .client
            .request(method, self.server.url(path))
            .header("X-Vault-Token", token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().unwrap();
        let status = response.status();
        (status, response.json().unwrap_or(Value::Null))
    }
}

/// An initialized, unsealed server and its root token.
fn unsealed() -> (Api, String, tempfile::TempDir) {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&data_dir(&root));
    let client = Client::new();
    let token = server.init_and_unseal();
    (Api { server, client }, token, root)
}

#[test]
fn a_child_token_gets_exactly_what_its_policy_allows() {
    let (api, root, _dir) = unsealed();
    let policy = r#"
        path "db/creds/ro" { capabilities = ["read"] }
        path "sys/policies/acl/*" { capabilities = ["read"] }
        path "sys/leases/revoke-prefix/*" { capabilities = ["update"] }
        path "auth/token/create" { capabilities = ["update"] }
    "#;
    let (status, body) = api.call(
        "PUT",
        "sys/policies/acl/reader",
        &root,
        Some(json!({ "policy": policy })),
    );
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
    let (status, listed) = api.call("LIST", "sys/policies/acl", &root, None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed["data"]["keys"], json!(["default", "reader", "root"]));
    let (_, read) = api.call("GET", "sys/policies/acl/reader", &root, None);
    assert_eq!(read["data"]["policy"], json!(policy));

    let (status, created) = api.call(
        "POST",
        "auth/token/create",
        &root,
        Some(json!({ "policies": ["reader"], "ttl": "1h", "display_name": "ci", "meta": { "team": "web" } })),
    );
    assert_eq!(status, StatusCode::OK, "{created}");
    let auth = &created["auth"];
    assert_eq!(auth["policies"], json!(["default", "reader"]));
    assert_eq!(auth["lease_duration"], json!(3600));
    assert_eq!(created["data"], Value::Null);
    let child = auth["client_token"].as_str().unwrap().to_owned();

    // Allowed by `default`: its own lookup; the display name is Vault's shape.
    let (status, me) = api.call("GET", "auth/token/lookup-self", &child, None);
    assert_eq!(status, StatusCode::OK);
    assert_eq!(me["data"]["display_name"], json!("token-ci"));
    assert_eq!(me["data"]["meta"], json!({ "team": "web" }));
    // Allowed by `reader`: reading a policy.
    assert_eq!(
        api.call("GET", "sys/policies/acl/reader", &child, None).0,
        StatusCode::OK
    );
    // Denied: writing a policy, creating a policy-less sibling path, sudo paths.
    let (status, body) = api.call(
        "PUT",
        "sys/policies/acl/reader",
        &child,
        Some(json!({ "policy": "" })),
    );
    assert_eq!(
        (status, body),
        (
            StatusCode::FORBIDDEN,
            json!({ "errors": ["permission denied"] })
        )
    );
    assert_eq!(
        api.call("GET", "db/creds/rw", &child, None).0,
        StatusCode::FORBIDDEN
    );
    // `update` without `sudo` on a root-protected path is not enough.
    assert_eq!(
        api.call(
            "PUT",
            "sys/leases/revoke-prefix/db",
            &child,
            Some(json!({}))
        )
        .0,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        api.call("PUT", "sys/seal", &child, Some(json!({}))).0,
        StatusCode::FORBIDDEN
    );
    // `read` on db/creds/ro passes authorization (the path has no handler yet: 404).
    assert_eq!(
        api.call("GET", "db/creds/ro", &child, None).0,
        StatusCode::NOT_FOUND
    );

    // A child may create tokens, but not with more than it has.
    let (status, body) = api.call(
        "POST",
        "auth/token/create",
        &child,
        Some(json!({ "policies": ["admin"] })),
    );
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["errors"][0].as_str().unwrap().contains("subset"),
        "{body}"
    );
    let (status, body) = api.call(
        "POST",
        "auth/token/create",
        &child,
        Some(json!({ "policies": ["reader"] })),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = api.call(
        "POST",
        "auth/token/create",
        &child,
        Some(json!({ "no_parent": true })),
    );
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "an orphan without sudo: {body}"
    );
    // The policy's rules change for the token at once: without it, reading fails.
    assert_eq!(
        api.call("DELETE", "sys/policies/acl/reader", &root, None).0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", "sys/policies/acl/reader", &child, None).0,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn revoking_a_token_revokes_its_children_but_not_orphans() {
    let (api, root, _dir) = unsealed();
    api.call(
        "PUT",
        "sys/policies/acl/maker",
        &root,
        Some(json!({ "policy": r#"
            path "auth/token/create" { capabilities = ["update"] }
            path "auth/token/create-orphan" { capabilities = ["update"] }
        "# })),
    );
    let create = |token: &str, path: &str| {
        let (status, body) = api.call("POST", path, token, Some(json!({ "policies": ["maker"] })));
        assert_eq!(status, StatusCode::OK, "{body}");
        body["auth"]["client_token"].as_str().unwrap().to_owned()
    };
    let parent = create(&root, "auth/token/create");
    let child = create(&parent, "auth/token/create");
    let grandchild = create(&child, "auth/token/create");
    let orphan = create(&parent, "auth/token/create-orphan");
    let (_, orphan_info) = api.call("GET", "auth/token/lookup-self", &orphan, None);
    assert_eq!(orphan_info["data"]["orphan"], json!(true));

    assert_eq!(
        api.call(
            "POST",
            "auth/token/revoke",
            &root,
            Some(json!({ "token": parent }))
        )
        .0,
        StatusCode::NO_CONTENT
    );
    for gone in [&parent, &child, &grandchild] {
        assert_eq!(
            api.call("GET", "auth/token/lookup-self", gone, None).0,
            StatusCode::FORBIDDEN
        );
    }
    assert_eq!(
        api.call("GET", "auth/token/lookup-self", &orphan, None).0,
        StatusCode::OK
    );

    // revoke-self and revoke-accessor.
    let (_, info) = api.call("GET", "auth/token/lookup-self", &orphan, None);
    let accessor = info["data"]["accessor"].as_str().unwrap().to_owned();
    let (status, looked) = api.call(
        "POST",
        "auth/token/lookup-accessor",
        &root,
        Some(json!({ "accessor": accessor })),
    );
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        looked["data"]["id"],
        json!(""),
        "lookup-accessor must not reveal the token"
    );
    assert_eq!(
        api.call(
            "POST",
            "auth/token/revoke-accessor",
            &root,
            Some(json!({ "accessor": accessor }))
        )
        .0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", "auth/token/lookup-self", &orphan, None).0,
        StatusCode::FORBIDDEN
    );
    let last = create(&root, "auth/token/create");
    assert_eq!(
        api.call("POST", "auth/token/revoke-self", &last, None).0,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        api.call("GET", "auth/token/lookup-self", &last, None).0,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn tokens_renew_within_their_maximum_and_expire_on_their_own() {
    let (api, root, _dir) = unsealed();
    let (_, created) = api.call(
        "POST",
        "auth/token/create",
        &root,
        Some(json!({ "ttl": 2, "explicit_max_ttl": 60, "policies": ["default"] })),
    );
    let token = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, renewed) = api.call(
        "POST",
        "auth/token/renew-self",
        &token,
        Some(json!({ "increment": "10m" })),
    );
    assert_eq!(status, StatusCode::OK, "{renewed}");
    let ttl = renewed["auth"]["lease_duration"].as_u64().unwrap();
    assert!(
        (58..=60).contains(&ttl),
        "capped at explicit_max_ttl: {ttl}"
    );
    assert!(
        renewed["warnings"][0].as_str().unwrap().contains("capped"),
        "{renewed}"
    );

    let (_, short) = api.call(
        "POST",
        "auth/token/create",
        &root,
        Some(json!({ "ttl": "1s", "renewable": false })),
    );
    let short = short["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, body) = api.call("POST", "auth/token/renew-self", &short, Some(json!({})));
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    assert_eq!(
        api.call("GET", "auth/token/lookup-self", &short, None).0,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn bad_policy_and_token_requests_are_refused_and_change_nothing() {
    let (api, root, _dir) = unsealed();
    let cases = [
        (
            "PUT",
            "sys/policies/acl/bad",
            json!({ "policy": "path \"a\" { capabilities = [\"raed\"] }" }),
            "unknown capability `raed`",
        ),
        (
            "PUT",
            "sys/policies/acl/bad",
            json!({ "policy": "path \"a\" {" }),
            "does not parse",
        ),
        (
            "PUT",
            "sys/policies/acl/bad",
            json!({ "policy": 7 }),
            "field `policy` has the wrong type",
        ),
        (
            "PUT",
            "sys/policies/acl/bad",
            json!({ "policy": "", "colour": 1 }),
            "unknown field `colour`",
        ),
        (
            "PUT",
            "sys/policies/acl/root",
            json!({ "policy": "path \"a\" { capabilities = [\"read\"] }" }),
            "cannot be changed",
        ),
        (
            "DELETE",
            "sys/policies/acl/default",
            json!({}),
            "cannot be deleted",
        ),
        (
            "POST",
            "auth/token/create",
            json!({ "ttl": "soon" }),
            "not a duration",
        ),
        (
            "POST",
            "auth/token/create",
            json!({ "num_uses": -3 }),
            "field `num_uses` has the wrong type",
        ),
        (
            "POST",
            "auth/token/create",
            json!({ "policies": "reader" }),
            "field `policies` has the wrong type",
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = api.call(method, path, &root, Some(body.clone()));
        assert_eq!(
            status,
            StatusCode::BAD_REQUEST,
            "{method} {path} {body}: {answer}"
        );
        let message = answer["errors"][0].as_str().unwrap_or_default();
        assert!(message.contains(expected), "{method} {path}: {message}");
    }
    let (_, listed) = api.call("LIST", "sys/policies/acl", &root, None);
    assert_eq!(
        listed["data"]["keys"],
        json!(["default", "root"]),
        "a refused write stored something"
    );
    assert_eq!(
        api.call("GET", "sys/policies/acl/bad", &root, None).0,
        StatusCode::NOT_FOUND
    );
}

/// Durations that would overflow an expiry time are refused, and nothing is
/// created or changed.
#[test]
fn absurd_ttls_and_increments_are_refused() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&data_dir(&root));
    let api = server.api(&server.init_and_unseal());
    let huge = u64::MAX.to_string();
    for body in [
        json!({"ttl": u64::MAX}),
        json!({"ttl": huge}),
        json!({"explicit_max_ttl": u64::MAX}),
        json!({"ttl": "2562047788015215h"}),
    ] {
        let (status, reply) = api.put("auth/token/create", body.clone());
        assert_eq!(status, 400, "{body}: {reply}");
        assert!(
            reply["errors"][0].as_str().unwrap().contains("100 years"),
            "{reply}"
        );
    }
    let (_, created) = api.put("auth/token/create", json!({"ttl": "1h"}));
    let child = server.api(created["auth"]["client_token"].as_str().unwrap());
    let (status, reply) = child.put("auth/token/renew-self", json!({"increment": u64::MAX}));
    assert_eq!(status, 400, "{reply}");
    let (_, looked) = child.get("auth/token/lookup-self");
    assert!(looked["data"]["ttl"].as_u64().unwrap() <= 3600, "{looked}");
    let (status, reply) = api.put(
        "sys/mounts/n",
        json!({"type": "noop", "config": {"max_lease_ttl": u64::MAX}}),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply["errors"][0].as_str().unwrap().contains("100 years"),
        "{reply}"
    );
    assert_eq!(api.get("sys/mounts/n").0, 404);
}

#[test]
fn a_use_limited_token_serves_exactly_its_uses_even_to_concurrent_clients() {
    let (api, root, _dir) = unsealed();
    let (status, created) = api.call(
        "POST",
        "auth/token/create",
        &root,
        Some(json!({ "num_uses": 5, "ttl": "1h" })),
    );
    assert_eq!(status, StatusCode::OK, "{created}");
    let limited = created["auth"]["client_token"].as_str().unwrap().to_owned();
    // Twenty clients at once: exactly five are served.
    let answers: Vec<StatusCode> = std::thread::scope(|scope| {
        let calls: Vec<_> = (0..20)
            .map(|_| {
                let (api, limited) = (&api, &limited);
                scope.spawn(move || api.call("GET", "auth/token/lookup-self", limited, None).0)
            })
            .collect();
        calls.into_iter().map(|c| c.join().unwrap()).collect()
    });
    let served = answers.iter().filter(|s| **s == StatusCode::OK).count();
    assert_eq!(served, 5, "{answers:?}");
    assert!(
        answers
            .iter()
            .all(|s| *s == StatusCode::OK || *s == StatusCode::FORBIDDEN),
        "{answers:?}"
    );
    // Then it is gone altogether.
    let (status, _) = api.call(
        "POST",
        "auth/token/lookup",
        &root,
        Some(json!({ "token": limited })),
    );
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A credential issued with a token's last use goes with the token.
    api.call(
        "POST",
        "sys/mounts/n",
        &root,
        Some(json!({ "type": "noop" })),
    );
    api.call(
        "POST",
        "n/config/c",
        &root,
        Some(json!({ "allowed_roles": "*" })),
    );
    api.call("POST", "n/roles/r", &root, Some(json!({ "db_name": "c" })));
    let (_, once) = api.call(
        "POST",
        "auth/token/create",
        &root,
        Some(json!({ "num_uses": 1 })),
    );
    let once = once["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, issued) = api.call("GET", "n/creds/r", &once, None);
    assert_eq!(status, StatusCode::OK, "{issued}");
    let lease_id = issued["lease_id"].as_str().unwrap().to_owned();
    assert!(lease_id.starts_with("n/creds/r/"), "{issued}");
    let lease_gone = || {
        api.call(
            "PUT",
            "sys/leases/lookup",
            &root,
            Some(json!({ "lease_id": lease_id })),
        )
        .0 == StatusCode::BAD_REQUEST
    };
    assert!(
        support::eventually(std::time::Duration::from_secs(60), lease_gone),
        "the lease outlived its token"
    );

    // A use-limited token cannot escape its limit through children.
    let (_, limited) = api.call(
        "POST",
        "auth/token/create",
        &root,
        Some(json!({ "num_uses": 3 })),
    );
    let limited = limited["auth"]["client_token"].as_str().unwrap().to_owned();
    for path in ["auth/token/create", "auth/token/create-orphan"] {
        let (status, answer) = api.call("POST", path, &limited, Some(json!({})));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {answer}");
        assert!(
            answer.to_string().contains("restricted use token"),
            "{answer}"
        );
    }
}

#[test]
fn a_periodic_token_gets_its_period_at_every_renewal() {
    let (api, root, _dir) = unsealed();
    let (status, created) = api.call(
        "POST",
        "auth/token/create",
        &root,
        Some(json!({ "period": "10m", "ttl": "1m" })),
    );
    assert_eq!(status, StatusCode::OK, "{created}");
    assert_eq!(created["auth"]["lease_duration"], 600);
    let periodic = created["auth"]["client_token"].as_str().unwrap().to_owned();
    let (_, looked) = api.call("GET", "auth/token/lookup-self", &periodic, None);
    assert_eq!(looked["data"]["period"], 600, "{looked}");
    // Whatever increment is asked, a renewal gives the period again.
    let (status, renewed) = api.call(
        "POST",
        "auth/token/renew-self",
        &periodic,
        Some(json!({ "increment": "5h" })),
    );
    assert_eq!(status, StatusCode::OK, "{renewed}");
    assert_eq!(renewed["auth"]["lease_duration"], 600);

    // Only root or sudo makes a periodic token.
    let (_, plain) = api.call(
        "POST",
        "auth/token/create",
        &root,
        Some(json!({ "policies": ["default"] })),
    );
    let plain = plain["auth"]["client_token"].as_str().unwrap().to_owned();
    let (status, answer) = api.call(
        "POST",
        "auth/token/create",
        &plain,
        Some(json!({ "period": "1h" })),
    );
    assert!(status.is_client_error(), "{status} {answer}");
}
