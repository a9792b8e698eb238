//! The `leasehold` command: the server, and the CLI that talks to it.

/// mimalloc rather than glibc's malloc: under load the broker allocates and
/// frees small buffers on many threads at once, where glibc's arenas cost a
/// tenth of the CPU (measured with perf on the `noop` issue path).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    leasehold_host::cli::run()
}
