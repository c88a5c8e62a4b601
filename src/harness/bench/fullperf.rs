//! `mirrorctl bench`, time to full performance: how long after a restore starts the business runs
//! again, and how long until its disks are as fast as before, for each way EBS can load the
//! restored volumes, side by side with the alternative the runbook avoids.
//!
//! Why this part exists: a volume created from a snapshot is usable at once but slow until its
//! blocks are loaded from S3 (AWS EBS User Guide, "Initialize Amazon EBS volumes": "Full volume
//! performance is achieved only once all storage blocks have been downloaded and written to the
//! volume"). For a large disk that dominates the restore: the table shows by how much, and what
//! each option buys. It is pure arithmetic on the latency model's medians (the same numbers the
//! simulated world uses: it loads a restored volume's data, `Scenario::data_gib`, at the volume's
//! rate from the end of `creating`), so it costs nothing to run and every cell follows from a
//! cited rate.
//!
//! The figures, for a data set of `D` (the snapshot's full size):
//!
//! - **time to service**: from the restore's first step to the group online on the restored
//!   data, before the failover check: the restore's critical path less the final move.
//! - **time to full performance**: until both restored volumes are fully initialized (and, for
//!   the alternative, the mirror copy is done). A volume starts loading when it leaves `creating`,
//!   early in the restore, in parallel with the CLUSTERPRO work.
//! - **mirror in sync**: until both sides hold the same data and the mirror is healthy.
//!
//! The options and where their rates come from:
//!
//! - **FSR, already enabled**: a snapshot with Fast Snapshot Restore on in both zones and a credit
//!   in each: the volumes are "fully initialized at creation" (AWS EBS User Guide, "Amazon EBS fast
//!   snapshot restore").
//! - **FSR, enabled by the restore** (`fast_restore = true`): the restore first waits until FSR is
//!   `enabled` (the model's `fsr_enabling_s` [U] + "60 minutes per TiB" to optimize) and the zone
//!   has its first volume creation credit (`3600 ÷ MIN(10, 1024 ÷ GiB)` s); the business keeps
//!   running on the old disks meanwhile, and the group stops only once the volumes exist
//!   (`src/plan/fast_restore.rs`).
//! - **Provisioned rate** (`initialization_rate`, 100–300 MiB/s: "Amazon EBS Provisioned Rate for
//!   Volume Initialization", AWS EBS User Guide): `D ÷ rate` from creation.
//! - **Default (lazy loading)**: EBS's default; AWS publishes no rate ("The default volume
//!   initialization rate fluctuates … completion times unpredictable"), so the simulator's
//!   [`LAZY_LOAD_MIB_S`] is a model assumption [U].
//! - **One side restored, then a full mirror copy** (what the runbook avoids by restoring both
//!   servers: seed runbook, "現用系サーバーのみに対してミラーディスクのリストアした場合は、…フルコピーによる
//!   復旧が必要"): the business runs on the restored side while CLUSTERPRO copies it to the other
//!   [U: that md serves during the copy]. The copy reads every block of the restored volume,
//!   which is loading lazily, and writes the other side's gp3 volume, so it runs at the slowest
//!   of: the model's full-copy rate ([`LatencyModel::full_copy_mib_s`]; NEC publishes no
//!   mirror-copy rate [U]), gp3's baseline throughput ([`GP3_BASELINE_MIB_S`]) and the lazy
//!   loading rate [U: that reads of blocks not yet loaded go no faster than the loading]. The
//!   copy moves the data set, not the whole partition [U: optimistic for the alternative]. Two
//!   rows: the one side loading lazily, and at 300 MiB/s (the copy then runs at gp3's 125 MiB/s).
//!
//! Below the table, the alternative ÷ the runbook for the same loading: time to full performance,
//! and time until the mirror is in sync (how long the cluster runs without a second copy of its
//! data).

use std::fmt::Write as _;

use crate::plan::fast_restore::first_credit_after;
use crate::sim::LatencyModel;
use crate::sim::ec2::LAZY_LOAD_MIB_S;
use crate::sim::latency::initialization_s;

/// The data sets of the table, GiB of snapshot data: 100 GiB and 1 TiB.
pub(super) const DATA_SETS_GIB: [u32; 2] = [100, 1024];

/// gp3's baseline throughput, MiB/s ("gp3 volumes deliver a consistent baseline … of 3,000 IOPS and
/// 125 MiB/s", AWS EBS User Guide, "General Purpose SSD volumes"): what a full copy can write to a
/// gp3 volume without provisioned throughput.
pub(super) const GP3_BASELINE_MIB_S: f64 = 125.0;

/// The lowest and highest provisioned initialization rate EBS accepts, MiB/s.
const PROVISIONED_RATES: [u32; 2] = [300, 100];

/// How the restored volumes are loaded.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Loading {
    /// Fast Snapshot Restore already on for the snapshot in both zones.
    FsrReady,
    /// Fast Snapshot Restore switched on by the restore itself.
    FsrByRestore,
    /// A provisioned initialization rate, MiB/s.
    Provisioned(u32),
    /// EBS's default lazy loading.
    Lazy,
    /// Only the active side restored, loading at this rate (MiB/s; the lazy rate or a provisioned
    /// one), then a full mirror copy to the other.
    OneSideFullCopy(u32),
}

impl Loading {
    /// A stable identifier (JSON `option`).
    pub(super) fn id(self) -> String {
        match self {
            Loading::FsrReady => "fsr-already-enabled".into(),
            Loading::FsrByRestore => "fsr-enabled-by-restore".into(),
            Loading::Provisioned(r) => format!("provisioned-{r}"),
            Loading::Lazy => "lazy".into(),
            Loading::OneSideFullCopy(r) if r == LAZY_LOAD_MIB_S => "one-side-lazy-full-copy".into(),
            Loading::OneSideFullCopy(r) => format!("one-side-provisioned-{r}-full-copy"),
        }
    }

    /// The row's label in the text table.
    fn label(self) -> String {
        match self {
            Loading::FsrReady => "FSR already enabled".into(),
            Loading::FsrByRestore => "FSR enabled by the restore".into(),
            Loading::Provisioned(r) => format!("initialization_rate {r} MiB/s"),
            Loading::Lazy => "default (lazy loading)".into(),
            Loading::OneSideFullCopy(r) if r == LAZY_LOAD_MIB_S => "one side (lazy) + full copy".into(),
            Loading::OneSideFullCopy(r) => format!("one side ({r} MiB/s) + full copy"),
        }
    }
}

/// One option for one data set, in model seconds from the restore's first step.
#[derive(Debug, Clone, Copy)]
pub(super) struct Cell {
    /// GiB of snapshot data.
    pub(super) data_gib: u32,
    /// The group online on the restored data.
    pub(super) service_s: f64,
    /// Every restored volume loaded (and the mirror copy done).
    pub(super) full_performance_s: f64,
    /// Both sides identical, the mirror healthy.
    pub(super) in_sync_s: f64,
}

/// One row of the table: an option and its cell per data set.
#[derive(Debug, Clone)]
pub(super) struct Row {
    pub(super) loading: Loading,
    /// The rate the volumes (or the copy) load at, MiB/s; `None` when they need no loading.
    pub(super) rate_mib_s: Option<f64>,
    pub(super) cells: Vec<Cell>,
}

/// The moments of a two-node restore (configuration edit, the model's medians) the table needs,
/// in seconds.
#[derive(Debug, Clone, Copy)]
#[allow(clippy::struct_field_names)] // every moment is in seconds, and says so
struct Restore {
    /// First step → group online.
    service_s: f64,
    /// First step → the new volumes left `creating` (their loading starts).
    volumes_ready_s: f64,
    /// The volume creation branch the critical path takes (create + the Describe that sees it).
    create_branch_s: f64,
    /// The group stop and the removal of md, in parallel with the creation.
    stop_and_remove_s: f64,
    /// One EC2 round trip.
    ec2_s: f64,
}

fn restore(l: &LatencyModel) -> Restore {
    let (a, c) = (l.ec2_api_s, l.clp_api_s);
    let critical = super::restore_critical_path_s(l);
    Restore {
        service_s: critical - (c + l.group_move_s),
        volumes_ready_s: 2.0 * c + a + l.create_volume_s,
        create_branch_s: a + l.create_volume_s + a,
        stop_and_remove_s: c + l.group_stop_s + c + l.apply_config_s,
        ec2_s: a,
    }
}

/// The table for `l`'s medians.
pub(super) fn table(l: &LatencyModel) -> Vec<Row> {
    let r = restore(l);
    let lazy = f64::from(LAZY_LOAD_MIB_S);
    let loaded = |rate: f64| {
        move |d: u32| {
            let full = r.service_s.max(r.volumes_ready_s + initialization_s(d, rate));
            Cell { data_gib: d, service_s: r.service_s, full_performance_s: full, in_sync_s: r.service_s }
        }
    };
    let mut rows = vec![Row {
        loading: Loading::FsrReady,
        rate_mib_s: None,
        cells: DATA_SETS_GIB
            .iter()
            .map(|&d| Cell {
                data_gib: d,
                service_s: r.service_s,
                full_performance_s: r.service_s,
                in_sync_s: r.service_s,
            })
            .collect(),
    }];
    rows.push(Row {
        loading: Loading::FsrByRestore,
        rate_mib_s: None,
        cells: DATA_SETS_GIB
            .iter()
            .map(|&d| {
                // Enable (one call), wait for `enabled` and the first credit, see it (one Describe);
                // then create; the group stops only once the volumes exist.
                let wait = l.fsr_enable_s(d).max(first_credit_after(d).as_secs_f64());
                let before = r.ec2_s + wait + r.ec2_s + r.create_branch_s + r.stop_and_remove_s;
                let service = r.service_s - r.create_branch_s.max(r.stop_and_remove_s) + before;
                Cell { data_gib: d, service_s: service, full_performance_s: service, in_sync_s: service }
            })
            .collect(),
    });
    for rate in PROVISIONED_RATES {
        let f = loaded(f64::from(rate));
        rows.push(Row {
            loading: Loading::Provisioned(rate),
            rate_mib_s: Some(f64::from(rate)),
            cells: DATA_SETS_GIB.iter().map(|&d| f(d)).collect(),
        });
    }
    let f = loaded(lazy);
    rows.push(Row {
        loading: Loading::Lazy,
        rate_mib_s: Some(lazy),
        cells: DATA_SETS_GIB.iter().map(|&d| f(d)).collect(),
    });
    for load_mib_s in [LAZY_LOAD_MIB_S, PROVISIONED_RATES[0]] {
        let load = f64::from(load_mib_s);
        let copy_rate = l.full_copy_mib_s().min(GP3_BASELINE_MIB_S).min(load);
        rows.push(Row {
            loading: Loading::OneSideFullCopy(load_mib_s),
            rate_mib_s: Some(copy_rate),
            cells: DATA_SETS_GIB
                .iter()
                .map(|&d| {
                    let synced = r.service_s + initialization_s(d, copy_rate);
                    let loaded = r.volumes_ready_s + initialization_s(d, load);
                    Cell {
                        data_gib: d,
                        service_s: r.service_s,
                        full_performance_s: synced.max(loaded),
                        in_sync_s: synced,
                    }
                })
                .collect(),
        });
    }
    rows
}

fn cell(rows: &[Row], loading: Loading, data_gib: u32) -> Option<Cell> {
    rows.iter().find(|r| r.loading == loading)?.cells.iter().find(|c| c.data_gib == data_gib).copied()
}

/// The alternative ÷ the runbook (both sides restored), each loading the same way: per loading
/// (the lazy rate, 300 MiB/s) and data set, `(loading id, GiB, full performance ratio, in sync
/// ratio)`.
pub(super) fn alternative_ratios(rows: &[Row]) -> Vec<(String, u32, f64, f64)> {
    let pairs = [
        (Loading::OneSideFullCopy(LAZY_LOAD_MIB_S), Loading::Lazy),
        (Loading::OneSideFullCopy(PROVISIONED_RATES[0]), Loading::Provisioned(PROVISIONED_RATES[0])),
    ];
    let mut out = Vec::new();
    for (alt, both) in pairs {
        for d in DATA_SETS_GIB {
            if let (Some(a), Some(b)) = (cell(rows, alt, d), cell(rows, both, d)) {
                out.push((both.id(), d, a.full_performance_s / b.full_performance_s, a.in_sync_s / b.in_sync_s));
            }
        }
    }
    out
}

fn size(d: u32) -> String {
    if d.is_multiple_of(1024) { format!("{} TiB", d / 1024) } else { format!("{d} GiB") }
}

/// The text table.
pub(super) fn render(rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "\ntime to full performance (model seconds from the restore's first step, latency model medians; data = \
         the snapshot's full size)"
    );
    let mut head = format!("{:<34}", "option");
    for d in DATA_SETS_GIB {
        let s = size(d);
        let _ = write!(head, " {:>16} {:>10} {:>10}", format!("{s}: service"), "full perf", "in sync");
    }
    let _ = writeln!(out, "{head}  rate");
    for row in rows {
        let mut line = format!("{:<34}", row.loading.label());
        for c in &row.cells {
            let _ = write!(line, " {:>16.0} {:>10.0} {:>10.0}", c.service_s, c.full_performance_s, c.in_sync_s);
        }
        let rate = match (row.loading, row.rate_mib_s) {
            (Loading::OneSideFullCopy(l), Some(r)) => format!("loads at {l} MiB/s, copy {r:.0} MiB/s"),
            (_, Some(r)) => format!("{r:.0} MiB/s"),
            (_, None) => "loaded at creation".into(),
        };
        let _ = writeln!(out, "{line}  {rate}");
    }
    for (loading, d, full, sync) in alternative_ratios(rows) {
        let _ = writeln!(
            out,
            "one side + full copy / both sides, {loading}, {}: full perf {full:.2}, in sync {sync:.1}",
            size(d)
        );
    }
    out
}

/// The table as JSON: one object per option, its cells per data set.
pub(super) fn json(rows: &[Row]) -> serde_json::Value {
    let options: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            let cells: Vec<serde_json::Value> = r
                .cells
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "data_gib": c.data_gib,
                        "service_s": c.service_s,
                        "full_performance_s": c.full_performance_s,
                        "in_sync_s": c.in_sync_s,
                    })
                })
                .collect();
            serde_json::json!({"option": r.loading.id(), "rate_mib_s": r.rate_mib_s, "data_sets": cells})
        })
        .collect();
    let ratios: Vec<serde_json::Value> = alternative_ratios(rows)
        .into_iter()
        .map(|(loading, d, full, sync)| {
            serde_json::json!({"loading": loading, "data_gib": d, "full_performance": full, "in_sync": sync})
        })
        .collect();
    serde_json::json!({"time": "model", "options": options, "ratios": ratios})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_option_reaches_full_performance_in_the_documented_order() {
        let rows = table(&LatencyModel::default());
        for d in DATA_SETS_GIB {
            let full = |l| cell(&rows, l, d).expect("cell").full_performance_s;
            let order = [
                Loading::FsrReady,
                Loading::Provisioned(300),
                Loading::Provisioned(100),
                Loading::Lazy,
                Loading::OneSideFullCopy(LAZY_LOAD_MIB_S),
            ];
            for w in order.windows(2) {
                assert!(full(w[0]) < full(w[1]), "{d} GiB: {:?} {} !< {:?} {}", w[0], full(w[0]), w[1], full(w[1]));
            }
            // 1 TiB at 300 MiB/s: 3,495 s of loading after the volume exists.
            let p300 = cell(&rows, Loading::Provisioned(300), d).expect("cell");
            let r = restore(&LatencyModel::default());
            assert!((p300.full_performance_s - r.volumes_ready_s - f64::from(d) * 1024.0 / 300.0).abs() < 1e-6);
        }
        // FSR switched on by the restore: an hour per TiB of optimizing before the volumes exist.
        let fsr = cell(&rows, Loading::FsrByRestore, 1024).expect("cell");
        assert!(fsr.service_s > 3600.0, "{fsr:?}");
    }
}
