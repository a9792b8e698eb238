//! The webhook plugin in the real sandbox, without a broker, against the
//! in-house service of the test support crate.

use leasehold_plugin_artifacts::WEBHOOK;
use leasehold_sdk::testing::{Grants, TestPlugin, lease};
use leasehold_test_support::{InHouse, Users};
use secrecy::ExposeSecret;
use serde_json::json;

const KEY: &str = "a-signing-key-of-16+";

fn plugin(service: &InHouse) -> TestPlugin {
    TestPlugin::load(WEBHOOK).with_grants(Grants::none().allow_http(&service.url()).unwrap())
}

#[test]
fn create_revoke_and_revoke_without_a_handle() {
    let users = Users::new("p");
    let service = InHouse::start(&users, KEY, None, 0);
    let plugin = plugin(&service);
    let config = json!({"url": service.url(), "payload": "p", "signing_key": KEY});
    let role = json!({"input": {"x": 1}});

    let first = lease("dev");
    let issued = plugin.create(&config, &role, &first).unwrap();
    assert!(issued.credential.get("username").is_some());
    assert_eq!(users.all()[0].input, json!({"x": 1}));
    plugin
        .revoke(&config, &role, Some(issued.handle.expose_secret()), &first)
        .unwrap();
    assert!(users.all().is_empty());

    // Without a handle the lease id goes, which create passed along.
    let second = lease("dev");
    plugin.create(&config, &role, &second).unwrap();
    plugin.revoke(&config, &role, None, &second).unwrap();
    assert!(users.all().is_empty());
}

#[test]
fn bad_configs_and_wrong_keys_are_refused() {
    let users = Users::new("p");
    let service = InHouse::start(&users, KEY, None, 0);
    let plugin = plugin(&service);
    let role = json!({});
    for bad in [
        json!({"url": "ftp://x", "signing_key": KEY}),
        json!({"url": service.url(), "signing_key": "short"}),
        json!({"url": service.url()}),
    ] {
        assert!(plugin.validate(&bad, None).is_err(), "{bad}");
    }
    // The service refuses a call signed with another key: the plugin says denied.
    let wrong =
        json!({"url": service.url(), "payload": "p", "signing_key": "another-key-16-chars"});
    let err = plugin.create(&wrong, &role, &lease("dev")).unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    assert!(users.all().is_empty());
}
