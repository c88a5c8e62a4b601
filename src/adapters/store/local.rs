//! The local directory store: today's layout, behind the [`Store`] trait.
//!
//! Why this module exists: one host with one state directory is the default and needs nothing
//! else to run. Layout under the state directory:
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

use std::path::{Path, PathBuf};

use crate::ids::ClusterName;
use crate::journal::writer::WriterLock;
use crate::journal::{Record, append_file, read_file};
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
