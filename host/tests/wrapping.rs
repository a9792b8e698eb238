//! Response wrapping through the real binary: `X-Vault-Wrap-TTL` on a
//! credential from the htpasswd plugin gives a single-use token instead of the
//! credential; `sys/wrapping/unwrap` gives it back exactly once; the lease
//! inside expires on its own schedule, unwrapped or not; nothing of the
//! wrapped response is stored or audited in clear; lookup, rewrap, wrap; bad
//! wrap TTLs; 32 clients racing for one token; hvac's wrapping calls.

mod support;

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::Duration;
use support::{Api, Server, eventually};

const INVALID: &str = "wrapping token is not valid or does not exist";

/// `method path` with an optional token, wrap TTL and JSON body.
fn call(
    server: &Server,
    token: Option<&str>,
    method: &str,
    path: &str,
    wrap_ttl: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
    let mut request = reqwest::blocking::Client::new()
        .request(method, server.url(path))
        .timeout(Duration::from_secs(60));
    if let Some(token) = token {
        request = request.header("X-Vault-Token", token);
    }
    if let Some(ttl) = wrap_ttl {
        request = request.header("X-Vault-Wrap-TTL", ttl);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

/// Users in the htpasswd file, with their hashes.
fn users_in(file: &Path) -> Vec<(String, String)> {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.split_once(':'))
        .map(|(user, hash)| (user.to_owned(), hash.to_owned()))
        .collect()
}

/// Mounts htpasswd at `web/` writing to `<dir>/htpasswd`, with roles `reader`
/// (10 min) and `short` (3 s). Returns the users file.
fn set_up(api: &Api, dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).unwrap();
    api.ok("sys/mounts/web", json!({"type": "htpasswd"}));
    api.grant("web", json!({"directory": dir}));
    api.ok(
        "web/config/site",
        json!({"file": "htpasswd", "bcrypt_cost": 4, "allowed_roles": "*"}),
    );
    api.ok(
        "web/roles/reader",
        json!({"db_name": "site", "default_ttl": 600, "max_ttl": "1h"}),
    );
    api.ok(
        "web/roles/short",
        json!({"db_name": "site", "default_ttl": "3s", "max_ttl": "3s"}),
    );
    dir.join("htpasswd")
}

fn wrap_token(reply: &Value) -> String {
    reply["wrap_info"]["token"]
        .as_str()
        .unwrap_or_else(|| panic!("no wrapping token in {reply}"))
        .to_owned()
}

/// Every file under `dir`, read whole.
fn files_under(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_owned()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                pending.push(path);
            } else if let Ok(bytes) = std::fs::read(&path) {
                found.push((path, bytes));
            }
        }
    }
    found
}

fn assert_not_stored(data_dir: &Path, secret: &str) {
    for (path, bytes) in files_under(data_dir) {
        assert!(
            !bytes
                .windows(secret.len())
                .any(|window| window == secret.as_bytes()),
            "{secret:?} is in {} in clear",
            path.display()
        );
    }
}

#[test]
fn a_wrapped_credential_unwraps_once_and_is_never_stored_or_audited_in_clear() {
    let root = tempfile::tempdir().unwrap();
    let data_dir = support::data_dir(&root);
    let server = Server::with_data_dir(&data_dir);
    let root_token = server.init_and_unseal();
    let api = server.api(&root_token);
    let log = root.path().join("audit.log");
    api.ok(
        "sys/audit/file",
        json!({"type": "file", "options": {"file_path": log}}),
    );
    let users = set_up(&api, &root.path().join("site"));

    // Vault's wrapped envelope: no data, no lease, only wrap_info.
    let (status, wrapped) = call(
        &server,
        Some(&root_token),
        "GET",
        "web/creds/reader",
        Some("5m"),
        None,
    );
    assert_eq!(status, 200, "{wrapped}");
    for (key, empty) in [
        ("lease_id", json!("")),
        ("renewable", json!(false)),
        ("lease_duration", json!(0)),
        ("data", Value::Null),
        ("warnings", Value::Null),
        ("auth", Value::Null),
    ] {
        assert_eq!(wrapped[key], empty, "{key} in {wrapped}");
    }
    assert!(wrapped["request_id"].is_string(), "{wrapped}");
    let info = &wrapped["wrap_info"];
    let token = wrap_token(&wrapped);
    assert!(token.starts_with("hvs."), "{info}");
    let accessor = info["accessor"].as_str().unwrap().to_owned();
    assert!(!accessor.is_empty());
    assert_eq!(info["ttl"], 300);
    assert_eq!(info["creation_path"], "web/creds/reader");
    let created = info["creation_time"].as_str().unwrap();
    assert!(humantime::parse_rfc3339(created).is_ok(), "{created}");
    assert!(info.get("wrapped_accessor").is_none(), "{info}");

    // The credential exists on the target already; its lease is held.
    let issued = users_in(&users);
    assert_eq!(issued.len(), 1, "{issued:?}");
    let (user, hash) = issued[0].clone();
    let (status, leases) = api.list("sys/leases/lookup/web/creds/reader");
    assert_eq!(status, 200, "{leases}");
    assert_eq!(leases["data"]["keys"].as_array().unwrap().len(), 1);
    assert_not_stored(&data_dir, &user);

    // The wrapping token: one use, its own policy only, orphan, not renewable.
    let (status, looked) = api.put("auth/token/lookup", json!({"token": token}));
    assert_eq!(status, 200, "{looked}");
    let entry = &looked["data"];
    assert_eq!(entry["policies"], json!(["response-wrapping"]));
    assert_eq!(entry["num_uses"], 1);
    assert_eq!(entry["orphan"], true);
    assert_eq!(entry["renewable"], false);
    assert_eq!(entry["path"], "web/creds/reader");
    assert!(entry["ttl"].as_u64().unwrap() <= 300, "{entry}");
    assert_eq!(entry["accessor"], accessor.as_str());
    // It can do nothing but unwrap: not read a credential, nor look itself up.
    let holder = Api::new(&server.base, &token);
    assert_eq!(holder.get("web/creds/reader").0, 403);
    assert_eq!(holder.get("auth/token/lookup-self").0, 403);
    assert_eq!(users_in(&users).len(), 1);
    // Nor can anyone make one.
    let (status, reply) = api.put(
        "auth/token/create",
        json!({"policies": ["response-wrapping"]}),
    );
    assert_eq!(status, 400, "{reply}");
    let (status, reply) = api.put(
        "sys/policies/acl/response-wrapping",
        json!({"policy": "path \"*\" { capabilities = [\"sudo\", \"read\"] }"}),
    );
    assert_eq!(status, 400, "{reply}");

    // Lookup answers anyone, body or header, and takes nothing.
    let (status, lookup) = call(
        &server,
        None,
        "PUT",
        "sys/wrapping/lookup",
        None,
        Some(json!({"token": token})),
    );
    assert_eq!(status, 200, "{lookup}");
    assert_eq!(lookup["data"]["creation_ttl"], 300);
    assert_eq!(lookup["data"]["creation_path"], "web/creds/reader");
    assert_eq!(lookup["data"]["creation_time"], created);
    let (status, by_header) = call(
        &server,
        Some(&token),
        "GET",
        "sys/wrapping/lookup",
        None,
        None,
    );
    assert_eq!(status, 200, "{by_header}");
    assert_eq!(by_header["data"], lookup["data"]);

    // Unwrap by a third party: exactly the original response.
    let (status, unwrapped) = api.put("sys/wrapping/unwrap", json!({"token": token}));
    assert_eq!(status, 200, "{unwrapped}");
    let lease_id = unwrapped["lease_id"].as_str().unwrap().to_owned();
    assert!(lease_id.starts_with("web/creds/reader/"), "{unwrapped}");
    assert_eq!(unwrapped["lease_duration"], 600);
    assert_eq!(unwrapped["renewable"], true);
    assert_eq!(unwrapped["wrap_info"], Value::Null);
    assert_eq!(unwrapped["data"]["username"], user.as_str());
    let password = unwrapped["data"]["password"].as_str().unwrap().to_owned();
    assert!(
        bcrypt::verify(&password, &hash).unwrap(),
        "not the password of {user}"
    );
    assert_eq!(
        leases["data"]["keys"][0],
        lease_id.rsplit('/').next().unwrap()
    );

    // Twice: Vault's 400, whoever asks and however.
    let (status, again) = api.put("sys/wrapping/unwrap", json!({"token": token}));
    assert_eq!((status, again["errors"][0].as_str()), (400, Some(INVALID)));
    let (status, again) = call(
        &server,
        Some(&token),
        "PUT",
        "sys/wrapping/unwrap",
        None,
        None,
    );
    assert_eq!((status, again["errors"][0].as_str()), (400, Some(INVALID)));
    let (status, again) = call(
        &server,
        None,
        "PUT",
        "sys/wrapping/lookup",
        None,
        Some(json!({"token": token})),
    );
    assert_eq!((status, again["errors"][0].as_str()), (400, Some(INVALID)));
    // A token that is not a wrapping token wraps nothing.
    let (status, again) = api.put("sys/wrapping/unwrap", json!({}));
    assert_eq!((status, again["errors"][0].as_str()), (400, Some(INVALID)));
    // The used token is revoked.
    let (status, _) = api.put("auth/token/lookup", json!({"token": token}));
    assert_ne!(status, 200);
    // The credential and its lease are untouched by the unwrap.
    assert_eq!(users_in(&users), vec![(user.clone(), hash)]);
    assert_eq!(
        api.put("sys/leases/lookup", json!({"lease_id": lease_id}))
            .0,
        200
    );

    // Nothing of the wrapped response is in the data directory in clear.
    for secret in [&password, &user, &token] {
        assert_not_stored(&data_dir, secret);
    }

    // The audit log shows the wrapping: wrap_ttl asked, wrap_info answered,
    // the token and accessor HMAC'd, the creation path in clear; never the
    // token or the credential in clear.
    let text = std::fs::read_to_string(&log).unwrap();
    for secret in [&token, &password, &user, &accessor] {
        assert!(
            !text.contains(secret.as_str()),
            "{secret} is in the audit log"
        );
    }
    let entries: Vec<Value> = text
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let wrapped_entry = entries
        .iter()
        .find(|e| e["type"] == "response" && e["request"]["path"] == "web/creds/reader")
        .expect("the wrapped issue is audited");
    assert_eq!(wrapped_entry["request"]["wrap_ttl"], 300);
    let audited = &wrapped_entry["response"]["wrap_info"];
    assert!(
        audited["token"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:"),
        "{audited}"
    );
    assert!(
        audited["accessor"]
            .as_str()
            .unwrap()
            .starts_with("hmac-sha256:"),
        "{audited}"
    );
    assert_eq!(audited["creation_path"], "web/creds/reader");
    assert_eq!(audited["creation_time"], created);
    assert_eq!(audited["ttl"], 300);
    assert_eq!(wrapped_entry["response"]["data"], Value::Null);
    // The token's HMAC is the one `sys/audit-hash` gives, so an operator can
    // tell whether a given token was used.
    let (_, hashed) = api.put("sys/audit-hash/file", json!({"input": token}));
    assert_eq!(audited["token"], hashed["data"]["hash"]);
    let unwrap_entry = entries
        .iter()
        .find(|e| e["type"] == "response" && e["request"]["path"] == "sys/wrapping/unwrap")
        .expect("the unwrap is audited");
    let (_, hashed) = api.put("sys/audit-hash/file", json!({"input": password}));
    assert_eq!(
        unwrap_entry["response"]["data"]["password"],
        hashed["data"]["hash"]
    );
}

#[test]
fn a_wrapped_lease_expires_on_time_unwrapped_or_not_and_expired_tokens_unwrap_nothing() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let root_token = server.init_and_unseal();
    let api = server.api(&root_token);
    let users = set_up(&api, &root.path().join("site"));

    // A 3 s credential wrapped for an hour: its user leaves the file at its
    // own expiry, though no one unwrapped it.
    let (status, wrapped) = call(
        &server,
        Some(&root_token),
        "GET",
        "web/creds/short",
        Some("1h"),
        None,
    );
    assert_eq!(status, 200, "{wrapped}");
    let token = wrap_token(&wrapped);
    let issued = users_in(&users);
    assert_eq!(issued.len(), 1);
    assert!(
        eventually(Duration::from_secs(30), || users_in(&users).is_empty()),
        "the wrapped credential outlived its lease: {:?}",
        users_in(&users)
    );
    // The wrapped response is still there, with the now dead credential.
    let (status, unwrapped) = api.put("sys/wrapping/unwrap", json!({"token": token}));
    assert_eq!(status, 200, "{unwrapped}");
    assert_eq!(unwrapped["data"]["username"], issued[0].0.as_str());
    assert_eq!(unwrapped["lease_duration"], 3);

    // A wrapping token past its TTL unwraps nothing, and the sweeper revokes
    // it (discarding what it wrapped).
    let (status, wrapped) = call(
        &server,
        Some(&root_token),
        "PUT",
        "sys/wrapping/wrap",
        Some("1s"),
        Some(json!({"short": "lived"})),
    );
    assert_eq!(status, 200, "{wrapped}");
    assert_eq!(wrapped["wrap_info"]["ttl"], 1);
    let token = wrap_token(&wrapped);
    let accessor = wrapped["wrap_info"]["accessor"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        eventually(Duration::from_secs(30), || {
            api.put("sys/wrapping/lookup", json!({"token": token})).0 == 400
        }),
        "the wrapping token outlived its TTL"
    );
    let (status, reply) = api.put("sys/wrapping/unwrap", json!({"token": token}));
    assert_eq!((status, reply["errors"][0].as_str()), (400, Some(INVALID)));
    let (status, reply) = call(
        &server,
        Some(&token),
        "PUT",
        "sys/wrapping/unwrap",
        None,
        None,
    );
    assert_eq!((status, reply["errors"][0].as_str()), (400, Some(INVALID)));
    assert!(
        eventually(Duration::from_secs(30), || {
            api.put("auth/token/lookup-accessor", json!({"accessor": accessor}))
                .0
                != 200
        }),
        "the expired wrapping token was not revoked"
    );
}

#[test]
fn wrap_rewrap_and_lookup_round_trip_arbitrary_data() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let root_token = server.init_and_unseal();
    let api = server.api(&root_token);

    let data = json!({"plain": "text", "n": 42, "nested": {"list": [1, "two", null], "t": true}});
    // Only with a wrap TTL.
    let (status, reply) = api.put("sys/wrapping/wrap", data.clone());
    assert_eq!(status, 400, "{reply}");
    assert_eq!(
        reply["errors"][0],
        "endpoint requires response wrapping to be used"
    );
    let (status, first) = call(
        &server,
        Some(&root_token),
        "POST",
        "sys/wrapping/wrap",
        Some("300"),
        Some(data.clone()),
    );
    assert_eq!(status, 200, "{first}");
    assert_eq!(first["wrap_info"]["creation_path"], "sys/wrapping/wrap");
    assert_eq!(first["data"], Value::Null);
    let first_token = wrap_token(&first);

    // Rewrap: a new token, same TTL and creation path; the old one is used up.
    let (status, second) = api.put("sys/wrapping/rewrap", json!({"token": first_token}));
    assert_eq!(status, 200, "{second}");
    let second_token = wrap_token(&second);
    assert_ne!(second_token, first_token);
    assert_eq!(second["wrap_info"]["ttl"], 300);
    assert_eq!(second["wrap_info"]["creation_path"], "sys/wrapping/wrap");
    assert_eq!(second["data"], Value::Null);
    let (status, reply) = api.put("sys/wrapping/unwrap", json!({"token": first_token}));
    assert_eq!((status, reply["errors"][0].as_str()), (400, Some(INVALID)));
    let (_, lookup) = api.put("sys/wrapping/lookup", json!({"token": second_token}));
    assert_eq!(lookup["data"]["creation_ttl"], 300);
    assert_eq!(lookup["data"]["creation_path"], "sys/wrapping/wrap");

    // Rewrapped with a shorter TTL asked: the shorter one.
    let (status, third) = call(
        &server,
        Some(&root_token),
        "PUT",
        "sys/wrapping/rewrap",
        Some("30s"),
        Some(json!({"token": second_token})),
    );
    assert_eq!(status, 200, "{third}");
    assert_eq!(third["wrap_info"]["ttl"], 30);
    let third_token = wrap_token(&third);

    // Unwrapped by its own holder (the token as the request's token, and a
    // `null` body, as Vault's Go client and `bao unwrap` send): the data as
    // it was sent.
    let (status, unwrapped) = call(
        &server,
        Some(&third_token),
        "PUT",
        "sys/wrapping/unwrap",
        None,
        Some(Value::Null),
    );
    assert_eq!(status, 200, "{unwrapped}");
    assert_eq!(unwrapped["data"], data);

    // A wrapped token creation names the token it carries.
    let (status, wrapped) = call(
        &server,
        Some(&root_token),
        "POST",
        "auth/token/create",
        Some("2m"),
        Some(json!({"policies": ["default"], "ttl": "1h"})),
    );
    assert_eq!(status, 200, "{wrapped}");
    assert_eq!(wrapped["auth"], Value::Null);
    let carried = wrapped["wrap_info"]["wrapped_accessor"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, unwrapped) = api.put(
        "sys/wrapping/unwrap",
        json!({"token": wrap_token(&wrapped)}),
    );
    assert_eq!(unwrapped["auth"]["accessor"], carried.as_str());
    let child = unwrapped["auth"]["client_token"].as_str().unwrap();
    assert_eq!(
        Api::new(&server.base, child)
            .get("auth/token/lookup-self")
            .0,
        200
    );
}

#[test]
fn a_bad_wrap_ttl_is_a_400_and_issues_nothing() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let root_token = server.init_and_unseal();
    let api = server.api(&root_token);
    let users = set_up(&api, &root.path().join("site"));
    for bad in [
        "soon",
        "0",
        "0s",
        "500ms",
        "-5s",
        "-1",
        "769h",
        "99999999999",
        "5 parsecs",
    ] {
        let (status, reply) = call(
            &server,
            Some(&root_token),
            "GET",
            "web/creds/reader",
            Some(bad),
            None,
        );
        assert_eq!(status, 400, "{bad}: {reply}");
        let message = reply["errors"][0].as_str().unwrap();
        assert!(
            message.starts_with("error parsing X-Vault-Wrap-TTL header"),
            "{bad}: {message}"
        );
        let (status, reply) = call(
            &server,
            Some(&root_token),
            "POST",
            "auth/token/create",
            Some(bad),
            Some(json!({})),
        );
        assert_eq!(status, 400, "{bad}: {reply}");
    }
    assert_eq!(users_in(&users), vec![], "a credential was issued");
    assert_eq!(api.list("sys/leases/lookup/web/creds/reader").0, 404);
    // The bounds themselves are fine.
    for good in ["1", "768h"] {
        let (status, reply) = call(
            &server,
            Some(&root_token),
            "GET",
            "web/creds/reader",
            Some(good),
            None,
        );
        assert_eq!(status, 200, "{good}: {reply}");
    }
    assert_eq!(users_in(&users).len(), 2);
}

#[test]
fn of_32_clients_unwrapping_one_token_at_once_exactly_one_gets_the_data() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let root_token = server.init_and_unseal();
    let (status, wrapped) = call(
        &server,
        Some(&root_token),
        "PUT",
        "sys/wrapping/wrap",
        Some("5m"),
        Some(json!({"prize": "only-one"})),
    );
    assert_eq!(status, 200, "{wrapped}");
    let token = wrap_token(&wrapped);
    let start = std::sync::Arc::new(std::sync::Barrier::new(32));
    let outcomes: Vec<(u16, Value)> = std::thread::scope(|scope| {
        let racers: Vec<_> = (0..32)
            .map(|i| {
                let (start, token, base) = (start.clone(), token.clone(), server.base.clone());
                let root_token = root_token.clone();
                scope.spawn(move || {
                    // Half as a third party, half as the token's holder.
                    let (own, body) = if i % 2 == 0 {
                        (root_token, json!({"token": token}))
                    } else {
                        (token, json!({}))
                    };
                    let client = Api::new(&base, &own);
                    start.wait();
                    client.put("sys/wrapping/unwrap", body)
                })
            })
            .collect();
        racers.into_iter().map(|r| r.join().unwrap()).collect()
    });
    let winners: Vec<&Value> = outcomes
        .iter()
        .filter(|(status, _)| *status == 200)
        .map(|(_, body)| body)
        .collect();
    assert_eq!(winners.len(), 1, "{outcomes:?}");
    assert_eq!(winners[0]["data"]["prize"], "only-one");
    for (status, body) in &outcomes {
        if *status != 200 {
            assert_eq!((*status, body["errors"][0].as_str()), (400, Some(INVALID)));
        }
    }
}

#[test]
fn hvac_wraps_and_unwraps() {
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/vault_client/wrapping.py"
    );
    // Debian's hvac and the current one (installed by scripts/setup), each on
    // a server of its own.
    let current = concat!(env!("CARGO_MANIFEST_DIR"), "/../target/clients/bin/python");
    for python in ["/usr/bin/python3", current] {
        let root = tempfile::tempdir().unwrap();
        let server = Server::with_data_dir(&support::data_dir(&root));
        let token = server.init_and_unseal();
        let dir = root.path().join("site");
        std::fs::create_dir_all(&dir).unwrap();
        let output = std::process::Command::new(python)
            .arg(script)
            .env("VAULT_ADDR", &server.base)
            .env("VAULT_TOKEN", &token)
            .env("TARGET_DIR", &dir)
            .output()
            .unwrap_or_else(|err| panic!("running {python} (scripts/setup installs it): {err}"));
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "hvac script with {python} failed:\n{stdout}\n{stderr}\nserver log:\n{}",
            server.output()
        );
        assert!(stdout.contains("hvac: wrapping worked"), "{stdout}");
    }
}
