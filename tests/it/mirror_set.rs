//! Several mirror disks per cluster: the file's md resources against the live `clp.conf`, and
//! what a file with several md resources may do.

use crate::support::common;

use common::{Lab, example, with_backups, with_restore};
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
