//! `mirrorctl bench`, scale part: N clusters restored at once in **one** AWS account.
//!
//! EC2 throttles per account and region, so N clusters restored together compete for one pair of
//! token buckets (DOMAIN.md: Describe* bucket 100 refilled 20/s; mutating calls refilled 5/s —
//! [`ThrottleBudgets::default`], with a mutating burst of 50). The run:
//!
//! 1. prepares one jitter-free world of the runbook's cluster as the single-cluster figures do
//!    (backup `b1` by mirrorctl, ten minutes of business, the accident), then forks it N times
//!    into one [`AccountThrottle`] ([`SimWorld::fork_in`]): N clusters in the same state, each
//!    with its own CLUSTERPRO and servers, all drawing EC2 calls from the same account buckets;
//! 2. starts N [`reconcile`] loops at the same model instant — the per-cluster loop the daemon's
//!    workers run — each with its own state directory (journal, status), and all EC2 ports behind
//!    one client-side [`RequestLimiter`] ([`LimitedCloud`]), as a daemon shares one across its
//!    clusters. The limiter is set for mirrorctl alone in the account: the account's refill rates,
//!    its burst less one token ([`alone_in`]; `daemon` default budgets keep to half the rates,
//!    leaving room for other tools; the bench asks how close to the account's own bound mirrorctl
//!    can get);
//! 3. waits until every loop converged and checks each world's data oracle (both sides identical,
//!    the accident gone, no corruption).
//!
//! Figures, from the run's own counts:
//!
//! - **total** = model time from the common start to the last cluster's `Converged`.
//! - **throttle-bound minimum** `= max(P, (D − Cd) / rd, (M − Cm) / rm + T, E + (S − Cm) / rm + T)`,
//!   where `D` and `M` are the Describe and mutating calls the account *accepted* during the run
//!   (the calls the restores actually needed; refused ones are not counted), `S` the accepted
//!   `DetachVolume` and `AttachVolume` calls among them, `Cd`, `Cm` the buckets' capacities (full
//!   at the start), `rd`, `rm` their refill rates, `P` the latency model's critical path of one
//!   restore ([`super::restore_critical_path_s`]), `T` the part of it after the attach, a
//!   restore's last mutating call ([`super::restore_tail_after_attach_s`]), and `E` the part before
//!   EC2 accepts its first detach ([`super::restore_first_detach_s`]). No schedule can do better:
//!   one restore cannot beat `P`; a bucket that starts full cannot accept `n` calls before
//!   `(n − C) / r`; the restore whose mutating call the account accepts last still needs at least
//!   `T` after it (`T` follows its last mutating call, so it follows every one of them); and no
//!   restore's detach or attach can be accepted before `E` (its group stop, md removal and disk
//!   offline come first, and draw on no bucket), the bucket holds at most `Cm` tokens then, so the
//!   last of the `S` is accepted at `E + (S − Cm) / rm` at the soonest, and it is an attach (or a
//!   detach whose attach comes later still), after which its restore needs `T`. The last term
//!   binds for storms of a few dozen clusters, whose swaps come in one burst after their clusters
//!   are prepared. Figure: total ÷ that minimum, target ≤ 1.05.
//! - **throttled share** = calls answered `RequestLimitExceeded` ÷ all EC2 calls the account
//!   received, target < 1 %.
//! - **median restore** (and first, p90, last): each cluster's time from the common start to its
//!   own `Converged`, how long its business waited. Every storm of more than one cluster runs a
//!   second time with the limiter in arrival order ([`RequestLimiter::in_arrival_order`]), so the
//!   order mirrorctl uses (most urgent first, [`crate::ports::limit`]) is compared with first
//!   come, first served in one run.
//!
//! With one cluster the buckets never bind (a restore needs fewer calls than a burst), so the
//! ratio is the single restore's own distance from its critical path plus its first look (the
//! single-restore figure counts from the preflight, this one from the common start).

use std::path::Path;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{
    Prepared, fresh_dir, prepare, restore_critical_path_s, restore_first_detach_s, restore_spec,
    restore_tail_after_attach_s, table_head, table_row,
};
use crate::harness::HarnessError;
use crate::journal::writer::Journal;
use crate::ports::limit::{Budget, Budgets, LimitedCloud, RequestLimiter};
use crate::reconcile::{Context, Settled, reconcile};
use crate::sim::{AccountThrottle, LatencyModel, SimWorld, ThrottleBudgets, ThrottleTally};

/// Cluster counts of a full run.
pub(super) const FULL_SIZES: [usize; 5] = [1, 5, 20, 100, 1000];
/// Cluster counts of `--quick` (CI).
pub(super) const QUICK_SIZES: [usize; 3] = [1, 5, 20];
/// Target of total ÷ throttle-bound minimum.
const RATIO_TARGET: f64 = 1.05;
/// Target of the throttled share, in percent.
const THROTTLED_TARGET_PCT: f64 = 1.0;

/// How the shared limiter orders waiting calls (see [`crate::ports::limit`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Order {
    /// Most urgent first (opening calls, then the oldest operation): what mirrorctl does.
    Urgency,
    /// First come, first served: the comparison.
    Arrival,
}

/// What one scale run measured.
#[derive(Debug, Clone)]
pub(super) struct ScaleSample {
    clusters: usize,
    order: Order,
    total_s: f64,
    critical_path_s: f64,
    /// What a restore still needs after its last mutating call.
    tail_s: f64,
    /// The least time from a restore's start to EC2 accepting its first detach.
    first_detach_s: f64,
    /// `DetachVolume` and `AttachVolume` calls the account accepted during the run.
    swaps_ok: u64,
    /// Each cluster's time from the common start to its `Converged`, sorted.
    done_s: Vec<f64>,
    account: ThrottleBudgets,
    tally: ThrottleTally,
}

impl ScaleSample {
    /// `(D − Cd) / rd`: the least time the Describe bucket needs to accept the run's Describes.
    #[allow(clippy::cast_precision_loss)] // call counts stay far below 2^52
    fn describe_bound_s(&self) -> f64 {
        let a = &self.account;
        ((self.tally.describe_ok as f64 - a.describe_capacity) / a.describe_refill_per_s).max(0.0)
    }
    /// `(M − Cm) / rm + T`: the least time for the mutating bucket to accept the run's mutating
    /// calls, plus what the restore whose call came last still needs after it.
    #[allow(clippy::cast_precision_loss)]
    fn mutate_bound_s(&self) -> f64 {
        let a = &self.account;
        ((self.tally.mutate_ok as f64 - a.mutate_capacity) / a.mutate_refill_per_s).max(0.0) + self.tail_s
    }
    /// `E + (S − Cm) / rm + T`: the soonest the mutating bucket, holding at most its capacity when
    /// the first detach can come, accepts the run's detaches and attaches, plus the tail after the
    /// last of them.
    #[allow(clippy::cast_precision_loss)]
    fn swap_bound_s(&self) -> f64 {
        let a = &self.account;
        self.first_detach_s
            + ((self.swaps_ok as f64 - a.mutate_capacity) / a.mutate_refill_per_s).max(0.0)
            + self.tail_s
    }
    /// The throttle-bound minimum and which term sets it.
    fn bound(&self) -> (f64, &'static str) {
        let terms = [
            (self.critical_path_s, "critical path"),
            (self.describe_bound_s(), "Describe"),
            (self.mutate_bound_s(), "mutating bucket + tail"),
            (self.swap_bound_s(), "detach/attach burst + tail"),
        ];
        terms.into_iter().fold((0.0, "critical path"), |best, t| if t.0 > best.0 { t } else { best })
    }
    fn ratio(&self) -> f64 {
        self.total_s / self.bound().0
    }
    #[allow(clippy::cast_precision_loss)]
    fn throttled_pct(&self) -> f64 {
        let total = self.tally.total();
        if total == 0 { 0.0 } else { 100.0 * self.tally.throttled() as f64 / total as f64 }
    }
    /// The cluster at quantile `q` (0–1) of the convergence times, nearest rank.
    #[allow(clippy::cast_precision_loss)]
    fn done_at(&self, q: f64) -> f64 {
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0 <= q <= 1
        let i = ((self.done_s.len().saturating_sub(1)) as f64 * q).round() as usize;
        self.done_s.get(i).copied().unwrap_or(0.0)
    }
}

/// Tokens of each account bucket the limiter leaves unspent when mirrorctl is alone in the
/// account: one, so that a rounding error between the limiter's clock (tokio) and the account's
/// (model time) can never make the account one token short of a call the limiter let go.
const ALONE_MARGIN: f64 = 1.0;

/// mirrorctl's client-side budgets when it is alone in `account`: the account's refill rates and
/// its whole burst but [`ALONE_MARGIN`].
///
/// Why the whole burst is safe: every call leaves the limiter and reaches the account after the
/// same round trip (the bench's latency model has no jitter), so the account sees the limiter's
/// schedule shifted in time. Both buckets start full and refill at the same rate, so the account
/// always holds at least the limiter's tokens plus the margin. Half the burst, as before, left 20
/// clusters at 1.42 × their bound: their first creates queued for tokens the account had.
fn alone_in(account: &ThrottleBudgets) -> Result<Budgets, HarnessError> {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // clamped to 1..=u32::MAX first
    let spendable = |capacity: f64| (capacity - ALONE_MARGIN).floor().clamp(1.0, f64::from(u32::MAX)) as u32;
    let bad = |e: String| HarnessError::Failed(format!("the simulated account's budgets: {e}"));
    Ok(Budgets {
        describe: Budget::try_new(spendable(account.describe_capacity), account.describe_refill_per_s).map_err(bad)?,
        mutate: Budget::try_new(spendable(account.mutate_capacity), account.mutate_refill_per_s).map_err(bad)?,
    })
}

/// The `DetachVolume` and `AttachVolume` calls a world's account accepted between two call counts
/// (the world counts every call, and the refused ones again as `throttled:<call>`).
fn accepted_swaps(
    before: &std::collections::BTreeMap<String, u64>,
    after: &std::collections::BTreeMap<String, u64>,
) -> u64 {
    let delta = |k: &str| after.get(k).copied().unwrap_or(0).saturating_sub(before.get(k).copied().unwrap_or(0));
    ["ec2:DetachVolume", "ec2:AttachVolume"]
        .iter()
        .map(|call| delta(call).saturating_sub(delta(&format!("throttled:{call}"))))
        .sum()
}

/// Whether `world`'s restore left both sides identical, without the accident, uncorrupted.
fn restored(world: &SimWorld) -> bool {
    let report = world.oracle_report();
    let sides: Vec<_> = report.servers.values().copied().collect();
    sides.len() == 2
        && sides[0].is_some()
        && sides[0] == sides[1]
        && sides.iter().flatten().all(|c| !world.contains_accident(*c))
        && report.corruptions.is_empty()
}

/// Restores `clusters` clusters at once in one simulated account (see the module doc).
pub(super) async fn measure(
    base: &Path,
    clusters: usize,
    seed: u64,
    order: Order,
) -> Result<ScaleSample, HarnessError> {
    let exact = LatencyModel::default().without_jitter();
    let p: Prepared = prepare(base, &format!("scale-{clusters}-prep"), seed, exact.clone()).await?;
    let spec = restore_spec(&p)?;
    let account_budgets = p.world.scenario().throttle;
    let account = Arc::new(AccountThrottle::new(account_budgets.clone(), p.world.now()));
    let budgets = alone_in(&account_budgets)?;
    let limiter = Arc::new(match order {
        Order::Urgency => RequestLimiter::new(budgets),
        Order::Arrival => RequestLimiter::in_arrival_order(budgets),
    });
    let backup_journal = Journal::path_for(&p.dir, &spec.cluster.name);
    let calls_before = p.world.call_counts();
    let root = fresh_dir(base, &format!("scale-{clusters}"))?;
    let start = p.world.now();
    let mut loops = JoinSet::new();
    for i in 0..clusters {
        // Each cluster starts from the prepared one's journal (its backup) in a directory of its own.
        let dir = root.join(format!("c{i:04}"));
        let journal = Journal::path_for(&dir, &spec.cluster.name);
        if let Some(parent) = journal.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| HarnessError::Failed(format!("creating {}: {e}", parent.display())))?;
        }
        std::fs::copy(&backup_journal, &journal).map_err(|e| {
            HarnessError::Failed(format!("copying {} to {}: {e}", backup_journal.display(), journal.display()))
        })?;
        let world = p.world.fork_in(Arc::clone(&account));
        let mut ports = world.ports();
        ports.cloud = Arc::new(LimitedCloud::new(ports.cloud, Arc::clone(&limiter)));
        let ctx = Context::new(ports, dir);
        let spec = spec.clone();
        loops.spawn(async move {
            let settled = reconcile(&spec, &ctx).await;
            (settled, ctx.ports.clock.now(), world)
        });
    }
    let mut end = start;
    let mut done_s = Vec::with_capacity(clusters);
    let mut swaps_ok = 0;
    while let Some(joined) = loops.join_next().await {
        let (settled, at, world) = joined.map_err(|e| HarnessError::caused("a restore task failed", e))?;
        match settled {
            Ok(Settled::Converged) => {}
            Ok(other) => {
                return Err(HarnessError::Failed(format!("a restore of {clusters} did not converge: {other:?}")));
            }
            Err(e) => return Err(HarnessError::caused(format!("a restore of {clusters}"), e)),
        }
        if !restored(&world) {
            return Err(HarnessError::Failed(format!("a restore of {clusters} converged but its data is wrong")));
        }
        end = end.max(at);
        done_s.push(at.duration_since(start).as_secs_f64());
        swaps_ok += accepted_swaps(&calls_before, &world.call_counts());
    }
    done_s.sort_by(f64::total_cmp);
    let _ = std::fs::remove_dir_all(&root);
    let _ = std::fs::remove_dir_all(&p.dir);
    Ok(ScaleSample {
        clusters,
        order,
        total_s: end.duration_since(start).as_secs_f64(),
        critical_path_s: restore_critical_path_s(&exact),
        tail_s: restore_tail_after_attach_s(&exact),
        first_detach_s: restore_first_detach_s(&exact),
        swaps_ok,
        done_s,
        account: account_budgets,
        tally: account.tally(),
    })
}

/// The scale table.
#[allow(clippy::cast_precision_loss)] // call counts stay far below 2^52
pub(super) fn render(samples: &[ScaleSample]) -> String {
    let mut out = String::new();
    let Some(first) = samples.first() else {
        return out;
    };
    let a = &first.account;
    table_head(
        &mut out,
        &format!(
            "clusters restored at once in one account (buckets: Describe {} refill {}/s, mutating {} refill {}/s; \
             mirrorctl's limiter: the refill rates, the burst less one token)",
            a.describe_capacity, a.describe_refill_per_s, a.mutate_capacity, a.mutate_refill_per_s
        ),
    );
    for s in samples {
        let (bound, by) = s.bound();
        let ratio = s.ratio();
        let n = s.clusters as f64;
        let at = |q: f64| {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)] // 0 <= q <= 1
            let i = ((s.done_s.len().saturating_sub(1)) as f64 * q).round() as usize;
            s.done_s.get(i).copied().unwrap_or(0.0)
        };
        let spread = format!(
            "seconds from the common start to a cluster's convergence: first {:.1}, p90 {:.1}, last {:.1}",
            at(0.0),
            at(0.9),
            at(1.0)
        );
        if s.order == Order::Arrival {
            // The comparison: the same storm with the limiter in arrival order.
            table_row(
                &mut out,
                &format!("{} clusters, arrival order: median", s.clusters),
                &format!("{:.1}", at(0.5)),
                "-",
                None,
                &format!("{spread}; total / bound {ratio:.2}"),
            );
            continue;
        }
        table_row(
            &mut out,
            &format!("{} clusters: total / bound", s.clusters),
            &format!("{ratio:.2}"),
            &format!("<= {RATIO_TARGET:.2}"),
            Some(ratio <= RATIO_TARGET),
            &format!(
                "{:.1}s / {bound:.1}s (bound set by {by}; per cluster {:.1} Describe, {:.1} mutating)",
                s.total_s,
                s.tally.describe_ok as f64 / n,
                s.tally.mutate_ok as f64 / n,
            ),
        );
        table_row(
            &mut out,
            &format!("{} clusters: median restore", s.clusters),
            &format!("{:.1}", at(0.5)),
            "-",
            None,
            &spread,
        );
        let pct = s.throttled_pct();
        table_row(
            &mut out,
            &format!("{} clusters: throttled %", s.clusters),
            &format!("{pct:.2}"),
            &format!("< {THROTTLED_TARGET_PCT:.0}"),
            Some(pct < THROTTLED_TARGET_PCT),
            &format!("{} of {} EC2 calls answered RequestLimitExceeded", s.tally.throttled(), s.tally.total()),
        );
    }
    out
}

/// The scale runs as JSON (`bench -o json`): one object per run, model seconds.
pub(super) fn json(samples: &[ScaleSample]) -> serde_json::Value {
    let runs: Vec<serde_json::Value> = samples
        .iter()
        .map(|s| {
            let (bound, by) = s.bound();
            let ratio = s.ratio();
            let pct = s.throttled_pct();
            serde_json::json!({
                "clusters": s.clusters,
                "order": match s.order { Order::Urgency => "urgency", Order::Arrival => "arrival" },
                "total_s": s.total_s,
                "bound_s": bound,
                "bound_set_by": match by {
                    "Describe" => "describe-bucket",
                    "mutating bucket + tail" => "mutating-bucket-and-tail",
                    "detach/attach burst + tail" => "detach-attach-burst-and-tail",
                    _ => "critical-path",
                },
                "total_per_bound": ratio,
                "total_per_bound_target": {"op": "<=", "value": RATIO_TARGET},
                "total_per_bound_pass": ratio <= RATIO_TARGET,
                "cluster_done_s": {"first": s.done_at(0.0), "median": s.done_at(0.5), "p90": s.done_at(0.9), "last": s.done_at(1.0)},
                "calls": {
                    "describe_ok": s.tally.describe_ok,
                    "describe_throttled": s.tally.describe_throttled,
                    "mutate_ok": s.tally.mutate_ok,
                    "detach_attach_ok": s.swaps_ok,
                    "mutate_throttled": s.tally.mutate_throttled,
                },
                "throttled_pct": pct,
                "throttled_pct_target": {"op": "<", "value": THROTTLED_TARGET_PCT},
                "throttled_pct_pass": pct < THROTTLED_TARGET_PCT,
            })
        })
        .collect();
    serde_json::json!({"time": "model", "world": "lab", "runs": runs})
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The bound comes from the run's own counts and the latency model: 20 clusters' 80 accepted
    /// detaches and attaches (2 + 2 each) cannot all be accepted before `E + (80 − 50) / 5`, then
    /// `T`; fewer swaps leave the critical path in charge, more mutating calls the whole bucket.
    #[test]
    fn the_bound_is_the_largest_term_of_the_runs_own_counts() {
        let exact = LatencyModel::default().without_jitter();
        let (p, t, e) =
            (restore_critical_path_s(&exact), restore_tail_after_attach_s(&exact), restore_first_detach_s(&exact));
        let sample = |swaps_ok, mutate_ok, total_s| ScaleSample {
            clusters: 20,
            order: Order::Urgency,
            total_s,
            critical_path_s: p,
            tail_s: t,
            first_detach_s: e,
            swaps_ok,
            done_s: vec![total_s],
            account: ThrottleBudgets::default(),
            tally: ThrottleTally { describe_ok: 160, mutate_ok, ..ThrottleTally::default() },
        };
        let storm = sample(80, 160, 72.0);
        let (bound, by) = storm.bound();
        assert_eq!(by, "detach/attach burst + tail");
        assert!((bound - (e + 6.0 + t)).abs() < 1e-9 && bound > p, "{bound} {p}");
        assert!((storm.ratio() - 72.0 / bound).abs() < 1e-12);
        // The same storm's calls spread so that no more than a bucket's worth of swaps remains.
        assert_eq!(sample(50, 160, 72.0).bound().1, "critical path");
        // 100 clusters: the whole mutating bucket binds.
        let (bound, by) = sample(400, 800, 200.0).bound();
        assert_eq!(by, "mutating bucket + tail");
        assert!((bound - (150.0 + t)).abs() < 1e-9);
    }

    #[test]
    fn only_accepted_detaches_and_attaches_count() {
        let counts = |pairs: &[(&str, u64)]| pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect();
        let before = counts(&[("ec2:AttachVolume", 1)]);
        let after = counts(&[
            ("ec2:AttachVolume", 4),
            ("throttled:ec2:AttachVolume", 1),
            ("ec2:DetachVolume", 2),
            ("ec2:CreateTags", 2),
        ]);
        assert_eq!(accepted_swaps(&before, &after), 4);
    }

    #[test]
    fn alone_in_the_account_the_limiter_spends_its_whole_burst_but_one_token() {
        let b = alone_in(&ThrottleBudgets::default()).unwrap();
        assert!((b.describe.capacity() - 99.0).abs() < 1e-9, "{b:?}");
        assert!((b.mutate.capacity() - 49.0).abs() < 1e-9, "{b:?}");
        assert!((b.describe.refill_per_s() - 20.0).abs() < 1e-9 && (b.mutate.refill_per_s() - 5.0).abs() < 1e-9);
        // A one-token account still lets one call at a time through.
        let tiny = ThrottleBudgets { describe_capacity: 1.0, mutate_capacity: 1.0, ..ThrottleBudgets::default() };
        assert!((alone_in(&tiny).unwrap().mutate.capacity() - 1.0).abs() < 1e-9);
    }
}
