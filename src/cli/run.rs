//! `mirrorctl run`: the daemon. Reads `--config` (deploy/daemon.toml), lets flags override it,
//! opens the metrics endpoint, and runs the controller until SIGTERM or SIGINT.
//!
//! Shutdown: the first signal stops new passes and lets passes in flight reach their next step
//! boundary, for at most the grace period (exit 0 when they all did, 1 when the grace period ran
//! out — the journal resolves the cut step on restart); a second signal exits at once (exit 130).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::{CliError, WorldKind};
use crate::adapters::store::StoreSpec;
use crate::controller::settings::World;
use crate::controller::{Config, Controller, Settings, serve};
use crate::ports::limit::Budgets;
use crate::world::{aws_worlds, lab_worlds};

/// Flags of `mirrorctl run` (each overrides the settings file).
#[derive(Debug, Clone, Default, clap::Args)]
pub struct RunArgs {
    /// Desired-state directory [default: desired-state].
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Which world to act on (required here or in the settings file: never implied).
    #[arg(long, value_enum)]
    pub world: Option<WorldKind>,
    /// Lab speed factor: model seconds per real second [default: 1].
    #[arg(long)]
    pub speed: Option<f64>,
    /// Seconds between full re-reads of the directory [default: 60].
    #[arg(long)]
    pub resync: Option<u64>,
    /// Address of /metrics, /healthz, /readyz [default: 127.0.0.1:9464].
    #[arg(long)]
    pub listen: Option<SocketAddr>,
    /// Seconds a shutdown waits for steps in flight [default: 30].
    #[arg(long)]
    pub grace: Option<u64>,
    /// Settings file (deploy/daemon.toml).
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Seconds a cluster's lease lasts without a heartbeat (DynamoDB store only) [default: 30].
    #[arg(long)]
    pub lease_secs: Option<u64>,
    /// Lab only: where the simulated worlds live [default: <state-dir>/lab]; daemons standing for
    /// several hosts share one.
    #[arg(long)]
    pub lab_dir: Option<PathBuf>,
}

/// The settings in force: file, then flags, then defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct Effective {
    /// Desired-state directory.
    pub dir: PathBuf,
    /// State directory.
    pub state_dir: PathBuf,
    /// World.
    pub world: WorldKind,
    /// Lab speed.
    pub speed: f64,
    /// Resync interval.
    pub resync: Duration,
    /// Debounce.
    pub debounce: Duration,
    /// Listen address.
    pub listen: SocketAddr,
    /// Grace period.
    pub grace: Duration,
    /// Where journals, status documents and leases live.
    pub store: StoreSpec,
    /// How long a lease lasts without a heartbeat (DynamoDB store).
    pub lease: Duration,
    /// Where the lab's worlds live.
    pub lab_dir: PathBuf,
    /// The `[notify]` of clusters whose files have none (settings file only).
    pub notify: Option<crate::spec::NotifySpec>,
}

/// Merges the settings file and the flags (`state_dir`: the global `--state-dir`, if given).
pub fn effective(args: &RunArgs, state_dir: Option<&Path>, store: Option<StoreSpec>) -> Result<Effective, CliError> {
    let file = match &args.config {
        Some(path) => Settings::load(path).map_err(|e| CliError::InvalidSpec(e.to_string()))?,
        None => Settings::default(),
    };
    let world = args.world.or(file.world.map(|w| match w {
        World::Aws => WorldKind::Aws,
        World::Lab => WorldKind::Lab,
    }));
    let state_dir = state_dir.map(Path::to_owned).or(file.state_dir).unwrap_or_else(|| PathBuf::from("state"));
    let lease_secs = args.lease_secs.or(file.lease_secs);
    let lab_dir = args.lab_dir.clone().or(file.lab_dir);
    let eff = Effective {
        dir: args.dir.clone().or(file.dir).unwrap_or_else(|| PathBuf::from("desired-state")),
        lab_dir: lab_dir.clone().unwrap_or_else(|| state_dir.join("lab")),
        state_dir,
        world: world.ok_or_else(|| {
            CliError::Usage(
                "say which world the daemon acts on: --world aws (the real clusters) or --world lab (simulated \
                 ones under the state directory), or `world = \"aws\"` in the settings file (--config)"
                    .into(),
            )
        })?,
        speed: args.speed.or(file.speed).unwrap_or(1.0),
        resync: Duration::from_secs(args.resync.or(file.resync_secs).unwrap_or(60)),
        debounce: Duration::from_millis(file.debounce_ms.unwrap_or(100)),
        listen: args.listen.or(file.listen).unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 9464))),
        grace: Duration::from_secs(args.grace.or(file.grace_secs).unwrap_or(30)),
        store: match store {
            Some(s) => s,
            None => file
                .store
                .as_deref()
                .map(StoreSpec::parse)
                .transpose()
                .map_err(CliError::Usage)?
                .unwrap_or(StoreSpec::Dir),
        },
        lease: lease_secs.map_or(crate::adapters::store::dynamodb::LEASE_DURATION, Duration::from_secs),
        notify: file.notify,
    };
    if lease_secs.is_some() && eff.store == StoreSpec::Dir {
        return Err(CliError::Usage(
            "--lease-secs (lease_secs) applies to the DynamoDB store only: the directory store's lock lasts as long \
             as its process and needs no heartbeat; drop the setting or use --store dynamodb:TABLE"
                .into(),
        ));
    }
    if lease_secs == Some(0) {
        return Err(CliError::Usage("--lease-secs must be at least 1 second".into()));
    }
    if lab_dir.is_some() && eff.world != WorldKind::Lab {
        return Err(CliError::Usage(
            "--lab-dir (lab_dir) names where simulated worlds live and applies to --world lab only".into(),
        ));
    }
    if !(eff.speed.is_finite() && eff.speed > 0.0) {
        return Err(CliError::Usage(format!("--speed must be a positive number, not {}", eff.speed)));
    }
    if eff.resync.is_zero() {
        return Err(CliError::Usage("--resync must be at least 1 second".into()));
    }
    Ok(eff)
}

/// Runs the daemon.
pub async fn run(args: &RunArgs, state_dir: Option<&Path>, store: Option<StoreSpec>) -> Result<u8, CliError> {
    // First, so that a SIGTERM during start-up (opening a remote store can take a while) is a
    // request to stop, not the default action that kills the process.
    let signals = Arc::new(super::signals::Signals::new()?);
    let eff = effective(args, state_dir, store)?;
    // Fail fast: a daemon that cannot write its journal must not sit behind a green /healthz.
    super::check_state_dir(&eff.state_dir, matches!(eff.store, StoreSpec::Dir))?;

    if !eff.dir.is_dir() {
        tracing::warn!(dir = %eff.dir.display(), "the desired-state directory does not exist (yet); waiting for it");
    }
    // One daemon per state directory, for its whole life.
    let _daemon_lock = crate::journal::local::WriterLock::daemon(&eff.state_dir).map_err(CliError::other)?;
    let listener = tokio::net::TcpListener::bind(eff.listen)
        .await
        .map_err(|e| CliError::caused(format!("cannot listen on {}", eff.listen), e))?;
    let store = eff.store.open_with_lease(&eff.state_dir, eff.lease).await;
    let worlds = match eff.world {
        WorldKind::Aws => aws_worlds(&eff.state_dir, Arc::clone(&store)),
        WorldKind::Lab => lab_worlds(&eff.lab_dir, eff.speed),
    };
    let mut cfg = Config::new(eff.dir.clone(), eff.state_dir.clone(), worlds, crate::adapters::notify::aws_sinks());
    cfg.store = store;
    cfg.resync = eff.resync;
    // The resync may spend half the client's Describe budget (per model second in the lab).
    let speed = if eff.world == WorldKind::Lab { eff.speed } else { 1.0 };
    cfg.resync_look_rate = Some(Budgets::default().scaled(speed).describe.refill_per_s() / 2.0);
    cfg.debounce = eff.debounce;
    cfg.default_notify = eff.notify;
    if eff.world == WorldKind::Lab && eff.store == StoreSpec::Dir {
        cfg.projector = Some(crate::world::lab_projector(&eff.lab_dir, &eff.state_dir, Arc::clone(&cfg.store)));
    }
    let controller = Controller::new(cfg);
    let shutdown = CancellationToken::new();
    let server_stop = CancellationToken::new();
    let server = tokio::spawn(serve(listener, controller.metrics(), server_stop.clone()));
    let world = match eff.world {
        WorldKind::Aws => "aws",
        WorldKind::Lab => "lab",
    };
    tracing::info!(
        version = env!("CARGO_PKG_VERSION"),
        world,
        dir = %eff.dir.display(),
        state = %eff.state_dir.display(),
        store = %eff.store,
        listen = %eff.listen,
        "mirrorctl daemon started"
    );
    let mut daemon = tokio::spawn(controller.run(shutdown.clone()));
    let code = tokio::select! {
        _ = &mut daemon => 0,
        () = signals.next() => {
            tracing::info!(grace_s = eff.grace.as_secs(), "signal received: stopping at the next step boundary (a second signal exits at once)");
            shutdown.cancel();
            tokio::select! {
                r = tokio::time::timeout(eff.grace, &mut daemon) => if r.is_ok() {
                    tracing::info!("stopped cleanly");
                    0
                } else {
                    tracing::warn!("grace period over with steps in flight; the journal resolves them on restart");
                    1
                },
                () = signals.next() => {
                    tracing::warn!("second signal: exiting now; the journal resolves steps in flight on restart");
                    super::EXIT_ABORTED
                }
            }
        }
    };
    daemon.abort();
    server_stop.cancel();
    let _ = server.await;
    Ok(code)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lab_args() -> RunArgs {
        RunArgs { world: Some(WorldKind::Lab), ..RunArgs::default() }
    }

    #[test]
    fn the_lease_period_and_the_lab_directory_are_taken_and_misplaced_ones_refused() {
        let dynamo = StoreSpec::Dynamo { table: "t-1".into() };
        let mut args = lab_args();
        args.lease_secs = Some(3);
        args.lab_dir = Some(PathBuf::from("shared-lab"));
        let eff = effective(&args, Some(Path::new("host-a")), Some(dynamo.clone())).expect("valid");
        assert_eq!(eff.lease, Duration::from_secs(3));
        assert_eq!(eff.lab_dir, PathBuf::from("shared-lab"));
        let eff = effective(&lab_args(), Some(Path::new("host-a")), Some(dynamo.clone())).expect("defaults");
        assert_eq!(eff.lease, crate::adapters::store::dynamodb::LEASE_DURATION);
        assert_eq!(eff.lab_dir, PathBuf::from("host-a/lab"), "the lab under the state directory, as before");

        // A lease with the directory store would be a setting read and ignored: refused.
        let mut args = lab_args();
        args.lease_secs = Some(3);
        let err = effective(&args, None, None).expect_err("dir store has no lease period").to_string();
        assert!(err.contains("DynamoDB store only"), "{err}");
        args.lease_secs = Some(0);
        assert!(effective(&args, None, Some(dynamo.clone())).is_err(), "a zero lease");
        let args = RunArgs { world: Some(WorldKind::Aws), lab_dir: Some(PathBuf::from("x")), ..RunArgs::default() };
        let err = effective(&args, None, Some(dynamo)).expect_err("lab dir on aws").to_string();
        assert!(err.contains("--world lab only"), "{err}");
    }
}
