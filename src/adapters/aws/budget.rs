//! Client-side request budgets and call counters.
//!
//! Why this module exists: EC2 throttles per account and region (DOMAIN.md: Describe* bucket 100,
//! refill 20/s; mutating calls refill 5/s), and every other tool in the account shares those
//! buckets. mirrorctl keeps to a fraction of them on its own side, so it never starts a throttling
//! storm: a call that finds its bucket empty *waits* for a token (on tokio time, so tests can pause
//! it) instead of failing. The counters record every HTTP call per API, the figure benchmarks and
//! tests compare with the simulator's. The SSM transport ([`crate::adapters::node::ssm`]) keeps
//! its own buckets and counters with the same machinery ([`Budgets::ssm`]): polls count as
//! Describe-like reads, `SendCommand`/`CancelCommand` as mutating calls.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

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

#[derive(Debug)]
struct Bucket {
    budget: Budget,
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(budget: Budget) -> Self {
        Bucket { budget, tokens: budget.capacity, at: Instant::now() }
    }

    /// Takes a token if one is there; otherwise says how long until one is.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.budget.refill_per_s).min(self.budget.capacity);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            None
        } else {
            Some(Duration::from_secs_f64((1.0 - self.tokens) / self.budget.refill_per_s))
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
}

/// The buckets and counters of one AWS client (`AwsCloud`, the SSM transport).
#[derive(Debug)]
pub(crate) struct Limiter {
    service: &'static str,
    describe: Mutex<Bucket>,
    mutate: Mutex<Bucket>,
    counts: Mutex<BTreeMap<String, u64>>,
    waited: Mutex<Duration>,
}

impl Limiter {
    /// EC2's limiter: counters named `ec2:<Api>`.
    pub(super) fn new(budgets: Budgets) -> Self {
        Self::for_service("ec2", budgets)
    }

    /// A limiter whose counters are named `<service>:<Api>`.
    pub(crate) fn for_service(service: &'static str, budgets: Budgets) -> Self {
        Limiter {
            service,
            describe: Mutex::new(Bucket::new(budgets.describe)),
            mutate: Mutex::new(Bucket::new(budgets.mutate)),
            counts: Mutex::new(BTreeMap::new()),
            waited: Mutex::new(Duration::ZERO),
        }
    }

    /// Waits for a token of `category`, then counts one call of `api` (the service is prefixed).
    pub(crate) async fn admit(&self, category: Category, api: &str) {
        let bucket = match category {
            Category::Describe => &self.describe,
            Category::Mutate => &self.mutate,
        };
        loop {
            let wait = {
                let mut b = bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                b.take(Instant::now())
            };
            match wait {
                None => break,
                Some(d) => {
                    *self.waited.lock().unwrap_or_else(std::sync::PoisonError::into_inner) += d;
                    tokio::time::sleep(d).await;
                }
            }
        }
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

    #[test]
    fn budgets_are_validated() {
        assert!(Budget::try_new(0, 1.0).is_err());
        assert!(Budget::try_new(1, 0.0).is_err());
        assert!(Budget::try_new(1, f64::NAN).is_err());
        assert!(Budget::try_new(3, 0.5).is_ok());
    }

    #[tokio::test(start_paused = true)]
    async fn an_empty_bucket_waits_for_its_refill() {
        let tiny = Budget::try_new(2, 1.0).unwrap();
        let limiter = Limiter::new(Budgets { describe: tiny, mutate: tiny });
        let start = Instant::now();
        for _ in 0..5 {
            limiter.admit(Category::Describe, "DescribeVolumes").await;
        }
        // 2 from the burst, then one a second.
        assert_eq!(start.elapsed().as_secs(), 3);
        limiter.admit(Category::Mutate, "CreateTags").await;
        assert_eq!(start.elapsed().as_secs(), 3, "the other bucket is full");
        assert_eq!(limiter.counts()["ec2:DescribeVolumes"], 5);
        assert_eq!(limiter.counts()["ec2:CreateTags"], 1);
        assert_eq!(limiter.waited().as_secs(), 3);
    }
}
