//! The AWS adapter's side of the client-side request budgets: tokens from a (shared)
//! [`RequestLimiter`] before every HTTP call, and call counters.
//!
//! Why this module exists: EC2 throttles per account and region, and every other tool in the
//! account shares those buckets, so mirrorctl keeps to a fraction of them on its own side and
//! *waits* for a token instead of failing (the buckets and why one set is shared by all clusters
//! of a process: [`crate::ports::limit`]). The counters record every HTTP call per API — pages
//! and dry runs included — the figure benchmarks and tests compare with the simulator's; they and
//! the time spent waiting stay per client (per cluster), while the tokens are shared. The SSM
//! transport ([`crate::adapters::node::ssm`]) uses the same machinery with its own buckets
//! ([`Budgets::ssm`]): polls count as Describe-like reads, `SendCommand`/`CancelCommand` as
//! mutating calls, and its counters are named `ssm:<Api>`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use crate::ports::limit::{Budget, Budgets, Category, RequestLimiter};

/// The limiter of one AWS client (`AwsCloud`, the SSM transport): shared tokens, own counters.
#[derive(Debug)]
pub(crate) struct Limiter {
    service: &'static str,
    tokens: Arc<RequestLimiter>,
    counts: Mutex<BTreeMap<String, u64>>,
    waited: Mutex<Duration>,
}

impl Limiter {
    /// An EC2 limiter with buckets of its own, shaped by `budgets`.
    pub(super) fn new(budgets: Budgets) -> Self {
        Limiter::for_service("ec2", budgets)
    }

    /// A limiter with buckets of its own whose counters are named `<service>:<Api>`.
    pub(crate) fn for_service(service: &'static str, budgets: Budgets) -> Self {
        Limiter::shared_for(service, Arc::new(RequestLimiter::new(budgets)))
    }

    /// An EC2 limiter drawing on `tokens`, which other clients may share.
    pub(super) fn shared(tokens: Arc<RequestLimiter>) -> Self {
        Limiter::shared_for("ec2", tokens)
    }

    /// A limiter drawing on `tokens`, which other clients may share, whose counters are named
    /// `<service>:<Api>`.
    pub(crate) fn shared_for(service: &'static str, tokens: Arc<RequestLimiter>) -> Self {
        Limiter { service, tokens, counts: Mutex::new(BTreeMap::new()), waited: Mutex::new(Duration::ZERO) }
    }

    /// Waits for a token of `category`, then counts one call of `api` (the service is prefixed).
    pub(crate) async fn admit(&self, category: Category, api: &str) {
        let waited = self.tokens.admit(category).await;
        *self.waited.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += waited;
        let mut counts = self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        *counts.entry(format!("{}:{api}", self.service)).or_default() += 1;
    }

    pub(crate) fn counts(&self) -> BTreeMap<String, u64> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub(crate) fn waited(&self) -> Duration {
        *self.waited.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn clients_sharing_tokens_wait_for_each_other_and_count_their_own_calls() {
        let tiny = Budget::try_new(2, 1.0).unwrap();
        let shared = Arc::new(RequestLimiter::new(Budgets { describe: tiny, mutate: tiny }));
        let (a, b) = (Limiter::shared(Arc::clone(&shared)), Limiter::shared(Arc::clone(&shared)));
        let start = Instant::now();
        for _ in 0..3 {
            a.admit(Category::Describe, "DescribeVolumes").await;
            b.admit(Category::Describe, "DescribeInstances").await;
        }
        // Six calls on one bucket of 2, refilled 1 a second: the last is due at 4 s.
        assert_eq!(start.elapsed().as_secs(), 4);
        assert_eq!(a.counts()["ec2:DescribeVolumes"], 3);
        assert!(!a.counts().contains_key("ec2:DescribeInstances"), "counters stay per client");
        assert_eq!(b.counts()["ec2:DescribeInstances"], 3);
        assert_eq!((a.waited() + b.waited()).as_secs(), 4);
    }
}
