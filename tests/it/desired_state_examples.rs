//! Every example in `desired-state/` must load: they are the operator's templates, and the
//! simulator's lab world is built to match `prod-db.toml`.

use std::path::{Path, PathBuf};

use mirrorctl::spec::{load_file, validate_paths};

fn examples() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("desired-state/ exists")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_example_file_parses_and_validates() {
    let files = examples();
    assert!(files.len() >= 2, "expected the example files, found {files:?}");
    for file in &files {
        if let Err(e) = load_file(file) {
            panic!("{} is invalid:\n{e}", file.display());
        }
    }
}

#[test]
fn the_example_directory_validates_as_a_whole() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state");
    let report = validate_paths(&[dir]);
    assert_eq!(report.invalid, 0, "{}", report.text);
    assert_eq!(report.valid, examples().len(), "{}", report.text);
    assert!(report.text.contains("(cluster prod-db, windows)"), "{}", report.text);
    assert!(report.text.contains("(cluster app-linux, linux)"), "{}", report.text);
}
