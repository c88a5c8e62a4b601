//! Saving and loading the world file.
//!
//! Why this module exists: `mirrorctl run --world lab` and the kill -9 tests need the simulated
//! AWS to survive the process. The world is one JSON document written atomically (temp file,
//! fsync, rename, fsync of the directory), so a crash leaves either the old or the new world,
//! never half of one.

use std::fs;
use std::io::Write;
use std::path::Path;

use super::SimError;
use super::world::World;

/// Writes `world` to `path` atomically.
pub(super) fn save(path: &Path, world: &World) -> Result<(), SimError> {
    let io = |source| SimError::Io { path: path.to_owned(), source };
    let bytes = serde_json::to_vec(world).map_err(|source| SimError::Format { path: path.to_owned(), source })?;
    let mut tmp_name = path.file_name().map(std::ffi::OsStr::to_os_string).unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    {
        let mut f = fs::File::create(&tmp).map_err(io)?;
        f.write_all(&bytes).map_err(io)?;
        f.sync_all().map_err(io)?;
    }
    fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        // Best effort: makes the rename itself durable on Linux.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Reads a world written by [`save`].
pub(super) fn load(path: &Path) -> Result<World, SimError> {
    let bytes = fs::read(path).map_err(|source| SimError::Io { path: path.to_owned(), source })?;
    serde_json::from_slice(&bytes).map_err(|source| SimError::Format { path: path.to_owned(), source })
}
