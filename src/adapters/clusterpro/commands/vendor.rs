//! NEC's backup/restore pre- and post-processing (`clpbackup`, `clprestore`, X 4.3+) as commands
//! on the server they act on, and the installed version that decides `procedure = "auto"`.
//!
//! Why this module exists: these commands take their own server out of the cluster and shut it
//! down (pre) or put it back and reboot it (post), so, like `clpdown`, their answer may be lost
//! with the OS. The outcome is then judged from `clpstat` on the other server: a pre is done when
//! the server has left the cluster; a post whose answer was lost is left to the planner, which
//! waits for the server to rejoin and finishes a reboot that never came with `--only-reboot`.
//! What each call does is written down, with what is inferred, in `../VENDOR.md`.

use std::time::Instant;

use super::preflight::{read_tools, tools_script};
use super::{Clp, CommandCluster, NOT_FOUND_STATUS, Script, VERSION_TTL, failed, not_found, server_known, used_on};
use crate::ids::ServerName;
use crate::ports::PortResult;
use crate::ports::cluster::errors::ClpCode;
use crate::ports::cluster::{ClusterStatus, VendorCall, VendorOp, VendorPhase};

impl CommandCluster {
    /// The CLUSTERPRO version installed on `server` (package version on Linux, `clpstat.exe`'s
    /// product version on Windows), read at most every [`VERSION_TTL`]; `None` when unreadable.
    pub(super) async fn installed_version(&self, server: &ServerName) -> Option<String> {
        if let Some((at, v)) = self.version.lock().ok().and_then(|g| g.clone())
            && at.elapsed() < VERSION_TTL
        {
            return v;
        }
        let bin = self.install_dir_of(server).await.ok()?.ok()?;
        let script = tools_script(self.os, &bin, &["clpstat"]);
        let out = self.transport.run(server, self.shell(), &script, self.options.query_timeout).await.ok()?;
        let (_, version) = read_tools(&out.stdout);
        if let Ok(mut g) = self.version.lock() {
            *g = Some((Instant::now(), version.clone()));
        }
        version
    }

    /// Runs `call` on `server` itself.
    pub(super) async fn run_vendor(&self, server: &ServerName, call: &VendorCall) -> PortResult<()> {
        self.finish_pending_resume().await?;
        let (_, st) = self.live_status().await?;
        server_known(&st, server)?;
        let member = st.servers.get(server) == Some(&true);
        if call.phase == VendorPhase::Pre && !call.only {
            let busy = match call.op {
                VendorOp::Backup => used_on(&st, server),
                VendorOp::Restore => st
                    .groups
                    .iter()
                    .find(|(_, p)| p.state != crate::ports::cluster::ObjectState::Offline)
                    .map(|(g, _)| g.to_string()),
            };
            if let Some(g) = busy {
                return Err(ClpCode::GroupOnline
                    .error(format!("group {g} is online: `{call}` on {server} would take it down; stop it first")));
            }
        }
        let args: Vec<String> = call.args().into_iter().map(str::to_owned).collect();
        let cmd = Clp::new(call.command(), args);
        let what = format!("`{}` on {server}", cmd.line());
        let gone = |st: &ClusterStatus| st.servers.get(server) != Some(&true);
        let shuts_down = call.phase == VendorPhase::Pre;
        match self.exec(server, &Script::run(&cmd), self.options.operation_timeout).await {
            // A pre on a server that is down and gone: its shutdown happened already.
            Err(e) if shuts_down && !member => Err(ClpCode::ServerAlreadyDown
                .error(format!("{server} is not a cluster member and cannot be reached ({e})"))),
            // The answer may be lost because the OS went down (pre) or rebooted (post) under it.
            Err(e) if shuts_down => match self.live_status().await {
                Ok((_, st)) if gone(&st) => Ok(()),
                _ => Err(e),
            },
            Err(e) => Err(e),
            Ok(out) if out.exit_code == 0 => Ok(()),
            Ok(out) if out.exit_code == NOT_FOUND_STATUS => Err(not_found(&what, out)),
            Ok(out) if shuts_down => {
                let (_, st) = self.live_status().await?;
                if gone(&st) { Ok(()) } else { Err(failed(out, &what, ClpCode::VendorPreFailed)) }
            }
            Ok(out) => Err(failed(out, &what, ClpCode::VendorPostFailed)),
        }
    }
}
