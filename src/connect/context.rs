//! Per-request information handed to every RPC handler.

use std::time::{Duration, Instant};

use http::HeaderMap;
use tokio::sync::watch;

use super::ConnectError;

/// Marker extension: the server's shutdown signal. Streams end when it flips.
#[derive(Clone)]
pub struct ShutdownSignal(pub watch::Receiver<bool>);

impl ShutdownSignal {
    /// Resolves once shutdown has begun.
    pub async fn wait(mut self) {
        let _ = self.0.wait_for(|down| *down).await;
    }
}

#[derive(Clone, Debug)]
pub struct RequestContext {
    /// The request headers (auth identity, metadata).
    pub headers: HeaderMap,
    /// When the client's `Connect-Timeout-Ms` runs out, if it sent one.
    pub deadline: Option<Instant>,
    /// The full procedure path, e.g. `/v1.Backrest/GetConfig`.
    pub procedure: &'static str,
}

impl RequestContext {
    pub fn new(procedure: &'static str, headers: HeaderMap) -> Result<Self, ConnectError> {
        let deadline = parse_timeout(&headers)?.map(|d| Instant::now() + d);
        Ok(RequestContext {
            headers,
            deadline,
            procedure,
        })
    }

    /// A context for calling handlers directly (tests, internal callers).
    pub fn internal(procedure: &'static str) -> Self {
        RequestContext {
            headers: HeaderMap::new(),
            deadline: None,
            procedure,
        }
    }
}

/// `Connect-Timeout-Ms`: a positive integer of at most 10 digits.
pub fn parse_timeout(headers: &HeaderMap) -> Result<Option<Duration>, ConnectError> {
    let Some(v) = headers.get("connect-timeout-ms") else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or("");
    if s.is_empty() || s.len() > 10 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ConnectError::invalid_argument(format!(
            "invalid Connect-Timeout-Ms header {s:?}: must be a positive integer of at most 10 digits"
        )));
    }
    let ms: u64 = s.parse().expect("digits");
    Ok(Some(Duration::from_millis(ms)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeouts() {
        let mut h = HeaderMap::new();
        assert_eq!(parse_timeout(&h).unwrap(), None);
        h.insert("connect-timeout-ms", "250".parse().unwrap());
        assert_eq!(parse_timeout(&h).unwrap(), Some(Duration::from_millis(250)));
        for bad in ["-1", "abc", "12345678901", ""] {
            h.insert("connect-timeout-ms", bad.parse().unwrap());
            assert!(parse_timeout(&h).is_err(), "{bad}");
        }
    }
}
