//! Backups: the standby restarts as soon as `CreateSnapshot` returns; retention keeps the newest N
//! of mirrorctl's own snapshots and never deletes pinned ones; the daily schedule takes its backup
//! once; a restore waits for an in-flight backup to bring the standby back.

use crate::support::common;

use std::time::Duration;

use common::{Lab, assert_backup_captured, example, with_backups, with_restore};
use mirrorctl::execute::CrashPoint;
use mirrorctl::ids::ServerName;
use mirrorctl::ports::Clock as _;
use mirrorctl::ports::cloud::{SnapshotState, Tags, tag};
use mirrorctl::reconcile::Settled;
use mirrorctl::spec::{Os, Schedule, ScheduleSpec};

#[tokio::test(start_paused = true)]
async fn the_standby_restarts_while_the_snapshot_is_still_pending() {
    let lab = Lab::windows(51);
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    let timeline = lab.world.timeline();
    let started = timeline.iter().position(|(_, t)| t.starts_with("ec2: StartInstances")).expect("standby started");
    let completed = timeline.iter().position(|(_, t)| *t == format!("ec2: {snap} completed"));
    assert!(completed.is_none_or(|c| c > started), "standby restarted before the snapshot completed");
    // The backup converged with the snapshot still pending: its point in time was fixed at creation.
    let s = lab.world.inventory().snapshots.into_iter().find(|s| s.id == snap).unwrap();
    assert_eq!(s.state, SnapshotState::Pending);
    // Business downtime is md stop → md and its dependents started again, far shorter than the
    // standby's (the group's virtual IP stays up throughout); the standby's shutdown and that
    // start are one request to CLUSTERPRO.
    let actions = lab.actions(&spec);
    let order: Vec<&str> = actions.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(
        order,
        [
            "backup/b1/preflight",
            "backup/b1/stop-md@server1",
            "backup/b1/shutdown-restart@server2",
            "backup/b1/snapshot@server2",
            "backup/b1/start-instance@server2"
        ]
    );
    let calls = lab.world.call_counts();
    assert_eq!(calls.get("clp:leave_then_start"), Some(&1), "{calls:?}");
    assert_eq!((calls.get("clp:shutdown_server"), calls.get("clp:start_resource")), (None, None), "{calls:?}");
}

#[tokio::test(start_paused = true)]
async fn retention_keeps_the_newest_and_never_deletes_pinned_names() {
    let lab = Lab::windows(52);
    let base = example(Os::Windows);
    let all = with_backups(base.clone(), &["b1", "b2", "b3"], 1);
    assert_eq!(lab.apply(&all).await, Settled::Converged);
    lab.world.clock().sleep(Duration::from_mins(15)).await; // all complete
    assert_eq!(lab.apply(&all).await, Settled::Converged);
    assert_eq!(lab.world.inventory().deleted_snapshots, 0, "names listed in take are pinned");

    // b1 and b2 are no longer listed: keep = 1 keeps b2 (newest unpinned), deletes b1.
    let only_b3 = with_backups(base.clone(), &["b3"], 1);
    assert_eq!(lab.apply(&only_b3).await, Settled::Converged);
    let inv = lab.world.inventory();
    assert_eq!(inv.deleted_snapshots, 1);
    let names: Vec<_> = inv.snapshots.iter().filter_map(|s| s.tags.get(tag::REQUEST).cloned()).collect();
    assert!(
        names.contains(&"b2".to_owned()) && names.contains(&"b3".to_owned()) && !names.contains(&"b1".to_owned()),
        "{names:?}"
    );
    // A snapshot that is not ours is never touched by retention.
    let foreign =
        lab.world.add_snapshot(&ServerName::parse("server1").unwrap(), Tags::new(), SnapshotState::Completed).unwrap();
    assert_eq!(lab.apply(&with_backups(base, &[], 1)).await, Settled::Converged);
    assert!(lab.world.inventory().snapshots.iter().any(|s| s.id == foreign.id));
    assert_eq!(lab.world.inventory().deleted_volumes, 0);
}

#[tokio::test(start_paused = true)]
async fn the_daily_schedule_takes_one_backup_per_day() {
    let lab = Lab::windows(53);
    let mut spec = with_backups(example(Os::Windows), &[], 7);
    spec.backup.as_mut().unwrap().schedules =
        ScheduleSpec::single(Schedule { hour: 2, minute: 0, time_zone: "Asia/Tokyo".into() }).into_iter().collect();
    // The world starts at 09:00 JST: today's 02:00 slot is 7 h old, past the catch-up window.
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert!(lab.world.inventory().snapshots.is_empty());
    // Sleep past 02:00 JST of the next day (17:00Z).
    let now = lab.world.now();
    let target: jiff::Timestamp = "2026-11-30T17:01:00Z".parse().unwrap();
    lab.world.clock().sleep(Duration::from_secs(u64::try_from(target.duration_since(now).as_secs()).unwrap())).await;
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snaps = lab.world.inventory().snapshots;
    assert_eq!(snaps.len(), 1);
    assert_eq!(snaps[0].tags.get(tag::REQUEST).map(String::as_str), Some("daily-20261201"));
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_eq!(lab.world.inventory().snapshots.len(), 1, "taken once");
}

#[tokio::test(start_paused = true)]
async fn a_restore_waits_for_an_in_flight_backup() {
    let mut lab = Lab::windows(54);
    let base = example(Os::Windows);
    let old =
        lab.world.add_snapshot(&ServerName::parse("server2").unwrap(), Tags::new(), SnapshotState::Completed).unwrap();
    let backup = with_backups(base.clone(), &["b1"], 7);
    // The backup dies right after the standby was shut down.
    let (_, switch) = lab.apply_with_crash(&backup, CrashPoint::AfterCall, 2).await;
    assert!(switch.fired());
    lab.restart();
    // Now the operator asks for a restore as well.
    let both = with_restore(backup.clone(), &old.id, "r1", false);
    assert_eq!(lab.apply(&both).await, Settled::Converged);
    let order: Vec<String> = lab.actions(&both).into_iter().map(|(s, _)| s).collect();
    let backup_done = order.iter().rposition(|s| s.starts_with("backup/b1/")).unwrap();
    let restore_first = order.iter().position(|s| s.starts_with("restore/r1/")).unwrap();
    assert!(backup_done < restore_first, "backup finished (standby back) before the restore began: {order:?}");
    assert!(order.contains(&"backup/b1/start-instance@server2".to_owned()));
    assert!(lab.world.oracle_report().corruptions.is_empty());
}

/// A real failover group holds a virtual IP that does not depend on md: stopping md (and its
/// dependents) for the quiesce leaves the group reading online. The backup must still start md
/// and the resources stopped with it again, md first, and complete only once they are online.
#[tokio::test(start_paused = true)]
async fn a_group_with_an_independent_vip_gets_md_and_its_dependents_back() {
    for os in [Os::Windows, Os::Linux] {
        let lab = if os == Os::Windows { Lab::windows(57) } else { Lab::linux(57) };
        let sc = lab.world.scenario();
        let vip = sc.vip.clone().expect("the default scenario is a realistic group with a virtual IP");
        let spec = with_backups(example(os), &["b1"], 7);
        assert_eq!(lab.apply(&spec).await, Settled::Converged);
        let timeline = lab.world.timeline();
        let text: Vec<&str> = timeline.iter().map(|(_, t)| t.as_str()).collect();
        assert!(
            text.iter().any(|t| t.contains(&format!("still online with {vip}"))),
            "the quiesce left the virtual IP up: {text:#?}"
        );
        let status = lab.world.ports().cluster.status().await.expect("status");
        let active = &sc.servers[0].name;
        for r in [&sc.md, &sc.business, &vip] {
            let p = status.resources.get(r).expect("resource listed");
            assert_eq!(
                (p.state, p.current.as_ref()),
                (mirrorctl::ports::cluster::ObjectState::Online, Some(active)),
                "{os:?}: {r} after the backup: {text:#?}"
            );
        }
        let actions = lab.actions(&spec);
        let order: Vec<&str> = actions.iter().map(|(s, _)| s.as_str()).collect();
        let (a, b) = (active.as_str(), sc.servers[1].name.as_str());
        assert_eq!(
            order,
            [
                "backup/b1/preflight".to_owned(),
                format!("backup/b1/stop-md@{a}"),
                format!("backup/b1/shutdown-restart@{b}"),
                format!("backup/b1/snapshot@{b}"),
                format!("backup/b1/start-instance@{b}"),
            ],
            "{os:?}"
        );
    }
}

/// The plan a lab's world and journal give now, with the port's "leave then start" capability as
/// `can`.
async fn plan_now(lab: &Lab, spec: &mirrorctl::spec::Spec, can: bool) -> Vec<mirrorctl::plan::Action> {
    use mirrorctl::observe::observe;
    let mut obs =
        observe(spec, &lab.world.ports(), &mirrorctl::execute::RetryPolicy::default()).await.expect("observe");
    assert!(obs.leave_then_start, "the simulated CLUSTERPRO runs it as one request");
    obs.leave_then_start = can;
    let mut view = mirrorctl::journal::JournalView::default();
    for r in &lab.journal(spec) {
        view.apply(r);
    }
    mirrorctl::plan::plan(spec, &obs, &view).steps().iter().map(|s| s.action.clone()).collect()
}

/// At the quiesce point the standby's shutdown and business's restart are one CLUSTERPRO request
/// where the port has it (the simulator, the commands: `clpdown -h` then the start, in one script
/// on the active), and stay two steps where it has not (the REST API): a capability the planner
/// reads, not a fallback.
#[tokio::test(start_paused = true)]
async fn the_standby_leaves_and_business_restarts_in_one_request_where_the_port_can() {
    use mirrorctl::plan::Action;
    use mirrorctl::ports::cluster::Start;
    let lab = Lab::windows(58);
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    // Stopped right after the quiesce (the preflight, then stop-md).
    let (_, switch) = lab.apply_with_crash(&spec, CrashPoint::AfterCall, 2).await;
    assert!(switch.fired());
    let sc = lab.world.scenario();
    let (active, standby) = (sc.servers[0].name.clone(), sc.servers[1].name.clone());
    let restart = Start::Resource { resource: sc.business.clone(), server: active.clone() };
    assert_eq!(plan_now(&lab, &spec, true).await, [Action::LeaveThenStart { server: standby.clone(), start: restart }]);
    assert_eq!(plan_now(&lab, &spec, false).await, [Action::ShutdownServer { server: standby }]);
}

/// A process that dies inside the combined step after the standby has left but before business
/// was started (its intent journaled, no result): the next run sees the standby on its way down,
/// plans the start alone, never shuts the standby down again, and the backup holds the quiesce
/// point.
#[tokio::test(start_paused = true)]
async fn a_crash_between_the_leave_and_the_start_restarts_business_alone() {
    use mirrorctl::journal::Record;
    use mirrorctl::plan::{Action, OpId, StepId, StepKind};
    use mirrorctl::ports::cluster::Start;
    use std::io::Write as _;
    let mut lab = Lab::windows(59);
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    let (_, switch) = lab.apply_with_crash(&spec, CrashPoint::AfterCall, 2).await;
    assert!(switch.fired(), "stopped after the quiesce");
    let sc = lab.world.scenario();
    let (active, standby) = (sc.servers[0].name.clone(), sc.servers[1].name.clone());
    // What the dead process did: the intent, and the shutdown half of the request.
    let op = OpId::Backup(mirrorctl::ids::BackupName::parse("b1").expect("name"));
    let seq = lab.journal(&spec).iter().filter(|r| matches!(r, Record::Intent { .. })).count() as u64 + 100;
    let intent = Record::Intent {
        seq,
        op: op.clone(),
        step: StepId::new(&op, &StepKind::ShutdownRestart, Some(standby.as_str())),
        attempt: 1,
        token: None,
        started: lab.world.now(),
        action: Action::LeaveThenStart {
            server: standby.clone(),
            start: Start::Resource { resource: sc.business.clone(), server: active.clone() },
        },
    };
    let path = mirrorctl::journal::writer::Journal::path_for(&lab.state_dir(), &spec.cluster.name);
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).expect("journal");
    writeln!(file, "{}", serde_json::to_string(&intent).expect("json")).expect("append");
    drop(file);
    lab.world.ports().cluster.shutdown_server(&standby).await.expect("the leave half");
    lab.restart();

    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let steps: Vec<String> = lab.actions(&spec).into_iter().map(|(s, _)| s).collect();
    let after: Vec<&str> = steps.iter().skip_while(|s| !s.contains("shutdown-restart")).map(String::as_str).collect();
    assert_eq!(
        after,
        [
            "backup/b1/shutdown-restart@server2",
            "backup/b1/restart-script@server1",
            "backup/b1/snapshot@server2",
            "backup/b1/start-instance@server2"
        ],
        "{steps:?}"
    );
    // Business came back while the standby was still stopping (the snapshot waits for `stopped`),
    // not once it had stopped.
    let started = |kind: &str| {
        lab.journal(&spec)
            .iter()
            .find_map(|r| match r {
                Record::Intent { step, started, .. } if step.0.contains(kind) => Some(*started),
                _ => None,
            })
            .expect("intent")
    };
    let early = started("snapshot@").duration_since(started("restart-script@"));
    assert!(early > jiff::SignedDuration::from_secs(10), "restart only {early} before the snapshot");
    let calls = lab.world.call_counts();
    assert_eq!(calls.get("clp:shutdown_server"), Some(&1), "only the dead process's: {calls:?}");
    assert_eq!(calls.get("clp:leave_then_start"), None, "{calls:?}");
    assert_backup_captured(&lab.world, &lab.backup_snapshot(&spec, "b1"));
}
