//! The process boundaries, one trait each.
//!
//! Why this module exists: mirrorctl talks to three outside worlds (EC2, CLUSTERPRO, the servers'
//! operating systems), reads one clock and keeps its state in one store (journal, status, lease:
//! [`store`]), and sends notifications ([`notify`]). Each is a trait here with plain data in and out, so the
//! planner and executor are written once and run unchanged against the simulated world (`sim`),
//! the AWS SDK (`adapters::aws`), moto, and the CLUSTERPRO/node adapters. The style is `dyn`:
//! ports are held as `Arc<dyn Trait>` and implemented with `async_trait`. Nothing here imports
//! `sim` or an adapter.

pub mod clock;
pub mod cloud;
pub mod cluster;
pub mod limit;
pub mod node;
pub mod notify;
pub mod store;

use std::sync::Arc;

pub use clock::Clock;
pub use cloud::Cloud;
pub use cluster::Cluster;
pub use node::Node;

/// The set of ports one cluster's reconcile uses.
#[derive(Clone)]
pub struct Ports {
    /// EC2.
    pub cloud: Arc<dyn Cloud>,
    /// CLUSTERPRO.
    pub cluster: Arc<dyn Cluster>,
    /// The servers' operating systems.
    pub node: Arc<dyn Node>,
    /// Time.
    pub clock: Arc<dyn Clock>,
}

/// How the executor must treat a failed call. Every port error carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorClass {
    /// The effect is already in place (e.g. detaching a volume that is not attached).
    AlreadyDone,
    /// Try again later: throttling, 5xx, timeouts, eventual consistency.
    Retryable,
    /// Throttling specifically: retried without limit (with backoff), never a failure.
    Throttled,
    /// A human must act: the condition will not clear by itself.
    NeedsHuman,
}

/// An error from any port: a machine-readable code (the AWS error code, or a CLUSTERPRO/node code
/// chosen by the adapter), a message, and its class.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
#[error("{code}: {message}")]
pub struct PortError {
    /// Machine-readable code, e.g. `InvalidVolume.ZoneMismatch`, `RequestLimitExceeded`.
    pub code: String,
    /// What the far side said.
    pub message: String,
    /// How to treat it.
    pub class: ErrorClass,
    /// The far side's request id, when it gave one (audit trail).
    pub request_id: Option<String>,
}

impl PortError {
    /// An error whose class is derived from its EC2 error code (see [`cloud::classify`]).
    pub fn ec2(code: &str, message: impl Into<String>) -> Self {
        PortError { code: code.to_owned(), message: message.into(), class: cloud::classify(code), request_id: None }
    }
    /// An error with an explicit class (cluster and node adapters).
    pub fn new(code: &str, message: impl Into<String>, class: ErrorClass) -> Self {
        PortError { code: code.to_owned(), message: message.into(), class, request_id: None }
    }
}

/// Result of a port call.
pub type PortResult<T> = Result<T, PortError>;
