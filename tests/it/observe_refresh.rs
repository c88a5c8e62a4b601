//! Scoped observation: what a pass reads afresh after each kind of step, that a restore stays
//! within eight `Describe*` calls while still converging with the oracle's blessing, and the
//! volume initialization progress (`DescribeVolumeStatus`) shown in the status document.

use crate::support::common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Lab, example, with_backups, with_restore};
use mirrorctl::execute::RetryPolicy;
use mirrorctl::ids::{GroupName, ServerName, VolumeId};
use mirrorctl::observe::{Observed, Refresh, observe};
use mirrorctl::plan::{Action, Watch};
use mirrorctl::ports::Clock as _;
use mirrorctl::ports::cloud::{SnapshotState, Tags, tag};
use mirrorctl::ports::cluster::ConfigChange;
use mirrorctl::reconcile::Settled;
use mirrorctl::spec::{Os, Spec};
use mirrorctl::status::StatusDoc;

fn server(n: &str) -> ServerName {
    ServerName::parse(n).expect("server name")
}

async fn look(lab: &Lab, spec: &Spec) -> Observed {
    observe(spec, &lab.world.ports(), &RetryPolicy::default()).await.expect("observe")
}

/// The original (untagged) mirror volume attached to `server`.
fn original(obs: &Observed, spec: &Spec, name: &str) -> VolumeId {
    let s = spec.server(&server(name)).expect("server in spec");
    obs.volumes
        .iter()
        .find(|v| v.attachments.iter().any(|a| a.instance == s.instance) && !v.tags.contains_key(tag::CLUSTER))
        .map(|v| v.id.clone())
        .expect("an original mirror volume")
}

#[tokio::test(start_paused = true)]
async fn each_kind_of_step_refreshes_only_what_it_can_change() {
    let lab = Lab::windows(3);
    let spec = example(Os::Windows);
    let obs = look(&lab, &spec).await;
    let nothing = Refresh::default();

    // CLUSTERPRO operations: CLUSTERPRO is read on every pass anyway.
    let stop = Action::StopGroup { group: GroupName::parse("failover").expect("group") };
    assert_eq!(Refresh::after(&spec, &obs, &[stop], None), nothing);

    // A configuration push: the configuration.
    let push = Action::ApplyConfig {
        changes: vec![ConfigChange::SetGroupAutoStart { group: spec.mirror.group.clone(), auto: false }],
    };
    assert_eq!(Refresh::after(&spec, &obs, &[push], None), Refresh { config: true, ..Refresh::default() });

    // A disk command: that server's disks only.
    let old = original(&obs, &spec, "server2");
    let offline = Action::DiskOffline { server: server("server2"), volume: old.clone() };
    assert_eq!(
        Refresh::after(&spec, &obs, &[offline], None),
        Refresh { disks: BTreeSet::from([server("server2")]), ..Refresh::default() }
    );

    // Detaching an untagged original volume: that volume by id (the server's disks are listed
    // again once the list is out of step with the attachments, see below).
    let s2 = spec.server(&server("server2")).expect("server2").clone();
    let detach = Action::DetachVolume { server: s2.name.clone(), volume: old.clone(), instance: s2.instance.clone() };
    assert_eq!(
        Refresh::after(&spec, &obs, &[detach], None),
        Refresh { volume_ids: BTreeSet::from([old.clone()]), ..Refresh::default() }
    );

    // Tagging a snapshot: the snapshots.
    let tag = Action::Tag { resource: "snap-0123456789abcdef0".into(), tags: Tags::new() };
    assert_eq!(Refresh::after(&spec, &obs, &[tag], None), Refresh { snapshots: true, ..Refresh::default() });

    // A wait on volumes when nothing is visibly moving: every volume, tagged and untagged.
    let r = Refresh::after(&spec, &obs, &[], Some(Watch::VOLUMES));
    assert!(r.tagged_volumes);
    assert!(r.volume_ids.contains(&old), "{r:?}");
    // A wait on disks: every server's disks.
    let r = Refresh::after(&spec, &obs, &[], Some(Watch::DISKS));
    assert_eq!(r.disks.len(), 2);

    // Something still moving by itself is read again: a pending snapshot, a detaching volume.
    let mut moving = obs.clone();
    if let Some(s) = moving.snapshots.first_mut() {
        s.state = SnapshotState::Pending;
    } else {
        let s = mirrorctl::ports::cloud::Snapshot {
            id: mirrorctl::ids::SnapshotId::parse("snap-0123456789abcdef0").expect("id"),
            volume: Some(old.clone()),
            size_gib: 100,
            state: SnapshotState::Pending,
            progress: 10,
            started: obs.now,
            tags: Tags::new(),
        };
        moving.snapshots.push(s);
    }
    let v = moving.volumes.iter_mut().find(|v| v.id == old).expect("original");
    v.attachments[0].state = mirrorctl::ports::cloud::AttachState::Detaching;
    let r = Refresh::after(&spec, &moving, &[], None);
    assert!(r.snapshots);
    assert!(r.volume_ids.contains(&old));
    assert!(r.disks.contains(&server("server2")), "a detaching disk's server is listed again: {r:?}");
}

#[tokio::test(start_paused = true)]
async fn a_restore_stays_within_eight_describes_and_reports_initialization() {
    // The latency model's medians, as the bench counts (with jitter, two detaches that end a pass
    // apart cost one look more).
    let mut scenario = mirrorctl::sim::Scenario::windows_runbook();
    scenario.latency = mirrorctl::sim::LatencyModel::default().without_jitter();
    let lab = Lab::new(scenario, 5);
    let spec = example(Os::Windows);
    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(lab.apply(&backup).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    lab.world.accident();
    lab.world.clock().sleep(Duration::from_mins(1)).await;
    let restore = with_restore(backup, &snap, "r1", true);

    let describes = |lab: &Lab| -> u64 {
        lab.world.call_counts().iter().filter(|(k, _)| k.starts_with("ec2:Describe")).map(|(_, v)| v).sum()
    };
    let before = describes(&lab);
    assert_eq!(lab.apply(&restore).await, Settled::Converged);
    let used = describes(&lab) - before;
    // The full look (6), the new volumes available, the old ones detached; the new ones attaching
    // are seen done by the servers' disk lists, the old ones' tags by `CreateTags`' answer.
    assert_eq!(used, 8, "Describe calls of a two-node restore");
    let report = lab.world.oracle_report();
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
    let contents: Vec<_> = report.servers.values().map(|c| c.expect("mirror volume attached")).collect();
    assert_eq!(contents[0], contents[1], "both sides identical after the restore");
    assert!(!lab.world.contains_accident(contents[0]), "the accident is gone");
    assert!(lab.world.descends_from(contents[0], report.snapshots[&snap]), "data continues from the snapshot");

    // The next reconcile starts with a full look: the restored volumes' loading is reported.
    let status_calls = |lab: &Lab| lab.world.call_counts().get("ec2:DescribeVolumeStatus").copied().unwrap_or(0);
    let before = status_calls(&lab);
    assert_eq!(lab.apply(&restore).await, Settled::Converged);
    assert_eq!(status_calls(&lab) - before, 1, "one DescribeVolumeStatus on the full look");
    let doc = StatusDoc::read(&StatusDoc::path_for(&lab.state_dir(), &spec.cluster.name)).expect("status document");
    let new: Vec<_> = doc.inventory.new_volumes.values().collect();
    assert_eq!(new.len(), 2, "{new:?}");
    assert!(
        new.iter().all(|v| v.initialized == Some(false) && v.initialization_remaining_s.is_some_and(|r| r > 0)),
        "{new:?}"
    );

    // 100 GiB at the simulator's lazy rate (40 MiB/s) takes about 43 minutes: after an hour the
    // next look reports them initialized and stops asking.
    lab.world.clock().sleep(Duration::from_hours(1)).await;
    assert_eq!(lab.apply(&restore).await, Settled::Converged);
    let doc = StatusDoc::read(&StatusDoc::path_for(&lab.state_dir(), &spec.cluster.name)).expect("status document");
    assert!(doc.inventory.new_volumes.values().all(|v| v.initialized == Some(true)), "{:?}", doc.inventory);
}

/// A disk command answers with the disk list it leaves, and the next pass plans from that answer
/// instead of asking the server again; two drive letters on one server in one batch answer
/// together (each answer for the partition it set: a letter command changes no other). The old volume's
/// `superseded-by` tag goes in the batch of the md removal (its replacement is `available` by then).
#[tokio::test(start_paused = true)]
async fn a_disk_commands_answer_is_the_next_passs_disk_list() {
    use mirrorctl::execute::{EventKind, Progress};
    let lab = Lab::windows(5);
    let spec = example(Os::Windows);
    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(lab.apply(&backup).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    lab.world.accident();
    lab.world.clock().sleep(Duration::from_mins(1)).await;
    let restore = with_restore(backup, &snap, "r1", true);

    let lists = |lab: &Lab| lab.world.call_counts().get("node:disks").copied().unwrap_or(0);
    let before = lists(&lab);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let mut ctx = lab.ctx();
    ctx.progress = Progress::to(tx);
    assert_eq!(mirrorctl::reconcile::reconcile(&restore, &ctx).await.expect("reconcile"), Settled::Converged);
    // Both servers at the first look; each server once after its attach (the list shows the new
    // disk arrive, and the attach's end: EC2 is not asked, nor is a wait spent on it). Not after a
    // disk went offline or came online, nor after server1's two letters (5 lists more when each
    // disk command or batch of them was followed by a read). With this seed, after a backup whose
    // standby shutdown and restart are one CLUSTERPRO request, the two detaches end in one pass: no
    // server's list goes out of step (when they end apart, 1 more).
    assert_eq!(lists(&lab) - before, 4, "node:disks calls during the restore");
    let report = lab.world.oracle_report();
    assert!(report.corruptions.is_empty(), "{:?}", report.corruptions);
    let contents: Vec<_> = report.servers.values().map(|c| c.expect("mirror volume attached")).collect();
    assert_eq!(contents[0], contents[1], "both sides identical after the restore");

    drop(ctx);
    let mut started = std::collections::BTreeMap::new();
    while let Ok(e) = rx.try_recv() {
        if let EventKind::StepStarted { step, .. } = e.kind {
            started.insert(step.to_string(), e.at);
        }
    }
    for s in ["server1", "server2"] {
        let at = |kind: &str| started.get(&format!("restore/r1/{kind}@{s}")).copied().expect(kind);
        assert_eq!(at("tag-superseded"), started["restore/r1/remove-md"], "{s}: tagged in the md removal's batch");
    }
}

#[tokio::test(start_paused = true)]
async fn initialization_runs_at_the_provisioned_rate() {
    use mirrorctl::ports::cloud::CreateVolume;
    let lab = Lab::windows(7);
    let spec = example(Os::Windows);
    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(lab.apply(&backup).await, Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    let ports = lab.world.ports();
    let zone = spec.cluster.servers[0].zone.clone();
    let create = |token: &str, rate: Option<u32>| CreateVolume {
        zone: zone.clone(),
        snapshot: snap.clone(),
        volume_type: "gp3".into(),
        size_gib: None,
        iops: None,
        throughput: None,
        kms_key: None,
        initialization_rate: rate,
        client_token: token.into(),
        tags: Tags::new(),
    };
    let fast = ports.cloud.create_volume(&create("fast", Some(300))).await.expect("create");
    let lazy = ports.cloud.create_volume(&create("lazy", None)).await.expect("create");
    let start = ports.clock.now();
    // 100 GiB = 102,400 MiB: 342 s at 300 MiB/s, 2,560 s at 40 MiB/s (from the end of creating).
    lab.world.clock().sleep(Duration::from_secs(3 + 171)).await;
    let got = ports.cloud.volume_initialization(&[fast.id.clone(), lazy.id.clone()]).await.expect("status");
    let fast_i = got.iter().find(|i| i.volume == fast.id).expect("fast");
    let lazy_i = got.iter().find(|i| i.volume == lazy.id).expect("lazy");
    assert_eq!(fast_i.kind.as_deref(), Some("provisioned-rate"));
    assert_eq!(lazy_i.kind.as_deref(), Some("default"));
    assert!((47..=53).contains(&fast_i.progress.expect("progress")), "{fast_i:?}");
    assert!((5..=8).contains(&lazy_i.progress.expect("progress")), "{lazy_i:?}");
    assert!(!fast_i.complete && !lazy_i.complete);
    lab.world.clock().sleep(Duration::from_secs(200)).await;
    let got = ports.cloud.volume_initialization(std::slice::from_ref(&fast.id)).await.expect("status");
    assert!(got[0].complete && got[0].progress == Some(100) && got[0].remaining_s == Some(0), "{got:?}");
    assert!(ports.clock.now() > start);
}

/// The node port of the simulated world, slow to list disks (as commands over SSM can be).
struct SlowDisks {
    inner: std::sync::Arc<dyn mirrorctl::ports::Node>,
    clock: std::sync::Arc<dyn mirrorctl::ports::Clock>,
    delay: Duration,
}

#[async_trait::async_trait]
impl mirrorctl::ports::Node for SlowDisks {
    async fn disks(&self, server: &ServerName) -> mirrorctl::ports::PortResult<Vec<mirrorctl::ports::node::Disk>> {
        self.clock.sleep(self.delay).await;
        self.inner.disks(server).await
    }
    async fn set_offline(
        &self,
        server: &ServerName,
        volume: &VolumeId,
    ) -> mirrorctl::ports::PortResult<Vec<mirrorctl::ports::node::Disk>> {
        self.inner.set_offline(server, volume).await
    }
    async fn set_online(
        &self,
        server: &ServerName,
        volume: &VolumeId,
    ) -> mirrorctl::ports::PortResult<Vec<mirrorctl::ports::node::Disk>> {
        self.inner.set_online(server, volume).await
    }
    async fn set_letter(
        &self,
        server: &ServerName,
        volume: &VolumeId,
        number: u32,
        letter: char,
    ) -> mirrorctl::ports::PortResult<Vec<mirrorctl::ports::node::Disk>> {
        self.inner.set_letter(server, volume, number, letter).await
    }
}

/// Found through SSM (a look taking minutes of a 100× world): a snapshot not yet visible when the
/// snapshots were read must not be taken for a lost one because the look *ended* after the
/// visibility window. The planner's clock is when the look began.
#[tokio::test(start_paused = true)]
async fn a_slow_look_does_not_turn_an_invisible_snapshot_into_a_second_one() {
    let lab = Lab::windows(11);
    lab.world.set_consistency_window(Duration::from_secs(5));
    let spec = example(Os::Windows);
    let ports = lab.world.ports();
    let slow = mirrorctl::ports::Ports {
        node: std::sync::Arc::new(SlowDisks {
            inner: ports.node.clone(),
            clock: ports.clock.clone(),
            delay: Duration::from_secs(45),
        }),
        ..ports
    };
    let mut ctx = mirrorctl::reconcile::Context::new(slow, lab.state_dir());
    ctx.max_passes = Some(500);
    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(mirrorctl::reconcile::reconcile(&backup, &ctx).await.expect("backup"), Settled::Converged);
    let snaps = lab.actions(&backup).into_iter().filter(|(_, a)| matches!(a, Action::CreateSnapshot { .. })).count();
    assert_eq!(snaps, 1, "CreateSnapshot called {snaps} times");
    lab.backup_snapshot(&spec, "b1");
}

/// What a periodic resync costs: one full look at a converged two-node cluster is
/// [`mirrorctl::observe::FULL_LOOK_DESCRIBES`] `Describe*` calls (the daemon stretches its resync
/// interval from that figure).
#[tokio::test(start_paused = true)]
async fn a_full_look_costs_the_describes_the_resync_budget_counts() {
    for (lab, os) in [(Lab::windows(8), Os::Windows), (Lab::linux(8), Os::Linux)] {
        let spec = example(os);
        let ctx = lab.ctx();
        let journal = mirrorctl::reconcile::open_journal(&spec, &ctx).await.unwrap();
        let describes = || -> u64 {
            lab.world.call_counts().iter().filter(|(k, _)| k.starts_with("ec2:Describe")).map(|(_, v)| v).sum()
        };
        let before = describes();
        mirrorctl::reconcile::plan_once(&spec, &ctx, &journal).await.unwrap();
        assert_eq!(describes() - before, u64::from(mirrorctl::observe::FULL_LOOK_DESCRIBES));
    }
}
