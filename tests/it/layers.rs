//! The floors of the house: `src/lib.rs`'s module doc lists them from the ground up; here every
//! `crate::` and `super::` path under `src/` (and every `use` of a child module) is checked against
//! that list. A module may use its own submodules and modules on floors below its own; one that
//! imports upwards or sideways, a cycle between files, or a source file on no floor fails the test
//! with the offending files named.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A module path below the crate root (`["plan", "step"]`).
type ModPath = Vec<String>;

/// The floors listed in a crate module doc: lines `//! N. `a`, `b`: what they are.`, bottom first.
fn floors(lib: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    for line in lib.lines() {
        let Some(rest) = line.strip_prefix("//! ") else { continue };
        let Some((num, rest)) = rest.split_once(". ") else { continue };
        if num.is_empty() || !num.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let names = rest.split_once(": ").map_or(rest, |(n, _)| n);
        let units: Vec<String> = names.split('`').skip(1).step_by(2).map(str::to_owned).collect();
        out.push(units);
    }
    out
}

/// The module path of a source file relative to `src/` (`plan/mod.rs` → `plan`); `None` for the
/// crate roots (`lib.rs`, and `main.rs`, the binary, which uses the library by its name).
fn mod_path(rel: &Path) -> Option<ModPath> {
    let mut parts: ModPath = rel.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop()?;
    let stem = last.strip_suffix(".rs")?;
    if parts.is_empty() && stem == "main" {
        return None;
    }
    if stem != "mod" && stem != "lib" {
        parts.push(stem.to_owned());
    }
    (!parts.is_empty()).then_some(parts)
}

/// The code that counts: everything before the unit tests (`#[cfg(test)]`), comments left out.
fn code(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let t = line.trim_start();
        if t.starts_with("#[cfg(test)]") {
            break;
        }
        if !t.starts_with("//") {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

fn skip_ws(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && s[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

fn ident_end(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && (s[i].is_ascii_alphanumeric() || s[i] == b'_') {
        i += 1;
    }
    i
}

/// Expands the path or use tree starting at `s[i]` (after `crate::`) into full paths.
fn expand(s: &[u8], mut i: usize, prefix: &[String], out: &mut Vec<ModPath>) -> usize {
    let mut seg = prefix.to_vec();
    loop {
        i = skip_ws(s, i);
        if s.get(i) == Some(&b'{') {
            i += 1;
            loop {
                i = skip_ws(s, i);
                if s.get(i) == Some(&b'}') {
                    return i + 1;
                }
                i = skip_ws(s, expand(s, i, &seg, out));
                match s.get(i) {
                    Some(b',') => i += 1,
                    Some(b'}') => return i + 1,
                    _ => return i,
                }
            }
        }
        let end = ident_end(s, i);
        if end == i {
            out.push(seg);
            return i;
        }
        seg.push(String::from_utf8_lossy(&s[i..end]).into_owned());
        i = end;
        if s[i..].starts_with(b"::") {
            i += 2;
        } else {
            out.push(seg);
            return i;
        }
    }
}

/// Whether `s[i]` starts a word (not the tail of an identifier or a path).
fn word_start(s: &[u8], i: usize) -> bool {
    i == 0 || !(s[i - 1].is_ascii_alphanumeric() || s[i - 1] == b'_' || s[i - 1] == b':' || s[i - 1] == b'$')
}

/// The module paths `code` of the module at `here` names: `crate::…`, `super::…` and `use child::…`
/// (a child module of `here` among `modules`).
fn named_paths(here: &[String], code: &str, modules: &BTreeSet<ModPath>) -> Vec<ModPath> {
    let s = code.as_bytes();
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::") {
        if word_start(s, i) {
            expand(s, i + "crate::".len(), &[], &mut out);
        }
    }
    for (i, _) in code.match_indices("super::") {
        if !word_start(s, i) {
            continue;
        }
        let mut found = Vec::new();
        expand(s, i + "super::".len(), &[], &mut found);
        for p in found {
            let mut base = here[..here.len() - 1].to_vec();
            let mut rest = p.as_slice();
            while rest.first().map(String::as_str) == Some("super") {
                base.pop();
                rest = &rest[1..];
            }
            base.extend_from_slice(rest);
            out.push(base);
        }
    }
    for (i, _) in code.match_indices("use ") {
        if !word_start(s, i) {
            continue;
        }
        let mut j = skip_ws(s, i + "use ".len());
        if s[j..].starts_with(b"self::") {
            j += "self::".len();
        }
        let end = ident_end(s, j);
        if end > j && s[end..].starts_with(b"::") {
            let mut child = here.to_vec();
            child.push(String::from_utf8_lossy(&s[j..end]).into_owned());
            if modules.contains(&child) {
                out.push(child);
            }
        }
    }
    out
}

/// The longest entry of `set` that `path` starts with.
fn longest_prefix<'a>(path: &[String], set: impl Iterator<Item = &'a ModPath>) -> Option<&'a ModPath> {
    set.filter(|m| path.starts_with(m)).max_by_key(|m| m.len())
}

fn show(p: &[String]) -> String {
    p.join("::")
}

/// Every breach of the floors by the modules in `sources` (module path → source text).
fn breaches(floor_list: &[Vec<String>], sources: &BTreeMap<ModPath, String>) -> Vec<String> {
    let mut bad = Vec::new();
    let floor_of: BTreeMap<ModPath, usize> = floor_list
        .iter()
        .enumerate()
        .flat_map(|(f, units)| units.iter().map(move |u| (u.split("::").map(str::to_owned).collect(), f)))
        .collect();
    let modules: BTreeSet<ModPath> = sources.keys().cloned().collect();
    for unit in floor_of.keys() {
        if !modules.contains(unit) {
            bad.push(format!("floor list names `{}`, which is no module", show(unit)));
        }
    }
    let unit_of = |m: &ModPath| longest_prefix(m, floor_of.keys());
    // File-to-file edges; a module using what an ancestor declares is no edge for cycles.
    let mut edges: BTreeMap<&ModPath, BTreeSet<&ModPath>> = BTreeMap::new();
    for (here, text) in sources {
        let Some(from_unit) = unit_of(here) else {
            bad.push(format!("{} is on no floor: add it to the list in src/lib.rs", show(here)));
            continue;
        };
        for path in named_paths(here, &code(text), &modules) {
            let Some(target) = longest_prefix(&path, modules.iter()) else { continue };
            if target == here {
                continue;
            }
            if let Some(to_unit) = unit_of(target)
                && to_unit != from_unit
                && floor_of[to_unit] >= floor_of[from_unit]
            {
                let how = if floor_of[to_unit] == floor_of[from_unit] { "beside" } else { "above" };
                bad.push(format!(
                    "{} (floor {} `{}`) uses {} (floor {} `{}`, {how} it)",
                    show(here),
                    floor_of[from_unit] + 1,
                    show(from_unit),
                    show(&path),
                    floor_of[to_unit] + 1,
                    show(to_unit),
                ));
            }
            if !here.starts_with(target) {
                edges.entry(here).or_default().insert(target);
            }
        }
    }
    bad.dedup();
    // Cycles between files.
    let mut state: BTreeMap<&ModPath, u8> = BTreeMap::new();
    let mut stack: Vec<&ModPath> = Vec::new();
    for n in sources.keys() {
        if !state.contains_key(n) {
            visit(n, &edges, &mut state, &mut stack, &mut bad);
        }
    }
    bad
}

/// Depth-first search from `n`, naming every cycle it closes.
fn visit<'a>(
    n: &'a ModPath,
    edges: &BTreeMap<&'a ModPath, BTreeSet<&'a ModPath>>,
    state: &mut BTreeMap<&'a ModPath, u8>,
    stack: &mut Vec<&'a ModPath>,
    bad: &mut Vec<String>,
) {
    state.insert(n, 1);
    stack.push(n);
    for &m in edges.get(n).into_iter().flatten() {
        match state.get(m) {
            Some(1) => {
                let at = stack.iter().position(|x| *x == m).unwrap_or(0);
                let ring: Vec<String> = stack[at..].iter().chain([&m]).map(|p| show(p)).collect();
                bad.push(format!("import cycle: {}", ring.join(" -> ")));
            }
            Some(_) => {}
            None => visit(m, edges, state, stack, bad),
        }
    }
    stack.pop();
    state.insert(n, 2);
}

fn read_tree(dir: &Path, root: &Path, out: &mut BTreeMap<ModPath, String>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            read_tree(&path, root, out);
        } else if path.extension().is_some_and(|e| e == "rs")
            && let Some(m) = mod_path(path.strip_prefix(root).expect("below src/"))
        {
            out.insert(m, std::fs::read_to_string(&path).expect("a readable source file"));
        }
    }
}

#[test]
fn src_keeps_to_the_floors_in_lib_rs() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let lib = std::fs::read_to_string(src.join("lib.rs")).expect("src/lib.rs");
    let floor_list = floors(&lib);
    assert!(floor_list.len() > 5, "src/lib.rs lists the floors of the house (`//! 1. `ids`, …: …`)");
    let mut sources = BTreeMap::new();
    read_tree(&src, &src, &mut sources);
    let bad = breaches(&floor_list, &sources);
    assert!(bad.is_empty(), "the floors of src/lib.rs are breached:\n{}", bad.join("\n"));
}

fn tree(files: &[(&str, &str)]) -> BTreeMap<ModPath, String> {
    files.iter().map(|(p, t)| (p.split("::").map(str::to_owned).collect(), (*t).to_owned())).collect()
}

const FLOORS: &str = "//! 1. `low`: the ground.\n//! 2. `mid`, `side`: the middle.\n//! 2x. not a floor\n\
                      //! 3. `high`: the top, with `low` named after the colon.\n";

#[test]
fn the_checker_reads_the_floor_list() {
    let f = floors(FLOORS);
    assert_eq!(f, vec![vec!["low".to_owned()], vec!["mid".into(), "side".into()], vec!["high".into()]]);
}

#[test]
fn the_checker_accepts_downward_imports_groups_and_unit_tests() {
    let sources = tree(&[
        ("low", "pub struct L;"),
        ("mid", "use crate::{\n    low::L,\n};\npub mod child;\nuse child::C;\n"),
        ("mid::child", "use super::super::low::L;\npub struct C;"),
        ("side", "// use crate::high::H;\n/// [`crate::mid`]\nfn f() -> crate::low::L { todo!() }"),
        ("high", "use crate::{mid::{self, child::C}, side as _};\n#[cfg(test)]\nmod tests { use crate::high; }"),
    ]);
    assert_eq!(breaches(&floors(FLOORS), &sources), Vec::<String>::new());
}

#[test]
fn the_checker_finds_upward_and_sideways_imports_cycles_and_strays() {
    let sources = tree(&[
        ("low", "use crate::mid::M;"),
        ("mid", "pub struct M;\nfn g() { crate::side::f() }"),
        ("side", "pub fn f() {}"),
        ("high", "pub mod a; pub mod b;"),
        ("high::a", "use super::b::B; pub struct A;"),
        ("high::b", "use crate::high::a::A; pub struct B;"),
        ("stray", ""),
    ]);
    let bad = breaches(&floors(FLOORS), &sources);
    assert!(bad.iter().any(|b| b.starts_with("low (floor 1 `low`) uses mid::M (floor 2 `mid`, above it)")), "{bad:#?}");
    assert!(
        bad.iter().any(|b| b.starts_with("mid (floor 2 `mid`) uses side::f (floor 2 `side`, beside it)")),
        "{bad:#?}"
    );
    assert!(bad.iter().any(|b| b.starts_with("import cycle: high::a -> high::b -> high::a")), "{bad:#?}");
    assert!(bad.iter().any(|b| b.starts_with("stray is on no floor")), "{bad:#?}");
}
