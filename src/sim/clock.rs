//! Model time for the simulated world.
//!
//! Why this module exists: the world's transitions are stored as timestamps, and "now" must be the
//! same for the world and for mirrorctl's waits. Model time runs `speed` times faster than tokio
//! time from an anchor, so tests on paused tokio time are instant and deterministic, lab mode can
//! run faster than real time, and a reopened world continues from where the wall clock says it
//! would be (the only use of wall time is that anchor).

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use crate::ports::Clock;

/// The world's clock: `now = anchor_model + (tokio now − anchor_instant) × speed`.
#[derive(Debug, Clone, Copy)]
pub struct SimClock {
    anchor_model: Timestamp,
    anchor_instant: tokio::time::Instant,
    speed: f64,
}

impl SimClock {
    /// A clock reading `model` now and running `speed` times faster than tokio time (a speed
    /// that is not a positive finite number means 1).
    pub fn new(model: Timestamp, speed: f64) -> Self {
        let speed = if speed.is_finite() && speed > 0.0 { speed } else { 1.0 };
        SimClock { anchor_model: model, anchor_instant: tokio::time::Instant::now(), speed }
    }

    /// The speed factor.
    pub fn speed(&self) -> f64 {
        self.speed
    }
}

/// `t + secs` (negative or non-finite `secs` count as 0; saturates at the end of time).
pub(super) fn plus(t: Timestamp, secs: f64) -> Timestamp {
    let secs = if secs.is_finite() { secs.max(0.0) } else { 0.0 };
    let d = SignedDuration::try_from_secs_f64(secs).unwrap_or(SignedDuration::MAX);
    t.checked_add(d).unwrap_or(Timestamp::MAX)
}

/// Seconds from `a` to `b` (negative when `b` is earlier).
pub(super) fn secs(a: Timestamp, b: Timestamp) -> f64 {
    b.duration_since(a).as_secs_f64()
}

#[async_trait::async_trait]
impl Clock for SimClock {
    fn now(&self) -> Timestamp {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.anchor_instant);
        plus(self.anchor_model, elapsed.as_secs_f64() * self.speed)
    }

    async fn sleep(&self, d: Duration) {
        tokio::time::sleep(d.div_f64(self.speed)).await;
    }
}
