//! Progress events: what the executor and the reconcile loop report as they go, for the terminal
//! display of `apply`, the lab's timeline, and the daemon's log. Events are sent on
//! an unbounded channel and also logged through `tracing`, one structured event per action.

use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc::UnboundedSender;

use crate::ids::ClusterName;
use crate::plan::{Condition, OpId, StepId};
use crate::ports::Ports;

/// What happened.
#[derive(Debug, Clone, PartialEq)]
pub enum EventKind {
    /// A step's intent was written and its call started.
    StepStarted {
        /// Step.
        step: StepId,
        /// Human description.
        what: String,
        /// The API it calls (`ec2:CreateVolume`, …), for metrics.
        api: &'static str,
    },
    /// A step finished.
    StepDone {
        /// Step.
        step: StepId,
        /// Detail (created id).
        detail: Option<String>,
        /// Model time it took.
        elapsed: jiff::SignedDuration,
    },
    /// A step failed.
    StepFailed {
        /// Step.
        step: StepId,
        /// Error.
        error: String,
    },
    /// A call is retried after a delay.
    Retrying {
        /// API.
        api: &'static str,
        /// Error.
        error: String,
        /// Delay.
        delay: Duration,
    },
    /// Waiting for something.
    Waiting {
        /// What.
        reason: String,
    },
    /// An operation completed.
    Completed {
        /// Operation.
        op: OpId,
    },
    /// Blocked.
    Blocked(Condition),
    /// Converged.
    Converged,
    /// The cluster's lease was taken (`held`) or let go by this process.
    Lease {
        /// Held from now on (taken), or not any more (released or lost).
        held: bool,
        /// Its epoch.
        epoch: u64,
        /// The holder it was taken over from (a takeover after that holder's heartbeat stopped).
        taken_over_from: Option<String>,
    },
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Model time.
    pub at: Timestamp,
    /// Cluster.
    pub cluster: ClusterName,
    /// What.
    pub kind: EventKind,
}

/// Where events go.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    sink: Option<UnboundedSender<Event>>,
}

impl Progress {
    /// Events are only logged.
    pub fn none() -> Self {
        Progress { sink: None }
    }
    /// Events are also sent to `sink`.
    pub fn to(sink: UnboundedSender<Event>) -> Self {
        Progress { sink: Some(sink) }
    }
    /// Records an event.
    pub fn emit(&self, ports: &Ports, cluster: &ClusterName, kind: EventKind) {
        match &kind {
            EventKind::StepStarted { step, what, api } => {
                tracing::info!(cluster = %cluster, step = %step, api = api, "{what}");
            }
            EventKind::StepDone { step, detail, .. } => {
                tracing::info!(cluster = %cluster, step = %step, detail = detail.as_deref().unwrap_or(""), "step done");
            }
            EventKind::StepFailed { step, error } => {
                tracing::warn!(cluster = %cluster, step = %step, error = %error, "step failed");
            }
            EventKind::Retrying { api, error, delay } => {
                tracing::debug!(cluster = %cluster, api = api, error = %error, delay_ms = delay.as_millis(), "retrying");
            }
            EventKind::Waiting { reason } => tracing::debug!(cluster = %cluster, "waiting: {reason}"),
            EventKind::Completed { op } => tracing::info!(cluster = %cluster, op = %op, "operation completed"),
            EventKind::Blocked(c) => tracing::info!(cluster = %cluster, reason = %c.reason, "blocked: {}", c.message),
            EventKind::Converged => tracing::info!(cluster = %cluster, "converged"),
            EventKind::Lease { held, epoch, .. } => tracing::debug!(cluster = %cluster, held, epoch, "lease"),
        }
        if let Some(s) = &self.sink {
            let _ = s.send(Event { at: ports.clock.now(), cluster: cluster.clone(), kind });
        }
    }
}
