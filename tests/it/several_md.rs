//! Clusters with several md resources: the simulator's model of them (each md's volumes,
//! partitions, resource state, mirror and data of its own) and what mirrorctl does with them.

use std::sync::Arc;
use std::time::Duration;

use mirrorctl::ids::{ResourceName, ServerName};
use mirrorctl::ports::Ports;
use mirrorctl::ports::cluster::{ConfigChange, MirrorColor, ObjectState};
use mirrorctl::sim::{Scenario, SimWorld, verdict};
use mirrorctl::spec::{Os, Partition};

fn server(n: &str) -> ServerName {
    ServerName::parse(n).unwrap()
}
fn md(n: &str) -> ResourceName {
    ResourceName::parse(n).unwrap()
}

fn two(os: Os, seed: u64) -> (Arc<SimWorld>, Ports) {
    let w = SimWorld::new(Scenario::two_mirrors(os), seed, 1.0);
    let p = w.ports();
    (w, p)
}

async fn sleep(p: &Ports, secs: u64) {
    p.clock.sleep(Duration::from_secs(secs)).await;
}

/// The content of `md`'s data volume on each server.
fn sides(w: &SimWorld, name: &str) -> Vec<Option<mirrorctl::sim::Content>> {
    w.oracle_report().mirrors[&md(name)].values().copied().collect()
}

#[tokio::test(start_paused = true)]
async fn each_md_of_a_two_mirror_world_has_its_volumes_partitions_and_configuration() {
    for os in [Os::Windows, Os::Linux] {
        let (w, p) = two(os, 1);
        let sc = w.scenario();
        let config = p.cluster.config().await.unwrap();
        let names: Vec<&str> = config.mirrors.iter().map(|m| m.resource.as_str()).collect();
        assert_eq!(names, ["md1", "md2"], "clp.conf lists every md");
        let status = p.cluster.status().await.unwrap();
        for name in ["md1", "md2"] {
            assert_eq!(status.resources[&md(name)].state, ObjectState::Online, "{os:?} {name}");
            let colors = p.cluster.mirror_status(&md(name)).await.unwrap();
            assert!(colors.colors.values().all(|c| *c == MirrorColor::Green), "{name}: {colors:?}");
        }
        for s in &sc.servers {
            let disks = p.node.disks(&s.name).await.unwrap();
            assert_eq!(disks.len(), 2, "one disk per md on {}: {disks:?}", s.name);
            for m in sc.mirrors() {
                let vol = w.volume_at(&s.name, &m.device).expect("md volume attached");
                let disk = disks.iter().find(|d| d.volume == vol).expect("the OS sees it");
                for p in [&m.cluster_partition, &m.data_partition] {
                    let found = disk.partitions.iter().any(|i| match p {
                        Partition::Letter(c) => i.letter == Some(*c),
                        Partition::Device(d) => i.is_named(d),
                    });
                    assert!(found, "{os:?} {}: {p} on the disk of {vol}: {disk:?}", s.name);
                }
            }
        }
        assert_ne!(
            w.volume_at(&sc.servers[0].name, &sc.device),
            w.volume_at(&sc.servers[0].name, &sc.more_mirrors[0].device),
            "each md on a volume of its own"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn each_md_keeps_data_of_its_own_and_is_quiesced_on_its_own() {
    let (w, p) = two(Os::Windows, 2);
    sleep(&p, 20).await;
    let (a1, a2) = (sides(&w, "md1"), sides(&w, "md2"));
    assert!(a1[0].is_some() && a1[0] == a1[1] && a2[0] == a2[1], "both md replicate: {a1:?} {a2:?}");
    assert_ne!(a1[0], a2[0], "md1 and md2 hold different data");
    assert!(a2[0].unwrap().version >= 19, "md2 is written to: {a2:?}");

    // Stopping md2 quiesces md2 alone (and the business resource, which depends on both).
    p.cluster.stop_resource(&md("md2")).await.unwrap();
    let report = w.oracle_report();
    let points: Vec<&str> = report.quiesce_points.iter().map(|q| q.md.as_str()).collect();
    assert_eq!(points, ["md2"], "one quiesce point, of md2");
    let status = p.cluster.status().await.unwrap();
    assert_eq!(status.resources[&md("md1")].state, ObjectState::Online);
    assert_eq!(status.resources[&md("md2")].state, ObjectState::Offline);
    assert_eq!(status.resources[&w.scenario().business].state, ObjectState::Offline);
    let frozen = sides(&w, "md2");
    let before = sides(&w, "md1");
    sleep(&p, 10).await;
    assert_eq!(sides(&w, "md2"), frozen, "md2 offline: no writes");
    assert_ne!(sides(&w, "md1"), before, "md1 still written to");
    let v = verdict::backup_of(&w, &md("md2"), &mirrorctl::ids::SnapshotId::parse("snap-0123456789abcdef0").unwrap());
    assert_eq!(v.quiesce_points, [frozen[0].unwrap()]);

    // Starting the business resource brings md2 back with it.
    p.cluster.start_resource(&w.scenario().business, &server("server1")).await.unwrap();
    let status = p.cluster.status().await.unwrap();
    assert_eq!(status.resources[&md("md2")].state, ObjectState::Online);
}

#[tokio::test(start_paused = true)]
async fn a_standby_shutdown_breaks_and_its_return_recovers_every_md() {
    let (w, p) = two(Os::Linux, 3);
    let standby = server("node2");
    p.cluster.shutdown_server(&standby).await.unwrap();
    sleep(&p, 60).await;
    for name in ["md1", "md2"] {
        let s = sides(&w, name);
        assert_ne!(s[0], s[1], "{name}: the standby side stopped receiving writes");
    }
    let inst = w.scenario().servers[1].instance.clone();
    p.cloud.start_instance(&inst).await.unwrap();
    sleep(&p, 600).await;
    for name in ["md1", "md2"] {
        let colors = p.cluster.mirror_status(&md(name)).await.unwrap();
        assert!(colors.healthy(), "{name} recovered: {colors:?}");
    }
    // Recovery copies the active side; writes go on, so compare after stopping them.
    p.cluster.stop_group(&w.scenario().group).await.unwrap();
    for name in ["md1", "md2"] {
        let s = sides(&w, name);
        assert_eq!(s[0], s[1], "{name}: both sides identical again");
    }
}

#[tokio::test(start_paused = true)]
async fn an_accident_reaches_every_md_and_a_re_add_checks_each_md_on_its_own_volume() {
    let (w, p) = two(Os::Windows, 4);
    sleep(&p, 5).await;
    w.accident();
    sleep(&p, 5).await;
    assert!(verdict::accident_everywhere(&w), "both sides of both md hold the accident");

    // md2 removed and re-added with md1's letters: its partitions are looked for on md2's own
    // volume (/dev/sdy), where R:/M: are not.
    let config = p.cluster.config().await.unwrap();
    let md2 = config.mirror(&md("md2")).unwrap().clone();
    p.cluster.stop_group(&w.scenario().group).await.unwrap();
    p.cluster.apply_config(&[ConfigChange::RemoveMirror { resource: md("md2") }]).await.unwrap();
    let wrong = mirrorctl::ports::cluster::MdDefinition {
        cluster_partition: Partition::Letter('R'),
        data_partition: Partition::Letter('M'),
        ..md2.clone()
    };
    let err = p.cluster.apply_config(&[ConfigChange::AddMirror(wrong)]).await.unwrap_err();
    assert!(err.message.contains("R:") && err.message.contains("server1"), "{err:?}");
    p.cluster.apply_config(&[ConfigChange::AddMirror(md2)]).await.unwrap();
    let config = p.cluster.config().await.unwrap();
    assert_eq!(config.mirrors.len(), 2, "{config:?}");
    assert!(w.oracle_report().corruptions.is_empty());
}
