//! The CLUSTERPRO REST adapter against a fake CLUSTERPRO REST server on loopback.
//!
//! The fake speaks HTTP/1.1 (optionally over TLS with the test CA of `tests/fixtures/tls/`), checks
//! HTTP Basic auth, and answers with the real envelope (`result: {code, message}` beside the data,
//! arrays even for one name). It is backed by the simulated cluster: a POST starts the simulated
//! operation in the background and answers as soon as the simulator accepted (or refused) it, and
//! the GETs show the simulator's state — `Online Pending` while a start runs, `Online Failure` when
//! it fails. Each fake node can be switched to answer 5xx, to hang, or to accept POSTs and do
//! nothing, to show failover and timeouts.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mirrorctl::adapters::clusterpro::hybrid::HybridCluster;
use mirrorctl::adapters::clusterpro::rest::{
    API_AUTH_FAILED, API_TLS_FAILURE, API_UNREACHABLE, NOT_SUPPORTED, OPERATION_REFUSED, OPERATION_TIMED_OUT,
    PollSchedule, RestCluster, RestOptions,
};
use mirrorctl::adapters::secret::Password;
use mirrorctl::ids::{GroupName, ResourceName, ServerName};
use mirrorctl::ports::cluster::{Cluster, ConfigChange, ObjectState};
use mirrorctl::ports::{ErrorClass, PortError};
use mirrorctl::sim::{Fault, Scenario, SimCluster, SimWorld};
use mirrorctl::spec::ApiTls;
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

const USER: &str = "clpadmin";
const PASSWORD: &str = "correct horse";
/// Model time runs this many times faster than real time: a group start (8 s) takes ~0.4 s, long
/// enough for the polls (every 10–100 ms) to see it pending.
const SPEED: f64 = 20.0;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
}

fn group() -> GroupName {
    GroupName::parse("failover").expect("group")
}
fn server(n: &str) -> ServerName {
    ServerName::parse(n).expect("server")
}
fn resource(n: &str) -> ResourceName {
    ResourceName::parse(n).expect("resource")
}

// --- the fake server ----------------------------------------------------------------------------

/// How a fake node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Mode {
    /// Serves the simulated cluster.
    Normal = 0,
    /// Answers every request with HTTP 503 and an envelope.
    ServerError = 1,
    /// Reads the request and never answers.
    Hang = 2,
    /// GETs as normal; POSTs are answered `code 0` and nothing happens.
    Stuck = 3,
}

/// The simulated cluster behind every fake node.
struct Backend {
    world: Arc<SimWorld>,
    cluster: SimCluster,
    scenario: Scenario,
    /// Every group/resource status word the GETs served, in order (to show the polls saw
    /// intermediate states).
    served_states: Mutex<Vec<String>>,
}

struct FakeNode {
    port: u16,
    /// The scenario's server this node is the API of (by position).
    server: Option<ServerName>,
    /// The outcome of the last `/mirrors/…` action on this node: (result code, message).
    vendor: Mutex<Option<(i64, String)>>,
    mode: AtomicU8,
    /// Requests this node answered (any status).
    served: AtomicUsize,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeNode {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeNode {
    fn set_mode(&self, m: Mode) {
        self.mode.store(m as u8, Ordering::SeqCst);
    }
    fn mode(&self) -> Mode {
        match self.mode.load(Ordering::SeqCst) {
            1 => Mode::ServerError,
            2 => Mode::Hang,
            3 => Mode::Stuck,
            _ => Mode::Normal,
        }
    }
}

struct Fake {
    backend: Arc<Backend>,
    nodes: Vec<Arc<FakeNode>>,
    tls: bool,
}

fn tls_acceptor() -> TlsAcceptor {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(fixture("server.pem"))
        .expect("server.pem")
        .collect::<Result<_, _>>()
        .expect("server cert");
    let key = PrivateKeyDer::from_pem_file(fixture("server.key")).expect("server.key");
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("server config");
    TlsAcceptor::from(Arc::new(config))
}

impl Fake {
    /// `n` fake nodes on free loopback ports, all backed by one simulated Windows cluster.
    async fn start(n: usize, tls: bool) -> Fake {
        let scenario = Scenario::windows_runbook();
        let world = SimWorld::new(scenario.clone(), 11, SPEED);
        let backend = Arc::new(Backend {
            cluster: SimCluster::new(Arc::clone(&world)),
            world,
            scenario,
            served_states: Mutex::new(Vec::new()),
        });
        let acceptor = tls.then(tls_acceptor);
        let mut nodes = Vec::new();
        for i in 0..n {
            let server = backend.scenario.servers.get(i).map(|s| s.name.clone());
            let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
            let port = listener.local_addr().expect("addr").port();
            let node = Arc::new_cyclic(|weak: &std::sync::Weak<FakeNode>| {
                let (weak, backend, acceptor) = (weak.clone(), Arc::clone(&backend), acceptor.clone());
                let task = tokio::spawn(async move {
                    loop {
                        let Ok((tcp, _)) = listener.accept().await else { return };
                        let (Some(node), backend, acceptor) = (weak.upgrade(), Arc::clone(&backend), acceptor.clone())
                        else {
                            return;
                        };
                        tokio::spawn(async move {
                            match acceptor {
                                Some(a) => {
                                    if let Ok(stream) = a.accept(tcp).await {
                                        serve(stream, &node, &backend).await;
                                    }
                                }
                                None => serve(tcp, &node, &backend).await,
                            }
                        });
                    }
                });
                FakeNode {
                    port,
                    server,
                    vendor: Mutex::new(None),
                    mode: AtomicU8::new(Mode::Normal as u8),
                    served: AtomicUsize::new(0),
                    task,
                }
            });
            nodes.push(node);
        }
        Fake { backend, nodes, tls }
    }

    fn url(&self, i: usize) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        format!("{scheme}://127.0.0.1:{}", self.nodes[i].port)
    }

    fn sim(&self) -> &SimCluster {
        &self.backend.cluster
    }

    fn served_states(&self) -> Vec<String> {
        self.backend.served_states.lock().expect("states").clone()
    }
}

/// Options for a client of `urls`: fast polls, generous timeouts (a test never waits for them
/// unless it is about them).
fn options(urls: Vec<String>, tls: ApiTls) -> RestOptions {
    RestOptions {
        endpoints: urls,
        user: USER.to_owned(),
        password_source: "environment variable CLP_API_PASSWORD".to_owned(),
        tls,
        request_timeout: Duration::from_secs(5),
        operation_timeout: Duration::from_mins(1),
        poll: PollSchedule { first: Duration::from_millis(10), factor: 1.5, max: Duration::from_millis(100) },
        servers: Vec::new(),
    }
}

fn client(urls: Vec<String>) -> RestCluster {
    RestCluster::new(options(urls, ApiTls::System), Password::new(PASSWORD)).expect("client")
}

fn base64(input: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [chunk[0], chunk.get(1).copied().unwrap_or(0), chunk.get(2).copied().unwrap_or(0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(A[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    body: Vec<u8>,
}

async fn read_request<S: AsyncRead + Unpin>(stream: &mut S) -> Option<Request> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split_whitespace();
    let (method, path) = (first.next()?.to_owned(), first.next()?.to_owned());
    let mut length = 0usize;
    let mut authorization = None;
    for line in lines {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().ok()?;
            } else if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_owned());
            }
        }
    }
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    Some(Request { method, path, authorization, body })
}

async fn respond<S: AsyncWrite + Unpin>(stream: &mut S, status: u16, body: &Value) {
    let text = body.to_string();
    let reason = match status {
        200 => "OK",
        401 => "Unauthorized",
        404 => "Not Found",
        _ => "Service Unavailable",
    };
    let head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        text.len()
    );
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(text.as_bytes()).await;
    let _ = stream.shutdown().await;
}

fn envelope(code: i64, message: &str) -> Value {
    json!({ "result": { "code": code, "message": message } })
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, node: &FakeNode, backend: &Backend) {
    let Some(req) = read_request(&mut stream).await else { return };
    node.served.fetch_add(1, Ordering::SeqCst);
    let mode = node.mode();
    if mode == Mode::Hang {
        tokio::time::sleep(Duration::from_mins(10)).await;
        return;
    }
    if mode == Mode::ServerError {
        respond(&mut stream, 503, &envelope(1, "the cluster service is not running")).await;
        return;
    }
    let expected = format!("Basic {}", base64(format!("{USER}:{PASSWORD}").as_bytes()));
    if req.authorization.as_deref() != Some(expected.as_str()) {
        respond(&mut stream, 401, &envelope(401, "Authentication failed")).await;
        return;
    }
    let Some(path) = req.path.strip_prefix("/api/v1") else {
        respond(&mut stream, 404, &envelope(404, "no such path")).await;
        return;
    };
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (status, body) = match req.method.as_str() {
        "GET" if parts.first() == Some(&"mirrors") => {
            // The status of this node's own last pre- or post-processing; it runs synchronously here.
            let (code, message) = node.vendor.lock().expect("vendor").clone().unwrap_or((0, String::new()));
            let status = if code == 0 { "completed" } else { "failed" };
            (200, json!({ "result": { "code": code, "message": message }, "detail": { "status": status } }))
        }
        "POST" if parts.first() == Some(&"mirrors") => {
            let outcome = vendor_action(backend, node, &parts, &req.body).await;
            *node.vendor.lock().expect("vendor") = Some(outcome);
            (200, envelope(0, ""))
        }
        "GET" => get(backend, &parts).await,
        "POST" if mode == Mode::Stuck => (200, envelope(0, "")),
        "POST" => post(backend, &parts, &req.body).await,
        _ => (404, envelope(404, "method not allowed")),
    };
    respond(&mut stream, status, &body).await;
}

fn word(s: ObjectState) -> &'static str {
    match s {
        ObjectState::Online => "Online",
        ObjectState::Offline => "Offline",
        ObjectState::OnlinePending => "Online Pending",
        ObjectState::OfflinePending => "Offline Pending",
        ObjectState::OnlineFailure => "Online Failure",
        ObjectState::OfflineFailure => "Offline Failure",
        ObjectState::Unknown => "Unknown",
    }
}

fn current(c: Option<&ServerName>) -> String {
    c.map_or_else(|| "None".to_owned(), ToString::to_string)
}

/// The GETs: `/servers`, `/groups`, `/resources`, each optionally `/{name}`, from the simulator.
async fn get(backend: &Backend, parts: &[&str]) -> (u16, Value) {
    let st = match backend.cluster.status().await {
        Ok(s) => s,
        Err(e) => return (200, envelope(1, &e.to_string())),
    };
    let sc = &backend.scenario;
    let kind = |r: &ResourceName| if *r == sc.md { "md".to_owned() } else { sc.business_kind.clone() };
    let (key, mut items): (&str, Vec<Value>) = match parts[0] {
        "servers" => (
            "servers",
            st.servers
                .iter()
                .map(|(n, up)| json!({ "name": n.as_str(), "status": if *up { "Online" } else { "Offline" } }))
                .collect(),
        ),
        "groups" => (
            "groups",
            st.groups
                .iter()
                .map(|(n, p)| {
                    let names: Vec<&str> = st.resources.keys().map(ResourceName::as_str).collect();
                    json!({ "name": n.as_str(), "status": word(p.state), "current": current(p.current.as_ref()), "resources": names })
                })
                .collect(),
        ),
        "resources" => (
            "resources",
            st.resources
                .iter()
                .map(|(n, p)| {
                    json!({ "name": n.as_str(), "type": kind(n), "status": word(p.state), "current": current(p.current.as_ref()), "group": sc.group.as_str() })
                })
                .collect(),
        ),
        _ => return (404, envelope(404, "no such object type")),
    };
    if let Some(name) = parts.get(1) {
        items.retain(|i| i["name"] == *name);
        if items.is_empty() {
            return (200, envelope(5, &format!("{name} does not exist")));
        }
    }
    {
        let mut served = backend.served_states.lock().expect("states");
        served.extend(items.iter().filter_map(|i| i["status"].as_str().map(str::to_owned)));
    }
    let mut out = envelope(0, "");
    out[key] = Value::Array(items);
    (200, out)
}

/// The POSTs: start the simulated operation in the background; answer once the simulator shows it
/// running (accepted) or it has already ended (its refusal becomes a non-zero result code).
async fn post(backend: &Backend, parts: &[&str], body: &[u8]) -> (u16, Value) {
    let target = serde_json::from_slice::<Value>(body)
        .ok()
        .and_then(|v| v["target"].as_str().map(str::to_owned))
        .and_then(|t| ServerName::parse(&t).ok());
    let cluster = backend.cluster.clone();
    let name = parts.first().zip(parts.get(1));
    let op: std::pin::Pin<Box<dyn Future<Output = Result<(), PortError>> + Send>> = match (name, parts.get(2)) {
        (Some((&"groups", g)), Some(&"start")) => {
            let (g, t) = (GroupName::parse(g).expect("group"), target.expect("target"));
            Box::pin(async move { cluster.start_group(&g, &t).await.map(|_| ()) })
        }
        (Some((&"groups", g)), Some(&"stop")) => {
            let g = GroupName::parse(g).expect("group");
            Box::pin(async move { cluster.stop_group(&g).await.map(|_| ()) })
        }
        (Some((&"groups", g)), Some(&"move")) => {
            let (g, t) = (GroupName::parse(g).expect("group"), target.expect("target"));
            Box::pin(async move { cluster.move_group(&g, &t).await.map(|_| ()) })
        }
        (Some((&"resources", r)), Some(&"start")) => {
            let (r, t) = (ResourceName::parse(r).expect("resource"), target.expect("target"));
            Box::pin(async move { cluster.start_resource(&r, &t).await.map(|_| ()) })
        }
        (Some((&"resources", r)), Some(&"stop")) => {
            let r = ResourceName::parse(r).expect("resource");
            Box::pin(async move { cluster.stop_resource(&r).await.map(|_| ()) })
        }
        (Some((&"servers", s)), Some(&"shutdown")) => {
            let s = ServerName::parse(s).expect("server");
            Box::pin(async move { cluster.shutdown_server(&s).await.map(|_| ()) })
        }
        _ => return (404, envelope(404, "no such operation")),
    };
    let task = tokio::spawn(op);
    loop {
        if task.is_finished() {
            return match task.await.expect("operation task") {
                Ok(()) => (200, envelope(0, "")),
                Err(e) => (200, envelope(3, &e.to_string())),
            };
        }
        let busy = backend.cluster.status().await.is_ok_and(|st| {
            st.groups
                .values()
                .chain(st.resources.values())
                .any(|p| matches!(p.state, ObjectState::OnlinePending | ObjectState::OfflinePending))
        });
        if busy {
            return (200, envelope(0, ""));
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// `POST /mirrors/{backup,restore}/{preaction,postaction}` on `node`: the simulator's
/// `clpbackup`/`clprestore` on the node's own server, options from the body's booleans.
async fn vendor_action(backend: &Backend, node: &FakeNode, parts: &[&str], body: &[u8]) -> (i64, String) {
    use mirrorctl::ports::cluster::{VendorCall, VendorOp, VendorPhase};
    let flags = serde_json::from_slice::<Value>(body).unwrap_or(Value::Null);
    let flag = |k: &str| flags[k].as_bool().unwrap_or(false);
    let op = if parts.get(1) == Some(&"backup") { VendorOp::Backup } else { VendorOp::Restore };
    let phase = if parts.get(2) == Some(&"preaction") { VendorPhase::Pre } else { VendorPhase::Post };
    let call =
        VendorCall { op, phase, skip_copy: flag("skip-copy"), only: flag("only-shutdown") || flag("only-reboot") };
    let server = node.server.clone().expect("a node of a scenario server");
    match backend.cluster.vendor(&server, &call).await {
        Ok(()) => (0, String::new()),
        Err(e) => (3, e.to_string()),
    }
}

fn code_class<T>(r: Result<T, PortError>) -> Option<(String, ErrorClass)> {
    r.err().map(|e| (e.code, e.class))
}

// --- the tests ----------------------------------------------------------------------------------

#[tokio::test]
async fn status_matches_the_simulated_cluster() {
    let fake = Fake::start(1, false).await;
    let rest = client(vec![fake.url(0)]);
    let got = rest.status().await.expect("status");
    let want = fake.sim().status().await.expect("sim status");
    assert_eq!(got, want);
    assert_eq!(got.groups[&group()].state, ObjectState::Online);
    assert_eq!(got.groups[&group()].current, Some(server("server1")));
    assert!(got.servers.values().all(|up| *up), "{got:?}");
}

/// Each operation runs to its end and answers with the status it left (a GET once done).
#[tokio::test]
async fn every_operation_runs_to_completion_through_the_pending_states() {
    let fake = Fake::start(1, false).await;
    let rest = client(vec![fake.url(0)]);
    let (g, s1, s2, md, script) = (group(), server("server1"), server("server2"), resource("md"), resource("script"));

    let left = rest.stop_group(&g).await.expect("stop group");
    let st = fake.sim().status().await.expect("status");
    assert_eq!(left.status.as_ref(), Some(&st), "the operation answers with the status it left");
    assert_eq!(st.groups[&g].state, ObjectState::Offline);

    let left = rest.start_group(&g, &s1).await.expect("start group");
    let st = fake.sim().status().await.expect("status");
    assert_eq!(left.status.as_ref(), Some(&st), "the operation answers with the status it left");
    assert_eq!((st.groups[&g].state, st.groups[&g].current.clone()), (ObjectState::Online, Some(s1.clone())));

    let left = rest.move_group(&g, &s2).await.expect("move group");
    let st = fake.sim().status().await.expect("status");
    assert_eq!(left.status.as_ref(), Some(&st), "the operation answers with the status it left");
    assert_eq!((st.groups[&g].state, st.groups[&g].current.clone()), (ObjectState::Online, Some(s2.clone())));

    let left = rest.stop_resource(&md).await.expect("stop md");
    let st = fake.sim().status().await.expect("status");
    assert_eq!(left.status.as_ref(), Some(&st), "the operation answers with the status it left");
    assert_eq!(st.resources[&md].state, ObjectState::Offline);
    assert_eq!(st.resources[&script].state, ObjectState::Offline, "dependents stop with md");

    rest.start_resource(&md, &s2).await.expect("start md");
    let left = rest.start_resource(&script, &s2).await.expect("start script");
    let st = fake.sim().status().await.expect("status");
    assert_eq!(left.status.as_ref(), Some(&st), "the operation answers with the status it left");
    assert_eq!(st.resources[&md].current, Some(s2.clone()));
    assert_eq!(st.resources[&script].state, ObjectState::Online);

    let left = rest.shutdown_server(&s1).await.expect("shutdown server1");
    let st = fake.sim().status().await.expect("status");
    assert_eq!(left.status.as_ref(), Some(&st), "the operation answers with the status it left");
    assert!(!st.servers[&s1], "server1 left the cluster");

    // The polls saw the operations in progress, not only their end.
    let served = fake.served_states();
    for w in ["Online Pending", "Offline Pending"] {
        assert!(served.iter().any(|s| s == w), "no {w} among the served states {served:?}");
    }
}

#[tokio::test]
async fn refusals_carry_the_simulators_codes_and_classes() {
    let fake = Fake::start(1, false).await;
    let rest = client(vec![fake.url(0)]);
    let (g, s1, s2) = (group(), server("server1"), server("server2"));
    // Each pair: what the REST adapter says, what the simulated cluster itself says, same situation.
    let cases = [
        (code_class(rest.start_group(&g, &s1).await), code_class(fake.sim().start_group(&g, &s1).await)),
        (code_class(rest.start_group(&g, &s2).await), code_class(fake.sim().start_group(&g, &s2).await)),
        (code_class(rest.shutdown_server(&s1).await), code_class(fake.sim().shutdown_server(&s1).await)),
        (
            code_class(rest.start_resource(&resource("md"), &s1).await),
            code_class(fake.sim().start_resource(&resource("md"), &s1).await),
        ),
        (
            code_class(rest.stop_group(&GroupName::parse("nope").expect("name")).await),
            code_class(fake.sim().stop_group(&GroupName::parse("nope").expect("name")).await),
        ),
    ];
    for (got, want) in &cases {
        assert!(want.is_some(), "the simulator refuses each case: {cases:?}");
        assert_eq!(got, want);
    }
    fake.sim().stop_group(&g).await.expect("stop");
    let got = code_class(rest.stop_group(&g).await);
    assert_eq!(got, code_class(fake.sim().stop_group(&g).await));
    assert_eq!(got, Some(("GroupAlreadyStopped".to_owned(), ErrorClass::AlreadyDone)));
}

#[tokio::test]
async fn an_operation_that_ends_in_online_failure_is_an_error_of_the_simulators_class() {
    let fake = Fake::start(1, false).await;
    let rest = client(vec![fake.url(0)]);
    let (g, s2) = (group(), server("server2"));
    rest.stop_group(&g).await.expect("stop group");
    // server2 leaves the cluster (its OS shuts down): a start there fails after it was accepted.
    fake.sim().shutdown_server(&s2).await.expect("shutdown server2 in the simulator");
    let e = rest.start_group(&g, &s2).await.expect_err("the start fails");
    assert_eq!((e.code.as_str(), e.class), ("GroupStartFailed", ErrorClass::NeedsHuman), "{e}");
    assert!(e.message.contains("Online Failure"), "{e}");
    let st = fake.sim().status().await.expect("status");
    assert_eq!(st.groups[&g].state, ObjectState::OnlineFailure);
    assert!(fake.served_states().iter().any(|s| s == "Online Pending"), "the start was seen running first");

    // The simulator's own port says the same for the same situation, in a twin world.
    let twin = SimWorld::new(Scenario::windows_runbook(), 11, SPEED);
    let sim = SimCluster::new(twin);
    sim.stop_group(&g).await.expect("stop");
    sim.shutdown_server(&s2).await.expect("shutdown");
    let want = sim.start_group(&g, &s2).await.expect_err("sim start fails");
    assert_eq!((want.code, want.class), (e.code, e.class));
}

#[tokio::test]
async fn a_post_the_cluster_refuses_is_a_retryable_operation_refused() {
    let fake = Fake::start(1, false).await;
    let rest = client(vec![fake.url(0)]);
    rest.stop_group(&group()).await.expect("stop group");
    fake.backend.world.inject(Fault::fail_next("clp:start_group", "GroupBusy", 1)).expect("inject a refusal");
    let e = rest.start_group(&group(), &server("server1")).await.expect_err("refused");
    assert_eq!((e.code.as_str(), e.class), (OPERATION_REFUSED, ErrorClass::Retryable), "{e}");
    assert!(e.message.contains("result code 3") && e.message.contains("GroupBusy"), "{e}");
    rest.start_group(&group(), &server("server1")).await.expect("the next try succeeds");
}

#[tokio::test]
async fn auth_failure_names_the_user_and_the_password_source() {
    let fake = Fake::start(1, false).await;
    let rest = RestCluster::new(options(vec![fake.url(0)], ApiTls::System), Password::new("wrong")).expect("client");
    let e = rest.status().await.expect_err("401");
    assert_eq!((e.code.as_str(), e.class), (API_AUTH_FAILED, ErrorClass::NeedsHuman));
    assert!(e.message.contains("\"clpadmin\"") && e.message.contains("HTTP 401"), "{e}");
    assert!(e.message.contains("environment variable CLP_API_PASSWORD"), "{e}");
    assert!(!e.message.contains("wrong"), "the password is never shown: {e}");
}

fn closed_port_url() -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = l.local_addr().expect("addr").port();
    drop(l);
    format!("http://127.0.0.1:{port}")
}

#[tokio::test]
async fn a_node_that_is_down_or_answers_5xx_is_skipped_for_the_next() {
    let fake = Fake::start(2, false).await;
    // Node down (connection refused), then a healthy node.
    let rest = client(vec![closed_port_url(), fake.url(1)]);
    rest.status().await.expect("status from the second node");
    rest.stop_group(&group()).await.expect("an operation through the second node");
    assert!(fake.nodes[1].served.load(Ordering::SeqCst) > 2);

    // The first node answers 503: the second one serves everything, and is preferred afterwards.
    fake.nodes[0].set_mode(Mode::ServerError);
    let rest = client(vec![fake.url(0), fake.url(1)]);
    rest.start_group(&group(), &server("server1")).await.expect("start through the second node");
    let first = fake.nodes[0].served.load(Ordering::SeqCst);
    assert_eq!(first, 1, "after one 5xx the working node is asked first");
    let st = rest.status().await.expect("status");
    assert_eq!(st.groups[&group()].state, ObjectState::Online);

    // Every node failing: a retryable error listing each one.
    fake.nodes[1].set_mode(Mode::ServerError);
    let e = rest.status().await.expect_err("nobody answers");
    assert_eq!((e.code.as_str(), e.class), (API_UNREACHABLE, ErrorClass::Retryable));
    assert!(e.message.contains(&fake.url(0)) && e.message.contains(&fake.url(1)) && e.message.contains("503"), "{e}");
}

#[tokio::test]
async fn a_node_that_hangs_times_out_and_the_next_answers() {
    let fake = Fake::start(2, false).await;
    fake.nodes[0].set_mode(Mode::Hang);
    let mut o = options(vec![fake.url(0), fake.url(1)], ApiTls::System);
    o.request_timeout = Duration::from_secs(1);
    let rest = RestCluster::new(o, Password::new(PASSWORD)).expect("client");
    let st = rest.status().await.expect("status from the second node");
    assert_eq!(st.groups[&group()].current, Some(server("server1")));
    assert_eq!(fake.nodes[0].served.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn an_operation_that_never_finishes_times_out_retryably() {
    let fake = Fake::start(1, false).await;
    fake.nodes[0].set_mode(Mode::Stuck);
    let mut o = options(vec![fake.url(0)], ApiTls::System);
    o.operation_timeout = Duration::from_millis(400);
    let rest = RestCluster::new(o, Password::new(PASSWORD)).expect("client");
    let e = rest.stop_group(&group()).await.expect_err("never offline");
    assert_eq!((e.code.as_str(), e.class), (OPERATION_TIMED_OUT, ErrorClass::Retryable), "{e}");
    assert!(e.message.contains("group failover Online on server1"), "says what it last saw: {e}");
}

#[tokio::test]
async fn tls_with_the_clusters_ca_is_accepted() {
    let fake = Fake::start(1, true).await;
    let rest =
        RestCluster::new(options(vec![fake.url(0)], ApiTls::CaBundle(fixture("ca.pem"))), Password::new(PASSWORD))
            .expect("client");
    let st = rest.status().await.expect("status over TLS");
    assert_eq!(st.groups[&group()].state, ObjectState::Online);
    rest.stop_group(&group()).await.expect("an operation over TLS");
}

#[tokio::test]
async fn tls_with_an_unknown_ca_is_refused() {
    let fake = Fake::start(1, true).await;
    for tls in [ApiTls::CaBundle(fixture("other-ca.pem")), ApiTls::System] {
        let rest = RestCluster::new(options(vec![fake.url(0)], tls.clone()), Password::new(PASSWORD)).expect("client");
        let e = rest.status().await.expect_err("untrusted certificate");
        assert_eq!((e.code.as_str(), e.class), (API_TLS_FAILURE, ErrorClass::NeedsHuman), "{tls:?}: {e}");
        assert!(e.message.contains("ca_bundle"), "says what to do: {e}");
    }
    assert_eq!(fake.nodes[0].served.load(Ordering::SeqCst), 0, "no request got through");
}

#[tokio::test]
async fn a_ca_bundle_that_is_missing_or_not_pem_is_a_config_error() {
    let e = RestCluster::new(
        options(vec!["https://127.0.0.1:1".into()], ApiTls::CaBundle("/nonexistent/ca.pem".into())),
        Password::new(PASSWORD),
    )
    .expect_err("missing file");
    assert!(e.message.contains("/nonexistent/ca.pem") && e.message.contains("ca_bundle"), "{e}");
    let dir = tempfile::tempdir().expect("dir");
    let junk = dir.path().join("ca.pem");
    std::fs::write(&junk, "not a certificate").expect("write");
    let e =
        RestCluster::new(options(vec!["https://127.0.0.1:1".into()], ApiTls::CaBundle(junk)), Password::new(PASSWORD))
            .expect_err("not PEM");
    assert!(e.message.contains("no PEM certificate"), "{e}");
}

/// A `MakeWriter` collecting log output.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[tokio::test]
async fn insecure_accepts_any_certificate_and_warns_each_time() {
    let fake = Fake::start(1, true).await;
    let log = Captured::default();
    let subscriber = tracing_subscriber::fmt().with_writer(log.clone()).with_ansi(false).finish();
    let build = || RestCluster::new(options(vec![fake.url(0)], ApiTls::Insecure), Password::new(PASSWORD));
    let (a, b) = tracing::subscriber::with_default(subscriber, || (build(), build()));
    let text = String::from_utf8(log.0.lock().expect("log").clone()).expect("utf8");
    assert_eq!(text.matches("TLS certificate checks are OFF").count(), 2, "one warning per client: {text}");
    assert!(text.contains("WARN"), "{text}");
    let st = a.expect("client").status().await.expect("status over unchecked TLS");
    assert_eq!(st.groups[&group()].state, ObjectState::Online);
    b.expect("second client").status().await.expect("status");
}

#[tokio::test]
async fn hybrid_uses_rest_for_operations_and_the_inner_cluster_for_mirror_and_config() {
    let fake = Fake::start(1, false).await;
    let rest = Arc::new(client(vec![fake.url(0)]));
    // REST alone cannot read mirrors or the configuration.
    let e = rest.config().await.expect_err("no endpoint");
    assert_eq!((e.code.as_str(), e.class), (NOT_SUPPORTED, ErrorClass::NeedsHuman));
    let e = rest.mirror_status(&resource("md")).await.expect_err("no endpoint");
    assert_eq!(e.code, NOT_SUPPORTED);

    // Nor shut a server down and start something once it has left in one request: it says so
    // (the planner keeps two steps) and refuses without a request.
    let leave = mirrorctl::ports::cluster::Start::Group { group: group(), server: server("server1") };
    assert!(!rest.can_leave_then_start());
    let served = fake.nodes[0].served.load(Ordering::SeqCst);
    let e = rest.leave_then_start(&server("server2"), &leave).await.expect_err("no compound request");
    assert_eq!((e.code.as_str(), e.class), (NOT_SUPPORTED, ErrorClass::NeedsHuman));
    assert_eq!(fake.nodes[0].served.load(Ordering::SeqCst), served, "nothing asked of the API");

    let inner: Arc<dyn Cluster> = Arc::new(fake.sim().clone());
    assert!(inner.can_leave_then_start());
    let hybrid = HybridCluster::new(rest, Arc::clone(&inner));
    assert!(!hybrid.can_leave_then_start(), "operations go through the API, which cannot");
    assert_eq!(
        hybrid.mirror_status(&resource("md")).await.expect("mirror"),
        inner.mirror_status(&resource("md")).await.expect("sim mirror")
    );
    assert!(hybrid.mirror_status(&resource("md")).await.expect("mirror").healthy());
    assert_eq!(hybrid.config().await.expect("config"), inner.config().await.expect("sim config"));

    hybrid.stop_group(&group()).await.expect("stop through REST");
    let posts_before = fake.nodes[0].served.load(Ordering::SeqCst);
    hybrid
        .apply_config(&[ConfigChange::SetGroupAutoStart { group: group(), auto: false }])
        .await
        .expect("apply through the inner cluster");
    assert_eq!(fake.nodes[0].served.load(Ordering::SeqCst), posts_before, "no REST request for the configuration");
    assert!(!inner.config().await.expect("config").group_auto_start[&group()]);
    hybrid.start_group(&group(), &server("server2")).await.expect("start through REST");
    assert_eq!(hybrid.status().await.expect("status").groups[&group()].current, Some(server("server2")));
}

/// NEC's pre- and post-processing over REST: sent to the server's own endpoint (the URLs are one
/// per server, in order), with the options as booleans, then polled at `/mirrors/…/status`; a
/// refusal comes back as the step's failure; without the URL → server mapping the API declines
/// and the hybrid port runs the command instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_calls_go_to_the_servers_own_endpoint() {
    use mirrorctl::ports::cluster::{VendorCall, VendorOp, VendorPhase};
    let fake = Fake::start(2, false).await;
    let urls = vec![fake.url(0), fake.url(1)];
    let rest = RestCluster::new(
        options(urls.clone(), ApiTls::System).with_servers(&[server("server1"), server("server2")]),
        Password::new(PASSWORD),
    )
    .expect("client");
    let call = |op, phase| VendorCall { op, phase, skip_copy: false, only: false };
    // The group runs on server1: clprestore --pre is refused, and the refusal is the step's error.
    let e = rest.vendor(&server("server2"), &call(VendorOp::Restore, VendorPhase::Pre)).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("VendorPreFailed", ErrorClass::NeedsHuman), "{e}");
    assert!(e.message.contains("GroupOnline"), "the cluster's own reason: {e}");
    // clpbackup --pre on the standby, through the standby's endpoint.
    let before = fake.nodes[1].served.load(Ordering::SeqCst);
    rest.vendor(&server("server2"), &call(VendorOp::Backup, VendorPhase::Pre)).await.expect("backup pre");
    assert!(fake.nodes[1].served.load(Ordering::SeqCst) >= before + 2, "POST and a status poll on server2's API");
    let st = fake.sim().status().await.expect("status");
    assert_eq!(st.servers.get(&server("server2")), Some(&false), "server2 left the cluster: {st:?}");
    // Again: it is down already.
    let e = rest.vendor(&server("server2"), &call(VendorOp::Backup, VendorPhase::Pre)).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::AlreadyDone, "{e}");
    // Without one URL per server the API declines (NotSupported), for the hybrid to use commands.
    let e = client(vec![fake.url(0)])
        .vendor(&server("server1"), &call(VendorOp::Backup, VendorPhase::Post))
        .await
        .unwrap_err();
    assert_eq!(e.code, mirrorctl::adapters::clusterpro::rest::NOT_SUPPORTED, "{e}");
}
