//! The daemon loop behind `mirrorctl run`: watch the desired-state directory, keep one worker per
//! cluster, reconcile each toward its file, forever.
//!
//! Why this module exists: `apply` drives one cluster once; an operations host needs the same
//! reconcile applied continuously to every file in a Git-synced directory, surviving bad edits,
//! missed file events, restarts and signals. Decisions written down here:
//!
//! - **Level-triggered.** A file event only wakes the loop; once the burst of events is over
//!   ([`watch::Burst`]: a short quiet window after a save is complete, at most the debounce while
//!   a file is still being written) the loop lists the directory, looks at every file (`stat`:
//!   modification time, size, inode) and re-reads the touched ones, handing their workers the
//!   current state: a save, even of the same content, means "look again" for that cluster, while
//!   the other 999 clusters of a large directory are left alone (re-reading and passing them all
//!   made one edit cost a thousand parses and observations: `mirrorctl bench` measures edit →
//!   first action among 1,000 files). The periodic resync re-reads every file and hands every
//!   worker its state, spread over the interval: in slices, and within a slice one cluster at a
//!   time, evenly spaced ([`Paced`]), so a missed event costs at most one resync interval, and
//!   scheduled backups are noticed without any event.
//! - **An edit waits for no resync.** An edit is what an operator waits for; the resync is
//!   housekeeping. The loop never starts a slice's passes all at once: on the lab a pass is a run
//!   of synchronous work (the simulated world is saved after every call), so a slice of 80 passes
//!   started together kept both runtime threads busy for seconds, and an edit landing then waited
//!   behind all of them.
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
use watch::Touch;
use worker::{Desired, Shared};

/// How long a stopping daemon waits for notifications under way.
const NOTIFY_GRACE: Duration = Duration::from_secs(5);

/// The default quiet window of a burst of file events ([`Config::quiet`]). A rename into place or
/// a closed write is complete when its event comes (see [`watch`]); the window only gathers the
/// events sent with it (a rename is two or three events, an editor may change the file's mode
/// just after closing it) and lets an editor that writes several files finish the next one.
const QUIET: Duration = Duration::from_millis(20);

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
    /// The longest a burst of file events is gathered before re-reading: while a desired-state
    /// file is still being written (created or written and not closed yet, or moved away and
    /// not back) the loop waits for it, up to this long after the burst's first event.
    pub debounce: Duration,
    /// How long after the last event of a burst the loop re-reads, once no desired-state file is
    /// being written (at most `debounce` after the first event): a save by rename, or a write
    /// closed, is then read this soon.
    pub quiet: Duration,
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
    /// Defaults: resync 60 s, debounce 100 ms, quiet 20 ms, backoff 1 s … 5 min, the default notification
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
            quiet: QUIET,
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
        let (touch_tx, touch_rx) = mpsc::unbounded_channel();
        let watcher = watch::DirWatch::new(&self.cfg.dir, touch_tx.clone());
        self.serve(touch_tx, touch_rx, Some(watcher), shutdown).await;
    }

    /// [`Controller::run`] on the file events `touches` brings (`watcher`: the one sending them,
    /// refreshed after each wake).
    async fn serve(
        self,
        touch_tx: mpsc::UnboundedSender<Touch>,
        mut touches: mpsc::UnboundedReceiver<Touch>,
        mut watcher: Option<watch::DirWatch>,
        shutdown: CancellationToken,
    ) {
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
            wake: touch_tx,
        });
        let mut workers: BTreeMap<String, WorkerHandle> = BTreeMap::new();
        let mut first = true;
        // The resync is spread over its interval: each tick takes one slice of the clusters, so a
        // thousand files do not all pass (and call EC2) in the same second, and the slice's
        // clusters are handed out one at a time across the tick's period.
        let mut every = self.cfg.resync;
        let mut resync = resync_ticks(every);
        self.metrics.resync_interval(every);
        let mut slice = 0u32;
        let mut paced = Paced::default();
        loop {
            // An edit waits for no resync pass: they are handed out one at a time (`paced`).
            let scope = tokio::select! {
                () = shutdown.cancelled() => break,
                Some(touch) = touches.recv() => {
                    self.gather(touch, &mut touches, &shutdown).await;
                    Scope::Touched
                }
                _ = resync.tick() => {
                    if first {
                        Scope::All
                    } else {
                        slice = (slice + 1) % RESYNC_SLICES;
                        Scope::Slice(slice)
                    }
                }
                () = sleep_until_or_never(paced.due()) => {
                    if let Some(key) = paced.pop(tokio::time::Instant::now()) {
                        self.resync_one(&shared, &mut workers, &key);
                    }
                    continue;
                }
            };
            if let Some(w) = watcher.as_mut() {
                w.refresh();
            }
            let Some(scan) = self.scan(&shared, &mut workers, scope) else { continue };
            if first {
                self.metrics.expect_ready(scan.keys);
                first = false;
            }
            paced.refill(scan.later, tokio::time::Instant::now(), every / RESYNC_SLICES);
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

    /// Gathers the burst of file events that began with `first` until it is over
    /// ([`watch::Burst::read_at`]), or until shutdown.
    async fn gather(&self, first: Touch, touches: &mut mpsc::UnboundedReceiver<Touch>, shutdown: &CancellationToken) {
        let mut burst = watch::Burst::new(tokio::time::Instant::now(), first);
        loop {
            // The deadline before more events: a file touched without end is still read.
            tokio::select! {
                biased;
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(burst.read_at(self.cfg.quiet, self.cfg.debounce)) => return,
                Some(touch) = touches.recv() => burst.add(tokio::time::Instant::now(), touch),
            }
        }
    }

    /// Lists the directory and hands the workers their files' state: touched files ([`Stamp`])
    /// are always re-read and their workers woken; the files `scope` names are re-read and woken
    /// even when untouched: all of them at start, and a resync slice's are returned to be handed
    /// out one at a time ([`Paced`]). `None` when the directory could not be read (nothing is
    /// changed then: a directory that is briefly missing must not look like every file removed).
    fn scan(&self, shared: &Arc<Shared>, workers: &mut BTreeMap<String, WorkerHandle>, scope: Scope) -> Option<Scan> {
        let files = match list(&self.cfg.dir) {
            Ok(f) => f,
            Err(e) => {
                tracing::error!(dir = %self.cfg.dir.display(), error = %e, "cannot read the desired-state directory");
                return None;
            }
        };
        let mut later = Vec::new();
        for (key, path) in &files {
            let stamp = Stamp::of(path);
            let untouched =
                stamp.is_some() && workers.get(key).is_some_and(|w| !w.task.is_finished() && w.stamp == stamp);
            if untouched && !scope.includes(key) {
                // Not even re-read: a thousand-file directory costs a thousand `stat`s per edit.
                continue;
            }
            if untouched && matches!(scope, Scope::Slice(_)) {
                later.push(key.clone());
                continue;
            }
            self.hand(shared, workers, key, path, stamp);
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
        Some(Scan { keys: files.into_keys().collect(), later })
    }

    /// The resync of one cluster handed out by [`Paced`]: its file re-read and its worker woken.
    /// A file gone since the slice began is left to the next listing (which says it is removed).
    fn resync_one(&self, shared: &Arc<Shared>, workers: &mut BTreeMap<String, WorkerHandle>, key: &str) {
        let path = self.cfg.dir.join(format!("{key}.toml"));
        if path.is_file() {
            let stamp = Stamp::of(&path);
            self.hand(shared, workers, key, &path, stamp);
        }
    }

    /// Reads `key`'s file at `path` (`stamp`: as just seen) and hands its worker what it says,
    /// starting the worker when there is none running.
    fn hand(
        &self,
        shared: &Arc<Shared>,
        workers: &mut BTreeMap<String, WorkerHandle>,
        key: &str,
        path: &Path,
        stamp: Option<Stamp>,
    ) {
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
                let task = tokio::spawn(worker::run(key.to_owned(), path.to_owned(), rx, Arc::clone(shared)));
                workers.insert(key.to_owned(), WorkerHandle { desired: tx, task, stamp });
            }
        }
    }
}

/// What a [`Controller::scan`] found.
struct Scan {
    /// The files' keys.
    keys: Vec<String>,
    /// The untouched files of the resync slice, to be re-read one at a time ([`Paced`]).
    later: Vec<String>,
}

/// The clusters of the resync slices still to be re-read and passed, handed out one at a time,
/// evenly spaced over a slice's period: started together, a slice's passes would hold the runtime
/// for as long as all of them take, and an edit landing meanwhile would wait that long. A slice
/// not done when the next begins (a slow machine) keeps its place at the front.
#[derive(Debug, Default)]
struct Paced {
    keys: std::collections::VecDeque<String>,
    gap: Duration,
    next: Option<tokio::time::Instant>,
}

impl Paced {
    /// Queues `keys` (those not queued already), the first at once, and spaces the queue so that
    /// it is handed out within `period`.
    fn refill(&mut self, keys: Vec<String>, now: tokio::time::Instant, period: Duration) {
        if keys.is_empty() {
            return;
        }
        for k in keys {
            if !self.keys.contains(&k) {
                self.keys.push_back(k);
            }
        }
        self.gap = period / u32::try_from(self.keys.len()).unwrap_or(u32::MAX);
        self.next = Some(self.next.map_or(now, |n| n.min(now)));
    }

    /// When the next cluster is due, if any is queued.
    fn due(&self) -> Option<tokio::time::Instant> {
        self.next.filter(|_| !self.keys.is_empty())
    }

    /// The next cluster; the one after it is due a gap from `now`.
    fn pop(&mut self, now: tokio::time::Instant) -> Option<String> {
        let key = self.keys.pop_front();
        self.next = (!self.keys.is_empty()).then(|| now + self.gap);
        key
    }
}

async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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

    /// A daemon on `n` generated clusters (the example without schedule or backups), on in-memory
    /// lab worlds at ×1000, whose file events are the test's to send; resync every 12 s (a slice
    /// a second). Returns the sender of file events, the metrics, the directory and the stop.
    fn daemon_on(
        n: usize,
        tmp: &Path,
    ) -> (mpsc::UnboundedSender<Touch>, Arc<Metrics>, PathBuf, CancellationToken, tokio::task::JoinHandle<()>) {
        let dir = tmp.join("desired-state");
        std::fs::create_dir_all(&dir).unwrap();
        for i in 0..n {
            let key = format!("c{i:03}");
            std::fs::write(dir.join(format!("{key}.toml")), example(&key)).unwrap();
        }
        let worlds: WorldOpener = Arc::new(|spec: &Spec| {
            let world = crate::sim::SimWorld::new(crate::sim::scenario::scenario_for(spec), 42, 1000.0);
            Box::pin(std::future::ready(Ok(world.ports())))
        });
        let sinks: crate::notify::SinkFactory = Arc::new(|_: &Spec| Box::pin(std::future::ready(Ok(Vec::new()))));
        let mut cfg = Config::new(dir.clone(), tmp.join("state"), worlds, sinks);
        cfg.resync = Duration::from_secs(12);
        let controller = Controller::new(cfg);
        let metrics = controller.metrics();
        let stop = CancellationToken::new();
        let (tx, rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(controller.serve(tx.clone(), rx, None, stop.clone()));
        (tx, metrics, dir, stop, task)
    }

    /// The example desired state named `key`, without its schedule and on-demand backups.
    fn example(key: &str) -> String {
        include_str!("../../desired-state/prod-db.toml")
            .lines()
            .filter(|l| !l.starts_with("schedule") && !l.starts_with("take"))
            .map(|l| if l.starts_with("name = \"prod-db\"") { format!("name = \"{key}\"") } else { l.to_owned() })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Converged passes per cluster, from the metrics.
    fn passes(m: &Metrics) -> BTreeMap<String, u64> {
        m.render()
            .lines()
            .filter_map(|l| {
                let rest = l.strip_prefix("mirrorctl_reconcile_passes_total{cluster=\"")?;
                let (key, rest) = rest.split_once("\",outcome=\"converged\"} ")?;
                Some((key.to_owned(), rest.trim().parse().ok()?))
            })
            .collect()
    }

    /// Advances the paused clock a millisecond at a time until `f` answers (at most a minute).
    async fn until<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        for _ in 0..60_000 {
            if let Some(x) = f() {
                return x;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        panic!("gave up waiting for {what}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_edit_during_a_resync_slice_is_passed_before_the_slice_is_done() {
        let tmp = tempfile::tempdir().unwrap();
        let n = 96;
        let (touch, metrics, dir, stop, task) = daemon_on(n, tmp.path());
        let first = until("every cluster's first pass", || {
            let p = passes(&metrics);
            (metrics.ready() && p.len() == n).then_some(p)
        })
        .await;
        // A resync slice begins: its first cluster passes again.
        let resynced =
            until("a resync pass", || passes(&metrics).into_iter().find(|(k, v)| *v > first[k]).map(|(k, _)| k)).await;
        let slice: Vec<&String> = first.keys().filter(|k| resync_slice(k) == resync_slice(&resynced)).collect();
        assert!(slice.len() >= 5, "a slice of several clusters: {slice:?}");
        // Now an operator saves another cluster's file (temp file, rename).
        let edited = first.keys().find(|k| resync_slice(k) != resync_slice(&resynced)).unwrap().clone();
        let path = dir.join(format!("{edited}.toml"));
        let tmp_file = dir.join(format!(".{edited}.toml.tmp"));
        std::fs::write(&tmp_file, example(&edited)).unwrap();
        std::fs::rename(&tmp_file, &path).unwrap();
        touch.send(Touch::Settled(path)).unwrap();
        let at_edit = until("the edited cluster's pass", || {
            let p = passes(&metrics);
            (p[&edited] > first[&edited]).then_some(p)
        })
        .await;
        let done: Vec<&&String> = slice.iter().filter(|k| at_edit[**k] > first[**k]).collect();
        assert!(
            done.len() < slice.len() / 2,
            "the edit was passed after {} of the slice's {} passes: {done:?}",
            done.len(),
            slice.len()
        );
        // The slice still completes, one cluster at a time, within its second.
        let slice_done = until("the rest of the slice", || {
            let p = passes(&metrics);
            slice.iter().all(|k| p[*k] > first[*k]).then_some(())
        });
        tokio::time::timeout(Duration::from_secs(1), slice_done).await.expect("the slice within its period");
        stop.cancel();
        task.await.unwrap();
    }
}
