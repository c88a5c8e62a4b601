//! The simulated `clpbackup` / `clprestore`: NEC's mirror-disk backup and restore pre- and
//! post-processing (X 4.3 and later), on one server at a time.
//!
//! Why this module exists: on X 4.3+ mirrorctl drives these commands instead of editing the
//! configuration, and the simulator must refuse their misuse the way a cluster would, so that a
//! planner mistake fails in tests. What NEC documents is only that the commands exist from X 4.3,
//! that they do "the complex pre- and post-processing" of a mirror-disk backup or restore (NEC's
//! 2023 Linux EBS-snapshot blog), and their options (`no-shutdown`, `no-reboot`, `only-shutdown`,
//! `only-reboot`, `skip-copy` for restore; EXPRESSCLUSTER/clpaic's REST tool definitions). Every
//! rule below beyond that is a belief, marked [U], written down in
//! `src/adapters/clusterpro/VENDOR.md`:
//! - pre: the server leaves the cluster, its cluster service is disabled (it does not rejoin when
//!   it boots) and it shuts down [U]; `--only-shutdown` only shuts down a server already in the
//!   mode [U];
//! - backup pre refuses a server where the md's group is online (it would take business down) [U];
//!   restore pre refuses while the group is online anywhere (both sides are about to change) [U];
//! - post: the service is enabled again and the server reboots into the cluster [U];
//!   `--only-reboot` only reboots [U];
//! - a pre where the mode is already set, or a post where it is not, answers "already" [U]; a pre or
//!   post of the other command refuses [U];
//! - once every server has run its restore post, the mirror is in sync without a copy when each
//!   asked `--skip-copy` (the oracle records a corruption when the sides differ), otherwise the
//!   first md start copies its side to the other in full [U].

use jiff::Timestamp;

use super::world::{MirrorState, World};
use crate::ids::ServerName;
use crate::ports::cloud::InstanceState;
use crate::ports::cluster::errors::ClpCode;
use crate::ports::cluster::{ObjectState, VendorCall, VendorOp, VendorPhase};
use crate::ports::{ErrorClass, PortResult};

impl World {
    /// Runs `call` on `server` at `now`.
    pub(super) fn clp_vendor(&mut self, server: &ServerName, call: &VendorCall, now: Timestamp) -> PortResult<()> {
        self.check_server(server)?;
        self.check_command(call.command(), Some(server), false)?;
        let Some(inst) = self.instance_of(server).cloned() else {
            return Err(ClpCode::ServerNotFound.error(format!("no instance for {server}")));
        };
        let mode = self.clp.servers.get(server).and_then(|s| s.vendor_mode);
        match inst.state {
            InstanceState::Running => {}
            InstanceState::Pending => {
                return Err(ClpCode::ServerDown.error(format!("{server} is still starting")));
            }
            _ if call.phase == VendorPhase::Pre && mode == Some(call.op) => {
                return Err(ClpCode::ServerAlreadyDown.error(format!("{server} is already down")));
            }
            state => {
                return Err(ClpCode::ServerDown.error_as(
                    format!("{server} is {state:?}: `{call}` runs on a running server"),
                    ErrorClass::NeedsHuman,
                ));
            }
        }
        if call.skip_copy && call.op == VendorOp::Backup {
            return Err(ClpCode::InvalidOption.error("--skip-copy is a clprestore option"));
        }
        if let Some(other) = mode.filter(|m| *m != call.op) {
            return Err(ClpCode::VendorModeMismatch.error(format!(
                "{server} is inside `{} --pre`; finish it with `{} --post` first",
                other.command(),
                other.command()
            )));
        }
        match call.phase {
            VendorPhase::Pre => self.vendor_pre(server, call, mode.is_some(), now),
            VendorPhase::Post => self.vendor_post(server, call, mode.is_some(), now),
        }
    }

    fn vendor_pre(&mut self, server: &ServerName, call: &VendorCall, in_mode: bool, now: Timestamp) -> PortResult<()> {
        if call.only {
            if !in_mode {
                return Err(ClpCode::NotInVendorMode
                    .error_as(format!("{server} has not run `{} --pre`", call.command()), ErrorClass::NeedsHuman));
            }
            self.vendor_shutdown(server, now);
            return Ok(());
        }
        if in_mode {
            return Err(ClpCode::AlreadyInVendorMode.error(format!("{server} already ran `{} --pre`", call.command())));
        }
        if !self.is_member(server) {
            return Err(ClpCode::ServerNotMember.error(format!("{server} is not a cluster member yet")));
        }
        self.check_idle()?;
        let busy_here = |w: &World| {
            w.group_states().iter().any(|r| r.state != ObjectState::Offline && r.current.as_ref() == Some(server))
        };
        let busy_anywhere = |w: &World| w.group_states().iter().any(|r| r.state != ObjectState::Offline);
        let refused = match call.op {
            VendorOp::Backup => busy_here(self),
            VendorOp::Restore => busy_anywhere(self),
        };
        if refused {
            return Err(ClpCode::GroupOnline.error(format!(
                "group {} is online: stop it (restore) or run the backup on the standby",
                self.clp.group
            )));
        }
        if let Some(s) = self.clp.servers.get_mut(server) {
            s.vendor_mode = Some(call.op);
            s.member = false;
        }
        if call.op == VendorOp::Restore {
            self.clp.restore_posts.clear();
        }
        self.on_leave(now, server);
        self.log(now, format!("clp: `{call}` on {server}: left the cluster, cluster service disabled"));
        self.vendor_shutdown(server, now);
        Ok(())
    }

    fn vendor_shutdown(&mut self, server: &ServerName, now: Timestamp) {
        let Some(id) = self.clp.servers.get(server).map(|s| s.instance.clone()) else {
            return;
        };
        let until = self.after(now, self.scenario.latency.instance_stop_s);
        if let Some(i) = self.ec2.instances.get_mut(&id) {
            if i.state != InstanceState::Running {
                return;
            }
            i.join_at = None;
            i.until = Some(until);
            i.state = match i.shutdown_behavior {
                crate::ports::cloud::ShutdownBehavior::Stop => InstanceState::Stopping,
                crate::ports::cloud::ShutdownBehavior::Terminate => InstanceState::ShuttingDown,
            };
        }
        self.log(now, format!("clp: {server} shutting down ({id} stopping)"));
    }

    fn vendor_post(&mut self, server: &ServerName, call: &VendorCall, in_mode: bool, now: Timestamp) -> PortResult<()> {
        if call.only {
            self.vendor_reboot(server, now);
            return Ok(());
        }
        if !in_mode {
            return Err(ClpCode::NotInVendorMode.error(format!(
                "{server} is not inside `{} --pre` (its post-processing already ran)",
                call.command()
            )));
        }
        if let Some(s) = self.clp.servers.get_mut(server) {
            s.vendor_mode = None;
        }
        self.log(now, format!("clp: `{call}` on {server}: cluster service enabled, rebooting"));
        if call.op == VendorOp::Restore {
            self.clp.restore_posts.insert(server.clone(), call.skip_copy);
            if !call.skip_copy {
                // Nothing says this side matches the other: it is rebuilt by a full copy [U].
                for md in self.clp.mds.iter_mut().filter(|m| m.def.is_some()) {
                    md.mirror = MirrorState::Degraded { stale: server.clone(), writes: 0, full: true };
                }
            }
            self.settle_restore(now);
        }
        self.vendor_reboot(server, now);
        Ok(())
    }

    /// The server reboots: it leaves the cluster and joins again once the OS is back.
    fn vendor_reboot(&mut self, server: &ServerName, now: Timestamp) {
        let was_member = self.is_member(server);
        if let Some(s) = self.clp.servers.get_mut(server) {
            s.member = false;
        }
        if was_member {
            self.on_leave(now, server);
        }
        let l = &self.scenario.latency;
        let median = l.instance_stop_s + l.instance_start_s + l.cluster_join_s;
        let at = self.after(now, median);
        let Some(id) = self.clp.servers.get(server).map(|s| s.instance.clone()) else {
            return;
        };
        if let Some(i) = self.ec2.instances.get_mut(&id) {
            i.join_at = Some(at);
        }
    }

    /// Once every server ran its restore post-processing: the mirror state the restore leaves.
    fn settle_restore(&mut self, t: Timestamp) {
        let servers: Vec<ServerName> = self.clp.servers.keys().cloned().collect();
        if servers.iter().any(|s| !self.clp.restore_posts.contains_key(s)) {
            return;
        }
        let skip = self.clp.restore_posts.values().all(|s| *s);
        if skip {
            self.flag_unless_identical(t, "restore post-processing skipped the mirror copy", None);
            for md in self.clp.mds.iter_mut().filter(|m| m.def.is_some()) {
                md.mirror = MirrorState::InSync;
            }
            self.log(t, "clp: restore finished on every server; mirror copy skipped");
        } else {
            for md in self.clp.mds.iter_mut().filter(|m| m.def.is_some()) {
                md.mirror = MirrorState::Unconstructed;
            }
            self.log(t, "clp: restore finished on every server; the first md start copies its side in full");
        }
        self.clp.restore_posts.clear();
    }
}
