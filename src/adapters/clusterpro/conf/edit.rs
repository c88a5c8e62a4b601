//! The edits: the volume GUIDs md needs, and [`ConfigChange`]s applied to the text (remove md,
//! add it back from its template or from generated pieces, patch its parameters, the group's
//! start attribute).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{ResourceName, ServerName};
use crate::ports::cluster::{ConfigChange, MdDefinition};
use crate::spec::Partition;

use super::splice::{
    Base, Elem, Lines, Step, esc, indent_unit, insert_child, newline, parse_tree, remove_elem, render, set_text, tag,
};
use super::template::{MirrorTemplate, Parent, Piece, watches};
use super::{ConfError, LINUX_MKFS_OFF, MD_MONITOR_TYPES, NMP_PREFIX, letter_text, parse_letter};

/// The volume GUIDs of one Windows server's mirror partitions (the GUID of the volume name
/// `\\?\Volume{GUID}\`, lowercase, without braces).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeGuids {
    /// GUID of the data partition's volume (`volumeguid`).
    pub data: String,
    /// GUID of the cluster partition's volume (`cpvolumeguid`).
    pub cluster: String,
}

/// Server → volume GUIDs, captured by the caller on each Windows server before adding an md
/// resource. Empty for Linux.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GuidSource {
    pub(super) servers: BTreeMap<ServerName, VolumeGuids>,
}

impl GuidSource {
    /// No GUIDs (Linux, or changes that add nothing).
    pub fn new() -> Self {
        Self::default()
    }
    /// Records a server's GUIDs (replacing earlier ones).
    pub fn insert(&mut self, server: ServerName, guids: VolumeGuids) -> &mut Self {
        self.servers.insert(server, guids);
        self
    }
    /// A server's GUIDs.
    pub fn get(&self, server: &str) -> Option<&VolumeGuids> {
        self.servers.iter().find(|(s, _)| s.as_str() == server).map(|(_, g)| g)
    }
}

/// The volume GUIDs a Windows md resource holds today for each server (`server@s/parameters/
/// volumeguid` and `cpvolumeguid` under `<md name>`), lowercased; servers missing either are left
/// out. Empty when the file does not define the resource.
pub fn md_guids(xml: &str, resource: &ResourceName) -> Result<GuidSource, ConfError> {
    let root = parse_tree(xml)?;
    let mut out = GuidSource::new();
    let Some(md) = root.child("resource").and_then(|r| r.named("md", resource.as_str())) else { return Ok(out) };
    for s in md.all("server") {
        let Some(name) = s.name().and_then(|n| ServerName::parse(n).ok()) else { continue };
        let get = |tag: &str| s.path(&["parameters", tag]).map(|e| e.value().trim().to_ascii_lowercase());
        if let (Some(data), Some(cluster)) = (get("volumeguid"), get("cpvolumeguid")) {
            out.insert(name, VolumeGuids { data, cluster });
        }
    }
    Ok(out)
}

/// Applies `changes` in order to `xml` and returns the new text; see
/// [`apply_changes_with_templates`] (this is it without templates).
pub fn apply_changes(xml: &str, changes: &[ConfigChange], guids: &GuidSource) -> Result<String, ConfError> {
    apply_changes_with_templates(xml, changes, guids, &[])
}

/// Applies `changes` in order to `xml` and returns the new text. Bytes not touched by a change are
/// kept exactly.
///
/// Idempotency contract: applying the same changes to the result changes nothing; removing an md
/// resource the file does not define, adding one identical to what is there, and setting a start
/// attribute to its value are no-ops.
///
/// - `RemoveMirror`: removes `<md name>`, the groups' `<resource name="md@…"/>`, every `mdw`/`mdnw`
///   whose `parameters/object` is it, every `<depend name="…"/>` on it, and the `types` entries
///   (`md`, `mdw`, `mdnw`) left without an element of their type.
/// - `AddMirror`: when the md element is absent, inserts it — from the matching template in
///   `templates` (exactly what was removed, where it was) or else a minimal element — with its
///   `types` entry, group reference and `mdw`/`mdnw` monitors; then makes `fullcopy`, the
///   partitions and (Windows) each server's `volumeguid`/`cpvolumeguid` (from `guids`) say what the
///   definition says, and moves the group reference if the definition names another group.
/// - `SetGroupAutoStart`: sets `<start>` to 1 or 0, inserting it when absent.
pub fn apply_changes_with_templates(
    xml: &str,
    changes: &[ConfigChange],
    guids: &GuidSource,
    templates: &[MirrorTemplate],
) -> Result<String, ConfError> {
    let mut doc = xml.to_owned();
    parse_tree(&doc)?;
    for change in changes {
        match change {
            ConfigChange::RemoveMirror { resource } => remove_mirror(&mut doc, resource.as_str())?,
            ConfigChange::AddMirror(def) => {
                add_mirror(&mut doc, def, guids, templates.iter().find(|t| t.resource == def.resource))?;
            }
            ConfigChange::SetGroupAutoStart { group, auto } => {
                let g = group.as_str();
                let root = parse_tree(&doc)?;
                if root.named("group", g).is_none() {
                    return Err(ConfError::UnknownGroup(g.to_owned()));
                }
                let value = if *auto { "1" } else { "0" };
                set_text(&mut doc, &Base::Group(g), &format!("group[{g}]"), &[tag("start")], value, &|v| v == value)?;
            }
        }
    }
    Ok(doc)
}

/// The next element to remove for md `res`, if any. `removed` says whether this call removed
/// something already (only then are emptied `types` entries cleaned up).
pub(super) fn next_removal<'a>(root: &'a Elem, res: &str, removed: bool) -> Option<&'a Elem> {
    let reference = format!("md@{res}");
    let section = root.child("resource");
    if let Some(md) = section.and_then(|s| s.named("md", res)) {
        return Some(md);
    }
    for g in root.all("group") {
        if let Some(r) = g.all("resource").find(|r| r.name() == Some(reference.as_str())) {
            return Some(r);
        }
    }
    let monitors = root.child("monitor");
    if let Some(m) = monitors.and_then(|m| m.children.iter().find(|c| watches(c, res))) {
        return Some(m);
    }
    if let Some(d) =
        section.and_then(|s| s.children.iter().find_map(|c| c.all("depend").find(|d| d.name() == Some(res))))
    {
        return Some(d);
    }
    if !removed {
        return None;
    }
    if let Some(s) = section
        && s.child("md").is_none()
        && let Some(t) = s.named("types", "md")
    {
        return Some(t);
    }
    if let Some(m) = monitors {
        for ty in MD_MONITOR_TYPES {
            if m.child(ty).is_none()
                && let Some(t) = m.named("types", ty)
            {
                return Some(t);
            }
        }
    }
    None
}

pub(super) fn remove_mirror(doc: &mut String, res: &str) -> Result<(), ConfError> {
    let mut removed = false;
    loop {
        let root = parse_tree(doc)?;
        let Some(e) = next_removal(&root, res, removed) else { return Ok(()) };
        remove_elem(doc, e);
        removed = true;
    }
}

/// Windows (letters) or Linux (devices), from the definition's partitions.
pub(super) enum Layout<'a> {
    Windows { data: char, cluster: char },
    Linux { data: &'a str, cluster: &'a str },
}

pub(super) fn layout(def: &MdDefinition) -> Result<Layout<'_>, ConfError> {
    match (&def.data_partition, &def.cluster_partition) {
        (Partition::Letter(d), Partition::Letter(c)) => Ok(Layout::Windows { data: *d, cluster: *c }),
        (Partition::Device(d), Partition::Device(c)) => Ok(Layout::Linux { data: d, cluster: c }),
        _ => Err(ConfError::MixedPartitions(def.resource.to_string())),
    }
}

pub(super) fn parent_of<'a>(root: &'a Elem, p: &Parent) -> Option<&'a Elem> {
    match p {
        Parent::Resources => root.child("resource"),
        Parent::Monitors => root.child("monitor"),
        Parent::Group(g) => root.named("group", g),
        Parent::Resource(t, n) => root.child("resource").and_then(|s| s.named(t, n)),
    }
}

/// Whether `piece` is already in `parent` (monitors: any of that type watching `res`).
pub(super) fn present(parent: &Elem, piece: &Piece, res: &str) -> bool {
    if MD_MONITOR_TYPES.contains(&piece.tag.as_str()) {
        return parent.all(&piece.tag).any(|m| watches(m, res));
    }
    parent.children.iter().any(|c| c.tag == piece.tag && c.name() == piece.name.as_deref())
}

/// Where a piece without a (found) anchor goes: after the last sibling of its tag; `types` and a
/// group's `resource` references otherwise first, anything else last.
pub(super) fn fallback_after<'a>(parent: &'a Elem, tag: &'a str) -> Option<&'a Elem> {
    parent.all(tag).last().or_else(|| if tag == "types" || tag == "resource" { None } else { parent.children.last() })
}

/// Inserts `piece` unless present. A template piece without an anchor was its parent's first
/// child; a generated one (or one whose anchor is gone) goes to [`fallback_after`].
pub(super) fn insert_piece(doc: &mut String, piece: &Piece, res: &str, from_template: bool) -> Result<(), ConfError> {
    let root = parse_tree(doc)?;
    let unit = indent_unit(doc, &root);
    let Some(parent) = parent_of(&root, &piece.parent) else {
        return match piece.parent {
            Parent::Resources => Err(ConfError::MissingSection("resource")),
            Parent::Monitors => Err(ConfError::MissingSection("monitor")),
            Parent::Group(ref g) => Err(ConfError::UnknownGroup(g.clone())),
            // A dependent resource that no longer exists: nothing to restore.
            Parent::Resource(..) => Ok(()),
        };
    };
    if present(parent, piece, res) {
        return Ok(());
    }
    let anchored = piece
        .after
        .as_ref()
        .and_then(|a| parent.children.iter().find(|c| c.tag == a.tag && c.name() == a.name.as_deref()));
    let after = match (&piece.after, anchored) {
        (_, Some(a)) => Some(a),
        (None, None) if from_template => None,
        _ => fallback_after(parent, &piece.tag),
    };
    let lines: Lines = if piece.relative {
        piece.text.split(newline(doc)).map(|l| (0, l.to_owned())).collect()
    } else {
        vec![(0, piece.text.clone())]
    };
    insert_child(doc, parent, after, &lines, &unit);
    Ok(())
}

/// The pieces of a new md resource when there is no template.
pub(super) fn generated_pieces(
    root: &Elem,
    def: &MdDefinition,
    layout: &Layout<'_>,
    guids: &GuidSource,
    unit: &str,
    nl: &str,
) -> Vec<Piece> {
    let res = def.resource.as_str();
    let fullcopy = if def.initial_copy { "1" } else { "0" };
    let mut lines: Lines = vec![(0, format!("<md name=\"{}\">", esc(res))), (1, "<parameters>".into())];
    lines.push((2, format!("<fullcopy>{fullcopy}</fullcopy>")));
    match layout {
        Layout::Windows { data, cluster } => {
            lines.push((2, format!("<volumemountpoint>{}</volumemountpoint>", letter_text(*data))));
            lines.push((2, format!("<cpvolumemountpoint>{}</cpvolumemountpoint>", letter_text(*cluster))));
            lines.push((1, "</parameters>".into()));
            for s in root.all("server").filter_map(Elem::name) {
                let Some(g) = guids.get(s) else { continue };
                lines.push((1, format!("<server name=\"{}\">", esc(s))));
                lines.push((2, "<parameters>".into()));
                lines.push((3, format!("<volumeguid>{}</volumeguid>", esc(&g.data))));
                lines.push((3, format!("<cpvolumeguid>{}</cpvolumeguid>", esc(&g.cluster))));
                lines.push((2, "</parameters>".into()));
                lines.push((1, "</server>".into()));
            }
        }
        Layout::Linux { data, cluster } => {
            let used: Vec<String> = root
                .child("resource")
                .map(|s| {
                    s.all("md")
                        .filter_map(|m| m.path(&["parameters", "nmppath"]))
                        .map(|e| e.value().to_owned())
                        .collect()
                })
                .unwrap_or_default();
            let nmp = (1..=9999).map(|n| format!("{NMP_PREFIX}{n}")).find(|p| !used.contains(p)).unwrap_or_default();
            lines.push((2, format!("<mkfs>{LINUX_MKFS_OFF}</mkfs>")));
            lines.push((2, format!("<nmppath>{nmp}</nmppath>")));
            lines.push((2, "<diskdev>".into()));
            lines.push((3, format!("<dppath>{}</dppath>", esc(data))));
            lines.push((3, format!("<cppath>{}</cppath>", esc(cluster))));
            lines.push((2, "</diskdev>".into()));
            lines.push((1, "</parameters>".into()));
        }
    }
    lines.push((0, "</md>".into()));
    let block = |l: &Lines| render(l, "", unit, nl);
    let mut pieces = vec![
        Piece {
            parent: Parent::Group(def.group.to_string()),
            tag: "resource".into(),
            name: Some(format!("md@{res}")),
            text: format!("<resource name=\"md@{}\"/>", esc(res)),
            after: None,
            relative: true,
        },
        Piece {
            parent: Parent::Resources,
            tag: "types".into(),
            name: Some("md".into()),
            text: "<types name=\"md\"/>".into(),
            after: None,
            relative: true,
        },
        Piece {
            parent: Parent::Resources,
            tag: "md".into(),
            name: Some(res.to_owned()),
            text: block(&lines),
            after: None,
            relative: true,
        },
    ];
    let names: Vec<&str> =
        root.child("monitor").map(|m| m.children.iter().filter_map(Elem::name).collect()).unwrap_or_default();
    for ty in MD_MONITOR_TYPES {
        pieces.push(Piece {
            parent: Parent::Monitors,
            tag: "types".into(),
            name: Some((*ty).to_owned()),
            text: format!("<types name=\"{ty}\"/>"),
            after: None,
            relative: true,
        });
        let name = (1..=9999).map(|n| format!("{ty}{n}")).find(|n| !names.contains(&n.as_str())).unwrap_or_default();
        let mon: Lines = vec![
            (0, format!("<{ty} name=\"{name}\">")),
            (1, "<parameters>".into()),
            (2, format!("<object>{}</object>", esc(res))),
            (1, "</parameters>".into()),
            (0, format!("</{ty}>")),
        ];
        pieces.push(Piece {
            parent: Parent::Monitors,
            tag: (*ty).to_owned(),
            name: Some(name),
            text: block(&mon),
            after: None,
            relative: true,
        });
    }
    pieces
}

/// `AddMirror`: see [`apply_changes_with_templates`].
pub(super) fn add_mirror(
    doc: &mut String,
    def: &MdDefinition,
    guids: &GuidSource,
    template: Option<&MirrorTemplate>,
) -> Result<(), ConfError> {
    let res = def.resource.as_str();
    let group = def.group.as_str();
    let lay = layout(def)?;
    let root = parse_tree(doc)?;
    if root.named("group", group).is_none() {
        return Err(ConfError::UnknownGroup(group.to_owned()));
    }
    if root.child("resource").is_none() {
        return Err(ConfError::MissingSection("resource"));
    }
    let servers: Vec<String> = root.all("server").filter_map(Elem::name).map(str::to_owned).collect();
    if matches!(lay, Layout::Windows { .. })
        && let Some(s) = servers.iter().find(|s| guids.get(s).is_none())
    {
        return Err(ConfError::MissingGuid(s.clone()));
    }
    let md_exists = root.child("resource").and_then(|s| s.named("md", res)).is_some();
    let unit = indent_unit(doc, &root);
    let nl = newline(doc);
    let generated = generated_pieces(&root, def, &lay, guids, &unit, nl);
    // A definition naming another group moves the reference.
    let reference = format!("md@{res}");
    loop {
        let root = parse_tree(doc)?;
        let stray = root
            .all("group")
            .filter(|g| g.name() != Some(group))
            .find_map(|g| g.all("resource").find(|r| r.name() == Some(reference.as_str())));
        let Some(stray) = stray else { break };
        remove_elem(doc, stray);
    }
    let pieces: Vec<(Piece, bool)> = match template {
        Some(t) if !md_exists => {
            let mut p: Vec<(Piece, bool)> = t
                .pieces
                .iter()
                .map(|p| match &p.parent {
                    Parent::Group(_) => (Piece { parent: Parent::Group(group.to_owned()), ..p.clone() }, true),
                    _ => (p.clone(), true),
                })
                .collect();
            // Anything the template lacks (e.g. it had no mdnw) comes from the generated set.
            let lacks = |g: &Piece| {
                !t.pieces.iter().any(|q| {
                    q.tag == g.tag && q.parent == g.parent && q.name == g.name
                        || (q.tag == g.tag && MD_MONITOR_TYPES.contains(&g.tag.as_str()))
                        || (q.tag == g.tag && g.tag == "md")
                        || (g.tag == "resource" && q.tag == "resource")
                })
            };
            p.extend(generated.into_iter().filter(lacks).map(|g| (g, false)));
            p
        }
        _ => generated.into_iter().map(|g| (g, false)).collect(),
    };
    for (piece, from_template) in &pieces {
        insert_piece(doc, piece, res, *from_template)?;
    }
    patch_md(doc, def, &lay, guids, &servers)
}

/// Makes the existing md element say what `def` says; touches only values that differ.
pub(super) fn patch_md(
    doc: &mut String,
    def: &MdDefinition,
    lay: &Layout<'_>,
    guids: &GuidSource,
    servers: &[String],
) -> Result<(), ConfError> {
    let res = def.resource.as_str();
    let locate = Base::Md(res);
    let at = format!("resource/md[{res}]");
    let fullcopy = if def.initial_copy { "1" } else { "0" };
    set_text(doc, &locate, &at, &[tag("parameters"), tag("fullcopy")], fullcopy, &|v| v == fullcopy)?;
    match lay {
        Layout::Windows { data, cluster } => {
            for (t, l) in [("volumemountpoint", *data), ("cpvolumemountpoint", *cluster)] {
                let want = l.to_ascii_uppercase();
                set_text(doc, &locate, &at, &[tag("parameters"), tag(t)], &letter_text(want), &|v| {
                    parse_letter(v) == Some(want)
                })?;
            }
            for s in servers {
                let Some(g) = guids.get(s) else { return Err(ConfError::MissingGuid(s.clone())) };
                for (t, v) in [("volumeguid", &g.data), ("cpvolumeguid", &g.cluster)] {
                    let path = [Step { tag: "server", name: Some(s) }, tag("parameters"), tag(t)];
                    set_text(doc, &locate, &at, &path, v, &|cur| cur == v.as_str())?;
                }
            }
        }
        Layout::Linux { data, cluster } => {
            for (t, v) in [("dppath", *data), ("cppath", *cluster)] {
                set_text(doc, &locate, &at, &[tag("parameters"), tag("diskdev"), tag(t)], v, &|cur| cur == v)?;
            }
            // Initial mkfs off, always: the disk being added holds data (see the module doc).
            set_text(doc, &locate, &at, &[tag("parameters"), tag("mkfs")], LINUX_MKFS_OFF, &|v| v == LINUX_MKFS_OFF)?;
        }
    }
    Ok(())
}
