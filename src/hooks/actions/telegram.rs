//! Telegram hook: `POST <BACKREST_TELEGRAM_API_URL>/bot<token>/sendMessage` with
//! `{"chat_id", "text", "parse_mode": "HTML"}`.

use super::http::{Request, redact_url};
use super::{ActionEnv, ActionError, Runtime, render_notification};
use crate::pb::v1::hook;

#[derive(serde::Serialize)]
struct Message<'a> {
    chat_id: &'a str,
    text: &'a str,
    parse_mode: &'a str,
}

pub(super) async fn run(
    telegram: &hook::Telegram,
    env: &ActionEnv<'_>,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let text = render_notification(&telegram.template, env)?;
    let url = format!(
        "{}/bot{}/sendMessage",
        runtime.endpoints.telegram, telegram.bot_token
    );
    (env.log)(&format!(
        "Sending telegram message to chat ID {} via {}",
        telegram.chat_id,
        redact_url(&url)
    ));
    let body = Message {
        chat_id: &telegram.chat_id,
        text: &text,
        parse_mode: "HTML",
    };
    runtime
        .http
        .send_checked(
            Request::post_json("telegram", &url, &body).secret(telegram.bot_token.clone()),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::hooks::actions::test_support::{Receiver, SUMMARY, run_action};
    use crate::pb::v1::hook;

    fn action(token: &str) -> hook::Action {
        hook::Action::ActionTelegram(hook::Telegram {
            bot_token: token.into(),
            chat_id: "-100123".into(),
            template: String::new(),
        })
    }

    #[tokio::test]
    async fn sends_html_to_the_chat() {
        let receiver = Receiver::start_with(200, "{\"ok\":true}").await;
        let (result, log) = run_action(
            action("123:ABC"),
            hook::Condition::SnapshotStart,
            receiver.origin(),
        )
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        request.assert_json_post("/bot123:ABC/sendMessage");
        assert_eq!(
            request.json(),
            serde_json::json!({ "chat_id": "-100123", "text": SUMMARY, "parse_mode": "HTML" })
        );
        assert!(log.iter().all(|l| !l.contains("ABC")), "{log:?}");
    }

    #[tokio::test]
    async fn errors_hide_the_bot_token() {
        let receiver =
            Receiver::start_with(401, "{\"ok\":false,\"description\":\"Unauthorized\"}").await;
        let (result, _) = run_action(
            action("123:SECRET"),
            hook::Condition::SnapshotStart,
            receiver.origin(),
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(
            err.message(),
            "telegram: unexpected status 401 Unauthorized: {\"ok\":false,\"description\":\"Unauthorized\"}"
        );
        assert!(!err.message().contains("SECRET"));
    }
}
