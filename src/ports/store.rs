//! The state store: where a cluster's journal, status document and lease live.
//!
//! Why this module exists: the journal is mirrorctl's only memory of half-done steps (token
//! generations, configuration pushes in doubt), and the lease decides who may act on a cluster.
//! Kept on one host's disk, both die with that host, and nothing stops a second host from acting
//! on the same cluster. This trait is the boundary between the reconcile loop and wherever that
//! state is kept, so the loop is written once for
//!
//! - the local directory ([`crate::adapters::store::LocalStore`], the default): journal files,
//!   status files, and an `flock` per cluster as the lease (held until released or the process
//!   dies; epoch always 0, no heartbeat needed);
//! - DynamoDB ([`crate::adapters::store::DynamoStore`]): one table shared by several hosts, a lease
//!   that must be renewed and can be taken over, and every journal append fenced by the holder's
//!   epoch at the store.
//!
//! The contract every store keeps:
//! - [`Store::acquire`] never waits: it takes the cluster's lease or says who holds it
//!   ([`StoreError::Busy`], with when to try again if a takeover may become possible);
//! - [`Store::append`] is refused ([`StoreError::LeaseLost`]) unless the lease it is given is still
//!   the cluster's current one: a deposed holder cannot add a record after its successor started;
//! - an append is durable when it returns (fsync'd, or acknowledged by DynamoDB);
//! - a lease-fenced status write never replaces a document written under a newer epoch.
//!
//! A [`Lease`] also knows, from the holder's own monotonic clock, until when it can still be
//! trusted ([`Lease::check`]): the executor asks it before every mutating call to EC2, CLUSTERPRO
//! or a node, because those cannot check a fencing token themselves.

use std::fmt;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::ClusterName;
use crate::journal::{JournalError, Record};
use crate::status::StatusDoc;

/// One cluster's lease, as its holder sees it.
pub struct Lease {
    /// The cluster.
    pub cluster: ClusterName,
    /// Who holds it: host, pid and a random part (the local store: what its lock file says).
    pub holder: String,
    /// Grows by one at every change of holder; journal appends are fenced on it.
    pub epoch: u64,
    /// How long the lease lasts without a heartbeat; `None`: until released (the local `flock`).
    pub duration: Option<Duration>,
    /// The holder this lease was taken over from (its heartbeat had stopped), if any.
    pub taken_over_from: Option<String>,
    state: Mutex<LeaseState>,
    /// Held for its `Drop` only (the local store's lock file closes with the lease).
    #[allow(dead_code)]
    guard: Option<Box<dyn Send + Sync>>,
}

struct LeaseState {
    /// The record version number last written by this holder.
    rvn: String,
    /// Until when the lease can be trusted (sent time of the last good heartbeat + duration).
    valid_until: Option<Instant>,
    /// Why it is known to be lost.
    lost: Option<String>,
}

impl fmt::Debug for Lease {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lease")
            .field("cluster", &self.cluster)
            .field("holder", &self.holder)
            .field("epoch", &self.epoch)
            .field("duration", &self.duration)
            .finish_non_exhaustive()
    }
}

impl Lease {
    /// A lease taken at `sent` (when the request that took it was sent, by this host's monotonic
    /// clock) with record version `rvn`.
    pub fn new(
        cluster: ClusterName,
        holder: String,
        epoch: u64,
        rvn: String,
        duration: Option<Duration>,
        sent: Instant,
    ) -> Lease {
        let valid_until = duration.map(|d| sent + d);
        Lease {
            cluster,
            holder,
            epoch,
            duration,
            taken_over_from: None,
            state: Mutex::new(LeaseState { rvn, valid_until, lost: None }),
            guard: None,
        }
    }

    /// Keeps `guard` alive as long as the lease (the local store's open lock file).
    #[must_use]
    pub fn with_guard(mut self, guard: impl Send + Sync + 'static) -> Lease {
        self.guard = Some(Box::new(guard));
        self
    }

    /// Marks the lease as taken over from `holder`.
    #[must_use]
    pub fn taken_over_from(mut self, holder: String) -> Lease {
        self.taken_over_from = Some(holder);
        self
    }

    /// The record version number this holder wrote last.
    pub fn rvn(&self) -> String {
        self.state.lock().map(|s| s.rvn.clone()).unwrap_or_default()
    }

    /// Records a good heartbeat: the new record version, sent at `sent`.
    pub fn renewed(&self, rvn: String, sent: Instant) {
        if let Ok(mut s) = self.state.lock() {
            s.rvn = rvn;
            s.valid_until = self.duration.map(|d| sent + d);
        }
    }

    /// Marks the lease lost (a heartbeat or an append found another holder).
    pub fn lose(&self, why: impl Into<String>) {
        if let Ok(mut s) = self.state.lock() {
            s.lost.get_or_insert_with(|| why.into());
        }
    }

    /// Whether the holder may still act: not known lost, and (for a lease with a duration) the
    /// last good heartbeat is less than one lease period old by this host's monotonic clock. A
    /// waiter on another host takes over only after seeing the same record version for a whole
    /// lease period, which starts after that heartbeat was written, so a holder that stops acting
    /// at this deadline has stopped before any successor starts.
    pub fn check(&self) -> Result<(), StoreError> {
        let s = self.state.lock().map_err(|_| self.lost("lease state poisoned by a panic"))?;
        if let Some(why) = &s.lost {
            return Err(self.lost(why));
        }
        if s.valid_until.is_some_and(|t| Instant::now() >= t) {
            return Err(self.lost("no heartbeat succeeded for a whole lease period"));
        }
        Ok(())
    }

    /// The error saying this lease is lost, and why.
    pub fn lost(&self, why: &str) -> StoreError {
        StoreError::LeaseLost { cluster: self.cluster.clone(), epoch: self.epoch, why: why.to_owned() }
    }
}

/// Why the store could not do what was asked. Each message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The local directory store failed (I/O, a corrupt journal).
    #[error(transparent)]
    Local(#[from] JournalError),
    /// Another mirrorctl holds the cluster's lease.
    #[error(
        "cluster {cluster} is being reconciled by another mirrorctl ({holder}); two writers would race on its \
         journal and act twice on the cluster: {}",
        match retry_in {
            Some(d) => format!(
                "mirrorctl looks again in {:.1}s and takes the lease over if its holder's heartbeat has not changed for a whole lease period",
                d.as_secs_f64()
            ),
            None => "wait for it to finish, or stop it, then retry".to_owned(),
        }
    )]
    Busy {
        /// The cluster.
        cluster: ClusterName,
        /// Who holds it.
        holder: String,
        /// When to look again: when a takeover may become possible (the holder's record version
        /// unchanged for a whole lease period), or sooner while the holder is seen alive; `None`
        /// when only the holder can let go (the local store's lock).
        retry_in: Option<Duration>,
    },
    /// This holder lost its lease: another host took it over (or may have). Nothing more is
    /// written or done under it.
    #[error(
        "the lease on cluster {cluster} (epoch {epoch}) is lost: {why}; this mirrorctl stops acting on it \
         (another holder may be acting now); it tries to take the lease again on its next pass"
    )]
    LeaseLost {
        /// The cluster.
        cluster: ClusterName,
        /// The lost epoch.
        epoch: u64,
        /// Why it is known or feared lost.
        why: String,
    },
    /// The store's table does not exist.
    #[error(
        "the DynamoDB table {table} does not exist (region and endpoint from the AWS configuration); \
         create it with `mirrorctl store init --store dynamodb:{table}`"
    )]
    MissingTable {
        /// Table name.
        table: String,
    },
    /// The store refused a call for lack of permission.
    #[error(
        "DynamoDB refused {action} on table {table}: {message}; grant dynamodb:{action} on the table to \
         mirrorctl's role (deploy/iam-policy.json)"
    )]
    Denied {
        /// Table name.
        table: String,
        /// The API refused.
        action: String,
        /// What DynamoDB said.
        message: String,
    },
    /// Any other failure of the store (throttling that outlived the SDK's retries, a 5xx, an
    /// unreachable endpoint, an unreadable item).
    #[error("state store {store}: {action} failed: {message}; {}", if *retryable { "mirrorctl retries after a pause" } else { "fix the cause, then retry" })]
    Failed {
        /// Which store (`dynamodb:TABLE`).
        store: String,
        /// The API that failed.
        action: String,
        /// What happened.
        message: String,
        /// Whether trying again later may succeed.
        retryable: bool,
    },
}

/// Where a cluster's journal, status document and lease are kept (see the module doc).
#[async_trait::async_trait]
pub trait Store: Send + Sync {
    /// How the operator names this store (`dir:state`, `dynamodb:TABLE`), for messages.
    fn name(&self) -> String;

    /// Takes `cluster`'s lease without waiting, or says who holds it ([`StoreError::Busy`]).
    async fn acquire(&self, cluster: &ClusterName) -> Result<Lease, StoreError>;

    /// Heartbeat: proves the holder is alive (a new record version). [`StoreError::LeaseLost`]
    /// when another holder took the lease.
    async fn renew(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Lets the lease go, so a waiter need not wait out a lease period.
    async fn release(&self, lease: &Lease) -> Result<(), StoreError>;

    /// Who holds `cluster`'s lease now, as its holder named itself; `None` when nobody does.
    /// Read-only: asking never takes or disturbs the lease (`status` uses it to tell an operation
    /// left part-way from one in progress).
    async fn holder(&self, cluster: &ClusterName) -> Result<Option<String>, StoreError>;

    /// All journal records of `cluster`, oldest first (empty when none).
    async fn read_journal(&self, cluster: &ClusterName) -> Result<Vec<Record>, StoreError>;

    /// Appends `record` as the journal's record number `position` (from 1), durably, refused
    /// unless `lease` is the cluster's current lease.
    async fn append(&self, lease: &Lease, position: u64, record: &Record) -> Result<(), StoreError>;

    /// Writes `doc` as the cluster's status document. With a lease, refused when a newer epoch
    /// wrote the document; without (the daemon's notes about a file, outside any reconcile), the
    /// document's epoch is left as it was.
    async fn write_status(&self, doc: &StatusDoc, lease: Option<&Lease>) -> Result<(), StoreError>;

    /// The status document of `cluster`, if any.
    async fn read_status(&self, cluster: &ClusterName) -> Result<Option<StatusDoc>, StoreError>;

    /// Every cluster's status document, ordered by cluster name.
    async fn list_status(&self) -> Result<Vec<StatusDoc>, StoreError>;

    /// The small file `name` (a plain file name) an adapter keeps for `cluster` between calls,
    /// and for whichever host acts next: the CLUSTERPRO command adapter's md template while a
    /// restore has removed md, and its pending-resume marker
    /// ([`crate::adapters::clusterpro::commands`]). `None` when there is none.
    async fn read_cluster_file(&self, cluster: &ClusterName, name: &str) -> Result<Option<Vec<u8>>, StoreError>;

    /// Replaces the cluster file `name` whole, durably (fsync'd, or acknowledged by DynamoDB).
    /// Not fenced by the lease: the adapter writing it acts under a lease it checked before its
    /// call, and what it writes is the same whoever writes it (see the command adapter's doc).
    async fn write_cluster_file(&self, cluster: &ClusterName, name: &str, body: &[u8]) -> Result<(), StoreError>;

    /// Removes the cluster file `name`; one that does not exist is not an error.
    async fn remove_cluster_file(&self, cluster: &ClusterName, name: &str) -> Result<(), StoreError>;
}

/// Whether `name` may name a cluster file: a plain file name, not hidden, not a path.
pub fn valid_cluster_file(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 200
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}
