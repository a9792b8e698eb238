//! `leasehold:provider@0.1.0`: the bindings of `wit/0.1.0`, and the conversions
//! between its generated types and the runtime's own.
//!
//! This directory of `wit/` is released and never changes, so neither does this
//! module, except where the runtime's own types grow: then only the
//! conversions below change, and plugins built against 0.1.0 keep loading.

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

impl From<logging::Level> for domain::Level {
    fn from(level: logging::Level) -> Self {
        match level {
            logging::Level::Trace => Self::Trace,
            logging::Level::Debug => Self::Debug,
            logging::Level::Info => Self::Info,
            logging::Level::Warn => Self::Warn,
            logging::Level::Error => Self::Error,
        }
    }
}

impl From<&domain::LeaseInfo> for wit::LeaseInfo {
    fn from(lease: &domain::LeaseInfo) -> Self {
        Self {
            lease_id: lease.lease_id.clone(),
            mount: lease.mount.clone(),
            role: lease.role.clone(),
            requester: lease.requester.clone(),
            issued_at: lease.issued_at,
            ttl_seconds: lease.ttl_seconds,
            expires_at: lease.expires_at,
        }
    }
}

impl From<wit::PluginInfo> for domain::PluginInfo {
    fn from(info: wit::PluginInfo) -> Self {
        Self {
            name: info.name,
            version: info.version,
            description: info.description,
            config_schema: info.config_schema,
            role_schema: info.role_schema,
            max_username_length: info.max_username_length,
            can_renew: info.can_renew,
            can_rotate_root: info.can_rotate_root,
            contract_version: ContractVersion::V0_1_0,
        }
    }
}

impl From<wit::Error> for Failure {
    fn from(err: wit::Error) -> Self {
        match err {
            wit::Error::InvalidConfig(m) => Self::InvalidConfig(m),
            wit::Error::InvalidRequest(m) => Self::InvalidRequest(m),
            wit::Error::Unavailable(m) => Self::Unavailable(m),
            wit::Error::Denied(m) => Self::Denied(m),
            wit::Error::Internal(m) => Self::Internal(m),
        }
    }
}

impl From<wit::Issued> for Issued {
    fn from(issued: wit::Issued) -> Self {
        let fields = issued
            .credential
            .into_iter()
            .map(|field| CredentialField {
                name: field.name,
                value: SecretString::from(field.value),
                secret: field.secret,
            })
            .collect();
        Self {
            handle: SecretString::from(issued.handle),
            credential: Credential::new(fields),
        }
    }
}
