//! Notifications: telling people that a backup or restore completed, failed, or needs a human.
//!
//! Why this module exists: an operator does not watch `mirrorctl status`; the tools mirrorctl is
//! compared with (AWS Backup, DLM) announce their results. A cluster's `[notify]` table names an
//! SNS topic and/or a webhook; this module turns the reconcile loop's transitions into
//! [`Notice`]s and delivers them without ever holding the loop up. Decisions written down here:
//!
//! - **What is sent.** `completed`: an operation (backup or restore) recorded its completion in the
//!   journal. `failed`: a step failed with an error only a human can resolve and the loop stopped
//!   (a fresh look after the failure still wanted the step). `needs-human`: the planner refuses to
//!   go on (a blocked condition: snapshot missing, of another cluster, not completed, …).
//! - **Never blocking.** The loop only *offers* a notice: a bounded queue ([`QUEUE`]) feeds one
//!   background task per process, which delivers each notice to each destination on its own
//!   task, retrying with exponential backoff and jitter (`backon`) while the failure is
//!   retryable. A full queue drops the notice (counted, logged); a delivery that fails for good is
//!   counted and logged; neither is ever an error of the reconcile.
//! - **Once per transition, at least once.** Each notice has a key derived from cluster,
//!   operation, event (and the condition's reason), and each destination remembers the keys it
//!   was sent in the cluster's store file `notified.json` (so a restart, or another host taking the
//!   cluster over, does not send them again). Completions are derived from the journal's
//!   completion records on every pass, not from the moment they happened: a crash between the
//!   completion and its delivery (or a notice dropped from a full queue) is sent by the next pass
//!   or process. A crash between a delivery and its record sends it again, so receivers may see a
//!   notice twice: it carries the same `id` each time for them to drop the repeat. A `failed` or
//!   `needs-human` notice is sent once per operation and reason until the cluster converges;
//!   then the same condition again is a new transition.
//! - **No history flood.** Each destination records since when it wants each event (`since`);
//!   completions older than that are never sent (turning notifications on, or adding `completed`
//!   to `events`, does not announce every past backup). Keys older than [`FORGET_AFTER`] are
//!   forgotten and `since` moves up with them, so the file stays small; a completion never
//!   delivered in that time is given up.
//!
//! The JSON body ([`Notice`]) and the webhook's signature are documented in
//! `desired-state/README.md` (section `[notify]`), with how a receiver verifies them.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable as _};
use futures::future::BoxFuture;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

mod offers;

pub(crate) use offers::{offer_completions, offer_condition};

use crate::ids::ClusterName;
use crate::plan::Reason;
use crate::ports::notify::NoticeSink;
use crate::ports::store::Store;
use crate::spec::{NoticeKind, NotifySpec, Spec};

/// How many notices may wait for the background task before new ones are dropped.
pub(crate) const QUEUE: usize = 1024;
/// The store file (per cluster) remembering what each destination was sent.
pub(crate) const RECORD_FILE: &str = "notified.json";
/// How long a sent key is remembered (and how old an undelivered completion may get).
pub(crate) const FORGET_AFTER: SignedDuration = SignedDuration::from_hours(14 * 24);
/// The version of the JSON body's shape.
pub(crate) const SCHEMA: u32 = 1;

/// One event, as sent: the JSON body of a webhook POST and of an SNS message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Version of this shape ([`SCHEMA`]).
    pub schema: u32,
    /// Delivery id: the same for every attempt and every re-send of this transition (32 hex
    /// digits derived from cluster and key), for receivers to drop repeats.
    pub id: String,
    /// `completed`, `failed` or `needs-human`.
    pub event: NoticeKind,
    /// The cluster.
    pub cluster: ClusterName,
    /// The cluster's region.
    pub region: String,
    /// The operation (`backup/<name>`, `restore/<request>`), when the event is about one.
    pub operation: Option<String>,
    /// The backup name or restore request of that operation.
    pub request: Option<String>,
    /// The cluster's phase when the event was seen (`progressing`, `converged`, `blocked`, …).
    pub phase: String,
    /// The condition's reason (`snapshot-not-completed`, …) for `failed` and `needs-human`.
    pub reason: Option<Reason>,
    /// What happened, in words.
    pub message: String,
    /// What the operator should do, for `failed` and `needs-human`.
    pub action: Option<String>,
    /// EBS volumes mirrorctl created for the operation.
    pub volumes: Vec<String>,
    /// Snapshots of the operation: the backup's, or the one a restore restores from.
    pub snapshots: Vec<String>,
    /// When the transition happened (the journal's time for a completion).
    pub at: Timestamp,
    /// When this notice was made.
    pub sent: Timestamp,
    /// The mirrorctl version that sent it.
    pub mirrorctl_version: String,
}

impl Notice {
    /// The delivery id of `key` for `cluster`.
    pub(crate) fn id_for(cluster: &ClusterName, key: &str) -> String {
        hex::encode(&Sha256::digest(format!("{cluster}\n{key}").as_bytes())[..16])
    }
}

/// The dedupe key of a transition: `completed|<op>`, `failed|<op>|<reason>`,
/// `needs-human|<op>|<reason>` (`-` when no operation is concerned).
pub fn key(kind: NoticeKind, operation: Option<&str>, reason: Option<&Reason>) -> String {
    let op = operation.unwrap_or("-");
    match reason {
        Some(r) => format!("{}|{op}|{r}", kind.as_str()),
        None => format!("{}|{op}", kind.as_str()),
    }
}

/// The signature header's value for `body` sent at Unix time `timestamp` with `secret`:
/// `sha256=` and the lowercase hex HMAC-SHA256 of `"<timestamp>.<body>"`.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    use hmac::Mac as _;
    // HMAC accepts a key of any length; `new_from_slice` cannot fail for it.
    let Ok(mut mac) = hmac::Hmac::<Sha256>::new_from_slice(secret) else {
        unreachable!("HMAC takes keys of any length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// Builds the destinations of a cluster's `[notify]` (asynchronously: credentials, endpoints).
pub type SinkFactory = Arc<dyn Fn(&Spec) -> BoxFuture<'static, Result<Vec<Arc<dyn NoticeSink>>, String>> + Send + Sync>;

/// The backoff of one delivery: first retry after `min`, doubling with jitter up to `max`, at most
/// `times` retries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetrySchedule {
    /// First delay.
    pub min: Duration,
    /// Longest delay.
    pub max: Duration,
    /// Retries after the first attempt.
    pub times: usize,
}

impl Default for RetrySchedule {
    /// 1 s, 2 s, 4 s … up to 60 s, 8 retries (about four minutes in all).
    fn default() -> Self {
        RetrySchedule { min: Duration::from_secs(1), max: Duration::from_mins(1), times: 8 }
    }
}

/// Delivery counts per destination kind and outcome (`delivered`, `failed`, `retried`,
/// `dropped`), for `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    counts: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Counters {
    /// Counts one `outcome` of a `sink` delivery.
    pub fn add(&self, sink: &'static str, outcome: &'static str) {
        *self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).entry((sink, outcome)).or_default() += 1;
    }
    /// Every count so far, by (destination kind, outcome).
    pub fn snapshot(&self) -> BTreeMap<(&'static str, &'static str), u64> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// What `notified.json` holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    /// `<destination>|<event>` → since when that destination wants that event (older completions
    /// are not sent to it).
    since: BTreeMap<String, Timestamp>,
    /// `<destination>|<key>` → the time of the transition sent.
    sent: BTreeMap<String, Timestamp>,
}

/// One cluster's destinations and bookkeeping in this process.
struct ClusterNotes {
    config: NotifySpec,
    sinks: Vec<Arc<dyn NoticeSink>>,
    store: Arc<dyn Store>,
    record: Record,
    /// `<destination>|<key>` queued or being delivered.
    pending: BTreeSet<String>,
}

/// A delivery to do.
struct Delivery {
    cluster: ClusterName,
    sent_key: String,
    at: Timestamp,
    event: NoticeKind,
    id: String,
    body: Arc<Vec<u8>>,
    sink: Arc<dyn NoticeSink>,
}

enum Job {
    Deliver(Delivery),
    /// Write the cluster's record (after forgetting re-armed keys).
    Persist(ClusterName),
}

/// What the background task shares with the handle.
struct State {
    clusters: Mutex<BTreeMap<ClusterName, ClusterNotes>>,
    counters: Arc<Counters>,
    retry: RetrySchedule,
    /// One writer of record files at a time.
    writing: tokio::sync::Mutex<()>,
}

impl State {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<ClusterName, ClusterNotes>> {
        self.clusters.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The process's notification queue: cheap to clone, one background task behind it.
#[derive(Clone)]
pub struct Notifier {
    state: Arc<State>,
    queue: Arc<Mutex<Option<mpsc::Sender<Job>>>>,
    task: Arc<Mutex<Option<JoinHandle<()>>>>,
    factory: SinkFactory,
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier").finish_non_exhaustive()
    }
}

impl Notifier {
    /// Starts the background task (on the current tokio runtime). `factory` builds each cluster's
    /// destinations from its `[notify]`.
    pub fn start(factory: SinkFactory, retry: RetrySchedule) -> Notifier {
        let (tx, rx) = mpsc::channel(QUEUE);
        let state = Arc::new(State {
            clusters: Mutex::new(BTreeMap::new()),
            counters: Arc::new(Counters::default()),
            retry,
            writing: tokio::sync::Mutex::new(()),
        });
        let task = tokio::spawn(run(Arc::clone(&state), rx));
        Notifier { state, queue: Arc::new(Mutex::new(Some(tx))), task: Arc::new(Mutex::new(Some(task))), factory }
    }

    /// The delivery counts (shared with `/metrics`).
    pub fn counters(&self) -> Arc<Counters> {
        Arc::clone(&self.state.counters)
    }

    /// Makes ready to notify for `spec`'s cluster: builds its destinations when its `[notify]`
    /// changed, and reads (or starts) its record in `store`. Called at the start of each
    /// reconcile; `now` is the world's time. Failures are logged: notifications are never fatal.
    pub(crate) async fn prime(&self, spec: &Spec, store: &Arc<dyn Store>, now: Timestamp) {
        let cluster = &spec.cluster.name;
        let Some(config) = &spec.notify else {
            self.state.lock().remove(cluster);
            return;
        };
        if self.state.lock().get(cluster).is_some_and(|n| &n.config == config) {
            return;
        }
        let sinks = match (self.factory)(spec).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(cluster = %cluster, error = %e, "cannot set up notifications; none are sent for now");
                self.state.lock().remove(cluster);
                return;
            }
        };
        let (mut record, readable) = match store.read_cluster_file(cluster, RECORD_FILE).await {
            Ok(Some(bytes)) => match serde_json::from_slice::<Record>(&bytes) {
                Ok(r) => (r, true),
                Err(e) => {
                    tracing::warn!(cluster = %cluster, error = %e, "{RECORD_FILE} is unreadable; starting a new one");
                    (Record::default(), true)
                }
            },
            Ok(None) => (Record::default(), true),
            Err(e) => {
                tracing::warn!(cluster = %cluster, error = %e, "cannot read {RECORD_FILE}; past completions are not sent");
                (Record::default(), false)
            }
        };
        let mut new_sink = false;
        for s in &sinks {
            for kind in &config.events {
                record.since.entry(format!("{}|{}", s.name(), kind.as_str())).or_insert_with(|| {
                    new_sink = true;
                    now
                });
            }
        }
        if new_sink && readable {
            // Written before any transition of this reconcile, so a crash after one finds it.
            write_record(store.as_ref(), cluster, &record).await;
        }
        let notes =
            ClusterNotes { config: config.clone(), sinks, store: Arc::clone(store), record, pending: BTreeSet::new() };
        self.state.lock().insert(cluster.clone(), notes);
    }

    /// Whether `cluster` has destinations (its `[notify]` was primed): callers skip building
    /// notices otherwise.
    pub fn serves(&self, cluster: &ClusterName) -> bool {
        self.state.lock().contains_key(cluster)
    }

    /// Whether some destination of `cluster` still wants the `kind` event with dedupe key `key`
    /// that happened at `at` (not sent, not under way, not older than its `since`): callers skip
    /// building notices nobody wants.
    pub fn due(&self, cluster: &ClusterName, kind: NoticeKind, key: &str, at: Timestamp) -> bool {
        let clusters = self.state.lock();
        let Some(notes) = clusters.get(cluster) else { return false };
        notes.config.events.contains(&kind)
            && notes.sinks.iter().any(|sink| {
                let name = sink.name();
                let sent_key = format!("{name}|{key}");
                let since = notes.record.since.get(&format!("{name}|{}", kind.as_str()));
                !notes.record.sent.contains_key(&sent_key)
                    && !notes.pending.contains(&sent_key)
                    && (kind != NoticeKind::Completed || since.is_some_and(|s| at >= *s))
            })
    }

    /// Offers `notice` (whose dedupe key is `key`, see [`key`]) for each destination of its
    /// cluster that wants its event and was not sent it yet. Never waits: a full queue drops it.
    pub(crate) fn offer(&self, key: &str, notice: &Notice) {
        let Some(tx) = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone() else {
            return;
        };
        let mut clusters = self.state.lock();
        let Some(notes) = clusters.get_mut(&notice.cluster) else { return };
        if !notes.config.events.contains(&notice.event) {
            return;
        }
        let mut body: Option<Arc<Vec<u8>>> = None;
        for sink in &notes.sinks {
            let name = sink.name();
            let sent_key = format!("{name}|{key}");
            if notes.record.sent.contains_key(&sent_key) || notes.pending.contains(&sent_key) {
                continue;
            }
            let since = notes.record.since.get(&format!("{name}|{}", notice.event.as_str()));
            if notice.event == NoticeKind::Completed && since.is_none_or(|s| notice.at < *s) {
                continue;
            }
            let body = body.get_or_insert_with(|| Arc::new(serde_json::to_vec(notice).unwrap_or_default())).clone();
            let job = Job::Deliver(Delivery {
                cluster: notice.cluster.clone(),
                sent_key: sent_key.clone(),
                at: notice.at,
                event: notice.event,
                id: notice.id.clone(),
                body,
                sink: Arc::clone(sink),
            });
            if tx.try_send(job).is_ok() {
                notes.pending.insert(sent_key);
            } else {
                self.state.counters.add(sink.kind(), "dropped");
                tracing::warn!(cluster = %notice.cluster, sink = %name, event = notice.event.as_str(),
                    "notification queue full: notice dropped (a completion is offered again by the next pass)");
            }
        }
    }

    /// The cluster converged: its `failed` and `needs-human` notices
    /// may be sent again when the same condition comes back.
    pub(crate) fn rearm(&self, cluster: &ClusterName) {
        let mut clusters = self.state.lock();
        let Some(notes) = clusters.get_mut(cluster) else { return };
        let before = notes.record.sent.len();
        notes.record.sent.retain(|k, _| {
            let key = k.split_once('|').map_or(k.as_str(), |(_, key)| key);
            key.starts_with(NoticeKind::Completed.as_str())
        });
        if notes.record.sent.len() != before
            && let Some(tx) = self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_ref()
        {
            let _ = tx.try_send(Job::Persist(cluster.clone()));
        }
    }

    /// Stops taking notices and waits up to `grace` for the deliveries under way (with their
    /// retries). Returns `false` when some were cut off: completions among them are sent by the
    /// next run.
    pub async fn close(&self, grace: Duration) -> bool {
        drop(self.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take());
        let task = self.task.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let Some(mut task) = task else { return true };
        if tokio::time::timeout(grace, &mut task).await.is_ok() {
            true
        } else {
            task.abort();
            tracing::warn!(grace_s = grace.as_secs(), "notifications still undelivered at exit");
            false
        }
    }
}

/// The background task: one delivery task per notice and destination.
async fn run(state: Arc<State>, mut rx: mpsc::Receiver<Job>) {
    let mut deliveries = tokio::task::JoinSet::new();
    while let Some(job) = rx.recv().await {
        match job {
            Job::Deliver(d) => {
                deliveries.spawn(deliver(Arc::clone(&state), d));
            }
            Job::Persist(cluster) => persist(&state, &cluster).await,
        }
        while deliveries.try_join_next().is_some() {}
    }
    while deliveries.join_next().await.is_some() {}
}

async fn deliver(state: Arc<State>, d: Delivery) {
    let kind = d.sink.kind();
    let backoff = ExponentialBuilder::default()
        .with_min_delay(state.retry.min)
        .with_max_delay(state.retry.max)
        .with_max_times(state.retry.times)
        .with_jitter();
    let result = (|| d.sink.deliver(d.event.as_str(), &d.id, &d.body))
        .retry(backoff)
        .when(|e| e.retryable)
        .notify(|e, after| {
            state.counters.add(kind, "retried");
            tracing::warn!(cluster = %d.cluster, sink = %d.sink.name(), error = %e, retry_in = ?after, "notification not delivered yet");
        })
        .await;
    match result {
        Ok(()) => {
            state.counters.add(kind, "delivered");
            tracing::info!(cluster = %d.cluster, sink = %d.sink.name(), event = d.event.as_str(), id = %d.id, "notification delivered");
            if let Some(notes) = state.lock().get_mut(&d.cluster) {
                notes.pending.remove(&d.sent_key);
                notes.record.sent.insert(d.sent_key.clone(), d.at);
            }
            persist(&state, &d.cluster).await;
        }
        Err(e) => {
            state.counters.add(kind, "failed");
            tracing::error!(cluster = %d.cluster, sink = %d.sink.name(), event = d.event.as_str(), error = %e,
                "notification not delivered; giving up on it for now");
            if let Some(notes) = state.lock().get_mut(&d.cluster) {
                notes.pending.remove(&d.sent_key);
            }
        }
    }
}

/// Writes the cluster's record after forgetting keys older than [`FORGET_AFTER`].
async fn persist(state: &State, cluster: &ClusterName) {
    let _one = state.writing.lock().await;
    let (store, record) = {
        let mut clusters = state.lock();
        let Some(notes) = clusters.get_mut(cluster) else { return };
        let newest = notes.record.sent.values().chain(notes.record.since.values()).max().copied();
        if let Some(cutoff) = newest.and_then(|n| n.checked_sub(FORGET_AFTER).ok()) {
            notes.record.sent.retain(|_, at| *at >= cutoff);
            for since in notes.record.since.values_mut() {
                *since = (*since).max(cutoff);
            }
        }
        (Arc::clone(&notes.store), notes.record.clone())
    };
    write_record(store.as_ref(), cluster, &record).await;
}

async fn write_record(store: &dyn Store, cluster: &ClusterName, record: &Record) {
    let body = serde_json::to_vec_pretty(record).unwrap_or_default();
    if let Err(e) = store.write_cluster_file(cluster, RECORD_FILE, &body).await {
        tracing::warn!(cluster = %cluster, error = %e, "cannot record sent notifications; they may be sent again");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_hmac_sha256_of_timestamp_dot_body() {
        use hmac::Mac as _;
        // The signed message is "<timestamp>.<body>".
        let body = b"{\"a\":1}";
        let got = signature(b"Jefe", 1_700_000_000, body);
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1700000000.{\"a\":1}");
        assert_eq!(got, format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
        // RFC 4231 test case 2 itself, through the same HMAC.
        let mut mac = hmac::Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn keys_and_ids_are_stable_and_distinct() {
        let c = ClusterName::parse("prod-db").unwrap();
        let k1 = key(NoticeKind::Completed, Some("backup/b1"), None);
        let k2 = key(NoticeKind::NeedsHuman, Some("backup/b1"), Some(&Reason::SnapshotNotCompleted));
        assert_eq!(k1, "completed|backup/b1");
        assert_eq!(k2, "needs-human|backup/b1|snapshot-not-completed");
        assert_eq!(Notice::id_for(&c, &k1), Notice::id_for(&c, &k1));
        assert_ne!(Notice::id_for(&c, &k1), Notice::id_for(&c, &k2));
        assert_eq!(Notice::id_for(&c, &k1).len(), 32);
    }
}
