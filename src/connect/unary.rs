//! Unary Connect calls: `POST` with a bare message body.

use std::future::Future;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};

use super::codec::{Codec, RpcMessage};
use super::compression::{self, Encoding};
use super::{ConnectError, MAX_MESSAGE_BYTES, RequestContext, UnaryReply};

/// Responses smaller than this are never compressed: gzip would not pay off.
const COMPRESS_MIN_BYTES: usize = 1024;

/// Serves one unary call: checks content type and encoding, decodes, runs
/// `handler` (bounded by the client's timeout), encodes and maybe compresses.
/// `Out` is the response's message type; the handler answers with anything
/// that encodes as one (usually an `Out`).
pub async fn handle<In, Out, R, F, Fut>(
    procedure: &'static str,
    req: Request,
    handler: F,
) -> Response
where
    In: RpcMessage,
    Out: RpcMessage,
    R: UnaryReply<Out>,
    F: FnOnce(RequestContext, In) -> Fut,
    Fut: Future<Output = Result<R, ConnectError>>,
{
    let ct = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(codec) = Codec::from_unary_content_type(ct) else {
        return unsupported_media_type(ct, "application/json or application/proto");
    };
    let accept = compression::negotiate(
        req.headers()
            .get(header::ACCEPT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    );
    match run(procedure, codec, req, handler).await {
        Ok(msg) => respond(codec, accept, msg),
        Err(e) => e.into_response(),
    }
}

async fn run<In, R, F, Fut>(
    procedure: &'static str,
    codec: Codec,
    req: Request,
    handler: F,
) -> Result<R, ConnectError>
where
    In: RpcMessage,
    F: FnOnce(RequestContext, In) -> Fut,
    Fut: Future<Output = Result<R, ConnectError>>,
{
    let (parts, body) = req.into_parts();
    let ctx = RequestContext::new(procedure, parts.headers)?;
    let encoding = compression::parse_content_encoding(
        ctx.headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok()),
    )?;
    let body = read_body(body, MAX_MESSAGE_BYTES).await?;
    let body = match encoding {
        Encoding::Identity => body,
        Encoding::Gzip => Bytes::from(compression::gunzip(&body, MAX_MESSAGE_BYTES)?),
    };
    let msg: In = codec.decode(&body, procedure.trim_start_matches('/'))?;
    match ctx.deadline {
        None => handler(ctx, msg).await,
        Some(deadline) => match tokio::time::timeout_at(deadline.into(), handler(ctx, msg)).await {
            Ok(r) => r,
            Err(_) => Err(ConnectError::deadline_exceeded(
                "the request's Connect-Timeout-Ms ran out",
            )),
        },
    }
}

fn respond<Out>(codec: Codec, accept: Encoding, reply: impl UnaryReply<Out>) -> Response {
    let body = match reply.encode(codec) {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let mut builder = Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, codec.unary_content_type());
    let body = if accept == Encoding::Gzip && body.len() >= COMPRESS_MIN_BYTES {
        builder = builder.header(header::CONTENT_ENCODING, "gzip");
        Bytes::from(compression::gzip(&body))
    } else {
        body
    };
    builder = builder.header(header::CONTENT_LENGTH, body.len());
    builder.body(Body::from(body)).expect("valid response")
}

/// Reads a whole request body, refusing more than `limit` bytes.
pub async fn read_body(body: Body, limit: usize) -> Result<Bytes, ConnectError> {
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let text = e.to_string();
        if text.contains("length limit") {
            ConnectError::resource_exhausted(format!(
                "request body exceeds the limit of {limit} bytes"
            ))
        } else {
            ConnectError::invalid_argument(format!("failed to read request body: {text}"))
        }
    })
}

/// HTTP 415 with a Connect error body saying what is accepted.
pub fn unsupported_media_type(got: &str, want: &str) -> Response {
    let mut resp = ConnectError::unknown(format!("unsupported content type {got:?}: use {want}"))
        .with_status(StatusCode::UNSUPPORTED_MEDIA_TYPE)
        .into_response();
    resp.headers_mut().insert(
        "accept-post",
        HeaderValue::from_static("application/json, application/proto, application/connect+json, application/connect+proto"),
    );
    resp
}
