//! `cluster.api`: the CLUSTERPRO REST API's addresses, user, password source and TLS checks.

use std::path::PathBuf;

use super::super::error::ErrorKind;
use super::super::raw::{RawApi, S};
use super::super::types::{ApiSpec, ApiTls, SecretRef};
use super::Checker;

impl Checker<'_, '_> {
    pub(super) fn api(&mut self, raw: &RawApi) -> Option<ApiSpec> {
        const T: (&str, usize) = ("cluster.api", 0);
        let urls = self.api_urls(raw);
        let user = self
            .required(raw.user.as_ref(), T, "cluster.api.user", "add user = \"<OS user for the CLUSTERPRO API>\"")
            .and_then(|v| self.non_empty(v, "cluster.api.user", "write the OS user the CLUSTERPRO API authenticates"));
        let password = self.password(raw);
        let tls = self.api_tls(raw, urls.as_deref());
        let request_timeout_s = match &raw.request_timeout_s {
            None => Some(ApiSpec::DEFAULT_REQUEST_TIMEOUT_S),
            Some(v) => self.range(
                v,
                "cluster.api.request_timeout_s",
                (1, 300),
                ErrorKind::ApiTimeoutOutOfRange,
                "seconds for one HTTP request",
            ),
        };
        let operation_timeout_s = match &raw.operation_timeout_s {
            None => Some(ApiSpec::DEFAULT_OPERATION_TIMEOUT_S),
            Some(v) => self.range(
                v,
                "cluster.api.operation_timeout_s",
                (10, 86_400),
                ErrorKind::ApiTimeoutOutOfRange,
                "seconds for one cluster operation",
            ),
        };
        Some(ApiSpec {
            urls: urls?,
            user: user?,
            password: password?,
            tls: tls?,
            request_timeout_s: request_timeout_s?,
            operation_timeout_s: operation_timeout_s?,
        })
    }

    /// `url` or `urls`: at least one http(s) URL, none twice.
    pub(super) fn api_urls(&mut self, raw: &RawApi) -> Option<Vec<String>> {
        let given: Vec<(String, &S<String>)> = match (&raw.url, &raw.urls) {
            (Some(_), Some(list)) => {
                self.push(
                    list.span(),
                    "cluster.api.urls",
                    ErrorKind::ApiEndpoints,
                    "both `url` and `urls` are given",
                    "keep one: url = \"https://<node>:29009\" for one server, or urls = [\"https://<server1>:29009\", \"https://<server2>:29009\"] to try each server in turn",
                );
                return None;
            }
            (None, None) => {
                self.missing(
                    "cluster.api",
                    0,
                    "cluster.api.url",
                    "add url = \"https://<node address>:29009\", or urls = [...] with one address per server",
                );
                return None;
            }
            (Some(one), None) => vec![("cluster.api.url".to_owned(), one)],
            (None, Some(list)) if list.get_ref().is_empty() => {
                self.push(
                    list.span(),
                    "cluster.api.urls",
                    ErrorKind::ApiEndpoints,
                    "`urls` is empty",
                    "list the CLUSTERPRO API address of each server, e.g. urls = [\"https://10.0.10.11:29009\", \"https://10.0.20.11:29009\"]",
                );
                return None;
            }
            (None, Some(list)) => {
                list.get_ref().iter().enumerate().map(|(i, v)| (format!("cluster.api.urls[{i}]"), v)).collect()
            }
        };
        let mut out: Vec<String> = Vec::with_capacity(given.len());
        let mut ok = true;
        for (key, v) in given {
            let s = v.get_ref();
            let rest = s.strip_prefix("https://").or_else(|| s.strip_prefix("http://"));
            if !rest.is_some_and(|r| !r.is_empty() && !r.contains(char::is_whitespace)) {
                self.push(
                    v.span(),
                    &key,
                    ErrorKind::ApiUrl,
                    format!("\"{s}\" is not an http(s) URL"),
                    "write the CLUSTERPRO API address with its scheme, e.g. \"https://10.0.10.11:29009\"",
                );
                ok = false;
                continue;
            }
            let normalized = s.trim_end_matches('/').to_owned();
            if let Some(first) = out.iter().position(|u| u.eq_ignore_ascii_case(&normalized)) {
                self.push(
                    v.span(),
                    &key,
                    ErrorKind::ApiEndpoints,
                    format!("\"{s}\" is already listed as cluster.api.urls[{first}]"),
                    "list each server's API address once",
                );
                ok = false;
                continue;
            }
            out.push(normalized);
        }
        ok.then_some(out)
    }

    /// `ca_bundle` / `insecure`: at most one of them, and only for https URLs.
    pub(super) fn api_tls(&mut self, raw: &RawApi, urls: Option<&[String]>) -> Option<ApiTls> {
        let insecure = raw.insecure.as_ref().filter(|v| *v.get_ref());
        let tls = match (&raw.ca_bundle, insecure) {
            (Some(_), Some(flag)) => {
                self.push(
                    flag.span(),
                    "cluster.api.insecure",
                    ErrorKind::ApiTls,
                    "`insecure = true` switches certificate checks off, but `ca_bundle` asks to check against a CA",
                    "keep ca_bundle (recommended) and remove insecure",
                );
                return None;
            }
            (Some(path), None) if path.get_ref().trim().is_empty() => {
                self.push(
                    path.span(),
                    "cluster.api.ca_bundle",
                    ErrorKind::ApiTls,
                    "`cluster.api.ca_bundle` is empty",
                    "give the path of the PEM file holding the CA certificate(s) that signed the CLUSTERPRO API's certificate, or remove the key to use the system's trusted roots",
                );
                return None;
            }
            (Some(path), None) => (ApiTls::CaBundle(PathBuf::from(path.get_ref())), path.span(), "ca_bundle"),
            (None, Some(flag)) => (ApiTls::Insecure, flag.span(), "insecure"),
            (None, None) => return Some(ApiTls::System),
        };
        if let Some(urls) = urls
            && !urls.iter().any(|u| u.starts_with("https://"))
        {
            self.push(
                tls.1,
                &format!("cluster.api.{}", tls.2),
                ErrorKind::ApiTls,
                format!("`{}` applies to https URLs, but every API URL here is http", tls.2),
                "use https:// addresses (the API's HTTPS mode), or remove this key",
            );
            return None;
        }
        Some(tls.0)
    }

    pub(super) fn password(&mut self, raw: &RawApi) -> Option<SecretRef> {
        const SOURCES_HINT: &str = "use password_env = \"VARIABLE\", password_file = \"/path/to/file\" or password_secret = \"<Secrets Manager id or ARN>\"";
        if let Some(inline) = &raw.password {
            self.push(
                inline.span(),
                "cluster.api.password",
                ErrorKind::InlinePassword,
                "a password may not be written here: secrets never live in desired-state files",
                format!("remove `password` and {SOURCES_HINT}"),
            );
            return None;
        }
        let given: Vec<(&str, &S<String>)> = [
            ("password_env", raw.password_env.as_ref()),
            ("password_file", raw.password_file.as_ref()),
            ("password_secret", raw.password_secret.as_ref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| (k, v)))
        .collect();
        if let Some(key) = &raw.password_secret_key
            && raw.password_secret.is_none()
        {
            self.push(
                key.span(),
                "cluster.api.password_secret_key",
                ErrorKind::ApiSecretKey,
                "`password_secret_key` names a key inside a Secrets Manager secret, but `password_secret` is not given",
                "add password_secret = \"<Secrets Manager id or ARN>\", or remove password_secret_key",
            );
            return None;
        }
        match given.as_slice() {
            [] => {
                let span = self.source.header("cluster.api", 0);
                self.push(
                    span,
                    "cluster.api",
                    ErrorKind::ApiPasswordMissing,
                    "the API has no password source",
                    format!("{SOURCES_HINT} (exactly one)"),
                );
                None
            }
            [(k, v)] => {
                let key = format!("cluster.api.{k}");
                let s = self.non_empty(v, &key, "name where mirrorctl finds the password")?;
                match *k {
                    "password_env" => Some(SecretRef::Env(s)),
                    "password_file" => Some(SecretRef::File(PathBuf::from(s))),
                    _ => {
                        let json_key = match &raw.password_secret_key {
                            None => None,
                            Some(v) => Some(self.non_empty(
                                v,
                                "cluster.api.password_secret_key",
                                "name the key of the secret's JSON object that holds the password, e.g. \"password\", or remove the key to use the whole secret string",
                            )?),
                        };
                        Some(SecretRef::SecretsManager { id: s, json_key })
                    }
                }
            }
            [(first, _), (second, v), ..] => {
                self.push(
                    v.span(),
                    &format!("cluster.api.{second}"),
                    ErrorKind::ApiPasswordAmbiguous,
                    format!("both `{first}` and `{second}` are given: the password must have one source"),
                    "keep exactly one of password_env, password_file and password_secret",
                );
                None
            }
        }
    }
}
