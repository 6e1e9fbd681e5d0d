//! Slack hook: `POST <webhook URL>`. A rendered template that is valid JSON is sent as is
//! (Block Kit messages); anything else becomes `{"text": "Backrest Notification\n<text>"}`.

use super::http::{Request, redact_url};
use super::{ActionEnv, ActionError, Runtime, render_notification};
use crate::pb::v1::hook;

pub(super) async fn run(
    slack: &hook::Slack,
    env: &ActionEnv<'_>,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let text = render_notification(&slack.template, env)?;
    // Like Go's json.Valid: any JSON value, not only objects, counts.
    let body = if serde_json::from_str::<serde::de::IgnoredAny>(&text).is_ok() {
        (env.log)(&format!(
            "Sending advanced slack message to {}",
            redact_url(&slack.webhook_url)
        ));
        text.into_bytes()
    } else {
        (env.log)(&format!(
            "Sending slack message to {}",
            redact_url(&slack.webhook_url)
        ));
        let wrapped = serde_json::json!({ "text": format!("Backrest Notification\n{text}") });
        serde_json::to_vec(&wrapped).expect("JSON values always serialize")
    };
    runtime
        .http
        .send_checked(Request::post(
            "slack",
            &slack.webhook_url,
            "application/json",
            body,
        ))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::hooks::actions::test_support::{Receiver, SUMMARY, run_action};
    use crate::pb::v1::hook;

    fn action(url: String, template: &str) -> hook::Action {
        hook::Action::ActionSlack(hook::Slack {
            webhook_url: url,
            template: template.into(),
        })
    }

    #[tokio::test]
    async fn plain_text_is_wrapped() {
        let receiver = Receiver::start_with(200, "ok").await;
        let url = format!(
            "{}/services/T0/B0/XXXXXXXXXXXXXXXXXXXXXXXX",
            receiver.origin()
        );
        let (result, _) = run_action(
            action(url, ""),
            hook::Condition::SnapshotEnd,
            receiver.origin(),
        )
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        request.assert_json_post("/services/T0/B0/XXXXXXXXXXXXXXXXXXXXXXXX");
        assert_eq!(
            request.json(),
            serde_json::json!({ "text": format!("Backrest Notification\n{SUMMARY}") })
        );
    }

    #[tokio::test]
    async fn json_is_sent_as_is() {
        let receiver = Receiver::start_with(200, "ok").await;
        let template =
            r#"{"blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}]}"#;
        let (result, log) = run_action(
            action(format!("{}/s", receiver.origin()), template),
            hook::Condition::SnapshotEnd,
            receiver.origin(),
        )
        .await;
        result.unwrap();
        assert_eq!(receiver.only_request().await.body_text(), template);
        assert_eq!(
            log,
            vec![format!(
                "Sending advanced slack message to {}/…",
                receiver.origin()
            )]
        );
    }

    #[tokio::test]
    async fn a_json_scalar_counts_as_json() {
        let receiver = Receiver::start().await;
        let (result, _) = run_action(
            action(format!("{}/s", receiver.origin()), "42"),
            hook::Condition::SnapshotEnd,
            receiver.origin(),
        )
        .await;
        result.unwrap();
        assert_eq!(receiver.only_request().await.body_text(), "42");
    }

    #[tokio::test]
    async fn an_error_status_is_reported() {
        let receiver = Receiver::start_with(403, "invalid_token").await;
        let (result, _) = run_action(
            action(format!("{}/s", receiver.origin()), "x"),
            hook::Condition::SnapshotEnd,
            receiver.origin(),
        )
        .await;
        assert_eq!(
            result.unwrap_err().message(),
            "slack: unexpected status 403 Forbidden: invalid_token"
        );
    }
}
