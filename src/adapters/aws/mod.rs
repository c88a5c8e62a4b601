//! The EC2 port over `aws-sdk-ec2`.
//!
//! Why this module exists: it is the one place mirrorctl speaks to real EC2 (or to moto, which
//! speaks the same wire format). It turns each [`Cloud`] call into exactly the EC2 request the
//! runbook needs — tags inside every create call, `ClientToken` on `CreateVolume`, `InstanceId` on
//! every `DetachVolume`, `OwnerIds=["self"]` on every `DescribeSnapshots` — walks every page of the
//! Describes, and hands back the port's plain types and [`PortError`]s carrying the AWS error code.
//!
//! Decisions:
//! - The SDK's own retries are **off**: the executor owns the retry policy (`backon`, per-step
//!   budgets, throttling never fatal), and two stacked retry loops would multiply waits and hide
//!   calls from the counters.
//! - Every HTTP call first takes a token from a client-side bucket ([`budget`]), so mirrorctl
//!   stays inside a fraction of the account's EC2 request budget and *waits* rather than fails.
//!   A daemon gives all its clusters' clients one shared set of buckets
//!   ([`AwsCloud::share_limiter`]): the account's budget is per account, not per cluster.
//! - Lookups by id use the `VolumeIds`/`SnapshotIds`/`InstanceIds` parameters (an unknown id is a
//!   `*.NotFound` error, as in the simulator), not the `volume-id` filter (which would answer
//!   with an empty list); the other criteria are filters (`tag:K`, `attachment.instance-id`,
//!   `volume-id` for a snapshot's source volume). `MaxResults` is only sent without ids (EC2
//!   refuses the combination).
//! - Non-data block devices (the root `/dev/sda1`, `/dev/xvda`) are not [`DeviceName`]s; they are
//!   left out of attachments and instance device lists.
//! - `CreateSnapshots` (a crash-consistent set across the volumes of one instance, EC2 API
//!   reference, `CreateSnapshots`) always sets `ExcludeBootVolume`, names the instance's other
//!   data volumes in `ExcludeDataVolumeIds`, tags in `TagSpecifications` and leaves
//!   `CopyTagsFromSource` unset. moto 5 honours the boot-volume exclusion, the tags and `DryRun`
//!   but ignores `ExcludeDataVolumeIds` (it snapshots every non-root volume), so only the
//!   simulator proves the exclusion.

pub mod budget;
mod convert;
pub mod error;
pub mod identity;
pub mod role;

use std::collections::BTreeMap;
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_ec2::Client;
use aws_sdk_ec2::config::SharedHttpClient;
use aws_sdk_ec2::types::{self as sdk, Filter, ResourceType, TagSpecification};

pub use budget::{Budget, Budgets, Category, RequestLimiter};
use convert::{FsrFields, SnapshotFields, VolumeFields};
use error::from_sdk;
pub use role::{assume_role, cluster_sdk_config, session_name};

use crate::ids::{DeviceName, InstanceId, Region, SnapshotId, VolumeId, Zone};
use crate::ports::cloud::{
    Cloud, CopySnapshot, CreateSnapshot, CreateSnapshotSet, CreateVolume, FastRestore, Instance, ShutdownBehavior,
    Snapshot, SnapshotFilter, Tags, Volume, VolumeFilter, VolumeInit,
};
use crate::ports::{PortError, PortResult};

/// How to reach EC2 and how gently to use it.
#[derive(Debug, Clone, PartialEq)]
pub struct AwsOptions {
    /// The region of the cluster (from the desired state).
    pub region: Region,
    /// An endpoint to use instead of EC2's (moto, a VPC endpoint). `None` still honours the
    /// standard `AWS_ENDPOINT_URL_EC2` / `AWS_ENDPOINT_URL` environment variables.
    pub endpoint_url: Option<String>,
    /// Client-side request budgets.
    pub budgets: Budgets,
    /// `MaxResults` for Describes without ids; clamped to what each API accepts (5–500 for
    /// volumes, 5–1000 for snapshots and instances).
    pub page_size: u32,
    /// Time limit for one HTTP attempt (the SDK's operation attempt timeout).
    pub attempt_timeout: Duration,
}

impl AwsOptions {
    /// Defaults for `region`: EC2's endpoint, default budgets, pages of 500, 30 s per attempt.
    pub fn new(region: Region) -> Self {
        AwsOptions {
            region,
            endpoint_url: None,
            budgets: Budgets::default(),
            page_size: 500,
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

/// The name [`AwsCloud::dry_run_check`] reports `CreateTags` on a set's snapshot under (the
/// volume's is `CreateTags`).
pub const SNAPSHOT_TAGS: &str = "CreateTags snapshot";

/// What [`AwsCloud::dry_run_check`] should try each mutating call on: real ids from the desired
/// state, since EC2 may answer a dry run on a made-up id with `NotFound` instead of a permission
/// verdict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DryRunProbe {
    /// A zone the cluster uses (`CreateVolume`).
    pub zone: Zone,
    /// One of the cluster's instances (`AttachVolume`, `DetachVolume`, `StartInstances`).
    pub instance: InstanceId,
    /// That instance's mirror volume (`AttachVolume`, `DetachVolume`, `CreateSnapshot`, `CreateTags`).
    pub volume: VolumeId,
    /// A snapshot (`CreateVolume` source, `DeleteSnapshot`); without one, `CreateVolume` asks for
    /// a blank 1 GiB volume and `DeleteSnapshot` is tried on a placeholder id.
    pub snapshot: Option<SnapshotId>,
    /// A snapshot of one of the cluster's snapshot sets (`CreateTags` on a snapshot: after a set
    /// is taken each member is tagged with what it holds, and `deploy/iam-policy.json` allows that
    /// only on such snapshots and only for those keys); without one that call is not tried.
    pub set_snapshot: Option<SnapshotId>,
}

/// The [`Cloud`] port on `aws-sdk-ec2`.
#[derive(Debug)]
pub struct AwsCloud {
    client: Client,
    limiter: budget::Limiter,
    page_size: u32,
    /// What it was built from, for the same account in another region.
    shared: aws_config::SdkConfig,
    options: AwsOptions,
}

impl AwsCloud {
    /// Builds the client from the default credential chain (environment, profile, SSO, web
    /// identity, container and instance metadata) for `options.region`.
    pub async fn connect(options: AwsOptions) -> Self {
        let shared = load_sdk_config(&options.region, options.endpoint_url.as_deref()).await;
        Self::from_sdk_config(&shared, &options)
    }

    /// Builds the client from an already loaded SDK configuration (its credentials and HTTP
    /// client); region, endpoint override, retries and timeouts come from `options`.
    pub fn from_sdk_config(shared: &aws_config::SdkConfig, options: &AwsOptions) -> Self {
        AwsCloud::on_client(ec2_client(shared, options), shared, options)
    }

    /// The port on `client`, an EC2 client other ports may hold too (a clone shares it): its
    /// counters and waits are this port's own. `client` should be [`ec2_client`]`(shared,
    /// options)` (no SDK retries, the attempt timeout); `shared` and `options` also serve
    /// [`Cloud::in_region`] and the page size.
    pub fn on_client(client: Client, shared: &aws_config::SdkConfig, options: &AwsOptions) -> Self {
        AwsCloud {
            client,
            limiter: budget::Limiter::new(options.budgets),
            page_size: options.page_size,
            shared: shared.clone(),
            options: options.clone(),
        }
    }

    /// Takes its tokens from `tokens` instead of buckets of its own: give every cluster's
    /// client of one process the same limiter, so together they keep to one account budget
    /// (counters and [`AwsCloud::throttle_wait`] stay per client).
    #[must_use]
    pub fn share_limiter(mut self, tokens: std::sync::Arc<RequestLimiter>) -> Self {
        self.limiter = budget::Limiter::shared(tokens);
        self
    }

    /// HTTP calls made so far, per API (`ec2:DescribeVolumes`, `ec2:CreateVolume`, …), pages and
    /// dry runs included.
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.limiter.counts()
    }

    /// Total time calls have waited for a client-side token.
    pub fn throttle_wait(&self) -> Duration {
        self.limiter.waited()
    }

    /// Tries each mutating API with `DryRun=true` and reports, per API name, `Ok` when EC2 says
    /// `DryRunOperation` (permitted) and the error otherwise (`UnauthorizedOperation` = the IAM
    /// policy lacks it). Used by `plan`; changes nothing.
    pub async fn dry_run_check(&self, probe: &DryRunProbe) -> Vec<(&'static str, Result<(), PortError>)> {
        let mut out = Vec::new();
        let snap = probe.snapshot.as_ref().map_or("snap-00000000000000000", SnapshotId::as_str);

        let mut create = self.client.create_volume().dry_run(true).availability_zone(probe.zone.as_str());
        create = match &probe.snapshot {
            Some(s) => create.snapshot_id(s.as_str()),
            None => create.size(1),
        };
        self.limiter.admit(Category::Mutate, "CreateVolume").await;
        out.push(("CreateVolume", dry(create.send().await.map_err(|e| from_sdk("CreateVolume", &e)))));

        self.limiter.admit(Category::Mutate, "AttachVolume").await;
        let r = self
            .client
            .attach_volume()
            .dry_run(true)
            .volume_id(probe.volume.as_str())
            .instance_id(probe.instance.as_str())
            .device("/dev/sdz")
            .send()
            .await;
        out.push(("AttachVolume", dry(r.map_err(|e| from_sdk("AttachVolume", &e)))));

        self.limiter.admit(Category::Mutate, "DetachVolume").await;
        let r = self
            .client
            .detach_volume()
            .dry_run(true)
            .volume_id(probe.volume.as_str())
            .instance_id(probe.instance.as_str())
            .send()
            .await;
        out.push(("DetachVolume", dry(r.map_err(|e| from_sdk("DetachVolume", &e)))));

        self.limiter.admit(Category::Mutate, "CreateSnapshot").await;
        let r = self.client.create_snapshot().dry_run(true).volume_id(probe.volume.as_str()).send().await;
        out.push(("CreateSnapshot", dry(r.map_err(|e| from_sdk("CreateSnapshot", &e)))));

        self.limiter.admit(Category::Mutate, "DeleteSnapshot").await;
        let r = self.client.delete_snapshot().dry_run(true).snapshot_id(snap).send().await;
        out.push(("DeleteSnapshot", dry(r.map_err(|e| from_sdk("DeleteSnapshot", &e)))));

        self.limiter.admit(Category::Mutate, "StartInstances").await;
        let r = self.client.start_instances().dry_run(true).instance_ids(probe.instance.as_str()).send().await;
        out.push(("StartInstances", dry(r.map_err(|e| from_sdk("StartInstances", &e)))));

        self.limiter.admit(Category::Mutate, "CreateTags").await;
        let r = self
            .client
            .create_tags()
            .dry_run(true)
            .resources(probe.volume.as_str())
            .tags(sdk::Tag::builder().key(crate::ports::cloud::tag::CLUSTER).value("dry-run").build())
            .send()
            .await;
        out.push(("CreateTags", dry(r.map_err(|e| from_sdk("CreateTags", &e)))));

        if let Some(member) = &probe.set_snapshot {
            self.limiter.admit(Category::Mutate, "CreateTags").await;
            let r = self
                .client
                .create_tags()
                .dry_run(true)
                .resources(member.as_str())
                .tags(sdk::Tag::builder().key(crate::ports::cloud::tag::HOLDS).value("dry-run").build())
                .tags(sdk::Tag::builder().key(crate::ports::cloud::tag::DEVICE).value("dry-run").build())
                .send()
                .await;
            out.push((SNAPSHOT_TAGS, dry(r.map_err(|e| from_sdk("CreateTags", &e)))));
        }
        out
    }

    fn page(&self, max: u32) -> i32 {
        i32::try_from(self.page_size.clamp(5, max)).unwrap_or(5)
    }
}

/// The shared SDK configuration from the default credential chain (environment, profile, SSO, web
/// identity, container and instance metadata) for `region`, with an endpoint override when given
/// (otherwise the standard `AWS_ENDPOINT_URL_<SERVICE>` / `AWS_ENDPOINT_URL` variables apply). Every
/// AWS client of mirrorctl (EC2, SSM) starts from it.
pub async fn load_sdk_config(region: &Region, endpoint_url: Option<&str>) -> aws_config::SdkConfig {
    let mut loader =
        aws_config::defaults(BehaviorVersion::latest()).region(aws_config::Region::new(region.as_str().to_owned()));
    if let Some(url) = endpoint_url {
        loader = loader.endpoint_url(url);
    }
    loader.load().await
}

/// [`load_sdk_config`] without endpoint override, every client built from it (EC2, SSM, STS for
/// an assumed role, Secrets Manager) on `http`: one connection pool and one TLS configuration
/// for all of them instead of one each.
pub async fn load_sdk_config_on(region: &Region, http: SharedHttpClient) -> aws_config::SdkConfig {
    aws_config::defaults(BehaviorVersion::latest())
        .region(aws_config::Region::new(region.as_str().to_owned()))
        .http_client(http)
        .load()
        .await
}

/// An HTTPS client like the one each SDK client otherwise builds for itself (hyper 1 with rustls
/// on aws-lc, the proxy from the environment: aws-smithy-runtime 1.16, `default_https_client`),
/// made to be shared. An SDK configuration without an HTTP client (what `aws_config::load`
/// gives) leaves each SDK client to build its own, and each builds its own connector with its
/// own copy of the system's root certificates (aws-smithy-http-client 1.5,
/// `TlsContext::rustls_root_certs`) and its own connection pool. Connections belong to the
/// tokio runtime that made them: share it within one runtime only.
pub fn https_client() -> SharedHttpClient {
    use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
    use aws_smithy_http_client::{Builder, ConnectorBuilder, proxy::ProxyConfig};
    Builder::new().build_with_connector_fn(|settings, components| {
        let mut conn = ConnectorBuilder::default().tls_provider(Provider::Rustls(CryptoMode::AwsLc));
        conn.set_connector_settings(settings.cloned());
        if let Some(components) = components {
            conn.set_sleep_impl(components.sleep_impl());
        }
        conn.set_proxy_config(Some(ProxyConfig::from_env()));
        conn.build()
    })
}

/// The EC2 client of `options` on the SDK configuration `shared`: its region and endpoint
/// override, the SDK's own retries off, [`attempt_timeouts`].
pub fn ec2_client(shared: &aws_config::SdkConfig, options: &AwsOptions) -> Client {
    let mut conf = aws_sdk_ec2::config::Builder::from(shared)
        .region(aws_config::Region::new(options.region.as_str().to_owned()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(attempt_timeouts(options.attempt_timeout));
    if let Some(url) = &options.endpoint_url {
        conf = conf.endpoint_url(url);
    }
    Client::from_conf(conf.build())
}

/// Timeouts of every AWS client of mirrorctl: 5 s to connect, `attempt` per HTTP attempt (the SDK's
/// own retries are off, so an attempt is the whole call).
pub(crate) fn attempt_timeouts(attempt: Duration) -> TimeoutConfig {
    TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).operation_attempt_timeout(attempt).build()
}

/// A dry run's verdict: `DryRunOperation` = permitted; success means the far side ignored
/// `DryRun`, which must not pass silently.
fn dry<T>(r: Result<T, PortError>) -> Result<(), PortError> {
    match r {
        Ok(_) => Err(PortError::ec2("DryRunIgnored", "the call succeeded although DryRun was set")),
        Err(e) => convert::dry_run_outcome(e),
    }
}

fn filter(name: impl Into<String>, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder().name(name).set_values(Some(values.into_iter().map(Into::into).collect())).build()
}

fn tag_filters(tags: &Tags) -> impl Iterator<Item = Filter> + '_ {
    tags.iter().map(|(k, v)| filter(format!("tag:{k}"), [v.as_str()]))
}

fn tag_spec(kind: ResourceType, tags: &Tags) -> Option<TagSpecification> {
    (!tags.is_empty())
        .then(|| TagSpecification::builder().resource_type(kind).set_tags(Some(convert::sdk_tags(tags))).build())
}

fn int(api: &str, what: &str, v: Option<u32>) -> PortResult<Option<i32>> {
    v.map(|n| {
        i32::try_from(n)
            .map_err(|_| PortError::ec2("InvalidParameterValue", format!("ec2:{api}: {what} {n} is too large")))
    })
    .transpose()
}

#[async_trait::async_trait]
impl Cloud for AwsCloud {
    fn call_counts(&self) -> BTreeMap<String, u64> {
        AwsCloud::call_counts(self)
    }

    async fn describe_volumes(&self, f: &VolumeFilter) -> PortResult<Vec<Volume>> {
        const API: &str = "DescribeVolumes";
        let mut filters: Vec<Filter> = tag_filters(&f.tags).collect();
        if !f.attached_to.is_empty() {
            filters.push(filter("attachment.instance-id", f.attached_to.iter().map(InstanceId::as_str)));
        }
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut req = self.client.describe_volumes().set_next_token(next.take());
            if !filters.is_empty() {
                req = req.set_filters(Some(filters.clone()));
            }
            if f.ids.is_empty() {
                req = req.max_results(self.page(500));
            } else {
                req = req.set_volume_ids(Some(f.ids.iter().map(|v| v.as_str().to_owned()).collect()));
            }
            self.limiter.admit(Category::Describe, API).await;
            let page = req.send().await.map_err(|e| from_sdk(API, &e))?;
            for v in page.volumes() {
                out.push(convert::volume(API, &VolumeFields::from(v))?);
            }
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(t) => next = Some(t.to_owned()),
                None => return Ok(out),
            }
        }
    }

    async fn describe_snapshots(&self, f: &SnapshotFilter) -> PortResult<Vec<Snapshot>> {
        const API: &str = "DescribeSnapshots";
        let mut filters: Vec<Filter> = tag_filters(&f.tags).collect();
        if let Some(v) = &f.volume {
            filters.push(filter("volume-id", [v.as_str()]));
        }
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut req = self.client.describe_snapshots().owner_ids("self").set_next_token(next.take());
            if !filters.is_empty() {
                req = req.set_filters(Some(filters.clone()));
            }
            if f.ids.is_empty() {
                req = req.max_results(self.page(1000));
            } else {
                req = req.set_snapshot_ids(Some(f.ids.iter().map(|s| s.as_str().to_owned()).collect()));
            }
            self.limiter.admit(Category::Describe, API).await;
            let page = req.send().await.map_err(|e| from_sdk(API, &e))?;
            for s in page.snapshots() {
                out.push(convert::snapshot(API, &SnapshotFields::from(s))?);
            }
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(t) => next = Some(t.to_owned()),
                None => return Ok(out),
            }
        }
    }

    async fn describe_instances(&self, ids: &[InstanceId]) -> PortResult<Vec<Instance>> {
        const API: &str = "DescribeInstances";
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let mut req = self.client.describe_instances().set_next_token(next.take());
            if ids.is_empty() {
                req = req.max_results(self.page(1000));
            } else {
                req = req.set_instance_ids(Some(ids.iter().map(|i| i.as_str().to_owned()).collect()));
            }
            self.limiter.admit(Category::Describe, API).await;
            let page = req.send().await.map_err(|e| from_sdk(API, &e))?;
            for r in page.reservations() {
                for i in r.instances() {
                    out.push(convert::instance(API, i)?);
                }
            }
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(t) => next = Some(t.to_owned()),
                None => return Ok(out),
            }
        }
    }

    async fn volume_initialization(&self, ids: &[VolumeId]) -> PortResult<Vec<VolumeInit>> {
        const API: &str = "DescribeVolumeStatus";
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let req = self
                .client
                .describe_volume_status()
                .set_volume_ids(Some(ids.iter().map(|v| v.as_str().to_owned()).collect()))
                .set_next_token(next.take());
            self.limiter.admit(Category::Describe, API).await;
            let page = req.send().await.map_err(|e| from_sdk(API, &e))?;
            for item in page.volume_statuses() {
                out.push(convert::volume_init(API, item)?);
            }
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(t) => next = Some(t.to_owned()),
                None => return Ok(out),
            }
        }
    }

    async fn shutdown_behavior(&self, id: &InstanceId) -> PortResult<ShutdownBehavior> {
        const API: &str = "DescribeInstanceAttribute";
        self.limiter.admit(Category::Describe, API).await;
        let out = self
            .client
            .describe_instance_attribute()
            .instance_id(id.as_str())
            .attribute(sdk::InstanceAttributeName::InstanceInitiatedShutdownBehavior)
            .send()
            .await
            .map_err(|e| from_sdk(API, &e))?;
        convert::shutdown_behavior(API, out.instance_initiated_shutdown_behavior().and_then(sdk::AttributeValue::value))
    }

    async fn create_volume(&self, req: &CreateVolume) -> PortResult<Volume> {
        const API: &str = "CreateVolume";
        let mut call = self
            .client
            .create_volume()
            .availability_zone(req.zone.as_str())
            .snapshot_id(req.snapshot.as_str())
            .volume_type(sdk::VolumeType::from(req.volume_type.as_str()))
            .client_token(&req.client_token)
            .set_size(int(API, "size", req.size_gib)?)
            .set_iops(int(API, "iops", req.iops)?)
            .set_throughput(int(API, "throughput", req.throughput)?)
            .set_volume_initialization_rate(int(API, "initialization rate", req.initialization_rate)?)
            .set_tag_specifications(tag_spec(ResourceType::Volume, &req.tags).map(|t| vec![t]));
        if let Some(key) = &req.kms_key {
            call = call.encrypted(true).kms_key_id(key);
        }
        self.limiter.admit(Category::Mutate, API).await;
        let out = call.send().await.map_err(|e| from_sdk(API, &e))?;
        convert::volume(API, &VolumeFields::from(&out))
    }

    async fn attach_volume(&self, volume: &VolumeId, instance: &InstanceId, device: &DeviceName) -> PortResult<()> {
        const API: &str = "AttachVolume";
        self.limiter.admit(Category::Mutate, API).await;
        self.client
            .attach_volume()
            .volume_id(volume.as_str())
            .instance_id(instance.as_str())
            .device(device.api_name())
            .send()
            .await
            .map_err(|e| from_sdk(API, &e))?;
        Ok(())
    }

    async fn detach_volume(&self, volume: &VolumeId, instance: &InstanceId) -> PortResult<()> {
        const API: &str = "DetachVolume";
        self.limiter.admit(Category::Mutate, API).await;
        self.client
            .detach_volume()
            .volume_id(volume.as_str())
            .instance_id(instance.as_str())
            .send()
            .await
            .map_err(|e| from_sdk(API, &e))?;
        Ok(())
    }

    async fn create_snapshot(&self, req: &CreateSnapshot) -> PortResult<Snapshot> {
        const API: &str = "CreateSnapshot";
        self.limiter.admit(Category::Mutate, API).await;
        let out = self
            .client
            .create_snapshot()
            .volume_id(req.volume.as_str())
            .description(&req.description)
            .set_tag_specifications(tag_spec(ResourceType::Snapshot, &req.tags).map(|t| vec![t]))
            .send()
            .await
            .map_err(|e| from_sdk(API, &e))?;
        convert::snapshot(API, &SnapshotFields::from(&out))
    }

    async fn create_snapshot_set(&self, req: &CreateSnapshotSet) -> PortResult<Vec<Snapshot>> {
        const API: &str = "CreateSnapshots";
        self.limiter.admit(Category::Mutate, API).await;
        let spec = sdk::InstanceSpecification::builder()
            .instance_id(req.instance.as_str())
            .exclude_boot_volume(true)
            .set_exclude_data_volume_ids(
                (!req.exclude.is_empty()).then(|| req.exclude.iter().map(|v| v.as_str().to_owned()).collect()),
            )
            .build();
        let out = self
            .client
            .create_snapshots()
            .instance_specification(spec)
            .description(&req.description)
            .set_tag_specifications(tag_spec(ResourceType::Snapshot, &req.tags).map(|t| vec![t]))
            .send()
            .await
            .map_err(|e| from_sdk(API, &e))?;
        // EC2 answers with each new snapshot `pending`; moto leaves `State` out of this response.
        let pending = sdk::SnapshotState::Pending;
        out.snapshots()
            .iter()
            .map(|s| {
                let mut fields = SnapshotFields::from(s);
                fields.state = fields.state.or(Some(&pending));
                convert::snapshot(API, &fields)
            })
            .collect()
    }

    fn in_region(&self, region: &Region) -> PortResult<std::sync::Arc<dyn Cloud>> {
        let options = AwsOptions { region: region.clone(), ..self.options.clone() };
        Ok(std::sync::Arc::new(AwsCloud::from_sdk_config(&self.shared, &options)))
    }

    async fn copy_snapshot(&self, req: &CopySnapshot) -> PortResult<SnapshotId> {
        const API: &str = "CopySnapshot";
        self.limiter.admit(Category::Mutate, API).await;
        let out = self
            .client
            .copy_snapshot()
            .source_region(req.source_region.as_str())
            .source_snapshot_id(req.source.as_str())
            .description(&req.description)
            .set_encrypted(req.kms_key.as_ref().map(|_| true))
            .set_kms_key_id(req.kms_key.clone())
            .set_tag_specifications(tag_spec(ResourceType::Snapshot, &req.tags).map(|t| vec![t]))
            .send()
            .await
            .map_err(|e| from_sdk(API, &e))?;
        let id = out.snapshot_id().unwrap_or_default();
        SnapshotId::parse(id)
            .map_err(|e| PortError::ec2("InvalidResponse", format!("{API} returned snapshot id {id:?}: {}", e.0)))
    }

    async fn delete_snapshot(&self, id: &SnapshotId) -> PortResult<()> {
        const API: &str = "DeleteSnapshot";
        self.limiter.admit(Category::Mutate, API).await;
        self.client.delete_snapshot().snapshot_id(id.as_str()).send().await.map_err(|e| from_sdk(API, &e))?;
        Ok(())
    }

    async fn start_instance(&self, id: &InstanceId) -> PortResult<()> {
        const API: &str = "StartInstances";
        self.limiter.admit(Category::Mutate, API).await;
        self.client.start_instances().instance_ids(id.as_str()).send().await.map_err(|e| from_sdk(API, &e))?;
        Ok(())
    }

    async fn create_tags(&self, resource: &str, tags: &Tags) -> PortResult<()> {
        const API: &str = "CreateTags";
        self.limiter.admit(Category::Mutate, API).await;
        self.client
            .create_tags()
            .resources(resource)
            .set_tags(Some(convert::sdk_tags(tags)))
            .send()
            .await
            .map_err(|e| from_sdk(API, &e))?;
        Ok(())
    }

    async fn describe_fast_snapshot_restores(&self, snapshot: &SnapshotId) -> PortResult<Vec<FastRestore>> {
        const API: &str = "DescribeFastSnapshotRestores";
        let mut out = Vec::new();
        let mut next: Option<String> = None;
        loop {
            let req = self
                .client
                .describe_fast_snapshot_restores()
                .filters(filter("snapshot-id", [snapshot.as_str()]))
                .set_next_token(next.take());
            self.limiter.admit(Category::Describe, API).await;
            let page = req.send().await.map_err(|e| from_sdk(API, &e))?;
            for item in page.fast_snapshot_restores() {
                out.push(convert::fast_restore(API, &FsrFields::from(item))?);
            }
            match page.next_token().filter(|t| !t.is_empty()) {
                Some(t) => next = Some(t.to_owned()),
                None => return Ok(out),
            }
        }
    }

    async fn enable_fast_snapshot_restores(
        &self,
        snapshot: &SnapshotId,
        zones: &[Zone],
    ) -> PortResult<Vec<FastRestore>> {
        const API: &str = "EnableFastSnapshotRestores";
        self.limiter.admit(Category::Mutate, API).await;
        let out = self
            .client
            .enable_fast_snapshot_restores()
            .source_snapshot_ids(snapshot.as_str())
            .set_availability_zones(Some(zones.iter().map(|z| z.as_str().to_owned()).collect()))
            .send()
            .await
            .map_err(|e| from_sdk(API, &e))?;
        let refused = out.unsuccessful().iter().flat_map(|u| {
            u.fast_snapshot_restore_state_errors().iter().map(|e| {
                let err = e.error();
                (e.availability_zone(), err.and_then(|x| x.code()), err.and_then(|x| x.message()))
            })
        });
        convert::fsr_answer(API, refused, out.successful().iter().map(FsrFields::from))
    }

    async fn disable_fast_snapshot_restores(
        &self,
        snapshot: &SnapshotId,
        zones: &[Zone],
    ) -> PortResult<Vec<FastRestore>> {
        const API: &str = "DisableFastSnapshotRestores";
        self.limiter.admit(Category::Mutate, API).await;
        let out = self
            .client
            .disable_fast_snapshot_restores()
            .source_snapshot_ids(snapshot.as_str())
            .set_availability_zones(Some(zones.iter().map(|z| z.as_str().to_owned()).collect()))
            .send()
            .await
            .map_err(|e| from_sdk(API, &e))?;
        let refused = out.unsuccessful().iter().flat_map(|u| {
            u.fast_snapshot_restore_state_errors().iter().map(|e| {
                let err = e.error();
                (e.availability_zone(), err.and_then(|x| x.code()), err.and_then(|x| x.message()))
            })
        });
        convert::fsr_answer(API, refused, out.successful().iter().map(FsrFields::from))
    }

    async fn fast_restore_permitted(&self, snapshot: &SnapshotId, zones: &[Zone]) -> PortResult<()> {
        let zones: Vec<String> = zones.iter().map(|z| z.as_str().to_owned()).collect();
        self.limiter.admit(Category::Mutate, "EnableFastSnapshotRestores").await;
        let r = self
            .client
            .enable_fast_snapshot_restores()
            .dry_run(true)
            .source_snapshot_ids(snapshot.as_str())
            .set_availability_zones(Some(zones.clone()))
            .send()
            .await;
        dry(r.map_err(|e| from_sdk("EnableFastSnapshotRestores", &e)))?;
        self.limiter.admit(Category::Mutate, "DisableFastSnapshotRestores").await;
        let r = self
            .client
            .disable_fast_snapshot_restores()
            .dry_run(true)
            .source_snapshot_ids(snapshot.as_str())
            .set_availability_zones(Some(zones))
            .send()
            .await;
        dry(r.map_err(|e| from_sdk("DisableFastSnapshotRestores", &e)))
    }
}
