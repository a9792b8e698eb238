//! The htpasswd plugin against a real nginx: credentials it issues log in with
//! HTTP basic auth, and stop working once revoked, while other users keep working.
//!
//! nginx comes from Debian (`scripts/setup` installs it); the test starts it on a
//! free loopback port with everything in a temporary directory and stops it.

use leasehold_plugin_artifacts::HTPASSWD;
use leasehold_sdk::testing::{Grants, TestPlugin, lease};
use leasehold_test_support::Nginx;
use serde_json::json;
use std::os::unix::fs::PermissionsExt;

#[test]
fn issued_credentials_log_in_to_nginx_until_revoked() {
    let root = tempfile::tempdir().unwrap();
    // nginx's worker runs as an unprivileged user and must read the users file.
    std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let granted = root.path().join("auth");
    std::fs::create_dir(&granted).unwrap();
    std::fs::set_permissions(&granted, std::fs::Permissions::from_mode(0o755)).unwrap();
    let users_file = granted.join("htpasswd");
    let alice_hash = bcrypt::hash("alice-password", 4).unwrap();
    std::fs::write(&users_file, format!("alice:{alice_hash}\n")).unwrap();

    let nginx = Nginx::start(root.path(), &users_file);
    assert_eq!(nginx.status("alice", "alice-password"), 200);

    let plugin =
        TestPlugin::load(HTPASSWD).with_grants(Grants::none().directory(&granted).unwrap());
    let config = json!({ "file": "htpasswd" });
    let role = json!({});

    let first_lease = lease("web");
    let first = plugin.create(&config, &role, &first_lease).unwrap();
    let (user, password) = (
        first.credential.get("username").unwrap().to_owned(),
        first.credential.get("password").unwrap().to_owned(),
    );
    assert_eq!(nginx.status(&user, &password), 200);
    assert_eq!(nginx.status(&user, "wrong-password"), 401);

    let second_lease = lease("web");
    let second = plugin.create(&config, &role, &second_lease).unwrap();
    let (user2, password2) = (
        second.credential.get("username").unwrap().to_owned(),
        second.credential.get("password").unwrap().to_owned(),
    );
    assert_eq!(nginx.status(&user2, &password2), 200);

    plugin
        .revoke(&config, &role, Some(&user), &first_lease)
        .unwrap();
    assert_eq!(nginx.status(&user, &password), 401);
    assert_eq!(
        nginx.status(&user2, &password2),
        200,
        "another lease's user was touched"
    );
    assert_eq!(
        nginx.status("alice", "alice-password"),
        200,
        "a user the broker does not own was touched"
    );

    // Recovery: a revoke with no handle finds the user from the lease alone.
    plugin.revoke(&config, &role, None, &second_lease).unwrap();
    assert_eq!(nginx.status(&user2, &password2), 401);
    assert_eq!(nginx.status("alice", "alice-password"), 200);
}
