//! The [`Node`] port over a command transport: each disk operation is one recipe script
//! ([`super::recipes`]) run on the server, its single JSON document parsed back.
//!
//! Why this module exists: the disk work of a restore (offline, online, drive letters) is the same
//! whether the script travels through SSM or runs on this host; only the [`Transport`] differs.
//! This adapter is written once above the transport, and turns every way a recipe can fail into a
//! [`PortError`] whose class the executor can act on:
//!
//! | recipe outcome                            | code               | class        |
//! |-------------------------------------------|--------------------|--------------|
//! | `{"ok":false,"code":"not_found"}`         | `DiskNotFound`     | retryable (a disk appears a moment after its attach) |
//! | `{"ok":false,"code":"mounted"}`           | `Mounted`          | needs human (someone must unmount) |
//! | `{"ok":false,"code":"failed"}` (or other) | `DiskRecipeFailed` | needs human  |
//! | output that is not the recipe's JSON (a change without its disk list included) | `DiskRecipeOutput` | needs human |
//! | the interpreter exited non-zero           | `DiskRecipeExit`   | needs human  |
//! | drive letters on Linux                    | `NotSupported`     | needs human  |
//! | a letter outside A–Z                      | `InvalidLetter`    | needs human  |
//!
//! Transport errors (timeouts, SSM errors) pass through unchanged. The codes match the simulated
//! node's, so the planner and executor see the same world either way.

use std::sync::Arc;
use std::time::Duration;

use super::recipes::{self, DiskOp, RecipeError};
use super::transport::{Shell, Transport};
use crate::ids::{ServerName, VolumeId};
use crate::ports::node::{Disk, Node};
use crate::ports::{ErrorClass, PortError, PortResult};
use crate::spec::Os;

/// Time limits of the recipes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecipeTimeouts {
    /// Listing the disks (`Get-Disk` / `lsblk`).
    pub list: Duration,
    /// Changing a disk (offline, online, letter): `Set-Disk` may wait for the storage stack.
    pub change: Duration,
}

impl Default for RecipeTimeouts {
    /// 60 s to list, 120 s to change.
    fn default() -> Self {
        RecipeTimeouts { list: Duration::from_mins(1), change: Duration::from_mins(2) }
    }
}

/// The node port running the disk recipes of `os` through a transport.
#[derive(Clone)]
pub struct RecipeNode {
    os: Os,
    transport: Arc<dyn Transport>,
    timeouts: RecipeTimeouts,
}

impl std::fmt::Debug for RecipeNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecipeNode").field("os", &self.os).field("timeouts", &self.timeouts).finish_non_exhaustive()
    }
}

impl RecipeNode {
    /// The port for servers running `os`, reached through `transport`, default time limits.
    pub fn new(os: Os, transport: Arc<dyn Transport>) -> Self {
        RecipeNode { os, transport, timeouts: RecipeTimeouts::default() }
    }

    /// The same port with other time limits.
    #[must_use]
    pub fn with_timeouts(mut self, timeouts: RecipeTimeouts) -> Self {
        self.timeouts = timeouts;
        self
    }

    /// Runs the recipe of `op` on `server`; returns what it printed.
    async fn run(&self, server: &ServerName, op: &DiskOp) -> PortResult<String> {
        let script = recipes::script(self.os, op).map_err(|e| recipe_error(server, &e))?;
        let timeout = if *op == DiskOp::List { self.timeouts.list } else { self.timeouts.change };
        let out = self.transport.run(server, Shell::for_os(self.os), &script, timeout).await?;
        let out = out.success(&format!("{server}: the disk recipe"), "DiskRecipeExit", ErrorClass::NeedsHuman)?;
        Ok(out.stdout)
    }

    /// Runs a change; returns the disks it left (the recipe lists them after the change).
    async fn change(&self, server: &ServerName, op: DiskOp) -> PortResult<Vec<Disk>> {
        let printed = self.run(server, &op).await?;
        let outcome = recipes::parse_outcome(&printed).map_err(|e| recipe_error(server, &e))?;
        for w in &outcome.warnings {
            tracing::warn!(%server, ?op, warning = %w, "disk recipe warning");
        }
        tracing::debug!(%server, ?op, changed = outcome.changed, "disk recipe done");
        Ok(outcome.disks)
    }
}

/// The port error for a recipe failure on `server` (see the module table).
pub fn recipe_error(server: &ServerName, e: &RecipeError) -> PortError {
    let (code, class) = match e {
        RecipeError::NotFound(_) => ("DiskNotFound", ErrorClass::Retryable),
        RecipeError::Mounted(_) => ("Mounted", ErrorClass::NeedsHuman),
        RecipeError::Failed(_) => ("DiskRecipeFailed", ErrorClass::NeedsHuman),
        RecipeError::Output(_) => ("DiskRecipeOutput", ErrorClass::NeedsHuman),
        RecipeError::Unsupported { .. } => ("NotSupported", ErrorClass::NeedsHuman),
        RecipeError::BadLetter(_) => ("InvalidLetter", ErrorClass::NeedsHuman),
    };
    PortError::new(code, format!("{server}: {e}"), class)
}

#[async_trait::async_trait]
impl Node for RecipeNode {
    async fn disks(&self, server: &ServerName) -> PortResult<Vec<Disk>> {
        let printed = self.run(server, &DiskOp::List).await?;
        recipes::parse_disks(&printed).map_err(|e| recipe_error(server, &e))
    }

    async fn set_offline(&self, server: &ServerName, volume: &VolumeId) -> PortResult<Vec<Disk>> {
        self.change(server, DiskOp::Offline(volume.clone())).await
    }

    async fn set_online(&self, server: &ServerName, volume: &VolumeId) -> PortResult<Vec<Disk>> {
        self.change(server, DiskOp::Online(volume.clone())).await
    }

    async fn set_letter(
        &self,
        server: &ServerName,
        volume: &VolumeId,
        number: u32,
        letter: char,
    ) -> PortResult<Vec<Disk>> {
        self.change(server, DiskOp::SetLetter { volume: volume.clone(), partition: number, letter }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_failures_get_the_simulators_codes() {
        let s = ServerName::parse("server1").expect("name");
        let cases = [
            (RecipeError::NotFound("x".into()), "DiskNotFound", ErrorClass::Retryable),
            (RecipeError::Mounted("x".into()), "Mounted", ErrorClass::NeedsHuman),
            (RecipeError::Failed("x".into()), "DiskRecipeFailed", ErrorClass::NeedsHuman),
            (RecipeError::Output("x".into()), "DiskRecipeOutput", ErrorClass::NeedsHuman),
            (RecipeError::Unsupported { op: "x", os: Os::Linux }, "NotSupported", ErrorClass::NeedsHuman),
            (RecipeError::BadLetter('1'), "InvalidLetter", ErrorClass::NeedsHuman),
        ];
        for (e, code, class) in cases {
            let p = recipe_error(&s, &e);
            assert_eq!((p.code.as_str(), p.class), (code, class));
            assert!(p.message.starts_with("server1: "), "{}", p.message);
        }
    }
}
