//! Shared test support: a `moto_server` child process per test and SDK clients pointed at it; a
//! fake SSM endpoint ([`fake_ssm`]), fake Linux disk tools ([`fake_disks`]) and fake CLUSTERPRO
//! commands backed by the simulated world ([`fake_clp`]).
//!
//! Why this module exists: the moto tests and the conformance suite both need a live, isolated
//! EC2 emulator on a free loopback port that is killed (by its pid) when the test ends, plus
//! mirrorctl's `AwsCloud` and a raw SDK client (for setup moto has no preloaded state for:
//! `RunInstances`, `StopInstances`) configured with fake static credentials. The node tests need
//! servers to run scripts on: sandboxes with fake tools, reached directly or through fake SSM.

#![allow(dead_code)]

pub mod common;
pub mod fake_clp;
pub mod fake_disks;
pub mod fake_ec2_fsr;
pub mod fake_ssm;
pub mod moto_world;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use aws_config::BehaviorVersion;
use aws_sdk_ec2::config::Credentials;
use mirrorctl::adapters::aws::{AwsCloud, AwsOptions};
use mirrorctl::ids::{DeviceName, InstanceId, Region, VolumeId, Zone};

/// The real clock with short waits: `now` is the system time (moto stamps its resources with it),
/// `sleep(d)` waits `d / factor`. moto moves every volume and snapshot to its final state at
/// once, so the reconcile loop's first looks (fitted to real EC2 latencies, seconds each) only
/// slow the moto tests down; what they prove does not depend on the length of a wait.
#[derive(Debug, Clone, Copy)]
pub struct ShortWaits(pub u32);

#[async_trait::async_trait]
impl mirrorctl::ports::Clock for ShortWaits {
    fn now(&self) -> jiff::Timestamp {
        jiff::Timestamp::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d / self.0.max(1)).await;
    }
}

/// The region every moto test uses.
pub const REGION: &str = "ap-northeast-1";
/// Fake credentials moto accepts.
pub const KEY: &str = "testing";

/// The SDK's shared configuration for a fake AWS endpoint on loopback: static fake credentials,
/// the test region, `endpoint` as the override (nothing reaches real AWS).
pub async fn sdk_config(endpoint: &str) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .credentials_provider(Credentials::new(KEY, KEY, None, None, "fake-endpoint-test"))
        .region(aws_config::Region::new(REGION))
        .endpoint_url(endpoint)
        .load()
        .await
}

/// Writes an executable `#!/bin/sh` script `name` with `body` into `bin` (fake tools for scripts
/// under test: disk tools, CLUSTERPRO commands).
pub fn write_tool(bin: &std::path::Path, name: &str, body: &str) {
    let p = bin.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("write fake tool");
    let mut perm = std::fs::metadata(&p).expect("fake tool metadata").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
    std::fs::set_permissions(&p, perm).expect("chmod fake tool");
}

/// A running `moto_server`; killed by pid on drop.
pub struct Moto {
    child: Child,
    /// Its loopback port.
    pub port: u16,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free loopback port");
    l.local_addr().expect("local addr").port()
}

/// One HTTP/1.1 request over a fresh connection; returns the status code.
fn http(port: u16, method: &str, path: &str) -> std::io::Result<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(s, "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?;
    let mut buf = String::new();
    s.read_to_string(&mut buf)?;
    buf.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("not an HTTP response: {buf:.80}")))
}

impl Moto {
    /// Starts `moto_server` on a free port and waits until it answers.
    pub fn start() -> Moto {
        let port = free_port();
        let spawn = |cmd: &str, pre: &[&str]| {
            Command::new(cmd)
                .args(pre)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                // moto's default AMIs come with hundreds of snapshots that every DescribeSnapshots
                // and DescribeImages walks and serializes: most of a moto test's time without it.
                .env("MOTO_EC2_LOAD_DEFAULT_AMIS", "false")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
        };
        let child = spawn("moto_server", &[])
            .or_else(|_| spawn("python3", &["-m", "moto.server"]))
            .expect("moto_server must be installed: python3 -m pip install 'moto[server]>=5,<6'");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_mins(1);
        while http(port, "GET", "/moto-api/data.json").is_err() {
            assert!(Instant::now() < deadline, "moto_server did not answer on port {port} within 60 s");
            std::thread::sleep(Duration::from_millis(100));
        }
        moto
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The environment of a mirrorctl child process that must reach this moto for every AWS
    /// service and nothing else: its endpoint, the test region, fake credentials, no instance
    /// metadata.
    pub fn child_env(&self) -> [(&'static str, String); 5] {
        [
            ("AWS_ENDPOINT_URL", self.endpoint()),
            ("AWS_REGION", REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", KEY.to_owned()),
            ("AWS_SECRET_ACCESS_KEY", KEY.to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
    }

    /// Clears every resource moto holds.
    pub fn reset(&self) {
        let status = http(self.port, "POST", "/moto-api/reset").expect("reset moto");
        assert_eq!(status, 200, "moto reset");
    }

    /// The SDK's shared configuration for this server: static fake credentials, the test region,
    /// the endpoint override.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        sdk_config(&self.endpoint()).await
    }

    /// Options for mirrorctl's adapter pointed at this server.
    pub fn options(&self) -> AwsOptions {
        let mut o = AwsOptions::new(Region::parse(REGION).expect("region"));
        o.endpoint_url = Some(self.endpoint());
        o
    }

    /// mirrorctl's adapter, default options.
    pub async fn cloud(&self) -> AwsCloud {
        self.cloud_with(self.options()).await
    }

    /// mirrorctl's adapter with `options`.
    pub async fn cloud_with(&self, options: AwsOptions) -> AwsCloud {
        AwsCloud::from_sdk_config(&self.sdk_config().await, &options)
    }

    /// A raw SDK client, for setup mirrorctl does not do.
    pub async fn sdk(&self) -> aws_sdk_ec2::Client {
        aws_sdk_ec2::Client::new(&self.sdk_config().await)
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        // Child::kill signals this child's own pid.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An instance moto made for a test, with a data volume attached at `/dev/sdx`.
#[derive(Debug, Clone)]
pub struct Server {
    /// Instance id (random; whatever moto returned).
    pub instance: InstanceId,
    /// Its zone.
    pub zone: Zone,
    /// Its mirror-disk volume.
    pub volume: VolumeId,
}

/// The mirror disk's device slot in these tests.
pub fn sdx() -> DeviceName {
    DeviceName::parse("/dev/sdx").expect("device")
}

/// Runs an instance in `zone` and attaches a fresh `size_gib` gp3 volume at `/dev/sdx`.
pub async fn run_server(sdk: &aws_sdk_ec2::Client, zone: &str, size_gib: i32) -> Server {
    run_server_at(sdk, zone, size_gib, "/dev/sdx").await
}

/// Runs an instance in `zone` and attaches a fresh `size_gib` gp3 volume at `device` (as written,
/// e.g. `/dev/xvdb`).
pub async fn run_server_at(sdk: &aws_sdk_ec2::Client, zone: &str, size_gib: i32, device: &str) -> Server {
    let images = sdk.describe_images().owners("amazon").send().await.expect("DescribeImages");
    let image = images.images().iter().find_map(|i| i.image_id()).unwrap_or("ami-03cf127a").to_owned();
    let run = sdk
        .run_instances()
        .image_id(image)
        .instance_type(aws_sdk_ec2::types::InstanceType::T3Micro)
        .min_count(1)
        .max_count(1)
        .placement(aws_sdk_ec2::types::Placement::builder().availability_zone(zone).build())
        .send()
        .await
        .expect("RunInstances");
    let instance = run.instances()[0].instance_id().expect("instance id").to_owned();
    let vol = sdk
        .create_volume()
        .availability_zone(zone)
        .size(size_gib)
        .volume_type(aws_sdk_ec2::types::VolumeType::Gp3)
        .send()
        .await
        .expect("CreateVolume");
    let volume = vol.volume_id().expect("volume id").to_owned();
    sdk.attach_volume().volume_id(&volume).instance_id(&instance).device(device).send().await.expect("AttachVolume");
    Server {
        instance: InstanceId::parse(&instance).expect("moto instance id"),
        zone: Zone::parse(zone).expect("zone"),
        volume: VolumeId::parse(&volume).expect("moto volume id"),
    }
}

/// Stops an instance (moto stops at once).
pub async fn stop_instance(sdk: &aws_sdk_ec2::Client, id: &InstanceId) {
    sdk.stop_instances().instance_ids(id.as_str()).send().await.expect("StopInstances");
}
