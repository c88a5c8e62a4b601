//! The daemon's settings file (`deploy/daemon.toml`): paths, intervals, listen address, world,
//! and the default `[notify]` of clusters whose files have none.
//!
//! Why a file: on the operations host the unit file should say *which* settings file, and the
//! settings themselves live in configuration management next to it. Every key is optional (the
//! built-in defaults apply); command-line flags override the file. Unknown keys and wrong types
//! are errors naming file, line, column and key, rendered exactly like desired-state errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::spec::{NotifySpec, Source, SpecError, SpecErrors, parser_error};

/// Which world the daemon acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum World {
    /// Real AWS and CLUSTERPRO.
    Aws,
    /// The simulated world, one file per cluster under `<state_dir>/lab/`.
    Lab,
}

/// `daemon.toml`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The desired-state directory (may be a symlink that git-sync swaps).
    pub dir: Option<PathBuf>,
    /// Journals, status documents, lab worlds.
    pub state_dir: Option<PathBuf>,
    /// Which world.
    pub world: Option<World>,
    /// Lab speed factor (model seconds per real second).
    pub speed: Option<f64>,
    /// Seconds between full re-reads of the directory without file events.
    pub resync_secs: Option<u64>,
    /// The longest, in milliseconds, that a burst of file events is gathered before re-reading
    /// while a file is still being written ([`crate::controller::Config::debounce`]).
    pub debounce_ms: Option<u64>,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub listen: Option<SocketAddr>,
    /// Seconds a shutdown waits for steps in flight.
    pub grace_secs: Option<u64>,
    /// Where journals, status documents and leases live: `dir` or `dynamodb:TABLE` (the
    /// `--store` flag overrides it).
    pub store: Option<String>,
    /// Seconds a cluster's lease lasts without a heartbeat (DynamoDB store only; refused with the
    /// directory store, whose lock needs none): a dead daemon's clusters are taken over this long
    /// after its last heartbeat. Default 30.
    pub lease_secs: Option<u64>,
    /// Where the lab's simulated worlds live (lab only; default `<state_dir>/lab`). Daemons that
    /// stand for several hosts share one, as real hosts share one AWS account.
    pub lab_dir: Option<PathBuf>,
    /// `[notify]`: where the events of every cluster whose desired-state file has no `[notify]`
    /// go (the same keys, rules and errors as a desired-state file's). A file's own `[notify]`
    /// replaces it entirely. Checked by [`crate::spec::load_notify`] after the other keys.
    #[serde(default, deserialize_with = "checked_apart")]
    pub notify: Option<NotifySpec>,
}

/// Accepts any value: `notify` is checked apart, with the desired-state rules and spans.
fn checked_apart<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<NotifySpec>, D::Error> {
    serde::de::IgnoredAny::deserialize(d).map(|_| None)
}

impl Settings {
    /// Reads and parses the settings file at `path`.
    pub fn load(path: &Path) -> Result<Settings, SpecErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            SpecErrors(vec![SpecError {
                file: path.to_owned(),
                line: 0,
                column: 0,
                key: String::new(),
                kind: crate::spec::ErrorKind::Io,
                message: format!("cannot read the settings file: {e}"),
                hint: Some("check the --config path".to_owned()),
                source_line: None,
                width: 0,
            }])
        })?;
        Settings::parse(path, &text)
    }

    /// Parses `text` as the settings file `path`.
    pub fn parse(path: &Path, text: &str) -> Result<Settings, SpecErrors> {
        let mut settings: Settings = serde_path_to_error::deserialize(toml::Deserializer::new(text)).map_err(|e| {
            let mut err = parser_error(&Source::new(path.to_owned(), text), &e);
            // The desired-state renderer points at its own README; point at the daemon's.
            if err.hint.as_deref().is_some_and(|h| h.contains("desired-state/README.md")) {
                err.hint = Some("see deploy/README.md for the keys of daemon.toml and their types".to_owned());
            }
            SpecErrors(vec![err])
        })?;
        settings.notify = crate::spec::load_notify(path, text)?;
        Ok(settings)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_settings_file_parses() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/daemon.toml");
        let s = Settings::load(&path).expect("deploy/daemon.toml is valid");
        assert_eq!(s.world, Some(World::Aws));
    }

    #[test]
    fn an_unknown_key_names_file_line_and_key() {
        let e = Settings::parse(Path::new("deploy/daemon.toml"), "resync_secs = 5\nresync_sec = 5\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("error[unknown-key]: deploy/daemon.toml:2:1: resync_sec"), "{text}");
        assert!(text.contains("did you mean `resync_secs`?"), "{text}");
    }

    #[test]
    fn notify_is_checked_with_the_desired_state_rules_in_the_settings_file() {
        let ok = "world = \"lab\"\n[notify]\nsns_topic = \"arn:aws:sns:ap-northeast-1:123456789012:ops\"\n";
        let s = Settings::parse(Path::new("d.toml"), ok).unwrap();
        let n = s.notify.expect("the default [notify]");
        assert_eq!(n.sns_topic.map(|t| t.arn), Some("arn:aws:sns:ap-northeast-1:123456789012:ops".to_owned()));
        assert_eq!(n.events, crate::spec::NoticeKind::ALL);

        let bad =
            "world = \"lab\"\n\n[notify]\nwebhook = { url = \"http://hooks.example.com/x\", secret_env = \"S\" }\n";
        let text = Settings::parse(Path::new("d.toml"), bad).unwrap_err().to_string();
        assert!(text.starts_with("error[notify-webhook-url]: d.toml:4:"), "{text}");
        assert!(text.contains("plain http to another host") && text.contains("write an https URL"), "{text}");

        let text =
            Settings::parse(Path::new("d.toml"), "[notify]\nevents = [\"completed\"]\n").unwrap_err().to_string();
        assert!(text.starts_with("error[notify-no-destination]: d.toml:1:"), "{text}");

        let text = Settings::parse(Path::new("d.toml"), "[notify]\nsns_topc = \"x\"\n").unwrap_err().to_string();
        assert!(text.starts_with("error[unknown-key]: d.toml:2:1: notify.sns_topc"), "{text}");
        assert!(text.contains("did you mean `sns_topic`?"), "{text}");
    }

    #[test]
    fn a_wrong_type_names_the_key() {
        let e = Settings::parse(Path::new("d.toml"), "grace_secs = \"30\"\n").unwrap_err();
        let text = e.to_string();
        assert!(text.starts_with("error[wrong-type]: d.toml:1:14: grace_secs"), "{text}");
    }
}
