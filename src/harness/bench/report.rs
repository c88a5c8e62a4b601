//! `mirrorctl bench -o json`: every part's figures as one JSON document for scripts.
//!
//! Why this module exists: the text tables are for people; a script comparing runs needs the same
//! figures as fields. Values are numbers, booleans and identifiers, never sentences: each figure
//! has a stable `figure` id, its per-run values, its target as `{op, value}` and `pass`; times are
//! seconds and say whether they are model or wall time.

use super::fullperf::{self, Row};
use super::{Sample, footprint, lines, median_max, scale, worst_passes};

/// Everything one run measured; a part `--only` left out is `None` (`null` in the document).
pub(super) struct Parts<'a> {
    pub(super) samples: Option<&'a [Sample]>,
    pub(super) quick: bool,
    pub(super) seed: u64,
    pub(super) scaled: Option<&'a [scale::ScaleSample]>,
    pub(super) loading: Option<&'a [Row]>,
    pub(super) footprint: Option<&'a footprint::Footprint>,
}

/// A figure's name as an identifier: `restore wall / critical path` → `restore-wall-per-critical-path`.
pub(super) fn figure_id(name: &str) -> String {
    let mut id = String::new();
    for word in name.split(|c: char| !c.is_ascii_alphanumeric() && c != '/').filter(|w| !w.is_empty()) {
        if !id.is_empty() {
            id.push('-');
        }
        id.push_str(if word == "/" { "per" } else { word });
    }
    id.to_ascii_lowercase()
}

/// A target written `<= 1.10` as `{"op": "<=", "value": 1.1}`.
pub(super) fn target(text: &str) -> serde_json::Value {
    match text.split_once(' ').map(|(op, v)| (op, v.parse::<f64>())) {
        Some((op, Ok(value))) => serde_json::json!({"op": op, "value": value}),
        _ => serde_json::Value::Null,
    }
}

/// The document.
pub(super) fn json(p: &Parts<'_>) -> serde_json::Value {
    let samples = p.samples.unwrap_or_default();
    let figures: Vec<serde_json::Value> = lines(samples)
        .iter()
        .map(|l| {
            let (median, max) = median_max(l.values.clone());
            serde_json::json!({
                "figure": figure_id(l.name),
                "median": median,
                "max": max,
                "runs": l.values,
                "target": target(l.target),
                "pass": worst_passes(l),
            })
        })
        .collect();
    let seeds: Vec<u64> = (0..samples.len() as u64).map(|i| p.seed + i).collect();
    serde_json::json!({
        "quick": p.quick,
        "seeds": seeds,
        "single_cluster": p.samples.map(|_| serde_json::json!({"time": "model", "world": "lab", "figures": figures})),
        "scale": p.scaled.map(scale::json),
        "time_to_full_performance": p.loading.map(fullperf::json),
        "footprint": p.footprint.map(footprint::json),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_targets_become_fields() {
        assert_eq!(figure_id("restore wall / critical path"), "restore-wall-per-critical-path");
        assert_eq!(figure_id("vendor: restore / critical path"), "vendor-restore-per-critical-path");
        assert_eq!(figure_id("mutating EC2 calls per restore"), "mutating-ec2-calls-per-restore");
        assert_eq!(target("<= 1.10"), serde_json::json!({"op": "<=", "value": 1.1}));
        assert_eq!(target(">= 4"), serde_json::json!({"op": ">=", "value": 4.0}));
        assert_eq!(target("-"), serde_json::Value::Null);
    }
}
