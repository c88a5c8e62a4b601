//! A restore request changed mid-flight: the cluster is first brought to a safe state (no server
//! without its mirror volume), the old request is recorded as abandoned, its unattached volumes are
//! tagged and listed (never deleted), and the new request is pursued to the end.

use crate::support::common;

use std::time::Duration;

use common::{Lab, example, example_on, with_backups, with_restore};
use mirrorctl::execute::CrashPoint;
use mirrorctl::ids::SnapshotId;
use mirrorctl::ports::Clock as _;
use mirrorctl::ports::cloud::tag;
use mirrorctl::reconcile::Settled;
use mirrorctl::spec::{Os, ProcedureChoice, Spec};
use mirrorctl::status::StatusDoc;

/// A world of `os` with backup `b1` taken, ten minutes of business, then the accident: the spec
/// (backups only) and the snapshot to restore.
async fn after_the_accident(lab: &Lab, os: Os) -> (Spec, SnapshotId) {
    let spec = with_backups(example(os), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    lab.world.accident();
    (spec, snap)
}

/// Both sides identical, without the accident, nothing flagged by the oracle.
fn restored_cleanly(lab: &Lab) {
    let report = lab.world.oracle_report();
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
    let c: Vec<_> = report.servers.values().map(|c| c.expect("attached")).collect();
    assert_eq!(c[0], c[1]);
    assert!(!lab.world.contains_accident(c[0]));
}

async fn change_after(n: usize) -> (Lab, Vec<(String, mirrorctl::plan::Action)>) {
    let mut lab = Lab::windows(40 + n as u64);
    let (spec, snap) = after_the_accident(&lab, Os::Windows).await;
    let r1 = with_restore(spec.clone(), &snap, "r1", false);
    // Stop r1 dead after its n-th mutating call.
    let (res, switch) = lab.apply_with_crash(&r1, CrashPoint::AfterCall, n).await;
    assert!(switch.fired() && res.is_err(), "r1 was interrupted");
    lab.restart();
    let r2 = with_restore(spec.clone(), &snap, "r2", false);
    assert_eq!(lab.apply(&r2).await, Settled::Converged);

    restored_cleanly(&lab);
    let inv = lab.world.inventory();
    assert_eq!(inv.deleted_volumes, 0);
    for r in ["r1", "r2"] {
        let n = inv.volumes.iter().filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some(r)).count();
        assert_eq!(n, 2, "one volume per server for {r}");
    }
    // Both servers run on r2's volumes.
    for s in &spec.cluster.servers {
        let v = lab.world.mirror_volume(&s.name).expect("attached");
        let vol = inv.volumes.iter().find(|x| x.id == v).unwrap();
        assert_eq!(vol.tags.get(tag::REQUEST).map(String::as_str), Some("r2"));
    }
    let actions = lab.actions(&r2);
    (lab, actions)
}

#[tokio::test(start_paused = true)]
async fn change_after_the_volumes_were_created_abandons_and_tags_them() {
    // Call 1 is r1's preflight, calls 2 and 3 its CreateVolume (run together): crash inside the
    // second of them.
    let (lab, actions) = change_after(3).await;
    let inv = lab.world.inventory();
    let abandoned: Vec<_> =
        inv.volumes.iter().filter(|v| v.tags.get(tag::ABANDONED_BY).map(String::as_str) == Some("r2")).collect();
    assert_eq!(abandoned.len(), 2, "r1's volumes are tagged abandoned-by r2: {abandoned:?}");
    assert!(abandoned.iter().all(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some("r1")));
    assert!(actions.iter().any(|(s, _)| s.starts_with("restore/r2/tag-abandoned")));
    // Status lists them.
    let spec = example(Os::Windows);
    let doc = StatusDoc::read(&StatusDoc::path_for(&lab.state_dir(), &spec.cluster.name)).unwrap();
    assert_eq!(doc.inventory.abandoned_volumes.len(), 2, "{:?}", doc.inventory);
    assert!(
        doc.operations.get("restore/r1").is_some_and(|s| s.state == mirrorctl::status::OpPhase::Abandoned),
        "{:?}",
        doc.operations
    );
}

#[tokio::test(start_paused = true)]
async fn change_after_the_old_volumes_were_detached_reattaches_before_switching() {
    // Calls: preflight, 2 creates, stop-group, remove-md, 2 offline, 2 tags, 2 detaches (10, 11).
    let (_lab, actions) = change_after(11).await;
    let safe: Vec<_> = actions.iter().filter(|(s, _)| s.starts_with("restore/r1/safe-attach")).collect();
    assert!(!safe.is_empty(), "a server without its mirror volume got one back before r2 started: {actions:?}");
    // The safe attach happened before any step of r2.
    let first_r2 = actions.iter().position(|(s, _)| s.starts_with("restore/r2/")).unwrap();
    let last_safe = actions.iter().rposition(|(s, _)| s.starts_with("restore/r1/safe-attach")).unwrap();
    assert!(last_safe < first_r2);
}

/// The daemon is killed while r1's add-md push (md back with initial copy OFF) is still being
/// applied by CLUSTERPRO, and comes back with r2 in the file. The push lands a few seconds later,
/// whatever the daemon does: r2 must not detach or swap a mirror volume before it has, or md comes
/// back without initial copy over a server whose device is empty (the chaos campaign's finding).
async fn killed_inside_the_add_md_push_then_changed(os: Os, seed: u64) {
    let mut lab = match os {
        Os::Windows => Lab::windows(seed),
        Os::Linux => Lab::linux(seed),
    };
    let (spec, snap) = after_the_accident(&lab, os).await;
    let pushes_before = lab.world.call_counts().get("clp:apply_config").copied().unwrap_or(0);
    let r1 = with_restore(spec.clone(), &snap, "r1", false);
    // r1 pushes twice: remove-md, then add-md. Kill it while the second is in flight.
    let killed = {
        let run = lab.apply(&r1);
        let watch = async {
            loop {
                let pushes = lab.world.call_counts().get("clp:apply_config").copied().unwrap_or(0);
                if pushes >= pushes_before + 2 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::select! {
            settled = run => panic!("r1 ended before its add-md push: {settled:?}"),
            () = watch => true,
        }
    };
    assert!(killed);
    let last = lab.actions(&r1).last().cloned().expect("r1 made steps");
    assert!(last.0.starts_with("restore/r1/add-md"), "killed inside add-md, not {}", last.0);
    lab.restart();
    let r2 = with_restore(spec.clone(), &snap, "r2", false);
    assert_eq!(lab.apply(&r2).await, Settled::Converged);
    restored_cleanly(&lab);
    // r2 saw r1's md land before it moved anything, so it took md out again itself.
    let steps: Vec<String> = lab.actions(&r2).into_iter().map(|(s, _)| s).collect();
    let removed = steps.iter().position(|s| s.starts_with("restore/r2/remove-md"));
    let detached = steps.iter().position(|s| s.starts_with("restore/r2/detach"));
    assert!(removed.is_some() && removed < detached, "{steps:?}");
}

#[tokio::test(start_paused = true)]
async fn a_kill_inside_the_add_md_push_then_a_new_request_waits_for_the_push_linux() {
    killed_inside_the_add_md_push_then_changed(Os::Linux, 71).await;
}

#[tokio::test(start_paused = true)]
async fn a_kill_inside_the_add_md_push_then_a_new_request_waits_for_the_push_windows() {
    killed_inside_the_add_md_push_then_changed(Os::Windows, 72).await;
}

/// NEC's procedure: the request changes at every point of a vendor restore (after each of its
/// mutating calls). Servers the old request took into `clprestore --pre` are brought back into the
/// cluster (`safe-start`, `safe-post`) before it is abandoned, and the new request restores both
/// sides cleanly from its snapshot.
#[tokio::test(start_paused = true)]
async fn a_vendor_restore_changed_at_any_point_brings_its_servers_back_then_restores_again() {
    let mut covered = 0;
    for n in 1.. {
        let mut lab = Lab::windows(60 + n as u64);
        let spec = with_backups(example_on(Os::Windows, ProcedureChoice::Vendor), &["b1"], 7);
        assert_eq!(lab.apply(&spec).await, Settled::Converged);
        let snap = lab.backup_snapshot(&spec, "b1");
        lab.world.clock().sleep(Duration::from_mins(10)).await;
        lab.world.accident();
        let r1 = with_restore(spec.clone(), &snap, "r1", false);
        let (res, switch) = lab.apply_with_crash(&r1, CrashPoint::AfterCall, n).await;
        if !switch.fired() {
            assert!(res.is_ok());
            break;
        }
        lab.restart();
        let r2 = with_restore(spec.clone(), &snap, "r2", false);
        assert_eq!(lab.apply(&r2).await, Settled::Converged, "r2 converges after r1 stopped at call {n}");
        restored_cleanly(&lab);
        for s in &spec.cluster.servers {
            let v = lab.world.mirror_volume(&s.name).expect("attached");
            let inv = lab.world.inventory();
            let vol = inv.volumes.iter().find(|x| x.id == v).unwrap();
            assert_eq!(vol.tags.get(tag::REQUEST).map(String::as_str), Some("r2"), "call {n}");
        }
        assert_eq!(lab.world.inventory().deleted_volumes, 0);
        covered += 1;
    }
    println!("vendor restore request changes covered: {covered}");
    assert!(covered >= 10, "covered {covered}");
}
