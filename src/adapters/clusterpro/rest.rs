//! The CLUSTERPRO port over the `RESTful` API of CLUSTERPRO X 4.2 and later.
//!
//! Why this module exists: on clusters that have the API, it is the cheapest and most precise way
//! to read the cluster status and to start, stop and move the failover group, start and stop
//! resources and shut a server down — no command transport, no text parsing. It implements the
//! first seven methods of [`Cluster`]; mirror colours and configuration changes have no endpoint,
//! so [`super::hybrid::HybridCluster`] sends those to the command-based adapter.
//!
//! How it talks:
//! - `https://<node>:29009/api/v1/...` with HTTP Basic auth; the CA bundle of the desired state
//!   ([`ApiTls::CaBundle`], only those CAs are trusted), the system roots, or — loudly logged at
//!   every client build — no certificate check at all ([`ApiTls::Insecure`]).
//! - One base URL per server, tried in turn: a server that refuses the connection, times out,
//!   answers 5xx, or answers a GET with a non-zero `result.code` (e.g. its cluster service is
//!   stopped) is skipped for the next; the last server that answered is asked first next time, so
//!   a shut-down node costs one timeout, not one per poll.
//! - Servers are reached directly: `HTTP(S)_PROXY` variables are ignored (the API lives inside
//!   the cluster's network, and a proxy would see the Basic credentials); redirects are not
//!   followed.
//! - HTTP 401/403 stop at once with [`ErrorClass::NeedsHuman`], naming the user and the password
//!   source to check.
//! - POSTs are asynchronous: accepted ≠ done. Each operation first reads the state and refuses what
//!   the simulated cluster ([`crate::sim::SimCluster`]) refuses, with the *same codes and classes*
//!   (one vocabulary, [`crate::ports::cluster::errors::ClpCode`]: `GroupAlreadyStarted` → `AlreadyDone`, `GroupOnline` → `NeedsHuman`, a pending operation →
//!   `GroupBusy`/`Retryable`, unknown names → `*NotFound`/`NeedsHuman`), so the executor treats both
//!   alike and never depends on CLUSTERPRO's numeric result codes, for which no public table was
//!   found. It then POSTs and polls the GETs on a [`PollSchedule`] (first poll soon, ×1.5, capped)
//!   until the object reaches the wanted state, ends in `Online Failure`/`Offline Failure`
//!   (`GroupStartFailed`, `GroupMoveFailed`, `ResourceStartFailed` → `NeedsHuman`;
//!   `GroupStopFailed`, `ResourceStopFailed` → `Retryable`, as the simulator), or the operation
//!   timeout passes ([`OPERATION_TIMED_OUT`], `Retryable`: the cluster may still finish it, and the
//!   next observation sees where it went). Once done, one more GET of the whole status is the
//!   operation's answer ([`crate::ports::cluster::Left`]).
//!
//! What is confirmed and what is inferred (see DOMAIN.md "CLUSTERPRO interfaces"):
//! - Confirmed from NEC's own sample client (`CLUSTERPRO/REST-API_App`, `clusterapi.ts`) and the
//!   reference guide's outline: the paths; the envelope `result: {code, message}` beside the data;
//!   the data keys `servers`, `groups`, `resources`, each an array (also for one name); the fields
//!   `servers[].name/status`, `groups[].name/status/current/resources`,
//!   `resources[].name/type/status/current/group`; the POST bodies `{"target": server}` for group
//!   start/stop/move and resource start, none for resource stop and server shutdown; the status
//!   words Online, Offline, Online Pending, Offline Pending, Online Failure, Offline Failure,
//!   Normal, Caution, Error, Unused, Suspend, Unknown; an operation that fails carries its cause in
//!   `result.message`.
//! - Inferred [U]: `result.code` is 0 exactly on success (the sample client checks the message);
//!   `current` is `"None"` (or empty) when an object runs nowhere; a server's status is one of the
//!   words `clpstat` prints, so "running member" means [`RUNNING_SERVER_STATES`] as for the
//!   command adapter; error bodies of 4xx/5xx answers carry the same envelope (read when present,
//!   never required). Each of these is one constant or one function below.

mod client;
mod progress;
mod wire;

use std::time::Duration;

use crate::adapters::clusterpro::rules::Goal;
use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::cluster::errors::ClpCode;
use crate::ports::cluster::{
    Cluster, ClusterConfig, ClusterStatus, ConfigChange, Left, MirrorStatus, Start, VendorCall, VendorPhase,
};
use crate::ports::{PortError, PortResult};
use crate::spec::{ApiSpec, ApiTls};
use client::Fetch;
pub use client::RestCluster;
use progress::{
    precheck_move_group, precheck_shutdown, precheck_start_group, precheck_start_resource, precheck_stop_group,
    precheck_stop_resource, progress_group, progress_resource, progress_shutdown, resource_failed,
};
use wire::{Snapshot, placement};

/// The API's path under each base URL.
pub const API_PREFIX: &str = "/api/v1";
/// No server answered (connection refused, timeout, 5xx, or a GET refused) — `Retryable`.
pub const API_UNREACHABLE: &str = ClpCode::ApiUnreachable.code();
/// Every server failed the TLS handshake (unknown CA, wrong name) — `NeedsHuman`.
pub const API_TLS_FAILURE: &str = ClpCode::ApiTlsFailure.code();
/// HTTP 401/403 — `NeedsHuman`.
pub const API_AUTH_FAILED: &str = ClpCode::ApiAuthFailed.code();
/// An answer that is not the API's envelope, or lacks a field — `Retryable`.
pub const API_INVALID_RESPONSE: &str = ClpCode::ApiInvalidResponse.code();
/// A client-side error answer (4xx other than 401/403) — `NeedsHuman`.
pub const API_REQUEST_REJECTED: &str = ClpCode::ApiRequestRejected.code();
/// A POST answered with a non-zero `result.code` after the state checks passed — `Retryable`
/// (usually another operation started in between; the executor's budget bounds the retries).
pub const OPERATION_REFUSED: &str = ClpCode::OperationRefused.code();
/// The operation did not finish within the operation timeout — `Retryable`.
pub const OPERATION_TIMED_OUT: &str = ClpCode::OperationTimedOut.code();
/// The REST API has no endpoint for this (mirror status, configuration) — `NeedsHuman`.
pub const NOT_SUPPORTED: &str = ClpCode::NotSupportedByRestApi.code();

/// When to poll while an operation runs: `first`, then each delay `factor` times the previous,
/// never more than `max`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollSchedule {
    /// Delay before the first poll after the POST was accepted.
    pub first: Duration,
    /// Growth factor between polls (1.5 by default).
    pub factor: f64,
    /// Longest delay between polls.
    pub max: Duration,
}

impl Default for PollSchedule {
    fn default() -> Self {
        PollSchedule { first: Duration::from_millis(500), factor: 1.5, max: Duration::from_secs(10) }
    }
}

impl PollSchedule {
    /// The delays between polls (endless; the operation timeout ends the wait).
    pub fn delays(&self) -> impl Iterator<Item = Duration> + use<> {
        let (max, factor) = (self.max, if self.factor.is_finite() && self.factor >= 1.0 { self.factor } else { 1.0 });
        std::iter::successors(Some(self.first.min(max)), move |d| Some(d.mul_f64(factor).min(max)))
    }
}

/// Everything the REST client needs except the password.
#[derive(Debug, Clone, PartialEq)]
pub struct RestOptions {
    /// Base URLs (`https://10.0.10.11:29009`), one per server, in the order to try them.
    pub endpoints: Vec<String>,
    /// OS user for HTTP Basic auth.
    pub user: String,
    /// Where the password came from (for auth-failure messages), e.g. "environment variable X".
    pub password_source: String,
    /// Certificate checking.
    pub tls: ApiTls,
    /// Longest wait for one HTTP request to one server.
    pub request_timeout: Duration,
    /// Longest wait for one operation to finish.
    pub operation_timeout: Duration,
    /// Poll schedule while an operation runs.
    pub poll: PollSchedule,
    /// The server each endpoint belongs to, in the same order, when the URLs give one per server
    /// in the order of `cluster.server`; empty otherwise. NEC's backup/restore pre- and
    /// post-processing name no server in their body (see VENDOR.md): they are sent only to the
    /// server's own endpoint, so without this mapping they go through the commands instead.
    pub servers: Vec<ServerName>,
}

impl RestOptions {
    /// The options the desired state's `cluster.api` asks for (default poll schedule).
    pub fn from_spec(api: &ApiSpec) -> Self {
        RestOptions {
            endpoints: api.urls.clone(),
            user: api.user.clone(),
            password_source: api.password.to_string(),
            tls: api.tls.clone(),
            request_timeout: Duration::from_secs(u64::from(api.request_timeout_s)),
            operation_timeout: Duration::from_secs(u64::from(api.operation_timeout_s)),
            poll: PollSchedule::default(),
            servers: Vec::new(),
        }
    }

    /// These options with each endpoint belonging to the server at the same position of
    /// `servers`, when there is exactly one URL per server.
    #[must_use]
    pub fn with_servers(mut self, servers: &[ServerName]) -> Self {
        self.servers = if servers.len() == self.endpoints.len() { servers.to_vec() } else { Vec::new() };
        self
    }
}

impl RestCluster {
    /// The status an operation left, read by a GET once the operation was seen done (in the same
    /// port call). A failed read answers nothing: the operation did finish, and the next pass
    /// reads the status itself.
    async fn left(&self) -> Left {
        match self.snapshot(Fetch::All).await {
            Ok(s) => Left::status(status_from(&s)),
            Err(e) => {
                tracing::debug!(error = %e, "reading the status after an operation failed; the next pass reads it");
                Left::default()
            }
        }
    }
}

fn status_from(s: &Snapshot) -> ClusterStatus {
    let mut out = ClusterStatus::default();
    for sv in &s.servers {
        if let Ok(name) = ServerName::parse(&sv.name) {
            out.servers.insert(name, sv.running());
        }
    }
    for g in &s.groups {
        if let Ok(name) = GroupName::parse(&g.name) {
            out.groups.insert(name, placement(&g.status, &g.current));
        }
    }
    for r in &s.resources {
        if let Ok(name) = ResourceName::parse(&r.name) {
            out.resources.insert(name, placement(&r.status, &r.current));
        }
    }
    out
}

#[async_trait::async_trait]
impl Cluster for RestCluster {
    async fn status(&self) -> PortResult<ClusterStatus> {
        Ok(status_from(&self.snapshot(Fetch::All).await?))
    }

    async fn start_group(&self, group: &GroupName, server: &ServerName) -> PortResult<Left> {
        let pre = self.snapshot(Fetch::All).await?;
        precheck_start_group(&pre, group, server)?;
        self.post(&format!("/groups/{group}/start"), Some(server)).await?;
        let what = format!("the start of group {group} on {server}");
        let stale = !pre.group_failures(group).is_empty();
        self.wait(&what, Fetch::Group(group), stale, |s| progress_group(s, group, Some(server), Goal::Start)).await?;
        Ok(self.left().await)
    }

    async fn stop_group(&self, group: &GroupName) -> PortResult<Left> {
        let pre = self.snapshot(Fetch::All).await?;
        precheck_stop_group(&pre, group)?;
        self.post(&format!("/groups/{group}/stop"), None).await?;
        let stale = !pre.group_failures(group).is_empty();
        self.wait(&format!("the stop of group {group}"), Fetch::Group(group), stale, |s| {
            progress_group(s, group, None, Goal::Stop)
        })
        .await?;
        Ok(self.left().await)
    }

    async fn move_group(&self, group: &GroupName, target: &ServerName) -> PortResult<Left> {
        let pre = self.snapshot(Fetch::All).await?;
        precheck_move_group(&pre, group, target)?;
        self.post(&format!("/groups/{group}/move"), Some(target)).await?;
        let what = format!("the move of group {group} to {target}");
        let stale = !pre.group_failures(group).is_empty();
        self.wait(&what, Fetch::Group(group), stale, |s| progress_group(s, group, Some(target), Goal::Move)).await?;
        Ok(self.left().await)
    }

    async fn start_resource(&self, resource: &ResourceName, server: &ServerName) -> PortResult<Left> {
        let pre = self.snapshot(Fetch::All).await?;
        precheck_start_resource(&pre, resource, server)?;
        self.post(&format!("/resources/{resource}/start"), Some(server)).await?;
        let what = format!("the start of resource {resource} on {server}");
        let stale = resource_failed(&pre, resource);
        self.wait(&what, Fetch::Resource(resource), stale, |s| progress_resource(s, resource, Some(server))).await?;
        Ok(self.left().await)
    }

    async fn stop_resource(&self, resource: &ResourceName) -> PortResult<Left> {
        let pre = self.snapshot(Fetch::All).await?;
        precheck_stop_resource(&pre, resource)?;
        self.post(&format!("/resources/{resource}/stop"), None).await?;
        let what = format!("the stop of resource {resource}");
        let stale = resource_failed(&pre, resource);
        self.wait(&what, Fetch::Resource(resource), stale, |s| progress_resource(s, resource, None)).await?;
        Ok(self.left().await)
    }

    async fn shutdown_server(&self, server: &ServerName) -> PortResult<Left> {
        precheck_shutdown(&self.snapshot(Fetch::All).await?, server)?;
        self.post(&format!("/servers/{server}/shutdown"), None).await?;
        self.wait(&format!("the shutdown of {server}"), Fetch::Server(server), false, |s| progress_shutdown(s, server))
            .await?;
        Ok(self.left().await)
    }

    /// The API takes one operation per POST and has no request that waits for one to finish
    /// before starting another (the paths of the module doc), so a shutdown and a start are two
    /// requests whatever the client does: the planner keeps them two steps.
    fn can_leave_then_start(&self) -> bool {
        false
    }

    async fn leave_then_start(&self, leaving: &ServerName, start: &Start) -> PortResult<Left> {
        Err(not_supported(&format!("shutting {leaving} down and starting {start} in one request")))
    }

    async fn mirror_status(&self, resource: &ResourceName) -> PortResult<MirrorStatus> {
        Err(not_supported(&format!("the mirror status of {resource}")))
    }

    async fn vendor(&self, server: &ServerName, call: &VendorCall) -> PortResult<()> {
        self.run_vendor(server, call).await
    }

    async fn config(&self) -> PortResult<ClusterConfig> {
        Err(not_supported("reading the cluster configuration"))
    }

    async fn apply_config(&self, _changes: &[ConfigChange]) -> PortResult<Left> {
        Err(not_supported("changing the cluster configuration"))
    }

    /// The API answers and shows every server as a running member (the API has nothing to say
    /// about commands, configuration or disks: a [`super::hybrid::HybridCluster`] adds those).
    async fn preflight(
        &self,
        _request: &crate::ports::cluster::PreflightRequest,
    ) -> PortResult<Vec<crate::ports::cluster::Check>> {
        use crate::ports::cluster::Check;
        let status = match self.status().await {
            Ok(st) => st,
            Err(e) => {
                return Ok(vec![Check::fail(
                    "REST API",
                    None,
                    e.to_string(),
                    "check cluster.api (URLs, credentials) and that the API service runs on the servers",
                )]);
            }
        };
        let mut checks = vec![Check::pass("REST API", None, "answers")];
        for (server, member) in &status.servers {
            checks.push(if *member {
                Check::pass("cluster member (REST)", Some(server), "running member")
            } else {
                Check::fail(
                    "cluster member (REST)",
                    Some(server),
                    "not a running member",
                    "start the server's cluster service (both servers must be running members), then retry",
                )
            });
        }
        Ok(checks)
    }
}

/// The REST body of `call`: its options as booleans under their command-line names
/// (EXPRESSCLUSTER/clpaic); none for a plain call.
pub(super) fn vendor_body(call: &VendorCall) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    let flag = |b: &mut serde_json::Map<String, serde_json::Value>, k: &str| {
        b.insert(k.to_owned(), serde_json::Value::Bool(true));
    };
    if call.only {
        flag(&mut body, if call.phase == VendorPhase::Pre { "only-shutdown" } else { "only-reboot" });
    }
    if call.skip_copy {
        flag(&mut body, "skip-copy");
    }
    serde_json::Value::Object(body)
}

pub(super) fn not_supported(what: &str) -> PortError {
    ClpCode::NotSupportedByRestApi.error(format!(
            "{what} has no CLUSTERPRO REST API endpoint: use the REST client inside a HybridCluster with the command-based adapter"
        ))
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::progress::Progress;
    use super::wire::{GroupInfo, ResourceInfo, ServerInfo};
    use super::*;
    use crate::ports::ErrorClass;
    use crate::ports::cluster::{ObjectState, Placement};

    fn snap(json: &str) -> Snapshot {
        #[derive(Deserialize)]
        struct All {
            servers: Vec<ServerInfo>,
            groups: Vec<GroupInfo>,
            resources: Vec<ResourceInfo>,
        }
        let a: All = serde_json::from_str(json).expect("test json");
        Snapshot { servers: a.servers, groups: a.groups, resources: a.resources }
    }

    fn n<T>(r: Result<T, crate::ids::IdError>) -> T {
        r.expect("test name")
    }

    const ONLINE_ON_1: &str = r#"{
        "servers": [{"name": "server1", "status": "Online"}, {"name": "server2", "status": "Online"}],
        "groups": [{"name": "failover", "status": "Online", "current": "server1"}],
        "resources": [
            {"name": "md", "type": "md", "status": "Online", "current": "server1", "group": "failover"},
            {"name": "script", "type": "script", "status": "Online", "current": "server1", "group": "failover"}
        ]}"#;

    #[test]
    fn poll_schedule_grows_by_half_and_is_capped() {
        let p = PollSchedule { first: Duration::from_millis(100), factor: 1.5, max: Duration::from_millis(300) };
        let d: Vec<u128> = p.delays().take(5).map(|d| d.as_millis()).collect();
        assert_eq!(d, [100, 150, 225, 300, 300]);
    }

    #[test]
    fn status_words_and_current_none() {
        let s = snap(
            r#"{"servers": [{"name": "server1", "status": "Online"}, {"name": "server2", "status": "Caution"},
                           {"name": "server3", "status": "Offline"}, {"name": "server4", "status": "Suspend"}],
                "groups": [{"name": "g1", "status": "Offline", "current": "None"},
                           {"name": "g2", "status": "Online Pending", "current": "server1"},
                           {"name": "g3", "status": "Offline Failure", "current": "server2"},
                           {"name": "g4", "status": "Normal", "current": ""}],
                "resources": [{"name": "r1", "status": "Online Failure", "current": "server2", "group": "g1"},
                              {"name": "r2", "status": "Error", "current": "None", "group": "g1"}]}"#,
        );
        let st = status_from(&s);
        let running: Vec<bool> = st.servers.values().copied().collect();
        assert_eq!(running, [true, true, false, false]);
        assert_eq!(st.groups[&n(GroupName::parse("g1"))], Placement { state: ObjectState::Offline, current: None });
        assert_eq!(st.groups[&n(GroupName::parse("g2"))].state, ObjectState::OnlinePending);
        assert_eq!(st.groups[&n(GroupName::parse("g3"))].state, ObjectState::OfflineFailure);
        assert_eq!(st.groups[&n(GroupName::parse("g4"))], Placement { state: ObjectState::Unknown, current: None });
        assert_eq!(st.resources[&n(ResourceName::parse("r1"))].current, Some(n(ServerName::parse("server2"))));
        assert_eq!(st.resources[&n(ResourceName::parse("r2"))].state, ObjectState::Unknown);
    }

    #[test]
    fn prechecks_use_the_simulators_codes() {
        let s = snap(ONLINE_ON_1);
        let (g, s1, s2) =
            (n(GroupName::parse("failover")), n(ServerName::parse("server1")), n(ServerName::parse("server2")));
        let code = |r: PortResult<()>| r.map_err(|e| (e.code, e.class)).err();
        assert_eq!(
            code(precheck_start_group(&s, &g, &s1)),
            Some(("GroupAlreadyStarted".into(), ErrorClass::AlreadyDone))
        );
        assert_eq!(code(precheck_start_group(&s, &g, &s2)), Some(("GroupOnline".into(), ErrorClass::NeedsHuman)));
        let other = n(GroupName::parse("other"));
        assert_eq!(code(precheck_stop_group(&s, &other)), Some(("GroupNotFound".into(), ErrorClass::NeedsHuman)));
        assert_eq!(code(precheck_move_group(&s, &g, &s2)), None);
        assert_eq!(
            code(precheck_move_group(&s, &g, &s1)),
            Some(("GroupAlreadyStarted".into(), ErrorClass::AlreadyDone))
        );
        assert_eq!(code(precheck_shutdown(&s, &s1)), Some(("GroupOnline".into(), ErrorClass::NeedsHuman)));
        assert_eq!(code(precheck_shutdown(&s, &s2)), None);
        let md = n(ResourceName::parse("md"));
        assert_eq!(
            code(precheck_start_resource(&s, &md, &s1)),
            Some(("ResourceAlreadyStarted".into(), ErrorClass::AlreadyDone))
        );
        let busy = snap(&ONLINE_ON_1.replacen(
            r#""status": "Online", "current": "server1", "group""#,
            r#""status": "Offline Pending", "current": "server1", "group""#,
            1,
        ));
        assert_eq!(code(precheck_stop_resource(&busy, &md)), Some(("GroupBusy".into(), ErrorClass::Retryable)));
        let ghost = n(ServerName::parse("server9"));
        assert_eq!(code(precheck_start_group(&s, &g, &ghost)), Some(("ServerNotFound".into(), ErrorClass::NeedsHuman)));
    }

    #[test]
    fn progress_reports_failure_only_once_nothing_is_pending() {
        let (g, s1) = (n(GroupName::parse("failover")), n(ServerName::parse("server1")));
        let failing = snap(
            &ONLINE_ON_1
                .replace("\"Online\", \"current\": \"server1\"", "\"Online Failure\", \"current\": \"server1\""),
        );
        match progress_group(&failing, &g, Some(&s1), Goal::Start) {
            Progress::Failed(e) => {
                assert_eq!((e.code.as_str(), e.class), ("GroupStartFailed", ErrorClass::NeedsHuman));
                assert!(e.message.contains("resource md Online Failure on server1"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(progress_group(&snap(ONLINE_ON_1), &g, Some(&s1), Goal::Start), Progress::Done));
        assert!(matches!(progress_group(&snap(ONLINE_ON_1), &g, None, Goal::Stop), Progress::Running(_, false)));
    }
}
