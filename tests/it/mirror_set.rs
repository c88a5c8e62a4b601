//! Several mirror disks per cluster: the file's md resources against the live `clp.conf`, and
//! what a file with several md resources may do.

use crate::support::common;

use common::{Lab, blocked_on, by_backup, dev, example, with_backups, with_restore};
use mirrorctl::ids::{ResourceName, ServerName};
use mirrorctl::plan::{Outcome, plan};
use mirrorctl::ports::cloud::{SnapshotState, Tags};
use mirrorctl::ports::cluster::MdDefinition;
use mirrorctl::reconcile::{open_journal, plan_once};
use mirrorctl::spec::{Os, Partition};

fn md2() -> ResourceName {
    ResourceName::parse("md2").unwrap()
}

/// The configuration's md with another name and partitions: a second md of the cluster.
fn second_md(first: &MdDefinition) -> MdDefinition {
    MdDefinition {
        resource: md2(),
        data_partition: Partition::Letter('L'),
        cluster_partition: Partition::Letter('S'),
        ..first.clone()
    }
}

#[tokio::test(start_paused = true)]
async fn a_restore_is_refused_when_the_cluster_has_an_md_the_file_does_not_name() {
    let lab = Lab::windows(71);
    let s2 = ServerName::parse("server2").unwrap();
    let snap = lab.world.add_snapshot(&s2, Tags::new(), SnapshotState::Completed).unwrap();
    let spec = with_restore(example(Os::Windows), &snap.id, "r-shape", false);
    let ctx = lab.ctx();
    let journal = open_journal(&spec, &ctx).await.unwrap();
    let (mut obs, p) = plan_once(&spec, &ctx, &journal).await.unwrap();
    assert!(p.has_changes(), "the file names every md of the cluster: {p:?}");
    let extra = second_md(&obs.config.mirrors[0]);
    obs.config.mirrors.push(extra);
    let view = journal.lock().await.view().clone();
    let p = plan(&spec, &obs, &view);
    let Outcome::Blocked(c) = &p.outcome else { panic!("{p:?}") };
    assert_eq!(c.reason, "md-not-in-file");
    assert!(c.message.contains("md2"), "{c:?}");
    assert!(p.notes.iter().any(|n| n.contains("md2")), "plan names md2: {:?}", p.notes);

    // The file names an md the cluster lacks (beside md): refused too.
    let mut renamed = spec.clone();
    renamed.mirror.resource = ResourceName::parse("mdx").unwrap();
    let p = plan(&renamed, &obs, &view);
    let Outcome::Blocked(c) = &p.outcome else { panic!("{p:?}") };
    assert_eq!(c.reason, "md-not-in-file");
    assert!(p.notes.iter().any(|n| n.contains("mdx") && n.contains("does not have")), "{:?}", p.notes);
}

#[tokio::test(start_paused = true)]
async fn a_backup_goes_ahead_with_a_warning_naming_the_md_it_does_not_cover() {
    let lab = Lab::linux(72);
    let spec = with_backups(example(Os::Linux), &["b1"], 7);
    let ctx = lab.ctx();
    let journal = open_journal(&spec, &ctx).await.unwrap();
    let (mut obs, p) = plan_once(&spec, &ctx, &journal).await.unwrap();
    assert!(p.has_changes(), "{p:?}");
    assert!(!p.notes.iter().any(|n| n.contains("warning")), "{:?}", p.notes);
    let mut extra = second_md(&obs.config.mirrors[0]);
    extra.data_partition = Partition::Device("/dev/xvdc2".into());
    extra.cluster_partition = Partition::Device("/dev/xvdc1".into());
    obs.config.mirrors.push(extra);
    let view = journal.lock().await.view().clone();
    let p = plan(&spec, &obs, &view);
    assert!(p.has_changes(), "a backup of part of the cluster is allowed: {p:?}");
    assert!(
        p.notes.iter().any(|n| n.starts_with("warning") && n.contains("md2") && n.contains("do not cover")),
        "{:?}",
        p.notes
    );
}

#[tokio::test(start_paused = true)]
async fn a_file_in_another_group_than_the_cluster_is_refused_for_restore() {
    let lab = Lab::windows(73);
    let s2 = ServerName::parse("server2").unwrap();
    let snap = lab.world.add_snapshot(&s2, Tags::new(), SnapshotState::Completed).unwrap();
    let mut spec = with_restore(example(Os::Windows), &snap.id, "r-group", false);
    spec.mirror.group = mirrorctl::ids::GroupName::parse("other").unwrap();
    let ctx = lab.ctx();
    let journal = open_journal(&spec, &ctx).await.unwrap();
    let (_, p) = plan_once(&spec, &ctx, &journal).await.unwrap();
    let Outcome::Blocked(c) = &p.outcome else { panic!("{p:?}") };
    assert_eq!(c.reason, "md-in-other-group", "{c:?}");
}

// --- a backup of several volumes: one crash-consistent set --------------------------------------

/// A Windows lab whose servers also hold the cluster partition's own volume at `/dev/sdy` and a
/// volume the cluster does not use at `/dev/sdz`, and a file saying md's cluster partition is at
/// `/dev/sdy`.
fn split_lab(seed: u64) -> (Lab, mirrorctl::spec::Spec) {
    let mut scenario = mirrorctl::sim::Scenario::windows_runbook();
    scenario.extra_volumes = vec![dev("/dev/sdy"), dev("/dev/sdz")];
    let mut spec = with_backups(example(Os::Windows), &["b1"], 7);
    spec.mirror.cluster_device = Some(dev("/dev/sdy"));
    (Lab::new(scenario, seed), spec)
}

/// Each snapshot of a set of md's data volume (`data`, at `/dev/sdx`) and cluster-partition volume
/// (`cluster`, at `/dev/sdy`) says which it holds and where it was attached.
fn assert_identity(
    snaps: &[mirrorctl::ports::cloud::Snapshot],
    data: &mirrorctl::ids::VolumeId,
    cluster: &mirrorctl::ids::VolumeId,
) {
    use mirrorctl::ports::cloud::tag;
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    for s in snaps {
        let (holds, device) = if s.volume.as_ref() == Some(data) {
            ("md:data", "/dev/sdx")
        } else if s.volume.as_ref() == Some(cluster) {
            ("md:cluster", "/dev/sdy")
        } else {
            panic!("{} is of neither volume: {snaps:?}", s.id)
        };
        assert_eq!(s.tags.get(tag::HOLDS).map(String::as_str), Some(holds), "{s:?}");
        assert_eq!(s.tags.get(tag::DEVICE).map(String::as_str), Some(device), "{s:?}");
    }
}

/// The standby's volumes at `devices`, and the snapshots of backup `name` with their volumes.
async fn set_of(
    lab: &Lab,
    spec: &mirrorctl::spec::Spec,
    name: &str,
) -> (Vec<mirrorctl::ids::VolumeId>, Vec<mirrorctl::ports::cloud::Snapshot>) {
    use mirrorctl::ports::cloud::{SnapshotFilter, tag};
    let cloud = lab.world.ports().cloud;
    let standby = &spec.cluster.servers[1];
    let inst = cloud.describe_instances(std::slice::from_ref(&standby.instance)).await.unwrap();
    let at = |d: &str| inst[0].devices.iter().find(|(n, _)| *n == dev(d)).map(|(_, v)| v.clone()).unwrap();
    let tags: Tags = [
        (tag::CLUSTER.to_owned(), spec.cluster.name.to_string()),
        (tag::REQUEST.to_owned(), name.to_owned()),
        (tag::ROLE.to_owned(), "backup".to_owned()),
    ]
    .into();
    let snaps = cloud.describe_snapshots(&SnapshotFilter { tags, ..Default::default() }).await.unwrap();
    (vec![at("/dev/sdx"), at("/dev/sdy"), at("/dev/sdz")], snaps)
}

#[tokio::test(start_paused = true)]
async fn a_backup_of_an_md_on_two_volumes_is_one_snapshot_set_of_exactly_those() {
    use mirrorctl::plan::Action;
    use mirrorctl::ports::cloud::tag;
    use mirrorctl::reconcile::Settled;
    let (lab, spec) = split_lab(74);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let (vols, snaps) = set_of(&lab, &spec, "b1").await;
    let mut got: Vec<_> = snaps.iter().filter_map(|s| s.volume.clone()).collect();
    got.sort();
    let mut want = vols[..2].to_vec();
    want.sort();
    assert_eq!(got, want, "the data and cluster volumes of the standby, not /dev/sdz");
    assert!(snaps.iter().all(|s| s.started == snaps[0].started), "one point in time: {snaps:?}");
    assert!(snaps.iter().all(|s| s.tags.get(tag::SNAPSHOT_SET).map(String::as_str) == Some("prod-db/b1")));
    assert!(snaps.iter().all(|s| s.tags.get(tag::SET_SIZE).map(String::as_str) == Some("2")));
    let actions = lab.actions(&spec);
    let sets: Vec<_> = actions.iter().filter(|(_, a)| matches!(a, Action::CreateSnapshotSet { .. })).collect();
    assert_eq!(sets.len(), 1, "{actions:?}");
    assert!(!actions.iter().any(|(_, a)| matches!(a, Action::CreateSnapshot { .. })));
    assert_identity(&snaps, &vols[0], &vols[1]);
    let tagging: Vec<_> = actions.iter().filter(|(id, _)| id.starts_with("backup/b1/tag-member@")).collect();
    assert_eq!(tagging.len(), 2, "one CreateTags per snapshot of the set: {actions:?}");
    let data = snaps.iter().find(|s| s.volume.as_ref() == Some(&vols[0])).unwrap();
    common::assert_backup_captured(&lab.world, &data.id);

    // Retention keeps backups, not snapshots: with keep = 1 a newer backup deletes both of b1's.
    let again = with_backups(spec.clone(), &["b2"], 1);
    let mut again = again;
    again.mirror.cluster_device = spec.mirror.cluster_device.clone();
    assert_eq!(lab.apply(&again).await, Settled::Converged);
    assert_eq!(set_of(&lab, &spec, "b1").await.1.len(), 2, "b2 is still pending: b1 is the newest completed");
    mirrorctl::ports::Clock::sleep(&lab.world.clock(), std::time::Duration::from_hours(12)).await;
    // b2 leaves `take` (no longer pinned): two completed backups, keep = 1.
    let mut unpinned = with_backups(again.clone(), &[], 1);
    unpinned.mirror.cluster_device = spec.mirror.cluster_device.clone();
    assert_eq!(lab.apply(&unpinned).await, Settled::Converged);
    assert!(set_of(&lab, &spec, "b1").await.1.is_empty(), "b1's set deleted as a whole");
    assert_eq!(set_of(&lab, &spec, "b2").await.1.len(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_restore_of_an_md_on_two_volumes_is_planned_but_one_snapshot_of_its_set_alone_is_refused() {
    use mirrorctl::reconcile::Settled;
    let (lab, spec) = split_lab(75);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let (_, snaps) = set_of(&lab, &spec, "b1").await;
    let restore = with_restore(spec.clone(), &snaps[0].id, "r1", false);
    let ctx = lab.ctx();
    let journal = open_journal(&restore, &ctx).await.unwrap();
    let (_, p) = plan_once(&restore, &ctx, &journal).await.unwrap();
    // Still pending: the whole set (both snapshots) is checked, not only the one named.
    let Outcome::Blocked(c) = &p.outcome else { panic!("{p:?}") };
    assert_eq!(c.reason, "snapshot-not-completed", "{c:?}");
    drop(journal);
    mirrorctl::ports::Clock::sleep(&lab.world.clock(), std::time::Duration::from_hours(12)).await;
    let journal = open_journal(&restore, &ctx).await.unwrap();
    let (_, p) = plan_once(&restore, &ctx, &journal).await.unwrap();
    assert_eq!(p.steps().iter().map(|s| s.id.0.as_str()).collect::<Vec<_>>(), ["restore/r1/preflight"], "{p:?}");
    drop(journal);

    // A file without cluster_device restoring one snapshot of the set: refused as a partial set.
    let mut single = restore.clone();
    single.mirror.cluster_device = None;
    let journal = open_journal(&single, &ctx).await.unwrap();
    let (_, p) = plan_once(&single, &ctx, &journal).await.unwrap();
    let Outcome::Blocked(c) = &p.outcome else { panic!("{p:?}") };
    assert_eq!(c.reason, "partial-snapshot-set", "{c:?}");
    assert!(c.message.contains("one of the 2 snapshots of set prod-db/b1"), "{c:?}");
    assert!(lab.actions(&single).iter().all(|(id, _)| !id.starts_with("restore/")), "nothing of the restore ran");
}

/// A file naming md2 against a cluster that has md only: the backup is refused before any step
/// (every md of the file must be configured before the first is quiesced).
#[tokio::test(start_paused = true)]
async fn a_backup_of_several_md_one_of_which_the_cluster_lacks_is_refused_before_any_step() {
    use mirrorctl::reconcile::Settled;
    let lab = Lab::windows(76);
    let mut spec = with_backups(example(Os::Windows), &["b1"], 7);
    let mut second = spec.mirror.clone();
    second.resource = md2();
    second.device = dev("/dev/sdy");
    second.cluster_partition = Partition::Letter('S');
    second.data_partition = Partition::Letter('L');
    spec.more_mirrors.push(second);
    assert!(matches!(lab.apply(&spec).await, Settled::Blocked(_)));
    assert!(lab.actions(&spec).is_empty(), "nothing ran, not even a preflight");
}

/// A crash at every step boundary of a set backup, then a restart: always one set of two
/// snapshots, never a second `CreateSnapshots`.
#[tokio::test(start_paused = true)]
async fn a_set_backup_resumes_from_a_crash_at_every_step_boundary_without_a_second_set() {
    use mirrorctl::execute::CrashPoint;
    use mirrorctl::reconcile::Settled;
    let mut n = 1;
    loop {
        for point in [CrashPoint::BeforeIntent, CrashPoint::AfterCall] {
            let (mut lab, spec) = split_lab(80 + n as u64);
            let (_, switch) = lab.apply_with_crash(&spec, point, n).await;
            if switch.fired() {
                lab.restart();
                assert_eq!(lab.apply(&spec).await, Settled::Converged, "resume after {point:?} #{n}");
            }
            let (vols, snaps) = set_of(&lab, &spec, "b1").await;
            assert_eq!(snaps.len(), 2, "{point:?} #{n}: one set of two snapshots: {snaps:?}");
            assert_identity(&snaps, &vols[0], &vols[1]);
            if point == CrashPoint::BeforeIntent && !switch.fired() {
                assert!(n > 5, "the campaign covered the backup's steps");
                return;
            }
        }
        n += 1;
    }
}

/// The set backup through the aws-sdk-ec2 adapter on moto, with the fake Linux cluster on top:
/// md's cluster partition on `/dev/xvdc`, one `CreateSnapshots` whose two snapshots carry the
/// backup's tags and the set id (moto leaves the boot volume out; it ignores the exclusion list,
/// so the instance holds no other data volume here). Real tokio time, as the other moto flows.
#[tokio::test]
async fn a_set_backup_on_moto_makes_two_tagged_snapshots_of_the_standby() {
    use crate::support::{self, Moto, moto_world::MotoWorld};
    use mirrorctl::ports::Ports;
    use mirrorctl::ports::cloud::{Cloud, SnapshotFilter, tag};
    use mirrorctl::reconcile::{Context, Settled, reconcile};
    use std::sync::Arc;

    let moto = Moto::start();
    moto.reset();
    let sdk = moto.sdk().await;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state/app-linux.toml");
    let mut spec = mirrorctl::spec::load_file(&path).expect("example");
    spec.restore = None;
    spec.backup = with_backups(spec.clone(), &["b1"], 3).backup;
    spec.mirror.cluster_device = Some(dev("/dev/xvdc"));
    let mut cluster_volumes = Vec::new();
    for server in &mut spec.cluster.servers {
        let s = support::run_server_at(&sdk, server.zone.as_str(), 100, "/dev/xvdb").await;
        server.instance = s.instance.clone();
        let v = sdk
            .create_volume()
            .availability_zone(server.zone.as_str())
            .size(10)
            .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
            .send()
            .await
            .unwrap();
        let vol = v.volume_id().unwrap().to_owned();
        sdk.attach_volume().volume_id(&vol).instance_id(s.instance.as_str()).device("/dev/xvdc").send().await.unwrap();
        cluster_volumes.push((s.volume, mirrorctl::ids::VolumeId::parse(&vol).unwrap()));
    }
    let cloud: Arc<dyn Cloud> = Arc::new(moto.cloud().await);
    let world = MotoWorld::new(&spec, cloud.clone(), sdk);
    let dir = tempfile::tempdir().unwrap();
    let ports = Ports {
        cloud: cloud.clone(),
        cluster: world.clone(),
        node: world.clone(),
        clock: Arc::new(support::ShortWaits(20)),
    };
    let mut ctx = Context::new(ports, dir.path().join("state"));
    ctx.max_passes = Some(200);
    assert_eq!(reconcile(&spec, &ctx).await.unwrap(), Settled::Converged);

    let tags: Tags =
        [(tag::CLUSTER.to_owned(), spec.cluster.name.to_string()), (tag::REQUEST.to_owned(), "b1".to_owned())].into();
    let snaps = cloud.describe_snapshots(&SnapshotFilter { tags, ..Default::default() }).await.unwrap();
    let mut got: Vec<_> = snaps.iter().filter_map(|s| s.volume.clone()).collect();
    got.sort();
    // The standby is the second server (the group runs on the first).
    let (data, cluster) = cluster_volumes[1].clone();
    let mut want = vec![data, cluster];
    want.sort();
    assert_eq!(got, want, "{snaps:?}");
    let set_id = format!("{}/b1", spec.cluster.name);
    assert!(snaps.iter().all(|s| s.tags.get(tag::SNAPSHOT_SET) == Some(&set_id)), "{snaps:?}");
    assert_eq!(cloud.call_counts().get("ec2:CreateSnapshots"), Some(&1), "{:?}", cloud.call_counts());
    // Each snapshot says what its volume holds and where it was attached (CreateTags after the set).
    for s in &snaps {
        let md = &spec.mirror.resource;
        let (holds, device) = if s.volume.as_ref() == Some(&cluster_volumes[1].0) {
            (format!("{md}:data"), spec.mirror.device.to_string())
        } else {
            (format!("{md}:cluster"), dev("/dev/xvdc").to_string())
        };
        assert_eq!(s.tags.get(tag::HOLDS), Some(&holds), "{s:?}");
        assert_eq!(s.tags.get(tag::DEVICE), Some(&device), "{s:?}");
    }
}

/// The same set backup on Linux with NEC's pre- and post-processing (`procedure = "vendor"`).
#[tokio::test(start_paused = true)]
async fn a_linux_vendor_backup_of_an_md_on_two_volumes_is_one_snapshot_set() {
    use mirrorctl::reconcile::Settled;
    let mut scenario = mirrorctl::sim::Scenario::linux();
    scenario.extra_volumes = vec![dev("/dev/xvdc")];
    let lab = Lab::new(scenario, 77);
    let mut spec = with_backups(common::example_on(Os::Linux, mirrorctl::spec::ProcedureChoice::Vendor), &["b1"], 7);
    spec.mirror.cluster_device = Some(dev("/dev/xvdc"));
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snaps = snapshots_of(&lab, &spec, "b1").await;
    assert_eq!(snaps.len(), 2, "{snaps:?}");
    assert!(snaps.iter().all(|s| s.started == snaps[0].started), "one point in time: {snaps:?}");
    assert!(lab.actions(&spec).iter().any(|(id, _)| id == "backup/b1/backup-pre@node2"), "the vendor procedure ran");
}

/// The snapshots of backup `name`.
async fn snapshots_of(lab: &Lab, spec: &mirrorctl::spec::Spec, name: &str) -> Vec<mirrorctl::ports::cloud::Snapshot> {
    use mirrorctl::ports::cloud::{SnapshotFilter, tag};
    let tags: Tags =
        [(tag::CLUSTER.to_owned(), spec.cluster.name.to_string()), (tag::REQUEST.to_owned(), name.to_owned())].into();
    lab.world.ports().cloud.describe_snapshots(&SnapshotFilter { tags, ..Default::default() }).await.unwrap()
}

// --- a restore that names a backup (`[restore] backup = "name"`) --------------------------------

#[tokio::test(start_paused = true)]
async fn a_restore_by_backup_name_restores_the_snapshot_that_backup_took() {
    use mirrorctl::plan::Action;
    use mirrorctl::reconcile::Settled;
    let lab = Lab::windows(91);
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.accident();

    // Still pending: refused before any step, naming the snapshot.
    let restore = by_backup(spec.clone(), "b1", "r1");
    let c = blocked_on(&lab, &restore).await;
    assert_eq!(c.reason, "snapshot-not-completed", "{c:?}");
    assert!(c.message.contains(snap.as_str()) && c.message.contains("backup b1"), "{c:?}");
    // A name no backup has: refused, naming the cluster's backups.
    let c = blocked_on(&lab, &by_backup(spec.clone(), "b9", "r1")).await;
    assert_eq!(c.reason, "backup-missing", "{c:?}");
    assert!(c.message.contains("backup b9") && c.message.contains("newest backups: b1"), "{c:?}");
    assert!(lab.actions(&restore).iter().all(|(id, _)| !id.starts_with("restore/")), "nothing of the restore ran");

    mirrorctl::ports::Clock::sleep(&lab.world.clock(), std::time::Duration::from_hours(12)).await;
    let ctx = lab.ctx();
    let journal = open_journal(&restore, &ctx).await.unwrap();
    let (_, p) = plan_once(&restore, &ctx, &journal).await.unwrap();
    assert!(p.has_changes(), "{p:?}");
    assert_eq!(p.notes[0], format!("restore r1 restores backup b1: snapshot {snap}"), "{:?}", p.notes);
    drop(journal);
    assert_eq!(lab.apply(&restore).await, Settled::Converged);
    let created: Vec<_> = lab
        .actions(&restore)
        .into_iter()
        .filter_map(|(_, a)| match a {
            Action::CreateVolume { request, .. } => Some(request.snapshot),
            _ => None,
        })
        .collect();
    assert_eq!(created, [snap.clone(), snap.clone()], "one volume per server, from b1's snapshot");
    common::assert_restored(&lab.world, &snap);

    // Done: the backup may go (retention, by hand) without the file being refused.
    lab.world.ports().cloud.delete_snapshot(&snap).await.unwrap();
    assert_eq!(lab.apply(&restore).await, Settled::Converged);
}

/// A crash at every step boundary of a restore by backup name, then a restart: the resumed
/// restore resolves the same snapshot, makes one volume per server from it, and restores the data.
#[tokio::test(start_paused = true)]
async fn a_restore_by_backup_name_resumes_from_a_crash_at_every_step_boundary() {
    use mirrorctl::execute::CrashPoint;
    use mirrorctl::ports::cloud::tag;
    use mirrorctl::reconcile::Settled;
    let mut covered = 0;
    for n in 1.. {
        let mut lab = Lab::windows(300 + n as u64);
        let spec = with_backups(example(Os::Windows), &["b1"], 7);
        assert_eq!(lab.apply(&spec).await, Settled::Converged);
        let snap = lab.backup_snapshot(&spec, "b1");
        mirrorctl::ports::Clock::sleep(&lab.world.clock(), std::time::Duration::from_hours(12)).await;
        lab.world.accident();
        let restore = by_backup(spec.clone(), "b1", "r1");
        let (_, switch) = lab.apply_with_crash(&restore, CrashPoint::BeforeIntent, n).await;
        if !switch.fired() {
            break;
        }
        covered += 1;
        lab.restart();
        assert_eq!(lab.apply(&restore).await, Settled::Converged, "resume after step boundary #{n}");
        let inv = lab.world.inventory();
        let made: Vec<_> =
            inv.volumes.iter().filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some("r1")).collect();
        assert_eq!(made.len(), 2, "#{n}: one volume per server: {made:?}");
        assert!(made.iter().all(|v| v.snapshot.as_ref() == Some(&snap)), "#{n}: from b1's snapshot: {made:?}");
        common::assert_restored(&lab.world, &snap);
    }
    assert!(covered >= 15, "covered {covered}");
}

#[tokio::test(start_paused = true)]
async fn a_restore_by_backup_name_of_a_set_is_checked_against_the_files_volumes_before_any_step() {
    use mirrorctl::reconcile::Settled;
    let (lab, spec) = split_lab(92);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    mirrorctl::ports::Clock::sleep(&lab.world.clock(), std::time::Duration::from_hours(12)).await;
    let (_, snaps) = set_of(&lab, &spec, "b1").await;
    assert_eq!(snaps.len(), 2);

    // A file with one volume (no cluster_device) cannot take a set of two.
    let mut single = by_backup(spec.clone(), "b1", "r1");
    single.mirror.cluster_device = None;
    let c = blocked_on(&lab, &single).await;
    assert_eq!(c.reason, "backup-set-mismatch", "{c:?}");
    assert!(
        c.message.contains("no snapshot holds md:cluster+data")
            && snaps.iter().all(|s| c.message.contains(&format!("{} holds md:", s.id))),
        "{c:?}"
    );
    // The same number of volumes, but another md: checked by what each snapshot holds, not by count.
    let mut other = by_backup(spec.clone(), "b1", "r1");
    other.mirror.resource = md2();
    let c = blocked_on(&lab, &other).await;
    assert_eq!(c.reason, "backup-set-mismatch", "{c:?}");
    assert!(c.message.contains("no snapshot holds md2:data or md2:cluster"), "{c:?}");
    // The file of the set's shape: the set maps, and its restore begins with the preflight.
    let ctx = lab.ctx();
    let whole = by_backup(spec.clone(), "b1", "r1");
    let journal = open_journal(&whole, &ctx).await.unwrap();
    let (_, p) = plan_once(&whole, &ctx, &journal).await.unwrap();
    assert_eq!(p.steps().iter().map(|s| s.id.0.as_str()).collect::<Vec<_>>(), ["restore/r1/preflight"], "{p:?}");
    drop(journal);
    // One snapshot of the set gone: a partial set, named.
    lab.world.ports().cloud.delete_snapshot(&snaps[0].id).await.unwrap();
    let c = blocked_on(&lab, &by_backup(spec.clone(), "b1", "r1")).await;
    assert_eq!(c.reason, "partial-snapshot-set", "{c:?}");
    assert!(c.message.contains("1 of the 2 snapshots") && c.message.contains(snaps[1].id.as_str()), "{c:?}");
    assert!(lab.actions(&single).iter().all(|(id, _)| !id.starts_with("restore/")), "nothing of the restore ran");
}

/// A set taken by an older mirrorctl (one `CreateSnapshots`, the backup's tags, nothing saying what
/// each snapshot holds) is refused by name, saying what to do; nothing of the restore runs.
#[tokio::test(start_paused = true)]
async fn a_restore_by_backup_name_refuses_a_set_whose_snapshots_do_not_say_what_they_hold() {
    use mirrorctl::ports::cloud::{CreateSnapshotSet, tag};
    let (lab, spec) = split_lab(93);
    let (vols, _) = set_of(&lab, &spec, "old").await;
    let standby = &spec.cluster.servers[1];
    let tags: Tags = [
        (tag::CLUSTER.to_owned(), spec.cluster.name.to_string()),
        (tag::REQUEST.to_owned(), "old".to_owned()),
        (tag::ROLE.to_owned(), "backup".to_owned()),
        (tag::SNAPSHOT_SET.to_owned(), format!("{}/old", spec.cluster.name)),
        (tag::SET_SIZE.to_owned(), "2".to_owned()),
    ]
    .into();
    let req = CreateSnapshotSet {
        instance: standby.instance.clone(),
        volumes: vols[..2].to_vec(),
        exclude: vec![vols[2].clone()],
        description: "taken by an older mirrorctl".into(),
        tags,
    };
    lab.world.ports().cloud.create_snapshot_set(&req).await.unwrap();
    mirrorctl::ports::Clock::sleep(&lab.world.clock(), std::time::Duration::from_hours(12)).await;
    let restore = by_backup(spec.clone(), "old", "r1");
    let c = blocked_on(&lab, &restore).await;
    assert_eq!(c.reason, "backup-set-untagged", "{c:?}");
    assert!(c.message.contains("older mirrorctl") && c.message.contains(tag::HOLDS), "{c:?}");
    assert!(c.action.contains("take a new one"), "{c:?}");
    assert!(lab.actions(&restore).iter().all(|(id, _)| !id.starts_with("restore/")), "nothing of the restore ran");
}
