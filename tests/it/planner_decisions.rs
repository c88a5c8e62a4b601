//! Planner decisions, checked on real observations edited by hand. Initial mirror construction is
//! switched OFF only when observation proves both sides came from the requested snapshot in this
//! request and were not written since; otherwise it stays ON and the plan says why. Preflight
//! refuses a snapshot smaller than the disk.

use crate::support::common;

use std::time::Duration;

use common::{Lab, example, with_backups, with_restore};
use mirrorctl::execute::CrashPoint;
use mirrorctl::ids::{RequestName, SnapshotId};
use mirrorctl::journal::JournalView;
use mirrorctl::observe::Observed;
use mirrorctl::plan::{Action, OpId, Plan, StepId, StepKind, plan};
use mirrorctl::ports::Clock as _;
use mirrorctl::ports::cloud::tag;
use mirrorctl::ports::cluster::ConfigChange;
use mirrorctl::reconcile::{Settled, open_journal, plan_once};
use mirrorctl::spec::{Os, Spec};

/// Brings a restore to the point where md is about to be re-added; returns its spec, the
/// observation and the journal view there.
async fn before_add_md() -> (Spec, Observed, JournalView) {
    before_add_md_on(Os::Windows).await
}

/// [`before_add_md`] on `os`. The steps with an intent before add-md: Windows 17 (the preflight,
/// 2 creates, stop, remove, 2×offline, 2×tag, 2×detach, 2×attach, 2×online, 2 letters); Linux 11
/// (no disk is taken offline or brought online, no letters): the crash is at the next boundary.
async fn before_add_md_on(os: Os) -> (Spec, Observed, JournalView) {
    let (mut lab, boundary) = match os {
        Os::Windows => (Lab::windows(61), 18),
        Os::Linux => (Lab::linux(65), 12),
    };
    let spec = with_backups(example(os), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    let restore = with_restore(spec, &snap, "r1", false);
    let (_, switch) = lab.apply_with_crash(&restore, CrashPoint::BeforeIntent, boundary).await;
    assert!(switch.fired());
    lab.restart();
    let ctx = lab.ctx();
    let journal = open_journal(&restore, &ctx).await.unwrap();
    let (obs, _) = plan_once(&restore, &ctx, &journal).await.unwrap();
    let view = journal.lock().await.view().clone();
    (restore, obs, view)
}

fn initial_copy(p: &Plan) -> bool {
    let [step] = p.steps() else { panic!("one step expected: {p:?}") };
    assert_eq!(step.id.0, "restore/r1/add-md");
    let Action::ApplyConfig { changes } = &step.action else { panic!() };
    changes
        .iter()
        .find_map(|c| match c {
            ConfigChange::AddMirror(def) => Some(def.initial_copy),
            _ => None,
        })
        .expect("AddMirror")
}

#[tokio::test(start_paused = true)]
async fn off_only_when_both_sides_are_proven_identical() {
    let (spec, obs, view) = before_add_md().await;
    let p = plan(&spec, &obs, &view);
    assert!(!initial_copy(&p), "{:?}", p.notes);
    assert!(p.notes.iter().any(|n| n.contains("OFF")), "{:?}", p.notes);

    // One side came from another snapshot: ON, and the plan says why.
    let mut other = obs.clone();
    let s2 = &spec.cluster.servers[1];
    let v = other
        .volumes
        .iter_mut()
        .find(|v| v.attachments.iter().any(|a| a.instance == s2.instance))
        .expect("server2's volume");
    v.snapshot = Some(SnapshotId::parse("snap-0000000000000beef").unwrap());
    let p = plan(&spec, &other, &view);
    assert!(initial_copy(&p));
    assert!(p.notes.iter().any(|n| n.contains("ON") && n.contains("did not both come from")), "{:?}", p.notes);

    // One side's tags name another source snapshot: ON.
    let mut other = obs.clone();
    let v = other.volumes.iter_mut().find(|v| v.attachments.iter().any(|a| a.instance == s2.instance)).unwrap();
    v.tags.insert(tag::SOURCE_SNAPSHOT.into(), "snap-0000000000000beef".into());
    assert!(initial_copy(&plan(&spec, &other, &view)));

    // A volume of another request at a device mirrorctl emptied is a stranger: blocked, untouched.
    let mut other = obs.clone();
    let v = other.volumes.iter_mut().find(|v| v.attachments.iter().any(|a| a.instance == s2.instance)).unwrap();
    v.tags.insert(tag::REQUEST.into(), "r0".into());
    let p = plan(&spec, &other, &view);
    assert!(matches!(&p.outcome, mirrorctl::plan::Outcome::Blocked(c) if c.reason == "device-taken"), "{p:?}");

    // The group was started since the volumes were attached (a side may have been written): ON.
    let mut journal = view.clone();
    let op = OpId::Restore(RequestName::parse("r1").unwrap());
    journal.apply(&mirrorctl::journal::Record::Intent {
        seq: 999,
        op: op.clone(),
        step: StepId::new(&op, &StepKind::StartGroup, Some("server1")),
        attempt: 1,
        token: None,
        started: obs.now,
        action: Action::MarkCompleted,
    });
    let p = plan(&spec, &obs, &journal);
    assert!(initial_copy(&p));
    assert!(p.notes.iter().any(|n| n.contains("started")), "{:?}", p.notes);
}

#[tokio::test(start_paused = true)]
async fn preflight_refuses_a_snapshot_smaller_than_the_disk() {
    let lab = Lab::windows(62);
    let s2 = mirrorctl::ids::ServerName::parse("server2").unwrap();
    let snap = lab
        .world
        .add_snapshot(&s2, mirrorctl::ports::cloud::Tags::new(), mirrorctl::ports::cloud::SnapshotState::Completed)
        .unwrap();
    let spec = with_restore(example(Os::Windows), &snap.id, "r-small", false);
    let ctx = lab.ctx();
    let journal = open_journal(&spec, &ctx).await.unwrap();
    let (mut obs, p) = plan_once(&spec, &ctx, &journal).await.unwrap();
    assert!(p.has_changes(), "a same-size snapshot passes preflight: {p:?}");
    // The same observation with a 50 GiB snapshot for 100 GiB disks.
    obs.snapshots.iter_mut().find(|s| s.id == snap.id).unwrap().size_gib = 50;
    let view = journal.lock().await.view().clone();
    let p = plan(&spec, &obs, &view);
    let mirrorctl::plan::Outcome::Blocked(c) = &p.outcome else { panic!("{p:?}") };
    assert_eq!(c.reason, "snapshot-too-small");
    assert!(c.message.contains("50 GiB") && c.message.contains("100 GiB"), "{c:?}");
}

/// r1's add-md push, cut off by a restart (an intent without a result), is still being applied by
/// CLUSTERPRO as far as anyone knows. Nothing else may move until it shows in the configuration,
/// a later push completed, or its time limit passed; r1 itself resumes by pushing again.
#[tokio::test(start_paused = true)]
async fn a_push_cut_off_by_a_restart_holds_everything_else_until_it_lands_or_times_out() {
    use mirrorctl::journal::Record;
    use mirrorctl::plan::Outcome;

    let (r1_spec, obs, view) = before_add_md().await;
    let p = plan(&r1_spec, &obs, &view);
    let [add_md] = p.steps() else { panic!("{p:?}") };
    let r1 = OpId::Restore(RequestName::parse("r1").unwrap());
    let mut journal = view.clone();
    journal.apply(&Record::Intent {
        seq: 900,
        op: r1.clone(),
        step: add_md.id.clone(),
        attempt: 1,
        token: None,
        started: obs.now,
        action: add_md.action.clone(),
    });
    let mut r2_spec = r1_spec.clone();
    r2_spec.restore.as_mut().unwrap().request = RequestName::parse("r2").unwrap();
    let waits_for_push = |p: &Plan| match &p.outcome {
        Outcome::Wait(w) => w.reason.contains("configuration push") && w.watch.config,
        _ => false,
    };

    // A new request in the file: the switch waits, and the next look reads clp.conf.
    let p = plan(&r2_spec, &obs, &journal);
    assert!(waits_for_push(&p), "{p:?}");
    let Outcome::Wait(w) = &p.outcome else { unreachable!() };
    assert!(w.reason.contains("restore/r1/add-md"), "{w:?}");
    // Still so 14 minutes later.
    let mut later = obs.clone();
    later.now = obs.now + jiff::SignedDuration::from_mins(14);
    assert!(waits_for_push(&plan(&r2_spec, &later, &journal)));

    // r1 itself, still wanted, pushes again rather than waiting.
    let p = plan(&r1_spec, &obs, &journal);
    assert!(p.steps().iter().any(|s| s.id == add_md.id), "{p:?}");

    // The push landed: md is in the configuration. The switch goes on.
    let mut landed = obs.clone();
    let Action::ApplyConfig { changes } = &add_md.action else { panic!() };
    for c in changes {
        match c {
            ConfigChange::AddMirror(md) => landed.config.mirrors.push(md.clone()),
            ConfigChange::SetGroupAutoStart { group, auto } => {
                landed.config.group_auto_start.insert(group.clone(), *auto);
            }
            ConfigChange::RemoveMirror { .. } => {}
        }
    }
    let p = plan(&r2_spec, &landed, &journal);
    assert!(!waits_for_push(&p) && p.has_changes(), "{p:?}");

    // Past the time limit, the push has landed or failed: the switch goes on.
    let mut expired = obs.clone();
    expired.now = obs.now + jiff::SignedDuration::from_mins(16);
    let p = plan(&r2_spec, &expired, &journal);
    assert!(!waits_for_push(&p) && p.has_changes(), "{p:?}");

    // A later push completed (CLUSTERPRO applies one at a time): this one is over.
    let mut after = journal.clone();
    let r2 = OpId::Restore(RequestName::parse("r2").unwrap());
    let remove = StepId::new(&r2, &StepKind::RemoveMd, None);
    after.apply(&Record::Intent {
        seq: 901,
        op: r2.clone(),
        step: remove.clone(),
        attempt: 1,
        token: None,
        started: obs.now,
        action: Action::ApplyConfig { changes: vec![] },
    });
    after.apply(&Record::Result {
        seq: 901,
        op: r2,
        step: remove,
        ok: true,
        detail: None,
        error: None,
        finished: obs.now,
    });
    assert!(!waits_for_push(&plan(&r2_spec, &obs, &after)));
}

/// A mirror RED on both sides never turns GREEN by waiting: a backup (and a restore's last check)
/// block with NEC's forced-recovery command instead of waiting forever.
#[tokio::test(start_paused = true)]
async fn a_mirror_red_on_both_sides_blocks_with_the_recovery_command() {
    use mirrorctl::plan::Outcome;
    use mirrorctl::ports::cluster::MirrorColor;
    let lab = Lab::linux(63);
    let spec = with_backups(example(Os::Linux), &["b1"], 7);
    let ctx = lab.ctx();
    let journal = open_journal(&spec, &ctx).await.unwrap();
    let (mut obs, _) = plan_once(&spec, &ctx, &journal).await.unwrap();
    let view = journal.lock().await.view().clone();
    assert!(plan(&spec, &obs, &view).has_changes(), "a healthy mirror: the backup starts");
    let m = obs.mirror.as_mut().expect("mirror colours observed");
    for c in m.colors.values_mut() {
        *c = MirrorColor::Red;
    }
    let p = plan(&spec, &obs, &view);
    let Outcome::Blocked(c) = &p.outcome else { panic!("blocked expected: {p:?}") };
    assert_eq!(c.reason, "mirror-red-on-both-sides");
    assert!(c.action.contains("clpmdctrl -f md1"), "{c}");
    // One side RED is an ordinary recovery: the backup waits for it.
    let first = obs.mirror.as_mut().unwrap().colors.values_mut().next().unwrap();
    *first = MirrorColor::Green;
    assert!(matches!(plan(&spec, &obs, &view).outcome, Outcome::Wait(_)));
}

/// Linux: the re-add writes the desired state's partition paths into clp.conf again, so before
/// anything changes they must name partitions of today's mirror disk (its kernel path or a link to
/// it) and must not be kernel `NVMe` names, which a detach and attach may renumber.
#[tokio::test(start_paused = true)]
async fn linux_partition_paths_must_name_todays_disk_and_survive_the_swap() {
    use mirrorctl::plan::Outcome;
    use mirrorctl::spec::Partition;
    let lab = Lab::linux(64);
    let spec = with_backups(example(Os::Linux), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    let restore = with_restore(spec, &snap, "r1", false);
    let ctx = lab.ctx();
    let journal = open_journal(&restore, &ctx).await.unwrap();
    let (obs, p) = plan_once(&restore, &ctx, &journal).await.unwrap();
    let view = journal.lock().await.view().clone();
    assert_eq!(p.steps()[0].id.0, "restore/r1/preflight", "{p:?}");
    let blocked = |spec: &Spec, obs: &Observed| match plan(spec, obs, &view).outcome {
        Outcome::Blocked(c) => Some(c),
        _ => None,
    };

    // A kernel NVMe name: refused, whatever the disk shows.
    let mut nvme = restore.clone();
    nvme.mirror.data_partition = Partition::Device("/dev/nvme1n1p2".into());
    let c = blocked(&nvme, &obs).expect("refused");
    assert_eq!(c.reason, "partition-path-unstable", "{c}");
    // A path that names nothing on today's mirror disk: refused, listing what it shows.
    let mut other = restore.clone();
    other.mirror.data_partition = Partition::Device("/dev/xvdc2".into());
    let c = blocked(&other, &obs).expect("refused");
    assert_eq!(c.reason, "partition-path-not-found", "{c}");
    assert!(c.message.contains("/dev/xvdb2"), "{c}");
    // A link to today's partition (by-partuuid) is accepted on every server that shows it.
    let mut linked = restore.clone();
    linked.mirror.data_partition = Partition::Device("/dev/disk/by-partuuid/1234-02".into());
    let mut obs2 = obs.clone();
    for disks in obs2.disks.values_mut().flatten() {
        for part in disks.iter_mut().flat_map(|d| d.partitions.iter_mut()).filter(|p| p.number == 2) {
            part.aliases.push("/dev/disk/by-partuuid/1234-02".into());
        }
    }
    assert!(blocked(&linked, &obs2).is_none(), "{:?}", plan(&linked, &obs2, &view));
    assert!(blocked(&linked, &obs).is_some(), "without the link it names nothing");
}

/// Linux: the re-add writes partition names found from the restored volumes: the desired
/// state's path when it names the new partitions on both servers, else a name both servers show
/// for them that follows the disk's content (`by-partuuid`); none in common blocks before md is
/// re-added.
#[tokio::test(start_paused = true)]
async fn linux_re_add_writes_names_of_the_restored_partitions() {
    use mirrorctl::plan::Outcome;
    use mirrorctl::spec::Partition;
    let (restore, obs, view) = before_add_md_on(Os::Linux).await;
    let added = |obs: &Observed| -> (Partition, Partition) {
        let p = plan(&restore, obs, &view);
        let [step] = p.steps() else { panic!("one step expected: {p:?}") };
        assert_eq!(step.id.0, "restore/r1/add-md");
        let Action::ApplyConfig { changes } = &step.action else { panic!() };
        changes
            .iter()
            .find_map(|c| match c {
                ConfigChange::AddMirror(def) => Some((def.cluster_partition.clone(), def.data_partition.clone())),
                _ => None,
            })
            .expect("AddMirror")
    };
    // The desired state's paths name the restored partitions: written as they are.
    assert_eq!(added(&obs), (restore.mirror.cluster_partition.clone(), restore.mirror.data_partition.clone()));

    // On Nitro: kernel names that differ per server; each server shows the partitions' by-partuuid
    // links (the same on both copies of one disk): those are written.
    let mut nitro = obs.clone();
    for (i, disks) in nitro.disks.values_mut().flatten().enumerate() {
        for d in disks.iter_mut() {
            for p in &mut d.partitions {
                p.path = Some(format!("/dev/nvme{}n1p{}", i + 1, p.number));
                p.aliases = vec![format!("/dev/disk/by-partuuid/5eed0001-0{}", p.number)];
            }
        }
    }
    assert_eq!(
        added(&nitro),
        (
            Partition::Device("/dev/disk/by-partuuid/5eed0001-01".into()),
            Partition::Device("/dev/disk/by-partuuid/5eed0001-02".into())
        )
    );
    // No name in common: blocked before md is re-added.
    for disks in nitro.disks.values_mut().flatten() {
        for p in disks.iter_mut().flat_map(|d| d.partitions.iter_mut()) {
            p.aliases.clear();
        }
    }
    let p = plan(&restore, &nitro, &view);
    let Outcome::Blocked(c) = &p.outcome else { panic!("blocked expected: {p:?}") };
    assert_eq!(c.reason, "no-stable-partition-name", "{c}");
}

/// A restore request replaced after its preflight and before any other step changed nothing, so
/// nothing is brought back; but the journal closes it (`abandon`) before the new request starts,
/// and status says what became of it instead of "started" forever (found by the two-host chaos
/// campaign, where a kill right after a preflight met a request change).
#[tokio::test(start_paused = true)]
async fn a_restore_replaced_right_after_its_preflight_is_closed_as_abandoned() {
    let lab = Lab::windows(65);
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    let r1 = with_restore(spec, &snap, "r1", false);
    // Crash before the intent of the step after the preflight: only the preflight ran.
    let (crashed, _) = lab.apply_with_crash(&r1, CrashPoint::BeforeIntent, 2).await;
    assert!(crashed.is_err(), "{crashed:?}");
    let begun: Vec<String> =
        lab.actions(&r1).into_iter().map(|(s, _)| s).filter(|s| s.starts_with("restore/")).collect();
    assert_eq!(begun, vec!["restore/r1/preflight".to_owned()], "only the preflight ran");

    let r2 = with_restore(r1.clone(), &snap, "r2", false);
    let ctx = lab.ctx();
    let journal = open_journal(&r2, &ctx).await.unwrap();
    let (_, p) = plan_once(&r2, &ctx, &journal).await.unwrap();
    drop(journal);
    let first = &p.steps()[0];
    assert_eq!(first.id.0, "restore/r1/abandon", "{p:?}");
    assert!(
        matches!(&first.action, Action::MarkAbandoned { by } if *by == OpId::Restore(RequestName::parse("r2").unwrap()))
    );

    assert_eq!(lab.apply(&r2).await, Settled::Converged);
    let doc =
        mirrorctl::status::StatusDoc::read(&mirrorctl::status::StatusDoc::path_for(&lab.state_dir(), &r2.cluster.name))
            .unwrap();
    assert_eq!(doc.operations["restore/r1"].state, mirrorctl::status::OpPhase::Abandoned, "{:?}", doc.operations);
    assert_eq!(doc.operations["restore/r2"].state, mirrorctl::status::OpPhase::Completed, "{:?}", doc.operations);
}

/// The old volumes' `superseded-by` tags go out in the batch of the md removal, while the cluster
/// is prepared and EC2 is idle, once the new volumes are `available` (not in the later burst of a
/// storm's detaches and attaches); never before a replacement is `available`.
#[tokio::test(start_paused = true)]
async fn the_superseded_tags_go_out_with_the_md_removal_once_the_new_volumes_are_available() {
    use mirrorctl::ports::cloud::VolumeState;
    let mut lab = Lab::windows(67);
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    let r1 = with_restore(spec, &snap, "r1", false);
    // Intents 1–4: the preflight, two creates, the group stop; the crash is before the fifth.
    let (crashed, _) = lab.apply_with_crash(&r1, CrashPoint::BeforeIntent, 5).await;
    assert!(crashed.is_err(), "{crashed:?}");
    lab.restart();
    let ctx = lab.ctx();
    let journal = open_journal(&r1, &ctx).await.unwrap();
    let (mut obs, p) = plan_once(&r1, &ctx, &journal).await.unwrap();
    let view = journal.lock().await.view().clone();
    drop(journal);
    let ids: Vec<&str> = p.steps().iter().map(|s| s.id.0.as_str()).collect();
    assert_eq!(
        ids,
        ["restore/r1/remove-md", "restore/r1/tag-superseded@server1", "restore/r1/tag-superseded@server2"],
        "{p:?}"
    );
    for s in p.steps().iter().skip(1) {
        let Action::Tag { resource, tags } = &s.action else { panic!("{s:?}") };
        let new = obs.volumes.iter().find(|v| Some(&v.id.to_string()) == tags.get(tag::SUPERSEDED_BY)).expect("new");
        assert_eq!(new.state, VolumeState::Available, "{s:?}");
        assert!(obs.volumes.iter().any(|v| v.id.as_str() == resource && !v.attachments.is_empty()), "{s:?}");
    }

    // A replacement still being created: no tag yet, the removal goes on alone.
    for v in obs.volumes.iter_mut().filter(|v| v.tags.get(tag::REQUEST).map(String::as_str) == Some("r1")) {
        v.state = VolumeState::Creating;
    }
    let p = plan(&r1, &obs, &view);
    let ids: Vec<&str> = p.steps().iter().map(|s| s.id.0.as_str()).collect();
    assert_eq!(ids, ["restore/r1/remove-md"], "{p:?}");

    drop(ctx);
    assert_eq!(lab.apply(&r1).await, Settled::Converged);
}
