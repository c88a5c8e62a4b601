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

use std::collections::HashMap;
use std::fmt::Write as _;
use std::ops::Range;
use std::path::{Path, PathBuf};

use super::error::{ErrorKind, Source, SpecError, SpecErrors};
use super::raw::{RawApi, RawBackup, RawCluster, RawFile, RawMirror, RawRestore, RawServer, RawVolume, S};
use super::types::{
    Access, ApiSpec, ApiTls, BackupSpec, ClusterSpec, MirrorSpec, Os, Partition, ProcedureChoice, RestoreSpec,
    Schedule, SecretRef, ServerSpec, Spec, VolumeSpec, VolumeType,
};
use crate::ids::{
    BackupName, ClusterName, DeviceName, GroupName, IdError, InstanceId, Region, RequestName, ResourceName, ServerName,
    SnapshotId, Zone,
};

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
            self.mirror(m, os)
        } else {
            self.missing("", 0, "mirror", "add a [mirror] table with device, cluster_partition and data_partition");
            None
        };
        let backup = raw.backup.as_ref().map(|b| self.backup(b));
        let restore = raw.restore.as_ref().map(|r| self.restore(r));
        let (cluster, name_span) = cluster?;
        let backup = match backup {
            Some(b) => Some(b?),
            None => None,
        };
        let restore = match restore {
            Some(r) => Some(r?),
            None => None,
        };
        let spec = Spec { source: self.source.file.clone(), cluster, mirror: mirror?, backup, restore };
        Some((spec, name_span))
    }

    fn cluster(&mut self, raw: &RawCluster) -> Option<(ClusterSpec, Range<usize>)> {
        const T: (&str, usize) = ("cluster", 0);
        let name_raw = self.required(
            raw.name.as_ref(),
            T,
            "cluster.name",
            "add name = \"<cluster name>\", the same as the file name without .toml",
        );
        let name = name_raw.and_then(|v| {
            self.id(
                v,
                "cluster.name",
                ClusterName::parse,
                "name the cluster like its file, e.g. name = \"prod-db\" in prod-db.toml",
            )
        });
        if let (Some(n), Some(v)) = (&name, name_raw) {
            self.file_stem(n, v);
        }
        let region = self
            .required(
                raw.region.as_ref(),
                T,
                "cluster.region",
                "add region = \"<AWS region of both servers>\", e.g. region = \"ap-northeast-1\"",
            )
            .and_then(|v| {
                self.id(
                    v,
                    "cluster.region",
                    Region::parse,
                    "write the region both servers run in, e.g. \"ap-northeast-1\"",
                )
            });
        let os = self
            .required(
                raw.os.as_ref(),
                T,
                "cluster.os",
                "add os = \"windows\" or os = \"linux\": it decides the disk commands and how partitions are named",
            )
            .and_then(|v| self.os(v));
        let access = raw.access.as_ref().map_or(Some(Access::Ssm), |v| self.access(v));
        let procedure = raw.procedure.as_ref().map_or(Some(ProcedureChoice::Auto), |v| self.procedure(v));
        let install_dir = match (&raw.install_dir, os) {
            (None, _) => Some(None),
            (Some(v), Some(os)) => self.install_dir(v, os).map(Some),
            // The OS is wrong: its own error says so.
            (Some(_), None) => None,
        };
        let api = raw.api.as_ref().map(|a| self.api(a));
        let servers = self.servers(raw.server.as_deref(), region.as_ref());
        let api = match api {
            Some(a) => Some(a?),
            None => None,
        };
        let spec = ClusterSpec {
            name: name?,
            region: region?,
            os: os?,
            access: access?,
            api,
            install_dir: install_dir?,
            servers: servers?,
            procedure: procedure?,
        };
        Some((spec, name_raw?.span()))
    }

    fn file_stem(&mut self, name: &ClusterName, value: &S<String>) {
        let stem = self.source.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if stem != name.as_str() {
            self.push(
                value.span(),
                "cluster.name",
                ErrorKind::NameNotFileStem,
                format!(
                    "cluster name \"{name}\" differs from the file name \"{}\"",
                    self.source
                        .file
                        .file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
                format!(
                    "rename the file to \"{name}.toml\" or set name = \"{stem}\": each cluster has exactly one file named after it, because two files for one cluster would fight over its disks"
                ),
            );
        }
    }

    fn os(&mut self, value: &S<String>) -> Option<Os> {
        match value.get_ref().as_str() {
            "windows" => Some(Os::Windows),
            "linux" => Some(Os::Linux),
            other => {
                self.push(
                    value.span(),
                    "cluster.os",
                    ErrorKind::UnknownOs,
                    format!("\"{other}\" is not a supported operating system"),
                    "write os = \"windows\" or os = \"linux\"",
                );
                None
            }
        }
    }

    /// `cluster.install_dir`: an absolute directory in the path syntax of `os` (Windows `X:\…`,
    /// Linux `/…`), without control characters.
    fn install_dir(&mut self, value: &S<String>, os: Os) -> Option<String> {
        const KEY: &str = "cluster.install_dir";
        let v = value.get_ref();
        let example = match os {
            Os::Windows => "install_dir = 'C:\\Program Files\\EXPRESSCLUSTER\\bin' (TOML literal string)",
            Os::Linux => "install_dir = \"/opt/nec/clusterpro/bin\"",
        };
        if v.trim().is_empty() {
            self.push(
                value.span(),
                KEY,
                ErrorKind::EmptyValue,
                "install_dir is empty",
                format!("remove the key to let mirrorctl find the commands, or write e.g. {example}"),
            );
            return None;
        }
        let absolute = match os {
            Os::Windows => {
                let b = v.as_bytes();
                b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\' && !v.contains('/')
            }
            Os::Linux => v.starts_with('/'),
        };
        let problem = if v.chars().any(char::is_control) {
            Some("holds a control character")
        } else if !absolute {
            Some(match os {
                Os::Windows => "is not an absolute Windows path such as C:\\Program Files\\CLUSTERPRO\\bin",
                Os::Linux => "is not an absolute path",
            })
        } else {
            None
        };
        if let Some(why) = problem {
            self.push(
                value.span(),
                KEY,
                ErrorKind::InstallDir,
                format!("install_dir {v:?} {why}"),
                format!("write the directory holding clpstat and the other clp commands, e.g. {example}"),
            );
            return None;
        }
        Some(v.clone())
    }

    fn access(&mut self, value: &S<String>) -> Option<Access> {
        match value.get_ref().as_str() {
            "ssm" => Some(Access::Ssm),
            "local" => Some(Access::Local),
            other => {
                self.push(
                    value.span(),
                    "cluster.access",
                    ErrorKind::UnknownAccess,
                    format!("\"{other}\" is not a way to run commands on the nodes"),
                    "write access = \"ssm\" (AWS Systems Manager, the default) or access = \"local\" (mirrorctl runs on a node)",
                );
                None
            }
        }
    }

    fn procedure(&mut self, value: &S<String>) -> Option<ProcedureChoice> {
        match value.get_ref().as_str() {
            "auto" => Some(ProcedureChoice::Auto),
            "vendor" => Some(ProcedureChoice::Vendor),
            "reconfigure" => Some(ProcedureChoice::Reconfigure),
            other => {
                self.push(
                    value.span(),
                    "cluster.procedure",
                    ErrorKind::UnknownProcedure,
                    format!("\"{other}\" is not a backup/restore procedure"),
                    "write procedure = \"auto\" (the default: NEC's clpbackup/clprestore on X 4.3 and later, the \
                     configuration edit below), \"vendor\" or \"reconfigure\"",
                );
                None
            }
        }
    }

    fn api(&mut self, raw: &RawApi) -> Option<ApiSpec> {
        const T: (&str, usize) = ("cluster.api", 0);
        let urls = self.api_urls(raw);
        let user = self
            .required(raw.user.as_ref(), T, "cluster.api.user", "add user = \"<OS user for the CLUSTERPRO API>\"")
            .and_then(|v| self.non_empty(v, "cluster.api.user", "write the OS user the CLUSTERPRO API authenticates"));
        let password = self.password(raw);
        let tls = self.api_tls(raw, urls.as_deref());
        let request_timeout_s = match &raw.request_timeout_s {
            None => Some(ApiSpec::DEFAULT_REQUEST_TIMEOUT_S),
            Some(v) => self.range(
                v,
                "cluster.api.request_timeout_s",
                (1, 300),
                ErrorKind::ApiTimeoutOutOfRange,
                "seconds for one HTTP request",
            ),
        };
        let operation_timeout_s = match &raw.operation_timeout_s {
            None => Some(ApiSpec::DEFAULT_OPERATION_TIMEOUT_S),
            Some(v) => self.range(
                v,
                "cluster.api.operation_timeout_s",
                (10, 86_400),
                ErrorKind::ApiTimeoutOutOfRange,
                "seconds for one cluster operation",
            ),
        };
        Some(ApiSpec {
            urls: urls?,
            user: user?,
            password: password?,
            tls: tls?,
            request_timeout_s: request_timeout_s?,
            operation_timeout_s: operation_timeout_s?,
        })
    }

    /// `url` or `urls`: at least one http(s) URL, none twice.
    fn api_urls(&mut self, raw: &RawApi) -> Option<Vec<String>> {
        let given: Vec<(String, &S<String>)> = match (&raw.url, &raw.urls) {
            (Some(_), Some(list)) => {
                self.push(
                    list.span(),
                    "cluster.api.urls",
                    ErrorKind::ApiEndpoints,
                    "both `url` and `urls` are given",
                    "keep one: url = \"https://<node>:29009\" for one server, or urls = [\"https://<server1>:29009\", \"https://<server2>:29009\"] to try each server in turn",
                );
                return None;
            }
            (None, None) => {
                self.missing(
                    "cluster.api",
                    0,
                    "cluster.api.url",
                    "add url = \"https://<node address>:29009\", or urls = [...] with one address per server",
                );
                return None;
            }
            (Some(one), None) => vec![("cluster.api.url".to_owned(), one)],
            (None, Some(list)) if list.get_ref().is_empty() => {
                self.push(
                    list.span(),
                    "cluster.api.urls",
                    ErrorKind::ApiEndpoints,
                    "`urls` is empty",
                    "list the CLUSTERPRO API address of each server, e.g. urls = [\"https://10.0.10.11:29009\", \"https://10.0.20.11:29009\"]",
                );
                return None;
            }
            (None, Some(list)) => {
                list.get_ref().iter().enumerate().map(|(i, v)| (format!("cluster.api.urls[{i}]"), v)).collect()
            }
        };
        let mut out: Vec<String> = Vec::with_capacity(given.len());
        let mut ok = true;
        for (key, v) in given {
            let s = v.get_ref();
            let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
            if !rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace)) {
                self.push(
                    v.span(),
                    &key,
                    ErrorKind::ApiUrl,
                    format!("\"{s}\" is not an http(s) URL"),
                    "write the CLUSTERPRO API address with its scheme, e.g. \"https://10.0.10.11:29009\"",
                );
                ok = false;
                continue;
            }
            let normalized = s.trim_end_matches('/').to_owned();
            if let Some(first) = out.iter().position(|u| u.eq_ignore_ascii_case(&normalized)) {
                self.push(
                    v.span(),
                    &key,
                    ErrorKind::ApiEndpoints,
                    format!("\"{s}\" is already listed as cluster.api.urls[{first}]"),
                    "list each server's API address once",
                );
                ok = false;
                continue;
            }
            out.push(normalized);
        }
        ok.then_some(out)
    }

    /// `ca_bundle` / `insecure`: at most one of them, and only for https URLs.
    fn api_tls(&mut self, raw: &RawApi, urls: Option<&[String]>) -> Option<ApiTls> {
        let insecure = raw.insecure.as_ref().filter(|v| *v.get_ref());
        let tls = match (&raw.ca_bundle, insecure) {
            (Some(_), Some(flag)) => {
                self.push(
                    flag.span(),
                    "cluster.api.insecure",
                    ErrorKind::ApiTls,
                    "`insecure = true` switches certificate checks off, but `ca_bundle` asks to check against a CA",
                    "keep ca_bundle (recommended) and remove insecure",
                );
                return None;
            }
            (Some(path), None) if path.get_ref().trim().is_empty() => {
                self.push(
                    path.span(),
                    "cluster.api.ca_bundle",
                    ErrorKind::ApiTls,
                    "`cluster.api.ca_bundle` is empty",
                    "give the path of the PEM file holding the CA certificate(s) that signed the CLUSTERPRO API's certificate, or remove the key to use the system's trusted roots",
                );
                return None;
            }
            (Some(path), None) => (ApiTls::CaBundle(PathBuf::from(path.get_ref())), path.span(), "ca_bundle"),
            (None, Some(flag)) => (ApiTls::Insecure, flag.span(), "insecure"),
            (None, None) => return Some(ApiTls::System),
        };
        if let Some(urls) = urls
            && !urls.iter().any(|u| u.starts_with("https://"))
        {
            self.push(
                tls.1,
                &format!("cluster.api.{}", tls.2),
                ErrorKind::ApiTls,
                format!("`{}` applies to https URLs, but every API URL here is http", tls.2),
                "use https:// addresses (the API's HTTPS mode), or remove this key",
            );
            return None;
        }
        Some(tls.0)
    }

    fn password(&mut self, raw: &RawApi) -> Option<SecretRef> {
        const SOURCES_HINT: &str = "use password_env = \"VARIABLE\", password_file = \"/path/to/file\" or password_secret = \"<Secrets Manager id or ARN>\"";
        if let Some(inline) = &raw.password {
            self.push(
                inline.span(),
                "cluster.api.password",
                ErrorKind::InlinePassword,
                "a password may not be written here: secrets never live in desired-state files",
                format!("remove `password` and {SOURCES_HINT}"),
            );
            return None;
        }
        let given: Vec<(&str, &S<String>)> = [
            ("password_env", raw.password_env.as_ref()),
            ("password_file", raw.password_file.as_ref()),
            ("password_secret", raw.password_secret.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        if let Some(key) = &raw.password_secret_key
            && raw.password_secret.is_none()
        {
            self.push(
                key.span(),
                "cluster.api.password_secret_key",
                ErrorKind::ApiSecretKey,
                "`password_secret_key` names a key inside a Secrets Manager secret, but `password_secret` is not given",
                "add password_secret = \"<Secrets Manager id or ARN>\", or remove password_secret_key",
            );
            return None;
        }
        match given.as_slice() {
            [] => {
                let span = self.source.header("cluster.api", 0);
                self.push(
                    span,
                    "cluster.api",
                    ErrorKind::ApiPasswordMissing,
                    "the API has no password source",
                    format!("{SOURCES_HINT} (exactly one)"),
                );
                None
            }
            [(k, v)] => {
                let key = format!("cluster.api.{k}");
                let s = self.non_empty(v, &key, "name where mirrorctl finds the password")?;
                match *k {
                    "password_env" => Some(SecretRef::Env(s)),
                    "password_file" => Some(SecretRef::File(PathBuf::from(s))),
                    _ => {
                        let json_key = match &raw.password_secret_key {
                            None => None,
                            Some(v) => Some(self.non_empty(
                                v,
                                "cluster.api.password_secret_key",
                                "name the key of the secret's JSON object that holds the password, e.g. \"password\", or remove the key to use the whole secret string",
                            )?),
                        };
                        Some(SecretRef::SecretsManager { id: s, json_key })
                    }
                }
            }
            [(first, _), (second, v), ..] => {
                self.push(
                    v.span(),
                    &format!("cluster.api.{second}"),
                    ErrorKind::ApiPasswordAmbiguous,
                    format!("both `{first}` and `{second}` are given: the password must have one source"),
                    "keep exactly one of password_env, password_file and password_secret",
                );
                None
            }
        }
    }

    fn servers(&mut self, raw: Option<&[RawServer]>, region: Option<&Region>) -> Option<[ServerSpec; 2]> {
        let Some(raw) = raw else {
            self.missing(
                "cluster",
                0,
                "cluster.server",
                "add two [[cluster.server]] tables, each with name, instance and zone; the first is the primary",
            );
            return None;
        };
        if raw.len() != 2 {
            let span = if raw.len() > 2 {
                self.source.header("cluster.server", 2)
            } else {
                self.source.header("cluster.server", 0)
            };
            self.push(
                span,
                "cluster.server",
                ErrorKind::ServerCount,
                format!("a mirror disk cluster has exactly two servers, this file lists {}", raw.len()),
                "list exactly two [[cluster.server]] tables: the primary first, then its peer",
            );
        }
        let mut built = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut instances: HashMap<String, usize> = HashMap::new();
        for (i, server) in raw.iter().enumerate() {
            let prefix = format!("cluster.server[{i}]");
            let s = self.server(server, i, &prefix, region);
            if let Some(n) = &server.name
                && let Some(first) = names.insert(n.get_ref().clone(), i)
            {
                self.push(
                    n.span(),
                    &format!("{prefix}.name"),
                    ErrorKind::DuplicateServerName,
                    format!("server name \"{}\" is also used by cluster.server[{first}]", n.get_ref()),
                    "give each server its CLUSTERPRO server name; the two names differ",
                );
            }
            if let Some(n) = &server.instance
                && let Some(first) = instances.insert(n.get_ref().clone(), i)
            {
                self.push(
                    n.span(),
                    &format!("{prefix}.instance"),
                    ErrorKind::DuplicateInstance,
                    format!("instance {} is also used by cluster.server[{first}]", n.get_ref()),
                    "each server is its own EC2 instance: check the instance id of this server",
                );
            }
            built.push(s);
        }
        let built: Option<Vec<ServerSpec>> = built.into_iter().collect();
        built?.try_into().ok()
    }

    fn server(&mut self, raw: &RawServer, i: usize, prefix: &str, region: Option<&Region>) -> Option<ServerSpec> {
        let t = ("cluster.server", i);
        let name = self
            .required(
                raw.name.as_ref(),
                t,
                &format!("{prefix}.name"),
                "add name = \"<CLUSTERPRO server name>\", e.g. \"server1\"",
            )
            .and_then(|v| {
                self.id(
                    v,
                    &format!("{prefix}.name"),
                    ServerName::parse,
                    "write the server's name as CLUSTERPRO shows it, e.g. \"server1\"",
                )
            });
        let instance = self
            .required(
                raw.instance.as_ref(),
                t,
                &format!("{prefix}.instance"),
                "add instance = \"i-...\", the server's EC2 instance id",
            )
            .and_then(|v| {
                self.id(
                    v,
                    &format!("{prefix}.instance"),
                    InstanceId::parse,
                    "copy the instance id from the EC2 console, e.g. \"i-0123456789abcdef0\"",
                )
            });
        let zone_raw = self.required(
            raw.zone.as_ref(),
            t,
            &format!("{prefix}.zone"),
            "add zone = \"<availability zone>\", e.g. \"ap-northeast-1a\"",
        );
        let zone = zone_raw.and_then(|v| {
            self.id(
                v,
                &format!("{prefix}.zone"),
                Zone::parse,
                "write the server's availability zone, e.g. \"ap-northeast-1a\"",
            )
        });
        if let (Some(z), Some(r), Some(v)) = (&zone, region, zone_raw)
            && &z.region() != r
        {
            self.push(
                v.span(),
                &format!("{prefix}.zone"),
                ErrorKind::ZoneOutsideRegion,
                format!("\"{z}\" is not in region \"{r}\""),
                format!("use a zone of {r}, such as \"{r}a\", or correct cluster.region"),
            );
            return None;
        }
        Some(ServerSpec { name: name?, instance: instance?, zone: zone? })
    }

    fn mirror(&mut self, raw: &RawMirror, os: Option<Os>) -> Option<MirrorSpec> {
        const T: (&str, usize) = ("mirror", 0);
        let resource = match &raw.resource {
            Some(v) => self.id(
                v,
                "mirror.resource",
                ResourceName::parse,
                "write the mirror disk resource's name as CLUSTERPRO shows it, e.g. \"md\"",
            ),
            None => ResourceName::parse("md").ok(),
        };
        let group = match &raw.group {
            Some(v) => self.id(
                v,
                "mirror.group",
                GroupName::parse,
                "write the failover group's name as CLUSTERPRO shows it, e.g. \"failover\"",
            ),
            None => GroupName::parse("failover").ok(),
        };
        let device = self
            .required(
                raw.device.as_ref(),
                T,
                "mirror.device",
                "add device = \"/dev/sdX\", the EC2 device name of the mirror disk volume on both servers",
            )
            .and_then(|v| {
                self.id(
                    v,
                    "mirror.device",
                    DeviceName::parse,
                    "use the device name shown in the EC2 console under the instance's storage, e.g. \"/dev/sdx\"",
                )
            });
        let cluster_partition = self
            .required(
                raw.cluster_partition.as_ref(),
                T,
                "mirror.cluster_partition",
                "add cluster_partition = \"R:\" (windows) or \"/dev/xvdb1\" (linux)",
            )
            .and_then(|v| os.and_then(|os| self.partition(v, "mirror.cluster_partition", os)));
        let data_partition_raw = self.required(
            raw.data_partition.as_ref(),
            T,
            "mirror.data_partition",
            "add data_partition = \"M:\" (windows) or \"/dev/xvdb2\" (linux)",
        );
        let data_partition =
            data_partition_raw.and_then(|v| os.and_then(|os| self.partition(v, "mirror.data_partition", os)));
        if let (Some(c), Some(d), Some(v)) = (&cluster_partition, &data_partition, data_partition_raw)
            && c == d
        {
            self.push(
                    v.span(),
                    "mirror.data_partition",
                    ErrorKind::SamePartition,
                    format!("the data partition is the cluster partition ({c})"),
                    "the cluster partition holds CLUSTERPRO's mirror metadata and the data partition the business data: name two different partitions",
                );
            return None;
        }
        let volume = match &raw.volume {
            Some(v) => self.volume(v),
            None => Some(VolumeSpec::default()),
        };
        Some(MirrorSpec {
            resource: resource?,
            group: group?,
            device: device?,
            cluster_partition: cluster_partition?,
            data_partition: data_partition?,
            volume: volume?,
        })
    }

    fn partition(&mut self, value: &S<String>, key: &str, os: Os) -> Option<Partition> {
        let s = value.get_ref();
        let cluster = key.ends_with("cluster_partition");
        let (letter_example, device_example) =
            if cluster { ("\"R:\"", "\"/dev/xvdb1\"") } else { ("\"M:\"", "\"/dev/xvdb2\"") };
        let bytes = s.as_bytes();
        let is_letter = bytes.len() == 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
        let is_device = s
            .strip_prefix("/dev/")
            .is_some_and(|r| !r.is_empty() && !r.contains(|c: char| c.is_whitespace() || c == '/'));
        match os {
            Os::Windows if is_letter => {
                let letter = char::from(bytes[0].to_ascii_uppercase());
                if matches!(letter, 'A' | 'B' | 'C') {
                    let why = if letter == 'C' { "the system drive" } else { "reserved for floppy drives" };
                    self.push(
                        value.span(),
                        key,
                        ErrorKind::ReservedDriveLetter,
                        format!("drive letter {letter}: is {why} and cannot hold a mirror partition"),
                        format!("choose a letter from D: to Z: that the partition has on both servers, e.g. {letter_example}"),
                    );
                    return None;
                }
                Some(Partition::Letter(letter))
            }
            Os::Windows => {
                let message = if s.starts_with("/dev/") {
                    format!("\"{s}\" is a Linux device path, but cluster.os is \"windows\"")
                } else {
                    format!("\"{s}\" is not a Windows drive letter")
                };
                self.push(
                    value.span(),
                    key,
                    ErrorKind::PartitionNotDriveLetter,
                    message,
                    format!("write a drive letter and a colon, e.g. {letter_example} (or set os = \"linux\" if the servers run Linux)"),
                );
                None
            }
            Os::Linux if is_device => Some(Partition::Device(s.clone())),
            Os::Linux => {
                let message = if is_letter {
                    format!("\"{s}\" is a Windows drive letter, but cluster.os is \"linux\"")
                } else {
                    format!("\"{s}\" is not a block device path")
                };
                self.push(
                    value.span(),
                    key,
                    ErrorKind::PartitionNotDevice,
                    message,
                    format!("write the partition's block device, e.g. {device_example} (or set os = \"windows\" if the servers run Windows)"),
                );
                None
            }
        }
    }

    fn range(&mut self, value: &S<i64>, key: &str, bounds: (i64, i64), kind: ErrorKind, what: &str) -> Option<u32> {
        let n = *value.get_ref();
        if n < bounds.0 || n > bounds.1 {
            self.push(
                value.span(),
                key,
                kind,
                format!("{n} is outside the allowed range {}–{} {what}", bounds.0, bounds.1),
                format!("choose a value from {} to {}", bounds.0, bounds.1),
            );
            return None;
        }
        u32::try_from(n).ok()
    }

    fn volume(&mut self, raw: &RawVolume) -> Option<VolumeSpec> {
        let volume_type = match &raw.volume_type {
            None => Some(VolumeType::Gp3),
            Some(v) => {
                let found = VOLUME_TYPES.iter().find(|(name, _)| name == v.get_ref()).map(|(_, t)| *t);
                if found.is_none() {
                    let names: Vec<&str> = VOLUME_TYPES.iter().map(|(n, _)| *n).collect();
                    let hint = match closest(v.get_ref(), names.iter().copied()) {
                        Some(near) => {
                            format!("did you mean \"{near}\"? The EBS volume types are {}", quote_list(&names, '"'))
                        }
                        None => format!("use one of the EBS volume types {}", quote_list(&names, '"')),
                    };
                    self.push(
                        v.span(),
                        "mirror.volume.type",
                        ErrorKind::UnknownVolumeType,
                        format!("\"{}\" is not an EBS volume type", v.get_ref()),
                        hint,
                    );
                }
                found
            }
        };
        let iops = self.iops(raw, volume_type);
        let throughput = match (&raw.throughput, volume_type) {
            (None, _) | (Some(_), None) => Some(None),
            (Some(v), Some(VolumeType::Gp3)) => self
                .range(v, "mirror.volume.throughput", (125, 2000), ErrorKind::ThroughputOutOfRange, "MiB/s for gp3")
                .map(Some),
            (Some(v), Some(t)) => {
                self.push(
                    v.span(),
                    "mirror.volume.throughput",
                    ErrorKind::ThroughputNotSupported,
                    format!("throughput cannot be set for volume type \"{}\"", t.as_str()),
                    "remove throughput, or use type = \"gp3\"",
                );
                None
            }
        };
        let initialization_rate = match &raw.initialization_rate {
            None => Some(None),
            Some(v) => self
                .range(
                    v,
                    "mirror.volume.initialization_rate",
                    (100, 300),
                    ErrorKind::InitializationRateOutOfRange,
                    "MiB/s",
                )
                .map(Some),
        };
        let kms_key = match &raw.kms_key {
            None => Some(None),
            Some(v) if v.get_ref().trim().is_empty() => {
                self.push(
                    v.span(),
                    "mirror.volume.kms_key",
                    ErrorKind::EmptyKmsKey,
                    "kms_key is empty",
                    "remove kms_key to keep the snapshot's encryption, or give a KMS key id, ARN or \"alias/NAME\"",
                );
                None
            }
            Some(v) => Some(Some(v.get_ref().clone())),
        };
        Some(VolumeSpec {
            volume_type: volume_type?,
            iops: iops?,
            throughput: throughput?,
            kms_key: kms_key?,
            initialization_rate: initialization_rate?,
            fast_restore: raw.fast_restore.unwrap_or(false),
        })
    }

    /// `Some(None)`: no iops, fine; `None`: an error was reported.
    #[allow(clippy::option_option)] // outer: checked or not; inner: the key is optional
    fn iops(&mut self, raw: &RawVolume, volume_type: Option<VolumeType>) -> Option<Option<u32>> {
        const KEY: &str = "mirror.volume.iops";
        let Some(t) = volume_type else {
            return Some(None);
        };
        match (&raw.iops, t) {
            (Some(v), VolumeType::Gp3) => {
                self.range(v, KEY, (3000, 80000), ErrorKind::IopsOutOfRange, "IOPS for gp3").map(Some)
            }
            (Some(v), VolumeType::Io1 | VolumeType::Io2) => self
                .range(v, KEY, (100, 256_000), ErrorKind::IopsOutOfRange, &format!("IOPS for {}", t.as_str()))
                .map(Some),
            (Some(v), _) => {
                self.push(
                    v.span(),
                    KEY,
                    ErrorKind::IopsNotSupported,
                    format!("iops cannot be set for volume type \"{}\"", t.as_str()),
                    "remove iops, or use type = \"gp3\", \"io1\" or \"io2\"",
                );
                None
            }
            (None, VolumeType::Io1 | VolumeType::Io2) => {
                let span = raw.volume_type.as_ref().map_or_else(|| self.source.header("mirror.volume", 0), S::span);
                self.push(
                    span,
                    KEY,
                    ErrorKind::IopsRequired,
                    format!("volume type \"{}\" needs provisioned iops", t.as_str()),
                    "add iops = <100 to 256000> to mirror.volume, or use type = \"gp3\"",
                );
                None
            }
            (None, _) => Some(None),
        }
    }

    fn backup(&mut self, raw: &RawBackup) -> Option<BackupSpec> {
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

    fn schedule(&mut self, value: &S<String>) -> Option<Schedule> {
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

    fn restore(&mut self, raw: &RawRestore) -> Option<RestoreSpec> {
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

#[cfg(test)]
mod tests {
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
        assert_eq!(b.schedule, Some(Schedule { hour: 2, minute: 0, time_zone: "Asia/Tokyo".to_owned() }));
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
        assert_eq!(b.schedule, None);
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
        assert_eq!(b.schedule.as_ref().map(|s| (s.hour, s.minute)), Some((23, 59)));
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
