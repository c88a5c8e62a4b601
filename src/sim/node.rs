//! The servers' operating systems: how each one sees the EBS disks attached to its instance.
//!
//! Why this module exists: the restore's riskiest moments happen inside Windows — a new disk
//! arrives offline and read-only (SAN policy), a copy of a disk the server has never seen gets the
//! next free letters (the runbook's R:→D:, M:→E:), a disk with the same signature as an online one
//! is kept offline (collision), and a disk still online makes the EC2 detach hang `busy`. Which
//! disks exist is derived from the EC2 attachments; only the OS's own state (online, letters,
//! mounts, remembered signatures) is stored here.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::Timestamp;

use super::SimWorld;
use super::world::{OsDisk, World};
use crate::ids::{DeviceName, ServerName, VolumeId};
use crate::ports::cloud::{AttachState, InstanceState};
use crate::ports::cluster::MdDefinition;
use crate::ports::node::{Disk, Node, OfflineReason, PartitionInfo};
use crate::ports::{ErrorClass, PortError, PortResult};
use crate::spec::Partition;

/// The partition numbers of a disk holding an md's cluster (1) and data (2) partitions, and of any
/// disk at a device no md uses. A disk holding one of them has partition 1 only
/// ([`World::partitions_at`]).
const PARTITIONS: [u32; 2] = [1, 2];

fn node_err(code: &str, msg: impl Into<String>, class: ErrorClass) -> PortError {
    PortError::new(code, msg, class)
}

/// `/dev/xvdX` + `n`: the Linux partition path of a disk in device slot `dev`.
fn linux_path(dev: &DeviceName, n: u32) -> String {
    let api = dev.api_name();
    let letters = api.strip_prefix("/dev/sd").unwrap_or(&api);
    format!("/dev/xvd{letters}{n}")
}

impl World {
    /// A volume finished attaching to `server`'s instance: the OS discovers the disk.
    pub(super) fn disk_arrived(&mut self, server: &ServerName, volume: &VolumeId) {
        let windows = self.is_windows();
        let Some(node) = self.nodes.get_mut(server) else {
            return;
        };
        let number = node.next_number;
        node.next_number += 1;
        node.disks.insert(
            volume.clone(),
            OsDisk {
                number,
                online: !windows,
                read_only: windows,
                offline_reason: windows.then_some(OfflineReason::Policy),
                letters: BTreeMap::new(),
                lettered: false,
                mounted: Vec::new(),
            },
        );
    }

    /// Whether the OS of `server` still holds the disk (Windows: online; Linux: a mount).
    pub(super) fn os_holds(&self, server: &ServerName, volume: &VolumeId) -> bool {
        let windows = self.is_windows();
        self.nodes
            .get(server)
            .and_then(|n| n.disks.get(volume))
            .is_some_and(|d| if windows { d.online } else { !d.mounted.is_empty() })
    }

    fn device_of(&self, volume: &VolumeId) -> Option<DeviceName> {
        self.ec2.volumes.get(volume)?.attachment.as_ref().map(|a| a.device.clone())
    }

    fn require_running(&self, server: &ServerName) -> PortResult<()> {
        let Some(inst) = self.instance_of(server) else {
            return Err(node_err("ServerNotFound", format!("no server named {server}"), ErrorClass::NeedsHuman));
        };
        if inst.state == InstanceState::Running {
            Ok(())
        } else {
            Err(node_err(
                "NodeUnreachable",
                format!("{server} ({}) is not running ({:?})", inst.id, inst.state),
                ErrorClass::Retryable,
            ))
        }
    }

    fn require_disk(&self, server: &ServerName, volume: &VolumeId) -> PortResult<()> {
        if self.os_sees(server, volume) && self.nodes.get(server).is_some_and(|n| n.disks.contains_key(volume)) {
            Ok(())
        } else {
            Err(node_err(
                "DiskNotFound",
                format!("{server} has no disk with serial {}", volume.nvme_serial()),
                ErrorClass::Retryable,
            ))
        }
    }

    /// The partition numbers of the disk of `volume`: by the md use of the device it is attached at.
    fn partition_numbers(&self, volume: &VolumeId) -> Vec<u32> {
        let roles = self.device_of(volume).map(|dev| self.partitions_at(&dev)).unwrap_or_default();
        if roles.is_empty() { PARTITIONS.to_vec() } else { roles.into_iter().map(|(n, _)| n).collect() }
    }

    fn disk_view(&self, volume: &VolumeId, d: &OsDisk) -> Disk {
        let windows = self.is_windows();
        let dev = self.device_of(volume);
        let partitions = self
            .partition_numbers(volume)
            .iter()
            .map(|&n| PartitionInfo {
                number: n,
                letter: if windows && d.online { d.letters.get(&n).copied() } else { None },
                path: if windows { None } else { dev.as_ref().map(|dev| linux_path(dev, n)) },
                mounted: d.mounted.contains(&n),
                aliases: Vec::new(),
            })
            .collect();
        Disk {
            volume: volume.clone(),
            number: d.number,
            online: d.online,
            read_only: d.read_only,
            offline_reason: d.offline_reason,
            partitions,
        }
    }

    fn node_disks(&self, server: &ServerName) -> PortResult<Vec<Disk>> {
        self.require_running(server)?;
        let Some(node) = self.nodes.get(server) else {
            return Ok(Vec::new());
        };
        let mut disks: Vec<Disk> =
            node.disks.iter().filter(|(v, _)| self.os_sees(server, v)).map(|(v, d)| self.disk_view(v, d)).collect();
        disks.sort_by_key(|d| d.number);
        Ok(disks)
    }

    /// Letters in use on `server` by online disks other than `except` (C: is the system disk).
    fn letters_in_use(&self, server: &ServerName, except: Option<&VolumeId>) -> Vec<char> {
        let mut used = vec!['C'];
        if let Some(node) = self.nodes.get(server) {
            for (v, d) in &node.disks {
                if Some(v) != except && d.online {
                    used.extend(d.letters.values().copied());
                }
            }
        }
        used
    }

    fn node_set_offline(&mut self, server: &ServerName, volume: &VolumeId, now: Timestamp) -> PortResult<()> {
        self.require_running(server)?;
        self.require_disk(server, volume)?;
        let windows = self.is_windows();
        let Some(disk) = self.nodes.get_mut(server).and_then(|n| n.disks.get_mut(volume)) else {
            return Err(node_err("DiskNotFound", format!("{server}: no disk for {volume}"), ErrorClass::Retryable));
        };
        if windows {
            if disk.online {
                disk.online = false;
                disk.offline_reason = Some(OfflineReason::Manual);
                self.log(now, format!("node {server}: disk of {volume} offline"));
            }
        } else if !disk.mounted.is_empty() {
            let m = disk.mounted.clone();
            return Err(node_err(
                "Mounted",
                format!("{server}: partitions {m:?} of the disk of {volume} are mounted"),
                ErrorClass::NeedsHuman,
            ));
        }
        self.release_if_busy(volume, now);
        Ok(())
    }

    /// A `busy` detach proceeds once the OS let go of the disk.
    pub(super) fn release_if_busy(&mut self, volume: &VolumeId, now: Timestamp) {
        let busy = self
            .ec2
            .volumes
            .get(volume)
            .and_then(|v| v.attachment.as_ref())
            .is_some_and(|a| a.state == AttachState::Busy);
        let holder = self.ec2.volumes.get(volume).and_then(|v| v.attachment.as_ref()).map(|a| a.instance.clone());
        let server = holder.and_then(|i| self.server_of_instance(&i));
        if busy && server.is_some_and(|s| !self.os_holds(&s, volume)) {
            self.start_detaching(now, volume);
            self.log(now, format!("ec2: {volume} no longer busy, detaching"));
        }
    }

    fn node_set_online(&mut self, server: &ServerName, volume: &VolumeId, now: Timestamp) -> PortResult<()> {
        self.require_running(server)?;
        self.require_disk(server, volume)?;
        if !self.is_windows() {
            return Ok(());
        }
        let signature = self.ec2.volumes.get(volume).map(|v| v.signature);
        let collision = self.nodes.get(server).is_some_and(|n| {
            n.disks
                .iter()
                .any(|(v, d)| v != volume && d.online && self.ec2.volumes.get(v).map(|r| r.signature) == signature)
        });
        let used = self.letters_in_use(server, Some(volume));
        let numbers = self.partition_numbers(volume);
        let Some(node) = self.nodes.get_mut(server) else {
            return Ok(());
        };
        let remembered = signature.and_then(|s| node.seen.get(&s).cloned());
        let Some(disk) = node.disks.get_mut(volume) else {
            return Ok(());
        };
        if disk.online {
            disk.read_only = false;
            return Ok(());
        }
        if collision {
            disk.offline_reason = Some(OfflineReason::Collision);
            self.log(now, format!("node {server}: disk of {volume} kept offline (signature collision)"));
            return Err(node_err(
                "SignatureCollision",
                format!("{server}: the disk of {volume} has the same signature as an online disk"),
                ErrorClass::NeedsHuman,
            ));
        }
        disk.online = true;
        disk.read_only = false;
        disk.offline_reason = None;
        if !disk.lettered {
            disk.lettered = true;
            disk.letters = if let Some(letters) = remembered {
                letters.into_iter().filter(|(_, c)| !used.contains(c)).collect()
            } else {
                let mut free = ('D'..='Z').filter(|c| !used.contains(c));
                numbers.iter().filter_map(|&n| free.next().map(|c| (n, c))).collect()
            };
            if let Some(s) = signature {
                node.seen.insert(s, disk.letters.clone());
            }
        }
        let letters: Vec<String> = disk.letters.values().map(|c| format!("{c}:")).collect();
        self.log(now, format!("node {server}: disk of {volume} online ({})", letters.join(" ")));
        Ok(())
    }

    fn node_set_letter(
        &mut self,
        server: &ServerName,
        volume: &VolumeId,
        number: u32,
        letter: char,
        now: Timestamp,
    ) -> PortResult<()> {
        self.require_running(server)?;
        if !self.is_windows() {
            return Err(node_err("NotSupported", "drive letters exist on Windows only", ErrorClass::NeedsHuman));
        }
        self.require_disk(server, volume)?;
        let letter = letter.to_ascii_uppercase();
        if !('D'..='Z').contains(&letter) {
            return Err(node_err(
                "InvalidLetter",
                format!("{letter}: is not a usable drive letter"),
                ErrorClass::NeedsHuman,
            ));
        }
        if !self.partition_numbers(volume).contains(&number) {
            return Err(node_err(
                "PartitionNotFound",
                format!("the disk of {volume} has no partition {number}"),
                ErrorClass::NeedsHuman,
            ));
        }
        let signature = self.ec2.volumes.get(volume).map(|v| v.signature);
        let mut used = self.letters_in_use(server, Some(volume));
        let Some(node) = self.nodes.get_mut(server) else {
            return Ok(());
        };
        let Some(disk) = node.disks.get_mut(volume) else {
            return Ok(());
        };
        if !disk.online {
            return Err(node_err(
                "DiskOffline",
                format!("{server}: the disk of {volume} is offline"),
                ErrorClass::NeedsHuman,
            ));
        }
        if disk.letters.get(&number) == Some(&letter) {
            return Ok(());
        }
        used.extend(disk.letters.iter().filter(|(n, _)| **n != number).map(|(_, c)| *c));
        if used.contains(&letter) {
            return Err(node_err(
                "LetterInUse",
                format!("{server}: {letter}: is already in use"),
                ErrorClass::NeedsHuman,
            ));
        }
        disk.letters.insert(number, letter);
        if let Some(s) = signature {
            node.seen.insert(s, disk.letters.clone());
        }
        self.log(now, format!("node {server}: partition {number} of {volume} is now {letter}:"));
        Ok(())
    }

    /// Whether `server`'s disks carry `md`'s partitions, each on the volume at the device the
    /// scenario gives it (the cluster partition at its own device when split); `Err` says what is
    /// missing.
    pub(super) fn partitions_ok(&self, server: &ServerName, md: &MdDefinition) -> Result<(), String> {
        let Some(rec) = self.md_slot(&md.resource).and_then(|i| self.clp.mds.get(i)) else {
            return Err(format!("{} is not an md resource of this cluster", md.resource));
        };
        for (p, dev) in [(&md.cluster_partition, rec.cluster_slot()), (&md.data_partition, &rec.device)] {
            let Some(vol) = self.volume_at(server, dev) else {
                return Err(format!("{server} has no disk attached at {dev}"));
            };
            let Some(disk) = self.nodes.get(server).and_then(|n| n.disks.get(&vol)) else {
                return Err(format!("{server} does not see the disk of {vol}"));
            };
            let view = self.disk_view(&vol, disk);
            let found = view.partitions.iter().any(|info| match p {
                Partition::Letter(c) => info.letter == Some(*c),
                Partition::Device(d) => info.is_named(d),
            });
            if !found {
                return Err(format!("partition {p} not found on {server} (disk of {vol})"));
            }
        }
        Ok(())
    }
}

/// The simulated node port.
#[derive(Debug, Clone)]
pub struct SimNode {
    world: Arc<SimWorld>,
}

impl SimNode {
    /// The servers of `world`.
    pub fn new(world: Arc<SimWorld>) -> Self {
        SimNode { world }
    }
}

#[async_trait::async_trait]
impl Node for SimNode {
    async fn disks(&self, server: &ServerName) -> PortResult<Vec<Disk>> {
        self.world.round_trip(|l| l.node_api_s).await;
        self.world.call("node:disks", None, |w, _| w.node_disks(server))
    }

    // A change answers with the disk list it leaves, read in the same command (as the recipes do):
    // no extra round trip.
    async fn set_offline(&self, server: &ServerName, volume: &VolumeId) -> PortResult<Vec<Disk>> {
        self.world.round_trip(|l| l.node_api_s + l.node_disk_command_s).await;
        self.world.call("node:set_offline", None, |w, now| {
            w.node_set_offline(server, volume, now)?;
            w.node_disks(server)
        })
    }

    async fn set_online(&self, server: &ServerName, volume: &VolumeId) -> PortResult<Vec<Disk>> {
        self.world.round_trip(|l| l.node_api_s + l.node_disk_command_s).await;
        self.world.call("node:set_online", None, |w, now| {
            w.node_set_online(server, volume, now)?;
            w.node_disks(server)
        })
    }

    async fn set_letter(
        &self,
        server: &ServerName,
        volume: &VolumeId,
        number: u32,
        letter: char,
    ) -> PortResult<Vec<Disk>> {
        self.world.round_trip(|l| l.node_api_s + l.node_disk_command_s).await;
        self.world.call("node:set_letter", None, |w, now| {
            w.node_set_letter(server, volume, number, letter, now)?;
            w.node_disks(server)
        })
    }
}
