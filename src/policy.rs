//! The error policy: what a failed call, step or pass leads to, in one place and pure (no I/O,
//! no clock: delays are returned, the callers sleep).
//!
//! Why this module exists: the same few decisions are made at three distances from a call, and
//! written once here they cannot drift apart:
//!
//! - **Class narrowing** ([`narrow`]): an error's class as its port gave it, corrected for the
//!   action that met it (a detach of something not attached is already done).
//! - **Within a step**: retryable errors within [`RetryPolicy`]'s budget, throttling without
//!   limit ([`crate::retry::Retries::after`], used by the executor and by observation alike).
//! - **Across passes and restarts** ([`budget_exhausted`]): a step tried too often needs a human.
//! - **Needs-human wording** ([`condition_for`]): what the operator reads for a failed step, and
//!   what to do about it.
//! - **Between passes** ([`pass_backoff`]): the daemon's delay after a failed pass.
//!
//! [`RetryPolicy`]: crate::retry::RetryPolicy

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::journal::StepView;
use crate::plan::step::{Action, Condition, Reason, Step};
use crate::ports::{ErrorClass, PortError};

/// The delays between a cluster's failed passes: exponential from `min` to `max`, with jitter,
/// without end (a success or a new desired state starts the schedule over).
pub(crate) fn pass_backoff(min: Duration, max: Duration) -> impl Iterator<Item = Duration> + use<> {
    ExponentialBuilder::default().with_min_delay(min).with_max_delay(max).with_jitter().without_max_times().build()
}

/// The condition of a step tried too often across passes and restarts.
pub(crate) fn budget_exhausted(step: &Step, prior: &StepView, max: u32) -> Option<Condition> {
    (prior.attempts >= max).then(|| Condition {
        reason: Reason::RetryBudgetExhausted,
        message: format!(
            "step {} was tried {} times; last error: {}",
            step.id,
            prior.attempts,
            prior.last_error.as_ref().map_or_else(|| "none recorded".to_owned(), ToString::to_string)
        ),
        action: "look at the last error, fix its cause, then restart mirrorctl (the journal keeps the count; move the \
                 journal aside only after checking the cluster by hand)"
            .into(),
    })
}

/// Narrows an error's class for the operation that produced it.
pub(crate) fn narrow(action: &Action, mut e: PortError) -> PortError {
    match (action, e.code.as_str()) {
        // The effect is in place: detaching something not attached; deleting a snapshot (or copy)
        // that is gone; disabling FSR of a snapshot that is gone (deleting a snapshot switches its
        // Fast Snapshot Restore off, AWS EBS User Guide).
        (Action::DetachVolume { .. }, "IncorrectState" | "InvalidAttachment.NotFound")
        | (
            Action::DeleteSnapshot { .. } | Action::DisableFastRestore { .. } | Action::DeleteCopy { .. },
            "InvalidSnapshot.NotFound",
        ) => {
            e.class = ErrorClass::AlreadyDone;
        }
        // Attaching a volume still being created, or starting an instance still stopping, is
        // "not yet".
        (Action::AttachVolume { .. }, "IncorrectState") | (Action::StartInstance { .. }, "IncorrectInstanceState") => {
            e.class = ErrorClass::Retryable;
        }
        // The token already created a volume with other parameters (the volume settings changed
        // mid-restore): creating another would duplicate it. A human decides.
        (Action::CreateVolume { .. }, "IdempotentParameterMismatch") => e.class = ErrorClass::NeedsHuman,
        _ => {}
    }
    e
}

/// Turns a failed step into what the operator reads.
pub(crate) fn condition_for(step: &Step, e: &PortError) -> Condition {
    if e.code == "PreflightFailed" {
        return Condition {
            reason: Reason::PreflightFailed,
            message: format!("{}: {}", step.id, e.message),
            action: "nothing was changed: fix what each failed check says, then retry (mirrorctl runs the preflight \
                     again before it changes anything)"
                .into(),
        };
    }
    let action = match e.code.as_str() {
        "InvalidVolume.ZoneMismatch" => {
            "the volume and the instance are in different zones: fix the server's zone in the desired-state file"
                .to_owned()
        }
        "InvalidParameterValue" if e.message.contains("in use") => format!(
            "another volume occupies the device slot: detach it from the instance by hand (mirrorctl did not create it), then retry ({})",
            step.action.describe()
        ),
        "VolumeInUse" => "the volume is attached elsewhere: detach it by hand, then retry".to_owned(),
        "IdempotentParameterMismatch" => "a volume was already requested for this step with other settings (did \
             [mirror.volume] change mid-restore?): put the settings back, or find the volume tagged with this request \
             and decide by hand"
            .to_owned(),
        "UnauthorizedOperation" | "AuthFailure" => {
            "grant the IAM permission named in the message to mirrorctl's role".to_owned()
        }
        "RequestLimitExceeded" => "EC2 kept throttling; lower mirrorctl's call budget or wait".to_owned(),
        _ if e.class == ErrorClass::Retryable => {
            "a transient failure outlived the retry budget; mirrorctl retries on the next pass".to_owned()
        }
        _ => format!("check the cluster and the step ({}) by hand, fix the cause, then retry", step.action.describe()),
    };
    Condition { reason: Reason::StepFailed(e.code.clone()), message: format!("{}: {e}", step.id), action }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{DeviceName, InstanceId, ServerName, VolumeId};

    fn class_after(action: &Action, code: &str) -> ErrorClass {
        narrow(action, PortError::ec2(code, "m")).class
    }

    #[test]
    fn narrowing_is_by_action_and_code() {
        let (server, volume) = (ServerName::parse("node1").unwrap(), VolumeId::parse("vol-0123456789abcdef0").unwrap());
        let instance = InstanceId::parse("i-0123456789abcdef0").unwrap();
        let detach =
            Action::DetachVolume { server: server.clone(), volume: volume.clone(), instance: instance.clone() };
        let attach = Action::AttachVolume { server, volume, instance, device: DeviceName::parse("xvdf").unwrap() };
        // The same code means "already done" for a detach and "not yet" for an attach.
        assert_eq!(class_after(&detach, "IncorrectState"), ErrorClass::AlreadyDone);
        assert_eq!(class_after(&attach, "IncorrectState"), ErrorClass::Retryable);
        // Other codes keep the class their port gave them.
        assert_eq!(class_after(&detach, "UnauthorizedOperation"), PortError::ec2("UnauthorizedOperation", "m").class);
    }

    #[test]
    fn the_pass_backoff_starts_near_its_minimum_and_never_ends() {
        let (min, max) = (Duration::from_secs(1), Duration::from_mins(5));
        let delays: Vec<Duration> = pass_backoff(min, max).take(40).collect();
        assert_eq!(delays.len(), 40);
        assert!(delays[0] >= min && delays[0] <= 2 * min, "{:?}", delays[0]);
        assert!(delays.iter().all(|d| *d <= 2 * max), "{delays:?}");
    }
}
