//! What the next pass of a reconcile reads afresh, decided from the previous observation, the
//! actions run since and the planner's wait.
//!
//! Why this module exists: choosing what to re-read is a planning decision (pure, from what the
//! planner knows); [`crate::observe`] only carries it out. See [`Refresh`] for the rules.

use crate::ids::VolumeId;
use crate::observe::{Observed, Refresh, wants_fast_restore};
use crate::plan::step::{Action, Watch};
use crate::ports::cloud::{AttachState, InstanceState, SnapshotState, Volume, VolumeState, tag};
use crate::spec::Spec;

impl Refresh {
    /// What the pass after `prev` must read, given the actions run since and the planner's wait
    /// (if it waited). Pure.
    pub fn after(spec: &Spec, prev: &Observed, ran: &[Action], wait: Option<Watch>) -> Self {
        let mut r = Refresh::default();
        let ours = |v: &Volume| v.tags.get(tag::CLUSTER).is_some_and(|c| c == spec.cluster.name.as_str());
        let touch_volume = |r: &mut Refresh, id: &VolumeId| match prev.volume(id) {
            Some(v) if !ours(v) => {
                r.volume_ids.insert(id.clone());
            }
            _ => r.tagged_volumes = true,
        };
        for a in ran {
            match a {
                Action::CreateVolume { .. } => r.tagged_volumes = true,
                Action::AttachVolume { server, volume, .. } => {
                    touch_volume(&mut r, volume);
                    r.disks.insert(server.clone());
                }
                // No decision after a detach needs the disk list at once (the next step is an
                // attach); the gone disk is picked up by the out-of-step rule below.
                Action::DetachVolume { volume, .. } => touch_volume(&mut r, volume),
                Action::Tag { resource, .. } => match VolumeId::parse(resource) {
                    Ok(id) => touch_volume(&mut r, &id),
                    Err(_) => r.snapshots = true,
                },
                Action::CreateSnapshot { .. }
                | Action::CreateSnapshotSet { .. }
                | Action::DeleteSnapshot { .. }
                | Action::CopySnapshot { .. }
                | Action::DeleteCopy { .. } => r.snapshots = true,
                // A pre-processing (NEC's) shuts the server down; a post-processing reboots it.
                Action::StartInstance { server, .. } | Action::Vendor { server, .. } => {
                    r.instances = true;
                    r.disks.insert(server.clone());
                }
                // A server going down has no disks to look at; once its instance has stopped (a
                // moving instance is re-read every pass) the list follows.
                Action::ShutdownServer { .. } => r.instances = true,
                Action::ApplyConfig { .. } => r.config = true,
                Action::EnableFastRestore { .. } | Action::DisableFastRestore { .. } => {
                    r.fast_restore = wants_fast_restore(spec);
                }
                Action::DiskOffline { server, .. }
                | Action::DiskOnline { server, .. }
                | Action::SetLetter { server, .. } => {
                    r.disks.insert(server.clone());
                }
                Action::StopGroup { .. }
                | Action::StartGroup { .. }
                | Action::MoveGroup { .. }
                | Action::StopResource { .. }
                | Action::StartResource { .. }
                | Action::Preflight { .. }
                | Action::MarkCompleted
                | Action::MarkAbandoned { .. } => {}
            }
        }
        // Whatever is still changing by itself.
        let moving_instance = |s: &crate::spec::ServerSpec| {
            prev.instances.get(&s.instance).is_none_or(|i| {
                matches!(i.state, InstanceState::Pending | InstanceState::Stopping | InstanceState::ShuttingDown)
            })
        };
        let settling = |v: &Volume| {
            matches!(v.state, VolumeState::Creating | VolumeState::Deleting)
                || v.attachments.iter().any(|a| !matches!(a.state, AttachState::Attached | AttachState::Detached))
        };
        let mut any_settling = false;
        for v in prev.volumes.iter().filter(|v| settling(v)) {
            any_settling = true;
            touch_volume(&mut r, &v.id);
        }
        r.snapshots |=
            prev.snapshots.iter().chain(prev.copies.values().flatten()).any(|s| s.state == SnapshotState::Pending);
        // A configuration that could not be read (no server answered) is read again until it is.
        r.config |= !prev.cluster_reachable;
        for s in &spec.cluster.servers {
            if moving_instance(s) {
                r.instances = true;
                r.disks.insert(s.name.clone());
            }
            if disks_out_of_step(prev, s) {
                r.disks.insert(s.name.clone());
            }
        }
        // What the planner is waiting for.
        if let Some(w) = wait {
            r.instances |= w.instances;
            r.snapshots |= w.snapshots;
            r.config |= w.config;
            r.fast_restore |= w.fast_restore && wants_fast_restore(spec);
            if w.volumes && !any_settling {
                r.tagged_volumes = true;
                r.volume_ids.extend(prev.volumes.iter().filter(|v| !ours(v)).map(|v| v.id.clone()));
            }
            if w.disks || w.instances {
                r.disks.extend(spec.cluster.servers.iter().map(|s| s.name.clone()));
            }
        }
        r
    }
}

/// Whether a server's disk list may be behind its attachments: it could not be read, a volume
/// attached (or moving) at its instance has no disk yet, or a disk's volume is no longer attached.
fn disks_out_of_step(prev: &Observed, s: &crate::spec::ServerSpec) -> bool {
    let Some(Ok(disks)) = prev.disks.get(&s.name) else { return true };
    let at_instance: Vec<(&VolumeId, AttachState)> = prev
        .volumes
        .iter()
        .flat_map(|v| v.attachments.iter().filter(|a| a.instance == s.instance).map(move |a| (&v.id, a.state)))
        .collect();
    let attached_without_disk =
        at_instance.iter().any(|(v, st)| *st != AttachState::Detached && !disks.iter().any(|d| &d.volume == *v));
    let disk_without_attachment = disks.iter().any(|d| {
        prev.volume(&d.volume).is_some()
            && !at_instance.iter().any(|(v, st)| **v == d.volume && *st == AttachState::Attached)
    });
    attached_without_disk || disk_without_attachment
}
