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

mod edit;
mod encoding;
mod splice;
mod template;

use crate::ids::{GroupName, ResourceName};
use crate::ports::cluster::{ClusterConfig, MdDefinition};
use crate::spec::{Os, Partition};
pub use edit::{GuidSource, VolumeGuids, apply_changes, apply_changes_with_templates, md_guids};
pub use encoding::ConfFile;
use splice::{Elem, parse_tree};
pub use template::MirrorTemplate;

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

#[cfg(test)]
mod tests {
    use super::splice::{Base, indent_unit, set_text, tag};
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
