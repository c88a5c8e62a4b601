//! `mirrorctl bench`, footprint part: the real daemon's idle memory and CPU, and how fast it acts
//! on an edit.
//!
//! Unlike the other figures this runs in real time, on the real binary: the bench starts
//! `mirrorctl run --world lab` (its own executable, [`std::env::current_exe`], or the one
//! `--binary` names, e.g. a release build) on a directory of
//! generated desired-state files — copies of the runbook's cluster named `c0000`, `c0001`, …,
//! without schedule — in a state directory of its own, reads its JSON log on stderr, and stops it
//! by its pid at the end. Per directory size:
//!
//! - **ready**: wall time from the spawn until every cluster has logged `converged` (each file's
//!   first pass: one lab world created and observed per cluster);
//! - **idle RSS**: `VmRSS` from `/proc/<pid>/status`, sampled every second over the idle window
//!   that follows (the largest sample is reported; `VmHWM`, the peak since start, is shown too);
//! - **idle CPU**: (`utime` + `stime` from `/proc/<pid>/stat`, all threads) over the window ÷ the
//!   window. The window of a full run (65 s) contains one of the daemon's resyncs (every 60 s, a
//!   pass of every cluster), the `--quick` one (5 s) is shorter than the interval.
//!
//! Then, on the largest directory, **edit → first action**: `EDITS` times, the file of `c0000`
//! is replaced (write to a hidden temp file, rename — as editors and git-sync do) with a new
//! on-demand backup name in `take`; the latency runs from just before the rename to the moment
//! the daemon's log line of that backup's first step (`StepStarted`, written right after its
//! intent is in the journal) is read from the pipe. The next edit waits until that backup
//! completed and the cluster converged. Median and p99 (nearest rank) are reported.
//!
//! The lab world runs at ×[`SPEED`] model time, so the model's observation round trip (the 1 s
//! node command) costs 5 ms of the latency; what remains is the daemon's own reaction: the quiet
//! window after the rename (20 ms), re-reading the directory, starting the pass, its look at the
//! world, planning, the status document and the fsync'd intent. The
//! numbers are from whatever profile the measured binary was built with: the table names it, as
//! the binary's own `--version` states it (`(debug build)` / `(release build)`).

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{fresh_dir, table_head, table_row};
use crate::harness::HarnessError;

/// Lab speed of the measured daemon.
const SPEED: &str = "200";
/// The measured daemon's resync interval (its default).
const RESYNC: Duration = Duration::from_mins(1);
/// Idle RSS target with files to serve, MiB (issue 17: ≤ 32 MiB at 1,000 files, release build).
const RSS_TARGET_MIB: f64 = 32.0;
/// Idle RSS target with no file, MiB (issue 17: ≤ 10 MiB, release build).
const RSS_EMPTY_TARGET_MIB: f64 = 10.0;
/// Edit → first action target, ms (median and p99; issue 17: p99 ≤ 150 ms at 1,000 files).
const EDIT_TARGET_MS: f64 = 150.0;

/// The idle RSS target for a daemon serving `files` files, MiB.
fn rss_target_mib(files: usize) -> f64 {
    if files == 0 { RSS_EMPTY_TARGET_MIB } else { RSS_TARGET_MIB }
}
/// The example cluster the generated files copy.
const EXAMPLE: &str = include_str!("../../../desired-state/prod-db.toml");
/// How long to wait for the daemon to converge every file, or for one edit to be acted on.
const PATIENCE: Duration = Duration::from_mins(15);

/// Sizes and durations of one run.
struct Plan {
    files: [usize; 2],
    window: Duration,
    edits: usize,
    /// How long the AWS world's daemon is given to converge every file before its window opens.
    aws_ready: Duration,
}

const FULL: Plan =
    Plan { files: [0, 1000], window: Duration::from_secs(65), edits: 100, aws_ready: Duration::from_mins(5) };
const QUICK: Plan =
    Plan { files: [0, 20], window: Duration::from_secs(5), edits: 10, aws_ready: Duration::from_secs(20) };

/// One daemon's idle figures.
#[derive(Debug, Clone)]
pub(super) struct Idle {
    files: usize,
    /// Clusters converged when the window opened.
    converged: usize,
    ready: Duration,
    rss_kib: u64,
    hwm_kib: u64,
    cpu_pct: f64,
    window: Duration,
}

/// Everything the footprint part measured.
#[derive(Debug, Clone)]
pub(super) struct Footprint {
    binary: Binary,
    idle: Vec<Idle>,
    edit_files: usize,
    edits: Vec<Duration>,
    /// The same daemon on the AWS world.
    aws: Aws,
}

/// The footprint on the AWS world: measured, or why not.
#[derive(Debug, Clone)]
pub(super) enum Aws {
    /// Idle figures per directory size.
    Measured(Vec<Idle>),
    /// Why not (`moto_server` is not installed).
    NotMeasured(String),
}

/// The executable measured.
#[derive(Debug, Clone)]
pub(super) struct Binary {
    path: PathBuf,
    /// Named by `--binary` (rather than this executable).
    given: bool,
    /// `debug`, `release`, or `unknown` when its `--version` does not say.
    build: &'static str,
}

/// The binary to measure: `given` after checking it is an executable file, else this one.
pub(super) fn binary(given: Option<&Path>) -> Result<Binary, HarnessError> {
    let Some(path) = given else {
        let path = std::env::current_exe().map_err(|e| HarnessError::caused("cannot find my own executable", e))?;
        let build = if cfg!(debug_assertions) { "debug" } else { "release" };
        return Ok(Binary { path, given: false, build });
    };
    let usage = |what: &str| {
        HarnessError::Usage(format!(
            "--binary {}: {what}; give the path of a built mirrorctl, e.g. target/release/mirrorctl after \
             `cargo build --release`",
            path.display()
        ))
    };
    let meta = std::fs::metadata(path).map_err(|e| usage(&format!("cannot be read ({e})")))?;
    if !meta.is_file() {
        return Err(usage("is not a file"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if meta.permissions().mode() & 0o111 == 0 {
            return Err(usage("is not executable"));
        }
    }
    let version = Command::new(path)
        .arg("--version")
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .map_err(|e| usage(&format!("cannot be run ({e})")))?;
    let text = String::from_utf8_lossy(&version.stdout);
    if !version.status.success() || !text.starts_with("mirrorctl ") {
        return Err(usage("does not answer `--version` as mirrorctl does"));
    }
    let build = if text.contains("(release build)") {
        "release"
    } else if text.contains("(debug build)") {
        "debug"
    } else {
        "unknown"
    };
    Ok(Binary { path: path.to_path_buf(), given: true, build })
}

/// The world the measured daemon acts on.
enum World {
    /// `--world lab --speed` [`SPEED`]: one simulated world per cluster, in the daemon.
    Lab,
    /// `--world aws` with EC2 and Systems Manager on a local `moto_server`.
    Aws(Moto),
}

impl World {
    fn name(&self) -> &'static str {
        match self {
            World::Lab => "lab",
            World::Aws(_) => "aws",
        }
    }
    fn ready_limit(&self) -> Option<Duration> {
        match self {
            World::Lab => None,
            World::Aws(moto) => Some(moto.ready),
        }
    }
}

/// A `moto_server` on a free loopback port, standing for EC2 and Systems Manager, with one pair
/// of instances (zones 1a and 1c of ap-northeast-1) that every generated cluster names; stopped
/// by its pid when dropped.
///
/// What it stands for: moto answers `Describe*` from its own state and accepts Run Command, but
/// runs nothing on the instances, so no command answers for CLUSTERPRO or the disks. A cluster
/// with nothing to do observes (EC2 Describes, the commands) and converges; an edit asking for a
/// backup waits for a server to answer for the cluster. So idle memory and CPU are measured on
/// this world, edit → first action only on the lab.
struct Moto {
    child: Child,
    port: u16,
    instances: [String; 2],
    ready: Duration,
}

/// The region of the generated clusters.
const MOTO_REGION: &str = "ap-northeast-1";

impl Moto {
    /// `Err(why)` when `moto_server` is not on `PATH` (not measured; not an error).
    fn start(plan: &Plan) -> Result<Result<Moto, String>, HarnessError> {
        let on_path = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("moto_server").is_file()));
        if !on_path {
            return Ok(Err("moto_server is not installed (pip install 'moto[server]>=5,<6')".to_owned()));
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| HarnessError::caused("no free loopback port for moto_server", e))?
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            // Without its default AMIs (and their hundreds of snapshots, which every
            // DescribeSnapshots walks), moto answers the daemon's looks several times faster.
            .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| HarnessError::caused("cannot start moto_server", e))?;
        let mut moto = Moto { child, port, instances: [String::new(), String::new()], ready: plan.aws_ready };
        let deadline = Instant::now() + Duration::from_mins(1);
        while moto.request("GET", "/moto-api/data.json", "").is_err() {
            if Instant::now() > deadline {
                return Err(HarnessError::Failed(format!("moto_server did not answer on port {port} within 60 s")));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        for (i, zone) in ["a", "c"].into_iter().enumerate() {
            let body = format!(
                "Action=RunInstances&Version=2016-11-15&ImageId=ami-12c6146b&MinCount=1&MaxCount=1&\
                 InstanceType=t3.micro&Placement.AvailabilityZone={MOTO_REGION}{zone}"
            );
            let answer = moto.request("POST", "/", &body)?;
            let id = answer.split("<instanceId>").nth(1).and_then(|rest| rest.split('<').next()).ok_or_else(|| {
                HarnessError::Failed(format!("moto_server's RunInstances answer has no instance id: {answer}"))
            })?;
            id.clone_into(&mut moto.instances[i]);
        }
        Ok(Ok(moto))
    }

    /// One HTTP/1.0 request; the answer's body (an error for any status but 200).
    fn request(&self, method: &str, path: &str, body: &str) -> Result<String, HarnessError> {
        use std::io::{Read as _, Write as _};
        let fail = |e: std::io::Error| HarnessError::Failed(format!("moto_server on port {}: {e}", self.port));
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).map_err(fail)?;
        // moto takes the region from the signature's credential scope (not checked).
        let request = format!(
            "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
             Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{MOTO_REGION}/ec2/aws4_request, \
             SignedHeaders=host, Signature=0\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).map_err(fail)?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).map_err(fail)?;
        let (head, text) = answer.split_once("\r\n\r\n").unwrap_or((&answer, ""));
        if !head.lines().next().is_some_and(|l| l.contains(" 200")) {
            return Err(HarnessError::Failed(format!("moto_server answered {path}: {head}")));
        }
        Ok(text.to_owned())
    }

    /// The measured daemon's environment: every AWS endpoint on moto, fake static credentials.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{}", self.port)),
            ("AWS_REGION", MOTO_REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The daemon under measurement; killed (by its pid) when dropped.
struct Daemon {
    child: Child,
    /// JSON log lines with the instant each was read.
    lines: Arc<Mutex<Vec<(Instant, serde_json::Value)>>>,
}

impl Daemon {
    fn start(exe: &Path, dir: &Path, state: &Path, world: &World) -> Result<Daemon, HarnessError> {
        let mut cmd = Command::new(exe);
        cmd.arg("--state-dir").arg(state).args(["--log-format", "json", "run"]);
        match world {
            World::Lab => {
                cmd.args(["--world", "lab", "--speed", SPEED]);
            }
            World::Aws(moto) => {
                cmd.args(["--world", "aws"]).envs(moto.env());
            }
        }
        let mut child = cmd
            .args(["--listen", "127.0.0.1:0", "--grace", "5", "--resync"])
            .arg(RESYNC.as_secs().to_string())
            .arg("--dir")
            .arg(dir)
            .env_remove("MIRRORCTL_STATE_DIR")
            .env_remove("MIRRORCTL_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| HarnessError::caused("cannot start mirrorctl run", e))?;
        let stderr = child.stderr.take().ok_or_else(|| HarnessError::Failed("no stderr pipe to the daemon".into()))?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let at = Instant::now();
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) {
                    sink.lock().unwrap_or_else(std::sync::PoisonError::into_inner).push((at, v));
                }
            }
        });
        Ok(Daemon { child, lines })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn line_count(&self) -> usize {
        self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Polls `f` over the lines from `from` on until it answers, the daemon exits, or
    /// [`PATIENCE`] runs out.
    fn wait_for<T>(
        &mut self,
        what: &str,
        from: usize,
        mut f: impl FnMut(&[(Instant, serde_json::Value)]) -> Option<T>,
    ) -> Result<T, HarnessError> {
        let start = Instant::now();
        loop {
            let found = {
                let lines = self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                f(lines.get(from..).unwrap_or_default())
            };
            if let Some(x) = found {
                return Ok(x);
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(HarnessError::Failed(format!("the daemon exited ({status}) while waiting for {what}")));
            }
            if start.elapsed() > PATIENCE {
                return Err(HarnessError::Failed(format!("gave up waiting {PATIENCE:?} for {what}")));
            }
            // The reader thread stamps each line as it arrives: polling slower loses no precision.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field<'a>(v: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    v.get("fields")?.get(name)?.as_str()
}

/// The desired state of cluster `name`: the example without its schedule, with `take`.
fn desired(name: &str, take: &[String]) -> String {
    desired_on(name, take, None)
}

/// [`desired`], its two servers on the instances given (the example's otherwise).
fn desired_on(name: &str, take: &[String], instances: Option<&[String; 2]>) -> String {
    let example_instances = ["i-0123456789abcdef0", "i-0fedcba9876543210"];
    let body: Vec<String> = EXAMPLE
        .lines()
        .filter(|l| !l.starts_with("schedule") && !l.starts_with("take"))
        .map(|l| if l.starts_with("name = \"prod-db\"") { format!("name = \"{name}\"") } else { l.to_owned() })
        .map(|l| match instances {
            Some(ids) => l.replace(example_instances[0], &ids[0]).replace(example_instances[1], &ids[1]),
            None => l,
        })
        .collect();
    let names: Vec<String> = take.iter().map(|t| format!("\"{t}\"")).collect();
    // `[backup]` is the example's last table (its restore table is commented out).
    format!("{}\ntake = [{}]\n", body.join("\n"), names.join(", "))
}

fn cluster_name(i: usize) -> String {
    format!("c{i:04}")
}

/// Writes `text` to `dir/<name>.toml` the way editors and git-sync do: temp file, then rename.
/// Returns the instant just before the rename.
fn replace_file(dir: &Path, name: &str, text: &str) -> Result<Instant, HarnessError> {
    let tmp = dir.join(format!(".{name}.toml.tmp"));
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&tmp, text).map_err(|e| HarnessError::Failed(format!("writing {}: {e}", tmp.display())))?;
    let at = Instant::now();
    std::fs::rename(&tmp, &path).map_err(|e| HarnessError::Failed(format!("renaming to {}: {e}", path.display())))?;
    Ok(at)
}

/// `USER_HZ`, the unit of `utime`/`stime`: `AT_CLKTCK` from this process's auxiliary vector
/// (100 on every Linux this runs on, used when the vector cannot be read).
fn clock_ticks_per_s() -> f64 {
    const AT_CLKTCK: u64 = 17;
    let Ok(auxv) = std::fs::read("/proc/self/auxv") else {
        return 100.0;
    };
    let words: Vec<u64> = auxv.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().unwrap_or([0; 8]))).collect();
    words.chunks_exact(2).find(|kv| kv[0] == AT_CLKTCK && kv[1] > 0).map_or(100.0, |kv| {
        #[allow(clippy::cast_precision_loss)] // a tick rate is tiny
        let hz = kv[1] as f64;
        hz
    })
}

/// `utime + stime` of `pid`, in ticks.
fn cpu_ticks(pid: u32) -> Result<u64, HarnessError> {
    let path = format!("/proc/{pid}/stat");
    let text = std::fs::read_to_string(&path).map_err(|e| HarnessError::caused(format!("reading {path}"), e))?;
    // The command name is in parentheses and may hold spaces: count fields after the last ')'.
    let rest = text.rsplit_once(')').map(|(_, r)| r).ok_or_else(|| HarnessError::Failed(format!("{path}: no ')'")))?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line; the state (field 3) is the first after ')'.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| HarnessError::Failed(format!("{path}: field {}", i + 3)))
    };
    Ok(tick(11)? + tick(12)?)
}

/// `(VmRSS, VmHWM)` of `pid` in KiB.
fn memory_kib(pid: u32) -> Result<(u64, u64), HarnessError> {
    let path = format!("/proc/{pid}/status");
    let text = std::fs::read_to_string(&path).map_err(|e| HarnessError::caused(format!("reading {path}"), e))?;
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| HarnessError::Failed(format!("{path}: no {key}")))
    };
    Ok((value("VmRSS:")?, value("VmHWM:")?))
}

/// Starts a daemon (`exe`) on `files` generated files in `world` and measures it idle.
fn idle(
    exe: &Path,
    base: &Path,
    files: usize,
    window: Duration,
    world: &World,
) -> Result<(Idle, Daemon, PathBuf), HarnessError> {
    let root = fresh_dir(base, &format!("footprint-{}-{files}", world.name()))?;
    let dir = root.join("desired-state");
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::Failed(format!("creating {}: {e}", dir.display())))?;
    let instances = match world {
        World::Lab => None,
        World::Aws(moto) => Some(moto.instances.clone()),
    };
    for i in 0..files {
        let name = cluster_name(i);
        let path = dir.join(format!("{name}.toml"));
        std::fs::write(&path, desired_on(&name, &[], instances.as_ref()))
            .map_err(|e| HarnessError::Failed(format!("writing {}: {e}", path.display())))?;
    }
    let started = Instant::now();
    let mut daemon = Daemon::start(exe, &dir, &root.join("state"), world)?;
    daemon.wait_for("the daemon to start", 0, |lines| {
        lines.iter().any(|(_, v)| field(v, "message") == Some("mirrorctl daemon started")).then_some(())
    })?;
    let mut converged = std::collections::BTreeSet::new();
    let mut seen = 0;
    // On the AWS world the first passes queue for the default request budgets (SSM's above
    // all): the window opens at the limit whether or not every cluster converged by then.
    let limit = world.ready_limit();
    daemon.wait_for(&format!("all {files} clusters to converge"), 0, |lines| {
        for (_, v) in &lines[seen..] {
            if field(v, "message") == Some("converged")
                && let Some(c) = field(v, "cluster")
            {
                converged.insert(c.to_owned());
            }
        }
        seen = lines.len();
        (converged.len() >= files || limit.is_some_and(|l| started.elapsed() >= l)).then_some(())
    })?;
    let ready = started.elapsed();
    let converged = converged.len().min(files);
    // Let the last status writes and world saves finish before the window opens.
    std::thread::sleep(Duration::from_secs(2));
    let pid = daemon.pid();
    let (t0, c0) = (Instant::now(), cpu_ticks(pid)?);
    let (mut rss_kib, mut hwm_kib) = memory_kib(pid)?;
    while t0.elapsed() < window {
        std::thread::sleep(Duration::from_secs(1).min(window.saturating_sub(t0.elapsed())));
        let (rss, hwm) = memory_kib(pid)?;
        rss_kib = rss_kib.max(rss);
        hwm_kib = hwm_kib.max(hwm);
    }
    let (t1, c1) = (Instant::now(), cpu_ticks(pid)?);
    #[allow(clippy::cast_precision_loss)] // tick counts are small
    let cpu_pct = 100.0 * (c1.saturating_sub(c0)) as f64 / clock_ticks_per_s() / t1.duration_since(t0).as_secs_f64();
    Ok((Idle { files, converged, ready, rss_kib, hwm_kib, cpu_pct, window: t1.duration_since(t0) }, daemon, dir))
}

/// `edits` edits of `c0000` in `dir`, each a new on-demand backup: write → first step latencies.
fn edit_latencies(daemon: &mut Daemon, dir: &Path, edits: usize) -> Result<Vec<Duration>, HarnessError> {
    let cluster = cluster_name(0);
    let mut out = Vec::with_capacity(edits);
    for k in 1..=edits {
        let name = format!("e{k:04}");
        let op = format!("backup/{name}");
        let step_prefix = format!("{op}/");
        let from = daemon.line_count();
        let wrote = replace_file(dir, &cluster, &desired(&cluster, std::slice::from_ref(&name)))?;
        let first = daemon.wait_for(&format!("the first step of {op}"), from, |lines| {
            lines
                .iter()
                .find(|(_, v)| {
                    field(v, "cluster") == Some(&cluster)
                        && field(v, "step").is_some_and(|s| s.starts_with(&step_prefix))
                })
                .map(|(at, _)| *at)
        })?;
        out.push(first.saturating_duration_since(wrote));
        daemon.wait_for(&format!("{op} to complete and {cluster} to converge"), from, |lines| {
            let done = lines
                .iter()
                .position(|(_, v)| field(v, "message") == Some("operation completed") && field(v, "op") == Some(&op))?;
            lines[done..]
                .iter()
                .any(|(_, v)| field(v, "message") == Some("converged") && field(v, "cluster") == Some(&cluster))
                .then_some(())
        })?;
    }
    Ok(out)
}

/// Runs the footprint part (real time, on `binary`).
pub(super) fn measure(base: &Path, quick: bool, binary: &Binary) -> Result<Footprint, HarnessError> {
    let plan = if quick { QUICK } else { FULL };
    let mut idles = Vec::new();
    let mut edits = Vec::new();
    let last = plan.files.len() - 1;
    for (i, files) in plan.files.iter().enumerate() {
        let (figures, mut daemon, dir) = idle(&binary.path, base, *files, plan.window, &World::Lab)?;
        idles.push(figures);
        if i == last {
            edits = edit_latencies(&mut daemon, &dir, plan.edits)?;
        }
        drop(daemon);
        if let Some(root) = dir.parent() {
            let _ = std::fs::remove_dir_all(root);
        }
    }
    let aws = match Moto::start(&plan)? {
        Err(why) => Aws::NotMeasured(why),
        Ok(moto) => {
            let world = World::Aws(moto);
            let mut figures = Vec::new();
            for files in plan.files {
                let (idle, daemon, dir) = idle(&binary.path, base, files, plan.window, &world)?;
                figures.push(idle);
                drop(daemon);
                if let Some(root) = dir.parent() {
                    let _ = std::fs::remove_dir_all(root);
                }
            }
            Aws::Measured(figures)
        }
    };
    Ok(Footprint { binary: binary.clone(), idle: idles, edit_files: plan.files[last], edits, aws })
}

/// Nearest-rank percentile `p` (0–100) of `xs`.
fn percentile(xs: &[Duration], p: f64) -> Duration {
    let mut sorted = xs.to_vec();
    sorted.sort();
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)] // small counts
    let rank = ((p / 100.0) * sorted.len() as f64).ceil().max(1.0) as usize;
    sorted.get(rank - 1).copied().unwrap_or_default()
}

#[allow(clippy::cast_precision_loss)] // KiB counts are small
fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The idle rows of one world's table.
fn idle_rows(out: &mut String, idle: &[Idle]) {
    for i in idle {
        let ready = if i.converged >= i.files {
            format!("all converged {:.1}s after start", i.ready.as_secs_f64())
        } else {
            format!(
                "{} of {} converged {:.0}s after start (still working)",
                i.converged,
                i.files,
                i.ready.as_secs_f64()
            )
        };
        table_row(
            out,
            &format!("idle RSS MiB, {} files", i.files),
            &format!("{:.1}", mib(i.rss_kib)),
            &format!("<= {:.0}", rss_target_mib(i.files)),
            Some(mib(i.rss_kib) <= rss_target_mib(i.files)),
            &format!("peak since start {:.1} MiB; {ready}", mib(i.hwm_kib)),
        );
        table_row(
            out,
            &format!("idle CPU %, {} files", i.files),
            &format!("{:.2}", i.cpu_pct),
            "-",
            None,
            &format!(
                "over {:.0}s, {} the {:.0} s resync",
                i.window.as_secs_f64(),
                if i.window > RESYNC { "including" } else { "shorter than" },
                RESYNC.as_secs_f64()
            ),
        );
    }
}

/// The footprint table.
pub(super) fn render(f: &Footprint) -> String {
    let mut out = String::new();
    let build = f.binary.build;
    let which = if f.binary.given { f.binary.path.display().to_string() } else { "this binary".to_owned() };
    table_head(
        &mut out,
        &format!("daemon footprint (`mirrorctl run --world lab --speed {SPEED}` of {which}, real time, {build} build)"),
    );
    idle_rows(&mut out, &f.idle);
    if !f.edits.is_empty() {
        for (what, p) in [("median", 50.0), ("p99", 99.0)] {
            let ms = percentile(&f.edits, p).as_secs_f64() * 1000.0;
            table_row(
                &mut out,
                &format!("edit -> first action ms, {what}"),
                &format!("{ms:.0}"),
                &format!("<= {EDIT_TARGET_MS:.0}"),
                Some(ms <= EDIT_TARGET_MS),
                &format!("{} edits of one file among {}", f.edits.len(), f.edit_files),
            );
        }
    }
    match &f.aws {
        Aws::Measured(idle) => {
            table_head(
                &mut out,
                &format!(
                    "daemon footprint on the AWS world (`mirrorctl run --world aws` of {which}, EC2 and SSM on \
                     moto_server, no command answered on the nodes; real time, {build} build)"
                ),
            );
            idle_rows(&mut out, idle);
        }
        Aws::NotMeasured(why) => {
            table_head(&mut out, "daemon footprint on the AWS world");
            table_row(&mut out, "AWS world", "-", "-", None, &format!("not measured: {why}"));
        }
    }
    out
}

/// The footprint as JSON (`bench -o json`): wall time, the binary measured and its build.
pub(super) fn json(f: &Footprint) -> serde_json::Value {
    let idle_json = |idle: &[Idle]| -> Vec<serde_json::Value> {
        idle.iter()
            .map(|i| {
                serde_json::json!({
                    "files": i.files,
                    "converged": i.converged,
                    "ready_s": i.ready.as_secs_f64(),
                    "rss_mib": mib(i.rss_kib),
                    "peak_rss_mib": mib(i.hwm_kib),
                    "rss_target_mib": rss_target_mib(i.files),
                    "rss_pass": mib(i.rss_kib) <= rss_target_mib(i.files),
                    "cpu_pct": i.cpu_pct,
                    "window_s": i.window.as_secs_f64(),
                })
            })
            .collect()
    };
    let idle = idle_json(&f.idle);
    let aws = match &f.aws {
        Aws::Measured(i) => serde_json::json!({"measured": true, "world": "aws-on-moto", "idle": idle_json(i)}),
        Aws::NotMeasured(why) => serde_json::json!({"measured": false, "why": why}),
    };
    let edit = (!f.edits.is_empty()).then(|| {
        let (median, p99) = (percentile(&f.edits, 50.0), percentile(&f.edits, 99.0));
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        serde_json::json!({
            "files": f.edit_files,
            "edits": f.edits.len(),
            "median_ms": ms(median),
            "p99_ms": ms(p99),
            "target_ms": EDIT_TARGET_MS,
            "pass": ms(median) <= EDIT_TARGET_MS && ms(p99) <= EDIT_TARGET_MS,
        })
    });
    serde_json::json!({
        "time": "wall",
        "world": "lab",
        "binary": {"path": f.binary.path.display().to_string(), "given": f.binary.given, "build": f.binary.build},
        "idle": idle,
        "edit_to_first_action": edit,
        "aws": aws,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_files_are_valid_desired_state() {
        let text = desired("c0042", &["e0001".to_owned()]);
        let spec = crate::spec::load_str(Path::new("c0042.toml"), &text).expect("valid");
        assert_eq!(spec.cluster.name.as_str(), "c0042");
        let backup = spec.backup.expect("backup table");
        assert!(backup.schedules.is_empty());
        assert_eq!(backup.take.iter().map(ToString::to_string).collect::<Vec<_>>(), ["e0001"]);
    }

    #[test]
    fn generated_files_can_name_other_instances() {
        let ids = ["i-00000000000000001".to_owned(), "i-00000000000000002".to_owned()];
        let text = desired_on("c0001", &[], Some(&ids));
        let spec = crate::spec::load_str(Path::new("c0001.toml"), &text).expect("valid");
        let got: Vec<String> = spec.cluster.servers.iter().map(|s| s.instance.to_string()).collect();
        assert_eq!(got, ids);
    }

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let xs: Vec<Duration> = (1..=100).rev().map(Duration::from_millis).collect();
        assert_eq!(percentile(&xs, 50.0), Duration::from_millis(50));
        assert_eq!(percentile(&xs, 99.0), Duration::from_millis(99));
        assert_eq!(percentile(&xs[..10], 99.0), Duration::from_millis(100));
    }

    /// The table's text, on figures made up for it: every row with its number, target and verdict,
    /// and the binary and build measured in the title (the CLI test measures through `-o json`).
    #[test]
    fn the_footprint_table_shows_every_figure_with_its_verdict() {
        let idle = |files, rss_mib: u64| Idle {
            files,
            converged: files,
            ready: Duration::from_secs(2),
            rss_kib: rss_mib * 1024,
            hwm_kib: rss_mib * 1024 + 512,
            cpu_pct: 0.25,
            window: Duration::from_secs(30),
        };
        let f = Footprint {
            binary: Binary { path: PathBuf::from("/opt/mirrorctl"), given: true, build: "release" },
            idle: vec![idle(0, 9), idle(20, 40)],
            edit_files: 20,
            edits: (1..=100).map(Duration::from_millis).collect(),
            aws: Aws::Measured(vec![idle(0, 8), Idle { converged: 15, ..idle(20, 30) }]),
        };
        let text = render(&f);
        assert!(text.contains("of /opt/mirrorctl, real time, release build)"), "{text}");
        let row = |name: &str| text.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {text}"));
        assert!(
            row("idle RSS MiB, 0 files").contains("9.0") && row("idle RSS MiB, 0 files").contains("PASS"),
            "{text}"
        );
        assert!(
            row("idle RSS MiB, 20 files").contains("40.0") && row("idle RSS MiB, 20 files").contains("MISS"),
            "{text}"
        );
        assert!(row("idle CPU %, 20 files").contains("0.25"), "{text}");
        assert!(row("edit -> first action ms, median").contains("50"), "{text}");
        assert!(
            row("edit -> first action ms, p99").contains("99") && row("edit -> first action ms, p99").contains("PASS"),
            "{text}"
        );
        let aws = text.split("on the AWS world").nth(1).unwrap_or_else(|| panic!("an AWS table: {text}"));
        let aws_row = |name: &str| aws.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{name}: {aws}"));
        assert!(aws_row("idle RSS MiB, 0 files").contains("8.0"), "{aws}");
        assert!(aws_row("idle RSS MiB, 20 files").contains("15 of 20 converged"), "{aws}");
        let this = Footprint {
            binary: Binary { given: false, build: "debug", ..f.binary.clone() },
            aws: Aws::NotMeasured("moto_server is not installed".into()),
            ..f
        };
        let text = render(&this);
        assert!(text.contains("of this binary, real time, debug build)"));
        assert!(text.contains("not measured: moto_server is not installed"), "{text}");
        assert_eq!(json(&this)["aws"]["measured"], false);
    }

    #[test]
    fn cpu_and_memory_of_this_process_can_be_read() {
        let pid = std::process::id();
        assert!(cpu_ticks(pid).is_ok());
        let (rss, hwm) = memory_kib(pid).expect("status");
        assert!(rss > 0 && hwm >= rss);
        assert!(clock_ticks_per_s() > 0.0);
    }
}
