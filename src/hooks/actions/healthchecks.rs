//! Healthchecks hook: `POST <ping URL>[/start|/fail|/log]` with the rendered template as a
//! `text/plain` body. The appended path element follows the condition: `start` for the
//! *_START conditions, `fail` for errors (and UNKNOWN), `log` for SNAPSHOT_END, nothing for
//! successes, warnings and skips. The query string is kept.

use super::http::{Request, redact_url};
use super::{ActionEnv, ActionError, Runtime, render_notification};
use crate::pb::v1::hook::{self, Condition};

pub(super) async fn run(
    healthchecks: &hook::Healthchecks,
    env: &ActionEnv<'_>,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let payload = render_notification(&healthchecks.template, env)?;
    (env.log)(&format!(
        "Sending healthchecks message to {}",
        redact_url(&healthchecks.webhook_url)
    ));
    let url = ping_url(&healthchecks.webhook_url, env.condition)?;
    runtime
        .http
        .send_checked(Request::post("healthchecks", &url, "text/plain", payload))
        .await?;
    Ok(())
}

fn ping_url(base: &str, condition: Condition) -> Result<String, ActionError> {
    let mut url = url::Url::parse(base).map_err(|e| {
        ActionError::new(format!(
            "healthchecks: invalid URL {}: {e}",
            redact_url(base)
        ))
    })?;
    let Some(element) = path_element(condition) else {
        return Ok(url.to_string());
    };
    url.path_segments_mut()
        .map_err(|_| ActionError::new(format!("healthchecks: invalid URL {}", redact_url(base))))?
        .pop_if_empty()
        .push(element);
    Ok(url.to_string())
}

fn path_element(condition: Condition) -> Option<&'static str> {
    match condition {
        Condition::SnapshotStart
        | Condition::PruneStart
        | Condition::CheckStart
        | Condition::ForgetStart => Some("start"),
        Condition::Unknown
        | Condition::AnyError
        | Condition::SnapshotError
        | Condition::PruneError
        | Condition::CheckError
        | Condition::ForgetError => Some("fail"),
        Condition::SnapshotEnd => Some("log"),
        Condition::SnapshotWarning
        | Condition::SnapshotSuccess
        | Condition::SnapshotSkipped
        | Condition::PruneSuccess
        | Condition::CheckSuccess
        | Condition::ForgetSuccess => None,
    }
}

#[cfg(test)]
mod tests {
    use crate::hooks::actions::test_support::{Receiver, SUMMARY, run_action};
    use crate::pb::v1::hook::{self, Condition};

    #[tokio::test]
    async fn the_path_follows_the_condition_and_the_query_is_kept() {
        let cases = [
            (Condition::SnapshotStart, "/ping/abc/start"),
            (Condition::PruneStart, "/ping/abc/start"),
            (Condition::CheckStart, "/ping/abc/start"),
            (Condition::ForgetStart, "/ping/abc/start"),
            (Condition::AnyError, "/ping/abc/fail"),
            (Condition::SnapshotError, "/ping/abc/fail"),
            (Condition::PruneError, "/ping/abc/fail"),
            (Condition::CheckError, "/ping/abc/fail"),
            (Condition::ForgetError, "/ping/abc/fail"),
            (Condition::Unknown, "/ping/abc/fail"),
            (Condition::SnapshotEnd, "/ping/abc/log"),
            (Condition::SnapshotSuccess, "/ping/abc/"),
            (Condition::SnapshotWarning, "/ping/abc/"),
            (Condition::SnapshotSkipped, "/ping/abc/"),
            (Condition::PruneSuccess, "/ping/abc/"),
            (Condition::CheckSuccess, "/ping/abc/"),
            (Condition::ForgetSuccess, "/ping/abc/"),
        ];
        for (condition, path) in cases {
            let receiver = Receiver::start_with(200, "OK").await;
            let action = hook::Action::ActionHealthchecks(hook::Healthchecks {
                webhook_url: format!("{}/ping/abc/?create=1", receiver.origin()),
                template: String::new(),
            });
            let (result, _) = run_action(action, condition, receiver.origin()).await;
            result.unwrap();
            let request = receiver.only_request().await;
            assert_eq!(request.method, "POST");
            assert_eq!(request.path, path, "{condition:?}");
            assert_eq!(request.query.as_deref(), Some("create=1"), "{condition:?}");
            assert_eq!(request.header("content-type"), Some("text/plain"));
            assert_eq!(request.body_text(), SUMMARY);
        }
    }

    #[tokio::test]
    async fn an_invalid_url_is_reported() {
        let action = hook::Action::ActionHealthchecks(hook::Healthchecks {
            webhook_url: "hc-ping.com/uuid".into(),
            template: "x".into(),
        });
        let (result, _) = run_action(action, Condition::SnapshotStart, "http://127.0.0.1:9").await;
        assert_eq!(
            result.unwrap_err().message(),
            "healthchecks: invalid URL <unparsable URL>: relative URL without a base"
        );
    }
}
