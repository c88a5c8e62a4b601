//! `mirrorctl status [NAME] [-o json]`: reads the status documents the reconcile loop writes.
//!
//! A document says what the last pass saw; whether anyone is still working is the writer lock's
//! business. When a document says work is under way (progressing, waiting) and no process holds
//! the cluster's writer lock ([`crate::journal::WriterLock::holder`]), the operation was left
//! part-way (an `apply` interrupted or killed, a daemon stopped): status says so, with how to
//! resume, in the `interrupted` field.

use std::path::Path;

use super::{CliError, Output};
use crate::status::{Phase, StatusDoc};

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
    for d in &mut docs {
        mark_interrupted(state_dir, d);
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

/// Sets `doc.interrupted` when the document says work is under way and nobody holds the cluster.
pub fn mark_interrupted(state_dir: &Path, doc: &mut StatusDoc) {
    let busy = matches!(doc.phase, Phase::Progressing | Phase::Waiting);
    if !busy || doc.interrupted.is_some() || crate::journal::WriterLock::holder(state_dir, &doc.cluster).is_some() {
        return;
    }
    doc.interrupted = Some(format!(
        "{} is part-way and no mirrorctl process holds the cluster (the last one was stopped or died); \
         the journal holds every step begun. Resume with `mirrorctl apply {}` (same --state-dir and --world) \
         or start the daemon",
        doc.operation.as_deref().unwrap_or("an operation"),
        doc.source.display()
    ));
}
