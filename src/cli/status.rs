//! `mirrorctl status [NAME] [-o json]`: reads the status documents the reconcile loop writes, from
//! the state store in use (`--store`).
//!
//! A document says what the last pass saw; whether anyone is still working is the lease's
//! business. When a document says work is under way (progressing, waiting) and nobody holds the
//! cluster's lease ([`crate::ports::Store::holder`]), the operation was left part-way (an `apply`
//! interrupted or killed, a daemon stopped): status says so, with how to resume, in the
//! `interrupted` field.

use super::{CliError, Output};
use crate::ids::ClusterName;
use crate::ports::Store;
use crate::status::{Phase, StatusDoc};

/// Prints one or all clusters' status.
pub async fn run(store: &dyn Store, name: Option<&str>, output: Output) -> Result<u8, CliError> {
    let mut docs = Vec::new();
    if let Some(n) = name {
        let missing = || {
            CliError::Usage(format!(
                "no status for cluster {n:?} in {}: has it been applied with this --state-dir / --store?",
                store.name()
            ))
        };
        let cluster = ClusterName::parse(n).map_err(|_| missing())?;
        let doc = store.read_status(&cluster).await.map_err(|e| CliError::Failed(e.to_string()))?;
        docs.push(doc.ok_or_else(missing)?);
    } else {
        docs = store.list_status().await.map_err(|e| CliError::Failed(e.to_string()))?;
    }
    for d in &mut docs {
        let holder = store.holder(&d.cluster).await.map_err(|e| CliError::Failed(e.to_string()))?;
        mark_interrupted(holder.as_deref(), d);
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
                println!("no clusters have status in {} yet", store.name());
            }
            for d in &docs {
                print!("{}", d.render());
            }
        }
    }
    Ok(0)
}

/// Sets `doc.interrupted` when the document says work is under way and nobody (`holder`) holds
/// the cluster.
pub fn mark_interrupted(holder: Option<&str>, doc: &mut StatusDoc) {
    let busy = matches!(doc.phase, Phase::Progressing | Phase::Waiting);
    if !busy || doc.interrupted.is_some() || holder.is_some() {
        return;
    }
    doc.interrupted = Some(format!(
        "{} is part-way and no mirrorctl process holds the cluster (the last one was stopped or died); \
         the journal holds every step begun. Resume with `mirrorctl apply {}` (same --state-dir, --store and --world) \
         or start the daemon",
        doc.operation.as_deref().unwrap_or("an operation"),
        doc.source.display()
    ));
}
