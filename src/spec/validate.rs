//! `mirrorctl validate`: check a set of desired-state files and directories without acting.
//!
//! Why this module exists: an operator edits a file and wants to know, before the daemon reads
//! it, whether it is right. Beyond each file on its own, a set of files must not describe one
//! cluster twice (two files would fight over the same disks). The command-line wiring prints
//! [`ValidateReport::text`] and exits with [`EXIT_INVALID`] when a file is invalid.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::error::{ErrorKind, Source, SpecError};
use super::load::{io_error, load_located};
use super::types::Os;

/// Exit status of `mirrorctl validate` when at least one file is invalid: 65, `EX_DATAERR` from
/// BSD `sysexits.h` ("the input data was incorrect"), so scripts can tell bad files from a crash.
pub const EXIT_INVALID: u8 = 65;

/// The outcome of [`validate_paths`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidateReport {
    /// What `mirrorctl validate` prints: one `ok: FILE (cluster NAME, OS)` line per valid file,
    /// the rendered errors of each invalid file, then a one-line summary.
    pub text: String,
    /// How many files are invalid.
    pub invalid: usize,
    /// How many files are valid.
    pub valid: usize,
    /// Each file checked, in order, with its cluster (when valid) or its errors (for `-o json`).
    pub files: Vec<FileReport>,
}

/// One checked file of a [`ValidateReport`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileReport {
    /// The file.
    pub file: PathBuf,
    /// Cluster name and OS (`windows` / `linux`) when the file is valid.
    pub cluster: Option<(String, &'static str)>,
    /// Its errors (empty when valid).
    pub errors: Vec<SpecError>,
}

/// One file's result before the cross-file check.
enum Outcome {
    Valid { cluster: String, os: Os, text: String, name_span: std::ops::Range<usize> },
    Invalid(Vec<SpecError>),
}

/// Validates files and directories. A directory stands for its `*.toml` files (not recursive),
/// in name order; a path given twice is checked once. Besides each file's own checks, two valid
/// files naming the same cluster are both reported with [`ErrorKind::DuplicateCluster`].
pub fn validate_paths(paths: &[PathBuf]) -> ValidateReport {
    let mut notes = String::new();
    let mut checked: Vec<PathBuf> = Vec::new();
    let mut outcomes: Vec<Outcome> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for path in paths {
        let files = if path.is_dir() {
            match toml_files(path) {
                Ok(found) => {
                    if found.is_empty() {
                        let _ = writeln!(notes, "warning: no *.toml files in {}", path.display());
                    }
                    found
                }
                Err(e) => {
                    checked.push(path.clone());
                    outcomes.push(Outcome::Invalid(vec![io_error(path, &e)]));
                    continue;
                }
            }
        } else {
            vec![path.clone()]
        };
        for file in files {
            if seen.insert(file.clone()) {
                outcomes.push(check_file(&file));
                checked.push(file);
            }
        }
    }
    mark_duplicate_clusters(&checked, &mut outcomes);

    let mut text = notes;
    let mut files = Vec::new();
    let (mut valid, mut invalid, mut errors) = (0, 0, 0);
    for (file, outcome) in checked.iter().zip(&outcomes) {
        match outcome {
            Outcome::Valid { cluster, os, .. } => {
                valid += 1;
                let os = match os {
                    Os::Windows => "windows",
                    Os::Linux => "linux",
                };
                let _ = writeln!(text, "ok: {} (cluster {cluster}, {os})", file.display());
                files.push(FileReport { file: file.clone(), cluster: Some((cluster.clone(), os)), errors: Vec::new() });
            }
            Outcome::Invalid(list) => {
                invalid += 1;
                errors += list.len();
                for e in list {
                    let _ = writeln!(text, "{e}\n");
                }
                files.push(FileReport { file: file.clone(), cluster: None, errors: list.clone() });
            }
        }
    }
    let _ = writeln!(
        text,
        "{} checked: {valid} valid, {invalid} invalid ({errors} {})",
        plural(valid + invalid, "file"),
        if errors == 1 { "error" } else { "errors" },
    );
    ValidateReport { text, invalid, valid, files }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { format!("{n} {word}") } else { format!("{n} {word}s") }
}

/// The `*.toml` files directly inside `dir`, sorted by name.
fn toml_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_file() && path.extension().is_some_and(|e| e == "toml") {
            found.push(path);
        }
    }
    found.sort();
    Ok(found)
}

fn check_file(file: &Path) -> Outcome {
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => return Outcome::Invalid(vec![io_error(file, &e)]),
    };
    match load_located(file, &text) {
        Ok((spec, name_span)) => {
            Outcome::Valid { cluster: spec.cluster.name.to_string(), os: spec.cluster.os, text, name_span }
        }
        Err(e) => Outcome::Invalid(e.0),
    }
}

/// Turns every valid file whose cluster another valid file also names into an invalid one.
fn mark_duplicate_clusters(files: &[PathBuf], outcomes: &mut [Outcome]) {
    let mut by_cluster: BTreeMap<String, Vec<usize>> = BTreeMap::new();
    for (i, o) in outcomes.iter().enumerate() {
        if let Outcome::Valid { cluster, .. } = o {
            by_cluster.entry(cluster.clone()).or_default().push(i);
        }
    }
    for (cluster, indices) in by_cluster {
        if indices.len() < 2 {
            continue;
        }
        for &i in &indices {
            let others: Vec<String> =
                indices.iter().filter(|&&j| j != i).map(|&j| files[j].display().to_string()).collect();
            if let Outcome::Valid { text, name_span, .. } = &outcomes[i] {
                let source = Source::new(files[i].clone(), text);
                let e = source.error(
                    name_span.clone(),
                    "cluster.name",
                    ErrorKind::DuplicateCluster,
                    format!(
                        "cluster \"{cluster}\" is also described by {}",
                        others.join(", ")
                    ),
                    Some(
                        "keep exactly one file per cluster: two files for one cluster would fight over its disks; delete or merge the others"
                            .to_owned(),
                    ),
                );
                outcomes[i] = Outcome::Invalid(vec![e]);
            }
        }
    }
}
