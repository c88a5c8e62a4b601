//! The composition root: where a cluster's world is opened, for `plan`, `apply` and the daemon.
//!
//! Why this module exists: the reconcile loop and the daemon know only the ports; something must
//! pick the implementations and wire them together. That is done here once, above the simulator
//! and the adapters, and handed down: the CLI opens one world ([`open_lab`], [`aws_ports`]), the
//! daemon receives a [`WorldOpener`] ([`lab_worlds`], [`aws_worlds`]).
//!
//! The lab world of a cluster is the simulated world persisted in `<state>/lab/<cluster>.json`
//! ([`lab_file`]), created shaped like the desired state on first use.
//!
//! The real world ([`aws_ports`]): every adapter is built and tested on its own; here they are put
//! together for a desired-state file:
//!
//! - **Credentials**: the default credential chain, with the cluster's IAM role assumed on top
//!   when its file names one (`cluster.role_arn`, [`cluster_sdk_config`]); every AWS client below
//!   (EC2, SSM, Secrets Manager) uses them. The daemon assumes a role once per region and shares
//!   it, and one EC2 and one SSM client, among the clusters naming it ([`aws_clients`]).
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

pub mod aws_clients;
pub mod project;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::adapters::aws::{AwsCloud, AwsOptions, cluster_sdk_config};
use crate::adapters::clusterpro::commands::CommandCluster;
use crate::adapters::clusterpro::hybrid::HybridCluster;
use crate::adapters::clusterpro::rest::RestCluster;
use crate::adapters::node::recipe_node::RecipeNode;
use crate::adapters::node::ssm::{SsmOptions, SsmTransport};
use crate::adapters::node::transport::{LocalTransport, Transport};
use crate::adapters::secret::SecretResolver;
use crate::controller::WorldOpener;
use crate::ports::clock::SystemClock;
use crate::ports::limit::{Budgets, LimitedCloud, Limiters, RequestLimiter};
use crate::ports::{Cluster, PortResult, Ports, store::Store};
use crate::sim::scenario::scenario_for;
use crate::sim::{SimError, SimWorld};
use crate::spec::{Access, Spec};

/// An opened world.
pub struct OpenWorld {
    /// Its ports.
    pub ports: Ports,
    /// The simulated world, when it is one.
    pub sim: Option<Arc<SimWorld>>,
    /// The file the simulated world persists to, when it is one.
    pub file: Option<PathBuf>,
}

/// The lab world file of `spec`'s cluster: `<state>/lab/<cluster>.json`, the file the daemon's
/// `--world lab` uses too, so `plan`, `apply` and `run` see one world per cluster.
pub fn lab_file(state_dir: &Path, spec: &Spec) -> PathBuf {
    state_dir.join("lab").join(format!("{}.json", spec.cluster.name))
}

/// Why a lab world could not be opened (the cause is part of the message, as the CLI and the
/// daemon print it in one line).
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// Its directory could not be made.
    #[error("creating {}: {cause}", dir.display())]
    Dir {
        /// The directory.
        dir: PathBuf,
        /// What the file system said.
        cause: std::io::Error,
    },
    /// The world file could not be read.
    #[error("opening lab world {}: {cause}", path.display())]
    Open {
        /// The world file.
        path: PathBuf,
        /// Why.
        cause: SimError,
    },
    /// A new world could not be written.
    #[error("creating lab world {}: {cause}", path.display())]
    Create {
        /// The world file.
        path: PathBuf,
        /// Why.
        cause: SimError,
    },
}

/// Opens the lab world persisted at `path`, or creates it (and its directory) shaped like `spec`
/// ([`scenario_for`]) when there is none yet. Says whether it was created.
pub(crate) fn open_lab(path: &Path, spec: &Spec, speed: f64) -> Result<(Arc<SimWorld>, bool), LabError> {
    if path.exists() {
        let world = SimWorld::open(path, speed).map_err(|cause| LabError::Open { path: path.to_owned(), cause })?;
        return Ok((world, false));
    }
    // A fresh state directory need not exist yet; journals and status documents create theirs.
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|cause| LabError::Dir { dir: dir.to_owned(), cause })?;
    }
    let world = SimWorld::new(scenario_for(spec), 42, speed);
    world.persist_to(path).map_err(|cause| LabError::Create { path: path.to_owned(), cause })?;
    Ok((world, true))
}

/// The lab: each cluster gets its own persisted simulated world `<lab_dir>/<cluster>.json`
/// (`<state_dir>/lab` unless the settings name another directory), created from that cluster's
/// first valid desired state. All clusters' EC2 calls go through one client-side
/// [`RequestLimiter`] with the default budgets (per model second, hence scaled by `speed`), as the
/// clusters of a daemon on AWS share one account's request budget. Daemons sharing a lab
/// directory share the worlds (each reloads a world another process wrote before acting on it).
pub fn lab_worlds(lab_dir: &Path, speed: f64) -> WorldOpener {
    let dir = lab_dir.to_owned();
    let limiter = Arc::new(RequestLimiter::new(Budgets::default().scaled(speed)));
    Arc::new(move |spec: &Spec| {
        let open = || {
            let (world, _) =
                open_lab(&dir.join(format!("{}.json", spec.cluster.name)), spec, speed).map_err(|e| e.to_string())?;
            let mut ports = world.ports();
            ports.cloud = Arc::new(LimitedCloud::new(ports.cloud, Arc::clone(&limiter)));
            Ok(ports)
        };
        Box::pin(std::future::ready(open()))
    })
}

/// The daemon's projector on the lab world: once a cluster has work, its whole sequence is
/// projected on a throw-away copy of its world in `lab_dir` with a copy of its journal under
/// `state_dir` ([`project::expectations`]), for the status's step total and ETA. The journal is
/// the state directory's: with another store the projection would start from an empty journal, so
/// the caller sets this for the directory store only.
pub(crate) fn lab_projector(lab_dir: &Path, state_dir: &Path, store: Arc<dyn Store>) -> crate::reconcile::Projector {
    let (lab, state) = (lab_dir.to_owned(), state_dir.to_owned());
    Arc::new(move |spec: &Spec, start: jiff::Timestamp| {
        let (spec, state, store) = (spec.clone(), state.clone(), Arc::clone(&store));
        let file = lab.join(format!("{}.json", spec.cluster.name));
        Box::pin(async move { project::expectations(&spec, &state, store.as_ref(), &file, start).await })
    })
}

/// The real world: each cluster's ports on AWS, CLUSTERPRO and its servers
/// ([`aws_ports`], the command adapter's md templates in `store`). The
/// clusters of one AWS account and region share one client-side [`RequestLimiter`] with the default
/// budgets (half of EC2's buckets, room left for other tools); the account is the one in the
/// cluster's `role_arn`, or the default credential chain's (asked of STS once per process; when
/// STS cannot say, those clusters share one limiter all the same).
///
/// The same goes for Systems Manager: one [`Budgets::ssm`] limiter per account and region.
///
/// The clusters of one identity (the default chain, or one `role_arn` with its `external_id`) and
/// region share one EC2 and one SSM client on one HTTPS client ([`aws_clients::ClientPool`]);
/// each cluster's ports keep their own call counters.
pub(crate) fn aws_worlds(state_dir: &Path, store: Arc<dyn Store>) -> WorldOpener {
    let state_dir = state_dir.to_owned();
    let limiters = Arc::new(Limiters::new(Budgets::default()));
    let ssm_limiters = Arc::new(Limiters::new(Budgets::ssm()));
    let default_account = Arc::new(tokio::sync::OnceCell::<String>::new());
    let pool = Arc::new(aws_clients::ClientPool::new());
    Arc::new(move |spec: &Spec| {
        let (spec, state_dir, limiters, ssm_limiters, store, default_account, pool) = (
            spec.clone(),
            state_dir.clone(),
            Arc::clone(&limiters),
            Arc::clone(&ssm_limiters),
            Arc::clone(&store),
            Arc::clone(&default_account),
            Arc::clone(&pool),
        );
        Box::pin(async move {
            let account = match &spec.cluster.role {
                Some(role) => role.account.clone(),
                None => default_account
                    .get_or_init(|| async {
                        let shared = pool.base(&spec.cluster.region).await;
                        match crate::adapters::aws::identity::whoami_with(&shared, &spec.cluster.region).await {
                            Ok(who) => who.account,
                            Err(e) => {
                                tracing::warn!(error = %e, "the default credential chain's account is unknown; its clusters share one request budget");
                                "default-chain".to_owned()
                            }
                        }
                    })
                    .await
                    .clone(),
            };
            let c = &spec.cluster;
            let clients = pool.clients(&c.region, c.role.as_ref()).await;
            let cloud = clients.cloud(&c.region).share_limiter(limiters.for_account(&account, &c.region));
            let transport: Arc<dyn Transport> = match c.access {
                Access::Ssm => Arc::new(
                    clients.ssm(&c.region, &c.servers).share_limiter(ssm_limiters.for_account(&account, &c.region)),
                ),
                Access::Local => Arc::new(LocalTransport::new()),
            };
            ports_on(&spec, cloud, transport, &clients.config, &state_dir, store).await.map_err(|e| e.to_string())
        })
    })
}

/// The ports of `spec`'s cluster on AWS. `state_dir` keeps the command adapter's `clp.conf`
/// copies, `store` its md templates and pending-resume marker (so another host can finish a
/// restore); `limiter`, when given, is shared by every cluster of the same account and region.
/// Fails (needs-human) only for what the REST API needs up front: its password and CA bundle.
pub(crate) async fn aws_ports(
    spec: &Spec,
    state_dir: &Path,
    store: Arc<dyn Store>,
    limiter: Option<Arc<RequestLimiter>>,
) -> PortResult<Ports> {
    let shared = cluster_sdk_config(&spec.cluster, &spec.cluster.region).await;
    ports_from(spec, &shared, state_dir, store, limiter).await
}

/// [`aws_ports`] on the SDK configuration `shared` (the cluster's credentials and region).
async fn ports_from(
    spec: &Spec,
    shared: &aws_config::SdkConfig,
    state_dir: &Path,
    store: Arc<dyn Store>,
    limiter: Option<Arc<RequestLimiter>>,
) -> PortResult<Ports> {
    let c = &spec.cluster;
    let mut cloud = AwsCloud::from_sdk_config(shared, &AwsOptions::new(c.region.clone()));
    if let Some(l) = limiter {
        cloud = cloud.share_limiter(l);
    }
    let transport: Arc<dyn Transport> = match c.access {
        Access::Ssm => Arc::new(SsmTransport::from_sdk_config(shared, &SsmOptions::new(c.region.clone()), &c.servers)),
        Access::Local => Arc::new(LocalTransport::new()),
    };
    ports_on(spec, cloud, transport, shared, state_dir, store).await
}

/// The cluster's ports on its EC2 port `cloud` and node `transport`; `shared` is the SDK
/// configuration the REST API's password is read from Secrets Manager with.
async fn ports_on(
    spec: &Spec,
    cloud: AwsCloud,
    transport: Arc<dyn Transport>,
    shared: &aws_config::SdkConfig,
    state_dir: &Path,
    store: Arc<dyn Store>,
) -> PortResult<Ports> {
    let c = &spec.cluster;
    let commands: Arc<dyn Cluster> =
        Arc::new(CommandCluster::new(c, Arc::clone(&transport), state_dir).with_store(store));
    let cluster: Arc<dyn Cluster> = match &c.api {
        Some(api) => {
            let servers: Vec<_> = c.servers.iter().map(|s| s.name.clone()).collect();
            let rest = RestCluster::connect(api, &servers, &SecretResolver::from_sdk_config(shared)).await?;
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
