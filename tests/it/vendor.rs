//! NEC's pre- and post-processing (`procedure = "vendor"` / `"auto"` on X 4.3+): the choice of
//! procedure, and the simulator refusing misuse the way the real commands are believed to
//! (`src/adapters/clusterpro/VENDOR.md`).

use crate::support::common;

use common::{Lab, example_on, with_backups};
use mirrorctl::ids::ServerName;
use mirrorctl::plan::Action;
use mirrorctl::ports::ErrorClass;
use mirrorctl::ports::cluster::{VendorCall, VendorOp, VendorPhase};
use mirrorctl::reconcile::Settled;
use mirrorctl::sim::Scenario;
use mirrorctl::spec::{Os, ProcedureChoice};

fn x42() -> Lab {
    let mut scenario = Scenario::windows_runbook();
    "4.2.0".clone_into(&mut scenario.version);
    Lab::new(scenario, 7)
}

fn call(op: VendorOp, phase: VendorPhase) -> VendorCall {
    VendorCall { op, phase, skip_copy: false, only: false }
}

#[tokio::test(start_paused = true)]
async fn vendor_on_x42_is_refused_before_anything_changes_naming_the_version() {
    let lab = x42();
    let spec = with_backups(example_on(Os::Windows, ProcedureChoice::Vendor), &["b1"], 7);
    match lab.apply(&spec).await {
        Settled::Blocked(c) => {
            assert_eq!(c.reason, "vendor-procedure-unsupported", "{c:?}");
            assert!(c.message.contains("X 4.2"), "names the version: {}", c.message);
            assert!(c.action.contains("procedure = \"auto\" or \"reconfigure\""), "{}", c.action);
        }
        other @ Settled::Converged => panic!("vendor on X 4.2 must block, got {other:?}"),
    }
    assert!(lab.actions(&spec).is_empty(), "nothing ran, not even the preflight");
}

#[tokio::test(start_paused = true)]
async fn auto_takes_the_configuration_edit_below_x43_and_nec_procedure_from_it() {
    let lab = x42();
    let spec = with_backups(example_on(Os::Windows, ProcedureChoice::Auto), &["b1"], 7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let kinds: Vec<String> = lab.actions(&spec).into_iter().map(|(s, _)| s).collect();
    assert!(kinds.iter().any(|s| s == "backup/b1/shutdown-restart@server2"), "clpdown on X 4.2: {kinds:?}");
    assert!(!lab.actions(&spec).iter().any(|(_, a)| matches!(a, Action::Vendor { .. })), "{kinds:?}");

    assert_eq!(procedure_in_status(&lab.state_dir(), &spec), "completed · reconfigure procedure");

    let lab = Lab::windows(7);
    assert_eq!(lab.apply(&spec).await, Settled::Converged);
    let steps: Vec<String> = lab.actions(&spec).into_iter().map(|(s, _)| s).collect();
    for want in ["backup/b1/backup-pre@server2", "backup/b1/backup-post@server2"] {
        assert!(steps.iter().any(|s| s == want), "{want} on X 5.1: {steps:?}");
    }
    assert!(!steps.iter().any(|s| s.contains("/shutdown")), "{steps:?}");
    // Status says which procedure ran.
    assert_eq!(procedure_in_status(&lab.state_dir(), &spec), "completed · vendor procedure");
}

/// The backup's state in the status document, with its time left out.
fn procedure_in_status(state_dir: &std::path::Path, spec: &mirrorctl::spec::Spec) -> String {
    use mirrorctl::status::StatusDoc;
    let doc = StatusDoc::read(&StatusDoc::path_for(state_dir, &spec.cluster.name)).expect("status");
    let Some(op) = doc.operations.get("backup/b1") else { return String::new() };
    let state = serde_json::to_value(op.state).expect("a word");
    format!("{} · {} procedure", state.as_str().unwrap_or_default(), op.procedure.as_deref().unwrap_or("no"))
}

#[tokio::test(start_paused = true)]
async fn the_simulated_commands_refuse_misuse() {
    let lab = Lab::windows(3);
    let clp = lab.world.ports().cluster;
    let (s1, s2) = (ServerName::parse("server1").unwrap(), ServerName::parse("server2").unwrap());
    // The group runs on server1: a restore pre anywhere, a backup pre there, would take it down.
    let e = clp.vendor(&s2, &call(VendorOp::Restore, VendorPhase::Pre)).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("GroupOnline", ErrorClass::NeedsHuman), "{e}");
    let e = clp.vendor(&s1, &call(VendorOp::Backup, VendorPhase::Pre)).await.unwrap_err();
    assert_eq!(e.code, "GroupOnline", "{e}");
    // A post with nothing to finish is done already; --skip-copy belongs to clprestore.
    let e = clp.vendor(&s2, &call(VendorOp::Backup, VendorPhase::Post)).await.unwrap_err();
    assert_eq!((e.code.as_str(), e.class), ("NotInVendorMode", ErrorClass::AlreadyDone), "{e}");
    let skip = VendorCall { skip_copy: true, ..call(VendorOp::Backup, VendorPhase::Pre) };
    assert_eq!(clp.vendor(&s2, &skip).await.unwrap_err().code, "InvalidOption");
    // The standby's backup pre: it leaves, and a second pre answers "already".
    clp.vendor(&s2, &call(VendorOp::Backup, VendorPhase::Pre)).await.expect("backup pre on the standby");
    let e = clp.vendor(&s2, &call(VendorOp::Backup, VendorPhase::Pre)).await.unwrap_err();
    assert_eq!(e.class, ErrorClass::AlreadyDone, "{e}");
    // The other command cannot run on a server inside backup processing.
    let e = clp.vendor(&s2, &call(VendorOp::Restore, VendorPhase::Post)).await.unwrap_err();
    assert!(matches!(e.code.as_str(), "VendorModeMismatch" | "ServerDown"), "{e}");

    // X 4.2 has no clpbackup at all.
    let old = x42();
    let e = old.world.ports().cluster.vendor(&s2, &call(VendorOp::Backup, VendorPhase::Pre)).await.unwrap_err();
    assert_eq!(e.code, "ClpCommandNotFound", "{e}");
}
