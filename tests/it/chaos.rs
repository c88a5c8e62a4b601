//! The kill -9 chaos campaign (`mirrorctl bench chaos`) at CI size, and its checks.
//!
//! The first test runs the real binary: it starts its own `mirrorctl run --world lab` daemons,
//! kills them with SIGKILL at seeded random points of backups and restores, restarts them, and
//! judges the end state with the simulated worlds' own inventory and oracle. The full campaign
//! (`--points 200`) is run by hand; its tally is in the README. The other tests prove that the
//! campaign's checks do catch what they claim to catch: a clean in-process flow passes them, and
//! the same world with a duplicate volume, a second snapshot, or the accident back fails them.

use crate::support::common;

use std::process::Command;
use std::time::Duration;

use common::{Lab, example, with_backups, with_restore};
use mirrorctl::harness::chaos::{RestoreExpect, Violation, check_backup, check_restore, check_status};
use mirrorctl::ids::VolumeId;
use mirrorctl::ports::Clock as _;
use mirrorctl::ports::cloud::{CreateSnapshot, CreateVolume, Tags, tag};
use mirrorctl::reconcile::Settled;
use mirrorctl::spec::Os;

const BIN: &str = env!("CARGO_BIN_EXE_mirrorctl");

/// The number after `label` on the tally line that starts with it.
fn tally_number(out: &str, label: &str) -> usize {
    let line = out.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no {label:?} line in:\n{out}"));
    line[label.len()..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number on {line:?}"))
}

#[test]
fn a_reduced_chaos_campaign_against_the_real_binary_is_clean() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(BIN)
        .arg("--state-dir")
        .arg(dir.path())
        .args(["bench", "chaos", "--points", "20", "--seed", "7"])
        .env_remove("MIRRORCTL_STATE_DIR")
        .output()
        .expect("run mirrorctl bench chaos");
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(tally_number(&stdout, "kill points (SIGKILL)") >= 20, "{stdout}");
    let points = stdout.lines().find(|l| l.starts_with("kill points")).unwrap();
    assert!(!points.contains("backup 0,") && !points.contains("restore 0)"), "both flows were killed: {points}");
    assert_eq!(tally_number(&stdout, "violations"), 0, "{stdout}");
    let converged = stdout.lines().find(|l| l.starts_with("flows converged")).unwrap();
    let nums: Vec<&str> = converged.split_whitespace().filter(|w| w.parse::<usize>().is_ok()).collect();
    assert_eq!(nums.len(), 2, "{converged}");
    assert_eq!(nums[0], nums[1], "every flow converged: {converged}");
    assert!(stdout.contains("restore: inside") || stdout.contains("restore: after"), "{stdout}");
    assert!(stdout.trim_end().ends_with("chaos campaign CLEAN"), "{stdout}");
}

/// Host loss: two daemons as two hosts on one DynamoDB table (moto's), each with its own local
/// directory; every kill hits the lease holder and deletes its directory, and the other host must
/// take the flow over from the table alone. The world's own state judges every flow.
#[test]
fn two_hosts_on_dynamodb_chaos_campaign_is_clean() {
    let moto = crate::support::Moto::start();
    let dir = tempfile::tempdir().expect("temp dir");
    let env = moto.child_env();
    let mirrorctl = |args: &[&str]| {
        Command::new(BIN)
            .arg("--state-dir")
            .arg(dir.path())
            .args(args)
            .envs(env.clone())
            .env_remove("MIRRORCTL_STATE_DIR")
            .env_remove("MIRRORCTL_STORE")
            .output()
            .expect("run mirrorctl")
    };
    let init = mirrorctl(&["store", "init", "--store", "dynamodb:chaos"]);
    assert!(init.status.success(), "{}", String::from_utf8_lossy(&init.stderr));
    let out = mirrorctl(&[
        "--store",
        "dynamodb:chaos",
        "bench",
        "chaos",
        "--hosts",
        "2",
        "--lease-secs",
        "2",
        "--points",
        "6",
        "--seed",
        "3",
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    println!("{stdout}");
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("hosts                        2, each with its own directory"), "{stdout}");
    let points = tally_number(&stdout, "kill points (SIGKILL)");
    assert!(points >= 6, "{stdout}");
    // Every kill but possibly the last of a flow is seen taken over before the flow converges.
    assert!(tally_number(&stdout, "takeovers") >= 1, "{stdout}");
    assert_eq!(tally_number(&stdout, "violations"), 0, "{stdout}");
    let converged = stdout.lines().find(|l| l.starts_with("flows converged")).unwrap();
    let nums: Vec<&str> = converged.split_whitespace().filter(|w| w.parse::<usize>().is_ok()).collect();
    assert_eq!(nums[0], nums[1], "every flow converged: {converged}");
    assert!(stdout.trim_end().ends_with("chaos campaign CLEAN"), "{stdout}");
    // A missing table stops the campaign before any trial, naming the store.
    let out = mirrorctl(&["--store", "dynamodb:no-such-table", "bench", "chaos", "--hosts", "2", "--points", "1"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("dynamodb:no-such-table"), "{stderr}");
}

#[test]
fn bad_campaign_options_are_usage_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    for (args, says) in [
        (&["bench", "chaos", "--points", "0"][..], "--points must be at least 1"),
        (&["bench", "chaos", "--speed", "0"][..], "--speed must be a positive number"),
        (&["bench", "chaos", "--max-kills", "0"][..], "--max-kills must be at least 1"),
        (&["bench", "--quick", "chaos"][..], "cannot be used with"),
        (&["bench", "chaos", "--hosts", "2"][..], "--hosts 2 needs a store every host reaches"),
        (&["bench", "chaos", "--lease-secs", "2"][..], "--lease-secs applies to a shared store"),
    ] {
        let out = Command::new(BIN).arg("--state-dir").arg(dir.path()).args(args).output().expect("run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

/// The harness is a library entry point of its own: plain options in, its own error type out (no
/// command line, no CLI error), so a test or another front end can run a campaign.
#[tokio::test]
async fn the_campaign_harness_takes_plain_options_and_answers_with_its_own_errors() {
    use mirrorctl::harness::HarnessError;
    use mirrorctl::harness::chaos::{ChaosOptions, ChaosProcedure, run};
    let dir = tempfile::tempdir().expect("temp dir");
    let ok = ChaosOptions {
        points: 1,
        seed: 1,
        speed: 100.0,
        max_kills: 1,
        keep: false,
        procedure: ChaosProcedure::Both,
        hosts: 1,
        lease_secs: None,
    };
    for (opts, says) in [
        (ChaosOptions { points: 0, ..ok.clone() }, "--points must be at least 1"),
        (ChaosOptions { hosts: 2, ..ok.clone() }, "--hosts 2 needs a store every host reaches"),
    ] {
        match run(dir.path(), &opts, None).await {
            Err(HarnessError::Usage(text)) => assert!(text.contains(says), "{text}"),
            Err(e) => panic!("{says}: not a usage error: {e}"),
            Ok(report) => panic!("{says}: ran: {}", report.text),
        }
    }
}

fn kinds(vs: &[Violation]) -> Vec<&'static str> {
    vs.iter().map(|v| v.kind).collect()
}

#[tokio::test(start_paused = true)]
async fn the_campaign_checks_pass_a_clean_flow_and_catch_duplicates_and_bad_data() {
    let lab = Lab::windows(11);
    let spec = example(Os::Windows);
    let servers: Vec<_> = spec.cluster.servers.iter().map(|s| s.name.clone()).collect();
    let before: Vec<VolumeId> = lab.world.inventory().volumes.into_iter().map(|v| v.id).collect();
    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(lab.apply(&backup).await, Settled::Converged);
    assert_eq!(check_backup(&lab.world, &spec, "b1", &before), Vec::<Violation>::new());
    assert_eq!(check_status(&lab.state_dir(), &spec, "backup/b1", None), Vec::<Violation>::new());

    let snap = lab.backup_snapshot(&spec, "b1");
    lab.world.clock().sleep(Duration::from_mins(10)).await;
    lab.world.accident();
    let expect = RestoreExpect {
        snapshot: snap.clone(),
        request: "r1".into(),
        abandoned: None,
        originals: servers.iter().filter_map(|s| lab.world.mirror_volume(s)).collect(),
        before: lab.world.inventory().volumes.into_iter().map(|v| v.id).collect(),
    };
    // Before the restore, the restore checks fail: no r1 volumes, the accident is in the data.
    let early = kinds(&check_restore(&lab.world, &spec, &expect));
    assert!(early.contains(&"missing-volume") && early.contains(&"accident-kept"), "{early:?}");
    let restore = with_restore(backup.clone(), &snap, "r1", true);
    assert_eq!(lab.apply(&restore).await, Settled::Converged);
    assert_eq!(check_restore(&lab.world, &spec, &expect), Vec::<Violation>::new());
    assert_eq!(check_status(&lab.state_dir(), &spec, "restore/r1", None), Vec::<Violation>::new());
    // The status check is about the operation asked for.
    assert_eq!(kinds(&check_status(&lab.state_dir(), &spec, "restore/r9", None)), ["status"]);

    // A second r1 volume for the first server, made behind mirrorctl's back.
    let ports = lab.world.ports();
    let cluster = spec.cluster.name.to_string();
    let tags: Tags = [
        (tag::CLUSTER.to_owned(), cluster.clone()),
        (tag::REQUEST.to_owned(), "r1".to_owned()),
        (tag::SERVER.to_owned(), servers[0].to_string()),
    ]
    .into();
    ports
        .cloud
        .create_volume(&CreateVolume {
            zone: spec.cluster.servers[0].zone.clone(),
            snapshot: snap.clone(),
            size_gib: None,
            volume_type: "gp3".into(),
            iops: None,
            throughput: None,
            kms_key: None,
            initialization_rate: None,
            client_token: "chaos-test-duplicate".into(),
            tags,
        })
        .await
        .expect("create a duplicate volume");
    assert_eq!(kinds(&check_restore(&lab.world, &spec, &expect)), ["duplicate-volume"]);

    // A second snapshot of backup b1.
    let standby_volume = lab.world.mirror_volume(&servers[1]).expect("attached");
    let tags: Tags = [(tag::CLUSTER.to_owned(), cluster), (tag::REQUEST.to_owned(), "b1".to_owned())].into();
    ports
        .cloud
        .create_snapshot(&CreateSnapshot { volume: standby_volume, description: "dup".into(), tags })
        .await
        .expect("create a duplicate snapshot");
    assert!(kinds(&check_backup(&lab.world, &spec, "b1", &before)).contains(&"duplicate-snapshot"));
    assert!(kinds(&check_restore(&lab.world, &spec, &expect)).contains(&"duplicate-snapshot"));

    // The accident again, after the restore: the data check fails.
    lab.world.accident();
    assert!(kinds(&check_restore(&lab.world, &spec, &expect)).contains(&"accident-kept"));

    // The service that depends on md left offline (the group still reads online: its virtual IP
    // is up): business is not back, and the check says so.
    let business = lab.world.scenario().business;
    ports.cluster.stop_resource(&business).await.expect("stop the service");
    let v = check_restore(&lab.world, &spec, &expect);
    assert!(v.iter().any(|v| v.kind == "business-down" && v.detail.contains(business.as_str())), "{v:?}");
}
