//! GetOperations' response, written from the operation log's stored bytes.
//!
//! A plan's latest 10,000 operations are ~4 MB of protobuf in the log.
//! Decoding them into messages and encoding those again cost more than the
//! query itself (BENCHMARKS.md, "Operation log"), so the response is written
//! from the stored bytes instead:
//!
//! * binary: an `OperationList` is its operations one after the other, each
//!   as field 1 (tag, length, bytes), so the stored encodings are copied in,
//!   after the same check a decoder makes (a damaged operation is reported
//!   as an error naming it, never sent);
//! * JSON: each stored encoding is transcoded to proto3 JSON directly
//!   (`connect::transcode`), byte for byte what pbjson writes for the decoded
//!   message.
//!
//! Whatever the fast path can't handle falls back to decoding, so the answer
//! (or the error naming a damaged operation) is the same either way.

use bytes::Bytes;
use prost::encoding::{WireType, decode_varint, encode_key, encode_varint};

use crate::connect::codec::in_parts;
use crate::connect::transcode::JsonTranscoder;
use crate::connect::{Codec, ConnectError, UnaryReply};
use crate::oplog::EncodedOperations;
use crate::pb::v1;

/// The operations GetOperations selected, as stored, sorted by id.
pub struct StoredOperationList(pub EncodedOperations);

impl UnaryReply<v1::OperationList> for StoredOperationList {
    fn encode(self, codec: Codec) -> Result<Bytes, ConnectError> {
        let body = match codec {
            Codec::Proto => proto(&self.0),
            Codec::Json => json(&self.0),
        };
        match body {
            Some(body) => Ok(Bytes::from(body)),
            None => decoded(&self.0, codec),
        }
    }
}

/// The slow path: decode every operation and encode the list as usual. It
/// also turns a damaged operation into the error that names it.
fn decoded(ops: &EncodedOperations, codec: Codec) -> Result<Bytes, ConnectError> {
    let operations = ops.decode()?;
    UnaryReply::<v1::OperationList>::encode(v1::OperationList { operations }, codec)
}

/// Below this many operations per thread, one thread is faster than
/// starting another.
const PROTO_OPS_PER_THREAD_MIN: usize = 1000;
const JSON_OPS_PER_THREAD_MIN: usize = 1000;

/// The binary `OperationList`; `None` if an operation's bytes are not valid
/// (the slow path then reports it).
fn proto(ops: &EncodedOperations) -> Option<Vec<u8>> {
    let transcoder = JsonTranscoder::operation();
    let all: Vec<(i64, &[u8])> = ops.iter().collect();
    let layout = Layout {
        head: b"",
        separator: b"",
        tail: b"",
        // Tag (1 byte) and length (at most 5) before each operation.
        size: |blob| blob.len() + 6,
    };
    build(&all, PROTO_OPS_PER_THREAD_MIN, layout, |_, blob, out| {
        // The bytes go out as they are, so check them as a decoder would:
        // validating walks every nested field and string without writing
        // anything.
        let valid = match transcoder {
            Some(t) => t.validate(blob).is_ok(),
            None => well_formed(blob),
        };
        if valid {
            encode_key(1, WireType::LengthDelimited, out);
            encode_varint(blob.len() as u64, out);
            out.extend_from_slice(blob);
        }
        valid
    })
}

/// The JSON `OperationList`, as pbjson writes it: `{}` when empty, else
/// `{"operations":[...]}`. `None` if the transcoder is unavailable or refuses
/// an operation's bytes.
fn json(ops: &EncodedOperations) -> Option<Vec<u8>> {
    if ops.is_empty() {
        return Some(b"{}".to_vec());
    }
    let transcoder = JsonTranscoder::operation()?;
    let all: Vec<(i64, &[u8])> = ops.iter().collect();
    let layout = Layout {
        head: b"{\"operations\":[",
        separator: b",",
        tail: b"]}",
        // JSON comes out a little over twice the size of the protobuf.
        size: |blob| blob.len() * 5 / 2 + 16,
    };
    build(
        &all,
        JSON_OPS_PER_THREAD_MIN,
        layout,
        |id, blob, out| match transcoder.write(blob, out) {
            Ok(()) => true,
            Err(e) => {
                tracing::debug!(
                    "operation {id}: JSON straight from its bytes failed ({e}); decoding instead"
                );
                false
            }
        },
    )
}

/// How a body frames its operations.
struct Layout {
    head: &'static [u8],
    separator: &'static [u8],
    tail: &'static [u8],
    /// A generous guess of the bytes one operation takes.
    size: fn(&[u8]) -> usize,
}

/// Writes `head`, the operations (`item` appends one and says whether it
/// could), separated, then `tail`. Long lists are written in parts on
/// several threads; the first part's buffer is sized for the whole body
/// up front, so joining copies only the other parts and a body of many
/// megabytes is not copied whole once more. `None` if `item` refused one.
fn build<I>(all: &[(i64, &[u8])], per_thread_min: usize, layout: Layout, item: I) -> Option<Vec<u8>>
where
    I: Fn(i64, &[u8], &mut Vec<u8>) -> bool + Sync,
{
    let guess = |part: &[(i64, &[u8])]| -> usize {
        part.iter()
            .map(|&(_, blob)| (layout.size)(blob) + layout.separator.len())
            .sum()
    };
    // Where the first part starts (an address, so the closure stays Sync).
    let first = all.as_ptr() as usize;
    let whole = guess(all) + layout.head.len() + layout.tail.len();
    let write = |part: &[(i64, &[u8])]| -> Option<Vec<u8>> {
        let is_first = part.as_ptr() as usize == first;
        let mut out = Vec::with_capacity(if is_first { whole } else { guess(part) });
        if is_first {
            out.extend_from_slice(layout.head);
        }
        for (i, &(id, blob)) in part.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(layout.separator);
            }
            if !item(id, blob, &mut out) {
                return None;
            }
        }
        Some(out)
    };
    let parts = match in_parts(all, per_thread_min, write) {
        None => vec![write(all)?],
        Some(parts) => parts.into_iter().collect::<Option<Vec<_>>>()?,
    };
    let mut parts = parts.into_iter();
    let mut out = parts.next()?;
    for part in parts {
        out.extend_from_slice(layout.separator);
        out.extend_from_slice(&part);
    }
    out.extend_from_slice(layout.tail);
    Some(out)
}

/// Whether `blob` is a well-formed sequence of protobuf fields: every key,
/// varint and length in bounds. It does not look inside nested messages;
/// that is left to the client's decoder, as for any message it receives.
fn well_formed(mut blob: &[u8]) -> bool {
    while !blob.is_empty() {
        let Ok(key) = decode_varint(&mut blob) else {
            return false;
        };
        if key >> 3 == 0 || key > u64::from(u32::MAX) {
            return false;
        }
        let skip = match key & 7 {
            0 => {
                if decode_varint(&mut blob).is_err() {
                    return false;
                }
                0
            }
            1 => 8,
            2 => match decode_varint(&mut blob) {
                Ok(len) => match usize::try_from(len) {
                    Ok(len) => len,
                    Err(_) => return false,
                },
                Err(_) => return false,
            },
            5 => 4,
            // Groups (3, 4) are not used by these messages; 6 and 7 are invalid.
            _ => return false,
        };
        match blob.get(skip..) {
            Some(rest) => blob = rest,
            None => return false,
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use prost::Message;
    use sqlx::Connection;

    use super::*;
    use crate::connect::Code;
    use crate::oplog::{OpLog, Query};
    use crate::pb::v1::operation::Op;
    use crate::pb::v1::*;

    /// Operations of every kind, with nested messages, repeated fields,
    /// doubles, negative numbers and strings that need escaping.
    fn varied(i: i64) -> Operation {
        let text = [
            "plain",
            "quote \" back \\ slash",
            "ctl \u{1}\n\t",
            "ünï 😀",
            "",
        ][i as usize % 5];
        let snapshot = ResticSnapshot {
            id: format!("{i:064x}"),
            unix_time_ms: 1_700_000_000_000 + i,
            hostname: "host".into(),
            paths: vec!["/a".into(), text.into()],
            tags: vec!["plan:x".into()],
            summary: (i % 2 == 0).then(|| SnapshotSummary {
                files_new: i,
                total_duration: 0.1 * i as f64,
                ..Default::default()
            }),
            ..Default::default()
        };
        let op = match i % 9 {
            0 => Op::OperationBackup(OperationBackup {
                last_status: Some(BackupProgressEntry {
                    entry: Some(if i % 2 == 0 {
                        backup_progress_entry::Entry::Status(BackupProgressStatusEntry {
                            percent_done: 0.5,
                            current_file: vec![text.into(), "/b".into()],
                            ..Default::default()
                        })
                    } else {
                        backup_progress_entry::Entry::Summary(BackupProgressSummary {
                            data_added: i64::MAX,
                            snapshot_id: "abc".into(),
                            ..Default::default()
                        })
                    }),
                }),
                errors: vec![BackupProgressError {
                    item: text.into(),
                    ..Default::default()
                }],
                dry_run: i % 4 == 0,
            }),
            1 => Op::OperationIndexSnapshot(OperationIndexSnapshot {
                snapshot: Some(snapshot),
                forgot: i % 2 == 0,
            }),
            2 => Op::OperationForget(OperationForget {
                forget: vec![snapshot.clone(), snapshot],
                policy: Some(RetentionPolicy {
                    policy: Some(if i % 2 == 0 {
                        retention_policy::Policy::PolicyKeepLastN(0)
                    } else {
                        retention_policy::Policy::PolicyTimeBucketed(
                            retention_policy::TimeBucketedCounts {
                                daily: -3,
                                ..Default::default()
                            },
                        )
                    }),
                }),
            }),
            3 => Op::OperationPrune(OperationPrune {
                output: text.into(),
                output_logref: "ref".into(),
            }),
            4 => Op::OperationRestore(OperationRestore {
                path: "/p".into(),
                target: text.into(),
                last_status: Some(RestoreProgressEntry {
                    percent_done: 1e300,
                    bytes_restored: -1,
                    ..Default::default()
                }),
            }),
            5 => Op::OperationStats(OperationStats {
                stats: Some(RepoStats::default()),
            }),
            6 => Op::OperationRunHook(OperationRunHook {
                name: text.into(),
                condition: 3,
                parent_op: i - 1,
                ..Default::default()
            }),
            7 => Op::OperationCheck(OperationCheck::default()),
            _ => Op::OperationRunCommand(OperationRunCommand {
                command: text.into(),
                output_size_bytes: 1 << 40,
                ..Default::default()
            }),
        };
        Operation {
            repo_id: "repo".into(),
            repo_guid: "guid".into(),
            plan_id: ["plan-a", "plan-b"][i as usize % 2].into(),
            instance_id: "inst".into(),
            status: (i % 8) as i32,
            unix_time_start_ms: 1_000 + (i * 7919) % 5000,
            unix_time_end_ms: -i,
            display_message: text.into(),
            op: Some(op),
            ..Default::default()
        }
    }

    async fn temp_log(n: i64) -> (tempfile::TempDir, OpLog) {
        let dir = tempfile::tempdir().unwrap();
        let log = OpLog::open(&dir.path().join("oplog.sqlite")).await.unwrap();
        let ops: Vec<Operation> = (0..n).map(varied).collect();
        for chunk in ops.chunks(2000) {
            log.add(chunk.to_vec()).await.unwrap();
        }
        (dir, log)
    }

    fn encode(ops: EncodedOperations, codec: Codec) -> Result<Bytes, ConnectError> {
        StoredOperationList(ops).encode(codec)
    }

    /// The fast paths must give exactly what encoding the decoded list gives
    /// (pbjson for JSON), on one thread and on several.
    #[tokio::test]
    async fn stored_lists_encode_exactly_like_decoded_ones() {
        let (_dir, log) = temp_log(9_000).await;
        let queries = [
            Query::all(),
            Query::all().plan_id("plan-a").last_n(1000),
            Query::all().plan_id("plan-b").last_n(3),
            Query::all().plan_id("none"),
        ];
        for q in queries {
            let decoded = {
                let mut ops = log.query(&q).await.unwrap();
                ops.sort_by_key(|o| o.id);
                OperationList { operations: ops }
            };
            let proto = encode(log.query_encoded(&q).await.unwrap(), Codec::Proto).unwrap();
            assert_eq!(
                proto,
                decoded.encode_to_vec(),
                "binary, {} ops",
                decoded.operations.len()
            );
            let json = encode(log.query_encoded(&q).await.unwrap(), Codec::Json).unwrap();
            let want = serde_json::to_vec(&decoded).unwrap();
            assert!(
                json == want,
                "JSON, {} ops: got {} bytes, want {} bytes",
                decoded.operations.len(),
                json.len(),
                want.len()
            );
        }
    }

    /// A damaged operation is an error naming it, in both codecs: never
    /// bytes a client would choke on. Damage at the top level (truncation)
    /// and inside a nested message (invalid UTF-8) are both caught.
    #[tokio::test]
    async fn a_damaged_operation_is_reported_not_sent() {
        let (dir, log) = temp_log(30).await;
        let good = log.get(7).await.unwrap().unwrap().encode_to_vec();
        let truncated = good[..good.len() - 3].to_vec();
        let mut nested = varied(1);
        nested.id = 7;
        if let Some(Op::OperationIndexSnapshot(s)) = &mut nested.op {
            s.snapshot.as_mut().unwrap().hostname = "\u{7f}".into();
        }
        let mut bad_utf8 = nested.encode_to_vec();
        let at = bad_utf8.iter().position(|&b| b == 0x7f).unwrap();
        bad_utf8[at] = 0xff;
        for blob in [truncated, bad_utf8] {
            let mut conn = sqlx::SqliteConnection::connect(&format!(
                "sqlite://{}",
                dir.path().join("oplog.sqlite").display()
            ))
            .await
            .unwrap();
            sqlx::query("UPDATE operations SET operation = ? WHERE id = 7")
                .bind(&blob)
                .execute(&mut conn)
                .await
                .unwrap();
            for codec in [Codec::Proto, Codec::Json] {
                let err =
                    encode(log.query_encoded(&Query::all()).await.unwrap(), codec).unwrap_err();
                assert_eq!(err.code, Code::Internal, "{codec:?}");
                assert!(
                    err.message.contains("operation 7"),
                    "{codec:?}: {}",
                    err.message
                );
            }
        }
    }

    #[test]
    fn well_formed_checks_every_top_level_field() {
        let op = varied(4).encode_to_vec();
        assert!(well_formed(&op));
        assert!(well_formed(&[]));
        // A prefix is either cut at a top-level field boundary (a valid,
        // shorter message) or cut through a field, which the top level shows.
        for cut in 1..op.len() {
            let prefix = &op[..cut];
            assert_eq!(
                well_formed(prefix),
                Operation::decode(prefix).is_ok(),
                "cut at {cut}"
            );
        }
        assert!(!well_formed(&[0x08]), "varint missing");
        assert!(!well_formed(&[0x0a, 0x05, 1]), "length past the end");
        assert!(!well_formed(&[0x00, 0x01]), "field 0");
        assert!(!well_formed(&[0x0f]), "wire type 7");
    }
}
