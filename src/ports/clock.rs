//! Time, as a port: the real clock in production, a scaled model clock in the simulated world.
//! Everything that waits goes through [`Clock::sleep`], so a speed factor (lab mode) or tokio's
//! paused time (tests) changes every wait at once.

use std::time::Duration;

use jiff::Timestamp;

/// A source of "now" and a way to wait.
#[async_trait::async_trait]
pub trait Clock: Send + Sync {
    /// The current time in the world being operated on.
    fn now(&self) -> Timestamp;
    /// Wait for `d` of that world's time.
    async fn sleep(&self, d: Duration);
}

/// The real clock: system time, tokio sleeps.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

#[async_trait::async_trait]
impl Clock for SystemClock {
    fn now(&self) -> Timestamp {
        Timestamp::now()
    }
    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
}
