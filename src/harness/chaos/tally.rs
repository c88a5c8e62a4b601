//! The campaign's tally: everything counted over the trials, and its rendering.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use super::verdicts::Violation;
use super::{ChaosOptions, FlowKind, Shared};

/// Everything counted over a campaign.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) trials: usize,
    pub(super) trials_by_os: BTreeMap<&'static str, usize>,
    pub(super) points: BTreeMap<FlowKind, usize>,
    pub(super) kills_per_flow: BTreeMap<usize, usize>,
    /// Kills drawn that did not land: the flow had converged first.
    pub(super) undelivered: usize,
    pub(super) restarts: usize,
    pub(super) flows: usize,
    pub(super) converged: usize,
    pub(super) request_changes: usize,
    pub(super) phases: BTreeMap<String, usize>,
    /// Shared store: from each kill of the lease holder to the first look that saw another holder.
    pub(super) takeovers: Vec<Duration>,
    pub(super) violations: Vec<(usize, Violation)>,
    pub(super) kept: Vec<PathBuf>,
}

impl Tally {
    pub(super) fn total_points(&self) -> usize {
        self.points.values().sum()
    }
}

#[allow(clippy::cast_precision_loss)] // counts are small
pub(super) fn render(
    t: &Tally,
    args: &ChaosOptions,
    shared: Option<&Shared>,
    expected: &BTreeMap<(&'static str, FlowKind), Duration>,
    wall: Duration,
) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "mirrorctl bench chaos: kill -9 campaign against `mirrorctl run --world lab` (speed ×{}), seed {}",
        args.speed, args.seed
    );
    let _ = writeln!(out);
    match shared {
        None => {
            let _ = writeln!(out, "{:<28} 1, on the state directory", "hosts");
        }
        Some(sh) => {
            let _ = writeln!(
                out,
                "{:<28} {}, each with its own directory (deleted at each kill), on {} (lease {} s)",
                "hosts", args.hosts, sh.spec, sh.lease_secs
            );
            let mut took = t.takeovers.clone();
            took.sort();
            let median = took.get(took.len() / 2).map_or(0.0, Duration::as_secs_f64);
            let max = took.last().map_or(0.0, Duration::as_secs_f64);
            let _ = writeln!(
                out,
                "{:<28} {} (kill → another holder: median {median:.1}s, max {max:.1}s)",
                "takeovers",
                took.len()
            );
        }
    }
    let by_os: Vec<String> = t.trials_by_os.iter().map(|(os, n)| format!("{os} {n}")).collect();
    let _ = writeln!(out, "{:<28} {} ({})", "trials (fresh worlds)", t.trials, by_os.join(", "));
    let _ = writeln!(
        out,
        "{:<28} {} (backup {}, restore {})",
        "kill points (SIGKILL)",
        t.total_points(),
        t.points.get(&FlowKind::Backup).copied().unwrap_or(0),
        t.points.get(&FlowKind::Restore).copied().unwrap_or(0)
    );
    let per: Vec<String> = t.kills_per_flow.iter().map(|(k, n)| format!("{k} kills: {n}")).collect();
    let _ = writeln!(out, "{:<28} {}", "flows by kills", per.join(", "));
    let _ = writeln!(out, "{:<28} {}", "kills drawn after converging", t.undelivered);
    let _ = writeln!(out, "{:<28} {}", "restarts", t.restarts);
    let _ = writeln!(out, "{:<28} {}", "restore request changes", t.request_changes);
    let _ = writeln!(out, "{:<28} {} / {}", "flows converged", t.converged, t.flows);
    let exp: Vec<String> =
        expected.iter().map(|((os, f), d)| format!("{os} {} {:.2}s", f.label(), d.as_secs_f64())).collect();
    let _ = writeln!(out, "{:<28} {}", "flow wall time without kills", exp.join(", "));
    let _ = writeln!(out, "{:<28} {:.1}s", "campaign wall time", wall.as_secs_f64());
    let _ = writeln!(out, "{:<28} {}", "violations", t.violations.len());
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for (_, v) in &t.violations {
        *kinds.entry(v.kind).or_default() += 1;
    }
    for (kind, n) in &kinds {
        let _ = writeln!(out, "  {kind:<26} {n}");
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "where the kills landed (from the journal right after each kill):");
    for (phase, n) in &t.phases {
        let share = 100.0 * *n as f64 / t.total_points().max(1) as f64;
        let _ = writeln!(out, "  {phase:<52} {n:>4}  {share:>5.1}%");
    }
    if !t.violations.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "violations:");
        for (trial, v) in &t.violations {
            let _ = writeln!(out, "  trial {trial:03} [{}] {}", v.kind, v.detail);
        }
    }
    if !t.kept.is_empty() {
        let _ = writeln!(out);
        let _ = writeln!(out, "kept for inspection (journal, status, world, daemon.log):");
        for d in &t.kept {
            let _ = writeln!(out, "  {}", d.display());
        }
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{}", if t.violations.is_empty() { "chaos campaign CLEAN" } else { "chaos campaign FAILED" });
    out
}
