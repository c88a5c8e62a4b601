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

// --- backups of several md -------------------------------------------------------------------

use crate::support::common::Lab;
use mirrorctl::execute::CrashPoint;
use mirrorctl::ports::cloud::{Snapshot, tag};
use mirrorctl::reconcile::{ReconcileError, Settled};
use mirrorctl::spec::Spec;

const TAKE_B1: &str = "[backup]\nkeep = 7\ntake = [\"b1\"]\n";

/// A lab of the two-md scenario of `os` and its file asking for backup `b1`.
fn two_md_lab(os: Os, seed: u64) -> (Lab, Spec) {
    let scenario = Scenario::two_mirrors(os);
    let spec = scenario.spec(TAKE_B1).expect("the scenario's file is valid");
    (Lab::new(scenario, seed), spec)
}

/// The snapshots of backup `b1`.
fn b1_snapshots(lab: &Lab) -> Vec<Snapshot> {
    lab.world
        .inventory()
        .snapshots
        .into_iter()
        .filter(|s| s.tags.get(tag::REQUEST).map(String::as_str) == Some("b1"))
        .collect()
}

/// Backup `b1` of both md is one set of exactly the standby's two md volumes, each snapshot says
/// what it holds and holds its md's quiesce point (the only one), nothing is corrupted, and
/// business is back on the active.
fn assert_two_md_backup(lab: &Lab, spec: &Spec) {
    let sc = lab.world.scenario();
    let standby = &sc.servers[1].name;
    let snaps = b1_snapshots(lab);
    assert_eq!(snaps.len(), 2, "one snapshot per md volume: {snaps:?}");
    let set = snaps[0].tags.get(tag::SNAPSHOT_SET);
    assert!(set.is_some() && snaps.iter().all(|s| s.tags.get(tag::SNAPSHOT_SET) == set), "one set: {snaps:?}");
    assert!(snaps.iter().all(|s| s.started == snaps[0].started), "one point in time: {snaps:?}");
    for m in sc.mirrors() {
        let vol = lab.world.volume_at(standby, &m.device).expect("standby volume");
        let snap = snaps.iter().find(|s| s.volume.as_ref() == Some(&vol)).expect("a snapshot of each md volume");
        assert_eq!(snap.tags.get(tag::HOLDS), Some(&format!("{}:cluster+data", m.resource)), "{snap:?}");
        assert_eq!(snap.tags.get(tag::DEVICE), Some(&m.device.to_string()), "{snap:?}");
        let v = verdict::backup_of(&lab.world, &m.resource, &snap.id);
        assert!(v.captured_once(), "{}: the snapshot holds its only quiesce point: {v:?}", m.resource);
        assert!(v.corruptions.is_empty(), "{:?}", v.corruptions);
    }
    let status = lab.world.cluster_status();
    for (r, p) in &status.resources {
        assert_eq!(p.state, ObjectState::Online, "{r} back online: {status:?}");
        assert_eq!(p.current.as_ref(), Some(&spec.cluster.servers[0].name), "{r}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_backup_of_two_md_is_one_snapshot_set_each_holding_its_quiesce_point() {
    for os in [Os::Windows, Os::Linux] {
        let (lab, spec) = two_md_lab(os, 31);
        assert_eq!(lab.apply(&spec).await, Settled::Converged, "{os:?}");
        assert_two_md_backup(&lab, &spec);
        assert_eq!(lab.world.call_counts().get("ec2:CreateSnapshots"), Some(&1), "one call");
        let kinds: Vec<String> = lab.actions(&spec).into_iter().map(|(id, _)| id).collect();
        let active = &spec.cluster.servers[0].name;
        for k in [format!("backup/b1/stop-md@{active}"), format!("backup/b1/stop-md-md2@{active}")] {
            assert!(kinds.contains(&k), "{k} in {kinds:?}");
        }
        let starts = kinds.iter().filter(|k| k.contains("/restart-") || k.contains("/start-md")).count();
        assert_eq!(starts, 1, "one start brings business and both md back: {kinds:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_backup_of_one_volume_says_what_it_holds_in_its_create_call() {
    let lab = Lab::new(Scenario::windows_runbook(), 32);
    let spec = Scenario::windows_runbook().spec(TAKE_B1).expect("valid");
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let snaps = b1_snapshots(&lab);
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    assert_eq!(snaps[0].tags.get(tag::HOLDS).map(String::as_str), Some("md:cluster+data"));
    assert_eq!(snaps[0].tags.get(tag::DEVICE).map(String::as_str), Some("/dev/sdx"));
    assert_eq!(lab.world.call_counts().get("ec2:CreateTags"), None, "tagged in the create call itself");
}

/// A crash before the intent of each step of a two-md backup, then a restart: it converges with
/// one set of two snapshots, each holding its md's quiesce point.
#[tokio::test(start_paused = true)]
async fn two_md_backup_crash_at_every_step_boundary() {
    let mut covered = 0;
    for n in 1.. {
        let (mut lab, spec) = two_md_lab(Os::Windows, 300 + n as u64);
        let (result, switch) = lab.apply_with_crash(&spec, CrashPoint::BeforeIntent, n).await;
        match result {
            Err(ReconcileError::Exec(mirrorctl::execute::ExecError::Crashed(_))) => assert!(switch.fired()),
            Ok(Settled::Converged) => {
                assert!(!switch.fired());
                assert_two_md_backup(&lab, &spec);
                break;
            }
            other => panic!("crash #{n}: {other:?}"),
        }
        lab.restart();
        assert_eq!(lab.apply(&spec).await, Settled::Converged, "resume after crash #{n}");
        assert_two_md_backup(&lab, &spec);
        covered += 1;
    }
    assert!(covered >= 8, "covered {covered}");
}

// --- `mirrorctl lab --mirrors 2` -----------------------------------------------------------------

/// The lab's story on two md resources passes on both OSes: one snapshot set, every md's snapshot
/// holding its quiesce point, the accident on every md, the restore by backup name, each md
/// restored (both sides identical, accident gone, continuing from its own snapshot), nothing
/// corrupted or deleted, four old volumes kept.
#[test]
fn lab_with_two_mirrors_passes_on_both_oses() {
    for os in ["windows", "linux"] {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
            .arg("--state-dir")
            .arg(dir.path())
            .args(["lab", "--mirrors", "2", "--os", os, "--speed", "500", "-o", "json"])
            .output()
            .expect("run mirrorctl lab");
        let stdout = String::from_utf8_lossy(&out.stdout);
        let doc: serde_json::Value = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)));
        let checks = doc["checks"].as_array().expect("checks");
        let failed: Vec<&serde_json::Value> = checks.iter().filter(|c| c["ok"] != true).collect();
        assert!(failed.is_empty() && out.status.success(), "{os}: {failed:?}");
        assert_eq!(doc["mirrors"], 2);
        for id in [
            "one-snapshot-set",
            "md1:snapshot-holds-quiesce-point",
            "md2:snapshot-holds-quiesce-point",
            "md1:accident-gone",
            "md2:accident-gone",
            "md1:data-continues-from-snapshot",
            "md2:data-continues-from-snapshot",
            "md2:both-sides-identical",
            "no-corruption",
            "old-volumes-kept",
        ] {
            assert!(checks.iter().any(|c| c["check"] == id && c["ok"] == true), "{os}: {id} in {checks:?}");
        }
        let snaps = doc["snapshots"].as_object().expect("snapshots per md");
        assert_eq!(snaps.len(), 2, "{os}: {snaps:?}");
        assert_ne!(snaps["md1"], snaps["md2"]);
        assert_eq!(doc["api_calls"]["ec2:CreateSnapshots"], 1, "{os}");
        assert_eq!(doc["api_calls"]["ec2:CreateVolume"], 4, "{os}: two volumes per server");
    }
}

/// `--mirrors 2` refuses what a set restore cannot do, as a command-line error (exit 64).
#[test]
fn lab_with_two_mirrors_refuses_fast_restore_and_the_vendor_procedure() {
    for extra in [&["--fast-restore", "--speed", "500"][..], &["--procedure", "vendor", "--speed", "500"]] {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
            .arg("--state-dir")
            .arg(dir.path())
            .args(["lab", "--mirrors", "2"])
            .args(extra)
            .output()
            .expect("run mirrorctl lab");
        assert_eq!(out.status.code(), Some(64), "{extra:?}: {}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("--mirrors 2"), "{extra:?}");
    }
}
