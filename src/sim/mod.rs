//! The simulated world: a strict EC2, a CLUSTERPRO cluster, the servers' disks and a data oracle,
//! all in model time.
//!
//! Why this module exists: it is mirrorctl's lab mode and the test bed for everything the moto
//! emulator does not enforce (DESIGN.md §5). It refuses what real EC2 refuses, with the real error
//! codes; moves through states with a seeded, scalable latency model; ties instance stop/start to
//! cluster membership and mirror colours; models Windows disk letters and signature collisions;
//! and tracks the data itself so tests can prove a backup captured the quiesce point and a restore
//! brought both sides back to the snapshot.
//!
//! The pieces, one concern each:
//! - [`world`]: the one serializable [`World`] struct and the time engine (`advance`).
//! - [`ec2`]: [`SimCloud`], the strict EC2 port.
//! - [`clusterpro`]: [`SimCluster`], the group, its resources, each md's configuration and mirror
//!   colours.
//! - `vendor`: NEC's backup/restore pre- and post-processing (`clpbackup`, `clprestore`).
//! - [`node`]: [`SimNode`], the OS view of attached disks (letters, online/offline, mounts).
//! - [`oracle`]: data content versions, accidents, quiesce points, corruptions.
//! - [`verdict`]: the oracle's verdicts on a backup and a restore, for the lab, chaos and tests.
//! - [`clock`]: [`SimClock`], model time scaled from tokio time.
//! - [`latency`]: [`LatencyModel`] medians and seeded jitter.
//! - [`throttle`]: EC2 request token buckets (per world, or one account shared by many).
//! - [`fault`]: [`Fault`]s tests and the lab inject.
//! - [`scenario`]: the starting clusters ([`Scenario::windows_runbook`], [`Scenario::linux`],
//!   [`Scenario::two_mirrors`]).
//! - [`admin`]: the test/lab API on [`SimWorld`] (inventory, faults, oracle report, timeline).
//! - `persist`: atomic save and load of the world file.
//!
//! Usage: `let world = SimWorld::new(Scenario::windows_runbook(), seed, speed); let ports =
//! world.ports();` — then run mirrorctl against `ports`, and assert with `world.oracle_report()`.
//! Every port call first settles what is due, then costs its API round trip in model time.

pub mod admin;
pub mod clock;
pub mod clusterpro;
pub mod ec2;
pub mod fault;
pub mod latency;
pub mod node;
pub mod oracle;
mod persist;
pub mod scenario;
pub mod throttle;
mod vendor;
pub mod verdict;
pub mod world;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use jiff::Timestamp;

pub use admin::Inventory;
pub use clock::SimClock;
pub use clusterpro::SimCluster;
pub use ec2::{FSR_DRY_RUN, SimCloud};
pub use fault::Fault;
pub use latency::LatencyModel;
pub use node::SimNode;
pub use oracle::{Content, OracleReport, QuiescePoint};
pub use scenario::{MirrorSetup, Scenario, ServerSetup};
pub use throttle::{AccountThrottle, ThrottleBudgets, ThrottleTally};
pub use world::World;

use crate::ports::{Clock, ErrorClass, PortError, PortResult, Ports};
use throttle::Bucket;

/// Every operation name used in call counters and [`Fault`] rules.
pub const OPERATIONS: &[&str] = &[
    "ec2:DescribeVolumes",
    "ec2:DescribeSnapshots",
    "ec2:DescribeInstances",
    "ec2:DescribeInstanceAttribute",
    "ec2:DescribeVolumeStatus",
    "ec2:CreateVolume",
    "ec2:AttachVolume",
    "ec2:DetachVolume",
    "ec2:CreateSnapshot",
    "ec2:DeleteSnapshot",
    "ec2:StartInstances",
    "ec2:CreateTags",
    "ec2:DescribeFastSnapshotRestores",
    "ec2:EnableFastSnapshotRestores",
    "ec2:DisableFastSnapshotRestores",
    "ec2:FastSnapshotRestores(DryRun)",
    "clp:status",
    "clp:start_group",
    "clp:stop_group",
    "clp:move_group",
    "clp:start_resource",
    "clp:stop_resource",
    "clp:shutdown_server",
    "clp:leave_then_start",
    "clp:mirror_status",
    "clp:config",
    "clp:apply_config",
    "node:disks",
    "node:set_offline",
    "node:set_online",
    "node:set_letter",
];

/// Errors of the simulator's own API (not port errors).
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The world file could not be read or written.
    #[error("cannot read or write the world file {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The world file is not a world.
    #[error("the world file {path} is not a valid simulated world")]
    Format {
        /// The file.
        path: PathBuf,
        /// The JSON error.
        #[source]
        source: serde_json::Error,
    },
    /// An admin request named something the world does not have.
    #[error("{0}")]
    Invalid(String),
}

/// The shared handle on one simulated world (one AWS account with one cluster, or one cluster of
/// an account shared with other worlds: [`SimWorld::fork_in`]).
///
/// The world sits behind a `std::sync::Mutex` that is never held across an await: port calls lock,
/// settle, act, unlock, then sleep in model time. When a file is set ([`SimWorld::persist_to`],
/// [`SimWorld::open`]) every call writes the world to it atomically, and every lock first reloads
/// the world from the file when another process wrote it since this one last read or wrote it
/// (two daemons standing for two hosts share the simulated AWS: each acts on a cluster only while
/// it holds the cluster's lease, and must see what the other did before).
pub struct SimWorld {
    world: Mutex<World>,
    clock: SimClock,
    path: Mutex<Option<PathBuf>>,
    /// The world file as this process last read or wrote it.
    seen: Mutex<Option<persist::Stamp>>,
    /// The account's EC2 buckets when shared with other worlds; `None`: the world's own.
    account: Option<Arc<AccountThrottle>>,
}

impl std::fmt::Debug for SimWorld {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimWorld").field("clock", &self.clock).finish_non_exhaustive()
    }
}

impl SimWorld {
    /// A new world from `scenario`, with ids and jitter from `seed`, running `speed` times faster
    /// than tokio time (model time starts at `scenario.epoch`).
    #[allow(clippy::similar_names)] // seed and speed are the documented parameter names
    pub fn new(scenario: Scenario, seed: u64, speed: f64) -> Arc<Self> {
        let clock = SimClock::new(scenario.epoch, speed);
        let world = World::from_scenario(scenario, seed);
        Arc::new(SimWorld {
            world: Mutex::new(world),
            clock,
            path: Mutex::new(None),
            seen: Mutex::new(None),
            account: None,
        })
    }

    /// Loads a persisted world and keeps persisting to the same file. Model time resumes at the
    /// saved model time plus the wall time elapsed since the save, at the speed of the process
    /// that saved it (a world left at ×1 for an hour has moved on one hour, whatever `speed` the
    /// next process uses): whatever was in progress has moved on while no process was running.
    pub fn open(path: impl AsRef<Path>, speed: f64) -> Result<Arc<Self>, SimError> {
        let path = path.as_ref();
        let seen = persist::stamp(path);
        let world = persist::load(path)?;
        let saved_speed =
            if world.saved_speed.is_finite() && world.saved_speed > 0.0 { world.saved_speed } else { 1.0 };
        let away = clock::secs(world.saved_wall, Timestamp::now()).max(0.0) * saved_speed;
        let clock = SimClock::new(clock::plus(world.saved_model, away), speed);
        Ok(Arc::new(SimWorld {
            world: Mutex::new(world),
            clock,
            path: Mutex::new(Some(path.to_owned())),
            seen: Mutex::new(seen),
            account: None,
        }))
    }

    /// Loads a persisted world as a throw-away copy: the state and model time [`SimWorld::open`]
    /// would give, but nothing is ever written back to `path`. `mirrorctl plan` runs the planner
    /// and executor against such a copy to show the whole sequence of an operation before any
    /// step of it runs on the real (simulated) world.
    pub fn open_copy(path: impl AsRef<Path>, speed: f64) -> Result<Arc<Self>, SimError> {
        let world = SimWorld::open(path, speed)?;
        *world.path.lock().expect("sim world path mutex poisoned") = None;
        Ok(world)
    }

    /// Another cluster in the state this world is in now, on the same clock, whose EC2 calls draw
    /// from `account`'s buckets (shared with every world forked into it) instead of its own. The
    /// copy is not persisted. This is how a benchmark puts many clusters in one AWS account
    /// without preparing each from scratch; the fork's ids, timeline and call counters start as
    /// copies of this world's and then go their own way.
    pub fn fork_in(&self, account: Arc<AccountThrottle>) -> Arc<SimWorld> {
        let copy = {
            let mut w = self.lock();
            w.advance(self.clock.now());
            w.clone()
        };
        Arc::new(SimWorld {
            world: Mutex::new(copy),
            clock: self.clock,
            path: Mutex::new(None),
            seen: Mutex::new(None),
            account: Some(account),
        })
    }

    /// Opens the world persisted at `path`, or creates it from `scenario` and `seed` when the file
    /// does not exist yet (what `mirrorctl run --world lab` needs).
    #[allow(clippy::similar_names)] // seed and speed are the documented parameter names
    pub fn open_or_create(
        path: impl AsRef<Path>,
        scenario: Scenario,
        seed: u64,
        speed: f64,
    ) -> Result<Arc<Self>, SimError> {
        let path = path.as_ref();
        if path.exists() {
            return SimWorld::open(path, speed);
        }
        let world = SimWorld::new(scenario, seed, speed);
        world.persist_to(path)?;
        Ok(world)
    }

    /// Persists the world to `path` now and after every change from here on.
    pub fn persist_to(&self, path: impl AsRef<Path>) -> Result<(), SimError> {
        let mut w = self.lock();
        let now = self.clock.now();
        w.advance(now);
        let mut p = self.path.lock().expect("sim world path mutex poisoned");
        *p = Some(path.as_ref().to_owned());
        w.saved_model = now;
        w.saved_wall = Timestamp::now();
        w.saved_speed = self.clock.speed();
        let written = persist::save(path.as_ref(), &w)?;
        *self.seen.lock().expect("sim world stamp mutex poisoned") = Some(written);
        Ok(())
    }

    /// The four ports backed by this world.
    pub fn ports(self: &Arc<Self>) -> Ports {
        Ports {
            cloud: Arc::new(SimCloud::new(Arc::clone(self))),
            cluster: Arc::new(SimCluster::new(Arc::clone(self))),
            node: Arc::new(SimNode::new(Arc::clone(self))),
            clock: Arc::new(self.clock),
        }
    }

    /// The world's clock.
    pub fn clock(&self) -> SimClock {
        self.clock
    }

    /// Model time now.
    pub fn now(&self) -> Timestamp {
        self.clock.now()
    }

    fn lock(&self) -> MutexGuard<'_, World> {
        let mut w = self.world.lock().expect("sim world mutex poisoned");
        self.reload_if_changed(&mut w);
        w
    }

    /// Replaces `w` with the world file's content when another process wrote the file since this
    /// one last read or wrote it. The clock is kept: processes that opened the file run at the
    /// saved speed from the same wall-clock anchor, so their model times agree (two that each
    /// *created* the world at once differ by the gap between their starts × the speed; both
    /// create the same world from the same scenario and seed, and the first save wins).
    fn reload_if_changed(&self, w: &mut World) {
        let Some(path) = self.path.lock().expect("sim world path mutex poisoned").clone() else { return };
        let mut seen = self.seen.lock().expect("sim world stamp mutex poisoned");
        let now = persist::stamp(&path);
        if now.is_none() || now == *seen {
            return;
        }
        match persist::load(&path) {
            Ok(fresh) => {
                *w = fresh;
                *seen = now;
            }
            // A file being replaced cannot be half-read (rename is atomic); anything else is
            // said once per change and the copy in memory kept.
            Err(e) => {
                *seen = now;
                tracing::warn!(target: "mirrorctl::sim", error = %e, "could not reload the simulated world written by another process");
            }
        }
    }

    /// Locks the world, settles what is due, runs `f`, persists, unlocks.
    fn with<R>(&self, f: impl FnOnce(&mut World, Timestamp) -> R) -> R {
        let mut w = self.lock();
        let now = self.clock.now();
        w.advance(now);
        let r = f(&mut w, now);
        self.save(&mut w, now);
        r
    }

    fn save(&self, w: &mut World, now: Timestamp) {
        let path = self.path.lock().expect("sim world path mutex poisoned").clone();
        if let Some(path) = path {
            w.saved_model = now;
            w.saved_wall = Timestamp::now();
            w.saved_speed = self.clock.speed();
            match persist::save(&path, w) {
                Ok(written) => *self.seen.lock().expect("sim world stamp mutex poisoned") = Some(written),
                Err(e) => {
                    tracing::error!(target: "mirrorctl::sim", error = %e, "could not persist the simulated world");
                }
            }
        }
    }

    /// One port call: counted, throttled (EC2), subject to injected faults, then `f`.
    fn call<R>(
        &self,
        op: &str,
        bucket: Option<Bucket>,
        f: impl FnOnce(&mut World, Timestamp) -> PortResult<R>,
    ) -> PortResult<R> {
        self.with(|w, now| {
            *w.calls.entry(op.to_owned()).or_default() += 1;
            if let Some(b) = bucket {
                let ok = match (&self.account, b) {
                    (Some(account), _) => account.take(b, now),
                    (None, Bucket::Describe) => w.ec2.describe_bucket.take(now),
                    (None, Bucket::Mutate) => w.ec2.mutate_bucket.take(now),
                };
                if !ok {
                    *w.calls.entry(format!("throttled:{op}")).or_default() += 1;
                    return Err(PortError::ec2("RequestLimitExceeded", "Request limit exceeded."));
                }
            }
            if let Some(idx) = w.faults.iter().position(|r| r.op == op && r.remaining > 0) {
                w.faults[idx].remaining -= 1;
                let rule = w.faults[idx].clone();
                if rule.remaining == 0 {
                    w.faults.remove(idx);
                }
                if rule.after_effect {
                    let outcome = f(w, now).map(|_| ());
                    w.log(now, format!("fault: {op} response lost (call outcome {outcome:?})"));
                    return Err(PortError::new(
                        "RequestTimeout",
                        "injected: the response was lost",
                        ErrorClass::Retryable,
                    ));
                }
                w.log(now, format!("fault: {op} failed with {} (injected)", rule.code));
                return Err(PortError::new(&rule.code, "injected fault", rule.class));
            }
            f(w, now)
        })
    }

    /// Sleeps one API round trip (`median` jittered) in model time.
    async fn round_trip(&self, median: impl FnOnce(&LatencyModel) -> f64) {
        let secs = {
            let mut w = self.lock();
            let m = median(&w.scenario.latency);
            w.jitter(m)
        };
        self.clock.sleep(Duration::from_secs_f64(secs.max(0.0))).await;
    }

    /// Sleeps until model time reaches `t`.
    async fn wait_until(&self, t: Timestamp) {
        loop {
            let now = self.clock.now();
            if now >= t {
                return;
            }
            let d = clock::secs(now, t).max(0.0) + 0.001;
            self.clock.sleep(Duration::from_secs_f64(d)).await;
        }
    }
}
