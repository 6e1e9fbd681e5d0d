//! Gotify hook: `POST <base URL>/message?token=<token>` with
//! `{"message", "title" (default "Backrest Event"), "priority"}`.

use super::http::{Request, redact_url};
use super::{ActionEnv, ActionError, Runtime, render_notification, render_or_default};
use crate::pb::v1::hook;

#[derive(serde::Serialize)]
struct Message<'a> {
    message: &'a str,
    title: &'a str,
    priority: i32,
}

pub(super) async fn run(
    gotify: &hook::Gotify,
    env: &ActionEnv<'_>,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let message = render_notification(&gotify.template, env)?;
    let title = render_or_default(
        &gotify.title_template,
        "Backrest Event",
        env,
        "title template rendering",
    )?;
    let base = gotify.base_url.trim_matches('/');
    (env.log)(&format!("Sending gotify message to {}", redact_url(base)));
    let url = format!("{base}/message?token={}", go_query_escape(&gotify.token));
    let body = Message {
        message: &message,
        title: &title,
        priority: gotify.priority,
    };
    runtime
        .http
        .send_checked(
            Request::post_json("gotify", &url, &body)
                .secret(gotify.token.clone())
                .secret(go_query_escape(&gotify.token)),
        )
        .await?;
    Ok(())
}

/// Go's `url.QueryEscape`: everything but `A-Z a-z 0-9 - _ . ~` is %-escaped, spaces
/// become `+`.
pub(crate) fn go_query_escape(text: &str) -> String {
    use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    utf8_percent_encode(text, QUERY)
        .to_string()
        .replace("%20", "+")
}

#[cfg(test)]
mod tests {
    use super::go_query_escape;
    use crate::hooks::actions::test_support::{Receiver, SUMMARY, run_action};
    use crate::pb::v1::hook;

    fn action(base_url: String, token: &str, title_template: &str, priority: i32) -> hook::Action {
        hook::Action::ActionGotify(hook::Gotify {
            base_url,
            token: token.into(),
            template: String::new(),
            title_template: title_template.into(),
            priority,
        })
    }

    #[test]
    fn query_escaping_matches_go() {
        assert_eq!(
            go_query_escape("a b+c/d?e&f=g~h_i.j-k*"),
            "a+b%2Bc%2Fd%3Fe%26f%3Dg~h_i.j-k%2A"
        );
    }

    #[tokio::test]
    async fn posts_message_title_and_priority() {
        let receiver = Receiver::start_with(200, "{\"id\": 1}").await;
        let base = format!("{}/gotify/", receiver.origin());
        let (result, log) = run_action(
            action(base, "A&b c/d", "", 5),
            hook::Condition::SnapshotStart,
            receiver.origin(),
        )
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        request.assert_json_post("/gotify/message");
        assert_eq!(request.query.as_deref(), Some("token=A%26b+c%2Fd"));
        assert_eq!(
            request.json(),
            serde_json::json!({ "message": SUMMARY, "title": "Backrest Event", "priority": 5 })
        );
        assert_eq!(
            log,
            vec![format!("Sending gotify message to {}/…", receiver.origin())]
        );
    }

    #[tokio::test]
    async fn the_title_template_is_rendered() {
        let receiver = Receiver::start().await;
        let (result, _) = run_action(
            action(
                receiver.origin().to_string(),
                "Atoken",
                "Title: {{ .Summary }}",
                0,
            ),
            hook::Condition::SnapshotStart,
            receiver.origin(),
        )
        .await;
        result.unwrap();
        let body = receiver.only_request().await.json();
        assert_eq!(body["title"], format!("Title: {SUMMARY}"));
        assert_eq!(body["priority"], 0);
    }

    #[tokio::test]
    async fn errors_hide_the_token() {
        let receiver =
            Receiver::start_with(401, "{\"error\":\"Unauthorized\",\"errorCode\":401}").await;
        let (result, _) = run_action(
            action(
                receiver.origin().to_string(),
                "Asecret.token",
                "{{ fail }}",
                0,
            ),
            hook::Condition::SnapshotStart,
            receiver.origin(),
        )
        .await;
        assert_eq!(
            result.unwrap_err().message(),
            "title template rendering: template: function \"fail\" not defined"
        );
        let (result, _) = run_action(
            action(receiver.origin().to_string(), "Asecret.token", "", 0),
            hook::Condition::SnapshotStart,
            receiver.origin(),
        )
        .await;
        let err = result.unwrap_err();
        assert_eq!(
            err.message(),
            "gotify: unexpected status 401 Unauthorized: {\"error\":\"Unauthorized\",\"errorCode\":401}"
        );
    }
}
