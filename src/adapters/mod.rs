//! Real implementations of the ports.
//!
//! Why this module exists: the planner and executor only know the traits in [`crate::ports`]; the
//! code that speaks to AWS, to CLUSTERPRO and to the servers' operating systems lives here, one
//! sub-module per far side:
//! - [`aws`]: the EC2 port on `aws-sdk-ec2` (tested against moto);
//! - [`clusterpro`]: command-output parsers, byte-preserving `clp.conf` editing, the cluster
//!   port over `clp*` commands, the REST API client and the hybrid that pairs the two;
//! - [`node`]: the PowerShell and sh disk recipes, the node port running them over a command
//!   transport, and the local and SSM Run Command transports (tested against a fake SSM endpoint);
//! - [`notify`]: the notification destinations: an SNS topic and a signed webhook;
//! - [`secret`]: the password sources of the REST API (environment, file, AWS Secrets Manager);
//! - [`world`]: all of them put together as one cluster's ports (`--world aws`).
//! - [`limit`]: the client-side request budget one process shares across all its clusters.
//! - [`store`]: where journals, status documents and leases live: the state directory or a
//!   DynamoDB table.

pub mod aws;
pub mod clusterpro;
pub mod limit;
pub mod node;
pub mod notify;
pub mod secret;
pub mod store;
pub mod world;
