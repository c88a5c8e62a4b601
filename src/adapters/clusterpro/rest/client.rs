//! The client with failover: one base URL per server, tried in turn, the last that answered asked
//! first; GETs into a [`Snapshot`], POSTs checked against the envelope, and the polling of an
//! operation to completion (see the parent module's "How it talks").

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::{Method, StatusCode};

use super::progress::{Progress, check_server};
use super::wire::{Envelope, ServerInfo, Snapshot};
use super::{API_PREFIX, PollSchedule, RestOptions, not_supported, vendor_body};
use crate::adapters::secret::{Password, SecretResolver};
use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::cluster::errors::ClpCode;
use crate::ports::cluster::{VendorCall, VendorPhase};
use crate::ports::{ErrorClass, PortError, PortResult};
use crate::spec::{ApiSpec, ApiTls};

// --- the client ---------------------------------------------------------------------------------

/// Why one server did not give a usable answer.
pub(super) enum Attempt {
    /// Try the next server (connection, timeout, 5xx, a GET refused).
    Next { reason: String, tls: bool },
    /// Stop here (auth failure, a POST refused, a malformed answer).
    Final(PortError),
}

/// Which GETs a check needs.
#[derive(Debug, Clone, Copy)]
pub(super) enum Fetch<'a> {
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
    pub(super) async fn run_vendor(&self, server: &ServerName, call: &VendorCall) -> PortResult<()> {
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
    pub(super) async fn attempt(
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
    pub(super) async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> PortResult<Envelope> {
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

    pub(super) async fn get(&self, path: &str) -> PortResult<Envelope> {
        self.request(Method::GET, path, None).await
    }

    pub(super) async fn post(&self, path: &str, target: Option<&ServerName>) -> PortResult<()> {
        let body = target.map(|t| serde_json::json!({ "target": t.as_str() }));
        self.request(Method::POST, path, body.as_ref()).await.map(|_| ())
    }

    /// The `key` array of the answer to `GET path`.
    pub(super) async fn list<T>(
        &self,
        path: &str,
        key: &str,
        pick: fn(Envelope) -> Option<Vec<T>>,
    ) -> PortResult<Vec<T>> {
        pick(self.get(path).await?)
            .ok_or_else(|| ClpCode::ApiInvalidResponse.error(format!("GET {path}: the answer has no `{key}` array")))
    }

    pub(super) async fn snapshot(&self, fetch: Fetch<'_>) -> PortResult<Snapshot> {
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
    pub(super) async fn wait(
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
pub(super) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
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

pub(super) fn snippet(text: &str) -> String {
    let t: String = text.chars().take(200).collect();
    if t.is_empty() { "(empty body)".to_owned() } else { t }
}
