//! shoutrrr's Gotify service: `gotify://host[:port][/path]/token?…` posts
//! `{"message", "title", "priority", "extras"}` to `https://host[:port][/path]/message`
//! with the token as the `token` query parameter (or the `X-Gotify-Key` header with
//! `useheader=yes`). Options: `title` (default "Shoutrrr notification"), `priority`
//! (-2 to 10), `disabletls`, `insecureskipverify`, `date` (ISO 8601, sent as UTC),
//! `extras` (a JSON object).

use super::{ServiceUrl, fail_on_error_status};
use crate::hooks::actions::gotify::go_query_escape;
use crate::hooks::actions::http::Request;
use crate::hooks::actions::{ActionError, Runtime};

const SERVICE: &str = "shoutrrr: gotify";

#[derive(serde::Serialize)]
struct Payload<'a> {
    message: &'a str,
    title: &'a str,
    priority: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<String>,
    extras: Option<serde_json::Map<String, serde_json::Value>>,
}

#[derive(serde::Deserialize)]
struct ErrorAnswer {
    #[serde(default)]
    error: String,
    #[serde(default, rename = "errorCode")]
    error_code: i64,
    #[serde(default, rename = "errorDescription")]
    error_description: String,
}

pub(super) async fn send(
    url: &ServiceUrl,
    message: &str,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let path = url.raw_path().trim_end_matches('/');
    let (prefix, token) = path.rsplit_once('/').unwrap_or(("", path));
    let token = percent_encoding::percent_decode_str(token)
        .decode_utf8_lossy()
        .into_owned();
    if token.is_empty() {
        return Err(ActionError::new(format!(
            "{SERVICE}: the URL names no token (gotify://host/token)"
        )));
    }

    let mut params = url.params(SERVICE);
    let title = params
        .take(&["title"])
        .unwrap_or_else(|| "Shoutrrr notification".to_string());
    let priority = match params.take(&["priority"]) {
        None => 0,
        Some(value) => value
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|p| (-2..=10).contains(p))
            .ok_or_else(|| params.invalid("priority", &value, "a number from -2 to 10"))?,
    };
    let disable_tls = params.take_bool(&["disabletls"], false)?;
    let skip_verify = params.take_bool(&["insecureskipverify"], false)?;
    let use_header = params.take_bool(&["useheader"], false)?;
    // shoutrrr drops a date it cannot read rather than failing.
    let date = params.take(&["date"]).and_then(|d| normalize_date(&d));
    let extras = match params.take(&["extras"]).filter(|e| !e.is_empty()) {
        None => None,
        Some(value) => Some(
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&value)
                .map_err(|_| params.invalid("extras", &value, "a JSON object"))?,
        ),
    };
    params.finish()?;
    if message.is_empty() {
        return Err(ActionError::new(format!("{SERVICE}: the message is empty")));
    }

    let scheme = if disable_tls { "http" } else { "https" };
    let mut target = format!("{scheme}://{}{prefix}/message", url.host_port());
    if !use_header {
        target.push_str("?token=");
        target.push_str(&go_query_escape(&token));
    }
    let payload = Payload {
        message,
        title: &title,
        priority,
        date,
        extras,
    };
    let mut request = Request::post_json(SERVICE, &target, &payload)
        .secret(token.clone())
        .secrets(url.secrets());
    request.verify_certificates = !skip_verify;
    if use_header {
        request = request.header("X-Gotify-Key", token.clone());
    }
    let response = runtime.http.send(request).await?;
    fail_on_error_status(&response, SERVICE, |answer: ErrorAnswer| {
        (!answer.error.is_empty()).then(|| {
            format!(
                "{SERVICE}: server responded with {} ({}): {}",
                answer.error, answer.error_code, answer.error_description
            )
        })
    })
}

/// RFC 3339, `YYYY-MM-DDTHH:MM:SS` or `YYYY-MM-DD HH:MM:SS` (UTC), or Unix seconds →
/// RFC 3339 in UTC.
fn normalize_date(value: &str) -> Option<String> {
    use chrono::{DateTime, NaiveDateTime, SecondsFormat, Utc};
    let utc: DateTime<Utc> = if let Ok(t) = DateTime::parse_from_rfc3339(value) {
        t.with_timezone(&Utc)
    } else if let Ok(t) = NaiveDateTime::parse_from_str(value, "%Y-%m-%dT%H:%M:%S") {
        t.and_utc()
    } else if let Ok(secs) = value.parse::<i64>() {
        DateTime::from_timestamp(secs, 0)?
    } else if let Ok(t) = NaiveDateTime::parse_from_str(value, "%Y-%m-%d %H:%M:%S") {
        t.and_utc()
    } else {
        return None;
    };
    Some(utc.to_rfc3339_opts(SecondsFormat::Secs, true))
}

#[cfg(test)]
mod tests {
    use super::normalize_date;
    use crate::hooks::actions::test_support::{
        ActionOutcome, Receiver, UNUSED_ORIGIN, run_shoutrrr,
    };

    async fn send(url: String) -> ActionOutcome {
        run_shoutrrr(&url, "Backup done", UNUSED_ORIGIN).await
    }

    #[test]
    fn dates_are_normalized_to_utc() {
        assert_eq!(
            normalize_date("2024-01-02T03:04:05+02:00").as_deref(),
            Some("2024-01-02T01:04:05Z")
        );
        assert_eq!(
            normalize_date("2024-01-02 03:04:05").as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(normalize_date("0").as_deref(), Some("1970-01-01T00:00:00Z"));
        assert_eq!(normalize_date("yesterday"), None);
    }

    #[tokio::test]
    async fn posts_to_the_message_endpoint() {
        let receiver = Receiver::start_with(200, "{\"id\":1}").await;
        let host = receiver.origin().trim_start_matches("http://").to_string();
        let (result, log) =
            send(format!("gotify://{host}/sub/path/Aabc.def-ghi%20j?disabletls=yes&priority=8&title=Backrest&extras={{\"a\":1}}")).await;
        result.unwrap();
        let request = receiver.only_request().await;
        request.assert_json_post("/sub/path/message");
        assert_eq!(request.query.as_deref(), Some("token=Aabc.def-ghi+j"));
        assert_eq!(
            request.json(),
            serde_json::json!({ "message": "Backup done", "title": "Backrest", "priority": 8, "extras": { "a": 1 } })
        );
        assert_eq!(
            log,
            vec![format!("Sending shoutrrr message to gotify://{host}/…")]
        );
    }

    #[tokio::test]
    async fn the_token_can_go_in_a_header() {
        let receiver = Receiver::start().await;
        let host = receiver.origin().trim_start_matches("http://").to_string();
        let (result, _) = send(format!(
            "gotify://{host}/Atoken123?disabletls=yes&useheader=yes"
        ))
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        assert_eq!(request.path, "/message");
        assert_eq!(request.query, None);
        assert_eq!(request.header("x-gotify-key"), Some("Atoken123"));
        assert_eq!(
            request.json(),
            serde_json::json!({ "message": "Backup done", "title": "Shoutrrr notification", "priority": 0, "extras": null })
        );
    }

    #[tokio::test]
    async fn gotify_errors_are_readable_and_hide_the_token() {
        let receiver = Receiver::start_with(
            401,
            "{\"error\":\"Unauthorized\",\"errorCode\":401,\"errorDescription\":\"you need to provide a valid access token\"}",
        )
        .await;
        let host = receiver.origin().trim_start_matches("http://").to_string();
        let (result, _) = send(format!("gotify://{host}/Asecrettoken?disabletls=yes")).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: gotify: server responded with Unauthorized (401): you need to provide a valid access token"
        );
        let (result, _) = send(format!("gotify://{host}/Atoken?priority=11")).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: gotify: \"11\" is not a valid value for \"priority\" (a number from -2 to 10)"
        );
    }
}
