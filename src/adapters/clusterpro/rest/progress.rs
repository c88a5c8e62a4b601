//! The state checks before an operation (the vocabulary's codes and classes, as the simulator
//! answers) and the completion checks while polling.

use super::wire::{ResourceInfo, Snapshot, describe, pending, placement};
use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::cluster::ObjectState;
use crate::ports::cluster::errors::ClpCode;
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

pub(super) fn check_idle(s: &Snapshot, group: &GroupName) -> PortResult<()> {
    if s.group_busy(group) {
        Err(ClpCode::GroupBusy.error(format!("another operation is in progress: {}", s.describe_group(group))))
    } else {
        Ok(())
    }
}

pub(super) fn precheck_start_group(s: &Snapshot, group: &GroupName, server: &ServerName) -> PortResult<()> {
    check_group(s, group)?;
    check_server(s, server)?;
    check_idle(s, group)?;
    if s.group_online_on(group, server) {
        return Err(ClpCode::GroupAlreadyStarted.error(format!("{group} is already online on {server}")));
    }
    if let Some((_, p)) = s
        .group_parts(group)
        .into_iter()
        .find(|(_, p)| p.state == ObjectState::Online && p.current.as_ref() != Some(server))
    {
        let on = p.current.map(|c| c.to_string()).unwrap_or_default();
        return Err(ClpCode::GroupOnline.error(format!("{group} is online on {on}")));
    }
    Ok(())
}

pub(super) fn precheck_stop_group(s: &Snapshot, group: &GroupName) -> PortResult<()> {
    check_group(s, group)?;
    check_idle(s, group)?;
    if s.group_offline(group) {
        return Err(ClpCode::GroupAlreadyStopped.error(format!("{group} is already offline")));
    }
    Ok(())
}

pub(super) fn precheck_move_group(s: &Snapshot, group: &GroupName, target: &ServerName) -> PortResult<()> {
    check_group(s, group)?;
    check_server(s, target)?;
    check_idle(s, group)?;
    if s.group_online_on(group, target) {
        return Err(ClpCode::GroupAlreadyStarted.error(format!("{group} is already online on {target}")));
    }
    let online_elsewhere = s
        .servers
        .iter()
        .filter_map(|sv| ServerName::parse(&sv.name).ok())
        .any(|sv| sv != *target && s.group_online_on(group, &sv));
    if !online_elsewhere {
        return Err(ClpCode::GroupOffline.error(format!("{group} is not online: nothing to move")));
    }
    Ok(())
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

pub(super) fn precheck_start_resource(s: &Snapshot, resource: &ResourceName, server: &ServerName) -> PortResult<()> {
    let (r, group) = resource_and_group(s, resource)?;
    check_server(s, server)?;
    check_idle(s, &group)?;
    let p = placement(&r.status, &r.current);
    if p.state == ObjectState::Online && p.current.as_ref() == Some(server) {
        return Err(ClpCode::ResourceAlreadyStarted.error(format!("{resource} is already online on {server}")));
    }
    if p.state == ObjectState::Online {
        return Err(ClpCode::ResourceOnline
            .error(format!("{resource} or a resource it depends on is online on another server")));
    }
    Ok(())
}

pub(super) fn precheck_stop_resource(s: &Snapshot, resource: &ResourceName) -> PortResult<()> {
    let (r, group) = resource_and_group(s, resource)?;
    check_idle(s, &group)?;
    if ObjectState::parse(&r.status) == ObjectState::Offline {
        return Err(ClpCode::ResourceAlreadyStopped.error(format!("{resource} is already offline")));
    }
    Ok(())
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

pub(super) fn failed_group(s: &Snapshot, group: &GroupName, code: ClpCode) -> Option<Progress> {
    let failures = s.group_failures(group);
    (!failures.is_empty()).then(|| {
        Progress::Failed(code.error(format!("the operation on {group} ended in failure: {}", failures.join(", "))))
    })
}

pub(super) fn progress_group_online(s: &Snapshot, group: &GroupName, server: &ServerName, code: ClpCode) -> Progress {
    if s.group_online_on(group, server) {
        return Progress::Done;
    }
    if !s.group_busy(group)
        && let Some(f) = failed_group(s, group, code)
    {
        return f;
    }
    Progress::Running(s.describe_group(group), s.group_busy(group))
}

pub(super) fn progress_group_offline(s: &Snapshot, group: &GroupName) -> Progress {
    if s.group_offline(group) {
        return Progress::Done;
    }
    if !s.group_busy(group)
        && let Some(f) = failed_group(s, group, ClpCode::GroupStopFailed)
    {
        return f;
    }
    Progress::Running(s.describe_group(group), s.group_busy(group))
}

pub(super) fn progress_resource(s: &Snapshot, resource: &ResourceName, want: Option<&ServerName>) -> Progress {
    let Some(r) = s.resource(resource) else {
        return Progress::Running(format!("resource {resource} not shown"), false);
    };
    let p = placement(&r.status, &r.current);
    let seen = describe(&format!("resource {resource}"), &p);
    match (want, p.state) {
        (Some(server), ObjectState::Online) if p.current.as_ref() == Some(server) => Progress::Done,
        (None, ObjectState::Offline) => Progress::Done,
        (Some(_), ObjectState::OnlineFailure | ObjectState::OfflineFailure) => Progress::Failed(
            ClpCode::ResourceStartFailed.error(format!("the start of {resource} ended in failure: {seen}")),
        ),
        (None, ObjectState::OnlineFailure | ObjectState::OfflineFailure) => Progress::Failed(
            ClpCode::ResourceStopFailed.error(format!("the stop of {resource} ended in failure: {seen}")),
        ),
        _ => Progress::Running(seen, pending(p.state)),
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
