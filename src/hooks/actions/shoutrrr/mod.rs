//! Shoutrrr hook: Backrest hands the rendered message and a service URL to the Go library
//! `nicholas-fedor/shoutrrr`, whose URL scheme selects the service. backrest-rs speaks the
//! common services natively, following shoutrrr's URL formats and requests:
//!
//! | scheme | URL | file |
//! |---|---|---|
//! | `generic`, `generic+https`, `generic+http` | `generic://host[:port]/path?template=json&@Header=v&$extra=v&…` | `generic.rs` |
//! | `ntfy` | `ntfy://[user:pass@]host[:port]/topic?title=…&priority=…&tags=…` | `ntfy.rs` |
//! | `discord` | `discord://token@webhookid[/raw]?title=…&splitlines=no` | `discord.rs` |
//! | `slack` | `slack://hook:T-B-X@webhook`, `slack://T/B/X`, `slack://xoxb:T-B-X@channel` | `slack.rs` |
//! | `telegram` | `telegram://<bot id>:<secret>@telegram?chats=@chan,123` | `telegram.rs` |
//! | `gotify` | `gotify://host[:port][/path]/token?title=…&priority=…` | `gotify.rs` |
//! | `smtp` | `smtp://[user:pass@]host[:port]/?from=…&to=a,b&subject=…&encryption=…` | `smtp.rs` |
//!
//! Any other scheme fails with an error naming it. Query parameter names are matched
//! without regard to case, as shoutrrr does for most services.

mod discord;
mod generic;
mod gotify;
mod ntfy;
mod slack;
mod smtp;
mod telegram;

use super::http::Response;
use super::{ActionEnv, ActionError, Runtime, render_notification};
use crate::pb::v1::hook;

const SUPPORTED: &[&str] = &[
    "discord", "generic", "gotify", "ntfy", "slack", "smtp", "telegram",
];

pub(super) async fn run(
    shoutrrr: &hook::Shoutrrr,
    env: &ActionEnv<'_>,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let message = render_notification(&shoutrrr.template, env)?;
    let url = ServiceUrl::parse(&shoutrrr.shoutrrr_url)?;
    (env.log)(&format!("Sending shoutrrr message to {}", url.redacted()));
    match url.service.as_str() {
        "generic" => generic::send(&url, &message, runtime).await,
        "ntfy" => ntfy::send(&url, &message, runtime).await,
        "discord" => discord::send(&url, &message, runtime).await,
        "slack" => slack::send(&url, &message, runtime).await,
        "telegram" => telegram::send(&url, &message, runtime).await,
        "gotify" => gotify::send(&url, &message, runtime).await,
        "smtp" => smtp::send(&url, &message, env).await,
        other => Err(ActionError::new(format!(
            "shoutrrr: the \"{other}\" service is not supported by backrest-rs (supported: {})",
            SUPPORTED.join(", ")
        ))),
    }
}

/// A parsed shoutrrr URL.
pub(crate) struct ServiceUrl {
    url: url::Url,
    /// The full scheme, lower case (`generic+https`).
    scheme: String,
    /// The service: the scheme up to the first `+`.
    service: String,
}

impl ServiceUrl {
    fn parse(raw: &str) -> Result<ServiceUrl, ActionError> {
        let url = url::Url::parse(raw.trim()).map_err(|e| {
            // The URL itself is not shown: it carries tokens and passwords.
            ActionError::new(format!("shoutrrr: invalid URL: {e}"))
        })?;
        let scheme = url.scheme().to_ascii_lowercase();
        let service = scheme.split('+').next().unwrap_or_default().to_string();
        Ok(ServiceUrl {
            url,
            scheme,
            service,
        })
    }

    pub(crate) fn user(&self) -> String {
        decode(self.url.username())
    }

    pub(crate) fn password(&self) -> Option<String> {
        self.url.password().map(decode)
    }

    /// The host without the port.
    pub(crate) fn host(&self) -> String {
        decode(self.url.host_str().unwrap_or_default())
    }

    /// `host` or `host:port`.
    pub(crate) fn host_port(&self) -> String {
        match self.url.port() {
            Some(port) => format!("{}:{port}", self.url.host_str().unwrap_or_default()),
            None => self.url.host_str().unwrap_or_default().to_string(),
        }
    }

    /// The path as written (percent-encoded), possibly empty.
    pub(crate) fn raw_path(&self) -> &str {
        self.url.path()
    }

    /// The query parameters, `+` and `%xx` decoded.
    pub(crate) fn params(&self, service: &'static str) -> Params {
        Params {
            service,
            items: self
                .url
                .query_pairs()
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        }
    }

    /// `scheme://host[:port]/…`, the way the URL may be shown.
    pub(crate) fn redacted(&self) -> String {
        let mut shown = format!("{}://{}", self.scheme, self.host_port());
        let has_more =
            !self.url.path().trim_start_matches('/').is_empty() || self.url.query().is_some();
        shown.push_str(if has_more { "/…" } else { "/" });
        shown
    }

    /// The parts of the URL that may be secret, for masking in messages.
    pub(crate) fn secrets(&self) -> Vec<String> {
        let mut secrets = vec![self.user()];
        secrets.extend(self.password());
        secrets.extend(self.url.path_segments().into_iter().flatten().map(decode));
        secrets.retain(|s| s.len() >= 4);
        secrets
    }
}

/// Fails on a 4xx or 5xx answer: with the service's own explanation when its JSON error
/// body gives one (`explain`), else with the status and the start of the body.
pub(crate) fn fail_on_error_status<A: serde::de::DeserializeOwned>(
    response: &Response,
    service: &str,
    explain: impl FnOnce(A) -> Option<String>,
) -> Result<(), ActionError> {
    if response.status.as_u16() < 400 {
        return Ok(());
    }
    match serde_json::from_str::<A>(&response.body)
        .ok()
        .and_then(explain)
    {
        Some(message) => Err(response.fail(message)),
        None => Err(response.error(service)),
    }
}

fn decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// Query parameters of a service URL, consumed as the service reads them.
pub(crate) struct Params {
    service: &'static str,
    items: Vec<(String, String)>,
}

impl Params {
    /// The first value of any of `keys` (case-insensitive); every occurrence is consumed.
    pub(crate) fn take(&mut self, keys: &[&str]) -> Option<String> {
        let mut found = None;
        self.items.retain(|(key, value)| {
            if keys.iter().any(|k| k.eq_ignore_ascii_case(key)) {
                found.get_or_insert_with(|| value.clone());
                false
            } else {
                true
            }
        });
        found
    }

    /// A yes/no parameter (`yes`, `true`, `1`, `y` / `no`, `false`, `0`, `n`).
    pub(crate) fn take_bool(&mut self, keys: &[&str], default: bool) -> Result<bool, ActionError> {
        match self.take(keys) {
            None => Ok(default),
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "yes" | "true" | "1" | "y" => Ok(true),
                "no" | "false" | "0" | "n" => Ok(false),
                _ => Err(self.invalid(keys[0], &value, "use yes or no")),
            },
        }
    }

    pub(crate) fn invalid(&self, key: &str, value: &str, hint: &str) -> ActionError {
        ActionError::new(format!(
            "{}: \"{value}\" is not a valid value for \"{key}\" ({hint})",
            self.service
        ))
    }

    /// Fails on any parameter the service did not consume.
    pub(crate) fn finish(self) -> Result<(), ActionError> {
        if self.items.is_empty() {
            return Ok(());
        }
        let names: Vec<String> = self.items.iter().map(|(k, _)| format!("\"{k}\"")).collect();
        Err(ActionError::new(format!(
            "{}: unknown URL parameter {}",
            self.service,
            names.join(", ")
        )))
    }

    /// The parameters not consumed, in URL order.
    pub(crate) fn into_rest(self) -> Vec<(String, String)> {
        self.items
    }
}

#[cfg(test)]
mod tests {
    use crate::hooks::actions::test_support::{UNUSED_ORIGIN, run_shoutrrr};

    #[tokio::test]
    async fn an_unsupported_scheme_is_named() {
        let (result, log) = run_shoutrrr(
            "pushover://shoutrrr:apiToken@userKey/?devices=d",
            "x",
            UNUSED_ORIGIN,
        )
        .await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: the \"pushover\" service is not supported by backrest-rs \
             (supported: discord, generic, gotify, ntfy, slack, smtp, telegram)"
        );
        assert_eq!(
            log,
            vec!["Sending shoutrrr message to pushover://userKey/…"]
        );
    }

    #[tokio::test]
    async fn an_invalid_url_does_not_echo_it() {
        let (result, _) = run_shoutrrr("no scheme secret", "x", UNUSED_ORIGIN).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: invalid URL: relative URL without a base"
        );
    }
}
