//! The executor: runs planned steps against the ports, intent first.
//!
//! Why this module exists: this is the only place that changes the world, so the safety rules
//! live here once: an fsync'd intent before every mutating call and a result after it; derived
//! `ClientTokens` (the generation comes from the journal, so a burned token stays burned); error
//! classes narrowed per operation; retries with `backon` schedules (jitter, per-step budgets),
//! throttling retried without limit; progress events for the terminal and the daemon.
//!
//! Idempotency contract: every step may be run twice, or after an interrupted first run, because
//! the planner only emits a step whose "already done?" check failed on fresh observation, and the
//! calls themselves are idempotent (tokens, tags, "already attached/detached" treated as done).

pub mod crash;
pub mod progress;

use std::sync::Arc;

use tokio::sync::Mutex;

use crate::ids::{ClusterName, DeviceName, InstanceId, ServerName, VolumeId};
use crate::journal::writer::Journal;
use crate::journal::{Record, client_token};
use crate::plan::{Action, Condition, Step};
use crate::policy::{budget_exhausted, condition_for, narrow};
use crate::ports::cloud::Tags;
use crate::ports::cluster::Left;
use crate::ports::node::Disk;
use crate::ports::{ErrorClass, PortError, PortResult, Ports, store::StoreError};

pub use crate::retry::{self, RetryPolicy};
pub use crash::{CrashPoint, CrashSwitch};
pub use progress::{Event, EventKind, Progress};

/// What a step's own answer showed of the world as the step left it: an observation like a read,
/// made after the change, which the next pass can use instead of reading it again. Not journaled
/// (after a restart the first pass looks at everything).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// A server's disks, listed by the disk command after its change.
    Disks {
        /// The server.
        server: ServerName,
        /// Its disks.
        disks: Vec<Disk>,
    },
    /// The cluster a CLUSTERPRO operation left, read by the same port call once it finished.
    Cluster(Left),
    /// A volume `AttachVolume` began attaching: EC2's answer to it is that attachment, in state
    /// `attaching` (EC2 API Reference, `AttachVolume` response: `volumeId`, `instanceId`, `device`,
    /// `status`; the port keeps only its success).
    Attaching {
        /// The volume.
        volume: VolumeId,
        /// The instance.
        instance: InstanceId,
        /// The device.
        device: DeviceName,
    },
    /// The tags `CreateTags` set: its success means the resource carries them (EC2 API Reference,
    /// `CreateTags`: "adds or overwrites only the specified tags"; the answer is `true`, nothing
    /// else).
    Tags {
        /// The resource id.
        resource: String,
        /// The tags it now carries (besides any others it had).
        tags: Tags,
    },
}

/// A call's answer: a detail worth journaling (the id created), and what it showed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Answer {
    detail: Option<String>,
    seen: Option<Seen>,
}

/// How a step ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StepResult {
    /// Done (or found already done).
    Done {
        /// E.g. the id of what was created.
        detail: Option<String>,
        /// What the step's answer showed of the world it left (`None`: nothing, or already done).
        seen: Option<Seen>,
    },
    /// Failed after its retry budget, or with an error a human must look at.
    Failed {
        /// The last error's class.
        class: ErrorClass,
        /// What to tell the operator.
        condition: Condition,
    },
}

/// Why execution stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum ExecError {
    /// The journal could not be written, or the lease is lost: nothing may proceed without them.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A test's crash switch fired (the process "died" here).
    #[error("simulated crash at {0}")]
    Crashed(String),
}

/// Executes steps for one cluster.
#[derive(Clone)]
pub struct Executor {
    /// Cluster (for tokens and events).
    pub cluster: ClusterName,
    /// The world.
    pub ports: Ports,
    /// The journal.
    pub journal: Arc<Mutex<Journal>>,
    /// Retry schedules and budgets.
    pub policy: RetryPolicy,
    /// Progress sink.
    pub progress: Progress,
    /// Test hook: crash at a chosen mutating step.
    pub crash: Option<Arc<CrashSwitch>>,
}

impl Executor {
    async fn append(&self, rec: Record) -> Result<(), ExecError> {
        self.journal.lock().await.append(rec).await?;
        Ok(())
    }

    /// Whether this process may still act on the cluster: asked right before every mutating
    /// call and every retry of one (EC2, CLUSTERPRO and the nodes cannot check a fencing token).
    async fn check_lease(&self) -> Result<(), ExecError> {
        Ok(self.journal.lock().await.check_lease()?)
    }

    /// Runs independent steps concurrently. A crash (test) or journal failure aborts all of them
    /// at once, as a killed process would.
    pub async fn run_all(
        &self,
        steps: &[Step],
        subject: Option<&crate::ids::ServerName>,
    ) -> Result<Vec<StepResult>, ExecError> {
        let futs = steps.iter().map(|s| self.run(s, subject));
        futures::future::try_join_all(futs).await
    }

    /// Runs one step: intent, call with retries, result.
    pub async fn run(&self, step: &Step, subject: Option<&crate::ids::ServerName>) -> Result<StepResult, ExecError> {
        let now = self.ports.clock.now();
        let (started, prior) = {
            let j = self.journal.lock().await;
            let v = j.view();
            (v.op(&step.op).is_some_and(|o| o.started.is_some()), v.step(&step.op, &step.id))
        };
        if !started && step.op != crate::plan::OpId::Retention {
            self.append(Record::OpStarted { op: step.op.clone(), at: now, subject: subject.cloned() }).await?;
        }
        match &step.action {
            Action::MarkCompleted => {
                self.append(Record::OpCompleted { op: step.op.clone(), at: now }).await?;
                self.progress.emit(&self.ports, &self.cluster, EventKind::Completed { op: step.op.clone() });
                return Ok(StepResult::Done { detail: None, seen: None });
            }
            Action::MarkAbandoned { by } => {
                self.append(Record::OpAbandoned { op: step.op.clone(), by: by.clone(), at: now }).await?;
                return Ok(StepResult::Done { detail: None, seen: None });
            }
            _ => {}
        }
        if let Some(condition) = budget_exhausted(step, &prior, self.policy.max_attempts_total) {
            return Ok(StepResult::Failed { class: ErrorClass::NeedsHuman, condition });
        }
        if let Some(c) = &self.crash {
            c.check(&step.id, CrashPoint::BeforeIntent)?;
        }

        let mut action = step.action.clone();
        let mut token = None;
        if let Action::CreateVolume { request, .. } = &mut action {
            let t = client_token(&self.cluster, &step.id, prior.generation);
            request.client_token.clone_from(&t);
            token = Some(t);
        }
        let seq = {
            let mut j = self.journal.lock().await;
            let seq = j.next_seq();
            j.append(Record::Intent {
                seq,
                op: step.op.clone(),
                step: step.id.clone(),
                attempt: prior.attempts + 1,
                token,
                started: now,
                action: action.clone(),
            })
            .await?;
            seq
        };
        self.progress.emit(
            &self.ports,
            &self.cluster,
            EventKind::StepStarted { step: step.id.clone(), what: action.describe(), api: action.api() },
        );

        // The intent write was fenced at the store; the lease is asked again right before the call.
        let outcome = self.call_with_retries(&action).await?;
        if let Some(c) = &self.crash {
            c.check(&step.id, CrashPoint::AfterCall)?;
        }
        let finished = self.ports.clock.now();
        let elapsed = finished.duration_since(now);
        let result = match outcome {
            Ok(Answer { detail, seen }) => {
                self.append(result_record(seq, step, Ok(detail.clone()), finished)).await?;
                self.progress.emit(
                    &self.ports,
                    &self.cluster,
                    EventKind::StepDone { step: step.id.clone(), detail: detail.clone(), elapsed },
                );
                StepResult::Done { detail, seen }
            }
            Err(e) => {
                // A CreateVolume that failed for good leaves its token unusable for hours (EC2
                // replays the failure): the next attempt, after the operator fixed the cause,
                // derives a new one. Not on a mismatch: that token *did* create a volume.
                if matches!(step.action, Action::CreateVolume { .. })
                    && e.class == ErrorClass::NeedsHuman
                    && e.code != "IdempotentParameterMismatch"
                {
                    self.append(Record::TokenBurned { step: step.id.clone(), generation: prior.generation + 1 })
                        .await?;
                }
                self.append(result_record(seq, step, Err(e.clone()), finished)).await?;
                self.progress.emit(
                    &self.ports,
                    &self.cluster,
                    EventKind::StepFailed { step: step.id.clone(), error: e.to_string() },
                );
                StepResult::Failed { class: e.class, condition: condition_for(step, &e) }
            }
        };
        Ok(result)
    }

    /// The call, retried per its error class; the outer `Err` is a lost lease (checked before
    /// every attempt), the inner one the call's last error.
    async fn call_with_retries(&self, action: &Action) -> Result<PortResult<Answer>, ExecError> {
        let mut retries = self.policy.retries();
        loop {
            self.check_lease().await?;
            let err = match call(&self.ports, action).await {
                Ok(d) => return Ok(Ok(d)),
                Err(e) => narrow(action, e),
            };
            if err.class == ErrorClass::AlreadyDone {
                return Ok(Ok(Answer { detail: Some(format!("already done ({})", err.code)), seen: None }));
            }
            let Some(delay) = retries.after(err.class) else { return Ok(Err(err)) };
            self.progress.emit(
                &self.ports,
                &self.cluster,
                EventKind::Retrying { api: action.api(), error: err.to_string(), delay },
            );
            self.ports.clock.sleep(delay).await;
        }
    }
}

/// The journal record of a step's outcome.
fn result_record(
    seq: u64,
    step: &Step,
    outcome: Result<Option<String>, PortError>,
    finished: jiff::Timestamp,
) -> Record {
    let (ok, detail, error) = match outcome {
        Ok(d) => (true, d, None),
        Err(e) => (false, None, Some(e)),
    };
    Record::Result { seq, op: step.op.clone(), step: step.id.clone(), ok, detail, error, finished }
}

/// The outcome of a preflight: the checks as the journal's detail when all passed; otherwise
/// `PreflightFailed` (needs a human) naming each failed check, its server, what was found and
/// what to do.
pub fn preflight_verdict(checks: &[crate::ports::cluster::Check]) -> PortResult<Option<String>> {
    let failed: Vec<String> = checks.iter().filter(|c| !c.ok).map(ToString::to_string).collect();
    if failed.is_empty() {
        let all: Vec<String> = checks.iter().map(ToString::to_string).collect();
        return Ok(Some(format!("{} checks passed: {}", checks.len(), all.join("; "))));
    }
    Err(PortError::new(
        "PreflightFailed",
        format!("{} of {} checks failed: {}", failed.len(), checks.len(), failed.join("; ")),
        ErrorClass::NeedsHuman,
    ))
}

/// The preflight's check that EC2 lets mirrorctl enable and disable Fast Snapshot Restore
/// (`DryRun`). A refusal is a failed check naming the IAM actions; a transport problem is the
/// step's error (retried like any other).
async fn fast_restore_check(
    ports: &Ports,
    target: &crate::plan::FastRestoreTarget,
) -> PortResult<crate::ports::cluster::Check> {
    use crate::ports::cluster::Check;
    const NAME: &str = "EC2 permission for Fast Snapshot Restore";
    match ports.cloud.fast_restore_permitted(&target.snapshot, &target.zones).await {
        Ok(()) => Ok(Check::pass(NAME, None, format!("Enable/DisableFastSnapshotRestores allowed for {target}"))),
        Err(e) if e.class == ErrorClass::Retryable || e.class == ErrorClass::Throttled => Err(e),
        Err(e) => Ok(Check::fail(
            NAME,
            None,
            format!("{target}: {} ({})", e.code, e.message),
            "grant ec2:EnableFastSnapshotRestores, ec2:DisableFastSnapshotRestores and \
             ec2:DescribeFastSnapshotRestores to mirrorctl's role (deploy/iam-policy.json), or set \
             mirror.volume.fast_restore = false",
        )),
    }
}

/// `zone=state` pairs of an FSR answer, for the journal.
fn fsr_states(list: &[crate::ports::cloud::FastRestore]) -> String {
    list.iter().map(|f| format!("{}={}", f.zone, f.state.as_str())).collect::<Vec<_>>().join(" ")
}

/// One call on the right port. Returns a detail worth journaling (the id created), and what the
/// answer showed of the world (a disk command's disk list, the cluster a CLUSTERPRO operation left,
/// the tags set).
async fn call(ports: &Ports, action: &Action) -> PortResult<Answer> {
    let disks = |server: &ServerName, disks: Vec<Disk>| Answer {
        detail: None,
        seen: Some(Seen::Disks { server: server.clone(), disks }),
    };
    let left = |left: Left| Answer { detail: None, seen: Some(Seen::Cluster(left)) };
    let detail = match action {
        Action::StopGroup { group } => return ports.cluster.stop_group(group).await.map(left),
        Action::StartGroup { group, server } => return ports.cluster.start_group(group, server).await.map(left),
        Action::MoveGroup { group, target } => return ports.cluster.move_group(group, target).await.map(left),
        Action::StopResource { resource, .. } => return ports.cluster.stop_resource(resource).await.map(left),
        Action::StartResource { resource, server } => {
            return ports.cluster.start_resource(resource, server).await.map(left);
        }
        Action::ShutdownServer { server } => return ports.cluster.shutdown_server(server).await.map(left),
        Action::LeaveThenStart { server, start } => {
            return ports.cluster.leave_then_start(server, start).await.map(left);
        }
        Action::Vendor { server, call } => ports.cluster.vendor(server, call).await.map(|()| None),
        Action::ApplyConfig { changes } => return ports.cluster.apply_config(changes).await.map(left),
        Action::Preflight { request, fast_restore } => {
            let mut checks = ports.cluster.preflight(request).await?;
            if let Some(target) = fast_restore {
                checks.push(fast_restore_check(ports, target).await?);
            }
            preflight_verdict(&checks)
        }
        Action::EnableFastRestore { target } => {
            match ports.cloud.enable_fast_snapshot_restores(&target.snapshot, &target.zones).await {
                Ok(list) => Ok(Some(fsr_states(&list))),
                // A quota or credit refusal: the restore goes on without it (see
                // `plan::fast_restore`); the journal keeps why.
                Err(e) if crate::plan::fast_restore::is_refusal(&e.code) => {
                    Ok(Some(format!("{}{}: {}", crate::plan::fast_restore::REFUSED, e.code, e.message)))
                }
                Err(e) => Err(e),
            }
        }
        Action::DisableFastRestore { target } => ports
            .cloud
            .disable_fast_snapshot_restores(&target.snapshot, &target.zones)
            .await
            .map(|list| Some(fsr_states(&list))),
        Action::CreateVolume { request, .. } => {
            ports.cloud.create_volume(request).await.map(|v| Some(v.id.to_string()))
        }
        Action::AttachVolume { volume, instance, device, .. } => {
            return ports.cloud.attach_volume(volume, instance, device).await.map(|()| Answer {
                detail: None,
                seen: Some(Seen::Attaching {
                    volume: volume.clone(),
                    instance: instance.clone(),
                    device: device.clone(),
                }),
            });
        }
        Action::DetachVolume { volume, instance, .. } => {
            ports.cloud.detach_volume(volume, instance).await.map(|()| None)
        }
        Action::CreateSnapshot { request, .. } => {
            ports.cloud.create_snapshot(request).await.map(|s| Some(s.id.to_string()))
        }
        Action::CreateSnapshotSet { request, .. } => ports.cloud.create_snapshot_set(request).await.map(|set| {
            let ids: Vec<String> = set.iter().map(|s| s.id.to_string()).collect();
            Some(ids.join(","))
        }),
        Action::DeleteSnapshot { snapshot } => ports.cloud.delete_snapshot(snapshot).await.map(|()| None),
        Action::CopySnapshot { region, request } => {
            ports.cloud.in_region(region)?.copy_snapshot(request).await.map(|id| Some(id.to_string()))
        }
        Action::DeleteCopy { region, snapshot } => {
            ports.cloud.in_region(region)?.delete_snapshot(snapshot).await.map(|()| None)
        }
        Action::StartInstance { instance, .. } => ports.cloud.start_instance(instance).await.map(|()| None),
        Action::Tag { resource, tags } => {
            return ports.cloud.create_tags(resource, tags).await.map(|()| Answer {
                detail: None,
                seen: Some(Seen::Tags { resource: resource.clone(), tags: tags.clone() }),
            });
        }
        Action::DiskOffline { server, volume } => {
            return ports.node.set_offline(server, volume).await.map(|d| disks(server, d));
        }
        Action::DiskOnline { server, volume } => {
            return ports.node.set_online(server, volume).await.map(|d| disks(server, d));
        }
        Action::SetLetter { server, volume, partition, letter } => {
            return ports.node.set_letter(server, volume, *partition, *letter).await.map(|d| disks(server, d));
        }
        Action::MarkCompleted | Action::MarkAbandoned { .. } => Ok(None),
    };
    detail.map(|detail| Answer { detail, seen: None })
}
