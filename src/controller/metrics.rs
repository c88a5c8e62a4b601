//! The daemon's counters and gauges, rendered in the Prometheus text format, and its readiness.
//!
//! Why hand-written: a dozen series do not justify a metrics framework; a mutex around a few maps
//! is enough at one update per action. Series:
//! - `mirrorctl_reconcile_passes_total{cluster,outcome}` (converged, blocked, stopped, error)
//! - `mirrorctl_steps_total{api,outcome}` (started, ok, failed)
//! - `mirrorctl_cluster_phase{cluster,phase}` (1 for the current phase, 0 for the others)
//! - `mirrorctl_last_pass_timestamp_seconds{cluster}` (wall clock, Unix seconds)
//! - `mirrorctl_desired_state_valid{cluster}` (0 while the newest file version is invalid)
//! - `mirrorctl_ready` (1 once every cluster of the first scan had a first pass end)
//! - `mirrorctl_resync_interval_seconds` (the periodic resync's interval, once stretched to fit
//!   its Describe budget)
//! - `mirrorctl_lease_held{cluster}` (1 while this daemon holds the cluster's lease) and
//!   `mirrorctl_leases_held` (how many it holds)
//! - `mirrorctl_lease_takeovers_total{cluster}` (leases this daemon took over from a holder whose
//!   heartbeat had stopped)
//! - `mirrorctl_notifications_total{sink,outcome}` (notices `delivered`, `failed` for good,
//!   `retried`, `dropped` from a full queue; sink `sns` or `webhook`)

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};

use crate::execute::{Event, EventKind};

/// The phases a cluster can be shown in: the status document's, plus `stopped` (file removed).
const PHASES: [&str; 6] = ["converged", "progressing", "waiting", "blocked", "error", "stopped"];

/// Metrics and readiness of one daemon.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    passes: BTreeMap<(String, &'static str), u64>,
    steps: BTreeMap<(&'static str, &'static str), u64>,
    /// Step id → API of the steps in flight (the done/failed events do not repeat the API).
    in_flight: BTreeMap<(String, String), &'static str>,
    phase: BTreeMap<String, &'static str>,
    /// Clusters whose file was removed: their phase stays "stopped" whatever progress events of
    /// their last pass arrive after the removal (events come through a channel, the removal does
    /// not), until a worker starts for them again.
    removed: BTreeSet<String>,
    last_pass: BTreeMap<String, f64>,
    valid: BTreeMap<String, bool>,
    expected: Option<BTreeSet<String>>,
    checked_in: BTreeSet<String>,
    resync_s: Option<f64>,
    lease_held: BTreeMap<String, bool>,
    takeovers: BTreeMap<String, u64>,
    notifications: Option<std::sync::Arc<crate::notify::Counters>>,
}

impl Metrics {
    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Shows the notifier's delivery counts.
    pub fn notifications(&self, counters: std::sync::Arc<crate::notify::Counters>) {
        self.lock().notifications = Some(counters);
    }

    /// Records the periodic resync's current interval.
    pub(crate) fn resync_interval(&self, every: std::time::Duration) {
        self.lock().resync_s = Some(every.as_secs_f64());
    }

    /// Counts a progress event.
    pub(crate) fn on_event(&self, e: &Event) {
        let mut m = self.lock();
        let cluster = e.cluster.to_string();
        if m.removed.contains(&cluster) {
            // A late event of the pass the removal stopped: the counters count it, the phase stays.
            if let EventKind::StepDone { step, .. } | EventKind::StepFailed { step, .. } = &e.kind
                && let Some(api) = m.in_flight.remove(&(cluster, step.0.clone()))
            {
                let outcome = if matches!(e.kind, EventKind::StepDone { .. }) { "ok" } else { "failed" };
                *m.steps.entry((api, outcome)).or_default() += 1;
            } else if let EventKind::StepStarted { api, .. } = &e.kind {
                *m.steps.entry((api, "started")).or_default() += 1;
            }
            return;
        }
        match &e.kind {
            EventKind::StepStarted { step, api, .. } => {
                *m.steps.entry((api, "started")).or_default() += 1;
                m.in_flight.insert((cluster.clone(), step.0.clone()), api);
                m.phase.insert(cluster, "progressing");
            }
            EventKind::StepDone { step, .. } | EventKind::StepFailed { step, .. } => {
                let outcome = if matches!(e.kind, EventKind::StepDone { .. }) { "ok" } else { "failed" };
                if let Some(api) = m.in_flight.remove(&(cluster, step.0.clone())) {
                    *m.steps.entry((api, outcome)).or_default() += 1;
                }
            }
            EventKind::Waiting { .. } => {
                m.phase.insert(cluster, "waiting");
            }
            EventKind::Blocked(_) => {
                m.phase.insert(cluster, "blocked");
            }
            EventKind::Converged { .. } => {
                m.phase.insert(cluster, "converged");
            }
            EventKind::Lease { held, taken_over_from, .. } => {
                if *held && taken_over_from.is_some() {
                    *m.takeovers.entry(cluster.clone()).or_default() += 1;
                }
                m.lease_held.insert(cluster, *held);
            }
            EventKind::Retrying { .. } | EventKind::Completed { .. } | EventKind::Waited { .. } => {}
        }
    }

    /// Counts the end of a pass of `cluster` with `outcome`.
    pub(crate) fn pass_ended(&self, cluster: &str, outcome: &'static str) {
        let mut m = self.lock();
        *m.passes.entry((cluster.to_owned(), outcome)).or_default() += 1;
        if outcome == "error" {
            m.phase.insert(cluster.to_owned(), "error");
        }
        let now = jiff::Timestamp::now().as_millisecond();
        #[allow(clippy::cast_precision_loss)] // milliseconds since 1970 fit a double exactly
        m.last_pass.insert(cluster.to_owned(), now as f64 / 1000.0);
    }

    /// Records whether the newest version of `cluster`'s file is valid.
    pub(crate) fn spec_valid(&self, cluster: &str, valid: bool) {
        self.lock().valid.insert(cluster.to_owned(), valid);
    }

    /// `cluster`'s file was removed.
    pub fn removed(&self, cluster: &str) {
        let mut m = self.lock();
        m.phase.insert(cluster.to_owned(), "stopped");
        m.valid.remove(cluster);
        m.removed.insert(cluster.to_owned());
    }

    /// A worker starts for `cluster` (its file is back, or seen for the first time).
    pub(crate) fn worker_started(&self, cluster: &str) {
        self.lock().removed.remove(cluster);
    }

    /// The first scan found these clusters: ready once each has checked in.
    pub(crate) fn expect_ready(&self, clusters: impl IntoIterator<Item = String>) {
        self.lock().expected = Some(clusters.into_iter().collect());
    }

    /// `cluster` had its first pass end (or its state written).
    pub(crate) fn check_in(&self, cluster: &str) {
        self.lock().checked_in.insert(cluster.to_owned());
    }

    /// Whether the daemon is ready.
    pub fn ready(&self) -> bool {
        let m = self.lock();
        m.expected.as_ref().is_some_and(|e| e.is_subset(&m.checked_in))
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let ready = self.ready();
        let m = self.lock();
        let mut s = String::new();
        let _ = writeln!(s, "# HELP mirrorctl_reconcile_passes_total Reconcile passes by cluster and outcome.");
        let _ = writeln!(s, "# TYPE mirrorctl_reconcile_passes_total counter");
        for ((cluster, outcome), n) in &m.passes {
            let _ = writeln!(
                s,
                "mirrorctl_reconcile_passes_total{{cluster=\"{}\",outcome=\"{outcome}\"}} {n}",
                escape(cluster)
            );
        }
        let _ = writeln!(s, "# HELP mirrorctl_steps_total Steps by API and outcome (started, ok, failed).");
        let _ = writeln!(s, "# TYPE mirrorctl_steps_total counter");
        for ((api, outcome), n) in &m.steps {
            let _ = writeln!(s, "mirrorctl_steps_total{{api=\"{api}\",outcome=\"{outcome}\"}} {n}");
        }
        let _ = writeln!(s, "# HELP mirrorctl_cluster_phase The cluster's current phase (1) among all phases.");
        let _ = writeln!(s, "# TYPE mirrorctl_cluster_phase gauge");
        for (cluster, phase) in &m.phase {
            for p in PHASES {
                let v = u8::from(p == *phase);
                let _ = writeln!(s, "mirrorctl_cluster_phase{{cluster=\"{}\",phase=\"{p}\"}} {v}", escape(cluster));
            }
        }
        let _ = writeln!(s, "# HELP mirrorctl_last_pass_timestamp_seconds When the cluster's last pass ended.");
        let _ = writeln!(s, "# TYPE mirrorctl_last_pass_timestamp_seconds gauge");
        for (cluster, t) in &m.last_pass {
            let _ = writeln!(s, "mirrorctl_last_pass_timestamp_seconds{{cluster=\"{}\"}} {t:.3}", escape(cluster));
        }
        let _ = writeln!(s, "# HELP mirrorctl_desired_state_valid Whether the newest desired-state file is valid.");
        let _ = writeln!(s, "# TYPE mirrorctl_desired_state_valid gauge");
        for (cluster, v) in &m.valid {
            let _ = writeln!(s, "mirrorctl_desired_state_valid{{cluster=\"{}\"}} {}", escape(cluster), u8::from(*v));
        }
        let _ = writeln!(s, "# HELP mirrorctl_ready Whether every cluster of the first scan had a first pass.");
        let _ = writeln!(s, "# TYPE mirrorctl_ready gauge");
        let _ = writeln!(s, "mirrorctl_ready {}", u8::from(ready));
        let _ = writeln!(s, "# HELP mirrorctl_lease_held Whether this daemon holds the cluster's lease.");
        let _ = writeln!(s, "# TYPE mirrorctl_lease_held gauge");
        for (cluster, held) in &m.lease_held {
            let _ = writeln!(s, "mirrorctl_lease_held{{cluster=\"{}\"}} {}", escape(cluster), u8::from(*held));
        }
        let _ = writeln!(s, "# HELP mirrorctl_leases_held How many clusters' leases this daemon holds.");
        let _ = writeln!(s, "# TYPE mirrorctl_leases_held gauge");
        let _ = writeln!(s, "mirrorctl_leases_held {}", m.lease_held.values().filter(|h| **h).count());
        let _ = writeln!(
            s,
            "# HELP mirrorctl_lease_takeovers_total Leases taken over from a holder whose heartbeat stopped."
        );
        let _ = writeln!(s, "# TYPE mirrorctl_lease_takeovers_total counter");
        for (cluster, n) in &m.takeovers {
            let _ = writeln!(s, "mirrorctl_lease_takeovers_total{{cluster=\"{}\"}} {n}", escape(cluster));
        }
        if let Some(every) = m.resync_s {
            let _ = writeln!(
                s,
                "# HELP mirrorctl_resync_interval_seconds The periodic resync's interval (stretched to fit its Describe budget)."
            );
            let _ = writeln!(s, "# TYPE mirrorctl_resync_interval_seconds gauge");
            let _ = writeln!(s, "mirrorctl_resync_interval_seconds {every:.0}");
        }
        if let Some(counters) = &m.notifications {
            let _ = writeln!(s, "# HELP mirrorctl_notifications_total Notices by destination kind and outcome.");
            let _ = writeln!(s, "# TYPE mirrorctl_notifications_total counter");
            for ((sink, outcome), n) in counters.snapshot() {
                let _ = writeln!(s, "mirrorctl_notifications_total{{sink=\"{sink}\",outcome=\"{outcome}\"}} {n}");
            }
        }
        s
    }
}

/// Escapes a label value (backslash, quote, newline).
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::ClusterName;
    use crate::plan::StepId;

    fn event(kind: EventKind) -> Event {
        Event { at: jiff::Timestamp::UNIX_EPOCH, cluster: ClusterName::parse("c1").unwrap(), kind }
    }

    #[test]
    fn steps_are_counted_by_api_and_outcome_and_phase_follows_events() {
        let m = Metrics::default();
        let step = StepId("backup/b1/snapshot@server2".into());
        m.on_event(&event(EventKind::StepStarted { step: step.clone(), what: "x".into(), api: "ec2:CreateSnapshot" }));
        m.on_event(&event(EventKind::StepDone { step, detail: None, elapsed: jiff::SignedDuration::ZERO }));
        m.on_event(&event(EventKind::Converged { transition: true }));
        m.pass_ended("c1", "converged");
        let text = m.render();
        assert!(text.contains("mirrorctl_steps_total{api=\"ec2:CreateSnapshot\",outcome=\"ok\"} 1"), "{text}");
        assert!(text.contains("mirrorctl_cluster_phase{cluster=\"c1\",phase=\"converged\"} 1"), "{text}");
        assert!(text.contains("mirrorctl_reconcile_passes_total{cluster=\"c1\",outcome=\"converged\"} 1"), "{text}");
    }

    /// Progress events reach the metrics through a channel, the removal of a file directly: an
    /// event of the stopped pass that arrives late must not undo "stopped" (it left the daemon's
    /// `/metrics` saying `waiting` for a cluster it no longer reconciles).
    #[test]
    fn a_late_event_does_not_undo_a_removal_until_a_worker_starts_again() {
        let m = Metrics::default();
        let stopped = "mirrorctl_cluster_phase{cluster=\"c1\",phase=\"stopped\"} 1";
        m.removed("c1");
        m.on_event(&event(EventKind::Waiting { reason: "late".into(), expect: std::time::Duration::from_secs(3) }));
        assert!(m.render().contains(stopped), "{}", m.render());
        m.worker_started("c1");
        m.on_event(&event(EventKind::Converged { transition: true }));
        assert!(m.render().contains("mirrorctl_cluster_phase{cluster=\"c1\",phase=\"converged\"} 1"), "{}", m.render());
    }

    #[test]
    fn leases_held_and_takeovers_are_shown() {
        let m = Metrics::default();
        let lease =
            |held, from: Option<&str>| EventKind::Lease { held, epoch: 4, taken_over_from: from.map(Into::into) };
        m.on_event(&event(lease(true, Some("host-a pid 7 0badcafe"))));
        let text = m.render();
        assert!(text.contains("mirrorctl_lease_held{cluster=\"c1\"} 1"), "{text}");
        assert!(text.contains("mirrorctl_leases_held 1"), "{text}");
        assert!(text.contains("mirrorctl_lease_takeovers_total{cluster=\"c1\"} 1"), "{text}");
        m.on_event(&event(lease(false, Some("host-a pid 7 0badcafe"))));
        m.on_event(&event(lease(true, None)));
        m.on_event(&event(lease(false, None)));
        let text = m.render();
        assert!(text.contains("mirrorctl_leases_held 0"), "{text}");
        assert!(text.contains("mirrorctl_lease_takeovers_total{cluster=\"c1\"} 1"), "one takeover: {text}");
    }

    #[test]
    fn notification_counts_are_shown_once_attached() {
        let m = Metrics::default();
        assert!(!m.render().contains("mirrorctl_notifications_total"));
        let counters = std::sync::Arc::new(crate::notify::Counters::default());
        m.notifications(std::sync::Arc::clone(&counters));
        counters.add("webhook", "delivered");
        counters.add("webhook", "delivered");
        counters.add("sns", "failed");
        let text = m.render();
        assert!(text.contains("mirrorctl_notifications_total{sink=\"webhook\",outcome=\"delivered\"} 2"), "{text}");
        assert!(text.contains("mirrorctl_notifications_total{sink=\"sns\",outcome=\"failed\"} 1"), "{text}");
    }

    #[test]
    fn ready_only_after_every_first_cluster_checked_in() {
        let m = Metrics::default();
        assert!(!m.ready());
        m.expect_ready(["a".to_owned(), "b".to_owned()]);
        m.check_in("a");
        assert!(!m.ready());
        m.check_in("b");
        assert!(m.ready());
    }
}
