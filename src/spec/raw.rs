//! The file as TOML sees it, before any meaning is checked.
//!
//! Why this module exists: serde can only tell "is this TOML of the right shape"; the checks that
//! need several keys at once (zones inside the region, two distinct servers, partitions that fit
//! the OS) run afterwards in `load`, and they need the source span of each value to point at it.
//! So every key is optional here (a missing key is reported by `load` with a hint, together with
//! every other mistake), strings are kept as strings (so their messages are ours, not serde's),
//! and unknown keys are refused (`deny_unknown_fields`).

use serde::Deserialize;
use serde_spanned::Spanned;

/// A value with its byte span in the file.
pub(crate) type S<T> = Spanned<T>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawFile {
    pub(crate) cluster: Option<RawCluster>,
    pub(crate) mirror: Option<RawMirrors>,
    pub(crate) backup: Option<RawBackup>,
    pub(crate) restore: Option<RawRestore>,
    pub(crate) notify: Option<S<RawNotifyEntry>>,
}

/// `[cluster]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCluster {
    pub(crate) name: Option<S<String>>,
    pub(crate) region: Option<S<String>>,
    pub(crate) os: Option<S<String>>,
    pub(crate) access: Option<S<String>>,
    pub(crate) install_dir: Option<S<String>>,
    pub(crate) procedure: Option<S<String>>,
    pub(crate) role_arn: Option<S<String>>,
    pub(crate) external_id: Option<S<String>>,
    pub(crate) api: Option<RawApi>,
    pub(crate) server: Option<Vec<RawServer>>,
}

/// `cluster.api`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawApi {
    pub(crate) url: Option<S<String>>,
    pub(crate) urls: Option<S<Vec<S<String>>>>,
    pub(crate) user: Option<S<String>>,
    pub(crate) password_env: Option<S<String>>,
    pub(crate) password_file: Option<S<String>>,
    pub(crate) password_secret: Option<S<String>>,
    pub(crate) password_secret_key: Option<S<String>>,
    pub(crate) ca_bundle: Option<S<String>>,
    pub(crate) insecure: Option<S<bool>>,
    pub(crate) request_timeout_s: Option<S<i64>>,
    pub(crate) operation_timeout_s: Option<S<i64>>,
    /// Accepted by the parser only so that it can be refused with a message about secrets.
    pub(crate) password: Option<S<toml::Value>>,
}

/// `[[cluster.server]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawServer {
    pub(crate) name: Option<S<String>>,
    pub(crate) instance: Option<S<String>>,
    pub(crate) zone: Option<S<String>>,
}

/// `[mirror]` (one md resource) or `[[mirror]]` (one entry per md resource).
#[derive(Debug)]
pub(crate) enum RawMirrors {
    /// A `[mirror]` table.
    One(Box<RawMirror>),
    /// `[[mirror]]` entries, in file order.
    Many(Vec<RawMirror>),
}

impl<'de> Deserialize<'de> for RawMirrors {
    /// A table or an array of tables; each entry keeps serde's own messages (unknown key, wrong
    /// type) and spans, which an untagged enum would replace with "did not match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawMirrors;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [mirror] table or [[mirror]] tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawMirrors, A::Error> {
                RawMirror::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|m| RawMirrors::One(Box::new(m)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, seq: A) -> Result<RawMirrors, A::Error> {
                Vec::deserialize(serde::de::value::SeqAccessDeserializer::new(seq)).map(RawMirrors::Many)
            }
        }
        d.deserialize_any(V)
    }
}

/// One `[mirror]` table or `[[mirror]]` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawMirror {
    pub(crate) resource: Option<S<String>>,
    pub(crate) group: Option<S<String>>,
    pub(crate) device: Option<S<String>>,
    pub(crate) cluster_device: Option<S<String>>,
    pub(crate) cluster_partition: Option<S<String>>,
    pub(crate) data_partition: Option<S<String>>,
    pub(crate) volume: Option<RawVolume>,
}

/// `mirror.volume`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawVolume {
    #[serde(rename = "type")]
    pub(crate) volume_type: Option<S<String>>,
    pub(crate) iops: Option<S<i64>>,
    pub(crate) throughput: Option<S<i64>>,
    pub(crate) kms_key: Option<S<String>>,
    pub(crate) initialization_rate: Option<S<i64>>,
    pub(crate) fast_restore: Option<bool>,
}

/// `[backup]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawBackup {
    pub(crate) schedule: Option<S<RawSchedules>>,
    pub(crate) copy_to: Option<S<Vec<RawCopy>>>,
    pub(crate) keep: Option<S<i64>>,
    pub(crate) take: Option<Vec<S<String>>>,
}

/// `backup.schedule`: one string (`schedule = "daily 02:00 Asia/Tokyo"`) or `[[backup.schedule]]`
/// tables. Written by hand because an untagged enum would lose the spans inside the tables.
#[derive(Debug)]
pub(crate) enum RawSchedules {
    /// The single-schedule form.
    One(String),
    /// The tables, in file order.
    Many(Vec<RawSchedule>),
}

impl<'de> Deserialize<'de> for RawSchedules {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawSchedules;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a schedule string or [[backup.schedule]] tables")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<RawSchedules, E> {
                Ok(RawSchedules::One(v.to_owned()))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<RawSchedules, A::Error> {
                let mut all = Vec::new();
                while let Some(s) = seq.next_element::<RawSchedule>()? {
                    all.push(s);
                }
                Ok(RawSchedules::Many(all))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[[backup.schedule]]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSchedule {
    pub(crate) name: Option<S<String>>,
    pub(crate) every: Option<S<String>>,
    pub(crate) cron: Option<S<String>>,
    pub(crate) zone: Option<S<String>>,
    pub(crate) keep: Option<S<i64>>,
    pub(crate) keep_days: Option<S<i64>>,
}

/// One `backup.copy_to` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawCopy {
    pub(crate) region: Option<S<String>>,
    pub(crate) keep: Option<S<i64>>,
    pub(crate) kms_key: Option<S<String>>,
}

/// `[restore]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawRestore {
    pub(crate) snapshot: Option<S<String>>,
    pub(crate) backup: Option<S<String>>,
    pub(crate) request: Option<S<String>>,
    pub(crate) verify_failover: Option<bool>,
    pub(crate) allow_foreign_snapshot: Option<bool>,
}

/// `[notify]`, or `notify = false` (no notices, not even the daemon's default).
#[derive(Debug)]
pub(crate) enum RawNotifyEntry {
    /// A `[notify]` table.
    Table(Box<RawNotify>),
    /// `notify = true` or `notify = false`.
    Flag(bool),
}

impl<'de> Deserialize<'de> for RawNotifyEntry {
    /// A table or a boolean; the table keeps serde's own messages (unknown key, wrong type), which
    /// an untagged enum would replace with "did not match any variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = RawNotifyEntry;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [notify] table or notify = false")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<RawNotifyEntry, A::Error> {
                RawNotify::deserialize(serde::de::value::MapAccessDeserializer::new(map))
                    .map(|t| RawNotifyEntry::Table(Box::new(t)))
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<RawNotifyEntry, E> {
                Ok(RawNotifyEntry::Flag(v))
            }
        }
        d.deserialize_any(V)
    }
}

/// `[notify]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawNotify {
    pub(crate) sns_topic: Option<S<String>>,
    pub(crate) webhook: Option<S<RawWebhook>>,
    pub(crate) events: Option<S<Vec<S<String>>>>,
}

/// `notify.webhook`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawWebhook {
    pub(crate) url: Option<S<String>>,
    pub(crate) secret_env: Option<S<String>>,
    pub(crate) secret_file: Option<S<String>>,
    pub(crate) secret_id: Option<S<String>>,
    pub(crate) secret_key: Option<S<String>>,
}
