//! Precompiled plugins on disk, so a restart does not compile every plugin again.
//!
//! An artifact is native code: whoever can swap one runs code in the broker. So
//! an artifact is used only if its SHA-256 matches the digest recorded when the
//! broker wrote it, and that record lives where only the broker writes: behind
//! [`ArtifactPins`], which the catalog keeps in the barrier (encrypted and
//! authenticated). An artifact with no record, or another digest, is never
//! deserialized; the component is compiled again from the catalog's bytes, the
//! artifact replaced and the new digest recorded. The directory is created
//! owner-only, and refused if anyone else may write to it.
//!
//! Artifacts are keyed by the SHA-256 of the component's bytes and by the
//! engine's compatibility hash (wasmtime version, target, settings), so a changed
//! plugin or an upgraded broker never looks at a stale artifact.

use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use wasmtime::Engine;
use wasmtime::component::Component;

/// Where the digests of written artifacts are recorded; only the broker can
/// write there.
#[async_trait::async_trait]
pub trait ArtifactPins: Send + Sync {
    /// The digest recorded for `artifact` (a file name), if any.
    async fn pinned(&self, artifact: &str) -> Option<String>;
    /// Records `digest` for `artifact`.
    async fn pin(&self, artifact: &str, digest: &str);
}

/// Pins kept in memory: for a runtime with no barrier (tests, a plugin author's
/// harness). Artifacts then verify only within the process that wrote them.
#[derive(Default)]
pub struct MemoryPins(Mutex<HashMap<String, String>>);

#[async_trait::async_trait]
impl ArtifactPins for MemoryPins {
    async fn pinned(&self, artifact: &str) -> Option<String> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(artifact)
            .cloned()
    }

    async fn pin(&self, artifact: &str, digest: &str) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(artifact.to_owned(), digest.to_owned());
    }
}

/// A directory of precompiled components.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
}

fn digest(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl ArtifactCache {
    /// Uses `dir`, creating it (mode 0700) when missing; refuses a directory
    /// others may write to.
    pub(crate) fn open(dir: &Path) -> std::io::Result<Self> {
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true);
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        builder.create(dir)?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir)?.permissions().mode();
            if mode & 0o022 != 0 {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    format!(
                        "others may write to it (mode {:o}); whoever can write there runs code in the broker: chmod 700 it",
                        mode & 0o777
                    ),
                ));
            }
        }
        Ok(Self {
            dir: dir.to_owned(),
        })
    }

    /// The file name of `sha256`'s artifact for `engine`.
    pub(crate) fn name(engine: &Engine, sha256: &str) -> String {
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        format!("{sha256}-{:016x}.cwasm", hasher.finish())
    }

    /// The artifact named `name`, if it is there and its digest is `expected`.
    pub(crate) fn read_verified(&self, name: &str, expected: &str) -> Option<Vec<u8>> {
        let bytes = std::fs::read(self.dir.join(name)).ok()?;
        if digest(&bytes).eq_ignore_ascii_case(expected) {
            Some(bytes)
        } else {
            tracing::warn!(
                artifact = %self.dir.join(name).display(),
                "a cached plugin artifact does not match the digest recorded when it was written; it is not used"
            );
            None
        }
    }

    /// Writes `component`'s artifact as `name` and returns its digest.
    pub(crate) fn store(&self, name: &str, component: &Component) -> wasmtime::Result<String> {
        let bytes = component.serialize()?;
        let path = self.dir.join(name);
        let temp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&temp, &bytes)?;
        std::fs::rename(&temp, &path)?;
        Ok(digest(&bytes))
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
