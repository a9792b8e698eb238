//! The htpasswd plugin against a real nginx: credentials it issues log in with
//! HTTP basic auth, and stop working once revoked, while other users keep working.
//!
//! nginx comes from Debian (`scripts/setup` installs it); the test starts it on a
//! free loopback port with everything in a temporary directory and stops it.

use base64::Engine as _;
use leasehold_plugin_artifacts::HTPASSWD;
use leasehold_sdk::testing::{Grants, TestPlugin, lease};
use serde_json::json;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// An nginx serving one protected page, stopped on drop.
struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    fn start(root: &Path, users_file: &Path) -> Self {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: run scripts/setup");
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let www = root.join("www");
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), "welcome\n").unwrap();
        let conf = root.join("nginx.conf");
        let r = root.display();
        std::fs::write(
            &conf,
            format!(
                "daemon off;\nmaster_process off;\npid {r}/nginx.pid;\nerror_log {r}/error.log;\n\
                 events {{}}\n\
                 http {{\n  access_log off;\n  client_body_temp_path {r}/body;\n  proxy_temp_path {r}/proxy;\n\
                   fastcgi_temp_path {r}/fastcgi;\n  uwsgi_temp_path {r}/uwsgi;\n  scgi_temp_path {r}/scgi;\n\
                   server {{\n    listen 127.0.0.1:{port};\n    root {www};\n\
                     location / {{\n      auth_basic \"leasehold\";\n      auth_basic_user_file {users};\n    }}\n  }}\n}}\n",
                www = www.display(),
                users = users_file.display(),
            ),
        )
        .unwrap();
        let child = Command::new(binary)
            .args(["-e", &format!("{r}/error.log"), "-p", &r.to_string(), "-c"])
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting nginx");
        let nginx = Self { child, port };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nginx did not start; see {r}/error.log"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        nginx
    }

    /// The HTTP status of `GET /` with basic auth.
    fn status(&self, user: &str, password: &str) -> u16 {
        let token = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        write!(
            stream,
            "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {token}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        response
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {response}"))
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

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
