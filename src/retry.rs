//! Retry schedules. `backon`'s exponential backoff with jitter supplies the delays; the executor
//! sleeps through the clock port, so a lab speed factor or paused test time applies to them too.
//!
//! Why this module stands just above the ports: observation and execution both retry port calls
//! by one policy, and observation sits below the planner and the executor.

use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};

use crate::ports::ErrorClass;

/// Budgets and schedules for retries.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Retries of a retryable error within one step execution.
    pub retryable_times: usize,
    /// First retry delay.
    pub min_delay: Duration,
    /// Longest retry delay for retryable errors.
    pub max_delay: Duration,
    /// Longest delay between throttled retries (throttling is retried without limit).
    pub throttle_max_delay: Duration,
    /// Attempts of one step across passes and restarts before it needs a human.
    pub max_attempts_total: u32,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            retryable_times: 6,
            min_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            throttle_max_delay: Duration::from_secs(20),
            max_attempts_total: 12,
        }
    }
}

impl RetryPolicy {
    /// Validating constructor: delays must be ordered and budgets positive.
    pub fn try_new(
        retryable_times: usize,
        min_delay: Duration,
        max_delay: Duration,
        throttle_max_delay: Duration,
        max_attempts_total: u32,
    ) -> Result<Self, String> {
        if retryable_times == 0 || max_attempts_total == 0 {
            return Err("retry budgets must be at least 1".into());
        }
        if min_delay.is_zero() || min_delay > max_delay || min_delay > throttle_max_delay {
            return Err("retry delays must satisfy 0 < min_delay <= max_delay, throttle_max_delay".into());
        }
        Ok(RetryPolicy { retryable_times, min_delay, max_delay, throttle_max_delay, max_attempts_total })
    }

    /// The delays for retryable errors (bounded).
    pub fn retryable(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_max_times(self.retryable_times)
            .build()
    }

    /// The delays for throttling (unbounded in count, capped in length).
    pub fn throttled(&self) -> impl Iterator<Item = Duration> + use<> {
        ExponentialBuilder::default()
            .with_jitter()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.throttle_max_delay)
            .without_max_times()
            .build()
    }
}

/// What is left of one call's retries: the next delay for each error class.
pub(crate) struct Retries {
    retryable: Box<dyn Iterator<Item = Duration> + Send>,
    throttled: Box<dyn Iterator<Item = Duration> + Send>,
}

impl RetryPolicy {
    /// A fresh set of retries for one call.
    pub(crate) fn retries(&self) -> Retries {
        Retries { retryable: Box::new(self.retryable()), throttled: Box::new(self.throttled()) }
    }
}

impl Retries {
    /// How long to wait before trying again after an error of `class`, or `None`: give up now
    /// (already done, needs a human, or the retryable budget is spent). Throttling is waited out
    /// without limit.
    pub fn after(&mut self, class: ErrorClass) -> Option<Duration> {
        match class {
            ErrorClass::Throttled => self.throttled.next(),
            ErrorClass::Retryable => self.retryable.next(),
            ErrorClass::AlreadyDone | ErrorClass::NeedsHuman => None,
        }
    }
}

/// Runs `f` until it succeeds, retrying throttling without limit and other retryable errors within
/// the policy's budget, sleeping through `clock`. Used for observation calls, each on its own, so a
/// tight request budget slows a pass down instead of failing it.
pub(crate) async fn with_retries<T, F, Fut>(
    policy: &RetryPolicy,
    clock: &dyn crate::ports::Clock,
    mut f: F,
) -> crate::ports::PortResult<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = crate::ports::PortResult<T>>,
{
    let mut retries = policy.retries();
    loop {
        let e = match f().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        match retries.after(e.class) {
            Some(d) => clock.sleep(d).await,
            None => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retryable_is_bounded_and_throttled_is_not() {
        let p = RetryPolicy::default();
        assert_eq!(p.retryable().count(), p.retryable_times);
        assert!(p.throttled().take(1000).count() == 1000);
        assert!(p.throttled().take(100).all(|d| d <= p.throttle_max_delay * 2));
    }

    #[test]
    fn one_calls_retries_follow_the_class_of_each_error() {
        let p = RetryPolicy::default();
        let mut r = p.retries();
        assert_eq!(r.after(ErrorClass::NeedsHuman), None);
        assert_eq!(r.after(ErrorClass::AlreadyDone), None);
        // Throttling does not spend the retryable budget, and is never given up.
        assert!((0..100).all(|_| r.after(ErrorClass::Throttled).is_some()));
        assert_eq!((0..100).filter_map(|_| r.after(ErrorClass::Retryable)).count(), p.retryable_times);
        assert!(r.after(ErrorClass::Throttled).is_some());
    }

    #[test]
    fn try_new_refuses_nonsense() {
        assert!(
            RetryPolicy::try_new(0, Duration::from_millis(1), Duration::from_secs(1), Duration::from_secs(1), 1)
                .is_err()
        );
        assert!(
            RetryPolicy::try_new(1, Duration::from_secs(2), Duration::from_secs(1), Duration::from_secs(1), 1).is_err()
        );
        assert!(
            RetryPolicy::try_new(1, Duration::from_millis(1), Duration::from_secs(1), Duration::from_secs(1), 1)
                .is_ok()
        );
    }
}
