//! The journal of one cluster over its [`Store`]: read once, appended durably, every append
//! fenced by the cluster's lease.
//!
//! Why this module exists: the records and their replay ([`super`]) are what the store port
//! carries, so they sit below it; the writer uses the port, so it sits above it (see the floors in
//! the crate's module doc).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{JournalError, JournalView, Record, path_for};
use jiff::Timestamp;

use crate::ids::ClusterName;
use crate::ports::store::{Lease, Store, StoreError};

/// One cluster's journal as read from its [`Store`], plus the lease its appends are fenced with.
pub struct Journal {
    cluster: ClusterName,
    store: Arc<dyn Store>,
    lease: Option<Arc<Lease>>,
    view: JournalView,
    records: Vec<Record>,
    next_seq: u64,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("cluster", &self.cluster)
            .field("store", &self.store.name())
            .field("lease", &self.lease)
            .field("records", &self.records.len())
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// The journal file of `cluster` under `state_dir` (the local store's layout).
    pub fn path_for(state_dir: &Path, cluster: &ClusterName) -> PathBuf {
        path_for(state_dir, cluster)
    }

    /// Reads `cluster`'s journal from `store`. With `lease`, records can be appended (each fenced
    /// by it); without, the journal is read-only (`plan`).
    pub async fn load(
        store: Arc<dyn Store>,
        cluster: &ClusterName,
        lease: Option<Arc<Lease>>,
    ) -> Result<Journal, StoreError> {
        let records = store.read_journal(cluster).await?;
        let mut view = JournalView::default();
        let mut next_seq = 1;
        for r in &records {
            view.apply(r);
            if let Record::Intent { seq, .. } = r {
                next_seq = next_seq.max(seq + 1);
            }
        }
        Ok(Journal { cluster: cluster.clone(), store, lease, view, records, next_seq })
    }

    /// Appends a record, durably, fenced by the lease: refused when the lease is lost, locally
    /// known or found at the store.
    pub async fn append(&mut self, rec: Record) -> Result<(), StoreError> {
        let Some(lease) = &self.lease else {
            return Err(StoreError::Failed {
                store: self.store.name(),
                action: "append".into(),
                message: format!("the journal of {} was opened read-only (without its lease)", self.cluster),
                retryable: false,
            });
        };
        lease.check()?;
        let position = self.records.len() as u64 + 1;
        if let Err(e) = self.store.append(lease, position, &rec).await {
            if matches!(e, StoreError::LeaseLost { .. }) {
                lease.lose("a journal append was refused at the store");
            }
            return Err(e);
        }
        self.view.apply(&rec);
        self.records.push(rec);
        Ok(())
    }

    /// Whether this holder may still act on the cluster (see [`Lease::check`]); a read-only
    /// journal may not.
    pub fn check_lease(&self) -> Result<(), StoreError> {
        match &self.lease {
            Some(l) => l.check(),
            None => Err(StoreError::Failed {
                store: self.store.name(),
                action: "act".into(),
                message: format!("no lease is held on {}", self.cluster),
                retryable: false,
            }),
        }
    }

    /// Reserves the next intent sequence number.
    pub fn next_seq(&mut self) -> u64 {
        let s = self.next_seq;
        self.next_seq += 1;
        s
    }

    /// The current view.
    pub fn view(&self) -> &JournalView {
        &self.view
    }

    /// All records, oldest first.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// The lease appends are fenced with, if any.
    pub fn lease(&self) -> Option<&Arc<Lease>> {
        self.lease.as_ref()
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
    pub fn holder_of(state_dir: &Path, cluster: &ClusterName) -> Option<String> {
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
