//! Full flows against `moto_server`: mirrorctl's real reconcile loop with the cloud port =
//! `AwsCloud` on moto, and the cluster and node ports = a small fake living on top of moto's state
//! (`moto_world`). A backup, then a restore from it, checked from outside mirrorctl with the AWS
//! CLI; then crashes inside mutating steps of both, resumed with a fresh executor and journal
//! re-opened from disk while moto and the fake cluster (which did not crash) keep their state.
//!
//! What moto does not check (DOMAIN.md): it ignores `ClientToken`, accepts lenient attaches and
//! moves every state at once. So duplicates are not caught by moto here: the tests count what
//! carries our tags. The strict checks live in the simulator's tests (`crash_resume.rs`).
//!
//! Real tokio time: the SDK's timeouts must not fire on a paused clock while moto answers.

mod moto_world;
mod support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use mirrorctl::execute::{CrashPoint, CrashSwitch, ExecError};
use mirrorctl::ids::{BackupName, RequestName, SnapshotId, VolumeId};
use mirrorctl::journal::{Journal, Record};
use mirrorctl::ports::Ports;
use mirrorctl::ports::clock::SystemClock;
use mirrorctl::ports::cloud::{Cloud, SnapshotFilter, Tags, tag};
use mirrorctl::ports::cluster::MirrorColor;
use mirrorctl::reconcile::{Context, ReconcileError, Settled, reconcile};
use mirrorctl::spec::{BackupSpec, RestoreSpec, Spec};
use moto_world::MotoWorld;
use serde_json::Value;
use support::{KEY, Moto, REGION};

/// The device the example Linux cluster uses, as written in its file.
const DEVICE: &str = "/dev/xvdb";

/// One scenario on a (reset) moto server: two instances with their mirror volumes, the example
/// Linux spec pointing at them, the fake cluster, and a fresh state directory.
struct Run {
    spec: Spec,
    world: Arc<MotoWorld>,
    originals: Vec<VolumeId>,
    dir: tempfile::TempDir,
}

impl Run {
    async fn new(moto: &Moto) -> Run {
        moto.reset();
        let sdk = moto.sdk().await;
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state/app-linux.toml");
        let mut spec = mirrorctl::spec::load_file(&path).expect("example desired state is valid");
        spec.backup = None;
        spec.restore = None;
        let mut originals = Vec::new();
        for server in &mut spec.cluster.servers {
            let support::Server { instance, volume, .. } =
                support::run_server_at(&sdk, server.zone.as_str(), 100, DEVICE).await;
            server.instance = instance;
            originals.push(volume);
        }
        let cloud: Arc<dyn Cloud> = Arc::new(moto.cloud().await);
        let world = MotoWorld::new(&spec, cloud, sdk);
        Run { spec, world, originals, dir: tempfile::tempdir().expect("temp dir") }
    }

    /// A fresh context, as after a process start: a new `AwsCloud`, a new executor, the journal
    /// re-opened from the state directory. The fake cluster is the same (it did not crash).
    async fn ctx(&self, moto: &Moto, crash: Option<Arc<CrashSwitch>>) -> Context {
        let ports = Ports {
            cloud: Arc::new(moto.cloud().await),
            cluster: self.world.clone(),
            node: self.world.clone(),
            clock: Arc::new(SystemClock),
        };
        let mut ctx = Context::new(ports, self.dir.path().join("state"));
        ctx.max_passes = Some(200);
        ctx.crash = crash;
        ctx
    }

    async fn apply(&self, moto: &Moto, spec: &Spec) -> Settled {
        reconcile(spec, &self.ctx(moto, None).await).await.expect("reconcile ends without an internal error")
    }

    /// [`Run::apply`], printing the timeline of progress events.
    async fn apply_verbose(&self, moto: &Moto, spec: &Spec) -> Settled {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let mut ctx = self.ctx(moto, None).await;
        ctx.progress = mirrorctl::execute::Progress::to(tx);
        let settled = reconcile(spec, &ctx).await.expect("reconcile ends without an internal error");
        drop(ctx);
        let mut first = None;
        while let Some(e) = rx.recv().await {
            let t0 = *first.get_or_insert(e.at);
            println!("  +{:>6.2}s {:?}", e.at.duration_since(t0).as_secs_f64(), e.kind);
        }
        settled
    }

    /// Runs `spec` with a crash after the `n`-th mutating call, then resumes until converged.
    /// Returns the step the crash interrupted (its intent is the journal's last record), or
    /// `None` when the run had fewer than `n` mutating calls.
    async fn crash_then_resume(&self, moto: &Moto, spec: &Spec, n: usize) -> Option<String> {
        let switch = Arc::new(CrashSwitch::new(CrashPoint::AfterCall, n));
        let result = reconcile(spec, &self.ctx(moto, Some(switch.clone())).await).await;
        let fired = switch.fired();
        match result {
            Err(ReconcileError::Exec(ExecError::Crashed(_))) => assert!(fired),
            Ok(Settled::Converged) => assert!(!fired, "converged although the crash fired"),
            other => panic!("unexpected end with a crash after call #{n}: {other:?}"),
        }
        if !fired {
            return None;
        }
        let crashed = self.last_intent(spec);
        assert_eq!(self.apply(moto, spec).await, Settled::Converged, "resume after a crash in {crashed}");
        Some(crashed)
    }

    /// The steps whose intent has no result in the journal: in flight when the crash came (the
    /// interrupted call, and any sibling step running concurrently with it).
    fn last_intent(&self, spec: &Spec) -> String {
        let path = Journal::path_for(&self.dir.path().join("state"), &spec.cluster.name);
        let journal = Journal::open(&path).expect("journal");
        let mut open: Vec<(u64, String)> = Vec::new();
        for r in journal.records() {
            match r {
                Record::Intent { seq, step, .. } => open.push((*seq, step.0.clone())),
                Record::Result { seq, .. } => open.retain(|(s, _)| s != seq),
                _ => {}
            }
        }
        assert!(!open.is_empty(), "an intent without a result after the crash");
        open.into_iter().map(|(_, s)| s).collect::<Vec<_>>().join(" + ")
    }

    fn backup_spec(&self) -> Spec {
        let mut spec = self.spec.clone();
        spec.backup =
            Some(BackupSpec { schedule: None, keep: 3, take: vec![BackupName::parse("b1").expect("backup name")] });
        spec
    }

    fn restore_spec(&self, snapshot: &SnapshotId) -> Spec {
        let mut spec = self.backup_spec();
        spec.restore = Some(RestoreSpec {
            snapshot: snapshot.clone(),
            request: RequestName::parse("r1").expect("request name"),
            verify_failover: true,
            allow_foreign_snapshot: false,
        });
        spec
    }

    /// The one snapshot of backup `b1`, found by its tags through mirrorctl's adapter.
    async fn backup_snapshot(&self, moto: &Moto) -> SnapshotId {
        let tags: Tags =
            [(tag::CLUSTER.to_owned(), self.spec.cluster.name.to_string()), (tag::REQUEST.to_owned(), "b1".to_owned())]
                .into();
        let found = moto
            .cloud()
            .await
            .describe_snapshots(&SnapshotFilter { tags, ..SnapshotFilter::default() })
            .await
            .expect("DescribeSnapshots");
        assert_eq!(found.len(), 1, "exactly one snapshot for backup b1: {found:?}");
        found[0].id.clone()
    }
}

/// `aws ec2 …` against moto with fake credentials; the parsed JSON output.
fn aws(moto: &Moto, args: &[&str]) -> Value {
    let out = Command::new("aws")
        .args(["--endpoint-url", &moto.endpoint(), "--region", REGION, "--output", "json", "ec2"])
        .args(args)
        .env("AWS_ACCESS_KEY_ID", KEY)
        .env("AWS_SECRET_ACCESS_KEY", KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_PAGER", "")
        .output()
        .expect("the AWS CLI is installed");
    assert!(out.status.success(), "aws {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("aws prints JSON")
}

fn tag_of<'a>(resource: &'a Value, key: &str) -> Option<&'a str> {
    resource["Tags"].as_array()?.iter().find(|t| t["Key"] == key).and_then(|t| t["Value"].as_str())
}

fn same_device(a: &str, b: &str) -> bool {
    let slot = |d: &str| d.strip_prefix("/dev/xvd").or_else(|| d.strip_prefix("/dev/sd")).map(str::to_owned);
    slot(a).is_some() && slot(a) == slot(b)
}

/// The end state, read with the AWS CLI (not mirrorctl's code): one restored volume per server
/// attached at the mirror device, the originals kept and marked superseded, one backup snapshot.
fn check_with_cli(moto: &Moto, run: &Run) {
    let vols = aws(moto, &["describe-volumes"]);
    let vols = vols["Volumes"].as_array().expect("Volumes");
    let restored: Vec<&Value> = vols.iter().filter(|v| tag_of(v, tag::REQUEST) == Some("r1")).collect();
    assert_eq!(restored.len(), 2, "exactly two volumes of request r1: {restored:#?}");
    for s in &run.spec.cluster.servers {
        let mine: Vec<&&Value> = restored.iter().filter(|v| tag_of(v, tag::SERVER) == Some(s.name.as_str())).collect();
        assert_eq!(mine.len(), 1, "one r1 volume for {}", s.name);
        let v = mine[0];
        assert_eq!(v["AvailabilityZone"], s.zone.as_str(), "{} restored in its zone", s.name);
        assert_eq!(v["State"], "in-use");
        let att = v["Attachments"].as_array().expect("Attachments");
        assert_eq!(att.len(), 1, "{v:#?}");
        assert_eq!(att[0]["InstanceId"], s.instance.as_str(), "attached to {}'s instance", s.name);
        assert!(same_device(att[0]["Device"].as_str().unwrap_or(""), DEVICE), "at {DEVICE}: {att:?}");
        assert_eq!(tag_of(v, tag::CLUSTER), Some(run.spec.cluster.name.as_str()));
    }
    for old in &run.originals {
        let v = vols.iter().find(|v| v["VolumeId"] == old.as_str()).unwrap_or_else(|| panic!("{old} was deleted"));
        assert!(tag_of(v, tag::SUPERSEDED_BY).is_some(), "{old} is tagged superseded: {v:#?}");
        assert!(v["Attachments"].as_array().is_none_or(Vec::is_empty), "{old} is detached: {v:#?}");
    }
    // Besides moto's root volumes (at /dev/sda1): the two originals and the two restored ones.
    let data: Vec<&Value> = vols
        .iter()
        .filter(|v| !v["Attachments"].as_array().is_some_and(|a| a.iter().any(|x| x["Device"] == "/dev/sda1")))
        .collect();
    assert_eq!(data.len(), 4, "two originals + two restored, nothing else: {data:#?}");
    let filter = format!("Name=tag:{},Values=b1", tag::REQUEST);
    let snaps = aws(moto, &["describe-snapshots", "--owner-ids", "self", "--filters", &filter]);
    let snaps = snaps["Snapshots"].as_array().expect("Snapshots");
    assert_eq!(snaps.len(), 1, "exactly one snapshot of backup b1: {snaps:#?}");
    let ours = aws(
        moto,
        &["describe-snapshots", "--owner-ids", "self", "--filters", &format!("Name=tag-key,Values={}", tag::CLUSTER)],
    );
    assert_eq!(ours["Snapshots"].as_array().map(Vec::len), Some(1), "mirrorctl made one snapshot in all: {ours:#?}");
}

/// The same invariants as [`check_with_cli`], read with a raw SDK client (the CLI costs about a
/// second per call; the crash campaign checks many end states): per server exactly one volume of
/// request r1, attached to its instance at the mirror device; the originals still exist and are
/// superseded; exactly one snapshot of backup b1 and no other snapshot of ours.
async fn check_with_sdk(moto: &Moto, run: &Run) {
    let sdk = moto.sdk().await;
    let vols = sdk.describe_volumes().send().await.expect("DescribeVolumes");
    let vols = vols.volumes();
    let tag = |tags: &[aws_sdk_ec2::types::Tag], k: &str| {
        tags.iter().find(|t| t.key() == Some(k)).and_then(|t| t.value()).map(str::to_owned)
    };
    for s in &run.spec.cluster.servers {
        let mine: Vec<_> = vols
            .iter()
            .filter(|v| {
                tag(v.tags(), tag::REQUEST).as_deref() == Some("r1")
                    && tag(v.tags(), tag::SERVER).as_deref() == Some(s.name.as_str())
            })
            .collect();
        assert_eq!(mine.len(), 1, "exactly one r1 volume for {}: {mine:#?}", s.name);
        let att = mine[0].attachments();
        assert_eq!(att.len(), 1, "{:#?}", mine[0]);
        assert_eq!(att[0].instance_id(), Some(s.instance.as_str()));
        assert!(same_device(att[0].device().unwrap_or(""), DEVICE), "{att:?}");
    }
    let r1 = vols.iter().filter(|v| tag(v.tags(), tag::REQUEST).as_deref() == Some("r1")).count();
    assert_eq!(r1, 2, "exactly two volumes of request r1");
    for old in &run.originals {
        let v = vols.iter().find(|v| v.volume_id() == Some(old.as_str()));
        let v = v.unwrap_or_else(|| panic!("{old} was deleted"));
        assert!(tag(v.tags(), tag::SUPERSEDED_BY).is_some(), "{old} is superseded: {v:#?}");
    }
    let data = vols.iter().filter(|v| !v.attachments().iter().any(|a| a.device() == Some("/dev/sda1"))).count();
    assert_eq!(data, 4, "two originals + two restored, nothing else");
    let snaps = sdk
        .describe_snapshots()
        .owner_ids("self")
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag-key").values(tag::CLUSTER).build())
        .send()
        .await
        .expect("DescribeSnapshots");
    let snaps = snaps.snapshots();
    assert_eq!(snaps.len(), 1, "exactly one snapshot of ours: {snaps:#?}");
    assert_eq!(tag(snaps[0].tags(), tag::REQUEST).as_deref(), Some("b1"));
}

/// The fake cluster's end state: md re-added without the initial copy, the group online and the
/// mirror green on both sides, and the failover check made: one move, to the second server — also
/// when a crash interrupted the move after it happened (the planner recognises it by observation).
async fn check_cluster(run: &Run) {
    use mirrorctl::ports::Cluster as _;
    let md = run.world.md_definition().expect("md is configured again");
    assert!(!md.initial_copy, "both sides from the same snapshot: initial mirror construction OFF");
    let colors = run.world.mirror_status(&run.spec.mirror.resource).await.expect("mirror status");
    assert!(colors.colors.values().all(|c| *c == MirrorColor::Green), "{colors:?}");
    let moves = run.world.calls().get("clp:move_group").copied().unwrap_or(0);
    let second = &run.spec.cluster.servers[1].name;
    assert_eq!(moves, 1, "one failover check: {:?}", run.world.log());
    assert_eq!(run.world.group_online_on().as_ref(), Some(second), "failover checked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_on_moto_with_the_real_reconcile_loop() {
    let started = Instant::now();
    let moto = Moto::start();
    let run = Run::new(&moto).await;

    let backup = run.backup_spec();
    assert_eq!(run.apply_verbose(&moto, &backup).await, Settled::Converged);
    let snap = run.backup_snapshot(&moto).await;
    let snapshotted = aws(&moto, &["describe-snapshots", "--snapshot-ids", snap.as_str()]);
    assert_eq!(
        snapshotted["Snapshots"][0]["VolumeId"],
        run.originals[1].as_str(),
        "the backup snapshots the standby's volume"
    );
    let calls = run.world.calls();
    assert_eq!(calls.get("clp:shutdown_server"), Some(&1), "{calls:?}");

    // Converged means converged: a second pass does nothing.
    assert_eq!(run.apply(&moto, &backup).await, Settled::Converged);
    assert_eq!(run.world.calls().get("clp:shutdown_server"), Some(&1));

    println!("backup converged at {:.1?}", started.elapsed());

    let restore = run.restore_spec(&snap);
    assert_eq!(run.apply_verbose(&moto, &restore).await, Settled::Converged);
    println!("restore converged at {:.1?}", started.elapsed());
    check_with_cli(&moto, &run);
    check_with_sdk(&moto, &run).await;
    check_cluster(&run).await;

    // And again: nothing more is created.
    assert_eq!(run.apply(&moto, &restore).await, Settled::Converged);
    check_with_cli(&moto, &run);
    println!("backup + restore on moto in {:.1?}", started.elapsed());
    println!("fake cluster log:\n  {}", run.world.log().join("\n  "));
}

/// Crash after the `n`-th mutating call of the backup (`in_backup`) or of the restore, resume,
/// and check the end state. Returns the interrupted step, `None` when there was no `n`-th call.
async fn crash_case(moto: &Moto, in_backup: bool, n: usize) -> Option<String> {
    let t = Instant::now();
    let run = Run::new(moto).await;
    let backup = run.backup_spec();
    let crashed = if in_backup {
        run.crash_then_resume(moto, &backup, n).await
    } else {
        assert_eq!(run.apply(moto, &backup).await, Settled::Converged);
        None
    };
    let snap = run.backup_snapshot(moto).await;
    let restore = run.restore_spec(&snap);
    let crashed = if in_backup {
        assert_eq!(run.apply(moto, &restore).await, Settled::Converged);
        crashed
    } else {
        run.crash_then_resume(moto, &restore, n).await
    };
    if crashed.is_some() {
        check_with_sdk(moto, &run).await;
        check_cluster(&run).await;
    }
    let phase = if in_backup { "backup" } else { "restore" };
    println!("{phase} crash #{n}: {} ({:.1?})", crashed.as_deref().unwrap_or("past the last call"), t.elapsed());
    crashed
}

/// Crash cases `ns` of one phase; returns the interrupted steps.
async fn campaign(in_backup: bool, ns: std::ops::RangeInclusive<usize>) -> Vec<String> {
    let moto = Moto::start();
    let mut covered = Vec::new();
    for n in ns {
        match crash_case(&moto, in_backup, n).await {
            Some(step) => covered.push(step),
            None => break,
        }
    }
    covered
}

// The campaign is split in three tests (each its own moto_server) so that each stays well under
// a minute and they run in parallel.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_inside_every_backup_call_then_resume() {
    let covered = campaign(true, 1..=10).await;
    println!("crash points covered on moto (backup): {} {covered:?}", covered.len());
    assert!(covered.len() >= 4, "{covered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_inside_early_restore_calls_then_resume() {
    let covered = campaign(false, 1..=7).await;
    println!("crash points covered on moto (restore 1-7): {} {covered:?}", covered.len());
    assert_eq!(covered.len(), 7, "{covered:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_inside_late_restore_calls_then_resume() {
    let covered = campaign(false, 8..=30).await;
    println!("crash points covered on moto (restore 8-): {} {covered:?}", covered.len());
    assert!(covered.len() >= 5, "{covered:?}");
    assert!(covered.iter().any(|s| s.contains("verify-failover")), "{covered:?}");
}
