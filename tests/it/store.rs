//! The state stores: the DynamoDB store against `moto_server`'s DynamoDB (a loopback port, fake
//! static credentials, killed by pid): the table's creation, the lease (acquire, heartbeat,
//! takeover only after a whole lease period of an unchanged record version), fencing of a deposed
//! holder at the store, clear errors, and whole reconciles and CLI runs with their journal and
//! status in the table.

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use mirrorctl::adapters::store::DynamoStore;
use mirrorctl::execute::ExecError;
use mirrorctl::ids::ClusterName;
use mirrorctl::journal::Record;
use mirrorctl::plan::OpId;
use mirrorctl::ports::store::{Store, StoreError};
use mirrorctl::reconcile::{Context, ReconcileError, Settled, reconcile};
use mirrorctl::sim::{Scenario, SimWorld};
use mirrorctl::spec::Os;

use crate::support::common::{example, with_backups};
use crate::support::{Moto, REGION, sdk_config};

const TABLE: &str = "mirrorctl-state";

/// A store on `table` of `moto` whose leases last `lease` (each call: a new holder identity, as a
/// new process would have).
async fn store(moto: &Moto, table: &str, lease: Duration) -> DynamoStore {
    DynamoStore::from_sdk_config(&sdk_config(&moto.endpoint()).await, table).with_lease_duration(lease)
}

/// moto with the table created through `DynamoStore::init`.
async fn moto_with_table() -> Moto {
    let moto = Moto::start();
    let s = store(&moto, TABLE, Duration::from_secs(1)).await;
    assert!(s.init().await.expect("create the table"), "created");
    assert!(!s.init().await.expect("init again"), "a second init finds it and does nothing");
    moto
}

fn cluster() -> ClusterName {
    ClusterName::parse("prod-db").unwrap()
}

fn rec(n: u32) -> Record {
    Record::TokenBurned { step: mirrorctl::plan::StepId(format!("test/step-{n}")), generation: n }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_held_lease_is_taken_over_only_after_its_heartbeat_stopped_for_a_whole_period() {
    let moto = moto_with_table().await;
    let period = Duration::from_millis(1200);
    let a = store(&moto, TABLE, period).await;
    let b = store(&moto, TABLE, period).await;
    let lease = a.acquire(&cluster()).await.expect("a takes the free lease");
    assert_eq!(lease.epoch, 1);
    assert_eq!(lease.holder, a.holder());

    // While a's heartbeat changes the record version, b never takes over, however long it waits.
    let err = b.acquire(&cluster()).await.expect_err("held by a");
    let StoreError::Busy { holder, retry_in, .. } = &err else { panic!("{err}") };
    assert!(holder.contains(a.holder()), "names the holder: {err}");
    // A live holder (a record version not seen before) is looked at again within a quarter
    // period, so its last heartbeat is noticed soon after it stops.
    assert_eq!(*retry_in, Some(period / 4), "{err}");
    for _ in 0..4 {
        tokio::time::sleep(period / 2).await;
        a.renew(&lease).await.expect("heartbeat");
        lease.check().expect("a heartbeat keeps the lease trusted");
        assert!(matches!(b.acquire(&cluster()).await, Err(StoreError::Busy { .. })), "a is alive");
    }

    // a stops (frozen, or dead): b has seen the same record version for a whole period.
    let first_look = tokio::time::Instant::now();
    let _ = b.acquire(&cluster()).await.expect_err("b's first look at this version");
    tokio::time::sleep(period / 2).await;
    let early = b.acquire(&cluster()).await.expect_err("half a period is not enough");
    assert!(matches!(early, StoreError::Busy { retry_in: Some(d), .. } if d < period), "{early}");
    // A third host that never looked before must wait its own whole period: no clocks compared.
    let c = store(&moto, TABLE, period).await;
    assert!(matches!(c.acquire(&cluster()).await, Err(StoreError::Busy { .. })));
    tokio::time::sleep(period.saturating_sub(first_look.elapsed()) + Duration::from_millis(50)).await;
    let taken = b.acquire(&cluster()).await.expect("b takes over");
    assert_eq!(taken.epoch, 2, "the epoch grows by one per change of holder");
    assert_eq!(b.takeovers(), 1);
    // a's own view: no heartbeat for a whole period, so it stops trusting the lease by itself.
    assert!(matches!(lease.check(), Err(StoreError::LeaseLost { .. })), "a stops acting without asking the store");
    let renew = a.renew(&lease).await.expect_err("a's heartbeat after the takeover");
    assert!(matches!(renew, StoreError::LeaseLost { epoch: 1, .. }), "{renew}");

    // A release lets the next holder in at once, and the epoch still only grows.
    b.release(&taken).await.expect("release");
    let again = c.acquire(&cluster()).await.expect("a released lease is free");
    assert_eq!(again.epoch, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deposed_holder_is_fenced_at_the_store() {
    let moto = moto_with_table().await;
    let period = Duration::from_millis(500);
    let a = store(&moto, TABLE, period).await;
    let b = store(&moto, TABLE, period).await;
    let old = a.acquire(&cluster()).await.expect("a holds");
    a.append(&old, 1, &rec(1)).await.expect("a's first record");

    // a freezes (no heartbeat); b takes over after a whole period of the same record version.
    let _ = b.acquire(&cluster()).await.expect_err("held");
    tokio::time::sleep(period + Duration::from_millis(50)).await;
    let new = b.acquire(&cluster()).await.expect("takeover");
    assert_eq!(new.epoch, 2);

    // a wakes and writes as if nothing happened (straight to the store, past its own clock check):
    // refused at the store, journal and status alike.
    let err = a.append(&old, 2, &rec(2)).await.expect_err("fenced");
    assert!(matches!(err, StoreError::LeaseLost { epoch: 1, .. }), "{err}");
    assert!(err.to_string().contains("lease on cluster prod-db (epoch 1) is lost"), "{err}");
    b.append(&new, 2, &rec(3)).await.expect("the new holder appends");
    let spec = example(Os::Windows);
    let doc = mirrorctl::status::StatusDoc::build(&spec, None, None, &[], None, jiff::Timestamp::UNIX_EPOCH);
    b.write_status(&doc, Some(&new)).await.expect("b's status");
    let stale = a.write_status(&doc, Some(&old)).await.expect_err("a's status under the old epoch");
    assert!(matches!(stale, StoreError::LeaseLost { .. }), "{stale}");

    // A fresh reader sees a's record 1 and b's record 2, nothing of a's late one.
    let reader = store(&moto, TABLE, period).await;
    assert_eq!(reader.read_journal(&cluster()).await.expect("journal"), vec![rec(1), rec(3)]);
    // Same position twice (an append whose answer was lost): refused, never overwritten.
    let dup = b.append(&new, 2, &rec(4)).await.expect_err("position taken");
    assert!(dup.to_string().contains("journal record 2 of prod-db exists already"), "{dup}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_errors_say_what_to_do() {
    let moto = Moto::start();
    let missing = store(&moto, "no-such-table", Duration::from_secs(1)).await;
    let err = missing.acquire(&cluster()).await.expect_err("no table");
    assert!(matches!(err, StoreError::MissingTable { .. }), "{err}");
    assert!(err.to_string().contains("create it with `mirrorctl store init --store dynamodb:no-such-table`"), "{err}");
    let err = missing.read_journal(&cluster()).await.expect_err("no table");
    assert!(matches!(err, StoreError::MissingTable { .. }), "{err}");

    // Nothing listening: a retryable failure that says so (the SDK's own retries are spent).
    let closed = {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        DynamoStore::from_sdk_config(&sdk_config(&format!("http://127.0.0.1:{port}")).await, TABLE)
    };
    let err = closed.acquire(&cluster()).await.expect_err("unreachable");
    assert!(matches!(err, StoreError::Failed { retryable: true, .. }), "{err}");
    assert!(err.to_string().contains("mirrorctl retries after a pause"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_keeps_its_journal_and_status_in_dynamodb_and_one_writer_at_a_time() {
    let moto = moto_with_table().await;
    // The simulated world at 2,000 model seconds per real second (this test runs in real time:
    // moto is a real server).
    let world = SimWorld::new(Scenario::windows_runbook(), 17, 2000.0);
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    let dynamo: Arc<dyn Store> = Arc::new(store(&moto, TABLE, Duration::from_secs(5)).await);
    let mut ctx = Context::with_store(world.ports(), Arc::clone(&dynamo));
    ctx.max_passes = Some(2_000);

    // Another host holds the lease: this reconcile is refused before it journals anything.
    let other = store(&moto, TABLE, Duration::from_secs(5)).await;
    let held = other.acquire(&spec.cluster.name).await.expect("the other host holds");
    let err = reconcile(&spec, &ctx).await.expect_err("busy");
    assert!(matches!(err, ReconcileError::Store(StoreError::Busy { retry_in: Some(_), .. })), "{err}");
    assert!(dynamo.read_journal(&spec.cluster.name).await.unwrap().is_empty(), "nothing journaled");
    other.release(&held).await.expect("release");

    assert_eq!(reconcile(&spec, &ctx).await.expect("backup"), Settled::Converged);
    let records = dynamo.read_journal(&spec.cluster.name).await.expect("journal");
    let op = OpId::Backup(mirrorctl::ids::BackupName::parse("b1").unwrap());
    assert!(records.iter().any(|r| matches!(r, Record::OpCompleted { op: o, .. } if *o == op)), "{records:?}");
    assert!(records.iter().filter(|r| matches!(r, Record::Intent { .. })).count() >= 4);
    let doc = dynamo.read_status(&spec.cluster.name).await.expect("status").expect("a status document");
    assert_eq!(doc.phase, mirrorctl::status::Phase::Converged);
    // The reconcile released its lease: another host takes it at once, one epoch later.
    let next = other.acquire(&spec.cluster.name).await.expect("released at the end");
    assert_eq!(next.epoch, 3);
}

#[test]
fn store_init_status_and_apply_through_the_cli() {
    let moto = Moto::start();
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_mirrorctl"))
            .args(args)
            .current_dir(dir.path())
            .env_remove("MIRRORCTL_STATE_DIR")
            .env_remove("MIRRORCTL_STORE")
            .env_remove("AWS_PROFILE")
            .env("AWS_ENDPOINT_URL", moto.endpoint())
            .env("AWS_REGION", REGION)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .output()
            .expect("mirrorctl runs");
        let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        eprintln!("$ mirrorctl {}\n-> {:?}\n{stdout}{stderr}", args.join(" "), out.status.code());
        (out.status.code(), format!("{stdout}{stderr}"))
    };
    let (code, out) = run(&["status", "--store", "dynamodb:mirrorctl-t1"]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("create it with `mirrorctl store init --store dynamodb:mirrorctl-t1`"), "{out}");
    let (code, out) = run(&["store", "init", "--store", "dynamodb:mirrorctl-t1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("created DynamoDB table mirrorctl-t1"), "{out}");
    let (code, out) = run(&["store", "init", "--store", "dynamodb:mirrorctl-t1"]);
    assert_eq!((code, out.contains("exists already")), (Some(0), true), "{out}");
    let (code, out) = run(&["status", "--store", "dynamodb:mirrorctl-t1"]);
    assert_eq!((code, out.contains("no clusters have status in dynamodb:mirrorctl-t1 yet")), (Some(0), true), "{out}");
    let (code, out) = run(&["status", "--store", "s3:bucket"]);
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("expected `dir` (the state directory) or `dynamodb:TABLE`"), "{out}");

    // A whole backup in the lab world with its journal and status in the table.
    let file = dir.path().join("prod-db.toml");
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/desired-state/prod-db.toml"))
        .expect("example")
        .replace("[backup]", "[backup]\ntake = [\"b1\"]");
    std::fs::write(&file, text).unwrap();
    let (code, out) =
        run(&["apply", "prod-db.toml", "--world", "lab", "--speed", "2000", "--store", "dynamodb:mirrorctl-t1"]);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = run(&["status", "prod-db", "--store", "dynamodb:mirrorctl-t1"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("phase:     converged") && out.contains("backup/b1"), "{out}");
    assert!(!dir.path().join("state/journal").exists(), "the journal is not on the local disk");
    // The default store still reads the state directory, which has no status.
    let (code, out) = run(&["status", "prod-db"]);
    assert_eq!(code, Some(64), "{out}");
}

/// A holder whose lease is taken while it reconciles stops: its heartbeat finds the lease gone,
/// the loop stops at the next step boundary, and nothing it tries after that reaches the journal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconcile_whose_lease_is_taken_stops_and_writes_nothing_more() {
    let moto = moto_with_table().await;
    // Slow enough that the backup is still running when the lease is taken.
    let world = SimWorld::new(Scenario::windows_runbook(), 19, 20.0);
    let spec = with_backups(example(Os::Windows), &["b1"], 7);
    let dynamo: Arc<dyn Store> = Arc::new(store(&moto, TABLE, Duration::from_millis(900)).await);
    let mut ctx = Context::with_store(world.ports(), Arc::clone(&dynamo));
    ctx.max_passes = Some(2_000);
    let pass = tokio::spawn({
        let spec = spec.clone();
        async move { reconcile(&spec, &ctx).await }
    });
    // Another host takes the lease (as a takeover would: a new holder, the next epoch).
    tokio::time::sleep(Duration::from_millis(700)).await;
    let sdk = aws_sdk_dynamodb::Client::new(&sdk_config(&moto.endpoint()).await);
    sdk.update_item()
        .table_name(TABLE)
        .key("pk", aws_sdk_dynamodb::types::AttributeValue::S(spec.cluster.name.to_string()))
        .key("sk", aws_sdk_dynamodb::types::AttributeValue::S("lease".into()))
        .update_expression("SET holder = :h, epoch = epoch + :one")
        .expression_attribute_values(":h", aws_sdk_dynamodb::types::AttributeValue::S("thief".into()))
        .expression_attribute_values(":one", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .send()
        .await
        .expect("steal the lease");
    let taken_at = dynamo.read_journal(&spec.cluster.name).await.expect("journal").len();
    assert!(taken_at > 0, "the backup had started");
    let err = tokio::time::timeout(Duration::from_secs(30), pass).await.expect("stops promptly").unwrap().unwrap_err();
    // Found by the heartbeat (a store error of the loop) or by a fenced append (the executor's).
    assert!(
        matches!(
            err,
            ReconcileError::Store(StoreError::LeaseLost { epoch: 1, .. })
                | ReconcileError::Exec(ExecError::Store(StoreError::LeaseLost { epoch: 1, .. }))
        ),
        "{err}"
    );
    let records = dynamo.read_journal(&spec.cluster.name).await.expect("journal");
    assert_eq!(records.len(), taken_at, "nothing journaled after the lease was taken: {:?}", &records[taken_at..]);
    assert!(!records.iter().any(|r| matches!(r, Record::OpCompleted { .. })), "the backup did not go on");
}

/// Cluster files (the command adapter's md template and pending-resume marker) live in the table:
/// another host reads what one wrote; a removal of a missing file is fine; a name that is a path
/// is refused; journal and status listing never see them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_files_are_shared_through_the_table() {
    let moto = moto_with_table().await;
    let a = store(&moto, TABLE, Duration::from_secs(5)).await;
    let b = store(&moto, TABLE, Duration::from_secs(5)).await;
    assert_eq!(b.read_cluster_file(&cluster(), "template-md.json").await.expect("read"), None);
    a.write_cluster_file(&cluster(), "template-md.json", b"{\"md\":1}").await.expect("write");
    a.write_cluster_file(&cluster(), "pending-resume", b"x\n").await.expect("write");
    assert_eq!(b.read_cluster_file(&cluster(), "template-md.json").await.expect("read"), Some(b"{\"md\":1}".to_vec()));
    b.remove_cluster_file(&cluster(), "pending-resume").await.expect("remove");
    b.remove_cluster_file(&cluster(), "pending-resume").await.expect("remove twice");
    assert_eq!(a.read_cluster_file(&cluster(), "pending-resume").await.expect("read"), None);
    let err = a.write_cluster_file(&cluster(), "../x", b"").await.expect_err("a path");
    assert!(err.to_string().contains("not a plain file name"), "{err}");
    assert!(a.read_journal(&cluster()).await.expect("journal").is_empty());
    assert!(a.list_status().await.expect("status").is_empty());
}
