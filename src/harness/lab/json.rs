//! `mirrorctl lab -o json`: the lab's story as one JSON document for scripts.
//!
//! Why this module exists: the text output is a story for people; a script (or a test) needs the
//! same facts as fields. Times are seconds labelled model or wall, timestamps RFC 3339, each check
//! a stable id with `ok`; the progress events are those of `apply -o json`
//! ([`crate::cli::apply::event_json`]).

use std::path::Path;

use super::Check;
use crate::sim::SimWorld;
use crate::spec::ProcedureChoice;

/// What one lab run found.
pub(super) struct Facts<'a> {
    pub(super) world: &'a SimWorld,
    pub(super) cluster: &'a str,
    pub(super) os: &'a str,
    pub(super) seed: u64,
    pub(super) speed: f64,
    pub(super) procedure: ProcedureChoice,
    pub(super) fast_restore: bool,
    /// md resources of the cluster.
    pub(super) mirrors: u8,
    /// The first md's backup snapshot.
    pub(super) snapshot: &'a str,
    /// Each md's backup snapshot.
    pub(super) snapshots: &'a [(crate::ids::ResourceName, crate::ids::SnapshotId)],
    /// Model seconds from the restore's request to its convergence.
    pub(super) restore_s: f64,
    /// Real seconds of the whole run.
    pub(super) wall_s: f64,
    /// Progress events, as `apply -o json` prints them.
    pub(super) events: Vec<serde_json::Value>,
    pub(super) checks: &'a [Check],
    /// Where the final world was saved, or why it was not.
    pub(super) saved: Result<&'a Path, String>,
    /// The journal and status directory.
    pub(super) state: &'a Path,
}

/// The document.
pub(super) fn document(f: &Facts<'_>) -> serde_json::Value {
    let start = f.world.scenario().epoch;
    let timeline: Vec<serde_json::Value> = f
        .world
        .timeline()
        .into_iter()
        .map(|(at, entry)| {
            serde_json::json!({"at": at.to_string(), "t_s": at.duration_since(start).as_secs_f64(), "entry": entry})
        })
        .collect();
    let checks: Vec<serde_json::Value> =
        f.checks.iter().map(|c| serde_json::json!({"check": c.id, "ok": c.ok})).collect();
    let (world_file, world_error) = match &f.saved {
        Ok(p) => (Some(p.display().to_string()), None),
        Err(e) => (None, Some(e.clone())),
    };
    serde_json::json!({
        "cluster": f.cluster,
        "os": f.os,
        "seed": f.seed,
        "speed": f.speed,
        "procedure": f.procedure,
        "fast_restore": f.fast_restore,
        "mirrors": f.mirrors,
        "snapshot": f.snapshot,
        "snapshots": f.snapshots.iter().map(|(md, s)| (md.to_string(), s.to_string())).collect::<std::collections::BTreeMap<_, _>>(),
        "restore_model_s": f.restore_s,
        "model_s": f.world.now().duration_since(start).as_secs_f64(),
        "wall_s": f.wall_s,
        "events": f.events,
        "timeline": timeline,
        "api_calls": f.world.call_counts(),
        "checks": checks,
        "verified": f.checks.iter().all(|c| c.ok),
        "world_file": world_file,
        "world_file_error": world_error,
        "state_dir": f.state.display().to_string(),
    })
}
