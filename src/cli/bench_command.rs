//! `mirrorctl bench`: runs the figures ([`crate::harness::bench`]) and prints each part's table as
//! it is measured, or with `-o json` one document at the end. Exit 0 whether or not targets are
//! met; only a failed run is an error.

use std::path::Path;

use super::{CliError, Output};
use crate::harness::bench::{Bench, BenchOptions, Part};

/// Runs `mirrorctl bench`: `binary` is the `mirrorctl` whose footprint is measured (default: this
/// executable), `only` the parts to run (empty: all).
pub fn run(
    state_dir: &Path,
    quick: bool,
    seed: u64,
    output: Output,
    binary: Option<&Path>,
    only: &[Part],
) -> Result<u8, CliError> {
    let opts = BenchOptions { quick, seed, binary: binary.map(Path::to_path_buf), only: only.to_vec() };
    let bench = Bench::new(state_dir, opts)?;
    let sim = bench.simulated()?;
    if output == Output::Text {
        print!("{}", bench.simulated_text(&sim));
    }
    let footprint = bench.footprint()?;
    match output {
        Output::Text => {
            if let Some(f) = &footprint {
                print!("{}", Bench::footprint_text(f));
            }
        }
        Output::Json => {
            let doc = bench.json(&sim, footprint.as_ref());
            let text = serde_json::to_string_pretty(&doc).map_err(|e| CliError::Caused {
                context: "rendering the bench's report".into(),
                source: Box::new(e),
            })?;
            println!("{text}");
        }
    }
    Ok(0)
}
