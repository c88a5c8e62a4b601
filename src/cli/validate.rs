//! `mirrorctl validate [FILES]`: parse and check desired-state files; exit 65 if any is invalid.

use std::path::PathBuf;

/// Prints the report; returns the exit code.
pub fn run(paths: &[PathBuf]) -> u8 {
    let paths = if paths.is_empty() { vec![PathBuf::from("desired-state")] } else { paths.to_vec() };
    let report = crate::spec::validate_paths(&paths);
    print!("{}", report.text);
    if report.invalid > 0 { crate::spec::EXIT_INVALID } else { 0 }
}
