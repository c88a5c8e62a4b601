//! The CLUSTERPRO port over commands (`CommandCluster`): every method run through `LocalTransport`
//! and fake `clp*` executables backed by the simulated world (`support::fake_clp`); its errors
//! compared with the simulator's own port for the same situations; the clp.conf copies and md
//! templates it keeps in the state directory, across a "crash"; the Windows command text (golden,
//! PowerShell cannot run here) through a scripted transport; and a full Linux backup and restore
//! through the real reconcile loop with this port as the cluster, checked with the data oracle —
//! once over the local transport and once over the SSM transport and the fake SSM endpoint.
//!
//! Real tokio time (the fake tools are child processes): the worlds run `SPEED` times faster.

use crate::support;
use crate::support::common;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Lab, assert_backup_captured, assert_restored, example, with_backups, with_restore};
use mirrorctl::adapters::clusterpro::commands::{
    CommandCluster, CommandOptions, DETECTED, PENDING_RESUME, TEMP_PREFIX,
};
use mirrorctl::adapters::node::transport::{CommandOutput, Shell, Transport};
use mirrorctl::ids::{GroupName, ResourceName, ServerName};
use mirrorctl::plan::Action;
use mirrorctl::ports::cluster::{Cluster, ConfigChange, MdDefinition, ObjectState};
use mirrorctl::ports::{Clock as _, ErrorClass, PortResult, Ports};
use mirrorctl::reconcile::{Context, Settled, reconcile};
use mirrorctl::sim::{Scenario, SimWorld};
use mirrorctl::spec::{Os, Partition, Spec};
use support::fake_clp::FakeClp;

/// Model seconds per real second.
const SPEED: f64 = 100.0;

fn srv(s: &str) -> ServerName {
    ServerName::parse(s).expect("server")
}

fn res(s: &str) -> ResourceName {
    ResourceName::parse(s).expect("resource")
}

fn grp(s: &str) -> GroupName {
    GroupName::parse(s).expect("group")
}

/// A Linux world, its fake tools, a state directory and a node work directory.
struct Rig {
    world: Arc<SimWorld>,
    fake: Arc<FakeClp>,
    dir: tempfile::TempDir,
    spec: Spec,
}

impl Rig {
    /// A rig for `os`; on Windows the tools are installed in CLUSTERPRO's directory.
    async fn new(os: Os, seed: u64) -> Rig {
        Rig::installed(os, seed, "C:/Program Files/CLUSTERPRO/bin").await
    }

    /// A rig whose Windows servers have the tools in `windows_dir` (a drive path with `/`,
    /// mapped by [`PsShim`]); Linux servers keep them on `PATH`.
    async fn installed(os: Os, seed: u64, windows_dir: &str) -> Rig {
        let scenario = match os {
            Os::Linux => Scenario::linux(),
            Os::Windows => Scenario::windows_runbook(),
        };
        let world = SimWorld::new(scenario, seed, SPEED);
        let fake = Arc::new(FakeClp::start(world.clone()).await);
        if os == Os::Windows {
            for s in &world.scenario().servers {
                fake.relocate_tools(&s.name, windows_dir);
            }
        }
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir_all(dir.path().join("node-tmp")).expect("node tmp");
        Rig { world, fake, dir, spec: example(os) }
    }

    async fn linux(seed: u64) -> Rig {
        Rig::new(Os::Linux, seed).await
    }

    fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    fn node_tmp(&self) -> PathBuf {
        self.dir.path().join("node-tmp")
    }

    /// A new adapter instance (as after a process restart) on `state_dir`.
    /// On Windows, the adapter's PowerShell scripts run as sh through [`PsShim`].
    fn cmd_with_state(&self, state_dir: &Path) -> CommandCluster {
        let os = self.spec.cluster.os;
        let mut options = CommandOptions::for_os(os);
        options.work_dir = self.node_tmp().display().to_string();
        options.query_timeout = Duration::from_mins(1);
        options.operation_timeout = Duration::from_mins(2);
        let transport = match os {
            Os::Linux => self.fake.transport(),
            Os::Windows => Arc::new(PsShim {
                inner: self.fake.transport(),
                root: options.work_dir.clone(),
                fake: self.fake.clone(),
            }),
        };
        CommandCluster::with_options(&self.spec.cluster, transport, state_dir, options)
    }

    fn cmd(&self) -> CommandCluster {
        self.cmd_with_state(&self.state_dir())
    }

    fn sim(&self) -> Arc<dyn Cluster> {
        self.world.ports().cluster
    }

    fn group(&self) -> GroupName {
        self.spec.mirror.group.clone()
    }

    fn md(&self) -> ResourceName {
        self.spec.mirror.resource.clone()
    }

    fn node(&self, i: usize) -> ServerName {
        self.spec.cluster.servers[i].name.clone()
    }

    fn add_md(&self, initial_copy: bool) -> ConfigChange {
        ConfigChange::AddMirror(MdDefinition {
            resource: self.md(),
            group: self.group(),
            data_partition: self.spec.mirror.data_partition.clone(),
            cluster_partition: self.spec.mirror.cluster_partition.clone(),
            initial_copy,
        })
    }

    fn remove_md(&self) -> Vec<ConfigChange> {
        vec![
            ConfigChange::RemoveMirror { resource: self.md() },
            ConfigChange::SetGroupAutoStart { group: self.group(), auto: false },
        ]
    }

    fn re_add_md(&self) -> Vec<ConfigChange> {
        vec![self.add_md(false), ConfigChange::SetGroupAutoStart { group: self.group(), auto: true }]
    }

    /// The files in the cluster's clp.conf copy directory, by name, with their bytes.
    fn copies(&self, state_dir: &Path) -> BTreeMap<String, Vec<u8>> {
        let dir = mirrorctl::adapters::clusterpro::commands::conf_dir(state_dir, &self.spec.cluster.name);
        let Ok(entries) = std::fs::read_dir(&dir) else { return BTreeMap::new() };
        entries
            .map(|e| e.expect("entry"))
            .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap_or_default()))
            .collect()
    }

    async fn sleep_model(&self, secs: u64) {
        self.world.clock().sleep(Duration::from_secs(secs)).await;
    }
}

fn named<'a>(copies: &'a BTreeMap<String, Vec<u8>>, suffix: &str) -> Vec<(&'a String, String)> {
    copies
        .iter()
        .filter(|(n, _)| n.ends_with(suffix))
        .map(|(n, b)| (n, String::from_utf8_lossy(b).into_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_port_method_runs_through_the_fake_commands() {
    let rig = Rig::linux(11).await;
    let cmd = rig.cmd();
    let sim = rig.sim();
    let (g, md, n1, n2) = (rig.group(), rig.md(), rig.node(0), rig.node(1));

    // Reads agree with the simulator's own port.
    assert_eq!(cmd.status().await.expect("status"), sim.status().await.expect("sim status"));
    // The version comes from the node's package database, which the fake machine does not
    // have: unreadable (so `auto` takes the configuration edit).
    let sim_config = sim.config().await.expect("sim config");
    assert_eq!(
        cmd.config().await.expect("config"),
        mirrorctl::ports::cluster::ClusterConfig { version: None, ..sim_config }
    );
    let colors = cmd.mirror_status(&md).await.expect("mirror status");
    assert!(colors.healthy(), "{colors:?}");
    assert_eq!(colors, sim.mirror_status(&md).await.expect("sim mirror"));

    // Each operation acts on the simulated cluster.
    cmd.stop_resource(&md).await.expect("stop md");
    let st = sim.status().await.expect("status");
    assert_eq!(st.resources[&md].state, ObjectState::Offline);
    let business = rig.world.scenario().business;
    assert_eq!(st.resources[&business].state, ObjectState::Offline, "stopping md stopped what depends on it");
    assert_eq!(st.groups[&g].state, ObjectState::Online, "the group's virtual IP does not depend on md");
    cmd.start_resource(&md, &n1).await.expect("start md");
    assert_eq!(sim.status().await.expect("status").resources[&md].current.as_ref(), Some(&n1));
    cmd.start_resource(&rig.world.scenario().business, &n1).await.expect("start the business resource");
    cmd.stop_group(&g).await.expect("stop group");
    assert_eq!(sim.status().await.expect("status").groups[&g].state, ObjectState::Offline);
    cmd.start_group(&g, &n1).await.expect("start group");
    cmd.move_group(&g, &n2).await.expect("move group");
    let st = sim.status().await.expect("status");
    assert_eq!((st.groups[&g].state, st.groups[&g].current.as_ref()), (ObjectState::Online, Some(&n2)));
    // The destination is named with -a (clpaic `move_group`); -h would only pick the server that
    // handles the request, leaving the destination to the failover policy.
    let moves: Vec<String> =
        rig.fake.log().into_iter().map(|(_, l)| l).filter(|l| l.starts_with("clpgrp -m")).collect();
    assert_eq!(moves, vec![format!("clpgrp -m {g} -a {n2}")]);

    // clpdown runs on the server it shuts down; afterwards that server cannot be reached and the
    // other one answers.
    cmd.shutdown_server(&n1).await.expect("shutdown node1");
    assert!(rig.fake.log().contains(&(n1.to_string(), "clpdown".to_owned())), "{:?}", rig.fake.log());
    assert!(!rig.fake.reachable(&n1));
    let st = cmd.status().await.expect("status from node2");
    assert_eq!(st.servers.get(&n1), Some(&false));
    assert_eq!(st, sim.status().await.expect("sim status"));

    // The commands' temporary directories on the node are gone.
    assert_eq!(std::fs::read_dir(rig.node_tmp()).expect("node tmp").count(), 0);
}

/// An operation answers with the cluster it left: `clpstat` runs in the operation's own script,
/// right after the command, on the node that ran it; a push answers with what the resume left.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operation_answers_with_the_clpstat_its_own_script_ran_after_it() {
    for rig in [Rig::linux(12).await, Rig::new(Os::Windows, 12).await] {
        let cmd = rig.cmd();
        let g = rig.group();
        let from = rig.fake.log().len();
        let left = cmd.stop_group(&g).await.expect("stop group");
        let st = left.status.expect("the stop answers with the status it left");
        assert_eq!(st.groups[&g].state, ObjectState::Offline);
        assert_eq!(st, rig.sim().status().await.expect("sim status"));
        let log = rig.fake.log()[from..].to_vec();
        let stop = log.iter().position(|(_, l)| l.starts_with("clpgrp -t")).expect("clpgrp -t ran");
        assert_eq!(log.get(stop + 1), Some(&(log[stop].0.clone(), "clpstat".to_owned())), "{log:?}");
        assert_eq!(log.len(), stop + 2, "nothing ran after the stop's own script: {log:?}");

        let manual = [ConfigChange::SetGroupAutoStart { group: g.clone(), auto: false }];
        let left = cmd.apply_config(&manual).await.expect("push");
        assert_eq!(left.status, Some(rig.sim().status().await.expect("sim status")), "the resume's status");
        assert_eq!(left.config, None, "the configuration is not read back: the next pass pulls it");
        let last = rig.fake.log().into_iter().map(|(_, l)| l).collect::<Vec<_>>();
        assert_eq!(last[last.len() - 2..], ["clpcl --resume".to_owned(), "clpstat".to_owned()], "{last:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_changes_keep_copies_and_re_add_md_as_it_was() {
    let rig = Rig::linux(12).await;
    let cmd = rig.cmd();
    cmd.stop_group(&rig.group()).await.expect("stop group");

    cmd.apply_config(&rig.remove_md()).await.expect("remove md");
    let config = rig.sim().config().await.expect("config");
    assert!(config.mirrors.is_empty());
    assert_eq!(config.group_auto_start.get(&rig.group()), Some(&false));
    assert_eq!(
        (rig.fake.count("clpcfctrl --push"), rig.fake.count("clpcl --suspend"), rig.fake.count("clpcl --resume")),
        (1, 1, 1)
    );
    assert!(!rig.fake.suspended());

    let copies = rig.copies(&rig.state_dir());
    let pulled = named(&copies, "-pulled.conf");
    let pushed = named(&copies, "-pushed.conf");
    assert_eq!((pulled.len(), pushed.len()), (1, 1), "{:?}", copies.keys());
    assert!(pulled[0].1.contains("<md name=\"md1\">"), "the pulled copy is the file before the edit");
    assert!(!pushed[0].1.contains("<md name=") && pushed[0].1.contains("<start>0</start>"));
    assert!(copies.contains_key("template-md1.json"));
    assert!(!copies.contains_key(PENDING_RESUME));
    let first_pull = (pulled[0].0.clone(), pulled[0].1.clone());

    // The same change again: pulled and kept, nothing pushed, nothing overwritten.
    cmd.apply_config(&rig.remove_md()).await.expect("remove md again");
    assert_eq!(rig.fake.count("clpcfctrl --push"), 1, "nothing to push");
    let copies = rig.copies(&rig.state_dir());
    assert_eq!((named(&copies, "-pulled.conf").len(), named(&copies, "-pushed.conf").len()), (2, 1));
    assert_eq!(String::from_utf8_lossy(&copies[&first_pull.0]), first_pull.1, "an earlier copy is never rewritten");

    // Re-add without the initial copy: the fake refuses an md without its mirror connection,
    // mount point, monitors or the business resource's dependency, so this proves the template.
    cmd.apply_config(&rig.re_add_md()).await.expect("re-add md");
    let config = rig.sim().config().await.expect("config");
    let def = config.mirror(&rig.md()).expect("md is back");
    assert!(!def.initial_copy);
    assert_eq!(config.group_auto_start.get(&rig.group()), Some(&true));
    let copies = rig.copies(&rig.state_dir());
    let pushed = named(&copies, "-pushed.conf");
    assert_eq!(pushed.len(), 2);
    let last = &pushed.iter().max_by_key(|(n, _)| n.as_str()).expect("pushed").1;
    for piece in ["<fullcopy>0</fullcopy>", "<depend name=\"md1\"/>", "<mdcname>mdc1</mdcname>", "<fs>ext4</fs>"] {
        assert!(last.contains(piece), "{piece} missing from the pushed file:\n{last}");
    }
    assert!(rig.world.oracle_report().corruptions.is_empty());
    assert_eq!(std::fs::read_dir(rig.node_tmp()).expect("node tmp").count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_template_survives_a_crash_between_the_two_pushes() {
    let rig = Rig::linux(13).await;
    {
        let first = rig.cmd();
        first.stop_group(&rig.group()).await.expect("stop group");
        first.apply_config(&rig.remove_md()).await.expect("remove md");
    } // the process dies here

    // Without the state directory, the md cannot come back as it was: a human must act, and the
    // message says where the pulled copies are.
    let elsewhere = rig.dir.path().join("other-state");
    let e = rig.cmd_with_state(&elsewhere).apply_config(&rig.re_add_md()).await.expect_err("no template");
    assert_eq!((e.code.as_str(), e.class), ("MirrorTemplateMissing", ErrorClass::NeedsHuman));
    let conf_dir = mirrorctl::adapters::clusterpro::commands::conf_dir(&elsewhere, &rig.spec.cluster.name);
    assert!(e.message.contains(&conf_dir.display().to_string()) && e.message.contains("-pulled.conf"), "{e}");
    assert_eq!(rig.fake.count("clpcfctrl --push"), 1, "nothing pushed without the template");

    // A new process on the same state directory re-adds md from the persisted template.
    let second = rig.cmd();
    second.apply_config(&rig.re_add_md()).await.expect("re-add md after the restart");
    let config = rig.sim().config().await.expect("config");
    assert_eq!(config.mirror(&rig.md()).map(|m| m.initial_copy), Some(false));
    second.start_group(&rig.group(), &rig.node(0)).await.expect("group starts with md");
    assert!(second.mirror_status(&rig.md()).await.expect("mirror").healthy());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_left_without_resume_is_completed_by_the_next_call() {
    let rig = Rig::linux(14).await;
    let first = rig.cmd();
    first.stop_group(&rig.group()).await.expect("stop group");
    rig.fake.fail_next("clpcl --resume", 1);
    let e = first.apply_config(&rig.remove_md()).await.expect_err("resume fails");
    assert_eq!((e.code.as_str(), e.class), ("ClusterResumeFailed", ErrorClass::Retryable));
    assert!(e.message.contains("clpcl --resume") && e.message.contains("injected by the test"), "{e}");
    assert!(rig.fake.suspended());
    assert!(rig.copies(&rig.state_dir()).contains_key(PENDING_RESUME));
    // While suspended, CLUSTERPRO refuses group operations: the planner's next step would fail.
    drop(first);

    let second = rig.cmd();
    second.start_group(&rig.group(), &rig.node(0)).await.expect("resumes, then starts the group");
    assert!(!rig.fake.suspended());
    assert!(!rig.copies(&rig.state_dir()).contains_key(PENDING_RESUME));
    assert_eq!(rig.fake.count("clpcl --resume"), 2);
    let st = rig.sim().status().await.expect("status");
    assert_eq!(st.groups[&rig.group()].state, ObjectState::Online);
}

/// Runs `call` against the simulator's port, then the command port, on the same world, and checks
/// both fail with `expect` (code, class).
async fn agree<T: std::fmt::Debug>(
    what: &str,
    ports: [&dyn Cluster; 2],
    call: impl AsyncFn(&dyn Cluster) -> PortResult<T>,
    expect: (&str, ErrorClass),
) {
    let want = Some((expect.0.to_owned(), expect.1));
    for (port, name) in ports.into_iter().zip(["the simulator", "the command port"]) {
        let got = call(port).await;
        assert_eq!(got.as_ref().err().map(|e| (e.code.clone(), e.class)), want, "{what}: {name} said {got:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_with_the_group_online_are_the_simulators() {
    let rig = Rig::linux(15).await;
    let (cmd, sim) = (rig.cmd(), rig.sim());
    let both: [&dyn Cluster; 2] = [sim.as_ref(), &cmd];
    let (g, md, n1, n2) = (rig.group(), rig.md(), rig.node(0), rig.node(1));
    let (nosuch, ghost, nores) = (grp("nosuch"), srv("ghost"), res("nores"));
    let business = rig.world.scenario().business;
    let (done, nh) = (ErrorClass::AlreadyDone, ErrorClass::NeedsHuman);
    let remove = rig.remove_md();
    let unknown_start = vec![ConfigChange::SetGroupAutoStart { group: nosuch.clone(), auto: true }];

    agree("start where online", both, async |p| p.start_group(&g, &n1).await, ("GroupAlreadyStarted", done)).await;
    agree("start elsewhere", both, async |p| p.start_group(&g, &n2).await, ("GroupOnline", nh)).await;
    agree("unknown group", both, async |p| p.start_group(&nosuch, &n1).await, ("GroupNotFound", nh)).await;
    agree("unknown server", both, async |p| p.start_group(&g, &ghost).await, ("ServerNotFound", nh)).await;
    agree("move where online", both, async |p| p.move_group(&g, &n1).await, ("GroupAlreadyStarted", done)).await;
    agree("md started", both, async |p| p.start_resource(&md, &n1).await, ("ResourceAlreadyStarted", done)).await;
    agree("md elsewhere", both, async |p| p.start_resource(&md, &n2).await, ("ResourceOnline", nh)).await;
    agree("unknown resource", both, async |p| p.stop_resource(&nores).await, ("ResourceNotFound", nh)).await;
    agree("mirror of a non-md", both, async |p| p.mirror_status(&business).await, ("ResourceNotFound", nh)).await;
    agree("shutdown the active", both, async |p| p.shutdown_server(&n1).await, ("GroupOnline", nh)).await;
    agree("remove md while online", both, async |p| p.apply_config(&remove).await, ("GroupOnline", nh)).await;
    agree("unknown group's start", both, async |p| p.apply_config(&unknown_start).await, ("GroupNotFound", nh)).await;
    assert_eq!(rig.fake.count("clpcfctrl --push"), 0, "refused pushes never reach clpcfctrl");
    assert_eq!(rig.fake.count("clpgrp"), 0, "refused group operations never reach clpgrp");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_with_the_group_offline_or_a_server_down_are_the_simulators() {
    let rig = Rig::linux(19).await;
    let (cmd, sim) = (rig.cmd(), rig.sim());
    let both: [&dyn Cluster; 2] = [sim.as_ref(), &cmd];
    let (g, md, n2) = (rig.group(), rig.md(), rig.node(1));
    let (done, nh) = (ErrorClass::AlreadyDone, ErrorClass::NeedsHuman);
    let remove = rig.remove_md();

    cmd.stop_group(&g).await.expect("stop group");
    agree("stop when offline", both, async |p| p.stop_group(&g).await, ("GroupAlreadyStopped", done)).await;
    agree("stop md when offline", both, async |p| p.stop_resource(&md).await, ("ResourceAlreadyStopped", done)).await;
    agree("move when offline", both, async |p| p.move_group(&g, &n2).await, ("GroupOffline", nh)).await;

    cmd.shutdown_server(&n2).await.expect("shutdown node2");
    let down = ErrorClass::Retryable;
    agree("push with a server down", both, async |p| p.apply_config(&remove).await, ("ServerDown", down)).await;
    agree("shutdown twice", both, async |p| p.shutdown_server(&n2).await, ("ServerAlreadyDown", done)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_that_fails_to_start_is_needs_human_with_the_commands_message() {
    let rig = Rig::linux(16).await;
    let (cmd, sim) = (rig.cmd(), rig.sim());
    let (g, n2) = (rig.group(), rig.node(1));
    cmd.stop_group(&g).await.expect("stop group");
    // node2 loses its mirror disk: md cannot start there.
    let ports = rig.world.ports();
    let vol = rig.world.mirror_volume(&n2).expect("node2 mirror volume");
    ports.node.set_offline(&n2, &vol).await.expect("offline");
    ports.cloud.detach_volume(&vol, &rig.spec.cluster.servers[1].instance).await.expect("detach");
    rig.sleep_model(20).await;
    assert_eq!(rig.world.mirror_volume(&n2), None);

    let e = cmd.start_group(&g, &n2).await.expect_err("md cannot start on node2");
    assert_eq!((e.code.as_str(), e.class), ("GroupStartFailed", ErrorClass::NeedsHuman));
    assert!(e.message.contains("`clpgrp -s failover1 -h node2` on node1"), "{e}");
    assert!(e.message.contains("node2 has no disk attached"), "the command's own message: {e}");
    let st = sim.status().await.expect("status");
    assert_eq!(st.groups[&g].state, ObjectState::OnlineFailure);
    let s = sim.start_group(&g, &n2).await.expect_err("the simulator agrees");
    assert_eq!((s.code.as_str(), s.class), ("GroupStartFailed", ErrorClass::NeedsHuman));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_is_not_a_member_is_skipped() {
    let rig = Rig::linux(17).await;
    let cmd = rig.cmd();
    let (n1, n2) = (rig.node(0), rig.node(1));
    rig.fake.stop_service(&n1);
    let st = cmd.status().await.expect("status via node2");
    assert_eq!(st, rig.sim().status().await.expect("sim status"));
    cmd.mirror_status(&rig.md()).await.expect("mirror status via node2");
    let log = rig.fake.log();
    assert_eq!(log[0], (n1.to_string(), "clpstat".to_owned()), "{log:?}");
    assert_eq!(log[1], (n2.to_string(), "clpstat".to_owned()), "{log:?}");
    // node2 answered last: it is asked first from now on.
    assert!(log[2..].iter().all(|(s, _)| *s == n2.to_string()), "{log:?}");

    // Nobody answering is retryable.
    rig.fake.stop_service(&n2);
    let e = cmd.status().await.expect_err("no member answers");
    assert_eq!((e.code.as_str(), e.class), ("ClusterUnreachable", ErrorClass::Retryable));
    assert!(e.message.contains("node1") && e.message.contains("node2") && e.message.contains("cluster service"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_command_falls_back_then_needs_a_human() {
    let rig = Rig::linux(18).await;
    let cmd = rig.cmd();
    let (n1, n2) = (rig.node(0), rig.node(1));
    rig.fake.remove_tool(&n1, "clpmdstat");
    assert!(cmd.mirror_status(&rig.md()).await.expect("via node2").healthy());
    rig.fake.remove_tool(&n2, "clpmdstat");
    let e = cmd.mirror_status(&rig.md()).await.expect_err("missing everywhere");
    assert_eq!((e.code.as_str(), e.class), ("ClpCommandNotFound", ErrorClass::NeedsHuman));
    assert!(e.message.contains("clpmdstat") && e.message.contains("not found"), "{e}");

    rig.fake.remove_tool(&n1, "clpgrp");
    rig.fake.remove_tool(&n2, "clpgrp");
    let e = cmd.stop_group(&rig.group()).await.expect_err("clpgrp missing");
    assert_eq!((e.code.as_str(), e.class), ("ClpCommandNotFound", ErrorClass::NeedsHuman));
}

/// `clpmdstat -l` prints md names in angle brackets (NEC's shape, which the fake prints): a
/// transient `clpmdstat -m` failure of a listed md is retryable, and only an md the list lacks is
/// `ResourceNotFound`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_clpmdstat_of_a_listed_md_is_retryable() {
    let rig = Rig::linux(19).await;
    let cmd = rig.cmd();
    rig.fake.fail_next("clpmdstat -m", 1);
    let e = cmd.mirror_status(&rig.md()).await.expect_err("injected failure");
    assert_eq!((e.code.as_str(), e.class), ("MirrorStatusFailed", ErrorClass::Retryable), "{e}");
    assert!(rig.fake.count("clpmdstat -l") >= 1, "{:?}", rig.fake.log());
    let e = cmd.mirror_status(&res("nosuchmd")).await.expect_err("not an md");
    assert_eq!((e.code.as_str(), e.class), ("ResourceNotFound", ErrorClass::NeedsHuman), "{e}");
    assert!(cmd.mirror_status(&rig.md()).await.expect("again").healthy());
}

/// Each server's tools in their own file system: `/opt/nec/clusterpro/bin` in the scripts is
/// mapped under [`FakeClp::node_root`]; counts the install-directory detections.
struct Rooted {
    inner: Arc<dyn Transport>,
    fake: Arc<FakeClp>,
    detections: Mutex<Vec<ServerName>>,
}

#[async_trait::async_trait]
impl Transport for Rooted {
    async fn run(
        &self,
        server: &ServerName,
        shell: Shell,
        script: &str,
        timeout: Duration,
    ) -> PortResult<CommandOutput> {
        if script.contains(DETECTED) {
            self.detections.lock().expect("detections").push(server.clone());
        }
        let root = format!("{}/opt/nec/clusterpro/bin", self.fake.node_root(server).display());
        self.inner.run(server, shell, &script.replace("/opt/nec/clusterpro/bin", &root), timeout).await
    }
    async fn read_file(&self, server: &ServerName, shell: Shell, path: &Path) -> PortResult<Vec<u8>> {
        self.inner.read_file(server, shell, path).await
    }
    async fn write_file(&self, server: &ServerName, shell: Shell, path: &Path, bytes: &[u8]) -> PortResult<()> {
        self.inner.write_file(server, shell, path, bytes).await
    }
}

/// Linux: without `cluster.install_dir`, each server's commands are found once, in
/// `/opt/nec/clusterpro/bin` or else on `PATH`, and remembered per server; a server whose
/// commands vanish is looked at again; when no place holds them anywhere the error is
/// `ClpCommandNotFound` naming every place tried. With `cluster.install_dir`, nothing is detected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_install_directory_is_found_per_server_and_remembered() {
    let rig = Rig::linux(21).await;
    let (n1, n2) = (rig.node(0), rig.node(1));
    rig.fake.relocate_tools(&n1, "opt/nec/clusterpro/bin");
    let rooted = Arc::new(Rooted { inner: rig.fake.transport(), fake: rig.fake.clone(), detections: Mutex::default() });
    let mut options = CommandOptions::for_os(Os::Linux);
    options.work_dir = rig.node_tmp().display().to_string();
    let cmd = CommandCluster::with_options(&rig.spec.cluster, rooted.clone(), &rig.state_dir(), options.clone());
    cmd.status().await.expect("status from node1's /opt/nec/clusterpro/bin");
    assert!(cmd.mirror_status(&rig.md()).await.expect("mirror").healthy());
    rig.fake.stop_service(&n1);
    cmd.status().await.expect("status from node2's PATH");
    cmd.config().await.expect("config from node2");
    assert_eq!(*rooted.detections.lock().expect("d"), vec![n1.clone(), n2.clone()], "once per server");

    // node2's commands move to /opt/nec/clusterpro/bin: found again after a miss.
    rig.fake.relocate_tools(&n2, "opt/nec/clusterpro/bin");
    cmd.status().await.expect("found again");
    assert_eq!(rooted.detections.lock().expect("d").len(), 3, "looked again after the miss, in the same call");

    // Nowhere at all.
    for s in [&n1, &n2] {
        for tool in support::fake_clp::TOOLS {
            rig.fake.remove_tool(s, tool);
        }
    }
    let e = cmd.status().await.expect_err("not installed");
    assert_eq!((e.code.as_str(), e.class), ("ClpCommandNotFound", ErrorClass::NeedsHuman), "{e}");
    assert!(e.message.contains("/opt/nec/clusterpro/bin, PATH") && e.message.contains("install_dir"), "{e}");

    // A configured directory is used as is on every server, without detection.
    let mut spec = rig.spec.cluster.clone();
    spec.install_dir = Some("/nonexistent/clp/bin".to_owned());
    let before = rooted.detections.lock().expect("d").len();
    let fixed = CommandCluster::with_options(&spec, rooted.clone(), &rig.state_dir(), options);
    let e = fixed.status().await.expect_err("nothing there");
    assert_eq!(e.code, "ClpCommandNotFound", "{e}");
    assert!(e.message.contains("/nonexistent/clp/bin/clpstat"), "{e}");
    assert_eq!(rooted.detections.lock().expect("d").len(), before);
}

// ---------------------------------------------------------------------------------------------
// Windows: the command text, through a scripted transport.

/// Answers each script like a Windows node would, and records what it was sent.
struct Scripted {
    clpstat: Mutex<String>,
    conf: Mutex<String>,
    log: Mutex<Vec<String>>,
    /// Volume GUIDs by (server, letter) that differ from [`new_guid`] (the disks before a restore).
    guids: Mutex<BTreeMap<(String, char), String>>,
}

impl Scripted {
    fn new() -> Scripted {
        Scripted {
            clpstat: Mutex::new(fixture("clpstat-windows-online.txt")),
            conf: Mutex::new(fixture("clp-windows.conf")),
            log: Mutex::new(Vec::new()),
            guids: Mutex::new(BTreeMap::new()),
        }
    }
    fn note(&self, line: String) {
        self.log.lock().expect("log").push(line);
    }
}

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/clusterpro/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The GUID the scripted `Win32_Volume` query prints for a server's letter after the restore.
fn new_guid(server: &str, letter: char) -> String {
    let n = if server == "server1" { 1 } else { 2 };
    let l = u32::from(letter);
    format!("{n}{l:07x}-aaaa-bbbb-cccc-dddddddddddd")
}

#[async_trait::async_trait]
impl Transport for Scripted {
    async fn run(&self, server: &ServerName, shell: Shell, script: &str, _t: Duration) -> PortResult<CommandOutput> {
        assert_eq!(shell, Shell::PowerShell);
        self.note(format!("## run on {server}\n{}", script.replace("\r\n", "\n")));
        let stdout = if let Some(list) = script.lines().find_map(|l| l.strip_prefix("foreach ($e in @(")) {
            // The preflight's tools check (`tool:file` pairs): every tool installed, version 5.1.
            let tools = list.trim_end_matches(")) {").split(", ").map(|t| t.trim_matches('\''));
            let mut out = String::new();
            for e in tools {
                let (t, f) = e.split_once(':').expect("tool:file");
                let _ = write!(out, "present {t} C:\\Program Files\\CLUSTERPRO\\bin\\{f}\r\n");
            }
            out.push_str("version 5.1.0\r\n");
            out
        } else if script.contains(DETECTED) {
            // CLUSTERPRO's directory, the first place tried.
            format!("{DETECTED} 0\r\n")
        } else if script.contains("clpstat.exe") {
            self.clpstat.lock().expect("clpstat").clone()
        } else if script.contains("clpmdstat.exe") {
            fixture("clpmdstat-m-windows-recovering.txt")
        } else if script.contains("Win32_Volume") {
            let letter = script.split("DriveLetter = '").nth(1).and_then(|r| r.chars().next()).expect("letter");
            let known = self.guids.lock().expect("guids").get(&(server.to_string(), letter)).cloned();
            format!("\\\\?\\Volume{{{}}}\\\r\n", known.unwrap_or_else(|| new_guid(server.as_str(), letter)))
        } else if script.contains(".exe") {
            "Command succeeded.\r\n".to_owned()
        } else {
            String::new()
        };
        Ok(CommandOutput { exit_code: 0, stdout, stderr: String::new() })
    }
    async fn read_file(&self, server: &ServerName, _shell: Shell, path: &Path) -> PortResult<Vec<u8>> {
        self.note(format!("## read {} on {server}\n", path.display()));
        Ok(self.conf.lock().expect("conf").clone().into_bytes())
    }
    async fn write_file(&self, server: &ServerName, _shell: Shell, path: &Path, bytes: &[u8]) -> PortResult<()> {
        self.note(format!("## write {} on {server} ({} bytes)\n", path.display(), bytes.len()));
        *self.conf.lock().expect("conf") = String::from_utf8(bytes.to_vec()).expect("utf-8");
        Ok(())
    }
}

/// The log with the random temporary directory names made stable.
fn stable(log: &[String]) -> String {
    let text = log.join("");
    let mut out = String::new();
    let mut rest = text.as_str();
    while let Some(i) = rest.find(TEMP_PREFIX) {
        let end = i + TEMP_PREFIX.len();
        out.push_str(&rest[..end]);
        out.push_str("XXXXXXXX");
        rest = &rest[(end + 8).min(rest.len())..];
    }
    out.push_str(rest);
    out
}

#[tokio::test]
async fn windows_command_text_golden() {
    let spec = example(Os::Windows);
    let dir = tempfile::tempdir().expect("state");
    let node = Arc::new(Scripted::new());
    let cmd = CommandCluster::new(&spec.cluster, node.clone(), dir.path());
    let (g, md) = (spec.mirror.group.clone(), spec.mirror.resource.clone());
    let (s1, s2) = (spec.cluster.servers[0].name.clone(), spec.cluster.servers[1].name.clone());

    // Group online on server1.
    cmd.status().await.expect("status");
    cmd.mirror_status(&md).await.expect("mirror");
    cmd.config().await.expect("config");
    cmd.move_group(&g, &s2).await.expect("move");
    cmd.stop_resource(&md).await.expect("stop md");
    cmd.shutdown_server(&s2).await.expect("shutdown");
    cmd.stop_group(&g).await.expect("stop group");
    // Group offline.
    *node.clpstat.lock().expect("clpstat") = fixture("clpstat-windows-group-offline.txt");
    cmd.start_resource(&md, &s1).await.expect("start md");
    cmd.start_group(&g, &s1).await.expect("start group");
    let before = node.log.lock().expect("log").len();
    let remove = vec![
        ConfigChange::RemoveMirror { resource: md.clone() },
        ConfigChange::SetGroupAutoStart { group: g.clone(), auto: false },
    ];
    cmd.apply_config(&remove).await.expect("remove md");
    let removed = node.conf.lock().expect("conf").clone();
    assert!(!removed.contains("<md name=") && removed.contains("<start>0</start>"));
    let add = vec![
        ConfigChange::AddMirror(MdDefinition {
            resource: md.clone(),
            group: g.clone(),
            data_partition: Partition::Letter('M'),
            cluster_partition: Partition::Letter('R'),
            initial_copy: false,
        }),
        ConfigChange::SetGroupAutoStart { group: g.clone(), auto: true },
    ];
    cmd.apply_config(&add).await.expect("re-add md");

    let log = node.log.lock().expect("log").clone();
    insta::assert_snapshot!("windows_operations", stable(&log[..before]));
    insta::assert_snapshot!("windows_config_cycle", stable(&log[before..]));

    // The re-added md is the original one with fullcopy 0 and the GUIDs captured now; nothing
    // else in the file changed.
    let original = fixture("clp-windows.conf");
    let now = node.conf.lock().expect("conf").clone();
    let diff: Vec<String> = similar::TextDiff::from_lines(&original, &now)
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .map(|c| format!("{}{}", if c.tag() == similar::ChangeTag::Delete { '-' } else { '+' }, c.value().trim_end()))
        .collect();
    assert_eq!(
        diff,
        vec![
            "-\t\t\t\t<fullcopy>1</fullcopy>".to_owned(),
            "+\t\t\t\t<fullcopy>0</fullcopy>".to_owned(),
            "-\t\t\t\t\t<volumeguid>0a1b2c3d-0000-1111-2222-333344445555</volumeguid>".to_owned(),
            "-\t\t\t\t\t<cpvolumeguid>0a1b2c3d-6666-7777-8888-99990000aaaa</cpvolumeguid>".to_owned(),
            format!("+\t\t\t\t\t<volumeguid>{}</volumeguid>", new_guid("server1", 'M')),
            format!("+\t\t\t\t\t<cpvolumeguid>{}</cpvolumeguid>", new_guid("server1", 'R')),
            "-\t\t\t\t\t<volumeguid>5f6e7d8c-0000-1111-2222-333344445555</volumeguid>".to_owned(),
            "-\t\t\t\t\t<cpvolumeguid>5f6e7d8c-6666-7777-8888-99990000aaaa</cpvolumeguid>".to_owned(),
            format!("+\t\t\t\t\t<volumeguid>{}</volumeguid>", new_guid("server2", 'M')),
            format!("+\t\t\t\t\t<cpvolumeguid>{}</cpvolumeguid>", new_guid("server2", 'R')),
        ],
        "{now}"
    );
}

/// The backup's combined step on Windows: one script on the active server runs `clpdown -h` for
/// the standby, reads `clpstat` until the standby shows out of the cluster, then starts.
#[tokio::test]
async fn windows_leave_then_start_is_one_script_on_the_active() {
    use mirrorctl::ports::cluster::Start;
    let spec = example(Os::Windows);
    let dir = tempfile::tempdir().expect("state");
    let node = Arc::new(Scripted::new());
    let cmd = CommandCluster::new(&spec.cluster, node.clone(), dir.path());
    let (md, s1, s2) =
        (spec.mirror.resource.clone(), spec.cluster.servers[0].name.clone(), spec.cluster.servers[1].name.clone());
    // md stopped (the quiesce), both servers members; server1 leaves, md starts on server2.
    *node.clpstat.lock().expect("clpstat") = fixture("clpstat-windows-group-offline.txt");
    let (s1, s2) = (s2, s1);
    let before = node.log.lock().expect("log").len();
    assert!(cmd.can_leave_then_start());
    cmd.leave_then_start(&s2, &Start::Resource { resource: md, server: s1.clone() }).await.expect("leave then start");
    let log = node.log.lock().expect("log").clone();
    let runs: Vec<&String> = log[before..].iter().filter(|l| l.contains("clpdown")).collect();
    assert_eq!(runs.len(), 1, "{log:#?}");
    assert!(runs[0].starts_with(&format!("## run on {s1}\n")), "on the active: {}", runs[0]);
    insta::assert_snapshot!("windows_leave_then_start", stable(&log[before..]));
}

/// Windows preflight: the re-add's own method of reading volume GUIDs (`Win32_Volume`), run on
/// today's disks, must reproduce what today's `clp.conf` holds for each server; a derivation that
/// does not is refused before anything changes, naming the server and both values.
#[tokio::test]
async fn windows_preflight_checks_the_guid_method_against_clp_conf() {
    use mirrorctl::ports::cluster::{Operation, PreflightRequest};
    let spec = example(Os::Windows);
    let dir = tempfile::tempdir().expect("state");
    let node = Arc::new(Scripted::new());
    let today = [
        ("server1", 'M', "0a1b2c3d-0000-1111-2222-333344445555"),
        ("server1", 'R', "0a1b2c3d-6666-7777-8888-99990000aaaa"),
        ("server2", 'M', "5f6e7d8c-0000-1111-2222-333344445555"),
        ("server2", 'R', "5f6e7d8c-6666-7777-8888-99990000aaaa"),
    ];
    for (s, l, g) in today {
        node.guids.lock().expect("guids").insert((s.to_owned(), l), g.to_ascii_uppercase());
    }
    let cmd = CommandCluster::new(&spec.cluster, node.clone(), dir.path());
    let (g, md) = (spec.mirror.group.clone(), spec.mirror.resource.clone());
    let def = MdDefinition {
        resource: md.clone(),
        group: g.clone(),
        data_partition: Partition::Letter('M'),
        cluster_partition: Partition::Letter('R'),
        initial_copy: false,
    };
    let request = PreflightRequest {
        operation: Operation::Restore,
        group: g.clone(),
        md: md.clone(),
        procedure: mirrorctl::ports::cluster::Procedure::Reconfigure,
        pushes: vec![
            vec![
                ConfigChange::RemoveMirror { resource: md.clone() },
                ConfigChange::SetGroupAutoStart { group: g.clone(), auto: false },
            ],
            vec![ConfigChange::AddMirror(def), ConfigChange::SetGroupAutoStart { group: g.clone(), auto: true }],
        ],
    };
    let checks = cmd.preflight(&request).await.expect("preflight");
    assert!(checks.iter().all(|c| c.ok), "{checks:#?}");
    let guid_checks: Vec<_> = checks.iter().filter(|c| c.name == "volume GUIDs").collect();
    assert_eq!(guid_checks.len(), 2, "{checks:#?}");
    assert!(checks.iter().any(|c| c.name == "command clpcfctrl" && c.found.contains("version 5.1.0")), "{checks:#?}");
    assert!(
        checks.iter().any(|c| c.name == "clp.conf edits" && c.found.starts_with("2 push(es) apply")),
        "{checks:#?}"
    );
    let log = node.log.lock().expect("log").join("");
    assert!(!log.contains("clpdiskctrl"), "clpdiskctrl is not part of CLUSTERPRO: {log}");
    assert!(log.contains("Get-CimInstance -ClassName Win32_Volume -Filter \"DriveLetter = 'M:'\""), "{log}");
    assert!(!log.contains("--push"), "a preflight pushes nothing: {log}");

    // server2's data volume reads differently from what clp.conf holds: refused, naming both.
    node.guids.lock().expect("guids").remove(&("server2".to_owned(), 'M'));
    let checks = cmd.preflight(&request).await.expect("preflight");
    let bad: Vec<_> = checks.iter().filter(|c| !c.ok).collect();
    assert_eq!(bad.len(), 1, "{checks:#?}");
    assert_eq!(
        (bad[0].name.as_str(), bad[0].server.as_ref().map(ServerName::as_str)),
        ("volume GUIDs", Some("server2"))
    );
    assert!(bad[0].found.contains("clp.conf holds 5f6e7d8c-0000-1111-2222-333344445555"), "{}", bad[0]);
}

// ---------------------------------------------------------------------------------------------
// The whole thing: backup and restore through the reconcile loop, cluster port = commands.

/// A backup, an accident and a restore through the reconcile loop with the cluster port =
/// commands (cloud and node from the same world), checked with the oracle.
async fn backup_and_restore_through_the_commands(rig: &Rig) {
    backup_and_restore_through(rig, Arc::new(rig.cmd())).await;
}

async fn backup_and_restore_through(rig: &Rig, cluster: Arc<dyn Cluster>) {
    let spec = rig.spec.clone();
    let sim_ports = rig.world.ports();
    let ports =
        Ports { cloud: sim_ports.cloud, cluster: cluster.clone(), node: sim_ports.node, clock: sim_ports.clock };
    let mut ctx = Context::new(ports, rig.state_dir());
    ctx.max_passes = Some(2_000);
    let lab = Lab {
        world: rig.world.clone(),
        world_file: rig.dir.path().join("unused.json"),
        dir: tempfile::tempdir().expect("lab"),
    };

    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(reconcile(&backup, &ctx).await.expect("backup"), Settled::Converged);
    let backup_commands = rig.fake.log().len();
    let snap = lab.backup_snapshot(&spec, "b1");
    assert_backup_captured(&rig.world, &snap);
    assert!(rig.fake.count("clpdown") >= 1, "the standby was shut down with clpdown");

    rig.sleep_model(600).await;
    rig.world.accident();
    rig.sleep_model(60).await;

    let restore = with_restore(backup, &snap, "r1", true);
    assert_eq!(reconcile(&restore, &ctx).await.expect("restore"), Settled::Converged);
    let log = rig.fake.log();
    let mut by_tool: BTreeMap<String, usize> = BTreeMap::new();
    for (_, line) in &log[backup_commands..] {
        *by_tool.entry(line.split(' ').take(2).collect::<Vec<_>>().join(" ")).or_default() += 1;
    }
    println!("clp commands: backup {backup_commands}, restore {} {by_tool:?}", log.len() - backup_commands);
    assert_restored(&rig.world, &snap);

    // md went out and came back through clp.conf edits, without the initial copy.
    let journal = mirrorctl::journal::read_file(&mirrorctl::journal::writer::Journal::path_for(
        &rig.state_dir(),
        &spec.cluster.name,
    ))
    .expect("journal");
    let applied: Vec<&Vec<ConfigChange>> = journal
        .iter()
        .filter_map(|r| match r {
            mirrorctl::journal::Record::Intent { action: Action::ApplyConfig { changes }, .. } => Some(changes),
            _ => None,
        })
        .collect();
    assert!(applied.iter().any(|c| c.iter().any(|x| matches!(x, ConfigChange::AddMirror(d) if !d.initial_copy))));
    let copies = rig.copies(&rig.state_dir());
    assert!(
        named(&copies, "-pulled.conf").len() >= 2 && named(&copies, "-pushed.conf").len() >= 2,
        "{:?}",
        copies.keys()
    );
    assert!(!rig.fake.suspended());
    let config = rig.sim().config().await.expect("config");
    assert_eq!(config.mirror(&spec.mirror.resource).map(|m| m.initial_copy), Some(false));

    // The failover check moved the group to the other server.
    let st = cluster.status().await.expect("status");
    assert_eq!(st.groups[&spec.mirror.group].current.as_ref(), Some(&spec.cluster.servers[1].name));
    assert!(cluster.mirror_status(&spec.mirror.resource).await.expect("mirror").healthy());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_backup_and_restore_through_the_commands() {
    backup_and_restore_through_the_commands(&Rig::linux(2).await).await;
}

/// SSM as it treats a machine that is not running: the command cannot be delivered
/// (`InvalidInstanceId`), so the adapter turns to the other server. Everything else goes to the
/// real SSM transport.
struct StoppedRefused {
    ssm: Arc<dyn Transport>,
    fake: Arc<FakeClp>,
}

impl StoppedRefused {
    fn check(&self, server: &ServerName) -> PortResult<()> {
        if self.fake.reachable(server) {
            return Ok(());
        }
        Err(mirrorctl::ports::PortError::new(
            "InvalidInstanceId",
            format!("the instance of {server} is not in a valid state for SSM"),
            ErrorClass::NeedsHuman,
        ))
    }
}

#[async_trait::async_trait]
impl Transport for StoppedRefused {
    async fn run(
        &self,
        server: &ServerName,
        shell: Shell,
        script: &str,
        timeout: Duration,
    ) -> PortResult<CommandOutput> {
        self.check(server)?;
        self.ssm.run(server, shell, script, timeout).await
    }
    async fn read_file(&self, server: &ServerName, shell: Shell, path: &Path) -> PortResult<Vec<u8>> {
        self.check(server)?;
        self.ssm.read_file(server, shell, path).await
    }
    async fn write_file(&self, server: &ServerName, shell: Shell, path: &Path, bytes: &[u8]) -> PortResult<()> {
        self.check(server)?;
        self.ssm.write_file(server, shell, path, bytes).await
    }
}

/// The issue's end-to-end proof of the SSM path: a full Linux backup and restore whose every
/// CLUSTERPRO command (and every clp.conf pull and push, in chunks) travels as `SendCommand` /
/// `GetCommandInvocation` through the SSM transport to the fake SSM endpoint, which runs it with
/// `sh` in each instance's sandbox where the fake `clp*` tools act on the simulated cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn linux_backup_and_restore_through_ssm() {
    use mirrorctl::adapters::node::ssm::{PollSchedule, SsmOptions, SsmTransport};
    use support::fake_ssm::FakeSsm;

    let rig = Rig::linux(4).await;
    let ssm = FakeSsm::start().await;
    for s in &rig.spec.cluster.servers {
        ssm.add_instance(s.instance.as_str());
        ssm.set_env(s.instance.as_str(), "PATH", &rig.fake.path_for(&s.name));
    }
    let mut options = SsmOptions::new(rig.spec.cluster.region.clone());
    options.endpoint_url = Some(ssm.endpoint());
    options.poll = PollSchedule::try_new(Duration::from_millis(20), 1.5, Duration::from_millis(200)).expect("poll");
    // The fake answers in milliseconds: SSM's request budgets (5 polls a second) would make this
    // a 90 s test of the limiter, which has tests of its own.
    options.budgets = mirrorctl::ports::limit::Budgets::ssm().scaled(50.0);
    let config = support::sdk_config(&ssm.endpoint()).await;
    let transport: Arc<dyn Transport> = Arc::new(StoppedRefused {
        ssm: Arc::new(SsmTransport::from_sdk_config(&config, &options, &rig.spec.cluster.servers)),
        fake: rig.fake.clone(),
    });
    let mut cmd = CommandOptions::for_os(Os::Linux);
    cmd.work_dir = rig.node_tmp().display().to_string();
    cmd.query_timeout = Duration::from_mins(1);
    cmd.operation_timeout = Duration::from_mins(2);
    let cluster = CommandCluster::with_options(&rig.spec.cluster, transport, &rig.state_dir(), cmd);
    backup_and_restore_through(&rig, Arc::new(cluster)).await;
    let sends = ssm.count("SendCommand");
    let clp = rig.fake.log().len();
    println!(
        "through SSM: {sends} SendCommand, {} GetCommandInvocation, {clp} clp commands",
        ssm.count("GetCommandInvocation")
    );
    assert!(sends >= clp, "every clp command went through SSM ({sends} sends, {clp} commands)");
}

/// The Windows logic of the adapter (`-w`, drive letters, volume GUIDs read again with the
/// `Win32_Volume` query before md is re-added) against the strict simulator: the fake `clpcfctrl --push`
/// refuses an md whose GUIDs are not those of the disks attached now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_backup_and_restore_through_the_commands_run_as_sh() {
    let rig = Rig::new(Os::Windows, 1).await;
    backup_and_restore_through_the_commands(&rig).await;
    assert!(rig.fake.count("win32-volume M:") >= 2, "{:?}", rig.fake.log());
    let copies = rig.copies(&rig.state_dir());
    let pushed = named(&copies, "-pushed.conf");
    let last = &pushed.iter().max_by_key(|(n, _)| n.as_str()).expect("pushed").1;
    for s in &rig.spec.cluster.servers {
        let vol = rig.world.mirror_volume(&s.name).expect("restored volume");
        let guid = support::fake_clp::volume_guid(&vol, 2);
        assert!(last.contains(&format!("<volumeguid>{guid}</volumeguid>")), "{} GUID of {vol}:\n{last}", s.name);
    }
}

/// A Japanese Windows cluster's clp.conf is `Shift_JIS` (NEC's `create_win_md.pl`) with Japanese text
/// in comments: a full restore through the commands reads and writes it in `Shift_JIS`, keeps the
/// pulled and pushed copies byte for byte, and changes no byte outside the edited elements.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shift_jis_clp_conf_survives_a_restore_byte_for_byte() {
    use support::fake_clp::{JA_BUSINESS_COMMENT, JA_COMMENT, JA_MD_COMMENT};
    let rig = Rig::new(Os::Windows, 5).await;
    rig.fake.set_conf_encoding("Shift_JIS");
    backup_and_restore_through_the_commands(&rig).await;

    let sjis = encoding_rs::SHIFT_JIS;
    let decode = |name: &str, bytes: &[u8]| -> String {
        let text = sjis.decode_without_bom_handling_and_without_replacement(bytes).unwrap_or_else(|| panic!("{name}"));
        assert_eq!(sjis.encode(&text).0.as_ref(), bytes, "{name} is Shift_JIS byte for byte");
        text.into_owned()
    };
    let copies = rig.copies(&rig.state_dir());
    let conf: Vec<(&String, String)> = copies
        .iter()
        .filter(|(n, _)| n.ends_with("-pulled.conf") || n.ends_with("-pushed.conf"))
        .map(|(n, b)| (n, decode(n, b)))
        .collect();
    assert!(conf.len() >= 4, "{:?}", copies.keys());
    for (name, text) in &conf {
        assert!(text.starts_with("<?xml version=\"1.0\" encoding=\"Shift_JIS\"?>"), "{name}");
        assert!(text.contains(JA_COMMENT) && text.contains(JA_BUSINESS_COMMENT), "{name}:\n{text}");
    }
    // The file md was removed from, and the file it was re-added to (copies sort by time).
    let first_pulled = &conf.iter().find(|(n, _)| n.ends_with("-pulled.conf")).expect("pulled").1;
    let last_pushed = &conf.iter().rev().find(|(n, _)| n.ends_with("-pushed.conf")).expect("pushed").1;
    assert!(first_pulled.contains(JA_MD_COMMENT) && last_pushed.contains(JA_MD_COMMENT), "{last_pushed}");
    let changed: Vec<String> = similar::TextDiff::from_lines(first_pulled, last_pushed)
        .iter_all_changes()
        .filter(|c| c.tag() != similar::ChangeTag::Equal)
        .map(|c| c.value().trim().to_owned())
        .collect();
    assert!(!changed.is_empty());
    for line in &changed {
        assert!(
            ["<fullcopy>", "<volumeguid>", "<cpvolumeguid>"].iter().any(|t| line.starts_with(t)),
            "only the edited elements differ from the original file, not {line:?}:\n{changed:#?}"
        );
    }
}

/// An EXPRESSCLUSTER X install on Windows keeps its commands in
/// `C:\Program Files\EXPRESSCLUSTER\bin`: the adapter, without `cluster.install_dir`, finds them
/// there on each server (after CLUSTERPRO's directory) and a full backup and restore works.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn windows_expresscluster_install_is_found_and_works_end_to_end() {
    let rig = Rig::installed(Os::Windows, 3, "C:/Program Files/EXPRESSCLUSTER/bin").await;
    assert!(rig.spec.cluster.install_dir.is_none());
    backup_and_restore_through_the_commands(&rig).await;
    for s in &rig.spec.cluster.servers {
        // Each server ran its commands from there (clpdiskctrl runs on both, clpdown on the standby).
        assert!(rig.fake.log().iter().any(|(on, _)| *on == s.name.to_string()), "{}", s.name);
        assert!(rig.fake.bin_dir(&s.name).read_dir().expect("bin").next().is_none(), "nothing left on PATH");
    }
}

/// Runs the adapter's PowerShell scripts as sh. They have a fixed shape (one command each, maybe
/// a `clpdown -h` and the wait for its server to leave before it, maybe `clpstat` after it, see `render_powershell`, or the install-directory detection, see `detect_powershell`), so each
/// line maps to one sh line; Windows paths under `root` (the work directory given to the adapter)
/// become Linux paths, and drive paths (`C:\Program Files\…`) paths under the server's
/// [`FakeClp::node_root`], where `.exe` is dropped (the fake tools have no extension). Anything
/// else is a test failure.
struct PsShim {
    inner: Arc<dyn Transport>,
    root: String,
    fake: Arc<FakeClp>,
}

/// Every single-quoted PowerShell string in `s`, in order; with `strict`, anything but spaces
/// between them is a test failure (the arguments of `& $exe 'a' 'b''c'`).
fn ps_strings(s: &str, strict: bool) -> Vec<String> {
    let mut words = Vec::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            assert!(!strict || c == ' ', "unquoted PowerShell argument in {s:?}");
            continue;
        }
        let mut w = String::new();
        loop {
            match chars.next().expect("closing quote") {
                '\'' if chars.peek() == Some(&'\'') => {
                    chars.next();
                    w.push('\'');
                }
                '\'' => break,
                c => w.push(c),
            }
        }
        words.push(w);
    }
    words
}

/// Every single-quoted PowerShell string in `s`, in order.
fn ps_quoted(s: &str) -> Vec<String> {
    ps_strings(s, false)
}

/// The words of `& $exe 'a' 'b''c'`: PowerShell single-quoted strings.
fn ps_words(s: &str) -> Vec<String> {
    ps_strings(s, true)
}

impl PsShim {
    fn path(&self, server: &ServerName, p: &str) -> String {
        let b = p.as_bytes();
        if p.starts_with(&self.root) {
            p.replace('\\', "/")
        } else if b.len() > 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'\\' {
            let local = p.replace('\\', "/");
            format!("{}/{}", self.fake.node_root(server).display(), local.trim_end_matches(".exe"))
        } else {
            p.to_owned()
        }
    }

    fn sh(&self, server: &ServerName, script: &str) -> String {
        let q = |w: &str| format!("'{}'", self.path(server, w).replace('\'', r"'\''"));
        // The adapter's volume GUID query: the fake's `win32-volume` answers it.
        if let Some(rest) =
            script.strip_prefix("$v = Get-CimInstance -ClassName Win32_Volume -Filter \"DriveLetter = '")
        {
            let letter = rest.chars().next().expect("letter");
            let tool = self.fake.tools_dir(server).join("win32-volume");
            return format!("'{}' {letter}:\n", tool.display());
        }
        // The preflight's tools check (`tools_script`): each tool looked for in the folder.
        if let Some(first) = script.lines().next().and_then(|l| l.strip_prefix("$dir = ")) {
            let dir = &ps_words(first.trim_end())[0];
            let list = script
                .lines()
                .find_map(|l| l.strip_prefix("foreach ($e in @(")?.strip_suffix(")) {"))
                .expect("the tools check names its tools");
            // `tool:file` pairs; the fake's folder holds each tool under its bare name.
            let tools: Vec<String> = list
                .split(", ")
                .flat_map(ps_words)
                .map(|e| e.split_once(':').map_or(e.clone(), |(t, _)| t.to_owned()))
                .collect();
            return format!(
                "d={}\nfor t in {}; do if [ -x \"$d/$t\" ]; then echo \"present $t $d/$t\"; else echo \"missing $t\"; fi; done\nexit 0\n",
                q(dir),
                tools.join(" ")
            );
        }
        let mut tool = String::new();
        let mut out = Vec::new();
        for line in script.split("\r\n").filter(|l| !l.is_empty()) {
            if let Some(rest) = line.strip_prefix("New-Item -ItemType Directory -Force -Path ") {
                let dir = &ps_words(rest.trim_end_matches(" -ErrorAction Stop | Out-Null"))[0];
                out.push(format!("mkdir -p -- {} || exit 1", q(dir)));
            } else if let Some(rest) = line.strip_prefix("$exe = ") {
                let exe = &ps_words(rest)[0];
                let file = exe.rsplit('\\').next().expect("file");
                file.trim_end_matches(".exe").trim_end_matches(".bat").clone_into(&mut tool);
                out.push(format!("exe={}", q(exe)));
                out.push(format!("[ -x \"$exe\" ] || {{ echo '{tool}.exe not found' >&2; exit 127; }}"));
            } else if line.starts_with("if (Test-Path -LiteralPath ") && line.ends_with("; exit 0 }") {
                let words = ps_quoted(line);
                let [probe, said] = words.as_slice() else { panic!("detection line {line:?}") };
                out.push(format!("if [ -x {} ]; then echo {}; exit 0; fi", q(probe), q(said)));
            } else if let Some(rest) = line.strip_prefix("[Console]::Error.WriteLine(") {
                let said = &ps_quoted(rest)[0];
                assert!(rest.ends_with("); exit 127"), "{line:?}");
                out.push(format!("echo {} >&2; exit 127", q(said)));
            } else if line.starts_with("if (-not")
                || line.starts_with("    [Console]")
                || line == "}"
                || line == "$global:LASTEXITCODE = 1"
            {
            } else if let Some(rest) = line.strip_prefix("& $exe") {
                let args: Vec<String> = ps_words(rest).iter().map(|w| q(w)).collect();
                out.push(format!("\"$exe\" {}", args.join(" ")));
            } else if line == "$rc = $LASTEXITCODE" {
                out.push("rc=$?".to_owned());
            } else if let Some(rest) = line.strip_prefix("if ($rc -eq 0) { $global:LASTEXITCODE = 1; $st = & ") {
                // The status read after a successful operation (`Script::run_then_status`).
                let words = ps_quoted(rest);
                let [exe, marker] = words.as_slice() else { panic!("status line {line:?}") };
                let exe = if exe.contains('\\') { q(exe) } else { exe.trim_end_matches(".exe").to_owned() };
                out.push(format!(
                    "if [ $rc -eq 0 ] && st=$({exe}); then echo {}; printf '%s\\n' \"$st\"; fi",
                    q(marker)
                ));
            } else if let Some(rest) = line.strip_prefix("if ($rc -eq 0) { $rc = 75; for ($n = 0; $n -lt 120; $n++) { ")
            {
                // The wait for a server to leave after `clpdown -h` (`Leave`): the patterns are
                // read by `grep -Ei` as by PowerShell's case-insensitive `-match`.
                let words = ps_quoted(rest);
                let [exe, seen, member] = words.as_slice() else { panic!("leave line {line:?}") };
                let exe = if exe.contains('\\') { q(exe) } else { exe.trim_end_matches(".exe").to_owned() };
                out.push(format!(
                    "if [ $rc -eq 0 ]; then rc=75; n=0; while [ $n -lt 120 ]; do if st=$({exe}) && printf '%s\\n' \"$st\" | grep -Eiq {} && ! printf '%s\\n' \"$st\" | grep -Eiq {}; then rc=0; break; fi; n=$((n+1)); sleep 1; done; fi",
                    q(seen),
                    q(member)
                ));
            } else if line.starts_with("if ($rc -ne 0) { if ($rc -eq 75) { [Console]::Error.WriteLine(") {
                out.push("if [ $rc -ne 0 ]; then exit $rc; fi".to_owned());
            } else if let Some(rest) = line.strip_prefix("Remove-Item -LiteralPath ") {
                let dir = &ps_words(rest.trim_end_matches(" -Recurse -Force -ErrorAction SilentlyContinue"))[0];
                out.push(format!("rm -rf -- {}", q(dir)));
            } else if line == "exit $rc" {
                out.push("exit $rc".to_owned());
            } else {
                panic!("the shim does not know this PowerShell line: {line:?}");
            }
        }
        out.push(String::new());
        out.join("\n")
    }
}

#[async_trait::async_trait]
impl Transport for PsShim {
    async fn run(
        &self,
        server: &ServerName,
        shell: Shell,
        script: &str,
        timeout: Duration,
    ) -> PortResult<CommandOutput> {
        assert_eq!(shell, Shell::PowerShell);
        self.inner.run(server, Shell::Sh, &self.sh(server, script), timeout).await
    }
    async fn read_file(&self, server: &ServerName, _shell: Shell, path: &Path) -> PortResult<Vec<u8>> {
        let p = PathBuf::from(self.path(server, &path.display().to_string()));
        self.inner.read_file(server, Shell::Sh, &p).await
    }
    async fn write_file(&self, server: &ServerName, _shell: Shell, path: &Path, bytes: &[u8]) -> PortResult<()> {
        let p = PathBuf::from(self.path(server, &path.display().to_string()));
        self.inner.write_file(server, Shell::Sh, &p, bytes).await
    }
}

/// A DynamoDB state store on a fresh moto (table created), and a way to open it as a new process
/// (a new holder identity) would.
async fn dynamo_store(moto: &support::Moto) -> Arc<dyn mirrorctl::ports::store::Store> {
    use mirrorctl::adapters::store::DynamoStore;
    let store = DynamoStore::from_sdk_config(&moto.sdk_config().await, "mirrorctl-clp");
    store.init().await.expect("create the table");
    Arc::new(store)
}

/// Host loss between the two pushes of a restore's configuration edit, port level: host A removes
/// md (its resume fails, so a suspend/resume is owed too) and dies with its state directory; host
/// B, with an empty state directory and the same DynamoDB table, completes the resume and re-adds
/// md as it was, from the template in the table. With the directory store host B cannot: the
/// template was on A's disk (what every store did before the template moved behind the store).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_host_finishes_the_configuration_edit_from_the_dynamodb_store() {
    let moto = support::Moto::start();
    let store = dynamo_store(&moto).await;
    let rig = Rig::linux(16).await;
    let host_a = rig.dir.path().join("host-a");
    {
        let a = rig.cmd_with_state(&host_a).with_store(Arc::clone(&store));
        a.stop_group(&rig.group()).await.expect("stop group");
        rig.fake.fail_next("clpcl --resume", 1);
        let e = a.apply_config(&rig.remove_md()).await.expect_err("resume fails");
        assert_eq!(e.code, "ClusterResumeFailed", "{e}");
    } // host A dies, and its disk with it
    std::fs::remove_dir_all(&host_a).expect("host A's state directory is gone");
    assert!(rig.fake.suspended(), "a resume is owed");
    let name = &rig.spec.cluster.name;
    assert!(store.read_cluster_file(name, "template-md1.json").await.expect("read").is_some(), "template in the table");
    assert!(store.read_cluster_file(name, PENDING_RESUME).await.expect("read").is_some(), "marker in the table");

    // Host B with the directory store: nothing of A's is there.
    let host_b = rig.dir.path().join("host-b");
    let local = rig.cmd_with_state(&host_b);
    let e = local.apply_config(&rig.re_add_md()).await.expect_err("no template on host B's disk");
    assert_eq!((e.code.as_str(), e.class), ("MirrorTemplateMissing", ErrorClass::NeedsHuman), "{e}");
    std::fs::remove_dir_all(&host_b).expect("back to an empty state directory");

    // Host B with the table: resumes the cluster, then re-adds md from the template.
    let b = rig.cmd_with_state(&host_b).with_store(Arc::clone(&store));
    b.apply_config(&rig.re_add_md()).await.expect("re-add md on host B");
    assert!(!rig.fake.suspended());
    assert!(store.read_cluster_file(name, PENDING_RESUME).await.expect("read").is_none(), "marker cleared");
    let config = rig.sim().config().await.expect("config");
    assert_eq!(config.mirror(&rig.md()).map(|m| m.initial_copy), Some(false));
    // The fake refuses an md without its connection, mount point, monitors and dependency: B's
    // pushed file has them, from A's template.
    let copies = rig.copies(&host_b);
    let pushed = named(&copies, "-pushed.conf");
    assert_eq!(pushed.len(), 1, "{:?}", copies.keys());
    for piece in ["<fullcopy>0</fullcopy>", "<depend name=\"md1\"/>", "<mdcname>mdc1</mdcname>", "<fs>ext4</fs>"] {
        assert!(pushed[0].1.contains(piece), "{piece} missing from host B's push:\n{}", pushed[0].1);
    }
    assert!(!copies.contains_key("template-md1.json"), "the template is in the table, not on B's disk");
    b.start_group(&rig.group(), &rig.node(0)).await.expect("group starts with md");
    assert!(b.mirror_status(&rig.md()).await.expect("mirror").healthy());
}

/// Host loss between the two pushes of a restore, through the reconcile loop: host A (journal,
/// status and templates in DynamoDB, `clp.conf` copies in its own state directory) runs the
/// restore until the call that removed md, and dies right after it, before journaling its result;
/// its state directory is deleted. Host B, a new process with an
/// empty state directory on the same table, finishes the restore: md is re-added without the
/// initial copy from A's template, and the oracle finds both sides restored from the snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_whose_host_died_after_removing_md_is_finished_by_another_host() {
    use mirrorctl::execute::{CrashPoint, CrashSwitch, ExecError};
    use mirrorctl::reconcile::ReconcileError;
    let moto = support::Moto::start();
    let store = dynamo_store(&moto).await;
    let rig = Rig::linux(17).await;
    let spec = rig.spec.clone();
    let host = |dir: &Path, crash: Option<Arc<CrashSwitch>>| {
        let sim = rig.world.ports();
        let cluster: Arc<dyn Cluster> = Arc::new(rig.cmd_with_state(dir).with_store(Arc::clone(&store)));
        let ports = Ports { cloud: sim.cloud, cluster, node: sim.node, clock: sim.clock };
        let mut ctx = Context::with_store(ports, Arc::clone(&store));
        ctx.max_passes = Some(2_000);
        ctx.crash = crash;
        ctx
    };
    let host_a = rig.dir.path().join("host-a");
    let lab = Lab {
        world: rig.world.clone(),
        world_file: rig.dir.path().join("unused.json"),
        dir: tempfile::tempdir().expect("lab"),
    };
    let backup = with_backups(spec.clone(), &["b1"], 7);
    assert_eq!(reconcile(&backup, &host(&host_a, None)).await.expect("backup"), Settled::Converged);
    let snap = lab.backup_snapshot(&spec, "b1");
    rig.sleep_model(600).await;
    rig.world.accident();
    rig.sleep_model(60).await;
    let restore = with_restore(backup, &snap, "r1", true);

    // Host A dies right after the call that removed md, before its result is journaled.
    let crash = Arc::new(CrashSwitch::at_step(CrashPoint::AfterCall, "remove-md"));
    let err = reconcile(&restore, &host(&host_a, Some(Arc::clone(&crash)))).await.expect_err("crashes");
    assert!(matches!(err, ReconcileError::Exec(ExecError::Crashed(_))), "{err}");
    let records = store.read_journal(&spec.cluster.name).await.expect("journal");
    // The old volumes' tags ran in the removal's batch and have their results; the removal has none.
    let removal = records.iter().find_map(|r| match r {
        mirrorctl::journal::Record::Intent { step, action: Action::ApplyConfig { changes }, .. }
            if changes.iter().any(|c| matches!(c, ConfigChange::RemoveMirror { .. })) =>
        {
            Some(step.clone())
        }
        _ => None,
    });
    let removal = removal.expect("the removal's intent is journaled");
    assert!(
        !records.iter().any(|r| matches!(r, mirrorctl::journal::Record::Result { step, .. } if *step == removal)),
        "the removal's intent has no result: {records:?}"
    );
    assert!(rig.sim().config().await.expect("config").mirror(&rig.md()).is_none(), "md is out of clp.conf");
    std::fs::remove_dir_all(&host_a).expect("host A's state directory is gone with it");

    // Host B: a new process, an empty state directory, the same table.
    let host_b = rig.dir.path().join("host-b");
    assert_eq!(reconcile(&restore, &host(&host_b, None)).await.expect("host B restores"), Settled::Converged);
    assert_restored(&rig.world, &snap);
    let config = rig.sim().config().await.expect("config");
    assert_eq!(config.mirror(&rig.md()).map(|m| m.initial_copy), Some(false), "re-added without the initial copy");
    assert!(!rig.fake.suspended());
    let pushed = named(&rig.copies(&host_b), "-pushed.conf").into_iter().map(|(_, t)| t).collect::<Vec<_>>();
    assert!(
        pushed.iter().any(|t| t.contains("<mdcname>mdc1</mdcname>") && t.contains("<fullcopy>0</fullcopy>")),
        "host B re-added md from A's template"
    );
    assert!(rig.world.oracle_report().corruptions.is_empty());
}

/// On a cluster with two md resources the fake's `clp.conf` lists both, so the command adapter
/// reads both (each with its own partitions); removing md2 and pushing it back with the same
/// definition leaves both configured. Fails on the fake that rendered the first md only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_of_a_two_md_cluster_lists_every_md() {
    let scenario = Scenario::two_mirrors(Os::Linux);
    let spec = scenario.spec("").expect("the scenario's file is valid");
    let world = SimWorld::new(scenario, 14, SPEED);
    let fake = Arc::new(FakeClp::start(world.clone()).await);
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("node-tmp")).expect("node tmp");
    let rig = Rig { world, fake, dir, spec };
    let cmd = rig.cmd();
    let config = cmd.config().await.expect("config");
    let names: Vec<&str> = config.mirrors.iter().map(|m| m.resource.as_str()).collect();
    assert_eq!(names, ["md1", "md2"], "{config:?}");
    let md2 = config.mirror(&ResourceName::parse("md2").unwrap()).expect("md2").clone();
    assert_eq!(md2.data_partition, Partition::Device("/dev/xvdc2".into()), "{md2:?}");
    cmd.stop_group(&rig.group()).await.expect("stop group");
    cmd.apply_config(&[ConfigChange::RemoveMirror { resource: md2.resource.clone() }]).await.expect("remove md2");
    assert_eq!(rig.sim().config().await.expect("config").mirrors.len(), 1);
    cmd.apply_config(&[ConfigChange::AddMirror(md2)]).await.expect("re-add md2");
    let names: Vec<String> =
        rig.sim().config().await.expect("config").mirrors.iter().map(|m| m.resource.to_string()).collect();
    assert_eq!(names, ["md1", "md2"]);
}
