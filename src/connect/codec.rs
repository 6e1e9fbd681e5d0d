//! Message codecs: binary protobuf (`proto`) and proto3 JSON (`json`).

use bytes::Bytes;
use prost::Message;
use serde::{Serialize, de::DeserializeOwned};

use super::ConnectError;
use crate::pb::v1::OperationList;

/// Everything a message type needs to travel over Connect. prost gives the
/// binary codec, pbjson the JSON one; the blanket impl covers every generated type.
pub trait RpcMessage:
    prost::Message + Default + Serialize + DeserializeOwned + Send + 'static
{
}
impl<T> RpcMessage for T where
    T: prost::Message + Default + Serialize + DeserializeOwned + Send + 'static
{
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Codec {
    Proto,
    Json,
}

impl Codec {
    /// Codec of a unary request's `Content-Type` (`application/proto`,
    /// `application/json`, optionally `; charset=utf-8`).
    pub fn from_unary_content_type(ct: &str) -> Option<Codec> {
        let (base, params) = split_params(ct);
        match base.as_str() {
            "application/proto" if params_ok(&params, false) => Some(Codec::Proto),
            "application/json" if params_ok(&params, true) => Some(Codec::Json),
            _ => None,
        }
    }

    /// Codec of a streaming request's `Content-Type` (`application/connect+proto`
    /// or `application/connect+json`).
    pub fn from_stream_content_type(ct: &str) -> Option<Codec> {
        let (base, params) = split_params(ct);
        match base.as_str() {
            "application/connect+proto" if params_ok(&params, false) => Some(Codec::Proto),
            "application/connect+json" if params_ok(&params, true) => Some(Codec::Json),
            _ => None,
        }
    }

    pub fn unary_content_type(self) -> &'static str {
        match self {
            Codec::Proto => "application/proto",
            Codec::Json => "application/json",
        }
    }

    pub fn stream_content_type(self) -> &'static str {
        match self {
            Codec::Proto => "application/connect+proto",
            Codec::Json => "application/connect+json",
        }
    }

    pub fn encode<T: RpcMessage>(self, msg: &T) -> Result<Bytes, ConnectError> {
        match self {
            Codec::Proto => Ok(Bytes::from(encode_proto(msg))),
            Codec::Json => encode_json(msg).map(Bytes::from).map_err(|e| {
                ConnectError::internal(format!("failed to encode response as JSON: {e}"))
            }),
        }
    }

    /// Decodes a request message. `what` names the RPC for error messages.
    pub fn decode<T: RpcMessage>(self, body: &[u8], what: &str) -> Result<T, ConnectError> {
        match self {
            // A zero-length proto body is a valid empty message.
            Codec::Proto => T::decode(body).map_err(|e| {
                ConnectError::invalid_argument(format!(
                    "invalid binary protobuf body for {what}: {e}"
                ))
            }),
            Codec::Json => decode_json(body, what),
        }
    }
}

/// Binary protobuf of a message. The one response that gets big
/// (GetOperations' `OperationList`, ~4 MB for 10,000 operations) is encoded
/// on several threads. (GetOperations normally answers from the stored bytes,
/// `api::operation_list`; this serves its fallback and the event stream.)
fn encode_proto<T: RpcMessage>(msg: &T) -> Vec<u8> {
    let Some(list) = (msg as &dyn std::any::Any).downcast_ref::<OperationList>() else {
        return msg.encode_to_vec();
    };
    // Fails to compile if OperationList gains a field this doesn't write.
    let OperationList { operations } = list;
    // An OperationList is its operations, each as field 1 (tag, length,
    // bytes), one after the other: parts encoded separately just join.
    let parts = in_parts(operations, PROTO_OPS_PER_THREAD_MIN, |ops| {
        let mut out = Vec::with_capacity(ops.iter().map(|op| op.encoded_len() + 4).sum());
        for op in ops {
            prost::encoding::message::encode(1, op, &mut out);
        }
        out
    });
    match parts {
        Some(parts) => parts.concat(),
        None => list.encode_to_vec(),
    }
}

/// proto3 JSON of a message, compact, exactly as `serde_json::to_vec` writes
/// it. The big `OperationList` is written on several threads.
fn encode_json<T: RpcMessage>(msg: &T) -> serde_json::Result<Vec<u8>> {
    let Some(list) = (msg as &dyn std::any::Any).downcast_ref::<OperationList>() else {
        return serde_json::to_vec(msg);
    };
    let OperationList { operations } = list;
    let parts = in_parts(operations, JSON_OPS_PER_THREAD_MIN, |ops| {
        // JSON is about twice the binary size; a first guess saves most of
        // the regrowing.
        let guess: usize = ops.iter().map(|op| op.encoded_len() * 2 + 16).sum();
        let mut out = Vec::with_capacity(guess);
        for (i, op) in ops.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            serde_json::to_writer(&mut out, op)?;
        }
        Ok(out)
    });
    let Some(parts) = parts else {
        return serde_json::to_vec(list);
    };
    let parts = parts.into_iter().collect::<serde_json::Result<Vec<_>>>()?;
    // What pbjson writes for a non-empty list: {"operations":[op,op,...]}.
    let mut out = Vec::with_capacity(parts.iter().map(|p| p.len() + 1).sum::<usize>() + 20);
    out.extend_from_slice(b"{\"operations\":[");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        out.extend_from_slice(part);
    }
    out.extend_from_slice(b"]}");
    Ok(out)
}

/// Below this many operations per thread, one thread is faster than
/// starting another (an operation takes ~1 µs to encode, ~2 µs as JSON).
const PROTO_OPS_PER_THREAD_MIN: usize = 2000;
const JSON_OPS_PER_THREAD_MIN: usize = 1000;

/// Runs `write` over consecutive parts of `ops` on up to 4 threads (this one
/// and scoped helpers) and returns the parts' results in order; `None` when
/// the list is too short to be worth splitting. A panic in a helper is
/// re-raised here, as if the work had run on this thread.
pub(crate) fn in_parts<T: Sync, R: Send>(
    ops: &[T],
    per_thread_min: usize,
    write: impl Fn(&[T]) -> R + Sync,
) -> Option<Vec<R>> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(4)
        .min(ops.len() / per_thread_min);
    if threads < 2 {
        return None;
    }
    let mut parts = ops.chunks(ops.len().div_ceil(threads));
    let first = parts.next().unwrap_or_default();
    let write = &write;
    std::thread::scope(|scope| {
        let others: Vec<_> = parts.map(|part| scope.spawn(move || write(part))).collect();
        let mut out = vec![write(first)];
        for other in others {
            out.push(
                other
                    .join()
                    .unwrap_or_else(|e| std::panic::resume_unwind(e)),
            );
        }
        Some(out)
    })
}

/// Decodes proto3 JSON. Unknown fields are ignored and both json names and
/// proto field names are accepted (pbjson). Beyond pbjson, an empty body is
/// treated as `{}` (friendlier for curl) and `null` field values mean "default",
/// as the proto3 JSON mapping says.
pub fn decode_json<T: RpcMessage>(body: &[u8], what: &str) -> Result<T, ConnectError> {
    let trimmed = body.iter().all(|b| b.is_ascii_whitespace());
    if trimmed {
        return Ok(T::default());
    }
    // google.protobuf.Empty from pbjson-types refuses unknown fields; like
    // every other message here it should ignore them.
    if std::any::TypeId::of::<T>() == std::any::TypeId::of::<pbjson_types::Empty>() {
        return match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(_)) => Ok(T::default()),
            Ok(other) => Err(ConnectError::invalid_argument(format!(
                "invalid JSON body for {what}: expected an object, got {other}"
            ))),
            Err(e) => Err(ConnectError::invalid_argument(format!(
                "invalid JSON body for {what}: {e}"
            ))),
        };
    }
    match serde_json::from_slice::<T>(body) {
        Ok(v) => Ok(v),
        Err(first) => {
            // Retry with what proto3 JSON allows but pbjson refuses: `null`
            // for "default" and integers written as integral numbers (`5.0`,
            // `5e0`). Report the original error if that fails too.
            if let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(body) {
                let changed = strip_nulls(&mut value) | integral_floats_to_ints(&mut value);
                if changed && let Ok(v) = serde_json::from_value::<T>(value) {
                    return Ok(v);
                }
            }
            Err(ConnectError::invalid_argument(format!(
                "invalid JSON body for {what}: {first}"
            )))
        }
    }
}

/// Rewrites numbers like `5.0` or `5e0` as integers (exactly representable
/// ones only). Floating-point fields accept integers, so this is safe for them.
fn integral_floats_to_ints(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::Number(n) if !n.is_i64() && !n.is_u64() => match n.as_f64() {
            Some(f) if f.fract() == 0.0 && f.abs() < 9_223_372_036_854_775_808.0 => {
                *v = serde_json::Value::from(f as i64);
                true
            }
            _ => false,
        },
        serde_json::Value::Object(map) => map
            .values_mut()
            .fold(false, |acc, x| integral_floats_to_ints(x) | acc),
        serde_json::Value::Array(items) => items
            .iter_mut()
            .fold(false, |acc, x| integral_floats_to_ints(x) | acc),
        _ => false,
    }
}

/// Removes object members whose value is `null`, recursively. Returns whether
/// anything was removed.
fn strip_nulls(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::Object(map) => {
            let before = map.len();
            map.retain(|_, v| !v.is_null());
            let mut changed = map.len() != before;
            for v in map.values_mut() {
                changed |= strip_nulls(v);
            }
            changed
        }
        serde_json::Value::Array(items) => {
            let mut changed = false;
            for v in items.iter_mut() {
                changed |= strip_nulls(v);
            }
            changed
        }
        _ => false,
    }
}

fn split_params(ct: &str) -> (String, Vec<String>) {
    let mut parts = ct.split(';');
    let base = parts.next().unwrap_or("").trim().to_ascii_lowercase();
    let params = parts
        .map(|p| p.trim().to_ascii_lowercase())
        .filter(|p| !p.is_empty())
        .collect();
    (base, params)
}

fn params_ok(params: &[String], allow_charset: bool) -> bool {
    params
        .iter()
        .all(|p| allow_charset && p.replace(' ', "") == "charset=utf-8")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb::v1::{Config, GetOperationsRequest, OpSelector};

    #[test]
    fn content_types() {
        assert_eq!(
            Codec::from_unary_content_type("application/json"),
            Some(Codec::Json)
        );
        assert_eq!(
            Codec::from_unary_content_type("Application/JSON; charset=utf-8"),
            Some(Codec::Json)
        );
        assert_eq!(
            Codec::from_unary_content_type("application/proto"),
            Some(Codec::Proto)
        );
        assert_eq!(
            Codec::from_unary_content_type("application/proto; charset=utf-8"),
            None
        );
        assert_eq!(
            Codec::from_unary_content_type("application/connect+json"),
            None
        );
        assert_eq!(Codec::from_unary_content_type("image/jpeg"), None);
        assert_eq!(
            Codec::from_stream_content_type("application/connect+proto"),
            Some(Codec::Proto)
        );
        assert_eq!(
            Codec::from_stream_content_type("application/connect+json"),
            Some(Codec::Json)
        );
        assert_eq!(Codec::from_stream_content_type("application/json"), None);
    }

    #[test]
    fn json_accepts_both_names_unknown_fields_and_nulls() {
        let a: GetOperationsRequest =
            decode_json(br#"{"selector":{"planId":"p"},"lastN":"5","extra":1}"#, "t").unwrap();
        let b: GetOperationsRequest =
            decode_json(br#"{"selector":{"plan_id":"p"},"last_n":5}"#, "t").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.selector.unwrap().plan_id.as_deref(), Some("p"));
        let c: Config = decode_json(br#"{"instance":null,"repos":null,"modno":3}"#, "t").unwrap();
        assert_eq!(c.modno, 3);
        let d: OpSelector = decode_json(b"", "t").unwrap();
        assert_eq!(d, OpSelector::default());
    }

    #[test]
    fn empty_ignores_unknown_fields_and_integral_floats_are_integers() {
        let e: pbjson_types::Empty = decode_json(br#"{"a": 1, "b": [null]}"#, "t").unwrap();
        assert_eq!(e, pbjson_types::Empty {});
        assert!(decode_json::<pbjson_types::Empty>(b"[1]", "t").is_err());
        let r: GetOperationsRequest =
            decode_json(br#"{"lastN": 382.0, "selector": {"flowId": 5e0}}"#, "t").unwrap();
        assert_eq!(r.last_n, 382);
        assert_eq!(r.selector.unwrap().flow_id, Some(5));
        assert!(decode_json::<GetOperationsRequest>(br#"{"lastN": 1.5}"#, "t").is_err());
    }

    #[test]
    fn malformed_json_names_the_problem() {
        let err =
            decode_json::<Config>(br#"{"modno":"abc"}"#, "v1.Backrest/SetConfig").unwrap_err();
        assert_eq!(err.code, crate::connect::Code::InvalidArgument);
        assert!(
            err.message.contains("v1.Backrest/SetConfig"),
            "{}",
            err.message
        );
        let err = decode_json::<Config>(br#"{"modno": 1"#, "x").unwrap_err();
        assert!(
            err.message.contains("EOF") || err.message.contains("line"),
            "{}",
            err.message
        );
    }

    #[test]
    fn operation_lists_are_written_exactly_as_one_thread_writes_them() {
        use crate::pb::v1::{Operation, OperationStatus, operation};
        let op = |i: i64| Operation {
            id: i,
            flow_id: i - i % 3,
            modno: i * 7,
            unix_time_start_ms: 1_700_000_000_000 + i,
            plan_id: format!("plan \"{}\"\n\u{e9}", i % 5),
            status: OperationStatus::StatusSuccess as i32,
            op: (i % 2 == 0).then(|| operation::Op::OperationBackup(Default::default())),
            ..Default::default()
        };
        // Below, at and well above the size where the work is split.
        for n in [0, 1, 2, 1999, 2000, 2001, 4003, 9000] {
            let list = OperationList {
                operations: (1..=n).map(op).collect(),
            };
            let got = Codec::Json.encode(&list).unwrap();
            let want = serde_json::to_vec(&list).unwrap();
            assert!(got == want, "{n} operations: the JSON differs");
            let back: OperationList = Codec::Json.decode(&got, "t").unwrap();
            assert_eq!(back, list);
            let got = Codec::Proto.encode(&list).unwrap();
            assert!(
                got == list.encode_to_vec(),
                "{n} operations: the binary differs"
            );
        }
    }

    #[test]
    fn proto_round_trip_and_empty_body() {
        let cfg = Config {
            modno: 7,
            instance: "x".into(),
            ..Default::default()
        };
        let bytes = Codec::Proto.encode(&cfg).unwrap();
        let back: Config = Codec::Proto.decode(&bytes, "t").unwrap();
        assert_eq!(back, cfg);
        let empty: Config = Codec::Proto.decode(&[], "t").unwrap();
        assert_eq!(empty, Config::default());
        assert!(Codec::Proto.decode::<Config>(&[0xff, 0xff], "t").is_err());
    }
}
