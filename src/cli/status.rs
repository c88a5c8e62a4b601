//! `mirrorctl status [NAME] [-o json]`: reads the status documents the reconcile loop writes.

use std::path::Path;

use super::{CliError, Output};
use crate::status::StatusDoc;

/// Prints one or all clusters' status.
pub fn run(state_dir: &Path, name: Option<&str>, output: Output) -> Result<u8, CliError> {
    let dir = state_dir.join("status");
    let mut docs = Vec::new();
    if let Some(n) = name {
        let path = dir.join(format!("{n}.json"));
        if !path.exists() {
            return Err(CliError::Usage(format!(
                "no status for cluster {n:?} in {}: has it been applied with this --state-dir?",
                dir.display()
            )));
        }
        docs.push(StatusDoc::read(&path).map_err(|e| CliError::Failed(e.to_string()))?);
    } else {
        let mut paths: Vec<_> = std::fs::read_dir(&dir)
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.extension().is_some_and(|x| x == "json"))
                    .collect()
            })
            .unwrap_or_default();
        paths.sort();
        for p in paths {
            docs.push(StatusDoc::read(&p).map_err(|e| CliError::Failed(e.to_string()))?);
        }
    }
    match output {
        Output::Json => {
            let body = if name.is_some() {
                serde_json::to_string_pretty(&docs[0])
            } else {
                serde_json::to_string_pretty(&docs)
            };
            println!("{}", body.map_err(|e| CliError::Failed(e.to_string()))?);
        }
        Output::Text => {
            if docs.is_empty() {
                println!("no clusters have status in {} yet", dir.display());
            }
            for d in &docs {
                print!("{}", d.render());
            }
        }
    }
    Ok(0)
}
