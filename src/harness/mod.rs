//! The harnesses that drive whole runs of mirrorctl for people and for CI: `lab` (the runbook's
//! story on a simulated cluster), `bench` (the performance figures) and `chaos` (the kill -9
//! campaign against the real daemon).
//!
//! Why this module exists: these are programs of their own on top of the library — they build
//! worlds, run reconciles or start daemons, and judge the outcome — and the CLI should only parse
//! their options and print what they return. Keeping them here, below `cli`, lets a test or another
//! front end call them with plain option structs and get typed errors, and keeps `cli/` to
//! argument parsing and printing.

pub mod bench;
pub mod chaos;
pub mod lab;

use std::path::{Path, PathBuf};

/// Why a harness run could not be carried out (a run that ends with a bad verdict is not an error:
/// each harness reports its verdicts in what it returns).
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// An option is out of range or contradicts another; the text names it and what to do.
    #[error("{0}")]
    Usage(String),
    /// The run failed; the text says what was being done and why.
    #[error("{0}")]
    Failed(String),
    /// The run failed while doing `what`; the cause follows in the source chain.
    #[error("{what}")]
    Caused {
        /// What was being done.
        what: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

impl HarnessError {
    /// A failure of `what`, keeping `source` as its cause.
    pub fn caused(what: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        HarnessError::Caused { what: what.into(), source: Box::new(source) }
    }
}

/// A fresh directory `base/name`: whatever an earlier run left there is removed first.
pub fn fresh_dir(base: &Path, name: &str) -> Result<PathBuf, HarnessError> {
    let dir = base.join(name);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).map_err(|e| HarnessError::caused(format!("clearing {}", dir.display()), e))?;
    }
    std::fs::create_dir_all(&dir).map_err(|e| HarnessError::caused(format!("creating {}", dir.display()), e))?;
    Ok(dir)
}
