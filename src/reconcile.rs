//! One cluster's reconcile loop: observe → plan → execute, until converged or blocked.
//!
//! Why this module exists: `apply`, `lab` and the daemon all drive a cluster the same
//! way; this is that way, written once, after kube-rs's `reconcile` + `error_policy` split: the
//! loop handles waiting (polls fitted to real latencies: first look at the expected time, then
//! ×1.5 up to a few seconds — never a 15 s waiter), retries of observation, and the rule that a
//! step failing with a needs-human error twice in a row (with a fresh observation in between)
//! stops the cluster with a condition instead of looping.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBuilder};
use tokio::sync::Mutex;

use crate::execute::{CrashSwitch, EventKind, ExecError, Executor, Progress, RetryPolicy, Seen, StepResult};
use crate::ids::{ServerName, VolumeId};
use crate::journal::local::LocalStore;
use crate::journal::writer::Journal;
use crate::notify::{Notifier, offer_completions, offer_condition};
use crate::observe::{self, FULL_LOOK_EVERY, Observed, Refresh, observe_with};
use crate::plan::{Action, Condition, Outcome, Plan, Step, StepId, expect, plan};
use crate::ports::cloud::{AttachState, Attachment, VolumeState};
use crate::ports::cluster::ClusterConfig;
use crate::ports::limit::{Priority, Stage, set_priority, with_priority};
use crate::ports::node::Disk;
use crate::ports::{
    ErrorClass, PortError, Ports,
    store::{Lease, Store, StoreError},
};
use crate::spec::NoticeKind;
use crate::spec::Spec;
use crate::status::{Expectation, Phase, StatusDoc, WaitState};
use tokio_util::sync::CancellationToken;

/// Longest pause between two looks at something in progress.
pub const POLL_CAP: Duration = Duration::from_secs(4);

/// How long to wait before look number `polls` (from 0) at something expected to take `expect`:
/// the first look at the expected time (a real-world median), then from 1 s growing ×1.5 up to
/// [`POLL_CAP`].
pub fn poll_delay(expect: Duration, polls: u32) -> Duration {
    if polls == 0 {
        return expect;
    }
    let grown = Duration::from_secs(1).mul_f64(1.5_f64.powi(i32::try_from(polls - 1).unwrap_or(i32::MAX).min(16)));
    grown.min(POLL_CAP)
}

/// Everything a reconcile needs besides the spec: a plain struct, no globals.
#[derive(Clone)]
pub struct Context {
    /// The world.
    pub ports: Ports,
    /// Where journals, status documents and leases live.
    pub store: Arc<dyn Store>,
    /// Retry schedules.
    pub policy: RetryPolicy,
    /// Progress sink.
    pub progress: Progress,
    /// Test hook.
    pub crash: Option<Arc<CrashSwitch>>,
    /// Stop after this many passes (a guard for tests and `plan`-like uses); `None` = no limit.
    pub max_passes: Option<usize>,
    /// A stop request (daemon shutdown, or its desired state changed): looked at before each pass
    /// and before each batch of steps, and it ends a wait early; a step that has started is never
    /// cut between its intent and its result. `None`: never stopped.
    pub stop: Option<CancellationToken>,
    /// An error in the newest version of the desired-state file, written into every status
    /// document while the loop keeps working toward the last valid version (the daemon's case).
    pub spec_error: Option<String>,
    /// Where completion, failure and needs-human notices go (the cluster's `[notify]` decides
    /// whether any are sent). `None`: none are.
    pub notify: Option<Notifier>,
    /// What the caller expects of the operations (a projection: steps in all, end), for the
    /// status document's step count and ETA; filled in by the caller whenever it is known (a
    /// projection runs beside the reconcile, not before it). Empty: no estimate beyond the
    /// current wait.
    pub expected: Arc<std::sync::Mutex<Vec<Expectation>>>,
    /// Projects the operations once a pass first has steps to run, beside the reconcile, into
    /// [`Context::expected`] (the daemon on the lab world). `None`: the caller fills `expected`
    /// itself, or nothing is projected.
    pub project: Option<Projector>,
}

/// What a projection answers: from the world's time given, how many steps each operation still
/// to run takes in all and when it should end.
pub type Projector =
    Arc<dyn Fn(&Spec, jiff::Timestamp) -> futures::future::BoxFuture<'static, Vec<Expectation>> + Send + Sync>;

impl Context {
    /// A context with default policy and no progress sink, its state in the directory
    /// `state_dir` ([`LocalStore`]; replace [`Context::store`] for another store).
    pub fn new(ports: Ports, state_dir: PathBuf) -> Self {
        Self::with_store(ports, Arc::new(LocalStore::new(state_dir)))
    }

    /// A context with default policy and no progress sink, its state in `store`.
    pub fn with_store(ports: Ports, store: Arc<dyn Store>) -> Self {
        Context {
            ports,
            store,
            policy: RetryPolicy::default(),
            progress: Progress::none(),
            crash: None,
            max_passes: None,
            stop: None,
            spec_error: None,
            notify: None,
            expected: Arc::default(),
            project: None,
        }
    }

    fn stop_requested(&self) -> bool {
        self.stop.as_ref().is_some_and(CancellationToken::is_cancelled)
    }

    /// Sleeps in the world's time; a stop request ends the sleep early (a wait is not a step).
    async fn pause(&self, d: Duration) {
        match &self.stop {
            Some(stop) => {
                tokio::select! {
                    () = self.ports.clock.sleep(d) => {}
                    () = stop.cancelled() => {}
                }
            }
            None => self.ports.clock.sleep(d).await,
        }
    }
}

/// How a reconcile ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Settled {
    /// Desired state reached.
    Converged,
    /// Stopped until a human acts.
    Blocked(Condition),
}

/// When the cluster's next pass should run, as one pass answers it; the worker does the waiting
/// (a changed file, a backup slot or the resync ends any of them early).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Requeue {
    /// Nothing to do until something changes: the pass converged, is blocked until a human acts, or
    /// stopped at a step boundary for a newer file or a shutdown.
    OnChange,
    /// The pass failed: again after the next delay of the worker's backoff series.
    Backoff,
    /// Another mirrorctl holds the cluster's lease: again after this long, when a takeover may be
    /// possible (not an error's backoff).
    After(Duration),
}

/// A margin after a lease holder's `retry_in`, so the next look finds the takeover possible.
const TAKEOVER_MARGIN: Duration = Duration::from_millis(100);

/// The requeue a pass that ended with `result` asks for.
pub fn requeue(result: &Result<Settled, ReconcileError>) -> Requeue {
    match result {
        Ok(_) | Err(ReconcileError::Stopped) => Requeue::OnChange,
        Err(ReconcileError::Store(StoreError::Busy { retry_in: Some(d), .. })) => Requeue::After(*d + TAKEOVER_MARGIN),
        Err(_) => Requeue::Backoff,
    }
}

/// Why a reconcile could not go on.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Executor failure (journal, simulated crash).
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The state store failed (journal, status, lease), or the lease is held elsewhere or lost.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The world could not be observed.
    #[error("observing the cluster failed: {0}")]
    Observe(PortError),
    /// `max_passes` reached.
    #[error("stopped after {0} passes without settling")]
    PassLimit(usize),
    /// The context's stop token fired; the loop stopped at a step boundary.
    #[error("stopped on request at a step boundary")]
    Stopped,
}

/// Observes the whole world without `prev`, otherwise what `want` names, the rest carried over
/// from `prev`. Every read that can fail is retried inside ([`with_retries`]: throttling without
/// limit, other retryable errors within the policy's budget), so an error here has used its budget
/// already and is not retried again on top (an unreachable endpoint fails in seconds, not minutes).
///
/// [`with_retries`]: crate::retry::with_retries
pub async fn observe_with_retries(
    spec: &Spec,
    ctx: &Context,
    prev: Option<&Observed>,
    want: &Refresh,
) -> Result<Observed, PortError> {
    observe_with(spec, &ctx.ports, &ctx.policy, prev, want).await
}

/// Reads the cluster's journal from the context's store, read-only (no lease: `plan`).
pub async fn open_journal(spec: &Spec, ctx: &Context) -> Result<Arc<Mutex<Journal>>, StoreError> {
    Ok(Arc::new(Mutex::new(Journal::load(Arc::clone(&ctx.store), &spec.cluster.name, None).await?)))
}

/// Makes one plan from a full, fresh observation (used by `plan` and `apply --plan`).
pub async fn plan_once(
    spec: &Spec,
    ctx: &Context,
    journal: &Arc<Mutex<Journal>>,
) -> Result<(Observed, Plan), ReconcileError> {
    plan_pass(spec, ctx, journal, None, &Refresh::everything(spec)).await
}

/// Makes one plan from an observation that reads `want` and carries the rest over from `prev`.
async fn plan_pass(
    spec: &Spec,
    ctx: &Context,
    journal: &Arc<Mutex<Journal>>,
    prev: Option<&Observed>,
    want: &Refresh,
) -> Result<(Observed, Plan), ReconcileError> {
    let obs = observe_with_retries(spec, ctx, prev, want).await.map_err(ReconcileError::Observe)?;
    let view = journal.lock().await.view().clone();
    let p = plan(spec, &obs, &view);
    Ok((obs, p))
}

async fn write_status(
    spec: &Spec,
    ctx: &Context,
    journal: &Arc<Mutex<Journal>>,
    plan: Option<&Plan>,
    obs: Option<&Observed>,
    err: Option<String>,
    wait: Option<&WaitState>,
) -> Result<StatusDoc, ReconcileError> {
    let (records, lease) = {
        let j = journal.lock().await;
        (j.records().to_vec(), j.lease().cloned())
    };
    let now = ctx.ports.clock.now();
    let mut doc = StatusDoc::build(spec, plan, obs, &records, err, now);
    if doc.phase != Phase::Blocked {
        let expected = ctx.expected.lock().map(|e| e.clone()).unwrap_or_default();
        doc.progress = plan.and_then(|p| crate::status::op_progress(p, &records, now, wait, &expected));
    }
    doc.api_calls = ctx.ports.cloud.call_counts();
    doc.spec_error.clone_from(&ctx.spec_error);
    ctx.store.write_status(&doc, lease.as_deref()).await?;
    Ok(doc)
}

/// The heartbeat of a lease with a duration: renews it every third of its period until
/// `done`; a failed renewal is retried (`backon`, exponential with jitter) while the lease can
/// still be trusted. When it is lost (another holder took it, or no renewal succeeded for a whole
/// period) it fires `lost`, which stops the reconcile at its next step boundary; the executor
/// refuses every call from then on by itself ([`Lease::check`]).
async fn heartbeat(store: Arc<dyn Store>, lease: Arc<Lease>, lost: CancellationToken, done: CancellationToken) {
    let Some(period) = lease.duration else { return };
    let every = period / 3;
    loop {
        tokio::select! {
            () = done.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let mut retries = ExponentialBuilder::default()
            .with_min_delay(Duration::from_millis(200))
            .with_max_delay(every)
            .with_jitter()
            .without_max_times()
            .build();
        loop {
            match store.renew(&lease).await {
                Ok(()) => break,
                Err(e @ StoreError::LeaseLost { .. }) => {
                    tracing::error!(cluster = %lease.cluster, epoch = lease.epoch, error = %e, "lease lost");
                    lost.cancel();
                    return;
                }
                Err(e) => {
                    if let Err(gone) = lease.check() {
                        tracing::error!(cluster = %lease.cluster, epoch = lease.epoch, error = %e, "{gone}");
                        lost.cancel();
                        return;
                    }
                    let delay = retries.next().unwrap_or(every);
                    tracing::warn!(cluster = %lease.cluster, epoch = lease.epoch, error = %e, retry_in = ?delay, "heartbeat failed");
                    tokio::select! {
                        () = done.cancelled() => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }
}

/// When a batch only started EC2 operations that take seconds to finish, the time before their
/// effect can be seen (the shortest median among them); `None` when the batch did anything else.
fn settle_time(steps: &[Step]) -> Option<Duration> {
    steps
        .iter()
        .map(|s| match &s.action {
            Action::CreateVolume { .. } => Some(expect::VOLUME_CREATE),
            Action::AttachVolume { .. } => Some(expect::ATTACH),
            Action::DetachVolume { .. } => Some(expect::DETACH),
            _ => None,
        })
        .try_fold(None::<Duration>, |acc, d| d.map(|d| Some(acc.map_or(d, |a| a.min(d)))))
        .flatten()
}

/// Reconciles `spec` until it converges or is blocked.
///
/// Its EC2 calls queue in a shared [`crate::ports::limit::RequestLimiter`] by the age of the
/// operation being pursued (set after each plan), so the oldest restore of a storm goes first.
pub async fn reconcile(spec: &Spec, ctx: &Context) -> Result<Settled, ReconcileError> {
    with_priority(Box::pin(reconcile_passes(spec, ctx))).await
}

async fn reconcile_passes(spec: &Spec, ctx: &Context) -> Result<Settled, ReconcileError> {
    // One writer per cluster, for as long as this reconcile runs: the cluster's lease, kept alive
    // by a heartbeat; a lost lease stops the loop at its next step boundary.
    let lease = Arc::new(ctx.store.acquire(&spec.cluster.name).await?);
    let lease_event =
        |held| EventKind::Lease { held, epoch: lease.epoch, taken_over_from: lease.taken_over_from.clone() };
    ctx.progress.emit(&ctx.ports, &spec.cluster.name, lease_event(true));
    let lost = CancellationToken::new();
    let done = CancellationToken::new();
    let beat = tokio::spawn(heartbeat(Arc::clone(&ctx.store), Arc::clone(&lease), lost.clone(), done.clone()));
    let mut inner = ctx.clone();
    inner.stop = Some(match &ctx.stop {
        Some(stop) => {
            // Either the caller's stop or the lost lease stops the loop.
            let both = CancellationToken::new();
            let (a, b, c, end) = (stop.clone(), lost.clone(), both.clone(), done.clone());
            tokio::spawn(async move {
                tokio::select! {
                    () = a.cancelled() => c.cancel(),
                    () = b.cancelled() => c.cancel(),
                    () = end.cancelled() => {}
                }
            });
            both
        }
        None => lost.clone(),
    });
    let result = reconcile_leased(spec, &inner, &lease).await;
    done.cancel();
    let _ = beat.await;
    let result = match result {
        Err(ReconcileError::Stopped) if lost.is_cancelled() => {
            Err(lease.check().err().map_or(ReconcileError::Stopped, ReconcileError::Store))
        }
        r => r,
    };
    if lease.check().is_ok()
        && let Err(e) = ctx.store.release(&lease).await
    {
        tracing::warn!(cluster = %spec.cluster.name, epoch = lease.epoch, error = %e, "releasing the lease failed; it expires by itself");
    }
    ctx.progress.emit(&ctx.ports, &spec.cluster.name, lease_event(false));
    result
}

#[allow(clippy::too_many_lines)] // the pass loop: its states read best in one place
async fn reconcile_leased(spec: &Spec, ctx: &Context, lease: &Arc<Lease>) -> Result<Settled, ReconcileError> {
    let journal =
        Arc::new(Mutex::new(Journal::load(Arc::clone(&ctx.store), &spec.cluster.name, Some(Arc::clone(lease))).await?));
    if let Some(n) = &ctx.notify {
        n.prime(spec, &ctx.store, ctx.ports.clock.now()).await;
    }
    let exec = Executor {
        cluster: spec.cluster.name.clone(),
        ports: ctx.ports.clone(),
        journal: journal.clone(),
        policy: ctx.policy,
        progress: ctx.progress.clone(),
        crash: ctx.crash.clone(),
    };
    // The wait under way: what, since when (model time), looks so far.
    let mut last_wait: Option<(WaitState, u32)> = None;
    // Whether this reconcile found the cluster anything but converged: its convergence is then a
    // transition, logged at info; a resync that finds it converged again stays quiet.
    let was_converged = ctx
        .store
        .read_status(&spec.cluster.name)
        .await
        .ok()
        .flatten()
        .is_some_and(|d| d.phase == Phase::Converged && d.interrupted.is_none());
    let mut worked = false;
    let began = ctx.ports.clock.now();
    let wait_over = |last_wait: &mut Option<(WaitState, u32)>| {
        if let Some((w, _)) = last_wait.take() {
            let elapsed = ctx.ports.clock.now().duration_since(w.since);
            ctx.progress.emit(&ctx.ports, &spec.cluster.name, EventKind::Waited { reason: w.reason, elapsed });
        }
    };
    let mut needs_human: BTreeMap<StepId, Condition> = BTreeMap::new();
    let mut passes = 0usize;
    // What the next pass reads afresh (see `Refresh`): everything first.
    let mut prev: Option<Observed> = None;
    let mut want = Refresh::everything(spec);
    let mut last_full = ctx.ports.clock.now();
    // The last batch only wrote the journal (an operation marked completed or abandoned): the
    // world is as the last pass saw it, so the next plan is made from that observation.
    let mut replan = false;
    let mut projected = false;
    loop {
        passes += 1;
        if ctx.max_passes.is_some_and(|m| passes > m) {
            return Err(ReconcileError::PassLimit(passes - 1));
        }
        if ctx.stop_requested() {
            return Err(ReconcileError::Stopped);
        }
        let now = ctx.ports.clock.now();
        let stale =
            now.duration_since(last_full) >= jiff::SignedDuration::try_from(FULL_LOOK_EVERY).unwrap_or_default();
        if stale || want == Refresh::everything(spec) {
            want = Refresh::everything(spec);
            last_full = now;
        }
        let carried = if want == Refresh::everything(spec) { None } else { prev.as_ref() };
        let planned = match (std::mem::take(&mut replan), carried) {
            (true, Some(_)) => match prev.take() {
                Some(obs) => {
                    let view = journal.lock().await.view().clone();
                    let p = plan(spec, &obs, &view);
                    Ok((obs, p))
                }
                None => plan_pass(spec, ctx, &journal, None, &want).await,
            },
            _ => plan_pass(spec, ctx, &journal, carried, &want).await,
        };
        let (obs, p) = match planned {
            Ok(x) => x,
            Err(e) => {
                write_status(spec, ctx, &journal, None, None, Some(e.to_string()), None).await?;
                return Err(e);
            }
        };
        if let Some(n) = ctx.notify.as_ref().filter(|n| n.serves(&spec.cluster.name)) {
            offer_completions(n, spec, journal.lock().await.view(), &obs, &p);
        }
        // Work is due: its whole sequence is projected once, beside the steps (a steady state
        // projects nothing).
        if let Some(project) = ctx.project.as_ref().filter(|_| !projected && !p.steps().is_empty()) {
            projected = true;
            let (found, into) = (project(spec, now), Arc::clone(&ctx.expected));
            tokio::spawn(async move {
                let e = found.await;
                if let Ok(mut x) = into.lock() {
                    *x = e;
                }
            });
        }
        // A step that failed needing a human and is still wanted after a fresh look: stop.
        if let Some(c) = p.steps().iter().find_map(|s| needs_human.get(&s.id)) {
            // Fast Snapshot Restore bills per zone-hour: switching it off is not held back by
            // another step's failure.
            let off: Vec<Step> =
                p.steps().iter().filter(|s| matches!(s.action, Action::DisableFastRestore { .. })).cloned().collect();
            if !off.is_empty() {
                exec.run_all(&off, p.subject.as_ref()).await?;
            }
            let blocked = Plan { outcome: Outcome::Blocked(c.clone()), ..p.clone() };
            write_status(spec, ctx, &journal, Some(&blocked), Some(&obs), None, None).await?;
            ctx.progress.emit(&ctx.ports, &spec.cluster.name, EventKind::Blocked(c.clone()));
            if let Some(n) = &ctx.notify {
                offer_condition(n, spec, NoticeKind::Failed, &blocked, &obs, c);
            }
            return Ok(Settled::Blocked(c.clone()));
        }
        // The wait this pass continues, or the one it begins.
        let wait_now = match &p.outcome {
            Outcome::Wait(w) => Some(match &last_wait {
                Some((ws, _)) if ws.reason == w.reason => WaitState { expect: w.expect, ..ws.clone() },
                _ => WaitState { reason: w.reason.clone(), since: obs.now, expect: w.expect },
            }),
            _ => None,
        };
        let doc = write_status(spec, ctx, &journal, Some(&p), Some(&obs), None, wait_now.as_ref()).await?;
        let (started, op_stage) = match p.op.as_ref() {
            Some(op) => journal.lock().await.view().op(op).map_or((None, Stage::Opening), |v| (v.started, stage(v))),
            None => (None, Stage::Opening),
        };
        set_priority(p.op.as_ref().map(|_| Priority {
            stage: op_stage,
            since: started.unwrap_or(obs.now),
            cluster: spec.cluster.name.clone(),
        }));
        let obs = prev.insert(obs);
        match &p.outcome {
            Outcome::Converged => {
                wait_over(&mut last_wait);
                let transition = worked || !was_converged;
                if let Some(r) = doc.restore_summary.as_ref().filter(|r| worked && r.completed >= began) {
                    // The daemon's log says once whether the restore it finished is done and safe.
                    let text = r.render();
                    let lines: Vec<&str> = text.lines().map(str::trim).collect();
                    tracing::info!(cluster = %spec.cluster.name, operation = %r.operation, safe = r.safe,
                        running_on = r.running_on.as_deref().unwrap_or(""),
                        downtime_seconds = r.downtime.as_ref().map_or(-1.0, |d| d.seconds),
                        "{}", lines.join("; "));
                }
                ctx.progress.emit(&ctx.ports, &spec.cluster.name, EventKind::Converged { transition });
                if let Some(n) = &ctx.notify {
                    n.rearm(&spec.cluster.name);
                }
                return Ok(Settled::Converged);
            }
            Outcome::Blocked(c) => {
                wait_over(&mut last_wait);
                ctx.progress.emit(&ctx.ports, &spec.cluster.name, EventKind::Blocked(c.clone()));
                if let Some(n) = &ctx.notify {
                    offer_condition(n, spec, NoticeKind::NeedsHuman, &p, obs, c);
                }
                return Ok(Settled::Blocked(c.clone()));
            }
            Outcome::Wait(w) => {
                want = Refresh::after(spec, obs, &[], Some(w.watch));
                worked = true;
                let polls = match &mut last_wait {
                    Some((ws, polls)) if ws.reason == w.reason => {
                        *polls += 1;
                        *polls
                    }
                    _ => {
                        wait_over(&mut last_wait);
                        ctx.progress.emit(
                            &ctx.ports,
                            &spec.cluster.name,
                            EventKind::Waiting { reason: w.reason.clone(), expect: w.expect },
                        );
                        last_wait = wait_now.map(|ws| (ws, 0));
                        0
                    }
                };
                // A wait that three looks did not end may be about something the carried-over
                // part of the picture hides: look at everything.
                if polls >= 2 {
                    want = Refresh::everything(spec);
                }
                // A wait on Fast Snapshot Restore (an hour per TiB) names the time left, recomputed
                // from EC2's enabling time on every pass: each look is then, not on the short
                // back-off meant for steps of seconds.
                let delay = if w.watch.fast_restore { w.expect } else { poll_delay(w.expect, polls) };
                ctx.pause(delay).await;
            }
            Outcome::Steps { steps } => {
                wait_over(&mut last_wait);
                worked = true;
                if ctx.stop_requested() {
                    return Err(ReconcileError::Stopped);
                }
                let (results, status) = if status_beside(spec, obs, steps) {
                    futures::join!(exec.run_all(steps, p.subject.as_ref()), observe::status_beside(spec, &ctx.ports))
                } else {
                    (exec.run_all(steps, p.subject.as_ref()).await, None)
                };
                let results = results?;
                let mut known = carry_seen(spec, obs, steps, &results);
                if let Some((status, reachable)) = status {
                    obs.cluster = status;
                    obs.cluster_reachable = reachable;
                    known.status = true;
                }
                replan = steps.iter().all(|s| !s.action.is_mutating())
                    && results.iter().all(|r| matches!(r, StepResult::Done { .. }));
                let (next, retry_pause) = sort_results(spec, obs, steps, results, &known, &mut needs_human);
                if retry_pause {
                    ctx.pause(ctx.policy.max_delay).await;
                } else if let Some(d) = (next != Refresh::everything(spec)).then(|| settle_time(steps)).flatten() {
                    // Only slow EC2 operations were started: nothing can be seen before their
                    // median, so the first look is then (the poll rule's first look).
                    ctx.pause(d).await;
                }
                want = next;
            }
        }
    }
}

/// How far an operation has come for the request budget: [`Stage::Opening`] until one of its
/// mutating EC2 calls succeeded (see [`crate::ports::limit`]).
fn stage(op: &crate::journal::OpView) -> Stage {
    let called_ec2 =
        op.steps.values().any(|s| s.succeeded && s.last_action.as_ref().is_some_and(|a| a.api().starts_with("ec2:")));
    if called_ec2 { Stage::Later } else { Stage::Opening }
}

/// Whether the CLUSTERPRO status is read beside this batch instead of after it
/// ([`observe::status_beside`]): nothing in the batch changes what CLUSTERPRO reports (nor is it
/// the preflight, whose commands run on the nodes), it calls a port (a batch that only writes the
/// journal is followed by no look), and md is not configured, so the next pass would read nothing
/// else of CLUSTERPRO (with md configured it reads the mirror colours, as slow as the status). The
/// status is then no older than the batch, which is what a read after it would be plus the
/// batch's length: seconds (a disk command, an EC2 call), while the restore's disks are swapped.
fn status_beside(spec: &Spec, obs: &Observed, steps: &[Step]) -> bool {
    steps.iter().any(|s| s.action.is_mutating())
        && steps.iter().all(|s| !cluster_touched(&s.action) && !matches!(s.action, Action::Preflight { .. }))
        && spec.mirrors().all(|m| obs.config.mirror(&m.resource).is_none())
}

/// The server whose disk list an action can change, if any.
fn disks_touched(action: &Action) -> Option<&ServerName> {
    match action {
        Action::DiskOffline { server, .. }
        | Action::DiskOnline { server, .. }
        | Action::SetLetter { server, .. }
        | Action::AttachVolume { server, .. }
        | Action::DetachVolume { server, .. }
        | Action::StartInstance { server, .. }
        | Action::ShutdownServer { server }
        | Action::LeaveThenStart { server, .. }
        | Action::Vendor { server, .. } => Some(server),
        _ => None,
    }
}

/// Whether an action changes what CLUSTERPRO reports (its status, colours or configuration).
fn cluster_touched(action: &Action) -> bool {
    matches!(
        action,
        Action::StopGroup { .. }
            | Action::StartGroup { .. }
            | Action::MoveGroup { .. }
            | Action::StopResource { .. }
            | Action::StartResource { .. }
            | Action::ShutdownServer { .. }
            | Action::LeaveThenStart { .. }
            | Action::Vendor { .. }
            | Action::ApplyConfig { .. }
    )
}

/// What a batch's answers told, already put into the observation the next pass starts from.
#[derive(Debug, Default)]
struct Known {
    /// Servers whose disk list an answer gave.
    disks: BTreeSet<ServerName>,
    /// The CLUSTERPRO status came with an answer.
    status: bool,
    /// The md's mirror colours came with an answer.
    mirror: bool,
    /// The configuration came with an answer.
    config: bool,
    /// Resources whose new tags an answer confirmed.
    tagged: BTreeSet<String>,
    /// Volumes whose attachment an answer gave.
    attaching: BTreeSet<VolumeId>,
}

impl Known {
    /// Whether the answers already show what `action` changed (the next pass need not read it).
    fn shows(&self, action: &Action) -> bool {
        match action {
            Action::ApplyConfig { .. } => self.config,
            Action::Tag { resource, .. } => self.tagged.contains(resource),
            // The server's disks are still listed: the attachment is out of step with them.
            Action::AttachVolume { volume, .. } => self.attaching.contains(volume),
            a => disks_touched(a).is_some_and(|server| self.disks.contains(server)),
        }
    }
}

/// Puts what the batch's answers showed into `obs`, the observation the next pass starts from,
/// and returns what is known that way (the next pass need not read it). An answer is taken only
/// where nothing else in the batch could have changed what it shows after it was read: a disk list
/// from the one step of the batch that touched that server's disks (two commands on one server
/// run at once, and neither's list need show the other's change), or from drive letters alone
/// ([`merge_letters`]), the cluster from the batch's one CLUSTERPRO operation.
fn carry_seen(spec: &Spec, obs: &mut Observed, steps: &[Step], results: &[StepResult]) -> Known {
    let touching = touching(steps);
    let one_cluster_op = steps.iter().filter(|s| cluster_touched(&s.action)).count() == 1;
    let mut known = Known::default();
    for (server, disks) in merge_letters(steps, results, &touching) {
        obs.disks.insert(server.clone(), Ok(disks));
        known.disks.insert(server);
    }
    for r in results {
        let StepResult::Done { seen: Some(seen), .. } = r else { continue };
        match seen {
            Seen::Disks { server, disks } if touching.get(server) == Some(&1) => {
                obs.disks.insert(server.clone(), Ok(disks.clone()));
                known.disks.insert(server.clone());
            }
            Seen::Cluster(left) if one_cluster_op => {
                if let Some(status) = &left.status {
                    obs.cluster = status.clone();
                    obs.cluster_reachable = true;
                    known.status = true;
                }
                if let Some(config) = &left.config {
                    let version = config.version.clone().or_else(|| obs.config.version.clone());
                    obs.config = ClusterConfig { version, ..config.clone() };
                    known.config = true;
                }
                if let Some(colors) = left.mirrors.get(&spec.mirror.resource) {
                    obs.mirror = Some(colors.clone());
                    known.mirror = true;
                }
            }
            Seen::Attaching { volume, instance, device } => {
                if let Some(v) = obs.volumes.iter_mut().find(|v| &v.id == volume) {
                    v.state = VolumeState::InUse;
                    v.attachments = vec![Attachment {
                        instance: instance.clone(),
                        device: device.clone(),
                        state: AttachState::Attaching,
                    }];
                    known.attaching.insert(volume.clone());
                }
            }
            Seen::Tags { resource, tags } => {
                if let Some(v) = obs.volumes.iter_mut().find(|v| v.id.as_str() == resource.as_str()) {
                    v.tags.extend(tags.iter().map(|(k, val)| (k.clone(), val.clone())));
                    known.tagged.insert(resource.clone());
                }
            }
            // Another step of the batch may have changed what the answer shows.
            Seen::Disks { .. } | Seen::Cluster(_) => {}
        }
    }
    known
}

/// How many steps of a batch touch each server's disks.
fn touching(steps: &[Step]) -> BTreeMap<&ServerName, usize> {
    let mut touching: BTreeMap<&ServerName, usize> = BTreeMap::new();
    for s in steps {
        if let Some(server) = disks_touched(&s.action) {
            *touching.entry(server).or_default() += 1;
        }
    }
    touching
}

/// A drive-letter command's answer: the volume, the partition it set, the disks it listed.
type LetterAnswer<'a> = (&'a VolumeId, u32, &'a [Disk]);

/// The disk lists of servers whose disks only drive-letter commands touched in the batch, more
/// than one of them: each answer was read after its own change, and a letter command changes its
/// own partition only (`Set-Partition -DiskNumber N -PartitionNumber P -NewDriveLetter L` sets
/// the attributes of the one partition it names: Microsoft, Set-Partition reference,
/// learn.microsoft.com/powershell/module/storage/set-partition; that it fails rather than take a
/// letter another partition holds is [U], README's list; the simulator refuses). So each
/// partition a command set is as its own answer shows it, the rest as any answer shows it. Every
/// command must have answered; a server with any other disk command in the batch is left to a
/// fresh list.
fn merge_letters(
    steps: &[Step],
    results: &[StepResult],
    touching: &BTreeMap<&ServerName, usize>,
) -> Vec<(ServerName, Vec<Disk>)> {
    let mut answers: BTreeMap<&ServerName, Vec<LetterAnswer<'_>>> = BTreeMap::new();
    for (s, r) in steps.iter().zip(results) {
        if let (
            Action::SetLetter { server, volume, partition, .. },
            StepResult::Done { seen: Some(Seen::Disks { server: listed, disks }), .. },
        ) = (&s.action, r)
            && listed == server
        {
            answers.entry(server).or_default().push((volume, *partition, disks.as_slice()));
        }
    }
    let mut merged = Vec::new();
    'servers: for (server, lists) in answers {
        if lists.len() < 2 || touching.get(server) != Some(&lists.len()) {
            continue;
        }
        let mut disks = lists[0].2.to_vec();
        for (volume, number, own) in &lists {
            let theirs = own
                .iter()
                .find(|d| d.volume == **volume)
                .and_then(|d| d.partitions.iter().find(|p| p.number == *number));
            let ours = disks
                .iter_mut()
                .find(|d| d.volume == **volume)
                .and_then(|d| d.partitions.iter_mut().find(|p| p.number == *number));
            match (theirs, ours) {
                (Some(t), Some(o)) => *o = t.clone(),
                _ => continue 'servers,
            }
        }
        merged.push((server.clone(), disks));
    }
    merged
}

/// Records needs-human failures of a batch (cleared by a success) and returns what the next pass
/// must read, and whether a retryable failure asks for a pause. After any failure nothing is
/// assumed: the next pass looks at everything. What the answers showed ([`carry_seen`]) is not
/// read again.
fn sort_results(
    spec: &Spec,
    obs: &Observed,
    steps: &[Step],
    results: Vec<StepResult>,
    known: &Known,
    needs_human: &mut BTreeMap<StepId, Condition>,
) -> (Refresh, bool) {
    let (mut retry_pause, mut all_done) = (false, true);
    for (s, r) in steps.iter().zip(results) {
        match r {
            StepResult::Done { .. } => {
                needs_human.remove(&s.id);
            }
            StepResult::Failed { class: ErrorClass::NeedsHuman, condition } => {
                all_done = false;
                needs_human.insert(s.id.clone(), condition);
            }
            StepResult::Failed { .. } => {
                all_done = false;
                retry_pause = true;
            }
        }
    }
    if !all_done {
        return (Refresh::everything(spec), retry_pause);
    }
    let actions: Vec<Action> = steps.iter().filter(|s| !known.shows(&s.action)).map(|s| s.action.clone()).collect();
    let mut next = Refresh::after(spec, obs, &actions, None);
    next.keep_status = known.status;
    next.keep_mirror |= known.mirror;
    (next, retry_pause)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_start_at_the_median_then_back_off_to_the_cap() {
        let e = Duration::from_secs(3);
        assert_eq!(poll_delay(e, 0), e);
        assert_eq!(poll_delay(e, 1), Duration::from_secs(1));
        assert_eq!(poll_delay(e, 2), Duration::from_millis(1500));
        assert_eq!(poll_delay(e, 3), Duration::from_millis(2250));
        assert_eq!(poll_delay(e, 10), POLL_CAP);
        assert_eq!(poll_delay(e, u32::MAX), POLL_CAP);
    }

    /// Two drive letters on one server: each answer shows its own partition's new letter (read
    /// after its own change), and the merged list shows both; a server where another disk command
    /// ran beside them, or a letter without an answer, is left to a fresh list.
    #[test]
    fn two_letter_answers_on_one_server_merge_into_the_list_both_left() {
        use crate::ids::RequestName;
        use crate::plan::OpId;
        use crate::ports::node::PartitionInfo;
        let (server, vol) = (ServerName::parse("server1").unwrap(), VolumeId::parse("vol-0abc1234").unwrap());
        let part = |number, letter| PartitionInfo { number, letter, path: None, aliases: Vec::new(), mounted: false };
        let list = |one, two| {
            vec![Disk {
                volume: vol.clone(),
                number: 1,
                online: true,
                read_only: false,
                offline_reason: None,
                partitions: vec![part(1, one), part(2, two)],
            }]
        };
        let op = OpId::Restore(RequestName::parse("r1").unwrap());
        let step = |action: Action| Step {
            id: StepId::new(&op, &crate::plan::StepKind::Complete, None),
            op: op.clone(),
            action,
            why: String::new(),
        };
        let letter = |partition, letter| {
            step(Action::SetLetter { server: server.clone(), volume: vol.clone(), partition, letter })
        };
        let done = |disks| StepResult::Done { detail: None, seen: Some(Seen::Disks { server: server.clone(), disks }) };
        let steps = vec![letter(1, 'R'), letter(2, 'M')];
        // Each list shows the other partition as it was before (the commands ran at once).
        let results = vec![done(list(Some('R'), Some('E'))), done(list(Some('D'), Some('M')))];
        let merged = merge_letters(&steps, &results, &touching(&steps));
        assert_eq!(merged, vec![(server.clone(), list(Some('R'), Some('M')))]);

        let mut with_online = steps.clone();
        with_online.push(step(Action::DiskOnline { server: server.clone(), volume: vol.clone() }));
        let mut more = results.clone();
        more.push(done(list(Some('D'), Some('E'))));
        assert!(merge_letters(&with_online, &more, &touching(&with_online)).is_empty());

        let unanswered = vec![results[0].clone(), StepResult::Done { detail: None, seen: None }];
        assert!(merge_letters(&steps, &unanswered, &touching(&steps)).is_empty());
    }

    #[test]
    fn a_pass_answers_when_the_next_one_runs() {
        let cluster = crate::ids::ClusterName::parse("c1").expect("a valid name");
        let busy = |retry_in| {
            Err(ReconcileError::Store(StoreError::Busy { cluster: cluster.clone(), holder: "h2".into(), retry_in }))
        };
        let blocked = Settled::Blocked(Condition {
            reason: crate::plan::Reason::SnapshotMissing,
            message: "gone".into(),
            action: "restore another".into(),
        });
        let table: Vec<(&str, Result<Settled, ReconcileError>, Requeue)> = vec![
            ("converged", Ok(Settled::Converged), Requeue::OnChange),
            ("blocked", Ok(blocked), Requeue::OnChange),
            ("stopped", Err(ReconcileError::Stopped), Requeue::OnChange),
            (
                "lease held, takeover later",
                busy(Some(Duration::from_secs(3))),
                Requeue::After(Duration::from_millis(3100)),
            ),
            ("lease held by a local lock", busy(None), Requeue::Backoff),
            ("pass limit", Err(ReconcileError::PassLimit(9)), Requeue::Backoff),
            (
                "lease lost",
                Err(ReconcileError::Store(StoreError::LeaseLost {
                    cluster: cluster.clone(),
                    epoch: 2,
                    why: "taken".into(),
                })),
                Requeue::Backoff,
            ),
        ];
        for (case, result, want) in table {
            assert_eq!(requeue(&result), want, "{case}");
        }
    }
}
