//! `mirrorctl bench chaos`: the kill -9 campaign against the real binary.
//!
//! Why this module exists: the crash tests (`tests/it/crash_resume.rs`) stop the executor at chosen
//! points inside one process; they cannot show what a real `SIGKILL` does to a real daemon — its
//! fsync'd journal, its atomically written status documents and the persisted lab world, each cut
//! at an arbitrary instant by the kernel. This harness does exactly that, many times, and judges
//! the result with the simulated world's own state (its inventory and data oracle), not with what
//! mirrorctl believes.
//!
//! How a campaign runs. Each *trial* is a fresh persisted lab world (seeded) with a desired-state
//! directory, alternating the runbook's Windows cluster and the Linux example. A trial has two
//! *flows*: a backup (`take = ["b1"]`), then — after ten minutes of model time and a mistaken
//! deletion mirrored to the standby — a restore from that backup (`request = "r1"`). Every flow
//! starts `mirrorctl run --world lab` (this very executable, [`std::env::current_exe`]), and for a
//! flow with `k` kills (drawn from `1..=--max-kills`) kills it with `SIGKILL` at `k` instants drawn
//! uniformly over the flow's expected duration, restarting it after each kill, until its status
//! document says converged; then it stops the daemon with `SIGTERM` (which must exit 0). The
//! instants are positions in the daemon's cumulative running time for the flow, so they spread over
//! every phase of the flow, not only its start. The expected durations are measured by the first
//! trial of each OS, which runs without kills. Every third restore with a kill also changes its
//! request (`r1` → `r2`) while the daemon is down, so the abandonment path is killed too.
//!
//! The checks after each flow (each failure is a *violation*, counted by kind):
//! - the flow converged and the status document says so (`phase = converged`, the operation
//!   `completed`; an abandoned request `abandoned` or never started);
//! - backup: exactly one snapshot of `b1` and of the cluster in all, taken from the standby's
//!   volume, holding the one quiesce point the oracle saw; business back online on the active;
//! - restore: exactly one volume per server for the final request, attached to that server as its
//!   mirror disk; at most one per server for an abandoned request; no volume deleted (every volume
//!   seen before is still there); the replaced volumes kept, detached and tagged superseded; no
//!   snapshot deleted or duplicated; both sides identical, descended from the snapshot, without the
//!   accident; no corruption flagged by the oracle; the group on the second server after the
//!   failover check (moved exactly once when the request did not change);
//! - the daemon never exits on its own, and stops cleanly on `SIGTERM`.
//!
//! Host loss (`--hosts N --store dynamodb:TABLE`): every flow runs N daemons side by side as N
//! hosts, each with its own empty state directory, on one store and one lab directory (the
//! simulated world stands for AWS, which every host reaches). A kill hits the daemon that holds the
//! cluster's lease (its pid is in the holder's identity) and deletes that host's directory; a
//! fresh daemon takes its place as the new standby, and the flow can only finish through a
//! takeover from the table. Each trial's cluster gets a name unique to the campaign, so trials
//! never meet in the table. The tally adds how long each takeover took (from the kill to the first
//! look that saw another holder).
//!
//! Kill points are classified from the journal after each kill (which step's call was in flight,
//! or which step was the last one done), so the tally shows where they landed. The campaign prints
//! a tally and exits 1 on any violation; the directories of trials with a violation are kept.

mod campaign;
mod driver;
mod tally;
mod verdicts;

use std::time::Duration;

pub use campaign::{DEFAULT_LEASE_SECS, run};

use std::sync::Arc;

use crate::adapters::store::StoreSpec;
use crate::ports::store::Store;
pub use verdicts::{RestoreExpect, Violation, check_backup, check_restore, check_status};

/// Options of a campaign (`mirrorctl bench chaos` parses them from its command line).
#[derive(Debug, Clone)]
pub struct ChaosOptions {
    /// Kill points to deliver: trials run until at least this many kills landed in unfinished flows.
    pub points: usize,
    /// Seed of the kill instants, the kill counts and the trials' worlds.
    pub seed: u64,
    /// Lab speed factor of the daemon under test (model seconds per real second).
    pub speed: f64,
    /// Most kills in one flow; each flow draws its number from 1..=this.
    pub max_kills: usize,
    /// Keep every trial's directory (by default only those with a violation are kept).
    pub keep: bool,
    /// Which CLUSTERPRO procedure the trials' clusters follow.
    pub procedure: ChaosProcedure,
    /// Daemons run side by side as separate hosts, each with its own local directory; a kill hits
    /// the one holding the cluster's lease and deletes its directory. More than one needs a shared
    /// store.
    pub hosts: u8,
    /// Lease period of the daemons on a shared store, in seconds (default [`DEFAULT_LEASE_SECS`]).
    pub lease_secs: Option<u64>,
}

/// Which CLUSTERPRO procedure a campaign's clusters follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChaosProcedure {
    /// NEC's pre/post-processing (`vendor`) and the configuration edit (`reconfigure`) trial by
    /// trial.
    Both,
    /// NEC's `clpbackup` / `clprestore` (the lab cluster runs X 5.1).
    Vendor,
    /// The runbook's configuration edit.
    Reconfigure,
}

/// A finished campaign.
#[derive(Debug, Clone)]
pub struct CampaignReport {
    /// The tally, rendered for a terminal.
    pub text: String,
    /// Violations seen (0: the campaign is clean).
    pub violations: usize,
}

/// Model time between the backup and the accident (the lab's ten minutes of business).
const BUSINESS: Duration = Duration::from_mins(10);
/// Speed of the world while the harness skips those ten minutes (no daemon runs then).
const FAST_FORWARD_SPEED: f64 = 10_000.0;
/// How often the harness looks at the status document and the child process.
const POLL: Duration = Duration::from_millis(10);
/// The same with a shared store (each look is a request to it).
const SHARED_POLL: Duration = Duration::from_millis(50);
/// The longest a flow may take before it counts as not converging, at least.
const MIN_PATIENCE: Duration = Duration::from_mins(1);
/// The name of the backup every trial takes.
const BACKUP: &str = "b1";
/// The request of every restore, and the one it changes to.
const REQUESTS: [&str; 2] = ["r1", "r2"];

/// Which half of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FlowKind {
    Backup,
    Restore,
}

impl FlowKind {
    fn label(self) -> &'static str {
        match self {
            FlowKind::Backup => "backup",
            FlowKind::Restore => "restore",
        }
    }
}

/// The store the daemons of a campaign share when they run as several hosts.
pub(super) struct Shared {
    /// `dynamodb:TABLE`, passed to every daemon.
    pub(super) spec: StoreSpec,
    /// The harness's own connection: status documents, journals and lease holders are read here.
    pub(super) store: Arc<dyn Store>,
    /// The daemons' lease period.
    pub(super) lease_secs: u64,
}
