//! Which world `plan` and `apply` act on — always named (`--world` or `MIRRORCTL_WORLD`), never
//! implied: the simulated lab world (persisted in `<state>/lab/<cluster>.json`, the daemon's file,
//! created from the desired state on first use, with a note on stderr) or the real one
//! ([`crate::world::aws_ports`]: EC2, CLUSTERPRO over commands and the REST API, the
//! servers' disks over SSM or locally). The worlds are opened by [`crate::world`]; this file turns
//! the command line into a choice between them.

use std::path::Path;

use super::{CliError, WorldArgs, WorldKind};
use crate::spec::Spec;

pub use crate::sim::scenario::scenario_for;
pub use crate::world::{OpenWorld, lab_file};

/// Who and where mirrorctl is on AWS for `spec`'s cluster ([`crate::adapters::aws::identity`]):
/// the assumed role's session when the cluster names a role. Or the one line saying why not and
/// what to do.
pub async fn aws_identity(spec: &Spec) -> Result<crate::adapters::aws::identity::Identity, CliError> {
    crate::adapters::aws::identity::whoami(&spec.cluster).await.map_err(CliError::other)
}

/// Opens the world the arguments name (on AWS, the command adapter keeps its md templates in
/// `store`).
pub async fn open(
    args: &WorldArgs,
    state_dir: &Path,
    store: std::sync::Arc<dyn crate::ports::store::Store>,
    spec: &Spec,
) -> Result<OpenWorld, CliError> {
    match args.kind()? {
        WorldKind::Aws => {
            let ports = crate::world::aws_ports(spec, state_dir, store, None).await.map_err(|e| CliError::Caused {
                context: format!("cannot reach cluster {} (--world aws)", spec.cluster.name),
                source: Box::new(e),
            })?;
            Ok(OpenWorld { ports, sim: None, file: None })
        }
        WorldKind::Lab => {
            if !(args.speed.is_finite() && args.speed > 0.0) {
                return Err(CliError::Usage(format!("--speed must be a positive number, not {}", args.speed)));
            }
            let path = args.world_file.clone().unwrap_or_else(|| lab_file(state_dir, spec));
            let (world, created) = crate::world::open_lab(&path, spec, args.speed).map_err(CliError::other)?;
            if created {
                // Never silently: a fresh world where one was expected is a wrong state directory.
                eprintln!(
                    "lab world: created {} (a simulated cluster shaped like {})",
                    path.display(),
                    spec.source.display()
                );
            }
            Ok(OpenWorld { ports: world.ports(), sim: Some(world), file: Some(path) })
        }
    }
}
