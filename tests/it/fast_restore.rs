//! `mirror.volume.fast_restore = true`: Fast Snapshot Restore enabled for the restore snapshot in
//! both servers' zones before the volumes are created, waited for, checked on the volumes, and
//! switched off again — in the simulator (both procedures, refusals, a missing permission, an
//! abandoned request, someone else's FSR, crashes) and through the AWS adapter against a fake EC2
//! endpoint that speaks the query protocol (moto has no FSR).

use std::sync::Arc;

use crate::support::common::{Lab, example_on, with_backups, with_restore};
use crate::support::fake_ec2_fsr::FakeEc2Fsr;
use mirrorctl::adapters::aws::{AwsCloud, AwsOptions};
use mirrorctl::execute::CrashPoint;
use mirrorctl::ids::{Region, SnapshotId, Zone};
use mirrorctl::journal::Record;
use mirrorctl::plan::Action;
use mirrorctl::ports::Clock as _;
use mirrorctl::ports::Cloud as _;
use mirrorctl::ports::cloud::{FastRestoreState, tag};
use mirrorctl::reconcile::{ReconcileError, Settled};
use mirrorctl::sim::Fault;
use mirrorctl::spec::{Os, ProcedureChoice, Spec};
use mirrorctl::status::StatusDoc;

/// Runs the reconcile a few passes at a time until `until` holds on the status document (the
/// restore left under way, as after a daemon stop).
async fn run_until(lab: &Lab, spec: &Spec, until: impl Fn(&StatusDoc) -> bool) -> StatusDoc {
    let mut ctx = lab.ctx();
    ctx.max_passes = Some(1);
    for _ in 0..120 {
        let r = mirrorctl::reconcile::reconcile(spec, &ctx).await;
        assert!(matches!(r, Err(ReconcileError::PassLimit(_))), "still under way: {r:?} {:#?}", status(lab, spec));
        let doc = status(lab, spec);
        if until(&doc) {
            return doc;
        }
    }
    panic!("never reached the state; last status: {:#?}", status(lab, spec));
}

/// A lab that has taken backup `b1`, with the accident done, and the restore spec of `request`
/// (`fast_restore` on).
async fn prepared(seed: u64, procedure: ProcedureChoice, request: &str) -> (Lab, Spec, SnapshotId) {
    let lab = Lab::windows(seed);
    let backup = with_backups(example_on(Os::Windows, procedure), &["b1"], 7);
    assert_eq!(lab.apply(&backup).await, Settled::Converged);
    let snap = lab.backup_snapshot(&backup, "b1");
    // The snapshot completes (a restore needs it), business runs, the accident happens.
    lab.world.clock().sleep(std::time::Duration::from_mins(10)).await;
    lab.world.accident();
    let mut restore = with_restore(backup, &snap, request, true);
    restore.mirror.volume.fast_restore = true;
    (lab, restore, snap)
}

fn restored(lab: &Lab, request: &str) -> Vec<mirrorctl::ports::cloud::Volume> {
    lab.world
        .inventory()
        .volumes
        .into_iter()
        .filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some(request))
        .collect()
}

fn fsr_on(lab: &Lab) -> Vec<String> {
    lab.world.fast_restores().iter().filter(|f| f.state.is_on()).map(|f| format!("{} {}", f.snapshot, f.zone)).collect()
}

fn position(actions: &[(String, Action)], pred: impl Fn(&str, &Action) -> bool) -> usize {
    actions.iter().position(|(id, a)| pred(id, a)).unwrap_or_else(|| panic!("no such step in {actions:#?}"))
}

fn status(lab: &Lab, spec: &Spec) -> StatusDoc {
    StatusDoc::read(&StatusDoc::path_for(&lab.state_dir(), &spec.cluster.name)).expect("status document")
}

#[tokio::test(start_paused = true)]
async fn a_fast_restore_enables_fsr_first_uses_it_and_switches_it_off_on_both_procedures() {
    for procedure in [ProcedureChoice::Reconfigure, ProcedureChoice::Vendor] {
        let (lab, spec, snap) = prepared(7, procedure, "r1").await;
        assert_eq!(lab.apply(&spec).await, Settled::Converged, "{procedure:?}");
        crate::support::common::assert_restored(&lab.world, &snap);

        let vols = restored(&lab, "r1");
        assert_eq!(vols.len(), 2);
        assert!(vols.iter().all(|v| v.fast_restored), "both volumes fast-restored: {vols:#?}");
        assert!(fsr_on(&lab).is_empty(), "FSR switched off again: {:?}", fsr_on(&lab));
        // Enabled about 7 minutes per zone (100 GiB: a minute of enabling, ~6 of optimizing and
        // the first credit), not left running.
        let hours = lab.world.fast_restore_zone_hours();
        assert!(hours > 0.1 && hours < 0.5, "zone-hours {hours}");

        let actions = lab.actions(&spec);
        let preflight = position(&actions, |id, a| {
            id.ends_with("r1/preflight") && matches!(a, Action::Preflight { fast_restore: Some(_), .. })
        });
        let enable = position(&actions, |_, a| matches!(a, Action::EnableFastRestore { .. }));
        let create = position(&actions, |_, a| matches!(a, Action::CreateVolume { .. }));
        let stop = position(&actions, |id, _| id.ends_with("r1/stop-group"));
        let disable = position(&actions, |_, a| matches!(a, Action::DisableFastRestore { .. }));
        assert!(preflight < enable, "permissions proven before the first enable");
        assert!(enable < create && create < disable, "enable, create, disable");
        assert!(create < stop, "the business keeps running while FSR optimizes");
        let enabled_zones: Vec<Zone> = actions
            .iter()
            .filter_map(|(_, a)| match a {
                Action::EnableFastRestore { target } => Some(target.zones.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(enabled_zones.len(), 2, "one enable per server zone: {enabled_zones:?}");

        let doc = status(&lab, &spec);
        assert!(
            doc.inventory.initialization.values().filter(|l| l.fast_restored && l.complete).count() == 2,
            "status shows both volumes fast-restored and initialized: {:#?}",
            doc.inventory
        );
    }
}

#[tokio::test(start_paused = true)]
async fn status_reports_optimizing_while_fsr_gets_ready() {
    let (lab, spec, _) = prepared(8, ProcedureChoice::Reconfigure, "r1").await;
    let doc = run_until(&lab, &spec, |d| d.waiting.as_deref().is_some_and(|w| w.contains("optimizing"))).await;
    let waiting = doc.waiting.clone().unwrap_or_default();
    assert!(waiting.contains("Fast Snapshot Restore") && waiting.contains("optimizing"), "{waiting}");
    assert!(doc.inventory.fast_restore.values().all(|s| s == "optimizing"), "{:?}", doc.inventory.fast_restore);
    assert!(restored(&lab, "r1").is_empty(), "no volume before FSR is enabled");
    assert_eq!(lab.world.call_counts().get("clp:stop_group"), None, "the business still runs");
}

#[tokio::test(start_paused = true)]
async fn an_fsr_quota_refusal_falls_back_to_a_plain_restore_with_a_warning() {
    let (lab, spec, snap) = prepared(9, ProcedureChoice::Reconfigure, "r1").await;
    lab.world.set_fast_restore_limit(0);
    // The warning, while the restore is under way.
    let doc = run_until(&lab, &spec, |d| d.notes.iter().any(|n| n.starts_with("warning:"))).await;
    let notes = doc.notes.join("\n");
    assert!(
        notes.contains("warning: EC2 refused Fast Snapshot Restore") && notes.contains("ResourceLimitExceeded"),
        "{notes}"
    );
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    crate::support::common::assert_restored(&lab.world, &snap);
    let vols = restored(&lab, "r1");
    assert_eq!(vols.len(), 2);
    assert!(vols.iter().all(|v| !v.fast_restored), "created without FSR");
    assert!(fsr_on(&lab).is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_missing_fsr_permission_stops_the_restore_before_anything_changed() {
    let (lab, spec, _) = prepared(10, ProcedureChoice::Reconfigure, "r1").await;
    lab.world
        .inject(Fault::FailNext {
            op: mirrorctl::sim::FSR_DRY_RUN.to_owned(),
            code: "UnauthorizedOperation".into(),
            class: mirrorctl::ports::ErrorClass::NeedsHuman,
            count: 100,
        })
        .unwrap();
    let calls_before = lab.world.call_counts();
    match lab.apply(&spec).await {
        Settled::Blocked(c) => {
            assert_eq!(c.reason, "preflight-failed", "{c}");
            assert!(c.message.contains("Fast Snapshot Restore") && c.message.contains("UnauthorizedOperation"), "{c}");
            assert!(c.message.contains("ec2:EnableFastSnapshotRestores"), "names the IAM actions: {c}");
        }
        other @ Settled::Converged => panic!("expected a block, got {other:?}"),
    }
    let calls = lab.world.call_counts();
    for op in ["ec2:EnableFastSnapshotRestores", "ec2:CreateVolume", "clp:stop_group", "clp:vendor"] {
        assert_eq!(calls.get(op), calls_before.get(op), "{op} was not called");
    }
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_request_switches_its_fsr_off_first() {
    let (lab, spec, snap) = prepared(11, ProcedureChoice::Reconfigure, "r1").await;
    run_until(&lab, &spec, |d| d.inventory.fast_restore.len() == 2).await;
    assert_eq!(fsr_on(&lab).len(), 2, "r1 enabled FSR in both zones");
    let mut r2 = with_restore(spec.clone(), &snap, "r2", true);
    r2.mirror.volume.fast_restore = false;
    assert_eq!(lab.apply(&r2).await, Settled::Converged);
    assert!(fsr_on(&lab).is_empty(), "r1's FSR switched off: {:?}", fsr_on(&lab));
    let records = lab.journal(&r2);
    let at = |pred: &dyn Fn(&Record) -> bool| records.iter().position(pred).expect("record");
    let disabled = at(&|r| matches!(r, Record::Intent { step, .. } if step.0.starts_with("restore/r1/disable-fsr@")));
    let abandoned = at(&|r| matches!(r, Record::OpAbandoned { op, .. } if op.to_string() == "restore/r1"));
    assert!(disabled < abandoned, "disabled before the request is left");
}

#[tokio::test(start_paused = true)]
async fn fsr_someone_else_enabled_is_used_and_left_on() {
    let (lab, spec, snap) = prepared(12, ProcedureChoice::Reconfigure, "r1").await;
    let cloud = lab.world.ports().cloud;
    let zone_a = spec.cluster.servers[0].zone.clone();
    cloud.enable_fast_snapshot_restores(&snap, std::slice::from_ref(&zone_a)).await.unwrap();
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert!(restored(&lab, "r1").iter().all(|v| v.fast_restored));
    assert_eq!(fsr_on(&lab), vec![format!("{snap} {zone_a}")], "only the zone mirrorctl enabled is switched off");
    let enabled: Vec<String> = lab
        .actions(&spec)
        .into_iter()
        .filter(|(_, a)| matches!(a, Action::EnableFastRestore { .. }))
        .map(|(id, _)| id)
        .collect();
    assert_eq!(enabled, vec![format!("restore/r1/enable-fsr@{}", spec.cluster.servers[1].zone)]);
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

/// A lab continuing from a copy of `base`'s world file and state directory.
fn copy_of(base: &Lab) -> Lab {
    let dir = tempfile::tempdir().unwrap();
    copy_dir(base.dir.path(), dir.path());
    let world_file = dir.path().join("world.json");
    let world = mirrorctl::sim::SimWorld::open(&world_file, 1.0).unwrap();
    Lab { world, world_file, dir }
}

/// A crash at every step boundary (or inside every call) of a fast restore up to FSR's last
/// disable, then a restart: one volume per server, both fast-restored, FSR off at the end. The
/// steps after it and the backup are `crash_resume`'s campaigns; stopping here keeps this fast.
async fn fsr_campaign(point: CrashPoint) -> usize {
    // Where the last disable comes in a run without crashes.
    let (lab, spec, _) = prepared(199, ProcedureChoice::Reconfigure, "r1").await;
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let restore: Vec<(String, Action)> =
        lab.actions(&spec).into_iter().filter(|(id, _)| id.starts_with("restore/r1/")).collect();
    let last =
        1 + restore.iter().rposition(|(_, a)| matches!(a, Action::DisableFastRestore { .. })).expect("a disable");
    // Every case starts from a copy of one lab that has taken the backup.
    let (base, spec, snap) = prepared(200, ProcedureChoice::Reconfigure, "r1").await;
    let mut covered = 0;
    for n in 1..=last {
        let mut lab = copy_of(&base);
        let (result, switch) = lab.apply_with_crash(&spec, point, n).await;
        match result {
            Err(ReconcileError::Exec(mirrorctl::execute::ExecError::Crashed(_))) => assert!(switch.fired()),
            Ok(Settled::Converged) => assert!(!switch.fired()),
            other => panic!("crash at {point:?} #{n}: {other:?}"),
        }
        if switch.fired() {
            covered += 1;
            lab.restart();
            assert_eq!(lab.apply(&spec).await, Settled::Converged, "resume after {point:?} #{n}");
        }
        crate::support::common::assert_restored(&lab.world, &snap);
        let vols = restored(&lab, "r1");
        assert_eq!(vols.len(), 2, "one volume per server after {point:?} #{n}");
        assert!(vols.iter().all(|v| v.fast_restored), "fast-restored after {point:?} #{n}");
        assert!(fsr_on(&lab).is_empty(), "FSR off after {point:?} #{n}: {:?}", fsr_on(&lab));
    }
    covered
}

#[tokio::test(start_paused = true)]
async fn fast_restore_crash_at_every_step_boundary() {
    let covered = fsr_campaign(CrashPoint::BeforeIntent).await;
    assert!(covered >= 7, "preflight, two enables, two creates, two disables: covered {covered}");
}

#[tokio::test(start_paused = true)]
async fn fast_restore_crash_inside_every_mutating_step() {
    let covered = fsr_campaign(CrashPoint::AfterCall).await;
    assert!(covered >= 7, "preflight, two enables, two creates, two disables: covered {covered}");
}

async fn adapter(fake: &FakeEc2Fsr) -> AwsCloud {
    let mut o = AwsOptions::new(Region::parse(crate::support::REGION).unwrap());
    o.endpoint_url = Some(fake.endpoint());
    AwsCloud::from_sdk_config(&crate::support::sdk_config(&fake.endpoint()).await, &o)
}

#[tokio::test]
async fn the_aws_adapter_speaks_the_fsr_calls_of_the_ec2_query_protocol() {
    let fake = FakeEc2Fsr::start().await;
    let cloud = Arc::new(adapter(&fake).await);
    let snap = SnapshotId::parse("snap-0123456789abcdef0").unwrap();
    let zones = [Zone::parse("ap-northeast-1a").unwrap(), Zone::parse("ap-northeast-1c").unwrap()];

    cloud.fast_restore_permitted(&snap, &zones).await.expect("DryRunOperation means permitted");
    let on = cloud.enable_fast_snapshot_restores(&snap, &zones).await.unwrap();
    assert_eq!(on.len(), 2);
    assert!(on.iter().all(|f| f.state == FastRestoreState::Enabling && f.snapshot == snap));
    assert_eq!(on[0].enabling_time, Some("2026-12-04T10:00:00Z".parse().unwrap()));
    fake.set_state(snap.as_str(), "ap-northeast-1a", "optimizing");
    let seen = cloud.describe_fast_snapshot_restores(&snap).await.unwrap();
    let a = seen.iter().find(|f| f.zone == zones[0]).unwrap();
    assert_eq!(a.state, FastRestoreState::Optimizing);
    let off = cloud.disable_fast_snapshot_restores(&snap, &zones).await.unwrap();
    assert!(off.iter().all(|f| f.state == FastRestoreState::Disabling));

    let reqs = fake.requests();
    let enable =
        reqs.iter().find(|p| p["Action"] == "EnableFastSnapshotRestores" && !p.contains_key("DryRun")).unwrap();
    assert_eq!(enable["SourceSnapshotId.1"], snap.as_str());
    assert_eq!(
        (enable["AvailabilityZone.1"].as_str(), enable["AvailabilityZone.2"].as_str()),
        ("ap-northeast-1a", "ap-northeast-1c")
    );
    let describe = reqs.iter().find(|p| p["Action"] == "DescribeFastSnapshotRestores").unwrap();
    assert_eq!(
        (describe["Filter.1.Name"].as_str(), describe["Filter.1.Value.1"].as_str()),
        ("snapshot-id", snap.as_str())
    );
    let dry: Vec<&str> = reqs
        .iter()
        .filter(|p| p.get("DryRun").map(String::as_str) == Some("true"))
        .map(|p| p["Action"].as_str())
        .collect();
    assert_eq!(dry, ["EnableFastSnapshotRestores", "DisableFastSnapshotRestores"]);
    assert_eq!(
        cloud.call_counts().get("ec2:EnableFastSnapshotRestores"),
        Some(&2),
        "the limiter counts every request (dry run included)"
    );
}

#[tokio::test]
async fn the_aws_adapter_turns_a_refused_zone_and_a_denied_dry_run_into_errors() {
    let fake = FakeEc2Fsr::start().await;
    let cloud = adapter(&fake).await;
    let snap = SnapshotId::parse("snap-0123456789abcdef0").unwrap();
    let zones = [Zone::parse("ap-northeast-1a").unwrap(), Zone::parse("ap-northeast-1c").unwrap()];
    fake.refuse("ap-northeast-1c", "ResourceLimitExceeded", "too many snapshots with fast snapshot restore");
    let e = cloud.enable_fast_snapshot_restores(&snap, &zones).await.unwrap_err();
    assert_eq!(e.code, "ResourceLimitExceeded");
    assert!(e.message.contains("ap-northeast-1c"), "{e}");
    assert!(mirrorctl::plan::fast_restore::is_refusal(&e.code));
    fake.deny_dry_runs();
    let e = cloud.fast_restore_permitted(&snap, &zones).await.unwrap_err();
    assert_eq!(e.code, "UnauthorizedOperation");
}

/// A create that fails needing a human blocks the restore with FSR switched off; once fixed, the
/// restore goes on: FSR on again, volumes fast-restored, FSR off. One failure: whether the other
/// server's create is tried before the block depends on when each zone's FSR is ready.
#[tokio::test(start_paused = true)]
async fn a_restore_failing_terminally_switches_its_fsr_off_and_on_again_after_the_fix() {
    let (lab, spec, snap) = prepared(13, ProcedureChoice::Reconfigure, "r1").await;
    lab.world
        .inject(Fault::FailNext {
            op: "ec2:CreateVolume".to_owned(),
            code: "InvalidParameterValue".into(),
            class: mirrorctl::ports::ErrorClass::NeedsHuman,
            count: 1,
        })
        .unwrap();
    match lab.apply(&spec).await {
        Settled::Blocked(c) => assert_eq!(c.reason, "step-failed:InvalidParameterValue", "{c}"),
        Settled::Converged => panic!("the create cannot succeed"),
    }
    assert!(lab.actions(&spec).iter().any(|(_, a)| matches!(a, Action::EnableFastRestore { .. })), "FSR was enabled");
    assert!(fsr_on(&lab).is_empty(), "switched off while a human looks: {:?}", fsr_on(&lab));

    // The cause is gone (the faults are spent): the restore resumes and does not switch FSR off
    // over the old failure.
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    crate::support::common::assert_restored(&lab.world, &snap);
    assert!(restored(&lab, "r1").iter().all(|v| v.fast_restored), "{:#?}", restored(&lab, "r1"));
    assert!(fsr_on(&lab).is_empty());
    let enables = lab.actions(&spec).iter().filter(|(_, a)| matches!(a, Action::EnableFastRestore { .. })).count();
    assert_eq!(enables, 4, "each zone enabled once before the failure and once after the fix");
}

#[tokio::test(start_paused = true)]
async fn status_shows_each_restored_volumes_initialization_eta() {
    let (lab, mut spec, _) = prepared(14, ProcedureChoice::Reconfigure, "r1").await;
    spec.mirror.volume.fast_restore = false;
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    // The next reconcile (a daemon's resync) starts with a full look, which reads the loading.
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let doc = status(&lab, &spec);
    let loading: Vec<_> = doc.inventory.initialization.values().collect();
    assert_eq!(loading.len(), 2, "{:#?}", doc.inventory);
    for l in loading {
        assert!(!l.fast_restored && !l.complete, "100 GiB at the lazy rate takes longer than the restore: {l:?}");
        assert!(l.eta.is_some_and(|t| t > doc.updated), "an ETA in the future: {l:?}");
    }
    // The text names the loading and what is left (the done-and-safe summary and each new volume).
    let text = doc.render();
    assert!(text.contains("initializing") && text.contains("left"), "{text}");
}

/// An 8 GiB snapshot optimizes in half a minute, but its zone's first volume creation credit comes
/// 6 minutes after the enable (`MIN(10, 1024 ÷ 8)` = 10 credits an hour): creating before it would
/// give volumes that are not fast-restored.
#[tokio::test(start_paused = true)]
async fn a_small_snapshot_waits_for_its_first_volume_creation_credit() {
    let mut scenario = mirrorctl::sim::Scenario::windows_runbook();
    scenario.size_gib = 8;
    let lab = Lab::new(scenario, 15);
    let backup = with_backups(example_on(Os::Windows, ProcedureChoice::Reconfigure), &["b1"], 7);
    assert_eq!(lab.apply(&backup).await, Settled::Converged);
    let snap = lab.backup_snapshot(&backup, "b1");
    lab.world.clock().sleep(std::time::Duration::from_mins(10)).await;
    let mut spec = with_restore(backup, &snap, "r1", true);
    spec.mirror.volume.fast_restore = true;
    let doc =
        run_until(&lab, &spec, |d| d.waiting.as_deref().is_some_and(|w| w.contains("first volume creation credit")))
            .await;
    assert!(doc.inventory.fast_restore.values().any(|s| s == "enabled"), "{:?}", doc.inventory.fast_restore);
    assert!(restored(&lab, "r1").is_empty(), "no volume before the credit");
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert!(restored(&lab, "r1").iter().all(|v| v.fast_restored), "{:#?}", restored(&lab, "r1"));
}

#[tokio::test(start_paused = true)]
async fn a_restore_blocked_by_the_planner_switches_its_fsr_off_first() {
    let (lab, spec, snap) = prepared(16, ProcedureChoice::Reconfigure, "r1").await;
    run_until(&lab, &spec, |d| d.inventory.fast_restore.len() == 2).await;
    // Someone made two volumes carrying r1's tags for server1: the planner blocks.
    let cloud = lab.world.ports().cloud;
    let s1 = &spec.cluster.servers[0];
    for n in 0..2 {
        let tags = [
            (tag::CLUSTER.to_owned(), spec.cluster.name.to_string()),
            (tag::REQUEST.to_owned(), "r1".to_owned()),
            (tag::SERVER.to_owned(), s1.name.to_string()),
            (tag::ROLE.to_owned(), "mirror".to_owned()),
        ];
        let req = mirrorctl::ports::cloud::CreateVolume {
            zone: s1.zone.clone(),
            snapshot: snap.clone(),
            size_gib: None,
            volume_type: "gp3".into(),
            iops: None,
            throughput: None,
            kms_key: None,
            initialization_rate: None,
            client_token: format!("by-hand-{n}"),
            tags: tags.into(),
        };
        cloud.create_volume(&req).await.unwrap();
    }
    lab.world.clock().sleep(std::time::Duration::from_secs(10)).await;
    match lab.apply(&spec).await {
        Settled::Blocked(c) => assert_eq!(c.reason, "duplicate-volumes", "{c}"),
        Settled::Converged => panic!("duplicate volumes must block"),
    }
    assert!(fsr_on(&lab).is_empty(), "switched off while a human looks: {:?}", fsr_on(&lab));
    let notes = status(&lab, &spec);
    assert_eq!(notes.conditions.len(), 1, "the block is shown once FSR is off");
}

#[tokio::test(start_paused = true)]
async fn removing_the_restore_section_mid_way_switches_fsr_off() {
    let (lab, spec, _) = prepared(17, ProcedureChoice::Reconfigure, "r1").await;
    run_until(&lab, &spec, |d| d.inventory.fast_restore.len() == 2).await;
    let mut gone = spec.clone();
    gone.restore = None;
    match lab.apply(&gone).await {
        Settled::Blocked(c) => assert_eq!(c.reason, "restore-section-removed", "{c}"),
        Settled::Converged => panic!("a half-done restore is not left on a guess"),
    }
    assert!(fsr_on(&lab).is_empty(), "{:?}", fsr_on(&lab));
}
