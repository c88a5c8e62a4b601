//! Property tests of the planner against the simulated world: for random seeds (latency jitter,
//! ids), random retryable faults and an optional crash, applying the plans converges with the
//! invariants intact; and plans are deterministic (same inputs, same plan; same world, same steps).

use crate::support::common;

use std::time::Duration;

use common::{Lab, example, with_backups, with_restore};
use mirrorctl::execute::CrashPoint;
use mirrorctl::plan::plan;
use mirrorctl::ports::Clock as _;
use mirrorctl::ports::cloud::tag;
use mirrorctl::reconcile::{Settled, open_journal, plan_once};
use mirrorctl::sim::Fault;
use mirrorctl::spec::Os;
use proptest::prelude::*;

const FAULTS: &[(&str, &str)] = &[
    ("ec2:CreateVolume", "InternalError"),
    ("ec2:AttachVolume", "RequestLimitExceeded"),
    ("ec2:DetachVolume", "ServiceUnavailable"),
    ("ec2:CreateSnapshot", "InternalError"),
    ("ec2:DescribeVolumes", "RequestLimitExceeded"),
    ("ec2:StartInstances", "InternalError"),
    ("clp:apply_config", "ServerBusy"),
    ("clp:stop_resource", "ServerBusy"),
    ("node:set_online", "CommandFailed"),
    ("node:set_letter", "CommandFailed"),
];

const LOST: &[&str] = &[
    "ec2:CreateVolume",
    "ec2:AttachVolume",
    "ec2:DetachVolume",
    "ec2:CreateTags",
    "clp:apply_config",
    "node:set_offline",
];

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().start_paused(true).build().expect("runtime")
}

async fn flow(seed: u64, os: Os, faults: &[(usize, u32)], lost: &[usize], crash: Option<(bool, usize)>) -> Lab {
    let mut lab = if os == Os::Windows { Lab::windows(seed) } else { Lab::linux(seed) };
    for &(i, n) in faults {
        let (op, code) = FAULTS[i % FAULTS.len()];
        lab.world.inject(Fault::fail_next(op, code, n)).expect("inject");
    }
    for &i in lost {
        lab.world.inject(Fault::LoseResponse { op: LOST[i % LOST.len()].into(), count: 1 }).expect("inject");
    }
    let spec = example(os);
    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(lab.apply(&backup).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    lab.world.accident();
    let restore = with_restore(backup, &snap, "r1", seed.is_multiple_of(2));
    if let Some((inside, n)) = crash {
        let point = if inside { CrashPoint::AfterCall } else { CrashPoint::BeforeIntent };
        let (_, switch) = lab.apply_with_crash(&restore, point, n).await;
        if switch.fired() {
            lab.restart();
        }
    }
    assert_eq!(lab.apply(&restore).await, Settled::Converged);
    lab
}

fn invariants(lab: &Lab) {
    let inv = lab.world.inventory();
    assert_eq!(inv.deleted_volumes, 0);
    assert_eq!(inv.volumes.iter().filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some("r1")).count(), 2);
    assert_eq!(inv.snapshots.iter().filter(|s| s.tags.get(tag::REQUEST).map(String::as_str) == Some("b1")).count(), 1);
    let report = lab.world.oracle_report();
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
    let c: Vec<_> = report.servers.values().map(|c| c.expect("attached")).collect();
    assert_eq!(c[0], c[1]);
    assert!(!lab.world.contains_accident(c[0]));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn applying_plans_converges_under_faults_and_a_crash(
        seed in 0u64..10_000,
        linux in any::<bool>(),
        faults in proptest::collection::vec((0usize..100, 1u32..4), 0..5),
        lost in proptest::collection::vec(0usize..100, 0..3),
        crash in proptest::option::of((any::<bool>(), 1usize..20)),
    ) {
        let os = if linux { Os::Linux } else { Os::Windows };
        let lab = runtime().block_on(flow(seed, os, &faults, &lost, crash));
        invariants(&lab);
    }

    #[test]
    fn the_same_world_gets_the_same_steps(seed in 0u64..10_000) {
        let a = runtime().block_on(flow(seed, Os::Windows, &[], &[], None));
        let b = runtime().block_on(flow(seed, Os::Windows, &[], &[], None));
        let spec = example(Os::Windows);
        let steps = |lab: &Lab| lab.actions(&spec);
        prop_assert_eq!(steps(&a), steps(&b));
        prop_assert_eq!(a.world.call_counts(), b.world.call_counts());
    }
}

#[test]
fn a_plan_depends_only_on_its_inputs() {
    runtime().block_on(async {
        let lab = Lab::windows(77);
        let spec = with_backups(example(Os::Windows), &["b1"], 7);
        let ctx = lab.ctx();
        let journal = open_journal(&spec, &ctx).await.expect("journal");
        let (obs, first) = plan_once(&spec, &ctx, &journal).await.expect("plan");
        let view = journal.lock().await.view().clone();
        for _ in 0..5 {
            assert_eq!(plan(&spec, &obs, &view), first);
        }
        // And through a JSON round trip of the observation (nothing hidden outside the data).
        let obs2: mirrorctl::observe::Observed = serde_json::from_str(&serde_json::to_string(&obs).unwrap()).unwrap();
        assert_eq!(plan(&spec, &obs2, &view), first);
        assert!(first.has_changes());
    });
}
