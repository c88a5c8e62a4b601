//! The CLUSTERPRO API password sources: an environment variable, a file, and AWS Secrets Manager
//! (against moto, which serves Secrets Manager on the same port as EC2). Every failure names the
//! source and what to do, and never contains the secret value.

use crate::support;

use std::path::PathBuf;

use mirrorctl::adapters::secret::{SECRET_UNAVAILABLE, SecretResolver};
use mirrorctl::ports::{ErrorClass, PortError};
use mirrorctl::spec::SecretRef;
use support::Moto;

const VALUE: &str = "s3cret-Pa55";

fn sm(id: &str, key: Option<&str>) -> SecretRef {
    SecretRef::SecretsManager { id: id.to_owned(), json_key: key.map(str::to_owned) }
}

#[tokio::test]
async fn environment_variable_set_and_missing() {
    let r = SecretResolver::local_only();
    // Cargo sets CARGO_PKG_NAME for the test process; tests may not call set_var (unsafe).
    let p = r.resolve(&SecretRef::Env("CARGO_PKG_NAME".to_owned())).await.expect("set variable");
    assert_eq!(p.expose(), "mirrorctl");
    let e = r.resolve(&SecretRef::Env("MIRRORCTL_TEST_NEVER_SET_8F3A".to_owned())).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("environment variable MIRRORCTL_TEST_NEVER_SET_8F3A"), "{text}");
    assert!(text.contains("not set") && text.contains("set it"), "{text}");
    let port: PortError = e.into();
    assert_eq!((port.code.as_str(), port.class), (SECRET_UNAVAILABLE, ErrorClass::NeedsHuman));
}

#[tokio::test]
async fn file_first_line_empty_and_missing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let good = dir.path().join("pw");
    std::fs::write(&good, format!("{VALUE}\r\nsecond line ignored\n")).expect("write");
    let r = SecretResolver::local_only();
    assert_eq!(r.resolve(&SecretRef::File(good)).await.expect("first line").expose(), VALUE);

    let empty = dir.path().join("empty");
    std::fs::write(&empty, "\nnot-the-first-line\n").expect("write");
    let e = r.resolve(&SecretRef::File(empty.clone())).await.unwrap_err().to_string();
    assert!(e.contains(&format!("file {}", empty.display())) && e.contains("first line is empty"), "{e}");
    assert!(!e.contains("not-the-first-line"), "{e}");

    let missing = PathBuf::from("/nonexistent/mirrorctl/pw");
    let e = r.resolve(&SecretRef::File(missing)).await.unwrap_err().to_string();
    assert!(e.contains("/nonexistent/mirrorctl/pw") && e.contains("cannot be read"), "{e}");
    assert!(e.contains("password_file"), "says what to check: {e}");
}

#[tokio::test]
async fn secrets_manager_needs_a_client() {
    let e = SecretResolver::local_only().resolve(&sm("clp", None)).await.unwrap_err().to_string();
    assert!(e.contains("AWS Secrets Manager secret clp") && e.contains("password_env"), "{e}");
}

#[tokio::test]
async fn secrets_manager_whole_string_json_key_and_failures() {
    let moto = Moto::start();
    let config = moto.sdk_config().await;
    let client = aws_sdk_secretsmanager::Client::new(&config);
    client.create_secret().name("prod-db/clp-plain").secret_string(VALUE).send().await.expect("CreateSecret plain");
    client
        .create_secret()
        .name("prod-db/clp-json")
        .secret_string(format!(r#"{{"username":"clpadmin","password":"{VALUE}"}}"#))
        .send()
        .await
        .expect("CreateSecret json");
    let r = SecretResolver::from_sdk_config(&config);

    let p = r.resolve(&sm("prod-db/clp-plain", None)).await.expect("plain secret");
    assert_eq!(p.expose(), VALUE);
    let p = r.resolve(&sm("prod-db/clp-json", Some("password"))).await.expect("json key");
    assert_eq!(p.expose(), VALUE);

    // A key the object does not have: the message lists the keys, never the values.
    let e = r.resolve(&sm("prod-db/clp-json", Some("pass"))).await.unwrap_err();
    let text = e.to_string();
    assert!(text.contains("key \"pass\" of AWS Secrets Manager secret prod-db/clp-json"), "{text}");
    assert!(text.contains("username, password") || text.contains("password, username"), "{text}");
    assert!(!text.contains(VALUE), "the secret leaked: {text}");

    // A plain string read as JSON.
    let text = r.resolve(&sm("prod-db/clp-plain", Some("password"))).await.unwrap_err().to_string();
    assert!(text.contains("not a JSON object") && !text.contains(VALUE), "{text}");

    // A secret that does not exist: a human must fix the reference.
    let e = r.resolve(&sm("prod-db/nope", None)).await.unwrap_err();
    assert!(!e.transient, "{e}");
    let text = e.to_string();
    assert!(text.contains("ResourceNotFoundException") && text.contains("password_secret"), "{text}");
    let port: PortError = e.into();
    assert_eq!(port.class, ErrorClass::NeedsHuman);
}

#[tokio::test]
async fn secrets_manager_unreachable_is_transient() {
    // A port nothing listens on: the SDK's dispatch fails; trying again later may work.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new("k", "k", None, None, "test"))
        .region(aws_config::Region::new("ap-northeast-1"))
        .endpoint_url(format!("http://127.0.0.1:{port}"))
        .retry_config(aws_config::retry::RetryConfig::disabled())
        .load()
        .await;
    let e = SecretResolver::from_sdk_config(&config).resolve(&sm("clp", None)).await.unwrap_err();
    assert!(e.transient, "{e}");
    assert_eq!(PortError::from(e).class, ErrorClass::Retryable);
}
