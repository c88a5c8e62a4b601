//! Real implementations of the ports.
//!
//! Why this module exists: the planner and executor only know the traits in [`crate::ports`]; the
//! code that speaks to AWS, to CLUSTERPRO and to the servers' operating systems lives here, one
//! sub-module per far side. Built so far: the pure core of the CLUSTERPRO adapters ([`clusterpro`]:
//! command-output parsers and byte-preserving `clp.conf` editing), the pure core of the node
//! adapters ([`node`]: the PowerShell and sh disk recipes and the parser of their JSON), and the EC2
//! port on `aws-sdk-ec2` ([`aws`], tested against moto); beside them, the client-side EC2 request budget one
//! process shares across all its clusters ([`limit`]). The CLUSTERPRO REST client, the SSM
//! transport and the wiring into [`crate::ports::Ports`] have their own issues; until then the
//! simulated world ([`crate::sim`]) is the only complete set of ports.

pub mod aws;
pub mod clusterpro;
pub mod limit;
pub mod node;
