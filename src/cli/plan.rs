//! `mirrorctl plan FILE`: what the next reconcile would do now, and the whole sequence after it,
//! Terraform-style.
//!
//! It observes the world once and prints the steps the planner would run now (they are the ones
//! whose "already done?" check fails), what it would wait for, or why it is blocked; then, on the
//! lab world, every later step to the end of the operation, projected on a throw-away copy of the
//! world ([`super::project`]; on AWS it says where the projection stops). `-o json` prints the
//! plan as JSON; `--out` saves it with what it was made from: the SHA-256 of the desired-state
//! file's bytes and a fingerprint of each part of the observed world. `apply --plan` refuses the
//! saved plan when either changed, naming which (exit [`super::EXIT_STALE_PLAN`]). Exit 0 nothing
//! to do, 2 changes pending (or waiting / blocked), 1 error.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{CliError, EXIT_CHANGES, Output, WorldArgs};
use sha2::{Digest, Sha256};

use crate::plan::{Outcome, Plan};
use crate::reconcile::{Context, open_journal, plan_once};

/// A saved plan.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SavedPlan {
    /// The desired-state file it was made from.
    pub file: std::path::PathBuf,
    /// SHA-256 of that file's bytes when the plan was made (hex). Empty in plans saved before
    /// files were pinned: `apply --plan` refuses those.
    #[serde(default)]
    pub file_sha256: String,
    /// Fingerprint of the observed state.
    pub fingerprint: String,
    /// Fingerprint of each part of the observed state ([`world_parts`]), so a refusal can say
    /// what changed.
    #[serde(default)]
    pub world: BTreeMap<String, String>,
    /// The plan.
    pub plan: Plan,
    /// When the plan's next step is a preflight: its checks, run while planning (they change
    /// nothing), so the whole operation can be judged before it starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preflight: Option<Vec<crate::ports::cluster::Check>>,
    /// The whole sequence to the end, projected on a copy of the lab world; `None` on AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection: Option<crate::world::project::Projection>,
    /// Where and why the projection stops short of the end (AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projection_limit: Option<String>,
    /// Before a restore swaps any volume: what it discards and what it keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub restore_impact: Option<RestoreImpact>,
}

/// What a restore about to run discards and keeps: shown by `plan` before any volume is swapped.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestoreImpact {
    /// The snapshot restored from.
    pub snapshot: String,
    /// Its backup name (`mirrorctl:request` tag), if it is one of mirrorctl's backups.
    pub snapshot_name: Option<String>,
    /// Its point in time (EC2 `StartTime`): the data both servers will hold.
    pub snapshot_time: jiff::Timestamp,
    /// The writes that will be lost: from the snapshot's point in time to the time of the look.
    pub lost_from: jiff::Timestamp,
    /// End of that window (the observation's time; writes go on until the group stops).
    pub lost_to: jiff::Timestamp,
    /// Its length in seconds.
    pub lost_seconds: f64,
    /// The volumes the restore replaces, per server.
    pub replaced: Vec<ReplacedVolume>,
}

/// A mirror volume a restore replaces (kept, never deleted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplacedVolume {
    /// Server.
    pub server: String,
    /// The volume attached at the mirror device now.
    pub volume: String,
    /// Its zone.
    pub zone: String,
    /// Its size, GiB.
    pub size_gib: u32,
}

/// The impact of the restore `plan` pursues, while the servers still hold their old volumes;
/// `None` for anything else, or once no old volume is left at the device.
pub fn restore_impact(spec: &crate::spec::Spec, obs: &crate::observe::Observed, plan: &Plan) -> Option<RestoreImpact> {
    use crate::ports::cloud::tag;
    let Some(crate::plan::OpId::Restore(request)) = &plan.op else { return None };
    let r = spec.restore.as_ref().filter(|r| &r.request == request)?;
    let snap = obs.snapshot(&r.snapshot)?;
    let replaced: Vec<ReplacedVolume> = spec
        .cluster
        .servers
        .iter()
        .filter_map(|s| {
            let (v, _) = crate::plan::restore::at_device(spec, obs, s)?;
            // A volume this request made is not replaced but the result.
            (v.tags.get(tag::REQUEST).map(String::as_str) != Some(request.as_str())).then(|| ReplacedVolume {
                server: s.name.to_string(),
                volume: v.id.to_string(),
                zone: v.zone.to_string(),
                size_gib: v.size_gib,
            })
        })
        .collect();
    if replaced.is_empty() {
        return None;
    }
    Some(RestoreImpact {
        snapshot: snap.id.to_string(),
        snapshot_name: snap.tags.get(tag::REQUEST).cloned(),
        snapshot_time: snap.started,
        lost_from: snap.started,
        lost_to: obs.now,
        lost_seconds: (obs.now.duration_since(snap.started).as_secs_f64().max(0.0) * 10.0).round() / 10.0,
        replaced,
    })
}

/// The text of a restore's impact.
pub fn render_impact(i: &RestoreImpact) -> String {
    let time = |t: jiff::Timestamp| t.strftime("%Y-%m-%d %H:%M:%SZ").to_string();
    let mut s = String::from("\nWhat this restore discards and keeps (review before applying):\n");
    let _ = writeln!(
        s,
        "  restores from:  {}{}, its point in time {}",
        i.snapshot,
        i.snapshot_name.as_ref().map_or_else(String::new, |n| format!(" (backup {n})")),
        time(i.snapshot_time)
    );
    let _ = writeln!(
        s,
        "  LOST:           every write after that point: {} of writes so far ({} → {}, and on until the group stops)",
        crate::execute::progress::span(jiff::SignedDuration::from_secs_f64(i.lost_seconds)),
        time(i.lost_from),
        time(i.lost_to)
    );
    for (n, v) in i.replaced.iter().enumerate() {
        let head = if n == 0 { "replaced:" } else { "" };
        let _ = writeln!(s, "  {head:<15} {} on {} ({} GiB, {})", v.volume, v.server, v.size_gib, v.zone);
    }
    let _ = writeln!(
        s,
        "  kept:           the replaced volumes stay, detached and tagged mirrorctl:superseded-by=<new volume>; \
         mirrorctl never deletes them"
    );
    s
}

/// SHA-256 of a file's bytes, hex.
pub fn file_sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// A fingerprint of each part of an observation (EC2 instances, volumes, snapshots, CLUSTERPRO
/// status, configuration, mirror, the servers' disks), each hashed on its own. Left out: the time
/// of the look, how far a pending snapshot has uploaded and how far EBS has loaded a restored
/// volume — they move by themselves and no decision of the planner turns on them. A snapshot
/// going from pending to completed does count (a restore and retention turn on it): a plan saved
/// while a backup's snapshot uploads is refused once it completes, and is made again.
pub fn world_parts(obs: &crate::observe::Observed) -> BTreeMap<String, String> {
    fn h<T: Serialize>(v: &T) -> String {
        hex::encode(&Sha256::digest(serde_json::to_vec(v).unwrap_or_default())[..8])
    }
    let snapshots: Vec<_> = obs
        .snapshots
        .iter()
        .map(|s| {
            let mut s = s.clone();
            s.progress = 0;
            s
        })
        .collect();
    [
        ("EC2 instances", h(&(&obs.instances, &obs.shutdown))),
        ("EC2 volumes", h(&obs.volumes)),
        ("EC2 snapshots", h(&snapshots)),
        ("CLUSTERPRO status", h(&obs.cluster)),
        ("CLUSTERPRO configuration", h(&obs.config)),
        ("mirror", if obs.other_mirrors.is_empty() { h(&obs.mirror) } else { h(&(&obs.mirror, &obs.other_mirrors)) }),
        ("servers' disks", h(&obs.disks)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Why a saved plan no longer matches the file and the world now; `None` when it still does.
pub fn stale_reasons(
    saved: &SavedPlan,
    file: &Path,
    file_sha256: &str,
    world: &BTreeMap<String, String>,
) -> Option<String> {
    let mut why = Vec::new();
    if saved.file_sha256.is_empty() {
        why.push("it does not record the desired-state file it was made from (saved by an older mirrorctl)".to_owned());
    } else if saved.file_sha256 != file_sha256 {
        why.push(format!("the desired-state file {} changed since the plan was saved", file.display()));
    }
    if saved.world.is_empty() {
        why.push("it does not record the world it was made from (saved by an older mirrorctl)".to_owned());
    } else {
        let changed: Vec<&str> =
            world.iter().filter(|(k, v)| saved.world.get(*k) != Some(*v)).map(|(k, _)| k.as_str()).collect();
        if !changed.is_empty() {
            why.push(format!("the world changed since the plan was saved ({})", changed.join(", ")));
        }
    }
    (!why.is_empty()).then(|| why.join("; and "))
}
/// Renders a preflight's checks for a terminal.
pub fn render_checks(checks: &[crate::ports::cluster::Check]) -> String {
    let mut s = String::from("\nPreflight, run now against the live cluster (it changes nothing):\n");
    for c in checks {
        let _ = writeln!(s, "  {c}");
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    if failed == 0 {
        let _ = writeln!(s, "All {} checks pass: every later step of the operation can run.", checks.len());
    } else {
        let _ =
            writeln!(s, "{failed} of {} checks FAIL: apply would stop here, before changing anything.", checks.len());
    }
    s
}

/// Renders a plan for a terminal.
pub fn render(plan: &Plan, file: &Path) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "cluster {} ({})", plan.cluster, file.display());
    if let Some(op) = &plan.op {
        let _ = writeln!(s, "operation: {op}");
    }
    match &plan.outcome {
        Outcome::Converged => {
            let _ = writeln!(s, "No changes. The cluster matches its desired state.");
        }
        Outcome::Steps { steps } => {
            let _ = writeln!(s, "\nmirrorctl will run these steps now:");
            for st in steps {
                let _ = writeln!(s, "  + {}", st.action.describe());
                let _ = writeln!(s, "      step: {}", st.id);
                let _ = writeln!(s, "      why:  {}", st.why);
            }
            let _ = writeln!(s, "\nPlan: {} step(s) now.", steps.len());
        }
        Outcome::Wait(w) => {
            let _ = writeln!(s, "Waiting: {} (next look in about {:.0} s).", w.reason, w.expect.as_secs_f64());
        }
        Outcome::Blocked(c) => {
            let _ = writeln!(s, "BLOCKED ({}): {}", c.reason, c.message);
            let _ = writeln!(s, "What to do: {}", c.action);
        }
    }
    for n in &plan.notes {
        let _ = writeln!(s, "note: {n}");
    }
    if !plan.abandoned.is_empty() {
        let ids: Vec<String> = plan.abandoned.iter().map(ToString::to_string).collect();
        let _ = writeln!(s, "abandoned volumes (kept, not deleted): {}", ids.join(", "));
    }
    s
}

/// Runs `plan`.
pub async fn run(
    state_dir: &Path,
    store: std::sync::Arc<dyn crate::ports::store::Store>,
    file: &Path,
    output: Output,
    out: Option<&Path>,
    world: &WorldArgs,
) -> Result<u8, CliError> {
    let kind = world.kind()?;
    let spec = super::load_spec(file)?;
    let bytes = std::fs::read(file).map_err(|e| CliError::caused(format!("reading {}", file.display()), e))?;
    if kind == super::WorldKind::Aws {
        // Before anything else: who and where we are on AWS (one clear line if that fails), then
        // which of the EC2 calls mirrorctl would make are permitted, asked with DryRun. With
        // `-o json` both go to stderr: stdout is the plan.
        let who = super::world::aws_identity(&spec).await?;
        let report = format!("world: {who}\n{}", permission_report(&spec).await);
        match output {
            Output::Text => print!("{report}"),
            Output::Json => eprint!("{report}"),
        }
    }
    let w = super::world::open(world, state_dir, std::sync::Arc::clone(&store), &spec).await?;
    let ctx = Context::with_store(w.ports.clone(), store);
    let journal = open_journal(&spec, &ctx).await.map_err(CliError::other)?;
    let (obs, plan) = plan_once(&spec, &ctx, &journal).await.map_err(CliError::other)?;
    let preflight = match plan.steps().iter().find_map(|s| match &s.action {
        crate::plan::Action::Preflight { request, .. } => Some(request),
        _ => None,
    }) {
        Some(request) => Some(w.ports.cluster.preflight(request).await.map_err(|e| CliError::caused("preflight", e))?),
        None => None,
    };
    // The whole sequence: on the lab, run on a copy of the world; on AWS, the next batch is all
    // that can be known.
    let (projection, projection_limit) = match &w.file {
        Some(world_file) if matches!(plan.outcome, Outcome::Steps { .. } | Outcome::Wait(_)) => (
            Some(crate::world::project::lab(&spec, state_dir, world_file).map_err(|e| CliError::Other(e.into()))?),
            None,
        ),
        Some(_) => (None, None),
        None => (None, plan.has_changes().then(|| crate::world::project::AWS_LIMIT.to_owned())),
    };
    // A `[restore] backup` shows its impact once resolved to its snapshot, as the planner does.
    let restore_impact = {
        let view = journal.lock().await.view().clone();
        crate::plan::resolve_restore(&spec, &obs, &view).ok().and_then(|s| restore_impact(&s, &obs, &plan))
    };
    let saved = SavedPlan {
        file: file.to_owned(),
        file_sha256: file_sha256(&bytes),
        fingerprint: crate::plan::fingerprint(&obs),
        world: world_parts(&obs),
        plan,
        preflight,
        projection,
        projection_limit,
        restore_impact,
    };
    if let Some(path) = out {
        let body = serde_json::to_vec_pretty(&saved).map_err(CliError::other)?;
        std::fs::write(path, body).map_err(|e| CliError::caused(format!("writing {}", path.display()), e))?;
    }
    match output {
        Output::Json => {
            println!("{}", serde_json::to_string_pretty(&saved).map_err(CliError::other)?);
        }
        Output::Text => {
            print!("{}", render(&saved.plan, file));
            if let Some(i) = &saved.restore_impact {
                print!("{}", render_impact(i));
            }
            if let Some(checks) = &saved.preflight {
                print!("{}", render_checks(checks));
            }
            if let Some(p) = &saved.projection {
                print!("{}", crate::world::project::render(p));
            }
            if let Some(limit) = &saved.projection_limit {
                println!("\nProjection: {limit}.");
            }
        }
    }
    Ok(if saved.plan.outcome == Outcome::Converged { 0 } else { EXIT_CHANGES })
}

/// Asks EC2, with `DryRun`, whether each mutating call mirrorctl would make for `spec` is
/// permitted, using the cluster's real instance, zone, mirror volume and restore snapshot so the
/// answers are about permissions, not about made-up ids. Credentials, region and endpoint come from
/// the default AWS chain (`AWS_ENDPOINT_URL_EC2` points it at an emulator).
pub async fn permission_report(spec: &crate::spec::Spec) -> String {
    use crate::adapters::aws::{AwsCloud, AwsOptions, DryRunProbe};
    use crate::ports::Cloud as _;

    let cloud = AwsCloud::connect(AwsOptions::new(spec.cluster.region.clone())).await;
    let server = &spec.cluster.servers[0];
    let mut s = format!("EC2 permissions for cluster {} (DryRun, as {}):\n", spec.cluster.name, server.instance);
    let instances = match cloud.describe_instances(std::slice::from_ref(&server.instance)).await {
        Ok(i) => i,
        Err(e) => {
            let _ = writeln!(s, "  cannot check: DescribeInstances failed: {e}");
            return s;
        }
    };
    let Some(volume) = instances
        .iter()
        .flat_map(|i| i.devices.iter())
        .find(|(device, _)| *device == spec.mirror.device)
        .map(|(_, v)| v.clone())
    else {
        let _ = writeln!(s, "  cannot check: {} has no volume at {}", server.instance, spec.mirror.device);
        return s;
    };
    // A member of one of the cluster's snapshot sets, if it has one: tagging it is the one
    // `CreateTags` on a snapshot mirrorctl makes, and the IAM policy allows it on no other.
    let ours = crate::ports::cloud::SnapshotFilter {
        tags: [(crate::ports::cloud::tag::CLUSTER.to_owned(), spec.cluster.name.to_string())].into_iter().collect(),
        ..crate::ports::cloud::SnapshotFilter::default()
    };
    let set_snapshot = match cloud.describe_snapshots(&ours).await {
        Ok(snaps) => {
            snaps.into_iter().find(|s| s.tags.contains_key(crate::ports::cloud::tag::SNAPSHOT_SET)).map(|s| s.id)
        }
        Err(e) => {
            let _ = writeln!(s, "  cannot check: DescribeSnapshots failed: {e}");
            return s;
        }
    };
    let probe = DryRunProbe {
        zone: server.zone.clone(),
        instance: server.instance.clone(),
        volume,
        snapshot: spec.restore.as_ref().map(|r| r.snapshot.clone()),
        set_snapshot: set_snapshot.clone(),
    };
    let mut missing = 0;
    for (api, result) in cloud.dry_run_check(&probe).await {
        match result {
            Ok(()) => {
                let _ = writeln!(s, "  ec2:{api:<18} allowed");
            }
            Err(e) => {
                missing += 1;
                let _ = writeln!(s, "  ec2:{api:<18} NOT ALLOWED ({}: {})", e.code, e.message);
            }
        }
    }
    if set_snapshot.is_none() {
        let _ = writeln!(
            s,
            "  ec2:{:<18} not checked: the cluster has no snapshot set yet (tagging a set's snapshots is \
             checked once one exists)",
            crate::adapters::aws::SNAPSHOT_TAGS
        );
    }
    if missing > 0 {
        let _ = writeln!(
            s,
            "  {missing} call(s) would be refused: grant them to mirrorctl's role (deploy/iam-policy.json)"
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plan::Outcome;

    fn saved(file_sha256: &str, world: &[(&str, &str)]) -> SavedPlan {
        SavedPlan {
            file: "prod-db.toml".into(),
            file_sha256: file_sha256.to_owned(),
            fingerprint: String::new(),
            world: world.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
            plan: Plan {
                cluster: crate::ids::ClusterName::parse("prod-db").expect("name"),
                op: None,
                subject: None,
                outcome: Outcome::Converged,
                notes: Vec::new(),
                abandoned: Vec::new(),
            },
            preflight: None,
            projection: None,
            projection_limit: None,
            restore_impact: None,
        }
    }

    fn world(parts: &[(&str, &str)]) -> BTreeMap<String, String> {
        parts.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn a_plan_matching_file_and_world_is_not_stale() {
        let p = saved("f1", &[("EC2 volumes", "a"), ("mirror", "b")]);
        assert_eq!(
            stale_reasons(&p, Path::new("prod-db.toml"), "f1", &world(&[("EC2 volumes", "a"), ("mirror", "b")])),
            None
        );
    }

    #[test]
    fn stale_reasons_name_the_file_and_each_changed_part_of_the_world() {
        let p = saved("f1", &[("EC2 volumes", "a"), ("mirror", "b"), ("servers' disks", "c")]);
        let now = world(&[("EC2 volumes", "a2"), ("mirror", "b"), ("servers' disks", "c2")]);
        let why = stale_reasons(&p, Path::new("prod-db.toml"), "f2", &now).expect("stale");
        assert_eq!(
            why,
            "the desired-state file prod-db.toml changed since the plan was saved; and the world changed since the \
             plan was saved (EC2 volumes, servers' disks)"
        );
        let only_file = stale_reasons(
            &p,
            Path::new("prod-db.toml"),
            "f2",
            &world(&[("EC2 volumes", "a"), ("mirror", "b"), ("servers' disks", "c")]),
        );
        assert!(only_file.is_some_and(|w| !w.contains("world")));
    }

    #[test]
    fn a_plan_saved_before_pinning_is_refused() {
        let p = saved("", &[]);
        let why = stale_reasons(&p, Path::new("prod-db.toml"), "f1", &world(&[("mirror", "b")])).expect("stale");
        assert!(why.contains("does not record the desired-state file"), "{why}");
        assert!(why.contains("does not record the world"), "{why}");
    }

    #[test]
    fn upload_progress_is_not_a_change_of_the_world_but_completion_is() {
        use crate::ports::cloud::{Snapshot, SnapshotState};
        let mut obs = crate::observe::Observed {
            now: jiff::Timestamp::UNIX_EPOCH,
            instances: BTreeMap::new(),
            shutdown: BTreeMap::new(),
            volumes: Vec::new(),
            snapshots: Vec::new(),
            cluster: crate::ports::cluster::ClusterStatus::default(),
            cluster_reachable: true,
            leave_then_start: false,
            config: crate::ports::cluster::ClusterConfig::default(),
            mirror: None,
            other_mirrors: BTreeMap::default(),
            disks: BTreeMap::new(),
            initialization: BTreeMap::new(),
            fast_restores: Vec::new(),
            copies: BTreeMap::new(),
        };
        obs.snapshots.push(Snapshot {
            id: crate::ids::SnapshotId::parse("snap-0123456789abcdef0").expect("id"),
            volume: None,
            size_gib: 100,
            state: SnapshotState::Pending,
            progress: 10,
            started: jiff::Timestamp::UNIX_EPOCH,
            tags: crate::ports::cloud::Tags::new(),
        });
        let before = world_parts(&obs);
        obs.snapshots[0].progress = 80;
        obs.now = jiff::Timestamp::UNIX_EPOCH + jiff::SignedDuration::from_secs(600);
        assert_eq!(world_parts(&obs), before, "progress and the time of the look move by themselves");
        obs.snapshots[0].state = SnapshotState::Completed;
        let after = world_parts(&obs);
        let changed: Vec<&String> = after.keys().filter(|k| after[*k] != before[*k]).collect();
        assert_eq!(changed, ["EC2 snapshots"]);
    }
}
