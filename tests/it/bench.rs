//! `mirrorctl bench --quick`: the real binary prints every figure with a finite number and exits 0
//! even when targets are missed (it also starts `mirrorctl run` itself for the footprint figures,
//! and stops it by its pid).

use std::process::Command;

/// The figure's line and the first number after its name.
fn value(out: &str, name: &str) -> (f64, String) {
    let line = out.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("no line {name:?} in:\n{out}"));
    let value: f64 = line[name.len()..]
        .split_whitespace()
        .next()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| panic!("no number on {line:?}"));
    assert!(value.is_finite(), "{line}");
    (value, line.to_owned())
}

/// The value of a figure with a target, which must carry its verdict.
fn figure(out: &str, name: &str) -> f64 {
    let (value, line) = value(out, name);
    assert!(line.contains("PASS") || line.contains("MISS"), "{line}");
    value
}

#[test]
fn bench_quick_prints_every_figure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
        .args(["--state-dir"])
        .arg(dir.path())
        .args(["bench", "--quick"])
        .output()
        .expect("run mirrorctl bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "exit {:?}\n{stdout}\n{}", out.status, String::from_utf8_lossy(&out.stderr));
    let restore = figure(&stdout, "restore wall / critical path");
    assert!(restore >= 1.0, "model time cannot beat the critical path: {restore}");
    let baseline = figure(&stdout, "runbook baseline / mirrorctl");
    assert!(baseline > 1.0, "the runbook baseline is slower than mirrorctl: {baseline}");
    figure(&stdout, "mutating EC2 calls per restore");
    figure(&stdout, "Describe calls per restore");
    figure(&stdout, "backup business downtime / bound");
    figure(&stdout, "backup standby downtime / bound");
    // The vendor procedure (clprestore/clpbackup) side by side, each against its own bound.
    let vendor = figure(&stdout, "vendor: restore / critical path");
    assert!(vendor >= 1.0, "model time cannot beat the vendor restore's critical path: {vendor}");
    for name in ["vendor: business downtime / bound", "vendor: standby downtime / bound"] {
        let ratio = figure(&stdout, name);
        assert!(ratio >= 1.0, "{name}: a downtime shorter than its bound: {ratio}");
    }
    // Many clusters in one account: a total that beat the throttle-bound minimum would mean the
    // bound is not one.
    for n in [1, 5, 20] {
        let ratio = figure(&stdout, &format!("{n} clusters: total / bound"));
        assert!(ratio >= 1.0, "{n} clusters finished faster than their lower bound: {ratio}");
        let median = value(&stdout, &format!("{n} clusters: median restore")).0;
        assert!(median > 0.0, "{n} clusters: a median cluster restored in no time: {median}");
        let throttled = figure(&stdout, &format!("{n} clusters: throttled %"));
        assert!((0.0..=100.0).contains(&throttled), "{throttled}");
    }
    // The daemon's footprint, measured on the real binary.
    for files in [0, 20] {
        assert!(figure(&stdout, &format!("idle RSS MiB, {files} files")) > 0.0);
        assert!(value(&stdout, &format!("idle CPU %, {files} files")).0 >= 0.0);
    }
    let median = figure(&stdout, "edit -> first action ms, median");
    let p99 = figure(&stdout, "edit -> first action ms, p99");
    assert!(median > 0.0 && p99 >= median, "{median} {p99}");
    assert!(stdout.contains("MISS is reported, not an error"), "{stdout}");
}
