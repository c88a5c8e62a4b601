//! The flow driver: the daemons under test (`mirrorctl run --world lab`), a trial's directories
//! and lab world, and one flow run to convergence with its kills and restarts.

use std::fmt::Write as _;
use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::tally::Tally;
use super::verdicts::{Violation, check_status, check_status_doc, says_converged, violation};
use super::{BACKUP, FlowKind, POLL, REQUESTS, SHARED_POLL, Shared};
use crate::harness::HarnessError;
use crate::ids::SnapshotId;
use crate::journal::Record;
use crate::journal::writer::Journal;
use crate::plan::StepId;
use crate::sim::SimWorld;
use crate::spec::Os;
use crate::spec::ProcedureChoice;
use crate::spec::Spec;
use crate::status::StatusDoc;

/// What the daemon logs once its signal handlers are in place (`cli::run`).
const STARTED: &str = "mirrorctl daemon started";

/// A daemon under test; killed (by its own pid) on drop.
pub(super) struct Daemon {
    pub(super) child: Child,
    /// Its log, and where this start's lines begin in it (the log is appended to across restarts).
    log: PathBuf,
    log_from: u64,
}

impl Daemon {
    /// Starts host `host`'s daemon on the trial: its own state directory, the trial's desired
    /// state, and with a shared store that store and the trial's shared lab directory.
    pub(super) fn start(
        exe: &Path,
        trial: &Trial,
        speed: f64,
        host: usize,
        shared: Option<&Shared>,
    ) -> Result<Daemon, HarnessError> {
        let state = trial.host_dir(host);
        std::fs::create_dir_all(&state)
            .map_err(|e| HarnessError::caused(format!("creating {}", state.display()), e))?;
        let log_path = trial.log_of(host);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .map_err(|e| HarnessError::caused(format!("opening {}", log_path.display()), e))?;
        let log_from = log.metadata().map_or(0, |m| m.len());
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
        let child = cmd.spawn().map_err(|e| HarnessError::caused(format!("starting {} run", exe.display()), e))?;
        Ok(Daemon { child, log: log_path, log_from })
    }

    pub(super) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit code if it has exited (`-1`: killed by a signal).
    pub(super) fn exited(&mut self) -> Option<i32> {
        self.child.try_wait().ok().flatten().map(|s| s.code().unwrap_or(-1))
    }

    /// `SIGKILL`, then reap it.
    pub(super) fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Whether this start of the daemon has logged that it is up (and so handles `SIGTERM`).
    fn started(&self) -> bool {
        use std::io::{Read, Seek, SeekFrom};
        let Ok(mut f) = std::fs::File::open(&self.log) else { return false };
        let mut text = String::new();
        f.seek(SeekFrom::Start(self.log_from)).is_ok() && f.read_to_string(&mut text).is_ok() && text.contains(STARTED)
    }

    /// `SIGTERM` once the daemon is up (before, the signal's default action would kill it: a
    /// daemon that converged a flow its predecessor nearly finished can be seconds old); its exit
    /// code, or `None` when it did not exit within `limit` (then killed).
    pub(super) async fn terminate(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while !self.started() && start.elapsed() < limit {
            if let Some(code) = self.exited() {
                return Some(code);
            }
            tokio::time::sleep(POLL).await;
        }
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !sent.is_ok_and(|s| s.success()) {
            self.kill9();
            return None;
        }
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
pub(super) struct Trial {
    pub(super) index: usize,
    pub(super) dir: PathBuf,
    pub(super) ds: PathBuf,
    /// The daemon's state directory (one host on the directory store); with a shared store each
    /// host has its own under `dir` ([`Trial::host_dir`]) and this one is unused.
    pub(super) state: PathBuf,
    /// Whether the daemons share a store (then each host has its own directory, the lab world is
    /// in `dir/lab`, and the cluster's name is unique to the campaign).
    pub(super) shared: bool,
    pub(super) file: PathBuf,
    pub(super) world_file: PathBuf,
    /// The example file up to its `[backup]` table.
    pub(super) base: String,
    pub(super) spec: Spec,
}

impl Trial {
    /// A trial on a fresh directory; `campaign` (with a shared store) makes the cluster's name
    /// unique, so trials and campaigns never meet in the store's table.
    pub(super) fn new(
        base_dir: &Path,
        index: usize,
        os: Os,
        procedure: ProcedureChoice,
        campaign: Option<&str>,
    ) -> Result<Trial, HarnessError> {
        let (example, example_name) = match os {
            Os::Windows => (crate::harness::lab::WINDOWS_EXAMPLE, "prod-db"),
            Os::Linux => (crate::harness::lab::LINUX_EXAMPLE, "app-linux"),
        };
        let cut = example
            .find("\n[backup]")
            .ok_or_else(|| HarnessError::Failed("the built-in example has no [backup] table".into()))?;
        let name = campaign.map_or_else(|| example_name.to_owned(), |c| format!("{example_name}-{c}-t{index:03}"));
        let dir = base_dir.join(format!("trial-{index:03}"));
        let ds = dir.join("ds");
        let state = dir.join("state");
        let shared = campaign.is_some();
        let lab = if shared { dir.join("lab") } else { state.join("lab") };
        for d in [&ds, &lab] {
            std::fs::create_dir_all(d).map_err(|e| HarnessError::caused(format!("creating {}", d.display()), e))?;
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
            spec: crate::harness::lab::lab_spec(os, procedure)?,
        };
        t.spec = t.write_desired(None)?;
        Ok(t)
    }

    /// Writes the desired state: backup `b1`, and the restore of `restore = (snapshot, request)`.
    pub(super) fn write_desired(&self, restore: Option<(&SnapshotId, &str)>) -> Result<Spec, HarnessError> {
        let mut text = format!("{}[backup]\nkeep = 7\ntake = [\"{BACKUP}\"]\n", self.base);
        if let Some((snapshot, request)) = restore {
            let _ = write!(
                text,
                "\n[restore]\nsnapshot = \"{snapshot}\"\nrequest = \"{request}\"\nverify_failover = true\n"
            );
        }
        let spec = crate::spec::load_str(&self.file, &text)
            .map_err(|e| HarnessError::caused("the chaos desired state is invalid", e))?;
        // Through a temporary file and a rename: a daemon never reads half of it.
        let tmp = self.ds.join(".desired.tmp");
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, &self.file))
            .map_err(|e| HarnessError::caused(format!("writing {}", self.file.display()), e))?;
        Ok(spec)
    }

    pub(super) fn status_path(&self) -> PathBuf {
        StatusDoc::path_for(&self.state, &self.spec.cluster.name)
    }

    /// Host `host`'s state directory.
    pub(super) fn host_dir(&self, host: usize) -> PathBuf {
        if self.shared { self.dir.join(format!("host-{host}")) } else { self.state.clone() }
    }

    /// Host `host`'s daemon log (appended to across its restarts).
    pub(super) fn log_of(&self, host: usize) -> PathBuf {
        if self.shared { self.dir.join(format!("daemon-{host}.log")) } else { self.dir.join("daemon.log") }
    }

    /// Where the lab world lives (shared by every host).
    pub(super) fn lab_dir(&self) -> PathBuf {
        self.world_file.parent().map_or_else(|| self.dir.join("lab"), Path::to_path_buf)
    }

    pub(super) fn open_world(&self, speed: f64) -> Result<Arc<SimWorld>, HarnessError> {
        SimWorld::open(&self.world_file, speed)
            .map_err(|e| HarnessError::caused(format!("opening {}", self.world_file.display()), e))
    }
}

/// Where a kill landed, from the journal's records (`None`: a torn line): the step whose call was
/// in flight (an intent without a result written since this daemon started, at position `since`),
/// or the last step done of this flow. Intents left without a result by earlier kills are not
/// counted: the planner resolves them by observation.
pub(super) fn kill_phase(records: &[Option<Record>], flow: FlowKind, since: usize) -> String {
    let prefix = format!("{}/", flow.label());
    let kind = |step: &StepId| step.kind().map_or_else(|| step.0.clone(), |k| k.to_string());
    let mut open: Vec<(u64, String)> = Vec::new();
    let mut last_done: Option<String> = None;
    for (i, record) in records.iter().enumerate() {
        match record {
            Some(Record::Intent { seq, step, .. }) if i >= since && step.0.starts_with(&prefix) => {
                open.push((*seq, kind(step)));
            }
            Some(Record::Result { seq, step, .. }) if step.0.starts_with(&prefix) => {
                open.retain(|(s, _)| s != seq);
                last_done = Some(kind(step));
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
pub(super) fn holder_pid(holder: &str) -> Option<u32> {
    let mut words = holder.split_whitespace();
    words.by_ref().find(|w| *w == "pid")?;
    words.next()?.parse().ok()
}

/// How a flow went.
pub(super) struct FlowRun {
    pub(super) kills: usize,
    pub(super) converged: bool,
    /// The request in force at the end (restores).
    pub(super) changed_to: Option<&'static str>,
    pub(super) violations: Vec<Violation>,
    /// Wall time from the first start to convergence.
    pub(super) took: Duration,
}

/// Drives one flow: start the hosts' daemons, kill the active one at each of `kills` (cumulative
/// running time), start a fresh daemon in its place, until the status says `op` completed; then
/// `SIGTERM` every daemon.
pub(super) struct FlowDriver<'a> {
    pub(super) exe: &'a Path,
    pub(super) speed: f64,
    pub(super) patience: Duration,
    pub(super) hosts: usize,
    pub(super) shared: Option<&'a Shared>,
}

impl FlowDriver<'_> {
    /// The trial's status document: the state directory's file, or the shared store's item.
    pub(super) async fn status(&self, trial: &Trial) -> Result<Option<StatusDoc>, String> {
        match self.shared {
            None => match StatusDoc::read(&trial.status_path()) {
                Ok(doc) => Ok(Some(doc)),
                Err(e) if !trial.status_path().exists() => Err(format!("no status ({e})")),
                Err(e) => Err(e.to_string()),
            },
            Some(sh) => sh.store.read_status(&trial.spec.cluster.name).await.map_err(|e| e.to_string()),
        }
    }

    pub(super) async fn converged(&self, trial: &Trial, op: &str) -> bool {
        self.status(trial).await.is_ok_and(|d| d.is_some_and(|d| says_converged(&d, op)))
    }

    /// The journal, read leniently and without changing it (a torn last line is `None`).
    pub(super) async fn journal(&self, trial: &Trial) -> Vec<Option<Record>> {
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
    pub(super) async fn holder(&self, trial: &Trial) -> Option<String> {
        self.shared?.store.holder(&trial.spec.cluster.name).await.ok().flatten()
    }

    /// The host whose daemon acts on the cluster now: the only one on the directory store, the
    /// lease holder's on a shared store (`None` while nobody living holds it).
    pub(super) async fn active(&self, trial: &Trial, daemons: &[Option<Daemon>]) -> Option<usize> {
        if self.shared.is_none() {
            return daemons.first()?.as_ref().map(|_| 0);
        }
        let pid = holder_pid(&self.holder(trial).await?)?;
        daemons.iter().position(|d| d.as_ref().is_some_and(|d| d.pid() == pid))
    }

    /// [`check_status`] wherever the daemons keep the status document.
    pub(super) async fn check_status(&self, trial: &Trial, op: &str, abandoned: Option<&str>) -> Vec<Violation> {
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

    pub(super) fn poll(&self) -> Duration {
        if self.shared.is_some() { SHARED_POLL } else { POLL }
    }

    #[allow(clippy::too_many_lines)] // one loop over the segments between kills
    pub(super) async fn run(
        &self,
        trial: &mut Trial,
        flow: FlowKind,
        kills: &[Duration],
        change: Option<&SnapshotId>,
        tally: &mut Tally,
    ) -> Result<FlowRun, HarnessError> {
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

pub(super) enum Segment {
    Converged,
    /// The active daemon (this host's) is due for its kill.
    KillDue(usize),
    /// This host's daemon exited on its own, with this code.
    Died(usize, i32),
    TimedOut,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A stand-in daemon that, like the real one opening a slow store, takes a while before it
    /// handles `SIGTERM`, then logs the start line and exits 0 on `SIGTERM`.
    fn slow_starter(log: &Path) -> Daemon {
        let script = format!(
            "sleep 0.4; trap 'exit 0' TERM; echo '{STARTED}' >> '{}'; while :; do sleep 0.05; done",
            log.display()
        );
        std::fs::write(log, "an earlier start's line: mirrorctl daemon started\n").unwrap();
        let log_from = std::fs::metadata(log).unwrap().len();
        let child = Command::new("sh").args(["-c", &script]).spawn().unwrap();
        Daemon { child, log: log.to_path_buf(), log_from }
    }

    #[tokio::test]
    async fn sigterm_waits_until_this_start_of_the_daemon_handles_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = slow_starter(&dir.path().join("daemon.log"));
        // Signalled at once, the stand-in would die of the signal (exit -1); the start line of an
        // earlier start in the same log does not count.
        assert_eq!(d.terminate(Duration::from_secs(10)).await, Some(0));
    }
}
