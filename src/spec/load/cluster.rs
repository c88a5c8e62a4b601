//! `[cluster]`: name, region, OS, how commands run, where CLUSTERPRO is installed, which procedure
//! backups and restores follow.

use std::ops::Range;

use super::super::error::ErrorKind;
use super::super::raw::{RawCluster, S};
use super::super::types::{Access, ClusterSpec, Os, ProcedureChoice};
use super::Checker;
use crate::ids::{ClusterName, Region};

impl Checker<'_, '_> {
    pub(super) fn cluster(&mut self, raw: &RawCluster) -> Option<(ClusterSpec, Range<usize>)> {
        const T: (&str, usize) = ("cluster", 0);
        let name_raw = self.required(
            raw.name.as_ref(),
            T,
            "cluster.name",
            "add name = \"<cluster name>\", the same as the file name without .toml",
        );
        let name = name_raw.and_then(|v| {
            self.id(
                v,
                "cluster.name",
                ClusterName::parse,
                "name the cluster like its file, e.g. name = \"prod-db\" in prod-db.toml",
            )
        });
        if let (Some(n), Some(v)) = (&name, name_raw) {
            self.file_stem(n, v);
        }
        let region = self
            .required(
                raw.region.as_ref(),
                T,
                "cluster.region",
                "add region = \"<AWS region of both servers>\", e.g. region = \"ap-northeast-1\"",
            )
            .and_then(|v| {
                self.id(
                    v,
                    "cluster.region",
                    Region::parse,
                    "write the region both servers run in, e.g. \"ap-northeast-1\"",
                )
            });
        let os = self
            .required(
                raw.os.as_ref(),
                T,
                "cluster.os",
                "add os = \"windows\" or os = \"linux\": it decides the disk commands and how partitions are named",
            )
            .and_then(|v| self.os(v));
        let access = raw.access.as_ref().map_or(Some(Access::Ssm), |v| self.access(v));
        let procedure = raw.procedure.as_ref().map_or(Some(ProcedureChoice::Auto), |v| self.procedure(v));
        let install_dir = match (&raw.install_dir, os) {
            (None, _) => Some(None),
            (Some(v), Some(os)) => self.install_dir(v, os).map(Some),
            // The OS is wrong: its own error says so.
            (Some(_), None) => None,
        };
        let api = raw.api.as_ref().map(|a| self.api(a));
        let servers = self.servers(raw.server.as_deref(), region.as_ref());
        let api = match api {
            Some(a) => Some(a?),
            None => None,
        };
        let spec = ClusterSpec {
            name: name?,
            region: region?,
            os: os?,
            access: access?,
            api,
            install_dir: install_dir?,
            servers: servers?,
            procedure: procedure?,
        };
        Some((spec, name_raw?.span()))
    }

    pub(super) fn file_stem(&mut self, name: &ClusterName, value: &S<String>) {
        let stem = self.source.file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        if stem != name.as_str() {
            self.push(
                value.span(),
                "cluster.name",
                ErrorKind::NameNotFileStem,
                format!(
                    "cluster name \"{name}\" differs from the file name \"{}\"",
                    self.source
                        .file
                        .file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default()
                ),
                format!(
                    "rename the file to \"{name}.toml\" or set name = \"{stem}\": each cluster has exactly one file named after it, because two files for one cluster would fight over its disks"
                ),
            );
        }
    }

    pub(super) fn os(&mut self, value: &S<String>) -> Option<Os> {
        match value.get_ref().as_str() {
            "windows" => Some(Os::Windows),
            "linux" => Some(Os::Linux),
            other => {
                self.push(
                    value.span(),
                    "cluster.os",
                    ErrorKind::UnknownOs,
                    format!("\"{other}\" is not a supported operating system"),
                    "write os = \"windows\" or os = \"linux\"",
                );
                None
            }
        }
    }

    /// `cluster.install_dir`: an absolute directory in the path syntax of `os` (Windows `X:\…`,
    /// Linux `/…`), without control characters.
    pub(super) fn install_dir(&mut self, value: &S<String>, os: Os) -> Option<String> {
        const KEY: &str = "cluster.install_dir";
        let v = value.get_ref();
        let example = match os {
            Os::Windows => "install_dir = 'C:\\Program Files\\EXPRESSCLUSTER\\bin' (TOML literal string)",
            Os::Linux => "install_dir = \"/opt/nec/clusterpro/bin\"",
        };
        if v.trim().is_empty() {
            self.push(
                value.span(),
                KEY,
                ErrorKind::EmptyValue,
                "install_dir is empty",
                format!("remove the key to let mirrorctl find the commands, or write e.g. {example}"),
            );
            return None;
        }
        let absolute = match os {
            Os::Windows => {
                let b = v.as_bytes();
                b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\' && !v.contains('/')
            }
            Os::Linux => v.starts_with('/'),
        };
        let problem = if v.chars().any(char::is_control) {
            Some("holds a control character")
        } else if !absolute {
            Some(match os {
                Os::Windows => "is not an absolute Windows path such as C:\\Program Files\\CLUSTERPRO\\bin",
                Os::Linux => "is not an absolute path",
            })
        } else {
            None
        };
        if let Some(why) = problem {
            self.push(
                value.span(),
                KEY,
                ErrorKind::InstallDir,
                format!("install_dir {v:?} {why}"),
                format!("write the directory holding clpstat and the other clp commands, e.g. {example}"),
            );
            return None;
        }
        Some(v.clone())
    }

    pub(super) fn access(&mut self, value: &S<String>) -> Option<Access> {
        match value.get_ref().as_str() {
            "ssm" => Some(Access::Ssm),
            "local" => Some(Access::Local),
            other => {
                self.push(
                    value.span(),
                    "cluster.access",
                    ErrorKind::UnknownAccess,
                    format!("\"{other}\" is not a way to run commands on the nodes"),
                    "write access = \"ssm\" (AWS Systems Manager, the default) or access = \"local\" (mirrorctl runs on a node)",
                );
                None
            }
        }
    }

    pub(super) fn procedure(&mut self, value: &S<String>) -> Option<ProcedureChoice> {
        match value.get_ref().as_str() {
            "auto" => Some(ProcedureChoice::Auto),
            "vendor" => Some(ProcedureChoice::Vendor),
            "reconfigure" => Some(ProcedureChoice::Reconfigure),
            other => {
                self.push(
                    value.span(),
                    "cluster.procedure",
                    ErrorKind::UnknownProcedure,
                    format!("\"{other}\" is not a backup/restore procedure"),
                    "write procedure = \"auto\" (the default: NEC's clpbackup/clprestore on X 4.3 and later, the \
                     configuration edit below), \"vendor\" or \"reconfigure\"",
                );
                None
            }
        }
    }
}
