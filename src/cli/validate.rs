//! `mirrorctl validate [FILES] [-o json]`: parse and check desired-state files; exit 65 if any is
//! invalid. `-o json` prints `{"valid": n, "invalid": n, "files": [...]}`, each file with its
//! cluster and OS when valid, or its errors as fields (file, line, column, key, code, message,
//! hint).

use std::path::PathBuf;

use super::{CliError, Output};

/// Prints the report; returns the exit code.
pub fn run(paths: &[PathBuf], output: Output) -> Result<u8, CliError> {
    let paths = if paths.is_empty() { vec![PathBuf::from("desired-state")] } else { paths.to_vec() };
    let report = crate::spec::validate_paths(&paths);
    match output {
        Output::Text => print!("{}", report.text),
        Output::Json => {
            let files: Vec<serde_json::Value> = report
                .files
                .iter()
                .map(|f| {
                    let errors: Vec<serde_json::Value> = f
                        .errors
                        .iter()
                        .map(|e| {
                            serde_json::json!({
                                "file": e.file, "line": e.line, "column": e.column, "key": e.key,
                                "code": e.kind.code(), "message": e.message, "hint": e.hint,
                            })
                        })
                        .collect();
                    serde_json::json!({
                        "file": f.file,
                        "valid": f.errors.is_empty(),
                        "cluster": f.cluster.as_ref().map(|(c, _)| c),
                        "os": f.cluster.as_ref().map(|(_, os)| os),
                        "errors": errors,
                    })
                })
                .collect();
            let doc = serde_json::json!({"valid": report.valid, "invalid": report.invalid, "files": files});
            println!("{}", serde_json::to_string_pretty(&doc).map_err(CliError::other)?);
        }
    }
    Ok(if report.invalid > 0 { crate::spec::EXIT_INVALID } else { 0 })
}
