//! `mirrorctl lab`: the whole story against the built-in simulated world, no AWS account needed.
//!
//! It builds the runbook's two-node cluster (Windows, or Linux with `--os linux`) in a fresh
//! simulated world, then: takes a backup the runbook's way, lets business run, simulates the
//! accident (data deleted on the active and mirrored to the standby), restores both servers from
//! the backup, and verifies with the data oracle that the snapshot held the quiesce point, that
//! both sides equal the snapshot's data with the accident gone, that nothing was corrupted or
//! deleted. It prints a timeline in model time and the number of calls per API. Exit 0 when the
//! verification passes, 1 otherwise. `-o json` prints one document instead ([`json`]).
//!
//! `--mirrors 2` tells the same story on a cluster with two md resources (a database's data and
//! logs, [`Scenario::two_mirrors`]): the backup quiesces both and snapshots both standby volumes
//! as one set, the accident hits both, the restore names the backup (`[restore] backup = …`) and
//! restores every md of it, and the oracle judges each md on its own.

use std::fmt::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use tokio::sync::mpsc::unbounded_channel;

use super::{CliError, LabOs, Output};
use crate::execute::{Event, Progress};
use crate::ids::{BackupName, RequestName};
use crate::ports::Clock as _;
use crate::ports::cloud::tag;
use crate::reconcile::{Context, Settled, reconcile};
use crate::sim::{Scenario, SimWorld, verdict};
use crate::spec::{BackupRestoreSpec, BackupSpec, ProcedureChoice, RestoreSpec, Spec};

mod json;

pub(super) const WINDOWS_EXAMPLE: &str = include_str!("../../desired-state/prod-db.toml");
pub(super) const LINUX_EXAMPLE: &str = include_str!("../../desired-state/app-linux.toml");

/// The lab's desired state: the example file of the OS, without schedule or restore, following
/// `procedure`.
pub fn lab_spec(os: LabOs, procedure: ProcedureChoice) -> Result<Spec, CliError> {
    let (name, text) = match os {
        LabOs::Windows => ("desired-state/prod-db.toml", WINDOWS_EXAMPLE),
        LabOs::Linux => ("desired-state/app-linux.toml", LINUX_EXAMPLE),
    };
    let mut spec =
        crate::spec::load_str(Path::new(name), text).map_err(|e| CliError::Failed(format!("built-in example: {e}")))?;
    spec.backup = None;
    spec.restore = None;
    spec.cluster.procedure = procedure;
    Ok(spec)
}

struct Check {
    /// Stable identifier (`-o json`); per md (`md2:accident-gone`) when the lab has several.
    id: String,
    what: String,
    ok: bool,
}

/// What story the lab tells.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Operating system of the simulated cluster.
    pub os: LabOs,
    /// The CLUSTERPRO procedure of the file.
    pub procedure: ProcedureChoice,
    /// Restore with Fast Snapshot Restore.
    pub fast_restore: bool,
    /// md resources of the cluster: 1 or 2.
    pub mirrors: u8,
}

impl Options {
    /// Refuses what the story cannot do: a set restore has neither Fast Snapshot Restore nor
    /// NEC's procedure.
    fn check(self) -> Result<(), CliError> {
        if self.mirrors == 2 && self.fast_restore {
            return Err(CliError::Usage(
                "--mirrors 2 restores a snapshot set, which mirrorctl does not restore with Fast Snapshot Restore: drop --fast-restore".into(),
            ));
        }
        if self.mirrors == 2 && self.procedure == ProcedureChoice::Vendor {
            return Err(CliError::Usage(
                "--mirrors 2 restores a snapshot set with the configuration edit: use --procedure auto or reconfigure"
                    .into(),
            ));
        }
        if !(1..=2).contains(&self.mirrors) {
            return Err(CliError::Usage(format!("--mirrors is 1 or 2, not {}", self.mirrors)));
        }
        Ok(())
    }
}

/// The check id of `what` for md `md` (bare when the lab has one md).
fn check_id(several: bool, md: &crate::ids::ResourceName, what: &str) -> String {
    if several { format!("{md}:{what}") } else { what.to_owned() }
}

/// Runs the lab.
#[allow(clippy::too_many_lines)]
pub async fn run(
    state_dir: &Path,
    speed: f64,
    world_seed: u64,
    options: Options,
    output: Output,
) -> Result<u8, CliError> {
    let Options { os, procedure, fast_restore, mirrors } = options;
    if !(speed.is_finite() && speed > 0.0) {
        return Err(CliError::Usage(format!("--speed must be a positive number, not {speed}")));
    }
    options.check()?;
    let several = mirrors > 1;
    let wall = Instant::now();
    let dir = state_dir.join("lab");
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| CliError::Failed(format!("clearing {}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| CliError::Failed(format!("creating {}: {e}", dir.display())))?;
    let spec_os = match os {
        LabOs::Windows => crate::spec::Os::Windows,
        LabOs::Linux => crate::spec::Os::Linux,
    };
    let scenario = match (os, several) {
        (_, true) => Scenario::two_mirrors(spec_os),
        (LabOs::Windows, false) => Scenario::windows_runbook(),
        (LabOs::Linux, false) => Scenario::linux(),
    };
    let spec = if several {
        let mut spec = scenario.spec("").map_err(|e| CliError::Failed(format!("the two-md scenario's file: {e}")))?;
        spec.cluster.procedure = procedure;
        spec
    } else {
        lab_spec(os, procedure)?
    };
    // Not persisted while it runs: saving the world after every call costs real milliseconds,
    // which a speed factor turns into model seconds. The final world is saved for inspection.
    let world = SimWorld::new(scenario, world_seed, speed);

    let (tx, mut rx) = unbounded_channel::<Event>();
    let start = world.scenario().epoch;
    let text = output == Output::Text;
    let say = |line: &str| {
        if text {
            println!("{line}");
        }
    };
    let printer = tokio::spawn(async move {
        let mut events = Vec::new();
        while let Some(e) = rx.recv().await {
            if text {
                if let Some(l) = super::apply::render_event(&e, start) {
                    println!("{l}");
                }
            } else {
                events.push(super::apply::event_json(&e, start));
            }
        }
        events
    });
    let mut ctx = Context::new(world.ports(), dir.join("state"));
    ctx.progress = Progress::to(tx);
    let mut checks = Vec::new();
    let os_name = match os {
        LabOs::Windows => "windows",
        LabOs::Linux => "linux",
    };
    let mds: Vec<crate::ids::ResourceName> = spec.mirrors().map(|m| m.resource.clone()).collect();
    let shape = if several {
        format!(", md {}", mds.iter().map(ToString::to_string).collect::<Vec<_>>().join(" and "))
    } else {
        String::new()
    };
    say(&format!("mirrorctl lab: cluster {} ({os_name}{shape}), seed {world_seed}, speed ×{speed}", spec.cluster.name));
    say("\n== 1. backup \"lab-backup\" (the runbook's backup procedure)");
    let backup_name = BackupName::parse("lab-backup").map_err(|e| CliError::Failed(e.to_string()))?;
    let mut backup = spec.clone();
    backup.backup =
        Some(BackupSpec { schedules: Vec::new(), keep: 7, take: vec![backup_name.clone()], copy_to: Vec::new() });
    let settled = reconcile(&backup, &ctx).await.map_err(|e| CliError::Failed(e.to_string()))?;
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
            CliError::Failed(format!("the backup left no snapshot of {md}'s data ({} snapshot(s))", taken.len()))
        })?;
        snaps.push((md.clone(), snap));
    }
    let snap = snaps[0].1.clone();
    for (md, s) in &snaps {
        let backed_up = verdict::backup_of(&world, md, s);
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
        ok: verdict::accident_everywhere(&world),
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
    let request = RequestName::parse("lab-incident").map_err(|e| CliError::Failed(e.to_string()))?;
    if several {
        restore.restore_backup =
            Some(BackupRestoreSpec { backup: backup_name.clone(), request, verify_failover: true });
    } else {
        restore.restore =
            Some(RestoreSpec { snapshot: snap.clone(), request, verify_failover: true, allow_foreign_snapshot: false });
    }
    let restore_started = world.now();
    let settled = reconcile(&restore, &ctx).await.map_err(|e| CliError::Failed(e.to_string()))?;
    let restore_took = world.now().duration_since(restore_started);
    checks.push(Check {
        id: "restore-converged".into(),
        what: "restore converged".into(),
        ok: settled == Settled::Converged,
    });
    drop(ctx);
    let events = printer.await.unwrap_or_default();

    for (md, s) in &snaps {
        let restored = if several { verdict::restore_of(&world, md, s) } else { verdict::restore(&world, s) };
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

    if !text {
        let saved = dir.join("world.json");
        let saved = world.persist_to(&saved).map(|()| saved);
        let doc = json::document(&json::Facts {
            world: &world,
            cluster: spec.cluster.name.as_str(),
            os: os_name,
            seed: world_seed,
            speed,
            procedure,
            fast_restore,
            mirrors,
            snapshot: snap.as_str(),
            snapshots: &snaps,
            restore_s: restore_took.as_secs_f64(),
            wall_s: wall.elapsed().as_secs_f64(),
            events,
            checks: &checks,
            saved: saved.as_deref().map_err(ToString::to_string),
            state: &dir.join("state"),
        });
        println!("{}", serde_json::to_string_pretty(&doc).map_err(|e| CliError::Failed(e.to_string()))?);
        return Ok(u8::from(!checks.iter().all(|c| c.ok)));
    }
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
    for c in &checks {
        let _ = writeln!(out, "  [{}] {}", if c.ok { "ok" } else { "FAILED" }, c.what);
    }
    let _ = writeln!(
        out,
        "\nrestore took {:.1}s of model time; the whole lab {:.1}s of model time in {:.2}s real time (speed ×{speed})",
        restore_took.as_secs_f64(),
        world.now().duration_since(start).as_secs_f64(),
        wall.elapsed().as_secs_f64()
    );
    let saved = dir.join("world.json");
    if let Err(e) = world.persist_to(&saved) {
        let _ = writeln!(out, "(could not save the final world to {}: {e})", saved.display());
    } else {
        let _ = writeln!(
            out,
            "final world saved to {} (journal and status under {})",
            saved.display(),
            dir.join("state").display()
        );
    }
    let passed = checks.iter().all(|c| c.ok);
    let _ = writeln!(out, "{}", if passed { "lab verification PASSED" } else { "lab verification FAILED" });
    print!("{out}");
    Ok(u8::from(!passed))
}
