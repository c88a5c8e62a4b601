//! The deploy kit: the IAM policy is valid JSON and grants exactly the AWS actions the adapters
//! call — no more (least privilege), no less (a missing one would fail in production only): the EC2
//! actions of the AWS adapter, the SSM actions of the SSM node transport, the Secrets Manager
//! read of the REST API password, the DynamoDB state store's item actions on its table, the
//! SNS publish of notifications and the assumption of clusters' roles, each read from its own
//! source. The systemd unit does not restart on the exit codes that mean "a
//! human must fix the setup".

use std::collections::BTreeSet;
use std::path::Path;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// Each adapter's source and the IAM service prefix of the APIs it calls.
const ADAPTERS: &[(&str, &str)] = &[
    ("src/adapters/aws/mod.rs", "ec2"),
    ("src/adapters/node/ssm.rs", "ssm"),
    ("src/adapters/secret.rs", "secretsmanager"),
    ("src/adapters/store/dynamodb.rs", "dynamodb"),
    ("src/adapters/notify.rs", "sns"),
    ("src/adapters/aws/role.rs", "sts"),
];

/// API calls IAM does not authorize as such: a DynamoDB transaction is authorized per item
/// action in it (the store's journal append: a condition check on the lease and a put).
const AUTHORIZED_AS: &[(&str, &[&str])] =
    &[("dynamodb:TransactWriteItems", &["dynamodb:ConditionCheckItem", "dynamodb:PutItem"])];

/// Actions that take no resource-level permissions (IAM demands `Resource: "*"` for them) although
/// they are not reads of EC2: following and cancelling a Run Command invocation.
const ONLY_STAR: &[&str] = &["ssm:GetCommandInvocation", "ssm:CancelCommand"];

/// `deploy/iam-policy.json`, parsed.
fn policy() -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(repo("deploy/iam-policy.json")).unwrap()).unwrap()
}

/// The APIs one adapter calls: every `const API: &str = "…";` in its source, with its prefix.
fn calls_in(file: &str, prefix: &str) -> BTreeSet<String> {
    let src = std::fs::read_to_string(repo(file)).expect("adapter source");
    src.lines()
        .filter_map(|l| {
            l.trim().strip_prefix("const API: &str = \"")?.strip_suffix("\";").map(|a| format!("{prefix}:{a}"))
        })
        .collect()
}

/// The IAM actions the APIs of all adapters need.
fn actions_called() -> BTreeSet<String> {
    ADAPTERS
        .iter()
        .flat_map(|(file, prefix)| calls_in(file, prefix))
        .flat_map(|api| match AUTHORIZED_AS.iter().find(|(a, _)| *a == api) {
            Some((_, actions)) => actions.iter().map(|a| (*a).to_owned()).collect(),
            None => vec![api],
        })
        .collect()
}

fn actions_granted(policy: &serde_json::Value) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for st in policy["Statement"].as_array().expect("Statement is a list") {
        assert_eq!(st["Effect"], "Allow", "only Allow statements: {st}");
        match &st["Action"] {
            serde_json::Value::String(a) => {
                out.insert(a.clone());
            }
            serde_json::Value::Array(list) => out.extend(list.iter().map(|a| a.as_str().expect("action").to_owned())),
            other => panic!("unexpected Action {other}"),
        }
    }
    out
}

#[test]
fn the_iam_policy_grants_exactly_the_calls_the_code_makes() {
    let text = std::fs::read_to_string(repo("deploy/iam-policy.json")).expect("deploy/iam-policy.json");
    let policy: serde_json::Value = serde_json::from_str(&text).expect("the policy is JSON");
    assert_eq!(policy["Version"], "2012-10-17");
    let called = actions_called();
    assert!(calls_in(ADAPTERS[0].0, "ec2").len() >= 11, "the EC2 adapter's calls were found: {called:?}");
    assert_eq!(
        calls_in(ADAPTERS[1].0, "ssm"),
        ["ssm:CancelCommand", "ssm:GetCommandInvocation", "ssm:SendCommand"].map(String::from).into(),
        "the SSM transport's calls were found"
    );
    assert_eq!(
        calls_in(ADAPTERS[2].0, "secretsmanager"),
        ["secretsmanager:GetSecretValue".to_owned()].into(),
        "the secret resolver's call was found"
    );
    assert_eq!(
        calls_in(ADAPTERS[3].0, "dynamodb"),
        ["DeleteItem", "GetItem", "PutItem", "Query", "Scan", "TransactWriteItems", "UpdateItem"]
            .map(|a| format!("dynamodb:{a}"))
            .into(),
        "the DynamoDB store's calls were found (not `store init`'s: CreateTable and DescribeTable are an \
         administrator's, deploy/README.md)"
    );
    assert_eq!(calls_in(ADAPTERS[4].0, "sns"), ["sns:Publish".to_owned()].into(), "the SNS notifier's call was found");
    assert_eq!(calls_in(ADAPTERS[5].0, "sts"), ["sts:AssumeRole".to_owned()].into(), "the role assumption was found");
    let granted = actions_granted(&policy);
    assert!(granted.iter().all(|a| !a.contains('*')), "no wildcard actions: {granted:?}");
    // KMS is never called by mirrorctl itself: EBS and Secrets Manager call it on its behalf
    // (`kms_key`, encrypted snapshots, a secret under a customer key); see the KMS test below.
    let own: BTreeSet<String> = granted.into_iter().filter(|a| !a.starts_with("kms:")).collect();
    assert_eq!(own, called, "policy actions (left) vs adapter calls (right)");
}

/// KMS for encrypted volumes and snapshots (`mirror.volume.kms_key`, `copy_to` `kms_key`, a snapshot
/// encrypted with a customer key) and for a secret under a customer key: exactly the actions EBS
/// needs of the caller's key (the AWS EBS User Guide's key policy for EBS encryption:
/// `CreateGrant`, `Decrypt`, `DescribeKey`, `GenerateDataKeyWithoutPlaintext`) and Secrets
/// Manager's `Decrypt`, each only through that service (`kms:ViaService`), never directly. Fails
/// on the policy before, which had no KMS statement (a `kms_key` restore would fail on AWS only).
#[test]
fn kms_is_granted_only_through_ebs_and_secrets_manager() {
    let policy = policy();
    let mut through: Vec<(String, BTreeSet<String>)> = Vec::new();
    for st in policy["Statement"].as_array().unwrap() {
        let actions = actions_granted(&serde_json::json!({ "Statement": [st] }));
        if !actions.iter().any(|a| a.starts_with("kms:")) {
            continue;
        }
        assert!(actions.iter().all(|a| a.starts_with("kms:")), "KMS actions stand alone: {st}");
        assert_eq!(st["Resource"], "arn:aws:kms:*:*:key/*", "{st}");
        let via = st["Condition"]["StringLike"]["kms:ViaService"].as_str().expect("kms:ViaService condition");
        through.push((via.to_owned(), actions));
    }
    through.sort();
    let set = |a: &[&str]| a.iter().map(|x| format!("kms:{x}")).collect::<BTreeSet<String>>();
    assert_eq!(
        through,
        vec![
            (
                "ec2.*.amazonaws.com".to_owned(),
                set(&["CreateGrant", "Decrypt", "DescribeKey", "GenerateDataKeyWithoutPlaintext"])
            ),
            ("secretsmanager.*.amazonaws.com".to_owned(), set(&["Decrypt"])),
        ]
    );
    let spec = std::fs::read_to_string(repo("src/spec/types.rs")).unwrap();
    assert!(spec.contains("pub kms_key: Option<String>"), "the desired state still has kms_key");
}

/// Every Secrets Manager secret the documentation and the examples name is one the policy lets the
/// daemon read. Fails on the reference before, whose example (`prod-db/clp-api`) the policy
/// (`secret:mirrorctl/*`) denied.
#[test]
fn documented_secret_names_are_readable_under_the_policy() {
    let policy = policy();
    let st = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| st["Action"] == "secretsmanager:GetSecretValue")
        .expect("the secret statement");
    let resource = st["Resource"].as_str().expect("one resource");
    let prefix = resource
        .split(":secret:")
        .nth(1)
        .and_then(|p| p.strip_suffix('*'))
        .expect("a secret name prefix with a trailing *");
    let mut named = Vec::new();
    for file in [
        "desired-state/README.md",
        "README.md",
        "deploy/README.md",
        "desired-state/prod-db.toml",
        "desired-state/app-linux.toml",
    ] {
        let text = std::fs::read_to_string(repo(file)).unwrap();
        for key in ["password_secret = \"", "secret_id = \""] {
            for (i, _) in text.match_indices(key) {
                let rest = &text[i + key.len()..];
                let value = &rest[..rest.find('"').unwrap()];
                if value.starts_with("arn:") || value.contains('…') || value.is_empty() {
                    continue;
                }
                named.push((file, value.to_owned()));
            }
        }
    }
    assert!(!named.is_empty(), "the reference names at least one secret");
    for (file, name) in named {
        assert!(name.starts_with(prefix), "{file}: secret {name:?} is outside the policy's {resource}");
    }
}

#[test]
fn mutating_statements_are_scoped_and_deletes_limited_to_own_backups() {
    let policy = policy();
    for st in policy["Statement"].as_array().unwrap() {
        let actions = st["Action"].to_string();
        let listed: Vec<&str> = match &st["Action"] {
            serde_json::Value::Array(a) => a.iter().filter_map(serde_json::Value::as_str).collect(),
            other => other.as_str().into_iter().collect(),
        };
        if actions.contains("Describe") {
            continue;
        }
        if listed.iter().all(|a| ONLY_STAR.contains(a)) {
            assert_eq!(st["Resource"], "*", "{st}");
            continue;
        }
        assert_ne!(st["Resource"], "*", "mutating statements name resource types: {st}");
        if actions.contains("dynamodb:") {
            assert_eq!(st["Resource"], "arn:aws:dynamodb:*:*:table/mirrorctl-state", "only the state table: {st}");
        }
        if actions.contains("DeleteSnapshot") {
            let role = &st["Condition"]["StringEquals"]["aws:ResourceTag/mirrorctl:role"];
            assert!(role == "backup" || role == "copy", "only mirrorctl's backups and their copies: {st}");
        }
        assert!(!actions.contains("DeleteVolume"), "volumes are never deleted");
    }
}

/// The snapshots of a set are tagged after `CreateSnapshots` with what each holds: the policy
/// allows exactly those keys, on mirrorctl's own set snapshots only.
#[test]
fn set_snapshots_may_be_tagged_with_their_identity_keys_only() {
    use mirrorctl::ports::cloud::tag;
    let policy = policy();
    let st = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|st| {
            st["Action"] == "ec2:CreateTags"
                && st["Resource"] == "arn:aws:ec2:*::snapshot/*"
                && st["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"].is_array()
        })
        .expect("a CreateTags statement for set snapshots");
    let keys: Vec<&str> = st["Condition"]["ForAllValues:StringEquals"]["aws:TagKeys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(serde_json::Value::as_str)
        .collect();
    assert_eq!(keys, [tag::HOLDS, tag::DEVICE], "{st}");
    assert_eq!(st["Condition"]["StringEquals"]["aws:ResourceTag/mirrorctl:role"], "backup", "{st}");
    assert_eq!(st["Condition"]["StringLike"][format!("aws:ResourceTag/{}", tag::SNAPSHOT_SET)], "?*", "{st}");
}

#[test]
fn run_command_is_limited_to_the_script_documents_and_managed_instances() {
    let policy = policy();
    let sends: Vec<&serde_json::Value> = policy["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|st| st["Action"].to_string().contains("ssm:SendCommand"))
        .collect();
    assert_eq!(sends.len(), 2, "one statement for documents, one for instances: {sends:?}");
    let mut resources: Vec<String> = Vec::new();
    for st in &sends {
        assert_eq!(st["Action"], "ssm:SendCommand", "SendCommand stands alone: {st}");
        match &st["Resource"] {
            serde_json::Value::Array(a) => resources.extend(a.iter().map(|r| r.as_str().unwrap().to_owned())),
            r => resources.push(r.as_str().unwrap().to_owned()),
        }
        if st["Resource"] == "arn:aws:ec2:*:*:instance/*" {
            assert_eq!(st["Condition"]["StringEquals"]["ssm:resourceTag/mirrorctl:managed"], "true", "{st}");
        }
    }
    resources.sort();
    assert_eq!(
        resources,
        [
            "arn:aws:ec2:*:*:instance/*",
            "arn:aws:ssm:*::document/AWS-RunPowerShellScript",
            "arn:aws:ssm:*::document/AWS-RunShellScript",
        ]
    );
    for doc in [mirrorctl::adapters::node::ssm::SHELL_DOCUMENT, mirrorctl::adapters::node::ssm::POWERSHELL_DOCUMENT] {
        assert!(resources.iter().any(|r| r.ends_with(&format!("document/{doc}"))), "{doc} is granted");
    }
}

/// `RestartPreventExitStatus=` of the systemd unit lists exactly the daemon's exit codes that a
/// restart cannot fix: an invalid settings file and an unwritable state directory. Fails on the
/// unit before (it restarted forever on 65).
#[test]
fn the_systemd_unit_does_not_restart_on_setup_errors() {
    let unit = std::fs::read_to_string(repo("deploy/mirrorctl.service")).expect("unit");
    let listed: BTreeSet<u8> = unit
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RestartPreventExitStatus="))
        .flat_map(|v| v.split_whitespace().map(|c| c.parse::<u8>().expect("a numeric exit code")))
        .collect();
    let setup_errors: BTreeSet<u8> = [mirrorctl::spec::EXIT_INVALID, mirrorctl::cli::EXIT_STATE_DIR].into();
    assert_eq!(listed, setup_errors);
    assert!(unit.contains("\nRestart=on-failure\n"), "other failures still restart");
}
