//! The latency model and the world's seeded randomness.
//!
//! Why this module exists: every step of the simulated world takes a realistic amount of model time
//! (EC2 figures from the CSI driver measurements, CLUSTERPRO and Windows figures from the runbook),
//! and benchmarks must be able to compute the critical path of a restore from the same numbers the
//! world uses. The medians live in one public struct; the jitter around them comes from a `ChaCha`
//! generator whose position is part of the persisted world, so a seed replays the same run and a
//! reopened world continues the same sequence.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// Median durations in model seconds, and the jitter band applied to each.
///
/// Each sampled duration is `median × f` with `f` log-uniform in `[jitter_min, jitter_max]`
/// (median factor 1.0 for the default band 0.8–1.25).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LatencyModel {
    /// Round trip of one EC2 API call.
    pub ec2_api_s: f64,
    /// Round trip of one CLUSTERPRO call (status, REST POST acceptance).
    pub clp_api_s: f64,
    /// Round trip of one node command (SSM Run Command).
    pub node_api_s: f64,
    /// Extra time a node disk command (`Set-Disk`, `Set-Partition`) takes on the server.
    pub node_disk_command_s: f64,
    /// `CreateVolume` from a snapshot: `creating` → `available`.
    pub create_volume_s: f64,
    /// `AttachVolume`: `attaching` → `attached`.
    pub attach_s: f64,
    /// `DetachVolume`: `detaching` → detached (after the OS released the disk).
    pub detach_s: f64,
    /// `CreateSnapshot`: fixed part of `pending` → `completed`.
    pub snapshot_base_s: f64,
    /// `CreateSnapshot`: per GiB of volume size.
    pub snapshot_per_gib_s: f64,
    /// OS shutdown: `stopping` → `stopped` (or `shutting-down` → `terminated`).
    pub instance_stop_s: f64,
    /// `StartInstances`: `pending` → `running`.
    pub instance_start_s: f64,
    /// From `running` until the server has joined the cluster.
    pub cluster_join_s: f64,
    /// Group start (all resources).
    pub group_start_s: f64,
    /// Group stop (all resources).
    pub group_stop_s: f64,
    /// Resource stop (md and its dependents).
    pub resource_stop_s: f64,
    /// Resource start (and the resources it depends on).
    pub resource_start_s: f64,
    /// Group move (stop on one server, start on the other).
    pub group_move_s: f64,
    /// Configuration push and apply (suspend, push, resume).
    pub apply_config_s: f64,
    /// Differential mirror recovery: fixed part.
    pub resync_base_s: f64,
    /// Differential mirror recovery: per write missed by the stale side.
    pub resync_per_write_s: f64,
    /// Full initial mirror copy, per GiB.
    pub full_copy_per_gib_s: f64,
    /// Fast Snapshot Restore: `enabling` → `optimizing` (no published figure; a model
    /// assumption [U]).
    #[serde(default = "fsr_enabling_default")]
    pub fsr_enabling_s: f64,
    /// Fast Snapshot Restore: `optimizing` → `enabled`, per TiB of snapshot ("it takes 60 minutes
    /// per TiB to optimize a snapshot", AWS EBS User Guide, "Check the fast snapshot restore
    /// state").
    #[serde(default = "fsr_optimize_default")]
    pub fsr_optimize_per_tib_s: f64,
    /// Fast Snapshot Restore: `disabling` → `disabled` (no published figure [U]).
    #[serde(default = "fsr_disabling_default")]
    pub fsr_disabling_s: f64,
    /// Lower bound of the jitter factor.
    pub jitter_min: f64,
    /// Upper bound of the jitter factor.
    pub jitter_max: f64,
}

impl Default for LatencyModel {
    fn default() -> Self {
        LatencyModel {
            ec2_api_s: 0.05,
            clp_api_s: 0.3,
            node_api_s: 1.0,
            node_disk_command_s: 1.0,
            create_volume_s: 3.0,
            attach_s: 2.0,
            detach_s: 2.0,
            snapshot_base_s: 120.0,
            snapshot_per_gib_s: 2.0,
            instance_stop_s: 30.0,
            instance_start_s: 25.0,
            cluster_join_s: 15.0,
            group_start_s: 8.0,
            group_stop_s: 6.0,
            resource_stop_s: 3.0,
            resource_start_s: 4.0,
            group_move_s: 14.0,
            apply_config_s: 12.0,
            resync_base_s: 5.0,
            resync_per_write_s: 0.01,
            full_copy_per_gib_s: 2.0,
            fsr_enabling_s: fsr_enabling_default(),
            fsr_optimize_per_tib_s: fsr_optimize_default(),
            fsr_disabling_s: fsr_disabling_default(),
            jitter_min: 0.8,
            jitter_max: 1.25,
        }
    }
}

fn fsr_enabling_default() -> f64 {
    60.0
}
fn fsr_optimize_default() -> f64 {
    3600.0
}
fn fsr_disabling_default() -> f64 {
    30.0
}

impl LatencyModel {
    /// Median time for Fast Snapshot Restore of a `size_gib` snapshot to go from the request to
    /// `enabled`.
    pub fn fsr_enable_s(&self, size_gib: u32) -> f64 {
        self.fsr_enabling_s + self.fsr_optimize_per_tib_s * f64::from(size_gib) / 1024.0
    }
    /// The same medians without jitter: every duration is exactly its median (handy for
    /// benchmarks that compare against a computed critical path).
    #[must_use]
    pub fn without_jitter(mut self) -> Self {
        self.jitter_min = 1.0;
        self.jitter_max = 1.0;
        self
    }
    /// Median time for a snapshot of `size_gib` to complete.
    pub fn snapshot_s(&self, size_gib: u32) -> f64 {
        self.snapshot_base_s + self.snapshot_per_gib_s * f64::from(size_gib)
    }
    /// Median time of a differential recovery after `writes` missed writes.
    pub fn resync_s(&self, writes: u64) -> f64 {
        #[allow(clippy::cast_precision_loss)] // write counts stay far below 2^52
        let w = writes as f64;
        self.resync_base_s + self.resync_per_write_s * w
    }
    /// Median time of a full initial copy of `size_gib`.
    pub fn full_copy_s(&self, size_gib: u32) -> f64 {
        self.full_copy_per_gib_s * f64::from(size_gib)
    }
    /// The full initial copy's rate in MiB/s (the inverse of [`Self::full_copy_per_gib_s`]).
    pub fn full_copy_mib_s(&self) -> f64 {
        1024.0 / self.full_copy_per_gib_s
    }
}

/// Time for EBS to initialize a volume created from a snapshot holding `data_gib` of data at
/// `rate_mib_s`: the snapshot's blocks are downloaded from S3 and written to the volume at that
/// rate (AWS EBS User Guide, "Initialize Amazon EBS volumes"). `data_gib` is the snapshot's full
/// size (EC2's `FullSnapshotSizeInBytes`: "all the blocks that were written to the source volume"),
/// not the volume's size; that unwritten blocks cost no loading time is an inference [U].
pub fn initialization_s(data_gib: u32, rate_mib_s: f64) -> f64 {
    f64::from(data_gib) * 1024.0 / rate_mib_s
}

/// The world's random source: a `ChaCha8` stream from the seed, with its position persisted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct SimRng {
    seed: u64,
    word_pos: u128,
    #[serde(skip)]
    cache: Option<ChaCha8Rng>,
}

impl SimRng {
    pub(super) fn new(seed: u64) -> Self {
        SimRng { seed, word_pos: 0, cache: None }
    }

    pub(super) fn seed(&self) -> u64 {
        self.seed
    }

    /// A uniform sample in `[0, 1)`.
    pub(super) fn unit(&mut self) -> f64 {
        let (seed, pos) = (self.seed, self.word_pos);
        let rng = self.cache.get_or_insert_with(|| {
            let mut r = ChaCha8Rng::seed_from_u64(seed);
            r.set_word_pos(pos);
            r
        });
        let x: f64 = rng.random();
        self.word_pos = rng.get_word_pos();
        x
    }

    /// `median` scaled by a log-uniform factor in the model's jitter band.
    pub(super) fn jitter(&mut self, median: f64, model: &LatencyModel) -> f64 {
        let (lo, hi) = (model.jitter_min, model.jitter_max);
        if !(lo > 0.0 && hi > lo) {
            return median * lo.max(0.0);
        }
        let u = self.unit();
        median * lo * (hi / lo).powf(u)
    }
}

/// A deterministic 64-bit value from the seed and a counter (splitmix64).
pub(super) fn mix(seed: u64, counter: u64) -> u64 {
    let mut z = seed ^ counter.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_band_and_replays_from_the_seed() {
        let model = LatencyModel::default();
        let mut a = SimRng::new(7);
        let samples: Vec<f64> = (0..200).map(|_| a.jitter(10.0, &model)).collect();
        assert!(samples.iter().all(|s| (8.0..=12.5).contains(s)));
        let mut b = SimRng::new(7);
        assert!((b.jitter(10.0, &model) - samples[0]).abs() < 1e-12);
        // A serialised generator continues the same stream.
        let json = serde_json::to_string(&b).unwrap();
        let mut c: SimRng = serde_json::from_str(&json).unwrap();
        assert!((c.jitter(10.0, &model) - samples[1]).abs() < 1e-12);
    }

    #[test]
    fn no_jitter_is_exact() {
        let model = LatencyModel::default().without_jitter();
        let mut r = SimRng::new(1);
        assert!((r.jitter(3.0, &model) - 3.0).abs() < f64::EPSILON);
    }
}
