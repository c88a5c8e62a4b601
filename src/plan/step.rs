//! Steps: the unit of work the planner emits and the executor runs.
//!
//! A step has a stable id (`restore/incident-1/attach@server1`): the same step planned twice, in
//! two processes, gets the same id, which is what lets the journal recognise an interrupted step
//! after a crash and lets `ClientTokens` be derived from it.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::{
    BackupName, DeviceName, GroupName, InstanceId, Region, RequestName, ResourceName, ServerName, SnapshotId, VolumeId,
    Zone,
};
use crate::ports::cloud::{CopySnapshot, CreateSnapshot, CreateSnapshotSet, CreateVolume, Tags};
use crate::ports::cluster::{ConfigChange, PreflightRequest, Start, VendorCall};

/// An operation: one restore request or one backup. Every step belongs to one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum OpId {
    /// Restore both servers' mirror volumes from a snapshot for this request.
    Restore(RequestName),
    /// Take the backup of this name.
    Backup(BackupName),
    /// Delete backup snapshots beyond `keep`.
    Retention,
}

impl fmt::Display for OpId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpId::Restore(r) => write!(f, "restore/{r}"),
            OpId::Backup(b) => write!(f, "backup/{b}"),
            OpId::Retention => f.write_str("retention"),
        }
    }
}

impl OpId {
    /// The request or backup name as written into the `mirrorctl:request` tag.
    pub fn request_tag(&self) -> String {
        match self {
            OpId::Restore(r) => r.to_string(),
            OpId::Backup(b) => b.to_string(),
            OpId::Retention => "retention".to_owned(),
        }
    }
}

/// A step's stable id: `<op>/<kind>[@<subject>]`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StepId(pub String);

impl StepId {
    /// Builds the id of step `kind` of `op`, about `subject` (a server, volume or snapshot) if any.
    pub fn new(op: &OpId, kind: &str, subject: Option<&str>) -> Self {
        match subject {
            Some(s) => StepId(format!("{op}/{kind}@{s}")),
            None => StepId(format!("{op}/{kind}")),
        }
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A snapshot and the zones Fast Snapshot Restore is asked for in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastRestoreTarget {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// The zones, sorted, without repeats.
    pub zones: Vec<Zone>,
}

impl fmt::Display for FastRestoreTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let zones: Vec<&str> = self.zones.iter().map(Zone::as_str).collect();
        write!(f, "{} in {}", self.snapshot, zones.join(", "))
    }
}

/// What a step does. Every variant but the journal-only ones is one call on one port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "kebab-case")]
pub enum Action {
    /// CLUSTERPRO: stop a group.
    StopGroup {
        /// Group.
        group: GroupName,
    },
    /// CLUSTERPRO: start a group on a server.
    StartGroup {
        /// Group.
        group: GroupName,
        /// Server.
        server: ServerName,
    },
    /// CLUSTERPRO: move a group (failover check).
    MoveGroup {
        /// Group.
        group: GroupName,
        /// Target server.
        target: ServerName,
    },
    /// CLUSTERPRO: stop a resource and its dependents.
    StopResource {
        /// Resource.
        resource: ResourceName,
        /// The other resources that were online on the server when the stop was planned: those of
        /// them the stop takes down (md's dependents) are started again, after md, by the backup.
        /// Recorded with the intent, so a restart after a crash knows them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        online: Vec<ResourceName>,
    },
    /// CLUSTERPRO: start one resource on a server.
    StartResource {
        /// Resource.
        resource: ResourceName,
        /// Server.
        server: ServerName,
    },
    /// CLUSTERPRO: shut a server's OS down (the instance stops).
    ShutdownServer {
        /// Server.
        server: ServerName,
    },
    /// CLUSTERPRO: shut a server's OS down and, once it has left the cluster, start a group or
    /// resource on another server, in one request ([`crate::ports::cluster::Cluster::leave_then_start`]).
    LeaveThenStart {
        /// The server that leaves (its instance stops).
        server: ServerName,
        /// What starts once it has left.
        start: Start,
    },
    /// CLUSTERPRO: NEC's backup/restore pre- or post-processing on one server (X 4.3+).
    Vendor {
        /// Server.
        server: ServerName,
        /// The call.
        call: VendorCall,
    },
    /// CLUSTERPRO and the servers: prove every later step of the operation possible on the live
    /// cluster. Changes nothing; a failed check stops the operation before anything changed.
    Preflight {
        /// What to prove.
        request: PreflightRequest,
        /// Also prove, with `DryRun`, that EC2 lets this caller enable and disable Fast Snapshot
        /// Restore of this snapshot in these zones (a restore with `fast_restore = true`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        fast_restore: Option<FastRestoreTarget>,
    },
    /// CLUSTERPRO: push and apply configuration changes.
    ApplyConfig {
        /// The changes.
        changes: Vec<ConfigChange>,
    },
    /// EC2: create a volume from a snapshot. The token is derived by the executor.
    CreateVolume {
        /// For which server.
        server: ServerName,
        /// Parameters (the `client_token` field is filled in by the executor).
        request: CreateVolume,
    },
    /// EC2: attach.
    AttachVolume {
        /// Server.
        server: ServerName,
        /// Volume.
        volume: VolumeId,
        /// Instance.
        instance: InstanceId,
        /// Device.
        device: DeviceName,
    },
    /// EC2: detach.
    DetachVolume {
        /// Server.
        server: ServerName,
        /// Volume.
        volume: VolumeId,
        /// Instance.
        instance: InstanceId,
    },
    /// EC2: snapshot a volume (tags in the call; found by tag before creating again).
    CreateSnapshot {
        /// The server whose volume it is.
        server: ServerName,
        /// Parameters.
        request: CreateSnapshot,
    },
    /// EC2: snapshot several volumes of one instance as one crash-consistent set
    /// (`CreateSnapshots`; tags in the call; found by tag before creating again).
    CreateSnapshotSet {
        /// The server whose volumes they are.
        server: ServerName,
        /// Parameters.
        request: CreateSnapshotSet,
        /// What each volume of the set is: the tags ([`crate::ports::cloud::tag::HOLDS`],
        /// [`crate::ports::cloud::tag::DEVICE`]) each of its snapshots gets once the set exists,
        /// kept in the journal's intent so a resumed backup tags by what was planned.
        #[serde(default)]
        members: Vec<(crate::ids::VolumeId, Tags)>,
    },
    /// EC2: delete one of our backup snapshots (retention).
    DeleteSnapshot {
        /// Snapshot.
        snapshot: SnapshotId,
    },
    /// EC2 in `region`: copy a completed backup snapshot there (tags in the call; found by tag
    /// before copying again: the API has no token).
    CopySnapshot {
        /// The destination region.
        region: Region,
        /// Parameters.
        request: CopySnapshot,
    },
    /// EC2 in `region`: delete one of our copies there (retention of copies).
    DeleteCopy {
        /// The region holding it.
        region: Region,
        /// The copy.
        snapshot: SnapshotId,
    },
    /// EC2: start an instance.
    StartInstance {
        /// Server.
        server: ServerName,
        /// Instance.
        instance: InstanceId,
    },
    /// EC2: add tags.
    Tag {
        /// Volume or snapshot id.
        resource: String,
        /// Tags.
        tags: Tags,
    },
    /// Node: take a disk offline.
    DiskOffline {
        /// Server.
        server: ServerName,
        /// Volume behind the disk.
        volume: VolumeId,
    },
    /// Node: bring a disk online and clear read-only.
    DiskOnline {
        /// Server.
        server: ServerName,
        /// Volume behind the disk.
        volume: VolumeId,
    },
    /// Node: set a partition's drive letter (Windows).
    SetLetter {
        /// Server.
        server: ServerName,
        /// Volume behind the disk.
        volume: VolumeId,
        /// Partition number.
        partition: u32,
        /// Letter.
        letter: char,
    },
    /// EC2: enable Fast Snapshot Restore of a snapshot in zones (`EnableFastSnapshotRestores`).
    EnableFastRestore {
        /// Snapshot and zones.
        target: FastRestoreTarget,
    },
    /// EC2: disable it again (`DisableFastSnapshotRestores`).
    DisableFastRestore {
        /// Snapshot and zones.
        target: FastRestoreTarget,
    },
    /// Journal only: the operation is finished.
    MarkCompleted,
    /// Journal only: the operation is abandoned in favour of another.
    MarkAbandoned {
        /// The operation that replaces it.
        by: OpId,
    },
}

impl Action {
    /// Whether the step changes the world (and so needs an intent record first).
    pub fn is_mutating(&self) -> bool {
        !matches!(self, Action::MarkCompleted | Action::MarkAbandoned { .. })
    }

    /// A one-line human description, used by `plan` and progress output.
    pub fn describe(&self) -> String {
        match self {
            Action::StopGroup { group } => format!("stop group {group}"),
            Action::StartGroup { group, server } => format!("start group {group} on {server}"),
            Action::MoveGroup { group, target } => format!("move group {group} to {target} (failover check)"),
            Action::StopResource { resource, .. } => {
                format!("stop mirror disk resource {resource} and what depends on it (quiesce point)")
            }
            Action::StartResource { resource, server } => format!("start resource {resource} on {server}"),
            Action::ShutdownServer { server } => format!("shut down server {server} through CLUSTERPRO"),
            Action::LeaveThenStart { server, start } => {
                format!("shut down server {server} through CLUSTERPRO and, once it has left, start {start}")
            }
            Action::Vendor { server, call } => format!(
                "`{call}` on {server} (NEC's {} processing)",
                match call.phase {
                    crate::ports::cluster::VendorPhase::Pre => "pre",
                    crate::ports::cluster::VendorPhase::Post => "post",
                }
            ),
            Action::Preflight { request, fast_restore } => format!(
                "preflight: prove every step of the {} ({} procedure) possible on the live cluster (commands on both \
                 servers, configuration edits, identifiers{}), changing nothing",
                match request.operation {
                    crate::ports::cluster::Operation::Backup => "backup",
                    crate::ports::cluster::Operation::Restore => "restore",
                },
                request.procedure.as_str(),
                if fast_restore.is_some() { ", Fast Snapshot Restore permissions" } else { "" }
            ),
            Action::ApplyConfig { changes } => {
                let parts: Vec<String> = changes
                    .iter()
                    .map(|c| match c {
                        ConfigChange::RemoveMirror { resource } => format!("remove {resource} (and its monitors)"),
                        ConfigChange::AddMirror(def) => format!(
                            "add {} with initial mirror construction {}",
                            def.resource,
                            if def.initial_copy { "ON" } else { "OFF" }
                        ),
                        ConfigChange::SetGroupAutoStart { group, auto } => {
                            format!("set {group} startup {}", if *auto { "automatic" } else { "manual" })
                        }
                    })
                    .collect();
                format!("cluster configuration: {}; apply", parts.join(", "))
            }
            Action::CreateVolume { server, request } => format!(
                "create {} volume from {} in {} for {server}",
                request.volume_type, request.snapshot, request.zone
            ),
            Action::AttachVolume { server, volume, device, .. } => format!("attach {volume} to {server} at {device}"),
            Action::DetachVolume { server, volume, .. } => format!("detach {volume} from {server}"),
            Action::CreateSnapshot { server, request } => format!("snapshot {} ({server})", request.volume),
            Action::CreateSnapshotSet { server, request, .. } => {
                let v: Vec<String> = request.volumes.iter().map(ToString::to_string).collect();
                format!("snapshot {} as one set ({server})", v.join(" + "))
            }
            Action::DeleteSnapshot { snapshot } => format!("delete old backup snapshot {snapshot}"),
            Action::CopySnapshot { region, request } => format!("copy {} to {region}", request.source),
            Action::DeleteCopy { region, snapshot } => format!("delete old copy {snapshot} in {region}"),
            Action::StartInstance { server, instance } => format!("start instance {instance} ({server})"),
            Action::Tag { resource, tags } => {
                let t: Vec<String> = tags.iter().map(|(k, v)| format!("{k}={v}")).collect();
                format!("tag {resource} {}", t.join(" "))
            }
            Action::DiskOffline { server, volume } => format!("take disk of {volume} offline on {server}"),
            Action::DiskOnline { server, volume } => format!("bring disk of {volume} online on {server}"),
            Action::SetLetter { server, partition, letter, .. } => {
                format!("give partition {partition} the drive letter {letter}: on {server}")
            }
            Action::EnableFastRestore { target } => {
                format!("enable Fast Snapshot Restore of {target} (billed per zone-hour until disabled)")
            }
            Action::DisableFastRestore { target } => format!("disable Fast Snapshot Restore of {target}"),
            Action::MarkCompleted => "record completion".to_owned(),
            Action::MarkAbandoned { by } => format!("record abandonment in favour of {by}"),
        }
    }

    /// The API name used in call counters, faults and progress (`ec2:CreateVolume`, …).
    pub fn api(&self) -> &'static str {
        match self {
            Action::StopGroup { .. } => "clp:stop_group",
            Action::StartGroup { .. } => "clp:start_group",
            Action::MoveGroup { .. } => "clp:move_group",
            Action::StopResource { .. } => "clp:stop_resource",
            Action::StartResource { .. } => "clp:start_resource",
            Action::ShutdownServer { .. } => "clp:shutdown_server",
            Action::LeaveThenStart { .. } => "clp:leave_then_start",
            Action::Vendor { .. } => "clp:vendor",
            Action::ApplyConfig { .. } => "clp:apply_config",
            Action::Preflight { .. } => "clp:preflight",
            Action::CreateVolume { .. } => "ec2:CreateVolume",
            Action::AttachVolume { .. } => "ec2:AttachVolume",
            Action::DetachVolume { .. } => "ec2:DetachVolume",
            Action::CreateSnapshot { .. } => "ec2:CreateSnapshot",
            Action::CreateSnapshotSet { .. } => "ec2:CreateSnapshots",
            Action::DeleteSnapshot { .. } | Action::DeleteCopy { .. } => "ec2:DeleteSnapshot",
            Action::CopySnapshot { .. } => "ec2:CopySnapshot",
            Action::StartInstance { .. } => "ec2:StartInstances",
            Action::Tag { .. } => "ec2:CreateTags",
            Action::DiskOffline { .. } => "node:set_offline",
            Action::DiskOnline { .. } => "node:set_online",
            Action::SetLetter { .. } => "node:set_letter",
            Action::EnableFastRestore { .. } => "ec2:EnableFastSnapshotRestores",
            Action::DisableFastRestore { .. } => "ec2:DisableFastSnapshotRestores",
            Action::MarkCompleted | Action::MarkAbandoned { .. } => "journal",
        }
    }
}

/// One planned step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// Stable id.
    pub id: StepId,
    /// The operation it belongs to.
    pub op: OpId,
    /// What it does.
    pub action: Action,
    /// Why the planner wants it (the failed "already done?" check, in words).
    pub why: String,
}

/// Something the planner is waiting for (a state that changes by itself).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wait {
    /// What, in words.
    pub reason: String,
    /// When the next look is worth it: the remaining time at the real-world median.
    pub expect: Duration,
    /// Which parts of the world will change: the next pass reads them afresh.
    #[serde(default = "Watch::everything")]
    pub watch: Watch,
}

/// The parts of the world a wait depends on. The reconcile loop carries the rest of an
/// observation over from the previous pass (see [`crate::observe::Refresh`]); CLUSTERPRO status is
/// read on every pass anyway. Several waits merge by union.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[allow(clippy::struct_excessive_bools)]
pub struct Watch {
    /// EC2 instance states.
    pub instances: bool,
    /// EC2 volumes and attachments.
    pub volumes: bool,
    /// EC2 snapshots.
    pub snapshots: bool,
    /// The servers' disks.
    pub disks: bool,
    /// The CLUSTERPRO configuration (`clp.conf`).
    #[serde(default)]
    pub config: bool,
    /// Fast Snapshot Restore of the restore snapshot.
    #[serde(default)]
    pub fast_restore: bool,
}

impl Watch {
    /// CLUSTERPRO only (read on every pass).
    pub const CLUSTER: Watch =
        Watch { instances: false, volumes: false, snapshots: false, disks: false, config: false, fast_restore: false };
    /// The CLUSTERPRO configuration.
    pub const CONFIG: Watch =
        Watch { instances: false, volumes: false, snapshots: false, disks: false, config: true, fast_restore: false };
    /// EC2 instance states.
    pub const INSTANCES: Watch =
        Watch { instances: true, volumes: false, snapshots: false, disks: false, config: false, fast_restore: false };
    /// EC2 volumes and attachments.
    pub const VOLUMES: Watch =
        Watch { instances: false, volumes: true, snapshots: false, disks: false, config: false, fast_restore: false };
    /// EC2 snapshots.
    pub const SNAPSHOTS: Watch =
        Watch { instances: false, volumes: false, snapshots: true, disks: false, config: false, fast_restore: false };
    /// Fast Snapshot Restore of the restore snapshot.
    pub const FAST_RESTORE: Watch =
        Watch { instances: false, volumes: false, snapshots: false, disks: false, config: false, fast_restore: true };
    /// The servers' disks.
    pub const DISKS: Watch =
        Watch { instances: false, volumes: false, snapshots: false, disks: true, config: false, fast_restore: false };

    /// Everything (what a wait read back from an older status document watches).
    pub fn everything() -> Watch {
        Watch { instances: true, volumes: true, snapshots: true, disks: true, config: true, fast_restore: true }
    }

    /// Both watches.
    #[must_use]
    pub fn union(self, other: Watch) -> Watch {
        Watch {
            instances: self.instances || other.instances,
            volumes: self.volumes || other.volumes,
            snapshots: self.snapshots || other.snapshots,
            disks: self.disks || other.disks,
            config: self.config || other.config,
            fast_restore: self.fast_restore || other.fast_restore,
        }
    }
}

/// A condition that stops progress until a human (or time) changes something.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    /// Machine-readable reason, kebab-case (`snapshot-not-completed`).
    pub reason: String,
    /// What is wrong, with the ids involved.
    pub message: String,
    /// What the operator should do.
    pub action: String,
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (what to do: {})", self.reason, self.message, self.action)
    }
}
