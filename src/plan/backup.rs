//! Backup planning and retention, in the runbook's order with one improvement: the snapshot and
//! the restart of business run together once the standby is stopped, and the standby is started
//! again as soon as `CreateSnapshot` has returned (the snapshot's point in time is fixed then; it may
//! stay `pending` for hours).
//!
//! Runbook step → planner step (ids are `backup/<name>/<kind>@<server>`):
//! 1. stop the md resource on the active (quiesce point) → `stop-md@active`;
//! 2. shut the standby down through CLUSTERPRO → `shutdown@standby`;
//! 3. start md (the group) on the active again → `start-group@active`, or, when other resources
//!    kept the group online, `restart-<r>@active` for what the quiesce stopped with md (which
//!    starts md with it), as soon as the standby has left the cluster (its mirror agent is down,
//!    nothing replicates to its disk), without waiting for its instance to reach `stopped`:
//!    business downtime is md stop → shutdown → one start;
//! 4. `CreateSnapshot` of the standby's mirror volume, tagged in the call → `snapshot@standby`;
//!    when the md's partitions are on several volumes (`cluster_device`), one `CreateSnapshots` of
//!    all of them as one crash-consistent set → `snapshot-set@standby` (single-volume backups keep
//!    `CreateSnapshot`: one volume is consistent by itself, and its flows, faults and call counts
//!    stay as they were proven);
//! 5. start the standby instance; CLUSTERPRO resynchronises → `start-instance@standby`, then
//!    `complete` once the mirror is healthy again.
//!
//! A backup name is taken once: a snapshot tagged with it means it exists (for a set, one per
//! volume of the set). Retention keeps the newest `keep` of this cluster's completed backups (a
//! set is kept or deleted whole); names still listed in `take` and the
//! snapshot named in `[restore]` are never deleted.

use jiff::civil::Time;
use jiff::tz::TimeZone;

use crate::ids::{BackupName, ServerName};
use crate::journal::JournalView;
use crate::observe::Observed;
use crate::ports::cloud::{
    AttachState, CreateSnapshot, CreateSnapshotSet, InstanceState, ShutdownBehavior, Snapshot, SnapshotState, Tags, tag,
};
use crate::ports::cluster::{ObjectState, Operation, PreflightRequest, Procedure, VendorCall, VendorOp, VendorPhase};
use crate::spec::{BackupSpec, Schedule, Spec};

use super::restore::{at_device, layout_of};
use super::step::{Action, OpId, StepId, Watch};
use super::{Draft, Outcome, base_tags, expect};

/// How long after its scheduled time a missed daily backup is still taken (a daemon that was down
/// at 02:00 and comes back at 03:00 takes it; at 09:00 it waits for tomorrow and says so).
pub const SCHEDULE_CATCH_UP: jiff::SignedDuration = jiff::SignedDuration::from_hours(6);

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

/// The schedule's slot on the local date of `now` moved by `days` (−1 yesterday, 1 tomorrow).
fn slot_on(schedule: &Schedule, now: jiff::Timestamp, days: i64) -> Option<jiff::Timestamp> {
    let tz = TimeZone::get(&schedule.time_zone).ok()?;
    let date = now.to_zoned(tz.clone()).date().checked_add(jiff::Span::new().days(days)).ok()?;
    let time = Time::new(i8::try_from(schedule.hour).ok()?, i8::try_from(schedule.minute).ok()?, 0, 0).ok()?;
    Some(date.to_datetime(time).to_zoned(tz).ok()?.timestamp())
}

/// The scheduled backup due now, if any: `daily-YYYYMMDD` of the latest slot at or before `now`,
/// while within [`SCHEDULE_CATCH_UP`] of it.
pub fn scheduled_due(schedule: &Schedule, now: jiff::Timestamp) -> Option<BackupName> {
    let today = slot_on(schedule, now, 0)?;
    let slot = if today <= now { today } else { slot_on(schedule, now, -1)? };
    if now.duration_since(slot) > SCHEDULE_CATCH_UP {
        return None;
    }
    let tz = TimeZone::get(&schedule.time_zone).ok()?;
    BackupName::parse(&format!("daily-{}", slot.to_zoned(tz).date().strftime("%Y%m%d"))).ok()
}

/// The first scheduled slot strictly after `now` (today's, or tomorrow's once today's has
/// passed), in the schedule's time zone: when a daemon with nothing else to do should look again.
pub fn next_slot(schedule: &Schedule, now: jiff::Timestamp) -> Option<jiff::Timestamp> {
    let today = slot_on(schedule, now, 0)?;
    if today > now { Some(today) } else { slot_on(schedule, now, 1) }
}

/// The next backup wanted and not yet taken: `take` names in order, then the due scheduled one.
pub fn next_wanted(spec: &Spec, b: &BackupSpec, obs: &Observed, journal: &JournalView) -> Option<BackupName> {
    let mut wanted: Vec<BackupName> = b.take.clone();
    if let Some(s) = &b.schedule {
        wanted.extend(scheduled_due(s, obs.now));
    }
    wanted.into_iter().find(|name| {
        let op = OpId::Backup(name.clone());
        !journal.completed(&op)
            && snapshot_of(spec, obs, name)
                .is_none_or(|_| journal.op(&op).is_some_and(super::super::journal::OpView::in_flight))
    })
}

/// The active server of a backup: the one recorded when it started, else where the group runs.
pub fn active_server(spec: &Spec, obs: &Observed, journal: &JournalView, op: &OpId) -> Option<ServerName> {
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
    if super::refuse_shape(spec, "backup", !spec.more_mirrors.is_empty(), &mut d) {
        return d.outcome();
    }
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
            "unknown-active-server",
            format!("group {group} runs on {active}, which is not one of the servers in {}", spec.source.display()),
            "fix the server names in the desired-state file",
        );
        return d.outcome();
    };
    let Some(standby_inst) = obs.instances.get(&standby.instance) else {
        d.block(
            "instance-missing",
            format!("instance {} of {} was not found", standby.instance, standby.name),
            "check the instance id in the desired-state file",
        );
        return d.outcome();
    };
    let md_state = obs.cluster.resources.get(md).map_or(ObjectState::Offline, |p| p.state);
    let standby_member = obs.cluster.servers.get(&standby.name) == Some(&true);
    let snap = snapshot_of(spec, obs, name);
    let standby_subject = Some(standby.name.as_str());
    let active_subject = Some(active_spec.name.as_str());

    if !started {
        if obs.shutdown.get(&standby.instance) == Some(&ShutdownBehavior::Terminate) {
            d.block(
                "instance-terminates-on-shutdown",
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
                "mirror-not-configured",
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
        if !obs.mirror.as_ref().is_some_and(crate::ports::cluster::MirrorStatus::healthy) {
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
            "no-mirror-volume",
            format!("standby {} has no volume at {}", standby.name, spec.mirror.device),
            "check mirror.device in the desired-state file",
        );
        return d.outcome();
    };
    let set = match set_volumes(spec, obs, standby) {
        Ok(set) => set,
        Err(device) => {
            d.block(
                "no-mirror-volume",
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
        let business_back = restart_business(&mut d, spec, obs, journal, &op, &active, "the snapshot exists");
        match standby_inst.state {
            InstanceState::Stopped => d.step(
                &op,
                "start-instance",
                standby_subject,
                Action::StartInstance { server: standby.name.clone(), instance: standby.instance.clone() },
                format!("the snapshot's point in time is fixed; {} can rejoin", standby.name),
            ),
            InstanceState::Running if procedure == Procedure::Vendor && !standby_member => {
                vendor_post(&mut d, journal, &op, &standby.name, obs.now);
            }
            InstanceState::Running if standby_member => {
                if obs.mirror.as_ref().is_some_and(crate::ports::cluster::MirrorStatus::healthy) {
                    if d.steps.is_empty() && business_back {
                        d.step(
                            &op,
                            "complete",
                            None,
                            Action::MarkCompleted,
                            "snapshot taken, standby back, mirror healthy",
                        );
                    }
                } else {
                    d.wait(Watch::CLUSTER, format!("mirror {md} to resynchronise"), expect::MIRROR_SYNC);
                }
            }
            InstanceState::Terminated | InstanceState::ShuttingDown => d.block(
                "standby-terminated",
                format!("standby {} ({}) is {:?}", standby.name, standby.instance, standby_inst.state),
                "rebuild the standby from the backup snapshot; mirrorctl cannot start a terminated instance",
            ),
            _ => {
                let since = journal
                    .step(&op, &StepId::new(&op, "start-instance", standby_subject))
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
            if md_state == ObjectState::Offline {
                let why = format!("{md} is stopped (quiesced); the standby's disk must be frozen at this point");
                match procedure {
                    Procedure::Reconfigure => d.step(
                        &op,
                        "shutdown",
                        standby_subject,
                        Action::ShutdownServer { server: standby.name.clone() },
                        why,
                    ),
                    Procedure::Vendor => d.step(
                        &op,
                        "backup-pre",
                        standby_subject,
                        Action::Vendor { server: standby.name.clone(), call: vendor_call(VendorPhase::Pre, false) },
                        why,
                    ),
                }
            } else if matches!(md_state, ObjectState::OnlinePending | ObjectState::OfflinePending) {
                d.wait(Watch::CLUSTER, format!("{md} changing state"), expect::CLUSTER_PENDING);
            } else if !started && !super::proven(journal, &op) {
                // Fail before destroy: the quiesce is the first step that changes the cluster.
                d.step(
                    &op,
                    "preflight",
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
            } else {
                // What is online on the active now: the stop takes md's dependents down with it,
                // and exactly those are started again once the snapshot's point is fixed.
                let online = obs
                    .cluster
                    .resources
                    .iter()
                    .filter(|(r, p)| *r != md && p.state == ObjectState::Online && p.current.as_ref() == Some(&active))
                    .map(|(r, _)| r.clone())
                    .collect();
                d.step(
                    &op,
                    "stop-md",
                    active_subject,
                    Action::StopResource { resource: md.clone(), online },
                    format!("quiesce point: flush {md} on {active} with both sides identical"),
                );
            }
        }
        InstanceState::Running | InstanceState::Stopping | InstanceState::Pending => {
            // The standby has left the cluster (its CLUSTERPRO services stop before its OS does),
            // so nothing replicates to its disk any more: business can run again on the active
            // while the instance finishes stopping. The snapshot waits for `stopped`.
            let leave = StepId::new(&op, leave_kind(procedure), standby_subject);
            let shut_down = journal.step(&op, &leave).succeeded;
            if shut_down {
                restart_business(&mut d, spec, obs, journal, &op, &active, "the standby has left the cluster");
            }
            let since = journal.step(&op, &leave).last_intent.map(|(_, at, _)| at);
            // NEC's pre-processing ran but the server is still up long after: its shutdown did not
            // happen (the command was cut short); `--only-shutdown` finishes it.
            if procedure == Procedure::Vendor && shut_down && standby_inst.state == InstanceState::Running {
                super::procedure::finish_cut_short(
                    &mut d,
                    &op,
                    "backup-shutdown",
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
            let step = StepId::new(&op, "snapshot", standby_subject);
            let sv = journal.step(&op, &step);
            let window = expect::SNAPSHOT_VISIBILITY;
            // CreateSnapshot has no idempotency token: a call that succeeded, or was interrupted,
            // may not be visible to the tag filter yet (eventual consistency). Creating again
            // within the window would make a second snapshot, so wait for it to show up.
            let recent =
                sv.last_intent.as_ref().filter(|_| sv.interrupted() || sv.succeeded).is_some_and(|(_, at, _)| {
                    obs.now.duration_since(*at) < jiff::SignedDuration::try_from(window).unwrap_or_default()
                });
            let set_step = StepId::new(&op, "snapshot-set", standby_subject);
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
                let layout =
                    obs.disk(&standby.name, &standby_vol.id).and_then(|dk| layout_of(spec, dk)).or_else(|| {
                        obs.disk(&active, &at_device(spec, obs, active_spec)?.0.id).and_then(|dk| layout_of(spec, dk))
                    });
                if let Some(l) = layout {
                    tags.insert(tag::LAYOUT.into(), l.to_tag());
                }
                d.step(
                    &op,
                    "snapshot",
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
            "standby-terminated",
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
            "partial-snapshot-set",
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
    let exclude = obs
        .instances
        .get(&standby.instance)
        .map(|i| i.devices.iter().map(|(_, v)| v.clone()).filter(|v| !set.iter().any(|s| &s.id == v)).collect())
        .unwrap_or_default();
    d.step(
        op,
        "snapshot-set",
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
        },
        format!(
            "no snapshot tagged backup {name} exists; the standby is stopped at the quiesce point and its {} volumes are one set",
            set.len()
        ),
    );
}

/// The step that takes the standby out of the cluster and shuts it down, per procedure.
fn leave_kind(procedure: Procedure) -> &'static str {
    match procedure {
        Procedure::Reconfigure => "shutdown",
        Procedure::Vendor => "backup-pre",
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
    let post = journal.step(op, &StepId::new(op, "backup-post", subject));
    if !post.succeeded {
        d.step(
            op,
            "backup-post",
            subject,
            Action::Vendor { server: standby.clone(), call: vendor_call(VendorPhase::Post, false) },
            format!("the snapshot is taken and {standby} is up: its cluster service is enabled again and it rejoins"),
        );
        return;
    }
    let reboot = journal.step(op, &StepId::new(op, "backup-reboot", subject));
    let last = reboot.last_intent.as_ref().or(post.last_intent.as_ref()).map(|(_, at, _)| *at);
    super::procedure::finish_cut_short(
        d,
        op,
        "backup-reboot",
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
    let group = &spec.mirror.group;
    let md = &spec.mirror.resource;
    let subject = Some(active.as_str());
    let recorded = match journal.step(op, &StepId::new(op, "stop-md", subject)).last_action {
        Some(Action::StopResource { online, .. }) => online,
        _ => Vec::new(),
    };
    let state = |r: &crate::ids::ResourceName| obs.cluster.resources.get(r);
    let on_active = |r: &crate::ids::ResourceName| {
        state(r).is_some_and(|p| p.state == ObjectState::Online && p.current.as_ref() == Some(active))
    };
    let pending = std::iter::once(md)
        .chain(&recorded)
        .filter_map(state)
        .find(|p| matches!(p.state, ObjectState::OnlinePending | ObjectState::OfflinePending));
    if pending.is_some() {
        d.wait(Watch::CLUSTER, format!("resources of {group} changing state on {active}"), expect::CLUSTER_PENDING);
        return false;
    }
    let group_state = obs.cluster.groups.get(group).map_or(ObjectState::Offline, |p| p.state);
    if !on_active(md) {
        if group_state == ObjectState::Offline {
            d.step(
                op,
                "start-group",
                subject,
                Action::StartGroup { group: group.clone(), server: active.clone() },
                format!("{because}; business can run again on {active}"),
            );
        } else if let Some(r) = recorded.iter().find(|r| state(r).is_some() && !on_active(r)) {
            d.step(
                op,
                &format!("restart-{r}"),
                subject,
                Action::StartResource { resource: r.clone(), server: active.clone() },
                format!(
                    "{because}; {r} was online on {active} before the quiesce and starts with {md}, which it \
                     depends on, in one start ({group} is {group_state:?}: other resources kept it online)"
                ),
            );
        } else {
            d.step(
                op,
                "start-md",
                subject,
                Action::StartResource { resource: md.clone(), server: active.clone() },
                format!(
                    "{because}; nothing else went down with {md} ({group} is {group_state:?}: other resources kept \
                     it online)"
                ),
            );
        }
        return false;
    }
    if let Some(r) = recorded.iter().find(|r| state(r).is_some() && !on_active(r)) {
        d.step(
            op,
            &format!("restart-{r}"),
            subject,
            Action::StartResource { resource: r.clone(), server: active.clone() },
            format!("{r} was online on {active} before the quiesce and {md} is back"),
        );
        return false;
    }
    true
}

/// Retention: delete this cluster's completed backup snapshots beyond the newest `keep`, except
/// those named in `take` and the one named in `[restore]`.
pub fn retention(spec: &Spec, b: &BackupSpec, obs: &Observed) -> (Outcome, Vec<String>) {
    let op = OpId::Retention;
    let mut d = Draft::default();
    let tags: Tags =
        [(tag::CLUSTER.to_owned(), spec.cluster.name.to_string()), (tag::ROLE.to_owned(), "backup".to_owned())].into();
    let mut own: Vec<&Snapshot> = obs
        .snapshots_tagged(&tags)
        .into_iter()
        .filter(|s| s.state == SnapshotState::Completed)
        .filter(|s| !b.take.iter().any(|t| s.tags.get(tag::REQUEST).map(String::as_str) == Some(t.as_str())))
        .filter(|s| spec.restore.as_ref().is_none_or(|r| r.snapshot != s.id))
        .collect();
    own.sort_by(|a, b| b.started.cmp(&a.started).then(b.id.cmp(&a.id)));
    let keep = usize::try_from(b.keep).unwrap_or(usize::MAX);
    // `keep` counts backups, not snapshots: the snapshots of one set (one backup name) are kept or
    // deleted together.
    let mut backups: Vec<&str> = Vec::new();
    for s in &own {
        let key = s.tags.get(tag::REQUEST).map_or(s.id.as_str(), String::as_str);
        if !backups.contains(&key) {
            backups.push(key);
        }
    }
    let old = &backups[keep.min(backups.len())..];
    for s in own.iter().filter(|s| old.contains(&s.tags.get(tag::REQUEST).map_or(s.id.as_str(), String::as_str))) {
        d.step(
            &op,
            "delete-snapshot",
            Some(s.id.as_str()),
            Action::DeleteSnapshot { snapshot: s.id.clone() },
            format!("backup.keep = {}: {} ({}) is older than the newest {}", b.keep, s.id, s.started, b.keep),
        );
    }
    d.outcome()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sched() -> Schedule {
        Schedule { hour: 2, minute: 0, time_zone: "Asia/Tokyo".into() }
    }

    #[test]
    fn the_next_slot_is_today_until_it_passes_then_tomorrow() {
        let s = sched();
        let before: jiff::Timestamp = "2026-11-24T16:00:00Z".parse().unwrap();
        let slot = next_slot(&s, before).unwrap();
        assert_eq!(slot, "2026-11-24T17:00:00Z".parse().unwrap(), "02:00 in Tokyo");
        // Exactly at the slot, the next one is a day later; the due one is the slot itself.
        let next = next_slot(&s, slot).unwrap();
        assert_eq!(next.duration_since(slot), jiff::SignedDuration::from_hours(24));
        assert!(scheduled_due(&s, slot).is_some());
        assert_eq!(next_slot(&s, slot - jiff::SignedDuration::from_secs(1)), Some(slot));
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
}
