//! PostgreSQL 15 from Debian (`scripts/setup` installs it): `initdb` into a
//! temporary directory with SCRAM-SHA-256 authentication and a superuser
//! `admin`, a server on a free loopback port, and `psql` for checking what a
//! credential can do. As root, both run as the `postgres` system user (initdb
//! refuses to run as root).

use crate::Issued;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The superuser the cluster is made with.
pub const ADMIN: &str = "admin";

/// A running PostgreSQL, stopped on drop.
pub struct PostgresServer {
    child: Child,
    data: PathBuf,
    /// Its loopback port.
    pub port: u16,
}

fn bin_dir() -> PathBuf {
    [
        "/usr/lib/postgresql/15/bin",
        "/usr/lib/postgresql/16/bin",
        "/usr/lib/postgresql/17/bin",
    ]
    .into_iter()
    .map(PathBuf::from)
    .find(|dir| dir.join("initdb").exists())
    .expect("PostgreSQL is not installed: run scripts/setup")
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// `program` as the postgres user when we are root.
fn command(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("runuser");
        command.args(["-u", "postgres", "--"]).arg(program);
        command
    } else {
        Command::new(program)
    }
}

impl PostgresServer {
    /// A new cluster in `dir` (which it takes over) with `admin`/`admin_password`.
    pub fn start(dir: &Path, admin_password: &str) -> Self {
        Self::start_with(dir, admin_password, &[])
    }

    /// The same, with SSL on, serving `certificate` (copied into `dir`).
    pub fn start_with_ssl(dir: &Path, admin_password: &str, certificate: &Issued) -> Self {
        let (cert, key) = (dir.join("server.crt"), dir.join("server.key"));
        std::fs::copy(&certificate.cert, &cert).unwrap();
        std::fs::copy(&certificate.key, &key).unwrap();
        // PostgreSQL refuses a key others can read.
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        Self::start_with(
            dir,
            admin_password,
            &[
                "ssl=on".to_owned(),
                format!("ssl_cert_file={}", cert.display()),
                format!("ssl_key_file={}", key.display()),
            ],
        )
    }

    fn start_with(dir: &Path, admin_password: &str, settings: &[String]) -> Self {
        let bin = bin_dir();
        let data = dir.join("pgdata");
        let pwfile = dir.join("pwfile");
        std::fs::write(&pwfile, admin_password).unwrap();
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status()
                .unwrap();
            assert!(status.success(), "chown of the PostgreSQL directory failed");
        }
        let initdb = command(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args([
                "-U",
                ADMIN,
                "--auth=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .arg(format!("--pwfile={}", pwfile.display()))
            .output()
            .expect("running initdb");
        assert!(
            initdb.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let port = crate::free_port();
        let child = command(&bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .args(settings.iter().flat_map(|setting| ["-c", setting.as_str()]))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting postgres");
        let server = Self { child, data, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = TcpStream::connect(("127.0.0.1", port)).is_ok()
                && server
                    .psql(ADMIN, admin_password, "SELECT 1")
                    .status
                    .success();
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "PostgreSQL did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        server
    }

    /// Runs `sql` with `psql` as `user`, over TCP with a password.
    pub fn psql(&self, user: &str, password: &str, sql: &str) -> Output {
        Command::new(bin_dir().join("psql"))
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                user,
                "-d",
                "postgres",
            ])
            .args(["-v", "ON_ERROR_STOP=1", "-tAc", sql])
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "5")
            .output()
            .expect("running psql")
    }

    /// `psql`'s output of `sql`, which must succeed.
    pub fn query(&self, user: &str, password: &str, sql: &str) -> String {
        let output = self.psql(user, password, sql);
        assert!(
            output.status.success(),
            "psql `{sql}` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        // SIGINT to the postmaster is PostgreSQL's fast shutdown. Under runuser
        // the child is runuser itself, so the postmaster's pid comes from its
        // pid file.
        let postmaster = std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()
            .and_then(|text| text.lines().next().map(str::to_owned));
        if let Some(pid) = &postmaster {
            let _ = Command::new("kill").args(["-INT", pid]).status();
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
