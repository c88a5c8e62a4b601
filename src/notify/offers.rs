//! Turning the reconcile loop's transitions into [`Notice`]s: a completion per completed operation
//! of the journal, a condition per `failed` or `needs-human` stop, with the ids `Observed` shows.

use super::{Notice, Notifier, SCHEMA, key};
use crate::journal::JournalView;
use crate::observe::Observed;
use crate::plan::{Condition, OpId, Outcome, Plan};
use crate::ports::cloud::tag;
use crate::spec::{NoticeKind, Spec};

/// Offers a completion notice for every backup or restore the journal says completed (the
/// notifier drops those already sent, and those from before notifications were set up), with the
/// volumes and snapshots `obs` shows for it.
pub(crate) fn offer_completions(n: &Notifier, spec: &Spec, view: &JournalView, obs: &Observed, p: &Plan) {
    // A restore that names a backup: the snapshot it restored, as the planner resolved it.
    let resolved = crate::plan::resolve_restore(spec, obs, view).ok();
    let restore = resolved.as_ref().and_then(|s| s.restore.as_ref());
    for (op, v) in &view.ops {
        let (Some(at), false) = (v.completed, *op == OpId::Retention) else { continue };
        let operation = op.to_string();
        let key = key(NoticeKind::Completed, Some(&operation), None);
        if !n.due(&spec.cluster.name, NoticeKind::Completed, &key, at) {
            continue;
        }
        let (volumes, mut snapshots) = operation_resources(spec, obs, op);
        if let (OpId::Restore(r), Some(want)) = (op, restore)
            && &want.request == r
            && !snapshots.contains(&want.snapshot.to_string())
        {
            snapshots.push(want.snapshot.to_string());
        }
        let what = match op {
            OpId::Backup(_) => "backup",
            _ => "restore",
        };
        let notice = Notice {
            schema: SCHEMA,
            id: Notice::id_for(&spec.cluster.name, &key),
            event: NoticeKind::Completed,
            cluster: spec.cluster.name.clone(),
            region: spec.cluster.region.to_string(),
            operation: Some(operation.clone()),
            request: Some(op.request_tag()),
            phase: phase_word(p),
            reason: None,
            message: format!("{what} {} of cluster {} completed", op.request_tag(), spec.cluster.name),
            action: None,
            volumes,
            snapshots,
            at,
            sent: obs.now,
            mirrorctl_version: env!("CARGO_PKG_VERSION").to_owned(),
        };
        n.offer(&key, &notice);
    }
}

/// Offers a `failed` or `needs-human` notice for condition `c` of plan `p`.
pub(crate) fn offer_condition(n: &Notifier, spec: &Spec, kind: NoticeKind, p: &Plan, obs: &Observed, c: &Condition) {
    let operation = p.op.as_ref().map(ToString::to_string);
    let key = key(kind, operation.as_deref(), Some(&c.reason));
    if !n.due(&spec.cluster.name, kind, &key, obs.now) {
        return;
    }
    let (volumes, snapshots) = p.op.as_ref().map(|op| operation_resources(spec, obs, op)).unwrap_or_default();
    let notice = Notice {
        schema: SCHEMA,
        id: Notice::id_for(&spec.cluster.name, &key),
        event: kind,
        cluster: spec.cluster.name.clone(),
        region: spec.cluster.region.to_string(),
        operation,
        request: p.op.as_ref().map(OpId::request_tag),
        phase: "blocked".to_owned(),
        reason: Some(c.reason.clone()),
        message: c.message.clone(),
        action: Some(c.action.clone()),
        volumes,
        snapshots,
        at: obs.now,
        sent: obs.now,
        mirrorctl_version: env!("CARGO_PKG_VERSION").to_owned(),
    };
    n.offer(&key, &notice);
}

/// The status word of a plan's outcome.
fn phase_word(p: &Plan) -> String {
    match &p.outcome {
        Outcome::Converged => "converged",
        Outcome::Steps { .. } => "progressing",
        Outcome::Wait(_) => "waiting",
        Outcome::Blocked(_) => "blocked",
    }
    .to_owned()
}

/// The volumes and snapshots of this cluster tagged with `op`'s request.
fn operation_resources(spec: &Spec, obs: &Observed, op: &OpId) -> (Vec<String>, Vec<String>) {
    let request = op.request_tag();
    let ours = |tags: &crate::ports::cloud::Tags| {
        tags.get(tag::CLUSTER).map(String::as_str) == Some(spec.cluster.name.as_str())
            && tags.get(tag::REQUEST) == Some(&request)
    };
    let volumes = obs.volumes.iter().filter(|v| ours(&v.tags)).map(|v| v.id.to_string()).collect();
    let snapshots = obs.snapshots.iter().filter(|s| ours(&s.tags)).map(|s| s.id.to_string()).collect();
    (volumes, snapshots)
}
