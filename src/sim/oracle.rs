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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Content {
    /// The lineage within its md's data (0 = the original data; a new one starts when an older
    /// copy is written to).
    pub lineage: u32,
    /// The number of writes on this lineage since it started.
    pub version: u64,
    /// Which md's data this is: its position in the scenario's md resources (0 = the first).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub md: u32,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl fmt::Display for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Words, not the oracle's own notation: this shows in the lab's timeline and verdicts.
        let of = if self.md == 0 { String::new() } else { format!(" of mirror disk #{}", self.md + 1) };
        match self.lineage {
            0 => write!(f, "write #{} of the original data{of}", self.version),
            n => write!(f, "write #{} of restored copy {n}{of}", self.version),
        }
    }
}

/// One lineage: where it forked from and its newest version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Lineage {
    parent: Option<Content>,
    head: u64,
}

/// The content of the active server's mirror volume when an md was stopped there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuiescePoint {
    /// The md resource that was stopped.
    pub md: crate::ids::ResourceName,
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
    /// The first md's lineages (and stray disks').
    lineages: Vec<Lineage>,
    /// Each further md's lineages, indexed by its position minus one: the data of different md
    /// never descend from each other.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    more: Vec<Vec<Lineage>>,
    accidents: Vec<Content>,
    pub(super) quiesce: Vec<QuiescePoint>,
    pub(super) corruptions: Vec<String>,
    pub(super) writes: u64,
}

impl Oracle {
    /// The original data of the md at position `md` of the scenario.
    pub(super) fn original(&mut self, md: u32) -> Content {
        let lineages = self.lineages_mut(md);
        if lineages.is_empty() {
            lineages.push(Lineage { parent: None, head: 0 });
        }
        Content { lineage: 0, version: 0, md }
    }

    fn lineages_of(&self, md: u32) -> &[Lineage] {
        match md {
            0 => &self.lineages,
            n => self.more.get(n as usize - 1).map_or(&[], Vec::as_slice),
        }
    }

    fn lineages_mut(&mut self, md: u32) -> &mut Vec<Lineage> {
        match md {
            0 => &mut self.lineages,
            n => {
                let i = n as usize - 1;
                if self.more.len() <= i {
                    self.more.resize(i + 1, Vec::new());
                }
                &mut self.more[i]
            }
        }
    }

    /// A content unrelated to anything else (a stray disk).
    pub(super) fn fresh(&mut self) -> Content {
        let lineage = u32::try_from(self.lineages.len()).unwrap_or(u32::MAX);
        self.lineages.push(Lineage { parent: None, head: 0 });
        Content { lineage, version: 0, md: 0 }
    }

    /// `n` business writes on `c`; returns the new content. Writing on a version that is not its
    /// lineage's head forks a new lineage (of the same md).
    pub(super) fn write(&mut self, c: Content, n: u64) -> Content {
        if n == 0 {
            return c;
        }
        self.writes += n;
        let lineages = self.lineages_mut(c.md);
        let idx = c.lineage as usize;
        if lineages.get(idx).is_some_and(|l| l.head == c.version) {
            lineages[idx].head += n;
            return Content { version: c.version + n, ..c };
        }
        let lineage = u32::try_from(lineages.len()).unwrap_or(u32::MAX);
        lineages.push(Lineage { parent: Some(c), head: n });
        Content { lineage, version: n, md: c.md }
    }

    /// Whether `c` is `ancestor` or was written on top of it (following lineage parents).
    pub(super) fn descends_from(&self, c: Content, ancestor: Content) -> bool {
        let mut cur = Some(c);
        while let Some(x) = cur {
            if x.md == ancestor.md && x.lineage == ancestor.lineage && x.version >= ancestor.version {
                return true;
            }
            cur = self.lineages_of(x.md).get(x.lineage as usize).and_then(|l| l.parent);
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
            if self.accidents.iter().any(|a| a.md == c.md && a.lineage == c.lineage && a.version <= c.version) {
                return true;
            }
            cur = self.lineages_of(c.md).get(c.lineage as usize).and_then(|l| l.parent);
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
    /// Content of each server's volume holding the first md's data (`None`: nothing attached at
    /// the device).
    pub servers: std::collections::BTreeMap<ServerName, Option<Content>>,
    /// Content of each server's data volume, per md resource (every md of the scenario).
    pub mirrors:
        std::collections::BTreeMap<crate::ids::ResourceName, std::collections::BTreeMap<ServerName, Option<Content>>>,
    /// Where the first md is online, if anywhere.
    pub active: Option<ServerName>,
    /// The latest quiesce point of the first md.
    pub last_quiesce: Option<QuiescePoint>,
    /// Every quiesce point so far, of every md.
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
        let g = o.original(0);
        let a = o.write(g, 5);
        assert_eq!(a, Content { lineage: 0, version: 5, md: 0 });
        let b = o.write(a, 1);
        assert_eq!(b, Content { lineage: 0, version: 6, md: 0 });
        // Writing on the older copy `a` (a restored snapshot) forks.
        let fork = o.write(a, 2);
        assert_eq!(fork, Content { lineage: 1, version: 2, md: 0 });
        assert_eq!(o.write(fork, 1), Content { lineage: 1, version: 3, md: 0 });
        assert_eq!(o.writes, 9);
    }

    #[test]
    fn each_md_has_data_of_its_own() {
        let mut o = Oracle::default();
        let g = o.original(0);
        let second = o.original(1);
        let a = o.write(g, 3);
        let b = o.write(second, 3);
        assert_eq!(b, Content { lineage: 0, version: 3, md: 1 }, "md2's writes do not fork md1's data");
        assert!(!o.descends_from(b, g) && !o.descends_from(a, second));
        let bad = o.accident(a);
        assert!(o.contains_accident(bad) && !o.contains_accident(b), "an accident on md1 is not on md2");
        assert_eq!(o.write(second, 1).to_string(), "write #1 of restored copy 1 of mirror disk #2");
        assert_eq!(b.to_string(), "write #3 of the original data of mirror disk #2");
    }

    #[test]
    fn accidents_are_inherited_by_later_content_only() {
        let mut o = Oracle::default();
        let g = o.original(0);
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
