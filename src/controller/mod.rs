//! The daemon loop behind `mirrorctl run`: watch the desired-state directory, keep one worker per
//! cluster, reconcile each toward its file, forever.
//!
//! Why this module exists: `apply` drives one cluster once; an operations host needs the same
//! reconcile applied continuously to every file in a Git-synced directory, surviving bad edits,
//! missed file events, restarts and signals. Decisions written down here:
//!
//! - **Level-triggered.** A file event only wakes the loop; after a short debounce every wake
//!   lists the directory, looks at every file (`stat`: modification time, size, inode) and
//!   re-reads the touched ones, handing their workers the current state: a save, even of the
//!   same content, means "look again" for that cluster, while the other 999 clusters of a large
//!   directory are left alone (re-reading and passing them all made one edit cost a thousand
//!   parses and observations: `mirrorctl bench` measures edit → first action among 1,000
//!   files). The periodic resync re-reads every file and hands every worker its state, spread
//!   over the interval in slices (not all clusters in the same second), so a missed event costs
//!   at most one resync interval, and scheduled backups are noticed without
//!   any event.
//! - **One worker per cluster**, keyed by the file stem (which the spec requires to equal the
//!   cluster name): one pass at a time per cluster, clusters concurrent. A wake during a pass
//!   schedules exactly one more pass; if the file's *content* changed, the running pass is also
//!   asked to stop at its next step boundary so the new desired state is acted on promptly.
//! - **Last valid version.** An invalid or half-written file does not stop anything: its error
//!   (`file:line:column`) goes into the status document and the worker keeps working toward the
//!   last valid version it saw in this process. A removed file: the worker stops after its current
//!   step, undoes nothing, and the status says so.
//! - **Errors back off** per cluster (exponential with jitter, reset by success or a new spec).
//! - **Shutdown** is a [`CancellationToken`] injected by the caller: no new passes start, a running
//!   pass stops at its next step boundary (never between an intent and its result), and the
//!   caller bounds the whole by a grace period. A restart resumes from the journal.
//! - **Ready** once every file found by the first scan has had a first pass end (or, for a file
//!   that never was valid, its error written).
//! - **One request budget per account and region.** EC2 throttles per account and region, so the
//!   worlds a [`WorldOpener`] opens in one account and region share one client-side limiter
//!   ([`crate::ports::limit`], wired in [`crate::world`]) rather than one each: 1,000 clusters then queue for the same
//!   tokens instead of offering the account 1,000 budgets, while clusters of other accounts
//!   (`role_arn`) do not wait for them.

mod http;
mod metrics;
pub(crate) mod settings;
mod watch;
mod worker;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use http::serve;
pub use metrics::Metrics;
pub use settings::Settings;
pub use worker::REMOVED;

use crate::execute::{Progress, RetryPolicy};
use crate::journal::local::LocalStore;
use crate::notify::{Notifier, RetrySchedule, SinkFactory};
use crate::ports::{Ports, store::Store};
use crate::spec::Spec;
use worker::{Desired, Shared};

/// How long a stopping daemon waits for notifications under way.
const NOTIFY_GRACE: Duration = Duration::from_secs(5);

/// Opens the world (ports) a cluster's worker acts on, once per worker (asynchronously: the AWS
/// world loads credentials and may read a password from Secrets Manager).
pub type WorldOpener = Arc<dyn Fn(&Spec) -> futures::future::BoxFuture<'static, Result<Ports, String>> + Send + Sync>;

/// What the daemon loop needs: plain values, no globals.
#[derive(Clone)]
pub struct Config {
    /// The desired-state directory (may be a symlink swapped atomically, git-sync style).
    pub dir: PathBuf,
    /// Where lab worlds (and, with the default store, journals and status documents) live.
    pub state_dir: PathBuf,
    /// Where journals, status documents and leases live (default: [`LocalStore`] on
    /// `state_dir`).
    pub store: Arc<dyn Store>,
    /// Full re-read of the directory even without file events (the shortest interval: see
    /// `resync_look_rate`).
    pub resync: Duration,
    /// EC2 `Describe*` calls per second the periodic resync may spend, or no limit. Each resync
    /// pass is a full look ([`crate::observe::FULL_LOOK_DESCRIBES`] calls per cluster); with many
    /// clusters the interval is stretched so the resync stays within this rate.
    pub resync_look_rate: Option<f64>,
    /// How long to gather file events before re-reading.
    pub debounce: Duration,
    /// The world each cluster acts on.
    pub worlds: WorldOpener,
    /// Retry schedules of the executor.
    pub policy: RetryPolicy,
    /// First delay after a failed pass.
    pub backoff_min: Duration,
    /// Longest delay between failed passes.
    pub backoff_max: Duration,
    /// Builds each cluster's notification destinations from its `[notify]`.
    pub sinks: SinkFactory,
    /// Retries of one notification delivery.
    pub notify_retry: RetrySchedule,
    /// Where the events of a cluster whose file has no `[notify]` go (`daemon.toml`'s
    /// `[notify]`); `None`: such a cluster sends nothing. A file with `notify = false` sends
    /// nothing either way.
    pub default_notify: Option<crate::spec::NotifySpec>,
    /// Projects an operation's whole sequence when a cluster has work, for the status's step
    /// total and ETA (the composition root's choice: the lab world has one,
    /// [`crate::world::lab_projector`]); `None`: status shows the current wait's estimate only.
    pub projector: Option<crate::reconcile::Projector>,
}

impl Config {
    /// Defaults: resync 60 s, debounce 100 ms, backoff 1 s … 5 min, the default notification
    /// retries. `sinks` builds each cluster's notification destinations (the composition root's
    /// choice, [`crate::world`]).
    pub fn new(dir: PathBuf, state_dir: PathBuf, worlds: WorldOpener, sinks: SinkFactory) -> Self {
        Config {
            dir,
            store: Arc::new(LocalStore::new(&state_dir)),
            state_dir,
            resync: Duration::from_mins(1),
            resync_look_rate: None,
            debounce: Duration::from_millis(100),
            worlds,
            policy: RetryPolicy::default(),
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_mins(5),
            sinks,
            notify_retry: RetrySchedule::default(),
            default_notify: None,
            projector: None,
        }
    }
}

/// The daemon: create it, take its [`Metrics`] for the HTTP endpoints, then [`Controller::run`].
pub struct Controller {
    cfg: Config,
    metrics: Arc<Metrics>,
}

struct WorkerHandle {
    desired: tokio::sync::watch::Sender<Desired>,
    task: tokio::task::JoinHandle<()>,
    /// The file as the last scan that read it saw it.
    stamp: Option<Stamp>,
}

/// What tells a touched file from an untouched one without reading it: modification time, size
/// and inode (of the target, through symlinks). An editor's or git-sync's rename-into-place gives
/// a new inode; an in-place write a new time or size. A rewrite that keeps all three (an in-place
/// copy preserving the time, with the same size) is only seen by the next resync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    modified: std::time::SystemTime,
    len: u64,
    inode: (u64, u64),
}

impl Stamp {
    fn of(path: &Path) -> Option<Stamp> {
        use std::os::unix::fs::MetadataExt as _;
        let m = std::fs::metadata(path).ok()?;
        Some(Stamp { modified: m.modified().ok()?, len: m.len(), inode: (m.dev(), m.ino()) })
    }
}

impl Controller {
    /// A controller for `cfg`.
    pub fn new(cfg: Config) -> Self {
        Controller { cfg, metrics: Arc::new(Metrics::default()) }
    }

    /// Its metrics and readiness (shared with the HTTP server).
    pub fn metrics(&self) -> Arc<Metrics> {
        Arc::clone(&self.metrics)
    }

    /// Runs until `shutdown` fires, then waits for the workers to reach a step boundary. Bound
    /// the wait with a timeout (the grace period): dropping this future leaves any step in flight
    /// to the journal, which a restart resolves by observation.
    pub async fn run(self, shutdown: CancellationToken) {
        let (wake_tx, mut wake_rx) = mpsc::unbounded_channel::<()>();
        let (event_tx, mut event_rx) = mpsc::unbounded_channel();
        let metrics = Arc::clone(&self.metrics);
        let event_task = tokio::spawn(async move {
            while let Some(e) = event_rx.recv().await {
                metrics.on_event(&e);
            }
        });
        let notifier = Notifier::start(Arc::clone(&self.cfg.sinks), self.cfg.notify_retry);
        self.metrics.notifications(notifier.counters());
        let shared = Arc::new(Shared {
            notify: notifier.clone(),
            store: Arc::clone(&self.cfg.store),
            worlds: Arc::clone(&self.cfg.worlds),
            projector: self.cfg.projector.clone(),
            policy: self.cfg.policy,
            progress: Progress::to(event_tx),
            metrics: Arc::clone(&self.metrics),
            shutdown: shutdown.clone(),
            backoff_min: self.cfg.backoff_min,
            backoff_max: self.cfg.backoff_max,
            wake: wake_tx.clone(),
        });
        let mut watcher = watch::DirWatch::new(&self.cfg.dir, wake_tx.clone());
        let mut workers: BTreeMap<String, WorkerHandle> = BTreeMap::new();
        let mut first = true;
        // The resync is spread over its interval: each tick takes one slice of the clusters, so a
        // thousand files do not all pass (and call EC2) in the same second.
        let mut every = self.cfg.resync;
        let mut resync = resync_ticks(every);
        self.metrics.resync_interval(every);
        let mut slice = 0u32;
        loop {
            let scope = tokio::select! {
                () = shutdown.cancelled() => break,
                _ = resync.tick() => {
                    if first {
                        Scope::All
                    } else {
                        slice = (slice + 1) % RESYNC_SLICES;
                        Scope::Slice(slice)
                    }
                }
                Some(()) = wake_rx.recv() => {
                    // Debounce: an editor's save or a git-sync swap is a burst of events.
                    tokio::time::sleep(self.cfg.debounce).await;
                    while wake_rx.try_recv().is_ok() {}
                    Scope::Touched
                }
            };
            watcher.refresh();
            if let Some(keys) = self.scan(&shared, &mut workers, scope)
                && first
            {
                self.metrics.expect_ready(keys);
                first = false;
            }
            let wanted = resync_every(self.cfg.resync, workers.len(), self.cfg.resync_look_rate);
            if wanted != every {
                if wanted > self.cfg.resync {
                    tracing::warn!(
                        clusters = workers.len(),
                        resync_secs = wanted.as_secs(),
                        configured_secs = self.cfg.resync.as_secs(),
                        "resync interval stretched: a full look at every cluster must fit the Describe budget set \
                         aside for it; file edits are still acted on at once"
                    );
                } else {
                    tracing::info!(resync_secs = wanted.as_secs(), "resync interval back to the configured one");
                }
                every = wanted;
                resync = resync_ticks(every);
                self.metrics.resync_interval(every);
                // The new interval's first tick is immediate: it is the next slice, as usual.
            }
        }
        tracing::info!(workers = workers.len(), "shutting down: no new passes; waiting for steps in flight");
        drop(watcher);
        for (_, w) in workers {
            let _ = w.task.await;
        }
        drop(shared);
        let _ = event_task.await;
        // Deliveries under way get a moment; a completion cut off here is sent by the next start.
        notifier.close(NOTIFY_GRACE).await;
        tracing::info!("all workers stopped at a step boundary");
    }

    /// Lists the directory and hands the workers their files' state: touched files ([`Stamp`])
    /// are always re-read and their workers woken; the files `scope` names (all of them at start,
    /// one resync slice per tick) are re-read and woken even when untouched. Returns the keys
    /// found, or `None` when the directory could not be read (nothing is changed then: a directory
    /// that is briefly missing must not look like every file removed).
    fn scan(
        &self,
        shared: &Arc<Shared>,
        workers: &mut BTreeMap<String, WorkerHandle>,
        scope: Scope,
    ) -> Option<Vec<String>> {
        let files = match list(&self.cfg.dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(dir = %self.cfg.dir.display(), error = %e, "cannot read the desired-state directory");
                return None;
            }
        };
        for (key, path) in &files {
            let stamp = Stamp::of(path);
            let untouched =
                stamp.is_some() && workers.get(key).is_some_and(|w| !w.task.is_finished() && w.stamp == stamp);
            if untouched && !scope.includes(key) {
                // Not even re-read: a thousand-file directory costs a thousand `stat`s per edit.
                continue;
            }
            let desired = match crate::spec::load_file(path) {
                Ok(mut spec) => {
                    if spec.notify.is_none() && !spec.notify_off {
                        spec.notify.clone_from(&self.cfg.default_notify);
                    }
                    Desired::Valid(Arc::new(spec))
                }
                Err(e) => Desired::Invalid(e.to_string()),
            };
            self.metrics.spec_valid(key, matches!(desired, Desired::Valid(_)));
            match workers.get_mut(key) {
                Some(w) if !w.task.is_finished() => {
                    w.stamp = stamp;
                    w.desired.send_replace(desired);
                }
                _ => {
                    let (tx, rx) = tokio::sync::watch::channel(desired);
                    shared.metrics.worker_started(key);
                    let task = tokio::spawn(worker::run(key.clone(), path.clone(), rx, Arc::clone(shared)));
                    workers.insert(key.clone(), WorkerHandle { desired: tx, task, stamp });
                }
            }
        }
        workers.retain(|key, w| {
            if files.contains_key(key) {
                return true;
            }
            if w.task.is_finished() {
                return false;
            }
            if !matches!(*w.desired.borrow(), Desired::Removed) {
                w.desired.send_replace(Desired::Removed);
            }
            true
        });
        Some(files.into_keys().collect())
    }
}

/// How many slices the periodic resync is cut into (one per tick of `resync / RESYNC_SLICES`).
pub(crate) const RESYNC_SLICES: u32 = 12;

/// The ticks of a resync every `every`: one slice per tick.
fn resync_ticks(every: Duration) -> tokio::time::Interval {
    let mut ticks = tokio::time::interval(every / RESYNC_SLICES);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    ticks
}

/// The resync interval for `clusters`: the configured one, stretched (to whole seconds) when a
/// full look at every cluster within it would need more than `look_rate` Describe calls a second.
pub(crate) fn resync_every(configured: Duration, clusters: usize, look_rate: Option<f64>) -> Duration {
    let Some(rate) = look_rate.filter(|r| r.is_finite() && *r > 0.0) else { return configured };
    #[allow(clippy::cast_precision_loss)] // cluster counts stay far below 2^52
    let needed = (clusters as f64 * f64::from(crate::observe::FULL_LOOK_DESCRIBES) / rate).ceil();
    configured.max(Duration::from_secs_f64(needed))
}

/// Which untouched files a scan re-reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    /// Every file (the first scan).
    All,
    /// The files of one resync slice.
    Slice(u32),
    /// None: only touched files (a file event).
    Touched,
}

impl Scope {
    fn includes(self, key: &str) -> bool {
        match self {
            Scope::All => true,
            Scope::Slice(i) => resync_slice(key) == i,
            Scope::Touched => false,
        }
    }
}

/// The resync slice of a cluster: a stable hash of its key, so each cluster is re-read once per
/// resync interval, always at the same point of it.
fn resync_slice(key: &str) -> u32 {
    let h = key.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    u32::try_from(h % u64::from(RESYNC_SLICES)).unwrap_or(0)
}

/// The desired-state files of `dir` by stem: `*.toml`, not hidden (editors' swap and temp files
/// are hidden or have another extension).
fn list(dir: &Path) -> std::io::Result<BTreeMap<String, PathBuf>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".toml") else { continue };
        if stem.is_empty() || name.starts_with('.') {
            continue;
        }
        let path = dir.join(name);
        if path.is_file() {
            out.insert(stem.to_owned(), path);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_resync_stretches_to_fit_its_describe_rate() {
        let minute = Duration::from_mins(1);
        assert_eq!(resync_every(minute, 1000, None), minute, "no limit");
        // 6 Describes a cluster: 50 clusters at 5/s fit in a minute, 1,000 need 20 minutes.
        assert_eq!(resync_every(minute, 50, Some(5.0)), minute);
        assert_eq!(resync_every(minute, 1000, Some(5.0)), Duration::from_mins(20));
        assert_eq!(resync_every(minute, 0, Some(5.0)), minute);
        assert_eq!(resync_every(minute, 1000, Some(0.0)), minute, "a nonsensical rate is no limit");
    }

    #[test]
    fn every_cluster_is_in_one_resync_slice_and_slices_are_even() {
        let mut per_slice = [0u32; RESYNC_SLICES as usize];
        for i in 0..1200 {
            let key = format!("cluster-{i:04}");
            let slice = resync_slice(&key);
            assert_eq!(slice, resync_slice(&key), "stable");
            let covering = (0..RESYNC_SLICES).filter(|s| Scope::Slice(*s).includes(&key)).count();
            assert_eq!(covering, 1, "{key} is resynced exactly once per interval");
            per_slice[slice as usize] += 1;
        }
        // 100 per slice on average; a storm would put them all in one.
        assert!(per_slice.iter().all(|n| (60..=140).contains(n)), "{per_slice:?}");
        assert!(Scope::All.includes("x") && !Scope::Touched.includes("x"));
    }
}
