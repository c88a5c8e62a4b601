//! `mirrorctl bench`: the first cut of the benchmark harness for the figures of DESIGN.md §7.
//!
//! Everything runs in the simulated world on a current-thread tokio runtime with paused time, so
//! model time is exact and a run takes seconds. Each seed runs four fresh worlds of the runbook's
//! Windows cluster: a jitter-free one for mirrorctl (ratios 1, 3 and 4), a jitter-free one with
//! the vendor procedure (5), and a jittered pair with
//! the same seed for mirrorctl and the runbook baseline (ratio 2). Each world takes a backup with
//! mirrorctl, lets business run 10 minutes, has the accident, then restores both servers.
//!
//! The figures, all measured in the same run:
//!
//! 1. **Restore wall ÷ critical path.** Wall = model time from the restore's first step
//!    (`StepStarted`) to `Converged`. Critical path, with the latency model's medians (`a` EC2
//!    round trip, `c` CLUSTERPRO round trip, `n` node round trip, `k` node disk command):
//!
//!    ```text
//!    2c                                                   preflight (changes nothing; first)
//!    + max( a + create_volume + a,                        create, one Describe to see it
//!         c + group_stop + c + apply_config )             stop group, remove md
//!    + (n + k)                                            old disk offline
//!    + (a + detach + a) + (a + attach + a)                detach, attach, each seen by a Describe
//!    + (n + k)                                            new disk online
//!    + (n + k)                                            letters R: and M: (the server that got a
//!                                                         copy of the other's disk; both at once)
//!    + c + apply_config + c + group_start + c + group_move  re-add md, start, failover check
//!    ```
//!
//!    The two servers' disk work runs in parallel, so it counts once. Waiting for a healthy
//!    mirror is not counted (both sides come from one snapshot: no copy is needed).
//! 2. **Runbook baseline ÷ mirrorctl.** [`baseline_restore`] performs the same restore through
//!    the ports in the runbook's order, one step at a time, and after each asynchronous EC2 step
//!    (and for the healthy mirror) waits like an SDK waiter: first check 15 s after the call, then
//!    every 15 s. Its wall time (first call to the end of the failover check) ÷ mirrorctl's.
//! 3. **Calls per two-node restore**, from `call_counts()` deltas over mirrorctl's restore:
//!    mutating EC2 calls except `CreateTags`, and `Describe*` calls.
//! 4. **Backup downtime.** Business: md stop requested → md's dependent service online again, ÷
//!    (resource stop + one resource start: the service, which brings md up with it; the group's
//!    virtual IP never went down). The standby leaving the cluster in between is not in the bound:
//!    it is what makes the restart safe, and what the ratio shows above 1. Standby: standby shutdown requested → standby back in the cluster, ÷
//!    (instance stop + `CreateSnapshot` + `StartInstances` + instance start + cluster join). Both
//!    from the simulated world's timeline.
//!
//! 5. **The vendor procedure**, in a fourth, jitter-free world whose desired state pins
//!    `procedure = "vendor"` (NEC's `clpbackup`/`clprestore`, see `src/plan/restore.rs`): its
//!    restore ÷ its own critical path ([`vendor_restore_critical_path_s`]: pre = the instance
//!    stops, the volumes swapped while it is stopped, the instance started, post = a reboot, that
//!    is a stop, a start and a cluster join), its business downtime ÷ the same bound as above, its
//!    standby downtime ÷ (the bound above + `clpbackup --post`'s round trip and reboot).
//!
//! `MIRRORCTL_BENCH_TIMELINE=1` prints the jitter-free worlds' timelines and the restores' progress
//! events on stderr (the vendor
//! one prefixed `vendor`).
//!
//! Two more parts print their own tables in the same run: [`scale`] (1, 5, 20, 100 and 1,000
//! clusters restored at once under one account's throttle buckets; 1, 5 and 20 with `--quick`) and
//! [`footprint`] (the real daemon's idle RSS and CPU with 0 and 1,000 files, and edit → first
//! action latency; 0 and 20 files with `--quick`; of the executable `--binary` names, or this
//! one). [`fullperf`] adds the time to full performance of a restore per way EBS loads the
//! volumes (arithmetic on the latency model). `-o json` prints every part as one document
//! ([`report`]); `--only` runs some of the parts ([`Part`]). The kill -9 chaos campaign is `mirrorctl bench chaos` ([`super::chaos`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::mpsc::unbounded_channel;

use crate::execute::{Event, EventKind, Progress};
use crate::harness::HarnessError;
use crate::ids::{BackupName, RequestName, SnapshotId};
use crate::ports::cloud::{AttachState, CreateVolume, Tags, VolumeState};
use crate::ports::cluster::ConfigChange;
use crate::ports::{Clock as _, PortError, Ports};
use crate::reconcile::{Context, Settled, reconcile};
use crate::sim::{LatencyModel, Scenario, SimWorld};
use crate::spec::Os;
use crate::spec::{BackupSpec, Partition, ProcedureChoice, RestoreSpec, Spec};

mod footprint;
mod fullperf;
mod report;
mod scale;

/// A part of `mirrorctl bench` (`--only`): each has its own table (and its own member of the
/// `-o json` document).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Part {
    /// One restore and one backup on the simulated world, each figure against its target.
    Single,
    /// Many clusters restored at once under one account's throttle buckets.
    Scale,
    /// The time to full performance of a restore per way EBS loads the volumes (arithmetic).
    Loading,
    /// The real daemon's idle memory and CPU and edit → first action latency (real time).
    Footprint,
}

/// Seeds of a full run (`--quick` uses only the first, the `--seed` given).
const FULL_RUNS: u64 = 5;
/// The SDK waiters' delay: first check after the call, then between checks.
const WAITER_DELAY: Duration = Duration::from_secs(15);

/// Measurements of one seed.
#[derive(Debug, Clone, Default)]
struct Sample {
    restore_wall_s: f64,
    critical_path_s: f64,
    mirrorctl_jittered_s: f64,
    baseline_s: f64,
    mutating: u64,
    describes: u64,
    business_down_s: f64,
    business_bound_s: f64,
    standby_down_s: f64,
    standby_bound_s: f64,
    /// The same restore and backup by NEC's `clprestore`/`clpbackup` (the vendor procedure).
    vendor: VendorSample,
}

/// The vendor procedure's figures of one seed (jitter-free world).
#[derive(Debug, Clone, Default)]
#[allow(clippy::struct_field_names)] // every figure is in seconds, and says so
struct VendorSample {
    restore_wall_s: f64,
    critical_path_s: f64,
    business_down_s: f64,
    standby_down_s: f64,
    standby_bound_s: f64,
}

/// Options of a bench run.
#[derive(Debug, Clone, Default)]
pub struct BenchOptions {
    /// One run instead of five seeds.
    pub quick: bool,
    /// First seed.
    pub seed: u64,
    /// The `mirrorctl` executable whose footprint is measured (default: this one).
    pub binary: Option<PathBuf>,
    /// The parts to run; empty runs them all.
    pub only: Vec<Part>,
}

/// A bench about to run: its options checked (a wrong `--binary` fails at once, before the long
/// parts run).
pub struct Bench {
    opts: BenchOptions,
    dir: PathBuf,
    binary: Option<footprint::Binary>,
}

/// The figures measured on the simulated world (the parts `single`, `scale` and `loading`).
pub struct Simulated {
    samples: Vec<Sample>,
    scaled: Vec<scale::ScaleSample>,
    loading: Vec<fullperf::Row>,
}

/// The real daemon's figures (the part `footprint`).
pub struct Footprint(footprint::Footprint);

impl Bench {
    /// Checks `opts` for a bench working under `state_dir/bench`.
    pub fn new(state_dir: &Path, opts: BenchOptions) -> Result<Bench, HarnessError> {
        let want_footprint = opts.wants(Part::Footprint);
        let binary = match (want_footprint, opts.binary.as_deref()) {
            (true, given) => Some(footprint::binary(given)?),
            (false, Some(path)) => {
                return Err(HarnessError::Usage(format!(
                    "--binary {}: only the footprint part runs a binary, and --only leaves it out; add \
                     `footprint` to --only or drop --binary",
                    path.display()
                )));
            }
            (false, None) => None,
        };
        Ok(Bench { opts, dir: state_dir.join("bench"), binary })
    }

    /// Runs the parts on the simulated world (paused time, a runtime of its own).
    pub fn simulated(&self) -> Result<Simulated, HarnessError> {
        let (single, scaling) = (self.opts.wants(Part::Single), self.opts.wants(Part::Scale));
        let (quick, seed, dir) = (self.opts.quick, self.opts.seed, self.dir.clone());
        let seeds: Vec<u64> = if quick { vec![seed] } else { (0..FULL_RUNS).map(|i| seed + i).collect() };
        // The caller's runtime is multi-threaded and real-time; the bench needs its own, paused one,
        // which cannot be entered from inside another runtime's thread: it runs on a thread of its own.
        let handle = std::thread::spawn(move || -> Result<(Vec<Sample>, Vec<scale::ScaleSample>), HarnessError> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .start_paused(true)
                .build()
                .map_err(|e| HarnessError::caused("cannot start the bench runtime", e))?;
            rt.block_on(async {
                let mut samples = Vec::new();
                for s in seeds.iter().filter(|_| single) {
                    samples.push(measure(&dir, *s).await?);
                }
                let sizes: &[usize] = if quick { &scale::QUICK_SIZES } else { &scale::FULL_SIZES };
                let mut scaled = Vec::new();
                for n in sizes.iter().filter(|_| scaling) {
                    scaled.push(scale::measure(&dir, *n, seed, scale::Order::Urgency).await?);
                    // With more than one cluster, the same storm served in arrival order, for comparison.
                    if *n > 1 {
                        scaled.push(scale::measure(&dir, *n, seed, scale::Order::Arrival).await?);
                    }
                }
                Ok((samples, scaled))
            })
        });
        let (samples, scaled) =
            handle.join().map_err(|_| HarnessError::Failed("the bench thread panicked".into()))??;
        let loading =
            if self.opts.wants(Part::Loading) { fullperf::table(&LatencyModel::default()) } else { Vec::new() };
        Ok(Simulated { samples, scaled, loading })
    }

    /// The tables of the simulated parts that ran.
    pub fn simulated_text(&self, sim: &Simulated) -> String {
        let mut out = String::new();
        if self.opts.wants(Part::Single) {
            out.push_str(&render(&sim.samples, self.opts.quick, self.opts.seed));
        }
        if self.opts.wants(Part::Scale) {
            out.push_str(&scale::render(&sim.scaled));
        }
        if !sim.loading.is_empty() {
            out.push_str(&fullperf::render(&sim.loading));
        }
        out
    }

    /// Measures the real daemon's footprint when that part runs (real time: seconds).
    pub fn footprint(&self) -> Result<Option<Footprint>, HarnessError> {
        match &self.binary {
            Some(b) => Ok(Some(Footprint(footprint::measure(&self.dir, self.opts.quick, b)?))),
            None => Ok(None),
        }
    }

    /// The footprint's table.
    pub fn footprint_text(f: &Footprint) -> String {
        footprint::render(&f.0)
    }

    /// Every figure as one JSON document (a part left out is `null`).
    pub fn json(&self, sim: &Simulated, footprint: Option<&Footprint>) -> serde_json::Value {
        report::json(&report::Parts {
            samples: self.opts.wants(Part::Single).then_some(sim.samples.as_slice()),
            quick: self.opts.quick,
            seed: self.opts.seed,
            scaled: self.opts.wants(Part::Scale).then_some(sim.scaled.as_slice()),
            loading: (!sim.loading.is_empty()).then_some(sim.loading.as_slice()),
            footprint: footprint.map(|f| &f.0),
        })
    }
}

impl BenchOptions {
    /// Whether part `p` runs.
    fn wants(&self, p: Part) -> bool {
        self.only.is_empty() || self.only.contains(&p)
    }
}

pub(super) use crate::harness::fresh_dir;

fn secs(from: Timestamp, to: Timestamp) -> f64 {
    to.duration_since(from).as_secs_f64()
}

fn failed(what: &str) -> impl Fn(PortError) -> HarnessError + '_ {
    move |e| HarnessError::caused(what, e)
}

/// One world up to the moment a restore is due: backup `b1` taken by mirrorctl, 10 minutes of
/// business, the accident.
struct Prepared {
    world: Arc<SimWorld>,
    spec: Spec,
    snapshot: SnapshotId,
    dir: PathBuf,
}

async fn prepare(base: &Path, name: &str, seed: u64, latency: LatencyModel) -> Result<Prepared, HarnessError> {
    prepare_with(base, name, seed, latency, ProcedureChoice::Reconfigure).await
}

/// [`prepare`] with the CLUSTERPRO procedure `procedure` pinned in the desired state.
async fn prepare_with(
    base: &Path,
    name: &str,
    seed: u64,
    latency: LatencyModel,
    procedure: ProcedureChoice,
) -> Result<Prepared, HarnessError> {
    let dir = fresh_dir(base, name)?;
    let mut scenario = Scenario::windows_runbook();
    scenario.latency = latency;
    let world = SimWorld::new(scenario, seed, 1.0);
    let mut spec = crate::harness::lab::lab_spec(Os::Windows, procedure)?;
    let backup_name = BackupName::parse("b1").map_err(|e| HarnessError::caused("the bench's backup name", e))?;
    spec.backup = Some(BackupSpec { schedules: Vec::new(), keep: 7, take: vec![backup_name], copy_to: Vec::new() });
    let ctx = Context::new(world.ports(), dir.clone());
    let settled = reconcile(&spec, &ctx).await.map_err(|e| HarnessError::caused("backup", e))?;
    if settled != Settled::Converged {
        return Err(HarnessError::Failed(format!("the backup did not converge: {settled:?}")));
    }
    let snapshot = world
        .inventory()
        .snapshots
        .iter()
        .find(|s| s.tags.get(crate::ports::cloud::tag::REQUEST).map(String::as_str) == Some("b1"))
        .map(|s| s.id.clone())
        .ok_or_else(|| HarnessError::Failed("the backup left no snapshot".into()))?;
    world.clock().sleep(Duration::from_mins(10)).await;
    world.accident();
    world.clock().sleep(Duration::from_mins(1)).await;
    Ok(Prepared { world, spec, snapshot, dir })
}

/// The desired state asking to restore `p`'s cluster from its backup (request `r1`).
fn restore_spec(p: &Prepared) -> Result<Spec, HarnessError> {
    let mut spec = p.spec.clone();
    spec.restore = Some(RestoreSpec {
        snapshot: p.snapshot.clone(),
        request: RequestName::parse("r1").map_err(|e| HarnessError::caused("the bench's request name", e))?,
        verify_failover: true,
        allow_foreign_snapshot: false,
    });
    Ok(spec)
}

/// mirrorctl's restore of `p`: (first step → converged in model seconds, call-count delta).
async fn mirrorctl_restore(p: &Prepared) -> Result<(f64, BTreeMap<String, u64>), HarnessError> {
    let spec = restore_spec(p)?;
    let (tx, mut rx) = unbounded_channel::<Event>();
    let mut ctx = Context::new(p.world.ports(), p.dir.clone());
    ctx.progress = Progress::to(tx);
    let before = p.world.call_counts();
    let settled = reconcile(&spec, &ctx).await.map_err(|e| HarnessError::caused("restore", e))?;
    if settled != Settled::Converged {
        return Err(HarnessError::Failed(format!("the restore did not converge: {settled:?}")));
    }
    let after = p.world.call_counts();
    drop(ctx);
    let (mut first, mut done) = (None, None);
    let timeline = std::env::var_os("MIRRORCTL_BENCH_TIMELINE").is_some();
    while let Ok(e) = rx.try_recv() {
        if timeline {
            eprintln!("event [{:8.1}s] {:?}", secs(p.world.scenario().epoch, e.at), e.kind);
        }
        match e.kind {
            EventKind::StepStarted { .. } if first.is_none() => first = Some(e.at),
            EventKind::Converged { .. } => done = Some(e.at),
            _ => {}
        }
    }
    let (Some(first), Some(done)) = (first, done) else {
        return Err(HarnessError::Failed("the restore reported no step or no convergence".into()));
    };
    let delta = after.iter().map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0))).collect();
    Ok((secs(first, done), delta))
}

/// The critical path of a two-node restore from the model's medians (formula in the module doc).
pub fn restore_critical_path_s(l: &LatencyModel) -> f64 {
    let a = l.ec2_api_s;
    restore_first_detach_s(l) + l.detach_s + a + a + restore_tail_after_attach_s(l)
}

/// The part of that critical path before EC2 accepts a restore's first `DetachVolume` (EC2 takes
/// the call's token when the request arrives, one round trip after it is sent): the preflight,
/// the group stop and md removal (the volumes are created meanwhile), the old disk offline.
/// None of it draws on the account's buckets, so whatever the account allows, no restore's detach
/// or attach is accepted sooner than this after the restore began.
pub fn restore_first_detach_s(l: &LatencyModel) -> f64 {
    let (a, c, node) = (l.ec2_api_s, l.clp_api_s, l.node_api_s + l.node_disk_command_s);
    let create = a + l.create_volume_s + a;
    let stop_and_remove = c + l.group_stop_s + c + l.apply_config_s;
    // The preflight: one command per server (at once) and a pull of the configuration.
    let preflight = 2.0 * c;
    preflight + create.max(stop_and_remove) + node + a
}

/// The part of that critical path after EC2 accepted the attach, a restore's last mutating EC2
/// call: the attachment settles and is seen, the new disk comes online and gets its letters, md is
/// re-added, the group starts and moves for the failover check. Whatever an account's buckets
/// allow, a restore cannot converge sooner than this after its last mutating call.
pub fn restore_tail_after_attach_s(l: &LatencyModel) -> f64 {
    let (a, c, node) = (l.ec2_api_s, l.clp_api_s, l.node_api_s + l.node_disk_command_s);
    (l.attach_s + a) + node + node + (c + l.apply_config_s) + (c + l.group_start_s) + (c + l.group_move_s)
}

/// The critical path of a two-node restore by NEC's `clprestore` (the vendor procedure, both
/// servers at once) from the model's medians: the preflight; the group stop while the volumes are
/// created; `clprestore --pre` (the server leaves the cluster and its instance stops, seen by a
/// Describe); the old volume detached and the new one attached while the OS is down; the
/// instance started and seen running; on Windows the disk online, then its letters;
/// `clprestore --post` (a reboot: stop, start, cluster join); group start and the failover move.
/// No configuration push: the vendor commands keep md in the configuration.
pub fn vendor_restore_critical_path_s(l: &LatencyModel) -> f64 {
    let (a, c, node) = (l.ec2_api_s, l.clp_api_s, l.node_api_s + l.node_disk_command_s);
    let preflight = 2.0 * c;
    let create = a + l.create_volume_s + a;
    let stop_group = c + l.group_stop_s;
    let pre = c + l.instance_stop_s + a;
    let swap = (a + l.detach_s + a) + (a + l.attach_s + a);
    let start = a + l.instance_start_s + a;
    let post = c + l.instance_stop_s + l.instance_start_s + l.cluster_join_s;
    preflight
        + create.max(stop_group)
        + pre
        + swap
        + start
        + node
        + node
        + post
        + (c + l.group_start_s)
        + (c + l.group_move_s)
}

/// Sleeps like an SDK waiter until `check` holds: first check after [`WAITER_DELAY`], then every
/// [`WAITER_DELAY`].
async fn wait_like_sdk<F, Fut>(ports: &Ports, mut check: F) -> Result<(), HarnessError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<bool, HarnessError>>,
{
    for _ in 0..240 {
        ports.clock.sleep(WAITER_DELAY).await;
        if check().await? {
            return Ok(());
        }
    }
    Err(HarnessError::Failed("baseline: a waiter gave up after an hour".into()))
}

/// The runbook's restore, step by step through the ports, no planner; returns its model seconds
/// from the first call to the end of the failover check.
pub async fn baseline_restore(world: &Arc<SimWorld>, snapshot: &SnapshotId) -> Result<f64, HarnessError> {
    let sc = world.scenario();
    let ports = world.ports();
    let start = ports.clock.now();
    let (cloud, cluster, node) = (&ports.cloud, &ports.cluster, &ports.node);

    // 1. Stop the group, remove md from the configuration, startup manual.
    let config = cluster.config().await.map_err(failed("config"))?;
    let mut md =
        config.mirror(&sc.md).cloned().ok_or_else(|| HarnessError::Failed("baseline: md not configured".into()))?;
    cluster.stop_group(&sc.group).await.map_err(failed("stop group"))?;
    cluster
        .apply_config(&[
            ConfigChange::RemoveMirror { resource: sc.md.clone() },
            ConfigChange::SetGroupAutoStart { group: sc.group.clone(), auto: false },
        ])
        .await
        .map_err(failed("remove md"))?;

    // 2. Create a volume from the snapshot in each server's zone, one after the other.
    let mut new_volumes = Vec::new();
    for (i, s) in sc.servers.iter().enumerate() {
        let req = CreateVolume {
            zone: s.zone.clone(),
            snapshot: snapshot.clone(),
            size_gib: None,
            volume_type: sc.volume_type.clone(),
            iops: None,
            throughput: None,
            kms_key: None,
            initialization_rate: None,
            client_token: format!("bench-baseline-{i}"),
            tags: Tags::new(),
        };
        let v = cloud.create_volume(&req).await.map_err(failed("create volume"))?;
        let filter = crate::ports::cloud::VolumeFilter { ids: vec![v.id.clone()], ..Default::default() };
        wait_like_sdk(&ports, || async {
            // A volume not yet visible (eventual consistency) is "not yet".
            Ok(cloud
                .describe_volumes(&filter)
                .await
                .is_ok_and(|vs| vs.iter().any(|x| x.state == VolumeState::Available)))
        })
        .await?;
        new_volumes.push(v.id);
    }

    // 3–4. Per server: old disk offline, detach, attach the new one, disk online, letters.
    for (s, new) in sc.servers.iter().zip(&new_volumes) {
        let instances =
            cloud.describe_instances(std::slice::from_ref(&s.instance)).await.map_err(failed("instances"))?;
        let old = instances
            .iter()
            .flat_map(|i| &i.devices)
            .find(|(d, _)| *d == sc.device)
            .map(|(_, v)| v.clone())
            .ok_or_else(|| HarnessError::Failed(format!("baseline: no mirror volume on {}", s.name)))?;
        node.set_offline(&s.name, &old).await.map_err(failed("disk offline"))?;
        cloud.detach_volume(&old, &s.instance).await.map_err(failed("detach"))?;
        let filter = crate::ports::cloud::VolumeFilter { ids: vec![old.clone()], ..Default::default() };
        wait_like_sdk(&ports, || async {
            let vs = cloud.describe_volumes(&filter).await.map_err(failed("describe"))?;
            Ok(vs.iter().all(|v| v.state == VolumeState::Available))
        })
        .await?;
        cloud.attach_volume(new, &s.instance, &sc.device).await.map_err(failed("attach"))?;
        let filter = crate::ports::cloud::VolumeFilter { ids: vec![new.clone()], ..Default::default() };
        wait_like_sdk(&ports, || async {
            let vs = cloud.describe_volumes(&filter).await.map_err(failed("describe"))?;
            Ok(vs.iter().all(|v| v.attachments.iter().any(|a| a.state == AttachState::Attached)))
        })
        .await?;
        node.set_online(&s.name, new).await.map_err(failed("disk online"))?;
        let disks = node.disks(&s.name).await.map_err(failed("disks"))?;
        let wanted = [(1, &sc.cluster_partition), (2, &sc.data_partition)];
        for (number, part) in wanted {
            let Partition::Letter(letter) = part else { continue };
            let has = disks
                .iter()
                .filter(|d| d.volume == *new)
                .flat_map(|d| &d.partitions)
                .any(|p| p.number == number && p.letter == Some(*letter));
            if !has {
                node.set_letter(&s.name, new, number, *letter).await.map_err(failed("letter"))?;
            }
        }
    }

    // 5. Re-add md (both sides from one snapshot: no initial copy), startup automatic.
    md.initial_copy = false;
    cluster
        .apply_config(&[
            ConfigChange::AddMirror(md),
            ConfigChange::SetGroupAutoStart { group: sc.group.clone(), auto: true },
        ])
        .await
        .map_err(failed("add md"))?;

    // 6. Start the group, wait for a healthy mirror, move it to check failover.
    let (first, second) = (&sc.servers[0].name, &sc.servers[1].name);
    cluster.start_group(&sc.group, first).await.map_err(failed("start group"))?;
    wait_like_sdk(&ports, || async { Ok(cluster.mirror_status(&sc.md).await.is_ok_and(|m| m.healthy())) }).await?;
    cluster.move_group(&sc.group, second).await.map_err(failed("move group"))?;
    Ok(secs(start, ports.clock.now()))
}

/// The backup's downtimes from the world's timeline: (business, standby) in model seconds.
fn backup_downtimes(timeline: &[(Timestamp, String)], sc: &Scenario) -> Result<(f64, f64), HarnessError> {
    let find = |from: Timestamp, pred: &dyn Fn(&str) -> bool, what: &str| {
        timeline
            .iter()
            .find(|(t, line)| *t >= from && pred(line))
            .map(|(t, _)| *t)
            .ok_or_else(|| HarnessError::Failed(format!("backup timeline: no \"{what}\"")))
    };
    let epoch = sc.epoch;
    let standby = sc.servers[1].name.to_string();
    let md_stop = find(epoch, &|l| l.starts_with("clp: stop resource "), "md stop requested")?;
    // Business is back when the resource depending on md is online again (the group's virtual IP
    // never went down).
    let online = format!("{} online on", sc.business);
    let back = find(md_stop, &|l| l.starts_with("clp: ") && l.contains(&online), &online)?;
    // The configuration edit shuts the standby down through CLUSTERPRO; NEC's `clpbackup --pre`
    // makes it leave the cluster and shut down.
    let down = format!("clp: {standby} shut down");
    let left = format!("on {standby}: left the cluster");
    let shut = find(epoch, &|l| l.starts_with(&down) || (l.starts_with("clp: `") && l.contains(&left)), &down)?;
    let joined = format!("clp: {standby} joined");
    let rejoined = find(shut, &|l| l.starts_with(&joined), &joined)?;
    Ok((secs(md_stop, back), secs(shut, rejoined)))
}

async fn measure(base: &Path, seed: u64) -> Result<Sample, HarnessError> {
    let exact = LatencyModel::default().without_jitter();
    let p = prepare(base, &format!("exact-{seed}"), seed, exact.clone()).await?;
    let (business_down_s, standby_down_s) = backup_downtimes(&p.world.timeline(), &p.world.scenario())?;
    let (restore_wall_s, calls) = mirrorctl_restore(&p).await?;
    if std::env::var_os("MIRRORCTL_BENCH_TIMELINE").is_some() {
        let epoch = p.world.scenario().epoch;
        for (t, line) in p.world.timeline() {
            eprintln!("[{:8.1}s] {line}", secs(epoch, t));
        }
    }
    let count = |pred: &dyn Fn(&str) -> bool| calls.iter().filter(|(k, _)| pred(k)).map(|(_, v)| *v).sum::<u64>();
    let mutating = count(&|k| {
        ["ec2:CreateVolume", "ec2:AttachVolume", "ec2:DetachVolume", "ec2:CreateSnapshot", "ec2:DeleteSnapshot"]
            .contains(&k)
            || k == "ec2:StartInstances"
    });
    let describes = count(&|k| k.starts_with("ec2:Describe"));

    let jittered = LatencyModel::default();
    let m = prepare(base, &format!("mirrorctl-{seed}"), seed, jittered.clone()).await?;
    let (mirrorctl_jittered_s, _) = mirrorctl_restore(&m).await?;
    let b = prepare(base, &format!("baseline-{seed}"), seed, jittered).await?;
    let baseline_s = baseline_restore(&b.world, &b.snapshot).await?;
    let v = prepare_with(base, &format!("vendor-{seed}"), seed, exact.clone(), ProcedureChoice::Vendor).await?;
    let (vendor_business_s, vendor_standby_s) = backup_downtimes(&v.world.timeline(), &v.world.scenario())?;
    let (vendor_restore_s, _) = mirrorctl_restore(&v).await?;
    if std::env::var_os("MIRRORCTL_BENCH_TIMELINE").is_some() {
        let epoch = v.world.scenario().epoch;
        for (t, line) in v.world.timeline() {
            eprintln!("vendor [{:8.1}s] {line}", secs(epoch, t));
        }
    }
    for d in [&p.dir, &m.dir, &b.dir, &v.dir] {
        let _ = std::fs::remove_dir_all(d);
    }
    let reboot = exact.instance_stop_s + exact.instance_start_s + exact.cluster_join_s;
    Ok(Sample {
        restore_wall_s,
        critical_path_s: restore_critical_path_s(&exact),
        mirrorctl_jittered_s,
        baseline_s,
        mutating,
        describes,
        business_down_s,
        // md stopped with its dependents; started again with them, in one resource start.
        business_bound_s: exact.resource_stop_s + exact.resource_start_s,
        standby_down_s,
        standby_bound_s: exact.instance_stop_s + 2.0 * exact.ec2_api_s + exact.instance_start_s + exact.cluster_join_s,
        vendor: VendorSample {
            restore_wall_s: vendor_restore_s,
            critical_path_s: vendor_restore_critical_path_s(&exact),
            business_down_s: vendor_business_s,
            standby_down_s: vendor_standby_s,
            // Stop, snapshot, start (the service stays disabled: no join), then `clpbackup --post`:
            // a reboot into the cluster.
            standby_bound_s: exact.instance_stop_s
                + 2.0 * exact.ec2_api_s
                + exact.instance_start_s
                + exact.clp_api_s
                + reboot,
        },
    })
}

/// Opens a table of single figures (the scale and footprint parts): its title and column heads.
fn table_head(out: &mut String, title: &str) {
    let _ = writeln!(out, "\n{title}");
    let _ = writeln!(out, "{:<34} {:>9} {:>9}  {:<8} {:<6} detail", "figure", "value", "", "target", "result");
}

/// One row of such a table: `value` already formatted; `pass` is `None` for a figure shown without
/// a target.
fn table_row(out: &mut String, figure: &str, value: &str, target: &str, pass: Option<bool>, detail: &str) {
    let verdict = match pass {
        Some(true) => "PASS",
        Some(false) => "MISS",
        None => "info",
    };
    let _ = writeln!(out, "{figure:<34} {value:>9} {:>9}  {target:<8} {verdict:<6} {detail}", "");
}

/// Median (upper of the two middle values) and max of `xs`.
fn median_max(mut xs: Vec<f64>) -> (f64, f64) {
    xs.sort_by(f64::total_cmp);
    (xs[xs.len() / 2], xs[xs.len() - 1])
}

struct Line {
    name: &'static str,
    values: Vec<f64>,
    detail: String,
    target: &'static str,
    pass: fn(f64) -> bool,
}

/// The single-cluster figures of `samples`, one line each.
#[allow(clippy::cast_precision_loss, clippy::too_many_lines)] // call counts are tiny
fn lines(samples: &[Sample]) -> [Line; 9] {
    let col = |f: fn(&Sample) -> f64| samples.iter().map(f).collect::<Vec<_>>();
    let first = &samples[0];
    [
        Line {
            name: "restore wall / critical path",
            values: col(|s| s.restore_wall_s / s.critical_path_s),
            detail: format!("{:.1}s / {:.1}s", first.restore_wall_s, first.critical_path_s),
            target: "<= 1.05",
            pass: |x| x <= 1.05,
        },
        Line {
            name: "runbook baseline / mirrorctl",
            values: col(|s| s.baseline_s / s.mirrorctl_jittered_s),
            detail: format!("{:.1}s / {:.1}s", first.baseline_s, first.mirrorctl_jittered_s),
            target: ">= 4",
            pass: |x| x >= 4.0,
        },
        Line {
            name: "mutating EC2 calls per restore",
            values: col(|s| s.mutating as f64),
            detail: "excl. CreateTags".into(),
            target: "<= 6",
            pass: |x| x <= 6.0,
        },
        Line {
            name: "Describe calls per restore",
            values: col(|s| s.describes as f64),
            detail: String::new(),
            target: "<= 8",
            pass: |x| x <= 8.0,
        },
        Line {
            name: "backup business downtime / bound",
            values: col(|s| s.business_down_s / s.business_bound_s),
            detail: format!("{:.1}s / {:.1}s", first.business_down_s, first.business_bound_s),
            target: "<= 1.05",
            pass: |x| x <= 1.05,
        },
        Line {
            name: "backup standby downtime / bound",
            values: col(|s| s.standby_down_s / s.standby_bound_s),
            detail: format!("{:.1}s / {:.1}s", first.standby_down_s, first.standby_bound_s),
            target: "<= 1.10",
            pass: |x| x <= 1.10,
        },
        Line {
            name: "vendor: restore / critical path",
            values: col(|s| s.vendor.restore_wall_s / s.vendor.critical_path_s),
            detail: format!(
                "{:.1}s / {:.1}s (clprestore --pre/--post; reconfigure: {:.1}s / {:.1}s)",
                first.vendor.restore_wall_s, first.vendor.critical_path_s, first.restore_wall_s, first.critical_path_s
            ),
            target: "<= 1.05",
            pass: |x| x <= 1.05,
        },
        Line {
            name: "vendor: business downtime / bound",
            values: col(|s| s.vendor.business_down_s / s.business_bound_s),
            detail: format!("{:.1}s / {:.1}s (clpbackup --pre)", first.vendor.business_down_s, first.business_bound_s),
            target: "<= 1.05",
            pass: |x| x <= 1.05,
        },
        Line {
            name: "vendor: standby downtime / bound",
            values: col(|s| s.vendor.standby_down_s / s.vendor.standby_bound_s),
            detail: format!(
                "{:.1}s / {:.1}s (clpbackup --post reboots it)",
                first.vendor.standby_down_s, first.vendor.standby_bound_s
            ),
            target: "<= 1.10",
            pass: |x| x <= 1.10,
        },
    ]
}

/// The verdict of a line: on the worst run (max for "<=" targets, the smallest value for ">=").
fn worst_passes(l: &Line) -> bool {
    let worst = if l.target.starts_with(">=") {
        l.values.iter().copied().fold(f64::INFINITY, f64::min)
    } else {
        l.values.iter().copied().fold(f64::NEG_INFINITY, f64::max)
    };
    (l.pass)(worst)
}

fn render(samples: &[Sample], quick: bool, seed: u64) -> String {
    let lines = lines(samples);
    let mut out = String::new();
    let runs = if quick { "1 run (--quick)".to_owned() } else { format!("{} runs, seeds {seed}..", samples.len()) };
    let _ = writeln!(out, "mirrorctl bench: simulated runbook cluster (Windows), paused time, {runs}");
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<34} {:>9} {:>9}  {:<8} {:<6} first run", "figure", "median", "max", "target", "result");
    for l in &lines {
        let (median, max) = median_max(l.values.clone());
        let verdict = if worst_passes(l) { "PASS" } else { "MISS" };
        let _ =
            writeln!(out, "{:<34} {:>9.2} {:>9.2}  {:<8} {:<6} {}", l.name, median, max, l.target, verdict, l.detail);
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "MISS is reported, not an error. The kill -9 chaos campaign is `mirrorctl bench chaos`.");
    out
}
