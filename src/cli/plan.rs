//! `mirrorctl plan FILE`: what the next reconcile would do now, Terraform-style.
//!
//! It observes the world once and prints the steps the planner would run now (they are the ones
//! whose "already done?" check fails; later passes continue from the state they leave), what it
//! would wait for, or why it is blocked. `-o json` prints the plan as JSON; `--out` saves it with
//! the fingerprint of the observed state, which `apply --plan` checks. Exit 0 nothing to do,
//! 2 changes pending (or waiting / blocked), 1 error.

use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CliError, EXIT_CHANGES, Output, WorldArgs};
use crate::plan::{Outcome, Plan};
use crate::reconcile::{Context, open_journal, plan_once};

/// A saved plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPlan {
    /// The desired-state file it was made from.
    pub file: std::path::PathBuf,
    /// Fingerprint of the observed state.
    pub fingerprint: String,
    /// The plan.
    pub plan: Plan,
}

/// Renders a plan for a terminal.
pub fn render(plan: &Plan, file: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "cluster {} ({})", plan.cluster, file.display());
    if let Some(op) = &plan.op {
        let _ = writeln!(s, "operation: {op}");
    }
    match &plan.outcome {
        Outcome::Converged => {
            let _ = writeln!(s, "No changes. The cluster matches its desired state.");
        }
        Outcome::Steps { steps } => {
            let _ = writeln!(s, "\nmirrorctl will run these steps now:");
            for st in steps {
                let _ = writeln!(s, "  + {}", st.action.describe());
                let _ = writeln!(s, "      step: {}", st.id);
                let _ = writeln!(s, "      why:  {}", st.why);
            }
            let _ =
                writeln!(s, "\nPlan: {} step(s) now; later passes continue from the state they leave.", steps.len());
        }
        Outcome::Wait(w) => {
            let _ = writeln!(s, "Waiting: {} (next look in about {:?}).", w.reason, w.expect);
        }
        Outcome::Blocked(c) => {
            let _ = writeln!(s, "BLOCKED ({}): {}", c.reason, c.message);
            let _ = writeln!(s, "What to do: {}", c.action);
        }
    }
    for n in &plan.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if !plan.abandoned.is_empty() {
        let ids: Vec<String> = plan.abandoned.iter().map(ToString::to_string).collect();
        let _ = writeln!(s, "abandoned volumes (kept, not deleted): {}", ids.join(", "));
    }
    s
}

/// Runs `plan`.
pub async fn run(
    state_dir: &Path,
    file: &Path,
    output: Output,
    out: Option<&Path>,
    world: &WorldArgs,
) -> Result<u8, CliError> {
    let spec = super::load_spec(file)?;
    let w = super::world::open(world, state_dir, &spec)?;
    let ctx = Context::new(w.ports.clone(), state_dir.to_owned());
    let journal = open_journal(&spec, &ctx).map_err(|e| CliError::Failed(e.to_string()))?;
    let (obs, plan) = plan_once(&spec, &ctx, &journal).await.map_err(|e| CliError::Failed(e.to_string()))?;
    let saved = SavedPlan { file: file.to_owned(), fingerprint: crate::plan::fingerprint(&obs), plan };
    if let Some(path) = out {
        let body = serde_json::to_vec_pretty(&saved).map_err(|e| CliError::Failed(e.to_string()))?;
        std::fs::write(path, body).map_err(|e| CliError::Failed(format!("writing {}: {e}", path.display())))?;
    }
    match output {
        Output::Json => {
            println!("{}", serde_json::to_string_pretty(&saved).map_err(|e| CliError::Failed(e.to_string()))?);
        }
        Output::Text => print!("{}", render(&saved.plan, file)),
    }
    Ok(if saved.plan.outcome == Outcome::Converged { 0 } else { EXIT_CHANGES })
}
