//! Shared test harness: a simulated world, a state directory, and the example desired state
//! adjusted per test.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use mirrorctl::execute::{CrashPoint, CrashSwitch};
use mirrorctl::ids::{BackupName, RequestName, SnapshotId};
use mirrorctl::plan::{Action, OpId};
use mirrorctl::ports::cloud::{Tags, tag};
use mirrorctl::reconcile::{Context, ReconcileError, Settled, reconcile};
use mirrorctl::sim::{Scenario, SimWorld, verdict};
use mirrorctl::spec::{BackupSpec, RestoreSpec, Spec};

/// The example desired-state file for the scenario's OS, on the runbook's configuration edit
/// (`procedure = "reconfigure"`): most tests were written for it; [`example_on`] picks another.
pub fn example(os: mirrorctl::spec::Os) -> Spec {
    example_on(os, mirrorctl::spec::ProcedureChoice::Reconfigure)
}

/// The example desired-state file for the scenario's OS, following `procedure`.
pub fn example_on(os: mirrorctl::spec::Os, procedure: mirrorctl::spec::ProcedureChoice) -> Spec {
    let file = match os {
        mirrorctl::spec::Os::Windows => "desired-state/prod-db.toml",
        mirrorctl::spec::Os::Linux => "desired-state/app-linux.toml",
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(file);
    let mut spec = mirrorctl::spec::load_file(&path).expect("example desired state is valid");
    spec.backup = None;
    spec.restore = None;
    spec.cluster.procedure = procedure;
    spec
}

/// `spec` asking for the on-demand backups `names`.
pub fn with_backups(mut spec: Spec, names: &[&str], keep: u32) -> Spec {
    spec.backup = Some(BackupSpec {
        schedules: Vec::new(),
        keep,
        take: names.iter().map(|n| BackupName::parse(n).expect("test backup name")).collect(),
        copy_to: Vec::new(),
    });
    spec
}

/// `spec` asking for a restore of `snapshot` under `request`.
pub fn with_restore(mut spec: Spec, snapshot: &SnapshotId, request: &str, verify_failover: bool) -> Spec {
    spec.restore = Some(RestoreSpec {
        snapshot: snapshot.clone(),
        request: RequestName::parse(request).expect("test request name"),
        verify_failover,
        allow_foreign_snapshot: false,
    });
    spec
}

/// A world, its file, and a state directory.
pub struct Lab {
    pub world: Arc<SimWorld>,
    pub world_file: PathBuf,
    pub dir: tempfile::TempDir,
}

impl Lab {
    pub fn new(scenario: Scenario, seed: u64) -> Lab {
        let dir = tempfile::tempdir().expect("temp dir");
        let world_file = dir.path().join("world.json");
        let world = SimWorld::new(scenario, seed, 1.0);
        world.persist_to(&world_file).expect("persist world");
        Lab { world, world_file, dir }
    }

    pub fn windows(seed: u64) -> Lab {
        Lab::new(Scenario::windows_runbook(), seed)
    }

    pub fn linux(seed: u64) -> Lab {
        Lab::new(Scenario::linux(), seed)
    }

    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn ctx(&self) -> Context {
        let mut c = Context::new(self.world.ports(), self.state_dir());
        c.max_passes = Some(2_000);
        c
    }

    /// Simulates a process restart: the world is reloaded from its file, the executor and journal
    /// are rebuilt from disk by the next `reconcile`.
    pub fn restart(&mut self) {
        self.world = SimWorld::open(&self.world_file, 1.0).expect("reopen world");
    }

    pub async fn apply(&self, spec: &Spec) -> Settled {
        reconcile(spec, &self.ctx()).await.expect("reconcile ends without an internal error")
    }

    pub async fn apply_with_crash(
        &self,
        spec: &Spec,
        point: CrashPoint,
        n: usize,
    ) -> (Result<Settled, ReconcileError>, Arc<CrashSwitch>) {
        let switch = Arc::new(CrashSwitch::new(point, n));
        let mut ctx = self.ctx();
        ctx.crash = Some(switch.clone());
        (reconcile(spec, &ctx).await, switch)
    }

    /// The journal's records for the cluster of `spec`.
    pub fn journal(&self, spec: &Spec) -> Vec<mirrorctl::journal::Record> {
        let path = mirrorctl::journal::writer::Journal::path_for(&self.state_dir(), &spec.cluster.name);
        mirrorctl::journal::read_file(&path).expect("journal")
    }

    /// Every action whose intent was journaled, in order.
    pub fn actions(&self, spec: &Spec) -> Vec<(String, Action)> {
        self.journal(spec)
            .into_iter()
            .filter_map(|r| match r {
                mirrorctl::journal::Record::Intent { step, action, .. } => Some((step.0, action)),
                _ => None,
            })
            .collect()
    }

    /// The backup snapshot of `name`.
    pub fn backup_snapshot(&self, spec: &Spec, name: &str) -> SnapshotId {
        let inv = self.world.inventory();
        let found: Vec<_> = inv
            .snapshots
            .iter()
            .filter(|s| {
                has_tags(&s.tags, &spec.cluster.name.to_string(), name)
                    && s.tags.get(tag::ROLE).map(String::as_str) == Some("backup")
            })
            .collect();
        assert_eq!(found.len(), 1, "exactly one snapshot for backup {name}: {found:?}");
        found[0].id.clone()
    }
}

/// A backup's proof: the snapshot `snap` holds the quiesce point (the active's data when md was
/// stopped), and nothing was corrupted.
pub fn assert_backup_captured(world: &SimWorld, snap: &SnapshotId) {
    let v = verdict::backup(world, snap);
    assert!(!v.quiesce_points.is_empty(), "the backup stopped md once");
    assert!(v.captured, "snapshot = quiesce point: {v:?}");
    assert!(v.corruptions.is_empty(), "{:?}", v.corruptions);
}

/// A restore's proof: nothing corrupted, both sides identical, the accident gone, the data
/// continuing from `snap`.
pub fn assert_restored(world: &SimWorld, snap: &SnapshotId) {
    let v = verdict::restore(world, snap);
    assert!(v.corruptions.is_empty(), "{:?}", v.corruptions);
    assert!(v.identical, "both sides identical after the restore: {:?}", v.sides);
    assert!(v.accident_gone, "the accident is gone: {:?}", v.sides);
    assert!(v.from_snapshot, "data continues from the snapshot {:?}: {:?}", v.snapshot, v.sides);
}

pub fn has_tags(tags: &Tags, cluster: &str, request: &str) -> bool {
    tags.get(tag::CLUSTER).map(String::as_str) == Some(cluster)
        && tags.get(tag::REQUEST).map(String::as_str) == Some(request)
}

pub fn op_restore(r: &str) -> OpId {
    OpId::Restore(RequestName::parse(r).expect("request"))
}

/// Device name `d` (`/dev/sdy`), for tests.
pub fn dev(d: &str) -> mirrorctl::ids::DeviceName {
    mirrorctl::ids::DeviceName::parse(d).unwrap()
}

/// `spec` asking for a restore of backup `backup` by name, under `request`.
pub fn by_backup(mut spec: Spec, backup: &str, request: &str) -> Spec {
    spec.restore = None;
    spec.restore_backup = Some(mirrorctl::spec::BackupRestoreSpec {
        backup: BackupName::parse(backup).unwrap(),
        request: RequestName::parse(request).unwrap(),
        verify_failover: false,
    });
    spec
}

/// The condition `spec`'s next pass on `lab` blocks on (panics when it does not block).
pub async fn blocked_on(lab: &Lab, spec: &Spec) -> mirrorctl::plan::Condition {
    let ctx = lab.ctx();
    let journal = mirrorctl::reconcile::open_journal(spec, &ctx).await.unwrap();
    let (_, p) = mirrorctl::reconcile::plan_once(spec, &ctx, &journal).await.unwrap();
    match p.outcome {
        mirrorctl::plan::Outcome::Blocked(c) => c,
        other => panic!("expected a block: {other:?} {:?}", p.notes),
    }
}
