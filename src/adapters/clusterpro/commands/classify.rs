//! Reading the cluster's state for error classification (pure): before a mutating command, what
//! the state already rules out; after a failed one, whether the goal holds anyway or which error
//! it is. `clpstat`'s placements are read into the shared rules
//! ([`crate::adapters::clusterpro::rules`]); the errors are worded here.

use crate::adapters::clusterpro::conf::ConfError;
use crate::adapters::clusterpro::rules::{self, Goal, Object, Seen, Standing};
use crate::adapters::node::transport::CommandOutput;
use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::cluster::errors::ClpCode;
use crate::ports::cluster::{ClusterStatus, ObjectState, Placement};
use crate::ports::{ErrorClass, PortError, PortResult};

/// What a failed call is, when the cluster's state says.
pub(super) type Verdict = Result<(), ClpCode>;

pub(super) fn pending(p: &Placement) -> bool {
    matches!(p.state, ObjectState::OnlinePending | ObjectState::OfflinePending)
}

pub(super) fn online_on(p: &Placement, server: &ServerName) -> bool {
    p.state == ObjectState::Online && p.current.as_ref() == Some(server)
}

pub(super) fn group_of<'a>(st: &'a ClusterStatus, group: &GroupName) -> PortResult<&'a Placement> {
    st.groups.get(group).ok_or_else(|| ClpCode::GroupNotFound.error(format!("no group named {group}")))
}

pub(super) fn resource_of<'a>(st: &'a ClusterStatus, resource: &ResourceName) -> PortResult<&'a Placement> {
    st.resources.get(resource).ok_or_else(|| ClpCode::ResourceNotFound.error(format!("no resource named {resource}")))
}

pub(super) fn server_known(st: &ClusterStatus, server: &ServerName) -> PortResult<()> {
    if st.servers.contains_key(server) {
        Ok(())
    } else {
        Err(ClpCode::ServerNotFound.error(format!("no server named {server}")))
    }
}

pub(super) fn busy(what: &str) -> PortError {
    ClpCode::GroupBusy.error(format!("{what} is changing state; another operation is in progress"))
}

pub(super) fn where_(p: &Placement) -> String {
    p.current.as_ref().map_or_else(|| "no server".to_owned(), ToString::to_string)
}

/// What the rules need of placement `p` (`server`: the one the operation names).
fn seen(p: &Placement, server: Option<&ServerName>) -> Seen {
    let online_here = server.is_some_and(|s| online_on(p, s));
    Seen {
        busy: pending(p),
        online_here,
        online_elsewhere: p.state == ObjectState::Online && !online_here,
        offline: p.state == ObjectState::Offline,
        failed: matches!(p.state, ObjectState::OnlineFailure | ObjectState::OfflineFailure),
    }
}

/// The state check before an operation on `name` (a group or resource at `p`), worded.
fn check(object: Object, goal: Goal, name: &str, p: &Placement, server: Option<&ServerName>) -> PortResult<()> {
    let Some(code) = rules::refusal(object, goal, seen(p, server)) else { return Ok(()) };
    let server = server.map(ToString::to_string).unwrap_or_default();
    let word = if object == Object::Group { "group" } else { "resource" };
    Err(match code {
        ClpCode::GroupBusy => busy(&format!("{word} {name}")),
        ClpCode::GroupAlreadyStarted | ClpCode::ResourceAlreadyStarted => {
            code.error(format!("{name} is already online on {server}"))
        }
        ClpCode::GroupOnline => code.error(format!("{name} is online on {}", where_(p))),
        ClpCode::ResourceOnline => code.error(format!("{name} is online on another server ({})", where_(p))),
        ClpCode::GroupOffline => code.error(format!("{name} is not online: nothing to move")),
        _ => code.error(format!("{name} is already offline")),
    })
}

/// The verdict after a failed operation on the object at `p`.
fn after(object: Object, goal: Goal, p: &Placement, server: Option<&ServerName>) -> Verdict {
    match rules::standing(object, goal, seen(p, server)) {
        Standing::Done => Ok(()),
        Standing::Busy => Err(ClpCode::GroupBusy),
        Standing::Failed(code) | Standing::NotYet(code) => Err(code),
    }
}

pub(super) fn check_start_group(st: &ClusterStatus, group: &GroupName, server: &ServerName) -> PortResult<()> {
    let p = group_of(st, group)?;
    server_known(st, server)?;
    check(Object::Group, Goal::Start, group.as_str(), p, Some(server))
}

pub(super) fn after_start_group(st: &ClusterStatus, group: &GroupName, server: &ServerName) -> Verdict {
    let Some(p) = st.groups.get(group) else { return Err(ClpCode::GroupNotFound) };
    after(Object::Group, Goal::Start, p, Some(server))
}

pub(super) fn check_stop_group(st: &ClusterStatus, group: &GroupName) -> PortResult<Option<ServerName>> {
    let p = group_of(st, group)?;
    check(Object::Group, Goal::Stop, group.as_str(), p, None)?;
    Ok(p.current.clone())
}

pub(super) fn after_stop_group(st: &ClusterStatus, group: &GroupName) -> Verdict {
    let Some(p) = st.groups.get(group) else { return Err(ClpCode::GroupNotFound) };
    after(Object::Group, Goal::Stop, p, None)
}

pub(super) fn check_move_group(st: &ClusterStatus, group: &GroupName, target: &ServerName) -> PortResult<()> {
    let p = group_of(st, group)?;
    server_known(st, target)?;
    check(Object::Group, Goal::Move, group.as_str(), p, Some(target))
}

pub(super) fn after_move_group(st: &ClusterStatus, group: &GroupName, target: &ServerName) -> Verdict {
    let Some(p) = st.groups.get(group) else { return Err(ClpCode::GroupNotFound) };
    after(Object::Group, Goal::Move, p, Some(target))
}

pub(super) fn check_start_resource(st: &ClusterStatus, resource: &ResourceName, server: &ServerName) -> PortResult<()> {
    let p = resource_of(st, resource)?;
    server_known(st, server)?;
    check(Object::Resource, Goal::Start, resource.as_str(), p, Some(server))
}

pub(super) fn after_start_resource(st: &ClusterStatus, resource: &ResourceName, server: &ServerName) -> Verdict {
    let Some(p) = st.resources.get(resource) else { return Err(ClpCode::ResourceNotFound) };
    after(Object::Resource, Goal::Start, p, Some(server))
}

pub(super) fn check_stop_resource(st: &ClusterStatus, resource: &ResourceName) -> PortResult<Option<ServerName>> {
    let p = resource_of(st, resource)?;
    check(Object::Resource, Goal::Stop, resource.as_str(), p, None)?;
    Ok(p.current.clone())
}

pub(super) fn after_stop_resource(st: &ClusterStatus, resource: &ResourceName) -> Verdict {
    let Some(p) = st.resources.get(resource) else { return Err(ClpCode::ResourceNotFound) };
    after(Object::Resource, Goal::Stop, p, None)
}

/// Whether anything of any group is online, pending or failed on `server`.
pub(super) fn used_on(st: &ClusterStatus, server: &ServerName) -> Option<String> {
    st.groups
        .iter()
        .find(|(_, p)| p.state != ObjectState::Offline && p.current.as_ref() == Some(server))
        .map(|(g, _)| g.to_string())
}

pub(super) fn conf_error(e: ConfError) -> PortError {
    match e {
        ConfError::UnknownGroup(g) => ClpCode::GroupNotFound.error(format!("clp.conf has no group named {g}")),
        ConfError::MissingGuid(_) => ClpCode::PartitionNotFound.error(e.to_string()),
        other => ClpCode::ClpConfUnreadable.error(other.to_string()),
    }
}

/// The error of a failed command, with the command's own message.
pub(super) fn failed(out: CommandOutput, what: &str, code: ClpCode) -> PortError {
    failed_as(out, what, code.code(), code.class())
}

/// [`failed`] with the code and class of an error the cluster's state explains.
pub(super) fn failed_as(out: CommandOutput, what: &str, code: &str, class: ErrorClass) -> PortError {
    let status = out.exit_code;
    out.success(what, code, class)
        .err()
        .unwrap_or_else(|| PortError::new(code, format!("{what} exited with status {status}"), class))
}

pub(super) fn not_found(what: &str, out: CommandOutput) -> PortError {
    failed(out, what, ClpCode::ClpCommandNotFound)
}

/// Why a server could not serve a command.
#[derive(Debug)]
pub(super) enum Miss {
    /// The transport could not run anything there.
    Unreachable(PortError),
    /// The command is not installed there (exit status 127).
    Missing(String),
    /// It is not a running cluster member, or the command failed there.
    NotMember(String),
    /// Its output could not be read.
    Unreadable(String),
}

impl std::fmt::Display for Miss {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Miss::Unreachable(e) => write!(f, "not reachable ({e})"),
            Miss::Missing(m) | Miss::NotMember(m) | Miss::Unreadable(m) => f.write_str(m),
        }
    }
}

/// The error when no server could serve `what`.
pub(super) fn no_server(what: &str, misses: &[(ServerName, Miss)]) -> PortError {
    let detail = misses.iter().map(|(s, m)| format!("{s}: {m}")).collect::<Vec<_>>().join("; ");
    if misses.iter().any(|(_, m)| matches!(m, Miss::Unreadable(_))) {
        return ClpCode::ClpOutputUnreadable.error(format!("`{what}`: {detail}"));
    }
    if !misses.is_empty() && misses.iter().all(|(_, m)| matches!(m, Miss::Missing(_))) {
        return ClpCode::ClpCommandNotFound.error(format!(
                "`{what}` is not installed on any server ({detail}): is CLUSTERPRO installed, and is the command directory right?"
            ));
    }
    ClpCode::ClusterUnreachable.error(format!("no server ran `{what}` as a running cluster member: {detail}"))
}
