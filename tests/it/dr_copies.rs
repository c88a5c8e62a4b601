//! Copies of backups to other regions (`backup.copy_to`). At the cloud port
//! (`Cloud::copy_snapshot`, called on the destination region's port): strict in the simulator (a
//! `pending` source is refused, the copy is `pending` then `completed`, it exists only in its
//! region), and on the wire against moto. End to end in the simulated world: every completed
//! backup is copied once, copies are retained per region, a crash right after the call does not
//! copy twice. And a cluster in the copy's region restores from it with its own file (moto, the
//! fake CLUSTERPRO on top).

use crate::support;

use std::sync::Arc;
use std::time::Duration;

use mirrorctl::execute::CrashPoint;
use mirrorctl::ids::{Region, ServerName};
use mirrorctl::ports::Clock as _;
use mirrorctl::ports::cloud::{Cloud, CopySnapshot, CreateSnapshot, SnapshotFilter, SnapshotState, Tags, tag};
use mirrorctl::reconcile::Settled;
use mirrorctl::sim::ec2::SimCloud;
use mirrorctl::spec::{CopyTarget, Os, Spec};
use support::common::{Lab, example, with_backups};
use support::{Moto, REGION, run_server};

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn copy_of(source: &mirrorctl::ids::SnapshotId, kms_key: Option<&str>) -> CopySnapshot {
    CopySnapshot {
        source_region: Region::parse(REGION).unwrap(),
        source: source.clone(),
        description: "mirrorctl copy of b1".to_owned(),
        kms_key: kms_key.map(str::to_owned),
        tags: tags(&[(tag::CLUSTER, "prod-db"), (tag::ROLE, "copy"), (tag::SOURCE_SNAPSHOT, source.as_str())]),
    }
}

#[tokio::test(start_paused = true)]
async fn the_simulator_copies_a_completed_snapshot_into_another_region_only() {
    let lab = Lab::windows(81);
    let west = Region::parse("us-west-2").unwrap();
    let home = lab.world.ports().cloud;
    let dr = SimCloud::in_region(Arc::clone(&lab.world), &west);
    let src = lab
        .world
        .add_snapshot(
            &ServerName::parse("server2").unwrap(),
            tags(&[(tag::CLUSTER, "prod-db")]),
            SnapshotState::Pending,
        )
        .unwrap();
    // A pending source cannot be copied yet.
    let e = dr.copy_snapshot(&copy_of(&src.id, Some("alias/dr"))).await.unwrap_err();
    assert_eq!(e.code, "IncorrectState", "{e}");
    lab.world.clock().sleep(Duration::from_hours(3)).await;
    let copy = dr.copy_snapshot(&copy_of(&src.id, Some("alias/dr"))).await.unwrap();
    assert_ne!(copy, src.id);
    // It is found by its tags in its region once visible, pending first, then completed; the
    // home region never sees it, and cannot make a volume from it.
    lab.world.clock().sleep(Duration::from_secs(5)).await;
    let by_tag = SnapshotFilter { tags: tags(&[(tag::SOURCE_SNAPSHOT, src.id.as_str())]), ..Default::default() };
    let seen = dr.describe_snapshots(&by_tag).await.unwrap();
    assert_eq!(seen.iter().map(|s| (&s.id, s.state)).collect::<Vec<_>>(), [(&copy, SnapshotState::Pending)]);
    assert!(home.describe_snapshots(&by_tag).await.unwrap().is_empty());
    lab.world.clock().sleep(Duration::from_hours(3)).await;
    let seen = dr.describe_snapshots(&by_tag).await.unwrap();
    assert_eq!(seen[0].state, SnapshotState::Completed);
    assert_eq!(home.delete_snapshot(&copy).await.unwrap_err().code, "InvalidSnapshot.NotFound");
    // Only snapshots exist outside the scenario's region.
    assert_eq!(dr.describe_instances(&[]).await.unwrap_err().code, "UnsupportedOperation");
    // A source in a region the simulator does not hold is not found.
    let mut elsewhere = copy_of(&src.id, None);
    elsewhere.source_region = Region::parse("eu-west-1").unwrap();
    assert_eq!(dr.copy_snapshot(&elsewhere).await.unwrap_err().code, "InvalidSnapshot.NotFound");
    dr.delete_snapshot(&copy).await.unwrap();
    assert!(dr.describe_snapshots(&by_tag).await.unwrap().is_empty());
    assert!(home.describe_snapshots(&SnapshotFilter { ids: vec![src.id.clone()], ..Default::default() }).await.is_ok());
}

#[tokio::test]
async fn copy_snapshot_crosses_regions_on_the_wire() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let s1 = run_server(&sdk, "ap-northeast-1a", 8).await;
    let home = moto.cloud().await;
    let mut west_options = moto.options();
    west_options.region = Region::parse("us-west-2").unwrap();
    let west = moto.cloud_with(west_options).await;
    let src = home
        .create_snapshot(&CreateSnapshot {
            volume: s1.volume.clone(),
            description: "b1".to_owned(),
            tags: tags(&[(tag::CLUSTER, "prod-db"), (tag::ROLE, "backup")]),
        })
        .await
        .unwrap();
    let copy = west.copy_snapshot(&copy_of(&src.id, Some("alias/dr"))).await.unwrap();
    let by_tag = SnapshotFilter { tags: tags(&[(tag::SOURCE_SNAPSHOT, src.id.as_str())]), ..Default::default() };
    let there = west.describe_snapshots(&by_tag).await.unwrap();
    assert_eq!(there.iter().map(|s| &s.id).collect::<Vec<_>>(), [&copy], "tagged in the call, found in us-west-2");
    assert_eq!(there[0].tags.get(tag::ROLE).map(String::as_str), Some("copy"));
    assert!(home.describe_snapshots(&by_tag).await.unwrap().is_empty(), "not in the source region");
    west.delete_snapshot(&copy).await.unwrap();
    assert!(west.describe_snapshots(&by_tag).await.unwrap().is_empty());
}

fn with_copies(names: &[&str], keep: u32) -> Spec {
    let mut spec = with_backups(example(Os::Windows), names, 7);
    spec.backup.as_mut().unwrap().copy_to =
        vec![CopyTarget { region: Region::parse("us-west-2").unwrap(), keep, kms_key: Some("alias/dr".into()) }];
    spec
}

/// The copies in us-west-2 as (backup name, state), by name.
async fn copies_in_west(lab: &Lab) -> Vec<(String, SnapshotState)> {
    let west = SimCloud::in_region(Arc::clone(&lab.world), &Region::parse("us-west-2").unwrap());
    let mut found: Vec<_> = west
        .describe_snapshots(&SnapshotFilter { tags: tags(&[(tag::ROLE, "copy")]), ..Default::default() })
        .await
        .unwrap()
        .into_iter()
        .map(|s| (s.tags.get(tag::REQUEST).cloned().unwrap_or_default(), s.state))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[tokio::test(start_paused = true)]
async fn every_completed_backup_is_copied_once_and_copies_are_kept_per_region() {
    let lab = Lab::windows(82);
    let spec = with_copies(&["b1"], 2);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    // The backup converges with its snapshot still pending: nothing to copy yet.
    assert!(copies_in_west(&lab).await.is_empty());
    lab.world.clock().sleep(Duration::from_hours(3)).await;
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_eq!(copies_in_west(&lab).await, [("b1".to_owned(), SnapshotState::Pending)]);
    // Two more backups; once all copies are done, keep = 2 leaves the two newest in us-west-2.
    for names in [&["b1", "b2"][..], &["b1", "b2", "b3"][..]] {
        let spec = with_copies(names, 2);
        assert_eq!(lab.apply(&spec).await, Settled::Converged);
        lab.world.clock().sleep(Duration::from_hours(3)).await;
        assert_eq!(lab.apply(&spec).await, Settled::Converged);
    }
    lab.world.clock().sleep(Duration::from_hours(3)).await;
    let spec = with_copies(&["b1", "b2", "b3"], 2);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_eq!(
        copies_in_west(&lab).await,
        [("b2".to_owned(), SnapshotState::Completed), ("b3".to_owned(), SnapshotState::Completed)]
    );
    let steps: Vec<String> = lab.actions(&spec).into_iter().map(|(s, _)| s).collect();
    let copies = steps.iter().filter(|s| s.starts_with("retention/copy-us-west-2@")).count();
    let deletes = steps.iter().filter(|s| s.starts_with("retention/delete-copy-us-west-2@")).count();
    assert_eq!((copies, deletes), (3, 1), "{steps:?}");
    // The source snapshots stay: backup.keep = 7.
    assert_eq!(lab.world.inventory().deleted_snapshots, 1, "only the old copy");
    // Converged means converged: another pass copies nothing again.
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_eq!(lab.actions(&spec).len(), steps.len());
}

#[tokio::test(start_paused = true)]
async fn a_crash_right_after_copy_snapshot_does_not_copy_twice() {
    let mut lab = Lab::windows(83);
    let spec = with_copies(&["b1"], 2);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    lab.world.clock().sleep(Duration::from_hours(3)).await;
    // The first mutating step of this pass is the copy: die right after EC2 answered, before
    // the result reached the journal.
    let (_, switch) = lab.apply_with_crash(&spec, CrashPoint::AfterCall, 1).await;
    assert!(switch.fired());
    let (last, _) = lab.actions(&spec).pop().unwrap();
    assert!(last.starts_with("retention/copy-us-west-2@"), "the crash was in the copy: {last}");
    lab.restart();
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    assert_eq!(copies_in_west(&lab).await.len(), 1, "found by its tags, not copied again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_in_the_copy_region_restores_from_the_copy_with_its_own_file() {
    use mirrorctl::ids::RequestName;
    use mirrorctl::ports::Ports;
    use mirrorctl::ports::cloud::VolumeFilter;
    use mirrorctl::reconcile::{Context, reconcile};
    use mirrorctl::spec::RestoreSpec;

    let moto = Moto::start();
    // The source cluster's side: a backup snapshot in ap-northeast-1 and its copy in us-west-2,
    // made through the ports exactly as the copy step makes it.
    let sdk = moto.sdk().await;
    let source = support::run_server_at(&sdk, "ap-northeast-1c", 100, "/dev/xvdb").await;
    let home = moto.cloud().await;
    let backup_tags = tags(&[(tag::CLUSTER, "app-linux"), (tag::ROLE, "backup"), (tag::REQUEST, "b1")]);
    let src = home
        .create_snapshot(&CreateSnapshot { volume: source.volume, description: "b1".into(), tags: backup_tags })
        .await
        .unwrap();
    let west_region = Region::parse("us-west-2").unwrap();
    let west = home.in_region(&west_region).unwrap();
    let mut req = copy_of(&src.id, None);
    req.tags = tags(&[
        (tag::CLUSTER, "app-linux"),
        (tag::ROLE, "copy"),
        (tag::REQUEST, "b1"),
        (tag::SOURCE_SNAPSHOT, src.id.as_str()),
    ]);
    let copy = west.copy_snapshot(&req).await.unwrap();

    // The DR cluster: its own file, in us-west-2, two servers with their own mirror volumes.
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state/app-linux.toml");
    let text = std::fs::read_to_string(&path)
        .unwrap()
        .replace("ap-northeast-1a", "us-west-2a")
        .replace("ap-northeast-1c", "us-west-2b")
        .replace("ap-northeast-1", "us-west-2");
    let mut spec = mirrorctl::spec::load_str(&path, &text).expect("the DR file is valid");
    spec.backup = None;
    let west_sdk = aws_sdk_ec2::Client::from_conf(
        aws_sdk_ec2::config::Builder::from(&moto.sdk_config().await)
            .region(aws_config::Region::new("us-west-2"))
            .build(),
    );
    for server in &mut spec.cluster.servers {
        server.instance = support::run_server_at(&west_sdk, server.zone.as_str(), 100, "/dev/xvdb").await.instance;
    }
    let world = support::moto_world::MotoWorld::new(&spec, Arc::clone(&west), west_sdk);
    spec.restore = Some(RestoreSpec {
        snapshot: copy.clone(),
        request: RequestName::parse("dr-1").unwrap(),
        verify_failover: true,
        allow_foreign_snapshot: false,
    });
    let ports = Ports {
        cloud: Arc::clone(&west),
        cluster: world.clone(),
        node: world.clone(),
        clock: Arc::new(support::ShortWaits(20)),
    };
    let dir = tempfile::tempdir().unwrap();
    let mut ctx = Context::new(ports, dir.path().join("state"));
    ctx.max_passes = Some(200);
    assert_eq!(reconcile(&spec, &ctx).await.unwrap(), Settled::Converged);
    // Both servers got a volume made from the copy, in their zones of us-west-2.
    let made = west
        .describe_volumes(&VolumeFilter { tags: tags(&[(tag::REQUEST, "dr-1")]), ..Default::default() })
        .await
        .unwrap();
    let mut zones: Vec<&str> = made.iter().map(|v| v.zone.as_str()).collect();
    zones.sort_unstable();
    assert_eq!(zones, ["us-west-2a", "us-west-2b"]);
    assert!(made.iter().all(|v| v.snapshot.as_ref() == Some(&copy)), "{made:?}");
    assert!(
        home.describe_volumes(&VolumeFilter { tags: tags(&[(tag::REQUEST, "dr-1")]), ..Default::default() })
            .await
            .unwrap()
            .is_empty()
    );
}
