//! The SSM node transport against the fake SSM endpoint (`support::fake_ssm`, the real JSON 1.1
//! wire format on loopback): every invocation status, the `InvocationDoesNotExist` that follows a
//! send, our own timeout → `CancelCommand`, unknown instances, throttling and auth errors, output
//! truncation, files larger than SSM's output cap moved in pieces byte-exact; then the disk
//! recipes run for real through it (the `Node` port over a transport) against fake Linux tools;
//! and golden text of the file-moving scripts, PowerShell included (they cannot run here).

use crate::support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use mirrorctl::adapters::node::chunked;
use mirrorctl::adapters::node::recipe_node::RecipeNode;
use mirrorctl::adapters::node::ssm::{PollSchedule, SsmOptions, SsmTransport};
use mirrorctl::adapters::node::transport::{LocalTransport, Shell, Transport};
use mirrorctl::ids::{InstanceId, Region, ServerName, VolumeId, Zone};
use mirrorctl::ports::node::Node;
use mirrorctl::ports::{ErrorClass, PortError};
use mirrorctl::spec::{Os, ServerSpec};
use support::fake_disks::FakeDisks;
use support::fake_ssm::FakeSsm;

const I1: &str = "i-0123456789abcdef0";
const I2: &str = "i-0fedcba9876543210";

fn server(name: &str) -> ServerName {
    ServerName::parse(name).expect("server name")
}

fn servers() -> [ServerSpec; 2] {
    let spec = |name: &str, id: &str, zone: &str| ServerSpec {
        name: server(name),
        instance: InstanceId::parse(id).expect("instance id"),
        zone: Zone::parse(zone).expect("zone"),
    };
    [spec("server1", I1, "ap-northeast-1a"), spec("server2", I2, "ap-northeast-1c")]
}

fn options(fake: &FakeSsm) -> SsmOptions {
    let mut o = SsmOptions::new(Region::parse(support::REGION).expect("region"));
    o.endpoint_url = Some(fake.endpoint());
    // Fast polls for the tests; the shape (first, ×1.5, cap) is the production one.
    o.poll = PollSchedule::try_new(Duration::from_millis(10), 1.5, Duration::from_millis(100)).expect("schedule");
    o.invocation_grace = Duration::from_secs(10);
    o.file_timeout = Duration::from_secs(30);
    o
}

async fn transport_with(fake: &FakeSsm, options: &SsmOptions) -> SsmTransport {
    SsmTransport::from_sdk_config(&support::sdk_config(&fake.endpoint()).await, options, &servers())
}

/// A fake with server1's instance registered (server2's is not), and a transport to it.
async fn setup() -> (FakeSsm, SsmTransport) {
    let fake = FakeSsm::start().await;
    fake.add_instance(I1);
    let t = transport_with(&fake, &options(&fake)).await;
    (fake, t)
}

async fn run(
    t: &SsmTransport,
    script: &str,
    timeout: Duration,
) -> Result<mirrorctl::adapters::node::transport::CommandOutput, PortError> {
    t.run(&server("server1"), Shell::Sh, script, timeout).await
}

fn last_command(fake: &FakeSsm) -> String {
    fake.command_ids().pop().expect("a command was sent")
}

#[tokio::test]
async fn a_command_goes_through_every_status_to_its_exit_code() {
    let (fake, t) = setup().await;
    fake.set_hidden_polls(2);
    fake.set_pending_polls(2);
    let sandbox = fake.sandbox(I1);
    // The script holds in InProgress until the test opens the gate.
    let script = "echo started\nwhile [ ! -e \"$HOME/gate\" ]; do sleep 0.02; done\necho hi\necho oops >&2\nexit 3\n";
    let t = Arc::new(t);
    let running = tokio::spawn({
        let t = t.clone();
        async move { run(&t, script, Duration::from_secs(20)).await }
    });
    let id = fake.wait_for_status("InProgress").await;
    fake.wait_until_served(&id, "InProgress").await;
    std::fs::write(sandbox.join("gate"), "").expect("gate");
    let out = running.await.expect("task").expect("the command ran");
    assert_eq!(out.exit_code, 3);
    assert_eq!(out.stdout, "started\nhi\n");
    assert!(out.stderr.starts_with("oops\n"), "{:?}", out.stderr);

    let served = fake.served(&id);
    assert_eq!(served[..4], ["InvocationDoesNotExist", "InvocationDoesNotExist", "Pending", "Pending"], "{served:?}");
    assert!(served.contains(&"InProgress".to_owned()), "{served:?}");
    assert_eq!(served.last().map(String::as_str), Some("Failed"));

    // The request SSM received.
    let send = fake.requests().into_iter().find(|r| r.op == "SendCommand").expect("a SendCommand");
    assert_eq!(send.body["DocumentName"], "AWS-RunShellScript");
    assert_eq!(send.body["InstanceIds"], serde_json::json!([I1]));
    let lines: Vec<&str> = script.lines().collect();
    assert_eq!(send.body["Parameters"]["commands"], serde_json::json!(lines));
    assert_eq!(send.body["Parameters"]["executionTimeout"], serde_json::json!(["20"]));
    assert_eq!(send.body["TimeoutSeconds"], 30, "delivery timeout: SSM's minimum of 30 s");
    assert!(send.body["Comment"].as_str().is_some_and(|c| c.contains("mirrorctl") && c.contains("server1")));
    let counts = t.call_counts();
    assert_eq!(counts["ssm:SendCommand"], 1);
    assert_eq!(counts["ssm:GetCommandInvocation"], served.len() as u64);
    assert!(!counts.contains_key("ssm:CancelCommand"));
}

#[tokio::test]
async fn success_returns_the_output_and_invisibility_past_the_grace_is_an_error() {
    let (fake, t) = setup().await;
    let out = run(&t, "printf 'a\\nb\\n'", Duration::from_secs(20)).await.expect("ran");
    assert_eq!((out.exit_code, out.stdout.as_str()), (0, "a\nb\n"));
    assert_eq!(fake.served(&last_command(&fake)).last().map(String::as_str), Some("Success"));

    fake.set_hidden_polls(u32::MAX);
    let mut o = options(&fake);
    o.invocation_grace = Duration::from_millis(300);
    let t = transport_with(&fake, &o).await;
    let e = run(&t, "true", Duration::from_secs(20)).await.expect_err("never visible");
    assert_eq!((e.code.as_str(), e.class), ("InvocationDoesNotExist", ErrorClass::Retryable), "{e}");
    assert!(e.message.contains("still not visible"), "{e}");
}

#[tokio::test]
async fn our_timeout_cancels_a_delayed_command() {
    let (fake, t) = setup().await;
    fake.set_agent_online(I1, false);
    let e = run(&t, "echo never", Duration::from_secs(3)).await.expect_err("agent offline");
    assert_eq!((e.code.as_str(), e.class), ("CommandTimedOut", ErrorClass::Retryable), "{e}");
    assert!(e.message.contains("last status: Delayed") && e.message.contains("it was cancelled"), "{e}");
    let id = last_command(&fake);
    assert!(fake.served(&id).contains(&"Delayed".to_owned()));
    assert_eq!(fake.count("CancelCommand"), 1);
    let cancel = fake.requests().into_iter().find(|r| r.op == "CancelCommand").expect("cancel");
    assert_eq!(cancel.body["CommandId"], id.as_str());
    assert_eq!(fake.status(&id).map(|s| s.0), Some("Cancelled".to_owned()));
}

/// Whether process `pid` is gone (or a zombie waiting for its reaper).
fn dead(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(stat) => stat.rsplit_once(") ").is_some_and(|(_, rest)| rest.starts_with('Z')),
    }
}

#[tokio::test]
async fn our_timeout_cancels_a_running_command_and_its_processes_die() {
    let (fake, t) = setup().await;
    let sandbox = fake.sandbox(I1);
    // The deadline leaves the script ample time to start; it then outlives it.
    let e = run(&t, "sleep 30 &\necho $! > \"$HOME/sleep.pid\"\nwait\n", Duration::from_secs(5))
        .await
        .expect_err("runs too long");
    assert_eq!((e.code.as_str(), e.class), ("CommandTimedOut", ErrorClass::Retryable), "{e}");
    assert_eq!(fake.count("CancelCommand"), 1);
    let id = last_command(&fake);
    // The fake settles the cancellation (kill, reap) asynchronously.
    for _ in 0..500 {
        if fake.status(&id).is_some_and(|(s, _)| s == "Cancelled") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fake.status(&id).map(|s| s.0), Some("Cancelled".to_owned()));
    let pid: u32 = std::fs::read_to_string(sandbox.join("sleep.pid")).expect("pid file").trim().parse().expect("pid");
    for _ in 0..500 {
        if dead(pid) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(dead(pid), "the script's child {pid} was killed with its process group");
}

#[tokio::test]
async fn a_command_cancelled_by_someone_else_needs_a_human() {
    let (fake, t) = setup().await;
    let t = Arc::new(t);
    let running = tokio::spawn({
        let t = t.clone();
        async move { run(&t, "sleep 30", Duration::from_mins(1)).await }
    });
    fake.wait_for_status("InProgress").await;
    fake.cancel_all();
    let e = running.await.expect("task").expect_err("cancelled");
    assert_eq!((e.code.as_str(), e.class), ("CommandCancelled", ErrorClass::NeedsHuman), "{e}");
    assert_eq!(fake.count("CancelCommand"), 0, "mirrorctl did not cancel it");
}

#[tokio::test]
async fn terminal_statuses_without_a_run_are_classed() {
    let (fake, t) = setup().await;
    let cases = [
        ("Failed", "Undeliverable", "CommandUndeliverable", ErrorClass::Retryable),
        ("Failed", "Terminated", "CommandTerminated", ErrorClass::Retryable),
        ("TimedOut", "ExecutionTimedOut", "CommandTimedOut", ErrorClass::Retryable),
        ("TimedOut", "DeliveryTimedOut", "CommandDeliveryTimedOut", ErrorClass::Retryable),
        ("Failed", "InvalidPlatform", "CommandInvalidPlatform", ErrorClass::NeedsHuman),
    ];
    for (status, details, code, class) in cases {
        fake.force_next_outcome(I1, status, details);
        let e = run(&t, "echo not run", Duration::from_secs(20)).await.expect_err(details);
        assert_eq!((e.code.as_str(), e.class), (code, class), "{e}");
        assert!(e.message.contains("get-command-invocation"), "a hint to look it up: {e}");
        assert_eq!(fake.served(&last_command(&fake)).last().map(String::as_str), Some(status));
    }
    let e = {
        fake.force_next_outcome(I1, "Failed", "Undeliverable");
        run(&t, "true", Duration::from_secs(20)).await.expect_err("undeliverable")
    };
    assert!(e.message.contains("SSM agent") && e.message.contains("instance profile role"), "{e}");
}

#[tokio::test]
async fn unknown_instances_and_servers_need_a_human() {
    let (fake, t) = setup().await;
    let e = t.run(&server("server2"), Shell::Sh, "true", Duration::from_secs(10)).await.expect_err("not managed");
    assert_eq!((e.code.as_str(), e.class), ("InvalidInstanceId", ErrorClass::NeedsHuman), "{e}");
    assert!(e.message.contains(I2), "SSM's message names the instance: {e}");
    assert!(e.message.contains("SSM agent") && e.message.contains("instance profile role"), "{e}");
    assert!(e.request_id.is_some(), "the request id is kept for the audit trail");
    let e = t.run(&server("server9"), Shell::Sh, "true", Duration::from_secs(10)).await.expect_err("unknown");
    assert_eq!((e.code.as_str(), e.class), ("UnknownServer", ErrorClass::NeedsHuman), "{e}");
    assert_eq!(fake.count("SendCommand"), 1, "nothing was sent for an unknown server");
}

#[tokio::test]
async fn throttling_and_server_errors() {
    let (fake, t) = setup().await;
    // A throttled send is the executor's to retry (nothing runs yet).
    fake.throttle("SendCommand", 1);
    let e = run(&t, "echo one", Duration::from_secs(20)).await.expect_err("throttled");
    assert_eq!((e.code.as_str(), e.class), ("ThrottlingException", ErrorClass::Throttled), "{e}");
    // Throttled or failing polls are absorbed: the command is already running.
    fake.throttle("GetCommandInvocation", 3);
    fake.inject("GetCommandInvocation", 2, 500, "InternalServerError", "try again");
    let out = run(&t, "echo two", Duration::from_secs(20)).await.expect("polled through");
    assert_eq!(out.stdout, "two\n");
    let served = fake.served(&last_command(&fake));
    assert_eq!(served.iter().filter(|s| *s == "ThrottlingException").count(), 3, "{served:?}");
    assert_eq!(served.iter().filter(|s| *s == "InternalServerError").count(), 2, "{served:?}");
    assert_eq!(fake.count("SendCommand"), 2, "the command was not sent twice");
    // Auth failures are not retried.
    fake.inject("SendCommand", 1, 400, "AccessDeniedException", "not authorized to perform: ssm:SendCommand");
    let e = run(&t, "echo three", Duration::from_secs(20)).await.expect_err("denied");
    assert_eq!((e.code.as_str(), e.class), ("AccessDeniedException", ErrorClass::NeedsHuman), "{e}");
    fake.inject(
        "GetCommandInvocation",
        1,
        400,
        "AccessDeniedException",
        "not authorized to perform: ssm:GetCommandInvocation",
    );
    let e = run(&t, "echo four", Duration::from_secs(20)).await.expect_err("denied poll");
    assert_eq!(e.class, ErrorClass::NeedsHuman, "{e}");
    assert!(e.message.contains("may still run"), "{e}");
}

#[tokio::test]
async fn output_over_the_cap_is_refused_not_cut() {
    let (fake, t) = setup().await;
    let out = run(&t, "head -c 23999 /dev/zero | tr '\\0' x", Duration::from_secs(20)).await.expect("fits");
    assert_eq!(out.stdout.len(), 23_999);
    let e = run(&t, "head -c 100000 /dev/zero | tr '\\0' x", Duration::from_secs(20)).await.expect_err("cut");
    assert_eq!((e.code.as_str(), e.class), ("OutputTruncated", ErrorClass::NeedsHuman), "{e}");

    // What SSM itself returned for it, seen with a plain SDK client: exactly the first 24,000
    // characters, the command a success.
    let sdk = aws_sdk_ssm::Client::new(&support::sdk_config(&fake.endpoint()).await);
    let id = last_command(&fake);
    let inv = sdk.get_command_invocation().command_id(&id).instance_id(I1).send().await.expect("invocation");
    assert_eq!(inv.status().map(aws_sdk_ssm::types::CommandInvocationStatus::as_str), Some("Success"));
    assert_eq!(inv.response_code(), 0);
    assert_eq!(inv.standard_output_content().map(str::len), Some(support::fake_ssm::STDOUT_LIMIT));
    assert_eq!(inv.document_name(), Some("AWS-RunShellScript"));
}

#[tokio::test]
async fn powershell_goes_to_the_powershell_document() {
    let (fake, t) = setup().await;
    let e = t.run(&server("server1"), Shell::PowerShell, "Get-Disk", Duration::from_secs(10)).await.expect_err("linux");
    assert_eq!((e.code.as_str(), e.class), ("UnsupportedPlatformType", ErrorClass::NeedsHuman), "{e}");
    let send = fake.requests().into_iter().find(|r| r.op == "SendCommand").expect("sent");
    assert_eq!(send.body["DocumentName"], "AWS-RunPowerShellScript");
}

/// Deterministic bytes of every value (an LCG), `n` long.
fn bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (x >> 56) as u8
        })
        .collect()
}

#[tokio::test]
async fn files_larger_than_the_output_cap_round_trip_byte_exact() {
    let (fake, t) = setup().await;
    let dir = fake.sandbox(I1).join("conf dir with 'quotes'");
    std::fs::create_dir_all(&dir).expect("dir");
    let path = dir.join("clp.conf");
    std::fs::write(&path, b"old contents").expect("old file");
    let data = bytes(150_000, 7);
    let s1 = server("server1");

    t.write_file(&s1, Shell::Sh, &path, &data).await.expect("write");
    assert_eq!(std::fs::read(&path).expect("written file"), data, "byte-exact on the node");
    assert!(!dir.join("clp.conf.mirrorctl-tmp").exists(), "the piece file was renamed away");
    let writes = fake.count("SendCommand");
    assert_eq!(writes, 150_000usize.div_ceil(chunked::WRITE_PIECE), "one command per piece, the last renames");

    // One command could not return it: SSM cuts the output.
    let cat = format!("cat {}", chunked::quote(Shell::Sh, &path.display().to_string()));
    let e = t.run(&s1, Shell::Sh, &cat, Duration::from_secs(20)).await.expect_err("too big for one command");
    assert_eq!(e.code, "OutputTruncated");
    let before = fake.count("SendCommand");

    let back = t.read_file(&s1, Shell::Sh, &path).await.expect("read");
    assert_eq!(back, data, "byte-exact back");
    let reads = fake.count("SendCommand") - before;
    assert_eq!(reads, 150_000usize.div_ceil(chunked::READ_CHUNK));
    // Every command fit SSM's limits: parameters ≤ 64 KiB (the fake refuses more) and outputs
    // under 24,000 characters (a cut piece would have failed the digest).
    for r in fake.requests().iter().filter(|r| r.op == "SendCommand") {
        let size: usize = r.body["Parameters"]["commands"]
            .as_array()
            .expect("commands")
            .iter()
            .map(|l| l.as_str().map_or(0, str::len) + 1)
            .sum();
        assert!(size < 64 * 1024, "{size}");
    }

    println!("SSM calls to write then read 150,000 bytes (+ one refused cat): {:?}", t.call_counts());

    // Empty files, missing files.
    let empty = dir.join("empty");
    t.write_file(&s1, Shell::Sh, &empty, b"").await.expect("write empty");
    assert_eq!(std::fs::read(&empty).expect("empty file"), b"");
    assert_eq!(t.read_file(&s1, Shell::Sh, &empty).await.expect("read empty"), b"");
    let e = t.read_file(&s1, Shell::Sh, &dir.join("missing")).await.expect_err("missing");
    assert_eq!((e.code.as_str(), e.class), ("FileNotFound", ErrorClass::NeedsHuman), "{e}");
    let e = t.read_file(&s1, Shell::Sh, Path::new("/a\nb")).await.expect_err("bad path");
    assert_eq!(e.code, "InvalidPath");
}

#[tokio::test]
async fn a_file_that_changes_between_pieces_is_refused() {
    let fake = FakeSsm::start().await;
    let sandbox = fake.add_instance(I1);
    let mut o = options(&fake);
    o.read_chunk = 10;
    let t = transport_with(&fake, &o).await;
    let path = sandbox.join("moving");
    std::fs::write(&path, bytes(25, 1)).expect("file");
    // A `dd` that rewrites the file after it serves the first piece (a writer racing the read).
    support::write_tool(
        &sandbox.join("bin"),
        "dd",
        &format!("PATH=/usr/bin:/bin dd \"$@\"; printf 'changed by another writer' > '{}'", path.display()),
    );
    let e = t.read_file(&server("server1"), Shell::Sh, &path).await.expect_err("changed");
    assert_eq!((e.code.as_str(), e.class), ("FileChanged", ErrorClass::Retryable), "{e}");
}

// ---------------------------------------------------------------------------------------------
// The Node port over a transport: the real Linux recipes through fake SSM, against fake tools.

fn vol(id: &str) -> VolumeId {
    VolumeId::parse(id).expect("volume id")
}

async fn assert_node_behaviour(node: &RecipeNode, disks: &FakeDisks) {
    let s1 = server("server1");
    let found = node.disks(&s1).await.expect("disks");
    let ids: Vec<&str> = found.iter().map(|d| d.volume.as_str()).collect();
    assert_eq!(ids, ["vol-0123456789abcdef0", "vol-0fedcba9876543210"], "the root disk is left out");
    assert!(found[0].partitions.iter().any(|p| p.number == 2 && p.mounted), "{found:?}");
    assert!(found[1].read_only);

    let e = node.set_offline(&s1, &vol("vol-0123456789abcdef0")).await.expect_err("mounted");
    assert_eq!((e.code.as_str(), e.class), ("Mounted", ErrorClass::NeedsHuman), "{e}");
    assert!(e.message.contains("/dev/nvme1n1p2"), "{e}");

    disks.clear_log();
    node.set_offline(&s1, &vol("vol-0fedcba9876543210")).await.expect("offline");
    assert!(disks.log().contains("blockdev --flushbufs /dev/nvme2n1"), "{}", disks.log());
    node.set_online(&s1, &vol("vol-0fedcba9876543210")).await.expect("online");
    assert!(disks.log().contains("partprobe /dev/nvme2n1"), "{}", disks.log());

    let e = node.set_online(&s1, &vol("vol-0000000000000000a")).await.expect_err("no such disk");
    assert_eq!((e.code.as_str(), e.class), ("DiskNotFound", ErrorClass::Retryable), "{e}");
    let e = node.set_letter(&s1, &vol("vol-0fedcba9876543210"), 2, 'M').await.expect_err("linux");
    assert_eq!((e.code.as_str(), e.class), ("NotSupported", ErrorClass::NeedsHuman), "{e}");
}

#[tokio::test]
async fn linux_recipes_run_through_ssm_against_fake_tools() {
    let fake = FakeSsm::start().await;
    let sandbox = fake.add_instance(I1);
    let disks = FakeDisks::install(&sandbox);
    for (k, v) in disks.env() {
        fake.set_env(I1, &k, &v);
    }
    let t = transport_with(&fake, &options(&fake)).await;
    let node = RecipeNode::new(Os::Linux, Arc::new(t));
    assert_node_behaviour(&node, &disks).await;
    assert!(
        fake.requests()
            .iter()
            .filter(|r| r.op == "SendCommand")
            .all(|r| r.body["DocumentName"] == "AWS-RunShellScript")
    );

    // A recipe that reports a failure (lsblk cannot run) needs a human.
    let missing: PathBuf = sandbox.join("no-such-lsblk");
    fake.set_env(I1, "MIRRORCTL_LSBLK", &missing.display().to_string());
    let e = node.disks(&server("server1")).await.expect_err("lsblk failed");
    assert_eq!((e.code.as_str(), e.class), ("DiskRecipeFailed", ErrorClass::NeedsHuman), "{e}");
}

#[tokio::test]
async fn the_same_node_port_runs_over_the_local_transport() {
    let dir = tempfile::tempdir().expect("dir");
    let disks = FakeDisks::install(dir.path());
    let mut env = disks.env();
    env.push(("PATH".into(), format!("{}:{}", disks.bin().display(), std::env::var("PATH").unwrap_or_default())));
    let node = RecipeNode::new(Os::Linux, Arc::new(LocalTransport { env }));
    assert_node_behaviour(&node, &disks).await;
}

// ---------------------------------------------------------------------------------------------
// Golden text of the file-moving scripts (PowerShell cannot run here).

#[test]
fn file_scripts_golden() {
    let win = r"C:\Program Files\CLUSTERPRO\work\mirrorctl's\clp.conf";
    insta::assert_snapshot!("windows_read_first", chunked::read_script(Shell::PowerShell, win, chunked::READ_CHUNK, 0));
    insta::assert_snapshot!("windows_read_third", chunked::read_script(Shell::PowerShell, win, chunked::READ_CHUNK, 2));
    let data = bytes(100, 3);
    let w = chunked::write_scripts(Shell::PowerShell, win, &data, 40);
    assert_eq!(w.len(), 3);
    insta::assert_snapshot!("windows_write", w.join("\n# ---- next command ----\n"));
    insta::assert_snapshot!("windows_write_empty", chunked::write_scripts(Shell::PowerShell, win, b"", 40).join(""));
    let lin = "/opt/nec/clusterpro/work/it's/clp.conf";
    insta::assert_snapshot!("linux_read_second", chunked::read_script(Shell::Sh, lin, chunked::READ_CHUNK, 1));
    insta::assert_snapshot!(
        "linux_write",
        chunked::write_scripts(Shell::Sh, lin, &data, 40).join("\n# ---- next command ----\n")
    );
}

/// The daemon gives every cluster of one account and region one SSM budget on one SSM client:
/// transports sharing a limiter wait for each other's commands, and each counts its own calls.
#[tokio::test]
async fn transports_sharing_a_budget_wait_for_each_other_and_count_their_own_calls() {
    use mirrorctl::adapters::node::ssm::ssm_client;
    use mirrorctl::ports::limit::{Budget, Budgets, RequestLimiter};
    let fake = FakeSsm::start().await;
    fake.add_instance(I1);
    let o = options(&fake);
    // One command at once, the next token 0.5 s later; polls unhindered.
    let budgets = Budgets { describe: Budget::try_new(100, 100.0).unwrap(), mutate: Budget::try_new(1, 2.0).unwrap() };
    let tokens = Arc::new(RequestLimiter::new(budgets));
    let client = ssm_client(&support::sdk_config(&fake.endpoint()).await, &o);
    let a = SsmTransport::on_client(client.clone(), &o, &servers()).share_limiter(Arc::clone(&tokens));
    let b = SsmTransport::on_client(client, &o, &servers()).share_limiter(tokens);
    let start = std::time::Instant::now();
    assert_eq!(run(&a, "echo a", Duration::from_secs(20)).await.expect("a ran").stdout, "a\n");
    assert_eq!(run(&b, "echo b", Duration::from_secs(20)).await.expect("b ran").stdout, "b\n");
    assert!(start.elapsed() >= Duration::from_millis(450), "b's send waited for a's token: {:?}", start.elapsed());
    for t in [&a, &b] {
        assert_eq!(t.call_counts()["ssm:SendCommand"], 1, "{:?}", t.call_counts());
    }
}
