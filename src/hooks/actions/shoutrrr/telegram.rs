//! shoutrrr's Telegram service: `telegram://<bot id>:<secret>@telegram?chats=@chan,123`
//! (alias `channels`) sends the message to each chat through
//! `<BACKREST_TELEGRAM_API_URL>/bot<token>/sendMessage`. A chat written `id:thread` posts
//! into that forum thread. Options: `preview` and `notification` (yes/no), `parsemode`
//! (None, Markdown, HTML, MarkdownV2) and `title` (sent in bold, switching to HTML).

use super::ServiceUrl;
use crate::hooks::actions::http::Request;
use crate::hooks::actions::{ActionError, Runtime};

const SERVICE: &str = "shoutrrr: telegram";
/// Telegram's limit on a message's length.
const MAX_MESSAGE_BYTES: usize = 4096;

#[derive(serde::Serialize)]
struct Payload<'a> {
    text: &'a str,
    chat_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_thread_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parse_mode: Option<&'static str>,
    disable_web_page_preview: bool,
    disable_notification: bool,
}

#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    ok: bool,
    #[serde(default)]
    description: String,
}

pub(super) async fn send(
    url: &ServiceUrl,
    message: &str,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let token = format!("{}:{}", url.user(), url.password().unwrap_or_default());
    let (id, secret) = token.split_once(':').expect("joined with ':'");
    let valid = !id.is_empty()
        && id.chars().all(|c| c.is_ascii_digit())
        && !secret.is_empty()
        && secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if !valid {
        return Err(ActionError::new(format!(
            "{SERVICE}: the URL holds no valid bot token (telegram://<id>:<secret>@telegram)"
        )));
    }

    let mut params = url.params(SERVICE);
    let preview = params.take_bool(&["preview"], true)?;
    let notification = params.take_bool(&["notification"], true)?;
    let mut parse_mode = match params.take(&["parsemode"]) {
        None => None,
        Some(value) => match value.to_ascii_lowercase().as_str() {
            "none" => None,
            "markdown" => Some("Markdown"),
            "html" => Some("HTML"),
            "markdownv2" => Some("MarkdownV2"),
            _ => {
                return Err(params.invalid(
                    "parsemode",
                    &value,
                    "use None, Markdown, HTML or MarkdownV2",
                ));
            }
        },
    };
    let chats: Vec<String> = params
        .take(&["chats", "channels"])
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_string)
        .collect();
    let title = params.take(&["title"]).unwrap_or_default();
    params.finish()?;
    if chats.is_empty() {
        return Err(ActionError::new(format!(
            "{SERVICE}: the URL names no chats (?chats=@channel,12345)"
        )));
    }
    if message.len() > MAX_MESSAGE_BYTES {
        return Err(ActionError::new(format!(
            "{SERVICE}: the message is {} bytes long, Telegram accepts at most {MAX_MESSAGE_BYTES}",
            message.len()
        )));
    }

    let mut text = message.to_string();
    if !title.is_empty() {
        if parse_mode.is_none() {
            parse_mode = Some("HTML");
            text = html_escape(&text);
        }
        if parse_mode == Some("HTML") {
            text = format!("<b>{}</b>\n{text}", html_escape(&title));
        }
    }

    let target = format!("{}/bot{token}/sendMessage", runtime.endpoints.telegram);
    for chat in &chats {
        let (chat_id, thread) = match chat.split_once(':') {
            Some((id, thread)) => match thread.parse::<i64>() {
                Ok(thread) => (id, Some(thread)),
                Err(_) => (id, None),
            },
            None => (chat.as_str(), None),
        };
        let payload = Payload {
            text: &text,
            chat_id,
            message_thread_id: thread,
            parse_mode,
            disable_web_page_preview: !preview,
            disable_notification: !notification,
        };
        let request = Request::post_json(SERVICE, &target, &payload)
            .secret(token.clone())
            .secrets(url.secrets());
        let response = runtime.http.send(request).await?;
        match serde_json::from_str::<Answer>(&response.body) {
            Ok(answer) if !answer.ok && !answer.description.is_empty() => {
                return Err(
                    response.fail(format!("{SERVICE}: chat {chat_id}: {}", answer.description))
                );
            }
            _ if !response.status.is_success() => return Err(response.error(SERVICE)),
            _ => {}
        }
    }
    Ok(())
}

fn html_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&#34;")
        .replace('\'', "&#39;")
}

#[cfg(test)]
mod tests {
    use crate::hooks::actions::test_support::{Receiver, run_shoutrrr as send};

    #[tokio::test]
    async fn sends_to_every_chat() {
        let receiver = Receiver::start_with(200, "{\"ok\":true,\"result\":{}}").await;
        let (result, log) =
            send("telegram://110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw@telegram?chats=@backups,-100123:7&preview=no", "a < b", receiver.origin())
                .await;
        result.unwrap();
        let requests = receiver.requests();
        assert_eq!(requests.len(), 2);
        assert_eq!(
            requests[0].path,
            "/bot110201543:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw/sendMessage"
        );
        assert_eq!(requests[0].header("content-type"), Some("application/json"));
        assert_eq!(
            requests[0].json(),
            serde_json::json!({
                "text": "a < b", "chat_id": "@backups", "disable_web_page_preview": true, "disable_notification": false,
            })
        );
        assert_eq!(
            requests[1].json(),
            serde_json::json!({
                "text": "a < b", "chat_id": "-100123", "message_thread_id": 7,
                "disable_web_page_preview": true, "disable_notification": false,
            })
        );
        assert_eq!(
            log,
            vec!["Sending shoutrrr message to telegram://telegram/…"]
        );
    }

    #[tokio::test]
    async fn a_title_switches_to_html() {
        let receiver = Receiver::start_with(200, "{\"ok\":true}").await;
        let (result, _) = send(
            "telegram://1:abc@telegram?channels=9&title=Backup+%26+co",
            "a < b",
            receiver.origin(),
        )
        .await;
        result.unwrap();
        let body = receiver.only_request().await.json();
        assert_eq!(body["parse_mode"], "HTML");
        assert_eq!(body["text"], "<b>Backup &amp; co</b>\na &lt; b");
    }

    #[tokio::test]
    async fn errors_name_the_chat_and_hide_the_token() {
        let receiver = Receiver::start_with(
            400,
            "{\"ok\":false,\"error_code\":400,\"description\":\"Bad Request: chat not found\"}",
        )
        .await;
        let (result, _) = send(
            "telegram://1:SECRETabc@telegram?chats=42",
            "x",
            receiver.origin(),
        )
        .await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: telegram: chat 42: Bad Request: chat not found"
        );
        let (result, _) = send(
            "telegram://1:bad%20secret@telegram?chats=42",
            "x",
            receiver.origin(),
        )
        .await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: telegram: the URL holds no valid bot token (telegram://<id>:<secret>@telegram)"
        );
        let (result, _) = send("telegram://1:abc@telegram", "x", receiver.origin()).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: telegram: the URL names no chats (?chats=@channel,12345)"
        );
    }
}
