//! `mirrorctl bench chaos`: parses the campaign's options, runs it ([`crate::harness::chaos`]) and
//! prints its tally.

use std::path::Path;

use super::CliError;
use crate::adapters::store::StoreSpec;
use crate::harness::chaos::{self, ChaosOptions, ChaosProcedure};

/// Options of `mirrorctl bench chaos`.
#[derive(Debug, Clone, clap::Args)]
pub struct ChaosArgs {
    /// Kill points to deliver: trials run until at least this many kills landed in unfinished flows.
    #[arg(long, default_value_t = 200)]
    pub points: usize,
    /// Seed of the kill instants, the kill counts and the trials' worlds.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Lab speed factor of the daemon under test (model seconds per real second).
    #[arg(long, default_value_t = 100.0)]
    pub speed: f64,
    /// Most kills in one flow; each flow draws its number from 1..=this.
    #[arg(long, default_value_t = 4)]
    pub max_kills: usize,
    /// Keep every trial's directory (by default only those with a violation are kept).
    #[arg(long)]
    pub keep: bool,
    /// Which CLUSTERPRO procedure the trials' clusters follow; `both` alternates NEC's
    /// pre/post-processing (`vendor`) and the configuration edit (`reconfigure`) trial by trial.
    #[arg(long, value_enum, default_value_t = ProcedureArg::Both)]
    pub procedure: ProcedureArg,
    /// Daemons run side by side as separate hosts, each with its own local directory; a kill hits
    /// the one holding the cluster's lease and deletes its directory. More than one needs a store
    /// every host reaches (`--store dynamodb:TABLE`).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=4))]
    pub hosts: u8,
    /// Lease period of the daemons on a shared store, in seconds (`mirrorctl run --lease-secs`): a
    /// takeover waits about this long [default: 3].
    #[arg(long)]
    pub lease_secs: Option<u64>,
}

/// `bench chaos --procedure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProcedureArg {
    /// Vendor and reconfigure trials in turn.
    Both,
    /// NEC's `clpbackup` / `clprestore` (the lab cluster runs X 5.1).
    Vendor,
    /// The runbook's configuration edit.
    Reconfigure,
}

impl From<&ChaosArgs> for ChaosOptions {
    fn from(a: &ChaosArgs) -> Self {
        ChaosOptions {
            points: a.points,
            seed: a.seed,
            speed: a.speed,
            max_kills: a.max_kills,
            keep: a.keep,
            procedure: match a.procedure {
                ProcedureArg::Both => ChaosProcedure::Both,
                ProcedureArg::Vendor => ChaosProcedure::Vendor,
                ProcedureArg::Reconfigure => ChaosProcedure::Reconfigure,
            },
            hosts: a.hosts,
            lease_secs: a.lease_secs,
        }
    }
}

/// Runs the campaign and prints its tally; exit 0 when no violation was seen, 1 otherwise.
pub async fn run(state_dir: &Path, args: &ChaosArgs, store: Option<&StoreSpec>) -> Result<u8, CliError> {
    let report = chaos::run(state_dir, &ChaosOptions::from(args), store).await?;
    print!("{}", report.text);
    Ok(u8::from(report.violations > 0))
}
