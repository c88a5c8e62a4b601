//! A small CLUSTERPRO + Linux-node fake that lives on top of moto's EC2 state.
//!
//! Why this module exists: moto proves the EC2 wire format, but a full backup or restore also
//! needs a cluster and the servers' operating systems. This fake keeps what moto cannot hold (group
//! and resource states, the md configuration, OS disk numbers) in memory and derives everything
//! else from moto, through mirrorctl's own `Cloud` port:
//! - a server is a cluster member while its moto instance is `running`;
//! - a server's disks are the volumes moto reports attached to its instance (Linux semantics:
//!   always online, partitions `/dev/xvdX1` and `/dev/xvdX2` of the device slot, never mounted);
//! - `shutdown_server` calls `StopInstances` (moto stops at once); `leave_then_start` is that
//!   shutdown (skipped when the server is out already), then the start, counted as one call;
//! - configuration pushes follow the simulator's rules: every server must be a member, and md may
//!   only be removed or added while the group is offline;
//! - mirror colours: GREEN/GREEN when both servers are members and md is configured and online,
//!   otherwise GREEN for the side md is online on, RED for another member, GRAY for a non-member.
//!
//! Operations are instant (they return done). The state sits behind an `Arc` held by the test, so
//! it survives a simulated crash of mirrorctl: it stands for the real cluster, which did not crash.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use mirrorctl::ids::{DeviceName, GroupName, InstanceId, ResourceName, ServerName, VolumeId};
use mirrorctl::ports::cloud::{Cloud, InstanceState};
use mirrorctl::ports::cluster::{
    Cluster, ClusterConfig, ClusterStatus, ConfigChange, Left, MdDefinition, MirrorColor, MirrorStatus, ObjectState,
    Placement, Start,
};
use mirrorctl::ports::node::{Disk, Node, PartitionInfo};
use mirrorctl::ports::{ErrorClass, PortError, PortResult};
use mirrorctl::spec::Spec;

fn err(code: &str, msg: impl Into<String>, class: ErrorClass) -> PortError {
    PortError::new(code, msg, class)
}

/// `/dev/xvdX` + `n`: the Linux partition path on the disk in device slot `dev`.
pub fn linux_path(dev: &DeviceName, n: u32) -> String {
    let api = dev.api_name();
    let letters = api.strip_prefix("/dev/sd").unwrap_or(&api);
    format!("/dev/xvd{letters}{n}")
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Res {
    state: ObjectState,
    current: Option<ServerName>,
}

impl Res {
    fn offline() -> Self {
        Res { state: ObjectState::Offline, current: None }
    }
    fn online(s: &ServerName) -> Self {
        Res { state: ObjectState::Online, current: Some(s.clone()) }
    }
    fn online_on(&self, s: &ServerName) -> bool {
        self.state == ObjectState::Online && self.current.as_ref() == Some(s)
    }
    fn placement(&self) -> Placement {
        Placement { state: self.state, current: self.current.clone() }
    }
}

#[derive(Debug)]
struct State {
    md_def: Option<MdDefinition>,
    auto_start: bool,
    md: Res,
    business: Res,
    /// OS disk numbers per (server, volume), assigned when a disk is first seen.
    disk_numbers: BTreeMap<(ServerName, VolumeId), u32>,
    next_disk: u32,
    calls: BTreeMap<String, u64>,
    log: Vec<String>,
    /// The CLUSTERPRO version `config` reports (`None`: unreadable, so `auto` takes the
    /// configuration edit).
    version: Option<String>,
    /// Servers inside NEC's backup or restore processing: not members even while running.
    vendor_mode: BTreeMap<ServerName, mirrorctl::ports::cluster::VendorOp>,
}

/// The cluster and its servers' operating systems, over moto.
pub struct MotoWorld {
    cloud: Arc<dyn Cloud>,
    sdk: aws_sdk_ec2::Client,
    servers: Vec<(ServerName, InstanceId)>,
    device: DeviceName,
    group: GroupName,
    md: ResourceName,
    business: ResourceName,
    state: Mutex<State>,
}

impl MotoWorld {
    /// A healthy cluster for `spec`: md configured (with the spec's partitions), the group
    /// (md + an `exec` resource) online on the first server, automatic start.
    pub fn new(spec: &Spec, cloud: Arc<dyn Cloud>, sdk: aws_sdk_ec2::Client) -> Arc<MotoWorld> {
        let first = spec.cluster.servers[0].name.clone();
        let md_def = MdDefinition {
            resource: spec.mirror.resource.clone(),
            group: spec.mirror.group.clone(),
            data_partition: spec.mirror.data_partition.clone(),
            cluster_partition: spec.mirror.cluster_partition.clone(),
            initial_copy: true,
        };
        Arc::new(MotoWorld {
            cloud,
            sdk,
            servers: spec.cluster.servers.iter().map(|s| (s.name.clone(), s.instance.clone())).collect(),
            device: spec.mirror.device.clone(),
            group: spec.mirror.group.clone(),
            md: spec.mirror.resource.clone(),
            business: ResourceName::parse("exec").expect("resource name"),
            state: Mutex::new(State {
                md_def: Some(md_def),
                auto_start: true,
                md: Res::online(&first),
                business: Res::online(&first),
                disk_numbers: BTreeMap::new(),
                next_disk: 1,
                calls: BTreeMap::new(),
                log: Vec::new(),
                version: None,
                vendor_mode: BTreeMap::new(),
            }),
        })
    }

    /// Makes `config` report CLUSTERPRO `version` (X 4.3+ turns `procedure = "auto"` to NEC's
    /// pre- and post-processing).
    pub fn set_version(&self, version: &str) {
        self.lock().version = Some(version.to_owned());
    }

    /// The OS shuts down: moto's `StopInstances` (moto stops at once).
    async fn stop_instance(&self, id: &InstanceId) -> PortResult<()> {
        self.sdk
            .stop_instances()
            .instance_ids(id.as_str())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| err("StopInstancesFailed", format!("{e:?}"), ErrorClass::Retryable))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("moto world lock")
    }

    fn count(&self, op: &str) {
        *self.lock().calls.entry(op.to_owned()).or_default() += 1;
    }

    /// Takes back a count made by an operation another one was made of.
    fn uncount(&self, op: &str) {
        let mut st = self.lock();
        if let Some(n) = st.calls.get_mut(op) {
            *n -= 1;
            if *n == 0 {
                st.calls.remove(op);
            }
        }
    }

    fn note(&self, line: String) {
        self.lock().log.push(line);
    }

    /// Calls per operation (`clp:…`, `node:…`).
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.lock().calls.clone()
    }

    /// What happened, in order.
    pub fn log(&self) -> Vec<String> {
        self.lock().log.clone()
    }

    /// The md definition currently configured.
    pub fn md_definition(&self) -> Option<MdDefinition> {
        self.lock().md_def.clone()
    }

    /// Where the group is online, if it is (md when configured, and the business resource).
    pub fn group_online_on(&self) -> Option<ServerName> {
        let st = self.lock();
        let s = st.business.current.clone()?;
        let md_ok = st.md_def.is_none() || st.md.online_on(&s);
        (st.business.online_on(&s) && md_ok).then_some(s)
    }

    fn instance_of(&self, server: &ServerName) -> PortResult<InstanceId> {
        self.servers
            .iter()
            .find(|(n, _)| n == server)
            .map(|(_, i)| i.clone())
            .ok_or_else(|| err("ServerNotFound", format!("no server named {server}"), ErrorClass::NeedsHuman))
    }

    /// Server → (running, data devices) as moto reports them now.
    async fn instances(&self) -> PortResult<BTreeMap<ServerName, (InstanceState, Vec<(DeviceName, VolumeId)>)>> {
        let ids: Vec<InstanceId> = self.servers.iter().map(|(_, i)| i.clone()).collect();
        let found = self.cloud.describe_instances(&ids).await?;
        let mut out = BTreeMap::new();
        for (name, id) in &self.servers {
            let inst = found.iter().find(|i| &i.id == id).ok_or_else(|| {
                err("ServerNotFound", format!("instance {id} of {name} not found"), ErrorClass::NeedsHuman)
            })?;
            out.insert(name.clone(), (inst.state, inst.devices.clone()));
        }
        Ok(out)
    }

    async fn members(&self) -> PortResult<BTreeMap<ServerName, bool>> {
        let inst = self.instances().await?;
        let st = self.lock();
        Ok(inst
            .into_iter()
            .map(|(n, (s, _))| {
                let member = s == InstanceState::Running && !st.vendor_mode.contains_key(&n);
                (n, member)
            })
            .collect())
    }

    fn check_group(&self, group: &GroupName) -> PortResult<()> {
        if *group == self.group {
            Ok(())
        } else {
            Err(err("GroupNotFound", format!("no group named {group}"), ErrorClass::NeedsHuman))
        }
    }

    fn check_member(members: &BTreeMap<ServerName, bool>, server: &ServerName) -> PortResult<()> {
        match members.get(server) {
            Some(true) => Ok(()),
            Some(false) => Err(err("ServerDown", format!("{server} is not a cluster member"), ErrorClass::Retryable)),
            None => Err(err("ServerNotFound", format!("no server named {server}"), ErrorClass::NeedsHuman)),
        }
    }

    /// Whether every server has a disk at the mirror device (its partitions are then present).
    async fn partitions_ok(&self, servers: &[ServerName]) -> PortResult<()> {
        let inst = self.instances().await?;
        for s in servers {
            let has = inst.get(s).is_some_and(|(_, devs)| devs.iter().any(|(d, _)| *d == self.device));
            if !has {
                return Err(err(
                    "PartitionNotFound",
                    format!(
                        "{s} has no disk at {} (partitions {}, {})",
                        self.device,
                        linux_path(&self.device, 1),
                        linux_path(&self.device, 2)
                    ),
                    ErrorClass::NeedsHuman,
                ));
            }
        }
        Ok(())
    }

    /// Brings md (when configured and `with_md`) and, when `business`, the business resource
    /// online on `server`.
    async fn bring_online(&self, server: &ServerName, with_md: bool, business: bool) -> PortResult<()> {
        let members = self.members().await?;
        Self::check_member(&members, server)?;
        let md_configured = self.lock().md_def.is_some();
        if with_md && md_configured {
            self.partitions_ok(std::slice::from_ref(server)).await?;
        }
        let mut st = self.lock();
        for r in [&st.md, &st.business] {
            if r.state == ObjectState::Online && r.current.as_ref() != Some(server) {
                let on = r.current.clone().map(|s| s.to_string()).unwrap_or_default();
                return Err(err("GroupOnline", format!("{} is online on {on}", self.group), ErrorClass::NeedsHuman));
            }
        }
        if with_md && st.md_def.is_some() {
            st.md = Res::online(server);
        }
        if business {
            st.business = Res::online(server);
        }
        st.log.push(format!("clp: online on {server} (md: {with_md}, business: {business})"));
        Ok(())
    }
}

#[async_trait::async_trait]
impl Cluster for MotoWorld {
    async fn status(&self) -> PortResult<ClusterStatus> {
        self.count("clp:status");
        let servers = self.members().await?;
        let st = self.lock();
        let group = if st.md_def.is_some() && st.md.state == ObjectState::Online {
            st.md.placement()
        } else if st.business.state == ObjectState::Online {
            st.business.placement()
        } else {
            Placement { state: ObjectState::Offline, current: None }
        };
        let mut resources = BTreeMap::new();
        if st.md_def.is_some() {
            resources.insert(self.md.clone(), st.md.placement());
        }
        resources.insert(self.business.clone(), st.business.placement());
        Ok(ClusterStatus { servers, groups: BTreeMap::from([(self.group.clone(), group)]), resources })
    }

    async fn start_group(&self, group: &GroupName, server: &ServerName) -> PortResult<Left> {
        // Answers nothing of the cluster it left: the next pass reads it.
        let done: PortResult<()> = async {
            self.count("clp:start_group");
            self.check_group(group)?;
            if self.group_online_on().as_ref() == Some(server) {
                return Err(err(
                    "GroupAlreadyStarted",
                    format!("{group} is online on {server}"),
                    ErrorClass::AlreadyDone,
                ));
            }
            self.bring_online(server, true, true).await
        }
        .await;
        done.map(|()| Left::default())
    }

    async fn stop_group(&self, group: &GroupName) -> PortResult<Left> {
        // Answers nothing of the cluster it left: the next pass reads it.
        let done: PortResult<()> = async {
            self.count("clp:stop_group");
            self.check_group(group)?;
            let mut st = self.lock();
            if st.md.state == ObjectState::Offline && st.business.state == ObjectState::Offline {
                return Err(err("GroupAlreadyStopped", format!("{group} is already offline"), ErrorClass::AlreadyDone));
            }
            st.md = Res::offline();
            st.business = Res::offline();
            st.log.push(format!("clp: group {group} offline"));
            Ok(())
        }
        .await;
        done.map(|()| Left::default())
    }

    async fn move_group(&self, group: &GroupName, target: &ServerName) -> PortResult<Left> {
        // Answers nothing of the cluster it left: the next pass reads it.
        let done: PortResult<()> = async {
            self.count("clp:move_group");
            self.check_group(group)?;
            let Some(from) = self.group_online_on() else {
                return Err(err(
                    "GroupOffline",
                    format!("{group} is not online: nothing to move"),
                    ErrorClass::NeedsHuman,
                ));
            };
            if from == *target {
                return Err(err(
                    "GroupAlreadyStarted",
                    format!("{group} is online on {target}"),
                    ErrorClass::AlreadyDone,
                ));
            }
            let members = self.members().await?;
            Self::check_member(&members, target)?;
            {
                let mut st = self.lock();
                st.md = Res::offline();
                st.business = Res::offline();
            }
            self.bring_online(target, true, true).await?;
            self.note(format!("clp: group {group} moved {from} → {target}"));
            Ok(())
        }
        .await;
        done.map(|()| Left::default())
    }

    async fn start_resource(&self, resource: &ResourceName, server: &ServerName) -> PortResult<Left> {
        // Answers nothing of the cluster it left: the next pass reads it.
        let done: PortResult<()> = async {
            self.count("clp:start_resource");
            let is_md = *resource == self.md && self.lock().md_def.is_some();
            if !is_md && *resource != self.business {
                return Err(err("ResourceNotFound", format!("no resource named {resource}"), ErrorClass::NeedsHuman));
            }
            let already = {
                let st = self.lock();
                if is_md { st.md.online_on(server) } else { st.business.online_on(server) }
            };
            if already {
                return Err(err(
                    "ResourceAlreadyStarted",
                    format!("{resource} is online on {server}"),
                    ErrorClass::AlreadyDone,
                ));
            }
            // Starting the business resource starts what it depends on (md).
            self.bring_online(server, true, !is_md).await
        }
        .await;
        done.map(|()| Left::default())
    }

    async fn stop_resource(&self, resource: &ResourceName) -> PortResult<Left> {
        // Answers nothing of the cluster it left: the next pass reads it.
        let done: PortResult<()> = async {
            self.count("clp:stop_resource");
            let mut st = self.lock();
            let is_md = *resource == self.md && st.md_def.is_some();
            if !is_md && *resource != self.business {
                return Err(err("ResourceNotFound", format!("no resource named {resource}"), ErrorClass::NeedsHuman));
            }
            let target_off = if is_md { st.md.state == ObjectState::Offline } else { true };
            if target_off && st.business.state == ObjectState::Offline {
                return Err(err(
                    "ResourceAlreadyStopped",
                    format!("{resource} is already offline"),
                    ErrorClass::AlreadyDone,
                ));
            }
            // Stopping md stops what depends on it (the business resource).
            if is_md {
                st.md = Res::offline();
            }
            st.business = Res::offline();
            st.log.push(format!("clp: {resource} offline"));
            Ok(())
        }
        .await;
        done.map(|()| Left::default())
    }

    async fn shutdown_server(&self, server: &ServerName) -> PortResult<Left> {
        // Answers nothing of the cluster it left: the next pass reads it.
        let done: PortResult<()> = async {
            self.count("clp:shutdown_server");
            let id = self.instance_of(server)?;
            let members = self.members().await?;
            if members.get(server) != Some(&true) {
                return Err(err("ServerAlreadyDown", format!("{server} is already down"), ErrorClass::AlreadyDone));
            }
            {
                let st = self.lock();
                let here = [&st.md, &st.business]
                    .iter()
                    .any(|r| r.state != ObjectState::Offline && r.current.as_ref() == Some(server));
                if here {
                    return Err(err(
                        "GroupOnline",
                        format!("group {} is online on {server}; move or stop it first", self.group),
                        ErrorClass::NeedsHuman,
                    ));
                }
            }
            self.stop_instance(&id).await?;
            self.note(format!("clp: {server} shut down (StopInstances {id})"));
            Ok(())
        }
        .await;
        done.map(|()| Left::default())
    }

    fn can_leave_then_start(&self) -> bool {
        true
    }

    async fn leave_then_start(&self, leaving: &ServerName, start: &Start) -> PortResult<Left> {
        self.count("clp:leave_then_start");
        if self.members().await?.get(leaving) == Some(&true) {
            self.shutdown_server(leaving).await?;
            self.uncount("clp:shutdown_server");
        }
        let done = match start {
            Start::Group { group, server } => self.start_group(group, server).await,
            Start::Resource { resource, server } => self.start_resource(resource, server).await,
        };
        let what = match start {
            Start::Group { .. } => "clp:start_group",
            Start::Resource { .. } => "clp:start_resource",
        };
        self.uncount(what);
        done
    }

    /// NEC's pre-processing stops the instance and keeps the server out of the cluster until its
    /// post-processing (moto has no reboot: the server is a member again at once). A repeated pre
    /// or post answers "already", as the simulator's does.
    async fn vendor(&self, server: &ServerName, call: &mirrorctl::ports::cluster::VendorCall) -> PortResult<()> {
        use mirrorctl::ports::cluster::VendorPhase;
        self.count("clp:vendor");
        let id = self.instance_of(server)?;
        let mode = self.lock().vendor_mode.get(server).copied();
        match call.phase {
            VendorPhase::Pre => {
                if mode == Some(call.op) && !call.only {
                    return Err(err("AlreadyInVendorMode", format!("{server}: {call} ran"), ErrorClass::AlreadyDone));
                }
                if call.op == mirrorctl::ports::cluster::VendorOp::Restore && self.group_online_on().is_some() {
                    return Err(err("GroupOnline", format!("{} is online", self.group), ErrorClass::NeedsHuman));
                }
                self.lock().vendor_mode.insert(server.clone(), call.op);
                self.stop_instance(&id).await?;
            }
            VendorPhase::Post => {
                if mode.is_none() && !call.only {
                    return Err(err("NotInVendorMode", format!("{server}: post ran"), ErrorClass::AlreadyDone));
                }
                self.lock().vendor_mode.remove(server);
            }
        }
        self.note(format!("clp: `{call}` on {server}"));
        Ok(())
    }

    async fn mirror_status(&self, resource: &ResourceName) -> PortResult<MirrorStatus> {
        self.count("clp:mirror_status");
        if *resource != self.md || self.lock().md_def.is_none() {
            return Err(err("ResourceNotFound", format!("no md resource named {resource}"), ErrorClass::NeedsHuman));
        }
        let members = self.members().await?;
        let st = self.lock();
        let all_up = members.values().all(|m| *m);
        let colors = members
            .iter()
            .map(|(s, member)| {
                let c = if !member {
                    MirrorColor::Gray
                } else if st.md.state == ObjectState::Online && (all_up || st.md.online_on(s)) {
                    MirrorColor::Green
                } else if st.md.state == ObjectState::Online {
                    MirrorColor::Red
                } else {
                    MirrorColor::Gray
                };
                (s.clone(), c)
            })
            .collect();
        Ok(MirrorStatus { colors })
    }

    async fn config(&self) -> PortResult<ClusterConfig> {
        self.count("clp:config");
        let st = self.lock();
        Ok(ClusterConfig {
            group_auto_start: BTreeMap::from([(self.group.clone(), st.auto_start)]),
            mirrors: st.md_def.iter().cloned().collect(),
            version: st.version.clone(),
        })
    }

    /// The fake's preflight: every server a running member (its instance runs on moto) and, for a
    /// restore, md in the configuration to remove and re-add.
    async fn preflight(
        &self,
        request: &mirrorctl::ports::cluster::PreflightRequest,
    ) -> PortResult<Vec<mirrorctl::ports::cluster::Check>> {
        use mirrorctl::ports::cluster::{Check, Operation};
        self.count("clp:preflight");
        let mut checks: Vec<Check> = self
            .members()
            .await?
            .iter()
            .map(|(s, m)| {
                if *m {
                    Check::pass("reachable cluster member", Some(s), "running member")
                } else {
                    Check::fail("reachable cluster member", Some(s), "not running", "start it")
                }
            })
            .collect();
        if request.operation == Operation::Restore {
            checks.push(if self.lock().md_def.is_some() {
                Check::pass("configuration edits", None, "md configured")
            } else {
                Check::fail("configuration edits", None, "md is not configured", "re-add md")
            });
        }
        Ok(checks)
    }

    async fn apply_config(&self, changes: &[ConfigChange]) -> PortResult<Left> {
        // Answers nothing of the cluster it left: the next pass reads it.
        let done: PortResult<()> = async {
            self.count("clp:apply_config");
            let members = self.members().await?;
            if let Some((down, _)) = members.iter().find(|(_, m)| !**m) {
                return Err(err(
                    "ServerDown",
                    format!("{down} is not a cluster member: the configuration cannot be applied"),
                    ErrorClass::Retryable,
                ));
            }
            let touches_md =
                changes.iter().any(|c| matches!(c, ConfigChange::RemoveMirror { .. } | ConfigChange::AddMirror(_)));
            {
                let st = self.lock();
                let offline = st.md.state == ObjectState::Offline && st.business.state == ObjectState::Offline;
                if touches_md && !offline {
                    return Err(err(
                        "GroupOnline",
                        format!("group {} must be offline to change its md resource", self.group),
                        ErrorClass::NeedsHuman,
                    ));
                }
            }
            for c in changes {
                match c {
                    ConfigChange::AddMirror(md) => {
                        self.check_group(&md.group)?;
                        let servers: Vec<ServerName> = members.keys().cloned().collect();
                        self.partitions_ok(&servers).await?;
                    }
                    ConfigChange::SetGroupAutoStart { group, .. } => self.check_group(group)?,
                    ConfigChange::RemoveMirror { .. } => {}
                }
            }
            let mut st = self.lock();
            for c in changes {
                match c {
                    ConfigChange::RemoveMirror { resource } => {
                        if *resource == self.md {
                            st.md_def = None;
                            st.md = Res::offline();
                        }
                    }
                    ConfigChange::AddMirror(md) => {
                        st.md_def = Some(md.clone());
                        st.md = Res::offline();
                    }
                    ConfigChange::SetGroupAutoStart { auto, .. } => st.auto_start = *auto,
                }
            }
            st.log.push(format!("clp: configuration applied: {changes:?}"));
            Ok(())
        }
        .await;
        done.map(|()| Left::default())
    }
}

#[async_trait::async_trait]
impl Node for MotoWorld {
    async fn disks(&self, server: &ServerName) -> PortResult<Vec<Disk>> {
        self.count("node:disks");
        let inst = self.instances().await?;
        let Some((state, devices)) = inst.get(server) else {
            return Err(err("ServerNotFound", format!("no server named {server}"), ErrorClass::NeedsHuman));
        };
        if *state != InstanceState::Running {
            return Err(err("NodeUnreachable", format!("{server} is not running ({state:?})"), ErrorClass::Retryable));
        }
        let mut st = self.lock();
        let mut disks = Vec::new();
        for (dev, vol) in devices {
            let key = (server.clone(), vol.clone());
            let number = if let Some(n) = st.disk_numbers.get(&key) {
                *n
            } else {
                let n = st.next_disk;
                st.next_disk += 1;
                st.disk_numbers.insert(key, n);
                n
            };
            let partitions = [1, 2]
                .into_iter()
                .map(|n| PartitionInfo {
                    number: n,
                    letter: None,
                    path: Some(linux_path(dev, n)),
                    mounted: false,
                    aliases: Vec::new(),
                })
                .collect();
            disks.push(Disk {
                volume: vol.clone(),
                number,
                online: true,
                read_only: false,
                offline_reason: None,
                partitions,
            });
        }
        disks.sort_by_key(|d| d.number);
        Ok(disks)
    }

    async fn set_offline(&self, server: &ServerName, volume: &VolumeId) -> PortResult<Vec<Disk>> {
        self.count("node:set_offline");
        self.require_disk(server, volume).await
    }

    async fn set_online(&self, server: &ServerName, volume: &VolumeId) -> PortResult<Vec<Disk>> {
        self.count("node:set_online");
        self.require_disk(server, volume).await
    }

    async fn set_letter(
        &self,
        server: &ServerName,
        _volume: &VolumeId,
        _number: u32,
        _letter: char,
    ) -> PortResult<Vec<Disk>> {
        self.count("node:set_letter");
        Err(err("NotWindows", format!("{server} runs Linux: partitions have no drive letters"), ErrorClass::NeedsHuman))
    }
}

impl MotoWorld {
    /// Linux: a disk that is visible and not mounted can always be "taken offline" (flushed) or
    /// "brought online" (rescanned); the answer is the disk list, which the change leaves as it was.
    async fn require_disk(&self, server: &ServerName, volume: &VolumeId) -> PortResult<Vec<Disk>> {
        let disks = self.disks(server).await?;
        if disks.iter().any(|d| &d.volume == volume) {
            Ok(disks)
        } else {
            Err(err(
                "DiskNotFound",
                format!("{server} has no disk with serial {}", volume.nvme_serial()),
                ErrorClass::Retryable,
            ))
        }
    }
}
