//! A CLUSTERPRO operation answers with the cluster it left (`ports::cluster::Left`), and the next
//! pass plans from that answer instead of reading CLUSTERPRO again: a restore reads the status
//! only on passes no operation answered for, the step after an operation starts at once, and the
//! backup restarts business as soon as the standby has left the cluster. The oracle blesses both.

use crate::support::common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::{Lab, assert_backup_captured, example, with_backups, with_restore};
use mirrorctl::execute::{EventKind, Progress};
use mirrorctl::ports::Clock as _;
use mirrorctl::reconcile::{Settled, reconcile};
use mirrorctl::sim::{LatencyModel, Scenario};
use mirrorctl::spec::Os;

/// The runbook's Windows cluster with the latency model's medians (no jitter).
fn exact_lab(seed: u64) -> Lab {
    let mut scenario = Scenario::windows_runbook();
    scenario.latency = LatencyModel::default().without_jitter();
    Lab::new(scenario, seed)
}

/// Runs `spec` to convergence; returns when each step started and finished (model time).
async fn run_timed(
    lab: &Lab,
    spec: &mirrorctl::spec::Spec,
) -> (BTreeMap<String, jiff::Timestamp>, BTreeMap<String, jiff::Timestamp>) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut ctx = lab.ctx();
    ctx.progress = Progress::to(tx);
    assert_eq!(reconcile(spec, &ctx).await.expect("reconcile"), Settled::Converged);
    drop(ctx);
    let (mut started, mut done) = (BTreeMap::new(), BTreeMap::new());
    while let Ok(e) = rx.try_recv() {
        match e.kind {
            EventKind::StepStarted { step, .. } => {
                started.insert(step.to_string(), e.at);
            }
            EventKind::StepDone { step, .. } => {
                done.insert(step.to_string(), e.at);
            }
            _ => {}
        }
    }
    (started, done)
}

fn calls(lab: &Lab, op: &str) -> u64 {
    lab.world.call_counts().get(op).copied().unwrap_or(0)
}

#[tokio::test(start_paused = true)]
async fn the_pass_after_a_clusterpro_operation_plans_from_its_answer() {
    let lab = exact_lab(5);
    let spec = example(Os::Windows);
    let backup = with_backups(spec.clone(), &["b1"], 7);

    // The backup: business restarts the moment the standby has left the cluster, in the same
    // request as its shutdown (no pass, no look at CLUSTERPRO in between), and still only then.
    let (started, done) = run_timed(&lab, &backup).await;
    let snap = lab.backup_snapshot(&spec, "b1");
    assert_backup_captured(&lab.world, &snap);
    assert!(done.contains_key("backup/b1/shutdown-restart@server2"), "{done:?}");
    assert!(!started.keys().any(|k| k.starts_with("backup/b1/restart")), "no start of its own: {started:?}");

    lab.world.clock().sleep(Duration::from_mins(10)).await;
    lab.world.accident();
    lab.world.clock().sleep(Duration::from_mins(1)).await;
    let restore = with_restore(backup, &snap, "r1", true);
    let (status0, mirror0) = (calls(&lab, "clp:status"), calls(&lab, "clp:mirror_status"));
    let (started, done) = run_timed(&lab, &restore).await;
    // 12 passes; the 5 after an operation that answered (stop-group, remove-md, add-md,
    // start-group, verify-failover) read no status. Mirror colours only on the first two: from the
    // removal of md to its re-add there are none to read, then the answers carry them. Before
    // these answers: 12 and 12.
    assert_eq!(calls(&lab, "clp:status") - status0, 7, "CLUSTERPRO status reads during the restore");
    assert_eq!(calls(&lab, "clp:mirror_status") - mirror0, 2, "mirror colour reads during the restore");
    for (op, next) in [
        ("remove-md", "disk-offline@server1"),
        ("add-md", "start-group@server1"),
        ("start-group@server1", "verify-failover"),
    ] {
        let (d, s) = (done[&format!("restore/r1/{op}")], started[&format!("restore/r1/{next}")]);
        assert_eq!(s, d, "{next} starts as {op} answers");
    }
    let report = lab.world.oracle_report();
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
    let contents: Vec<_> = report.servers.values().map(|c| c.expect("mirror volume attached")).collect();
    assert_eq!(contents[0], contents[1], "both sides identical after the restore");
    assert!(!lab.world.contains_accident(contents[0]), "the accident is gone");
}

/// What the pass after a standby's shutdown reads: nothing (its leaving is in the shutdown's
/// answer; its instance stopping is what the planner then waits for). And an attachment still
/// `attaching` is not asked of EC2 where the server's disk list shows its end.
#[tokio::test(start_paused = true)]
async fn answers_and_disk_lists_spare_the_reads_they_make_needless() {
    use mirrorctl::ids::ServerName;
    use mirrorctl::observe::{Refresh, observe};
    use mirrorctl::plan::Action;
    use mirrorctl::ports::cloud::AttachState;
    let lab = exact_lab(3);
    let spec = example(Os::Windows);
    let obs = observe(&spec, &lab.world.ports(), &mirrorctl::execute::RetryPolicy::default()).await.expect("observe");
    let s2 = ServerName::parse("server2").expect("server");
    let shutdown = Action::ShutdownServer { server: s2.clone() };
    assert_eq!(Refresh::after(&spec, &obs, &[shutdown], None), Refresh::default());

    // server2's mirror volume as EC2 said while attaching; server2 lists its disk.
    let s = spec.server(&s2).expect("server2").clone();
    let mut attaching = obs.clone();
    let v = attaching
        .volumes
        .iter_mut()
        .find(|v| v.attachments.iter().any(|a| a.instance == s.instance))
        .expect("server2's volume");
    v.attachments[0].state = AttachState::Attaching;
    let id = v.id.clone();
    assert!(attaching.disk(&s2, &id).is_some(), "server2 lists the disk");
    let r = Refresh::after(&spec, &attaching, &[], None);
    assert!(!r.volume_ids.contains(&id) && !r.tagged_volumes, "the disk list shows the attach done: {r:?}");
    // Without a disk list of server2, EC2 is asked.
    attaching.disks.insert(
        s2.clone(),
        Err(mirrorctl::ports::PortError::new("Unreachable", "down", mirrorctl::ports::ErrorClass::Retryable)),
    );
    let r = Refresh::after(&spec, &attaching, &[], None);
    assert!(r.volume_ids.contains(&id) || r.tagged_volumes, "{r:?}");
}

/// While the restore swaps the disks (md out of the configuration), a batch that changes nothing
/// CLUSTERPRO reports reads its status beside the steps, and the two drive letters of one server
/// answer together for its disk list: the step after the disks go offline, after they come online
/// and after the letters starts the moment they are done (0.3 s of status read, and after the
/// letters 1 s of disk list, before). The oracle blesses the result.
#[tokio::test(start_paused = true)]
async fn the_swap_reads_cluster_status_beside_its_disk_and_ec2_steps() {
    let lab = exact_lab(7);
    let spec = example(Os::Windows);
    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(lab.apply(&backup).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    lab.world.accident();
    lab.world.clock().sleep(Duration::from_mins(1)).await;
    let restore = with_restore(backup, &snap, "r1", true);
    let status0 = calls(&lab, "clp:status");
    let (started, done) = run_timed(&lab, &restore).await;
    let last_done = |prefix: &str| {
        done.iter()
            .filter(|(k, _)| k.starts_with(&format!("restore/r1/{prefix}")))
            .map(|(_, t)| *t)
            .max()
            .expect(prefix)
    };
    for (before, next) in
        [("disk-offline", "detach@server1"), ("disk-online", "letter-1@server1"), ("letter-", "add-md")]
    {
        assert_eq!(started[&format!("restore/r1/{next}")], last_done(before), "{next} starts as {before} ends");
    }
    // As many status reads as before (one per pass no operation answered), only earlier.
    assert_eq!(calls(&lab, "clp:status") - status0, 7, "CLUSTERPRO status reads during the restore");
    let report = lab.world.oracle_report();
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
    let contents: Vec<_> = report.servers.values().map(|c| c.expect("mirror volume attached")).collect();
    assert_eq!(contents[0], contents[1], "both sides identical after the restore");
}
