//! Bytes and text: `clp.conf` read and written in the encoding its XML declaration names (see
//! the parent module's "Encodings").

use std::borrow::Cow;

use super::ConfError;

/// The encodings mirrorctl edits, by the labels an XML declaration may use (compared without
/// case). `ASCII` files are read as UTF-8 (its superset) and written back only if still ASCII.
pub(super) const ENCODING_LABELS: &[(&str, Charset)] = &[
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
pub(super) enum Charset {
    Utf8,
    Ascii,
    ShiftJis,
    EucJp,
}

pub(super) const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// A `clp.conf` read from its bytes: the text, and how to write an edited text back in the same
/// encoding (see the module doc). Build it with [`ConfFile::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfFile {
    /// The file's text (without a UTF-8 byte order mark).
    pub text: String,
    pub(super) charset: Charset,
    pub(super) bom: bool,
    /// ASCII declared and only ASCII bytes found: the edited text must stay ASCII.
    pub(super) ascii_only: bool,
}

/// The `encoding` of the XML declaration at the start of `bytes`, if any. The declaration is
/// ASCII in every encoding accepted here.
pub(super) fn declared_encoding(bytes: &[u8]) -> Option<String> {
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

    pub(super) fn name_of(c: Charset) -> &'static str {
        match c {
            Charset::Utf8 => "UTF-8",
            Charset::Ascii => "ASCII",
            Charset::ShiftJis => "Shift_JIS",
            Charset::EucJp => "EUC-JP",
        }
    }

    pub(super) fn encoding_of(c: Charset) -> &'static encoding_rs::Encoding {
        match c {
            Charset::Utf8 | Charset::Ascii => encoding_rs::UTF_8,
            Charset::ShiftJis => encoding_rs::SHIFT_JIS,
            Charset::EucJp => encoding_rs::EUC_JP,
        }
    }
}
