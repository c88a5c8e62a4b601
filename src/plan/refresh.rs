//! What the next pass of a reconcile reads afresh, decided from the previous observation, the
//! actions run since and the planner's wait.
//!
//! Why this module exists: choosing what to re-read is a planning decision (pure, from what the
//! planner knows); [`crate::observe`] only carries it out. See [`Refresh`] for the rules.

use crate::ids::VolumeId;
use crate::observe::{Observed, Refresh, wants_fast_restore};
use crate::plan::step::{Action, Watch};
use crate::ports::cloud::{AttachState, Attachment, InstanceState, SnapshotState, Volume, VolumeState, tag};
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
                Action::ApplyConfig { .. } => r.config = true,
                Action::EnableFastRestore { .. } | Action::DisableFastRestore { .. } => {
                    r.fast_restore = wants_fast_restore(spec);
                }
                Action::DiskOffline { server, .. }
                | Action::DiskOnline { server, .. }
                | Action::SetLetter { server, .. } => {
                    r.disks.insert(server.clone());
                }
                // A server going down has no disks to look at, and what the next plan needs of it
                // (it left the cluster) is in the CLUSTERPRO status; its instance stopping is what
                // the planner then waits for (the wait reads the instances), and once it has
                // stopped the disk list follows.
                Action::ShutdownServer { .. }
                | Action::LeaveThenStart { .. }
                | Action::StopGroup { .. }
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
        let settling = settling(spec, prev, &r.disks);
        let any_settling = !settling.is_empty();
        for id in &settling {
            touch_volume(&mut r, id);
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
        // Colours of an md the configuration (carried over) does not have would be dropped.
        r.keep_mirror = !r.config && prev.config.mirror(&spec.mirror.resource).is_none();
        r
    }
}

/// The volumes still changing by themselves that EC2 must be asked about. An attachment settling
/// at an instance whose OS answers for its disks ends where the OS sees it: the disk appears once
/// EC2 has attached the volume. Listed already, it is done; not yet, the list this pass reads
/// (`listed`) tells (a wait on volumes still asks EC2).
fn settling(
    spec: &Spec,
    prev: &Observed,
    listed: &std::collections::BTreeSet<crate::ids::ServerName>,
) -> Vec<VolumeId> {
    let os_shows = |v: &Volume, a: &Attachment| {
        a.state == AttachState::Attaching
            && spec.cluster.servers.iter().find(|s| s.instance == a.instance).is_some_and(|s| {
                matches!(prev.disks.get(&s.name), Some(Ok(disks))
                    if disks.iter().any(|d| d.volume == v.id) || listed.contains(&s.name))
            })
    };
    prev.volumes
        .iter()
        .filter(|v| {
            matches!(v.state, VolumeState::Creating | VolumeState::Deleting)
                || v.attachments
                    .iter()
                    .any(|a| !matches!(a.state, AttachState::Attached | AttachState::Detached) && !os_shows(v, a))
        })
        .map(|v| v.id.clone())
        .collect()
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
    // (A disk listed while EC2 last said `attaching` is the attach ending, see [`settling`].)
    let disk_without_attachment = disks.iter().any(|d| {
        prev.volume(&d.volume).is_some()
            && !at_instance
                .iter()
                .any(|(v, st)| **v == d.volume && matches!(st, AttachState::Attached | AttachState::Attaching))
    });
    attached_without_disk || disk_without_attachment
}
