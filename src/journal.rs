//! The journal: intent and result records, one JSON line each, fsync'd.
//!
//! Why this module exists: mirrorctl must resume exactly where it stopped after a crash and must
//! never do a mutating call twice by accident. Before every mutating call the executor appends an
//! *intent* (`op`, `step`, `attempt`, derived `token`, `started`) and fsyncs it; after the call, a
//! *result*. On restart, an intent without a result is an interrupted step: the planner resolves it
//! by observation (tokens, tags), never by guessing. The journal also keeps the `ClientToken`
//! generation of each step (so a burned token stays burned across restarts) and which operations
//! were started, completed or abandoned.
//!
//! Where the records live is the store's business ([`crate::ports::store`]): [`writer::Journal`] is
//! the records read from it plus the lease every append is fenced with. The local directory store
//! keeps one file per cluster (`<state>/journal/<cluster>.jsonl`, written by [`append_file`], read
//! by [`read_file`]). A torn last line (a crash in the middle of a write) is ignored on load; any
//! other unreadable line is an error, since a journal we cannot read is a journal we cannot trust.
//!
//! One writer per cluster: whoever reconciles a cluster (`apply`, a daemon's worker) first takes
//! the cluster's lease from the store; the local store's lease is [`local::WriterLock`], an exclusive
//! advisory lock (`flock`) on `<state>/journal/<cluster>.lock`, held until the reconcile returns. A second process on the same state directory is refused
//! at once, naming the holder, instead of journaling the same operation twice (two `snapshot@…`
//! intents, two `CreateSnapshot` calls) and racing on the status file. The operating system drops
//! the lock when its holder dies (kill -9 included), so a crash never leaves a cluster locked.
//! Reading (`plan`, `status`) takes no lock.

use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::ids::{ClusterName, ServerName};
use crate::plan::step::{Action, OpId, StepId};
use crate::ports::PortError;

pub mod local;
pub mod writer;

/// One journal line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "record", rename_all = "kebab-case")]
pub enum Record {
    /// An operation started; `subject` is the server it revolves around (a backup's active).
    OpStarted {
        /// Operation.
        op: OpId,
        /// When.
        at: Timestamp,
        /// Active server at the start (backups).
        subject: Option<ServerName>,
    },
    /// About to make a mutating call.
    Intent {
        /// Sequence number of this intent (unique in the file).
        seq: u64,
        /// Operation.
        op: OpId,
        /// Step.
        step: StepId,
        /// Attempt number of this step, from 1.
        attempt: u32,
        /// `ClientToken`, for calls that take one.
        token: Option<String>,
        /// When.
        started: Timestamp,
        /// What (for the audit trail).
        action: Action,
    },
    /// The outcome of the intent `seq`.
    Result {
        /// The intent.
        seq: u64,
        /// Operation.
        op: OpId,
        /// Step.
        step: StepId,
        /// Succeeded (or was already done).
        ok: bool,
        /// Detail, e.g. the id of what was created.
        detail: Option<String>,
        /// The error, when it failed.
        error: Option<PortError>,
        /// When.
        finished: Timestamp,
    },
    /// A step's `ClientToken` can no longer be used; the next attempt derives a new one.
    TokenBurned {
        /// Step.
        step: StepId,
        /// The new generation.
        generation: u32,
    },
    /// The operation is complete.
    OpCompleted {
        /// Operation.
        op: OpId,
        /// When.
        at: Timestamp,
    },
    /// The operation was abandoned for another.
    OpAbandoned {
        /// Operation.
        op: OpId,
        /// The one that replaced it.
        by: OpId,
        /// When.
        at: Timestamp,
    },
}

/// What the journal says about one step.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct StepView {
    /// Intents written.
    pub attempts: u32,
    /// The last intent: (seq, started, token).
    pub last_intent: Option<(u64, Timestamp, Option<String>)>,
    /// What the last intent was about to do (to judge what an interrupted call may still be
    /// doing, e.g. a configuration push that CLUSTERPRO goes on applying after a kill).
    #[serde(default)]
    pub last_action: Option<Action>,
    /// Whether the last intent has a result.
    pub resolved: bool,
    /// Whether some attempt succeeded.
    pub succeeded: bool,
    /// Detail of the last success.
    pub detail: Option<String>,
    /// The last error.
    pub last_error: Option<PortError>,
    /// Token generation.
    pub generation: u32,
}

impl StepView {
    /// An intent was written and no result followed: the call may or may not have happened.
    pub fn interrupted(&self) -> bool {
        self.last_intent.is_some() && !self.resolved
    }
}

/// What the journal says about one operation.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpView {
    /// When it started.
    pub started: Option<Timestamp>,
    /// Its subject server.
    pub subject: Option<ServerName>,
    /// When it completed.
    pub completed: Option<Timestamp>,
    /// What replaced it.
    pub abandoned_by: Option<OpId>,
    /// Steps.
    pub steps: BTreeMap<StepId, StepView>,
}

impl OpView {
    /// Started and neither completed nor abandoned.
    pub fn in_flight(&self) -> bool {
        self.started.is_some() && self.completed.is_none() && self.abandoned_by.is_none()
    }
    /// The view of one step (default when never planned).
    pub fn step(&self, id: &StepId) -> StepView {
        self.steps.get(id).cloned().unwrap_or_default()
    }
}

/// The planner's read-only view of a journal: pure data.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct JournalView {
    /// Operations in the order they started.
    pub ops: Vec<(OpId, OpView)>,
}

impl JournalView {
    /// The view of one operation.
    pub fn op(&self, op: &OpId) -> Option<&OpView> {
        self.ops.iter().find(|(o, _)| o == op).map(|(_, v)| v)
    }
    /// The operation started and not yet completed or abandoned (at most one by construction).
    /// Retention is never "in flight": each deletion stands alone.
    pub fn in_flight(&self) -> Option<(&OpId, &OpView)> {
        self.ops.iter().find(|(o, v)| *o != OpId::Retention && v.in_flight()).map(|(o, v)| (o, v))
    }
    /// Whether `op` completed.
    pub fn completed(&self, op: &OpId) -> bool {
        self.op(op).is_some_and(|v| v.completed.is_some())
    }
    /// The step view of `step` in `op`.
    pub fn step(&self, op: &OpId, step: &StepId) -> StepView {
        self.op(op).map(|v| v.step(step)).unwrap_or_default()
    }

    /// Applies one record (used when loading and after each append).
    pub fn apply(&mut self, rec: &Record) {
        match rec {
            Record::OpStarted { op, at, subject } => {
                let v = self.op_mut(op);
                if v.started.is_none() {
                    v.started = Some(*at);
                    v.subject.clone_from(subject);
                }
            }
            Record::Intent { seq, op, step, started, token, action, .. } => {
                let v = self.op_mut(op);
                if v.started.is_none() {
                    v.started = Some(*started);
                }
                let s = v.steps.entry(step.clone()).or_default();
                s.attempts += 1;
                s.last_intent = Some((*seq, *started, token.clone()));
                s.last_action = Some(action.clone());
                s.resolved = false;
            }
            Record::Result { seq, op, step, ok, detail, error, .. } => {
                let s = self.op_mut(op).steps.entry(step.clone()).or_default();
                if s.last_intent.as_ref().is_some_and(|(q, _, _)| q == seq) {
                    s.resolved = true;
                }
                if *ok {
                    s.succeeded = true;
                    s.detail.clone_from(detail);
                } else {
                    s.last_error.clone_from(error);
                }
            }
            Record::TokenBurned { step, generation } => {
                for (_, v) in &mut self.ops {
                    if let Some(s) = v.steps.get_mut(step) {
                        s.generation = s.generation.max(*generation);
                    }
                }
            }
            Record::OpCompleted { op, at } => {
                let v = self.op_mut(op);
                v.completed = Some(*at);
            }
            Record::OpAbandoned { op, by, .. } => {
                self.op_mut(op).abandoned_by = Some(by.clone());
            }
        }
    }

    fn op_mut(&mut self, op: &OpId) -> &mut OpView {
        if let Some(i) = self.ops.iter().position(|(o, _)| o == op) {
            &mut self.ops[i].1
        } else {
            self.ops.push((op.clone(), OpView::default()));
            let last = self.ops.len() - 1;
            &mut self.ops[last].1
        }
    }
}

/// Why the local journal files could not be used.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// File system trouble.
    #[error("journal {path}: {source}")]
    Io {
        /// The journal file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Another daemon runs on the same state directory.
    #[error(
        "another mirrorctl daemon runs on the state directory {state_dir} ({holder}): two daemons would both \
         reconcile every cluster; stop it, or give this one its own --state-dir"
    )]
    DaemonBusy {
        /// The state directory.
        state_dir: PathBuf,
        /// What the holder wrote into the lock file.
        holder: String,
    },
    /// A line in the middle of the file is not a record.
    #[error(
        "journal {path}:{line}: unreadable record ({message}); the journal is the only memory of \
         half-done steps, so mirrorctl will not guess: move the file aside only after checking \
         the cluster by hand"
    )]
    Corrupt {
        /// The journal file.
        path: PathBuf,
        /// Line number.
        line: usize,
        /// Parser message.
        message: String,
    },
}

/// The journal file of `cluster` under `state_dir` (the local store's layout).
pub fn path_for(state_dir: &Path, cluster: &ClusterName) -> PathBuf {
    state_dir.join("journal").join(format!("{cluster}.jsonl"))
}

/// Reads the journal file at `path` (none yet: no records). A torn last line is cut off the file
/// so the next append starts on a clean line; any other unreadable line is
/// [`JournalError::Corrupt`].
pub fn read_file(path: &Path) -> Result<Vec<Record>, JournalError> {
    let io = |source| JournalError::Io { path: path.to_owned(), source };
    let mut records = Vec::new();
    if !path.exists() {
        return Ok(records);
    }
    let reader = BufReader::new(File::open(path).map_err(io)?);
    let lines: Vec<String> = reader.lines().collect::<Result<_, _>>().map_err(io)?;
    let mut offset = 0u64;
    for (i, line) in lines.iter().enumerate() {
        let len = line.len() as u64 + 1;
        if line.trim().is_empty() {
            offset += len;
            continue;
        }
        match serde_json::from_str::<Record>(line) {
            Ok(r) => records.push(r),
            Err(e) if i + 1 == lines.len() => {
                tracing::warn!(path = %path.display(), line = i + 1, error = %e, "ignoring torn last journal line");
                // Cut the torn line so the next append starts on a clean line.
                OpenOptions::new().write(true).open(path).and_then(|f| f.set_len(offset)).map_err(io)?;
            }
            Err(e) => {
                return Err(JournalError::Corrupt { path: path.to_owned(), line: i + 1, message: e.to_string() });
            }
        }
        offset += len;
    }
    Ok(records)
}

/// Appends `rec` to the journal file at `path` as one line and fsyncs it before returning.
pub(crate) fn append_file(path: &Path, rec: &Record) -> Result<(), JournalError> {
    let io = |source| JournalError::Io { path: path.to_owned(), source };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut line = serde_json::to_string(rec).map_err(|e| io(std::io::Error::other(e)))?;
    line.push('\n');
    let mut file = OpenOptions::new().create(true).append(true).open(path).map_err(io)?;
    file.write_all(line.as_bytes()).map_err(io)?;
    file.sync_data().map_err(io)?;
    Ok(())
}

/// The `ClientToken` of a step: a hash of cluster, step id (which names the operation and the
/// server) and the token generation, so the same step in any process derives the same token and a
/// burned token is replaced by bumping the generation. 64 hex chars max per EC2; we use 40.
pub fn client_token(cluster: &ClusterName, step: &StepId, generation: u32) -> String {
    let mut h = Sha256::new();
    h.update(cluster.as_str().as_bytes());
    h.update([0]);
    h.update(step.0.as_bytes());
    h.update([0]);
    h.update(generation.to_le_bytes());
    let digest = h.finalize();
    format!("mc-{}", &hex::encode(digest)[..37])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::RequestName;

    fn op() -> OpId {
        OpId::Restore(RequestName::parse("r1").unwrap())
    }

    #[test]
    fn intent_without_result_is_interrupted_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        let step = StepId::new(&op(), &crate::plan::StepKind::Attach, Some("server1"));
        {
            append_file(
                &path,
                &Record::Intent {
                    seq: 1,
                    op: op(),
                    step: step.clone(),
                    attempt: 1,
                    token: None,
                    started: Timestamp::UNIX_EPOCH,
                    action: Action::MarkCompleted,
                },
            )
            .unwrap();
        }
        let mut view = JournalView::default();
        for r in &read_file(&path).unwrap() {
            view.apply(r);
        }
        let v = view.step(&op(), &step);
        assert!(v.interrupted());
        assert_eq!(v.attempts, 1);
        assert!(view.in_flight().is_some());
    }

    #[test]
    fn torn_last_line_is_dropped_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        append_file(&path, &Record::OpStarted { op: op(), at: Timestamp::UNIX_EPOCH, subject: None }).unwrap();
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"record\":\"op-comp").unwrap();
        assert_eq!(read_file(&path).unwrap().len(), 1);
        append_file(&path, &Record::OpCompleted { op: op(), at: Timestamp::UNIX_EPOCH }).unwrap();
        let records = read_file(&path).unwrap();
        assert_eq!(records.len(), 2);
        let mut view = JournalView::default();
        for r in &records {
            view.apply(r);
        }
        assert!(view.completed(&op()));
    }

    #[test]
    fn corrupt_middle_line_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        std::fs::write(
            &path,
            "garbage\n{\"record\":\"op-completed\",\"op\":{\"retention\":null},\"at\":\"2026-01-01T00:00:00Z\"}\n",
        )
        .unwrap();
        let err = read_file(&path).unwrap_err();
        assert!(err.to_string().contains(":1: unreadable record"), "{err}");
    }

    #[test]
    fn tokens_are_stable_and_change_with_generation() {
        let c = ClusterName::parse("prod-db").unwrap();
        let s = StepId::new(&op(), &crate::plan::StepKind::CreateVolume, Some("server1"));
        assert_eq!(client_token(&c, &s, 0), client_token(&c, &s, 0));
        assert_ne!(client_token(&c, &s, 0), client_token(&c, &s, 1));
        assert!(client_token(&c, &s, 0).len() <= 64);
    }
}
