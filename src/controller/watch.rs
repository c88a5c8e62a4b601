//! Watching the desired-state directory for changes, including the two ways files are replaced
//! in practice: editors that save through a temporary file and a rename (an event in the
//! directory itself), and git-sync, which swaps a symlink to a new checkout atomically (an event in
//! the directory that holds the link, not in the old target, which is simply abandoned).
//!
//! So the watch set is: the directory's resolved target, the directory's parent, and the parent of
//! every symlink on the directory's path. [`DirWatch::refresh`] recomputes the set after each wake
//! (the link may point elsewhere now). An event wakes the loop only if it is about a `*.toml` file
//! of the target or about one of the watched names (the directory, a symlink on its path): the
//! parent may hold busy files such as the daemon's own log. The loop then re-reads the touched
//! files (level-triggered).
//!
//! Events are interpreted for one thing only: **when the burst is over**, so that a file is read
//! once, whole, and a finished save is not kept waiting ([`Burst`]). inotify (inotify(7)) says when
//! a file opened for writing is closed (`IN_CLOSE_WRITE`) and when one is renamed into place
//! (`IN_MOVED_TO`), and rename(2) replaces the target atomically: after either, the file is whole.
//! A desired-state file created, written, moved away or removed is *unsettled*: more events are due
//! (an editor that moves the old file aside writes the new one next: vim's `backupcopy=auto`, its
//! default on Unix, does so for a file with one link, `:help 'backupcopy'`). The loop reads the
//! directory a short quiet window after the last event once no file is unsettled, and never later
//! than the debounce after the first event (a writer that keeps a file open, or a file removed for
//! good).

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher as _};
use tokio::sync::mpsc::UnboundedSender;
use tokio::time::Instant;

/// What one file event says, for [`Burst`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Touch {
    /// This desired-state file is being written, or was moved away or removed: more is due.
    Unsettled(PathBuf),
    /// This desired-state file is whole: closed after writing, or renamed into place.
    Settled(PathBuf),
    /// Anything else (the directory, a symlink on its path, a hidden file, a lost event, a worker
    /// that ended): a reason to look, nothing to wait for.
    Other,
}

/// The events of one burst, from its first: when the directory is to be read.
#[derive(Debug)]
pub(super) struct Burst {
    first: Instant,
    last: Instant,
    unsettled: BTreeSet<PathBuf>,
}

impl Burst {
    /// A burst whose first event, `touch`, came `at`.
    pub(super) fn new(at: Instant, touch: Touch) -> Burst {
        let mut b = Burst { first: at, last: at, unsettled: BTreeSet::new() };
        b.add(at, touch);
        b
    }

    /// One more event, `at`.
    pub(super) fn add(&mut self, at: Instant, touch: Touch) {
        self.last = self.last.max(at);
        match touch {
            Touch::Unsettled(p) => {
                self.unsettled.insert(p);
            }
            Touch::Settled(p) => {
                self.unsettled.remove(&p);
            }
            Touch::Other => {}
        }
    }

    /// When to read: `quiet` after the last event when no file is unsettled, and at the latest
    /// `longest` after the first.
    pub(super) fn read_at(&self, quiet: Duration, longest: Duration) -> Instant {
        let cap = self.first + longest;
        if self.unsettled.is_empty() { (self.last + quiet).min(cap) } else { cap }
    }
}

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
    /// What `event` says: nothing (it does not wake the loop), or one touch per path it names.
    fn touches(&self, event: &notify::Event) -> Vec<Touch> {
        use notify::EventKind::{Access, Create, Modify, Remove};
        use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
        let closed = matches!(event.kind, Access(AccessKind::Close(AccessMode::Write)));
        // Opening and reading (our own scans among them) changes nothing; closing a write ends it.
        if matches!(event.kind, Access(_)) && !closed {
            return Vec::new();
        }
        if event.need_rescan() || event.paths.is_empty() {
            return vec![Touch::Other];
        }
        let last = event.paths.len() - 1;
        let mut out = Vec::new();
        for (i, p) in event.paths.iter().enumerate() {
            let toml = p.extension().is_some_and(|e| e == "toml");
            if toml && self.target.as_deref().is_some_and(|t| p.parent() == Some(t)) {
                // Hidden files are no desired state (`list`): an editor's temporary file.
                let hidden = p.file_name().and_then(|n| n.to_str()).is_none_or(|n| n.starts_with('.'));
                let settled = match event.kind {
                    Access(_) | Modify(ModifyKind::Name(RenameMode::To)) => Some(true),
                    // A rename's one event names the old path, then the new one.
                    Modify(ModifyKind::Name(RenameMode::Both)) => Some(i == last),
                    Create(_) | Remove(_) | Modify(ModifyKind::Data(_) | ModifyKind::Name(_) | ModifyKind::Any) => {
                        Some(false)
                    }
                    _ => None,
                };
                out.push(match settled {
                    Some(true) if !hidden => Touch::Settled(p.clone()),
                    Some(false) if !hidden => Touch::Unsettled(p.clone()),
                    _ => Touch::Other,
                });
            } else if !closed && p.file_name().is_some_and(|n| self.names.contains(n)) {
                out.push(Touch::Other);
            }
        }
        out
    }
}

impl DirWatch {
    /// Starts watching `dir`; events send their [`Touch`]es on `wake`. A watcher that cannot be
    /// created is logged and the daemon relies on its periodic resync.
    pub(super) fn new(dir: &Path, wake: UnboundedSender<Touch>) -> Self {
        let interest = Arc::new(Mutex::new(Interest::default()));
        let filter = Arc::clone(&interest);
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| match res {
            Ok(event) => {
                let touches = filter.lock().map(|i| i.touches(&event)).unwrap_or_default();
                if !touches.is_empty() {
                    tracing::debug!(paths = ?event.paths, kind = ?event.kind, "file event");
                }
                for t in touches {
                    let _ = wake.send(t);
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

#[cfg(test)]
mod tests {
    use notify::event::{AccessKind, AccessMode, CreateKind, DataChange, MetadataKind, ModifyKind, RenameMode};
    use notify::{Event, EventKind};

    use super::*;

    const QUIET: Duration = Duration::from_millis(20);
    const LONGEST: Duration = Duration::from_millis(100);

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_save_by_rename_is_read_after_the_quiet_window_not_the_debounce() {
        let t0 = Instant::now();
        let file = PathBuf::from("/d/c.toml");
        let mut b = Burst::new(t0, Touch::Settled(file.clone()));
        assert_eq!(b.read_at(QUIET, LONGEST), t0 + QUIET);
        // Each event of the burst moves the read on, up to the debounce after the first.
        b.add(t0 + ms(15), Touch::Other);
        assert_eq!(b.read_at(QUIET, LONGEST), t0 + ms(35));
        b.add(t0 + ms(90), Touch::Settled(file));
        assert_eq!(b.read_at(QUIET, LONGEST), t0 + LONGEST);
    }

    #[test]
    fn a_file_written_in_pieces_is_read_once_after_it_is_closed() {
        let t0 = Instant::now();
        let file = PathBuf::from("/d/c.toml");
        let longest = Duration::from_secs(1);
        // Created, then written twice with pauses longer than the quiet window.
        let mut b = Burst::new(t0, Touch::Unsettled(file.clone()));
        b.add(t0 + ms(30), Touch::Unsettled(file.clone()));
        b.add(t0 + ms(70), Touch::Unsettled(file.clone()));
        assert_eq!(b.read_at(QUIET, longest), t0 + longest, "not read while open");
        b.add(t0 + ms(80), Touch::Settled(file));
        assert_eq!(b.read_at(QUIET, longest), t0 + ms(100));
    }

    #[test]
    fn an_editor_that_moves_the_old_file_aside_is_waited_for() {
        // vim's default save: the old file renamed away, a new one created, written and closed.
        let t0 = Instant::now();
        let (file, other) = (PathBuf::from("/d/c.toml"), PathBuf::from("/d/b.toml"));
        let mut b = Burst::new(t0, Touch::Unsettled(file.clone()));
        assert_eq!(b.read_at(QUIET, LONGEST), t0 + LONGEST, "the file is missing now, not removed");
        b.add(t0 + ms(25), Touch::Unsettled(file.clone()));
        b.add(t0 + ms(26), Touch::Settled(other));
        assert_eq!(b.read_at(QUIET, LONGEST), t0 + LONGEST, "another file's close does not end this one");
        b.add(t0 + ms(30), Touch::Settled(file));
        assert_eq!(b.read_at(QUIET, LONGEST), t0 + ms(50));
    }

    fn interest() -> Interest {
        Interest { target: Some(PathBuf::from("/p/d")), names: [OsString::from("d")].into_iter().collect() }
    }

    fn event(kind: EventKind, paths: &[&str]) -> Event {
        paths.iter().fold(Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
    }

    #[test]
    fn events_are_classified_by_what_they_say_about_a_desired_state_file() {
        let i = interest();
        let file = || PathBuf::from("/p/d/c.toml");
        let cases = [
            // Temp file renamed into place: the temp (another extension) is no concern.
            (
                event(EventKind::Modify(ModifyKind::Name(RenameMode::To)), &["/p/d/c.toml"]),
                vec![Touch::Settled(file())],
            ),
            (
                event(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &["/p/d/.c.toml.tmp", "/p/d/c.toml"]),
                vec![Touch::Settled(file())],
            ),
            // Written in place.
            (event(EventKind::Create(CreateKind::File), &["/p/d/c.toml"]), vec![Touch::Unsettled(file())]),
            (
                event(EventKind::Modify(ModifyKind::Data(DataChange::Any)), &["/p/d/c.toml"]),
                vec![Touch::Unsettled(file())],
            ),
            (
                event(EventKind::Access(AccessKind::Close(AccessMode::Write)), &["/p/d/c.toml"]),
                vec![Touch::Settled(file())],
            ),
            // Moved aside (vim) or removed: missing for now.
            (
                event(EventKind::Modify(ModifyKind::Name(RenameMode::Both)), &["/p/d/c.toml", "/p/d/c.toml~"]),
                vec![Touch::Unsettled(file())],
            ),
            (
                event(EventKind::Remove(notify::event::RemoveKind::File), &["/p/d/c.toml"]),
                vec![Touch::Unsettled(file())],
            ),
            // A change of mode, a hidden file, the directory itself, a lost event: look, wait for nothing.
            (event(EventKind::Modify(ModifyKind::Metadata(MetadataKind::Any)), &["/p/d/c.toml"]), vec![Touch::Other]),
            (event(EventKind::Create(CreateKind::File), &["/p/d/.c.toml"]), vec![Touch::Other]),
            (event(EventKind::Modify(ModifyKind::Name(RenameMode::To)), &["/p/d"]), vec![Touch::Other]),
            (Event::new(EventKind::Other).set_flag(notify::event::Flag::Rescan), vec![Touch::Other]),
            // Reads (ours among them), the parent's other files, other extensions: nothing.
            (event(EventKind::Access(AccessKind::Open(AccessMode::Any)), &["/p/d/c.toml"]), vec![]),
            (event(EventKind::Access(AccessKind::Close(AccessMode::Read)), &["/p/d/c.toml"]), vec![]),
            (event(EventKind::Modify(ModifyKind::Data(DataChange::Any)), &["/p/daemon.log"]), vec![]),
            (event(EventKind::Create(CreateKind::File), &["/p/d/c.toml.swp"]), vec![]),
        ];
        for (e, want) in cases {
            assert_eq!(i.touches(&e), want, "{e:?}");
        }
    }

    /// The OS's events, through the watcher, as the bursts see them (real time: the watcher's
    /// thread; each wait gives up after 30 s).
    #[tokio::test]
    async fn the_watcher_reports_a_rename_into_place_and_a_closed_write_as_settled() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("d");
        std::fs::create_dir(&dir).unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let _watch = DirWatch::new(&dir, tx);
        let target = std::fs::canonicalize(&dir).unwrap().join("c.toml");
        // Events up to the first settled touch of the file (after an unsettled one, with `written`).
        let until_settled = async |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Touch>, written: bool| {
            let mut seen = Vec::new();
            loop {
                let t = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await.expect("an event").unwrap();
                seen.push(t.clone());
                if t == Touch::Settled(target.clone()) && (!written || seen.contains(&Touch::Unsettled(target.clone())))
                {
                    return seen;
                }
            }
        };
        std::fs::write(dir.join(".c.toml.tmp"), "x = 1\n").unwrap();
        std::fs::rename(dir.join(".c.toml.tmp"), dir.join("c.toml")).unwrap();
        let seen = until_settled(&mut rx, false).await;
        assert_eq!(seen, vec![Touch::Settled(target.clone())], "a rename into place is whole at once");
        // Written in place: unsettled while written, settled when closed.
        std::fs::write(dir.join("c.toml"), "x = 2\n").unwrap();
        until_settled(&mut rx, true).await;
    }
}
