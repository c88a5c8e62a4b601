//! `[notify]`: where completion, failure and needs-human events go (an SNS topic, a webhook).

use std::path::PathBuf;

use super::super::error::ErrorKind;
use super::super::raw::{RawNotify, RawWebhook, S};
use super::super::types::{NoticeKind, NotifySpec, SecretRef, SnsTopic, WebhookSpec};
use super::Checker;
use crate::ids::Region;

impl Checker<'_, '_> {
    pub(super) fn notify(&mut self, raw: &RawNotify) -> Option<NotifySpec> {
        if raw.sns_topic.is_none() && raw.webhook.is_none() {
            let span = self.source.header("notify", 0);
            self.push(
                span,
                "notify",
                ErrorKind::NotifyNoDestination,
                "[notify] names no destination",
                "add sns_topic = \"arn:aws:sns:<region>:<account>:<topic>\" and/or webhook = { url = \"https://…\", secret_env = \"VARIABLE\" }, or remove [notify]",
            );
            return None;
        }
        let sns_topic = raw.sns_topic.as_ref().map(|v| self.sns_topic(v));
        let webhook = raw.webhook.as_ref().map(|w| self.webhook(w));
        let events = match &raw.events {
            None => Some(NoticeKind::ALL.to_vec()),
            Some(list) => self.events(list),
        };
        Some(NotifySpec {
            sns_topic: match sns_topic {
                Some(t) => Some(t?),
                None => None,
            },
            webhook: match webhook {
                Some(w) => Some(w?),
                None => None,
            },
            events: events?,
        })
    }

    /// `arn:<partition>:sns:<region>:<12-digit account>:<topic name>`.
    fn sns_topic(&mut self, value: &S<String>) -> Option<SnsTopic> {
        let s = value.get_ref();
        match parse_topic_arn(s) {
            Ok(topic) => Some(topic),
            Err(problem) => {
                self.push(
                    value.span(),
                    "notify.sns_topic",
                    ErrorKind::NotifySnsTopic,
                    format!("\"{s}\" is not an SNS topic ARN: {problem}"),
                    "write the topic's ARN as the SNS console shows it, e.g. \"arn:aws:sns:ap-northeast-1:123456789012:mirrorctl\"",
                );
                None
            }
        }
    }

    fn webhook(&mut self, raw: &S<RawWebhook>) -> Option<WebhookSpec> {
        let span = raw.span();
        let raw = raw.get_ref();
        let url = match &raw.url {
            None => {
                self.push(
                    span.clone(),
                    "notify.webhook.url",
                    ErrorKind::MissingKey,
                    "required key `url` is missing from `notify.webhook`",
                    "add url = \"https://<receiver>/<path>\"",
                );
                None
            }
            Some(v) => self.webhook_url(v),
        };
        let secret = self.webhook_secret(raw, span);
        Some(WebhookSpec { url: url?, secret: secret? })
    }

    /// https, or http to a loopback address (a receiver on this host; tests).
    fn webhook_url(&mut self, value: &S<String>) -> Option<String> {
        let s = value.get_ref();
        let host_of = |rest: &str| {
            let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
            let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
            if host.starts_with('[') {
                host.split(']').next().map(|h| format!("{h}]")).unwrap_or_default()
            } else {
                host.split(':').next().unwrap_or("").to_owned()
            }
        };
        let ok = if let Some(rest) = s.strip_prefix("https://") {
            !host_of(rest).is_empty()
        } else if let Some(rest) = s.strip_prefix("http://") {
            matches!(host_of(rest).as_str(), "127.0.0.1" | "localhost" | "[::1]")
        } else {
            false
        };
        if ok && !s.contains(char::is_whitespace) {
            return Some(s.clone());
        }
        let problem = if s.starts_with("http://") {
            format!(
                "\"{s}\" is plain http to another host: events and their signature would cross the network unencrypted"
            )
        } else {
            format!("\"{s}\" is not an https URL")
        };
        self.push(
            value.span(),
            "notify.webhook.url",
            ErrorKind::NotifyWebhookUrl,
            problem,
            "write an https URL, e.g. \"https://hooks.example.com/mirrorctl\" (plain http is accepted only for 127.0.0.1, localhost or [::1])",
        );
        None
    }

    /// Exactly one of `secret_env`, `secret_file`, `secret_id` (+ optional `secret_key`).
    fn webhook_secret(&mut self, raw: &RawWebhook, span: std::ops::Range<usize>) -> Option<SecretRef> {
        const SOURCES: &str =
            "secret_env = \"VARIABLE\", secret_file = \"/path/to/file\" or secret_id = \"<Secrets Manager id or ARN>\"";
        if let Some(key) = &raw.secret_key
            && raw.secret_id.is_none()
        {
            self.push(
                key.span(),
                "notify.webhook.secret_key",
                ErrorKind::NotifyWebhookSecret,
                "`secret_key` names a key inside a Secrets Manager secret, but `secret_id` is not given",
                "add secret_id = \"<Secrets Manager id or ARN>\", or remove secret_key",
            );
            return None;
        }
        let given: Vec<(&str, &S<String>)> = [
            ("secret_env", raw.secret_env.as_ref()),
            ("secret_file", raw.secret_file.as_ref()),
            ("secret_id", raw.secret_id.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        match given.as_slice() {
            [] => {
                self.push(
                    span,
                    "notify.webhook",
                    ErrorKind::NotifyWebhookSecret,
                    "the webhook has no signing secret",
                    format!(
                        "add one of {SOURCES}: every event is signed with it (HMAC-SHA256) so the receiver can tell it came from mirrorctl"
                    ),
                );
                None
            }
            [(k, v)] => {
                let key = format!("notify.webhook.{k}");
                let s = self.non_empty(v, &key, "name where mirrorctl finds the signing secret")?;
                match *k {
                    "secret_env" => Some(SecretRef::Env(s)),
                    "secret_file" => Some(SecretRef::File(PathBuf::from(s))),
                    _ => {
                        let json_key = match &raw.secret_key {
                            None => None,
                            Some(v) => Some(self.non_empty(
                                v,
                                "notify.webhook.secret_key",
                                "name the key of the secret's JSON object that holds the signing secret, or remove the key to use the whole secret string",
                            )?),
                        };
                        Some(SecretRef::SecretsManager { id: s, json_key })
                    }
                }
            }
            [(first, _), (second, v), ..] => {
                self.push(
                    v.span(),
                    &format!("notify.webhook.{second}"),
                    ErrorKind::NotifyWebhookSecret,
                    format!("both `{first}` and `{second}` are given: the signing secret must have one source"),
                    "keep exactly one of secret_env, secret_file and secret_id",
                );
                None
            }
        }
    }

    fn events(&mut self, list: &S<Vec<S<String>>>) -> Option<Vec<NoticeKind>> {
        const HINT: &str =
            "list some of \"completed\", \"failed\" and \"needs-human\", or remove `events` to send all three";
        if list.get_ref().is_empty() {
            self.push(list.span(), "notify.events", ErrorKind::NotifyEvents, "`events` is empty", HINT);
            return None;
        }
        let mut out: Vec<NoticeKind> = Vec::new();
        let mut ok = true;
        for (i, v) in list.get_ref().iter().enumerate() {
            let key = format!("notify.events[{i}]");
            match NoticeKind::ALL.into_iter().find(|k| k.as_str() == v.get_ref()) {
                Some(k) if out.contains(&k) => {
                    self.push(
                        v.span(),
                        &key,
                        ErrorKind::NotifyEvents,
                        format!("\"{}\" is listed twice", v.get_ref()),
                        "list each event once",
                    );
                    ok = false;
                }
                Some(k) => out.push(k),
                None => {
                    self.push(
                        v.span(),
                        &key,
                        ErrorKind::NotifyEvents,
                        format!("\"{}\" is not an event mirrorctl sends", v.get_ref()),
                        HINT,
                    );
                    ok = false;
                }
            }
        }
        out.sort();
        ok.then_some(out)
    }
}

/// Parses `arn:<partition>:sns:<region>:<account>:<name>`; the error says which part is wrong.
pub(crate) fn parse_topic_arn(s: &str) -> Result<SnsTopic, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [arn, partition, service, region, account, name] = parts.as_slice() else {
        return Err(format!("it has {} colon-separated parts, a topic ARN has 6", parts.len()));
    };
    if *arn != "arn" {
        return Err("it does not start with `arn:`".to_owned());
    }
    if !matches!(*partition, "aws" | "aws-cn" | "aws-us-gov") {
        return Err(format!("partition \"{partition}\" is not aws, aws-cn or aws-us-gov"));
    }
    if *service != "sns" {
        return Err(format!("service \"{service}\" is not sns"));
    }
    let region = Region::parse(region).map_err(|e| e.0)?;
    if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("account \"{account}\" is not 12 digits"));
    }
    // SNS names FIFO topics with exactly this lowercase suffix.
    let (base, fifo) = match name.strip_suffix(".fifo") {
        Some(base) => (base, true),
        None => (*name, false),
    };
    if base.is_empty() || base.len() > 256 || !base.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        return Err(format!(
            "topic name \"{name}\" must be 1–256 letters, digits, hyphens or underscores (plus .fifo for a FIFO topic)"
        ));
    }
    Ok(SnsTopic { arn: s.to_owned(), region, fifo })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_arns() {
        let t = parse_topic_arn("arn:aws:sns:ap-northeast-1:123456789012:mirrorctl").unwrap();
        assert_eq!((t.region.as_str(), t.fifo), ("ap-northeast-1", false));
        assert!(parse_topic_arn("arn:aws:sns:us-east-1:123456789012:events.fifo").unwrap().fifo);
        assert!(parse_topic_arn("arn:aws:sqs:us-east-1:123456789012:q").unwrap_err().contains("sqs"));
        assert!(parse_topic_arn("arn:aws:sns:us-east-1:1234:t").unwrap_err().contains("12 digits"));
        assert!(parse_topic_arn("mirrorctl").unwrap_err().contains('6'));
        assert!(parse_topic_arn("arn:aws:sns:us-east-1:123456789012:a b").unwrap_err().contains("topic name"));
    }
}
