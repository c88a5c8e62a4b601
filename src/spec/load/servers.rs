//! `[[cluster.server]]`: exactly two servers, their instances and zones inside the region.

use std::collections::HashMap;

use super::super::error::ErrorKind;
use super::super::raw::RawServer;
use super::super::types::ServerSpec;
use super::Checker;
use crate::ids::{InstanceId, Region, ServerName, Zone};

impl Checker<'_, '_> {
    pub(super) fn servers(&mut self, raw: Option<&[RawServer]>, region: Option<&Region>) -> Option<[ServerSpec; 2]> {
        let Some(raw) = raw else {
            self.missing(
                "cluster",
                0,
                "cluster.server",
                "add two [[cluster.server]] tables, each with name, instance and zone; the first is the primary",
            );
            return None;
        };
        if raw.len() != 2 {
            let span = if raw.len() > 2 {
                self.source.header("cluster.server", 2)
            } else {
                self.source.header("cluster.server", 0)
            };
            self.push(
                span,
                "cluster.server",
                ErrorKind::ServerCount,
                format!("a mirror disk cluster has exactly two servers, this file lists {}", raw.len()),
                "list exactly two [[cluster.server]] tables: the primary first, then its peer",
            );
        }
        let mut built = Vec::new();
        let mut names: HashMap<String, usize> = HashMap::new();
        let mut instances: HashMap<String, usize> = HashMap::new();
        for (i, server) in raw.iter().enumerate() {
            let prefix = format!("cluster.server[{i}]");
            let s = self.server(server, i, &prefix, region);
            if let Some(n) = &server.name
                && let Some(first) = names.insert(n.get_ref().clone(), i)
            {
                self.push(
                    n.span(),
                    &format!("{prefix}.name"),
                    ErrorKind::DuplicateServerName,
                    format!("server name \"{}\" is also used by cluster.server[{first}]", n.get_ref()),
                    "give each server its CLUSTERPRO server name; the two names differ",
                );
            }
            if let Some(n) = &server.instance
                && let Some(first) = instances.insert(n.get_ref().clone(), i)
            {
                self.push(
                    n.span(),
                    &format!("{prefix}.instance"),
                    ErrorKind::DuplicateInstance,
                    format!("instance {} is also used by cluster.server[{first}]", n.get_ref()),
                    "each server is its own EC2 instance: check the instance id of this server",
                );
            }
            built.push(s);
        }
        let built: Option<Vec<ServerSpec>> = built.into_iter().collect();
        built?.try_into().ok()
    }

    pub(super) fn server(
        &mut self,
        raw: &RawServer,
        i: usize,
        prefix: &str,
        region: Option<&Region>,
    ) -> Option<ServerSpec> {
        let t = ("cluster.server", i);
        let name = self
            .required(
                raw.name.as_ref(),
                t,
                &format!("{prefix}.name"),
                "add name = \"<CLUSTERPRO server name>\", e.g. \"server1\"",
            )
            .and_then(|v| {
                self.id(
                    v,
                    &format!("{prefix}.name"),
                    ServerName::parse,
                    "write the server's name as CLUSTERPRO shows it, e.g. \"server1\"",
                )
            });
        let instance = self
            .required(
                raw.instance.as_ref(),
                t,
                &format!("{prefix}.instance"),
                "add instance = \"i-...\", the server's EC2 instance id",
            )
            .and_then(|v| {
                self.id(
                    v,
                    &format!("{prefix}.instance"),
                    InstanceId::parse,
                    "copy the instance id from the EC2 console, e.g. \"i-0123456789abcdef0\"",
                )
            });
        let zone_raw = self.required(
            raw.zone.as_ref(),
            t,
            &format!("{prefix}.zone"),
            "add zone = \"<availability zone>\", e.g. \"ap-northeast-1a\"",
        );
        let zone = zone_raw.and_then(|v| {
            self.id(
                v,
                &format!("{prefix}.zone"),
                Zone::parse,
                "write the server's availability zone, e.g. \"ap-northeast-1a\"",
            )
        });
        if let (Some(z), Some(r), Some(v)) = (&zone, region, zone_raw)
            && &z.region() != r
        {
            self.push(
                v.span(),
                &format!("{prefix}.zone"),
                ErrorKind::ZoneOutsideRegion,
                format!("\"{z}\" is not in region \"{r}\""),
                format!("use a zone of {r}, such as \"{r}a\", or correct cluster.region"),
            );
            return None;
        }
        Some(ServerSpec { name: name?, instance: instance?, zone: zone? })
    }
}
