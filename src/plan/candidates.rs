//! The snapshots a missing `restore.snapshot` probably meant: this cluster's newest backups and
//! any snapshot whose id is a few characters off (a typo, a truncated paste).
//!
//! Why this module exists: "snapshot not found" alone sends the operator to the EC2 console in
//! the middle of an incident. The planner already holds the cluster's backups (observation reads
//! them for retention), so the refusal can name the likely intended ones at no extra call. Pure,
//! like the rest of the planner.

use std::fmt::Write as _;

use crate::ids::SnapshotId;
use crate::observe::Observed;
use crate::ports::cloud::{Snapshot, SnapshotState, tag};
use crate::spec::Spec;

/// How many of the cluster's newest backups are named.
const NEWEST: usize = 3;
/// Ids at most this many single-character edits away count as "close".
const CLOSE: usize = 4;

/// EC2's word for a snapshot state (`pending`, `completed`, `error`).
pub(crate) fn state_word(s: SnapshotState) -> &'static str {
    match s {
        SnapshotState::Pending => "pending",
        SnapshotState::Completed => "completed",
        SnapshotState::Error => "error",
    }
}

/// Levenshtein distance between two ASCII-ish strings (by `char`).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let swap = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = swap.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

fn describe(s: &Snapshot) -> String {
    format!(
        "{} ({}, taken {}, {} {}%)",
        s.id,
        s.tags.get(tag::REQUEST).map_or("untagged", String::as_str),
        s.started.strftime("%Y-%m-%d %H:%M:%SZ"),
        state_word(s.state),
        s.progress
    )
}

/// A clause to append to the refusal: `; did you mean …` with the close ids first, then the
/// cluster's newest backups; empty when there is nothing to suggest.
pub fn nearest(spec: &Spec, obs: &Observed, wanted: &SnapshotId) -> String {
    let mut close: Vec<(usize, &Snapshot)> = obs
        .snapshots
        .iter()
        .map(|s| (edit_distance(s.id.as_str(), wanted.as_str()), s))
        .filter(|(d, _)| *d <= CLOSE)
        .collect();
    close.sort_by(|a, b| a.0.cmp(&b.0).then_with(|| b.1.started.cmp(&a.1.started)));
    let mut ours: Vec<&Snapshot> = obs
        .snapshots
        .iter()
        .filter(|s| s.tags.get(tag::CLUSTER).map(String::as_str) == Some(spec.cluster.name.as_str()))
        .filter(|s| !close.iter().any(|(_, c)| c.id == s.id))
        .collect();
    ours.sort_by_key(|s| std::cmp::Reverse(s.started));
    if close.is_empty() && ours.is_empty() {
        return format!("; this cluster has no backup snapshots in {}", spec.cluster.region);
    }
    let mut s = String::from("; nearest candidates:");
    for (d, snap) in &close {
        let _ = write!(s, " {} — id {d} character(s) off;", describe(snap));
    }
    for snap in ours.iter().take(NEWEST) {
        let _ = write!(s, " {} — among this cluster's newest;", describe(snap));
    }
    s.pop();
    s
}

#[cfg(test)]
mod tests {
    use super::edit_distance;

    #[test]
    fn edit_distance_counts_single_character_edits() {
        assert_eq!(edit_distance("snap-0abc", "snap-0abc"), 0);
        assert_eq!(edit_distance("snap-0abc", "snap-0abd"), 1);
        assert_eq!(edit_distance("snap-0abc", "snap-0ab"), 1);
        assert_eq!(edit_distance("snap-0abc", "snap-x0abc"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
    }
}
