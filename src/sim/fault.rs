//! Fault injection: what tests and the lab can make go wrong behind mirrorctl's back.
//!
//! Why this module exists: the interesting behaviour of a controller is what it does when a call
//! fails, when a response is lost after the effect happened, or when a human touched a disk. Those
//! situations are requested here as plain data ([`Fault`]) and applied by
//! [`super::SimWorld::inject`]; failing calls are kept as rules in the persisted world.

use serde::{Deserialize, Serialize};

use crate::ids::{DeviceName, ServerName, VolumeId};
use crate::ports::ErrorClass;

/// Something to go wrong. Operation names are the call-counter names (`ec2:CreateVolume`,
/// `clp:start_group`, `node:set_offline`, …; see [`super::OPERATIONS`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Fault {
    /// The next `count` calls of `op` fail with `code`/`class` and have no effect.
    FailNext {
        /// Operation name.
        op: String,
        /// Error code returned.
        code: String,
        /// Its class.
        class: ErrorClass,
        /// How many calls fail.
        count: u32,
    },
    /// The next `count` calls of `op` take effect, but the caller gets `RequestTimeout`
    /// (Retryable): the response was lost.
    LoseResponse {
        /// Operation name.
        op: String,
        /// How many calls.
        count: u32,
    },
    /// Someone brings the disk of `volume` online on `server` (so a detach goes `busy`).
    DiskOnline {
        /// The server.
        server: ServerName,
        /// The volume whose disk goes online.
        volume: VolumeId,
    },
    /// A stray volume appears attached at `device` on `server`'s instance (device in use).
    StrayAttach {
        /// The server.
        server: ServerName,
        /// The device slot it takes.
        device: DeviceName,
    },
    /// A partition of the disk is mounted (Linux): detach goes `busy`, `set_offline` refuses.
    Mount {
        /// The server.
        server: ServerName,
        /// The volume.
        volume: VolumeId,
        /// Partition number.
        number: u32,
    },
    /// The partition is unmounted again.
    Unmount {
        /// The server.
        server: ServerName,
        /// The volume.
        volume: VolumeId,
        /// Partition number.
        number: u32,
    },
}

impl Fault {
    /// `FailNext` with the class EC2 codes get from [`crate::ports::cloud::classify`]
    /// (other operations: `Retryable`), e.g. `Fault::fail_next("ec2:AttachVolume", "InternalError", 2)`.
    pub fn fail_next(op: &str, code: &str, count: u32) -> Self {
        let class = if op.starts_with("ec2:") { crate::ports::cloud::classify(code) } else { ErrorClass::Retryable };
        Fault::FailNext { op: op.to_owned(), code: code.to_owned(), class, count }
    }
}

/// A pending failing-call rule (the fault queue).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct FailRule {
    pub(super) op: String,
    pub(super) code: String,
    pub(super) class: ErrorClass,
    pub(super) remaining: u32,
    pub(super) after_effect: bool,
}
