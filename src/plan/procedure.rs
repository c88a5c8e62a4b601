//! Which CLUSTERPRO procedure an operation follows: NEC's backup/restore pre- and post-processing
//! (`clpbackup` / `clprestore`, X 4.3+) or the runbook's configuration edit.
//!
//! Why this module exists: `cluster.procedure` says what the operator wants (`auto`, `vendor`,
//! `reconfigure`), the cluster's version says what it can do, and an operation must never change
//! procedure half-way. So the choice is made once, before the operation's preflight, and pinned by
//! it: the preflight's request names the procedure it proved, and once it has passed, that
//! procedure is the operation's for good. `auto` takes the vendor procedure from X 4.3 (NEC's 2023
//! Linux blog: the commands are "supported in EXPRESSCLUSTER X 4.3 and later"); when the version
//! cannot be read it takes the configuration edit, which every version supports, and says so.

use crate::ids::ServerName;
use crate::journal::JournalView;
use crate::observe::Observed;
use crate::ports::cluster::{ClpVersion, Procedure, VendorCall};
use crate::spec::{ProcedureChoice, Spec};

use super::step::{Action, OpId, Reason, StepId, StepKind, Watch};
use super::{Draft, expect};

/// [`choose`] for a planner: the procedure, with why noted in `d`; `None` when `d` now blocks or
/// waits instead (the planner returns its outcome then).
pub(crate) fn choose_for(
    spec: &Spec,
    obs: &Observed,
    journal: &JournalView,
    op: &OpId,
    d: &mut Draft,
) -> Option<Procedure> {
    match choose(spec, obs, journal, op) {
        Ok((p, why)) => {
            d.notes.push(why);
            Some(p)
        }
        Err(r) => {
            r.apply(d);
            None
        }
    }
}

/// One of NEC's calls on `server` ran (its last attempt began at `since`), and what it ends with
/// (the shutdown, or the reboot back into the cluster) is expected within `expected`. Until twice
/// that, `d` waits for `waiting_for`; past it, step `kind` runs `call` — the call's last part alone
/// (`--only-shutdown`, `--only-reboot`) — because the command was cut short.
#[allow(clippy::too_many_arguments)]
pub(crate) fn finish_cut_short(
    d: &mut Draft,
    op: &OpId,
    kind: &StepKind,
    server: &ServerName,
    call: VendorCall,
    since: Option<jiff::Timestamp>,
    now: jiff::Timestamp,
    expected: std::time::Duration,
    watch: Watch,
    waiting_for: String,
) {
    let limit = jiff::SignedDuration::try_from(expected * 2).unwrap_or(jiff::SignedDuration::MAX);
    if since.is_some_and(|t| now.duration_since(t) > limit) {
        let why = format!("{server} ran `{}` but {waiting_for} did not happen", call.command());
        d.step(op, kind, Some(server.as_str()), Action::Vendor { server: server.clone(), call }, why);
    } else {
        d.wait(watch, waiting_for, expect::remaining(expected, since, now));
    }
}

/// The procedure `op` follows, and why — or why none can be chosen (a condition to block with:
/// reason, message, what to do).
pub fn choose(spec: &Spec, obs: &Observed, journal: &JournalView, op: &OpId) -> Result<(Procedure, String), Refusal> {
    let pre = journal.step(op, &StepId::new(op, &StepKind::Preflight, None));
    if pre.succeeded
        && let Some(Action::Preflight { request, .. }) = &pre.last_action
    {
        return Ok((
            request.procedure,
            format!("procedure {} (proven by this operation's preflight)", request.procedure.as_str()),
        ));
    }
    let wanted = spec.cluster.procedure;
    if !obs.cluster_reachable && wanted != ProcedureChoice::Reconfigure {
        // No server answers (both inside NEC's processing of an earlier operation, or down): the
        // version is not known now, and the operation's preflight could not run anyway.
        return Err(Refusal::wait());
    }
    let text = obs.config.version.as_deref();
    let version = text.and_then(ClpVersion::parse);
    let found = match (version, text) {
        (Some(v), _) => format!("CLUSTERPRO {v}"),
        (None, Some(t)) => format!("CLUSTERPRO version {t:?} (unreadable)"),
        (None, None) => "an unknown CLUSTERPRO version".to_owned(),
    };
    match wanted {
        ProcedureChoice::Reconfigure => {
            Ok((Procedure::Reconfigure, "procedure reconfigure (cluster.procedure = \"reconfigure\")".to_owned()))
        }
        ProcedureChoice::Vendor => match version {
            Some(v) if v.has_vendor_procedure() => {
                Ok((Procedure::Vendor, format!("procedure vendor (cluster.procedure = \"vendor\"; {found})")))
            }
            _ => Err(Refusal {
                reason: Some(Reason::VendorProcedureUnsupported),
                message: format!(
                    "cluster.procedure = \"vendor\" in {} needs CLUSTERPRO X 4.3 or later (clpbackup/clprestore); \
                     the cluster runs {found}",
                    spec.source.display()
                ),
                action: "set procedure = \"auto\" or \"reconfigure\" in the desired-state file, or upgrade CLUSTERPRO"
                    .to_owned(),
            }),
        },
        ProcedureChoice::Auto => Ok(match version {
            Some(v) if v.has_vendor_procedure() => {
                (Procedure::Vendor, format!("procedure vendor (auto: {found} ships clpbackup/clprestore)"))
            }
            Some(_) => (Procedure::Reconfigure, format!("procedure reconfigure (auto: {found} is older than X 4.3)")),
            None => (
                Procedure::Reconfigure,
                format!("procedure reconfigure (auto: {found}; the configuration edit works on every version)"),
            ),
        }),
    }
}

/// Why no procedure can be chosen: the condition to block with, or (no `reason`) a wait for a
/// server to answer for the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// Condition reason; `None` for a wait.
    pub reason: Option<Reason>,
    /// What is wrong.
    pub message: String,
    /// What to do.
    pub action: String,
}

impl Refusal {
    fn wait() -> Self {
        Refusal {
            reason: None,
            message: "a server to answer for the cluster, to read its CLUSTERPRO version".to_owned(),
            action: String::new(),
        }
    }

    /// Puts this refusal into `d`: a block, or a wait on the cluster.
    pub(crate) fn apply(self, d: &mut super::Draft) {
        match self.reason {
            Some(reason) => d.block(reason, self.message, self.action),
            None => d.wait(super::Watch::CLUSTER, self.message, super::expect::CLUSTER_PENDING),
        }
    }
}
