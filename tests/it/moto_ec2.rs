//! The aws-sdk-ec2 adapter against `moto_server`: every `Cloud` operation on the wire, error
//! mapping, pagination, device-name equivalence, call counters, the client-side token bucket, and
//! one check of the resulting EC2 state from outside mirrorctl (the AWS CLI).
//!
//! Each test starts its own `moto_server` on a free loopback port (killed by pid when the test
//! ends), so tests run in parallel without sharing state. Real tokio time: the SDK's timeouts
//! must not fire on a paused clock while moto answers.

use crate::support;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use mirrorctl::adapters::aws::{AwsCloud, Budget, Budgets, DryRunProbe};
use mirrorctl::ids::{DeviceName, InstanceId, SnapshotId, VolumeId};
use mirrorctl::ports::cloud::{
    AttachState, Cloud, CreateSnapshot, CreateVolume, InstanceState, ShutdownBehavior, SnapshotFilter, SnapshotState,
    Tags, VolumeFilter, VolumeState, tag,
};
use mirrorctl::ports::{ErrorClass, PortError};
use support::{Moto, REGION, run_server, sdx, stop_instance};

fn tags(pairs: &[(&str, &str)]) -> Tags {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
}

fn by_id(v: &VolumeId) -> VolumeFilter {
    VolumeFilter { ids: vec![v.clone()], ..VolumeFilter::default() }
}

fn err<T: std::fmt::Debug>(r: Result<T, PortError>) -> PortError {
    r.expect_err("the call should fail")
}

fn restore_req(snapshot: &SnapshotId, zone: &str, token: &str) -> CreateVolume {
    CreateVolume {
        zone: mirrorctl::ids::Zone::parse(zone).unwrap(),
        snapshot: snapshot.clone(),
        size_gib: None,
        volume_type: "gp3".to_owned(),
        iops: Some(4000),
        throughput: Some(200),
        kms_key: None,
        initialization_rate: Some(200),
        client_token: token.to_owned(),
        tags: tags(&[(tag::CLUSTER, "prod-db"), (tag::REQUEST, "incident-1"), (tag::ROLE, "mirror")]),
    }
}

#[tokio::test]
async fn every_cloud_operation_round_trips_through_moto() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let s1 = run_server(&sdk, "ap-northeast-1a", 20).await;
    let cloud = moto.cloud().await;

    // DescribeInstances: zone, state, the mirror device (the root /dev/sda1 is not a data slot).
    let inst = cloud.describe_instances(std::slice::from_ref(&s1.instance)).await.unwrap();
    assert_eq!(inst.len(), 1);
    assert_eq!((&inst[0].id, &inst[0].zone, inst[0].state), (&s1.instance, &s1.zone, InstanceState::Running));
    assert_eq!(inst[0].devices, vec![(sdx(), s1.volume.clone())]);
    assert_eq!(cloud.describe_instances(&[]).await.unwrap().len(), 1);
    assert_eq!(cloud.shutdown_behavior(&s1.instance).await.unwrap(), ShutdownBehavior::Stop);

    // DescribeVolumes by id and by attachment.
    let v = cloud.describe_volumes(&by_id(&s1.volume)).await.unwrap();
    assert_eq!(v.len(), 1);
    assert_eq!((v[0].state, v[0].size_gib, v[0].volume_type.as_str()), (VolumeState::InUse, 20, "gp3"));
    assert_eq!(v[0].attachments.len(), 1);
    assert_eq!((&v[0].attachments[0].instance, &v[0].attachments[0].device), (&s1.instance, &sdx()));
    assert_eq!(v[0].attachments[0].state, AttachState::Attached);
    let attached = VolumeFilter { attached_to: vec![s1.instance.clone()], ..VolumeFilter::default() };
    let ids: Vec<VolumeId> = cloud.describe_volumes(&attached).await.unwrap().into_iter().map(|v| v.id).collect();
    assert!(ids.contains(&s1.volume), "{ids:?}");

    // CreateTags, then DescribeVolumes by tag (an intersection of tag filters).
    cloud.create_tags(s1.volume.as_str(), &tags(&[(tag::CLUSTER, "prod-db"), (tag::SERVER, "server1")])).await.unwrap();
    let both =
        VolumeFilter { tags: tags(&[(tag::CLUSTER, "prod-db"), (tag::SERVER, "server1")]), ..Default::default() };
    assert_eq!(cloud.describe_volumes(&both).await.unwrap().iter().map(|v| &v.id).collect::<Vec<_>>(), [&s1.volume]);
    let other =
        VolumeFilter { tags: tags(&[(tag::CLUSTER, "prod-db"), (tag::SERVER, "server2")]), ..Default::default() };
    assert!(cloud.describe_volumes(&other).await.unwrap().is_empty());

    // CreateSnapshot with tags in the call; DescribeSnapshots by tag, by volume, by id.
    let snap_tags = tags(&[(tag::CLUSTER, "prod-db"), (tag::ROLE, "backup"), (tag::REQUEST, "daily-20261124")]);
    let req = CreateSnapshot { volume: s1.volume.clone(), description: "mirrorctl backup".to_owned(), tags: snap_tags };
    let snap = cloud.create_snapshot(&req).await.unwrap();
    assert_eq!(snap.volume.as_ref(), Some(&s1.volume));
    assert_eq!(snap.size_gib, 20);
    assert_eq!(snap.tags, req.tags);
    assert!(matches!(snap.state, SnapshotState::Pending | SnapshotState::Completed));
    let found = cloud
        .describe_snapshots(&SnapshotFilter { tags: tags(&[(tag::ROLE, "backup")]), ..Default::default() })
        .await
        .unwrap();
    assert_eq!(found.iter().map(|s| &s.id).collect::<Vec<_>>(), [&snap.id]);
    assert_eq!(found[0].progress, 100, "moto completes snapshots at once");
    let of_vol = SnapshotFilter { volume: Some(s1.volume.clone()), ..Default::default() };
    assert_eq!(cloud.describe_snapshots(&of_vol).await.unwrap().len(), 1);
    let by_snap = SnapshotFilter { ids: vec![snap.id.clone()], ..Default::default() };
    assert_eq!(cloud.describe_snapshots(&by_snap).await.unwrap()[0].id, snap.id);
    // moto's ~1,200 preloaded snapshots count as the account's own ("self"): filter by tag.
    assert!(cloud.describe_snapshots(&SnapshotFilter::default()).await.unwrap().iter().any(|s| s.id == snap.id));

    // CreateVolume from the snapshot with every option, tags in the call.
    let new =
        cloud.create_volume(&restore_req(&snap.id, "ap-northeast-1a", "restore-incident-1-server1")).await.unwrap();
    assert_eq!((new.snapshot.as_ref(), &new.zone, new.size_gib), (Some(&snap.id), &s1.zone, 20));
    assert_eq!(new.tags.get(tag::ROLE).map(String::as_str), Some("mirror"));
    assert!(matches!(new.state, VolumeState::Creating | VolumeState::Available));

    // Detach the old volume (with its instance id), attach the new one at /dev/xvdx: one slot.
    cloud.detach_volume(&s1.volume, &s1.instance).await.unwrap();
    assert!(cloud.describe_volumes(&by_id(&s1.volume)).await.unwrap()[0].attachments.is_empty());
    let xvdx = DeviceName::parse("/dev/xvdx").unwrap();
    cloud.attach_volume(&new.id, &s1.instance, &xvdx).await.unwrap();
    let now = cloud.describe_volumes(&by_id(&new.id)).await.unwrap();
    assert_eq!(now[0].attachments[0].device, sdx(), "/dev/xvdx and /dev/sdx are one slot");
    let inst = cloud.describe_instances(std::slice::from_ref(&s1.instance)).await.unwrap();
    assert!(inst[0].devices.contains(&(sdx(), new.id.clone())), "{:?}", inst[0].devices);

    // StartInstances after a stop; DeleteSnapshot.
    stop_instance(&sdk, &s1.instance).await;
    let stopped = cloud.describe_instances(std::slice::from_ref(&s1.instance)).await.unwrap();
    assert_eq!(stopped[0].state, InstanceState::Stopped);
    cloud.start_instance(&s1.instance).await.unwrap();
    let started = cloud.describe_instances(std::slice::from_ref(&s1.instance)).await.unwrap();
    assert!(matches!(started[0].state, InstanceState::Pending | InstanceState::Running), "{:?}", started[0].state);
    cloud.delete_snapshot(&snap.id).await.unwrap();
    assert_eq!(err(cloud.describe_snapshots(&by_snap).await).code, "InvalidSnapshot.NotFound");

    // One counted call per request, named as in the simulator.
    let counts = cloud.call_counts();
    for (api, n) in [
        ("ec2:DescribeInstances", 5),
        ("ec2:DescribeInstanceAttribute", 1),
        ("ec2:CreateTags", 1),
        ("ec2:CreateSnapshot", 1),
        ("ec2:DescribeSnapshots", 5),
        ("ec2:CreateVolume", 1),
        ("ec2:DetachVolume", 1),
        ("ec2:AttachVolume", 1),
        ("ec2:StartInstances", 1),
        ("ec2:DeleteSnapshot", 1),
        ("ec2:DescribeVolumes", 6),
    ] {
        assert_eq!(counts.get(api).copied(), Some(n), "{api} in {counts:?}");
    }
}

#[tokio::test]
async fn aws_errors_keep_their_code_message_and_class() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let s1 = run_server(&sdk, "ap-northeast-1a", 8).await;
    let cloud = moto.cloud().await;
    let ghost_vol = VolumeId::parse("vol-0000000000000dead").unwrap();
    let ghost_snap = SnapshotId::parse("snap-0000000000000dead").unwrap();
    let ghost_inst = InstanceId::parse("i-0000000000000dead").unwrap();

    let e = err(cloud.describe_volumes(&by_id(&ghost_vol)).await);
    assert_eq!((e.code.as_str(), e.class), ("InvalidVolume.NotFound", ErrorClass::Retryable));
    assert!(e.message.contains("vol-0000000000000dead"), "{}", e.message);
    assert_eq!(err(cloud.attach_volume(&ghost_vol, &s1.instance, &sdx()).await).code, "InvalidVolume.NotFound");
    let snap_filter = SnapshotFilter { ids: vec![ghost_snap.clone()], ..Default::default() };
    assert_eq!(err(cloud.describe_snapshots(&snap_filter).await).code, "InvalidSnapshot.NotFound");
    assert_eq!(err(cloud.delete_snapshot(&ghost_snap).await).code, "InvalidSnapshot.NotFound");
    let e = err(cloud.create_volume(&restore_req(&ghost_snap, "ap-northeast-1a", "t")).await);
    assert_eq!((e.code.as_str(), e.class), ("InvalidSnapshot.NotFound", ErrorClass::Retryable));
    assert_eq!(
        err(cloud.describe_instances(std::slice::from_ref(&ghost_inst)).await).code,
        "InvalidInstanceID.NotFound"
    );
    assert_eq!(err(cloud.shutdown_behavior(&ghost_inst).await).code, "InvalidInstanceID.NotFound");
    assert_eq!(err(cloud.start_instance(&ghost_inst).await).code, "InvalidInstanceID.NotFound");
    assert_eq!(err(cloud.create_tags(ghost_vol.as_str(), &tags(&[("a", "b")])).await).code, "InvalidVolume.NotFound");

    // Detaching a volume that is not attached: moto answers InvalidAttachment.NotFound (real EC2
    // may say IncorrectState); both mean "already done".
    cloud.detach_volume(&s1.volume, &s1.instance).await.unwrap();
    let e = err(cloud.detach_volume(&s1.volume, &s1.instance).await);
    assert_eq!((e.code.as_str(), e.class), ("InvalidAttachment.NotFound", ErrorClass::AlreadyDone));

    // moto produces VolumeInUse only for DeleteVolume, which is not in the port; attaching an
    // in-use volume is accepted (DOMAIN.md). Show the leniency so a moto upgrade that starts
    // refusing it is noticed.
    cloud.attach_volume(&s1.volume, &s1.instance, &sdx()).await.unwrap();
    let lenient = cloud.attach_volume(&s1.volume, &s1.instance, &DeviceName::parse("/dev/sdy").unwrap()).await;
    assert!(lenient.is_ok() || lenient.as_ref().is_err_and(|e| e.code == "VolumeInUse"), "{lenient:?}");
}

#[tokio::test]
async fn dry_run_reports_every_mutating_api_as_permitted() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let s1 = run_server(&sdk, "ap-northeast-1c", 8).await;
    let cloud = moto.cloud().await;
    let snap = cloud
        .create_snapshot(&CreateSnapshot { volume: s1.volume.clone(), description: String::new(), tags: Tags::new() })
        .await
        .unwrap();
    let probe = DryRunProbe {
        zone: s1.zone.clone(),
        instance: s1.instance.clone(),
        volume: s1.volume.clone(),
        snapshot: Some(snap.id.clone()),
        set_snapshot: Some(snap.id),
    };
    let verdicts = cloud.dry_run_check(&probe).await;
    let names: Vec<&str> = verdicts.iter().map(|(api, _)| *api).collect();
    assert_eq!(
        names,
        [
            "CreateVolume",
            "AttachVolume",
            "DetachVolume",
            "CreateSnapshot",
            "DeleteSnapshot",
            "StartInstances",
            "CreateTags",
            mirrorctl::adapters::aws::SNAPSHOT_TAGS
        ]
    );
    for (api, verdict) in &verdicts {
        assert!(verdict.is_ok(), "{api}: {verdict:?}");
    }
    // Nothing changed.
    let vols = cloud.describe_volumes(&VolumeFilter::default()).await.unwrap();
    let of_vol = SnapshotFilter { volume: Some(s1.volume.clone()), ..Default::default() };
    let snaps = cloud.describe_snapshots(&of_vol).await.unwrap();
    assert_eq!(snaps.len(), 1);
    assert!(snaps[0].tags.is_empty(), "the dry run tagged nothing: {:?}", snaps[0].tags);
    let mine = vols.iter().find(|v| v.id == s1.volume).unwrap();
    assert_eq!(mine.attachments[0].device, sdx());
    assert!(mine.tags.is_empty());
}

/// moto 5.2 paginates `DescribeInstances` (by reservation) but ignores `MaxResults` on
/// `DescribeVolumes` and `DescribeSnapshots`; their page walking is tested against a canned server in
/// `describe_volumes_and_snapshots_follow_next_token`.
#[tokio::test]
async fn describe_instances_walks_every_page() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let mut made = Vec::new();
    for i in 0..12 {
        let zone = if i % 2 == 0 { "ap-northeast-1a" } else { "ap-northeast-1c" };
        made.push(run_server(&sdk, zone, 1).await.instance);
    }
    let mut options = moto.options();
    options.page_size = 5; // the smallest MaxResults EC2 accepts
    let cloud = moto.cloud_with(options).await;
    let mut seen: Vec<InstanceId> = cloud.describe_instances(&[]).await.unwrap().into_iter().map(|i| i.id).collect();
    seen.sort();
    made.sort();
    assert_eq!(seen, made, "each instance once");
    assert_eq!(cloud.call_counts()["ec2:DescribeInstances"], 3, "pages of 5, 5, 2");
    // A lookup by ids sends no MaxResults (EC2 and moto refuse the combination).
    let some = cloud.describe_instances(&made[..7]).await.unwrap();
    assert_eq!(some.len(), 7);
}

#[tokio::test]
async fn an_empty_token_bucket_makes_calls_wait_not_fail() {
    let moto = Moto::start();
    let mut options = moto.options();
    let tiny = Budget::try_new(1, 4.0).unwrap();
    options.budgets = Budgets { describe: tiny, mutate: tiny };
    let cloud = moto.cloud_with(options).await;
    let start = Instant::now();
    for _ in 0..5 {
        cloud.describe_instances(&[]).await.unwrap();
    }
    // One from the burst, then one every 250 ms: at least a second of waiting, no error.
    assert!(start.elapsed() >= Duration::from_millis(900), "{:?}", start.elapsed());
    // Part of the refill happens while moto answers, so less than that is spent waiting.
    assert!(cloud.throttle_wait() >= Duration::from_millis(300), "{:?}", cloud.throttle_wait());
    assert_eq!(cloud.call_counts()["ec2:DescribeInstances"], 5);
}

#[tokio::test]
async fn the_aws_cli_sees_what_the_adapter_created() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let s2 = run_server(&sdk, "ap-northeast-1c", 16).await;
    let cloud = moto.cloud().await;
    let snap = cloud
        .create_snapshot(&CreateSnapshot { volume: s2.volume.clone(), description: "b".to_owned(), tags: Tags::new() })
        .await
        .unwrap();
    let made = cloud.create_volume(&restore_req(&snap.id, "ap-northeast-1c", "cli-check")).await.unwrap();

    let out = std::process::Command::new("aws")
        .args(["--endpoint-url", &moto.endpoint(), "ec2", "describe-volumes", "--region", REGION, "--output", "json"])
        .args(["--volume-ids", made.id.as_str()])
        .env("AWS_ACCESS_KEY_ID", support::KEY)
        .env("AWS_SECRET_ACCESS_KEY", support::KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .expect("the AWS CLI must be installed (scripts/test installs it)");
    assert!(out.status.success(), "aws: {}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let v = &doc["Volumes"][0];
    assert_eq!(v["VolumeId"], made.id.as_str());
    assert_eq!(v["SnapshotId"], snap.id.as_str());
    assert_eq!(v["AvailabilityZone"], "ap-northeast-1c");
    assert_eq!(v["VolumeType"], "gp3");
    assert_eq!(v["Size"], 16);
    assert_eq!(v["Iops"], 4000);
    let tags: Tags = v["Tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["Key"].as_str().unwrap().to_owned(), t["Value"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(tags, made.tags);
    assert_eq!(tags[tag::REQUEST], "incident-1");
}

/// A one-shot HTTP server answering every request with `status` and an empty body, as moto's
/// 500s look; returns its endpoint.
fn canned_http(status: u16) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let mut buf = vec![0u8; 65536];
            let _ = s.read(&mut buf);
            let _ = write!(s, "HTTP/1.1 {status} Oops\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        }
    });
    endpoint
}

async fn cloud_at(endpoint: String) -> AwsCloud {
    let moto_less = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(aws_sdk_ec2::config::Credentials::new("k", "s", None, None, "test"))
        .region(aws_config::Region::new(REGION))
        .load()
        .await;
    let mut options = mirrorctl::adapters::aws::AwsOptions::new(mirrorctl::ids::Region::parse(REGION).unwrap());
    options.endpoint_url = Some(endpoint);
    options.attempt_timeout = Duration::from_secs(5);
    AwsCloud::from_sdk_config(&moto_less, &options)
}

#[tokio::test]
async fn a_5xx_without_a_code_and_a_dead_endpoint_are_retryable() {
    let cloud = cloud_at(canned_http(500)).await;
    let e = err(cloud.describe_instances(&[]).await);
    assert_eq!((e.code.as_str(), e.class), ("HttpStatus5xx", ErrorClass::Retryable), "{e:?}");
    let cloud = cloud_at(canned_http(503)).await;
    assert_eq!(err(cloud.start_instance(&InstanceId::parse("i-12345678").unwrap()).await).code, "HttpStatus5xx");

    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let cloud = cloud_at(format!("http://{closed}")).await;
    let e = err(cloud.describe_volumes(&VolumeFilter::default()).await);
    assert_eq!((e.code.as_str(), e.class), ("Transport", ErrorClass::Retryable), "{e:?}");
}

/// The standard `AWS_ENDPOINT_URL_EC2` variable and the default credential chain (env
/// credentials) are honoured by [`AwsCloud::connect`]. Environment variables cannot be set in
/// this process (`unsafe` is forbidden), so the test re-runs itself as a child with them set.
#[tokio::test]
async fn the_endpoint_and_credentials_come_from_the_standard_environment() {
    if std::env::var_os("MIRRORCTL_ENV_CHILD").is_some() {
        let cloud = AwsCloud::connect(mirrorctl::adapters::aws::AwsOptions::new(
            mirrorctl::ids::Region::parse(REGION).unwrap(),
        ))
        .await;
        let n = cloud.describe_instances(&[]).await.expect("moto through AWS_ENDPOINT_URL_EC2").len();
        assert_eq!(n, 1);
        return;
    }
    let moto = Moto::start();
    run_server(&moto.sdk().await, "ap-northeast-1a", 1).await;
    let me = std::env::current_exe().unwrap();
    let out = std::process::Command::new(me)
        .args([
            "--exact",
            "moto_ec2::the_endpoint_and_credentials_come_from_the_standard_environment",
            "--test-threads=1",
        ])
        .env("MIRRORCTL_ENV_CHILD", "1")
        .env("AWS_ENDPOINT_URL_EC2", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", support::KEY)
        .env("AWS_SECRET_ACCESS_KEY", support::KEY)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && text.contains("1 passed"), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
}

/// Reads one HTTP request (headers and `Content-Length` body) and returns its body.
fn read_request(s: &mut std::net::TcpStream) -> String {
    let mut data = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).unwrap_or(0);
        if n == 0 {
            break;
        }
        data.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let len = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0))
                })
                .unwrap_or(0usize);
            if data.len() >= end + 4 + len {
                return text[end + 4..].to_owned();
            }
        }
    }
    String::new()
}

/// A fake EC2 answering `DescribeVolumes` and `DescribeSnapshots` in two pages each (the second when
/// the request carries `NextToken`), with one volume in a state EC2 does not have when `odd`.
#[allow(clippy::format_collect)] // test fixture text
fn paging_ec2(odd: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            let body = read_request(&mut s);
            let second = body.contains("NextToken=");
            let (first_id, next) =
                if second { (3, String::new()) } else { (1, "<nextToken>page-2</nextToken>".to_owned()) };
            let xml = if body.contains("Action=DescribeVolumes") {
                let state = if odd { "melting" } else { "available" };
                let items: String = (first_id..first_id + 2)
                    .map(|n| {
                        format!(
                            "<item><volumeId>vol-0000000{n}</volumeId><size>8</size><availabilityZone>ap-northeast-1a</availabilityZone>\
                             <status>{state}</status><createTime>2026-11-24T00:00:00.000Z</createTime><volumeType>gp3</volumeType>\
                             <attachmentSet/><tagSet><item><key>n</key><value>{n}</value></item></tagSet></item>"
                        )
                    })
                    .collect();
                format!(
                    "<DescribeVolumesResponse><requestId>r-{first_id}</requestId><volumeSet>{items}</volumeSet>{next}</DescribeVolumesResponse>"
                )
            } else {
                let items: String = (first_id..first_id + 2)
                    .map(|n| {
                        format!(
                            "<item><snapshotId>snap-0000000{n}</snapshotId><volumeId>vol-00000001</volumeId><status>pending</status>\
                             <startTime>2026-11-24T00:00:00.000Z</startTime><progress>4{n}%</progress><volumeSize>8</volumeSize><tagSet/></item>"
                        )
                    })
                    .collect();
                format!(
                    "<DescribeSnapshotsResponse><requestId>r</requestId><snapshotSet>{items}</snapshotSet>{next}</DescribeSnapshotsResponse>"
                )
            };
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: text/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                xml.len()
            );
        }
    });
    endpoint
}

#[tokio::test]
async fn describe_volumes_and_snapshots_follow_next_token() {
    let cloud = cloud_at(paging_ec2(false)).await;
    let vols = cloud.describe_volumes(&VolumeFilter::default()).await.unwrap();
    let ns: Vec<&str> = vols.iter().map(|v| v.tags["n"].as_str()).collect();
    assert_eq!(ns, ["1", "2", "3", "4"]);
    assert_eq!(vols[0].state, VolumeState::Available);
    let snaps = cloud.describe_snapshots(&SnapshotFilter::default()).await.unwrap();
    assert_eq!(snaps.iter().map(|s| s.progress).collect::<Vec<_>>(), [41, 42, 43, 44]);
    assert_eq!(snaps[0].state, SnapshotState::Pending);
    let counts = cloud.call_counts();
    assert_eq!((counts["ec2:DescribeVolumes"], counts["ec2:DescribeSnapshots"]), (2, 2));

    // A state EC2 does not have is a clear error, not a panic and not a guess.
    let cloud = cloud_at(paging_ec2(true)).await;
    let e = err(cloud.describe_volumes(&VolumeFilter::default()).await);
    assert_eq!((e.code.as_str(), e.class), ("InvalidResponse", ErrorClass::NeedsHuman));
    assert!(e.message.contains("melting"), "{}", e.message);
}
