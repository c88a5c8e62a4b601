//! Observation: one consistent-enough picture of the world per reconcile pass.
//!
//! Why this module exists: the planner is pure, so everything it needs is gathered here first,
//! concurrently, from the ports: instances, the cluster's volumes (attached to its instances, or
//! tagged with its name), its snapshots, CLUSTERPRO status and configuration, the mirror colours
//! and each running server's disks. One `DescribeVolumes` per pass covers every in-flight step of
//! the cluster. A node that cannot be reached (its instance is stopped) is recorded as such, not
//! treated as an error: a backup stops the standby on purpose.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{InstanceId, Region, ResourceName, ServerName, SnapshotId, VolumeId};
use crate::ports::cloud::{
    FastRestore, Instance, InstanceState, ShutdownBehavior, Snapshot, SnapshotFilter, Tags, Volume, VolumeFilter,
    VolumeInit, VolumeState, tag,
};
use crate::ports::cluster::{CLUSTER_UNREACHABLE, ClusterConfig, ClusterStatus, MirrorStatus};
use crate::ports::node::Disk;
use crate::ports::{PortError, PortResult, Ports};
use crate::retry::{RetryPolicy, with_retries};
use crate::spec::Spec;

/// Everything the planner looks at.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observed {
    /// When the observation began (the only time the planner knows). Every read happened at or
    /// after it, so a window measured up to `now` ("no snapshot visible within 30 s of the call")
    /// never counts time the reads did not see: a slow look (commands over SSM can take many
    /// seconds) must not turn "not visible yet" into "never happened".
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
    /// Mirror colours of the file's other md resources ([`crate::spec::Spec::more_mirrors`]),
    /// those configured that answered.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub other_mirrors: BTreeMap<ResourceName, MirrorStatus>,
    /// Disks per server; `Err` holds why the node could not be asked.
    pub disks: BTreeMap<ServerName, Result<Vec<Disk>, PortError>>,
    /// Whether some server answered for the cluster as a running member. When none did
    /// ([`crate::ports::cluster::CLUSTER_UNREACHABLE`]), `cluster` shows every server out of the
    /// cluster and nothing else, and `config` is the last one read.
    #[serde(default = "yes")]
    pub cluster_reachable: bool,
    /// Whether the CLUSTERPRO port runs "this server leaves, then that starts" as one request
    /// ([`crate::ports::cluster::Cluster::can_leave_then_start`]): the backup then restarts
    /// business in the same step that takes the standby out.
    #[serde(default)]
    pub leave_then_start: bool,
    /// How far EBS has loaded the cluster's restored volumes from their snapshot (full looks
    /// only; informational: the planner does not wait for it).
    #[serde(default)]
    pub initialization: BTreeMap<VolumeId, VolumeInit>,
    /// Fast Snapshot Restore of the restore snapshot, per zone EC2 lists (read only while a
    /// restore with `mirror.volume.fast_restore` is wanted).
    #[serde(default)]
    pub fast_restores: Vec<FastRestore>,
    /// The cluster's snapshots in each `backup.copy_to` region (the copies), read with the
    /// snapshots; a region that could not be read is absent (unknown, not empty).
    #[serde(default)]
    pub copies: BTreeMap<Region, Vec<Snapshot>>,
}

impl Observed {
    /// The first md resource of `spec` whose mirror is not healthy (both sides GREEN) or did not
    /// answer; `None` when every md's mirror is healthy.
    pub fn unhealthy_mirror<'a>(&self, spec: &'a Spec) -> Option<&'a crate::ids::ResourceName> {
        spec.mirrors().map(|m| &m.resource).find(|r| {
            let status = if **r == spec.mirror.resource { self.mirror.as_ref() } else { self.other_mirrors.get(*r) };
            !status.is_some_and(MirrorStatus::healthy)
        })
    }

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

/// Which parts of the world a pass reads afresh; the rest is carried over from the previous pass.
///
/// Why: a full look costs about seven EC2 `Describe*` calls, a `clp.conf` pull and a command on
/// each server, and most passes of a restore follow a step that changed one small part of the
/// world (a group stopped, a disk taken offline). Re-reading only what the last steps touched,
/// what is still changing by itself, and what the planner's wait names keeps a two-node restore
/// within a dozen `Describe*` calls and shortens every pass to the slowest read it really needs.
/// CLUSTERPRO status and mirror colours are read on every pass (they change by themselves), except
/// right after a CLUSTERPRO operation that answered with them ([`Refresh::keep_status`]).
/// Something changed behind mirrorctl's back is seen at the next full look: the first pass of
/// every reconcile (and so every daemon resync), after any failed step, after a wait that did not
/// end in three looks, and at least every [`FULL_LOOK_EVERY`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[allow(clippy::struct_excessive_bools)]
pub struct Refresh {
    /// `DescribeInstances`.
    pub instances: bool,
    /// `DescribeInstanceAttribute` (shutdown behaviour): full looks only.
    pub shutdown: bool,
    /// The cluster-tagged `DescribeVolumes`.
    pub tagged_volumes: bool,
    /// Untagged volumes to read by id (the original mirror volumes something happened to).
    pub volume_ids: BTreeSet<VolumeId>,
    /// `DescribeSnapshots`.
    pub snapshots: bool,
    /// The CLUSTERPRO configuration.
    pub config: bool,
    /// Servers whose disks are listed.
    pub disks: BTreeSet<ServerName>,
    /// `DescribeVolumeStatus` of the restored volumes still loading: full looks only.
    pub initialization: bool,
    /// `DescribeFastSnapshotRestores` of the restore snapshot.
    pub fast_restore: bool,
    /// CLUSTERPRO status is carried over, not read: the last batch's one CLUSTERPRO operation
    /// answered with the status it left (`execute::Seen::Cluster`), already in the previous
    /// observation. Never set by a full look or after a wait.
    pub keep_status: bool,
    /// Mirror colours are carried over, not read: an answer gave them, or md is not configured
    /// (the colours would be dropped).
    pub keep_mirror: bool,
}

/// The longest a reconcile goes without a full look at the world.
pub const FULL_LOOK_EVERY: std::time::Duration = std::time::Duration::from_mins(2);

/// EC2 `Describe*` calls of one full look at a converged two-node cluster: instances, volumes
/// (tagged ones and those at the servers' instances), snapshots, and each server's shutdown
/// behaviour. What a periodic resync costs per cluster (`tests/it/observe_refresh.rs` counts it).
pub const FULL_LOOK_DESCRIBES: u32 = 6;

impl Refresh {
    /// Everything (a full look).
    pub fn everything(spec: &Spec) -> Self {
        Refresh {
            instances: true,
            shutdown: true,
            tagged_volumes: true,
            volume_ids: BTreeSet::new(),
            snapshots: true,
            config: true,
            disks: spec.cluster.servers.iter().map(|s| s.name.clone()).collect(),
            initialization: true,
            fast_restore: wants_fast_restore(spec),
            keep_status: false,
            keep_mirror: false,
        }
    }
}

/// CLUSTERPRO status read beside a batch of steps that changes nothing CLUSTERPRO reports (disk
/// commands, EC2 calls, the preflight): the reconcile loop runs it at the same time as the steps,
/// so the next pass starts from it instead of reading it after them (`reconcile`, see README
/// "Single restore and backup"). It is then no older than that batch. `(status, reachable)`, as
/// a look reads them; `None` when the read failed: the next pass reads it again.
pub async fn status_beside(spec: &Spec, ports: &Ports) -> Option<(ClusterStatus, bool)> {
    match ports.cluster.status().await {
        Ok(status) => Some((status, true)),
        Err(e) if e.code == CLUSTER_UNREACHABLE => Some((
            ClusterStatus {
                servers: spec.cluster.servers.iter().map(|s| (s.name.clone(), false)).collect(),
                ..ClusterStatus::default()
            },
            false,
        )),
        Err(_) => None,
    }
}

/// Whether observation reads Fast Snapshot Restore: a restore with `fast_restore` is wanted.
pub(crate) fn wants_fast_restore(spec: &Spec) -> bool {
    (spec.restore.is_some() || spec.restore_backup.is_some()) && spec.mirror.volume.fast_restore
}

/// The snapshot the file's restore restores: `restore.snapshot`, or the one snapshot tagged as
/// this cluster's backup `restore.backup` (none while that backup is missing or a set: the
/// planner refuses those, [`crate::plan::restore::of_backup`]).
fn restore_snapshot(spec: &Spec, snapshots: &[Snapshot]) -> Option<SnapshotId> {
    if let Some(r) = &spec.restore {
        return Some(r.snapshot.clone());
    }
    let rb = spec.restore_backup.as_ref()?;
    let mut of = snapshots.iter().filter(|s| {
        s.tags.get(tag::CLUSTER).map(String::as_str) == Some(spec.cluster.name.as_str())
            && s.tags.get(tag::ROLE).map(String::as_str) == Some("backup")
            && s.tags.get(tag::REQUEST).map(String::as_str) == Some(rb.backup.as_str())
    });
    match (of.next(), of.next()) {
        (Some(one), None) => Some(one.id.clone()),
        _ => None,
    }
}

/// Observes the whole world for `spec` (the first pass of a reconcile, `plan`, `apply --plan`).
/// Fails only when a source every decision depends on (EC2 or CLUSTERPRO) cannot be read; callers
/// retry retryable errors.
pub async fn observe(spec: &Spec, ports: &Ports, policy: &RetryPolicy) -> PortResult<Observed> {
    observe_with(spec, ports, policy, None, &Refresh::everything(spec)).await
}

/// Observes what `want` names afresh and carries the rest over from `prev` (everything is read
/// when there is no `prev`). CLUSTERPRO status and mirror colours are read unless `want` keeps them.
#[allow(clippy::too_many_lines)]
pub async fn observe_with(
    spec: &Spec,
    ports: &Ports,
    policy: &RetryPolicy,
    prev: Option<&Observed>,
    want: &Refresh,
) -> PortResult<Observed> {
    let began = ports.clock.now();
    let everything = Refresh::everything(spec);
    let want = if prev.is_some() { want } else { &everything };
    let clock = ports.clock.as_ref();
    let ids: Vec<InstanceId> = spec.cluster.servers.iter().map(|s| s.instance.clone()).collect();
    let cluster_tag: Tags = [(tag::CLUSTER.to_owned(), spec.cluster.name.to_string())].into();
    let ours = VolumeFilter { tags: cluster_tag.clone(), ..VolumeFilter::default() };
    let own_snaps = SnapshotFilter { tags: cluster_tag, ..SnapshotFilter::default() };

    // Everything at once: one round trip of wall time per pass, whatever the number of calls.
    let shutdown_calls = async {
        if !want.shutdown {
            return None;
        }
        let calls = ids.iter().map(|id| with_retries(policy, clock, move || ports.cloud.shutdown_behavior(id)));
        Some(futures::future::join_all(calls).await)
    };
    let disk_calls =
        futures::future::join_all(spec.cluster.servers.iter().map(|s| async {
            if want.disks.contains(&s.name) { Some(ports.node.disks(&s.name).await) } else { None }
        }));
    let snapshots_call =
        async { if want.snapshots { Some(snapshots(spec, ports, policy, &own_snaps).await) } else { None } };
    let volumes_call = instances_and_volumes(ports, policy, &ids, &ours, prev, want);
    let config_call = async {
        if want.config {
            Some(
                with_retries(policy, clock, || async {
                    match ports.cluster.config().await {
                        Err(e) if e.code == CLUSTER_UNREACHABLE => Ok(None),
                        r => r.map(Some),
                    }
                })
                .await,
            )
        } else {
            None
        }
    };
    let status_call = async {
        if want.keep_status && prev.is_some() {
            return None;
        }
        Some(
            with_retries(policy, clock, || async {
                match ports.cluster.status().await {
                    Err(e) if e.code == CLUSTER_UNREACHABLE => Ok(None),
                    r => r.map(Some),
                }
            })
            .await,
        )
    };
    // Every md's colours, or none of them: an operation's answer carries the colours of all.
    let mirror_call = async {
        if want.keep_mirror && prev.is_some() {
            None
        } else {
            Some(futures::join!(
                ports.cluster.mirror_status(&spec.mirror.resource),
                futures::future::join_all(spec.more_mirrors.iter().map(|m| ports.cluster.mirror_status(&m.resource)))
            ))
        }
    };
    let ((volumes_res, snaps), (status, config, mirrors, shutdown_res, disk_res)) =
        futures::join!(async { futures::join!(volumes_call, snapshots_call) }, async {
            futures::join!(status_call, config_call, mirror_call, shutdown_calls, disk_calls)
        });
    let (instances, mut volumes) = volumes_res?;
    volumes.retain(|v| v.state != VolumeState::Deleted);
    volumes.sort_by(|a, b| a.id.cmp(&b.id));
    let (snapshots, copies) = match (snaps, prev) {
        (Some(s), _) => s?,
        (None, Some(p)) => (p.snapshots.clone(), p.copies.clone()),
        (None, None) => unreachable!("everything is read without a previous observation"),
    };
    let (cluster, cluster_reachable) = match (status, prev) {
        (Some(status), _) => {
            let status = status?;
            let reachable = status.is_some();
            let cluster = status.unwrap_or_else(|| ClusterStatus {
                servers: spec.cluster.servers.iter().map(|s| (s.name.clone(), false)).collect(),
                ..ClusterStatus::default()
            });
            (cluster, reachable)
        }
        (None, Some(p)) => (p.cluster.clone(), p.cluster_reachable),
        (None, None) => unreachable!("everything is read without a previous observation"),
    };
    let config = match (config, prev) {
        (Some(c), prev) => c?.or_else(|| prev.map(|p| p.config.clone())).unwrap_or_default(),
        (None, Some(p)) => p.config.clone(),
        (None, None) => unreachable!("everything is read without a previous observation"),
    };
    let shutdown = match (shutdown_res, prev) {
        (Some(res), _) => {
            let mut shutdown = BTreeMap::new();
            for (id, b) in ids.iter().zip(res) {
                shutdown.insert(id.clone(), b?);
            }
            shutdown
        }
        (None, Some(p)) => p.shutdown.clone(),
        (None, None) => unreachable!("everything is read without a previous observation"),
    };
    // The mirror status only means something while md is configured; its errors are a fact
    // (not configured, cluster busy), not an observation failure.
    let (mirror, other_mirrors) = if let Some((mirror, others)) = mirrors {
        let mirror = if config.mirror(&spec.mirror.resource).is_some() { mirror.ok() } else { None };
        let others = spec
            .more_mirrors
            .iter()
            .zip(others)
            .filter(|(m, _)| config.mirror(&m.resource).is_some())
            .filter_map(|(m, r)| Some((m.resource.clone(), r.ok()?)))
            .collect();
        (mirror, others)
    } else {
        let mirror =
            if config.mirror(&spec.mirror.resource).is_some() { prev.and_then(|p| p.mirror.clone()) } else { None };
        (mirror, prev.map(|p| p.other_mirrors.clone()).unwrap_or_default())
    };
    let disk_res = spec
        .cluster
        .servers
        .iter()
        .zip(disk_res)
        .map(|(s, fresh)| match (fresh, prev) {
            (Some(d), _) => d,
            (None, Some(p)) => p.disks.get(&s.name).cloned().unwrap_or_else(|| Ok(Vec::new())),
            (None, None) => unreachable!("everything is read without a previous observation"),
        })
        .collect();
    let disks = disks_by_server(spec, &instances, disk_res);
    let initialization = initialization(spec, ports, &volumes, prev, want.initialization).await;
    let fast_restores = match (restore_snapshot(spec, &snapshots), prev) {
        (Some(r), _) if want.fast_restore => {
            with_retries(policy, clock, || ports.cloud.describe_fast_snapshot_restores(&r)).await?
        }
        (Some(r), Some(p)) if wants_fast_restore(spec) => {
            p.fast_restores.iter().filter(|f| f.snapshot == r).cloned().collect()
        }
        _ => Vec::new(),
    };

    Ok(Observed {
        now: began,
        instances: instances.into_iter().map(|i| (i.id.clone(), i)).collect(),
        shutdown,
        volumes,
        snapshots,
        cluster,
        cluster_reachable,
        leave_then_start: ports.cluster.can_leave_then_start(),
        config,
        mirror,
        other_mirrors,
        disks,
        initialization,
        fast_restores,
        copies,
    })
}

fn yes() -> bool {
    true
}

/// How long after its creation a restored volume's loading is still asked about.
const LOADING_WATCHED_FOR: jiff::SignedDuration = jiff::SignedDuration::from_hours(24 * 7);

/// The initialization of the cluster's restored volumes that are in use (one
/// `DescribeVolumeStatus`, made only on a full look and only for volumes younger than a week that
/// are not known to be loaded). Best effort: it is shown to operators, never decided on, so a failure (moto does not
/// implement the call) leaves the previous answer and is logged, not retried.
async fn initialization(
    spec: &Spec,
    ports: &Ports,
    volumes: &[Volume],
    prev: Option<&Observed>,
    read: bool,
) -> BTreeMap<VolumeId, VolumeInit> {
    let now = ports.clock.now();
    let mut known: BTreeMap<VolumeId, VolumeInit> = prev
        .map(|p| p.initialization.clone())
        .unwrap_or_default()
        .into_iter()
        .filter(|(id, _)| volumes.iter().any(|v| &v.id == id))
        .collect();
    let restored: Vec<VolumeId> = volumes
        .iter()
        .filter(|v| {
            v.snapshot.is_some()
                && v.state == VolumeState::InUse
                && now.duration_since(v.created) < LOADING_WATCHED_FOR
                && v.tags.get(tag::CLUSTER).is_some_and(|c| c == spec.cluster.name.as_str())
                && known.get(&v.id).is_none_or(|i| !i.complete)
        })
        .map(|v| v.id.clone())
        .collect();
    if !read || restored.is_empty() {
        return known;
    }
    match ports.cloud.volume_initialization(&restored).await {
        Ok(list) => known.extend(list.into_iter().map(|i| (i.volume.clone(), i))),
        Err(e) => tracing::debug!(error = %e, "DescribeVolumeStatus failed; initialization progress not updated"),
    }
    known
}

/// The cluster's snapshots in each copy region, by region.
type Copies = BTreeMap<Region, Vec<Snapshot>>;

/// The cluster's own snapshots, and the restore snapshot when it is not one of them (a second
/// call, by id, made only then); and its snapshots in each `backup.copy_to` region.
async fn snapshots(
    spec: &Spec,
    ports: &Ports,
    policy: &RetryPolicy,
    own: &SnapshotFilter,
) -> PortResult<(Vec<Snapshot>, Copies)> {
    let clock = ports.clock.as_ref();
    let mut snapshots = with_retries(policy, clock, || ports.cloud.describe_snapshots(own)).await?;
    if let Some(r) = &spec.restore
        && !snapshots.iter().any(|s| s.id == r.snapshot)
    {
        let filter = SnapshotFilter { ids: vec![r.snapshot.clone()], ..SnapshotFilter::default() };
        // A snapshot that does not exist is a fact for preflight, not an observation failure: not
        // retried, and not an error.
        let found = with_retries(policy, clock, || async {
            match ports.cloud.describe_snapshots(&filter).await {
                Err(e) if e.code == "InvalidSnapshot.NotFound" => Ok(Vec::new()),
                other => other,
            }
        })
        .await?;
        snapshots.extend(found);
    }
    snapshots.sort_by(|a, b| a.id.cmp(&b.id));
    snapshots.dedup_by(|a, b| a.id == b.id);
    // A destination that does not answer must not stop the cluster's own backups: it is left
    // out (unknown), and the planner neither copies to it nor deletes a source on a guess.
    let mut copies = Copies::new();
    for target in spec.backup.iter().flat_map(|b| &b.copy_to) {
        let found = match ports.cloud.in_region(&target.region) {
            Ok(there) => with_retries(policy, clock, || there.describe_snapshots(own)).await,
            Err(e) => Err(e),
        };
        match found {
            Ok(mut found) => {
                found.sort_by(|a, b| a.id.cmp(&b.id));
                copies.insert(target.region.clone(), found);
            }
            Err(e) => tracing::warn!(region = %target.region, error = %e, "cannot read the copies in a copy_to region"),
        }
    }
    Ok((snapshots, copies))
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
/// attached to the instances that carry no tag of ours (the original mirror volumes before a
/// first restore), and after the first pass only for those of them something happened to. Parts
/// `want` does not name are carried over from `prev`.
async fn instances_and_volumes(
    ports: &Ports,
    policy: &RetryPolicy,
    ids: &[InstanceId],
    ours: &VolumeFilter,
    prev: Option<&Observed>,
    want: &Refresh,
) -> PortResult<(Vec<Instance>, Vec<Volume>)> {
    let clock = ports.clock.as_ref();
    let (instances, tagged) = futures::join!(
        async {
            match prev {
                Some(p) if !want.instances => Ok(p.instances.values().cloned().collect()),
                _ => with_retries(policy, clock, || ports.cloud.describe_instances(ids)).await,
            }
        },
        async {
            match prev {
                Some(p) if !want.tagged_volumes => Ok(p.volumes.iter().filter(|v| is_ours(v, ours)).cloned().collect()),
                _ => with_retries(policy, clock, || ports.cloud.describe_volumes(ours)).await,
            }
        },
    );
    let (instances, mut volumes): (Vec<Instance>, Vec<Volume>) = (instances?, tagged?);
    let on_ours = |v: &Volume| v.attachments.iter().any(|a| ids.contains(&a.instance));
    // Untagged volumes attached to the instances: read when first seen (or on a full pass) and
    // when `want` names them; otherwise carried over.
    let known: BTreeMap<&VolumeId, &Volume> =
        prev.map(|p| p.volumes.iter().filter(|v| !is_ours(v, ours)).map(|v| (&v.id, v)).collect()).unwrap_or_default();
    let mut read: Vec<VolumeId> = instances
        .iter()
        .flat_map(|i| i.devices.iter().map(|(_, v)| v.clone()))
        .chain(want.volume_ids.iter().cloned())
        .filter(|v| !volumes.iter().any(|x| &x.id == v))
        .filter(|v| prev.is_none() || want.volume_ids.contains(v) || !known.contains_key(v))
        .collect();
    read.sort();
    read.dedup();
    let mut untagged: Vec<Volume> =
        known.values().filter(|v| !read.contains(&v.id) && on_ours(v)).map(|v| (*v).clone()).collect();
    if !read.is_empty() {
        let by_id = VolumeFilter { ids: read, ..VolumeFilter::default() };
        let fresh = with_retries(policy, clock, || async {
            match ports.cloud.describe_volumes(&by_id).await {
                // A volume of ours deleted by someone else is simply gone from the picture.
                Err(e) if e.code == "InvalidVolume.NotFound" && prev.is_some() => Ok(Vec::new()),
                other => other,
            }
        })
        .await?;
        untagged.extend(fresh.into_iter().filter(|v| prev.is_none() || on_ours(v) || is_ours(v, ours)));
    }
    for v in untagged {
        if !volumes.iter().any(|x| x.id == v.id) {
            volumes.push(v);
        }
    }
    Ok((instances, volumes))
}

/// Whether mirrorctl tagged the volume as this cluster's (what the tag filter finds).
fn is_ours(v: &Volume, ours: &VolumeFilter) -> bool {
    ours.tags.iter().all(|(k, val)| v.tags.get(k) == Some(val))
}
