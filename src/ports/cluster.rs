//! The CLUSTERPRO port: cluster status, group/resource/server operations, mirror status, and the
//! configuration changes the restore needs (remove md, re-add md, group start attribute), applied
//! as one push. Operations return when CLUSTERPRO has *finished* them (adapters poll the
//! asynchronous REST POSTs); a failed transition (e.g. `Online Failure`) is an error. A finished
//! operation answers with the cluster it left ([`Left`]), read by the same call, so the next pass
//! of a reconcile need not ask CLUSTERPRO again.

pub mod errors;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::PortResult;
use crate::ids::{GroupName, ResourceName, ServerName};
use crate::spec::Partition;

/// A CLUSTERPRO object state word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ObjectState {
    /// Online.
    Online,
    /// Offline.
    Offline,
    /// Going online.
    OnlinePending,
    /// Going offline.
    OfflinePending,
    /// Failed to go online.
    OnlineFailure,
    /// Failed to go offline.
    OfflineFailure,
    /// Anything else (Unknown, Suspend, …).
    Unknown,
}

impl ObjectState {
    /// Parses a status word as the REST API and `clpstat` print it.
    pub fn parse(word: &str) -> Self {
        match word.trim().to_ascii_lowercase().as_str() {
            "online" => ObjectState::Online,
            "offline" => ObjectState::Offline,
            "online pending" => ObjectState::OnlinePending,
            "offline pending" => ObjectState::OfflinePending,
            "online failure" => ObjectState::OnlineFailure,
            "offline failure" => ObjectState::OfflineFailure,
            _ => ObjectState::Unknown,
        }
    }
}

/// A group's or resource's state and where it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Placement {
    /// State.
    pub state: ObjectState,
    /// The server it is online (or failing) on; `None` when offline everywhere.
    pub current: Option<ServerName>,
}

/// Status of the whole cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterStatus {
    /// Server → whether it is a running cluster member.
    pub servers: BTreeMap<ServerName, bool>,
    /// Group → placement.
    pub groups: BTreeMap<GroupName, Placement>,
    /// Resource → placement (only resources in the configuration).
    pub resources: BTreeMap<ResourceName, Placement>,
}

/// The error code of a status or configuration read that no server could answer as a running
/// cluster member: every server is down, unreachable, or has its cluster service stopped (both
/// inside NEC's restore processing). Observation records it as a fact, not a failure.
pub const CLUSTER_UNREACHABLE: &str = errors::ClpCode::ClusterUnreachable.code();

/// What an operation's answer shows of the cluster it left: read by the same call right after the
/// operation finished, so it is an observation like a read (the simulator reads its state in the
/// same step; the command adapter runs `clpstat` in the same script as the command; the REST
/// adapter GETs the status once the POST's operation is seen done). A part the call could not read
/// is absent, and the next pass reads it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Left {
    /// The whole cluster's status, as [`Cluster::status`] reads it.
    pub status: Option<ClusterStatus>,
    /// Mirror colours of the md resources the call read them for (the simulator: every md in the
    /// configuration; the adapters: none, `clpmdstat` runs once per md and the REST API has no
    /// mirror endpoint).
    pub mirrors: BTreeMap<ResourceName, MirrorStatus>,
    /// The configuration now applied, after a push that read it back ([`Cluster::apply_config`]).
    pub config: Option<ClusterConfig>,
}

impl Left {
    /// An answer showing `status` only.
    pub fn status(status: ClusterStatus) -> Self {
        Left { status: Some(status), ..Left::default() }
    }
}

/// CLUSTERPRO's mirror colours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum MirrorColor {
    /// In sync.
    Green,
    /// Stale (needs recovery).
    Red,
    /// Recovering.
    Yellow,
    /// Unknown or stopped.
    Gray,
}

/// `clpmdstat -m <md>`: the colour of each server's side.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorStatus {
    /// Server → colour of its copy.
    pub colors: BTreeMap<ServerName, MirrorColor>,
}

impl MirrorStatus {
    /// Both sides green.
    pub fn healthy(&self) -> bool {
        !self.colors.is_empty() && self.colors.values().all(|c| *c == MirrorColor::Green)
    }
}

/// The md resource definition as mirrorctl needs to see and write it. Adapters keep the rest of
/// clp.conf untouched; on Windows they capture the per-server volume GUIDs themselves when adding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MdDefinition {
    /// Resource name.
    pub resource: ResourceName,
    /// Group it belongs to.
    pub group: GroupName,
    /// Data partition.
    pub data_partition: Partition,
    /// Cluster partition.
    pub cluster_partition: Partition,
    /// `fullcopy`: perform initial mirror construction.
    pub initial_copy: bool,
}

/// The parts of the cluster configuration mirrorctl reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ClusterConfig {
    /// Group → automatic startup (`<start>1</start>`).
    pub group_auto_start: BTreeMap<GroupName, bool>,
    /// The md resources defined.
    pub mirrors: Vec<MdDefinition>,
    /// The CLUSTERPRO version installed on the servers (the lowest, when they differ), as the
    /// adapter read it; `None` when it could not be read. It decides `procedure = "auto"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// A CLUSTERPRO X version, compared by major and minor number (`5.1.0-1` → 5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClpVersion {
    /// Major number (`5` of X 5.1).
    pub major: u32,
    /// Minor number (`1` of X 5.1).
    pub minor: u32,
}

impl ClpVersion {
    /// The first version with NEC's mirror-disk backup/restore pre- and post-processing commands:
    /// X 4.3 (NEC's 2023 Linux EBS-snapshot blog: "supported in EXPRESSCLUSTER X 4.3 and later").
    pub const VENDOR_PROCEDURE_SINCE: ClpVersion = ClpVersion { major: 4, minor: 3 };

    /// Reads the leading `major.minor` of a version string (`5.1.0-1`, `4.3.2`, `X 5.0`).
    pub fn parse(text: &str) -> Option<ClpVersion> {
        let start = text.find(|c: char| c.is_ascii_digit())?;
        let mut parts = text[start..].split(|c: char| !c.is_ascii_digit());
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next().filter(|p| !p.is_empty())?.parse().ok()?;
        Some(ClpVersion { major, minor })
    }

    /// Whether this version ships `clpbackup` / `clprestore`.
    pub fn has_vendor_procedure(self) -> bool {
        self >= Self::VENDOR_PROCEDURE_SINCE
    }
}

impl std::fmt::Display for ClpVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "X {}.{}", self.major, self.minor)
    }
}

/// How a backup or restore drives CLUSTERPRO, once chosen for an operation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Procedure {
    /// The runbook's: `clpdown` for the backup; for the restore, md removed from the configuration,
    /// the disks swapped, md re-added without initial mirror construction.
    #[default]
    Reconfigure,
    /// NEC's mirror-disk backup/restore pre- and post-processing (`clpbackup`, `clprestore`, X 4.3+).
    Vendor,
}

impl Procedure {
    /// The desired-state spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Procedure::Reconfigure => "reconfigure",
            Procedure::Vendor => "vendor",
        }
    }
}

/// Which of NEC's two commands a [`VendorCall`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VendorOp {
    /// `clpbackup` (REST `/mirrors/backup/…`).
    Backup,
    /// `clprestore` (REST `/mirrors/restore/…`).
    Restore,
}

impl VendorOp {
    /// The command's name (`clpbackup`, `clprestore`).
    pub fn command(self) -> &'static str {
        match self {
            VendorOp::Backup => "clpbackup",
            VendorOp::Restore => "clprestore",
        }
    }
}

/// Pre- or post-processing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VendorPhase {
    /// `--pre` (REST `preaction`): the server is taken out of the cluster for the disk work and
    /// shut down.
    Pre,
    /// `--post` (REST `postaction`): the server is put back and rebooted into the cluster.
    Post,
}

/// One call of NEC's pre- or post-processing on one server. What each does to the cluster, and
/// which of it is inferred, is written down in `src/adapters/clusterpro/VENDOR.md`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VendorCall {
    /// Backup or restore.
    pub op: VendorOp,
    /// Pre or post.
    pub phase: VendorPhase,
    /// Restore only: the mirror copy after the restore is skipped (`--skip-copy`): both sides hold
    /// the same data.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub skip_copy: bool,
    /// Only the last part: `--only-shutdown` of a pre whose shutdown did not happen, or
    /// `--only-reboot` of a post whose reboot did not.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub only: bool,
}

impl VendorCall {
    /// The command's name without extension (`clpbackup`, `clprestore`).
    pub fn command(&self) -> &'static str {
        self.op.command()
    }

    /// The command-line options, in NEC's spelling.
    pub fn args(&self) -> Vec<&'static str> {
        let mut v = vec![match self.phase {
            VendorPhase::Pre => "--pre",
            VendorPhase::Post => "--post",
        }];
        if self.only {
            v.push(match self.phase {
                VendorPhase::Pre => "--only-shutdown",
                VendorPhase::Post => "--only-reboot",
            });
        }
        if self.skip_copy {
            v.push("--skip-copy");
        }
        v
    }

    /// The REST path of this call (`/mirrors/restore/postaction`).
    pub fn rest_path(&self) -> String {
        let op = match self.op {
            VendorOp::Backup => "backup",
            VendorOp::Restore => "restore",
        };
        let phase = match self.phase {
            VendorPhase::Pre => "preaction",
            VendorPhase::Post => "postaction",
        };
        format!("/mirrors/{op}/{phase}")
    }

    /// The REST status path of this call's command (`/mirrors/restore/status`).
    pub fn rest_status_path(&self) -> &'static str {
        match self.op {
            VendorOp::Backup => "/mirrors/backup/status",
            VendorOp::Restore => "/mirrors/restore/status",
        }
    }
}

impl std::fmt::Display for VendorCall {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.command(), self.args().join(" "))
    }
}

impl ClusterConfig {
    /// The md resource `name`, if defined.
    pub fn mirror(&self, name: &ResourceName) -> Option<&MdDefinition> {
        self.mirrors.iter().find(|m| &m.resource == name)
    }

    /// Whether this configuration already has `change` in it (an added md resource is present
    /// under its name, a removed one is gone, a start attribute has the value it was set to).
    pub fn shows(&self, change: &ConfigChange) -> bool {
        match change {
            ConfigChange::RemoveMirror { resource } => self.mirror(resource).is_none(),
            ConfigChange::AddMirror(md) => self.mirror(&md.resource).is_some(),
            ConfigChange::SetGroupAutoStart { group, auto } => self.group_auto_start.get(group) == Some(auto),
        }
    }
}

/// One change to the configuration. A list of them is pushed and applied together.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigChange {
    /// Remove the md resource, its `mdw`/`mdnw` monitors and the group's reference to it.
    RemoveMirror {
        /// The md resource.
        resource: ResourceName,
    },
    /// Add (or replace) the md resource.
    AddMirror(MdDefinition),
    /// Set a group's startup attribute.
    SetGroupAutoStart {
        /// Group.
        group: GroupName,
        /// `true` = automatic.
        auto: bool,
    },
}

/// Which of mirrorctl's operations a preflight is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Operation {
    /// The backup: md stopped and started, the standby shut down.
    Backup,
    /// The restore: group stopped, md removed and re-added, group started and moved.
    Restore,
}

impl Operation {
    /// The CLUSTERPRO commands this operation runs under `procedure`, on any server (`clpdown`,
    /// `clpbackup` and `clprestore` on the one they act on). A cluster driven by commands must have
    /// every one of them at its install path on both servers before the operation changes anything.
    pub fn commands(self, procedure: Procedure) -> &'static [&'static str] {
        match (self, procedure) {
            (Operation::Backup, Procedure::Reconfigure) => &["clpstat", "clprsc", "clpgrp", "clpdown", "clpmdstat"],
            (Operation::Backup, Procedure::Vendor) => &["clpstat", "clprsc", "clpgrp", "clpbackup", "clpmdstat"],
            (Operation::Restore, Procedure::Reconfigure) => &["clpstat", "clpgrp", "clpmdstat", "clpcfctrl", "clpcl"],
            (Operation::Restore, Procedure::Vendor) => &["clpstat", "clpgrp", "clpmdstat", "clprestore"],
        }
    }
}

/// What a preflight must prove possible on the live cluster before the first step of an
/// operation that changes the cluster or a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreflightRequest {
    /// The operation.
    pub operation: Operation,
    /// Its failover group.
    pub group: GroupName,
    /// Its md resource.
    pub md: ResourceName,
    /// The procedure it follows (which commands it needs).
    #[serde(default)]
    pub procedure: Procedure,
    /// The configuration pushes it will make, in order (a restore: remove md and set manual
    /// start; then re-add md and set automatic start). Each must apply to today's `clp.conf` in
    /// memory, the second on the result of the first.
    pub pushes: Vec<Vec<ConfigChange>>,
}

/// One check of a preflight and what it found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Check {
    /// What was checked (`command clpcfctrl`, `clp.conf edits`, `volume GUIDs`, …).
    pub name: String,
    /// On which server, when it is about one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<ServerName>,
    /// Whether it passed.
    pub ok: bool,
    /// What was found (a version, a path, the mismatch).
    pub found: String,
    /// What to do when it failed (empty when it passed).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
}

impl Check {
    /// A passed check.
    pub fn pass(name: impl Into<String>, server: Option<&ServerName>, found: impl Into<String>) -> Self {
        Check { name: name.into(), server: server.cloned(), ok: true, found: found.into(), action: String::new() }
    }
    /// A failed check with what to do.
    pub fn fail(
        name: impl Into<String>,
        server: Option<&ServerName>,
        found: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        Check { name: name.into(), server: server.cloned(), ok: false, found: found.into(), action: action.into() }
    }
}

impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mark = if self.ok { "ok  " } else { "FAIL" };
        write!(f, "{mark} {}", self.name)?;
        if let Some(s) = &self.server {
            write!(f, " on {s}")?;
        }
        write!(f, ": {}", self.found)?;
        if !self.ok && !self.action.is_empty() {
            write!(f, " (what to do: {})", self.action)?;
        }
        Ok(())
    }
}

/// What [`Cluster::leave_then_start`] starts once the server has left: a whole group, or one
/// resource with what it depends on (`clprsc -s … -f`), on a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "start", rename_all = "kebab-case")]
pub enum Start {
    /// [`Cluster::start_group`].
    Group {
        /// Group.
        group: GroupName,
        /// Server.
        server: ServerName,
    },
    /// [`Cluster::start_resource`].
    Resource {
        /// Resource.
        resource: ResourceName,
        /// Server.
        server: ServerName,
    },
}

impl std::fmt::Display for Start {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Start::Group { group, server } => write!(f, "group {group} on {server}"),
            Start::Resource { resource, server } => write!(f, "resource {resource} on {server}"),
        }
    }
}

/// CLUSTERPRO operations. Each returns when the operation has finished on the cluster, with what it
/// left ([`Left`]).
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    /// Whole-cluster status.
    async fn status(&self) -> PortResult<ClusterStatus>;
    /// Start a group on a server.
    async fn start_group(&self, group: &GroupName, server: &ServerName) -> PortResult<Left>;
    /// Stop a group.
    async fn stop_group(&self, group: &GroupName) -> PortResult<Left>;
    /// Move a group to a server.
    async fn move_group(&self, group: &GroupName, target: &ServerName) -> PortResult<Left>;
    /// Start a resource on a server.
    async fn start_resource(&self, resource: &ResourceName, server: &ServerName) -> PortResult<Left>;
    /// Stop a resource (and what depends on it).
    async fn stop_resource(&self, resource: &ResourceName) -> PortResult<Left>;
    /// Shut a server's OS down through CLUSTERPRO (`clpdown` on that node).
    async fn shutdown_server(&self, server: &ServerName) -> PortResult<Left>;
    /// Whether [`Cluster::leave_then_start`] runs as one request to CLUSTERPRO. An adapter that
    /// cannot (the REST API has no compound request) says so here, and the planner keeps the two
    /// steps (`shutdown_server`, then the start) instead.
    fn can_leave_then_start(&self) -> bool;
    /// Shut `leaving` down through CLUSTERPRO, wait until it is seen out of the cluster, then
    /// `start` (on another server): the backup's "the standby leaves, business restarts" in one
    /// request. Nothing is started unless the server has left. A server already out of the cluster
    /// and not running (a retry after the shutdown part) is not shut down again: only `start` runs.
    /// Errors are those of [`Cluster::shutdown_server`] (nothing started) or of the start (the
    /// server has left). An adapter that cannot ([`Cluster::can_leave_then_start`]) refuses with
    /// `NotSupportedByRestApi` (`NeedsHuman`) and changes nothing.
    async fn leave_then_start(&self, leaving: &ServerName, start: &Start) -> PortResult<Left>;
    /// NEC's backup/restore pre- or post-processing on `server` (X 4.3+). Returns when it has
    /// finished there: a pre when the server has left the cluster (its shutdown under way), a post
    /// when its reboot has begun. A call the server's state already shows done is `AlreadyDone`.
    async fn vendor(&self, server: &ServerName, call: &VendorCall) -> PortResult<()>;
    /// Mirror colours of an md resource.
    async fn mirror_status(&self, resource: &ResourceName) -> PortResult<MirrorStatus>;
    /// Read the applied configuration.
    async fn config(&self) -> PortResult<ClusterConfig>;
    /// Push and apply configuration changes (pull, edit, push, suspend/resume). The answer's
    /// `config` is the configuration applied, when the adapter read it back.
    async fn apply_config(&self, changes: &[ConfigChange]) -> PortResult<Left>;
    /// Proves, without changing anything, that every later step of `request.operation` can run
    /// on this cluster as it is today: the tools it calls are there and answer, the servers are
    /// reachable members, the configuration decodes and the planned edits apply to it, and the
    /// identifiers a re-add would write can be derived and match today's. Each check is reported;
    /// an `Err` means the checks themselves could not be made.
    async fn preflight(&self, request: &PreflightRequest) -> PortResult<Vec<Check>>;
}
