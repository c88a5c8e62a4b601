//! One cluster's worker: one pass at a time, toward the last valid version of its file.
//!
//! A "pass" here is one call of [`reconcile`]: observe → plan → execute until converged,
//! blocked, failed, or stopped at a step boundary. The worker's contract:
//! - it never runs two passes at once (it is one task, and awaits each pass);
//! - a wake during a pass schedules exactly one more pass after it; a wake that changes what the
//!   file says also asks the running pass to stop at its next step boundary;
//! - an invalid file never replaces the last valid spec: it only travels into the status document;
//! - a removed file stops the worker after the current step, undoing nothing;
//! - when the next pass runs is the finished pass's own answer ([`crate::reconcile::requeue`]):
//!   on a change, after the backoff, or when another holder's lease may be taken over; the worker
//!   does the waiting;
//! - a failed pass is retried after an exponential backoff with jitter, cut short by a new spec;
//! - an idle worker whose spec has a backup schedule passes again just after the next slot (in the
//!   world's time), whatever the resync interval.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc::UnboundedSender;
use tokio::sync::watch::Receiver;
use tokio_util::sync::CancellationToken;

use super::{Metrics, WorldOpener};
use crate::execute::{Progress, RetryPolicy};
use crate::ids::ClusterName;
use crate::ports::{
    Ports,
    store::{Store, StoreError},
};
use crate::reconcile::{Context, ReconcileError, Requeue, Settled, reconcile, requeue};
use crate::spec::Spec;
use crate::status::{Phase, StatusDoc};

/// What the newest read of a cluster's file said.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Desired {
    /// A valid spec.
    Valid(Arc<Spec>),
    /// The file is invalid: the rendered errors.
    Invalid(String),
    /// The file is gone.
    Removed,
}

/// The status text of a cluster whose file was removed.
pub const REMOVED: &str = "desired-state file removed; not reconciling";

/// What all workers share.
pub(super) struct Shared {
    pub(super) store: Arc<dyn Store>,
    /// The process's notification queue.
    pub(super) notify: crate::notify::Notifier,
    pub(super) worlds: WorldOpener,
    /// Projects a cluster's operations when it has work (status step total and ETA).
    pub(super) projector: Option<crate::reconcile::Projector>,
    pub(super) policy: RetryPolicy,
    pub(super) progress: Progress,
    pub(super) metrics: Arc<Metrics>,
    pub(super) shutdown: CancellationToken,
    pub(super) backoff_min: Duration,
    pub(super) backoff_max: Duration,
    /// Wakes the controller (a worker that ends asks for a rescan, in case its file came back).
    pub(super) wake: UnboundedSender<super::Touch>,
}

impl Shared {
    fn backoff(&self) -> impl Iterator<Item = Duration> + use<> {
        crate::policy::pass_backoff(self.backoff_min, self.backoff_max)
    }
}

/// The worker of the cluster whose file is `file` (stem `key`).
#[allow(clippy::too_many_lines)] // one loop whose states read best in one place
pub(super) async fn run(key: String, file: PathBuf, mut rx: Receiver<Desired>, shared: Arc<Shared>) {
    let mut last_valid: Option<Arc<Spec>> = None;
    let mut ports: Option<Ports> = None;
    let mut backoff = shared.backoff();
    // Set after a failed pass: the next pass waits this long unless the file changes.
    let mut delay: Option<Duration> = None;
    let mut pending = true;
    // What the last pass started with: during a backoff only a different content ends the wait.
    let mut last_seen: Option<Desired> = None;
    'worker: loop {
        if !pending || delay.is_some() {
            let deadline = delay.take().map(|d| tokio::time::Instant::now() + d);
            // A scheduled backup is started at its slot, not at the next resync (which may be
            // minutes away when stretched to fit the Describe budget).
            let slot = next_scheduled_pass(last_valid.as_deref(), ports.as_ref());
            loop {
                tokio::select! {
                    () = shared.shutdown.cancelled() => break 'worker,
                    r = rx.changed() => {
                        if r.is_err() {
                            break 'worker;
                        }
                        if deadline.is_none() || last_seen.as_ref() != Some(&*rx.borrow()) {
                            break;
                        }
                    }
                    () = sleep_until_or_never(deadline) => break,
                    () = sleep_for_slot(ports.as_ref(), slot), if deadline.is_none() => {
                        tracing::info!(cluster = %key, "scheduled backup slot reached");
                        break;
                    }
                }
            }
        }
        if shared.shutdown.is_cancelled() {
            break;
        }
        pending = false;
        let desired = rx.borrow_and_update().clone();
        let spec_error = match &desired {
            Desired::Removed => {
                write_patch(&shared, &key, &file, ports.as_ref(), |d| {
                    d.stopped = Some(REMOVED.to_owned());
                })
                .await;
                shared.metrics.removed(&key);
                shared.metrics.check_in(&key);
                tracing::info!(cluster = %key, file = %file.display(), "{REMOVED}");
                break;
            }
            Desired::Invalid(e) => {
                if last_seen.as_ref() != Some(&desired) {
                    let keeping = if last_valid.is_some() {
                        "keeping its last valid version"
                    } else {
                        "no valid version seen yet: not reconciling until it is fixed"
                    };
                    tracing::warn!(cluster = %key, "desired state invalid; {keeping}:\n{e}");
                }
                Some(e.clone())
            }
            Desired::Valid(spec) => {
                if last_valid.as_ref() != Some(spec) {
                    backoff = shared.backoff();
                }
                last_valid = Some(Arc::clone(spec));
                None
            }
        };
        let Some(spec) = last_valid.clone() else {
            // Never valid in this process: nothing to work toward; say why and wait for an edit.
            let error = spec_error.unwrap_or_default();
            last_seen = Some(desired);
            write_patch(&shared, &key, &file, ports.as_ref(), |d| {
                d.spec_error = Some(error.clone());
                d.stopped = None;
            })
            .await;
            shared.metrics.check_in(&key);
            continue;
        };
        let p = match &ports {
            Some(p) => p.clone(),
            None => match (shared.worlds)(&spec).await {
                Ok(p) => {
                    ports = Some(p.clone());
                    p
                }
                Err(e) => {
                    tracing::error!(cluster = %key, error = %e, "cannot open the world");
                    write_patch(&shared, &key, &file, None, |d| {
                        d.phase = Phase::Error;
                        d.last_error = Some(e.clone());
                    })
                    .await;
                    shared.metrics.pass_ended(&key, "error");
                    shared.metrics.check_in(&key);
                    delay = backoff.next();
                    continue;
                }
            },
        };
        let stop = shared.shutdown.child_token();
        let mut ctx = Context::with_store(p, Arc::clone(&shared.store));
        ctx.policy = shared.policy;
        ctx.progress = shared.progress.clone();
        ctx.stop = Some(stop.clone());
        ctx.spec_error = spec_error;
        ctx.notify = Some(shared.notify.clone());
        ctx.project.clone_from(&shared.projector);
        let started_with = desired;
        last_seen = Some(started_with.clone());
        let pass = reconcile(&spec, &ctx);
        tokio::pin!(pass);
        let result = loop {
            tokio::select! {
                r = &mut pass => break r,
                changed = rx.changed(), if !stop.is_cancelled() => {
                    if changed.is_err() || *rx.borrow() != started_with {
                        stop.cancel();
                    }
                    pending = true;
                }
            }
        };
        let outcome = match &result {
            Ok(Settled::Converged) => "converged",
            Ok(Settled::Blocked(_)) => "blocked",
            Err(ReconcileError::Stopped) => "stopped",
            Err(ReconcileError::Store(StoreError::Busy { retry_in: Some(_), .. })) => "standby",
            Err(_) => "error",
        };
        shared.metrics.pass_ended(&key, outcome);
        shared.metrics.check_in(&key);
        if result.is_ok() {
            backoff = shared.backoff();
        }
        match (requeue(&result), &result) {
            (Requeue::OnChange, _) => {}
            (Requeue::After(d), Err(ReconcileError::Store(StoreError::Busy { holder, .. }))) => {
                delay = Some(d);
                tracing::debug!(cluster = %key, holder = %holder, retry_in = ?d, "held by another mirrorctl");
            }
            (Requeue::After(d), _) => delay = Some(d),
            (Requeue::Backoff, _) => {
                delay = backoff.next();
                if let Err(e) = &result {
                    tracing::warn!(cluster = %key, error = %e, retry_in = ?delay, "pass failed");
                }
            }
        }
        // A changed file must not wait out a backoff.
        if rx.has_changed().unwrap_or(false) && *rx.borrow() != started_with {
            delay = None;
            pending = true;
        }
    }
    let _ = shared.wake.send(super::Touch::Other);
}

/// How long, in the world's time, until just after the earliest next backup slot of `spec`'s
/// schedules.
fn next_scheduled_pass(spec: Option<&Spec>, ports: Option<&Ports>) -> Option<Duration> {
    let backup = spec?.backup.as_ref()?;
    let now = ports?.clock.now();
    let slot = backup.next_wake(now)?;
    let until = Duration::try_from(slot.duration_since(now)).ok()?;
    Some(until + Duration::from_secs(1))
}

/// Sleeps `d` of the world's time (the lab's clock runs faster), or forever without one.
async fn sleep_for_slot(ports: Option<&Ports>, d: Option<Duration>) {
    match (ports, d) {
        (Some(p), Some(d)) => p.clock.sleep(d).await,
        _ => std::future::pending().await,
    }
}

async fn sleep_until_or_never(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Updates the cluster's status document in place (or starts one), for what the reconcile loop
/// does not write itself: an invalid file before any valid one, a removed file, a world that
/// cannot be opened.
async fn write_patch(shared: &Shared, key: &str, file: &Path, ports: Option<&Ports>, f: impl FnOnce(&mut StatusDoc)) {
    let Ok(cluster) = ClusterName::parse(key) else {
        tracing::warn!(file = %file.display(), "the file name is not a cluster name; no status document");
        return;
    };
    let now = ports.map_or_else(Timestamp::now, |p| p.clock.now());
    let mut doc = shared
        .store
        .read_status(&cluster)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| StatusDoc::empty(cluster, file.to_owned(), now));
    f(&mut doc);
    doc.updated = now;
    if let Err(e) = shared.store.write_status(&doc, None).await {
        tracing::error!(cluster = %doc.cluster, error = %e, "cannot write status");
    }
}
