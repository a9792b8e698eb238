//! A whole session with debug logging and an audit device, then a search of the
//! server's output and the audit file for every secret the session used: none may
//! appear in clear.

mod support;

use reqwest::blocking::Client;
use serde_json::{Value, json};
use support::Server;

#[test]
fn no_secret_reaches_the_log_or_the_audit_file() {
    let root = tempfile::tempdir().unwrap();
    // The plugin's directory lies apart from the config's, which is never granted.
    let granted = tempfile::tempdir().unwrap();
    let config = root.path().join("leasehold.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n[grants]\ndirectories = [{:?}]\n",
            root.path().join("data").display().to_string(),
            granted.path().display().to_string()
        ),
    )
    .unwrap();
    let server = Server::start_logging(&["server", "--config", config.to_str().unwrap()], "debug");
    let client = Client::new();
    let send = |method: &str, path: &str, token: Option<&str>, body: Value| -> Value {
        let mut request = client
            .request(
                reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
                server.url(path),
            )
            .json(&body);
        if let Some(token) = token {
            request = request.header("X-Vault-Token", token);
        }
        request.send().unwrap().json().unwrap_or(Value::Null)
    };

    let init = send(
        "PUT",
        "sys/init",
        None,
        json!({ "secret_shares": 3, "secret_threshold": 2 }),
    );
    let mut secrets: Vec<String> = Vec::new();
    for list in ["keys", "keys_base64"] {
        secrets.extend(
            init[list]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap().to_owned()),
        );
    }
    let root_token = init["root_token"].as_str().unwrap().to_owned();
    secrets.push(root_token.clone());
    // A wrong share and a bad token are secrets too.
    send("PUT", "sys/unseal", None, json!({ "key": init["keys"][0] }));
    send(
        "PUT",
        "sys/unseal",
        None,
        json!({ "key": init["keys_base64"][1] }),
    );
    let log = root.path().join("audit.log");
    send(
        "PUT",
        "sys/audit/file",
        Some(&root_token),
        json!({ "type": "file", "options": { "file_path": log.to_str().unwrap() } }),
    );

    let marker = "policy-body-secret-41d7";
    send(
        "PUT",
        "sys/policies/acl/p",
        Some(&root_token),
        json!({ "policy": format!("path \"{marker}/*\" {{ capabilities = [\"read\"] }}") }),
    );
    secrets.push(marker.to_owned());
    let created = send(
        "POST",
        "auth/token/create",
        Some(&root_token),
        json!({ "policies": ["p"] }),
    );
    let child = created["auth"]["client_token"].as_str().unwrap().to_owned();
    secrets.push(child.clone());
    send("GET", "auth/token/lookup-self", Some(&child), Value::Null);
    send(
        "POST",
        "auth/token/lookup",
        Some(&root_token),
        json!({ "token": child }),
    );
    send("POST", "auth/token/renew-self", Some(&child), json!({}));
    let wrong = "hvs.thisIsAWrongTokenNotIssued";
    send("GET", "auth/token/lookup-self", Some(wrong), Value::Null);
    secrets.push(wrong.to_owned());
    send("POST", "auth/token/revoke-self", Some(&child), json!({}));

    // A credential and a connection's root password.
    let target = granted.path().join("target");
    std::fs::create_dir(&target).unwrap();
    let gated = leasehold_plugin_artifacts::read(leasehold_plugin_artifacts::GATED);
    send(
        "PUT",
        "sys/plugins/catalog/secret/gated",
        Some(&root_token),
        json!({
            "sha256": hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&gated)),
            "wasm": base64::Engine::encode(&base64::engine::general_purpose::STANDARD, &gated),
        }),
    );
    send(
        "POST",
        "sys/mounts/files",
        Some(&root_token),
        json!({"type": "gated"}),
    );
    let root_password = "connection-root-password-5be1";
    secrets.push(root_password.to_owned());
    send(
        "PUT",
        "sys/grants/files",
        Some(&root_token),
        json!({"directory": target}),
    );
    send(
        "POST",
        "files/config/c",
        Some(&root_token),
        json!({"password": root_password, "allowed_roles": "*"}),
    );
    let read_back = send("GET", "files/config/c", Some(&root_token), Value::Null);
    assert!(
        read_back["data"]["connection_details"].is_object(),
        "{read_back}"
    );
    assert!(
        !read_back.to_string().contains(root_password),
        "{read_back}"
    );
    send(
        "POST",
        "files/roles/r",
        Some(&root_token),
        json!({"db_name": "c"}),
    );
    let issued = send("GET", "files/creds/r", Some(&root_token), Value::Null);
    let password = issued["data"]["password"].as_str().unwrap().to_owned();
    secrets.push(password);
    send(
        "PUT",
        "sys/leases/renew",
        Some(&root_token),
        json!({"lease_id": issued["lease_id"]}),
    );
    send(
        "PUT",
        "sys/leases/revoke",
        Some(&root_token),
        json!({"lease_id": issued["lease_id"]}),
    );
    send("POST", "files/rotate-root/c", Some(&root_token), json!({}));

    send("PUT", "sys/rotate", Some(&root_token), json!({}));
    send("PUT", "sys/seal", Some(&root_token), json!({}));

    let output = server.stop();
    let audit = std::fs::read_to_string(&log).unwrap();
    assert!(
        output.lines().count() > 3,
        "the server logged at debug level:\n{output}"
    );
    assert!(audit.lines().count() >= 10, "{audit}");
    for secret in &secrets {
        assert!(
            !output.contains(secret.as_str()),
            "`{secret}` is in the server's output"
        );
        assert!(
            !audit.contains(secret.as_str()),
            "`{secret}` is in the audit file"
        );
    }
}
