//! The HTTP client shared by every notification action, and the rules they all follow:
//! bounded time (10 s to connect, 30 s in all), a `backrest-rs/<version>` User-Agent,
//! readable errors (`discord: unexpected status 404 Not Found: <body start>`), and no
//! secret in any message.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use reqwest::{Method, StatusCode};

use super::ActionError;

pub(crate) const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
pub(crate) const TOTAL_TIMEOUT: Duration = Duration::from_secs(30);
/// Responses are only read for error messages and small JSON answers.
const MAX_RESPONSE_BYTES: usize = 64 * 1024;
/// How much of a response body an error message quotes.
const SNIPPET_BYTES: usize = 200;

/// Cheap to clone (the connection pools are shared).
#[derive(Clone)]
pub(crate) struct HttpClient {
    verified: reqwest::Client,
    /// Built on first use by a URL that opts out of certificate checks.
    unverified: Arc<OnceLock<Result<reqwest::Client, String>>>,
    connect_timeout: Duration,
    total_timeout: Duration,
}

impl HttpClient {
    /// The process-wide client.
    pub(crate) fn shared() -> Result<HttpClient, ActionError> {
        static SHARED: OnceLock<Result<HttpClient, String>> = OnceLock::new();
        SHARED
            .get_or_init(|| HttpClient::with_timeouts(CONNECT_TIMEOUT, TOTAL_TIMEOUT))
            .clone()
            .map_err(ActionError::new)
    }

    pub(crate) fn with_timeouts(connect: Duration, total: Duration) -> Result<HttpClient, String> {
        Ok(HttpClient {
            verified: build_client(connect, total, true)?,
            unverified: Arc::new(OnceLock::new()),
            connect_timeout: connect,
            total_timeout: total,
        })
    }

    fn client(&self, verify_certificates: bool) -> Result<reqwest::Client, String> {
        if verify_certificates {
            return Ok(self.verified.clone());
        }
        self.unverified
            .get_or_init(|| build_client(self.connect_timeout, self.total_timeout, false))
            .clone()
    }

    /// Sends the request; any HTTP status is returned as a response.
    pub(crate) async fn send(&self, request: Request<'_>) -> Result<Response, ActionError> {
        let service = request.service;
        let secrets = Secrets::for_url(request.url, &request.secrets);
        let fail = |msg: String| ActionError::new(secrets.mask(&msg));

        let url = url::Url::parse(request.url).map_err(|e| {
            fail(format!(
                "{service}: invalid URL {}: {e}",
                redact_url(request.url)
            ))
        })?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(fail(format!(
                "{service}: invalid URL {}: only http and https URLs are supported",
                redact_url(request.url)
            )));
        }
        let client = self
            .client(request.verify_certificates)
            .map_err(|e| fail(format!("{service}: {e}")))?;

        let mut builder = client.request(request.method.clone(), url.clone());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        if let Some(body) = request.body {
            builder = builder
                .header(reqwest::header::CONTENT_TYPE, body.content_type)
                .body(body.bytes);
        }

        let mut response = builder.send().await.map_err(|e| {
            fail(format!(
                "{service}: {} {} failed: {}",
                request.method,
                redact_url(request.url),
                self.describe(e)
            ))
        })?;
        let status = response.status();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_RESPONSE_BYTES - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_RESPONSE_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    return Err(fail(format!(
                        "{service}: reading the answer of {} failed: {}",
                        redact_url(request.url),
                        self.describe(e)
                    )));
                }
            }
        }
        Ok(Response {
            status,
            body: String::from_utf8_lossy(&body).into_owned(),
            secrets,
        })
    }

    /// Sends the request and fails unless the answer is 2xx.
    pub(crate) async fn send_checked(&self, request: Request<'_>) -> Result<Response, ActionError> {
        let service = request.service;
        let response = self.send(request).await?;
        if !response.status.is_success() {
            return Err(response.error(service));
        }
        Ok(response)
    }

    fn describe(&self, error: reqwest::Error) -> String {
        if error.is_timeout() {
            return if error.is_connect() {
                format!(
                    "could not connect within {} s (timed out)",
                    self.connect_timeout.as_secs_f64()
                )
            } else {
                format!(
                    "no complete answer within {} s (timed out)",
                    self.total_timeout.as_secs_f64()
                )
            };
        }
        // The URL is left out on purpose: it may carry a token.
        let error = error.without_url();
        let mut parts: Vec<String> = Vec::new();
        let mut source: Option<&dyn std::error::Error> = Some(&error);
        while let Some(err) = source {
            let part = err.to_string();
            if !parts.iter().any(|p| p.contains(&part)) {
                parts.push(part);
            }
            source = err.source();
        }
        parts.join(": ")
    }
}

fn build_client(
    connect: Duration,
    total: Duration,
    verify_certificates: bool,
) -> Result<reqwest::Client, String> {
    let mut tls = super::tls::client_config(verify_certificates)?;
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    reqwest::Client::builder()
        .tls_backend_preconfigured(tls)
        .connect_timeout(connect)
        .timeout(total)
        .user_agent(format!("backrest-rs/{}", crate::VERSION))
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .map_err(|e| format!("HTTP client setup: {e}"))
}

pub(crate) struct Request<'a> {
    /// Prefix of every error message (`discord`, `shoutrrr: ntfy`, …).
    pub(crate) service: &'a str,
    pub(crate) method: Method,
    pub(crate) url: &'a str,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Option<Body>,
    /// Extra secrets to mask in messages; the URL's password and token-like path
    /// segments and query values are masked anyway.
    pub(crate) secrets: Vec<String>,
    pub(crate) verify_certificates: bool,
}

impl<'a> Request<'a> {
    pub(crate) fn new(service: &'a str, method: Method, url: &'a str) -> Self {
        Request {
            service,
            method,
            url,
            headers: Vec::new(),
            body: None,
            secrets: Vec::new(),
            verify_certificates: true,
        }
    }

    pub(crate) fn post(
        service: &'a str,
        url: &'a str,
        content_type: &str,
        bytes: impl Into<Vec<u8>>,
    ) -> Self {
        Request::new(service, Method::POST, url).body(content_type, bytes)
    }

    pub(crate) fn post_json(service: &'a str, url: &'a str, value: &impl serde::Serialize) -> Self {
        let bytes = serde_json::to_vec(value).expect("JSON values always serialize");
        Request::post(service, url, "application/json", bytes)
    }

    pub(crate) fn body(mut self, content_type: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.body = Some(Body {
            content_type: content_type.to_string(),
            bytes: bytes.into(),
        });
        self
    }

    pub(crate) fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub(crate) fn secret(mut self, secret: impl Into<String>) -> Self {
        self.secrets.push(secret.into());
        self
    }

    pub(crate) fn secrets(mut self, secrets: impl IntoIterator<Item = String>) -> Self {
        self.secrets.extend(secrets);
        self
    }
}

pub(crate) struct Body {
    pub(crate) content_type: String,
    pub(crate) bytes: Vec<u8>,
}

#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: StatusCode,
    /// Up to 64 KiB of the body, lossily decoded.
    pub(crate) body: String,
    secrets: Secrets,
}

impl Response {
    /// `<service>: unexpected status 404 Not Found: <start of the body>`.
    pub(crate) fn error(&self, service: &str) -> ActionError {
        let snippet = self.snippet();
        let message = if snippet.is_empty() {
            format!("{service}: unexpected status {}", self.status)
        } else {
            format!("{service}: unexpected status {}: {snippet}", self.status)
        };
        ActionError::new(self.secrets.mask(&message))
    }

    /// A failure described by the caller (e.g. from a JSON error answer), masked.
    pub(crate) fn fail(&self, message: String) -> ActionError {
        ActionError::new(self.secrets.mask(&message))
    }

    /// The first 200 bytes of the body on one line.
    pub(crate) fn snippet(&self) -> String {
        let mut end = self.body.len().min(SNIPPET_BYTES);
        while !self.body.is_char_boundary(end) {
            end -= 1;
        }
        let mut text: String = self.body[..end]
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        if end < self.body.trim_end().len() {
            text.push('…');
        }
        text
    }
}

/// Strings that must not appear in messages.
#[derive(Clone, Default)]
pub(crate) struct Secrets(Vec<String>);

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secrets({} hidden)", self.0.len())
    }
}

/// Path segments and query values at least this long are treated as tokens.
const TOKEN_LIKE_LEN: usize = 12;

impl Secrets {
    pub(crate) fn for_url(url: &str, extra: &[String]) -> Secrets {
        let mut secrets: Vec<String> = extra.iter().filter(|s| !s.is_empty()).cloned().collect();
        if let Ok(parsed) = url::Url::parse(url) {
            if let Some(password) = parsed.password() {
                secrets.push(password.to_string());
                secrets.push(percent_decode(password));
            }
            if let Some(segments) = parsed.path_segments() {
                for segment in segments.filter(|s| s.len() >= TOKEN_LIKE_LEN) {
                    secrets.push(segment.to_string());
                    secrets.push(percent_decode(segment));
                }
            }
            for (_, value) in parsed.query_pairs() {
                if value.len() >= TOKEN_LIKE_LEN {
                    secrets.push(value.into_owned());
                }
            }
        }
        // Longest first, so a secret containing another is masked whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Secrets(secrets)
    }

    pub(crate) fn mask(&self, text: &str) -> String {
        let mut text = text.to_string();
        for secret in self.0.iter().filter(|s| s.len() >= 4) {
            text = text.replace(secret.as_str(), "***");
        }
        text
    }
}

fn percent_decode(text: &str) -> String {
    percent_encoding::percent_decode_str(text)
        .decode_utf8_lossy()
        .into_owned()
}

/// A URL as it may be shown: `scheme://host[:port]/…`, without user, path or query.
pub(crate) fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(parsed) => {
            let mut shown = format!("{}://{}", parsed.scheme(), parsed.host_str().unwrap_or(""));
            if let Some(port) = parsed.port() {
                shown.push_str(&format!(":{port}"));
            }
            let has_more =
                !parsed.path().trim_start_matches('/').is_empty() || parsed.query().is_some();
            shown.push_str(if has_more { "/…" } else { "/" });
            shown
        }
        Err(_) => "<unparsable URL>".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hooks::actions::test_support::Receiver;

    #[test]
    fn urls_are_shown_without_secrets() {
        assert_eq!(
            redact_url("https://discord.com/api/webhooks/1/tok"),
            "https://discord.com/…"
        );
        assert_eq!(redact_url("http://user:pw@host:8080"), "http://host:8080/");
        assert_eq!(redact_url("https://h/?token=x"), "https://h/…");
        assert_eq!(redact_url("not a url"), "<unparsable URL>");
    }

    #[test]
    fn token_like_parts_of_a_url_are_masked() {
        let secrets = Secrets::for_url(
            "https://u:hunter2@hc.example/ping/0123456789abcdef?k=abcdefghijklmnop",
            &["extra-secret".into()],
        );
        let masked = secrets.mask("hunter2 0123456789abcdef abcdefghijklmnop extra-secret ping");
        assert_eq!(masked, "*** *** *** *** ping");
    }

    #[tokio::test]
    async fn non_2xx_is_a_readable_error_without_the_secret() {
        let receiver = Receiver::start_with(404, "no such webhook: secret-token-123456").await;
        let url = format!("{}/api/webhooks/1/secret-token-123456", receiver.origin());
        let client = HttpClient::with_timeouts(CONNECT_TIMEOUT, TOTAL_TIMEOUT).unwrap();
        let err = client
            .send_checked(Request::post_json(
                "discord",
                &url,
                &serde_json::json!({"content": "x"}),
            ))
            .await
            .unwrap_err();
        assert_eq!(
            err.message(),
            "discord: unexpected status 404 Not Found: no such webhook: ***"
        );
        assert!(!err.is_cancelled());
    }

    #[tokio::test]
    async fn a_silent_server_hits_the_timeout() {
        let receiver = Receiver::start_silent().await;
        let url = format!("{}/hook/secret-token-123456", receiver.origin());
        let client =
            HttpClient::with_timeouts(Duration::from_secs(1), Duration::from_secs(1)).unwrap();
        let started = std::time::Instant::now();
        let err = client
            .send_checked(Request::post("webhook", &url, "text/plain", "x"))
            .await
            .unwrap_err();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert!(
            err.message().starts_with("webhook: POST http://127.0.0.1:"),
            "{}",
            err.message()
        );
        assert!(err.message().contains("timed out"), "{}", err.message());
        assert!(!err.message().contains("secret-token"), "{}", err.message());
    }

    #[tokio::test]
    async fn a_closed_port_is_a_connection_error() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = format!("http://127.0.0.1:{port}/x");
        let client = HttpClient::with_timeouts(CONNECT_TIMEOUT, TOTAL_TIMEOUT).unwrap();
        let err = client
            .send_checked(Request::new("webhook", Method::GET, &url))
            .await
            .unwrap_err();
        assert!(
            err.message()
                .starts_with(&format!("webhook: GET http://127.0.0.1:{port}/… failed: ")),
            "{}",
            err.message()
        );
    }

    #[tokio::test]
    async fn only_http_urls_are_accepted() {
        let client = HttpClient::with_timeouts(CONNECT_TIMEOUT, TOTAL_TIMEOUT).unwrap();
        let err = client
            .send_checked(Request::new("slack", Method::POST, "ftp://h/x"))
            .await
            .unwrap_err();
        assert_eq!(
            err.message(),
            "slack: invalid URL ftp://h/…: only http and https URLs are supported"
        );
        let err = client
            .send_checked(Request::new("slack", Method::POST, ""))
            .await
            .unwrap_err();
        assert!(
            err.message()
                .starts_with("slack: invalid URL <unparsable URL>: "),
            "{}",
            err.message()
        );
    }

    #[tokio::test]
    async fn requests_carry_the_user_agent() {
        let receiver = Receiver::start().await;
        let client = HttpClient::with_timeouts(CONNECT_TIMEOUT, TOTAL_TIMEOUT).unwrap();
        let url = format!("{}/ua", receiver.origin());
        client
            .send_checked(Request::new("webhook", Method::GET, &url))
            .await
            .unwrap();
        let request = receiver.only_request().await;
        assert_eq!(
            request.header("user-agent"),
            Some(format!("backrest-rs/{}", crate::VERSION).as_str())
        );
    }
}
