//! Paths of the plugin components the build compiled from source.
//!
//! `build.rs` runs `cargo build --target wasm32-wasip2` for the bundled plugins and
//! the test fixtures (into `target/plugins`, apart from the host build) and records
//! where each `.wasm` landed. Nothing here is committed as a binary.

include!(concat!(env!("OUT_DIR"), "/artifacts.rs"));

/// Reads one of the components above.
pub fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|err| panic!("reading built plugin {path}: {err}"))
}
