//! Real implementations of the ports.
//!
//! Why this module exists: the planner and executor only know the traits in [`crate::ports`]; the
//! code that speaks to AWS, to CLUSTERPRO and to the servers' operating systems lives here, one
//! sub-module per far side. Not built yet: the AWS SDK adapter, the CLUSTERPRO REST/command
//! adapters and the node recipes have their own issues; until then the simulated world
//! ([`crate::sim`]) is the only implementation.
