//! Templates: what a removal of md loses (network settings, mount point, monitors, dependencies),
//! with where each piece stood, kept to put it back.

use serde::{Deserialize, Serialize};

use crate::ids::ResourceName;

use super::splice::{Elem, parse_tree};
use super::{ConfError, MD_MONITOR_TYPES};

/// An element's previous sibling: where a captured piece stood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Anchor {
    pub(super) tag: String,
    pub(super) name: Option<String>,
}

/// Where a piece goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) enum Parent {
    /// The `<resource>` section.
    Resources,
    /// The `<monitor>` section.
    Monitors,
    /// A `<group name=…>`.
    Group(String),
    /// A resource element `<tag name=…>` inside `<resource>` (for `<depend>`).
    Resource(String, String),
}

/// One element to (re)insert, verbatim, after its anchor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Piece {
    pub(super) parent: Parent,
    pub(super) tag: String,
    pub(super) name: Option<String>,
    pub(super) text: String,
    pub(super) after: Option<Anchor>,
    /// Generated text: its inner lines are indented relative to its first line (captured text
    /// keeps the absolute indentation it had).
    #[serde(default)]
    pub(super) relative: bool,
}

/// Everything [`ConfigChange::RemoveMirror`] takes out for one md resource, with positions, so
/// that a later [`ConfigChange::AddMirror`] can put it back unchanged (the md element with its
/// network and mount settings, its monitors, the group reference, the `types` entries and the
/// `<depend>` elements of resources that depended on it). Store it (serde) between the two pushes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorTemplate {
    pub(super) resource: ResourceName,
    pub(super) pieces: Vec<Piece>,
}

pub(super) fn anchor_of(parent: &Elem, child: &Elem) -> Option<Anchor> {
    let i = parent.children.iter().position(|c| c.start == child.start)?;
    let prev = i.checked_sub(1).and_then(|j| parent.children.get(j))?;
    Some(Anchor { tag: prev.tag.clone(), name: prev.name().map(str::to_owned) })
}

pub(super) fn watches(monitor: &Elem, resource: &str) -> bool {
    MD_MONITOR_TYPES.contains(&monitor.tag.as_str())
        && monitor.path(&["parameters", "object"]).map(Elem::value) == Some(resource)
}

impl MirrorTemplate {
    /// Captures what removing md resource `resource` from `xml` would take out; `None` when the
    /// file does not define it.
    pub fn capture(xml: &str, resource: &ResourceName) -> Result<Option<Self>, ConfError> {
        let root = parse_tree(xml)?;
        let res = resource.as_str();
        let Some(section) = root.child("resource") else { return Ok(None) };
        let Some(_) = section.named("md", res) else { return Ok(None) };
        let mut pieces = Vec::new();
        let mut take = |parent: Parent, p: &Elem, e: &Elem| {
            pieces.push(Piece {
                parent,
                tag: e.tag.clone(),
                name: e.name().map(str::to_owned),
                text: xml[e.start..e.end].to_owned(),
                after: anchor_of(p, e),
                relative: false,
            });
        };
        let reference = format!("md@{res}");
        for g in root.all("group") {
            for r in g.all("resource").filter(|r| r.name() == Some(reference.as_str())) {
                take(Parent::Group(g.name().unwrap_or("").to_owned()), g, r);
            }
        }
        for c in &section.children {
            if (c.tag == "types" && c.name() == Some("md")) || (c.tag == "md" && c.name() == Some(res)) {
                take(Parent::Resources, section, c);
            }
            for d in c.all("depend").filter(|d| d.name() == Some(res)) {
                take(Parent::Resource(c.tag.clone(), c.name().unwrap_or("").to_owned()), c, d);
            }
        }
        if let Some(mon) = root.child("monitor") {
            for c in &mon.children {
                let is_type = c.tag == "types" && c.name().is_some_and(|n| MD_MONITOR_TYPES.contains(&n));
                if is_type || watches(c, res) {
                    take(Parent::Monitors, mon, c);
                }
            }
        }
        Ok(Some(MirrorTemplate { resource: resource.clone(), pieces }))
    }

    /// The md resource this template restores.
    pub fn resource(&self) -> &ResourceName {
        &self.resource
    }
}
