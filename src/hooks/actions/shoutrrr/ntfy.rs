//! shoutrrr's ntfy service: `ntfy://[user:pass@]host[:port]/topic?…` posts the message as
//! the body to `https://host/topic` (host defaults to `ntfy.sh`; `scheme=http` or
//! `disabletls=yes` for plain HTTP), with the options as ntfy headers: `title`,
//! `priority` (1–5 or min/low/default/high/max/urgent), `tags`, `actions`, `click`,
//! `attach`, `filename`, `delay` (alias `at`, `in`), `email`, `icon`, `markdown`, `cache`,
//! `firebase`, `disabletlsverification`. A user or password becomes Basic authentication.

use base64::Engine;

use super::{ServiceUrl, fail_on_error_status};
use crate::hooks::actions::http::Request;
use crate::hooks::actions::{ActionError, Runtime};

const SERVICE: &str = "shoutrrr: ntfy";

#[derive(serde::Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    error: String,
    #[serde(default)]
    link: String,
}

pub(super) async fn send(
    url: &ServiceUrl,
    message: &str,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let mut params = url.params(SERVICE);
    let title = params.take(&["title"]).unwrap_or_default();
    let mut scheme = params
        .take(&["scheme"])
        .unwrap_or_else(|| "https".to_string())
        .to_ascii_lowercase();
    let tags = params.take(&["tags"]).unwrap_or_default();
    let priority = match params.take(&["priority"]) {
        None => "Default".to_string(),
        Some(value) => priority_name(&value)
            .ok_or_else(|| {
                params.invalid(
                    "priority",
                    &value,
                    "use 1-5, min, low, default, high, max or urgent",
                )
            })?
            .to_string(),
    };
    let actions = params.take(&["actions"]).unwrap_or_default();
    let click = params.take(&["click"]).unwrap_or_default();
    let attach = params.take(&["attach"]).unwrap_or_default();
    let filename = params.take(&["filename"]).unwrap_or_default();
    let delay = params.take(&["delay", "at", "in"]).unwrap_or_default();
    let email = params.take(&["email"]).unwrap_or_default();
    let icon = params.take(&["icon"]).unwrap_or_default();
    let markdown = params.take_bool(&["markdown"], false)?;
    let cache = params.take_bool(&["cache"], true)?;
    let firebase = params.take_bool(&["firebase"], true)?;
    let skip_verify = params.take_bool(&["disabletlsverification"], false)?;
    if params.take_bool(&["disabletls"], false)? {
        scheme = "http".to_string();
    }
    params.finish()?;
    if scheme != "http" && scheme != "https" {
        return Err(ActionError::new(format!(
            "{SERVICE}: \"{scheme}\" is not a valid value for \"scheme\" (use http or https)"
        )));
    }

    let topic = url.raw_path().trim_start_matches('/');
    if topic.is_empty() {
        return Err(ActionError::new(format!(
            "{SERVICE}: the URL names no topic (ntfy://host/topic)"
        )));
    }
    let host = match url.host_port() {
        h if h.is_empty() => "ntfy.sh".to_string(),
        h => h,
    };
    let target = format!("{scheme}://{host}/{topic}");

    let content_type = if markdown {
        "text/markdown"
    } else {
        "text/plain; charset=utf-8"
    };
    let mut request = Request::post(SERVICE, &target, content_type, message.as_bytes().to_vec());
    request.verify_certificates = !skip_verify;
    for (name, value) in [
        ("Title", title),
        ("Priority", priority),
        ("Tags", tags),
        ("Delay", delay),
        ("Actions", actions),
        ("Click", click),
        ("Attach", attach),
        ("X-Icon", icon),
        ("Filename", filename),
        ("Email", email),
    ] {
        if !value.is_empty() {
            request = request.header(name, value);
        }
    }
    if !cache {
        request = request.header("Cache", "no");
    }
    if !firebase {
        request = request.header("Firebase", "no");
    }
    let user = url.user();
    let password = url.password().unwrap_or_default();
    if !user.is_empty() || !password.is_empty() {
        let encoded =
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
        request = request
            .header("Authorization", format!("Basic {encoded}"))
            .secret(encoded);
    }
    request = request.secrets(url.secrets());

    let response = runtime.http.send(request).await?;
    fail_on_error_status(&response, SERVICE, |answer: ErrorAnswer| {
        if answer.error.is_empty() {
            return None;
        }
        let mut text = format!(
            "{SERVICE}: server response: {} ({})",
            answer.error, answer.code
        );
        if !answer.link.is_empty() {
            text.push_str(&format!(", see: {}", answer.link));
        }
        Some(text)
    })
}

/// The header value shoutrrr sends for a priority.
fn priority_name(value: &str) -> Option<&'static str> {
    Some(match value.to_ascii_lowercase().as_str() {
        "1" | "min" => "Min",
        "2" | "low" => "Low",
        "3" | "default" => "Default",
        "4" | "high" => "High",
        "5" | "max" | "urgent" => "Max",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use crate::hooks::actions::test_support::{
        ActionOutcome, Receiver, UNUSED_ORIGIN, run_shoutrrr,
    };

    async fn send(url: String) -> ActionOutcome {
        run_shoutrrr(&url, "Backup done", UNUSED_ORIGIN).await
    }

    #[tokio::test]
    async fn the_message_is_the_body_and_options_are_headers() {
        let receiver = Receiver::start_with(200, "{\"id\":\"x\"}").await;
        let host = receiver.origin().trim_start_matches("http://").to_string();
        let (result, log) = send(format!(
            "ntfy://alice:s3cret-pass@{host}/backups?scheme=http&title=Backrest+Alert&priority=5&tags=warning,disk\
             &click=https://example.com&cache=no&firebase=No&markdown=yes&delay=5m"
        ))
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/backups");
        assert_eq!(request.body_text(), "Backup done");
        assert_eq!(request.header("content-type"), Some("text/markdown"));
        assert_eq!(request.header("title"), Some("Backrest Alert"));
        assert_eq!(request.header("priority"), Some("Max"));
        assert_eq!(request.header("tags"), Some("warning,disk"));
        assert_eq!(request.header("click"), Some("https://example.com"));
        assert_eq!(request.header("delay"), Some("5m"));
        assert_eq!(request.header("cache"), Some("no"));
        assert_eq!(request.header("firebase"), Some("no"));
        assert_eq!(
            request.header("authorization"),
            Some("Basic YWxpY2U6czNjcmV0LXBhc3M=")
        );
        assert!(log.iter().all(|l| !l.contains("s3cret")), "{log:?}");
    }

    #[tokio::test]
    async fn defaults() {
        let receiver = Receiver::start().await;
        let host = receiver.origin().trim_start_matches("http://").to_string();
        let (result, _) = send(format!("ntfy://{host}/topic?disabletls=yes")).await;
        result.unwrap();
        let request = receiver.only_request().await;
        assert_eq!(
            request.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(request.header("priority"), Some("Default"));
        assert_eq!(request.header("title"), None);
        assert_eq!(request.header("cache"), None);
        assert_eq!(request.header("authorization"), None);
    }

    #[tokio::test]
    async fn errors_from_ntfy_are_readable() {
        let receiver = Receiver::start_with(
            403,
            "{\"code\":40301,\"http\":403,\"error\":\"forbidden\",\"link\":\"https://ntfy.sh/docs/publish/#authentication\"}",
        )
        .await;
        let host = receiver.origin().trim_start_matches("http://").to_string();
        let (result, _) = send(format!("ntfy://bob:hunter2hunter2@{host}/t?scheme=http")).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: ntfy: server response: forbidden (40301), see: https://ntfy.sh/docs/publish/#authentication"
        );
    }

    #[tokio::test]
    async fn bad_parameters_are_named() {
        let (result, _) = send("ntfy://ntfy.sh/t?priority=7".into()).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: ntfy: \"7\" is not a valid value for \"priority\" (use 1-5, min, low, default, high, max or urgent)"
        );
        let (result, _) = send("ntfy://ntfy.sh/t?colour=red".into()).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: ntfy: unknown URL parameter \"colour\""
        );
        let (result, _) = send("ntfy://ntfy.sh/".into()).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: ntfy: the URL names no topic (ntfy://host/topic)"
        );
    }
}
