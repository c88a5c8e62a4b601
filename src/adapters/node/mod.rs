//! The pure core of the node adapters: what runs inside each server to see and change its disks.
//!
//! Why this module exists: the mirror disk must be taken offline before its EBS volume is detached
//! and brought online (with its drive letters back) after the new volume is attached. That is done
//! by small scripts run through a command transport (SSM Run Command or locally): PowerShell on
//! Windows, POSIX sh on Linux. [`recipes`] generates those scripts for one operation each and
//! parses the single JSON document each prints; the transport that carries them is elsewhere.

pub mod recipes;
pub mod transport;
