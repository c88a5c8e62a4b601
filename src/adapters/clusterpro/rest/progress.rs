//! The state checks before an operation and the completion checks while polling: the REST
//! API's objects read into the shared rules ([`crate::adapters::clusterpro::rules`]), and the
//! errors worded.

use super::wire::{ResourceInfo, Snapshot, describe, pending, placement};
use crate::adapters::clusterpro::rules::{self, Goal, Object, Seen, Standing};
use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::cluster::errors::ClpCode;
use crate::ports::cluster::{ObjectState, Placement};
use crate::ports::{PortError, PortResult};

// --- state checks before an operation (same codes and classes as the simulator) ---------------

pub(super) fn check_group(s: &Snapshot, group: &GroupName) -> PortResult<()> {
    if s.group(group).is_some() { Ok(()) } else { Err(ClpCode::GroupNotFound.error(format!("no group named {group}"))) }
}

pub(super) fn check_server(s: &Snapshot, server: &ServerName) -> PortResult<()> {
    if s.server(server).is_some() {
        Ok(())
    } else {
        Err(ClpCode::ServerNotFound.error(format!("no server named {server}")))
    }
}

/// A part of `group` online on another server than `server`.
fn part_elsewhere(s: &Snapshot, group: &GroupName, server: &ServerName) -> Option<Placement> {
    s.group_parts(group)
        .into_iter()
        .map(|(_, p)| p)
        .find(|p| p.state == ObjectState::Online && p.current.as_ref() != Some(server))
}

/// What the rules need of `group`: `elsewhere` is whether it counts as online on another server
/// than `server` (a part of it, for a start; all of it, for a move).
fn seen_group(s: &Snapshot, group: &GroupName, server: Option<&ServerName>, elsewhere: bool) -> Seen {
    Seen {
        busy: s.group_busy(group),
        online_here: server.is_some_and(|sv| s.group_online_on(group, sv)),
        online_elsewhere: elsewhere,
        offline: s.group_offline(group),
        failed: !s.group_failures(group).is_empty(),
    }
}

/// The refusal `code` of an operation on `group` (`server`: the one it names), worded.
fn group_refused(s: &Snapshot, group: &GroupName, server: Option<&ServerName>, code: ClpCode) -> PortError {
    let server = server.map(ToString::to_string).unwrap_or_default();
    let message = match code {
        ClpCode::GroupBusy => format!("another operation is in progress: {}", s.describe_group(group)),
        ClpCode::GroupAlreadyStarted => format!("{group} is already online on {server}"),
        ClpCode::GroupOnline => {
            let on = ServerName::parse(&server)
                .ok()
                .and_then(|sv| part_elsewhere(s, group, &sv))
                .and_then(|p| p.current)
                .map(|c| c.to_string())
                .unwrap_or_default();
            format!("{group} is online on {on}")
        }
        ClpCode::GroupOffline => format!("{group} is not online: nothing to move"),
        _ => format!("{group} is already offline"),
    };
    code.error(message)
}

pub(super) fn precheck_start_group(s: &Snapshot, group: &GroupName, server: &ServerName) -> PortResult<()> {
    check_group(s, group)?;
    check_server(s, server)?;
    let seen = seen_group(s, group, Some(server), part_elsewhere(s, group, server).is_some());
    rules::refusal(Object::Group, Goal::Start, seen).map_or(Ok(()), |c| Err(group_refused(s, group, Some(server), c)))
}

pub(super) fn precheck_stop_group(s: &Snapshot, group: &GroupName) -> PortResult<()> {
    check_group(s, group)?;
    let seen = seen_group(s, group, None, false);
    rules::refusal(Object::Group, Goal::Stop, seen).map_or(Ok(()), |c| Err(group_refused(s, group, None, c)))
}

pub(super) fn precheck_move_group(s: &Snapshot, group: &GroupName, target: &ServerName) -> PortResult<()> {
    check_group(s, group)?;
    check_server(s, target)?;
    let online_elsewhere = s
        .servers
        .iter()
        .filter_map(|sv| ServerName::parse(&sv.name).ok())
        .any(|sv| sv != *target && s.group_online_on(group, &sv));
    let seen = seen_group(s, group, Some(target), online_elsewhere);
    rules::refusal(Object::Group, Goal::Move, seen).map_or(Ok(()), |c| Err(group_refused(s, group, Some(target), c)))
}

pub(super) fn resource_and_group<'a>(
    s: &'a Snapshot,
    resource: &ResourceName,
) -> PortResult<(&'a ResourceInfo, GroupName)> {
    let r =
        s.resource(resource).ok_or_else(|| ClpCode::ResourceNotFound.error(format!("no resource named {resource}")))?;
    let group = GroupName::parse(&r.group).map_err(|e| {
        ClpCode::ApiInvalidResponse.error(format!("resource {resource} names group {:?}: {}", r.group, e.0))
    })?;
    Ok((r, group))
}

/// What the rules need of resource `r` (`busy`: its group's operation in progress, or its own).
fn seen_resource(p: &Placement, server: Option<&ServerName>, busy: bool) -> Seen {
    let online_here = p.state == ObjectState::Online && server.is_some_and(|sv| p.current.as_ref() == Some(sv));
    Seen {
        busy,
        online_here,
        online_elsewhere: p.state == ObjectState::Online && !online_here,
        offline: p.state == ObjectState::Offline,
        failed: matches!(p.state, ObjectState::OnlineFailure | ObjectState::OfflineFailure),
    }
}

fn resource_refused(
    s: &Snapshot,
    resource: &ResourceName,
    group: &GroupName,
    server: Option<&ServerName>,
    code: ClpCode,
) -> PortError {
    let server = server.map(ToString::to_string).unwrap_or_default();
    let message = match code {
        ClpCode::GroupBusy => format!("another operation is in progress: {}", s.describe_group(group)),
        ClpCode::ResourceAlreadyStarted => format!("{resource} is already online on {server}"),
        ClpCode::ResourceOnline => format!("{resource} or a resource it depends on is online on another server"),
        _ => format!("{resource} is already offline"),
    };
    code.error(message)
}

pub(super) fn precheck_start_resource(s: &Snapshot, resource: &ResourceName, server: &ServerName) -> PortResult<()> {
    let (r, group) = resource_and_group(s, resource)?;
    check_server(s, server)?;
    let seen = seen_resource(&placement(&r.status, &r.current), Some(server), s.group_busy(&group));
    rules::refusal(Object::Resource, Goal::Start, seen)
        .map_or(Ok(()), |c| Err(resource_refused(s, resource, &group, Some(server), c)))
}

pub(super) fn precheck_stop_resource(s: &Snapshot, resource: &ResourceName) -> PortResult<()> {
    let (r, group) = resource_and_group(s, resource)?;
    let seen = seen_resource(&placement(&r.status, &r.current), None, s.group_busy(&group));
    rules::refusal(Object::Resource, Goal::Stop, seen)
        .map_or(Ok(()), |c| Err(resource_refused(s, resource, &group, None, c)))
}

pub(super) fn precheck_shutdown(s: &Snapshot, server: &ServerName) -> PortResult<()> {
    check_server(s, server)?;
    if s.server(server).is_some_and(|sv| !sv.running()) {
        return Err(ClpCode::ServerAlreadyDown.error(format!("{server} is already down")));
    }
    let here = s.groups.iter().find(|g| {
        let p = placement(&g.status, &g.current);
        p.state != ObjectState::Offline && p.current.as_ref() == Some(server)
    });
    if let Some(g) = here {
        return Err(
            ClpCode::GroupOnline.error(format!("group {} is online on {server}; move or stop it first", g.name))
        );
    }
    Ok(())
}

// --- completion checks while polling ------------------------------------------------------------

/// Where a polled operation stands.
#[derive(Debug)]
pub(super) enum Progress {
    Done,
    /// Not there yet: what is seen, and whether an operation is visibly in progress (a pending
    /// state).
    Running(String, bool),
    Failed(PortError),
}

/// Where an operation on `group` stands: `server` is the one a start or move names.
pub(super) fn progress_group(s: &Snapshot, group: &GroupName, server: Option<&ServerName>, goal: Goal) -> Progress {
    match rules::standing(Object::Group, goal, seen_group(s, group, server, false)) {
        Standing::Done => Progress::Done,
        Standing::Failed(code) => Progress::Failed(
            code.error(format!("the operation on {group} ended in failure: {}", s.group_failures(group).join(", "))),
        ),
        Standing::Busy | Standing::NotYet(_) => Progress::Running(s.describe_group(group), s.group_busy(group)),
    }
}

pub(super) fn progress_resource(s: &Snapshot, resource: &ResourceName, want: Option<&ServerName>) -> Progress {
    let Some(r) = s.resource(resource) else {
        return Progress::Running(format!("resource {resource} not shown"), false);
    };
    let p = placement(&r.status, &r.current);
    let seen = describe(&format!("resource {resource}"), &p);
    let goal = if want.is_some() { Goal::Start } else { Goal::Stop };
    match rules::standing(Object::Resource, goal, seen_resource(&p, want, pending(p.state))) {
        Standing::Done => Progress::Done,
        Standing::Failed(code) => {
            let op = if goal == Goal::Start { "start" } else { "stop" };
            Progress::Failed(code.error(format!("the {op} of {resource} ended in failure: {seen}")))
        }
        Standing::Busy | Standing::NotYet(_) => Progress::Running(seen, pending(p.state)),
    }
}

pub(super) fn resource_failed(s: &Snapshot, resource: &ResourceName) -> bool {
    s.resource(resource).is_some_and(|r| {
        matches!(ObjectState::parse(&r.status), ObjectState::OnlineFailure | ObjectState::OfflineFailure)
    })
}

pub(super) fn progress_shutdown(s: &Snapshot, server: &ServerName) -> Progress {
    match s.server(server) {
        Some(sv) if sv.running() => Progress::Running(format!("server {server} is {}", sv.status), false),
        _ => Progress::Done,
    }
}
