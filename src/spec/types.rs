//! The validated desired state: what a file in `desired-state/` means once it has been parsed and
//! checked. Everything here is already valid ("parse, don't validate"): exactly two servers with
//! distinct names and instances, zones inside the region, ids well formed. The planner takes these
//! types and never re-checks them.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::ids::{
    BackupName, ClusterName, DeviceName, GroupName, InstanceId, Region, RequestName, ResourceName, ServerName,
    SnapshotId, Zone,
};

/// One desired-state file, validated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// The file it came from (for messages and status).
    pub source: PathBuf,
    /// The cluster and its servers.
    pub cluster: ClusterSpec,
    /// The mirror disk resource: the `[mirror]` table, or the first `[[mirror]]` entry.
    pub mirror: MirrorSpec,
    /// The other `[[mirror]]` entries, in file order (empty for a `[mirror]` file). See
    /// [`Spec::mirrors`].
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more_mirrors: Vec<MirrorSpec>,
    /// Backups wanted, if any.
    pub backup: Option<BackupSpec>,
    /// The restore wanted, if any, when the file names its snapshot (`restore.snapshot`).
    pub restore: Option<RestoreSpec>,
    /// The restore wanted, if any, when the file names a backup (`restore.backup`); at most one of
    /// this and [`Spec::restore`] is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_backup: Option<BackupRestoreSpec>,
    /// Where completion, failure and needs-human events go, if anywhere.
    pub notify: Option<NotifySpec>,
    /// `notify = false`: no notices at all; the daemon's default `[notify]` does not apply.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub notify_off: bool,
}

/// The operating system of the cluster's servers: it decides the disk recipes and partition naming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Os {
    /// Windows Server: partitions are drive letters (`R:`, `M:`).
    Windows,
    /// Linux: partitions are block devices (`/dev/xvdb1`).
    Linux,
}

/// How commands run on the nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Access {
    /// AWS Systems Manager Run Command.
    Ssm,
    /// Directly on this host (the operations host is a node, or tests).
    Local,
}

/// Where the CLUSTERPRO REST API password comes from. Never the desired-state file itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum SecretRef {
    /// An environment variable of the mirrorctl process.
    Env(String),
    /// A file readable by mirrorctl (first line).
    File(PathBuf),
    /// An AWS Secrets Manager secret: its `SecretString`, or one key of it when it is a JSON object.
    SecretsManager {
        /// Secret id (name) or ARN.
        id: String,
        /// The key to read when the secret string is a JSON object (`{"password": "…"}`); `None`
        /// takes the whole string.
        json_key: Option<String>,
    },
}

impl std::fmt::Display for SecretRef {
    /// Where the password is, for messages ("environment variable `CLP_API_PASSWORD`"); never the
    /// password itself.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SecretRef::Env(name) => write!(f, "environment variable {name}"),
            SecretRef::File(path) => write!(f, "file {}", path.display()),
            SecretRef::SecretsManager { id, json_key: None } => write!(f, "AWS Secrets Manager secret {id}"),
            SecretRef::SecretsManager { id, json_key: Some(key) } => {
                write!(f, "key \"{key}\" of AWS Secrets Manager secret {id}")
            }
        }
    }
}

/// How the REST client checks the CLUSTERPRO API's TLS certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ApiTls {
    /// The operating system's trusted roots (the default).
    System,
    /// Only the CA certificates of this PEM file (the cluster's own CA).
    CaBundle(PathBuf),
    /// No certificate check at all (`insecure = true`): logged as a warning every time a client
    /// is built.
    Insecure,
}

/// The CLUSTERPRO `RESTful` API (X 4.2+), optional.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiSpec {
    /// Base URLs such as `https://10.0.10.11:29009`, one per server, tried in this order (at least
    /// one, no duplicates).
    pub urls: Vec<String>,
    /// OS user for HTTP Basic auth.
    pub user: String,
    /// Where the password is.
    pub password: SecretRef,
    /// Certificate checking for `https` URLs.
    pub tls: ApiTls,
    /// Longest wait for one HTTP request to one server, in seconds (default 10).
    pub request_timeout_s: u32,
    /// Longest wait for one operation (start, stop, move, shutdown) to complete, in seconds
    /// (default 900).
    pub operation_timeout_s: u32,
}

impl ApiSpec {
    /// Default of [`ApiSpec::request_timeout_s`].
    pub const DEFAULT_REQUEST_TIMEOUT_S: u32 = 10;
    /// Default of [`ApiSpec::operation_timeout_s`].
    pub const DEFAULT_OPERATION_TIMEOUT_S: u32 = 900;
}

/// The cluster: name, region, OS and its two servers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClusterSpec {
    /// The cluster's name (key for tags, status, journal).
    pub name: ClusterName,
    /// AWS region of both servers.
    pub region: Region,
    /// Servers' OS.
    pub os: Os,
    /// Command transport to the nodes.
    pub access: Access,
    /// The REST API, when the cluster has one.
    pub api: Option<ApiSpec>,
    /// `cluster.install_dir`: the absolute directory holding the `clp*` executables on every
    /// server; `None` = found on each server (see the CLUSTERPRO command adapter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_dir: Option<String>,
    /// Exactly two servers; the first is the primary (where the group runs after a restore).
    pub servers: [ServerSpec; 2],
    /// `cluster.procedure`: how backups and restores drive CLUSTERPRO (default `auto`).
    #[serde(default)]
    pub procedure: ProcedureChoice,
    /// `cluster.role_arn` (+ `external_id`): the IAM role every AWS call for this cluster assumes;
    /// `None` = the default credential chain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<RoleSpec>,
}

/// An IAM role to assume for a cluster's AWS calls.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RoleSpec {
    /// `arn:<partition>:iam::<account>:role/<path/name>`.
    pub arn: String,
    /// The role's account (12 digits), from the ARN.
    pub account: String,
    /// The external id the role's trust policy asks for, if any.
    pub external_id: Option<String>,
}

/// `cluster.procedure`: which CLUSTERPRO procedure backups and restores follow.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProcedureChoice {
    /// NEC's backup/restore pre- and post-processing commands where the cluster's version has them
    /// (X 4.3 and later), the configuration edit below that.
    #[default]
    Auto,
    /// Always NEC's pre- and post-processing commands; refused on a version without them.
    Vendor,
    /// Always the runbook's configuration edit (remove md, swap, re-add md without initial copy).
    Reconfigure,
}

impl ProcedureChoice {
    /// The file's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            ProcedureChoice::Auto => "auto",
            ProcedureChoice::Vendor => "vendor",
            ProcedureChoice::Reconfigure => "reconfigure",
        }
    }
}

/// One server of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServerSpec {
    /// CLUSTERPRO server name.
    pub name: ServerName,
    /// Its EC2 instance.
    pub instance: InstanceId,
    /// Its availability zone (inside the cluster's region).
    pub zone: Zone,
}

/// A partition of the mirror disk as the OS names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Partition {
    /// A Windows drive letter, upper case, without colon (`'R'`).
    Letter(char),
    /// A Linux block device path (`/dev/xvdb1`).
    Device(String),
}

impl std::fmt::Display for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Partition::Letter(c) => write!(f, "{c}:"),
            Partition::Device(d) => f.write_str(d),
        }
    }
}

/// EBS volume type of the new volumes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VolumeType {
    /// General purpose SSD, 3rd generation (default).
    Gp3,
    /// General purpose SSD, 2nd generation.
    Gp2,
    /// Provisioned IOPS SSD.
    Io1,
    /// Provisioned IOPS SSD, 2nd generation.
    Io2,
    /// Throughput optimised HDD.
    St1,
    /// Cold HDD.
    Sc1,
    /// Magnetic (previous generation).
    Standard,
}

impl VolumeType {
    /// The EC2 API spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            VolumeType::Gp3 => "gp3",
            VolumeType::Gp2 => "gp2",
            VolumeType::Io1 => "io1",
            VolumeType::Io2 => "io2",
            VolumeType::St1 => "st1",
            VolumeType::Sc1 => "sc1",
            VolumeType::Standard => "standard",
        }
    }
}

/// How new volumes are created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeSpec {
    /// Volume type.
    pub volume_type: VolumeType,
    /// Provisioned IOPS (gp3, io1, io2).
    pub iops: Option<u32>,
    /// Throughput in MiB/s (gp3).
    pub throughput: Option<u32>,
    /// KMS key id/ARN/alias for encryption; `None` keeps the snapshot's encryption.
    pub kms_key: Option<String>,
    /// EBS volume initialization rate in MiB/s (100–300), to load snapshot data fast.
    pub initialization_rate: Option<u32>,
    /// Restore with Fast Snapshot Restore: enabled for the snapshot in both servers' zones before
    /// the volumes are created and disabled after (see [`crate::plan::fast_restore`]).
    pub fast_restore: bool,
}

impl Default for VolumeSpec {
    fn default() -> Self {
        VolumeSpec {
            volume_type: VolumeType::Gp3,
            iops: None,
            throughput: None,
            kms_key: None,
            initialization_rate: None,
            fast_restore: false,
        }
    }
}

/// The mirror disk resource and its EBS volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MirrorSpec {
    /// The md resource (e.g. `md`).
    pub resource: ResourceName,
    /// The failover group holding it.
    pub group: GroupName,
    /// The EC2 device name of the mirror-disk volume on both servers (the one holding the data
    /// partition, and the cluster partition too unless `cluster_device` is set).
    pub device: DeviceName,
    /// `cluster_device`: the EC2 device name of a separate volume holding the cluster partition;
    /// `None` when both partitions are on the volume at `device`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_device: Option<DeviceName>,
    /// Cluster partition (`R:` or `/dev/xvdb1`).
    pub cluster_partition: Partition,
    /// Data partition (`M:` or `/dev/xvdb2`).
    pub data_partition: Partition,
    /// How new volumes are made.
    pub volume: VolumeSpec,
}

/// A recurring backup time: every day at `hour:minute` in a time zone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Schedule {
    /// Hour of day, 0–23.
    pub hour: u8,
    /// Minute, 0–59.
    pub minute: u8,
    /// IANA time zone name (e.g. `Asia/Tokyo`); `UTC` allowed.
    pub time_zone: String,
}

/// When a schedule's slots fall.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Every {
    /// Every `hours` hours on the hour, counted from 00:00 UTC (`hourly` is 1); `hours` divides 24.
    Hours(u8),
    /// Every day at a local time.
    Daily(Schedule),
    /// Every week on `day` (0 = Sunday … 6 = Saturday) at a local time.
    Weekly {
        /// Day of the week, 0 = Sunday.
        day: u8,
        /// Time of day and zone.
        at: Schedule,
    },
    /// A five-field cron expression (minute hour day-of-month month day-of-week) in a zone.
    Cron {
        /// The expression as written.
        expr: String,
        /// IANA time zone name; `UTC` allowed.
        time_zone: String,
    },
}

/// One backup schedule and the retention of its backups.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScheduleSpec {
    /// Names the schedule: its backups are `<name>-<stamp>` and tagged `mirrorctl:schedule`.
    pub name: BackupName,
    /// When its slots fall.
    pub every: Every,
    /// Whether its backups are retained on their own (`keep`, `keep_days` below). The single
    /// `schedule = "…"` form shares `backup.keep` with the on-demand backups instead.
    pub own_retention: bool,
    /// Keep at most this many of its completed backups; `None`: no count limit (`keep_days` only).
    pub keep: Option<u32>,
    /// Delete its completed backups older than this many days.
    pub keep_days: Option<u32>,
}

impl ScheduleSpec {
    /// The single `schedule = "daily HH:MM ZONE"` form: named `daily`, its backups retained with
    /// the on-demand ones by `backup.keep`. (`None` never happens: `daily` is a valid name.)
    pub fn single(daily: Schedule) -> Option<ScheduleSpec> {
        Some(ScheduleSpec {
            name: BackupName::parse("daily").ok()?,
            every: Every::Daily(daily),
            own_retention: false,
            keep: None,
            keep_days: None,
        })
    }
}

/// Backups wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupSpec {
    /// The schedules, in file order (the order in which slots due together are taken).
    pub schedules: Vec<ScheduleSpec>,
    /// How many of mirrorctl's own backup snapshots of this cluster that no schedule with its own
    /// retention claims to keep (at least 1). Snapshots named in `take` are pinned while listed
    /// and not counted.
    pub keep: u32,
    /// On-demand backups: each name is taken once.
    pub take: Vec<BackupName>,
    /// Regions every completed backup is copied to, each with its own retention.
    pub copy_to: Vec<CopyTarget>,
}

/// A region backups are copied to (disaster recovery).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CopyTarget {
    /// The destination region (not the cluster's own).
    pub region: Region,
    /// How many copies to keep there (the newest, by when the copy was started).
    pub keep: u32,
    /// KMS key (id, ARN or alias in the destination region) to encrypt the copies with; `None`
    /// keeps the source's encryption.
    pub kms_key: Option<String>,
}

/// The restore wanted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RestoreSpec {
    /// The snapshot to restore both servers from.
    pub snapshot: SnapshotId,
    /// The request name: a new value asks for a new restore, even of the same snapshot.
    pub request: RequestName,
    /// Move the group to the other server after the restore to prove failover works.
    pub verify_failover: bool,
    /// Allow a snapshot whose `mirrorctl:cluster` tag names another cluster.
    pub allow_foreign_snapshot: bool,
}

/// `[restore]` with `backup = "name"`: the restore of what backup `name` of this cluster took.
///
/// Which snapshot that is shows only once the cluster's snapshots are observed, so the planner
/// resolves it on every pass ([`crate::plan::resolve_restore`]) into a [`RestoreSpec`], or refuses
/// the restore before any step (the backup missing, incomplete, or not of the file's shape).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BackupRestoreSpec {
    /// The backup's name (a `take` name or a schedule's `<schedule>-<stamp>`).
    pub backup: BackupName,
    /// The request name: a new value asks for a new restore, even of the same backup.
    pub request: RequestName,
    /// Move the group to the other server after the restore to prove failover works.
    pub verify_failover: bool,
}

impl BackupRestoreSpec {
    /// The restore of `snapshot`, the one the backup took.
    pub fn of_snapshot(&self, snapshot: SnapshotId) -> RestoreSpec {
        RestoreSpec {
            snapshot,
            request: self.request.clone(),
            verify_failover: self.verify_failover,
            // A backup is looked for among this cluster's own snapshots only.
            allow_foreign_snapshot: false,
        }
    }
}

impl MirrorSpec {
    /// The EC2 device names of this md's volumes: `device`, then `cluster_device` if set.
    pub fn devices(&self) -> impl Iterator<Item = &DeviceName> {
        std::iter::once(&self.device).chain(self.cluster_device.as_ref())
    }
}

/// An event a cluster can announce (`notify.events`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum NoticeKind {
    /// A backup or restore operation completed.
    Completed,
    /// A step failed with an error only a human can resolve, and the cluster stopped.
    Failed,
    /// The planner refuses to go on until a human acts (a blocked condition).
    NeedsHuman,
}

impl NoticeKind {
    /// Every kind, in the order the reference lists them.
    pub const ALL: [NoticeKind; 3] = [NoticeKind::Completed, NoticeKind::Failed, NoticeKind::NeedsHuman];

    /// The word used in files, JSON bodies and headers (`completed`, `failed`, `needs-human`).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Completed => "completed",
            NoticeKind::Failed => "failed",
            NoticeKind::NeedsHuman => "needs-human",
        }
    }
}

/// An SNS topic, from its ARN.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnsTopic {
    /// The whole ARN (`arn:aws:sns:ap-northeast-1:123456789012:mirrorctl`).
    pub arn: String,
    /// The topic's region (Publish goes there, whatever the cluster's region).
    pub region: Region,
    /// A FIFO topic (`.fifo`): each message then carries a group and a deduplication id.
    pub fifo: bool,
}

/// A webhook: where events are sent (`POST`) and the secret that signs them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSpec {
    /// `https://…` (or `http://` to this host's loopback address).
    pub url: String,
    /// The HMAC-SHA256 signing secret's source.
    pub secret: SecretRef,
}

/// `[notify]`: destinations and which events go there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotifySpec {
    /// An SNS topic, if any.
    pub sns_topic: Option<SnsTopic>,
    /// A webhook, if any (at least one of the two is set).
    pub webhook: Option<WebhookSpec>,
    /// The events sent (default: all of them), without duplicates, in [`NoticeKind::ALL`] order.
    pub events: Vec<NoticeKind>,
}

impl Spec {
    /// Every md resource of the file, in file order: [`Spec::mirror`] then [`Spec::more_mirrors`].
    ///
    /// Why two fields rather than one list: nearly all of the code drives one md, and a file with
    /// one `[mirror]` table (the runbook's shape) is the common case, so `spec.mirror` stays the
    /// single-md accessor; code that must cover every md (shape checks, snapshot sets) iterates
    /// this.
    pub fn mirrors(&self) -> impl Iterator<Item = &MirrorSpec> {
        std::iter::once(&self.mirror).chain(&self.more_mirrors)
    }
    /// Whether the file describes more than the runbook's shape: several md resources, or an md
    /// whose partitions are on separate volumes.
    pub fn several_volumes(&self) -> bool {
        !self.more_mirrors.is_empty() || self.mirror.cluster_device.is_some()
    }
    /// The server named `name`, if it is one of the two.
    pub fn server(&self, name: &ServerName) -> Option<&ServerSpec> {
        self.cluster.servers.iter().find(|s| &s.name == name)
    }
    /// The server that is not `name`.
    pub fn peer_of(&self, name: &ServerName) -> Option<&ServerSpec> {
        self.cluster.servers.iter().find(|s| &s.name != name)
    }
}
