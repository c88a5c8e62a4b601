//! CLUSTERPRO adapter core against fixtures: command-output parsers (insta snapshots, garbage
//! input) and `clp.conf` editing (line diffs, round trips, byte preservation).

use mirrorctl::adapters::clusterpro::conf::{
    self, ConfError, GuidSource, MirrorTemplate, VolumeGuids, apply_changes, apply_changes_with_templates, read_config,
};
use mirrorctl::adapters::clusterpro::parse;
use mirrorctl::ids::{GroupName, ResourceName, ServerName};
use mirrorctl::ports::cluster::{ConfigChange, MdDefinition, MirrorColor};
use mirrorctl::spec::{Os, Partition};

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/clusterpro/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn res(s: &str) -> ResourceName {
    ResourceName::parse(s).expect("resource name")
}

fn grp(s: &str) -> GroupName {
    GroupName::parse(s).expect("group name")
}

fn srv(s: &str) -> ServerName {
    ServerName::parse(s).expect("server name")
}

/// The changed lines between two texts, as `-old` / `+new` (line ends stripped).
fn line_diff(a: &str, b: &str) -> Vec<String> {
    similar::TextDiff::from_lines(a, b)
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .map(|c| {
            let sign = if c.tag() == similar::ChangeTag::Delete { '-' } else { '+' };
            format!("{sign}{}", c.value().trim_end_matches(['\r', '\n']))
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Command output.

#[test]
fn clpstat_linux_all_online() {
    let s = parse::parse_clpstat(&fixture("clpstat-linux-online.txt")).expect("parse");
    insta::assert_debug_snapshot!(s);
}

#[test]
fn clpstat_windows_standby_stopped_and_group_failed() {
    let s = parse::parse_clpstat(&fixture("clpstat-windows-standby-stopped.txt")).expect("parse");
    assert_eq!(s.servers.get(&srv("server2")), Some(&false));
    insta::assert_debug_snapshot!(s);
}

#[test]
fn clpstat_windows_group_offline_current_none() {
    let s = parse::parse_clpstat(&fixture("clpstat-windows-group-offline.txt")).expect("parse");
    assert_eq!(s.groups[&grp("failover")].current, None);
    insta::assert_debug_snapshot!(s);
}

#[test]
fn clpstat_garbage_is_an_error_naming_the_command() {
    let e = parse::parse_clpstat("Could not connect to the server.\r\n").expect_err("garbage");
    assert_eq!(
        e.to_string(),
        "cannot read `clpstat` output: no <server> section with at least one server (is the cluster service running?)"
    );
    let e =
        parse::parse_clpstat("  <server>\n    server1 ....: Online\n  this line has no colon\n").expect_err("bad line");
    insta::assert_snapshot!(e.to_string(), @r#"cannot read `clpstat` output, line 3 "this line has no colon": expected `name : status` in <server>"#);
    let e = parse::parse_clpstat(
        "  <group>\n    failover : Online\n      current : bad name!\n  <server>\n   s1 : Online\n",
    )
    .expect_err("bad current");
    assert_eq!(e.line, Some(3));
}

#[test]
fn clpgrp_current() {
    assert_eq!(parse::parse_clpgrp_current(&fixture("clpgrp-n-online.txt")).expect("ok"), Some(srv("server1")));
    assert_eq!(parse::parse_clpgrp_current(&fixture("clpgrp-n-none.txt")).expect("ok"), None);
    assert_eq!(parse::parse_clpgrp_current("\r\n").expect("ok"), None);
    let e = parse::parse_clpgrp_current("[ERROR] Invalid group name.\n").expect_err("garbage");
    assert!(e.to_string().starts_with("cannot read `clpgrp -n` output, line 1"), "{e}");
}

#[test]
fn clpmdstat_mirror() {
    let normal = parse::parse_clpmdstat_mirror(&fixture("clpmdstat-m-normal.txt")).expect("normal");
    assert!(normal.healthy());
    let recovering = parse::parse_clpmdstat_mirror(&fixture("clpmdstat-m-windows-recovering.txt")).expect("recovering");
    assert_eq!(recovering.colors[&srv("server2")], MirrorColor::Yellow);
    assert!(!recovering.healthy());
    let stopped = parse::parse_clpmdstat_mirror(&fixture("clpmdstat-m-windows-standby-stopped.txt")).expect("stopped");
    insta::assert_debug_snapshot!((normal, recovering, stopped));
}

#[test]
fn clpmdstat_mirror_garbage() {
    let e = parse::parse_clpmdstat_mirror("error: md not found\n").expect_err("garbage");
    assert_eq!(e.to_string(), "cannot read `clpmdstat -m` output: no `Mirror Color` line");
    let e = parse::parse_clpmdstat_mirror(" md s1 s2\n Mirror Color GREEN\n").expect_err("count");
    assert_eq!(e.line, Some(2));
    let e = parse::parse_clpmdstat_mirror(" Mirror Color GREEN GREEN\n").expect_err("no header");
    assert!(e.why.contains("header"), "{e}");
}

#[test]
fn clpmdstat_list() {
    // NEC's shape: names in angle brackets (NEC engineers' perl scripts take them with /<(.+)>/).
    let linux = parse::parse_clpmdstat_list(&fixture("clpmdstat-l-linux.txt")).expect("linux");
    assert_eq!(linux, vec![res("md1"), res("md2")]);
    let with_details = " <md1>\n  Mirror Partition Device : /dev/NMP1\n <md2>\r\n  Sync Switch  On\n";
    assert_eq!(parse::parse_clpmdstat_list(with_details).expect("details ignored"), vec![res("md1"), res("md2")]);
    // Other shapes still read: bare names, or `Name :` lines under `<server>` headings.
    assert_eq!(parse::parse_clpmdstat_list(" md1\n md2\n").expect("bare"), vec![res("md1"), res("md2")]);
    let windows = parse::parse_clpmdstat_list(&fixture("clpmdstat-l-windows.txt")).expect("windows");
    assert_eq!(windows, vec![res("md")]);
    let e = parse::parse_clpmdstat_list("Usage: clpmdstat -l | -m <md>\n").expect_err("garbage");
    assert_eq!(e.line, Some(1));
}

// ---------------------------------------------------------------------------------------------
// clp.conf.

fn win_def(initial_copy: bool) -> MdDefinition {
    MdDefinition {
        resource: res("md"),
        group: grp("failover"),
        data_partition: Partition::Letter('M'),
        cluster_partition: Partition::Letter('R'),
        initial_copy,
    }
}

fn linux_def(initial_copy: bool) -> MdDefinition {
    MdDefinition {
        resource: res("md1"),
        group: grp("failover"),
        data_partition: Partition::Device("/dev/nvme1n1p2".into()),
        cluster_partition: Partition::Device("/dev/nvme1n1p1".into()),
        initial_copy,
    }
}

/// The GUIDs the Windows fixture already has.
fn original_guids() -> GuidSource {
    let mut g = GuidSource::new();
    g.insert(
        srv("server1"),
        VolumeGuids {
            data: "0a1b2c3d-0000-1111-2222-333344445555".into(),
            cluster: "0a1b2c3d-6666-7777-8888-99990000aaaa".into(),
        },
    );
    g.insert(
        srv("server2"),
        VolumeGuids {
            data: "5f6e7d8c-0000-1111-2222-333344445555".into(),
            cluster: "5f6e7d8c-6666-7777-8888-99990000aaaa".into(),
        },
    );
    g
}

fn remove(name: &str) -> ConfigChange {
    ConfigChange::RemoveMirror { resource: res(name) }
}

fn auto(auto: bool) -> ConfigChange {
    ConfigChange::SetGroupAutoStart { group: grp("failover"), auto }
}

/// The text between `<tag` and its end, for byte-identity checks of untouched elements.
fn element<'a>(xml: &'a str, open: &str, close: &str) -> &'a str {
    let start = xml.find(open).expect("open");
    let end = xml[start..].find(close).expect("close") + start + close.len();
    &xml[start..end]
}

#[test]
fn read_windows_and_linux() {
    let w = read_config(&fixture("clp-windows.conf"), Os::Windows).expect("windows");
    let l = read_config(&fixture("clp-linux.conf"), Os::Linux).expect("linux");
    insta::assert_debug_snapshot!((w, l));
}

#[test]
fn read_errors_name_the_path() {
    let e = read_config(&fixture("clp-linux.conf"), Os::Windows).expect_err("linux file read as windows");
    assert_eq!(e.to_string(), "clp.conf resource/md[md1]/parameters/volumemountpoint: missing");
    let e = read_config("<root><group name=\"g\"><start>yes</start></group></root>", Os::Linux).expect_err("bad start");
    assert_eq!(e.to_string(), "clp.conf group[g]/start: expected 0 or 1, found \"yes\"");
    let e = read_config("<root><group>", Os::Linux).expect_err("truncated");
    assert!(matches!(e, ConfError::Xml { .. }), "{e:?}");
}

#[test]
fn windows_remove_changes_only_the_md_lines() {
    let original = fixture("clp-windows.conf");
    let removed = apply_changes(&original, &[remove("md"), auto(false)], &GuidSource::new()).expect("remove");
    insta::assert_debug_snapshot!(line_diff(&original, &removed));
    // The file keeps its CRLF line ends and everything not touched.
    assert!(!removed.replace("\r\n", "").contains('\n'));
    for (open, close) in
        [("<webmgr>", "</webmgr>"), ("<vendorext", "</vendorext>"), ("<awsvip name", "</awsvip>"), ("<?xml", "?>")]
    {
        assert_eq!(element(&original, open, close), element(&removed, open, close), "{open}");
    }
    let cfg = read_config(&removed, Os::Windows).expect("read");
    assert!(cfg.mirrors.is_empty());
    assert!(!cfg.group_auto_start[&grp("failover")]);
    // Idempotent: removing an absent md and setting the same start attribute change nothing.
    let again = apply_changes(&removed, &[remove("md"), auto(false)], &GuidSource::new()).expect("again");
    assert_eq!(again, removed);
}

#[test]
fn windows_round_trip_with_template_changes_only_fullcopy() {
    let original = fixture("clp-windows.conf");
    let template = MirrorTemplate::capture(&original, &res("md")).expect("capture").expect("md defined");
    // The template survives the journal.
    let template: MirrorTemplate = serde_json::from_str(&serde_json::to_string(&template).expect("ser")).expect("de");
    let removed = apply_changes(&original, &[remove("md"), auto(false)], &GuidSource::new()).expect("remove");
    let readded = apply_changes_with_templates(
        &removed,
        &[ConfigChange::AddMirror(win_def(false)), auto(true)],
        &original_guids(),
        std::slice::from_ref(&template),
    )
    .expect("add");
    assert_eq!(
        line_diff(&original, &readded),
        vec!["-\t\t\t\t<fullcopy>1</fullcopy>", "+\t\t\t\t<fullcopy>0</fullcopy>"]
    );
    let before = read_config(&original, Os::Windows).expect("before");
    let after = read_config(&readded, Os::Windows).expect("after");
    assert_eq!(after.mirrors, vec![win_def(false)]);
    assert_eq!(before.group_auto_start, after.group_auto_start);
    // Adding an identical md again changes nothing.
    let again = apply_changes_with_templates(
        &readded,
        &[ConfigChange::AddMirror(win_def(false))],
        &original_guids(),
        &[template],
    )
    .expect("again");
    assert_eq!(again, readded);
}

#[test]
fn windows_add_with_new_guids_changes_only_those_lines() {
    let original = fixture("clp-windows.conf");
    let mut guids = original_guids();
    guids.insert(
        srv("server1"),
        VolumeGuids {
            data: "11111111-aaaa-bbbb-cccc-000000000001".into(),
            cluster: "11111111-aaaa-bbbb-cccc-000000000002".into(),
        },
    );
    let out = apply_changes(&original, &[ConfigChange::AddMirror(win_def(true))], &guids).expect("add");
    insta::assert_debug_snapshot!(line_diff(&original, &out));
}

#[test]
fn windows_add_without_template_and_missing_guid() {
    let original = fixture("clp-windows.conf");
    let removed = apply_changes(&original, &[remove("md")], &GuidSource::new()).expect("remove");
    let mut partial = GuidSource::new();
    partial.insert(srv("server1"), VolumeGuids { data: "a".into(), cluster: "b".into() });
    let e = apply_changes(&removed, &[ConfigChange::AddMirror(win_def(false))], &partial).expect_err("server2 missing");
    assert_eq!(e, ConfError::MissingGuid("server2".into()));
    let readded = apply_changes(&removed, &[ConfigChange::AddMirror(win_def(false))], &original_guids()).expect("add");
    // Without a template the md element is minimal, but what mirrorctl models is back as it was.
    let before = read_config(&original, Os::Windows).expect("before");
    let after = read_config(&readded, Os::Windows).expect("after");
    assert_eq!(after.mirrors, vec![MdDefinition { initial_copy: false, ..before.mirrors[0].clone() }]);
    for (open, close) in
        [("<webmgr>", "</webmgr>"), ("<vendorext", "</vendorext>"), ("<script name", "<depend name=\"awsvip1\"/>")]
    {
        assert_eq!(element(&original, open, close), element(&readded, open, close), "{open}");
    }
    insta::assert_debug_snapshot!(line_diff(&removed, &readded));
    let again = apply_changes(&readded, &[ConfigChange::AddMirror(win_def(false))], &original_guids()).expect("again");
    assert_eq!(again, readded);
}

#[test]
fn linux_round_trip() {
    let original = fixture("clp-linux.conf");
    let template = MirrorTemplate::capture(&original, &res("md1")).expect("capture").expect("defined");
    let removed = apply_changes(&original, &[remove("md1"), auto(false)], &GuidSource::new()).expect("remove");
    insta::assert_debug_snapshot!("linux_remove_diff", line_diff(&original, &removed));
    for gone in ["<md name", "md@md1", "<object>md1", "<depend name=\"md1\"", "<types name=\"md"] {
        assert!(!removed.contains(gone), "{gone}: {removed}");
    }
    assert_eq!(
        element(&original, "<unknownfuture", "</unknownfuture>"),
        element(&removed, "<unknownfuture", "</unknownfuture>")
    );
    let readded = apply_changes_with_templates(
        &removed,
        &[ConfigChange::AddMirror(linux_def(false)), auto(true)],
        &GuidSource::new(),
        &[template],
    )
    .expect("add");
    // The fixture had no fullcopy (default 1) and no mkfs: both are inserted as last parameters,
    // mkfs off (clpcfset doc/linux/md.md: initial mkfs off when the disk already holds data).
    assert_eq!(line_diff(&original, &readded), vec!["+        <fullcopy>0</fullcopy>", "+        <mkfs>0</mkfs>"]);
    let cfg = read_config(&readded, Os::Linux).expect("read");
    assert_eq!(cfg.mirrors, vec![linux_def(false)]);
    // Without a template: a minimal element with the next free NMP device.
    let minimal =
        apply_changes(&removed, &[ConfigChange::AddMirror(linux_def(true))], &GuidSource::new()).expect("add");
    insta::assert_debug_snapshot!("linux_minimal_add_diff", line_diff(&removed, &minimal));
}

/// A Linux md captured with initial mkfs on comes back with it off, whatever the definition's
/// initial copy; an `mkfs` that cannot be set as text is refused.
#[test]
fn linux_re_add_turns_initial_mkfs_off() {
    let original = fixture("clp-linux.conf").replace(
        "        <fs>ext4</fs>\n",
        "        <fs>ext4</fs>\n        <mkfs>1</mkfs>\n        <fullcopy>1</fullcopy>\n",
    );
    let template = MirrorTemplate::capture(&original, &res("md1")).expect("capture").expect("defined");
    let removed = apply_changes(&original, &[remove("md1")], &GuidSource::new()).expect("remove");
    for initial_copy in [false, true] {
        let readded = apply_changes_with_templates(
            &removed,
            &[ConfigChange::AddMirror(linux_def(initial_copy))],
            &GuidSource::new(),
            std::slice::from_ref(&template),
        )
        .expect("add");
        let want = if initial_copy {
            vec!["-        <mkfs>1</mkfs>", "+        <mkfs>0</mkfs>"]
        } else {
            vec![
                "-        <mkfs>1</mkfs>",
                "-        <fullcopy>1</fullcopy>",
                "+        <mkfs>0</mkfs>",
                "+        <fullcopy>0</fullcopy>",
            ]
        };
        assert_eq!(line_diff(&original, &readded), want, "initial copy {initial_copy}");
    }
    // md still defined (AddMirror over it): mkfs is set too.
    let patched =
        apply_changes(&original, &[ConfigChange::AddMirror(linux_def(false))], &GuidSource::new()).expect("patch");
    assert!(patched.contains("<mkfs>0</mkfs>") && !patched.contains("<mkfs>1</mkfs>"), "{patched}");
    let odd = original.replace("<mkfs>1</mkfs>", "<mkfs><on/></mkfs>");
    let e = apply_changes(&odd, &[ConfigChange::AddMirror(linux_def(false))], &GuidSource::new()).expect_err("odd");
    assert!(e.to_string().contains("resource/md[md1]") && e.to_string().contains("mkfs"), "{e}");
}

#[test]
fn add_errors() {
    let original = fixture("clp-linux.conf");
    let mixed = MdDefinition { data_partition: Partition::Letter('M'), ..linux_def(true) };
    let e = apply_changes(&original, &[ConfigChange::AddMirror(mixed)], &GuidSource::new()).expect_err("mixed");
    assert_eq!(e, ConfError::MixedPartitions("md1".into()));
    let other = MdDefinition { group: grp("nosuch"), ..linux_def(true) };
    let e = apply_changes(&original, &[ConfigChange::AddMirror(other)], &GuidSource::new()).expect_err("group");
    assert_eq!(e.to_string(), "clp.conf has no group \"nosuch\"");
    let e = apply_changes(
        &original,
        &[ConfigChange::SetGroupAutoStart { group: grp("nosuch"), auto: true }],
        &GuidSource::new(),
    )
    .expect_err("group");
    assert_eq!(e, ConfError::UnknownGroup("nosuch".into()));
}

#[test]
fn add_to_another_group_moves_the_reference_and_start_is_inserted() {
    let original = fixture("clp-linux.conf");
    let moved = MdDefinition { group: grp("other"), ..linux_def(true) };
    let out = apply_changes(
        &original,
        &[ConfigChange::AddMirror(moved), ConfigChange::SetGroupAutoStart { group: grp("other"), auto: false }],
        &GuidSource::new(),
    )
    .expect("move");
    insta::assert_debug_snapshot!(line_diff(&original, &out));
    let cfg = read_config(&out, Os::Linux).expect("read");
    assert_eq!(cfg.mirrors[0].group, grp("other"));
    assert!(!cfg.group_auto_start[&grp("other")]);
    let _ = conf::DEFAULT_GROUP_AUTO_START;
}
