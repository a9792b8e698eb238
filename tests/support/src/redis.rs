//! redis-server from Debian (`scripts/setup` installs it) with an `admin` user
//! and the `default` user switched off, and a plain-TCP client that sends inline
//! commands and reads one reply.

use crate::Issued;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The admin user the server starts with.
pub const ADMIN: &str = "admin";

/// A running redis-server, stopped on drop.
pub struct RedisServer {
    child: Child,
    /// Its loopback port.
    pub port: u16,
    /// Its TLS port, when started with TLS.
    pub tls_port: Option<u16>,
}

impl RedisServer {
    /// Starts Redis in `dir` with `admin`/`admin_password` allowed everything.
    pub fn start(dir: &Path, admin_password: &str) -> Self {
        Self::start_with(dir, admin_password, None)
    }

    /// The same, also serving TLS with `certificate` on [`RedisServer::tls_port`]
    /// (clients are not asked for certificates).
    pub fn start_with_tls(dir: &Path, admin_password: &str, certificate: &Issued) -> Self {
        Self::start_with(dir, admin_password, Some(certificate))
    }

    fn start_with(dir: &Path, admin_password: &str, certificate: Option<&Issued>) -> Self {
        let binary = ["/usr/bin/redis-server", "/usr/sbin/redis-server"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("redis-server is not installed: run scripts/setup");
        let port = crate::free_port();
        let conf = dir.join("redis.conf");
        let mut settings = format!(
            "port {port}\nbind 127.0.0.1\ndir {}\nsave \"\"\nappendonly no\ndaemonize no\n\
             user default off\nuser {ADMIN} on >{admin_password} ~* &* +@all\n",
            dir.display()
        );
        let tls_port = certificate.map(|certificate| {
            let tls_port = crate::free_port();
            settings.push_str(&format!(
                "tls-port {tls_port}\ntls-cert-file {}\ntls-key-file {}\ntls-auth-clients no\n",
                certificate.cert.display(),
                certificate.key.display()
            ));
            tls_port
        });
        std::fs::write(&conf, settings).unwrap();
        let child = Command::new(binary)
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting redis-server");
        let server = Self {
            child,
            port,
            tls_port,
        };
        crate::wait_for_port(port, Duration::from_secs(10), "redis-server did not start");
        if let Some(tls_port) = tls_port {
            crate::wait_for_port(
                tls_port,
                Duration::from_secs(10),
                "redis-server's TLS port did not open",
            );
        }
        server
    }

    /// A client connection, not yet authenticated.
    pub fn client(&self) -> RedisClient {
        RedisClient::connect(self.port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One connection sending inline commands.
pub struct RedisClient {
    reader: BufReader<TcpStream>,
}

impl RedisClient {
    /// Connects to Redis on `port`.
    pub fn connect(port: u16) -> Self {
        let stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        Self {
            reader: BufReader::new(stream),
        }
    }

    /// Sends `line` (words separated by spaces) and returns the reply's first
    /// line (`+OK`, `-NOPERM ...`, `$-1`, `:1`), or `None` once the server has
    /// closed the connection.
    pub fn send(&mut self, line: &str) -> Option<String> {
        let stream = self.reader.get_mut();
        if stream.write_all(format!("{line}\r\n").as_bytes()).is_err() {
            return None;
        }
        let mut reply = String::new();
        match self.reader.read_line(&mut reply) {
            Ok(0) | Err(_) => None,
            Ok(_) => {
                let reply = reply.trim_end().to_owned();
                // An array of bulk strings: the items joined with commas.
                if let Some(count) = reply.strip_prefix('*') {
                    let count: usize = count.parse().unwrap_or(0);
                    let items: Option<Vec<String>> = (0..count).map(|_| self.read_bulk()).collect();
                    return items.map(|items| items.join(","));
                }
                // A bulk string: its content is the next line.
                if let Some(len) = reply.strip_prefix('$')
                    && len != "-1"
                {
                    return self.read_line();
                }
                Some(reply)
            }
        }
    }

    fn read_line(&mut self) -> Option<String> {
        let mut line = String::new();
        match self.reader.read_line(&mut line) {
            Ok(0) | Err(_) => None,
            Ok(_) => Some(line.trim_end().to_owned()),
        }
    }

    fn read_bulk(&mut self) -> Option<String> {
        let header = self.read_line()?;
        if header == "$-1" {
            return Some(String::new());
        }
        self.read_line()
    }

    /// `AUTH user password`, true when accepted.
    pub fn auth(&mut self, user: &str, password: &str) -> bool {
        self.send(&format!("AUTH {user} {password}")).as_deref() == Some("+OK")
    }
}
