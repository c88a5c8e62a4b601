//! EC2 request throttling: token buckets per account, refilled in model time.
//!
//! Why this module exists: EC2 answers `RequestLimitExceeded` when an account spends its request
//! budget, and the controller must treat that as "back off", never as a failure. The simulated
//! world keeps EC2's two buckets (Describe* and mutating calls) so tests and benchmarks can see
//! how many calls a flow costs and whether it stays under the bound.

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
}
