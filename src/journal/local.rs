//! The local directory store: today's layout, behind the [`Store`] trait.
//!
//! Why this module exists: one host with one state directory is the default and needs nothing
//! else to run. It is files only (no network), so it stands beside the journal files it writes,
//! below the reconcile loop and the daemon, which default to it. Layout under the state directory:
//!
//! - `journal/<cluster>.jsonl`: the journal, one JSON record per line, fsync'd per append
//!   ([`crate::journal::append_file`]);
//! - `journal/<cluster>.lock`: the lease, an exclusive `flock` ([`WriterLock`]) held by the one
//!   process reconciling the cluster; the kernel drops it when that process dies, so it needs no
//!   heartbeat and has no duration, and its epoch is always 0 (no one can take it over while it
//!   is held: the fence is the lock itself);
//! - `status/<cluster>.json`: the status document, written atomically
//!   ([`StatusDoc::write`]);
//! - `clpconf/<cluster>/<name>`: the cluster files of [`Store::read_cluster_file`] (the md
//!   template, the pending-resume marker), beside the `clp.conf` copies the command adapter keeps
//!   there, each replaced atomically (temp file, fsync, rename, fsync of the directory).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::ids::ClusterName;
use crate::journal::{JournalError, Record, append_file, read_file};
use crate::ports::store::{Lease, Store, StoreError};
use crate::status::StatusDoc;

/// The state directory as a [`Store`].
#[derive(Debug, Clone)]
pub struct LocalStore {
    dir: PathBuf,
}

impl LocalStore {
    /// The store under `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> LocalStore {
        LocalStore { dir: dir.into() }
    }

    /// The state directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn status_dir(&self) -> PathBuf {
        self.dir.join("status")
    }
}

fn file_io(what: &str, path: &Path, source: &std::io::Error) -> StoreError {
    StoreError::Failed {
        store: "local".into(),
        action: format!("{what} {}", path.display()),
        message: source.to_string(),
        retryable: false,
    }
}

impl LocalStore {
    /// The path of the cluster file `name` of `cluster` (refused unless a plain file name).
    fn cluster_file(&self, cluster: &ClusterName, name: &str) -> Result<PathBuf, StoreError> {
        if !crate::ports::store::valid_cluster_file(name) {
            return Err(StoreError::Failed {
                store: "local".into(),
                action: format!("naming cluster file {name:?}"),
                message: "not a plain file name".into(),
                retryable: false,
            });
        }
        Ok(self.dir.join("clpconf").join(cluster.as_str()).join(name))
    }
}

/// Makes a rename or removal in `dir` durable (best effort).
fn status_io(what: &str, path: &Path, source: &std::io::Error) -> StoreError {
    StoreError::Failed {
        store: "local".into(),
        action: format!("{what} status {}", path.display()),
        message: source.to_string(),
        retryable: false,
    }
}

#[async_trait::async_trait]
impl Store for LocalStore {
    fn name(&self) -> String {
        format!("dir:{}", self.dir.display())
    }

    async fn acquire(&self, cluster: &ClusterName) -> Result<Lease, StoreError> {
        let lock = WriterLock::acquire(&self.dir, cluster)?;
        let holder = lock.holder().to_owned();
        Ok(Lease::new(cluster.clone(), holder, 0, String::new(), None, tokio::time::Instant::now()).with_guard(lock))
    }

    async fn holder(&self, cluster: &ClusterName) -> Result<Option<String>, StoreError> {
        Ok(WriterLock::holder_of(&self.dir, cluster))
    }

    async fn renew(&self, _lease: &Lease) -> Result<(), StoreError> {
        // The lock lasts as long as its file is open: nothing to prove.
        Ok(())
    }

    async fn release(&self, _lease: &Lease) -> Result<(), StoreError> {
        // Dropping the lease closes the lock file, which releases the lock.
        Ok(())
    }

    async fn read_journal(&self, cluster: &ClusterName) -> Result<Vec<Record>, StoreError> {
        Ok(read_file(&crate::journal::path_for(&self.dir, cluster))?)
    }

    async fn append(&self, lease: &Lease, _position: u64, record: &Record) -> Result<(), StoreError> {
        // Holding the lease means holding the flock: no one else appends meanwhile.
        Ok(append_file(&crate::journal::path_for(&self.dir, &lease.cluster), record)?)
    }

    async fn write_status(&self, doc: &StatusDoc, _lease: Option<&Lease>) -> Result<(), StoreError> {
        let path = StatusDoc::path_for(&self.dir, &doc.cluster);
        doc.write(&path).map_err(|e| status_io("writing", &path, &e))
    }

    async fn read_status(&self, cluster: &ClusterName) -> Result<Option<StatusDoc>, StoreError> {
        let path = StatusDoc::path_for(&self.dir, cluster);
        if !path.exists() {
            return Ok(None);
        }
        StatusDoc::read(&path).map(Some).map_err(|e| status_io("reading", &path, &e))
    }

    async fn read_cluster_file(&self, cluster: &ClusterName, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.cluster_file(cluster, name)?;
        match std::fs::read(&path) {
            Ok(body) => Ok(Some(body)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(file_io("reading", &path, &e)),
        }
    }

    async fn write_cluster_file(&self, cluster: &ClusterName, name: &str, body: &[u8]) -> Result<(), StoreError> {
        let path = self.cluster_file(cluster, name)?;
        crate::durable::replace(&path, body).map_err(|e| file_io("writing", &path, &e))?;
        Ok(())
    }

    async fn remove_cluster_file(&self, cluster: &ClusterName, name: &str) -> Result<(), StoreError> {
        let path = self.cluster_file(cluster, name)?;
        match std::fs::remove_file(&path) {
            Ok(()) => match path.parent() {
                Some(dir) => crate::durable::sync_dir(dir).map_err(|e| file_io("removing", &path, &e)),
                None => Ok(()),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(file_io("removing", &path, &e)),
        }
    }

    async fn list_status(&self) -> Result<Vec<StatusDoc>, StoreError> {
        let mut paths: Vec<_> = std::fs::read_dir(self.status_dir())
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        paths.into_iter().map(|path| StatusDoc::read(&path).map_err(|e| status_io("reading", &path, &e))).collect()
    }
}

/// The cluster's writer lock (see the module doc); released when dropped.
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
    holder: String,
}

impl WriterLock {
    /// The lock file of `cluster`: `<state>/journal/<cluster>.lock`.
    pub fn path_for(state_dir: &Path, cluster: &ClusterName) -> PathBuf {
        state_dir.join("journal").join(format!("{cluster}.lock"))
    }

    /// Takes `cluster`'s writer lock without waiting; [`StoreError::Busy`] when another holds it.
    pub fn acquire(state_dir: &Path, cluster: &ClusterName) -> Result<WriterLock, StoreError> {
        Self::take(&Self::path_for(state_dir, cluster), |holder| StoreError::Busy {
            cluster: cluster.clone(),
            holder,
            retry_in: None,
        })
    }

    /// Takes the daemon's lock on `state_dir` (`<state>/daemon.lock`), held for the daemon's life:
    /// one daemon per state directory ([`JournalError::DaemonBusy`] otherwise).
    pub fn daemon(state_dir: &Path) -> Result<WriterLock, JournalError> {
        Self::take(&state_dir.join("daemon.lock"), |holder| JournalError::DaemonBusy {
            state_dir: state_dir.to_owned(),
            holder,
        })
    }

    /// Who holds `cluster`'s writer lock now, as the holder wrote it ("pid N on HOST since T");
    /// `None` when nobody does. Read-only: it never takes the lock, so asking cannot turn a writer
    /// starting at the same moment away. A holder on this host is alive when its pid runs a
    /// `mirrorctl`; a holder on another host (a shared state directory) is taken to be alive.
    pub(crate) fn holder_of(state_dir: &Path, cluster: &ClusterName) -> Option<String> {
        let text = std::fs::read_to_string(Self::path_for(state_dir, cluster)).ok()?;
        let text = text.trim().to_owned();
        let mut words = text.split_whitespace();
        let (Some("pid"), Some(pid), Some("on"), Some(host)) = (words.next(), words.next(), words.next(), words.next())
        else {
            return None;
        };
        let here = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        if host != here.trim() {
            return Some(text);
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        String::from_utf8_lossy(&cmdline).contains("mirrorctl").then_some(text)
    }

    /// What the lock file says about its holder (pid, host, since when).
    pub fn holder(&self) -> &str {
        &self.holder
    }

    fn take<E: From<JournalError>>(path: &Path, busy: impl FnOnce(String) -> E) -> Result<WriterLock, E> {
        let path = path.to_owned();
        let io = |source| JournalError::Io { path: path.clone(), source };
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let mut file =
            OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let holder = std::fs::read_to_string(&path).unwrap_or_default().trim().to_owned();
                let holder = if holder.is_empty() { "holder unknown".to_owned() } else { holder };
                return Err(busy(holder));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e).into()),
        }
        // Who holds it, for the message a refused writer prints (best effort: the lock is what
        // counts, not the text).
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
        let me = format!("pid {} on {} since {}", std::process::id(), host.trim(), Timestamp::now());
        let _ = file.set_len(0).and_then(|()| {
            use std::io::Seek as _;
            file.seek(std::io::SeekFrom::Start(0))?;
            file.write_all(me.as_bytes())
        });
        Ok(WriterLock { _file: file, holder: me })
    }
}
