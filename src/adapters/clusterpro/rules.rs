//! The state rules of a group or resource operation, written once for the command and the REST
//! adapters (pure): before the operation, which refusal the state already gives; after it (or
//! while polling it), whether its goal holds and, if not, which error explains the state.
//!
//! Each adapter reads its own evidence (`clpstat` placements; the REST API's group and resource
//! objects) into a [`Seen`] and words the errors; the codes and their order live here. The
//! simulator keeps its own rules: it stands for the far side. The codes and classes are the
//! vocabulary of [`crate::ports::cluster::errors`] (sources cited there).

use crate::ports::cluster::errors::ClpCode;

/// What an operation works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Object {
    /// A failover group.
    Group,
    /// A resource of a group.
    Resource,
}

/// What an operation wants of its object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Goal {
    /// Online on the server the operation names (start).
    Start,
    /// Online on the server the operation names, from online elsewhere (a group's move).
    Move,
    /// Offline (stop).
    Stop,
}

/// What the adapter saw of the object, relative to the server the operation names.
#[allow(clippy::struct_excessive_bools)]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Seen {
    /// A state is pending: an operation is in progress.
    pub busy: bool,
    /// Online on the server the operation names.
    pub online_here: bool,
    /// Online on another server.
    pub online_elsewhere: bool,
    /// Offline.
    pub offline: bool,
    /// In a failure state (online or offline failure).
    pub failed: bool,
}

/// Where an operation stands, from the state after it (or while polling it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Standing {
    /// The goal holds.
    Done,
    /// An operation is in progress: not there yet.
    Busy,
    /// The object ended in a failure state: the operation failed with this code.
    Failed(ClpCode),
    /// Not there, no failure shown: the code that names the state if it stays so (online
    /// elsewhere for a start; the operation's failure otherwise).
    NotYet(ClpCode),
}

/// The refusal the state gives before the operation, or `None` when it may run. Order: busy,
/// already done, then the state that rules the operation out.
pub(crate) fn refusal(object: Object, goal: Goal, seen: Seen) -> Option<ClpCode> {
    use ClpCode as C;
    if seen.busy {
        return Some(C::GroupBusy);
    }
    match (goal, object) {
        (Goal::Start | Goal::Move, Object::Group) if seen.online_here => Some(C::GroupAlreadyStarted),
        (Goal::Start, Object::Resource) if seen.online_here => Some(C::ResourceAlreadyStarted),
        (Goal::Start, Object::Group) if seen.online_elsewhere => Some(C::GroupOnline),
        (Goal::Start, Object::Resource) if seen.online_elsewhere => Some(C::ResourceOnline),
        (Goal::Move, _) if !seen.online_elsewhere => Some(C::GroupOffline),
        (Goal::Stop, Object::Group) if seen.offline => Some(C::GroupAlreadyStopped),
        (Goal::Stop, Object::Resource) if seen.offline => Some(C::ResourceAlreadyStopped),
        _ => None,
    }
}

/// The code of the operation's own failure.
pub(crate) fn failure(object: Object, goal: Goal) -> ClpCode {
    match (object, goal) {
        (Object::Group, Goal::Start) => ClpCode::GroupStartFailed,
        (Object::Group, Goal::Move) => ClpCode::GroupMoveFailed,
        (Object::Group, Goal::Stop) => ClpCode::GroupStopFailed,
        (Object::Resource, Goal::Start | Goal::Move) => ClpCode::ResourceStartFailed,
        (Object::Resource, Goal::Stop) => ClpCode::ResourceStopFailed,
    }
}

/// Where the operation stands after it ran (or while it runs).
pub(crate) fn standing(object: Object, goal: Goal, seen: Seen) -> Standing {
    let done = match goal {
        Goal::Start | Goal::Move => seen.online_here,
        Goal::Stop => seen.offline,
    };
    if done {
        Standing::Done
    } else if seen.busy {
        Standing::Busy
    } else if seen.failed {
        Standing::Failed(failure(object, goal))
    } else if goal == Goal::Start && seen.online_elsewhere {
        Standing::NotYet(if object == Object::Group { ClpCode::GroupOnline } else { ClpCode::ResourceOnline })
    } else {
        Standing::NotYet(failure(object, goal))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const IDLE_OFFLINE: Seen =
        Seen { busy: false, online_here: false, online_elsewhere: false, offline: true, failed: false };
    const HERE: Seen = Seen { busy: false, online_here: true, online_elsewhere: false, offline: false, failed: false };
    const ELSEWHERE: Seen =
        Seen { busy: false, online_here: false, online_elsewhere: true, offline: false, failed: false };
    const PENDING: Seen =
        Seen { busy: true, online_here: false, online_elsewhere: false, offline: false, failed: false };
    const FAILED: Seen =
        Seen { busy: false, online_here: false, online_elsewhere: false, offline: false, failed: true };

    #[test]
    fn refusals_before_an_operation() {
        use ClpCode as C;
        let table = [
            (Object::Group, Goal::Start, IDLE_OFFLINE, None),
            (Object::Group, Goal::Start, HERE, Some(C::GroupAlreadyStarted)),
            (Object::Group, Goal::Start, ELSEWHERE, Some(C::GroupOnline)),
            (Object::Group, Goal::Start, PENDING, Some(C::GroupBusy)),
            (Object::Group, Goal::Stop, IDLE_OFFLINE, Some(C::GroupAlreadyStopped)),
            (Object::Group, Goal::Stop, HERE, None),
            (Object::Group, Goal::Move, ELSEWHERE, None),
            (Object::Group, Goal::Move, HERE, Some(C::GroupAlreadyStarted)),
            (Object::Group, Goal::Move, IDLE_OFFLINE, Some(C::GroupOffline)),
            (Object::Resource, Goal::Start, HERE, Some(C::ResourceAlreadyStarted)),
            (Object::Resource, Goal::Start, ELSEWHERE, Some(C::ResourceOnline)),
            (Object::Resource, Goal::Stop, IDLE_OFFLINE, Some(C::ResourceAlreadyStopped)),
            (Object::Resource, Goal::Stop, PENDING, Some(C::GroupBusy)),
            (Object::Resource, Goal::Stop, ELSEWHERE, None),
        ];
        for (object, goal, seen, want) in table {
            assert_eq!(refusal(object, goal, seen), want, "{object:?} {goal:?} {seen:?}");
        }
    }

    #[test]
    fn standing_after_an_operation() {
        use ClpCode as C;
        let table = [
            (Object::Group, Goal::Start, HERE, Standing::Done),
            (Object::Group, Goal::Start, PENDING, Standing::Busy),
            (Object::Group, Goal::Start, ELSEWHERE, Standing::NotYet(C::GroupOnline)),
            (Object::Group, Goal::Start, FAILED, Standing::Failed(C::GroupStartFailed)),
            (Object::Group, Goal::Start, IDLE_OFFLINE, Standing::NotYet(C::GroupStartFailed)),
            (Object::Group, Goal::Move, ELSEWHERE, Standing::NotYet(C::GroupMoveFailed)),
            (Object::Group, Goal::Stop, IDLE_OFFLINE, Standing::Done),
            (Object::Group, Goal::Stop, FAILED, Standing::Failed(C::GroupStopFailed)),
            (Object::Resource, Goal::Start, ELSEWHERE, Standing::NotYet(C::ResourceOnline)),
            (Object::Resource, Goal::Start, FAILED, Standing::Failed(C::ResourceStartFailed)),
            (Object::Resource, Goal::Stop, HERE, Standing::NotYet(C::ResourceStopFailed)),
            (Object::Resource, Goal::Stop, PENDING, Standing::Busy),
        ];
        for (object, goal, seen, want) in table {
            assert_eq!(standing(object, goal, seen), want, "{object:?} {goal:?} {seen:?}");
        }
    }
}
