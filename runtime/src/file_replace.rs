//! A rename over a file keeps that file's mode and owner (`wasi:filesystem/types`
//! `rename-at`).
//!
//! WASI has no chmod or chown, so a file a plugin writes gets the broker's owner
//! and the default mode (0666 less the umask). A plugin that rewrites a file the
//! safe way, writing a temporary file and renaming it over the original (as the
//! htpasswd plugin does), would so turn a root-owned 0600 key file into a
//! broker-owned 0644 one. This module replaces `rename-at` in the linker: when the
//! new path names an existing regular file, the file moved in first gets that
//! file's permission bits (never setuid, setgid or sticky) and its owner and group,
//! then wasmtime-wasi renames as before. If the owner or group cannot be kept (the
//! broker is not root), the rename is refused with WASI's `not-permitted` and
//! recorded as a denial: a file is never silently replaced by one of another owner.
//!
//! Both paths are resolved beneath their directory with `openat2`, refusing
//! symlinks and escapes, so this step can reach nothing the plugin's own
//! directory grant does not; a path it cannot resolve that way, or a symlink or
//! other non-file moved over a file, is refused (and recorded) rather than
//! renamed unchecked. A rename onto a new name, a directory or a symlink changes
//! no file's mode or owner and goes straight through.

use super::sandbox::Sandbox;
use rustix::fd::OwnedFd;
use rustix::fs::{FileType, Gid, Mode, OFlags, ResolveFlags, Stat, Uid};
use rustix::io::Errno;
use std::fs::File;
use std::sync::Arc;
use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource};
use wasmtime_wasi::FsPerms;
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemView};
use wasmtime_wasi::p2::bindings::filesystem::types::{ErrorCode, HostDescriptor as _};

/// The interface as the linker names it (wasmtime 48 implements WASI 0.2.12;
/// guests importing any 0.2.x match it).
const INTERFACE: &str = "wasi:filesystem/types@0.2.12";

/// The permission bits a replacement takes over; the special bits are never
/// handed to a file a plugin wrote.
const PERMISSION_BITS: u32 = 0o777;

/// `rename-at`'s arguments: old directory and path, new directory and path.
type RenameArgs = (Resource<Descriptor>, String, Resource<Descriptor>, String);

/// Replaces `rename-at` with one that keeps the replaced file's mode and owner.
pub(crate) fn add_to_linker(linker: &mut Linker<Sandbox>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let mut interface = linker.instance(INTERFACE)?;
    interface.func_wrap_async("[method]descriptor.rename-at", |store, args: RenameArgs| {
        Box::new(rename_keeping_mode_and_owner(store, args))
    })?;
    linker.allow_shadowing(false);
    Ok(())
}

/// Keeps the replaced file's mode and owner, then renames as wasmtime-wasi does.
async fn rename_keeping_mode_and_owner(
    mut store: StoreContextMut<'_, Sandbox>,
    (old_dir, old_path, new_dir, new_path): RenameArgs,
) -> wasmtime::Result<(Result<(), ErrorCode>,)> {
    let sandbox = store.data_mut();
    let mut undo = None;
    if let Some((old_handle, new_handle)) = writable_dirs(sandbox, &old_dir, &new_dir) {
        let (old, new) = (old_path.clone(), new_path.clone());
        // Blocking system calls, kept off the async threads as wasmtime-wasi does.
        let kept = tokio::task::spawn_blocking(move || {
            keep_mode_and_owner(&old_handle, &old, &new_handle, &new)
        })
        .await?;
        match kept {
            Ok(changed) => undo = changed,
            Err(refusal) => {
                return Ok((Err(refusal.error_code(&sandbox.denials, &new_path)),));
            }
        }
    }
    let renamed = match sandbox
        .filesystem()
        .rename_at(old_dir, old_path, new_dir, new_path)
        .await
    {
        Ok(()) => Ok(()),
        Err(err) => Err(err.downcast()?),
    };
    // A rename that failed leaves the file as it was, mode and owner included.
    if let (Err(_), Some(undo)) = (&renamed, undo) {
        tokio::task::spawn_blocking(move || undo.restore()).await?;
    }
    Ok((renamed,))
}

/// The mode and owner a file had before they were changed for a rename, to
/// put back if the rename fails.
#[derive(Debug)]
pub(crate) struct Undo {
    file: OwnedFd,
    uid: u32,
    gid: u32,
    mode: u32,
}

impl Undo {
    fn restore(self) {
        let _ = rustix::fs::fchown(
            &self.file,
            Some(Uid::from_raw(self.uid)),
            Some(Gid::from_raw(self.gid)),
        );
        let _ = rustix::fs::fchmod(&self.file, Mode::from_bits_truncate(self.mode));
    }
}

/// The two directories' handles, when both are directories the plugin may write.
/// Anything else goes straight to wasmtime-wasi, which refuses it: nothing is
/// changed on behalf of a rename that will not happen.
fn writable_dirs(
    sandbox: &mut Sandbox,
    old: &Resource<Descriptor>,
    new: &Resource<Descriptor>,
) -> Option<(Arc<File>, Arc<File>)> {
    let table = sandbox.table();
    let writable = |descriptor: &Descriptor| match descriptor {
        Descriptor::Dir(dir) if dir.perms == FsPerms::ReadWrite => Some(dir.dir.clone()),
        _ => None,
    };
    let old = writable(table.get(old).ok()?)?;
    let new = writable(table.get(new).ok()?)?;
    Some((old, new))
}

/// Why a rename over a file was refused before it happened.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The replaced file's owner and group could not be given to the new file.
    Owner { uid: u32, gid: u32 },
    /// The replaced file's permission bits could not be given to the new file.
    Mode { mode: u32 },
    /// A path goes through a symlink or out of its directory, or the new file
    /// is not a regular file: there is nothing safe to check.
    Unchecked,
    /// The new file has other names (hard links): changing its mode or owner
    /// would change them for a file the rename does not replace.
    Linked,
    /// The system failed otherwise (for example an I/O error).
    Os(Errno),
}

impl Refusal {
    /// The WASI error the plugin sees; refusals of policy are also denials.
    fn error_code(self, denials: &super::denials::DenialLog, new_path: &str) -> ErrorCode {
        // `{:?}` escapes what the plugin chose, so a path cannot forge log lines.
        let denied = match self {
            Self::Owner { uid, gid } => {
                format!("a rename over {new_path:?} that changes its owner from {uid}:{gid}")
            }
            Self::Mode { mode } => {
                format!("a rename over {new_path:?} that changes its mode from {mode:o}")
            }
            Self::Unchecked => format!(
                "a rename over {new_path:?} through a symlink, out of the directory \
                 or of something other than a file"
            ),
            Self::Linked => {
                format!("a rename over {new_path:?} of a file with other names (hard links)")
            }
            Self::Os(errno) => return ErrorCode::from(std::io::Error::from(errno)),
        };
        denials.record(denied);
        ErrorCode::NotPermitted
    }
}

impl From<Errno> for Refusal {
    fn from(errno: Errno) -> Self {
        Self::Os(errno)
    }
}

/// Gives the file at `old_path` (beneath `old_dir`) the mode and owner of the
/// regular file at `new_path` (beneath `new_dir`), if there is one. Does not
/// rename; answers what to put back if the rename fails.
pub(crate) fn keep_mode_and_owner(
    old_dir: &File,
    old_path: &str,
    new_dir: &File,
    new_path: &str,
) -> Result<Option<Undo>, Refusal> {
    // `O_PATH` opens without reading: the replaced file is only looked at.
    let replaced = match open_beneath(new_dir, new_path, OFlags::PATH) {
        Ok(file) => rustix::fs::fstat(&file)?,
        Err(errno) => return nothing_to_keep(errno),
    };
    if !is_regular(&replaced) {
        return Ok(None);
    }
    // Read-only and non-blocking: opening the new file has no effect of its own.
    let moved_file = match open_beneath(
        old_dir,
        old_path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
    ) {
        Ok(file) => file,
        Err(errno) => return nothing_to_keep(errno),
    };
    let moved = rustix::fs::fstat(&moved_file)?;
    if FileType::from_raw_mode(moved.st_mode) == FileType::Directory {
        // A directory cannot replace a file; the rename itself fails.
        return Ok(None);
    }
    if !is_regular(&moved) {
        return Err(Refusal::Unchecked);
    }
    if moved.st_nlink != 1 {
        return Err(Refusal::Linked);
    }
    let undo = Undo {
        uid: moved.st_uid,
        gid: moved.st_gid,
        mode: moved.st_mode & 0o7777,
        file: moved_file,
    };
    let moved_file = &undo.file;

    // Owner first: a chown by root clears setuid bits, and the mode comes last.
    let owner = (replaced.st_uid, replaced.st_gid);
    if (moved.st_uid, moved.st_gid) != owner {
        let (uid, gid) = (Uid::from_raw(owner.0), Gid::from_raw(owner.1));
        match rustix::fs::fchown(moved_file, Some(uid), Some(gid)) {
            Ok(()) => {}
            Err(Errno::PERM) => {
                return Err(Refusal::Owner {
                    uid: owner.0,
                    gid: owner.1,
                });
            }
            Err(errno) => return Err(Refusal::Os(errno)),
        }
    }
    let mode = replaced.st_mode & PERMISSION_BITS;
    let refusal = match rustix::fs::fchmod(moved_file, Mode::from_bits_truncate(mode)) {
        Ok(()) => return Ok(Some(undo)),
        Err(Errno::PERM) => Refusal::Mode { mode },
        Err(errno) => Refusal::Os(errno),
    };
    // The owner may have changed already: put it back.
    undo.restore();
    Err(refusal)
}

/// What a failed lookup means for the rename: a missing file replaces nothing
/// (or the rename fails on its own), a symlink or escape is refused.
fn nothing_to_keep(errno: Errno) -> Result<Option<Undo>, Refusal> {
    match errno {
        Errno::NOENT | Errno::NOTDIR | Errno::NAMETOOLONG => Ok(None),
        Errno::LOOP | Errno::XDEV => Err(Refusal::Unchecked),
        other => Err(Refusal::Os(other)),
    }
}

fn is_regular(stat: &Stat) -> bool {
    FileType::from_raw_mode(stat.st_mode) == FileType::RegularFile
}

/// Opens `path` beneath `dir` without following any symlink (the last component
/// included) and without leaving `dir`, by `..` or an absolute path.
pub(crate) fn open_beneath(dir: &File, path: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    let flags = flags | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    // The kernel answers EAGAIN when a rename elsewhere raced the lookup.
    let mut attempts = 0;
    loop {
        match rustix::fs::openat2(dir, path, flags, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if attempts < 3 => attempts += 1,
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
    use std::path::Path;

    fn dir(path: &Path) -> File {
        File::open(path).unwrap()
    }

    fn is_root() -> bool {
        rustix::process::geteuid().is_root()
    }

    #[test]
    fn lookups_stay_beneath_the_directory_and_off_symlinks() {
        let root = tempfile::tempdir().unwrap();
        let granted = root.path().join("granted");
        std::fs::create_dir_all(granted.join("sub")).unwrap();
        std::fs::write(root.path().join("x"), "outside").unwrap();
        std::fs::write(granted.join("users"), "inside").unwrap();
        symlink("users", granted.join("link")).unwrap();
        symlink("sub", granted.join("dirlink")).unwrap();
        std::fs::write(granted.join("sub/file"), "deeper").unwrap();
        let granted_dir = dir(&granted);

        assert!(open_beneath(&granted_dir, "users", OFlags::PATH).is_ok());
        assert!(open_beneath(&granted_dir, "sub/../users", OFlags::PATH).is_ok());
        assert_eq!(
            open_beneath(&granted_dir, "../x", OFlags::PATH).unwrap_err(),
            Errno::XDEV
        );
        assert_eq!(
            open_beneath(&granted_dir, "/etc/passwd", OFlags::PATH).unwrap_err(),
            Errno::XDEV
        );
        assert_eq!(
            open_beneath(&granted_dir, "link", OFlags::RDONLY).unwrap_err(),
            Errno::LOOP
        );
        assert_eq!(
            open_beneath(&granted_dir, "dirlink/file", OFlags::PATH).unwrap_err(),
            Errno::LOOP
        );

        // A rename through any of these is refused, and nothing is changed.
        std::fs::write(granted.join("new"), "").unwrap();
        let before = std::fs::metadata(granted.join("new")).unwrap().mode();
        for (old, new) in [
            ("new", "../x"),
            ("new", "dirlink/file"),
            ("link", "users"),
            ("../x", "users"),
        ] {
            assert_eq!(
                keep_mode_and_owner(&granted_dir, old, &granted_dir, new).err(),
                Some(Refusal::Unchecked),
                "{old} -> {new}"
            );
        }
        assert_eq!(
            std::fs::metadata(granted.join("new")).unwrap().mode(),
            before
        );
        assert_eq!(
            std::fs::read_to_string(root.path().join("x")).unwrap(),
            "outside"
        );
    }

    #[test]
    fn the_new_file_takes_the_mode_and_owner_of_the_one_it_replaces() {
        let root = tempfile::tempdir().unwrap();
        let (users, temp) = (root.path().join("users"), root.path().join("users.tmp"));
        std::fs::write(&users, "old").unwrap();
        std::fs::write(&temp, "new").unwrap();
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o4640)).unwrap();
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o666)).unwrap();
        // As root the owner can be anyone's; otherwise it is already ours.
        if is_root() {
            std::os::unix::fs::chown(&users, Some(65534), Some(65534)).unwrap();
        }
        let granted = dir(root.path());

        keep_mode_and_owner(&granted, "users.tmp", &granted, "users").unwrap();

        let (kept, replaced) = (
            std::fs::metadata(&temp).unwrap(),
            std::fs::metadata(&users).unwrap(),
        );
        assert_eq!(kept.mode() & 0o7777, 0o640, "no setuid bit is handed on");
        assert_eq!((kept.uid(), kept.gid()), (replaced.uid(), replaced.gid()));
        assert_eq!(std::fs::read_to_string(&temp).unwrap(), "new");
    }

    #[test]
    fn nothing_is_kept_from_a_missing_file_a_directory_or_a_symlink() {
        let root = tempfile::tempdir().unwrap();
        let temp = root.path().join("users.tmp");
        std::fs::write(&temp, "new").unwrap();
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::create_dir(root.path().join("dir")).unwrap();
        std::fs::write(root.path().join("private"), "").unwrap();
        std::fs::set_permissions(
            root.path().join("private"),
            std::fs::Permissions::from_mode(0o600),
        )
        .unwrap();
        symlink("private", root.path().join("link")).unwrap();
        let granted = dir(root.path());

        for target in ["missing", "dir", "link", "missing/deeper"] {
            keep_mode_and_owner(&granted, "users.tmp", &granted, target).unwrap();
            assert_eq!(
                std::fs::metadata(&temp).unwrap().mode() & 0o7777,
                0o644,
                "{target}"
            );
        }
    }

    #[test]
    fn a_file_with_other_names_keeps_its_own_mode() {
        // A plugin links a private file under a temporary name and renames
        // that over a public one: the private file must not become public.
        let root = tempfile::tempdir().unwrap();
        let (private, public) = (root.path().join("private"), root.path().join("public"));
        std::fs::write(&private, "key").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::write(&public, "").unwrap();
        std::fs::set_permissions(&public, std::fs::Permissions::from_mode(0o644)).unwrap();
        std::fs::hard_link(&private, root.path().join("tmp")).unwrap();
        let granted = dir(root.path());
        assert_eq!(
            keep_mode_and_owner(&granted, "tmp", &granted, "public").err(),
            Some(Refusal::Linked)
        );
        assert_eq!(std::fs::metadata(&private).unwrap().mode() & 0o7777, 0o600);
    }

    #[test]
    fn a_failed_rename_puts_the_mode_and_owner_back() {
        let root = tempfile::tempdir().unwrap();
        let (users, temp) = (root.path().join("users"), root.path().join("users.tmp"));
        std::fs::write(&users, "old").unwrap();
        std::fs::write(&temp, "new").unwrap();
        std::fs::set_permissions(&users, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o644)).unwrap();
        let granted = dir(root.path());
        let undo = keep_mode_and_owner(&granted, "users.tmp", &granted, "users")
            .unwrap()
            .expect("something to put back");
        assert_eq!(std::fs::metadata(&temp).unwrap().mode() & 0o7777, 0o600);
        undo.restore();
        assert_eq!(std::fs::metadata(&temp).unwrap().mode() & 0o7777, 0o644);
    }

    #[test]
    fn a_refusal_of_policy_is_a_denial_and_not_permitted() {
        let denials = crate::denials::DenialLog::new("htpasswd".into(), "web/".into());
        let refused = Refusal::Owner { uid: 0, gid: 0 }.error_code(&denials, "users\nforged");
        assert!(matches!(refused, ErrorCode::NotPermitted));
        let recorded = denials.refused();
        assert_eq!(recorded.len(), 1);
        assert!(recorded[0].contains("owner from 0:0"), "{recorded:?}");
        assert!(!recorded[0].contains('\n'), "{recorded:?}");

        // A failure of the system is passed on as itself, and is no denial.
        let failed = Refusal::Os(Errno::IO).error_code(&denials, "users");
        assert!(matches!(failed, ErrorCode::Io));
        assert_eq!(denials.refused().len(), 1);
    }

    #[test]
    fn an_owner_that_cannot_be_kept_refuses_the_rename() {
        let root = tempfile::tempdir().unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let temp = root.path().join("users.tmp");
        std::fs::write(&temp, "new").unwrap();
        std::fs::set_permissions(&temp, std::fs::Permissions::from_mode(0o644)).unwrap();
        let root_as_root = is_root();
        if root_as_root {
            std::os::unix::fs::chown(&temp, Some(65534), Some(65534)).unwrap();
        }
        let (granted, etc) = (dir(root.path()), dir(Path::new("/etc")));
        let passwd = std::fs::metadata("/etc/passwd").unwrap();

        // `/etc/passwd` belongs to root. Run as nobody (credentials are per thread
        // in Linux, so only this thread gives up root), the broker cannot hand that
        // owner to a file.
        let refused = std::thread::spawn(move || {
            if root_as_root {
                rustix::thread::set_thread_res_gid(
                    Gid::from_raw(65534),
                    Gid::from_raw(65534),
                    Gid::from_raw(65534),
                )
                .unwrap();
                rustix::thread::set_thread_res_uid(
                    Uid::from_raw(65534),
                    Uid::from_raw(65534),
                    Uid::from_raw(65534),
                )
                .unwrap();
            }
            keep_mode_and_owner(&granted, "users.tmp", &etc, "passwd")
        })
        .join()
        .unwrap();

        assert_eq!(
            refused.err(),
            Some(Refusal::Owner {
                uid: passwd.uid(),
                gid: passwd.gid()
            })
        );
        assert_eq!(std::fs::metadata(&temp).unwrap().mode() & 0o7777, 0o644);
    }
}
