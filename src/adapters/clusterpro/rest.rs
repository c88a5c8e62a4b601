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
//!   next observation sees where it went).
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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde::Deserialize;

use super::parse::{NO_CURRENT_SERVER, RUNNING_SERVER_STATES};
use crate::adapters::secret::{Password, SecretResolver};
use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::cluster::errors::ClpCode;
use crate::ports::cluster::{
    Cluster, ClusterConfig, ClusterStatus, ConfigChange, MirrorStatus, ObjectState, Placement, VendorCall, VendorPhase,
};
use crate::ports::{ErrorClass, PortError, PortResult};
use crate::spec::{ApiSpec, ApiTls};

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

/// `result` of every answer.
#[derive(Debug, Deserialize)]
struct ApiResult {
    code: i64,
    #[serde(default)]
    message: String,
}

/// An answer: `result` and the data keys beside it.
#[derive(Debug, Deserialize)]
struct Envelope {
    result: ApiResult,
    #[serde(default)]
    servers: Option<Vec<ServerInfo>>,
    #[serde(default)]
    groups: Option<Vec<GroupInfo>>,
    #[serde(default)]
    resources: Option<Vec<ResourceInfo>>,
    /// `/mirrors/{backup,restore}/status`: `detail.status` is `running` until the last pre- or
    /// post-processing ends, then its completion message (EXPRESSCLUSTER/clpaic).
    #[serde(default)]
    detail: Option<VendorDetail>,
}

#[derive(Debug, Deserialize)]
struct VendorDetail {
    #[serde(default)]
    status: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ServerInfo {
    name: String,
    #[serde(default)]
    status: String,
}

#[derive(Debug, Clone, Deserialize)]
struct GroupInfo {
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    current: String,
}

#[derive(Debug, Clone, Deserialize)]
struct ResourceInfo {
    name: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    current: String,
    #[serde(default)]
    group: String,
}

impl ServerInfo {
    fn running(&self) -> bool {
        RUNNING_SERVER_STATES.iter().any(|s| s.eq_ignore_ascii_case(self.status.trim()))
    }
}

/// `current` as a server: `None` for the API's `"None"`, an empty string, or a name that is not a
/// valid server name.
fn current_server(current: &str) -> Option<ServerName> {
    let c = current.trim();
    if c.is_empty() || c.eq_ignore_ascii_case(NO_CURRENT_SERVER) { None } else { ServerName::parse(c).ok() }
}

fn placement(status: &str, current: &str) -> Placement {
    Placement { state: ObjectState::parse(status), current: current_server(current) }
}

fn pending(state: ObjectState) -> bool {
    matches!(state, ObjectState::OnlinePending | ObjectState::OfflinePending)
}

/// What the GETs of one check returned.
#[derive(Debug, Default)]
struct Snapshot {
    servers: Vec<ServerInfo>,
    groups: Vec<GroupInfo>,
    resources: Vec<ResourceInfo>,
}

impl Snapshot {
    fn server(&self, name: &ServerName) -> Option<&ServerInfo> {
        self.servers.iter().find(|s| s.name == name.as_str())
    }
    fn group(&self, name: &GroupName) -> Option<&GroupInfo> {
        self.groups.iter().find(|g| g.name == name.as_str())
    }
    fn resource(&self, name: &ResourceName) -> Option<&ResourceInfo> {
        self.resources.iter().find(|r| r.name == name.as_str())
    }
    /// The group's own placement followed by its resources' placements.
    fn group_parts(&self, name: &GroupName) -> Vec<(String, Placement)> {
        let mut parts: Vec<(String, Placement)> = self
            .group(name)
            .map(|g| (format!("group {}", g.name), placement(&g.status, &g.current)))
            .into_iter()
            .collect();
        parts.extend(
            self.resources
                .iter()
                .filter(|r| r.group == name.as_str())
                .map(|r| (format!("resource {}", r.name), placement(&r.status, &r.current))),
        );
        parts
    }
    fn group_online_on(&self, name: &GroupName, server: &ServerName) -> bool {
        let parts = self.group_parts(name);
        !parts.is_empty()
            && parts.iter().all(|(_, p)| p.state == ObjectState::Online && p.current.as_ref() == Some(server))
    }
    fn group_offline(&self, name: &GroupName) -> bool {
        self.group_parts(name).iter().all(|(_, p)| p.state == ObjectState::Offline)
    }
    fn group_busy(&self, name: &GroupName) -> bool {
        self.group_parts(name).iter().any(|(_, p)| pending(p.state))
    }
    /// The parts in a failure state, described.
    fn group_failures(&self, name: &GroupName) -> Vec<String> {
        self.group_parts(name)
            .into_iter()
            .filter(|(_, p)| matches!(p.state, ObjectState::OnlineFailure | ObjectState::OfflineFailure))
            .map(|(what, p)| describe(&what, &p))
            .collect()
    }
    fn describe_group(&self, name: &GroupName) -> String {
        let parts: Vec<String> = self.group_parts(name).iter().map(|(w, p)| describe(w, p)).collect();
        if parts.is_empty() { format!("group {name} not shown") } else { parts.join(", ") }
    }
}

fn describe(what: &str, p: &Placement) -> String {
    let state = match p.state {
        ObjectState::Online => "Online",
        ObjectState::Offline => "Offline",
        ObjectState::OnlinePending => "Online Pending",
        ObjectState::OfflinePending => "Offline Pending",
        ObjectState::OnlineFailure => "Online Failure",
        ObjectState::OfflineFailure => "Offline Failure",
        ObjectState::Unknown => "in an unknown state",
    };
    match &p.current {
        Some(s) => format!("{what} {state} on {s}"),
        None => format!("{what} {state}"),
    }
}

// --- state checks before an operation (same codes and classes as the simulator) ---------------

fn check_group(s: &Snapshot, group: &GroupName) -> PortResult<()> {
    if s.group(group).is_some() { Ok(()) } else { Err(ClpCode::GroupNotFound.error(format!("no group named {group}"))) }
}

fn check_server(s: &Snapshot, server: &ServerName) -> PortResult<()> {
    if s.server(server).is_some() {
        Ok(())
    } else {
        Err(ClpCode::ServerNotFound.error(format!("no server named {server}")))
    }
}

fn check_idle(s: &Snapshot, group: &GroupName) -> PortResult<()> {
    if s.group_busy(group) {
        Err(ClpCode::GroupBusy.error(format!("another operation is in progress: {}", s.describe_group(group))))
    } else {
        Ok(())
    }
}

fn precheck_start_group(s: &Snapshot, group: &GroupName, server: &ServerName) -> PortResult<()> {
    check_group(s, group)?;
    check_server(s, server)?;
    check_idle(s, group)?;
    if s.group_online_on(group, server) {
        return Err(ClpCode::GroupAlreadyStarted.error(format!("{group} is already online on {server}")));
    }
    if let Some((_, p)) = s
        .group_parts(group)
        .into_iter()
        .find(|(_, p)| p.state == ObjectState::Online && p.current.as_ref() != Some(server))
    {
        let on = p.current.map(|c| c.to_string()).unwrap_or_default();
        return Err(ClpCode::GroupOnline.error(format!("{group} is online on {on}")));
    }
    Ok(())
}

fn precheck_stop_group(s: &Snapshot, group: &GroupName) -> PortResult<()> {
    check_group(s, group)?;
    check_idle(s, group)?;
    if s.group_offline(group) {
        return Err(ClpCode::GroupAlreadyStopped.error(format!("{group} is already offline")));
    }
    Ok(())
}

fn precheck_move_group(s: &Snapshot, group: &GroupName, target: &ServerName) -> PortResult<()> {
    check_group(s, group)?;
    check_server(s, target)?;
    check_idle(s, group)?;
    if s.group_online_on(group, target) {
        return Err(ClpCode::GroupAlreadyStarted.error(format!("{group} is already online on {target}")));
    }
    let online_elsewhere = s
        .servers
        .iter()
        .filter_map(|sv| ServerName::parse(&sv.name).ok())
        .any(|sv| sv != *target && s.group_online_on(group, &sv));
    if !online_elsewhere {
        return Err(ClpCode::GroupOffline.error(format!("{group} is not online: nothing to move")));
    }
    Ok(())
}

fn resource_and_group<'a>(s: &'a Snapshot, resource: &ResourceName) -> PortResult<(&'a ResourceInfo, GroupName)> {
    let r =
        s.resource(resource).ok_or_else(|| ClpCode::ResourceNotFound.error(format!("no resource named {resource}")))?;
    let group = GroupName::parse(&r.group).map_err(|e| {
        ClpCode::ApiInvalidResponse.error(format!("resource {resource} names group {:?}: {}", r.group, e.0))
    })?;
    Ok((r, group))
}

fn precheck_start_resource(s: &Snapshot, resource: &ResourceName, server: &ServerName) -> PortResult<()> {
    let (r, group) = resource_and_group(s, resource)?;
    check_server(s, server)?;
    check_idle(s, &group)?;
    let p = placement(&r.status, &r.current);
    if p.state == ObjectState::Online && p.current.as_ref() == Some(server) {
        return Err(ClpCode::ResourceAlreadyStarted.error(format!("{resource} is already online on {server}")));
    }
    if p.state == ObjectState::Online {
        return Err(ClpCode::ResourceOnline
            .error(format!("{resource} or a resource it depends on is online on another server")));
    }
    Ok(())
}

fn precheck_stop_resource(s: &Snapshot, resource: &ResourceName) -> PortResult<()> {
    let (r, group) = resource_and_group(s, resource)?;
    check_idle(s, &group)?;
    if ObjectState::parse(&r.status) == ObjectState::Offline {
        return Err(ClpCode::ResourceAlreadyStopped.error(format!("{resource} is already offline")));
    }
    Ok(())
}

fn precheck_shutdown(s: &Snapshot, server: &ServerName) -> PortResult<()> {
    check_server(s, server)?;
    if s.server(server).is_some_and(|sv| !sv.running()) {
        return Err(ClpCode::ServerAlreadyDown.error(format!("{server} is already down")));
    }
    let here = s.groups.iter().find(|g| {
        let p = placement(&g.status, &g.current);
        p.state != ObjectState::Offline && p.current.as_ref() == Some(server)
    });
    if let Some(g) = here {
        return Err(
            ClpCode::GroupOnline.error(format!("group {} is online on {server}; move or stop it first", g.name))
        );
    }
    Ok(())
}

// --- completion checks while polling ------------------------------------------------------------

/// Where a polled operation stands.
#[derive(Debug)]
enum Progress {
    Done,
    /// Not there yet: what is seen, and whether an operation is visibly in progress (a pending
    /// state).
    Running(String, bool),
    Failed(PortError),
}

fn failed_group(s: &Snapshot, group: &GroupName, code: ClpCode) -> Option<Progress> {
    let failures = s.group_failures(group);
    (!failures.is_empty()).then(|| {
        Progress::Failed(code.error(format!("the operation on {group} ended in failure: {}", failures.join(", "))))
    })
}

fn progress_group_online(s: &Snapshot, group: &GroupName, server: &ServerName, code: ClpCode) -> Progress {
    if s.group_online_on(group, server) {
        return Progress::Done;
    }
    if !s.group_busy(group)
        && let Some(f) = failed_group(s, group, code)
    {
        return f;
    }
    Progress::Running(s.describe_group(group), s.group_busy(group))
}

fn progress_group_offline(s: &Snapshot, group: &GroupName) -> Progress {
    if s.group_offline(group) {
        return Progress::Done;
    }
    if !s.group_busy(group)
        && let Some(f) = failed_group(s, group, ClpCode::GroupStopFailed)
    {
        return f;
    }
    Progress::Running(s.describe_group(group), s.group_busy(group))
}

fn progress_resource(s: &Snapshot, resource: &ResourceName, want: Option<&ServerName>) -> Progress {
    let Some(r) = s.resource(resource) else {
        return Progress::Running(format!("resource {resource} not shown"), false);
    };
    let p = placement(&r.status, &r.current);
    let seen = describe(&format!("resource {resource}"), &p);
    match (want, p.state) {
        (Some(server), ObjectState::Online) if p.current.as_ref() == Some(server) => Progress::Done,
        (None, ObjectState::Offline) => Progress::Done,
        (Some(_), ObjectState::OnlineFailure | ObjectState::OfflineFailure) => Progress::Failed(
            ClpCode::ResourceStartFailed.error(format!("the start of {resource} ended in failure: {seen}")),
        ),
        (None, ObjectState::OnlineFailure | ObjectState::OfflineFailure) => Progress::Failed(
            ClpCode::ResourceStopFailed.error(format!("the stop of {resource} ended in failure: {seen}")),
        ),
        _ => Progress::Running(seen, pending(p.state)),
    }
}

fn resource_failed(s: &Snapshot, resource: &ResourceName) -> bool {
    s.resource(resource).is_some_and(|r| {
        matches!(ObjectState::parse(&r.status), ObjectState::OnlineFailure | ObjectState::OfflineFailure)
    })
}

fn progress_shutdown(s: &Snapshot, server: &ServerName) -> Progress {
    match s.server(server) {
        Some(sv) if sv.running() => Progress::Running(format!("server {server} is {}", sv.status), false),
        _ => Progress::Done,
    }
}

// --- the client ---------------------------------------------------------------------------------

/// Why one server did not give a usable answer.
enum Attempt {
    /// Try the next server (connection, timeout, 5xx, a GET refused).
    Next { reason: String, tls: bool },
    /// Stop here (auth failure, a POST refused, a malformed answer).
    Final(PortError),
}

/// Which GETs a check needs.
#[derive(Debug, Clone, Copy)]
enum Fetch<'a> {
    /// `/servers`, `/groups`, `/resources`.
    All,
    /// `/groups/{g}` and `/resources` (to see the group's resources).
    Group(&'a GroupName),
    /// `/resources/{r}`.
    Resource(&'a ResourceName),
    /// `/servers/{s}`.
    Server(&'a ServerName),
}

/// The CLUSTERPRO port over the REST API. See the module docs.
#[derive(Debug)]
pub struct RestCluster {
    http: reqwest::Client,
    endpoints: Vec<String>,
    user: String,
    password: Password,
    password_source: String,
    preferred: AtomicUsize,
    operation_timeout: Duration,
    poll: PollSchedule,
    servers: Vec<ServerName>,
}

impl RestCluster {
    /// A client for `options` authenticating with `password`. Reads the CA bundle when one is
    /// configured; with [`ApiTls::Insecure`] logs a warning (every time a client is built).
    pub fn new(options: RestOptions, password: Password) -> PortResult<Self> {
        let fail = |msg: String| ClpCode::ApiClientConfig.error(msg);
        if options.endpoints.is_empty() {
            return Err(fail("no CLUSTERPRO API URL is configured: set cluster.api.url or urls".to_owned()));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .connect_timeout(options.request_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy();
        match &options.tls {
            ApiTls::System => {}
            ApiTls::CaBundle(path) => {
                let pem = std::fs::read(path).map_err(|e| {
                    fail(format!(
                        "cannot read the CA bundle {} ({e}): check cluster.api.ca_bundle and that mirrorctl may read the file",
                        path.display()
                    ))
                })?;
                let certs = reqwest::Certificate::from_pem_bundle(&pem)
                    .ok()
                    .filter(|c| !c.is_empty())
                    .ok_or_else(|| {
                        fail(format!(
                            "the CA bundle {} holds no PEM certificate: give the PEM file of the CA that signed the CLUSTERPRO API's certificate",
                            path.display()
                        ))
                    })?;
                builder = builder.tls_certs_only(certs);
            }
            ApiTls::Insecure => {
                tracing::warn!(
                    target: "mirrorctl::clusterpro",
                    endpoints = ?options.endpoints,
                    "TLS certificate checks are OFF for the CLUSTERPRO API (cluster.api.insecure = true): anyone on the network path can impersonate the cluster and read the API password; set cluster.api.ca_bundle instead"
                );
                builder = builder.tls_danger_accept_invalid_certs(true);
            }
        }
        let http = builder.build().map_err(|e| fail(format!("cannot build the HTTP client: {e}")))?;
        let endpoints = options.endpoints.iter().map(|u| format!("{}{API_PREFIX}", u.trim_end_matches('/'))).collect();
        Ok(RestCluster {
            http,
            endpoints,
            user: options.user,
            password,
            password_source: options.password_source,
            preferred: AtomicUsize::new(0),
            operation_timeout: options.operation_timeout,
            poll: options.poll,
            servers: options.servers,
        })
    }

    /// The client the desired state's `cluster.api` describes: resolves the password with
    /// `secrets`, then builds the client (default poll schedule).
    pub async fn connect(api: &ApiSpec, servers: &[ServerName], secrets: &SecretResolver) -> PortResult<Self> {
        let password = secrets.resolve(&api.password).await?;
        RestCluster::new(RestOptions::from_spec(api).with_servers(servers), password)
    }

    /// NEC's pre- or post-processing through `server`'s own endpoint: POST the action, then poll
    /// its status there until it is no longer `running`. A pre shuts the server down and a post
    /// reboots it, so its endpoint may stop answering mid-way: for a pre that is done once another
    /// server's API shows it out of the cluster; for a post, once the reboot has taken the endpoint
    /// away. A failed completion (`result.code` not 0) is `VendorPreFailed` / `VendorPostFailed`.
    async fn run_vendor(&self, server: &ServerName, call: &VendorCall) -> PortResult<()> {
        let Some(index) = self.servers.iter().position(|s| s == server) else {
            return Err(not_supported(&format!(
                "`{call}` on {server} (cluster.api.urls do not give one address per server, in the order of cluster.server)"
            )));
        };
        let pre = call.phase == VendorPhase::Pre;
        let snap = self.snapshot(Fetch::All).await?;
        check_server(&snap, server)?;
        let member = snap.server(server).is_some_and(ServerInfo::running);
        if pre && !call.only && !member {
            return Err(ClpCode::ServerAlreadyDown.error(format!("{server} is not a running cluster member")));
        }
        let failed = |msg: String| {
            let code = if pre { ClpCode::VendorPreFailed } else { ClpCode::VendorPostFailed };
            code.error(format!("`{call}` on {server}: {msg}"))
        };
        match self.attempt(index, &Method::POST, &call.rest_path(), Some(&vendor_body(call))).await {
            Ok(_) => {}
            Err(Attempt::Final(e)) => return Err(failed(e.message)),
            Err(Attempt::Next { reason, .. }) => {
                return Err(ClpCode::ApiUnreachable.error(format!("`{call}` on {server}: {reason}")));
            }
        }
        let deadline = tokio::time::Instant::now() + self.operation_timeout;
        for delay in self.poll.delays() {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            match self.attempt(index, &Method::GET, call.rest_status_path(), None).await {
                Ok(env) if env.detail.as_ref().is_some_and(|d| d.status == "running") => {}
                Ok(_) => return Ok(()),
                Err(Attempt::Next { reason, .. }) if reason.contains("result code") => return Err(failed(reason)),
                Err(Attempt::Final(e)) => return Err(failed(e.message)),
                // The endpoint went away with the OS.
                Err(Attempt::Next { .. }) if !pre => return Ok(()),
                Err(Attempt::Next { .. }) => {
                    if self
                        .snapshot(Fetch::Server(server))
                        .await
                        .is_ok_and(|s| !s.server(server).is_some_and(ServerInfo::running))
                    {
                        return Ok(());
                    }
                }
            }
        }
        Err(ClpCode::OperationTimedOut
            .error(format!("`{call}` on {server} did not finish within {} s", self.operation_timeout.as_secs())))
    }

    /// One request to one server.
    async fn attempt(
        &self,
        index: usize,
        method: &Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<Envelope, Attempt> {
        let url = format!("{}{path}", self.endpoints[index]);
        let mut req = self.http.request(method.clone(), &url).basic_auth(&self.user, Some(self.password.expose()));
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = match req.send().await {
            Ok(r) => r,
            Err(e) => {
                let chain = error_chain(&e);
                let tls = chain.to_ascii_lowercase().contains("certificate");
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "could not connect"
                } else {
                    "failed"
                };
                return Err(Attempt::Next { reason: format!("{method} {url} {what}: {chain}"), tls });
            }
        };
        let status = resp.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            return Err(Attempt::Final(ClpCode::ApiAuthFailed.error(format!(
                    "the CLUSTERPRO API at {url} refused user \"{}\" (HTTP {}): check that this OS user exists on the servers and may use the API, and the password in {}",
                    self.user,
                    status.as_u16(),
                    self.password_source
                ))));
        }
        let text = resp.text().await.unwrap_or_default();
        let envelope = serde_json::from_str::<Envelope>(&text);
        if status.is_server_error() {
            let why = envelope.map(|e| e.result.message).unwrap_or_default();
            return Err(Attempt::Next {
                reason: format!("{method} {url} answered HTTP {}: {why}", status.as_u16()),
                tls: false,
            });
        }
        if !status.is_success() {
            let why = envelope.map_or_else(|_| snippet(&text), |e| e.result.message);
            return Err(Attempt::Final(
                ClpCode::ApiRequestRejected.error(format!("{method} {url} answered HTTP {}: {why}", status.as_u16())),
            ));
        }
        let envelope = envelope.map_err(|e| {
            Attempt::Final(
                ClpCode::ApiInvalidResponse
                    .error(format!("{method} {url}: not a CLUSTERPRO API answer ({e}): {}", snippet(&text))),
            )
        })?;
        if envelope.result.code != 0 {
            let msg = format!("{method} {url}: result code {}: {}", envelope.result.code, envelope.result.message);
            return Err(if *method == Method::GET {
                Attempt::Next { reason: msg, tls: false }
            } else {
                Attempt::Final(ClpCode::OperationRefused.error(msg))
            });
        }
        Ok(envelope)
    }

    /// One request, trying each server in turn from the last one that answered.
    async fn request(&self, method: Method, path: &str, body: Option<&serde_json::Value>) -> PortResult<Envelope> {
        let n = self.endpoints.len();
        let start = self.preferred.load(Ordering::Relaxed) % n;
        let mut reasons = Vec::new();
        let mut all_tls = true;
        for i in 0..n {
            let index = (start + i) % n;
            match self.attempt(index, &method, path, body).await {
                Ok(envelope) => {
                    if index != start {
                        tracing::info!(target: "mirrorctl::clusterpro", endpoint = %self.endpoints[index], "CLUSTERPRO API answered from another server");
                    }
                    self.preferred.store(index, Ordering::Relaxed);
                    return Ok(envelope);
                }
                Err(Attempt::Final(e)) => return Err(e),
                Err(Attempt::Next { reason, tls }) => {
                    tracing::debug!(target: "mirrorctl::clusterpro", %reason, "CLUSTERPRO API server skipped");
                    all_tls &= tls;
                    reasons.push(reason);
                }
            }
        }
        if all_tls {
            Err(ClpCode::ApiTlsFailure.error(format!(
                    "no CLUSTERPRO API server passed the TLS check: {}; give cluster.api.ca_bundle = the PEM of the CA that signed the API's certificate",
                    reasons.join("; ")
                )))
        } else {
            Err(ClpCode::ApiUnreachable.error(format!("no CLUSTERPRO API server answered: {}", reasons.join("; "))))
        }
    }

    async fn get(&self, path: &str) -> PortResult<Envelope> {
        self.request(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, target: Option<&ServerName>) -> PortResult<()> {
        let body = target.map(|t| serde_json::json!({ "target": t.as_str() }));
        self.request(Method::POST, path, body.as_ref()).await.map(|_| ())
    }

    /// The `key` array of the answer to `GET path`.
    async fn list<T>(&self, path: &str, key: &str, pick: fn(Envelope) -> Option<Vec<T>>) -> PortResult<Vec<T>> {
        pick(self.get(path).await?)
            .ok_or_else(|| ClpCode::ApiInvalidResponse.error(format!("GET {path}: the answer has no `{key}` array")))
    }

    async fn snapshot(&self, fetch: Fetch<'_>) -> PortResult<Snapshot> {
        let servers = |e: Envelope| e.servers;
        let groups = |e: Envelope| e.groups;
        let resources = |e: Envelope| e.resources;
        let mut s = Snapshot::default();
        match fetch {
            Fetch::All => {
                s.servers = self.list("/servers", "servers", servers).await?;
                s.groups = self.list("/groups", "groups", groups).await?;
                s.resources = self.list("/resources", "resources", resources).await?;
            }
            Fetch::Group(g) => {
                s.groups = self.list(&format!("/groups/{g}"), "groups", groups).await?;
                s.resources = self.list("/resources", "resources", resources).await?;
            }
            Fetch::Resource(r) => s.resources = self.list(&format!("/resources/{r}"), "resources", resources).await?,
            Fetch::Server(name) => s.servers = self.list(&format!("/servers/{name}"), "servers", servers).await?,
        }
        Ok(s)
    }

    /// Polls `fetch` on the poll schedule until `judge` says done or failed, or the operation
    /// timeout passes. A transient failure of one poll (no server answered) is not fatal. With
    /// `stale_failure` (the object was already in a failure state before the POST) a failure
    /// counts only after the operation was seen in progress: until then it is the old one.
    async fn wait(
        &self,
        what: &str,
        fetch: Fetch<'_>,
        stale_failure: bool,
        judge: impl Fn(&Snapshot) -> Progress + Send,
    ) -> PortResult<()> {
        let deadline = tokio::time::Instant::now() + self.operation_timeout;
        let mut last = "no answer yet".to_owned();
        let mut seen_busy = false;
        for delay in self.poll.delays() {
            let now = tokio::time::Instant::now();
            if now >= deadline {
                break;
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            match self.snapshot(fetch).await {
                Ok(s) => match judge(&s) {
                    Progress::Done => return Ok(()),
                    Progress::Failed(e) if seen_busy || !stale_failure => return Err(e),
                    Progress::Failed(e) => last = e.message,
                    Progress::Running(seen, busy) => {
                        seen_busy |= busy;
                        last = seen;
                    }
                },
                Err(e) if e.class == ErrorClass::Retryable => last = e.to_string(),
                Err(e) => return Err(e),
            }
        }
        Err(ClpCode::OperationTimedOut.error(format!(
            "{what} did not finish within {} s (last seen: {last}); CLUSTERPRO may still complete it",
            self.operation_timeout.as_secs()
        )))
    }
}

/// The error and its sources, joined (reqwest hides the TLS reason in the chain).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !parts.iter().any(|p| p.contains(&t)) {
            parts.push(t);
        }
        cur = s.source();
    }
    parts.join(": ")
}

fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    if t.is_empty() { "(empty body)".to_owned() } else { t }
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

    async fn start_group(&self, group: &GroupName, server: &ServerName) -> PortResult<()> {
        let pre = self.snapshot(Fetch::All).await?;
        precheck_start_group(&pre, group, server)?;
        self.post(&format!("/groups/{group}/start"), Some(server)).await?;
        let what = format!("the start of group {group} on {server}");
        let stale = !pre.group_failures(group).is_empty();
        self.wait(&what, Fetch::Group(group), stale, |s| {
            progress_group_online(s, group, server, ClpCode::GroupStartFailed)
        })
        .await
    }

    async fn stop_group(&self, group: &GroupName) -> PortResult<()> {
        let pre = self.snapshot(Fetch::All).await?;
        precheck_stop_group(&pre, group)?;
        self.post(&format!("/groups/{group}/stop"), None).await?;
        let stale = !pre.group_failures(group).is_empty();
        self.wait(&format!("the stop of group {group}"), Fetch::Group(group), stale, |s| {
            progress_group_offline(s, group)
        })
        .await
    }

    async fn move_group(&self, group: &GroupName, target: &ServerName) -> PortResult<()> {
        let pre = self.snapshot(Fetch::All).await?;
        precheck_move_group(&pre, group, target)?;
        self.post(&format!("/groups/{group}/move"), Some(target)).await?;
        let what = format!("the move of group {group} to {target}");
        let stale = !pre.group_failures(group).is_empty();
        self.wait(&what, Fetch::Group(group), stale, |s| {
            progress_group_online(s, group, target, ClpCode::GroupMoveFailed)
        })
        .await
    }

    async fn start_resource(&self, resource: &ResourceName, server: &ServerName) -> PortResult<()> {
        let pre = self.snapshot(Fetch::All).await?;
        precheck_start_resource(&pre, resource, server)?;
        self.post(&format!("/resources/{resource}/start"), Some(server)).await?;
        let what = format!("the start of resource {resource} on {server}");
        let stale = resource_failed(&pre, resource);
        self.wait(&what, Fetch::Resource(resource), stale, |s| progress_resource(s, resource, Some(server))).await
    }

    async fn stop_resource(&self, resource: &ResourceName) -> PortResult<()> {
        let pre = self.snapshot(Fetch::All).await?;
        precheck_stop_resource(&pre, resource)?;
        self.post(&format!("/resources/{resource}/stop"), None).await?;
        let what = format!("the stop of resource {resource}");
        let stale = resource_failed(&pre, resource);
        self.wait(&what, Fetch::Resource(resource), stale, |s| progress_resource(s, resource, None)).await
    }

    async fn shutdown_server(&self, server: &ServerName) -> PortResult<()> {
        precheck_shutdown(&self.snapshot(Fetch::All).await?, server)?;
        self.post(&format!("/servers/{server}/shutdown"), None).await?;
        self.wait(&format!("the shutdown of {server}"), Fetch::Server(server), false, |s| progress_shutdown(s, server))
            .await
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

    async fn apply_config(&self, _changes: &[ConfigChange]) -> PortResult<()> {
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
fn vendor_body(call: &VendorCall) -> serde_json::Value {
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

fn not_supported(what: &str) -> PortError {
    ClpCode::NotSupportedByRestApi.error(format!(
            "{what} has no CLUSTERPRO REST API endpoint: use the REST client inside a HybridCluster with the command-based adapter"
        ))
}

#[cfg(test)]
mod tests {
    use super::*;

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
        match progress_group_online(&failing, &g, &s1, ClpCode::GroupStartFailed) {
            Progress::Failed(e) => {
                assert_eq!((e.code.as_str(), e.class), ("GroupStartFailed", ErrorClass::NeedsHuman));
                assert!(e.message.contains("resource md Online Failure on server1"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            progress_group_online(&snap(ONLINE_ON_1), &g, &s1, ClpCode::GroupStartFailed),
            Progress::Done
        ));
        assert!(matches!(progress_group_offline(&snap(ONLINE_ON_1), &g), Progress::Running(_, false)));
    }
}
