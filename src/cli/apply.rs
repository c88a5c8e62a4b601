//! `mirrorctl apply FILE [--plan plan.json]`: reconcile until converged or blocked, printing
//! progress. With `--plan`, first refuses to act if the observed state's fingerprint changed since
//! the plan was saved and the steps planned now differ from the saved ones (someone or something
//! else changed the world; plan again and review).

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc::unbounded_channel;

use super::{CliError, EXIT_BLOCKED, WorldArgs};
use crate::execute::{Event, EventKind, Progress};
use crate::ports::Store;
use crate::reconcile::{Context, Settled, open_journal, plan_once, reconcile};

/// One progress line.
pub fn render_event(e: &Event, since: jiff::Timestamp) -> Option<String> {
    let t = e.at.duration_since(since).as_secs_f64();
    let line = match &e.kind {
        EventKind::StepStarted { what, .. } => format!("[{t:8.1}s] → {what}"),
        // A preflight's detail is its checks: one line each.
        EventKind::StepDone { step, detail: Some(d), elapsed } if step.0.ends_with("/preflight") => {
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
        EventKind::Retrying { api, error, delay } => format!("[{t:8.1}s]   retry {api} in {delay:?} ({error})"),
        EventKind::Waiting { reason } => format!("[{t:8.1}s] … waiting for {reason}"),
        EventKind::Completed { op } => format!("[{t:8.1}s] ■ {op} completed"),
        EventKind::Blocked(c) => {
            format!("[{t:8.1}s] BLOCKED {}: {}\n            what to do: {}", c.reason, c.message, c.action)
        }
        EventKind::Converged => format!("[{t:8.1}s] converged"),
        EventKind::Lease { held: true, epoch, taken_over_from: Some(from) } => {
            format!("[{t:8.1}s] lease taken over from {from} (its heartbeat had stopped), epoch {epoch}")
        }
        EventKind::Lease { .. } => return None,
    };
    Some(line)
}

/// Runs `apply`.
pub async fn run(
    state_dir: &Path,
    store: Arc<dyn Store>,
    file: &Path,
    saved: Option<&Path>,
    world: &WorldArgs,
) -> Result<u8, CliError> {
    let spec = super::load_spec(file)?;
    let w = super::world::open(world, state_dir, &spec).await?;
    let mut ctx = Context::with_store(w.ports.clone(), store);
    if let Some(path) = saved {
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
        let journal = open_journal(&spec, &ctx).await.map_err(|e| CliError::Failed(e.to_string()))?;
        let (obs, plan) = plan_once(&spec, &ctx, &journal).await.map_err(|e| CliError::Failed(e.to_string()))?;
        let now = crate::plan::fingerprint(&obs);
        // Something unrelated may move on by itself (a snapshot completing); what matters is that
        // the steps about to run are the ones reviewed. Refuse only when the observation changed
        // *and* the plan made from it differs from the saved one.
        if now != saved.fingerprint && plan.outcome != saved.plan.outcome {
            return Err(CliError::Usage(format!(
                "the world changed since {} was saved (fingerprint {} → {now}); run `mirrorctl plan` again and review it",
                path.display(),
                saved.fingerprint
            )));
        }
    }
    let (tx, mut rx) = unbounded_channel();
    ctx.progress = Progress::to(tx);
    let start = ctx.ports.clock.now();
    let wall = Instant::now();
    let printer = tokio::spawn(async move {
        while let Some(e) = rx.recv().await {
            if let Some(line) = render_event(&e, start) {
                println!("{line}");
            }
        }
    });
    let result = reconcile(&spec, &ctx).await;
    drop(ctx);
    let _ = printer.await;
    match result {
        Ok(Settled::Converged) => {
            println!("{} converged in {:.1}s", spec.cluster.name, wall.elapsed().as_secs_f64());
            Ok(0)
        }
        Ok(Settled::Blocked(c)) => {
            println!(
                "{} is blocked ({}); `mirrorctl status {}` shows it again",
                spec.cluster.name, c.reason, spec.cluster.name
            );
            Ok(EXIT_BLOCKED)
        }
        Err(e) => Err(CliError::Failed(format!("{}: {e}", spec.cluster.name))),
    }
}
