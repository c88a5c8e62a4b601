//! mirrorctl: a reconciling controller for CLUSTERPRO mirror disks on AWS.
//!
//! Operators write the state they want (a restore from a snapshot, nightly backups) into a TOML
//! file per cluster; mirrorctl observes EC2, CLUSTERPRO and the servers' disks, plans the next
//! steps with a pure function, and executes them with an fsync'd journal so a crash resumes
//! exactly where it stopped. The map of the house:
//!
//! - [`ids`]: typed identifiers (volume, snapshot, instance, zone, device name, names).
//! - [`spec`]: the desired-state files: types, loading with source spans, validation.
//! - [`ports`]: one trait per process boundary: EC2, CLUSTERPRO, node OS, clock.
//! - [`observe`]: gathers one [`observe::Observed`] snapshot of the world from the ports.
//! - [`plan`]: the pure planner: `plan(&Spec, &Observed, &JournalView) -> Plan`.
//! - [`execute`]: runs planned steps: intent first, retries, error classes, progress events.
//! - [`journal`]: intent/result records, fsync, resume after a crash.
//! - [`status`]: per-cluster status documents, written atomically.
//! - [`durable`]: file replacement and directory sync with one durability policy.
//! - [`reconcile`]: one cluster's observe → plan → execute loop until converged or terminal.
//! - [`notify`]: completion, failure and needs-human notices: queue, retries, what was sent.
//! - [`controller`]: the daemon loop: file watching, resync, per-cluster workers, metrics, settings.
//! - [`sim`]: the strict simulated world (EC2, CLUSTERPRO, nodes, data oracle, latency model).
//! - [`adapters`]: real implementations of the ports (AWS SDK, CLUSTERPRO, node recipes), and the
//!   client-side EC2 request budget all clusters of a process share.
//! - [`cli`]: the `mirrorctl` commands.

pub mod adapters;
pub mod cli;
pub mod controller;
pub mod durable;
pub mod execute;
pub mod ids;
pub mod journal;
pub mod notify;
pub mod observe;
pub mod plan;
pub mod ports;
pub mod reconcile;
pub mod sim;
pub mod spec;
pub mod status;
