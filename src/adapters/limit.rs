//! Client-side EC2 request budgets, shared by every cluster of one process.
//!
//! Why this module exists: EC2 throttles per account and region (DOMAIN.md: Describe* bucket 100,
//! refill 20/s; mutating calls refill 5/s), not per cluster. A daemon reconciling 1,000 clusters
//! that gave each cluster its own client-side bucket would offer the account 1,000 times its
//! budget and start a throttling storm (every call answered `RequestLimitExceeded`, every cluster
//! backing off at random). So one [`RequestLimiter`] — one bucket per category — is made per
//! process and handed to every cluster's EC2 port: the AWS adapter takes tokens from it before
//! each HTTP call (`AwsCloud::share_limiter`), and [`LimitedCloud`] puts any other [`Cloud`] (the
//! simulated world in the lab and the benchmarks) under the same discipline.
//!
//! Decisions:
//! - **Wait, never fail.** A call that finds its bucket empty sleeps until its token is due.
//! - **First come, first served.** A call *reserves* the next token (the bucket may go into
//!   debt) and sleeps exactly until it is due, so 1,000 waiting clusters are served in arrival
//!   order and wake once each, instead of all waking on every refill and racing for one token.
//!   A reservation whose caller is dropped while sleeping (a stop request) is not given back:
//!   at worst one token per cancelled call goes unused.
//! - **tokio time.** Buckets refill on `tokio::time::Instant`, so paused-time tests and
//!   benchmarks control them. A simulated world running `speed` times faster than tokio time
//!   refills its own buckets per *model* second: give its limiter [`Budgets::scaled`] by `speed`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use crate::ids::{DeviceName, InstanceId, SnapshotId, VolumeId};
use crate::ports::PortResult;
use crate::ports::cloud::{
    Cloud, CreateSnapshot, CreateVolume, Instance, ShutdownBehavior, Snapshot, SnapshotFilter, Tags, Volume,
    VolumeFilter, VolumeInit,
};

/// The two EC2 throttling categories mirrorctl uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// `Describe*` calls.
    Describe,
    /// Calls that change something.
    Mutate,
}

/// One token bucket's shape: how many calls may burst, and how fast tokens come back.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    capacity: f64,
    refill_per_s: f64,
}

impl Budget {
    /// A bucket of `capacity` tokens (≥ 1) refilled at `refill_per_s` tokens a second (> 0).
    pub fn try_new(capacity: u32, refill_per_s: f64) -> Result<Self, String> {
        if capacity == 0 {
            return Err("a request budget needs a capacity of at least 1".to_owned());
        }
        if !(refill_per_s.is_finite() && refill_per_s > 0.0) {
            return Err(format!("a request budget needs a positive refill rate, not {refill_per_s}"));
        }
        Ok(Self { capacity: f64::from(capacity), refill_per_s })
    }
    /// Burst size.
    pub fn capacity(&self) -> f64 {
        self.capacity
    }
    /// Tokens per second.
    pub fn refill_per_s(&self) -> f64 {
        self.refill_per_s
    }
}

/// Budgets for both categories.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budgets {
    /// For `Describe*`.
    pub describe: Budget,
    /// For mutating calls.
    pub mutate: Budget,
}

impl Default for Budgets {
    /// Half of EC2's own buckets' capacity and refill for Describe (50 / 10 per s), less for
    /// mutating calls (20 / 2 per s): room is left for everything else in the account.
    fn default() -> Self {
        Budgets {
            describe: Budget { capacity: 50.0, refill_per_s: 10.0 },
            mutate: Budget { capacity: 20.0, refill_per_s: 2.0 },
        }
    }
}

impl Budgets {
    /// Budgets for Systems Manager Run Command: 20 reads (`GetCommandInvocation` polls) refilled
    /// at 5 per s, 10 commands (`SendCommand`, `CancelCommand`) refilled at 2 per s. SSM's own
    /// rate limits are per account and region and not published per API [U]; these stay well
    /// inside any plausible value for two nodes and still let several clusters work at once.
    pub fn ssm() -> Self {
        Budgets {
            describe: Budget { capacity: 20.0, refill_per_s: 5.0 },
            mutate: Budget { capacity: 10.0, refill_per_s: 2.0 },
        }
    }

    /// The same budgets for a world whose clock runs `speed` times faster than tokio time (the
    /// lab at `--speed`): refill rates × `speed`, capacities unchanged. A speed that is not a
    /// positive finite number leaves them as they are.
    #[must_use]
    pub fn scaled(self, speed: f64) -> Self {
        if !(speed.is_finite() && speed > 0.0) {
            return self;
        }
        let scale = |b: Budget| Budget { capacity: b.capacity, refill_per_s: b.refill_per_s * speed };
        Budgets { describe: scale(self.describe), mutate: scale(self.mutate) }
    }
}

#[derive(Debug)]
struct Bucket {
    budget: Budget,
    /// Tokens left; negative while calls wait for reserved tokens.
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(budget: Budget) -> Self {
        Bucket { budget, tokens: budget.capacity, at: Instant::now() }
    }

    /// Reserves the next token: how long until it is due (zero when one is there now).
    fn reserve(&mut self, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.budget.refill_per_s).min(self.budget.capacity);
        self.at = now;
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.budget.refill_per_s)
        }
    }
}

/// One bucket per category, for every cluster of a process: hold it in an `Arc` and hand the
/// same one to every cluster's EC2 port.
#[derive(Debug)]
pub struct RequestLimiter {
    describe: Mutex<Bucket>,
    mutate: Mutex<Bucket>,
}

impl RequestLimiter {
    /// Full buckets shaped by `budgets`.
    pub fn new(budgets: Budgets) -> Self {
        RequestLimiter {
            describe: Mutex::new(Bucket::new(budgets.describe)),
            mutate: Mutex::new(Bucket::new(budgets.mutate)),
        }
    }

    /// Waits for a token of `category` (in arrival order); returns how long it waited.
    pub async fn admit(&self, category: Category) -> Duration {
        let bucket = match category {
            Category::Describe => &self.describe,
            Category::Mutate => &self.mutate,
        };
        let wait = bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner).reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        wait
    }
}

/// Any EC2 port, with each call first admitted by a (shared) [`RequestLimiter`]: how the
/// simulated world gets the client-side discipline the AWS adapter has built in. One call of
/// the port is one request (the simulator does not page).
pub struct LimitedCloud {
    inner: Arc<dyn Cloud>,
    limiter: Arc<RequestLimiter>,
}

impl LimitedCloud {
    /// `inner`, admitted by `limiter`.
    pub fn new(inner: Arc<dyn Cloud>, limiter: Arc<RequestLimiter>) -> Self {
        LimitedCloud { inner, limiter }
    }
}

#[async_trait::async_trait]
impl Cloud for LimitedCloud {
    async fn describe_volumes(&self, filter: &VolumeFilter) -> PortResult<Vec<Volume>> {
        self.limiter.admit(Category::Describe).await;
        self.inner.describe_volumes(filter).await
    }
    async fn describe_snapshots(&self, filter: &SnapshotFilter) -> PortResult<Vec<Snapshot>> {
        self.limiter.admit(Category::Describe).await;
        self.inner.describe_snapshots(filter).await
    }
    async fn describe_instances(&self, ids: &[InstanceId]) -> PortResult<Vec<Instance>> {
        self.limiter.admit(Category::Describe).await;
        self.inner.describe_instances(ids).await
    }
    async fn volume_initialization(&self, ids: &[VolumeId]) -> PortResult<Vec<VolumeInit>> {
        self.limiter.admit(Category::Describe).await;
        self.inner.volume_initialization(ids).await
    }
    async fn shutdown_behavior(&self, id: &InstanceId) -> PortResult<ShutdownBehavior> {
        self.limiter.admit(Category::Describe).await;
        self.inner.shutdown_behavior(id).await
    }
    async fn create_volume(&self, req: &CreateVolume) -> PortResult<Volume> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.create_volume(req).await
    }
    async fn attach_volume(&self, volume: &VolumeId, instance: &InstanceId, device: &DeviceName) -> PortResult<()> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.attach_volume(volume, instance, device).await
    }
    async fn detach_volume(&self, volume: &VolumeId, instance: &InstanceId) -> PortResult<()> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.detach_volume(volume, instance).await
    }
    async fn create_snapshot(&self, req: &CreateSnapshot) -> PortResult<Snapshot> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.create_snapshot(req).await
    }
    async fn delete_snapshot(&self, id: &SnapshotId) -> PortResult<()> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.delete_snapshot(id).await
    }
    async fn start_instance(&self, id: &InstanceId) -> PortResult<()> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.start_instance(id).await
    }
    async fn create_tags(&self, resource: &str, tags: &Tags) -> PortResult<()> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.create_tags(resource, tags).await
    }
    fn call_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner.call_counts()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_are_validated() {
        assert!(Budget::try_new(0, 1.0).is_err());
        assert!(Budget::try_new(1, 0.0).is_err());
        assert!(Budget::try_new(1, f64::NAN).is_err());
        assert!(Budget::try_new(3, 0.5).is_ok());
    }

    #[test]
    fn scaling_multiplies_refill_only() {
        let b = Budgets::default().scaled(200.0);
        assert!((b.describe.refill_per_s() - 2000.0).abs() < 1e-9);
        assert!((b.describe.capacity() - 50.0).abs() < 1e-9);
        assert_eq!(Budgets::default().scaled(f64::NAN), Budgets::default());
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_bucket_waits_for_its_refill() {
        let tiny = Budget::try_new(2, 1.0).unwrap();
        let limiter = RequestLimiter::new(Budgets { describe: tiny, mutate: tiny });
        let start = Instant::now();
        let mut waited = Duration::ZERO;
        for _ in 0..5 {
            waited += limiter.admit(Category::Describe).await;
        }
        // 2 from the burst, then one a second.
        assert_eq!(start.elapsed().as_secs(), 3);
        assert_eq!(waited.as_secs(), 3);
        assert_eq!(limiter.admit(Category::Mutate).await, Duration::ZERO, "the other bucket is full");
        assert_eq!(start.elapsed().as_secs(), 3);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_budget_in_arrival_order() {
        let budget = Budget::try_new(10, 5.0).unwrap();
        let limiter = Arc::new(RequestLimiter::new(Budgets { describe: budget, mutate: budget }));
        let start = Instant::now();
        // 100 "clusters" call at once: 10 from the burst, then 5 a second, in the order they came.
        let calls = (0..100u32).map(|i| {
            let l = Arc::clone(&limiter);
            async move {
                l.admit(Category::Describe).await;
                (i, start.elapsed())
            }
        });
        let done = futures::future::join_all(calls).await;
        let last = done.iter().map(|(_, t)| *t).max().unwrap();
        assert_eq!(last, Duration::from_secs(18), "(100 - 10) / 5 per second");
        for pair in done.windows(2) {
            assert!(pair[0].1 <= pair[1].1, "served in arrival order: {pair:?}");
        }
        // Ten tokens are due per two seconds: never more than the budget in any window.
        let in_first_two_s = done.iter().filter(|(_, t)| *t < Duration::from_secs(2)).count();
        assert_eq!(in_first_two_s, 10 + 9, "the burst plus the refill of (0, 2) s");
    }
}
