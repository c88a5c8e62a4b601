//! `[cluster]`: name, region, OS, how commands run, where CLUSTERPRO is installed, which procedure
//! backups and restores follow, which IAM role its AWS calls assume.

use std::ops::Range;

use super::super::error::ErrorKind;
use super::super::raw::{RawCluster, S};
use super::super::types::{Access, ClusterSpec, Os, ProcedureChoice, RoleSpec};
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
        let role = self.role(raw);
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
            role: role.ok()?,
        };
        Some((spec, name_raw?.span()))
    }

    /// `role_arn` (`arn:<partition>:iam::<12 digits>:role/<path/name>`) and `external_id` (2–1224
    /// characters of letters, digits and `+=,.@:/-_`, only with a role), as IAM and STS define
    /// them: <https://docs.aws.amazon.com/STS/latest/APIReference/API_AssumeRole.html>.
    fn role(&mut self, raw: &RawCluster) -> Result<Option<RoleSpec>, ()> {
        let external_id = match &raw.external_id {
            None => None,
            Some(v) => {
                let s = v.get_ref();
                let ok = (2..=1224).contains(&s.len())
                    && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@:/-_".contains(&b));
                if !ok {
                    self.push(
                        v.span(),
                        "cluster.external_id",
                        ErrorKind::ExternalId,
                        "the external id must be 2–1224 characters of letters, digits and + = , . @ : / - _",
                        "copy the external id from the role's trust policy (its sts:ExternalId condition)",
                    );
                    return Err(());
                }
                if raw.role_arn.is_none() {
                    self.push(
                        v.span(),
                        "cluster.external_id",
                        ErrorKind::ExternalId,
                        "`external_id` is given without `role_arn`: it is only sent when assuming a role",
                        "add role_arn = \"arn:aws:iam::<account>:role/<name>\", or remove external_id",
                    );
                    return Err(());
                }
                Some(s.clone())
            }
        };
        let Some(v) = &raw.role_arn else { return Ok(None) };
        match parse_role_arn(v.get_ref()) {
            Ok(account) => Ok(Some(RoleSpec { arn: v.get_ref().clone(), account, external_id })),
            Err(problem) => {
                self.push(
                    v.span(),
                    "cluster.role_arn",
                    ErrorKind::RoleArn,
                    format!("\"{}\" is not an IAM role ARN: {problem}", v.get_ref()),
                    "write the role's ARN as the IAM console shows it, e.g. \"arn:aws:iam::123456789012:role/mirrorctl\"",
                );
                Err(())
            }
        }
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

/// The account of `arn:<partition>:iam::<account>:role/<path/name>`, or what is wrong with it.
fn parse_role_arn(s: &str) -> Result<String, String> {
    let parts: Vec<&str> = s.splitn(6, ':').collect();
    let [arn, partition, service, region, account, resource] = parts.as_slice() else {
        return Err(format!("it has {} colon-separated parts, a role ARN has 6", parts.len()));
    };
    if *arn != "arn" {
        return Err("it does not start with `arn:`".to_owned());
    }
    if !matches!(*partition, "aws" | "aws-cn" | "aws-us-gov") {
        return Err(format!("partition \"{partition}\" is not aws, aws-cn or aws-us-gov"));
    }
    if *service != "iam" {
        return Err(format!("service \"{service}\" is not iam"));
    }
    if !region.is_empty() {
        return Err("IAM ARNs have no region (`arn:aws:iam::<account>:…`)".to_owned());
    }
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("account \"{account}\" is not 12 digits"));
    }
    let Some(path_name) = resource.strip_prefix("role/") else {
        return Err(format!("\"{resource}\" is not a role (`role/<name>`)"));
    };
    let name = path_name.rsplit('/').next().unwrap_or_default();
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b);
    if name.is_empty()
        || name.len() > 64
        || !name.bytes().all(ok_char)
        || !path_name.bytes().all(|b| ok_char(b) || b == b'/')
    {
        return Err(format!(
            "role name \"{name}\" must be 1–64 letters, digits or + = , . @ _ - (after an optional /path/)"
        ));
    }
    Ok((*account).to_owned())
}

#[cfg(test)]
mod role_tests {
    use super::parse_role_arn;

    #[test]
    fn role_arns() {
        assert_eq!(parse_role_arn("arn:aws:iam::123456789012:role/mirrorctl").unwrap(), "123456789012");
        assert_eq!(parse_role_arn("arn:aws-cn:iam::123456789012:role/ops/mirrorctl").unwrap(), "123456789012");
        assert!(parse_role_arn("arn:aws:iam::123456789012:user/bob").unwrap_err().contains("not a role"));
        assert!(parse_role_arn("arn:aws:sts::123456789012:role/x").unwrap_err().contains("iam"));
        assert!(parse_role_arn("arn:aws:iam:us-east-1:123456789012:role/x").unwrap_err().contains("no region"));
        assert!(parse_role_arn("arn:aws:iam::1234:role/x").unwrap_err().contains("12 digits"));
        assert!(parse_role_arn("mirrorctl").unwrap_err().contains('6'));
        assert!(parse_role_arn("arn:aws:iam::123456789012:role/").unwrap_err().contains("role name"));
    }
}
