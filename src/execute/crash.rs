//! A crash switch for tests: makes the executor stop dead at a chosen point, as `kill -9` would,
//! so the crash-and-resume tests can cover every step boundary and the inside of every mutating
//! step (the call reached the world, its result was not recorded).

use std::sync::atomic::{AtomicUsize, Ordering};

use super::ExecError;
use crate::plan::StepId;

/// Where in a step the crash happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CrashPoint {
    /// At a step boundary: before the step's intent is written.
    BeforeIntent,
    /// Inside the step: after the call returned, before its result is written.
    AfterCall,
}

/// Fires once, at the `target`-th time (from 1) its `point` is reached (in a step whose id
/// contains `step`, when given).
#[derive(Debug)]
pub struct CrashSwitch {
    point: CrashPoint,
    target: usize,
    step: Option<String>,
    seen: AtomicUsize,
}

impl CrashSwitch {
    /// A switch that fires at the `target`-th occurrence of `point`.
    pub fn new(point: CrashPoint, target: usize) -> Self {
        CrashSwitch { point, target, step: None, seen: AtomicUsize::new(0) }
    }

    /// A switch that fires the first time `point` is reached in a step whose id contains `step`
    /// (`"remove-md"`: right after the call that removed md, before its result is journaled).
    pub fn at_step(point: CrashPoint, step: &str) -> Self {
        CrashSwitch { point, target: 1, step: Some(step.to_owned()), seen: AtomicUsize::new(0) }
    }

    /// How many times the point was reached.
    pub fn seen(&self) -> usize {
        self.seen.load(Ordering::SeqCst)
    }

    /// Whether it fired.
    pub fn fired(&self) -> bool {
        self.seen() >= self.target
    }

    /// Called by the executor at each point.
    pub fn check(&self, step: &StepId, point: CrashPoint) -> Result<(), ExecError> {
        if point != self.point || self.step.as_deref().is_some_and(|s| !step.0.contains(s)) {
            return Ok(());
        }
        let n = self.seen.fetch_add(1, Ordering::SeqCst) + 1;
        if n == self.target {
            return Err(ExecError::Crashed(format!("{step} ({point:?})")));
        }
        Ok(())
    }
}
