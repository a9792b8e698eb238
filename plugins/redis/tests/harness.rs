//! The redis plugin in the real sandbox, without a broker, against a real Redis.

use leasehold_plugin_artifacts::REDIS;
use leasehold_sdk::testing::{Grants, TestPlugin, lease};
use leasehold_test_support::RedisServer;
use serde_json::json;

#[test]
fn create_and_revoke_with_and_without_a_handle() {
    let dir = tempfile::tempdir().unwrap();
    let redis = RedisServer::start(dir.path(), "pw");
    let plugin = TestPlugin::load(REDIS).with_grants(
        Grants::none()
            .allow_tcp(&format!("127.0.0.1:{}", redis.port))
            .unwrap(),
    );
    let config =
        json!({"host": "127.0.0.1", "port": redis.port, "username": "admin", "password": "pw"});
    let role = json!({"acl_rules": ["~k:*", "+get"]});
    plugin.validate(&config, Some(&role)).unwrap();

    let first = lease("r");
    let issued = plugin.create(&config, &role, &first).unwrap();
    let user = issued.credential.get("username").unwrap().to_owned();
    let password = issued.credential.get("password").unwrap().to_owned();
    assert!(redis.client().auth(&user, &password));
    plugin.revoke(&config, &role, Some(&user), &first).unwrap();
    assert!(!redis.client().auth(&user, &password));
    // Revoking again is fine: the user is already gone.
    plugin.revoke(&config, &role, Some(&user), &first).unwrap();

    // Crash recovery: no handle, the name comes from the lease.
    let second = lease("r");
    let issued = plugin.create(&config, &role, &second).unwrap();
    let (user, password) = (
        issued.credential.get("username").unwrap().to_owned(),
        issued.credential.get("password").unwrap().to_owned(),
    );
    plugin.revoke(&config, &role, None, &second).unwrap();
    assert!(!redis.client().auth(&user, &password));

    // A category that holds admin commands (`@slow` has ACL and CONFIG) gives
    // none of them: the plugin takes them back.
    let slow = json!({"acl_rules": ["~k:*", "+@slow", "+@read"]});
    let third = lease("r");
    let issued = plugin.create(&config, &slow, &third).unwrap();
    let mut client = redis.client();
    assert!(client.auth(
        issued.credential.get("username").unwrap(),
        issued.credential.get("password").unwrap()
    ));
    assert!(
        client
            .send("ACL SETUSER admin >taken")
            .unwrap()
            .starts_with("-NOPERM")
    );
    assert!(
        client
            .send("CONFIG GET maxmemory")
            .unwrap()
            .starts_with("-NOPERM")
    );
    plugin.revoke(&config, &slow, None, &third).unwrap();

    // A wrong admin password is "denied"; a port not granted is refused.
    let wrong =
        json!({"host": "127.0.0.1", "port": redis.port, "username": "admin", "password": "no"});
    let err = plugin.validate(&wrong, None).unwrap_err();
    assert_eq!(err.kind(), "denied", "{err}");
    let closed = TestPlugin::load(REDIS).with_grants(Grants::none());
    assert!(closed.validate(&config, None).is_err());
}
