//! Reading and editing `clp.conf`, CLUSTERPRO's configuration file, without disturbing it.
//!
//! Why this module exists: the restore removes the mirror disk resource from the configuration and
//! later adds it back with "initial mirror construction" off (DOMAIN.md, Restore 1 and 5). The file
//! belongs to the operator and to CLUSTERPRO's own tools: it holds settings mirrorctl knows nothing
//! about, comments, a declared encoding and a layout people diff. So edits are *splices*: the text
//! is parsed (with `quick-xml`) only to find the byte ranges of elements, and each change replaces,
//! removes or inserts text at those ranges. Everything else stays byte-for-byte as it was. Removed
//! and inserted elements take whole lines, indented like their siblings, in the file's own line
//! ending, so a line diff shows exactly the intended change.
//!
//! Shapes relied on (DOMAIN.md "clp.conf"): `<group name="g"><resource name="md@<md>"/>…<start>1</start>`;
//! `<resource><types name="md"/><md name="<md>"><parameters><fullcopy>…`; Windows
//! `parameters/volumemountpoint` (data letter), `parameters/cpvolumemountpoint` (cluster letter) and
//! per server `<server name="s"><parameters><volumeguid>…</volumeguid><cpvolumeguid>…`; Linux
//! `parameters/diskdev/dppath`, `parameters/diskdev/cppath`, `parameters/nmppath`; monitors
//! `<monitor><types name="mdw"/><mdw name="…"><parameters><object><md></object>` and `mdnw`;
//! `<depend name="B"/>` under resource A means A depends on B.
//!
//! **Encodings.** Japanese clusters write `clp.conf` in `Shift_JIS` or EUC-JP, not UTF-8: NEC's
//! `create_win_md.pl` builds Japanese Windows clusters with charset/encode SJIS
//! (research/clusterpro-audit.md #21), and EXPRESSCLUSTER/CreateClusterOnLinux
//! `CommandParameters_jp.md` initialises a configuration with `clpcreate init <encoding>`: EUC-JP
//! for Japanese, ASCII for English, GB2312 for Chinese. The XML declaration's `encoding=` says
//! which. [`ConfFile::decode`] reads the bytes with `encoding_rs` in that encoding (UTF-8 without a
//! declaration; the labels accepted are in `ENCODING_LABELS`: UTF-8, ASCII, `Shift_JIS` with its
//! aliases SJIS, Windows-31J, cp932, and EUC-JP; `encoding_rs`'s `Shift_JIS` is the WHATWG one, i.e.
//! Windows-31J), the edits work on text, and [`ConfFile::encode`] writes the result back in the
//! same encoding. Refused, with [`ConfError`]s that say what to do: another encoding (GB2312, …),
//! bytes invalid in the declared encoding, a file whose decode→encode is not byte-identical (NEC
//! and IBM extended characters have two codes in Windows-31J, and EUC-JP's JIS X 0212 cannot be
//! encoded: such a file could not keep every byte outside the edited elements), and an edited text
//! holding a character the encoding cannot hold. Which encodings real CLUSTERPRO X 4/5 installs
//! write is [U] beyond those two NEC sources.
//!
//! Sources of the md parameters written: `parameters/fullcopy` (初期ミラー構築を行う, default 1,
//! "off only when the source and destination images are identical") and `parameters/mkfs`
//! (初期 mkfs を行う, "set it off when data already exists") are in EXPRESSCLUSTER/clpcfset
//! `doc/linux/md.md`; the Windows `fullcopy` tag is [U] (research/clusterpro-audit.md #17, #18).
//! On Linux every [`ConfigChange::AddMirror`] writes `mkfs` = 0, inserting the element when the
//! template lacks it; a file where it cannot be set (no md element, or `mkfs` with child elements)
//! is refused. Whether CLUSTERPRO would run mkfs with `fullcopy` = 0 at all is [U]: the value is
//! forced either way, since being wrong means formatting the restored data.
//!
//! Removing an md resource loses what mirrorctl does not model (network settings, Linux mount point
//! and file system, monitor tuning, which resources depended on it). [`MirrorTemplate::capture`]
//! keeps those pieces, with where they stood, so that the caller can store it (it is serde) between
//! the two pushes of a restore and hand it to [`apply_changes_with_templates`]: the md resource then
//! comes back exactly as it was, except for what the [`MdDefinition`] and the [`GuidSource`] say.

use std::borrow::Cow;
use std::collections::BTreeMap;

use quick_xml::Reader;
use quick_xml::events::{BytesStart, Event};
use serde::{Deserialize, Serialize};

use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::cluster::{ClusterConfig, ConfigChange, MdDefinition};
use crate::spec::{Os, Partition};

/// A group without a `<start>` element starts automatically (guess, DOMAIN.md [U]).
pub const DEFAULT_GROUP_AUTO_START: bool = true;

/// An md resource without `parameters/fullcopy` performs the initial mirror construction.
pub const DEFAULT_FULLCOPY: bool = true;

/// What [`ConfigChange::AddMirror`] writes to a Linux md's `parameters/mkfs` ("initial mkfs"):
/// off. EXPRESSCLUSTER/clpcfset `doc/linux/md.md` lists `parameters/mkfs` (初期 mkfs を行う) with
/// "既にデータが存在する場合には、オフを設定してください" (set it off when the disk already holds
/// data), which is always the case when mirrorctl re-adds md over restored disks.
pub const LINUX_MKFS_OFF: &str = "0";

/// The monitor types that watch an md resource (`parameters/object` names it).
pub const MD_MONITOR_TYPES: &[&str] = &["mdw", "mdnw"];

/// How a drive letter is written in `volumemountpoint` / `cpvolumemountpoint` (guess: `M:`).
fn letter_text(letter: char) -> String {
    format!("{letter}:")
}

/// The mirror device path prefix on Linux (`/dev/NMP1`, `/dev/NMP2`, …).
const NMP_PREFIX: &str = "/dev/NMP";

/// Why `clp.conf` could not be read or changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfError {
    /// Not well-formed XML.
    #[error("clp.conf is not well-formed XML near byte {offset}: {message}")]
    Xml {
        /// Byte offset where the reader stopped.
        offset: u64,
        /// The XML reader's message.
        message: String,
    },
    /// No root element, or more than one.
    #[error("clp.conf must have exactly one root element")]
    Root,
    /// A value mirrorctl needs is missing or not understood.
    #[error("clp.conf {path}: {why}")]
    Invalid {
        /// Where, as an element path (`resource/md[md]/parameters/fullcopy`).
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A change names a group the file does not define.
    #[error("clp.conf has no group {0:?}")]
    UnknownGroup(String),
    /// A section the change needs (`resource`, `monitor`) is absent.
    #[error("clp.conf has no <{0}> section")]
    MissingSection(&'static str),
    /// Adding a Windows md resource needs both volume GUIDs of every server.
    #[error(
        "no volume GUIDs for server {0:?}: read them on each server (Win32_Volume DeviceID) before adding the md resource"
    )]
    MissingGuid(String),
    /// The XML declaration names an encoding mirrorctl does not edit.
    #[error(
        "clp.conf declares encoding {0:?}; mirrorctl edits UTF-8, ASCII, Shift_JIS (SJIS, Windows-31J, cp932) and \
         EUC-JP files only: make this change by hand with Cluster WebUI"
    )]
    UnsupportedEncoding(String),
    /// The bytes are not valid in the declared encoding.
    #[error(
        "clp.conf is not valid {encoding} text (as its XML declaration says) near byte {offset}: mirrorctl does not \
         edit a file it cannot read exactly; check the file (a copy is kept as *-pulled.conf in the state directory) \
         and make this change by hand with Cluster WebUI"
    )]
    Undecodable {
        /// The encoding used to read it.
        encoding: &'static str,
        /// Byte offset of the first invalid sequence.
        offset: usize,
    },
    /// Decoding and encoding again would not give the same bytes back.
    #[error(
        "clp.conf holds {encoding} bytes near byte {offset} that would not be written back identically (for \
         example NEC or IBM extended characters that have two codes): mirrorctl refuses to edit it rather than \
         change bytes it does not own; replace those characters (e.g. in comments) with Cluster WebUI, or make this \
         change by hand"
    )]
    NotRoundTrip {
        /// The file's encoding.
        encoding: &'static str,
        /// Byte offset of the first difference.
        offset: usize,
    },
    /// The edited text holds a character the file's encoding cannot hold.
    #[error(
        "the new clp.conf would hold {character:?}, which {encoding} cannot encode: nothing was pushed; make this \
         change by hand with Cluster WebUI"
    )]
    Unencodable {
        /// The file's encoding.
        encoding: &'static str,
        /// The first character that cannot be encoded.
        character: char,
    },
    /// The definition mixes a drive letter and a device path.
    #[error("md resource {0}: partitions must both be drive letters (Windows) or both device paths (Linux)")]
    MixedPartitions(String),
}

// ---------------------------------------------------------------------------------------------
// Bytes and text: the declared encoding.

/// The encodings mirrorctl edits, by the labels an XML declaration may use (compared without
/// case). `ASCII` files are read as UTF-8 (its superset) and written back only if still ASCII.
const ENCODING_LABELS: &[(&str, Charset)] = &[
    ("utf-8", Charset::Utf8),
    ("utf8", Charset::Utf8),
    ("ascii", Charset::Ascii),
    ("us-ascii", Charset::Ascii),
    ("shift_jis", Charset::ShiftJis),
    ("shift-jis", Charset::ShiftJis),
    ("sjis", Charset::ShiftJis),
    ("x-sjis", Charset::ShiftJis),
    ("ms_kanji", Charset::ShiftJis),
    ("csshiftjis", Charset::ShiftJis),
    ("windows-31j", Charset::ShiftJis),
    ("cswindows31j", Charset::ShiftJis),
    ("cp932", Charset::ShiftJis),
    ("ms932", Charset::ShiftJis),
    ("euc-jp", Charset::EucJp),
    ("eucjp", Charset::EucJp),
    ("euc_jp", Charset::EucJp),
    ("x-euc-jp", Charset::EucJp),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Charset {
    Utf8,
    Ascii,
    ShiftJis,
    EucJp,
}

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A `clp.conf` read from its bytes: the text, and how to write an edited text back in the same
/// encoding (see the module doc). Build it with [`ConfFile::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    /// The file's text (without a UTF-8 byte order mark).
    pub text: String,
    charset: Charset,
    bom: bool,
    /// ASCII declared and only ASCII bytes found: the edited text must stay ASCII.
    ascii_only: bool,
}

/// The `encoding` of the XML declaration at the start of `bytes`, if any. The declaration is
/// ASCII in every encoding accepted here.
fn declared_encoding(bytes: &[u8]) -> Option<String> {
    let head = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    let head = head.strip_prefix(b"<?xml")?;
    let end = head.windows(2).position(|w| w == b"?>")?;
    let decl = String::from_utf8_lossy(&head[..end]);
    let at = decl.find("encoding")?;
    let rest = decl[at + "encoding".len()..].trim_start().strip_prefix('=')?.trim_start();
    let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'')?;
    let value = &rest[1..];
    Some(value[..value.find(quote)?].trim().to_owned())
}

impl ConfFile {
    /// Reads `bytes` in the encoding its XML declaration names (UTF-8 without one), and checks
    /// that encoding the text again gives exactly `bytes` back, so that an edit changes no byte
    /// outside the edited elements.
    pub fn decode(bytes: &[u8]) -> Result<ConfFile, ConfError> {
        let bom = bytes.starts_with(UTF8_BOM);
        let charset = match declared_encoding(bytes) {
            None => Charset::Utf8,
            Some(label) => ENCODING_LABELS
                .iter()
                .find(|(l, _)| l.eq_ignore_ascii_case(&label))
                .map(|(_, c)| *c)
                .ok_or(ConfError::UnsupportedEncoding(label))?,
        };
        if bom && charset != Charset::Utf8 && charset != Charset::Ascii {
            return Err(ConfError::Undecodable { encoding: Self::name_of(charset), offset: 0 });
        }
        let body = if bom { &bytes[UTF8_BOM.len()..] } else { bytes };
        let encoding = Self::encoding_of(charset);
        let Some(text) = encoding.decode_without_bom_handling_and_without_replacement(body).map(Cow::into_owned) else {
            let (lossy, _) = encoding.decode_without_bom_handling(body);
            let valid = lossy.split('\u{FFFD}').next().unwrap_or("");
            let (prefix, _, _) = encoding.encode(valid);
            return Err(ConfError::Undecodable {
                encoding: Self::name_of(charset),
                offset: prefix.len() + usize::from(bom) * UTF8_BOM.len(),
            });
        };
        let file = ConfFile { text, charset, bom, ascii_only: charset == Charset::Ascii && body.is_ascii() };
        let again = file
            .encode(&file.text)
            .map_err(|_| ConfError::NotRoundTrip { encoding: Self::name_of(charset), offset: 0 })?;
        if again != bytes {
            let offset = again.iter().zip(bytes).position(|(a, b)| a != b).unwrap_or(again.len().min(bytes.len()));
            return Err(ConfError::NotRoundTrip { encoding: Self::name_of(charset), offset });
        }
        Ok(file)
    }

    /// `text` (an edit of [`ConfFile::text`]) as bytes in the file's encoding, with its byte order
    /// mark if it had one; refused when a character cannot be encoded.
    pub fn encode(&self, text: &str) -> Result<Vec<u8>, ConfError> {
        let unencodable = |character| ConfError::Unencodable { encoding: self.encoding_name(), character };
        if self.ascii_only
            && let Some(c) = text.chars().find(|c| !c.is_ascii())
        {
            return Err(unencodable(c));
        }
        let encoding = Self::encoding_of(self.charset);
        let (bytes, _, unmappable) = encoding.encode(text);
        if unmappable {
            let c = text.chars().find(|c| encoding.encode(c.encode_utf8(&mut [0; 4])).2).unwrap_or('\u{FFFD}');
            return Err(unencodable(c));
        }
        let mut out = Vec::with_capacity(bytes.len() + 3);
        if self.bom {
            out.extend_from_slice(UTF8_BOM);
        }
        out.extend_from_slice(&bytes);
        Ok(out)
    }

    /// The encoding's name (`UTF-8`, `ASCII`, `Shift_JIS`, `EUC-JP`).
    pub fn encoding_name(&self) -> &'static str {
        Self::name_of(self.charset)
    }

    fn name_of(c: Charset) -> &'static str {
        match c {
            Charset::Utf8 => "UTF-8",
            Charset::Ascii => "ASCII",
            Charset::ShiftJis => "Shift_JIS",
            Charset::EucJp => "EUC-JP",
        }
    }

    fn encoding_of(c: Charset) -> &'static encoding_rs::Encoding {
        match c {
            Charset::Utf8 | Charset::Ascii => encoding_rs::UTF_8,
            Charset::ShiftJis => encoding_rs::SHIFT_JIS,
            Charset::EucJp => encoding_rs::EUC_JP,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The located tree: elements with byte ranges, nothing else.

#[derive(Debug, Clone)]
struct Elem {
    tag: String,
    attrs: Vec<(String, String)>,
    /// Byte offset of `<` of the start tag.
    start: usize,
    /// Just after the start tag's `>` (== `end` for `<x/>`).
    open_end: usize,
    /// Byte offset of `<` of the end tag (== `end` for `<x/>`).
    close_start: usize,
    /// Just after the element.
    end: usize,
    empty: bool,
    children: Vec<Elem>,
    /// Direct text content, unescaped.
    text: String,
}

impl Elem {
    fn attr(&self, key: &str) -> Option<&str> {
        self.attrs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }
    fn name(&self) -> Option<&str> {
        self.attr("name")
    }
    fn all<'a>(&'a self, tag: &'a str) -> impl Iterator<Item = &'a Elem> + 'a {
        self.children.iter().filter(move |c| c.tag == tag)
    }
    fn child(&self, tag: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.tag == tag)
    }
    fn named(&self, tag: &str, name: &str) -> Option<&Elem> {
        self.children.iter().find(|c| c.tag == tag && c.name() == Some(name))
    }
    fn step(&self, s: &Step) -> Option<&Elem> {
        match s.name {
            Some(n) => self.named(s.tag, n),
            None => self.child(s.tag),
        }
    }
    fn path(&self, tags: &[&str]) -> Option<&Elem> {
        tags.iter().try_fold(self, |e, t| e.child(t))
    }
    fn value(&self) -> &str {
        self.text.trim()
    }
}

fn xml_err(reader: &Reader<&[u8]>, e: &impl std::fmt::Display) -> ConfError {
    ConfError::Xml { offset: reader.error_position(), message: e.to_string() }
}

fn open_elem(
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

fn pos(reader: &Reader<&[u8]>) -> usize {
    usize::try_from(reader.buffer_position()).unwrap_or(usize::MAX)
}

/// Parses `xml` into located elements (the root element).
fn parse_tree(xml: &str) -> Result<Elem, ConfError> {
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

// ---------------------------------------------------------------------------------------------
// Reading.

fn invalid(path: impl Into<String>, why: impl Into<String>) -> ConfError {
    ConfError::Invalid { path: path.into(), why: why.into() }
}

fn parse_flag(e: Option<&Elem>, default: bool, path: &str) -> Result<bool, ConfError> {
    match e.map(Elem::value) {
        None => Ok(default),
        Some("1") => Ok(true),
        Some("0") => Ok(false),
        Some(v) => Err(invalid(path, format!("expected 0 or 1, found {v:?}"))),
    }
}

/// `M:`, `M:\`, `m` → `'M'`.
fn parse_letter(v: &str) -> Option<char> {
    let mut chars = v.trim().chars();
    let c = chars.next().filter(char::is_ascii_alphabetic)?;
    matches!(chars.as_str(), "" | ":" | ":\\").then(|| c.to_ascii_uppercase())
}

fn md_group<'a>(root: &'a Elem, resource: &str) -> Option<&'a str> {
    let reference = format!("md@{resource}");
    root.all("group").find(|g| g.all("resource").any(|r| r.name() == Some(reference.as_str()))).and_then(Elem::name)
}

/// Reads the groups' startup attributes and the md resources from `clp.conf`.
///
/// `os` decides where the partitions are read: drive letters from `volumemountpoint` /
/// `cpvolumemountpoint` (Windows), device paths from `diskdev/dppath` / `diskdev/cppath` (Linux).
pub fn read_config(xml: &str, os: Os) -> Result<ClusterConfig, ConfError> {
    let root = parse_tree(xml)?;
    let mut config = ClusterConfig::default();
    for g in root.all("group") {
        let name = g.name().unwrap_or("");
        let group = GroupName::parse(name).map_err(|e| invalid(format!("group[{name}]"), e.0))?;
        let auto = parse_flag(g.child("start"), DEFAULT_GROUP_AUTO_START, &format!("group[{name}]/start"))?;
        config.group_auto_start.insert(group, auto);
    }
    let Some(section) = root.child("resource") else {
        return Ok(config);
    };
    for md in section.all("md") {
        let name = md.name().unwrap_or("");
        let at = |p: &str| format!("resource/md[{name}]/{p}");
        let resource = ResourceName::parse(name).map_err(|e| invalid(at(""), e.0))?;
        let params = md.child("parameters");
        let text = |tags: &[&str]| -> Result<String, ConfError> {
            params
                .and_then(|p| p.path(tags))
                .map(|e| e.value().to_owned())
                .filter(|v| !v.is_empty())
                .ok_or_else(|| invalid(at(&format!("parameters/{}", tags.join("/"))), "missing"))
        };
        let (data_partition, cluster_partition) = match os {
            Os::Windows => {
                let letter = |tag: &str| -> Result<Partition, ConfError> {
                    let v = text(&[tag])?;
                    parse_letter(&v).map(Partition::Letter).ok_or_else(|| {
                        invalid(at(&format!("parameters/{tag}")), format!("{v:?} is not a drive letter"))
                    })
                };
                (letter("volumemountpoint")?, letter("cpvolumemountpoint")?)
            }
            Os::Linux => {
                (Partition::Device(text(&["diskdev", "dppath"])?), Partition::Device(text(&["diskdev", "cppath"])?))
            }
        };
        let initial_copy =
            parse_flag(params.and_then(|p| p.child("fullcopy")), DEFAULT_FULLCOPY, &at("parameters/fullcopy"))?;
        let group_name = md_group(&root, name).ok_or_else(|| invalid(at(""), format!("no group holds md@{name}")))?;
        let group = GroupName::parse(group_name).map_err(|e| invalid(format!("group[{group_name}]"), e.0))?;
        config.mirrors.push(MdDefinition { resource, group, data_partition, cluster_partition, initial_copy });
    }
    Ok(config)
}

// ---------------------------------------------------------------------------------------------
// Text splicing helpers.

fn newline(xml: &str) -> &'static str {
    if xml.contains("\r\n") { "\r\n" } else { "\n" }
}

/// The whitespace before `pos` on its line, if only whitespace precedes it there.
fn line_indent(xml: &str, pos: usize) -> Option<&str> {
    let line_start = xml[..pos].rfind('\n').map_or(0, |i| i + 1);
    let lead = &xml[line_start..pos];
    lead.chars().all(|c| c == ' ' || c == '\t').then_some(lead)
}

/// The file's indentation step: the first child's indent minus the root's.
fn indent_unit(xml: &str, root: &Elem) -> String {
    let base = line_indent(xml, root.start).unwrap_or("");
    root.children
        .iter()
        .find_map(|c| line_indent(xml, c.start).and_then(|i| i.strip_prefix(base)).filter(|u| !u.is_empty()))
        .unwrap_or("\t")
        .to_owned()
}

/// Removes an element; with its whole line(s) when it stands alone on them.
fn remove_elem(xml: &mut String, e: &Elem) {
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
type Lines = Vec<(usize, String)>;

fn render(lines: &Lines, base: &str, unit: &str, nl: &str) -> String {
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
fn insert_child(xml: &mut String, parent: &Elem, after: Option<&Elem>, lines: &Lines, unit: &str) {
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

fn esc(v: &str) -> String {
    quick_xml::escape::escape(v).into_owned()
}

/// One step of an element path: a tag, optionally with its `name` attribute.
#[derive(Debug, Clone, Copy)]
struct Step<'a> {
    tag: &'a str,
    name: Option<&'a str>,
}

const fn tag(tag: &str) -> Step<'_> {
    Step { tag, name: None }
}

/// The element a [`set_text`] path starts from.
enum Base<'a> {
    /// `<group name=…>`.
    Group(&'a str),
    /// `<resource><md name=…>`.
    Md(&'a str),
}

impl Base<'_> {
    fn locate<'e>(&self, root: &'e Elem) -> Option<&'e Elem> {
        match self {
            Base::Group(g) => root.named("group", g),
            Base::Md(m) => root.child("resource").and_then(|s| s.named("md", m)),
        }
    }
}

/// Sets the text of `base/path…` (found in a fresh parse), creating missing elements
/// as last children. Leaves the file unchanged when `same(current text)` holds. Returns whether it
/// changed anything.
fn set_text(
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
// Templates: what a removal loses, kept to put it back.

/// An element's previous sibling: where a captured piece stood.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Anchor {
    tag: String,
    name: Option<String>,
}

/// Where a piece goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
enum Parent {
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
struct Piece {
    parent: Parent,
    tag: String,
    name: Option<String>,
    text: String,
    after: Option<Anchor>,
    /// Generated text: its inner lines are indented relative to its first line (captured text
    /// keeps the absolute indentation it had).
    #[serde(default)]
    relative: bool,
}

/// Everything [`ConfigChange::RemoveMirror`] takes out for one md resource, with positions, so
/// that a later [`ConfigChange::AddMirror`] can put it back unchanged (the md element with its
/// network and mount settings, its monitors, the group reference, the `types` entries and the
/// `<depend>` elements of resources that depended on it). Store it (serde) between the two pushes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorTemplate {
    resource: ResourceName,
    pieces: Vec<Piece>,
}

fn anchor_of(parent: &Elem, child: &Elem) -> Option<Anchor> {
    let i = parent.children.iter().position(|c| c.start == child.start)?;
    let prev = i.checked_sub(1).and_then(|j| parent.children.get(j))?;
    Some(Anchor { tag: prev.tag.clone(), name: prev.name().map(str::to_owned) })
}

fn watches(monitor: &Elem, resource: &str) -> bool {
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

// ---------------------------------------------------------------------------------------------
// Changes.

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
    servers: BTreeMap<ServerName, VolumeGuids>,
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
fn next_removal<'a>(root: &'a Elem, res: &str, removed: bool) -> Option<&'a Elem> {
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

fn remove_mirror(doc: &mut String, res: &str) -> Result<(), ConfError> {
    let mut removed = false;
    loop {
        let root = parse_tree(doc)?;
        let Some(e) = next_removal(&root, res, removed) else { return Ok(()) };
        remove_elem(doc, e);
        removed = true;
    }
}

/// Windows (letters) or Linux (devices), from the definition's partitions.
enum Layout<'a> {
    Windows { data: char, cluster: char },
    Linux { data: &'a str, cluster: &'a str },
}

fn layout(def: &MdDefinition) -> Result<Layout<'_>, ConfError> {
    match (&def.data_partition, &def.cluster_partition) {
        (Partition::Letter(d), Partition::Letter(c)) => Ok(Layout::Windows { data: *d, cluster: *c }),
        (Partition::Device(d), Partition::Device(c)) => Ok(Layout::Linux { data: d, cluster: c }),
        _ => Err(ConfError::MixedPartitions(def.resource.to_string())),
    }
}

fn parent_of<'a>(root: &'a Elem, p: &Parent) -> Option<&'a Elem> {
    match p {
        Parent::Resources => root.child("resource"),
        Parent::Monitors => root.child("monitor"),
        Parent::Group(g) => root.named("group", g),
        Parent::Resource(t, n) => root.child("resource").and_then(|s| s.named(t, n)),
    }
}

/// Whether `piece` is already in `parent` (monitors: any of that type watching `res`).
fn present(parent: &Elem, piece: &Piece, res: &str) -> bool {
    if MD_MONITOR_TYPES.contains(&piece.tag.as_str()) {
        return parent.all(&piece.tag).any(|m| watches(m, res));
    }
    parent.children.iter().any(|c| c.tag == piece.tag && c.name() == piece.name.as_deref())
}

/// Where a piece without a (found) anchor goes: after the last sibling of its tag; `types` and a
/// group's `resource` references otherwise first, anything else last.
fn fallback_after<'a>(parent: &'a Elem, tag: &'a str) -> Option<&'a Elem> {
    parent.all(tag).last().or_else(|| if tag == "types" || tag == "resource" { None } else { parent.children.last() })
}

/// Inserts `piece` unless present. A template piece without an anchor was its parent's first
/// child; a generated one (or one whose anchor is gone) goes to [`fallback_after`].
fn insert_piece(doc: &mut String, piece: &Piece, res: &str, from_template: bool) -> Result<(), ConfError> {
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
fn generated_pieces(
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
fn add_mirror(
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
fn patch_md(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_cover_whole_elements() {
        let xml = "<?xml version=\"1.0\"?>\n<root>\n\t<a name=\"x\">t&amp;</a>\n\t<b/>\n</root>\n";
        let root = parse_tree(xml).expect("parse");
        let a = root.child("a").expect("a");
        assert_eq!(&xml[a.start..a.end], "<a name=\"x\">t&amp;</a>");
        assert_eq!(a.value(), "t&");
        let b = root.child("b").expect("b");
        assert_eq!(&xml[b.start..b.end], "<b/>");
        assert_eq!(indent_unit(xml, &root), "\t");
    }

    fn sjis(text: &str) -> Vec<u8> {
        let (b, _, bad) = encoding_rs::SHIFT_JIS.encode(text);
        assert!(!bad);
        b.into_owned()
    }

    #[test]
    fn encodings_follow_the_declaration_and_round_trip() {
        let body = "\r\n<!-- 受注システム -->\r\n<root><comment>ミラー</comment></root>\r\n";
        for label in ["Shift_JIS", "SJIS", "windows-31j", "CP932"] {
            let bytes = sjis(&format!("<?xml version=\"1.0\" encoding=\"{label}\"?>{body}"));
            let f = ConfFile::decode(&bytes).expect(label);
            assert_eq!(f.encoding_name(), "Shift_JIS");
            assert!(f.text.contains("受注システム"), "{label}");
            assert_eq!(f.encode(&f.text).expect("encode"), bytes);
            let edited = f.text.replace("<root>", "<root><x>1</x>");
            assert_eq!(
                f.encode(&edited).expect("edit"),
                sjis(
                    &format!("<?xml version=\"1.0\" encoding=\"{label}\"?>{body}").replace("<root>", "<root><x>1</x>")
                )
            );
        }
        let (euc, _, _) = encoding_rs::EUC_JP.encode("<?xml version='1.0' encoding='EUC-JP'?><root>日本語</root>");
        let f = ConfFile::decode(&euc).expect("euc");
        assert_eq!((f.encoding_name(), f.text.contains("日本語")), ("EUC-JP", true));
        assert_eq!(f.encode(&f.text).expect("encode"), euc.into_owned());
        let plain = ConfFile::decode(b"<root/>").expect("no declaration");
        assert_eq!(plain.encoding_name(), "UTF-8");
        let bom = b"\xEF\xBB\xBF<?xml version=\"1.0\" encoding=\"UTF-8\"?><root/>";
        let f = ConfFile::decode(bom).expect("bom");
        assert!(f.text.starts_with("<?xml"));
        assert_eq!(f.encode(&f.text).expect("encode"), bom.to_vec());
    }

    #[test]
    fn encodings_refuse_what_they_cannot_keep() {
        let e = ConfFile::decode(b"<?xml version=\"1.0\" encoding=\"GB2312\"?><root/>").expect_err("gb2312");
        assert_eq!(e, ConfError::UnsupportedEncoding("GB2312".into()));
        assert!(e.to_string().contains("Cluster WebUI"), "{e}");
        // A lone lead byte.
        let mut bad = sjis("<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><root>");
        let at = bad.len();
        bad.extend_from_slice(b"\x81</root>");
        assert!(matches!(ConfFile::decode(&bad), Err(ConfError::Undecodable { encoding: "Shift_JIS", .. })));
        // UTF-8 bytes in a file that declares `Shift_JIS` are refused, not misread.
        let utf8 = "<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><root>日本語</root>".as_bytes();
        assert!(ConfFile::decode(utf8).is_err());
        // NEC-selected IBM extensions (0xED40) decode to a character Windows-31J encodes as 0xFA5C.
        let mut dual = sjis("<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><root>");
        dual.extend_from_slice(b"\xED\x40</root>");
        let e = ConfFile::decode(&dual).expect_err("two codes");
        assert_eq!(e, ConfError::NotRoundTrip { encoding: "Shift_JIS", offset: at });
        // An inserted character the encoding cannot hold.
        let f = ConfFile::decode(&sjis("<?xml version=\"1.0\" encoding=\"Shift_JIS\"?><root/>")).expect("sjis");
        let e = f.encode("<root>\u{1F600}</root>").expect_err("emoji");
        assert_eq!(e, ConfError::Unencodable { encoding: "Shift_JIS", character: '\u{1F600}' });
        let ascii = ConfFile::decode(b"<?xml version=\"1.0\" encoding=\"ASCII\"?><root/>").expect("ascii");
        assert!(matches!(ascii.encode("<root>\u{e9}</root>"), Err(ConfError::Unencodable { character: '\u{e9}', .. })));
    }

    #[test]
    fn letters() {
        assert_eq!(parse_letter("M:"), Some('M'));
        assert_eq!(parse_letter("r:\\"), Some('R'));
        assert_eq!(parse_letter("MM"), None);
    }

    #[test]
    fn set_text_inserts_nested_and_is_idempotent() {
        let xml = "<root>\n  <g name=\"x\">\n    <c/>\n  </g>\n</root>\n".to_owned();
        let mut xml = xml.replace("<g ", "<group ").replace("</g>", "</group>");
        let locate = Base::Group("x");
        let changed = set_text(&mut xml, &locate, "g", &[tag("p"), tag("q")], "1", &|v| v == "1").expect("set");
        assert!(changed);
        assert_eq!(
            xml,
            "<root>\n  <group name=\"x\">\n    <c/>\n    <p>\n      <q>1</q>\n    </p>\n  </group>\n</root>\n"
        );
        let again = set_text(&mut xml, &locate, "g", &[tag("p"), tag("q")], "1", &|v| v == "1").expect("set");
        assert!(!again);
    }
}
