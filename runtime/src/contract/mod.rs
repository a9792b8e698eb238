//! The plugin contract, one set of bindings per released version.
//!
//! `wit/` keeps every released version of `leasehold:provider` side by side, and
//! a plugin built against any of them keeps loading. This module is the only
//! place that names generated bindings: each version has a submodule that runs
//! `bindgen!` on its own directory, links that version's imports, and converts
//! its types to and from the runtime's own ([`crate::domain`]). At load, the
//! version is read from the component itself, from the name of the
//! `leasehold:provider/provider@X.Y.Z` interface it exports, and the component is
//! checked against that version's world alone; every call then goes through
//! [`ProviderPre`] and [`Provider`], which dispatch on the version.
//!
//! Adding a version: a directory in `wit/`, a submodule here, a variant in
//! [`ContractVersion`], [`ProviderPre`], [`Provider`] and [`Linkers`], and its
//! arm in each `match`.

/// The conversions between the runtime's own types and those every version's
/// bindings generate for the records and variants all versions so far share
/// (`lease-info`, `plugin-info`, `issued`, `error`, `level`). Expanded in each
/// version's module, where `wit` names its provider interface and `logging`
/// its logging interface; `$version` is the version the plugin info records.
macro_rules! shared_conversions {
    ($version:expr) => {
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
                    contract_version: $version,
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
    };
}

pub(crate) use shared_conversions;

mod v0_1_0;
mod v0_2_0;

use crate::LoadError;
use crate::credential::Issued;
use crate::domain::{Failure, LeaseInfo, PluginInfo};
use crate::sandbox::Sandbox;
use std::fmt;
use wasmtime::component::{Component, Linker};
use wasmtime::{Engine, Store};

/// The WIT package every contract version belongs to.
const PACKAGE: &str = "leasehold:provider";
/// The interface a plugin exports; its version is the plugin's contract version.
const PROVIDER: &str = "provider";

/// A version of the `leasehold:provider` contract this broker supports.
/// Variants are declared oldest first: their order is the versions' order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum ContractVersion {
    /// `leasehold:provider@0.1.0` (`wit/0.1.0`).
    V0_1_0,
    /// `leasehold:provider@0.2.0` (`wit/0.2.0`): adds `connections`.
    V0_2_0,
}

impl ContractVersion {
    /// Every supported version, oldest first: one per directory of `wit/`.
    pub const SUPPORTED: &'static [ContractVersion] =
        &[ContractVersion::V0_1_0, ContractVersion::V0_2_0];

    /// The version as written in WIT: `0.1.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::V0_1_0 => "0.1.0",
            Self::V0_2_0 => "0.2.0",
        }
    }

    /// The supported version written `version`, if any.
    pub fn parse(version: &str) -> Option<Self> {
        Self::SUPPORTED
            .iter()
            .copied()
            .find(|supported| supported.as_str() == version)
    }
}

impl fmt::Display for ContractVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `leasehold:provider/<interface>@<version>` split into its interface and
/// version (`None` when unversioned); `None` for a name of another package.
fn contract_name(name: &str) -> Option<(&str, Option<&str>)> {
    let rest = name.strip_prefix(PACKAGE)?.strip_prefix('/')?;
    Some(match rest.split_once('@') {
        Some((interface, version)) => (interface, Some(version)),
        None => (rest, None),
    })
}

/// `leasehold:provider@<version>`, for messages.
fn package_at(version: Option<&str>) -> String {
    match version {
        Some(version) => format!("{PACKAGE}@{version}"),
        None => format!("{PACKAGE} (unversioned)"),
    }
}

/// Reads which contract version `component` was built against: the newest
/// supported version of the provider interface it exports. Every
/// `leasehold:provider` interface it imports must be of that same version.
pub(crate) fn detect(engine: &Engine, component: &Component) -> Result<ContractVersion, LoadError> {
    let ty = component.component_type();
    let exported: Vec<Option<&str>> = ty
        .exports(engine)
        .filter_map(|(name, _)| contract_name(name))
        .filter(|(interface, _)| *interface == PROVIDER)
        .map(|(_, version)| version)
        .collect();
    let version = exported
        .iter()
        .filter_map(|version| version.and_then(ContractVersion::parse))
        .max();
    let Some(version) = version else {
        if exported.is_empty() {
            return Err(LoadError::NoContract);
        }
        return Err(LoadError::UnsupportedContract {
            built_against: exported
                .iter()
                .map(|version| package_at(*version))
                .collect::<Vec<_>>()
                .join(" and "),
        });
    };
    for (name, _) in ty.imports(engine) {
        if let Some((_, imported)) = contract_name(name)
            && imported != Some(version.as_str())
        {
            return Err(LoadError::WrongWorld {
                contract: version,
                reason: format!(
                    "it imports `{name}`, but a plugin is built against one contract version and it exports {}",
                    package_at(Some(version.as_str()))
                ),
            });
        }
    }
    Ok(version)
}

/// One linker per contract version: WASI and the runtime's own host functions,
/// plus that version's imports only, so a component is checked against exactly
/// the world it was built for.
pub(crate) struct Linkers {
    v0_1_0: Linker<Sandbox>,
    v0_2_0: Linker<Sandbox>,
}

impl Linkers {
    /// Adds each version's imports to a copy of `base`.
    pub(crate) fn new(base: &Linker<Sandbox>) -> wasmtime::Result<Self> {
        Ok(Self {
            v0_1_0: v0_1_0::linker(base.clone())?,
            v0_2_0: v0_2_0::linker(base.clone())?,
        })
    }
}

/// A component checked against its contract version's world, ready to
/// instantiate for each call.
pub(crate) enum ProviderPre {
    V0_1_0(v0_1_0::PluginPre<Sandbox>),
    V0_2_0(v0_2_0::PluginPre<Sandbox>),
}

impl ProviderPre {
    /// Checks `component` against the world of `version`.
    pub(crate) fn new(
        linkers: &Linkers,
        component: &Component,
        version: ContractVersion,
    ) -> Result<Self, LoadError> {
        let wrong_world = |err: wasmtime::Error| LoadError::WrongWorld {
            contract: version,
            reason: format!("{err:#}"),
        };
        match version {
            ContractVersion::V0_1_0 => v0_1_0::pre(&linkers.v0_1_0, component)
                .map(Self::V0_1_0)
                .map_err(wrong_world),
            ContractVersion::V0_2_0 => v0_2_0::pre(&linkers.v0_2_0, component)
                .map(Self::V0_2_0)
                .map_err(wrong_world),
        }
    }

    /// A fresh instance in `store`.
    pub(crate) async fn instantiate(
        &self,
        store: &mut Store<Sandbox>,
    ) -> wasmtime::Result<Provider> {
        Ok(match self {
            Self::V0_1_0(pre) => Provider::V0_1_0(pre.instantiate_async(store).await?),
            Self::V0_2_0(pre) => Provider::V0_2_0(pre.instantiate_async(store).await?),
        })
    }
}

/// What one export returns: a trap, or the plugin's own result.
pub(crate) type ExportResult<R> = wasmtime::Result<Result<R, Failure>>;

/// One instance of a plugin, for one call: the provider interface of its
/// version, in the runtime's own types.
pub(crate) enum Provider {
    V0_1_0(v0_1_0::Plugin),
    V0_2_0(v0_2_0::Plugin),
}

/// Runs the same code on whichever version's bindings `provider` holds: the
/// generated types differ per version, the calls do not.
macro_rules! on_each_version {
    ($provider:expr, $plugin:ident => $body:expr) => {
        match $provider {
            Provider::V0_1_0($plugin) => $body,
            Provider::V0_2_0($plugin) => $body,
        }
    };
}

// The JSON documents (config, role) are `&String` because the bindings take
// them so: the caller's copies are wiped on drop, another copy here would not be.
impl Provider {
    /// `info`.
    pub(crate) async fn info(&self, store: &mut Store<Sandbox>) -> wasmtime::Result<PluginInfo> {
        on_each_version!(self, plugin => Ok(plugin
                .leasehold_provider_provider()
                .call_info(store)
                .await?
                .into()))
    }

    /// `validate`.
    pub(crate) async fn validate(
        &self,
        store: &mut Store<Sandbox>,
        config: &String,
        role: Option<&String>,
    ) -> ExportResult<()> {
        on_each_version!(self, plugin => Ok(plugin
                .leasehold_provider_provider()
                .call_validate(store, config, role)
                .await?
                .map_err(Failure::from)))
    }

    /// `create`.
    pub(crate) async fn create(
        &self,
        store: &mut Store<Sandbox>,
        config: &String,
        role: &String,
        lease: &LeaseInfo,
    ) -> ExportResult<Issued> {
        on_each_version!(self, plugin => Ok(plugin
                .leasehold_provider_provider()
                .call_create(store, config, role, &lease.into())
                .await?
                .map(Issued::from)
                .map_err(Failure::from)))
    }

    /// `renew`.
    pub(crate) async fn renew(
        &self,
        store: &mut Store<Sandbox>,
        config: &String,
        role: &String,
        handle: &str,
        lease: &LeaseInfo,
    ) -> ExportResult<()> {
        on_each_version!(self, plugin => Ok(plugin
                .leasehold_provider_provider()
                .call_renew(store, config, role, handle, &lease.into())
                .await?
                .map_err(Failure::from)))
    }

    /// `revoke`.
    pub(crate) async fn revoke(
        &self,
        store: &mut Store<Sandbox>,
        config: &String,
        role: &String,
        handle: Option<&str>,
        lease: &LeaseInfo,
    ) -> ExportResult<()> {
        on_each_version!(self, plugin => Ok(plugin
                .leasehold_provider_provider()
                .call_revoke(store, config, role, handle, &lease.into())
                .await?
                .map_err(Failure::from)))
    }

    /// `rotate-root`.
    pub(crate) async fn rotate_root(
        &self,
        store: &mut Store<Sandbox>,
        config: &String,
    ) -> ExportResult<String> {
        on_each_version!(self, plugin => Ok(plugin
                .leasehold_provider_provider()
                .call_rotate_root(store, config)
                .await?
                .map_err(Failure::from)))
    }
}

#[cfg(test)]
mod tests {
    use super::{ContractVersion, detect};
    use crate::LoadError;
    use sha2::{Digest, Sha256};
    use std::path::{Path, PathBuf};
    use wasmtime::component::Component;
    use wasmtime::{Config, Engine};

    /// The SHA-256 of each released `wit/` directory (see [`directory_digest`]).
    /// A released version is never edited: a change is a new version.
    const RELEASED: &[(ContractVersion, &str)] = &[
        (
            ContractVersion::V0_1_0,
            "3a44edface49eb911e36987a74bdc554ea06425a366b191da40ffa3cbf5f0edf",
        ),
        (
            ContractVersion::V0_2_0,
            "52cda07a7d9f906c043a8dd8cf79205c10027aa16baf5c114444e430693c39fe",
        ),
    ];

    fn wit_dir() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit")
    }

    /// Every file under `dir`, by relative path, with its contents.
    fn directory_digest(dir: &Path) -> String {
        fn walk(dir: &Path, base: &Path, files: &mut Vec<(String, Vec<u8>)>) {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    walk(&path, base, files);
                } else {
                    let name = path
                        .strip_prefix(base)
                        .unwrap()
                        .to_string_lossy()
                        .into_owned();
                    files.push((name, std::fs::read(&path).unwrap()));
                }
            }
        }
        let mut files = Vec::new();
        walk(dir, dir, &mut files);
        files.sort();
        let mut digest = Sha256::new();
        for (name, contents) in files {
            digest.update(format!("{name}\0{}\0", contents.len()));
            digest.update(contents);
        }
        hex::encode(digest.finalize())
    }

    #[test]
    fn released_contract_directories_are_never_edited() {
        for (version, expected) in RELEASED {
            let dir = wit_dir().join(version.as_str());
            assert_eq!(
                directory_digest(&dir),
                *expected,
                "{} changed: a released contract is frozen; put the change in a new version's directory",
                dir.display()
            );
        }
    }

    #[test]
    fn every_version_in_wit_is_supported_and_every_supported_one_is_released() {
        let mut listed: Vec<String> = std::fs::read_dir(wit_dir())
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .filter(|path| path.is_dir())
            .map(|path| path.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        listed.sort();
        let supported: Vec<&str> = ContractVersion::SUPPORTED
            .iter()
            .map(|version| version.as_str())
            .collect();
        assert_eq!(listed, supported);
        assert_eq!(RELEASED.len(), supported.len());
    }

    fn detect_wat(wat: &str) -> Result<ContractVersion, LoadError> {
        let engine = Engine::new(Config::new().wasm_component_model(true)).unwrap();
        let component = Component::new(&engine, wat).unwrap();
        detect(&engine, &component)
    }

    #[test]
    fn the_version_is_the_one_of_the_exported_provider_interface() {
        let version = detect_wat(
            r#"(component
                (instance $provider)
                (export "leasehold:provider/provider@0.1.0" (instance $provider)))"#,
        );
        assert_eq!(version.unwrap(), ContractVersion::V0_1_0);
    }

    #[test]
    fn an_unknown_version_is_refused_unless_a_supported_one_is_exported_beside_it() {
        let future = r#"(instance $future)
            (export "leasehold:provider/provider@0.9.0" (instance $future))"#;
        match detect_wat(&format!("(component {future})")) {
            Err(LoadError::UnsupportedContract { built_against }) => {
                assert_eq!(built_against, "leasehold:provider@0.9.0");
            }
            other => panic!("{other:?}"),
        }
        // A plugin may export an older version too, for older brokers.
        let both = format!(
            r#"(component {future}
                (instance $provider)
                (export "leasehold:provider/provider@0.1.0" (instance $provider)))"#
        );
        assert_eq!(detect_wat(&both).unwrap(), ContractVersion::V0_1_0);
    }

    #[test]
    fn a_component_without_a_provider_export_is_not_a_plugin() {
        let err = detect_wat(
            r#"(component
                (instance $other)
                (export "leasehold:provider/types@0.1.0" (instance $other)))"#,
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, LoadError::NoContract), "{message}");
        assert!(
            message.contains("supports contract versions 0.1.0"),
            "{message}"
        );
        assert!(matches!(
            detect_wat("(component)"),
            Err(LoadError::NoContract)
        ));
    }

    #[test]
    fn imports_of_another_contract_version_are_refused() {
        let err = detect_wat(
            r#"(component
                (import "leasehold:provider/logging@0.2.0" (instance))
                (instance $provider)
                (export "leasehold:provider/provider@0.1.0" (instance $provider)))"#,
        )
        .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, LoadError::WrongWorld { .. }), "{message}");
        assert!(
            message.contains("leasehold:provider/logging@0.2.0"),
            "{message}"
        );
    }
}
