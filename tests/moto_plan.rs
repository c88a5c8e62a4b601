//! `mirrorctl plan --world aws` asks EC2, with `DryRun`, which of its calls are permitted before
//! anything happens — checked against moto with the cluster's real (moto) ids — and then says that
//! the rest of the AWS world is not available yet.

mod support;

use std::process::Command;

use support::{Moto, run_server};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_reports_ec2_permissions_with_dry_run() {
    let moto = Moto::start();
    let sdk = moto.sdk().await;
    let s1 = run_server(&sdk, "ap-northeast-1a", 100).await;
    let s2 = run_server(&sdk, "ap-northeast-1c", 100).await;

    let dir = tempfile::tempdir().unwrap();
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/desired-state/prod-db.toml")).unwrap();
    let text = example
        .replace("i-0123456789abcdef0", s1.instance.as_str())
        .replace("i-0fedcba9876543210", s2.instance.as_str());
    let file = dir.path().join("prod-db.toml");
    std::fs::write(&file, text).unwrap();

    let out = Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
        .args([
            "--state-dir",
            dir.path().join("state").to_str().unwrap(),
            "plan",
            "--world",
            "aws",
            file.to_str().unwrap(),
        ])
        .env("AWS_ENDPOINT_URL_EC2", moto.endpoint())
        .env("AWS_ACCESS_KEY_ID", "testing")
        .env("AWS_SECRET_ACCESS_KEY", "testing")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(69), "the rest of the AWS world is not available yet: {stdout}\n{stderr}");
    assert!(stdout.contains(&format!("EC2 permissions for cluster prod-db (DryRun, as {})", s1.instance)), "{stdout}");
    for api in [
        "CreateVolume",
        "AttachVolume",
        "DetachVolume",
        "CreateSnapshot",
        "DeleteSnapshot",
        "StartInstances",
        "CreateTags",
    ] {
        let line = stdout
            .lines()
            .find(|l| l.trim_start().starts_with(&format!("ec2:{api} ")))
            .unwrap_or_else(|| panic!("{api}: {stdout}"));
        assert!(line.ends_with("allowed") && !line.contains("NOT"), "{line}");
    }
    assert!(stderr.contains("--world lab"), "{stderr}");
    // DryRun changed nothing: still exactly the two volumes the test made.
    let vols = sdk.describe_volumes().send().await.unwrap();
    let data: Vec<_> = vols.volumes().iter().filter(|v| v.size() == Some(100)).collect();
    assert_eq!(data.len(), 2, "{data:?}");
    let snaps = sdk
        .describe_snapshots()
        .filters(aws_sdk_ec2::types::Filter::builder().name("tag-key").values("mirrorctl:cluster").build())
        .send()
        .await
        .unwrap();
    assert!(snaps.snapshots().is_empty());
}
