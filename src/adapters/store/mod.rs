//! The implementations of the state store port ([`crate::ports::store`]).
//!
//! Why this module exists: the reconcile loop only knows the [`Store`] trait; this is where the
//! two places state can live are written: the local directory ([`LocalStore`], the default) and a
//! DynamoDB table shared by several hosts ([`DynamoStore`]). [`StoreSpec`] is how an operator names
//! one (`--store dir` or `--store dynamodb:TABLE`).

pub mod dynamodb;

use std::path::Path;
use std::sync::Arc;

pub use crate::journal::local::LocalStore;
pub use dynamodb::DynamoStore;

use crate::ports::store::Store;

/// Which store, as named on the command line or in `daemon.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreSpec {
    /// The state directory (`dir`).
    Dir,
    /// A DynamoDB table (`dynamodb:TABLE`).
    Dynamo {
        /// The table.
        table: String,
    },
}

impl StoreSpec {
    /// Parses `dir` or `dynamodb:TABLE`; the error says what is accepted.
    pub fn parse(s: &str) -> Result<StoreSpec, String> {
        if s == "dir" {
            return Ok(StoreSpec::Dir);
        }
        match s.strip_prefix("dynamodb:") {
            Some(table) if valid_table(table) => Ok(StoreSpec::Dynamo { table: table.to_owned() }),
            Some(table) => Err(format!(
                "store {s:?}: {table:?} is not a DynamoDB table name (3 to 255 characters of a-z, A-Z, 0-9, '_', '-', '.')"
            )),
            None => Err(format!("store {s:?}: expected `dir` (the state directory) or `dynamodb:TABLE`")),
        }
    }

    /// Opens the store: the state directory, or the table with the AWS SDK's usual configuration
    /// (region and endpoint from the environment or profile; `AWS_ENDPOINT_URL` reaches an
    /// emulator).
    pub async fn open(&self, state_dir: &Path) -> Arc<dyn Store> {
        self.open_with_lease(state_dir, dynamodb::LEASE_DURATION).await
    }

    /// [`StoreSpec::open`] whose DynamoDB leases last `lease` without a heartbeat (the daemon's
    /// `lease_secs`; the directory store's lock has no duration).
    pub async fn open_with_lease(&self, state_dir: &Path, lease: std::time::Duration) -> Arc<dyn Store> {
        match self {
            StoreSpec::Dir => Arc::new(LocalStore::new(state_dir)),
            StoreSpec::Dynamo { table } => Arc::new(DynamoStore::connect(table).await.with_lease_duration(lease)),
        }
    }
}

impl std::fmt::Display for StoreSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoreSpec::Dir => f.write_str("dir"),
            StoreSpec::Dynamo { table } => write!(f, "dynamodb:{table}"),
        }
    }
}

fn valid_table(t: &str) -> bool {
    (3..=255).contains(&t.len()) && t.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_names_parse_and_bad_ones_say_what_is_accepted() {
        assert_eq!(StoreSpec::parse("dir"), Ok(StoreSpec::Dir));
        assert_eq!(
            StoreSpec::parse("dynamodb:mirrorctl-state"),
            Ok(StoreSpec::Dynamo { table: "mirrorctl-state".into() })
        );
        assert!(StoreSpec::parse("dynamodb:a b").unwrap_err().contains("not a DynamoDB table name"));
        assert!(StoreSpec::parse("s3:x").unwrap_err().contains("expected `dir`"));
        assert_eq!(StoreSpec::parse("dynamodb:t-1").unwrap().to_string(), "dynamodb:t-1");
    }
}
