//! The simulator's own API for tests and the lab: queries (inventory, call counts, timeline, the
//! oracle's report) and interventions (accident, faults, extra snapshots, instance attributes).
//!
//! Why this module exists: tests must assert on things no port exposes (what a volume *holds*, how
//! many calls a flow made) and set up situations mirrorctl must survive (a human brought a disk
//! online, a stray volume took the device slot). None of this goes through the ports, so mirrorctl
//! cannot depend on it by accident.

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::fault::{FailRule, Fault};
use super::oracle::{Content, OracleReport};
use super::world::{AttachRec, OsDisk, VolumeRec, World};
use super::{Scenario, SimError, SimWorld};
use crate::ids::{InstanceId, ServerName, VolumeId};
use crate::ports::cloud::{
    AttachState, Instance, ShutdownBehavior, Snapshot, SnapshotState, Tags, Volume, VolumeState,
};

/// Everything EC2 holds, ignoring eventual consistency.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Inventory {
    /// Every volume (volumes are never deleted).
    pub volumes: Vec<Volume>,
    /// Every snapshot not deleted.
    pub snapshots: Vec<Snapshot>,
    /// Every instance with its attachments.
    pub instances: Vec<Instance>,
    /// Volumes deleted (always 0: no port can delete a volume).
    pub deleted_volumes: u64,
    /// Snapshots deleted through `DeleteSnapshot`.
    pub deleted_snapshots: u64,
}

impl World {
    fn server_instance(&self, server: &ServerName) -> Result<InstanceId, SimError> {
        self.clp
            .servers
            .get(server)
            .map(|s| s.instance.clone())
            .ok_or_else(|| SimError::Invalid(format!("no server named {server}")))
    }

    fn os_disk_mut(&mut self, server: &ServerName, volume: &VolumeId) -> Result<&mut OsDisk, SimError> {
        self.nodes
            .get_mut(server)
            .and_then(|n| n.disks.get_mut(volume))
            .ok_or_else(|| SimError::Invalid(format!("{server} has no disk for {volume}")))
    }

    /// A stray 8 GiB volume, attached at `device` on `server`'s instance behind mirrorctl's back.
    fn stray_attach(
        &mut self,
        server: &ServerName,
        device: &crate::ids::DeviceName,
        now: Timestamp,
    ) -> Result<(), SimError> {
        let inst = self.server_instance(server)?;
        let zone = self
            .ec2
            .instances
            .get(&inst)
            .map(|i| i.zone.clone())
            .ok_or_else(|| SimError::Invalid(format!("no instance {inst}")))?;
        let taken = self
            .ec2
            .volumes
            .values()
            .any(|v| v.attachment.as_ref().is_some_and(|a| a.instance == inst && a.device == *device));
        if taken {
            return Err(SimError::Invalid(format!("{device} is already in use on {inst}")));
        }
        let id = self.new_volume_id();
        let content = self.oracle.fresh();
        let signature = self.next_mix();
        let tags = Tags::from([("Name".to_owned(), "stray".to_owned())]);
        self.ec2.volumes.insert(
            id.clone(),
            VolumeRec {
                id: id.clone(),
                zone,
                size_gib: 8,
                volume_type: "gp3".to_owned(),
                state: VolumeState::InUse,
                ready_at: None,
                snapshot: None,
                attachment: Some(AttachRec {
                    instance: inst.clone(),
                    device: device.clone(),
                    state: AttachState::Attached,
                    until: None,
                }),
                tags,
                created: now,
                visible_at: now,
                content,
                signature,
                init_rate_mib_s: None,
                fast_restored: false,
            },
        );
        self.disk_arrived(server, &id);
        self.log(now, format!("fault: stray volume {id} attached to {inst} at {device}"));
        Ok(())
    }

    fn apply_fault(&mut self, fault: Fault, now: Timestamp) -> Result<(), SimError> {
        match fault {
            Fault::FailNext { op, code, class, count } => {
                self.log(now, format!("fault: next {count} {op} calls fail with {code}"));
                self.faults.push(FailRule { op, code, class, remaining: count, after_effect: false });
            }
            Fault::LoseResponse { op, count } => {
                self.log(now, format!("fault: next {count} {op} responses are lost"));
                self.faults.push(FailRule {
                    op,
                    code: "RequestTimeout".to_owned(),
                    class: crate::ports::ErrorClass::Retryable,
                    remaining: count,
                    after_effect: true,
                });
            }
            Fault::DiskOnline { server, volume } => {
                let d = self.os_disk_mut(&server, &volume)?;
                d.online = true;
                d.read_only = false;
                d.offline_reason = None;
                self.log(now, format!("fault: someone brought the disk of {volume} online on {server}"));
            }
            Fault::StrayAttach { server, device } => self.stray_attach(&server, &device, now)?,
            Fault::Mount { server, volume, number } => {
                let d = self.os_disk_mut(&server, &volume)?;
                if !d.mounted.contains(&number) {
                    d.mounted.push(number);
                }
                self.log(now, format!("fault: partition {number} of {volume} mounted on {server}"));
            }
            Fault::Unmount { server, volume, number } => {
                let d = self.os_disk_mut(&server, &volume)?;
                d.mounted.retain(|n| *n != number);
                self.log(now, format!("fault: partition {number} of {volume} unmounted on {server}"));
                self.release_if_busy(&volume, now);
            }
        }
        Ok(())
    }

    fn report(&self, now: Timestamp) -> OracleReport {
        OracleReport {
            at: now,
            volumes: self.ec2.volumes.values().map(|v| (v.id.clone(), v.content)).collect(),
            snapshots: self.ec2.snapshots.values().map(|s| (s.id.clone(), s.content)).collect(),
            servers: self.clp.servers.keys().map(|s| (s.clone(), self.mirror_content(s))).collect(),
            mirrors: self
                .clp
                .mds
                .iter()
                .enumerate()
                .map(|(i, m)| {
                    let sides = self.clp.servers.keys().map(|s| (s.clone(), self.md_content(i, s))).collect();
                    (m.name.clone(), sides)
                })
                .collect(),
            active: self.md_active(),
            last_quiesce: self
                .clp
                .mds
                .first()
                .and_then(|first| self.oracle.quiesce.iter().rev().find(|q| q.md == first.name).cloned()),
            quiesce_points: self.oracle.quiesce.clone(),
            accidents: self.oracle.accidents().to_vec(),
            corruptions: self.oracle.corruptions.clone(),
            writes: self.oracle.writes,
        }
    }
}

impl SimWorld {
    /// A mistaken deletion on the active server's data of every md online (one write each,
    /// flagged as an accident, then replicated like any write). Returns the first md's content
    /// right after it; `None` when it is not online anywhere.
    pub fn accident(&self) -> Option<Content> {
        self.with(|w, now| {
            let mut first = None;
            for i in 0..w.clp.mds.len() {
                let Some(active) = w.md_active_of(i) else { continue };
                let Some(c) = w.md_content(i, &active) else { continue };
                let after = w.oracle.accident(c);
                if let Some(v) = w.md_volume(i, &active)
                    && let Some(rec) = w.ec2.volumes.get_mut(&v)
                {
                    rec.content = after;
                }
                w.replicate(i, &active, 1, after);
                w.log(now, format!("accident: data deleted by mistake on {active} ({after})"));
                if i == 0 {
                    first = Some(after);
                }
            }
            first
        })
    }

    /// Injects a fault (see [`Fault`]).
    pub fn inject(&self, fault: Fault) -> Result<(), SimError> {
        self.with(|w, now| w.apply_fault(fault, now))
    }

    /// Creates a snapshot of `server`'s current mirror volume directly (no API call, no
    /// consistency window), in `state`, with `tags` — for preflight tests.
    pub fn add_snapshot(&self, server: &ServerName, tags: Tags, state: SnapshotState) -> Result<Snapshot, SimError> {
        self.with(|w, now| {
            let vol =
                w.mirror_volume(server).ok_or_else(|| SimError::Invalid(format!("{server} has no mirror volume")))?;
            let v = w.ec2.volumes.get(&vol).cloned().ok_or_else(|| SimError::Invalid(format!("no volume {vol}")))?;
            let median = w.scenario.latency.snapshot_s(v.size_gib);
            let mut rec = w.make_snapshot(&v, tags, state, median, now);
            rec.visible_at = now;
            let view = World::snapshot_view(&rec, now);
            w.log(now, format!("admin: snapshot {} of {vol} ({:?}, holds {})", rec.id, state, rec.content));
            w.ec2.snapshots.insert(rec.id.clone(), rec);
            Ok(view)
        })
    }

    /// Sets an instance's `instanceInitiatedShutdownBehavior`.
    pub fn set_shutdown_behavior(&self, instance: &InstanceId, behavior: ShutdownBehavior) -> Result<(), SimError> {
        self.with(|w, now| {
            let i = w
                .ec2
                .instances
                .get_mut(instance)
                .ok_or_else(|| SimError::Invalid(format!("no instance {instance}")))?;
            i.shutdown_behavior = behavior;
            w.log(now, format!("admin: {instance} shutdown behaviour {behavior:?}"));
            Ok(())
        })
    }

    /// Removes CLUSTERPRO command `tool` from `server`'s install directory (a damaged install):
    /// the operations that run it there fail with `ClpCommandNotFound`.
    pub fn remove_command(&self, server: &ServerName, tool: &str) {
        self.with(|w, now| {
            w.scenario.missing_commands.entry(server.clone()).or_default().push(tool.to_owned());
            w.log(now, format!("admin: {tool} removed from {server}"));
        });
    }

    /// CLUSTERPRO's status as the world holds it now (no call is counted, no time passes): for
    /// judging an outcome, e.g. that every resource of the group is back online.
    pub fn cluster_status(&self) -> crate::ports::cluster::ClusterStatus {
        self.with(|w, _| w.clp_status())
    }

    /// Sets how long new volumes and snapshots stay invisible to Describe.
    pub fn set_consistency_window(&self, window: Duration) {
        self.with(|w, _| w.scenario.consistency_window_s = window.as_secs_f64());
    }

    /// Calls made per operation (names as in [`super::OPERATIONS`]); throttled calls are also
    /// counted under `throttled:<operation>`.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.with(|w, _| w.calls.clone())
    }

    /// Everything EC2 holds, ignoring eventual consistency.
    pub fn inventory(&self) -> Inventory {
        self.with(|w, now| Inventory {
            volumes: w.ec2.volumes.values().map(World::volume_view).collect(),
            snapshots: w.ec2.snapshots.values().map(|s| World::snapshot_view(s, now)).collect(),
            instances: w.ec2.instances.values().map(|i| w.instance_view(i)).collect(),
            deleted_volumes: 0,
            deleted_snapshots: w.ec2.deleted_snapshots,
        })
    }

    /// Fast Snapshot Restore as EC2 holds it now, every snapshot and zone ever enabled.
    pub fn fast_restores(&self) -> Vec<crate::ports::cloud::FastRestore> {
        self.with(|w, now| {
            let snaps: std::collections::BTreeSet<_> = w.ec2.fsr.iter().map(|f| f.snapshot.clone()).collect();
            snaps.iter().flat_map(|s| w.ec2_describe_fsr(s, now)).collect()
        })
    }

    /// Zone-hours of Fast Snapshot Restore billed so far (it bills per zone-hour while on).
    pub fn fast_restore_zone_hours(&self) -> f64 {
        self.with(|w, now| w.fsr_zone_hours(now))
    }

    /// Sets how many snapshots of the region may have Fast Snapshot Restore on at once.
    pub fn set_fast_restore_limit(&self, limit: usize) {
        self.with(|w, _| w.scenario.fsr_snapshot_limit = limit);
    }

    /// The timeline of notable events, oldest first.
    pub fn timeline(&self) -> Vec<(Timestamp, String)> {
        self.with(|w, _| w.timeline.clone())
    }

    /// What the oracle knows about the data now.
    pub fn oracle_report(&self) -> OracleReport {
        self.with(|w, now| w.report(now))
    }

    /// Whether `content` contains an accident (following lineage parents).
    pub fn contains_accident(&self, content: Content) -> bool {
        self.with(|w, _| w.oracle.contains_accident(content))
    }

    /// Whether `content` is `ancestor` or was written on top of it.
    pub fn descends_from(&self, content: Content, ancestor: Content) -> bool {
        self.with(|w, _| w.oracle.descends_from(content, ancestor))
    }

    /// The scenario the world was built from (with later admin changes such as the consistency
    /// window).
    pub fn scenario(&self) -> Scenario {
        self.with(|w, _| w.scenario.clone())
    }

    /// The volume currently attached at the mirror device of `server`, if any.
    pub fn mirror_volume(&self, server: &ServerName) -> Option<VolumeId> {
        self.with(|w, _| w.mirror_volume(server))
    }

    /// The volume currently attached at `device` of `server`, if any (an md's data or cluster
    /// partition volume: see [`Scenario::mirrors`]).
    pub fn volume_at(&self, server: &ServerName, device: &crate::ids::DeviceName) -> Option<VolumeId> {
        self.with(|w, _| w.volume_at(server, device))
    }

    /// The whole world as JSON (for debugging and the lab's `--dump`).
    pub fn to_json(&self) -> Result<String, SimError> {
        self.with(|w, _| serde_json::to_string_pretty(w))
            .map_err(|source| SimError::Format { path: std::path::PathBuf::from("<memory>"), source })
    }
}
