//! Compiles the bundled plugins and the test fixtures to wasm32-wasip2 components.
//!
//! A nested `cargo build` with its own target directory (`target/plugins`), so it
//! never waits on the lock of the build that runs this script. The way wasmtime's
//! `crates/test-programs/artifacts` builds its guests.

use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// (constant name, package) of every component to build.
const COMPONENTS: &[(&str, &str)] = &[
    ("NOOP", "leasehold-plugin-noop"),
    ("HTPASSWD", "leasehold-plugin-htpasswd"),
    ("WEBHOOK", "leasehold-plugin-webhook"),
    ("REDIS", "leasehold-plugin-redis"),
    ("POSTGRES", "leasehold-plugin-postgres"),
    ("GATED", "leasehold-fixture-gated"),
    ("HOSTILE", "leasehold-fixture-hostile"),
    ("INVENTORY", "leasehold-fixture-inventory"),
    ("WRONG_WORLD", "leasehold-fixture-wrong-world"),
    ("CONTRACT_0_1_0", "leasehold-fixture-contract-0-1-0"),
    ("FUTURE_CONTRACT", "leasehold-fixture-future-contract"),
];

/// The components the server ships inside its binary.
const BUNDLED: &[&str] = &["NOOP", "HTPASSWD", "WEBHOOK", "REDIS", "POSTGRES"];

/// Cargo profile for plugins (see the workspace `Cargo.toml`).
const PROFILE: &str = "plugin";

fn main() {
    let manifest_dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let workspace = manifest_dir.ancestors().nth(2).unwrap().to_owned();
    let target_dir = env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace.join("target"))
        .join("plugins");

    // A directory is watched with everything under it: `wit` is every
    // contract version, `tests/fixtures` every fixture and its own WIT.
    for watched in [
        "sdk",
        "wit",
        "plugins",
        "tests/fixtures",
        "Cargo.lock",
        "Cargo.toml",
    ] {
        println!(
            "cargo:rerun-if-changed={}",
            workspace.join(watched).display()
        );
    }

    let mut cargo = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cargo
        .current_dir(&workspace)
        .args(["build", "--target", "wasm32-wasip2", "--profile", PROFILE])
        .arg("--target-dir")
        .arg(&target_dir);
    for (_, package) in COMPONENTS {
        cargo.args(["-p", package]);
    }
    // The outer build's flags and wrappers (clippy-driver under `cargo clippy`) are
    // for the host; the guests build plainly.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_TARGET_DIR",
        "CARGO_BUILD_TARGET",
    ] {
        cargo.env_remove(var);
    }
    let status = cargo
        .status()
        .expect("running cargo to build the plugins (is the wasm32-wasip2 target installed? run scripts/setup)");
    assert!(
        status.success(),
        "building the plugins for wasm32-wasip2 failed (see above); `rustup target add wasm32-wasip2` if the target is missing"
    );

    let out = target_dir.join("wasm32-wasip2").join(PROFILE);
    let mut constants = String::new();
    for (name, package) in COMPONENTS {
        let path = out.join(format!("{}.wasm", package.replace('-', "_")));
        assert!(path.exists(), "{} was not built", path.display());
        writeln!(
            constants,
            "/// The `{package}` component.\npub const {name}: &str = {:?};",
            path_str(&path)
        )
        .unwrap();
        if BUNDLED.contains(name) {
            writeln!(
                constants,
                "/// The bytes of the `{package}` component, for the server to bundle.\npub static {name}_WASM: &[u8] = include_bytes!({:?});",
                path_str(&path)
            )
            .unwrap();
        }
    }
    let out_dir = PathBuf::from(env::var("OUT_DIR").unwrap());
    std::fs::write(out_dir.join("artifacts.rs"), constants).unwrap();
}

fn path_str(path: &Path) -> &str {
    path.to_str().expect("the target directory path is UTF-8")
}
