//! Faults in the strict simulated world: each must converge, or end in a terminal condition with a
//! clear reason — never a panic, never a silent stop.

use crate::support::common;

use std::time::Duration;

use common::{Lab, example, with_backups, with_restore};
use mirrorctl::execute::{Event, EventKind, Progress};
use mirrorctl::ids::{DeviceName, ServerName};
use mirrorctl::ports::cloud::{ShutdownBehavior, SnapshotState, Tags, tag};
use mirrorctl::ports::{Clock as _, ErrorClass};
use mirrorctl::reconcile::{Settled, reconcile};
use mirrorctl::sim::{Fault, Scenario};
use mirrorctl::spec::{Os, Spec};
use tokio::sync::mpsc::unbounded_channel;

/// A completed backup `b1` and the restore spec for `r1` from it.
async fn ready_to_restore(lab: &Lab) -> Spec {
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    lab.world.accident();
    with_restore(spec, &snap, "r1", false)
}

/// The next `count` calls of `op` fail with `code`, an error a human must look at.
fn needs_human(op: &str, code: &str, count: u32) -> Fault {
    Fault::FailNext { op: op.into(), code: code.into(), class: ErrorClass::NeedsHuman, count }
}

fn server(name: &str) -> ServerName {
    ServerName::parse(name).expect("server name")
}

fn assert_restored(lab: &Lab) {
    let report = lab.world.oracle_report();
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
    let c: Vec<_> = report.servers.values().map(|c| c.expect("attached")).collect();
    assert_eq!(c[0], c[1]);
    assert!(!lab.world.contains_accident(c[0]));
    assert_eq!(lab.world.inventory().deleted_volumes, 0);
}

#[tokio::test(start_paused = true)]
async fn throttling_and_transient_5xx_converge() {
    let lab = Lab::windows(11);
    let spec = ready_to_restore(&lab).await;
    lab.world.inject(Fault::fail_next("ec2:CreateVolume", "RequestLimitExceeded", 9)).unwrap();
    lab.world.inject(Fault::fail_next("ec2:AttachVolume", "InternalError", 3)).unwrap();
    lab.world.inject(Fault::fail_next("ec2:DescribeVolumes", "ServiceUnavailable", 2)).unwrap();
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_restored(&lab);
    let calls = lab.world.call_counts();
    assert!(calls["ec2:CreateVolume"] >= 11, "throttled calls were retried: {calls:?}");
}

#[tokio::test(start_paused = true)]
async fn a_tight_describe_budget_throttles_but_never_fails() {
    let mut scenario = Scenario::windows_runbook();
    scenario.throttle.describe_capacity = 4.0;
    scenario.throttle.describe_refill_per_s = 1.0;
    let lab = Lab::new(scenario, 12);
    let spec = ready_to_restore(&lab).await;
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_restored(&lab);
    let throttled: u64 =
        lab.world.call_counts().iter().filter(|(k, _)| k.starts_with("throttled:")).map(|(_, v)| v).sum();
    assert!(throttled > 0, "the budget was tight enough to throttle");
}

#[tokio::test(start_paused = true)]
async fn not_found_right_after_create_is_waited_out() {
    let lab = Lab::windows(13);
    let spec = ready_to_restore(&lab).await;
    lab.world.set_consistency_window(Duration::from_secs(20));
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_restored(&lab);
    // The same ClientToken found the same volume: exactly one per server.
    let inv = lab.world.inventory();
    assert_eq!(inv.volumes.iter().filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some("r1")).count(), 2);
}

#[tokio::test(start_paused = true)]
async fn lost_responses_do_not_duplicate_anything() {
    let lab = Lab::windows(14);
    let spec = ready_to_restore(&lab).await;
    for op in ["ec2:CreateVolume", "ec2:AttachVolume", "ec2:DetachVolume", "clp:apply_config", "node:set_online"] {
        lab.world.inject(Fault::LoseResponse { op: op.into(), count: 1 }).unwrap();
    }
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_restored(&lab);
    let inv = lab.world.inventory();
    assert_eq!(inv.volumes.iter().filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some("r1")).count(), 2);
}

#[tokio::test(start_paused = true)]
async fn detach_stuck_busy_because_a_disk_was_left_online_recovers() {
    let lab = Lab::windows(15);
    let spec = ready_to_restore(&lab).await;
    let old = lab.world.mirror_volume(&server("server1")).expect("server1 has its volume");
    let (tx, mut rx) = unbounded_channel::<Event>();
    let mut ctx = lab.ctx();
    ctx.progress = Progress::to(tx);
    let run = tokio::spawn({
        let spec = spec.clone();
        async move { reconcile(&spec, &ctx).await }
    });
    let mut injected = false;
    while let Some(e) = rx.recv().await {
        if let EventKind::StepStarted { step, .. } = &e.kind
            && !injected
            && step.0 == "restore/r1/detach@server1"
        {
            // Someone brings the disk back online just as the detach is sent.
            lab.world.inject(Fault::DiskOnline { server: server("server1"), volume: old.clone() }).unwrap();
            injected = true;
        }
    }
    assert!(injected);
    assert_eq!(run.await.unwrap().unwrap(), Settled::Converged);
    assert!(lab.world.timeline().iter().any(|(_, t)| t.contains("busy")), "the detach did go busy");
    let offline_steps = lab.actions(&spec).iter().filter(|(s, _)| s == "restore/r1/disk-offline@server1").count();
    assert_eq!(offline_steps, 2, "the disk was taken offline again to release the busy detach");
    assert_restored(&lab);
}

#[tokio::test(start_paused = true)]
async fn a_device_taken_by_a_stranger_blocks_with_a_clear_reason() {
    let lab = Lab::windows(16);
    let spec = ready_to_restore(&lab).await;
    let (tx, mut rx) = unbounded_channel::<Event>();
    let mut ctx = lab.ctx();
    ctx.progress = Progress::to(tx);
    let run = tokio::spawn({
        let spec = spec.clone();
        async move { reconcile(&spec, &ctx).await }
    });
    while let Some(e) = rx.recv().await {
        if let EventKind::StepStarted { step, .. } = &e.kind {
            // The old volume is gone; a stranger takes the slot just as mirrorctl attaches.
            if step.0 == "restore/r1/attach@server1" {
                let device = DeviceName::parse("/dev/sdx").unwrap();
                lab.world.inject(Fault::StrayAttach { server: server("server1"), device }).unwrap();
            }
        }
    }
    let Settled::Blocked(c) = run.await.unwrap().unwrap() else { panic!("expected a block") };
    assert!(c.reason == "device-taken" || c.reason == "step-failed:InvalidParameterValue", "{c:?}");
    assert!(c.message.contains("/dev/sdx") || c.message.contains("in use"), "{c:?}");
    assert!(c.action.contains("detach"), "{c:?}");
    // Nothing was deleted and the stranger was not touched.
    assert_eq!(lab.world.inventory().deleted_volumes, 0);
}

#[tokio::test(start_paused = true)]
async fn failing_node_commands_are_retried_then_block_when_permanent() {
    let lab = Lab::windows(17);
    let spec = ready_to_restore(&lab).await;
    lab.world.inject(Fault::fail_next("node:set_online", "CommandFailed", 2)).unwrap();
    // Both servers' disk-offline fail once, needing a human.
    lab.world.inject(needs_human("node:set_offline", "AccessDenied", 2)).unwrap();
    let Settled::Blocked(c) = lab.apply(&spec).await else { panic!("a permanent node failure must block") };
    assert_eq!(c.reason, "step-failed:AccessDenied");
    assert!(c.message.contains("disk-offline"), "{c:?}");
    let calls = lab.world.call_counts()["node:set_offline"];
    assert!(calls <= 4, "a needs-human failure is not hammered: {calls}");
    // The operator fixed it: the next apply continues where it stopped, and the transient
    // set_online failures are retried.
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert!(lab.world.call_counts()["node:set_online"] >= 4, "set_online was retried");
    assert_restored(&lab);
}

#[tokio::test(start_paused = true)]
async fn a_failing_cluster_operation_blocks_then_an_operator_retry_converges() {
    let lab = Lab::windows(18);
    let spec = ready_to_restore(&lab).await;
    lab.world.inject(needs_human("clp:start_group", "GroupStartFailed", 1)).unwrap();
    let Settled::Blocked(c) = lab.apply(&spec).await else { panic!("expected a block") };
    assert_eq!(c.reason, "step-failed:GroupStartFailed");
    assert!(c.message.contains("start-group"));
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_restored(&lab);
}

#[tokio::test(start_paused = true)]
async fn preflight_refuses_unsafe_restores() {
    let lab = Lab::windows(19);
    let base = example(Os::Windows);
    let s2 = server("server2");
    let cases: Vec<(&str, Tags, SnapshotState)> = vec![
        ("snapshot-not-completed", [(tag::CLUSTER.to_owned(), "prod-db".to_owned())].into(), SnapshotState::Pending),
        (
            "snapshot-of-another-cluster",
            [(tag::CLUSTER.to_owned(), "other".to_owned())].into(),
            SnapshotState::Completed,
        ),
    ];
    for (reason, tags, state) in cases {
        let snap = lab.world.add_snapshot(&s2, tags, state).unwrap();
        let spec = with_restore(base.clone(), &snap.id, &format!("req-{reason}"), false);
        let Settled::Blocked(c) = lab.apply(&spec).await else { panic!("{reason}: expected a refusal") };
        assert_eq!(c.reason, reason);
        assert!(!c.action.is_empty());
    }
    // Missing snapshot.
    let missing = mirrorctl::ids::SnapshotId::parse("snap-0000000000000dead").unwrap();
    let Settled::Blocked(c) = lab.apply(&with_restore(base.clone(), &missing, "req-missing", false)).await else {
        panic!()
    };
    assert_eq!(c.reason, "snapshot-missing");
    // Zone mismatch between the file and the instance.
    let ok = lab.world.add_snapshot(&s2, Tags::new(), SnapshotState::Completed).unwrap();
    let mut wrong_zone = with_restore(base.clone(), &ok.id, "req-zone", false);
    wrong_zone.cluster.servers[1].zone = mirrorctl::ids::Zone::parse("ap-northeast-1d").unwrap();
    let Settled::Blocked(c) = lab.apply(&wrong_zone).await else { panic!() };
    assert_eq!(c.reason, "zone-mismatch");
    // Instance that would terminate on shutdown.
    lab.world.set_shutdown_behavior(&base.cluster.servers[1].instance, ShutdownBehavior::Terminate).unwrap();
    let Settled::Blocked(c) = lab.apply(&with_restore(base.clone(), &ok.id, "req-term", false)).await else { panic!() };
    assert_eq!(c.reason, "instance-terminates-on-shutdown");
    let Settled::Blocked(c) = lab.apply(&with_backups(base.clone(), &["b-term"], 3)).await else { panic!() };
    assert_eq!(c.reason, "instance-terminates-on-shutdown");
    // Nothing was created by any refused request.
    let inv = lab.world.inventory();
    assert!(inv.volumes.iter().all(|v| !v.tags.contains_key(tag::REQUEST)), "refusals create nothing");
}

#[tokio::test(start_paused = true)]
async fn a_late_visible_snapshot_is_not_taken_twice() {
    // Found by the property test: retries made CreateSnapshot succeed just before the next pass,
    // whose tag lookup could not see it yet (eventual consistency) and created a second one.
    let lab = Lab::windows(20);
    lab.world.inject(Fault::fail_next("ec2:CreateSnapshot", "InternalError", 5)).unwrap();
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let n = lab
        .world
        .inventory()
        .snapshots
        .iter()
        .filter(|s| s.tags.get(tag::REQUEST).map(String::as_str) == Some("b1"))
        .count();
    assert_eq!(n, 1);
}

#[tokio::test(start_paused = true)]
async fn a_create_that_failed_for_good_gets_a_fresh_token_after_the_fix() {
    let lab = Lab::windows(21);
    let spec = ready_to_restore(&lab).await;
    lab.world.inject(needs_human("ec2:CreateVolume", "InvalidParameterValue", 2)).unwrap();
    let Settled::Blocked(c) = lab.apply(&spec).await else { panic!("a needs-human create failure blocks") };
    assert_eq!(c.reason, "step-failed:InvalidParameterValue");
    // The operator fixed the cause; the retry uses new tokens and converges without duplicates.
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let records = lab.journal(&spec);
    let burned = records.iter().filter(|r| matches!(r, mirrorctl::journal::Record::TokenBurned { .. })).count();
    assert!(burned >= 1, "the failed token was burned");
    let tokens: Vec<String> = records
        .iter()
        .filter_map(|r| match r {
            mirrorctl::journal::Record::Intent { step, token: Some(t), .. }
                if step.0 == "restore/r1/create-volume@server1" =>
            {
                Some(t.clone())
            }
            _ => None,
        })
        .collect();
    assert!(tokens.len() >= 2 && tokens.first() != tokens.last(), "{tokens:?}");
    assert_restored(&lab);
    let inv = lab.world.inventory();
    assert_eq!(inv.volumes.iter().filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some("r1")).count(), 2);
}

/// Fail before destroy: a restore (and a backup) on servers lacking a command a later step needs
/// stops before its first change, naming the command and the server; nothing is stopped, removed,
/// created or detached. (Before the preflight, the restore stopped the group and removed md, then
/// failed at the push's resume with business down.)
#[tokio::test(start_paused = true)]
async fn a_missing_command_stops_the_operation_before_anything_changes() {
    use mirrorctl::ports::cluster::ObjectState;
    for (os, tool) in [(Os::Windows, "clpcl"), (Os::Linux, "clpcl")] {
        let lab = if os == Os::Windows { Lab::windows(23) } else { Lab::linux(23) };
        let base = example(os);
        let backup = with_backups(base.clone(), &["b1"], 7);
        assert_eq!(lab.apply(&backup).await, Settled::Converged);
        let snap = lab.backup_snapshot(&backup, "b1");
        lab.world.clock().sleep(Duration::from_mins(10)).await;
        let (primary, standby) = (&base.cluster.servers[0].name, &base.cluster.servers[1].name);
        lab.world.remove_command(primary, tool);
        let before = lab.world.inventory();
        let restore = with_restore(backup.clone(), &snap, "r1", false);
        let Settled::Blocked(c) = lab.apply(&restore).await else { panic!("{os:?}: expected a refusal") };
        assert_eq!(c.reason, "preflight-failed", "{c}");
        assert!(c.message.contains(&format!("command {tool} on {primary}: not found")), "{c}");
        let status = lab.world.ports().cluster.status().await.expect("status");
        let group = status.groups.get(&base.mirror.group).expect("group");
        assert_eq!(
            (group.state, group.current.as_ref()),
            (ObjectState::Online, Some(primary)),
            "{os:?}: business untouched"
        );
        assert!(lab.world.ports().cluster.config().await.unwrap().mirror(&base.mirror.resource).is_some());
        let after = lab.world.inventory();
        assert_eq!(after.volumes.len(), before.volumes.len(), "{os:?}: no volume created");
        let steps: Vec<String> =
            lab.actions(&restore).into_iter().map(|(s, _)| s).filter(|s| s.starts_with("restore/")).collect();
        assert_eq!(steps, ["restore/r1/preflight"], "{os:?}");

        // The backup's shutdown needs clpdown on the standby: refused before md is stopped.
        lab.world.remove_command(standby, "clpdown");
        let b2 = with_backups(base.clone(), &["b2"], 7);
        let Settled::Blocked(c) = lab.apply(&b2).await else { panic!("{os:?}: expected a refusal") };
        assert!(c.message.contains(&format!("command clpdown on {standby}: not found")), "{c}");
        let status = lab.world.ports().cluster.status().await.expect("status");
        let md = status.resources.get(&base.mirror.resource).expect("md");
        assert_eq!((md.state, md.current.as_ref()), (ObjectState::Online, Some(primary)), "{os:?}: md never stopped");
    }
}

/// One writer per cluster: while another process (here: a lock taken by hand) reconciles the
/// cluster, a second reconcile is refused at once, naming the holder, and journals nothing; once
/// the lock is released it goes ahead. (Before the lock, `apply` beside a running daemon ran the
/// same backup twice: two `snapshot@…` intents and two `CreateSnapshot` calls.)
#[tokio::test(start_paused = true)]
async fn a_second_writer_on_the_same_cluster_is_refused() {
    use mirrorctl::journal::local::WriterLock;
    use mirrorctl::ports::store::StoreError;
    use mirrorctl::reconcile::ReconcileError;
    let lab = Lab::windows(71);
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    let held = WriterLock::acquire(&lab.state_dir(), &spec.cluster.name).expect("first writer");
    let err = reconcile(&spec, &lab.ctx()).await.expect_err("a second writer");
    assert!(matches!(err, ReconcileError::Store(StoreError::Busy { .. })), "{err}");
    assert!(err.to_string().contains(&format!("pid {}", std::process::id())), "names the holder: {err}");
    assert!(lab.actions(&spec).is_empty(), "nothing journaled");
    assert!(lab.world.inventory().snapshots.is_empty(), "nothing done");
    drop(held);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_eq!(lab.world.inventory().snapshots.len(), 1);
}
