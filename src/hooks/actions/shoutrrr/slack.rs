//! shoutrrr's Slack service. Two token kinds:
//! - webhook: `slack://hook:T-B-X@webhook` (or the old `slack://T/B/X`) posts to
//!   `<BACKREST_SLACK_API_URL, default https://hooks.slack.com>/services/T/B/X`, which
//!   answers `ok`;
//! - bot: `slack://xoxb:T-B-X@<channel>` posts to
//!   `<BACKREST_SLACK_API_URL, default https://slack.com>/api/chat.postMessage` with
//!   `Authorization: Bearer xoxb-T-B-X`, which answers `{"ok": true}`.
//!
//! The payload is shoutrrr's: `text` = the `title`, one attachment per message line
//! (with `color`), and `username` (`botname`), `icon_emoji`/`icon_url` (`icon`),
//! `thread_ts`, and `channel` for bot tokens.

use super::ServiceUrl;
use crate::hooks::actions::http::Request;
use crate::hooks::actions::{ActionError, Runtime};

const SERVICE: &str = "shoutrrr: slack";
const MAX_ATTACHMENTS: usize = 100;

#[derive(serde::Serialize)]
struct Payload<'a> {
    text: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    username: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    attachments: Vec<Attachment<'a>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    thread_ts: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    channel: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    icon_emoji: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    icon_url: &'a str,
}

#[derive(serde::Serialize)]
struct Attachment<'a> {
    text: String,
    #[serde(skip_serializing_if = "str::is_empty")]
    color: &'a str,
}

#[derive(serde::Deserialize)]
struct ApiAnswer {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    error: String,
}

/// A Slack token: its kind (`hook`, `xoxb`, `xoxp`, …) and three parts.
struct Token {
    kind: String,
    parts: [String; 3],
}

pub(super) async fn send(
    url: &ServiceUrl,
    message: &str,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let (raw_token, channel, mut bot_name) = if url.raw_path().len() > 1 {
        // Old form slack://T/B/X[?…]; a user part names the bot.
        (
            format!("{}{}", url.host(), url.raw_path()),
            "webhook".to_string(),
            url.user(),
        )
    } else {
        let user = url.user();
        let raw = match url.password() {
            Some(password) => format!("{user}:{password}"),
            None => user,
        };
        (raw, url.host(), String::new())
    };
    let token = parse_token(&raw_token).ok_or_else(|| {
        ActionError::new(format!(
            "{SERVICE}: the URL holds no valid token (slack://hook:T-B-X@webhook or slack://xoxb:T-B-X@channel)"
        ))
    })?;

    let mut params = url.params(SERVICE);
    if let Some(name) = params.take(&["botname", "username"]) {
        bot_name = name;
    }
    let icon = params
        .take(&["icon", "icon_emoji", "icon_url"])
        .unwrap_or_default();
    let color = params.take(&["color"]).unwrap_or_default();
    let title = params.take(&["title"]).unwrap_or_default();
    let thread_ts = params.take(&["thread_ts"]).unwrap_or_default();
    params.finish()?;

    let mut attachments: Vec<Attachment> = Vec::new();
    for (i, line) in message.split('\n').enumerate() {
        if i >= MAX_ATTACHMENTS {
            let last = attachments.last_mut().expect("at least one attachment");
            last.text.push('\n');
            last.text.push_str(line);
        } else {
            attachments.push(Attachment {
                text: line.to_string(),
                color: &color,
            });
        }
    }
    if attachments.last().is_some_and(|a| a.text.is_empty()) {
        attachments.pop();
    }
    let is_webhook = token.kind == "hook";
    let (icon_emoji, icon_url) = if icon.starts_with("http://") || icon.starts_with("https://") {
        ("", icon.as_str())
    } else {
        (icon.as_str(), "")
    };
    let payload = Payload {
        text: &title,
        username: &bot_name,
        attachments,
        thread_ts: &thread_ts,
        channel: if is_webhook || channel == "webhook" {
            ""
        } else {
            &channel
        },
        icon_emoji,
        icon_url,
    };

    let mut secrets = url.secrets();
    secrets.extend(token.parts.iter().filter(|p| p.len() >= 4).cloned());
    if is_webhook {
        let target = format!(
            "{}/services/{}/{}/{}",
            runtime.endpoints.slack_webhooks, token.parts[0], token.parts[1], token.parts[2]
        );
        let mut request = Request::post_json(SERVICE, &target, &payload);
        request.secrets = secrets;
        let response = runtime.http.send(request).await?;
        return match response.body.as_str() {
            "ok" => Ok(()),
            "" if response.status.as_u16() == 200 => Ok(()),
            "" => Err(response.error(SERVICE)),
            body => Err(response.fail(format!(
                "{SERVICE}: webhook answered {}: {}",
                response.status,
                body.trim()
            ))),
        };
    }

    let target = format!("{}/api/chat.postMessage", runtime.endpoints.slack_api);
    let bearer = format!(
        "{}-{}-{}-{}",
        token.kind, token.parts[0], token.parts[1], token.parts[2]
    );
    let mut request = Request::post_json(SERVICE, &target, &payload)
        .header("Authorization", format!("Bearer {bearer}"));
    secrets.push(bearer);
    request.secrets = secrets;
    let response = runtime.http.send(request).await?;
    if !response.status.is_success() {
        return Err(response.error(SERVICE));
    }
    match serde_json::from_str::<ApiAnswer>(&response.body) {
        Ok(answer) if answer.ok => Ok(()),
        Ok(answer) if !answer.error.is_empty() => Err(response.fail(format!(
            "{SERVICE}: the API answered an error: {}",
            answer.error
        ))),
        _ => Err(response.fail(format!(
            "{SERVICE}: unexpected answer from the API: {}",
            response.snippet()
        ))),
    }
}

/// Parses `[kind(-|:)]P1<sep>P2<sep>P3` as shoutrrr does: kind `hook` or `xox?` (none
/// means `hook`), P1 and P2 at least 9 of `A-Z0-9`, P3 at least 24 of `A-Za-z0-9`, one
/// separator (`-`, `/` or `,`) used twice.
fn parse_token(raw: &str) -> Option<Token> {
    let (kind, rest) = match raw.get(..4) {
        Some(prefix)
            if (prefix == "hook" || (prefix.starts_with("xox") && prefix.len() == 4))
                && matches!(raw.as_bytes().get(4), Some(b'-' | b':')) =>
        {
            (prefix.to_string(), &raw[5..])
        }
        _ => ("hook".to_string(), raw.strip_prefix(':').unwrap_or(raw)),
    };
    let separator = rest.chars().find(|c| matches!(c, '-' | '/' | ','))?;
    let parts: Vec<&str> = rest.split(separator).collect();
    let [p1, p2, p3] = parts.as_slice() else {
        return None;
    };
    let upper_digits = |s: &str, min: usize| {
        s.len() >= min
            && s.chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
    };
    if !upper_digits(p1, 9)
        || !upper_digits(p2, 9)
        || p3.len() < 24
        || !p3.chars().all(|c| c.is_ascii_alphanumeric())
    {
        return None;
    }
    Some(Token {
        kind,
        parts: [p1.to_string(), p2.to_string(), p3.to_string()],
    })
}

#[cfg(test)]
mod tests {
    use super::parse_token;
    use crate::hooks::actions::test_support::{Receiver, run_shoutrrr as send};

    const HOOK: &str = "WNA3PBYV6/F20DUQND3RQ/Webc4MAvoacrpPakR8phF0zi";

    #[test]
    fn tokens_parse_like_shoutrrr() {
        let token = parse_token("hook:WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi").unwrap();
        assert_eq!(token.kind, "hook");
        assert_eq!(
            token.parts,
            ["WNA3PBYV6", "F20DUQND3RQ", "Webc4MAvoacrpPakR8phF0zi"].map(String::from)
        );
        assert_eq!(parse_token(HOOK).unwrap().kind, "hook");
        assert_eq!(
            parse_token("xoxb:123456789012-1234567890123-4mt0t4l1YL3g1T5L4cK70k3N")
                .unwrap()
                .kind,
            "xoxb"
        );
        assert!(parse_token("hook:short-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi").is_none());
        assert!(parse_token("hook:WNA3PBYV6-F20DUQND3RQ/Webc4MAvoacrpPakR8phF0zi").is_none());
    }

    #[tokio::test]
    async fn webhook_tokens_post_to_the_webhook() {
        let receiver = Receiver::start_with(200, "ok").await;
        let (result, log) = send(
            "slack://hook:WNA3PBYV6-F20DUQND3RQ-Webc4MAvoacrpPakR8phF0zi@webhook?color=good&title=Great+News&icon=man-scientist&botname=Shoutrrrbot",
            "line one\nline two\n",
            receiver.origin(),
        )
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        request.assert_json_post("/services/WNA3PBYV6/F20DUQND3RQ/Webc4MAvoacrpPakR8phF0zi");
        assert_eq!(
            request.json(),
            serde_json::json!({
                "text": "Great News",
                "username": "Shoutrrrbot",
                "attachments": [{ "text": "line one", "color": "good" }, { "text": "line two", "color": "good" }],
                "icon_emoji": "man-scientist",
            })
        );
        assert_eq!(log, vec!["Sending shoutrrr message to slack://webhook/…"]);
    }

    #[tokio::test]
    async fn the_old_url_form_still_works() {
        let receiver = Receiver::start_with(200, "ok").await;
        let (result, _) = send(&format!("slack://{HOOK}"), "hi", receiver.origin()).await;
        result.unwrap();
        let request = receiver.only_request().await;
        assert_eq!(request.path, format!("/services/{HOOK}"));
        assert_eq!(
            request.json(),
            serde_json::json!({ "text": "", "attachments": [{ "text": "hi" }] })
        );
    }

    #[tokio::test]
    async fn bot_tokens_use_the_api() {
        let receiver = Receiver::start_with(200, "{\"ok\": true}").await;
        let (result, _) = send(
            "slack://xoxb:123456789012-1234567890123-4mt0t4l1YL3g1T5L4cK70k3N@C001CH4NN3L?icon=https://x.test/i.png",
            "hi",
            receiver.origin(),
        )
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        assert_eq!(request.path, "/api/chat.postMessage");
        assert_eq!(
            request.header("authorization"),
            Some("Bearer xoxb-123456789012-1234567890123-4mt0t4l1YL3g1T5L4cK70k3N")
        );
        assert_eq!(
            request.json(),
            serde_json::json!({
                "text": "", "attachments": [{ "text": "hi" }], "channel": "C001CH4NN3L", "icon_url": "https://x.test/i.png",
            })
        );

        receiver.answer(200, "{\"ok\": false, \"error\": \"channel_not_found\"}");
        let (result, _) = send(
            "slack://xoxb:123456789012-1234567890123-4mt0t4l1YL3g1T5L4cK70k3N@C001CH4NN3L",
            "hi",
            receiver.origin(),
        )
        .await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: slack: the API answered an error: channel_not_found"
        );
    }

    #[tokio::test]
    async fn webhook_errors_are_readable_and_hide_the_token() {
        let receiver = Receiver::start_with(404, "no_service").await;
        let (result, _) = send(&format!("slack://{HOOK}"), "hi", receiver.origin()).await;
        let err = result.unwrap_err();
        assert_eq!(
            err.message(),
            "shoutrrr: slack: webhook answered 404 Not Found: no_service"
        );
        let (result, _) = send("slack://hook:nope@webhook", "hi", receiver.origin()).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: slack: the URL holds no valid token (slack://hook:T-B-X@webhook or slack://xoxb:T-B-X@channel)"
        );
    }
}
