//! nginx from Debian (`scripts/setup` installs it), protecting one page with an
//! htpasswd file.

use base64::Engine as _;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// An nginx serving one protected page, stopped on drop.
pub struct Nginx {
    child: Child,
    port: u16,
}

impl Nginx {
    /// Starts nginx in `root`, protecting `/` with `users_file`.
    pub fn start(root: &Path, users_file: &Path) -> Self {
        let binary = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("nginx is not installed: run scripts/setup");
        let port = crate::free_port();
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
        crate::wait_for_port(
            port,
            Duration::from_secs(10),
            &format!("nginx did not start; see {r}/error.log"),
        );
        nginx
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The HTTP status of `GET /` with basic auth.
    pub fn status(&self, user: &str, password: &str) -> u16 {
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
