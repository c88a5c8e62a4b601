//! The strict EC2: volumes, snapshots, instances, with the refusals real EC2 makes.
//!
//! Why this module exists: moto accepts an AZ mismatch, a taken device name, a volume attached
//! elsewhere and ignores `ClientToken`s (DOMAIN.md); mirrorctl's idempotency and error handling can
//! only be tested against an EC2 that refuses those with the real error codes, moves through
//! `creating`/`attaching`/`detaching`/`pending` in model time, hides new resources for a moment
//! (eventual consistency), throttles per account, and leaves a detach `busy` while the OS still
//! holds the disk.

use std::sync::Arc;

use jiff::Timestamp;

use super::SimWorld;
use super::clock::secs;
use super::throttle::Bucket;
use super::world::{AttachRec, FsrRec, InstanceRec, SnapshotRec, TokenRec, VolumeRec, World};
use crate::ids::{DeviceName, InstanceId, Region, SnapshotId, VolumeId, Zone};
use crate::ports::cloud::{
    AttachState, Attachment, Cloud, CopySnapshot, CreateSnapshot, CreateSnapshotSet, CreateVolume, FastRestore,
    FastRestoreState, Instance, InstanceState, ShutdownBehavior, Snapshot, SnapshotFilter, SnapshotState, Tags, Volume,
    VolumeFilter, VolumeInit, VolumeState,
};
use crate::ports::{PortError, PortResult};

fn err(code: &str, msg: impl Into<String>) -> PortError {
    PortError::ec2(code, msg)
}

fn volume_not_found(id: &VolumeId) -> PortError {
    err("InvalidVolume.NotFound", format!("The volume '{id}' does not exist."))
}

fn snapshot_not_found(id: &SnapshotId) -> PortError {
    err("InvalidSnapshot.NotFound", format!("The snapshot '{id}' does not exist."))
}

fn instance_not_found(id: &InstanceId) -> PortError {
    err("InvalidInstanceID.NotFound", format!("The instance ID '{id}' does not exist"))
}

fn tags_match(have: &Tags, want: &Tags) -> bool {
    want.iter().all(|(k, v)| have.get(k) == Some(v))
}

impl World {
    pub(super) fn volume_view(v: &VolumeRec) -> Volume {
        Volume {
            id: v.id.clone(),
            zone: v.zone.clone(),
            size_gib: v.size_gib,
            state: v.state,
            snapshot: v.snapshot.clone(),
            attachments: v
                .attachment
                .iter()
                .map(|a| Attachment { instance: a.instance.clone(), device: a.device.clone(), state: a.state })
                .collect(),
            tags: v.tags.clone(),
            volume_type: v.volume_type.clone(),
            created: v.created,
            fast_restored: v.fast_restored,
        }
    }

    pub(super) fn snapshot_view(s: &SnapshotRec, now: Timestamp) -> Snapshot {
        let progress = match s.state {
            SnapshotState::Completed => 100,
            SnapshotState::Error => 0,
            SnapshotState::Pending => {
                let total = secs(s.started, s.until);
                let done = if total > 0.0 { (secs(s.started, now) / total).clamp(0.0, 0.99) } else { 0.0 };
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0..=99
                let p = (done * 100.0).floor() as u8;
                p
            }
        };
        Snapshot {
            id: s.id.clone(),
            volume: s.volume.clone(),
            size_gib: s.size_gib,
            state: s.state,
            progress,
            started: s.started,
            tags: s.tags.clone(),
        }
    }

    pub(super) fn instance_view(&self, i: &InstanceRec) -> Instance {
        let mut devices: Vec<(DeviceName, VolumeId)> = self
            .ec2
            .volumes
            .values()
            .filter_map(|v| {
                let a = v.attachment.as_ref()?;
                (a.instance == i.id).then(|| (a.device.clone(), v.id.clone()))
            })
            .collect();
        devices.sort();
        Instance { id: i.id.clone(), zone: i.zone.clone(), state: i.state, devices }
    }

    fn visible_volume(&self, id: &VolumeId, now: Timestamp) -> PortResult<&VolumeRec> {
        self.ec2.volumes.get(id).filter(|v| v.visible_at <= now).ok_or_else(|| volume_not_found(id))
    }

    fn visible_snapshot(&self, id: &SnapshotId, now: Timestamp) -> PortResult<&SnapshotRec> {
        self.visible_snapshot_in(None, id, now)
    }

    /// A snapshot visible in `region` (`None`: the scenario's own region).
    fn visible_snapshot_in(
        &self,
        region: Option<&Region>,
        id: &SnapshotId,
        now: Timestamp,
    ) -> PortResult<&SnapshotRec> {
        self.ec2
            .snapshots
            .get(id)
            .filter(|s| s.visible_at <= now && s.region.as_ref() == region)
            .ok_or_else(|| snapshot_not_found(id))
    }

    fn ec2_describe_volumes(&self, f: &VolumeFilter, now: Timestamp) -> PortResult<Vec<Volume>> {
        for id in &f.ids {
            self.visible_volume(id, now)?;
        }
        Ok(self
            .ec2
            .volumes
            .values()
            .filter(|v| v.visible_at <= now)
            .filter(|v| f.ids.is_empty() || f.ids.contains(&v.id))
            .filter(|v| tags_match(&v.tags, &f.tags))
            .filter(|v| {
                f.attached_to.is_empty() || v.attachment.as_ref().is_some_and(|a| f.attached_to.contains(&a.instance))
            })
            .map(World::volume_view)
            .collect())
    }

    fn ec2_describe_snapshots(
        &self,
        region: Option<&Region>,
        f: &SnapshotFilter,
        now: Timestamp,
    ) -> PortResult<Vec<Snapshot>> {
        for id in &f.ids {
            self.visible_snapshot_in(region, id, now)?;
        }
        Ok(self
            .ec2
            .snapshots
            .values()
            .filter(|s| s.visible_at <= now && s.region.as_ref() == region)
            .filter(|s| f.ids.is_empty() || f.ids.contains(&s.id))
            .filter(|s| tags_match(&s.tags, &f.tags))
            .filter(|s| f.volume.as_ref().is_none_or(|v| s.volume.as_ref() == Some(v)))
            .map(|s| World::snapshot_view(s, now))
            .collect())
    }

    fn ec2_describe_instances(&self, ids: &[InstanceId]) -> PortResult<Vec<Instance>> {
        for id in ids {
            if !self.ec2.instances.contains_key(id) {
                return Err(instance_not_found(id));
            }
        }
        Ok(self
            .ec2
            .instances
            .values()
            .filter(|i| ids.is_empty() || ids.contains(&i.id))
            .map(|i| self.instance_view(i))
            .collect())
    }

    fn ec2_create_volume(&mut self, req: &CreateVolume, now: Timestamp) -> PortResult<Volume> {
        if req.client_token.is_empty() || req.client_token.len() > 64 {
            return Err(err("InvalidParameterValue", "ClientToken must be 1 to 64 characters"));
        }
        if let Some(rec) = self.ec2.tokens.get(&req.client_token) {
            if rec.params != *req {
                return Err(err(
                    "IdempotentParameterMismatch",
                    format!("The client token '{}' was already used with different parameters.", req.client_token),
                ));
            }
            return match &rec.outcome {
                Ok(id) => self.ec2.volumes.get(id).map(World::volume_view).ok_or_else(|| volume_not_found(id)),
                Err(e) => Err(e.clone()),
            };
        }
        let outcome = self.create_volume_once(req, now);
        self.ec2.tokens.insert(
            req.client_token.clone(),
            TokenRec { params: req.clone(), outcome: outcome.as_ref().map(|v| v.id.clone()).map_err(Clone::clone) },
        );
        outcome
    }

    fn create_volume_once(&mut self, req: &CreateVolume, now: Timestamp) -> PortResult<Volume> {
        if req.zone.region() != self.scenario.region {
            return Err(err(
                "InvalidVolume.ZoneMismatch",
                format!("The zone '{}' does not exist in region {}.", req.zone, self.scenario.region),
            ));
        }
        let snap = self.visible_snapshot(&req.snapshot, now)?.clone();
        if snap.state != SnapshotState::Completed {
            return Err(err(
                "IncorrectState",
                format!("Snapshot '{}' is in invalid state - {:?}", snap.id, snap.state).to_lowercase(),
            ));
        }
        let size = req.size_gib.unwrap_or(snap.size_gib);
        if size < snap.size_gib {
            return Err(err(
                "InvalidParameterValue",
                format!("Volume of {size}GiB is too small; minimum is {}GiB for snapshot {}.", snap.size_gib, snap.id),
            ));
        }
        let fast_restored = self.spend_fsr_credit(&snap, &req.zone, now);
        let id = self.new_volume_id();
        let create = self.scenario.latency.create_volume_s;
        let ready = self.after(now, create);
        let visible_at = super::clock::plus(now, self.scenario.consistency_window_s);
        let rec = VolumeRec {
            id: id.clone(),
            zone: req.zone.clone(),
            size_gib: size,
            volume_type: req.volume_type.clone(),
            state: VolumeState::Creating,
            ready_at: Some(ready),
            snapshot: Some(snap.id.clone()),
            attachment: None,
            tags: req.tags.clone(),
            created: now,
            visible_at,
            content: snap.content,
            signature: snap.signature,
            init_rate_mib_s: req.initialization_rate,
            fast_restored,
        };
        let view = World::volume_view(&rec);
        self.ec2.volumes.insert(id.clone(), rec);
        self.log(
            now,
            format!(
                "ec2: CreateVolume {id} from {} in {} ({} GiB){}",
                snap.id,
                req.zone,
                size,
                if fast_restored { ", fast-restored" } else { "" }
            ),
        );
        Ok(view)
    }

    fn ec2_attach(&mut self, vol: &VolumeId, inst: &InstanceId, dev: &DeviceName, now: Timestamp) -> PortResult<()> {
        let i = self.ec2.instances.get(inst).ok_or_else(|| instance_not_found(inst))?.clone();
        let v = self.visible_volume(vol, now)?.clone();
        if !matches!(i.state, InstanceState::Running | InstanceState::Stopped) {
            return Err(err(
                "IncorrectInstanceState",
                format!("Instance '{inst}' is not 'running' or 'stopped' (it is {:?}).", i.state),
            ));
        }
        if v.zone != i.zone {
            return Err(err(
                "InvalidVolume.ZoneMismatch",
                format!("The volume '{vol}' is not in the same availability zone as instance '{inst}'"),
            ));
        }
        if let Some(a) = &v.attachment {
            return Err(err("VolumeInUse", format!("{vol} is already attached to an instance ({})", a.instance)));
        }
        if v.state != VolumeState::Available {
            return Err(err(
                "IncorrectState",
                format!("The volume '{vol}' is not 'available' (it is {:?}).", v.state).to_lowercase(),
            ));
        }
        let taken = self
            .ec2
            .volumes
            .values()
            .any(|o| o.attachment.as_ref().is_some_and(|a| &a.instance == inst && &a.device == dev));
        if taken {
            return Err(err(
                "InvalidParameterValue",
                format!("Invalid value '{dev}' for unixDevice. Attachment point {dev} is already in use"),
            ));
        }
        let attach = self.scenario.latency.attach_s;
        let until = self.after(now, attach);
        if let Some(rec) = self.ec2.volumes.get_mut(vol) {
            rec.state = VolumeState::InUse;
            rec.attachment = Some(AttachRec {
                instance: inst.clone(),
                device: dev.clone(),
                state: AttachState::Attaching,
                until: Some(until),
            });
        }
        self.log(now, format!("ec2: AttachVolume {vol} → {inst} at {dev}"));
        Ok(())
    }

    fn ec2_detach(&mut self, vol: &VolumeId, inst: &InstanceId, now: Timestamp) -> PortResult<()> {
        let v = self.visible_volume(vol, now)?.clone();
        let i = self.ec2.instances.get(inst).ok_or_else(|| instance_not_found(inst))?.clone();
        if i.state == InstanceState::Terminated {
            return Err(err("IncorrectInstanceState", format!("Instance '{inst}' is terminated.")));
        }
        let Some(a) = &v.attachment else {
            return Err(err("IncorrectState", format!("Volume '{vol}' is in the 'available' state.")));
        };
        if &a.instance != inst {
            return Err(err(
                "InvalidAttachment.NotFound",
                format!("The volume '{vol}' is not attached to instance '{inst}'."),
            ));
        }
        match a.state {
            AttachState::Detaching | AttachState::Busy | AttachState::Detached => {
                return Err(err("IncorrectState", format!("Volume '{vol}' is already detaching.")));
            }
            AttachState::Attaching | AttachState::Attached => {}
        }
        let held = i.state == InstanceState::Running && self.os_holds(&i.server, vol);
        if held {
            if let Some(a) = self.ec2.volumes.get_mut(vol).and_then(|r| r.attachment.as_mut()) {
                a.state = AttachState::Busy;
                a.until = None;
            }
            self.log(now, format!("ec2: DetachVolume {vol} from {inst}: busy (the OS still holds the disk)"));
        } else {
            self.start_detaching(now, vol);
            self.log(now, format!("ec2: DetachVolume {vol} from {inst}"));
        }
        Ok(())
    }

    /// EC2 refuses a new snapshot of a volume that already has the most `pending` ones
    /// (`ConcurrentSnapshotLimitExceeded`, DOMAIN.md: about 5).
    fn below_pending_limit(&self, volume: &VolumeId) -> PortResult<()> {
        let pending = self
            .ec2
            .snapshots
            .values()
            .filter(|s| s.volume.as_ref() == Some(volume) && s.state == SnapshotState::Pending)
            .count();
        if pending >= self.scenario.max_pending_snapshots {
            return Err(err(
                "ConcurrentSnapshotLimitExceeded",
                format!("Maximum number of in-progress snapshots reached for volume {volume}."),
            ));
        }
        Ok(())
    }

    fn ec2_create_snapshot(&mut self, req: &CreateSnapshot, now: Timestamp) -> PortResult<Snapshot> {
        let v = self.visible_volume(&req.volume, now)?.clone();
        if !matches!(v.state, VolumeState::Available | VolumeState::InUse) {
            return Err(err("IncorrectState", format!("Volume '{}' is not available or in-use.", v.id)));
        }
        self.below_pending_limit(&v.id)?;
        let median = self.scenario.latency.snapshot_s(v.size_gib);
        let rec = self.make_snapshot(&v, req.tags.clone(), SnapshotState::Pending, median, now);
        self.log(now, format!("ec2: CreateSnapshot {} of {} (holds {})", rec.id, v.id, rec.content));
        let view = World::snapshot_view(&rec, now);
        self.ec2.snapshots.insert(rec.id.clone(), rec);
        Ok(view)
    }

    /// `CreateSnapshots`: EC2 sees only the instance and the exclusions (`volumes` is the caller's
    /// expectation, not part of the request). The volumes attached to the instance (the simulated
    /// instances have no boot volume, so `ExcludeBootVolume` has nothing to leave out) minus the
    /// excluded ids are snapshotted at one point in time; the per-volume pending limit is checked
    /// for every chosen volume before any snapshot starts (a set is all or nothing) [U: EC2's
    /// documentation does not say whether a set that fails the limit on one volume starts the
    /// others].
    fn ec2_create_snapshot_set(&mut self, req: &CreateSnapshotSet, now: Timestamp) -> PortResult<Vec<Snapshot>> {
        if !self.ec2.instances.contains_key(&req.instance) {
            return Err(instance_not_found(&req.instance));
        }
        for id in &req.exclude {
            self.visible_volume(id, now)?;
        }
        let chosen: Vec<VolumeRec> = self
            .ec2
            .volumes
            .values()
            .filter(|v| v.visible_at <= now)
            .filter(|v| {
                v.attachment.as_ref().is_some_and(|a| {
                    a.instance == req.instance && matches!(a.state, AttachState::Attached | AttachState::Busy)
                })
            })
            .filter(|v| !req.exclude.contains(&v.id))
            .cloned()
            .collect();
        if chosen.is_empty() {
            return Err(err(
                "InvalidParameterValue",
                format!("No volumes of instance {} are left to snapshot after the exclusions.", req.instance),
            ));
        }
        for v in &chosen {
            self.below_pending_limit(&v.id)?;
        }
        let mut out = Vec::with_capacity(chosen.len());
        for v in &chosen {
            let median = self.scenario.latency.snapshot_s(v.size_gib);
            let rec = self.make_snapshot(v, req.tags.clone(), SnapshotState::Pending, median, now);
            self.log(
                now,
                format!("ec2: CreateSnapshots {} of {} on {} (holds {})", rec.id, v.id, req.instance, rec.content),
            );
            out.push(World::snapshot_view(&rec, now));
            self.ec2.snapshots.insert(rec.id.clone(), rec);
        }
        Ok(out)
    }

    /// A snapshot record of `v` taken now; `visible` skips the consistency window.
    pub(super) fn make_snapshot(
        &mut self,
        v: &VolumeRec,
        tags: Tags,
        state: SnapshotState,
        median: f64,
        now: Timestamp,
    ) -> SnapshotRec {
        let id = self.new_snapshot_id();
        let until = self.after(now, median);
        SnapshotRec {
            id,
            volume: Some(v.id.clone()),
            size_gib: v.size_gib,
            state,
            started: now,
            until,
            tags,
            visible_at: super::clock::plus(now, self.scenario.consistency_window_s),
            content: v.content,
            signature: v.signature,
            region: None,
        }
    }

    /// `CopySnapshot` into `dest` (`None`: the scenario's region). Strict where EC2 is: the source
    /// must exist in the source region and be `completed` (a `pending` source is refused with
    /// `IncorrectState` [U: the code real EC2 gives]); the copy is `pending` for about as long as
    /// a first snapshot of that size, then `completed`, and hidden for the consistency window.
    /// The simulator holds snapshots only of its own region as sources.
    fn ec2_copy_snapshot(
        &mut self,
        dest: Option<&Region>,
        req: &CopySnapshot,
        now: Timestamp,
    ) -> PortResult<SnapshotId> {
        if req.source_region != self.scenario.region {
            return Err(err(
                "InvalidSnapshot.NotFound",
                format!("The snapshot '{}' does not exist in region {}.", req.source, req.source_region),
            ));
        }
        if req.kms_key.as_deref().is_some_and(str::is_empty) {
            return Err(err("InvalidParameterValue", "KmsKeyId must not be empty"));
        }
        let src = self.visible_snapshot(&req.source, now)?.clone();
        if src.state != SnapshotState::Completed {
            return Err(err(
                "IncorrectState",
                format!("Snapshot '{}' is in invalid state - {:?}", src.id, src.state).to_lowercase(),
            ));
        }
        let id = self.new_snapshot_id();
        let median = self.scenario.latency.snapshot_s(src.size_gib);
        let rec = SnapshotRec {
            id: id.clone(),
            volume: None,
            size_gib: src.size_gib,
            state: SnapshotState::Pending,
            started: now,
            until: self.after(now, median),
            tags: req.tags.clone(),
            visible_at: super::clock::plus(now, self.scenario.consistency_window_s),
            content: src.content,
            signature: src.signature,
            region: dest.cloned(),
        };
        let to = dest.map_or_else(|| self.scenario.region.to_string(), ToString::to_string);
        self.log(now, format!("ec2: CopySnapshot {} of {} into {to}", id, src.id));
        self.ec2.snapshots.insert(id.clone(), rec);
        Ok(id)
    }

    fn ec2_delete_snapshot(&mut self, region: Option<&Region>, id: &SnapshotId, now: Timestamp) -> PortResult<()> {
        self.visible_snapshot_in(region, id, now)?;
        self.ec2.snapshots.remove(id);
        // "Deleting a snapshot disables fast snapshot restore for it" (AWS EBS User Guide).
        self.ec2.fsr.retain(|f| &f.snapshot != id);
        self.ec2.deleted_snapshots += 1;
        self.log(now, format!("ec2: DeleteSnapshot {id}"));
        Ok(())
    }

    fn ec2_start_instance(&mut self, id: &InstanceId, now: Timestamp) -> PortResult<()> {
        let state = self.ec2.instances.get(id).ok_or_else(|| instance_not_found(id))?.state;
        if state != InstanceState::Stopped {
            return Err(err(
                "IncorrectInstanceState",
                format!("The instance '{id}' is not in a state from which it can be started ({state:?})."),
            ));
        }
        let start = self.scenario.latency.instance_start_s;
        let until = self.after(now, start);
        if let Some(i) = self.ec2.instances.get_mut(id) {
            i.state = InstanceState::Pending;
            i.until = Some(until);
        }
        self.log(now, format!("ec2: StartInstances {id}"));
        Ok(())
    }

    fn ec2_create_tags(&mut self, resource: &str, tags: &Tags, now: Timestamp) -> PortResult<()> {
        let target = if let Ok(v) = VolumeId::parse(resource) {
            self.visible_volume(&v, now)?;
            self.ec2.volumes.get_mut(&v).map(|r| &mut r.tags)
        } else if let Ok(s) = SnapshotId::parse(resource) {
            self.visible_snapshot(&s, now)?;
            self.ec2.snapshots.get_mut(&s).map(|r| &mut r.tags)
        } else {
            return Err(err("InvalidID", format!("The ID '{resource}' is not valid")));
        };
        if let Some(t) = target {
            t.extend(tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        Ok(())
    }
}

/// Fast Snapshot Restore, after the AWS EBS User Guide ("Amazon EBS fast snapshot restore",
/// "Check the fast snapshot restore state", "Volume creation credits"): per snapshot and zone;
/// `enabling` (a model figure [U]) → `optimizing` (60 minutes per TiB) → `enabled`; a volume
/// created in an `enabled` zone with at least one volume creation credit is `FastRestored` and
/// fully initialized at once, one without a credit is created normally; the credit bucket starts
/// empty at the request and fills at `MIN(10, 1024 ÷ size GiB)` credits an hour up to
/// `MAX(1, MIN(10, 1024 ÷ size GiB))`; at most [`super::scenario::Scenario::fsr_snapshot_limit`]
/// snapshots per region may have it on (5 by default, AWS's quota); what EC2 answers when that
/// quota is reached is not documented: `ResourceLimitExceeded` here [U].
impl World {
    fn fsr_state(f: &FsrRec, now: Timestamp) -> FastRestoreState {
        match f.disabling {
            Some((_, until)) if now >= until => FastRestoreState::Disabled,
            Some(_) => FastRestoreState::Disabling,
            None if now < f.optimizing => FastRestoreState::Enabling,
            None if now < f.enabled => FastRestoreState::Optimizing,
            None => FastRestoreState::Enabled,
        }
    }

    fn fsr_view(f: &FsrRec, now: Timestamp) -> FastRestore {
        FastRestore {
            snapshot: f.snapshot.clone(),
            zone: f.zone.clone(),
            state: World::fsr_state(f, now),
            reason: Some("Client.UserInitiated".to_owned()),
            enabling_time: Some(f.enabling),
        }
    }

    fn fsr_index(&self, snapshot: &SnapshotId, zone: &Zone, now: Timestamp) -> Option<usize> {
        self.ec2.fsr.iter().position(|f| {
            &f.snapshot == snapshot && &f.zone == zone && World::fsr_state(f, now) != FastRestoreState::Disabled
        })
    }

    /// Whether a volume of `snap` created now in `zone` is fast-restored (spending a credit).
    fn spend_fsr_credit(&mut self, snap: &SnapshotRec, zone: &Zone, now: Timestamp) -> bool {
        let Some(i) = self.fsr_index(&snap.id, zone, now) else { return false };
        let f = &self.ec2.fsr[i];
        if World::fsr_state(f, now) != FastRestoreState::Enabled {
            return false;
        }
        let per_hour = fsr_credits_per_hour(snap.size_gib);
        let bucket = per_hour.max(1.0);
        let filled = (secs(f.enabling, now) / 3600.0 * per_hour).min(bucket);
        if filled - f64::from(f.credits_used) < 1.0 {
            return false;
        }
        self.ec2.fsr[i].credits_used += 1;
        true
    }

    pub(super) fn ec2_describe_fsr(&self, snapshot: &SnapshotId, now: Timestamp) -> Vec<FastRestore> {
        self.ec2.fsr.iter().filter(|f| &f.snapshot == snapshot).map(|f| World::fsr_view(f, now)).collect()
    }

    fn ec2_enable_fsr(
        &mut self,
        snapshot: &SnapshotId,
        zones: &[Zone],
        now: Timestamp,
    ) -> PortResult<Vec<FastRestore>> {
        let snap = self.visible_snapshot(snapshot, now)?.clone();
        let mut out = Vec::new();
        for zone in zones {
            if zone.region() != self.scenario.region {
                return Err(err("InvalidParameterValue", format!("Availability Zone '{zone}' is not valid")));
            }
            if let Some(i) = self.fsr_index(snapshot, zone, now) {
                let f = &self.ec2.fsr[i];
                if World::fsr_state(f, now) != FastRestoreState::Disabling {
                    out.push(World::fsr_view(f, now));
                    continue;
                }
            }
            let others: std::collections::BTreeSet<&SnapshotId> = self
                .ec2
                .fsr
                .iter()
                .filter(|f| &f.snapshot != snapshot && World::fsr_state(f, now).is_on())
                .map(|f| &f.snapshot)
                .collect();
            if others.len() >= self.scenario.fsr_snapshot_limit {
                return Err(err(
                    "ResourceLimitExceeded",
                    format!(
                        "Fast snapshot restore is already enabled for {} snapshots in this region (the limit)",
                        others.len()
                    ),
                ));
            }
            let enabling = self.scenario.latency.fsr_enabling_s;
            let optimize = self.scenario.latency.fsr_enable_s(snap.size_gib) - enabling;
            let optimizing = self.after(now, enabling);
            let enabled = self.after(optimizing, optimize);
            let rec = FsrRec {
                snapshot: snapshot.clone(),
                zone: zone.clone(),
                enabling: now,
                optimizing,
                enabled,
                credits_used: 0,
                disabling: None,
            };
            out.push(World::fsr_view(&rec, now));
            self.ec2.fsr.retain(|f| !(&f.snapshot == snapshot && &f.zone == zone));
            self.ec2.fsr.push(rec);
            self.log(now, format!("ec2: EnableFastSnapshotRestores {snapshot} in {zone}"));
        }
        Ok(out)
    }

    fn ec2_disable_fsr(
        &mut self,
        snapshot: &SnapshotId,
        zones: &[Zone],
        now: Timestamp,
    ) -> PortResult<Vec<FastRestore>> {
        self.visible_snapshot(snapshot, now)?;
        let mut out = Vec::new();
        for zone in zones {
            let Some(i) = self.fsr_index(snapshot, zone, now) else {
                out.push(FastRestore {
                    snapshot: snapshot.clone(),
                    zone: zone.clone(),
                    state: FastRestoreState::Disabled,
                    reason: None,
                    enabling_time: None,
                });
                continue;
            };
            if self.ec2.fsr[i].disabling.is_none() {
                let until = self.after(now, self.scenario.latency.fsr_disabling_s);
                self.ec2.fsr[i].disabling = Some((now, until));
                self.log(now, format!("ec2: DisableFastSnapshotRestores {snapshot} in {zone}"));
            }
            out.push(World::fsr_view(&self.ec2.fsr[i], now));
        }
        Ok(out)
    }

    /// Zone-hours of Fast Snapshot Restore billed so far (from each request to its disable, or
    /// `now`): what a test checks the restore did not leave running.
    pub(super) fn fsr_zone_hours(&self, now: Timestamp) -> f64 {
        self.ec2.fsr.iter().map(|f| secs(f.enabling, f.disabling.map_or(now, |(at, _)| at)) / 3600.0).sum()
    }
}

/// Credits an hour (and the bucket size, at least 1) of a Fast Snapshot Restore of a `size_gib`
/// snapshot: `MIN(10, 1024 ÷ size)` (AWS EBS User Guide, "Volume creation credits").
pub fn fsr_credits_per_hour(size_gib: u32) -> f64 {
    (1024.0 / f64::from(size_gib.max(1))).min(10.0)
}

/// The simulated EC2 port, in the scenario's region or, for cross-region copies, in another
/// one, where only snapshots exist (describe, copy into, delete).
#[derive(Debug, Clone)]
pub struct SimCloud {
    world: Arc<SimWorld>,
    /// `None`: the scenario's region.
    region: Option<Region>,
}

impl SimCloud {
    /// EC2 of `world`.
    pub fn new(world: Arc<SimWorld>) -> Self {
        SimCloud { world, region: None }
    }

    /// EC2 of `world` in `region`: the same as [`SimCloud::new`] for the scenario's own region.
    pub fn in_region(world: Arc<SimWorld>, region: &Region) -> Self {
        let home = world.scenario().region == *region;
        SimCloud { world, region: (!home).then(|| region.clone()) }
    }

    /// Refuses what the simulator does not model outside its own region.
    fn home_only(&self, api: &str) -> PortResult<()> {
        match &self.region {
            None => Ok(()),
            Some(r) => {
                Err(err("UnsupportedOperation", format!("the simulator models only snapshots in {r}, not {api}")))
            }
        }
    }

    async fn rtt(&self) {
        self.world.round_trip(|l| l.ec2_api_s).await;
    }
}

/// The rate at which the simulator loads a volume from its snapshot when no
/// `VolumeInitializationRate` was asked for (a model assumption: lazy loading has no published
/// rate; EC2's own estimate is what a real run reports).
pub const LAZY_LOAD_MIB_S: u32 = 40;

/// A volume's initialization at `now`: created from a snapshot, it loads the snapshot's data
/// (`data_gib`, the scenario's, at most the volume; the whole volume when `None`) at its
/// provisioned rate (or [`LAZY_LOAD_MIB_S`]) from the end of `creating`; a blank volume needs none.
fn initialization(v: &VolumeRec, data_gib: Option<u32>, now: Timestamp) -> VolumeInit {
    let volume = v.id.clone();
    if v.snapshot.is_none() {
        return VolumeInit { volume, kind: None, progress: None, remaining_s: None, complete: true };
    }
    if v.fast_restored {
        return VolumeInit { volume, kind: None, progress: Some(100), remaining_s: Some(0), complete: true };
    }
    let rate = f64::from(v.init_rate_mib_s.unwrap_or(LAZY_LOAD_MIB_S));
    let total = f64::from(data_gib.map_or(v.size_gib, |d| d.min(v.size_gib)).max(1)) * 1024.0;
    let start = v.ready_at.unwrap_or(v.created);
    let elapsed = if now > start { now.duration_since(start).as_secs_f64() } else { 0.0 };
    let done = (elapsed * rate).min(total);
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let (progress, remaining_s) = ((done / total * 100.0).floor() as u8, ((total - done) / rate).ceil() as u64);
    VolumeInit {
        volume,
        kind: Some(if v.init_rate_mib_s.is_some() { "provisioned-rate" } else { "default" }.to_owned()),
        progress: Some(progress),
        remaining_s: Some(remaining_s),
        complete: done >= total,
    }
}

#[async_trait::async_trait]
impl Cloud for SimCloud {
    fn call_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.world.call_counts().into_iter().filter(|(k, _)| k.starts_with("ec2:")).collect()
    }

    async fn describe_volumes(&self, filter: &VolumeFilter) -> PortResult<Vec<Volume>> {
        self.home_only("DescribeVolumes")?;
        self.rtt().await;
        self.world.call("ec2:DescribeVolumes", Some(Bucket::Describe), |w, now| w.ec2_describe_volumes(filter, now))
    }

    async fn describe_snapshots(&self, filter: &SnapshotFilter) -> PortResult<Vec<Snapshot>> {
        self.rtt().await;
        let region = self.region.as_ref();
        self.world.call("ec2:DescribeSnapshots", Some(Bucket::Describe), |w, now| {
            w.ec2_describe_snapshots(region, filter, now)
        })
    }

    async fn describe_instances(&self, ids: &[InstanceId]) -> PortResult<Vec<Instance>> {
        self.home_only("DescribeInstances")?;
        self.rtt().await;
        self.world.call("ec2:DescribeInstances", Some(Bucket::Describe), |w, _| w.ec2_describe_instances(ids))
    }

    async fn volume_initialization(&self, ids: &[VolumeId]) -> PortResult<Vec<VolumeInit>> {
        self.home_only("DescribeVolumeStatus")?;
        self.rtt().await;
        self.world.call("ec2:DescribeVolumeStatus", Some(Bucket::Describe), |w, now| {
            let data = w.scenario.data_gib;
            ids.iter().map(|id| w.visible_volume(id, now).map(|v| initialization(v, data, now))).collect()
        })
    }

    async fn shutdown_behavior(&self, id: &InstanceId) -> PortResult<ShutdownBehavior> {
        self.home_only("DescribeInstanceAttribute")?;
        self.rtt().await;
        self.world.call("ec2:DescribeInstanceAttribute", Some(Bucket::Describe), |w, _| {
            w.ec2.instances.get(id).map(|i| i.shutdown_behavior).ok_or_else(|| instance_not_found(id))
        })
    }

    async fn create_volume(&self, req: &CreateVolume) -> PortResult<Volume> {
        self.home_only("CreateVolume")?;
        self.rtt().await;
        self.world.call("ec2:CreateVolume", Some(Bucket::Mutate), |w, now| w.ec2_create_volume(req, now))
    }

    async fn attach_volume(&self, volume: &VolumeId, instance: &InstanceId, device: &DeviceName) -> PortResult<()> {
        self.home_only("AttachVolume")?;
        self.rtt().await;
        self.world.call("ec2:AttachVolume", Some(Bucket::Mutate), |w, now| w.ec2_attach(volume, instance, device, now))
    }

    async fn detach_volume(&self, volume: &VolumeId, instance: &InstanceId) -> PortResult<()> {
        self.home_only("DetachVolume")?;
        self.rtt().await;
        self.world.call("ec2:DetachVolume", Some(Bucket::Mutate), |w, now| w.ec2_detach(volume, instance, now))
    }

    async fn create_snapshot(&self, req: &CreateSnapshot) -> PortResult<Snapshot> {
        self.home_only("CreateSnapshot")?;
        self.rtt().await;
        self.world.call("ec2:CreateSnapshot", Some(Bucket::Mutate), |w, now| w.ec2_create_snapshot(req, now))
    }

    async fn create_snapshot_set(&self, req: &CreateSnapshotSet) -> PortResult<Vec<Snapshot>> {
        self.rtt().await;
        self.world.call("ec2:CreateSnapshots", Some(Bucket::Mutate), |w, now| w.ec2_create_snapshot_set(req, now))
    }

    fn in_region(&self, region: &Region) -> PortResult<Arc<dyn Cloud>> {
        Ok(Arc::new(SimCloud::in_region(Arc::clone(&self.world), region)))
    }

    async fn copy_snapshot(&self, req: &CopySnapshot) -> PortResult<SnapshotId> {
        self.rtt().await;
        let region = self.region.as_ref();
        self.world.call("ec2:CopySnapshot", Some(Bucket::Mutate), |w, now| w.ec2_copy_snapshot(region, req, now))
    }

    async fn delete_snapshot(&self, id: &SnapshotId) -> PortResult<()> {
        self.rtt().await;
        let region = self.region.as_ref();
        self.world.call("ec2:DeleteSnapshot", Some(Bucket::Mutate), |w, now| w.ec2_delete_snapshot(region, id, now))
    }

    async fn start_instance(&self, id: &InstanceId) -> PortResult<()> {
        self.home_only("StartInstances")?;
        self.rtt().await;
        self.world.call("ec2:StartInstances", Some(Bucket::Mutate), |w, now| w.ec2_start_instance(id, now))
    }

    async fn create_tags(&self, resource: &str, tags: &Tags) -> PortResult<()> {
        self.home_only("CreateTags")?;
        self.rtt().await;
        self.world.call("ec2:CreateTags", Some(Bucket::Mutate), |w, now| w.ec2_create_tags(resource, tags, now))
    }

    async fn describe_fast_snapshot_restores(&self, snapshot: &SnapshotId) -> PortResult<Vec<FastRestore>> {
        self.rtt().await;
        self.world.call("ec2:DescribeFastSnapshotRestores", Some(Bucket::Describe), |w, now| {
            Ok(w.ec2_describe_fsr(snapshot, now))
        })
    }

    async fn enable_fast_snapshot_restores(
        &self,
        snapshot: &SnapshotId,
        zones: &[Zone],
    ) -> PortResult<Vec<FastRestore>> {
        self.rtt().await;
        self.world.call("ec2:EnableFastSnapshotRestores", Some(Bucket::Mutate), |w, now| {
            w.ec2_enable_fsr(snapshot, zones, now)
        })
    }

    async fn disable_fast_snapshot_restores(
        &self,
        snapshot: &SnapshotId,
        zones: &[Zone],
    ) -> PortResult<Vec<FastRestore>> {
        self.rtt().await;
        self.world.call("ec2:DisableFastSnapshotRestores", Some(Bucket::Mutate), |w, now| {
            w.ec2_disable_fsr(snapshot, zones, now)
        })
    }

    async fn fast_restore_permitted(&self, snapshot: &SnapshotId, _zones: &[Zone]) -> PortResult<()> {
        self.rtt().await;
        // The simulated role holds every permission; a fault on this name stands for a policy
        // without the FSR actions.
        self.world.call(FSR_DRY_RUN, Some(Bucket::Mutate), |w, now| w.visible_snapshot(snapshot, now).map(|_| ()))
    }
}

/// The call name of the FSR permission check (`DryRun` of enable and disable) in counters and
/// faults.
pub const FSR_DRY_RUN: &str = "ec2:FastSnapshotRestores(DryRun)";
