//! The journal of one cluster over its [`Store`]: read once, appended durably, every append
//! fenced by the cluster's lease.
//!
//! Why this module exists: the records and their replay ([`super`]) are what the store port
//! carries, so they sit below it; the writer uses the port, so it sits above it (see the floors in
//! the crate's module doc).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::{JournalView, Record, path_for};

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
    pub(crate) fn check_lease(&self) -> Result<(), StoreError> {
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
    pub(crate) fn next_seq(&mut self) -> u64 {
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
