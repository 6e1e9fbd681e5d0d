//! Protocol tests against a small service declared with the same macro the
//! generated code uses, driven through the axum router in-process.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use bytes::Bytes;
use futures::StreamExt;
use http::{Request, StatusCode};
use http_body_util::BodyExt;
use prost::Message;
use tower::ServiceExt;

use super::compression;
use super::envelope::{self, FLAG_COMPRESSED, FLAG_END_STREAM};
use super::{ConnectError, RequestContext, ServerStream};
use crate::pb::types::{StringList, StringValue};

crate::connect_service! {
    /// A service for exercising the protocol layer.
    service Echo = "test.Echo", router echo_router;
    unary echo("Echo")(StringValue) -> StringValue;
    unary fail("Fail")(StringValue) -> StringValue;
    unary not_built("NotBuilt")(StringValue) -> StringValue;
    unary pre_encoded("PreEncoded")(StringValue) -> StringValue;
    server_stream repeat("Repeat")(StringValue) -> StringValue;
    server_stream not_built_stream("NotBuiltStream")(StringValue) -> StringValue;
}

struct EchoImpl;

/// A reply that writes its own body: the request's value upper-cased, or an
/// error when the value is "refuse".
struct Shouted(String);

impl super::UnaryReply<StringValue> for Shouted {
    fn encode(self, codec: super::Codec) -> Result<Bytes, ConnectError> {
        if self.0 == "refuse" {
            return Err(ConnectError::internal("this reply can't be encoded"));
        }
        let upper = self.0.to_uppercase();
        Ok(Bytes::from(match codec {
            super::Codec::Proto => StringValue { value: upper }.encode_to_vec(),
            super::Codec::Json => format!("{{\"value\":\"{upper}\"}}").into_bytes(),
        }))
    }
}

#[allow(refining_impl_trait)]
impl Echo for EchoImpl {
    async fn echo(
        &self,
        _ctx: RequestContext,
        req: StringValue,
    ) -> Result<StringValue, ConnectError> {
        // "sleep:<ms>" makes the handler slow, for timeout tests.
        if let Some(ms) = req.value.strip_prefix("sleep:") {
            tokio::time::sleep(Duration::from_millis(ms.parse().unwrap())).await;
        }
        Ok(req)
    }

    async fn fail(
        &self,
        _ctx: RequestContext,
        req: StringValue,
    ) -> Result<StringValue, ConnectError> {
        Err(ConnectError::new(
            req.value.parse::<super::Code>().unwrap(),
            "failed on purpose: ünïcode",
        ))
    }

    async fn pre_encoded(
        &self,
        _ctx: RequestContext,
        req: StringValue,
    ) -> Result<Shouted, ConnectError> {
        Ok(Shouted(req.value))
    }

    /// Sends `value` back as many times as its length, then fails if it starts with "x".
    async fn repeat(
        &self,
        _ctx: RequestContext,
        req: StringValue,
    ) -> Result<ServerStream<StringValue>, ConnectError> {
        if req.value == "slow" {
            let s = futures::stream::unfold(0u32, |n| async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                Some((
                    Ok(StringValue {
                        value: format!("tick {n}"),
                    }),
                    n + 1,
                ))
            });
            return Ok(Box::pin(s));
        }
        let n = req.value.len();
        let fail = req.value.starts_with('x');
        let items = (0..n).map(move |i| {
            Ok(StringValue {
                value: format!("{i}"),
            })
        });
        let tail = fail.then(|| Err(ConnectError::data_loss("stream broke")));
        Ok(Box::pin(futures::stream::iter(items.chain(tail))))
    }
}

fn app() -> axum::Router {
    echo_router(Arc::new(EchoImpl))
}

async fn call(req: Request<Body>) -> (StatusCode, http::HeaderMap, Bytes) {
    let resp = app().oneshot(req).await.unwrap();
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

fn post(path: &str, ct: &str) -> http::request::Builder {
    Request::post(path).header("content-type", ct)
}

fn json(b: &Bytes) -> serde_json::Value {
    serde_json::from_slice(b)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}", String::from_utf8_lossy(b)))
}

#[tokio::test]
async fn unary_json_and_proto() {
    let (s, h, b) = call(
        post("/test.Echo/Echo", "application/json")
            .body(Body::from(r#"{"value":"hi"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(json(&b), serde_json::json!({"value": "hi"}));

    let msg = StringValue {
        value: "bin".into(),
    }
    .encode_to_vec();
    let (s, h, b) = call(
        post("/test.Echo/Echo", "application/proto")
            .body(Body::from(msg))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/proto");
    assert_eq!(StringValue::decode(b).unwrap().value, "bin");

    // An empty proto body is the default message.
    let (s, _, b) = call(
        post("/test.Echo/Echo", "application/proto")
            .body(Body::empty())
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert!(b.is_empty());
}

/// A handler may answer with its own `UnaryReply`: the route sends the
/// body it writes in the call's codec, and turns its error into a Connect
/// error.
#[tokio::test]
async fn a_reply_can_encode_itself() {
    let (s, h, b) = call(
        post("/test.Echo/PreEncoded", "application/json")
            .body(Body::from(r#"{"value":"hi"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(json(&b), serde_json::json!({"value": "HI"}));
    let msg = StringValue {
        value: "bin".into(),
    }
    .encode_to_vec();
    let (s, h, b) = call(
        post("/test.Echo/PreEncoded", "application/proto")
            .body(Body::from(msg))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/proto");
    assert_eq!(StringValue::decode(b).unwrap().value, "BIN");
    let (s, _, b) = call(
        post("/test.Echo/PreEncoded", "application/json")
            .body(Body::from(r#"{"value":"refuse"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(json(&b)["code"], "internal");
    assert_eq!(json(&b)["message"], "this reply can't be encoded");
}

/// A response big enough that its message is freed after it is sent, not
/// before, arrives whole in both codecs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn big_responses_arrive_whole() {
    let value: String = (0..3_000_000u32)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    let msg = StringValue {
        value: value.clone(),
    };
    let (s, _, b) = call(
        post("/test.Echo/Echo", "application/proto")
            .body(Body::from(msg.encode_to_vec()))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(StringValue::decode(b).unwrap(), msg);
    let (s, _, b) = call(
        post("/test.Echo/Echo", "application/json")
            .body(Body::from(serde_json::to_vec(&msg).unwrap()))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(json(&b), serde_json::json!({ "value": value }));
}

#[tokio::test]
async fn every_error_code_has_its_status_and_json_body() {
    for code in super::Code::ALL {
        let body = format!(r#"{{"value":"{}"}}"#, code.as_str());
        let (s, h, b) = call(
            post("/test.Echo/Fail", "application/json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
        assert_eq!(s, code.http_status(), "{code}");
        assert_eq!(h["content-type"], "application/json");
        let v = json(&b);
        assert_eq!(v["code"], code.as_str());
        assert_eq!(v["message"], "failed on purpose: ünïcode");
    }
    // A proto request still gets a JSON error body.
    let msg = StringValue {
        value: "not_found".into(),
    }
    .encode_to_vec();
    let (s, h, _) = call(
        post("/test.Echo/Fail", "application/proto")
            .body(Body::from(msg))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(h["content-type"], "application/json");
}

#[tokio::test]
async fn unbuilt_methods_answer_unimplemented() {
    let (s, _, b) = call(
        post("/test.Echo/NotBuilt", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED);
    assert_eq!(json(&b)["code"], "unimplemented");
    assert!(
        json(&b)["message"]
            .as_str()
            .unwrap()
            .contains("test.Echo/NotBuilt")
    );
}

#[tokio::test]
async fn protocol_errors() {
    // Unsupported content types: 415.
    for ct in [
        "image/jpeg",
        "application/foo",
        "application/connect+json",
        "",
    ] {
        let (s, _, _) = call(post("/test.Echo/Echo", ct).body(Body::from("{}")).unwrap()).await;
        assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct:?}");
    }
    let (s, _, _) = call(
        post("/test.Echo/Repeat", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    // Other methods: 405.
    for m in ["GET", "PUT", "DELETE", "PATCH"] {
        let req = Request::builder()
            .method(m)
            .uri("/test.Echo/Echo")
            .body(Body::empty())
            .unwrap();
        let (s, h, _) = call(req).await;
        assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED, "{m}");
        assert_eq!(h["allow"], "POST");
    }
    // Unknown procedure under the service: a Connect error, 404.
    let (s, h, b) = call(
        post("/test.Echo/Nope", "application/json")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(json(&b)["code"], "unimplemented");
    // Unsupported compression: unimplemented.
    let (s, _, b) = call(
        post("/test.Echo/Echo", "application/json")
            .header("content-encoding", "br")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_IMPLEMENTED);
    assert!(json(&b)["message"].as_str().unwrap().contains("gzip"));
    // Malformed JSON: invalid_argument naming the problem and the RPC.
    let (s, _, b) = call(
        post("/test.Echo/Echo", "application/json")
            .body(Body::from(r#"{"value": 12"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let v = json(&b);
    assert_eq!(v["code"], "invalid_argument");
    assert!(
        v["message"].as_str().unwrap().contains("test.Echo/Echo"),
        "{v}"
    );
    let (_, _, b) = call(
        post("/test.Echo/Echo", "application/json")
            .body(Body::from(r#"{"value": 12}"#))
            .unwrap(),
    )
    .await;
    assert!(
        json(&b)["message"]
            .as_str()
            .unwrap()
            .contains("invalid type"),
        "{}",
        json(&b)
    );
    // Bad binary.
    let (s, _, b) = call(
        post("/test.Echo/Echo", "application/proto")
            .body(Body::from(vec![0x0a, 0x05, b'a']))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(json(&b)["code"], "invalid_argument");
    // Malformed timeout header.
    let (s, _, b) = call(
        post("/test.Echo/Echo", "application/json")
            .header("connect-timeout-ms", "soon")
            .body(Body::from("{}"))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert!(
        json(&b)["message"]
            .as_str()
            .unwrap()
            .contains("Connect-Timeout-Ms")
    );
}

#[tokio::test]
async fn unary_timeout_is_deadline_exceeded() {
    let (s, _, b) = call(
        post("/test.Echo/Echo", "application/json")
            .header("connect-timeout-ms", "100")
            .body(Body::from(r#"{"value":"sleep:2000"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(json(&b)["code"], "deadline_exceeded");
    // A generous timeout lets the call finish.
    let (s, _, _) = call(
        post("/test.Echo/Echo", "application/json")
            .header("connect-timeout-ms", "5000")
            .body(Body::from(r#"{"value":"sleep:10"}"#))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn gzip_both_ways() {
    let big = "z".repeat(5000);
    let body = compression::gzip(format!(r#"{{"value":"{big}"}}"#).as_bytes());
    let (s, h, b) = call(
        post("/test.Echo/Echo", "application/json")
            .header("content-encoding", "gzip")
            .header("accept-encoding", "gzip, deflate, br")
            .body(Body::from(body))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-encoding"], "gzip");
    let plain = compression::gunzip(&b, 1 << 20).unwrap();
    assert_eq!(json(&Bytes::from(plain))["value"], big.as_str());
    // Small responses and clients without gzip get identity.
    let (_, h, _) = call(
        post("/test.Echo/Echo", "application/json")
            .header("accept-encoding", "gzip")
            .body(Body::from(r#"{"value":"s"}"#))
            .unwrap(),
    )
    .await;
    assert!(h.get("content-encoding").is_none());
    let (_, h, _) = call(
        post("/test.Echo/Echo", "application/json")
            .body(Body::from(format!(r#"{{"value":"{big}"}}"#)))
            .unwrap(),
    )
    .await;
    assert!(h.get("content-encoding").is_none());
}

/// Splits a streaming response into (flags, payload) frames.
fn frames(body: Bytes) -> Vec<(u8, Bytes)> {
    envelope::decode_all(body, 1 << 20)
        .unwrap()
        .into_iter()
        .map(|e| (e.flags, e.payload))
        .collect()
}

fn stream_req(ct: &str, payload: &[u8]) -> Request<Body> {
    Request::post("/test.Echo/Repeat")
        .header("content-type", ct)
        .body(Body::from(envelope::encode(0, payload)))
        .unwrap()
}

#[tokio::test]
async fn server_stream_json_and_proto() {
    let (s, h, b) = call(stream_req(
        "application/connect+json",
        br#"{"value":"abc"}"#,
    ))
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/connect+json");
    let f = frames(b);
    assert_eq!(f.len(), 4);
    for (i, (flags, payload)) in f[..3].iter().enumerate() {
        assert_eq!(*flags, 0);
        assert_eq!(json(payload)["value"], i.to_string());
    }
    assert_eq!(f[3].0, FLAG_END_STREAM);
    assert_eq!(json(&f[3].1), serde_json::json!({}));

    let msg = StringValue { value: "ab".into() }.encode_to_vec();
    let (s, h, b) = call(stream_req("application/connect+proto", &msg)).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h["content-type"], "application/connect+proto");
    let f = frames(b);
    assert_eq!(f.len(), 3);
    assert_eq!(StringValue::decode(f[1].1.clone()).unwrap().value, "1");
    assert_eq!(f[2].0, FLAG_END_STREAM);
}

#[tokio::test]
async fn server_stream_errors_end_the_stream_with_status_200() {
    // Handler error mid-stream.
    let (s, _, b) = call(stream_req("application/connect+json", br#"{"value":"xy"}"#)).await;
    assert_eq!(s, StatusCode::OK);
    let f = frames(b);
    assert_eq!(f.len(), 3);
    let end = json(&f[2].1);
    assert_eq!(end["error"]["code"], "data_loss");
    assert_eq!(end["error"]["message"], "stream broke");

    // Unimplemented streaming method.
    let (s, _, b) = call(
        Request::post("/test.Echo/NotBuiltStream")
            .header("content-type", "application/connect+json")
            .body(Body::from(envelope::encode(0, b"{}")))
            .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let f = frames(b);
    assert_eq!(f.len(), 1);
    assert_eq!(json(&f[0].1)["error"]["code"], "unimplemented");

    // No request message, or two: unimplemented.
    for body in [
        Bytes::new(),
        [envelope::encode(0, b"{}"), envelope::encode(0, b"{}")]
            .concat()
            .into(),
    ] {
        let (s, _, b) = call(
            Request::post("/test.Echo/Repeat")
                .header("content-type", "application/connect+json")
                .body(Body::from(body))
                .unwrap(),
        )
        .await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(json(&frames(b)[0].1)["error"]["code"], "unimplemented");
    }
    // Compressed flag without an encoding: internal.
    let (_, _, b) = call(
        Request::post("/test.Echo/Repeat")
            .header("content-type", "application/connect+json")
            .body(Body::from(envelope::encode(FLAG_COMPRESSED, b"{}")))
            .unwrap(),
    )
    .await;
    assert_eq!(json(&frames(b)[0].1)["error"]["code"], "internal");
    // Compressed flag with gzip works.
    let z = compression::gzip(br#"{"value":"q"}"#);
    let (_, _, b) = call(
        Request::post("/test.Echo/Repeat")
            .header("content-type", "application/connect+json")
            .header("connect-content-encoding", "gzip")
            .body(Body::from(envelope::encode(FLAG_COMPRESSED, &z)))
            .unwrap(),
    )
    .await;
    let f = frames(b);
    assert_eq!(f.len(), 2);
    assert_eq!(json(&f[0].1)["value"], "0");
    // Malformed message: invalid_argument in the end-of-stream.
    let (_, _, b) = call(stream_req("application/connect+json", b"{nope")).await;
    assert_eq!(json(&frames(b)[0].1)["error"]["code"], "invalid_argument");
}

#[tokio::test]
async fn server_stream_deadline_and_incremental_delivery() {
    let req = Request::post("/test.Echo/Repeat")
        .header("content-type", "application/connect+json")
        .header("connect-timeout-ms", "300")
        .body(Body::from(envelope::encode(0, br#"{"value":"slow"}"#)))
        .unwrap();
    let resp = app().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    // Messages arrive one by one, before the stream ends.
    let mut body = resp.into_body().into_data_stream();
    let first = tokio::time::timeout(Duration::from_millis(250), body.next())
        .await
        .expect("first tick promptly")
        .unwrap()
        .unwrap();
    assert_eq!(first[0], 0);
    let mut rest = first.to_vec();
    while let Some(chunk) = body.next().await {
        rest.extend_from_slice(&chunk.unwrap());
    }
    let f = frames(Bytes::from(rest));
    let (flags, end) = f.last().unwrap();
    assert_eq!(*flags, FLAG_END_STREAM);
    assert_eq!(json(end)["error"]["code"], "deadline_exceeded");
    assert!(f.len() >= 3, "some ticks before the deadline: {}", f.len());
}

#[tokio::test]
async fn repeated_field_types_round_trip_in_json() {
    // StringList is used by PathAutocomplete; make sure repeated strings encode canonically.
    let v = serde_json::to_value(StringList {
        values: vec!["a".into(), "b".into()],
    })
    .unwrap();
    assert_eq!(v, serde_json::json!({"values": ["a", "b"]}));
}
