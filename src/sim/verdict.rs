//! The data oracle's verdicts on a flow: what a backup and a restore must have done to the data.
//!
//! Why this module exists: `mirrorctl lab`, the chaos campaign and the integration tests judge a
//! flow by the same rules — a backup's snapshot holds the quiesce point, an accident reached both
//! servers, a restore leaves both sides identical, continuing from the snapshot, without the
//! accident, nothing corrupted. The rules are written here once; each caller only words them
//! (lab checks, campaign violations, test assertions).

use super::SimWorld;
use super::oracle::Content;
use crate::ids::{ResourceName, ServerName, SnapshotId};

/// What the oracle says of a backup's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupVerdict {
    /// What the snapshot captured (`None`: the oracle never saw it taken).
    pub snapshot: Option<Content>,
    /// The content at every quiesce point so far (md stops), oldest first.
    pub quiesce_points: Vec<Content>,
    /// The snapshot holds the latest quiesce point.
    pub captured: bool,
    /// Corruptions the oracle flagged.
    pub corruptions: Vec<String>,
}

impl BackupVerdict {
    /// The snapshot holds the latest quiesce point, the only one there was.
    pub fn captured_once(&self) -> bool {
        self.captured && self.quiesce_points.len() == 1
    }
}

/// What the oracle says of the data after a restore.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreVerdict {
    /// Each server's mirror content (`None`: nothing attached at the mirror device).
    pub sides: Vec<(ServerName, Option<Content>)>,
    /// What the restored snapshot captured.
    pub snapshot: Option<Content>,
    /// Two sides, both attached, holding the same content.
    pub identical: bool,
    /// Every side is attached and free of the accident.
    pub accident_gone: bool,
    /// Every side is attached and continues from the snapshot's content.
    pub from_snapshot: bool,
    /// Corruptions the oracle flagged.
    pub corruptions: Vec<String>,
}

impl RestoreVerdict {
    /// Every rule holds.
    pub fn passed(&self) -> bool {
        self.identical && self.accident_gone && self.from_snapshot && self.corruptions.is_empty()
    }
}

/// The verdict on the backup that took `snap` of the scenario's first md.
pub fn backup(world: &SimWorld, snap: &SnapshotId) -> BackupVerdict {
    backup_of(world, &world.scenario().md, snap)
}

/// The verdict on the backup whose snapshot `snap` holds md `md`'s data: it holds that md's
/// latest quiesce point.
pub fn backup_of(world: &SimWorld, md: &ResourceName, snap: &SnapshotId) -> BackupVerdict {
    let report = world.oracle_report();
    let snapshot = report.snapshots.get(snap).copied();
    let quiesce_points: Vec<Content> =
        report.quiesce_points.iter().filter(|q| q.md == *md).map(|q| q.content).collect();
    let captured = quiesce_points.last().is_some_and(|q| snapshot == Some(*q));
    BackupVerdict { snapshot, quiesce_points, captured, corruptions: report.corruptions }
}

/// Whether the accident reached both sides of every md (as the runbook's restore case needs).
pub fn accident_everywhere(world: &SimWorld) -> bool {
    world
        .oracle_report()
        .mirrors
        .values()
        .flat_map(|sides| sides.values())
        .all(|c| c.is_some_and(|c| world.contains_accident(c)))
}

/// The verdict on the data of the scenario's first md after a restore from `snap`.
pub fn restore(world: &SimWorld, snap: &SnapshotId) -> RestoreVerdict {
    let report = world.oracle_report();
    let sides: Vec<_> = report.servers.iter().map(|(s, c)| (s.clone(), *c)).collect();
    judge(world, sides, report.snapshots.get(snap).copied(), report.corruptions)
}

/// The verdict on md `md`'s data after a restore from `snap` (the snapshot of its data volume).
pub fn restore_of(world: &SimWorld, md: &ResourceName, snap: &SnapshotId) -> RestoreVerdict {
    let report = world.oracle_report();
    let sides: Vec<_> =
        report.mirrors.get(md).map(|m| m.iter().map(|(s, c)| (s.clone(), *c)).collect()).unwrap_or_default();
    judge(world, sides, report.snapshots.get(snap).copied(), report.corruptions)
}

fn judge(
    world: &SimWorld,
    sides: Vec<(ServerName, Option<Content>)>,
    snapshot: Option<Content>,
    corruptions: Vec<String>,
) -> RestoreVerdict {
    let identical = sides.len() == 2 && sides[0].1.is_some() && sides[0].1 == sides[1].1;
    let accident_gone = sides.iter().all(|(_, c)| c.is_some_and(|c| !world.contains_accident(c)));
    let from_snapshot =
        snapshot.is_some_and(|s| sides.iter().all(|(_, c)| c.is_some_and(|c| world.descends_from(c, s))));
    RestoreVerdict { sides, snapshot, identical, accident_gone, from_snapshot, corruptions }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::ports::Clock as _;
    use crate::sim::Scenario;

    #[tokio::test(start_paused = true)]
    async fn an_accident_reaches_both_sides_and_fails_a_restore_verdict() {
        let world = SimWorld::new(Scenario::windows_runbook(), 1, 1.0);
        let snap = SnapshotId::parse("snap-0123456789abcdef0").expect("snapshot id");
        assert!(!accident_everywhere(&world), "no accident yet");
        let before = restore(&world, &snap);
        assert!(before.identical && before.accident_gone, "{before:?}");
        assert!(!before.from_snapshot && !before.passed(), "no such snapshot: {before:?}");
        assert_eq!(backup(&world, &snap).snapshot, None);
        assert!(!backup(&world, &snap).captured);

        world.accident();
        world.clock().sleep(Duration::from_secs(30)).await;
        assert!(accident_everywhere(&world), "mirrored to the standby");
        let after = restore(&world, &snap);
        assert!(after.identical, "{after:?}");
        assert!(!after.accident_gone, "{after:?}");
    }
}
