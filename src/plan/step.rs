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
    pub fn new(op: &OpId, kind: &StepKind, subject: Option<&str>) -> Self {
        match subject {
            Some(s) => StepId(format!("{op}/{kind}@{s}")),
            None => StepId(format!("{op}/{kind}")),
        }
    }

    /// The `<kind>[@<subject>]` part: what follows the operation's last `/`.
    fn tail(&self) -> &str {
        self.0.rsplit_once('/').map_or(self.0.as_str(), |(_, tail)| tail)
    }

    /// The step's kind, read back from the id; `None` for an id no kind spells.
    pub fn kind(&self) -> Option<StepKind> {
        StepKind::parse(self.tail().split_once('@').map_or(self.tail(), |(kind, _)| kind))
    }

    /// The step's subject (a server, zone, volume or snapshot), if it has one.
    pub fn subject(&self) -> Option<&str> {
        self.tail().split_once('@').map(|(_, subject)| subject)
    }
}

impl fmt::Display for StepId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Declares the step kinds without data: the variant, its wire name, and its doc.
macro_rules! step_kinds {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// What kind of step a step is: the `<kind>` of its id `<op>/<kind>[@<subject>]`. `Display`
        /// gives the kind as step ids have always spelled it, since ids are journal keys and seed
        /// idempotency tokens; the kinds with data add a suffix (`stop-md-<md>`, `letter-<n>`).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum StepKind {
            $($(#[doc = $doc])* $variant,)*
            /// Stop an md resource: `stop-md` for the file's first md (`None`), `stop-md-<md>` for another.
            StopMd(Option<ResourceName>),
            /// Start an md resource alone: `start-md`, or `start-md-<md>` for an md after the first.
            StartMd(Option<ResourceName>),
            /// Start again a resource the quiesce stopped with md (`restart-<resource>`).
            Restart(ResourceName),
            /// Give a restored partition its drive letter (`letter-<partition number>`).
            Letter(u32),
            /// Copy a backup snapshot to another region (`copy-<region>`).
            Copy(Region),
            /// Delete a copy beyond its region's `keep` (`delete-copy-<region>`).
            DeleteCopy(Region),
        }

        impl StepKind {
            /// Every kind without data, in declaration order.
            pub const SIMPLE: &'static [StepKind] = &[$(StepKind::$variant,)*];

            fn simple_name(&self) -> Option<&'static str> {
                match self {
                    $(StepKind::$variant => Some($name),)*
                    _ => None,
                }
            }

            fn simple(name: &str) -> Option<StepKind> {
                match name {
                    $($name => Some(StepKind::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

step_kinds! {
    /// Prove every later step possible (changes nothing).
    Preflight = "preflight",
    /// Stop the failover group.
    StopGroup = "stop-group",
    /// Start the failover group.
    StartGroup = "start-group",
    /// Remove md from the cluster configuration.
    RemoveMd = "remove-md",
    /// Re-add md to the cluster configuration.
    AddMd = "add-md",
    /// Set the group's startup attribute back to automatic.
    GroupAutoStart = "group-auto-start",
    /// Move the group to check failover.
    VerifyFailover = "verify-failover",
    /// Shut the standby down through CLUSTERPRO.
    Shutdown = "shutdown",
    /// Take the standby out of the cluster and start business again, in one CLUSTERPRO request.
    ShutdownRestart = "shutdown-restart",
    /// Start an instance.
    StartInstance = "start-instance",
    /// Snapshot the standby's mirror volume.
    Snapshot = "snapshot",
    /// Snapshot the standby's volumes as one set.
    SnapshotSet = "snapshot-set",
    /// Tag a member of a snapshot set with what it holds.
    TagMember = "tag-member",
    /// Delete a backup snapshot beyond `keep`.
    DeleteSnapshot = "delete-snapshot",
    /// `clpbackup --pre`.
    BackupPre = "backup-pre",
    /// `clpbackup --post`.
    BackupPost = "backup-post",
    /// `clpbackup --post --only-reboot`.
    BackupReboot = "backup-reboot",
    /// `clpbackup --pre --only-shutdown`.
    BackupShutdown = "backup-shutdown",
    /// `clprestore --pre`.
    RestorePre = "restore-pre",
    /// `clprestore --post`.
    RestorePost = "restore-post",
    /// `clprestore --post --only-reboot`.
    RestoreReboot = "restore-reboot",
    /// `clprestore --pre --only-shutdown`.
    RestoreShutdown = "restore-shutdown",
    /// Create a volume from the snapshot.
    CreateVolume = "create-volume",
    /// Take the old disk offline in the OS.
    DiskOffline = "disk-offline",
    /// Detach the old volume.
    Detach = "detach",
    /// Attach the new volume.
    Attach = "attach",
    /// Bring the new disk online in the OS.
    DiskOnline = "disk-online",
    /// Tag the old volume `mirrorctl:superseded-by`.
    TagSuperseded = "tag-superseded",
    /// Abandon a request: put back what it changed.
    Abandon = "abandon",
    /// Tag a volume of an abandoned request `mirrorctl:abandoned-by`.
    TagAbandoned = "tag-abandoned",
    /// Abandon: attach the old volume again.
    SafeAttach = "safe-attach",
    /// Abandon: start the instance again.
    SafeStart = "safe-start",
    /// Abandon: `clprestore --post` on the old disk.
    SafePost = "safe-post",
    /// Enable Fast Snapshot Restore in a zone.
    EnableFsr = "enable-fsr",
    /// Disable Fast Snapshot Restore in a zone.
    DisableFsr = "disable-fsr",
    /// Mark the operation completed (journal only).
    Complete = "complete",
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StepKind::StopMd(None) => f.write_str("stop-md"),
            StepKind::StopMd(Some(md)) => write!(f, "stop-md-{md}"),
            StepKind::StartMd(None) => f.write_str("start-md"),
            StepKind::StartMd(Some(md)) => write!(f, "start-md-{md}"),
            StepKind::Restart(r) => write!(f, "restart-{r}"),
            StepKind::Letter(n) => write!(f, "letter-{n}"),
            StepKind::Copy(region) => write!(f, "copy-{region}"),
            StepKind::DeleteCopy(region) => write!(f, "delete-copy-{region}"),
            other => f.write_str(other.simple_name().unwrap_or_default()),
        }
    }
}

impl StepKind {
    /// Reads a kind back from its spelling; `None` for a spelling no kind has.
    pub fn parse(s: &str) -> Option<StepKind> {
        if let Some(k) = StepKind::simple(s) {
            return Some(k);
        }
        let md = |rest: &str| ResourceName::parse(rest).ok();
        match s {
            "stop-md" => Some(StepKind::StopMd(None)),
            "start-md" => Some(StepKind::StartMd(None)),
            _ => None,
        }
        .or_else(|| s.strip_prefix("stop-md-").and_then(md).map(|m| StepKind::StopMd(Some(m))))
        .or_else(|| s.strip_prefix("start-md-").and_then(md).map(|m| StepKind::StartMd(Some(m))))
        .or_else(|| s.strip_prefix("restart-").and_then(md).map(StepKind::Restart))
        .or_else(|| s.strip_prefix("letter-").and_then(|n| n.parse().ok()).map(StepKind::Letter))
        .or_else(|| s.strip_prefix("delete-copy-").and_then(|r| Region::parse(r).ok()).map(StepKind::DeleteCopy))
        .or_else(|| s.strip_prefix("copy-").and_then(|r| Region::parse(r).ok()).map(StepKind::Copy))
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
    /// Machine-readable reason (kebab-case on the wire: `snapshot-not-completed`).
    pub reason: Reason,
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

/// Declares the reasons without data: the variant, its wire name, and its doc.
macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $variant:ident = $name:literal,)*) => {
        /// Why an operation is blocked: a closed set, each with its kebab-case wire name (what
        /// status documents, the journal, notices and `apply -o json` carry, and what `Display`
        /// prints). `StepFailed` carries the error code of the failed call
        /// (`step-failed:<code>`).
        #[derive(Debug, Clone, PartialEq, Eq, Hash)]
        pub enum Reason {
            $($(#[doc = $doc])* $variant,)*
            /// A step's call failed for good (`step-failed:<code>`, the port error's code).
            StepFailed(String),
        }

        impl Reason {
            /// Every reason without data, in declaration order.
            pub const SIMPLE: &'static [Reason] = &[$(Reason::$variant,)*];

            /// The wire name of a reason without data; `None` for `StepFailed`.
            fn simple_name(&self) -> Option<&'static str> {
                match self {
                    $(Reason::$variant => Some($name),)*
                    Reason::StepFailed(_) => None,
                }
            }

            fn simple(name: &str) -> Option<Reason> {
                match name {
                    $($name => Some(Reason::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

reasons! {
    /// A backup set's snapshots do not hold what the file describes.
    BackupSetMismatch = "backup-set-mismatch",
    /// No backup of the requested name.
    BackupMissing = "backup-missing",
    /// A backup set's snapshots do not say what they hold.
    BackupSetUntagged = "backup-set-untagged",
    /// Part of a snapshot set is missing or failed.
    PartialSnapshotSet = "partial-snapshot-set",
    /// A set snapshot that the file's mirrors do not account for.
    SnapshotSetMemberUnknown = "snapshot-set-member-unknown",
    /// Another volume occupies the device slot.
    DeviceTaken = "device-taken",
    /// A restored disk's signature collides with another disk's.
    DiskSignatureCollision = "disk-signature-collision",
    /// More than one volume carries the tags of one created volume.
    DuplicateVolumes = "duplicate-volumes",
    /// Fast Snapshot Restore is not supported for a set restore.
    FastRestoreSetNotSupported = "fast-restore-set-not-supported",
    /// The failover group failed.
    GroupFailed = "group-failed",
    /// A server's instance does not exist.
    InstanceMissing = "instance-missing",
    /// A server's instance is not running when it must be.
    InstanceNotRunning = "instance-not-running",
    /// A server's instance is terminated.
    InstanceTerminated = "instance-terminated",
    /// A server's instance would terminate, not stop, on OS shutdown.
    InstanceTerminatesOnShutdown = "instance-terminates-on-shutdown",
    /// The md resource belongs to another group than the file says.
    MdInOtherGroup = "md-in-other-group",
    /// The file names md resources the cluster configuration lacks.
    MdNotInCluster = "md-not-in-cluster",
    /// The cluster has an md resource the file does not describe.
    MdNotInFile = "md-not-in-file",
    /// The md resource a backup needs is not in the cluster configuration.
    MirrorNotConfigured = "mirror-not-configured",
    /// The mirror is red on both servers.
    MirrorRedOnBothSides = "mirror-red-on-both-sides",
    /// A volume created for the restore is attached to another instance.
    NewVolumeAttachedElsewhere = "new-volume-attached-elsewhere",
    /// A volume created for the restore cannot be used.
    NewVolumeUnusable = "new-volume-unusable",
    /// A server has no volume at the mirror's device.
    NoMirrorVolume = "no-mirror-volume",
    /// A partition has no name that survives a volume swap.
    NoStablePartitionName = "no-stable-partition-name",
    /// A partition the file names is missing.
    PartitionMissing = "partition-missing",
    /// A partition is mounted when it must not be.
    PartitionMounted = "partition-mounted",
    /// A partition path the file names was not found.
    PartitionPathNotFound = "partition-path-not-found",
    /// A partition path the file names may change across a volume swap.
    PartitionPathUnstable = "partition-path-unstable",
    /// The preflight found a later step impossible; nothing was changed.
    PreflightFailed = "preflight-failed",
    /// The `[restore]` section was removed while a restore was in flight.
    RestoreSectionRemoved = "restore-section-removed",
    /// A step was tried too often.
    RetryBudgetExhausted = "retry-budget-exhausted",
    /// The file's shape is one this version does not drive.
    SeveralVolumesNotSupported = "several-volumes-not-supported",
    /// The restore snapshot does not exist.
    SnapshotMissing = "snapshot-missing",
    /// The restore snapshot is not `completed`.
    SnapshotNotCompleted = "snapshot-not-completed",
    /// The restore snapshot belongs to another cluster.
    SnapshotOfAnotherCluster = "snapshot-of-another-cluster",
    /// The restore snapshot is smaller than the disk.
    SnapshotTooSmall = "snapshot-too-small",
    /// The standby's instance is terminated.
    StandbyTerminated = "standby-terminated",
    /// No server can be named active.
    UnknownActiveServer = "unknown-active-server",
    /// The vendor procedure needs CLUSTERPRO X 4.3 or later.
    VendorProcedureUnsupported = "vendor-procedure-unsupported",
    /// The vendor procedure does not restore a set.
    VendorSetRestoreNotSupported = "vendor-set-restore-not-supported",
    /// A volume and an instance are in different zones.
    ZoneMismatch = "zone-mismatch",
}

const STEP_FAILED: &str = "step-failed:";

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self, self.simple_name()) {
            (Reason::StepFailed(code), _) => write!(f, "{STEP_FAILED}{code}"),
            (_, Some(name)) => f.write_str(name),
            (_, None) => unreachable!("every reason without data has a name"),
        }
    }
}

impl std::str::FromStr for Reason {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(code) = s.strip_prefix(STEP_FAILED) {
            return Ok(Reason::StepFailed(code.to_owned()));
        }
        Reason::simple(s).ok_or_else(|| format!("unknown condition reason {s:?}"))
    }
}

impl Serialize for Reason {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Reason {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Compares with the wire name (`reason == "snapshot-missing"`).
impl PartialEq<&str> for Reason {
    fn eq(&self, other: &&str) -> bool {
        match self {
            Reason::StepFailed(code) => other.strip_prefix(STEP_FAILED) == Some(code.as_str()),
            _ => self.simple_name() == Some(*other),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every reason's wire name as status files, notices and `apply -o json` have carried it.
    const WIRE: &[&str] = &[
        "backup-set-mismatch",
        "backup-missing",
        "backup-set-untagged",
        "partial-snapshot-set",
        "snapshot-set-member-unknown",
        "device-taken",
        "disk-signature-collision",
        "duplicate-volumes",
        "fast-restore-set-not-supported",
        "group-failed",
        "instance-missing",
        "instance-not-running",
        "instance-terminated",
        "instance-terminates-on-shutdown",
        "md-in-other-group",
        "md-not-in-cluster",
        "md-not-in-file",
        "mirror-not-configured",
        "mirror-red-on-both-sides",
        "new-volume-attached-elsewhere",
        "new-volume-unusable",
        "no-mirror-volume",
        "no-stable-partition-name",
        "partition-missing",
        "partition-mounted",
        "partition-path-not-found",
        "partition-path-unstable",
        "preflight-failed",
        "restore-section-removed",
        "retry-budget-exhausted",
        "several-volumes-not-supported",
        "snapshot-missing",
        "snapshot-not-completed",
        "snapshot-of-another-cluster",
        "snapshot-too-small",
        "standby-terminated",
        "unknown-active-server",
        "vendor-procedure-unsupported",
        "vendor-set-restore-not-supported",
        "zone-mismatch",
    ];

    #[test]
    fn every_reason_keeps_its_wire_name_and_round_trips() {
        let names: Vec<String> = Reason::SIMPLE.iter().map(ToString::to_string).collect();
        assert_eq!(names, WIRE, "a reason's wire name changed, or a reason was added without pinning it here");
        let mut all = Reason::SIMPLE.to_vec();
        all.push(Reason::StepFailed("InvalidVolume.ZoneMismatch".to_owned()));
        for r in all {
            let json = serde_json::to_string(&r).expect("serialises");
            assert_eq!(json, format!("\"{r}\""), "serialised as its Display");
            assert_eq!(serde_json::from_str::<Reason>(&json).expect("loads"), r);
            assert_eq!(r.to_string().parse::<Reason>(), Ok(r.clone()));
            assert!(r == r.to_string().as_str(), "{r} equals its wire name");
        }
    }

    #[test]
    fn a_step_failure_keeps_its_code_in_the_wire_name() {
        let r = Reason::StepFailed("AccessDenied".to_owned());
        assert_eq!(r.to_string(), "step-failed:AccessDenied");
        assert_eq!("step-failed:AccessDenied".parse::<Reason>(), Ok(r.clone()));
        assert!(r != "step-failed:Other" && r != "step-failed");
        let c = Condition { reason: r, message: "m".into(), action: "a".into() };
        assert_eq!(c.to_string(), "step-failed:AccessDenied: m (what to do: a)");
    }

    #[test]
    fn an_unknown_reason_does_not_load() {
        let e = serde_json::from_str::<Reason>("\"no-such-reason\"").expect_err("closed set");
        assert!(e.to_string().contains("no-such-reason"), "{e}");
    }

    /// Every kind's id as journals and idempotency tokens have known it: a changed spelling
    /// would orphan an interrupted step's journal record and burn a new token.
    #[test]
    fn every_step_kind_keeps_its_id() {
        let op = OpId::Restore(RequestName::parse("incident-1").expect("a name"));
        let md2 = ResourceName::parse("md2").expect("a name");
        let region = Region::parse("us-west-2").expect("a region");
        let mut kinds = StepKind::SIMPLE.to_vec();
        kinds.extend([
            StepKind::StopMd(None),
            StepKind::StopMd(Some(md2.clone())),
            StepKind::StartMd(None),
            StepKind::StartMd(Some(md2.clone())),
            StepKind::Restart(ResourceName::parse("service1").expect("a name")),
            StepKind::Letter(2),
            StepKind::Copy(region.clone()),
            StepKind::DeleteCopy(region),
        ]);
        let ids: Vec<String> = kinds.iter().map(|k| StepId::new(&op, k, Some("server1")).0).collect();
        let pinned: Vec<String> = [
            "preflight",
            "stop-group",
            "start-group",
            "remove-md",
            "add-md",
            "group-auto-start",
            "verify-failover",
            "shutdown",
            "shutdown-restart",
            "start-instance",
            "snapshot",
            "snapshot-set",
            "tag-member",
            "delete-snapshot",
            "backup-pre",
            "backup-post",
            "backup-reboot",
            "backup-shutdown",
            "restore-pre",
            "restore-post",
            "restore-reboot",
            "restore-shutdown",
            "create-volume",
            "disk-offline",
            "detach",
            "attach",
            "disk-online",
            "tag-superseded",
            "abandon",
            "tag-abandoned",
            "safe-attach",
            "safe-start",
            "safe-post",
            "enable-fsr",
            "disable-fsr",
            "complete",
            "stop-md",
            "stop-md-md2",
            "start-md",
            "start-md-md2",
            "restart-service1",
            "letter-2",
            "copy-us-west-2",
            "delete-copy-us-west-2",
        ]
        .iter()
        .map(|k| format!("restore/incident-1/{k}@server1"))
        .collect();
        assert_eq!(ids, pinned);
        for (kind, id) in kinds.iter().zip(&ids) {
            let id = StepId(id.clone());
            assert_eq!(id.kind().as_ref(), Some(kind), "{id} reads back its kind");
            assert_eq!(id.subject(), Some("server1"));
        }
        assert_eq!(StepId::new(&OpId::Retention, &StepKind::Complete, None).0, "retention/complete");
        assert_eq!(StepId("retention/complete".into()).subject(), None);
        assert_eq!(StepId("restore/r1/no-such-kind@s".into()).kind(), None);
    }
}
