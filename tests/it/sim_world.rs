//! The simulated world's own contract: strict EC2 refusals, CLUSTERPRO and Windows disk rules,
//! the data oracle, persistence. All on paused tokio time, so every wait is instant.

#![allow(clippy::many_single_char_names)]

use std::sync::Arc;
use std::time::Duration;

use mirrorctl::ids::{DeviceName, GroupName, InstanceId, ResourceName, ServerName, SnapshotId, VolumeId, Zone};
use mirrorctl::ports::cloud::{
    AttachState, CreateSnapshot, CreateVolume, InstanceState, ShutdownBehavior, SnapshotFilter, SnapshotState, Tags,
    VolumeFilter, VolumeState,
};
use mirrorctl::ports::cluster::{ConfigChange, MdDefinition, MirrorColor, ObjectState};
use mirrorctl::ports::node::OfflineReason;
use mirrorctl::ports::{ErrorClass, PortError, Ports};
use mirrorctl::sim::{Fault, Scenario, SimWorld};
use mirrorctl::spec::Partition;

fn server(n: &str) -> ServerName {
    ServerName::parse(n).unwrap()
}
fn s1() -> ServerName {
    server("server1")
}
fn s2() -> ServerName {
    server("server2")
}
fn i1() -> InstanceId {
    InstanceId::parse("i-0123456789abcdef0").unwrap()
}
fn i2() -> InstanceId {
    InstanceId::parse("i-0fedcba9876543210").unwrap()
}
fn zone(z: &str) -> Zone {
    Zone::parse(z).unwrap()
}
fn dev(d: &str) -> DeviceName {
    DeviceName::parse(d).unwrap()
}
fn group() -> GroupName {
    GroupName::parse("failover").unwrap()
}
fn md() -> ResourceName {
    ResourceName::parse("md").unwrap()
}

fn windows() -> (Arc<SimWorld>, Ports) {
    let w = SimWorld::new(Scenario::windows_runbook(), 42, 1.0);
    let p = w.ports();
    (w, p)
}

async fn sleep(p: &Ports, secs: u64) {
    p.clock.sleep(Duration::from_secs(secs)).await;
}

fn code(r: Result<impl std::fmt::Debug, PortError>) -> String {
    r.expect_err("the call should fail").code
}

fn create_req(snapshot: &SnapshotId, z: &str, token: &str) -> CreateVolume {
    CreateVolume {
        zone: zone(z),
        snapshot: snapshot.clone(),
        size_gib: None,
        volume_type: "gp3".to_owned(),
        iops: None,
        throughput: None,
        kms_key: None,
        initialization_rate: None,
        client_token: token.to_owned(),
        tags: Tags::from([("mirrorctl:cluster".to_owned(), "prod-db".to_owned())]),
    }
}

/// A completed snapshot of server2's mirror volume, made through the admin API.
fn completed_snapshot(w: &SimWorld) -> SnapshotId {
    w.add_snapshot(&s2(), Tags::new(), SnapshotState::Completed).unwrap().id
}

/// Creates a volume and waits until it is available.
async fn ready_volume(p: &Ports, snap: &SnapshotId, z: &str, token: &str) -> VolumeId {
    let v = p.cloud.create_volume(&create_req(snap, z, token)).await.unwrap();
    sleep(p, 5).await;
    v.id
}

async fn attachment_state(p: &Ports, v: &VolumeId) -> Option<AttachState> {
    let vols =
        p.cloud.describe_volumes(&VolumeFilter { ids: vec![v.clone()], ..VolumeFilter::default() }).await.unwrap();
    vols[0].attachments.first().map(|a| a.state)
}

#[tokio::test(start_paused = true)]
async fn zone_mismatch_is_refused_on_attach_and_create() {
    let (w, p) = windows();
    let snap = completed_snapshot(&w);
    let v = ready_volume(&p, &snap, "ap-northeast-1a", "t1").await;
    let e = p.cloud.attach_volume(&v, &i2(), &dev("/dev/sdf")).await.unwrap_err();
    assert_eq!(e.code, "InvalidVolume.ZoneMismatch");
    assert_eq!(e.class, ErrorClass::NeedsHuman);
    assert_eq!(code(p.cloud.create_volume(&create_req(&snap, "us-east-1a", "t2")).await), "InvalidVolume.ZoneMismatch");
}

#[tokio::test(start_paused = true)]
async fn device_in_use_volume_in_use_and_incorrect_states() {
    let (w, p) = windows();
    let snap = completed_snapshot(&w);
    let v = ready_volume(&p, &snap, "ap-northeast-1a", "t1").await;
    // /dev/xvdx is /dev/sdx, taken by the mirror volume.
    let e = p.cloud.attach_volume(&v, &i1(), &dev("/dev/xvdx")).await.unwrap_err();
    assert_eq!(e.code, "InvalidParameterValue");
    assert!(e.message.contains("already in use"), "{}", e.message);
    p.cloud.attach_volume(&v, &i1(), &dev("/dev/sdf")).await.unwrap();
    assert_eq!(attachment_state(&p, &v).await, Some(AttachState::Attaching));
    assert_eq!(code(p.cloud.attach_volume(&v, &i1(), &dev("/dev/sdg")).await), "VolumeInUse");
    sleep(&p, 5).await;
    assert_eq!(attachment_state(&p, &v).await, Some(AttachState::Attached));
    // Detach from an instance it is not attached to.
    let e = p.cloud.detach_volume(&v, &i2()).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("InvalidAttachment.NotFound", ErrorClass::AlreadyDone));
    // A new Windows disk arrives offline: the detach is not busy.
    p.cloud.detach_volume(&v, &i1()).await.unwrap();
    sleep(&p, 5).await;
    assert_eq!(attachment_state(&p, &v).await, None);
    assert_eq!(code(p.cloud.detach_volume(&v, &i1()).await), "IncorrectState");
    // Attaching a volume that is still creating.
    let creating = p.cloud.create_volume(&create_req(&snap, "ap-northeast-1a", "t3")).await.unwrap();
    assert_eq!(creating.state, VolumeState::Creating);
    p.clock.sleep(Duration::from_millis(1500)).await;
    assert_eq!(code(p.cloud.attach_volume(&creating.id, &i1(), &dev("/dev/sdh")).await), "IncorrectState");
    // Unknown ids.
    let ghost = VolumeId::parse("vol-0000000000000dead").unwrap();
    assert_eq!(code(p.cloud.attach_volume(&ghost, &i1(), &dev("/dev/sdh")).await), "InvalidVolume.NotFound");
    let nobody = InstanceId::parse("i-00000000000000000").unwrap();
    assert_eq!(code(p.cloud.attach_volume(&v, &nobody, &dev("/dev/sdh")).await), "InvalidInstanceID.NotFound");
    assert_eq!(code(p.cloud.start_instance(&i1()).await), "IncorrectInstanceState");
    // A requested size below the snapshot's, and a pending snapshot.
    let mut small = create_req(&snap, "ap-northeast-1a", "t4");
    small.size_gib = Some(10);
    assert_eq!(code(p.cloud.create_volume(&small).await), "InvalidParameterValue");
    let pending = w.add_snapshot(&s2(), Tags::new(), SnapshotState::Pending).unwrap().id;
    assert_eq!(code(p.cloud.create_volume(&create_req(&pending, "ap-northeast-1a", "t5")).await), "IncorrectState");
}

#[tokio::test(start_paused = true)]
async fn client_token_returns_the_same_volume_or_mismatch() {
    let (w, p) = windows();
    let snap = completed_snapshot(&w);
    let req = create_req(&snap, "ap-northeast-1c", "restore-x-server2");
    let a = p.cloud.create_volume(&req).await.unwrap();
    let b = p.cloud.create_volume(&req).await.unwrap();
    assert_eq!(a.id, b.id);
    let mut other = req.clone();
    other.zone = zone("ap-northeast-1a");
    let e = p.cloud.create_volume(&other).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("IdempotentParameterMismatch", ErrorClass::NeedsHuman));
    let made = w.inventory().volumes.iter().filter(|v| v.snapshot.as_ref() == Some(&snap)).count();
    assert_eq!(made, 1);
    assert_eq!(w.inventory().deleted_volumes, 0);
}

#[tokio::test(start_paused = true)]
async fn new_volumes_and_snapshots_are_not_found_for_a_moment() {
    let (w, p) = windows();
    let snap = completed_snapshot(&w);
    let v = p.cloud.create_volume(&create_req(&snap, "ap-northeast-1a", "t")).await.unwrap();
    let by_id = VolumeFilter { ids: vec![v.id.clone()], ..VolumeFilter::default() };
    let e = p.cloud.describe_volumes(&by_id).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("InvalidVolume.NotFound", ErrorClass::Retryable));
    let by_tag = VolumeFilter { tags: req_tags(), ..VolumeFilter::default() };
    assert!(p.cloud.describe_volumes(&by_tag).await.unwrap().is_empty());
    sleep(&p, 1).await;
    assert_eq!(p.cloud.describe_volumes(&by_id).await.unwrap()[0].id, v.id);
    assert_eq!(p.cloud.describe_volumes(&by_tag).await.unwrap().len(), 1);

    let vol2 = w.mirror_volume(&s2()).unwrap();
    let req = CreateSnapshot { volume: vol2, description: "b".to_owned(), tags: req_tags() };
    let s = p.cloud.create_snapshot(&req).await.unwrap();
    let filter = SnapshotFilter { ids: vec![s.id.clone()], ..SnapshotFilter::default() };
    assert_eq!(code(p.cloud.describe_snapshots(&filter).await), "InvalidSnapshot.NotFound");
    w.set_consistency_window(Duration::ZERO);
    let v2 = p.cloud.create_volume(&create_req(&snap, "ap-northeast-1a", "t2")).await.unwrap();
    assert!(p.cloud.describe_volumes(&VolumeFilter { ids: vec![v2.id], ..VolumeFilter::default() }).await.is_ok());
}

fn req_tags() -> Tags {
    Tags::from([("mirrorctl:cluster".to_owned(), "prod-db".to_owned())])
}

#[tokio::test(start_paused = true)]
async fn snapshots_complete_with_progress_and_are_limited_per_volume() {
    let (w, p) = windows();
    let vol = w.mirror_volume(&s2()).unwrap();
    let req = CreateSnapshot { volume: vol.clone(), description: String::new(), tags: Tags::new() };
    let first = p.cloud.create_snapshot(&req).await.unwrap();
    assert_eq!((first.state, first.volume.as_ref()), (SnapshotState::Pending, Some(&vol)));
    for _ in 0..4 {
        p.cloud.create_snapshot(&req).await.unwrap();
    }
    let e = p.cloud.create_snapshot(&req).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("ConcurrentSnapshotLimitExceeded", ErrorClass::Retryable));
    sleep(&p, 100).await;
    let mid = p.cloud.describe_snapshots(&SnapshotFilter { ids: vec![first.id.clone()], ..Default::default() }).await;
    let mid = &mid.unwrap()[0];
    assert_eq!(mid.state, SnapshotState::Pending);
    assert!(mid.progress > 20 && mid.progress < 70, "progress {}", mid.progress);
    sleep(&p, 300).await;
    let done = p.cloud.describe_snapshots(&SnapshotFilter { volume: Some(vol), ..Default::default() }).await.unwrap();
    assert!(done.iter().all(|s| s.state == SnapshotState::Completed && s.progress == 100));
    p.cloud.delete_snapshot(&first.id).await.unwrap();
    assert_eq!(code(p.cloud.delete_snapshot(&first.id).await), "InvalidSnapshot.NotFound");
    assert_eq!(w.inventory().deleted_snapshots, 1);
}

#[tokio::test(start_paused = true)]
async fn throttling_refuses_then_refills() {
    let mut sc = Scenario::windows_runbook();
    sc.latency.ec2_api_s = 0.0;
    let w = SimWorld::new(sc, 1, 1.0);
    let p = w.ports();
    for _ in 0..100 {
        p.cloud.describe_instances(&[i1()]).await.unwrap();
    }
    let e = p.cloud.describe_instances(&[i1()]).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("RequestLimitExceeded", ErrorClass::Throttled));
    // The mutating bucket is separate.
    assert_eq!(code(p.cloud.start_instance(&i1()).await), "IncorrectInstanceState");
    sleep(&p, 1).await;
    for _ in 0..20 {
        p.cloud.describe_instances(&[i1()]).await.unwrap();
    }
    assert!(p.cloud.describe_instances(&[i1()]).await.is_err());
    let counts = w.call_counts();
    assert_eq!(counts["ec2:DescribeInstances"], 122);
    assert_eq!(counts["throttled:ec2:DescribeInstances"], 2);
}

#[tokio::test(start_paused = true)]
async fn detach_stays_busy_while_the_windows_disk_is_online() {
    let (w, p) = windows();
    let vol = w.mirror_volume(&s2()).unwrap();
    p.cloud.detach_volume(&vol, &i2()).await.unwrap();
    sleep(&p, 30).await;
    assert_eq!(attachment_state(&p, &vol).await, Some(AttachState::Busy));
    p.node.set_offline(&s2(), &vol).await.unwrap();
    assert_eq!(attachment_state(&p, &vol).await, Some(AttachState::Detaching));
    sleep(&p, 5).await;
    assert_eq!(attachment_state(&p, &vol).await, None);
    assert!(p.node.disks(&s2()).await.unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn detach_goes_busy_when_someone_brings_the_disk_back_online() {
    let (w, p) = windows();
    let vol = w.mirror_volume(&s2()).unwrap();
    p.node.set_offline(&s2(), &vol).await.unwrap();
    w.inject(Fault::DiskOnline { server: s2(), volume: vol.clone() }).unwrap();
    p.cloud.detach_volume(&vol, &i2()).await.unwrap();
    assert_eq!(attachment_state(&p, &vol).await, Some(AttachState::Busy));
}

/// Replaces `server`'s mirror volume by `new` the runbook's way (offline, detach, attach, online).
async fn swap_disk(w: &SimWorld, p: &Ports, server: &ServerName, instance: &InstanceId, new: &VolumeId) {
    let old = w.mirror_volume(server).unwrap();
    p.node.set_offline(server, &old).await.unwrap();
    p.cloud.detach_volume(&old, instance).await.unwrap();
    sleep(p, 5).await;
    p.cloud.attach_volume(new, instance, &dev("/dev/sdx")).await.unwrap();
    sleep(p, 5).await;
    let disk = p.node.disks(server).await.unwrap().into_iter().find(|d| &d.volume == new).unwrap();
    assert!(!disk.online && disk.read_only);
    assert_eq!(disk.offline_reason, Some(OfflineReason::Policy));
    p.node.set_online(server, new).await.unwrap();
}

fn letters(disks: &[mirrorctl::ports::node::Disk], v: &VolumeId) -> Vec<Option<char>> {
    disks.iter().find(|d| &d.volume == v).unwrap().partitions.iter().map(|p| p.letter).collect()
}

#[tokio::test(start_paused = true)]
async fn copy_of_the_other_disk_gets_new_letters_and_own_copy_gets_its_letters_back() {
    let (w, p) = windows();
    let snap = completed_snapshot(&w); // server2's disk
    let a = ready_volume(&p, &snap, "ap-northeast-1a", "a").await;
    let c = ready_volume(&p, &snap, "ap-northeast-1c", "c").await;
    swap_disk(&w, &p, &s1(), &i1(), &a).await;
    swap_disk(&w, &p, &s2(), &i2(), &c).await;
    assert_eq!(letters(&p.node.disks(&s1()).await.unwrap(), &a), vec![Some('D'), Some('E')]);
    assert_eq!(letters(&p.node.disks(&s2()).await.unwrap(), &c), vec![Some('R'), Some('M')]);
    assert_eq!(code(p.node.set_letter(&s1(), &a, 1, 'E').await), "LetterInUse");
    p.node.set_letter(&s1(), &a, 1, 'R').await.unwrap();
    p.node.set_letter(&s1(), &a, 2, 'M').await.unwrap();
    assert_eq!(letters(&p.node.disks(&s1()).await.unwrap(), &a), vec![Some('R'), Some('M')]);
}

#[tokio::test(start_paused = true)]
async fn same_signature_as_an_online_disk_is_a_collision() {
    let (w, p) = windows();
    let snap = completed_snapshot(&w);
    let copy = ready_volume(&p, &snap, "ap-northeast-1c", "c").await;
    p.cloud.attach_volume(&copy, &i2(), &dev("/dev/sdy")).await.unwrap();
    sleep(&p, 5).await;
    let e = p.node.set_online(&s2(), &copy).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("SignatureCollision", ErrorClass::NeedsHuman));
    let disk = p.node.disks(&s2()).await.unwrap().into_iter().find(|d| d.volume == copy).unwrap();
    assert_eq!((disk.online, disk.offline_reason), (false, Some(OfflineReason::Collision)));
}

#[tokio::test(start_paused = true)]
async fn node_commands_fail_while_the_instance_is_down() {
    let (w, p) = windows();
    p.cluster.shutdown_server(&s2()).await.unwrap();
    let vol = w.mirror_volume(&s2()).unwrap();
    let e = p.node.set_offline(&s2(), &vol).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("NodeUnreachable", ErrorClass::Retryable));
}

/// The runbook's backup, by hand through the ports. Returns the snapshot.
async fn backup_by_hand(w: &SimWorld, p: &Ports) -> SnapshotId {
    sleep(p, 60).await; // business writes happen
    p.cluster.stop_resource(&md()).await.unwrap();
    let status = p.cluster.status().await.unwrap();
    let business = w.scenario().business;
    assert_eq!(status.resources[&business].state, ObjectState::Offline, "md's dependent stopped with it");
    assert_eq!(status.groups[&group()].state, ObjectState::Online, "the virtual IP keeps the group online");
    assert!(p.cluster.mirror_status(&md()).await.unwrap().healthy());
    p.cluster.shutdown_server(&s2()).await.unwrap();
    let e = p.cluster.start_group(&group(), &s1()).await.unwrap_err();
    assert_eq!(e.code, "GroupAlreadyStarted", "a partly online group reads as started");
    // md first, then its dependent (which would bring md along too).
    p.cluster.start_resource(&md(), &s1()).await.unwrap();
    p.cluster.start_resource(&business, &s1()).await.unwrap();
    let vol2 = w.mirror_volume(&s2()).unwrap();
    let snap = p
        .cloud
        .create_snapshot(&CreateSnapshot { volume: vol2, description: "backup".to_owned(), tags: Tags::new() })
        .await
        .unwrap();
    sleep(p, 60).await; // the standby stops; writes continue on the active
    let colors = p.cluster.mirror_status(&md()).await.unwrap().colors;
    assert_eq!((colors[&s1()], colors[&s2()]), (MirrorColor::Green, MirrorColor::Red));
    p.cloud.start_instance(&i2()).await.unwrap();
    // Running first (about 25 s), joined later (about 15 s more): look each second.
    for _ in 0..60 {
        sleep(p, 1).await;
        if p.cloud.describe_instances(&[i2()]).await.unwrap()[0].state == InstanceState::Running {
            break;
        }
    }
    let inst = p.cloud.describe_instances(&[i2()]).await.unwrap();
    assert_eq!(inst[0].state, InstanceState::Running);
    assert!(!p.cluster.status().await.unwrap().servers[&s2()], "not joined yet");
    // Joins, recovers (YELLOW), then GREEN.
    let mut seen = Vec::new();
    for _ in 0..120 {
        let colors = p.cluster.mirror_status(&md()).await.unwrap();
        seen.push(colors.colors[&s2()]);
        if colors.healthy() {
            break;
        }
        p.clock.sleep(Duration::from_millis(500)).await;
    }
    assert!(seen.contains(&MirrorColor::Yellow), "{seen:?}");
    assert_eq!(seen.last(), Some(&MirrorColor::Green));
    snap.id
}

#[tokio::test(start_paused = true)]
async fn backup_by_hand_captures_the_quiesce_point_and_the_mirror_recovers() {
    let (w, p) = windows();
    let snap = backup_by_hand(&w, &p).await;
    let r = w.oracle_report();
    let quiesce = r.last_quiesce.clone().unwrap();
    assert_eq!(quiesce.server, s1());
    assert_eq!(r.snapshots[&snap], quiesce.content);
    assert!(r.writes > quiesce.content.version, "business went on after the snapshot");
    assert_eq!(r.servers[&s1()], r.servers[&s2()], "the standby caught up");
    assert!(r.corruptions.is_empty());
    let status = p.cluster.status().await.unwrap();
    assert_eq!(status.groups[&group()].current, Some(s1()));
    assert!(status.servers.values().all(|m| *m));
}

fn md_def(initial_copy: bool) -> MdDefinition {
    MdDefinition {
        resource: md(),
        group: group(),
        data_partition: Partition::Letter('M'),
        cluster_partition: Partition::Letter('R'),
        initial_copy,
    }
}

/// The runbook's restore by hand; `both` = restore both servers (else only server2).
async fn restore_by_hand(w: &SimWorld, p: &Ports, snap: &SnapshotId, both: bool) {
    sleep(p, 400).await; // the snapshot completes
    p.cluster.stop_group(&group()).await.unwrap();
    p.cluster
        .apply_config(&[
            ConfigChange::RemoveMirror { resource: md() },
            ConfigChange::SetGroupAutoStart { group: group(), auto: false },
        ])
        .await
        .unwrap();
    assert_eq!(code(p.cluster.mirror_status(&md()).await), "ResourceNotFound");
    let c = ready_volume(p, snap, "ap-northeast-1c", "restore-server2").await;
    swap_disk(w, p, &s2(), &i2(), &c).await;
    if both {
        let a = ready_volume(p, snap, "ap-northeast-1a", "restore-server1").await;
        swap_disk(w, p, &s1(), &i1(), &a).await;
        p.node.set_letter(&s1(), &a, 1, 'R').await.unwrap();
        p.node.set_letter(&s1(), &a, 2, 'M').await.unwrap();
    }
    p.cluster
        .apply_config(&[
            ConfigChange::AddMirror(md_def(false)),
            ConfigChange::SetGroupAutoStart { group: group(), auto: true },
        ])
        .await
        .unwrap();
    p.cluster.start_group(&group(), &s1()).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn restore_both_sides_from_the_snapshot_without_initial_copy_is_clean() {
    let (w, p) = windows();
    let snap = backup_by_hand(&w, &p).await;
    sleep(&p, 30).await;
    let bad = w.accident().unwrap();
    sleep(&p, 5).await;
    let before = w.oracle_report();
    assert!(w.contains_accident(before.servers[&s2()].unwrap()), "the accident was mirrored");
    assert!(w.contains_accident(bad));
    restore_by_hand(&w, &p, &snap, true).await;
    assert!(p.cluster.mirror_status(&md()).await.unwrap().healthy());
    sleep(&p, 10).await;
    let r = w.oracle_report();
    assert!(r.corruptions.is_empty(), "{:?}", r.corruptions);
    let (c1, c2) = (r.servers[&s1()].unwrap(), r.servers[&s2()].unwrap());
    assert_eq!(c1, c2);
    assert!(!w.contains_accident(c1));
    assert_ne!(c1.lineage, r.snapshots[&snap].lineage, "writes on the restored copy fork a lineage");
    // Failover works.
    p.cluster.move_group(&group(), &s2()).await.unwrap();
    assert_eq!(p.cluster.status().await.unwrap().groups[&group()].current, Some(s2()));
    let cfg = p.cluster.config().await.unwrap();
    assert_eq!(cfg.mirror(&md()).map(|m| m.initial_copy), Some(false));
    assert!(cfg.group_auto_start[&group()]);
    // Nothing was deleted; the old volumes are still there.
    assert_eq!(w.inventory().volumes.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn restore_of_one_side_without_initial_copy_is_flagged_as_corruption() {
    let (w, p) = windows();
    let snap = backup_by_hand(&w, &p).await;
    restore_by_hand(&w, &p, &snap, false).await;
    let r = w.oracle_report();
    assert_eq!(r.corruptions.len(), 1, "{:?}", r.corruptions);
    assert!(r.corruptions[0].contains("without initial copy"));
}

#[tokio::test(start_paused = true)]
async fn cluster_rules_refuse_unsafe_operations() {
    let (w, p) = windows();
    // md's configuration cannot change while the group is online.
    let e = p.cluster.apply_config(&[ConfigChange::RemoveMirror { resource: md() }]).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("GroupOnline", ErrorClass::NeedsHuman));
    // The server where the group runs is not shut down.
    assert_eq!(code(p.cluster.shutdown_server(&s1()).await), "GroupOnline");
    assert_eq!(code(p.cluster.start_group(&group(), &s1()).await), "GroupAlreadyStarted");
    p.cluster.stop_group(&group()).await.unwrap();
    // Every server must be a member to push a configuration.
    p.cluster.shutdown_server(&s2()).await.unwrap();
    let e = p.cluster.apply_config(&[ConfigChange::SetGroupAutoStart { group: group(), auto: false }]).await;
    assert_eq!(e.unwrap_err().class, ErrorClass::Retryable);
    // A group cannot start on a server that is down.
    let e = p.cluster.start_group(&group(), &s2()).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("GroupStartFailed", ErrorClass::NeedsHuman));
    let status = p.cluster.status().await.unwrap();
    assert_eq!(status.resources[&md()].state, ObjectState::OnlineFailure);
    p.cluster.stop_group(&group()).await.unwrap();
    sleep(&p, 40).await;
    p.cloud.start_instance(&i2()).await.unwrap();
    sleep(&p, 60).await;
    // AddMirror needs the partitions on every server.
    p.cluster.apply_config(&[ConfigChange::RemoveMirror { resource: md() }]).await.unwrap();
    let mut wrong = md_def(true);
    wrong.data_partition = Partition::Letter('Q');
    let e = p.cluster.apply_config(&[ConfigChange::AddMirror(wrong)]).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("PartitionNotFound", ErrorClass::NeedsHuman));
    // Removing twice is fine.
    p.cluster.apply_config(&[ConfigChange::RemoveMirror { resource: md() }]).await.unwrap();
    // With initial copy, the first start copies everything to the other side.
    p.cluster.apply_config(&[ConfigChange::AddMirror(md_def(true))]).await.unwrap();
    p.cluster.start_group(&group(), &s1()).await.unwrap();
    let colors = p.cluster.mirror_status(&md()).await.unwrap().colors;
    assert_eq!((colors[&s1()], colors[&s2()]), (MirrorColor::Green, MirrorColor::Yellow));
    sleep(&p, 260).await;
    assert!(p.cluster.mirror_status(&md()).await.unwrap().healthy());
    let r = w.oracle_report();
    assert_eq!(r.servers[&s1()], r.servers[&s2()]);
}

#[tokio::test(start_paused = true)]
async fn terminate_on_shutdown_destroys_the_instance_but_not_its_volume() {
    let (w, p) = windows();
    w.set_shutdown_behavior(&i2(), ShutdownBehavior::Terminate).unwrap();
    assert_eq!(p.cloud.shutdown_behavior(&i2()).await.unwrap(), ShutdownBehavior::Terminate);
    let vol = w.mirror_volume(&s2()).unwrap();
    p.cluster.shutdown_server(&s2()).await.unwrap();
    sleep(&p, 60).await;
    assert_eq!(p.cloud.describe_instances(&[i2()]).await.unwrap()[0].state, InstanceState::Terminated);
    let v = p.cloud.describe_volumes(&VolumeFilter { ids: vec![vol.clone()], ..Default::default() }).await.unwrap();
    assert_eq!(v[0].state, VolumeState::Available);
    assert_eq!(code(p.cloud.attach_volume(&vol, &i2(), &dev("/dev/sdx")).await), "IncorrectInstanceState");
}

#[tokio::test(start_paused = true)]
async fn injected_failures_and_lost_responses() {
    let (w, p) = windows();
    let snap = completed_snapshot(&w);
    w.inject(Fault::fail_next("ec2:CreateVolume", "InternalError", 2)).unwrap();
    let req = create_req(&snap, "ap-northeast-1a", "tok");
    for _ in 0..2 {
        let e = p.cloud.create_volume(&req).await.unwrap_err();
        assert_eq!((e.code.as_str(), e.class), ("InternalError", ErrorClass::Retryable));
    }
    assert!(w.inventory().volumes.len() == 2, "failed calls had no effect");
    w.inject(Fault::LoseResponse { op: "ec2:CreateVolume".to_owned(), count: 1 }).unwrap();
    assert_eq!(code(p.cloud.create_volume(&req).await), "RequestTimeout");
    assert_eq!(w.inventory().volumes.len(), 3, "the lost call took effect");
    let again = p.cloud.create_volume(&req).await.unwrap();
    assert_eq!(w.inventory().volumes.len(), 3, "the retry with the same token found it");
    assert_eq!(w.call_counts()["ec2:CreateVolume"], 4);
    // A stray volume takes the device slot.
    sleep(&p, 5).await;
    w.inject(Fault::StrayAttach { server: s1(), device: dev("/dev/sdf") }).unwrap();
    assert_eq!(code(p.cloud.attach_volume(&again.id, &i1(), &dev("/dev/sdf")).await), "InvalidParameterValue");
    assert!(w.timeline().iter().any(|(_, t)| t.contains("stray volume")));
}

#[tokio::test(start_paused = true)]
async fn linux_mounted_partition_blocks_offline_and_detach() {
    let w = SimWorld::new(Scenario::linux(), 7, 1.0);
    let p = w.ports();
    let n2 = server("node2");
    let i = InstanceId::parse("i-0bbbbbbbbbbbbbbbb").unwrap();
    let vol = w.mirror_volume(&n2).unwrap();
    let disks = p.node.disks(&n2).await.unwrap();
    let paths: Vec<_> = disks[0].partitions.iter().map(|p| p.path.clone().unwrap()).collect();
    assert_eq!(paths, vec!["/dev/xvdb1", "/dev/xvdb2"]);
    assert!(disks[0].online);
    w.inject(Fault::Mount { server: n2.clone(), volume: vol.clone(), number: 2 }).unwrap();
    assert_eq!(code(p.node.set_offline(&n2, &vol).await), "Mounted");
    p.cloud.detach_volume(&vol, &i).await.unwrap();
    sleep(&p, 10).await;
    assert_eq!(attachment_state(&p, &vol).await, Some(AttachState::Busy));
    w.inject(Fault::Unmount { server: n2.clone(), volume: vol.clone(), number: 2 }).unwrap();
    sleep(&p, 5).await;
    assert_eq!(attachment_state(&p, &vol).await, None);
    assert_eq!(code(p.node.set_letter(&n2, &vol, 1, 'R').await), "NotSupported");
}

#[tokio::test(start_paused = true)]
async fn persisted_world_round_trips_and_continues() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.json");
    let (w, p) = windows();
    w.persist_to(&path).unwrap();
    let snap = completed_snapshot(&w);
    let v = p.cloud.create_volume(&create_req(&snap, "ap-northeast-1a", "t")).await.unwrap();
    let before = w.inventory();
    let report = w.oracle_report();
    // Pretend the process died and was away for 10 s of wall time.
    let mut doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    let wall: jiff::Timestamp = doc["saved_wall"].as_str().unwrap().parse().unwrap();
    doc["saved_wall"] = serde_json::Value::String((wall - jiff::SignedDuration::from_secs(10)).to_string());
    std::fs::write(&path, serde_json::to_vec(&doc).unwrap()).unwrap();
    let reopened = SimWorld::open(&path, 1.0).unwrap();
    let after = reopened.inventory();
    assert_eq!(after.snapshots, before.snapshots);
    let vol = after.volumes.iter().find(|x| x.id == v.id).unwrap();
    assert_eq!(vol.state, VolumeState::Available, "the create finished while the process was down");
    assert_eq!(reopened.call_counts(), w.call_counts());
    assert_eq!(reopened.oracle_report().snapshots, report.snapshots);
    assert!(reopened.oracle_report().writes >= report.writes + 9, "business went on while we were away");
    assert!(reopened.now() >= w.now() + jiff::SignedDuration::from_secs(9));
    // And it keeps persisting.
    let p2 = reopened.ports();
    p2.cloud.create_volume(&create_req(&snap, "ap-northeast-1c", "t2")).await.unwrap();
    let third = SimWorld::open(&path, 1.0).unwrap();
    assert_eq!(third.inventory().volumes.len(), 4);
}

#[tokio::test(start_paused = true)]
async fn same_seed_same_world() {
    let run = |seed| async move {
        let w = SimWorld::new(Scenario::windows_runbook(), seed, 1.0);
        let p = w.ports();
        let snap = completed_snapshot(&w);
        let v = p.cloud.create_volume(&create_req(&snap, "ap-northeast-1a", "t")).await.unwrap();
        (v.id, w.timeline())
    };
    let (a, ta) = run(5).await;
    let (b, tb) = run(5).await;
    let (c, _) = run(6).await;
    assert_eq!(a, b);
    assert_eq!(ta.iter().map(|x| &x.1).collect::<Vec<_>>(), tb.iter().map(|x| &x.1).collect::<Vec<_>>());
    assert_ne!(a, c);
}

#[tokio::test(start_paused = true)]
async fn an_abandoned_cluster_operation_still_completes() {
    let (_w, p) = windows();
    p.cluster.stop_group(&group()).await.unwrap();
    let gave_up = tokio::time::timeout(Duration::from_secs(1), p.cluster.start_group(&group(), &s1())).await;
    assert!(gave_up.is_err(), "the caller stopped waiting");
    assert_eq!(p.cluster.status().await.unwrap().groups[&group()].state, ObjectState::OnlinePending);
    assert_eq!(code(p.cluster.stop_group(&group()).await), "GroupBusy");
    sleep(&p, 15).await;
    let status = p.cluster.status().await.unwrap();
    assert_eq!(status.groups[&group()].state, ObjectState::Online);
    assert_eq!(status.groups[&group()].current, Some(s1()));
}

#[tokio::test(start_paused = true)]
async fn open_or_create_creates_once_then_reopens() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("lab.json");
    let a = SimWorld::open_or_create(&path, Scenario::windows_runbook(), 3, 1.0).unwrap();
    let vol = a.mirror_volume(&s1()).unwrap();
    let b = SimWorld::open_or_create(&path, Scenario::linux(), 99, 1.0).unwrap();
    assert_eq!(b.mirror_volume(&s1()), Some(vol));
    assert_eq!(b.scenario().cluster.as_str(), "prod-db");
}
