//! The `mirrorctl` commands, one file each; this module holds the argument types, the error type
//! that owns its exit code, and the dispatcher.
//!
//! Exit codes: 0 success (for `plan`: nothing to do), 2 `plan` has changes pending, 3 blocked
//! (needs a human), 4 `apply --plan` refused a saved plan that no longer matches the file or the
//! world, 5 `apply` interrupted at a step boundary, 130 a second interrupt (exit at once), 64 usage,
//! 65 invalid desired state, 73 the state directory cannot be written, 1 any other error.

pub mod apply;
pub mod bench_command;
pub mod chaos_command;
pub mod lab_command;
pub mod plan;
pub mod run;
pub mod signals;
pub mod snapshots;
pub mod status;
pub mod validate;
pub mod world;

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

use crate::adapters::store::StoreSpec;

/// `mirrorctl --version`: the version and the build profile (`bench --binary` reads it).
const LONG_VERSION: &str = if cfg!(debug_assertions) {
    concat!(env!("CARGO_PKG_VERSION"), " (debug build)")
} else {
    concat!(env!("CARGO_PKG_VERSION"), " (release build)")
};

/// Command line.
#[derive(Debug, Parser)]
#[command(
    name = "mirrorctl",
    version,
    long_version = LONG_VERSION,
    about = "Backs up and restores CLUSTERPRO mirror disks on AWS, the Kubernetes way"
)]
pub struct Cli {
    /// Where journals, status documents and the lab world live [default: state; for `run`, its
    /// settings file may name it].
    #[arg(long, global = true, env = "MIRRORCTL_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where journals, status documents and leases live: `dir` (the state directory) or
    /// `dynamodb:TABLE` (shared by several hosts; region and endpoint from the usual AWS
    /// configuration) [default: dir; for `run`, its settings file may name it].
    #[arg(long, global = true, env = "MIRRORCTL_STORE")]
    pub store: Option<String>,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// More logging (-v info, -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Log output format.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable.
    Text,
    /// One JSON object per line.
    Json,
}

/// Output format of the commands that print results (`-o`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Human-readable.
    Text,
    /// JSON.
    Json,
}

/// Which world the ports talk to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorldKind {
    /// Real AWS, CLUSTERPRO and servers (`plan` first checks EC2 permissions with `DryRun`).
    Aws,
    /// The simulated world persisted under the state directory.
    Lab,
}

/// World options shared by `plan` and `apply`.
#[derive(Debug, Clone, clap::Args)]
pub struct WorldArgs {
    /// Which world to act on: `aws` (the real cluster) or `lab` (the simulated one). Required:
    /// mirrorctl never picks real AWS by default.
    #[arg(long, value_enum, env = "MIRRORCTL_WORLD")]
    pub world: Option<WorldKind>,
    /// Lab world file (default: <state-dir>/lab/<cluster>.json, the daemon's; created from the
    /// desired state if missing).
    #[arg(long)]
    pub world_file: Option<PathBuf>,
    /// Lab speed factor (model seconds per real second).
    #[arg(long, default_value_t = 1.0)]
    pub speed: f64,
}

impl WorldArgs {
    /// The world asked for, or a usage error saying how to ask: the world is never implied.
    pub fn kind(&self) -> Result<WorldKind, CliError> {
        self.world.ok_or_else(|| {
            CliError::Usage(
                "say which world to act on: --world aws (the real cluster: EC2 with your AWS credentials, \
                 CLUSTERPRO and the servers) or --world lab (a simulated cluster under the state directory); \
                 MIRRORCTL_WORLD=aws|lab sets it for a shell"
                    .into(),
            )
        })
    }
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Parse and check desired-state files (default: ./desired-state).
    Validate {
        /// Files or directories.
        paths: Vec<PathBuf>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Show what the next reconcile would do now, and the whole sequence after it.
    Plan {
        /// Desired-state file.
        file: PathBuf,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Save the plan (with the observed-state fingerprint) for `apply --plan`.
        #[arg(long)]
        out: Option<PathBuf>,
        /// World.
        #[command(flatten)]
        world: WorldArgs,
    },
    /// Reconcile until converged or blocked.
    Apply {
        /// Desired-state file.
        file: PathBuf,
        /// Refuse to act if the desired-state file or the world changed since this saved plan.
        #[arg(long)]
        plan: Option<PathBuf>,
        /// Output format (`json`: one JSON object per line).
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// World.
        #[command(flatten)]
        world: WorldArgs,
    },
    /// Show clusters' status.
    Status {
        /// Cluster name (default: all).
        name: Option<String>,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Watch: print again on every change until no operation is under way (or Ctrl-C); with
        /// `-o json`, one JSON document per line and change.
        #[arg(short, long)]
        watch: bool,
    },
    /// List the cluster's backup snapshots from EC2, newest first (name, point in time, state,
    /// progress, size): what `restore.snapshot` can name.
    Snapshots {
        /// The cluster's desired-state file, or its name (`desired-state/NAME.toml`).
        target: String,
        /// Output format.
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// World.
        #[command(flatten)]
        world: WorldArgs,
    },
    /// The daemon: reconcile every file of the desired-state directory, forever.
    Run(run::RunArgs),
    /// Manage the state store named by `--store`.
    #[command(subcommand)]
    Store(StoreCommand),
    /// Back up, break, restore and verify a simulated two-node cluster: no AWS account needed.
    Lab {
        /// Model seconds per real second.
        #[arg(long, default_value_t = 200.0)]
        speed: f64,
        /// Seed of the latency model and ids.
        #[arg(long, default_value_t = 42)]
        seed: u64,
        /// Operating system of the simulated cluster.
        #[arg(long, value_enum, default_value_t = LabOs::Windows)]
        os: LabOs,
        /// CLUSTERPRO procedure: `auto` (the simulated cluster runs X 5.1, so NEC's
        /// clpbackup/clprestore), `vendor` or `reconfigure` (the runbook's configuration edit).
        #[arg(long, value_enum, default_value_t = LabProcedure::Auto)]
        procedure: LabProcedure,
        /// Restore with `mirror.volume.fast_restore = true`: Fast Snapshot Restore enabled for the
        /// backup in both zones, the volumes created fully initialized, FSR disabled again.
        #[arg(long)]
        fast_restore: bool,
        /// Number of md resources of the simulated cluster: 1 (the runbook's) or 2 (a database's
        /// data and logs, each on a volume of its own, backed up as one snapshot set and restored
        /// by backup name with the configuration edit).
        #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
        mirrors: u8,
        /// Output format (`json`: one document: events, timeline, calls, checks as fields).
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
    },
    /// Measure the performance figures against their targets in the simulated world (paused time; prints a table).
    #[command(args_conflicts_with_subcommands = true)]
    Bench {
        /// A campaign instead of the figures table.
        #[command(subcommand)]
        mode: Option<BenchMode>,
        /// One run instead of five seeds.
        #[arg(long)]
        quick: bool,
        /// First seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// The `mirrorctl` executable whose footprint is measured (e.g. a release build); default:
        /// this one.
        #[arg(long)]
        binary: Option<PathBuf>,
        /// Output format (`json`: one document with every figure as fields).
        #[arg(short, long, value_enum, default_value_t = Output::Text)]
        output: Output,
        /// Run only these parts, comma-separated (e.g. `--only footprint --binary
        /// target/release/mirrorctl`); default: all.
        #[arg(long, value_enum, value_delimiter = ',')]
        only: Vec<crate::harness::bench::Part>,
    },
    /// Print the manual page (roff, generated from this command line's own definition) on stdout,
    /// e.g. `mirrorctl man | man -l -`; `--dir` writes one page per command instead.
    Man {
        /// Write `mirrorctl.1` and `mirrorctl-<command>.1` for every command into this directory.
        #[arg(long)]
        dir: Option<PathBuf>,
    },
    /// Print a shell completion script on stdout (e.g. `mirrorctl completions bash >
    /// /etc/bash_completion.d/mirrorctl`).
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// The campaigns `mirrorctl bench` runs besides its figures table.
#[derive(Debug, Subcommand)]
pub enum BenchMode {
    /// The kill -9 chaos campaign: the real daemon on persisted lab worlds, killed at random
    /// points of backups and restores and restarted; the worlds' own state judges the outcome.
    Chaos(chaos_command::ChaosArgs),
}

/// What `mirrorctl store` does.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Create the store: the DynamoDB table (on demand, key `pk` + `sk`) or the state directory.
    Init,
}

/// `lab --procedure`: `cluster.procedure` of the lab's desired state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabProcedure {
    /// By the cluster's version.
    Auto,
    /// NEC's pre- and post-processing commands.
    Vendor,
    /// The configuration edit.
    Reconfigure,
}

impl From<LabProcedure> for crate::spec::ProcedureChoice {
    fn from(p: LabProcedure) -> Self {
        match p {
            LabProcedure::Auto => crate::spec::ProcedureChoice::Auto,
            LabProcedure::Vendor => crate::spec::ProcedureChoice::Vendor,
            LabProcedure::Reconfigure => crate::spec::ProcedureChoice::Reconfigure,
        }
    }
}

/// The lab's cluster flavour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LabOs {
    /// The runbook's Windows cluster.
    Windows,
    /// A Linux cluster.
    Linux,
}

impl From<LabOs> for crate::spec::Os {
    fn from(os: LabOs) -> Self {
        match os {
            LabOs::Windows => crate::spec::Os::Windows,
            LabOs::Linux => crate::spec::Os::Linux,
        }
    }
}

impl From<crate::harness::HarnessError> for CliError {
    fn from(e: crate::harness::HarnessError) -> Self {
        match e {
            crate::harness::HarnessError::Usage(text) => CliError::Usage(text),
            other => CliError::Other(Box::new(other)),
        }
    }
}

/// A user-facing error; it owns its exit code and is printed once, by `main`.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Invalid desired state (already rendered with `file:line:column`).
    #[error("{0}")]
    InvalidSpec(String),
    /// Bad usage.
    #[error("{0}")]
    Usage(String),
    /// A saved plan no longer matches the desired-state file or the world.
    #[error("{0}")]
    StalePlan(String),
    /// The state directory cannot be written.
    #[error("{0}")]
    StateDir(String),
    /// A failure of something below the CLI, said in its own words (its causes follow in
    /// [`CliError::report`]).
    #[error(transparent)]
    Other(Box<dyn std::error::Error + Send + Sync + 'static>),
    /// A failure with what the CLI was doing; the cause and its causes follow in
    /// [`CliError::report`].
    #[error("{context}")]
    Caused {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
}

/// An error and its causes in one line, `outer: cause: its cause`, each cause once: one whose
/// words the line already holds (an error that prints its source itself) is not repeated.
pub fn cause_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        let text = c.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = c.source();
    }
    out
}

impl CliError {
    /// A failure of something below the CLI, said in its own words.
    pub fn other<E: std::error::Error + Send + Sync + 'static>(e: E) -> Self {
        CliError::Other(Box::new(e))
    }

    /// A failure while doing `context`, keeping `source` (and its causes) for the report.
    pub fn caused(context: impl Into<String>, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        CliError::Caused { context: context.into(), source: Box::new(source) }
    }

    /// The text `main` prints on stderr. A desired-state error is already rendered with its own
    /// `error[code]:` heading, so it is not prefixed with another `error:`.
    pub fn report(&self) -> String {
        match self {
            CliError::InvalidSpec(text) => text.trim_end().to_owned(),
            _ => format!("error: {}", cause_chain(self)),
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> u8 {
        match self {
            CliError::InvalidSpec(_) => crate::spec::EXIT_INVALID,
            CliError::Usage(_) => EXIT_USAGE,
            CliError::StalePlan(_) => EXIT_STALE_PLAN,
            CliError::StateDir(_) => EXIT_STATE_DIR,
            CliError::Other(_) | CliError::Caused { .. } => EXIT_FAILED,
        }
    }
}

/// Exit code: the cluster is blocked and needs a human.
pub const EXIT_BLOCKED: u8 = 3;
/// Exit code: bad usage (also for command-line parse errors, which clap would exit 2 with).
pub const EXIT_USAGE: u8 = 64;
/// Exit code of `plan`: changes pending.
pub const EXIT_CHANGES: u8 = 2;
/// Exit code of `apply --plan`: the saved plan no longer matches the desired-state file or the
/// world (nothing was done; plan again and review).
pub const EXIT_STALE_PLAN: u8 = 4;
/// Exit code of `apply`: stopped by a signal at a step boundary (resumable: run it again).
pub const EXIT_INTERRUPTED: u8 = 5;
/// Exit code of `apply` and `run`: a second signal, exit at once (still resumable).
pub const EXIT_ABORTED: u8 = 130;

/// Exit code of `apply` and `run`: the state directory cannot be written (sysexits'
/// `EX_CANTCREAT`). Like 65, restarting does not help: the systemd unit does not restart on it.
pub const EXIT_STATE_DIR: u8 = 73;

/// Checks, before anything is done, that `dir` and the directories mirrorctl writes in it
/// (`journal/`, `status/`) can be created and written: a file is created, synced and removed in
/// each. A journal that cannot be written would otherwise surface only at the first step's
/// intent, or — in the daemon — as a worker failing forever behind a green health check.
///
/// With `local_store` (the default store) its `journal/` and `status/` folders are checked too; the
/// DynamoDB store keeps those in its table, and the state directory holds only the lab world and
/// `clp.conf` copies.
pub fn check_state_dir(dir: &std::path::Path, local_store: bool) -> Result<(), CliError> {
    use std::io::Write as _;
    let fail = |at: &std::path::Path, e: std::io::Error| {
        let uid = std::fs::read_to_string("/proc/self/status")
            .ok()
            .and_then(|s| {
                s.lines().find_map(|l| l.strip_prefix("Uid:").map(|u| u.split_whitespace().next().map(str::to_owned)))
            })
            .flatten()
            .map_or_else(String::new, |u| format!(" (uid {u})"));
        CliError::StateDir(format!(
            "the state directory {} is not writable: {}: {e}. mirrorctl keeps its journal and status documents \
             there and writes them before every step; give the user running mirrorctl{uid} write access, or \
             choose another directory with --state-dir; nothing was done",
            dir.display(),
            at.display()
        ))
    };
    let subs =
        if local_store { vec![dir.to_owned(), dir.join("journal"), dir.join("status")] } else { vec![dir.to_owned()] };
    for sub in subs {
        std::fs::create_dir_all(&sub).map_err(|e| fail(&sub, e))?;
        let probe = sub.join(format!(".write-check-{}", std::process::id()));
        let written = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&probe)
            .and_then(|mut f| f.write_all(b"mirrorctl").and_then(|()| f.sync_all()));
        let removed = std::fs::remove_file(&probe);
        written.and(removed).map_err(|e| fail(&sub, e))?;
    }
    Ok(())
}

/// Exit code of a command's failure that has no code of its own.
pub const EXIT_FAILED: u8 = 1;

/// The exit codes each command can end with (besides [`EXIT_USAGE`] for any command-line error
/// and 65 for an invalid desired-state file, which every command that reads one can return), by
/// the command's name as the README's commands table writes it. A unit test holds the README's
/// table to this one, so a code changed here must be documented there.
pub const EXIT_CODES: &[(&str, &[u8])] = &[
    ("validate", &[0, crate::spec::EXIT_INVALID]),
    ("plan", &[0, EXIT_CHANGES, EXIT_FAILED]),
    ("apply", &[0, EXIT_BLOCKED, EXIT_STALE_PLAN, EXIT_INTERRUPTED, EXIT_STATE_DIR, EXIT_ABORTED, EXIT_FAILED]),
    ("status", &[0]),
    ("snapshots", &[0, EXIT_FAILED]),
    ("store init", &[0, EXIT_FAILED]),
    ("lab", &[0, EXIT_FAILED]),
    ("bench", &[0, EXIT_FAILED]),
    ("bench chaos", &[0, EXIT_FAILED]),
    ("run", &[0, EXIT_FAILED, EXIT_ABORTED, crate::spec::EXIT_INVALID, EXIT_STATE_DIR]),
    ("completions", &[0]),
    ("man", &[0, EXIT_FAILED]),
];

/// Sets up `tracing` on stderr.
pub fn init_logging(cli: &Cli) {
    let level = match cli.verbose {
        // The daemon's log is its audit trail: one line per action by default.
        0 if matches!(cli.command, Command::Run(_)) => "info",
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MIRRORCTL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Colour only on a terminal: escape codes in a redirected log or a CI transcript are noise.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let journal = std::env::var_os("JOURNAL_STREAM").is_some();
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    let _ = match cli.log_format {
        LogFormat::Text => {
            builder.event_format(JournalPriority::new(journal, tracing_subscriber::fmt::format())).try_init()
        }
        LogFormat::Json => builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(JournalPriority::new(journal, tracing_subscriber::fmt::format().json()))
            .try_init(),
    };
}

/// An event format that, when stderr goes to the systemd journal, starts each event with its
/// syslog priority as sd-daemon(3) defines it (`<3>` error, `<4>` warning, `<6>` info, `<7>`
/// debug and trace). systemd sets `JOURNAL_STREAM` for a service whose stderr is the journal
/// (systemd.exec(5)), and journald strips the prefix and files the line at that priority
/// (`SyslogLevelPrefix=`, on by default): without it every line, errors included, is `info`.
struct JournalPriority<F> {
    on: bool,
    inner: F,
}

impl<F> JournalPriority<F> {
    fn new(on: bool, inner: F) -> Self {
        JournalPriority { on, inner }
    }
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for JournalPriority<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        if self.on {
            let priority = match *event.metadata().level() {
                tracing::Level::ERROR => 3,
                tracing::Level::WARN => 4,
                tracing::Level::INFO => 6,
                _ => 7,
            };
            write!(writer, "<{priority}>")?;
        }
        self.inner.format_event(ctx, writer, event)
    }
}

/// Runs a parsed command line; returns the exit code of a normal end.
pub async fn run(cli: Cli) -> Result<u8, CliError> {
    let state_dir = cli.state_dir.clone().unwrap_or_else(|| PathBuf::from("state"));
    let store_spec = cli.store.as_deref().map(StoreSpec::parse).transpose().map_err(CliError::Usage)?;
    let store = || async { store_spec.clone().unwrap_or(StoreSpec::Dir).open(&state_dir).await };
    match cli.command {
        Command::Run(args) => run::run(&args, cli.state_dir.as_deref(), store_spec.clone()).await,
        Command::Store(StoreCommand::Init) => store_init(&state_dir, store_spec.as_ref()).await,
        Command::Validate { paths, output } => validate::run(&paths, output),
        Command::Plan { file, output, out, world } => {
            Box::pin(plan::run(&state_dir, store().await, &file, output, out.as_deref(), &world)).await
        }
        Command::Apply { file, plan, world, output } => {
            Box::pin(apply::run(&state_dir, store().await, &file, plan.as_deref(), &world, output)).await
        }
        Command::Status { name, output, watch: false } => {
            status::run(store().await.as_ref(), name.as_deref(), output).await
        }
        Command::Status { name, output, watch: true } => {
            status::watch(store().await.as_ref(), name.as_deref(), output).await
        }
        Command::Snapshots { target, output, world } => {
            snapshots::run(&state_dir, store().await, &target, &world, output).await
        }
        Command::Lab { speed, seed, os, procedure, fast_restore, mirrors, output } => {
            let options = crate::harness::lab::LabOptions {
                speed,
                seed,
                os: os.into(),
                procedure: procedure.into(),
                fast_restore,
                mirrors,
            };
            lab_command::run(&state_dir, options, output).await
        }
        Command::Bench { mode: Some(BenchMode::Chaos(args)), .. } => {
            chaos_command::run(&state_dir, &args, store_spec.as_ref()).await
        }
        Command::Bench { mode: None, quick, seed, binary, output, only } => {
            bench_command::run(&state_dir, quick, seed, output, binary.as_deref(), &only)
        }
        Command::Man { dir } => man(dir.as_deref()),
        Command::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "mirrorctl", &mut std::io::stdout());
            Ok(0)
        }
    }
}

/// `mirrorctl man`: the manual page on stdout, or every command's page written into `dir`.
fn man(dir: Option<&std::path::Path>) -> Result<u8, CliError> {
    let command = <Cli as clap::CommandFactory>::command();
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir)
            .and_then(|()| clap_mangen::generate_to(command, dir))
            .map_err(|e| CliError::caused(format!("writing the manual pages into {}", dir.display()), e))?;
        println!("manual pages written into {}", dir.display());
    } else {
        clap_mangen::Man::new(command)
            .render(&mut std::io::stdout())
            .map_err(|e| CliError::caused("writing the manual page", e))?;
    }
    Ok(0)
}

/// `mirrorctl store init`: creates the DynamoDB table (or the state directory) named by `--store`.
async fn store_init(state_dir: &std::path::Path, spec: Option<&StoreSpec>) -> Result<u8, CliError> {
    match spec {
        None | Some(StoreSpec::Dir) => {
            std::fs::create_dir_all(state_dir)
                .map_err(|e| CliError::caused(format!("creating the state directory {}", state_dir.display()), e))?;
            println!("state directory {} is ready (the default store needs nothing else)", state_dir.display());
        }
        Some(StoreSpec::Dynamo { table }) => {
            let store = crate::adapters::store::DynamoStore::connect(table).await;
            let created = store.init().await.map_err(CliError::other)?;
            if created {
                println!("created DynamoDB table {table} (on-demand; key pk + sk); it is active");
            } else {
                println!("DynamoDB table {table} exists already with the right key schema; nothing to do");
            }
        }
    }
    Ok(0)
}

/// Loads one desired-state file or returns its rendered errors.
pub fn load_spec(file: &std::path::Path) -> Result<crate::spec::Spec, CliError> {
    crate::spec::load_file(file).map_err(|e| CliError::InvalidSpec(e.to_string()))
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::EXIT_CODES;

    /// An error that does not print its source itself.
    #[derive(Debug, thiserror::Error)]
    #[error("reading the md template")]
    struct Middle(#[source] std::io::Error);

    #[test]
    fn the_report_walks_the_causes_and_prints_each_once() {
        use super::CliError;
        let io = || std::io::Error::other("disk full");
        let caused = CliError::Caused {
            context: "cannot reach cluster c1 (--world aws)".into(),
            source: Box::new(Middle(io())),
        };
        assert_eq!(caused.report(), "error: cannot reach cluster c1 (--world aws): reading the md template: disk full");
        // The journal's I/O error prints its source itself: it is not repeated.
        let journal = crate::journal::JournalError::Io { path: "/s/journal/c1.jsonl".into(), source: io() };
        assert_eq!(CliError::Other(Box::new(journal)).report(), "error: journal /s/journal/c1.jsonl: disk full");
        assert_eq!(CliError::Other(Box::new(Middle(io()))).exit_code(), super::EXIT_FAILED);
    }

    #[tokio::test]
    async fn a_store_failure_reaches_the_report_as_a_cause_not_a_string() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = crate::journal::local::LocalStore::new(dir.path());
        let cluster = crate::ids::ClusterName::parse("c1").expect("a valid name");
        // A directory where the status document should be: reading it fails.
        std::fs::create_dir_all(crate::status::StatusDoc::path_for(dir.path(), &cluster)).expect("mkdir");
        let err = super::status::run(&store, Some("c1"), super::Output::Text).await.expect_err("unreadable status");
        let typed = matches!(&err, super::CliError::Other(inner) if inner.is::<crate::ports::store::StoreError>());
        assert!(typed, "the store's error is kept as a typed cause: {err:?}");
        assert_eq!(err.exit_code(), super::EXIT_FAILED);
    }

    /// The README's commands table: command name → the exit codes its last column lists.
    fn readme_exit_codes() -> BTreeMap<String, BTreeSet<u8>> {
        let readme = include_str!("../../README.md");
        let mut table: BTreeMap<String, BTreeSet<u8>> = BTreeMap::new();
        for line in readme.lines().filter(|l| l.starts_with("| `mirrorctl ")) {
            let usage = line.trim_start_matches("| `mirrorctl ").split('`').next().unwrap_or_default();
            let name: Vec<&str> = usage
                .split_whitespace()
                .take_while(|w| w.chars().all(|c| c.is_ascii_lowercase() || c == '-') && !w.starts_with('-'))
                .collect();
            let codes_column = line.trim_end_matches('|').rsplit('|').next().unwrap_or_default();
            let codes = codes_column
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u8>().ok())
                .collect::<BTreeSet<u8>>();
            table.entry(name.join(" ")).or_default().extend(codes);
        }
        table
    }

    #[test]
    fn the_readme_commands_table_lists_the_exit_codes_the_code_returns() {
        let readme = readme_exit_codes();
        let code: BTreeMap<String, BTreeSet<u8>> =
            EXIT_CODES.iter().map(|(name, codes)| ((*name).to_owned(), codes.iter().copied().collect())).collect();
        assert_eq!(readme, code, "README.md's commands table (left) and cli::EXIT_CODES (right) disagree");
    }

    #[test]
    fn every_command_has_its_row() {
        let readme = readme_exit_codes();
        for name in [
            "validate",
            "plan",
            "apply",
            "status",
            "snapshots",
            "man",
            "lab",
            "bench",
            "bench chaos",
            "run",
            "completions",
        ] {
            assert!(readme.contains_key(name), "no README row for {name}: {readme:?}");
        }
    }
}
