//! The htpasswd plugin's users file through the real broker: an issue and a
//! revoke rewrite the file (a temporary file renamed over it) and the file keeps
//! the mode and the owner the operator gave it; a `file` that is not a plain name
//! in the granted directory is refused before anything is written.

mod support;

use serde_json::{Value, json};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use support::{Api, Server};

/// The owner the operator gives the file when the test can (as root): nobody.
const NOBODY: u32 = 65534;

/// Grants `granted` to the mount `web/` and writes its connection `name` for `file`. The
/// one place that knows where the directory grant is written.
fn connect(api: &Api, name: &str, file: &str, granted: &Path) -> (u16, Value) {
    api.grant("web", json!({"directory": granted}));
    api.put(
        &format!("web/config/{name}"),
        json!({
            "file": file,
            "bcrypt_cost": 4,
            "allowed_roles": "*",
        }),
    )
}

/// A server with htpasswd mounted at `web/`, and its root API.
fn start(root: &Path) -> (Server, Api) {
    let server = Server::with_data_dir(&root.join("data"));
    let api = server.api(&server.init_and_unseal());
    api.ok("sys/mounts/web", json!({"type": "htpasswd"}));
    (server, api)
}

/// An empty directory to grant.
fn granted_dir(root: &Path) -> PathBuf {
    let granted = root.join("auth");
    std::fs::create_dir(&granted).unwrap();
    granted
}

fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

#[test]
fn issue_and_revoke_keep_the_files_mode_and_owner() {
    let root = tempfile::tempdir().unwrap();
    let granted = granted_dir(root.path());
    let users = granted.join("htpasswd");
    std::fs::write(
        &users,
        "alice:$2y$04$notarealhashnotarealhashnotarealhashnotarealhashnot\n",
    )
    .unwrap();
    std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o640)).unwrap();
    // Only root can give a file away; otherwise the file stays the test's own
    // and only the mode is in question.
    if is_root() {
        std::os::unix::fs::chown(&users, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    let before = std::fs::metadata(&users).unwrap();
    let kept = |when: &str| {
        let now = std::fs::metadata(&users).unwrap();
        assert_eq!(now.mode() & 0o7777, 0o640, "mode after {when}");
        assert_eq!(
            (now.uid(), now.gid()),
            (before.uid(), before.gid()),
            "owner after {when}"
        );
        // The file was replaced, not written in place: the rename is what is tested.
        now.ino()
    };

    let (_server, api) = start(root.path());
    let (status, reply) = connect(&api, "site", "htpasswd", &granted);
    assert!((200..300).contains(&status), "{status} {reply}");
    api.ok("web/roles/reader", json!({"db_name": "site"}));

    let (status, issued) = api.get("web/creds/reader");
    assert_eq!(status, 200, "{issued}");
    let user = issued["data"]["username"].as_str().unwrap().to_owned();
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(
        text.lines()
            .any(|line| line.starts_with(&format!("{user}:"))),
        "{user} is not in the file:\n{text}"
    );
    assert!(text.starts_with("alice:"), "{text}");
    let after_issue = kept("the issue");
    assert_ne!(
        after_issue,
        before.ino(),
        "the file was not rewritten by rename"
    );

    let (status, reply) = api.put("sys/leases/revoke", json!({"lease_id": issued["lease_id"]}));
    assert_eq!(status, 204, "{reply}");
    let text = std::fs::read_to_string(&users).unwrap();
    assert!(
        !text.contains(&user),
        "{user} is still in the file:\n{text}"
    );
    assert!(text.starts_with("alice:"), "{text}");
    assert_ne!(
        kept("the revoke"),
        after_issue,
        "the file was not rewritten"
    );

    // No lock or temporary file is left beside it.
    assert_eq!(names_in(&granted), ["htpasswd"]);
}

#[test]
fn a_file_that_is_not_a_plain_name_is_refused_and_nothing_is_created() {
    let root = tempfile::tempdir().unwrap();
    let granted = granted_dir(root.path());
    let passwd = std::fs::read("/etc/passwd").unwrap();
    let (_server, api) = start(root.path());

    for file in ["/etc/passwd", "sub/users", "../x"] {
        let (status, reply) = connect(&api, "site", file, &granted);
        assert_eq!(status, 400, "{file}: {reply}");
        assert!(
            reply.to_string().contains("plain file name"),
            "{file}: {reply}"
        );
    }
    assert_eq!(
        api.get("web/config/site").0,
        404,
        "a refused connection was kept"
    );
    assert!(names_in(&granted).is_empty(), "{:?}", names_in(&granted));
    assert!(!root.path().join("x").exists());
    assert!(!root.path().join("x.lock").exists());
    assert_eq!(std::fs::read("/etc/passwd").unwrap(), passwd);
}
