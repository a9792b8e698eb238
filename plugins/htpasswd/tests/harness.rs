//! The htpasswd plugin in the real sandbox (the SDK's test harness): what it writes
//! to the file, and how it handles revokes, recovery, concurrency and bad config.

use leasehold_plugin_artifacts::HTPASSWD;
use leasehold_sdk::testing::{Failure, Grants, PluginError, TestPlugin, lease};
use serde_json::{Value, json};
use std::path::Path;

fn plugin(dir: &Path) -> TestPlugin {
    TestPlugin::load(HTPASSWD).with_grants(Grants::none().directory(dir).unwrap())
}

fn config() -> Value {
    json!({ "file": "htpasswd", "bcrypt_cost": 4 })
}

fn users(dir: &Path) -> Vec<String> {
    std::fs::read_to_string(dir.join("htpasswd"))
        .unwrap_or_default()
        .lines()
        .map(|line| line.split(':').next().unwrap().to_owned())
        .collect()
}

fn hash_of(dir: &Path, user: &str) -> String {
    let text = std::fs::read_to_string(dir.join("htpasswd")).unwrap();
    text.lines()
        .find_map(|line| line.strip_prefix(&format!("{user}:")).map(str::to_owned))
        .unwrap()
}

#[test]
fn create_adds_a_bcrypt_user_and_revoke_removes_only_it() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("htpasswd"),
        "alice:$2y$04$existingexistingexistingexistingexistingexistingexi\n",
    )
    .unwrap();
    let plugin = plugin(dir.path());
    let lease = lease("web");

    let issued = plugin.create(&config(), &json!({}), &lease).unwrap();
    let user = issued.credential.get("username").unwrap().to_owned();
    let password = issued.credential.get("password").unwrap().to_owned();
    assert!(user.starts_with("v-tester-web-"), "{user}");
    assert_eq!(users(dir.path()), ["alice", user.as_str()]);
    let hash = hash_of(dir.path(), &user);
    assert!(hash.starts_with("$2y$04$"), "{hash}");
    assert!(bcrypt::verify(&password, &hash).unwrap());
    assert!(
        !std::fs::read_to_string(dir.path().join("htpasswd"))
            .unwrap()
            .contains(&password)
    );
    // The credential's Debug output never shows the password.
    assert!(!format!("{issued:?}").contains(&password));

    plugin
        .revoke(&config(), &json!({}), Some(&user), &lease)
        .unwrap();
    assert_eq!(users(dir.path()), ["alice"]);
    // Idempotent: revoking again is success and changes nothing.
    plugin
        .revoke(&config(), &json!({}), Some(&user), &lease)
        .unwrap();
    assert_eq!(users(dir.path()), ["alice"]);
    // No lock or temporary file is left behind.
    let mut names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["htpasswd"]);
}

#[test]
fn revoke_without_a_handle_removes_what_create_made_for_the_lease() {
    let dir = tempfile::tempdir().unwrap();
    let plugin = plugin(dir.path());
    let crashed = lease("web");
    let other = lease("web");
    plugin.create(&config(), &json!({}), &crashed).unwrap();
    let kept = plugin.create(&config(), &json!({}), &other).unwrap();
    // Recovery after a crash: the host never learned the handle.
    plugin
        .revoke(&config(), &json!({}), None, &crashed)
        .unwrap();
    assert_eq!(
        users(dir.path()),
        [kept.credential.get("username").unwrap()]
    );
}

#[test]
fn concurrent_creates_lose_no_user() {
    let dir = tempfile::tempdir().unwrap();
    let made: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let plugin = plugin(dir.path());
                    (0..3)
                        .map(|_| {
                            let issued =
                                plugin.create(&config(), &json!({}), &lease("web")).unwrap();
                            issued.credential.get("username").unwrap().to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let mut found = users(dir.path());
    let mut expected = made;
    found.sort();
    expected.sort();
    assert_eq!(found.len(), 12);
    assert_eq!(found, expected);
}

#[test]
fn bad_config_is_refused_and_the_file_is_untouched() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("htpasswd"), "alice:x\n").unwrap();
    let plugin = plugin(dir.path());
    for bad in [
        json!({ "file": "../htpasswd" }),
        json!({ "file": "" }),
        json!({ "file": "/htpasswd" }),
        json!({ "file": "/etc/passwd" }),
        json!({ "file": "sub/htpasswd" }),
        json!({ "file": "sub\\htpasswd" }),
        json!({ "file": "." }),
        json!({ "file": ".." }),
        json!({ "file": "htpasswd.lock" }),
        json!({ "file": "htpasswd.tmp" }),
        json!({ "file": "htpasswd", "bcrypt_cost": 31 }),
        json!({ "file": "htpasswd", "colour": "blue" }),
        json!({ "file": 7 }),
    ] {
        let err = plugin.create(&bad, &json!({}), &lease("web")).unwrap_err();
        assert!(
            matches!(err, PluginError::Failed(Failure::InvalidConfig(_))),
            "{bad}: {err}"
        );
        let err = plugin.validate(&bad, None).unwrap_err();
        assert!(
            matches!(err, PluginError::Failed(Failure::InvalidConfig(_))),
            "{bad}: {err}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(dir.path().join("htpasswd")).unwrap(),
        "alice:x\n"
    );
}

#[test]
fn validate_checks_the_grant_and_the_file() {
    let dir = tempfile::tempdir().unwrap();
    assert!(plugin(dir.path()).validate(&config(), None).is_ok());

    std::fs::write(dir.path().join("htpasswd"), "not a user line\n").unwrap();
    let err = plugin(dir.path()).validate(&config(), None).unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");

    // Without a directory grant there is nowhere to write.
    let ungranted = TestPlugin::load(HTPASSWD);
    assert!(ungranted.validate(&config(), None).is_err());
}

#[test]
fn info_describes_the_config() {
    let plugin = TestPlugin::load(HTPASSWD);
    let info = plugin.info();
    assert_eq!(info.name, "htpasswd");
    assert_eq!(info.max_username_length, 64);
    let schema: Value = serde_json::from_str(&info.config_schema).unwrap();
    assert_eq!(schema["properties"]["bcrypt_cost"]["maximum"], json!(14));
    assert_eq!(schema["additionalProperties"], json!(false));
}
