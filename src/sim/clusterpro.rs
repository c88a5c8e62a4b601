//! The simulated CLUSTERPRO: server membership, the failover group, the md resource and its
//! mirror, and the configuration pushes the restore needs.
//!
//! Why this module exists: the backup and restore are mostly CLUSTERPRO choreography, and its
//! rules decide whether they are safe — md must be offline to change its configuration, every
//! server must be up to push it, md refuses to start where partitions are missing or the data is
//! stale, a shutdown breaks the mirror and a rejoin recovers it, and re-adding md without the
//! initial copy is only correct over identical sides (the oracle records a corruption otherwise).
//! Operations take model time: they are stored as transitions with an end time, so a caller that
//! gives up waiting does not stop them, exactly like the asynchronous REST POSTs.
//!
//! The backup's "standby leaves, business restarts" in one request ([`Cluster::leave_then_start`])
//! is one round trip: the command adapter runs `clpdown -h <standby>`, waits in the same script
//! until `clpstat` shows the standby out, then starts, on the active server. The shutdown takes
//! the standby out at once here (as [`Cluster::shutdown_server`] does), so the start begins in the
//! same step and takes its own duration.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::SimWorld;
use super::world::{ClpOp, ConfigPending, MirrorState, ResState, Transition, World};
use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::cloud::InstanceState;
use crate::ports::cluster::errors::ClpCode;
use crate::ports::cluster::{
    Check, ClpVersion, Cluster, ClusterConfig, ClusterStatus, ConfigChange, Left, MirrorColor, MirrorStatus,
    ObjectState, Operation, Placement, PreflightRequest, Start, VendorCall,
};
use crate::ports::{PortError, PortResult};

fn placement(r: &ResState) -> Placement {
    Placement { state: r.state, current: r.current.clone() }
}

/// Which md resources an operation touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mds {
    None,
    /// The md at this position.
    One(usize),
    All,
}

impl Mds {
    fn has(self, i: usize) -> bool {
        match self {
            Mds::None => false,
            Mds::One(j) => i == j,
            Mds::All => true,
        }
    }
}

/// Which resources an operation touches.
#[derive(Debug, Clone, Copy)]
struct Scope {
    md: Mds,
    business: bool,
    vip: bool,
}

impl Scope {
    /// The whole group.
    const GROUP: Scope = Scope { md: Mds::All, business: true, vip: true };
}

impl World {
    /// The group's resources' states: each configured md, the business resource, the virtual
    /// IP (when the scenario has one).
    pub(super) fn group_states(&self) -> Vec<&ResState> {
        let mut v = Vec::with_capacity(3);
        v.extend(self.clp.mds.iter().filter(|m| m.def.is_some()).map(|m| &m.state));
        v.push(&self.clp.business_state);
        if self.clp.vip.is_some() {
            v.push(&self.clp.vip_state);
        }
        v
    }

    fn group_placement(&self) -> Placement {
        let states = self.group_states();
        let find = |s: ObjectState| states.iter().find(|r| r.state == s).map(|r| placement(r));
        for s in [ObjectState::OnlinePending, ObjectState::OfflinePending, ObjectState::OnlineFailure] {
            if let Some(p) = find(s) {
                return p;
            }
        }
        if states.iter().all(|r| r.state == ObjectState::Offline) {
            return Placement { state: ObjectState::Offline, current: None };
        }
        // All online, or partly online (md started alone): CLUSTERPRO shows the group online.
        find(ObjectState::Online).unwrap_or(Placement { state: ObjectState::Unknown, current: None })
    }

    fn group_all_offline(&self) -> bool {
        self.group_states().iter().all(|r| r.state == ObjectState::Offline)
    }

    fn group_online_on(&self, server: &ServerName) -> bool {
        self.group_states().iter().all(|r| r.online_on(server))
    }

    pub(super) fn clp_status(&self) -> ClusterStatus {
        let servers = self.clp.servers.iter().map(|(n, s)| (n.clone(), s.member)).collect();
        let groups = BTreeMap::from([(self.clp.group.clone(), self.group_placement())]);
        let mut resources = BTreeMap::new();
        for md in &self.clp.mds {
            if let Some(def) = &md.def {
                resources.insert(def.resource.clone(), placement(&md.state));
            }
        }
        resources.insert(self.clp.business.clone(), placement(&self.clp.business_state));
        if let Some(vip) = &self.clp.vip {
            resources.insert(vip.clone(), placement(&self.clp.vip_state));
        }
        ClusterStatus { servers, groups, resources }
    }

    fn check_group(&self, group: &GroupName) -> PortResult<()> {
        if *group == self.clp.group {
            Ok(())
        } else {
            Err(ClpCode::GroupNotFound.error(format!("no group named {group}")))
        }
    }

    pub(super) fn check_server(&self, server: &ServerName) -> PortResult<()> {
        if self.clp.servers.contains_key(server) {
            Ok(())
        } else {
            Err(ClpCode::ServerNotFound.error(format!("no server named {server}")))
        }
    }

    /// Where the scenario's CLUSTERPRO keeps its commands (NEC's default install folders).
    pub(super) fn install_dir(&self) -> &'static str {
        match self.scenario.os {
            crate::spec::Os::Windows => r"C:\Program Files\CLUSTERPRO\bin",
            crate::spec::Os::Linux => "/opt/nec/clusterpro/bin",
        }
    }

    pub(super) fn has_command(&self, server: &ServerName, tool: &str) -> bool {
        // NEC's pre- and post-processing commands ship from X 4.3 (NEC's 2023 Linux blog).
        let shipped = !matches!(tool, "clpbackup" | "clprestore")
            || ClpVersion::parse(&self.scenario.version).is_some_and(ClpVersion::has_vendor_procedure);
        shipped && self.scenario.missing_commands.get(server).is_none_or(|m| !m.iter().any(|t| t == tool))
    }

    /// Refuses an operation whose command is not installed where the command procedure runs
    /// it: `on` (the server `clpdown` shuts down), else the first running member in the
    /// scenario's order (mutating commands), or any member (`any`: queries fall back).
    pub(super) fn check_command(&self, tool: &str, on: Option<&ServerName>, any: bool) -> PortResult<()> {
        let members: Vec<&ServerName> = self.clp.servers.keys().filter(|s| self.is_member(s)).collect();
        if on.is_none() && members.is_empty() {
            // No server runs its cluster service: a query answers nowhere (the command adapter's
            // code for the same situation).
            return Err(
                ClpCode::ClusterUnreachable.error(format!("no server is a running cluster member to run {tool}"))
            );
        }
        let ok = match on {
            Some(s) => self.has_command(s, tool),
            None if any => members.iter().any(|s| self.has_command(s, tool)),
            None => self
                .scenario
                .servers
                .iter()
                .find(|s| self.is_member(&s.name))
                .is_none_or(|s| self.has_command(&s.name, tool)),
        };
        if ok {
            return Ok(());
        }
        let at = on.map_or_else(|| "the server that runs it".to_owned(), ToString::to_string);
        Err(ClpCode::ClpCommandNotFound.error(format!("{tool} not found in {} on {at}", self.install_dir())))
    }

    /// What a preflight of `req` finds in this world.
    #[allow(clippy::too_many_lines)]
    fn clp_preflight(&self, req: &PreflightRequest) -> Vec<Check> {
        let mut checks = Vec::new();
        for s in &self.scenario.servers {
            let server = Some(&s.name);
            if self.is_member(&s.name) {
                checks.push(Check::pass("reachable cluster member", server, "running member"));
            } else {
                checks.push(Check::fail(
                    "reachable cluster member",
                    server,
                    "not a running cluster member",
                    "start the server (and its cluster service): every step needs both servers",
                ));
            }
            let dir = self.install_dir();
            for tool in req.operation.commands(req.procedure) {
                if self.has_command(&s.name, tool) {
                    let version = &self.scenario.version;
                    checks.push(Check::pass(
                        format!("command {tool}"),
                        server,
                        format!("{dir} (CLUSTERPRO X {version})"),
                    ));
                } else {
                    checks.push(Check::fail(
                        format!("command {tool}"),
                        server,
                        format!("not found in {dir}"),
                        format!(
                            "repair the CLUSTERPRO install on {}, or set cluster.install_dir to where {tool} is",
                            s.name
                        ),
                    ));
                }
            }
        }
        if req.procedure == crate::ports::cluster::Procedure::Vendor {
            let version = &self.scenario.version;
            checks.push(match ClpVersion::parse(version) {
                Some(v) if v.has_vendor_procedure() => {
                    Check::pass("procedure vendor", None, format!("CLUSTERPRO {v} ships clpbackup and clprestore"))
                }
                _ => Check::fail(
                    "procedure vendor",
                    None,
                    format!("CLUSTERPRO {version} has no clpbackup/clprestore (X 4.3 and later)"),
                    "set procedure = \"reconfigure\" (or \"auto\") in the desired-state file, or upgrade CLUSTERPRO",
                ),
            });
        }
        let mut config = self.clp_config();
        let mut edits = Ok(());
        for push in &req.pushes {
            for change in push {
                let applied = match change {
                    ConfigChange::RemoveMirror { resource } => {
                        config.mirrors.retain(|m| &m.resource != resource);
                        Ok(())
                    }
                    ConfigChange::AddMirror(md) => self.check_group(&md.group).map(|()| {
                        config.mirrors.retain(|m| m.resource != md.resource);
                        config.mirrors.push(md.clone());
                    }),
                    ConfigChange::SetGroupAutoStart { group, auto } => self.check_group(group).map(|()| {
                        config.group_auto_start.insert(group.clone(), *auto);
                    }),
                };
                if let Err(e) = applied {
                    edits = Err(e.message);
                }
            }
        }
        if req.operation == Operation::Backup {
            checks.push(match self.clp_config().mirror(&req.md) {
                Some(_) => Check::pass("md resource configured", None, format!("{} in {}", req.md, req.group)),
                None => Check::fail(
                    "md resource configured",
                    None,
                    format!("{} is not in the configuration", req.md),
                    "check mirror.resource in the desired-state file",
                ),
            });
            return checks;
        }
        checks.push(match edits {
            Ok(()) => Check::pass(
                "configuration edits",
                None,
                format!("{} push(es) apply to today's configuration", req.pushes.len()),
            ),
            Err(why) => {
                Check::fail("configuration edits", None, why, "fix the configuration with Cluster WebUI, then retry")
            }
        });
        if req.operation == Operation::Restore
            && let Some(md) = self.clp_config().mirror(&req.md)
        {
            for s in &self.scenario.servers {
                checks.push(match self.partitions_ok(&s.name, md) {
                    Ok(()) => Check::pass(
                        "partition identifiers",
                        Some(&s.name),
                        format!("{} and {} derived from today's disk", md.cluster_partition, md.data_partition),
                    ),
                    Err(why) => Check::fail(
                        "partition identifiers",
                        Some(&s.name),
                        why,
                        "check the partitions in the desired-state file against the disks and clp.conf",
                    ),
                });
            }
        }
        checks
    }

    pub(super) fn check_idle(&self) -> PortResult<()> {
        if self.clp.transition.is_some() || self.clp.config_pending.is_some() {
            Err(ClpCode::GroupBusy.error("another group operation or configuration push is in progress"))
        } else {
            Ok(())
        }
    }

    fn is_md(&self, resource: &ResourceName) -> bool {
        self.md_index(resource).is_some()
    }

    fn is_vip(&self, resource: &ResourceName) -> bool {
        self.clp.vip.as_ref() == Some(resource)
    }

    /// The state of a resource of the group (md, business or the virtual IP).
    fn resource_state(&self, resource: &ResourceName) -> &ResState {
        if let Some(i) = self.md_index(resource) {
            &self.clp.mds[i].state
        } else if self.is_vip(resource) {
            &self.clp.vip_state
        } else {
            &self.clp.business_state
        }
    }

    fn check_resource(&self, resource: &ResourceName) -> PortResult<()> {
        if self.is_md(resource) || self.is_vip(resource) || *resource == self.clp.business {
            Ok(())
        } else {
            Err(ClpCode::ResourceNotFound.error(format!("no resource named {resource}")))
        }
    }

    /// Marks the resources in `scope` that are not already online on `server` as going online.
    fn mark_online_pending(&mut self, scope: Scope, server: &ServerName) {
        for (i, md) in self.clp.mds.iter_mut().enumerate() {
            if scope.md.has(i) && md.def.is_some() && !md.state.online_on(server) {
                md.state = ResState::on(ObjectState::OnlinePending, server);
            }
        }
        if scope.business && !self.clp.business_state.online_on(server) {
            self.clp.business_state = ResState::on(ObjectState::OnlinePending, server);
        }
        if scope.vip && self.clp.vip.is_some() && !self.clp.vip_state.online_on(server) {
            self.clp.vip_state = ResState::on(ObjectState::OnlinePending, server);
        }
    }

    fn mark_offline_pending(&mut self, scope: Scope) {
        let mds = self.clp.mds.iter_mut().enumerate().map(|(i, m)| (scope.md.has(i), &mut m.state));
        for (wanted, r) in
            mds.chain([(scope.business, &mut self.clp.business_state), (scope.vip, &mut self.clp.vip_state)])
        {
            if wanted && r.state != ObjectState::Offline {
                r.state = ObjectState::OfflinePending;
            }
        }
    }

    fn schedule(&mut self, op: ClpOp, median: f64, now: Timestamp) -> Timestamp {
        let until = self.after(now, median);
        self.log(now, format!("clp: {op} requested"));
        self.clp.transition = Some(Transition { op, until });
        until
    }

    fn clp_start_group(&mut self, group: &GroupName, server: &ServerName, now: Timestamp) -> PortResult<Timestamp> {
        self.check_command("clpgrp", None, false)?;
        self.check_group(group)?;
        self.check_server(server)?;
        self.check_idle()?;
        // A group partly online (md stopped alone, its virtual IP still up) reads "Online" and
        // `clpgrp -s` treats it as started [U]: the resources stopped inside it must be started
        // one by one (`clprsc -s`).
        let placed = self.group_placement();
        if self.group_online_on(server)
            || (placed.state == ObjectState::Online && placed.current.as_ref() == Some(server))
        {
            return Err(ClpCode::GroupAlreadyStarted.error(format!("{group} is already online on {server}")));
        }
        if let Some(other) =
            self.group_states().iter().find(|r| r.state == ObjectState::Online && r.current.as_ref() != Some(server))
        {
            let on = other.current.clone().map(|s| s.to_string()).unwrap_or_default();
            return Err(ClpCode::GroupOnline.error(format!("{group} is online on {on}")));
        }
        self.mark_online_pending(Scope::GROUP, server);
        let d = self.scenario.latency.group_start_s;
        Ok(self.schedule(ClpOp::StartGroup { server: server.clone() }, d, now))
    }

    fn clp_stop_group(&mut self, group: &GroupName, now: Timestamp) -> PortResult<Timestamp> {
        self.check_command("clpgrp", None, false)?;
        self.check_group(group)?;
        self.check_idle()?;
        if self.group_all_offline() {
            return Err(ClpCode::GroupAlreadyStopped.error(format!("{group} is already offline")));
        }
        self.mark_offline_pending(Scope::GROUP);
        let d = self.scenario.latency.group_stop_s;
        Ok(self.schedule(ClpOp::StopGroup, d, now))
    }

    fn clp_move_group(&mut self, group: &GroupName, target: &ServerName, now: Timestamp) -> PortResult<Timestamp> {
        self.check_command("clpgrp", None, false)?;
        self.check_group(group)?;
        self.check_server(target)?;
        self.check_idle()?;
        if self.group_online_on(target) {
            return Err(ClpCode::GroupAlreadyStarted.error(format!("{group} is already online on {target}")));
        }
        let Some(from) = self.peer(target).filter(|p| self.group_online_on(p)) else {
            return Err(ClpCode::GroupOffline.error(format!("{group} is not online: nothing to move")));
        };
        self.mark_offline_pending(Scope::GROUP);
        let d = self.scenario.latency.group_move_s;
        Ok(self.schedule(ClpOp::MoveGroup { from, target: target.clone() }, d, now))
    }

    /// What starting `resource` with `-f` brings online: itself and what it depends on (the
    /// business resource depends on every md; md and the virtual IP on nothing here).
    fn start_scope(&self, resource: &ResourceName) -> Scope {
        if let Some(i) = self.md_index(resource) {
            Scope { md: Mds::One(i), business: false, vip: false }
        } else if self.is_vip(resource) {
            Scope { md: Mds::None, business: false, vip: true }
        } else {
            Scope { md: Mds::All, business: true, vip: false }
        }
    }

    /// What stopping `resource` with `-f` takes offline: itself and what depends on it.
    fn stop_scope(&self, resource: &ResourceName) -> Scope {
        if let Some(i) = self.md_index(resource) {
            Scope { md: Mds::One(i), business: true, vip: false }
        } else if self.is_vip(resource) {
            Scope { md: Mds::None, business: false, vip: true }
        } else {
            Scope { md: Mds::None, business: true, vip: false }
        }
    }

    /// The states of the resources in `scope`.
    fn scoped(&self, scope: Scope) -> Vec<&ResState> {
        let mut v = Vec::new();
        for (i, md) in self.clp.mds.iter().enumerate() {
            if scope.md.has(i) && md.def.is_some() {
                v.push(&md.state);
            }
        }
        if scope.business {
            v.push(&self.clp.business_state);
        }
        if scope.vip && self.clp.vip.is_some() {
            v.push(&self.clp.vip_state);
        }
        v
    }

    fn clp_start_resource(
        &mut self,
        resource: &ResourceName,
        server: &ServerName,
        now: Timestamp,
    ) -> PortResult<Timestamp> {
        self.check_command("clprsc", None, false)?;
        self.check_resource(resource)?;
        self.check_server(server)?;
        self.check_idle()?;
        if self.resource_state(resource).online_on(server) {
            return Err(ClpCode::ResourceAlreadyStarted.error(format!("{resource} is already online on {server}")));
        }
        let scope = self.start_scope(resource);
        if self.scoped(scope).iter().any(|r| r.state == ObjectState::Online && r.current.as_ref() != Some(server)) {
            return Err(ClpCode::ResourceOnline
                .error(format!("{resource} or a resource it depends on is online on another server")));
        }
        self.mark_online_pending(scope, server);
        let d = self.scenario.latency.resource_start_s;
        Ok(self.schedule(ClpOp::StartResource { resource: resource.clone(), server: server.clone() }, d, now))
    }

    fn clp_stop_resource(&mut self, resource: &ResourceName, now: Timestamp) -> PortResult<Timestamp> {
        self.check_command("clprsc", None, false)?;
        self.check_resource(resource)?;
        self.check_idle()?;
        let scope = self.stop_scope(resource);
        if self.scoped(scope).iter().all(|r| r.state == ObjectState::Offline) {
            return Err(ClpCode::ResourceAlreadyStopped.error(format!("{resource} is already offline")));
        }
        self.mark_offline_pending(scope);
        let d = self.scenario.latency.resource_stop_s;
        Ok(self.schedule(ClpOp::StopResource { resource: resource.clone() }, d, now))
    }

    /// Completes the pending group/resource operation.
    pub(super) fn settle_transition(&mut self, t: Timestamp) {
        let Some(tr) = self.clp.transition.take() else {
            return;
        };
        match tr.op {
            ClpOp::StartGroup { server } => self.bring_online(t, &server, Scope::GROUP),
            ClpOp::StopGroup => self.take_offline(t, Scope::GROUP),
            ClpOp::MoveGroup { target, .. } => {
                self.take_offline(t, Scope::GROUP);
                self.bring_online(t, &target, Scope::GROUP);
            }
            ClpOp::StartResource { resource, server } => {
                let scope = self.start_scope(&resource);
                self.bring_online(t, &server, scope);
            }
            ClpOp::StopResource { resource } => {
                let scope = self.stop_scope(&resource);
                self.take_offline(t, scope);
            }
        }
    }

    /// Why md `i` cannot start on `server`, if it cannot.
    fn md_can_start(&self, i: usize, server: &ServerName) -> Result<(), String> {
        let Some(md) = self.clp.mds.get(i).and_then(|m| m.def.as_ref()) else {
            return Ok(());
        };
        self.partitions_ok(server, md)?;
        match &self.clp.mds[i].mirror {
            MirrorState::Degraded { stale, writes, full } if stale == server && (*writes > 0 || *full) => {
                Err(format!("the mirror data on {server} is not the latest (RED)"))
            }
            MirrorState::Recovering { target, .. } if target == server => {
                Err(format!("mirror recovery to {server} is in progress"))
            }
            _ => Ok(()),
        }
    }

    fn bring_online(&mut self, t: Timestamp, server: &ServerName, scope: Scope) {
        let needed: Vec<usize> = (0..self.clp.mds.len())
            .filter(|&i| {
                let md = &self.clp.mds[i];
                scope.md.has(i) && md.def.is_some() && !md.state.online_on(server)
            })
            .collect();
        let check = if self.is_member(server) {
            needed.iter().try_for_each(|&i| self.md_can_start(i, server))
        } else {
            Err(format!("{server} is not a cluster member"))
        };
        if let Err(reason) = check {
            for &i in &needed {
                self.clp.mds[i].state = ResState::on(ObjectState::OnlineFailure, server);
            }
            if scope.business {
                self.clp.business_state = ResState::on(ObjectState::OnlineFailure, server);
            }
            // The virtual IP does not depend on md: on a member it comes up anyway.
            if scope.vip && self.clp.vip.is_some() {
                let state = if self.is_member(server) { ObjectState::Online } else { ObjectState::OnlineFailure };
                self.clp.vip_state = ResState::on(state, server);
            }
            self.log(t, format!("clp: start on {server} failed: {reason}"));
            self.clp.last_error = Some(reason);
            return;
        }
        for &i in &needed {
            self.clp.mds[i].state = ResState::on(ObjectState::Online, server);
            self.on_md_online(t, i, server);
        }
        if scope.business {
            self.clp.business_state = ResState::on(ObjectState::Online, server);
        }
        if scope.vip && self.clp.vip.is_some() {
            self.clp.vip_state = ResState::on(ObjectState::Online, server);
        }
        self.clp.last_server = Some(server.clone());
        self.clp.last_error = None;
        let what = if scope.md == Mds::All && scope.business && scope.vip {
            format!("group {} ({})", self.clp.group, self.resource_names(scope).join(", "))
        } else {
            self.resource_names(scope).join(", ")
        };
        self.log(t, format!("clp: {what} online on {server}"));
    }

    fn on_md_online(&mut self, t: Timestamp, i: usize, server: &ServerName) {
        self.clp.mds[i].next_write_at = Some(super::clock::plus(t, 1.0));
        let Some(peer) = self.peer(server) else {
            return;
        };
        match self.clp.mds[i].mirror.clone() {
            MirrorState::Unconstructed => {
                self.clp.mds[i].mirror = MirrorState::Degraded { stale: peer, writes: 0, full: true };
            }
            MirrorState::Degraded { stale, writes: 0, full: false } if stale == *server => {
                self.clp.mds[i].mirror = MirrorState::Degraded { stale: peer, writes: 0, full: false };
            }
            _ => {}
        }
        self.maybe_recover_md(t, i);
    }

    /// The names of the resources in `scope`, md first.
    fn resource_names(&self, scope: Scope) -> Vec<String> {
        let mut v: Vec<String> = self
            .clp
            .mds
            .iter()
            .enumerate()
            .filter(|(i, _)| scope.md.has(*i))
            .filter_map(|(_, m)| m.def.as_ref().map(|d| d.resource.to_string()))
            .collect();
        if scope.business {
            v.push(self.clp.business.to_string());
        }
        if let Some(vip) = self.clp.vip.as_ref().filter(|_| scope.vip) {
            v.push(vip.to_string());
        }
        v
    }

    fn take_offline(&mut self, t: Timestamp, scope: Scope) {
        if scope.business {
            self.clp.business_state = ResState::offline();
        }
        if scope.vip {
            self.clp.vip_state = ResState::offline();
        }
        for i in 0..self.clp.mds.len() {
            let Some(name) = self.clp.mds[i].def.as_ref().map(|d| d.resource.clone()).filter(|_| scope.md.has(i))
            else {
                continue;
            };
            if let Some(active) = self.md_active_of(i)
                && let Some(content) = self.md_content(i, &active)
            {
                self.oracle.quiesce.push(super::oracle::QuiescePoint {
                    md: name.clone(),
                    at: t,
                    server: active.clone(),
                    content,
                });
                let what = if self.clp.mds.len() > 1 { name.to_string() } else { "md".to_owned() };
                self.log(t, format!("clp: {what} offline on {active} (quiesce point {content})"));
            }
            self.clp.mds[i].state = ResState::offline();
            self.clp.mds[i].next_write_at = None;
        }
        if self.group_all_offline() {
            self.log(t, format!("clp: group {} offline", self.clp.group));
        } else {
            let still: Vec<String> = self
                .group_states()
                .iter()
                .zip(self.resource_names(Scope::GROUP))
                .filter(|(r, _)| r.state != ObjectState::Offline)
                .map(|(_, n)| n)
                .collect();
            self.log(
                t,
                format!(
                    "clp: {} offline; group {} still online with {}",
                    self.resource_names(scope).join(", "),
                    self.clp.group,
                    still.join(", ")
                ),
            );
        }
    }

    /// `clpdown` of `server`, run on `by` (itself, or the server asking with `-h`).
    fn clp_shutdown_server(&mut self, server: &ServerName, by: &ServerName, now: Timestamp) -> PortResult<()> {
        self.check_server(server)?;
        self.check_command("clpdown", Some(by), false)?;
        let Some(inst) = self.instance_of(server).cloned() else {
            return Err(ClpCode::ServerNotFound.error(format!("no instance for {server}")));
        };
        match inst.state {
            InstanceState::Running => {}
            InstanceState::Stopping
            | InstanceState::Stopped
            | InstanceState::ShuttingDown
            | InstanceState::Terminated => {
                return Err(ClpCode::ServerAlreadyDown.error(format!("{server} is already down")));
            }
            InstanceState::Pending => {
                return Err(ClpCode::ServerDown.error(format!("{server} is still starting")));
            }
        }
        let here =
            self.group_states().iter().any(|r| r.state != ObjectState::Offline && r.current.as_ref() == Some(server));
        if here {
            return Err(ClpCode::GroupOnline
                .error(format!("group {} is online on {server}; move or stop it first", self.clp.group)));
        }
        if let Some(s) = self.clp.servers.get_mut(server) {
            s.member = false;
        }
        self.on_leave(now, server);
        let stop = self.scenario.latency.instance_stop_s;
        let until = self.after(now, stop);
        if let Some(i) = self.ec2.instances.get_mut(&inst.id) {
            i.join_at = None;
            i.until = Some(until);
            i.state = match i.shutdown_behavior {
                crate::ports::cloud::ShutdownBehavior::Stop => InstanceState::Stopping,
                crate::ports::cloud::ShutdownBehavior::Terminate => InstanceState::ShuttingDown,
            };
        }
        self.log(now, format!("clp: {server} shut down (left the cluster; {} stopping)", inst.id));
        Ok(())
    }

    /// `clpdown -h <leaving>` on the server that then starts, and the start once `leaving` is out:
    /// a server already out and not running is not shut down again (a retry after the shutdown).
    fn clp_leave_then_start(&mut self, leaving: &ServerName, start: &Start, now: Timestamp) -> PortResult<Timestamp> {
        let on = match start {
            Start::Group { server, .. } | Start::Resource { server, .. } => server,
        };
        let out =
            !self.is_member(leaving) && self.instance_of(leaving).is_some_and(|i| i.state != InstanceState::Running);
        if !out {
            self.clp_shutdown_server(leaving, on, now)?;
        }
        match start {
            Start::Group { group, server } => self.clp_start_group(group, server, now),
            Start::Resource { resource, server } => self.clp_start_resource(resource, server, now),
        }
    }

    /// Whether `start` has finished as its own call would require.
    fn started(&self, start: &Start) -> PortResult<()> {
        match start {
            Start::Group { server, .. } if self.group_online_on(server) => Ok(()),
            Start::Group { .. } => Err(failed(ClpCode::GroupStartFailed, self)),
            Start::Resource { resource, server } if self.resource_state(resource).online_on(server) => Ok(()),
            Start::Resource { .. } => Err(failed(ClpCode::ResourceStartFailed, self)),
        }
    }

    fn clp_mirror_status(&self, resource: &ResourceName) -> PortResult<MirrorStatus> {
        self.check_command("clpmdstat", None, true)?;
        let Some(i) = self.md_index(resource) else {
            return Err(ClpCode::ResourceNotFound.error(format!("no md resource named {resource}")));
        };
        let mirror = &self.clp.mds[i].mirror;
        let colors = self
            .clp
            .servers
            .iter()
            .map(|(name, s)| {
                let c = match mirror {
                    MirrorState::Degraded { stale, writes, full } if stale == name => {
                        if *writes > 0 || *full {
                            MirrorColor::Red
                        } else {
                            MirrorColor::Gray
                        }
                    }
                    MirrorState::InSync | MirrorState::Degraded { .. } => {
                        if s.member {
                            MirrorColor::Green
                        } else {
                            MirrorColor::Gray
                        }
                    }
                    MirrorState::Recovering { target, .. } => {
                        if target == name {
                            MirrorColor::Yellow
                        } else {
                            MirrorColor::Green
                        }
                    }
                    MirrorState::Unconstructed => {
                        if s.member {
                            MirrorColor::Red
                        } else {
                            MirrorColor::Gray
                        }
                    }
                };
                (name.clone(), c)
            })
            .collect();
        Ok(MirrorStatus { colors })
    }

    /// What an operation's answer shows, read in the step that saw it finish: the status and
    /// the configured md's colours, each as its own query would read it (absent where that query
    /// would fail).
    fn clp_left(&self) -> Left {
        let status = self.check_command("clpstat", None, true).ok().map(|()| self.clp_status());
        let mirrors = self
            .clp
            .mds
            .iter()
            .filter_map(|md| md.def.as_ref())
            .filter_map(|md| self.clp_mirror_status(&md.resource).ok().map(|m| (md.resource.clone(), m)))
            .collect();
        Left { status, mirrors, config: None }
    }

    fn clp_config(&self) -> ClusterConfig {
        ClusterConfig {
            group_auto_start: BTreeMap::from([(self.clp.group.clone(), self.clp.auto_start)]),
            mirrors: self.clp.mds.iter().filter_map(|m| m.def.clone()).collect(),
            version: Some(self.scenario.version.clone()),
        }
    }

    fn clp_apply_config(&mut self, changes: &[ConfigChange], now: Timestamp) -> PortResult<Timestamp> {
        self.check_command("clpcfctrl", None, false)?;
        self.check_idle()?;
        if let Some((down, _)) = self.clp.servers.iter().find(|(_, s)| !s.member) {
            return Err(ClpCode::ServerDown
                .error(format!("{down} is not a cluster member: the configuration cannot be applied")));
        }
        let touches_md =
            changes.iter().any(|c| matches!(c, ConfigChange::RemoveMirror { .. } | ConfigChange::AddMirror(_)));
        if touches_md && !self.group_all_offline() {
            return Err(ClpCode::GroupOnline
                .error(format!("group {} must be offline to change its md resource", self.clp.group)));
        }
        for c in changes {
            match c {
                ConfigChange::AddMirror(md) => {
                    self.check_group(&md.group)?;
                    for server in self.clp.servers.keys() {
                        self.partitions_ok(server, md).map_err(|reason| ClpCode::PartitionNotFound.error(reason))?;
                    }
                }
                ConfigChange::SetGroupAutoStart { group, .. } => self.check_group(group)?,
                ConfigChange::RemoveMirror { .. } => {}
            }
        }
        let d = self.scenario.latency.apply_config_s;
        let until = self.after(now, d);
        self.clp.config_pending = Some(ConfigPending { changes: changes.to_vec(), until });
        self.log(now, format!("clp: configuration push requested ({} changes)", changes.len()));
        Ok(until)
    }

    /// The oracle records a corruption when the two sides of md `i` (of every md: `None`) do not
    /// hold the same data and CLUSTERPRO is about to treat them as in sync (`what` did so without
    /// a copy).
    pub(super) fn flag_unless_identical(&mut self, t: Timestamp, what: &str, md: Option<usize>) {
        for i in 0..self.clp.mds.len() {
            if md.is_some_and(|m| m != i) || (md.is_none() && self.clp.mds[i].def.is_none()) {
                continue;
            }
            let sides: Vec<(ServerName, Option<super::oracle::Content>)> =
                self.clp.servers.keys().map(|s| (s.clone(), self.md_content(i, s))).collect();
            if sides.windows(2).all(|w| w[0].1 == w[1].1) {
                continue;
            }
            let desc: Vec<String> = sides
                .iter()
                .map(|(s, c)| format!("{s} holds {}", c.map_or("nothing".to_owned(), |c| c.to_string())))
                .collect();
            let of = if md.is_none() && self.clp.mds.len() > 1 {
                format!(" ({})", self.clp.mds[i].name)
            } else {
                String::new()
            };
            let msg = format!("{what}{of} over different sides: {}", desc.join(", "));
            self.log(t, format!("oracle: CORRUPTION: {msg}"));
            self.oracle.corruptions.push(msg);
        }
    }

    /// Applies a pushed configuration.
    pub(super) fn settle_config(&mut self, t: Timestamp) {
        let Some(pending) = self.clp.config_pending.take() else {
            return;
        };
        for c in pending.changes {
            match c {
                ConfigChange::RemoveMirror { resource } => {
                    if let Some(i) = self.md_index(&resource) {
                        let md = &mut self.clp.mds[i];
                        md.def = None;
                        md.state = ResState::offline();
                        md.mirror = MirrorState::InSync;
                        self.log(
                            t,
                            format!("clp: {resource} removed (with its mdw/mdnw monitors and group reference)"),
                        );
                    }
                }
                ConfigChange::AddMirror(md) => {
                    let Some(i) = self.md_slot(&md.resource) else {
                        continue;
                    };
                    let name = md.resource.clone();
                    let initial = md.initial_copy;
                    let rec = &mut self.clp.mds[i];
                    rec.name = name.clone();
                    rec.def = Some(md);
                    rec.state = ResState::offline();
                    if initial {
                        rec.mirror = MirrorState::Unconstructed;
                        self.log(t, format!("clp: {name} added (initial mirror construction on first start)"));
                    } else {
                        self.flag_unless_identical(t, &format!("{name} re-added without initial copy"), Some(i));
                        self.clp.mds[i].mirror = MirrorState::InSync;
                        self.log(t, format!("clp: {name} added (initial mirror construction skipped)"));
                    }
                }
                ConfigChange::SetGroupAutoStart { group, auto } => {
                    if group == self.clp.group {
                        self.clp.auto_start = auto;
                        self.log(
                            t,
                            format!("clp: group {group} start attribute {}", if auto { "automatic" } else { "manual" }),
                        );
                    }
                }
            }
        }
    }

    /// Where an md added as `resource` goes: the md of that name (configured or removed), else
    /// the first md removed from the configuration (a re-add under another name keeps its
    /// volumes), else the first md.
    pub(super) fn md_slot(&self, resource: &ResourceName) -> Option<usize> {
        self.clp
            .mds
            .iter()
            .position(|m| m.name == *resource)
            .or_else(|| self.clp.mds.iter().position(|m| m.def.is_none()))
            .or((!self.clp.mds.is_empty()).then_some(0))
    }
}

/// The simulated CLUSTERPRO port.
#[derive(Debug, Clone)]
pub struct SimCluster {
    world: Arc<SimWorld>,
}

impl SimCluster {
    /// CLUSTERPRO of `world`.
    pub fn new(world: Arc<SimWorld>) -> Self {
        SimCluster { world }
    }

    async fn rtt(&self) {
        self.world.round_trip(|l| l.clp_api_s).await;
    }

    /// Schedules an operation, waits until it has completed in the world, then checks its outcome
    /// and reads what it left in the same step.
    async fn run(
        &self,
        op: &str,
        schedule: impl FnOnce(&mut World, Timestamp) -> PortResult<Timestamp>,
        check: impl FnOnce(&World) -> PortResult<()>,
    ) -> PortResult<Left> {
        self.rtt().await;
        let until = self.world.call(op, None, schedule)?;
        self.world.wait_until(until).await;
        self.world.with(|w, _| check(w).map(|()| w.clp_left()))
    }
}

fn failed(code: ClpCode, w: &World) -> PortError {
    let why = w.clp.last_error.clone().unwrap_or_else(|| "the operation did not complete".to_owned());
    code.error(why)
}

#[async_trait::async_trait]
impl Cluster for SimCluster {
    async fn status(&self) -> PortResult<ClusterStatus> {
        self.rtt().await;
        self.world.call("clp:status", None, |w, _| {
            w.check_command("clpstat", None, true)?;
            Ok(w.clp_status())
        })
    }

    async fn start_group(&self, group: &GroupName, server: &ServerName) -> PortResult<Left> {
        self.run(
            "clp:start_group",
            |w, now| w.clp_start_group(group, server, now),
            |w| {
                if w.group_online_on(server) { Ok(()) } else { Err(failed(ClpCode::GroupStartFailed, w)) }
            },
        )
        .await
    }

    async fn stop_group(&self, group: &GroupName) -> PortResult<Left> {
        self.run(
            "clp:stop_group",
            |w, now| w.clp_stop_group(group, now),
            |w| {
                if w.group_all_offline() {
                    Ok(())
                } else {
                    Err(ClpCode::GroupStopFailed.error("the group did not go offline"))
                }
            },
        )
        .await
    }

    async fn move_group(&self, group: &GroupName, target: &ServerName) -> PortResult<Left> {
        self.run(
            "clp:move_group",
            |w, now| w.clp_move_group(group, target, now),
            |w| {
                if w.group_online_on(target) { Ok(()) } else { Err(failed(ClpCode::GroupMoveFailed, w)) }
            },
        )
        .await
    }

    async fn start_resource(&self, resource: &ResourceName, server: &ServerName) -> PortResult<Left> {
        self.run(
            "clp:start_resource",
            |w, now| w.clp_start_resource(resource, server, now),
            |w| {
                if w.resource_state(resource).online_on(server) {
                    Ok(())
                } else {
                    Err(failed(ClpCode::ResourceStartFailed, w))
                }
            },
        )
        .await
    }

    async fn stop_resource(&self, resource: &ResourceName) -> PortResult<Left> {
        self.run(
            "clp:stop_resource",
            |w, now| w.clp_stop_resource(resource, now),
            |w| {
                if w.resource_state(resource).state == ObjectState::Offline {
                    Ok(())
                } else {
                    Err(ClpCode::ResourceStopFailed.error("the resource did not go offline"))
                }
            },
        )
        .await
    }

    async fn shutdown_server(&self, server: &ServerName) -> PortResult<Left> {
        self.rtt().await;
        self.world.call("clp:shutdown_server", None, |w, now| {
            w.clp_shutdown_server(server, server, now).map(|()| w.clp_left())
        })
    }

    fn can_leave_then_start(&self) -> bool {
        true
    }

    async fn leave_then_start(&self, leaving: &ServerName, start: &Start) -> PortResult<Left> {
        self.run("clp:leave_then_start", |w, now| w.clp_leave_then_start(leaving, start, now), |w| w.started(start))
            .await
    }

    async fn vendor(&self, server: &ServerName, call: &VendorCall) -> PortResult<()> {
        self.rtt().await;
        self.world.call("clp:vendor", None, |w, now| w.clp_vendor(server, call, now))
    }

    async fn mirror_status(&self, resource: &ResourceName) -> PortResult<MirrorStatus> {
        self.rtt().await;
        self.world.call("clp:mirror_status", None, |w, _| w.clp_mirror_status(resource))
    }

    async fn config(&self) -> PortResult<ClusterConfig> {
        self.rtt().await;
        self.world.call("clp:config", None, |w, _| {
            w.check_command("clpcfctrl", None, true)?;
            Ok(w.clp_config())
        })
    }

    async fn preflight(&self, request: &PreflightRequest) -> PortResult<Vec<Check>> {
        // One command per server (tools and versions) and a pull of the configuration.
        self.rtt().await;
        self.rtt().await;
        self.world.call("clp:preflight", None, |w, _| Ok(w.clp_preflight(request)))
    }

    async fn apply_config(&self, changes: &[ConfigChange]) -> PortResult<Left> {
        let left = self
            .run(
                "clp:apply_config",
                |w, now| w.clp_apply_config(changes, now),
                |w| {
                    // `clpcfctrl --push` uploaded the file; without `clpcl` the suspend/resume that
                    // applies it cannot run, and the caller learns it only now.
                    w.check_command("clpcl", None, false)?;
                    if w.clp.config_pending.is_none() {
                        Ok(())
                    } else {
                        Err(ClpCode::ConfigBusy.error("the configuration push has not completed"))
                    }
                },
            )
            .await?;
        // Read back as `config` reads it.
        let config = self.world.with(|w, _| w.check_command("clpcfctrl", None, true).ok().map(|()| w.clp_config()));
        Ok(Left { config, ..left })
    }
}
