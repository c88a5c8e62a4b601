//! Every way a desired-state file can be wrong, with the exact message an operator sees.
//!
//! Each case starts from a valid file, breaks one thing, and snapshots the rendered errors
//! (insta, one named snapshot per case). It also checks that the first error sits on the line of
//! the offending key or value, not on line 1 by default.

use std::path::{Path, PathBuf};

use mirrorctl::spec::{ErrorKind, SpecErrors, load_file, load_str};

const VALID: &str = r#"[cluster]
name = "prod-db"
region = "ap-northeast-1"
os = "windows"
access = "ssm"
api = { url = "https://10.0.10.11:29009", user = "clpadmin", password_env = "CLP_API_PASSWORD" }

[[cluster.server]]
name = "server1"
instance = "i-0123456789abcdef0"
zone = "ap-northeast-1a"

[[cluster.server]]
name = "server2"
instance = "i-0fedcba9876543210"
zone = "ap-northeast-1c"

[mirror]
resource = "md"
group = "failover"
device = "/dev/sdx"
cluster_partition = "R:"
data_partition = "M:"
volume = { type = "gp3", iops = 3000, throughput = 125 }

[backup]
schedule = "daily 02:00 Asia/Tokyo"
keep = 7
take = ["before-upgrade-2026-11"]

[restore]
snapshot = "snap-0123456789abcdef0"
request = "incident-2026-11-24"
"#;

const FILE: &str = "desired-state/prod-db.toml";

/// `VALID` with the first occurrence of `from` replaced by `to` (which must exist).
fn with(from: &str, to: &str) -> String {
    assert!(VALID.contains(from), "the base file has no {from:?}");
    VALID.replacen(from, to, 1)
}

/// The 1-based line of occurrence `nth` (from 0) of `needle` in `text`.
fn line_of(text: &str, needle: &str, nth: usize) -> usize {
    let (at, _) =
        text.match_indices(needle).nth(nth).unwrap_or_else(|| panic!("{needle:?} not in the text {} times", nth + 1));
    text[..at].matches('\n').count() + 1
}

fn load_err(text: &str) -> SpecErrors {
    match load_str(Path::new(FILE), text) {
        Ok(spec) => panic!("expected errors, the file loaded: {spec:?}"),
        Err(e) => e,
    }
}

/// Loads `text`, checks the first error's kind and line (the line holding `needle`), and returns
/// the rendered errors.
fn render(text: &str, kind: ErrorKind, needle: (&str, usize)) -> String {
    let errors = load_err(text);
    let first = &errors.0[0];
    assert_eq!(first.kind, kind, "{errors}");
    assert_eq!(first.line, line_of(text, needle.0, needle.1), "{errors}");
    assert!(first.column >= 1, "{errors}");
    assert!(first.hint.is_some(), "every error tells what to do: {errors}");
    let rendered = errors.to_string();
    assert!(rendered.contains(&format!("{FILE}:{}:{}", first.line, first.column)), "{rendered}");
    rendered
}

/// One invalid case: its name, the text, the expected kind of the first error, and where that
/// error must be: the line of `needle` (or of its `nth` occurrence, counting from 0).
macro_rules! case {
    ($name:ident, $text:expr, $kind:ident, $needle:expr) => {
        case!($name, $text, $kind, $needle, 0);
    };
    ($name:ident, $text:expr, $kind:ident, $needle:expr, $nth:expr) => {
        #[test]
        fn $name() {
            let text: String = $text;
            let rendered = render(&text, ErrorKind::$kind, ($needle, $nth));
            insta::assert_snapshot!(stringify!($name), rendered);
        }
    };
}

#[test]
fn the_base_file_is_valid() {
    let spec = load_str(Path::new(FILE), VALID).expect("VALID must load");
    assert_eq!(spec.cluster.name.as_str(), "prod-db");
}

// --- the TOML parser's own errors -------------------------------------------------------------

case!(syntax_unterminated_string, with("name = \"prod-db\"", "name = \"prod-db"), Syntax, "name = \"prod-db");
case!(syntax_duplicate_key, with("os = \"windows\"", "os = \"windows\"\nos = \"linux\""), Syntax, "os = \"linux\"");
case!(unknown_key_top_level_close, format!("{VALID}\n[backups]\nkeep = 1\n"), UnknownKey, "[backups]");
case!(unknown_key_in_cluster_close, with("region = ", "regoin = "), UnknownKey, "regoin");
case!(unknown_key_in_server_far, with("zone = \"ap-northeast-1c\"", "az = \"ap-northeast-1c\""), UnknownKey, "az = ");
case!(unknown_key_in_inline_volume, with("iops = 3000", "iop = 3000"), UnknownKey, "volume = ");
case!(unknown_key_in_restore, format!("{VALID}verify = true\n"), UnknownKey, "verify = true");
case!(wrong_type_keep_string, with("keep = 7", "keep = \"7\""), WrongType, "keep = \"7\"");
case!(
    wrong_type_instance_number,
    with("instance = \"i-0fedcba9876543210\"", "instance = 12345"),
    WrongType,
    "instance = 12345"
);
case!(
    wrong_type_fast_restore,
    with("throughput = 125 }", "throughput = 125, fast_restore = \"yes\" }"),
    WrongType,
    "volume = "
);

// --- missing keys -----------------------------------------------------------------------------

#[test]
fn empty_file() {
    let errors = load_err("");
    assert_eq!(errors.0.len(), 2, "{errors}");
    assert!(errors.0.iter().all(|e| e.kind == ErrorKind::MissingKey));
    insta::assert_snapshot!("empty_file", errors.to_string());
}

case!(missing_region, with("region = \"ap-northeast-1\"\n", ""), MissingKey, "[cluster]");
case!(missing_os, with("os = \"windows\"\n", ""), MissingKey, "[cluster]");
case!(missing_device, with("device = \"/dev/sdx\"\n", ""), MissingKey, "[mirror]");
case!(
    missing_server_zone,
    with("zone = \"ap-northeast-1c\"\n", ""),
    MissingKey,
    "[[cluster.server]]\nname = \"server2\""
);
case!(
    missing_mirror_table,
    {
        let start = VALID.find("[mirror]").expect("mirror");
        let end = VALID.find("[backup]").expect("backup");
        format!("{}{}", &VALID[..start], &VALID[end..])
    },
    MissingKey,
    "[cluster]"
);
case!(missing_restore_snapshot, with("snapshot = \"snap-0123456789abcdef0\"\n", ""), MissingKey, "[restore]");

// --- malformed ids ----------------------------------------------------------------------------

case!(invalid_instance_id, with("i-0fedcba9876543210", "i-123"), InvalidId, "\"i-123\"");
case!(invalid_snapshot_id, with("snap-0123456789abcdef0", "snap-xyz"), InvalidId, "snap-xyz");
case!(invalid_region, with("region = \"ap-northeast-1\"", "region = \"tokyo\""), InvalidId, "tokyo");
case!(
    invalid_zone,
    with("zone = \"ap-northeast-1a\"", "zone = \"ap-northeast-1\""),
    InvalidId,
    "zone = \"ap-northeast-1\""
);
case!(invalid_device, with("/dev/sdx", "/dev/sda1"), InvalidId, "/dev/sda1");
case!(invalid_server_name, with("name = \"server1\"", "name = \"server 1\""), InvalidId, "server 1");
case!(invalid_request_name, with("incident-2026-11-24", "incident 24/11"), InvalidId, "incident 24/11");
case!(unknown_os, with("\"windows\"", "\"win\""), UnknownOs, "\"win\"");
case!(unknown_access, with("access = \"ssm\"", "access = \"ssh\""), UnknownAccess, "\"ssh\"");
case!(
    install_dir_not_absolute,
    with("access = \"ssm\"", "access = \"ssm\"\ninstall_dir = 'Program Files\\EXPRESSCLUSTER\\bin'"),
    InstallDir,
    "install_dir"
);
case!(
    install_dir_linux_path_on_windows,
    with("access = \"ssm\"", "access = \"ssm\"\ninstall_dir = \"/opt/nec/clusterpro/bin\""),
    InstallDir,
    "install_dir"
);
case!(install_dir_empty, with("access = \"ssm\"", "access = \"ssm\"\ninstall_dir = \"\""), EmptyValue, "install_dir");
case!(
    install_dir_not_a_string,
    with("access = \"ssm\"", "access = \"ssm\"\ninstall_dir = 1"),
    WrongType,
    "install_dir"
);

#[test]
fn install_dir_is_read_per_os() {
    let win = with("access = \"ssm\"", "access = \"ssm\"\ninstall_dir = 'C:\\Program Files\\EXPRESSCLUSTER\\bin'");
    let spec = load_str(Path::new(FILE), &win).expect("windows install_dir");
    assert_eq!(spec.cluster.install_dir.as_deref(), Some(r"C:\Program Files\EXPRESSCLUSTER\bin"));
    assert_eq!(load_str(Path::new(FILE), VALID).expect("valid").cluster.install_dir, None);
    let linux = with("os = \"windows\"", "os = \"linux\"")
        .replace("access = \"ssm\"", "access = \"ssm\"\ninstall_dir = 'C:\\CLUSTERPRO\\bin'");
    let errors = load_err(&linux);
    assert!(
        errors.0.iter().any(|e| e.kind == ErrorKind::InstallDir && e.line == line_of(&linux, "install_dir", 0)),
        "{errors}"
    );
}

case!(
    unknown_procedure,
    with("access = \"ssm\"", "access = \"ssm\"\nprocedure = \"clpbackup\""),
    UnknownProcedure,
    "\"clpbackup\""
);

#[test]
fn procedure_defaults_to_auto_and_is_read() {
    use mirrorctl::spec::ProcedureChoice;
    assert_eq!(load_str(Path::new(FILE), VALID).expect("valid").cluster.procedure, ProcedureChoice::Auto);
    for (word, want) in [("vendor", ProcedureChoice::Vendor), ("reconfigure", ProcedureChoice::Reconfigure)] {
        let text = with("access = \"ssm\"", &format!("access = \"ssm\"\nprocedure = \"{word}\""));
        assert_eq!(load_str(Path::new(FILE), &text).expect(word).cluster.procedure, want);
    }
}

// --- servers ----------------------------------------------------------------------------------

case!(
    zone_outside_region,
    with("zone = \"ap-northeast-1c\"", "zone = \"us-east-1a\""),
    ZoneOutsideRegion,
    "us-east-1a"
);
case!(
    only_one_server,
    with(
        "[[cluster.server]]\nname = \"server2\"\ninstance = \"i-0fedcba9876543210\"\nzone = \"ap-northeast-1c\"\n",
        ""
    ),
    ServerCount,
    "[[cluster.server]]"
);
case!(
    three_servers,
    with(
        "[mirror]",
        "[[cluster.server]]\nname = \"server3\"\ninstance = \"i-0eeeeeeeeeeeeeeee\"\nzone = \"ap-northeast-1d\"\n\n[mirror]"
    ),
    ServerCount,
    "[[cluster.server]]",
    2
);
case!(
    duplicate_server_name,
    with("name = \"server2\"", "name = \"server1\""),
    DuplicateServerName,
    "name = \"server1\"",
    1
);
case!(
    duplicate_instance,
    with("i-0fedcba9876543210", "i-0123456789abcdef0"),
    DuplicateInstance,
    "i-0123456789abcdef0",
    1
);
case!(name_not_file_stem, with("name = \"prod-db\"", "name = \"prod-db2\""), NameNotFileStem, "prod-db2");

// --- partitions -------------------------------------------------------------------------------

case!(
    windows_partition_is_a_device_path,
    with("cluster_partition = \"R:\"", "cluster_partition = \"/dev/xvdb1\""),
    PartitionNotDriveLetter,
    "/dev/xvdb1"
);
case!(
    windows_partition_without_colon,
    with("data_partition = \"M:\"", "data_partition = \"M\""),
    PartitionNotDriveLetter,
    "data_partition"
);
case!(
    linux_partitions_are_drive_letters,
    with("os = \"windows\"", "os = \"linux\""),
    PartitionNotDevice,
    "cluster_partition"
);
case!(same_partition, with("data_partition = \"M:\"", "data_partition = \"r:\""), SamePartition, "data_partition");
case!(
    system_drive_letter,
    with("data_partition = \"M:\"", "data_partition = \"C:\""),
    ReservedDriveLetter,
    "data_partition"
);
case!(
    floppy_drive_letter,
    with("cluster_partition = \"R:\"", "cluster_partition = \"A:\""),
    ReservedDriveLetter,
    "cluster_partition"
);

// --- volume -----------------------------------------------------------------------------------

case!(unknown_volume_type, with("type = \"gp3\"", "type = \"gp4\""), UnknownVolumeType, "volume = ");
case!(
    iops_for_gp2,
    with("type = \"gp3\", iops = 3000, throughput = 125", "type = \"gp2\", iops = 3000"),
    IopsNotSupported,
    "volume = "
);
case!(iops_out_of_range_gp3, with("iops = 3000", "iops = 100"), IopsOutOfRange, "volume = ");
case!(
    iops_missing_for_io2,
    with("type = \"gp3\", iops = 3000, throughput = 125", "type = \"io2\""),
    IopsRequired,
    "volume = "
);
case!(
    throughput_for_io1,
    with("type = \"gp3\", iops = 3000", "type = \"io1\", iops = 1000"),
    ThroughputNotSupported,
    "volume = "
);
case!(throughput_out_of_range, with("throughput = 125", "throughput = 5000"), ThroughputOutOfRange, "volume = ");
case!(
    initialization_rate_out_of_range,
    with("throughput = 125 }", "throughput = 125, initialization_rate = 50 }"),
    InitializationRateOutOfRange,
    "volume = "
);
case!(empty_kms_key, with("throughput = 125 }", "throughput = 125, kms_key = \"\" }"), EmptyKmsKey, "volume = ");

// --- API --------------------------------------------------------------------------------------

case!(api_url_without_scheme, with("https://10.0.10.11:29009", "10.0.10.11:29009"), ApiUrl, "api = ");
case!(api_without_password_source, with(", password_env = \"CLP_API_PASSWORD\"", ""), ApiPasswordMissing, "api = ");
case!(
    api_with_two_password_sources,
    with(
        "password_env = \"CLP_API_PASSWORD\"",
        "password_env = \"CLP_API_PASSWORD\", password_file = \"/etc/mirrorctl/clp\""
    ),
    ApiPasswordAmbiguous,
    "api = "
);
case!(
    api_inline_password,
    with("password_env = \"CLP_API_PASSWORD\"", "password = \"hunter2\""),
    InlinePassword,
    "api = "
);

case!(
    api_url_and_urls,
    with(
        "url = \"https://10.0.10.11:29009\"",
        "url = \"https://10.0.10.11:29009\", urls = [\"https://10.0.20.11:29009\"]"
    ),
    ApiEndpoints,
    "api = "
);
case!(api_urls_empty, with("url = \"https://10.0.10.11:29009\"", "urls = []"), ApiEndpoints, "api = ");
case!(
    api_urls_duplicate,
    with(
        "url = \"https://10.0.10.11:29009\"",
        "urls = [\"https://10.0.10.11:29009\", \"https://10.0.20.11:29009\", \"https://10.0.10.11:29009/\"]"
    ),
    ApiEndpoints,
    "api = "
);
case!(
    api_second_url_without_scheme,
    with("url = \"https://10.0.10.11:29009\"", "urls = [\"https://10.0.10.11:29009\", \"10.0.20.11:29009\"]"),
    ApiUrl,
    "api = "
);
case!(api_missing_url, with("url = \"https://10.0.10.11:29009\", ", ""), MissingKey, "api = ");
case!(
    api_ca_bundle_with_insecure,
    with("user = \"clpadmin\"", "user = \"clpadmin\", ca_bundle = \"/etc/mirrorctl/clp-ca.pem\", insecure = true"),
    ApiTls,
    "api = "
);
case!(
    api_insecure_with_http_only,
    with("url = \"https://10.0.10.11:29009\"", "url = \"http://10.0.10.11:29009\", insecure = true"),
    ApiTls,
    "api = "
);
case!(
    api_secret_key_without_secret,
    with(
        "password_env = \"CLP_API_PASSWORD\"",
        "password_env = \"CLP_API_PASSWORD\", password_secret_key = \"password\""
    ),
    ApiSecretKey,
    "api = "
);
case!(
    api_timeouts_out_of_range,
    with("user = \"clpadmin\"", "user = \"clpadmin\", request_timeout_s = 0, operation_timeout_s = 5"),
    ApiTimeoutOutOfRange,
    "api = "
);

#[test]
fn api_insecure_false_is_the_default() {
    let text = with("user = \"clpadmin\"", "user = \"clpadmin\", insecure = false");
    let spec = load_str(Path::new(FILE), &text).expect("insecure = false loads");
    assert_eq!(spec.cluster.api.expect("api").tls, mirrorctl::spec::ApiTls::System);
}

// --- backup -----------------------------------------------------------------------------------

case!(keep_zero, with("keep = 7", "keep = 0"), KeepOutOfRange, "keep = 0");
case!(keep_too_many, with("keep = 7", "keep = 5000"), KeepOutOfRange, "keep = 5000");
case!(schedule_bad_shape, with("daily 02:00 Asia/Tokyo", "every day at 2am"), BadSchedule, "schedule");
case!(schedule_hour_out_of_range, with("02:00", "25:00"), BadSchedule, "schedule");
case!(schedule_unknown_time_zone, with("Asia/Tokyo", "Asia/Tokio"), UnknownTimeZone, "schedule");
case!(
    duplicate_take,
    with(
        "take = [\"before-upgrade-2026-11\"]",
        "take = [\n  \"before-upgrade-2026-11\",\n  \"before-upgrade-2026-11\",\n]"
    ),
    DuplicateTake,
    "  \"before-upgrade-2026-11\",\n]"
);

// --- several md resources ([[mirror]]) --------------------------------------------------------

/// `VALID` with its `[mirror]` table as the first `[[mirror]]` entry and a second md on two volumes
/// of its own.
fn multi() -> String {
    with("[mirror]", "[[mirror]]").replacen(
        "[backup]",
        "[[mirror]]\nresource = \"md2\"\ngroup = \"failover\"\ndevice = \"/dev/sdy\"\ncluster_device = \"/dev/sdz\"\ncluster_partition = \"S:\"\ndata_partition = \"L:\"\n\n[backup]",
        1,
    )
}

/// [`multi`] with the first occurrence of `from` after the second `[[mirror]]` replaced by `to`.
fn multi_with(from: &str, to: &str) -> String {
    let text = multi();
    let at = text.match_indices("[[mirror]]").nth(1).expect("two entries").0;
    let (head, tail) = text.split_at(at);
    assert!(tail.contains(from), "the second entry has no {from:?}");
    format!("{head}{}", tail.replacen(from, to, 1))
}

#[test]
fn several_mirrors_load_in_file_order() {
    let spec = load_str(Path::new(FILE), &multi()).expect("two md resources");
    let names: Vec<&str> = spec.mirrors().map(|m| m.resource.as_str()).collect();
    assert_eq!(names, ["md", "md2"]);
    let md2 = &spec.more_mirrors[0];
    assert_eq!(md2.device.to_string(), "/dev/sdy");
    assert_eq!(md2.cluster_device.as_ref().map(ToString::to_string).as_deref(), Some("/dev/sdz"));
    assert_eq!(md2.devices().count(), 2);
    assert!(spec.several_volumes());
    // md2's partitions on md's volume, by design: one volume shared, partitions distinct.
    let shared = multi_with("device = \"/dev/sdy\"\ncluster_device = \"/dev/sdz\"\n", "device = \"/dev/sdx\"\n");
    let spec = load_str(Path::new(FILE), &shared).expect("md2 on md's volume");
    assert_eq!(spec.more_mirrors[0].device, spec.mirror.device);
}

#[test]
fn one_mirror_entry_means_the_mirror_table() {
    let table = load_str(Path::new(FILE), VALID).expect("VALID");
    let entry = load_str(Path::new(FILE), &with("[mirror]", "[[mirror]]")).expect("one [[mirror]] entry");
    assert_eq!(table, entry);
    assert!(!entry.several_volumes());
}

case!(
    mirror_entries_empty,
    format!(
        "mirror = []\n{}",
        with(
            "[mirror]\nresource = \"md\"\ngroup = \"failover\"\ndevice = \"/dev/sdx\"\ncluster_partition = \"R:\"\ndata_partition = \"M:\"\nvolume = { type = \"gp3\", iops = 3000, throughput = 125 }\n",
            ""
        )
    ),
    MissingKey,
    "mirror = []"
);
case!(
    duplicate_mirror_resource,
    multi_with("resource = \"md2\"", "resource = \"md\""),
    DuplicateMirrorResource,
    "resource = \"md\"",
    1
);
case!(
    duplicate_partition_across_mirrors,
    multi_with("data_partition = \"L:\"", "data_partition = \"m:\""),
    DuplicatePartition,
    "data_partition = \"m:\""
);
case!(
    cluster_device_is_device,
    multi_with("cluster_device = \"/dev/sdz\"", "cluster_device = \"/dev/xvdy\""),
    SameDevice,
    "cluster_device"
);
case!(unknown_key_in_second_mirror, multi_with("cluster_device", "cluster_dev"), UnknownKey, "cluster_dev");
case!(missing_device_in_second_mirror, multi_with("device = \"/dev/sdy\"\n", ""), MissingKey, "[[mirror]]", 1);
case!(
    invalid_cluster_device,
    multi_with("cluster_device = \"/dev/sdz\"", "cluster_device = \"/dev/nvme2n1\""),
    InvalidId,
    "cluster_device"
);
// --- several schedules -------------------------------------------------------------------------

/// The base file with `[[backup.schedule]]` tables in place of its single schedule.
const SCHEDULES: &str = r#"[[backup.schedule]]
every = "hourly"
keep = 24

[[backup.schedule]]
name = "weekly-long"
every = "weekly sun 03:00 Asia/Tokyo"
keep_days = 90

[[backup.schedule]]
cron = "0 */4 * * *"
zone = "Asia/Tokyo"
keep = 6
keep_days = 2
"#;

/// [`SCHEDULES`] with the first `from` replaced by `to`, put into the base file.
fn schedules(from: &str, to: &str) -> String {
    assert!(SCHEDULES.contains(from), "the schedules have no {from:?}");
    let tables = SCHEDULES.replacen(from, to, 1);
    with("schedule = \"daily 02:00 Asia/Tokyo\"\n", "").replacen("\n[restore]", &format!("\n{tables}\n[restore]"), 1)
}

#[test]
fn several_schedules_load_with_their_retention() {
    use mirrorctl::spec::{Every, Schedule};
    let spec = load_str(Path::new(FILE), &schedules("", "")).expect("several schedules");
    let b = spec.backup.expect("backup");
    let got: Vec<_> =
        b.schedules.iter().map(|s| (s.name.as_str(), s.every.clone(), s.own_retention, s.keep, s.keep_days)).collect();
    assert_eq!(
        got,
        [
            ("hourly", Every::Hours(1), true, Some(24), None),
            (
                "weekly-long",
                Every::Weekly { day: 0, at: Schedule { hour: 3, minute: 0, time_zone: "Asia/Tokyo".into() } },
                true,
                None,
                Some(90)
            ),
            (
                "cron",
                Every::Cron { expr: "0 */4 * * *".into(), time_zone: "Asia/Tokyo".into() },
                true,
                Some(6),
                Some(2)
            ),
        ]
    );
    // The other `every` forms, and the default keep of a table without keep or keep_days.
    for (every, want) in [
        ("every 6h", Every::Hours(6)),
        ("daily 23:30 UTC", Every::Daily(Schedule { hour: 23, minute: 30, time_zone: "UTC".into() })),
    ] {
        let text = schedules("every = \"hourly\"\nkeep = 24", &format!("every = \"{every}\""));
        let spec = load_str(Path::new(FILE), &text).expect(every);
        let first = &spec.backup.expect("backup").schedules[0];
        assert_eq!((&first.every, first.keep, first.keep_days), (&want, Some(7), None), "{every}");
    }
}

case!(
    schedule_every_unknown_word,
    schedules("every = \"hourly\"", "every = \"dayly 02:00 UTC\""),
    BadSchedule,
    "dayly"
);
case!(
    schedule_every_hours_not_dividing_a_day,
    schedules("every = \"hourly\"", "every = \"every 5h\""),
    BadSchedule,
    "every 5h"
);
case!(schedule_weekly_unknown_day, schedules("weekly sun", "weekly snu"), BadSchedule, "weekly snu");
case!(schedule_weekly_bad_time, schedules("sun 03:00", "sun 3:00"), BadSchedule, "weekly sun");
case!(schedule_keep_zero, schedules("keep = 24", "keep = 0"), KeepOutOfRange, "keep = 0");
case!(schedule_keep_days_zero, schedules("keep_days = 90", "keep_days = 0"), KeepDaysOutOfRange, "keep_days = 0");
case!(
    schedule_duplicate_name,
    schedules("name = \"weekly-long\"\n", "name = \"hourly\"\n"),
    DuplicateSchedule,
    "name = \"hourly\""
);
case!(schedule_cron_bad_column, schedules("0 */4 * * *", "0 */4 32 * *"), BadCron, "cron =");
case!(schedule_cron_bad_weekday, schedules("0 */4 * * *", "0 */4 * * funday"), BadCron, "cron =");
case!(schedule_cron_field_count, schedules("0 */4 * * *", "0 */4 * *"), BadCron, "cron =");
case!(
    schedule_cron_unknown_zone,
    schedules("zone = \"Asia/Tokyo\"", "zone = \"Asia/Tokio\""),
    UnknownTimeZone,
    "zone = \"Asia/Tokio\""
);
case!(
    schedule_every_and_cron,
    schedules("every = \"hourly\"", "every = \"hourly\"\ncron = \"0 * * * *\""),
    ScheduleKeys,
    "cron = \"0 * * * *\""
);
case!(
    schedule_zone_without_cron,
    schedules("every = \"hourly\"", "every = \"hourly\"\nzone = \"UTC\""),
    ScheduleKeys,
    "zone = \"UTC\""
);
#[test]
fn copy_to_loads_with_defaults() {
    let text = with(
        "keep = 7",
        "keep = 7\ncopy_to = [{ region = \"us-west-2\", keep = 3, kms_key = \"alias/dr\" }, { region = \"eu-west-1\" }]",
    );
    let b = load_str(Path::new(FILE), &text).expect("copy_to").backup.expect("backup");
    let got: Vec<_> = b.copy_to.iter().map(|t| (t.region.as_str(), t.keep, t.kms_key.as_deref())).collect();
    assert_eq!(got, [("us-west-2", 3, Some("alias/dr")), ("eu-west-1", 7, None)]);
}

#[test]
fn a_file_with_weekly_and_hourly_schedules_keep_days_and_copy_to_validates() {
    let text = schedules("", "").replacen(
        "keep = 7\n",
        "keep = 7\ncopy_to = [{ region = \"us-west-2\", keep = 14, kms_key = \"alias/dr\" }]\n",
        1,
    );
    let b = load_str(Path::new(FILE), &text).expect("every new backup key together").backup.expect("backup");
    assert_eq!(b.schedules.len(), 3);
    assert_eq!(b.schedules[1].keep_days, Some(90));
    assert_eq!(b.copy_to.len(), 1);
    assert_eq!(b.copy_to[0].kms_key.as_deref(), Some("alias/dr"));
}

/// The base file with `copy_to = [entries]` in `[backup]`.
fn copy_to(entries: &str) -> String {
    with("keep = 7", &format!("keep = 7\ncopy_to = [{entries}]"))
}

case!(copy_to_own_region, copy_to("{ region = \"ap-northeast-1\" }"), CopyRegion, "copy_to");
case!(
    copy_to_region_twice,
    copy_to("{ region = \"us-west-2\" },\n  { region = \"us-west-2\", keep = 3 }"),
    CopyRegion,
    "  { region"
);
case!(copy_to_bad_region, copy_to("{ region = \"us-west\" }"), InvalidId, "copy_to");
case!(copy_to_keep_zero, copy_to("{ region = \"us-west-2\", keep = 0 }"), KeepOutOfRange, "copy_to");
case!(copy_to_empty_kms_key, copy_to("{ region = \"us-west-2\", kms_key = \"\" }"), EmptyKmsKey, "copy_to");
case!(copy_to_without_region, copy_to("{ keep = 3 }"), MissingKey, "copy_to");
case!(schedule_without_every, schedules("every = \"hourly\"\n", ""), MissingKey, "[[backup.schedule]]");

// --- restore ----------------------------------------------------------------------------------

case!(restore_without_request, with("request = \"incident-2026-11-24\"\n", ""), RestoreWithoutRequest, "[restore]");
case!(
    restore_snapshot_and_backup,
    with(
        "snapshot = \"snap-0123456789abcdef0\"\n",
        "snapshot = \"snap-0123456789abcdef0\"\nbackup = \"daily-20261124\"\n"
    ),
    RestoreSnapshotAndBackup,
    "backup = "
);
case!(
    restore_bad_backup_name,
    with("snapshot = \"snap-0123456789abcdef0\"\n", "backup = \"daily 2026-11-24\"\n"),
    InvalidId,
    "backup = "
);
case!(
    restore_backup_of_another_cluster,
    with("snapshot = \"snap-0123456789abcdef0\"\n", "backup = \"daily-20261124\"\nallow_foreign_snapshot = true\n"),
    RestoreSnapshotAndBackup,
    "backup = "
);

#[test]
fn a_restore_may_name_a_backup_instead_of_a_snapshot() {
    let text =
        with("snapshot = \"snap-0123456789abcdef0\"\n", "backup = \"daily-20261124\"\nverify_failover = false\n");
    let spec = load_str(Path::new(FILE), &text).expect("a restore by backup name loads");
    assert_eq!(spec.restore, None, "no snapshot is known before the backup is resolved");
    let r = spec.restore_backup.expect("restore by backup");
    assert_eq!((r.backup.as_str(), r.request.as_str()), ("daily-20261124", "incident-2026-11-24"));
    assert!(!r.verify_failover);
    let plain = load_str(Path::new(FILE), VALID).expect("VALID loads");
    assert!(plain.restore.is_some() && plain.restore_backup.is_none());
}

// --- several at once, and the file itself -----------------------------------------------------

const NOTIFY: &str = "\n[notify]\nsns_topic = \"arn:aws:sns:ap-northeast-1:123456789012:mirrorctl\"\nwebhook = { url = \"https://hooks.example.com/mirrorctl\", secret_env = \"HOOK_SECRET\" }\nevents = [\"completed\", \"failed\"]\n";

/// `VALID` with a `[notify]` table, its first `from` replaced by `to`.
fn notify_with(from: &str, to: &str) -> String {
    assert!(NOTIFY.contains(from), "the notify table has no {from:?}");
    format!("{VALID}{}", NOTIFY.replacen(from, to, 1))
}

#[test]
fn notify_is_read() {
    use mirrorctl::spec::{NoticeKind, SecretRef};
    let spec = load_str(Path::new(FILE), &format!("{VALID}{NOTIFY}")).expect("valid [notify]");
    let n = spec.notify.expect("notify");
    let topic = n.sns_topic.expect("topic");
    assert_eq!(
        (topic.arn.as_str(), topic.region.as_str(), topic.fifo),
        ("arn:aws:sns:ap-northeast-1:123456789012:mirrorctl", "ap-northeast-1", false)
    );
    let hook = n.webhook.expect("webhook");
    assert_eq!(hook.url, "https://hooks.example.com/mirrorctl");
    assert_eq!(hook.secret, SecretRef::Env("HOOK_SECRET".into()));
    assert_eq!(n.events, [NoticeKind::Completed, NoticeKind::Failed]);
    // Defaults: every event; a webhook alone; http to loopback; a Secrets Manager secret with a key.
    let text = format!(
        "{VALID}\n[notify]\nwebhook = {{ url = \"http://127.0.0.1:8080/hook\", secret_id = \"mirrorctl/hook\", secret_key = \"hmac\" }}\n"
    );
    let n = load_str(Path::new(FILE), &text).expect("valid").notify.expect("notify");
    assert_eq!(n.events, NoticeKind::ALL);
    assert!(n.sns_topic.is_none());
    assert_eq!(
        n.webhook.expect("webhook").secret,
        SecretRef::SecretsManager { id: "mirrorctl/hook".into(), json_key: Some("hmac".into()) }
    );
}

#[test]
fn notify_false_opts_out_of_every_notice() {
    let spec = load_str(Path::new(FILE), &format!("notify = false\n{VALID}")).expect("notify = false is valid");
    assert!(spec.notify.is_none() && spec.notify_off);
    let plain = load_str(Path::new(FILE), VALID).expect("VALID loads");
    assert!(plain.notify.is_none() && !plain.notify_off, "no key: the daemon's default applies");
}

case!(notify_true, format!("notify = true\n{VALID}"), NotifyNoDestination, "notify = true");
case!(
    notify_without_destination,
    format!("{VALID}\n[notify]\nevents = [\"failed\"]\n"),
    NotifyNoDestination,
    "[notify]"
);
case!(
    notify_sns_topic_not_an_arn,
    notify_with("arn:aws:sns:ap-northeast-1:123456789012:mirrorctl", "mirrorctl"),
    NotifySnsTopic,
    "sns_topic"
);
case!(
    notify_sns_topic_of_sqs,
    notify_with(
        "arn:aws:sns:ap-northeast-1:123456789012:mirrorctl",
        "arn:aws:sqs:ap-northeast-1:123456789012:mirrorctl"
    ),
    NotifySnsTopic,
    "sns_topic"
);
case!(
    notify_webhook_plain_http,
    notify_with("https://hooks.example.com", "http://hooks.example.com"),
    NotifyWebhookUrl,
    "webhook = "
);
case!(
    notify_webhook_without_scheme,
    notify_with("https://hooks.example.com/mirrorctl", "hooks.example.com/mirrorctl"),
    NotifyWebhookUrl,
    "webhook = "
);
case!(
    notify_webhook_without_secret,
    notify_with(", secret_env = \"HOOK_SECRET\"", ""),
    NotifyWebhookSecret,
    "webhook = "
);
case!(
    notify_webhook_two_secrets,
    notify_with("secret_env = \"HOOK_SECRET\"", "secret_env = \"HOOK_SECRET\", secret_file = \"/etc/mirrorctl/hook\""),
    NotifyWebhookSecret,
    "webhook = "
);
case!(
    notify_webhook_secret_key_without_id,
    notify_with("secret_env = \"HOOK_SECRET\"", "secret_env = \"HOOK_SECRET\", secret_key = \"hmac\""),
    NotifyWebhookSecret,
    "webhook = "
);
case!(
    notify_webhook_without_url,
    notify_with("url = \"https://hooks.example.com/mirrorctl\", ", ""),
    MissingKey,
    "webhook = "
);
case!(notify_unknown_event, notify_with("\"failed\"]", "\"failure\"]"), NotifyEvents, "events = ");
case!(notify_event_twice, notify_with("\"failed\"]", "\"completed\"]"), NotifyEvents, "events = ");
case!(notify_no_events, notify_with("[\"completed\", \"failed\"]", "[]"), NotifyEvents, "events = ");
case!(notify_unknown_key, notify_with("events = ", "event = "), UnknownKey, "event = ");

#[test]
fn role_arn_and_external_id_are_read() {
    let text = with(
        "access = \"ssm\"",
        "access = \"ssm\"\nrole_arn = \"arn:aws:iam::123456789012:role/ops/mirrorctl\"\nexternal_id = \"prod-db-ops\"",
    );
    let role = load_str(Path::new(FILE), &text).expect("valid").cluster.role.expect("role");
    assert_eq!(role.arn, "arn:aws:iam::123456789012:role/ops/mirrorctl");
    assert_eq!(role.account, "123456789012");
    assert_eq!(role.external_id.as_deref(), Some("prod-db-ops"));
    assert!(load_str(Path::new(FILE), VALID).expect("valid").cluster.role.is_none(), "default chain");
}

case!(
    role_arn_of_a_user,
    with("access = \"ssm\"", "access = \"ssm\"\nrole_arn = \"arn:aws:iam::123456789012:user/ops\""),
    RoleArn,
    "role_arn"
);
case!(
    role_arn_short_account,
    with("access = \"ssm\"", "access = \"ssm\"\nrole_arn = \"arn:aws:iam::12345:role/mirrorctl\""),
    RoleArn,
    "role_arn"
);
case!(role_arn_not_an_arn, with("access = \"ssm\"", "access = \"ssm\"\nrole_arn = \"mirrorctl\""), RoleArn, "role_arn");
case!(
    external_id_without_role,
    with("access = \"ssm\"", "access = \"ssm\"\nexternal_id = \"prod-db-ops\""),
    ExternalId,
    "external_id"
);
case!(
    external_id_malformed,
    with(
        "access = \"ssm\"",
        "access = \"ssm\"\nrole_arn = \"arn:aws:iam::123456789012:role/mirrorctl\"\nexternal_id = \"has spaces\""
    ),
    ExternalId,
    "external_id"
);

#[test]
fn all_semantic_errors_of_a_file_are_reported() {
    let text = with("zone = \"ap-northeast-1c\"", "zone = \"us-east-1a\"")
        .replacen("keep = 7", "keep = 0", 1)
        .replacen("data_partition = \"M:\"", "data_partition = \"C:\"", 1)
        .replacen("request = \"incident-2026-11-24\"\n", "", 1);
    let errors = load_err(&text);
    let kinds: Vec<ErrorKind> = errors.0.iter().map(|e| e.kind).collect();
    assert_eq!(
        kinds,
        [
            ErrorKind::ZoneOutsideRegion,
            ErrorKind::ReservedDriveLetter,
            ErrorKind::KeepOutOfRange,
            ErrorKind::RestoreWithoutRequest
        ]
    );
    insta::assert_snapshot!("all_semantic_errors", errors.to_string());
}

#[test]
fn unreadable_file_is_an_error_at_line_zero() {
    let path = PathBuf::from("desired-state/does-not-exist.toml");
    let errors = load_file(&path).expect_err("no such file");
    assert_eq!(errors.0.len(), 1);
    assert_eq!(errors.0[0].kind, ErrorKind::Io);
    assert_eq!(errors.0[0].line, 0);
    let rendered = errors.to_string();
    assert!(rendered.starts_with("error[io]: desired-state/does-not-exist.toml\n"), "{rendered}");
    assert!(rendered.contains("hint:"), "{rendered}");
}
