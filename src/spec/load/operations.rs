//! `[backup]` and `[restore]`: schedules, retention, on-demand backups, the restore wanted.

use std::collections::HashMap;

use super::super::error::ErrorKind;
use super::super::raw::{RawBackup, RawRestore, S};
use super::super::types::{BackupSpec, RestoreSpec, Schedule};
use super::{Checker, closest};
use crate::ids::{BackupName, RequestName, SnapshotId};

impl Checker<'_, '_> {
    pub(super) fn backup(&mut self, raw: &RawBackup) -> Option<BackupSpec> {
        let schedule = match &raw.schedule {
            None => Some(None),
            Some(v) => self.schedule(v).map(Some),
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
        Some(BackupSpec { schedule: schedule?, keep: keep?, take: take? })
    }

    pub(super) fn schedule(&mut self, value: &S<String>) -> Option<Schedule> {
        const KEY: &str = "backup.schedule";
        const SHAPE: &str = "write \"daily HH:MM ZONE\", e.g. \"daily 02:00 Asia/Tokyo\" or \"daily 17:30 UTC\"";
        let s = value.get_ref();
        let parts: Vec<&str> = s.split_whitespace().collect();
        let time = match parts.as_slice() {
            ["daily", time, _zone] => time.split_once(':').filter(|(h, m)| {
                h.len() == 2 && m.len() == 2 && h.bytes().chain(m.bytes()).all(|b| b.is_ascii_digit())
            }),
            _ => None,
        };
        let Some((h, m)) = time else {
            self.push(
                value.span(),
                KEY,
                ErrorKind::BadSchedule,
                format!("\"{s}\" is not a schedule mirrorctl understands"),
                SHAPE,
            );
            return None;
        };
        let (hour, minute) = (h.parse::<u8>().ok()?, m.parse::<u8>().ok()?);
        if hour > 23 || minute > 59 {
            self.push(
                value.span(),
                KEY,
                ErrorKind::BadSchedule,
                format!("{h}:{m} is not a time of day: hours run from 00 to 23, minutes from 00 to 59"),
                SHAPE,
            );
            return None;
        }
        let zone = parts[2];
        if zone != "UTC" && jiff::tz::db().get(zone).is_err() {
            let names: Vec<String> = jiff::tz::db().available().map(|n| n.as_str().to_owned()).collect();
            let near = closest(zone, names.iter().map(String::as_str));
            let hint = match near {
                Some(n) => format!("did you mean \"{n}\"?"),
                None => "use an IANA time zone name such as \"Asia/Tokyo\", or \"UTC\"".to_owned(),
            };
            self.push(
                value.span(),
                KEY,
                ErrorKind::UnknownTimeZone,
                format!("\"{zone}\" is not a time zone of the IANA database"),
                hint,
            );
            return None;
        }
        Some(Schedule { hour, minute, time_zone: zone.to_owned() })
    }

    pub(super) fn restore(&mut self, raw: &RawRestore) -> Option<RestoreSpec> {
        const T: (&str, usize) = ("restore", 0);
        let snapshot = self
            .required(
                raw.snapshot.as_ref(),
                T,
                "restore.snapshot",
                "add snapshot = \"snap-...\", the EBS snapshot to restore both servers from",
            )
            .and_then(|v| {
                self.id(
                    v,
                    "restore.snapshot",
                    SnapshotId::parse,
                    "copy the snapshot id from `mirrorctl status` or the EC2 console, e.g. \"snap-0123456789abcdef0\"",
                )
            });
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
        Some(RestoreSpec {
            snapshot: snapshot?,
            request: request?,
            verify_failover: raw.verify_failover.unwrap_or(true),
            allow_foreign_snapshot: raw.allow_foreign_snapshot.unwrap_or(false),
        })
    }
}
