//! The whole sequence of an operation, projected before any step of it runs (`mirrorctl plan`).
//!
//! Why this module exists: the planner only answers "what now" — the next batch of steps, or what
//! to wait for — because each later decision depends on what the world looks like after this
//! batch (a volume's id, the letters Windows gave a disk, when the mirror turned GREEN). An operator
//! about to restore a production mirror needs the whole sequence to review, not the first three
//! steps.
//!
//! On the lab world the faithful way is to run the very planner and executor, now, against a
//! throw-away copy of the simulated world ([`crate::sim::SimWorld::open_copy`]: nothing is written
//! back) and a copy of the cluster's journal in a temporary directory, on a paused clock (model
//! time jumps over every wait, so a restore projects in about a second), and to record what they
//! do. Nothing of the real lab world, journal or status changes. The copy continues the world's
//! own seeded latency model, so the projection is what `apply` would do unless something changes
//! the world in between.
//!
//! On AWS there is no copy of the world to run against: the projection stops after the next batch,
//! and the plan says so ([`AWS_LIMIT`]).

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::mpsc::unbounded_channel;

use crate::execute::{Event, EventKind, Progress};
use crate::journal::writer::Journal;
use crate::plan::Reason;
use crate::reconcile::{Context, ReconcileError, Settled, reconcile};
use crate::sim::SimWorld;
use crate::spec::Spec;

/// Passes a projection may take before it is cut off (a restore takes about 40).
pub(crate) const MAX_PASSES: usize = 400;

/// What `plan` says on AWS, where nothing can be projected past the next batch.
pub(crate) const AWS_LIMIT: &str = "on AWS the projection stops after the steps above: each later step depends on \
                             what they leave (volume ids, disk letters, mirror state). `mirrorctl plan --world lab` \
                             with this file shows a whole sequence on a simulated copy of the cluster";

/// One thing the projected run did, at a model time counted from the start of the projection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Entry {
    /// A step started (its intent would be written now).
    Step {
        /// Model seconds from now.
        at_s: f64,
        /// Stable step id.
        step: String,
        /// What it does.
        what: String,
    },
    /// Nothing to run until something in progress changes.
    Wait {
        /// Model seconds from now.
        at_s: f64,
        /// What is awaited.
        reason: String,
    },
    /// A step failed in the projection (it would be retried, or block).
    Failed {
        /// Model seconds from now.
        at_s: f64,
        /// Step id.
        step: String,
        /// The error.
        error: String,
    },
    /// An operation completed.
    Completed {
        /// Model seconds from now.
        at_s: f64,
        /// The operation.
        op: String,
    },
}

/// How the projected run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum End {
    /// The cluster reached its desired state.
    Converged,
    /// It stopped needing a human.
    Blocked {
        /// The condition's reason.
        reason: Reason,
        /// What is wrong.
        message: String,
        /// What to do.
        action: String,
    },
    /// The projection itself stopped without settling.
    Cut {
        /// Why.
        why: String,
    },
}

/// The projected sequence of a plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Projection {
    /// How it was made.
    pub method: String,
    /// What would happen, in order.
    pub entries: Vec<Entry>,
    /// How it ends.
    pub end: End,
    /// Model seconds from now to the end.
    pub model_seconds: f64,
}

impl Projection {
    /// How many steps the projected run starts.
    pub(crate) fn step_count(&self) -> usize {
        self.entries.iter().filter(|e| matches!(e, Entry::Step { .. })).count()
    }
}

/// A temporary directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos());
        let dir = std::env::temp_dir().join(format!("mirrorctl-projection-{}-{nanos}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("creating the projection's directory {}: {e}", dir.display()))?;
        Ok(TempDir(dir))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Projects `spec`'s reconcile on a copy of the lab world saved at `world_file`, with a copy of the
/// cluster's journal under `state_dir`. Runs on a thread of its own (a paused runtime cannot be
/// entered from the caller's), with logging switched off there: the projection's steps are not
/// actions and must not appear in the log as if they were.
pub fn lab(spec: &Spec, state_dir: &Path, world_file: &Path) -> Result<Projection, String> {
    let tmp = TempDir::new()?;
    let journal = Journal::path_for(state_dir, &spec.cluster.name);
    if journal.exists() {
        let copy = Journal::path_for(&tmp.0, &spec.cluster.name);
        if let Some(dir) = copy.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        std::fs::copy(&journal, &copy).map_err(|e| format!("copying the journal {}: {e}", journal.display()))?;
    }
    let (spec, dir, world_file) = (spec.clone(), tmp.0.clone(), world_file.to_owned());
    let handle = std::thread::spawn(move || -> Result<Projection, String> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .map_err(|e| format!("cannot start the projection's runtime: {e}"))?;
        let quiet = tracing::subscriber::NoSubscriber::default();
        tracing::subscriber::with_default(quiet, || rt.block_on(run(&spec, &dir, &world_file)))
    });
    handle.join().map_err(|_| "the projection's thread panicked".to_owned())?
}

async fn run(spec: &Spec, dir: &Path, world_file: &Path) -> Result<Projection, String> {
    let world: Arc<SimWorld> =
        SimWorld::open_copy(world_file, 1.0).map_err(|e| format!("copying lab world {}: {e}", world_file.display()))?;
    let (tx, mut rx) = unbounded_channel::<Event>();
    let mut ctx = Context::new(world.ports(), dir.to_owned());
    ctx.progress = Progress::to(tx);
    ctx.max_passes = Some(MAX_PASSES);
    let start = world.now();
    let result = reconcile(spec, &ctx).await;
    let stopped = world.now();
    drop(ctx);
    let at = |e: &Event| (e.at.duration_since(start).as_secs_f64() * 10.0).round() / 10.0;
    let mut entries = Vec::new();
    while let Some(e) = rx.recv().await {
        let at_s = at(&e);
        match e.kind {
            EventKind::StepStarted { step, what, .. } => {
                entries.push(Entry::Step { at_s, step: step.to_string(), what });
            }
            EventKind::Waiting { reason, .. } => entries.push(Entry::Wait { at_s, reason }),
            EventKind::StepFailed { step, error } => {
                entries.push(Entry::Failed { at_s, step: step.to_string(), error });
            }
            EventKind::Completed { op } => entries.push(Entry::Completed { at_s, op: op.to_string() }),
            EventKind::StepDone { .. }
            | EventKind::Retrying { .. }
            | EventKind::Blocked(_)
            | EventKind::Waited { .. }
            | EventKind::Converged { .. }
            | EventKind::Lease { .. } => {}
        }
    }
    let end = match result {
        Ok(Settled::Converged) => End::Converged,
        Ok(Settled::Blocked(c)) => End::Blocked { reason: c.reason, message: c.message, action: c.action },
        Err(ReconcileError::PassLimit(n)) => {
            End::Cut { why: format!("the projection stopped after {n} passes without settling") }
        }
        Err(e) => End::Cut { why: format!("the projection could not go on: {e}") },
    };
    Ok(Projection {
        method: "the planner and executor, run now on a throw-away copy of the lab world and journal".into(),
        entries,
        end,
        model_seconds: (stopped.duration_since(start).as_secs_f64() * 10.0).round() / 10.0,
    })
}

/// Renders a projection for a terminal: one line per step, the steps of one batch under one time,
/// each wait between batches, and how it ends.
pub fn render(p: &Projection) -> String {
    let mut s = String::from(
        "\nProjected sequence to the end (the same planner and executor, run now on a throw-away copy of the lab \
         world; times are model seconds from now):\n",
    );
    let mut last_at: Option<f64> = None;
    for e in &p.entries {
        let mut stamp = |at: f64| {
            if last_at == Some(at) {
                " ".repeat(9)
            } else {
                last_at = Some(at);
                format!("{:>8}", format!("+{at:.1}s"))
            }
        };
        let _ = match e {
            Entry::Step { at_s, step, what } => writeln!(s, "{} + {what}\n            step: {step}", stamp(*at_s)),
            Entry::Wait { at_s, reason } => writeln!(s, "{} … waits for {reason}", stamp(*at_s)),
            Entry::Failed { at_s, step, error } => writeln!(s, "{} ✗ {step} fails: {error}", stamp(*at_s)),
            Entry::Completed { at_s, op } => writeln!(s, "{} ■ {op} completed", stamp(*at_s)),
        };
    }
    let n = p.step_count();
    let _ = match &p.end {
        End::Converged => {
            writeln!(
                s,
                "Projected end: converged after {n} step(s), about {:.0} model seconds from now.",
                p.model_seconds
            )
        }
        End::Blocked { reason, message, action } => {
            writeln!(s, "Projected end: BLOCKED ({reason}) after {n} step(s): {message}\nWhat to do: {action}")
        }
        End::Cut { why } => writeln!(s, "Projected end: unknown after {n} step(s): {why}."),
    };
    s
}

/// On the lab world, what each operation still to run is expected to take: the whole sequence
/// projected on a throw-away copy of the world ([`lab`]), counted per operation
/// (its steps done so far plus those projected) with its projected end from `start`, the world's
/// time when the copy was taken. Empty when
/// nothing is projected or the projection fails (the status then has no step total and no ETA).
pub(crate) async fn expectations(
    spec: &crate::spec::Spec,
    state_dir: &Path,
    store: &dyn crate::ports::store::Store,
    world_file: &Path,
    start: jiff::Timestamp,
) -> Vec<crate::status::Expectation> {
    use std::collections::{BTreeMap, BTreeSet};

    let (s, d, f) = (spec.clone(), state_dir.to_owned(), world_file.to_owned());
    let projection = match tokio::task::spawn_blocking(move || lab(&s, &d, &f)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "no projection for the progress display");
            return Vec::new();
        }
        Err(e) => {
            tracing::debug!(error = %e, "no projection for the progress display");
            return Vec::new();
        }
    };
    let records = store.read_journal(&spec.cluster.name).await.unwrap_or_default();
    let mut ops: BTreeMap<String, (BTreeSet<String>, Option<f64>)> = BTreeMap::new();
    for e in &projection.entries {
        match e {
            Entry::Step { step, .. } => {
                if let Some((op, _)) = step.rsplit_once('/') {
                    ops.entry(op.to_owned()).or_default().0.insert(step.clone());
                }
            }
            Entry::Completed { at_s, op } => ops.entry(op.clone()).or_default().1 = Some(*at_s),
            Entry::Wait { .. } | Entry::Failed { .. } => {}
        }
    }
    ops.into_iter()
        .filter(|(_, (steps, _))| !steps.is_empty())
        .map(|(op, (mut steps, end_s))| {
            for r in &records {
                if let crate::journal::Record::Result { op: o, step, ok: true, .. } = r
                    && o.to_string() == op
                {
                    steps.insert(step.to_string());
                }
            }
            let end_s = end_s.unwrap_or(projection.model_seconds);
            crate::status::Expectation {
                op,
                steps_total: steps.len(),
                end: start + jiff::SignedDuration::from_secs_f64(end_s),
                basis: "the whole sequence projected on a copy of the lab world (model time)".into(),
            }
        })
        .collect()
}
