//! The adapter's local `clp.conf` store: the pulled and pushed copies kept byte for byte in the
//! state directory, and the md templates and the pending-resume marker in the state store (see
//! the parent module's "Configuration" and "Crash safety").

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::PENDING_RESUME;
use crate::adapters::clusterpro::conf::MirrorTemplate;
use crate::ids::{ClusterName, ResourceName};
use crate::ports::cluster::errors::ClpCode;
use crate::ports::store::{Store, StoreError};
use crate::ports::{ErrorClass, PortError, PortResult};

/// Copies of `clp.conf` under [`conf_dir`] on this host; the md templates and the pending-resume
/// marker in the state store (see the module doc: another host must find them).
#[derive(Clone)]
pub(super) struct ConfStore {
    pub(super) dir: PathBuf,
    pub(super) cluster: ClusterName,
    pub(super) files: Arc<dyn Store>,
}

pub(super) fn store_error(what: &str, path: &Path, e: &std::io::Error) -> PortError {
    ClpCode::StateDirectory.error(format!(
        "cannot {what} {}: {e} (mirrorctl keeps clp.conf copies and md templates there before changing the \
             cluster's configuration; fix the state directory)",
        path.display()
    ))
}

/// A state store failure while keeping an md template or the pending-resume marker.
pub(super) fn state_store_error(what: &str, e: &StoreError) -> PortError {
    let class = match e {
        StoreError::Failed { retryable: true, .. } => ErrorClass::Retryable,
        _ => ErrorClass::NeedsHuman,
    };
    ClpCode::StateStore.error_as(format!("cannot {what} before changing the cluster's configuration: {e}"), class)
}

/// Makes a rename or a new file in `dir` durable (best effort).
impl ConfStore {
    pub(super) fn create_dir(&self) -> PortResult<()> {
        std::fs::create_dir_all(&self.dir).map_err(|e| store_error("create", &self.dir, &e))
    }

    /// Where templates are kept, for messages: the store, and where this host's copies are.
    pub(super) fn describe(&self) -> String {
        format!("{} (this host's clp.conf copies: {})", self.files.name(), self.dir.display())
    }

    /// Writes `bytes` to a new file `<UTC time>-<kind>.conf` (a numbered suffix when that name
    /// exists): an earlier copy is never overwritten.
    pub(super) fn keep(&self, kind: &str, bytes: &[u8]) -> PortResult<PathBuf> {
        self.create_dir()?;
        let now = jiff::Timestamp::now();
        let stamp = format!("{}{:03}Z", now.strftime("%Y%m%dT%H%M%S."), now.subsec_millisecond());
        for n in 0u32.. {
            let name = if n == 0 { format!("{stamp}-{kind}.conf") } else { format!("{stamp}-{kind}-{n}.conf") };
            let path = self.dir.join(name);
            match std::fs::OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(mut f) => {
                    f.write_all(bytes)
                        .and_then(|()| f.sync_all())
                        .and_then(|()| crate::durable::sync_dir(&self.dir))
                        .map_err(|e| store_error("write", &path, &e))?;
                    return Ok(path);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(store_error("create", &path, &e)),
            }
        }
        Err(store_error("name", &self.dir, &std::io::Error::other("no free file name")))
    }

    pub(super) fn template_name(resource: &ResourceName) -> String {
        format!("template-{resource}.json")
    }

    pub(super) async fn save_template(&self, t: &MirrorTemplate) -> PortResult<()> {
        let name = Self::template_name(t.resource());
        let body = serde_json::to_vec_pretty(t)
            .map_err(|e| store_error("encode", &self.dir.join(&name), &std::io::Error::other(e)))?;
        self.files
            .write_cluster_file(&self.cluster, &name, &body)
            .await
            .map_err(|e| state_store_error("keep the md template", &e))
    }

    pub(super) async fn load_template(&self, resource: &ResourceName) -> PortResult<Option<MirrorTemplate>> {
        let name = Self::template_name(resource);
        let Some(body) = self
            .files
            .read_cluster_file(&self.cluster, &name)
            .await
            .map_err(|e| state_store_error("read the md template", &e))?
        else {
            return Ok(None);
        };
        serde_json::from_slice(&body).map(Some).map_err(|e| {
            ClpCode::StateStore.error(format!("the md template {name} in {} is unreadable: {e}", self.files.name()))
        })
    }

    pub(super) async fn pending_resume(&self) -> PortResult<bool> {
        self.files
            .read_cluster_file(&self.cluster, PENDING_RESUME)
            .await
            .map(|f| f.is_some())
            .map_err(|e| state_store_error("read the pending-resume marker", &e))
    }

    pub(super) async fn set_pending_resume(&self, pushed: &Path) -> PortResult<()> {
        let body = format!("{}\n", pushed.display());
        self.files
            .write_cluster_file(&self.cluster, PENDING_RESUME, body.as_bytes())
            .await
            .map_err(|e| state_store_error("mark the push as pending a resume", &e))
    }

    pub(super) async fn clear_pending_resume(&self) -> PortResult<()> {
        self.files
            .remove_cluster_file(&self.cluster, PENDING_RESUME)
            .await
            .map_err(|e| state_store_error("clear the pending-resume marker", &e))
    }
}
