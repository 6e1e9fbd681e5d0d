//! Test helpers for hook actions: a local HTTP receiver that records every request, a
//! template renderer and an [`ActionEnv`] builder.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::IntoResponse;
use tokio_util::sync::CancellationToken;

use super::http::HttpClient;
use super::{ActionEnv, Endpoints, Runtime};
use crate::pb::v1::hook;

#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    pub(crate) path: String,
    pub(crate) query: Option<String>,
    /// Lower-case names, in arrival order.
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl Recorded {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == &name.to_ascii_lowercase())
            .map(|(_, v)| v.as_str())
    }

    /// Asserts that this is a `POST` of JSON to `path`.
    pub(crate) fn assert_json_post(&self, path: &str) {
        assert_eq!(self.method, "POST");
        assert_eq!(self.path, path);
        assert_eq!(self.header("content-type"), Some("application/json"));
    }

    pub(crate) fn body_text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }

    pub(crate) fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.body_text()))
    }
}

struct Shared {
    requests: Mutex<Vec<Recorded>>,
    answer: Mutex<(u16, String)>,
}

/// An HTTP server on 127.0.0.1:0 that records requests and answers every one with the
/// same status and body (changeable with [`Receiver::answer`]).
pub(crate) struct Receiver {
    origin: String,
    shared: Arc<Shared>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Receiver {
    /// Answers `200` with an empty body.
    pub(crate) async fn start() -> Receiver {
        Receiver::start_with(200, "").await
    }

    pub(crate) async fn start_with(status: u16, body: &str) -> Receiver {
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            answer: Mutex::new((status, body.to_string())),
        });
        let app = axum::Router::new()
            .fallback(record)
            .with_state(shared.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Receiver {
            origin,
            shared,
            task,
        }
    }

    /// Accepts connections and never answers.
    pub(crate) async fn start_silent() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let mut open = Vec::new();
            while let Ok((socket, _)) = listener.accept().await {
                open.push(socket);
            }
        });
        let shared = Arc::new(Shared {
            requests: Mutex::new(Vec::new()),
            answer: Mutex::new((200, String::new())),
        });
        Receiver {
            origin,
            shared,
            task,
        }
    }

    pub(crate) fn origin(&self) -> &str {
        &self.origin
    }

    pub(crate) fn answer(&self, status: u16, body: &str) {
        *self.shared.answer.lock().unwrap() = (status, body.to_string());
    }

    pub(crate) fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// The one request received (requests are recorded before they are answered).
    pub(crate) async fn only_request(&self) -> Recorded {
        let requests = self.requests();
        assert_eq!(
            requests.len(),
            1,
            "expected exactly one request, got {requests:#?}"
        );
        requests.into_iter().next().unwrap()
    }
}

async fn record(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> impl IntoResponse {
    shared.requests.lock().unwrap().push(Recorded {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().map(str::to_string),
        headers: headers
            .iter()
            .map(|(n, v)| {
                (
                    n.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: body.to_vec(),
    });
    let (status, body) = shared.answer.lock().unwrap().clone();
    (StatusCode::from_u16(status).unwrap(), body)
}

/// Renders `{{ .Summary }}` as [`SUMMARY`], `{{ fail }}` as an error, anything else as is.
pub(crate) fn render(template: &str) -> Result<String, String> {
    if template.contains("{{ fail }}") {
        return Err("template: function \"fail\" not defined".to_string());
    }
    Ok(template.replace("{{ .Summary }}", SUMMARY))
}

pub(crate) const SUMMARY: &str =
    "Backrest Notification\nTask: \"backup for plan \\\"p\\\"\"\nEvent: snapshot start";

/// Collects log lines.
#[derive(Clone, Default)]
pub(crate) struct LogLines(Arc<Mutex<Vec<String>>>);

impl LogLines {
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }

    pub(crate) fn push(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
}

/// What running an action gives back: its result and its log lines.
pub(crate) type ActionOutcome = (Result<(), super::ActionError>, Vec<String>);

/// An origin for actions whose target is in their own URL: nothing listens there.
pub(crate) const UNUSED_ORIGIN: &str = "http://127.0.0.1:9";

/// Runs `action` against a local runtime (endpoints at `origin`, short timeouts) and
/// returns the result and the log.
pub(crate) async fn run_action(
    action: hook::Action,
    condition: hook::Condition,
    origin: &str,
) -> ActionOutcome {
    run_action_with(action, condition, origin, CancellationToken::new()).await
}

/// Runs a shoutrrr action that sends `template` to `url` (endpoints at `origin`).
pub(crate) async fn run_shoutrrr(url: &str, template: &str, origin: &str) -> ActionOutcome {
    let action = hook::Action::ActionShoutrrr(hook::Shoutrrr {
        shoutrrr_url: url.into(),
        template: template.into(),
    });
    run_action(action, hook::Condition::SnapshotSuccess, origin).await
}

pub(crate) async fn run_action_with(
    action: hook::Action,
    condition: hook::Condition,
    origin: &str,
    cancel: CancellationToken,
) -> ActionOutcome {
    let log = LogLines::default();
    let log_sink = log.clone();
    let log_fn = move |line: &str| log_sink.push(line);
    let env = ActionEnv {
        condition,
        render: &render,
        log: &log_fn,
        cancel,
    };
    let runtime = Runtime {
        http: HttpClient::with_timeouts(Duration::from_secs(2), Duration::from_secs(5)).unwrap(),
        endpoints: Endpoints::all_at(origin),
    };
    let result = super::run_with(&action, &env, &runtime).await;
    (result, log.lines())
}
