//! Which world `plan` and `apply` act on — always named (`--world` or `MIRRORCTL_WORLD`), never
//! implied: the simulated lab world (persisted in `<state>/lab/<cluster>.json`, the daemon's file,
//! created from the desired state on first use, with a note on stderr) or the real one
//! ([`crate::adapters::world::aws_ports`]: EC2, CLUSTERPRO over commands and the REST API, the
//! servers' disks over SSM or locally).

use std::path::Path;
use std::sync::Arc;

use super::{CliError, WorldArgs, WorldKind};
use crate::ports::Ports;
use crate::sim::SimWorld;
use crate::spec::Spec;

/// An opened world.
pub struct OpenWorld {
    /// Its ports.
    pub ports: Ports,
    /// The simulated world, when it is one.
    pub sim: Option<Arc<SimWorld>>,
    /// The file the simulated world persists to, when it is one.
    pub file: Option<std::path::PathBuf>,
}

pub use crate::sim::scenario::scenario_for;

/// The lab world file of `spec`'s cluster: `<state>/lab/<cluster>.json`, the file the daemon's
/// `--world lab` uses too, so `plan`, `apply` and `run` see one world per cluster.
pub fn lab_file(state_dir: &Path, spec: &Spec) -> std::path::PathBuf {
    state_dir.join("lab").join(format!("{}.json", spec.cluster.name))
}

/// Who and where mirrorctl is on AWS for `spec`'s cluster ([`crate::adapters::aws::identity`]):
/// the assumed role's session when the cluster names a role. Or the one line saying why not and
/// what to do.
pub async fn aws_identity(spec: &Spec) -> Result<crate::adapters::aws::identity::Identity, CliError> {
    crate::adapters::aws::identity::whoami(&spec.cluster).await.map_err(|e| CliError::Failed(e.to_string()))
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
            let ports = crate::adapters::world::aws_ports(spec, state_dir, store, None).await.map_err(|e| {
                CliError::Failed(format!("cannot reach cluster {} (--world aws): {e}", spec.cluster.name))
            })?;
            Ok(OpenWorld { ports, sim: None, file: None })
        }
        WorldKind::Lab => {
            if !(args.speed.is_finite() && args.speed > 0.0) {
                return Err(CliError::Usage(format!("--speed must be a positive number, not {}", args.speed)));
            }
            let path = args.world_file.clone().unwrap_or_else(|| lab_file(state_dir, spec));
            let world = if path.exists() {
                SimWorld::open(&path, args.speed)
                    .map_err(|e| CliError::Failed(format!("opening lab world {}: {e}", path.display())))?
            } else {
                // A fresh --state-dir need not exist yet; journals and status documents create theirs.
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir)
                        .map_err(|e| CliError::Failed(format!("creating {}: {e}", dir.display())))?;
                }
                let w = SimWorld::new(scenario_for(spec), 42, args.speed);
                w.persist_to(&path)
                    .map_err(|e| CliError::Failed(format!("creating lab world {}: {e}", path.display())))?;
                // Never silently: a fresh world where one was expected is a wrong state directory.
                eprintln!(
                    "lab world: created {} (a simulated cluster shaped like {})",
                    path.display(),
                    spec.source.display()
                );
                w
            };
            Ok(OpenWorld { ports: world.ports(), sim: Some(world), file: Some(path) })
        }
    }
}
