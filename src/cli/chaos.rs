//! `mirrorctl bench chaos`: the kill -9 campaign against the real binary.
//!
//! Why this module exists: the crash tests (`tests/it/crash_resume.rs`) stop the executor at chosen
//! points inside one process; they cannot show what a real `SIGKILL` does to a real daemon — its
//! fsync'd journal, its atomically written status documents and the persisted lab world, each cut
//! at an arbitrary instant by the kernel. This harness does exactly that, many times, and judges
//! the result with the simulated world's own state (its inventory and data oracle), not with what
//! mirrorctl believes.
//!
//! How a campaign runs. Each *trial* is a fresh persisted lab world (seeded) with a desired-state
//! directory, alternating the runbook's Windows cluster and the Linux example. A trial has two
//! *flows*: a backup (`take = ["b1"]`), then — after ten minutes of model time and a mistaken
//! deletion mirrored to the standby — a restore from that backup (`request = "r1"`). Every flow
//! starts `mirrorctl run --world lab` (this very executable, [`std::env::current_exe`]), and for a
//! flow with `k` kills (drawn from `1..=--max-kills`) kills it with `SIGKILL` at `k` instants drawn
//! uniformly over the flow's expected duration, restarting it after each kill, until its status
//! document says converged; then it stops the daemon with `SIGTERM` (which must exit 0). The
//! instants are positions in the daemon's cumulative running time for the flow, so they spread over
//! every phase of the flow, not only its start. The expected durations are measured by the first
//! trial of each OS, which runs without kills. Every third restore with a kill also changes its
//! request (`r1` → `r2`) while the daemon is down, so the abandonment path is killed too.
//!
//! The checks after each flow (each failure is a *violation*, counted by kind):
//! - the flow converged and the status document says so (`phase = converged`, the operation
//!   `completed`; an abandoned request `abandoned` or never started);
//! - backup: exactly one snapshot of `b1` and of the cluster in all, taken from the standby's
//!   volume, holding the one quiesce point the oracle saw; business back online on the active;
//! - restore: exactly one volume per server for the final request, attached to that server as its
//!   mirror disk; at most one per server for an abandoned request; no volume deleted (every volume
//!   seen before is still there); the replaced volumes kept, detached and tagged superseded; no
//!   snapshot deleted or duplicated; both sides identical, descended from the snapshot, without the
//!   accident; no corruption flagged by the oracle; the group on the second server after the
//!   failover check (moved exactly once when the request did not change);
//! - the daemon never exits on its own, and stops cleanly on `SIGTERM`.
//!
//! Kill points are classified from the journal after each kill (which step's call was in flight,
//! or which step was the last one done), so the tally shows where they landed. The campaign prints
//! a tally and exits 1 on any violation; the directories of trials with a violation are kept.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};
use rand_chacha::ChaCha8Rng;

use super::{CliError, LabOs};
use crate::ids::{SnapshotId, VolumeId};
use crate::journal::{Journal, Record};
use crate::ports::Clock as _;
use crate::ports::cloud::tag;
use crate::sim::SimWorld;
use crate::spec::ProcedureChoice;
use crate::spec::Spec;
use crate::status::{OpPhase, Phase, StatusDoc};

/// Options of `mirrorctl bench chaos`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// Kill points to deliver: trials run until at least this many kills landed in unfinished flows.
    #[arg(long, default_value_t = 200)]
    pub points: usize,
    /// Seed of the kill instants, the kill counts and the trials' worlds.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Lab speed factor of the daemon under test (model seconds per real second).
    #[arg(long, default_value_t = 100.0)]
    pub speed: f64,
    /// Most kills in one flow; each flow draws its number from 1..=this.
    #[arg(long, default_value_t = 4)]
    pub max_kills: usize,
    /// Keep every trial's directory (by default only those with a violation are kept).
    #[arg(long)]
    pub keep: bool,
    /// Which CLUSTERPRO procedure the trials' clusters follow; `both` alternates NEC's
    /// pre/post-processing (`vendor`) and the configuration edit (`reconfigure`) trial by trial.
    #[arg(long, value_enum, default_value_t = ChaosProcedure::Both)]
    pub procedure: ChaosProcedure,
}

/// `bench chaos --procedure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ChaosProcedure {
    /// Vendor and reconfigure trials in turn.
    Both,
    /// NEC's `clpbackup` / `clprestore` (the lab cluster runs X 5.1).
    Vendor,
    /// The runbook's configuration edit.
    Reconfigure,
}

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Its kind (the tally counts by kind), e.g. `duplicate-volume`.
    pub kind: &'static str,
    /// What exactly was seen.
    pub detail: String,
}

fn violation(kind: &'static str, detail: impl Into<String>) -> Violation {
    Violation { kind, detail: detail.into() }
}

/// Model time between the backup and the accident (the lab's ten minutes of business).
const BUSINESS: Duration = Duration::from_mins(10);
/// Speed of the world while the harness skips those ten minutes (no daemon runs then).
const FAST_FORWARD_SPEED: f64 = 10_000.0;
/// How often the harness looks at the status document and the child process.
const POLL: Duration = Duration::from_millis(10);
/// The longest a flow may take before it counts as not converging, at least.
const MIN_PATIENCE: Duration = Duration::from_mins(1);
/// The name of the backup every trial takes.
const BACKUP: &str = "b1";
/// The request of every restore, and the one it changes to.
const REQUESTS: [&str; 2] = ["r1", "r2"];

/// Which half of a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum FlowKind {
    Backup,
    Restore,
}

impl FlowKind {
    fn label(self) -> &'static str {
        match self {
            FlowKind::Backup => "backup",
            FlowKind::Restore => "restore",
        }
    }
}

/// Everything counted over a campaign.
#[derive(Debug, Default)]
struct Tally {
    trials: usize,
    trials_by_os: BTreeMap<&'static str, usize>,
    points: BTreeMap<FlowKind, usize>,
    kills_per_flow: BTreeMap<usize, usize>,
    /// Kills drawn that did not land: the flow had converged first.
    undelivered: usize,
    restarts: usize,
    flows: usize,
    converged: usize,
    request_changes: usize,
    phases: BTreeMap<String, usize>,
    violations: Vec<(usize, Violation)>,
    kept: Vec<PathBuf>,
}

impl Tally {
    fn total_points(&self) -> usize {
        self.points.values().sum()
    }
}

/// A daemon under test; killed (by its own pid) on drop.
struct Daemon {
    child: Child,
}

impl Daemon {
    fn start(exe: &Path, trial: &Trial, speed: f64) -> Result<Daemon, CliError> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&trial.log)
            .map_err(|e| CliError::Failed(format!("opening {}: {e}", trial.log.display())))?;
        let child = Command::new(exe)
            .arg("--state-dir")
            .arg(&trial.state)
            .args(["run", "--world", "lab", "--listen", "127.0.0.1:0", "--grace", "10", "--speed"])
            .arg(speed.to_string())
            .arg("--dir")
            .arg(&trial.ds)
            .env_remove("MIRRORCTL_STATE_DIR")
            .env_remove("MIRRORCTL_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| CliError::Failed(format!("starting {} run: {e}", exe.display())))?;
        Ok(Daemon { child })
    }

    /// The exit code if it has exited (`-1`: killed by a signal).
    fn exited(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().map(|s| s.code().unwrap_or(-1))
    }

    /// `SIGKILL`, then reap it.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// `SIGTERM`; its exit code, or `None` when it did not exit within `limit` (then killed).
    async fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !sent.is_ok_and(|s| s.success()) {
            self.kill9();
            return None;
        }
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(code) = self.exited() {
                return Some(code);
            }
            tokio::time::sleep(POLL).await;
        }
        self.kill9();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.exited().is_none() {
            self.kill9();
        }
    }
}

/// One trial's files.
struct Trial {
    index: usize,
    dir: PathBuf,
    ds: PathBuf,
    state: PathBuf,
    file: PathBuf,
    world_file: PathBuf,
    log: PathBuf,
    /// The example file up to its `[backup]` table.
    base: String,
    spec: Spec,
}

impl Trial {
    fn new(base_dir: &Path, index: usize, os: LabOs, procedure: ProcedureChoice) -> Result<Trial, CliError> {
        let (example, name) = match os {
            LabOs::Windows => (super::lab::WINDOWS_EXAMPLE, "prod-db"),
            LabOs::Linux => (super::lab::LINUX_EXAMPLE, "app-linux"),
        };
        let cut = example
            .find("\n[backup]")
            .ok_or_else(|| CliError::Failed("the built-in example has no [backup] table".into()))?;
        let dir = base_dir.join(format!("trial-{index:03}"));
        let ds = dir.join("ds");
        let state = dir.join("state");
        for d in [&ds, &state.join("lab")] {
            std::fs::create_dir_all(d).map_err(|e| CliError::Failed(format!("creating {}: {e}", d.display())))?;
        }
        let mut t = Trial {
            index,
            file: ds.join(format!("{name}.toml")),
            world_file: state.join("lab").join(format!("{name}.json")),
            log: dir.join("daemon.log"),
            dir,
            ds,
            state,
            base: example[..=cut].replacen(
                "[cluster]\n",
                &format!("[cluster]\nprocedure = \"{}\"\n", procedure.as_str()),
                1,
            ),
            // The example's own spec until the first write below replaces it with the file's.
            spec: super::lab::lab_spec(os, procedure)?,
        };
        t.spec = t.write_desired(None)?;
        Ok(t)
    }

    /// Writes the desired state: backup `b1`, and the restore of `restore = (snapshot, request)`.
    fn write_desired(&self, restore: Option<(&SnapshotId, &str)>) -> Result<Spec, CliError> {
        let mut text = format!("{}[backup]\nkeep = 7\ntake = [\"{BACKUP}\"]\n", self.base);
        if let Some((snapshot, request)) = restore {
            let _ = write!(
                text,
                "\n[restore]\nsnapshot = \"{snapshot}\"\nrequest = \"{request}\"\nverify_failover = true\n"
            );
        }
        let spec = crate::spec::load_str(&self.file, &text)
            .map_err(|e| CliError::Failed(format!("the chaos desired state is invalid: {e}")))?;
        // Through a temporary file and a rename: a daemon never reads half of it.
        let tmp = self.ds.join(".desired.tmp");
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, &self.file))
            .map_err(|e| CliError::Failed(format!("writing {}: {e}", self.file.display())))?;
        Ok(spec)
    }

    fn status_path(&self) -> PathBuf {
        StatusDoc::path_for(&self.state, &self.spec.cluster.name)
    }

    fn open_world(&self, speed: f64) -> Result<Arc<SimWorld>, CliError> {
        SimWorld::open(&self.world_file, speed)
            .map_err(|e| CliError::Failed(format!("opening {}: {e}", self.world_file.display())))
    }
}

/// Whether the status document says `op` completed and the cluster converged.
fn converged(status: &Path, op: &str) -> bool {
    StatusDoc::read(status).is_ok_and(|d| {
        d.phase == Phase::Converged && d.operations.get(op).is_some_and(|s| s.state == OpPhase::Completed)
    })
}

/// The number of lines of the journal (complete or torn).
fn journal_lines(journal: &Path) -> usize {
    std::fs::read_to_string(journal).map_or(0, |t| t.lines().count())
}

/// Where a kill landed, from the journal: the step whose call was in flight (an intent without a
/// result written since this daemon started, at line `since`), or the last step done of this flow.
/// Read leniently (a torn last line is skipped) and without changing the file. Intents left
/// without a result by earlier kills are not counted: the planner resolves them by observation.
fn kill_phase(journal: &Path, flow: FlowKind, since: usize) -> String {
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    let prefix = format!("{}/", flow.label());
    let kind = |step: &str| {
        let last = step.rsplit('/').next().unwrap_or(step);
        last.split('@').next().unwrap_or(last).to_owned()
    };
    let mut open: Vec<(u64, String)> = Vec::new();
    let mut last_done: Option<String> = None;
    for (i, line) in text.lines().enumerate() {
        match serde_json::from_str::<Record>(line) {
            Ok(Record::Intent { seq, step, .. }) if i >= since && step.0.starts_with(&prefix) => {
                open.push((seq, kind(&step.0)));
            }
            Ok(Record::Result { seq, step, .. }) if step.0.starts_with(&prefix) => {
                open.retain(|(s, _)| *s != seq);
                last_done = Some(kind(&step.0));
            }
            _ => {}
        }
    }
    let flow = flow.label();
    if open.is_empty() {
        match last_done {
            Some(step) => format!("{flow}: after {step}"),
            None => format!("{flow}: before its first step"),
        }
    } else {
        let mut steps: Vec<String> = open.into_iter().map(|(_, s)| s).collect();
        steps.sort();
        steps.dedup();
        format!("{flow}: inside {}", steps.join(" + "))
    }
}

/// How a flow went.
struct FlowRun {
    kills: usize,
    converged: bool,
    /// The request in force at the end (restores).
    changed_to: Option<&'static str>,
    violations: Vec<Violation>,
    /// Wall time from the first start to convergence.
    took: Duration,
}

/// Drives one flow: start, kill at each of `kills` (cumulative running time), restart, until the
/// status says `op` completed; then `SIGTERM`.
struct FlowDriver<'a> {
    exe: &'a Path,
    speed: f64,
    patience: Duration,
}

impl FlowDriver<'_> {
    async fn run(
        &self,
        trial: &mut Trial,
        flow: FlowKind,
        kills: &[Duration],
        change: Option<&SnapshotId>,
        tally: &mut Tally,
    ) -> Result<FlowRun, CliError> {
        let mut op = match flow {
            FlowKind::Backup => format!("backup/{BACKUP}"),
            FlowKind::Restore => format!("restore/{}", REQUESTS[0]),
        };
        let journal = Journal::path_for(&trial.state, &trial.spec.cluster.name);
        let status = trial.status_path();
        let start = Instant::now();
        let mut run =
            FlowRun { kills: 0, converged: false, changed_to: None, violations: Vec::new(), took: Duration::ZERO };
        let mut alive = Duration::ZERO;
        loop {
            let since = journal_lines(&journal);
            let mut daemon = Daemon::start(self.exe, trial, self.speed)?;
            let began = Instant::now();
            let kill_at = kills.get(run.kills).map(|at| at.saturating_sub(alive));
            let outcome = loop {
                if converged(&status, &op) {
                    break Segment::Converged;
                }
                if let Some(code) = daemon.exited() {
                    break Segment::Died(code);
                }
                if kill_at.is_some_and(|at| began.elapsed() >= at) {
                    break Segment::KillDue;
                }
                if start.elapsed() > self.patience {
                    break Segment::TimedOut;
                }
                tokio::time::sleep(POLL).await;
            };
            alive += began.elapsed();
            match outcome {
                Segment::Converged => {
                    run.converged = true;
                    run.took = start.elapsed();
                    match daemon.terminate(Duration::from_secs(15)).await {
                        Some(0) => {}
                        code => run.violations.push(violation(
                            "unclean-stop",
                            format!("SIGTERM after convergence: exit {code:?} (0 expected)"),
                        )),
                    }
                    tally.undelivered += kills.len() - run.kills;
                    return Ok(run);
                }
                Segment::KillDue => {
                    daemon.kill9();
                    run.kills += 1;
                    tally.restarts += 1;
                    *tally.points.entry(flow).or_default() += 1;
                    *tally.phases.entry(kill_phase(&journal, flow, since)).or_default() += 1;
                    if let (Some(snapshot), 1) = (change, run.kills) {
                        // The operator changes the request while mirrorctl is down.
                        trial.spec = trial.write_desired(Some((snapshot, REQUESTS[1])))?;
                        op = format!("restore/{}", REQUESTS[1]);
                        run.changed_to = Some(REQUESTS[1]);
                    }
                }
                Segment::Died(code) => {
                    run.violations.push(violation(
                        "daemon-exit",
                        format!("the daemon exited on its own (code {code}) during the {}", flow.label()),
                    ));
                    tally.restarts += 1;
                }
                Segment::TimedOut => {
                    daemon.kill9();
                    let doc = StatusDoc::read(&status).map_or_else(
                        |e| format!("no status ({e})"),
                        |d| {
                            let ops: Vec<String> = d.operations.iter().map(|(o, st)| format!("{o} {st}")).collect();
                            let conds: Vec<String> =
                                d.conditions.iter().map(|c| format!("{}: {}", c.reason, c.message)).collect();
                            format!(
                                "phase {}, operations [{}], waiting {}, conditions [{}], last error {}",
                                d.phase.as_str(),
                                ops.join("; "),
                                d.waiting.as_deref().unwrap_or("-"),
                                conds.join("; "),
                                d.last_error.as_deref().unwrap_or("-")
                            )
                        },
                    );
                    run.violations.push(violation(
                        "non-convergence",
                        format!("{op} not converged after {:?} and {} kills: {doc}", self.patience, run.kills),
                    ));
                    tally.undelivered += kills.len().saturating_sub(run.kills);
                    run.took = start.elapsed();
                    return Ok(run);
                }
            }
        }
    }
}

enum Segment {
    Converged,
    KillDue,
    Died(i32),
    TimedOut,
}

/// The volumes of `world`, by id.
fn volume_ids(world: &SimWorld) -> Vec<VolumeId> {
    world.inventory().volumes.into_iter().map(|v| v.id).collect()
}

/// Every resource of the world's group (md, the service depending on it, the virtual IP that does
/// not) online on `server` after `flow`: business is back exactly as it was.
fn group_online_on(world: &SimWorld, server: &crate::ids::ServerName, flow: &str) -> Vec<Violation> {
    use crate::ports::cluster::ObjectState;
    world
        .cluster_status()
        .resources
        .iter()
        .filter(|(_, p)| p.state != ObjectState::Online || p.current.as_ref() != Some(server))
        .map(|(r, p)| {
            violation(
                "business-down",
                format!("{r} is {:?} on {:?} after {flow}, not online on {server}", p.state, p.current),
            )
        })
        .collect()
}

fn tagged<'a>(tags: &'a crate::ports::cloud::Tags, key: &str) -> Option<&'a str> {
    tags.get(key).map(String::as_str)
}

/// The backup checks, on the world's own state: one snapshot of `backup` and of the cluster in
/// all, of the standby's volume, holding the one quiesce point; business online on the active; no
/// volume created or deleted (`before`: the volumes before the backup).
pub fn check_backup(world: &SimWorld, spec: &Spec, backup: &str, before: &[VolumeId]) -> Vec<Violation> {
    let mut out = Vec::new();
    let inv = world.inventory();
    let report = world.oracle_report();
    let cluster = spec.cluster.name.as_str();
    let ours: Vec<_> = inv.snapshots.iter().filter(|s| tagged(&s.tags, tag::CLUSTER) == Some(cluster)).collect();
    let of_backup: Vec<_> = ours.iter().filter(|s| tagged(&s.tags, tag::REQUEST) == Some(backup)).collect();
    if of_backup.len() != 1 || ours.len() != 1 {
        out.push(violation(
            "duplicate-snapshot",
            format!(
                "{} snapshots of backup {backup}, {} of the cluster in all (1 and 1 expected)",
                of_backup.len(),
                ours.len()
            ),
        ));
    }
    if inv.deleted_snapshots != 0 {
        out.push(violation("snapshot-deleted", format!("{} snapshots deleted", inv.deleted_snapshots)));
    }
    let standby = &spec.cluster.servers[1];
    if let [snap] = of_backup.as_slice() {
        let standby_volume = inv
            .instances
            .iter()
            .find(|i| i.id == standby.instance)
            .and_then(|i| i.devices.iter().find(|(d, _)| *d == spec.mirror.device).map(|(_, v)| v.clone()));
        if snap.volume.is_none() || snap.volume != standby_volume {
            out.push(violation(
                "wrong-snapshot-source",
                format!(
                    "snapshot {} is of {:?}, the standby's mirror volume is {standby_volume:?}",
                    snap.id, snap.volume
                ),
            ));
        }
        match report.quiesce_points.as_slice() {
            [q] if report.snapshots.get(&snap.id) == Some(&q.content) => {}
            points => out.push(violation(
                "quiesce",
                format!(
                    "snapshot {} holds {:?}; quiesce points seen: {:?} (exactly one, equal to the snapshot, expected)",
                    snap.id,
                    report.snapshots.get(&snap.id),
                    points.iter().map(|q| q.content.to_string()).collect::<Vec<_>>()
                ),
            )),
        }
    }
    if report.active.as_ref() != Some(&spec.cluster.servers[0].name) {
        out.push(violation("business-down", format!("md online on {:?} after the backup", report.active)));
    }
    out.extend(group_online_on(world, &spec.cluster.servers[0].name, "the backup"));
    out.extend(volumes_kept(&inv, before));
    let now: Vec<&VolumeId> = inv.volumes.iter().map(|v| &v.id).collect();
    if now.len() != before.len() {
        out.push(violation("duplicate-volume", format!("the backup changed the volume count: {before:?} → {now:?}")));
    }
    out.extend(corruption(&report));
    out
}

fn volumes_kept(inv: &crate::sim::Inventory, before: &[VolumeId]) -> Vec<Violation> {
    let mut out = Vec::new();
    if inv.deleted_volumes != 0 {
        out.push(violation("volume-deleted", format!("{} volumes deleted", inv.deleted_volumes)));
    }
    for v in before {
        if !inv.volumes.iter().any(|x| x.id == *v) {
            out.push(violation("volume-deleted", format!("volume {v} is gone")));
        }
    }
    out
}

fn corruption(report: &crate::sim::OracleReport) -> Vec<Violation> {
    report.corruptions.iter().map(|c| violation("corruption", c.clone())).collect()
}

/// What a restore should have left.
#[derive(Debug, Clone)]
pub struct RestoreExpect {
    /// The snapshot restored.
    pub snapshot: SnapshotId,
    /// The request in force at the end.
    pub request: String,
    /// A request abandoned for it, if the request changed.
    pub abandoned: Option<String>,
    /// The mirror volumes before the restore (they must be kept, detached, tagged superseded).
    pub originals: Vec<VolumeId>,
    /// Every volume before the restore (none may disappear).
    pub before: Vec<VolumeId>,
}

/// The restore checks, on the world's own state (see the module doc).
pub fn check_restore(world: &SimWorld, spec: &Spec, expect: &RestoreExpect) -> Vec<Violation> {
    let inv = world.inventory();
    let mut out = restored_volumes(world, &inv, spec, expect);
    let cluster = spec.cluster.name.as_str();
    let ours = inv.snapshots.iter().filter(|s| tagged(&s.tags, tag::CLUSTER) == Some(cluster)).count();
    if ours != 1 {
        out.push(violation(
            "duplicate-snapshot",
            format!("{ours} snapshots of the cluster after the restore (1 expected)"),
        ));
    }
    if inv.deleted_snapshots != 0 {
        out.push(violation("snapshot-deleted", format!("{} snapshots deleted", inv.deleted_snapshots)));
    }
    out.extend(restored_data(world, spec, expect));
    out
}

/// Volumes after a restore: one per server for the request, attached as its mirror disk; at most
/// one per server for an abandoned request; nothing deleted; the replaced ones kept and marked.
fn restored_volumes(
    world: &SimWorld,
    inv: &crate::sim::Inventory,
    spec: &Spec,
    expect: &RestoreExpect,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let cluster = spec.cluster.name.as_str();
    for s in &spec.cluster.servers {
        let of = |request: &str| -> Vec<&crate::ports::cloud::Volume> {
            inv.volumes
                .iter()
                .filter(|v| {
                    tagged(&v.tags, tag::CLUSTER) == Some(cluster)
                        && tagged(&v.tags, tag::REQUEST) == Some(request)
                        && tagged(&v.tags, tag::SERVER) == Some(s.name.as_str())
                })
                .collect()
        };
        let mine = of(&expect.request);
        match mine.as_slice() {
            [v] => {
                if world.mirror_volume(&s.name).as_ref() != Some(&v.id) {
                    out.push(violation(
                        "not-attached",
                        format!(
                            "{}'s mirror disk is {:?}, not its {} volume {}",
                            s.name,
                            world.mirror_volume(&s.name),
                            expect.request,
                            v.id
                        ),
                    ));
                }
            }
            [] => out.push(violation("missing-volume", format!("no {} volume for {}", expect.request, s.name))),
            many => out.push(violation(
                "duplicate-volume",
                format!(
                    "{} volumes of {} for {}: {:?}",
                    many.len(),
                    expect.request,
                    s.name,
                    many.iter().map(|v| &v.id).collect::<Vec<_>>()
                ),
            )),
        }
        if let Some(old) = &expect.abandoned {
            let theirs = of(old);
            if theirs.len() > 1 {
                out.push(violation(
                    "duplicate-volume",
                    format!("{} volumes of abandoned {old} for {}", theirs.len(), s.name),
                ));
            }
        }
    }
    out.extend(volumes_kept(inv, &expect.before));
    for old in &expect.originals {
        if let Some(v) = inv.volumes.iter().find(|v| v.id == *old)
            && (!v.attachments.is_empty() || !v.tags.contains_key(tag::SUPERSEDED_BY))
        {
            out.push(violation(
                "original-not-superseded",
                format!(
                    "replaced volume {old}: attachments {:?}, superseded-by {:?}",
                    v.attachments,
                    v.tags.get(tag::SUPERSEDED_BY)
                ),
            ));
        }
    }
    out
}

/// The data after a restore (the oracle): both sides identical, from the snapshot, without the
/// accident, no corruption; the group on the second server after one failover check.
fn restored_data(world: &SimWorld, spec: &Spec, expect: &RestoreExpect) -> Vec<Violation> {
    let mut out = Vec::new();
    let report = world.oracle_report();
    let sides: Vec<_> = report.servers.iter().map(|(s, c)| (s.clone(), *c)).collect();
    match sides.as_slice() {
        [(_, Some(a)), (_, Some(b))] if a == b => {
            if world.contains_accident(*a) {
                out.push(violation("accident-kept", format!("both sides hold {a}, which contains the accident")));
            }
            let from = report.snapshots.get(&expect.snapshot).copied();
            if !from.is_some_and(|f| world.descends_from(*a, f)) {
                out.push(violation("not-from-snapshot", format!("both sides hold {a}; the snapshot holds {from:?}")));
            }
        }
        _ => out.push(violation("sides-differ", format!("mirror contents after the restore: {sides:?}"))),
    }
    out.extend(corruption(&report));
    let second = &spec.cluster.servers[1].name;
    if report.active.as_ref() != Some(second) {
        out.push(violation(
            "failover",
            format!("md online on {:?}, not on {second} after the failover check", report.active),
        ));
    }
    out.extend(group_online_on(world, second, "the restore"));
    if expect.abandoned.is_none() {
        let moves = world.call_counts().get("clp:move_group").copied().unwrap_or(0);
        if moves != 1 {
            out.push(violation("failover", format!("{moves} group moves (one failover check expected)")));
        }
    }
    out
}

/// The status document after a flow: converged, `op` completed, `abandoned` (if any) abandoned or
/// never started.
pub fn check_status(state_dir: &Path, spec: &Spec, op: &str, abandoned: Option<&str>) -> Vec<Violation> {
    let path = StatusDoc::path_for(state_dir, &spec.cluster.name);
    let doc = match StatusDoc::read(&path) {
        Ok(d) => d,
        Err(e) => return vec![violation("status", format!("cannot read {}: {e}", path.display()))],
    };
    let mut out = Vec::new();
    if doc.phase != Phase::Converged || !doc.operations.get(op).is_some_and(|s| s.state == OpPhase::Completed) {
        let state = doc.operations.get(op).map_or_else(|| "absent".to_owned(), ToString::to_string);
        out.push(violation("status", format!("phase {}, {op}: {state}", doc.phase.as_str())));
    }
    if let Some(old) = abandoned
        && let Some(state) = doc.operations.get(old)
        && !matches!(state.state, OpPhase::Abandoned | OpPhase::Completed)
    {
        out.push(violation("status", format!("{old} is {state} after it was replaced")));
    }
    out
}

/// Kill instants for one flow: `k` positions drawn uniformly over `expected`, sorted.
fn draw_kills(rng: &mut ChaCha8Rng, expected: Duration, max_kills: usize) -> Vec<Duration> {
    let k = rng.random_range(1..=max_kills);
    let mut at: Vec<Duration> = (0..k).map(|_| expected.mul_f64(rng.random::<f64>())).collect();
    at.sort();
    at
}

/// Runs the campaign; exit 0 when no violation was seen, 1 otherwise.
pub async fn run(state_dir: &Path, args: &ChaosArgs) -> Result<u8, CliError> {
    if args.points == 0 {
        return Err(CliError::Usage("--points must be at least 1".into()));
    }
    if args.max_kills == 0 {
        return Err(CliError::Usage("--max-kills must be at least 1".into()));
    }
    if !(args.speed.is_finite() && args.speed > 0.0) {
        return Err(CliError::Usage(format!("--speed must be a positive number, not {}", args.speed)));
    }
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Failed(format!("cannot find this executable to start the daemon: {e}")))?;
    let base = super::bench::fresh_dir(state_dir, "chaos")?;
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
        let os = if index % 2 == 0 { LabOs::Windows } else { LabOs::Linux };
        let vendor = match args.procedure {
            ChaosProcedure::Vendor => true,
            ChaosProcedure::Reconfigure => false,
            ChaosProcedure::Both => index % 4 < 2,
        };
        let procedure = if vendor { ProcedureChoice::Vendor } else { ProcedureChoice::Reconfigure };
        // The flavour keys the expected durations: the two procedures take different times.
        let os_name = match (os, procedure) {
            (LabOs::Windows, ProcedureChoice::Vendor) => "windows/vendor",
            (LabOs::Linux, ProcedureChoice::Vendor) => "linux/vendor",
            (LabOs::Windows, _) => "windows/reconfigure",
            (LabOs::Linux, _) => "linux/reconfigure",
        };
        let mut trial = Trial::new(&base, index, os, procedure)?;
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
        let driver = FlowDriver { exe: &exe, speed: args.speed, patience: patience(&expected, os_name) };
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
    print!("{}", render(&tally, args, &expected, wall.elapsed()));
    Ok(u8::from(!tally.violations.is_empty()))
}

/// How long a flow may take: generous against the measured durations, at least [`MIN_PATIENCE`].
fn patience(expected: &BTreeMap<(&'static str, FlowKind), Duration>, os: &str) -> Duration {
    let longest = expected.iter().filter(|((o, _), _)| *o == os).map(|(_, d)| *d).max().unwrap_or_default();
    (longest * 20).max(MIN_PATIENCE)
}

/// One trial: the backup flow, ten minutes of business, the accident, the restore flow; checks
/// after each. Returns the wall time of each flow that converged without kills (calibration).
async fn run_trial(
    trial: &mut Trial,
    world_seed: u64,
    speed: f64,
    driver: &FlowDriver<'_>,
    [backup_kills, restore_kills]: [Vec<Duration>; 2],
    change: bool,
    tally: &mut Tally,
) -> Result<Vec<(FlowKind, Duration)>, CliError> {
    let mut measured = Vec::new();
    let world = SimWorld::new(crate::cli::world::scenario_for(&trial.spec), world_seed, speed);
    world
        .persist_to(&trial.world_file)
        .map_err(|e| CliError::Failed(format!("creating {}: {e}", trial.world_file.display())))?;
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
    checks.extend(check_status(&trial.state, &trial.spec, &format!("backup/{BACKUP}"), None));
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
        .map_err(|e| CliError::Failed(format!("saving {}: {e}", trial.world_file.display())))?;
    drop(fast);
    let world = trial.open_world(speed)?;
    world.accident();
    let report = world.oracle_report();
    if !report.servers.values().all(|c| c.is_some_and(|c| world.contains_accident(c))) {
        return Err(CliError::Failed(format!(
            "trial {idx}: the simulated accident did not reach both servers ({:?}); the campaign cannot go on",
            report.servers
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
    checks.extend(check_status(
        &trial.state,
        &trial.spec,
        &format!("restore/{}", expect.request),
        abandoned.as_deref(),
    ));
    record(tally, FlowKind::Restore, &restore, checks);
    Ok(measured)
}

#[allow(clippy::cast_precision_loss)] // counts are small
fn render(
    t: &Tally,
    args: &ChaosArgs,
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
