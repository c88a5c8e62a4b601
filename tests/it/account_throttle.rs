//! Many clusters in one AWS account: simulated worlds forked into one shared set of EC2 throttle
//! buckets, and the client-side limiter one process shares across its clusters. On paused tokio
//! time, so every wait is instant and every count exact.

use std::sync::Arc;
use std::time::Duration;

use mirrorctl::ports::ErrorClass;
use mirrorctl::ports::cloud::{Cloud, Tags, VolumeFilter};
use mirrorctl::ports::limit::{Budget, Budgets, LimitedCloud, RequestLimiter};
use mirrorctl::sim::{AccountThrottle, Scenario, SimWorld, ThrottleBudgets};

fn tiny_account() -> ThrottleBudgets {
    ThrottleBudgets {
        describe_capacity: 4.0,
        describe_refill_per_s: 2.0,
        mutate_capacity: 2.0,
        mutate_refill_per_s: 1.0,
    }
}

#[tokio::test(start_paused = true)]
async fn forked_worlds_draw_from_one_account_and_keep_their_own_state() {
    let world = SimWorld::new(Scenario::windows_runbook(), 7, 1.0);
    let account = Arc::new(AccountThrottle::new(tiny_account(), world.now()));
    let (a, b) = (world.fork_in(Arc::clone(&account)), world.fork_in(Arc::clone(&account)));
    let (ca, cb) = (a.ports().cloud, b.ports().cloud);
    let all = VolumeFilter::default();
    // Four tokens for both clusters together: the fifth call, on either, is refused.
    for cloud in [&ca, &cb, &ca, &cb] {
        cloud.describe_volumes(&all).await.expect("a token is left");
    }
    let refused = cb.describe_volumes(&all).await.expect_err("the account's bucket is empty");
    assert_eq!(refused.code, "RequestLimitExceeded");
    assert_eq!(refused.class, ErrorClass::Throttled);
    let tally = account.tally();
    assert_eq!((tally.describe_ok, tally.describe_throttled), (4, 1));
    // The untouched original keeps its own full buckets.
    let own = world.ports().cloud;
    for _ in 0..10 {
        own.describe_volumes(&all).await.expect("the original world is not in the shared account");
    }
    assert_eq!(account.tally().total(), 5);
    // Each fork is its own cluster: a change in one is not seen in the other.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let volume = ca.describe_volumes(&all).await.expect("refilled")[0].id.clone();
    let tags: Tags = [("k".to_owned(), "v".to_owned())].into();
    ca.create_tags(volume.as_str(), &tags).await.expect("a mutating token");
    let tagged = |cloud: &Arc<dyn Cloud>| {
        let cloud = Arc::clone(cloud);
        let filter = VolumeFilter { tags: tags.clone(), ..VolumeFilter::default() };
        async move { cloud.describe_volumes(&filter).await.expect("refilled").len() }
    };
    assert_eq!(tagged(&ca).await, 1);
    assert_eq!(tagged(&cb).await, 0, "the other fork did not see the change");
    assert_eq!(tagged(&own).await, 0, "nor did the original");
    assert_eq!(a.call_counts().get("ec2:CreateTags"), Some(&1));
    assert_eq!(b.call_counts().get("ec2:CreateTags"), None);
}

/// `clusters` forks calling `DescribeVolumes` `calls` times each, all at once; returns the
/// account's tally and the model seconds the whole took.
async fn storm(clusters: usize, calls: usize, limiter: Option<Arc<RequestLimiter>>) -> (u64, u64, f64) {
    let world = SimWorld::new(Scenario::windows_runbook(), 7, 1.0);
    let account = Arc::new(AccountThrottle::new(ThrottleBudgets::default(), world.now()));
    let start = world.now();
    let loops = (0..clusters).map(|_| {
        let fork = world.fork_in(Arc::clone(&account));
        let inner = fork.ports().cloud;
        let cloud: Arc<dyn Cloud> = match &limiter {
            Some(l) => Arc::new(LimitedCloud::new(inner, Arc::clone(l))),
            None => inner,
        };
        async move {
            for _ in 0..calls {
                // What the reconcile loop does with throttling: back off and try again.
                while cloud.describe_volumes(&VolumeFilter::default()).await.is_err() {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }
    });
    futures::future::join_all(loops).await;
    let tally = account.tally();
    (tally.describe_ok, tally.describe_throttled, world.now().duration_since(start).as_secs_f64())
}

#[tokio::test(start_paused = true)]
async fn one_shared_limiter_keeps_many_clusters_under_the_account_budget() {
    // 50 clusters × 20 Describes = 1,000 calls on a bucket of 100 refilled 20/s: ≥ 45 s.
    let (ok, throttled, _) = storm(50, 20, None).await;
    assert_eq!(ok, 1000);
    assert!(throttled > 1000, "without a client-side limiter the account throttles a storm: {throttled}");

    let account = ThrottleBudgets::default();
    let budget = Budget::try_new(50, account.describe_refill_per_s).unwrap();
    let limiter = Arc::new(RequestLimiter::new(Budgets { describe: budget, mutate: budget }));
    let (ok, throttled, took) = storm(50, 20, Some(limiter)).await;
    assert_eq!((ok, throttled), (1000, 0), "the shared limiter sends no call the account would refuse");
    // (1000 − 50 burst) / 20 per s plus the last round trip, against (1000 − 100) / 20: within 10 %.
    let bound = (1000.0 - account.describe_capacity) / account.describe_refill_per_s;
    assert!(took >= bound && took <= bound * 1.1, "{took} s for a bound of {bound} s");
}
