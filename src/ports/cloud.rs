//! The EC2 port: exactly the calls the runbook needs, plus the Describes that observe them.
//!
//! Idempotency lives in the callers, but the port carries what they need for it: `ClientToken` on
//! `CreateVolume`, tags inside every create call, `InstanceId` on every detach, device names that
//! treat `/dev/sdX` and `/dev/xvdX` as one ([`DeviceName`]).

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::{ErrorClass, PortResult};
use crate::ids::{DeviceName, InstanceId, Region, SnapshotId, VolumeId, Zone};

/// Tags as EC2 stores them: key → value.
pub type Tags = BTreeMap<String, String>;

/// Tag keys mirrorctl writes. Kept in one place so IAM conditions, filters and the planner agree.
pub mod tag {
    /// The cluster a resource belongs to.
    pub const CLUSTER: &str = "mirrorctl:cluster";
    /// The restore request or backup name that created it.
    pub const REQUEST: &str = "mirrorctl:request";
    /// The server it was made for (volumes) or taken from (snapshots).
    pub const SERVER: &str = "mirrorctl:server";
    /// `mirror` (a restored mirror-disk volume) or `backup` (a backup snapshot).
    pub const ROLE: &str = "mirrorctl:role";
    /// On a replaced volume: the volume that replaced it.
    pub const SUPERSEDED_BY: &str = "mirrorctl:superseded-by";
    /// On a volume created for a request that was abandoned: the request that replaced it.
    pub const ABANDONED_BY: &str = "mirrorctl:abandoned-by";
    /// On a restored volume or a cross-region copy: the snapshot it was created from.
    pub const SOURCE_SNAPSHOT: &str = "mirrorctl:source-snapshot";
    /// On a restored volume: which partition number holds the cluster and data partitions
    /// (`cluster=1,data=2`), recorded from the disk it replaces.
    pub const LAYOUT: &str = "mirrorctl:layout";
    /// On every snapshot of a crash-consistent set (`CreateSnapshots`): the set's id,
    /// `<cluster>/<backup name>`.
    pub const SNAPSHOT_SET: &str = "mirrorctl:snapshot-set";
    /// On every snapshot of a crash-consistent set: how many snapshots the set has.
    pub const SET_SIZE: &str = "mirrorctl:set-size";
    /// On each snapshot of a set: what its volume holds, `<md>:<partitions>` per md resource in
    /// file order, comma-separated, where `<partitions>` is `cluster+data`, `data` or `cluster`
    /// (`md1:data,md2:cluster` for a volume two md share). Written with `CreateTags` once the set
    /// exists: `CreateSnapshots` puts the same tags on every snapshot of the set.
    pub const HOLDS: &str = "mirrorctl:holds";
    /// On each snapshot of a set: the device its volume was attached at on the standby
    /// (`/dev/sdx`). Written with [`HOLDS`].
    pub const DEVICE: &str = "mirrorctl:device";
    /// On a scheduled backup snapshot: the schedule that took it (its retention group).
    pub const SCHEDULE: &str = "mirrorctl:schedule";
    /// On a cross-region copy: the region of the snapshot it was copied from.
    pub const SOURCE_REGION: &str = "mirrorctl:source-region";
    /// The usual AWS console name tag.
    pub const NAME: &str = "Name";
}

/// Volume lifecycle state (EC2 `State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    /// Being created.
    Creating,
    /// Ready, not attached.
    Available,
    /// Attached to an instance.
    InUse,
    /// Being deleted.
    Deleting,
    /// Deleted.
    Deleted,
    /// Failed.
    Error,
}

/// Attachment state (EC2 `Attachments[].State`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachState {
    /// Attaching.
    Attaching,
    /// Attached.
    Attached,
    /// Detaching.
    Detaching,
    /// Detached.
    Detached,
    /// Stuck: the OS still uses the device.
    Busy,
}

/// One attachment of a volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// The instance.
    pub instance: InstanceId,
    /// The device slot.
    pub device: DeviceName,
    /// Its state.
    pub state: AttachState,
}

/// A volume as `DescribeVolumes` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Volume {
    /// Id.
    pub id: VolumeId,
    /// Zone.
    pub zone: Zone,
    /// Size in GiB.
    pub size_gib: u32,
    /// State.
    pub state: VolumeState,
    /// The snapshot it was created from, if any.
    pub snapshot: Option<SnapshotId>,
    /// Attachments (zero or one for non-multi-attach volumes).
    pub attachments: Vec<Attachment>,
    /// Tags.
    pub tags: Tags,
    /// Type, as EC2 spells it.
    pub volume_type: String,
    /// When it was created.
    pub created: Timestamp,
    /// `FastRestored`: EC2 created it by Fast Snapshot Restore, fully initialized at once.
    #[serde(default)]
    pub fast_restored: bool,
}

/// Snapshot state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotState {
    /// Uploading; its point in time is already fixed.
    Pending,
    /// Done.
    Completed,
    /// Failed.
    Error,
}

/// A snapshot as `DescribeSnapshots` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// Id.
    pub id: SnapshotId,
    /// The volume it was taken from.
    pub volume: Option<VolumeId>,
    /// Size of that volume in GiB.
    pub size_gib: u32,
    /// State.
    pub state: SnapshotState,
    /// Progress, 0–100.
    pub progress: u8,
    /// When it was started (its point in time).
    pub started: Timestamp,
    /// Tags.
    pub tags: Tags,
}

/// Instance state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    /// Starting.
    Pending,
    /// Running.
    Running,
    /// Stopping.
    Stopping,
    /// Stopped.
    Stopped,
    /// Being terminated.
    ShuttingDown,
    /// Gone.
    Terminated,
}

/// What an OS-initiated shutdown does to the instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownBehavior {
    /// The instance stops (safe for backup).
    Stop,
    /// The instance is terminated (a backup's standby shutdown would destroy it).
    Terminate,
}

/// An instance as `DescribeInstances` reports it (with its shutdown behaviour from
/// `DescribeInstanceAttribute`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Id.
    pub id: InstanceId,
    /// Zone.
    pub zone: Zone,
    /// State.
    pub state: InstanceState,
    /// Block device mappings: device → volume.
    pub devices: Vec<(DeviceName, VolumeId)>,
}

/// Filters for `DescribeVolumes`; empty fields do not filter, and the given ones all apply (an
/// intersection, as in EC2).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeFilter {
    /// Exactly these volumes.
    pub ids: Vec<VolumeId>,
    /// Tags that must all match.
    pub tags: Tags,
    /// Attached to one of these instances.
    pub attached_to: Vec<InstanceId>,
}

/// Filters for `DescribeSnapshots` (always limited to the caller's own snapshots).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotFilter {
    /// Exactly these snapshots.
    pub ids: Vec<SnapshotId>,
    /// Tags that must all match.
    pub tags: Tags,
    /// Taken from this volume.
    pub volume: Option<VolumeId>,
}

/// `CreateVolume` parameters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateVolume {
    /// Zone to create it in.
    pub zone: Zone,
    /// Source snapshot.
    pub snapshot: SnapshotId,
    /// Size in GiB; `None` = the snapshot's size.
    pub size_gib: Option<u32>,
    /// Type (`gp3`…).
    pub volume_type: String,
    /// IOPS.
    pub iops: Option<u32>,
    /// Throughput (MiB/s).
    pub throughput: Option<u32>,
    /// KMS key; when set the volume is encrypted with it.
    pub kms_key: Option<String>,
    /// Volume initialization rate (MiB/s).
    pub initialization_rate: Option<u32>,
    /// Idempotency token (≤ 64 chars).
    pub client_token: String,
    /// Tags applied in the same call.
    pub tags: Tags,
}

/// `CreateSnapshot` parameters (no token exists: the tags are how it is found again).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSnapshot {
    /// The volume.
    pub volume: VolumeId,
    /// Description.
    pub description: String,
    /// Tags applied in the same call.
    pub tags: Tags,
}

/// `CreateSnapshots` parameters: one crash-consistent set of snapshots of data volumes attached to
/// one instance, all with the same point in time. Like `CreateSnapshot` it has no token; the tags
/// (the same on every snapshot of the set) are how the set is found again.
///
/// EC2 chooses the volumes from the instance: every attached volume, minus the boot volume
/// (`ExcludeBootVolume`, always set) and minus `exclude` (`ExcludeDataVolumeIds`). `volumes` is
/// the set the caller wants; `exclude` must name every other data volume the caller saw attached,
/// so that EC2's choice is exactly `volumes`. Tags are written by `TagSpecifications` only
/// (`CopyTagsFromSource` is not set: the mirror volumes' own tags do not belong on backups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateSnapshotSet {
    /// The instance whose volumes are snapshotted.
    pub instance: InstanceId,
    /// The data volumes of the set.
    pub volumes: Vec<VolumeId>,
    /// The instance's other data volumes, left out of the set by id.
    pub exclude: Vec<VolumeId>,
    /// Description of every snapshot.
    pub description: String,
    /// Tags applied to every snapshot in the same call.
    pub tags: Tags,
}

/// `CopySnapshot` parameters, sent to the destination region's EC2. The API has no idempotency
/// token (aws-sdk-ec2 1.274 `CopySnapshotFluentBuilder`: `SourceRegion`, `SourceSnapshotId`,
/// `Encrypted`, `KmsKeyId`, `TagSpecifications`, …, no `ClientToken`), so, as for `CreateSnapshot`,
/// the copy is tagged in the call and looked up by its tags before copying again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopySnapshot {
    /// The region holding the source snapshot.
    pub source_region: Region,
    /// The snapshot to copy.
    pub source: SnapshotId,
    /// Description of the copy.
    pub description: String,
    /// KMS key to encrypt the copy with (`Encrypted` + `KmsKeyId`); `None` keeps the source's
    /// encryption.
    pub kms_key: Option<String>,
    /// Tags applied in the same call.
    pub tags: Tags,
}

/// How far EBS has loaded a volume created from a snapshot (`DescribeVolumeStatus`:
/// `InitializationStatusDetails` and the `initialization-state` detail). Until it is complete,
/// a read of a block not loaded yet goes to S3 and is slow: an operator wants to see this after a
/// restore, before the business load returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeInit {
    /// The volume.
    pub volume: VolumeId,
    /// `default` (lazy loading), `provisioned-rate` (`VolumeInitializationRate`) or
    /// `volume-copy`, as EC2 names it; `None` when EC2 did not say.
    pub kind: Option<String>,
    /// Percent loaded (0–100), when reported.
    pub progress: Option<u8>,
    /// EC2's estimate of the seconds left, when reported.
    pub remaining_s: Option<u64>,
    /// Loading has finished (or the volume never needed it).
    pub complete: bool,
}

/// The state of Fast Snapshot Restore for one snapshot in one zone, as
/// `DescribeFastSnapshotRestores` names it (AWS EBS User Guide, "Check the fast snapshot restore
/// state": `enabling`, `optimizing` — 60 minutes per TiB, some benefit already —, `enabled`,
/// `disabling` — also after a failed enable —, `disabled`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FastRestoreState {
    /// Asked for.
    Enabling,
    /// Being prepared; volumes created now get only part of the benefit.
    Optimizing,
    /// Volumes created now (with a credit) are fully initialized at creation.
    Enabled,
    /// Being switched off (or an enable failed).
    Disabling,
    /// Off (also what a zone EC2 does not list is).
    Disabled,
}

impl FastRestoreState {
    /// The word EC2 uses.
    pub fn as_str(self) -> &'static str {
        match self {
            FastRestoreState::Enabling => "enabling",
            FastRestoreState::Optimizing => "optimizing",
            FastRestoreState::Enabled => "enabled",
            FastRestoreState::Disabling => "disabling",
            FastRestoreState::Disabled => "disabled",
        }
    }
    /// On, or on its way there: it bills per zone-hour from the request.
    pub fn is_on(self) -> bool {
        matches!(self, FastRestoreState::Enabling | FastRestoreState::Optimizing | FastRestoreState::Enabled)
    }
}

/// Fast Snapshot Restore of one snapshot in one zone (`DescribeFastSnapshotRestores` item, or an
/// item of `Successful` in the enable/disable answers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FastRestore {
    /// The snapshot.
    pub snapshot: SnapshotId,
    /// The zone.
    pub zone: Zone,
    /// Its state.
    pub state: FastRestoreState,
    /// `StateTransitionReason`, when given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `EnablingTime`: when the enable was asked for (the volume creation credit bucket fills
    /// from then).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabling_time: Option<Timestamp>,
}

/// The EC2 operations mirrorctl calls. Every implementation must surface AWS error codes
/// unchanged in [`super::PortError::code`].
#[async_trait::async_trait]
pub trait Cloud: Send + Sync {
    /// `DescribeVolumes` (all pages).
    async fn describe_volumes(&self, filter: &VolumeFilter) -> PortResult<Vec<Volume>>;
    /// `DescribeSnapshots`, owner `self` (all pages).
    async fn describe_snapshots(&self, filter: &SnapshotFilter) -> PortResult<Vec<Snapshot>>;
    /// `DescribeInstances` for these ids.
    async fn describe_instances(&self, ids: &[InstanceId]) -> PortResult<Vec<Instance>>;
    /// `DescribeVolumeStatus` for these volumes: how far each has been initialized from its
    /// snapshot. Volumes EC2 does not report are left out.
    async fn volume_initialization(&self, ids: &[VolumeId]) -> PortResult<Vec<VolumeInit>>;
    /// `DescribeInstanceAttribute` `instanceInitiatedShutdownBehavior`.
    async fn shutdown_behavior(&self, id: &InstanceId) -> PortResult<ShutdownBehavior>;
    /// `CreateVolume`. Same token + same parameters returns the same volume.
    async fn create_volume(&self, req: &CreateVolume) -> PortResult<Volume>;
    /// `AttachVolume`.
    async fn attach_volume(&self, volume: &VolumeId, instance: &InstanceId, device: &DeviceName) -> PortResult<()>;
    /// `DetachVolume` (always with the instance id).
    async fn detach_volume(&self, volume: &VolumeId, instance: &InstanceId) -> PortResult<()>;
    /// `CreateSnapshot` with tags in the call.
    async fn create_snapshot(&self, req: &CreateSnapshot) -> PortResult<Snapshot>;
    /// `CreateSnapshots`: one snapshot per volume of the set, one point in time for all, tags in
    /// the call. Returns the snapshots EC2 made (one per volume it chose).
    async fn create_snapshot_set(&self, req: &CreateSnapshotSet) -> PortResult<Vec<Snapshot>>;
    /// `CopySnapshot` into this port's region, tags in the call; returns the copy's id (its state
    /// is read with `DescribeSnapshots`: `pending` until the copy is done).
    async fn copy_snapshot(&self, req: &CopySnapshot) -> PortResult<SnapshotId>;
    /// `DeleteSnapshot` (retention only; volumes are never deleted).
    async fn delete_snapshot(&self, id: &SnapshotId) -> PortResult<()>;
    /// `StartInstances` for one instance.
    async fn start_instance(&self, id: &InstanceId) -> PortResult<()>;
    /// `CreateTags` on one resource (volume or snapshot id).
    async fn create_tags(&self, resource: &str, tags: &Tags) -> PortResult<()>;
    /// `DescribeFastSnapshotRestores` for one snapshot: one item per zone EC2 lists (a zone it
    /// does not list is `disabled`).
    async fn describe_fast_snapshot_restores(&self, snapshot: &SnapshotId) -> PortResult<Vec<FastRestore>>;
    /// `EnableFastSnapshotRestores` for one snapshot in `zones`. A zone EC2 refuses (an item of
    /// `Unsuccessful`) is an error carrying that item's code; enabling an enabled zone is not.
    async fn enable_fast_snapshot_restores(
        &self,
        snapshot: &SnapshotId,
        zones: &[Zone],
    ) -> PortResult<Vec<FastRestore>>;
    /// `DisableFastSnapshotRestores` for one snapshot in `zones`; disabling a disabled zone is
    /// not an error.
    async fn disable_fast_snapshot_restores(
        &self,
        snapshot: &SnapshotId,
        zones: &[Zone],
    ) -> PortResult<Vec<FastRestore>>;
    /// Whether this caller may enable and disable Fast Snapshot Restore of `snapshot` in `zones`:
    /// both calls with `DryRun` (`DryRunOperation` = permitted). Changes nothing.
    async fn fast_restore_permitted(&self, snapshot: &SnapshotId, zones: &[Zone]) -> PortResult<()>;

    /// EC2 of the same account in `region` (the destination of cross-region copies), with
    /// request budgets of its own: EC2 throttles per account and region.
    fn in_region(&self, region: &Region) -> PortResult<std::sync::Arc<dyn Cloud>>;

    /// EC2 calls made so far through this port, per API (`ec2:CreateVolume`, …), for status and
    /// metrics. Implementations that do not count return an empty map.
    fn call_counts(&self) -> BTreeMap<String, u64> {
        BTreeMap::new()
    }
}

/// The class of an EC2 error code, as DOMAIN.md lists them; the executor narrows it per operation
/// (`IncorrectState` is "already done" for a detach but "not yet" for an attach). Unknown codes are `NeedsHuman`:
/// guessing "retryable" for an error we do not understand could loop on a real problem.
pub fn classify(code: &str) -> ErrorClass {
    match code {
        "RequestLimitExceeded" | "Throttling" | "ThrottlingException" | "SnapshotCreationPerVolumeRateExceeded" => {
            ErrorClass::Throttled
        }
        "InternalError"
        | "InternalFailure"
        | "ServiceUnavailable"
        | "Unavailable"
        | "RequestTimeout"
        | "RequestTimeoutException"
        | "InsufficientVolumeCapacity"
        | "ConcurrentSnapshotLimitExceeded"
        | "InvalidVolume.NotFound"
        | "InvalidSnapshot.NotFound"
        | "InvalidInstanceID.NotFound"
        | "IncorrectInstanceState"
        | "Transport"
        | "Timeout"
        | "HttpStatus5xx" => ErrorClass::Retryable,
        "IncorrectState" | "InvalidAttachment.NotFound" => ErrorClass::AlreadyDone,
        _ => ErrorClass::NeedsHuman,
    }
}
