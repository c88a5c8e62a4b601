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
//! - **Most urgent call first, in both buckets.** Calls that find the bucket empty queue; one task
//!   per bucket hands each token, when it comes back, to the most urgent waiting call, which
//!   wakes once. Urgency is, in this order: a call of an operation before an idle look (an idle
//!   cluster's resync); an operation's *opening* calls (made before any of its mutating EC2
//!   calls was accepted) before every operation's later ones; the operation that started first;
//!   the cluster name; the caller that began first ([`with_priority`]); arrival. See
//!   [`Priority`] and [`Stage`].
//! - **Why opening calls first.** A restore's creates run beside its group stop and the
//!   configuration push, which need no token, but its next pass waits for the whole batch. When
//!   the youngest operations' creates queued behind everyone's later calls, those operations did
//!   their CLUSTERPRO work only at the end of the storm, with the mutating bucket idle and every
//!   other cluster done; a create answered after its batch's group stop was also not yet visible
//!   to the next pass, which created it again (same token, one more mutating call). Opening calls
//!   first: `mirrorctl bench`, seed 1, model time, 1,000 clusters 1,969 s → 1,715 s and 9.6 → 8.4
//!   mutating calls per cluster, 100 clusters 213.8 s → 197.8 s; the median cluster is back later
//!   (984 → 1,117 s; 129 → 140 s). The later calls still go oldest operation first: in arrival
//!   order every cluster's attach queues behind every other cluster's create, and every business
//!   stays down until nearly the end of the storm.
//! - **One caller's reads together.** Among equal priorities the caller that began first goes
//!   first. Before, Describe calls were served in arrival order: the first looks of 1,000
//!   clusters (six Describes each, issued in rounds) interleaved, so no cluster finished its look
//!   until nearly all had, the mutating bucket stood idle for the first 540 s, and by then every
//!   next pass was due a full look again (22.8 Describes per cluster). Grouped by caller, the
//!   first cluster acts after its own look: 1,000 clusters 2,454 s → 1,969 s, 100 clusters 248.5 s
//!   → 213.8 s (with the old mutating order; seed 1, model time).
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
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
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
    /// rate limits are per account and region and not published per API [U]; the daemon gives
    /// every cluster of one account and region the same one, as for EC2. These figures stay well
    /// inside any plausible value; whether an account can afford more is not known [U].
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

/// How far an operation has come, as far as the request budget cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Stage {
    /// None of its mutating EC2 calls was accepted yet: its calls open the work it does beside
    /// them (a restore's creates run beside its group stop and configuration push).
    Opening,
    /// Past its first mutating EC2 call.
    Later,
}

/// Whose call it is: how far its operation has come, when the operation started, and the
/// cluster. Opening calls go first, then operations that started earlier; among operations
/// that started at the same instant, the cluster name decides. A call made outside any
/// operation (an idle cluster's resync look) has no priority and waits behind every call that
/// has one.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Priority {
    /// Whether the operation's first mutating EC2 call is still to come.
    pub stage: Stage,
    /// When the operation started (journal).
    pub since: jiff::Timestamp,
    /// The cluster.
    pub cluster: ClusterName,
}

/// What the current task's calls carry: the priority its loop set, and the loop's place in the
/// order the loops began.
#[derive(Debug)]
struct Slot {
    priority: Option<Priority>,
    caller: u64,
}

tokio::task_local! {
    /// The priority of the calls the current task makes (see [`with_priority`]).
    static PRIORITY: RefCell<Slot>;
}

/// Numbers the callers ([`with_priority`] scopes) in the order they began.
static NEXT_CALLER: AtomicU64 = AtomicU64::new(0);

/// Runs `f` as one caller, with a priority slot for the calls it makes; [`set_priority`] fills
/// it as `f` goes (one reconcile loop sets it per pass, from the operation it is pursuing).
/// Callers are numbered in the order they began: among calls of equal priority the earlier
/// caller's go first, so one caller's reads complete together instead of every caller's in
/// lockstep.
pub async fn with_priority<F: Future>(f: F) -> F::Output {
    let caller = NEXT_CALLER.fetch_add(1, AtomicOrdering::Relaxed);
    PRIORITY.scope(RefCell::new(Slot { priority: None, caller }), f).await
}

/// Sets the priority of the current task's next calls (no effect outside [`with_priority`]).
pub fn set_priority(p: Option<Priority>) {
    let _ = PRIORITY.try_with(|slot| slot.borrow_mut().priority = p);
}

/// The current task's priority and caller number; a call outside any [`with_priority`] has
/// neither and comes after every caller's.
fn current() -> (Option<Priority>, u64) {
    PRIORITY
        .try_with(|slot| {
            let s = slot.borrow();
            (s.priority.clone(), s.caller)
        })
        .unwrap_or((None, u64::MAX))
}

/// A call waiting for a token, ordered by urgency: an operation's call before an idle look,
/// then by [`Priority`], then the caller that began first, then arrival.
#[derive(Debug)]
struct Waiter {
    key: (bool, Option<Priority>, u64, u64),
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
    /// Whether calls are served most urgent first (else in arrival order).
    by_urgency: bool,
}

impl RequestLimiter {
    /// Full buckets shaped by `budgets`; calls served most urgent first (see the module doc).
    pub fn new(budgets: Budgets) -> Self {
        RequestLimiter {
            describe: Arc::new(Mutex::new(Bucket::new(budgets.describe))),
            mutate: Arc::new(Mutex::new(Bucket::new(budgets.mutate))),
            by_urgency: true,
        }
    }

    /// The same buckets serving every call in arrival order, whatever its priority: what
    /// `mirrorctl bench` compares mirrorctl's order with.
    pub fn in_arrival_order(budgets: Budgets) -> Self {
        RequestLimiter { by_urgency: false, ..RequestLimiter::new(budgets) }
    }

    /// Waits for a token of `category` (most urgent call first, see [`Priority`]); returns how
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
            b.arrivals += 1;
            let key = if self.by_urgency {
                let (p, caller) = current();
                (p.is_none(), p, caller, b.arrivals)
            } else {
                (false, None, 0, b.arrivals)
            };
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

    fn prio(stage: Stage, secs: i64, cluster: &str) -> Priority {
        Priority {
            stage,
            since: jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(secs),
            cluster: ClusterName::parse(cluster).unwrap(),
        }
    }

    /// Empties `category`'s one-token bucket, then queues one call per entry, in this arrival
    /// order, each from a caller of its own begun in the same order; answers the order served.
    async fn served(
        limiter: &Arc<RequestLimiter>,
        category: Category,
        calls: Vec<(&'static str, Option<Priority>)>,
    ) -> Vec<&'static str> {
        limiter.admit(category).await;
        let order = Arc::new(Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for (name, p) in calls {
            let (l, order) = (Arc::clone(limiter), Arc::clone(&order));
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
        order.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn opening_calls_first_then_the_oldest_operation_and_idle_looks_last_in_both_buckets() {
        let budget = Budget::try_new(1, 1.0).unwrap();
        for category in [Category::Mutate, Category::Describe] {
            let limiter = Arc::new(RequestLimiter::new(Budgets { describe: budget, mutate: budget }));
            let start = Instant::now();
            let got = served(
                &limiter,
                category,
                vec![
                    ("idle", None),
                    ("young", Some(prio(Stage::Later, 100, "c1"))),
                    ("old-c2", Some(prio(Stage::Later, 10, "c2"))),
                    ("old-c1", Some(prio(Stage::Later, 10, "c1"))),
                    // A younger operation's first mutating call (a restore's create) goes before
                    // every later call of older operations.
                    ("opening", Some(prio(Stage::Opening, 200, "c3"))),
                ],
            )
            .await;
            assert_eq!(got, ["opening", "old-c1", "old-c2", "young", "idle"], "{category:?}");
            assert_eq!(start.elapsed().as_secs(), 5, "one token a second, none lost to the ordering");
        }
        // A limiter in arrival order ignores priorities.
        let limiter = Arc::new(RequestLimiter::in_arrival_order(Budgets { describe: budget, mutate: budget }));
        let got = served(
            &limiter,
            Category::Mutate,
            vec![
                ("idle", None),
                ("young", Some(prio(Stage::Later, 100, "c1"))),
                ("opening", Some(prio(Stage::Opening, 200, "c3"))),
                ("old", Some(prio(Stage::Later, 10, "c1"))),
            ],
        )
        .await;
        assert_eq!(got, ["idle", "young", "opening", "old"]);
    }

    /// Two clusters' first looks issued in rounds (one read, then the next once the first was
    /// sent): the caller that began first has all its reads served before the other's, so it can
    /// act while the other still reads. In arrival order both looks would end at the very end.
    #[tokio::test(start_paused = true)]
    async fn one_callers_reads_are_served_together_not_in_lockstep() {
        let budget = Budget::try_new(1, 1.0).unwrap();
        let limiter = Arc::new(RequestLimiter::new(Budgets { describe: budget, mutate: budget }));
        limiter.admit(Category::Describe).await;
        let start = Instant::now();
        let order = Arc::new(Mutex::new(Vec::new()));
        let caller = |name: &'static str| {
            let (l, order) = (Arc::clone(&limiter), Arc::clone(&order));
            tokio::spawn(with_priority(async move {
                let read = |round: u32| {
                    let (l, order) = (Arc::clone(&l), Arc::clone(&order));
                    async move {
                        // The second round is sent after the other caller's first.
                        for _ in 0..round * 4 {
                            tokio::task::yield_now().await;
                        }
                        l.admit(Category::Describe).await;
                        order.lock().unwrap().push((name, round, start.elapsed().as_secs()));
                    }
                };
                futures::join!(read(0), read(1));
            }))
        };
        let (a, b) = (caller("a"), caller("b"));
        a.await.unwrap();
        b.await.unwrap();
        let got = order.lock().unwrap().clone();
        assert_eq!(got, [("a", 0, 1), ("a", 1, 2), ("b", 0, 3), ("b", 1, 4)], "a's look ends after 2 s, not 3");
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
        b.waiting.push(Waiter { key: (true, None, 0, 1), ready: tx });
        let next = b.grant(b.at).expect("somebody waits");
        assert!(next >= MIN_GRANT_SLEEP, "{next:?}: a zero sleep under paused time spins forever");
    }
}
