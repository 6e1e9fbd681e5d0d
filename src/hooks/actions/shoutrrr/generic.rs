//! shoutrrr's generic webhook: `generic://host[:port]/path?…` posts to
//! `https://host[:port]/path` (`http` with `disabletls=yes`); `generic+https://…` and
//! `generic+http://…` name the target scheme directly.
//!
//! Parameters: `template` (none: the message is the body, `text/plain`; `json`: a JSON
//! object with the message under `messagekey` (default `message`), the `title` under
//! `titlekey` (default `title`) and every `$key=value` extra), `contenttype` (default
//! `application/json`, for the JSON template), `method` (default `POST`), `@Name=value`
//! headers (`@acceptLanguage` becomes `Accept-Language`). Every other parameter is
//! forwarded to the target; a reserved name is forwarded when escaped as `__name`
//! (shoutrrr's code) or `_name` (its docs). A user and password in the URL become Basic
//! authentication.

use base64::Engine;
use reqwest::Method;

use super::ServiceUrl;
use crate::hooks::actions::http::Request;
use crate::hooks::actions::{ActionError, Runtime};

const SERVICE: &str = "shoutrrr: generic";
const RESERVED: &[&str] = &[
    "contenttype",
    "disabletls",
    "template",
    "title",
    "titlekey",
    "messagekey",
    "method",
];

pub(super) async fn send(
    url: &ServiceUrl,
    message: &str,
    runtime: &Runtime,
) -> Result<(), ActionError> {
    let mut params = url.params(SERVICE);
    let content_type = params
        .take(&["contenttype"])
        .unwrap_or_else(|| "application/json".to_string());
    let disable_tls = params.take_bool(&["disabletls"], false)?;
    let template = params.take(&["template"]).unwrap_or_default();
    let title = params.take(&["title"]).unwrap_or_default();
    let title_key = params
        .take(&["titlekey"])
        .unwrap_or_else(|| "title".to_string());
    let message_key = params
        .take(&["messagekey"])
        .unwrap_or_else(|| "message".to_string());
    let method_name = params
        .take(&["method"])
        .unwrap_or_else(|| "POST".to_string());
    let method = Method::from_bytes(method_name.to_ascii_uppercase().as_bytes()).map_err(|_| {
        params.invalid("method", &method_name, "an HTTP method such as POST or PUT")
    })?;

    let mut headers = Vec::new();
    let mut extras = Vec::new();
    let mut forwarded = Vec::new();
    for (key, value) in params.into_rest() {
        if let Some(name) = key.strip_prefix('@').filter(|n| !n.is_empty()) {
            headers.push((header_name(name), value));
        } else if let Some(name) = key.strip_prefix('$').filter(|n| !n.is_empty()) {
            extras.push((name.to_string(), value));
        } else if let Some(name) = unescape_reserved(&key) {
            forwarded.push((name.to_string(), value));
        } else {
            forwarded.push((key, value));
        }
    }

    let target_scheme = match url.scheme.as_str() {
        "generic" if disable_tls => "http",
        "generic" => "https",
        "generic+https" => "https",
        "generic+http" => "http",
        other => {
            return Err(ActionError::new(format!(
                "{SERVICE}: unsupported target scheme in \"{other}\" (use generic, generic+https or generic+http)"
            )));
        }
    };
    let mut target = format!("{target_scheme}://{}{}", url.host_port(), url.raw_path());
    if !forwarded.is_empty() {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(&forwarded)
            .finish();
        target.push('?');
        target.push_str(&query);
    }

    let (body, content_type) = match template.to_ascii_lowercase().as_str() {
        "" => (message.as_bytes().to_vec(), "text/plain".to_string()),
        "json" => {
            let mut object = serde_json::Map::new();
            for (key, value) in extras {
                object.insert(key, value.into());
            }
            if !title.is_empty() {
                object.insert(title_key, title.into());
            }
            object.insert(message_key, message.into());
            (
                serde_json::to_vec(&object).expect("JSON values always serialize"),
                content_type,
            )
        }
        _ => {
            return Err(ActionError::new(format!(
                "{SERVICE}: the template \"{template}\" is not available (use template=json, or no template for a plain-text body)"
            )));
        }
    };

    let mut request = Request::new(SERVICE, method, &target).body(&content_type, body);
    request = request.header("Accept", content_type.clone());
    let user = url.user();
    let has_authorization = headers
        .iter()
        .any(|(n, _)| n.eq_ignore_ascii_case("authorization"));
    if !user.is_empty() && !has_authorization {
        let credentials = format!("{user}:{}", url.password().unwrap_or_default());
        let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
        request = request
            .header("Authorization", format!("Basic {encoded}"))
            .secret(encoded);
    }
    for (name, value) in headers {
        // Custom headers replace defaults of the same name.
        request
            .headers
            .retain(|(n, _)| !n.eq_ignore_ascii_case(&name));
        if name.eq_ignore_ascii_case("content-type") {
            if let Some(body) = request.body.as_mut() {
                body.content_type = value;
            }
            continue;
        }
        if name.eq_ignore_ascii_case("authorization") {
            request = request.secret(value.clone());
        }
        request = request.header(&name, value);
    }
    request = request.secrets(url.secrets());

    let response = runtime.http.send(request).await?;
    if response.status.as_u16() >= 400 {
        return Err(response.error(SERVICE));
    }
    Ok(())
}

/// `__contenttype` or `_contenttype` → `contenttype`, for reserved names only.
fn unescape_reserved(key: &str) -> Option<&str> {
    let name = key.strip_prefix("__").or_else(|| key.strip_prefix('_'))?;
    RESERVED
        .iter()
        .any(|r| r.eq_ignore_ascii_case(name))
        .then_some(name)
}

/// shoutrrr's header normalization: a dash before each inner capital, and the first
/// letter and every letter after a dash upper case (`acceptLanguage` → `Accept-Language`).
fn header_name(key: &str) -> String {
    let mut name = String::with_capacity(key.len() * 2);
    let mut previous: Option<char> = None;
    for c in key.chars() {
        if c.is_ascii_uppercase() {
            if previous.is_some_and(|p| p != '-') {
                name.push('-');
            }
            name.push(c);
        } else if previous.is_none() || previous == Some('-') {
            name.push(c.to_ascii_uppercase());
        } else {
            name.push(c);
        }
        previous = Some(c);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::header_name;
    use crate::hooks::actions::test_support::{
        ActionOutcome, Receiver, UNUSED_ORIGIN, run_shoutrrr,
    };

    async fn send(url: String) -> ActionOutcome {
        run_shoutrrr(&url, "Hello\nworld", UNUSED_ORIGIN).await
    }

    #[test]
    fn header_names_are_normalized_like_shoutrrr() {
        assert_eq!(header_name("acceptLanguage"), "Accept-Language");
        assert_eq!(header_name("Authorization"), "Authorization");
        assert_eq!(header_name("X-Custom"), "X-Custom");
        assert_eq!(header_name("x-api-key"), "X-Api-Key");
    }

    #[tokio::test]
    async fn without_template_the_message_is_the_body() {
        let receiver = Receiver::start().await;
        let port = receiver.origin().rsplit(':').next().unwrap().to_string();
        let (result, log) = send(format!(
            "generic://127.0.0.1:{port}/api/notify?disabletls=yes&foo=bar&__method=x"
        ))
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/api/notify");
        assert_eq!(request.query.as_deref(), Some("foo=bar&method=x"));
        assert_eq!(request.header("content-type"), Some("text/plain"));
        assert_eq!(request.header("accept"), Some("text/plain"));
        assert_eq!(request.body_text(), "Hello\nworld");
        assert_eq!(
            log,
            vec![format!(
                "Sending shoutrrr message to generic://127.0.0.1:{port}/…"
            )]
        );
    }

    #[tokio::test]
    async fn the_json_template_with_keys_extras_headers_and_method() {
        let receiver = Receiver::start().await;
        let origin = receiver.origin().trim_start_matches("http://").to_string();
        let (result, _) = send(format!(
            "generic+http://{origin}/hook?template=json&titleKey=alert_title&messagekey=alert_message&title=Backup\
             &$source=backrest&@acceptLanguage=tlh-Piqd&@X-Token=abc&method=put"
        ))
        .await;
        result.unwrap();
        let request = receiver.only_request().await;
        assert_eq!(request.method, "PUT");
        assert_eq!(request.path, "/hook");
        assert_eq!(request.query, None);
        assert_eq!(request.header("content-type"), Some("application/json"));
        assert_eq!(request.header("accept-language"), Some("tlh-Piqd"));
        assert_eq!(request.header("x-token"), Some("abc"));
        assert_eq!(
            request.json(),
            serde_json::json!({ "alert_title": "Backup", "alert_message": "Hello\nworld", "source": "backrest" })
        );
    }

    #[tokio::test]
    async fn credentials_become_basic_auth_and_errors_hide_them() {
        let receiver = Receiver::start_with(500, "nope").await;
        let origin = receiver.origin().trim_start_matches("http://").to_string();
        let (result, _) = send(format!(
            "generic+http://user:pa55word@{origin}/x?contenttype=text/csv&template=JSON"
        ))
        .await;
        let err = result.unwrap_err();
        assert_eq!(
            err.message(),
            "shoutrrr: generic: unexpected status 500 Internal Server Error: nope"
        );
        let request = receiver.only_request().await;
        assert_eq!(
            request.header("authorization"),
            Some("Basic dXNlcjpwYTU1d29yZA==")
        );
        assert_eq!(request.header("content-type"), Some("text/csv"));
    }

    #[tokio::test]
    async fn an_unknown_template_is_an_error() {
        let (result, _) = send("generic://example.invalid/x?template=fancy".into()).await;
        assert_eq!(
            result.unwrap_err().message(),
            "shoutrrr: generic: the template \"fancy\" is not available (use template=json, or no template for a plain-text body)"
        );
    }
}
