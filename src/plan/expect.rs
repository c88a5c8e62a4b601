//! Expected durations of the things the planner waits for, at real-world medians (DOMAIN.md: EC2
//! create/attach/detach take ~1–4 s). They set the first poll of a wait; later polls back off
//! ×1.5 up to a few seconds (see `reconcile`). Never the 15 s of an SDK waiter.

use std::time::Duration;

/// `CreateVolume` → available.
pub const VOLUME_CREATE: Duration = Duration::from_secs(3);
/// `AttachVolume` → attached.
pub const ATTACH: Duration = Duration::from_secs(2);
/// `DetachVolume` → detached.
pub const DETACH: Duration = Duration::from_secs(2);
/// A new disk showing up in the OS after attach.
pub const DISK_APPEAR: Duration = Duration::from_secs(1);
/// OS shutdown → instance stopped.
pub const INSTANCE_STOP: Duration = Duration::from_secs(30);
/// `StartInstances` → running and back in the cluster.
pub const INSTANCE_START: Duration = Duration::from_secs(40);
/// Mirror recovery (differential) or initial construction progress check.
pub const MIRROR_SYNC: Duration = Duration::from_secs(5);
/// A CLUSTERPRO state that is pending.
pub const CLUSTER_PENDING: Duration = Duration::from_secs(3);
/// How long a snapshot created with tags may stay invisible to a tag filter (eventual
/// consistency) before an interrupted `CreateSnapshot` is taken as not having happened.
pub const SNAPSHOT_VISIBILITY: Duration = Duration::from_secs(30);
