//! The restore of a snapshot set: a backup of several volumes restored by name, one new volume per
//! snapshot of the set on each server, attached at the device of the volume it was taken of; and
//! what such a restore refuses before any step.

use crate::support::common;

use common::{Lab, blocked_on, by_backup, dev, example, with_backups, with_restore};
use mirrorctl::ids::DeviceName;
use mirrorctl::plan::Action;
use mirrorctl::ports::Clock;
use mirrorctl::ports::cloud::{Snapshot, SnapshotFilter, Tags, tag};
use mirrorctl::reconcile::{Settled, open_journal, plan_once};
use mirrorctl::spec::{Os, ProcedureChoice, Spec};

/// A Windows lab whose servers also hold md's cluster partition volume at `/dev/sdy` (and a
/// volume the cluster does not use at `/dev/sdz`), a file saying so, and backup `b1` taken and
/// completed.
async fn split_backup(seed: u64) -> (Lab, Spec) {
    let mut scenario = mirrorctl::sim::Scenario::windows_runbook();
    scenario.cluster_device = Some(dev("/dev/sdy"));
    scenario.extra_volumes = vec![dev("/dev/sdz")];
    let mut spec = with_backups(example(Os::Windows), &["b1"], 7);
    spec.mirror.cluster_device = Some(dev("/dev/sdy"));
    let lab = Lab::new(scenario, seed);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    Clock::sleep(&lab.world.clock(), std::time::Duration::from_hours(12)).await;
    (lab, spec)
}

/// The snapshots of backup `name`.
async fn snapshots_of(lab: &Lab, spec: &Spec, name: &str) -> Vec<Snapshot> {
    let tags: Tags = [
        (tag::CLUSTER.to_owned(), spec.cluster.name.to_string()),
        (tag::REQUEST.to_owned(), name.to_owned()),
        (tag::ROLE.to_owned(), "backup".to_owned()),
    ]
    .into();
    lab.world.ports().cloud.describe_snapshots(&SnapshotFilter { tags, ..Default::default() }).await.unwrap()
}

/// The next pass of `spec`.
async fn next_pass(lab: &Lab, spec: &Spec) -> mirrorctl::plan::Plan {
    let ctx = lab.ctx();
    let journal = open_journal(spec, &ctx).await.unwrap();
    plan_once(spec, &ctx, &journal).await.unwrap().1
}

fn no_restore_step(lab: &Lab, spec: &Spec) {
    let ran: Vec<String> =
        lab.actions(spec).into_iter().map(|(id, _)| id).filter(|id| id.starts_with("restore/")).collect();
    assert!(ran.is_empty(), "nothing of the restore ran: {ran:?}");
}

/// The md on two volumes restored by backup name: each server gets one new volume per snapshot of
/// the set, made from the snapshot of what that device holds, attached at that device, and each
/// old volume is superseded (never deleted) by its own replacement. Before this was built the
/// restore was refused before any step (`several-volumes-not-supported`).
#[tokio::test(start_paused = true)]
async fn a_set_restore_makes_one_volume_per_snapshot_at_the_device_it_was_taken_of() {
    let (lab, spec) = split_backup(101).await;
    let snaps = snapshots_of(&lab, &spec, "b1").await;
    let holding = |h: &str| snaps.iter().find(|s| s.tags.get(tag::HOLDS).map(String::as_str) == Some(h)).unwrap();
    let (data, cluster) = (holding("md:data").id.clone(), holding("md:cluster").id.clone());
    lab.world.accident();
    let restore = by_backup(spec.clone(), "b1", "r1");
    let settled = lab.apply(&restore).await;
    let actions = lab.actions(&restore);

    let mut created: Vec<(String, String, String)> = actions
        .iter()
        .filter_map(|(id, a)| match a {
            Action::CreateVolume { request, .. } => Some((
                id.clone(),
                request.snapshot.to_string(),
                request.tags.get(tag::DEVICE).cloned().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect();
    created.sort();
    let want = |server: &str, d: &str, snap: &mirrorctl::ids::SnapshotId| {
        (format!("restore/r1/create-volume@{server}/{d}"), snap.to_string(), format!("/dev/{d}"))
    };
    assert_eq!(
        created,
        [
            want("server1", "sdx", &data),
            want("server1", "sdy", &cluster),
            want("server2", "sdx", &data),
            want("server2", "sdy", &cluster)
        ],
        "{settled:?}"
    );
    let inv = lab.world.inventory();
    for (id, a) in &actions {
        if let Action::AttachVolume { volume, device, .. } = a {
            let v = inv.volumes.iter().find(|v| &v.id == volume).unwrap();
            assert_eq!(
                v.tags.get(tag::DEVICE).and_then(|d| DeviceName::parse(d).ok()).as_ref(),
                Some(device),
                "{id}: {v:?}"
            );
        }
    }
    let attached: Vec<&String> =
        actions.iter().filter(|(_, a)| matches!(a, Action::AttachVolume { .. })).map(|(id, _)| id).collect();
    assert_eq!(attached.len(), 4, "{attached:?} {settled:?}");
    let superseded: Vec<_> = inv.volumes.iter().filter(|v| v.tags.contains_key(tag::SUPERSEDED_BY)).collect();
    assert_eq!(superseded.len(), 4, "each old volume kept and superseded: {superseded:?}");
    for old in &superseded {
        let new = inv.volumes.iter().find(|v| Some(&v.id.to_string()) == old.tags.get(tag::SUPERSEDED_BY)).unwrap();
        assert_eq!(new.tags.get(tag::REQUEST).map(String::as_str), Some("r1"), "{old:?} → {new:?}");
    }
    assert_eq!(settled, Settled::Converged);
    common::assert_restored(&lab.world, &data);
}

/// What a restore of several volumes refuses before any step, each naming what is wrong: a
/// snapshot of one volume, NEC's processing, Fast Snapshot Restore, a snapshot taken at another
/// device than the file puts its partitions at. `auto` takes the configuration edit instead of
/// NEC's processing.
#[tokio::test(start_paused = true)]
async fn a_set_restore_is_refused_before_any_step_when_it_cannot_be_driven() {
    let (lab, spec) = split_backup(102).await;
    let snaps = snapshots_of(&lab, &spec, "b1").await;
    let restore = by_backup(spec.clone(), "b1", "r1");

    let mut vendor = restore.clone();
    vendor.cluster.procedure = ProcedureChoice::Vendor;
    let c = blocked_on(&lab, &vendor).await;
    assert_eq!(c.reason, "vendor-set-restore-not-supported", "{c:?}");
    assert!(c.message.contains("/dev/sdx, /dev/sdy") && c.action.contains("reconfigure"), "{c:?}");

    let mut auto = restore.clone();
    auto.cluster.procedure = ProcedureChoice::Auto;
    let p = next_pass(&lab, &auto).await;
    let [step] = p.steps() else { panic!("{p:?}") };
    let Action::Preflight { request, .. } = &step.action else { panic!("{step:?}") };
    assert_eq!(request.procedure, mirrorctl::ports::cluster::Procedure::Reconfigure, "{p:?}");
    assert!(p.notes.iter().any(|n| n.contains("configuration edit")), "{:?}", p.notes);
    assert_eq!(request.pushes.len(), 2);

    let mut fsr = restore.clone();
    fsr.mirror.volume.fast_restore = true;
    let c = blocked_on(&lab, &fsr).await;
    assert_eq!(c.reason, "fast-restore-set-not-supported", "{c:?}");

    // A single-volume snapshot named for a file of two volumes.
    let other = Lab::windows(103);
    let single = with_backups(example(Os::Windows), &["one"], 7);
    assert_eq!(other.apply(&single).await, Settled::Converged);
    let one = other.backup_snapshot(&single, "one");
    Clock::sleep(&other.world.clock(), std::time::Duration::from_hours(12)).await;
    let mut two = with_restore(single.clone(), &one, "r1", false);
    two.mirror.cluster_device = Some(dev("/dev/sdy"));
    let c = blocked_on(&other, &two).await;
    assert_eq!(c.reason, "backup-set-mismatch", "{c:?}");
    assert!(c.message.contains("is of one volume") && c.action.contains("backup ="), "{c:?}");
    no_restore_step(&other, &two);

    // The data snapshot says it was taken at /dev/sdq: the file puts md's data at /dev/sdx.
    let data = snaps.iter().find(|s| s.tags.get(tag::HOLDS).map(String::as_str) == Some("md:data")).unwrap();
    let moved: Tags = [(tag::DEVICE.to_owned(), "/dev/sdq".to_owned())].into();
    lab.world.ports().cloud.create_tags(data.id.as_str(), &moved).await.unwrap();
    let c = blocked_on(&lab, &restore).await;
    assert_eq!(c.reason, "backup-set-mismatch", "{c:?}");
    assert!(c.message.contains(data.id.as_str()) && c.message.contains("taken at /dev/sdq"), "{c:?}");
    no_restore_step(&lab, &restore);
}

// --- several md resources, each on a volume of its own -------------------------------------------

/// A two-md world (md1 and md2 in one group, each on its own volume), its file, and backup `b1`
/// of both taken as one set the way a backup of several md leaves it: one `CreateSnapshots` of
/// the standby's two mirror volumes with the backup's tags, each snapshot then tagged with the
/// device it was taken at and what it holds; completed.
async fn two_md_backup(
    os: Os,
    seed: u64,
) -> (Lab, Spec, Vec<(mirrorctl::ids::ResourceName, mirrorctl::ids::SnapshotId)>) {
    use mirrorctl::ports::cloud::CreateSnapshotSet;
    let scenario = mirrorctl::sim::Scenario::two_mirrors(os);
    let spec = scenario.spec("").unwrap();
    let lab = Lab::new(scenario, seed);
    let cloud = lab.world.ports().cloud;
    let standby = &spec.cluster.servers[1];
    let inst = cloud.describe_instances(std::slice::from_ref(&standby.instance)).await.unwrap();
    let at = |d: &DeviceName| inst[0].devices.iter().find(|(n, _)| n == d).map(|(_, v)| v.clone()).unwrap();
    let tags: Tags = [
        (tag::CLUSTER.to_owned(), spec.cluster.name.to_string()),
        (tag::REQUEST.to_owned(), "b1".to_owned()),
        (tag::ROLE.to_owned(), "backup".to_owned()),
        (tag::SNAPSHOT_SET.to_owned(), format!("{}/b1", spec.cluster.name)),
        (tag::SET_SIZE.to_owned(), "2".to_owned()),
    ]
    .into();
    let volumes: Vec<_> = spec.mirrors().map(|m| at(&m.device)).collect();
    let req = CreateSnapshotSet {
        instance: standby.instance.clone(),
        volumes: volumes.clone(),
        exclude: Vec::new(),
        description: "b1".into(),
        tags,
    };
    let snaps = cloud.create_snapshot_set(&req).await.unwrap();
    // Describe and tag after create may say NotFound for a while (eventual consistency).
    Clock::sleep(&lab.world.clock(), std::time::Duration::from_mins(1)).await;
    let mut held = Vec::new();
    for s in &snaps {
        let m = spec.mirrors().find(|m| Some(&at(&m.device)) == s.volume.as_ref()).unwrap();
        let identity: Tags = [
            (tag::DEVICE.to_owned(), m.device.to_string()),
            (tag::HOLDS.to_owned(), mirrorctl::plan::set_identity::holds(&spec, &m.device)),
        ]
        .into();
        cloud.create_tags(s.id.as_str(), &identity).await.unwrap();
        held.push((m.resource.clone(), s.id.clone()));
    }
    Clock::sleep(&lab.world.clock(), std::time::Duration::from_hours(12)).await;
    (lab, spec, held)
}

/// Each md's sides identical, the accident gone, its data continuing from its own snapshot.
fn assert_each_md_restored(lab: &Lab, held: &[(mirrorctl::ids::ResourceName, mirrorctl::ids::SnapshotId)], what: &str) {
    for (md, snap) in held {
        let v = mirrorctl::sim::verdict::restore_of(&lab.world, md, snap);
        assert!(v.corruptions.is_empty(), "{what} {md}: {:?}", v.corruptions);
        assert!(v.identical && v.accident_gone && v.from_snapshot, "{what} {md}: {v:?}");
    }
}

/// Two md resources restored by backup name on both OSes: one new volume per md per server, md1
/// and md2 removed in one push and re-added in one push, each without initial mirror construction,
/// the group started, both mirrors healthy, the failover checked; the oracle finds each md's data
/// restored from its own snapshot. Refused before any step before this was built.
#[tokio::test(start_paused = true)]
async fn two_md_restored_by_backup_name_each_from_its_own_snapshot() {
    use mirrorctl::ports::cluster::ConfigChange;
    for (os, seed) in [(Os::Windows, 111), (Os::Linux, 112)] {
        let (lab, spec, held) = two_md_backup(os, seed).await;
        lab.world.accident();
        let mut restore = by_backup(spec.clone(), "b1", "r1");
        if let Some(r) = restore.restore_backup.as_mut() {
            r.verify_failover = true;
        }
        assert_eq!(lab.apply(&restore).await, Settled::Converged, "{os:?}");
        assert_each_md_restored(&lab, &held, &format!("{os:?}"));
        let actions = lab.actions(&restore);
        let pushes: Vec<&Vec<ConfigChange>> = actions
            .iter()
            .filter_map(|(_, a)| match a {
                Action::ApplyConfig { changes } => Some(changes),
                _ => None,
            })
            .collect();
        assert_eq!(pushes.len(), 2, "{os:?}: one removal and one re-add: {pushes:?}");
        let added: Vec<(String, bool)> = pushes[1]
            .iter()
            .filter_map(|c| match c {
                ConfigChange::AddMirror(def) => Some((def.resource.to_string(), def.initial_copy)),
                _ => None,
            })
            .collect();
        assert_eq!(added, [("md1".to_owned(), false), ("md2".to_owned(), false)], "{os:?}");
        let created = actions.iter().filter(|(_, a)| matches!(a, Action::CreateVolume { .. })).count();
        assert_eq!(created, 4, "{os:?}");
        assert!(actions.iter().any(|(id, _)| id == "restore/r1/verify-failover"), "{os:?}");
    }
}

/// A crash at every step boundary of a two-md restore, then a restart: it converges with exactly
/// one new volume per md per server, both md restored.
#[tokio::test(start_paused = true)]
async fn a_set_restore_resumes_from_a_crash_at_every_step_boundary() {
    use mirrorctl::execute::CrashPoint;
    let mut covered = 0;
    for n in 1.. {
        let (mut lab, spec, held) = two_md_backup(Os::Windows, 400 + n as u64).await;
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
        let made = inv.volumes.iter().filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some("r1")).count();
        assert_eq!(made, 4, "#{n}: one volume per md per server");
        assert_each_md_restored(&lab, &held, &format!("#{n}"));
    }
    assert!(covered >= 15, "covered {covered}");
}

/// The request changes while a two-md restore has detached an old volume: before the new request
/// starts, every device of both servers has a volume again (`safe-attach@server/device`), and the
/// new request restores both md from the set.
#[tokio::test(start_paused = true)]
async fn a_set_restore_whose_request_changes_after_a_detach_puts_a_volume_back_at_each_device() {
    use mirrorctl::execute::CrashPoint;
    for n in 1..60 {
        let (mut lab, spec, held) = two_md_backup(Os::Windows, 500 + n as u64).await;
        lab.world.accident();
        let r1 = by_backup(spec.clone(), "b1", "r1");
        let (_, switch) = lab.apply_with_crash(&r1, CrashPoint::AfterCall, n).await;
        assert!(switch.fired(), "the restore ended before a detach");
        let actions = lab.actions(&r1);
        let Some((last, _)) = actions.last() else { continue };
        if !last.starts_with("restore/r1/detach@") {
            continue;
        }
        lab.restart();
        let r2 = by_backup(spec.clone(), "b1", "r2");
        assert_eq!(lab.apply(&r2).await, Settled::Converged, "after {last}");
        let actions = lab.actions(&r2);
        let back: Vec<&String> =
            actions.iter().map(|(id, _)| id).filter(|id| id.starts_with("restore/r1/safe-attach@")).collect();
        assert!(!back.is_empty() && back.iter().all(|id| id.contains('/') && id.matches('/').count() == 3), "{back:?}");
        assert_each_md_restored(&lab, &held, "r2");
        return;
    }
    panic!("no crash point right after a detach");
}
