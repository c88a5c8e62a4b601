//! The data oracle: what each disk, snapshot and mirror side *holds*, as versions of content.
//!
//! Why this module exists: the whole point of a backup or a restore is the data, and EC2 or
//! CLUSTERPRO states cannot tell whether a restore brought back the right bytes. The oracle models
//! content as `(lineage, version)`: business writes advance the head of a lineage; writing on an
//! older copy (a restored snapshot) forks a new lineage whose parent is that copy. With that, tests
//! can assert that a backup captured the quiesce point, that a restore left both sides identical
//! to the snapshot, and that re-adding md without an initial copy over different sides corrupts
//! the mirror — which the oracle records as a corruption.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{ServerName, SnapshotId, VolumeId};

/// A version of the data: lineage `lineage`, `version` writes after its start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Content {
    /// The lineage (0 = the original data; a new one starts when an older copy is written to).
    pub lineage: u32,
    /// The number of writes on this lineage since it started.
    pub version: u64,
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Words, not the oracle's own notation: this shows in the lab's timeline and verdicts.
        match self.lineage {
            0 => write!(f, "write #{} of the original data", self.version),
            n => write!(f, "write #{} of restored copy {n}", self.version),
        }
    }
}

/// One lineage: where it forked from and its newest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lineage {
    parent: Option<Content>,
    head: u64,
}

/// The content of the active server's mirror volume when md was stopped there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuiescePoint {
    /// When md went offline.
    pub at: Timestamp,
    /// The server it was online on.
    pub server: ServerName,
    /// What that server's mirror volume held.
    pub content: Content,
}

/// The oracle's own state (part of the persisted world).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Oracle {
    lineages: Vec<Lineage>,
    accidents: Vec<Content>,
    pub(super) quiesce: Vec<QuiescePoint>,
    pub(super) corruptions: Vec<String>,
    pub(super) writes: u64,
}

impl Oracle {
    /// The original content every scenario starts from.
    pub(super) fn genesis(&mut self) -> Content {
        if self.lineages.is_empty() {
            self.lineages.push(Lineage { parent: None, head: 0 });
        }
        Content { lineage: 0, version: 0 }
    }

    /// A content unrelated to anything else (a stray disk).
    pub(super) fn fresh(&mut self) -> Content {
        let lineage = u32::try_from(self.lineages.len()).unwrap_or(u32::MAX);
        self.lineages.push(Lineage { parent: None, head: 0 });
        Content { lineage, version: 0 }
    }

    /// `n` business writes on `c`; returns the new content. Writing on a version that is not its
    /// lineage's head forks a new lineage.
    pub(super) fn write(&mut self, c: Content, n: u64) -> Content {
        if n == 0 {
            return c;
        }
        self.writes += n;
        let idx = c.lineage as usize;
        if self.lineages.get(idx).is_some_and(|l| l.head == c.version) {
            self.lineages[idx].head += n;
            return Content { lineage: c.lineage, version: c.version + n };
        }
        let lineage = u32::try_from(self.lineages.len()).unwrap_or(u32::MAX);
        self.lineages.push(Lineage { parent: Some(c), head: n });
        Content { lineage, version: n }
    }

    /// Whether `c` is `ancestor` or was written on top of it (following lineage parents).
    pub(super) fn descends_from(&self, c: Content, ancestor: Content) -> bool {
        let mut cur = Some(c);
        while let Some(x) = cur {
            if x.lineage == ancestor.lineage && x.version >= ancestor.version {
                return true;
            }
            cur = self.lineages.get(x.lineage as usize).and_then(|l| l.parent);
        }
        false
    }

    /// A mistaken deletion: one write on `c`, remembered as an accident.
    pub(super) fn accident(&mut self, c: Content) -> Content {
        let after = self.write(c, 1);
        self.accidents.push(after);
        after
    }

    /// Whether `c` contains an accident (walking lineage parents).
    pub(super) fn contains_accident(&self, c: Content) -> bool {
        let mut cur = Some(c);
        while let Some(c) = cur {
            if self.accidents.iter().any(|a| a.lineage == c.lineage && a.version <= c.version) {
                return true;
            }
            cur = self.lineages.get(c.lineage as usize).and_then(|l| l.parent);
        }
        false
    }

    pub(super) fn accidents(&self) -> &[Content] {
        &self.accidents
    }
}

/// Everything the oracle can tell about the data, at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OracleReport {
    /// Model time of the report.
    pub at: Timestamp,
    /// Content of every volume.
    pub volumes: std::collections::BTreeMap<VolumeId, Content>,
    /// Content every snapshot captured.
    pub snapshots: std::collections::BTreeMap<SnapshotId, Content>,
    /// Content of each server's attached mirror volume (`None`: nothing attached at the device).
    pub servers: std::collections::BTreeMap<ServerName, Option<Content>>,
    /// Where md is online, if anywhere.
    pub active: Option<ServerName>,
    /// The latest quiesce point (md stop).
    pub last_quiesce: Option<QuiescePoint>,
    /// Every quiesce point so far.
    pub quiesce_points: Vec<QuiescePoint>,
    /// Contents right after each accident.
    pub accidents: Vec<Content>,
    /// Corruptions detected (e.g. md re-added without initial copy over different sides).
    pub corruptions: Vec<String>,
    /// Business writes so far.
    pub writes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_advance_the_head_and_older_copies_fork() {
        let mut o = Oracle::default();
        let g = o.genesis();
        let a = o.write(g, 5);
        assert_eq!(a, Content { lineage: 0, version: 5 });
        let b = o.write(a, 1);
        assert_eq!(b, Content { lineage: 0, version: 6 });
        // Writing on the older copy `a` (a restored snapshot) forks.
        let fork = o.write(a, 2);
        assert_eq!(fork, Content { lineage: 1, version: 2 });
        assert_eq!(o.write(fork, 1), Content { lineage: 1, version: 3 });
        assert_eq!(o.writes, 9);
    }

    #[test]
    fn accidents_are_inherited_by_later_content_only() {
        let mut o = Oracle::default();
        let g = o.genesis();
        let before = o.write(g, 3);
        let bad = o.accident(before);
        let later = o.write(bad, 4);
        assert!(!o.contains_accident(before));
        assert!(o.contains_accident(bad));
        assert!(o.contains_accident(later));
        // A restore from `before` forks a clean lineage.
        let restored = o.write(before, 1);
        assert!(!o.contains_accident(restored));
        // A fork from after the accident inherits it through its parent.
        let fork = o.write(bad, 1);
        assert!(o.contains_accident(fork));
    }
}
