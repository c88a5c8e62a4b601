//! `[mirror]` / `[[mirror]]`: the md resources, their partitions in the syntax of the OS, the
//! volumes holding them, and `mirror.volume`.
//!
//! A file names one md with a `[mirror]` table (the runbook's shape) or several with `[[mirror]]`
//! entries; a single `[[mirror]]` entry means the same as a `[mirror]` table. Each md's partitions
//! are on the volume at `device`, or the cluster partition is on its own volume at
//! `cluster_device`. Across entries, resources and partitions are unique; a device may appear in
//! several entries, which then share that volume (partitions of two md on one disk), and a backup
//! snapshots it once.

use std::collections::HashMap;

use super::super::error::ErrorKind;
use super::super::raw::{RawMirror, RawMirrors, RawVolume, S};
use super::super::types::{MirrorSpec, Os, Partition, VolumeSpec, VolumeType};
use super::{Checker, VOLUME_TYPES, closest, quote_list};
use crate::ids::{DeviceName, GroupName, ResourceName};

impl Checker<'_, '_> {
    /// Every md entry, checked one by one and then against each other: the first and the rest.
    pub(super) fn mirrors(&mut self, raw: &RawMirrors, os: Option<Os>) -> Option<(MirrorSpec, Vec<MirrorSpec>)> {
        let entries: Vec<(&RawMirror, String)> = match raw {
            RawMirrors::One(m) => vec![(&**m, "mirror".to_owned())],
            RawMirrors::Many(list) => list.iter().enumerate().map(|(i, m)| (m, format!("mirror[{i}]"))).collect(),
        };
        if entries.is_empty() {
            self.missing(
                "",
                0,
                "mirror",
                "add a [[mirror]] table for each md resource, with device, cluster_partition and data_partition",
            );
            return None;
        }
        let mut built = Vec::new();
        for (i, (m, prefix)) in entries.iter().enumerate() {
            built.push(self.mirror(m, os, i, prefix));
        }
        let mut resources: HashMap<ResourceName, &str> = HashMap::new();
        let mut partitions: HashMap<Partition, String> = HashMap::new();
        for ((m, prefix), spec) in entries.iter().zip(&built) {
            let Some(spec) = spec else { continue };
            if let Some(first) = resources.insert(spec.resource.clone(), prefix) {
                let span = m.resource.as_ref().map_or_else(|| self.source.header("mirror", 0), S::span);
                self.push(
                    span,
                    &format!("{prefix}.resource"),
                    ErrorKind::DuplicateMirrorResource,
                    format!("md resource \"{}\" is also described by {first}", spec.resource),
                    "describe each md resource once; give this entry the name of another md resource of the cluster",
                );
            }
            let parts = [
                ("cluster_partition", &spec.cluster_partition, m.cluster_partition.as_ref()),
                ("data_partition", &spec.data_partition, m.data_partition.as_ref()),
            ];
            for (key, p, raw_value) in parts {
                if let Some(first_key) = partitions.get(p) {
                    let span = raw_value.map_or_else(|| self.source.header("mirror", 0), S::span);
                    self.push(
                        span,
                        &format!("{prefix}.{key}"),
                        ErrorKind::DuplicatePartition,
                        format!("partition {p} is also {first_key}"),
                        "each md resource has its own cluster and data partitions: name the partitions this md uses",
                    );
                } else {
                    partitions.insert(p.clone(), format!("{prefix}.{key}"));
                }
            }
        }
        let mut built: Vec<MirrorSpec> = built.into_iter().collect::<Option<_>>()?;
        let first = built.remove(0);
        Some((first, built))
    }

    /// One `[mirror]` table or `[[mirror]]` entry (`nth` from 0), its keys named `prefix.key`.
    pub(super) fn mirror(&mut self, raw: &RawMirror, os: Option<Os>, nth: usize, prefix: &str) -> Option<MirrorSpec> {
        let t: (&str, usize) = ("mirror", nth);
        let key = |k: &str| format!("{prefix}.{k}");
        let resource = match &raw.resource {
            Some(v) => self.id(
                v,
                &key("resource"),
                ResourceName::parse,
                "write the mirror disk resource's name as CLUSTERPRO shows it, e.g. \"md\"",
            ),
            None => ResourceName::parse("md").ok(),
        };
        let group = match &raw.group {
            Some(v) => self.id(
                v,
                &key("group"),
                GroupName::parse,
                "write the failover group's name as CLUSTERPRO shows it, e.g. \"failover\"",
            ),
            None => GroupName::parse("failover").ok(),
        };
        let device = self
            .required(
                raw.device.as_ref(),
                t,
                &key("device"),
                "add device = \"/dev/sdX\", the EC2 device name of the mirror disk volume on both servers",
            )
            .and_then(|v| {
                self.id(
                    v,
                    &key("device"),
                    DeviceName::parse,
                    "use the device name shown in the EC2 console under the instance's storage, e.g. \"/dev/sdx\"",
                )
            });
        let cluster_device = match &raw.cluster_device {
            None => Some(None),
            Some(v) => self
                .id(
                    v,
                    &key("cluster_device"),
                    DeviceName::parse,
                    "use the device name of the volume holding the cluster partition, e.g. \"/dev/sdy\"",
                )
                .and_then(|c| {
                    if device.as_ref() == Some(&c) {
                        self.push(
                            v.span(),
                            &key("cluster_device"),
                            ErrorKind::SameDevice,
                            format!("cluster_device is device ({c})"),
                            "remove cluster_device when both partitions are on one volume, or name the device of the cluster partition's own volume",
                        );
                        None
                    } else {
                        Some(Some(c))
                    }
                }),
        };
        let cluster_partition = self
            .required(
                raw.cluster_partition.as_ref(),
                t,
                &key("cluster_partition"),
                "add cluster_partition = \"R:\" (windows) or \"/dev/xvdb1\" (linux)",
            )
            .and_then(|v| os.and_then(|os| self.partition(v, &key("cluster_partition"), os)));
        let data_partition_raw = self.required(
            raw.data_partition.as_ref(),
            t,
            &key("data_partition"),
            "add data_partition = \"M:\" (windows) or \"/dev/xvdb2\" (linux)",
        );
        let data_partition =
            data_partition_raw.and_then(|v| os.and_then(|os| self.partition(v, &key("data_partition"), os)));
        if let (Some(c), Some(d), Some(v)) = (&cluster_partition, &data_partition, data_partition_raw)
            && c == d
        {
            self.push(
                    v.span(),
                    &key("data_partition"),
                    ErrorKind::SamePartition,
                    format!("the data partition is the cluster partition ({c})"),
                    "the cluster partition holds CLUSTERPRO's mirror metadata and the data partition the business data: name two different partitions",
                );
            return None;
        }
        let volume = match &raw.volume {
            Some(v) => self.volume(v),
            None => Some(VolumeSpec::default()),
        };
        Some(MirrorSpec {
            resource: resource?,
            group: group?,
            device: device?,
            cluster_device: cluster_device?,
            cluster_partition: cluster_partition?,
            data_partition: data_partition?,
            volume: volume?,
        })
    }

    pub(super) fn partition(&mut self, value: &S<String>, key: &str, os: Os) -> Option<Partition> {
        let s = value.get_ref();
        let cluster = key.ends_with("cluster_partition");
        let (letter_example, device_example) =
            if cluster { ("\"R:\"", "\"/dev/xvdb1\"") } else { ("\"M:\"", "\"/dev/xvdb2\"") };
        let bytes = s.as_bytes();
        let is_letter = bytes.len() == 2 && bytes[0].is_ascii_alphabetic() && bytes[1] == b':';
        let is_device = s
            .strip_prefix("/dev/")
            .is_some_and(|r| !r.is_empty() && !r.contains(|c: char| c.is_whitespace() || c == '/'));
        match os {
            Os::Windows if is_letter => {
                let letter = char::from(bytes[0].to_ascii_uppercase());
                if matches!(letter, 'A' | 'B' | 'C') {
                    let why = if letter == 'C' { "the system drive" } else { "reserved for floppy drives" };
                    self.push(
                        value.span(),
                        key,
                        ErrorKind::ReservedDriveLetter,
                        format!("drive letter {letter}: is {why} and cannot hold a mirror partition"),
                        format!("choose a letter from D: to Z: that the partition has on both servers, e.g. {letter_example}"),
                    );
                    return None;
                }
                Some(Partition::Letter(letter))
            }
            Os::Windows => {
                let message = if s.starts_with("/dev/") {
                    format!("\"{s}\" is a Linux device path, but cluster.os is \"windows\"")
                } else {
                    format!("\"{s}\" is not a Windows drive letter")
                };
                self.push(
                    value.span(),
                    key,
                    ErrorKind::PartitionNotDriveLetter,
                    message,
                    format!("write a drive letter and a colon, e.g. {letter_example} (or set os = \"linux\" if the servers run Linux)"),
                );
                None
            }
            Os::Linux if is_device => Some(Partition::Device(s.clone())),
            Os::Linux => {
                let message = if is_letter {
                    format!("\"{s}\" is a Windows drive letter, but cluster.os is \"linux\"")
                } else {
                    format!("\"{s}\" is not a block device path")
                };
                self.push(
                    value.span(),
                    key,
                    ErrorKind::PartitionNotDevice,
                    message,
                    format!("write the partition's block device, e.g. {device_example} (or set os = \"windows\" if the servers run Windows)"),
                );
                None
            }
        }
    }

    pub(super) fn range(
        &mut self,
        value: &S<i64>,
        key: &str,
        bounds: (i64, i64),
        kind: ErrorKind,
        what: &str,
    ) -> Option<u32> {
        let n = *value.get_ref();
        if n < bounds.0 || n > bounds.1 {
            self.push(
                value.span(),
                key,
                kind,
                format!("{n} is outside the allowed range {}–{} {what}", bounds.0, bounds.1),
                format!("choose a value from {} to {}", bounds.0, bounds.1),
            );
            return None;
        }
        u32::try_from(n).ok()
    }

    pub(super) fn volume(&mut self, raw: &RawVolume) -> Option<VolumeSpec> {
        let volume_type = match &raw.volume_type {
            None => Some(VolumeType::Gp3),
            Some(v) => {
                let found = VOLUME_TYPES.iter().find(|(name, _)| name == v.get_ref()).map(|(_, t)| *t);
                if found.is_none() {
                    let names: Vec<&str> = VOLUME_TYPES.iter().map(|(n, _)| *n).collect();
                    let hint = match closest(v.get_ref(), names.iter().copied()) {
                        Some(near) => {
                            format!("did you mean \"{near}\"? The EBS volume types are {}", quote_list(&names, '"'))
                        }
                        None => format!("use one of the EBS volume types {}", quote_list(&names, '"')),
                    };
                    self.push(
                        v.span(),
                        "mirror.volume.type",
                        ErrorKind::UnknownVolumeType,
                        format!("\"{}\" is not an EBS volume type", v.get_ref()),
                        hint,
                    );
                }
                found
            }
        };
        let iops = self.iops(raw, volume_type);
        let throughput = match (&raw.throughput, volume_type) {
            (None, _) | (Some(_), None) => Some(None),
            (Some(v), Some(VolumeType::Gp3)) => self
                .range(v, "mirror.volume.throughput", (125, 2000), ErrorKind::ThroughputOutOfRange, "MiB/s for gp3")
                .map(Some),
            (Some(v), Some(t)) => {
                self.push(
                    v.span(),
                    "mirror.volume.throughput",
                    ErrorKind::ThroughputNotSupported,
                    format!("throughput cannot be set for volume type \"{}\"", t.as_str()),
                    "remove throughput, or use type = \"gp3\"",
                );
                None
            }
        };
        let initialization_rate = match &raw.initialization_rate {
            None => Some(None),
            Some(v) => self
                .range(
                    v,
                    "mirror.volume.initialization_rate",
                    (100, 300),
                    ErrorKind::InitializationRateOutOfRange,
                    "MiB/s",
                )
                .map(Some),
        };
        let kms_key = match &raw.kms_key {
            None => Some(None),
            Some(v) if v.get_ref().trim().is_empty() => {
                self.push(
                    v.span(),
                    "mirror.volume.kms_key",
                    ErrorKind::EmptyKmsKey,
                    "kms_key is empty",
                    "remove kms_key to keep the snapshot's encryption, or give a KMS key id, ARN or \"alias/NAME\"",
                );
                None
            }
            Some(v) => Some(Some(v.get_ref().clone())),
        };
        Some(VolumeSpec {
            volume_type: volume_type?,
            iops: iops?,
            throughput: throughput?,
            kms_key: kms_key?,
            initialization_rate: initialization_rate?,
            fast_restore: raw.fast_restore.unwrap_or(false),
        })
    }

    /// `Some(None)`: no iops, fine; `None`: an error was reported.
    #[allow(clippy::option_option)] // outer: checked or not; inner: the key is optional
    pub(super) fn iops(&mut self, raw: &RawVolume, volume_type: Option<VolumeType>) -> Option<Option<u32>> {
        const KEY: &str = "mirror.volume.iops";
        let Some(t) = volume_type else {
            return Some(None);
        };
        match (&raw.iops, t) {
            (Some(v), VolumeType::Gp3) => {
                self.range(v, KEY, (3000, 80000), ErrorKind::IopsOutOfRange, "IOPS for gp3").map(Some)
            }
            (Some(v), VolumeType::Io1 | VolumeType::Io2) => self
                .range(v, KEY, (100, 256_000), ErrorKind::IopsOutOfRange, &format!("IOPS for {}", t.as_str()))
                .map(Some),
            (Some(v), _) => {
                self.push(
                    v.span(),
                    KEY,
                    ErrorKind::IopsNotSupported,
                    format!("iops cannot be set for volume type \"{}\"", t.as_str()),
                    "remove iops, or use type = \"gp3\", \"io1\" or \"io2\"",
                );
                None
            }
            (None, VolumeType::Io1 | VolumeType::Io2) => {
                let span = raw.volume_type.as_ref().map_or_else(|| self.source.header("mirror.volume", 0), S::span);
                self.push(
                    span,
                    KEY,
                    ErrorKind::IopsRequired,
                    format!("volume type \"{}\" needs provisioned iops", t.as_str()),
                    "add iops = <100 to 256000> to mirror.volume, or use type = \"gp3\"",
                );
                None
            }
            (None, _) => Some(None),
        }
    }
}
