//! Status documents: one JSON file per cluster (`<state>/status/<cluster>.json`), rewritten after
//! every pass, read by `mirrorctl status`.
//!
//! Why this module exists: an operator at 3 a.m. needs one place that says what mirrorctl is
//! doing to a cluster, what it did (per step, with times), why it stopped, and which volumes and
//! snapshots are new, replaced or abandoned. Writes are atomic (temp file → fsync → rename →
//! fsync of the directory) so a reader never sees half a document, even after a crash.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::execute::progress::span;
use crate::ids::ClusterName;
use crate::journal::Record;
use crate::observe::Observed;
use crate::plan::{Condition, Outcome, Plan};
use crate::ports::cloud::tag;
use crate::ports::cluster::MirrorColor;
use crate::spec::Spec;

/// Where a cluster stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Nothing to do.
    Converged,
    /// Steps are running.
    Progressing,
    /// Waiting for something in progress.
    Waiting,
    /// Stopped until a human acts.
    Blocked,
    /// The last pass failed (observation, journal).
    Error,
}

impl Phase {
    /// The phase as written in the JSON document (`converged`, `progressing`, …), for text output.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Converged => "converged",
            Phase::Progressing => "progressing",
            Phase::Waiting => "waiting",
            Phase::Blocked => "blocked",
            Phase::Error => "error",
        }
    }
}

/// One step as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StepHistory {
    /// Step id.
    pub step: String,
    /// What it did.
    pub what: String,
    /// Attempt.
    pub attempt: u32,
    /// Started.
    pub started: Timestamp,
    /// Finished (none: interrupted or running).
    pub finished: Option<Timestamp>,
    /// How it ended.
    pub outcome: StepOutcome,
    /// What it reported (the id it created, the preflight's checks), when it succeeded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The error code (`IncorrectState`, `VolumeInUse`, …), when it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<String>,
    /// How long it took, started → finished (model time on the lab world), in seconds to a tenth.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<f64>,
}

/// How a step ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StepOutcome {
    /// Done (or found already done).
    Ok,
    /// Failed (see `error_code`).
    Failed,
    /// Its intent has no result: the process stopped during the call.
    Interrupted,
}

impl StepOutcome {
    /// The JSON word.
    pub fn as_str(self) -> &'static str {
        match self {
            StepOutcome::Ok => "ok",
            StepOutcome::Failed => "failed",
            StepOutcome::Interrupted => "interrupted",
        }
    }
}

/// Where an operation stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpPhase {
    /// Under way.
    Started,
    /// Completed.
    Completed,
    /// Replaced by another request before it completed.
    Abandoned,
}

/// One operation in the status document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpState {
    /// Where it stands.
    pub state: OpPhase,
    /// When it reached that state.
    pub at: Timestamp,
    /// When it started.
    pub started: Option<Timestamp>,
    /// The operation that replaced it (abandoned only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub abandoned_for: Option<String>,
    /// The CLUSTERPRO procedure its preflight proved (`vendor`, `reconfigure`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub procedure: Option<String>,
}

impl std::fmt::Display for OpState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.state {
            OpPhase::Started => write!(f, "started {}", self.at)?,
            OpPhase::Completed => write!(f, "completed {}", self.at)?,
            OpPhase::Abandoned => {
                write!(f, "abandoned {} for {}", self.at, self.abandoned_for.as_deref().unwrap_or("another request"))?;
            }
        }
        if let Some(p) = &self.procedure {
            write!(f, " · {p} procedure")?;
        }
        Ok(())
    }
}

/// A volume a restore made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewVolume {
    /// The server it is for.
    pub server: Option<String>,
    /// The request that made it.
    pub request: Option<String>,
    /// EBS has loaded it from the snapshot; `null` until a full look asked EC2.
    pub initialized: Option<bool>,
    /// Percent loaded, when EC2 reported it.
    pub initialization_pct: Option<u8>,
    /// EC2's estimate of the seconds of loading left.
    pub initialization_remaining_s: Option<u64>,
}

/// A backup snapshot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSnapshot {
    /// The backup's name (`mirrorctl:request` tag).
    pub name: Option<String>,
    /// EC2's state.
    pub state: crate::ports::cloud::SnapshotState,
    /// Percent uploaded.
    pub progress: u8,
    /// Its point in time.
    pub time: Timestamp,
}

/// Where the operation under way stands: written with every pass, so a reader mid-operation sees
/// the steps in flight or the wait, how far along it is, and when it should end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpProgress {
    /// The operation (`restore/<request>`, `backup/<name>`).
    pub operation: String,
    /// When its first step began (from the journal); none before that.
    pub started: Option<Timestamp>,
    /// Seconds since `started`, at `StatusDoc::updated`.
    pub elapsed_s: Option<f64>,
    /// Steps of the operation done so far (distinct steps with a successful result).
    pub steps_done: usize,
    /// How many steps the operation takes in all, when a projection is known (`apply` and the
    /// daemon on the lab world project the whole sequence); `null` otherwise.
    pub steps_total: Option<usize>,
    /// The steps this pass runs now (their intents are written as each starts).
    pub current: Vec<CurrentStep>,
    /// What the operation waits for now, if it waits.
    pub waiting: Option<WaitProgress>,
    /// When the operation should end, if it can be estimated.
    pub eta: Option<Eta>,
}

/// A step being run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentStep {
    /// Step id.
    pub step: String,
    /// What it does.
    pub what: String,
}

/// A wait under way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WaitProgress {
    /// What is awaited, in words.
    pub reason: String,
    /// When this wait began.
    pub since: Timestamp,
    /// Seconds waited so far.
    pub elapsed_s: f64,
    /// The expected remainder at the latency model's medians: an estimate.
    pub expected_remaining_s: f64,
}

/// An estimated end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Eta {
    /// The estimated end.
    pub at: Timestamp,
    /// Seconds from `StatusDoc::updated` to `at` (0 when overdue).
    pub remaining_s: f64,
    /// Always `true`: the figure comes from a model, not a measurement.
    pub estimate: bool,
    /// What the estimate rests on.
    pub basis: String,
}

/// What the caller of a reconcile expects of an operation, from a projection of it.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    /// The operation.
    pub op: String,
    /// Its steps in all (done before the projection plus projected).
    pub steps_total: usize,
    /// Its projected end.
    pub end: Timestamp,
    /// What the figures rest on, in words.
    pub basis: String,
}

/// The wait a reconcile loop is in: what, and since when.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitState {
    /// What, in words.
    pub reason: String,
    /// Since when.
    pub since: Timestamp,
    /// The expected remainder at the time of the pass.
    pub expect: std::time::Duration,
}

fn secs(d: jiff::SignedDuration) -> f64 {
    (d.as_secs_f64().max(0.0) * 10.0).round() / 10.0
}

/// "Is my restore done and safe?" in one place: written after a restore completed, from the
/// observation of the pass (CLUSTERPRO, EC2) and the journal (the downtime).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreSummary {
    /// The restore (`restore/<request>`).
    pub operation: String,
    /// When it completed.
    pub completed: Timestamp,
    /// The failover group.
    pub group: String,
    /// Its state now (`online`, `offline`, `online-pending`, …).
    pub group_state: Option<String>,
    /// The server running it now.
    pub running_on: Option<String>,
    /// Mirror colour of each server's side now (`GREEN`, `RED`, `YELLOW`, `GRAY`).
    pub mirror: BTreeMap<String, MirrorColor>,
    /// The volume at the mirror device of each server now.
    pub attached: Vec<AttachedNow>,
    /// The volumes the restore replaced: kept, detached, tagged `mirrorctl:superseded-by`.
    pub kept: Vec<KeptVolume>,
    /// Business downtime, measured: the group's stop (the `stop-group` step began) to its start
    /// (the `start-group` step ended); `null` when the journal does not hold both.
    pub downtime: Option<Downtime>,
    /// Seconds until EBS has loaded every restored volume from the snapshot, by EC2's estimate:
    /// 0 when all are loaded, `null` when EC2 did not say (before the next full look).
    pub loading_remaining_s: Option<u64>,
    /// Group online, both sides of the mirror GREEN, and each server on a volume of this restore.
    pub safe: bool,
}

/// The volume at a server's mirror device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedNow {
    /// Server.
    pub server: String,
    /// Volume id.
    pub volume: String,
    /// Device.
    pub device: String,
    /// Made by this restore (tagged with its request).
    pub restored: bool,
    /// Percent EBS has loaded from the snapshot, when EC2 reported it.
    pub loaded_pct: Option<u8>,
    /// Loading finished.
    pub loaded: Option<bool>,
}

/// A replaced volume kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeptVolume {
    /// The old volume.
    pub volume: String,
    /// The volume that replaced it.
    pub superseded_by: String,
}

/// A measured business downtime.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Downtime {
    /// The group was stopped (the step began).
    pub from: Timestamp,
    /// It was started again (the step ended).
    pub to: Timestamp,
    /// Seconds between.
    pub seconds: f64,
}

/// A CLUSTERPRO object state as a JSON enum word.
fn state_word(s: crate::ports::cluster::ObjectState) -> &'static str {
    use crate::ports::cluster::ObjectState as S;
    match s {
        S::Online => "online",
        S::Offline => "offline",
        S::OnlinePending => "online-pending",
        S::OfflinePending => "offline-pending",
        S::OnlineFailure => "online-failure",
        S::OfflineFailure => "offline-failure",
        S::Unknown => "unknown",
    }
}

/// The summary of the last restore the journal shows completed (backups after it do not hide it:
/// the group, colours, volumes and loading are read now).
pub fn restore_summary(spec: &Spec, obs: &Observed, records: &[Record]) -> Option<RestoreSummary> {
    let (op, request, completed) = records.iter().rev().find_map(|r| match r {
        Record::OpCompleted { op: op @ crate::plan::OpId::Restore(request), at } => Some((op, request, *at)),
        _ => None,
    })?;
    let op_s = op.to_string();
    // `restore/r1/start-group@server1` is of kind `start-group`.
    let kind = |step: &crate::plan::StepId| -> String {
        step.0.strip_prefix(&format!("{op_s}/")).unwrap_or_default().split('@').next().unwrap_or_default().to_owned()
    };
    let stop_at = records.iter().find_map(|r| match r {
        Record::Intent { op: o, step, started, .. } if o == op && kind(step) == "stop-group" => Some(*started),
        _ => None,
    });
    let start_done = records.iter().rev().find_map(|r| match r {
        Record::Result { op: o, step, ok: true, finished, .. } if o == op && kind(step) == "start-group" => {
            Some(*finished)
        }
        _ => None,
    });
    let downtime = match (stop_at, start_done) {
        (Some(from), Some(to)) => Some(Downtime { from, to, seconds: secs(to.duration_since(from)) }),
        _ => None,
    };
    let placement = obs.cluster.groups.get(&spec.mirror.group);
    let mut attached = Vec::new();
    let mut remaining: Option<u64> = Some(0);
    for s in &spec.cluster.servers {
        let Some((v, _)) = crate::plan::restore::at_device(spec, obs, s) else { continue };
        let restored = v.tags.get(tag::REQUEST).map(String::as_str) == Some(request.as_str());
        let init = obs.initialization.get(&v.id);
        if restored {
            remaining = match (remaining, init) {
                (Some(r), Some(i)) if i.complete => Some(r),
                (Some(r), Some(i)) => i.remaining_s.map(|x| r.max(x)),
                _ => None,
            };
        }
        attached.push(AttachedNow {
            server: s.name.to_string(),
            volume: v.id.to_string(),
            device: spec.mirror.device.to_string(),
            restored,
            loaded_pct: init.and_then(|i| if i.complete { Some(100) } else { i.progress }),
            loaded: init.map(|i| i.complete),
        });
    }
    let kept = obs
        .volumes
        .iter()
        .filter_map(|v| {
            let by = v.tags.get(tag::SUPERSEDED_BY)?;
            Some(KeptVolume { volume: v.id.to_string(), superseded_by: by.clone() })
        })
        .collect();
    let mirror: BTreeMap<String, MirrorColor> =
        obs.mirror.as_ref().map(|m| m.colors.iter().map(|(k, v)| (k.to_string(), *v)).collect()).unwrap_or_default();
    let any_restored = attached.iter().any(|a| a.restored);
    let safe = placement.is_some_and(|p| p.state == crate::ports::cluster::ObjectState::Online)
        && mirror.len() == spec.cluster.servers.len()
        && mirror.values().all(|c| *c == MirrorColor::Green)
        && attached.len() == spec.cluster.servers.len()
        && attached.iter().all(|a| a.restored);
    Some(RestoreSummary {
        operation: op_s,
        completed,
        group: spec.mirror.group.to_string(),
        group_state: placement.map(|p| state_word(p.state).to_owned()),
        running_on: placement.and_then(|p| p.current.as_ref()).map(ToString::to_string),
        mirror,
        attached,
        kept,
        downtime,
        loading_remaining_s: remaining.filter(|_| any_restored),
        safe,
    })
}

impl RestoreSummary {
    /// The human lines (also the daemon's log line, joined).
    pub fn render(&self) -> String {
        let mut s = String::new();
        let verdict = if self.safe { "done and safe" } else { "done, NOT yet safe" };
        let _ = writeln!(s, "  {} {verdict} (completed {}):", self.operation, self.completed);
        let _ = writeln!(
            s,
            "    group:      {} {} on {}",
            self.group,
            self.group_state.as_deref().unwrap_or("state unknown"),
            self.running_on.as_deref().unwrap_or("no server")
        );
        let colours: Vec<String> = self.mirror.iter().map(|(k, c)| format!("{k} {}", colour(*c))).collect();
        let _ = writeln!(
            s,
            "    mirror:     {}",
            if colours.is_empty() { "colours unknown".to_owned() } else { colours.join(", ") }
        );
        for a in &self.attached {
            let loading = match (a.loaded, a.loaded_pct) {
                (Some(true), _) => ", loaded from the snapshot".to_owned(),
                (_, Some(p)) => format!(", loading from the snapshot {p}%"),
                _ => String::new(),
            };
            let what = if a.restored { "restored" } else { "NOT this restore's" };
            let _ = writeln!(s, "    attached:   {} {} at {} ({what}{loading})", a.server, a.volume, a.device);
        }
        for k in &self.kept {
            let _ = writeln!(s, "    kept:       {} (superseded by {}; never deleted)", k.volume, k.superseded_by);
        }
        match &self.downtime {
            Some(d) => {
                let _ = writeln!(
                    s,
                    "    downtime:   {} (group stopped {} → started {}, measured)",
                    span(jiff::SignedDuration::from_secs_f64(d.seconds)),
                    d.from,
                    d.to
                );
            }
            None => {
                let _ = writeln!(s, "    downtime:   unknown (the journal holds no group stop and start)");
            }
        }
        let loading = match self.loading_remaining_s {
            Some(0) => "complete".to_owned(),
            Some(r) => {
                format!("about {} left (EC2's estimate)", span(jiff::SignedDuration::from_secs(r.cast_signed())))
            }
            None => "ETA unknown until EC2 reports it".to_owned(),
        };
        let _ = writeln!(s, "    loading:    {loading}");
        s
    }
}

fn colour(c: MirrorColor) -> &'static str {
    match c {
        MirrorColor::Green => "GREEN",
        MirrorColor::Red => "RED",
        MirrorColor::Yellow => "YELLOW",
        MirrorColor::Gray => "GRAY",
    }
}

/// The progress of the operation `plan` pursues, from the journal `records`, at `now`.
pub(crate) fn op_progress(
    plan: &Plan,
    records: &[Record],
    now: Timestamp,
    wait: Option<&WaitState>,
    expected: &[Expectation],
) -> Option<OpProgress> {
    let op = plan.op.as_ref()?.to_string();
    let mut started = None;
    let mut done = std::collections::BTreeSet::new();
    for r in records {
        match r {
            Record::Intent { op: o, started: at, .. } if o.to_string() == op => {
                started = started.or(Some(*at));
            }
            Record::Result { op: o, step, ok: true, .. } if o.to_string() == op => {
                done.insert(step.to_string());
            }
            _ => {}
        }
    }
    let current =
        plan.steps().iter().map(|s| CurrentStep { step: s.id.to_string(), what: s.action.describe() }).collect();
    let waiting = match (&plan.outcome, wait) {
        (Outcome::Wait(w), Some(ws)) if ws.reason == w.reason => Some(WaitProgress {
            reason: ws.reason.clone(),
            since: ws.since,
            elapsed_s: secs(now.duration_since(ws.since)),
            expected_remaining_s: (w.expect.as_secs_f64() * 10.0).round() / 10.0,
        }),
        (Outcome::Wait(w), _) => Some(WaitProgress {
            reason: w.reason.clone(),
            since: now,
            elapsed_s: 0.0,
            expected_remaining_s: (w.expect.as_secs_f64() * 10.0).round() / 10.0,
        }),
        _ => None,
    };
    let exp = expected.iter().find(|e| e.op == op);
    let eta = exp.map(|e| Eta {
        at: e.end,
        remaining_s: secs(e.end.duration_since(now)),
        estimate: true,
        basis: e.basis.clone(),
    });
    Some(OpProgress {
        operation: op,
        started,
        elapsed_s: started.map(|t| secs(now.duration_since(t))),
        steps_done: done.len(),
        steps_total: exp.map(|e| e.steps_total.max(done.len())),
        current,
        waiting,
        eta,
    })
}

/// Resources mirrorctl made or replaced.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Restored volumes by id: server, request, and how far EBS has loaded each from the snapshot.
    pub new_volumes: BTreeMap<String, NewVolume>,
    /// Replaced volumes: old id → the id that replaced it (kept, never deleted).
    pub replaced_volumes: BTreeMap<String, String>,
    /// Volumes of abandoned requests: id → the request that replaced it.
    pub abandoned_volumes: BTreeMap<String, String>,
    /// Backup snapshots by id.
    pub snapshots: BTreeMap<String, BackupSnapshot>,
    /// Restored volumes: id → how far EBS has loaded it, when it should be done, and whether
    /// it was fast-restored (structured, for `-o json`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub initialization: BTreeMap<String, Loading>,
    /// Fast Snapshot Restore of the restore snapshot: zone → state (`optimizing`, …), while a
    /// restore with `fast_restore` is wanted.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fast_restore: BTreeMap<String, String>,
}

/// How far EBS has loaded one restored volume from its snapshot (`DescribeVolumeStatus`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loading {
    /// The server it was made for.
    pub server: String,
    /// Created by Fast Snapshot Restore (fully initialized at creation).
    pub fast_restored: bool,
    /// Loading has finished.
    pub complete: bool,
    /// Percent loaded, when EC2 said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// When loading should be complete (EC2's estimate of the time left, from the observation
    /// time), while it is not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eta: Option<Timestamp>,
}

/// The status document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusDoc {
    /// Cluster.
    pub cluster: ClusterName,
    /// Desired-state file.
    pub source: PathBuf,
    /// Phase.
    pub phase: Phase,
    /// Operation being pursued.
    pub operation: Option<String>,
    /// Conditions (why blocked, what to do).
    pub conditions: Vec<Condition>,
    /// What it waits for.
    pub waiting: Option<String>,
    /// Where the operation under way stands (steps done, in flight, the wait, the end expected).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<OpProgress>,
    /// After the last restore completed: is it done and safe (one summary).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_summary: Option<RestoreSummary>,
    /// Last error.
    pub last_error: Option<String>,
    /// Planner notes (decisions and why).
    pub notes: Vec<String>,
    /// Operations by name (`backup/<name>`, `restore/<request>`).
    pub operations: BTreeMap<String, OpState>,
    /// The most recent steps, oldest first.
    pub history: Vec<StepHistory>,
    /// Volumes and snapshots.
    pub inventory: Inventory,
    /// EC2 calls made by this process so far, per API.
    #[serde(default)]
    pub api_calls: BTreeMap<String, u64>,
    /// When written.
    pub updated: Timestamp,
    /// The newest version of the desired-state file is invalid (rendered with `file:line:column`);
    /// the daemon keeps working toward the last valid version. Absent in documents from before the
    /// daemon existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec_error: Option<String>,
    /// Why the daemon no longer reconciles this cluster (its desired-state file was removed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// An operation was left part-way and no process is working on it: written by an `apply`
    /// stopped by a signal, and set by `mirrorctl status` when the document says work is under
    /// way but nobody holds the cluster's writer lock. Says how to resume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interrupted: Option<String>,
}

/// How many steps of history a document keeps.
pub(crate) const HISTORY_LEN: usize = 60;

impl StatusDoc {
    /// Builds the document after a pass.
    pub fn build(
        spec: &Spec,
        plan: Option<&Plan>,
        obs: Option<&Observed>,
        records: &[Record],
        last_error: Option<String>,
        now: Timestamp,
    ) -> StatusDoc {
        let (phase, conditions, waiting) = match (plan.map(|p| &p.outcome), &last_error) {
            (_, Some(_)) => (Phase::Error, Vec::new(), None),
            (Some(Outcome::Converged) | None, None) => (Phase::Converged, Vec::new(), None),
            (Some(Outcome::Steps { .. }), None) => (Phase::Progressing, Vec::new(), None),
            (Some(Outcome::Wait(w)), None) => (Phase::Waiting, Vec::new(), Some(w.reason.clone())),
            (Some(Outcome::Blocked(c)), None) => (Phase::Blocked, vec![c.clone()], None),
        };
        StatusDoc {
            cluster: spec.cluster.name.clone(),
            source: spec.source.clone(),
            phase,
            operation: plan.and_then(|p| p.op.as_ref()).map(ToString::to_string),
            conditions,
            waiting,
            progress: None,
            restore_summary: obs.and_then(|o| restore_summary(spec, o, records)),
            last_error,
            notes: plan.map(|p| p.notes.clone()).unwrap_or_default(),
            operations: operations(records),
            history: history(records),
            inventory: obs.map(|o| inventory(spec, o)).unwrap_or_default(),
            api_calls: BTreeMap::new(),
            updated: now,
            spec_error: None,
            stopped: None,
            interrupted: None,
        }
    }

    /// A document that says nothing yet (phase error until a pass writes one), for a cluster the
    /// reconcile loop has not written.
    pub fn empty(cluster: ClusterName, source: PathBuf, now: Timestamp) -> StatusDoc {
        StatusDoc {
            cluster,
            source,
            phase: Phase::Error,
            operation: None,
            conditions: Vec::new(),
            waiting: None,
            progress: None,
            restore_summary: None,
            last_error: None,
            notes: Vec::new(),
            operations: BTreeMap::new(),
            history: Vec::new(),
            inventory: Inventory::default(),
            api_calls: BTreeMap::new(),
            updated: now,
            spec_error: None,
            stopped: None,
            interrupted: None,
        }
    }

    /// The file of `cluster` under `state_dir`.
    pub fn path_for(state_dir: &Path, cluster: &ClusterName) -> PathBuf {
        state_dir.join("status").join(format!("{cluster}.json"))
    }

    /// Writes atomically and durably ([`crate::durable::replace`]).
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        let mut body = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        body.push(b'\n');
        crate::durable::replace(path, &body).map(drop)
    }

    /// Reads a document.
    pub fn read(path: &Path) -> std::io::Result<StatusDoc> {
        let body = std::fs::read(path)?;
        serde_json::from_slice(&body)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))
    }

    /// The human rendering of `mirrorctl status`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "cluster {} ({})", self.cluster, self.source.display());
        let _ = writeln!(s, "  phase:     {}", self.phase.as_str());
        if let Some(op) = &self.operation {
            let _ = writeln!(s, "  operation: {op}");
        }
        match &self.progress {
            Some(p) => render_progress(&mut s, p),
            None => {
                if let Some(w) = &self.waiting {
                    let _ = writeln!(s, "  waiting:   {w}");
                }
            }
        }
        for c in &self.conditions {
            let _ = writeln!(s, "  BLOCKED:   {} — {}", c.reason, c.message);
            let _ = writeln!(s, "  to do:     {}", c.action);
        }
        if let Some(e) = &self.last_error {
            let _ = writeln!(s, "  error:     {e}");
        }
        if let Some(r) = &self.restore_summary {
            s.push_str(&r.render());
        }
        if let Some(why) = &self.stopped {
            let _ = writeln!(s, "  stopped:   {why}");
        }
        if let Some(why) = &self.interrupted {
            let _ = writeln!(s, "  INTERRUPTED, no writer: {why}");
        }
        if let Some(e) = &self.spec_error {
            let _ = writeln!(s, "  desired state invalid (working toward its last valid version):");
            for line in e.lines() {
                let _ = writeln!(s, "    {line}");
            }
        }
        for n in &self.notes {
            let _ = writeln!(s, "  note:      {n}");
        }
        if !self.operations.is_empty() {
            let _ = writeln!(s, "  operations:");
            for (op, st) in &self.operations {
                let _ = writeln!(s, "    {op:<40} {st}");
            }
        }
        let inv = &self.inventory;
        let new: BTreeMap<String, String> = inv.new_volumes.iter().map(|(k, v)| (k.clone(), v.to_string())).collect();
        let snaps: BTreeMap<String, String> = inv
            .snapshots
            .iter()
            .map(|(k, b)| {
                let state = crate::plan::candidates::state_word(b.state);
                (k.clone(), format!("{} ({state} {}%, taken {})", b.name.as_deref().unwrap_or("?"), b.progress, b.time))
            })
            .collect();
        for (title, map) in [
            ("new volumes", &new),
            ("replaced volumes (kept)", &inv.replaced_volumes),
            ("abandoned volumes (kept)", &inv.abandoned_volumes),
            ("backup snapshots", &snaps),
            ("fast snapshot restore", &inv.fast_restore),
        ] {
            if !map.is_empty() {
                let _ = writeln!(s, "  {title}:");
                for (k, v) in map {
                    let _ = writeln!(s, "    {k}  {v}");
                }
            }
        }
        if !self.history.is_empty() {
            let _ = writeln!(s, "  recent steps:");
            for h in self.history.iter().rev().take(12).collect::<Vec<_>>().into_iter().rev() {
                let took = h.duration_s.map_or_else(String::new, |d| span(jiff::SignedDuration::from_secs_f64(d)));
                let outcome = match (h.outcome, &h.detail, &h.error_code) {
                    (StepOutcome::Ok, Some(d), _) => format!("ok {d}"),
                    (StepOutcome::Failed, _, Some(c)) => format!("failed {c}"),
                    (o, _, _) => o.as_str().to_owned(),
                };
                let _ = writeln!(s, "    {}  {:<44} {:>7}  {:<30} {}", h.started, h.step, took, outcome, h.what);
            }
        }
        if !self.api_calls.is_empty() {
            let calls: Vec<String> =
                self.api_calls.iter().map(|(k, v)| format!("{}={v}", k.trim_start_matches("ec2:"))).collect();
            let _ = writeln!(s, "  EC2 calls: {}", calls.join(" "));
        }
        let _ = writeln!(s, "  updated:   {}", self.updated);
        s
    }
}

/// The progress lines of the human status.
fn render_progress(s: &mut String, p: &OpProgress) {
    let mut line = match p.steps_total {
        Some(total) => format!("{} of {total} steps done", p.steps_done),
        None => format!("{} step(s) done", p.steps_done),
    };
    if let Some(e) = p.elapsed_s {
        let _ = write!(line, " · elapsed {}", span(jiff::SignedDuration::from_secs_f64(e)));
    }
    match &p.eta {
        Some(eta) => {
            let _ = write!(
                line,
                " · ETA {} (about {} more; an estimate: {})",
                eta.at,
                span(jiff::SignedDuration::from_secs_f64(eta.remaining_s)),
                eta.basis
            );
        }
        None => line.push_str(" · no ETA (no projection of the whole operation)"),
    }
    let _ = writeln!(s, "  progress:  {line}");
    for c in &p.current {
        let _ = writeln!(s, "  running:   {} ({})", c.step, c.what);
    }
    if let Some(w) = &p.waiting {
        let _ = writeln!(
            s,
            "  waiting:   {} for {}; expected about {} more (estimate at model medians)",
            w.reason,
            span(jiff::SignedDuration::from_secs_f64(w.elapsed_s)),
            span(jiff::SignedDuration::from_secs_f64(w.expected_remaining_s))
        );
    }
}

/// Each operation's state, with the CLUSTERPRO procedure its preflight proved, so that status
/// says which procedure ran.
pub fn operations(records: &[Record]) -> BTreeMap<String, OpState> {
    let mut ops: BTreeMap<String, OpState> = BTreeMap::new();
    let mut procedures = BTreeMap::new();
    for r in records {
        match r {
            Record::Intent { op, action: crate::plan::Action::Preflight { request, .. }, .. } => {
                procedures.insert(op.to_string(), request.procedure);
            }
            Record::OpStarted { op, at, .. } => {
                ops.insert(
                    op.to_string(),
                    OpState {
                        state: OpPhase::Started,
                        at: *at,
                        started: Some(*at),
                        abandoned_for: None,
                        procedure: None,
                    },
                );
            }
            Record::OpCompleted { op, at } => {
                let e = ops.entry(op.to_string()).or_insert(OpState {
                    state: OpPhase::Completed,
                    at: *at,
                    started: None,
                    abandoned_for: None,
                    procedure: None,
                });
                e.state = OpPhase::Completed;
                e.at = *at;
            }
            Record::OpAbandoned { op, by, at } => {
                let e = ops.entry(op.to_string()).or_insert(OpState {
                    state: OpPhase::Abandoned,
                    at: *at,
                    started: None,
                    abandoned_for: None,
                    procedure: None,
                });
                e.state = OpPhase::Abandoned;
                e.at = *at;
                e.abandoned_for = Some(by.to_string());
            }
            _ => {}
        }
    }
    for (op, state) in &mut ops {
        state.procedure = procedures.get(op).map(|p| p.as_str().to_owned());
    }
    ops
}

/// The most recent steps (at most [`HISTORY_LEN`]) from journal records, oldest first.
pub fn history(records: &[Record]) -> Vec<StepHistory> {
    let mut out: Vec<StepHistory> = Vec::new();
    let mut by_seq: BTreeMap<u64, usize> = BTreeMap::new();
    for r in records {
        match r {
            Record::Intent { seq, step, attempt, started, action, .. } => {
                by_seq.insert(*seq, out.len());
                out.push(StepHistory {
                    step: step.to_string(),
                    what: action.describe(),
                    attempt: *attempt,
                    started: *started,
                    finished: None,
                    outcome: StepOutcome::Interrupted,
                    detail: None,
                    error_code: None,
                    duration_s: None,
                });
            }
            Record::Result { seq, ok, error, finished, detail, .. } => {
                if let Some(&i) = by_seq.get(seq) {
                    out[i].finished = Some(*finished);
                    out[i].duration_s = Some(secs(finished.duration_since(out[i].started)));
                    if *ok {
                        out[i].outcome = StepOutcome::Ok;
                        out[i].detail.clone_from(detail);
                    } else {
                        out[i].outcome = StepOutcome::Failed;
                        out[i].error_code = error.as_ref().map(|e| e.code.clone());
                    }
                }
            }
            _ => {}
        }
    }
    let skip = out.len().saturating_sub(HISTORY_LEN);
    out.into_iter().skip(skip).collect()
}

fn inventory(spec: &Spec, obs: &Observed) -> Inventory {
    let mut inv = Inventory::default();
    for v in &obs.volumes {
        let ours = v.tags.get(tag::CLUSTER).map(String::as_str) == Some(spec.cluster.name.as_str());
        if ours && v.tags.get(tag::ROLE).map(String::as_str) == Some("mirror") {
            let server = v.tags.get(tag::SERVER).map_or("?", String::as_str);
            let init = obs.initialization.get(&v.id);
            let eta = init.filter(|i| !i.complete).and_then(|i| i.remaining_s).and_then(|r| {
                obs.now.checked_add(jiff::SignedDuration::from_secs(i64::try_from(r).unwrap_or(i64::MAX))).ok()
            });
            if init.is_some() || v.fast_restored {
                inv.initialization.insert(
                    v.id.to_string(),
                    Loading {
                        server: server.to_owned(),
                        fast_restored: v.fast_restored,
                        // Created by FSR: "fully initialized at creation" (AWS EBS User Guide).
                        complete: v.fast_restored || init.is_some_and(|i| i.complete),
                        progress: init.and_then(|i| i.progress),
                        eta,
                    },
                );
            }
            let init = obs.initialization.get(&v.id);
            inv.new_volumes.insert(
                v.id.to_string(),
                NewVolume {
                    server: v.tags.get(tag::SERVER).cloned(),
                    request: v.tags.get(tag::REQUEST).cloned(),
                    initialized: init.map(|i| i.complete),
                    initialization_pct: init.and_then(|i| if i.complete { Some(100) } else { i.progress }),
                    initialization_remaining_s: init.filter(|i| !i.complete).and_then(|i| i.remaining_s),
                },
            );
        }
        if let Some(by) = v.tags.get(tag::SUPERSEDED_BY) {
            inv.replaced_volumes.insert(v.id.to_string(), by.clone());
        }
        if let Some(by) = v.tags.get(tag::ABANDONED_BY) {
            inv.abandoned_volumes.insert(v.id.to_string(), by.clone());
        }
    }
    for f in &obs.fast_restores {
        inv.fast_restore.insert(format!("{} in {}", f.snapshot, f.zone), f.state.as_str().to_owned());
    }
    for s in &obs.snapshots {
        if s.tags.get(tag::ROLE).map(String::as_str) == Some("backup")
            && s.tags.get(tag::CLUSTER).map(String::as_str) == Some(spec.cluster.name.as_str())
        {
            inv.snapshots.insert(
                s.id.to_string(),
                BackupSnapshot {
                    name: s.tags.get(tag::REQUEST).cloned(),
                    state: s.state,
                    progress: s.progress,
                    time: s.started,
                },
            );
        }
    }
    inv
}

impl std::fmt::Display for NewVolume {
    /// `server1 for r1, initializing 37%, about 12 min left` / `…, initialized`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} for {}", self.server.as_deref().unwrap_or("?"), self.request.as_deref().unwrap_or("?"))?;
        match self.initialized {
            Some(true) => write!(f, ", initialized"),
            Some(false) => {
                write!(f, ", initializing")?;
                if let Some(p) = self.initialization_pct {
                    write!(f, " {p}%")?;
                }
                if let Some(r) = self.initialization_remaining_s {
                    write!(f, ", about {} min left", r.div_ceil(60))?;
                }
                Ok(())
            }
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A status file as mirrorctl wrote it while condition reasons were plain strings: it loads,
    /// each reason becomes its variant, and it serialises back to the same strings.
    #[test]
    fn an_old_status_file_with_string_reasons_loads_and_keeps_them() {
        let reasons = ["snapshot-not-completed", "step-failed:InvalidVolume.ZoneMismatch", "retry-budget-exhausted"];
        let conditions: Vec<String> =
            reasons.iter().map(|r| format!(r#"    {{"reason": "{r}", "message": "m", "action": "a"}}"#)).collect();
        let old = format!(
            r#"{{
  "cluster": "prod-db",
  "source": "desired-state/prod-db.toml",
  "phase": "blocked",
  "operation": "restore/incident-1",
  "conditions": [
{}
  ],
  "waiting": null,
  "last_error": null,
  "notes": [],
  "operations": {{}},
  "history": [],
  "inventory": {{"new_volumes": {{}}, "replaced_volumes": {{}}, "abandoned_volumes": {{}}, "snapshots": {{}}}},
  "updated": "2026-11-24T02:00:00Z"
}}"#,
            conditions.join(",\n")
        );
        let dir = tempfile::tempdir().expect("a temp dir");
        let path = dir.path().join("prod-db.json");
        std::fs::write(&path, &old).expect("written");
        let doc = StatusDoc::read(&path).expect("an old status file loads");
        let got: Vec<&crate::plan::Reason> = doc.conditions.iter().map(|c| &c.reason).collect();
        assert_eq!(
            got,
            [
                &crate::plan::Reason::SnapshotNotCompleted,
                &crate::plan::Reason::StepFailed("InvalidVolume.ZoneMismatch".to_owned()),
                &crate::plan::Reason::RetryBudgetExhausted
            ]
        );
        let again: serde_json::Value = serde_json::to_value(&doc).expect("serialises");
        let before: serde_json::Value = serde_json::from_str(&old).expect("json");
        assert_eq!(again["conditions"], before["conditions"]);
    }
}
