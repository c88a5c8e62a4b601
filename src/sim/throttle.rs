//! EC2 request throttling: token buckets per account, refilled in model time.
//!
//! Why this module exists: EC2 answers `RequestLimitExceeded` when an account spends its request
//! budget, and the controller must treat that as "back off", never as a failure. The simulated
//! world keeps EC2's two buckets (Describe* and mutating calls) so tests and benchmarks can see
//! how many calls a flow costs and whether it stays under the bound.
//!
//! A world normally keeps its buckets in its own (persisted) state: one world, one cluster, one
//! account. To put many clusters in **one** account — the multi-cluster benchmark — the worlds
//! share an [`AccountThrottle`] ([`super::SimWorld::fork_in`]): one pair of buckets and the
//! account's tally of accepted and throttled calls, in memory only.

use std::sync::Mutex;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

/// The request budgets of the simulated account (EC2's defaults).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThrottleBudgets {
    /// Describe* bucket size.
    pub describe_capacity: f64,
    /// Describe* refill per model second.
    pub describe_refill_per_s: f64,
    /// Mutating-call bucket size.
    pub mutate_capacity: f64,
    /// Mutating-call refill per model second.
    pub mutate_refill_per_s: f64,
}

impl Default for ThrottleBudgets {
    fn default() -> Self {
        ThrottleBudgets {
            describe_capacity: 100.0,
            describe_refill_per_s: 20.0,
            mutate_capacity: 50.0,
            mutate_refill_per_s: 5.0,
        }
    }
}

/// What an account's buckets let through and refused.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ThrottleTally {
    /// Describe* calls accepted.
    pub describe_ok: u64,
    /// Describe* calls answered `RequestLimitExceeded`.
    pub describe_throttled: u64,
    /// Mutating calls accepted.
    pub mutate_ok: u64,
    /// Mutating calls answered `RequestLimitExceeded`.
    pub mutate_throttled: u64,
}

impl ThrottleTally {
    /// Every call the account received.
    pub fn total(&self) -> u64 {
        self.describe_ok + self.describe_throttled + self.mutate_ok + self.mutate_throttled
    }
    /// Calls answered `RequestLimitExceeded`.
    pub fn throttled(&self) -> u64 {
        self.describe_throttled + self.mutate_throttled
    }
}

/// One account's EC2 request buckets, shared by several simulated worlds (clusters).
#[derive(Debug)]
pub struct AccountThrottle {
    budgets: ThrottleBudgets,
    state: Mutex<AccountState>,
}

#[derive(Debug)]
struct AccountState {
    describe: TokenBucket,
    mutate: TokenBucket,
    tally: ThrottleTally,
}

impl AccountThrottle {
    /// Full buckets shaped by `budgets`, as of model time `now`.
    pub fn new(budgets: ThrottleBudgets, now: Timestamp) -> Self {
        let state = AccountState {
            describe: TokenBucket::full(budgets.describe_capacity, budgets.describe_refill_per_s, now),
            mutate: TokenBucket::full(budgets.mutate_capacity, budgets.mutate_refill_per_s, now),
            tally: ThrottleTally::default(),
        };
        AccountThrottle { budgets, state: Mutex::new(state) }
    }

    /// The buckets' shapes.
    pub fn budgets(&self) -> &ThrottleBudgets {
        &self.budgets
    }

    /// What was accepted and throttled so far.
    pub fn tally(&self) -> ThrottleTally {
        self.state.lock().expect("account throttle mutex poisoned").tally
    }

    /// Takes one token of `bucket` at `now` and tallies the call; `false` means throttled.
    pub(super) fn take(&self, bucket: Bucket, now: Timestamp) -> bool {
        let mut s = self.state.lock().expect("account throttle mutex poisoned");
        let s = &mut *s;
        let (b, ok, refused) = match bucket {
            Bucket::Describe => (&mut s.describe, &mut s.tally.describe_ok, &mut s.tally.describe_throttled),
            Bucket::Mutate => (&mut s.mutate, &mut s.tally.mutate_ok, &mut s.tally.mutate_throttled),
        };
        let taken = b.take(now);
        *(if taken { ok } else { refused }) += 1;
        taken
    }
}

/// Which bucket a call draws from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Bucket {
    /// Describe* calls.
    Describe,
    /// Create/attach/detach/delete/start/tag calls.
    Mutate,
}

/// One token bucket, refilled lazily from timestamps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct TokenBucket {
    pub(super) capacity: f64,
    pub(super) refill_per_s: f64,
    pub(super) tokens: f64,
    pub(super) last: Timestamp,
}

impl TokenBucket {
    pub(super) fn full(capacity: f64, refill_per_s: f64, now: Timestamp) -> Self {
        TokenBucket { capacity, refill_per_s, tokens: capacity, last: now }
    }

    /// Takes one token if there is one; `false` means the call is throttled.
    pub(super) fn take(&mut self, now: Timestamp) -> bool {
        let elapsed = now.duration_since(self.last).as_secs_f64();
        if elapsed > 0.0 {
            self.tokens = (self.tokens + elapsed * self.refill_per_s).min(self.capacity);
            self.last = now;
        }
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empties_then_refills() {
        let t0 = Timestamp::UNIX_EPOCH;
        let mut b = TokenBucket::full(3.0, 2.0, t0);
        assert!(b.take(t0) && b.take(t0) && b.take(t0));
        assert!(!b.take(t0));
        let half = t0 + jiff::SignedDuration::from_millis(500);
        assert!(b.take(half));
        assert!(!b.take(half));
    }

    #[test]
    fn an_account_tallies_what_it_accepts_and_refuses() {
        let t0 = Timestamp::UNIX_EPOCH;
        let budgets = ThrottleBudgets {
            describe_capacity: 2.0,
            describe_refill_per_s: 1.0,
            mutate_capacity: 1.0,
            mutate_refill_per_s: 1.0,
        };
        let account = AccountThrottle::new(budgets, t0);
        let results: Vec<bool> = (0..3).map(|_| account.take(Bucket::Describe, t0)).collect();
        assert_eq!(results, [true, true, false]);
        assert!(account.take(Bucket::Mutate, t0));
        let tally = account.tally();
        assert_eq!((tally.describe_ok, tally.describe_throttled, tally.mutate_ok), (2, 1, 1));
        assert_eq!((tally.total(), tally.throttled()), (4, 1));
    }
}
