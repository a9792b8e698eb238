//! The `leasehold` command: the server, and the CLI that talks to it.

fn main() -> std::process::ExitCode {
    leasehold_host::cli::run()
}
