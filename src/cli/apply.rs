//! `mirrorctl apply FILE [--plan plan.json]`: reconcile until converged or blocked, printing
//! progress. With `--plan`, first refuses to act (exit [`super::EXIT_STALE_PLAN`]) when the
//! desired-state file's bytes or any part of the observed world differ from what the plan was made
//! from ([`super::plan::stale_reasons`] says which): what runs must be what was reviewed.
//!
//! On a terminal the progress lines scroll above a live line (indicatif): the step running or the
//! wait with its expected remainder, the steps done and the wall time. When stdout is not a
//! terminal only the plain lines are printed, with no control sequences.
//!
//! `-o json`: stdout is one JSON object per line — a `world` line on AWS, then one per progress
//! event (`event`: step-started, step-done, step-failed, retrying, waiting, completed, blocked,
//! converged; `at` model time, `t_s` seconds since the start), and last a `result` object
//! (converged, blocked with its condition, interrupted with the resume command). Errors stay on
//! stderr with their exit codes.
//!
//! Interrupts (SIGINT, SIGTERM): the first lets the steps in flight finish — their intents are
//! already in the journal — then stops, marks the status document interrupted, says where the
//! cluster stands and how to resume, and exits [`EXIT_INTERRUPTED`]. A second one exits at once
//! ([`EXIT_ABORTED`]), cutting the steps in flight: still safe to resume, because the journal is
//! intent-first and the next run resolves an intent without a result by observation.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::unbounded_channel;
use tokio_util::sync::CancellationToken;

use super::{CliError, EXIT_ABORTED, EXIT_BLOCKED, EXIT_INTERRUPTED, Output, WorldArgs};
use crate::execute::{Event, EventKind, Progress};
use crate::notify::{Notifier, RetrySchedule};
use crate::plan::StepKind;
use crate::ports::store::Store;
use crate::reconcile::{Context, ReconcileError, Settled, open_journal, plan_once, reconcile};

/// One progress line.
pub fn render_event(e: &Event, since: jiff::Timestamp) -> Option<String> {
    let t = e.at.duration_since(since).as_secs_f64();
    let line = match &e.kind {
        EventKind::StepStarted { what, .. } => format!("[{t:8.1}s] → {what}"),
        // A preflight's detail is its checks: one line each.
        EventKind::StepDone { step, detail: Some(d), elapsed } if step.kind() == Some(StepKind::Preflight) => {
            let (head, checks) = d.split_once(": ").unwrap_or((d.as_str(), ""));
            let mut s = format!("[{t:8.1}s] ✓ {step}: {head} ({:.1}s)", elapsed.as_secs_f64());
            for c in checks.split("; ").filter(|c| !c.is_empty()) {
                s.push_str("\n              ");
                s.push_str(c);
            }
            s
        }
        EventKind::StepDone { step, detail, elapsed } => format!(
            "[{t:8.1}s] ✓ {step}{} ({:.1}s)",
            detail.as_ref().map_or_else(String::new, |d| format!(": {d}")),
            elapsed.as_secs_f64()
        ),
        EventKind::StepFailed { step, error } => format!("[{t:8.1}s] ✗ {step}: {error}"),
        EventKind::Retrying { api, error, delay } => {
            format!("[{t:8.1}s]   retry {api} in {:.1}s ({error})", delay.as_secs_f64())
        }
        EventKind::Waiting { reason, expect } => format!(
            "[{t:8.1}s] … waiting for {reason} (expected about {} more, an estimate)",
            crate::execute::progress::span(jiff::SignedDuration::try_from(*expect).unwrap_or_default())
        ),
        EventKind::Waited { reason, elapsed } => {
            format!("[{t:8.1}s]   waited {} for {reason}", crate::execute::progress::span(*elapsed))
        }
        EventKind::Completed { op } => format!("[{t:8.1}s] ■ {op} completed"),
        EventKind::Blocked(c) => {
            format!("[{t:8.1}s] BLOCKED {}: {}\n            what to do: {}", c.reason, c.message, c.action)
        }
        EventKind::Converged { .. } => format!("[{t:8.1}s] converged"),
        EventKind::Lease { held: true, epoch, taken_over_from: Some(from) } => {
            format!("[{t:8.1}s] lease taken over from {from} (its heartbeat had stopped), epoch {epoch}")
        }
        EventKind::Lease { .. } => return None,
    };
    Some(line)
}

/// How long `apply` waits at exit for its notifications (with their retries).
const NOTIFY_GRACE: std::time::Duration = std::time::Duration::from_secs(15);
/// The live line of `apply` on a terminal ([`indicatif`], drawn on stdout).
fn live_line() -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stdout());
    let style =
        indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} wall · {pos} step(s) done · {wide_msg}")
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner());
    bar.set_style(style);
    bar.set_message("observing the cluster");
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

/// Moves the live line on with an event: the step running, the wait (with its expected
/// remainder), a step done.
fn follow(bar: &indicatif::ProgressBar, kind: &EventKind) {
    use crate::execute::progress::span;
    match kind {
        EventKind::StepStarted { what, .. } => bar.set_message(format!("running: {what}")),
        EventKind::StepDone { .. } => bar.inc(1),
        EventKind::Waiting { reason, expect } => bar.set_message(format!(
            "waiting for {reason} (expected about {} more, model time)",
            span(jiff::SignedDuration::try_from(*expect).unwrap_or_default())
        )),
        EventKind::Waited { .. } => bar.set_message("observing the cluster"),
        EventKind::StepFailed { step, .. } => bar.set_message(format!("{step} failed; deciding what next")),
        EventKind::Retrying { api, delay, .. } => {
            bar.set_message(format!(
                "retrying {api} in {}",
                span(jiff::SignedDuration::try_from(*delay).unwrap_or_default())
            ));
        }
        EventKind::Completed { .. } | EventKind::Blocked(_) | EventKind::Converged { .. } | EventKind::Lease { .. } => {
        }
    }
}

/// Runs `apply`.
#[allow(clippy::too_many_lines)] // one sequence: world, plan check, notifier, progress, result
pub async fn run(
    state_dir: &Path,
    store: Arc<dyn Store>,
    file: &Path,
    saved: Option<&Path>,
    world: &WorldArgs,
    output: Output,
) -> Result<u8, CliError> {
    let kind = world.kind()?;
    let spec = super::load_spec(file)?;
    // The default store keeps the journal and status documents in the state directory.
    super::check_state_dir(state_dir, store.name().starts_with("dir:"))?;
    if kind == super::WorldKind::Aws {
        // Before anything else: who and where we are about to act (stdout is JSON lines with -o json).
        let who = super::world::aws_identity(&spec).await?;
        match output {
            Output::Text => println!("world: {who}"),
            Output::Json => println!(
                "{}",
                serde_json::json!({"event": "world", "world": "aws", "account": who.account, "region": who.region, "arn": who.arn, "endpoint": who.endpoint})
            ),
        }
    }
    let w = super::world::open(world, state_dir, Arc::clone(&store), &spec).await?;
    let mut ctx = Context::with_store(w.ports.clone(), Arc::clone(&store));
    if let Some(path) = saved {
        check_saved_plan(path, &spec, file, &ctx).await?;
    }
    let start = ctx.ports.clock.now();
    // On the lab world the whole sequence is projected beside the reconcile once it has work (the
    // status's step total and ETA), as the daemon does.
    if let Some(lab_dir) = w.file.as_deref().and_then(Path::parent) {
        ctx.project = Some(crate::world::lab_projector(lab_dir, state_dir, Arc::clone(&store)));
    }
    let (tx, mut rx) = unbounded_channel();
    ctx.progress = Progress::to(tx);
    let notifier = Notifier::start(crate::adapters::notify::aws_sinks(), RetrySchedule::default());
    ctx.notify = Some(notifier.clone());
    let wall = Instant::now();
    // On a terminal, a live line under the progress lines: what runs or is awaited now, the steps
    // done, the wall time. Redirected output (a log, CI, a pipe) gets the plain lines only.
    let live = (output == Output::Text && std::io::IsTerminal::is_terminal(&std::io::stdout())).then(live_line);
    let printer = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            match output {
                Output::Text => {
                    if let Some(bar) = &live {
                        follow(bar, &e.kind);
                    }
                    if let Some(line) = render_event(&e, start) {
                        match &live {
                            Some(bar) => bar.println(line),
                            None => println!("{line}"),
                        }
                    }
                }
                Output::Json => println!("{}", event_json(&e, start)),
            }
        }
        if let Some(bar) = live {
            bar.finish_and_clear();
        }
    });
    // Interrupts: the first signal stops at the next step boundary (the steps in flight finish;
    // their intents are already in the journal), the second one exits at once.
    let stop = CancellationToken::new();
    ctx.stop = Some(stop.clone());
    let signals = super::signals::Signals::new()?;
    let resume = resume_command(state_dir, world, file);
    let interrupts = async {
        signals.next().await;
        eprintln!(
            "interrupt: letting the step(s) in flight finish, then stopping (their intents are in the journal); \
             interrupt again to exit at once"
        );
        stop.cancel();
        signals.next().await;
    };
    let result = tokio::select! {
        r = reconcile(&spec, &ctx) => Some(r),
        () = interrupts => None,
    };
    drop(ctx);
    let Some(result) = result else {
        eprintln!(
            "second interrupt: exiting now, with the step(s) in flight cut off. Nothing is lost: every step begun has \
             its intent in the journal, and the next run resolves it by looking at the world first.\n\
             resume with: {resume}"
        );
        return Ok(EXIT_ABORTED);
    };
    let _ = printer.await;
    // The notices of this run (completion, failure) are delivered before exit, within a bound.
    if !notifier.close(NOTIFY_GRACE).await {
        eprintln!(
            "some notifications were not delivered within {}s; a completion among them is sent by the next run",
            NOTIFY_GRACE.as_secs()
        );
    }
    let name = &spec.cluster.name;
    let elapsed = wall.elapsed().as_secs_f64();
    let (code, text, json) = match result {
        Ok(Settled::Converged) => converged(store.as_ref(), name, start, elapsed).await,
        Ok(Settled::Blocked(c)) => (
            EXIT_BLOCKED,
            format!("{name} is blocked ({}); `mirrorctl status {name}` shows it again", c.reason),
            serde_json::json!({"result": "blocked", "cluster": name.to_string(), "wall_seconds": elapsed,
                "condition": {"reason": c.reason, "message": c.message, "action": c.action}}),
        ),
        Err(ReconcileError::Stopped) => {
            let said = interrupted(store.as_ref(), &spec, &resume).await;
            let json = serde_json::json!({"result": "interrupted", "cluster": name.to_string(), "wall_seconds": elapsed,
                "resume": resume});
            (EXIT_INTERRUPTED, said, json)
        }
        Err(e) => return Err(CliError::caused(name.to_string(), e)),
    };
    match output {
        Output::Text => println!("{text}"),
        Output::Json => println!("{json}"),
    }
    Ok(code)
}

/// The end of an apply that converged: the line, and after a restore this apply finished, whether
/// it is done and safe (the status document's summary).
async fn converged(
    store: &dyn Store,
    name: &crate::ids::ClusterName,
    start: jiff::Timestamp,
    elapsed: f64,
) -> (u8, String, serde_json::Value) {
    let summary =
        store.read_status(name).await.ok().flatten().and_then(|d| d.restore_summary).filter(|r| r.completed >= start);
    let mut text = format!("{name} converged in {elapsed:.1}s (wall time)");
    if let Some(r) = &summary {
        text.push('\n');
        text.push_str(r.render().trim_end());
    }
    let json = serde_json::json!({"result": "converged", "cluster": name.to_string(), "wall_seconds": elapsed,
        "restore_summary": summary});
    (0, text, json)
}

/// Refuses the saved plan at `path` when it is not a plan, is for another cluster, or no longer
/// matches the desired-state file's bytes or the world ([`super::plan::stale_reasons`]).
async fn check_saved_plan(path: &Path, spec: &crate::spec::Spec, file: &Path, ctx: &Context) -> Result<(), CliError> {
    let body = std::fs::read(path).map_err(|e| CliError::Usage(format!("reading plan {}: {e}", path.display())))?;
    let saved: super::plan::SavedPlan = serde_json::from_slice(&body).map_err(|e| {
        CliError::Usage(format!("{} is not a plan saved by `mirrorctl plan --out`: {e}", path.display()))
    })?;
    if saved.plan.cluster != spec.cluster.name {
        return Err(CliError::Usage(format!(
            "plan {} is for cluster {}, not {}",
            path.display(),
            saved.plan.cluster,
            spec.cluster.name
        )));
    }
    let bytes = std::fs::read(file).map_err(|e| CliError::caused(format!("reading {}", file.display()), e))?;
    let journal = open_journal(spec, ctx).await.map_err(CliError::other)?;
    let (obs, _) = plan_once(spec, ctx, &journal).await.map_err(CliError::other)?;
    let now = super::plan::world_parts(&obs);
    if let Some(why) = super::plan::stale_reasons(&saved, file, &super::plan::file_sha256(&bytes), &now) {
        return Err(CliError::StalePlan(format!(
            "refusing the saved plan {}: {why}. Nothing was done; run `mirrorctl plan --out {} {}` again and review it",
            path.display(),
            path.display(),
            file.display()
        )));
    }
    Ok(())
}

/// One progress event as a JSON object (one line of `apply -o json`): `event` names the kind,
/// `at` is the model time, `t_s` the model seconds since the apply started.
pub fn event_json(e: &Event, since: jiff::Timestamp) -> serde_json::Value {
    use serde_json::json;
    let t = (e.at.duration_since(since).as_secs_f64() * 10.0).round() / 10.0;
    let mut v = match &e.kind {
        EventKind::StepStarted { step, what, api } => {
            json!({"event": "step-started", "step": step.to_string(), "what": what, "api": api})
        }
        EventKind::StepDone { step, detail, elapsed } => {
            json!({"event": "step-done", "step": step.to_string(), "detail": detail, "seconds": elapsed.as_secs_f64()})
        }
        EventKind::StepFailed { step, error } => {
            json!({"event": "step-failed", "step": step.to_string(), "error": error})
        }
        EventKind::Retrying { api, error, delay } => {
            json!({"event": "retrying", "api": api, "error": error, "delay_seconds": delay.as_secs_f64()})
        }
        EventKind::Waiting { reason, expect } => {
            json!({"event": "waiting", "reason": reason, "expected_remaining_seconds": expect.as_secs_f64(), "estimate": true})
        }
        EventKind::Waited { reason, elapsed } => {
            json!({"event": "waited", "reason": reason, "seconds": elapsed.as_secs_f64()})
        }
        EventKind::Completed { op } => json!({"event": "completed", "operation": op.to_string()}),
        EventKind::Blocked(c) => {
            json!({"event": "blocked", "reason": c.reason, "message": c.message, "action": c.action})
        }
        EventKind::Converged { .. } => json!({"event": "converged"}),
        EventKind::Lease { held, epoch, taken_over_from } => {
            json!({"event": "lease", "held": held, "epoch": epoch, "taken_over_from": taken_over_from})
        }
    };
    v["at"] = json!(e.at.to_string());
    v["t_s"] = json!(t);
    v["cluster"] = json!(e.cluster.to_string());
    v
}

/// The command that resumes this apply.
fn resume_command(state_dir: &Path, world: &WorldArgs, file: &Path) -> String {
    let mut cmd = format!("mirrorctl --state-dir {} apply", state_dir.display());
    if world.world == Some(super::WorldKind::Lab) {
        cmd.push_str(" --world lab");
        if let Some(f) = &world.world_file {
            let _ = write!(cmd, " --world-file {}", f.display());
        }
    } else {
        cmd.push_str(" --world aws");
    }
    let _ = write!(cmd, " {}", file.display());
    cmd
}

/// After a stop at a step boundary: marks the status document interrupted and says where the
/// cluster stands (the operation, the steps done, the last one) and how to resume.
async fn interrupted(store: &dyn Store, spec: &crate::spec::Spec, resume: &str) -> String {
    let name = &spec.cluster.name;
    let mut s = format!("{name} interrupted at a step boundary: no step is in flight.\n");
    if let Ok(Some(mut doc)) = store.read_status(name).await {
        // The document was written at the start of the last pass: bring its steps up to date.
        let records = store.read_journal(name).await.unwrap_or_default();
        doc.operations = crate::status::operations(&records);
        doc.history = crate::status::history(&records);
        if let Some(op) = &doc.operation {
            let prefix = format!("{op}/");
            let done: Vec<_> = doc
                .history
                .iter()
                .filter(|h| h.step.starts_with(&prefix) && h.outcome == crate::status::StepOutcome::Ok)
                .collect();
            let _ = write!(s, "  operation: {op}, {} step(s) done", done.len());
            if let Some(last) = done.last() {
                let _ = write!(s, ", the last {} ({})", last.step, last.what);
            }
            s.push('\n');
        }
        if let Some(w) = &doc.waiting {
            let _ = writeln!(s, "  it was waiting for {w}");
        }
        doc.interrupted = Some(format!(
            "apply was stopped by a signal at a step boundary (no step in flight); resume with `{resume}`"
        ));
        if let Err(e) = store.write_status(&doc, None).await {
            let _ = writeln!(s, "  (could not mark the status document in {}: {e})", store.name());
        }
    }
    let _ = write!(s, "  resume with: {resume}  (or start the daemon on this state directory)");
    s
}
