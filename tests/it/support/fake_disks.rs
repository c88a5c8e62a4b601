//! Fake Linux disk tools for the sh disk recipe: `lsblk`, `findmnt`, `blockdev`, `sync`,
//! `partprobe` and `udevadm` scripts in a `bin` directory, backed by files beside it.
//!
//! Why this module exists: the Linux recipe is run for real in two ways — directly with `sh`
//! (`tests/it/node_recipes.rs`) and through the fake SSM endpoint inside an instance sandbox
//! (`tests/it/ssm_transport.rs`). Both need the same fake machine: three `NVMe` disks (the root disk,
//! the mirror disk `vol-0123456789abcdef0` with its data partition mounted, another EBS disk
//! `vol-0fedcba9876543210`). The fakes read and log only under their root directory, whose path is
//! written into them, so they behave the same whatever environment runs them.

use std::path::{Path, PathBuf};

use super::write_tool;

/// `lsblk -P -p -o NAME,SERIAL,TYPE,MOUNTPOINT,PKNAME,RO` of the fake machine.
pub const LSBLK: &str = r#"NAME="/dev/nvme0n1" SERIAL="vol0aaaaaaaaaaaaaaaa" TYPE="disk" MOUNTPOINT="" PKNAME="" RO="0"
NAME="/dev/nvme0n1p1" SERIAL="" TYPE="part" MOUNTPOINT="/" PKNAME="/dev/nvme0n1" RO="0"
NAME="/dev/nvme1n1" SERIAL="vol0123456789abcdef0" TYPE="disk" MOUNTPOINT="" PKNAME="" RO="0"
NAME="/dev/nvme1n1p1" SERIAL="" TYPE="part" MOUNTPOINT="" PKNAME="/dev/nvme1n1" RO="0"
NAME="/dev/nvme1n1p2" SERIAL="" TYPE="part" MOUNTPOINT="/mnt/data" PKNAME="/dev/nvme1n1" RO="0"
NAME="/dev/nvme2n1" SERIAL="vol0fedcba9876543210" TYPE="disk" MOUNTPOINT="" PKNAME="" RO="1"
NAME="/dev/nvme2n1p1" SERIAL="" TYPE="part" MOUNTPOINT="" PKNAME="/dev/nvme2n1" RO="1"
NAME="/dev/nvme2n1p2" SERIAL="" TYPE="part" MOUNTPOINT="" PKNAME="/dev/nvme2n1" RO="1"
"#;

/// The fake tools installed under one root directory.
#[derive(Debug, Clone)]
pub struct FakeDisks {
    root: PathBuf,
}

impl FakeDisks {
    /// Installs the fakes: `root/bin/*`, `root/lsblk.out` (= [`LSBLK`]), an empty `root/byid`.
    pub fn install(root: &Path) -> FakeDisks {
        let bin = root.join("bin");
        std::fs::create_dir_all(&bin).expect("bin");
        std::fs::create_dir_all(root.join("byid")).expect("byid");
        std::fs::write(root.join("lsblk.out"), LSBLK).expect("lsblk.out");
        let r = root.display();
        write_tool(&bin, "lsblk", &format!(r#"echo "lsblk $*" >> '{r}/calls.log'; cat '{r}/lsblk.out'"#));
        write_tool(
            &bin,
            "findmnt",
            &format!(r#"case " $(cat '{r}/mounted' 2>/dev/null) " in *" $3 "*) exit 0;; esac; exit 1"#),
        );
        write_tool(&bin, "blockdev", &format!(r#"echo "blockdev $*" >> '{r}/calls.log'"#));
        write_tool(&bin, "sync", &format!(r#"echo "sync" >> '{r}/calls.log'"#));
        write_tool(
            &bin,
            "partprobe",
            &format!(r#"echo "partprobe $*" >> '{r}/calls.log'; [ ! -e '{r}/partprobe.fail' ]"#),
        );
        write_tool(&bin, "udevadm", &format!(r#"echo "udevadm $*" >> '{r}/calls.log'"#));
        FakeDisks { root: root.to_owned() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of the fake tools (put it first on `PATH`).
    pub fn bin(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// Environment the recipe needs besides `PATH`: its by-id directory, and the one directory
    /// where it looks for other names of partitions (nothing of the host's `/dev`).
    pub fn env(&self) -> Vec<(String, String)> {
        let links = self.root.join("links");
        std::fs::create_dir_all(&links).expect("links dir");
        vec![
            ("MIRRORCTL_BYID_DIR".to_owned(), self.root.join("byid").display().to_string()),
            ("MIRRORCTL_LINK_DIRS".to_owned(), links.display().to_string()),
        ]
    }

    /// Adds a link `name` → `target` where the recipe looks for partitions' other names.
    pub fn link(&self, name: &str, target: &str) {
        let links = self.root.join("links");
        std::fs::create_dir_all(&links).expect("links dir");
        std::os::unix::fs::symlink(target, links.join(name)).expect("symlink");
    }

    /// Adds the by-id link `nvme-Amazon_Elastic_Block_Store_<serial>` → `target`.
    pub fn link_by_id(&self, serial: &str, target: &str) {
        std::os::unix::fs::symlink(
            target,
            self.root.join("byid").join(format!("nvme-Amazon_Elastic_Block_Store_{serial}")),
        )
        .expect("symlink");
    }

    /// Devices `findmnt -S` reports as mounted (space-separated), beyond lsblk's mount points.
    pub fn set_mounted(&self, devices: &str) {
        std::fs::write(self.root.join("mounted"), devices).expect("mounted");
    }

    /// Whether `partprobe` fails.
    pub fn set_partprobe_fails(&self, fails: bool) {
        let flag = self.root.join("partprobe.fail");
        if fails {
            std::fs::write(flag, "").expect("flag");
        } else {
            let _ = std::fs::remove_file(flag);
        }
    }

    /// The calls the fakes logged since the last [`FakeDisks::clear_log`].
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.root.join("calls.log")).unwrap_or_default()
    }

    /// Forgets the logged calls.
    pub fn clear_log(&self) {
        let _ = std::fs::remove_file(self.root.join("calls.log"));
    }
}
