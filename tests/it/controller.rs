//! The daemon loop in-process, on real time against lab worlds (one persisted simulated world per
//! cluster): a new file converges, an invalid edit keeps the last valid version and shows the
//! error with `file:line`, a removed file stops its worker, two clusters run concurrently.
//!
//! File events come from the OS on another thread, so these tests use real time with a fast lab
//! world and bounded polling loops (every wait gives up with a message after 60 s).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mirrorctl::controller::{Config, Controller, Metrics};
use mirrorctl::ids::ClusterName;
use mirrorctl::status::{Phase, StatusDoc};
use mirrorctl::world::lab_worlds;
use tokio_util::sync::CancellationToken;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The example file of `cluster` without its schedule, with `take` as given.
fn desired(cluster: &str, take: &[&str]) -> String {
    let text = std::fs::read_to_string(Path::new(REPO).join("desired-state").join(format!("{cluster}.toml")))
        .expect("example desired state");
    let kept: Vec<&str> = text.lines().filter(|l| !l.starts_with("schedule") && !l.starts_with("take")).collect();
    let names: Vec<String> = take.iter().map(|t| format!("\"{t}\"")).collect();
    // `[backup]` is the last table of the examples (the restore table is commented out).
    format!("{}\ntake = [{}]\n", kept.join("\n"), names.join(", "))
}

/// Writes a file the way an editor that saves atomically would.
fn write(path: &Path, text: &str) {
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, text).expect("write temp");
    std::fs::rename(&tmp, path).expect("rename");
}

struct Daemon {
    dir: PathBuf,
    state: PathBuf,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    _tmp: tempfile::TempDir,
}

impl Daemon {
    fn start(speed: f64, files: &[(&str, String)]) -> Daemon {
        Daemon::start_tuned(speed, files, |_| {})
    }

    fn start_tuned(speed: f64, files: &[(&str, String)], tune: impl FnOnce(&mut Config)) -> Daemon {
        let tmp = tempfile::tempdir().expect("temp dir");
        let dir = tmp.path().join("desired-state");
        let state = tmp.path().join("state");
        std::fs::create_dir_all(&dir).expect("mkdir");
        for (name, text) in files {
            std::fs::write(dir.join(format!("{name}.toml")), text).expect("write");
        }
        let mut cfg = Config::new(
            dir.clone(),
            state.clone(),
            lab_worlds(&state.join("lab"), speed),
            mirrorctl::adapters::notify::aws_sinks(),
        );
        cfg.resync = Duration::from_secs(30);
        tune(&mut cfg);
        let controller = Controller::new(cfg);
        let metrics = controller.metrics();
        let stop = CancellationToken::new();
        let task = Some(tokio::spawn(controller.run(stop.clone())));
        Daemon { dir, state, metrics, stop, task, _tmp: tmp }
    }

    fn status(&self, cluster: &str) -> Option<StatusDoc> {
        StatusDoc::read(&StatusDoc::path_for(&self.state, &ClusterName::parse(cluster).unwrap())).ok()
    }

    async fn until<T>(&self, what: &str, mut f: impl FnMut(&Daemon) -> Option<T>) -> T {
        let start = Instant::now();
        loop {
            if let Some(x) = f(self) {
                return x;
            }
            assert!(start.elapsed() < Duration::from_mins(1), "gave up waiting for {what}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// The status once `op` is completed.
    async fn completed(&self, cluster: &str, op: &str) -> StatusDoc {
        self.until(&format!("{cluster}: {op} completed"), |d| {
            d.status(cluster)
                .filter(|s| s.operations.get(op).is_some_and(|v| v.state == mirrorctl::status::OpPhase::Completed))
        })
        .await
    }

    async fn stop(mut self) {
        self.stop.cancel();
        let task = self.task.take().expect("running");
        tokio::time::timeout(Duration::from_secs(30), task).await.expect("stops in time").expect("no panic");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_announces_a_completed_backup_to_the_clusters_webhook_once() {
    use crate::notify::{Receiver, SECRET, assert_signed};
    let hook = Receiver::start(&[]).await;
    let secrets = tempfile::tempdir().expect("temp dir");
    let secret = secrets.path().join("hook-secret");
    std::fs::write(&secret, SECRET).expect("write secret");
    let text = format!(
        "{}\n[notify]\nwebhook = {{ url = \"{}\", secret_file = \"{}\" }}\n",
        desired("prod-db", &["b1"]),
        hook.url(),
        secret.display()
    );
    let d = Daemon::start(1000.0, &[("prod-db", text)]);
    d.completed("prod-db", "backup/b1").await;
    let got = hook.wait_for(1).await;
    assert_eq!(got[0].json()["operation"], "backup/b1");
    assert_signed(&got[0]);
    d.until("the delivery counted", |d| {
        (metric(&d.metrics, "mirrorctl_notifications_total{sink=\"webhook\",outcome=\"delivered\"}") == 1).then_some(())
    })
    .await;
    // Resyncs and wakes look at the cluster again: the completion is not sent again.
    write(&d.dir.join("prod-db.toml"), &std::fs::read_to_string(d.dir.join("prod-db.toml")).unwrap());
    d.until("converged again", |d| d.status("prod-db").filter(|s| s.phase == Phase::Converged)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.stop().await;
    assert_eq!(hook.got().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_valid_file_converges() {
    let d = Daemon::start(1000.0, &[]);
    d.until("ready with no files", |d| d.metrics.ready().then_some(())).await;
    write(&d.dir.join("prod-db.toml"), &desired("prod-db", &["b1"]));
    d.completed("prod-db", "backup/b1").await;
    let s = d.until("converged", |d| d.status("prod-db").filter(|s| s.phase == Phase::Converged)).await;
    assert_eq!(s.spec_error, None);
    assert_eq!(s.inventory.snapshots.values().filter(|v| v.name.as_deref() == Some("b1")).count(), 1, "{s:?}");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_edit_keeps_the_last_valid_version_and_shows_the_error() {
    let d = Daemon::start(100.0, &[("prod-db", desired("prod-db", &[]))]);
    d.until("ready", |d| d.metrics.ready().then_some(())).await;
    let file = d.dir.join("prod-db.toml");
    write(&file, &desired("prod-db", &["b1"]));
    d.until("backup b1 started", |d| d.status("prod-db").filter(|s| s.operations.contains_key("backup/b1"))).await;
    // Half-written: b2 asked for, but the file does not parse.
    let broken = desired("prod-db", &["b1", "b2"]) + "keep = \n";
    let line = broken.lines().count();
    write(&file, &broken);
    let s = d.until("the error in the status", |d| d.status("prod-db").filter(|s| s.spec_error.is_some())).await;
    let err = s.spec_error.unwrap();
    assert!(err.contains(&format!("prod-db.toml:{line}:")), "names file and line: {err}");
    // The last valid version (b1) is still pursued, and b2 is not taken.
    let s = d.completed("prod-db", "backup/b1").await;
    assert!(!s.operations.contains_key("backup/b2"), "{:?}", s.operations);
    let s = d.until("converged toward b1", |d| d.status("prod-db").filter(|s| s.phase == Phase::Converged)).await;
    assert!(s.spec_error.is_some(), "the error stays shown while the file is invalid");
    assert!(!s.operations.contains_key("backup/b2"));
    // Fixed: b2 follows and the error goes away.
    write(&file, &desired("prod-db", &["b1", "b2"]));
    d.completed("prod-db", "backup/b2").await;
    let s = d.until("error cleared", |d| d.status("prod-db").filter(|s| s.spec_error.is_none())).await;
    assert_eq!(s.inventory.snapshots.len(), 2, "{:?}", s.inventory);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_that_never_was_valid_is_reported_and_others_are_served() {
    let d = Daemon::start(
        1000.0,
        &[("prod-db", "[cluster\nname = 1\n".to_owned()), ("app-linux", desired("app-linux", &["b1"]))],
    );
    d.completed("app-linux", "backup/b1").await;
    let s = d.until("prod-db's error", |d| d.status("prod-db").filter(|s| s.spec_error.is_some())).await;
    assert!(s.spec_error.as_deref().unwrap().contains("prod-db.toml:1:"), "{:?}", s.spec_error);
    d.until("ready", |d| d.metrics.ready().then_some(())).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_file_stops_its_worker_and_undoes_nothing() {
    let d = Daemon::start(200.0, &[("prod-db", desired("prod-db", &["b1"])), ("app-linux", desired("app-linux", &[]))]);
    d.until("b1 started", |d| d.status("prod-db").filter(|s| s.operations.contains_key("backup/b1"))).await;
    std::fs::remove_file(d.dir.join("prod-db.toml")).expect("remove");
    let s = d.until("removal in status", |d| d.status("prod-db").filter(|s| s.stopped.is_some())).await;
    assert_eq!(s.stopped.as_deref(), Some("desired-state file removed; not reconciling"));
    // Nothing more happens to the cluster: its status document stays as written.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = d.status("prod-db").expect("status");
    assert_eq!(later, s, "no pass after the removal");
    // The metric follows the status document (its own update, so wait for it rather than race it).
    d.until("the stopped phase in the metrics", |d| {
        d.metrics.render().contains("mirrorctl_cluster_phase{cluster=\"prod-db\",phase=\"stopped\"} 1").then_some(())
    })
    .await;
    // The other cluster is still served.
    write(&d.dir.join("app-linux.toml"), &desired("app-linux", &["x1"]));
    d.completed("app-linux", "backup/x1").await;
    // The file comes back: a new worker picks the cluster up again.
    write(&d.dir.join("prod-db.toml"), &desired("prod-db", &["b1"]));
    let s = d.completed("prod-db", "backup/b1").await;
    assert_eq!(s.stopped, None);
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clusters_are_reconciled_concurrently() {
    // At ×50 a backup takes seconds of real time: long enough to see both in flight at once.
    let d =
        Daemon::start(50.0, &[("prod-db", desired("prod-db", &["b1"])), ("app-linux", desired("app-linux", &["b1"]))]);
    let in_flight = |d: &Daemon, c: &str| {
        d.status(c).is_some_and(|s| {
            s.operations.get("backup/b1").is_some_and(|v| v.state == mirrorctl::status::OpPhase::Started)
        })
    };
    d.until("both backups in flight at the same time", |d| {
        (in_flight(d, "prod-db") && in_flight(d, "app-linux")).then_some(())
    })
    .await;
    d.completed("prod-db", "backup/b1").await;
    d.completed("app-linux", "backup/b1").await;
    d.stop().await;
}

/// The value of the metric line starting with `series`.
fn metric(m: &Metrics, series: &str) -> u64 {
    m.render().lines().find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok())).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wakes_during_a_pass_schedule_exactly_one_more_pass() {
    // At ×100 the backup's pass lasts about two seconds.
    let text = desired("prod-db", &["b1"]);
    let d = Daemon::start(100.0, &[("prod-db", text.clone())]);
    d.until("b1 started", |d| d.status("prod-db").filter(|s| s.operations.contains_key("backup/b1"))).await;
    // Several saves of the same content while the pass runs: level-triggered, they coalesce.
    for _ in 0..5 {
        write(&d.dir.join("prod-db.toml"), &text);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    d.completed("prod-db", "backup/b1").await;
    let converged = "mirrorctl_reconcile_passes_total{cluster=\"prod-db\",outcome=\"converged\"}";
    d.until("the extra pass", |d| (metric(&d.metrics, converged) == 2).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(metric(&d.metrics, converged), 2, "{}", d.metrics.render());
    let stopped = "mirrorctl_reconcile_passes_total{cluster=\"prod-db\",outcome=\"stopped\"}";
    assert_eq!(metric(&d.metrics, stopped), 0, "the same content does not interrupt the pass");
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_passes_its_own_cluster_only_and_a_save_without_change_still_looks_again() {
    let d = Daemon::start(1000.0, &[("prod-db", desired("prod-db", &[])), ("app-linux", desired("app-linux", &[]))]);
    d.until("ready", |d| d.metrics.ready().then_some(())).await;
    let passes = |d: &Daemon, c: &str| {
        metric(&d.metrics, &format!("mirrorctl_reconcile_passes_total{{cluster=\"{c}\",outcome=\"converged\"}}"))
    };
    d.until("both first passes", |d| (passes(d, "prod-db") == 1 && passes(d, "app-linux") == 1).then_some(())).await;
    write(&d.dir.join("prod-db.toml"), &desired("prod-db", &["b1"]));
    d.completed("prod-db", "backup/b1").await;
    d.until("prod-db's pass ended", |d| (passes(d, "prod-db") >= 2).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(passes(&d, "app-linux"), 1, "another file's edit does not pass app-linux: {}", d.metrics.render());
    // Saving app-linux unchanged is a request to look again: one more pass, for it alone.
    let before = passes(&d, "prod-db");
    write(&d.dir.join("app-linux.toml"), &desired("app-linux", &[]));
    d.until("app-linux looked again", |d| (passes(d, "app-linux") == 2).then_some(())).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(passes(&d, "prod-db"), before, "{}", d.metrics.render());
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_resync_stretches_to_fit_its_describe_budget_and_comes_back() {
    // 0.1 Describe a second for the resync: two clusters (6 Describes each) need 120 s, one 60 s,
    // none the configured 30 s.
    let d = Daemon::start_tuned(
        1000.0,
        &[("prod-db", desired("prod-db", &[])), ("app-linux", desired("app-linux", &[]))],
        |cfg| cfg.resync_look_rate = Some(0.1),
    );
    let interval = |d: &Daemon| metric(&d.metrics, "mirrorctl_resync_interval_seconds ");
    d.until("resync stretched for two clusters", |d| (interval(d) == 120).then_some(())).await;
    std::fs::remove_file(d.dir.join("app-linux.toml")).expect("remove");
    d.until("resync for one cluster", |d| (interval(d) == 60).then_some(())).await;
    std::fs::remove_file(d.dir.join("prod-db.toml")).expect("remove");
    d.until("resync back to the configured interval", |d| (interval(d) == 30).then_some(())).await;
    d.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_backup_starts_at_its_slot_not_at_the_next_resync() {
    // The lab's clock starts at 2026-11-30T00:00Z, 09:00 in Tokyo; at ×1000 the 09:30 slot comes
    // 1.8 s later, while the resync (10 min of real time) does not come during the test.
    let text = format!("{}schedule = \"daily 09:30 Asia/Tokyo\"\n", desired("prod-db", &[]));
    let d = Daemon::start_tuned(1000.0, &[("prod-db", text)], |cfg| cfg.resync = Duration::from_mins(10));
    d.until("converged before the slot", |d| d.status("prod-db").filter(|s| s.phase == Phase::Converged)).await;
    assert!(d.status("prod-db").unwrap().operations.is_empty(), "no backup before 09:30");
    d.completed("prod-db", "backup/daily-20261130").await;
    d.stop().await;
}
