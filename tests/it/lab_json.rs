//! `mirrorctl lab -o json`: one JSON document with the story's facts as fields (fails on f1148e9:
//! `lab` had no `-o`).

use std::process::Command;

#[test]
fn lab_json_is_one_document_of_fields() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
        .args(["--state-dir"])
        .arg(dir.path())
        .args(["lab", "--speed", "500", "--procedure", "reconfigure", "-o", "json"])
        .output()
        .expect("run mirrorctl lab");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(doc["cluster"], "prod-db");
    assert_eq!(doc["os"], "windows");
    assert_eq!(doc["procedure"], "reconfigure");
    assert_eq!(doc["fast_restore"], false);
    assert_eq!(doc["verified"], true);
    assert!(doc["snapshot"].as_str().is_some_and(|s| s.starts_with("snap-")), "{}", doc["snapshot"]);
    let restore = doc["restore_model_s"].as_f64().expect("restore seconds");
    assert!(restore > 0.0 && restore < doc["model_s"].as_f64().expect("model seconds"), "{restore}");
    assert!(doc["wall_s"].as_f64().is_some_and(|w| w > 0.0));
    // Checks are ids with a verdict, never sentences.
    let checks = doc["checks"].as_array().expect("checks");
    for id in ["backup-converged", "restore-converged", "both-sides-identical", "accident-gone", "old-volumes-kept"] {
        let c = checks.iter().find(|c| c["check"] == id).unwrap_or_else(|| panic!("no check {id}: {checks:?}"));
        assert_eq!(c["ok"], true, "{c}");
    }
    assert!(checks.iter().all(|c| c.as_object().is_some_and(|o| o.len() == 2)), "{checks:?}");
    // Events as `apply -o json` prints them; the timeline with RFC 3339 times and model seconds.
    let events = doc["events"].as_array().expect("events");
    assert!(events.iter().any(|e| e["event"] == "converged"), "{events:?}");
    assert!(events.iter().all(|e| e["at"].as_str().is_some_and(|t| t.parse::<jiff::Timestamp>().is_ok())));
    let timeline = doc["timeline"].as_array().expect("timeline");
    assert!(timeline.iter().all(|t| t["t_s"].is_number() && t["at"].is_string() && t["entry"].is_string()));
    assert_eq!(doc["api_calls"]["ec2:CreateVolume"], 2);
    assert!(doc["world_file"].as_str().is_some_and(|p| std::path::Path::new(p).exists()), "{}", doc["world_file"]);
}
