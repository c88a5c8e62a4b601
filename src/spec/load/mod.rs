//! Loading a desired-state file: TOML text → [`Spec`], or every mistake in it.
//!
//! Why this module exists: this is the one door through which an operator's intent enters
//! mirrorctl. It parses the text into the loose shapes of `raw` (spans kept), then converts them
//! into the validated [`Spec`] types, gathering *all* semantic mistakes of the file instead of
//! stopping at the first, each located at the offending value with a hint. Errors from the TOML
//! parser itself (bad syntax, unknown key, wrong value type) stop parsing, so there is at most one
//! of those per run.
//!
//! Decisions written down here: defaults are filled in (`access = "ssm"`, `resource = "md"`,
//! `group = "failover"`, volume type gp3, `keep = 7`, `verify_failover = true`); the cluster's
//! name must equal the file's stem so that two files can never describe one cluster; Windows drive
//! letters are accepted in either case and stored upper case.
//!
//! This file holds the entry points, the parser's own errors and the [`Checker`] core; the checks
//! of each table live beside it, one file each: `cluster`, `api`, `servers`, `mirror`,
//! `operations` (`[backup]`, `[restore]`), `notify`.

use std::fmt::Write as _;
use std::ops::Range;
use std::path::Path;

use super::error::{ErrorKind, Source, SpecError, SpecErrors};
use super::raw::{RawFile, S};
use super::types::{Os, Spec, VolumeType};
use crate::ids::IdError;

mod api;
mod cluster;
mod mirror;
mod notify;
mod operations;
pub(crate) use operations::parse_cron;
mod servers;

/// Reads and checks the desired-state file at `path`. A file that cannot be read is reported as
/// one [`SpecError`] of kind [`ErrorKind::Io`] at line 0.
pub fn load_file(path: &Path) -> Result<Spec, SpecErrors> {
    match std::fs::read_to_string(path) {
        Ok(text) => load_str(path, &text),
        Err(e) => Err(SpecErrors(vec![io_error(path, &e)])),
    }
}

/// Parses and checks `text` as the content of the desired-state file `path` (the path is used in
/// messages and for the file-name check; nothing is read from disk).
pub fn load_str(path: &Path, text: &str) -> Result<Spec, SpecErrors> {
    load_located(path, text).map(|(spec, _)| spec)
}

/// Checks the `[notify]` table of `text`, the content of another file than a desired-state one
/// (the daemon's settings file, `path`, whose `[notify]` is the default of every cluster whose
/// file has none): the same keys, rules and errors as a desired-state file's `[notify]`, located
/// in `path`. The other keys of `text` are not looked at. `Ok(None)` when there is no `[notify]`.
pub fn load_notify(path: &Path, text: &str) -> Result<Option<super::types::NotifySpec>, SpecErrors> {
    #[derive(serde::Deserialize)]
    struct NotifyOnly {
        notify: Option<super::raw::RawNotify>,
    }
    let source = Source::new(path.to_path_buf(), text);
    let raw: NotifyOnly = match serde_path_to_error::deserialize(toml::Deserializer::new(text)) {
        Ok(raw) => raw,
        Err(e) => return Err(SpecErrors(vec![parser_error(&source, &e)])),
    };
    let Some(raw) = raw.notify else { return Ok(None) };
    let mut checker = Checker { source: &source, errors: Vec::new() };
    match checker.notify(&raw) {
        Some(n) if checker.errors.is_empty() => Ok(Some(n)),
        _ => Err(SpecErrors(checker.errors)),
    }
}

/// The error for a file that cannot be read.
pub(crate) fn io_error(path: &Path, e: &std::io::Error) -> SpecError {
    SpecError {
        file: path.to_path_buf(),
        line: 0,
        column: 0,
        key: String::new(),
        kind: ErrorKind::Io,
        message: format!("cannot read the file: {e}"),
        hint: Some("check the path and that mirrorctl's user may read the file".to_owned()),
        source_line: None,
        width: 0,
    }
}

/// Like [`load_str`], also returning the span of `cluster.name` (for cross-file checks).
pub(crate) fn load_located(path: &Path, text: &str) -> Result<(Spec, Range<usize>), SpecErrors> {
    let source = Source::new(path.to_path_buf(), text);
    let raw: RawFile = match serde_path_to_error::deserialize(toml::Deserializer::new(text)) {
        Ok(raw) => raw,
        Err(e) => return Err(SpecErrors(vec![parser_error(&source, &e)])),
    };
    let mut checker = Checker { source: &source, errors: Vec::new() };
    let built = checker.file(&raw);
    match built {
        Some(found) if checker.errors.is_empty() => Ok(found),
        _ => Err(SpecErrors(checker.errors)),
    }
}

/// Turns a TOML parser error into a located error with a hint.
pub(crate) fn parser_error(source: &Source<'_>, e: &serde_path_to_error::Error<toml::de::Error>) -> SpecError {
    let key = key_path(e.path());
    let inner = e.inner();
    let message = inner.message().trim().to_owned();
    let span = inner.span().unwrap_or(0..0);
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default().to_owned();
        let valid: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        let full_key = if key.is_empty() || key.ends_with(&field) {
            if key.is_empty() { field.clone() } else { key.clone() }
        } else {
            format!("{key}.{field}")
        };
        let table = full_key
            .strip_suffix(&field)
            .map(|t| t.trim_end_matches('.'))
            .filter(|t| !t.is_empty())
            .map_or_else(|| "the top level of the file".to_owned(), |t| format!("`{t}`"));
        let hint = match closest(&field, valid.iter().copied()) {
            Some(near) => format!("did you mean `{near}`?"),
            None if valid.is_empty() => "remove this key".to_owned(),
            None => format!("valid keys here are {}", quote_list(&valid, '`')),
        };
        return source.error(
            span,
            full_key,
            ErrorKind::UnknownKey,
            format!("unknown key `{field}` in {table}"),
            Some(hint),
        );
    }
    if message.starts_with("invalid type") || message.starts_with("invalid value") {
        let hint = if message.contains("expected a string") {
            "write the value as a string in double quotes"
        } else if message.contains("expected i64") {
            "write the value as a whole number without quotes"
        } else if message.contains("expected a boolean") {
            "write true or false without quotes"
        } else if message.contains("expected a sequence") {
            "write a list in brackets, e.g. [\"a\", \"b\"]"
        } else {
            "see desired-state/README.md for the type of each key"
        };
        let message = message.replace("expected i64", "expected an integer").replace("struct Raw", "table ");
        return source.error(span, key, ErrorKind::WrongType, message, Some(hint.to_owned()));
    }
    if message.starts_with("missing field") {
        return source.error(
            span,
            key,
            ErrorKind::MissingKey,
            message,
            Some("add the key; see desired-state/README.md".to_owned()),
        );
    }
    let hint = if message.contains("duplicate key") {
        "each key may appear only once in a table; remove or rename one of them"
    } else {
        "fix the TOML syntax at this position (strings in double quotes, one `key = value` per line)"
    };
    source.error(span, key, ErrorKind::Syntax, message, Some(hint.to_owned()))
}

/// A serde path as a dotted key path (`cluster.server[1].zone`), without `serde_spanned`'s
/// internal field names.
fn key_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => {
                let _ = write!(out, "[{index}]");
            }
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if key.starts_with("$__serde_spanned") {
                    continue;
                }
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {}
        }
    }
    out
}

/// `a`, `b` and `c` (with `quote` around each item).
fn quote_list(items: &[&str], quote: char) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("{quote}{i}{quote}")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// The candidate closest to `word` by edit distance, if within 2 edits.
pub(crate) fn closest<'a>(word: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|c| (edit_distance(&word.to_ascii_lowercase(), &c.to_ascii_lowercase()), c))
        .filter(|(d, _)| *d <= 2)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Levenshtein distance over characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut previous: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut current = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let substitute = previous[j] + usize::from(ca != *cb);
            current.push(substitute.min(previous[j + 1] + 1).min(current[j] + 1));
        }
        previous = current;
    }
    previous[b.len()]
}

const VOLUME_TYPES: [(&str, VolumeType); 7] = [
    ("gp3", VolumeType::Gp3),
    ("gp2", VolumeType::Gp2),
    ("io1", VolumeType::Io1),
    ("io2", VolumeType::Io2),
    ("st1", VolumeType::St1),
    ("sc1", VolumeType::Sc1),
    ("standard", VolumeType::Standard),
];

/// Gathers errors while converting the raw file into a [`Spec`].
struct Checker<'s, 'a> {
    source: &'s Source<'a>,
    errors: Vec<SpecError>,
}

impl Checker<'_, '_> {
    fn push(
        &mut self,
        span: Range<usize>,
        key: &str,
        kind: ErrorKind,
        message: impl Into<String>,
        hint: impl Into<String>,
    ) {
        let e = self.source.error(span, key, kind, message, Some(hint.into()));
        self.errors.push(e);
    }

    /// A required key `key` (full path) is absent; the error points at the header of `table`
    /// (its `nth` occurrence for arrays of tables), or at the start of the file.
    fn missing(&mut self, table: &str, nth: usize, key: &str, hint: impl Into<String>) {
        let span = self.source.header(table, nth);
        let message = match key.rsplit_once('.') {
            Some((parent, leaf)) => format!("required key `{leaf}` is missing from `{parent}`"),
            None => format!("required table [{key}] is missing from the file"),
        };
        self.push(span, key, ErrorKind::MissingKey, message, hint);
    }

    /// A required string value, or a "missing" error.
    fn required<'v>(
        &mut self,
        value: Option<&'v S<String>>,
        table: (&str, usize),
        key: &str,
        hint: &str,
    ) -> Option<&'v S<String>> {
        if value.is_none() {
            self.missing(table.0, table.1, key, hint);
        }
        value
    }

    /// Parses an id with its validating constructor; a failure becomes an `invalid-id` error.
    fn id<T>(&mut self, value: &S<String>, key: &str, parse: fn(&str) -> Result<T, IdError>, hint: &str) -> Option<T> {
        match parse(value.get_ref()) {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(value.span(), key, ErrorKind::InvalidId, e.0, hint);
                None
            }
        }
    }

    /// A non-empty string.
    fn non_empty(&mut self, value: &S<String>, key: &str, hint: &str) -> Option<String> {
        if value.get_ref().trim().is_empty() {
            self.push(value.span(), key, ErrorKind::EmptyValue, format!("`{key}` is empty"), hint);
            None
        } else {
            Some(value.get_ref().clone())
        }
    }

    fn file(&mut self, raw: &RawFile) -> Option<(Spec, Range<usize>)> {
        // The OS decides how partitions are checked; take it even if the rest of [cluster] fails,
        // so that partition mistakes are reported in the same run.
        let os = raw.cluster.as_ref().and_then(|c| c.os.as_ref()).and_then(|v| match v.get_ref().as_str() {
            "windows" => Some(Os::Windows),
            "linux" => Some(Os::Linux),
            _ => None,
        });
        let cluster = if let Some(c) = &raw.cluster {
            self.cluster(c)
        } else {
            self.missing(
                "",
                0,
                "cluster",
                "add a [cluster] table with name, region, os and two [[cluster.server]] tables",
            );
            None
        };
        let mirror = if let Some(m) = &raw.mirror {
            self.mirrors(m, os)
        } else {
            self.missing("", 0, "mirror", "add a [mirror] table with device, cluster_partition and data_partition");
            None
        };
        let home = cluster.as_ref().map(|(c, _)| c.region.clone());
        let backup = raw.backup.as_ref().map(|b| self.backup(b, home.as_ref()));
        let restore = raw.restore.as_ref().map(|r| self.restore(r));
        let (notify, notify_off) = match raw.notify.as_ref() {
            None => (None, false),
            Some(entry) => match entry.get_ref() {
                super::raw::RawNotifyEntry::Table(t) => (Some(self.notify(t)), false),
                super::raw::RawNotifyEntry::Flag(false) => (None, true),
                super::raw::RawNotifyEntry::Flag(true) => {
                    self.push(
                        entry.span(),
                        "notify",
                        ErrorKind::NotifyNoDestination,
                        "notify = true names no destination",
                        "write a [notify] table with sns_topic and/or webhook, leave notify out to use the daemon's \
                         default [notify], or write notify = false (at the top of the file) to send no notices at all",
                    );
                    (Some(None), false)
                }
            },
        };
        let (cluster, name_span) = cluster?;
        let backup = match backup {
            Some(b) => Some(b?),
            None => None,
        };
        let (restore, restore_backup) = match restore {
            Some(r) => r?,
            None => (None, None),
        };
        let (mirror, more_mirrors) = mirror?;
        let notify = match notify {
            Some(n) => Some(n?),
            None => None,
        };
        let spec = Spec {
            source: self.source.file.clone(),
            cluster,
            mirror,
            more_mirrors,
            backup,
            restore,
            restore_backup,
            notify,
            notify_off,
        };
        Some((spec, name_span))
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::super::types::{Access, ApiSpec, ApiTls, Every, Partition, Schedule, SecretRef, VolumeSpec};
    use super::*;

    fn example(name: &str) -> Spec {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("desired-state").join(name);
        match load_file(&path) {
            Ok(spec) => spec,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn prod_db_example_matches_the_runbook_cluster() {
        let spec = example("prod-db.toml");
        let c = &spec.cluster;
        assert_eq!(c.name.as_str(), "prod-db");
        assert_eq!(c.region.as_str(), "ap-northeast-1");
        assert_eq!(c.os, Os::Windows);
        assert_eq!(c.access, Access::Ssm);
        assert_eq!(c.api, None);
        assert_eq!(c.servers[0].name.as_str(), "server1");
        assert_eq!(c.servers[0].instance.as_str(), "i-0123456789abcdef0");
        assert_eq!(c.servers[0].zone.as_str(), "ap-northeast-1a");
        assert_eq!(c.servers[1].name.as_str(), "server2");
        assert_eq!(c.servers[1].instance.as_str(), "i-0fedcba9876543210");
        assert_eq!(c.servers[1].zone.as_str(), "ap-northeast-1c");
        let m = &spec.mirror;
        assert_eq!(m.resource.as_str(), "md");
        assert_eq!(m.group.as_str(), "failover");
        assert_eq!(m.device.api_name(), "/dev/sdx");
        assert_eq!(m.cluster_partition, Partition::Letter('R'));
        assert_eq!(m.data_partition, Partition::Letter('M'));
        assert_eq!(m.volume, VolumeSpec::default());
        let b = spec.backup.as_ref().expect("backup");
        assert_eq!(
            b.schedules[0].every,
            Every::Daily(Schedule { hour: 2, minute: 0, time_zone: "Asia/Tokyo".to_owned() })
        );
        assert_eq!(
            (b.schedules.len(), b.schedules[0].name.as_str(), b.schedules[0].own_retention),
            (1, "daily", false)
        );
        assert_eq!(b.keep, 7);
        assert!(b.take.is_empty());
        assert_eq!(spec.restore, None);
    }

    #[test]
    fn app_linux_example_loads_with_defaults() {
        let spec = example("app-linux.toml");
        let c = &spec.cluster;
        assert_eq!(c.name.as_str(), "app-linux");
        assert_eq!(c.os, Os::Linux);
        assert_eq!(c.access, Access::Ssm);
        assert_eq!(c.servers[0].name.as_str(), "node1");
        assert_eq!(c.servers[0].instance.as_str(), "i-0aaaaaaaaaaaaaaaa");
        assert_eq!(c.servers[1].name.as_str(), "node2");
        assert_eq!(c.servers[1].zone.as_str(), "ap-northeast-1c");
        let m = &spec.mirror;
        assert_eq!(m.resource.as_str(), "md1");
        assert_eq!(m.group.as_str(), "failover1");
        assert_eq!(m.device.api_name(), "/dev/sdb");
        assert_eq!(m.cluster_partition, Partition::Device("/dev/xvdb1".to_owned()));
        assert_eq!(m.data_partition, Partition::Device("/dev/xvdb2".to_owned()));
        assert_eq!(m.volume.volume_type, VolumeType::Gp3);
        let b = spec.backup.as_ref().expect("backup");
        assert!(b.schedules.is_empty());
        assert_eq!(b.keep, 3);
        assert_eq!(b.take.len(), 1);
        assert_eq!(b.take[0].as_str(), "before-upgrade-2026-11");
    }

    #[test]
    fn every_optional_key_is_read() {
        let text = r#"
[cluster]
name = "full"
region = "us-east-1"
os = "windows"
access = "local"
api = { url = "http://10.0.0.5:29009", user = "admin", password_secret = "arn:aws:secretsmanager:us-east-1:1:secret:clp" }
[[cluster.server]]
name = "a"
instance = "i-0123456789abcdef0"
zone = "us-east-1a"
[[cluster.server]]
name = "b"
instance = "i-01234567"
zone = "us-east-1b"
[mirror]
device = "xvdf"
cluster_partition = "r:"
data_partition = "Z:"
volume = { type = "io2", iops = 16000, kms_key = "alias/mirror", initialization_rate = 300, fast_restore = true }
[backup]
schedule = "daily 23:59 UTC"
[restore]
snapshot = "snap-0123456789abcdef0"
request = "r1"
verify_failover = false
allow_foreign_snapshot = true
"#;
        let spec = match load_str(Path::new("x/full.toml"), text) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(spec.source, PathBuf::from("x/full.toml"));
        assert_eq!(spec.cluster.access, Access::Local);
        let api = spec.cluster.api.as_ref().expect("api");
        assert_eq!(api.urls, ["http://10.0.0.5:29009"]);
        assert_eq!(
            api.password,
            SecretRef::SecretsManager {
                id: "arn:aws:secretsmanager:us-east-1:1:secret:clp".to_owned(),
                json_key: None
            }
        );
        assert_eq!(api.tls, ApiTls::System);
        assert_eq!(api.request_timeout_s, ApiSpec::DEFAULT_REQUEST_TIMEOUT_S);
        assert_eq!(api.operation_timeout_s, ApiSpec::DEFAULT_OPERATION_TIMEOUT_S);
        assert_eq!(spec.mirror.resource.as_str(), "md");
        assert_eq!(spec.mirror.group.as_str(), "failover");
        assert_eq!(spec.mirror.cluster_partition, Partition::Letter('R'));
        let v = &spec.mirror.volume;
        assert_eq!(v.volume_type, VolumeType::Io2);
        assert_eq!(v.iops, Some(16000));
        assert_eq!(v.throughput, None);
        assert_eq!(v.kms_key.as_deref(), Some("alias/mirror"));
        assert_eq!(v.initialization_rate, Some(300));
        assert!(v.fast_restore);
        let b = spec.backup.as_ref().expect("backup");
        assert_eq!(b.keep, 7);
        assert!(matches!(&b.schedules[0].every, Every::Daily(s) if (s.hour, s.minute) == (23, 59)));
        let r = spec.restore.as_ref().expect("restore");
        assert_eq!(r.request.as_str(), "r1");
        assert!(!r.verify_failover);
        assert!(r.allow_foreign_snapshot);
    }

    #[test]
    fn api_with_every_key() {
        let text = r#"
[cluster]
name = "api"
region = "us-east-1"
os = "linux"
api = { urls = ["https://10.0.0.5:29009/", "https://10.0.1.5:29009"], user = "root", password_secret = "clp", password_secret_key = "password", ca_bundle = "/etc/mirrorctl/clp-ca.pem", request_timeout_s = 5, operation_timeout_s = 1200 }
[[cluster.server]]
name = "a"
instance = "i-0123456789abcdef0"
zone = "us-east-1a"
[[cluster.server]]
name = "b"
instance = "i-01234567"
zone = "us-east-1b"
[mirror]
device = "xvdf"
cluster_partition = "/dev/xvdf1"
data_partition = "/dev/xvdf2"
"#;
        let spec = match load_str(Path::new("x/api.toml"), text) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        };
        let api = spec.cluster.api.expect("api");
        assert_eq!(api.urls, ["https://10.0.0.5:29009", "https://10.0.1.5:29009"]);
        assert_eq!(
            api.password,
            SecretRef::SecretsManager { id: "clp".to_owned(), json_key: Some("password".to_owned()) }
        );
        assert_eq!(api.password.to_string(), "key \"password\" of AWS Secrets Manager secret clp");
        assert_eq!(api.tls, ApiTls::CaBundle(PathBuf::from("/etc/mirrorctl/clp-ca.pem")));
        assert_eq!((api.request_timeout_s, api.operation_timeout_s), (5, 1200));
        let insecure = text.replace("ca_bundle = \"/etc/mirrorctl/clp-ca.pem\"", "insecure = true");
        let spec = load_str(Path::new("x/api.toml"), &insecure).expect("insecure loads");
        assert_eq!(spec.cluster.api.expect("api").tls, ApiTls::Insecure);
    }

    #[test]
    fn edit_distance_and_closest() {
        assert_eq!(edit_distance("regoin", "region"), 2);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(closest("iop", ["iops", "type"].into_iter()), Some("iops"));
        assert_eq!(closest("az", ["name", "instance", "zone"].into_iter()), None);
    }
}
