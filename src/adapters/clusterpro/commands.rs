//! The CLUSTERPRO port over `clp*` commands run on the cluster's nodes.
//!
//! Why this module exists: CLUSTERPRO X 4.0/4.1 has no REST API, and no version has an API that
//! writes the configuration (DOMAIN.md). So every cluster has to be reachable the way an operator
//! reaches it: `clpstat`, `clpgrp`, `clprsc`, `clpdown`, `clpmdstat`, `clpcfctrl` and `clpcl`
//! (plus the Windows `Win32_Volume` query for volume GUIDs, [`guid`]), run on a node through a [`Transport`] (SSM Run Command, or locally), their text
//! read with [`super::parse`] and `clp.conf` edited in Rust with [`super::conf`].
//!
//! **Which node.** Commands go to the server that last answered as a running cluster member
//! (the first server of the desired state at the start); when the transport cannot reach it, the
//! command is missing there, or it is not a running member (its `clpstat` fails or shows it
//! offline), the other server is tried. `clpdown` is the exception: it runs on the server it shuts
//! down; in [`Cluster::leave_then_start`] it runs as `clpdown -h <leaving>` on the server that then
//! starts, in one script that reads `clpstat` until the leaving server shows out (script
//! [`Leave`]) and only then starts. `-h` names the server a request is for: NEC's UM8700 script
//! stops the other server's service with `clpcl -t -h <other>` (EXPRESSCLUSTER/Tools
//! `UM8700beforeUpdate.ps1`), and NEC's clpaic appends `-h <hostname>`, "the server to send the
//! request to", to every command it builds, `clpdown` included
//! (EXPRESSCLUSTER/clpaic `src/clpaic-local/clpaic.py`); that `clpdown -h` then shuts that server
//! down is [U] (README), which is why nothing starts before the server is seen gone.
//!
//! **Errors.** No exit-code table of the commands is known (DOMAIN.md, unconfirmed): 0 is success, anything
//! else failure. So a failed command is never classified by its text. Before a mutating command
//! the adapter reads `clpstat` and refuses, with the simulator's code and class, what the cluster's
//! state already rules out (`GroupAlreadyStarted` is `AlreadyDone`, `GroupOnline` `NeedsHuman`,
//! `GroupBusy` `Retryable`, …); after a failed one it reads `clpstat` again: the goal state reached
//! is success, otherwise the code says which operation failed (`GroupStartFailed`, …) and the
//! message is the command's own. Exit status 127 (the shell's "not found", which the PowerShell
//! scripts also use) is `ClpCommandNotFound` on every server → `NeedsHuman`. The codes and their
//! classes are the vocabulary the simulator also answers with
//! ([`crate::ports::cluster::errors::ClpCode`]), so the executor treats a simulated and a real
//! cluster alike.
//!
//! **Configuration** ([`Cluster::apply_config`]): `clpcfctrl --pull` into a fresh directory on the
//! node → [`Transport::read_file`] → the pulled `clp.conf` is kept in the state directory, byte
//! for byte (`<state>/clpconf/<cluster>/<UTC time>-pulled.conf`, never overwritten) → read in the
//! encoding its XML declaration names (UTF-8, ASCII, `Shift_JIS` or EUC-JP; see
//! [`super::conf::ConfFile`]: a file that would not be written back byte-identical is refused as
//! `ClpConfUnreadable`, `NeedsHuman`) → edited in Rust → encoded back in the same encoding → the
//! result is kept too, byte for byte (`…-pushed.conf`) → [`Transport::write_file`] → `clpcfctrl --push` →
//! `clpcl --suspend` → `clpcl --resume` (NEC's own scripts do this after adding or removing md,
//! with the group stopped: the adapter refuses md changes while the md's group is not offline).
//! A change already in place pushes nothing.
//!
//! **Crash safety, and host loss.** Removing md loses what [`super::conf::MirrorTemplate`] keeps
//! (network settings, mount point, monitors, dependencies). The template is captured from the
//! pulled file and written to the state store as the cluster file `template-<md>.json`
//! ([`Store::write_cluster_file`]) *before* the removal is pushed, so a process that dies between
//! the two pushes of a restore re-adds md exactly as it was. On Windows the per-server volume
//! GUIDs are read again (the `Win32_Volume` `DeviceID` of the data and cluster letters on each
//! server, see [`guid`]) right before md is re-added. A marker (`pending-resume`) is written to
//! the store before each push and removed after the resume; when a crash left it behind, the next
//! mutating call first completes the suspend/resume.
//!
//! Why the store and not the journal: both pieces are the adapter's own memory *inside* one port
//! call (the marker lives from before a push to after its resume, within `apply_config`), which
//! the executor's journal never sees; carrying the template in the remove-md step's result would
//! have changed the `Cluster` port, the planner's `AddMirror` and every implementation of the port
//! for the one adapter that edits `clp.conf`. With the directory store the two files stay where
//! they always were (`<state>/clpconf/<cluster>/`); with DynamoDB they are items of the cluster
//! (`file#template-<md>.json`, `file#pending-resume`), so another host with an empty state
//! directory finishes a restore whose first host died between removing md and re-adding it. The
//! `clp.conf` copies (`*-pulled.conf`, `*-pushed.conf`) stay on the host that made them: they are
//! for a human rolling back by hand, and a resume needs none of them. NEC's `clpbackup` /
//! `clprestore` (`procedure = "vendor"`, [`vendor`]) never edit `clp.conf`, so a vendor restore
//! needs neither file.
//!
//! These writes are not fenced by the lease (the executor checked it before the call). A deposed
//! holder's late write is harmless: the template it writes is captured from a `clp.conf` that
//! still held md, which is the same md the successor would capture; a late marker costs one extra
//! `clpcl --suspend` / `--resume`. A late *removal* of the marker could hide a resume the
//! successor still owes if the successor also died between its push and its resume; the next
//! restore's preflight and the cluster's status show a suspended cluster then.
//!
//! **Command lines and their sources.** `clpgrp -s <g> -h <srv>` / `clpgrp -t <g> -h <current>`
//! and `clprsc -t <md> -f -h <current>` as NEC's EXPRESSCLUSTER/ScheduleMirroring
//! `scheduleMirror_2nodeWin_X33.ps1` writes them. `clpgrp -m <g> -a <target>`: EXPRESSCLUSTER/clpaic
//! `src/clpaic-remote/tool_definitions.py` (`move_group`) moves with `-a <destination>`; without
//! `-a` the group moves "according to the failover policy", and `-h` only picks the server that
//! handles the request (research/clusterpro-audit.md #3), so a `-h` move lands on the right server
//! in a 2-node cluster only by accident. `clprsc -s … -f` is [U] (no source says what `-f` does on
//! start).
//!
//! **Install directory.** The desired state's `cluster.install_dir`, when given, is where the
//! `clp*` executables are on every server. Otherwise each server is asked once, by a small script
//! run before its first command, which of [`CommandOptions::install_search`] holds
//! [`PROBE_TOOL`]; the answer is remembered per server, and forgotten when a command there is not
//! found (the directory is then looked for again and the command run from the new place). Windows
//! tries [`WINDOWS_INSTALL_DIRS`]: `C:\Program Files\CLUSTERPRO\bin` (NEC's `clp_changeIP.ps1`),
//! then `C:\Program Files\EXPRESSCLUSTER\bin` (EXPRESSCLUSTER installs under
//! `C:\Program Files\EXPRESSCLUSTER`: NEC's EXPRESSCLUSTER/Tools `UM8700beforeUpdate.ps1` reads
//! `…\EXPRESSCLUSTER\etc\clp.conf`; the `bin` subdirectory is [U]); Linux tries
//! [`LINUX_INSTALL_DIRS`] (`/opt/nec/clusterpro/bin`, DOMAIN.md [P]) then `PATH` (the packages put
//! the commands in `/usr/sbin`, DOMAIN.md [P]). Nothing found anywhere is `ClpCommandNotFound`
//! (`NeedsHuman`) naming every place tried (research/clusterpro-audit.md #14).
//!
//! **Scripts.** `clpgrp`, `clprsc`, `clpcfctrl --push` and `clpcl` return when CLUSTERPRO has
//! finished (seen in use, DOMAIN.md), so a call's exit is its outcome; nothing is polled. An
//! operation's script (and `clpcl --resume`'s) runs `clpstat` after the command when it exited 0,
//! its output after a [`STATUS_MARKER`] line: the status the operation left, its answer
//! ([`crate::ports::cluster::Left`]), without another run on the node. `clpdown` takes its own
//! server out, so its answer is asked of the cluster right after it. Linux: one `sh` script per
//! call, an argument quoted unless it holds only safe characters. Windows: one PowerShell
//! script per call (`AWS-RunPowerShellScript` runs Windows PowerShell 5.1), using only
//! `New-Item -ItemType Directory`, `Test-Path -LiteralPath` (or `Get-Command` without a command
//! directory), the call operator `&` with single-quoted arguments, `$LASTEXITCODE`, `Remove-Item
//! -Recurse -Force`, `Write-Output` and `[Console]::Error.WriteLine`, and for the wait of
//! [`Leave`] a `for` loop with `break`, `-match` and `Start-Sleep -Seconds`; a missing executable
//! exits 127. Golden text of every script, the install-directory detection included, is in
//! `tests/it/snapshots/it__clusterpro_commands__windows_*.snap`.
//!
//! Not modelled: a Linux md definition whose partitions are missing is only found out by
//! `clpcfctrl --push` itself (`ConfigPushFailed`, `NeedsHuman`, with the command's message); the
//! simulator names that case `PartitionNotFound`.

mod classify;
mod guid;
mod preflight;
mod script;
mod store;
mod vendor;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::conf::{self, ConfError, GuidSource, MirrorTemplate, VolumeGuids};
use super::parse;
use crate::adapters::node::transport::{CommandOutput, Shell, Transport};
use crate::adapters::store::LocalStore;
use crate::ids::{ClusterName, GroupName, ResourceName, ServerName};
use crate::ports::cluster::errors::ClpCode;
use crate::ports::cluster::{
    Cluster, ClusterConfig, ClusterStatus, ConfigChange, Left, MdDefinition, MirrorStatus, ObjectState, Start,
    VendorCall,
};
use crate::ports::store::Store;
use crate::ports::{PortError, PortResult};
use crate::spec::{ClusterSpec, Os, Partition};
use classify::{
    Miss, Verdict, after_move_group, after_start_group, after_start_resource, after_stop_group, after_stop_resource,
    busy, check_move_group, check_start_group, check_start_resource, check_stop_group, check_stop_resource, conf_error,
    failed, failed_as, no_server, not_found, pending, server_known, used_on, where_,
};
use script::{
    Clp, Leave, Script, detect_powershell, detect_sh, parse_detected, ps_word, render_powershell, render_sh, sh_word,
};
use store::ConfStore;

/// Where the `clp*` commands are looked for on Windows, in order, when the desired state has no
/// `cluster.install_dir`: CLUSTERPRO (NEC's `clp_changeIP.ps1` uses this path), then EXPRESSCLUSTER
/// (NEC's UM8700 scripts read `C:\Program Files\EXPRESSCLUSTER\etc\clp.conf`; another NEC script
/// picks `EXPRESSCLUSTER\work` or `CLUSTERPRO\work` by product; research/clusterpro-audit.md #14).
/// The `bin` subdirectory of the EXPRESSCLUSTER install is [U] (by analogy with CLUSTERPRO's).
pub const WINDOWS_INSTALL_DIRS: &[&str] = &[r"C:\Program Files\CLUSTERPRO\bin", r"C:\Program Files\EXPRESSCLUSTER\bin"];
/// Where the `clp*` commands are looked for on Linux before `PATH` (on which the Linux packages put
/// them, in `/usr/sbin`; DOMAIN.md [P]).
pub const LINUX_INSTALL_DIRS: &[&str] = &["/opt/nec/clusterpro/bin"];
/// The command whose presence marks an install directory.
pub const PROBE_TOOL: &str = "clpstat";
/// The word the detection script prints before the index of the place it found.
pub const DETECTED: &str = "mirrorctl-install-dir";
/// Where temporary configuration directories are made on a Linux node.
pub const LINUX_WORK_DIR: &str = "/tmp";
/// Where temporary configuration directories are made on a Windows node (SSM runs as SYSTEM).
pub const WINDOWS_WORK_DIR: &str = r"C:\Windows\Temp";
/// Exit status meaning "command not found" (`sh`; the PowerShell scripts exit with it too).
pub const NOT_FOUND_STATUS: i32 = 127;
/// Exit status of a script whose [`Cluster::leave_then_start`] shutdown returned but whose server
/// still showed as a cluster member after [`LEAVE_LOOKS`] looks (nothing was started).
pub const LEAVE_NOT_SEEN_STATUS: i32 = 75;
/// How many times, one second apart, the script of [`Cluster::leave_then_start`] reads `clpstat`
/// for the leaving server to show out of the cluster.
pub const LEAVE_LOOKS: u32 = 120;
/// The configuration file `clpcfctrl --pull` writes into its `-x` directory (seen in use).
pub const CONF_FILE: &str = "clp.conf";
/// Prefix of the temporary directories made on the nodes.
pub const TEMP_PREFIX: &str = "mirrorctl-clp-";
/// The line an operation's script prints before the `clpstat` it runs once the operation succeeded
/// (see [`Cluster`]'s answers: the status an operation left, read in the same run on the node).
pub const STATUS_MARKER: &str = "mirrorctl-clpstat";
/// The marker file left while a pushed configuration still needs `clpcl --suspend/--resume`.
pub const PENDING_RESUME: &str = "pending-resume";

/// A place where a server's `clp*` commands may be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InstallDir {
    /// This directory (absolute, in the node's own path syntax).
    Dir(String),
    /// Wherever `PATH` finds them.
    Path,
}

impl std::fmt::Display for InstallDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InstallDir::Dir(d) => f.write_str(d),
            InstallDir::Path => f.write_str("PATH"),
        }
    }
}

/// Where the commands are and how long they may take.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOptions {
    /// The directory of the `clp*` executables on every server (`cluster.install_dir`); `None`:
    /// found on each server among [`CommandOptions::install_search`].
    pub install_dir: Option<String>,
    /// Where to look, in order, when `install_dir` is `None`: the first place holding
    /// [`PROBE_TOOL`] is used on that server (and remembered; forgotten when a command there is
    /// not found).
    pub install_search: Vec<InstallDir>,
    /// Directory on the node under which temporary `clp.conf` directories are made.
    pub work_dir: String,
    /// Longest wait for a command that only reads (`clpstat`, `clpmdstat`, `clpcfctrl --pull`).
    pub query_timeout: Duration,
    /// Longest wait for a command that changes the cluster (`clpgrp`, `clprsc`, `clpcfctrl
    /// --push`, `clpcl`, `clpdown`): they return when CLUSTERPRO has finished.
    pub operation_timeout: Duration,
}

impl CommandOptions {
    /// The defaults for `os`: install directory found per server ([`WINDOWS_INSTALL_DIRS`]; on
    /// Linux [`LINUX_INSTALL_DIRS`] then `PATH`), the temporary directory above, 2 minutes for
    /// queries, 15 minutes for operations.
    pub fn for_os(os: Os) -> Self {
        let dirs = |d: &[&str]| d.iter().map(|d| InstallDir::Dir((*d).to_owned())).collect::<Vec<_>>();
        let (install_search, work_dir) = match os {
            Os::Windows => (dirs(WINDOWS_INSTALL_DIRS), WINDOWS_WORK_DIR),
            Os::Linux => ([dirs(LINUX_INSTALL_DIRS), vec![InstallDir::Path]].concat(), LINUX_WORK_DIR),
        };
        CommandOptions {
            install_dir: None,
            install_search,
            work_dir: work_dir.to_owned(),
            query_timeout: Duration::from_mins(2),
            operation_timeout: Duration::from_mins(15),
        }
    }
}

/// The state-directory folder where the configuration copies, md templates and the
/// pending-resume marker of `cluster` live: `<state>/clpconf/<cluster>`.
pub fn conf_dir(state_dir: &Path, cluster: &ClusterName) -> PathBuf {
    state_dir.join("clpconf").join(cluster.as_str())
}

// ---------------------------------------------------------------------------------------------
// The adapter.

/// The [`Cluster`] port over `clp*` commands run through a [`Transport`].
pub struct CommandCluster {
    cluster: ClusterName,
    os: Os,
    servers: Vec<ServerName>,
    transport: Arc<dyn Transport>,
    options: CommandOptions,
    store: ConfStore,
    /// The server that last answered as a running member.
    preferred: Mutex<Option<ServerName>>,
    /// Where each server's commands were found (see [`CommandOptions::install_search`]).
    installs: Mutex<BTreeMap<ServerName, InstallDir>>,
    /// One completion of a pending suspend/resume at a time.
    resume: tokio::sync::Mutex<()>,
    /// The installed version as last read, and when (see [`VERSION_TTL`]).
    version: Mutex<Option<(std::time::Instant, Option<String>)>>,
}

/// How long a read CLUSTERPRO version is reused: it changes only with an upgrade, and reading it
/// costs a command on a node.
const VERSION_TTL: Duration = Duration::from_mins(10);

/// The file name of a CLUSTERPRO command on `os`. NEC's backup/restore pre- and post-processing
/// commands are scripts, `clpbackup.sh` / `clprestore.sh` on Linux and `clpbackup.bat` /
/// `clprestore.bat` on Windows [U: the Reference Guide pages could not be read; see VENDOR.md];
/// every other command is the bare name (Linux) or `<name>.exe` (Windows).
pub(super) fn command_file(os: Os, tool: &str) -> String {
    match (os, tool) {
        (Os::Linux, "clpbackup" | "clprestore") => format!("{tool}.sh"),
        (Os::Windows, "clpbackup" | "clprestore") => format!("{tool}.bat"),
        (Os::Linux, _) => tool.to_owned(),
        (Os::Windows, _) => format!("{tool}.exe"),
    }
}

impl std::fmt::Debug for CommandCluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CommandCluster")
            .field("cluster", &self.cluster)
            .field("os", &self.os)
            .field("servers", &self.servers)
            .field("options", &self.options)
            .field("state", &self.store.dir)
            .finish_non_exhaustive()
    }
}

/// A `clp.conf` pulled from a node, still in its directory there (with the scripts
/// `clpcfctrl --pull` wrote beside it, which a push from that directory keeps).
struct Pulled {
    server: ServerName,
    dir: String,
    /// The file's bytes, as pulled.
    bytes: Vec<u8>,
    /// Its text, read in its declared encoding.
    file: conf::ConfFile,
}

impl Pulled {
    fn text(&self) -> &str {
        &self.file.text
    }
}

impl CommandCluster {
    /// The port for the cluster `spec` (its name, OS and servers, in the order they are tried),
    /// running commands through `transport`, keeping configuration copies under `state_dir`
    /// (the daemon's state directory), with the defaults of [`CommandOptions::for_os`] and the
    /// spec's `install_dir`.
    pub fn new(spec: &ClusterSpec, transport: Arc<dyn Transport>, state_dir: &Path) -> Self {
        Self::with_options(spec, transport, state_dir, CommandOptions::for_os(spec.os))
    }

    /// [`CommandCluster::new`] with explicit options (the spec's `install_dir` applies when
    /// `options.install_dir` is `None`).
    pub fn with_options(
        spec: &ClusterSpec,
        transport: Arc<dyn Transport>,
        state_dir: &Path,
        mut options: CommandOptions,
    ) -> Self {
        if options.install_dir.is_none() {
            options.install_dir.clone_from(&spec.install_dir);
        }
        CommandCluster {
            cluster: spec.name.clone(),
            os: spec.os,
            servers: spec.servers.iter().map(|s| s.name.clone()).collect(),
            transport,
            options,
            store: ConfStore {
                dir: conf_dir(state_dir, &spec.name),
                cluster: spec.name.clone(),
                files: Arc::new(LocalStore::new(state_dir)),
            },
            preferred: Mutex::new(None),
            installs: Mutex::new(BTreeMap::new()),
            resume: tokio::sync::Mutex::new(()),
            version: Mutex::new(None),
        }
    }

    /// Keeps the md templates and the pending-resume marker in `store` (the daemon's state
    /// store: with DynamoDB another host finds them) instead of the state directory.
    #[must_use]
    pub fn with_store(mut self, store: Arc<dyn Store>) -> Self {
        self.store.files = store;
        self
    }

    /// Where this cluster's `clp.conf` copies are kept (and, with the directory store, its md
    /// templates).
    pub fn conf_dir(&self) -> &Path {
        &self.store.dir
    }

    fn shell(&self) -> Shell {
        match self.os {
            Os::Windows => Shell::PowerShell,
            Os::Linux => Shell::Sh,
        }
    }

    fn render(&self, bin: &InstallDir, script: &Script<'_>) -> String {
        match self.os {
            Os::Windows => render_powershell(bin, script),
            Os::Linux => render_sh(bin, script),
        }
    }

    /// Where `server`'s commands are: `cluster.install_dir`, else what an earlier detection found
    /// there, else a detection now. `Err`: the detection's output, when it found nothing (exit
    /// status 127, naming the places tried) or failed.
    async fn install_dir_of(&self, server: &ServerName) -> PortResult<Result<InstallDir, CommandOutput>> {
        if let Some(d) = &self.options.install_dir {
            return Ok(Ok(InstallDir::Dir(d.clone())));
        }
        if let Some(d) = self.installs.lock().ok().and_then(|m| m.get(server).cloned()) {
            return Ok(Ok(d));
        }
        let search = &self.options.install_search;
        let script = match self.os {
            Os::Windows => detect_powershell(search),
            Os::Linux => detect_sh(search),
        };
        let out = self.transport.run(server, self.shell(), &script, self.options.query_timeout).await?;
        if out.exit_code != 0 {
            return Ok(Err(out));
        }
        let Some(found) = parse_detected(&out.stdout, search) else {
            return Err(ClpCode::ClpOutputUnreadable.error(format!(
                "looking for the CLUSTERPRO commands on {server}: unexpected output {:?}",
                out.stdout.trim()
            )));
        };
        tracing::info!(cluster = %self.cluster, %server, dir = %found, "CLUSTERPRO commands found");
        if let Ok(mut m) = self.installs.lock() {
            m.insert(server.clone(), found.clone());
        }
        Ok(Ok(found))
    }

    /// `name` inside the node directory `dir`.
    fn node_path(&self, dir: &str, name: &str) -> String {
        match self.os {
            Os::Windows => format!("{}\\{name}", dir.trim_end_matches('\\')),
            Os::Linux => format!("{}/{name}", dir.trim_end_matches('/')),
        }
    }

    /// A fresh temporary directory name on the node.
    fn temp_dir(&self) -> String {
        let nonce: u32 = rand::random();
        self.node_path(&self.options.work_dir, &format!("{TEMP_PREFIX}{nonce:08x}"))
    }

    /// The servers, the preferred one first.
    fn order(&self) -> Vec<ServerName> {
        let preferred = self.preferred.lock().ok().and_then(|p| p.clone());
        let mut order = self.servers.clone();
        if let Some(p) = preferred
            && let Some(i) = order.iter().position(|s| *s == p)
        {
            order[..=i].rotate_right(1);
        }
        order
    }

    fn prefer(&self, server: &ServerName) {
        if let Ok(mut p) = self.preferred.lock() {
            *p = Some(server.clone());
        }
    }

    /// Runs `script` on `server`, its command from the server's install directory. A command
    /// not found in a detected directory (exit status 127: it did not run) makes the adapter look
    /// for the directory again, and run the script once more when it is found elsewhere.
    async fn exec(&self, server: &ServerName, script: &Script<'_>, timeout: Duration) -> PortResult<CommandOutput> {
        if script.command.is_none() {
            return self.transport.run(server, self.shell(), &self.render(&InstallDir::Path, script), timeout).await;
        }
        let bin = match self.install_dir_of(server).await? {
            Ok(bin) => bin,
            Err(out) => return Ok(out),
        };
        let out = self.transport.run(server, self.shell(), &self.render(&bin, script), timeout).await?;
        if out.exit_code != NOT_FOUND_STATUS || self.options.install_dir.is_some() {
            return Ok(out);
        }
        if let Ok(mut m) = self.installs.lock() {
            m.remove(server);
        }
        match self.install_dir_of(server).await? {
            Ok(again) if again != bin => {
                self.transport.run(server, self.shell(), &self.render(&again, script), timeout).await
            }
            Ok(_) => Ok(out),
            Err(detection) => Ok(detection),
        }
    }

    /// Removes a temporary directory on `server`; a failure only leaves a directory behind.
    async fn cleanup(&self, server: &ServerName, dir: &str) {
        let script = Script { remove_dir: Some(dir), ..Script::default() };
        match self.exec(server, &script, self.options.query_timeout).await {
            Ok(out) if out.exit_code == 0 => {}
            Ok(out) => {
                tracing::warn!(%server, dir, stderr = %out.stderr.trim(), "could not remove a temporary directory");
            }
            Err(e) => tracing::warn!(%server, dir, error = %e, "could not remove a temporary directory"),
        }
    }

    /// `clpstat` on `server`, which must show `server` itself as a running member.
    async fn clpstat_on(&self, server: &ServerName) -> Result<ClusterStatus, Miss> {
        let cmd = Clp::new("clpstat", Vec::<String>::new());
        let out = self.exec(server, &Script::run(&cmd), self.options.query_timeout).await.map_err(Miss::Unreachable)?;
        if out.exit_code == NOT_FOUND_STATUS {
            return Err(Miss::Missing(format!("clpstat not found: {}", out.stderr.trim())));
        }
        if out.exit_code != 0 {
            let said = out.said();
            return Err(Miss::NotMember(format!("clpstat exited with status {}: {said}", out.exit_code)));
        }
        let st = parse::parse_clpstat(&out.stdout).map_err(|e| Miss::Unreadable(e.to_string()))?;
        if st.servers.get(server) == Some(&true) {
            Ok(st)
        } else {
            Err(Miss::NotMember("not a running cluster member".to_owned()))
        }
    }

    /// The cluster's status, from a server that is a running member, and that server.
    async fn live_status(&self) -> PortResult<(ServerName, ClusterStatus)> {
        let mut misses = Vec::new();
        for s in self.order() {
            match self.clpstat_on(&s).await {
                Ok(st) => {
                    self.prefer(&s);
                    return Ok((s, st));
                }
                Err(m) => misses.push((s, m)),
            }
        }
        Err(no_server("clpstat", &misses))
    }

    /// Runs a reading script on the first server that can (see the module doc). A failure on a
    /// running member is returned as its output; the script's `make_dir` is removed where the
    /// server was skipped.
    async fn query(&self, script: &Script<'_>, what: &str) -> PortResult<(ServerName, CommandOutput)> {
        let mut misses = Vec::new();
        for s in self.order() {
            let miss = match self.exec(&s, script, self.options.query_timeout).await {
                Err(e) => Miss::Unreachable(e),
                Ok(out) if out.exit_code == 0 => {
                    self.prefer(&s);
                    return Ok((s, out));
                }
                Ok(out) if out.exit_code == NOT_FOUND_STATUS => {
                    Miss::Missing(format!("not found: {}", out.stderr.trim()))
                }
                Ok(out) => match self.clpstat_on(&s).await {
                    Ok(_) => return Ok((s, out)),
                    Err(m) => m,
                },
            };
            if let Some(d) = script.make_dir
                && !matches!(miss, Miss::Unreachable(_))
            {
                self.cleanup(&s, d).await;
            }
            misses.push((s, miss));
        }
        Err(no_server(what, &misses))
    }

    /// Runs a mutating command on `server` (a running member), `clpstat` after it in the same
    /// script: the answer is the status it left. On failure, the cluster is looked at again:
    /// `verdict` says whether the goal holds anyway (the answer is that look), or which error it is.
    async fn act(
        &self,
        server: &ServerName,
        cmd: &Clp,
        verdict: impl Fn(&ClusterStatus) -> Verdict,
    ) -> PortResult<Left> {
        let what = format!("`{}` on {server}", cmd.line());
        let out = self.exec(server, &Script::run_then_status(cmd), self.options.operation_timeout).await?;
        if out.exit_code == 0 {
            return Ok(Left { status: status_after(&out.stdout), ..Left::default() });
        }
        if out.exit_code == NOT_FOUND_STATUS {
            return Err(not_found(&what, out));
        }
        let (_, st) = self.live_status().await?;
        match verdict(&st) {
            Ok(()) => Ok(Left::status(st)),
            Err(code) => Err(failed(out, &what, code)),
        }
    }

    /// Completes a suspend/resume a crash left pending (see the module doc).
    async fn finish_pending_resume(&self) -> PortResult<()> {
        if !self.store.pending_resume().await? {
            return Ok(());
        }
        let _one = self.resume.lock().await;
        if !self.store.pending_resume().await? {
            return Ok(());
        }
        tracing::warn!(cluster = %self.cluster, "a pushed configuration was not followed by a resume: completing it");
        let (on, _) = self.live_status().await?;
        self.suspend_resume(&on, true).await?;
        self.store.clear_pending_resume().await
    }

    /// `clpcl --suspend` then `clpcl --resume` on `server`, `clpstat` after the resume in its
    /// script: the status the resume left, when it could be read. With `tolerant`, a failed
    /// suspend is ignored (the cluster may already be suspended).
    async fn suspend_resume(&self, server: &ServerName, tolerant: bool) -> PortResult<Option<ClusterStatus>> {
        let mut left = None;
        for (arg, code) in [("--suspend", ClpCode::ClusterSuspendFailed), ("--resume", ClpCode::ClusterResumeFailed)] {
            let cmd = Clp::new("clpcl", [arg]);
            let what = format!("`{}` on {server}", cmd.line());
            let script = if arg == "--resume" { Script::run_then_status(&cmd) } else { Script::run(&cmd) };
            let out = self.exec(server, &script, self.options.operation_timeout).await?;
            if out.exit_code == NOT_FOUND_STATUS {
                return Err(not_found(&what, out));
            }
            if out.exit_code != 0 {
                if tolerant && arg == "--suspend" {
                    tracing::info!(%server, stderr = %out.stderr.trim(), "clpcl --suspend failed; resuming anyway");
                    continue;
                }
                return Err(failed(out, &what, code));
            }
            left = status_after(&out.stdout);
        }
        Ok(left)
    }

    fn pull_command(&self, dir: &str) -> Clp {
        let os_flag = match self.os {
            Os::Windows => "-w",
            Os::Linux => "-l",
        };
        Clp::new("clpcfctrl", ["--pull", os_flag, "-x", dir])
    }

    fn push_command(&self, dir: &str) -> Clp {
        let os_flag = match self.os {
            Os::Windows => "-w",
            Os::Linux => "-l",
        };
        Clp::new("clpcfctrl", ["--push", os_flag, "-x", dir])
    }

    /// Reads `dir/clp.conf` on `server`: its bytes and its text in its declared encoding.
    async fn read_conf(&self, server: &ServerName, dir: &str) -> PortResult<(Vec<u8>, conf::ConfFile)> {
        let path = PathBuf::from(self.node_path(dir, CONF_FILE));
        let bytes = self.transport.read_file(server, self.shell(), &path).await?;
        match conf::ConfFile::decode(&bytes) {
            Ok(file) => Ok((bytes, file)),
            Err(e) => {
                let e = conf_error(e);
                Err(PortError::new(&e.code, format!("{} on {server}: {}", path.display(), e.message), e.class))
            }
        }
    }

    /// `clpcfctrl --pull` into a temporary directory on `server` (or the first server that can),
    /// then the file's text. The caller removes the directory ([`Self::cleanup`]).
    async fn pull(&self, server: Option<&ServerName>) -> PortResult<Pulled> {
        let dir = self.temp_dir();
        let cmd = self.pull_command(&dir);
        let script =
            Script { make_dir: Some(&dir), command: Some(&cmd), then_status: false, remove_dir: None, leave: None };
        let what = format!("`{}`", cmd.line());
        let (on, out) = match server {
            Some(s) => (s.clone(), self.exec(s, &script, self.options.query_timeout).await?),
            None => self.query(&script, &cmd.line()).await?,
        };
        if out.exit_code != 0 {
            self.cleanup(&on, &dir).await;
            if out.exit_code == NOT_FOUND_STATUS {
                return Err(not_found(&format!("{what} on {on}"), out));
            }
            return Err(failed(out, &format!("{what} on {on}"), ClpCode::ConfigPullFailed));
        }
        match self.read_conf(&on, &dir).await {
            Ok((bytes, file)) => Ok(Pulled { server: on, dir, bytes, file }),
            Err(e) => {
                self.cleanup(&on, &dir).await;
                Err(e)
            }
        }
    }

    /// Windows: every server's GUIDs of `def`'s data and cluster partitions, captured now.
    async fn capture_guids(&self, def: &MdDefinition, guids: &mut GuidSource) -> PortResult<()> {
        let (Partition::Letter(data), Partition::Letter(cluster)) = (&def.data_partition, &def.cluster_partition)
        else {
            return Ok(());
        };
        let answers = futures::future::join_all(self.servers.iter().map(|s| async move {
            let (d, c) = futures::join!(self.volume_guid(s, *data), self.volume_guid(s, *cluster));
            Ok::<_, PortError>((s.clone(), VolumeGuids { data: d?, cluster: c? }))
        }))
        .await;
        for a in answers {
            let (s, g) = a?;
            guids.insert(s, g);
        }
        Ok(())
    }

    /// The groups whose md resource `changes` remove or add; checks the groups `changes` name
    /// exist in `config`.
    fn md_groups(config: &ClusterConfig, changes: &[ConfigChange]) -> PortResult<Vec<GroupName>> {
        let mut groups = Vec::new();
        for c in changes {
            match c {
                ConfigChange::RemoveMirror { resource } => {
                    groups.extend(config.mirror(resource).map(|m| m.group.clone()));
                }
                ConfigChange::AddMirror(def) => {
                    if !config.group_auto_start.contains_key(&def.group) {
                        return Err(conf_error(ConfError::UnknownGroup(def.group.to_string())));
                    }
                    groups.push(def.group.clone());
                }
                ConfigChange::SetGroupAutoStart { group, .. } => {
                    if !config.group_auto_start.contains_key(group) {
                        return Err(conf_error(ConfError::UnknownGroup(group.to_string())));
                    }
                }
            }
        }
        Ok(groups)
    }

    /// The simulator's conditions for a push, on fresh observation: every server a running
    /// member, and the groups of the md resources being changed offline (not changing state).
    fn check_push(st: &ClusterStatus, md_groups: &[GroupName]) -> PortResult<()> {
        if let Some((down, _)) = st.servers.iter().find(|(_, member)| !**member) {
            return Err(ClpCode::ServerDown
                .error(format!("{down} is not a cluster member: the configuration cannot be applied")));
        }
        for g in md_groups {
            if let Some(p) = st.groups.get(g) {
                if pending(p) {
                    return Err(busy(&format!("group {g}")));
                }
                if p.state != ObjectState::Offline {
                    return Err(ClpCode::GroupOnline.error(format!(
                        "group {g} must be offline to change its md resource (it is {:?} on {})",
                        p.state,
                        where_(p)
                    )));
                }
            }
        }
        Ok(())
    }

    /// Captures and stores the templates of the md resources `changes` remove; loads those of the
    /// md resources they add back.
    async fn templates(
        &self,
        pulled: &str,
        config: &ClusterConfig,
        changes: &[ConfigChange],
    ) -> PortResult<Vec<MirrorTemplate>> {
        let mut templates = Vec::new();
        for c in changes {
            match c {
                ConfigChange::RemoveMirror { resource } => {
                    if let Some(t) = MirrorTemplate::capture(pulled, resource).map_err(conf_error)? {
                        self.store.save_template(&t).await?;
                        templates.push(t);
                    }
                }
                ConfigChange::AddMirror(def) if config.mirror(&def.resource).is_none() => {
                    if templates.iter().any(|t| t.resource() == &def.resource) {
                        continue;
                    }
                    let Some(t) = self.store.load_template(&def.resource).await? else {
                        return Err(ClpCode::MirrorTemplateMissing.error(format!(
                                "md resource {} is not in clp.conf and mirrorctl has no template of it in {}: it \
                                 cannot be re-added with its network, mount and monitor settings. Re-add it with \
                                 Cluster WebUI (initial mirror construction off only if both sides are identical), \
                                 using the clp.conf copies pulled before the removal (*-pulled.conf in the clpconf directory of the host that removed it)",
                                def.resource,
                                self.store.describe()
                            )));
                    };
                    templates.push(t);
                }
                _ => {}
            }
        }
        Ok(templates)
    }

    /// Keeps the pulled copy (its bytes as pulled), checks the change against the cluster's state,
    /// stores or loads md templates, captures Windows GUIDs, edits the text and encodes it back in
    /// the file's encoding. `None`: the file already says what `changes` ask for. Returns the
    /// edited file's bytes and the groups of the md resources changed.
    async fn prepare(
        &self,
        st: &ClusterStatus,
        pulled: &Pulled,
        changes: &[ConfigChange],
    ) -> PortResult<Option<(Vec<u8>, Vec<GroupName>)>> {
        let kept = self.store.keep("pulled", &pulled.bytes)?;
        tracing::info!(cluster = %self.cluster, server = %pulled.server, copy = %kept.display(), "clp.conf pulled and kept");
        let config = conf::read_config(pulled.text(), self.os).map_err(conf_error)?;
        let md_groups = Self::md_groups(&config, changes)?;
        Self::check_push(st, &md_groups)?;
        let templates = self.templates(pulled.text(), &config, changes).await?;
        let mut guids = GuidSource::new();
        for c in changes {
            if let ConfigChange::AddMirror(def) = c {
                self.capture_guids(def, &mut guids).await?;
            }
        }
        let edited =
            conf::apply_changes_with_templates(pulled.text(), changes, &guids, &templates).map_err(conf_error)?;
        if edited == pulled.text() {
            return Ok(None);
        }
        let bytes = pulled.file.encode(&edited).map_err(conf_error)?;
        Ok(Some((bytes, md_groups)))
    }

    /// Replaces the pulled file with `edited`, pushes its directory (which the push script then
    /// removes), then suspends and resumes the cluster; answers with the status the resume left.
    async fn push(&self, pulled: &Pulled, edited: &[u8], md_groups: &[GroupName]) -> PortResult<Left> {
        let (server, dir) = (&pulled.server, pulled.dir.as_str());
        let pushed = self.store.keep("pushed", edited)?;
        self.store.set_pending_resume(&pushed).await?;
        let path = PathBuf::from(self.node_path(dir, CONF_FILE));
        if let Err(e) = self.transport.write_file(server, self.shell(), &path, edited).await {
            self.cleanup(server, dir).await;
            self.store.clear_pending_resume().await?;
            return Err(e);
        }
        let cmd = self.push_command(dir);
        let what = format!("`{}` on {server}", cmd.line());
        let script =
            Script { make_dir: None, command: Some(&cmd), then_status: false, remove_dir: Some(dir), leave: None };
        let out = self.exec(server, &script, self.options.operation_timeout).await?;
        if out.exit_code != 0 {
            // Nothing was uploaded: no suspend/resume is owed.
            self.store.clear_pending_resume().await?;
            if out.exit_code == NOT_FOUND_STATUS {
                return Err(not_found(&what, out));
            }
            let (_, st) = self.live_status().await?;
            let (code, class) = match Self::check_push(&st, md_groups) {
                Err(refused) => (refused.code, refused.class),
                Ok(()) => (ClpCode::ConfigPushFailed.code().to_owned(), ClpCode::ConfigPushFailed.class()),
            };
            return Err(failed_as(out, &what, &code, class));
        }
        tracing::info!(cluster = %self.cluster, %server, pushed = %pushed.display(), "clp.conf pushed; suspending and resuming the cluster");
        let status = self.suspend_resume(server, false).await?;
        self.store.clear_pending_resume().await?;
        Ok(Left { status, ..Left::default() })
    }
}

/// The `clpstat` output an operation's script printed after [`STATUS_MARKER`], read; `None` when
/// there is none (the status could not be read after the command) or it is unreadable.
fn status_after(stdout: &str) -> Option<ClusterStatus> {
    let mut lines = stdout.split_inclusive('\n');
    lines.by_ref().find(|l| l.trim() == STATUS_MARKER)?;
    let rest: String = lines.collect();
    match parse::parse_clpstat(&rest) {
        Ok(st) => Some(st),
        Err(e) => {
            tracing::debug!(error = %e, "the status printed after an operation is unreadable; the next pass reads it");
            None
        }
    }
}

#[async_trait::async_trait]
impl Cluster for CommandCluster {
    async fn status(&self) -> PortResult<ClusterStatus> {
        Ok(self.live_status().await?.1)
    }

    async fn start_group(&self, group: &GroupName, server: &ServerName) -> PortResult<Left> {
        self.finish_pending_resume().await?;
        let (on, st) = self.live_status().await?;
        check_start_group(&st, group, server)?;
        let cmd = Clp::new("clpgrp", ["-s", group.as_str(), "-h", server.as_str()]);
        self.act(&on, &cmd, |st| after_start_group(st, group, server)).await
    }

    async fn stop_group(&self, group: &GroupName) -> PortResult<Left> {
        self.finish_pending_resume().await?;
        let (on, st) = self.live_status().await?;
        let current = check_stop_group(&st, group)?;
        let mut args = vec!["-t".to_owned(), group.to_string()];
        if let Some(c) = current {
            args.extend(["-h".to_owned(), c.to_string()]);
        }
        let cmd = Clp::new("clpgrp", args);
        self.act(&on, &cmd, |st| after_stop_group(st, group)).await
    }

    async fn move_group(&self, group: &GroupName, target: &ServerName) -> PortResult<Left> {
        self.finish_pending_resume().await?;
        let (on, st) = self.live_status().await?;
        check_move_group(&st, group, target)?;
        // `-a` names the destination; without it the group goes where its failover policy says,
        // and `-h` would only pick the server that handles the request (see the module doc).
        let cmd = Clp::new("clpgrp", ["-m", group.as_str(), "-a", target.as_str()]);
        self.act(&on, &cmd, |st| after_move_group(st, group, target)).await
    }

    async fn start_resource(&self, resource: &ResourceName, server: &ServerName) -> PortResult<Left> {
        self.finish_pending_resume().await?;
        let (on, st) = self.live_status().await?;
        check_start_resource(&st, resource, server)?;
        // -f: also start the resources it depends on (the port's contract).
        let cmd = Clp::new("clprsc", ["-s", resource.as_str(), "-h", server.as_str(), "-f"]);
        self.act(&on, &cmd, |st| after_start_resource(st, resource, server)).await
    }

    async fn stop_resource(&self, resource: &ResourceName) -> PortResult<Left> {
        self.finish_pending_resume().await?;
        let (on, st) = self.live_status().await?;
        let current = check_stop_resource(&st, resource)?;
        let mut args = vec!["-t".to_owned(), resource.to_string()];
        if let Some(c) = current {
            args.extend(["-h".to_owned(), c.to_string()]);
        }
        // -f: also stop the resources that depend on it (the port's contract).
        args.push("-f".to_owned());
        let cmd = Clp::new("clprsc", args);
        self.act(&on, &cmd, |st| after_stop_resource(st, resource)).await
    }

    async fn shutdown_server(&self, server: &ServerName) -> PortResult<Left> {
        self.finish_pending_resume().await?;
        let (_, st) = self.live_status().await?;
        server_known(&st, server)?;
        if let Some(g) = used_on(&st, server) {
            return Err(ClpCode::GroupOnline.error(format!("group {g} is online on {server}; move or stop it first")));
        }
        let member = st.servers.get(server) == Some(&true);
        let cmd = Clp::new("clpdown", Vec::<String>::new());
        let what = format!("`{}` on {server}", cmd.line());
        let gone = |st: &ClusterStatus| st.servers.get(server) != Some(&true);
        // `clpdown` takes its own server out of the cluster: what it left is asked of the cluster
        // (a server that is still a member) once it returned; a failed look answers nothing.
        let after = || async { self.live_status().await.map(|(_, st)| Left::status(st)).unwrap_or_default() };
        match self.exec(server, &Script::run(&cmd), self.options.operation_timeout).await {
            // Unreachable and not a member: it is down already.
            Err(e) if !member => Err(ClpCode::ServerAlreadyDown
                .error(format!("{server} is not a cluster member and cannot be reached ({e})"))),
            // The answer may be lost because the OS went down under the command.
            Err(e) => match self.live_status().await {
                Ok((_, st)) if gone(&st) => Ok(Left::status(st)),
                _ => Err(e),
            },
            Ok(out) if out.exit_code == 0 => Ok(after().await),
            Ok(out) if out.exit_code == NOT_FOUND_STATUS => Err(not_found(&what, out)),
            // Reachable but not (yet) a member: it is still starting.
            Ok(out) if !member => Err(failed(out, &what, ClpCode::ServerDown)),
            Ok(out) => {
                let (_, st) = self.live_status().await?;
                if gone(&st) {
                    Ok(Left::status(st))
                } else if used_on(&st, server).is_some() {
                    Err(failed(out, &what, ClpCode::GroupOnline))
                } else {
                    Err(failed(out, &what, ClpCode::ServerShutdownFailed))
                }
            }
        }
    }

    fn can_leave_then_start(&self) -> bool {
        true
    }

    async fn leave_then_start(&self, leaving: &ServerName, start: &Start) -> PortResult<Left> {
        self.finish_pending_resume().await?;
        let (_, st) = self.live_status().await?;
        server_known(&st, leaving)?;
        let (on, cmd) = match start {
            Start::Group { group, server } => {
                check_start_group(&st, group, server)?;
                (server, Clp::new("clpgrp", ["-s", group.as_str(), "-h", server.as_str()]))
            }
            Start::Resource { resource, server } => {
                check_start_resource(&st, resource, server)?;
                (server, Clp::new("clprsc", ["-s", resource.as_str(), "-h", server.as_str(), "-f"]))
            }
        };
        let started = |st: &ClusterStatus| match start {
            Start::Group { group, server } => after_start_group(st, group, server),
            Start::Resource { resource, server } => after_start_resource(st, resource, server),
        };
        if st.servers.get(leaving) != Some(&true) {
            // Out already (a retry after the shutdown part): only the start.
            return self.act(on, &cmd, started).await;
        }
        if let Some(g) = used_on(&st, leaving) {
            return Err(ClpCode::GroupOnline.error(format!("group {g} is online on {leaving}; move or stop it first")));
        }
        // On the server that starts, which stays up: `-h` sends the shutdown to `leaving`
        // (EXPRESSCLUSTER/clpaic appends `-h <server>` to every command it builds, `clpdown`
        // included, as "the server to send the request to") and the script sees it gone before
        // the start.
        let down = Clp::new("clpdown", ["-h", leaving.as_str()]);
        let script =
            Script { leave: Some(Leave { command: &down, server: leaving.as_str() }), ..Script::run_then_status(&cmd) };
        let what = format!("`{}`, then `{}`, on {on}", down.line(), cmd.line());
        let out = self.exec(on, &script, self.options.operation_timeout).await?;
        if out.exit_code == 0 {
            return Ok(Left { status: status_after(&out.stdout), ..Left::default() });
        }
        if out.exit_code == NOT_FOUND_STATUS {
            return Err(not_found(&what, out));
        }
        let (_, st) = self.live_status().await?;
        if st.servers.get(leaving) == Some(&true) {
            return Err(failed(out, &what, ClpCode::ServerShutdownFailed));
        }
        match started(&st) {
            Ok(()) => Ok(Left::status(st)),
            Err(code) => Err(failed(out, &what, code)),
        }
    }

    async fn mirror_status(&self, resource: &ResourceName) -> PortResult<MirrorStatus> {
        let cmd = Clp::new("clpmdstat", ["-m", resource.as_str()]);
        let (on, out) = self.query(&Script::run(&cmd), &cmd.line()).await?;
        let what = format!("`{}` on {on}", cmd.line());
        if out.exit_code == 0 {
            return parse::parse_clpmdstat_mirror(&out.stdout)
                .map_err(|e| ClpCode::ClpOutputUnreadable.error(format!("{what}: {e}")));
        }
        // Failed on a running member: is it an md resource at all?
        let list = Clp::new("clpmdstat", ["-l"]);
        let (_, listed) = self.query(&Script::run(&list), &list.line()).await?;
        if listed.exit_code == 0
            && let Ok(names) = parse::parse_clpmdstat_list(&listed.stdout)
            && !names.contains(resource)
        {
            return Err(failed(out, &what, ClpCode::ResourceNotFound));
        }
        Err(failed(out, &what, ClpCode::MirrorStatusFailed))
    }

    async fn config(&self) -> PortResult<ClusterConfig> {
        let pulled = self.pull(None).await?;
        self.cleanup(&pulled.server, &pulled.dir).await;
        let mut config = conf::read_config(pulled.text(), self.os).map_err(conf_error)?;
        config.version = self.installed_version(&pulled.server).await;
        Ok(config)
    }

    async fn vendor(&self, server: &ServerName, call: &VendorCall) -> PortResult<()> {
        self.run_vendor(server, call).await
    }

    async fn preflight(
        &self,
        request: &crate::ports::cluster::PreflightRequest,
    ) -> PortResult<Vec<crate::ports::cluster::Check>> {
        self.preflight_checks(request).await
    }

    async fn apply_config(&self, changes: &[ConfigChange]) -> PortResult<Left> {
        if changes.is_empty() {
            return Ok(Left::default());
        }
        self.finish_pending_resume().await?;
        let (on, st) = self.live_status().await?;
        let pulled = self.pull(Some(&on)).await?;
        match self.prepare(&st, &pulled, changes).await {
            Ok(Some((edited, md_groups))) => self.push(&pulled, &edited, &md_groups).await,
            Ok(None) => {
                tracing::info!(cluster = %self.cluster, "configuration already as wanted: nothing pushed");
                self.cleanup(&pulled.server, &pulled.dir).await;
                Ok(Left::status(st))
            }
            Err(e) => {
                self.cleanup(&pulled.server, &pulled.dir).await;
                Err(e)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ErrorClass;
    use crate::ports::cluster::Placement;

    fn srv(s: &str) -> ServerName {
        ServerName::parse(s).expect("server")
    }

    #[test]
    fn words_are_quoted_for_their_shell() {
        assert_eq!(sh_word("failover-1.a"), "failover-1.a");
        assert_eq!(sh_word("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(sh_word("it's"), r"'it'\''s'");
        assert_eq!(sh_word(""), "''");
        assert_eq!(ps_word(r"C:\a'b"), r"'C:\a''b'");
    }

    #[test]
    fn sh_script_keeps_the_command_status_through_cleanup() {
        let cmd = Clp::new("clpcfctrl", ["--push", "-l", "-x", "/tmp/d"]);
        let s = render_sh(
            &InstallDir::Path,
            &Script {
                make_dir: None,
                command: Some(&cmd),
                then_status: false,
                remove_dir: Some("/tmp/d"),
                leave: None,
            },
        );
        assert_eq!(s, "clpcfctrl --push -l -x /tmp/d\nrc=$?\nrm -rf -- /tmp/d\nexit $rc\n");
        let with_dir = InstallDir::Dir("/opt/clp bin/".into());
        assert_eq!(
            render_sh(&with_dir, &Script::run(&Clp::new("clpstat", Vec::<String>::new()))),
            "'/opt/clp bin/clpstat'\n"
        );
    }

    /// The sh script of a leave-then-start, run by `sh` over tools that print real `clpstat`
    /// shapes: the start runs once the leaving server's line reads `Offline`, never after a failed
    /// `clpdown`; and the patterns read a server that is still `Online` as a member (so the start
    /// would wait for it).
    #[test]
    fn the_leave_script_starts_only_once_the_server_is_seen_gone() {
        let fixture = |name: &str| {
            std::fs::read_to_string(format!("{}/tests/fixtures/clusterpro/{name}", env!("CARGO_MANIFEST_DIR")))
                .expect("fixture")
        };
        let run = |down_exit: i32, clpstat: &str| {
            let dir = tempfile::tempdir().expect("dir");
            let tool = |name: &str, body: &str| {
                let path = dir.path().join(name);
                std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("tool");
                std::process::Command::new("chmod").arg("+x").arg(&path).status().expect("chmod");
            };
            std::fs::write(dir.path().join("status.txt"), clpstat).expect("status");
            tool("clpdown", &format!("echo \"$@\" > {}/down.args; exit {down_exit}", dir.path().display()));
            tool("clpstat", &format!("cat {}/status.txt", dir.path().display()));
            tool("clprsc", &format!("echo \"$@\" > {}/started", dir.path().display()));
            let down = Clp::new("clpdown", ["-h", "server2"]);
            let start = Clp::new("clprsc", ["-s", "script", "-h", "server1", "-f"]);
            let script =
                Script { leave: Some(Leave { command: &down, server: "server2" }), ..Script::run_then_status(&start) };
            let bin = InstallDir::Dir(dir.path().display().to_string());
            let out = std::process::Command::new("sh").arg("-c").arg(render_sh(&bin, &script)).output().expect("sh");
            let started = std::fs::read_to_string(dir.path().join("started")).ok();
            let down = std::fs::read_to_string(dir.path().join("down.args")).ok();
            (out.status.code(), started, down, String::from_utf8_lossy(&out.stdout).into_owned())
        };
        let gone = fixture("clpstat-windows-standby-stopped.txt");
        let (code, started, down, stdout) = run(0, &gone);
        assert_eq!(code, Some(0), "{stdout}");
        assert_eq!(down.as_deref(), Some("-h server2\n"));
        assert_eq!(started.as_deref(), Some("-s script -h server1 -f\n"));
        assert!(stdout.contains(STATUS_MARKER), "{stdout}");
        let (code, started, ..) = run(3, &gone);
        assert_eq!((code, started), (Some(3), None), "a failed clpdown starts nothing");

        // The patterns, as the script's `grep -Ei` reads them.
        let leave = Leave { command: &Clp::new("clpdown", ["-h", "server2"]), server: "server2" };
        let (seen, member) = leave.patterns();
        let grep = |pattern: &str, text: &str| {
            let mut child = std::process::Command::new("grep")
                .args(["-Eiq", pattern])
                .stdin(std::process::Stdio::piped())
                .spawn()
                .expect("grep");
            std::io::Write::write_all(&mut child.stdin.take().expect("stdin"), text.as_bytes()).expect("write");
            child.wait().expect("grep").success()
        };
        for (file, is_member) in [
            ("clpstat-windows-standby-stopped.txt", false),
            ("clpstat-windows-online.txt", true),
            ("clpstat-linux-online.txt", true),
        ] {
            let text = fixture(file);
            assert!(grep(&seen, &text), "{file}: server2's line is found");
            assert_eq!(grep(&member, &text), is_member, "{file}");
        }
        // A name that only starts like the server's is another server.
        assert!(!grep(&seen, "    server20 ........: Offline\n"));
    }

    #[test]
    fn detection_scripts_try_each_place_in_order() {
        let linux = CommandOptions::for_os(Os::Linux).install_search;
        assert_eq!(
            detect_sh(&linux),
            "if [ -x /opt/nec/clusterpro/bin/clpstat ]; then echo 'mirrorctl-install-dir 0'; exit 0; fi\n\
             if command -v clpstat >/dev/null 2>&1; then echo 'mirrorctl-install-dir 1'; exit 0; fi\n\
             echo 'mirrorctl: clpstat not found in any of: /opt/nec/clusterpro/bin, PATH (set cluster.install_dir if \
             CLUSTERPRO is elsewhere)' >&2\nexit 127\n"
        );
        assert_eq!(parse_detected("mirrorctl-install-dir 1\n", &linux), Some(InstallDir::Path));
        assert_eq!(parse_detected("mirrorctl-install-dir 7\n", &linux), None);
        let windows = CommandOptions::for_os(Os::Windows).install_search;
        let ps = detect_powershell(&windows);
        assert!(
            ps.starts_with(
                "if (Test-Path -LiteralPath 'C:\\Program Files\\CLUSTERPRO\\bin\\clpstat.exe') { Write-Output \
                 'mirrorctl-install-dir 0'; exit 0 }\r\nif (Test-Path -LiteralPath \
                 'C:\\Program Files\\EXPRESSCLUSTER\\bin\\clpstat.exe') { Write-Output 'mirrorctl-install-dir 1'; exit 0 }\r\n"
            ),
            "{ps}"
        );
        assert_eq!(parse_detected("mirrorctl-install-dir 1\r\n", &windows), Some(windows[1].clone()));
    }

    #[test]
    fn classification_follows_the_state() {
        let g = GroupName::parse("failover").expect("group");
        let mut st = ClusterStatus::default();
        st.servers.insert(srv("s1"), true);
        st.servers.insert(srv("s2"), true);
        st.groups.insert(g.clone(), Placement { state: ObjectState::Online, current: Some(srv("s1")) });
        assert_eq!(check_start_group(&st, &g, &srv("s1")).expect_err("started").class, ErrorClass::AlreadyDone);
        assert_eq!(check_start_group(&st, &g, &srv("s2")).expect_err("elsewhere").code, "GroupOnline");
        assert_eq!(check_start_group(&st, &g, &srv("s3")).expect_err("unknown").code, "ServerNotFound");
        assert_eq!(after_move_group(&st, &g, &srv("s2")), Err(ClpCode::GroupMoveFailed));
        assert_eq!(after_move_group(&st, &g, &srv("s1")), Ok(()));
        st.groups.insert(g.clone(), Placement { state: ObjectState::OnlinePending, current: Some(srv("s2")) });
        assert_eq!(check_stop_group(&st, &g).expect_err("busy").class, ErrorClass::Retryable);
        st.groups.insert(g.clone(), Placement { state: ObjectState::OnlineFailure, current: Some(srv("s2")) });
        assert_eq!(after_start_group(&st, &g, &srv("s2")), Err(ClpCode::GroupStartFailed));
        assert_eq!(used_on(&st, &srv("s2")), Some("failover".to_owned()));
        assert_eq!(check_move_group(&st, &g, &srv("s1")).expect_err("offline").code, "GroupOffline");
    }

    #[test]
    fn order_puts_the_preferred_server_first() {
        let c = CommandCluster {
            cluster: ClusterName::parse("c").expect("name"),
            os: Os::Linux,
            servers: vec![srv("a"), srv("b")],
            transport: Arc::new(crate::adapters::node::transport::LocalTransport::new()),
            options: CommandOptions::for_os(Os::Linux),
            store: ConfStore {
                dir: PathBuf::from("/nonexistent"),
                cluster: ClusterName::parse("c").expect("name"),
                files: Arc::new(LocalStore::new("/nonexistent")),
            },
            preferred: Mutex::new(None),
            installs: Mutex::new(BTreeMap::new()),
            resume: tokio::sync::Mutex::new(()),
            version: Mutex::new(None),
        };
        assert_eq!(c.order(), vec![srv("a"), srv("b")]);
        c.prefer(&srv("b"));
        assert_eq!(c.order(), vec![srv("b"), srv("a")]);
    }

    #[tokio::test]
    async fn kept_copies_are_never_overwritten() {
        let dir = tempfile::tempdir().expect("dir");
        let cluster = ClusterName::parse("c").expect("name");
        let store =
            ConfStore { dir: conf_dir(dir.path(), &cluster), cluster, files: Arc::new(LocalStore::new(dir.path())) };
        let a = store.keep("pulled", b"one").expect("keep");
        let b = store.keep("pulled", b"two").expect("keep");
        assert_ne!(a, b);
        assert_eq!(std::fs::read(&a).expect("a"), b"one");
        assert_eq!(std::fs::read(&b).expect("b"), b"two");
        assert!(!store.pending_resume().await.expect("read"));
        store.set_pending_resume(&a).await.expect("mark");
        assert!(store.pending_resume().await.expect("read"));
        // The directory store keeps the marker where it always was, beside the copies.
        assert!(store.dir.join(PENDING_RESUME).exists());
        store.clear_pending_resume().await.expect("clear");
        store.clear_pending_resume().await.expect("clear twice");
        assert!(!store.pending_resume().await.expect("read"));
    }
}
