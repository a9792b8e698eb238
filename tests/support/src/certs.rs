//! Certificates for TLS tests, made with the `openssl` CLI (`scripts/setup`
//! installs it): a CA, a server certificate for `localhost` and `127.0.0.1`
//! signed by it, and one signed by it for another name, which a client that
//! checks names must refuse.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A certificate and its key, as files and as PEM text.
pub struct Issued {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// A test CA and the certificates it signed, in one directory.
pub struct TestCa {
    /// The CA certificate (PEM).
    pub ca_pem: String,
    pub ca_cert: PathBuf,
    /// For `localhost` and `127.0.0.1`.
    pub server: Issued,
    /// For `wrong.example` only.
    pub wrong_name: Issued,
}

fn openssl(dir: &Path, args: &[&str]) {
    let output = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("openssl is installed (scripts/setup)");
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A key and a certificate for `names` (a `subjectAltName` value), signed by
/// the CA in `dir`.
fn issue(dir: &Path, stem: &str, common_name: &str, names: &str) -> Issued {
    let (key, csr, cert, ext) = (
        format!("{stem}.key"),
        format!("{stem}.csr"),
        format!("{stem}.crt"),
        format!("{stem}.ext"),
    );
    std::fs::write(
        dir.join(&ext),
        format!("subjectAltName={names}\nextendedKeyUsage=serverAuth\n"),
    )
    .unwrap();
    openssl(
        dir,
        &[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={common_name}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.crt",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            &ext,
            "-out",
            &cert,
        ],
    );
    Issued {
        cert: dir.join(cert),
        key: dir.join(key),
    }
}

impl TestCa {
    /// Makes the CA and both certificates in `dir`.
    pub fn new(dir: &Path) -> Self {
        std::fs::create_dir_all(dir).unwrap();
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-days",
                "2",
                "-subj",
                "/CN=leasehold test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.crt",
            ],
        );
        let server = issue(dir, "server", "localhost", "DNS:localhost,IP:127.0.0.1");
        let wrong_name = issue(dir, "wrong", "wrong.example", "DNS:wrong.example");
        let ca_cert = dir.join("ca.crt");
        Self {
            ca_pem: std::fs::read_to_string(&ca_cert).unwrap(),
            ca_cert,
            server,
            wrong_name,
        }
    }
}
