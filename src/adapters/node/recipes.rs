//! Disk recipes: the scripts run inside a server to list its EBS disks and take one offline,
//! bring it online or give a partition a drive letter, and the parser of what they print.
//!
//! Why this module exists: the restore swaps the mirror disk's EBS volume under a running OS
//! (DOMAIN.md, Restore 3–4). A disk is always found by its **serial number**, which on Nitro
//! instances is the EBS volume id without its hyphen (`vol0abc…`), never by disk number or device
//! name, which change when a volume is swapped. Each recipe is a fixed template (`windows.ps1`,
//! `linux.sh`, next to this file) plus one generated call line; the only values spliced in are
//! validated ids, numbers and a letter, so nothing needs quoting beyond single quotes. Every run
//! prints exactly one JSON document: a disk list (`{"disks":[…]}`) or an operation result
//! (`{"ok":true,"changed":…,"disks":[…]}` / `{"ok":false,"code":…,"message":…}`), parsed here into
//! [`Disk`]s or an [`Outcome`]; the two OSes share the schema. A successful operation lists the
//! disks again after its change, in the same run, so its caller learns the state it left without
//! a second round trip to the server.
//!
//! Windows cmdlets used: `Get-Disk` (`SerialNumber`, `Number`, `IsOffline`, `IsReadOnly`,
//! `OfflineReason`, `IsBoot`, `IsSystem`), `Set-Disk -Number N -IsOffline $true|$false`,
//! `Set-Disk -Number N -IsReadOnly $false` (a separate call), `Get-Partition -DiskNumber N`
//! (`PartitionNumber`, `DriveLetter`), `Set-Partition -DiskNumber N -PartitionNumber P
//! -NewDriveLetter X`, `ConvertTo-Json`.
//!
//! Linux commands used (each replaceable through an environment variable, for tests):
//! `lsblk -P -p -o NAME,SERIAL,TYPE,MOUNTPOINT,PKNAME,RO` (`MIRRORCTL_LSBLK`), `findmnt -rn -S`
//! (`MIRRORCTL_FINDMNT`), `sync` (`MIRRORCTL_SYNC`), `blockdev --flushbufs` (`MIRRORCTL_BLOCKDEV`),
//! `partprobe` (`MIRRORCTL_PARTPROBE`), `udevadm settle --timeout=10` (`MIRRORCTL_UDEVADM`; after
//! `partprobe`, so the answer's partition links exist: it "exits if all current events are
//! handled", udevadm(8)), and the links in `/dev/disk/by-id`
//! (`MIRRORCTL_BYID_DIR`) named `nvme-Amazon_Elastic_Block_Store_<serial>`. Linux has no offline
//! state: "offline" flushes the disk after refusing if any of its partitions is mounted, "online"
//! re-reads the partition table (best effort).

use serde::Deserialize;

use crate::ids::VolumeId;
use crate::ports::node::{Disk, OfflineReason, PartitionInfo};
use crate::spec::Os;

/// The Windows recipe template (PowerShell).
pub const WINDOWS_TEMPLATE: &str = include_str!("windows.ps1");

/// The Linux recipe template (POSIX sh).
pub const LINUX_TEMPLATE: &str = include_str!("linux.sh");

/// `OfflineReason` as `Get-Disk` reports it, by name or by its numeric value (`MSFT_Disk`: 1 =
/// Policy, 4 = Collision; guess for the numbers [U]). Any other reason of an offline disk reads as
/// [`OfflineReason::Manual`].
const OFFLINE_REASONS: &[(&str, OfflineReason)] = &[
    ("Policy", OfflineReason::Policy),
    ("1", OfflineReason::Policy),
    ("Collision", OfflineReason::Collision),
    ("4", OfflineReason::Collision),
    ("Manual", OfflineReason::Manual),
];

/// One operation a recipe performs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskOp {
    /// List the disks (prints `{"disks":[…]}`).
    List,
    /// Take the disk of this volume offline (Linux: flush, refusing if mounted).
    Offline(VolumeId),
    /// Bring the disk of this volume online and clear read-only (Linux: re-read partitions).
    Online(VolumeId),
    /// Give partition `partition` of the volume's disk the drive letter `letter` (Windows only).
    SetLetter {
        /// The volume.
        volume: VolumeId,
        /// Partition number.
        partition: u32,
        /// Drive letter, `A`–`Z`.
        letter: char,
    },
}

/// A recipe could not be generated, or its output says it failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipeError {
    /// The operation does not exist on this OS (drive letters on Linux).
    #[error("{op} is not available on {os:?}")]
    Unsupported {
        /// The operation.
        op: &'static str,
        /// The OS.
        os: Os,
    },
    /// A drive letter outside `A`–`Z`.
    #[error("{0:?} is not a drive letter")]
    BadLetter(char),
    /// No disk has the volume's serial number (not attached yet, or another server).
    #[error("no disk with the serial of this volume: {0}")]
    NotFound(String),
    /// Linux: a partition of the disk is mounted, so it is not taken "offline".
    #[error("disk is in use: {0}")]
    Mounted(String),
    /// The recipe ran and reported a failure.
    #[error("disk recipe failed: {0}")]
    Failed(String),
    /// The output is not the JSON document the recipe prints.
    #[error("unreadable disk recipe output: {0}")]
    Output(String),
}

/// The result of an operation recipe.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Outcome {
    /// Whether the recipe changed anything (false when it was already done).
    pub changed: bool,
    /// Non-fatal problems (e.g. `partprobe` failed).
    pub warnings: Vec<String>,
    /// The server's EBS data disks as the operation left them (listed after the change, filtered
    /// like [`parse_disks`]).
    pub disks: Vec<Disk>,
}

/// The script that performs `op` on `os`: the template plus one call line. Run it with
/// `powershell -NoProfile -NonInteractive -Command -` (Windows) or `sh -s` (Linux), feeding the
/// script on standard input.
pub fn script(os: Os, op: &DiskOp) -> Result<String, RecipeError> {
    let call = match (os, op) {
        (Os::Windows, DiskOp::List) => "Invoke-Mirrorctl -Op 'list'".to_owned(),
        (Os::Windows, DiskOp::Offline(v)) => format!("Invoke-Mirrorctl -Op 'offline' -Serial '{}'", v.nvme_serial()),
        (Os::Windows, DiskOp::Online(v)) => format!("Invoke-Mirrorctl -Op 'online' -Serial '{}'", v.nvme_serial()),
        (Os::Windows, DiskOp::SetLetter { volume, partition, letter }) => {
            if !letter.is_ascii_alphabetic() {
                return Err(RecipeError::BadLetter(*letter));
            }
            format!(
                "Invoke-Mirrorctl -Op 'letter' -Serial '{}' -Partition {partition} -Letter '{}'",
                volume.nvme_serial(),
                letter.to_ascii_uppercase()
            )
        }
        (Os::Linux, DiskOp::List) => "mirrorctl_main list".to_owned(),
        (Os::Linux, DiskOp::Offline(v)) => format!("mirrorctl_main offline '{}'", v.nvme_serial()),
        (Os::Linux, DiskOp::Online(v)) => format!("mirrorctl_main online '{}'", v.nvme_serial()),
        (Os::Linux, DiskOp::SetLetter { .. }) => {
            return Err(RecipeError::Unsupported { op: "setting a drive letter", os });
        }
    };
    let template = match os {
        Os::Windows => WINDOWS_TEMPLATE,
        Os::Linux => LINUX_TEMPLATE,
    };
    Ok(format!("{template}{call}\n"))
}

/// PowerShell's `ConvertTo-Json` writes a one-element array as the element, and `$null` for none.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany<T> {
    Many(Vec<T>),
    One(T),
}

impl<T> OneOrMany<T> {
    fn into_vec(v: Option<Self>) -> Vec<T> {
        match v {
            None => Vec::new(),
            Some(OneOrMany::Many(v)) => v,
            Some(OneOrMany::One(x)) => vec![x],
        }
    }
}

#[derive(Deserialize)]
struct RawList {
    disks: Option<OneOrMany<RawDisk>>,
}

#[derive(Deserialize)]
struct RawDisk {
    #[serde(default)]
    serial: Option<String>,
    number: u32,
    online: bool,
    #[serde(default)]
    read_only: bool,
    #[serde(default)]
    boot: bool,
    #[serde(default)]
    offline_reason: Option<serde_json::Value>,
    #[serde(default)]
    partitions: Option<OneOrMany<RawPartition>>,
}

#[derive(Deserialize)]
struct RawPartition {
    number: u32,
    #[serde(default)]
    letter: Option<String>,
    #[serde(default)]
    path: Option<String>,
    #[serde(default)]
    mounted: bool,
    #[serde(default)]
    aliases: Option<OneOrMany<String>>,
}

#[derive(Deserialize)]
struct RawOutcome {
    ok: bool,
    #[serde(default)]
    changed: bool,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    warnings: Option<OneOrMany<String>>,
    /// Absent from failures; a success without it is not the recipe's output (`Some(null)`: the
    /// key with no disks).
    #[serde(default, deserialize_with = "present")]
    disks: Option<serde_json::Value>,
}

/// A key that is present, even as `null` (serde reads a plain `Option`'s `null` as absent).
fn present<'de, D>(d: D) -> Result<Option<serde_json::Value>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    serde_json::Value::deserialize(d).map(Some)
}

/// The EBS volume id behind a disk serial: `vol` + 8 or 17 hex digits, optionally followed by a
/// non-hex suffix (Windows may print `vol0abc…_00000001.`). `None` for other disks (instance
/// store, non-Nitro).
pub fn volume_from_serial(serial: &str) -> Option<VolumeId> {
    let rest = serial.trim().strip_prefix("vol")?;
    let hex_len = rest.bytes().take_while(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(b)).count();
    VolumeId::parse(&format!("vol-{}", &rest[..hex_len])).ok()
}

fn offline_reason(v: Option<&serde_json::Value>) -> Option<OfflineReason> {
    let word = match v? {
        serde_json::Value::String(s) => s.trim().to_owned(),
        serde_json::Value::Number(n) => n.to_string(),
        _ => return None,
    };
    if word.is_empty() {
        return None;
    }
    Some(OFFLINE_REASONS.iter().find(|(w, _)| w.eq_ignore_ascii_case(&word)).map_or(OfflineReason::Manual, |(_, r)| *r))
}

fn letter(v: Option<&str>) -> Option<char> {
    v.and_then(|s| s.trim_matches(['\0', ' ', ':']).chars().next())
        .filter(char::is_ascii_alphabetic)
        .map(|c| c.to_ascii_uppercase())
}

fn check_failure(text: &str) -> Result<(), RecipeError> {
    if let Ok(o) = serde_json::from_str::<RawOutcome>(text)
        && !o.ok
    {
        return Err(failure(o));
    }
    Ok(())
}

fn failure(o: RawOutcome) -> RecipeError {
    let message = o.message.unwrap_or_default();
    match o.code.as_deref() {
        Some("not_found") => RecipeError::NotFound(message),
        Some("mounted") => RecipeError::Mounted(message),
        _ => RecipeError::Failed(message),
    }
}

/// Parses a list recipe's output into the server's EBS data disks: disks whose serial is not an
/// EBS volume id, and the boot/system disk, are left out. Shared by both OSes.
pub fn parse_disks(output: &str) -> Result<Vec<Disk>, RecipeError> {
    let text = output.trim().trim_start_matches('\u{feff}');
    check_failure(text)?;
    let raw: RawList = serde_json::from_str(text).map_err(|e| RecipeError::Output(e.to_string()))?;
    Ok(data_disks(raw.disks))
}

/// The EBS data disks of a listing: disks whose serial is not an EBS volume id, and the
/// boot/system disk, are left out.
fn data_disks(raw: Option<OneOrMany<RawDisk>>) -> Vec<Disk> {
    let mut disks = Vec::new();
    for d in OneOrMany::into_vec(raw) {
        let Some(volume) = d.serial.as_deref().and_then(volume_from_serial) else { continue };
        if d.boot {
            continue;
        }
        let partitions = OneOrMany::into_vec(d.partitions)
            .into_iter()
            .map(|p| PartitionInfo {
                number: p.number,
                letter: letter(p.letter.as_deref()),
                path: p.path.filter(|s| !s.is_empty()),
                mounted: p.mounted,
                aliases: OneOrMany::into_vec(p.aliases),
            })
            .collect();
        let offline_reason =
            if d.online { None } else { offline_reason(d.offline_reason.as_ref()).or(Some(OfflineReason::Manual)) };
        disks.push(Disk {
            volume,
            number: d.number,
            online: d.online,
            read_only: d.read_only,
            offline_reason,
            partitions,
        });
    }
    disks
}

/// Parses an operation recipe's output (offline, online, set letter). A success must carry the
/// disk list the operation left (`"disks"`, possibly empty or `null` for none).
pub fn parse_outcome(output: &str) -> Result<Outcome, RecipeError> {
    let text = output.trim().trim_start_matches('\u{feff}');
    let mut raw: RawOutcome = serde_json::from_str(text).map_err(|e| RecipeError::Output(e.to_string()))?;
    if !raw.ok {
        return Err(failure(raw));
    }
    let Some(disks) = raw.disks.take() else {
        return Err(RecipeError::Output("the operation succeeded but printed no disk list (\"disks\")".into()));
    };
    let disks: Option<OneOrMany<RawDisk>> =
        serde_json::from_value(disks).map_err(|e| RecipeError::Output(format!("the disk list: {e}")))?;
    Ok(Outcome { changed: raw.changed, warnings: OneOrMany::into_vec(raw.warnings), disks: data_disks(disks) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials() {
        let v = volume_from_serial("vol0123456789abcdef0_00000001.").expect("suffix");
        assert_eq!(v.as_str(), "vol-0123456789abcdef0");
        assert_eq!(volume_from_serial("vol12345678").map(|v| v.to_string()), Some("vol-12345678".into()));
        assert_eq!(volume_from_serial("AWS1234ABCD"), None);
        assert_eq!(volume_from_serial("vol0123"), None);
    }

    #[test]
    fn letters_and_reasons() {
        assert_eq!(letter(Some("\u{0}")), None);
        assert_eq!(letter(Some("e")), Some('E'));
        assert_eq!(offline_reason(Some(&serde_json::json!(4))), Some(OfflineReason::Collision));
        assert_eq!(offline_reason(Some(&serde_json::json!("Policy"))), Some(OfflineReason::Policy));
        assert_eq!(offline_reason(Some(&serde_json::json!("Redundant Path"))), Some(OfflineReason::Manual));
    }
}
