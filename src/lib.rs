//! mirrorctl: a reconciling controller for CLUSTERPRO mirror disks on AWS.
//!
//! Operators write the state they want (a restore from a snapshot, nightly backups) into a TOML
//! file per cluster; mirrorctl observes EC2, CLUSTERPRO and the servers' disks, plans the next
//! steps with a pure function, and executes them with an fsync'd journal so a crash resumes
//! exactly where it stopped.
//!
//! The house has floors. A module uses only modules on floors below its own (or its own
//! submodules), never one above and never one beside it, so there is no import cycle; which
//! floor a module stands on says what it may know. `tests/it/layers.rs` reads this list and every
//! `crate::` path under `src/` and fails on a module importing upwards or sideways, on a cycle
//! between files, and on a source file no floor names. Unit tests (`#[cfg(test)]` onwards) may
//! reach anywhere. From the ground up:
//!
//! 1. `ids`, `durable`: typed identifiers; file replacement and directory sync with one
//!    durability policy.
//! 2. `spec`: the desired-state files: types, loading with source spans, validation, and when a
//!    schedule's slots fall.
//! 3. `ports`: one trait per process boundary (EC2, CLUSTERPRO, node OS, clock, notices), the
//!    port error and its class, and the client-side EC2 request budget as middleware around the
//!    cloud port (`ports::limit`); the store port stands higher (floor 12).
//! 4. `retry`: the retry policy (budgets, backoff) and retrying one port call.
//! 5. `plan::step`: the step vocabulary: actions, operation and step ids, conditions, waits.
//! 6. `observe`: gathers one [`observe::Observed`] snapshot of the world from the ports.
//! 7. `journal`: intent/result records, their replay into a view, the local journal file.
//! 8. `policy`: the error policy: class narrowing, step budgets, needs-human wording, the
//!    backoff between passes.
//! 9. `plan`: the pure planner, `plan(&Spec, &Observed, &JournalView) -> Plan`, and what the next
//!    pass reads afresh ([`observe::Refresh::after`]).
//! 10. `execute::progress`: progress events and their wording.
//! 11. `status`: per-cluster status documents.
//! 12. `ports::store`: the store port: journal records, status documents, leases.
//! 13. `journal::writer`: one cluster's journal over the store, fenced by its lease.
//! 14. `journal::local`: the state-directory store (files and `flock` only), the default.
//! 15. `execute`: runs planned steps: intent first, retries, error classes.
//! 16. `notify`: completion, failure and needs-human notices: queue, retries, what was sent.
//! 17. `reconcile`: one cluster's observe → plan → execute loop until converged or terminal.
//! 18. `controller`: the daemon loop: file watching, resync, per-cluster workers, metrics. It is
//!     handed the worlds it acts on and knows neither the simulator nor an adapter.
//! 19. `sim`: the strict simulated world (EC2, CLUSTERPRO, nodes, data oracle, latency model).
//! 20. `adapters`: real implementations of the ports (AWS SDK, CLUSTERPRO, node recipes,
//!     notification sinks, the DynamoDB store).
//! 21. `world`: the composition root: opens a cluster's world (lab or AWS) for `plan`, `apply`
//!     and the daemon, and projects an operation's whole sequence on a copy of the lab world
//!     (`world::project`, for `plan` and the status's step total and ETA).
//! 22. `harness`: the programs that drive whole runs: `lab` (the runbook's story on a simulated
//!     cluster), `bench` (the performance figures), `chaos` (the kill -9 campaign).
//! 23. `cli`: the `mirrorctl` commands: argument parsing and printing.

pub mod adapters;
pub mod cli;
pub mod controller;
pub(crate) mod durable;
pub mod execute;
pub mod harness;
pub mod ids;
pub mod journal;
pub mod notify;
pub mod observe;
pub mod plan;
pub(crate) mod policy;
pub mod ports;
pub mod reconcile;
pub mod retry;
pub mod sim;
pub mod spec;
pub mod status;
pub mod world;
