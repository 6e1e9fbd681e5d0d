//! GetLogs.

use std::time::Duration;

use futures::Stream;
use tokio::time::Instant;

use crate::connect::{ConnectError, ServerStream};
use crate::logstore::{LogReader, LogStoreError};
use crate::pb::{types, v1};
use crate::server::AppState;

/// Largest message GetLogs sends.
pub const CHUNK_MAX: usize = 128 * 1024;
/// Bytes of a live log wait at most this long before they are sent.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Streams a log: a finished one to its end, one still being written live
/// until its writer closes. An unknown (or expired) log is one message saying
/// so, then a normal end.
pub async fn get_logs(
    state: &AppState,
    req: v1::LogDataRequest,
) -> Result<ServerStream<types::BytesValue>, ConnectError> {
    match state.logs.reader(&req.r#ref).await {
        Ok(reader) => Ok(Box::pin(log_stream(reader))),
        Err(LogStoreError::NotFound(_)) => {
            let text = format!(
                "file associated with log {} not found, it may have expired.",
                req.r#ref
            );
            let message = types::BytesValue {
                value: text.into_bytes(),
            };
            Ok(Box::pin(futures::stream::iter([Ok(message)])))
        }
        Err(e) => Err(ConnectError::unknown(format!(
            "get log data {}: {e}",
            req.r#ref
        ))),
    }
}

/// The log's bytes in chunks of at most [`CHUNK_MAX`]; buffered bytes go out
/// once a chunk is full, [`FLUSH_EVERY`] after they arrived, or at the end.
/// Dropping the stream closes the reader.
pub fn log_stream(
    mut reader: LogReader,
) -> impl Stream<Item = Result<types::BytesValue, ConnectError>> + Send + 'static {
    async_stream::stream! {
        let mut buf: Vec<u8> = Vec::new();
        // When the oldest buffered byte must be sent.
        let mut flush_at: Option<Instant> = None;
        loop {
            let room = CHUNK_MAX - buf.len();
            let timer = tokio::time::sleep_until(flush_at.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600)));
            tokio::select! {
                read = reader.read_chunk(room) => match read {
                    Ok(Some(data)) => {
                        buf.extend_from_slice(&data);
                        if buf.len() >= CHUNK_MAX {
                            yield Ok(types::BytesValue { value: std::mem::take(&mut buf) });
                            flush_at = None;
                        } else if flush_at.is_none() {
                            flush_at = Some(Instant::now() + FLUSH_EVERY);
                        }
                    }
                    Ok(None) => {
                        if !buf.is_empty() {
                            yield Ok(types::BytesValue { value: std::mem::take(&mut buf) });
                        }
                        break;
                    }
                    Err(e) => {
                        yield Err(ConnectError::unknown(format!("failed to read log data: {e}")));
                        break;
                    }
                },
                _ = timer, if flush_at.is_some() => {
                    yield Ok(types::BytesValue { value: std::mem::take(&mut buf) });
                    flush_at = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;

    use crate::logstore::LogStore;

    async fn store() -> (tempfile::TempDir, LogStore) {
        let dir = tempfile::tempdir().unwrap();
        let logs = LogStore::open(&dir.path().join("tasklogs")).await.unwrap();
        (dir, logs)
    }

    #[tokio::test]
    async fn a_finished_log_comes_in_chunks_of_at_most_128k() {
        let (_dir, logs) = store().await;
        let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        let mut w = logs.create("t-big", 1, None).await.unwrap();
        w.write_all(&data).await.unwrap();
        w.close().await.unwrap();

        let chunks: Vec<Vec<u8>> = log_stream(logs.reader("t-big").await.unwrap())
            .map(|m| m.unwrap().value)
            .collect()
            .await;
        assert!(
            chunks.iter().all(|c| !c.is_empty() && c.len() <= CHUNK_MAX),
            "{:?}",
            chunks.iter().map(Vec::len).collect::<Vec<_>>()
        );
        assert_eq!(chunks.concat(), data);
    }

    #[tokio::test]
    async fn a_live_log_is_followed_and_flushed_promptly() {
        let (_dir, logs) = store().await;
        let mut w = logs.create("t-live", 1, None).await.unwrap();
        w.write_all(b"first line\n").await.unwrap();
        let mut s = Box::pin(log_stream(logs.reader("t-live").await.unwrap()));

        let started = std::time::Instant::now();
        let first = s.next().await.unwrap().unwrap().value;
        assert_eq!(first, b"first line\n");
        assert!(started.elapsed() < Duration::from_secs(2));

        w.write_all(b"second ").await.unwrap();
        w.write_all(b"line\n").await.unwrap();
        let second = s.next().await.unwrap().unwrap().value;
        assert_eq!(second, b"second line\n");

        w.close().await.unwrap();
        assert!(
            s.next().await.is_none(),
            "the stream ends when the writer closes"
        );
    }
}
