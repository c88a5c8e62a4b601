//! Saving and loading the world file.
//!
//! Why this module exists: `mirrorctl run --world lab` and the kill -9 tests need the simulated
//! AWS to survive the process. The world is one JSON document written atomically (temp file,
//! rename), so a killed process leaves either the old or the new world, never half of one. It is
//! not fsync'd: it is saved after every simulated call, and the fsyncs made a daemon's pass on a
//! busy disk wait mostly on them ([`crate::durable::replace_atomic`]); a power loss may take a
//! world back a few calls.
//!
//! Several processes may share one world file: two daemons standing for two hosts act on the same
//! simulated AWS (`mirrorctl run --lab-dir`), one at a time per cluster under the cluster's lease.
//! Each save names its temp file after the process, and returns the [`Stamp`] of what it wrote, so
//! a process can tell its own last write from another process's ([`stamp`]) and reload the world
//! before acting on it.

use std::fs;
use std::path::Path;

use super::SimError;
use super::world::World;

/// What tells one version of the world file from another without reading it: device, inode,
/// modification time (nanoseconds) and size. Every save is a new file renamed into place, so a
/// save by any process changes the inode; the time and size guard against a reused inode number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    inode: (u64, u64),
    modified: i128,
    len: u64,
}

impl Stamp {
    fn of(m: &fs::Metadata) -> Stamp {
        use std::os::unix::fs::MetadataExt as _;
        Stamp {
            inode: (m.dev(), m.ino()),
            modified: i128::from(m.mtime()) * 1_000_000_000 + i128::from(m.mtime_nsec()),
            len: m.len(),
        }
    }
}

/// The stamp of the world file at `path` now; `None` when it cannot be read.
pub(super) fn stamp(path: &Path) -> Option<Stamp> {
    fs::metadata(path).ok().map(|m| Stamp::of(&m))
}

/// Writes `world` to `path` atomically; the stamp of the file written.
pub(super) fn save(path: &Path, world: &World) -> Result<Stamp, SimError> {
    let io = |source| SimError::Io { path: path.to_owned(), source };
    let bytes = serde_json::to_vec(world).map_err(|source| SimError::Format { path: path.to_owned(), source })?;
    // A rename keeps the inode and the modification time: this is the stamp of `path` next.
    crate::durable::replace_atomic(path, &bytes).map(|m| Stamp::of(&m)).map_err(io)
}

/// Reads a world written by [`save`].
pub(super) fn load(path: &Path) -> Result<World, SimError> {
    let bytes = fs::read(path).map_err(|source| SimError::Io { path: path.to_owned(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| SimError::Format { path: path.to_owned(), source })
}
