//! One canonical authority, tried through the running binary as a hostile
//! client would: every other spelling of a denied path is refused for every
//! method and changes nothing; every declared route refuses a token without
//! the capability it needs; a list-only token never receives anything but key
//! lists; `create` and `update` are told apart by whether the object exists.
//!
//! Requests are sent over a raw socket, because HTTP client libraries tidy
//! paths (dot segments, doubled slashes) before sending them, and the point is
//! to send exactly what an attacker would.

mod support;

use leasehold_host::api::{Operation, declared_mount_routes, declared_routes};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;
use support::{Api, Server};

/// `method raw_path` with `body`, exactly as given; the status and JSON body.
fn raw(base: &str, token: &str, method: &str, path: &str, body: Option<&str>) -> (u16, Value) {
    let address = base.trim_start_matches("http://");
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let body = body.unwrap_or("");
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nX-Vault-Token: {token}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut reply = Vec::new();
    stream.read_to_end(&mut reply).unwrap();
    let reply = String::from_utf8_lossy(&reply).into_owned();
    let (head, rest) = reply.split_once("\r\n\r\n").unwrap_or((&reply, ""));
    let status: u16 = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let text = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(rest)
    } else {
        rest.to_owned()
    };
    let value = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, value)
}

fn dechunk(mut text: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = text.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        text = &rest[size + 2..];
    }
    out
}

/// Other spellings of `path`: each character percent-encoded (both cases of
/// hex), each `/` doubled, encoded or given a dot segment, segments with other
/// case, and trailing slashes.
fn variants(path: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    let same_case = |p: String| (p, false);
    for (i, c) in path.char_indices() {
        let (before, after) = (&path[..i], &path[i + c.len_utf8()..]);
        out.push(same_case(format!("{before}%{:02X}{after}", c as u32)));
        out.push(same_case(format!("{before}%{:02x}{after}", c as u32)));
        if c == '/' {
            out.push(same_case(format!("{before}//{after}")));
            out.push(same_case(format!("{before}/./{after}")));
            out.push(same_case(format!("{before}/x/../{after}")));
            out.push(same_case(format!("{before}/%2e/{after}")));
            out.push(same_case(format!("{before}/%2E%2E/{before}/{after}")));
            out.push(same_case(format!("{before}%2f{after}")));
        }
    }
    for (i, segment) in path.split('/').enumerate() {
        let changed: Vec<String> = path
            .split('/')
            .enumerate()
            .map(|(j, s)| {
                if i == j {
                    s.to_uppercase()
                } else {
                    s.to_owned()
                }
            })
            .collect();
        if segment.to_uppercase() != segment {
            out.push((changed.join("/"), true));
        }
    }
    out.push((path.to_uppercase(), true));
    out.push(same_case(format!("{path}/")));
    out.push(same_case(format!("{path}//")));
    out.push(same_case(format!("/{path}")));
    out.push(same_case(format!("{path}/.")));
    out.push(same_case(format!("{path}%00")));
    out.push(same_case(format!("{path}%0a")));
    out.push(same_case(format!("{path}%252f")));
    out
}

/// A denied object and how to see that it is unchanged.
struct Guarded {
    path: &'static str,
    /// What root reads to tell the object's state.
    check: &'static str,
    /// A string in the object that a refused read must never return.
    marker: String,
    /// Whether the path is compared without case (then a case change is the
    /// same object, and must be refused too).
    case_insensitive: bool,
}

#[test]
fn other_spellings_of_a_denied_path_are_refused_and_change_nothing() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    api.ok(
        "sys/mounts/prod",
        json!({"type": "noop", "description": "prod-marker"}),
    );
    api.ok(
        "sys/mounts/team",
        json!({"type": "noop", "description": "team"}),
    );
    api.ok(
        "team/config/main",
        json!({"allowed_roles": ["main-marker"]}),
    );
    api.ok("team/roles/keep", json!({"db_name": "main"}));
    api.ok("team/config/other", json!({"allowed_roles": "*"}));
    api.ok("team/roles/keep2", json!({"db_name": "other"}));
    api.ok(
        "sys/policies/acl/admin",
        json!({"policy": "path \"admin-marker/*\" { capabilities = [\"read\"] }"}),
    );
    let (status, lease) = api.get("team/creds/keep2");
    assert_eq!(status, 200, "{lease}");
    let all = r#"["create", "read", "update", "delete", "list", "sudo"]"#;
    api.ok(
        "sys/policies/acl/wide",
        json!({"policy": format!(r#"
            path "sys/mounts/*" {{ capabilities = {all} }}
            path "sys/mounts/prod" {{ capabilities = ["deny"] }}
            path "sys/policies/acl/*" {{ capabilities = {all} }}
            path "sys/policies/acl/admin" {{ capabilities = ["deny"] }}
            path "team/*" {{ capabilities = {all} }}
            path "team/config/main" {{ capabilities = ["deny"] }}
            path "sys/leases/revoke-prefix/*" {{ capabilities = {all} }}
            path "sys/leases/revoke-prefix/team/creds/keep2" {{ capabilities = ["deny"] }}
        "#)}),
    );
    let (_, created) = api.put("auth/token/create", json!({"policies": ["wide"]}));
    let wide = created["auth"]["client_token"].as_str().unwrap().to_owned();
    // The rules do what they say on the plain spelling.
    let narrow = Api::new(&server.base, &wide);
    assert_eq!(narrow.get("sys/mounts/prod").0, 403);
    assert_eq!(narrow.get("sys/mounts/team").0, 200);

    let guarded = [
        Guarded {
            path: "sys/mounts/prod",
            check: "sys/mounts/prod",
            marker: "prod-marker".into(),
            case_insensitive: false,
        },
        Guarded {
            path: "sys/policies/acl/admin",
            check: "sys/policies/acl/admin",
            marker: "admin-marker".into(),
            case_insensitive: true,
        },
        Guarded {
            path: "team/config/main",
            check: "team/config/main",
            marker: "main-marker".into(),
            case_insensitive: false,
        },
        Guarded {
            path: "sys/leases/revoke-prefix/team/creds/keep2",
            check: "sys/leases/lookup/team/creds/keep2",
            marker: lease["lease_id"].as_str().unwrap().to_owned(),
            case_insensitive: false,
        },
    ];
    let lease_id = lease["lease_id"].as_str().unwrap().to_owned();
    let lookup = || api.put("sys/leases/lookup", json!({"lease_id": lease_id}));
    let state_of = |g: &Guarded| -> Value {
        if g.path.starts_with("sys/leases") {
            lookup().1["data"]["id"].clone()
        } else {
            api.get(g.check).1["data"].clone()
        }
    };
    let mut tried = 0;
    for g in &guarded {
        let before = state_of(g);
        assert!(!before.is_null(), "{} has nothing to guard", g.path);
        for (variant, case_changed) in variants(g.path) {
            for (method, body) in [
                ("GET", None),
                ("LIST", None),
                (
                    "PUT",
                    Some(r#"{"type": "noop", "policy": "path \"x\" {}", "allowed_roles": "*"}"#),
                ),
                ("POST", Some("{}")),
                ("DELETE", None),
            ] {
                // A case change of a case-sensitive path names another object,
                // which this token may create or delete; that is not the
                // guarded one, whose state is checked below.
                let other_object = case_changed && !g.case_insensitive;
                if other_object && matches!(method, "PUT" | "POST") {
                    continue;
                }
                let uri = format!("/v1/{variant}");
                let (status, reply) = raw(&server.base, &wide, method, &uri, body);
                tried += 1;
                assert!(
                    !reply.to_string().contains(&g.marker),
                    "{method} {uri} answered {status} with the guarded object: {reply}"
                );
                if !other_object {
                    assert!(
                        [400, 403, 404, 405].contains(&status),
                        "{method} {uri} answered {status}: {reply}"
                    );
                }
            }
            assert_eq!(state_of(g), before, "{} changed after {variant}", g.path);
        }
    }
    assert!(tried > 500, "only {tried} requests were tried");
}

/// A sample value for each of a route's named segments.
fn filled(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|segment| match segment {
            "{kind}" => "secret",
            "{*path}" | "{*prefix}" | "{*lease_id}" => "a/b",
            s if s.starts_with('{') => "some-name",
            s => s,
        })
        .collect::<Vec<_>>()
        .join("/")
}

fn method_of(operation: Operation) -> &'static str {
    match operation {
        Operation::Read => "GET",
        Operation::List => "LIST",
        Operation::Write => "PUT",
        Operation::Delete => "DELETE",
    }
}

/// Every route and operation in the table, with a sample path (mount routes
/// under the mount `m`).
fn every_route() -> Vec<(String, Operation, bool)> {
    let mut all = Vec::new();
    for route in declared_routes() {
        for operation in &route.operations {
            all.push((filled(route.pattern), *operation, route.unauthenticated));
        }
    }
    for route in declared_mount_routes() {
        for operation in &route.operations {
            all.push((format!("m/{}", filled(route.pattern)), *operation, false));
        }
    }
    all
}

#[test]
fn every_route_refuses_a_token_without_its_capability_and_lists_only_keys() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    api.ok("sys/mounts/m", json!({"type": "noop"}));
    api.ok("m/config/some-name", json!({"allowed_roles": "*"}));
    api.ok("m/roles/some-name", json!({"db_name": "some-name"}));
    api.ok(
        "sys/policies/acl/some-name",
        json!({"policy": "path \"x\" { capabilities = [\"read\"] }"}),
    );
    let token_with = |name: &str, capabilities: &[&str]| -> String {
        let policy = format!(
            r#"path "*" {{ capabilities = {} }}"#,
            serde_json::to_string(capabilities).unwrap()
        );
        api.ok(
            &format!("sys/policies/acl/{name}"),
            json!({ "policy": policy }),
        );
        let (_, created) = api.put(
            "auth/token/create",
            json!({"policies": [name], "no_default_policy": true}),
        );
        created["auth"]["client_token"].as_str().unwrap().to_owned()
    };
    let all = ["create", "read", "update", "delete", "list", "sudo"];
    let routes = every_route();
    assert!(routes.len() > 60, "{} routes", routes.len());
    for (path, operation, unauthenticated) in &routes {
        if *unauthenticated {
            continue;
        }
        let needed: &[&str] = match operation {
            Operation::Read => &["read"],
            Operation::List => &["list"],
            Operation::Write => &["create", "update"],
            Operation::Delete => &["delete"],
        };
        let without: Vec<&str> = all
            .iter()
            .copied()
            .filter(|c| !needed.contains(c))
            .collect();
        let name = format!("without-{}", needed.join("-"));
        let limited = token_with(&name, &without);
        let method = method_of(*operation);
        let (status, reply) = raw(
            &server.base,
            &limited,
            method,
            &format!("/v1/{path}"),
            Some("{}"),
        );
        assert_eq!(status, 403, "{method} {path} without {needed:?}: {reply}");
    }

    // A token that may only list: whatever any route answers it, a success
    // carries key lists and nothing else.
    let lister = token_with("lister", &["list", "sudo"]);
    let mut listed = 0;
    for (path, _, unauthenticated) in &routes {
        if *unauthenticated {
            continue;
        }
        for method in ["GET", "LIST", "PUT", "DELETE"] {
            let uri = format!("/v1/{path}?list=true");
            let (status, reply) = raw(&server.base, &lister, method, &uri, Some("{}"));
            if (200..300).contains(&status) {
                let data = reply["data"].as_object().cloned().unwrap_or_default();
                assert!(
                    data.keys().all(|k| k == "keys"),
                    "{method} {uri} gave a list-only token {reply}"
                );
                listed += 1;
            } else {
                assert!(
                    [400, 403, 404, 405].contains(&status),
                    "{method} {uri}: {status} {reply}"
                );
            }
        }
    }
    assert!(listed >= 4, "only {listed} lists were served");
}

#[test]
fn create_and_update_are_told_apart_by_whether_the_object_exists() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    api.ok(
        "sys/policies/acl/creator",
        json!({"policy": r#"path "sys/policies/acl/*" { capabilities = ["create", "read"] }"#}),
    );
    api.ok(
        "sys/policies/acl/updater",
        json!({"policy": r#"path "sys/policies/acl/*" { capabilities = ["update", "read"] }"#}),
    );
    let token_for = |policy: &str| {
        let (_, created) = api.put("auth/token/create", json!({"policies": [policy]}));
        Api::new(
            &server.base,
            created["auth"]["client_token"].as_str().unwrap(),
        )
    };
    let (creator, updater) = (token_for("creator"), token_for("updater"));
    let text = json!({"policy": r#"path "a" { capabilities = ["read"] }"#});
    // Only `create` makes a new policy; only `update` changes one.
    assert_eq!(updater.put("sys/policies/acl/fresh", text.clone()).0, 403);
    assert_eq!(api.get("sys/policies/acl/fresh").0, 404);
    assert_eq!(creator.put("sys/policies/acl/fresh", text.clone()).0, 204);
    let changed = json!({"policy": r#"path "b" { capabilities = ["read"] }"#});
    assert_eq!(
        creator.put("sys/policies/acl/fresh", changed.clone()).0,
        403
    );
    assert_eq!(updater.put("sys/policies/acl/fresh", changed).0, 204);
    assert!(
        api.get("sys/policies/acl/fresh").1["data"]["policy"]
            .as_str()
            .unwrap()
            .contains("\"b\"")
    );
}

#[test]
fn a_body_with_bytes_after_its_json_is_refused_and_applies_nothing() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let body = r#"{"policy": "path \"a\" { capabilities = [\"read\"] }"} {"policy": "x"}"#;
    let (status, reply) = raw(
        &server.base,
        &token,
        "PUT",
        "/v1/sys/policies/acl/trailing",
        Some(body),
    );
    assert_eq!(status, 400, "{reply}");
    assert!(
        reply.to_string().contains("bytes after its JSON value"),
        "{reply}"
    );
    assert_eq!(server.api(&token).get("sys/policies/acl/trailing").0, 404);
}

#[test]
fn what_a_caller_learns_and_may_do_is_decided_after_its_token() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let token = server.init_and_unseal();
    let api = server.api(&token);
    api.ok("sys/mounts/db", json!({"type": "noop"}));
    api.ok("db/config/c", json!({"allowed_roles": "*"}));
    api.ok("db/roles/r", json!({"db_name": "c"}));
    // Without a token, an existing mount and a missing one look the same.
    for path in ["/v1/db/creds/r", "/v1/nothing/creds/r"] {
        assert_eq!(raw(&server.base, "", "DELETE", path, None).0, 403, "{path}");
    }
    // With one, the operation a route does not serve is a 405; `HEAD` does
    // not run a read that issues a credential.
    assert_eq!(
        raw(&server.base, &token, "DELETE", "/v1/db/creds/r", None).0,
        405
    );
    assert_eq!(
        raw(&server.base, &token, "HEAD", "/v1/db/creds/r", None).0,
        405
    );
    assert_eq!(api.list("sys/leases/lookup/db/creds/r").0, 404);
    assert_eq!(raw(&server.base, "", "HEAD", "/v1/sys/health", None).0, 200);
    // A path too long to be one is refused before anything reads it.
    let long = format!("/v1/db/creds/{}", "r".repeat(9000));
    assert_eq!(raw(&server.base, &token, "GET", &long, None).0, 414);

    // Listing is of what is below a path, as Vault checks it.
    api.ok(
        "sys/policies/acl/ops",
        json!({"policy": r#"
            path "db/roles/*" { capabilities = ["list"] }
            path "sys/mounts/*" { capabilities = ["delete"] }
        "#}),
    );
    let (_, created) = api.put("auth/token/create", json!({"policies": ["ops"]}));
    let ops = Api::new(
        &server.base,
        created["auth"]["client_token"].as_str().unwrap(),
    );
    let (status, listed) = ops.list("db/roles");
    assert_eq!(status, 200, "{listed}");
    assert_eq!(listed["data"]["keys"], json!(["r"]));
    // Dropping a mount's leases unrevoked is `sudo`, like revoke-force.
    let (status, lease) = api.get("db/creds/r");
    assert_eq!(status, 200, "{lease}");
    assert_eq!(ops.delete("sys/mounts/db?force=true").0, 403);
    assert_eq!(api.get("sys/mounts/db").0, 200);
}
