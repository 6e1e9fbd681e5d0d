//! Discord hook: `POST <webhook URL>` with `{"content": <rendered template>}`.

use super::http::{Request, redact_url};
use super::{ActionEnv, ActionError, Runtime, render_notification};
use crate::pb::v1::hook;

pub(super) async fn run(
    discord: &hook::Discord,
    env: &ActionEnv<'_>,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let content = render_notification(&discord.template, env)?;
    (env.log)(&format!(
        "Sending discord message to {}",
        redact_url(&discord.webhook_url)
    ));
    let body = serde_json::json!({ "content": content });
    runtime
        .http
        .send_checked(Request::post_json("discord", &discord.webhook_url, &body))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::hooks::actions::test_support::{Receiver, SUMMARY, run_action};
    use crate::pb::v1::hook;

    fn action(url: String, template: &str) -> hook::Action {
        hook::Action::ActionDiscord(hook::Discord {
            webhook_url: url,
            template: template.into(),
        })
    }

    #[tokio::test]
    async fn posts_the_rendered_template_as_content() {
        let receiver = Receiver::start_with(204, "").await;
        let url = format!(
            "{}/api/webhooks/123/tok-abcdefghijklmnop",
            receiver.origin()
        );
        let (result, log) = run_action(
            action(url, "  "),
            hook::Condition::SnapshotStart,
            receiver.origin(),
        )
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        request.assert_json_post("/api/webhooks/123/tok-abcdefghijklmnop");
        assert_eq!(request.json(), serde_json::json!({ "content": SUMMARY }));
        assert_eq!(
            log,
            vec![format!(
                "Sending discord message to {}/…",
                receiver.origin()
            )]
        );
    }

    #[tokio::test]
    async fn an_error_status_names_the_status_and_hides_the_token() {
        let receiver =
            Receiver::start_with(404, "{\"message\": \"Unknown Webhook\", \"code\": 10015}").await;
        let url = format!(
            "{}/api/webhooks/123/tok-abcdefghijklmnop",
            receiver.origin()
        );
        let (result, log) = run_action(
            action(url, "hi"),
            hook::Condition::AnyError,
            receiver.origin(),
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(
            err.message(),
            "discord: unexpected status 404 Not Found: {\"message\": \"Unknown Webhook\", \"code\": 10015}"
        );
        assert!(log.iter().all(|l| !l.contains("tok-abc")));
    }

    #[tokio::test]
    async fn a_template_error_fails_before_sending() {
        let receiver = Receiver::start().await;
        let url = format!("{}/x", receiver.origin());
        let (result, _) = run_action(
            action(url, "{{ fail }}"),
            hook::Condition::AnyError,
            receiver.origin(),
        )
        .await;
        assert_eq!(
            result.unwrap_err().message(),
            "template rendering: template: function \"fail\" not defined"
        );
        assert!(receiver.requests().is_empty());
    }
}
