//! A cluster's AWS identity: the default credential chain, or an IAM role assumed on top of it.
//!
//! Why this module exists: one daemon serves clusters of many accounts; each cluster's file may
//! name the role its AWS calls assume (`cluster.role_arn`, `external_id`). This is the one place
//! that turns that into an SDK configuration, the same for EC2, SSM, Secrets Manager and SNS.
//! Source: AWS STS API Reference, `AssumeRole`
//! (<https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>): session names of
//! 2–64 characters, external ids of 2–1224, temporary credentials; aws-config's
//! `AssumeRoleProvider` renews them.

use super::load_sdk_config;
use crate::ids::{ClusterName, Region};
use crate::spec::{ClusterSpec, RoleSpec};

/// The SDK configuration of `cluster`'s AWS calls in `region`: the default credential chain
/// ([`load_sdk_config`]), with the cluster's IAM role assumed on top of it when the desired state
/// names one (`cluster.role_arn`). EC2, SSM, Secrets Manager and SNS of that cluster start from
/// it.
pub async fn cluster_sdk_config(cluster: &ClusterSpec, region: &Region) -> aws_config::SdkConfig {
    let base = load_sdk_config(region, None).await;
    match &cluster.role {
        Some(role) => assume_role(&base, role, &session_name(&cluster.name)).await,
        None => base,
    }
}

/// `base` with its credentials replaced by those of `role`, assumed with `base`'s credentials
/// through aws-config's `AssumeRoleProvider` (STS `AssumeRole`, the session name `session`, the
/// role's external id). The provider refreshes the temporary credentials before they expire; the
/// configuration's identity cache keeps them between calls.
pub async fn assume_role(base: &aws_config::SdkConfig, role: &RoleSpec, session: &str) -> aws_config::SdkConfig {
    // The IAM action this needs (tests/it/deploy.rs ties the policy to this line).
    const API: &str = "AssumeRole";
    tracing::debug!(api = API, role = %role.arn, session, "assuming the cluster's role");
    let mut builder =
        aws_config::sts::AssumeRoleProvider::builder(role.arn.clone()).session_name(session).configure(base);
    if let Some(id) = &role.external_id {
        builder = builder.external_id(id.clone());
    }
    let provider = builder.build().await;
    base.to_builder().credentials_provider(aws_sdk_ec2::config::SharedCredentialsProvider::new(provider)).build()
}

/// The STS session name of `cluster`'s assumed role: `mirrorctl-<cluster>`, cut to the 64
/// characters STS allows (`CloudTrail` shows it as the caller of every call).
pub fn session_name(cluster: &ClusterName) -> String {
    format!("mirrorctl-{cluster}").chars().take(64).collect()
}
