//! The file's md resources against the cluster's live configuration (`clp.conf`).
//!
//! Why this module exists: an operation covers the md resources the file names. A restore that
//! swaps the volumes of md1 while md2 keeps its old data breaks the consistent set the snapshots
//! were taken as, so the restore is refused when the cluster has an md the file does not name; a
//! backup of part of the cluster is allowed but said out loud. An md the file names and the
//! cluster lacks, or places in another group, means the file describes another cluster shape.
//! Compared by resource and group name only: partition names in `clp.conf` are the OS's own
//! (volume GUIDs, `/dev/nvme…` paths) and are checked by the procedures that use them.

use crate::ids::{GroupName, ResourceName};
use crate::ports::cluster::ClusterConfig;
use crate::spec::Spec;

/// How the file's md resources and the configuration's differ.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Shape {
    /// md resources in `clp.conf` that the file does not name.
    pub unmentioned: Vec<ResourceName>,
    /// md resources the file names that `clp.conf` does not have.
    pub absent: Vec<ResourceName>,
    /// md resources in another group than the file says: (resource, file's group, clp.conf's).
    pub regrouped: Vec<(ResourceName, GroupName, GroupName)>,
}

impl Shape {
    /// Compares `spec`'s md resources with `config`'s.
    pub fn of(spec: &Spec, config: &ClusterConfig) -> Shape {
        let mut shape = Shape::default();
        for md in &config.mirrors {
            if !spec.mirrors().any(|m| m.resource == md.resource) {
                shape.unmentioned.push(md.resource.clone());
            }
        }
        for m in spec.mirrors() {
            match config.mirror(&m.resource) {
                None => shape.absent.push(m.resource.clone()),
                Some(md) if md.group != m.group => {
                    shape.regrouped.push((m.resource.clone(), m.group.clone(), md.group.clone()));
                }
                Some(_) => {}
            }
        }
        shape
    }

    /// `md1, md2`.
    pub fn list(names: &[ResourceName]) -> String {
        names.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
    }

    /// The differences as notes for `plan` (warnings, not refusals).
    pub fn notes(&self, spec: &Spec) -> Vec<String> {
        let mut notes = Vec::new();
        if !self.unmentioned.is_empty() {
            notes.push(format!(
                "warning: the cluster has md resource(s) {} that {} does not name: backups do not cover them and a restore is refused",
                Shape::list(&self.unmentioned),
                spec.source.display()
            ));
        }
        if !self.absent.is_empty() {
            notes.push(format!(
                "warning: {} names md resource(s) {} that the cluster's configuration does not have",
                spec.source.display(),
                Shape::list(&self.absent)
            ));
        }
        for (md, file, conf) in &self.regrouped {
            notes.push(format!("warning: md resource {md} is in group {conf} in clp.conf, the file says {file}"));
        }
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::cluster::MdDefinition;
    use crate::spec::Partition;

    fn md(name: &str, group: &str) -> MdDefinition {
        MdDefinition {
            resource: ResourceName::parse(name).unwrap(),
            group: GroupName::parse(group).unwrap(),
            data_partition: Partition::Letter('M'),
            cluster_partition: Partition::Letter('R'),
            initial_copy: true,
        }
    }

    fn spec_of(mds: &[(&str, &str)]) -> Spec {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state/prod-db.toml");
        let mut spec = crate::spec::load_file(&path).unwrap();
        let first = spec.mirror.clone();
        let entries: Vec<crate::spec::MirrorSpec> = mds
            .iter()
            .map(|(name, group)| crate::spec::MirrorSpec {
                resource: ResourceName::parse(name).unwrap(),
                group: GroupName::parse(group).unwrap(),
                ..first.clone()
            })
            .collect();
        spec.mirror = entries[0].clone();
        spec.more_mirrors = entries[1..].to_vec();
        spec
    }

    #[test]
    fn every_difference_is_named_once() {
        let config = ClusterConfig {
            mirrors: vec![md("md1", "db"), md("md2", "db"), md("md3", "web")],
            ..ClusterConfig::default()
        };
        assert_eq!(Shape::of(&spec_of(&[("md1", "db"), ("md2", "db"), ("md3", "web")]), &config), Shape::default());
        let shape = Shape::of(&spec_of(&[("md1", "db"), ("md3", "db"), ("md9", "db")]), &config);
        assert_eq!(shape.unmentioned, [ResourceName::parse("md2").unwrap()]);
        assert_eq!(shape.absent, [ResourceName::parse("md9").unwrap()]);
        assert_eq!(
            shape.regrouped,
            [(ResourceName::parse("md3").unwrap(), GroupName::parse("db").unwrap(), GroupName::parse("web").unwrap())]
        );
        assert_eq!(shape.notes(&spec_of(&[("md1", "db")])).len(), 3);
    }
}
