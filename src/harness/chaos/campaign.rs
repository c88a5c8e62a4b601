//! The campaign: trials of a backup and a restore flow each, their kill instants, the shared
//! store of a multi-host campaign, and the loop over trials.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use super::driver::{FlowDriver, FlowRun, Trial};
use super::tally::{Tally, render};
use super::verdicts::{RestoreExpect, Violation, check_backup, check_restore, tagged, violation, volume_ids};
use super::{
    BACKUP, BUSINESS, CampaignReport, ChaosOptions, ChaosProcedure, FAST_FORWARD_SPEED, FlowKind, MIN_PATIENCE,
    REQUESTS, Shared,
};
use crate::adapters::store::StoreSpec;
use crate::harness::HarnessError;
use crate::ports::Clock as _;
use crate::ports::cloud::tag;
use crate::sim::{SimWorld, verdict};
use crate::spec::Os;
use crate::spec::ProcedureChoice;

/// Kill instants for one flow: `k` positions drawn uniformly over `expected`, sorted.
pub(super) fn draw_kills(rng: &mut ChaCha8Rng, expected: Duration, max_kills: usize) -> Vec<Duration> {
    let k = rng.random_range(1..=max_kills);
    let mut at: Vec<Duration> = (0..k).map(|_| expected.mul_f64(rng.random::<f64>())).collect();
    at.sort();
    at
}

/// The shared store of a campaign on `--store`, checked reachable; `None` on the directory store.
pub(super) async fn shared_store(
    base: &Path,
    args: &ChaosOptions,
    store: Option<&StoreSpec>,
) -> Result<Option<Shared>, HarnessError> {
    let Some(spec @ StoreSpec::Dynamo { .. }) = store else {
        if args.hosts > 1 {
            return Err(HarnessError::Usage(format!(
                "--hosts {} needs a store every host reaches: add --store dynamodb:TABLE (create the table once \
                 with `mirrorctl store init --store dynamodb:TABLE`)",
                args.hosts
            )));
        }
        if args.lease_secs.is_some() {
            return Err(HarnessError::Usage(
                "--lease-secs applies to a shared store (--store dynamodb:TABLE): the directory store's lock lasts \
                 as long as its process"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let lease_secs = args.lease_secs.unwrap_or(DEFAULT_LEASE_SECS);
    if lease_secs == 0 {
        return Err(HarnessError::Usage("--lease-secs must be at least 1 second".into()));
    }
    let store = spec.open(base).await;
    // One read before any trial: a missing table or a refused permission stops the campaign here.
    let probe = crate::ids::ClusterName::parse("chaos-probe")
        .map_err(|e| HarnessError::caused("the probe cluster name is invalid", e))?;
    store.read_status(&probe).await.map_err(|e| HarnessError::caused(format!("store {spec}"), e))?;
    Ok(Some(Shared { spec: spec.clone(), store, lease_secs }))
}

/// Runs the campaign under `state_dir/chaos` and returns its tally. `store` is the store the
/// daemons use: a shared store runs them as `args.hosts` hosts on it.
pub async fn run(
    state_dir: &Path,
    args: &ChaosOptions,
    store: Option<&StoreSpec>,
) -> Result<CampaignReport, HarnessError> {
    if args.points == 0 {
        return Err(HarnessError::Usage("--points must be at least 1".into()));
    }
    if args.max_kills == 0 {
        return Err(HarnessError::Usage("--max-kills must be at least 1".into()));
    }
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(HarnessError::Usage(format!("--speed must be a positive number, not {}", args.speed)));
    }
    let exe = std::env::current_exe()
        .map_err(|e| HarnessError::caused("cannot find this executable to start the daemon", e))?;
    let base = crate::harness::fresh_dir(state_dir, "chaos")?;
    let shared = shared_store(&base, args, store).await?;
    // With a shared store every trial's cluster gets a name of its own in the table.
    let campaign = shared.as_ref().map(|_| {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        format!("{:06x}", now.as_millis() & 0xff_ffff)
    });
    let wall = Instant::now();
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut tally = Tally::default();
    // Expected flow durations per OS, measured by that OS's first trial (run without kills).
    let mut expected: BTreeMap<(&'static str, FlowKind), Duration> = BTreeMap::new();
    let mut restores_with_kills = 0usize;
    let max_trials = args.points * 2 + 4;
    for index in 0.. {
        if tally.total_points() >= args.points {
            break;
        }
        if index >= max_trials {
            tally.violations.push((
                index,
                violation("campaign", format!("{max_trials} trials delivered only {} kills", tally.total_points())),
            ));
            break;
        }
        let os = if index % 2 == 0 { Os::Windows } else { Os::Linux };
        let vendor = match args.procedure {
            ChaosProcedure::Vendor => true,
            ChaosProcedure::Reconfigure => false,
            ChaosProcedure::Both => index % 4 < 2,
        };
        let procedure = if vendor { ProcedureChoice::Vendor } else { ProcedureChoice::Reconfigure };
        // The flavour keys the expected durations: the two procedures take different times.
        let os_name = match (os, procedure) {
            (Os::Windows, ProcedureChoice::Vendor) => "windows/vendor",
            (Os::Linux, ProcedureChoice::Vendor) => "linux/vendor",
            (Os::Windows, _) => "windows/reconfigure",
            (Os::Linux, _) => "linux/reconfigure",
        };
        let mut trial = Trial::new(&base, index, os, procedure, campaign.as_deref())?;
        let world_seed = args.seed.wrapping_mul(1_000).wrapping_add(index as u64);
        let plan = |rng: &mut ChaCha8Rng, flow| {
            expected.get(&(os_name, flow)).map_or_else(Vec::new, |t| draw_kills(rng, *t, args.max_kills))
        };
        let backup_kills = plan(&mut rng, FlowKind::Backup);
        let restore_kills = plan(&mut rng, FlowKind::Restore);
        let change = !restore_kills.is_empty() && {
            restores_with_kills += 1;
            restores_with_kills.is_multiple_of(3)
        };
        let driver = FlowDriver {
            exe: &exe,
            speed: args.speed,
            patience: patience(&expected, os_name),
            hosts: usize::from(args.hosts),
            shared: shared.as_ref(),
        };
        let before_violations = tally.violations.len();
        let measured =
            run_trial(&mut trial, world_seed, args.speed, &driver, [backup_kills, restore_kills], change, &mut tally)
                .await?;
        for (flow, took) in measured {
            expected.entry((os_name, flow)).or_insert(took);
        }
        tally.trials += 1;
        *tally.trials_by_os.entry(os_name).or_default() += 1;
        let bad = tally.violations.len() > before_violations;
        if bad || args.keep {
            tally.kept.push(trial.dir.clone());
        } else {
            let _ = std::fs::remove_dir_all(&trial.dir);
        }
    }
    Ok(CampaignReport {
        text: render(&tally, args, shared.as_ref(), &expected, wall.elapsed()),
        violations: tally.violations.len(),
    })
}

/// How long a flow may take: generous against the measured durations, at least [`MIN_PATIENCE`].
pub(super) fn patience(expected: &BTreeMap<(&'static str, FlowKind), Duration>, os: &str) -> Duration {
    let longest = expected.iter().filter(|((o, _), _)| *o == os).map(|(_, d)| *d).max().unwrap_or_default();
    (longest * 20).max(MIN_PATIENCE)
}

/// The default lease period of a shared-store campaign: short, so that takeovers (one lease
/// period each) do not dominate the campaign's wall time.
pub const DEFAULT_LEASE_SECS: u64 = 3;

/// One trial: the backup flow, ten minutes of business, the accident, the restore flow; checks
/// after each. Returns the wall time of each flow that converged without kills (calibration).
pub(super) async fn run_trial(
    trial: &mut Trial,
    world_seed: u64,
    speed: f64,
    driver: &FlowDriver<'_>,
    [backup_kills, restore_kills]: [Vec<Duration>; 2],
    change: bool,
    tally: &mut Tally,
) -> Result<Vec<(FlowKind, Duration)>, HarnessError> {
    let mut measured = Vec::new();
    let world = SimWorld::new(crate::sim::scenario::scenario_for(&trial.spec), world_seed, speed);
    world
        .persist_to(&trial.world_file)
        .map_err(|e| HarnessError::caused(format!("creating {}", trial.world_file.display()), e))?;
    let before = volume_ids(&world);
    drop(world);
    let idx = trial.index;
    let record = |tally: &mut Tally, flow: FlowKind, run: &FlowRun, checks: Vec<Violation>| {
        tally.flows += 1;
        tally.converged += usize::from(run.converged);
        *tally.kills_per_flow.entry(run.kills).or_default() += 1;
        for v in run.violations.iter().cloned().chain(checks) {
            tally.violations.push((idx, Violation { kind: v.kind, detail: format!("{}: {}", flow.label(), v.detail) }));
        }
    };

    // Backup.
    let backup = driver.run(trial, FlowKind::Backup, &backup_kills, None, tally).await?;
    if backup.kills == 0 && backup.converged {
        measured.push((FlowKind::Backup, backup.took));
    }
    let world = trial.open_world(speed)?;
    let mut checks = check_backup(&world, &trial.spec, BACKUP, &before);
    checks.extend(driver.check_status(trial, &format!("backup/{BACKUP}"), None).await);
    let snapshot = world
        .inventory()
        .snapshots
        .iter()
        .find(|s| tagged(&s.tags, tag::REQUEST) == Some(BACKUP))
        .map(|s| s.id.clone());
    drop(world);
    let backup_ok = backup.converged && checks.is_empty();
    record(tally, FlowKind::Backup, &backup, checks);
    let Some(snapshot) = snapshot.filter(|_| backup_ok) else {
        return Ok(measured);
    };

    // Ten minutes of business (skipped fast: no daemon runs), then the accident.
    let fast = trial.open_world(FAST_FORWARD_SPEED)?;
    fast.clock().sleep(BUSINESS).await;
    fast.persist_to(&trial.world_file)
        .map_err(|e| HarnessError::caused(format!("saving {}", trial.world_file.display()), e))?;
    drop(fast);
    let world = trial.open_world(speed)?;
    world.accident();
    if !verdict::accident_everywhere(&world) {
        return Err(HarnessError::Failed(format!(
            "trial {idx}: the simulated accident did not reach both servers ({:?}); the campaign cannot go on",
            world.oracle_report().servers
        )));
    }
    let mut expect = RestoreExpect {
        snapshot: snapshot.clone(),
        request: REQUESTS[0].to_owned(),
        abandoned: None,
        originals: trial.spec.cluster.servers.iter().filter_map(|s| world.mirror_volume(&s.name)).collect(),
        before: volume_ids(&world),
    };
    drop(world);

    // Restore.
    trial.spec = trial.write_desired(Some((&snapshot, REQUESTS[0])))?;
    let restore = driver.run(trial, FlowKind::Restore, &restore_kills, change.then_some(&snapshot), tally).await?;
    if restore.kills == 0 && restore.converged {
        measured.push((FlowKind::Restore, restore.took));
    }
    if let Some(to) = restore.changed_to {
        tally.request_changes += 1;
        expect.abandoned = Some(expect.request.clone());
        to.clone_into(&mut expect.request);
    }
    let world = trial.open_world(speed)?;
    let mut checks = check_restore(&world, &trial.spec, &expect);
    let abandoned = expect.abandoned.as_ref().map(|r| format!("restore/{r}"));
    checks.extend(driver.check_status(trial, &format!("restore/{}", expect.request), abandoned.as_deref()).await);
    record(tally, FlowKind::Restore, &restore, checks);
    Ok(measured)
}
