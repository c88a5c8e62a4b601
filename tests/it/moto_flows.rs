//! Full flows against `moto_server`: mirrorctl's real reconcile loop with the cloud port =
//! `AwsCloud` on moto, and the cluster and node ports = a small fake living on top of moto's state
//! (`moto_world`). A backup, then a restore from it, checked from outside mirrorctl with the AWS
//! CLI; then crashes inside mutating steps of both, resumed with a fresh executor and journal
//! re-opened from disk while moto and the fake cluster (which did not crash) keep their state;
//! and a seeded randomized campaign of such crashes (at step boundaries and inside mutating steps,
//! up to three per flow) that prints a tally. These crashes are in-process (the executor's crash
//! switch), not kill -9: the real binary cannot act on AWS yet. The kill -9 campaign against the
//! real daemon runs on the simulated world (`tests/it/chaos.rs`, `mirrorctl bench chaos`).
//!
//! What moto does not check (DOMAIN.md): it ignores `ClientToken`, accepts lenient attaches and
//! moves every state at once. So duplicates are not caught by moto here: the tests count what
//! carries our tags. The strict checks live in the simulator's tests (`crash_resume.rs`).
//!
//! Real tokio time: the SDK's timeouts must not fire on a paused clock while moto answers.

use crate::support;
use crate::support::moto_world;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use mirrorctl::execute::{CrashPoint, CrashSwitch, ExecError};
use mirrorctl::harness::chaos::{Violation, check_status};
use mirrorctl::ids::{BackupName, RequestName, SnapshotId, VolumeId};
use mirrorctl::journal::Record;
use mirrorctl::journal::writer::Journal;
use mirrorctl::ports::Ports;
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
            clock: Arc::new(support::ShortWaits(20)),
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
        let records = mirrorctl::journal::read_file(&path).expect("journal");
        let mut open: Vec<(u64, String)> = Vec::new();
        for r in &records {
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
        spec.backup = Some(BackupSpec {
            schedules: Vec::new(),
            keep: 3,
            take: vec![BackupName::parse("b1").expect("backup name")],
            copy_to: Vec::new(),
        });
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

/// The tags of an SDK resource as a lookup.
fn sdk_tag(tags: &[aws_sdk_ec2::types::Tag], key: &str) -> Option<String> {
    tags.iter().find(|t| t.key() == Some(key)).and_then(|t| t.value()).map(str::to_owned)
}

/// Every volume moto holds and the snapshots carrying our cluster tag, read with a raw SDK client
/// (the CLI costs about a second per call; the crash campaigns check many end states).
async fn sdk_inventory(moto: &Moto) -> (Vec<aws_sdk_ec2::types::Volume>, Vec<aws_sdk_ec2::types::Snapshot>) {
    let sdk = moto.sdk().await;
    let vols = sdk.describe_volumes().send().await.expect("DescribeVolumes");
    let snaps = sdk
        .describe_snapshots()
        .owner_ids("self")
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag-key").values(tag::CLUSTER).build())
        .send()
        .await
        .expect("DescribeSnapshots");
    (vols.volumes().to_vec(), snaps.snapshots().to_vec())
}

/// Exactly `n` volumes besides moto's root volumes (at /dev/sda1): `expected` says which.
fn data_volumes(vols: &[aws_sdk_ec2::types::Volume], n: usize, expected: &str) -> Option<Violation> {
    let data = vols.iter().filter(|v| !v.attachments().iter().any(|a| a.device() == Some("/dev/sda1"))).count();
    (data != n).then(|| Violation { kind: "duplicate-volume", detail: format!("{data} data volumes ({expected})") })
}

/// The originals still exist (`superseded`: and are marked superseded).
fn originals_kept(run: &Run, vols: &[aws_sdk_ec2::types::Volume], superseded: bool) -> Vec<Violation> {
    let mut out = Vec::new();
    for old in &run.originals {
        match vols.iter().find(|v| v.volume_id() == Some(old.as_str())) {
            None => out.push(Violation { kind: "volume-deleted", detail: format!("{old} was deleted") }),
            Some(v) if superseded && sdk_tag(v.tags(), tag::SUPERSEDED_BY).is_none() => out.push(Violation {
                kind: "original-not-superseded",
                detail: format!("{old} is not tagged superseded: {v:?}"),
            }),
            Some(_) => {}
        }
    }
    out
}

/// Exactly one snapshot of ours, the one of backup b1, taken from the standby's original volume.
fn one_backup_snapshot(run: &Run, snaps: &[aws_sdk_ec2::types::Snapshot]) -> Vec<Violation> {
    match snaps {
        [s] if sdk_tag(s.tags(), tag::REQUEST).as_deref() == Some("b1") => {
            if s.volume_id() == Some(run.originals[1].as_str()) {
                Vec::new()
            } else {
                vec![Violation {
                    kind: "wrong-snapshot-source",
                    detail: format!(
                        "the b1 snapshot is of {:?}, not the standby's {}",
                        s.volume_id(),
                        run.originals[1]
                    ),
                }]
            }
        }
        _ => vec![Violation {
            kind: "duplicate-snapshot",
            detail: format!("{} snapshots of ours (exactly one, of b1, expected): {snaps:?}", snaps.len()),
        }],
    }
}

/// After the backup, from moto's state: one snapshot (b1, of the standby's volume), no volume
/// created or deleted.
async fn backup_violations(moto: &Moto, run: &Run) -> Vec<Violation> {
    let (vols, snaps) = sdk_inventory(moto).await;
    let mut out = one_backup_snapshot(run, &snaps);
    out.extend(originals_kept(run, &vols, false));
    out.extend(data_volumes(&vols, 2, "after the backup, the 2 originals expected"));
    out
}

/// After the restore, from moto's state: per server exactly one volume of request r1, attached to
/// its instance at the mirror device; the originals still exist and are superseded; besides them
/// nothing else; exactly one snapshot of ours (backup b1).
async fn restore_violations(moto: &Moto, run: &Run) -> Vec<Violation> {
    let (vols, snaps) = sdk_inventory(moto).await;
    let mut out = Vec::new();
    for s in &run.spec.cluster.servers {
        let mine: Vec<_> = vols
            .iter()
            .filter(|v| {
                sdk_tag(v.tags(), tag::REQUEST).as_deref() == Some("r1")
                    && sdk_tag(v.tags(), tag::SERVER).as_deref() == Some(s.name.as_str())
            })
            .collect();
        let [v] = mine.as_slice() else {
            let kind = if mine.is_empty() { "missing-volume" } else { "duplicate-volume" };
            out.push(Violation { kind, detail: format!("{} r1 volumes for {}: {mine:?}", mine.len(), s.name) });
            continue;
        };
        let att = v.attachments();
        let at_mirror = matches!(att, [a] if a.instance_id() == Some(s.instance.as_str())
            && same_device(a.device().unwrap_or(""), DEVICE));
        if !at_mirror {
            out.push(Violation { kind: "not-attached", detail: format!("{}'s r1 volume: {att:?}", s.name) });
        }
    }
    out.extend(originals_kept(run, &vols, true));
    out.extend(data_volumes(&vols, 4, "two originals + two restored expected"));
    out.extend(one_backup_snapshot(run, &snaps));
    out
}

/// The same invariants as [`check_with_cli`], read with the SDK: [`restore_violations`] is empty.
async fn check_with_sdk(moto: &Moto, run: &Run) {
    let v = restore_violations(moto, run).await;
    assert!(v.is_empty(), "{v:#?}");
}

/// The fake cluster's end state after a restore: md re-added without the initial copy, the group
/// online and the mirror green on both sides, and the failover check made: one move, to the second
/// server — also when a crash interrupted the move after it happened (the planner recognises it by
/// observation).
async fn cluster_violations(run: &Run) -> Vec<Violation> {
    use mirrorctl::ports::Cluster as _;
    let mut out = Vec::new();
    // NEC's procedure leaves the md definition as it was; the configuration edit re-adds it.
    let vendor = run.world.calls().contains_key("clp:vendor");
    match run.world.md_definition() {
        None => out.push(Violation { kind: "md-missing", detail: "md is not configured again".into() }),
        Some(md) if md.initial_copy && !vendor => out.push(Violation {
            kind: "initial-copy",
            detail: "both sides come from one snapshot, yet initial mirror construction is ON".into(),
        }),
        Some(_) => {}
    }
    match run.world.mirror_status(&run.spec.mirror.resource).await {
        Ok(colors) if colors.colors.values().all(|c| *c == MirrorColor::Green) => {}
        other => out.push(Violation { kind: "mirror-unhealthy", detail: format!("{other:?}") }),
    }
    let moves = run.world.calls().get("clp:move_group").copied().unwrap_or(0);
    let second = &run.spec.cluster.servers[1].name;
    if moves != 1 || run.world.group_online_on().as_ref() != Some(second) {
        out.push(Violation {
            kind: "failover",
            detail: format!(
                "{moves} moves, group on {:?} (one move, to {second}, expected)",
                run.world.group_online_on()
            ),
        });
    }
    out
}

async fn check_cluster(run: &Run) {
    let v = cluster_violations(run).await;
    assert!(v.is_empty(), "{v:#?}; log: {:?}", run.world.log());
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
    // The standby leaves and business restarts in one request.
    assert_eq!(calls.get("clp:leave_then_start"), Some(&1), "{calls:?}");
    assert_eq!(calls.get("clp:shutdown_server"), None, "{calls:?}");

    // Converged means converged: a second pass does nothing.
    assert_eq!(run.apply(&moto, &backup).await, Settled::Converged);
    assert_eq!(run.world.calls().get("clp:leave_then_start"), Some(&1));

    println!("backup converged at {:.1?}", started.elapsed());
    assert_eq!(backup_violations(&moto, &run).await, Vec::<Violation>::new());
    // The restore checks fail before the restore: they can catch a missing volume.
    let early: Vec<&str> = restore_violations(&moto, &run).await.iter().map(|v| v.kind).collect();
    assert!(early.contains(&"missing-volume") && early.contains(&"original-not-superseded"), "{early:?}");

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

/// The two flows of a campaign trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Flow {
    Backup,
    Restore,
}

/// What the randomized campaign counted.
#[derive(Debug, Default)]
struct Tally {
    trials: usize,
    points: BTreeMap<Flow, usize>,
    crashes_per_flow: BTreeMap<usize, usize>,
    undelivered: usize,
    flows: usize,
    converged: usize,
    phases: BTreeMap<String, usize>,
    violations: Vec<(String, Violation)>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.trials += other.trials;
        for (k, n) in other.points {
            *self.points.entry(k).or_default() += n;
        }
        for (k, n) in other.crashes_per_flow {
            *self.crashes_per_flow.entry(k).or_default() += n;
        }
        for (k, n) in other.phases {
            *self.phases.entry(k).or_default() += n;
        }
        self.undelivered += other.undelivered;
        self.flows += other.flows;
        self.converged += other.converged;
        self.violations.extend(other.violations);
    }

    fn render(&self, seed: u64, took: std::time::Duration) -> String {
        use std::fmt::Write as _;
        let mut out = String::new();
        let total: usize = self.points.values().sum();
        let _ = writeln!(
            out,
            "moto crash campaign (in-process crash switch, not kill -9), seed {seed}, {SHARDS} moto servers"
        );
        let _ = writeln!(out, "trials (fresh moto state)    {}", self.trials);
        let _ = writeln!(
            out,
            "crash points                 {total} (backup {}, restore {})",
            self.points.get(&Flow::Backup).copied().unwrap_or(0),
            self.points.get(&Flow::Restore).copied().unwrap_or(0)
        );
        let per: Vec<String> = self.crashes_per_flow.iter().map(|(k, n)| format!("{k} crashes: {n}")).collect();
        let _ = writeln!(out, "flows by crashes             {}", per.join(", "));
        let _ = writeln!(out, "crashes drawn after the end  {}", self.undelivered);
        let _ = writeln!(out, "flows converged              {} / {}", self.converged, self.flows);
        let _ = writeln!(out, "wall time                    {:.1}s", took.as_secs_f64());
        let _ = writeln!(out, "violations                   {}", self.violations.len());
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, v) in &self.violations {
            *kinds.entry(v.kind).or_default() += 1;
        }
        for (kind, n) in kinds {
            let _ = writeln!(out, "  {kind:<26} {n}");
        }
        let _ = writeln!(out, "where the crashes landed:");
        for (phase, n) in &self.phases {
            let _ = writeln!(out, "  {phase:<44} {n:>3}");
        }
        for (trial, v) in &self.violations {
            let _ = writeln!(out, "  trial {trial}: [{}] {}", v.kind, v.detail);
        }
        out
    }
}

/// `restore/r1/attach@node1 (AfterCall)` → `restore: inside attach`.
fn crash_phase(flow: Flow, crashed: &str) -> String {
    let step = crashed.split(" (").next().unwrap_or(crashed);
    let kind = step.rsplit('/').next().unwrap_or(step);
    let kind = kind.split('@').next().unwrap_or(kind);
    let flow = if flow == Flow::Backup { "backup" } else { "restore" };
    let at = if crashed.contains("AfterCall") { "inside" } else { "before" };
    format!("{flow}: {at} {kind}")
}

impl Run {
    /// How many times a clean run of `spec` reaches `point` (it must converge).
    async fn count_points(&self, moto: &Moto, spec: &Spec, point: CrashPoint) -> Result<usize, Violation> {
        let switch = Arc::new(CrashSwitch::new(point, usize::MAX));
        match reconcile(spec, &self.ctx(moto, Some(switch.clone())).await).await {
            Ok(Settled::Converged) => Ok(switch.seen()),
            other => Err(Violation { kind: "non-convergence", detail: format!("clean run: {other:?}") }),
        }
    }

    /// Runs `spec` with a crash at the `targets[i]`-th `point` of the i-th run, each run on a fresh
    /// context (a restarted process), then once more to convergence. Returns where the crashes
    /// landed, or the violation when a run ended otherwise.
    async fn crashes_then_converge(
        &self,
        moto: &Moto,
        spec: &Spec,
        point: CrashPoint,
        targets: &[usize],
    ) -> (Vec<String>, Option<Violation>) {
        let mut crashed = Vec::new();
        for &n in targets {
            let switch = Arc::new(CrashSwitch::new(point, n));
            match reconcile(spec, &self.ctx(moto, Some(switch.clone())).await).await {
                Err(ReconcileError::Exec(ExecError::Crashed(at))) => crashed.push(at),
                Ok(Settled::Converged) => return (crashed, None),
                other => {
                    let v = Violation { kind: "non-convergence", detail: format!("after {crashed:?}: {other:?}") };
                    return (crashed, Some(v));
                }
            }
        }
        match reconcile(spec, &self.ctx(moto, None).await).await {
            Ok(Settled::Converged) => (crashed, None),
            other => {
                let v = Violation { kind: "non-convergence", detail: format!("resume after {crashed:?}: {other:?}") };
                (crashed, Some(v))
            }
        }
    }
}

/// One flow of a campaign trial: `plan` = `Ok((point, targets))` crashes at `point`, or
/// `Err(point)` for a clean calibration run that counts the flow's `point`s; then the checks.
/// Returns the count of a calibration run.
async fn campaign_flow(
    moto: &Moto,
    run: &Run,
    flow: Flow,
    spec: &Spec,
    plan: Result<(CrashPoint, Vec<usize>), CrashPoint>,
    trial: &str,
    tally: &mut Tally,
) -> Option<usize> {
    let (crashed, failed, counted) = match plan {
        Ok((point, targets)) => {
            let (crashed, failed) = run.crashes_then_converge(moto, spec, point, &targets).await;
            if failed.is_none() {
                tally.undelivered += targets.len() - crashed.len();
            }
            (crashed, failed, None)
        }
        Err(point) => match run.count_points(moto, spec, point).await {
            Ok(n) => (Vec::new(), None, Some(n)),
            Err(v) => (Vec::new(), Some(v), None),
        },
    };
    tally.flows += 1;
    tally.converged += usize::from(failed.is_none());
    *tally.crashes_per_flow.entry(crashed.len()).or_default() += 1;
    *tally.points.entry(flow).or_default() += crashed.len();
    for c in &crashed {
        *tally.phases.entry(crash_phase(flow, c)).or_default() += 1;
    }
    let state = run.dir.path().join("state");
    let mut found: Vec<Violation> = failed.into_iter().collect();
    match flow {
        Flow::Backup => {
            found.extend(backup_violations(moto, run).await);
            found.extend(check_status(&state, spec, "backup/b1", None));
        }
        Flow::Restore => {
            found.extend(restore_violations(moto, run).await);
            found.extend(cluster_violations(run).await);
            found.extend(check_status(&state, spec, "restore/r1", None));
        }
    }
    tally.violations.extend(found.into_iter().map(|v| (trial.to_owned(), v)));
    counted
}

/// One trial on a freshly reset moto: the backup flow, then the restore from its snapshot.
/// Returns the counts of calibration flows.
async fn campaign_trial(
    moto: &Moto,
    plans: [Result<(CrashPoint, Vec<usize>), CrashPoint>; 2],
    trial: &str,
    tally: &mut Tally,
) -> Vec<(Flow, usize)> {
    let [backup_plan, restore_plan] = plans;
    let run = Run::new(moto).await;
    let mut counted = Vec::new();
    let backup = run.backup_spec();
    if let Some(n) = campaign_flow(moto, &run, Flow::Backup, &backup, backup_plan, trial, tally).await {
        counted.push((Flow::Backup, n));
    }
    tally.trials += 1;
    let (_, snaps) = sdk_inventory(moto).await;
    let Some(snap) = snaps.first().and_then(|s| s.snapshot_id()).and_then(|s| SnapshotId::parse(s).ok()) else {
        let v = Violation { kind: "no-backup", detail: "no snapshot to restore from".into() };
        tally.violations.push((trial.to_owned(), v));
        return counted;
    };
    let restore = run.restore_spec(&snap);
    if let Some(n) = campaign_flow(moto, &run, Flow::Restore, &restore, restore_plan, trial, tally).await {
        counted.push((Flow::Restore, n));
    }
    counted
}

/// Crash points per flow of one kind, as counted by the calibration trials.
type Counts = BTreeMap<(Flow, bool), usize>;

/// One shard of the campaign on its own moto server: random trials until `points` crashes landed.
async fn campaign_shard(moto: &Moto, counts: &Counts, points: usize, seed: u64) -> Tally {
    use rand::{Rng as _, SeedableRng as _};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut tally = Tally::default();
    for trial in 0..points * 2 {
        if tally.points.values().sum::<usize>() >= points {
            break;
        }
        let mut plan_for = |flow: Flow| {
            let point = if rng.random() { CrashPoint::AfterCall } else { CrashPoint::BeforeIntent };
            let n = counts.get(&(flow, point == CrashPoint::AfterCall)).copied().unwrap_or(1).max(1);
            let mut at: Vec<usize> = (0..rng.random_range(1..=3)).map(|_| rng.random_range(1..=n)).collect();
            at.sort_unstable();
            // Each run counts its points from 1 again: crash at the distance from the last one.
            let targets = at.iter().scan(0, |last, &p| Some((p - std::mem::replace(last, p)).max(1))).collect();
            Ok((point, targets))
        };
        let plans = [plan_for(Flow::Backup), plan_for(Flow::Restore)];
        campaign_trial(moto, plans, &format!("{seed}/{trial}"), &mut tally).await;
    }
    tally
}

/// Moto servers the campaign runs on at once: its time goes to real-time polls, not CPU.
const SHARDS: u64 = 3;

/// A seeded, randomized crash campaign on moto: trials of a backup then a restore from it, each
/// flow crashed 1–3 times at random points of one kind (a step boundary, or inside a mutating
/// step after its call reached moto), resumed each time with a fresh executor and the journal
/// re-opened from disk, and checked from moto's state (SDK), the fake cluster and the status
/// document. Two clean trials first count each flow's points of each kind, so the random points
/// spread over the whole flow; then [`SHARDS`] moto servers run trials at once until `points`
/// crashes have landed.
async fn random_campaign(points: usize, seed: u64) -> Tally {
    let motos: Vec<Moto> = (0..SHARDS).map(|_| Moto::start()).collect();
    let mut tally = Tally::default();
    let mut counts = Counts::new();
    let kinds = [CrashPoint::BeforeIntent, CrashPoint::AfterCall];
    let calibrations = futures::future::join_all(kinds.iter().zip(&motos).map(|(point, moto)| async move {
        let mut t = Tally::default();
        let plans = [Err(*point), Err(*point)];
        let counted = campaign_trial(moto, plans, &format!("calibration {point:?}"), &mut t).await;
        (*point == CrashPoint::AfterCall, counted, t)
    }))
    .await;
    for (after_call, counted, t) in calibrations {
        for (flow, n) in counted {
            counts.insert((flow, after_call), n);
        }
        tally.merge(t);
    }
    let per_shard = points.div_ceil(motos.len());
    let counts = &counts;
    let shards = futures::future::join_all(
        motos.iter().zip(0..).map(|(moto, i)| campaign_shard(moto, counts, per_shard, seed * 100 + i)),
    )
    .await;
    for t in shards {
        tally.merge(t);
    }
    tally
}

/// A number from the environment, or `default`.
fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .map_or(default, |v| v.parse().unwrap_or_else(|_| panic!("{name} must be a number, not {v:?}")))
}

/// The campaign at `MIRRORCTL_MOTO_CHAOS_POINTS` points (default 15, CI's reduced size; about a
/// minute on a busy two-core machine) with seed `MIRRORCTL_MOTO_CHAOS_SEED` (default 1). The full
/// campaign: `MIRRORCTL_MOTO_CHAOS_POINTS=30 cargo test --test it moto_flows::seeded_random -- --show-output`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn seeded_random_crash_chaos_campaign_on_moto() {
    let points = usize::try_from(env_number("MIRRORCTL_MOTO_CHAOS_POINTS", 15)).expect("points");
    let seed = env_number("MIRRORCTL_MOTO_CHAOS_SEED", 1);
    let started = Instant::now();
    let tally = random_campaign(points, seed).await;
    let text = tally.render(seed, started.elapsed());
    println!("{text}");
    let total: usize = tally.points.values().sum();
    assert!(total >= points, "{text}");
    assert!(tally.points.values().all(|n| *n > 0) && tally.points.len() == 2, "both flows crashed: {text}");
    assert_eq!(tally.converged, tally.flows, "{text}");
    assert!(tally.violations.is_empty(), "{text}");
}

/// NEC's pre- and post-processing on moto: the fake cluster reports X 5.1, so `procedure =
/// "auto"` (the example file's default) backs up with `clpbackup` and restores with `clprestore`
/// on both servers; the EC2 calls are the real ones and the end state passes the same checks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_backup_then_restore_on_moto() {
    let moto = Moto::start();
    let run = Run::new(&moto).await;
    run.world.set_version("5.1.0-1");
    let backup = run.backup_spec();
    assert_eq!(run.apply(&moto, &backup).await, Settled::Converged);
    let calls = run.world.calls();
    assert_eq!(calls.get("clp:vendor"), Some(&2), "clpbackup --pre and --post: {calls:?}");
    assert_eq!(calls.get("clp:shutdown_server"), None, "{calls:?}");
    assert_eq!(backup_violations(&moto, &run).await, Vec::<Violation>::new());
    let snap = run.backup_snapshot(&moto).await;
    let restore = run.restore_spec(&snap);
    assert_eq!(run.apply(&moto, &restore).await, Settled::Converged);
    let calls = run.world.calls();
    assert_eq!(calls.get("clp:vendor"), Some(&6), "clprestore --pre and --post on both servers: {calls:?}");
    assert_eq!(calls.get("clp:apply_config"), None, "the vendor restore never pushes clp.conf: {calls:?}");
    check_with_sdk(&moto, &run).await;
    check_cluster(&run).await;
    assert!(
        run.world.log().iter().any(|l| l.contains("clprestore --post --skip-copy")),
        "both sides from the snapshot: the copy is skipped\n{}",
        run.world.log().join("\n")
    );
}
