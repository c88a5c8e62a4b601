//! Secrets: turning a [`SecretRef`] from the desired state into the password it points at.
//!
//! Why this module exists: the CLUSTERPRO REST API authenticates an OS user with a password, and a
//! password must never be written into a desired-state file (the loader refuses it). The file only
//! says *where* the password is — an environment variable, a file, or an AWS Secrets Manager
//! secret — and this module reads it at the edge, when the REST client is built. Two rules hold
//! everywhere here: a failure names the source and says what to do, and the secret value never
//! appears in an error, a log line or a `Debug` print ([`Password`] redacts itself).
//!
//! Secrets Manager: `GetSecretValue` → `SecretString` (a binary secret is refused). When the
//! reference names a JSON key (`password_secret_key`), the string must be a JSON object and the
//! password is the string value of that key; otherwise the whole string is the password.

use std::fmt;

use aws_sdk_secretsmanager::error::{ProvideErrorMetadata, SdkError};

use crate::ports::{ErrorClass, PortError};
use crate::spec::SecretRef;

/// Code of every [`PortError`] made from a [`SecretError`].
pub const SECRET_UNAVAILABLE: &str = "SecretUnavailable";

/// A password read from a secret source. Its `Debug` and `Display` never show the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Wraps a password (tests and callers that already hold one).
    pub fn new(value: impl Into<String>) -> Self {
        Password(value.into())
    }
    /// The password itself, for the one place that must send it (the HTTP Basic header).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Why a password could not be read: where from, what went wrong, what to do. Contains no part of
/// the secret value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot read {what} from {source_name}: {problem}; {todo}")]
pub struct SecretError {
    /// What the secret is for (`the CLUSTERPRO API password`, `the webhook signing secret`).
    pub what: &'static str,
    /// The source, as [`SecretRef`]'s `Display` names it.
    pub source_name: String,
    /// What went wrong.
    pub problem: String,
    /// What the operator should do.
    pub todo: String,
    /// `true` when trying again later may succeed (Secrets Manager throttling, network trouble).
    pub transient: bool,
}

impl From<SecretError> for PortError {
    fn from(e: SecretError) -> Self {
        let class = if e.transient { ErrorClass::Retryable } else { ErrorClass::NeedsHuman };
        PortError::new(SECRET_UNAVAILABLE, e.to_string(), class)
    }
}

/// Reads passwords from their sources. Holds the Secrets Manager client when one is configured.
#[derive(Debug, Clone, Default)]
pub struct SecretResolver {
    secrets_manager: Option<aws_sdk_secretsmanager::Client>,
}

impl SecretResolver {
    /// A resolver for environment variables and files only: a Secrets Manager reference fails with
    /// a message saying so.
    pub fn local_only() -> Self {
        SecretResolver { secrets_manager: None }
    }

    /// A resolver that also reads Secrets Manager with `client`.
    pub fn with_secrets_manager(client: aws_sdk_secretsmanager::Client) -> Self {
        SecretResolver { secrets_manager: Some(client) }
    }

    /// A resolver whose Secrets Manager client uses the shared AWS configuration (region,
    /// credentials, endpoint overrides such as `AWS_ENDPOINT_URL_SECRETS_MANAGER`).
    pub fn from_sdk_config(config: &aws_config::SdkConfig) -> Self {
        SecretResolver::with_secrets_manager(aws_sdk_secretsmanager::Client::new(config))
    }

    /// Reads the CLUSTERPRO API password `reference` points at.
    pub async fn resolve(&self, reference: &SecretRef) -> Result<Password, SecretError> {
        self.resolve_as(reference, Purpose::API_PASSWORD).await
    }

    /// Reads the secret `reference` points at, for `purpose` (named in errors).
    pub async fn resolve_as(&self, reference: &SecretRef, purpose: Purpose) -> Result<Password, SecretError> {
        let what = purpose.what;
        let fail = |problem: String, todo: &str, transient: bool| SecretError {
            what,
            source_name: reference.to_string(),
            problem,
            todo: todo.to_owned(),
            transient,
        };
        match reference {
            SecretRef::Env(name) => match std::env::var(name) {
                Ok(v) if v.is_empty() => Err(fail(
                    "the variable is set but empty".to_owned(),
                    "put the password into it in mirrorctl's environment (e.g. the service's EnvironmentFile)",
                    false,
                )),
                Ok(v) => Ok(Password(v)),
                Err(std::env::VarError::NotPresent) => Err(fail(
                    "the variable is not set in mirrorctl's environment".to_owned(),
                    "set it for the mirrorctl process (e.g. in the service's EnvironmentFile), or name another source of the secret",
                    false,
                )),
                Err(std::env::VarError::NotUnicode(_)) => Err(fail(
                    "the variable's value is not valid UTF-8".to_owned(),
                    "store the password as UTF-8 text",
                    false,
                )),
            },
            SecretRef::File(path) => match tokio::fs::read(path).await {
                Ok(bytes) => {
                    let Ok(text) = String::from_utf8(bytes) else {
                        return Err(fail(
                            "the file is not UTF-8 text".to_owned(),
                            "store the password as UTF-8 text",
                            false,
                        ));
                    };
                    let first = text.lines().next().unwrap_or("").trim_end_matches('\r');
                    if first.is_empty() {
                        Err(fail(
                            "the file's first line is empty".to_owned(),
                            "write the password on the first line of the file",
                            false,
                        ))
                    } else {
                        Ok(Password(first.to_owned()))
                    }
                }
                Err(e) => Err(fail(format!("the file cannot be read ({e})"), purpose.file_todo, false)),
            },
            SecretRef::SecretsManager { id, json_key } => {
                // The IAM action this needs (tests/it/deploy.rs ties the policy to this line).
                const API: &str = "GetSecretValue";
                let Some(client) = &self.secrets_manager else {
                    return Err(fail(
                        "no AWS Secrets Manager client is configured in this mode".to_owned(),
                        &format!("run mirrorctl with AWS access, or use {}", purpose.local_keys),
                        false,
                    ));
                };
                tracing::debug!(api = API, secret = %id, "reading {what}");
                let out = client
                    .get_secret_value()
                    .secret_id(id)
                    .send()
                    .await
                    .map_err(|e| sdk_error(reference, purpose, &e))?;
                let Some(text) = out.secret_string() else {
                    return Err(fail(
                        "the secret has no SecretString (binary secrets are not supported)".to_owned(),
                        "store the password as the secret's string value",
                        false,
                    ));
                };
                match json_key {
                    None if text.is_empty() => Err(fail(
                        "the secret string is empty".to_owned(),
                        "store the password as the secret's value",
                        false,
                    )),
                    None => Ok(Password(text.to_owned())),
                    Some(key) => json_field(text, key).map_err(|problem| {
                        fail(problem, "store the secret as a JSON object whose key holds the password as a string, or remove password_secret_key", false)
                    }),
                }
            }
        }
    }
}

/// What a secret is for: named in every error about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Purpose {
    /// What the secret is (`the CLUSTERPRO API password`).
    pub what: &'static str,
    /// What to do when its file cannot be read (names the desired-state key).
    pub file_todo: &'static str,
    /// The keys naming the other local sources, for "use … instead" hints.
    pub local_keys: &'static str,
    /// The key naming the Secrets Manager secret.
    pub secret_key: &'static str,
}

impl Purpose {
    /// The CLUSTERPRO REST API's password (`cluster.api.password_*`).
    pub const API_PASSWORD: Purpose = Purpose {
        what: "the CLUSTERPRO API password",
        file_todo: "check the path in cluster.api.password_file and that mirrorctl's user may read the file",
        local_keys: "password_env or password_file",
        secret_key: "cluster.api.password_secret",
    };
    /// The webhook's HMAC signing secret (`notify.webhook.secret_*`).
    pub const WEBHOOK_SECRET: Purpose = Purpose {
        what: "the webhook signing secret",
        file_todo: "check the path in notify.webhook.secret_file and that mirrorctl's user may read the file",
        local_keys: "secret_env or secret_file",
        secret_key: "notify.webhook.secret_id",
    };
}

/// The non-empty string value of `key` in the JSON object `text`. Errors describe the shape only.
fn json_field(text: &str, key: &str) -> Result<Password, String> {
    let Ok(serde_json::Value::Object(map)) = serde_json::from_str::<serde_json::Value>(text) else {
        return Err("the secret string is not a JSON object".to_owned());
    };
    match map.get(key) {
        Some(serde_json::Value::String(v)) if !v.is_empty() => Ok(Password(v.clone())),
        Some(serde_json::Value::String(_)) => Err(format!("the value of key \"{key}\" is empty")),
        Some(_) => Err(format!("the value of key \"{key}\" is not a string")),
        None => {
            let keys: Vec<&str> = map.keys().map(String::as_str).collect();
            Err(format!("the JSON object has no key \"{key}\" (its keys: {})", keys.join(", ")))
        }
    }
}

/// A failed `GetSecretValue`, classified: missing secret, access denied and KMS trouble need a
/// human; throttling and transport failures are transient.
fn sdk_error<E, R>(reference: &SecretRef, purpose: Purpose, err: &SdkError<E, R>) -> SecretError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: fmt::Debug + 'static,
{
    let code = err.code().unwrap_or_default().to_owned();
    let (todo, transient) = match code.as_str() {
        "ResourceNotFoundException" => {
            (format!("check the secret id or ARN in {} and the region", purpose.secret_key), false)
        }
        "AccessDeniedException" => {
            ("grant mirrorctl's IAM role secretsmanager:GetSecretValue on this secret (see deploy/)".to_owned(), false)
        }
        "DecryptionFailure" => ("grant mirrorctl's IAM role kms:Decrypt on the secret's KMS key".to_owned(), false),
        "InvalidRequestException" | "InvalidParameterException" => {
            ("check that the secret exists and is not scheduled for deletion".to_owned(), false)
        }
        _ => ("mirrorctl will try again; check the network path to Secrets Manager if this persists".to_owned(), true),
    };
    let problem = match err {
        SdkError::ServiceError(_) => {
            format!("GetSecretValue failed with {code}: {}", err.message().unwrap_or("no message"))
        }
        _ => format!("GetSecretValue did not complete: {}", crate::adapters::aws::error::error_chain(err)),
    };
    SecretError { what: purpose.what, source_name: reference.to_string(), problem, todo, transient }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_prints() {
        let p = Password::new("hunter2");
        assert_eq!(format!("{p:?}"), "Password(<redacted>)");
        assert_eq!(p.expose(), "hunter2");
    }

    #[test]
    fn json_field_errors_name_keys_not_values() {
        assert_eq!(json_field(r#"{"password":"s3cret"}"#, "password").unwrap().expose(), "s3cret");
        let e = json_field(r#"{"user":"clp","pw":"s3cret"}"#, "password").unwrap_err();
        assert!(e.contains("pw") && !e.contains("s3cret"), "{e}");
        let e = json_field("s3cret", "password").unwrap_err();
        assert!(!e.contains("s3cret"), "{e}");
        assert!(json_field(r#"{"password":5}"#, "password").unwrap_err().contains("not a string"));
    }
}
