//! Command text: one CLUSTERPRO command line, and the `sh` / PowerShell scripts that run it
//! (quoting, the install directory, the install-directory detection).

use super::{
    DETECTED, InstallDir, LEAVE_LOOKS, LEAVE_NOT_SEEN_STATUS, NOT_FOUND_STATUS, PROBE_TOOL, STATUS_MARKER, command_file,
};
use crate::adapters::clusterpro::parse::RUNNING_SERVER_STATES;
use crate::spec::Os;

/// One CLUSTERPRO command line. Only validated names, partitions and paths mirrorctl made are
/// spliced into the arguments, and every argument is quoted for its shell anyway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Clp {
    pub(super) tool: &'static str,
    pub(super) args: Vec<String>,
}

impl Clp {
    pub(super) fn new<S: Into<String>>(tool: &'static str, args: impl IntoIterator<Item = S>) -> Self {
        Clp { tool, args: args.into_iter().map(Into::into).collect() }
    }

    /// As an operator would type it (for messages).
    pub(super) fn line(&self) -> String {
        std::iter::once(self.tool).chain(self.args.iter().map(String::as_str)).collect::<Vec<_>>().join(" ")
    }
}

/// A script: optionally make a directory, optionally take a server out first ([`Leave`]), run one
/// command, then (`then_status`, when the command succeeded) `clpstat`, its output after a
/// [`STATUS_MARKER`] line, then remove a directory. The script's exit status is the command's.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Script<'a> {
    pub(super) make_dir: Option<&'a str>,
    pub(super) leave: Option<Leave<'a>>,
    pub(super) command: Option<&'a Clp>,
    pub(super) then_status: bool,
    pub(super) remove_dir: Option<&'a str>,
}

impl<'a> Script<'a> {
    pub(super) fn run(command: &'a Clp) -> Self {
        Script { command: Some(command), ..Script::default() }
    }

    /// `command`, then `clpstat` when it succeeded: an operation that answers with the status it
    /// left, in one run on the node.
    pub(super) fn run_then_status(command: &'a Clp) -> Self {
        Script { command: Some(command), then_status: true, ..Script::default() }
    }
}

/// What runs before a script's command: `command` (`clpdown -h <server>`), then `clpstat` once a
/// second until it shows `server` out of the cluster (its line in `<server>` present and not
/// reading a running state, [`RUNNING_SERVER_STATES`]), at most [`LEAVE_LOOKS`] times. The
/// script exits with `command`'s status when it failed, and with [`LEAVE_NOT_SEEN_STATUS`] when
/// the server still shows as a member (or no look succeeded): the script's command runs only once
/// the server is seen gone. A line the patterns do not recognise never counts as gone.
#[derive(Debug, Clone, Copy)]
pub(super) struct Leave<'a> {
    pub(super) command: &'a Clp,
    pub(super) server: &'a str,
}

impl Leave<'_> {
    /// The patterns of `server`'s status line (any state), and of it reading a running state: an
    /// extended regular expression that `grep -Ei` and PowerShell's `-match` read alike (server
    /// names hold only letters, digits, `-`, `_` and `.`).
    pub(super) fn patterns(&self) -> (String, String) {
        let name = self.server.replace('.', "\\.");
        let line = format!("^ *\\*?{name} *\\.* *:");
        (line.clone(), format!("{line} *({})", RUNNING_SERVER_STATES.join("|")))
    }

    fn message(&self) -> String {
        format!(
            "mirrorctl: {} still shows as a cluster member after `{}` ({LEAVE_LOOKS} looks at clpstat)",
            self.server,
            self.command.line()
        )
    }
}

/// A word for `sh`: bare when it holds only safe characters, else single-quoted.
pub(super) fn sh_word(s: &str) -> String {
    let plain = !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain { s.to_owned() } else { format!("'{}'", s.replace('\'', r"'\''")) }
}

/// A PowerShell single-quoted string.
pub(super) fn ps_word(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// The executable of `tool` in `bin`, as a `sh` word.
fn sh_exe(bin: &InstallDir, tool: &str) -> String {
    let file = command_file(Os::Linux, tool);
    match bin {
        InstallDir::Dir(dir) => sh_word(&format!("{}/{file}", dir.trim_end_matches('/'))),
        InstallDir::Path => file,
    }
}

pub(super) fn render_sh(bin: &InstallDir, script: &Script<'_>) -> String {
    let mut lines = Vec::new();
    if let Some(d) = script.make_dir {
        lines.push(format!("mkdir -p -m 700 -- {} || exit 1", sh_word(d)));
    }
    let status = script.then_status && script.command.is_some();
    let keep_rc = script.command.is_some() && (status || script.remove_dir.is_some());
    if let Some(l) = script.leave {
        let (seen, member) = l.patterns();
        let args: Vec<String> = l.command.args.iter().map(|a| sh_word(a)).collect();
        lines.push(std::iter::once(sh_exe(bin, l.command.tool)).chain(args).collect::<Vec<_>>().join(" "));
        lines.push("rc=$?".to_owned());
        lines.push(format!(
            "if [ $rc -eq 0 ]; then rc={LEAVE_NOT_SEEN_STATUS}; n=0; while [ $n -lt {LEAVE_LOOKS} ]; do"
        ));
        lines.push(format!(
            "  if st=$({}) && printf '%s\\n' \"$st\" | grep -Eiq {} && ! printf '%s\\n' \"$st\" | grep -Eiq {}; then rc=0; break; fi",
            sh_exe(bin, "clpstat"),
            sh_word(&seen),
            sh_word(&member)
        ));
        lines.push("  n=$((n+1)); sleep 1; done; fi".to_owned());
        lines.push(format!(
            "if [ $rc -ne 0 ]; then [ $rc -eq {LEAVE_NOT_SEEN_STATUS} ] && echo {} >&2; exit $rc; fi",
            sh_word(&l.message())
        ));
    }
    if let Some(c) = script.command {
        let args: Vec<String> = c.args.iter().map(|a| sh_word(a)).collect();
        lines.push(std::iter::once(sh_exe(bin, c.tool)).chain(args).collect::<Vec<_>>().join(" "));
        if keep_rc {
            lines.push("rc=$?".to_owned());
        }
    }
    if status {
        lines.push(format!(
            "if [ $rc -eq 0 ] && st=$({}); then echo {STATUS_MARKER}; printf '%s\\n' \"$st\"; fi",
            sh_exe(bin, "clpstat")
        ));
    }
    if let Some(d) = script.remove_dir {
        lines.push(format!("rm -rf -- {}", sh_word(d)));
    }
    if keep_rc {
        lines.push("exit $rc".to_owned());
    }
    lines.push(String::new());
    lines.join("\n")
}

pub(super) fn render_powershell(bin: &InstallDir, script: &Script<'_>) -> String {
    let mut lines = Vec::new();
    if let Some(d) = script.make_dir {
        lines.push(format!("New-Item -ItemType Directory -Force -Path {} -ErrorAction Stop | Out-Null", ps_word(d)));
    }
    if let Some(l) = script.leave {
        ps_run(bin, l.command, &mut lines);
        let (seen, member) = l.patterns();
        lines.push(format!(
            "if ($rc -eq 0) {{ $rc = {LEAVE_NOT_SEEN_STATUS}; for ($n = 0; $n -lt {LEAVE_LOOKS}; $n++) {{ $global:LASTEXITCODE = 1; $st = & {}; if ($LASTEXITCODE -eq 0 -and ($st -match {}) -and -not ($st -match {})) {{ $rc = 0; break }}; Start-Sleep -Seconds 1 }} }}",
            ps_status_exe(bin),
            ps_word(&seen),
            ps_word(&member)
        ));
        lines.push(format!(
            "if ($rc -ne 0) {{ if ($rc -eq {LEAVE_NOT_SEEN_STATUS}) {{ [Console]::Error.WriteLine({}) }}; exit $rc }}",
            ps_word(&l.message())
        ));
    }
    if let Some(c) = script.command {
        ps_run(bin, c, &mut lines);
        if script.then_status {
            lines.push(format!(
                "if ($rc -eq 0) {{ $global:LASTEXITCODE = 1; $st = & {}; if ($LASTEXITCODE -eq 0) {{ Write-Output {}; $st }} }}",
                ps_status_exe(bin),
                ps_word(STATUS_MARKER)
            ));
        }
    }
    if let Some(d) = script.remove_dir {
        lines.push(format!("Remove-Item -LiteralPath {} -Recurse -Force -ErrorAction SilentlyContinue", ps_word(d)));
    }
    if script.command.is_some() {
        lines.push("exit $rc".to_owned());
    }
    lines.push(String::new());
    lines.join("\r\n")
}

/// Runs `c` from `bin` (exit 127 when the executable is missing), its status in `$rc`.
fn ps_run(bin: &InstallDir, c: &Clp, lines: &mut Vec<String>) {
    let file = command_file(Os::Windows, c.tool);
    if let InstallDir::Dir(dir) = bin {
        lines.push(format!("$exe = {}", ps_word(&format!("{}\\{file}", dir.trim_end_matches('\\')))));
        lines.push("if (-not (Test-Path -LiteralPath $exe)) {".to_owned());
    } else {
        lines.push(format!("$exe = (Get-Command {} -ErrorAction SilentlyContinue).Source", ps_word(&file)));
        lines.push("if (-not $exe) {".to_owned());
    }
    lines.push(format!(
        "    [Console]::Error.WriteLine({}); exit {NOT_FOUND_STATUS}",
        ps_word(&format!("mirrorctl: {file} not found"))
    ));
    lines.push("}".to_owned());
    let args: Vec<String> = c.args.iter().map(|a| ps_word(a)).collect();
    // A command that cannot even start leaves $LASTEXITCODE untouched: never read it as 0.
    lines.push("$global:LASTEXITCODE = 1".to_owned());
    lines.push(format!("& $exe {}", args.join(" ")).trim_end().to_owned());
    lines.push("$rc = $LASTEXITCODE".to_owned());
}

/// The `clpstat` executable of `bin`, as a PowerShell expression.
fn ps_status_exe(bin: &InstallDir) -> String {
    let stat = command_file(Os::Windows, "clpstat");
    match bin {
        InstallDir::Dir(dir) => ps_word(&format!("{}\\{stat}", dir.trim_end_matches('\\'))),
        InstallDir::Path => format!("(Get-Command {} -ErrorAction SilentlyContinue).Source", ps_word(&stat)),
    }
}

/// The script that finds [`PROBE_TOOL`] among `search` on a Linux node: prints [`DETECTED`] and
/// the index of the first place holding it, or exits 127 naming every place tried.
pub(super) fn detect_sh(search: &[InstallDir]) -> String {
    let mut lines = Vec::new();
    for (i, place) in search.iter().enumerate() {
        let test = match place {
            InstallDir::Dir(d) => format!("[ -x {} ]", sh_word(&format!("{}/{PROBE_TOOL}", d.trim_end_matches('/')))),
            InstallDir::Path => format!("command -v {PROBE_TOOL} >/dev/null 2>&1"),
        };
        lines.push(format!("if {test}; then echo {}; exit 0; fi", sh_word(&format!("{DETECTED} {i}"))));
    }
    lines.push(format!("echo {} >&2", sh_word(&not_installed(PROBE_TOOL, search))));
    lines.push(format!("exit {NOT_FOUND_STATUS}"));
    lines.push(String::new());
    lines.join("\n")
}

/// [`detect_sh`] for Windows PowerShell (`Test-Path -LiteralPath`, `Get-Command` for `PATH`).
pub(super) fn detect_powershell(search: &[InstallDir]) -> String {
    let exe = format!("{PROBE_TOOL}.exe");
    let mut lines = Vec::new();
    for (i, place) in search.iter().enumerate() {
        let test = match place {
            InstallDir::Dir(d) => {
                format!("Test-Path -LiteralPath {}", ps_word(&format!("{}\\{exe}", d.trim_end_matches('\\'))))
            }
            InstallDir::Path => format!("Get-Command {} -ErrorAction SilentlyContinue", ps_word(&exe)),
        };
        lines.push(format!("if ({test}) {{ Write-Output {}; exit 0 }}", ps_word(&format!("{DETECTED} {i}"))));
    }
    lines.push(format!(
        "[Console]::Error.WriteLine({}); exit {NOT_FOUND_STATUS}",
        ps_word(&not_installed(&exe, search))
    ));
    lines.push(String::new());
    lines.join("\r\n")
}

/// The message of a detection that found nothing.
pub(super) fn not_installed(tool: &str, search: &[InstallDir]) -> String {
    let tried = search.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ");
    format!("mirrorctl: {tool} not found in any of: {tried} (set cluster.install_dir if CLUSTERPRO is elsewhere)")
}

/// The place a detection script's output names.
pub(super) fn parse_detected(stdout: &str, search: &[InstallDir]) -> Option<InstallDir> {
    stdout
        .lines()
        .find_map(|l| l.trim().strip_prefix(DETECTED))
        .and_then(|i| i.trim().parse::<usize>().ok())
        .and_then(|i| search.get(i).cloned())
}
