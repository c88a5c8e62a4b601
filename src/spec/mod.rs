//! Desired state: one TOML file per cluster (`desired-state/NAME.toml`).
//!
//! Why this module exists: the file is the operator's only way to tell mirrorctl what to do to a
//! production disk, so a mistake in it must be caught before anything happens and reported with
//! the file, line, column and key path. `types` holds the validated form the rest of the program
//! uses; loading and checking live beside it.

pub mod types;

pub use types::{
    Access, ApiSpec, BackupSpec, ClusterSpec, MirrorSpec, Os, Partition, RestoreSpec, Schedule, SecretRef, ServerSpec,
    Spec, VolumeSpec, VolumeType,
};
