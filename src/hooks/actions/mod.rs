//! Hook actions: given one hook's action config, perform it — run a command or deliver a
//! notification. The hook engine (`crate::hooks`) decides *when* a hook fires and records
//! the hook operation; this module only decides *how* its action runs.
//!
//! Every HTTP call goes through one shared client (`http.rs`) with a 10 s connect and a
//! 30 s total timeout, and every action except `command` is abandoned as soon as
//! [`ActionEnv::cancel`] fires, so a slow or dead notification service never holds up
//! anything beyond its own hook.
//!
//! Services with a fixed host can be pointed elsewhere (tests, proxies, self-hosted API
//! gateways) with environment variables, read on every call. Each holds an origin such as
//! `http://127.0.0.1:8080` (a path prefix is allowed); the service's usual path is appended:
//!
//! | variable | default | used by |
//! |---|---|---|
//! | `BACKREST_TELEGRAM_API_URL` | `https://api.telegram.org` | Telegram hooks, `telegram://` |
//! | `BACKREST_DISCORD_API_URL` | `https://discord.com` | `discord://` |
//! | `BACKREST_SLACK_API_URL` | `https://hooks.slack.com` (webhooks), `https://slack.com` (bot tokens) | `slack://` |
//!
//! Secrets (bot tokens, webhook tokens, passwords in URLs) never reach the hook log or an
//! error message: URLs are shown as `scheme://host/…` and known secrets are masked.

mod command;
mod discord;
mod gotify;
mod healthchecks;
mod http;
mod shoutrrr;
mod slack;
mod telegram;
mod tls;
mod webhook;

#[cfg(test)]
mod test_support;

use crate::pb::v1::hook;

use http::HttpClient;

/// What an action needs from the hook engine.
pub struct ActionEnv<'a> {
    /// The condition that fired this hook (Healthchecks picks its path from it).
    pub condition: hook::Condition,
    /// Renders a template text with the hook's variables; Err is a readable message.
    pub render: &'a (dyn Fn(&str) -> Result<String, String> + Send + Sync),
    /// Appends one line to the hook operation's log (shown to the user).
    pub log: &'a (dyn Fn(&str) + Send + Sync),
    /// Cancelled when the parent task is cancelled or the server shuts down.
    pub cancel: tokio_util::sync::CancellationToken,
}

/// A failed action. The message is meant for a person (it becomes the hook operation's
/// error) and never contains a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActionError {
    message: String,
    cancelled: bool,
}

impl ActionError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            cancelled: false,
        }
    }

    /// The action stopped because [`ActionEnv::cancel`] fired.
    pub(crate) fn cancelled() -> Self {
        Self {
            message: "cancelled".to_string(),
            cancelled: true,
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }

    /// True when the action was interrupted by cancellation rather than failing by itself.
    pub fn is_cancelled(&self) -> bool {
        self.cancelled
    }
}

impl std::fmt::Display for ActionError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ActionError {}

/// Backrest's handler name for an action, used in hook operation titles
/// (`<name> hook plan/<id>/hook/<index>`).
pub fn handler_name(action: &hook::Action) -> &'static str {
    match action {
        hook::Action::ActionCommand(_) => "command",
        hook::Action::ActionWebhook(_) => "webhook",
        hook::Action::ActionDiscord(_) => "discord",
        hook::Action::ActionGotify(_) => "gotify",
        hook::Action::ActionSlack(_) => "slack",
        hook::Action::ActionShoutrrr(_) => "shoutrrr",
        hook::Action::ActionHealthchecks(_) => "healthchecks",
        hook::Action::ActionTelegram(_) => "telegram",
    }
}

/// Runs the action. `Err` is a hook failure with a message a person understands.
pub async fn run(action: &hook::Action, env: &ActionEnv<'_>) -> Result<(), ActionError> {
    let runtime = Runtime {
        http: HttpClient::shared()?,
        endpoints: Endpoints::from_env(),
    };
    run_with(action, env, &runtime).await
}

/// The parts of the outside world an action talks to; tests build their own (short
/// timeouts, local endpoints) instead of touching process-wide state.
pub(crate) struct Runtime {
    pub(crate) http: HttpClient,
    pub(crate) endpoints: Endpoints,
}

/// Base URLs of the fixed-host services (see the module docs).
#[derive(Debug, Clone)]
pub(crate) struct Endpoints {
    pub(crate) telegram: String,
    pub(crate) discord: String,
    pub(crate) slack_webhooks: String,
    pub(crate) slack_api: String,
}

impl Endpoints {
    pub(crate) fn from_env() -> Self {
        let var = |name: &str| {
            std::env::var(name)
                .ok()
                .map(|v| v.trim().trim_end_matches('/').to_string())
                .filter(|v| !v.is_empty())
        };
        let slack = var("BACKREST_SLACK_API_URL");
        Self {
            telegram: var("BACKREST_TELEGRAM_API_URL")
                .unwrap_or_else(|| "https://api.telegram.org".into()),
            discord: var("BACKREST_DISCORD_API_URL")
                .unwrap_or_else(|| "https://discord.com".into()),
            slack_webhooks: slack
                .clone()
                .unwrap_or_else(|| "https://hooks.slack.com".into()),
            slack_api: slack.unwrap_or_else(|| "https://slack.com".into()),
        }
    }

    /// Every service at one local origin (tests).
    #[cfg(test)]
    pub(crate) fn all_at(origin: &str) -> Self {
        Self {
            telegram: origin.to_string(),
            discord: origin.to_string(),
            slack_webhooks: origin.to_string(),
            slack_api: origin.to_string(),
        }
    }
}

pub(crate) async fn run_with(
    action: &hook::Action,
    env: &ActionEnv<'_>,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    // The command action handles cancellation itself: it must stop its process group.
    if let hook::Action::ActionCommand(cmd) = action {
        return command::run(cmd, env).await;
    }
    let work = async {
        match action {
            hook::Action::ActionCommand(_) => unreachable!("handled above"),
            hook::Action::ActionWebhook(w) => webhook::run(w, env, runtime).await,
            hook::Action::ActionDiscord(d) => discord::run(d, env, runtime).await,
            hook::Action::ActionGotify(g) => gotify::run(g, env, runtime).await,
            hook::Action::ActionSlack(s) => slack::run(s, env, runtime).await,
            hook::Action::ActionShoutrrr(s) => shoutrrr::run(s, env, runtime).await,
            hook::Action::ActionHealthchecks(h) => healthchecks::run(h, env, runtime).await,
            hook::Action::ActionTelegram(t) => telegram::run(t, env, runtime).await,
        }
    };
    tokio::select! {
        result = work => result,
        _ = env.cancel.cancelled() => Err(ActionError::cancelled()),
    }
}

/// Backrest's payload template when a notification hook leaves it blank.
const DEFAULT_TEMPLATE: &str = "{{ .Summary }}";

/// Renders a notification's template, or the default one when it is blank. Backrest
/// trims only spaces here (a template of just a newline is rendered as is).
pub(crate) fn render_notification(
    template: &str,
    env: &ActionEnv<'_>,
) -> Result<String, ActionError> {
    render_or_default(template, DEFAULT_TEMPLATE, env, "template rendering")
}

pub(crate) fn render_or_default(
    template: &str,
    default: &str,
    env: &ActionEnv<'_>,
    what: &str,
) -> Result<String, ActionError> {
    let text = if template.trim_matches(' ').is_empty() {
        default
    } else {
        template
    };
    (env.render)(text).map_err(|e| ActionError::new(format!("{what}: {e}")))
}
