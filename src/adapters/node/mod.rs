//! The pure core of the node adapters: what runs inside each server to see and change its disks.
//!
//! Why this module exists: the mirror disk must be taken offline before its EBS volume is detached
//! and brought online (with its drive letters back) after the new volume is attached. That is done
//! by small scripts run through a command transport (SSM Run Command or locally): PowerShell on
//! Windows, POSIX sh on Linux. [`recipes`] generates those scripts for one operation each and
//! parses the single JSON document each prints; [`recipe_node`] is the [`crate::ports::Node`] port
//! running them over any [`transport::Transport`]: [`transport::LocalTransport`] on this host, or
//! [`ssm::SsmTransport`] through AWS Systems Manager Run Command, which moves files in pieces
//! ([`chunked`]) because SSM caps a command's output.

pub mod chunked;
pub mod recipe_node;
pub mod recipes;
pub mod ssm;
pub mod transport;
