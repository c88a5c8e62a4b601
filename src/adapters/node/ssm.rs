//! The SSM node transport: scripts run on the cluster's servers through AWS Systems Manager Run
//! Command (`aws-sdk-ssm`).
//!
//! Why this module exists: on a fleet, mirrorctl runs on an operations host and reaches each
//! server's OS only through SSM, with the instance's own agent running the script as root/SYSTEM.
//! This is the [`Transport`] for `access = "ssm"`: it sends a script with `SendCommand` (document
//! `AWS-RunShellScript` or `AWS-RunPowerShellScript`, parameter `commands`), follows it with
//! `GetCommandInvocation` until it ends, and returns its output and exit code (`ResponseCode`).
//!
//! Decisions:
//! - **Polls, not waiters**: first look after 0.5 s (a short script's typical round trip), then
//!   ×1.5 up to 3 s ([`PollSchedule`]). A send is followed for a while by `InvocationDoesNotExist`
//!   (the invocation is not visible yet): retried for [`SsmOptions::invocation_grace`].
//! - **Statuses**: `Pending`, `InProgress`, `Delayed`, `Cancelling` → keep polling; `Success` and
//!   `Failed` → the output with the exit code (a non-zero status is the caller's to judge); the
//!   rest are errors with a class ([`verdict`]): `TimedOut` (execution or delivery),
//!   `Undeliverable`, `Terminated` are retryable; `Cancelled` (by someone else), `InvalidPlatform`,
//!   `AccessDenied` need a human.
//! - **Our own deadline** is the caller's timeout: the agent gets it as `executionTimeout`, and
//!   when it passes without an end (agent offline: `Delayed` forever) mirrorctl sends
//!   `CancelCommand` and reports `CommandTimedOut` (retryable, the same code as the local
//!   transport). `TimeoutSeconds` (delivery) is the same figure, at least SSM's minimum of 30 s.
//! - **Output cap**: SSM returns at most 24,000 characters of standard output; an output that
//!   long is refused as `OutputTruncated` rather than handed on cut. Files are moved in pieces
//!   small enough for the cap ([`super::chunked`]).
//! - **Errors** go through the EC2 adapter's mapping ([`crate::adapters::aws::error`]) with an SSM
//!   classifier ([`classify`]): throttling → `Throttled`; `InvalidInstanceId` (not running, not
//!   managed by SSM) → `NeedsHuman` with a hint about the agent and the instance role; auth →
//!   `NeedsHuman`. Throttling and transient failures of a *poll* are absorbed until the deadline:
//!   the command is already running, and failing would make the caller run it twice.
//! - **Budgets and counters** as for EC2 ([`Budgets::ssm`]), the SDK's own retries off, endpoint
//!   override for tests (or `AWS_ENDPOINT_URL_SSM`).
//!
//! IAM actions used (each `const API` below; `deploy/iam-policy.json` grants exactly these):
//! `ssm:SendCommand`, `ssm:GetCommandInvocation`, `ssm:CancelCommand`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_sdk_ssm::Client;
use tokio::time::Instant;

use super::chunked::{self, Assembly};
use super::transport::{CommandOutput, Shell, Transport};
use crate::adapters::aws::budget::{Budgets, Category, Limiter};
use crate::adapters::aws::error::{INVALID_RESPONSE, from_service_sdk};
use crate::adapters::aws::{attempt_timeouts, load_sdk_config};
use crate::ids::{InstanceId, Region, ServerName};
use crate::ports::{ErrorClass, PortError, PortResult};
use crate::spec::ServerSpec;

/// SSM document for sh scripts.
pub const SHELL_DOCUMENT: &str = "AWS-RunShellScript";
/// SSM document for PowerShell scripts.
pub const POWERSHELL_DOCUMENT: &str = "AWS-RunPowerShellScript";
/// SSM's smallest delivery timeout (`TimeoutSeconds`).
const MIN_DELIVERY_TIMEOUT_S: u64 = 30;
/// SSM's largest delivery timeout (30 days).
const MAX_DELIVERY_TIMEOUT_S: u64 = 2_592_000;
/// SSM's largest `executionTimeout` for the Run*Script documents (48 h).
const MAX_EXECUTION_TIMEOUT_S: u64 = 172_800;
/// Largest script sent in one command (characters); an SSM document holds 64 KB.
pub const MAX_SCRIPT_CHARS: usize = 60 * 1024;
/// Longest comment SSM accepts.
const MAX_COMMENT: usize = 100;

/// When to look at a running command: `first`, then each pause `factor` times the previous, never
/// more than `cap`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PollSchedule {
    first: Duration,
    factor: f64,
    cap: Duration,
}

impl PollSchedule {
    /// A schedule with `0 < first <= cap` and `factor >= 1`.
    pub fn try_new(first: Duration, factor: f64, cap: Duration) -> Result<Self, String> {
        if first.is_zero() || first > cap {
            return Err(format!("a poll schedule needs 0 < first <= cap, not first {first:?} and cap {cap:?}"));
        }
        if !(factor.is_finite() && factor >= 1.0) {
            return Err(format!("a poll schedule needs a growth factor of at least 1, not {factor}"));
        }
        Ok(PollSchedule { first, factor, cap })
    }

    /// The pause before look number `n` (from 0).
    pub fn delay(&self, n: u32) -> Duration {
        // In f64 first: a large factor must reach the cap, not overflow a Duration.
        let grown = self.first.as_secs_f64() * self.factor.powi(i32::try_from(n).unwrap_or(i32::MAX).min(64));
        Duration::from_secs_f64(grown.min(self.cap.as_secs_f64()))
    }
}

impl Default for PollSchedule {
    /// 0.5 s, ×1.5, at most 3 s.
    fn default() -> Self {
        PollSchedule { first: Duration::from_millis(500), factor: 1.5, cap: Duration::from_secs(3) }
    }
}

/// How to reach SSM and how to follow commands.
#[derive(Debug, Clone, PartialEq)]
pub struct SsmOptions {
    /// The cluster's region.
    pub region: Region,
    /// An endpoint instead of SSM's (tests, a VPC endpoint). `None` still honours
    /// `AWS_ENDPOINT_URL_SSM` / `AWS_ENDPOINT_URL`.
    pub endpoint_url: Option<String>,
    /// Client-side request budgets.
    pub budgets: Budgets,
    /// Time limit of one HTTP attempt.
    pub attempt_timeout: Duration,
    /// Poll schedule of `GetCommandInvocation`.
    pub poll: PollSchedule,
    /// How long after a send `InvocationDoesNotExist` is taken for "not visible yet".
    pub invocation_grace: Duration,
    /// Time limit of each command that moves a piece of a file.
    pub file_timeout: Duration,
    /// Bytes read per command (at most [`chunked::READ_CHUNK`]).
    pub read_chunk: usize,
    /// Bytes written per command (at most [`chunked::WRITE_PIECE`]).
    pub write_piece: usize,
}

impl SsmOptions {
    /// Defaults for `region`: SSM's endpoint, [`Budgets::ssm`], 30 s per HTTP attempt, the default
    /// poll schedule, 30 s of invocation grace, 120 s per file piece, the largest pieces.
    pub fn new(region: Region) -> Self {
        SsmOptions {
            region,
            endpoint_url: None,
            budgets: Budgets::ssm(),
            attempt_timeout: Duration::from_secs(30),
            poll: PollSchedule::default(),
            invocation_grace: Duration::from_secs(30),
            file_timeout: Duration::from_mins(2),
            read_chunk: chunked::READ_CHUNK,
            write_piece: chunked::WRITE_PIECE,
        }
    }
}

/// The SSM client of `options` on the SDK configuration `shared`: its region and endpoint
/// override, the SDK's own retries off, the attempt timeout.
pub fn ssm_client(shared: &aws_config::SdkConfig, options: &SsmOptions) -> Client {
    let mut conf = aws_sdk_ssm::config::Builder::from(shared)
        .region(aws_config::Region::new(options.region.as_str().to_owned()))
        .retry_config(RetryConfig::disabled())
        .timeout_config(attempt_timeouts(options.attempt_timeout));
    if let Some(url) = &options.endpoint_url {
        conf = conf.endpoint_url(url);
    }
    Client::from_conf(conf.build())
}

/// The [`Transport`] over SSM Run Command for one cluster's servers.
#[derive(Debug)]
pub struct SsmTransport {
    client: Client,
    limiter: Limiter,
    instances: BTreeMap<ServerName, InstanceId>,
    poll: PollSchedule,
    invocation_grace: Duration,
    file_timeout: Duration,
    read_chunk: usize,
    write_piece: usize,
}

impl SsmTransport {
    /// Builds the client from the default credential chain for `options.region`, for `servers`
    /// (the desired state's: each server name is sent to its instance).
    pub async fn connect(options: SsmOptions, servers: &[ServerSpec]) -> Self {
        let shared = load_sdk_config(&options.region, options.endpoint_url.as_deref()).await;
        Self::from_sdk_config(&shared, &options, servers)
    }

    /// Builds the client from a loaded SDK configuration (credentials, HTTP client); region,
    /// endpoint, retries (off) and timeouts come from `options`.
    pub fn from_sdk_config(shared: &aws_config::SdkConfig, options: &SsmOptions, servers: &[ServerSpec]) -> Self {
        SsmTransport::on_client(ssm_client(shared, options), options, servers)
    }

    /// The transport on `client`, an SSM client other transports may hold too (a clone shares
    /// it): counters and request budget are this transport's own until [`Self::share_limiter`].
    /// `client` should be [`ssm_client`]`(…, options)` (no SDK retries, the attempt timeout).
    pub fn on_client(client: Client, options: &SsmOptions, servers: &[ServerSpec]) -> Self {
        SsmTransport {
            client,
            limiter: Limiter::for_service("ssm", options.budgets),
            instances: servers.iter().map(|s| (s.name.clone(), s.instance.clone())).collect(),
            poll: options.poll,
            invocation_grace: options.invocation_grace,
            file_timeout: options.file_timeout,
            read_chunk: options.read_chunk.clamp(1, chunked::READ_CHUNK),
            write_piece: options.write_piece.clamp(1, chunked::WRITE_PIECE),
        }
    }

    /// Takes its tokens from `tokens` instead of buckets of its own: SSM throttles per account
    /// and region, so every transport of one account and region should draw on the same
    /// [`Budgets::ssm`] limiter (counters stay per transport).
    #[must_use]
    pub fn share_limiter(mut self, tokens: std::sync::Arc<crate::adapters::aws::RequestLimiter>) -> Self {
        self.limiter = Limiter::shared_for("ssm", tokens);
        self
    }

    /// HTTP calls made so far, per API (`ssm:SendCommand`, `ssm:GetCommandInvocation`, …).
    pub fn call_counts(&self) -> BTreeMap<String, u64> {
        self.limiter.counts()
    }

    fn instance(&self, server: &ServerName) -> PortResult<&InstanceId> {
        self.instances.get(server).ok_or_else(|| {
            let known: Vec<&str> = self.instances.keys().map(ServerName::as_str).collect();
            PortError::new(
                "UnknownServer",
                format!(
                    "no server named {server} in this cluster (known: {}); check the desired state",
                    known.join(", ")
                ),
                ErrorClass::NeedsHuman,
            )
        })
    }

    async fn send(
        &self,
        server: &ServerName,
        instance: &InstanceId,
        shell: Shell,
        script: &str,
        timeout: Duration,
    ) -> PortResult<String> {
        const API: &str = "SendCommand";
        if script.len() > MAX_SCRIPT_CHARS {
            return Err(PortError::new(
                "CommandTooLarge",
                format!(
                    "a script of {} bytes is more than SSM takes in one command ({MAX_SCRIPT_CHARS})",
                    script.len()
                ),
                ErrorClass::NeedsHuman,
            ));
        }
        let document = match shell {
            Shell::Sh => SHELL_DOCUMENT,
            Shell::PowerShell => POWERSHELL_DOCUMENT,
        };
        // Whole seconds, rounded up, clamped to what SSM accepts.
        let secs = timeout.as_secs() + u64::from(timeout.subsec_nanos() > 0);
        let execution = secs.clamp(1, MAX_EXECUTION_TIMEOUT_S);
        let delivery = i32::try_from(secs.clamp(MIN_DELIVERY_TIMEOUT_S, MAX_DELIVERY_TIMEOUT_S)).unwrap_or(i32::MAX);
        let comment: String = format!("mirrorctl on {server}").chars().take(MAX_COMMENT).collect();
        self.limiter.admit(Category::Mutate, API).await;
        let out = self
            .client
            .send_command()
            .instance_ids(instance.as_str())
            .document_name(document)
            .comment(comment)
            .timeout_seconds(delivery)
            .parameters("commands", script.lines().map(str::to_owned).collect())
            .parameters("executionTimeout", vec![execution.to_string()])
            .send()
            .await
            .map_err(|e| ssm_error(API, &e))?;
        let id = out.command().and_then(|c| c.command_id()).filter(|id| !id.is_empty());
        let id = id.ok_or_else(|| {
            PortError::new(
                INVALID_RESPONSE,
                format!("ssm:{API}: the response has no CommandId"),
                ErrorClass::NeedsHuman,
            )
        })?;
        tracing::debug!(%server, %instance, command = id, document, "sent a command");
        Ok(id.to_owned())
    }

    async fn invocation(&self, id: &str, instance: &InstanceId) -> PortResult<Invocation> {
        const API: &str = "GetCommandInvocation";
        self.limiter.admit(Category::Describe, API).await;
        let out = self
            .client
            .get_command_invocation()
            .command_id(id)
            .instance_id(instance.as_str())
            .send()
            .await
            .map_err(|e| ssm_error(API, &e))?;
        Ok(Invocation {
            status: out.status().map(|s| s.as_str().to_owned()).unwrap_or_default(),
            details: out.status_details().unwrap_or_default().to_owned(),
            response_code: out.response_code(),
            stdout: out.standard_output_content().unwrap_or_default().to_owned(),
            stderr: out.standard_error_content().unwrap_or_default().to_owned(),
        })
    }

    async fn cancel(&self, id: &str, instance: &InstanceId) -> PortResult<()> {
        const API: &str = "CancelCommand";
        self.limiter.admit(Category::Mutate, API).await;
        self.client
            .cancel_command()
            .command_id(id)
            .instance_ids(instance.as_str())
            .send()
            .await
            .map_err(|e| ssm_error(API, &e))?;
        Ok(())
    }

    /// Follows command `id` until it ends or `deadline` passes (then cancels it).
    async fn follow(
        &self,
        server: &ServerName,
        instance: &InstanceId,
        id: &str,
        sent: Instant,
        deadline: Instant,
        timeout: Duration,
    ) -> PortResult<CommandOutput> {
        let what = Command { server, instance, id };
        let mut last = String::from("not visible yet");
        for n in 0.. {
            let wait = self.poll.delay(n).min(deadline.saturating_duration_since(Instant::now()));
            tokio::time::sleep(wait).await;
            match self.invocation(id, instance).await {
                Ok(inv) => match verdict(&inv, &what) {
                    Verdict::Wait => last.clone_from(&inv.status),
                    Verdict::Done(out) => return Ok(out),
                    Verdict::Fail(e) => return Err(e),
                },
                Err(e) if e.code == "InvocationDoesNotExist" => {
                    if sent.elapsed() >= self.invocation_grace {
                        return Err(PortError::new(
                            &e.code,
                            format!(
                                "{what} was still not visible {} s after it was sent; {}",
                                self.invocation_grace.as_secs_f64(),
                                what.hint()
                            ),
                            ErrorClass::Retryable,
                        ));
                    }
                }
                Err(e) if matches!(e.class, ErrorClass::Throttled | ErrorClass::Retryable) => {
                    tracing::debug!(%server, command = id, error = %e, "poll failed, polling on");
                    last = format!("unknown ({})", e.code);
                }
                Err(mut e) => {
                    e.message = format!("{}: following {what}, which may still run: {}", e.message, what.hint());
                    return Err(e);
                }
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let cancelled = match self.cancel(id, instance).await {
            Ok(()) => "it was cancelled".to_owned(),
            Err(e) => {
                tracing::warn!(%server, command = id, error = %e, "could not cancel a command past its deadline");
                format!("cancelling it failed ({e})")
            }
        };
        Err(PortError::new(
            "CommandTimedOut",
            format!(
                "{what} did not finish within {} s (last status: {last}); {cancelled}",
                timeout.as_secs_f64().ceil()
            ),
            ErrorClass::Retryable,
        ))
    }
}

/// The invocation fields mirrorctl reads.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Invocation {
    /// `Status` (`Pending`, `InProgress`, `Success`, …).
    pub status: String,
    /// `StatusDetails` (`Undeliverable`, `Delivery Timed Out`, …).
    pub details: String,
    /// `ResponseCode` (-1 until it ran).
    pub response_code: i32,
    /// `StandardOutputContent`.
    pub stdout: String,
    /// `StandardErrorContent`.
    pub stderr: String,
}

/// Names a command in messages.
#[derive(Debug, Clone, Copy)]
pub struct Command<'a> {
    /// The server.
    pub server: &'a ServerName,
    /// Its instance.
    pub instance: &'a InstanceId,
    /// The command id.
    pub id: &'a str,
}

impl Command<'_> {
    fn hint(&self) -> String {
        format!("see `aws ssm get-command-invocation --command-id {} --instance-id {}`", self.id, self.instance)
    }
}

impl std::fmt::Display for Command<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "command {} on {} ({})", self.id, self.server, self.instance)
    }
}

/// What one look at an invocation means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not ended: look again.
    Wait,
    /// Ended and ran: its output and exit code.
    Done(CommandOutput),
    /// Ended without a usable result.
    Fail(PortError),
}

/// What an invocation's status means (see the module doc for the table).
pub fn verdict(inv: &Invocation, cmd: &Command<'_>) -> Verdict {
    let details: String = inv.details.chars().filter(|c| !c.is_whitespace()).collect();
    let fail = |code: &str, why: String, class: ErrorClass| {
        let said = if inv.stderr.trim().is_empty() { String::new() } else { format!(": {:.400}", inv.stderr.trim()) };
        Verdict::Fail(PortError::new(code, format!("{cmd} {why}{said}; {}", cmd.hint()), class))
    };
    match details.as_str() {
        "Undeliverable" => {
            return fail(
                "CommandUndeliverable",
                format!("could not be delivered: the instance is not responding to Systems Manager; {}", agent_hint()),
                ErrorClass::Retryable,
            );
        }
        "Terminated" => {
            return fail("CommandTerminated", "was terminated by Systems Manager".into(), ErrorClass::Retryable);
        }
        "InvalidPlatform" => {
            return fail(
                "CommandInvalidPlatform",
                "was refused by the instance: the document does not fit its OS (check `os` in the desired state)"
                    .into(),
                ErrorClass::NeedsHuman,
            );
        }
        "AccessDenied" => {
            return fail(
                "CommandAccessDenied",
                "was refused: access denied on the instance".into(),
                ErrorClass::NeedsHuman,
            );
        }
        _ => {}
    }
    match inv.status.as_str() {
        "Success" | "Failed" if inv.response_code == -1 => fail(
            "CommandFailed",
            format!("ended {} ({}) without running", inv.status, inv.details),
            ErrorClass::NeedsHuman,
        ),
        "Success" | "Failed" => {
            if inv.stdout.chars().count() >= chunked::OUTPUT_LIMIT {
                return fail(
                    "OutputTruncated",
                    format!(
                        "printed {} characters or more, which SSM cuts; have it write to a file and read that",
                        chunked::OUTPUT_LIMIT
                    ),
                    ErrorClass::NeedsHuman,
                );
            }
            Verdict::Done(CommandOutput {
                exit_code: inv.response_code,
                stdout: inv.stdout.clone(),
                stderr: inv.stderr.clone(),
            })
        }
        "TimedOut" if details == "DeliveryTimedOut" => fail(
            "CommandDeliveryTimedOut",
            format!("was not delivered in time; {}", agent_hint()),
            ErrorClass::Retryable,
        ),
        "TimedOut" => fail("CommandTimedOut", "ran out of its execution timeout".into(), ErrorClass::Retryable),
        "Cancelled" => fail("CommandCancelled", "was cancelled by someone else".into(), ErrorClass::NeedsHuman),
        // Pending, InProgress, Delayed, Cancelling, and any status SSM may add: the deadline bounds it.
        _ => Verdict::Wait,
    }
}

fn agent_hint() -> &'static str {
    "the instance must be running with the SSM agent online and an instance profile role that \
     allows Systems Manager (e.g. the AmazonSSMManagedInstanceCore policy); check it in Fleet Manager"
}

/// The class of an SSM error code (falls back to the EC2 table for the codes both share and for
/// mirrorctl's own `Timeout`, `Transport`, `HttpStatus5xx`).
pub fn classify(code: &str) -> ErrorClass {
    match code {
        "ThrottlingException" | "TooManyUpdates" => ErrorClass::Throttled,
        "InternalServerError" | "InvocationDoesNotExist" => ErrorClass::Retryable,
        "InvalidInstanceId" => ErrorClass::NeedsHuman,
        other => crate::ports::cloud::classify(other),
    }
}

fn ssm_error<E>(api: &str, err: &aws_sdk_ssm::error::SdkError<E, aws_sdk_ssm::config::http::HttpResponse>) -> PortError
where
    E: aws_sdk_ssm::error::ProvideErrorMetadata + std::error::Error + 'static,
{
    let mut e = from_service_sdk("ssm", api, err, classify);
    if e.code == "InvalidInstanceId" {
        e.message = format!("{} — {}", e.message, agent_hint());
    }
    e
}

#[async_trait::async_trait]
impl Transport for SsmTransport {
    async fn run(
        &self,
        server: &ServerName,
        shell: Shell,
        script: &str,
        timeout: Duration,
    ) -> PortResult<CommandOutput> {
        let instance = self.instance(server)?;
        let sent = Instant::now();
        let deadline = sent + timeout;
        let id = self.send(server, instance, shell, script, timeout).await?;
        self.follow(server, instance, &id, sent, deadline, timeout).await
    }

    async fn read_file(&self, server: &ServerName, shell: Shell, path: &Path) -> PortResult<Vec<u8>> {
        let p = chunked::path_text(path)?;
        let chunk = self.read_chunk;
        let out = self.run(server, shell, &chunked::read_script(shell, p, chunk, 0), self.file_timeout).await?;
        let (stamp, first) = chunked::parse_read(p, &out)?;
        let mut file = Assembly::new(p, stamp, first);
        for index in 1..file.pieces(chunk) {
            let out = self.run(server, shell, &chunked::read_script(shell, p, chunk, index), self.file_timeout).await?;
            let (stamp, piece) = chunked::parse_read(p, &out)?;
            file.push(&stamp, &piece)?;
        }
        file.finish()
    }

    async fn write_file(&self, server: &ServerName, shell: Shell, path: &Path, bytes: &[u8]) -> PortResult<()> {
        let p = chunked::path_text(path)?;
        let scripts = chunked::write_scripts(shell, p, bytes, self.write_piece);
        for (i, script) in scripts.iter().enumerate() {
            let out = self.run(server, shell, script, self.file_timeout).await?;
            chunked::check_write(p, i + 1, scripts.len(), out)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inv(status: &str, details: &str, code: i32) -> Invocation {
        Invocation { status: status.into(), details: details.into(), response_code: code, ..Invocation::default() }
    }

    fn class_of(v: &Verdict) -> (String, ErrorClass) {
        match v {
            Verdict::Fail(e) => (e.code.clone(), e.class),
            other => panic!("expected a failure, got {other:?}"),
        }
    }

    #[test]
    fn every_status_has_a_verdict() {
        let server = ServerName::parse("server1").expect("name");
        let instance = InstanceId::parse("i-0123456789abcdef0").expect("id");
        let cmd = Command { server: &server, instance: &instance, id: "c-1" };
        for (status, details) in [
            ("Pending", "Pending"),
            ("InProgress", "In Progress"),
            ("Delayed", "Delayed"),
            ("Cancelling", "Cancelling"),
        ] {
            assert_eq!(verdict(&inv(status, details, -1), &cmd), Verdict::Wait, "{status}");
        }
        let Verdict::Done(out) = verdict(&inv("Failed", "Failed", 3), &cmd) else { panic!("failed ran") };
        assert_eq!(out.exit_code, 3);
        let Verdict::Done(out) = verdict(&inv("Success", "Success", 0), &cmd) else { panic!("success") };
        assert_eq!(out.exit_code, 0);
        let table = [
            (inv("TimedOut", "Execution Timed Out", 124), "CommandTimedOut", ErrorClass::Retryable),
            (inv("TimedOut", "Delivery Timed Out", -1), "CommandDeliveryTimedOut", ErrorClass::Retryable),
            (inv("Failed", "Undeliverable", -1), "CommandUndeliverable", ErrorClass::Retryable),
            (inv("Failed", "Terminated", -1), "CommandTerminated", ErrorClass::Retryable),
            (inv("Failed", "InvalidPlatform", -1), "CommandInvalidPlatform", ErrorClass::NeedsHuman),
            (inv("Failed", "AccessDenied", -1), "CommandAccessDenied", ErrorClass::NeedsHuman),
            (inv("Cancelled", "Cancelled", -1), "CommandCancelled", ErrorClass::NeedsHuman),
            (inv("Failed", "Failed", -1), "CommandFailed", ErrorClass::NeedsHuman),
        ];
        for (i, code, class) in table {
            assert_eq!(class_of(&verdict(&i, &cmd)), (code.to_owned(), class), "{i:?}");
        }
        let long = Invocation { stdout: "x".repeat(chunked::OUTPUT_LIMIT), ..inv("Success", "Success", 0) };
        assert_eq!(class_of(&verdict(&long, &cmd)).0, "OutputTruncated");
    }

    #[test]
    fn classes_of_ssm_codes() {
        assert_eq!(classify("ThrottlingException"), ErrorClass::Throttled);
        assert_eq!(classify("InternalServerError"), ErrorClass::Retryable);
        assert_eq!(classify("InvalidInstanceId"), ErrorClass::NeedsHuman);
        assert_eq!(classify("AccessDeniedException"), ErrorClass::NeedsHuman);
        assert_eq!(classify("Transport"), ErrorClass::Retryable);
    }

    #[test]
    fn poll_schedule_grows_to_its_cap() {
        let s = PollSchedule::default();
        let ms: Vec<u128> = (0..7).map(|n| s.delay(n).as_millis()).collect();
        assert_eq!(ms, [500, 750, 1125, 1687, 2531, 3000, 3000]);
        assert!(PollSchedule::try_new(Duration::ZERO, 1.5, Duration::from_secs(1)).is_err());
        assert!(PollSchedule::try_new(Duration::from_secs(2), 1.5, Duration::from_secs(1)).is_err());
        assert!(PollSchedule::try_new(Duration::from_millis(1), 0.5, Duration::from_secs(1)).is_err());
    }
}
