//! `mirrorctl bench --quick`: the real binary prints every figure with a finite number and exits 0
//! even when targets are missed (it also starts `mirrorctl run` itself for the footprint figures,
//! and stops it by its pid); `-o json` gives the same figures as fields; `--binary` measures the
//! footprint of a given executable and refuses a path that is not one.

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

/// The model parts as text (the footprint, which runs the real daemon for about 25 s, is measured
/// once, by the JSON test below; its table's text is a unit test of `footprint::render`).
#[test]
fn bench_quick_prints_every_figure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
        .args(["--state-dir"])
        .arg(dir.path())
        .args(["bench", "--quick", "--only", "single,scale,loading"])
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
    assert!(stdout.contains("MISS is reported, not an error"), "{stdout}");
    check_full_performance_table(&stdout);
    // `--only` left the footprint out: no daemon ran.
    assert!(!stdout.contains("daemon footprint"), "{stdout}");
}

/// The six numbers on the row of the time-to-full-performance table that starts with `label`
/// (service, full performance, in sync for 100 GiB, then 1 TiB; the rate follows).
fn row(out: &str, label: &str) -> Vec<f64> {
    let line = out.lines().find(|l| l.starts_with(label)).unwrap_or_else(|| panic!("no row {label:?} in:\n{out}"));
    line[label.len()..].split_whitespace().take(6).map_while(|w| w.parse::<f64>().ok()).collect()
}

/// Time to full performance, side by side: every option has service / full performance / in sync
/// for 100 GiB and 1 TiB; loading at a higher rate never takes longer; restoring one side and
/// copying it leaves the mirror out of sync far longer than restoring both.
fn check_full_performance_table(out: &str) {
    assert!(out.contains("time to full performance ("), "{out}");
    let labels = [
        "FSR already enabled",
        "FSR enabled by the restore",
        "initialization_rate 300 MiB/s",
        "initialization_rate 100 MiB/s",
        "default (lazy loading)",
        "one side (lazy) + full copy",
        "one side (300 MiB/s) + full copy",
    ];
    let rows: Vec<Vec<f64>> = labels.iter().map(|l| row(out, l)).collect();
    for (label, r) in labels.iter().zip(&rows) {
        assert_eq!(r.len(), 6, "{label}: service, full perf, in sync for 100 GiB and 1 TiB: {r:?}");
        for set in r.chunks(3) {
            assert!(set[0] > 0.0 && set[1] >= set[0] && set[2] >= set[0], "{label}: {r:?}");
        }
        assert!(r[4] >= r[1], "{label}: 1 TiB takes no less than 100 GiB: {r:?}");
    }
    // Full performance (columns 1 and 4): FSR ready <= 300 MiB/s <= 100 MiB/s <= lazy.
    for col in [1, 4] {
        let full: Vec<f64> = [0, 2, 3, 4].iter().map(|&i| rows[i][col]).collect();
        assert!(full.windows(2).all(|w| w[0] < w[1]), "ordering broken in column {col}: {full:?}\n{out}");
    }
    // The same service time for every option that does not wait for FSR.
    for i in [2, 3, 4, 5, 6] {
        assert!((rows[i][0] - rows[0][0]).abs() < 0.5, "{}: {:?}", labels[i], rows[i]);
    }
    // One side + full copy: the mirror is in sync only after the copy.
    for (alt, both) in [(5, 4), (6, 2)] {
        for col in [2, 5] {
            assert!(rows[alt][col] > 5.0 * rows[both][col], "{} vs {}: {out}", labels[alt], labels[both]);
        }
    }
    assert!(out.contains("one side + full copy / both sides, lazy, 1 TiB: full perf "), "{out}");
}

/// `bench --quick -o json --binary <the test binary>`: one JSON document, every part's figures as
/// fields; the footprint names the binary it was given and its build (fails on f1148e9: neither
/// `-o` nor `--binary` existed).
#[test]
fn bench_json_has_every_part_as_fields_and_measures_the_given_binary() {
    let dir = tempfile::tempdir().expect("temp dir");
    let exe = env!("CARGO_BIN_EXE_mirrorctl");
    let out = Command::new(exe)
        .args(["--state-dir"])
        .arg(dir.path())
        .args(["bench", "--quick", "-o", "json", "--binary", exe])
        .output()
        .expect("run mirrorctl bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let doc: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(doc["quick"], true);
    assert_eq!(doc["seeds"], serde_json::json!([1]));
    let figures = doc["single_cluster"]["figures"].as_array().expect("figures");
    assert_eq!(figures.len(), 9, "{figures:?}");
    let restore = figures.iter().find(|f| f["figure"] == "restore-wall-per-critical-path").expect("restore figure");
    assert!(restore["median"].as_f64().expect("number") >= 1.0, "{restore}");
    assert_eq!(restore["target"], serde_json::json!({"op": "<=", "value": 1.05}));
    assert!(restore["pass"].is_boolean() && restore["runs"].as_array().is_some_and(|r| r.len() == 1), "{restore}");
    assert_eq!(doc["single_cluster"]["time"], "model");
    // Scale: 1, 5 and 20 clusters most urgent first, 5 and 20 again in arrival order.
    let runs = doc["scale"]["runs"].as_array().expect("scale runs");
    let sizes: Vec<(u64, &str)> =
        runs.iter().map(|r| (r["clusters"].as_u64().expect("n"), r["order"].as_str().expect("order"))).collect();
    assert_eq!(sizes, [(1, "urgency"), (5, "urgency"), (5, "arrival"), (20, "urgency"), (20, "arrival")]);
    for r in runs {
        assert!(r["total_per_bound"].as_f64().expect("ratio") >= 1.0, "{r}");
        assert!(r["cluster_done_s"]["median"].as_f64().expect("median") > 0.0, "{r}");
        assert!(r["calls"]["mutate_ok"].as_u64().expect("calls") > 0, "{r}");
    }
    // Time to full performance: every option for both data sets, FSR ready fastest, lazy slowest.
    let options = doc["time_to_full_performance"]["options"].as_array().expect("options");
    let full = |id: &str, gib: u64| {
        let o = options.iter().find(|o| o["option"] == id).unwrap_or_else(|| panic!("no option {id}: {options:?}"));
        let cell = o["data_sets"].as_array().expect("cells").iter().find(|c| c["data_gib"] == gib).expect("cell");
        cell["full_performance_s"].as_f64().expect("seconds")
    };
    for gib in [100, 1024] {
        let order = ["fsr-already-enabled", "provisioned-300", "provisioned-100", "lazy"].map(|id| full(id, gib));
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{gib} GiB: {order:?}");
    }
    assert_eq!(options.len(), 7, "{options:?}");
    // The footprint, on the binary named.
    let fp = &doc["footprint"];
    assert_eq!(fp["binary"]["path"], exe);
    assert_eq!(fp["binary"]["given"], true);
    assert_eq!(fp["binary"]["build"], "debug", "the test binary's own --version says so");
    assert_eq!(fp["time"], "wall");
    let idle = fp["idle"].as_array().expect("idle");
    assert_eq!(idle.iter().map(|i| i["files"].as_u64().expect("files")).collect::<Vec<_>>(), [0, 20]);
    assert!(idle.iter().all(|i| i["rss_mib"].as_f64().is_some_and(|m| m > 0.0)), "{idle:?}");
    let edit = &fp["edit_to_first_action"];
    assert!(edit["p99_ms"].as_f64().expect("p99") >= edit["median_ms"].as_f64().expect("median"), "{edit}");
}

/// `--binary` that is not an executable mirrorctl is refused at once with a usage error naming the
/// path and what to do, before anything is measured.
#[test]
fn bench_binary_must_be_an_executable_mirrorctl() {
    let dir = tempfile::tempdir().expect("temp dir");
    let plain = dir.path().join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\n").expect("write");
    let missing = dir.path().join("missing");
    for (path, why) in
        [(&missing, "cannot be read"), (&plain, "is not executable"), (&dir.path().to_path_buf(), "is not a file")]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
            .args(["--state-dir"])
            .arg(dir.path())
            .args(["bench", "--quick", "--binary"])
            .arg(path)
            .output()
            .expect("run mirrorctl bench");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(64), "{stderr}");
        assert!(stderr.contains(&format!("--binary {}: {why}", path.display())), "{stderr}");
        assert!(stderr.contains("cargo build --release"), "{stderr}");
        assert!(out.stdout.is_empty(), "refused before measuring: {}", String::from_utf8_lossy(&out.stdout));
    }
    // `--binary` with `--only` leaving the footprint out would be ignored: refused instead (fails
    // before `--only` existed, as an unknown option with another message).
    let exe = env!("CARGO_BIN_EXE_mirrorctl");
    let out = Command::new(exe)
        .args(["--state-dir"])
        .arg(dir.path())
        .args(["bench", "--quick", "--only", "single", "--binary", exe])
        .output()
        .expect("run mirrorctl bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(64), "{stderr}");
    assert!(
        stderr.contains("only the footprint part runs a binary") && stderr.contains("add `footprint` to --only"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}
