//! Disk recipes: golden text of every generated script, the shared JSON parser on Windows-shaped
//! output, and the Linux recipe run for real with `sh` against fake `lsblk`/`findmnt`/`blockdev`.

use crate::support;

use std::io::Write;
use std::process::{Command, Stdio};

use mirrorctl::adapters::node::recipes::{DiskOp, RecipeError, parse_disks, parse_outcome, script};
use mirrorctl::ids::VolumeId;
use mirrorctl::ports::node::OfflineReason;
use mirrorctl::spec::Os;
use support::fake_disks::FakeDisks;

fn vol() -> VolumeId {
    VolumeId::parse("vol-0123456789abcdef0").expect("volume id")
}

#[test]
fn windows_scripts_golden() {
    for (name, op) in [
        ("list", DiskOp::List),
        ("offline", DiskOp::Offline(vol())),
        ("online", DiskOp::Online(vol())),
        ("letter", DiskOp::SetLetter { volume: vol(), partition: 2, letter: 'm' }),
    ] {
        let s = script(Os::Windows, &op).expect("script");
        insta::assert_snapshot!(format!("windows_{name}"), s);
    }
}

#[test]
fn linux_scripts_golden_and_unsupported() {
    for (name, op) in [("list", DiskOp::List), ("offline", DiskOp::Offline(vol())), ("online", DiskOp::Online(vol()))] {
        insta::assert_snapshot!(format!("linux_{name}"), script(Os::Linux, &op).expect("script"));
    }
    let e = script(Os::Linux, &DiskOp::SetLetter { volume: vol(), partition: 1, letter: 'M' }).expect_err("linux");
    assert!(matches!(e, RecipeError::Unsupported { .. }));
    let e = script(Os::Windows, &DiskOp::SetLetter { volume: vol(), partition: 1, letter: '1' }).expect_err("letter");
    assert_eq!(e, RecipeError::BadLetter('1'));
}

#[test]
fn parse_windows_list() {
    // Shaped like ConvertTo-Json -Compress of the Windows recipe: the boot disk, an online data
    // disk (one partition: PowerShell 5.1 may write a lone element without brackets), and a disk
    // kept offline for a signature collision with a volume-id serial suffix.
    let json = r#"{"disks":[
      {"serial":"vol0aaaaaaaaaaaaaaaa_00000001.","number":0,"online":true,"read_only":false,"boot":true,"offline_reason":null,
       "partitions":[{"number":1,"letter":"C","path":null,"mounted":false}]},
      {"serial":"vol0123456789abcdef0","number":1,"online":true,"read_only":false,"boot":false,"offline_reason":null,
       "partitions":{"number":2,"letter":"M","path":null,"mounted":false}},
      {"serial":"vol0fedcba9876543210_00000001.","number":2,"online":false,"read_only":true,"boot":false,"offline_reason":4,
       "partitions":[]},
      {"serial":"AWS12345","number":3,"online":true,"read_only":false,"boot":false,"offline_reason":null,"partitions":null}
    ]}"#;
    let disks = parse_disks(json).expect("parse");
    assert_eq!(disks.len(), 2);
    assert_eq!(disks[1].offline_reason, Some(OfflineReason::Collision));
    insta::assert_debug_snapshot!(disks);
    // A single disk written as an object, and no disks at all.
    let one = r#"{"disks":{"serial":"vol0123456789abcdef0","number":1,"online":false,"offline_reason":"Policy"}}"#;
    assert_eq!(parse_disks(one).expect("one")[0].offline_reason, Some(OfflineReason::Policy));
    assert!(parse_disks(r#"{"disks":null}"#).expect("none").is_empty());
}

#[test]
fn parse_outcomes_and_errors() {
    let ok = parse_outcome(r#"{"ok":true,"changed":true,"warnings":[],"disks":[]}"#).expect("ok");
    assert!(ok.changed && ok.disks.is_empty());
    // A change answers with the disks it left (the boot disk left out, as in a listing).
    let listed = parse_outcome(
        r#"{"ok":true,"changed":false,"warnings":[],"disks":{"serial":"vol0123456789abcdef0","number":1,"online":true,"partitions":null}}"#,
    )
    .expect("one disk");
    assert_eq!(listed.disks.len(), 1);
    assert_eq!(listed.disks[0].volume, vol());
    assert!(parse_outcome(r#"{"ok":true,"changed":true,"warnings":[],"disks":null}"#).expect("null").disks.is_empty());
    // A success without its disk list is not the recipe's output.
    assert!(matches!(parse_outcome(r#"{"ok":true,"changed":true,"warnings":[]}"#), Err(RecipeError::Output(_))));
    let e =
        parse_outcome(r#"{"ok":false,"code":"not_found","message":"no disk with serial vol0123"}"#).expect_err("nf");
    assert_eq!(e, RecipeError::NotFound("no disk with serial vol0123".into()));
    let e = parse_disks(r#"{"ok":false,"code":"failed","message":"Access denied"}"#).expect_err("failed");
    assert_eq!(e.to_string(), "disk recipe failed: Access denied");
    assert!(matches!(parse_disks("Get-Disk : not recognized"), Err(RecipeError::Output(_))));
}

// ---------------------------------------------------------------------------------------------
// The Linux recipe, run by sh against the shared fakes (`support::fake_disks`).

/// The fake machine of `support::fake_disks` in a temporary directory, run by `sh -s`.
struct Fakes {
    _dir: tempfile::TempDir,
    disks: FakeDisks,
}

impl Fakes {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let disks = FakeDisks::install(dir.path());
        Fakes { _dir: dir, disks }
    }

    fn link_by_id(&self, serial: &str, target: &str) {
        self.disks.link_by_id(serial, target);
    }

    /// Runs the recipe for `op` with sh; returns stdout and the fakes' call log.
    fn run(&self, op: &DiskOp, mounted: &str, partprobe_fails: bool) -> (String, String) {
        let text = script(Os::Linux, op).expect("script");
        let path = format!("{}:{}", self.disks.bin().display(), std::env::var("PATH").unwrap_or_default());
        self.disks.clear_log();
        self.disks.set_mounted(mounted);
        self.disks.set_partprobe_fails(partprobe_fails);
        let mut child = Command::new("sh")
            .arg("-s")
            .env("PATH", path)
            .envs(self.disks.env())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("sh");
        child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("feed script");
        let out = child.wait_with_output().expect("wait");
        assert!(out.status.success(), "sh failed: {}", String::from_utf8_lossy(&out.stderr));
        let stdout = String::from_utf8(out.stdout).expect("utf8");
        assert_eq!(stdout.lines().count(), 1, "one JSON document: {stdout}");
        (stdout, self.disks.log())
    }
}

#[test]
fn linux_list_reports_disks_partitions_and_mounts() {
    let f = Fakes::new();
    let (out, log) = f.run(&DiskOp::List, "", false);
    assert!(log.contains("lsblk -P -p -o NAME,SERIAL,TYPE,MOUNTPOINT,PKNAME,RO"), "{log}");
    let disks = parse_disks(&out).expect("parse");
    // The root disk (partition mounted at /) is left out.
    assert_eq!(disks.len(), 2, "{out}");
    insta::assert_debug_snapshot!(disks);
}

/// Other names of a partition (the EC2 udev link `/dev/xvdb2` on a Nitro instance, a by-partuuid
/// link) are reported beside its kernel path, so a configuration naming it by a stable link is
/// recognised.
#[test]
fn linux_list_reports_the_links_to_each_partition() {
    let f = Fakes::new();
    f.disks.link("xvdb2", "/dev/nvme1n1p2");
    f.disks.link("partuuid-data", "/dev/nvme1n1p2");
    f.disks.link("unrelated", "/dev/nvme9n1");
    let (out, _) = f.run(&DiskOp::List, "", false);
    let disks = parse_disks(&out).expect("parse");
    let p2 =
        disks.iter().flat_map(|d| &d.partitions).find(|p| p.path.as_deref() == Some("/dev/nvme1n1p2")).expect("p2");
    let links = f.disks.root().join("links");
    let mut aliases = p2.aliases.clone();
    aliases.sort();
    assert_eq!(
        aliases,
        [links.join("partuuid-data").display().to_string(), links.join("xvdb2").display().to_string()],
        "{out}"
    );
    assert!(p2.is_named(&links.join("xvdb2").display().to_string()));
}

#[test]
fn linux_offline_refuses_when_mounted() {
    let f = Fakes::new();
    let (out, log) = f.run(&DiskOp::Offline(vol()), "", false);
    let e = parse_outcome(&out).expect_err("mounted");
    assert_eq!(e, RecipeError::Mounted("mounted: /dev/nvme1n1p2".into()));
    assert!(!log.contains("blockdev") && !log.contains("sync"), "{log}");
}

#[test]
fn linux_offline_flushes_found_by_id_link() {
    let f = Fakes::new();
    let other = VolumeId::parse("vol-0fedcba9876543210").expect("id");
    f.link_by_id(&other.nvme_serial(), "../../nvme2n1");
    let (out, log) = f.run(&DiskOp::Offline(other.clone()), "", false);
    let outcome = parse_outcome(&out).expect("ok");
    assert!(outcome.changed);
    // The answer lists the disks as a `list` run does.
    let (listed, _) = f.run(&DiskOp::List, "", false);
    assert_eq!(outcome.disks, parse_disks(&listed).expect("list"));
    assert_eq!(
        log.lines().filter(|l| !l.starts_with("lsblk")).collect::<Vec<_>>(),
        ["sync", "blockdev --flushbufs /dev/nvme2n1"]
    );
    // findmnt catches a mount lsblk did not show.
    let (out, _) = f.run(&DiskOp::Offline(other), "/dev/nvme2n1p1", false);
    assert_eq!(parse_outcome(&out).expect_err("busy"), RecipeError::Mounted("mounted: /dev/nvme2n1p1".into()));
}

#[test]
fn linux_online_is_best_effort_and_not_found_is_reported() {
    let f = Fakes::new();
    let other = VolumeId::parse("vol-0fedcba9876543210").expect("id");
    let (out, log) = f.run(&DiskOp::Online(other.clone()), "", false);
    let outcome = parse_outcome(&out).expect("ok");
    assert_eq!(outcome.warnings, Vec::<String>::new());
    assert!(log.contains("partprobe /dev/nvme2n1"), "{log}");
    // Once udev has settled, the partition table is read again, and the answer lists the disks.
    let calls: Vec<&str> = log.lines().map(|l| l.split(' ').next().unwrap_or(l)).collect();
    assert_eq!(calls, ["lsblk", "partprobe", "udevadm", "lsblk"], "{log}");
    assert!(log.contains("udevadm settle --timeout=10"), "{log}");
    assert!(outcome.disks.iter().any(|d| d.volume == other), "{out}");
    let (out, _) = f.run(&DiskOp::Online(other), "", true);
    assert_eq!(parse_outcome(&out).expect("ok").warnings, vec!["partprobe /dev/nvme2n1 failed".to_owned()]);
    let missing = VolumeId::parse("vol-0000000000000000a").expect("id");
    let (out, _) = f.run(&DiskOp::Offline(missing), "", false);
    assert_eq!(
        parse_outcome(&out).expect_err("nf"),
        RecipeError::NotFound("no disk with serial vol0000000000000000a".into())
    );
}
