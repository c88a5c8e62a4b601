//! `mirrorctl status [NAME] [-o json]`: reads the status documents the reconcile loop writes, from
//! the state store in use (`--store`).

use super::{CliError, Output};
use crate::ids::ClusterName;
use crate::ports::Store;

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
