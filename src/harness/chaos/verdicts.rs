//! The verdicts after each flow, on the simulated world's own state (inventory, data oracle) and
//! the status document: each broken invariant a [`Violation`].

use std::path::Path;

use crate::ids::{SnapshotId, VolumeId};
use crate::ports::cloud::tag;
use crate::sim::{SimWorld, verdict};
use crate::spec::Spec;
use crate::status::{OpPhase, Phase, StatusDoc};

/// One broken invariant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// Its kind (the tally counts by kind), e.g. `duplicate-volume`.
    pub kind: &'static str,
    /// What exactly was seen.
    pub detail: String,
}

pub(super) fn violation(kind: &'static str, detail: impl Into<String>) -> Violation {
    Violation { kind, detail: detail.into() }
}

/// The volumes of `world`, by id.
pub(super) fn volume_ids(world: &SimWorld) -> Vec<VolumeId> {
    world.inventory().volumes.into_iter().map(|v| v.id).collect()
}

/// Every resource of the world's group (md, the service depending on it, the virtual IP that does
/// not) online on `server` after `flow`: business is back exactly as it was.
pub(super) fn group_online_on(world: &SimWorld, server: &crate::ids::ServerName, flow: &str) -> Vec<Violation> {
    use crate::ports::cluster::ObjectState;
    world
        .cluster_status()
        .resources
        .iter()
        .filter(|(_, p)| p.state != ObjectState::Online || p.current.as_ref() != Some(server))
        .map(|(r, p)| {
            violation(
                "business-down",
                format!("{r} is {:?} on {:?} after {flow}, not online on {server}", p.state, p.current),
            )
        })
        .collect()
}

pub(super) fn tagged<'a>(tags: &'a crate::ports::cloud::Tags, key: &str) -> Option<&'a str> {
    tags.get(key).map(String::as_str)
}

/// The backup checks, on the world's own state: one snapshot of `backup` and of the cluster in
/// all, of the standby's volume, holding the one quiesce point; business online on the active; no
/// volume created or deleted (`before`: the volumes before the backup).
pub fn check_backup(world: &SimWorld, spec: &Spec, backup: &str, before: &[VolumeId]) -> Vec<Violation> {
    let mut out = Vec::new();
    let inv = world.inventory();
    let report = world.oracle_report();
    let cluster = spec.cluster.name.as_str();
    let ours: Vec<_> = inv.snapshots.iter().filter(|s| tagged(&s.tags, tag::CLUSTER) == Some(cluster)).collect();
    let of_backup: Vec<_> = ours.iter().filter(|s| tagged(&s.tags, tag::REQUEST) == Some(backup)).collect();
    if of_backup.len() != 1 || ours.len() != 1 {
        out.push(violation(
            "duplicate-snapshot",
            format!(
                "{} snapshots of backup {backup}, {} of the cluster in all (1 and 1 expected)",
                of_backup.len(),
                ours.len()
            ),
        ));
    }
    if inv.deleted_snapshots != 0 {
        out.push(violation("snapshot-deleted", format!("{} snapshots deleted", inv.deleted_snapshots)));
    }
    let standby = &spec.cluster.servers[1];
    if let [snap] = of_backup.as_slice() {
        let standby_volume = inv
            .instances
            .iter()
            .find(|i| i.id == standby.instance)
            .and_then(|i| i.devices.iter().find(|(d, _)| *d == spec.mirror.device).map(|(_, v)| v.clone()));
        if snap.volume.is_none() || snap.volume != standby_volume {
            out.push(violation(
                "wrong-snapshot-source",
                format!(
                    "snapshot {} is of {:?}, the standby's mirror volume is {standby_volume:?}",
                    snap.id, snap.volume
                ),
            ));
        }
        let backed_up = verdict::backup(world, &snap.id);
        if !backed_up.captured_once() {
            out.push(violation(
                "quiesce",
                format!(
                    "snapshot {} holds {:?}; quiesce points seen: {:?} (exactly one, equal to the snapshot, expected)",
                    snap.id,
                    backed_up.snapshot,
                    backed_up.quiesce_points.iter().map(ToString::to_string).collect::<Vec<_>>()
                ),
            ));
        }
    }
    if report.active.as_ref() != Some(&spec.cluster.servers[0].name) {
        out.push(violation("business-down", format!("md online on {:?} after the backup", report.active)));
    }
    out.extend(group_online_on(world, &spec.cluster.servers[0].name, "the backup"));
    out.extend(volumes_kept(&inv, before));
    let now: Vec<&VolumeId> = inv.volumes.iter().map(|v| &v.id).collect();
    if now.len() != before.len() {
        out.push(violation("duplicate-volume", format!("the backup changed the volume count: {before:?} → {now:?}")));
    }
    out.extend(corruption(&report));
    out
}

pub(super) fn volumes_kept(inv: &crate::sim::Inventory, before: &[VolumeId]) -> Vec<Violation> {
    let mut out = Vec::new();
    if inv.deleted_volumes != 0 {
        out.push(violation("volume-deleted", format!("{} volumes deleted", inv.deleted_volumes)));
    }
    for v in before {
        if !inv.volumes.iter().any(|x| x.id == *v) {
            out.push(violation("volume-deleted", format!("volume {v} is gone")));
        }
    }
    out
}

pub(super) fn corruption(report: &crate::sim::OracleReport) -> Vec<Violation> {
    report.corruptions.iter().map(|c| violation("corruption", c.clone())).collect()
}

/// What a restore should have left.
#[derive(Debug, Clone)]
pub struct RestoreExpect {
    /// The snapshot restored.
    pub snapshot: SnapshotId,
    /// The request in force at the end.
    pub request: String,
    /// A request abandoned for it, if the request changed.
    pub abandoned: Option<String>,
    /// The mirror volumes before the restore (they must be kept, detached, tagged superseded).
    pub originals: Vec<VolumeId>,
    /// Every volume before the restore (none may disappear).
    pub before: Vec<VolumeId>,
}

/// The restore checks, on the world's own state (see the module doc).
pub fn check_restore(world: &SimWorld, spec: &Spec, expect: &RestoreExpect) -> Vec<Violation> {
    let inv = world.inventory();
    let mut out = restored_volumes(world, &inv, spec, expect);
    let cluster = spec.cluster.name.as_str();
    let ours = inv.snapshots.iter().filter(|s| tagged(&s.tags, tag::CLUSTER) == Some(cluster)).count();
    if ours != 1 {
        out.push(violation(
            "duplicate-snapshot",
            format!("{ours} snapshots of the cluster after the restore (1 expected)"),
        ));
    }
    if inv.deleted_snapshots != 0 {
        out.push(violation("snapshot-deleted", format!("{} snapshots deleted", inv.deleted_snapshots)));
    }
    out.extend(restored_data(world, spec, expect));
    out
}

/// Volumes after a restore: one per server for the request, attached as its mirror disk; at most
/// one per server for an abandoned request; nothing deleted; the replaced ones kept and marked.
pub(super) fn restored_volumes(
    world: &SimWorld,
    inv: &crate::sim::Inventory,
    spec: &Spec,
    expect: &RestoreExpect,
) -> Vec<Violation> {
    let mut out = Vec::new();
    let cluster = spec.cluster.name.as_str();
    for s in &spec.cluster.servers {
        let of = |request: &str| -> Vec<&crate::ports::cloud::Volume> {
            inv.volumes
                .iter()
                .filter(|v| {
                    tagged(&v.tags, tag::CLUSTER) == Some(cluster)
                        && tagged(&v.tags, tag::REQUEST) == Some(request)
                        && tagged(&v.tags, tag::SERVER) == Some(s.name.as_str())
                })
                .collect()
        };
        let mine = of(&expect.request);
        match mine.as_slice() {
            [v] => {
                if world.mirror_volume(&s.name).as_ref() != Some(&v.id) {
                    out.push(violation(
                        "not-attached",
                        format!(
                            "{}'s mirror disk is {:?}, not its {} volume {}",
                            s.name,
                            world.mirror_volume(&s.name),
                            expect.request,
                            v.id
                        ),
                    ));
                }
            }
            [] => out.push(violation("missing-volume", format!("no {} volume for {}", expect.request, s.name))),
            many => out.push(violation(
                "duplicate-volume",
                format!(
                    "{} volumes of {} for {}: {:?}",
                    many.len(),
                    expect.request,
                    s.name,
                    many.iter().map(|v| &v.id).collect::<Vec<_>>()
                ),
            )),
        }
        if let Some(old) = &expect.abandoned {
            let theirs = of(old);
            if theirs.len() > 1 {
                out.push(violation(
                    "duplicate-volume",
                    format!("{} volumes of abandoned {old} for {}", theirs.len(), s.name),
                ));
            }
        }
    }
    out.extend(volumes_kept(inv, &expect.before));
    for old in &expect.originals {
        if let Some(v) = inv.volumes.iter().find(|v| v.id == *old)
            && (!v.attachments.is_empty() || !v.tags.contains_key(tag::SUPERSEDED_BY))
        {
            out.push(violation(
                "original-not-superseded",
                format!(
                    "replaced volume {old}: attachments {:?}, superseded-by {:?}",
                    v.attachments,
                    v.tags.get(tag::SUPERSEDED_BY)
                ),
            ));
        }
    }
    out
}

/// The data after a restore (the oracle): both sides identical, from the snapshot, without the
/// accident, no corruption; the group on the second server after one failover check.
pub(super) fn restored_data(world: &SimWorld, spec: &Spec, expect: &RestoreExpect) -> Vec<Violation> {
    let mut out = Vec::new();
    let report = world.oracle_report();
    let restored = verdict::restore(world, &expect.snapshot);
    match restored.sides.as_slice() {
        [(_, Some(a)), _] if restored.identical => {
            if !restored.accident_gone {
                out.push(violation("accident-kept", format!("both sides hold {a}, which contains the accident")));
            }
            if !restored.from_snapshot {
                let from = restored.snapshot;
                out.push(violation("not-from-snapshot", format!("both sides hold {a}; the snapshot holds {from:?}")));
            }
        }
        sides => out.push(violation("sides-differ", format!("mirror contents after the restore: {sides:?}"))),
    }
    out.extend(corruption(&report));
    let second = &spec.cluster.servers[1].name;
    if report.active.as_ref() != Some(second) {
        out.push(violation(
            "failover",
            format!("md online on {:?}, not on {second} after the failover check", report.active),
        ));
    }
    out.extend(group_online_on(world, second, "the restore"));
    if expect.abandoned.is_none() {
        let moves = world.call_counts().get("clp:move_group").copied().unwrap_or(0);
        if moves != 1 {
            out.push(violation("failover", format!("{moves} group moves (one failover check expected)")));
        }
    }
    out
}

/// The status document after a flow: converged, `op` completed, `abandoned` (if any) abandoned or
/// never started.
pub fn check_status(state_dir: &Path, spec: &Spec, op: &str, abandoned: Option<&str>) -> Vec<Violation> {
    let path = StatusDoc::path_for(state_dir, &spec.cluster.name);
    match StatusDoc::read(&path) {
        Ok(doc) => check_status_doc(&doc, op, abandoned),
        Err(e) => vec![violation("status", format!("cannot read {}: {e}", path.display()))],
    }
}

/// [`check_status`] on a document already read (from a shared store).
pub(super) fn check_status_doc(doc: &StatusDoc, op: &str, abandoned: Option<&str>) -> Vec<Violation> {
    let mut out = Vec::new();
    if !says_converged(doc, op) {
        let state = doc.operations.get(op).map_or_else(|| "absent".to_owned(), ToString::to_string);
        out.push(violation("status", format!("phase {}, {op}: {state}", doc.phase.as_str())));
    }
    if let Some(old) = abandoned
        && let Some(state) = doc.operations.get(old)
        && !matches!(state.state, OpPhase::Abandoned | OpPhase::Completed)
    {
        out.push(violation("status", format!("{old} is {state} after it was replaced")));
    }
    out
}

/// Whether `doc` says `op` completed and the cluster converged.
pub(super) fn says_converged(doc: &StatusDoc, op: &str) -> bool {
    doc.phase == Phase::Converged && doc.operations.get(op).is_some_and(|s| s.state == OpPhase::Completed)
}
