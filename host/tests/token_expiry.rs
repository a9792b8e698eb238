//! Tokens that expire on their own take their children and their leases with
//! them, as in Vault; a renewed token is not revoked at its old expiry.

mod support;

use serde_json::json;
use std::time::Duration;
use support::{Server, eventually};

#[test]
fn an_expired_token_revokes_its_children_and_their_leases() {
    let root = tempfile::tempdir().unwrap();
    let server = Server::with_data_dir(&support::data_dir(&root));
    let api = server.api(&server.init_and_unseal());
    api.ok("sys/mounts/db", json!({"type": "noop"}));
    api.ok("db/config/none", json!({"allowed_roles": "*"}));
    api.ok("db/roles/r", json!({"db_name": "none"}));
    api.ok(
        "sys/policies/acl/maker",
        json!({"policy": "path \"auth/token/create\" { capabilities = [\"update\"] }\n\
                          path \"db/creds/*\" { capabilities = [\"read\"] }"}),
    );
    let token = |api: &support::Api, body| {
        let (status, reply) = api.put("auth/token/create", body);
        assert_eq!(status, 200, "{reply}");
        server.api(reply["auth"]["client_token"].as_str().unwrap())
    };
    let parent = token(&api, json!({"policies": ["maker"], "ttl": "5s"}));
    let child = token(&parent, json!({"policies": ["maker"], "ttl": "1h"}));
    let (status, issued) = child.get("db/creds/r");
    assert_eq!(status, 200, "{issued}");
    let lease_id = issued["lease_id"].as_str().unwrap().to_owned();
    let renewed = token(
        &api,
        json!({"policies": ["maker"], "ttl": "5s", "renewable": true}),
    );
    let (status, _) = renewed.put("auth/token/renew-self", json!({"increment": "1h"}));
    assert_eq!(status, 200);

    assert!(
        eventually(Duration::from_secs(20), || child
            .get("auth/token/lookup-self")
            .0
            == 403),
        "the child of an expired token still works"
    );
    assert_eq!(parent.get("auth/token/lookup-self").0, 403);
    assert!(
        eventually(Duration::from_secs(10), || api
            .put("sys/leases/lookup", json!({"lease_id": lease_id}))
            .0
            == 400),
        "the lease of the expired token's child is still there"
    );
    assert_eq!(
        renewed.get("auth/token/lookup-self").0,
        200,
        "a renewed token was revoked at its old expiry"
    );
}
