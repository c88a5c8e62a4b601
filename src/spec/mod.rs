//! Desired state: one TOML file per cluster (`desired-state/NAME.toml`).
//!
//! Why this module exists: the file is the operator's only way to tell mirrorctl what to do to a
//! production disk, so a mistake in it must be caught before anything happens and reported with
//! the file, line, column and key path. `types` holds the validated form the rest of the program
//! uses; `load` turns a file into it (through the loose shapes of `raw`), `error` renders what is
//! wrong, and `validate` checks a whole set of files for `mirrorctl validate`.

mod error;
mod load;
mod raw;
mod schedule;
pub mod types;
mod validate;

pub(crate) use error::Source;
pub use error::{ErrorKind, SpecError, SpecErrors};
pub use load::{load_file, load_notify, load_str};
pub(crate) use load::{parse_cron, parser_error};
pub use types::{
    Access, ApiSpec, ApiTls, BackupRestoreSpec, BackupSpec, ClusterSpec, CopyTarget, Every, MirrorSpec, NoticeKind,
    NotifySpec, Os, Partition, ProcedureChoice, RestoreSpec, RoleSpec, Schedule, ScheduleSpec, SecretRef, ServerSpec,
    SnsTopic, Spec, VolumeSpec, VolumeType, WebhookSpec,
};
pub use validate::{EXIT_INVALID, ValidateReport, validate_paths};
