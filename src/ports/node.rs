//! The node port: the mirror disk as each server's operating system sees it. Disks are found by
//! EBS volume id (the `NVMe` serial), never by device name.

use serde::{Deserialize, Serialize};

use super::PortResult;
use crate::ids::{ServerName, VolumeId};

/// Why Windows keeps a disk offline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OfflineReason {
    /// The SAN policy keeps new disks offline.
    Policy,
    /// Its signature collides with an online disk.
    Collision,
    /// Taken offline by an administrator (or by mirrorctl).
    Manual,
}

/// A partition on a disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionInfo {
    /// Partition number (Windows `PartitionNumber`; Linux the `N` in `xvdbN`).
    pub number: u32,
    /// Windows drive letter, if any.
    pub letter: Option<char>,
    /// Linux device path, if any.
    pub path: Option<String>,
    /// Linux: other names of the same partition, links that resolve to it (`/dev/xvdb2` made by
    /// the EC2 udev rules from the attach device name, `/dev/disk/by-partuuid/…`, …). A
    /// configuration may name the partition by any of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    /// Whether a file system on it is mounted (Linux; on Windows the mirror data partition is
    /// never mounted by mirrorctl).
    pub mounted: bool,
}

impl PartitionInfo {
    /// Every name of this partition: its path, then its aliases.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.path.as_deref().into_iter().chain(self.aliases.iter().map(String::as_str))
    }

    /// Whether `name` names this partition: its path or one of its aliases.
    pub fn is_named(&self, name: &str) -> bool {
        self.names().any(|n| n == name)
    }
}

/// A disk in a server.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// The EBS volume behind it (from the serial number).
    pub volume: VolumeId,
    /// Disk number (Windows) or index.
    pub number: u32,
    /// Online in the OS (Linux disks are always online).
    pub online: bool,
    /// Read-only flag.
    pub read_only: bool,
    /// Why it is offline, when it is.
    pub offline_reason: Option<OfflineReason>,
    /// Partitions.
    pub partitions: Vec<PartitionInfo>,
}

/// Disk operations inside each server.
///
/// Every change answers with the server's disks as the change left them: the same list
/// [`Node::disks`] gives, read on the server after the change, in the same command. It is an
/// observation, so the next plan can use it instead of asking the server again (one node round
/// trip less after every disk command of a restore).
#[async_trait::async_trait]
pub trait Node: Send + Sync {
    /// The EBS disks the server sees (not its root disk).
    async fn disks(&self, server: &ServerName) -> PortResult<Vec<Disk>>;
    /// Take the disk of `volume` offline (Windows `Set-Disk -IsOffline $true`; Linux: flush, and
    /// refuse if a partition is mounted); returns the disks as it left them.
    async fn set_offline(&self, server: &ServerName, volume: &VolumeId) -> PortResult<Vec<Disk>>;
    /// Bring the disk online and clear read-only (Windows two `Set-Disk` calls; Linux: rescan);
    /// returns the disks as it left them.
    async fn set_online(&self, server: &ServerName, volume: &VolumeId) -> PortResult<Vec<Disk>>;
    /// Give partition `number` of the disk the drive letter `letter` (Windows only); returns the
    /// disks as it left them.
    async fn set_letter(
        &self,
        server: &ServerName,
        volume: &VolumeId,
        number: u32,
        letter: char,
    ) -> PortResult<Vec<Disk>>;
}
