//! Several schedules on one cluster in the simulated world: an hourly and a daily schedule run
//! for a simulated day and a half; each takes its own backups (named and tagged per schedule, the
//! daily one first when both are due), and each keeps its own count: the hourly backups never push
//! the daily one out.

use crate::support::common;

use std::time::Duration;

use common::{Lab, example, with_backups};
use mirrorctl::ids::BackupName;
use mirrorctl::ports::Clock as _;
use mirrorctl::ports::cloud::{SnapshotState, tag};
use mirrorctl::reconcile::Settled;
use mirrorctl::spec::{Every, Os, Schedule, ScheduleSpec};

fn schedule(name: &str, every: Every, keep: u32) -> ScheduleSpec {
    ScheduleSpec {
        name: BackupName::parse(name).unwrap(),
        every,
        own_retention: true,
        keep: Some(keep),
        keep_days: None,
    }
}

#[tokio::test(start_paused = true)]
async fn hourly_and_daily_schedules_each_take_and_keep_their_own() {
    let lab = Lab::windows(71);
    let mut spec = with_backups(example(Os::Windows), &[], 7);
    spec.backup.as_mut().unwrap().schedules = vec![
        schedule("daily", Every::Daily(Schedule { hour: 2, minute: 0, time_zone: "Asia/Tokyo".into() }), 2),
        schedule("hourly", Every::Hours(1), 3),
    ];
    // The world starts at 2026-11-30T00:00Z (09:00 JST). Wake a minute after these hours (from
    // the start): the daily slots are 17:00Z on the 30th and the 1st (02:00 JST on the 1st and
    // the 2nd). The hours between are skipped: an hourly slot missed is not taken later.
    let start = lab.world.now();
    for hour in [14_i64, 15, 16, 17, 18, 41, 42] {
        let target = start + jiff::SignedDuration::from_secs(hour * 3600 + 60);
        let wait = target.duration_since(lab.world.now());
        if wait.is_positive() {
            lab.world.clock().sleep(Duration::try_from(wait).unwrap()).await;
        }
        assert_eq!(lab.apply(&spec).await, Settled::Converged, "hour {hour}");
    }
    let inv = lab.world.inventory();
    let ours: Vec<_> =
        inv.snapshots.iter().filter(|s| s.tags.get(tag::ROLE).map(String::as_str) == Some("backup")).collect();
    let of = |schedule: &str| {
        let mut names: Vec<String> = ours
            .iter()
            .filter(|s| s.tags.get(tag::SCHEDULE).map(String::as_str) == Some(schedule))
            .filter_map(|s| s.tags.get(tag::REQUEST).cloned())
            .collect();
        names.sort();
        names
    };
    // Both daily backups are kept (keep = 2) although six hourly ones were taken after the first.
    assert_eq!(of("daily"), ["daily-20261201", "daily-20261202"]);
    // The hourly schedule keeps its newest 3 completed ones; the newest may still be pending and
    // is not counted, so 3 or 4 remain, all from the last hours.
    let hourly = of("hourly");
    assert!((3..=4).contains(&hourly.len()), "{hourly:?}");
    assert!(hourly.iter().all(|n| n.as_str() >= "hourly-2026113017"), "{hourly:?}");
    assert!(hourly.contains(&"hourly-2026120118".to_owned()), "{hourly:?}");
    // Every slot woken for was taken once: 7 hourly + 2 daily, the rest deleted by retention.
    let taken = lab
        .actions(&spec)
        .into_iter()
        .filter(|(step, _)| step.starts_with("backup/") && step.contains("/snapshot@"))
        .count();
    assert_eq!(taken, 9);
    assert_eq!(usize::try_from(inv.deleted_snapshots).unwrap(), 9 - ours.len());
    assert!(ours.iter().any(|s| s.state == SnapshotState::Completed));
    // At 17:00Z both were due: the daily backup ran first, then the hourly one of that hour.
    let order: Vec<String> = lab.actions(&spec).into_iter().map(|(s, _)| s).collect();
    let daily = order.iter().position(|s| s.starts_with("backup/daily-20261201/")).unwrap();
    let hourly17 = order.iter().position(|s| s.starts_with("backup/hourly-2026113017/")).unwrap();
    let hourly16 = order.iter().position(|s| s.starts_with("backup/hourly-2026113016/")).unwrap();
    assert!(hourly16 < daily && daily < hourly17, "{order:?}");
    assert_eq!(lab.world.inventory().deleted_volumes, 0);
}
