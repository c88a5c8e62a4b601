//! Process-level tests of `mirrorctl run`: the real binary, temporary directories, a fast lab
//! world, the HTTP endpoints on a free loopback port, and real signals.
//!
//! Every child process is owned by a guard that kills it on drop, so a failing assertion never
//! leaves a daemon behind. Latencies are measured and printed (run with `--nocapture`), never
//! asserted: timing claims belong in benchmarks.

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mirrorctl::journal::Record;
use mirrorctl::journal::writer::Journal;
use mirrorctl::ports::store::Store as _;

const BIN: &str = env!("CARGO_BIN_EXE_mirrorctl");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const PATIENCE: Duration = Duration::from_mins(1);

/// The example `prod-db` file without its schedule, with `take` as given.
fn desired(take: &[&str]) -> String {
    let text = std::fs::read_to_string(Path::new(REPO).join("desired-state/prod-db.toml")).expect("example");
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("schedule") && !l.starts_with("take")).collect();
    let names: Vec<String> = take.iter().map(|t| format!("\"{t}\"")).collect();
    // `[backup]` is the last table of the examples (the restore table is commented out).
    format!("{}\ntake = [{}]\n", kept.join("\n"), names.join(", "))
}

/// A temporary working directory whose `ds/prod-db.toml` asks for the backups `take`.
fn desired_dir(take: &[&str]) -> tempfile::TempDir {
    let tmp = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir(tmp.path().join("ds")).expect("ds");
    std::fs::write(tmp.path().join("ds/prod-db.toml"), desired(take)).expect("desired state");
    tmp
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port()
}

/// A running daemon; killed on drop.
struct Daemon {
    child: Child,
    port: u16,
    /// stderr lines with the instant each was read.
    lines: Arc<Mutex<Vec<(Instant, String)>>>,
}

impl Daemon {
    fn start(cwd: &Path, dir: &str, speed: &str, grace: &str) -> Daemon {
        Daemon::spawn(cwd, &["--dir", dir, "--world", "lab", "--speed", speed, "--grace", grace], &[])
    }

    /// `mirrorctl run` with `args` (and `--listen`, `--state-dir state`) and extra environment.
    fn spawn(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        Daemon::spawn_on(cwd, "state", args, env)
    }

    /// `mirrorctl run` with `args` (and `--listen`, `--state-dir state`) and extra environment.
    fn spawn_on(cwd: &Path, state: &str, args: &[&str], env: &[(&str, &str)]) -> Daemon {
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let mut child = Command::new(BIN)
            .current_dir(cwd)
            .arg("run")
            .args(args)
            .args(["--listen", &listen, "--state-dir", state])
            .env_remove("MIRRORCTL_STATE_DIR")
            .env_remove("MIRRORCTL_LOG")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn mirrorctl run");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap().push((Instant::now(), line));
            }
        });
        let d = Daemon { child, port, lines };
        d.until("the HTTP endpoint", || d.get("/healthz").map(|_| ()));
        d
    }

    /// GET `path`: (status code, body), or `None` when nothing answers.
    fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", self.port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        write!(s, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        let code = text.split_whitespace().nth(1)?.parse().ok()?;
        let body = text.split_once("\r\n\r\n")?.1.to_owned();
        Some((code, body))
    }

    /// The value of the metric line starting with `series` (name and labels).
    fn metric(&self, series: &str) -> f64 {
        let (_, body) = self.get("/metrics").expect("/metrics answers");
        body.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
            .unwrap_or(0.0)
    }

    fn until<T>(&self, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(x) = f() {
                return x;
            }
            assert!(start.elapsed() < PATIENCE, "gave up waiting for {what}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// When the first stderr line containing `text` arrived.
    fn line_with(&self, text: &str) -> Option<Instant> {
        self.lines.lock().unwrap().iter().find(|(_, l)| l.contains(text)).map(|(t, _)| *t)
    }

    fn wait_line(&self, text: &str) -> Instant {
        self.until(&format!("a log line with {text:?}"), || self.line_with(text))
    }

    fn log(&self) -> String {
        self.lines.lock().unwrap().iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>().join("\n")
    }

    fn signal(&self, name: &str) {
        let ok = Command::new("kill").args([&format!("-{name}"), &self.child.id().to_string()]).status().expect("kill");
        assert!(ok.success());
    }

    /// Kills the process with SIGKILL and reaps it: it cannot release anything.
    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits for the process to exit; its code.
    fn wait_exit(&mut self, limit: Duration) -> i32 {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(start.elapsed() < limit, "did not exit within {limit:?}; log:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status(cwd: &Path) -> Option<serde_json::Value> {
    let body = std::fs::read(cwd.join("state/status/prod-db.json")).ok()?;
    serde_json::from_slice(&body).ok()
}

fn completed(cwd: &Path, op: &str) -> Option<serde_json::Value> {
    status(cwd).filter(|s| s["operations"][op]["state"] == "completed")
}

#[test]
fn an_edit_is_acted_on_and_metrics_and_readiness_follow() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    std::fs::create_dir(cwd.join("ds")).unwrap();
    // The first pass takes a backup: at ×50 it lasts seconds, long enough to see "not ready".
    std::fs::write(cwd.join("ds/prod-db.toml"), desired(&["b0"])).unwrap();
    let d = Daemon::start(cwd, "ds", "50", "20");
    let (code, _) = d.get("/readyz").expect("/readyz answers");
    assert_eq!(code, 503, "not ready before the first pass ended");
    d.until("ready", || (d.get("/readyz")?.0 == 200).then_some(()));
    assert!(completed(cwd, "backup/b0").is_some(), "ready means the first pass ended");
    let passes = d.metric("mirrorctl_reconcile_passes_total{cluster=\"prod-db\",outcome=\"converged\"}");
    assert!(passes >= 1.0, "a converged pass was counted");
    let stops = d.metric("mirrorctl_steps_total{api=\"clp:stop_resource\",outcome=\"ok\"}");
    assert!((stops - 1.0).abs() < f64::EPSILON, "one md stop so far, not {stops}");

    // The edit: a new on-demand backup. Measure write → first step of it in the log.
    let wrote = Instant::now();
    std::fs::write(cwd.join("ds/prod-db.toml"), desired(&["b0", "b1"])).unwrap();
    let first = d.wait_line("backup/b1/stop-md");
    println!("edit → first action latency: {:?}", first.duration_since(wrote));
    d.until("b1 completed", || completed(cwd, "backup/b1"));
    d.until("the step counter increased", || {
        (d.metric("mirrorctl_steps_total{api=\"clp:stop_resource\",outcome=\"ok\"}") >= 2.0).then_some(())
    });
    let (_, body) = d.get("/metrics").unwrap();
    assert!(body.contains("mirrorctl_cluster_phase{cluster=\"prod-db\",phase=\"converged\"} 1"), "{body}");
    assert!(body.contains("mirrorctl_last_pass_timestamp_seconds{cluster=\"prod-db\"}"), "{body}");
}

/// On the lab world the daemon projects an operation's whole sequence once its cluster has work:
/// mid-backup the status counts the steps done of the total and gives an ETA marked as an
/// estimate (fails before the daemon had a projector: `steps_total` and `eta` stayed null).
#[test]
fn the_daemons_status_counts_an_operations_steps_and_gives_its_eta() {
    let tmp = desired_dir(&[]);
    let cwd = tmp.path();
    // ×10: a backup lasts seconds of wall time, long enough to read the status mid-way.
    let d = Daemon::start(cwd, "ds", "10", "20");
    d.until("the first pass (nothing to do)", || status(cwd).filter(|s| s["phase"] == "converged"));
    std::fs::write(cwd.join("ds/prod-db.toml"), desired(&["b1"])).unwrap();
    let progress = d.until("the backup's step total in the status", || {
        status(cwd)
            .map(|s| s["progress"].clone())
            .filter(|p| p["operation"] == "backup/b1" && p["steps_total"].is_u64())
    });
    let (done, total) = (progress["steps_done"].as_u64().unwrap(), progress["steps_total"].as_u64().unwrap());
    assert!(total >= 4 && done <= total, "{progress}");
    assert_eq!(progress["eta"]["estimate"], true, "{progress}");
    assert!(progress["eta"]["basis"].as_str().is_some_and(|b| b.contains("projected")), "{progress}");
    assert!(progress["eta"]["at"].is_string(), "{progress}");
    let finished = d.until("b1 completed", || completed(cwd, "backup/b1"));
    assert!(finished["progress"].is_null(), "no progress once nothing is under way: {finished}");
}

/// One daemon per state directory: a second `mirrorctl run` on it refuses to start, saying why,
/// while the first goes on serving.
#[test]
fn a_second_daemon_on_the_same_state_directory_refuses_to_start() {
    let tmp = desired_dir(&[]);
    let cwd = tmp.path();
    let d = Daemon::start(cwd, "ds", "1000", "20");
    let mut second = Command::new(BIN)
        .current_dir(cwd)
        .args(["run", "--dir", "ds", "--world", "lab", "--listen", "127.0.0.1:0", "--state-dir", "state"])
        .env_remove("MIRRORCTL_STATE_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("second daemon");
    // It must give up at once; one that runs is killed (by its own pid) and fails the test.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = second.try_wait().expect("wait") {
            break Some(status);
        }
        if start.elapsed() > Duration::from_secs(15) {
            let _ = second.kill();
            let _ = second.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    second.stderr.take().expect("stderr").read_to_string(&mut stderr).expect("read stderr");
    let status = status.unwrap_or_else(|| panic!("a second daemon on the same state directory kept running: {stderr}"));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("another mirrorctl daemon runs on the state directory"), "{stderr}");
    assert!(d.get("/healthz").is_some(), "the first daemon still serves");
}

#[test]
fn a_git_sync_symlink_swap_and_an_editor_save_are_both_seen() {
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    for (rev, take) in [("rev1", &[][..]), ("rev2", &["b1"][..])] {
        std::fs::create_dir(cwd.join(rev)).unwrap();
        std::fs::write(cwd.join(rev).join("prod-db.toml"), desired(take)).unwrap();
    }
    std::os::unix::fs::symlink("rev1", cwd.join("current")).unwrap();
    let d = Daemon::start(cwd, "current", "1000", "20");
    d.until("ready", || (d.get("/readyz")?.0 == 200).then_some(()));

    // git-sync: a new link to the new checkout, renamed over the old one (atomic).
    let swapped = Instant::now();
    std::os::unix::fs::symlink("rev2", cwd.join("current.tmp")).unwrap();
    std::fs::rename(cwd.join("current.tmp"), cwd.join("current")).unwrap();
    let first = d.wait_line("backup/b1/stop-md");
    println!("symlink swap → first action latency: {:?}", first.duration_since(swapped));
    d.until("b1 completed", || completed(cwd, "backup/b1"));

    // An editor's save in the new checkout: temp file, then rename over the original.
    let saved = Instant::now();
    std::fs::write(cwd.join("rev2/.prod-db.toml.swp"), desired(&["b1", "b2"])).unwrap();
    std::fs::rename(cwd.join("rev2/.prod-db.toml.swp"), cwd.join("rev2/prod-db.toml")).unwrap();
    let first = d.wait_line("backup/b2/stop-md");
    println!("editor save → first action latency: {:?}", first.duration_since(saved));
    d.until("b2 completed", || completed(cwd, "backup/b2"));
}

#[test]
fn sigterm_mid_step_exits_in_the_grace_period_and_a_restart_finishes_without_repeating() {
    let tmp = desired_dir(&["b1"]);
    let cwd = tmp.path();
    let mut d = Daemon::start(cwd, "ds", "20", "20");
    // The md stop takes seconds of model time: signal while it is in flight.
    d.wait_line("step=backup/b1/stop-md@server1");
    let signalled = Instant::now();
    d.signal("TERM");
    let code = d.wait_exit(Duration::from_secs(25));
    println!("SIGTERM → exit: {:?} (code {code})", signalled.elapsed());
    assert_eq!(code, 0, "stopped cleanly at a step boundary; log:\n{}", d.log());
    let journal = Journal::path_for(&cwd.join("state"), &mirrorctl::ids::ClusterName::parse("prod-db").unwrap());
    let records = mirrorctl::journal::read_file(&journal).unwrap();
    let intents = records.iter().filter(|r| matches!(r, Record::Intent { .. })).count();
    let results = records.iter().filter(|r| matches!(r, Record::Result { .. })).count();
    assert_eq!(intents, results, "no intent left without its result: the step in flight was finished");
    assert!(completed(cwd, "backup/b1").is_none(), "the shutdown came before the backup ended");
    drop(d);

    let d = Daemon::start(cwd, "ds", "1000", "20");
    d.until("b1 completed after the restart", || completed(cwd, "backup/b1"));
    nothing_done_twice(cwd);
}

/// Every step succeeded at most once, and one snapshot was taken for `b1`.
fn nothing_done_twice(cwd: &Path) {
    let journal = Journal::path_for(&cwd.join("state"), &mirrorctl::ids::ClusterName::parse("prod-db").unwrap());
    let mut ok_by_step = std::collections::BTreeMap::<String, usize>::new();
    for r in &mirrorctl::journal::read_file(&journal).unwrap() {
        if let Record::Result { step, ok: true, .. } = r {
            *ok_by_step.entry(step.0.clone()).or_default() += 1;
        }
    }
    assert!(ok_by_step.values().all(|n| *n == 1), "a step succeeded twice: {ok_by_step:?}");
    let s = status(cwd).unwrap();
    let snapshots = s["inventory"]["snapshots"].as_object().unwrap();
    assert_eq!(snapshots.values().filter(|v| v["name"] == "b1").count(), 1, "{snapshots:?}");
}

#[test]
fn a_second_signal_exits_at_once_and_the_journal_resolves_the_cut_step() {
    let tmp = desired_dir(&["b1"]);
    let cwd = tmp.path();
    // At ×0.5 stopping md takes about five seconds: both signals land while it is in flight.
    let mut d = Daemon::start(cwd, "ds", "0.5", "20");
    d.wait_line("step=backup/b1/stop-md@server1");
    d.signal("TERM");
    std::thread::sleep(Duration::from_millis(100));
    d.signal("INT");
    let code = d.wait_exit(Duration::from_secs(10));
    assert_eq!(code, 130, "log:\n{}", d.log());
    drop(d);
    let journal = Journal::path_for(&cwd.join("state"), &mirrorctl::ids::ClusterName::parse("prod-db").unwrap());
    let records = mirrorctl::journal::read_file(&journal).unwrap();
    let intents = records.iter().filter(|r| matches!(r, Record::Intent { .. })).count();
    let results = records.iter().filter(|r| matches!(r, Record::Result { .. })).count();
    assert_eq!(intents, results + 1, "the md stop was cut between its intent and its result");
    let d = Daemon::start(cwd, "ds", "1000", "20");
    d.until("b1 completed after the restart", || completed(cwd, "backup/b1"));
    nothing_done_twice(cwd);
}

#[test]
fn the_grace_period_bounds_a_shutdown() {
    let tmp = desired_dir(&["b1"]);
    let cwd = tmp.path();
    // At ×0.5 stopping md takes several seconds, longer than the 1 s grace period.
    let mut d = Daemon::start(cwd, "ds", "0.5", "1");
    d.wait_line("step=backup/b1/stop-md@server1");
    let signalled = Instant::now();
    d.signal("TERM");
    let code = d.wait_exit(Duration::from_secs(10));
    println!("SIGTERM with 1 s grace → exit: {:?}", signalled.elapsed());
    assert_eq!(code, 1, "the grace period ran out with a step in flight; log:\n{}", d.log());
}

/// `--world aws` is the real world: with EC2 and SSM unreachable the daemon keeps serving, says
/// why the cluster cannot be observed in its status document, and stops cleanly.
#[test]
fn the_aws_world_reports_an_unreachable_cluster_and_keeps_serving() {
    let dir = desired_dir(&[]);
    let closed = "http://127.0.0.1:9";
    let env = [
        ("AWS_ENDPOINT_URL", closed),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
    ];
    let mut d = Daemon::spawn(dir.path(), &["--dir", "ds", "--world", "aws", "--grace", "5"], &env);
    let error = d.until("a status document naming the failure", || {
        let doc = status(dir.path())?;
        doc["last_error"].as_str().map(str::to_owned)
    });
    assert!(error.contains("observing the cluster failed"), "{error}");
    // One readable line, not the SDK's debug dump of the error (`DispatchFailure(DispatchFailure {`).
    assert!(!error.contains("DispatchFailure(") && !error.contains(" { "), "{error}");
    assert!(d.get("/healthz").is_some_and(|(code, _)| code == 200), "the daemon keeps serving");
    d.signal("TERM");
    assert_eq!(d.wait_exit(Duration::from_secs(30)), 0, "log:\n{}", d.log());
}

/// `mirrorctl run --config daemon.toml` in a fresh directory whose `daemon.toml` is `text`: its
/// exit code and stderr.
fn run_with_settings(text: &str) -> (Option<i32>, String) {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("daemon.toml"), text).unwrap();
    let out = Command::new(BIN)
        .current_dir(tmp.path())
        .args(["run", "--config", "daemon.toml"])
        .env_remove("MIRRORCTL_STATE_DIR")
        .output()
        .unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_bad_settings_file_names_file_line_and_key() {
    let (code, stderr) = run_with_settings("world = \"lab\"\nresync = 5\n");
    assert_eq!(code, Some(65), "{stderr}");
    assert!(stderr.contains("daemon.toml:2:1: resync"), "{stderr}");
    assert!(stderr.contains("valid keys here are"), "{stderr}");
}

#[test]
fn a_bad_default_notify_in_the_settings_file_exits_65_naming_file_line_and_what_to_do() {
    let (code, stderr) =
        run_with_settings("world = \"lab\"\n\n[notify]\nwebhook = { url = \"https://hooks.example.com/m\" }\n");
    assert_eq!(code, Some(65), "{stderr}");
    assert!(stderr.contains("error[notify-webhook-secret]: daemon.toml:4:"), "{stderr}");
    assert!(stderr.contains("add one of secret_env"), "{stderr}");
}

#[test]
fn an_invalid_edit_is_reported_and_the_last_valid_version_is_still_served() {
    let tmp = desired_dir(&["b1"]);
    let cwd = tmp.path();
    let d = Daemon::start(cwd, "ds", "1000", "20");
    d.until("b1 completed", || completed(cwd, "backup/b1"));

    // A half-written edit: the new backup name is there, but the file is cut mid-string.
    let mut broken = desired(&["b1", "b2"]);
    broken.truncate(broken.len() - 4);
    std::fs::write(cwd.join("ds/prod-db.toml"), &broken).unwrap();
    let doc = d.until("the status shows the file's error", || status(cwd).filter(|s| s["spec_error"].is_string()));
    let err = doc["spec_error"].as_str().unwrap();
    assert!(err.contains("prod-db.toml:"), "the error names file:line: {err}");
    // Nothing of the broken version was acted on, the daemon still runs and serves /healthz.
    assert!(d.line_with("backup/b2/").is_none(), "the invalid version was not acted on");
    assert_eq!(d.get("/healthz").map(|(c, _)| c), Some(200));

    // Fixed: the error clears and b2 is taken.
    std::fs::write(cwd.join("ds/prod-db.toml"), desired(&["b1", "b2"])).unwrap();
    d.until("b2 completed", || completed(cwd, "backup/b2"));
    d.until("the error cleared", || status(cwd).filter(|s| s["spec_error"].is_null()));
}

#[test]
fn a_removed_file_stops_reconciling_and_undoes_nothing() {
    let tmp = desired_dir(&["b1"]);
    let cwd = tmp.path();
    let d = Daemon::start(cwd, "ds", "1000", "20");
    d.until("b1 completed", || completed(cwd, "backup/b1"));
    std::fs::remove_file(cwd.join("ds/prod-db.toml")).unwrap();
    let doc = d.until("the status says the file is gone", || status(cwd).filter(|s| s["stopped"].is_string()));
    assert!(doc["stopped"].as_str().unwrap().contains("removed"), "{doc}");
    // The backup it made is still listed (nothing undone) and the process keeps running.
    assert_eq!(doc["inventory"]["snapshots"].as_object().map(serde_json::Map::len), Some(1), "{doc}");
    assert_eq!(d.get("/healthz").map(|(c, _)| c), Some(200));
}

/// The example `prod-db` file renamed to cluster `name`, asking for the backups `take`.
fn desired_named(name: &str, take: &[&str]) -> String {
    desired(take).replace("name = \"prod-db\"", &format!("name = \"{name}\""))
}

/// Each cluster's journal in the table: (position, epoch of the writer, record).
fn journal_items(
    rt: &tokio::runtime::Runtime,
    moto: &crate::support::Moto,
    table: &str,
    cluster: &str,
) -> Vec<(u64, u64, Record)> {
    use aws_sdk_dynamodb::types::AttributeValue;
    rt.block_on(async {
        let sdk = aws_sdk_dynamodb::Client::new(&moto.sdk_config().await);
        let page = sdk
            .query()
            .table_name(table)
            .key_condition_expression("pk = :pk AND begins_with(sk, :j)")
            .expression_attribute_values(":pk", AttributeValue::S(cluster.into()))
            .expression_attribute_values(":j", AttributeValue::S("journal#".into()))
            .consistent_read(true)
            .send()
            .await
            .expect("query the journal");
        assert!(page.last_evaluated_key().is_none(), "one page is enough for one backup");
        page.items()
            .iter()
            .map(|i| {
                let sk = i["sk"].as_s().unwrap();
                let pos = sk.trim_start_matches("journal#").parse().unwrap();
                let epoch = i["epoch"].as_n().unwrap().parse().unwrap();
                let rec = serde_json::from_str(i["record"].as_s().unwrap()).unwrap();
                (pos, epoch, rec)
            })
            .collect()
    })
}

/// Two daemons, as two hosts, on one DynamoDB table (moto), one desired-state directory with three
/// clusters and one shared lab directory (the simulated AWS both hosts act on), each with its own
/// empty state directory. The daemon acting on a cluster is killed with SIGKILL in the middle of a
/// step; the other takes its clusters over after one lease period (the log names the epoch,
/// `/metrics` counts it) and every backup converges exactly once. The journal in the table shows
/// one writer at a time per cluster: positions 1..n without gaps, epochs that never go back.
#[test]
fn two_daemons_share_a_dynamodb_table_and_one_takes_over_when_the_other_is_killed() {
    const TABLE: &str = "mirrorctl-hosts";
    const LEASE_SECS: u64 = 3;
    const CLUSTERS: [&str; 3] = ["prod-db", "db-2", "db-3"];
    let moto = crate::support::Moto::start();
    let tmp = tempfile::tempdir().unwrap();
    let cwd = tmp.path();
    let owned = moto.child_env();
    let env: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let store = format!("dynamodb:{TABLE}");
    let init = Command::new(BIN)
        .current_dir(cwd)
        .args(["store", "init", "--store", &store])
        .envs(env.iter().copied())
        .output()
        .unwrap();
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    std::fs::create_dir(cwd.join("ds")).unwrap();
    for name in CLUSTERS {
        std::fs::write(cwd.join("ds").join(format!("{name}.toml")), desired_named(name, &["b1"])).unwrap();
    }
    let lease = LEASE_SECS.to_string();
    // ×10: a backup lasts several seconds, so a kill lands inside one. The resync (60 s) is far
    // longer than the test: a takeover must come from the standby's own looks.
    let args = [
        "--dir",
        "ds",
        "--world",
        "lab",
        "--speed",
        "10",
        "--grace",
        "20",
        "--resync",
        "60",
        "--store",
        &store,
        "--lease-secs",
        &lease,
        "--lab-dir",
        "lab",
    ];
    let mut daemons = [Daemon::spawn_on(cwd, "host-a", &args, &env), Daemon::spawn_on(cwd, "host-b", &args, &env)];

    // The first daemon seen starting its backup's last step (the standby's start, seconds long
    // here) is killed in the middle of it: it has stopped md, shut the standby down and taken the
    // snapshot, all of which its successor must see in the shared world.
    let (victim, cluster) = daemons[0].until("a backup's last step started by either daemon", || {
        daemons.iter().enumerate().find_map(|(i, d)| {
            let lines = d.lines.lock().unwrap();
            lines.iter().find(|(_, l)| l.contains("step=backup/b1/start-instance")).map(|(_, l)| {
                let c = l.split("cluster=").nth(1).and_then(|r| r.split_whitespace().next()).unwrap().to_owned();
                (i, c)
            })
        })
    });
    std::thread::sleep(Duration::from_millis(300));
    daemons[victim].kill9();
    let killed = Instant::now();
    let heir = &daemons[1 - victim];
    println!("killed daemon {victim} while it worked on {cluster}");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let dynamo = rt
        .block_on(async { mirrorctl::adapters::store::DynamoStore::from_sdk_config(&moto.sdk_config().await, TABLE) });
    let done = |name: &str| {
        let c = mirrorctl::ids::ClusterName::parse(name).unwrap();
        rt.block_on(dynamo.read_status(&c))
            .ok()
            .flatten()
            .filter(|d| d.operations.get("backup/b1").is_some_and(|v| v.state == mirrorctl::status::OpPhase::Completed))
    };
    let taken = |l: &str| l.contains("lease taken over") && l.contains(&format!("cluster={cluster} "));
    let takeover = heir.until("the takeover of the killed daemon's cluster", || {
        heir.lines.lock().unwrap().iter().find(|(_, l)| taken(l)).map(|(t, _)| *t)
    });
    println!("SIGKILL → takeover logged: {:?} (lease {LEASE_SECS} s)", takeover.duration_since(killed));
    assert!(
        takeover.duration_since(killed) < Duration::from_secs(3 * LEASE_SECS + 5),
        "taken over by the standby's own looks, not by a resync; log:\n{}",
        heir.log()
    );
    for name in CLUSTERS {
        let doc = heir.until(&format!("{name} converged"), || done(name));
        let snapshots = doc.inventory.snapshots.values().filter(|v| v.name.as_deref() == Some("b1")).count();
        assert_eq!(snapshots, 1, "{name}: one snapshot of b1: {:?}", doc.inventory.snapshots);
    }
    // The world's own judgement (the chaos campaign's oracle), not what the daemons believe: each
    // shared world holds exactly one snapshot of b1, of the standby, at the one quiesce point,
    // business back on the active, nothing duplicated or deleted.
    for name in CLUSTERS {
        backup_judged_by_the_world(cwd, name);
    }
    let line = heir.log().lines().find(|l| taken(l)).unwrap().to_owned();
    assert!(line.contains("epoch="), "names the epoch: {line}");

    // One writer at a time, per cluster, in the table itself.
    for name in CLUSTERS {
        one_writer_at_a_time(&journal_items(&rt, &moto, TABLE, name), name, name == cluster);
    }
    let takeovers = heir.metric(&format!("mirrorctl_lease_takeovers_total{{cluster=\"{cluster}\"}}"));
    assert!(takeovers >= 1.0, "/metrics counts the takeover of {cluster}");
    let (_, body) = heir.get("/metrics").unwrap();
    assert!(body.contains("mirrorctl_leases_held "), "{body}");
    assert!(!cwd.join("host-b/journal").exists() && !cwd.join("host-a/journal").exists(), "journals are in the table");
    let heir = &mut daemons[1 - victim];
    heir.signal("TERM");
    assert_eq!(heir.wait_exit(Duration::from_secs(30)), 0, "log:\n{}", heir.log());
}

/// A cluster's journal in the table was written by one holder at a time: positions 1..n without a
/// gap, epochs that never go back (a deposed writer never wrote after its successor), no step
/// succeeded twice; `taken_over`: continued under a second epoch.
fn one_writer_at_a_time(items: &[(u64, u64, Record)], name: &str, taken_over: bool) {
    let positions: Vec<u64> = items.iter().map(|(p, _, _)| *p).collect();
    assert_eq!(positions, (1..=items.len() as u64).collect::<Vec<_>>(), "{name}: no gap, no overwrite");
    let epochs: Vec<u64> = items.iter().map(|(_, e, _)| *e).collect();
    assert!(epochs.windows(2).all(|w| w[0] <= w[1]), "{name}: writers interleaved: epochs {epochs:?}");
    let mut ok_by_step = std::collections::BTreeMap::<String, usize>::new();
    for (_, _, r) in items {
        if let Record::Result { step, ok: true, .. } = r {
            *ok_by_step.entry(step.0.clone()).or_default() += 1;
        }
    }
    assert!(ok_by_step.values().all(|n| *n == 1), "{name}: a step succeeded twice: {ok_by_step:?}");
    if taken_over {
        let distinct: std::collections::BTreeSet<u64> = epochs.iter().copied().collect();
        assert!(distinct.len() >= 2, "{name}: the killed daemon's journal was continued under a new epoch: {epochs:?}");
    }
}

/// The chaos campaign's oracle on the shared lab world of cluster `name` after its backup `b1`.
fn backup_judged_by_the_world(cwd: &Path, name: &str) {
    let spec = mirrorctl::spec::load_file(&cwd.join("ds").join(format!("{name}.toml"))).expect("spec");
    let fresh = mirrorctl::sim::SimWorld::new(mirrorctl::cli::world::scenario_for(&spec), 42, 1.0);
    let before: Vec<_> = fresh.inventory().volumes.into_iter().map(|v| v.id).collect();
    let world = mirrorctl::sim::SimWorld::open_copy(cwd.join("lab").join(format!("{name}.json")), 1.0).unwrap();
    let violations = mirrorctl::harness::chaos::check_backup(&world, &spec, "b1", &before);
    assert!(
        violations.is_empty(),
        "{name}: {violations:?}\ntimeline:\n{}",
        world.timeline().iter().map(|(t, l)| format!("{t} {l}")).collect::<Vec<_>>().join("\n")
    );
}

/// Under systemd (`JOURNAL_STREAM` set, systemd.exec(5)) every log line starts with its syslog
/// priority (`<6>` info, `<4>` warning, …; sd-daemon(3)), which journald strips and files the line
/// under, in both log formats; elsewhere the lines are unchanged. Fails on the code before, whose
/// JSON lines all reached journald as info.
#[test]
fn under_systemd_each_log_line_carries_its_journal_priority() {
    for (format, journal) in [("json", true), ("text", true), ("json", false)] {
        let tmp = desired_dir(&["b1"]);
        let env: &[(&str, &str)] = if journal { &[("JOURNAL_STREAM", "8:4242")] } else { &[] };
        let mut d = Daemon::spawn(
            tmp.path(),
            &["--dir", "ds", "--world", "lab", "--speed", "1000", "--log-format", format],
            env,
        );
        d.wait_line("backup/b1/preflight");
        d.signal("TERM");
        assert_eq!(d.wait_exit(Duration::from_secs(30)), 0, "log:\n{}", d.log());
        let log = d.log();
        for line in log.lines().filter(|l| !l.trim().is_empty()) {
            if !journal {
                assert!(line.starts_with('{'), "a plain JSON line without JOURNAL_STREAM: {line}");
                continue;
            }
            let (priority, rest) = line
                .strip_prefix('<')
                .and_then(|l| l.split_once('>'))
                .unwrap_or_else(|| panic!("{format}: no priority prefix on {line:?}"));
            let level = match priority {
                "3" => "ERROR",
                "4" => "WARN",
                "6" => "INFO",
                "7" => "DEBUG",
                other => panic!("{format}: priority {other} on {line:?}"),
            };
            if format == "json" {
                let v: serde_json::Value = serde_json::from_str(rest).expect("JSON after the prefix");
                assert_eq!(v["level"], level, "{line}");
            } else {
                assert!(rest.contains(level), "{line}");
            }
        }
    }
}
