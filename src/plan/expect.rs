//! Expected durations of the things the planner waits for, at real-world medians (DOMAIN.md: EC2
//! create/attach/detach take ~1–4 s). They set the first poll of a wait; later polls back off
//! ×1.5 up to a few seconds (see `reconcile`). Never the 15 s of an SDK waiter.

use std::time::Duration;

/// `CreateVolume` → available.
pub(crate) const VOLUME_CREATE: Duration = Duration::from_secs(3);
/// `AttachVolume` → attached.
pub(crate) const ATTACH: Duration = Duration::from_secs(2);
/// `DetachVolume` → detached.
pub(crate) const DETACH: Duration = Duration::from_secs(2);
/// A new disk showing up in the OS after attach.
pub(crate) const DISK_APPEAR: Duration = Duration::from_secs(1);
/// OS shutdown → instance stopped.
pub(crate) const INSTANCE_STOP: Duration = Duration::from_secs(30);
/// `StartInstances` → running and back in the cluster.
pub(crate) const INSTANCE_START: Duration = Duration::from_secs(40);
/// A reboot by NEC's post-processing (`clpbackup`/`clprestore --post`): OS down, up, and back in
/// the cluster. Past twice this, a post whose reboot never came is completed with `--only-reboot`.
pub(crate) const REBOOT: Duration = Duration::from_secs(70);
/// Mirror recovery (differential) or initial construction progress check.
pub(crate) const MIRROR_SYNC: Duration = Duration::from_secs(5);
/// A CLUSTERPRO state that is pending.
pub(crate) const CLUSTER_PENDING: Duration = Duration::from_secs(3);
/// How long a snapshot created with tags may stay invisible to a tag filter (eventual
/// consistency) before an interrupted `CreateSnapshot` is taken as not having happened.
pub(crate) const SNAPSHOT_VISIBILITY: Duration = Duration::from_secs(30);
/// A configuration push (`clpcfctrl --push`: suspend, push, resume) → applied.
pub(crate) const CONFIG_PUSH: Duration = Duration::from_secs(12);
/// How long a configuration push interrupted by a restart may still land: CLUSTERPRO goes on
/// applying a push whose caller died. The longest a push is given by the adapters (the command
/// adapter's default operation timeout, 15 min); past it, the push has landed or failed.
pub(crate) const CONFIG_PUSH_LIMIT: Duration = Duration::from_mins(15);

/// The shortest first look of a wait that is already under way.
pub(crate) const MIN_LOOK: Duration = Duration::from_secs(1);

/// What is left of `median` for something that started at `since` (from the journal), seen at
/// `now`: a wait that began with an earlier step (the standby's shutdown, an instance start) looks
/// first when the thing should be done, not a whole median after the pass that noticed it. Never
/// less than [`MIN_LOOK`]; the whole median when the start is unknown.
pub fn remaining(median: Duration, since: Option<jiff::Timestamp>, now: jiff::Timestamp) -> Duration {
    let Some(since) = since else { return median };
    let elapsed = Duration::try_from(now.duration_since(since)).unwrap_or(Duration::ZERO);
    median.saturating_sub(elapsed).max(MIN_LOOK)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remaining_counts_from_the_start_and_never_drops_below_a_second() {
        let t0: jiff::Timestamp = "2026-11-24T00:00:00Z".parse().expect("time");
        let at = |s: i64| t0 + jiff::SignedDuration::from_secs(s);
        assert_eq!(remaining(INSTANCE_STOP, None, at(10)), INSTANCE_STOP);
        assert_eq!(remaining(INSTANCE_STOP, Some(t0), at(10)), Duration::from_secs(20));
        assert_eq!(remaining(INSTANCE_STOP, Some(t0), at(45)), MIN_LOOK);
        assert_eq!(remaining(INSTANCE_STOP, Some(at(5)), t0), INSTANCE_STOP, "a start in the future counts as now");
    }
}
