//! End-to-end backup and restore in the strict simulated world, proven with the data oracle.

use crate::support::common;

use common::{Lab, assert_backup_captured, assert_restored, example, with_backups, with_restore};
use mirrorctl::plan::Action;
use mirrorctl::ports::Clock as _;
use mirrorctl::ports::cloud::tag;
use mirrorctl::ports::cluster::ConfigChange;
use mirrorctl::reconcile::Settled;
use mirrorctl::spec::{Os, Spec};

/// Backup `b1`, accident, restore `r1` from it; returns the snapshot id.
pub async fn backup_accident_restore(lab: &Lab, spec: &Spec) -> mirrorctl::ids::SnapshotId {
    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(lab.apply(&backup).await, Settled::Converged);
    let snap = lab.backup_snapshot(spec, "b1");
    // Let the snapshot complete: a restore refuses a pending one.
    lab.world.clock().sleep(std::time::Duration::from_mins(10)).await;
    lab.world.accident();
    lab.world.clock().sleep(std::time::Duration::from_mins(1)).await;
    let restore = with_restore(backup, &snap, "r1", true);
    assert_eq!(lab.apply(&restore).await, Settled::Converged);
    snap
}

async fn full_flow(lab: &Lab, os: Os) {
    let spec = example(os);
    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(lab.apply(&backup).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");

    // The snapshot holds the quiesce point: the active's content when md was stopped.
    assert_backup_captured(&lab.world, &snap);

    // Business goes on, then someone deletes data by mistake; it is mirrored to the standby.
    lab.world.clock().sleep(std::time::Duration::from_mins(10)).await;
    lab.world.accident();
    lab.world.clock().sleep(std::time::Duration::from_mins(1)).await;
    let report = lab.world.oracle_report();
    for (server, content) in &report.servers {
        let c = content.expect("both servers hold a mirror volume");
        assert!(lab.world.contains_accident(c), "{server} holds the accident before the restore");
    }

    let restore = with_restore(backup.clone(), &snap, "r1", true);
    assert_eq!(lab.apply(&restore).await, Settled::Converged);

    // Both sides came back from the snapshot, without a full copy, and nothing was corrupted.
    assert_restored(&lab.world, &snap);

    let actions = lab.actions(&restore);
    let add_md = actions
        .iter()
        .find_map(|(_, a)| match a {
            Action::ApplyConfig { changes } => changes.iter().find_map(|c| match c {
                ConfigChange::AddMirror(def) => Some(def.initial_copy),
                _ => None,
            }),
            _ => None,
        })
        .expect("md was re-added");
    assert!(!add_md, "both sides from the same snapshot in this request: initial mirror construction OFF");

    // Exactly one new volume per server, old volumes kept and tagged, nothing deleted.
    let inv = lab.world.inventory();
    let new: Vec<_> =
        inv.volumes.iter().filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some("r1")).collect();
    assert_eq!(new.len(), 2, "{new:?}");
    let superseded = inv.volumes.iter().filter(|v| v.tags.contains_key(tag::SUPERSEDED_BY)).count();
    assert_eq!(superseded, 2);
    assert_eq!(inv.deleted_volumes, 0);

    // Status lists the restore's volumes and the EC2 calls made.
    let doc = mirrorctl::status::StatusDoc::read(&mirrorctl::status::StatusDoc::path_for(
        &lab.state_dir(),
        &spec.cluster.name,
    ))
    .expect("status document");
    assert_eq!(doc.phase, mirrorctl::status::Phase::Converged);
    assert_eq!(doc.inventory.new_volumes.len(), 2);
    assert_eq!(doc.inventory.replaced_volumes.len(), 2);
    assert_eq!(doc.api_calls.get("ec2:CreateVolume"), Some(&2));
    assert_eq!(doc.api_calls.get("ec2:CreateSnapshot"), Some(&1));

    // The failover check moved the group to the other server, and it is online there.
    let status = lab.world.ports().cluster.status().await.expect("status");
    let placement = &status.groups[&spec.mirror.group];
    assert_eq!(placement.current.as_ref(), Some(&spec.cluster.servers[1].name));
}

#[tokio::test(start_paused = true)]
async fn windows_backup_then_restore_end_to_end() {
    let lab = Lab::windows(1);
    full_flow(&lab, Os::Windows).await;
    // The runbook's letter dance: the server that received a copy of the other's disk got new
    // letters and mirrorctl put R:/M: back.
    let actions =
        lab.actions(&with_restore(example(Os::Windows), &lab.backup_snapshot(&example(Os::Windows), "b1"), "r1", true));
    assert!(actions.iter().any(|(_, a)| matches!(a, Action::SetLetter { letter: 'M', .. })), "{actions:?}");
}

#[tokio::test(start_paused = true)]
async fn linux_backup_then_restore_end_to_end() {
    let lab = Lab::linux(2);
    full_flow(&lab, Os::Linux).await;
}

#[tokio::test(start_paused = true)]
async fn a_converged_cluster_plans_nothing_and_backups_are_taken_once() {
    let lab = Lab::windows(3);
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let before = lab.world.call_counts();
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let after = lab.world.call_counts();
    assert_eq!(before.get("ec2:CreateSnapshot"), after.get("ec2:CreateSnapshot"), "second apply created nothing");
    assert_eq!(before.get("clp:stop_resource"), after.get("clp:stop_resource"));
}

#[tokio::test(start_paused = true)]
async fn a_new_request_restores_again_from_the_same_snapshot() {
    let lab = Lab::windows(4);
    let spec = example(Os::Windows);
    let snap = backup_accident_restore(&lab, &spec).await;
    let again = with_restore(with_backups(spec.clone(), &["b1"], 7), &snap, "r2", false);
    assert_eq!(lab.apply(&again).await, Settled::Converged);
    let inv = lab.world.inventory();
    for r in ["r1", "r2"] {
        let n = inv.volumes.iter().filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some(r)).count();
        assert_eq!(n, 2, "one volume per server for {r}");
    }
    assert_eq!(inv.deleted_volumes, 0);
    assert!(lab.world.oracle_report().corruptions.is_empty());
}
