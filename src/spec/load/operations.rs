//! `[backup]` and `[restore]`: schedules, retention, on-demand backups, the restore wanted.

use std::collections::HashMap;
use std::ops::Range;

use super::super::error::ErrorKind;
use super::super::raw::{RawBackup, RawCopy, RawRestore, RawSchedule, RawSchedules, S};
use super::super::types::{BackupRestoreSpec, BackupSpec, CopyTarget, Every, RestoreSpec, Schedule, ScheduleSpec};
use super::{Checker, closest};
use crate::ids::{BackupName, Region, RequestName, SnapshotId};

impl Checker<'_, '_> {
    pub(super) fn backup(&mut self, raw: &RawBackup, home: Option<&Region>) -> Option<BackupSpec> {
        let schedules = match raw.schedule.as_ref().map(|v| (v.get_ref(), v.span())) {
            None => Some(Vec::new()),
            Some((RawSchedules::One(text), span)) => {
                self.schedule(text, span).and_then(ScheduleSpec::single).map(|s| vec![s])
            }
            Some((RawSchedules::Many(list), _)) => self.schedules(list),
        };
        let copy_to = match &raw.copy_to {
            None => Some(Vec::new()),
            Some(list) => self.copy_to(list, home),
        };
        let keep = match &raw.keep {
            None => Some(7),
            Some(v) => self.range(v, "backup.keep", (1, 1000), ErrorKind::KeepOutOfRange, "snapshots"),
        };
        let mut take = Some(Vec::new());
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for (i, v) in raw.take.iter().flatten().enumerate() {
            let key = format!("backup.take[{i}]");
            if let Some(first) = seen.insert(v.get_ref(), i) {
                self.push(
                    v.span(),
                    &key,
                    ErrorKind::DuplicateTake,
                    format!("backup name \"{}\" is already listed as backup.take[{first}]", v.get_ref()),
                    "each on-demand backup is taken once per name: remove the repetition, or give the new backup a new name",
                );
                take = None;
                continue;
            }
            let name = self.id(
                v,
                &key,
                BackupName::parse,
                "name the backup after its reason and date, e.g. \"before-upgrade-2026-11\"",
            );
            match (name, &mut take) {
                (Some(n), Some(list)) => list.push(n),
                _ => take = None,
            }
        }
        Some(BackupSpec { schedules: schedules?, keep: keep?, take: take?, copy_to: copy_to? })
    }

    /// The single form `schedule = "daily HH:MM ZONE"`.
    fn schedule(&mut self, s: &str, span: Range<usize>) -> Option<Schedule> {
        const KEY: &str = "backup.schedule";
        const SHAPE: &str = "write \"daily HH:MM ZONE\", e.g. \"daily 02:00 Asia/Tokyo\" or \"daily 17:30 UTC\"";
        let parts: Vec<&str> = s.split_whitespace().collect();
        let Some((time, zone)) = (match parts.as_slice() {
            ["daily", time, zone] => Some((*time, *zone)),
            _ => None,
        }) else {
            self.push(
                span,
                KEY,
                ErrorKind::BadSchedule,
                format!("\"{s}\" is not a schedule mirrorctl understands"),
                SHAPE,
            );
            return None;
        };
        self.time_in_zone(time, zone, s, span, KEY, SHAPE)
    }

    /// `HH:MM` and an IANA zone, as in `daily 02:00 Asia/Tokyo`.
    fn time_in_zone(
        &mut self,
        time: &str,
        zone: &str,
        s: &str,
        span: Range<usize>,
        key: &str,
        shape: &str,
    ) -> Option<Schedule> {
        let time = time
            .split_once(':')
            .filter(|(h, m)| h.len() == 2 && m.len() == 2 && h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit()));
        let Some((h, m)) = time else {
            self.push(
                span.clone(),
                key,
                ErrorKind::BadSchedule,
                format!("\"{s}\" is not a schedule mirrorctl understands"),
                shape,
            );
            return None;
        };
        let (hour, minute) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
        if hour > 23 || minute > 59 {
            self.push(
                span.clone(),
                key,
                ErrorKind::BadSchedule,
                format!("{h}:{m} is not a time of day: hours run from 00 to 23, minutes from 00 to 59"),
                shape,
            );
            return None;
        }
        let zone = self.zone(zone, span, key)?;
        Some(Schedule { hour, minute, time_zone: zone })
    }

    /// An IANA time zone name (or `UTC`), with a did-you-mean.
    fn zone(&mut self, zone: &str, span: Range<usize>, key: &str) -> Option<String> {
        if zone != "UTC" && jiff::tz::db().get(zone).is_err() {
            let names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_owned()).collect();
            let near = closest(zone, names.iter().map(String::as_str));
            let hint = match near {
                Some(n) => format!("did you mean \"{n}\"?"),
                None => "use an IANA time zone name such as \"Asia/Tokyo\", or \"UTC\"".to_owned(),
            };
            self.push(
                span,
                key,
                ErrorKind::UnknownTimeZone,
                format!("\"{zone}\" is not a time zone of the IANA database"),
                hint,
            );
            return None;
        }
        Some(zone.to_owned())
    }

    /// `backup.copy_to`: distinct regions other than the cluster's, each with its retention.
    fn copy_to(&mut self, list: &S<Vec<RawCopy>>, home: Option<&Region>) -> Option<Vec<CopyTarget>> {
        let mut out = Some(Vec::new());
        let mut seen: HashMap<Region, usize> = HashMap::new();
        for (i, raw) in list.get_ref().iter().enumerate() {
            let key = format!("backup.copy_to[{i}]");
            if raw.region.is_none() {
                // An inline table has no header line: point at the list.
                self.push(
                    list.span(),
                    &format!("{key}.region"),
                    ErrorKind::MissingKey,
                    format!("required key `region` is missing from `{key}`"),
                    "add region = \"us-west-2\": the region the backups are copied to",
                );
            }
            let region = raw.region.as_ref().and_then(|v| {
                let r = self.id(v, &format!("{key}.region"), Region::parse, "write a region such as \"us-west-2\"")?;
                if let Some(first) = seen.insert(r.clone(), i) {
                    self.push(
                        v.span(),
                        &format!("{key}.region"),
                        ErrorKind::CopyRegion,
                        format!("{r} is already listed as backup.copy_to[{first}]"),
                        "list each destination region once",
                    );
                    return None;
                }
                if home == Some(&r) {
                    self.push(
                        v.span(),
                        &format!("{key}.region"),
                        ErrorKind::CopyRegion,
                        format!("{r} is the cluster's own region: a copy there is no disaster-recovery copy"),
                        "name another region, e.g. \"us-west-2\"",
                    );
                    return None;
                }
                Some(r)
            });
            let keep = match &raw.keep {
                None => Some(7),
                Some(v) => self.range(v, &format!("{key}.keep"), (1, 1000), ErrorKind::KeepOutOfRange, "copies"),
            };
            let kms_key = match &raw.kms_key {
                None => Some(None),
                Some(v) if v.get_ref().trim().is_empty() => {
                    self.push(
                        v.span(),
                        &format!("{key}.kms_key"),
                        ErrorKind::EmptyKmsKey,
                        "kms_key is empty",
                        "remove kms_key to keep the source's encryption, or give a KMS key id, ARN or \"alias/NAME\" of the \
                         destination region",
                    );
                    None
                }
                Some(v) => Some(Some(v.get_ref().clone())),
            };
            match (region, keep, kms_key, &mut out) {
                (Some(region), Some(keep), Some(kms_key), Some(all)) => all.push(CopyTarget { region, keep, kms_key }),
                _ => out = None,
            }
        }
        out
    }

    /// `[[backup.schedule]]` tables: each parsed alone, then names checked across them.
    fn schedules(&mut self, list: &[RawSchedule]) -> Option<Vec<ScheduleSpec>> {
        let mut out = Some(Vec::new());
        let mut seen: HashMap<String, usize> = HashMap::new();
        for (i, raw) in list.iter().enumerate() {
            let spec = self.one_schedule(i, raw);
            if let Some(s) = &spec
                && let Some(first) = seen.insert(s.name.to_string(), i)
            {
                let span = raw
                    .name
                    .as_ref()
                    .or(raw.every.as_ref())
                    .or(raw.cron.as_ref())
                    .map_or_else(|| self.source.header("backup.schedule", i), S::span);
                self.push(
                    span,
                    &format!("backup.schedule[{i}].name"),
                    ErrorKind::DuplicateSchedule,
                    format!("backup.schedule[{first}] is already named \"{}\"", s.name),
                    "give each schedule its own name = \"...\": the name prefixes its backups and keeps its retention apart",
                );
                out = None;
                continue;
            }
            match (spec, &mut out) {
                (Some(s), Some(all)) => all.push(s),
                _ => out = None,
            }
        }
        out
    }

    fn one_schedule(&mut self, i: usize, raw: &RawSchedule) -> Option<ScheduleSpec> {
        let table = format!("backup.schedule[{i}]");
        let every = match (&raw.every, &raw.cron) {
            (Some(e), Some(c)) => {
                self.push(
                    c.span(),
                    &format!("{table}.cron"),
                    ErrorKind::ScheduleKeys,
                    "a schedule has both `every` and `cron`",
                    format!("keep one of them: `every = \"{}\"` or `cron = \"{}\"`", e.get_ref(), c.get_ref()),
                );
                None
            }
            (Some(e), None) => {
                if let Some(z) = &raw.zone {
                    self.push(
                        z.span(),
                        &format!("{table}.zone"),
                        ErrorKind::ScheduleKeys,
                        "`zone` belongs to `cron`; an `every` schedule names its zone in the string",
                        "remove `zone` and write the zone in `every`, e.g. every = \"daily 02:00 Asia/Tokyo\"",
                    );
                    None
                } else {
                    self.every(e, &format!("{table}.every"))
                }
            }
            (None, Some(c)) => {
                let zone = match &raw.zone {
                    None => Some("UTC".to_owned()),
                    Some(z) => self.zone(z.get_ref(), z.span(), &format!("{table}.zone")),
                };
                let expr = self.cron(c, &format!("{table}.cron"));
                Some(Every::Cron { expr: expr?, time_zone: zone? })
            }
            (None, None) => {
                self.missing(
                    "backup.schedule",
                    i,
                    &format!("{table}.every"),
                    "add every = \"daily 02:00 Asia/Tokyo\" (or \"hourly\", \"every 6h\", \"weekly sun 03:00 UTC\"), \
                     or cron = \"0 */4 * * *\"",
                );
                None
            }
        };
        let keep = raw
            .keep
            .as_ref()
            .map(|v| self.range(v, &format!("{table}.keep"), (1, 1000), ErrorKind::KeepOutOfRange, "snapshots"));
        let keep_days = raw
            .keep_days
            .as_ref()
            .map(|v| self.range(v, &format!("{table}.keep_days"), (1, 36500), ErrorKind::KeepDaysOutOfRange, "days"));
        let name = match &raw.name {
            Some(v) => self.id(
                v,
                &format!("{table}.name"),
                |s| {
                    if s.len() > 60 {
                        return Err(crate::ids::IdError(format!("schedule name \"{s}\" is longer than 60 characters")));
                    }
                    BackupName::parse(s)
                },
                "a short word such as \"hourly\" or \"weekly-long\": letters, digits, '-', '_' and '.'",
            ),
            None => every.as_ref().and_then(|e| BackupName::parse(&default_name(e)).ok()),
        };
        let (keep, keep_days) = match (keep, keep_days) {
            (None, None) => (Some(7), None),
            (k, d) => (k.map_or(Some(None), |k| k.map(Some))?, d.map_or(Some(None), |d| d.map(Some))?),
        };
        Some(ScheduleSpec { name: name?, every: every?, own_retention: true, keep, keep_days })
    }

    /// `every`: `hourly`, `every Nh`, `daily HH:MM ZONE`, `weekly DAY HH:MM ZONE`.
    fn every(&mut self, value: &S<String>, key: &str) -> Option<Every> {
        const SHAPE: &str = "write \"hourly\", \"every 6h\", \"daily 02:00 Asia/Tokyo\" or \"weekly sun 03:00 Asia/Tokyo\"; \
                             for anything else use cron = \"…\"";
        let s = value.get_ref();
        let parts: Vec<&str> = s.split_whitespace().collect();
        let bad = |this: &mut Self, message: String, hint: String| {
            this.push(value.span(), key, ErrorKind::BadSchedule, message, hint);
            None
        };
        match parts.as_slice() {
            ["hourly"] => Some(Every::Hours(1)),
            ["every", n] => {
                let hours = n.strip_suffix('h').and_then(|h| h.parse::<u8>().ok());
                match hours {
                    Some(h) if (1..=24).contains(&h) && 24 % h == 0 => Some(Every::Hours(h)),
                    _ => bad(
                        self,
                        format!("\"{s}\": `every` takes a number of hours that divides a day"),
                        "write \"every Nh\" with N one of 1, 2, 3, 4, 6, 8, 12, 24 (slots on the hour from 00:00 UTC); \
                         for other periods use cron = \"…\""
                            .to_owned(),
                    ),
                }
            }
            ["daily", time, zone] => self.time_in_zone(time, zone, s, value.span(), key, SHAPE).map(Every::Daily),
            ["weekly", day, time, zone] => {
                let Some(d) = weekday(day) else {
                    let near = closest(day, WEEKDAYS.iter().map(|d| &d[..3]));
                    return bad(
                        self,
                        format!("\"{day}\" is not a day of the week"),
                        near.map_or_else(
                            || "write the day as sun, mon, tue, wed, thu, fri or sat".to_owned(),
                            |n| format!("did you mean \"{n}\"?"),
                        ),
                    );
                };
                self.time_in_zone(time, zone, s, value.span(), key, SHAPE).map(|at| Every::Weekly { day: d, at })
            }
            _ => {
                let first = parts.first().copied().unwrap_or_default();
                let near = closest(first, ["hourly", "every", "daily", "weekly"].into_iter());
                let hint = match near {
                    Some(n) if n != first => format!("did you mean \"{n}\"? {SHAPE}"),
                    _ => SHAPE.to_owned(),
                };
                bad(self, format!("\"{s}\" is not a schedule mirrorctl understands"), hint)
            }
        }
    }

    /// A five-field cron expression; an error names the column that is wrong.
    fn cron(&mut self, value: &S<String>, key: &str) -> Option<String> {
        const FIELDS: [&str; 5] = ["minute", "hour", "day of month", "month", "day of week"];
        let s = value.get_ref().trim();
        let fields: Vec<&str> = s.split_whitespace().collect();
        if fields.len() != 5 {
            self.push(
                value.span(),
                key,
                ErrorKind::BadCron,
                format!("\"{s}\" has {} fields; a cron expression has 5", fields.len()),
                "write minute hour day-of-month month day-of-week, e.g. \"0 */4 * * *\" (every 4 hours) or \
                 \"30 1 * * mon-fri\"",
            );
            return None;
        }
        if parse_cron(s).is_ok() {
            return Some(fields.join(" "));
        }
        // Find the column: each field alone, the others `*`.
        let column = (0..5).find_map(|i| {
            let mut probe = ["*"; 5];
            probe[i] = fields[i];
            parse_cron(&probe.join(" ")).err().map(|e| (i, e))
        });
        let message = match column {
            Some((i, e)) => format!("column {} ({}) \"{}\" is not valid: {e}", i + 1, FIELDS[i], fields[i]),
            None => match parse_cron(s) {
                Err(e) => format!("\"{s}\" is not a valid cron expression: {e}"),
                Ok(_) => format!("\"{s}\" is not a valid cron expression"),
            },
        };
        self.push(
            value.span(),
            key,
            ErrorKind::BadCron,
            message,
            "minute 0-59, hour 0-23, day of month 1-31, month 1-12 or jan-dec, day of week 0-7 or sun-sat; \
             lists (1,15), ranges (1-5) and steps (*/4) allowed",
        );
        None
    }

    /// `[restore]`: exactly one of `snapshot` (a [`RestoreSpec`]) and `backup` (a
    /// [`BackupRestoreSpec`]).
    pub(super) fn restore(&mut self, raw: &RawRestore) -> Option<(Option<RestoreSpec>, Option<BackupRestoreSpec>)> {
        const T: (&str, usize) = ("restore", 0);
        if let (Some(_), Some(b)) = (&raw.snapshot, &raw.backup) {
            self.push(
                b.span(),
                "restore.backup",
                ErrorKind::RestoreSnapshotAndBackup,
                "a restore names both a snapshot and a backup",
                "keep one: snapshot = \"snap-...\" restores that snapshot, backup = \"<name>\" restores every snapshot that backup took",
            );
            return None;
        }
        if let (Some(b), Some(true)) = (&raw.backup, raw.allow_foreign_snapshot) {
            self.push(
                b.span(),
                "restore.allow_foreign_snapshot",
                ErrorKind::RestoreSnapshotAndBackup,
                "allow_foreign_snapshot with a backup: a backup is looked for among this cluster's own snapshots only",
                "to restore another cluster's snapshot, name it with snapshot = \"snap-...\" and keep allow_foreign_snapshot = true",
            );
            return None;
        }
        let backup = raw.backup.as_ref().map(|v| {
            self.id(
                v,
                "restore.backup",
                BackupName::parse,
                "name a backup of this cluster as `mirrorctl snapshots` lists it, e.g. \"daily-20261124\"",
            )
        });
        let snapshot = if backup.is_some() {
            None
        } else {
            self.required(
                raw.snapshot.as_ref(),
                T,
                "restore.snapshot",
                "add snapshot = \"snap-...\", the EBS snapshot to restore both servers from, or backup = \"<name>\", a backup of this cluster",
            )
            .map(|v| {
                self.id(
                    v,
                    "restore.snapshot",
                    SnapshotId::parse,
                    "copy the snapshot id from `mirrorctl status` or the EC2 console, e.g. \"snap-0123456789abcdef0\"",
                )
            })
        };
        let request = match &raw.request {
            None => {
                let span = self.source.header("restore", 0);
                self.push(
                    span,
                    "restore.request",
                    ErrorKind::RestoreWithoutRequest,
                    "a restore without a request name",
                    "add request = \"<name>\", e.g. request = \"incident-2026-11-24\": the name identifies this restore, and a new name asks for a new one",
                );
                None
            }
            Some(v) => self.id(
                v,
                "restore.request",
                RequestName::parse,
                "name the restore after its reason and date, e.g. \"incident-2026-11-24\"",
            ),
        };
        let request = request?;
        let verify_failover = raw.verify_failover.unwrap_or(true);
        let allow_foreign_snapshot = raw.allow_foreign_snapshot.unwrap_or(false);
        match (snapshot, backup) {
            (Some(snapshot), _) => Some((
                Some(RestoreSpec { snapshot: snapshot?, request, verify_failover, allow_foreign_snapshot }),
                None,
            )),
            (None, Some(backup)) => Some((None, Some(BackupRestoreSpec { backup: backup?, request, verify_failover }))),
            (None, None) => None,
        }
    }
}

const WEEKDAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];

/// `sun`…`sat` or the full English name, any case; 0 = Sunday.
fn weekday(word: &str) -> Option<u8> {
    let w = word.to_ascii_lowercase();
    WEEKDAYS.iter().position(|d| *d == w || d[..3] == w).and_then(|p| u8::try_from(p).ok())
}

/// The name a schedule gets when its table has none.
fn default_name(every: &Every) -> String {
    match every {
        Every::Hours(1) => "hourly".to_owned(),
        Every::Hours(n) => format!("every-{n}h"),
        Every::Daily(_) => "daily".to_owned(),
        Every::Weekly { .. } => "weekly".to_owned(),
        Every::Cron { .. } => "cron".to_owned(),
    }
}

/// Parses a five-field cron expression the way the planner evaluates it.
pub(crate) fn parse_cron(expr: &str) -> Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder().seconds(croner::parser::Seconds::Disallowed).build().parse(expr)
}
