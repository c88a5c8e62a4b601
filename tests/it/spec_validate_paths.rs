//! `validate_paths`: directories expand to their `*.toml` files, each file is reported, and two
//! files describing one cluster are refused.

use std::path::Path;

use mirrorctl::spec::{EXIT_INVALID, validate_paths};

const GOOD: &str = r#"[cluster]
name = "prod-db"
region = "ap-northeast-1"
os = "windows"

[[cluster.server]]
name = "server1"
instance = "i-0123456789abcdef0"
zone = "ap-northeast-1a"

[[cluster.server]]
name = "server2"
instance = "i-0fedcba9876543210"
zone = "ap-northeast-1c"

[mirror]
device = "/dev/sdx"
cluster_partition = "R:"
data_partition = "M:"
"#;

fn write(dir: &Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).expect("write");
}

/// The report with the temporary directory's path replaced by `TMP`, for stable snapshots.
fn stable(text: &str, dir: &Path) -> String {
    text.replace(&dir.display().to_string(), "TMP")
}

#[test]
fn one_good_and_one_bad_file_in_a_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "prod-db.toml", GOOD);
    write(dir.path(), "other.toml", &GOOD.replace("\"prod-db\"", "\"other\"").replace("ap-northeast-1c", "eu-west-1c"));
    write(dir.path(), "notes.txt", "not a desired-state file");
    let report = validate_paths(&[dir.path().to_path_buf()]);
    assert_eq!((report.valid, report.invalid), (1, 1), "{}", report.text);
    let text = stable(&report.text, dir.path());
    assert!(text.contains("ok: TMP/prod-db.toml (cluster prod-db, windows)"), "{text}");
    assert!(text.contains("error[zone-outside-region]: TMP/other.toml:14:8: cluster.server[1].zone"), "{text}");
    assert!(!text.contains("notes.txt"), "{text}");
    insta::assert_snapshot!("one_good_one_bad", text);
}

#[test]
fn two_files_for_one_cluster_are_both_refused() {
    let a = tempfile::tempdir().expect("tempdir");
    let b = tempfile::tempdir().expect("tempdir");
    write(a.path(), "prod-db.toml", GOOD);
    write(b.path(), "prod-db.toml", GOOD);
    let report = validate_paths(&[a.path().join("prod-db.toml"), b.path().to_path_buf()]);
    assert_eq!((report.valid, report.invalid), (0, 2), "{}", report.text);
    let text = stable(&stable(&report.text, a.path()), b.path());
    let text = text.replace("TMP", "DIR");
    assert_eq!(text.matches("error[duplicate-cluster]").count(), 2, "{text}");
    assert!(text.contains(":2:8: cluster.name"), "{text}");
    assert!(text.contains("two files for one cluster would fight"), "{text}");
}

#[test]
fn the_same_file_twice_is_checked_once_and_a_missing_file_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), "prod-db.toml", GOOD);
    let file = dir.path().join("prod-db.toml");
    let missing = dir.path().join("gone.toml");
    let report = validate_paths(&[file.clone(), file, missing]);
    assert_eq!((report.valid, report.invalid), (1, 1), "{}", report.text);
    let text = stable(&report.text, dir.path());
    assert!(text.contains("error[io]: TMP/gone.toml\n"), "{text}");
    assert!(text.ends_with("2 files checked: 1 valid, 1 invalid (1 error)\n"), "{text}");
}

#[test]
fn exit_status_is_ex_dataerr() {
    assert_eq!(EXIT_INVALID, 65);
}
