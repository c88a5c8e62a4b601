//! The simulated world (placeholder until the sim lands).
