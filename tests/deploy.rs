//! The deploy kit: the IAM policy is valid JSON and grants exactly the EC2 actions the AWS adapter
//! calls — no more (least privilege), no less (a missing one would fail in production only).

use std::collections::BTreeSet;
use std::path::Path;

fn repo(p: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The EC2 APIs the adapter calls: every `const API: &str = "…";` in its source.
fn actions_called() -> BTreeSet<String> {
    let src = std::fs::read_to_string(repo("src/adapters/aws/mod.rs")).expect("adapter source");
    src.lines()
        .filter_map(|l| l.trim().strip_prefix("const API: &str = \"")?.strip_suffix("\";").map(|a| format!("ec2:{a}")))
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
    assert!(called.len() >= 11, "the adapter's calls were found: {called:?}");
    let granted = actions_granted(&policy);
    assert!(granted.iter().all(|a| !a.contains('*')), "no wildcard actions: {granted:?}");
    assert_eq!(granted, called, "policy actions (left) vs adapter calls (right)");
}

#[test]
fn mutating_statements_are_scoped_and_deletes_limited_to_own_backups() {
    let policy: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(repo("deploy/iam-policy.json")).unwrap()).unwrap();
    for st in policy["Statement"].as_array().unwrap() {
        let actions = st["Action"].to_string();
        if actions.contains("Describe") {
            continue;
        }
        assert_ne!(st["Resource"], "*", "mutating statements name resource types: {st}");
        if actions.contains("DeleteSnapshot") {
            assert_eq!(st["Condition"]["StringEquals"]["aws:ResourceTag/mirrorctl:role"], "backup", "{st}");
        }
        assert!(!actions.contains("DeleteVolume"), "volumes are never deleted");
    }
}
