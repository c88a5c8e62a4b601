//! Fast Snapshot Restore (FSR) around a restore's volume creation (`mirror.volume.fast_restore`).
//!
//! Why this module exists: a volume made from a snapshot loads its blocks from S3 lazily, so the
//! business reads slowly after a restore until every block was touched. With FSR enabled for the
//! snapshot in a zone, EC2 creates the volume fully initialized. FSR is billed per zone-hour while
//! it is on, so mirrorctl switches it on only for the restore and off again as soon as the new
//! volumes exist. What AWS documents and this module relies on (AWS EBS User Guide, "Amazon EBS fast
//! snapshot restore", "Check the fast snapshot restore state", "Volume creation credits"):
//! - FSR is per snapshot and zone; states `enabling` → `optimizing` (60 minutes per TiB) →
//!   `enabled`; `disabling` → `disabled`; a failed enable also shows `disabling`.
//! - A volume gets the full benefit only when created in an `enabled` zone while that zone's
//!   volume creation credit bucket holds a credit. The bucket starts empty when FSR is enabled
//!   (counted here from the request, EC2's `EnablingTime` [U]) and fills at
//!   `MIN(10, 1024 ÷ snapshot GiB)` credits an hour, so the first credit comes `3600 ÷ that`
//!   seconds after it: the planner waits for it too.
//! - FSR works on snapshots of at most 16 TiB; at most 5 snapshots of a region may have it on
//!   (an adjustable quota).
//!
//! Decisions:
//! - **Journal, not observation, says what to switch off.** Each zone is its own step
//!   (`enable-fsr@<zone>`, `disable-fsr@<zone>`); a zone mirrorctl asked to enable (even a call
//!   cut off by a crash) is disabled once no volume of the restore still needs it — after both
//!   new volumes left `creating`, when the restore is blocked or a step of it failed needing a
//!   human, and before a restore is abandoned for a new request. A zone that was already on
//!   before the restore (someone else's FSR) is never enabled by mirrorctl, so never disabled.
//!   Both calls are idempotent in EC2, so a repeat after a crash is harmless.
//! - **The business keeps running while FSR optimizes**: the group is stopped (or NEC's
//!   pre-processing runs) only once the new volumes exist.
//! - **A refusal falls back to a plain restore, with a warning.** When EC2 refuses the enable for a
//!   limit (the per-region snapshot quota, or another `…LimitExceeded` code), when the snapshot is
//!   larger than 16 TiB, the volumes are created without FSR: a restore is incident response and
//!   FSR only changes how fast the first reads are, never what the volume holds. The zones already
//!   enabled are switched off. Permission errors are different: the preflight proves them first
//!   (`DryRun`) and a missing permission stops before anything changed. Which code EC2 returns at
//!   the quota is not documented [U]; see [`is_refusal`].
//! - **A volume that was not fast-restored is a warning, not a failure**: EC2 created it (no credit
//!   was left, or the zone was not `enabled` after all) and it holds the same data; only its first
//!   reads are slow. Failing the restore over it would stop an incident response for a
//!   performance property; `status` shows its initialization ETA instead.

use std::time::Duration;

use crate::ids::{ServerName, Zone};
use crate::journal::JournalView;
use crate::observe::Observed;
use crate::ports::ErrorClass;
use crate::ports::cloud::{FastRestoreState, Volume, VolumeState};
use crate::spec::{RestoreSpec, Spec};

use super::Draft;
use super::step::{Action, FastRestoreTarget, OpId, StepId, StepKind, Watch};

/// The prefix of the journal detail of an enable step EC2 refused for a limit (the step itself
/// succeeds: the refusal is a fact the planner reads, and the restore goes on without FSR).
pub(crate) const REFUSED: &str = "refused ";

/// The largest snapshot FSR can be enabled for, in GiB (16 TiB, AWS EBS User Guide).
pub(crate) const MAX_SNAPSHOT_GIB: u32 = 16 * 1024;

/// The longest the planner waits between two looks at an optimizing zone (a look is one
/// `DescribeFastSnapshotRestores`; optimizing takes about an hour per TiB).
pub(crate) const LOOK_EVERY: Duration = Duration::from_mins(2);

/// The shortest pause between two looks at a zone still optimizing past its median.
pub(crate) const LOOK_AT_LEAST: Duration = Duration::from_secs(10);

/// Whether an error code of `EnableFastSnapshotRestores` is a limit refusal the restore survives
/// without FSR: EC2's account-limit codes end in `LimitExceeded` (`ResourceLimitExceeded` is what
/// EC2 answers at other per-region snapshot limits, e.g. concurrent `CopySnapshot`s; the code at
/// the FSR quota itself is undocumented [U]), except throttling (`RequestLimitExceeded`).
pub fn is_refusal(code: &str) -> bool {
    code != "RequestLimitExceeded" && (code.ends_with("LimitExceeded") || code.contains("QuotaExceeded"))
}

/// Seconds from an enable until its zone's first volume creation credit (`3600 ÷ MIN(10, 1024 ÷
/// size GiB)`, AWS EBS User Guide, "Volume creation credits").
pub(crate) fn first_credit_after(size_gib: u32) -> Duration {
    let per_hour = (1024.0 / f64::from(size_gib.max(1))).min(10.0);
    Duration::from_secs_f64(3600.0 / per_hour)
}

/// The median time from an enable to `enabled` for a snapshot of `size_gib` (60 minutes per TiB
/// of optimizing, plus a minute of `enabling` [U]).
pub(crate) fn enable_median(size_gib: u32) -> Duration {
    Duration::from_mins(1) + Duration::from_secs_f64(3600.0 * f64::from(size_gib) / 1024.0)
}

fn step_kind(enable: bool) -> StepKind {
    if enable { StepKind::EnableFsr } else { StepKind::DisableFsr }
}

/// What the journal says about FSR in one zone for `op`.
struct ZoneJournal {
    /// An enable was asked for (or may have been: cut off by a crash).
    asked: bool,
    /// EC2 refused it for a limit.
    refused: Option<String>,
    /// A disable succeeded after the last enable.
    switched_off: bool,
}

fn zone_journal(journal: &JournalView, op: &OpId, zone: &Zone) -> ZoneJournal {
    let enable = journal.step(op, &StepId::new(op, &step_kind(true), Some(zone.as_str())));
    let disable = journal.step(op, &StepId::new(op, &step_kind(false), Some(zone.as_str())));
    let enable_seq = enable.last_intent.as_ref().map(|(seq, ..)| *seq);
    let refused = enable
        .succeeded
        .then(|| enable.detail.as_deref().and_then(|d| d.strip_prefix(REFUSED)).map(str::to_owned))
        .flatten();
    let switched_off =
        disable.succeeded && matches!((disable.last_intent.as_ref(), enable_seq), (Some((d, ..)), Some(e)) if *d > e);
    ZoneJournal { asked: enable_seq.is_some() && refused.is_none(), refused, switched_off }
}

/// The zones `op` asked FSR for and has not switched off yet (from the journal's step ids).
fn zones_on(journal: &JournalView, op: &OpId) -> Vec<Zone> {
    let mut zones: Vec<Zone> = journal
        .op(op)
        .map(|v| {
            v.steps
                .keys()
                .filter(|id| id.kind() == Some(step_kind(true)))
                .filter_map(|id| id.subject().and_then(|z| Zone::parse(z).ok()))
                .collect()
        })
        .unwrap_or_default();
    zones.sort();
    zones.dedup();
    zones.retain(|z| {
        let j = zone_journal(journal, op, z);
        j.asked && !j.switched_off
    });
    zones
}

/// The snapshot `op`'s enable steps name (the request's snapshot may have changed since).
fn enabled_snapshot(journal: &JournalView, op: &OpId, zone: &Zone) -> Option<crate::ids::SnapshotId> {
    match journal.step(op, &StepId::new(op, &step_kind(true), Some(zone.as_str()))).last_action {
        Some(Action::EnableFastRestore { target }) => Some(target.snapshot),
        _ => None,
    }
}

/// Adds a `disable-fsr@<zone>` step for `z` (with the snapshot its enable named).
fn disable(journal: &JournalView, op: &OpId, z: &Zone, why: &str, d: &mut Draft) {
    let Some(snapshot) = enabled_snapshot(journal, op, z) else { return };
    d.step(
        op,
        &step_kind(false),
        Some(z.as_str()),
        Action::DisableFastRestore { target: FastRestoreTarget { snapshot, zones: vec![z.clone()] } },
        format!("Fast Snapshot Restore in {z} bills per zone-hour and {why}"),
    );
}

/// Adds a `disable-fsr@<zone>` step for every zone `op` left on; returns whether it added any.
pub(crate) fn switch_off(journal: &JournalView, op: &OpId, why: &str, d: &mut Draft) -> bool {
    let zones = zones_on(journal, op);
    for z in &zones {
        disable(journal, op, z, why, d);
    }
    !zones.is_empty()
}

/// The disable steps a blocked or terminally failed restore still runs (see the module doc).
pub(crate) fn cleanup(journal: &JournalView, op: &OpId, why: &str) -> Vec<super::Step> {
    let mut d = Draft::default();
    switch_off(journal, op, why, &mut d);
    d.steps
}

/// Whether a step of `op` failed needing a human after FSR was last asked for in `zone`, and has
/// not succeeded since. (A failure from before that enable was what a human fixed before the
/// restore went on: counting it would switch FSR off as soon as it is on again.)
fn failed_terminally(journal: &JournalView, op: &OpId, zone: &Zone) -> bool {
    let enable = journal.step(op, &StepId::new(op, &step_kind(true), Some(zone.as_str())));
    let Some((since, ..)) = enable.last_intent else { return false };
    journal.op(op).is_some_and(|v| {
        v.steps.values().any(|s| {
            s.resolved
                && !s.succeeded
                && s.last_error.as_ref().is_some_and(|e| e.class == ErrorClass::NeedsHuman)
                && s.last_intent.as_ref().is_some_and(|(seq, ..)| *seq > since)
        })
    })
}

/// Before the volumes are created: the zones (of `pending`, the zones of servers still without a
/// new volume) whose volume may be created now. With `fast_restore` off, refused, or impossible,
/// all of them. Otherwise enables FSR where it is off, waits (reporting the state seen) where it
/// is not `enabled` or has no credit yet, and returns the zones that are ready.
pub(crate) fn ready_zones(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    op: &OpId,
    r: &RestoreSpec,
    pending: &[Zone],
    d: &mut Draft,
) -> Vec<Zone> {
    if !spec.mirror.volume.fast_restore || pending.is_empty() {
        return pending.to_vec();
    }
    let size = obs.snapshot(&r.snapshot).map_or(0, |s| s.size_gib);
    // Without FSR (too large a snapshot, or EC2 refused it): `after_create` says why, every pass.
    if size > MAX_SNAPSHOT_GIB || pending.iter().any(|z| zone_journal(journal, op, z).refused.is_some()) {
        return pending.to_vec();
    }
    let mut ready = Vec::new();
    // One wait naming every zone's state, looked at again when the nearest is due.
    let mut waiting: Vec<(String, Duration)> = Vec::new();
    for z in pending {
        let seen = obs.fast_restores.iter().find(|f| f.snapshot == r.snapshot && &f.zone == z);
        let state = seen.map_or(FastRestoreState::Disabled, |f| f.state);
        let since = seen.and_then(|f| f.enabling_time);
        match state {
            FastRestoreState::Disabled => d.step(
                op,
                &step_kind(true),
                Some(z.as_str()),
                Action::EnableFastRestore {
                    target: FastRestoreTarget { snapshot: r.snapshot.clone(), zones: vec![z.clone()] },
                },
                format!("mirror.volume.fast_restore: the volume for {z} is to be created fully initialized"),
            ),
            FastRestoreState::Disabling => waiting
                .push((format!("in {z}: disabling (it is enabled again once disabled)"), Duration::from_secs(30))),
            FastRestoreState::Enabling | FastRestoreState::Optimizing => waiting.push((
                format!("in {z}: {} (about 60 minutes per TiB; the business keeps running)", state.as_str()),
                super::expect::remaining(enable_median(size), since, obs.now).clamp(LOOK_AT_LEAST, LOOK_EVERY),
            )),
            FastRestoreState::Enabled => {
                let credit =
                    since.map(|t| t + jiff::SignedDuration::try_from(first_credit_after(size)).unwrap_or_default());
                match credit {
                    Some(at) if obs.now < at => waiting.push((
                        format!("in {z}: enabled; its first volume creation credit comes at {at:.0}"),
                        Duration::try_from(at.duration_since(obs.now)).unwrap_or_default().max(super::expect::MIN_LOOK),
                    )),
                    _ => ready.push(z.clone()),
                }
            }
        }
    }
    if let Some(next) = waiting.iter().map(|(_, e)| *e).min() {
        let parts: Vec<&str> = waiting.iter().map(|(t, _)| t.as_str()).collect();
        d.wait(Watch::FAST_RESTORE, format!("Fast Snapshot Restore of {} {}", r.snapshot, parts.join("; ")), next);
    }
    ready
}

/// After the create steps were planned: says why FSR is not used when it is not, switches it off
/// in the zones no volume still needs, and warns about new volumes that were not fast-restored.
/// `new` holds each server's zone and new volume (if one exists yet).
pub(crate) fn after_create(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    op: &OpId,
    r: &RestoreSpec,
    new: &[(&ServerName, &Zone, Option<&Volume>)],
    d: &mut Draft,
) {
    let want = spec.mirror.volume.fast_restore;
    let size = obs.snapshot(&r.snapshot).map_or(0, |s| s.size_gib);
    if want && size > MAX_SNAPSHOT_GIB {
        d.notes.push(format!(
            "warning: fast_restore is set but {} is {size} GiB; Fast Snapshot Restore works up to {MAX_SNAPSHOT_GIB} \
             GiB, so the volumes are created without it and load lazily (status shows their initialization)",
            r.snapshot
        ));
    }
    let refusals: Vec<String> = new
        .iter()
        .filter_map(|(_, z, _)| zone_journal(journal, op, z).refused.map(|why| format!("{z}: {why}")))
        .collect();
    if !refusals.is_empty() {
        d.notes.push(format!(
            "warning: EC2 refused Fast Snapshot Restore of {} ({}); the volumes are created without it and load lazily \
             (status shows their initialization). Ask AWS for a higher quota or disable FSR on other snapshots to use it \
             next time",
            r.snapshot,
            refusals.join("; ")
        ));
    }
    for (server, zone, v) in new {
        let Some(v) = v else { continue };
        if want && zone_journal(journal, op, zone).asked && !v.fast_restored && v.state != VolumeState::Creating {
            d.notes.push(format!(
                "warning: {} for {server} was not fast-restored (no volume creation credit was left, or Fast Snapshot \
                 Restore was not enabled in {zone} when it was created); it holds the same data but its first reads are \
                 slow until EBS has loaded it (status shows its initialization ETA)",
                v.id
            ));
        }
    }
    let needed =
        |z: &Zone| new.iter().any(|(_, zone, v)| *zone == z && v.is_none_or(|v| v.state == VolumeState::Creating));
    let refused = !refusals.is_empty();
    for z in zones_on(journal, op) {
        let terminal = failed_terminally(journal, op, &z);
        if needed(&z) && !refused && !terminal {
            continue;
        }
        let why = if terminal {
            "a step of the restore failed needing a human"
        } else if refused {
            "the restore goes on without it"
        } else {
            "the restored volumes exist"
        };
        disable(journal, op, &z, why, d);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limit_codes_are_refusals_but_throttling_and_permissions_are_not() {
        assert!(is_refusal("ResourceLimitExceeded"));
        assert!(is_refusal("FastSnapshotRestoreLimitExceeded"));
        assert!(!is_refusal("RequestLimitExceeded"));
        assert!(!is_refusal("UnauthorizedOperation"));
        assert!(!is_refusal("InvalidSnapshot.NotFound"));
    }

    #[test]
    fn the_first_credit_follows_the_documented_fill_rate() {
        // 100 GiB: 10 credits an hour (capped) → one every 6 minutes.
        assert_eq!(first_credit_after(100), Duration::from_mins(6));
        // 1 TiB: one credit an hour; 4 TiB: one every 4 hours.
        assert_eq!(first_credit_after(1024), Duration::from_hours(1));
        assert_eq!(first_credit_after(4096), Duration::from_hours(4));
    }
}
