//! The one place that answers a plugin's name lookups (`wasi:sockets/ip-name-lookup`).
//!
//! wasmtime-wasi can only switch DNS on or off for a guest as a whole. A plugin
//! granted `db.internal:5432` needs to look up `db.internal` and nothing else, so
//! this module replaces the interface in the linker: a granted name is answered
//! with the addresses the host resolved when the call began (the same ones the
//! connect check allows), and any other name fails as unresolvable without a DNS
//! query leaving the host, so a lookup cannot carry data out either.

use super::sandbox::Sandbox;
use std::net::IpAddr;
use wasmtime::component::{Linker, Resource, ResourceType};
use wasmtime_wasi::p2::bindings::sockets::network::{ErrorCode, IpAddress};
use wasmtime_wasi::p2::{DynPollable, Network, Pollable, subscribe};

/// The interface as the linker names it (wasmtime 48 implements WASI 0.2.12; guests
/// importing any 0.2.x match it).
const INTERFACE: &str = "wasi:sockets/ip-name-lookup@0.2.12";

/// The answer to one lookup, handed out one address at a time.
pub(crate) struct GrantedAddresses(std::vec::IntoIter<IpAddr>);

#[wasmtime_wasi::async_trait]
impl Pollable for GrantedAddresses {
    /// Answers are computed before the stream exists, so it is always ready.
    async fn ready(&mut self) {}
}

/// Replaces the linker's `ip-name-lookup` with lookups in the call's grants.
pub(crate) fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut interface = linker.instance(INTERFACE)?;
    interface.resource(
        "resolve-address-stream",
        ResourceType::host::<GrantedAddresses>(),
        |mut store, rep| {
            store
                .data_mut()
                .table()
                .delete(Resource::<GrantedAddresses>::new_own(rep))?;
            Ok(())
        },
    )?;
    interface.func_wrap(
        "resolve-addresses",
        |mut store, (network, name): (Resource<Network>, String)| {
            let sandbox = store.data_mut();
            sandbox.table().get(&network)?;
            let answer = match sandbox.grants.lookup(&name) {
                Some(ips) => Ok(sandbox.table().push(GrantedAddresses(ips.into_iter()))?),
                None => {
                    sandbox.denials.record(format!("name lookup of `{name}`"));
                    Err(ErrorCode::NameUnresolvable)
                }
            };
            Ok((answer,))
        },
    )?;
    interface.func_wrap(
        "[method]resolve-address-stream.resolve-next-address",
        |mut store, (stream,): (Resource<GrantedAddresses>,)| {
            let addresses = store.data_mut().table().get_mut(&stream)?;
            let next: Result<Option<IpAddress>, ErrorCode> = Ok(addresses.0.next().map(Into::into));
            Ok((next,))
        },
    )?;
    interface.func_wrap(
        "[method]resolve-address-stream.subscribe",
        |mut store, (stream,): (Resource<GrantedAddresses>,)| {
            let pollable: Resource<DynPollable> = subscribe(store.data_mut().table(), stream)?;
            Ok((pollable,))
        },
    )?;
    linker.allow_shadowing(false);
    Ok(())
}
