//! SDK errors → [`PortError`].
//!
//! Why this module exists: the executor decides what to do from the AWS error code alone
//! ([`classify`]), so every failure of the SDK — a service error with a code, a 5xx without one
//! (moto's are empty HTML pages), a timeout, a connection refused — must become a `PortError` with
//! a stable code, the far side's message and its request id. Failures that never reached EC2 get
//! codes of our own that `classify` already knows: `Timeout`, `Transport`, `HttpStatus5xx`.
//! Every AWS SDK shares the error types, so the SSM transport ([`crate::adapters::node::ssm`])
//! maps its failures here too ([`from_service_sdk`]), with its own prefix and classifier.

use aws_sdk_ec2::config::http::HttpResponse;
use aws_sdk_ec2::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_ec2::operation::RequestId;

use crate::ports::PortError;
use crate::ports::cloud::classify;

/// Code for a response with a 5xx status and no AWS error code (classified retryable).
pub const HTTP_5XX: &str = "HttpStatus5xx";
/// Code for a request that could not be sent or whose response never arrived (retryable).
pub const TRANSPORT: &str = "Transport";
/// Code for a request that timed out (retryable).
pub const TIMEOUT: &str = "Timeout";
/// Code for a response that did not make sense: unparseable, a missing field, an unknown state.
pub const INVALID_RESPONSE: &str = "InvalidResponse";
/// Code for a request the SDK refused to build (a bug or a bad parameter on our side).
pub const INVALID_REQUEST: &str = "InvalidRequest";

/// A `PortError` with our own code, classified like an EC2 code.
pub(super) fn local(code: &str, message: impl Into<String>) -> PortError {
    PortError::ec2(code, message)
}

/// A response that lacks a field EC2 always sends, or carries a value we do not know.
pub(super) fn invalid_response(api: &str, what: impl std::fmt::Display) -> PortError {
    local(INVALID_RESPONSE, format!("ec2:{api}: {what}"))
}

/// Maps one SDK failure of EC2 operation `api` to a `PortError`.
pub(super) fn from_sdk<E>(api: &str, err: &SdkError<E, HttpResponse>) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    from_service_sdk("ec2", api, err, classify)
}

/// Maps one SDK failure of operation `api` of any AWS service to a `PortError`: `service` prefixes
/// the messages of failures without an AWS error code (`ssm:SendCommand: …`) and `classify` gives
/// the class from the code (ours — `Timeout`, `Transport`, `HttpStatus5xx`, … — or the service's).
pub(crate) fn from_service_sdk<E>(
    service: &str,
    api: &str,
    err: &SdkError<E, HttpResponse>,
    classify: fn(&str) -> crate::ports::ErrorClass,
) -> PortError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    let request_id = err.request_id().map(str::to_owned);
    let detail = error_chain(err);
    let (code, message) = match err {
        SdkError::ServiceError(_) => match err.code() {
            Some(code) if !code.is_empty() => {
                (code.to_owned(), err.message().map_or_else(|| detail.clone(), str::to_owned))
            }
            _ => (by_status(status), format!("{service}:{api}: HTTP {} without an error code: {detail}", show(status))),
        },
        SdkError::TimeoutError(_) => (TIMEOUT.to_owned(), format!("{service}:{api}: {detail}")),
        SdkError::DispatchFailure(d) => {
            let code = if d.is_timeout() { TIMEOUT } else { TRANSPORT };
            (code.to_owned(), format!("{service}:{api}: {detail}"))
        }
        SdkError::ResponseError(_) => {
            let code = if status.is_some_and(|s| s >= 500) { HTTP_5XX } else { TRANSPORT };
            (code.to_owned(), format!("{service}:{api}: HTTP {}: unreadable response: {detail}", show(status)))
        }
        SdkError::ConstructionFailure(_) => (INVALID_REQUEST.to_owned(), format!("{service}:{api}: {detail}")),
        _ => (TRANSPORT.to_owned(), format!("{service}:{api}: {detail}")),
    };
    PortError { class: classify(&code), code, message, request_id }
}

/// An AWS SDK error as one line a person can read: its message and those of its causes joined by
/// `: `, a cause already contained in the line skipped — not the SDK's own rendering
/// (`DisplayErrorContext`), which ends with a debug dump of the whole error. A failure to find
/// credentials gets what to do.
pub(crate) fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut line = String::new();
    let mut cur = Some(err);
    while let Some(e) = cur {
        let m = e.to_string();
        if !m.is_empty() && !line.contains(&m) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&m);
        }
        cur = e.source();
    }
    if line.contains("loading credentials") || line.contains("no providers in chain provided credentials") {
        line.push_str(
            " (no AWS credentials found: give mirrorctl a profile (AWS_PROFILE), keys (AWS_ACCESS_KEY_ID / \
             AWS_SECRET_ACCESS_KEY) or an instance role)",
        );
    }
    line
}

fn by_status(status: Option<u16>) -> String {
    match status {
        Some(s) if s >= 500 => HTTP_5XX.to_owned(),
        Some(s) => format!("HttpStatus{s}"),
        None => TRANSPORT.to_owned(),
    }
}

fn show(status: Option<u16>) -> String {
    status.map_or_else(|| "?".to_owned(), |s| s.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::ErrorClass;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);
    impl std::fmt::Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Layer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1.as_deref().map(|l| l as &(dyn std::error::Error + 'static))
        }
    }

    #[test]
    fn an_error_chain_is_one_line_of_its_messages_without_repeats_or_debug() {
        let e = Layer(
            "dispatch failure",
            Some(Box::new(Layer(
                "an error occurred while loading credentials",
                Some(Box::new(Layer("an error occurred while loading credentials", None))),
            ))),
        );
        let line = error_chain(&e);
        assert!(line.starts_with("dispatch failure: an error occurred while loading credentials ("), "{line}");
        assert_eq!(line.matches("loading credentials").count(), 1, "{line}");
        assert!(line.contains("AWS_PROFILE") && !line.contains("Layer("), "{line}");
        assert_eq!(error_chain(&Layer("throttled", None)), "throttled");
    }

    #[test]
    fn codes_of_our_own_are_classified() {
        assert_eq!(local(HTTP_5XX, "x").class, ErrorClass::Retryable);
        assert_eq!(local(TRANSPORT, "x").class, ErrorClass::Retryable);
        assert_eq!(local(TIMEOUT, "x").class, ErrorClass::Retryable);
        assert_eq!(local(INVALID_RESPONSE, "x").class, ErrorClass::NeedsHuman);
        assert_eq!(by_status(Some(503)), HTTP_5XX);
        assert_eq!(by_status(Some(403)), "HttpStatus403");
    }
}
