//! `leasehold:provider@0.2.0`: the bindings of `wit/0.2.0`, the conversions
//! between its generated types and the runtime's own, and its one new import,
//! `connections`, which hands over to [`crate::connections`].
//!
//! The provider, types and logging interfaces are those of 0.1.0, so their
//! conversions are the shared ones (`shared_conversions!`, in the parent),
//! expanded here for this version's generated types.

use crate::connections::{Connection, MAX_RECEIVE, TlsMode, TlsOptions};
use crate::contract::ContractVersion;
use crate::credential::{Credential, CredentialField, Issued};
use crate::domain::{self, Failure};
use crate::sandbox::Sandbox;
use secrecy::SecretString;
use wasmtime::component::{Component, HasSelf, Linker, Resource};

mod generated {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "leasehold:provider/plugin",
        imports: {
            "leasehold:provider/connections": async | trappable,
            default: trappable,
        },
        exports: { default: async },
        with: {
            "leasehold:provider/connections.connection": crate::connections::Connection,
        },
    });
}

use generated::exports::leasehold::provider::provider as wit;
use generated::leasehold::provider::{connections, logging, types};
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

impl types::Host for Sandbox {}

impl logging::Host for Sandbox {
    fn log(&mut self, level: logging::Level, message: String) -> wasmtime::Result<()> {
        self.output.log(level.into(), &message);
        Ok(())
    }
}

impl connections::Host for Sandbox {}

impl connections::HostConnection for Sandbox {
    async fn open(
        &mut self,
        host: String,
        port: u16,
    ) -> wasmtime::Result<Result<Resource<Connection>, types::Error>> {
        let opened = self
            .connections
            .open(&host, port, &mut self.sockets_created)
            .await;
        match opened {
            Ok(connection) => Ok(Ok(self.table().push(connection)?)),
            Err(failure) => Ok(Err(failure.into())),
        }
    }

    async fn connect_tls(
        &mut self,
        host: String,
        port: u16,
        options: connections::TlsOptions,
    ) -> wasmtime::Result<Result<Resource<Connection>, types::Error>> {
        let opened = self
            .connections
            .open(&host, port, &mut self.sockets_created)
            .await;
        let mut connection = match opened {
            Ok(connection) => connection,
            Err(failure) => return Ok(Err(failure.into())),
        };
        match connection.start_tls(&options.into()).await {
            Ok(()) => Ok(Ok(self.table().push(connection)?)),
            Err(failure) => Ok(Err(failure.into())),
        }
    }

    async fn start_tls(
        &mut self,
        connection: Resource<Connection>,
        options: connections::TlsOptions,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        let connection = self.table().get_mut(&connection)?;
        Ok(connection
            .start_tls(&options.into())
            .await
            .map_err(Into::into))
    }

    async fn is_encrypted(&mut self, connection: Resource<Connection>) -> wasmtime::Result<bool> {
        Ok(self.table().get(&connection)?.is_encrypted())
    }

    async fn send(
        &mut self,
        connection: Resource<Connection>,
        bytes: Vec<u8>,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        let connection = self.table().get_mut(&connection)?;
        Ok(connection.send(&bytes).await.map_err(Into::into))
    }

    async fn receive(
        &mut self,
        connection: Resource<Connection>,
        max: u32,
    ) -> wasmtime::Result<Result<Vec<u8>, types::Error>> {
        let connection = self.table().get_mut(&connection)?;
        Ok(connection
            .receive(max.min(MAX_RECEIVE))
            .await
            .map_err(Into::into))
    }

    async fn take(&mut self, key: String) -> wasmtime::Result<Option<Resource<Connection>>> {
        match self.connections.take(&key) {
            Some(connection) => Ok(Some(self.table().push(connection)?)),
            None => Ok(None),
        }
    }

    async fn keep(
        &mut self,
        connection: Resource<Connection>,
        key: String,
    ) -> wasmtime::Result<()> {
        let connection = self.table().delete(connection)?;
        self.connections.keep(connection, key);
        Ok(())
    }

    async fn drop(&mut self, connection: Resource<Connection>) -> wasmtime::Result<()> {
        self.table().delete(connection)?;
        Ok(())
    }
}

impl From<connections::TlsOptions> for TlsOptions {
    fn from(options: connections::TlsOptions) -> Self {
        Self {
            mode: match options.mode {
                connections::TlsMode::Require => TlsMode::Require,
                connections::TlsMode::VerifyCa => TlsMode::VerifyCa,
                connections::TlsMode::VerifyFull => TlsMode::VerifyFull,
            },
            server_name: options.server_name,
            ca_pem: options.ca_pem,
        }
    }
}

impl From<Failure> for types::Error {
    fn from(failure: Failure) -> Self {
        match failure {
            Failure::InvalidConfig(m) => Self::InvalidConfig(m),
            Failure::InvalidRequest(m) => Self::InvalidRequest(m),
            Failure::Unavailable(m) => Self::Unavailable(m),
            Failure::Denied(m) => Self::Denied(m),
            Failure::Internal(m) => Self::Internal(m),
        }
    }
}

super::shared_conversions!(ContractVersion::V0_2_0);
