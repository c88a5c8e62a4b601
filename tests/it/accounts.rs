//! Accounts: a cluster with `role_arn` makes its AWS calls as the assumed role (moto's STS
//! `AssumeRole`), and `plan` names the assumed identity before anything else.

use crate::support;

use aws_sdk_sts::config::ProvideCredentials as _;
use mirrorctl::adapters::aws::identity::whoami_with;
use mirrorctl::adapters::aws::{AwsCloud, assume_role, session_name};
use mirrorctl::ids::{ClusterName, Region};
use mirrorctl::ports::cloud::{Cloud as _, VolumeFilter};
use mirrorctl::spec::RoleSpec;
use support::{Moto, REGION};

const ACCOUNT: &str = "111111111111";

fn role() -> RoleSpec {
    RoleSpec {
        arn: format!("arn:aws:iam::{ACCOUNT}:role/mirrorctl"),
        account: ACCOUNT.to_owned(),
        external_id: Some("prod-db-ops".to_owned()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_with_a_role_calls_ec2_with_the_assumed_credentials() {
    let moto = Moto::start();
    let base = moto.sdk_config().await;
    let cluster = ClusterName::parse("prod-db").unwrap();
    let assumed = assume_role(&base, &role(), &session_name(&cluster)).await;

    // Temporary credentials from STS AssumeRole (moto's start with ASIA and carry a session token).
    let creds = assumed.credentials_provider().expect("a provider").provide_credentials().await.expect("assumed");
    assert!(creds.access_key_id().starts_with("ASIA"), "{}", creds.access_key_id());
    assert!(creds.session_token().is_some());

    // STS says who that is: the role's session, named after mirrorctl and the cluster.
    let region = Region::parse(REGION).unwrap();
    let who = whoami_with(&assumed, &region).await.expect("identity");
    assert_eq!(who.account, ACCOUNT);
    assert_eq!(who.arn, format!("arn:aws:sts::{ACCOUNT}:assumed-role/mirrorctl/mirrorctl-prod-db"));
    let default = whoami_with(&base, &region).await.expect("identity");
    assert_ne!(default.account, ACCOUNT, "the default chain is another account");

    // mirrorctl's EC2 port on the assumed configuration acts in the role's account: moto keeps each
    // account's resources apart, so a volume made there is seen through it and not by the default.
    let in_role_account = aws_sdk_ec2::Client::new(&assumed);
    let made = in_role_account
        .create_volume()
        .availability_zone("ap-northeast-1a")
        .size(8)
        .send()
        .await
        .expect("create a volume as the role");
    let id = made.volume_id().expect("id").to_owned();
    let as_role = AwsCloud::from_sdk_config(&assumed, &moto.options());
    let as_default = AwsCloud::from_sdk_config(&base, &moto.options());
    let ids = |v: Vec<mirrorctl::ports::cloud::Volume>| v.into_iter().map(|v| v.id.to_string()).collect::<Vec<_>>();
    let seen = ids(as_role.describe_volumes(&VolumeFilter::default()).await.expect("describe as the role"));
    assert!(seen.contains(&id), "{seen:?}");
    let seen = ids(as_default.describe_volumes(&VolumeFilter::default()).await.expect("describe as default"));
    assert!(!seen.contains(&id), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plan_names_the_assumed_identity_first() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/desired-state/app-linux.toml")).unwrap();
    let text = example.replacen(
        "[cluster]\n",
        &format!(
            "[cluster]\nrole_arn = \"arn:aws:iam::{ACCOUNT}:role/ops/mirrorctl\"\nexternal_id = \"app-linux-ops\"\n"
        ),
        1,
    );
    assert_ne!(text, example, "the example has a [cluster] table");
    let file = dir.path().join("app-linux.toml");
    std::fs::write(&file, text).unwrap();
    let state = dir.path().join("state");
    let moto_url = moto.endpoint();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
            .args(["--state-dir", state.to_str().unwrap(), "plan", "--world", "aws", file.to_str().unwrap()])
            .env("AWS_ENDPOINT_URL", &moto_url)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_PROFILE")
            .env_remove("MIRRORCTL_STATE_DIR")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stdout.starts_with(&format!(
            "world: AWS account {ACCOUNT}, region ap-northeast-1, as arn:aws:sts::{ACCOUNT}:assumed-role/mirrorctl/mirrorctl-app-linux"
        )),
        "stdout: {stdout}\nstderr: {stderr}"
    );
}
