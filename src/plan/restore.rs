//! Restore planning: both servers' mirror volumes replaced by volumes made from one snapshot, as
//! the runbook's restore section does, but with every step guarded by an "already done?" check
//! against fresh observation.
//!
//! Runbook step → planner step (ids are `restore/<request>/<kind>@<server>`):
//! 1. remove md from the configuration, group startup manual → `stop-group`, `remove-md`;
//! 2. create a volume from the snapshot in each server's zone → `create-volume@s` (both at once,
//!    right after preflight, in parallel with step 1);
//! 3. take the disk offline, detach the old volume → `disk-offline@s`, `tag-superseded@s`,
//!    `detach@s` (only once the new volume is `available`, so no server is left without a mirror
//!    volume if creation fails; the tag goes out as soon as the new volume is `available`, during
//!    step 1 when it can: a storm's detaches and attaches then do not queue behind it);
//! 4. attach at the same device, bring the disk online, put the letters back → `attach@s`,
//!    `disk-online@s`, `letter-<n>@s`;
//! 5. re-add md (initial mirror construction OFF only when proven safe), startup automatic →
//!    `add-md`;
//! 6. start the group, wait for a healthy mirror, move it to check failover → `start-group`,
//!    `verify-failover`, then `complete`.
//!
//! Old volumes are never deleted: they get `mirrorctl:superseded-by`. Volumes of an abandoned
//! request get `mirrorctl:abandoned-by` and are listed in status.
//!
//! **A set of several volumes** (a file with `cluster_device` or several `[[mirror]]` entries):
//! [`members`] maps each snapshot of the set to the device of the file whose partitions it holds,
//! before any step. Steps 2–4 then run once per server and volume (subject `server/device`, e.g.
//! `create-volume@server1/sdy`; the new volumes carry `mirrorctl:device` and `mirrorctl:holds`,
//! and a layout tag numbering each partition they hold, `md1:data=1`), each old volume offline,
//! superseded and detached only once its own replacement is `available`; steps 1 and 5 remove and
//! re-add every md in one push each (initial construction off per md only under the proof of
//! [`initial_copy_decision`]), step 6 starts each group (`start-group@server1/<group>` when the md
//! resources are in several groups) and waits until every md is healthy. NEC's processing is not
//! driven over a set: `procedure = "vendor"` is refused before any step, `auto` takes the
//! configuration edit. Fast Snapshot Restore is refused for a set. That CLUSTERPRO applies several
//! md removals (re-adds) in one push as it applies one is an inference [U] (README's [U] list).

use crate::ids::{DeviceName, GroupName, RequestName, ResourceName, ServerName, SnapshotId, Zone};
use crate::journal::JournalView;
use crate::observe::Observed;
use crate::ports::cloud::{
    AttachState, CreateVolume, InstanceState, ShutdownBehavior, SnapshotState, Volume, VolumeState, tag,
};
use crate::ports::cluster::{
    ConfigChange, MdDefinition, ObjectState, Operation, PreflightRequest, Procedure, VendorCall, VendorOp, VendorPhase,
};
use crate::spec::{Os, Partition, RestoreSpec, ServerSpec, Spec};

use super::step::{Action, Condition, FastRestoreTarget, OpId, Reason, StepId, StepKind, Watch};
use super::{Draft, Outcome, base_tags, expect};

/// Partition numbers of the cluster and data partitions on a mirror disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Cluster partition number.
    pub cluster: u32,
    /// Data partition number.
    pub data: u32,
}

impl Layout {
    /// The tag value, `cluster=1,data=2`.
    pub fn to_tag(self) -> String {
        format!("cluster={},data={}", self.cluster, self.data)
    }
    /// The layout a volume mirrorctl made is tagged with, else [`DEFAULT_LAYOUT`].
    pub fn of_volume(v: &Volume) -> Layout {
        v.tags.get(tag::LAYOUT).and_then(|t| Layout::from_tag(t)).unwrap_or(DEFAULT_LAYOUT)
    }
    /// Parses the tag value.
    pub fn from_tag(s: &str) -> Option<Layout> {
        let mut cluster = None;
        let mut data = None;
        for part in s.split(',') {
            let (k, v) = part.split_once('=')?;
            let n: u32 = v.trim().parse().ok()?;
            match k.trim() {
                "cluster" => cluster = Some(n),
                "data" => data = Some(n),
                _ => return None,
            }
        }
        Some(Layout { cluster: cluster?, data: data? })
    }
}

/// The default layout when nothing better is known: partition 1 cluster, 2 data.
pub(crate) const DEFAULT_LAYOUT: Layout = Layout { cluster: 1, data: 2 };

/// The layout of a disk as the OS shows it, found by the spec's letters or paths.
pub(crate) fn layout_of(spec: &Spec, disk: &crate::ports::node::Disk) -> Option<Layout> {
    let find = |p: &Partition| {
        disk.partitions.iter().find(|x| match p {
            Partition::Letter(c) => x.letter == Some(*c),
            Partition::Device(d) => x.is_named(d),
        })
    };
    Some(Layout {
        cluster: find(&spec.mirror.cluster_partition)?.number,
        data: find(&spec.mirror.data_partition)?.number,
    })
}

/// The volume attached (in any state but detached) at the mirror device of `server`'s instance.
pub(crate) fn at_device<'a>(spec: &Spec, obs: &'a Observed, server: &ServerSpec) -> Option<(&'a Volume, AttachState)> {
    at(obs, server, &spec.mirror.device)
}

/// The volume attached (in any state but detached) at `device` of `server`'s instance.
pub fn at<'a>(obs: &'a Observed, server: &ServerSpec, device: &DeviceName) -> Option<(&'a Volume, AttachState)> {
    obs.volumes.iter().find_map(|v| {
        v.attachments
            .iter()
            .find(|a| a.instance == server.instance && a.device == *device && a.state != AttachState::Detached)
            .map(|a| (v, a.state))
    })
}

/// The volumes created for `request` for `server` (at `device` only, for a restore of a set: its
/// volumes carry [`tag::DEVICE`]).
fn created_for<'a>(
    spec: &Spec,
    obs: &'a Observed,
    request: &RequestName,
    server: &ServerName,
    device: Option<&DeviceName>,
) -> Vec<&'a Volume> {
    obs.volumes
        .iter()
        .filter(|v| {
            v.tags.get(tag::CLUSTER).map(String::as_str) == Some(spec.cluster.name.as_str())
                && v.tags.get(tag::REQUEST).map(String::as_str) == Some(request.as_str())
                && v.tags.get(tag::SERVER).map(String::as_str) == Some(server.as_str())
                && v.tags.get(tag::ROLE).map(String::as_str) == Some("mirror")
                && device
                    .is_none_or(|d| v.tags.get(tag::DEVICE).and_then(|t| DeviceName::parse(t).ok()).as_ref() == Some(d))
        })
        .collect()
}

fn step_started(journal: &JournalView, op: &OpId, kind: &StepKind) -> bool {
    journal.op(op).is_some_and(|v| v.steps.keys().any(|s| s.kind().as_ref() == Some(kind)))
}

/// One volume a restore puts on both servers: made from `snapshot`, attached at `device`, holding
/// `holds` (md resources and partitions, as [`tag::HOLDS`] spells them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// The EC2 device name on both servers.
    pub device: DeviceName,
    /// The snapshot the new volumes are made from.
    pub snapshot: SnapshotId,
    /// What the volume holds (`md:cluster+data`, `md1:data`, `md1:data,md2:cluster`).
    pub holds: String,
}

/// The volumes restore `r` puts on each server, in the file's device order; pure, checked before
/// any step. A file of one volume: `r.snapshot` at `mirror.device`. A file of several volumes
/// ([`Spec::several_volumes`]): every snapshot of the set `r.snapshot` belongs to
/// ([`tag::SNAPSHOT_SET`]), each at the device of the file whose md partitions it holds
/// ([`tag::HOLDS`], see [`super::set_identity::holds`]), which must be the device it was taken at
/// ([`tag::DEVICE`]). Refused, naming what is wrong: the snapshot missing, not part of a set, part
/// of the set missing or failed, a set that does not hold what the file describes, or a snapshot
/// taken at another device than the file puts its partitions at.
pub fn members(spec: &Spec, obs: &Observed, r: &RestoreSpec) -> Result<Vec<Member>, Condition> {
    if !spec.several_volumes() {
        return Ok(vec![single_member(spec, r)]);
    }
    let Some(snap) = obs.snapshot(&r.snapshot) else { return Err(snapshot_missing(spec, obs, r)) };
    let devices: Vec<&DeviceName> = spec.mirrors().flat_map(crate::spec::MirrorSpec::devices).collect();
    let Some(set) = snap.tags.get(tag::SNAPSHOT_SET) else {
        return Err(Condition {
            reason: Reason::BackupSetMismatch,
            message: format!(
                "snapshot {} is of one volume, but the mirrors of {} use {} volumes ({})",
                r.snapshot,
                spec.source.display(),
                devices.len(),
                devices.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            ),
            action: "restore a backup of all those volumes by name ([restore] backup = \"<name>\"), taken as one snapshot set"
                .to_owned(),
        });
    };
    let mut all: Vec<&crate::ports::cloud::Snapshot> = obs
        .snapshots
        .iter()
        .filter(|s| {
            s.tags.get(tag::SNAPSHOT_SET) == Some(set) && s.tags.get(tag::CLUSTER) == snap.tags.get(tag::CLUSTER)
        })
        .collect();
    all.sort_by(|a, b| a.id.cmp(&b.id));
    let size = snap.tags.get(tag::SET_SIZE).and_then(|n| n.parse::<usize>().ok()).unwrap_or(1);
    let good: Vec<&crate::ports::cloud::Snapshot> =
        all.iter().copied().filter(|s| s.state != SnapshotState::Error).collect();
    if good.len() < size {
        let ids: Vec<String> = good.iter().map(|s| s.id.to_string()).collect();
        return Err(Condition {
            reason: Reason::PartialSnapshotSet,
            message: format!(
                "set {set} has {} of its {size} snapshots ({}): {} missing or failed",
                good.len(),
                ids.join(", "),
                size - good.len()
            ),
            action:
                "restore another backup: a set with a snapshot missing is not a consistent copy of the mirror disks"
                    .to_owned(),
        });
    }
    match_set(spec, &format!("set {set}"), &good)?;
    let mut out: Vec<Member> = Vec::new();
    for device in devices {
        if out.iter().any(|m| m.device == *device) {
            continue;
        }
        let holds = super::set_identity::holds(spec, device);
        let Some(s) = good.iter().find(|s| s.tags.get(tag::HOLDS) == Some(&holds)) else { continue };
        let taken_at = s.tags.get(tag::DEVICE).and_then(|t| DeviceName::parse(t).ok());
        if taken_at.as_ref() != Some(device) {
            return Err(Condition {
                reason: Reason::BackupSetMismatch,
                message: format!(
                    "snapshot {} of set {set} holds {holds} and was taken at {}, but {} puts those partitions at {device}",
                    s.id,
                    taken_at.map_or_else(|| "an unknown device".to_owned(), |d| d.to_string()),
                    spec.source.display()
                ),
                action: "set the device of that md in the desired-state file to the device the backup was taken at, or name another backup".to_owned(),
            });
        }
        out.push(Member { device: device.clone(), snapshot: s.id.clone(), holds });
    }
    Ok(out)
}

/// The one volume of a file of one volume: `r.snapshot` at `mirror.device`.
fn single_member(spec: &Spec, r: &RestoreSpec) -> Member {
    let device = spec.mirror.device.clone();
    let holds = super::set_identity::holds(spec, &device);
    Member { device, snapshot: r.snapshot.clone(), holds }
}

/// One volume of one server in a restore: its [`Member`], the new volume made for it, and the
/// volume at its device now.
struct Job<'a> {
    s: &'a ServerSpec,
    m: &'a Member,
    /// A restore of a set: step subjects and new volumes name the device too.
    set: bool,
    new: Option<&'a Volume>,
    at_dev: Option<(&'a Volume, AttachState)>,
}

impl Job<'_> {
    /// The new volume sits at the job's device.
    fn swapped(&self) -> bool {
        matches!((self.new, self.at_dev), (Some(n), Some((v, _))) if n.id == v.id)
    }
    /// The step subject: the server (one volume per server, the ids as they always were), else
    /// `server/device` (`server1/sdy`).
    fn subject(&self) -> String {
        volume_subject(&self.s.name, &self.m.device, self.set)
    }
    /// How messages name the job: the server, with the device for a set.
    fn who(&self) -> String {
        if self.set { format!("{} at {}", self.s.name, self.m.device) } else { self.s.name.to_string() }
    }
}

/// The subject of a step about the volume at `device` of `server`: the server when the restore
/// replaces one volume per server, else `server/device` (`server1/sdy`).
fn volume_subject(server: &ServerName, device: &DeviceName, set: bool) -> String {
    if set {
        let dev = device.to_string();
        format!("{server}/{}", dev.strip_prefix("/dev/").unwrap_or(&dev))
    } else {
        server.to_string()
    }
}

/// A partition the restored volume of a job holds: whose, which, its number on the volume, and what
/// the cluster expects it to be called.
#[derive(Debug, Clone, Copy)]
struct Part<'a> {
    md: &'a crate::spec::MirrorSpec,
    cluster: bool,
    number: u32,
}

impl<'a> Part<'a> {
    fn want(&self) -> &'a Partition {
        if self.cluster { &self.md.cluster_partition } else { &self.md.data_partition }
    }
}

/// What a volume holds, parsed from the [`tag::HOLDS`] spelling: (md, is the cluster partition),
/// in order, for the md resources the file names.
fn held<'a>(spec: &'a Spec, holds: &str) -> Vec<(&'a crate::spec::MirrorSpec, bool)> {
    let mut out = Vec::new();
    for entry in holds.split(',') {
        let Some((md, parts)) = entry.split_once(':') else { continue };
        let Some(m) = spec.mirrors().find(|m| m.resource.as_str() == md) else { continue };
        for p in parts.split('+') {
            match p {
                "cluster" => out.push((m, true)),
                "data" => out.push((m, false)),
                _ => {}
            }
        }
    }
    out
}

/// The partitions of a restored volume `v`. One volume per server: its layout tag (cluster and data
/// partition of `mirror`). A set: its layout tag spelled `md:cluster=1,md:data=2` (see
/// [`set_layout`]), else what it holds numbered in order.
fn parts_of<'a>(spec: &'a Spec, set: bool, v: &Volume) -> Vec<Part<'a>> {
    if !set {
        let l = Layout::of_volume(v);
        return vec![
            Part { md: &spec.mirror, cluster: true, number: l.cluster },
            Part { md: &spec.mirror, cluster: false, number: l.data },
        ];
    }
    let tagged: Option<Vec<Part<'a>>> = v.tags.get(tag::LAYOUT).and_then(|t| {
        t.split(',')
            .map(|e| {
                let (what, n) = e.split_once('=')?;
                let number = n.trim().parse().ok()?;
                let (md, cluster) = held(spec, what).into_iter().next()?;
                Some(Part { md, cluster, number })
            })
            .collect()
    });
    tagged.unwrap_or_else(|| {
        let holds = v.tags.get(tag::HOLDS).map_or("", String::as_str);
        held(spec, holds).into_iter().zip(1..).map(|((md, cluster), number)| Part { md, cluster, number }).collect()
    })
}

/// The partition numbers of the volumes a restore of a set makes for member `m`, as the layout
/// tag spells them (`md1:data=2,md2:cluster=1`): each partition found by its letter or path on the
/// disk the snapshot was taken of (if a server still shows it), else on a disk at the member's
/// device today; else numbered in the order the member holds them.
fn set_layout(spec: &Spec, obs: &Observed, m: &Member) -> String {
    let source = obs.snapshot(&m.snapshot).and_then(|s| s.volume.clone());
    let disks: Vec<&crate::ports::node::Disk> = spec
        .cluster
        .servers
        .iter()
        .rev()
        .filter_map(|sv| source.as_ref().and_then(|src| obs.disk(&sv.name, src)))
        .chain(spec.cluster.servers.iter().rev().filter_map(|sv| {
            let (v, _) = at(obs, sv, &m.device)?;
            obs.disk(&sv.name, &v.id)
        }))
        .collect();
    held(spec, &m.holds)
        .into_iter()
        .zip(1..)
        .map(|((md, cluster), nth)| {
            let want = if cluster { &md.cluster_partition } else { &md.data_partition };
            let found = disks.iter().find_map(|dk| {
                dk.partitions
                    .iter()
                    .find(|x| match want {
                        Partition::Letter(c) => x.letter == Some(*c),
                        Partition::Device(d) => x.is_named(d),
                    })
                    .map(|x| x.number)
            });
            format!("{}:{}={}", md.resource, if cluster { "cluster" } else { "data" }, found.unwrap_or(nth))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The failover groups of the file's mirrors, in file order, without repeats.
fn groups(spec: &Spec) -> Vec<&GroupName> {
    let mut out: Vec<&GroupName> = Vec::new();
    for m in spec.mirrors() {
        if !out.contains(&&m.group) {
            out.push(&m.group);
        }
    }
    out
}

/// The subject of a step about group `g`: `base` when the file has one group (the ids as they
/// always were), else the group (after `base`, if any: `server1/db`).
fn group_subject(spec: &Spec, g: &GroupName, base: Option<&str>) -> Option<String> {
    if groups(spec).len() <= 1 {
        return base.map(str::to_owned);
    }
    Some(base.map_or_else(|| g.to_string(), |b| format!("{b}/{g}")))
}

/// Plans restore `r`. A restore that is blocked first switches off the Fast Snapshot Restore it
/// turned on (it bills per zone-hour while a human looks), then shows the block.
pub fn plan(spec: &Spec, obs: &Observed, journal: &JournalView, r: &RestoreSpec) -> (Outcome, Vec<String>) {
    let (outcome, mut notes) = plan_inner(spec, obs, journal, r);
    if let Outcome::Blocked(c) = &outcome {
        let op = OpId::Restore(r.request.clone());
        let steps = super::fast_restore::cleanup(journal, &op, "the restore is blocked");
        if !steps.is_empty() {
            notes.push(format!("blocked ({c}); switching Fast Snapshot Restore off first"));
            return (Outcome::Steps { steps }, notes);
        }
    }
    (outcome, notes)
}

/// The snapshot `[restore] backup = "name"` restores, from the snapshots observed: those tagged
/// as this cluster's backup `name` (a snapshot in `error` counts as missing).
///
/// The mapping is explicit and checked before any step: a backup of one volume holds one
/// snapshot, restored at `mirror.device` as today; a backup of several volumes is a set
/// (`mirrorctl:set-size`) whose snapshots each say what they hold (`mirrorctl:holds`), matched
/// against the file's mirrors by md resource and partitions. Refused, naming what is wrong: no
/// snapshot of that name (with this cluster's newest backups), part of a set missing or failed, a
/// snapshot not yet `completed`, one snapshot for a file of several volumes, a set whose snapshots
/// do not say what they hold, a set that does not hold what the file describes. A set resolves to
/// its first snapshot by id; the restore takes the whole set from there ([`members`]).
pub(crate) fn of_backup(
    spec: &Spec,
    obs: &Observed,
    rb: &crate::spec::BackupRestoreSpec,
) -> Result<SnapshotId, Condition> {
    let name = &rb.backup;
    let cond = |reason: Reason, message: String, action: String| Condition { reason, message, action };
    let mut tags = base_tags(spec, &OpId::Backup(name.clone()));
    tags.insert(tag::ROLE.into(), "backup".into());
    let mut all = obs.snapshots_tagged(&tags);
    all.sort_by(|a, b| a.id.cmp(&b.id));
    if all.is_empty() {
        let mut newest: Vec<(&jiff::Timestamp, &str)> = obs
            .snapshots
            .iter()
            .filter(|s| {
                s.tags.get(tag::CLUSTER).map(String::as_str) == Some(spec.cluster.name.as_str())
                    && s.tags.get(tag::ROLE).map(String::as_str) == Some("backup")
            })
            .filter_map(|s| Some((&s.started, s.tags.get(tag::REQUEST)?.as_str())))
            .collect();
        newest.sort_by(|a, b| b.cmp(a));
        let mut names: Vec<&str> = Vec::new();
        for (_, n) in newest {
            if !names.contains(&n) && names.len() < 3 {
                names.push(n);
            }
        }
        let known = if names.is_empty() {
            format!("this cluster has no backups in {}", spec.cluster.region)
        } else {
            format!("this cluster's newest backups: {}", names.join(", "))
        };
        return Err(cond(
            Reason::BackupMissing,
            format!(
                "no snapshot of backup {name} of cluster {} was found in {} ({known})",
                spec.cluster.name, spec.cluster.region
            ),
            format!(
                "check restore.backup in {}; `mirrorctl snapshots {}` lists this cluster's backups",
                spec.source.display(),
                spec.cluster.name
            ),
        ));
    }
    let ids = |v: &[&crate::ports::cloud::Snapshot]| v.iter().map(|s| s.id.to_string()).collect::<Vec<_>>().join(", ");
    let size =
        all.iter().filter_map(|s| s.tags.get(tag::SET_SIZE).and_then(|n| n.parse::<usize>().ok())).max().unwrap_or(1);
    let good: Vec<&crate::ports::cloud::Snapshot> =
        all.iter().copied().filter(|s| s.state != SnapshotState::Error).collect();
    if good.len() < size {
        let failed: Vec<&crate::ports::cloud::Snapshot> =
            all.iter().copied().filter(|s| s.state == SnapshotState::Error).collect();
        let failed = if failed.is_empty() { String::new() } else { format!("; failed: {}", ids(&failed)) };
        return Err(cond(
            Reason::PartialSnapshotSet,
            format!(
                "backup {name} has {} of the {size} snapshots of its set ({}){failed}: {} missing",
                good.len(),
                ids(&good),
                size - good.len()
            ),
            "restore another backup: a set with a snapshot missing is not a consistent copy of the mirror disks"
                .to_owned(),
        ));
    }
    let pending: Vec<&crate::ports::cloud::Snapshot> =
        good.iter().copied().filter(|s| s.state != SnapshotState::Completed).collect();
    if !pending.is_empty() {
        let each: Vec<String> = pending.iter().map(|s| format!("{} {}%", s.id, s.progress)).collect();
        return Err(cond(
            Reason::SnapshotNotCompleted,
            format!(
                "backup {name} is not completed: {} still pending; a restore needs every snapshot completed",
                each.join(", ")
            ),
            "wait until it completes (mirrorctl checks again on every pass), or name another backup".to_owned(),
        ));
    }
    if size > 1 {
        // The restore finds the rest of the set from this one (see [`members`]).
        match_set(spec, &format!("backup {name}"), &good)?;
        return Ok(good[0].id.clone());
    }
    let devices: Vec<String> =
        spec.mirrors().flat_map(crate::spec::MirrorSpec::devices).map(ToString::to_string).collect();
    if good.len() != devices.len() {
        return Err(cond(
            Reason::BackupSetMismatch,
            format!(
                "backup {name} holds {} snapshot(s) ({}), but the mirrors of {} use {} volume(s) ({}): each snapshot must map to one of them",
                good.len(),
                ids(&good),
                spec.source.display(),
                devices.len(),
                devices.join(", ")
            ),
            "restore it with a file whose [mirror] entries describe the volumes that backup was taken of, or name another backup".to_owned(),
        ));
    }
    match good.as_slice() {
        [one] => Ok(one.id.clone()),
        _ => Err(super::shape_refusal(spec, "restore")),
    }
}

/// Checks a set of several snapshots against the file's mirrors by what each snapshot says it
/// holds ([`tag::HOLDS`]: md resource and partitions): every volume of the file's mirrors must be
/// held by exactly one snapshot, and no snapshot may hold anything else. A set whose snapshots do
/// not say (taken before mirrorctl tagged them, or still being tagged) is refused.
fn match_set(spec: &Spec, what: &str, good: &[&crate::ports::cloud::Snapshot]) -> Result<(), Condition> {
    let untagged: Vec<String> =
        good.iter().filter(|s| super::set_identity::lacks_identity(s)).map(|s| s.id.to_string()).collect();
    if !untagged.is_empty() {
        return Err(Condition {
            reason: Reason::BackupSetUntagged,
            message: format!(
                "{what} is a set whose snapshots {} do not say which volume each holds (no {} and {} tags): it was taken by an older mirrorctl, or is still being tagged",
                untagged.join(", "),
                tag::HOLDS,
                tag::DEVICE
            ),
            action: format!(
                "name a backup taken by this mirrorctl, or take a new one; to use this set, tag each snapshot by hand with {}=<md>:<cluster+data|data|cluster> and {}=<device on the standby>",
                tag::HOLDS,
                tag::DEVICE
            ),
        });
    }
    let mut want: Vec<String> = Vec::new();
    for device in spec.mirrors().flat_map(crate::spec::MirrorSpec::devices) {
        let h = super::set_identity::holds(spec, device);
        if !want.contains(&h) {
            want.push(h);
        }
    }
    let have: Vec<String> = good.iter().filter_map(|s| s.tags.get(tag::HOLDS).cloned()).collect();
    let missing: Vec<&String> = want.iter().filter(|w| !have.contains(w)).collect();
    let extra: Vec<String> = good
        .iter()
        .filter_map(|s| {
            let h = s.tags.get(tag::HOLDS)?;
            let repeated = have.iter().filter(|x| *x == h).count() > 1;
            (!want.contains(h) || repeated).then(|| format!("{} holds {h}", s.id))
        })
        .collect();
    if missing.is_empty() && extra.is_empty() {
        return Ok(());
    }
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts
            .push(format!("no snapshot holds {}", missing.iter().map(|m| m.as_str()).collect::<Vec<_>>().join(" or ")));
    }
    if !extra.is_empty() {
        parts.push(format!("not what the file describes: {}", extra.join(", ")));
    }
    Err(Condition {
        reason: Reason::BackupSetMismatch,
        message: format!(
            "{what} does not match the mirrors of {}: {}",
            spec.source.display(),
            parts.join("; ")
        ),
        action: "restore it with a file whose [mirror] entries describe the md resources and partitions that backup was taken of, or name another backup".to_owned(),
    })
}

#[allow(clippy::too_many_lines)]
fn plan_inner(spec: &Spec, obs: &Observed, journal: &JournalView, r: &RestoreSpec) -> (Outcome, Vec<String>) {
    let op = OpId::Restore(r.request.clone());
    let started = super::begun(journal, &op);
    let mut d = Draft::default();
    let set = spec.several_volumes();
    let members = match members(spec, obs, r) {
        Ok(m) => m,
        Err(c) => {
            d.block(c.reason, c.message, c.action);
            return d.outcome();
        }
    };
    let Some(mut procedure) = super::procedure::choose_for(spec, obs, journal, &op, &mut d) else {
        return d.outcome();
    };
    if set && procedure == Procedure::Vendor {
        // NEC's processing restores the mirror disks of a server at once; driving it over several
        // volumes is not built. `auto` takes the configuration edit instead, which every version
        // supports; once the preflight has proven it, it is the operation's procedure for good.
        if spec.cluster.procedure == crate::spec::ProcedureChoice::Auto && !super::proven(journal, &op) {
            d.notes.push(
                "a restore of several volumes follows the configuration edit (NEC's processing of a set is not driven)"
                    .to_owned(),
            );
            procedure = Procedure::Reconfigure;
        } else {
            d.block(
                Reason::VendorSetRestoreNotSupported,
                format!(
                    "{} restores several volumes ({}) with NEC's clprestore processing; this version of mirrorctl drives a restore of several volumes by the configuration edit only",
                    spec.source.display(),
                    members.iter().map(|m| m.device.to_string()).collect::<Vec<_>>().join(", ")
                ),
                "set cluster.procedure = \"reconfigure\" (or \"auto\") in the desired-state file, or restore by hand",
            );
            return d.outcome();
        }
    }

    let mut jobs = Vec::new();
    for s in &spec.cluster.servers {
        for m in &members {
            let job = Job { s, m, set, new: None, at_dev: at(obs, s, &m.device) };
            let created = created_for(spec, obs, &r.request, &s.name, set.then_some(&m.device));
            if created.len() > 1 {
                let ids: Vec<String> = created.iter().map(|v| v.id.to_string()).collect();
                d.block(
                    Reason::DuplicateVolumes,
                    format!("request {} has {} volumes for {}: {}", r.request, created.len(), job.who(), ids.join(", ")),
                    "keep the one attached (or the newest), remove the mirrorctl:request tag from the others, then retry",
                );
            }
            jobs.push(Job { new: created.first().copied(), ..job });
        }
        if !obs.instances.contains_key(&s.instance) {
            d.block(
                Reason::InstanceMissing,
                format!("instance {} of {} was not found in {}", s.instance, s.name, spec.cluster.region),
                "check the instance id and region in the desired-state file",
            );
        }
    }
    if d.blocked.is_some() {
        return d.outcome();
    }

    if !started {
        preflight(spec, obs, r, &members, &mut d);
        if d.blocked.is_some() || !d.waits.is_empty() {
            return d.outcome();
        }
        // Fail before destroy: nothing is created, stopped or removed until the live cluster has
        // shown that every later step can run.
        if !super::proven(journal, &op) {
            d.step(
                &op,
                &StepKind::Preflight,
                None,
                Action::Preflight {
                    request: preflight_request(spec, procedure),
                    fast_restore: fast_restore_probe(spec, obs, r),
                },
                "before the first step that changes the cluster or a disk, every later step must be shown possible",
            );
            return d.outcome();
        }
    }

    // Which snapshot layout the new volumes will have: the snapshot's tag, else the disk it came
    // from if a server shows it, else the standby's current disk, else the default.
    let snap_layout = obs
        .snapshot(&r.snapshot)
        .and_then(|s| {
            s.tags.get(tag::LAYOUT).and_then(|t| Layout::from_tag(t)).or_else(|| {
                let src = s.volume.as_ref()?;
                spec.cluster.servers.iter().find_map(|sv| obs.disk(&sv.name, src).and_then(|dk| layout_of(spec, dk)))
            })
        })
        .or_else(|| {
            jobs.iter().rev().find_map(|f| {
                let (v, _) = f.at_dev?;
                obs.disk(&f.s.name, &v.id).and_then(|dk| layout_of(spec, dk))
            })
        })
        .unwrap_or(DEFAULT_LAYOUT);

    tag_abandoned(spec, obs, journal, &op, &mut d);

    // A. Create the new volumes, all at once (with Fast Snapshot Restore: in each zone once it is
    // ready there).
    let mut pending: Vec<Zone> = jobs.iter().filter(|f| f.new.is_none()).map(|f| f.s.zone.clone()).collect();
    pending.sort();
    pending.dedup();
    let ready = super::fast_restore::ready_zones(spec, obs, journal, &op, r, &pending, &mut d);
    for f in &jobs {
        if f.new.is_none() && ready.contains(&f.s.zone) {
            let mut tags = base_tags(spec, &op);
            tags.insert(tag::SERVER.into(), f.s.name.to_string());
            tags.insert(tag::ROLE.into(), "mirror".into());
            tags.insert(tag::SOURCE_SNAPSHOT.into(), f.m.snapshot.to_string());
            if set {
                tags.insert(tag::LAYOUT.into(), set_layout(spec, obs, f.m));
                tags.insert(tag::DEVICE.into(), f.m.device.to_string());
                tags.insert(tag::HOLDS.into(), f.m.holds.clone());
                tags.insert(
                    tag::NAME.into(),
                    format!("{}-{}-{}", spec.cluster.name, f.subject().replace('/', "-"), r.request),
                );
            } else {
                tags.insert(tag::LAYOUT.into(), snap_layout.to_tag());
                tags.insert(tag::NAME.into(), format!("{}-{}-{}", spec.cluster.name, f.s.name, r.request));
            }
            let v = &spec.mirror.volume;
            let request = CreateVolume {
                zone: f.s.zone.clone(),
                snapshot: f.m.snapshot.clone(),
                size_gib: None,
                volume_type: v.volume_type.as_str().to_owned(),
                iops: v.iops,
                throughput: v.throughput,
                kms_key: v.kms_key.clone(),
                initialization_rate: v.initialization_rate,
                client_token: String::new(),
                tags,
            };
            d.step(
                &op,
                &StepKind::CreateVolume,
                Some(f.subject().as_str()),
                Action::CreateVolume { server: f.s.name.clone(), request },
                format!("no volume tagged for request {} and {} exists yet", r.request, f.who()),
            );
        }
    }

    let new: Vec<_> = jobs.iter().map(|f| (&f.s.name, &f.s.zone, f.new)).collect();
    super::fast_restore::after_create(spec, obs, journal, &op, r, &new, &mut d);
    // While Fast Snapshot Restore gets ready (an hour per TiB) the business keeps running: the
    // cluster is touched only once the new volumes exist.
    if ready.len() < pending.len() && !jobs.iter().any(Job::swapped) {
        return in_progress(journal, r, &op, d);
    }

    if procedure == Procedure::Vendor {
        vendor_restore(spec, obs, journal, r, &op, &jobs, &mut d);
        return in_progress(journal, r, &op, d);
    }
    if !obs.cluster_reachable {
        d.wait(Watch::CLUSTER, "a server to answer for the cluster as a running member", expect::CLUSTER_PENDING);
        return in_progress(journal, r, &op, d);
    }

    let all_swapped = jobs.iter().all(Job::swapped);
    let groups = groups(spec);
    let state_of = |g: &GroupName| obs.cluster.groups.get(g).map_or(ObjectState::Offline, |p| p.state);
    let configured: Vec<&ResourceName> =
        spec.mirrors().map(|m| &m.resource).filter(|md| obs.config.mirror(md).is_some()).collect();
    let auto_start = groups.iter().any(|g| obs.config.group_auto_start.get(*g).copied().unwrap_or(false));
    let all_offline = groups.iter().all(|g| state_of(g) == ObjectState::Offline);

    // B. Cluster preparation, while any server still needs its swap.
    let mut prep_done = all_offline && configured.is_empty() && !auto_start;
    if all_swapped {
        prep_done = true;
    } else if all_offline {
        if !configured.is_empty() || auto_start {
            let mut changes: Vec<ConfigChange> =
                configured.iter().map(|md| ConfigChange::RemoveMirror { resource: (*md).clone() }).collect();
            changes.extend(groups.iter().map(|g| ConfigChange::SetGroupAutoStart { group: (*g).clone(), auto: false }));
            let (mds, gs) = (names(spec.mirrors().map(|m| &m.resource)), names(groups.iter().copied()));
            let verb = if groups.len() > 1 { "start" } else { "starts" };
            d.step(
                &op,
                &StepKind::RemoveMd,
                None,
                Action::ApplyConfig { changes },
                format!("{mds} is still configured or {gs} still {verb} automatically"),
            );
        }
    } else {
        for g in &groups {
            let state = state_of(g);
            match state {
                ObjectState::Offline => {}
                ObjectState::OnlinePending | ObjectState::OfflinePending => {
                    d.wait(Watch::CLUSTER, format!("group {g} is changing state"), expect::CLUSTER_PENDING);
                }
                _ => d.step(
                    &op,
                    &StepKind::StopGroup,
                    group_subject(spec, g, None).as_deref(),
                    Action::StopGroup { group: (*g).clone() },
                    format!("group {g} is {state:?}; the mirror disk cannot be replaced under it"),
                ),
            }
        }
    }

    // The old volumes' `superseded-by` tags go out while the cluster is prepared (see
    // [`tag_early`]).
    if !prep_done {
        for f in &jobs {
            tag_early(spec, journal, &op, f, &mut d);
        }
    }

    // C/D. Per-volume swap and finishing.
    let mut ready = 0;
    for f in &jobs {
        if !f.swapped() {
            if !prep_done {
                continue;
            }
            swap_server(spec, obs, journal, &op, f, false, &mut d);
            continue;
        }
        let Some(new) = f.new else { continue };
        let Some((_, state)) = f.at_dev else { continue };
        // Attaching, with its disk already listed by the server: the OS sees it once attached.
        let seen = state == AttachState::Attaching && obs.disk(&f.s.name, &new.id).is_some();
        if state != AttachState::Attached && !seen {
            d.wait(Watch::VOLUMES, format!("{} attaching to {}", new.id, f.who()), expect::ATTACH);
            continue;
        }
        if disk_ready(spec, obs, r, &op, f.s, &f.subject(), new, &parts_of(spec, set, new), &mut d) {
            ready += 1;
        }
    }

    // E. Cluster back together, once every volume of both servers is ready.
    if all_swapped && ready == jobs.len() && d.steps.is_empty() {
        finish(spec, obs, journal, r, &op, Procedure::Reconfigure, &members, &mut d);
    }
    in_progress(journal, r, &op, d)
}

/// `a, b`: names for a message.
fn names<'a, T: std::fmt::Display + 'a>(items: impl Iterator<Item = &'a T>) -> String {
    items.map(ToString::to_string).collect::<Vec<_>>().join(", ")
}

/// The outcome, with a first note saying since when the restore has been under way.
fn in_progress(journal: &JournalView, r: &RestoreSpec, op: &OpId, d: Draft) -> (Outcome, Vec<String>) {
    let (outcome, mut notes) = d.outcome();
    if let Some(v) = journal.op(op).and_then(|v| v.started) {
        notes.insert(0, format!("restore {} from {} in progress since {v}", r.request, r.snapshot));
    }
    (outcome, notes)
}

fn restore_call(phase: VendorPhase, skip_copy: bool, only: bool) -> VendorCall {
    VendorCall { op: VendorOp::Restore, phase, skip_copy, only }
}

/// The restore by NEC's pre- and post-processing (X 4.3+), after the new volumes were asked for:
/// 1. the group stopped (`stop-group`);
/// 2. once both new volumes exist, `clprestore --pre` on each server (`restore-pre@s`): it leaves
///    the cluster and shuts down (`--only-shutdown` finishes a pre whose shutdown never came,
///    `restore-shutdown@s`);
/// 3. with the OS down, the old volume tagged and detached, the new one attached at the same
///    device (`tag-superseded@s`, `detach@s`, `attach@s`), the instance started
///    (`start-instance@s`);
/// 4. on Windows the restored disk online with its letters (`disk-online@s`, `letter-<n>@s`); on
///    Linux its partitions checked;
/// 5. `clprestore --post` on each server (`restore-post@s`), with `--skip-copy` only under the
///    proof the configuration edit needs for "no initial mirror construction" (both sides made from
///    the snapshot in this request, the group offline since); it reboots into the cluster
///    (`--only-reboot` finishes a post whose reboot never came, `restore-reboot@s`);
/// 6. as the configuration edit: `start-group`, a healthy mirror, `verify-failover`, `complete`.
#[allow(clippy::too_many_lines)]
fn vendor_restore(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    r: &RestoreSpec,
    op: &OpId,
    facts: &[Job<'_>],
    d: &mut Draft,
) {
    let group = &spec.mirror.group;
    let group_state = obs.cluster.groups.get(group).map_or(ObjectState::Offline, |p| p.state);
    let posted =
        |s: &ServerSpec| journal.step(op, &StepId::new(op, &StepKind::RestorePost, Some(s.name.as_str()))).succeeded;
    let pre_done =
        |s: &ServerSpec| journal.step(op, &StepId::new(op, &StepKind::RestorePre, Some(s.name.as_str()))).succeeded;

    // While both servers are inside the processing nobody answers for the cluster; before and
    // after, somebody must.
    let inside = facts.iter().filter(|f| pre_done(f.s) && !posted(f.s)).count();
    if !obs.cluster_reachable && inside == 0 {
        d.wait(Watch::CLUSTER, "a server to answer for the cluster as a running member", expect::CLUSTER_PENDING);
        return;
    }
    // 1. The group offline before anything else (NEC's restore pre refuses otherwise [U]).
    if facts.iter().any(|f| !pre_done(f.s)) && group_state != ObjectState::Offline {
        match group_state {
            ObjectState::OnlinePending | ObjectState::OfflinePending => {
                d.wait(Watch::CLUSTER, format!("group {group} is changing state"), expect::CLUSTER_PENDING);
            }
            _ => d.step(
                op,
                &StepKind::StopGroup,
                None,
                Action::StopGroup { group: group.clone() },
                format!("group {group} is {group_state:?}; both mirror sides are about to be replaced"),
            ),
        }
        return;
    }
    let volumes_ready = facts.iter().all(|f| f.swapped() || f.new.is_some_and(|n| n.state == VolumeState::Available));
    let (skip_copy, why_copy) = {
        let one = [single_member(spec, r)];
        let (initial, why) = initial_copy_decision(spec, obs, journal, r, op, &spec.mirror, &one);
        (!initial, why.replace("initial mirror construction", "mirror copy"))
    };
    let mut back = 0;
    for f in facts {
        let s = f.s;
        let subject = Some(s.name.as_str());
        let Some(inst) = obs.instances.get(&s.instance) else { continue };
        let member = obs.cluster.servers.get(&s.name) == Some(&true);
        if posted(s) {
            if member {
                back += 1;
                continue;
            }
            let post = journal.step(op, &StepId::new(op, &StepKind::RestorePost, subject));
            let reboot = journal.step(op, &StepId::new(op, &StepKind::RestoreReboot, subject));
            let last = reboot.last_intent.as_ref().or(post.last_intent.as_ref()).map(|(_, at, _)| *at);
            // A reboot can only be asked of a running OS.
            let last = last.filter(|_| inst.state == InstanceState::Running);
            super::procedure::finish_cut_short(
                d,
                op,
                &StepKind::RestoreReboot,
                &s.name,
                restore_call(VendorPhase::Post, false, true),
                last,
                obs.now,
                expect::REBOOT,
                Watch::CLUSTER,
                format!("{} to reboot and rejoin the cluster", s.name),
            );
            continue;
        }
        if !pre_done(s) {
            if volumes_ready {
                d.step(
                    op,
                    &StepKind::RestorePre,
                    subject,
                    Action::Vendor { server: s.name.clone(), call: restore_call(VendorPhase::Pre, false, false) },
                    format!(
                        "both restored volumes exist; {} leaves the cluster and shuts down for its disk swap",
                        s.name
                    ),
                );
            } else {
                d.wait(
                    Watch::VOLUMES,
                    "both new volumes to be available before a server is shut down",
                    expect::VOLUME_CREATE,
                );
            }
            continue;
        }
        let since = journal.step(op, &StepId::new(op, &StepKind::RestorePre, subject)).last_intent.map(|(_, at, _)| at);
        match inst.state {
            InstanceState::Stopped if !f.swapped() => {
                swap_server(spec, obs, journal, op, f, true, d);
            }
            InstanceState::Stopped => match f.at_dev {
                Some((_, AttachState::Attached)) => d.step(
                    op,
                    &StepKind::StartInstance,
                    subject,
                    Action::StartInstance { server: s.name.clone(), instance: s.instance.clone() },
                    format!("{} has its restored volume; it boots with its cluster service still disabled", s.name),
                ),
                _ => d.wait(Watch::VOLUMES, format!("the restored volume attaching to {}", s.name), expect::ATTACH),
            },
            // The pre-processing ran, yet the OS is still up.
            InstanceState::Running if !f.swapped() => super::procedure::finish_cut_short(
                d,
                op,
                &StepKind::RestoreShutdown,
                &s.name,
                restore_call(VendorPhase::Pre, false, true),
                since,
                obs.now,
                expect::INSTANCE_STOP,
                Watch::INSTANCES,
                format!("{} to shut down", s.name),
            ),
            InstanceState::Running => {
                let Some(new) = f.new else { continue };
                if disk_ready(spec, obs, r, op, s, s.name.as_str(), new, &parts_of(spec, false, new), d) {
                    d.notes.push(format!("{}: {why_copy}", s.name));
                    d.step(
                        op,
                        &StepKind::RestorePost,
                        subject,
                        Action::Vendor {
                            server: s.name.clone(),
                            call: restore_call(VendorPhase::Post, skip_copy, false),
                        },
                        format!("{} boots on its restored disk; {why_copy}", s.name),
                    );
                }
            }
            InstanceState::Pending | InstanceState::Stopping => {
                d.wait(Watch::INSTANCES, format!("{} changing state", s.name), expect::INSTANCE_STOP);
            }
            InstanceState::Terminated | InstanceState::ShuttingDown => d.block(
                Reason::InstanceTerminated,
                format!("{} ({}) is {:?}", s.name, s.instance, inst.state),
                "rebuild the server from the restored volume; mirrorctl cannot start a terminated instance",
            ),
        }
    }
    if back == facts.len() && d.steps.is_empty() && d.blocked.is_none() {
        finish(spec, obs, journal, r, op, Procedure::Vendor, &[single_member(spec, r)], d);
    }
}

/// Before a vendor restore is left for another request: `s`, if the old request took it into
/// NEC's restore processing and did not finish it, is brought back into the cluster (see
/// [`switch`]).
fn vendor_bring_back(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    r: &RestoreSpec,
    op: &OpId,
    s: &ServerSpec,
    d: &mut Draft,
) {
    let subject = Some(s.name.as_str());
    let view = |kind: StepKind| journal.step(op, &StepId::new(op, &kind, subject));
    let (pre, post, safe_post) = (view(StepKind::RestorePre), view(StepKind::RestorePost), view(StepKind::SafePost));
    let entered = pre.succeeded || pre.interrupted();
    if !entered || post.succeeded {
        return;
    }
    let member = obs.cluster.servers.get(&s.name) == Some(&true);
    if safe_post.succeeded {
        if !member {
            let since = safe_post.last_intent.as_ref().map(|(_, at, _)| *at);
            d.wait(
                Watch::CLUSTER,
                format!("{} to reboot and rejoin the cluster", s.name),
                expect::remaining(expect::REBOOT, since, obs.now),
            );
        }
        return;
    }
    let Some(inst) = obs.instances.get(&s.instance) else { return };
    let Some((vol, AttachState::Attached)) = at_device(spec, obs, s) else {
        d.wait(Watch::VOLUMES, format!("a volume attached to {}", s.name), expect::ATTACH);
        return;
    };
    match inst.state {
        InstanceState::Stopped => d.step(
            op,
            &StepKind::SafeStart,
            subject,
            Action::StartInstance { server: s.name.clone(), instance: s.instance.clone() },
            format!("{} is inside NEC's restore processing of {}; it must come back first", s.name, r.request),
        ),
        InstanceState::Running if member => {}
        InstanceState::Running => {
            if disk_ready(spec, obs, r, op, s, s.name.as_str(), vol, &parts_of(spec, false, vol), d) {
                d.step(
                    op,
                    &StepKind::SafePost,
                    subject,
                    Action::Vendor {
                        server: s.name.clone(),
                        call: restore_call(VendorPhase::Post, false, false),
                    },
                    format!(
                        "{} leaves the abandoned restore's processing; the mirror is rebuilt by a copy (its sides are not proven identical)",
                        s.name
                    ),
                );
            }
        }
        _ => d.wait(Watch::INSTANCES, format!("{} changing state", s.name), expect::INSTANCE_STOP),
    }
}

/// Tags the volume being replaced with its successor (and the cluster, which keeps it findable
/// once detached: status lists it); it is kept, never deleted.
fn tag_superseded(spec: &Spec, op: &OpId, subject: Option<&str>, old: &Volume, new: &Volume, d: &mut Draft) {
    d.step(
        op,
        &StepKind::TagSuperseded,
        subject,
        Action::Tag {
            resource: old.id.to_string(),
            tags: [
                (tag::SUPERSEDED_BY.to_owned(), new.id.to_string()),
                (tag::CLUSTER.to_owned(), spec.cluster.name.to_string()),
            ]
            .into(),
        },
        format!("{} is about to be replaced by {} (it is kept, never deleted)", old.id, new.id),
    );
}

/// The old volume's `superseded-by` tag, sent during the cluster's preparation (group stop,
/// md removal) once its replacement is `available`: it needs nothing from the cluster or the disk,
/// and EC2 is otherwise idle then. A storm of restores then spends its mutating tokens on the
/// detaches and attaches alone once their clusters are ready (README, "Scale under throttling").
/// Only the volume still attached at the device, before this operation detached anything there:
/// the one the restore replaces. [`swap_server`] still tags it if this did not (a replacement
/// that became `available` only after the preparation).
fn tag_early(spec: &Spec, journal: &JournalView, op: &OpId, job: &Job<'_>, d: &mut Draft) {
    let subject = job.subject();
    let (Some(new), Some((old, AttachState::Attached))) = (job.new, job.at_dev) else { return };
    let detached = journal.step(op, &StepId::new(op, &StepKind::Detach, Some(subject.as_str()))).succeeded;
    if new.state == VolumeState::Available
        && old.id != new.id
        && !detached
        && old.tags.get(tag::SUPERSEDED_BY) != Some(&new.id.to_string())
    {
        tag_superseded(spec, op, Some(subject.as_str()), old, new, d);
    }
}

/// Whether the restored disk of `new` on `s` is ready for the cluster: on Windows online, writable
/// and with the desired letters on its partitions `parts` (steps to get there otherwise); on Linux
/// showing those partitions. `subject` names the steps (see [`Job::subject`]).
#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
fn disk_ready(
    spec: &Spec,
    obs: &Observed,
    r: &RestoreSpec,
    op: &OpId,
    s: &ServerSpec,
    subject: &str,
    new: &Volume,
    parts: &[Part<'_>],
    d: &mut Draft,
) -> bool {
    let subject = Some(subject);
    let mut ready = false;
    let Some(disk) = obs.disk(&s.name, &new.id) else {
        if obs.disks_of(&s.name).is_none() {
            d.wait(Watch::DISKS, format!("{} cannot be asked for its disks", s.name), expect::DISK_APPEAR);
        } else {
            d.wait(Watch::DISKS, format!("disk of {} not yet visible on {}", new.id, s.name), expect::DISK_APPEAR);
        }
        return false;
    };
    let source = new.snapshot.as_ref().unwrap_or(&r.snapshot);
    match spec.cluster.os {
        Os::Windows => {
            if disk.offline_reason == Some(crate::ports::node::OfflineReason::Collision) {
                d.block(
                    Reason::DiskSignatureCollision,
                    format!(
                        "disk of {} on {} is offline: its signature collides with another online disk",
                        new.id, s.name
                    ),
                    "take the other disk with the same signature offline (or detach it), then retry",
                );
                return false;
            }
            if !disk.online || disk.read_only {
                d.step(
                    op,
                    &StepKind::DiskOnline,
                    subject,
                    Action::DiskOnline { server: s.name.clone(), volume: new.id.clone() },
                    format!("disk of {} is offline or read-only on {}", new.id, s.name),
                );
                return false;
            }
            let mut letters_ok = true;
            for part in parts {
                let number = part.number;
                let Partition::Letter(letter) = part.want() else { continue };
                let have = disk.partitions.iter().find(|p| p.number == number);
                match have {
                    None => {
                        letters_ok = false;
                        d.block(
                            Reason::PartitionMissing,
                            format!("disk of {} on {} has no partition {number}", new.id, s.name),
                            format!("check that {source} holds the mirror disk (cluster and data partitions)"),
                        );
                    }
                    Some(p) if p.letter != Some(*letter) => {
                        letters_ok = false;
                        d.step(
                            op,
                            &StepKind::Letter(number),
                            subject,
                            Action::SetLetter {
                                server: s.name.clone(),
                                volume: new.id.clone(),
                                partition: number,
                                letter: *letter,
                            },
                            format!(
                                "partition {number} is {} on {}, the cluster expects {letter}:",
                                p.letter.map_or_else(|| "without a letter".to_owned(), |l| format!("{l}:")),
                                s.name
                            ),
                        );
                    }
                    Some(_) => {}
                }
            }
            if letters_ok {
                ready = true;
            }
        }
        Os::Linux => {
            // The partitions by number; which name the re-add writes is chosen in `finish`.
            let missing: Vec<u32> =
                parts.iter().map(|p| p.number).filter(|n| !disk.partitions.iter().any(|x| x.number == *n)).collect();
            if missing.is_empty() {
                ready = true;
            } else {
                d.block(
                    Reason::PartitionMissing,
                    format!("{} does not show partition(s) {missing:?} on the disk of {}", s.name, new.id),
                    format!("check that {source} holds the mirror disk (cluster and data partitions)"),
                );
            }
        }
    }
    ready
}

#[allow(clippy::too_many_lines)]
fn swap_server(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    op: &OpId,
    job: &Job<'_>,
    os_down: bool,
    d: &mut Draft,
) {
    let (new, at_dev, s, device) = (job.new, job.at_dev, job.s, &job.m.device);
    let subject = job.subject();
    let subject = Some(subject.as_str());
    let windows = spec.cluster.os == Os::Windows;
    if let Some((old, state)) = at_dev {
        // After mirrorctl detached this server's old volume, anything else at the device is a
        // volume it knows nothing about: never detach a stranger.
        let detached = journal.step(op, &StepId::new(op, &StepKind::Detach, subject)).succeeded;
        let known = new.is_some_and(|n| old.tags.get(tag::SUPERSEDED_BY) == Some(&n.id.to_string()));
        if detached && !known {
            d.block(
                Reason::DeviceTaken,
                format!(
                    "{} on {} is taken by {}, which is neither the volume mirrorctl detached nor one it created",
                    device, s.name, old.id
                ),
                format!(
                    "find out who attached {} and detach it by hand; mirrorctl then attaches the restored volume",
                    old.id
                ),
            );
            return;
        }
        // With the OS shut down (NEC's pre-processing) no disk is in use and none can be listed.
        let disk = obs.disk(&s.name, &old.id).filter(|_| !os_down);
        let in_use = disk.is_some_and(|k| if windows { k.online } else { k.partitions.iter().any(|p| p.mounted) });
        if !windows && in_use {
            d.block(
                Reason::PartitionMounted,
                format!("a partition of {} is mounted on {}", old.id, s.name),
                "unmount the mirror partitions (mirrorctl never unmounts on its own), then retry",
            );
            return;
        }
        match state {
            AttachState::Attached | AttachState::Attaching => {
                if !os_down && obs.disks_of(&s.name).is_none() {
                    d.wait(Watch::DISKS, format!("{} cannot be asked for its disks", s.name), expect::DISK_APPEAR);
                } else if in_use {
                    d.step(
                        op,
                        &StepKind::DiskOffline,
                        subject,
                        Action::DiskOffline { server: s.name.clone(), volume: old.id.clone() },
                        format!("disk of {} is online on {}; detaching it now would hang busy", old.id, s.name),
                    );
                    // The tag needs nothing from the disk: it goes in the same batch, one pass
                    // less before the detach.
                    if let Some(new) = new.filter(|n| n.state == VolumeState::Available)
                        && old.tags.get(tag::SUPERSEDED_BY) != Some(&new.id.to_string())
                    {
                        tag_superseded(spec, op, subject, old, new, d);
                    }
                } else if let Some(new) = new {
                    if new.state == VolumeState::Creating {
                        d.wait(Watch::VOLUMES, format!("{} being created", new.id), expect::VOLUME_CREATE);
                    } else if new.state != VolumeState::Available {
                        d.block(
                            Reason::NewVolumeUnusable,
                            format!("new volume {} for {} is {:?}", new.id, s.name, new.state),
                            "inspect the volume in EC2; tag it mirrorctl:abandoned-by=manual and remove its mirrorctl:request tag to let mirrorctl create another",
                        );
                    } else if old.tags.get(tag::SUPERSEDED_BY) != Some(&new.id.to_string()) {
                        tag_superseded(spec, op, subject, old, new, d);
                    } else {
                        d.step(
                            op,
                            &StepKind::Detach,
                            subject,
                            Action::DetachVolume {
                                server: s.name.clone(),
                                volume: old.id.clone(),
                                instance: s.instance.clone(),
                            },
                            format!("{} is still attached to {} at {}", old.id, s.name, device),
                        );
                    }
                } else {
                    d.wait(
                        Watch::VOLUMES,
                        format!("the new volume for {} to be created", s.name),
                        expect::VOLUME_CREATE,
                    );
                }
            }
            AttachState::Busy => {
                if in_use {
                    d.step(
                        op,
                        &StepKind::DiskOffline,
                        subject,
                        Action::DiskOffline { server: s.name.clone(), volume: old.id.clone() },
                        format!("detach of {} is stuck busy because its disk is online on {}", old.id, s.name),
                    );
                } else {
                    d.wait(Watch::VOLUMES, format!("detach of {} from {} (was busy)", old.id, s.name), expect::DETACH);
                }
            }
            AttachState::Detaching | AttachState::Detached => {
                d.wait(Watch::VOLUMES, format!("detach of {} from {}", old.id, s.name), expect::DETACH);
            }
        }
        return;
    }
    // The device is free.
    match new {
        Some(new) if new.state == VolumeState::Available => d.step(
            op,
            &StepKind::Attach,
            subject,
            Action::AttachVolume {
                server: s.name.clone(),
                volume: new.id.clone(),
                instance: s.instance.clone(),
                device: device.clone(),
            },
            format!("{} on {} has no mirror volume; {} is ready", device, s.name, new.id),
        ),
        Some(new) if new.state == VolumeState::Creating => {
            d.wait(Watch::VOLUMES, format!("{} being created", new.id), expect::VOLUME_CREATE);
        }
        Some(new) if new.state == VolumeState::InUse => {
            let at: Vec<String> = new.attachments.iter().map(|a| format!("{} at {}", a.instance, a.device)).collect();
            d.block(
                Reason::NewVolumeAttachedElsewhere,
                format!("new volume {} for {} is attached to {}", new.id, s.name, at.join(", ")),
                "detach it from there by hand, then retry",
            );
        }
        Some(new) => d.block(
            Reason::NewVolumeUnusable,
            format!("new volume {} for {} is {:?}", new.id, s.name, new.state),
            "inspect the volume in EC2; remove its mirrorctl:request tag to let mirrorctl create another",
        ),
        None => d.wait(Watch::VOLUMES, format!("the new volume for {} to be created", s.name), expect::VOLUME_CREATE),
    }
}

/// The restore's refusals of a file whose md resources differ from the cluster's (see
/// [`super::shape`]).
fn shape_refusals(spec: &Spec, obs: &Observed, d: &mut Draft) {
    let shape = super::shape::Shape::of(spec, &obs.config);
    if !shape.unmentioned.is_empty() {
        d.block(
            Reason::MdNotInFile,
            format!(
                "the cluster has md resource(s) {} that {} does not name: restoring the others while they keep their data would break the set the backup was taken as",
                super::shape::Shape::list(&shape.unmentioned),
                spec.source.display()
            ),
            "add a [[mirror]] entry for each md resource of the cluster, then restore them together",
        );
    }
    // A configuration without any md is the single-md runbook's half-way state (md removed),
    // which the restore itself repairs; an md missing beside others is another cluster shape.
    if !shape.absent.is_empty() && !obs.config.mirrors.is_empty() {
        d.block(
            Reason::MdNotInCluster,
            format!(
                "{} names md resource(s) {} that the cluster's configuration does not have",
                spec.source.display(),
                super::shape::Shape::list(&shape.absent)
            ),
            "check the resource names in the [[mirror]] entries against clp.conf (clpstat shows them)",
        );
    }
    for (md, file, conf) in &shape.regrouped {
        d.block(
            Reason::MdInOtherGroup,
            format!("md resource {md} is in group {conf}, {} says {file}", spec.source.display()),
            format!("set group = \"{conf}\" in the entry of {md}, or move the resource in the cluster first"),
        );
    }
}

/// The refusal of a restore whose snapshot is not found.
fn snapshot_missing(spec: &Spec, obs: &Observed, r: &RestoreSpec) -> Condition {
    Condition {
        reason: Reason::SnapshotMissing,
        message: format!(
            "snapshot {} was not found in {} (owned by this account){}",
            r.snapshot,
            spec.cluster.region,
            super::candidates::nearest(spec, obs, &r.snapshot)
        ),
        action: format!(
            "check restore.snapshot in the desired-state file; `mirrorctl snapshots {}` lists this cluster's backups",
            spec.cluster.name
        ),
    }
}

/// What a restore checks before its first step: the file's md resources against the cluster's,
/// every snapshot it restores from ([`members`]), both instances, and each volume it replaces.
#[allow(clippy::too_many_lines)]
fn preflight(spec: &Spec, obs: &Observed, r: &RestoreSpec, members: &[Member], d: &mut Draft) {
    shape_refusals(spec, obs, d);
    let set = spec.several_volumes();
    if set && spec.mirror.volume.fast_restore {
        d.block(
            Reason::FastRestoreSetNotSupported,
            format!(
                "{} restores several volumes with mirror.volume.fast_restore = true; this version of mirrorctl uses Fast Snapshot Restore for a restore of one volume only",
                spec.source.display()
            ),
            "set fast_restore = false for this restore (the volumes then load lazily from S3), or restore by hand",
        );
    }
    let mut snaps = Vec::new();
    for m in members {
        let Some(snap) = obs.snapshot(&m.snapshot) else {
            let c = snapshot_missing(spec, obs, &RestoreSpec { snapshot: m.snapshot.clone(), ..r.clone() });
            d.block(c.reason, c.message, c.action);
            return;
        };
        snaps.push((m, snap));
    }
    for (_, snap) in &snaps {
        // One snapshot of a crash-consistent set restores one volume of it: the others would keep
        // their data, or the md would lack a partition.
        if !set
            && let Some(n) = snap.tags.get(tag::SET_SIZE).and_then(|n| n.parse::<usize>().ok())
            && n > 1
        {
            d.block(
                Reason::PartialSnapshotSet,
                format!(
                    "snapshot {} is one of the {n} snapshots of set {}; restoring it alone would break the set",
                    snap.id,
                    snap.tags.get(tag::SNAPSHOT_SET).map_or("?", String::as_str)
                ),
                "restore the whole set by its backup's name ([restore] backup = \"<name>\") with a file that describes every volume of it, or pick a snapshot of a single-volume backup",
            );
        }
        if snap.state != SnapshotState::Completed {
            d.block(
                Reason::SnapshotNotCompleted,
                format!(
                    "snapshot {} is {} ({}%); a restore needs a completed snapshot",
                    snap.id,
                    super::candidates::state_word(snap.state),
                    snap.progress
                ),
                "wait until it completes (mirrorctl checks again on every pass), or pick another snapshot",
            );
        }
        if let Some(owner) = snap.tags.get(tag::CLUSTER)
            && owner != spec.cluster.name.as_str()
            && !r.allow_foreign_snapshot
        {
            d.block(
                Reason::SnapshotOfAnotherCluster,
                format!("snapshot {} is tagged {}={owner}, not {}", snap.id, tag::CLUSTER, spec.cluster.name),
                "pick this cluster's snapshot, or set restore.allow_foreign_snapshot = true if this is really intended",
            );
        }
    }
    for s in &spec.cluster.servers {
        let Some(inst) = obs.instances.get(&s.instance) else { continue };
        if inst.zone != s.zone {
            d.block(
                Reason::ZoneMismatch,
                format!("{} ({}) is in {}, the desired state says {}", s.name, s.instance, inst.zone, s.zone),
                "fix the zone in the desired-state file; a volume in the wrong zone cannot be attached",
            );
        }
        if inst.state != InstanceState::Running {
            d.block(
                Reason::InstanceNotRunning,
                format!("{} ({}) is {:?}", s.name, s.instance, inst.state),
                "start the instance; the restore needs both servers running",
            );
        }
        if obs.shutdown.get(&s.instance) == Some(&ShutdownBehavior::Terminate) {
            d.block(
                Reason::InstanceTerminatesOnShutdown,
                format!("{} ({}) has InstanceInitiatedShutdownBehavior=terminate", s.name, s.instance),
                "set it to stop (aws ec2 modify-instance-attribute --instance-initiated-shutdown-behavior stop) before any operation that shuts a server down",
            );
        }
        for (m, snap) in &snaps {
            if let Some((v, _)) = at(obs, s, &m.device) {
                linux_paths_survive(spec, obs, s, v, m, d);
                if snap.size_gib < v.size_gib {
                    let what = if set {
                        format!("the volume of {} at {}", s.name, m.device)
                    } else {
                        format!("the mirror volume of {}", s.name)
                    };
                    d.block(
                        Reason::SnapshotTooSmall,
                        format!("snapshot {} is {} GiB, {what} is {} GiB", snap.id, snap.size_gib, v.size_gib),
                        "restore from a snapshot of a mirror disk of the same size",
                    );
                }
            } else {
                let key = if set { "the mirror's device and cluster_device" } else { "mirror.device" };
                d.block(
                    Reason::NoMirrorVolume,
                    format!("{} has no volume at {}", s.name, m.device),
                    format!("check {key} in the desired-state file"),
                );
            }
        }
        if obs.cluster.servers.get(&s.name) != Some(&true) {
            d.wait(Watch::INSTANCES, format!("{} to be a running cluster member", s.name), expect::INSTANCE_START);
        }
    }
}

/// The Fast Snapshot Restore calls the preflight proves permitted: with `fast_restore` on, the
/// snapshot in both servers' zones (unless it is too large for FSR, which then is not used).
fn fast_restore_probe(spec: &Spec, obs: &Observed, r: &RestoreSpec) -> Option<FastRestoreTarget> {
    if !spec.mirror.volume.fast_restore
        || obs.snapshot(&r.snapshot).is_some_and(|s| s.size_gib > super::fast_restore::MAX_SNAPSHOT_GIB)
    {
        return None;
    }
    let mut zones: Vec<Zone> = spec.cluster.servers.iter().map(|s| s.zone.clone()).collect();
    zones.sort();
    zones.dedup();
    Some(FastRestoreTarget { snapshot: r.snapshot.clone(), zones })
}

/// What the restore's preflight proves: both configuration pushes the restore makes (md removed
/// and the group on manual start; md re-added without the initial copy and automatic start)
/// apply to today's configuration, with the commands and identifiers they need.
fn preflight_request(spec: &Spec, procedure: Procedure) -> PreflightRequest {
    let (group, md) = (&spec.mirror.group, &spec.mirror.resource);
    if procedure == Procedure::Vendor {
        // NEC's commands leave the configuration as it is: nothing to push.
        return PreflightRequest {
            operation: Operation::Restore,
            group: group.clone(),
            md: md.clone(),
            procedure,
            pushes: Vec::new(),
        };
    }
    let groups = groups(spec);
    let mut remove: Vec<ConfigChange> =
        spec.mirrors().map(|m| ConfigChange::RemoveMirror { resource: m.resource.clone() }).collect();
    remove.extend(groups.iter().map(|g| ConfigChange::SetGroupAutoStart { group: (*g).clone(), auto: false }));
    let mut add: Vec<ConfigChange> = spec.mirrors().map(|m| ConfigChange::AddMirror(md_definition(m, false))).collect();
    add.extend(groups.iter().map(|g| ConfigChange::SetGroupAutoStart { group: (*g).clone(), auto: true }));
    PreflightRequest {
        operation: Operation::Restore,
        group: group.clone(),
        md: md.clone(),
        procedure,
        pushes: vec![remove, add],
    }
}

/// The md resource `m` as the restore re-adds it.
fn md_definition(m: &crate::spec::MirrorSpec, initial_copy: bool) -> MdDefinition {
    MdDefinition {
        resource: m.resource.clone(),
        group: m.group.clone(),
        data_partition: m.data_partition.clone(),
        cluster_partition: m.cluster_partition.clone(),
        initial_copy,
    }
}

/// Whether `path` is a kernel name of an `NVMe` partition (`/dev/nvme1n1p2`): `NVMe` namespaces are
/// numbered in the order the kernel finds them, so a detach and an attach may renumber them.
fn kernel_nvme_name(path: &str) -> bool {
    let Some(rest) = path.strip_prefix("/dev/nvme") else { return false };
    let mut parts = rest.splitn(2, 'n');
    let (Some(ctrl), Some(tail)) = (parts.next(), parts.next()) else { return false };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(ctrl) && tail.split_once('p').is_some_and(|(ns, part)| digits(ns) && digits(part))
}

/// Linux: the re-add writes the desired state's partition paths into `clp.conf` again, so they
/// must name the partitions on today's mirror disk (its kernel path or a link to it: the method
/// the re-add relies on reproduces today's disks) and must be names that survive the swap: a
/// link made from the attach device (`/dev/xvdb2`, which the restore keeps) or from the disk's
/// content (`/dev/disk/by-partuuid/…`, the same on both restored copies), not a kernel `NVMe` name.
#[allow(clippy::many_single_char_names)] // the planner's usual short names: spec, obs, server, volume, member, draft
fn linux_paths_survive(spec: &Spec, obs: &Observed, s: &ServerSpec, v: &Volume, m: &Member, d: &mut Draft) {
    if spec.cluster.os != Os::Linux {
        return;
    }
    let Some(disk) = obs.disk(&s.name, &v.id) else { return };
    for (md, cluster) in held(spec, &m.holds) {
        let (key, wanted) =
            if cluster { ("cluster_partition", &md.cluster_partition) } else { ("data_partition", &md.data_partition) };
        let what = if spec.several_volumes() { format!("{key} of md {}", md.resource) } else { key.to_owned() };
        let Partition::Device(path) = wanted else { continue };
        if kernel_nvme_name(path) {
            d.block(
                Reason::PartitionPathUnstable,
                format!(
                    "mirror.{what} = {path} is a kernel NVMe name: after the old volume is detached and the restored one \
                     attached it may name another disk, and md would be re-added over it"
                ),
                format!(
                    "name the partition by a link that survives the swap, in the desired-state file (mirrorctl writes it \
                     into clp.conf at the re-add): the attach-device link ({}N) or /dev/disk/by-partuuid/…",
                    m.device
                ),
            );
        } else if !disk.partitions.iter().any(|x| x.is_named(path)) {
            let seen: Vec<String> = disk.partitions.iter().map(|x| x.names().collect::<Vec<_>>().join(" = ")).collect();
            d.block(
                Reason::PartitionPathNotFound,
                format!(
                    "mirror.{what} = {path} names no partition of {} on {} (it shows: {})",
                    v.id,
                    s.name,
                    if seen.is_empty() { "no partition".to_owned() } else { seen.join("; ") }
                ),
                "set the partition paths in the desired-state file to names the servers show for the mirror disk",
            );
        }
    }
}

/// The md resource `md` as the restore re-adds it now: on Linux with the partition names of the
/// restored volumes ([`restored_paths`]); `None` (and a block) when there are none.
fn re_add_definition(
    spec: &Spec,
    obs: &Observed,
    md: &crate::spec::MirrorSpec,
    initial_copy: bool,
    d: &mut Draft,
) -> Option<MdDefinition> {
    let mut def = md_definition(md, initial_copy);
    if spec.cluster.os != Os::Linux {
        return Some(def);
    }
    match restored_paths(spec, obs, md) {
        Ok((cluster, data)) => {
            for (what, old, new) in
                [("cluster", &def.cluster_partition, &cluster), ("data", &def.data_partition, &data)]
            {
                if *old != Partition::Device(new.clone()) {
                    d.notes.push(format!(
                        "the {what} partition of the restored volumes is written as {new}: {old} does not name it on \
                         both servers"
                    ));
                }
            }
            def.cluster_partition = Partition::Device(cluster);
            def.data_partition = Partition::Device(data);
            Some(def)
        }
        Err(why) => {
            d.block(
                Reason::NoStablePartitionName,
                why,
                "give the restored partitions a name that is the same on both servers (a udev link, as NEC's guides \
                 do), or fix the partition paths in the desired-state file, then retry",
            );
            None
        }
    }
}

/// Linux: the names the re-add writes for the restored volumes' cluster and data partitions of
/// `md`. A name must name that partition on both servers (one `diskdev` path serves both: NEC
/// documents no per-server form) and must not be a kernel `NVMe` name. The desired state's path
/// when it does; else a name both servers show that follows the disk's content (`by-partuuid`,
/// the same on both copies of one disk), else any other common link. Found from the volume ids:
/// each server's new volume at the partition's device, the partition number of its layout tag.
fn restored_paths(spec: &Spec, obs: &Observed, md: &crate::spec::MirrorSpec) -> Result<(String, String), String> {
    let set = spec.several_volumes();
    let mut chosen = Vec::new();
    for (is_cluster, wanted) in [(true, &md.cluster_partition), (false, &md.data_partition)] {
        let device = if is_cluster { md.cluster_device.as_ref().unwrap_or(&md.device) } else { &md.device };
        let mut common: Option<Vec<String>> = None;
        let mut seen = Vec::new();
        for s in &spec.cluster.servers {
            let Some((v, _)) = at(obs, s, device) else {
                return Err(format!("{} has no mirror volume at {device}", s.name));
            };
            let n = parts_of(spec, set, v)
                .iter()
                .find(|p| p.md.resource == md.resource && p.cluster == is_cluster)
                .map_or(if is_cluster { DEFAULT_LAYOUT.cluster } else { DEFAULT_LAYOUT.data }, |p| p.number);
            let names: Vec<String> = obs
                .disk(&s.name, &v.id)
                .and_then(|dk| dk.partitions.iter().find(|p| p.number == n))
                .map(|p| p.names().map(str::to_owned).collect())
                .unwrap_or_default();
            seen.push(format!("{}: {}", s.name, if names.is_empty() { "none".to_owned() } else { names.join(" = ") }));
            common = Some(match common {
                None => names,
                Some(c) => c.into_iter().filter(|x| names.contains(x)).collect(),
            });
        }
        let common: Vec<String> = common.unwrap_or_default().into_iter().filter(|x| !kernel_nvme_name(x)).collect();
        let spec_path = match wanted {
            Partition::Device(p) => Some(p.clone()),
            Partition::Letter(_) => None,
        };
        let pick = spec_path
            .filter(|p| common.contains(p))
            .or_else(|| common.iter().find(|x| x.starts_with("/dev/disk/by-partuuid/")).cloned())
            .or_else(|| common.first().cloned());
        match pick {
            Some(p) => chosen.push(p),
            None => {
                return Err(format!(
                    "no name of the restored volumes' partition {} is the same on both servers ({})",
                    wanted,
                    seen.join("; ")
                ));
            }
        }
    }
    let [cluster, data] = <[String; 2]>::try_from(chosen).map_err(|_| "two partitions expected".to_owned())?;
    Ok((cluster, data))
}

/// Whether initial mirror construction of `md` can be skipped, and why (or why not): each of its
/// volumes on both servers was made from its snapshot ([`members`]) for this request, and its
/// group has stayed offline since.
fn initial_copy_decision(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    r: &RestoreSpec,
    op: &OpId,
    md: &crate::spec::MirrorSpec,
    members: &[Member],
) -> (bool, String) {
    let set = spec.several_volumes();
    let on = if set {
        format!("initial mirror construction ON for {}", md.resource)
    } else {
        "initial mirror construction ON".to_owned()
    };
    let mut same = true;
    for device in md.devices() {
        let snapshot = members.iter().find(|m| m.device == *device).map(|m| &m.snapshot);
        for s in &spec.cluster.servers {
            let Some((v, _)) = at(obs, s, device) else {
                return (true, format!("{} has no volume at {device}", s.name));
            };
            same &= snapshot.is_some()
                && v.snapshot.as_ref() == snapshot
                && v.tags.get(tag::SOURCE_SNAPSHOT).map(String::as_str) == snapshot.map(SnapshotId::as_str)
                && v.tags.get(tag::REQUEST).map(String::as_str) == Some(r.request.as_str());
        }
    }
    if !same {
        let why = if set {
            format!(
                "its volumes on the two servers did not all come from their snapshot of the set in request {}",
                r.request
            )
        } else {
            format!("the two sides did not both come from {} in request {}", r.snapshot, r.request)
        };
        return (true, format!("{on}: {why}"));
    }
    if step_started(journal, op, &StepKind::StartGroup) || step_started(journal, op, &StepKind::VerifyFailover) {
        return (true, format!("{on}: the group was started since the volumes were attached"));
    }
    if obs.cluster.groups.get(&md.group).is_some_and(|p| p.state != ObjectState::Offline) {
        return (true, format!("{on}: the group is not offline, a side may have been written"));
    }
    let why = if set {
        format!(
            "initial mirror construction OFF for {}: both sides of each of its volumes were created from the same snapshot of the set for request {} and the group has stayed offline since",
            md.resource, r.request
        )
    } else {
        format!(
            "initial mirror construction OFF: both sides were created from {} for request {} and the group has stayed offline since",
            r.snapshot, r.request
        )
    };
    (false, why)
}

#[allow(clippy::too_many_arguments, clippy::too_many_lines)]
fn finish(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    r: &RestoreSpec,
    op: &OpId,
    procedure: Procedure,
    members: &[Member],
    d: &mut Draft,
) {
    let groups = groups(spec);
    let primary = &spec.cluster.servers[0];
    // NEC's commands never take md out of the configuration nor change the start attribute.
    let manual: Vec<&GroupName> = groups
        .iter()
        .copied()
        .filter(|g| procedure != Procedure::Vendor && !obs.config.group_auto_start.get(*g).copied().unwrap_or(false))
        .collect();
    let absent: Vec<&crate::spec::MirrorSpec> =
        spec.mirrors().filter(|m| obs.config.mirror(&m.resource).is_none()).collect();

    if procedure == Procedure::Reconfigure && !absent.is_empty() {
        let mut changes = Vec::new();
        let mut whys = Vec::new();
        for m in &absent {
            let (initial_copy, why) = initial_copy_decision(spec, obs, journal, r, op, m, members);
            d.notes.push(why.clone());
            whys.push(why);
            let Some(def) = re_add_definition(spec, obs, m, initial_copy, d) else { return };
            changes.push(ConfigChange::AddMirror(def));
        }
        changes.extend(groups.iter().map(|g| ConfigChange::SetGroupAutoStart { group: (*g).clone(), auto: true }));
        d.step(
            op,
            &StepKind::AddMd,
            None,
            Action::ApplyConfig { changes },
            format!("both servers have their restored disk; {}", whys.join("; ")),
        );
        return;
    }
    if !manual.is_empty() {
        let verb = if manual.len() > 1 { "start" } else { "starts" };
        d.step(
            op,
            &StepKind::GroupAutoStart,
            None,
            Action::ApplyConfig {
                changes: manual
                    .iter()
                    .map(|g| ConfigChange::SetGroupAutoStart { group: (*g).clone(), auto: true })
                    .collect(),
            },
            format!("{} still {verb} manually", names(manual.iter().copied())),
        );
        return;
    }
    let mut online = true;
    for g in &groups {
        let placement = obs.cluster.groups.get(*g);
        let state = placement.map_or(ObjectState::Offline, |p| p.state);
        match state {
            ObjectState::Offline => {
                let mds = names(spec.mirrors().filter(|m| m.group == **g).map(|m| &m.resource));
                d.step(
                    op,
                    &StepKind::StartGroup,
                    group_subject(spec, g, Some(primary.name.as_str())).as_deref(),
                    Action::StartGroup { group: (*g).clone(), server: primary.name.clone() },
                    format!("{mds} is back in the configuration; business can start on {}", primary.name),
                );
            }
            ObjectState::OnlinePending | ObjectState::OfflinePending => {
                d.wait(Watch::CLUSTER, format!("group {g} changing state"), expect::CLUSTER_PENDING);
            }
            ObjectState::OnlineFailure | ObjectState::OfflineFailure | ObjectState::Unknown => {
                d.block(
                    Reason::GroupFailed,
                    format!("group {g} is {state:?} on {:?}", placement.and_then(|p| p.current.clone())),
                    "look at clpstat and the CLUSTERPRO logs on the servers; fix the failing resource, then retry",
                );
            }
            ObjectState::Online => continue,
        }
        online = false;
    }
    if !online {
        return;
    }
    if super::block_if_both_red(spec, obs, d) {
        return;
    }
    for m in spec.mirrors() {
        let status =
            if m.resource == spec.mirror.resource { obs.mirror.as_ref() } else { obs.other_mirrors.get(&m.resource) };
        if m.resource != spec.mirror.resource && super::block_if_red(&m.resource, &m.group, status, d) {
            return;
        }
        if !status.is_some_and(crate::ports::cluster::MirrorStatus::healthy) {
            let colors = status.map_or_else(
                || "unknown".to_owned(),
                |s| s.colors.iter().map(|(s, c)| format!("{s}={c:?}")).collect::<Vec<_>>().join(" "),
            );
            d.wait(Watch::CLUSTER, format!("mirror {} to be healthy ({colors})", m.resource), expect::MIRROR_SYNC);
            return;
        }
    }
    // The failover check moves each group from the primary (where `start-group` put it) to the
    // other server. Its target is fixed, not "wherever the group is not": a move interrupted after
    // it happened (its result not journaled) is recognised by observation and not repeated.
    let target = &spec.cluster.servers[1].name;
    for g in &groups {
        let subject = group_subject(spec, g, None);
        let verify = StepId::new(op, &StepKind::VerifyFailover, subject.as_deref());
        let sv = journal.step(op, &verify);
        let placement = obs.cluster.groups.get(*g);
        let moved =
            sv.succeeded || (sv.last_intent.is_some() && placement.and_then(|p| p.current.as_ref()) == Some(target));
        if r.verify_failover && !moved {
            d.step(
                op,
                &StepKind::VerifyFailover,
                subject.as_deref(),
                Action::MoveGroup { group: (*g).clone(), target: target.clone() },
                format!("restore.verify_failover: prove {g} runs on {target} too"),
            );
        }
    }
    if !d.steps.is_empty() {
        return;
    }
    d.step(op, &StepKind::Complete, None, Action::MarkCompleted, "every check of the restore passes");
}

/// Tags, never deletes, the unattached volumes made for requests the journal says were abandoned.
fn tag_abandoned(spec: &Spec, obs: &Observed, journal: &JournalView, op: &OpId, d: &mut Draft) {
    for (old, view) in &journal.ops {
        let (OpId::Restore(old_req), Some(OpId::Restore(by))) = (old, &view.abandoned_by) else { continue };
        for s in &spec.cluster.servers {
            for v in created_for(spec, obs, old_req, &s.name, None) {
                if v.attachments.is_empty() && !v.tags.contains_key(tag::ABANDONED_BY) {
                    d.step(
                        op,
                        &StepKind::TagAbandoned,
                        Some(v.id.as_str()),
                        Action::Tag {
                            resource: v.id.to_string(),
                            tags: [(tag::ABANDONED_BY.to_owned(), by.to_string())].into(),
                        },
                        format!("{} was made for abandoned request {old_req}; kept and listed, never deleted", v.id),
                    );
                }
            }
        }
    }
}

/// A restore request `old` replaced by `new` before anything but its preflight ran: no server to
/// bring back, only the journal to close.
pub(crate) fn close_unbegun(old: &OpId, new: &OpId) -> (Outcome, Vec<String>) {
    let mut d = Draft::default();
    d.step(
        old,
        &StepKind::Abandon,
        None,
        Action::MarkAbandoned { by: new.clone() },
        format!("{new} replaces {old}, which changed nothing yet"),
    );
    d.outcome()
}

/// The request changed while `old` was in flight: first make sure no server is left without a
/// mirror volume, then record `old` as abandoned so `new` can start.
///
/// A server the old request took into NEC's restore processing (`clprestore --pre`) is brought
/// back first: its volume attached, its instance started, on Windows its disk online with its
/// letters, then `clprestore --post` without `--skip-copy` (`safe-post@s`: which data each side now
/// holds is not proven, so the mirror is rebuilt by a copy); the new request starts from a cluster
/// whose servers are members again.
pub fn switch(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    old: &RequestName,
    r: &RestoreSpec,
) -> (Outcome, Vec<String>) {
    let new = &r.request;
    let op = OpId::Restore(old.clone());
    let new_op = OpId::Restore(new.clone());
    let mut d = Draft::default();
    d.notes.push(format!("restore request changed from {old} to {new} while {old} was in flight"));
    let set = spec.several_volumes();
    let mut devices: Vec<&DeviceName> = Vec::new();
    for dev in spec.mirrors().flat_map(crate::spec::MirrorSpec::devices) {
        if !devices.contains(&dev) {
            devices.push(dev);
        }
    }
    for s in &spec.cluster.servers {
        for device in &devices {
            let who = if set { format!("{} at {device}", s.name) } else { s.name.to_string() };
            match at(obs, s, device) {
                Some((v, AttachState::Detaching | AttachState::Busy)) => {
                    d.wait(
                        Watch::VOLUMES,
                        format!("detach of {} from {who} to settle before switching requests", v.id),
                        expect::DETACH,
                    );
                    continue;
                }
                Some(_) => continue,
                None => {}
            }
            // The device is empty: put back what this server should have, the volume made for the
            // old request if it is ready, else the volume it replaced.
            let candidates = created_for(spec, obs, old, &s.name, set.then_some(*device));
            let superseded: Vec<&Volume> = obs
                .volumes
                .iter()
                .filter(|v| candidates.iter().any(|c| v.tags.get(tag::SUPERSEDED_BY) == Some(&c.id.to_string())))
                .collect();
            let pick = candidates
                .iter()
                .chain(superseded.iter())
                .find(|v| v.state == VolumeState::Available && v.zone == s.zone)
                .copied();
            let subject = volume_subject(&s.name, device, set);
            match pick {
                Some(v) => d.step(
                    &op,
                    &StepKind::SafeAttach,
                    Some(subject.as_str()),
                    Action::AttachVolume {
                        server: s.name.clone(),
                        volume: v.id.clone(),
                        instance: s.instance.clone(),
                        device: (*device).clone(),
                    },
                    format!("{who} has no mirror volume; reattaching {} before switching requests", v.id),
                ),
                None => d.wait(Watch::VOLUMES, format!("a volume for {who} to become available"), expect::DETACH),
            }
        }
    }
    if d.steps.is_empty() && d.waits.is_empty() {
        for s in &spec.cluster.servers {
            vendor_bring_back(spec, obs, journal, r, &op, s, &mut d);
        }
    }
    if d.steps.is_empty()
        && d.waits.is_empty()
        && d.blocked.is_none()
        && !super::fast_restore::switch_off(journal, &op, "the request it was enabled for is abandoned", &mut d)
    {
        d.step(
            &op,
            &StepKind::Abandon,
            None,
            Action::MarkAbandoned { by: new_op },
            format!("request {new} replaces {old}; every server has a mirror volume"),
        );
        // The volumes the old request made are tagged by the new request's plan (see
        // `tag_abandoned`), pass after pass, so one that becomes visible late is tagged too.
    }
    d.outcome()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Condition;

    #[test]
    fn layout_tag_round_trip() {
        let l = Layout { cluster: 2, data: 3 };
        assert_eq!(Layout::from_tag(&l.to_tag()), Some(l));
        assert_eq!(Layout::from_tag("cluster=1"), None);
        assert_eq!(Layout::from_tag("x=1,data=2"), None);
    }

    #[test]
    fn condition_display_names_reason_and_action() {
        let c = Condition { reason: Reason::SnapshotMissing, message: "m".into(), action: "a".into() };
        assert_eq!(c.to_string(), "snapshot-missing: m (what to do: a)");
    }
}
