//! shoutrrr's Discord service: `discord://token@webhookid[/raw]?…` posts to
//! `<BACKREST_DISCORD_API_URL>/api/webhooks/<webhookid>/<token>` (`?thread_id=` kept).
//!
//! With `/raw` (or `json=yes`) the message is sent as the JSON payload itself. Otherwise a
//! one-item message without a title is `{"content": …}`; anything else becomes embeds
//! (`description` = text, `color` = `color`, the `title` on the first one), up to 10 per
//! request. `splitlines=yes` (the default) makes each non-empty line an item; with `no`
//! the text is cut into chunks of at most 2000 characters. `username` and `avatar` (alias
//! `avatarurl`) override the webhook's defaults.

use super::ServiceUrl;
use crate::hooks::actions::http::{Request, Response};
use crate::hooks::actions::{ActionError, Runtime};

const SERVICE: &str = "shoutrrr: discord";
/// Discord's limits: characters per item, items per request, characters per request.
const ITEM_CHARS: usize = 2000;
const ITEMS_PER_REQUEST: usize = 10;
const CHARS_PER_REQUEST: usize = 6000;
/// shoutrrr's default border color for plain messages.
const DEFAULT_COLOR: u32 = 0x50D9FF;

#[derive(serde::Serialize)]
struct Payload<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    content: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    embeds: Vec<Embed<'a>>,
    #[serde(skip_serializing_if = "str::is_empty")]
    username: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    avatar_url: &'a str,
}

#[derive(serde::Serialize)]
struct Embed<'a> {
    #[serde(skip_serializing_if = "str::is_empty")]
    title: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    description: &'a str,
    #[serde(skip_serializing_if = "is_zero")]
    color: u32,
}

fn is_zero(value: &u32) -> bool {
    *value == 0
}

pub(super) async fn send(
    url: &ServiceUrl,
    message: &str,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let webhook_id = url.host();
    let token = url.user();
    if webhook_id.is_empty() {
        return Err(ActionError::new(format!(
            "{SERVICE}: the URL names no webhook ID (discord://token@webhookid)"
        )));
    }
    if token.is_empty() {
        return Err(ActionError::new(format!(
            "{SERVICE}: the URL names no token (discord://token@webhookid)"
        )));
    }
    let mut raw = match url.raw_path() {
        "" | "/" => false,
        "/raw" => true,
        _ => {
            return Err(ActionError::new(format!(
                "{SERVICE}: unexpected path in the URL (only /raw is allowed)"
            )));
        }
    };

    let mut params = url.params(SERVICE);
    let title = params.take(&["title"]).unwrap_or_default();
    let username = params.take(&["username"]).unwrap_or_default();
    let avatar = params.take(&["avatar", "avatarurl"]).unwrap_or_default();
    let color = match params.take(&["color"]) {
        None => DEFAULT_COLOR,
        Some(value) => parse_color(&value)
            .ok_or_else(|| params.invalid("color", &value, "a hex color such as 0x50D9ff"))?,
    };
    for key in ["colorerror", "colorwarn", "colorinfo", "colordebug"] {
        // Level colors only apply to leveled messages, which hooks never send.
        if let Some(value) = params.take(&[key]) {
            parse_color(&value)
                .ok_or_else(|| params.invalid(key, &value, "a hex color such as 0x50D9ff"))?;
        }
    }
    let split_lines = params.take_bool(&["splitlines"], true)?;
    raw |= params.take_bool(&["json"], false)?;
    let thread_id = params
        .take(&["thread_id"])
        .map(|t| t.trim().to_string())
        .unwrap_or_default();
    params.finish()?;

    if message.is_empty() {
        return Err(ActionError::new(format!("{SERVICE}: the message is empty")));
    }

    let mut target = format!(
        "{}/api/webhooks/{}/{}",
        runtime.endpoints.discord,
        webhook_id.trim(),
        token.trim()
    );
    if !thread_id.is_empty() {
        target.push_str("?thread_id=");
        target.push_str(
            &url::form_urlencoded::byte_serialize(thread_id.as_bytes()).collect::<String>(),
        );
    }
    let post = |body: Vec<u8>| {
        let request = Request::post(SERVICE, &target, "application/json", body)
            .secret(token.clone())
            .secrets(url.secrets());
        runtime.http.send(request)
    };

    if raw {
        return check(post(message.as_bytes().to_vec()).await?);
    }
    let items = if split_lines {
        line_items(message)
    } else {
        chunk_items(message)
    };
    let mut first_error = None;
    for batch in batches(&items) {
        let payload = if batch.len() == 1 && title.is_empty() {
            Payload {
                content: batch[0],
                embeds: Vec::new(),
                username: &username,
                avatar_url: &avatar,
            }
        } else {
            let embeds = batch
                .iter()
                .enumerate()
                .map(|(i, text)| Embed {
                    title: if i == 0 { &title } else { "" },
                    description: text,
                    color,
                })
                .collect();
            Payload {
                content: "",
                embeds,
                username: &username,
                avatar_url: &avatar,
            }
        };
        let body = serde_json::to_vec(&payload).expect("JSON values always serialize");
        if let Err(e) = post(body).await.and_then(check) {
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

fn check(response: Response) -> Result<(), ActionError> {
    if response.status.is_success() {
        Ok(())
    } else {
        Err(response.error(SERVICE))
    }
}

fn parse_color(value: &str) -> Option<u32> {
    let hex = value.trim_start_matches('#');
    let hex = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .unwrap_or(hex);
    u32::from_str_radix(hex, 16).ok()
}

/// Each non-empty line, cut to 2000 characters (ending in ` [...]` when cut).
fn line_items(message: &str) -> Vec<String> {
    const ELLIPSIS: &str = " [...]";
    message
        .split('\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            if line.chars().count() > ITEM_CHARS {
                let kept: String = line.chars().take(ITEM_CHARS - ELLIPSIS.len()).collect();
                format!("{kept}{ELLIPSIS}")
            } else {
                line.to_string()
            }
        })
        .collect()
}

/// Chunks of at most 2000 characters, cut at a space or newline within the last 100
/// characters when there is one.
fn chunk_items(message: &str) -> Vec<String> {
    const SEARCH: usize = 100;
    let chars: Vec<char> = message.chars().collect();
    let mut items = Vec::new();
    let mut start = 0;
    while start < chars.len() {
        let mut end = (start + ITEM_CHARS).min(chars.len());
        let mut next = end;
        if end < chars.len()
            && let Some(cut) = (end.saturating_sub(SEARCH).max(start + 1)..=end)
                .rev()
                .find(|&i| chars[i] == ' ' || chars[i] == '\n')
        {
            end = cut;
            next = cut + 1;
        }
        items.push(chars[start..end].iter().collect());
        start = next;
    }
    items
}

/// Requests of at most 10 items and 6000 characters.
fn batches(items: &[String]) -> Vec<Vec<&str>> {
    let mut batches: Vec<Vec<&str>> = Vec::new();
    let mut current: Vec<&str> = Vec::new();
    let mut chars = 0;
    for item in items {
        let len = item.chars().count();
        if !current.is_empty()
            && (current.len() == ITEMS_PER_REQUEST || chars + len > CHARS_PER_REQUEST)
        {
            batches.push(std::mem::take(&mut current));
            chars = 0;
        }
        current.push(item);
        chars += len;
    }
    if !current.is_empty() {
        batches.push(current);
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::{batches, chunk_items, line_items};
    use crate::hooks::actions::test_support::{Receiver, run_shoutrrr as send};

    #[tokio::test]
    async fn a_single_line_is_content() {
        let receiver = Receiver::start_with(204, "").await;
        let (result, log) = send(
            "discord://secret-token-abc@123456?username=Backrest&thread_id=77",
            "Backup done",
            receiver.origin(),
        )
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        request.assert_json_post("/api/webhooks/123456/secret-token-abc");
        assert_eq!(request.query.as_deref(), Some("thread_id=77"));
        assert_eq!(
            request.json(),
            serde_json::json!({ "content": "Backup done", "username": "Backrest" })
        );
        assert_eq!(log, vec!["Sending shoutrrr message to discord://123456/…"]);
    }

    #[tokio::test]
    async fn several_lines_become_embeds() {
        let receiver = Receiver::start_with(204, "").await;
        let (result, _) = send(
            "discord://tok@123?title=Backrest&color=0xff0000",
            "one\n\ntwo\nthree\n",
            receiver.origin(),
        )
        .await;
        result.unwrap();
        assert_eq!(
            receiver.only_request().await.json(),
            serde_json::json!({ "embeds": [
                { "title": "Backrest", "description": "one", "color": 0xff0000 },
                { "description": "two", "color": 0xff0000 },
                { "description": "three", "color": 0xff0000 },
            ]})
        );
    }

    #[tokio::test]
    async fn raw_sends_the_message_as_the_payload() {
        let receiver = Receiver::start_with(204, "").await;
        let payload = "{\"content\": \"hi\", \"tts\": true}";
        let (result, _) = send("discord://tok@123/raw", payload, receiver.origin()).await;
        result.unwrap();
        assert_eq!(receiver.only_request().await.body_text(), payload);
    }

    #[tokio::test]
    async fn without_split_lines_the_text_stays_whole() {
        let receiver = Receiver::start_with(204, "").await;
        let (result, _) = send(
            "discord://tok@123?splitLines=no",
            "one\ntwo",
            receiver.origin(),
        )
        .await;
        result.unwrap();
        assert_eq!(
            receiver.only_request().await.json(),
            serde_json::json!({ "content": "one\ntwo" })
        );
    }

    #[tokio::test]
    async fn errors_hide_the_token() {
        let receiver = Receiver::start_with(401, "{\"message\": \"Invalid Webhook Token\"}").await;
        let (result, _) = send("discord://tok-abcdef@123", "x", receiver.origin()).await;
        let err = result.unwrap_err();
        assert_eq!(
            err.message(),
            "shoutrrr: discord: unexpected status 401 Unauthorized: {\"message\": \"Invalid Webhook Token\"}"
        );
        let (result, _) = send("discord://@123", "x", receiver.origin()).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: discord: the URL names no token (discord://token@webhookid)"
        );
    }

    #[test]
    fn long_messages_are_split_within_discord_limits() {
        let long_line = "x".repeat(2500);
        let items = line_items(&long_line);
        assert_eq!(items[0].chars().count(), 2000);
        assert!(items[0].ends_with(" [...]"));

        let text = format!("{} {}", "a".repeat(1990), "b".repeat(30));
        let chunks = chunk_items(&text);
        assert_eq!(chunks, vec!["a".repeat(1990), "b".repeat(30)]);

        let many: Vec<String> = (0..25).map(|i| format!("line {i}")).collect();
        let sizes: Vec<usize> = batches(&many).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![10, 10, 5]);
        let big: Vec<String> = (0..4).map(|_| "y".repeat(2000)).collect();
        let sizes: Vec<usize> = batches(&big).iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![3, 1]);
    }
}
