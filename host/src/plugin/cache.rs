//! Precompiled plugins on disk, so a restart does not compile every plugin again.
//!
//! An artifact is keyed by the SHA-256 of the component's bytes and by the engine's
//! compatibility hash (wasmtime version, target, settings), so a changed plugin or
//! an upgraded broker never loads a stale artifact. Loading an artifact means
//! trusting it as native code: the directory is created owner-only, and anything
//! that fails to load is compiled again and replaced.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
}

impl ArtifactCache {
    /// Uses `dir`, creating it (mode 0700) when missing.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    fn path(&self, engine: &Engine, sha256: &str) -> PathBuf {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        self.dir
            .join(format!("{sha256}-{:016x}.cwasm", hasher.finish()))
    }

    /// The compiled component for `bytes`, from the cache or freshly compiled (and
    /// then stored). `compile` reports an invalid component.
    pub(crate) fn load_or_compile(
        &self,
        engine: &Engine,
        sha256: &str,
        compile: impl FnOnce() -> wasmtime::Result<Component>,
    ) -> wasmtime::Result<Component> {
        let path = self.path(engine, sha256);
        if path.exists() {
            // SAFETY: the file was written by `Component::serialize` of this engine
            // configuration into a directory only the broker's user can write.
            match unsafe { Component::deserialize_file(engine, &path) } {
                Ok(component) => return Ok(component),
                Err(err) => tracing::warn!(
                    path = %path.display(),
                    error = %err,
                    "a cached plugin artifact did not load; compiling again"
                ),
            }
        }
        let component = compile()?;
        if let Err(err) = self.store(&path, &component) {
            tracing::warn!(path = %path.display(), error = %err, "could not cache a compiled plugin");
        }
        Ok(component)
    }

    fn store(&self, path: &Path, component: &Component) -> wasmtime::Result<()> {
        let bytes = component.serialize()?;
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temp, bytes)?;
        std::fs::rename(&temp, path)?;
        Ok(())
    }

    /// How many artifacts the cache holds (for tests and diagnostics).
    pub(crate) fn len(&self) -> usize {
        std::fs::read_dir(&self.dir)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().extension().is_some_and(|x| x == "cwasm"))
                    .count()
            })
            .unwrap_or(0)
    }
}
