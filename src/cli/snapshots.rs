//! `mirrorctl snapshots NAME|FILE --world aws|lab [-o json]`: the cluster's backups as EC2 has
//! them, newest first — the list an operator picks `restore.snapshot` (an id) or
//! `restore.backup` (a name) from.
//!
//! Why this module exists: choosing the snapshot to restore from is the one decision of a restore
//! that discards data (every write after the snapshot's point in time). The status document lists
//! only what the last pass observed; this asks EC2 now (`DescribeSnapshots`, owner self, filtered
//! by the `mirrorctl:cluster` tag every backup carries) and shows each snapshot's name (its
//! `mirrorctl:request` tag), point in time (`StartTime`: fixed when `CreateSnapshot` returned), state,
//! progress and size, and for a snapshot of a set what its volume holds and where it was attached
//! (`mirrorctl:holds`, `mirrorctl:device`). On AWS only EC2 is asked, after the usual account
//! line; CLUSTERPRO and the servers are not contacted.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::{CliError, Output, WorldArgs, WorldKind};
use crate::ports::cloud::{Cloud, Snapshot, SnapshotFilter, tag};
use crate::ports::store::Store;
use crate::spec::Spec;

/// One backup, as `-o json` gives it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupRow {
    /// Snapshot id.
    pub id: String,
    /// The backup's name (`mirrorctl:request` tag); `null` when untagged.
    pub name: Option<String>,
    /// Its point in time (EC2 `StartTime`), RFC 3339.
    pub time: jiff::Timestamp,
    /// `pending`, `completed` or `error`, as EC2 says.
    pub state: crate::ports::cloud::SnapshotState,
    /// Percent uploaded, 0–100.
    pub progress: u8,
    /// Size of the volume it was taken from, GiB.
    pub size_gib: u32,
    /// The server whose volume it was taken from (`mirrorctl:server` tag).
    pub server: Option<String>,
    /// What its volume holds (`mirrorctl:holds` tag of a snapshot set's member, e.g.
    /// `md1:cluster+data`); `null` when untagged.
    pub holds: Option<String>,
    /// The device its volume was attached at (`mirrorctl:device` tag, e.g. `/dev/sdx`); `null`
    /// when untagged.
    pub device: Option<String>,
}

impl BackupRow {
    fn of(s: &Snapshot) -> BackupRow {
        BackupRow {
            id: s.id.to_string(),
            name: s.tags.get(tag::REQUEST).cloned(),
            time: s.started,
            state: s.state,
            progress: s.progress,
            size_gib: s.size_gib,
            server: s.tags.get(tag::SERVER).cloned(),
            holds: s.tags.get(tag::HOLDS).cloned(),
            device: s.tags.get(tag::DEVICE).cloned(),
        }
    }
}

/// The cluster's snapshots (tag `mirrorctl:cluster` = its name), newest first.
pub async fn list(cloud: &dyn Cloud, spec: &Spec) -> Result<Vec<Snapshot>, crate::ports::PortError> {
    let filter = SnapshotFilter {
        tags: [(tag::CLUSTER.to_owned(), spec.cluster.name.to_string())].into_iter().collect(),
        ..SnapshotFilter::default()
    };
    let mut snaps = cloud.describe_snapshots(&filter).await?;
    snaps.sort_by(|a, b| b.started.cmp(&a.started).then_with(|| a.id.as_str().cmp(b.id.as_str())));
    Ok(snaps)
}

/// The desired-state file `target` names: the file itself, or `desired-state/<NAME>.toml`.
pub fn resolve(target: &str) -> Result<PathBuf, CliError> {
    let as_file = Path::new(target);
    if as_file.is_file() {
        return Ok(as_file.to_owned());
    }
    let by_name = Path::new("desired-state").join(format!("{target}.toml"));
    if by_name.is_file() {
        return Ok(by_name);
    }
    Err(CliError::Usage(format!(
        "{target} is neither a desired-state file nor a cluster with a file {}; give the file's path",
        by_name.display()
    )))
}

/// The text table.
pub fn render(cluster: &str, rows: &[BackupRow], now: jiff::Timestamp) -> String {
    let mut s = String::new();
    if rows.is_empty() {
        let _ = writeln!(s, "no snapshots tagged {}={cluster} in this account and region", tag::CLUSTER);
        return s;
    }
    let _ = writeln!(s, "snapshots of cluster {cluster}, newest first (time = the snapshot's point in time):");
    let _ =
        writeln!(s, "  {:<24} {:<28} {:<22} {:<10} {:>5} {:>8}  server", "id", "name", "time", "state", "done", "size");
    for r in rows {
        let age = crate::execute::progress::span(now.duration_since(r.time));
        // A snapshot of a set says what its volume holds and where it was attached.
        let holds = match (&r.holds, &r.device) {
            (None, None) => String::new(),
            (h, d) => {
                format!("   holds {} at {}", h.as_deref().unwrap_or("(untagged)"), d.as_deref().unwrap_or("(untagged)"))
            }
        };
        let _ = writeln!(
            s,
            "  {:<24} {:<28} {:<22} {:<10} {:>4}% {:>5} GiB  {}   ({age} ago){holds}",
            r.id,
            r.name.as_deref().unwrap_or("-"),
            r.time.strftime("%Y-%m-%d %H:%M:%SZ").to_string(),
            crate::plan::candidates::state_word(r.state),
            r.progress,
            r.size_gib,
            r.server.as_deref().unwrap_or("-"),
        );
    }
    s
}

/// Runs `snapshots`.
pub async fn run(
    state_dir: &Path,
    store: Arc<dyn Store>,
    target: &str,
    world: &WorldArgs,
    output: Output,
) -> Result<u8, CliError> {
    let kind = world.kind()?;
    let spec = super::load_spec(&resolve(target)?)?;
    let (cloud, now): (Arc<dyn Cloud>, jiff::Timestamp) = match kind {
        WorldKind::Aws => {
            let who = super::world::aws_identity(&spec).await?;
            if output == Output::Text {
                println!("world: {who}");
            }
            let region = spec.cluster.region.clone();
            let shared = crate::adapters::aws::load_sdk_config(&region, None).await;
            let cloud = crate::adapters::aws::AwsCloud::from_sdk_config(
                &shared,
                &crate::adapters::aws::AwsOptions::new(region),
            );
            (Arc::new(cloud), jiff::Timestamp::now())
        }
        WorldKind::Lab => {
            let w = super::world::open(world, state_dir, store, &spec).await?;
            let now = w.ports.clock.now();
            (w.ports.cloud, now)
        }
    };
    let snaps = list(cloud.as_ref(), &spec)
        .await
        .map_err(|e| CliError::caused(format!("listing the snapshots of {}", spec.cluster.name), e))?;
    let rows: Vec<BackupRow> = snaps.iter().map(BackupRow::of).collect();
    match output {
        Output::Text => print!("{}", render(spec.cluster.name.as_str(), &rows, now)),
        Output::Json => {
            let body = serde_json::json!({"cluster": spec.cluster.name.to_string(), "snapshots": rows});
            println!("{}", serde_json::to_string_pretty(&body).map_err(CliError::other)?);
        }
    }
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::cloud::SnapshotState;

    fn snapshot(id: &str, tags: &[(&str, &str)]) -> Snapshot {
        Snapshot {
            id: crate::ids::SnapshotId::parse(id).expect("a snapshot id"),
            volume: None,
            size_gib: 8,
            state: SnapshotState::Completed,
            progress: 100,
            started: "2026-12-01T02:00:00Z".parse().expect("a time"),
            tags: tags.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }
    }

    #[test]
    fn a_set_snapshot_shows_what_it_holds_and_where_it_was_attached() {
        let member = snapshot(
            "snap-0aaaaaaaaaaaaaaa1",
            &[(tag::REQUEST, "nightly"), (tag::HOLDS, "md1:cluster+data"), (tag::DEVICE, "/dev/sdy")],
        );
        let single = snapshot("snap-0aaaaaaaaaaaaaaa2", &[(tag::REQUEST, "b1")]);
        let rows: Vec<BackupRow> = [&member, &single].into_iter().map(BackupRow::of).collect();
        let json = serde_json::to_value(&rows).expect("rows serialize");
        assert_eq!(json[0]["holds"], "md1:cluster+data");
        assert_eq!(json[0]["device"], "/dev/sdy");
        assert!(json[1]["holds"].is_null() && json[1]["device"].is_null(), "{json}");
        let text = render("prod-db", &rows, "2026-12-01T03:00:00Z".parse().expect("a time"));
        let line = |id: &str| text.lines().find(|l| l.contains(id)).unwrap_or_default().to_owned();
        assert!(line("snap-0aaaaaaaaaaaaaaa1").ends_with("holds md1:cluster+data at /dev/sdy"), "{text}");
        assert!(!line("snap-0aaaaaaaaaaaaaaa2").contains("holds"), "{text}");
    }
}
