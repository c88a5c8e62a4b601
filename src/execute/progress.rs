//! Progress events: what the executor and the reconcile loop report as they go, for the terminal
//! display of `apply`, the lab's timeline, and the daemon's log. Events are sent on an
//! unbounded channel and also logged through `tracing`, one structured event per action.
//!
//! The log says what changes, not what stays: a step started or done (with its duration), a wait
//! begun (its reason and the expected remainder at the latency model's medians, an estimate) and
//! over (how long it took), a cluster converging. A resync that finds a converged cluster still
//! converged logs at debug only, so a steady daemon is quiet.

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
    /// A wait began (the planner has nothing to run until something in progress changes).
    Waiting {
        /// What, in words.
        reason: String,
        /// The expected remainder at the latency model's medians (an estimate, model time).
        expect: Duration,
    },
    /// A wait ended: the next pass has steps to run, or waits for something else.
    Waited {
        /// What was awaited.
        reason: String,
        /// How long it lasted (model time).
        elapsed: jiff::SignedDuration,
    },
    /// An operation completed.
    Completed {
        /// Operation.
        op: OpId,
    },
    /// Blocked.
    Blocked(Condition),
    /// Converged.
    Converged {
        /// The cluster was not converged before this reconcile (it ran steps, waited, or its last
        /// status said otherwise): logged at info. A resync finding it converged again is debug.
        transition: bool,
    },
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
            EventKind::StepDone { step, detail, elapsed } => {
                tracing::info!(cluster = %cluster, step = %step, detail = detail.as_deref().unwrap_or(""),
                    model_seconds = seconds(*elapsed), "step done in {} (model time)", span(*elapsed));
            }
            EventKind::StepFailed { step, error } => {
                tracing::warn!(cluster = %cluster, step = %step, error = %error, "step failed");
            }
            EventKind::Retrying { api, error, delay } => {
                tracing::debug!(cluster = %cluster, api = api, error = %error, delay_ms = delay.as_millis(), "retrying");
            }
            EventKind::Waiting { reason, expect } => {
                tracing::info!(cluster = %cluster, reason = %reason, expected_seconds = expect.as_secs(),
                    "waiting for {reason}; expected about {} more (estimate at model medians)",
                    span(jiff::SignedDuration::try_from(*expect).unwrap_or_default()));
            }
            EventKind::Waited { reason, elapsed } => {
                tracing::info!(cluster = %cluster, reason = %reason, model_seconds = seconds(*elapsed),
                    "waited {} for {reason} (model time)", span(*elapsed));
            }
            EventKind::Completed { op } => tracing::info!(cluster = %cluster, op = %op, "operation completed"),
            EventKind::Blocked(c) => tracing::info!(cluster = %cluster, reason = %c.reason, "blocked: {}", c.message),
            EventKind::Converged { transition: true } => tracing::info!(cluster = %cluster, "converged"),
            EventKind::Converged { transition: false } => tracing::debug!(cluster = %cluster, "still converged"),
            EventKind::Lease { held, epoch, .. } => tracing::debug!(cluster = %cluster, held, epoch, "lease"),
        }
        if let Some(s) = &self.sink {
            let _ = s.send(Event { at: ports.clock.now(), cluster: cluster.clone(), kind });
        }
    }
}

/// Seconds of `d`, to a tenth, for log fields.
fn seconds(d: jiff::SignedDuration) -> f64 {
    (d.as_secs_f64() * 10.0).round() / 10.0
}

/// `d` for people: `4.2s`, `3m 05s`, `1h 02m`.
pub fn span(d: jiff::SignedDuration) -> String {
    let s = d.as_secs_f64().max(0.0);
    let whole = u64::try_from((d.as_millis() + 500) / 1000).unwrap_or(0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if whole < 3600 {
        format!("{}m {:02}s", whole / 60, whole % 60)
    } else {
        format!("{}h {:02}m", whole / 3600, (whole % 3600) / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::span;
    use jiff::SignedDuration;

    #[test]
    fn spans_read_as_seconds_minutes_or_hours() {
        assert_eq!(span(SignedDuration::from_millis(4200)), "4.2s");
        assert_eq!(span(SignedDuration::from_secs(185)), "3m 05s");
        assert_eq!(span(SignedDuration::from_secs(3720)), "1h 02m");
        assert_eq!(span(SignedDuration::from_secs(-3)), "0.0s");
    }
}
