//! Fake CLUSTERPRO commands backed by the simulated world.
//!
//! Why this module exists: the command adapter (`CommandCluster`) must be tested by running real
//! executables through a real transport, with output shaped like CLUSTERPRO's and effects that
//! follow CLUSTERPRO's rules. Those rules already live in the simulator (`mirrorctl::sim`), so the
//! fake tools are thin: a sandbox `bin/` per server holds `clpstat`, `clpgrp`, `clprsc`, `clpcl`,
//! `clpdown`, `clpmdstat` and `clpcfctrl` — and `win32-volume`, standing for the Windows query
//! `Get-CimInstance Win32_Volume` by drive letter — each a few lines of bash ([`FORWARDER`])
//! that send the server it stands for, its name, its working directory and its argv over
//! `/dev/tcp` to a server this module runs on a 127.0.0.1 port of the test process. The server
//! answers from the simulated world's ports — text in the shapes of `tests/fixtures/clusterpro/`
//! — as a few lines of shell the tool evaluates (print stdout, print stderr, exit with a status).
//! `clpcfctrl` reads and writes `clp.conf` in its `-x` directory on the test process's side
//! (the tools run on the same host). bash rather than python: a tool starts in milliseconds.
//!
//! Reuse (e.g. behind a fake SSM endpoint): [`FakeClp::start`] with a `SimWorld`; run a node's
//! commands with [`FakeClp::bin_dir`] of that server first on `PATH`, and refuse servers for
//! which [`FakeClp::reachable`] is false (their instance is not running). [`FakeClp::transport`]
//! does exactly that over `LocalTransport`.
//!
//! What the fakes enforce beyond the simulator's own rules: commands other than `clpdown` and
//! `win32-volume` fail on a server that is not a running member; `clpgrp`/`clprsc` fail while the
//! cluster is suspended (`clpcl --suspend` until `--resume`); `clprsc` needs `-f` to start a
//! resource whose dependency is offline or to stop one another depends on; `clpcfctrl` needs the
//! OS flag of the cluster (`-l`/`-w`); a pushed `clp.conf` defining md must keep what a real md
//! needs (the mirror connection, Linux mount point and file system, `mdw`/`mdnw` monitors, the
//! business resource's dependency, and on Windows the volume GUIDs of the disks attached now).
//! The push is then applied to the simulator as the `ConfigChange`s it amounts to.
//!
//! Where the fakes' shapes come from (so that they do not merely repeat the adapter's beliefs):
//! - `clpmdstat -l` prints each md name in angle brackets (` <md>`), on Windows and Linux alike:
//!   NEC engineers' public mirror-recovery perl scripts take the names with `/<(.+)>/`
//!   (research/clusterpro-audit.md #9). The Windows output is not confirmed [U].
//! - `clpdown -h <server>` shuts `server` down, asked from a running member (EXPRESSCLUSTER/clpaic
//!   `src/clpaic-local/clpaic.py` appends `-h <hostname>`, "the server to send the request to", to
//!   every command it builds, `clpdown` included); that the real command then shuts the named
//!   server down, as it does its own without `-h`, is [U].
//! - `clpgrp -m <g> -a <target>` moves the group to `target`; without `-a` it moves by the failover
//!   policy, here the next server of the group's list; `-h` only picks the server that handles the
//!   request (EXPRESSCLUSTER/clpaic `src/clpaic-remote/tool_definitions.py`, `move_group`). With the
//!   simulator's two servers both land on the same server, so tests tell them apart by the logged
//!   command line.
//! - A pushed Linux md with `fullcopy` 0 must have `parameters/mkfs` 0, or the push fails. NEC
//!   (EXPRESSCLUSTER/clpcfset `doc/linux/md.md`) says to set initial mkfs off when the disk already
//!   holds data; that CLUSTERPRO itself refuses (rather than formats) is a belief [U], chosen so
//!   that a test fails where a real cluster might lose data. The rendered md carries `mkfs` equal
//!   to its `fullcopy` (the simulator keeps no mkfs [U]).
//! - `clp.conf` is ASCII (Windows) or UTF-8 (Linux) unless [`FakeClp::set_conf_encoding`] makes it
//!   `Shift_JIS` or EUC-JP with Japanese comments, as Japanese clusters write it (NEC's
//!   `create_win_md.pl` uses SJIS; EXPRESSCLUSTER/CreateClusterOnLinux `CommandParameters_jp.md`:
//!   `clpcreate init` takes EUC-JP for Japanese, ASCII for English). A pushed file is read in the
//!   encoding its declaration names and refused when invalid there. Whether the real `clpcfctrl`
//!   rejects such a file or stores garbage is [U].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mirrorctl::adapters::clusterpro::conf::read_config;
use mirrorctl::adapters::node::transport::{CommandOutput, LocalTransport, Shell, Transport};
use mirrorctl::ids::{GroupName, ResourceName, ServerName, VolumeId};
use mirrorctl::ports::cloud::InstanceState;
use mirrorctl::ports::cluster::{ClusterConfig, ConfigChange, MdDefinition, MirrorColor, ObjectState};
use mirrorctl::ports::{ErrorClass, PortError, PortResult, Ports};
use mirrorctl::sim::{Scenario, SimWorld};
use mirrorctl::spec::{Os, Partition};
use sha2::Digest;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// The tools the sandbox holds.
pub const TOOLS: &[&str] =
    &["clpstat", "clpgrp", "clprsc", "clpcl", "clpdown", "clpmdstat", "clpcfctrl", "win32-volume"];

/// The tool script; `@PORT@` and `@SERVER@` are filled in per server. The request is a line with
/// the number of fields, then the fields, each ended by a NUL byte.
pub const FORWARDER: &str = r#"#!/bin/bash
# A fake CLUSTERPRO command for mirrorctl's tests (tests/it/support/fake_clp.rs): it sends the server
# it runs on, its name, its working directory and its arguments to the test process, which answers
# from the simulated world with shell lines to evaluate (print stdout and stderr, exit).
if ! exec 3<>/dev/tcp/127.0.0.1/@PORT@; then
  echo "fake ${0##*/}: the simulator on port @PORT@ does not answer" >&2
  exit 1
fi
printf '%s\n' "$(( $# + 3 ))" >&3
printf '%s\0' '@SERVER@' "${0##*/}" "$PWD" "$@" >&3
reply=$(cat <&3)
exec 3<&-
eval "$reply"
"#;

/// Partition numbers of the scenario's mirror disk (cluster 1, data 2).
const CLUSTER_PART: u32 = 1;
const DATA_PART: u32 = 2;

/// What a tool sends.
#[derive(Debug)]
struct Request {
    server: String,
    tool: String,
    cwd: PathBuf,
    args: Vec<String>,
}

/// What a tool prints and its exit status.
#[derive(Debug, Default)]
struct Reply {
    exit: i32,
    stdout: String,
    stderr: String,
}

impl Reply {
    /// The shell lines the tool evaluates.
    fn script(&self) -> String {
        let q = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        format!("printf '%s' {}\nprintf '%s' {} >&2\nexit {}\n", q(&self.stdout), q(&self.stderr), self.exit)
    }
}

fn ok(stdout: impl Into<String>) -> Reply {
    Reply { stdout: stdout.into(), ..Reply::default() }
}

fn fail(exit: i32, message: impl AsRef<str>) -> Reply {
    Reply { exit, stderr: format!("{}\n", message.as_ref()), ..Reply::default() }
}

fn port_fail(e: &PortError) -> Reply {
    fail(1, format!("Command failed: {}", e.message))
}

const SUCCEEDED: &str = "Command succeeded.\n";
const NOT_RUNNING: &str = "Could not connect to the cluster service. Check if the cluster service is active.";
const USAGE: i32 = 2;

/// Test knobs and the command log, shared with the server task.
#[derive(Debug, Default)]
struct Knobs {
    suspended: bool,
    /// The encoding label `clpcfctrl --pull` declares and writes, with Japanese comments.
    conf_encoding: Option<&'static str>,
    stopped_service: BTreeSet<String>,
    fail_next: BTreeMap<String, u32>,
    log: Vec<(String, String)>,
}

/// What the server task needs.
struct Ctx {
    world: Arc<SimWorld>,
    ports: Ports,
    scenario: Scenario,
    knobs: Arc<Mutex<Knobs>>,
}

/// The fake commands: a sandbox of `bin/` directories and the loopback server behind them.
/// Dropping it stops the server.
pub struct FakeClp {
    world: Arc<SimWorld>,
    scenario: Scenario,
    sandbox: tempfile::TempDir,
    port: u16,
    knobs: Arc<Mutex<Knobs>>,
    /// Where each server's tools are now, when moved from its `bin/` ([`FakeClp::relocate_tools`]).
    moved: Mutex<BTreeMap<ServerName, PathBuf>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeClp {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeClp {
    /// Serves `world` on a free loopback port and writes a `bin/` per server of its scenario.
    pub async fn start(world: Arc<SimWorld>) -> FakeClp {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a loopback port");
        let port = listener.local_addr().expect("local address").port();
        let scenario = world.scenario();
        let knobs = Arc::new(Mutex::new(Knobs::default()));
        let ctx = Arc::new(Ctx {
            ports: world.ports(),
            world: world.clone(),
            scenario: scenario.clone(),
            knobs: knobs.clone(),
        });
        let task = tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else { return };
                let ctx = ctx.clone();
                tokio::spawn(async move { serve(&ctx, socket).await });
            }
        });
        let sandbox = tempfile::tempdir().expect("sandbox dir");
        for s in &scenario.servers {
            let bin = sandbox.path().join(s.name.as_str()).join("bin");
            std::fs::create_dir_all(&bin).expect("bin dir");
            let text = FORWARDER.replace("@PORT@", &port.to_string()).replace("@SERVER@", s.name.as_str());
            for tool in TOOLS {
                write_executable(&bin.join(tool), &text);
            }
        }
        FakeClp { world, scenario, sandbox, port, knobs, moved: Mutex::new(BTreeMap::new()), task }
    }

    /// The loopback port the tools talk to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The `bin/` directory of `server`'s fake tools (empty after [`FakeClp::relocate_tools`]).
    pub fn bin_dir(&self, server: &ServerName) -> PathBuf {
        self.node_root(server).join("bin")
    }

    /// The directory standing for `server`'s file system root, for tests that map absolute node
    /// paths (`C:\…`, `/opt/nec/…`) into it.
    pub fn node_root(&self, server: &ServerName) -> PathBuf {
        self.sandbox.path().join(server.as_str())
    }

    /// Where `server`'s tools are now.
    pub fn tools_dir(&self, server: &ServerName) -> PathBuf {
        self.moved.lock().expect("moved").get(server).cloned().unwrap_or_else(|| self.bin_dir(server))
    }

    /// Moves `server`'s tools from its `bin/` (which stays on its `PATH`, empty) to
    /// `node_root(server)/<under>`: an install in a product directory, e.g.
    /// `C:/Program Files/EXPRESSCLUSTER/bin` or `opt/nec/clusterpro/bin`.
    pub fn relocate_tools(&self, server: &ServerName, under: &str) {
        let to = self.node_root(server).join(under);
        std::fs::create_dir_all(&to).expect("install dir");
        let from = self.tools_dir(server);
        for tool in TOOLS {
            if from.join(tool).exists() {
                std::fs::rename(from.join(tool), to.join(tool)).expect("move tool");
            }
        }
        self.moved.lock().expect("moved").insert(server.clone(), to);
    }

    /// `PATH` for commands run on `server`: its fake tools first.
    pub fn path_for(&self, server: &ServerName) -> String {
        let rest = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned());
        format!("{}:{rest}", self.bin_dir(server).display())
    }

    /// Whether `server`'s instance is running (a stopped machine runs no command).
    pub fn reachable(&self, server: &ServerName) -> bool {
        let Some(setup) = self.scenario.servers.iter().find(|s| s.name == *server) else { return false };
        self.world.inventory().instances.iter().any(|i| i.id == setup.instance && i.state == InstanceState::Running)
    }

    /// A transport running each server's commands locally with that server's tools, refusing
    /// servers that are not [`FakeClp::reachable`].
    pub fn transport(self: &Arc<Self>) -> Arc<dyn Transport> {
        let local = self
            .scenario
            .servers
            .iter()
            .map(|s| (s.name.clone(), LocalTransport { env: vec![("PATH".to_owned(), self.path_for(&s.name))] }))
            .collect();
        Arc::new(FakeNodes { clp: self.clone(), local })
    }

    /// Removes a tool from `server`'s sandbox (a CLUSTERPRO install missing a command).
    pub fn remove_tool(&self, server: &ServerName, tool: &str) {
        std::fs::remove_file(self.tools_dir(server).join(tool)).expect("remove tool");
    }

    /// Makes `server`'s tools answer as if its cluster service were stopped (not a member),
    /// while the simulator still counts it as a member.
    pub fn stop_service(&self, server: &ServerName) {
        self.knobs().stopped_service.insert(server.to_string());
    }

    /// The next `count` runs of the command line starting with `prefix` (e.g. `clpcl --resume`)
    /// fail without effect.
    pub fn fail_next(&self, prefix: &str, count: u32) {
        self.knobs().fail_next.insert(prefix.to_owned(), count);
    }

    /// Makes `clpcfctrl --pull` write `clp.conf` the way a Japanese cluster does: in the encoding
    /// `label` (an `encoding_rs` label such as `Shift_JIS` or `EUC-JP`), declared in the XML
    /// declaration, with Japanese text in an XML comment ([`JA_COMMENT`]) and in the resources'
    /// `<comment>` elements ([`JA_MD_COMMENT`]). `clpcfctrl --push` then refuses a file that is
    /// not valid in that encoding or lost those comments.
    pub fn set_conf_encoding(&self, label: &'static str) {
        assert!(encoding_rs::Encoding::for_label(label.as_bytes()).is_some(), "{label}");
        self.knobs().conf_encoding = Some(label);
    }

    /// Whether the cluster is suspended.
    pub fn suspended(&self) -> bool {
        self.knobs().suspended
    }

    /// Every command run so far: (server, command line).
    pub fn log(&self) -> Vec<(String, String)> {
        self.knobs().log.clone()
    }

    /// How many runs' command lines start with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.log().iter().filter(|(_, l)| l.starts_with(prefix)).count()
    }

    fn knobs(&self) -> std::sync::MutexGuard<'_, Knobs> {
        self.knobs.lock().expect("knobs")
    }
}

fn write_executable(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, text).expect("write tool");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod tool");
}

/// `LocalTransport` per server, with power: see [`FakeClp::transport`].
struct FakeNodes {
    clp: Arc<FakeClp>,
    local: BTreeMap<ServerName, LocalTransport>,
}

impl FakeNodes {
    fn node(&self, server: &ServerName) -> PortResult<&LocalTransport> {
        let t = self.local.get(server).ok_or_else(|| {
            PortError::new("NodeUnreachable", format!("no such server {server}"), ErrorClass::NeedsHuman)
        })?;
        if self.clp.reachable(server) {
            Ok(t)
        } else {
            Err(PortError::new(
                "NodeUnreachable",
                format!("{server} is not running: the command cannot be delivered"),
                ErrorClass::Retryable,
            ))
        }
    }
}

#[async_trait::async_trait]
impl Transport for FakeNodes {
    async fn run(
        &self,
        server: &ServerName,
        shell: Shell,
        script: &str,
        timeout: Duration,
    ) -> PortResult<CommandOutput> {
        self.node(server)?.run(server, shell, script, timeout).await
    }
    async fn read_file(&self, server: &ServerName, shell: Shell, path: &Path) -> PortResult<Vec<u8>> {
        self.node(server)?.read_file(server, shell, path).await
    }
    async fn write_file(&self, server: &ServerName, shell: Shell, path: &Path, bytes: &[u8]) -> PortResult<()> {
        self.node(server)?.write_file(server, shell, path, bytes).await
    }
}

async fn serve(ctx: &Ctx, socket: tokio::net::TcpStream) {
    let (read, mut write) = socket.into_split();
    let mut read = BufReader::new(read);
    let reply = match read_request(&mut read).await {
        Ok(req) => handle(ctx, req).await,
        Err(e) => fail(USAGE, format!("fake CLUSTERPRO: unreadable request: {e}")),
    };
    let _ = write.write_all(reply.script().as_bytes()).await;
    let _ = write.shutdown().await;
}

async fn read_request(read: &mut BufReader<tokio::net::tcp::OwnedReadHalf>) -> Result<Request, String> {
    let mut count = String::new();
    read.read_line(&mut count).await.map_err(|e| e.to_string())?;
    let n: usize = count.trim().parse().map_err(|_| format!("bad field count {count:?}"))?;
    let mut fields = Vec::with_capacity(n);
    for _ in 0..n {
        let mut field = Vec::new();
        read.read_until(0, &mut field).await.map_err(|e| e.to_string())?;
        if field.pop() != Some(0) {
            return Err("a field is not NUL-terminated".to_owned());
        }
        fields.push(String::from_utf8(field).map_err(|e| e.to_string())?);
    }
    let mut fields = fields.into_iter();
    let (Some(server), Some(tool), Some(cwd)) = (fields.next(), fields.next(), fields.next()) else {
        return Err("fewer than 3 fields".to_owned());
    };
    Ok(Request { server, tool, cwd: PathBuf::from(cwd), args: fields.collect() })
}

// ---------------------------------------------------------------------------------------------
// The commands.

/// Arguments after a flag: `-h server`, `-x dir`.
fn option<'a>(args: &'a [String], flag: &str) -> Option<&'a str> {
    args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1)).map(String::as_str)
}

fn has(args: &[String], flag: &str) -> bool {
    args.iter().any(|a| a == flag)
}

async fn handle(ctx: &Ctx, req: Request) -> Reply {
    let line =
        std::iter::once(req.tool.as_str()).chain(req.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ");
    {
        let mut k = ctx.knobs.lock().expect("knobs");
        k.log.push((req.server.clone(), line.clone()));
        let hit = k.fail_next.iter_mut().find(|(p, n)| line.starts_with(p.as_str()) && **n > 0);
        if let Some((_, n)) = hit {
            *n -= 1;
            return fail(1, format!("Command failed: {line} (injected by the test)"));
        }
    }
    let Ok(server) = ServerName::parse(&req.server) else { return fail(USAGE, "bad server name in fakeclp.json") };
    // `clpdown -h <server>` asks another server's cluster service: this one must be running.
    let asks_other = req.tool == "clpdown" && option(&req.args, "-h").is_some();
    let needs_service = asks_other || !matches!(req.tool.as_str(), "clpdown" | "win32-volume");
    if needs_service && !live(ctx, &server).await {
        return fail(1, NOT_RUNNING);
    }
    match req.tool.as_str() {
        "clpstat" => clpstat(ctx, &server).await,
        "clpgrp" => clpgrp(ctx, &server, &req.args).await,
        "clprsc" => clprsc(ctx, &server, &req.args).await,
        "clpcl" => clpcl(ctx, &req.args).await,
        "clpdown" => {
            let target = match option(&req.args, "-h").map(ServerName::parse) {
                None => server,
                Some(Ok(t)) => t,
                Some(Err(_)) => return fail(1, "Invalid server name."),
            };
            match ctx.ports.cluster.shutdown_server(&target).await {
                Ok(_) => ok(""),
                Err(e) => port_fail(&e),
            }
        }
        "clpmdstat" => clpmdstat(ctx, &req.args).await,
        "clpcfctrl" => clpcfctrl(ctx, &req.cwd, &req.args).await,
        "win32-volume" => win32_volume(ctx, &server, &req.args).await,
        other => fail(127, format!("{other}: not found")),
    }
}

/// A running member whose service the test did not stop.
async fn live(ctx: &Ctx, server: &ServerName) -> bool {
    if ctx.knobs.lock().expect("knobs").stopped_service.contains(server.as_str()) {
        return false;
    }
    ctx.ports.cluster.status().await.is_ok_and(|st| st.servers.get(server) == Some(&true))
}

fn word(state: ObjectState) -> &'static str {
    match state {
        ObjectState::Online => "Online",
        ObjectState::Offline => "Offline",
        ObjectState::OnlinePending => "Online Pending",
        ObjectState::OfflinePending => "Offline Pending",
        ObjectState::OnlineFailure => "Online Failure",
        ObjectState::OfflineFailure => "Offline Failure",
        ObjectState::Unknown => "Unknown",
    }
}

/// `name ....` padded with dots to clpstat's column.
fn dotted(name: &str) -> String {
    let mut s = format!("{name} ");
    while s.len() < 17 {
        s.push('.');
    }
    s
}

fn newline(os: Os) -> &'static str {
    match os {
        Os::Windows => "\r\n",
        Os::Linux => "\n",
    }
}

async fn clpstat(ctx: &Ctx, here: &ServerName) -> Reply {
    let st = match ctx.ports.cluster.status().await {
        Ok(st) => st,
        Err(e) => return port_fail(&e),
    };
    let mut out = vec![
        " ========================  CLUSTER STATUS  ===========================".to_owned(),
        format!("  Cluster : {}", ctx.scenario.cluster),
        "  <server>".to_owned(),
    ];
    for (s, member) in &st.servers {
        let mark = if s == here { '*' } else { ' ' };
        out.push(format!("   {mark}{}: {:<17}", dotted(s.as_str()), if *member { "Online" } else { "Offline" }));
        out.push(format!("      {:<15}: {:<17}LAN Heartbeat", "lankhb1", if *member { "Normal" } else { "Unknown" }));
    }
    out.push("  <group>".to_owned());
    for (g, p) in &st.groups {
        out.push(format!("    {}: {:<17}failover group", dotted(g.as_str()), word(p.state)));
        let current = p.current.as_ref().map_or("None", ServerName::as_str);
        out.push(format!("      {:<15}: {current}", "current"));
        for (r, rp) in &st.resources {
            out.push(format!("      {:<15}: {:<17}", r.as_str(), word(rp.state)));
        }
    }
    out.push("  <monitor>".to_owned());
    if let Ok(config) = ctx.ports.cluster.config().await
        && !config.mirrors.is_empty()
    {
        out.push(format!("    {:<17}: {:<17}", "mdnw1", "Normal"));
        out.push(format!("    {:<17}: {:<17}", "mdw1", "Normal"));
    }
    out.push(format!("    {:<17}: {:<17}", "userw", "Normal"));
    out.push(" =====================================================================".to_owned());
    out.push(String::new());
    ok(out.join(newline(ctx.scenario.os)))
}

fn suspended(ctx: &Ctx) -> Option<Reply> {
    ctx.knobs
        .lock()
        .expect("knobs")
        .suspended
        .then(|| fail(1, "The cluster is suspended. Resume it with clpcl --resume first."))
}

/// The failover policy's choice for a group on `current`: the next server after it in the
/// group's server list (the scenario's order, wrapping around). [U]: the real policy also skips
/// servers that are down or cannot start the group; the fake leaves that to the simulator's move.
fn policy_next(ctx: &Ctx, current: &ServerName) -> Option<ServerName> {
    let list: Vec<&ServerName> = ctx.scenario.servers.iter().map(|s| &s.name).collect();
    let at = list.iter().position(|s| *s == current)?;
    (1..list.len()).map(|i| list[(at + i) % list.len()]).next().cloned()
}

async fn clpgrp(ctx: &Ctx, here: &ServerName, args: &[String]) -> Reply {
    let (Some(op), Some(name)) = (args.first(), args.get(1)) else {
        return fail(USAGE, "Invalid option. Usage: clpgrp -s|-t|-m|-n <group> [-h <server>]");
    };
    let Ok(group) = GroupName::parse(name) else { return fail(1, "Invalid group name.") };
    let host = match option(args, "-h").map(ServerName::parse) {
        None => None,
        Some(Ok(s)) => Some(s),
        Some(Err(_)) => return fail(1, "Invalid server name."),
    };
    if matches!(op.as_str(), "-s" | "-t" | "-m")
        && let Some(r) = suspended(ctx)
    {
        return r;
    }
    let result = match op.as_str() {
        "-n" => {
            return match ctx.ports.cluster.status().await {
                Ok(st) => match st.groups.get(&group) {
                    Some(p) => ok(format!("{}\n", p.current.as_ref().map_or("None", ServerName::as_str))),
                    None => fail(1, "Invalid group name."),
                },
                Err(e) => port_fail(&e),
            };
        }
        "-s" => ctx.ports.cluster.start_group(&group, host.as_ref().unwrap_or(here)).await,
        "-t" => {
            if let Some(h) = &host
                && let Ok(st) = ctx.ports.cluster.status().await
                && let Some(p) = st.groups.get(&group)
                && p.current.as_ref().is_some_and(|c| c != h)
            {
                return fail(1, format!("Command failed: group {group} is not active on {h}"));
            }
            ctx.ports.cluster.stop_group(&group).await
        }
        "-m" => {
            // `-a` names the destination; without it, the failover policy decides. `-h` only
            // picks the server that handles the request (see the module doc).
            let target = match option(args, "-a").map(ServerName::parse) {
                Some(Ok(s)) => Some(s),
                Some(Err(_)) => return fail(1, "Invalid server name."),
                None => match ctx.ports.cluster.status().await {
                    Ok(st) => policy_next(ctx, st.groups.get(&group).and_then(|p| p.current.as_ref()).unwrap_or(here)),
                    Err(e) => return port_fail(&e),
                },
            };
            let Some(target) = target else { return fail(1, "Command failed: no server to move the group to.") };
            ctx.ports.cluster.move_group(&group, &target).await
        }
        _ => return fail(USAGE, format!("Invalid option {op}.")),
    };
    match result {
        Ok(_) => ok(SUCCEEDED),
        Err(e) => port_fail(&e),
    }
}

async fn clprsc(ctx: &Ctx, here: &ServerName, args: &[String]) -> Reply {
    let (Some(op), Some(name)) = (args.first(), args.get(1)) else {
        return fail(USAGE, "Invalid option. Usage: clprsc -s|-t <resource> [-h <server>] [-f]");
    };
    let Ok(resource) = ResourceName::parse(name) else { return fail(1, "Invalid resource name.") };
    if let Some(r) = suspended(ctx) {
        return r;
    }
    let host = match option(args, "-h").map(ServerName::parse) {
        None => here.clone(),
        Some(Ok(s)) => s,
        Some(Err(_)) => return fail(1, "Invalid server name."),
    };
    let force = has(args, "-f");
    let st = match ctx.ports.cluster.status().await {
        Ok(st) => st,
        Err(e) => return port_fail(&e),
    };
    let md = ctx.ports.cluster.config().await.ok().and_then(|c| c.mirrors.first().map(|m| m.resource.clone()));
    let business = &ctx.scenario.business;
    let online_on = |r: &ResourceName, s: &ServerName| {
        st.resources.get(r).is_some_and(|p| p.state == ObjectState::Online && p.current.as_ref() == Some(s))
    };
    let result = match op.as_str() {
        "-s" => {
            if !force && resource == *business && md.as_ref().is_some_and(|m| !online_on(m, &host)) {
                return fail(1, format!("Command failed: a resource {resource} depends on is not started (use -f)"));
            }
            ctx.ports.cluster.start_resource(&resource, &host).await
        }
        "-t" => {
            let dependent_up = st.resources.get(business).is_some_and(|p| p.state != ObjectState::Offline);
            if !force && md.as_ref() == Some(&resource) && dependent_up {
                return fail(1, format!("Command failed: {business} depends on {resource} and is active (use -f)"));
            }
            ctx.ports.cluster.stop_resource(&resource).await
        }
        _ => return fail(USAGE, format!("Invalid option {op}.")),
    };
    match result {
        Ok(_) => ok(SUCCEEDED),
        Err(e) => port_fail(&e),
    }
}

async fn clpcl(ctx: &Ctx, args: &[String]) -> Reply {
    match args.first().map(String::as_str) {
        Some("--suspend") => {
            let all_up = ctx.ports.cluster.status().await.is_ok_and(|st| st.servers.values().all(|m| *m));
            let mut k = ctx.knobs.lock().expect("knobs");
            if !all_up {
                return fail(1, "Command failed: every server must be running to suspend the cluster.");
            }
            if k.suspended {
                return fail(1, "Command failed: the cluster is already suspended.");
            }
            k.suspended = true;
            ok(SUCCEEDED)
        }
        Some("--resume") => {
            let mut k = ctx.knobs.lock().expect("knobs");
            if !k.suspended {
                return fail(1, "Command failed: the cluster is not suspended.");
            }
            k.suspended = false;
            ok(SUCCEEDED)
        }
        _ => fail(USAGE, "Invalid option (the fake clpcl knows --suspend and --resume)."),
    }
}

/// A `clpmdstat` column.
fn pad22(s: &str) -> String {
    format!("{s:<22}")
}

fn color_word(c: MirrorColor) -> &'static str {
    match c {
        MirrorColor::Green => "GREEN",
        MirrorColor::Red => "RED",
        MirrorColor::Yellow => "YELLOW",
        MirrorColor::Gray => "GRAY",
    }
}

async fn clpmdstat(ctx: &Ctx, args: &[String]) -> Reply {
    let nl = newline(ctx.scenario.os);
    match (args.first().map(String::as_str), args.get(1)) {
        (Some("-m"), Some(name)) => {
            let Ok(md) = ResourceName::parse(name) else { return fail(1, "Invalid mirror disk name.") };
            let status = match ctx.ports.cluster.mirror_status(&md).await {
                Ok(s) => s,
                Err(e) if e.code == "ResourceNotFound" => return fail(1, "Invalid mirror disk name."),
                Err(e) => return port_fail(&e),
            };
            let colors: Vec<MirrorColor> = status.colors.values().copied().collect();
            let overall = if status.healthy() {
                "Normal"
            } else if colors.contains(&MirrorColor::Yellow) {
                "Recovering"
            } else {
                "Abnormal"
            };
            let names: String = status.colors.keys().map(|s| pad22(s.as_str())).collect();
            let row = |label: &str, f: &dyn Fn(MirrorColor) -> &'static str| {
                let cells: String = colors.iter().map(|c| pad22(f(*c))).collect();
                format!("  {label:<22}{}", cells.trim_end())
            };
            let lines = [
                String::new(),
                format!(" Mirror Status: {overall}"),
                String::new(),
                format!("  {:<22}{}", md.as_str(), names.trim_end()),
                " ------------------------------------------------------------------".to_owned(),
                row("Mirror Color", &color_word),
                row("Lastupdate Time", &|_| "--"),
                row("Break Time", &|_| "--"),
                row("Disk Error", &|c| if c == MirrorColor::Gray { "--" } else { "OK" }),
                row("Difference Percent", &|c| if c == MirrorColor::Green { "0%" } else { "--" }),
                String::new(),
            ];
            ok(lines.join(nl))
        }
        (Some("-l"), _) => {
            let config = match ctx.ports.cluster.config().await {
                Ok(c) => c,
                Err(e) => return port_fail(&e),
            };
            // NEC's shape: each md name in angle brackets (see the module doc).
            let mut out = String::new();
            for m in &config.mirrors {
                let _ = write!(out, " <{}>{nl}", m.resource);
            }
            ok(out)
        }
        _ => fail(USAGE, "Invalid option. Usage: clpmdstat -m <md> | -l"),
    }
}

/// The fake's volume GUID of a partition: stable per (volume, partition). A belief [U]: Windows
/// builds the GUID of an MBR volume from the disk signature and the partition offset (so a copy of
/// a disk may keep it); the fake gives every new volume new GUIDs, which is what makes the re-add's
/// fresh reading of them matter in the tests.
pub fn volume_guid(volume: &VolumeId, partition: u32) -> String {
    let h = hex::encode(sha2::Sha256::digest(format!("{volume}/{partition}").as_bytes()));
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The GUID of the volume with drive letter `letter` on `server` now, if a partition has it.
async fn guid_by_letter(ctx: &Ctx, server: &ServerName, letter: char) -> Option<String> {
    let disks = ctx.ports.node.disks(server).await.ok()?;
    disks.iter().find_map(|d| {
        d.partitions
            .iter()
            .find(|p| p.letter.is_some_and(|l| l.eq_ignore_ascii_case(&letter)))
            .map(|p| volume_guid(&d.volume, p.number))
    })
}

/// `win32-volume <X>:` stands for `Get-CimInstance Win32_Volume -Filter "DriveLetter = 'X:'"` and
/// prints the volume's `DeviceID` (`\\?\Volume{GUID}\`); exit 3 when no volume has the letter (the
/// adapter's script does the same).
async fn win32_volume(ctx: &Ctx, server: &ServerName, args: &[String]) -> Reply {
    if ctx.scenario.os != Os::Windows {
        return fail(127, "win32-volume: not found");
    }
    let letter = args.first().and_then(|a| a.chars().next()).filter(char::is_ascii_alphabetic);
    let Some(letter) = letter else { return fail(USAGE, "usage: win32-volume <X:>") };
    match guid_by_letter(ctx, server, letter).await {
        Some(g) => ok(format!("\\\\?\\Volume{{{g}}}\\\r\n")),
        None => fail(3, format!("mirrorctl: no volume has the drive letter {letter}:")),
    }
}

// ---------------------------------------------------------------------------------------------
// clp.conf.

async fn clpcfctrl(ctx: &Ctx, cwd: &Path, args: &[String]) -> Reply {
    let os_flag = match ctx.scenario.os {
        Os::Windows => "-w",
        Os::Linux => "-l",
    };
    if !has(args, os_flag) {
        return fail(USAGE, format!("Invalid option: this cluster's servers need {os_flag}."));
    }
    let Some(dir) = option(args, "-x").map(|d| cwd.join(d)) else {
        return fail(USAGE, "Invalid option: -x <directory> is required.");
    };
    let file = dir.join("clp.conf");
    if has(args, "--pull") {
        let config = match ctx.ports.cluster.config().await {
            Ok(c) => c,
            Err(e) => return port_fail(&e),
        };
        let guids = current_guids(ctx);
        let label = ctx.knobs.lock().expect("knobs").conf_encoding;
        let bytes = match label {
            None => render_conf(&ctx.scenario, &config, &guids, None).into_bytes(),
            Some(label) => {
                let encoding = encoding_rs::Encoding::for_label(label.as_bytes()).expect("label checked");
                let text = render_conf(&ctx.scenario, &config, &guids, Some(label));
                let (bytes, _, unmappable) = encoding.encode(&text);
                assert!(!unmappable, "the fake's Japanese text fits {label}");
                bytes.into_owned()
            }
        };
        let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&file, bytes));
        return match written {
            Ok(()) => ok(SUCCEEDED),
            Err(e) => fail(1, format!("Failed to write {}: {e}", file.display())),
        };
    }
    if has(args, "--push") {
        let bytes = match std::fs::read(&file) {
            Ok(b) => b,
            Err(e) => return fail(1, format!("Failed to read the configuration file {}: {e}", file.display())),
        };
        let label = ctx.knobs.lock().expect("knobs").conf_encoding;
        let text = match decode_pushed(&bytes, label) {
            Ok(t) => t,
            Err(why) => return fail(1, format!("Command failed: invalid configuration file: {why}")),
        };
        return match push(ctx, &text).await {
            Ok(()) => ok(SUCCEEDED),
            Err(why) => fail(1, format!("Command failed: {why}")),
        };
    }
    fail(USAGE, "Invalid option: --pull or --push.")
}

/// Per md of the scenario, each server's (data, cluster) GUIDs of its volume attached now.
fn current_guids(ctx: &Ctx) -> Guids {
    let mut out = Guids::new();
    for m in ctx.scenario.mirrors() {
        let mut of_md = BTreeMap::new();
        for s in &ctx.scenario.servers {
            if let Some(v) = ctx.world.volume_at(&s.name, &m.device) {
                of_md.insert(s.name.clone(), (volume_guid(&v, DATA_PART), volume_guid(&v, CLUSTER_PART)));
            }
        }
        out.insert(m.resource, of_md);
    }
    out
}

/// Per md resource, each server's (data, cluster) volume GUIDs.
type Guids = BTreeMap<ResourceName, BTreeMap<ServerName, (String, String)>>;

/// The `<md>` element of the simulated md resource, at depth 2.
fn md_lines(sc: &Scenario, m: &MdDefinition, guids: &BTreeMap<ServerName, (String, String)>) -> Vec<(usize, String)> {
    let mut l: Vec<(usize, String)> = Vec::new();
    let mut push = |d: usize, s: String| l.push((d, s));
    push(2, format!("<md name=\"{}\">", m.resource));
    push(3, "<parameters>".into());
    push(4, "<netdev id=\"0\">".into());
    push(5, "<priority>1</priority>".into());
    push(5, "<device>400</device>".into());
    push(5, "<mdcname>mdc1</mdcname>".into());
    push(4, "</netdev>".into());
    push(4, format!("<fullcopy>{}</fullcopy>", u8::from(m.initial_copy)));
    match (&m.data_partition, &m.cluster_partition) {
        (Partition::Letter(d), Partition::Letter(c)) => {
            push(4, format!("<volumemountpoint>{d}:</volumemountpoint>"));
            push(4, format!("<cpvolumemountpoint>{c}:</cpvolumemountpoint>"));
            push(3, "</parameters>".into());
            for s in &sc.servers {
                let (dg, cg) = guids.get(&s.name).cloned().unwrap_or_default();
                push(3, format!("<server name=\"{}\">", s.name));
                push(4, "<parameters>".into());
                push(5, format!("<volumeguid>{dg}</volumeguid>"));
                push(5, format!("<cpvolumeguid>{cg}</cpvolumeguid>"));
                push(4, "</parameters>".into());
                push(3, "</server>".into());
            }
        }
        (d, c) => {
            push(4, "<nmppath>/dev/NMP1</nmppath>".into());
            push(4, "<diskdev>".into());
            push(5, format!("<dppath>{d}</dppath>"));
            push(5, format!("<cppath>{c}</cppath>"));
            push(4, "</diskdev>".into());
            push(4, "<mount>".into());
            push(5, format!("<point>/mnt/{}</point>", m.resource));
            push(4, "</mount>".into());
            push(4, "<fs>ext4</fs>".into());
            // [U] the simulator does not keep mkfs: an md with the initial copy on is shown as
            // made with initial mkfs on too (an older cluster's settings), one without it off.
            push(4, format!("<mkfs>{}</mkfs>", u8::from(m.initial_copy)));
            push(3, "</parameters>".into());
        }
    }
    push(2, "</md>".into());
    l
}

/// The `clp.conf` CLUSTERPRO would hand out for the simulated cluster now.
/// The Japanese XML comment a [`FakeClp::set_conf_encoding`] file carries under `<root>`.
pub const JA_COMMENT: &str = "<!-- 受注システム クラスタ構成（運用チーム管理・変更禁止） -->";
/// The Japanese `<comment>` of the md resource in such a file.
pub const JA_MD_COMMENT: &str = "<comment>受注データ用ミラーディスク</comment>";
/// The Japanese `<comment>` of the business resource in such a file.
pub const JA_BUSINESS_COMMENT: &str = "<comment>受注アプリケーション</comment>";

/// The text of a pushed file in its declared encoding (`encoding_rs` labels; none = UTF-8). With
/// [`FakeClp::set_conf_encoding`], the declaration must be that label and the Japanese comments
/// must still be there.
fn decode_pushed(bytes: &[u8], label: Option<&str>) -> Result<String, String> {
    let head = String::from_utf8_lossy(&bytes[..bytes.len().min(100)]).into_owned();
    let declared = head.split("encoding=\"").nth(1).and_then(|r| r.split('"').next()).unwrap_or("UTF-8").to_owned();
    if let Some(want) = label
        && declared != want
    {
        return Err(format!("the file declares encoding {declared:?}, the cluster writes {want:?}"));
    }
    let encoding = encoding_rs::Encoding::for_label(declared.as_bytes())
        .ok_or_else(|| format!("unknown encoding {declared:?}"))?;
    let text = encoding
        .decode_without_bom_handling_and_without_replacement(bytes)
        .ok_or_else(|| format!("the file is not valid {declared}"))?
        .into_owned();
    if label.is_some() {
        for kept in [JA_COMMENT, JA_BUSINESS_COMMENT] {
            if !text.contains(kept) {
                return Err(format!("the operator's comment {kept:?} is gone"));
            }
        }
    }
    Ok(text)
}

fn render_conf(sc: &Scenario, config: &ClusterConfig, guids: &Guids, japanese: Option<&str>) -> String {
    let md = config.mirrors.first();
    // Each md's GUIDs by its name; the first md's are the scenario's first md's under any name.
    let first = guids.get(&sc.md).cloned().unwrap_or_default();
    let guids_of = |i: usize, m: &MdDefinition| {
        guids.get(&m.resource).cloned().unwrap_or_else(|| if i == 0 { first.clone() } else { BTreeMap::new() })
    };
    let auto = config.group_auto_start.get(&sc.group).copied().unwrap_or(true);
    let kind = sc.business_kind.as_str();
    let mut l: Vec<(usize, String)> = Vec::new();
    if japanese.is_some() {
        l.push((1, JA_COMMENT.to_owned()));
    }
    let os_word = match sc.os {
        Os::Windows => "windows",
        Os::Linux => "linux",
    };
    l.push((1, "<all>".into()));
    l.push((2, format!("<serveros>{os_word}</serveros>")));
    l.push((1, "</all>".into()));
    l.push((1, "<cluster>".into()));
    l.push((2, format!("<name>{}</name>", sc.cluster)));
    l.push((1, "</cluster>".into()));
    for (i, s) in sc.servers.iter().enumerate() {
        l.push((1, format!("<server name=\"{}\">", s.name)));
        l.push((2, format!("<priority>{i}</priority>")));
        l.push((1, "</server>".into()));
    }
    l.push((1, format!("<group name=\"{}\">", sc.group)));
    l.push((2, format!("<resource name=\"{kind}@{}\"/>", sc.business)));
    for m in &config.mirrors {
        l.push((2, format!("<resource name=\"md@{}\"/>", m.resource)));
    }
    l.push((2, format!("<start>{}</start>", u8::from(auto))));
    l.push((1, "</group>".into()));
    l.push((1, "<resource>".into()));
    l.push((2, format!("<types name=\"{kind}\"/>")));
    if md.is_some() {
        l.push((2, "<types name=\"md\"/>".into()));
    }
    l.push((2, format!("<{kind} name=\"{}\">", sc.business)));
    if japanese.is_some() {
        l.push((3, JA_BUSINESS_COMMENT.to_owned()));
    }
    for m in &config.mirrors {
        l.push((3, format!("<depend name=\"{}\"/>", m.resource)));
    }
    l.push((3, "<parameters>".into()));
    l.push((4, "<timeout>1800</timeout>".into()));
    l.push((3, "</parameters>".into()));
    l.push((2, format!("</{kind}>")));
    for (i, m) in config.mirrors.iter().enumerate() {
        let mut lines = md_lines(sc, m, &guids_of(i, m));
        if japanese.is_some() && i == 0 {
            lines.insert(1, (3, JA_MD_COMMENT.to_owned()));
        }
        l.extend(lines);
    }
    l.push((1, "</resource>".into()));
    l.push((1, "<monitor>".into()));
    if md.is_some() {
        l.push((2, "<types name=\"mdnw\"/>".into()));
        l.push((2, "<types name=\"mdw\"/>".into()));
    }
    l.push((2, "<types name=\"userw\"/>".into()));
    for (i, m) in config.mirrors.iter().enumerate() {
        for ty in ["mdnw", "mdw"] {
            l.push((2, format!("<{ty} name=\"{ty}{}\">", i + 1)));
            l.push((3, "<parameters>".into()));
            l.push((4, format!("<object>{}</object>", m.resource)));
            l.push((3, "</parameters>".into()));
            l.push((2, format!("</{ty}>")));
        }
    }
    l.push((2, "<userw name=\"userw\"/>".into()));
    l.push((1, "</monitor>".into()));
    let (unit, nl, enc) = match sc.os {
        Os::Windows => ("\t", "\r\n", japanese.unwrap_or("ASCII")),
        Os::Linux => ("  ", "\n", japanese.unwrap_or("UTF-8")),
    };
    let mut out = format!("<?xml version=\"1.0\" encoding=\"{enc}\"?>{nl}<root>{nl}");
    for (d, s) in l {
        out.push_str(&unit.repeat(d));
        out.push_str(&s);
        out.push_str(nl);
    }
    out.push_str("</root>");
    out.push_str(nl);
    out
}

/// A minimal element tree of a pushed file, for the fake's checks.
#[derive(Debug, Default)]
struct X {
    tag: String,
    name: Option<String>,
    text: String,
    children: Vec<X>,
}

impl X {
    fn parse(text: &str) -> Result<X, String> {
        use quick_xml::events::Event;
        let mut reader = quick_xml::Reader::from_str(text);
        let mut stack = vec![X::default()];
        let open = |s: &quick_xml::events::BytesStart<'_>| X {
            tag: String::from_utf8_lossy(s.name().as_ref()).into_owned(),
            name: s
                .attributes()
                .flatten()
                .find(|a| a.key.as_ref() == b"name")
                .map(|a| String::from_utf8_lossy(&a.value).into_owned()),
            ..X::default()
        };
        loop {
            match reader.read_event().map_err(|e| e.to_string())? {
                Event::Start(s) => stack.push(open(&s)),
                Event::Empty(s) => {
                    let e = open(&s);
                    stack.last_mut().ok_or("unbalanced")?.children.push(e);
                }
                Event::End(_) => {
                    let e = stack.pop().ok_or("unbalanced")?;
                    stack.last_mut().ok_or("unbalanced")?.children.push(e);
                }
                Event::Text(t) => {
                    if let Some(top) = stack.last_mut() {
                        top.text.push_str(&t.unescape().map_err(|e| e.to_string())?);
                    }
                }
                Event::Eof => break,
                _ => {}
            }
        }
        let mut doc = stack.pop().ok_or("unbalanced")?;
        doc.children.pop().ok_or_else(|| "no root element".to_owned())
    }
    fn child(&self, tag: &str) -> Option<&X> {
        self.children.iter().find(|c| c.tag == tag)
    }
    fn named(&self, tag: &str, name: &str) -> Option<&X> {
        self.children.iter().find(|c| c.tag == tag && c.name.as_deref() == Some(name))
    }
    fn path(&self, tags: &[&str]) -> Option<&X> {
        tags.iter().try_fold(self, |e, t| e.child(t))
    }
    fn value(&self) -> &str {
        self.text.trim()
    }
}

/// What a real md resource needs beyond what `read_config` reads.
async fn check_md(ctx: &Ctx, root: &X, md: &MdDefinition) -> Result<(), String> {
    let name = md.resource.as_str();
    let el = root.child("resource").and_then(|r| r.named("md", name)).ok_or("md element missing")?;
    let params = el.child("parameters").ok_or_else(|| format!("md {name} has no parameters"))?;
    if params.path(&["netdev", "mdcname"]).is_none() {
        return Err(format!("md {name} has no mirror connection (parameters/netdev/mdcname)"));
    }
    if ctx.scenario.os == Os::Linux && (params.path(&["mount", "point"]).is_none() || params.child("fs").is_none()) {
        return Err(format!("md {name} has no mount point or file system"));
    }
    if ctx.scenario.os == Os::Linux && !md.initial_copy && params.child("mkfs").map(X::value) != Some("0") {
        return Err(format!(
            "md {name}: initial mkfs ({:?}) must be off (0) when the initial mirror construction is skipped: \
             the disk holds data",
            params.child("mkfs").map(X::value)
        ));
    }
    let monitors = root.child("monitor").ok_or("no <monitor> section")?;
    for ty in ["mdw", "mdnw"] {
        let watched = monitors
            .children
            .iter()
            .any(|m| m.tag == ty && m.path(&["parameters", "object"]).is_some_and(|o| o.value() == name));
        if !watched {
            return Err(format!("no {ty} monitor watches md {name}"));
        }
    }
    let business = root
        .child("resource")
        .and_then(|r| r.named(&ctx.scenario.business_kind, ctx.scenario.business.as_str()))
        .ok_or("the business resource is missing")?;
    if business.named("depend", name).is_none() {
        return Err(format!(
            "{} no longer depends on md {name}: it would start without its data",
            ctx.scenario.business
        ));
    }
    if let (Partition::Letter(d), Partition::Letter(c)) = (&md.data_partition, &md.cluster_partition) {
        for s in &ctx.scenario.servers {
            let at = el.named("server", s.name.as_str()).and_then(|e| e.child("parameters"));
            let got = |tag: &str| at.and_then(|p| p.child(tag)).map(|e| e.value().to_owned());
            for (tag, letter) in [("volumeguid", *d), ("cpvolumeguid", *c)] {
                let want = guid_by_letter(ctx, &s.name, letter).await;
                if want.is_none() || got(tag) != want {
                    return Err(format!(
                        "md {name}: {tag} of {} is {:?} but the volume {letter}:\\ there is {:?}",
                        s.name,
                        got(tag),
                        want
                    ));
                }
            }
        }
    }
    Ok(())
}

/// Applies a pushed file to the simulator: checks it, then the changes it amounts to.
async fn push(ctx: &Ctx, text: &str) -> Result<(), String> {
    let pushed = read_config(text, ctx.scenario.os).map_err(|e| format!("invalid configuration file: {e}"))?;
    let root = X::parse(text).map_err(|e| format!("invalid configuration file: {e}"))?;
    for md in &pushed.mirrors {
        check_md(ctx, &root, md).await?;
    }
    let current = ctx.ports.cluster.config().await.map_err(|e| e.message)?;
    let mut changes = Vec::new();
    for m in &current.mirrors {
        if pushed.mirror(&m.resource).is_none() {
            changes.push(ConfigChange::RemoveMirror { resource: m.resource.clone() });
        }
    }
    for m in &pushed.mirrors {
        if current.mirror(&m.resource) != Some(m) {
            changes.push(ConfigChange::AddMirror(m.clone()));
        }
    }
    for (g, auto) in &pushed.group_auto_start {
        match current.group_auto_start.get(g) {
            None => return Err(format!("group {g} is not part of this cluster")),
            Some(a) if a != auto => changes.push(ConfigChange::SetGroupAutoStart { group: g.clone(), auto: *auto }),
            Some(_) => {}
        }
    }
    if changes.is_empty() {
        return Ok(());
    }
    ctx.ports.cluster.apply_config(&changes).await.map(|_| ()).map_err(|e| e.message)
}
