//! Files moved in pieces through a command transport that caps what a command may carry.
//!
//! Why this module exists: SSM Run Command returns at most 24,000 characters of a command's
//! standard output (the rest is only in S3, which mirrorctl does not require) and a command's
//! parameters are limited too (documents: 64 KB). `clp.conf` and other files pulled from a node
//! can be larger than that, so a remote transport reads a file as a series of small commands, each
//! printing one base64 piece, and writes one as a series of commands, each appending one base64
//! piece to a file beside the target, the last checking size and SHA-256 and renaming it into
//! place. This module generates those scripts (POSIX sh and Windows PowerShell) and checks what
//! comes back; it does no I/O itself, so the scripts are golden-tested as text.
//!
//! Every read command prints a header line `mirrorctl-file: <size> <sha256>` before its piece: a
//! file that changes between two pieces, or pieces that do not add up to the announced digest, are
//! refused (`FileChanged`, retryable: read it again). Every value spliced into a script is a number,
//! a hex digest, base64 text, or a path in single quotes (quotes inside doubled or escaped), and a
//! path with a line break or NUL is refused before anything is sent.
//!
//! Commands used — sh: `wc -c`, `sha256sum`, `dd`, `base64`, `tr`, `mv -f`, `rm -f`;
//! PowerShell: `Test-Path`, `Get-Item`, `Get-FileHash`, `Move-Item`, `Remove-Item`,
//! `[System.IO.File]::OpenRead`/`Open`, `[Convert]::ToBase64String`/`FromBase64String`.
//! The written file gets the default permissions of a new file (like [`super::transport::LocalTransport`]).

use std::fmt::Write as _;
use std::path::Path;

use sha2::{Digest, Sha256};

use super::transport::{CommandOutput, Shell, TMP_SUFFIX};
use crate::ports::{ErrorClass, PortError, PortResult};

/// What SSM returns of a command's standard output at most (characters).
pub const OUTPUT_LIMIT: usize = 24_000;

/// Bytes read per command: base64 makes 21,848 characters of them, well under [`OUTPUT_LIMIT`]
/// with the header line.
pub const READ_CHUNK: usize = 16 * 1024;

/// Bytes written per command: 32,768 base64 characters plus line breaks, half of the 64 KB an
/// SSM document may hold (the limit on a command's parameters is not published [U]).
pub const WRITE_PIECE: usize = 24 * 1024;

/// First word of every line these scripts print for mirrorctl.
const MARK: &str = "mirrorctl-file:";

/// Exit status of a read whose file does not exist.
const EXIT_MISSING: i32 = 3;

/// Base64 line length inside a write script.
const B64_LINE: usize = 76;

/// The heredoc delimiter (never a base64 line: it has an underscore).
const HEREDOC_END: &str = "MIRRORCTL_PIECE";

/// The path as text, refusing what cannot be spliced into a one-line quoted string.
pub fn path_text(path: &Path) -> PortResult<&str> {
    let text = path.to_str().ok_or_else(|| {
        PortError::new(
            "InvalidPath",
            format!("{}: the path is not valid UTF-8; name the file with a UTF-8 path", path.display()),
            ErrorClass::NeedsHuman,
        )
    })?;
    if text.is_empty() || text.contains(['\n', '\r', '\0']) {
        return Err(PortError::new(
            "InvalidPath",
            format!("{text:?}: a remote file path must be non-empty and free of line breaks and NUL"),
            ErrorClass::NeedsHuman,
        ));
    }
    Ok(text)
}

/// `s` as one single-quoted word of `shell`.
pub fn quote(shell: Shell, s: &str) -> String {
    match shell {
        Shell::Sh => format!("'{}'", s.replace('\'', r"'\''")),
        // PowerShell also ends a single-quoted string at the typographic single quotes; doubling
        // any of them keeps it literal.
        Shell::PowerShell => {
            let mut out = String::with_capacity(s.len() + 2);
            out.push('\'');
            for c in s.chars() {
                if matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201a}' | '\u{201b}') {
                    out.push(c);
                }
                out.push(c);
            }
            out.push('\'');
            out
        }
    }
}

/// The path of the file written beside `path`.
pub fn tmp_path(path: &str) -> String {
    format!("{path}{TMP_SUFFIX}")
}

/// The script that prints the header and piece number `index` (of `chunk` bytes) of `path`.
pub fn read_script(shell: Shell, path: &str, chunk: usize, index: u64) -> String {
    let q = quote(shell, path);
    let offset = index * chunk as u64;
    match shell {
        Shell::Sh => format!(
            "# mirrorctl: read bytes {offset}.. ({chunk} at most) of a file\n\
             f={q}\n\
             if [ ! -f \"$f\" ]; then echo '{MARK} missing'; exit {EXIT_MISSING}; fi\n\
             set -- $(wc -c < \"$f\") $(sha256sum < \"$f\")\n\
             echo \"{MARK} $1 $2\"\n\
             dd if=\"$f\" bs={chunk} skip={index} count=1 2>/dev/null | base64 | tr -d '\\n'\n\
             echo\n"
        ),
        Shell::PowerShell => format!(
            "# mirrorctl: read bytes {offset}.. ({chunk} at most) of a file\n\
             $ErrorActionPreference = 'Stop'\n\
             $f = {q}\n\
             if (-not (Test-Path -LiteralPath $f -PathType Leaf)) {{ Write-Output '{MARK} missing'; exit {EXIT_MISSING} }}\n\
             $n = (Get-Item -LiteralPath $f).Length\n\
             $h = (Get-FileHash -LiteralPath $f -Algorithm SHA256).Hash.ToLowerInvariant()\n\
             Write-Output \"{MARK} $n $h\"\n\
             $s = [System.IO.File]::OpenRead($f)\n\
             try {{\n\
             \x20   [void]$s.Seek({offset}, [System.IO.SeekOrigin]::Begin)\n\
             \x20   $b = New-Object byte[] {chunk}\n\
             \x20   $got = 0\n\
             \x20   while ($got -lt {chunk}) {{ $r = $s.Read($b, $got, {chunk} - $got); if ($r -le 0) {{ break }}; $got += $r }}\n\
             \x20   Write-Output ([Convert]::ToBase64String($b, 0, $got))\n\
             }} finally {{ $s.Dispose() }}\n"
        ),
    }
}

/// The file's size and SHA-256 as a read command saw them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileStamp {
    /// Bytes.
    pub size: u64,
    /// Lower-case hex SHA-256.
    pub sha256: String,
}

/// Reads one read command's output: the stamp and the decoded piece.
pub fn parse_read(path: &str, out: &CommandOutput) -> PortResult<(FileStamp, Vec<u8>)> {
    let mut lines = out.stdout.lines().map(str::trim).skip_while(|l| !l.starts_with(MARK));
    let header = lines.next().and_then(|l| l.strip_prefix(MARK)).map(str::trim);
    if header == Some("missing") || out.exit_code == EXIT_MISSING {
        return Err(PortError::new(
            "FileNotFound",
            format!("{path}: no such file on the server"),
            ErrorClass::NeedsHuman,
        ));
    }
    let failed = |what: &str| {
        let said = out.said();
        PortError::new(
            "FileReadFailed",
            format!("reading {path}: {what} (exit status {}): {said:.400}", out.exit_code),
            ErrorClass::NeedsHuman,
        )
    };
    if out.exit_code != 0 {
        return Err(failed("the read command failed"));
    }
    let mut words = header.ok_or_else(|| failed("no header line"))?.split_whitespace();
    let size = words.next().and_then(|w| w.parse::<u64>().ok());
    let sha = words.next().filter(|h| h.len() == 64 && h.bytes().all(|b| b.is_ascii_hexdigit()));
    let (Some(size), Some(sha)) = (size, sha) else {
        return Err(failed("unreadable header line"));
    };
    // The piece is the rest of the output; a host that wraps long lines only adds line breaks.
    let text: String = lines.flat_map(str::chars).filter(|c| !c.is_whitespace()).collect();
    let piece =
        aws_smithy_types::base64::decode(&text).map_err(|e| failed(&format!("the piece is not base64 ({e})")))?;
    Ok((FileStamp { size, sha256: sha.to_ascii_lowercase() }, piece))
}

/// Collects the pieces of one file and checks them against the first stamp.
#[derive(Debug)]
pub struct Assembly {
    path: String,
    stamp: FileStamp,
    bytes: Vec<u8>,
}

fn changed(path: &str, what: &str) -> PortError {
    PortError::new("FileChanged", format!("{path}: {what}; read it again"), ErrorClass::Retryable)
}

impl Assembly {
    /// Starts from the first piece and its stamp.
    pub fn new(path: &str, stamp: FileStamp, first: Vec<u8>) -> Self {
        Assembly { path: path.to_owned(), stamp, bytes: first }
    }

    /// How many pieces of `chunk` bytes the file has (at least one).
    pub fn pieces(&self, chunk: usize) -> u64 {
        self.stamp.size.div_ceil(chunk as u64).max(1)
    }

    /// Adds the next piece, read with `stamp`.
    pub fn push(&mut self, stamp: &FileStamp, piece: &[u8]) -> PortResult<()> {
        if *stamp != self.stamp {
            return Err(changed(
                &self.path,
                &format!("it changed while being read ({} → {} bytes)", self.stamp.size, stamp.size),
            ));
        }
        self.bytes.extend_from_slice(piece);
        Ok(())
    }

    /// The file, once its size and digest match the stamp.
    pub fn finish(self) -> PortResult<Vec<u8>> {
        let digest = hex::encode(Sha256::digest(&self.bytes));
        if self.bytes.len() as u64 != self.stamp.size || digest != self.stamp.sha256 {
            return Err(changed(
                &self.path,
                &format!(
                    "the pieces hold {} bytes with SHA-256 {digest}, the file {} bytes with {}",
                    self.bytes.len(),
                    self.stamp.size,
                    self.stamp.sha256
                ),
            ));
        }
        Ok(self.bytes)
    }
}

/// The commands that write `bytes` to `path` in pieces of `piece` bytes: each writes (the first)
/// or appends (the others) one piece to the file beside `path`; the last also checks the size and
/// SHA-256 of what arrived and renames it over `path`. Safe to run again from the start.
pub fn write_scripts(shell: Shell, path: &str, bytes: &[u8], piece: usize) -> Vec<String> {
    let tmp = tmp_path(path);
    let pieces: Vec<&[u8]> = if bytes.is_empty() { vec![&[][..]] } else { bytes.chunks(piece.max(1)).collect() };
    let total = pieces.len();
    let sha = hex::encode(Sha256::digest(bytes));
    pieces
        .iter()
        .enumerate()
        .map(|(i, data)| {
            let mut s = format!("# mirrorctl: write piece {} of {total} of a file\n", i + 1);
            write_piece(&mut s, shell, &tmp, data, i == 0);
            if i + 1 == total {
                finalize(&mut s, shell, path, bytes.len(), &sha);
            }
            s
        })
        .collect()
}

fn base64_lines(data: &[u8]) -> String {
    let text = aws_smithy_types::base64::encode(data);
    let mut out = String::with_capacity(text.len() + text.len() / B64_LINE + 1);
    // Base64 is ASCII, so byte offsets are character offsets.
    for line in text.as_bytes().chunks(B64_LINE) {
        out.push_str(std::str::from_utf8(line).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn write_piece(s: &mut String, shell: Shell, tmp: &str, data: &[u8], first: bool) {
    let q = quote(shell, tmp);
    match shell {
        Shell::Sh => {
            let redirect = if first { ">" } else { ">>" };
            let _ = writeln!(s, "t={q}");
            if data.is_empty() {
                let _ = writeln!(s, ": {redirect} \"$t\" || exit 5");
            } else {
                let _ = write!(
                    s,
                    "base64 -d {redirect} \"$t\" <<'{HEREDOC_END}' || exit 5\n{}{HEREDOC_END}\n",
                    base64_lines(data)
                );
            }
        }
        Shell::PowerShell => {
            let mode = if first { "Create" } else { "Append" };
            let _ = writeln!(s, "$ErrorActionPreference = 'Stop'\n$t = {q}");
            if data.is_empty() {
                let _ = writeln!(s, "$b = [byte[]]@()");
            } else {
                let _ = write!(s, "$b = [Convert]::FromBase64String(@'\n{}'@)\n", base64_lines(data));
            }
            let _ = writeln!(
                s,
                "$s = [System.IO.File]::Open($t, [System.IO.FileMode]::{mode}, [System.IO.FileAccess]::Write)\n\
                 try {{ $s.Write($b, 0, $b.Length) }} finally {{ $s.Dispose() }}"
            );
        }
    }
}

/// Appends the check-and-rename of the file `$t` the piece before it wrote.
fn finalize(s: &mut String, shell: Shell, path: &str, size: usize, sha: &str) {
    let q = quote(shell, path);
    match shell {
        Shell::Sh => {
            let _ = write!(
                s,
                "p={q}\n\
                 set -- $(wc -c < \"$t\") $(sha256sum < \"$t\")\n\
                 if [ \"$1\" != {size} ] || [ \"$2\" != {sha} ]; then\n\
                 \x20 echo \"{MARK} $t holds $1 bytes with SHA-256 $2, expected {size} bytes with SHA-256 {sha}\" >&2\n\
                 \x20 rm -f \"$t\"; exit 4\n\
                 fi\n\
                 mv -f \"$t\" \"$p\" || exit 5\n\
                 echo '{MARK} written'\n"
            );
        }
        Shell::PowerShell => {
            let _ = write!(
                s,
                "$p = {q}\n\
                 $n = (Get-Item -LiteralPath $t).Length\n\
                 $h = (Get-FileHash -LiteralPath $t -Algorithm SHA256).Hash.ToLowerInvariant()\n\
                 if ($n -ne {size} -or $h -ne '{sha}') {{\n\
                 \x20   Remove-Item -LiteralPath $t -Force\n\
                 \x20   [Console]::Error.WriteLine(\"{MARK} $t holds $n bytes with SHA-256 $h, expected {size} bytes with SHA-256 {sha}\")\n\
                 \x20   exit 4\n\
                 }}\n\
                 Move-Item -LiteralPath $t -Destination $p -Force\n\
                 Write-Output '{MARK} written'\n"
            );
        }
    }
}

/// Checks one write command's result.
pub fn check_write(path: &str, piece: usize, of: usize, out: CommandOutput) -> PortResult<()> {
    out.success(&format!("writing piece {piece} of {of} of {path}"), "FileWriteFailed", ErrorClass::NeedsHuman)
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote(Shell::Sh, "/a b/it's"), r"'/a b/it'\''s'");
        assert_eq!(quote(Shell::PowerShell, "C:\\it's\u{2019}"), "'C:\\it''s\u{2019}\u{2019}'");
        assert!(path_text(Path::new("/a\nb")).is_err());
        assert!(path_text(Path::new("")).is_err());
        assert_eq!(path_text(Path::new("/etc/clp.conf")).expect("ok"), "/etc/clp.conf");
    }

    #[test]
    fn read_output_parses_and_checks() {
        let out =
            |stdout: &str, code: i32| CommandOutput { exit_code: code, stdout: stdout.into(), stderr: String::new() };
        let sha = hex::encode(Sha256::digest(b"hello"));
        let (stamp, piece) =
            parse_read("/f", &out(&format!("noise\n{MARK} 5 {sha}\naGVs\r\nbG8=\r\n"), 0)).expect("ok");
        assert_eq!((stamp.size, piece.as_slice()), (5, &b"hello"[..]));
        let e = parse_read("/f", &out(&format!("{MARK} missing\n"), 3)).expect_err("missing");
        assert_eq!((e.code.as_str(), e.class), ("FileNotFound", ErrorClass::NeedsHuman));
        let e = parse_read("/f", &out("garbage", 0)).expect_err("no header");
        assert_eq!(e.code, "FileReadFailed");
        let mut a = Assembly::new("/f", stamp.clone(), b"hel".to_vec());
        a.push(&stamp, b"lo").expect("same stamp");
        assert_eq!(a.finish().expect("digest matches"), b"hello");
        let mut a = Assembly::new("/f", stamp.clone(), b"hel".to_vec());
        a.push(&stamp, b"LO").expect("same stamp");
        assert_eq!(a.finish().expect_err("digest differs").class, ErrorClass::Retryable);
        let other = FileStamp { size: 6, sha256: sha };
        assert_eq!(Assembly::new("/f", stamp, Vec::new()).push(&other, b"x").expect_err("changed").code, "FileChanged");
    }

    #[test]
    fn write_scripts_cut_pieces_and_finish_once() {
        let data = vec![7u8; 2 * 100 + 1];
        let s = write_scripts(Shell::Sh, "/d/f", &data, 100);
        assert_eq!(s.len(), 3);
        assert!(s[0].contains("base64 -d > \"$t\"") && s[1].contains("base64 -d >> \"$t\""));
        assert_eq!(s.iter().filter(|c| c.contains("mv -f")).count(), 1);
        assert!(s[2].contains("mv -f"));
        let empty = write_scripts(Shell::PowerShell, "C:\\f", b"", 100);
        assert_eq!(empty.len(), 1);
        assert!(empty[0].contains("[byte[]]@()") && empty[0].contains("Move-Item"));
    }
}
