//! The real world of one cluster: its ports on AWS, CLUSTERPRO and the servers' operating systems.
//!
//! Why this module exists: every adapter is built and tested on its own; this is the one place
//! that puts them together for a desired-state file, the same way for `plan`, `apply` and the
//! daemon (`--world aws`):
//!
//! - **Credentials**: the default credential chain, with the cluster's IAM role assumed on top
//!   when its file names one (`cluster.role_arn`, [`cluster_sdk_config`]); every AWS client below
//!   (EC2, SSM, Secrets Manager) uses them.
//! - **EC2**: [`AwsCloud`] in the cluster's region. The clusters of one account and region draw on
//!   one [`RequestLimiter`] (EC2 throttles per account and region), when one is given.
//! - **Node transport**: `access = "ssm"` → [`SsmTransport`] (Run Command on each server's
//!   instance); `access = "local"` → [`LocalTransport`] (mirrorctl runs on a node).
//! - **Disks**: [`RecipeNode`], the PowerShell / sh recipes over that transport.
//! - **CLUSTERPRO**: [`CommandCluster`] (`clp*` commands over the same transport, `clp.conf` edited
//!   in Rust, copies kept in the state directory); with `cluster.api` set, [`HybridCluster`] puts
//!   the REST API ([`RestCluster`], password from [`SecretResolver`]) in front of it for status and
//!   operations.
//! - **Clock**: the system clock.
//!
//! Endpoints follow the AWS SDK's own settings, so an emulator is reached with
//! `AWS_ENDPOINT_URL` or the per-service `AWS_ENDPOINT_URL_EC2` / `AWS_ENDPOINT_URL_SSM` /
//! `AWS_ENDPOINT_URL_SECRETS_MANAGER`.

use std::path::Path;
use std::sync::Arc;

use crate::adapters::aws::{AwsCloud, AwsOptions, cluster_sdk_config};
use crate::adapters::clusterpro::commands::CommandCluster;
use crate::adapters::clusterpro::hybrid::HybridCluster;
use crate::adapters::clusterpro::rest::RestCluster;
use crate::adapters::limit::RequestLimiter;
use crate::adapters::node::recipe_node::RecipeNode;
use crate::adapters::node::ssm::{SsmOptions, SsmTransport};
use crate::adapters::node::transport::{LocalTransport, Transport};
use crate::adapters::secret::SecretResolver;
use crate::ports::clock::SystemClock;
use crate::ports::{Cluster, PortResult, Ports, store::Store};
use crate::spec::{Access, Spec};

/// The ports of `spec`'s cluster on AWS. `state_dir` keeps the command adapter's `clp.conf`
/// copies, `store` its md templates and pending-resume marker (so another host can finish a
/// restore); `limiter`, when given, is shared by every cluster of the same account and region.
/// Fails (needs-human) only for what the REST API needs up front: its password and CA bundle.
pub async fn aws_ports(
    spec: &Spec,
    state_dir: &Path,
    store: Arc<dyn Store>,
    limiter: Option<Arc<RequestLimiter>>,
) -> PortResult<Ports> {
    let c = &spec.cluster;
    let shared = cluster_sdk_config(c, &c.region).await;
    let mut cloud = AwsCloud::from_sdk_config(&shared, &AwsOptions::new(c.region.clone()));
    if let Some(l) = limiter {
        cloud = cloud.share_limiter(l);
    }
    let transport: Arc<dyn Transport> = match c.access {
        Access::Ssm => Arc::new(SsmTransport::from_sdk_config(&shared, &SsmOptions::new(c.region.clone()), &c.servers)),
        Access::Local => Arc::new(LocalTransport::new()),
    };
    let commands: Arc<dyn Cluster> =
        Arc::new(CommandCluster::new(c, Arc::clone(&transport), state_dir).with_store(store));
    let cluster: Arc<dyn Cluster> = match &c.api {
        Some(api) => {
            let servers: Vec<_> = c.servers.iter().map(|s| s.name.clone()).collect();
            let rest = RestCluster::connect(api, &servers, &SecretResolver::from_sdk_config(&shared)).await?;
            Arc::new(HybridCluster::new(Arc::new(rest), commands))
        }
        None => commands,
    };
    Ok(Ports {
        cloud: Arc::new(cloud),
        cluster,
        node: Arc::new(RecipeNode::new(c.os, transport)),
        clock: Arc::new(SystemClock),
    })
}
