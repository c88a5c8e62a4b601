//! `mirrorctl lab`: the whole story against the built-in simulated world, no AWS account needed.
//!
//! It builds the runbook's two-node cluster (Windows, or Linux with `--os linux`) in a fresh
//! simulated world, then: takes a backup the runbook's way, lets business run, simulates the
//! accident (data deleted on the active and mirrored to the standby), restores both servers from
//! the backup, and verifies with the data oracle that the snapshot held the quiesce point, that
//! both sides equal the snapshot's data with the accident gone, that nothing was corrupted or
//! deleted. Its report holds a timeline in model time and the number of calls per API, as text or
//! as one JSON document ([`json`]); the command (`mirrorctl lab`) prints it.
//!
//! `--mirrors 2` tells the same story on a cluster with two md resources (a database's data and
//! logs, [`Scenario::two_mirrors`]): the backup quiesces both and snapshots both standby volumes
//! as one set, the accident hits both, the restore names the backup (`[restore] backup = …`) and
//! restores every md of it, and the oracle judges each md on its own.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::execute::Progress;
use crate::harness::HarnessError;
use crate::ids::{BackupName, RequestName};
use crate::ports::Clock as _;
use crate::ports::cloud::tag;
use crate::reconcile::{Context, Settled, reconcile};
use crate::sim::{Scenario, SimWorld, verdict};
use crate::spec::{BackupRestoreSpec, BackupSpec, Os, ProcedureChoice, RestoreSpec, Spec};

mod json;

pub(super) const WINDOWS_EXAMPLE: &str = include_str!("../../desired-state/prod-db.toml");
pub(super) const LINUX_EXAMPLE: &str = include_str!("../../desired-state/app-linux.toml");

/// The lab's desired state: the example file of the OS, without schedule or restore, following
/// `procedure`.
pub fn lab_spec(os: Os, procedure: ProcedureChoice) -> Result<Spec, HarnessError> {
    let (name, text) = match os {
        Os::Windows => ("desired-state/prod-db.toml", WINDOWS_EXAMPLE),
        Os::Linux => ("desired-state/app-linux.toml", LINUX_EXAMPLE),
    };
    let mut spec =
        crate::spec::load_str(Path::new(name), text).map_err(|e| HarnessError::caused("built-in example", e))?;
    spec.backup = None;
    spec.restore = None;
    spec.cluster.procedure = procedure;
    Ok(spec)
}

/// One verification of a lab run.
struct Check {
    /// Stable identifier (`-o json`); per md (`md2:accident-gone`) when the lab has several.
    id: String,
    what: String,
    ok: bool,
}

/// Options of a lab run.
#[derive(Debug, Clone, Copy)]
pub struct LabOptions {
    /// Model seconds per real second.
    pub speed: f64,
    /// Seed of the latency model and ids.
    pub seed: u64,
    /// Operating system of the simulated cluster.
    pub os: Os,
    /// The CLUSTERPRO procedure of the lab's desired state.
    pub procedure: ProcedureChoice,
    /// Restore with `mirror.volume.fast_restore = true`.
    pub fast_restore: bool,
    /// md resources of the cluster: 1 or 2.
    pub mirrors: u8,
}

impl LabOptions {
    /// Refuses what the story cannot do: a set restore has neither Fast Snapshot Restore nor
    /// NEC's procedure.
    fn check(self) -> Result<(), HarnessError> {
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err(HarnessError::Usage(format!("--speed must be a positive number, not {}", self.speed)));
        }
        if self.mirrors == 2 && self.fast_restore {
            return Err(HarnessError::Usage(
                "--mirrors 2 restores a snapshot set, which mirrorctl does not restore with Fast Snapshot Restore: drop --fast-restore".into(),
            ));
        }
        if self.mirrors == 2 && self.procedure == ProcedureChoice::Vendor {
            return Err(HarnessError::Usage(
                "--mirrors 2 restores a snapshot set with the configuration edit: use --procedure auto or reconfigure"
                    .into(),
            ));
        }
        if !(1..=2).contains(&self.mirrors) {
            return Err(HarnessError::Usage(format!("--mirrors is 1 or 2, not {}", self.mirrors)));
        }
        Ok(())
    }

    /// Whether the cluster has several md resources.
    fn several(self) -> bool {
        self.mirrors > 1
    }
}

/// The check id of `what` for md `md` (bare when the lab has one md).
fn check_id(several: bool, md: &crate::ids::ResourceName, what: &str) -> String {
    if several { format!("{md}:{what}") } else { what.to_owned() }
}

/// A lab ready to run: a fresh simulated world under `<state>/lab` and its desired state.
pub struct Lab {
    opts: LabOptions,
    dir: PathBuf,
    world: std::sync::Arc<SimWorld>,
    spec: Spec,
    wall: Instant,
}

/// What a lab run found: its checks, and the world it leaves (saved for inspection).
pub struct LabReport {
    lab: Lab,
    snapshot: String,
    /// Each md's backup snapshot.
    snapshots: Vec<(crate::ids::ResourceName, crate::ids::SnapshotId)>,
    restore_took: jiff::SignedDuration,
    checks: Vec<Check>,
    /// Where the final world was saved, or why it was not.
    saved: Result<PathBuf, String>,
}

impl Lab {
    /// Clears `<state_dir>/lab` and builds the world and desired state of `opts`.
    pub fn new(state_dir: &Path, opts: LabOptions) -> Result<Lab, HarnessError> {
        opts.check()?;
        let wall = Instant::now();
        let dir = crate::harness::fresh_dir(state_dir, "lab")?;
        let scenario = match (opts.os, opts.several()) {
            (os, true) => Scenario::two_mirrors(os),
            (Os::Windows, false) => Scenario::windows_runbook(),
            (Os::Linux, false) => Scenario::linux(),
        };
        let spec = if opts.several() {
            let mut spec = scenario.spec("").map_err(|e| HarnessError::caused("the two-md scenario's file", e))?;
            spec.cluster.procedure = opts.procedure;
            spec
        } else {
            lab_spec(opts.os, opts.procedure)?
        };
        // Not persisted while it runs: saving the world after every call costs real milliseconds,
        // which a speed factor turns into model seconds. The final world is saved for inspection.
        let world = SimWorld::new(scenario, opts.seed, opts.speed);
        Ok(Lab { opts, dir, world, spec, wall })
    }

    /// The world's model time zero (event times are counted from it).
    pub fn epoch(&self) -> jiff::Timestamp {
        self.world.scenario().epoch
    }

    /// The OS's name in the report.
    fn os_name(&self) -> &'static str {
        match self.opts.os {
            Os::Windows => "windows",
            Os::Linux => "linux",
        }
    }
}

impl LabReport {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.ok)
    }

    /// The report as one JSON document (`events`: the progress events as `apply -o json` prints
    /// them).
    pub fn json(&self, events: Vec<serde_json::Value>) -> serde_json::Value {
        let lab = &self.lab;
        json::document(&json::Facts {
            world: &lab.world,
            cluster: lab.spec.cluster.name.as_str(),
            os: lab.os_name(),
            seed: lab.opts.seed,
            speed: lab.opts.speed,
            procedure: lab.opts.procedure,
            fast_restore: lab.opts.fast_restore,
            mirrors: lab.opts.mirrors,
            snapshot: self.snapshot.as_str(),
            snapshots: &self.snapshots,
            restore_s: self.restore_took.as_secs_f64(),
            wall_s: lab.wall.elapsed().as_secs_f64(),
            events,
            checks: &self.checks,
            saved: self.saved.as_deref().map_err(Clone::clone),
            state: &lab.dir.join("state"),
        })
    }
}

/// Runs the story: backup, business, accident, restore, checks. Step events go to `progress`,
/// the story's headings to `say`.
#[allow(clippy::too_many_lines)]
pub async fn run(lab: Lab, progress: Progress, say: &(dyn Fn(&str) + Sync)) -> Result<LabReport, HarnessError> {
    let LabOptions { speed, seed: world_seed, fast_restore, .. } = lab.opts;
    let (world, spec, dir) = (&lab.world, &lab.spec, &lab.dir);
    let mut ctx = Context::new(world.ports(), dir.join("state"));
    ctx.progress = progress;
    let mut checks = Vec::new();
    let os_name = lab.os_name();
    let several = lab.opts.several();
    let mds: Vec<crate::ids::ResourceName> = spec.mirrors().map(|m| m.resource.clone()).collect();
    let shape = if several {
        format!(", md {}", mds.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "))
    } else {
        String::new()
    };
    say(&format!("mirrorctl lab: cluster {} ({os_name}{shape}), seed {world_seed}, speed ×{speed}", spec.cluster.name));
    say("\n== 1. backup \"lab-backup\" (the runbook's backup procedure)");
    let backup_name = BackupName::parse("lab-backup").map_err(|e| HarnessError::caused("the lab's backup name", e))?;
    let mut backup = spec.clone();
    backup.backup =
        Some(BackupSpec { schedules: Vec::new(), keep: 7, take: vec![backup_name.clone()], copy_to: Vec::new() });
    let settled = reconcile(&backup, &ctx).await.map_err(|e| HarnessError::caused("the lab's backup", e))?;
    checks.push(Check {
        id: "backup-converged".into(),
        what: "backup converged".into(),
        ok: settled == Settled::Converged,
    });
    let inv = world.inventory();
    let taken: Vec<&crate::ports::cloud::Snapshot> = inv
        .snapshots
        .iter()
        .filter(|s| s.tags.get(tag::REQUEST).map(String::as_str) == Some(backup_name.as_str()))
        .collect();
    // Each md's snapshot: the one of a set that says it holds the md's data, else the only one.
    let mut snaps: Vec<(crate::ids::ResourceName, crate::ids::SnapshotId)> = Vec::new();
    for md in &mds {
        let data = [format!("{md}:cluster+data"), format!("{md}:data")];
        let found = taken
            .iter()
            .find(|s| s.tags.get(tag::HOLDS).is_some_and(|h| h.split(',').any(|x| data.contains(&x.to_owned()))))
            .or_else(|| taken.first().filter(|_| !several));
        let snap = found.map(|s| s.id.clone()).ok_or_else(|| {
            HarnessError::Failed(format!("the backup left no snapshot of {md}'s data ({} snapshot(s))", taken.len()))
        })?;
        snaps.push((md.clone(), snap));
    }
    let snap = snaps[0].1.clone();
    for (md, s) in &snaps {
        let backed_up = verdict::backup_of(world, md, s);
        let of = if several { format!(" of {md}") } else { String::new() };
        checks.push(Check {
            id: check_id(several, md, "snapshot-holds-quiesce-point"),
            what: format!(
                "snapshot {s} holds the quiesce point{of} ({} = {})",
                backed_up.snapshot.map_or_else(|| "?".into(), |c| c.to_string()),
                backed_up.quiesce_points.last().map_or_else(|| "?".into(), ToString::to_string)
            ),
            ok: backed_up.captured,
        });
    }
    if several {
        let set = taken.first().and_then(|s| s.tags.get(tag::SNAPSHOT_SET));
        let one = taken.len() == mds.len() && taken.iter().all(|s| s.tags.get(tag::SNAPSHOT_SET) == set);
        checks.push(Check {
            id: "one-snapshot-set".into(),
            what: format!("the backup is one snapshot set of {} volumes ({} snapshots)", mds.len(), taken.len()),
            ok: one && set.is_some(),
        });
    }

    say("\n== 2. business runs for 10 minutes, then data is deleted by mistake (mirrored to the standby)");
    world.clock().sleep(Duration::from_mins(10)).await;
    world.accident();
    world.clock().sleep(Duration::from_secs(30)).await;
    checks.push(Check {
        id: "accident-reached-both".into(),
        what: if several {
            "the accident reached both servers, on every md"
        } else {
            "the accident reached both servers"
        }
        .into(),
        ok: verdict::accident_everywhere(world),
    });

    let from = if several {
        let ids: Vec<String> = snaps.iter().map(|(_, s)| s.to_string()).collect();
        format!("backup {backup_name} ({})", ids.join(" + "))
    } else {
        snap.to_string()
    };
    say(&format!(
        "\n== 3. restore both servers from {from} (request \"lab-incident\"){}",
        if fast_restore { " with Fast Snapshot Restore" } else { "" }
    ));
    let mut restore = backup.clone();
    restore.mirror.volume.fast_restore = fast_restore;
    let request = RequestName::parse("lab-incident").map_err(|e| HarnessError::caused("the lab's request name", e))?;
    if several {
        restore.restore_backup =
            Some(BackupRestoreSpec { backup: backup_name.clone(), request, verify_failover: true });
    } else {
        restore.restore =
            Some(RestoreSpec { snapshot: snap.clone(), request, verify_failover: true, allow_foreign_snapshot: false });
    }
    let restore_started = world.now();
    let settled = reconcile(&restore, &ctx).await.map_err(|e| HarnessError::caused("the lab's restore", e))?;
    let restore_took = world.now().duration_since(restore_started);
    checks.push(Check {
        id: "restore-converged".into(),
        what: "restore converged".into(),
        ok: settled == Settled::Converged,
    });
    drop(ctx);

    for (md, s) in &snaps {
        let restored = if several { verdict::restore_of(world, md, s) } else { verdict::restore(world, s) };
        let of = if several { format!(" ({md})") } else { String::new() };
        checks.push(Check {
            id: check_id(several, md, "both-sides-identical"),
            what: format!("both servers hold identical data{of}"),
            ok: restored.identical,
        });
        checks.push(Check {
            id: check_id(several, md, "accident-gone"),
            what: format!("the accident is gone from both servers{of}"),
            ok: restored.accident_gone,
        });
        checks.push(Check {
            id: check_id(several, md, "data-continues-from-snapshot"),
            what: format!("the data continues from {s}{of}"),
            ok: restored.from_snapshot,
        });
    }
    let corruptions = world.oracle_report().corruptions;
    checks.push(Check {
        id: "no-corruption".into(),
        what: format!("no corruption ({} found)", corruptions.len()),
        ok: corruptions.is_empty(),
    });
    let inv = world.inventory();
    checks.push(Check {
        id: "no-volume-deleted".into(),
        what: format!("no volume deleted ({})", inv.deleted_volumes),
        ok: inv.deleted_volumes == 0,
    });
    let superseded = inv.volumes.iter().filter(|v| v.tags.contains_key(tag::SUPERSEDED_BY)).count();
    checks.push(Check {
        id: "old-volumes-kept".into(),
        what: format!("old volumes kept and tagged superseded ({superseded})"),
        ok: superseded == 2 * mds.len(),
    });
    if fast_restore {
        let restored: Vec<_> = inv
            .volumes
            .iter()
            .filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some("lab-incident"))
            .collect();
        let fast = restored.iter().filter(|v| v.fast_restored).count();
        checks.push(Check {
            id: "volumes-fast-restored".into(),
            what: format!("both restored volumes fast-restored ({fast} of {})", restored.len()),
            ok: fast == 2 && restored.len() == 2,
        });
        let on: Vec<String> = world
            .fast_restores()
            .iter()
            .filter(|f| f.state.is_on())
            .map(|f| format!("{} in {}", f.snapshot, f.zone))
            .collect();
        checks.push(Check {
            id: "fast-restore-off-again".into(),
            what: format!(
                "Fast Snapshot Restore switched off again ({:.2} zone-hours billed{})",
                world.fast_restore_zone_hours(),
                if on.is_empty() { String::new() } else { format!("; still on: {}", on.join(", ")) }
            ),
            ok: on.is_empty(),
        });
    }

    let saved = dir.join("world.json");
    let saved = world.persist_to(&saved).map(|()| saved).map_err(|e| e.to_string());
    Ok(LabReport { snapshot: snap.to_string(), snapshots: snaps, restore_took, checks, saved, lab })
}

/// The report as text: timeline, calls per API, checks and the verdict.
pub fn report_text(report: &LabReport) -> String {
    let (world, dir, speed) = (&report.lab.world, &report.lab.dir, report.lab.opts.speed);
    let start = report.lab.epoch();
    let mut out = String::new();
    let _ = writeln!(out, "\n== timeline of the world (model time)");
    for (at, what) in world.timeline() {
        let _ = writeln!(out, "  {:>9.1}s  {what}", at.duration_since(start).as_secs_f64());
    }
    let _ = writeln!(out, "\n== calls per API");
    for (api, n) in world.call_counts() {
        let _ = writeln!(out, "  {api:<32} {n}");
    }
    let _ = writeln!(out, "\n== verification");
    for c in &report.checks {
        let _ = writeln!(out, "  [{}] {}", if c.ok { "ok" } else { "FAILED" }, c.what);
    }
    let _ = writeln!(
        out,
        "\nrestore took {:.1}s of model time; the whole lab {:.1}s of model time in {:.2}s real time (speed ×{speed})",
        report.restore_took.as_secs_f64(),
        world.now().duration_since(start).as_secs_f64(),
        report.lab.wall.elapsed().as_secs_f64()
    );
    match &report.saved {
        Err(e) => {
            let _ = writeln!(out, "(could not save the final world to {}: {e})", dir.join("world.json").display());
        }
        Ok(saved) => {
            let _ = writeln!(
                out,
                "final world saved to {} (journal and status under {})",
                saved.display(),
                dir.join("state").display()
            );
        }
    }
    let passed = report.passed();
    let _ = writeln!(out, "{}", if passed { "lab verification PASSED" } else { "lab verification FAILED" });
    out
}
