//! Watching the desired-state directory for changes, including the two ways files are replaced
//! in practice: editors that save through a temporary file and a rename (an event in the
//! directory itself), and git-sync, which swaps a symlink to a new checkout atomically (an event in
//! the directory that holds the link, not in the old target, which is simply abandoned).
//!
//! So the watch set is: the directory's resolved target, the directory's parent, and the parent of
//! every symlink on the directory's path. [`DirWatch::refresh`] recomputes the set after each wake
//! (the link may point elsewhere now). An event wakes the loop only if it is about a `*.toml` file
//! of the target or about one of the watched names (the directory, a symlink on its path): the
//! parent may hold busy files such as the daemon's own log. The loop then re-reads every file
//! (level-triggered); events are not interpreted further.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;

/// The watcher and what it watches now.
pub(super) struct DirWatch {
    dir: PathBuf,
    watcher: Option<RecommendedWatcher>,
    watched: BTreeSet<PathBuf>,
    interest: Arc<Mutex<Interest>>,
}

/// Which events wake the loop.
#[derive(Debug, Default)]
struct Interest {
    /// The resolved directory: events on its `*.toml` files.
    target: Option<PathBuf>,
    /// Names watched in parent directories: the directory's own, symlinks' on its path.
    names: BTreeSet<OsString>,
}

impl Interest {
    fn wants(&self, event: &notify::Event) -> bool {
        // Opening and reading (our own scans among them) changes nothing.
        if matches!(event.kind, notify::EventKind::Access(_)) {
            return false;
        }
        event.need_rescan()
            || event.paths.is_empty()
            || event.paths.iter().any(|p| {
                let toml = p.extension().is_some_and(|e| e == "toml");
                (toml && self.target.as_deref().is_some_and(|t| p.parent() == Some(t)))
                    || p.file_name().is_some_and(|n| self.names.contains(n))
            })
    }
}

impl DirWatch {
    /// Starts watching `dir`; events send `()` on `wake`. A watcher that cannot be created is
    /// logged and the daemon relies on its periodic resync.
    pub(super) fn new(dir: &Path, wake: UnboundedSender<()>) -> Self {
        let interest = Arc::new(Mutex::new(Interest::default()));
        let filter = Arc::clone(&interest);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                if filter.lock().is_ok_and(|i| i.wants(&event)) {
                    tracing::debug!(paths = ?event.paths, kind = ?event.kind, "file event");
                    let _ = wake.send(());
                }
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
            interest,
        };
        w.refresh();
        w
    }

    /// Re-resolves the directory (a symlink may point to a new checkout) and adjusts the watches.
    pub(super) fn refresh(&mut self) {
        let Some(watcher) = self.watcher.as_mut() else { return };
        let want = wanted(&self.dir);
        if let Ok(mut i) = self.interest.lock() {
            i.target = std::fs::canonicalize(&self.dir).ok();
            i.names = self
                .dir
                .ancestors()
                .filter(|a| *a == self.dir || std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink()))
                .filter_map(|a| a.file_name().map(ToOwned::to_owned))
                .collect();
        }
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
        if std::fs::symlink_metadata(a).is_ok_and(|m| m.file_type().is_symlink())
            && let Some(parent) = a.parent()
        {
            set.insert(parent.to_owned());
        }
    }
    set
}
