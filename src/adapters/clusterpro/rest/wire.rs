//! The API's wire types: the envelope, the server, group and resource objects, and a
//! [`Snapshot`] of them with the questions the checks ask.

use serde::Deserialize;

use crate::adapters::clusterpro::parse::{NO_CURRENT_SERVER, RUNNING_SERVER_STATES};
use crate::ids::{GroupName, ResourceName, ServerName};
use crate::ports::cluster::{ObjectState, Placement};

/// `result` of every answer.
#[derive(Debug, Deserialize)]
pub(super) struct ApiResult {
    pub(super) code: i64,
    #[serde(default)]
    pub(super) message: String,
}

/// An answer: `result` and the data keys beside it.
#[derive(Debug, Deserialize)]
pub(super) struct Envelope {
    pub(super) result: ApiResult,
    #[serde(default)]
    pub(super) servers: Option<Vec<ServerInfo>>,
    #[serde(default)]
    pub(super) groups: Option<Vec<GroupInfo>>,
    #[serde(default)]
    pub(super) resources: Option<Vec<ResourceInfo>>,
    /// `/mirrors/{backup,restore}/status`: `detail.status` is `running` until the last pre- or
    /// post-processing ends, then its completion message (EXPRESSCLUSTER/clpaic).
    #[serde(default)]
    pub(super) detail: Option<VendorDetail>,
}

#[derive(Debug, Deserialize)]
pub(super) struct VendorDetail {
    #[serde(default)]
    pub(super) status: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct ServerInfo {
    pub(super) name: String,
    #[serde(default)]
    pub(super) status: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct GroupInfo {
    pub(super) name: String,
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) current: String,
}

#[derive(Debug, Clone, Deserialize)]
pub(super) struct ResourceInfo {
    pub(super) name: String,
    #[serde(default)]
    pub(super) status: String,
    #[serde(default)]
    pub(super) current: String,
    #[serde(default)]
    pub(super) group: String,
}

impl ServerInfo {
    pub(super) fn running(&self) -> bool {
        RUNNING_SERVER_STATES.iter().any(|s| s.eq_ignore_ascii_case(self.status.trim()))
    }
}

/// `current` as a server: `None` for the API's `"None"`, an empty string, or a name that is not a
/// valid server name.
pub(super) fn current_server(current: &str) -> Option<ServerName> {
    let c = current.trim();
    if c.is_empty() || c.eq_ignore_ascii_case(NO_CURRENT_SERVER) { None } else { ServerName::parse(c).ok() }
}

pub(super) fn placement(status: &str, current: &str) -> Placement {
    Placement { state: ObjectState::parse(status), current: current_server(current) }
}

pub(super) fn pending(state: ObjectState) -> bool {
    matches!(state, ObjectState::OnlinePending | ObjectState::OfflinePending)
}

/// What the GETs of one check returned.
#[derive(Debug, Default)]
pub(super) struct Snapshot {
    pub(super) servers: Vec<ServerInfo>,
    pub(super) groups: Vec<GroupInfo>,
    pub(super) resources: Vec<ResourceInfo>,
}

impl Snapshot {
    pub(super) fn server(&self, name: &ServerName) -> Option<&ServerInfo> {
        self.servers.iter().find(|s| s.name == name.as_str())
    }
    pub(super) fn group(&self, name: &GroupName) -> Option<&GroupInfo> {
        self.groups.iter().find(|g| g.name == name.as_str())
    }
    pub(super) fn resource(&self, name: &ResourceName) -> Option<&ResourceInfo> {
        self.resources.iter().find(|r| r.name == name.as_str())
    }
    /// The group's own placement followed by its resources' placements.
    pub(super) fn group_parts(&self, name: &GroupName) -> Vec<(String, Placement)> {
        let mut parts: Vec<(String, Placement)> = self
            .group(name)
            .map(|g| (format!("group {}", g.name), placement(&g.status, &g.current)))
            .into_iter()
            .collect();
        parts.extend(
            self.resources
                .iter()
                .filter(|r| r.group == name.as_str())
                .map(|r| (format!("resource {}", r.name), placement(&r.status, &r.current))),
        );
        parts
    }
    pub(super) fn group_online_on(&self, name: &GroupName, server: &ServerName) -> bool {
        let parts = self.group_parts(name);
        !parts.is_empty()
            && parts.iter().all(|(_, p)| p.state == ObjectState::Online && p.current.as_ref() == Some(server))
    }
    pub(super) fn group_offline(&self, name: &GroupName) -> bool {
        self.group_parts(name).iter().all(|(_, p)| p.state == ObjectState::Offline)
    }
    pub(super) fn group_busy(&self, name: &GroupName) -> bool {
        self.group_parts(name).iter().any(|(_, p)| pending(p.state))
    }
    /// The parts in a failure state, described.
    pub(super) fn group_failures(&self, name: &GroupName) -> Vec<String> {
        self.group_parts(name)
            .into_iter()
            .filter(|(_, p)| matches!(p.state, ObjectState::OnlineFailure | ObjectState::OfflineFailure))
            .map(|(what, p)| describe(&what, &p))
            .collect()
    }
    pub(super) fn describe_group(&self, name: &GroupName) -> String {
        let parts: Vec<String> = self.group_parts(name).iter().map(|(w, p)| describe(w, p)).collect();
        if parts.is_empty() { format!("group {name} not shown") } else { parts.join(", ") }
    }
}

pub(super) fn describe(what: &str, p: &Placement) -> String {
    let state = match p.state {
        ObjectState::Online => "Online",
        ObjectState::Offline => "Offline",
        ObjectState::OnlinePending => "Online Pending",
        ObjectState::OfflinePending => "Offline Pending",
        ObjectState::OnlineFailure => "Online Failure",
        ObjectState::OfflineFailure => "Offline Failure",
        ObjectState::Unknown => "in an unknown state",
    };
    match &p.current {
        Some(s) => format!("{what} {state} on {s}"),
        None => format!("{what} {state}"),
    }
}
