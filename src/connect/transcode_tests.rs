//! The transcoder against the ground truth it replaces: prost decode followed
//! by pbjson's `Serialize` through serde_json.

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, EnumDescriptorProto, EnumValueDescriptorProto, FieldDescriptorProto,
    FileDescriptorProto, FileDescriptorSet, MessageOptions, OneofDescriptorProto,
};

use super::*;
use crate::pb::types::{BytesValue, Int64List};
use crate::pb::v1::{
    BackupProgressEntry, BackupProgressError, BackupProgressStatusEntry, BackupProgressSummary,
    OpSelector, Operation, OperationBackup, OperationCheck, OperationForget,
    OperationIndexSnapshot, OperationPrune, OperationRestore, OperationRunCommand,
    OperationRunHook, OperationStats, RepoStats, ResticSnapshot, RestoreProgressEntry,
    RetentionPolicy, SnapshotSummary, backup_progress_entry, operation, retention_policy,
};

// ---------------------------------------------------------------------------
// Deterministic random values

/// splitmix64.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    fn string(&mut self) -> String {
        const PIECES: &[&str] = &[
            "",
            "plain",
            "with \"quotes\"",
            "back\\slash",
            "/srv/data",
            "tab\tnew\nline\rcr",
            "\u{0}\u{1}\u{1f}\u{7f}\u{8}\u{c}",
            "é漢字🎉",
            "\u{2028}\u{2029}",
            "</script>",
            "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ];
        match self.below(4) {
            0 => String::new(),
            1 => PIECES[self.below(PIECES.len() as u64) as usize].to_string(),
            2 => (0..self.below(12))
                .map(|_| PIECES[self.below(PIECES.len() as u64) as usize])
                .collect(),
            _ => (0..self.below(40))
                .filter_map(|_| char::from_u32(self.below(0x300) as u32))
                .collect(),
        }
    }

    fn i64(&mut self) -> i64 {
        match self.below(8) {
            0 => 0,
            1 => i64::MAX,
            2 => i64::MIN,
            3 => -(self.below(1000) as i64),
            4 => self.below(128) as i64,
            _ => self.next() as i64,
        }
    }

    fn i32(&mut self) -> i32 {
        match self.below(6) {
            0 => 0,
            1 => i32::MAX,
            2 => i32::MIN,
            3 => -(self.below(1000) as i32),
            _ => self.next() as i32,
        }
    }

    fn f64(&mut self) -> f64 {
        match self.below(14) {
            0 => 0.0,
            1 => -0.0,
            2 => 0.1,
            3 => 1e300,
            4 => -1e-300,
            5 => f64::NAN,
            6 => f64::INFINITY,
            7 => f64::NEG_INFINITY,
            8 => 5e-324,
            9 => 1.0,
            10 => 123456789.0,
            11 => (self.below(10_000) as f64) / 7.0,
            _ => f64::from_bits(self.next()),
        }
    }

    fn strings(&mut self) -> Vec<String> {
        (0..self.below(4)).map(|_| self.string()).collect()
    }
}

fn snapshot_summary(rng: &mut Rng) -> SnapshotSummary {
    SnapshotSummary {
        files_new: rng.i64(),
        files_changed: rng.i64(),
        files_unmodified: rng.i64(),
        dirs_new: rng.i64(),
        dirs_changed: rng.i64(),
        dirs_unmodified: rng.i64(),
        data_blobs: rng.i64(),
        tree_blobs: rng.i64(),
        data_added: rng.i64(),
        total_files_processed: rng.i64(),
        total_bytes_processed: rng.i64(),
        total_duration: rng.f64(),
    }
}

fn restic_snapshot(rng: &mut Rng) -> ResticSnapshot {
    if rng.chance(10) {
        return ResticSnapshot::default();
    }
    ResticSnapshot {
        id: rng.string(),
        unix_time_ms: rng.i64(),
        hostname: rng.string(),
        username: rng.string(),
        tree: rng.string(),
        parent: rng.string(),
        paths: rng.strings(),
        tags: rng.strings(),
        summary: match rng.below(3) {
            0 => None,
            1 => Some(SnapshotSummary::default()),
            _ => Some(snapshot_summary(rng)),
        },
    }
}

fn backup_progress_entry(rng: &mut Rng) -> BackupProgressEntry {
    use backup_progress_entry::Entry;
    let entry = match rng.below(5) {
        0 => None,
        1 => Some(Entry::Status(BackupProgressStatusEntry::default())),
        2 => Some(Entry::Summary(BackupProgressSummary::default())),
        3 => Some(Entry::Status(BackupProgressStatusEntry {
            percent_done: rng.f64(),
            total_files: rng.i64(),
            total_bytes: rng.i64(),
            files_done: rng.i64(),
            bytes_done: rng.i64(),
            current_file: rng.strings(),
        })),
        _ => Some(Entry::Summary(BackupProgressSummary {
            files_new: rng.i64(),
            files_changed: rng.i64(),
            files_unmodified: rng.i64(),
            dirs_new: rng.i64(),
            dirs_changed: rng.i64(),
            dirs_unmodified: rng.i64(),
            data_blobs: rng.i64(),
            tree_blobs: rng.i64(),
            data_added: rng.i64(),
            total_files_processed: rng.i64(),
            total_bytes_processed: rng.i64(),
            total_duration: rng.f64(),
            snapshot_id: rng.string(),
        })),
    };
    BackupProgressEntry { entry }
}

fn retention_policy(rng: &mut Rng) -> RetentionPolicy {
    use retention_policy::{Policy, TimeBucketedCounts};
    let policy = match rng.below(6) {
        0 => None,
        1 => Some(Policy::PolicyKeepLastN(rng.i32())),
        2 => Some(Policy::PolicyKeepAll(rng.chance(50))),
        3 => Some(Policy::PolicyTimeBucketed(TimeBucketedCounts::default())),
        4 => Some(Policy::PolicyKeepLastN(0)),
        _ => Some(Policy::PolicyTimeBucketed(TimeBucketedCounts {
            hourly: rng.i32(),
            daily: rng.i32(),
            weekly: rng.i32(),
            monthly: rng.i32(),
            yearly: rng.i32(),
            keep_last_n: rng.i32(),
        })),
    };
    RetentionPolicy { policy }
}

const HOOK_CONDITIONS: &[i32] = &[
    0, 1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 200, 201, 202, 300, 301, 302,
];

fn random_operation(rng: &mut Rng) -> Operation {
    use operation::Op;
    let sparse = rng.chance(30);
    let s = |rng: &mut Rng| {
        if sparse && rng.chance(60) {
            String::new()
        } else {
            rng.string()
        }
    };
    let op = match rng.below(11) {
        0 => None,
        1 => Some(Op::OperationBackup(if rng.chance(20) {
            OperationBackup::default()
        } else {
            OperationBackup {
                last_status: match rng.below(3) {
                    0 => None,
                    1 => Some(BackupProgressEntry::default()),
                    _ => Some(backup_progress_entry(rng)),
                },
                errors: (0..rng.below(3))
                    .map(|_| BackupProgressError {
                        item: rng.string(),
                        during: rng.string(),
                        message: rng.string(),
                    })
                    .collect(),
                dry_run: rng.chance(50),
            }
        })),
        2 => Some(Op::OperationIndexSnapshot(OperationIndexSnapshot {
            snapshot: rng.chance(80).then(|| restic_snapshot(rng)),
            forgot: rng.chance(50),
        })),
        3 => Some(Op::OperationForget(OperationForget {
            forget: (0..rng.below(4)).map(|_| restic_snapshot(rng)).collect(),
            policy: rng.chance(70).then(|| retention_policy(rng)),
        })),
        4 => Some(Op::OperationPrune(OperationPrune {
            output: rng.string(),
            output_logref: rng.string(),
        })),
        5 => Some(Op::OperationRestore(OperationRestore {
            path: rng.string(),
            target: rng.string(),
            last_status: match rng.below(3) {
                0 => None,
                1 => Some(RestoreProgressEntry::default()),
                _ => Some(RestoreProgressEntry {
                    message_type: rng.string(),
                    seconds_elapsed: rng.f64(),
                    total_bytes: rng.i64(),
                    bytes_restored: rng.i64(),
                    total_files: rng.i64(),
                    files_restored: rng.i64(),
                    percent_done: rng.f64(),
                }),
            },
        })),
        6 => Some(Op::OperationStats(OperationStats {
            stats: match rng.below(3) {
                0 => None,
                1 => Some(RepoStats::default()),
                _ => Some(RepoStats {
                    total_size: rng.i64(),
                    total_uncompressed_size: rng.i64(),
                    compression_ratio: rng.f64(),
                    total_blob_count: rng.i64(),
                    snapshot_count: rng.i64(),
                }),
            },
        })),
        7 => Some(Op::OperationRunHook(OperationRunHook {
            name: rng.string(),
            output_logref: rng.string(),
            condition: HOOK_CONDITIONS[rng.below(HOOK_CONDITIONS.len() as u64) as usize],
            parent_op: rng.i64(),
        })),
        8 => Some(Op::OperationCheck(OperationCheck {
            output: rng.string(),
            output_logref: rng.string(),
        })),
        9 => Some(Op::OperationRunCommand(OperationRunCommand {
            command: rng.string(),
            output_logref: rng.string(),
            output_size_bytes: rng.i64(),
        })),
        _ => Some(Op::OperationPrune(OperationPrune::default())),
    };
    Operation {
        id: rng.i64(),
        repo_id: s(rng),
        plan_id: s(rng),
        status: rng.below(8) as i32,
        unix_time_start_ms: rng.i64(),
        unix_time_end_ms: rng.i64(),
        display_message: s(rng),
        snapshot_id: s(rng),
        logref: s(rng),
        flow_id: rng.i64(),
        instance_id: s(rng),
        modno: rng.i64(),
        original_id: rng.i64(),
        original_flow_id: rng.i64(),
        repo_guid: s(rng),
        original_instance_keyid: s(rng),
        op,
    }
}

// ---------------------------------------------------------------------------
// Helpers

fn transcoder() -> &'static JsonTranscoder {
    JsonTranscoder::operation().expect("v1.Operation transcoder")
}

/// Also checks that `validate` accepts exactly what `write` accepts.
fn transcode(t: &JsonTranscoder, bytes: &[u8]) -> Result<String, TranscodeError> {
    let mut out = b"prefix ".to_vec();
    let written = t.write(bytes, &mut out);
    let validated = t.validate(bytes);
    assert_eq!(
        validated.is_ok(),
        written.is_ok(),
        "validate and write disagree on {bytes:02x?}: validate {validated:?}, write {written:?}"
    );
    written?;
    assert!(out.starts_with(b"prefix "), "write must append");
    Ok(String::from_utf8(out.split_off(7)).expect("transcoder wrote invalid UTF-8"))
}

/// What the server writes today for these bytes: None if prost rejects them,
/// Some(Err) if pbjson refuses the decoded value (unknown enum number).
fn reference<M>(bytes: &[u8]) -> Option<Result<String, String>>
where
    M: prost::Message + Default + serde::Serialize,
{
    let message = M::decode(bytes).ok()?;
    Some(serde_json::to_string(&message).map_err(|e| e.to_string()))
}

/// Transcoding (and validating) must accept exactly what prost accepts and,
/// where pbjson can serialize the result, write the same bytes.
fn assert_matches_reference<M>(t: &JsonTranscoder, bytes: &[u8]) -> bool
where
    M: prost::Message + Default + serde::Serialize,
{
    let ours = transcode(t, bytes);
    assert_eq!(
        t.validate(bytes).is_ok(),
        M::decode(bytes).is_ok(),
        "validate and prost disagree on {bytes:02x?}"
    );
    match reference::<M>(bytes) {
        None => {
            assert!(
                ours.is_err(),
                "prost rejects {bytes:02x?} but the transcoder wrote {ours:?}"
            );
            false
        }
        Some(Err(_)) => {
            assert!(
                ours.is_ok(),
                "prost accepts {bytes:02x?} but the transcoder fails: {ours:?}"
            );
            false
        }
        Some(Ok(expected)) => {
            match ours {
                Ok(ours) => assert_eq!(ours, expected, "bytes {bytes:02x?}"),
                Err(e) => panic!("transcoder fails on {bytes:02x?} ({e}); expected {expected}"),
            }
            true
        }
    }
}

// Raw wire building.

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_key(out: &mut Vec<u8>, number: u32, wire: u8) {
    put_varint(out, (u64::from(number) << 3) | u64::from(wire));
}

fn put_len(out: &mut Vec<u8>, number: u32, payload: &[u8]) {
    put_key(out, number, 2);
    put_varint(out, payload.len() as u64);
    out.extend_from_slice(payload);
}

fn put_varint_field(out: &mut Vec<u8>, number: u32, v: u64) {
    put_key(out, number, 0);
    put_varint(out, v);
}

/// One top-level field of an encoding: its number, wire type, whole bytes
/// (key included) and the payload of a length-delimited value.
struct Chunk {
    number: u32,
    wire: u8,
    raw: Vec<u8>,
    payload: Vec<u8>,
}

fn chunks(bytes: &[u8]) -> Vec<Chunk> {
    let mut reader = Reader::new(bytes);
    let mut out = Vec::new();
    while !reader.at_end() {
        let start = reader.pos;
        let (number, wire) = reader.key().expect("valid key");
        let mut payload = Vec::new();
        if wire == WIRE_LEN {
            payload = reader.len_delimited().expect("valid length").to_vec();
        } else {
            skip_field(&mut reader, number, wire, 100).expect("valid field");
        }
        out.push(Chunk {
            number,
            wire,
            raw: bytes[start..reader.pos].to_vec(),
            payload,
        });
    }
    out
}

/// Re-encodes a valid message the ways prost must still accept: fields
/// shuffled, singular messages split into several occurrences, scalars and
/// oneof members seen more than once, unknown fields (groups too) in between,
/// packed runs unpacked; recursively into nested messages.
fn scramble(t: &JsonTranscoder, message: u32, bytes: &[u8], rng: &mut Rng) -> Vec<u8> {
    let table = &t.messages[message as usize];
    let mut pieces: Vec<Vec<u8>> = Vec::new();
    for chunk in chunks(bytes) {
        let field = table.lookup(chunk.number).map(|p| &table.fields[p]);
        match field.map(|f| (f.kind, f.repeated)) {
            Some((Kind::Message(sub), repeated)) => {
                let inner = scramble(t, sub, &chunk.payload, rng);
                let parts = chunks(&inner);
                if !repeated && parts.len() >= 2 && rng.chance(40) {
                    // Split into two occurrences that prost merges.
                    let cut = 1 + rng.below(parts.len() as u64 - 1) as usize;
                    for half in [&parts[..cut], &parts[cut..]] {
                        let payload: Vec<u8> = half.iter().flat_map(|c| c.raw.clone()).collect();
                        let mut piece = Vec::new();
                        put_len(&mut piece, chunk.number, &payload);
                        pieces.push(piece);
                    }
                } else {
                    let mut piece = Vec::new();
                    put_len(&mut piece, chunk.number, &inner);
                    pieces.push(piece);
                }
            }
            Some((kind, true)) if kind.packable() && chunk.wire == WIRE_LEN && rng.chance(50) => {
                let mut packed = Reader::new(&chunk.payload);
                while !packed.at_end() {
                    let start = packed.pos;
                    read_scalar(kind, kind.wire_type(), &mut packed).expect("valid packed value");
                    let mut piece = Vec::new();
                    put_key(&mut piece, chunk.number, kind.wire_type());
                    piece.extend_from_slice(&chunk.payload[start..packed.pos]);
                    pieces.push(piece);
                }
            }
            Some((_, false)) if rng.chance(15) => {
                // The same value twice: last wins, or both merge.
                pieces.push(chunk.raw.clone());
                pieces.push(chunk.raw);
            }
            _ => pieces.push(chunk.raw),
        }
        if rng.chance(10) {
            pieces.push(unknown_field(rng));
        }
    }
    match rng.below(4) {
        0 => pieces.reverse(),
        1 => {
            for i in (1..pieces.len()).rev() {
                let j = rng.below(i as u64 + 1) as usize;
                pieces.swap(i, j);
            }
        }
        _ => {}
    }
    pieces.concat()
}

fn unknown_field(rng: &mut Rng) -> Vec<u8> {
    let number = [1004u32, 1017, 1050, 1099, 2000, 70_000][rng.below(6) as usize];
    let mut out = Vec::new();
    match rng.below(5) {
        0 => put_varint_field(&mut out, number, rng.next()),
        1 => {
            put_key(&mut out, number, 1);
            out.extend_from_slice(&rng.next().to_le_bytes());
        }
        2 => {
            put_key(&mut out, number, 5);
            out.extend_from_slice(&(rng.next() as u32).to_le_bytes());
        }
        3 => put_len(&mut out, number, b"\xff\xfe not utf8 and not parsed"),
        _ => {
            put_key(&mut out, number, 3);
            put_varint_field(&mut out, 1, 5);
            put_key(&mut out, 2, 3);
            put_len(&mut out, 7, b"inner");
            put_key(&mut out, 2, 4);
            put_key(&mut out, number, 4);
        }
    }
    out
}

// ---------------------------------------------------------------------------
// 1. Canonical encodings of random operations

#[test]
fn operation_transcoder_is_built() {
    assert!(JsonTranscoder::operation().is_some());
}

#[test]
fn random_operations_match_pbjson() {
    let t = transcoder();
    let mut rng = Rng(1);
    let mut variants = std::collections::BTreeSet::new();
    for _ in 0..5000 {
        let op = random_operation(&mut rng);
        variants.insert(format!("{:?}", op.op.as_ref().map(std::mem::discriminant)));
        let bytes = op.encode_to_vec();
        let expected = serde_json::to_string(&op).expect("pbjson serializes known enums");
        assert_eq!(transcode(t, &bytes).expect("valid encoding"), expected);
    }
    assert_eq!(
        variants.len(),
        10,
        "every oneof variant and none were generated"
    );
}

#[test]
fn empty_and_default_operations() {
    let t = transcoder();
    assert_eq!(transcode(t, b"").unwrap(), "{}");
    for op in [
        Operation::default(),
        Operation {
            op: Some(operation::Op::OperationBackup(OperationBackup::default())),
            ..Default::default()
        },
        Operation {
            op: Some(operation::Op::OperationForget(OperationForget {
                forget: vec![ResticSnapshot::default()],
                policy: Some(RetentionPolicy {
                    policy: Some(retention_policy::Policy::PolicyKeepLastN(0)),
                }),
            })),
            ..Default::default()
        },
    ] {
        let bytes = op.encode_to_vec();
        assert_eq!(
            transcode(t, &bytes).unwrap(),
            serde_json::to_string(&op).unwrap()
        );
    }
}

#[test]
fn proto3_optional_and_packed_types_match_pbjson() {
    let selector = JsonTranscoder::new(crate::pb::DESCRIPTOR_SET, "v1.OpSelector").unwrap();
    let list = JsonTranscoder::new(crate::pb::DESCRIPTOR_SET, "types.Int64List").unwrap();
    let bytes_value = JsonTranscoder::new(crate::pb::DESCRIPTOR_SET, "types.BytesValue").unwrap();
    let mut rng = Rng(2);
    for _ in 0..2000 {
        let opt_string = |rng: &mut Rng| match rng.below(3) {
            0 => None,
            1 => Some(String::new()),
            _ => Some(rng.string()),
        };
        let value = OpSelector {
            ids: (0..rng.below(5)).map(|_| rng.i64()).collect(),
            plan_id: opt_string(&mut rng),
            snapshot_id: opt_string(&mut rng),
            flow_id: match rng.below(3) {
                0 => None,
                1 => Some(0),
                _ => Some(rng.i64()),
            },
            instance_id: opt_string(&mut rng),
            repo_guid: opt_string(&mut rng),
            original_instance_keyid: opt_string(&mut rng),
            modno_gte: rng.chance(50).then(|| rng.i64()),
        };
        let encoded = value.encode_to_vec();
        assert_eq!(
            transcode(&selector, &encoded).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        assert_matches_reference::<OpSelector>(
            &selector,
            &scramble(&selector, 0, &encoded, &mut rng),
        );

        let value = Int64List {
            values: (0..rng.below(6)).map(|_| rng.i64()).collect(),
        };
        let encoded = value.encode_to_vec();
        assert_eq!(
            transcode(&list, &encoded).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        assert_matches_reference::<Int64List>(&list, &scramble(&list, 0, &encoded, &mut rng));

        let value = BytesValue {
            value: (0..rng.below(20)).map(|_| rng.next() as u8).collect(),
        };
        let encoded = value.encode_to_vec();
        assert_eq!(
            transcode(&bytes_value, &encoded).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
    }
}

#[test]
fn string_escaping_matches_serde_json() {
    let mut all = String::new();
    for c in (0u32..0x800).filter_map(char::from_u32) {
        let single = c.to_string();
        let mut out = Vec::new();
        write_json_string(&mut out, single.as_bytes());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&single).unwrap()
        );
        all.push(c);
    }
    // Each escaped byte at every offset of a longer string (the 8-byte skipping path).
    for c in (0u8..0x20).chain([b'"', b'\\', 0x7f, b'/']) {
        for at in 0..24 {
            let mut text = "abcdefghijklmnopqrstuvwxé".to_string().into_bytes();
            text[at] = c;
            let text = String::from_utf8(text).unwrap();
            let mut out = Vec::new();
            write_json_string(&mut out, text.as_bytes());
            assert_eq!(
                String::from_utf8(out).unwrap(),
                serde_json::to_string(&text).unwrap()
            );
        }
    }
    all.push_str("🎉\u{2028}\u{fffd}\"\\");
    let mut out = Vec::new();
    write_json_string(&mut out, all.as_bytes());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        serde_json::to_string(&all).unwrap()
    );
}

// ---------------------------------------------------------------------------
// 2. Non-canonical encodings

#[test]
fn scrambled_operations_match_prost_and_pbjson() {
    let t = transcoder();
    let mut rng = Rng(3);
    let mut compared = 0;
    for _ in 0..3000 {
        let op = random_operation(&mut rng);
        let bytes = scramble(t, 0, &op.encode_to_vec(), &mut rng);
        if assert_matches_reference::<Operation>(t, &bytes) {
            compared += 1;
        }
    }
    assert!(
        compared > 2900,
        "only {compared} scrambled encodings were comparable"
    );
}

#[test]
fn hand_built_non_canonical_encodings() {
    let t = transcoder();
    let mut cases: Vec<Vec<u8>> = Vec::new();

    // Fields in reverse order, and a scalar seen twice (last wins, even when it's the default).
    let mut b = Vec::new();
    put_len(&mut b, 2, b"repo");
    put_varint_field(&mut b, 1, 7);
    put_varint_field(&mut b, 1, 9);
    put_varint_field(&mut b, 4, 3);
    put_varint_field(&mut b, 4, 0);
    put_len(&mut b, 7, b"first");
    put_len(&mut b, 7, b"");
    cases.push(b);

    // A singular message split in two: its fields merge, repeated ones concatenate.
    let mut backup_a = Vec::new();
    put_len(
        &mut backup_a,
        4,
        &BackupProgressError {
            item: "a".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let mut backup_b = Vec::new();
    put_varint_field(&mut backup_b, 5, 1);
    put_len(
        &mut backup_b,
        4,
        &BackupProgressError {
            item: "b".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    let mut b = Vec::new();
    put_len(&mut b, 100, &backup_a);
    put_varint_field(&mut b, 1, 1);
    put_len(&mut b, 100, &backup_b);
    cases.push(b);

    // Oneof switching members: backup, prune, backup again (the later backups merge).
    let mut b = Vec::new();
    put_len(&mut b, 100, &backup_a);
    put_len(
        &mut b,
        103,
        &OperationPrune {
            output: "x".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put_len(&mut b, 100, &backup_b);
    put_len(&mut b, 100, &backup_a);
    cases.push(b);
    // ... and ending on a member seen only before.
    let mut b = Vec::new();
    put_len(
        &mut b,
        103,
        &OperationPrune {
            output: "x".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    put_len(&mut b, 100, &backup_a);
    put_len(
        &mut b,
        103,
        &OperationPrune {
            output_logref: "y".into(),
            ..Default::default()
        }
        .encode_to_vec(),
    );
    cases.push(b);

    // Nested oneof with scalar members: keep_last_n, then keep_all=false wins.
    let mut policy = Vec::new();
    put_varint_field(&mut policy, 10, 5);
    put_varint_field(&mut policy, 12, 0);
    let mut forget = Vec::new();
    put_len(&mut forget, 2, &policy);
    let mut b = Vec::new();
    put_len(&mut b, 102, &forget);
    cases.push(b);

    // Repeated strings not contiguous: paths, tags, paths.
    let mut snapshot = Vec::new();
    put_len(&mut snapshot, 7, b"/a");
    put_len(&mut snapshot, 8, b"t1");
    put_len(&mut snapshot, 7, b"/b");
    put_len(&mut snapshot, 1, b"id");
    let mut index = Vec::new();
    put_len(&mut index, 2, &snapshot);
    let mut b = Vec::new();
    put_len(&mut b, 101, &index);
    cases.push(b);

    // Unknown fields of every wire type, groups nested in groups.
    let mut b = Vec::new();
    put_varint_field(&mut b, 1, 3);
    put_key(&mut b, 40, 3);
    put_key(&mut b, 41, 3);
    put_varint_field(&mut b, 1, 1);
    put_key(&mut b, 41, 4);
    put_len(&mut b, 2, b"not the repo field: inside a group");
    put_key(&mut b, 40, 4);
    put_key(&mut b, 50, 1);
    b.extend_from_slice(&[1; 8]);
    put_key(&mut b, 51, 5);
    b.extend_from_slice(&[2; 4]);
    put_len(&mut b, 52, b"\xff");
    put_len(&mut b, 2, b"repo");
    cases.push(b);

    // A 10-byte varint for an int32 enum (truncated like prost) and int64 -1.
    let mut b = Vec::new();
    put_varint_field(&mut b, 4, (1u64 << 32) | 3);
    put_varint_field(&mut b, 5, u64::MAX);
    cases.push(b);

    // Values prost never writes but must read: an explicit -0.0 double (pbjson
    // omits it, as it compares with 0.0), NaN, and an int32 whose 10-byte varint
    // truncates to 0 (omitted) or to 1.
    let mut stats = Vec::new();
    put_key(&mut stats, 3, 1);
    stats.extend_from_slice(&(-0.0f64).to_bits().to_le_bytes());
    let mut restore_status = Vec::new();
    put_key(&mut restore_status, 2, 1);
    restore_status.extend_from_slice(&f64::NAN.to_bits().to_le_bytes());
    put_key(&mut restore_status, 7, 1);
    restore_status.extend_from_slice(&(-0.0f64).to_bits().to_le_bytes());
    let mut counts = Vec::new();
    put_varint_field(&mut counts, 1, 1 << 32);
    put_varint_field(&mut counts, 2, (1 << 32) + 1);
    let mut policy = Vec::new();
    put_len(&mut policy, 11, &counts);
    let mut forget = Vec::new();
    put_len(&mut forget, 2, &policy);
    for (number, payload) in [
        (105u32, {
            let mut o = Vec::new();
            put_len(&mut o, 1, &stats);
            o
        }),
        (104, {
            let mut o = Vec::new();
            put_len(&mut o, 3, &restore_status);
            o
        }),
        (102, forget),
    ] {
        let mut b = Vec::new();
        put_len(&mut b, number, &payload);
        cases.push(b);
    }

    for (i, bytes) in cases.iter().enumerate() {
        assert!(
            assert_matches_reference::<Operation>(t, bytes),
            "case {i} should be comparable"
        );
    }

    // Packed and unpacked runs of one repeated int64, mixed, with an empty packed run.
    let list = JsonTranscoder::new(crate::pb::DESCRIPTOR_SET, "types.Int64List").unwrap();
    let mut packed = Vec::new();
    for v in [1u64, u64::MAX, 300] {
        put_varint(&mut packed, v);
    }
    let mut b = Vec::new();
    put_len(&mut b, 1, &packed);
    put_varint_field(&mut b, 1, 5);
    put_len(&mut b, 1, b"");
    put_varint_field(&mut b, 99, 5);
    put_len(&mut b, 1, &packed);
    assert!(assert_matches_reference::<Int64List>(&list, &b));
    assert_eq!(
        transcode(&list, &b).unwrap(),
        r#"{"values":["1","-1","300","5","1","-1","300"]}"#
    );
}

// ---------------------------------------------------------------------------
// 3. Malformed input

#[test]
fn every_truncation_is_handled_like_prost() {
    let t = transcoder();
    let mut rng = Rng(4);
    let mut errors = 0;
    for _ in 0..60 {
        let op = random_operation(&mut rng);
        let bytes = op.encode_to_vec();
        for len in 0..bytes.len() {
            let prefix = &bytes[..len];
            assert_matches_reference::<Operation>(t, prefix);
            if Operation::decode(prefix).is_err() {
                errors += 1;
            }
        }
    }
    assert!(
        errors > 1000,
        "truncations should mostly be errors ({errors})"
    );
}

#[test]
fn random_mutations_are_handled_like_prost() {
    let t = transcoder();
    let mut rng = Rng(5);
    let (mut accepted, mut rejected) = (0, 0);
    for _ in 0..20_000 {
        let op = random_operation(&mut rng);
        let mut bytes = op.encode_to_vec();
        if rng.chance(30) {
            bytes = scramble(t, 0, &bytes, &mut rng);
        }
        if bytes.is_empty() {
            continue;
        }
        for _ in 0..1 + rng.below(3) {
            let i = rng.below(bytes.len() as u64) as usize;
            match rng.below(4) {
                0 => bytes[i] = rng.next() as u8,
                1 => bytes[i] ^= 1 << rng.below(8),
                2 => {
                    bytes.remove(i);
                    if bytes.is_empty() {
                        break;
                    }
                }
                _ => bytes.insert(i, rng.next() as u8),
            }
        }
        if Operation::decode(&bytes[..]).is_ok() {
            accepted += 1;
        } else {
            rejected += 1;
        }
        assert_matches_reference::<Operation>(t, &bytes);
    }
    assert!(
        accepted > 1000 && rejected > 1000,
        "accepted {accepted}, rejected {rejected}"
    );
}

#[test]
fn invalid_utf8_and_wrong_wire_types_are_errors() {
    let t = transcoder();
    let mut b = Vec::new();
    put_len(&mut b, 2, b"ok\xc3");
    let err = transcode(t, &b).unwrap_err();
    assert!(Operation::decode(&b[..]).is_err());
    assert_eq!(
        err.to_string(),
        "field 2 of v1.Operation: string is not valid UTF-8"
    );

    // Invalid UTF-8 in a string that a later occurrence replaces is still an error (as in prost).
    let mut b = Vec::new();
    put_len(&mut b, 2, b"\xff");
    put_len(&mut b, 2, b"fine");
    assert!(Operation::decode(&b[..]).is_err());
    assert!(transcode(t, &b).is_err());

    // id (int64) sent as a length-delimited value.
    let mut b = Vec::new();
    put_len(&mut b, 1, b"1");
    assert!(Operation::decode(&b[..]).is_err());
    assert!(matches!(
        transcode(t, &b).unwrap_err(),
        TranscodeError::Field {
            field: 1,
            problem: WireProblem::WrongWireType {
                expected: 0,
                found: 2
            },
            ..
        }
    ));

    // Truncated varint and a length past the end.
    assert!(transcode(t, &[0x08, 0x80]).is_err());
    assert!(transcode(t, &[0x12, 0x05, b'a']).is_err());
    // End group without a start, field number 0, wire type 7.
    assert!(transcode(t, &[0x0c]).is_err());
    assert!(transcode(t, &[0x00, 0x01]).is_err());
    assert!(transcode(t, &[0x0f]).is_err());
}

#[test]
fn validate_checks_every_occurrence_like_prost() {
    let t = transcoder();
    let bad_prune = {
        let mut prune = Vec::new();
        put_len(&mut prune, 1, b"\xc3(");
        prune
    };
    let good_prune = OperationPrune {
        output: "x".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();

    // A oneof member replaced by another member still had to decode.
    let mut b = Vec::new();
    put_len(&mut b, 103, &bad_prune);
    put_len(&mut b, 100, &OperationBackup::default().encode_to_vec());
    cases.push(("replaced oneof member", b));
    // A singular message seen twice (the occurrences merge): both must be valid.
    let mut b = Vec::new();
    put_len(&mut b, 103, &bad_prune);
    put_len(&mut b, 103, &good_prune);
    cases.push(("first of two occurrences", b));
    let mut b = Vec::new();
    put_len(&mut b, 103, &good_prune);
    put_len(&mut b, 103, &bad_prune);
    cases.push(("second of two occurrences", b));
    // A nested message whose length runs past its parent.
    let mut b = Vec::new();
    put_key(&mut b, 103, 2);
    put_varint(&mut b, 9);
    b.extend_from_slice(&good_prune);
    cases.push(("nested length past the end", b));
    // A nested message sent with the wrong wire type.
    let mut b = Vec::new();
    put_varint_field(&mut b, 103, 1);
    cases.push(("message as varint", b));

    for (what, bytes) in &cases {
        assert!(
            Operation::decode(&bytes[..]).is_err(),
            "{what}: prost accepts"
        );
        let validated = t.validate(bytes).expect_err(what);
        let written = transcode(t, bytes).expect_err(what);
        // Both name the innermost message and field with the same problem.
        assert_eq!(validated.to_string(), written.to_string(), "{what}");
    }
    assert_eq!(
        t.validate(&cases[0].1).unwrap_err().to_string(),
        "field 1 of v1.OperationPrune: string is not valid UTF-8"
    );

    // A packed run whose last value is cut off, in a message type with one.
    let list = JsonTranscoder::new(crate::pb::DESCRIPTOR_SET, "types.Int64List").unwrap();
    let mut b = Vec::new();
    put_len(&mut b, 1, &[0x01, 0x80]);
    assert!(Int64List::decode(&b[..]).is_err());
    assert!(list.validate(&b).is_err());
    let mut b = Vec::new();
    put_len(&mut b, 1, &[0x01, 0x80, 0x01]);
    assert!(Int64List::decode(&b[..]).is_ok());
    assert!(list.validate(&b).is_ok());

    // The operations GetOperations typically sends are all valid.
    for op in typical_operations(500) {
        let bytes = op.encode_to_vec();
        assert!(t.validate(&bytes).is_ok(), "{op:?}");
    }
}

#[test]
fn utf8_check_agrees_with_std_at_every_offset() {
    let inserts: [&[u8]; 6] = [
        b"\xff",
        b"\xc3",
        b"\xc3\xa9",
        b"\xe2\x82\xac",
        b"\xed\xa0\x80",
        b"\x7f",
    ];
    for len in 0..24 {
        let plain = vec![b'a'; len];
        assert!(is_utf8(&plain));
        for at in 0..=len {
            for insert in inserts {
                let mut bytes = plain.clone();
                bytes.splice(at..at, insert.iter().copied());
                assert_eq!(
                    is_utf8(&bytes),
                    std::str::from_utf8(&bytes).is_ok(),
                    "{bytes:02x?}"
                );
            }
        }
    }
}

#[test]
fn nesting_depth_is_bounded_like_prost() {
    let t = transcoder();
    // Unknown groups nested in each other: prost allows 100 levels.
    for depth in [1usize, 50, 99, 100, 101, 150, 10_000] {
        let mut b = Vec::new();
        for _ in 0..depth {
            put_key(&mut b, 60, 3);
        }
        for _ in 0..depth {
            put_key(&mut b, 60, 4);
        }
        assert_matches_reference::<Operation>(t, &b);
    }

    // A recursive message type, 98..103 deep.
    let set = FileDescriptorSet {
        file: vec![file(
            "node.proto",
            vec![message(
                "Node",
                vec![
                    field("child", 1, Type::Message, Label::Optional, ".t.Node"),
                    field("value", 2, Type::Int32, Label::Optional, ""),
                ],
            )],
        )],
    };
    let node = JsonTranscoder::new(&set.encode_to_vec(), "t.Node").unwrap();
    for depth in 95..105 {
        let mut b = Vec::new();
        put_varint_field(&mut b, 2, 1);
        for _ in 0..depth {
            let mut outer = Vec::new();
            put_len(&mut outer, 1, &b);
            b = outer;
        }
        let expected = format!(
            "{}{{\"value\":1}}{}",
            "{\"child\":".repeat(depth),
            "}".repeat(depth)
        );
        let prost_ok = Node::decode(&b[..]).is_ok();
        assert_eq!(node.validate(&b).is_ok(), prost_ok, "depth {depth}");
        match transcode(&node, &b) {
            Ok(json) => {
                assert!(prost_ok, "depth {depth}: prost rejects, transcoder accepts");
                assert_eq!(json, expected);
            }
            Err(e) => {
                assert!(
                    !prost_ok,
                    "depth {depth}: prost accepts, transcoder fails: {e}"
                );
                assert!(e.to_string().contains("deeper than 100"), "{e}");
            }
        }
    }
}

/// The prost view of the hand-built `t.Node`.
#[derive(Clone, PartialEq, prost::Message)]
struct Node {
    #[prost(message, optional, boxed, tag = "1")]
    child: Option<Box<Node>>,
    #[prost(int32, tag = "2")]
    value: i32,
}

// ---------------------------------------------------------------------------
// 4. Enums, every scalar type, unsupported schemas

#[test]
fn unknown_enum_numbers_are_written_as_numbers() {
    let t = transcoder();
    let op = Operation {
        id: 5,
        status: 99,
        op: Some(operation::Op::OperationRunHook(OperationRunHook {
            condition: -1,
            ..Default::default()
        })),
        ..Default::default()
    };
    // pbjson refuses this value outright; the transcoder writes the numbers.
    assert!(serde_json::to_string(&op).is_err());
    assert_eq!(
        transcode(t, &op.encode_to_vec()).unwrap(),
        r#"{"id":"5","status":99,"operationRunHook":{"condition":-1}}"#
    );
}

/// Every scalar type, repeated (packed) ones, a proto3 optional and an enum.
#[derive(Clone, PartialEq, prost::Message)]
struct Scalars {
    #[prost(double, tag = "1")]
    d: f64,
    #[prost(float, tag = "2")]
    f: f32,
    #[prost(int64, tag = "3")]
    i64: i64,
    #[prost(uint64, tag = "4")]
    u64: u64,
    #[prost(int32, tag = "5")]
    i32: i32,
    #[prost(fixed64, tag = "6")]
    fx64: u64,
    #[prost(fixed32, tag = "7")]
    fx32: u32,
    #[prost(bool, tag = "8")]
    b: bool,
    #[prost(string, tag = "9")]
    s: String,
    #[prost(bytes = "vec", tag = "10")]
    by: Vec<u8>,
    #[prost(uint32, tag = "13")]
    u32: u32,
    #[prost(sfixed32, tag = "15")]
    sf32: i32,
    #[prost(sfixed64, tag = "16")]
    sf64: i64,
    #[prost(sint32, tag = "17")]
    si32: i32,
    #[prost(sint64, tag = "18")]
    si64: i64,
    #[prost(float, repeated, tag = "20")]
    floats: Vec<f32>,
    #[prost(sint32, repeated, tag = "21")]
    sints: Vec<i32>,
    #[prost(bool, repeated, tag = "22")]
    bools: Vec<bool>,
    #[prost(int32, optional, tag = "23")]
    opt: Option<i32>,
    #[prost(int32, tag = "24")]
    color: i32,
    #[prost(bytes = "vec", repeated, tag = "25")]
    blobs: Vec<Vec<u8>>,
}

fn scalars_descriptor() -> FileDescriptorSet {
    let mut fields = vec![
        field("d", 1, Type::Double, Label::Optional, ""),
        field("f", 2, Type::Float, Label::Optional, ""),
        field("i64", 3, Type::Int64, Label::Optional, ""),
        field("u64", 4, Type::Uint64, Label::Optional, ""),
        field("i32", 5, Type::Int32, Label::Optional, ""),
        field("fx64", 6, Type::Fixed64, Label::Optional, ""),
        field("fx32", 7, Type::Fixed32, Label::Optional, ""),
        field("b", 8, Type::Bool, Label::Optional, ""),
        field("s", 9, Type::String, Label::Optional, ""),
        field("by", 10, Type::Bytes, Label::Optional, ""),
        field("u32", 13, Type::Uint32, Label::Optional, ""),
        field("sf32", 15, Type::Sfixed32, Label::Optional, ""),
        field("sf64", 16, Type::Sfixed64, Label::Optional, ""),
        field("si32", 17, Type::Sint32, Label::Optional, ""),
        field("si64", 18, Type::Sint64, Label::Optional, ""),
        field("floats", 20, Type::Float, Label::Repeated, ""),
        field("sints", 21, Type::Sint32, Label::Repeated, ""),
        field("bools", 22, Type::Bool, Label::Repeated, ""),
        field("opt", 23, Type::Int32, Label::Optional, ""),
        field("color", 24, Type::Enum, Label::Optional, ".t.Color"),
        field("blobs", 25, Type::Bytes, Label::Repeated, ""),
    ];
    // No json_name on one field: the default (protoc's) is derived.
    fields[4].json_name = None;
    fields[18].oneof_index = Some(0);
    fields[18].proto3_optional = Some(true);
    let mut scalars = message("Scalars", fields);
    scalars.oneof_decl = vec![OneofDescriptorProto {
        name: Some("_opt".into()),
        options: None,
    }];
    let mut file = file("scalars.proto", vec![scalars]);
    file.enum_type = vec![EnumDescriptorProto {
        name: Some("Color".into()),
        value: [("COLOR_NONE", 0), ("RED", 1), ("BLUE", -2), ("BIG", 5000)]
            .into_iter()
            .map(|(name, number)| EnumValueDescriptorProto {
                name: Some(name.into()),
                number: Some(number),
                options: None,
            })
            .collect(),
        ..Default::default()
    }];
    FileDescriptorSet { file: vec![file] }
}

fn js<T: serde::Serialize + ?Sized>(value: &T) -> String {
    serde_json::to_string(value).unwrap()
}

/// The proto3 JSON pbjson would write for a `t.Scalars`, spelled out by hand.
fn scalars_json(v: &Scalars) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut add = |key: &str, present: bool, value: String| {
        if present {
            parts.push(format!("\"{key}\":{value}"));
        }
    };
    let b64 = |b: &[u8]| {
        format!(
            "\"{}\"",
            base64::engine::general_purpose::STANDARD.encode(b)
        )
    };
    add("d", v.d != 0.0, js(&v.d));
    add("f", v.f != 0.0, js(&v.f));
    add("i64", v.i64 != 0, format!("\"{}\"", v.i64));
    add("u64", v.u64 != 0, format!("\"{}\"", v.u64));
    add("i32", v.i32 != 0, v.i32.to_string());
    add("fx64", v.fx64 != 0, format!("\"{}\"", v.fx64));
    add("fx32", v.fx32 != 0, v.fx32.to_string());
    add("b", v.b, "true".into());
    add("s", !v.s.is_empty(), js(&v.s));
    add("by", !v.by.is_empty(), b64(&v.by));
    add("u32", v.u32 != 0, v.u32.to_string());
    add("sf32", v.sf32 != 0, v.sf32.to_string());
    add("sf64", v.sf64 != 0, format!("\"{}\"", v.sf64));
    add("si32", v.si32 != 0, v.si32.to_string());
    add("si64", v.si64 != 0, format!("\"{}\"", v.si64));
    add("floats", !v.floats.is_empty(), js(&v.floats));
    add("sints", !v.sints.is_empty(), js(&v.sints));
    add("bools", !v.bools.is_empty(), js(&v.bools));
    add(
        "opt",
        v.opt.is_some(),
        v.opt.unwrap_or_default().to_string(),
    );
    let color = match v.color {
        1 => "\"RED\"".to_string(),
        -2 => "\"BLUE\"".to_string(),
        5000 => "\"BIG\"".to_string(),
        n => n.to_string(),
    };
    add("color", v.color != 0, color);
    let blobs: Vec<String> = v.blobs.iter().map(|b| b64(b)).collect();
    add(
        "blobs",
        !v.blobs.is_empty(),
        format!("[{}]", blobs.join(",")),
    );
    format!("{{{}}}", parts.join(","))
}

#[test]
fn every_scalar_type() {
    let t = JsonTranscoder::new(&scalars_descriptor().encode_to_vec(), "t.Scalars").unwrap();
    let mut rng = Rng(6);
    for round in 0..1000 {
        let v = if round == 0 {
            Scalars::default()
        } else {
            Scalars {
                d: rng.f64(),
                f: rng.f64() as f32,
                i64: rng.i64(),
                u64: rng.next() >> rng.below(64),
                i32: rng.i32(),
                fx64: rng.next(),
                fx32: rng.next() as u32,
                b: rng.chance(50),
                s: rng.string(),
                by: (0..rng.below(7)).map(|_| rng.next() as u8).collect(),
                u32: rng.next() as u32 >> rng.below(32),
                sf32: rng.i32(),
                sf64: rng.i64(),
                si32: rng.i32(),
                si64: rng.i64(),
                floats: (0..rng.below(3)).map(|_| rng.f64() as f32).collect(),
                sints: (0..rng.below(3)).map(|_| rng.i32()).collect(),
                bools: (0..rng.below(3)).map(|_| rng.chance(50)).collect(),
                opt: match rng.below(3) {
                    0 => None,
                    1 => Some(0),
                    _ => Some(rng.i32()),
                },
                color: [0, 1, -2, 5000, 7][rng.below(5) as usize],
                blobs: (0..rng.below(3))
                    .map(|_| vec![rng.next() as u8; rng.below(4) as usize])
                    .collect(),
            }
        };
        let encoded = v.encode_to_vec();
        assert_eq!(transcode(&t, &encoded).unwrap(), scalars_json(&v), "{v:?}");
        // Non-canonical encodings: the JSON of what prost decodes from them.
        let scrambled = scramble(&t, 0, &encoded, &mut rng);
        let decoded = Scalars::decode(&scrambled[..]).expect("scrambled encodings stay valid");
        assert_eq!(
            transcode(&t, &scrambled).unwrap(),
            scalars_json(&decoded),
            "{decoded:?}"
        );
    }
}

#[test]
fn unsupported_schemas_are_refused_with_the_reason() {
    // A map field.
    let mut entry = message(
        "LabelsEntry",
        vec![
            field("key", 1, Type::String, Label::Optional, ""),
            field("value", 2, Type::Int32, Label::Optional, ""),
        ],
    );
    entry.options = Some(MessageOptions {
        map_entry: Some(true),
        ..Default::default()
    });
    let mut holder = message(
        "Holder",
        vec![field(
            "labels",
            1,
            Type::Message,
            Label::Repeated,
            ".t.Holder.LabelsEntry",
        )],
    );
    holder.nested_type = vec![entry];
    let mut outer = message(
        "Outer",
        vec![field(
            "holder",
            3,
            Type::Message,
            Label::Optional,
            ".t.Holder",
        )],
    );
    outer
        .field
        .push(field("name", 1, Type::String, Label::Optional, ""));
    let set = FileDescriptorSet {
        file: vec![file("map.proto", vec![outer, holder])],
    };
    let err = JsonTranscoder::new(&set.encode_to_vec(), "t.Outer").unwrap_err();
    assert!(
        err.contains("t.Holder.labels") && err.contains("map"),
        "{err}"
    );

    // A well-known type with a special JSON form.
    let mut with_timestamp = message(
        "Event",
        vec![field(
            "at",
            1,
            Type::Message,
            Label::Optional,
            ".google.protobuf.Timestamp",
        )],
    );
    with_timestamp.name = Some("Event".into());
    let mut timestamp_file = file(
        "google/protobuf/timestamp.proto",
        vec![message("Timestamp", vec![])],
    );
    timestamp_file.package = Some("google.protobuf".into());
    let set = FileDescriptorSet {
        file: vec![timestamp_file, file("event.proto", vec![with_timestamp])],
    };
    let err = JsonTranscoder::new(&set.encode_to_vec(), "t.Event").unwrap_err();
    assert!(err.contains("google.protobuf.Timestamp"), "{err}");

    // proto2, an unknown message, garbage.
    let mut proto2 = file("p2.proto", vec![message("Old", vec![])]);
    proto2.syntax = None;
    let err = JsonTranscoder::new(
        &FileDescriptorSet { file: vec![proto2] }.encode_to_vec(),
        "t.Old",
    )
    .unwrap_err();
    assert!(err.contains("proto3"), "{err}");
    let err = JsonTranscoder::new(crate::pb::DESCRIPTOR_SET, "v1.NoSuchThing").unwrap_err();
    assert!(err.contains("v1.NoSuchThing"), "{err}");
    assert!(JsonTranscoder::new(b"\xff\xff", "v1.Operation").is_err());
}

fn field(name: &str, number: i32, ty: Type, label: Label, type_name: &str) -> FieldDescriptorProto {
    FieldDescriptorProto {
        name: Some(name.into()),
        number: Some(number),
        label: Some(label as i32),
        r#type: Some(ty as i32),
        type_name: (!type_name.is_empty()).then(|| type_name.into()),
        json_name: Some(lower_camel(name)),
        ..Default::default()
    }
}

fn message(name: &str, field: Vec<FieldDescriptorProto>) -> DescriptorProto {
    DescriptorProto {
        name: Some(name.into()),
        field,
        ..Default::default()
    }
}

fn file(name: &str, message_type: Vec<DescriptorProto>) -> FileDescriptorProto {
    FileDescriptorProto {
        name: Some(name.into()),
        package: Some("t".into()),
        syntax: Some("proto3".into()),
        message_type,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// Speed (run with: cargo test --release --lib transcode -- --ignored --nocapture)

/// Operations shaped like a real log: mostly backups with a summary and their
/// index-snapshot records, some hooks.
fn typical_operations(count: usize) -> Vec<Operation> {
    use operation::Op;
    let mut rng = Rng(7);
    let hex = |rng: &mut Rng| {
        format!(
            "{:016x}{:016x}{:016x}{:016x}",
            rng.next(),
            rng.next(),
            rng.next(),
            rng.next()
        )
    };
    (0..count)
        .map(|i| {
            let start = 1_700_000_000_000 + i as i64 * 216_000;
            let plan = format!("plan-{:02}-photos", i % 20);
            let mut op = Operation {
                id: i as i64 + 1,
                repo_id: "b2-offsite".into(),
                plan_id: plan.clone(),
                status: 3,
                unix_time_start_ms: start,
                unix_time_end_ms: start + 45_000,
                instance_id: "backrest-nas".into(),
                repo_guid: hex(&mut rng),
                modno: i as i64 + 1,
                ..Default::default()
            };
            match i % 10 {
                0..=4 => {
                    op.snapshot_id = hex(&mut rng);
                    op.logref = format!("op-{i}-{:08x}", rng.next() as u32);
                    op.op = Some(Op::OperationBackup(OperationBackup {
                        last_status: Some(BackupProgressEntry {
                            entry: Some(backup_progress_entry::Entry::Summary(
                                BackupProgressSummary {
                                    files_new: 12,
                                    files_changed: 340,
                                    files_unmodified: 401_233,
                                    dirs_new: 2,
                                    dirs_changed: 51,
                                    dirs_unmodified: 22_011,
                                    data_blobs: 1_203,
                                    tree_blobs: 77,
                                    data_added: 2_210_555_123,
                                    total_files_processed: 401_585,
                                    total_bytes_processed: 612_334_991_233,
                                    total_duration: 512.5,
                                    snapshot_id: op.snapshot_id.clone(),
                                },
                            )),
                        }),
                        errors: vec![],
                        dry_run: false,
                    }));
                }
                5..=8 => {
                    op.snapshot_id = hex(&mut rng);
                    op.flow_id = i as i64;
                    op.op = Some(Op::OperationIndexSnapshot(OperationIndexSnapshot {
                        snapshot: Some(ResticSnapshot {
                            id: op.snapshot_id.clone(),
                            unix_time_ms: start,
                            hostname: "nas.lan".into(),
                            username: "root".into(),
                            tree: hex(&mut rng),
                            parent: hex(&mut rng),
                            paths: vec![format!("/srv/{plan}"), "/home/alice".into()],
                            tags: vec![format!("plan:{plan}"), "created-by:backrest-nas".into()],
                            summary: Some(SnapshotSummary {
                                files_new: 12,
                                files_changed: 340,
                                files_unmodified: 401_233,
                                total_duration: 512.123,
                                ..Default::default()
                            }),
                        }),
                        forgot: false,
                    }));
                }
                _ => {
                    op.flow_id = i as i64 - 1;
                    op.op = Some(Op::OperationRunHook(OperationRunHook {
                        name: "notify-discord".into(),
                        output_logref: format!("hook-{i}-{:08x}", rng.next() as u32),
                        condition: 3,
                        parent_op: i as i64 - 1,
                    }));
                }
            }
            op
        })
        .collect()
}

#[test]
#[ignore = "speed measurement; run in a release build"]
fn speed_10k_operations() {
    let t = transcoder();
    let ops = typical_operations(10_000);
    let blobs: Vec<Vec<u8>> = ops.iter().map(|op| op.encode_to_vec()).collect();
    let input: usize = blobs.iter().map(Vec::len).sum();
    let mut out = Vec::new();
    let mut best = std::time::Duration::MAX;
    for _ in 0..30 {
        out.clear();
        let start = std::time::Instant::now();
        for blob in &blobs {
            t.write(blob, &mut out).unwrap();
            out.push(b',');
        }
        best = best.min(start.elapsed());
    }
    let mut best_validate = std::time::Duration::MAX;
    for _ in 0..30 {
        let start = std::time::Instant::now();
        for blob in &blobs {
            t.validate(std::hint::black_box(blob)).unwrap();
        }
        best_validate = best_validate.min(start.elapsed());
    }
    let mut reference = Vec::new();
    let mut best_pbjson = std::time::Duration::MAX;
    for _ in 0..5 {
        reference.clear();
        let start = std::time::Instant::now();
        for blob in &blobs {
            let op = Operation::decode(&blob[..]).unwrap();
            serde_json::to_writer(&mut reference, &op).unwrap();
            reference.push(b',');
        }
        best_pbjson = best_pbjson.min(start.elapsed());
    }
    assert_eq!(out, reference);
    let mb = out.len() as f64 / 1e6;
    println!(
        "transcode 10k operations: {:.2} MB protobuf -> {:.2} MB JSON in {:.2} ms ({:.0} MB/s JSON out); prost+pbjson: {:.2} ms; validate only: {:.2} ms ({:.0} MB/s protobuf in)",
        input as f64 / 1e6,
        mb,
        best.as_secs_f64() * 1e3,
        mb / best.as_secs_f64(),
        best_pbjson.as_secs_f64() * 1e3,
        best_validate.as_secs_f64() * 1e3,
        input as f64 / 1e6 / best_validate.as_secs_f64(),
    );
}
