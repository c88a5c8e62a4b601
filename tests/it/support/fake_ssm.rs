//! A fake AWS Systems Manager endpoint for Run Command: a minimal HTTP/1.1 server on a free
//! loopback port speaking the real AWS JSON 1.1 protocol, that runs `AWS-RunShellScript` commands
//! with `sh` in a sandbox directory per instance.
//!
//! Why this module exists: the SSM transport, and every adapter above it (disk recipes, CLUSTERPRO
//! commands), must be tested against the wire format the SDK really speaks — `POST /` with
//! `X-Amz-Target: AmazonSSM.<Operation>`, `Content-Type: application/x-amz-json-1.1`, the real
//! field names, errors as `{"__type": …, "message": …}` — and against SSM's real behaviour, which
//! no emulator offers: an invocation that is not visible for the first poll(s) after the send
//! (`InvocationDoesNotExist`), then `Pending` for the next poll(s) — counted in polls rather than
//! time, so tests see every status whatever the machine's speed —, `InProgress` while the script
//! runs, `Success`/`Failed` with the exit code in
//! `ResponseCode`, standard output cut at 24,000 characters (standard error at 8,000), an unknown
//! instance refused with `InvalidInstanceId`, `Delayed` while the agent is offline, execution and
//! delivery timeouts, `CancelCommand` (`Cancelling` → `Cancelled`, the process group killed), and
//! throttling or other errors injected per operation. `SigV4` signatures are not checked.
//!
//! A command runs as `sh _script.sh` (its `commands` joined by line breaks) in its own directory
//! under the instance's sandbox, with a clean environment: `PATH` starts with the sandbox's `bin`
//! (fake tools go there), `HOME` is the sandbox, plus the variables set with
//! [`FakeSsm::set_env`]. Each command's shell leads its own process group, killed by its id on
//! cancel, timeout and drop. Only `AWS-RunShellScript` runs (the sandboxes are Linux);
//! `AWS-RunPowerShellScript` is refused with `UnsupportedPlatformType`, as SSM refuses a Windows
//! document for a Linux instance.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// Characters of standard output SSM returns.
pub const STDOUT_LIMIT: usize = 24_000;
/// Characters of standard error SSM returns.
pub const STDERR_LIMIT: usize = 8_000;
/// Largest total size of a command's parameters the fake accepts (the document limit, 64 KB; the
/// real limit on parameters is not published [U]).
pub const PARAMETERS_LIMIT: usize = 64 * 1024;

/// One request as the fake received it.
#[derive(Debug, Clone)]
pub struct Request {
    /// The operation (`SendCommand`, …), from `X-Amz-Target`.
    pub op: String,
    /// The JSON body.
    pub body: Value,
}

#[derive(Debug)]
struct Instance {
    dir: PathBuf,
    env: Vec<(String, String)>,
    agent_online: bool,
    forced: VecDeque<(String, String)>,
}

#[derive(Debug)]
struct Invocation {
    instance: String,
    document: String,
    comment: String,
    sent: Instant,
    delivery_timeout: Duration,
    status: String,
    details: String,
    response_code: i32,
    stdout: String,
    stderr: String,
    hidden: u32,
    pending: u32,
    started: Option<jiff::Timestamp>,
    ended: Option<jiff::Timestamp>,
    cancel: CancellationToken,
    pgid: Option<u32>,
}

impl Invocation {
    fn set(&mut self, status: &str, details: &str) {
        status.clone_into(&mut self.status);
        details.clone_into(&mut self.details);
    }

    fn terminal(&self) -> bool {
        matches!(self.status.as_str(), "Success" | "Failed" | "TimedOut" | "Cancelled")
    }
}

#[derive(Debug)]
struct Fault {
    op: String,
    times: u32,
    http: u16,
    kind: String,
    message: String,
}

#[derive(Debug, Default)]
struct State {
    instances: BTreeMap<String, Instance>,
    /// By (command id, instance id).
    invocations: BTreeMap<(String, String), Invocation>,
    faults: Vec<Fault>,
    requests: Vec<Request>,
    /// The ids of the commands accepted, in order.
    commands: Vec<String>,
    /// What each `GetCommandInvocation` answered: (command id, status or error type).
    served: Vec<(String, String)>,
    hidden_polls: u32,
    pending_polls: u32,
    next_id: u64,
}

type Shared = Arc<Mutex<State>>;

fn lock(s: &Shared) -> MutexGuard<'_, State> {
    s.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fake endpoint; stops its server and kills its commands' process groups on drop.
pub struct FakeSsm {
    port: u16,
    state: Shared,
    root: tempfile::TempDir,
    server: tokio::task::JoinHandle<()>,
}

impl FakeSsm {
    /// Starts the server on a free loopback port (on the current tokio runtime). Defaults: one
    /// hidden poll after each send, then one poll answered `Pending` before the command starts (a
    /// command nobody polls never starts).
    pub async fn start() -> FakeSsm {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind a free loopback port");
        let port = listener.local_addr().expect("local addr").port();
        let state: Shared = Arc::new(Mutex::new(State { hidden_polls: 1, pending_polls: 1, ..State::default() }));
        let accept_state = state.clone();
        let server = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(connection(stream, accept_state.clone()));
            }
        });
        FakeSsm { port, state, root: tempfile::tempdir().expect("sandbox root"), server }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Registers a managed instance with an empty sandbox (`<sandbox>/bin` exists); returns the
    /// sandbox directory.
    pub fn add_instance(&self, id: &str) -> PathBuf {
        let dir = self.root.path().join(id);
        std::fs::create_dir_all(dir.join("bin")).expect("sandbox bin");
        lock(&self.state).instances.insert(
            id.to_owned(),
            Instance { dir: dir.clone(), env: Vec::new(), agent_online: true, forced: VecDeque::new() },
        );
        dir
    }

    /// The sandbox of a registered instance.
    pub fn sandbox(&self, id: &str) -> PathBuf {
        lock(&self.state).instances.get(id).map(|i| i.dir.clone()).expect("a registered instance")
    }

    /// Sets an environment variable for the instance's commands.
    pub fn set_env(&self, id: &str, key: &str, value: &str) {
        let mut st = lock(&self.state);
        let inst = st.instances.get_mut(id).expect("a registered instance");
        inst.env.retain(|(k, _)| k != key);
        inst.env.push((key.to_owned(), value.to_owned()));
    }

    /// Whether the instance's agent answers: offline, new commands stay `Delayed`.
    pub fn set_agent_online(&self, id: &str, online: bool) {
        lock(&self.state).instances.get_mut(id).expect("a registered instance").agent_online = online;
    }

    /// The next command on the instance ends with `status`/`details` without running (how
    /// `Undeliverable` or `Terminated` look).
    pub fn force_next_outcome(&self, id: &str, status: &str, details: &str) {
        let mut st = lock(&self.state);
        let inst = st.instances.get_mut(id).expect("a registered instance");
        inst.forced.push_back((status.to_owned(), details.to_owned()));
    }

    /// How many `GetCommandInvocation` calls after a send answer `InvocationDoesNotExist`.
    pub fn set_hidden_polls(&self, n: u32) {
        lock(&self.state).hidden_polls = n;
    }

    /// How many visible polls answer `Pending` before a command starts.
    pub fn set_pending_polls(&self, n: u32) {
        lock(&self.state).pending_polls = n;
    }

    /// The next `times` calls of `op` fail with HTTP `http` and error `kind`.
    pub fn inject(&self, op: &str, times: u32, http: u16, kind: &str, message: &str) {
        lock(&self.state).faults.push(Fault {
            op: op.to_owned(),
            times,
            http,
            kind: kind.to_owned(),
            message: message.to_owned(),
        });
    }

    /// The next `times` calls of `op` are throttled (`ThrottlingException`, "Rate exceeded").
    pub fn throttle(&self, op: &str, times: u32) {
        self.inject(op, times, 400, "ThrottlingException", "Rate exceeded");
    }

    /// Every request received, in order.
    pub fn requests(&self) -> Vec<Request> {
        lock(&self.state).requests.clone()
    }

    /// How many requests of `op` were received.
    pub fn count(&self, op: &str) -> usize {
        lock(&self.state).requests.iter().filter(|r| r.op == op).count()
    }

    /// What `GetCommandInvocation` answered for `command_id`, in order (a status, or an error type).
    pub fn served(&self, command_id: &str) -> Vec<String> {
        lock(&self.state).served.iter().filter(|(c, _)| c == command_id).map(|(_, s)| s.clone()).collect()
    }

    /// The ids of the commands accepted, in order.
    pub fn command_ids(&self) -> Vec<String> {
        lock(&self.state).commands.clone()
    }

    /// The status of a command's invocation now.
    pub fn status(&self, command_id: &str) -> Option<(String, String)> {
        lock(&self.state)
            .invocations
            .iter()
            .find(|((c, _), _)| c == command_id)
            .map(|(_, inv)| (inv.status.clone(), inv.details.clone()))
    }

    /// Waits (up to 20 s) until some invocation has `status`; returns its command id.
    pub async fn wait_for_status(&self, status: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let found =
                lock(&self.state).invocations.iter().find(|(_, inv)| inv.status == status).map(|((c, _), _)| c.clone());
            if let Some(id) = found {
                return id;
            }
            assert!(Instant::now() < deadline, "no invocation reached {status} within 20 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits (up to 20 s) until `GetCommandInvocation` has answered `status` for `command_id`.
    pub async fn wait_until_served(&self, command_id: &str, status: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.served(command_id).iter().any(|s| s == status) {
            assert!(Instant::now() < deadline, "{command_id} was not polled in {status} within 20 s");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Cancels every unfinished command, as an operator would in the console.
    pub fn cancel_all(&self) {
        let mut st = lock(&self.state);
        for inv in st.invocations.values_mut().filter(|i| !i.terminal()) {
            cancel(inv);
        }
    }
}

impl Drop for FakeSsm {
    fn drop(&mut self) {
        self.server.abort();
        let mut st = lock(&self.state);
        for inv in st.invocations.values_mut() {
            inv.cancel.cancel();
            if let Some(pgid) = inv.pgid.take() {
                kill_group(pgid);
            }
        }
    }
}

/// Kills the process group `pgid` (a command's shell leads its own group).
fn kill_group(pgid: u32) {
    let _ = std::process::Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
}

fn cancel(inv: &mut Invocation) {
    if inv.status == "InProgress" {
        inv.set("Cancelling", "Cancelling");
    }
    inv.cancel.cancel();
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1

async fn connection(mut stream: TcpStream, state: Shared) {
    let mut buf: Vec<u8> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let head_end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers: BTreeMap<String, String> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
            .collect();
        let length: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
        if headers.get("expect").is_some_and(|v| v.eq_ignore_ascii_case("100-continue"))
            && stream.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.is_err()
        {
            return;
        }
        while buf.len() < head_end + length {
            match stream.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let body: Vec<u8> = buf.drain(..head_end + length).skip(head_end).collect();
        let (status, reply) = if headers.contains_key("transfer-encoding") {
            error(400, "SerializationException", "the fake reads Content-Length bodies only")
        } else if !request_line.starts_with("POST / ") {
            error(404, "UnknownOperationException", &format!("not an SSM request: {request_line}"))
        } else {
            handle(&state, &headers, &body)
        };
        let request_id = uuid_like(&state);
        let reason = if status == 200 { "OK" } else { "Bad Request" };
        let text = reply.to_string();
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\nContent-Type: application/x-amz-json-1.1\r\nContent-Length: {}\r\n\
             x-amzn-RequestId: {request_id}\r\n\r\n{text}",
            text.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() {
            return;
        }
        if headers.get("connection").is_some_and(|v| v.eq_ignore_ascii_case("close")) {
            return;
        }
    }
}

fn error(http: u16, kind: &str, message: &str) -> (u16, Value) {
    (http, json!({ "__type": kind, "message": message }))
}

fn uuid_like(state: &Shared) -> String {
    let mut st = lock(state);
    st.next_id += 1;
    format!("{:08x}-5eed-4000-8000-{:012x}", std::process::id(), st.next_id)
}

/// Seconds since the epoch, as AWS JSON timestamps are written.
#[allow(clippy::cast_precision_loss)] // milliseconds since 1970 fit the mantissa for 140,000 years
fn epoch(t: jiff::Timestamp) -> f64 {
    t.as_millisecond() as f64 / 1000.0
}

fn handle(state: &Shared, headers: &BTreeMap<String, String>, body: &[u8]) -> (u16, Value) {
    let content_type = headers.get("content-type").map_or("", String::as_str);
    if content_type != "application/x-amz-json-1.1" {
        return error(400, "SerializationException", &format!("unexpected Content-Type {content_type:?}"));
    }
    let Some(op) = headers.get("x-amz-target").and_then(|t| t.strip_prefix("AmazonSSM.")) else {
        return error(400, "UnknownOperationException", "missing or foreign X-Amz-Target");
    };
    let Ok(body) = serde_json::from_slice::<Value>(body) else {
        return error(400, "SerializationException", "the body is not JSON");
    };
    {
        let mut st = lock(state);
        st.requests.push(Request { op: op.to_owned(), body: body.clone() });
        if let Some(f) = st.faults.iter_mut().find(|f| f.op == op && f.times > 0) {
            f.times -= 1;
            let (http, kind, message) = (f.http, f.kind.clone(), f.message.clone());
            if op == "GetCommandInvocation" {
                let id = body["CommandId"].as_str().unwrap_or_default().to_owned();
                st.served.push((id, kind.clone()));
            }
            return error(http, &kind, &message);
        }
    }
    match op {
        "SendCommand" => send_command(state, &body),
        "GetCommandInvocation" => get_invocation(state, &body),
        "CancelCommand" => cancel_command(state, &body),
        other => error(400, "UnknownOperationException", &format!("the fake does not implement {other}")),
    }
}

// ---------------------------------------------------------------------------------------------
// Operations

/// A `SendCommand` request, checked.
struct SendArgs {
    document: String,
    ids: Vec<String>,
    commands: Vec<String>,
    timeout_s: u64,
    exec_s: u64,
    comment: String,
}

fn parse_send(body: &Value) -> Result<SendArgs, (u16, Value)> {
    let strings = |v: &Value| -> Vec<String> {
        v.as_array().map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect()).unwrap_or_default()
    };
    let document = body["DocumentName"].as_str().unwrap_or_default().to_owned();
    let ids = strings(&body["InstanceIds"]);
    let commands = strings(&body["Parameters"]["commands"]);
    let timeout_s = body["TimeoutSeconds"].as_u64().unwrap_or(3600);
    let exec_s: u64 = body["Parameters"]["executionTimeout"][0].as_str().and_then(|s| s.parse().ok()).unwrap_or(3600);
    let comment = body["Comment"].as_str().unwrap_or_default().to_owned();
    let parameters_size: usize = body["Parameters"].as_object().map_or(0, |o| {
        o.values().flat_map(|v| v.as_array().into_iter().flatten()).filter_map(Value::as_str).map(str::len).sum()
    });
    if !(30..=2_592_000).contains(&timeout_s) {
        return Err(error(
            400,
            "ValidationException",
            &format!(
                "1 validation error detected: Value '{timeout_s}' at 'timeoutSeconds' failed to satisfy constraint: \
                 Member must have value greater than or equal to 30"
            ),
        ));
    }
    if comment.chars().count() > 100 {
        return Err(error(
            400,
            "ValidationException",
            "Value at 'comment' failed to satisfy constraint: length <= 100",
        ));
    }
    match document.as_str() {
        "AWS-RunShellScript" => {}
        "AWS-RunPowerShellScript" => {
            return Err(error(
                400,
                "UnsupportedPlatformType",
                "The document does not support the platform type of the given instance IDs: the fake runs Linux only",
            ));
        }
        other => return Err(error(400, "InvalidDocument", &format!("Document {other} does not exist"))),
    }
    if commands.is_empty() {
        return Err(error(400, "InvalidParameters", "the parameter 'commands' is required"));
    }
    if parameters_size > PARAMETERS_LIMIT {
        return Err(error(
            400,
            "InvalidParameters",
            &format!("parameters of {parameters_size} bytes exceed {PARAMETERS_LIMIT}"),
        ));
    }
    Ok(SendArgs { document, ids, commands, timeout_s, exec_s, comment })
}

fn send_command(state: &Shared, body: &Value) -> (u16, Value) {
    let SendArgs { document, ids, commands, timeout_s, exec_s, comment } = match parse_send(body) {
        Ok(args) => args,
        Err(reply) => return reply,
    };
    let command_id = uuid_like(state);
    let now = jiff::Timestamp::now();
    let mut st = lock(state);
    let unknown: Vec<&String> = ids.iter().filter(|i| !st.instances.contains_key(*i)).collect();
    if ids.is_empty() || !unknown.is_empty() {
        let list: Vec<String> = unknown.iter().map(|i| format!("[{i}]")).collect();
        return error(
            400,
            "InvalidInstanceId",
            &format!("Instances [{}] not in a valid state for account 123456789012", list.join(", ")),
        );
    }
    st.commands.push(command_id.clone());
    let (hidden, pending) = (st.hidden_polls, st.pending_polls);
    for id in &ids {
        let cancel = CancellationToken::new();
        st.invocations.insert(
            (command_id.clone(), id.clone()),
            Invocation {
                instance: id.clone(),
                document: document.clone(),
                comment: comment.clone(),
                sent: Instant::now(),
                delivery_timeout: Duration::from_secs(timeout_s),
                status: "Pending".into(),
                details: "Pending".into(),
                response_code: -1,
                stdout: String::new(),
                stderr: String::new(),
                hidden,
                pending,
                started: None,
                ended: None,
                cancel: cancel.clone(),
                pgid: None,
            },
        );
        let key = (command_id.clone(), id.clone());
        tokio::spawn(drive(state.clone(), key, commands.join("\n"), Duration::from_secs(exec_s), cancel));
    }
    (
        200,
        json!({ "Command": {
            "CommandId": command_id,
            "DocumentName": document,
            "DocumentVersion": "$DEFAULT",
            "Comment": comment,
            "ExpiresAfter": epoch(now) + f64::from(u32::try_from(timeout_s + exec_s).unwrap_or(u32::MAX)),
            "Parameters": body["Parameters"],
            "InstanceIds": ids,
            "Targets": [],
            "RequestedDateTime": epoch(now),
            "Status": "Pending",
            "StatusDetails": "Pending",
            "OutputS3Region": "ap-northeast-1",
            "OutputS3BucketName": "",
            "OutputS3KeyPrefix": "",
            "MaxConcurrency": "50",
            "MaxErrors": "0",
            "TargetCount": ids.len(),
            "CompletedCount": 0,
            "ErrorCount": 0,
            "DeliveryTimedOutCount": 0,
            "ServiceRole": "",
            "NotificationConfig": { "NotificationArn": "", "NotificationEvents": [], "NotificationType": "" },
            "CloudWatchOutputConfig": { "CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false },
            "TimeoutSeconds": timeout_s,
        }}),
    )
}

fn get_invocation(state: &Shared, body: &Value) -> (u16, Value) {
    let command_id = body["CommandId"].as_str().unwrap_or_default().to_owned();
    let instance = body["InstanceId"].as_str().unwrap_or_default().to_owned();
    let mut st = lock(state);
    let key = (command_id.clone(), instance.clone());
    let Some(inv) = st.invocations.get_mut(&key) else {
        st.served.push((command_id, "InvocationDoesNotExist".into()));
        return error(400, "InvocationDoesNotExist", "");
    };
    if inv.hidden > 0 {
        inv.hidden -= 1;
        st.served.push((command_id, "InvocationDoesNotExist".into()));
        return error(400, "InvocationDoesNotExist", "");
    }
    if matches!(inv.status.as_str(), "Pending" | "Delayed") && inv.sent.elapsed() >= inv.delivery_timeout {
        inv.set("TimedOut", "DeliveryTimedOut");
        inv.cancel.cancel();
    }
    let show = |t: Option<jiff::Timestamp>| t.map(|t| t.to_string()).unwrap_or_default();
    let elapsed = match (inv.started, inv.ended) {
        (Some(s), Some(e)) => {
            let ms = e.as_millisecond() - s.as_millisecond();
            format!("PT{}.{:03}S", ms / 1000, ms % 1000)
        }
        _ => String::new(),
    };
    let reply = json!({
        "CommandId": command_id,
        "InstanceId": instance,
        "Comment": inv.comment,
        "DocumentName": inv.document,
        "DocumentVersion": "$DEFAULT",
        "PluginName": "aws:runShellScript",
        "ResponseCode": inv.response_code,
        "ExecutionStartDateTime": show(inv.started),
        "ExecutionElapsedTime": elapsed,
        "ExecutionEndDateTime": show(inv.ended),
        "Status": inv.status,
        "StatusDetails": inv.details,
        "StandardOutputContent": inv.stdout,
        "StandardOutputUrl": "",
        "StandardErrorContent": inv.stderr,
        "StandardErrorUrl": "",
        "CloudWatchOutputConfig": { "CloudWatchLogGroupName": "", "CloudWatchOutputEnabled": false },
    });
    if inv.status == "Pending" {
        inv.pending = inv.pending.saturating_sub(1);
    }
    let status = inv.status.clone();
    st.served.push((command_id, status));
    (200, reply)
}

fn cancel_command(state: &Shared, body: &Value) -> (u16, Value) {
    let command_id = body["CommandId"].as_str().unwrap_or_default();
    let only: Option<Vec<&str>> = body["InstanceIds"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect());
    let mut st = lock(state);
    let mut found = false;
    for ((c, i), inv) in &mut st.invocations {
        if c != command_id || only.as_ref().is_some_and(|o| !o.is_empty() && !o.contains(&i.as_str())) {
            continue;
        }
        found = true;
        if !inv.terminal() {
            cancel(inv);
        }
    }
    if found { (200, json!({})) } else { error(400, "InvalidCommandId", "") }
}

// ---------------------------------------------------------------------------------------------
// The agent

fn cut(s: &str, limit: usize) -> String {
    s.chars().take(limit).collect()
}

type Key = (String, String);

/// Ends an invocation that did not run (or was stopped) with `status`/`details`.
fn finish(state: &Shared, key: &Key, status: &str, details: &str) {
    let mut st = lock(state);
    if let Some(inv) = st.invocations.get_mut(key) {
        inv.set(status, details);
        inv.ended = Some(jiff::Timestamp::now());
    }
}

/// What the agent does with one invocation: wait to be delivered, run, report.
async fn drive(state: Shared, key: Key, script: String, exec: Duration, cancel: CancellationToken) {
    if let Some((dir, env)) = delivered(&state, &key, &cancel).await {
        run_script(&state, &key, &script, &dir, env, exec, &cancel).await;
    }
}

/// Waits until the invocation may start: `Pending` for the polls it owes, `Delayed` while the agent
/// is offline. Returns the sandbox and environment, or `None` when it ended without running
/// (cancelled, a forced outcome, delivery timeout).
async fn delivered(state: &Shared, key: &Key, cancel: &CancellationToken) -> Option<(PathBuf, Vec<(String, String)>)> {
    while lock(state).invocations.get(key).is_some_and(|i| i.pending > 0 && i.status == "Pending") {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(5)) => {}
            () = cancel.cancelled() => { finish(state, key, "Cancelled", "Cancelled"); return None; }
        }
    }
    loop {
        let next = {
            let mut st = lock(state);
            let inv = st.invocations.get(key)?;
            if inv.terminal() {
                return None;
            }
            let late = inv.sent.elapsed() >= inv.delivery_timeout;
            let instance = inv.instance.clone();
            let inst = st.instances.get_mut(&instance).expect("instance of an invocation");
            if let Some(forced) = inst.forced.pop_front() {
                Err(Some(forced))
            } else if inst.agent_online {
                Ok((inst.dir.clone(), inst.env.clone()))
            } else if late {
                Err(Some(("TimedOut".to_owned(), "DeliveryTimedOut".to_owned())))
            } else {
                if let Some(inv) = st.invocations.get_mut(key) {
                    inv.set("Delayed", "Delayed");
                }
                Err(None)
            }
        };
        match next {
            Ok(found) => return Some(found),
            Err(Some((status, details))) => {
                finish(state, key, &status, &details);
                return None;
            }
            Err(None) => {
                tokio::select! {
                    () = tokio::time::sleep(Duration::from_millis(20)) => {}
                    () = cancel.cancelled() => { finish(state, key, "Cancelled", "Cancelled"); return None; }
                }
            }
        }
    }
}

/// Runs the script with `sh` in the sandbox and records how it ended.
async fn run_script(
    state: &Shared,
    key: &Key,
    script: &str,
    dir: &Path,
    env: Vec<(String, String)>,
    exec: Duration,
    cancel: &CancellationToken,
) {
    let work = dir.join("orchestration").join(&key.0);
    std::fs::create_dir_all(&work).expect("command directory");
    let script_path = work.join("_script.sh");
    std::fs::write(&script_path, script).expect("_script.sh");
    let path = format!("{}:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", dir.join("bin").display());
    let child = tokio::process::Command::new("sh")
        .arg(&script_path)
        .current_dir(&work)
        .env_clear()
        .env("PATH", path)
        .env("HOME", dir)
        .envs(env)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .process_group(0)
        .kill_on_drop(true)
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) => {
            let mut st = lock(state);
            if let Some(inv) = st.invocations.get_mut(key) {
                inv.stderr = format!("failed to run commands: {e}");
                inv.response_code = 1;
            }
            drop(st);
            return finish(state, key, "Failed", "Failed");
        }
    };
    let pgid = child.id();
    {
        let mut st = lock(state);
        if let Some(inv) = st.invocations.get_mut(key) {
            inv.set("InProgress", "InProgress");
            inv.started = Some(jiff::Timestamp::now());
            inv.pgid = pgid;
        }
    }
    let stdout = tokio::spawn(read_all(child.stdout.take()));
    let stderr = tokio::spawn(read_all(child.stderr.take()));
    let ended = tokio::select! {
        status = child.wait() => Ok(status),
        () = cancel.cancelled() => Err(("Cancelled", "Cancelled")),
        () = tokio::time::sleep(exec) => Err(("TimedOut", "ExecutionTimedOut")),
    };
    if ended.is_err() {
        // The shell is not reaped yet, so its group id is still ours: the whole group goes (a
        // `sleep` it started too), then the shell is reaped.
        if let Some(pgid) = pgid {
            kill_group(pgid);
        }
        let _ = child.wait().await;
    }
    let stdout = stdout.await.unwrap_or_default();
    let stderr = stderr.await.unwrap_or_default();
    let mut st = lock(state);
    let Some(inv) = st.invocations.get_mut(key) else { return };
    inv.pgid = None;
    match ended {
        Ok(Ok(status)) => {
            let code = status.code().unwrap_or(-1);
            let mut stderr = String::from_utf8_lossy(&stderr).into_owned();
            if code != 0 {
                let _ = write!(stderr, "failed to run commands: exit status {code}");
            }
            inv.stdout = cut(&String::from_utf8_lossy(&stdout), STDOUT_LIMIT);
            inv.stderr = cut(&stderr, STDERR_LIMIT);
            inv.response_code = code;
            let outcome = if code == 0 { "Success" } else { "Failed" };
            inv.set(outcome, outcome);
        }
        Ok(Err(e)) => {
            inv.stderr = format!("failed to run commands: {e}");
            inv.response_code = 1;
            inv.set("Failed", "Failed");
        }
        Err((status, details)) => {
            inv.stdout = cut(&String::from_utf8_lossy(&stdout), STDOUT_LIMIT);
            inv.set(status, details);
        }
    }
    inv.ended = Some(jiff::Timestamp::now());
}

async fn read_all<R: tokio::io::AsyncRead + Unpin>(pipe: Option<R>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(mut p) = pipe {
        let _ = p.read_to_end(&mut out).await;
    }
    out
}
