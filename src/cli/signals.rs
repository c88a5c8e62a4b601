//! SIGTERM and SIGINT as one stream, for the commands that stop in two stages (`run`, `apply`):
//! the first signal asks for a stop at the next step boundary, a second one means "now".
//!
//! Why this module exists: the daemon and `apply` must agree on which signals count and on the
//! two-stage rule; writing the handler once keeps them from drifting apart.

use super::CliError;

/// SIGTERM and SIGINT, merged.
pub struct Signals {
    term: tokio::sync::Mutex<tokio::signal::unix::Signal>,
    int: tokio::sync::Mutex<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers (from here on the signals no longer kill the process).
    pub fn new() -> Result<Self, CliError> {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate()).map_err(|e| CliError::caused("SIGTERM handler", e))?;
        let int = signal(SignalKind::interrupt()).map_err(|e| CliError::caused("SIGINT handler", e))?;
        Ok(Signals { term: tokio::sync::Mutex::new(term), int: tokio::sync::Mutex::new(int) })
    }

    /// Waits for the next SIGTERM or SIGINT.
    pub async fn next(&self) {
        let mut term = self.term.lock().await;
        let mut int = self.int.lock().await;
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
    }
}
