//! `mirrorctl status [NAME] [-o json] [-w]`: reads the status documents the reconcile loop writes,
//! from the state store in use (`--store`).
//!
//! `-w` watches: it reads the documents again every half second and prints them when they changed
//! (the `updated` time alone is no change), until none says work is under way — the operation is
//! done, blocked, failed or interrupted — or Ctrl-C. With `-o json` each change is one line.
//!
//! A document says what the last pass saw; whether anyone is still working is the lease's
//! business. When a document says work is under way (progressing, waiting) and nobody holds the
//! cluster's lease ([`crate::ports::store::Store::holder`]), the operation was left part-way (an `apply`
//! interrupted or killed, a daemon stopped): status says so, with how to resume, in the
//! `interrupted` field.

use std::fmt::Write as _;

use super::{CliError, Output};
use crate::ids::ClusterName;
use crate::ports::store::Store;
use crate::status::{Phase, StatusDoc};

/// Prints one or all clusters' status.
pub async fn run(store: &dyn Store, name: Option<&str>, output: Output) -> Result<u8, CliError> {
    let docs = read(store, name).await?;
    print!("{}", render(&docs, name.is_some(), output, &store.name(), true)?);
    Ok(0)
}

/// How often `status -w` reads the documents again.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_millis(500);

/// `status -w`: prints the documents on every change until no operation is under way. A named
/// cluster without a document yet is waited for (an `apply` started a moment later writes it).
pub async fn watch(store: &dyn Store, name: Option<&str>, output: Output) -> Result<u8, CliError> {
    let mut last: Option<String> = None;
    loop {
        let docs = match read(store, name).await {
            Ok(d) => d,
            Err(CliError::Usage(_)) if name.is_some() => Vec::new(),
            Err(e) => return Err(e),
        };
        if !docs.is_empty() {
            // Compare without the write time: a resync rewriting the same facts is no change.
            let mut key = docs.clone();
            for d in &mut key {
                d.updated = jiff::Timestamp::UNIX_EPOCH;
            }
            let key = serde_json::to_string(&key).map_err(CliError::other)?;
            if last.as_ref() != Some(&key) {
                print!("{}", render(&docs, name.is_some(), output, &store.name(), false)?);
                if output == Output::Text {
                    println!();
                }
                last = Some(key);
            }
            let busy =
                docs.iter().any(|d| matches!(d.phase, Phase::Progressing | Phase::Waiting) && d.interrupted.is_none());
            if !busy {
                return Ok(0);
            }
        }
        tokio::time::sleep(WATCH_EVERY).await;
    }
}

/// The documents of `name` (or all), each marked interrupted when nobody holds its cluster.
async fn read(store: &dyn Store, name: Option<&str>) -> Result<Vec<StatusDoc>, CliError> {
    let mut docs = Vec::new();
    if let Some(n) = name {
        let missing = || {
            CliError::Usage(format!(
                "no status for cluster {n:?} in {}: has it been applied with this --state-dir / --store?",
                store.name()
            ))
        };
        let cluster = ClusterName::parse(n).map_err(|_| missing())?;
        let doc = store.read_status(&cluster).await.map_err(CliError::other)?;
        docs.push(doc.ok_or_else(missing)?);
    } else {
        docs = store.list_status().await.map_err(CliError::other)?;
    }
    for d in &mut docs {
        let holder = store.holder(&d.cluster).await.map_err(CliError::other)?;
        mark_interrupted(holder.as_deref(), d);
    }
    Ok(docs)
}

/// The text or JSON of `docs` (one document when a cluster was named); JSON `pretty` or on one line.
fn render(docs: &[StatusDoc], one: bool, output: Output, store: &str, pretty: bool) -> Result<String, CliError> {
    let mut out = String::new();
    match output {
        Output::Json => {
            let fail = CliError::other::<serde_json::Error>;
            let value = if one { serde_json::to_value(&docs[0]) } else { serde_json::to_value(docs) }.map_err(fail)?;
            let body = if pretty { serde_json::to_string_pretty(&value) } else { serde_json::to_string(&value) };
            out.push_str(&body.map_err(fail)?);
            out.push('\n');
        }
        Output::Text => {
            if docs.is_empty() {
                let _ = writeln!(out, "no clusters have status in {store} yet");
            }
            for d in docs {
                out.push_str(&d.render());
            }
        }
    }
    Ok(out)
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
