//! The DynamoDB state store: journals, status documents and leases in one table that several
//! hosts share, so losing the host that runs mirrorctl loses neither the journal nor the cluster.
//!
//! Why this module exists: the journal is what makes a resume exact (token generations, pushes in
//! doubt). On one host's disk it dies with the host, and nothing keeps a second host from acting
//! on the same cluster. DynamoDB has no cluster to run, conditional writes and transactions, and
//! is what an AWS shop already operates.
//!
//! # Table
//! One table, on-demand capacity (`PAY_PER_REQUEST`), created by `mirrorctl store init --store
//! dynamodb:TABLE` ([`DynamoStore::init`]). Key: partition key `pk` (string) = the cluster name,
//! sort key `sk` (string) = the kind of item:
//!
//! | `sk` | attributes | what |
//! |---|---|---|
//! | `lease` | `holder` (S, absent when released), `rvn` (S), `epoch` (N), `duration_ms` (N) | the cluster's lease |
//! | `journal#<20-digit position>` | `record` (S, JSON), `epoch` (N) | journal record number *position* (from 1) |
//! | `status` | `doc` (S, JSON), `epoch` (N) | the status document |
//! | `file#<name>` | `body` (B) | a cluster file ([`Store::read_cluster_file`]): the md template of a restore in progress, the pending-resume marker |
//!
//! A cluster's journal is one `Query` (`pk = cluster AND begins_with(sk, "journal#")`, strongly
//! consistent). Listing every status document (`mirrorctl status` without a name) is a `Scan`
//! filtered on `sk = status`: it reads the journals too, so it costs in proportion to the table.
//!
//! # Lease (after Amazon's dynamodb-lock-client)
//! - **Holder identity**: host, pid and a random part, new for every process.
//! - **Acquire** takes a free lease (no item, or no `holder`) with a conditional write on the
//!   `rvn` it read, setting a new `rvn` and `epoch + 1`. The epoch only grows, across releases too.
//! - **Heartbeat** ([`Store::renew`], every third of the lease period) writes a new `rvn`, on the
//!   condition that `holder` and `epoch` are still this holder's.
//! - **Takeover without trusting clocks**: a waiter that finds the lease held records the `rvn`
//!   it saw and when (its own monotonic clock). Only when it sees the *same* `rvn` again a whole
//!   lease period (the holder's `duration_ms`) later does it take over, conditionally on that
//!   `rvn`. No clock of another host is ever compared with this one's. While the `rvn` keeps
//!   changing the waiter looks [`LOOKS_PER_PERIOD`] times a period ([`StoreError::Busy`]'s
//!   `retry_in`), so a dead holder is taken over 1 to 1¼ periods after its last heartbeat.
//! - **The holder stops trusting its lease** one lease period after it *sent* its last good
//!   heartbeat ([`Lease::check`]): the waiter's period starts after that heartbeat was written,
//!   so the holder stops acting before any waiter may take over, with clocks that merely run at
//!   the same rate.
//! - **Fencing**: every journal append is a `TransactWriteItems` of a `ConditionCheck` (the lease
//!   item's `holder` and `epoch` are this holder's) and a `Put` of the record (on the condition
//!   that its position is free). A deposed holder, even one frozen (SIGSTOP) across the takeover
//!   that wakes and writes, is refused at the store: [`StoreError::LeaseLost`]. Status writes are
//!   conditional on the document's `epoch` not being newer than the writer's.
//!
//! # What fences the world, not the store
//! EC2, CLUSTERPRO and the nodes cannot check an epoch. Before every mutating call the executor
//! writes the step's intent (fenced as above) and checks [`Lease::check`] again before the call
//! and before each retry; a call from a deposed holder can therefore only be one it decided on
//! while it still held the lease and that reaches the far side late (a slow network, or a process
//! frozen between the check and the send). The successor finds that step's intent without a
//! result, an interrupted step, and resolves it by observation. Why a late call is harmless, per
//! kind of step:
//!
//! - **`CreateVolume`**: its `ClientToken` is derived from cluster, step and token generation, so the
//!   successor's retry and the late call name the same volume; never a second one.
//! - **`CreateSnapshot`** (no token): tagged in the same call; the successor looks the backup up by
//!   tag before creating it. A late call landing *after* that lookup makes a second snapshot of the
//!   same backup name: visible by its tags in `mirrorctl status`, it holds no wrong data (same
//!   quiesce point only if the md was still stopped; otherwise it is a crash-consistent extra copy)
//!   and retention counts it. This is the one residual duplicate; it needs a freeze of the old
//!   holder between its check and its send longer than a lease period.
//! - **`AttachVolume` / `DetachVolume` / `StartInstance` / `Tag` / `DeleteSnapshot`**: idempotent by nature
//!   or by error narrowing ("already attached", `IncorrectState` on detach, a deleted snapshot's
//!   `NotFound`); the successor observes the result before its next step.
//! - **`ApplyConfig`** (a `clp.conf` push): the planner treats a push whose intent has no result as
//!   possibly still landing for 15 minutes (`push_in_doubt`): the successor takes no step that
//!   could conflict until the push shows in `clp.conf` or that time passed.
//! - **Group / resource / server operations** (stop, start, move, shutdown) and **disk
//!   offline / online / letters**: each is decided from an observation the successor repeats every
//!   pass; a late one is seen and undone or waited out by the level-triggered loop (a disk brought
//!   online under a detach shows as a stuck `busy` detach, which the planner already handles). A
//!   late stop can still interrupt business for one pass: the lease's margin is what keeps that
//!   window small, not a fence.
//! - **Preflight**: reads only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use aws_config::BehaviorVersion;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, ConditionCheck, KeySchemaElement, KeyType, Put,
    ScalarAttributeType, TableStatus, TransactWriteItem,
};
use tokio::time::Instant;

use crate::ids::ClusterName;
use crate::journal::Record;
use crate::ports::store::{Lease, Store, StoreError};
use crate::status::StatusDoc;

/// The default lease period: a dead holder's clusters are taken over this long after its last
/// heartbeat (plus one look of the waiter).
pub const LEASE_DURATION: Duration = Duration::from_secs(30);

/// How often per lease period a waiter looks at a lease it finds held by a live holder (one
/// strongly consistent `GetItem` each): the holder's last heartbeat is then seen at most a quarter
/// period after it was written, and a dead holder's lease is taken over between 1 and 1¼ lease
/// periods after its last heartbeat.
pub const LOOKS_PER_PERIOD: u32 = 4;

const LEASE: &str = "lease";
const STATUS: &str = "status";
const JOURNAL: &str = "journal#";
const FILE: &str = "file#";

/// A DynamoDB table as the state store (see the module doc).
pub struct DynamoStore {
    client: Client,
    table: String,
    holder: String,
    duration: Duration,
    /// For each cluster held by someone else: the `rvn` seen and since when (this host's clock).
    seen: Mutex<HashMap<ClusterName, (String, Instant)>>,
    takeovers: AtomicU64,
}

impl std::fmt::Debug for DynamoStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DynamoStore").field("table", &self.table).field("holder", &self.holder).finish_non_exhaustive()
    }
}

/// This process's holder identity: host, pid and a random part.
fn holder_identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = if host.trim().is_empty() { "unknown-host".to_owned() } else { host.trim().to_owned() };
    format!("{host} pid {} {:08x}", std::process::id(), rand::random::<u32>())
}

fn new_rvn() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn n(v: u64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

fn key(cluster: &ClusterName, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), s(cluster.as_str())), ("sk".to_owned(), s(sk))])
}

fn get_s<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name).and_then(|v| v.as_s().ok()).map(String::as_str)
}

fn get_n(item: &HashMap<String, AttributeValue>, name: &str) -> Option<u64> {
    item.get(name).and_then(|v| v.as_n().ok()).and_then(|v| v.parse().ok())
}

/// Whether an SDK error is a failed condition of a plain (non-transaction) write.
fn condition_failed<E: ProvideErrorMetadata, R>(e: &SdkError<E, R>) -> bool {
    e.code() == Some("ConditionalCheckFailedException")
}

impl DynamoStore {
    /// A strongly consistent `GetItem` of `key`: the item, if there is one.
    async fn get(
        &self,
        key: HashMap<String, AttributeValue>,
    ) -> Result<Option<HashMap<String, AttributeValue>>, StoreError> {
        const API: &str = "GetItem";
        let got = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|e| self.sdk_error(API, &e))?;
        Ok(got.item)
    }

    /// The store on `table`, with the AWS SDK's usual configuration (region, credentials and
    /// endpoint from the environment or profile; `AWS_ENDPOINT_URL` reaches an emulator).
    pub async fn connect(table: &str) -> DynamoStore {
        let shared = aws_config::defaults(BehaviorVersion::latest()).load().await;
        DynamoStore::from_sdk_config(&shared, table)
    }

    /// The store on `table` with a given SDK configuration.
    pub fn from_sdk_config(shared: &aws_config::SdkConfig, table: &str) -> DynamoStore {
        let conf = aws_sdk_dynamodb::config::Builder::from(shared)
            .timeout_config(crate::adapters::aws::attempt_timeouts(Duration::from_secs(10)))
            .build();
        DynamoStore {
            client: Client::from_conf(conf),
            table: table.to_owned(),
            holder: holder_identity(),
            duration: LEASE_DURATION,
            seen: Mutex::new(HashMap::new()),
            takeovers: AtomicU64::new(0),
        }
    }

    /// Leases this store takes last `duration` (tests use short ones).
    #[must_use]
    pub fn with_lease_duration(mut self, duration: Duration) -> DynamoStore {
        self.duration = duration;
        self
    }

    /// This process's holder identity.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// How many leases this store took over from another holder.
    pub fn takeovers(&self) -> u64 {
        self.takeovers.load(Ordering::Relaxed)
    }

    /// Creates the table (on-demand, the key schema of the module doc) and waits until it is
    /// active. `Ok(false)` when a table of that name with the right key schema exists already;
    /// an error when one exists with another key schema.
    pub async fn init(&self) -> Result<bool, StoreError> {
        // Not the daemon's permissions (deploy/README.md: whoever creates the table needs them).
        const INIT_API: &str = "CreateTable";
        const INIT_DESCRIBE: &str = "DescribeTable";
        let attr = |name: &str| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(ScalarAttributeType::S)
                .build()
                .map_err(|e| self.failed(INIT_API, e.to_string(), false))
        };
        let key_el = |name: &str, kind: KeyType| {
            KeySchemaElement::builder()
                .attribute_name(name)
                .key_type(kind)
                .build()
                .map_err(|e| self.failed(INIT_API, e.to_string(), false))
        };
        let created = match self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(attr("pk")?)
            .attribute_definitions(attr("sk")?)
            .key_schema(key_el("pk", KeyType::Hash)?)
            .key_schema(key_el("sk", KeyType::Range)?)
            .send()
            .await
        {
            Ok(_) => true,
            Err(e) if e.code() == Some("ResourceInUseException") => false,
            Err(e) => return Err(self.sdk_error(INIT_API, &e)),
        };
        for _ in 0..120 {
            let d = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(|e| self.sdk_error(INIT_DESCRIBE, &e))?;
            let t = d.table();
            let keys: Vec<(String, String)> = t
                .map(|t| {
                    t.key_schema()
                        .iter()
                        .map(|k| (k.attribute_name().to_owned(), k.key_type().as_str().to_owned()))
                        .collect()
                })
                .unwrap_or_default();
            if keys != [("pk".to_owned(), "HASH".to_owned()), ("sk".to_owned(), "RANGE".to_owned())] {
                return Err(self.failed(
                    INIT_DESCRIBE,
                    format!(
                        "the table exists with key schema {keys:?}, not pk (HASH) + sk (RANGE); name another table"
                    ),
                    false,
                ));
            }
            if t.and_then(|t| t.table_status()) == Some(&TableStatus::Active) {
                return Ok(created);
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Err(self.failed(INIT_DESCRIBE, "the table did not become ACTIVE within 2 minutes".into(), true))
    }

    fn name_str(&self) -> String {
        format!("dynamodb:{}", self.table)
    }

    fn failed(&self, action: &str, message: String, retryable: bool) -> StoreError {
        StoreError::Failed { store: self.name_str(), action: action.to_owned(), message, retryable }
    }

    /// A clear error for an SDK failure of `action` (the SDK already retried throttling and 5xx).
    fn sdk_error<E, R>(&self, action: &str, e: &SdkError<E, R>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
        R: std::fmt::Debug + 'static,
    {
        let message = e.message().map_or_else(|| crate::adapters::aws::error::error_chain(e), ToOwned::to_owned);
        match e.code() {
            Some("ResourceNotFoundException") => StoreError::MissingTable { table: self.table.clone() },
            Some("AccessDeniedException" | "UnrecognizedClientException" | "MissingAuthenticationTokenException") => {
                StoreError::Denied { table: self.table.clone(), action: action.to_owned(), message }
            }
            Some(
                "ProvisionedThroughputExceededException"
                | "ThrottlingException"
                | "RequestLimitExceeded"
                | "InternalServerError"
                | "ServiceUnavailable"
                | "TransactionConflictException",
            )
            // No answer: a timeout, a refused connection, no region configured.
            | None => self.failed(action, message, true),
            Some(code) => self.failed(action, format!("{code}: {message}"), false),
        }
    }

    fn busy(&self, cluster: &ClusterName, holder: &str, retry_in: Duration) -> StoreError {
        StoreError::Busy {
            cluster: cluster.clone(),
            holder: format!("{holder}, in {}", self.name_str()),
            retry_in: Some(retry_in),
        }
    }
}

#[async_trait::async_trait]
impl Store for DynamoStore {
    fn name(&self) -> String {
        self.name_str()
    }

    async fn acquire(&self, cluster: &ClusterName) -> Result<Lease, StoreError> {
        const UPDATE: &str = "UpdateItem";
        let sent = Instant::now();
        let got = self.get(key(cluster, LEASE)).await?;
        let rvn = new_rvn();
        let duration_ms = u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX);
        let Some(item) = got.as_ref() else {
            const API: &str = "PutItem";
            // Never held: create the item.
            let put = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(key(cluster, LEASE)))
                .item("holder", s(&self.holder))
                .item("rvn", s(&rvn))
                .item("epoch", n(1))
                .item("duration_ms", n(duration_ms))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            return match put {
                Ok(_) => Ok(Lease::new(cluster.clone(), self.holder.clone(), 1, rvn, Some(self.duration), sent)),
                Err(e) if condition_failed(&e) => {
                    Err(self.busy(cluster, "another mirrorctl (just took it)", self.duration))
                }
                Err(e) => Err(self.sdk_error(API, &e)),
            };
        };
        let seen_rvn = get_s(item, "rvn").unwrap_or_default().to_owned();
        let epoch = get_n(item, "epoch").unwrap_or(0);
        let holder = get_s(item, "holder").map(ToOwned::to_owned);
        let takeover = match &holder {
            None => None,
            // This very process (a release that failed): take it again under a new epoch.
            Some(h) if *h == self.holder => None,
            Some(h) => {
                let their = get_n(item, "duration_ms").map_or(LEASE_DURATION, Duration::from_millis);
                let mut seen = self.seen.lock().map_err(|_| self.failed("acquire", "poisoned".into(), false))?;
                match seen.get(cluster) {
                    Some((r, since)) if *r == seen_rvn && since.elapsed() >= their => Some(h.clone()),
                    Some((r, since)) if *r == seen_rvn => {
                        return Err(self.busy(cluster, h, their.saturating_sub(since.elapsed())));
                    }
                    _ => {
                        // A new record version: the holder was alive a moment ago. Look again
                        // soon, so that its *last* heartbeat is seen within a fraction of a
                        // period and a takeover follows one period after it (not up to two).
                        seen.insert(cluster.clone(), (seen_rvn, Instant::now()));
                        return Err(self.busy(cluster, h, their / LOOKS_PER_PERIOD));
                    }
                }
            }
        };
        let next = epoch + 1;
        let update = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(cluster, LEASE)))
            .update_expression("SET holder = :me, rvn = :new, epoch = :epoch, duration_ms = :d")
            .condition_expression("rvn = :seen")
            .expression_attribute_values(":me", s(&self.holder))
            .expression_attribute_values(":new", s(&rvn))
            .expression_attribute_values(":epoch", n(next))
            .expression_attribute_values(":d", n(duration_ms))
            .expression_attribute_values(":seen", s(&seen_rvn))
            .send()
            .await;
        match update {
            Ok(_) => {}
            Err(e) if condition_failed(&e) => {
                return Err(self.busy(cluster, "another mirrorctl (took it just now)", self.duration));
            }
            Err(e) => return Err(self.sdk_error(UPDATE, &e)),
        }
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(cluster);
        }
        let lease = Lease::new(cluster.clone(), self.holder.clone(), next, rvn, Some(self.duration), sent);
        if let Some(from) = takeover {
            self.takeovers.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(cluster = %cluster, epoch = next, from = %from, holder = %self.holder,
                "lease taken over: its holder's heartbeat did not change for a whole lease period");
            return Ok(lease.taken_over_from(from));
        }
        tracing::debug!(cluster = %cluster, epoch = next, holder = %self.holder, "lease acquired");
        Ok(lease)
    }

    async fn renew(&self, lease: &Lease) -> Result<(), StoreError> {
        const API: &str = "UpdateItem";
        let sent = Instant::now();
        let rvn = new_rvn();
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&lease.cluster, LEASE)))
            .update_expression("SET rvn = :new")
            .condition_expression("holder = :me AND epoch = :epoch")
            .expression_attribute_values(":new", s(&rvn))
            .expression_attribute_values(":me", s(&lease.holder))
            .expression_attribute_values(":epoch", n(lease.epoch))
            .send()
            .await;
        match r {
            Ok(_) => {
                lease.renewed(rvn, sent);
                Ok(())
            }
            Err(e) if condition_failed(&e) => {
                let why = "another holder took the lease (the heartbeat's condition failed)";
                lease.lose(why);
                Err(lease.lost(why))
            }
            Err(e) => Err(self.sdk_error(API, &e)),
        }
    }

    async fn release(&self, lease: &Lease) -> Result<(), StoreError> {
        const API: &str = "UpdateItem";
        let r = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&lease.cluster, LEASE)))
            .update_expression("SET rvn = :new REMOVE holder")
            .condition_expression("holder = :me AND epoch = :epoch")
            .expression_attribute_values(":new", s(new_rvn()))
            .expression_attribute_values(":me", s(&lease.holder))
            .expression_attribute_values(":epoch", n(lease.epoch))
            .send()
            .await;
        match r {
            // Not ours any more: nothing to release.
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => Ok(()),
            Err(e) => Err(self.sdk_error(API, &e)),
        }
    }

    async fn holder(&self, cluster: &ClusterName) -> Result<Option<String>, StoreError> {
        let got = self.get(key(cluster, LEASE)).await?;
        // A released lease has no holder; a holder whose heartbeat stopped still shows until a
        // waiter takes over (only waiting out a lease period tells).
        Ok(got.as_ref().and_then(|i| i.get("holder")).and_then(|v| v.as_s().ok()).cloned())
    }

    async fn read_journal(&self, cluster: &ClusterName) -> Result<Vec<Record>, StoreError> {
        const API: &str = "Query";
        let mut records = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND begins_with(sk, :journal)")
                .expression_attribute_values(":pk", s(cluster.as_str()))
                .expression_attribute_values(":journal", s(JOURNAL))
                .consistent_read(true)
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.sdk_error(API, &e))?;
            for item in page.items() {
                let sk = get_s(item, "sk").unwrap_or("?");
                let rec = get_s(item, "record")
                    .ok_or_else(|| "no `record` attribute".to_owned())
                    .and_then(|body| serde_json::from_str::<Record>(body).map_err(|e| e.to_string()));
                match rec {
                    Ok(r) => records.push(r),
                    Err(e) => {
                        return Err(self.failed(
                            API,
                            format!(
                                "item {cluster}/{sk} is not a journal record ({e}); the journal is the only memory of \
                                 half-done steps, so mirrorctl will not guess: check the cluster by hand before \
                                 deleting the item"
                            ),
                            false,
                        ));
                    }
                }
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        Ok(records)
    }

    async fn append(&self, lease: &Lease, position: u64, record: &Record) -> Result<(), StoreError> {
        // IAM authorizes a transaction per item action: here ConditionCheckItem and PutItem
        // (tests/it/deploy.rs maps the one to the other two).
        const API: &str = "TransactWriteItems";
        let body = serde_json::to_string(record).map_err(|e| self.failed(API, e.to_string(), false))?;
        let build = |e: aws_sdk_dynamodb::error::BuildError| self.failed(API, e.to_string(), false);
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .set_key(Some(key(&lease.cluster, LEASE)))
            .condition_expression("holder = :me AND epoch = :epoch")
            .expression_attribute_values(":me", s(&lease.holder))
            .expression_attribute_values(":epoch", n(lease.epoch))
            .build()
            .map_err(build)?;
        let put = Put::builder()
            .table_name(&self.table)
            .set_item(Some(key(&lease.cluster, &format!("{JOURNAL}{position:020}"))))
            .item("record", s(body))
            .item("epoch", n(lease.epoch))
            .condition_expression("attribute_not_exists(sk)")
            .build()
            .map_err(build)?;
        let r = self
            .client
            .transact_write_items()
            .transact_items(TransactWriteItem::builder().condition_check(check).build())
            .transact_items(TransactWriteItem::builder().put(put).build())
            .send()
            .await;
        let Err(e) = r else { return Ok(()) };
        if let Some(TransactWriteItemsError::TransactionCanceledException(c)) = e.as_service_error() {
            let failed: Vec<bool> =
                c.cancellation_reasons().iter().map(|r| r.code() == Some("ConditionalCheckFailed")).collect();
            if failed.first() == Some(&true) {
                return Err(lease.lost(&format!(
                    "a journal append was refused at the store: epoch {} is no longer the current holder's",
                    lease.epoch
                )));
            }
            if failed.get(1) == Some(&true) {
                return Err(self.failed(
                    API,
                    format!(
                        "journal record {position} of {} exists already (an earlier append whose answer was lost?); \
                         the pass stops and the next one reads the journal afresh",
                        lease.cluster
                    ),
                    true,
                ));
            }
        }
        Err(self.sdk_error(API, &e))
    }

    async fn write_status(&self, doc: &StatusDoc, lease: Option<&Lease>) -> Result<(), StoreError> {
        const API: &str = "UpdateItem";
        let body = serde_json::to_string(doc).map_err(|e| self.failed(API, e.to_string(), false))?;
        let mut req = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key(&doc.cluster, STATUS)))
            .expression_attribute_values(":doc", s(body));
        req = match lease {
            Some(l) => req
                .update_expression("SET doc = :doc, epoch = :epoch")
                .condition_expression("attribute_not_exists(epoch) OR epoch <= :epoch")
                .expression_attribute_values(":epoch", n(l.epoch)),
            None => req.update_expression("SET doc = :doc"),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if condition_failed(&e) => {
                let why = "a newer holder wrote the status document";
                if let Some(l) = lease {
                    l.lose(why);
                    return Err(l.lost(why));
                }
                Err(self.sdk_error(API, &e))
            }
            Err(e) => Err(self.sdk_error(API, &e)),
        }
    }

    async fn read_status(&self, cluster: &ClusterName) -> Result<Option<StatusDoc>, StoreError> {
        let got = self.get(key(cluster, STATUS)).await?;
        got.as_ref().map(|item| self.parse_status(item)).transpose()
    }

    async fn read_cluster_file(&self, cluster: &ClusterName, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        const API: &str = "GetItem";
        let got = self.get(self.file_key(cluster, name)?).await?;
        let Some(item) = got.as_ref() else { return Ok(None) };
        match item.get("body").and_then(|v| v.as_b().ok()) {
            Some(b) => Ok(Some(b.clone().into_inner())),
            None => Err(self.failed(
                API,
                format!(
                    "item {cluster}/{FILE}{name} has no binary `body`; delete the item only after checking the cluster"
                ),
                false,
            )),
        }
    }

    async fn write_cluster_file(&self, cluster: &ClusterName, name: &str, body: &[u8]) -> Result<(), StoreError> {
        const API: &str = "PutItem";
        let mut item = self.file_key(cluster, name)?;
        item.insert("body".to_owned(), AttributeValue::B(aws_sdk_dynamodb::primitives::Blob::new(body)));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| self.sdk_error(API, &e))?;
        Ok(())
    }

    async fn remove_cluster_file(&self, cluster: &ClusterName, name: &str) -> Result<(), StoreError> {
        const API: &str = "DeleteItem";
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(self.file_key(cluster, name)?))
            .send()
            .await
            .map_err(|e| self.sdk_error(API, &e))?;
        Ok(())
    }

    async fn list_status(&self) -> Result<Vec<StatusDoc>, StoreError> {
        const API: &str = "Scan";
        let mut docs = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.table)
                .filter_expression("sk = :status")
                .expression_attribute_values(":status", s(STATUS))
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| self.sdk_error(API, &e))?;
            for item in page.items() {
                docs.push(self.parse_status(item)?);
            }
            match page.last_evaluated_key() {
                Some(k) if !k.is_empty() => start = Some(k.clone()),
                _ => break,
            }
        }
        docs.sort_by(|a, b| a.cluster.as_str().cmp(b.cluster.as_str()));
        Ok(docs)
    }
}

impl DynamoStore {
    fn file_key(&self, cluster: &ClusterName, name: &str) -> Result<HashMap<String, AttributeValue>, StoreError> {
        if !crate::ports::store::valid_cluster_file(name) {
            return Err(self.failed("naming a cluster file", format!("{name:?} is not a plain file name"), false));
        }
        Ok(key(cluster, &format!("{FILE}{name}")))
    }

    fn parse_status(&self, item: &HashMap<String, AttributeValue>) -> Result<StatusDoc, StoreError> {
        let pk = get_s(item, "pk").unwrap_or("?");
        get_s(item, "doc")
            .ok_or_else(|| "no `doc` attribute".to_owned())
            .and_then(|d| serde_json::from_str(d).map_err(|e| e.to_string()))
            .map_err(|e| self.failed("GetItem", format!("the status item of {pk} is unreadable ({e})"), false))
    }
}
