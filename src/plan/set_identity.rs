//! What each snapshot of a snapshot set holds: the md resources and partitions of the volume it
//! was taken from, as the [`tag::HOLDS`] tag spells them.
//!
//! Why this module exists: `CreateSnapshots` tags every snapshot of a set alike, so the backup
//! tags each one afterwards with what its volume holds, and a restore by backup name matches the
//! set against the file's mirrors by those tags. Both planners read the same spelling from here.

use crate::ports::cloud::{Snapshot, tag};
use crate::spec::Spec;

/// What the volume at `device` holds, as [`tag::HOLDS`] spells it: `<md>:<partitions>` for each
/// md of the file with a partition there, in file order; empty when none has.
pub fn holds(spec: &Spec, device: &crate::ids::DeviceName) -> String {
    spec.mirrors()
        .filter_map(|m| {
            let partitions = match (&m.device == device, m.cluster_device.as_ref()) {
                (true, None) => "cluster+data",
                (true, Some(_)) => "data",
                (false, Some(c)) if c == device => "cluster",
                _ => return None,
            };
            Some(format!("{}:{partitions}", m.resource))
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Whether `s` is a snapshot of a set that does not (yet) say what its volume holds: such a backup
/// is not complete, and no restore takes it.
pub(crate) fn lacks_identity(s: &Snapshot) -> bool {
    s.tags.contains_key(tag::SNAPSHOT_SET) && !(s.tags.contains_key(tag::HOLDS) && s.tags.contains_key(tag::DEVICE))
}
