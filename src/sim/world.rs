//! The world state: everything the simulation knows, in one serializable struct, and the engine
//! that moves it forward in time.
//!
//! Why this module exists: EC2, CLUSTERPRO, the servers' disks and the data are coupled (an OS
//! shutdown stops an instance and breaks the mirror; a disk online in Windows makes a detach hang),
//! so they live together and change under one lock. Nothing here runs on a timer: every state that
//! takes time stores when it ends, and `World::advance` settles what is due, in time order, before
//! any call looks at the world. That is what lets a persisted world "continue" after a restart.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::clock::{plus, secs};
use super::fault::FailRule;
use super::latency::{SimRng, mix};
use super::oracle::{Content, Oracle};
use super::scenario::Scenario;
use super::throttle::TokenBucket;
use crate::ids::{DeviceName, InstanceId, Region, ResourceName, ServerName, SnapshotId, VolumeId, Zone};
use crate::ports::PortError;
use crate::ports::cloud::{
    AttachState, CreateVolume, InstanceState, ShutdownBehavior, SnapshotState, Tags, VolumeState,
};
use crate::ports::cluster::{ConfigChange, MdDefinition, ObjectState};
use crate::ports::node::OfflineReason;
use crate::spec::Os;

/// A volume's attachment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct AttachRec {
    pub(super) instance: InstanceId,
    pub(super) device: DeviceName,
    pub(super) state: AttachState,
    /// When `attaching`/`detaching` ends; `None` when settled or `busy`.
    pub(super) until: Option<Timestamp>,
}

/// An EBS volume.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct VolumeRec {
    pub(super) id: VolumeId,
    pub(super) zone: Zone,
    pub(super) size_gib: u32,
    pub(super) volume_type: String,
    pub(super) state: VolumeState,
    /// When `creating` ends.
    pub(super) ready_at: Option<Timestamp>,
    pub(super) snapshot: Option<SnapshotId>,
    pub(super) attachment: Option<AttachRec>,
    pub(super) tags: Tags,
    pub(super) created: Timestamp,
    /// Describe answers `NotFound` before this (eventual consistency).
    pub(super) visible_at: Timestamp,
    /// What the disk holds.
    pub(super) content: Content,
    /// The Windows disk signature (copied by snapshots).
    pub(super) signature: u64,
    /// `VolumeInitializationRate` asked for at creation (MiB/s), if any.
    #[serde(default)]
    pub(super) init_rate_mib_s: Option<u32>,
    /// Created by Fast Snapshot Restore: fully initialized at creation.
    #[serde(default)]
    pub(super) fast_restored: bool,
}

/// Fast Snapshot Restore of one snapshot in one zone. Its state is computed from the times (so a
/// reopened world sees EC2 "continue"); see `SimCloud`'s FSR calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct FsrRec {
    pub(super) snapshot: SnapshotId,
    pub(super) zone: Zone,
    /// When the enable was asked for (the credit bucket fills from then).
    pub(super) enabling: Timestamp,
    /// When `enabling` turns `optimizing`.
    pub(super) optimizing: Timestamp,
    /// When `optimizing` turns `enabled`.
    pub(super) enabled: Timestamp,
    /// Volume creation credits spent since `enabling`.
    pub(super) credits_used: u32,
    /// When a disable was asked for, and when it ends.
    pub(super) disabling: Option<(Timestamp, Timestamp)>,
}

/// An EBS snapshot.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct SnapshotRec {
    pub(super) id: SnapshotId,
    pub(super) volume: Option<VolumeId>,
    pub(super) size_gib: u32,
    pub(super) state: SnapshotState,
    pub(super) started: Timestamp,
    /// When `pending` ends.
    pub(super) until: Timestamp,
    pub(super) tags: Tags,
    pub(super) visible_at: Timestamp,
    pub(super) content: Content,
    pub(super) signature: u64,
    /// The region holding it when it is not the scenario's own (a cross-region copy).
    #[serde(default)]
    pub(super) region: Option<Region>,
}

/// An EC2 instance (one per server).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct InstanceRec {
    pub(super) id: InstanceId,
    pub(super) zone: Zone,
    pub(super) server: ServerName,
    pub(super) state: InstanceState,
    /// When `pending`/`stopping`/`shutting-down` ends.
    pub(super) until: Option<Timestamp>,
    pub(super) shutdown_behavior: ShutdownBehavior,
    /// When the running instance's server joins the cluster.
    pub(super) join_at: Option<Timestamp>,
}

/// A used `CreateVolume` `ClientToken`: the parameters it was used with and what came of it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TokenRec {
    pub(super) params: CreateVolume,
    pub(super) outcome: Result<VolumeId, PortError>,
}

/// The EC2 side of the account.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Ec2State {
    pub(super) volumes: BTreeMap<VolumeId, VolumeRec>,
    pub(super) snapshots: BTreeMap<SnapshotId, SnapshotRec>,
    pub(super) instances: BTreeMap<InstanceId, InstanceRec>,
    pub(super) tokens: BTreeMap<String, TokenRec>,
    pub(super) describe_bucket: TokenBucket,
    pub(super) mutate_bucket: TokenBucket,
    pub(super) deleted_snapshots: u64,
    /// Fast Snapshot Restores, one per snapshot and zone ever enabled.
    #[serde(default)]
    pub(super) fsr: Vec<FsrRec>,
}

/// A CLUSTERPRO resource's runtime state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ResState {
    pub(super) state: ObjectState,
    pub(super) current: Option<ServerName>,
}

impl ResState {
    pub(super) fn offline() -> Self {
        ResState { state: ObjectState::Offline, current: None }
    }
    pub(super) fn on(state: ObjectState, server: &ServerName) -> Self {
        ResState { state, current: Some(server.clone()) }
    }
    pub(super) fn online_on(&self, server: &ServerName) -> bool {
        self.state == ObjectState::Online && self.current.as_ref() == Some(server)
    }
}

/// A group or resource operation in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum ClpOp {
    StartGroup { server: ServerName },
    StopGroup,
    MoveGroup { from: ServerName, target: ServerName },
    StartResource { resource: ResourceName, server: ServerName },
    StopResource { resource: ResourceName },
}

impl std::fmt::Display for ClpOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClpOp::StartGroup { server } => write!(f, "start the group on {server}"),
            ClpOp::StopGroup => write!(f, "stop the group"),
            ClpOp::MoveGroup { from, target } => write!(f, "move the group from {from} to {target}"),
            ClpOp::StartResource { resource, server } => write!(f, "start resource {resource} on {server}"),
            ClpOp::StopResource { resource } => write!(f, "stop resource {resource}"),
        }
    }
}

/// A pending operation and when it completes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Transition {
    pub(super) op: ClpOp,
    pub(super) until: Timestamp,
}

/// A configuration push in progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ConfigPending {
    pub(super) changes: Vec<ConfigChange>,
    pub(super) until: Timestamp,
}

/// The mirror's replication state between the two sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum MirrorState {
    /// Both sides hold the same data and replicate.
    InSync,
    /// `stale` missed `writes` writes (or needs a full copy); it is not replicated to.
    Degraded { stale: ServerName, writes: u64, full: bool },
    /// `target` is being copied to from the other side.
    Recovering { target: ServerName, full: bool, writes: u64, until: Timestamp },
    /// Added with initial copy: the first md start copies from its server to the other.
    Unconstructed,
}

/// One CLUSTERPRO server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct ClpServer {
    pub(super) instance: InstanceId,
    pub(super) member: bool,
    /// NEC's backup or restore pre-processing ran here and its post-processing has not: the
    /// cluster service stays disabled (the server does not join when it boots).
    #[serde(default)]
    pub(super) vendor_mode: Option<crate::ports::cluster::VendorOp>,
}

/// One md resource: its configuration, runtime state and mirror. Kept while the resource is
/// removed from the configuration (`def` is `None`), so a re-add finds its volumes again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct MdRec {
    /// The resource's name.
    pub(super) name: ResourceName,
    /// The definition, when configured.
    pub(super) def: Option<MdDefinition>,
    /// Device slot of the volume holding its data partition.
    pub(super) device: DeviceName,
    /// Device slot of the volume holding its cluster partition, when not `device`.
    pub(super) cluster_device: Option<DeviceName>,
    pub(super) state: ResState,
    pub(super) mirror: MirrorState,
    /// When its next business write happens (while it is online).
    pub(super) next_write_at: Option<Timestamp>,
}

impl MdRec {
    /// The device slot of the volume holding its cluster partition.
    pub(super) fn cluster_slot(&self) -> &DeviceName {
        self.cluster_device.as_ref().unwrap_or(&self.device)
    }
}

/// The CLUSTERPRO side: one failover group with its md resources, one business resource depending
/// on all of them and, optionally, a virtual IP that does not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct ClpState {
    pub(super) servers: BTreeMap<ServerName, ClpServer>,
    pub(super) group: crate::ids::GroupName,
    pub(super) auto_start: bool,
    /// Where the group last ran (kept while it is offline).
    pub(super) last_server: Option<ServerName>,
    /// Why the last start failed.
    pub(super) last_error: Option<String>,
    /// The md resources, in the scenario's order.
    pub(super) mds: Vec<MdRec>,
    pub(super) business: ResourceName,
    pub(super) business_kind: String,
    pub(super) business_state: ResState,
    /// The resource that does not depend on md (a virtual IP), when the scenario has one.
    #[serde(default)]
    pub(super) vip: Option<ResourceName>,
    #[serde(default = "ResState::offline")]
    pub(super) vip_state: ResState,
    pub(super) transition: Option<Transition>,
    pub(super) config_pending: Option<ConfigPending>,
    /// The servers whose restore post-processing ran since the last restore pre-processing, and
    /// whether each asked to skip the mirror copy.
    #[serde(default)]
    pub(super) restore_posts: BTreeMap<ServerName, bool>,
}

/// The OS view of one attached disk on one server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct OsDisk {
    pub(super) number: u32,
    pub(super) online: bool,
    pub(super) read_only: bool,
    pub(super) offline_reason: Option<OfflineReason>,
    /// Partition number → drive letter (Windows).
    pub(super) letters: BTreeMap<u32, char>,
    /// Whether letters were given on a first online.
    pub(super) lettered: bool,
    /// Mounted partition numbers (Linux).
    pub(super) mounted: Vec<u32>,
}

/// One server's operating system: its disks' OS state and the signatures it has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct NodeState {
    pub(super) disks: BTreeMap<VolumeId, OsDisk>,
    /// Disk signature → the letters this server gave its partitions.
    pub(super) seen: BTreeMap<u64, BTreeMap<u32, char>>,
    pub(super) next_number: u32,
}

/// Everything the simulated world holds. Serialised as one JSON document.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct World {
    pub(super) scenario: Scenario,
    /// Model time when the world was last saved, and the wall time it was saved at.
    pub(super) saved_model: Timestamp,
    pub(super) saved_wall: Timestamp,
    /// The speed of the process that saved the world last: time away passes at that speed.
    #[serde(default = "one")]
    pub(super) saved_speed: f64,
    pub(super) rng: SimRng,
    pub(super) id_counter: u64,
    pub(super) ec2: Ec2State,
    pub(super) clp: ClpState,
    pub(super) nodes: BTreeMap<ServerName, NodeState>,
    pub(super) oracle: Oracle,
    pub(super) timeline: Vec<(Timestamp, String)>,
    pub(super) calls: BTreeMap<String, u64>,
    pub(super) faults: Vec<FailRule>,
}

/// Something due at a point in time.
#[derive(Debug, Clone)]
enum Due {
    VolumeReady(VolumeId),
    Attachment(VolumeId),
    Snapshot(SnapshotId),
    Instance(InstanceId),
    Join(InstanceId),
    Group,
    Config,
    Recovery(usize),
}

impl World {
    /// Builds the starting world of a scenario.
    pub(super) fn from_scenario(scenario: Scenario, seed: u64) -> Self {
        let t0 = scenario.epoch;
        let th = scenario.throttle.clone();
        let mut w = World {
            saved_model: t0,
            saved_wall: t0,
            saved_speed: 1.0,
            rng: SimRng::new(seed),
            id_counter: 0,
            ec2: Ec2State {
                volumes: BTreeMap::new(),
                snapshots: BTreeMap::new(),
                instances: BTreeMap::new(),
                tokens: BTreeMap::new(),
                describe_bucket: TokenBucket::full(th.describe_capacity, th.describe_refill_per_s, t0),
                mutate_bucket: TokenBucket::full(th.mutate_capacity, th.mutate_refill_per_s, t0),
                deleted_snapshots: 0,
                fsr: Vec::new(),
            },
            clp: ClpState {
                servers: BTreeMap::new(),
                group: scenario.group.clone(),
                auto_start: true,
                last_server: None,
                last_error: None,
                mds: scenario
                    .mirrors()
                    .into_iter()
                    .map(|m| MdRec {
                        name: m.resource.clone(),
                        def: Some(MdDefinition {
                            resource: m.resource,
                            group: scenario.group.clone(),
                            data_partition: m.data_partition,
                            cluster_partition: m.cluster_partition,
                            initial_copy: true,
                        }),
                        device: m.device,
                        cluster_device: m.cluster_device,
                        state: ResState::offline(),
                        mirror: MirrorState::InSync,
                        next_write_at: None,
                    })
                    .collect(),
                business: scenario.business.clone(),
                business_kind: scenario.business_kind.clone(),
                business_state: ResState::offline(),
                vip: scenario.vip.clone(),
                vip_state: ResState::offline(),
                transition: None,
                config_pending: None,
                restore_posts: BTreeMap::new(),
            },
            nodes: BTreeMap::new(),
            oracle: Oracle::default(),
            timeline: Vec::new(),
            calls: BTreeMap::new(),
            faults: Vec::new(),
            scenario,
        };
        let genesis: Vec<Content> =
            (0..w.clp.mds.len()).map(|i| w.oracle.original(u32::try_from(i).unwrap_or(u32::MAX))).collect();
        let servers = w.scenario.servers.clone();
        for s in &servers {
            w.add_server(s, &genesis, t0);
        }
        if let Some(active) = servers.first() {
            for md in &mut w.clp.mds {
                md.state = ResState::on(ObjectState::Online, &active.name);
                md.next_write_at = Some(plus(t0, 1.0));
            }
            w.clp.business_state = ResState::on(ObjectState::Online, &active.name);
            if w.clp.vip.is_some() {
                w.clp.vip_state = ResState::on(ObjectState::Online, &active.name);
            }
            w.clp.last_server = Some(active.name.clone());
        }
        w.log(t0, format!("world created from scenario {} (seed {})", w.scenario.cluster, w.rng.seed()));
        w
    }

    /// Adds one scenario server: its running instance, its attached mirror volumes (each md's
    /// data volume and, when split, its cluster-partition volume; online, with the scenario's
    /// letters), the scenario's further volumes and its cluster membership. `genesis` is each
    /// md's original data.
    fn add_server(&mut self, s: &super::scenario::ServerSetup, genesis: &[Content], t0: Timestamp) {
        self.ec2.instances.insert(
            s.instance.clone(),
            InstanceRec {
                id: s.instance.clone(),
                zone: s.zone.clone(),
                server: s.name.clone(),
                state: InstanceState::Running,
                until: None,
                shutdown_behavior: s.shutdown_behavior,
                join_at: None,
            },
        );
        self.clp
            .servers
            .insert(s.name.clone(), ClpServer { instance: s.instance.clone(), member: true, vendor_mode: None });
        let mut node = NodeState { next_number: 1, ..NodeState::default() };
        let mirrors = self.scenario.mirrors();
        for (i, m) in mirrors.iter().enumerate() {
            let content = genesis.get(i).copied().unwrap_or_default();
            for device in m.devices() {
                let name = match (i, device == &m.device) {
                    (0, true) => format!("{}-{}-mirror", self.scenario.cluster, s.name),
                    (_, true) => format!("{}-{}-{}", self.scenario.cluster, s.name, m.resource),
                    (_, false) => format!("{}-{}-{}-cluster", self.scenario.cluster, s.name, m.resource),
                };
                let (vol, signature) = self.add_volume(s, device, name, content, t0);
                let letters: BTreeMap<u32, char> = self
                    .partitions_at(device)
                    .into_iter()
                    .filter_map(|(n, p)| match p {
                        crate::spec::Partition::Letter(c) => Some((n, c)),
                        crate::spec::Partition::Device(_) => None,
                    })
                    .collect();
                if !letters.is_empty() {
                    node.seen.insert(signature, letters.clone());
                }
                let number = node.next_number;
                node.next_number += 1;
                node.disks.insert(
                    vol,
                    OsDisk {
                        number,
                        online: true,
                        read_only: false,
                        offline_reason: None,
                        lettered: true,
                        letters,
                        mounted: Vec::new(),
                    },
                );
            }
        }
        for device in self.scenario.extra_volumes.clone() {
            let name = format!("{}-{}-{}", self.scenario.cluster, s.name, device.api_name());
            let content = genesis.first().copied().unwrap_or_default();
            self.add_volume(s, &device, name, content, t0);
        }
        self.nodes.insert(s.name.clone(), node);
    }

    /// One in-use volume of the scenario attached at `device` on `s`'s instance; returns its id
    /// and disk signature.
    fn add_volume(
        &mut self,
        s: &super::scenario::ServerSetup,
        device: &DeviceName,
        name: String,
        content: Content,
        t0: Timestamp,
    ) -> (VolumeId, u64) {
        let vol = self.new_volume_id();
        let signature = self.next_mix();
        let mut tags = Tags::new();
        tags.insert("Name".to_owned(), name);
        self.ec2.volumes.insert(
            vol.clone(),
            VolumeRec {
                id: vol.clone(),
                zone: s.zone.clone(),
                size_gib: self.scenario.size_gib,
                volume_type: self.scenario.volume_type.clone(),
                state: VolumeState::InUse,
                ready_at: None,
                snapshot: None,
                attachment: Some(AttachRec {
                    instance: s.instance.clone(),
                    device: device.clone(),
                    state: AttachState::Attached,
                    until: None,
                }),
                tags,
                created: t0,
                visible_at: t0,
                content,
                signature,
                init_rate_mib_s: None,
                fast_restored: false,
            },
        );
        (vol, signature)
    }

    /// The partitions a mirror volume at `device` holds, by number, and what each is for the
    /// scenario's md: a volume holding both has the cluster partition as 1 and the data partition
    /// as 2 (the runbook's disk); a volume holding one of them has it as 1. A volume at a device
    /// no md uses has partitions 1 and 2 with no role (an empty list of roles).
    pub(super) fn partitions_at(&self, device: &DeviceName) -> Vec<(u32, crate::spec::Partition)> {
        match self.scenario.mirror_at(device) {
            Some((m, true)) if m.cluster_device.is_none() => {
                vec![(1, m.cluster_partition), (2, m.data_partition)]
            }
            Some((m, true)) => vec![(1, m.data_partition)],
            Some((m, false)) => vec![(1, m.cluster_partition)],
            None => Vec::new(),
        }
    }

    /// Appends to the timeline.
    pub(super) fn log(&mut self, t: Timestamp, text: impl Into<String>) {
        let text = text.into();
        tracing::debug!(target: "mirrorctl::sim", at = %t, "{text}");
        self.timeline.push((t, text));
    }

    /// A deterministic 64-bit value from the seed and the id counter.
    pub(super) fn next_mix(&mut self) -> u64 {
        self.id_counter += 1;
        mix(self.rng.seed(), self.id_counter)
    }

    pub(super) fn new_volume_id(&mut self) -> VolumeId {
        let v = self.next_mix();
        VolumeId::parse(&format!("vol-0{v:016x}")).unwrap_or_else(|_| unreachable!("17 hex digits"))
    }

    pub(super) fn new_snapshot_id(&mut self) -> SnapshotId {
        let v = self.next_mix();
        SnapshotId::parse(&format!("snap-0{v:016x}")).unwrap_or_else(|_| unreachable!("17 hex digits"))
    }

    /// `median` with jitter, in seconds.
    pub(super) fn jitter(&mut self, median: f64) -> f64 {
        let model = self.scenario.latency.clone();
        self.rng.jitter(median, &model)
    }

    /// `t + jitter(median)`.
    pub(super) fn after(&mut self, t: Timestamp, median: f64) -> Timestamp {
        let d = self.jitter(median);
        plus(t, d)
    }

    pub(super) fn server_of_instance(&self, id: &InstanceId) -> Option<ServerName> {
        self.ec2.instances.get(id).map(|i| i.server.clone())
    }

    pub(super) fn instance_of(&self, server: &ServerName) -> Option<&InstanceRec> {
        let id = &self.clp.servers.get(server)?.instance;
        self.ec2.instances.get(id)
    }

    pub(super) fn is_member(&self, server: &ServerName) -> bool {
        self.clp.servers.get(server).is_some_and(|s| s.member)
    }

    /// The other server of the cluster.
    pub(super) fn peer(&self, server: &ServerName) -> Option<ServerName> {
        self.clp.servers.keys().find(|s| *s != server).cloned()
    }

    /// The volume attached (and seen by the OS) at `device` of `server`'s instance.
    pub(super) fn volume_at(&self, server: &ServerName, device: &DeviceName) -> Option<VolumeId> {
        let inst = self.clp.servers.get(server)?.instance.clone();
        self.ec2.volumes.values().find_map(|v| {
            let a = v.attachment.as_ref()?;
            (a.instance == inst && a.device == *device && matches!(a.state, AttachState::Attached | AttachState::Busy))
                .then(|| v.id.clone())
        })
    }

    /// The volume attached (and seen by the OS) at the first md's data device of `server`.
    pub(super) fn mirror_volume(&self, server: &ServerName) -> Option<VolumeId> {
        self.volume_at(server, &self.scenario.device)
    }

    /// The volume holding md `i`'s data on `server`.
    pub(super) fn md_volume(&self, i: usize, server: &ServerName) -> Option<VolumeId> {
        self.volume_at(server, &self.clp.mds.get(i)?.device)
    }

    /// What md `i`'s data volume on `server` holds.
    pub(super) fn md_content(&self, i: usize, server: &ServerName) -> Option<Content> {
        let v = self.md_volume(i, server)?;
        self.ec2.volumes.get(&v).map(|v| v.content)
    }

    pub(super) fn mirror_content(&self, server: &ServerName) -> Option<Content> {
        self.md_content(0, server)
    }

    fn set_md_content(&mut self, i: usize, server: &ServerName, c: Content) {
        if let Some(rec) = self.md_volume(i, server).and_then(|v| self.ec2.volumes.get_mut(&v)) {
            rec.content = c;
        }
    }

    /// The position of the configured md resource named `resource`.
    pub(super) fn md_index(&self, resource: &ResourceName) -> Option<usize> {
        self.clp.mds.iter().position(|m| m.def.as_ref().is_some_and(|d| d.resource == *resource))
    }

    /// How the timeline names md `i`'s mirror: "mirror" when the cluster has one md (the runbook's
    /// wording), "mirror <md>" when it has several.
    pub(super) fn mirror_label(&self, i: usize) -> String {
        match self.clp.mds.get(i) {
            Some(m) if self.clp.mds.len() > 1 => format!("mirror {}", m.name),
            _ => "mirror".to_owned(),
        }
    }

    /// Where the first md is online (or still stopping), if anywhere.
    pub(super) fn md_active(&self) -> Option<ServerName> {
        self.md_active_of(0)
    }

    /// Where md `i` is online (or still stopping), if anywhere.
    pub(super) fn md_active_of(&self, i: usize) -> Option<ServerName> {
        let md = self.clp.mds.get(i)?;
        md.def.as_ref()?;
        // While md is going offline, it still serves (and writes) until the stop completes.
        matches!(md.state.state, ObjectState::Online | ObjectState::OfflinePending)
            .then(|| md.state.current.clone())
            .flatten()
    }

    /// Settles everything due up to `now`, in time order.
    pub(super) fn advance(&mut self, now: Timestamp) {
        while let Some((t, due)) = self.next_due(now) {
            self.accrue_writes(t);
            self.settle(t, due);
        }
        self.accrue_writes(now);
    }

    fn next_due(&self, now: Timestamp) -> Option<(Timestamp, Due)> {
        let mut best: Option<(Timestamp, Due)> = None;
        let mut consider = |t: Option<Timestamp>, d: Due| {
            if let Some(t) = t.filter(|t| *t <= now && best.as_ref().is_none_or(|(b, _)| t < b)) {
                best = Some((t, d));
            }
        };
        for v in self.ec2.volumes.values() {
            if v.state == VolumeState::Creating {
                consider(v.ready_at, Due::VolumeReady(v.id.clone()));
            }
            if let Some(a) = &v.attachment {
                consider(a.until, Due::Attachment(v.id.clone()));
            }
        }
        for s in self.ec2.snapshots.values() {
            if s.state == SnapshotState::Pending {
                consider(Some(s.until), Due::Snapshot(s.id.clone()));
            }
        }
        for i in self.ec2.instances.values() {
            consider(i.until, Due::Instance(i.id.clone()));
            consider(i.join_at, Due::Join(i.id.clone()));
        }
        consider(self.clp.transition.as_ref().map(|t| t.until), Due::Group);
        consider(self.clp.config_pending.as_ref().map(|c| c.until), Due::Config);
        for (i, md) in self.clp.mds.iter().enumerate() {
            if let MirrorState::Recovering { until, .. } = &md.mirror {
                consider(Some(*until), Due::Recovery(i));
            }
        }
        best
    }

    fn settle(&mut self, t: Timestamp, due: Due) {
        match due {
            Due::VolumeReady(id) => {
                if let Some(v) = self.ec2.volumes.get_mut(&id) {
                    v.state = VolumeState::Available;
                    v.ready_at = None;
                    self.log(t, format!("ec2: {id} available"));
                }
            }
            Due::Attachment(id) => self.settle_attachment(t, &id),
            Due::Snapshot(id) => {
                if let Some(s) = self.ec2.snapshots.get_mut(&id) {
                    s.state = SnapshotState::Completed;
                    self.log(t, format!("ec2: {id} completed"));
                }
            }
            Due::Instance(id) => self.settle_instance(t, &id),
            Due::Join(id) => {
                let Some(inst) = self.ec2.instances.get_mut(&id) else {
                    return;
                };
                inst.join_at = None;
                if inst.state != InstanceState::Running {
                    return;
                }
                let server = inst.server.clone();
                if let Some(op) = self.clp.servers.get(&server).and_then(|s| s.vendor_mode) {
                    self.log(
                        t,
                        format!(
                            "clp: {server} booted; its cluster service stays disabled (`{} --pre` ran)",
                            op.command()
                        ),
                    );
                    return;
                }
                if let Some(s) = self.clp.servers.get_mut(&server) {
                    s.member = true;
                }
                self.log(t, format!("clp: {server} joined the cluster"));
                self.on_join(t, &server);
            }
            Due::Group => self.settle_transition(t),
            Due::Config => self.settle_config(t),
            Due::Recovery(i) => self.finish_recovery(t, i),
        }
    }

    fn settle_attachment(&mut self, t: Timestamp, id: &VolumeId) {
        let Some(v) = self.ec2.volumes.get_mut(id) else {
            return;
        };
        let Some(a) = v.attachment.as_mut() else {
            return;
        };
        a.until = None;
        match a.state {
            AttachState::Attaching => {
                a.state = AttachState::Attached;
                let (inst, dev) = (a.instance.clone(), a.device.clone());
                self.log(t, format!("ec2: {id} attached to {inst} at {dev}"));
                if let Some(server) = self.server_of_instance(&inst) {
                    self.disk_arrived(&server, id);
                }
            }
            AttachState::Detaching => {
                let inst = a.instance.clone();
                v.attachment = None;
                v.state = VolumeState::Available;
                self.log(t, format!("ec2: {id} detached from {inst}"));
                if let Some(n) = self.server_of_instance(&inst).and_then(|s| self.nodes.get_mut(&s)) {
                    n.disks.remove(id);
                }
            }
            AttachState::Attached | AttachState::Detached | AttachState::Busy => {}
        }
    }

    fn settle_instance(&mut self, t: Timestamp, id: &InstanceId) {
        let Some(inst) = self.ec2.instances.get_mut(id) else {
            return;
        };
        inst.until = None;
        match inst.state {
            InstanceState::Pending => {
                inst.state = InstanceState::Running;
                let join = self.scenario.latency.cluster_join_s;
                let at = self.after(t, join);
                if let Some(inst) = self.ec2.instances.get_mut(id) {
                    inst.join_at = Some(at);
                }
                self.log(t, format!("ec2: {id} running"));
            }
            InstanceState::Stopping => {
                inst.state = InstanceState::Stopped;
                self.log(t, format!("ec2: {id} stopped"));
                self.release_busy(t, id);
            }
            InstanceState::ShuttingDown => {
                inst.state = InstanceState::Terminated;
                let server = inst.server.clone();
                self.log(t, format!("ec2: {id} terminated (its volumes are detached, not deleted)"));
                let ids: Vec<VolumeId> = self
                    .ec2
                    .volumes
                    .values()
                    .filter(|v| v.attachment.as_ref().is_some_and(|a| &a.instance == id))
                    .map(|v| v.id.clone())
                    .collect();
                for v in ids {
                    if let Some(rec) = self.ec2.volumes.get_mut(&v) {
                        rec.attachment = None;
                        rec.state = VolumeState::Available;
                    }
                    if let Some(n) = self.nodes.get_mut(&server) {
                        n.disks.remove(&v);
                    }
                }
            }
            InstanceState::Running | InstanceState::Stopped | InstanceState::Terminated => {}
        }
    }

    /// The OS no longer holds the disks of a stopped instance: `busy` detaches proceed.
    fn release_busy(&mut self, t: Timestamp, id: &InstanceId) {
        let busy: Vec<VolumeId> = self
            .ec2
            .volumes
            .values()
            .filter(|v| v.attachment.as_ref().is_some_and(|a| &a.instance == id && a.state == AttachState::Busy))
            .map(|v| v.id.clone())
            .collect();
        for v in busy {
            self.start_detaching(t, &v);
        }
    }

    /// Moves an attachment to `detaching`, ending after the detach latency.
    pub(super) fn start_detaching(&mut self, t: Timestamp, v: &VolumeId) {
        let d = self.scenario.latency.detach_s;
        let until = self.after(t, d);
        if let Some(a) = self.ec2.volumes.get_mut(v).and_then(|r| r.attachment.as_mut()) {
            a.state = AttachState::Detaching;
            a.until = Some(until);
        }
    }

    /// Business writes due up to `t` on every md online.
    fn accrue_writes(&mut self, t: Timestamp) {
        for i in 0..self.clp.mds.len() {
            self.accrue_md_writes(i, t);
        }
    }

    /// Business writes due up to `t` while md `i` is online.
    fn accrue_md_writes(&mut self, i: usize, t: Timestamp) {
        let Some(active) = self.md_active_of(i) else {
            return;
        };
        let Some(next) = self.clp.mds[i].next_write_at else {
            return;
        };
        if next > t {
            return;
        }
        let elapsed = secs(next, t);
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        // elapsed ≥ 0, far below 2^63
        let n = elapsed.floor() as u64 + 1;
        #[allow(clippy::cast_precision_loss)]
        let next_after = plus(next, n as f64);
        self.clp.mds[i].next_write_at = Some(next_after);
        self.apply_writes(i, &active, n);
    }

    /// `n` writes on md `i`'s active side, replicated according to its mirror state.
    pub(super) fn apply_writes(&mut self, i: usize, active: &ServerName, n: u64) {
        let Some(c) = self.md_content(i, active) else {
            return;
        };
        let after = self.oracle.write(c, n);
        self.set_md_content(i, active, after);
        self.replicate(i, active, n, after);
    }

    /// Replicates md `i`'s content `after` (following `n` writes on `active`) to the peer, or
    /// counts what the peer missed.
    pub(super) fn replicate(&mut self, i: usize, active: &ServerName, n: u64, after: Content) {
        let Some(peer) = self.peer(active) else {
            return;
        };
        let member = self.clp.servers.get(&peer).is_some_and(|s| s.member);
        let Some(md) = self.clp.mds.get_mut(i) else {
            return;
        };
        let copy = match &mut md.mirror {
            MirrorState::InSync => member,
            MirrorState::Degraded { stale, writes, .. } if *stale == peer => {
                *writes += n;
                false
            }
            MirrorState::Recovering { writes, .. } => {
                *writes += n;
                false
            }
            MirrorState::Degraded { .. } | MirrorState::Unconstructed => false,
        };
        if copy {
            self.set_md_content(i, &peer, after);
        }
    }

    /// A server left the cluster: every configured md's mirror loses that side.
    pub(super) fn on_leave(&mut self, t: Timestamp, server: &ServerName) {
        for i in 0..self.clp.mds.len() {
            if self.clp.mds[i].def.is_none() {
                continue;
            }
            let next = match &self.clp.mds[i].mirror {
                MirrorState::InSync => Some(MirrorState::Degraded { stale: server.clone(), writes: 0, full: false }),
                MirrorState::Recovering { target, full, writes, .. } => {
                    let stale = if target == server { server.clone() } else { target.clone() };
                    Some(MirrorState::Degraded { stale, writes: (*writes).max(1), full: *full })
                }
                MirrorState::Degraded { .. } | MirrorState::Unconstructed => None,
            };
            if let Some(next) = next {
                if matches!(self.clp.mds[i].mirror, MirrorState::Recovering { .. }) {
                    let label = self.mirror_label(i);
                    self.log(t, format!("clp: {label} recovery interrupted ({server} left)"));
                }
                self.clp.mds[i].mirror = next;
            }
        }
    }

    /// A server joined: start a mirror recovery if its side is stale and the other side is up.
    pub(super) fn on_join(&mut self, t: Timestamp, _server: &ServerName) {
        self.maybe_recover(t);
    }

    /// Starts a recovery of every md whose one side is stale while both servers are members.
    pub(super) fn maybe_recover(&mut self, t: Timestamp) {
        for i in 0..self.clp.mds.len() {
            self.maybe_recover_md(t, i);
        }
    }

    /// Starts a recovery of md `i` when both servers are members and one side is stale.
    pub(super) fn maybe_recover_md(&mut self, t: Timestamp, i: usize) {
        let Some(md) = self.clp.mds.get(i) else {
            return;
        };
        if md.def.is_none() {
            return;
        }
        let MirrorState::Degraded { stale, writes, full } = md.mirror.clone() else {
            return;
        };
        let Some(source) = self.peer(&stale) else {
            return;
        };
        if !self.is_member(&stale) || !self.is_member(&source) {
            return;
        }
        let label = self.mirror_label(i);
        if writes == 0 && !full {
            self.clp.mds[i].mirror = MirrorState::InSync;
            self.log(t, format!("clp: {label} sides identical, {stale} back in sync"));
            return;
        }
        let median = if full {
            self.scenario.latency.full_copy_s(self.scenario.size_gib)
        } else {
            self.scenario.latency.resync_s(writes)
        };
        let until = self.after(t, median);
        self.clp.mds[i].mirror = MirrorState::Recovering { target: stale.clone(), full, writes: 0, until };
        let kind = if full { "full copy" } else { "differential recovery" };
        self.log(t, format!("clp: {label} {kind} {source} → {stale} started"));
    }

    fn finish_recovery(&mut self, t: Timestamp, i: usize) {
        let Some(MirrorState::Recovering { target, .. }) = self.clp.mds.get(i).map(|m| m.mirror.clone()) else {
            return;
        };
        // Settled whatever happens next, so `advance` never sees this deadline again.
        self.clp.mds[i].mirror = MirrorState::InSync;
        let Some(source) = self.peer(&target) else {
            return;
        };
        if let Some(c) = self.md_content(i, &source) {
            self.set_md_content(i, &target, c);
        }
        let label = self.mirror_label(i);
        self.log(t, format!("clp: {label} recovery done, {target} = {source} (GREEN)"));
    }

    /// Whether the OS of `server` sees `volume` as a disk.
    pub(super) fn os_sees(&self, server: &ServerName, volume: &VolumeId) -> bool {
        let Some(inst) = self.clp.servers.get(server).map(|s| s.instance.clone()) else {
            return false;
        };
        self.ec2.volumes.get(volume).and_then(|v| v.attachment.as_ref()).is_some_and(|a| {
            a.instance == inst && matches!(a.state, AttachState::Attached | AttachState::Busy | AttachState::Detaching)
        })
    }

    pub(super) fn is_windows(&self) -> bool {
        self.scenario.os == Os::Windows
    }
}

fn one() -> f64 {
    1.0
}
