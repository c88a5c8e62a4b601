//! SDK shapes → port types.
//!
//! Why this module exists: the SDK hands back `Option`s everywhere and open enums (a state EC2
//! adds tomorrow arrives as `Unknown`); the port's types are total and closed. Every conversion is
//! here, in one place, and fails with an `InvalidResponse` error that names the field — never a
//! panic, never a guessed default. Device names go through [`DeviceName::parse`], so `/dev/xvdx`
//! from the API and `/dev/sdx` from a desired-state file compare equal.

use aws_sdk_ec2::operation::create_snapshot::CreateSnapshotOutput;
use aws_sdk_ec2::operation::create_volume::CreateVolumeOutput;
use aws_sdk_ec2::primitives::DateTime;
use aws_sdk_ec2::types;
use jiff::Timestamp;

use super::error::invalid_response;
use crate::ids::{DeviceName, InstanceId, SnapshotId, VolumeId, Zone};
use crate::ports::cloud::{
    AttachState, Attachment, FastRestore, FastRestoreState, Instance, InstanceState, ShutdownBehavior, Snapshot,
    SnapshotState, Tags, Volume, VolumeInit, VolumeState,
};
use crate::ports::{PortError, PortResult};

/// The fields of a volume, shared by `DescribeVolumes` items and the `CreateVolume` output.
pub(super) struct VolumeFields<'a> {
    pub id: Option<&'a str>,
    pub zone: Option<&'a str>,
    pub size: Option<i32>,
    pub state: Option<&'a types::VolumeState>,
    pub snapshot: Option<&'a str>,
    pub attachments: &'a [types::VolumeAttachment],
    pub tags: &'a [types::Tag],
    pub volume_type: Option<&'a types::VolumeType>,
    pub created: Option<&'a DateTime>,
    pub fast_restored: Option<bool>,
}

impl<'a> From<&'a types::Volume> for VolumeFields<'a> {
    fn from(v: &'a types::Volume) -> Self {
        VolumeFields {
            id: v.volume_id(),
            zone: v.availability_zone(),
            size: v.size(),
            state: v.state(),
            snapshot: v.snapshot_id(),
            attachments: v.attachments(),
            tags: v.tags(),
            volume_type: v.volume_type(),
            created: v.create_time(),
            fast_restored: v.fast_restored(),
        }
    }
}

impl<'a> From<&'a CreateVolumeOutput> for VolumeFields<'a> {
    fn from(v: &'a CreateVolumeOutput) -> Self {
        VolumeFields {
            id: v.volume_id(),
            zone: v.availability_zone(),
            size: v.size(),
            state: v.state(),
            snapshot: v.snapshot_id(),
            attachments: v.attachments(),
            tags: v.tags(),
            volume_type: v.volume_type(),
            created: v.create_time(),
            fast_restored: v.fast_restored(),
        }
    }
}

/// The fields of a snapshot, shared by `DescribeSnapshots` items and the `CreateSnapshot` output.
pub(super) struct SnapshotFields<'a> {
    pub id: Option<&'a str>,
    pub volume: Option<&'a str>,
    pub size: Option<i32>,
    pub state: Option<&'a types::SnapshotState>,
    pub progress: Option<&'a str>,
    pub started: Option<&'a DateTime>,
    pub tags: &'a [types::Tag],
}

impl<'a> From<&'a types::Snapshot> for SnapshotFields<'a> {
    fn from(s: &'a types::Snapshot) -> Self {
        SnapshotFields {
            id: s.snapshot_id(),
            volume: s.volume_id(),
            size: s.volume_size(),
            state: s.state(),
            progress: s.progress(),
            started: s.start_time(),
            tags: s.tags(),
        }
    }
}

impl<'a> From<&'a types::SnapshotInfo> for SnapshotFields<'a> {
    fn from(s: &'a types::SnapshotInfo) -> Self {
        SnapshotFields {
            id: s.snapshot_id(),
            volume: s.volume_id(),
            size: s.volume_size(),
            state: s.state(),
            progress: s.progress(),
            started: s.start_time(),
            tags: s.tags(),
        }
    }
}

impl<'a> From<&'a CreateSnapshotOutput> for SnapshotFields<'a> {
    fn from(s: &'a CreateSnapshotOutput) -> Self {
        SnapshotFields {
            id: s.snapshot_id(),
            volume: s.volume_id(),
            size: s.volume_size(),
            state: s.state(),
            progress: s.progress(),
            started: s.start_time(),
            tags: s.tags(),
        }
    }
}

fn need<'a>(api: &str, what: &str, v: Option<&'a str>) -> PortResult<&'a str> {
    v.filter(|s| !s.is_empty()).ok_or_else(|| invalid_response(api, format!("the response has no {what}")))
}

fn parsed<T, E: std::fmt::Display>(api: &str, r: Result<T, E>) -> PortResult<T> {
    r.map_err(|e| invalid_response(api, e))
}

fn size_gib(api: &str, size: Option<i32>) -> PortResult<u32> {
    let s = size.ok_or_else(|| invalid_response(api, "the response has no size"))?;
    u32::try_from(s).map_err(|_| invalid_response(api, format!("negative size {s}")))
}

fn timestamp(api: &str, what: &str, t: Option<&DateTime>) -> PortResult<Timestamp> {
    let t = t.ok_or_else(|| invalid_response(api, format!("the response has no {what}")))?;
    let nanos = i32::try_from(t.subsec_nanos()).unwrap_or(0);
    Timestamp::new(t.secs(), nanos).map_err(|e| invalid_response(api, format!("{what} out of range: {e}")))
}

/// EC2 tags → [`Tags`] (a tag without a key is dropped; one without a value has the value "").
pub(super) fn tags(list: &[types::Tag]) -> Tags {
    list.iter().filter_map(|t| Some((t.key()?.to_owned(), t.value().unwrap_or_default().to_owned()))).collect()
}

/// [`Tags`] → EC2 tags.
pub(super) fn sdk_tags(tags: &Tags) -> Vec<types::Tag> {
    tags.iter().map(|(k, v)| types::Tag::builder().key(k).value(v).build()).collect()
}

fn volume_state(api: &str, s: Option<&types::VolumeState>) -> PortResult<VolumeState> {
    let s = s.ok_or_else(|| invalid_response(api, "a volume without a state"))?;
    Ok(match s.as_str() {
        "creating" => VolumeState::Creating,
        "available" => VolumeState::Available,
        "in-use" => VolumeState::InUse,
        "deleting" => VolumeState::Deleting,
        "deleted" => VolumeState::Deleted,
        "error" => VolumeState::Error,
        other => return Err(invalid_response(api, format!("unknown volume state {other:?}"))),
    })
}

fn attach_state(api: &str, s: Option<&types::VolumeAttachmentState>) -> PortResult<AttachState> {
    let s = s.ok_or_else(|| invalid_response(api, "an attachment without a state"))?;
    Ok(match s.as_str() {
        "attaching" => AttachState::Attaching,
        "attached" => AttachState::Attached,
        "detaching" => AttachState::Detaching,
        "detached" => AttachState::Detached,
        "busy" => AttachState::Busy,
        other => return Err(invalid_response(api, format!("unknown attachment state {other:?}"))),
    })
}

fn snapshot_state(api: &str, s: Option<&types::SnapshotState>) -> PortResult<SnapshotState> {
    let s = s.ok_or_else(|| invalid_response(api, "a snapshot without a state"))?;
    Ok(match s.as_str() {
        "pending" => SnapshotState::Pending,
        "completed" => SnapshotState::Completed,
        "error" => SnapshotState::Error,
        other => return Err(invalid_response(api, format!("unknown snapshot state {other:?}"))),
    })
}

fn instance_state(api: &str, s: Option<&types::InstanceStateName>) -> PortResult<InstanceState> {
    let s = s.ok_or_else(|| invalid_response(api, "an instance without a state"))?;
    Ok(match s.as_str() {
        "pending" => InstanceState::Pending,
        "running" => InstanceState::Running,
        "stopping" => InstanceState::Stopping,
        "stopped" => InstanceState::Stopped,
        "shutting-down" => InstanceState::ShuttingDown,
        "terminated" => InstanceState::Terminated,
        other => return Err(invalid_response(api, format!("unknown instance state {other:?}"))),
    })
}

/// Progress as EC2 writes it (`"42%"`, sometimes `""` while it starts) → 0–100.
fn progress(api: &str, state: SnapshotState, p: Option<&str>) -> PortResult<u8> {
    let text = p.unwrap_or_default().trim().trim_end_matches('%');
    if text.is_empty() {
        return Ok(if state == SnapshotState::Completed { 100 } else { 0 });
    }
    match text.parse::<u8>() {
        Ok(n) if n <= 100 => Ok(n),
        _ => Err(invalid_response(api, format!("snapshot progress {p:?} is not a percentage"))),
    }
}

/// One volume. An attachment whose device is not a data-volume slot (the root `/dev/sda1`,
/// `/dev/xvda`) cannot be a [`DeviceName`]; it is left out, and the volume's own state still says
/// `in-use`, so it is never mistaken for a free volume.
pub(super) fn volume(api: &str, v: &VolumeFields<'_>) -> PortResult<Volume> {
    let id = parsed(api, VolumeId::parse(need(api, "volume id", v.id)?))?;
    let mut attachments = Vec::with_capacity(v.attachments.len());
    for a in v.attachments {
        let device = need(api, "attachment device", a.device())?;
        let Ok(device) = DeviceName::parse(device) else {
            tracing::debug!(volume = %id, device, "attachment at a non-data device left out");
            continue;
        };
        attachments.push(Attachment {
            instance: parsed(api, InstanceId::parse(need(api, "attachment instance id", a.instance_id())?))?,
            device,
            state: attach_state(api, a.state())?,
        });
    }
    Ok(Volume {
        zone: parsed(api, Zone::parse(need(api, "availability zone", v.zone)?))?,
        size_gib: size_gib(api, v.size)?,
        state: volume_state(api, v.state)?,
        // moto (and EC2 for blank volumes) may send an empty snapshot id.
        snapshot: match v.snapshot.filter(|s| !s.is_empty()) {
            Some(s) => Some(parsed(api, SnapshotId::parse(s))?),
            None => None,
        },
        attachments,
        tags: tags(v.tags),
        volume_type: v.volume_type.map(|t| t.as_str().to_owned()).unwrap_or_default(),
        created: timestamp(api, "create time", v.created)?,
        // EC2 leaves the field out for volumes not created from a snapshot.
        fast_restored: v.fast_restored.unwrap_or(false),
        id,
    })
}

/// One snapshot.
pub(super) fn snapshot(api: &str, s: &SnapshotFields<'_>) -> PortResult<Snapshot> {
    let state = snapshot_state(api, s.state)?;
    Ok(Snapshot {
        id: parsed(api, SnapshotId::parse(need(api, "snapshot id", s.id)?))?,
        // Snapshots copied from another region carry the dummy volume id `vol-ffffffff`.
        volume: s.volume.filter(|v| !v.is_empty()).and_then(|v| VolumeId::parse(v).ok()),
        size_gib: size_gib(api, s.size)?,
        state,
        progress: progress(api, state, s.progress)?,
        started: timestamp(api, "start time", s.started)?,
        tags: tags(s.tags),
    })
}

/// One instance. Root and other non-data block devices are left out of `devices` (see
/// [`volume`]).
pub(super) fn instance(api: &str, i: &types::Instance) -> PortResult<Instance> {
    let id = parsed(api, InstanceId::parse(need(api, "instance id", i.instance_id())?))?;
    let zone = need(api, "availability zone", i.placement().and_then(types::Placement::availability_zone))?;
    let mut devices = Vec::new();
    for m in i.block_device_mappings() {
        let (Some(name), Some(vol)) = (m.device_name(), m.ebs().and_then(types::EbsInstanceBlockDevice::volume_id))
        else {
            continue;
        };
        let Ok(device) = DeviceName::parse(name) else { continue };
        let entry = (device, parsed(api, VolumeId::parse(vol))?);
        // moto keeps a stale mapping for each name a volume was attached under; list a slot once.
        if !devices.contains(&entry) {
            devices.push(entry);
        }
    }
    devices.sort();
    Ok(Instance {
        zone: parsed(api, Zone::parse(zone))?,
        state: instance_state(api, i.state().and_then(types::InstanceState::name))?,
        devices,
        id,
    })
}

/// The `instanceInitiatedShutdownBehavior` attribute.
/// One `DescribeVolumeStatus` item → its initialization. `InitializationStatusDetails` gives the
/// kind, percent and estimate; the older `initialization-state` detail (`initializing` /
/// `completed`) is used when they are absent.
pub(super) fn volume_init(api: &str, item: &types::VolumeStatusItem) -> PortResult<VolumeInit> {
    let volume = parsed(api, VolumeId::parse(need(api, "volume id", item.volume_id())?))?;
    let details = item.initialization_status_details();
    let progress = details.and_then(types::InitializationStatusDetails::progress).map(|p| {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let p = p.clamp(0, 100) as u8;
        p
    });
    let remaining_s = details
        .and_then(types::InitializationStatusDetails::estimated_time_to_complete_in_seconds)
        .and_then(|s| u64::try_from(s).ok());
    let kind = details.and_then(|d| d.initialization_type()).map(|k| k.as_str().to_owned());
    let state = item
        .volume_status()
        .map(types::VolumeStatusInfo::details)
        .unwrap_or_default()
        .iter()
        .find(|d| d.name() == Some(&types::VolumeStatusName::InitializationState))
        .and_then(types::VolumeStatusDetails::status);
    let complete = match (progress, state) {
        (_, Some(s)) if s.eq_ignore_ascii_case("completed") => true,
        (Some(p), _) => p >= 100,
        (None, s) => s.is_none(),
    };
    Ok(VolumeInit { volume, kind, progress, remaining_s, complete })
}

pub(super) fn shutdown_behavior(api: &str, value: Option<&str>) -> PortResult<ShutdownBehavior> {
    match need(api, "instanceInitiatedShutdownBehavior", value)? {
        "stop" => Ok(ShutdownBehavior::Stop),
        "terminate" => Ok(ShutdownBehavior::Terminate),
        other => Err(invalid_response(api, format!("unknown shutdown behavior {other:?}"))),
    }
}

/// `Some(error)` unless `e` is EC2's answer to an allowed dry run.
pub(super) fn dry_run_outcome(e: PortError) -> Result<(), PortError> {
    if e.code == "DryRunOperation" { Ok(()) } else { Err(e) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_and_unknown_states() {
        assert_eq!(progress("x", SnapshotState::Pending, Some("42%")).unwrap(), 42);
        assert_eq!(progress("x", SnapshotState::Completed, Some("")).unwrap(), 100);
        assert_eq!(progress("x", SnapshotState::Pending, None).unwrap(), 0);
        assert!(progress("x", SnapshotState::Pending, Some("lots")).is_err());
        let e = volume_state("DescribeVolumes", Some(&types::VolumeState::from("melting"))).unwrap_err();
        assert_eq!(e.code, "InvalidResponse");
        assert!(e.message.contains("melting"), "{}", e.message);
        assert!(snapshot_state("x", Some(&types::SnapshotState::from("recoverable"))).is_err());
        assert!(shutdown_behavior("x", Some("hibernate")).is_err());
        assert_eq!(shutdown_behavior("x", Some("terminate")).unwrap(), ShutdownBehavior::Terminate);
    }

    #[test]
    fn a_volume_without_an_id_is_an_error_not_a_panic() {
        let v = types::Volume::builder().build();
        assert_eq!(volume("DescribeVolumes", &(&v).into()).unwrap_err().code, "InvalidResponse");
    }
}

/// The fields of one Fast Snapshot Restore item, shared by the enable, disable and describe
/// answers (three SDK types of one shape).
pub(super) struct FsrFields<'a> {
    pub snapshot: Option<&'a str>,
    pub zone: Option<&'a str>,
    pub state: Option<&'a types::FastSnapshotRestoreStateCode>,
    pub reason: Option<&'a str>,
    pub enabling_time: Option<&'a DateTime>,
}

macro_rules! fsr_fields_from {
    ($t:ty) => {
        impl<'a> From<&'a $t> for FsrFields<'a> {
            fn from(i: &'a $t) -> Self {
                FsrFields {
                    snapshot: i.snapshot_id(),
                    zone: i.availability_zone(),
                    state: i.state(),
                    reason: i.state_transition_reason(),
                    enabling_time: i.enabling_time(),
                }
            }
        }
    };
}
fsr_fields_from!(types::EnableFastSnapshotRestoreSuccessItem);
fsr_fields_from!(types::DisableFastSnapshotRestoreSuccessItem);
fsr_fields_from!(types::DescribeFastSnapshotRestoreSuccessItem);

/// One Fast Snapshot Restore item.
pub(super) fn fast_restore(api: &str, f: &FsrFields<'_>) -> PortResult<FastRestore> {
    let state = match f.state {
        Some(types::FastSnapshotRestoreStateCode::Enabling) => FastRestoreState::Enabling,
        Some(types::FastSnapshotRestoreStateCode::Optimizing) => FastRestoreState::Optimizing,
        Some(types::FastSnapshotRestoreStateCode::Enabled) => FastRestoreState::Enabled,
        Some(types::FastSnapshotRestoreStateCode::Disabling) => FastRestoreState::Disabling,
        Some(types::FastSnapshotRestoreStateCode::Disabled) => FastRestoreState::Disabled,
        other => return Err(invalid_response(api, format!("unknown fast snapshot restore state {other:?}"))),
    };
    Ok(FastRestore {
        snapshot: parsed(api, SnapshotId::parse(need(api, "snapshot id", f.snapshot)?))?,
        zone: parsed(api, Zone::parse(need(api, "availability zone", f.zone)?))?,
        state,
        reason: f.reason.filter(|r| !r.is_empty()).map(str::to_owned),
        enabling_time: f.enabling_time.map(|t| timestamp(api, "enabling time", Some(t))).transpose()?,
    })
}

/// The answer to an `Enable`/`DisableFastSnapshotRestores` call: the first zone EC2 refused, as an
/// error, else the state of every zone it accepted.
pub(super) fn fsr_answer<'a, 'b>(
    api: &str,
    refused: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>, Option<&'a str>)>,
    accepted: impl IntoIterator<Item = FsrFields<'b>>,
) -> PortResult<Vec<FastRestore>> {
    if let Some(e) = fsr_refusal(api, refused) {
        return Err(e);
    }
    accepted.into_iter().map(|f| fast_restore(api, &f)).collect()
}

/// The first zone EC2 refused in an enable or disable answer (`Unsuccessful`), as the error it
/// carries: the call asks for one snapshot, so any refusal is about it.
pub(super) fn fsr_refusal<'a>(
    api: &str,
    errors: impl IntoIterator<Item = (Option<&'a str>, Option<&'a str>, Option<&'a str>)>,
) -> Option<PortError> {
    errors.into_iter().next().map(|(zone, code, message)| {
        PortError::ec2(
            code.filter(|c| !c.is_empty()).unwrap_or("FastSnapshotRestoreRefused"),
            format!("ec2:{api} in {}: {}", zone.unwrap_or("?"), message.unwrap_or("no message")),
        )
    })
}
