//! A cap on the sockets one call may create (`wasi:sockets/tcp-create-socket`).
//!
//! Every socket a plugin creates is a file descriptor of the broker's. Grants
//! decide where a socket may connect, but creating one happens before any
//! connect, so without a cap a plugin could hold thousands of unconnected
//! sockets and run the broker out of descriptors (its listener's `accept`
//! failing). This module replaces the interface's one function in the linker:
//! a call gets [`MAX_SOCKETS_PER_CALL`] sockets, and the next attempt fails
//! with WASI's own `new-socket-limit` error (and is recorded as a denial).
//! A call with no TCP grant at all cannot create even one (the sandbox turns
//! TCP off).

use super::sandbox::Sandbox;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::p2::TcpSocket;
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddressFamily};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::Host as _;
use wasmtime_wasi::sockets::WasiSocketsView;

/// The interface as the linker names it (wasmtime 48 implements WASI 0.2.12).
const INTERFACE: &str = "wasi:sockets/tcp-create-socket@0.2.12";

/// Sockets one call may create: a plugin needs one or two connections to its
/// target, not a pool.
pub const MAX_SOCKETS_PER_CALL: u32 = 16;

/// Replaces `create-tcp-socket` with one that counts.
pub(crate) fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut interface = linker.instance(INTERFACE)?;
    interface.func_wrap(
        "create-tcp-socket",
        |mut store, (family,): (IpAddressFamily,)| {
            let sandbox = store.data_mut();
            if sandbox.sockets_created >= MAX_SOCKETS_PER_CALL {
                sandbox.denials.record(format!(
                    "socket creation beyond {MAX_SOCKETS_PER_CALL} sockets in one call"
                ));
                let refused: Result<Resource<TcpSocket>, ErrorCode> =
                    Err(ErrorCode::NewSocketLimit);
                return Ok((refused,));
            }
            sandbox.sockets_created += 1;
            let created = match sandbox.sockets().create_tcp_socket(family) {
                Ok(socket) => Ok(socket),
                Err(err) => Err(err.downcast()?),
            };
            Ok((created,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
