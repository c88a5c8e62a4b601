//! Durable file writes: a file replaced so that a reader — or a process restarted after a crash or
//! a power loss — sees the old content or the new, never a mix, and a new file or a rename that
//! survives a power loss once the call returned.
//!
//! Why this module exists: status documents, the directory store's cluster files (md templates,
//! the pending-resume marker), the kept `clp.conf` copies and the lab's persisted worlds all need
//! it, and such code is easy to get subtly different. One policy for all of them:
//! - the temporary file sits beside the target (a rename never crosses file systems) and its name
//!   carries the process id, so two processes never write one temporary file;
//! - the file is fsync'd before the rename, the directory after it (on Linux that makes the
//!   rename itself durable);
//! - a failed directory fsync is an error like any other: the caller must not report as durable a
//!   write that a power loss could undo.
//!
//! One exception, [`replace_atomic`]: the same replacement without the two fsyncs, for the lab's
//! simulated worlds. They are saved after every simulated call (a dozen per look at a cluster),
//! and on a busy disk each fsync pair costs milliseconds to tens of milliseconds (8 ms median
//! measured on the shared build machine): a daemon's pass waited more on saving its simulation
//! than on anything it does. A killed process (the chaos campaign's `SIGKILL`) loses nothing
//! without them — the page cache outlives it — only a power loss may take a lab world back a few
//! calls, which a simulation can afford.

use std::fs::{self, File, Metadata};
use std::io::{self, Write as _};
use std::path::Path;

/// Replaces `path` with `body` atomically and durably (the module's policy); creates the parent
/// directory when missing. Returns the metadata of the file written (after the rename, `path`'s
/// own: same inode, same modification time).
pub fn replace(path: &Path, body: &[u8]) -> io::Result<Metadata> {
    write_then_rename(path, body, true)
}

/// Replaces `path` with `body` atomically but not durably: readers and a process started after
/// this one was killed see the old content or the new, never a mix; a power loss may undo the
/// write. Only for the lab's simulated worlds (see the module's documentation).
pub fn replace_atomic(path: &Path, body: &[u8]) -> io::Result<Metadata> {
    write_then_rename(path, body, false)
}

/// [`replace`], with the fsyncs (`durable`) or without.
fn write_then_rename(path: &Path, body: &[u8], durable: bool) -> io::Result<Metadata> {
    let dir = parent(path);
    fs::create_dir_all(dir)?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = dir.join(tmp_name);
    let written = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(body)?;
        if durable {
            f.sync_all()?;
        }
        f.metadata()
    })();
    let written = match written.and_then(|m| fs::rename(&tmp, path).map(|()| m)) {
        Ok(m) => m,
        Err(e) => {
            let _ = fs::remove_file(&tmp);
            return Err(e);
        }
    };
    if durable {
        sync_dir(dir)?;
    }
    Ok(written)
}

/// Makes the entries of `dir` (a file created, renamed or removed in it) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The directory `path` is in (`.` for a bare file name).
fn parent(path: &Path) -> &Path {
    path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replace_leaves_only_the_new_content_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub").join("doc.json");
        replace(&path, b"old").unwrap();
        let meta = replace(&path, b"new").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"new");
        assert_eq!(meta.len(), 3);
        let names: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("doc.json")]);
    }

    #[test]
    fn an_atomic_replace_leaves_the_new_content_under_the_same_name_and_no_temporary_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("world.json");
        replace_atomic(&path, b"old").unwrap();
        let meta = replace_atomic(&path, b"newer").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"newer");
        assert_eq!(meta.len(), 5);
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("world.json")]);
    }

    #[test]
    fn a_failed_write_keeps_the_old_file_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("doc.json");
        replace(&path, b"old").unwrap();
        // The target is now a non-empty directory: the rename fails, the old content stays.
        let blocked = dir.path().join("blocked");
        fs::create_dir_all(blocked.join("inside")).unwrap();
        assert!(replace(&blocked, b"x").is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old");
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| Path::new(n).extension().is_some_and(|e| e == "tmp"))
            .collect();
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn syncing_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        assert!(sync_dir(&dir.path().join("gone")).is_err());
    }
}
