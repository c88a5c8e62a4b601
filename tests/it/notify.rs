//! Notifications: a receiver on 127.0.0.1 gets signed completion, needs-human and failure events
//! from runs in the simulated world (with a retry after a 500), nothing twice; SNS against moto.
//!
//! These tests run on real tokio time (a loopback HTTP exchange cannot run on paused time) with
//! the world's model time 500× faster, so a backup and a restore take about a second.

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mirrorctl::adapters::notify::{HEADER_DELIVERY, HEADER_EVENT, HEADER_SIGNATURE, HEADER_TIMESTAMP, SnsSink};
use mirrorctl::notify::{Notifier, RetrySchedule, signature};
use mirrorctl::ports::notify::NoticeSink;
use mirrorctl::ports::{Clock as _, ErrorClass};
use mirrorctl::reconcile::{Context, Settled, reconcile};
use mirrorctl::sim::{Fault, Scenario, SimWorld};
use mirrorctl::spec::{NoticeKind, NotifySpec, Os, SecretRef, Spec, WebhookSpec};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::common::{by_backup, example, with_backups, with_restore};

pub(crate) const SECRET: &str = "s3cret-for-tests";

/// One request the receiver got.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    pub(crate) path: String,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: Vec<u8>,
}

impl Received {
    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("the body is JSON")
    }
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers.get(&name.to_ascii_lowercase()).map_or("", String::as_str)
    }
}

/// A minimal HTTP/1.1 receiver on a free loopback port: records every request and answers the
/// scripted statuses in order (200 once the script is used up). Stopped when dropped.
pub(crate) struct Receiver {
    port: u16,
    got: Arc<Mutex<Vec<Received>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    pub(crate) async fn start(script: &[u16]) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind loopback");
        let port = listener.local_addr().expect("addr").port();
        let got = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(script.iter().copied().collect::<VecDeque<u16>>()));
        let (g, s) = (Arc::clone(&got), Arc::clone(&script));
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut conn, _)) = listener.accept().await else { return };
                let (g, s) = (Arc::clone(&g), Arc::clone(&s));
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut conn).await else { return };
                    g.lock().unwrap().push(req);
                    let status = s.lock().unwrap().pop_front().unwrap_or(200);
                    let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
                    let _ = conn.write_all(reply.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Receiver { port, got, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    pub(crate) fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }

    /// Waits (real time, at most 20 s) until `n` requests arrived.
    pub(crate) async fn wait_for(&self, n: usize) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let got = self.got();
            if got.len() >= n {
                return got;
            }
            assert!(tokio::time::Instant::now() < deadline, "only {} of {n} requests arrived: {got:?}", got.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn read_request(conn: &mut tokio::net::TcpStream) -> Option<Received> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.lines();
    let path = lines.next()?.split_whitespace().nth(1)?.to_owned();
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let len: usize = headers.get("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    while buf.len() < head_end + len {
        let n = conn.read(&mut chunk).await.ok()?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    Some(Received { path, headers, body: buf[head_end..(head_end + len).min(buf.len())].to_vec() })
}

/// What a receiver does: the signature over "<timestamp>.<body>" matches the shared secret.
pub(crate) fn assert_signed(r: &Received) {
    let ts: i64 = r.header(HEADER_TIMESTAMP).parse().expect("a Unix timestamp header");
    let now = jiff::Timestamp::now().as_second();
    assert!((now - ts).abs() < 300, "a fresh timestamp: {ts} vs {now}");
    assert_eq!(r.header(HEADER_SIGNATURE), signature(SECRET.as_bytes(), ts, &r.body), "signature of {r:?}");
    assert_ne!(r.header(HEADER_SIGNATURE), signature(b"another secret", ts, &r.body));
    assert_eq!(r.header("content-type"), "application/json");
}

struct Run {
    world: Arc<SimWorld>,
    dir: tempfile::TempDir,
}

impl Run {
    fn new(seed: u64) -> Run {
        Run { world: SimWorld::new(Scenario::windows_runbook(), seed, 500.0), dir: tempfile::tempdir().expect("tmp") }
    }

    fn notifier() -> Notifier {
        let fast = RetrySchedule { min: Duration::from_millis(50), max: Duration::from_millis(200), times: 3 };
        Notifier::start(mirrorctl::adapters::notify::aws_sinks(), fast)
    }

    async fn apply(&self, spec: &Spec, notifier: &Notifier) -> Settled {
        let mut ctx = Context::new(self.world.ports(), self.dir.path().join("state"));
        ctx.max_passes = Some(2_000);
        ctx.notify = Some(notifier.clone());
        reconcile(spec, &ctx).await.expect("reconcile ends without an internal error")
    }
}

/// `spec` notifying the webhook at `url`, its secret in a file under `dir`.
fn notifying(mut spec: Spec, url: &str, dir: &Path, events: &[NoticeKind]) -> Spec {
    let secret = dir.join("webhook-secret");
    std::fs::write(&secret, format!("{SECRET}\n")).expect("write secret");
    spec.notify = Some(NotifySpec {
        sns_topic: None,
        webhook: Some(WebhookSpec { url: url.to_owned(), secret: SecretRef::File(secret) }),
        events: events.to_vec(),
    });
    spec
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_gets_signed_completion_needs_human_and_failure_events_once_each() {
    let run = Run::new(61);
    // The first delivery meets a 500: it is retried with backoff and arrives.
    let hook = Receiver::start(&[500]).await;
    let base = notifying(example(Os::Windows), &hook.url(), run.dir.path(), &NoticeKind::ALL);
    let notifier = Run::notifier();

    let backup = with_backups(base.clone(), &["b1"], 7);
    assert_eq!(run.apply(&backup, &notifier).await, Settled::Converged);
    let got = hook.wait_for(2).await;
    assert_eq!(got.len(), 2, "one 500, one retry: {got:?}");
    assert_eq!(got[0].body, got[1].body, "the retry sends the same body");
    assert_eq!(got[0].header(HEADER_DELIVERY), got[1].header(HEADER_DELIVERY));
    let completed = got[1].json();
    assert_eq!(got[1].path, "/hook");
    assert_eq!(got[1].header(HEADER_EVENT), "completed");
    assert_eq!(completed["event"], "completed");
    assert_eq!(completed["cluster"], "prod-db");
    assert_eq!(completed["operation"], "backup/b1");
    assert_eq!(completed["request"], "b1");
    assert_eq!(completed["id"], got[1].header(HEADER_DELIVERY));
    assert_eq!(completed["mirrorctl_version"], env!("CARGO_PKG_VERSION"));
    let inventory = run.world.inventory();
    let snap = inventory
        .snapshots
        .iter()
        .find(|s| s.tags.get("mirrorctl:request").map(String::as_str) == Some("b1"))
        .expect("the backup's snapshot")
        .id
        .clone();
    assert_eq!(completed["snapshots"], serde_json::json!([snap.to_string()]));
    for r in &got {
        assert_signed(r);
    }

    // Applying again sends nothing: the completion was recorded as sent.
    assert_eq!(run.apply(&backup, &notifier).await, Settled::Converged);

    // A restore of a snapshot that does not exist is refused until a human acts: needs-human, sent
    // once however often the cluster is looked at.
    let missing = mirrorctl::ids::SnapshotId::parse("snap-0123456789abcdef0").unwrap();
    let wrong = with_restore(backup.clone(), &missing, "r0", false);
    let Settled::Blocked(c) = run.apply(&wrong, &notifier).await else { panic!("a missing snapshot blocks") };
    assert_eq!(c.reason, "snapshot-missing");
    let got = hook.wait_for(3).await;
    let needs = got[2].json();
    assert_eq!((needs["event"].as_str(), needs["reason"].as_str()), (Some("needs-human"), Some("snapshot-missing")));
    assert_eq!(needs["operation"], "restore/r0");
    assert!(needs["action"].as_str().is_some_and(|a| !a.is_empty()), "{needs}");
    assert_eq!(got[2].header(HEADER_EVENT), "needs-human");
    assert!(matches!(run.apply(&wrong, &notifier).await, Settled::Blocked(_)));

    // The right snapshot, completed; creating the volumes fails for good twice: failed.
    let restore = with_restore(backup.clone(), &snap, "r1", false);
    run.world.clock().sleep(Duration::from_mins(10)).await;
    run.world
        .inject(Fault::FailNext {
            op: "ec2:CreateVolume".into(),
            code: "InvalidParameterValue".into(),
            class: ErrorClass::NeedsHuman,
            count: 2,
        })
        .unwrap();
    let Settled::Blocked(c) = run.apply(&restore, &notifier).await else { panic!("a needs-human failure blocks") };
    let got = hook.wait_for(4).await;
    let failed = got[3].json();
    assert_eq!(failed["event"], "failed");
    assert_eq!(failed["reason"], c.reason.to_string());
    assert_eq!(failed["operation"], "restore/r1");

    // Fixed: the restore converges and its completion names the new volumes and the snapshot.
    assert_eq!(run.apply(&restore, &notifier).await, Settled::Converged);
    assert!(notifier.close(Duration::from_secs(20)).await, "every delivery ended");
    let got = hook.got();
    assert_eq!(got.len(), 5, "{:#?}", got.iter().map(Received::json).collect::<Vec<_>>());
    let done = got[4].json();
    assert_eq!((done["event"].as_str(), done["operation"].as_str()), (Some("completed"), Some("restore/r1")));
    assert_eq!(done["volumes"].as_array().map(Vec::len), Some(2), "{done}");
    assert!(done["snapshots"].as_array().unwrap().contains(&serde_json::json!(snap.to_string())), "{done}");
    for r in &got {
        assert_signed(r);
    }
    let counts = notifier.counters().snapshot();
    assert_eq!(counts.get(&("webhook", "delivered")), Some(&4), "{counts:?}");
    assert_eq!(counts.get(&("webhook", "retried")), Some(&1), "{counts:?}");

    // A new process (new notifier, same store) sends none of them again.
    let again = Run::notifier();
    assert_eq!(run.apply(&restore, &again).await, Settled::Converged);
    assert!(again.close(Duration::from_secs(5)).await);
    assert_eq!(hook.got().len(), 5, "nothing sent twice after a restart");

    // The cluster converged since: the same condition coming back is a new transition.
    let later = Run::notifier();
    assert!(matches!(run.apply(&wrong, &later).await, Settled::Blocked(_)));
    assert!(later.close(Duration::from_secs(20)).await);
    let got = hook.got();
    assert_eq!(got.len(), 6);
    assert_eq!(
        (got[5].json()["event"].as_str(), got[5].json()["operation"].as_str()),
        (Some("needs-human"), Some("restore/r0"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_completion_of_a_restore_by_backup_name_names_the_snapshot_it_restored() {
    let run = Run::new(63);
    let hook = Receiver::start(&[]).await;
    let quiet = Run::notifier();
    let b1 = with_backups(example(Os::Windows), &["b1"], 7);
    assert_eq!(run.apply(&b1, &quiet).await, Settled::Converged);
    assert!(quiet.close(Duration::from_secs(5)).await);
    let snap = run
        .world
        .inventory()
        .snapshots
        .iter()
        .find(|s| s.tags.get("mirrorctl:request").map(String::as_str) == Some("b1"))
        .expect("the backup's snapshot")
        .id
        .clone();

    let restore = by_backup(notifying(b1.clone(), &hook.url(), run.dir.path(), &[NoticeKind::Completed]), "b1", "r1");
    let notifier = Run::notifier();
    // Blocked while b1's snapshot is pending (model hours pass in real seconds here).
    let mut settled = run.apply(&restore, &notifier).await;
    for _ in 0..120 {
        if settled == Settled::Converged {
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        settled = run.apply(&restore, &notifier).await;
    }
    assert_eq!(settled, Settled::Converged);
    assert!(notifier.close(Duration::from_secs(20)).await);
    let got = hook.got();
    let done = got.iter().map(Received::json).find(|j| j["operation"] == "restore/r1").expect("restore completion");
    assert!(done["snapshots"].as_array().unwrap().contains(&serde_json::json!(snap.to_string())), "{done}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_listed_events_are_sent_and_past_completions_are_not_announced() {
    let run = Run::new(62);
    let hook = Receiver::start(&[]).await;
    let quiet = Run::notifier();
    // A backup completed before notifications were configured.
    let b1 = with_backups(example(Os::Windows), &["b1"], 7);
    assert_eq!(run.apply(&b1, &quiet).await, Settled::Converged);
    assert!(quiet.close(Duration::from_secs(5)).await);

    let notifier = Run::notifier();
    let failures_only = notifying(example(Os::Windows), &hook.url(), run.dir.path(), &[NoticeKind::Failed]);
    let b2 = with_backups(failures_only.clone(), &["b1", "b2"], 7);
    assert_eq!(run.apply(&b2, &notifier).await, Settled::Converged);
    let all = notifying(example(Os::Windows), &hook.url(), run.dir.path(), &NoticeKind::ALL);
    let b3 = with_backups(all, &["b1", "b2", "b3"], 7);
    assert_eq!(run.apply(&b3, &notifier).await, Settled::Converged);
    assert!(notifier.close(Duration::from_secs(20)).await);
    let ops: Vec<String> =
        hook.got().iter().map(|r| r.json()["operation"].as_str().unwrap_or_default().to_owned()).collect();
    // b1 predates [notify]; b2 completed while only failures were wanted; b3 is announced.
    assert_eq!(ops, ["backup/b3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_delivery_is_not_retried_and_never_fails_the_reconcile() {
    let run = Run::new(63);
    let hook = Receiver::start(&[403]).await;
    let notifier = Run::notifier();
    let spec = with_backups(notifying(example(Os::Windows), &hook.url(), run.dir.path(), &NoticeKind::ALL), &["b1"], 7);
    assert_eq!(run.apply(&spec, &notifier).await, Settled::Converged);
    assert!(notifier.close(Duration::from_secs(20)).await);
    assert_eq!(hook.got().len(), 1, "a 403 is final");
    let counts = notifier.counters().snapshot();
    assert_eq!(counts.get(&("webhook", "failed")), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&("webhook", "retried")), None, "{counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_publishes_the_notice_to_the_topic_on_moto() {
    let moto = crate::support::Moto::start();
    let config = moto.sdk_config().await;
    let sns = aws_sdk_sns::Client::new(&config);
    let topic = sns.create_topic().name("mirrorctl-events").send().await.expect("create topic");
    let arn = topic.topic_arn().expect("arn").to_owned();
    // moto POSTs each message of an http subscription to its endpoint: our receiver.
    let hook = Receiver::start(&[]).await;
    sns.subscribe().topic_arn(&arn).protocol("http").endpoint(hook.url()).send().await.expect("subscribe");

    let sink = SnsSink::new(
        sns.clone(),
        mirrorctl::spec::SnsTopic {
            arn: arn.clone(),
            region: mirrorctl::ids::Region::parse("ap-northeast-1").unwrap(),
            fifo: false,
        },
        "prod-db",
    );
    assert_eq!(sink.name(), format!("sns:{arn}"));
    let body = br#"{"event":"completed","cluster":"prod-db"}"#;
    sink.deliver("completed", "0123", body).await.expect("publish");
    let got = hook.wait_for(1).await;
    let envelope: serde_json::Value = serde_json::from_slice(&got[0].body).expect("SNS envelope");
    assert_eq!(envelope["Type"], "Notification");
    assert_eq!(envelope["TopicArn"], arn.as_str());
    assert_eq!(envelope["Subject"], "mirrorctl: prod-db completed");
    assert_eq!(envelope["Message"].as_str().map(str::as_bytes), Some(&body[..]));

    // A topic that does not exist is a permanent failure (not retried).
    let gone = SnsSink::new(
        sns,
        mirrorctl::spec::SnsTopic {
            arn: arn.replace("mirrorctl-events", "no-such-topic"),
            region: mirrorctl::ids::Region::parse("ap-northeast-1").unwrap(),
            fifo: false,
        },
        "prod-db",
    );
    let e = gone.deliver("completed", "0123", body).await.expect_err("no such topic");
    assert!(!e.retryable, "{e:?}");
    assert!(e.message.contains("no-such-topic"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_delivers_its_completion_before_it_exits_even_after_a_500() {
    let hook = Receiver::start(&[500]).await;
    let dir = tempfile::tempdir().expect("tmp");
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/desired-state/prod-db.toml")).unwrap();
    let text = example.replacen("[backup]\n", "[backup]\ntake = [\"b1\"]\n", 1)
        + &format!("\n[notify]\nwebhook = {{ url = \"{}\", secret_env = \"HOOK_SECRET_FOR_TEST\" }}\n", hook.url());
    let file = dir.path().join("prod-db.toml");
    std::fs::write(&file, text).unwrap();
    let state = dir.path().join("state");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
            .args(["--state-dir", state.to_str().unwrap(), "apply", "--world", "lab", "--speed", "2000"])
            .arg(&file)
            .env("HOOK_SECRET_FOR_TEST", SECRET)
            .env_remove("MIRRORCTL_STATE_DIR")
            .env_remove("AWS_PROFILE")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Both attempts arrived before the process exited: apply waited for the retry.
    let got = hook.got();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(got[1].json()["operation"], "backup/b1");
    assert_signed(&got[1]);
}

/// The example `prod-db` file renamed to cluster `name`, asking for backup `b1`, plus `extra`.
fn daemon_file(name: &str, extra: &str) -> String {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/desired-state/prod-db.toml")).unwrap();
    text.replace("name = \"prod-db\"", &format!("name = \"{name}\"")).replacen(
        "[backup]\n",
        "[backup]\ntake = [\"b1\"]\n",
        1,
    ) + extra
}

/// `mirrorctl run` with a `daemon.toml` whose `[notify]` names a default webhook: the cluster
/// whose file has no `[notify]` announces its backup there; the cluster with its own `[notify]`
/// announces only to its own webhook (a file's table replaces the default entirely); the cluster
/// with `notify = false` announces nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemons_default_notify_serves_files_without_one_and_a_files_own_replaces_it() {
    let default_hook = Receiver::start(&[]).await;
    let own_hook = Receiver::start(&[]).await;
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(tmp.path().join("ds")).unwrap();
    std::fs::write(tmp.path().join("ds/plain.toml"), daemon_file("plain", "")).unwrap();
    let own =
        format!("\n[notify]\nwebhook = {{ url = \"{}\", secret_env = \"HOOK_SECRET_FOR_TEST\" }}\n", own_hook.url());
    std::fs::write(tmp.path().join("ds/own.toml"), daemon_file("own", &own)).unwrap();
    std::fs::write(tmp.path().join("ds/off.toml"), format!("notify = false\n{}", daemon_file("off", ""))).unwrap();
    let settings = format!(
        "world = \"lab\"\ndir = \"ds\"\nspeed = 2000.0\n\n[notify]\nwebhook = {{ url = \"{}\", secret_env = \"HOOK_SECRET_FOR_TEST\" }}\nevents = [\"completed\"]\n",
        default_hook.url()
    );
    std::fs::write(tmp.path().join("daemon.toml"), settings).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
        .current_dir(tmp.path())
        .args(["run", "--config", "daemon.toml", "--state-dir", "state", "--listen", &format!("127.0.0.1:{port}")])
        .env("HOOK_SECRET_FOR_TEST", SECRET)
        .env_remove("MIRRORCTL_STATE_DIR")
        .env_remove("AWS_PROFILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn mirrorctl run");
    let deadline = tokio::time::Instant::now() + Duration::from_mins(1);
    let completed = |got: &[Received], cluster: &str| {
        got.iter().any(|r| r.json()["cluster"] == cluster && r.json()["operation"] == "backup/b1")
    };
    let off_completed = || {
        std::fs::read_to_string(tmp.path().join("state/status/off.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .is_some_and(|d| d["operations"]["backup/b1"]["state"] == "completed")
    };
    while !(completed(&default_hook.got(), "plain") && completed(&own_hook.got(), "own") && off_completed()) {
        if tokio::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("default: {:?}\nown: {:?}", default_hook.got(), own_hook.got());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // A notice of `off` would have been sent as soon after its completion as the others were.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = child.kill();
    let _ = child.wait();
    let default_got = default_hook.got();
    assert!(
        default_got.iter().all(|r| r.json()["cluster"] == "plain"),
        "only the file without [notify]: {default_got:?}"
    );
    assert!(
        default_got.iter().all(|r| r.json()["event"] == "completed"),
        "the default's events list applies: {default_got:?}"
    );
    assert_signed(&default_got[0]);
    assert!(own_hook.got().iter().all(|r| r.json()["cluster"] == "own"), "{:?}", own_hook.got());
}
