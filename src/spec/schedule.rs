//! Schedule arithmetic: when a schedule's slots fall.
//!
//! Why this module exists: the planner (which backup is due) and the daemon (when to look again)
//! both ask the schedule type the same questions; the answers live with the type, not inside
//! either of them. Pure: `now` is given.

use jiff::Timestamp;
use jiff::tz::TimeZone;

use super::{BackupSpec, Every};

/// The schedule's slots as a cron expression and the zone it is read in. Validated when the file
/// was loaded; `None` only for a spec built by hand with a bad expression.
fn cron_of(every: &Every) -> Option<(croner::Cron, TimeZone)> {
    let (expr, zone) = match every {
        Every::Hours(24) => ("0 0 * * *".to_owned(), "UTC"),
        Every::Hours(n) => (format!("0 */{n} * * *"), "UTC"),
        Every::Daily(at) => (format!("{} {} * * *", at.minute, at.hour), at.time_zone.as_str()),
        Every::Weekly { day, at } => (format!("{} {} * * {day}", at.minute, at.hour), at.time_zone.as_str()),
        Every::Cron { expr, time_zone } => (expr.clone(), time_zone.as_str()),
    };
    let cron = super::parse_cron(&expr).ok()?;
    Some((cron, TimeZone::get(zone).ok()?))
}

impl Every {
    /// The latest slot at or before `now`.
    pub fn last_slot(&self, now: Timestamp) -> Option<Timestamp> {
        let (cron, tz) = cron_of(self)?;
        cron.find_previous_occurrence(&now.to_zoned(tz), true).ok().map(|z| z.timestamp())
    }

    /// The first slot strictly after `now`: when a daemon with nothing else to do should look
    /// again.
    pub fn next_slot(&self, now: Timestamp) -> Option<Timestamp> {
        let (cron, tz) = cron_of(self)?;
        cron.find_next_occurrence(&now.to_zoned(tz), false).ok().map(|z| z.timestamp())
    }
}

impl BackupSpec {
    /// The earliest next slot across the schedules.
    pub fn next_wake(&self, now: Timestamp) -> Option<Timestamp> {
        self.schedules.iter().filter_map(|s| s.every.next_slot(now)).min()
    }
}
