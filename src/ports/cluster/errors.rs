//! The CLUSTERPRO error vocabulary: every code a [`crate::ports::Cluster`] error carries, what it
//! means and its [`ErrorClass`].
//!
//! Why this module exists: the executor decides by class (retry, already done, stop for a human),
//! so a code must mean the same and carry the same class whichever side produced it: the command
//! adapter, the REST adapter or the simulator. They all build their errors from [`ClpCode`]; the
//! simulator stands for the far side, so it keeps its own rules of *when* it answers a code.
//!
//! The names are mirrorctl's, not NEC's. NEC publishes no table of the `clp*` commands' exit codes
//! (0 is success, anything else failure; DOMAIN.md "CLUSTERPRO interfaces", [U]) and none of the
//! REST API's numeric `result.code` values (NEC's sample client `CLUSTERPRO/REST-API_App`,
//! `clusterapi.ts`, checks the message). So the adapters never classify a failure by its text or
//! number: they read the cluster's state before and after an operation and name the situation
//! with one of these codes. The rules behind each situation are cited where they live:
//! `src/sim/clusterpro.rs` (md offline to change its configuration, every server up to push it,
//! NEC's scripts suspending and resuming the cluster), `src/adapters/clusterpro/commands.rs`
//! (command lines from NEC's scripts, install directories: research/clusterpro-audit.md #3, #14)
//! and `src/adapters/clusterpro/rest.rs` (the API's paths, envelope and status words).
//!
//! A code has one class, except the few whose class depends on the case; those list every class
//! they may carry ([`ClpCode::classes`]) and are built with [`ClpCode::error_as`].

use super::super::{ErrorClass, PortError};

/// Declares [`ClpCode`]: each code with its doc, its class and any other class it may carry.
macro_rules! vocabulary {
    ($($(#[doc = $doc:literal])* $name:ident => $class:ident $(| $also:ident)*;)*) => {
        /// A CLUSTERPRO error code (see the module doc). Its string is the variant's name.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ClpCode {
            $($(#[doc = $doc])* $name,)*
        }

        impl ClpCode {
            /// Every code, in declaration order.
            pub const ALL: &'static [ClpCode] = &[$(ClpCode::$name,)*];

            /// The code as errors carry it ([`PortError::code`]).
            pub const fn code(self) -> &'static str {
                match self {
                    $(ClpCode::$name => stringify!($name),)*
                }
            }

            /// The class of an error with this code.
            pub const fn class(self) -> ErrorClass {
                match self {
                    $(ClpCode::$name => ErrorClass::$class,)*
                }
            }

            /// Every class an error with this code may carry; the first is [`Self::class`].
            pub const fn classes(self) -> &'static [ErrorClass] {
                match self {
                    $(ClpCode::$name => &[ErrorClass::$class $(, ErrorClass::$also)*],)*
                }
            }
        }
    };
}

vocabulary! {
    // --- names and membership ---
    /// The group is not in the cluster (status or `clp.conf`).
    GroupNotFound => NeedsHuman;
    /// The resource is not in the cluster.
    ResourceNotFound => NeedsHuman;
    /// The server is not in the cluster.
    ServerNotFound => NeedsHuman;
    /// A status or configuration read that no server answered as a running cluster member: every
    /// server is down, unreachable, or has its cluster service stopped (both inside NEC's restore
    /// processing). Observation records it as a fact, not a failure.
    ClusterUnreachable => Retryable;
    /// The server is not a running member (still starting, or out of the cluster while a
    /// configuration push needs every server). `NeedsHuman` when the simulated `clpbackup` /
    /// `clprestore` is asked to run on a stopped server.
    ServerDown => Retryable | NeedsHuman;
    /// The server has not joined the cluster yet (simulated `clpbackup` / `clprestore`).
    ServerNotMember => Retryable;

    // --- group and resource operations ---
    /// Another operation or a configuration push is in progress (a pending state).
    GroupBusy => Retryable;
    /// The group is already online on the requested server.
    GroupAlreadyStarted => AlreadyDone;
    /// The group is already offline.
    GroupAlreadyStopped => AlreadyDone;
    /// The group is online elsewhere, or online where it must be offline (a shutdown, an md
    /// configuration change, NEC's pre-processing).
    GroupOnline => NeedsHuman;
    /// The group is not online: there is nothing to move.
    GroupOffline => NeedsHuman;
    /// The group did not come online.
    GroupStartFailed => NeedsHuman;
    /// The group did not go offline.
    GroupStopFailed => Retryable;
    /// The group did not arrive on the target server.
    GroupMoveFailed => NeedsHuman;
    /// The resource is already online on the requested server.
    ResourceAlreadyStarted => AlreadyDone;
    /// The resource is already offline.
    ResourceAlreadyStopped => AlreadyDone;
    /// The resource, or one it depends on, is online on another server.
    ResourceOnline => NeedsHuman;
    /// The resource did not come online.
    ResourceStartFailed => NeedsHuman;
    /// The resource did not go offline.
    ResourceStopFailed => Retryable;
    /// The server is already down (or already shut down by NEC's pre-processing).
    ServerAlreadyDown => AlreadyDone;
    /// `clpdown` failed and the server is still a member.
    ServerShutdownFailed => NeedsHuman;
    /// `clpmdstat` failed for an md resource that exists.
    MirrorStatusFailed => Retryable;

    // --- configuration ---
    /// An md definition names a partition (or volume GUID) the server does not have.
    PartitionNotFound => NeedsHuman;
    /// A configuration push has not completed yet.
    ConfigBusy => Retryable;
    /// `clpcfctrl --pull` failed.
    ConfigPullFailed => Retryable;
    /// `clpcfctrl --push` failed with nothing in the cluster's state to explain it.
    ConfigPushFailed => NeedsHuman;
    /// `clpcl --suspend` failed after a push.
    ClusterSuspendFailed => Retryable;
    /// `clpcl --resume` failed after a push.
    ClusterResumeFailed => Retryable;
    /// `clp.conf` cannot be read, or would not be written back byte for byte.
    ClpConfUnreadable => NeedsHuman;
    /// md is to be re-added but its template (network settings, mount point, monitors,
    /// dependencies) is neither in the state store nor in `clp.conf`.
    MirrorTemplateMissing => NeedsHuman;

    // --- the commands themselves ---
    /// A `clp*` command is not installed where it was looked for, on any server.
    ClpCommandNotFound => NeedsHuman;
    /// A command's output is not in the shape the parser knows.
    ClpOutputUnreadable => NeedsHuman;
    /// The Windows volume GUID query failed.
    VolumeGuidFailed => NeedsHuman;

    // --- NEC's backup/restore pre- and post-processing (X 4.3+) ---
    /// `clpbackup --pre` / `clprestore --pre` failed.
    VendorPreFailed => NeedsHuman;
    /// `clpbackup --post` / `clprestore --post` failed.
    VendorPostFailed => NeedsHuman;
    /// The server already ran the pre-processing (simulator).
    AlreadyInVendorMode => AlreadyDone;
    /// The server is not inside the pre-processing: its post-processing already ran
    /// (`AlreadyDone`), or a post was asked for without a pre (`NeedsHuman`) (simulator).
    NotInVendorMode => AlreadyDone | NeedsHuman;
    /// The server is inside the other command's pre-processing (simulator).
    VendorModeMismatch => NeedsHuman;
    /// An option the command does not take, e.g. `--skip-copy` on `clpbackup` (simulator).
    InvalidOption => NeedsHuman;

    // --- the REST API (X 4.2+) ---
    /// No API server answered (connection refused, timeout, 5xx, or a GET refused).
    ApiUnreachable => Retryable;
    /// Every API server failed the TLS handshake (unknown CA, wrong name).
    ApiTlsFailure => NeedsHuman;
    /// HTTP 401/403.
    ApiAuthFailed => NeedsHuman;
    /// An answer that is not the API's envelope, or lacks a field.
    ApiInvalidResponse => Retryable;
    /// A client-side error answer (4xx other than 401/403).
    ApiRequestRejected => NeedsHuman;
    /// The API client cannot be built from the desired state (e.g. an unreadable CA bundle).
    ApiClientConfig => NeedsHuman;
    /// A POST answered with a non-zero `result.code` after the state checks passed (usually
    /// another operation started in between; the executor's budget bounds the retries).
    OperationRefused => Retryable;
    /// The operation did not finish within the operation timeout; the cluster may still finish it.
    OperationTimedOut => Retryable;
    /// The REST API has no endpoint for this (mirror status, configuration).
    NotSupportedByRestApi => NeedsHuman;

    // --- the adapter's own memory (state directory / store) ---
    /// The state directory cannot hold the `clp.conf` copies.
    StateDirectory => NeedsHuman;
    /// The state store cannot keep or give back an md template or the pending-resume marker;
    /// `Retryable` when the store says the failure is.
    StateStore => NeedsHuman | Retryable;
}

impl ClpCode {
    /// An error with this code, its class and `message`.
    pub fn error(self, message: impl Into<String>) -> PortError {
        PortError::new(self.code(), message, self.class())
    }

    /// An error with this code and `class`, for the codes whose class depends on the case;
    /// `class` must be one of [`Self::classes`].
    pub fn error_as(self, message: impl Into<String>, class: ErrorClass) -> PortError {
        debug_assert!(self.classes().contains(&class), "{self:?} never carries {class:?}");
        PortError::new(self.code(), message, class)
    }

    /// The code named `code`, if it is one.
    pub fn from_code(code: &str) -> Option<ClpCode> {
        Self::ALL.iter().copied().find(|c| c.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// The sources that build CLUSTERPRO errors: the simulator's CLUSTERPRO and every file of the
    /// CLUSTERPRO adapters, with their paths.
    fn sources() -> Vec<(std::path::PathBuf, String)> {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = vec![root.join("sim/clusterpro.rs"), root.join("sim/vendor.rs")];
        let mut dirs = vec![root.join("adapters/clusterpro")];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).expect("read the adapter's directory") {
                let path = entry.expect("a directory entry").path();
                if path.is_dir() {
                    dirs.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        files.into_iter().map(|f| (f.clone(), std::fs::read_to_string(&f).expect("read a source"))).collect()
    }

    fn production(text: &str) -> &str {
        text.split("#[cfg(test)]").next().unwrap_or(text)
    }

    /// Every `ClpCode::Name` written in `text`.
    fn used_names(text: &str) -> Vec<&str> {
        text.match_indices("ClpCode::")
            .map(|(at, m)| {
                let rest = &text[at + m.len()..];
                let end = rest.find(|c: char| !c.is_ascii_alphanumeric() && c != '_').unwrap_or(rest.len());
                &rest[..end]
            })
            .filter(|name| name.chars().next().is_some_and(|c| c.is_ascii_uppercase()))
            .collect()
    }

    #[test]
    fn codes_are_unique_and_round_trip() {
        let codes: BTreeSet<&str> = ClpCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes.len(), ClpCode::ALL.len());
        for c in ClpCode::ALL {
            assert_eq!(ClpCode::from_code(c.code()), Some(*c));
            assert_eq!(c.classes()[0], c.class());
            let e = c.error("m");
            assert_eq!((e.code.as_str(), e.class, e.message.as_str()), (c.code(), c.class(), "m"));
        }
        assert_eq!(ClpCode::from_code("NoSuchCode"), None);
    }

    #[test]
    fn every_code_the_simulator_and_the_adapters_use_is_in_the_vocabulary() {
        let sources = sources();
        assert!(sources.len() > 8, "the adapter's files were found");
        for (path, text) in &sources {
            let path = path.display();
            let text = production(text);
            for name in used_names(text) {
                assert!(ClpCode::from_code(name).is_some(), "{path}: ClpCode::{name} is not in the vocabulary");
            }
            // No error is built from a literal code: each comes from the vocabulary.
            for (at, _) in text.match_indices("PortError::new(") {
                let arg = text[at + "PortError::new(".len()..].trim_start();
                assert!(
                    !arg.starts_with('"'),
                    "{path}: a PortError with a literal code: {}",
                    &arg[..arg.len().min(60)]
                );
            }
            assert!(
                !text.contains("fn clp_err(") && !text.contains("fn err(code: &str"),
                "{path}: errors are built with ClpCode::error"
            );
        }
    }

    #[test]
    fn the_classes_the_executor_relies_on() {
        use ClpCode as C;
        use ErrorClass::{AlreadyDone, NeedsHuman, Retryable};
        for (code, class) in [
            (C::GroupAlreadyStarted, AlreadyDone),
            (C::GroupBusy, Retryable),
            (C::GroupOnline, NeedsHuman),
            (C::GroupStopFailed, Retryable),
            (C::GroupStartFailed, NeedsHuman),
            (C::ClusterUnreachable, Retryable),
            (C::ClpCommandNotFound, NeedsHuman),
            (C::OperationRefused, Retryable),
            (C::ApiAuthFailed, NeedsHuman),
        ] {
            assert_eq!(code.class(), class, "{code:?}");
        }
        assert_eq!(C::ServerDown.classes(), &[Retryable, NeedsHuman]);
    }
}
