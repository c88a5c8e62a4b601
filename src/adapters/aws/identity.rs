//! Who mirrorctl is on AWS, asked before anything else: the account, the caller's ARN, the region
//! and the endpoint, from STS `GetCallerIdentity` (which needs no permission).
//!
//! Why this module exists: `plan` and `apply` against real AWS must say which account they are
//! about to act in before they act, and a machine without credentials, or without a route to
//! AWS, must get one line saying so and what to do — not twenty seconds of retried calls ending
//! in an SDK error dump. Credentials are resolved once, here, with a deadline; STS is called once,
//! without retries, and its failure is sorted into "no credentials", "cannot reach AWS" and
//! "credentials refused".

use std::time::Duration;

use aws_sdk_sts::config::ProvideCredentials as _;
use aws_sdk_sts::error::SdkError;

use super::{attempt_timeouts, cluster_sdk_config};
use crate::ids::Region;
use crate::spec::ClusterSpec;

/// How long credential resolution and the STS call may take, each.
pub const DEADLINE: Duration = Duration::from_secs(10);

/// The caller on AWS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Account id.
    pub account: String,
    /// The caller's ARN (user or assumed role).
    pub arn: String,
    /// Region asked.
    pub region: String,
    /// Endpoint override in force (`AWS_ENDPOINT_URL…`), if any.
    pub endpoint: Option<String>,
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AWS account {}, region {}, as {}", self.account, self.region, self.arn)?;
        if let Some(e) = &self.endpoint {
            write!(f, " (endpoint {e})")?;
        }
        Ok(())
    }
}

/// Why the caller could not be established; each renders as one line saying what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentityError {
    /// No credentials in the default chain.
    #[error(
        "no AWS credentials for region {region}: {why}. Set AWS_PROFILE (or AWS_ACCESS_KEY_ID and \
         AWS_SECRET_ACCESS_KEY), or run on an instance with an IAM role; nothing was done"
    )]
    NoCredentials {
        /// Region.
        region: String,
        /// The chain's answer, shortened.
        why: String,
    },
    /// AWS did not answer.
    #[error(
        "cannot reach AWS STS in region {region}{}: {why}. Check the network, a proxy, or AWS_ENDPOINT_URL; \
         nothing was done",
        endpoint.as_ref().map(|e| format!(" at {e}")).unwrap_or_default()
    )]
    Unreachable {
        /// Region.
        region: String,
        /// Endpoint override, if any.
        endpoint: Option<String>,
        /// The innermost cause.
        why: String,
    },
    /// AWS answered and refused the credentials.
    #[error(
        "AWS refused the credentials in region {region}: {code}: {message}. Renew or replace them \
         (expired session? wrong profile?); nothing was done"
    )]
    Refused {
        /// Region.
        region: String,
        /// Error code.
        code: String,
        /// Message.
        message: String,
    },
}

/// The innermost cause of an error, in one line.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string().lines().next().unwrap_or_default().to_owned()
}

/// Asks STS who `cluster`'s AWS calls are made as, in its region: the default credential chain,
/// or the role the cluster assumes on top of it (then the ARN is the assumed role's session).
pub async fn whoami(cluster: &ClusterSpec) -> Result<Identity, IdentityError> {
    whoami_with(&cluster_sdk_config(cluster, &cluster.region).await, &cluster.region).await
}

/// Asks STS who the credentials of `shared` are, in `region`.
pub async fn whoami_with(shared: &aws_config::SdkConfig, region: &Region) -> Result<Identity, IdentityError> {
    let region_s = region.as_str().to_owned();
    let no_credentials = |why: String| IdentityError::NoCredentials { region: region_s.clone(), why };
    let provider = shared.credentials_provider().ok_or_else(|| no_credentials("no credential chain".into()))?;
    match tokio::time::timeout(DEADLINE, provider.provide_credentials()).await {
        Err(_) => return Err(no_credentials(format!("the credential chain did not answer within {DEADLINE:?}"))),
        Ok(Err(e)) => {
            let text = e.to_string();
            let why = if text.contains("no credentials found in chain") || text.contains("not enabled") {
                "none found (environment, profile, web identity, container and instance metadata were tried)".into()
            } else {
                root_cause(&e)
            };
            return Err(no_credentials(why));
        }
        Ok(Ok(_)) => {}
    }
    let conf = aws_sdk_sts::config::Builder::from(shared)
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .timeout_config(attempt_timeouts(DEADLINE))
        .build();
    let endpoint = shared
        .endpoint_url()
        .map(str::to_owned)
        .or_else(|| std::env::var("AWS_ENDPOINT_URL_STS").ok().or_else(|| std::env::var("AWS_ENDPOINT_URL").ok()));
    let out = aws_sdk_sts::Client::from_conf(conf).get_caller_identity().send().await.map_err(|e| match &e {
        SdkError::ServiceError(se) => {
            use aws_sdk_sts::error::ProvideErrorMetadata as _;
            IdentityError::Refused {
                region: region_s.clone(),
                code: se.err().code().unwrap_or("unknown").to_owned(),
                message: se.err().message().unwrap_or_default().to_owned(),
            }
        }
        _ => IdentityError::Unreachable { region: region_s.clone(), endpoint: endpoint.clone(), why: root_cause(&e) },
    })?;
    Ok(Identity {
        account: out.account().unwrap_or("?").to_owned(),
        arn: out.arn().unwrap_or("?").to_owned(),
        region: region_s,
        endpoint,
    })
}
