//! Observation: one consistent-enough picture of the world per reconcile pass.
//!
//! Why this module exists: the planner is pure, so everything it needs is gathered here first,
//! concurrently, from the ports: instances, the cluster's volumes (attached to its instances, or
//! tagged with its name), its snapshots, CLUSTERPRO status and configuration, the mirror colours
//! and each running server's disks. One `DescribeVolumes` per pass covers every in-flight step of
//! the cluster. A node that cannot be reached (its instance is stopped) is recorded as such, not
//! treated as an error: a backup stops the standby on purpose.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::execute::RetryPolicy;
use crate::execute::retry::with_retries;
use crate::ids::{InstanceId, ServerName, SnapshotId, VolumeId};
use crate::ports::cloud::{
    Instance, InstanceState, ShutdownBehavior, Snapshot, SnapshotFilter, Tags, Volume, VolumeFilter, VolumeState, tag,
};
use crate::ports::cluster::{ClusterConfig, ClusterStatus, MirrorStatus};
use crate::ports::node::Disk;
use crate::ports::{PortError, PortResult, Ports};
use crate::spec::Spec;

/// Everything the planner looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// When the observation was made (the only time the planner knows).
    pub now: Timestamp,
    /// The cluster's instances by id.
    pub instances: BTreeMap<InstanceId, Instance>,
    /// Shutdown behaviour per instance.
    pub shutdown: BTreeMap<InstanceId, ShutdownBehavior>,
    /// Volumes attached to the instances or tagged with the cluster (deleted ones excluded).
    pub volumes: Vec<Volume>,
    /// The restore snapshot (if named) and the cluster's own backup snapshots.
    pub snapshots: Vec<Snapshot>,
    /// CLUSTERPRO status.
    pub cluster: ClusterStatus,
    /// CLUSTERPRO configuration.
    pub config: ClusterConfig,
    /// Mirror colours, when the md resource is configured and answered.
    pub mirror: Option<MirrorStatus>,
    /// Disks per server; `Err` holds why the node could not be asked.
    pub disks: BTreeMap<ServerName, Result<Vec<Disk>, PortError>>,
}

impl Observed {
    /// A volume by id.
    pub fn volume(&self, id: &VolumeId) -> Option<&Volume> {
        self.volumes.iter().find(|v| &v.id == id)
    }
    /// A snapshot by id.
    pub fn snapshot(&self, id: &SnapshotId) -> Option<&Snapshot> {
        self.snapshots.iter().find(|s| &s.id == id)
    }
    /// The disks a server reports, if it could be asked.
    pub fn disks_of(&self, server: &ServerName) -> Option<&[Disk]> {
        self.disks.get(server).and_then(|d| d.as_ref().ok()).map(Vec::as_slice)
    }
    /// The OS disk of `volume` on `server`.
    pub fn disk(&self, server: &ServerName, volume: &VolumeId) -> Option<&Disk> {
        self.disks_of(server)?.iter().find(|d| &d.volume == volume)
    }
    /// Volumes carrying all of `tags`.
    pub fn volumes_tagged(&self, tags: &Tags) -> Vec<&Volume> {
        self.volumes.iter().filter(|v| tags.iter().all(|(k, val)| v.tags.get(k) == Some(val))).collect()
    }
    /// Snapshots carrying all of `tags`.
    pub fn snapshots_tagged(&self, tags: &Tags) -> Vec<&Snapshot> {
        self.snapshots.iter().filter(|s| tags.iter().all(|(k, val)| s.tags.get(k) == Some(val))).collect()
    }
}

/// Observes the world for `spec`. Fails only when a source every decision depends on (EC2 or
/// CLUSTERPRO) cannot be read; callers retry retryable errors.
pub async fn observe(spec: &Spec, ports: &Ports, policy: &RetryPolicy) -> PortResult<Observed> {
    let clock = ports.clock.as_ref();
    let ids: Vec<InstanceId> = spec.cluster.servers.iter().map(|s| s.instance.clone()).collect();
    let cluster_tag: Tags = [(tag::CLUSTER.to_owned(), spec.cluster.name.to_string())].into();

    let ours = VolumeFilter { tags: cluster_tag.clone(), ..VolumeFilter::default() };
    let own_snaps = SnapshotFilter { tags: cluster_tag.clone(), ..SnapshotFilter::default() };
    let restore_snap =
        spec.restore.as_ref().map(|r| SnapshotFilter { ids: vec![r.snapshot.clone()], ..SnapshotFilter::default() });

    // Everything at once: one round trip of wall time per pass, whatever the number of calls.
    let shutdown_calls = futures::future::join_all(
        ids.iter().map(|id| with_retries(policy, clock, move || ports.cloud.shutdown_behavior(id))),
    );
    let disk_calls = futures::future::join_all(spec.cluster.servers.iter().map(|s| ports.node.disks(&s.name)));
    let restore_call = async {
        match &restore_snap {
            // A snapshot that does not exist is a fact for preflight: not retried.
            Some(filter) => {
                with_retries(policy, clock, || async {
                    match ports.cloud.describe_snapshots(filter).await {
                        Err(e) if e.code == "InvalidSnapshot.NotFound" => Ok(Vec::new()),
                        other => other,
                    }
                })
                .await
            }
            None => Ok(Vec::new()),
        }
    };
    let volumes_call = instances_and_volumes(ports, policy, &ids, &ours);
    let ((volumes_res, snaps, restore_found), (status, config, mirror, shutdown_res, disk_res)) = futures::join!(
        async {
            futures::join!(
                volumes_call,
                with_retries(policy, clock, || ports.cloud.describe_snapshots(&own_snaps)),
                restore_call,
            )
        },
        async {
            futures::join!(
                with_retries(policy, clock, || ports.cluster.status()),
                with_retries(policy, clock, || ports.cluster.config()),
                ports.cluster.mirror_status(&spec.mirror.resource),
                shutdown_calls,
                disk_calls,
            )
        }
    );
    let (instances, mut volumes) = volumes_res?;
    volumes.retain(|v| v.state != VolumeState::Deleted);
    volumes.sort_by(|a, b| a.id.cmp(&b.id));
    let mut snapshots = snaps?;
    match restore_found {
        Ok(found) => {
            for s in found {
                if !snapshots.iter().any(|x| x.id == s.id) {
                    snapshots.push(s);
                }
            }
        }
        // A missing snapshot is a fact for preflight, not an observation failure.
        Err(e) if e.code == "InvalidSnapshot.NotFound" => {}
        Err(e) => return Err(e),
    }
    snapshots.sort_by(|a, b| a.id.cmp(&b.id));
    let cluster = status?;
    let config = config?;
    let mut shutdown = BTreeMap::new();
    for (id, b) in ids.iter().zip(shutdown_res) {
        shutdown.insert(id.clone(), b?);
    }
    // The mirror status only means something while md is configured; its errors are a fact
    // (not configured, cluster busy), not an observation failure.
    let mirror = if config.mirror(&spec.mirror.resource).is_some() { mirror.ok() } else { None };
    let disks = disks_by_server(spec, &instances, disk_res);

    Ok(Observed {
        now: ports.clock.now(),
        instances: instances.into_iter().map(|i| (i.id.clone(), i)).collect(),
        shutdown,
        volumes,
        snapshots,
        cluster,
        config,
        mirror,
        disks,
    })
}

/// Each server's disks; a node whose instance is not running counts as unreachable (its answer,
/// if any, predates the stop).
fn disks_by_server(
    spec: &Spec,
    instances: &[Instance],
    answers: Vec<PortResult<Vec<Disk>>>,
) -> BTreeMap<ServerName, Result<Vec<Disk>, PortError>> {
    let mut disks = BTreeMap::new();
    for (s, d) in spec.cluster.servers.iter().zip(answers) {
        let running = instances.iter().any(|i| i.id == s.instance && i.state == InstanceState::Running);
        let d = match d {
            Ok(list) if running => Ok(list),
            Ok(_) => Err(PortError::new(
                "NodeUnreachable",
                format!("instance of {} is not running", s.name),
                crate::ports::ErrorClass::Retryable,
            )),
            Err(e) => Err(e),
        };
        disks.insert(s.name.clone(), d);
    }
    disks
}

/// The instances and the volumes that matter: one `DescribeVolumes` covers every volume mirrorctl
/// has tagged for this cluster (new, replaced, abandoned); a second one, by id, only for volumes
/// attached to the instances that carry no tag of ours yet (the original mirror volumes before a
/// first restore). So a pass normally costs one `DescribeVolumes`, whatever is in flight.
async fn instances_and_volumes(
    ports: &Ports,
    policy: &RetryPolicy,
    ids: &[InstanceId],
    ours: &VolumeFilter,
) -> PortResult<(Vec<Instance>, Vec<Volume>)> {
    let clock = ports.clock.as_ref();
    let (instances, tagged) = futures::join!(
        with_retries(policy, clock, || ports.cloud.describe_instances(ids)),
        with_retries(policy, clock, || ports.cloud.describe_volumes(ours)),
    );
    let (instances, mut volumes) = (instances?, tagged?);
    let untagged: Vec<VolumeId> = instances
        .iter()
        .flat_map(|i| i.devices.iter().map(|(_, v)| v.clone()))
        .filter(|v| !volumes.iter().any(|x| &x.id == v))
        .collect();
    if !untagged.is_empty() {
        let by_id = VolumeFilter { ids: untagged, ..VolumeFilter::default() };
        for v in with_retries(policy, clock, || ports.cloud.describe_volumes(&by_id)).await? {
            if !volumes.iter().any(|x| x.id == v.id) {
                volumes.push(v);
            }
        }
    }
    Ok((instances, volumes))
}
