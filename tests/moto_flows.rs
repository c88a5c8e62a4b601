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
use mirrorctl::ports::Ports;
use mirrorctl::ports::clock::SystemClock;
use mirrorctl::ports::cloud::{Cloud, SnapshotFilter, Tags, tag};
use mirrorctl::ports::cluster::MirrorColor;
use mirrorctl::reconcile::{Context, ReconcileError, Settled, reconcile};
use mirrorctl::spec::{BackupSpec, RestoreSpec, Spec};
use moto_world::{MotoWorld, run_server};
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
            let (instance, volume) = run_server(&sdk, server.zone.as_str(), 100, DEVICE).await;
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

    /// Runs `spec` with a crash after the `n`-th mutating call, then resumes until converged.
    /// Returns whether the crash fired and how many mutating calls the crashing run saw.
    async fn crash_then_resume(&self, moto: &Moto, spec: &Spec, n: usize) -> (bool, usize) {
        let switch = Arc::new(CrashSwitch::new(CrashPoint::AfterCall, n));
        let result = reconcile(spec, &self.ctx(moto, Some(switch.clone())).await).await;
        let fired = switch.fired();
        match result {
            Err(ReconcileError::Exec(ExecError::Crashed(_))) => assert!(fired),
            Ok(Settled::Converged) => assert!(!fired, "converged although the crash fired"),
            other => panic!("unexpected end with a crash after call #{n}: {other:?}"),
        }
        if fired {
            assert_eq!(self.apply(moto, spec).await, Settled::Converged, "resume after a crash after call #{n}");
        }
        (fired, switch.seen())
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

/// The fake cluster's end state: md re-added without the initial copy, the group moved to the
/// second server by the failover check, the mirror green on both sides.
async fn check_cluster(run: &Run) {
    use mirrorctl::ports::Cluster as _;
    let md = run.world.md_definition().expect("md is configured again");
    assert!(!md.initial_copy, "both sides from the same snapshot: initial mirror construction OFF");
    assert_eq!(run.world.group_online_on().as_ref(), Some(&run.spec.cluster.servers[1].name), "failover checked");
    let colors = run.world.mirror_status(&run.spec.mirror.resource).await.expect("mirror status");
    assert!(colors.colors.values().all(|c| *c == MirrorColor::Green), "{colors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_then_restore_on_moto_with_the_real_reconcile_loop() {
    let started = Instant::now();
    let moto = Moto::start();
    let run = Run::new(&moto).await;

    let backup = run.backup_spec();
    assert_eq!(run.apply(&moto, &backup).await, Settled::Converged);
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

    let restore = run.restore_spec(&snap);
    assert_eq!(run.apply(&moto, &restore).await, Settled::Converged);
    check_with_cli(&moto, &run);
    check_cluster(&run).await;

    // And again: nothing more is created.
    assert_eq!(run.apply(&moto, &restore).await, Settled::Converged);
    check_with_cli(&moto, &run);
    println!("backup + restore on moto in {:.1?}", started.elapsed());
    println!("fake cluster log:\n  {}", run.world.log().join("\n  "));
}

/// Crash after the `n`-th mutating call of the backup (`in_backup`) or of the restore, resume,
/// and check the end state. Returns whether the crash fired.
async fn crash_case(moto: &Moto, in_backup: bool, n: usize) -> bool {
    let run = Run::new(moto).await;
    let backup = run.backup_spec();
    let fired_backup = if in_backup {
        run.crash_then_resume(moto, &backup, n).await.0
    } else {
        assert_eq!(run.apply(moto, &backup).await, Settled::Converged);
        false
    };
    let snap = run.backup_snapshot(moto).await;
    let restore = run.restore_spec(&snap);
    let fired = if in_backup {
        assert_eq!(run.apply(moto, &restore).await, Settled::Converged);
        fired_backup
    } else {
        run.crash_then_resume(moto, &restore, n).await.0
    };
    check_with_cli(moto, &run);
    check_cluster(&run).await;
    fired
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crashes_inside_backup_and_restore_steps_resume_without_duplicates() {
    let started = Instant::now();
    let moto = Moto::start();
    let mut covered = Vec::new();
    for n in [1, 3] {
        if crash_case(&moto, true, n).await {
            covered.push(format!("backup#{n}"));
        }
    }
    for n in 1.. {
        if !crash_case(&moto, false, n).await {
            break;
        }
        covered.push(format!("restore#{n}"));
    }
    println!("crash points covered on moto ({}): {}", covered.len(), covered.join(", "));
    println!("in {:.1?}", started.elapsed());
    assert!(covered.iter().filter(|c| c.starts_with("backup")).count() >= 2, "{covered:?}");
    assert!(covered.iter().filter(|c| c.starts_with("restore")).count() >= 5, "{covered:?}");
}
