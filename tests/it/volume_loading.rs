//! How long a volume restored from a snapshot takes to load in the simulator: the snapshot's data
//! at the volume's rate (fails on f1148e9: the whole volume was loaded whatever it held).

use std::time::Duration;

use mirrorctl::ports::cloud::{CreateVolume, SnapshotState, Tags};
use mirrorctl::sim::{Scenario, SimWorld};

/// EC2's remaining-seconds estimate for a volume restored from a fresh snapshot of server1's
/// 100 GiB mirror volume holding `data_gib`, right after it left `creating`.
async fn remaining_after_creation(data_gib: Option<u32>, rate: Option<u32>) -> u64 {
    let mut scenario = Scenario::windows_runbook();
    scenario.data_gib = data_gib;
    let server = scenario.servers[0].clone();
    let world = SimWorld::new(scenario, 7, 1.0);
    let ports = world.ports();
    let snap = world.add_snapshot(&server.name, Tags::new(), SnapshotState::Completed).expect("snapshot").id;
    let req = CreateVolume {
        zone: server.zone.clone(),
        snapshot: snap,
        size_gib: None,
        volume_type: "gp3".to_owned(),
        iops: None,
        throughput: None,
        kms_key: None,
        initialization_rate: rate,
        client_token: "t-load".to_owned(),
        tags: Tags::new(),
    };
    let v = ports.cloud.create_volume(&req).await.expect("create");
    // Creation takes about 3 s; a minute later the volume has loaded for about 57 s.
    ports.clock.sleep(Duration::from_mins(1)).await;
    let init = ports.cloud.volume_initialization(std::slice::from_ref(&v.id)).await.expect("status");
    init[0].remaining_s.expect("an estimate")
}

#[tokio::test(start_paused = true)]
async fn a_restored_volume_loads_the_snapshots_data_not_the_whole_disk() {
    #[allow(clippy::cast_precision_loss)] // seconds
    let near = |got: u64, want: f64| (got as f64 - want).abs() < 10.0;
    // The whole 100 GiB at the default rate (40 MiB/s): 2,560 s, about 60 s of which have passed.
    let whole = remaining_after_creation(None, None).await;
    assert!(near(whole, 2560.0 - 57.0), "{whole}");
    // 10 GiB of data on the same disk: 256 s.
    let ten = remaining_after_creation(Some(10), None).await;
    assert!(near(ten, 256.0 - 57.0), "{ten}");
    // At a provisioned 300 MiB/s: 10 GiB take 34 s, done within the minute.
    let fast = remaining_after_creation(Some(10), Some(300)).await;
    assert_eq!(fast, 0);
}
