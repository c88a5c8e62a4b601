//! One [`Cluster`] made of two: the REST API for what it can do, the command adapter for the rest.
//!
//! Why this module exists: the CLUSTERPRO REST API (X 4.2+) reads the status and runs group,
//! resource and server operations, but has no endpoint for mirror colours or for configuration
//! changes (DOMAIN.md, "by absence"). A cluster with the API therefore still needs the commands
//! (`clpmdstat`, `clpcfctrl`) for those. `HybridCluster` routes each port method to the right
//! side so the rest of mirrorctl sees one port.

use std::sync::Arc;

use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::PortResult;
use crate::ports::cluster::{
    Check, Cluster, ClusterConfig, ClusterStatus, ConfigChange, Left, MirrorStatus, PreflightRequest, Start, VendorCall,
};

/// Status and operations through `api`; mirror status and configuration through `commands`.
#[derive(Clone)]
pub struct HybridCluster {
    api: Arc<dyn Cluster>,
    commands: Arc<dyn Cluster>,
}

impl std::fmt::Debug for HybridCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HybridCluster").finish_non_exhaustive()
    }
}

impl HybridCluster {
    /// `api` (normally a [`super::rest::RestCluster`]) answers `status` and the seven operations;
    /// `commands` (the command-based adapter) answers `mirror_status`, `config` and
    /// `apply_config`.
    pub fn new(api: Arc<dyn Cluster>, commands: Arc<dyn Cluster>) -> Self {
        HybridCluster { api, commands }
    }
}

#[async_trait::async_trait]
impl Cluster for HybridCluster {
    async fn status(&self) -> PortResult<ClusterStatus> {
        self.api.status().await
    }
    async fn start_group(&self, group: &GroupName, server: &ServerName) -> PortResult<Left> {
        self.api.start_group(group, server).await
    }
    async fn stop_group(&self, group: &GroupName) -> PortResult<Left> {
        self.api.stop_group(group).await
    }
    async fn move_group(&self, group: &GroupName, target: &ServerName) -> PortResult<Left> {
        self.api.move_group(group, target).await
    }
    async fn start_resource(&self, resource: &ResourceName, server: &ServerName) -> PortResult<Left> {
        self.api.start_resource(resource, server).await
    }
    async fn stop_resource(&self, resource: &ResourceName) -> PortResult<Left> {
        self.api.stop_resource(resource).await
    }
    async fn vendor(&self, server: &ServerName, call: &VendorCall) -> PortResult<()> {
        // Through the server's own API endpoint when the addresses say which server each is (the
        // `/mirrors/…` actions name no server, see VENDOR.md); otherwise as a command on it.
        match self.api.vendor(server, call).await {
            Err(e) if e.code == super::rest::NOT_SUPPORTED => self.commands.vendor(server, call).await,
            r => r,
        }
    }
    async fn shutdown_server(&self, server: &ServerName) -> PortResult<Left> {
        self.api.shutdown_server(server).await
    }
    /// The operations go through the API, and so does this one: the API cannot, so the planner
    /// keeps the two steps (the commands could, but mixing sides in one operation would run
    /// the shutdown through a path the rest of the backup does not use).
    fn can_leave_then_start(&self) -> bool {
        self.api.can_leave_then_start()
    }
    async fn leave_then_start(&self, leaving: &ServerName, start: &Start) -> PortResult<Left> {
        self.api.leave_then_start(leaving, start).await
    }
    async fn mirror_status(&self, resource: &ResourceName) -> PortResult<MirrorStatus> {
        self.commands.mirror_status(resource).await
    }
    async fn config(&self) -> PortResult<ClusterConfig> {
        self.commands.config().await
    }
    async fn apply_config(&self, changes: &[ConfigChange]) -> PortResult<Left> {
        self.commands.apply_config(changes).await
    }
    /// Both sides' checks: the API's (it answers, the servers are members) and the commands'
    /// (tools, configuration edits, identifiers). The commands side checks every command of the
    /// operation, also those the API runs instead: they ship together, so one missing is a
    /// damaged install either way.
    async fn preflight(&self, request: &PreflightRequest) -> PortResult<Vec<Check>> {
        let (api, commands) = futures::join!(self.api.preflight(request), self.commands.preflight(request));
        let mut checks = api?;
        checks.extend(commands?);
        Ok(checks)
    }
}
