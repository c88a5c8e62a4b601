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
//! Host loss (`--hosts N --store dynamodb:TABLE`): every flow runs N daemons side by side as N
//! hosts, each with its own empty state directory, on one store and one lab directory (the
//! simulated world stands for AWS, which every host reaches). A kill hits the daemon that holds the
//! cluster's lease (its pid is in the holder's identity) and deletes that host's directory; a
//! fresh daemon takes its place as the new standby, and the flow can only finish through a
//! takeover from the table. Each trial's cluster gets a name unique to the campaign, so trials
//! never meet in the table. The tally adds how long each takeover took (from the kill to the first
//! look that saw another holder).
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
use crate::adapters::store::StoreSpec;
use crate::ids::{SnapshotId, VolumeId};
use crate::journal::{Journal, Record};
use crate::ports::Clock as _;
use crate::ports::Store;
use crate::ports::cloud::tag;
use crate::sim::{SimWorld, verdict};
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
    /// Daemons run side by side as separate hosts, each with its own local directory; a kill hits
    /// the one holding the cluster's lease and deletes its directory. More than one needs a store
    /// every host reaches (`--store dynamodb:TABLE`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub hosts: u8,
    /// Lease period of the daemons on a shared store, in seconds (`mirrorctl run --lease-secs`): a
    /// takeover waits about this long [default: 3].
    #[arg(long)]
    pub lease_secs: Option<u64>,
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
/// The same with a shared store (each look is a request to it).
const SHARED_POLL: Duration = Duration::from_millis(50);
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
    /// Shared store: from each kill of the lease holder to the first look that saw another holder.
    takeovers: Vec<Duration>,
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
    /// Starts host `host`'s daemon on the trial: its own state directory, the trial's desired
    /// state, and with a shared store that store and the trial's shared lab directory.
    fn start(exe: &Path, trial: &Trial, speed: f64, host: usize, shared: Option<&Shared>) -> Result<Daemon, CliError> {
        let state = trial.host_dir(host);
        std::fs::create_dir_all(&state).map_err(|e| CliError::Failed(format!("creating {}: {e}", state.display())))?;
        let log_path = trial.log_of(host);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| CliError::Failed(format!("opening {}: {e}", log_path.display())))?;
        let mut cmd = Command::new(exe);
        cmd.arg("--state-dir")
            .arg(&state)
            .args(["run", "--world", "lab", "--listen", "127.0.0.1:0", "--grace", "10", "--speed"])
            .arg(speed.to_string())
            .arg("--dir")
            .arg(&trial.ds)
            .env_remove("MIRRORCTL_STATE_DIR")
            .env_remove("MIRRORCTL_STORE")
            .env_remove("MIRRORCTL_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        if let Some(shared) = shared {
            cmd.arg("--store")
                .arg(shared.spec.to_string())
                .arg("--lease-secs")
                .arg(shared.lease_secs.to_string())
                .arg("--lab-dir")
                .arg(trial.lab_dir());
        }
        let child = cmd.spawn().map_err(|e| CliError::Failed(format!("starting {} run: {e}", exe.display())))?;
        Ok(Daemon { child })
    }

    fn pid(&self) -> u32 {
        self.child.id()
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
    /// The daemon's state directory (one host on the directory store); with a shared store each
    /// host has its own under `dir` ([`Trial::host_dir`]) and this one is unused.
    state: PathBuf,
    /// Whether the daemons share a store (then each host has its own directory, the lab world is
    /// in `dir/lab`, and the cluster's name is unique to the campaign).
    shared: bool,
    file: PathBuf,
    world_file: PathBuf,
    /// The example file up to its `[backup]` table.
    base: String,
    spec: Spec,
}

impl Trial {
    /// A trial on a fresh directory; `campaign` (with a shared store) makes the cluster's name
    /// unique, so trials and campaigns never meet in the store's table.
    fn new(
        base_dir: &Path,
        index: usize,
        os: LabOs,
        procedure: ProcedureChoice,
        campaign: Option<&str>,
    ) -> Result<Trial, CliError> {
        let (example, example_name) = match os {
            LabOs::Windows => (super::lab::WINDOWS_EXAMPLE, "prod-db"),
            LabOs::Linux => (super::lab::LINUX_EXAMPLE, "app-linux"),
        };
        let cut = example
            .find("\n[backup]")
            .ok_or_else(|| CliError::Failed("the built-in example has no [backup] table".into()))?;
        let name = campaign.map_or_else(|| example_name.to_owned(), |c| format!("{example_name}-{c}-t{index:03}"));
        let dir = base_dir.join(format!("trial-{index:03}"));
        let ds = dir.join("ds");
        let state = dir.join("state");
        let shared = campaign.is_some();
        let lab = if shared { dir.join("lab") } else { state.join("lab") };
        for d in [&ds, &lab] {
            std::fs::create_dir_all(d).map_err(|e| CliError::Failed(format!("creating {}: {e}", d.display())))?;
        }
        let mut t = Trial {
            index,
            file: ds.join(format!("{name}.toml")),
            world_file: lab.join(format!("{name}.json")),
            dir,
            ds,
            state,
            shared,
            base: example[..=cut]
                .replacen(&format!("name = \"{example_name}\""), &format!("name = \"{name}\""), 1)
                .replacen("[cluster]\n", &format!("[cluster]\nprocedure = \"{}\"\n", procedure.as_str()), 1),
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

    /// Host `host`'s state directory.
    fn host_dir(&self, host: usize) -> PathBuf {
        if self.shared { self.dir.join(format!("host-{host}")) } else { self.state.clone() }
    }

    /// Host `host`'s daemon log (appended to across its restarts).
    fn log_of(&self, host: usize) -> PathBuf {
        if self.shared { self.dir.join(format!("daemon-{host}.log")) } else { self.dir.join("daemon.log") }
    }

    /// Where the lab world lives (shared by every host).
    fn lab_dir(&self) -> PathBuf {
        self.world_file.parent().map_or_else(|| self.dir.join("lab"), Path::to_path_buf)
    }

    fn open_world(&self, speed: f64) -> Result<Arc<SimWorld>, CliError> {
        SimWorld::open(&self.world_file, speed)
            .map_err(|e| CliError::Failed(format!("opening {}: {e}", self.world_file.display())))
    }
}

/// The store the daemons of a campaign share when they run as several hosts.
struct Shared {
    /// `dynamodb:TABLE`, passed to every daemon.
    spec: StoreSpec,
    /// The harness's own connection: status documents, journals and lease holders are read here.
    store: Arc<dyn Store>,
    /// The daemons' lease period.
    lease_secs: u64,
}

/// Whether `doc` says `op` completed and the cluster converged.
fn says_converged(doc: &StatusDoc, op: &str) -> bool {
    doc.phase == Phase::Converged && doc.operations.get(op).is_some_and(|s| s.state == OpPhase::Completed)
}

/// Where a kill landed, from the journal's records (`None`: a torn line): the step whose call was
/// in flight (an intent without a result written since this daemon started, at position `since`),
/// or the last step done of this flow. Intents left without a result by earlier kills are not
/// counted: the planner resolves them by observation.
fn kill_phase(records: &[Option<Record>], flow: FlowKind, since: usize) -> String {
    let prefix = format!("{}/", flow.label());
    let kind = |step: &str| {
        let last = step.rsplit('/').next().unwrap_or(step);
        last.split('@').next().unwrap_or(last).to_owned()
    };
    let mut open: Vec<(u64, String)> = Vec::new();
    let mut last_done: Option<String> = None;
    for (i, record) in records.iter().enumerate() {
        match record {
            Some(Record::Intent { seq, step, .. }) if i >= since && step.0.starts_with(&prefix) => {
                open.push((*seq, kind(&step.0)));
            }
            Some(Record::Result { seq, step, .. }) if step.0.starts_with(&prefix) => {
                open.retain(|(s, _)| s != seq);
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

/// The process id in a DynamoDB lease holder's identity (`host pid N random`).
fn holder_pid(holder: &str) -> Option<u32> {
    let mut words = holder.split_whitespace();
    words.by_ref().find(|w| *w == "pid")?;
    words.next()?.parse().ok()
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

/// Drives one flow: start the hosts' daemons, kill the active one at each of `kills` (cumulative
/// running time), start a fresh daemon in its place, until the status says `op` completed; then
/// `SIGTERM` every daemon.
struct FlowDriver<'a> {
    exe: &'a Path,
    speed: f64,
    patience: Duration,
    hosts: usize,
    shared: Option<&'a Shared>,
}

impl FlowDriver<'_> {
    /// The trial's status document: the state directory's file, or the shared store's item.
    async fn status(&self, trial: &Trial) -> Result<Option<StatusDoc>, String> {
        match self.shared {
            None => match StatusDoc::read(&trial.status_path()) {
                Ok(doc) => Ok(Some(doc)),
                Err(e) if !trial.status_path().exists() => Err(format!("no status ({e})")),
                Err(e) => Err(e.to_string()),
            },
            Some(sh) => sh.store.read_status(&trial.spec.cluster.name).await.map_err(|e| e.to_string()),
        }
    }

    async fn converged(&self, trial: &Trial, op: &str) -> bool {
        self.status(trial).await.is_ok_and(|d| d.is_some_and(|d| says_converged(&d, op)))
    }

    /// The journal, read leniently and without changing it (a torn last line is `None`).
    async fn journal(&self, trial: &Trial) -> Vec<Option<Record>> {
        match self.shared {
            None => {
                let path = Journal::path_for(&trial.state, &trial.spec.cluster.name);
                let text = std::fs::read_to_string(path).unwrap_or_default();
                text.lines().map(|l| serde_json::from_str::<Record>(l).ok()).collect()
            }
            Some(sh) => sh
                .store
                .read_journal(&trial.spec.cluster.name)
                .await
                .map(|r| r.into_iter().map(Some).collect())
                .unwrap_or_default(),
        }
    }

    /// Who holds the cluster's lease now (shared store only).
    async fn holder(&self, trial: &Trial) -> Option<String> {
        self.shared?.store.holder(&trial.spec.cluster.name).await.ok().flatten()
    }

    /// The host whose daemon acts on the cluster now: the only one on the directory store, the
    /// lease holder's on a shared store (`None` while nobody living holds it).
    async fn active(&self, trial: &Trial, daemons: &[Option<Daemon>]) -> Option<usize> {
        if self.shared.is_none() {
            return daemons.first()?.as_ref().map(|_| 0);
        }
        let pid = holder_pid(&self.holder(trial).await?)?;
        daemons.iter().position(|d| d.as_ref().is_some_and(|d| d.pid() == pid))
    }

    /// [`check_status`] wherever the daemons keep the status document.
    async fn check_status(&self, trial: &Trial, op: &str, abandoned: Option<&str>) -> Vec<Violation> {
        match self.shared {
            None => check_status(&trial.state, &trial.spec, op, abandoned),
            Some(sh) => match self.status(trial).await {
                Ok(Some(doc)) => check_status_doc(&doc, op, abandoned),
                Ok(None) => vec![violation(
                    "status",
                    format!("{} has no status document in {}", trial.spec.cluster.name, sh.spec),
                )],
                Err(e) => vec![violation("status", format!("cannot read the status in {}: {e}", sh.spec))],
            },
        }
    }

    fn poll(&self) -> Duration {
        if self.shared.is_some() { SHARED_POLL } else { POLL }
    }

    #[allow(clippy::too_many_lines)] // one loop over the segments between kills
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
        let start = Instant::now();
        let mut run =
            FlowRun { kills: 0, converged: false, changed_to: None, violations: Vec::new(), took: Duration::ZERO };
        let mut alive = Duration::ZERO;
        let mut daemons: Vec<Option<Daemon>> = (0..self.hosts).map(|_| None).collect();
        // A kill of the lease holder not yet followed by another holder: when, and whom.
        let mut takeover: Option<(Instant, String)> = None;
        loop {
            let since = self.journal(trial).await.len();
            for (host, slot) in daemons.iter_mut().enumerate() {
                if slot.is_none() {
                    *slot = Some(Daemon::start(self.exe, trial, self.speed, host, self.shared)?);
                }
            }
            let began = Instant::now();
            let kill_at = kills.get(run.kills).map(|at| at.saturating_sub(alive));
            let outcome = loop {
                if self.converged(trial, &op).await {
                    break Segment::Converged;
                }
                let died = daemons.iter_mut().enumerate().find_map(|(h, d)| d.as_mut()?.exited().map(|c| (h, c)));
                if let Some((host, code)) = died {
                    break Segment::Died(host, code);
                }
                if let Some((at, gone)) = &takeover
                    && self.holder(trial).await.is_some_and(|h| &h != gone)
                {
                    tally.takeovers.push(at.elapsed());
                    takeover = None;
                }
                if kill_at.is_some_and(|at| began.elapsed() >= at)
                    && let Some(host) = self.active(trial, &daemons).await
                {
                    break Segment::KillDue(host);
                }
                if start.elapsed() > self.patience {
                    break Segment::TimedOut;
                }
                tokio::time::sleep(self.poll()).await;
            };
            alive += began.elapsed();
            match outcome {
                Segment::Converged => {
                    run.converged = true;
                    run.took = start.elapsed();
                    for daemon in daemons.iter_mut().flatten() {
                        match daemon.terminate(Duration::from_secs(15)).await {
                            Some(0) => {}
                            code => run.violations.push(violation(
                                "unclean-stop",
                                format!("SIGTERM after convergence: exit {code:?} (0 expected)"),
                            )),
                        }
                    }
                    tally.undelivered += kills.len() - run.kills;
                    return Ok(run);
                }
                Segment::KillDue(host) => {
                    let holder = self.holder(trial).await;
                    if let Some(mut daemon) = daemons[host].take() {
                        daemon.kill9();
                    }
                    if let Some(holder) = holder {
                        // The host is lost with its disk: its successor starts from nothing.
                        let _ = std::fs::remove_dir_all(trial.host_dir(host));
                        takeover = Some((Instant::now(), holder));
                    }
                    run.kills += 1;
                    tally.restarts += 1;
                    *tally.points.entry(flow).or_default() += 1;
                    *tally.phases.entry(kill_phase(&self.journal(trial).await, flow, since)).or_default() += 1;
                    if let (Some(snapshot), 1) = (change, run.kills) {
                        // The operator changes the request while mirrorctl is down.
                        trial.spec = trial.write_desired(Some((snapshot, REQUESTS[1])))?;
                        op = format!("restore/{}", REQUESTS[1]);
                        run.changed_to = Some(REQUESTS[1]);
                    }
                }
                Segment::Died(host, code) => {
                    daemons[host] = None;
                    run.violations.push(violation(
                        "daemon-exit",
                        format!("host {host}'s daemon exited on its own (code {code}) during the {}", flow.label()),
                    ));
                    tally.restarts += 1;
                }
                Segment::TimedOut => {
                    for daemon in daemons.iter_mut().flatten() {
                        daemon.kill9();
                    }
                    let doc = match self.status(trial).await {
                        Ok(Some(d)) => {
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
                        }
                        Ok(None) => "no status".to_owned(),
                        Err(e) => e,
                    };
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
    /// The active daemon (this host's) is due for its kill.
    KillDue(usize),
    /// This host's daemon exited on its own, with this code.
    Died(usize, i32),
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
        let backed_up = verdict::backup(world, &snap.id);
        if !backed_up.captured_once() {
            out.push(violation(
                "quiesce",
                format!(
                    "snapshot {} holds {:?}; quiesce points seen: {:?} (exactly one, equal to the snapshot, expected)",
                    snap.id,
                    backed_up.snapshot,
                    backed_up.quiesce_points.iter().map(ToString::to_string).collect::<Vec<_>>()
                ),
            ));
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
    let restored = verdict::restore(world, &expect.snapshot);
    match restored.sides.as_slice() {
        [(_, Some(a)), _] if restored.identical => {
            if !restored.accident_gone {
                out.push(violation("accident-kept", format!("both sides hold {a}, which contains the accident")));
            }
            if !restored.from_snapshot {
                let from = restored.snapshot;
                out.push(violation("not-from-snapshot", format!("both sides hold {a}; the snapshot holds {from:?}")));
            }
        }
        sides => out.push(violation("sides-differ", format!("mirror contents after the restore: {sides:?}"))),
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
    match StatusDoc::read(&path) {
        Ok(doc) => check_status_doc(&doc, op, abandoned),
        Err(e) => vec![violation("status", format!("cannot read {}: {e}", path.display()))],
    }
}

/// [`check_status`] on a document already read (from a shared store).
fn check_status_doc(doc: &StatusDoc, op: &str, abandoned: Option<&str>) -> Vec<Violation> {
    let mut out = Vec::new();
    if !says_converged(doc, op) {
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

/// The shared store of a campaign on `--store`, checked reachable; `None` on the directory store.
async fn shared_store(base: &Path, args: &ChaosArgs, store: Option<&StoreSpec>) -> Result<Option<Shared>, CliError> {
    let Some(spec @ StoreSpec::Dynamo { .. }) = store else {
        if args.hosts > 1 {
            return Err(CliError::Usage(format!(
                "--hosts {} needs a store every host reaches: add --store dynamodb:TABLE (create the table once \
                 with `mirrorctl store init --store dynamodb:TABLE`)",
                args.hosts
            )));
        }
        if args.lease_secs.is_some() {
            return Err(CliError::Usage(
                "--lease-secs applies to a shared store (--store dynamodb:TABLE): the directory store's lock lasts \
                 as long as its process"
                    .into(),
            ));
        }
        return Ok(None);
    };
    let lease_secs = args.lease_secs.unwrap_or(DEFAULT_LEASE_SECS);
    if lease_secs == 0 {
        return Err(CliError::Usage("--lease-secs must be at least 1 second".into()));
    }
    let store = spec.open(base).await;
    // One read before any trial: a missing table or a refused permission stops the campaign here.
    let probe = crate::ids::ClusterName::parse("chaos-probe")
        .map_err(|e| CliError::Failed(format!("the probe cluster name is invalid: {e}")))?;
    store.read_status(&probe).await.map_err(|e| CliError::Failed(format!("store {spec}: {e}")))?;
    Ok(Some(Shared { spec: spec.clone(), store, lease_secs }))
}

/// Runs the campaign; exit 0 when no violation was seen, 1 otherwise. `store` is the global
/// `--store`: a shared store runs the daemons as `--hosts` hosts on it.
pub async fn run(state_dir: &Path, args: &ChaosArgs, store: Option<&StoreSpec>) -> Result<u8, CliError> {
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
    print!("{}", render(&tally, args, shared.as_ref(), &expected, wall.elapsed()));
    Ok(u8::from(!tally.violations.is_empty()))
}

/// How long a flow may take: generous against the measured durations, at least [`MIN_PATIENCE`].
fn patience(expected: &BTreeMap<(&'static str, FlowKind), Duration>, os: &str) -> Duration {
    let longest = expected.iter().filter(|((o, _), _)| *o == os).map(|(_, d)| *d).max().unwrap_or_default();
    (longest * 20).max(MIN_PATIENCE)
}

/// The default lease period of a shared-store campaign: short, so that takeovers (one lease
/// period each) do not dominate the campaign's wall time.
const DEFAULT_LEASE_SECS: u64 = 3;

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
        .map_err(|e| CliError::Failed(format!("saving {}: {e}", trial.world_file.display())))?;
    drop(fast);
    let world = trial.open_world(speed)?;
    world.accident();
    if !verdict::accident_everywhere(&world) {
        return Err(CliError::Failed(format!(
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

#[allow(clippy::cast_precision_loss)] // counts are small
fn render(
    t: &Tally,
    args: &ChaosArgs,
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
