//! Server-streaming Connect calls: one enveloped request message in, a
//! sequence of enveloped messages out, closed by an end-of-stream envelope
//! whose JSON payload carries the error, if any. The HTTP status is always 200
//! once the content type has been accepted.

use std::future::Future;
use std::pin::Pin;

use axum::body::Body;
use axum::extract::Request;
use axum::response::Response;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use http::{StatusCode, header};

use super::codec::{Codec, RpcMessage};
use super::compression::{self, Encoding};
use super::context::ShutdownSignal;
use super::envelope::{self, FLAG_COMPRESSED, FLAG_END_STREAM};
use super::unary::{read_body, unsupported_media_type};
use super::{ConnectError, MAX_MESSAGE_BYTES, RequestContext};

/// What a server-streaming handler returns on success.
pub type ServerStream<T> = Pin<Box<dyn Stream<Item = Result<T, ConnectError>> + Send + 'static>>;

pub async fn handle<In, Out, F, Fut>(procedure: &'static str, req: Request, handler: F) -> Response
where
    In: RpcMessage,
    Out: RpcMessage,
    F: FnOnce(RequestContext, In) -> Fut,
    Fut: Future<Output = Result<ServerStream<Out>, ConnectError>>,
{
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(codec) = Codec::from_stream_content_type(ct) else {
        return unsupported_media_type(ct, "application/connect+json or application/connect+proto");
    };
    let shutdown = req.extensions().get::<ShutdownSignal>().cloned();
    let (deadline, result) = match start(procedure, codec, req, handler).await {
        Ok((deadline, s)) => (deadline, Ok(s)),
        Err(e) => (None, Err(e)),
    };
    let frames: Pin<Box<dyn Stream<Item = Bytes> + Send>> = match result {
        Err(e) => Box::pin(futures::stream::once(async move { end_stream(Some(&e)) })),
        Ok(messages) => Box::pin(frame_stream(codec, messages, deadline, shutdown)),
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, codec.stream_content_type())
        // Ask reverse proxies not to buffer the stream.
        .header("x-accel-buffering", "no")
        .body(Body::from_stream(
            frames.map(Ok::<_, std::convert::Infallible>),
        ))
        .expect("valid response")
}

async fn start<In, Out, F, Fut>(
    procedure: &'static str,
    codec: Codec,
    req: Request,
    handler: F,
) -> Result<(Option<std::time::Instant>, ServerStream<Out>), ConnectError>
where
    In: RpcMessage,
    Out: RpcMessage,
    F: FnOnce(RequestContext, In) -> Fut,
    Fut: Future<Output = Result<ServerStream<Out>, ConnectError>>,
{
    let (parts, body) = req.into_parts();
    let ctx = RequestContext::new(procedure, parts.headers)?;
    let encoding = compression::parse_content_encoding(
        ctx.headers
            .get("connect-content-encoding")
            .and_then(|v| v.to_str().ok()),
    )?;
    let body = read_body(body, MAX_MESSAGE_BYTES + 5).await?;
    let mut envelopes = envelope::decode_all(body, MAX_MESSAGE_BYTES)?;
    if envelopes.len() != 1 {
        return Err(ConnectError::unimplemented(format!(
            "a server-streaming call takes exactly one request message, got {}",
            envelopes.len()
        )));
    }
    let env = envelopes.pop().expect("one envelope");
    if env.flags & FLAG_END_STREAM != 0 {
        return Err(ConnectError::invalid_argument(
            "request envelope has the end-of-stream flag set",
        ));
    }
    let payload = if env.flags & FLAG_COMPRESSED != 0 {
        if encoding == Encoding::Identity {
            return Err(ConnectError::internal(
                "request message is flagged compressed but no Connect-Content-Encoding was given",
            ));
        }
        Bytes::from(compression::gunzip(&env.payload, MAX_MESSAGE_BYTES)?)
    } else {
        env.payload
    };
    let msg: In = codec.decode(&payload, procedure.trim_start_matches('/'))?;
    let deadline = ctx.deadline;
    let fut = handler(ctx, msg);
    let stream = match deadline {
        None => fut.await?,
        Some(d) => tokio::time::timeout_at(d.into(), fut).await.map_err(|_| {
            ConnectError::deadline_exceeded("the request's Connect-Timeout-Ms ran out")
        })??,
    };
    Ok((deadline, stream))
}

/// Turns handler messages into envelopes, ending with exactly one
/// end-of-stream envelope: on the first error, on the deadline, on server
/// shutdown, or when the handler's stream finishes.
fn frame_stream<Out: RpcMessage>(
    codec: Codec,
    mut messages: ServerStream<Out>,
    deadline: Option<std::time::Instant>,
    shutdown: Option<ShutdownSignal>,
) -> impl Stream<Item = Bytes> + Send {
    async_stream::stream! {
        let sleep = async move {
            match deadline {
                Some(d) => tokio::time::sleep_until(d.into()).await,
                None => std::future::pending().await,
            }
        };
        let stop = async move {
            match shutdown {
                Some(s) => s.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::pin!(sleep);
        tokio::pin!(stop);
        loop {
            tokio::select! {
                biased;
                _ = &mut stop => {
                    yield end_stream(Some(&ConnectError::unavailable("the server is shutting down")));
                    break;
                }
                _ = &mut sleep => {
                    yield end_stream(Some(&ConnectError::deadline_exceeded("the request's Connect-Timeout-Ms ran out")));
                    break;
                }
                item = messages.next() => match item {
                    Some(Ok(msg)) => match codec.encode(&msg) {
                        Ok(bytes) => yield envelope::encode(0, &bytes),
                        Err(e) => { yield end_stream(Some(&e)); break; }
                    },
                    Some(Err(e)) => { yield end_stream(Some(&e)); break; }
                    None => { yield end_stream(None); break; }
                },
            }
        }
    }
}

/// The end-of-stream envelope: `{}` on success, `{"error": {...}}` otherwise.
pub fn end_stream(error: Option<&ConnectError>) -> Bytes {
    let json = match error {
        None => serde_json::json!({}),
        Some(e) => serde_json::json!({ "error": e.to_json() }),
    };
    envelope::encode(FLAG_END_STREAM, &serde_json::to_vec(&json).expect("json"))
}
