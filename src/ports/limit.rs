//! Client-side EC2 request budgets, shared by every cluster of one process: middleware around the
//! cloud port.
//!
//! Why this module exists: EC2 throttles per account and region (DOMAIN.md: Describe* bucket 100,
//! refill 20/s; mutating calls refill 5/s), not per cluster. A daemon reconciling 1,000 clusters
//! that gave each cluster its own client-side bucket would offer the account 1,000 times its
//! budget and start a throttling storm (every call answered `RequestLimitExceeded`, every cluster
//! backing off at random). So one [`RequestLimiter`] — one bucket per category — is made per
//! account and region ([`Limiters`]) and handed to every cluster's EC2 port in them: the AWS adapter takes tokens from it before
//! each HTTP call (`AwsCloud::share_limiter`), and [`LimitedCloud`] puts any other [`Cloud`] (the
//! simulated world in the lab and the benchmarks) under the same discipline.
//!
//! Decisions:
//! - **Wait, never fail.** A call that finds its bucket empty sleeps until its token is due.
//! - **Mutating calls: oldest operation first.** Calls that find the bucket empty queue; one task
//!   per bucket hands each token, when it comes back, to the most urgent waiting call, which wakes
//!   once. A mutating call's urgency is the [`Priority`] its reconcile loop set: the operation
//!   that started first goes first, ties by cluster name, then arrival order; mutating calls
//!   outside any operation come last. In arrival order, 1,000 restores move in lockstep: every
//!   cluster's attach queues behind every other cluster's create, so every business stays down
//!   until nearly the last call of the storm. By age, `mirrorctl bench` measured the median
//!   cluster restored 24 % sooner at 100 and 1,000 clusters, and the last one within 2 % of the
//!   arrival-order time.
//! - **Describe calls: arrival order.** Two rankings were measured and dropped: by age like
//!   mutating calls, and operations' polls before idle looks. Both raised the 1,000-cluster
//!   storm's total from 2,077 s to 2,249 s (9.8 mutating calls per cluster instead of 8.9): the
//!   favoured polls starved the looks that let other clusters reach their next mutating call.
//! - A caller that goes away while waiting (a stop request) leaves its token to the next one.
//! - **The priority rides with the task.** A reconcile loop names its calls' [`Priority`] once per
//!   pass ([`with_priority`], [`set_priority`]); the calls themselves are made deep inside
//!   observation and execution, through the [`Cloud`] trait. Passing it as a parameter would add
//!   it to every cloud call for the sake of this one middleware, so it is task-local instead, and
//!   owned here, beside the port: the loop that sets it and the limiter that reads it both depend
//!   on this module, and nothing else does. A call outside [`with_priority`] has none.
//! - **tokio time.** Buckets refill on `tokio::time::Instant`, so paused-time tests and
//!   benchmarks control them. A simulated world running `speed` times faster than tokio time
//!   refills its own buckets per *model* second: give its limiter [`Budgets::scaled`] by `speed`.

use std::cell::RefCell;
use std::collections::BinaryHeap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::ids::{ClusterName, DeviceName, InstanceId, SnapshotId, VolumeId, Zone};
use crate::ports::PortResult;
use crate::ports::cloud::{
    Cloud, CopySnapshot, CreateSnapshot, CreateSnapshotSet, CreateVolume, FastRestore, Instance, ShutdownBehavior,
    Snapshot, SnapshotFilter, Tags, Volume, VolumeFilter, VolumeInit,
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

/// Whose call it is: the operation's start and the cluster. Calls of operations that started
/// earlier go first; among operations that started at the same instant, the cluster name decides.
/// A call made outside any operation (an idle cluster's resync look) has no priority and waits
/// behind every call that has one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority {
    /// When the operation started (journal).
    pub since: jiff::Timestamp,
    /// The cluster.
    pub cluster: ClusterName,
}

tokio::task_local! {
    /// The priority of the calls the current task makes (see [`with_priority`]).
    static PRIORITY: RefCell<Option<Priority>>;
}

/// Runs `f` with a priority slot for the calls it makes; [`set_priority`] fills it as `f` goes
/// (one reconcile loop sets it per pass, from the operation it is pursuing).
pub async fn with_priority<F: Future>(f: F) -> F::Output {
    PRIORITY.scope(RefCell::new(None), f).await
}

/// Sets the priority of the current task's next calls (no effect outside [`with_priority`]).
pub fn set_priority(p: Option<Priority>) {
    let _ = PRIORITY.try_with(|slot| *slot.borrow_mut() = p);
}

fn current_priority() -> Option<Priority> {
    PRIORITY.try_with(|slot| slot.borrow().clone()).ok().flatten()
}

/// A call waiting for a token: more urgent first (an operation's call before an idle look, then
/// by [`Priority`]), then in arrival order.
#[derive(Debug)]
struct Waiter {
    key: (bool, Option<Priority>, u64),
    ready: oneshot::Sender<()>,
}

impl PartialEq for Waiter {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}
impl Eq for Waiter {}
impl PartialOrd for Waiter {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Waiter {
    /// Reversed: the `BinaryHeap` pops the smallest key (the most urgent) first.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.key.cmp(&self.key)
    }
}

/// The shortest pause of a bucket's granting task between two looks.
const MIN_GRANT_SLEEP: Duration = Duration::from_millis(1);

#[derive(Debug)]
struct Bucket {
    budget: Budget,
    /// Tokens left.
    tokens: f64,
    at: Instant,
    waiting: BinaryHeap<Waiter>,
    arrivals: u64,
    /// Whether a task is handing out tokens to the waiting calls.
    granting: bool,
}

impl Bucket {
    fn new(budget: Budget) -> Self {
        Bucket {
            budget,
            tokens: budget.capacity,
            at: Instant::now(),
            waiting: BinaryHeap::new(),
            arrivals: 0,
            granting: false,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.budget.refill_per_s).min(self.budget.capacity);
        self.at = now;
    }

    /// Gives the tokens there are to the most urgent waiting calls; how long until the next
    /// token is due, or `None` when nobody waits any more.
    fn grant(&mut self, now: Instant) -> Option<Duration> {
        self.refill(now);
        while self.tokens >= 1.0 {
            let Some(w) = self.waiting.pop() else { break };
            // A caller that went away (a stop request) does not use its token.
            if w.ready.send(()).is_ok() {
                self.tokens -= 1.0;
            }
        }
        if self.waiting.is_empty() {
            self.granting = false;
            return None;
        }
        // Never a zero sleep: a bucket a rounding error short of a token would otherwise be
        // looked at again at the same instant, forever (under paused time nothing moves on).
        Some(Duration::from_secs_f64((1.0 - self.tokens) / self.budget.refill_per_s).max(MIN_GRANT_SLEEP))
    }
}

/// Hands out `bucket`'s tokens as they come back until nobody waits.
async fn grant_until_empty(bucket: Arc<Mutex<Bucket>>) {
    loop {
        let next = bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner).grant(Instant::now());
        match next {
            Some(d) => tokio::time::sleep(d).await,
            None => return,
        }
    }
}

/// One bucket per category, for every cluster of a process: hold it in an `Arc` and hand the
/// same one to every cluster's EC2 port.
#[derive(Debug)]
pub struct RequestLimiter {
    describe: Arc<Mutex<Bucket>>,
    mutate: Arc<Mutex<Bucket>>,
    /// Whether mutating calls are served oldest operation first (else in arrival order).
    by_age: bool,
}

impl RequestLimiter {
    /// Full buckets shaped by `budgets`; mutating calls served oldest operation first.
    pub fn new(budgets: Budgets) -> Self {
        RequestLimiter {
            describe: Arc::new(Mutex::new(Bucket::new(budgets.describe))),
            mutate: Arc::new(Mutex::new(Bucket::new(budgets.mutate))),
            by_age: true,
        }
    }

    /// The same buckets serving every call in arrival order, whatever its priority: what
    /// `mirrorctl bench` compares the oldest-first order with.
    pub fn in_arrival_order(budgets: Budgets) -> Self {
        RequestLimiter { by_age: false, ..RequestLimiter::new(budgets) }
    }

    /// Waits for a token of `category` (most urgent caller first, see [`Priority`]); returns how
    /// long it waited.
    pub async fn admit(&self, category: Category) -> Duration {
        let bucket = match category {
            Category::Describe => &self.describe,
            Category::Mutate => &self.mutate,
        };
        let ready = {
            let mut b = bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            b.refill(Instant::now());
            if b.waiting.is_empty() && b.tokens >= 1.0 {
                b.tokens -= 1.0;
                return Duration::ZERO;
            }
            let (tx, rx) = oneshot::channel();
            // Describe calls stay in arrival order: a poll is cheap and short, and an old
            // operation polling ahead of everyone would starve the looks that let younger ones
            // reach their next mutating call.
            let ranked = self.by_age && category == Category::Mutate;
            let p = if ranked { current_priority() } else { None };
            b.arrivals += 1;
            let key = (ranked && p.is_none(), p, b.arrivals);
            b.waiting.push(Waiter { key, ready: tx });
            if !b.granting {
                b.granting = true;
                tokio::spawn(grant_until_empty(Arc::clone(bucket)));
            }
            rx
        };
        let start = Instant::now();
        // The granting task only ends once every waiter was served or had gone away.
        let _ = ready.await;
        start.elapsed()
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
    async fn create_snapshot_set(&self, req: &CreateSnapshotSet) -> PortResult<Vec<Snapshot>> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.create_snapshot_set(req).await
    }

    async fn copy_snapshot(&self, req: &CopySnapshot) -> PortResult<SnapshotId> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.copy_snapshot(req).await
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
    async fn describe_fast_snapshot_restores(&self, snapshot: &SnapshotId) -> PortResult<Vec<FastRestore>> {
        self.limiter.admit(Category::Describe).await;
        self.inner.describe_fast_snapshot_restores(snapshot).await
    }
    async fn enable_fast_snapshot_restores(
        &self,
        snapshot: &SnapshotId,
        zones: &[Zone],
    ) -> PortResult<Vec<FastRestore>> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.enable_fast_snapshot_restores(snapshot, zones).await
    }
    async fn disable_fast_snapshot_restores(
        &self,
        snapshot: &SnapshotId,
        zones: &[Zone],
    ) -> PortResult<Vec<FastRestore>> {
        self.limiter.admit(Category::Mutate).await;
        self.inner.disable_fast_snapshot_restores(snapshot, zones).await
    }
    async fn fast_restore_permitted(&self, snapshot: &SnapshotId, zones: &[Zone]) -> PortResult<()> {
        // Two dry runs (enable and disable), each a mutating request.
        self.limiter.admit(Category::Mutate).await;
        self.limiter.admit(Category::Mutate).await;
        self.inner.fast_restore_permitted(snapshot, zones).await
    }

    /// The inner port's: this limiter keeps to its own region's budget, not another's.
    fn in_region(&self, region: &crate::ids::Region) -> PortResult<Arc<dyn Cloud>> {
        self.inner.in_region(region)
    }
    fn call_counts(&self) -> std::collections::BTreeMap<String, u64> {
        self.inner.call_counts()
    }
}

/// One [`RequestLimiter`] per AWS account and region, made on first use: EC2 throttles each
/// account in each region on its own, so the clusters of one account share a budget while a
/// cluster in another account (its own `role_arn`) or region does not wait for theirs.
#[derive(Debug)]
pub struct Limiters {
    budgets: Budgets,
    by_account: Mutex<std::collections::BTreeMap<(String, String), Arc<RequestLimiter>>>,
}

impl Limiters {
    /// Limiters shaped by `budgets`, none made yet.
    pub fn new(budgets: Budgets) -> Self {
        Limiters { budgets, by_account: Mutex::new(std::collections::BTreeMap::new()) }
    }

    /// The limiter of `account` in `region` (the same one for every caller asking for them).
    pub fn for_account(&self, account: &str, region: &crate::ids::Region) -> Arc<RequestLimiter> {
        let mut map = self.by_account.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let limiter = map
            .entry((account.to_owned(), region.as_str().to_owned()))
            .or_insert_with(|| Arc::new(RequestLimiter::new(self.budgets)));
        Arc::clone(limiter)
    }

    /// How many limiters exist (one per account and region seen).
    pub fn len(&self) -> usize {
        self.by_account.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    /// Whether none was made yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_accounts_get_two_limiters_and_one_account_one() {
        let limiters = Limiters::new(Budgets::default());
        let tokyo = crate::ids::Region::parse("ap-northeast-1").unwrap();
        let osaka = crate::ids::Region::parse("ap-northeast-3").unwrap();
        let a = limiters.for_account("111111111111", &tokyo);
        let a_again = limiters.for_account("111111111111", &tokyo);
        let b = limiters.for_account("222222222222", &tokyo);
        let a_osaka = limiters.for_account("111111111111", &osaka);
        assert!(Arc::ptr_eq(&a, &a_again), "clusters of one account and region share one budget");
        assert!(!Arc::ptr_eq(&a, &b), "another account has its own");
        assert!(!Arc::ptr_eq(&a, &a_osaka), "another region has its own");
        assert_eq!(limiters.len(), 3);
    }

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

    #[tokio::test(start_paused = true)]
    async fn the_oldest_operation_goes_first_and_idle_looks_last() {
        let budget = Budget::try_new(1, 1.0).unwrap();
        let limiter = Arc::new(RequestLimiter::new(Budgets { describe: budget, mutate: budget }));
        let t0 = jiff::Timestamp::UNIX_EPOCH;
        let prio = |secs: i64, cluster: &str| Priority {
            since: t0 + jiff::SignedDuration::from_secs(secs),
            cluster: ClusterName::parse(cluster).unwrap(),
        };
        // Empty the burst, then queue, in this arrival order: an idle look, a young operation,
        // an old one, and an operation as old as that one on a cluster whose name sorts first.
        limiter.admit(Category::Mutate).await;
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let call = |name: &'static str, p: Option<Priority>| {
            let (l, order) = (Arc::clone(&limiter), Arc::clone(&order));
            tokio::spawn(with_priority(async move {
                set_priority(p);
                l.admit(Category::Mutate).await;
                order.lock().unwrap().push((name, start.elapsed().as_secs()));
            }))
        };
        let mut tasks = Vec::new();
        for (name, p) in [
            ("idle", None),
            ("young", Some(prio(100, "c1"))),
            ("old-c2", Some(prio(10, "c2"))),
            ("old-c1", Some(prio(10, "c1"))),
        ] {
            tasks.push(call(name, p));
            tokio::task::yield_now().await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        let got = order.lock().unwrap().clone();
        assert_eq!(got, vec![("old-c1", 1), ("old-c2", 2), ("young", 3), ("idle", 4)]);

        // Describe calls, and every call of a limiter in arrival order, ignore priorities.
        for (limiter, category) in [
            (Arc::new(RequestLimiter::new(Budgets { describe: budget, mutate: budget })), Category::Describe),
            (
                Arc::new(RequestLimiter::in_arrival_order(Budgets { describe: budget, mutate: budget })),
                Category::Mutate,
            ),
        ] {
            limiter.admit(category).await;
            let order = Arc::new(Mutex::new(Vec::new()));
            let mut tasks = Vec::new();
            for (name, p) in [("idle", None), ("young", Some(prio(100, "c1"))), ("old", Some(prio(10, "c1")))] {
                let (l, order) = (Arc::clone(&limiter), Arc::clone(&order));
                tasks.push(tokio::spawn(with_priority(async move {
                    set_priority(p);
                    l.admit(category).await;
                    order.lock().unwrap().push(name);
                })));
                tokio::task::yield_now().await;
            }
            for t in tasks {
                t.await.unwrap();
            }
            assert_eq!(*order.lock().unwrap(), vec!["idle", "young", "old"], "{category:?}");
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_caller_that_goes_away_leaves_its_token_to_the_next() {
        let budget = Budget::try_new(1, 1.0).unwrap();
        let limiter = Arc::new(RequestLimiter::new(Budgets { describe: budget, mutate: budget }));
        limiter.admit(Category::Describe).await;
        let start = Instant::now();
        let gone = {
            let l = Arc::clone(&limiter);
            tokio::spawn(async move { l.admit(Category::Describe).await })
        };
        tokio::task::yield_now().await;
        gone.abort();
        assert!(gone.await.is_err(), "cancelled");
        limiter.admit(Category::Describe).await;
        assert_eq!(start.elapsed().as_secs(), 1, "the next caller got the first token that came back");
    }

    #[tokio::test(start_paused = true)]
    async fn a_bucket_a_rounding_error_short_of_a_token_still_lets_time_pass() {
        let mut b = Bucket::new(Budget::try_new(1, 5.0).unwrap());
        b.tokens = 1.0 - 1e-12;
        let (tx, _rx) = oneshot::channel();
        b.waiting.push(Waiter { key: (true, None, 1), ready: tx });
        let next = b.grant(b.at).expect("somebody waits");
        assert!(next >= MIN_GRANT_SLEEP, "{next:?}: a zero sleep under paused time spins forever");
    }
}
