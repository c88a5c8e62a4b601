//! The notification destinations: an SNS topic (`Publish`) and a signed webhook (HTTPS POST).
//!
//! Why this module exists: [`crate::notify`] decides what to send and when; this is how one JSON
//! body reaches each far side.
//!
//! - **SNS**: `Publish` to the topic's ARN in the topic's own region, the body as `Message`, a
//!   short `Subject`, and the event word as the message attribute `event` (for subscription
//!   filter policies). A FIFO topic gets the cluster as `MessageGroupId` and the notice id as
//!   `MessageDeduplicationId` (SNS then drops a repeat within its 5-minute window). Throttling,
//!   5xx and transport failures are retried; anything else (topic not found, no permission) is
//!   not. Sources: AWS SNS API Reference, `Publish`
//!   (<https://docs.aws.amazon.com/sns/latest/api/API_Publish.html>).
//! - **Webhook**: `POST` of the body with `Content-Type: application/json` and the headers
//!   [`HEADER_EVENT`], [`HEADER_DELIVERY`], [`HEADER_TIMESTAMP`] (Unix seconds at this attempt) and
//!   [`HEADER_SIGNATURE`] (`sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">`, see
//!   [`crate::notify::signature`]). The secret is read at every attempt (a rotated secret is used
//!   at once). 2xx is delivered; 408, 429 and 5xx are retried, other statuses are refused for good;
//!   redirects are not followed (a signed body is not re-sent elsewhere).

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sns::error::{ProvideErrorMetadata as _, SdkError};
use aws_sdk_sns::types::MessageAttributeValue;

use crate::adapters::aws::cluster_sdk_config;
use crate::adapters::secret::{Purpose, SecretResolver};
use crate::notify::{SinkFactory, signature};
use crate::ports::notify::{DeliveryError, NoticeSink};
use crate::spec::{SecretRef, SnsTopic, Spec, WebhookSpec};

/// The event word (`completed`, `failed`, `needs-human`).
pub const HEADER_EVENT: &str = "X-Mirrorctl-Event";
/// The notice's delivery id (the same on every re-send).
pub const HEADER_DELIVERY: &str = "X-Mirrorctl-Delivery";
/// Unix seconds when this attempt was signed.
pub const HEADER_TIMESTAMP: &str = "X-Mirrorctl-Timestamp";
/// `sha256=<hex>`: HMAC-SHA256 over `"<timestamp>.<body>"` with the shared secret.
pub const HEADER_SIGNATURE: &str = "X-Mirrorctl-Signature";

/// How long one webhook request may take.
const WEBHOOK_TIMEOUT: Duration = Duration::from_secs(10);

/// An SNS topic.
pub struct SnsSink {
    client: aws_sdk_sns::Client,
    topic: SnsTopic,
    cluster: String,
}

impl SnsSink {
    /// A sink publishing to `topic` with `client` (which must be for the topic's region).
    pub fn new(client: aws_sdk_sns::Client, topic: SnsTopic, cluster: impl Into<String>) -> Self {
        SnsSink { client, topic, cluster: cluster.into() }
    }
}

#[async_trait::async_trait]
impl NoticeSink for SnsSink {
    fn kind(&self) -> &'static str {
        "sns"
    }

    fn name(&self) -> String {
        format!("sns:{}", self.topic.arn)
    }

    async fn deliver(&self, event: &str, id: &str, body: &[u8]) -> Result<(), DeliveryError> {
        // The IAM action this needs (tests/it/deploy.rs ties the policy to this line).
        const API: &str = "Publish";
        tracing::debug!(api = API, topic = %self.topic.arn, "publishing a notification");
        let message = String::from_utf8_lossy(body).into_owned();
        let attribute = MessageAttributeValue::builder()
            .data_type("String")
            .string_value(event)
            .build()
            .map_err(|e| DeliveryError::permanent(format!("building the message attribute: {e}")))?;
        let mut publish = self
            .client
            .publish()
            .topic_arn(&self.topic.arn)
            .subject(format!("mirrorctl: {} {event}", self.cluster))
            .message(message)
            .message_attributes("event", attribute);
        if self.topic.fifo {
            publish = publish.message_group_id(&self.cluster).message_deduplication_id(id);
        }
        match publish.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let code = e.code().unwrap_or_default().to_owned();
                let retryable = match &e {
                    SdkError::ServiceError(s) => {
                        s.raw().status().is_server_error()
                            || matches!(code.as_str(), "Throttling" | "ThrottlingException" | "ThrottledException")
                    }
                    _ => true,
                };
                let message = match &e {
                    SdkError::ServiceError(_) => {
                        format!(
                            "SNS Publish to {} failed with {code}: {}",
                            self.topic.arn,
                            e.message().unwrap_or("no message")
                        )
                    }
                    _ => format!(
                        "SNS Publish to {} did not complete: {}",
                        self.topic.arn,
                        crate::adapters::aws::error::error_chain(&e)
                    ),
                };
                Err(DeliveryError { message, retryable })
            }
        }
    }
}

/// A webhook receiver.
pub struct WebhookSink {
    http: reqwest::Client,
    url: String,
    secret: SecretRef,
    secrets: SecretResolver,
}

impl WebhookSink {
    /// A sink sending `POST`s to `spec.url`, signing with the secret `spec.secret` read by `secrets`.
    pub fn new(spec: &WebhookSpec, secrets: SecretResolver) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .connect_timeout(WEBHOOK_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("mirrorctl/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("building the webhook's HTTP client: {e}"))?;
        Ok(WebhookSink { http, url: spec.url.clone(), secret: spec.secret.clone(), secrets })
    }
}

#[async_trait::async_trait]
impl NoticeSink for WebhookSink {
    fn kind(&self) -> &'static str {
        "webhook"
    }

    fn name(&self) -> String {
        format!("webhook:{}", self.url)
    }

    async fn deliver(&self, event: &str, id: &str, body: &[u8]) -> Result<(), DeliveryError> {
        let secret = self
            .secrets
            .resolve_as(&self.secret, Purpose::WEBHOOK_SECRET)
            .await
            .map_err(|e| DeliveryError { message: e.to_string(), retryable: e.transient })?;
        let timestamp = jiff::Timestamp::now().as_second();
        let response = self
            .http
            .post(&self.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(HEADER_EVENT, event)
            .header(HEADER_DELIVERY, id)
            .header(HEADER_TIMESTAMP, timestamp.to_string())
            .header(HEADER_SIGNATURE, signature(secret.expose().as_bytes(), timestamp, body))
            .body(body.to_vec())
            .send()
            .await
            .map_err(|e| DeliveryError::retryable(format!("POST {} did not complete: {e}", self.url)))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let text: String = response.text().await.unwrap_or_default().chars().take(200).collect();
        let message = format!("POST {} answered {status}: {text}", self.url);
        if status.is_server_error() || status.as_u16() == 408 || status.as_u16() == 429 {
            Err(DeliveryError::retryable(message))
        } else {
            Err(DeliveryError::permanent(message))
        }
    }
}

/// The destinations of a cluster's `[notify]` on AWS: SNS with the cluster's credentials (its role
/// when it names one) in the topic's region; the webhook's secret from the environment, a file or Secrets Manager (in
/// the cluster's region). Endpoints follow the SDK's settings (`AWS_ENDPOINT_URL_SNS`, …).
pub fn aws_sinks() -> SinkFactory {
    Arc::new(|spec: &Spec| {
        let spec = spec.clone();
        Box::pin(async move {
            let mut sinks: Vec<Arc<dyn NoticeSink>> = Vec::new();
            let Some(notify) = &spec.notify else { return Ok(sinks) };
            if let Some(topic) = &notify.sns_topic {
                let config = cluster_sdk_config(&spec.cluster, &topic.region).await;
                let client = aws_sdk_sns::Client::new(&config);
                sinks.push(Arc::new(SnsSink::new(client, topic.clone(), spec.cluster.name.as_str())));
            }
            if let Some(hook) = &notify.webhook {
                let secrets = match &hook.secret {
                    SecretRef::SecretsManager { .. } => {
                        SecretResolver::from_sdk_config(&cluster_sdk_config(&spec.cluster, &spec.cluster.region).await)
                    }
                    _ => SecretResolver::local_only(),
                };
                sinks.push(Arc::new(WebhookSink::new(hook, secrets)?));
            }
            Ok(sinks)
        })
    })
}
