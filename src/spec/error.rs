//! Errors in desired-state files, and how they are shown to the operator.
//!
//! Why this module exists: a desired-state file drives destructive work on production disks, so a
//! mistake in it must be reported the way a compiler reports one: the file, line and column, the
//! dotted key path, the offending source line with a caret under the value, what is wrong, and
//! what to do about it. Every check in the loader produces a [`SpecError`]; rendering lives here
//! so that `validate`, `plan` and the daemon all print the same text.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

/// What kind of mistake a [`SpecError`] is; [`ErrorKind::code`] is the stable short code shown in
/// brackets (`error[unknown-key]`) and used by tests and documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The file could not be read.
    Io,
    /// The text is not valid TOML.
    Syntax,
    /// A key that the format does not have.
    UnknownKey,
    /// A required key is absent.
    MissingKey,
    /// A value of the wrong TOML type (a number where a string belongs, …).
    WrongType,
    /// A string that must not be empty is empty.
    EmptyValue,
    /// A malformed id or name (instance, snapshot, zone, region, device, names).
    InvalidId,
    /// `cluster.os` is not `windows` or `linux`.
    UnknownOs,
    /// `cluster.access` is not `ssm` or `local`.
    UnknownAccess,
    /// `cluster.procedure` is not auto, vendor or reconfigure.
    UnknownProcedure,
    /// `cluster.install_dir` is not an absolute directory path of the cluster's OS.
    InstallDir,
    /// A server's zone is not in the cluster's region.
    ZoneOutsideRegion,
    /// Not exactly two `[[cluster.server]]` entries.
    ServerCount,
    /// Two servers share a name.
    DuplicateServerName,
    /// Two servers share an EC2 instance.
    DuplicateInstance,
    /// `cluster.name` differs from the file name.
    NameNotFileStem,
    /// Two files describe the same cluster.
    DuplicateCluster,
    /// A Windows partition that is not a drive letter such as `R:`.
    PartitionNotDriveLetter,
    /// A Linux partition that is not a `/dev/...` path.
    PartitionNotDevice,
    /// Drive letter A, B (floppy) or C (system).
    ReservedDriveLetter,
    /// The cluster partition and the data partition are the same.
    SamePartition,
    /// A partition named by two `[[mirror]]` entries.
    DuplicatePartition,
    /// Two `[[mirror]]` entries describe the same md resource.
    DuplicateMirrorResource,
    /// `mirror.cluster_device` is `mirror.device`.
    SameDevice,
    /// `volume.type` is not an EBS volume type.
    UnknownVolumeType,
    /// `iops` given for a type without provisioned IOPS.
    IopsNotSupported,
    /// `iops` missing for io1/io2, which require it.
    IopsRequired,
    /// `iops` outside the type's range.
    IopsOutOfRange,
    /// `throughput` given for a type other than gp3.
    ThroughputNotSupported,
    /// `throughput` outside 125–2000 MiB/s.
    ThroughputOutOfRange,
    /// `initialization_rate` outside 100–300 MiB/s.
    InitializationRateOutOfRange,
    /// `kms_key` is an empty string.
    EmptyKmsKey,
    /// `api.url` is not an http(s) URL.
    ApiUrl,
    /// `api` has none of the password sources.
    ApiPasswordMissing,
    /// `api` has more than one password source.
    ApiPasswordAmbiguous,
    /// `api.password`: a secret written into the file.
    InlinePassword,
    /// `api.url` and `api.urls` together, an empty `urls` list, or a URL listed twice.
    ApiEndpoints,
    /// `api.ca_bundle` together with `insecure = true`, a TLS setting without any `https` URL, or
    /// an empty `ca_bundle` path.
    ApiTls,
    /// `api.password_secret_key` without `password_secret`.
    ApiSecretKey,
    /// `api.request_timeout_s` or `api.operation_timeout_s` outside its range.
    ApiTimeoutOutOfRange,
    /// `backup.keep` outside 1–1000.
    KeepOutOfRange,
    /// A schedule is not one of the forms mirrorctl reads, or its time is out of range.
    BadSchedule,
    /// `backup.schedule` names a time zone the tz database does not know.
    UnknownTimeZone,
    /// A name appears twice in `backup.take`.
    DuplicateTake,
    /// `[restore]` without `request`.
    RestoreWithoutRequest,
    /// `[restore]` names both a `snapshot` and a `backup`, or sets `allow_foreign_snapshot` with a
    /// `backup` (a backup is looked for among the cluster's own snapshots only).
    RestoreSnapshotAndBackup,
    /// `[notify]` names no destination (neither `sns_topic` nor `webhook`).
    NotifyNoDestination,
    /// `notify.sns_topic` is not an SNS topic ARN.
    NotifySnsTopic,
    /// `notify.webhook.url` is not an https URL (http only to this host's loopback address).
    NotifyWebhookUrl,
    /// `notify.webhook` has no secret source, several, or a `secret_key` without `secret_id`.
    NotifyWebhookSecret,
    /// `notify.events` is empty, names an unknown event, or names one twice.
    NotifyEvents,
    /// `cluster.role_arn` is not an IAM role ARN.
    RoleArn,
    /// `cluster.external_id` is malformed, or given without `role_arn`.
    ExternalId,
    /// Two `[[backup.schedule]]` tables with one name (given or defaulted from the kind).
    DuplicateSchedule,
    /// `keep_days` of a schedule outside 1–36500.
    KeepDaysOutOfRange,
    /// A schedule's `cron` expression is not five valid fields.
    BadCron,
    /// A `[[backup.schedule]]` table with both `every` and `cron`, or `zone` without `cron`.
    ScheduleKeys,
    /// A `backup.copy_to` region that is the cluster's own, or listed twice.
    CopyRegion,
}

impl ErrorKind {
    /// The stable short code, e.g. `"zone-outside-region"`.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::Io => "io",
            ErrorKind::Syntax => "syntax",
            ErrorKind::UnknownKey => "unknown-key",
            ErrorKind::MissingKey => "missing-key",
            ErrorKind::WrongType => "wrong-type",
            ErrorKind::EmptyValue => "empty-value",
            ErrorKind::InvalidId => "invalid-id",
            ErrorKind::UnknownOs => "unknown-os",
            ErrorKind::UnknownAccess => "unknown-access",
            ErrorKind::UnknownProcedure => "unknown-procedure",
            ErrorKind::InstallDir => "install-dir",
            ErrorKind::ZoneOutsideRegion => "zone-outside-region",
            ErrorKind::ServerCount => "server-count",
            ErrorKind::DuplicateServerName => "duplicate-server-name",
            ErrorKind::DuplicateInstance => "duplicate-instance",
            ErrorKind::NameNotFileStem => "name-not-file-stem",
            ErrorKind::DuplicateCluster => "duplicate-cluster",
            ErrorKind::PartitionNotDriveLetter => "partition-not-drive-letter",
            ErrorKind::PartitionNotDevice => "partition-not-device",
            ErrorKind::ReservedDriveLetter => "reserved-drive-letter",
            ErrorKind::SamePartition => "same-partition",
            ErrorKind::DuplicatePartition => "duplicate-partition",
            ErrorKind::DuplicateMirrorResource => "duplicate-mirror-resource",
            ErrorKind::SameDevice => "same-device",
            ErrorKind::UnknownVolumeType => "unknown-volume-type",
            ErrorKind::IopsNotSupported => "iops-not-supported",
            ErrorKind::IopsRequired => "iops-required",
            ErrorKind::IopsOutOfRange => "iops-out-of-range",
            ErrorKind::ThroughputNotSupported => "throughput-not-supported",
            ErrorKind::ThroughputOutOfRange => "throughput-out-of-range",
            ErrorKind::InitializationRateOutOfRange => "initialization-rate-out-of-range",
            ErrorKind::EmptyKmsKey => "empty-kms-key",
            ErrorKind::ApiUrl => "api-url",
            ErrorKind::ApiPasswordMissing => "api-password-missing",
            ErrorKind::ApiPasswordAmbiguous => "api-password-ambiguous",
            ErrorKind::InlinePassword => "inline-password",
            ErrorKind::ApiEndpoints => "api-endpoints",
            ErrorKind::ApiTls => "api-tls",
            ErrorKind::ApiSecretKey => "api-secret-key",
            ErrorKind::ApiTimeoutOutOfRange => "api-timeout-out-of-range",
            ErrorKind::KeepOutOfRange => "keep-out-of-range",
            ErrorKind::BadSchedule => "bad-schedule",
            ErrorKind::UnknownTimeZone => "unknown-time-zone",
            ErrorKind::DuplicateTake => "duplicate-take",
            ErrorKind::RestoreWithoutRequest => "restore-without-request",
            ErrorKind::RestoreSnapshotAndBackup => "restore-snapshot-and-backup",
            ErrorKind::NotifyNoDestination => "notify-no-destination",
            ErrorKind::NotifySnsTopic => "notify-sns-topic",
            ErrorKind::NotifyWebhookUrl => "notify-webhook-url",
            ErrorKind::NotifyWebhookSecret => "notify-webhook-secret",
            ErrorKind::NotifyEvents => "notify-events",
            ErrorKind::RoleArn => "role-arn",
            ErrorKind::ExternalId => "external-id",
            ErrorKind::DuplicateSchedule => "duplicate-schedule",
            ErrorKind::KeepDaysOutOfRange => "keep-days-out-of-range",
            ErrorKind::BadCron => "bad-cron",
            ErrorKind::ScheduleKeys => "schedule-keys",
            ErrorKind::CopyRegion => "copy-region",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// One mistake in a desired-state file, located and explained.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecError {
    /// The file, as given by the caller.
    pub file: PathBuf,
    /// 1-based line; 0 when the error is about the whole file (it could not be read).
    pub line: usize,
    /// 1-based column in characters; 0 with `line` 0.
    pub column: usize,
    /// Dotted key path such as `cluster.server[1].zone` (array indices from 0); empty when the
    /// error is not about one key (syntax, I/O).
    pub key: String,
    /// What kind of mistake.
    pub kind: ErrorKind,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The text of line `line` (without its newline), for the excerpt; `None` with `line` 0.
    pub source_line: Option<String>,
    /// How many characters to underline from `column` (at least 1).
    pub width: usize,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error[{}]: {}", self.kind.code(), self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        writeln!(f)?;
        let gutter = " ".repeat(self.line.to_string().len());
        if let (Some(text), true) = (&self.source_line, self.line > 0) {
            writeln!(f, "{gutter} |")?;
            writeln!(f, "{} | {}", self.line, text)?;
            let pad = " ".repeat(self.column.saturating_sub(1));
            writeln!(f, "{gutter} | {pad}{}", "^".repeat(self.width.max(1)))?;
        }
        write!(f, "{gutter} = {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n{gutter} = hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecError {}

/// All the mistakes found in one file (never empty when returned as an error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecErrors(pub Vec<SpecError>);

impl fmt::Display for SpecErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SpecErrors {}

/// The text of a file with its line starts, to turn byte spans into line, column and excerpt.
pub(crate) struct Source<'a> {
    pub(crate) file: PathBuf,
    pub(crate) text: &'a str,
    line_starts: Vec<usize>,
}

impl<'a> Source<'a> {
    pub(crate) fn new(file: PathBuf, text: &'a str) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source { file, text, line_starts }
    }

    /// An error located at `span` (byte offsets into the text).
    pub(crate) fn error(
        &self,
        span: Range<usize>,
        key: impl Into<String>,
        kind: ErrorKind,
        message: impl Into<String>,
        hint: Option<String>,
    ) -> SpecError {
        let start = span.start.min(self.text.len());
        let line_index = match self.line_starts.binary_search(&start) {
            Ok(i) => i,
            Err(i) => i - 1,
        };
        let line_start = self.line_starts[line_index];
        let line_end = self.text[line_start..].find('\n').map_or(self.text.len(), |i| line_start + i);
        let line_text = self.text[line_start..line_end].trim_end_matches('\r');
        let before = self.text.get(line_start..start).unwrap_or("");
        let column = before.chars().count() + 1;
        let end = span.end.min(line_start + line_text.len()).max(start);
        let width = self.text.get(start..end).map_or(1, |s| s.chars().count().max(1));
        SpecError {
            file: self.file.clone(),
            line: line_index + 1,
            column,
            key: key.into(),
            kind,
            message: message.into(),
            hint,
            source_line: Some(line_text.to_owned()),
            width,
        }
    }

    /// The span of the header line of table `name` (`[mirror]`, `[cluster]`) or of the `n`-th
    /// array-of-tables header (`[[cluster.server]]`), or of an inline-table key (`api = {`),
    /// falling back to the start of the file. Used to place "missing key" errors.
    pub(crate) fn header(&self, name: &str, nth: usize) -> Range<usize> {
        let single = format!("[{name}]");
        let double = format!("[[{name}]]");
        let inline_key = name.rsplit('.').next().unwrap_or(name);
        let mut seen = 0;
        let mut inline: Option<Range<usize>> = None;
        for (i, &start) in self.line_starts.iter().enumerate() {
            let end = self.line_starts.get(i + 1).map_or(self.text.len(), |e| e - 1);
            let line = &self.text[start..end];
            let trimmed = line.trim_start();
            let offset = start + (line.len() - trimmed.len());
            let compact: String = trimmed.chars().filter(|c| !c.is_whitespace()).collect();
            if compact.starts_with(&double) {
                if seen == nth {
                    return offset..offset + trimmed.trim_end().len();
                }
                seen += 1;
            } else if compact.starts_with(&single) {
                return offset..offset + trimmed.trim_end().len();
            } else if inline.is_none()
                && compact.starts_with(&format!("{inline_key}="))
                && compact[inline_key.len() + 1..].starts_with('{')
            {
                inline = Some(offset..offset + inline_key.len());
            }
        }
        inline.unwrap_or(0..0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_at_line_ends_and_crlf_do_not_panic() {
        let text = "a = 1\r\nb = \"x\r\n";
        let source = Source::new(PathBuf::from("f.toml"), text);
        let e = source.error(14..15, "b", ErrorKind::Syntax, "m", None);
        assert_eq!((e.line, e.column, e.width), (2, 8, 1));
        assert_eq!(e.source_line.as_deref(), Some("b = \"x"));
        let e = source.error(100..200, "", ErrorKind::Syntax, "m", None);
        assert_eq!(e.line, 3);
    }

    #[test]
    fn rendering_names_file_line_column_key_message_and_hint() {
        let source = Source::new(PathBuf::from("d/p.toml"), "[x]\nzone = \"us-east-1a\"\n");
        let e = source.error(11..23, "x.zone", ErrorKind::ZoneOutsideRegion, "wrong", Some("fix".to_owned()));
        assert_eq!(
            e.to_string(),
            "error[zone-outside-region]: d/p.toml:2:8: x.zone\n  |\n2 | zone = \"us-east-1a\"\n  |        ^^^^^^^^^^^^\n  = wrong\n  = hint: fix"
        );
    }
}
