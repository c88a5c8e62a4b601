//! The command procedure's preflight: what must hold on the live cluster before an operation
//! changes anything, checked with the very commands and methods the later steps use.
//!
//! Why this module exists: the restore stops the group, removes md and swaps both disks before it
//! re-adds md; a tool missing on a server, a `clp.conf` the editor cannot rewrite, or identifiers
//! the re-add cannot derive would be found only then, with business down (the audit's top
//! finding). So, changing nothing, it checks:
//! - on each server: reachable through the transport, `clpstat` shows it as a running member, and
//!   every command the operation runs is at the install directory (the version is recorded:
//!   Linux `rpm -q` / `dpkg-query` of the `clusterpro` or `expresscls` package, Windows the
//!   product version of `clpstat.exe`; package names after NEC's install guides [U]);
//! - the configuration: pulled with `clpcfctrl --pull`, decoded, read, and every planned push
//!   applied to it in memory, the re-add from the template the removal will keep;
//! - Windows restore: the per-server volume GUIDs the re-add will write are derived by the same
//!   method it uses, on today's disks, and must equal what today's `clp.conf` holds — a method that
//!   does not reproduce today's values would write wrong ones after the swap.

use super::{CommandCluster, InstallDir, Miss, conf, conf_error};
use crate::ids::ServerName;
use crate::ports::PortResult;
use crate::ports::cluster::{Check, ClpVersion, ConfigChange, Operation, PreflightRequest, Procedure};
use crate::spec::{Os, Partition};

/// The script that reports, one line each, `present <tool>` or `missing <tool>` for `tools` in
/// `bin` (a directory, or the `PATH`), then `version <v>` when the installed version can be read.
pub(super) fn tools_script(os: Os, bin: &InstallDir, tools: &[&str]) -> String {
    let bin_dir = match bin {
        InstallDir::Dir(d) => Some(d.as_str()),
        InstallDir::Path => None,
    };
    match os {
        Os::Linux => {
            // `tool:file` pairs: the logical name is reported, the file looked for.
            let list: Vec<String> = tools.iter().map(|t| format!("{t}:{}", super::command_file(os, t))).collect();
            let list = list.join(" ");
            let find = match bin_dir {
                Some(dir) => format!("p={}/$f; [ -x \"$p\" ]", super::sh_word(dir.trim_end_matches('/'))),
                None => "p=$(command -v \"$f\")".to_owned(),
            };
            format!(
                "for e in {list}; do\n  t=${{e%%:*}}; f=${{e#*:}}\n  if {find}; then echo \"present $t $p\"; else echo \"missing $t\"; fi\ndone\n\
                 for pkg in clusterpro expresscls; do\n  \
                 v=$(rpm -q --qf '%{{VERSION}}-%{{RELEASE}}' \"$pkg\" 2>/dev/null) && {{ echo \"version $v\"; break; }}\n  \
                 v=$(dpkg-query -W -f '${{Version}}' \"$pkg\" 2>/dev/null) && [ -n \"$v\" ] && {{ echo \"version $v\"; break; }}\n\
                 done\nexit 0\n"
            )
        }
        Os::Windows => {
            let dir = bin_dir.unwrap_or(r"C:\Program Files\CLUSTERPRO\bin");
            // `tool:file` pairs, as on Linux.
            let list: Vec<String> =
                tools.iter().map(|t| super::ps_word(&format!("{t}:{}", super::command_file(os, t)))).collect();
            [
                format!("$dir = {}", super::ps_word(dir)),
                format!("foreach ($e in @({})) {{", list.join(", ")),
                "    $t, $f = $e -split ':', 2; $p = Join-Path $dir $f".to_owned(),
                "    if (Test-Path -LiteralPath $p) { 'present ' + $t + ' ' + $p } else { 'missing ' + $t }".to_owned(),
                "}".to_owned(),
                "$p = Join-Path $dir 'clpstat.exe'".to_owned(),
                "if (Test-Path -LiteralPath $p) { $v = (Get-Item -LiteralPath $p).VersionInfo.ProductVersion; if ($v) { 'version ' + $v } }"
                    .to_owned(),
                "exit 0".to_owned(),
                String::new(),
            ]
            .join("\r\n")
        }
    }
}

/// What [`tools_script`] printed: (tool, present, where) per tool, and the version if any.
pub(super) fn read_tools(stdout: &str) -> (Vec<(String, bool, String)>, Option<String>) {
    let mut tools = Vec::new();
    let mut version = None;
    for line in stdout.lines().map(str::trim) {
        let mut words = line.splitn(3, ' ');
        match (words.next(), words.next(), words.next()) {
            (Some("present"), Some(t), at) => tools.push((t.to_owned(), true, at.unwrap_or("").to_owned())),
            (Some("missing"), Some(t), _) => tools.push((t.to_owned(), false, String::new())),
            (Some("version"), Some(v), rest) => {
                version = Some(rest.map_or_else(|| v.to_owned(), |r| format!("{v} {r}")));
            }
            _ => {}
        }
    }
    (tools, version)
}

impl CommandCluster {
    /// The checks of one server: reachable member, tools, version.
    async fn server_checks(&self, server: &ServerName, operation: Operation, procedure: Procedure) -> Vec<Check> {
        let at = Some(server);
        let mut checks = Vec::new();
        match self.clpstat_on(server).await {
            Ok(_) => checks.push(Check::pass("reachable cluster member", at, "clpstat shows it running")),
            Err(Miss::Unreachable(e)) => {
                checks.push(Check::fail(
                    "reachable cluster member",
                    at,
                    format!("not reachable: {e}"),
                    "make the server reachable (SSM agent online and permitted, instance running), then retry",
                ));
                return checks;
            }
            Err(m) => checks.push(Check::fail(
                "reachable cluster member",
                at,
                m.to_string(),
                "start the server's cluster service (both servers must be running members), then retry",
            )),
        }
        let tools = operation.commands(procedure);
        let bin = match self.install_dir_of(server).await {
            Ok(Ok(bin)) => bin,
            Ok(Err(out)) => {
                checks.push(Check::fail(
                    "CLUSTERPRO install",
                    at,
                    out.said().to_owned(),
                    format!("install or repair CLUSTERPRO on {server}, or set cluster.install_dir"),
                ));
                return checks;
            }
            Err(e) => {
                checks.push(Check::fail("CLUSTERPRO install", at, e.to_string(), "make the server reachable"));
                return checks;
            }
        };
        let script = tools_script(self.os, &bin, tools);
        let out = match self.transport.run(server, self.shell(), &script, self.options.query_timeout).await {
            Ok(out) if out.exit_code == 0 => out,
            Ok(out) => {
                checks.push(Check::fail(
                    "commands",
                    at,
                    format!("the check script exited with status {}: {}", out.exit_code, out.said()),
                    "run it by hand on the server to see why",
                ));
                return checks;
            }
            Err(e) => {
                checks.push(Check::fail("commands", at, format!("not reachable: {e}"), "make the server reachable"));
                return checks;
            }
        };
        let (found, version) = read_tools(&out.stdout);
        if procedure == Procedure::Vendor {
            let v = version.as_deref().and_then(ClpVersion::parse);
            checks.push(match v {
                Some(v) if v.has_vendor_procedure() => {
                    Check::pass("procedure vendor", at, format!("CLUSTERPRO {v} ships clpbackup and clprestore"))
                }
                _ => Check::fail(
                    "procedure vendor",
                    at,
                    format!(
                        "CLUSTERPRO version {} (clpbackup/clprestore need X 4.3 or later)",
                        version.as_deref().unwrap_or("unknown")
                    ),
                    "set procedure = \"reconfigure\" in the desired-state file, or upgrade CLUSTERPRO",
                ),
            });
        }
        let dir = bin.to_string();
        for tool in tools {
            match found.iter().find(|(t, ..)| t == tool) {
                Some((_, true, path)) => {
                    let v = version.as_deref().map_or_else(String::new, |v| format!(" (version {v})"));
                    checks.push(Check::pass(format!("command {tool}"), at, format!("{path}{v}")));
                }
                _ => checks.push(Check::fail(
                    format!("command {tool}"),
                    at,
                    format!("not found in {dir}"),
                    format!(
                        "repair the CLUSTERPRO install on {server}, or set cluster.install_dir to the folder holding {tool}"
                    ),
                )),
            }
        }
        checks
    }

    /// The configuration checks: pull, decode, read, every push applied in memory; and, for a
    /// Windows restore, the volume GUIDs derived now against today's.
    async fn config_checks(&self, req: &PreflightRequest) -> Vec<Check> {
        let mut checks = Vec::new();
        let pulled = match self.pull(None).await {
            Ok(p) => p,
            Err(e) => {
                checks.push(Check::fail("clp.conf pull", None, e.to_string(), "check clpcfctrl on the servers"));
                return checks;
            }
        };
        self.cleanup(&pulled.server, &pulled.dir).await;
        checks.push(Check::pass(
            "clp.conf pull",
            Some(&pulled.server),
            format!(
                "{} bytes in {}, decoded and re-encoded byte for byte",
                pulled.bytes.len(),
                pulled.file.encoding_name()
            ),
        ));
        let config = match conf::read_config(pulled.text(), self.os) {
            Ok(c) => c,
            Err(e) => {
                checks.push(Check::fail(
                    "clp.conf read",
                    None,
                    conf_error(e).to_string(),
                    "fix the configuration with Cluster WebUI",
                ));
                return checks;
            }
        };
        if req.operation == Operation::Backup {
            checks.push(match config.mirror(&req.md) {
                Some(_) => Check::pass("md resource configured", None, format!("{} in {}", req.md, req.group)),
                None => Check::fail(
                    "md resource configured",
                    None,
                    format!("{} is not in clp.conf", req.md),
                    "check mirror.resource in the desired-state file",
                ),
            });
            return checks;
        }
        checks.extend(self.edit_checks(req, &pulled, config.mirror(&req.md).is_some()).await);
        checks
    }

    /// A restore's configuration checks on the pulled file: both pushes applied in memory (the
    /// re-add from the template the removal keeps, or kept by an earlier request when md is
    /// already gone from the file), written back in the file's encoding; Windows GUIDs derived.
    async fn edit_checks(&self, req: &PreflightRequest, pulled: &super::Pulled, in_file: bool) -> Vec<Check> {
        let mut checks = Vec::new();
        let captured = conf::MirrorTemplate::capture(pulled.text(), &req.md);
        let kept = match captured {
            Ok(None) => self.store.load_template(&req.md).await.ok().flatten(),
            _ => None,
        };
        let template = match captured {
            Ok(Some(t)) => t,
            Ok(None) if let Some(t) = kept => t,
            Ok(None) => {
                checks.push(Check::fail(
                    "clp.conf edits",
                    None,
                    format!(
                        "{} is not in clp.conf and no template of it is kept in {}: it could not be re-added",
                        req.md,
                        self.store.describe()
                    ),
                    "check mirror.resource in the desired-state file; if md was removed by hand, add it back with \
                     Cluster WebUI first",
                ));
                return checks;
            }
            Err(e) => {
                checks.push(Check::fail("clp.conf edits", None, e.to_string(), "fix the configuration"));
                return checks;
            }
        };
        let today = match conf::md_guids(pulled.text(), &req.md) {
            Ok(g) => g,
            Err(e) => {
                checks.push(Check::fail("clp.conf edits", None, e.to_string(), "fix the configuration"));
                return checks;
            }
        };
        // The identifiers, by the re-add's own method, on today's disks.
        let mut guids = conf::GuidSource::new();
        if self.os == Os::Windows {
            for push in &req.pushes {
                for c in push {
                    if let ConfigChange::AddMirror(def) = c {
                        checks.extend(self.guid_checks(def, in_file.then_some(&today), &mut guids).await);
                    }
                }
            }
        }
        let mut text = pulled.text().to_owned();
        let templates = [template];
        for (i, push) in req.pushes.iter().enumerate() {
            match conf::apply_changes_with_templates(&text, push, &guids, &templates) {
                Ok(t) => text = t,
                Err(e) => {
                    checks.push(Check::fail(
                        "clp.conf edits",
                        None,
                        format!("push {} of {} does not apply: {}", i + 1, req.pushes.len(), conf_error(e)),
                        "fix the configuration with Cluster WebUI, or the desired-state file, then retry",
                    ));
                    return checks;
                }
            }
        }
        if let Err(e) = pulled.file.encode(&text) {
            checks.push(Check::fail(
                "clp.conf edits",
                None,
                format!("the edited file cannot be written back in {}: {}", pulled.file.encoding_name(), conf_error(e)),
                "fix the configuration with Cluster WebUI",
            ));
            return checks;
        }
        checks.push(Check::pass(
            "clp.conf edits",
            None,
            format!("{} push(es) apply to today's file in memory", req.pushes.len()),
        ));
        checks
    }

    /// Windows: each server's GUIDs of `def`'s partitions, derived now; each must equal the one
    /// today's `clp.conf` holds for that server (`None`: md is not in the file, an earlier request
    /// removed it, and there is nothing to compare with: the derivation must work).
    async fn guid_checks(
        &self,
        def: &crate::ports::cluster::MdDefinition,
        today: Option<&conf::GuidSource>,
        guids: &mut conf::GuidSource,
    ) -> Vec<Check> {
        let mut checks = Vec::new();
        if !matches!((&def.data_partition, &def.cluster_partition), (Partition::Letter(_), Partition::Letter(_))) {
            return checks;
        }
        let mut derived = conf::GuidSource::new();
        if let Err(e) = self.capture_guids(def, &mut derived).await {
            checks.push(Check::fail(
                "volume GUIDs",
                None,
                format!("cannot be derived: {e}"),
                "the re-add could not write md's identifiers: do not restore with mirrorctl until this works \
                 (or re-add md by hand in Cluster WebUI after the swap)",
            ));
            return checks;
        }
        for s in &self.servers {
            let Some(now) = derived.get(s.as_str()) else { continue };
            let Some(today) = today else {
                checks.push(Check::pass(
                    "volume GUIDs",
                    Some(s),
                    format!(
                        "derived {} / {} (md is not in clp.conf now: nothing to compare with)",
                        now.data, now.cluster
                    ),
                ));
                guids.insert(s.clone(), now.clone());
                continue;
            };
            let Some(conf) = today.get(s.as_str()) else {
                checks.push(Check::fail(
                    "volume GUIDs",
                    Some(s),
                    "clp.conf holds no volumeguid/cpvolumeguid for this server",
                    "check the md resource's server settings in Cluster WebUI",
                ));
                continue;
            };
            let same = now.data.eq_ignore_ascii_case(&conf.data) && now.cluster.eq_ignore_ascii_case(&conf.cluster);
            if same {
                checks.push(Check::pass(
                    "volume GUIDs",
                    Some(s),
                    format!("derived {} / {}, as clp.conf holds", now.data, now.cluster),
                ));
            } else {
                checks.push(Check::fail(
                    "volume GUIDs",
                    Some(s),
                    format!(
                        "derived data {} / cluster {}, clp.conf holds {} / {}",
                        now.data, now.cluster, conf.data, conf.cluster
                    ),
                    "the derivation does not reproduce today's identifiers, so the re-add would write wrong ones: \
                     restore by hand (Cluster WebUI) and report this",
                ));
            }
            guids.insert(s.clone(), now.clone());
        }
        checks
    }

    /// The whole preflight (see the module doc).
    pub(super) async fn preflight_checks(&self, req: &PreflightRequest) -> PortResult<Vec<Check>> {
        let servers =
            futures::future::join_all(self.servers.iter().map(|s| self.server_checks(s, req.operation, req.procedure)));
        let (per_server, config) = futures::join!(servers, self.config_checks(req));
        let mut checks: Vec<Check> = per_server.into_iter().flatten().collect();
        checks.extend(config);
        Ok(checks)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tool_lines_are_read() {
        let (tools, version) =
            read_tools("present clpstat /opt/nec/clusterpro/bin/clpstat\nmissing clpcl\nversion 5.1.0-1\n");
        assert_eq!(
            tools,
            vec![
                ("clpstat".to_owned(), true, "/opt/nec/clusterpro/bin/clpstat".to_owned()),
                ("clpcl".to_owned(), false, String::new())
            ]
        );
        assert_eq!(version.as_deref(), Some("5.1.0-1"));
    }

    #[test]
    fn the_linux_script_checks_each_tool_then_the_package() {
        let s = tools_script(Os::Linux, &InstallDir::Dir("/opt/nec/clusterpro/bin".into()), &["clpstat", "clpcl"]);
        assert!(
            s.starts_with(
                "for e in clpstat:clpstat clpcl:clpcl; do\n  t=${e%%:*}; f=${e#*:}\n  if p=/opt/nec/clusterpro/bin/$f; [ -x \"$p\" ];"
            ),
            "{s}"
        );
        assert!(s.contains("rpm -q --qf '%{VERSION}-%{RELEASE}' \"$pkg\""), "{s}");
        let w = tools_script(Os::Windows, &InstallDir::Dir(r"C:\Program Files\CLUSTERPRO\bin".into()), &["clpstat"]);
        assert!(w.contains("foreach ($e in @('clpstat:clpstat.exe')) {"), "{w}");
        let v = tools_script(Os::Linux, &InstallDir::Path, &["clprestore"]);
        assert!(v.contains("clprestore:clprestore.sh"), "NEC's pre/post commands are scripts: {v}");
        assert!(w.contains(r"$dir = 'C:\Program Files\CLUSTERPRO\bin'"), "{w}");
    }
}
