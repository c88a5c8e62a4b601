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
//! - [`store`]: where journals, status documents and leases live: a DynamoDB table, or the state
//!   directory ([`crate::journal::local`]).
//!
//! They are put together as one cluster's ports in [`crate::world`]; the client-side EC2 request
//! budget is middleware around the cloud port, [`crate::ports::limit`].

pub mod aws;
pub mod clusterpro;
pub mod node;
pub mod notify;
pub mod secret;
pub mod store;
