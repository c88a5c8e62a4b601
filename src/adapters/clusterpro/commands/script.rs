//! Command text: one CLUSTERPRO command line, and the `sh` / PowerShell scripts that run it
//! (quoting, the install directory, the install-directory detection).

use super::{DETECTED, InstallDir, NOT_FOUND_STATUS, PROBE_TOOL, STATUS_MARKER, command_file};
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

/// A script: optionally make a directory, run one command, then (`then_status`, when the command
/// succeeded) `clpstat`, its output after a [`STATUS_MARKER`] line, then remove a directory. The
/// script's exit status is the command's.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Script<'a> {
    pub(super) make_dir: Option<&'a str>,
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
    if let Some(c) = script.command {
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
        if script.then_status {
            let stat = command_file(Os::Windows, "clpstat");
            let exe = match bin {
                InstallDir::Dir(dir) => ps_word(&format!("{}\\{stat}", dir.trim_end_matches('\\'))),
                InstallDir::Path => format!("(Get-Command {} -ErrorAction SilentlyContinue).Source", ps_word(&stat)),
            };
            lines.push(format!(
                "if ($rc -eq 0) {{ $global:LASTEXITCODE = 1; $st = & {exe}; if ($LASTEXITCODE -eq 0) {{ Write-Output {}; $st }} }}",
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
