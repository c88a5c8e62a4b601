//! Windows volume GUIDs, as an md resource's `volumeguid` / `cpvolumeguid` hold them.
//!
//! Why this module exists: re-adding md on Windows writes, per server, the GUIDs of the volumes on
//! its data and cluster partitions, and the mirror driver opens the data partition by that GUID
//! (EXPRESSCLUSTER/`ControlDisk` `controldisk.cpp` passes it as the data-partition volume to the
//! driver). After the restore swapped the disks they must be read again on each server. What the
//! value is comes from NEC's own material: the GUID inside the volume name `\\?\Volume{GUID}\`,
//! written lowercase without braces (`ControlDisk` cuts it out of `FindFirstVolume` names; clpcfset
//! `doc/windows/SAN-Boot.md` reads it from `Win32_Volume.DeviceID`; NEC's Windows-Server-Backup
//! scripts match `Win32_Volume` by `DriveLetter` and take `DeviceID`). So it is read the same way:
//! `Get-CimInstance Win32_Volume` filtered by the drive letter, its `DeviceID`. There is no
//! CLUSTERPRO command for it (`clpdiskctrl` is a `ControlDisk` sample, not part of the product).
//! Whether a snapshot copy keeps the original's GUID on another instance is not documented [U]:
//! nothing relies on it — the GUIDs are read on the disks attached at the time of the re-add, and
//! the preflight checks that this method reproduces today's `clp.conf` on today's disks.

use super::CommandCluster;
use crate::adapters::node::transport::Shell;
use crate::ids::ServerName;
use crate::ports::PortResult;
use crate::ports::cluster::errors::ClpCode;

/// Exit status of the script when no volume has the letter.
pub(super) const NO_VOLUME_STATUS: i32 = 3;

/// The PowerShell that prints the `DeviceID` of the volume with drive letter `letter`.
pub(super) fn script(letter: char) -> String {
    let l = letter.to_ascii_uppercase();
    [
        format!("$v = Get-CimInstance -ClassName Win32_Volume -Filter \"DriveLetter = '{l}:'\""),
        format!(
            "if (-not $v) {{ [Console]::Error.WriteLine('mirrorctl: no volume has the drive letter {l}:'); exit {NO_VOLUME_STATUS} }}"
        ),
        "$v.DeviceID".to_owned(),
        String::new(),
    ]
    .join("\r\n")
}

/// The GUID of the one `\\?\Volume{…}\` name in `output`, lowercase, without braces. Output with
/// none, or with more than one, is an error: a listing of every volume must never be read as the
/// answer about one.
pub fn parse_device_id(output: &str) -> Result<String, String> {
    let mut found = Vec::new();
    for line in output.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let Some(inner) = line.strip_prefix(r"\\?\Volume{").and_then(|r| r.strip_suffix(r"}\")) else {
            return Err(format!("unexpected line {line:?}: expected a volume name \\\\?\\Volume{{GUID}}\\"));
        };
        let groups: Vec<&str> = inner.split('-').collect();
        let shaped = groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
        if !shaped {
            return Err(format!("{inner:?} is not a GUID"));
        }
        found.push(inner.to_ascii_lowercase());
    }
    match found.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err("no volume name in the output".to_owned()),
        _ => Err(format!("{} volume names where one was asked for", found.len())),
    }
}

impl CommandCluster {
    /// The volume GUID of the partition with drive letter `letter` on `server`.
    pub(super) async fn volume_guid(&self, server: &ServerName, letter: char) -> PortResult<String> {
        let what = format!("Win32_Volume DeviceID of {letter}: on {server}");
        let out = self.transport.run(server, Shell::PowerShell, &script(letter), self.options.query_timeout).await?;
        if out.exit_code == NO_VOLUME_STATUS {
            return Err(ClpCode::PartitionNotFound.error(format!("{what}: no volume has the drive letter {letter}:")));
        }
        let out = out.success(&what, ClpCode::VolumeGuidFailed.code(), ClpCode::VolumeGuidFailed.class())?;
        parse_device_id(&out.stdout).map_err(|e| ClpCode::ClpOutputUnreadable.error(format!("{what}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_device_id_is_read_lowercase_without_braces() {
        assert_eq!(
            parse_device_id("\\\\?\\Volume{7EA7A3D1-4E40-4050-A2E4-6751C147DEE0}\\\r\n"),
            Ok("7ea7a3d1-4e40-4050-a2e4-6751c147dee0".to_owned())
        );
    }

    #[test]
    fn anything_but_exactly_one_volume_name_is_refused() {
        assert!(parse_device_id("").is_err());
        let two = "\\\\?\\Volume{7ea7a3d1-4e40-4050-a2e4-6751c147dee0}\\\n\\\\?\\Volume{711a1f06-0000-0000-0000-104000000000}\\\n";
        assert!(parse_device_id(two).unwrap_err().contains("2 volume names"));
        // ControlDisk's listing (guid,drive,number,port) is not an answer about one volume.
        assert!(parse_device_id("guid,drive,number,port\n711a1f06-0000-0000-0000-100000000000,C,0,0\n").is_err());
        assert!(parse_device_id("\\\\?\\Volume{not-a-guid}\\").is_err());
    }

    #[test]
    fn the_script_filters_by_letter() {
        let s = script('m');
        assert!(
            s.starts_with("$v = Get-CimInstance -ClassName Win32_Volume -Filter \"DriveLetter = 'M:'\"\r\n"),
            "{s}"
        );
        assert!(s.contains("exit 3"), "{s}");
    }
}
