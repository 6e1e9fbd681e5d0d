//! Webhook hook (declared by Backrest's config but never implemented there): `GET` the URL
//! with no body, or `POST` (the default) the rendered template — as `application/json`
//! when it parses as JSON, else as `text/plain; charset=utf-8`.

use reqwest::Method;

use super::http::{Request, redact_url};
use super::{ActionEnv, ActionError, Runtime, render_notification};
use crate::pb::v1::hook;
use crate::pb::v1::hook::webhook::Method as WebhookMethod;

pub(super) async fn run(
    webhook: &hook::Webhook,
    env: &ActionEnv<'_>,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let url = &webhook.webhook_url;
    let request = match WebhookMethod::try_from(webhook.method).unwrap_or(WebhookMethod::Unknown) {
        WebhookMethod::Get => {
            (env.log)(&format!("Sending webhook GET to {}", redact_url(url)));
            Request::new("webhook", Method::GET, url)
        }
        WebhookMethod::Post | WebhookMethod::Unknown => {
            let body = render_notification(&webhook.template, env)?;
            let content_type = if serde_json::from_str::<serde::de::IgnoredAny>(&body).is_ok() {
                "application/json"
            } else {
                "text/plain; charset=utf-8"
            };
            (env.log)(&format!("Sending webhook POST to {}", redact_url(url)));
            Request::post("webhook", url, content_type, body)
        }
    };
    runtime.http.send_checked(request).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use crate::hooks::actions::test_support::{Receiver, SUMMARY, run_action};
    use crate::pb::v1::hook;
    use crate::pb::v1::hook::webhook::Method;

    fn action(url: String, method: Method, template: &str) -> hook::Action {
        hook::Action::ActionWebhook(hook::Webhook {
            webhook_url: url,
            method: method as i32,
            template: template.into(),
        })
    }

    #[tokio::test]
    async fn get_sends_no_body() {
        let receiver = Receiver::start().await;
        let url = format!("{}/hook?key=v", receiver.origin());
        let (result, _) = run_action(
            action(url, Method::Get, "{{ fail }}"),
            hook::Condition::AnyError,
            receiver.origin(),
        )
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        assert_eq!(request.method, "GET");
        assert_eq!(request.path, "/hook");
        assert_eq!(request.query.as_deref(), Some("key=v"));
        assert!(request.body.is_empty());
        assert_eq!(request.header("content-type"), None);
    }

    #[tokio::test]
    async fn post_sends_text_or_json() {
        for (method, template, content_type, body) in [
            (
                Method::Post,
                "",
                "text/plain; charset=utf-8",
                SUMMARY.to_string(),
            ),
            (
                Method::Unknown,
                "{\"event\": \"x\"}",
                "application/json",
                "{\"event\": \"x\"}".to_string(),
            ),
        ] {
            let receiver = Receiver::start().await;
            let url = format!("{}/hook", receiver.origin());
            let (result, _) = run_action(
                action(url, method, template),
                hook::Condition::AnyError,
                receiver.origin(),
            )
            .await;
            result.unwrap();
            let request = receiver.only_request().await;
            assert_eq!(request.method, "POST");
            assert_eq!(request.header("content-type"), Some(content_type));
            assert_eq!(request.body_text(), body);
        }
    }

    #[tokio::test]
    async fn a_server_error_is_reported() {
        let receiver = Receiver::start_with(500, "boom").await;
        let url = format!("{}/hook", receiver.origin());
        let (result, _) = run_action(
            action(url, Method::Post, "x"),
            hook::Condition::AnyError,
            receiver.origin(),
        )
        .await;
        assert_eq!(
            result.unwrap_err().message(),
            "webhook: unexpected status 500 Internal Server Error: boom"
        );
    }
}
