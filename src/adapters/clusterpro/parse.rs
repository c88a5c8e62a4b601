//! Parsers for the text that CLUSTERPRO's commands print on a node.
//!
//! Why this module exists: when a cluster has no REST API (before X 4.2, or with it disabled),
//! mirrorctl learns the cluster's state by running `clpstat`, `clpgrp -n` and `clpmdstat` through
//! the node transport and reading their output. None of them has a machine-readable mode, so these
//! functions turn their column-aligned text into the port's types. They are pure (no I/O), tolerant
//! of what varies between versions and OSes (CRLF line ends, column widths, the `*` marking the
//! local server, extra sections and lines), and strict where a wrong reading would mislead the
//! planner: an unreadable line inside a section mirrorctl relies on is an error naming the command
//! and the line, never a silent guess.
//!
//! The shapes they expect are written down in the fixtures under `tests/fixtures/clusterpro/`; the
//! words that are guesses (see DOMAIN.md) are one-line constants below.

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::cluster::{ClusterStatus, MirrorColor, MirrorStatus, ObjectState, Placement};

/// Server states in `clpstat`'s `<server>` section that mean "a running cluster member". `Caution`
/// is printed when a server runs but some of its heartbeats are down (guess, DOMAIN.md [U]).
pub const RUNNING_SERVER_STATES: &[&str] = &["Online", "Caution"];

/// Status phrases `clpstat` prints, longest first so that `Online Pending` is not read as `Online`.
const STATUS_PHRASES: &[&str] = &[
    "Online Pending",
    "Offline Pending",
    "Online Failure",
    "Offline Failure",
    "Not Used",
    "Online",
    "Offline",
    "Normal",
    "Caution",
    "Error",
    "Suspension",
    "Suspend",
    "Isolated",
    "Stopped",
    "Warning",
    "Unknown",
];

/// What `clpgrp -n` prints for a group that is not online anywhere.
pub const NO_CURRENT_SERVER: &str = "None";

/// Lines some versions append after a command's real output; they carry no data.
const TRAILER_LINES: &[&str] = &["Command succeeded."];

/// Mirror colour words of `clpmdstat -m` and how mirrorctl reads them. Words not listed here (e.g.
/// `ORANGE`, `BLACK`, seen in some versions' documentation [U]) read as [`MirrorColor::Gray`]:
/// "unknown", which is never healthy.
const MIRROR_COLORS: &[(&str, MirrorColor)] = &[
    ("GREEN", MirrorColor::Green),
    ("RED", MirrorColor::Red),
    ("YELLOW", MirrorColor::Yellow),
    ("GRAY", MirrorColor::Gray),
    ("GREY", MirrorColor::Gray),
];

/// Output that a parser could not read. The message names the command, and the line when one is
/// at fault, so an operator can compare it with what the command printed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ParseError {
    /// The command whose output this was (e.g. `clpstat`).
    pub command: &'static str,
    /// 1-based line number, when a particular line is at fault.
    pub line: Option<usize>,
    /// That line's text (trimmed), or empty.
    pub text: String,
    /// What was wrong.
    pub why: String,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            Some(n) => write!(f, "cannot read `{}` output, line {n} {:?}: {}", self.command, self.text, self.why),
            None => write!(f, "cannot read `{}` output: {}", self.command, self.why),
        }
    }
}

fn err_at(command: &'static str, line: usize, text: &str, why: impl Into<String>) -> ParseError {
    ParseError { command, line: Some(line), text: text.trim().to_owned(), why: why.into() }
}

fn err(command: &'static str, why: impl Into<String>) -> ParseError {
    ParseError { command, line: None, text: String::new(), why: why.into() }
}

/// Lines with their 1-based numbers, CR stripped.
fn numbered(output: &str) -> impl Iterator<Item = (usize, &str)> {
    output.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end_matches('\r')))
}

fn is_rule(line: &str) -> bool {
    let t = line.trim();
    !t.is_empty() && t.chars().all(|c| c == '=' || c == '-' || c == ' ') && t.len() >= 3
}

/// One `name ....: status  comment` line of `clpstat`.
struct Entry<'a> {
    indent: usize,
    name: &'a str,
    value: &'a str,
}

fn entry(line: &str) -> Option<Entry<'_>> {
    let (left, value) = line.split_once(':')?;
    let lead = left.len() - left.trim_start().len();
    let mut name_part = left.trim_start();
    let mut indent = lead;
    if let Some(rest) = name_part.strip_prefix('*') {
        name_part = rest;
        indent += 1;
    }
    let name = name_part.trim_end().trim_end_matches('.').trim_end();
    if name.is_empty() || name.contains(char::is_whitespace) {
        return None;
    }
    Some(Entry { indent, name, value: value.trim() })
}

/// The status phrase at the start of `value` (case-insensitive), or its first word.
fn status_phrase(value: &str) -> &str {
    for phrase in STATUS_PHRASES {
        if let Some(head) = value.get(..phrase.len()) {
            let rest = &value[phrase.len()..];
            if head.eq_ignore_ascii_case(phrase) && (rest.is_empty() || rest.starts_with(char::is_whitespace)) {
                return head;
            }
        }
    }
    value.split_whitespace().next().unwrap_or("")
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Section {
    None,
    Server,
    Group,
    Other,
}

struct GroupBuild {
    name: GroupName,
    state: ObjectState,
    current: Option<ServerName>,
    resources: Vec<(ResourceName, ObjectState)>,
}

/// Parses the default text output of `clpstat` into a [`ClusterStatus`].
///
/// Read: the `<server>` section (top-level entries are servers, `*` marks the local one, deeper
/// entries are heartbeats and ignored) and the `<group>` section (top-level entries are groups,
/// `current : <server>|None` gives a group's server, other deeper entries are its resources).
/// Other sections (`<monitor>`, …) and the banner lines are skipped. A resource's `current` is its
/// group's server unless the resource itself is `Offline`.
pub fn parse_clpstat(output: &str) -> Result<ClusterStatus, ParseError> {
    const CMD: &str = "clpstat";
    let mut section = Section::None;
    let mut top_indent: Option<usize> = None;
    let mut seen_server_section = false;
    let mut status = ClusterStatus::default();
    let mut groups: Vec<GroupBuild> = Vec::new();
    let mut server_seen = false;

    for (n, line) in numbered(output) {
        let t = line.trim();
        if t.is_empty() || is_rule(line) || t.to_ascii_uppercase().contains("CLUSTER STATUS") {
            continue;
        }
        if t.starts_with('<') && t.ends_with('>') {
            section = match t[1..t.len() - 1].trim().to_ascii_lowercase().as_str() {
                "server" => {
                    seen_server_section = true;
                    Section::Server
                }
                "group" => Section::Group,
                _ => Section::Other,
            };
            top_indent = None;
            continue;
        }
        match section {
            Section::None | Section::Other => {}
            Section::Server => {
                let e = entry(line).ok_or_else(|| err_at(CMD, n, line, "expected `name : status` in <server>"))?;
                let top = *top_indent.get_or_insert(e.indent);
                if e.indent <= top {
                    top_indent = Some(e.indent);
                    let server = ServerName::parse(e.name).map_err(|x| err_at(CMD, n, line, x.0))?;
                    let word = status_phrase(e.value);
                    let running = RUNNING_SERVER_STATES.iter().any(|s| s.eq_ignore_ascii_case(word));
                    status.servers.insert(server, running);
                    server_seen = true;
                }
            }
            Section::Group => {
                let e = entry(line).ok_or_else(|| err_at(CMD, n, line, "expected `name : status` in <group>"))?;
                let top = *top_indent.get_or_insert(e.indent);
                if e.indent <= top {
                    top_indent = Some(e.indent);
                    let name = GroupName::parse(e.name).map_err(|x| err_at(CMD, n, line, x.0))?;
                    let state = ObjectState::parse(status_phrase(e.value));
                    groups.push(GroupBuild { name, state, current: None, resources: Vec::new() });
                    continue;
                }
                let Some(group) = groups.last_mut() else {
                    return Err(err_at(CMD, n, line, "resource line before any group"));
                };
                if e.name.eq_ignore_ascii_case("current") {
                    let v = e.value;
                    group.current = if v.is_empty() || v.eq_ignore_ascii_case(NO_CURRENT_SERVER) {
                        None
                    } else {
                        Some(ServerName::parse(v).map_err(|x| err_at(CMD, n, line, x.0))?)
                    };
                } else {
                    let name = ResourceName::parse(e.name).map_err(|x| err_at(CMD, n, line, x.0))?;
                    group.resources.push((name, ObjectState::parse(status_phrase(e.value))));
                }
            }
        }
    }
    if !seen_server_section || !server_seen {
        return Err(err(CMD, "no <server> section with at least one server (is the cluster service running?)"));
    }
    for g in groups {
        for (r, state) in g.resources {
            let current = if state == ObjectState::Offline { None } else { g.current.clone() };
            status.resources.insert(r, Placement { state, current });
        }
        status.groups.insert(g.name, Placement { state: g.state, current: g.current });
    }
    Ok(status)
}

/// Parses `clpgrp -n <group>`: the name of the server the group is online on, or `None` when it
/// prints nothing or [`NO_CURRENT_SERVER`].
pub fn parse_clpgrp_current(output: &str) -> Result<Option<ServerName>, ParseError> {
    const CMD: &str = "clpgrp -n";
    let lines: Vec<(usize, &str)> = numbered(output)
        .map(|(n, l)| (n, l.trim()))
        .filter(|(_, l)| !l.is_empty() && !TRAILER_LINES.iter().any(|t| l.eq_ignore_ascii_case(t)))
        .collect();
    match lines.as_slice() {
        [] => Ok(None),
        [(_, l)] if l.eq_ignore_ascii_case(NO_CURRENT_SERVER) => Ok(None),
        [(n, l)] => ServerName::parse(l).map(Some).map_err(|x| err_at(CMD, *n, l, x.0)),
        [_, (n, l), ..] => Err(err_at(CMD, *n, l, "expected one line with a server name")),
    }
}

/// Parses `clpmdstat -m <md>`: the `Mirror Color` line's colours, matched in order to the server
/// names on the header line above it (`<md>  <server1>  <server2>`). A `Mirror Status:` line and
/// the other rows are tolerated and not needed.
pub fn parse_clpmdstat_mirror(output: &str) -> Result<MirrorStatus, ParseError> {
    const CMD: &str = "clpmdstat -m";
    let mut header: Option<Vec<&str>> = None;
    for (n, line) in numbered(output) {
        let t = line.trim();
        if t.is_empty() || is_rule(line) || t.contains(':') {
            continue;
        }
        let words: Vec<&str> = t.split_whitespace().collect();
        if words.len() >= 2 && words[0].eq_ignore_ascii_case("mirror") && words[1].eq_ignore_ascii_case("color") {
            let colors = &words[2..];
            let Some(names) = header.as_ref() else {
                return Err(err_at(CMD, n, line, "`Mirror Color` without a header line naming the servers above it"));
            };
            let servers: &[&str] = if names.len() == colors.len() + 1 {
                &names[1..]
            } else if names.len() == colors.len() {
                names
            } else {
                return Err(err_at(CMD, n, line, format!("{} colours but header names {:?}", colors.len(), names)));
            };
            if colors.is_empty() {
                return Err(err_at(CMD, n, line, "no colours"));
            }
            let mut map = BTreeMap::new();
            for (s, c) in servers.iter().zip(colors) {
                let server = ServerName::parse(s).map_err(|x| err_at(CMD, n, line, x.0))?;
                let color = MIRROR_COLORS
                    .iter()
                    .find(|(w, _)| w.eq_ignore_ascii_case(c))
                    .map_or(MirrorColor::Gray, |(_, color)| *color);
                map.insert(server, color);
            }
            return Ok(MirrorStatus { colors: map });
        }
        if words.len() >= 2 {
            header = Some(words);
        }
    }
    Err(err(CMD, "no `Mirror Color` line"))
}

/// Parses `clpmdstat -l`: the md resource names, in order, without duplicates.
///
/// The shape NEC's own tools rely on: each md name in angle brackets on its line (`<md1>`). NEC
/// engineers' public mirror-recovery perl scripts (the "RED-Active RED" monitor and the "both
/// nodes crash" recovery script) run `clpmdstat -l` and take every name matching `/<(.+)>/`,
/// ignoring all other lines (research/clusterpro-audit.md #9; the GitHub repository holding those
/// scripts was not recorded). So when the output has `<name>` lines and no `… Name : <md>` line,
/// the bracketed lines are the names and any other line is a detail of the md above it, ignored
/// like NEC's scripts ignore it. Windows output was not seen [U].
///
/// Also tolerated, as before (shapes not seen in NEC material [U]): one bare name per line, or
/// `… Name : <md>` lines under `<server>` headings (then the bracketed lines are headings). In
/// those shapes any other line is an error (a usage or error message is not a list).
pub fn parse_clpmdstat_list(output: &str) -> Result<Vec<ResourceName>, ParseError> {
    const CMD: &str = "clpmdstat -l";
    let bracketed = |t: &str| t.len() > 2 && t.starts_with('<') && t.ends_with('>');
    let name_line = |t: &str| t.split_once(':').is_some_and(|(key, _)| key.to_ascii_lowercase().contains("name"));
    let lines: Vec<(usize, &str)> = numbered(output).filter(|(_, l)| !l.trim().is_empty() && !is_rule(l)).collect();
    let brackets_are_names =
        lines.iter().any(|(_, l)| bracketed(l.trim())) && !lines.iter().any(|(_, l)| name_line(l.trim()));
    let mut names: Vec<ResourceName> = Vec::new();
    for (n, line) in lines {
        let t = line.trim();
        let word = if brackets_are_names {
            if !bracketed(t) {
                continue;
            }
            t[1..t.len() - 1].trim()
        } else if bracketed(t) {
            continue;
        } else {
            match t.split_once(':') {
                Some((key, value)) if key.to_ascii_lowercase().contains("name") => value.trim(),
                Some(_) => {
                    return Err(err_at(CMD, n, line, "expected `<md>`, an md name, or `Mirror Disk Name : <md>`"));
                }
                None => t,
            }
        };
        let name = ResourceName::parse(word).map_err(|x| err_at(CMD, n, line, x.0))?;
        if !names.contains(&name) {
            names.push(name);
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_phrase_prefers_two_words() {
        assert_eq!(status_phrase("Online Pending   x"), "Online Pending");
        assert_eq!(status_phrase("online failure"), "online failure");
        assert_eq!(status_phrase("Online           group"), "Online");
        assert_eq!(status_phrase("Weird thing"), "Weird");
    }

    #[test]
    fn entry_reads_local_marker_and_dots() {
        let e = entry("   *server1 .........: Online   ").expect("entry");
        assert_eq!((e.indent, e.name, e.value), (4, "server1", "Online"));
        let e = entry("    server2 .........: Offline").expect("entry");
        assert_eq!((e.indent, e.name), (4, "server2"));
    }

    #[test]
    fn clpgrp_trailer_and_garbage() {
        assert_eq!(
            parse_clpgrp_current("server2\nCommand succeeded.\n").expect("ok").map(|s| s.to_string()),
            Some("server2".into())
        );
        assert_eq!(parse_clpgrp_current("").expect("ok"), None);
        assert!(parse_clpgrp_current("a b c\n").is_err());
    }
}
