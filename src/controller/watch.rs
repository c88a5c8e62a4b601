//! Watching the desired-state directory for changes, including the two ways files are replaced
//! in practice: editors that save through a temporary file and a rename (an event in the
//! directory itself), and git-sync, which swaps a symlink to a new checkout atomically (an event in
//! the directory that holds the link, not in the old target, which is simply abandoned).
//!
//! So the watch set is: the directory's resolved target, the directory's parent, and the parent of
//! every symlink on the directory's path. [`DirWatch::refresh`] recomputes the set after each wake
//! (the link may point elsewhere now). Events are not interpreted: any event only wakes the loop,
//! which re-reads the files (level-triggered).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;

/// The watcher and what it watches now.
pub(super) struct DirWatch {
    dir: PathBuf,
    watcher: Option<RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
}

impl DirWatch {
    /// Starts watching `dir`; events send `()` on `wake`. A watcher that cannot be created is
    /// logged and the daemon relies on its periodic resync.
    pub(super) fn new(dir: &Path, wake: UnboundedSender<()>) -> Self {
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(_) => {
                let _ = wake.send(());
            }
            Err(e) => tracing::warn!(error = %e, "file watch error; the periodic resync covers it"),
        });
        let watcher = match watcher {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch files; relying on the periodic resync");
                None
            }
        };
        let mut w = DirWatch {
            dir: std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned()),
            watcher,
            watched: BTreeSet::new(),
        };
        w.refresh();
        w
    }

    /// Re-resolves the directory (a symlink may point to a new checkout) and adjusts the watches.
    pub(super) fn refresh(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else { return };
        let want = wanted(&self.dir);
        for gone in self.watched.difference(&want).cloned().collect::<Vec<_>>() {
            let _ = watcher.unwatch(&gone);
            self.watched.remove(&gone);
        }
        for p in want {
            if self.watched.contains(&p) {
                continue;
            }
            match watcher.watch(&p, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(path = %p.display(), "watching");
                    self.watched.insert(p);
                }
                Err(e) => tracing::debug!(path = %p.display(), error = %e, "cannot watch (yet)"),
            }
        }
    }
}

/// The directories to watch for `dir` (absolute).
fn wanted(dir: &Path) -> BTreeSet<PathBuf> {
    let mut set = BTreeSet::new();
    if let Ok(target) = std::fs::canonicalize(dir) {
        set.insert(target);
    }
    if let Some(parent) = dir.parent() {
        set.insert(parent.to_owned());
    }
    for a in dir.ancestors() {
        if std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()) {
            if let Some(parent) = a.parent() {
                set.insert(parent.to_owned());
            }
        }
    }
    set
}
