//! Where notifications go: an SNS topic, a webhook — anything that takes one signed JSON event.
//!
//! Why a port: delivering an event crosses a process boundary (SNS, an HTTP receiver) that tests
//! replace with a loopback server or moto; [`crate::notify`] owns the queue, the retries and the
//! bookkeeping of what was sent, and only calls this.

/// Why one delivery attempt failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct DeliveryError {
    /// What went wrong (never containing a secret).
    pub message: String,
    /// `true` when trying again later may succeed (5xx, 429, throttling, network trouble).
    pub retryable: bool,
}

impl DeliveryError {
    /// A failure worth retrying.
    pub fn retryable(message: impl Into<String>) -> Self {
        DeliveryError { message: message.into(), retryable: true }
    }
    /// A failure that retrying cannot fix (a refused request, a missing topic, no permission).
    pub fn permanent(message: impl Into<String>) -> Self {
        DeliveryError { message: message.into(), retryable: false }
    }
}

/// One destination of notifications.
#[async_trait::async_trait]
pub trait NoticeSink: Send + Sync {
    /// The kind, for metrics: `sns` or `webhook`.
    fn kind(&self) -> &'static str;
    /// The destination, for logs and the record of what was sent (`sns:<arn>`, `webhook:<url>`).
    fn name(&self) -> String;
    /// Delivers `body` (the JSON of one [`crate::notify::Notice`]) once. `event` is the notice's
    /// kind word and `id` its delivery id, for headers and attributes.
    async fn deliver(&self, event: &str, id: &str, body: &[u8]) -> Result<(), DeliveryError>;
}
