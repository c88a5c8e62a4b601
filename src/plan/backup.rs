//! Backup planning and retention, in the runbook's order with one improvement: the snapshot and
//! the restart of business run together once the standby is stopped, and the standby is started
//! again as soon as `CreateSnapshot` has returned (the snapshot's point in time is fixed then; it may
//! stay `pending` for hours).
//!
//! Runbook step → planner step (ids are `backup/<name>/<kind>@<server>`):
//! 1. stop the md resource on the active (quiesce point) → `stop-md@active`; a file with several
//!    md resources (`[[mirror]]`) stops each, one per pass, the first as `stop-md@active` (which
//!    takes their dependents down with it), the others as `stop-md-<md>@active`: the simulated
//!    CLUSTERPRO runs one group operation at a time, as mirrorctl assumes of the real one [U], so
//!    each further md adds one md stop to the business downtime (its start does not: the
//!    dependents' start brings every md back in one `clprsc -s … -f`);
//! 2. shut the standby down through CLUSTERPRO → `shutdown@standby`;
//! 3. start md (the group) on the active again → `start-group@active`, or, when other resources
//!    kept the group online, `restart-<r>@active` for what the quiesce stopped with md (which
//!    starts md with it), as soon as the standby has left the cluster (its mirror agent is down,
//!    nothing replicates to its disk), without waiting for its instance to reach `stopped`:
//!    business downtime is md stop → shutdown → one start. Where the CLUSTERPRO port runs both as
//!    one request ([`Observed::leave_then_start`]: the simulator and the commands, `clpdown -h
//!    <standby>` then the start in one script on the active once `clpstat` shows the standby out;
//!    not the REST API), steps 2 and 3 are one step, `shutdown-restart@standby`, and business
//!    downtime loses a CLUSTERPRO round trip and a planning pass. The start is the one step 3
//!    would plan. A crash or failed start inside it leaves the standby on its way down: once its
//!    instance is `stopping` (or `stopped`) the start is planned alone, as after step 2;
//! 4. `CreateSnapshot` of the standby's mirror volume, tagged in the call (with what it holds,
//!    [`tag::HOLDS`] and [`tag::DEVICE`], like the members of a set) → `snapshot@standby`;
//!    when the file's md resources are on several volumes (`cluster_device`, several md), one
//!    `CreateSnapshots` of all of them as one crash-consistent set → `snapshot-set@standby`
//!    (single-volume backups keep
//!    `CreateSnapshot`: one volume is consistent by itself, and its flows, faults and call counts
//!    stay as they were proven); once the set exists, each of its snapshots is tagged with what its
//!    volume holds → `tag-member@<snapshot>` (`CreateSnapshots` cannot tell them apart: its
//!    `TagSpecifications` are "tags to apply to every snapshot specified by the instance", EC2 API
//!    Reference, `CreateSnapshots`);
//! 5. start the standby instance; CLUSTERPRO resynchronises → `start-instance@standby`, then
//!    `complete` once the mirror is healthy again.
//!
//! A backup name is taken once: a snapshot tagged with it means it exists (for a set, one per
//! volume of the set; retention keeps or deletes a set whole). Schedules name each
//! slot's backup `<schedule>-<stamp>`; every kind (`hourly`, `every Nh`, daily, weekly, cron) is
//! evaluated as a cron expression in its zone with the `croner` crate, so one code path finds the
//! latest and the next slot. Retention works per schedule (see [`retention`]).

use jiff::tz::TimeZone;

use crate::ids::{BackupName, ServerName};
use crate::journal::JournalView;
use crate::observe::Observed;
use crate::ports::cloud::{
    AttachState, CopySnapshot, CreateSnapshot, CreateSnapshotSet, InstanceState, ShutdownBehavior, Snapshot,
    SnapshotState, Tags, tag,
};
use crate::ports::cluster::{
    ObjectState, Operation, PreflightRequest, Procedure, Start, VendorCall, VendorOp, VendorPhase,
};
use crate::spec::{BackupSpec, Every, ScheduleSpec, Spec};

use super::restore::{at_device, layout_of};
use super::set_identity::{holds, lacks_identity};
use super::step::{Action, OpId, Reason, StepId, StepKind, Watch};
use super::{Draft, Outcome, base_tags, expect};

/// How long after its scheduled time a missed daily backup is still taken (a daemon that was down
/// at 02:00 and comes back at 03:00 takes it; at 09:00 it waits for tomorrow and says so).
pub(crate) const SCHEDULE_CATCH_UP: jiff::SignedDuration = jiff::SignedDuration::from_hours(6);

fn backup_tags(spec: &Spec, name: &BackupName) -> Tags {
    let mut t = base_tags(spec, &OpId::Backup(name.clone()));
    t.insert(tag::ROLE.into(), "backup".into());
    t
}

/// The standby's volumes a backup snapshots: the volume at each device of the file's md
/// resources, in file order, once each; `Err` names a device with no volume.
fn set_volumes<'a>(
    spec: &Spec,
    obs: &'a Observed,
    standby: &crate::spec::ServerSpec,
) -> Result<Vec<&'a crate::ports::cloud::Volume>, crate::ids::DeviceName> {
    let mut out: Vec<&crate::ports::cloud::Volume> = Vec::new();
    for device in spec.mirrors().flat_map(crate::spec::MirrorSpec::devices) {
        let found = obs.volumes.iter().find(|v| {
            v.attachments
                .iter()
                .any(|a| a.instance == standby.instance && &a.device == device && a.state != AttachState::Detached)
        });
        match found {
            Some(v) if !out.iter().any(|o| o.id == v.id) => out.push(v),
            Some(_) => {}
            None => return Err(device.clone()),
        }
    }
    Ok(out)
}

/// This backup's snapshot, if it exists (an `error` snapshot does not count).
fn snapshot_of<'a>(spec: &Spec, obs: &'a Observed, name: &BackupName) -> Option<&'a Snapshot> {
    let tags = backup_tags(spec, name);
    obs.snapshots_tagged(&tags).into_iter().find(|s| s.state != SnapshotState::Error)
}

/// The backup name of a slot: `<schedule>-<stamp>`, the stamp in the schedule's zone: the date
/// for daily and weekly schedules, date and hour for `hourly`/`every Nh` (UTC), date, hour and
/// minute for cron.
fn slot_name(s: &ScheduleSpec, slot: jiff::Timestamp) -> Option<BackupName> {
    let (format, zone) = match &s.every {
        Every::Hours(_) => ("%Y%m%d%H", "UTC"),
        Every::Daily(at) | Every::Weekly { at, .. } => ("%Y%m%d", at.time_zone.as_str()),
        Every::Cron { time_zone, .. } => ("%Y%m%d%H%M", time_zone.as_str()),
    };
    let local = slot.to_zoned(TimeZone::get(zone).ok()?);
    BackupName::parse(&format!("{}-{}", s.name, local.strftime(format))).ok()
}

/// The schedule's backup due now, if any: the one of its latest slot at or before `now`, while
/// within [`SCHEDULE_CATCH_UP`] of it.
pub(crate) fn scheduled_due(s: &ScheduleSpec, now: jiff::Timestamp) -> Option<BackupName> {
    let slot = s.every.last_slot(now)?;
    if now.duration_since(slot) > SCHEDULE_CATCH_UP {
        return None;
    }
    slot_name(s, slot)
}

/// The schedule whose backup `name` is, if any (a name listed in `take` belongs to none).
pub(crate) fn schedule_of<'a>(b: &'a BackupSpec, name: &BackupName) -> Option<&'a ScheduleSpec> {
    if b.take.contains(name) {
        return None;
    }
    b.schedules.iter().find(|s| {
        name.as_str()
            .strip_prefix(s.name.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .is_some_and(|stamp| matches!(stamp.len(), 8 | 10 | 12) && stamp.bytes().all(|c| c.is_ascii_digit()))
    })
}

/// Whether `name` is wanted now: listed in `take`, or the due slot of a schedule.
pub(crate) fn wanted_now(b: &BackupSpec, name: &BackupName, now: jiff::Timestamp) -> bool {
    b.take.contains(name) || b.schedules.iter().any(|s| scheduled_due(s, now).as_ref() == Some(name))
}

/// The next backup wanted and not yet taken: `take` names in order, then each schedule's due one
/// in file order (two schedules due together take one backup each, one after the other).
pub(crate) fn next_wanted(spec: &Spec, b: &BackupSpec, obs: &Observed, journal: &JournalView) -> Option<BackupName> {
    let mut wanted: Vec<BackupName> = b.take.clone();
    wanted.extend(b.schedules.iter().filter_map(|s| scheduled_due(s, obs.now)));
    wanted.into_iter().find(|name| {
        let op = OpId::Backup(name.clone());
        !journal.completed(&op)
            && snapshot_of(spec, obs, name)
                .is_none_or(|_| journal.op(&op).is_some_and(super::super::journal::OpView::in_flight))
    })
}

/// The active server of a backup: the one recorded when it started, else where the group runs.
pub(crate) fn active_server(spec: &Spec, obs: &Observed, journal: &JournalView, op: &OpId) -> Option<ServerName> {
    journal.op(op).and_then(|v| v.subject.clone()).or_else(|| {
        obs.cluster
            .groups
            .get(&spec.mirror.group)
            .filter(|p| p.state == ObjectState::Online)
            .and_then(|p| p.current.clone())
    })
}

/// Plans backup `name`.
#[allow(clippy::too_many_lines)]
pub fn plan(spec: &Spec, obs: &Observed, journal: &JournalView, name: &BackupName) -> (Outcome, Vec<String>) {
    let op = OpId::Backup(name.clone());
    let mut d = Draft::default();
    let started = super::begun(journal, &op);
    let group = &spec.mirror.group;
    let md = &spec.mirror.resource;
    let Some(procedure) = super::procedure::choose_for(spec, obs, journal, &op, &mut d) else {
        return d.outcome();
    };

    if !obs.cluster_reachable {
        d.wait(Watch::CLUSTER, "a server to answer for the cluster as a running member", expect::CLUSTER_PENDING);
        return d.outcome();
    }
    let Some(active) = active_server(spec, obs, journal, &op) else {
        d.wait(
            Watch::CLUSTER,
            format!("group {group} to be online somewhere: a backup needs an active server"),
            expect::CLUSTER_PENDING,
        );
        return d.outcome();
    };
    let (Some(active_spec), Some(standby)) = (spec.server(&active), spec.peer_of(&active)) else {
        d.block(
            Reason::UnknownActiveServer,
            format!("group {group} runs on {active}, which is not one of the servers in {}", spec.source.display()),
            "fix the server names in the desired-state file",
        );
        return d.outcome();
    };
    let Some(standby_inst) = obs.instances.get(&standby.instance) else {
        d.block(
            Reason::InstanceMissing,
            format!("instance {} of {} was not found", standby.instance, standby.name),
            "check the instance id in the desired-state file",
        );
        return d.outcome();
    };
    let state_of =
        |r: &crate::ids::ResourceName| obs.cluster.resources.get(r).map_or(ObjectState::Offline, |p| p.state);
    // Every md of the file, quiesced in file order.
    let mds: Vec<&crate::ids::ResourceName> = spec.mirrors().map(|m| &m.resource).collect();
    let all_offline = mds.iter().all(|r| state_of(r) == ObjectState::Offline);
    let changing = mds.iter().find(|r| matches!(state_of(r), ObjectState::OnlinePending | ObjectState::OfflinePending));
    let standby_member = obs.cluster.servers.get(&standby.name) == Some(&true);
    let snap = snapshot_of(spec, obs, name);
    let standby_subject = Some(standby.name.as_str());
    let active_subject = Some(active_spec.name.as_str());

    if !started {
        if obs.shutdown.get(&standby.instance) == Some(&ShutdownBehavior::Terminate) {
            d.block(
                Reason::InstanceTerminatesOnShutdown,
                format!(
                    "standby {} ({}) has InstanceInitiatedShutdownBehavior=terminate: the backup's shutdown would destroy it",
                    standby.name, standby.instance
                ),
                "set it to stop (aws ec2 modify-instance-attribute --instance-initiated-shutdown-behavior stop), then retry",
            );
            return d.outcome();
        }
        if let Some(missing) = spec.mirrors().find(|m| obs.config.mirror(&m.resource).is_none()) {
            d.block(
                Reason::MirrorNotConfigured,
                format!("{} is not in the cluster configuration", missing.resource),
                "finish or repair the restore first; a backup needs a configured mirror",
            );
            return d.outcome();
        }
        if standby_inst.state != InstanceState::Running || !standby_member {
            d.wait(
                Watch::INSTANCES,
                format!("standby {} to be running and in the cluster", standby.name),
                expect::INSTANCE_START,
            );
            return d.outcome();
        }
        if super::block_if_both_red(spec, obs, &mut d) {
            return d.outcome();
        }
        if let Some(md) = obs.unhealthy_mirror(spec) {
            d.wait(
                Watch::CLUSTER,
                format!("mirror {md} to be healthy: a backup now would capture a stale standby"),
                expect::MIRROR_SYNC,
            );
            return d.outcome();
        }
    }

    let Some((standby_vol, _)) = at_device(spec, obs, standby) else {
        d.block(
            Reason::NoMirrorVolume,
            format!("standby {} has no volume at {}", standby.name, spec.mirror.device),
            "check mirror.device in the desired-state file",
        );
        return d.outcome();
    };
    let set = match set_volumes(spec, obs, standby) {
        Ok(set) => set,
        Err(device) => {
            d.block(
                Reason::NoMirrorVolume,
                format!("standby {} has no volume at {device}", standby.name),
                "check the devices of the [mirror] entries in the desired-state file",
            );
            return d.outcome();
        }
    };
    // Several volumes are one crash-consistent set (`CreateSnapshots`): the backup exists once
    // a snapshot of each shows; fewer is a set still becoming visible, or a broken one.
    let tagged: Vec<&Snapshot> = obs
        .snapshots_tagged(&backup_tags(spec, name))
        .into_iter()
        .filter(|s| s.state != SnapshotState::Error)
        .collect();
    let snap = if tagged.len() >= set.len() { snap } else { None };

    if let Some(snap) = snap {
        d.notes.push(format!("backup {name} is {} ({:?}, {}%)", snap.id, snap.state, snap.progress));
        if set.len() > 1 {
            let planned = journal.step(&op, &StepId::new(&op, &StepKind::SnapshotSet, standby_subject)).last_action;
            tag_members(&mut d, &op, name, &tagged, planned, &set_members(spec, &set, standby));
            if d.blocked.is_some() {
                return d.outcome();
            }
        }
        let business_back = restart_business(&mut d, spec, obs, journal, &op, &active, "the snapshot exists");
        match standby_inst.state {
            InstanceState::Stopped => d.step(
                &op,
                &StepKind::StartInstance,
                standby_subject,
                Action::StartInstance { server: standby.name.clone(), instance: standby.instance.clone() },
                format!("the snapshot's point in time is fixed; {} can rejoin", standby.name),
            ),
            InstanceState::Running if procedure == Procedure::Vendor && !standby_member => {
                vendor_post(&mut d, journal, &op, &standby.name, obs.now);
            }
            InstanceState::Running if standby_member => {
                if let Some(md) = obs.unhealthy_mirror(spec) {
                    d.wait(Watch::CLUSTER, format!("mirror {md} to resynchronise"), expect::MIRROR_SYNC);
                } else if d.steps.is_empty() && business_back {
                    d.step(
                        &op,
                        &StepKind::Complete,
                        None,
                        Action::MarkCompleted,
                        "snapshot taken, standby back, mirror healthy",
                    );
                }
            }
            InstanceState::Terminated | InstanceState::ShuttingDown => d.block(
                Reason::StandbyTerminated,
                format!("standby {} ({}) is {:?}", standby.name, standby.instance, standby_inst.state),
                "rebuild the standby from the backup snapshot; mirrorctl cannot start a terminated instance",
            ),
            _ => {
                let since = journal
                    .step(&op, &StepId::new(&op, &StepKind::StartInstance, standby_subject))
                    .last_intent
                    .map(|(_, at, _)| at);
                d.wait(
                    Watch::INSTANCES,
                    format!("standby {} to start and rejoin", standby.name),
                    expect::remaining(expect::INSTANCE_START, since, obs.now),
                );
            }
        }
        return d.outcome();
    }

    match standby_inst.state {
        InstanceState::Running if standby_member => {
            if all_offline {
                let names: Vec<String> = mds.iter().map(ToString::to_string).collect();
                let why = format!(
                    "{} {} stopped (quiesced); the standby's disk must be frozen at this point",
                    names.join(" and "),
                    if names.len() == 1 { "is" } else { "are" }
                );
                match procedure {
                    Procedure::Reconfigure => {
                        match leave_then_start(spec, obs, journal, &op, &active, &standby.name) {
                            // One request: nothing replicates to the standby once it has left, and
                            // the restart is not asked before (see the module doc).
                            Some((action, then)) => {
                                d.step(&op, &LEAVE_THEN_START, standby_subject, action, format!("{why}; {then}"));
                            }
                            None => d.step(
                                &op,
                                &StepKind::Shutdown,
                                standby_subject,
                                Action::ShutdownServer { server: standby.name.clone() },
                                why,
                            ),
                        }
                    }
                    Procedure::Vendor => d.step(
                        &op,
                        &StepKind::BackupPre,
                        standby_subject,
                        Action::Vendor { server: standby.name.clone(), call: vendor_call(VendorPhase::Pre, false) },
                        why,
                    ),
                }
            } else if let Some(md) = changing {
                d.wait(Watch::CLUSTER, format!("{md} changing state"), expect::CLUSTER_PENDING);
            } else if !started && !super::proven(journal, &op) {
                // Fail before destroy: the quiesce is the first step that changes the cluster.
                d.step(
                    &op,
                    &StepKind::Preflight,
                    None,
                    Action::Preflight {
                        request: PreflightRequest {
                            operation: Operation::Backup,
                            group: group.clone(),
                            md: md.clone(),
                            procedure,
                            pushes: Vec::new(),
                        },
                        fast_restore: None,
                    },
                    format!("before {md} is stopped on {active}, every later step must be shown possible"),
                );
            } else if let Some(next) = mds.iter().copied().find(|r| state_of(r) != ObjectState::Offline) {
                // What is online on the active now: the stop takes md's dependents down with it,
                // and exactly those are started again once the snapshot's point is fixed (the
                // file's other md resources are not among them: starting the dependents starts
                // every md they depend on).
                let online = obs
                    .cluster
                    .resources
                    .iter()
                    .filter(|(r, p)| {
                        !mds.contains(r) && p.state == ObjectState::Online && p.current.as_ref() == Some(&active)
                    })
                    .map(|(r, _)| r.clone())
                    .collect();
                let others: Vec<String> = mds.iter().filter(|r| **r != next).map(ToString::to_string).collect();
                let also = if others.is_empty() { String::new() } else { format!(" (then {})", others.join(", ")) };
                d.step(
                    &op,
                    &stop_kind(spec, next),
                    active_subject,
                    Action::StopResource { resource: next.clone(), online },
                    format!("quiesce point: flush {next} on {active} with both sides identical{also}"),
                );
            }
        }
        InstanceState::Running | InstanceState::Stopping | InstanceState::Pending => {
            // The standby has left the cluster (its CLUSTERPRO services stop before its OS does),
            // so nothing replicates to its disk any more: business can run again on the active
            // while the instance finishes stopping. The snapshot waits for `stopped`.
            let leave = journal.step(&op, &StepId::new(&op, &leave_kind(procedure), standby_subject));
            // The combined step took it out when it succeeded, or when it was cut short (a crash,
            // a failed start) and the standby is on its way down: its start is then planned alone.
            let combined = journal.step(&op, &StepId::new(&op, &LEAVE_THEN_START, standby_subject));
            let combined_left = combined.succeeded
                || (combined.last_intent.is_some() && standby_inst.state == InstanceState::Stopping && !standby_member);
            let shut_down = leave.succeeded || combined_left;
            if shut_down {
                restart_business(&mut d, spec, obs, journal, &op, &active, "the standby has left the cluster");
            }
            let since = leave.last_intent.or(combined.last_intent).map(|(_, at, _)| at);
            // NEC's pre-processing ran but the server is still up long after: its shutdown did not
            // happen (the command was cut short); `--only-shutdown` finishes it.
            if procedure == Procedure::Vendor && shut_down && standby_inst.state == InstanceState::Running {
                super::procedure::finish_cut_short(
                    &mut d,
                    &op,
                    &StepKind::BackupShutdown,
                    &standby.name,
                    vendor_call(VendorPhase::Pre, true),
                    since,
                    obs.now,
                    expect::INSTANCE_STOP,
                    Watch::INSTANCES,
                    format!("standby {} to stop", standby.name),
                );
                return d.outcome();
            }
            d.wait(
                Watch::INSTANCES,
                format!("standby {} to stop", standby.name),
                expect::remaining(expect::INSTANCE_STOP, since, obs.now),
            );
        }
        InstanceState::Stopped => {
            restart_business(&mut d, spec, obs, journal, &op, &active, "the standby is stopped");
            let step = StepId::new(&op, &StepKind::Snapshot, standby_subject);
            let sv = journal.step(&op, &step);
            let window = expect::SNAPSHOT_VISIBILITY;
            // CreateSnapshot has no idempotency token: a call that succeeded, or was interrupted,
            // may not be visible to the tag filter yet (eventual consistency). Creating again
            // within the window would make a second snapshot, so wait for it to show up.
            let recent =
                sv.last_intent.as_ref().filter(|_| sv.interrupted() || sv.succeeded).is_some_and(|(_, at, _)| {
                    obs.now.duration_since(*at) < jiff::SignedDuration::try_from(window).unwrap_or_default()
                });
            let set_step = StepId::new(&op, &StepKind::SnapshotSet, standby_subject);
            let sv_set = journal.step(&op, &set_step);
            let recent_set =
                sv_set.last_intent.as_ref().filter(|_| sv_set.interrupted() || sv_set.succeeded).is_some_and(
                    |(_, at, _)| {
                        obs.now.duration_since(*at) < jiff::SignedDuration::try_from(window).unwrap_or_default()
                    },
                );
            if set.len() > 1 {
                snapshot_set(&mut d, spec, name, &op, standby, obs, &set, &tagged, recent_set, sv_set.succeeded);
            } else if recent {
                let what = if sv.succeeded {
                    format!("snapshot {} (created) to become visible", sv.detail.as_deref().unwrap_or("?"))
                } else {
                    format!(
                        "an interrupted CreateSnapshot of {}: looking for its tags before creating again",
                        standby_vol.id
                    )
                };
                d.wait(Watch::SNAPSHOTS, what, expect::DISK_APPEAR);
            } else {
                let mut tags = backup_tags(spec, name);
                tags.insert(tag::SERVER.into(), standby.name.to_string());
                tags.insert(tag::NAME.into(), format!("{}-{name}", spec.cluster.name));
                if let Some(s) = spec.backup.as_ref().and_then(|b| schedule_of(b, name)) {
                    tags.insert(tag::SCHEDULE.into(), s.name.to_string());
                }
                // What it holds, like each snapshot of a set, so every backup says so.
                tags.insert(tag::DEVICE.into(), spec.mirror.device.to_string());
                tags.insert(tag::HOLDS.into(), holds(spec, &spec.mirror.device));
                let layout =
                    obs.disk(&standby.name, &standby_vol.id).and_then(|dk| layout_of(spec, dk)).or_else(|| {
                        obs.disk(&active, &at_device(spec, obs, active_spec)?.0.id).and_then(|dk| layout_of(spec, dk))
                    });
                if let Some(l) = layout {
                    tags.insert(tag::LAYOUT.into(), l.to_tag());
                }
                d.step(
                    &op,
                    &StepKind::Snapshot,
                    standby_subject,
                    Action::CreateSnapshot {
                        server: standby.name.clone(),
                        request: CreateSnapshot {
                            volume: standby_vol.id.clone(),
                            description: format!("mirrorctl backup {name} of {} ({})", spec.cluster.name, standby.name),
                            tags,
                        },
                    },
                    format!("no snapshot tagged backup {name} exists; the standby is stopped at the quiesce point"),
                );
            }
        }
        InstanceState::Terminated | InstanceState::ShuttingDown => d.block(
            Reason::StandbyTerminated,
            format!("standby {} ({}) is {:?}", standby.name, standby.instance, standby_inst.state),
            "rebuild the standby; mirrorctl cannot start a terminated instance",
        ),
    }
    d.outcome()
}

/// The snapshot of a backup of several volumes: one `CreateSnapshots` of the standby's volumes
/// of the set, every other data volume of the instance excluded by id, tagged with the backup's
/// tags and the set id. It has no token: a call that succeeded or was cut off is looked for by
/// its tags for [`expect::SNAPSHOT_VISIBILITY`] before it is made again; part of a set still
/// missing after that is a broken set, left for a human (never completed by a second call, which
/// would give the set two points in time).
#[allow(clippy::too_many_arguments)]
fn snapshot_set(
    d: &mut Draft,
    spec: &Spec,
    name: &BackupName,
    op: &OpId,
    standby: &crate::spec::ServerSpec,
    obs: &Observed,
    set: &[&crate::ports::cloud::Volume],
    tagged: &[&Snapshot],
    recent: bool,
    succeeded: bool,
) {
    let ids: Vec<String> = set.iter().map(|v| v.id.to_string()).collect();
    if recent {
        let what = if succeeded {
            format!("the snapshot set of {} (created) to become visible", ids.join(" + "))
        } else {
            format!("an interrupted CreateSnapshots of {}: looking for its tags before creating again", ids.join(" + "))
        };
        d.wait(Watch::SNAPSHOTS, what, expect::DISK_APPEAR);
        return;
    }
    if !tagged.is_empty() {
        let found: Vec<String> = tagged.iter().map(|s| s.id.to_string()).collect();
        d.block(
            Reason::PartialSnapshotSet,
            format!(
                "backup {name} has {} of the {} snapshots of its set ({}): its volumes {} are not all covered",
                tagged.len(),
                set.len(),
                found.join(", "),
                ids.join(" + ")
            ),
            format!(
                "delete the snapshots tagged {}={} (they are not a consistent backup), then take the backup again under a new name",
                tag::REQUEST,
                op.request_tag()
            ),
        );
        return;
    }
    let mut tags = backup_tags(spec, name);
    tags.insert(tag::SERVER.into(), standby.name.to_string());
    tags.insert(tag::SNAPSHOT_SET.into(), format!("{}/{name}", spec.cluster.name));
    tags.insert(tag::SET_SIZE.into(), set.len().to_string());
    tags.insert(tag::NAME.into(), format!("{}-{name}", spec.cluster.name));
    let members = set_members(spec, set, standby);
    let exclude = obs
        .instances
        .get(&standby.instance)
        .map(|i| i.devices.iter().map(|(_, v)| v.clone()).filter(|v| !set.iter().any(|s| &s.id == v)).collect())
        .unwrap_or_default();
    d.step(
        op,
        &StepKind::SnapshotSet,
        Some(standby.name.as_str()),
        Action::CreateSnapshotSet {
            server: standby.name.clone(),
            request: CreateSnapshotSet {
                instance: standby.instance.clone(),
                volumes: set.iter().map(|v| v.id.clone()).collect(),
                exclude,
                description: format!("mirrorctl backup {name} of {} ({})", spec.cluster.name, standby.name),
                tags,
            },
            members,
        },
        format!(
            "no snapshot tagged backup {name} exists; the standby is stopped at the quiesce point and its {} volumes are one set",
            set.len()
        ),
    );
}

/// The identity tags of each volume of a set: the device it is attached at on the standby
/// ([`tag::DEVICE`]) and what it holds there ([`tag::HOLDS`]).
fn set_members(
    spec: &Spec,
    set: &[&crate::ports::cloud::Volume],
    standby: &crate::spec::ServerSpec,
) -> Vec<(crate::ids::VolumeId, Tags)> {
    set.iter()
        .filter_map(|v| {
            let device = spec
                .mirrors()
                .flat_map(crate::spec::MirrorSpec::devices)
                .find(|dev| v.attachments.iter().any(|a| a.instance == standby.instance && &a.device == *dev))?;
            let tags = [(tag::DEVICE.to_owned(), device.to_string()), (tag::HOLDS.to_owned(), holds(spec, device))];
            Some((v.id.clone(), tags.into()))
        })
        .collect()
}

/// Once a set exists, tags each of its snapshots with what its volume holds (`CreateTags`, one
/// step per snapshot still lacking them: idempotent, so a crash before or after a call ends the
/// same). What a volume holds comes from the intent of the `CreateSnapshots` step in the journal
/// (`planned`), else from the standby's volumes now (`observed`; a set taken by a process whose
/// intent lacks it). A snapshot of a volume neither names blocks the backup: guessing its
/// identity could later restore it in the wrong place.
fn tag_members(
    d: &mut Draft,
    op: &OpId,
    name: &BackupName,
    tagged: &[&Snapshot],
    planned: Option<Action>,
    observed: &[(crate::ids::VolumeId, Tags)],
) {
    let planned = match planned {
        Some(Action::CreateSnapshotSet { members, .. }) if !members.is_empty() => members,
        _ => observed.to_vec(),
    };
    for s in tagged {
        let want = s.volume.as_ref().and_then(|v| planned.iter().find(|(id, _)| id == v)).map(|(_, t)| t);
        let Some(want) = want else {
            d.block(
                Reason::SnapshotSetMemberUnknown,
                format!(
                    "snapshot {} of backup {name} was taken from {}, which is not a volume of the set",
                    s.id,
                    s.volume.as_ref().map_or_else(|| "an unknown volume".to_owned(), ToString::to_string)
                ),
                format!(
                    "delete the snapshots tagged {}={} (the set cannot be told apart), then take the backup again under a new name",
                    tag::REQUEST,
                    op.request_tag()
                ),
            );
            return;
        };
        if want.iter().any(|(k, v)| s.tags.get(k) != Some(v)) {
            d.step(
                op,
                &StepKind::TagMember,
                Some(s.id.as_str()),
                Action::Tag { resource: s.id.to_string(), tags: want.clone() },
                format!(
                    "snapshot {} of set {name} must say what its volume holds: CreateSnapshots tagged every snapshot alike",
                    s.id
                ),
            );
        }
    }
}

/// The step that takes the standby out of the cluster and shuts it down, per procedure.
fn leave_kind(procedure: Procedure) -> StepKind {
    match procedure {
        Procedure::Reconfigure => StepKind::Shutdown,
        Procedure::Vendor => StepKind::BackupPre,
    }
}

fn vendor_call(phase: VendorPhase, only: bool) -> VendorCall {
    VendorCall { op: VendorOp::Backup, phase, skip_copy: false, only }
}

/// The standby is running again after the snapshot but, its cluster service disabled by the
/// pre-processing, not in the cluster: NEC's post-processing puts it back (and reboots it). A post
/// that ran and whose reboot has not brought the server back long after is finished with
/// `--only-reboot`.
fn vendor_post(d: &mut Draft, journal: &JournalView, op: &OpId, standby: &ServerName, now: jiff::Timestamp) {
    let subject = Some(standby.as_str());
    let post = journal.step(op, &StepId::new(op, &StepKind::BackupPost, subject));
    if !post.succeeded {
        d.step(
            op,
            &StepKind::BackupPost,
            subject,
            Action::Vendor { server: standby.clone(), call: vendor_call(VendorPhase::Post, false) },
            format!("the snapshot is taken and {standby} is up: its cluster service is enabled again and it rejoins"),
        );
        return;
    }
    let reboot = journal.step(op, &StepId::new(op, &StepKind::BackupReboot, subject));
    let last = reboot.last_intent.as_ref().or(post.last_intent.as_ref()).map(|(_, at, _)| *at);
    super::procedure::finish_cut_short(
        d,
        op,
        &StepKind::BackupReboot,
        standby,
        vendor_call(VendorPhase::Post, true),
        last,
        now,
        expect::REBOOT,
        Watch::CLUSTER,
        format!("{standby} to reboot and rejoin the cluster"),
    );
}

/// Runbook step 3: md and what the quiesce stopped with it back online on the active server.
/// Returns whether all of it is online again (the backup completes only then).
///
/// A real failover group also holds resources that do not depend on md (a virtual IP): they stay
/// online through the quiesce, so the group keeps reading "online" and starting the group would
/// do nothing. So: a group that is wholly offline is started as a group; otherwise each resource
/// `stop-md` recorded as online that is not online now is started, one per pass, and the first of
/// them brings md up with it (`clprsc -s … -f` also starts what it depends on, and the quiesce took
/// down exactly what depends on md): business is back after one resource start, not two. md is
/// started on its own only when nothing else went down with it.
fn restart_business(
    d: &mut Draft,
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    op: &OpId,
    active: &ServerName,
    because: &str,
) -> bool {
    match business(spec, obs, journal, op, active, because) {
        Business::Changing => {
            let group = &spec.mirror.group;
            d.wait(Watch::CLUSTER, format!("resources of {group} changing state on {active}"), expect::CLUSTER_PENDING);
            false
        }
        Business::Start { kind, action, why } => {
            d.step(op, &kind, Some(active.as_str()), *action, why);
            false
        }
        Business::Back => true,
    }
}

/// Where business stands on the active server, and the start that brings it back (see
/// [`restart_business`]).
enum Business {
    /// md or a resource the quiesce stopped is changing state: wait.
    Changing,
    /// This start is next: its step kind, action (`StartGroup` or `StartResource`) and reason.
    Start { kind: StepKind, action: Box<Action>, why: String },
    /// Everything the quiesce stopped is online again.
    Back,
}

fn business(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    op: &OpId,
    active: &ServerName,
    because: &str,
) -> Business {
    let group = &spec.mirror.group;
    let mds: Vec<&crate::ids::ResourceName> = spec.mirrors().map(|m| &m.resource).collect();
    let subject = Some(active.as_str());
    let mut recorded: Vec<crate::ids::ResourceName> = Vec::new();
    for md in &mds {
        if let Some(Action::StopResource { online, .. }) =
            journal.step(op, &StepId::new(op, &stop_kind(spec, md), subject)).last_action
        {
            for r in online {
                if !recorded.contains(&r) && !mds.contains(&&r) {
                    recorded.push(r);
                }
            }
        }
    }
    let state = |r: &crate::ids::ResourceName| obs.cluster.resources.get(r);
    let on_active = |r: &crate::ids::ResourceName| {
        state(r).is_some_and(|p| p.state == ObjectState::Online && p.current.as_ref() == Some(active))
    };
    let pending = mds
        .iter()
        .copied()
        .chain(&recorded)
        .filter_map(state)
        .find(|p| matches!(p.state, ObjectState::OnlinePending | ObjectState::OfflinePending));
    if pending.is_some() {
        return Business::Changing;
    }
    let names: Vec<String> = mds.iter().map(ToString::to_string).collect();
    let md = names.join(" and ");
    let group_state = obs.cluster.groups.get(group).map_or(ObjectState::Offline, |p| p.state);
    let start = |kind: StepKind, action: Action, why: String| Business::Start { kind, action: Box::new(action), why };
    if let Some(down) = mds.iter().copied().find(|r| !on_active(r)) {
        return if group_state == ObjectState::Offline {
            start(
                StepKind::StartGroup,
                Action::StartGroup { group: group.clone(), server: active.clone() },
                format!("{because}; business can run again on {active}"),
            )
        } else if let Some(r) = recorded.iter().find(|r| state(r).is_some() && !on_active(r)) {
            start(
                StepKind::Restart(r.clone()),
                Action::StartResource { resource: r.clone(), server: active.clone() },
                format!(
                    "{because}; {r} was online on {active} before the quiesce and starts with {md}, which it \
                     depends on, in one start ({group} is {group_state:?}: other resources kept it online)"
                ),
            )
        } else {
            start(
                start_kind(spec, down),
                Action::StartResource { resource: down.clone(), server: active.clone() },
                format!(
                    "{because}; nothing else went down with {down} ({group} is {group_state:?}: other resources \
                     kept it online)"
                ),
            )
        };
    }
    if let Some(r) = recorded.iter().find(|r| state(r).is_some() && !on_active(r)) {
        return start(
            StepKind::Restart(r.clone()),
            Action::StartResource { resource: r.clone(), server: active.clone() },
            format!("{r} was online on {active} before the quiesce and {md} is back"),
        );
    }
    Business::Back
}

/// The step that takes the standby out and restarts business in one request
/// ([`Action::LeaveThenStart`]).
const LEAVE_THEN_START: StepKind = StepKind::ShutdownRestart;

/// The combined step for the quiesced backup, when the port has it and business needs a start:
/// `clpdown` of the standby and, once it has left, the start [`business`] would plan next.
fn leave_then_start(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    op: &OpId,
    active: &ServerName,
    standby: &ServerName,
) -> Option<(Action, String)> {
    if !obs.leave_then_start {
        return None;
    }
    let Business::Start { action, why, .. } = business(spec, obs, journal, op, active, "once it has left") else {
        return None;
    };
    let start = match *action {
        Action::StartGroup { group, server } => Start::Group { group, server },
        Action::StartResource { resource, server } => Start::Resource { resource, server },
        _ => return None,
    };
    Some((Action::LeaveThenStart { server: standby.clone(), start }, why))
}

/// The step kind that stops `md` for the quiesce: `stop-md` for the file's first md (the
/// runbook's shape), `stop-md-<md>` for the others.
fn stop_kind(spec: &Spec, md: &crate::ids::ResourceName) -> StepKind {
    StepKind::StopMd((*md != spec.mirror.resource).then(|| md.clone()))
}

/// The step kind that starts `md` alone after the snapshot: `start-md`, or `start-md-<md>` for an
/// md after the file's first.
fn start_kind(spec: &Spec, md: &crate::ids::ResourceName) -> StepKind {
    StepKind::StartMd((*md != spec.mirror.resource).then(|| md.clone()))
}

/// Retention, per group: each schedule with its own retention keeps its backups (those tagged
/// with its name) by its `keep` and `keep_days`; every other completed backup snapshot of the
/// cluster (on-demand ones, the single `schedule = "…"` form's, those of a schedule no longer in
/// the file) is kept by `backup.keep`. A group's limits never count another group's snapshots.
///
/// Never deleted, whatever the limits: a snapshot named in `take` or in `[restore]` (by id or by
/// its backup's name; neither is counted), the newest completed backup of the cluster, and one a copy is still being made from.
pub fn retention(spec: &Spec, b: &BackupSpec, obs: &Observed) -> (Outcome, Vec<String>) {
    let op = OpId::Retention;
    let mut d = Draft::default();
    let tags: Tags =
        [(tag::CLUSTER.to_owned(), spec.cluster.name.to_string()), (tag::ROLE.to_owned(), "backup".to_owned())].into();
    let mut completed: Vec<&Snapshot> = Vec::new();
    for s in obs.snapshots_tagged(&tags).into_iter().filter(|s| s.state == SnapshotState::Completed) {
        if lacks_identity(s) {
            d.notes.push(format!(
                "{}: not counted as a completed backup: it is a snapshot of a set without {} and {} (being tagged, or taken by an older mirrorctl)",
                s.id,
                tag::HOLDS,
                tag::DEVICE
            ));
        } else {
            completed.push(s);
        }
    }
    completed.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
    let newest = completed.first().map(|s| backup_key(s));
    let own: Vec<&Snapshot> = completed
        .into_iter()
        .filter(|s| !b.take.iter().any(|t| s.tags.get(tag::REQUEST).map(String::as_str) == Some(t.as_str())))
        .filter(|s| spec.restore.as_ref().is_none_or(|r| r.snapshot != s.id))
        .filter(|s| {
            spec.restore_backup
                .as_ref()
                .is_none_or(|r| s.tags.get(tag::REQUEST).map(String::as_str) != Some(r.backup.as_str()))
        })
        .collect();
    // A source whose copy is still being made stays until the copy is done; while a copy region
    // could not be read, no source is deleted (its copy there may be pending).
    let unknown = b.copy_to.iter().find(|t| !obs.copies.contains_key(&t.region)).map(|t| &t.region);
    let copying = |s: &Snapshot| {
        unknown.is_some()
            || obs.copies.values().flatten().any(|c| {
                c.state == SnapshotState::Pending
                    && c.tags.get(tag::SOURCE_SNAPSHOT).map(String::as_str) == Some(s.id.as_str())
            })
    };
    let group_of = |s: &Snapshot| {
        let by = s.tags.get(tag::SCHEDULE)?;
        b.schedules.iter().find(|g| g.own_retention && g.name.as_str() == by)
    };
    let groups = b.schedules.iter().filter(|g| g.own_retention).map(Some).chain([None]);
    for group in groups {
        let (keep, keep_days, what) = match group {
            Some(g) => (g.keep, g.keep_days, format!("schedule {}", g.name)),
            None => (Some(b.keep), None, "backup".to_owned()),
        };
        let members = own.iter().filter(|s| group_of(s).map(|g| &g.name) == group.map(|g| &g.name));
        // `keep` counts backups, not snapshots: the snapshots of one set (one backup name) share
        // its position, so a set is kept or deleted whole.
        let mut backups: Vec<&str> = Vec::new();
        for s in members {
            let key = backup_key(s);
            if !backups.contains(&key) {
                backups.push(key);
            }
            let i = backups.len() - 1;
            let age = obs.now.duration_since(s.started);
            let over_count = keep.and_then(|k| usize::try_from(k).ok()).filter(|k| i >= *k);
            let over_age = keep_days.filter(|days| age > jiff::SignedDuration::from_hours(i64::from(*days) * 24));
            let why = match (over_count, over_age) {
                (Some(k), _) => format!("{what}: keep = {k} and {} ({}) is older than the newest {k}", s.id, s.started),
                (None, Some(days)) => {
                    format!(
                        "{what}: keep_days = {days} and {} was started {:.0} ago",
                        s.id,
                        age.round(jiff::Unit::Hour).unwrap_or(age)
                    )
                }
                (None, None) => continue,
            };
            if newest.is_some_and(|n| n == key) {
                d.notes.push(format!("{}: kept as the newest completed backup of the cluster ({why})", s.id));
                continue;
            }
            if own.iter().any(|o| backup_key(o) == key && copying(o)) {
                let region = unknown.map_or_else(String::new, |r| format!(" ({r} did not answer)"));
                d.notes.push(format!("{}: kept while a copy of it may be being made{region} ({why})", s.id));
                continue;
            }
            d.step(
                &op,
                &StepKind::DeleteSnapshot,
                Some(s.id.as_str()),
                Action::DeleteSnapshot { snapshot: s.id.clone() },
                why,
            );
        }
    }
    d.outcome()
}

/// The backup a snapshot belongs to: its name (the snapshots of a set share it), else its id.
fn backup_key(s: &Snapshot) -> &str {
    s.tags.get(tag::REQUEST).map_or(s.id.as_str(), String::as_str)
}

/// Copies for disaster recovery (`backup.copy_to`), per destination region: the newest `keep`
/// completed backups of the cluster each get one copy there (`CopySnapshot`, tagged with the
/// cluster, the backup's name, its source snapshot and region, in the call); completed copies
/// beyond the newest `keep` there are deleted. A copy is found again by its source-snapshot tag;
/// the API has no token, so a copy asked for within [`expect::SNAPSHOT_VISIBILITY`] (or cut off by
/// a crash) is waited for rather than asked for again. Steps of the `retention` pseudo-operation,
/// journaled like its deletions.
pub fn copies(spec: &Spec, b: &BackupSpec, obs: &Observed, journal: &JournalView) -> (Outcome, Vec<String>) {
    let op = OpId::Retention;
    let mut d = Draft::default();
    let tags: Tags =
        [(tag::CLUSTER.to_owned(), spec.cluster.name.to_string()), (tag::ROLE.to_owned(), "backup".to_owned())].into();
    let mut own: Vec<&Snapshot> = obs
        .snapshots_tagged(&tags)
        .into_iter()
        .filter(|s| s.state == SnapshotState::Completed && !lacks_identity(s))
        .collect();
    own.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
    let window = jiff::SignedDuration::try_from(expect::SNAPSHOT_VISIBILITY).unwrap_or_default();
    for t in &b.copy_to {
        let region = &t.region;
        let Some(seen) = obs.copies.get(region) else {
            d.wait(
                Watch::SNAPSHOTS,
                format!("the snapshots in {region} to be readable: copying there without knowing its copies could copy twice"),
                expect::SNAPSHOT_VISIBILITY,
            );
            continue;
        };
        let there: Vec<&Snapshot> =
            seen.iter().filter(|c| c.tags.get(tag::ROLE).map(String::as_str) == Some("copy")).collect();
        let kind = StepKind::Copy(region.clone());
        for src in own.iter().take(usize::try_from(t.keep).unwrap_or(usize::MAX)) {
            let source_of =
                |c: &&Snapshot| c.tags.get(tag::SOURCE_SNAPSHOT).map(String::as_str) == Some(src.id.as_str());
            if there.iter().any(|c| source_of(c) && c.state != SnapshotState::Error) {
                continue;
            }
            let sv = journal.step(&op, &StepId::new(&op, &kind, Some(src.id.as_str())));
            let recent = sv
                .last_intent
                .as_ref()
                .filter(|_| sv.interrupted() || sv.succeeded)
                .is_some_and(|(_, at, _)| obs.now.duration_since(*at) < window);
            if recent {
                d.wait(
                    Watch::SNAPSHOTS,
                    format!("the copy of {} to {region} to become visible before copying again", src.id),
                    expect::DISK_APPEAR,
                );
                continue;
            }
            let name = src.tags.get(tag::REQUEST).cloned().unwrap_or_default();
            let mut copy_tags: Tags = [
                (tag::CLUSTER.to_owned(), spec.cluster.name.to_string()),
                (tag::ROLE.to_owned(), "copy".to_owned()),
                (tag::REQUEST.to_owned(), name.clone()),
                (tag::SOURCE_SNAPSHOT.to_owned(), src.id.to_string()),
                (tag::SOURCE_REGION.to_owned(), spec.cluster.region.to_string()),
                (tag::NAME.to_owned(), format!("{}-{name}", spec.cluster.name)),
            ]
            .into();
            for k in [tag::SCHEDULE, tag::LAYOUT] {
                if let Some(v) = src.tags.get(k) {
                    copy_tags.insert(k.to_owned(), v.clone());
                }
            }
            d.step(
                &op,
                &kind,
                Some(src.id.as_str()),
                Action::CopySnapshot {
                    region: region.clone(),
                    request: CopySnapshot {
                        source_region: spec.cluster.region.clone(),
                        source: src.id.clone(),
                        description: format!("mirrorctl copy of backup {name} of {} ({})", spec.cluster.name, src.id),
                        kms_key: t.kms_key.clone(),
                        tags: copy_tags,
                    },
                },
                format!("backup {name} ({}) has no copy in {region} (copy_to keeps the newest {})", src.id, t.keep),
            );
        }
        let mut done: Vec<&Snapshot> = there.into_iter().filter(|c| c.state == SnapshotState::Completed).collect();
        done.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
        for c in done.iter().skip(usize::try_from(t.keep).unwrap_or(usize::MAX)) {
            d.step(
                &op,
                &StepKind::DeleteCopy(region.clone()),
                Some(c.id.as_str()),
                Action::DeleteCopy { region: region.clone(), snapshot: c.id.clone() },
                format!(
                    "copy_to {region} keep = {}: {} ({}) is older than the newest {}",
                    t.keep, c.id, c.started, t.keep
                ),
            );
        }
    }
    d.outcome()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::ids::SnapshotId;
    use crate::spec::Schedule;

    fn at(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn sched() -> ScheduleSpec {
        ScheduleSpec::single(Schedule { hour: 2, minute: 0, time_zone: "Asia/Tokyo".into() }).unwrap()
    }

    fn every(name: &str, every: Every) -> ScheduleSpec {
        ScheduleSpec {
            name: BackupName::parse(name).unwrap(),
            every,
            own_retention: true,
            keep: Some(7),
            keep_days: None,
        }
    }

    fn daily(h: u8, m: u8, zone: &str) -> Schedule {
        Schedule { hour: h, minute: m, time_zone: zone.into() }
    }

    #[test]
    fn the_next_slot_is_today_until_it_passes_then_tomorrow() {
        let s = sched();
        let before: jiff::Timestamp = "2026-11-24T16:00:00Z".parse().unwrap();
        let slot = s.every.next_slot(before).unwrap();
        assert_eq!(slot, "2026-11-24T17:00:00Z".parse().unwrap(), "02:00 in Tokyo");
        // Exactly at the slot, the next one is a day later; the due one is the slot itself.
        let next = s.every.next_slot(slot).unwrap();
        assert_eq!(next.duration_since(slot), jiff::SignedDuration::from_hours(24));
        assert!(scheduled_due(&s, slot).is_some());
        assert_eq!(s.every.next_slot(slot - jiff::SignedDuration::from_secs(1)), Some(slot));
    }

    #[test]
    fn schedule_names_the_latest_slot_in_its_zone() {
        // 2026-11-24 02:30 JST = 2026-11-23T17:30Z
        let now: jiff::Timestamp = "2026-11-23T17:30:00Z".parse().unwrap();
        assert_eq!(scheduled_due(&sched(), now).unwrap().as_str(), "daily-20261124");
        // 01:59 JST on the 24th: the slot is the 23rd's, 24 h ago, beyond catch-up.
        let now: jiff::Timestamp = "2026-11-23T16:59:00Z".parse().unwrap();
        assert_eq!(scheduled_due(&sched(), now), None);
        // 07:59 JST: still within 6 h.
        let now: jiff::Timestamp = "2026-11-23T22:59:00Z".parse().unwrap();
        assert_eq!(scheduled_due(&sched(), now).unwrap().as_str(), "daily-20261124");
        let now: jiff::Timestamp = "2026-11-23T23:01:00Z".parse().unwrap();
        assert_eq!(scheduled_due(&sched(), now), None);
    }

    /// Each kind: (schedule, now, the backup due then, the next slot after then).
    #[test]
    fn due_and_next_per_kind() {
        let cases: [(ScheduleSpec, &str, Option<&str>, &str); 10] = [
            (
                every("hourly", Every::Hours(1)),
                "2026-11-24T13:40:00Z",
                Some("hourly-2026112413"),
                "2026-11-24T14:00:00Z",
            ),
            (
                every("hourly", Every::Hours(1)),
                "2026-11-24T14:00:00Z",
                Some("hourly-2026112414"),
                "2026-11-24T15:00:00Z",
            ),
            (
                every("every-6h", Every::Hours(6)),
                "2026-11-24T13:40:00Z",
                Some("every-6h-2026112412"),
                "2026-11-24T18:00:00Z",
            ),
            (
                every("every-24h", Every::Hours(24)),
                "2026-11-24T05:59:00Z",
                Some("every-24h-2026112400"),
                "2026-11-25T00:00:00Z",
            ),
            (every("every-24h", Every::Hours(24)), "2026-11-24T06:01:00Z", None, "2026-11-25T00:00:00Z"),
            // Sunday 2026-11-29 03:00 JST = Saturday 18:00Z.
            (
                every("weekly", Every::Weekly { day: 0, at: daily(3, 0, "Asia/Tokyo") }),
                "2026-11-28T19:00:00Z",
                Some("weekly-20261129"),
                "2026-12-05T18:00:00Z",
            ),
            // Seven hours after the weekly slot: beyond the catch-up window, nothing due.
            (
                every("weekly", Every::Weekly { day: 0, at: daily(3, 0, "Asia/Tokyo") }),
                "2026-11-29T01:00:01Z",
                None,
                "2026-12-05T18:00:00Z",
            ),
            (
                every("cron", Every::Cron { expr: "0 */4 * * *".into(), time_zone: "UTC".into() }),
                "2026-11-24T09:15:00Z",
                Some("cron-202611240800"),
                "2026-11-24T12:00:00Z",
            ),
            // Cron in a zone: 30 1 * * mon-fri in Tokyo; Tuesday 01:30 JST = Monday 16:30Z.
            (
                every("work", Every::Cron { expr: "30 1 * * mon-fri".into(), time_zone: "Asia/Tokyo".into() }),
                "2026-11-23T16:45:00Z",
                Some("work-202611240130"),
                "2026-11-24T16:30:00Z",
            ),
            // Friday 01:30 JST the slot; Saturday 01:29 JST (23h59 later) nothing due; the next
            // is Monday 01:30 JST (Sunday 16:30Z).
            (
                every("work", Every::Cron { expr: "30 1 * * mon-fri".into(), time_zone: "Asia/Tokyo".into() }),
                "2026-11-27T16:29:00Z",
                None,
                "2026-11-29T16:30:00Z",
            ),
        ];
        for (s, now, due, next) in cases {
            let now = at(now);
            assert_eq!(scheduled_due(&s, now).as_ref().map(BackupName::as_str), due, "{} at {now}", s.name);
            assert_eq!(s.every.next_slot(now), Some(at(next)), "{} at {now}", s.name);
        }
    }

    /// Daylight saving time: a local time the spring change skips is taken at the first instant
    /// after the gap (03:00 EDT for 02:30); one the autumn change repeats is taken once, at its
    /// first occurrence. Each day has exactly one slot.
    #[test]
    fn a_daily_slot_across_daylight_saving_changes_happens_once_a_day() {
        let spring = every("daily", Every::Daily(daily(2, 30, "America/New_York")));
        let first = spring.every.next_slot(at("2026-03-07T12:00:00Z")).unwrap();
        assert_eq!(first, at("2026-03-08T07:00:00Z"));
        assert_eq!(spring.every.next_slot(first), Some(at("2026-03-09T06:30:00Z")));
        assert_eq!(scheduled_due(&spring, first).unwrap().as_str(), "daily-20260308");
        let autumn = every("daily", Every::Daily(daily(1, 30, "America/New_York")));
        let first = autumn.every.next_slot(at("2026-10-31T12:00:00Z")).unwrap();
        assert_eq!(first, at("2026-11-01T05:30:00Z"), "01:30 EDT, the first of the two");
        assert_eq!(autumn.every.next_slot(first), Some(at("2026-11-02T06:30:00Z")));
    }

    #[test]
    fn the_daemon_wakes_at_the_earliest_slot_of_all_schedules_and_names_map_back() {
        let b = BackupSpec {
            schedules: vec![every("daily", Every::Daily(daily(2, 0, "Asia/Tokyo"))), every("hourly", Every::Hours(1))],
            keep: 7,
            take: vec![BackupName::parse("hourly-2026112400").unwrap()],
            copy_to: Vec::new(),
        };
        assert_eq!(b.next_wake(at("2026-11-24T16:20:00Z")), Some(at("2026-11-24T17:00:00Z")));
        assert_eq!(b.next_wake(at("2026-11-24T13:20:00Z")), Some(at("2026-11-24T14:00:00Z")));
        // At 02:00 JST (17:00Z) both are due: the daily one first, in file order.
        let now = at("2026-11-24T17:00:00Z");
        let due: Vec<_> = b.schedules.iter().filter_map(|s| scheduled_due(s, now)).collect();
        assert_eq!(due.iter().map(BackupName::as_str).collect::<Vec<_>>(), ["daily-20261125", "hourly-2026112417"]);
        assert_eq!(schedule_of(&b, &due[1]).map(|s| s.name.as_str()), Some("hourly"));
        assert_eq!(schedule_of(&b, &due[0]).map(|s| s.name.as_str()), Some("daily"));
        // A name listed in `take` is on-demand even when it looks like a schedule's.
        assert_eq!(schedule_of(&b, &b.take[0]), None);
        assert_eq!(schedule_of(&b, &BackupName::parse("hourly-x").unwrap()), None);
        assert!(wanted_now(&b, &due[1], now) && !wanted_now(&b, &due[1], at("2026-11-24T18:00:00Z")));
    }

    const FILE: &str = include_str!("../../desired-state/prod-db.toml");

    fn spec_with(backup: &str, restore: Option<&str>) -> Spec {
        let head = FILE.split("[backup]").next().unwrap();
        let restore = restore.map(|snap| format!("[restore]\nsnapshot = \"{snap}\"\nrequest = \"r1\"\n"));
        let text = format!("{head}[backup]\n{backup}\n{}", restore.unwrap_or_default());
        crate::spec::load_str(std::path::Path::new("desired-state/prod-db.toml"), &text).unwrap()
    }

    /// A completed backup snapshot `n` (hex digit), started `hours_ago` before `now`.
    fn snap(n: u32, name: &str, schedule: Option<&str>, hours_ago: i64, now: jiff::Timestamp) -> Snapshot {
        let mut tags: Tags = [
            (tag::CLUSTER.to_owned(), "prod-db".to_owned()),
            (tag::ROLE.to_owned(), "backup".to_owned()),
            (tag::REQUEST.to_owned(), name.to_owned()),
        ]
        .into();
        if let Some(s) = schedule {
            tags.insert(tag::SCHEDULE.to_owned(), s.to_owned());
        }
        Snapshot {
            id: SnapshotId::parse(&format!("snap-{n:017x}")).unwrap(),
            volume: None,
            size_gib: 20,
            state: SnapshotState::Completed,
            progress: 100,
            started: now - jiff::SignedDuration::from_hours(hours_ago),
            tags,
        }
    }

    fn observed(now: jiff::Timestamp, snapshots: Vec<Snapshot>) -> Observed {
        Observed {
            now,
            instances: BTreeMap::new(),
            shutdown: BTreeMap::new(),
            volumes: Vec::new(),
            snapshots,
            cluster: crate::ports::cluster::ClusterStatus::default(),
            config: crate::ports::cluster::ClusterConfig::default(),
            mirror: None,
            other_mirrors: BTreeMap::default(),
            disks: BTreeMap::new(),
            cluster_reachable: true,
            leave_then_start: false,
            initialization: BTreeMap::new(),
            fast_restores: Vec::new(),
            copies: BTreeMap::new(),
        }
    }

    /// The snapshots retention deletes (hex numbers), in order.
    fn deleted(spec: &Spec, obs: &Observed) -> Vec<u32> {
        let (outcome, _) = retention(spec, spec.backup.as_ref().unwrap(), obs);
        match outcome {
            Outcome::Converged => Vec::new(),
            Outcome::Steps { steps } => steps
                .iter()
                .map(|s| match &s.action {
                    Action::DeleteSnapshot { snapshot } => {
                        u32::from_str_radix(snapshot.as_str().trim_start_matches("snap-"), 16).unwrap()
                    }
                    other => panic!("{other:?}"),
                })
                .collect(),
            other => panic!("{other:?}"),
        }
    }

    const TWO: &str = r#"keep = 2
[[backup.schedule]]
every = "hourly"
keep = 3
[[backup.schedule]]
name = "weekly-long"
every = "weekly sun 03:00 Asia/Tokyo"
keep_days = 30
"#;

    #[test]
    fn retention_is_per_schedule_by_count_and_by_age() {
        let now = at("2026-11-24T12:00:00Z");
        let spec = spec_with(TWO, None);
        let mut snaps = Vec::new();
        // Five hourly backups, 1–5 h old: keep = 3 deletes the two oldest (0x14, 0x15).
        for h in 1..=5 {
            snaps.push(snap(0x10 + u32::try_from(h).unwrap(), &format!("hourly-h{h}"), Some("hourly"), h, now));
        }
        // Weekly backups 7, 21, 35, 49 days old: keep_days = 30 deletes 35 and 49 (0x23, 0x24),
        // however few they are; hourly ones never count against them.
        for (i, days) in [7, 21, 35, 49].into_iter().enumerate() {
            snaps.push(snap(
                0x21 + u32::try_from(i).unwrap(),
                &format!("weekly-{i}"),
                Some("weekly-long"),
                days * 24,
                now,
            ));
        }
        // On-demand backups (no schedule tag), and one of a schedule no longer in the file: both
        // kept by backup.keep = 2 together, so the oldest of the three goes.
        snaps.push(snap(0x31, "before-upgrade", None, 30, now));
        snaps.push(snap(0x32, "gone-2026112400", Some("gone"), 40, now));
        snaps.push(snap(0x33, "older-manual", None, 50, now));
        let obs = observed(now, snaps);
        assert_eq!(deleted(&spec, &obs), [0x14, 0x15, 0x23, 0x24, 0x33]);
    }

    /// A set whose snapshots do not say what they hold is not a completed backup: it is neither
    /// the newest completed one (which would let the older, usable backup go) nor counted.
    #[test]
    fn a_set_without_identity_tags_is_not_counted_as_completed() {
        let now = at("2026-11-24T12:00:00Z");
        let spec = spec_with("keep = 1", None);
        let usable = snap(0x51, "older", None, 48, now);
        let mut set: Vec<Snapshot> = (0..2).map(|i| snap(0x52 + i, "newer", None, 1, now)).collect();
        for s in &mut set {
            s.tags.insert(tag::SNAPSHOT_SET.into(), "prod-db/newer".into());
            s.tags.insert(tag::SET_SIZE.into(), "2".into());
        }
        let mut all = vec![usable.clone()];
        all.extend(set.clone());
        assert_eq!(
            deleted(&spec, &observed(now, all)),
            Vec::<u32>::new(),
            "the untagged set does not push out the usable one"
        );
        // Once tagged, the set is the newest completed backup and keep = 1 lets the older one go.
        for (i, s) in set.iter_mut().enumerate() {
            s.tags.insert(tag::HOLDS.into(), if i == 0 { "md:data" } else { "md:cluster" }.into());
            s.tags.insert(tag::DEVICE.into(), format!("/dev/sd{}", ['x', 'y'][i]));
        }
        let mut all = vec![usable];
        all.extend(set);
        assert_eq!(deleted(&spec, &observed(now, all)), [0x51]);
    }

    #[test]
    fn retention_never_deletes_take_restore_or_the_newest() {
        let now = at("2026-11-24T12:00:00Z");
        // Only weekly backups, every one older than keep_days: the newest of the cluster stays.
        let only_old: Vec<Snapshot> = (0..3)
            .map(|i| snap(0x41 + i, &format!("weekly-{i}"), Some("weekly-long"), 24 * (40 + i64::from(i)), now))
            .collect();
        let spec = spec_with(TWO, None);
        assert_eq!(deleted(&spec, &observed(now, only_old.clone())), [0x42, 0x43]);
        // The one named in [restore] and one named in `take` are not deleted and not counted.
        let restore = only_old[2].id.to_string();
        let pinned = format!("take = [\"weekly-1\"]\n{TWO}");
        let spec = spec_with(&pinned, Some(&restore));
        assert_eq!(deleted(&spec, &observed(now, only_old.clone())), Vec::<u32>::new());
        // Hourly: four backups, the take-pinned one is not counted against keep = 3.
        let hourly: Vec<Snapshot> =
            (1..=4).map(|h| snap(0x50 + h, &format!("hourly-{h}"), Some("hourly"), i64::from(h), now)).collect();
        let spec = spec_with(&format!("take = [\"hourly-1\"]\n{TWO}"), None);
        assert_eq!(deleted(&spec, &observed(now, hourly.clone())), Vec::<u32>::new());
        let spec = spec_with(TWO, None);
        assert_eq!(deleted(&spec, &observed(now, hourly)), [0x54]);
    }

    #[test]
    fn retention_never_deletes_the_backup_a_restore_names() {
        let now = at("2026-11-24T12:00:00Z");
        let only_old: Vec<Snapshot> = (0..3)
            .map(|i| snap(0x41 + i, &format!("weekly-{i}"), Some("weekly-long"), 24 * (40 + i64::from(i)), now))
            .collect();
        let mut spec = spec_with(TWO, None);
        spec.restore_backup = Some(crate::spec::BackupRestoreSpec {
            backup: BackupName::parse("weekly-2").unwrap(),
            request: crate::ids::RequestName::parse("r1").unwrap(),
            verify_failover: false,
        });
        assert_eq!(deleted(&spec, &observed(now, only_old)), [0x42], "weekly-2 (0x43) is the restore's");
    }

    #[test]
    fn a_source_whose_copy_is_pending_or_unknown_is_kept_and_each_backup_is_copied_once() {
        let now = at("2026-11-24T12:00:00Z");
        let spec = spec_with("keep = 1\ncopy_to = [{ region = \"us-west-2\", keep = 2 }]", None);
        let old = snap(0x71, "b1", None, 30, now);
        let new = snap(0x72, "b2", None, 10, now);
        let west = crate::ids::Region::parse("us-west-2").unwrap();
        let mut copy = snap(0x81, "b1", None, 1, now);
        copy.tags.insert(tag::ROLE.into(), "copy".into());
        copy.tags.insert(tag::SOURCE_SNAPSHOT.into(), old.id.to_string());
        copy.state = SnapshotState::Pending;
        let mut obs = observed(now, vec![old.clone(), new.clone()]);
        // us-west-2 did not answer: nothing is deleted and nothing copied on a guess.
        assert_eq!(deleted(&spec, &obs), Vec::<u32>::new());
        let b = spec.backup.as_ref().unwrap();
        assert!(matches!(copies(&spec, b, &obs, &JournalView::default()).0, Outcome::Wait(_)));
        obs.copies.insert(west.clone(), vec![copy.clone()]);
        // keep = 1 would delete b1, but its copy is still being made.
        assert_eq!(deleted(&spec, &obs), Vec::<u32>::new());
        // Only b2 lacks a copy: one CopySnapshot, in us-west-2, of b2, tagged in the call.
        let Outcome::Steps { steps } = copies(&spec, b, &obs, &JournalView::default()).0 else { panic!() };
        assert_eq!(steps.len(), 1);
        let Action::CopySnapshot { region, request } = &steps[0].action else { panic!("{:?}", steps[0].action) };
        assert_eq!((region, &request.source), (&west, &new.id));
        assert_eq!(request.tags.get(tag::SOURCE_SNAPSHOT), Some(&new.id.to_string()));
        assert_eq!(request.tags.get(tag::ROLE).map(String::as_str), Some("copy"));
        assert_eq!(steps[0].id.0, format!("retention/copy-us-west-2@{}", new.id));
        // Once the copy is done, b1 goes at the source.
        copy.state = SnapshotState::Completed;
        obs.copies.insert(west, vec![copy]);
        assert_eq!(deleted(&spec, &obs), [0x71]);
    }

    #[test]
    fn the_single_schedule_form_shares_backup_keep_with_on_demand_backups() {
        let now = at("2026-11-24T12:00:00Z");
        let spec = spec_with("schedule = \"daily 02:00 Asia/Tokyo\"\nkeep = 2", None);
        // A backup taken by the single form is tagged schedule "daily" but has no retention of
        // its own: it is counted with the on-demand ones, as before schedules had names.
        let snaps = vec![
            snap(0x61, "daily-20261124", Some("daily"), 10, now),
            snap(0x62, "manual", None, 20, now),
            snap(0x63, "daily-20261123", None, 34, now),
        ];
        assert_eq!(deleted(&spec, &observed(now, snaps)), [0x63]);
    }
}
