//! The AWS clients the daemon's clusters share.
//!
//! Why this module exists: a daemon serves hundreds of clusters, most of them in a few accounts
//! and regions. Built per cluster, every cluster held its own EC2 and SSM SDK clients, and each
//! SDK client built its own HTTPS connector with its own copy of the system's root certificates:
//! about 0.5 MiB of heap per cluster (README, "Footprint"). Here the daemon keeps, for its whole
//! life:
//!
//! - **one HTTPS client** ([`https_client`]) under every SDK configuration it loads, so EC2,
//!   SSM, STS (assumed roles) and Secrets Manager of every cluster share one connection pool and
//!   one TLS configuration;
//! - **one SDK configuration per region** of the default credential chain, and one per IAM role
//!   (`role_arn` with its `external_id`) and region, assumed on top of it: one credential cache
//!   per identity, renewed once for all its clusters;
//! - **one EC2 and one SSM client per identity and region**. An SDK client is a handle on shared
//!   state (`aws_sdk_ec2::Client` clones an `Arc`); what is a cluster's own — call counters,
//!   time waited for tokens, its servers' instance ids — stays in its port
//!   ([`AwsCloud::on_client`], [`SsmTransport::on_client`]).
//!
//! The request budgets are not here: they are per account and region, whatever the role
//! (`world::aws_worlds` keeps them). A role assumed for several clusters has one STS session,
//! named [`DAEMON_SESSION`] instead of after a cluster.

use std::collections::BTreeMap;
use std::sync::Arc;

use aws_sdk_ec2::config::SharedHttpClient;

use crate::adapters::aws::{AwsCloud, AwsOptions, assume_role, ec2_client, https_client, load_sdk_config_on};
use crate::adapters::node::ssm::{SsmOptions, SsmTransport, ssm_client};
use crate::ids::Region;
use crate::spec::RoleSpec;

/// The STS session name of a role the daemon assumes for all the clusters naming it (`plan` and
/// `apply`, which serve one cluster, name theirs `mirrorctl-<cluster>`).
pub const DAEMON_SESSION: &str = "mirrorctl-daemon";

/// The clients of one identity in one region, shared by its clusters.
#[derive(Debug)]
pub struct IdentityClients {
    /// The SDK configuration: credentials (the role's, when one is assumed), region, HTTP client.
    pub config: aws_config::SdkConfig,
    /// EC2, as [`ec2_client`] builds it for [`AwsOptions::new`] in this region.
    pub ec2: aws_sdk_ec2::Client,
    /// Systems Manager, as [`ssm_client`] builds it for [`SsmOptions::new`] in this region.
    pub ssm: aws_sdk_ssm::Client,
}

impl IdentityClients {
    /// A cluster's EC2 port on the shared client, with counters of its own.
    pub fn cloud(&self, region: &Region) -> AwsCloud {
        AwsCloud::on_client(self.ec2.clone(), &self.config, &AwsOptions::new(region.clone()))
    }

    /// A cluster's SSM transport to `servers` on the shared client, with counters of its own.
    pub fn ssm(&self, region: &Region, servers: &[crate::spec::ServerSpec]) -> SsmTransport {
        SsmTransport::on_client(self.ssm.clone(), &SsmOptions::new(region.clone()), servers)
    }
}

/// Who the calls are made as: the default credential chain, or a role and its external id.
type Identity = Option<(String, Option<String>)>;

/// The daemon's AWS clients, made on first use and kept.
pub struct ClientPool {
    http: SharedHttpClient,
    /// The default credential chain's configuration per region.
    bases: tokio::sync::Mutex<BTreeMap<String, aws_config::SdkConfig>>,
    clients: tokio::sync::Mutex<BTreeMap<(String, Identity), Arc<IdentityClients>>>,
}

impl Default for ClientPool {
    fn default() -> Self {
        ClientPool::new()
    }
}

impl ClientPool {
    /// An empty pool with its HTTPS client (no connection is made before the first call). Use
    /// it within one tokio runtime: the HTTPS client's connections belong to it.
    pub fn new() -> Self {
        ClientPool {
            http: https_client(),
            bases: tokio::sync::Mutex::default(),
            clients: tokio::sync::Mutex::default(),
        }
    }

    /// The default credential chain's SDK configuration in `region`, on the pool's HTTPS client.
    pub async fn base(&self, region: &Region) -> aws_config::SdkConfig {
        let mut bases = self.bases.lock().await;
        if let Some(c) = bases.get(region.as_str()) {
            return c.clone();
        }
        let c = load_sdk_config_on(region, self.http.clone()).await;
        bases.insert(region.as_str().to_owned(), c.clone());
        c
    }

    /// The clients of `role` (the default chain without one) in `region`: the same ones for
    /// every caller asking for the same role, external id and region.
    pub async fn clients(&self, region: &Region, role: Option<&RoleSpec>) -> Arc<IdentityClients> {
        let identity = role.map(|r| (r.arn.clone(), r.external_id.clone()));
        let key = (region.as_str().to_owned(), identity);
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(&key) {
            return Arc::clone(c);
        }
        let base = self.base(region).await;
        let config = match role {
            Some(role) => assume_role(&base, role, DAEMON_SESSION).await,
            None => base,
        };
        let made = Arc::new(IdentityClients {
            ec2: ec2_client(&config, &AwsOptions::new(region.clone())),
            ssm: ssm_client(&config, &SsmOptions::new(region.clone())),
            config,
        });
        clients.insert(key, Arc::clone(&made));
        made
    }

    /// How many (identity, region) pairs have clients.
    #[cfg(test)]
    async fn identities(&self) -> usize {
        self.clients.lock().await.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::Cloud as _;
    use crate::ports::cloud::VolumeFilter;

    fn role(arn: &str, external_id: Option<&str>) -> RoleSpec {
        RoleSpec {
            arn: arn.to_owned(),
            account: arn.split(':').nth(4).unwrap_or_default().to_owned(),
            external_id: external_id.map(str::to_owned),
        }
    }

    #[tokio::test]
    async fn clusters_of_one_identity_and_region_share_clients_and_keep_their_own_counts() {
        let pool = ClientPool::new();
        let tokyo = Region::parse("ap-northeast-1").unwrap();
        let osaka = Region::parse("ap-northeast-3").unwrap();
        let ops = role("arn:aws:iam::111111111111:role/mirrorctl", None);
        let ops_ext = role("arn:aws:iam::111111111111:role/mirrorctl", Some("ext-1"));
        let other = role("arn:aws:iam::222222222222:role/mirrorctl", None);

        let a = pool.clients(&tokyo, None).await;
        let b = pool.clients(&tokyo, None).await;
        assert!(Arc::ptr_eq(&a, &b), "two clusters of the default chain in one region: one set of clients");
        assert!(!Arc::ptr_eq(&a, &pool.clients(&osaka, None).await), "another region");
        let r = pool.clients(&tokyo, Some(&ops)).await;
        assert!(!Arc::ptr_eq(&a, &r), "a role is another identity");
        assert!(Arc::ptr_eq(&r, &pool.clients(&tokyo, Some(&ops)).await), "the same role: shared");
        assert!(!Arc::ptr_eq(&r, &pool.clients(&tokyo, Some(&ops_ext)).await), "another external id");
        assert!(!Arc::ptr_eq(&r, &pool.clients(&tokyo, Some(&other)).await), "another role");
        assert!(!Arc::ptr_eq(&r, &pool.clients(&osaka, Some(&ops)).await), "the role in another region");
        assert_eq!(pool.identities().await, 6);

        // Two clusters' ports on the one client count their own calls. Nothing listens on the
        // endpoint: every call fails after it was counted (static credentials: no credential
        // chain is asked).
        let mut options = AwsOptions::new(tokyo.clone());
        options.endpoint_url = Some("http://127.0.0.1:1".to_owned());
        let creds = aws_sdk_ec2::config::Credentials::new("AKIDTEST", "secret", None, None, "test");
        let config = a
            .config
            .to_builder()
            .credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(creds))
            .build();
        let shared = ec2_client(&config, &options);
        let one = AwsCloud::on_client(shared.clone(), &config, &options);
        let two = AwsCloud::on_client(shared, &config, &options);
        for _ in 0..2 {
            assert!(one.describe_volumes(&VolumeFilter::default()).await.is_err());
        }
        assert!(two.describe_instances(&[]).await.is_err());
        assert_eq!(one.call_counts().into_iter().collect::<Vec<_>>(), [("ec2:DescribeVolumes".to_owned(), 2)]);
        assert_eq!(two.call_counts().into_iter().collect::<Vec<_>>(), [("ec2:DescribeInstances".to_owned(), 1)]);
    }
}
