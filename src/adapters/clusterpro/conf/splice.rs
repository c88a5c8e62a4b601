//! Byte-preserving XML splicing: the located tree (elements with byte ranges, nothing else) and
//! the helpers that remove, insert and set text at those ranges, in whole lines indented like
//! their siblings.

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};

use super::{ConfError, invalid};

// ---------------------------------------------------------------------------------------------
// Text splicing helpers.

pub(super) fn newline(xml: &str) -> &'static str {
    if xml.contains("\r\n") { "\r\n" } else { "\n" }
}

/// The whitespace before `pos` on its line, if only whitespace precedes it there.
pub(super) fn line_indent(xml: &str, pos: usize) -> Option<&str> {
    let line_start = xml[..pos].rfind('\n').map_or(0, |i| i + 1);
    let lead = &xml[line_start..pos];
    lead.chars().all(|c| c == ' ' || c == '\t').then_some(lead)
}

/// The file's indentation step: the first child's indent minus the root's.
pub(super) fn indent_unit(xml: &str, root: &Elem) -> String {
    let base = line_indent(xml, root.start).unwrap_or("");
    root.children
        .iter()
        .find_map(|c| line_indent(xml, c.start).and_then(|i| i.strip_prefix(base)).filter(|u| !u.is_empty()))
        .unwrap_or("\t")
        .to_owned()
}

/// Removes an element; with its whole line(s) when it stands alone on them.
pub(super) fn remove_elem(xml: &mut String, e: &Elem) {
    let line_start = xml[..e.start].rfind('\n').map_or(0, |i| i + 1);
    let lead_blank = xml[line_start..e.start].chars().all(|c| c == ' ' || c == '\t');
    let rest = &xml[e.end..];
    let line_end = rest.find('\n').map_or(xml.len(), |i| e.end + i + 1);
    let trail_blank = xml[e.end..line_end].trim().is_empty();
    if lead_blank && trail_blank {
        xml.replace_range(line_start..line_end, "");
    } else {
        xml.replace_range(e.start..e.end, "");
    }
}

/// A piece of XML to insert: lines with their depth relative to the insertion point. A line may
/// itself span several lines (a captured element keeps its own inner layout).
pub(super) type Lines = Vec<(usize, String)>;

pub(super) fn render(lines: &Lines, base: &str, unit: &str, nl: &str) -> String {
    let mut out = String::new();
    for (i, (depth, text)) in lines.iter().enumerate() {
        if i > 0 {
            out.push_str(nl);
            out.push_str(base);
            out.push_str(&unit.repeat(*depth));
        }
        out.push_str(text);
    }
    out
}

/// Inserts `lines` as a child of `parent`: after `after` when given, else as the first child.
pub(super) fn insert_child(xml: &mut String, parent: &Elem, after: Option<&Elem>, lines: &Lines, unit: &str) {
    let nl = newline(xml);
    let parent_indent = line_indent(xml, parent.start).unwrap_or("").to_owned();
    if let Some(sib) = after {
        let base = line_indent(xml, sib.start).map_or_else(|| format!("{parent_indent}{unit}"), str::to_owned);
        let text = format!("{nl}{base}{}", render(lines, &base, unit, nl));
        xml.insert_str(sib.end, &text);
    } else if let Some(first) = parent.children.first() {
        let base = line_indent(xml, first.start).map_or_else(|| format!("{parent_indent}{unit}"), str::to_owned);
        let text = format!("{}{nl}{base}", render(lines, &base, unit, nl));
        xml.insert_str(first.start, &text);
    } else {
        let base = format!("{parent_indent}{unit}");
        let inner = format!("{nl}{base}{}{nl}{parent_indent}", render(lines, &base, unit, nl));
        if parent.empty {
            let open = xml[parent.start..parent.end].trim_end_matches('>').trim_end_matches('/').trim_end();
            let text = format!("{open}>{inner}</{}>", parent.tag);
            xml.replace_range(parent.start..parent.end, &text);
        } else {
            xml.replace_range(parent.open_end..parent.close_start, &inner);
        }
    }
}

pub(super) fn esc(v: &str) -> String {
    quick_xml::escape::escape(v).into_owned()
}

/// One step of an element path: a tag, optionally with its `name` attribute.
#[derive(Debug, Clone, Copy)]
pub(super) struct Step<'a> {
    pub(super) tag: &'a str,
    pub(super) name: Option<&'a str>,
}

pub(super) const fn tag(tag: &str) -> Step<'_> {
    Step { tag, name: None }
}

/// The element a [`set_text`] path starts from.
pub(super) enum Base<'a> {
    /// `<group name=…>`.
    Group(&'a str),
    /// `<resource><md name=…>`.
    Md(&'a str),
}

impl Base<'_> {
    pub(super) fn locate<'e>(&self, root: &'e Elem) -> Option<&'e Elem> {
        match self {
            Base::Group(g) => root.named("group", g),
            Base::Md(m) => root.child("resource").and_then(|s| s.named("md", m)),
        }
    }
}

/// Sets the text of `base/path…` (found in a fresh parse), creating missing elements
/// as last children. Leaves the file unchanged when `same(current text)` holds. Returns whether it
/// changed anything.
pub(super) fn set_text(
    xml: &mut String,
    base: &Base<'_>,
    where_: &str,
    path: &[Step<'_>],
    value: &str,
    same: &dyn Fn(&str) -> bool,
) -> Result<bool, ConfError> {
    let root = parse_tree(xml)?;
    let unit = indent_unit(xml, &root);
    let mut cur = base.locate(&root).ok_or_else(|| invalid(where_, "not found"))?;
    let mut i = 0;
    while i < path.len() {
        match cur.step(&path[i]) {
            Some(next) => {
                cur = next;
                i += 1;
            }
            None => break,
        }
    }
    if i == path.len() {
        if same(cur.value()) {
            return Ok(false);
        }
        if !cur.children.is_empty() {
            return Err(invalid(where_, format!("<{}> has child elements, expected text", cur.tag)));
        }
        if cur.empty {
            let open = xml[cur.start..cur.end].trim_end_matches('>').trim_end_matches('/').trim_end().to_owned();
            let text = format!("{open}>{}</{}>", esc(value), cur.tag);
            xml.replace_range(cur.start..cur.end, &text);
        } else {
            xml.replace_range(cur.open_end..cur.close_start, &esc(value));
        }
        return Ok(true);
    }
    let rest = &path[i..];
    let mut lines: Lines = Vec::new();
    for (d, s) in rest.iter().enumerate() {
        let open = match s.name {
            Some(n) => format!("<{} name=\"{}\">", s.tag, esc(n)),
            None => format!("<{}>", s.tag),
        };
        if d + 1 == rest.len() {
            lines.push((d, format!("{open}{}</{}>", esc(value), s.tag)));
        } else {
            lines.push((d, open));
        }
    }
    for (d, s) in rest.iter().enumerate().rev().skip(1) {
        lines.push((d, format!("</{}>", s.tag)));
    }
    let after = cur.children.last();
    insert_child(xml, cur, after, &lines, &unit);
    Ok(true)
}

// ---------------------------------------------------------------------------------------------
// The located tree: elements with byte ranges, nothing else.

#[derive(Debug, Clone)]
pub(super) struct Elem {
    pub(super) tag: String,
    pub(super) attrs: Vec<(String, String)>,
    /// Byte offset of `<` of the start tag.
    pub(super) start: usize,
    /// Just after the start tag's `>` (== `end` for `<x/>`).
    pub(super) open_end: usize,
    /// Byte offset of `<` of the end tag (== `end` for `<x/>`).
    pub(super) close_start: usize,
    /// Just after the element.
    pub(super) end: usize,
    pub(super) empty: bool,
    pub(super) children: Vec<Elem>,
    /// Direct text content, unescaped.
    pub(super) text: String,
}

impl Elem {
    pub(super) fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    pub(super) fn name(&self) -> Option<&str> {
        self.attr("name")
    }
    pub(super) fn all<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Elem> + 'a {
        self.children.iter().filter(move |c| c.tag == tag)
    }
    pub(super) fn child(&self, tag: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.tag == tag)
    }
    pub(super) fn named(&self, tag: &str, name: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.tag == tag && c.name() == Some(name))
    }
    pub(super) fn step(&self, s: &Step) -> Option<&Elem> {
        match s.name {
            Some(n) => self.named(s.tag, n),
            None => self.child(s.tag),
        }
    }
    pub(super) fn path(&self, tags: &[&str]) -> Option<&Elem> {
        tags.iter().try_fold(self, |e, t| e.child(t))
    }
    pub(super) fn value(&self) -> &str {
        self.text.trim()
    }
}

pub(super) fn xml_err(reader: &Reader<&[u8]>, e: &impl std::fmt::Display) -> ConfError {
    ConfError::Xml { offset: reader.error_position(), message: e.to_string() }
}

pub(super) fn open_elem(
    reader: &Reader<&[u8]>,
    s: &BytesStart<'_>,
    start: usize,
    end: usize,
    empty: bool,
) -> Result<Elem, ConfError> {
    let tag = String::from_utf8_lossy(s.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for a in s.attributes() {
        let a = a.map_err(|e| xml_err(reader, &e))?;
        let v = a.unescape_value().map_err(|e| xml_err(reader, &e))?;
        attrs.push((String::from_utf8_lossy(a.key.as_ref()).into_owned(), v.into_owned()));
    }
    Ok(Elem {
        tag,
        attrs,
        start,
        open_end: end,
        close_start: end,
        end,
        empty,
        children: Vec::new(),
        text: String::new(),
    })
}

pub(super) fn pos(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

/// Parses `xml` into located elements (the root element).
pub(super) fn parse_tree(xml: &str) -> Result<Elem, ConfError> {
    let mut reader = Reader::from_reader(xml.as_bytes());
    reader.config_mut().trim_text(false);
    let mut stack: Vec<Elem> = Vec::new();
    let mut root: Option<Elem> = None;
    loop {
        let before = pos(&reader);
        let event = reader.read_event().map_err(|e| xml_err(&reader, &e))?;
        let after = pos(&reader);
        let done = match event {
            Event::Start(s) => {
                stack.push(open_elem(&reader, &s, before, after, false)?);
                None
            }
            Event::Empty(s) => Some(open_elem(&reader, &s, before, after, true)?),
            Event::End(_) => {
                let mut e = stack.pop().ok_or(ConfError::Root)?;
                e.close_start = before;
                e.end = after;
                Some(e)
            }
            Event::Text(t) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&t.unescape().map_err(|e| xml_err(&reader, &e))?);
                }
                None
            }
            Event::CData(c) => {
                if let Some(top) = stack.last_mut() {
                    top.text.push_str(&String::from_utf8_lossy(&c));
                }
                None
            }
            Event::Eof => break,
            _ => None,
        };
        if let Some(e) = done {
            match stack.last_mut() {
                Some(parent) => parent.children.push(e),
                None if root.is_none() => root = Some(e),
                None => return Err(ConfError::Root),
            }
        }
    }
    if !stack.is_empty() {
        return Err(ConfError::Xml { offset: xml.len() as u64, message: "unclosed element at end of file".into() });
    }
    root.ok_or(ConfError::Root)
}
