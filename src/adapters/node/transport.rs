//! Command transports: how a script reaches a server's operating system and what comes back.
//!
//! Why this module exists: both halves of the runbook that happen inside the servers — the disk
//! recipes ([`super::recipes`]) and the CLUSTERPRO commands (`clpstat`, `clpgrp`, `clpcfctrl`, …) —
//! are text run on a node. Where that text runs differs by deployment: through AWS Systems Manager
//! Run Command for a fleet, or right here when mirrorctl runs on a node itself (and in tests). The
//! [`Transport`] trait is that one seam; the cluster and node adapters are written once above it.
//!
//! Files move through the transport too ([`Transport::read_file`], [`Transport::write_file`]),
//! because `clp.conf` is pulled, edited in Rust and pushed back, and a remote transport may have to
//! cut it into pieces (SSM caps the output it returns).

use std::path::Path;
use std::time::Duration;

use crate::ids::ServerName;
use crate::ports::{ErrorClass, PortError, PortResult};

/// Suffix of the file written beside the target before the rename (by every transport, so a
/// left-over piece is recognised whichever wrote it).
pub const TMP_SUFFIX: &str = ".mirrorctl-tmp";

/// The interpreter a script is written for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shell {
    /// POSIX `sh` (Linux; SSM document `AWS-RunShellScript`).
    Sh,
    /// Windows `PowerShell` (SSM document `AWS-RunPowerShellScript`).
    PowerShell,
}

impl Shell {
    /// The shell of a cluster's servers: PowerShell on Windows, sh on Linux.
    pub fn for_os(os: crate::spec::Os) -> Shell {
        match os {
            crate::spec::Os::Windows => Shell::PowerShell,
            crate::spec::Os::Linux => Shell::Sh,
        }
    }
}

/// What a finished command left behind.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CommandOutput {
    /// Exit status (0 = success; CLUSTERPRO commands use anything else for failure).
    pub exit_code: i32,
    /// Standard output, as text.
    pub stdout: String,
    /// Standard error, as text.
    pub stderr: String,
}

impl CommandOutput {
    /// The output when the command succeeded, otherwise an error built from its stderr (or stdout
    /// when stderr is empty), with `code` and `class` chosen by the caller, who knows what a
    /// failure of this command means.
    pub fn success(self, what: &str, code: &str, class: ErrorClass) -> PortResult<CommandOutput> {
        if self.exit_code == 0 {
            return Ok(self);
        }
        Err(PortError::new(code, format!("{what} exited with status {}: {}", self.exit_code, self.said()), class))
    }

    /// What the command said about itself: its stderr, or its stdout when stderr is empty.
    pub fn said(&self) -> &str {
        if self.stderr.trim().is_empty() { self.stdout.trim() } else { self.stderr.trim() }
    }
}

/// Runs scripts and moves files on the cluster's servers.
#[async_trait::async_trait]
pub trait Transport: Send + Sync {
    /// Run `script` with `shell` on `server` and wait (at most `timeout`) for it to finish. A
    /// non-zero exit status is **not** an error here (the output is returned); an error means the
    /// transport could not run the script or learn how it ended.
    async fn run(
        &self,
        server: &ServerName,
        shell: Shell,
        script: &str,
        timeout: Duration,
    ) -> PortResult<CommandOutput>;
    /// The bytes of the file at `path` on `server`.
    async fn read_file(&self, server: &ServerName, shell: Shell, path: &Path) -> PortResult<Vec<u8>>;
    /// Write `bytes` to the file at `path` on `server`, replacing it whole (never half-written:
    /// write beside it, then rename).
    async fn write_file(&self, server: &ServerName, shell: Shell, path: &Path, bytes: &[u8]) -> PortResult<()>;
}

/// Runs everything on this host, whichever server is named: for `access = "local"` (mirrorctl runs
/// on a cluster node) and for tests. Scripts are fed on standard input to `sh -s` or
/// `powershell -NoProfile -NonInteractive -Command -`, so nothing is spliced into an argv.
#[derive(Debug, Clone, Default)]
pub struct LocalTransport {
    /// Extra environment for every script (tests point `PATH` at fake tools).
    pub env: Vec<(String, String)>,
}

impl LocalTransport {
    /// A transport with the process environment only.
    pub fn new() -> Self {
        Self::default()
    }
}

fn local_error(what: &str, e: &std::io::Error) -> PortError {
    PortError::new("LocalTransport", format!("{what}: {e}"), ErrorClass::NeedsHuman)
}

#[async_trait::async_trait]
impl Transport for LocalTransport {
    async fn run(
        &self,
        _server: &ServerName,
        shell: Shell,
        script: &str,
        timeout: Duration,
    ) -> PortResult<CommandOutput> {
        use tokio::io::AsyncWriteExt;
        let mut cmd = match shell {
            Shell::Sh => {
                let mut c = tokio::process::Command::new("sh");
                c.arg("-s");
                c
            }
            Shell::PowerShell => {
                let mut c = tokio::process::Command::new("powershell");
                c.args(["-NoProfile", "-NonInteractive", "-Command", "-"]);
                c
            }
        };
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| local_error("starting the shell", &e))?;
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let script = script.to_owned();
        let feed = tokio::spawn(async move {
            // A script that exits before reading all of its input is not an error of ours.
            let _ = stdin.write_all(script.as_bytes()).await;
        });
        let out = match tokio::time::timeout(timeout, child.wait_with_output()).await {
            Ok(out) => out.map_err(|e| local_error("waiting for the shell", &e))?,
            Err(_) => {
                return Err(PortError::new(
                    "CommandTimedOut",
                    format!("the script did not finish within {} s", timeout.as_secs()),
                    ErrorClass::Retryable,
                ));
            }
        };
        let _ = feed.await;
        Ok(CommandOutput {
            exit_code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    async fn read_file(&self, _server: &ServerName, _shell: Shell, path: &Path) -> PortResult<Vec<u8>> {
        tokio::fs::read(path).await.map_err(|e| local_error(&format!("reading {}", path.display()), &e))
    }

    async fn write_file(&self, _server: &ServerName, _shell: Shell, path: &Path, bytes: &[u8]) -> PortResult<()> {
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(TMP_SUFFIX);
        let tmp = std::path::PathBuf::from(tmp);
        tokio::fs::write(&tmp, bytes).await.map_err(|e| local_error(&format!("writing {}", tmp.display()), &e))?;
        tokio::fs::rename(&tmp, path).await.map_err(|e| local_error(&format!("renaming to {}", path.display()), &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server() -> ServerName {
        ServerName::parse("server1").expect("name")
    }

    #[tokio::test]
    async fn local_runs_sh_with_env_and_reports_status() {
        let t = LocalTransport { env: vec![("GREETING".into(), "hello".into())] };
        let script = "echo \"$GREETING\"; echo oops >&2; exit 3\n";
        let out = t.run(&server(), Shell::Sh, script, Duration::from_secs(10)).await.expect("ran");
        assert_eq!(out, CommandOutput { exit_code: 3, stdout: "hello\n".into(), stderr: "oops\n".into() });
        let e = out.success("greeting", "Greet", ErrorClass::NeedsHuman).expect_err("status 3");
        assert_eq!(e.code, "Greet");
        assert!(e.message.contains("status 3: oops"), "{}", e.message);
    }

    #[tokio::test]
    async fn local_times_out() {
        let t = LocalTransport::new();
        let e = t.run(&server(), Shell::Sh, "sleep 5\n", Duration::from_millis(100)).await.expect_err("timeout");
        assert_eq!((e.code.as_str(), e.class), ("CommandTimedOut", ErrorClass::Retryable));
    }

    #[tokio::test]
    async fn local_files_round_trip() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("clp.conf");
        let t = LocalTransport::new();
        t.write_file(&server(), Shell::Sh, &path, b"<root/>\n").await.expect("write");
        assert_eq!(t.read_file(&server(), Shell::Sh, &path).await.expect("read"), b"<root/>\n");
        assert!(!dir.path().join("clp.conf.mirrorctl-tmp").exists());
        let e = t.read_file(&server(), Shell::Sh, &dir.path().join("missing")).await.expect_err("missing");
        assert_eq!(e.class, ErrorClass::NeedsHuman);
    }
}
