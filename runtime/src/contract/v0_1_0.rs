//! `leasehold:provider@0.1.0`: the bindings of `wit/0.1.0`, and the conversions
//! between its generated types and the runtime's own.
//!
//! This directory of `wit/` is released and never changes, so neither does this
//! module, except where the runtime's own types grow: then only the
//! conversions change (`shared_conversions!`, in the parent), and plugins built
//! against 0.1.0 keep loading.

use crate::contract::ContractVersion;
use crate::credential::{Credential, CredentialField, Issued};
use crate::domain::{self, Failure};
use crate::sandbox::Sandbox;
use secrecy::SecretString;
use wasmtime::component::{Component, HasSelf, Linker};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/0.1.0",
        world: "leasehold:provider/plugin",
        exports: { default: async },
    });
}

use generated::exports::leasehold::provider::provider as wit;
use generated::leasehold::provider::logging;
pub(super) use generated::{Plugin, PluginPre};

/// `base` (WASI and the runtime's own host functions) plus this version's imports.
pub(super) fn linker(mut base: Linker<Sandbox>) -> wasmtime::Result<Linker<Sandbox>> {
    Plugin::add_to_linker::<_, HasSelf<Sandbox>>(&mut base, |sandbox| sandbox)?;
    Ok(base)
}

/// Checks `component` against this version's world and prepares instances.
pub(super) fn pre(
    linker: &Linker<Sandbox>,
    component: &Component,
) -> wasmtime::Result<PluginPre<Sandbox>> {
    PluginPre::new(linker.instantiate_pre(component)?)
}

impl generated::leasehold::provider::types::Host for Sandbox {}

impl logging::Host for Sandbox {
    fn log(&mut self, level: logging::Level, message: String) {
        self.output.log(level.into(), &message);
    }
}

super::shared_conversions!(ContractVersion::V0_1_0);
