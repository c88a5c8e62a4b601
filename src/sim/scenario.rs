//! Scenarios: the clusters the simulated world starts from.
//!
//! Why this module exists: the lab, the tests and the example desired-state files must agree on
//! one concrete world — the runbook's two-node Windows cluster, and a Linux twin. The ids here are
//! fixed (example files use them); every field is public so a test can tweak the starting point
//! (volume size, shutdown behaviour, latencies, consistency window, throttle budgets) before the
//! world is built.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::latency::LatencyModel;
use super::throttle::ThrottleBudgets;
use crate::ids::{ClusterName, DeviceName, GroupName, InstanceId, Region, ResourceName, ServerName, Zone};
use crate::ports::cloud::ShutdownBehavior;
use crate::spec::{Os, Partition, Spec};

/// One server of the scenario's cluster and its EC2 instance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServerSetup {
    /// CLUSTERPRO server name.
    pub name: ServerName,
    /// Its instance.
    pub instance: InstanceId,
    /// Its availability zone.
    pub zone: Zone,
    /// What an OS shutdown does to the instance.
    pub shutdown_behavior: ShutdownBehavior,
}

/// One md resource of the scenario: where its partitions are. Every md of a scenario is in the
/// scenario's one failover group (see [`Scenario::two_mirrors`] for why).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorSetup {
    /// The md resource.
    pub resource: ResourceName,
    /// Device slot of the volume holding its data partition (and its cluster partition unless
    /// `cluster_device` is set), on both servers.
    pub device: DeviceName,
    /// Device slot of a volume of its own holding the cluster partition, if split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_device: Option<DeviceName>,
    /// The cluster partition: partition 1 of its volume.
    pub cluster_partition: Partition,
    /// The data partition: partition 2 of a volume holding both, partition 1 of its own volume.
    pub data_partition: Partition,
}

impl MirrorSetup {
    /// The device slots of its volumes: `device`, then `cluster_device` if set.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceName> {
        std::iter::once(&self.device).chain(self.cluster_device.as_ref())
    }
}

/// The starting point of a simulated world. The first server is the active one: the failover
/// group is online there, both mirror sides of every md are identical and GREEN.
///
/// The first md resource is described by the top-level fields (`md`, `device`, `cluster_device`,
/// `cluster_partition`, `data_partition`: the runbook's shape needs nothing else), further ones by
/// `more_mirrors`; [`Scenario::mirrors`] lists them all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// Cluster name.
    pub cluster: ClusterName,
    /// Region of the account.
    pub region: Region,
    /// Operating system of both servers.
    pub os: Os,
    /// Exactly two servers; the first is active.
    pub servers: Vec<ServerSetup>,
    /// The failover group.
    pub group: GroupName,
    /// The first md resource.
    pub md: ResourceName,
    /// The business resource (depends on every md).
    pub business: ResourceName,
    /// The business resource's type (`script`, `exec`).
    pub business_kind: String,
    /// A resource of the group that does not depend on md (a virtual IP: `awsvip`), if any. Real
    /// failover groups on AWS hold one beside md and the services (NEC's AWS guides build groups
    /// of awsvip or awsdns, md and a service; DOMAIN.md "clp.conf"): stopping md with its
    /// dependents leaves it online, so the group still reads online.
    #[serde(default)]
    pub vip: Option<ResourceName>,
    /// The independent resource's type.
    #[serde(default)]
    pub vip_kind: String,
    /// CLUSTERPRO commands absent from a server's install directory (a broken or partial
    /// install): the operations that run them fail there with `ClpCommandNotFound`, and a
    /// preflight names them.
    #[serde(default)]
    pub missing_commands: std::collections::BTreeMap<ServerName, Vec<String>>,
    /// The CLUSTERPRO version the servers run (what a preflight records).
    #[serde(default = "default_version")]
    pub version: String,
    /// Device slot of each server's volume holding the first md's data partition.
    pub device: DeviceName,
    /// Device slot of a volume of its own holding the first md's cluster partition, if split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_device: Option<DeviceName>,
    /// Further data volumes attached to each server at these slots (a volume the cluster does not
    /// mirror). EC2 sees them; the OS model, the mirror model and the data oracle do not (their
    /// content stays the genesis version).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub extra_volumes: Vec<DeviceName>,
    /// The first md's cluster partition.
    pub cluster_partition: Partition,
    /// The first md's data partition.
    pub data_partition: Partition,
    /// The md resources after the first, each on volumes of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_mirrors: Vec<MirrorSetup>,
    /// Size of the mirror volumes in GiB.
    pub size_gib: u32,
    /// GiB of data written on each mirror volume, so each of its snapshots' full size (EC2's
    /// `FullSnapshotSizeInBytes`): what a volume restored from one loads. `None`: the whole volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_gib: Option<u32>,
    /// Type of the mirror volumes.
    pub volume_type: String,
    /// Latency medians and jitter.
    pub latency: LatencyModel,
    /// How long a newly created volume or snapshot is invisible to Describe, in model seconds.
    pub consistency_window_s: f64,
    /// EC2 request budgets.
    pub throttle: ThrottleBudgets,
    /// Most `pending` snapshots a volume may have.
    pub max_pending_snapshots: usize,
    /// Most snapshots of the region that may have Fast Snapshot Restore on at once (AWS's
    /// default quota: 5, "Amazon EBS fast snapshot restore", AWS EBS User Guide).
    #[serde(default = "default_fsr_limit")]
    pub fsr_snapshot_limit: usize,
    /// Model time at which a new world starts.
    pub epoch: Timestamp,
}

/// The version a scenario runs unless it says otherwise: a current X 5.x.
pub const DEFAULT_VERSION: &str = "5.1.0";

fn default_fsr_limit() -> usize {
    5
}

fn default_version() -> String {
    DEFAULT_VERSION.to_owned()
}

fn id<T, E: std::fmt::Debug>(r: Result<T, E>) -> T {
    // The scenario ids below are literals checked by the tests of this module.
    r.expect("scenario literal is a valid id")
}

impl Scenario {
    /// The runbook's Windows cluster `prod-db`: server1 (`i-0123456789abcdef0`, 1a, active) and
    /// server2 (`i-0fedcba9876543210`, 1c); group `failover` with md `md`, a `script` resource
    /// depending on it and an `awsvip` resource `awsvip1` that does not;
    /// 100 GiB gp3 mirror volumes at `/dev/sdx` with partitions `R:` (cluster) and `M:` (data).
    pub fn windows_runbook() -> Self {
        Scenario {
            cluster: id(ClusterName::parse("prod-db")),
            region: id(Region::parse("ap-northeast-1")),
            os: Os::Windows,
            servers: vec![
                ServerSetup {
                    name: id(ServerName::parse("server1")),
                    instance: id(InstanceId::parse("i-0123456789abcdef0")),
                    zone: id(Zone::parse("ap-northeast-1a")),
                    shutdown_behavior: ShutdownBehavior::Stop,
                },
                ServerSetup {
                    name: id(ServerName::parse("server2")),
                    instance: id(InstanceId::parse("i-0fedcba9876543210")),
                    zone: id(Zone::parse("ap-northeast-1c")),
                    shutdown_behavior: ShutdownBehavior::Stop,
                },
            ],
            group: id(GroupName::parse("failover")),
            md: id(ResourceName::parse("md")),
            business: id(ResourceName::parse("script")),
            business_kind: "script".to_owned(),
            vip: Some(id(ResourceName::parse("awsvip1"))),
            vip_kind: "awsvip".to_owned(),
            missing_commands: std::collections::BTreeMap::new(),
            version: default_version(),
            device: id(DeviceName::parse("/dev/sdx")),
            cluster_device: None,
            extra_volumes: Vec::new(),
            cluster_partition: Partition::Letter('R'),
            data_partition: Partition::Letter('M'),
            more_mirrors: Vec::new(),
            size_gib: 100,
            data_gib: None,
            volume_type: "gp3".to_owned(),
            latency: LatencyModel::default(),
            consistency_window_s: 1.0,
            throttle: ThrottleBudgets::default(),
            max_pending_snapshots: 5,
            fsr_snapshot_limit: default_fsr_limit(),
            epoch: id(Timestamp::from_second(1_795_996_800)), // 2026-11-30T00:00:00Z
        }
    }

    /// A Linux cluster `app-linux`: node1 (`i-0aaaaaaaaaaaaaaaa`, 1a, active) and node2
    /// (`i-0bbbbbbbbbbbbbbbb`, 1c); group `failover1` with md `md1`, an `exec` resource and the
    /// `awsvip1` resource; mirror
    /// volumes at `/dev/xvdb` with partitions `/dev/xvdb1` (cluster) and `/dev/xvdb2` (data).
    pub fn linux() -> Self {
        let mut s = Scenario::windows_runbook();
        s.cluster = id(ClusterName::parse("app-linux"));
        s.os = Os::Linux;
        s.servers[0].name = id(ServerName::parse("node1"));
        s.servers[0].instance = id(InstanceId::parse("i-0aaaaaaaaaaaaaaaa"));
        s.servers[1].name = id(ServerName::parse("node2"));
        s.servers[1].instance = id(InstanceId::parse("i-0bbbbbbbbbbbbbbbb"));
        s.group = id(GroupName::parse("failover1"));
        s.md = id(ResourceName::parse("md1"));
        s.business = id(ResourceName::parse("exec"));
        "exec".clone_into(&mut s.business_kind);
        s.device = id(DeviceName::parse("/dev/xvdb"));
        s.cluster_partition = Partition::Device("/dev/xvdb1".to_owned());
        s.data_partition = Partition::Device("/dev/xvdb2".to_owned());
        s
    }

    /// The common database shape with two md resources, each on a volume of its own holding its
    /// cluster and data partitions: on Windows `prod-db` with md `md1` (data, `R:`/`M:` at
    /// `/dev/sdx`) and `md2` (logs, `S:`/`L:` at `/dev/sdy`); on Linux `app-linux` with `md1`
    /// (`/dev/xvdb1`/`/dev/xvdb2`) and `md2` (`/dev/xvdc1`/`/dev/xvdc2` at `/dev/xvdc`). Both md
    /// are in the one failover group, with the business resource depending on both: a database
    /// needs its data and its logs on the same server and fails over with both, which is why its
    /// mirror disks share a group (NEC's guides build a database group of its disks, the virtual
    /// IP and the service; an md in a group of its own would fail over alone and split them).
    pub fn two_mirrors(os: Os) -> Self {
        let mut s = match os {
            Os::Windows => Scenario::windows_runbook(),
            Os::Linux => Scenario::linux(),
        };
        s.md = id(ResourceName::parse("md1"));
        let second = match os {
            Os::Windows => MirrorSetup {
                resource: id(ResourceName::parse("md2")),
                device: id(DeviceName::parse("/dev/sdy")),
                cluster_device: None,
                cluster_partition: Partition::Letter('S'),
                data_partition: Partition::Letter('L'),
            },
            Os::Linux => MirrorSetup {
                resource: id(ResourceName::parse("md2")),
                device: id(DeviceName::parse("/dev/xvdc")),
                cluster_device: None,
                cluster_partition: Partition::Device("/dev/xvdc1".to_owned()),
                data_partition: Partition::Device("/dev/xvdc2".to_owned()),
            },
        };
        s.more_mirrors = vec![second];
        s
    }

    /// Every md resource, the first one first.
    pub fn mirrors(&self) -> Vec<MirrorSetup> {
        let first = MirrorSetup {
            resource: self.md.clone(),
            device: self.device.clone(),
            cluster_device: self.cluster_device.clone(),
            cluster_partition: self.cluster_partition.clone(),
            data_partition: self.data_partition.clone(),
        };
        std::iter::once(first).chain(self.more_mirrors.iter().cloned()).collect()
    }

    /// The md resource whose partitions are on volumes at `device`, and whether `device` holds
    /// its data partition (`true`) or only its cluster partition (`false`).
    pub fn mirror_at(&self, device: &DeviceName) -> Option<(MirrorSetup, bool)> {
        self.mirrors().into_iter().find_map(|m| {
            if m.device == *device {
                Some((m, true))
            } else if m.cluster_device.as_ref() == Some(device) {
                Some((m, false))
            } else {
                None
            }
        })
    }

    /// The text of a desired-state file for this scenario: its cluster, servers (`access =
    /// "local"`) and every md (`[[mirror]]` entries when it has several, all in its group), then
    /// `body` (tables such as `[backup]`).
    pub fn spec_text(&self, body: &str) -> String {
        use std::fmt::Write as _;
        let os = match self.os {
            Os::Windows => "windows",
            Os::Linux => "linux",
        };
        let mut t = format!(
            "[cluster]\nname = \"{}\"\nregion = \"{}\"\nos = \"{os}\"\naccess = \"local\"\n",
            self.cluster, self.region
        );
        for s in &self.servers {
            let _ = write!(
                t,
                "\n[[cluster.server]]\nname = \"{}\"\ninstance = \"{}\"\nzone = \"{}\"\n",
                s.name, s.instance, s.zone
            );
        }
        let table = if self.more_mirrors.is_empty() { "[mirror]" } else { "[[mirror]]" };
        for m in self.mirrors() {
            let _ = write!(
                t,
                "\n{table}\nresource = \"{}\"\ngroup = \"{}\"\ndevice = \"{}\"\n",
                m.resource, self.group, m.device
            );
            if let Some(c) = &m.cluster_device {
                let _ = writeln!(t, "cluster_device = \"{c}\"");
            }
            let _ = write!(
                t,
                "cluster_partition = \"{}\"\ndata_partition = \"{}\"\nvolume = {{ type = \"{}\" }}\n",
                m.cluster_partition, m.data_partition, self.volume_type
            );
        }
        t.push('\n');
        t.push_str(body);
        t
    }

    /// [`Scenario::spec_text`] loaded as `desired-state/<cluster>.toml` (nothing is written).
    pub fn spec(&self, body: &str) -> Result<Spec, crate::spec::SpecErrors> {
        let path = std::path::PathBuf::from(format!("desired-state/{}.toml", self.cluster));
        crate::spec::load_str(&path, &self.spec_text(body))
    }
}

/// A lab scenario shaped like `spec`: its cluster name, servers, instances, zones, device, md,
/// group and partitions, so any valid desired-state file can be tried against the lab.
pub fn scenario_for(spec: &Spec) -> Scenario {
    let mut s = match spec.cluster.os {
        Os::Windows => Scenario::windows_runbook(),
        Os::Linux => Scenario::linux(),
    };
    s.cluster = spec.cluster.name.clone();
    s.region = spec.cluster.region.clone();
    for (setup, server) in s.servers.iter_mut().zip(spec.cluster.servers.iter()) {
        setup.name = server.name.clone();
        setup.instance = server.instance.clone();
        setup.zone = server.zone.clone();
    }
    s.group = spec.mirror.group.clone();
    s.md = spec.mirror.resource.clone();
    s.device = spec.mirror.device.clone();
    s.cluster_device.clone_from(&spec.mirror.cluster_device);
    s.cluster_partition = spec.mirror.cluster_partition.clone();
    s.data_partition = spec.mirror.data_partition.clone();
    s.more_mirrors = spec
        .more_mirrors
        .iter()
        .map(|m| MirrorSetup {
            resource: m.resource.clone(),
            device: m.device.clone(),
            cluster_device: m.cluster_device.clone(),
            cluster_partition: m.cluster_partition.clone(),
            data_partition: m.data_partition.clone(),
        })
        .collect();
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenarios_build() {
        let w = Scenario::windows_runbook();
        assert_eq!(w.servers[0].instance.as_str(), "i-0123456789abcdef0");
        assert_eq!(w.epoch.to_string(), "2026-11-30T00:00:00Z");
        let l = Scenario::linux();
        assert_eq!(l.servers[1].instance.as_str(), "i-0bbbbbbbbbbbbbbbb");
        assert_eq!(l.device.to_string(), "/dev/sdb");
    }

    #[test]
    fn two_mirror_scenarios_round_trip_through_their_desired_state() {
        for os in [Os::Windows, Os::Linux] {
            let s = Scenario::two_mirrors(os);
            let spec = s.spec("").expect("the scenario's file is valid");
            assert_eq!(spec.mirrors().count(), 2);
            assert_eq!(scenario_for(&spec), s, "{os:?}");
        }
    }
}
