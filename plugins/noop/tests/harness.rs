//! The noop plugin in the real sandbox.

use leasehold_plugin_artifacts::NOOP;
use leasehold_sdk::testing::{TestPlugin, lease};
use serde_json::json;

#[test]
fn issues_a_fresh_random_credential_every_time_and_revokes_nothing() {
    let plugin = TestPlugin::load(NOOP);
    let lease = lease("bench");
    let a = plugin.create(&json!({}), &json!({}), &lease).unwrap();
    let b = plugin.create(&json!({}), &json!({}), &lease).unwrap();
    // Same lease, same username (derived from it); fresh password each time.
    assert_eq!(a.credential.get("username"), b.credential.get("username"));
    assert_ne!(a.credential.get("password"), b.credential.get("password"));
    plugin
        .renew(&json!({}), &json!({}), "handle", &lease)
        .unwrap();
    plugin.revoke(&json!({}), &json!({}), None, &lease).unwrap();
    assert!(plugin.info().can_renew);
}

#[test]
fn rotate_root_is_refused_as_unsupported() {
    let plugin = TestPlugin::load(NOOP);
    let err = plugin.rotate_root(&json!({})).unwrap_err();
    assert!(err.to_string().contains("cannot rotate"), "{err}");
}
