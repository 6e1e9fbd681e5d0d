//! Binary protobuf → proto3 JSON, straight from the wire bytes.
//!
//! GetOperations answers with thousands of stored operations. Decoding each
//! blob into prost structs and serializing them again with pbjson spends most
//! of its time allocating and dropping strings; this module instead walks the
//! encoded bytes once and writes JSON as it goes, driven by tables built from
//! the descriptor set.
//!
//! The output is byte-for-byte what `serde_json::to_vec(&prost_decode(bytes))`
//! gives with the pbjson-generated `Serialize` impls: the same key names and
//! order (declaration order, then oneof members by oneof), the same omission
//! of implicit-presence defaults, 64-bit integers as strings, floats and
//! string escapes as serde_json writes them, bytes as padded standard base64.
//! Wire semantics follow prost: last scalar wins, repeated occurrences of a
//! singular message merge, packed and unpacked repeated values are both
//! accepted, unknown fields (groups included) are skipped, and everything
//! prost rejects (truncation, bad UTF-8, wrong wire types, nesting deeper
//! than 100) is an error here too.
//!
//! One deliberate difference: an enum number with no named value makes pbjson
//! fail the whole serialization; here it is written as a JSON number, which
//! the proto3 JSON mapping allows.
//!
//! Two paths: messages as prost writes them (fields in output order, each
//! singular field at most once, repeated occurrences adjacent) stream directly
//! into the output; anything else is detected on the way, the partial output
//! is dropped and the message is redone by a path that first gathers every
//! occurrence per field.
//!
//! `validate` is the same acceptance check without the JSON: one walk that
//! checks every occurrence where it stands, for callers that send the stored
//! bytes on as they are.

use std::collections::HashMap;
use std::sync::OnceLock;

use base64::Engine as _;
use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};

/// Nesting depth prost accepts (its `RECURSION_LIMIT`); deeper input is an error.
const RECURSION_LIMIT: u32 = 100;
/// Field numbers below this are looked up in a direct table.
const DENSE_FIELD_LIMIT: u32 = 512;
/// Enum numbers in `0..DENSE_ENUM_LIMIT` are looked up in a direct table.
const DENSE_ENUM_LIMIT: i32 = 1024;
const NO_ONEOF: u16 = u16::MAX;

const WIRE_VARINT: u8 = 0;
const WIRE_FIXED64: u8 = 1;
const WIRE_LEN: u8 = 2;
const WIRE_START_GROUP: u8 = 3;
const WIRE_END_GROUP: u8 = 4;
const WIRE_FIXED32: u8 = 5;

/// What is wrong with an encoding, independent of where it was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireProblem {
    #[error("truncated varint")]
    TruncatedVarint,
    #[error("varint longer than 10 bytes or above 2^64")]
    OverlongVarint,
    #[error("value runs past the end of its message")]
    Truncated,
    #[error("field key is not a valid tag")]
    BadKey,
    #[error("unknown wire type {0}")]
    BadWireType(u8),
    #[error("wire type {found} where the schema expects {expected}")]
    WrongWireType { expected: u8, found: u8 },
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    #[error("end-group tag without a matching start")]
    UnexpectedEndGroup,
    #[error("messages nested deeper than {RECURSION_LIMIT}")]
    TooDeep,
}

/// Why `JsonTranscoder::write` or `validate` failed: the innermost message and field involved.
#[derive(Debug, thiserror::Error)]
pub enum TranscodeError {
    #[error("field {field} of {message}: {problem}")]
    Field {
        message: String,
        field: u32,
        problem: WireProblem,
    },
    #[error("{message}: {problem}")]
    Message {
        message: String,
        problem: WireProblem,
    },
}

/// Internal, allocation-free form of `TranscodeError` (message table index,
/// field number or 0).
#[derive(Debug, Clone, Copy)]
struct Fail {
    message: u32,
    field: u32,
    problem: WireProblem,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Double,
    Float,
    Int64,
    Uint64,
    Int32,
    Uint32,
    Sint32,
    Sint64,
    Fixed32,
    Fixed64,
    Sfixed32,
    Sfixed64,
    Bool,
    String,
    Bytes,
    Enum(u32),
    Message(u32),
}

impl Kind {
    fn wire_type(self) -> u8 {
        match self {
            Kind::Double | Kind::Fixed64 | Kind::Sfixed64 => WIRE_FIXED64,
            Kind::Float | Kind::Fixed32 | Kind::Sfixed32 => WIRE_FIXED32,
            Kind::String | Kind::Bytes | Kind::Message(_) => WIRE_LEN,
            _ => WIRE_VARINT,
        }
    }

    /// Repeated fields of these kinds may arrive packed in one length-delimited run.
    fn packable(self) -> bool {
        !matches!(self, Kind::String | Kind::Bytes | Kind::Message(_))
    }
}

struct FieldEntry {
    number: u32,
    kind: Kind,
    repeated: bool,
    /// Plain proto3 scalar: omitted from the JSON when it holds its default.
    implicit: bool,
    /// Index of the (real, non-synthetic) oneof this field belongs to, or NO_ONEOF.
    oneof: u16,
    /// `,"jsonName":`, escaped as serde_json would (the comma is skipped for the first field).
    key: Box<[u8]>,
}

struct MessageTable {
    full_name: String,
    /// In JSON output order.
    fields: Vec<FieldEntry>,
    /// Field number → output position + 1 (0: unknown), for numbers below DENSE_FIELD_LIMIT.
    dense: Box<[u16]>,
    /// Larger field numbers, sorted.
    sparse: Vec<(u32, u16)>,
    oneof_count: usize,
    /// The streaming path tracks oneofs in a u64 bitmask.
    streamable: bool,
}

impl MessageTable {
    #[inline]
    fn lookup(&self, number: u32) -> Option<usize> {
        if let Some(&slot) = self.dense.get(number as usize) {
            return (slot as usize).checked_sub(1);
        }
        self.sparse
            .binary_search_by_key(&number, |&(n, _)| n)
            .ok()
            .and_then(|i| self.sparse.get(i))
            .map(|&(_, pos)| pos as usize)
    }
}

struct EnumTable {
    /// Number → `"NAME"` for 0..DENSE_ENUM_LIMIT.
    dense: Vec<Option<Box<[u8]>>>,
    /// Other numbers, sorted.
    sparse: Vec<(i32, Box<[u8]>)>,
}

impl EnumTable {
    fn name(&self, number: i32) -> Option<&[u8]> {
        if let Ok(index) = usize::try_from(number)
            && let Some(slot) = self.dense.get(index)
        {
            return slot.as_deref();
        }
        self.sparse
            .binary_search_by_key(&number, |(n, _)| *n)
            .ok()
            .and_then(|i| self.sparse.get(i))
            .map(|(_, name)| &name[..])
    }
}

/// Writes proto3 JSON for one message type (and every message it reaches) straight from its binary encoding.
pub struct JsonTranscoder {
    /// Index 0 is the root message.
    messages: Vec<MessageTable>,
    enums: Vec<EnumTable>,
}

impl std::fmt::Debug for JsonTranscoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JsonTranscoder")
            .field("message", &self.messages.first().map(|m| &m.full_name))
            .field("reachable_messages", &self.messages.len())
            .finish()
    }
}

impl JsonTranscoder {
    /// Schema for `message` (full name like "v1.Operation") from an encoded FileDescriptorSet (prost_types::FileDescriptorSet).
    /// Err(String) naming the reason if the message or something it reaches uses what this transcoder does not support.
    pub fn new(descriptor_set: &[u8], message: &str) -> Result<JsonTranscoder, String> {
        let set = FileDescriptorSet::decode(descriptor_set)
            .map_err(|e| format!("the descriptor set does not decode: {e}"))?;
        SchemaBuilder::new(&set).build(message)
    }

    /// The transcoder for v1.Operation built once from crate::pb::DESCRIPTOR_SET (std::sync::OnceLock); None (and a tracing::warn! once) if it can't be built.
    pub fn operation() -> Option<&'static JsonTranscoder> {
        static OPERATION: OnceLock<Option<JsonTranscoder>> = OnceLock::new();
        OPERATION
            .get_or_init(
                || match JsonTranscoder::new(crate::pb::DESCRIPTOR_SET, "v1.Operation") {
                    Ok(transcoder) => Some(transcoder),
                    Err(reason) => {
                        tracing::warn!(%reason, "no direct JSON transcoder for v1.Operation; using pbjson");
                        None
                    }
                },
            )
            .as_ref()
    }

    /// Appends the JSON of one encoded message to `out`. On Err, `out` may contain a partial write (the caller truncates).
    pub fn write(&self, bytes: &[u8], out: &mut Vec<u8>) -> Result<(), TranscodeError> {
        let mut state = WriteState {
            streaming_disabled: false,
        };
        self.message(0, bytes, out, RECURSION_LIMIT, &mut state)
            .map_err(|fail| self.report(fail))
    }

    /// Whether `bytes` decode as this message (Ok) — exactly the inputs prost's
    /// decode (and `write`) accept — without writing anything. For callers that
    /// pass stored encodings on unchanged but must not pass on a damaged one.
    pub fn validate(&self, bytes: &[u8]) -> Result<(), TranscodeError> {
        self.check_message(0, bytes, RECURSION_LIMIT)
            .map_err(|fail| self.report(fail))
    }

    fn report(&self, fail: Fail) -> TranscodeError {
        let message = self
            .messages
            .get(fail.message as usize)
            .map(|m| m.full_name.clone())
            .unwrap_or_default();
        if fail.field == 0 {
            TranscodeError::Message {
                message,
                problem: fail.problem,
            }
        } else {
            TranscodeError::Field {
                message,
                field: fail.field,
                problem: fail.problem,
            }
        }
    }

    /// One message: `{...}`. `budget` is prost's recursion counter for this
    /// message's fields (a nested message needs budget > 0 and gets budget.saturating_sub(1)).
    fn message(
        &self,
        index: u32,
        bytes: &[u8],
        out: &mut Vec<u8>,
        budget: u32,
        state: &mut WriteState,
    ) -> Result<(), Fail> {
        let Some(table) = self.messages.get(index as usize) else {
            return Ok(());
        };
        let mark = out.len();
        out.push(b'{');
        if table.streamable && !state.streaming_disabled {
            if self.stream(index, table, bytes, out, budget, state)? {
                out.push(b'}');
                return Ok(());
            }
            // Not in canonical order: start over with the gathering path. From
            // here on nested messages go straight to it, so a pathological input
            // can't make every level redo its subtree (that would be exponential).
            out.truncate(mark + 1);
            state.streaming_disabled = true;
        }
        self.gathered(index, table, bytes, out, budget, state)?;
        out.push(b'}');
        Ok(())
    }

    /// The fast path. Returns Ok(false) as soon as the encoding is not in the
    /// order the JSON needs (the caller discards what was written).
    fn stream(
        &self,
        index: u32,
        table: &MessageTable,
        bytes: &[u8],
        out: &mut Vec<u8>,
        budget: u32,
        state: &mut WriteState,
    ) -> Result<bool, Fail> {
        let fail = |field: u32| {
            move |problem: WireProblem| Fail {
                message: index,
                field,
                problem,
            }
        };
        let mut reader = Reader::new(bytes);
        let mut previous = usize::MAX;
        let mut array_open = false;
        let mut comma = false;
        let mut oneofs_seen = 0u64;
        while !reader.at_end() {
            let (number, wire) = reader.key().map_err(fail(0))?;
            let Some(position) = table.lookup(number) else {
                skip_field(&mut reader, number, wire, budget).map_err(fail(number))?;
                continue;
            };
            let Some(field) = table.fields.get(position) else {
                return Ok(false);
            };
            if previous != usize::MAX && position <= previous {
                if position < previous || !field.repeated {
                    return Ok(false);
                }
            } else {
                if array_open {
                    out.push(b']');
                    array_open = false;
                }
                if field.oneof != NO_ONEOF {
                    let bit = 1u64 << (field.oneof & 63);
                    if oneofs_seen & bit != 0 {
                        return Ok(false);
                    }
                    oneofs_seen |= bit;
                }
                previous = position;
            }

            if field.repeated {
                match field.kind {
                    Kind::Message(sub) => {
                        let payload =
                            message_payload(&mut reader, wire, budget).map_err(fail(number))?;
                        open_element(out, field, &mut array_open, &mut comma);
                        self.message(sub, payload, out, budget.saturating_sub(1), state)?;
                    }
                    kind if kind.packable() && wire == WIRE_LEN => {
                        let payload = reader.len_delimited().map_err(fail(number))?;
                        let mut packed = Reader::new(payload);
                        while !packed.at_end() {
                            let value = read_scalar(kind, kind.wire_type(), &mut packed)
                                .map_err(fail(number))?;
                            open_element(out, field, &mut array_open, &mut comma);
                            self.write_scalar(kind, value, out);
                        }
                    }
                    kind => {
                        let value = read_scalar(kind, wire, &mut reader).map_err(fail(number))?;
                        open_element(out, field, &mut array_open, &mut comma);
                        self.write_scalar(kind, value, out);
                    }
                }
            } else if let Kind::Message(sub) = field.kind {
                let payload = message_payload(&mut reader, wire, budget).map_err(fail(number))?;
                open_field(out, field, &mut comma);
                self.message(sub, payload, out, budget.saturating_sub(1), state)?;
            } else {
                let value = read_scalar(field.kind, wire, &mut reader).map_err(fail(number))?;
                if field.implicit && value.is_default(field.kind) {
                    continue;
                }
                open_field(out, field, &mut comma);
                self.write_scalar(field.kind, value, out);
            }
        }
        if array_open {
            out.push(b']');
        }
        Ok(true)
    }

    /// The general path: validate and collect every occurrence, then write the
    /// fields in output order with prost's merge rules.
    fn gathered(
        &self,
        index: u32,
        table: &MessageTable,
        bytes: &[u8],
        out: &mut Vec<u8>,
        budget: u32,
        state: &mut WriteState,
    ) -> Result<(), Fail> {
        let fail = |field: u32| {
            move |problem: WireProblem| Fail {
                message: index,
                field,
                problem,
            }
        };
        let mut occurrences: Vec<Occurrence> = Vec::new();
        // Per oneof: the member seen last and the first occurrence of its final run.
        let mut oneof_winners = vec![(usize::MAX, 0usize); table.oneof_count];
        let mut reader = Reader::new(bytes);
        while !reader.at_end() {
            let (number, wire) = reader.key().map_err(fail(0))?;
            let Some(position) = table.lookup(number) else {
                skip_field(&mut reader, number, wire, budget).map_err(fail(number))?;
                continue;
            };
            let Some(field) = table.fields.get(position) else {
                continue;
            };
            let start = reader.pos;
            check_occurrence(field, wire, &mut reader, budget).map_err(fail(number))?;
            let sequence = occurrences.len();
            if let Some(winner) = oneof_winners.get_mut(field.oneof as usize)
                && winner.0 != position
            {
                *winner = (position, sequence);
            }
            occurrences.push(Occurrence {
                position,
                sequence,
                wire,
                start,
                end: reader.pos,
            });
        }
        occurrences.sort_by_key(|o| o.position);

        let mut comma = false;
        let mut scratch = Vec::new();
        let mut rest = &occurrences[..];
        while let Some(first) = rest.first() {
            let position = first.position;
            let run = rest.iter().take_while(|o| o.position == position).count();
            let (group, tail) = rest.split_at(run);
            rest = tail;
            let Some(field) = table.fields.get(position) else {
                continue;
            };
            let number = field.number;
            let value_of = |o: &Occurrence| bytes.get(o.start..o.end).unwrap_or_default();

            let live = match oneof_winners.get(field.oneof as usize) {
                Some(&(winner, since)) => {
                    let superseded = if winner == position {
                        group.iter().take_while(|o| o.sequence < since).count()
                    } else {
                        group.len()
                    };
                    let (dropped, live) = group.split_at(superseded);
                    // prost still decoded the replaced values: they must be valid.
                    if let Kind::Message(sub) = field.kind {
                        for o in dropped {
                            let payload = stored_payload(value_of(o)).map_err(fail(number))?;
                            self.check_message(sub, payload, budget.saturating_sub(1))?;
                        }
                    }
                    live
                }
                None => group,
            };
            if live.is_empty() {
                continue;
            }

            if field.repeated {
                let mut array_open = false;
                for o in live {
                    let mut reader = Reader::new(value_of(o));
                    match field.kind {
                        Kind::Message(sub) => {
                            let payload = reader.len_delimited().map_err(fail(number))?;
                            open_element(out, field, &mut array_open, &mut comma);
                            self.message(sub, payload, out, budget.saturating_sub(1), state)?;
                        }
                        kind if kind.packable() && o.wire == WIRE_LEN => {
                            let payload = reader.len_delimited().map_err(fail(number))?;
                            let mut packed = Reader::new(payload);
                            while !packed.at_end() {
                                let value = read_scalar(kind, kind.wire_type(), &mut packed)
                                    .map_err(fail(number))?;
                                open_element(out, field, &mut array_open, &mut comma);
                                self.write_scalar(kind, value, out);
                            }
                        }
                        kind => {
                            let value =
                                read_scalar(kind, o.wire, &mut reader).map_err(fail(number))?;
                            open_element(out, field, &mut array_open, &mut comma);
                            self.write_scalar(kind, value, out);
                        }
                    }
                }
                if array_open {
                    out.push(b']');
                }
            } else if let Kind::Message(sub) = field.kind {
                if let [only] = live {
                    let payload = stored_payload(value_of(only)).map_err(fail(number))?;
                    open_field(out, field, &mut comma);
                    self.message(sub, payload, out, budget.saturating_sub(1), state)?;
                } else {
                    // Merging occurrences = decoding their concatenation, once each
                    // occurrence is known to be valid on its own.
                    scratch.clear();
                    for o in live {
                        let payload = stored_payload(value_of(o)).map_err(fail(number))?;
                        self.check_message(sub, payload, budget.saturating_sub(1))?;
                        scratch.extend_from_slice(payload);
                    }
                    open_field(out, field, &mut comma);
                    self.message(sub, &scratch, out, budget.saturating_sub(1), state)?;
                }
            } else if let Some(last) = live.last() {
                let mut reader = Reader::new(value_of(last));
                let value =
                    read_scalar(field.kind, last.wire, &mut reader).map_err(fail(number))?;
                if field.implicit && value.is_default(field.kind) {
                    continue;
                }
                open_field(out, field, &mut comma);
                self.write_scalar(field.kind, value, out);
            }
        }
        Ok(())
    }

    /// Checks an encoding the way prost's decoder would, writing nothing. Every
    /// occurrence counts (prost decodes replaced values too), so order and
    /// repetition don't matter and one pass with no bookkeeping suffices.
    fn check_message(&self, index: u32, bytes: &[u8], budget: u32) -> Result<(), Fail> {
        let Some(table) = self.messages.get(index as usize) else {
            return Ok(());
        };
        let fail = |field: u32| {
            move |problem: WireProblem| Fail {
                message: index,
                field,
                problem,
            }
        };
        let mut reader = Reader::new(bytes);
        while !reader.at_end() {
            let (number, wire) = reader.key().map_err(fail(0))?;
            let Some(field) = table.lookup(number).and_then(|p| table.fields.get(p)) else {
                skip_field(&mut reader, number, wire, budget).map_err(fail(number))?;
                continue;
            };
            if let Kind::Message(sub) = field.kind {
                let payload = message_payload(&mut reader, wire, budget).map_err(fail(number))?;
                self.check_message(sub, payload, budget.saturating_sub(1))?;
            } else {
                check_occurrence(field, wire, &mut reader, budget).map_err(fail(number))?;
            }
        }
        Ok(())
    }

    #[inline]
    fn write_scalar(&self, kind: Kind, value: Scalar<'_>, out: &mut Vec<u8>) {
        let mut digits = itoa::Buffer::new();
        match (kind, value) {
            (Kind::Int64 | Kind::Sfixed64, Scalar::Bits(v)) => {
                write_quoted(out, digits.format(v as i64))
            }
            (Kind::Uint64 | Kind::Fixed64, Scalar::Bits(v)) => write_quoted(out, digits.format(v)),
            (Kind::Sint64, Scalar::Bits(v)) => write_quoted(out, digits.format(zigzag64(v))),
            (Kind::Int32 | Kind::Sfixed32, Scalar::Bits(v)) => {
                out.extend_from_slice(digits.format(v as i32).as_bytes())
            }
            (Kind::Uint32 | Kind::Fixed32, Scalar::Bits(v)) => {
                out.extend_from_slice(digits.format(v as u32).as_bytes())
            }
            (Kind::Sint32, Scalar::Bits(v)) => {
                out.extend_from_slice(digits.format(zigzag32(v)).as_bytes())
            }
            (Kind::Bool, Scalar::Bits(v)) => {
                out.extend_from_slice(if v != 0 { b"true" } else { b"false" })
            }
            (Kind::Double, Scalar::Bits(v)) => write_float(out, f64::from_bits(v)),
            (Kind::Float, Scalar::Bits(v)) => write_float(out, f32::from_bits(v as u32)),
            (Kind::Enum(e), Scalar::Bits(v)) => {
                let number = v as i32;
                match self.enums.get(e as usize).and_then(|t| t.name(number)) {
                    Some(name) => out.extend_from_slice(name),
                    None => out.extend_from_slice(digits.format(number).as_bytes()),
                }
            }
            (Kind::String, Scalar::Bytes(s)) => write_json_string(out, s),
            (Kind::Bytes, Scalar::Bytes(b)) => write_base64(out, b),
            // read_scalar only pairs kinds with these shapes.
            _ => out.extend_from_slice(b"null"),
        }
    }
}

struct WriteState {
    streaming_disabled: bool,
}

/// One field occurrence seen by the general path: `start..end` is its encoded
/// value (with the length prefix for length-delimited ones).
struct Occurrence {
    position: usize,
    sequence: usize,
    wire: u8,
    start: usize,
    end: usize,
}

/// A decoded scalar: integer kinds, floats and bools as raw bits; strings
/// (already checked to be UTF-8) and bytes as slices.
#[derive(Clone, Copy)]
enum Scalar<'a> {
    Bits(u64),
    Bytes(&'a [u8]),
}

impl Scalar<'_> {
    /// Whether pbjson would leave an implicit-presence field with this value out.
    #[inline]
    fn is_default(self, kind: Kind) -> bool {
        match (kind, self) {
            (Kind::Int32 | Kind::Sfixed32 | Kind::Enum(_), Scalar::Bits(v)) => v as i32 == 0,
            (Kind::Uint32 | Kind::Fixed32, Scalar::Bits(v)) => v as u32 == 0,
            (Kind::Sint32, Scalar::Bits(v)) => zigzag32(v) == 0,
            (Kind::Double, Scalar::Bits(v)) => f64::from_bits(v) == 0.0,
            (Kind::Float, Scalar::Bits(v)) => f32::from_bits(v as u32) == 0.0,
            (_, Scalar::Bits(v)) => v == 0,
            (_, Scalar::Bytes(b)) => b.is_empty(),
        }
    }
}

#[inline]
fn zigzag32(v: u64) -> i32 {
    let v = v as u32;
    ((v >> 1) as i32) ^ (-((v & 1) as i32))
}

#[inline]
fn zigzag64(v: u64) -> i64 {
    ((v >> 1) as i64) ^ (-((v & 1) as i64))
}

/// Reads one value of `kind` encoded with `wire`, failing like prost on a
/// wire-type mismatch, truncation or invalid UTF-8.
#[inline]
fn read_scalar<'a>(
    kind: Kind,
    wire: u8,
    reader: &mut Reader<'a>,
) -> Result<Scalar<'a>, WireProblem> {
    let expected = kind.wire_type();
    if wire != expected {
        return Err(WireProblem::WrongWireType {
            expected,
            found: wire,
        });
    }
    Ok(match expected {
        WIRE_VARINT => Scalar::Bits(reader.varint()?),
        WIRE_FIXED64 => Scalar::Bits(reader.fixed64()?),
        WIRE_FIXED32 => Scalar::Bits(u64::from(reader.fixed32()?)),
        _ => {
            let bytes = reader.len_delimited()?;
            if kind == Kind::String && std::str::from_utf8(bytes).is_err() {
                return Err(WireProblem::InvalidUtf8);
            }
            Scalar::Bytes(bytes)
        }
    })
}

/// The payload of a message-typed field, after prost's wire-type and depth checks.
#[inline]
fn message_payload<'a>(
    reader: &mut Reader<'a>,
    wire: u8,
    budget: u32,
) -> Result<&'a [u8], WireProblem> {
    if wire != WIRE_LEN {
        return Err(WireProblem::WrongWireType {
            expected: WIRE_LEN,
            found: wire,
        });
    }
    if budget == 0 {
        return Err(WireProblem::TooDeep);
    }
    reader.len_delimited()
}

/// Checks one occurrence of a known field and moves past it; nested messages
/// are only delimited here (the caller validates or transcodes them). Values
/// are skipped rather than decoded: this is all `validate` does per field.
#[inline]
fn check_occurrence(
    field: &FieldEntry,
    wire: u8,
    reader: &mut Reader<'_>,
    budget: u32,
) -> Result<(), WireProblem> {
    let kind = field.kind;
    let expected = kind.wire_type();
    if wire == expected {
        match kind {
            Kind::Message(_) => message_payload(reader, wire, budget).map(|_| ()),
            Kind::String => match is_utf8(reader.len_delimited()?) {
                true => Ok(()),
                false => Err(WireProblem::InvalidUtf8),
            },
            _ => match wire {
                WIRE_VARINT => reader.varint().map(|_| ()),
                WIRE_FIXED64 => reader.take(8).map(|_| ()),
                WIRE_FIXED32 => reader.take(4).map(|_| ()),
                _ => reader.len_delimited().map(|_| ()),
            },
        }
    } else if field.repeated && kind.packable() && wire == WIRE_LEN {
        let mut packed = Reader::new(reader.len_delimited()?);
        while !packed.at_end() {
            read_scalar(kind, expected, &mut packed)?;
        }
        Ok(())
    } else {
        Err(WireProblem::WrongWireType {
            expected,
            found: wire,
        })
    }
}

/// `std::str::from_utf8(bytes).is_ok()`, answering short ASCII strings (most
/// of them) 8 bytes at a time without the call.
#[inline]
fn is_utf8(bytes: &[u8]) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut chunks = bytes.chunks_exact(8);
    let mut seen = 0u64;
    for chunk in &mut chunks {
        seen |= <[u8; 8]>::try_from(chunk).map_or(HIGH, u64::from_le_bytes);
    }
    for &byte in chunks.remainder() {
        seen |= u64::from(byte);
    }
    seen & HIGH == 0 || std::str::from_utf8(bytes).is_ok()
}

/// The payload of a stored length-delimited occurrence.
fn stored_payload(encoded: &[u8]) -> Result<&[u8], WireProblem> {
    Reader::new(encoded).len_delimited()
}

/// Skips an unknown field like prost's `skip_field`, including its depth check
/// (which applies to every unknown field, not only to groups).
fn skip_field(
    reader: &mut Reader<'_>,
    number: u32,
    wire: u8,
    budget: u32,
) -> Result<(), WireProblem> {
    if budget == 0 {
        return Err(WireProblem::TooDeep);
    }
    match wire {
        WIRE_VARINT => reader.varint().map(|_| ()),
        WIRE_FIXED64 => reader.fixed64().map(|_| ()),
        WIRE_FIXED32 => reader.fixed32().map(|_| ()),
        WIRE_LEN => reader.len_delimited().map(|_| ()),
        WIRE_START_GROUP => loop {
            let (inner, inner_wire) = reader.key()?;
            if inner_wire == WIRE_END_GROUP {
                return if inner == number {
                    Ok(())
                } else {
                    Err(WireProblem::UnexpectedEndGroup)
                };
            }
            skip_field(reader, inner, inner_wire, budget.saturating_sub(1))?;
        },
        _ => Err(WireProblem::UnexpectedEndGroup),
    }
}

/// Starts `"key":` of a singular field.
#[inline]
fn open_field(out: &mut Vec<u8>, field: &FieldEntry, comma: &mut bool) {
    let key = if *comma {
        &field.key[..]
    } else {
        field.key.get(1..).unwrap_or_default()
    };
    *comma = true;
    out.extend_from_slice(key);
}

/// Starts one array element, writing `"key":[` before the first (an empty
/// repeated field is left out, as pbjson does).
#[inline]
fn open_element(out: &mut Vec<u8>, field: &FieldEntry, array_open: &mut bool, comma: &mut bool) {
    if *array_open {
        out.push(b',');
    } else {
        open_field(out, field, comma);
        out.push(b'[');
        *array_open = true;
    }
}

#[inline]
fn write_quoted(out: &mut Vec<u8>, digits: &str) {
    out.push(b'"');
    out.extend_from_slice(digits.as_bytes());
    out.push(b'"');
}

/// serde_json's float output (ryu; `null` for NaN and infinities).
fn write_float<F: serde::Serialize>(out: &mut Vec<u8>, value: F) {
    if serde_json::to_writer(&mut *out, &value).is_err() {
        out.extend_from_slice(b"null");
    }
}

fn write_base64(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    let start = out.len();
    let len = base64::encoded_len(bytes.len(), true).unwrap_or(0);
    out.resize(start + len, 0);
    let written = out
        .get_mut(start..)
        .and_then(|tail| {
            base64::engine::general_purpose::STANDARD
                .encode_slice(bytes, tail)
                .ok()
        })
        .unwrap_or(0);
    out.truncate(start + written);
    out.push(b'"');
}

/// serde_json's escape table: 0 = copy, b'u' = \u00XX, otherwise `\` + that byte.
static ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        table[i] = b'u';
        i += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

/// Whether any of the 8 bytes in `word` is below 0x20, `"` or `\\` (the bytes
/// serde_json escapes). Exact for existence; bytes ≥ 0x80 never match.
#[inline]
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let control = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let quote = quote.wrapping_sub(ONES) & !quote;
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let backslash = backslash.wrapping_sub(ONES) & !backslash;
    (control | quote | backslash) & HIGH != 0
}

/// Writes a JSON string exactly as serde_json escapes it: copies runs that need
/// no escaping (skipping 8 bytes at a time), escapes `"`, `\\` and control characters.
#[inline]
fn write_json_string(out: &mut Vec<u8>, s: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.reserve(s.len() + 2);
    out.push(b'"');
    let mut start = 0;
    let mut i = 0;
    while i < s.len() {
        if let Some(word) = s.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok())
            && !word_needs_escape(u64::from_le_bytes(word))
        {
            i += 8;
            continue;
        }
        let Some(&byte) = s.get(i) else { break };
        let escape = ESCAPE[byte as usize];
        if escape != 0 {
            out.extend_from_slice(s.get(start..i).unwrap_or_default());
            if escape == b'u' {
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(byte >> 4) as usize],
                    HEX[(byte & 0xf) as usize],
                ]);
            } else {
                out.extend_from_slice(&[b'\\', escape]);
            }
            start = i + 1;
        }
        i += 1;
    }
    out.extend_from_slice(s.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// A bounds-checked cursor over one message's bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    #[inline]
    fn new(bytes: &'a [u8]) -> Self {
        Reader { bytes, pos: 0 }
    }

    #[inline]
    fn at_end(&self) -> bool {
        self.pos >= self.bytes.len()
    }

    /// prost's varint rules: at most 10 bytes, the 10th at most 1.
    #[inline]
    fn varint(&mut self) -> Result<u64, WireProblem> {
        match self.bytes.get(self.pos) {
            Some(&byte) if byte < 0x80 => {
                self.pos += 1;
                Ok(u64::from(byte))
            }
            Some(_) => self.varint_slow(),
            None => Err(WireProblem::TruncatedVarint),
        }
    }

    #[inline]
    fn varint_slow(&mut self) -> Result<u64, WireProblem> {
        let mut value = 0u64;
        for i in 0..10 {
            let Some(&byte) = self.bytes.get(self.pos + i) else {
                return Err(WireProblem::TruncatedVarint);
            };
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    return Err(WireProblem::OverlongVarint);
                }
                self.pos += i + 1;
                return Ok(value);
            }
        }
        Err(WireProblem::OverlongVarint)
    }

    /// A field key as prost accepts it: fits in u32, wire type 0-5, tag ≥ 1.
    #[inline]
    fn key(&mut self) -> Result<(u32, u8), WireProblem> {
        let key = self.varint()?;
        let key = u32::try_from(key).map_err(|_| WireProblem::BadKey)?;
        let wire = (key & 7) as u8;
        if wire > 5 {
            return Err(WireProblem::BadWireType(wire));
        }
        let number = key >> 3;
        if number == 0 {
            return Err(WireProblem::BadKey);
        }
        Ok((number, wire))
    }

    #[inline]
    fn take(&mut self, len: usize) -> Result<&'a [u8], WireProblem> {
        let end = self.pos.checked_add(len).ok_or(WireProblem::Truncated)?;
        let slice = self
            .bytes
            .get(self.pos..end)
            .ok_or(WireProblem::Truncated)?;
        self.pos = end;
        Ok(slice)
    }

    #[inline]
    fn fixed32(&mut self) -> Result<u32, WireProblem> {
        let slice = self.take(4)?;
        Ok(u32::from_le_bytes(
            slice.try_into().map_err(|_| WireProblem::Truncated)?,
        ))
    }

    #[inline]
    fn fixed64(&mut self) -> Result<u64, WireProblem> {
        let slice = self.take(8)?;
        Ok(u64::from_le_bytes(
            slice.try_into().map_err(|_| WireProblem::Truncated)?,
        ))
    }

    #[inline]
    fn len_delimited(&mut self) -> Result<&'a [u8], WireProblem> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireProblem::Truncated)?;
        self.take(len)
    }
}

/// Resolves a message and everything it reaches into indexed tables.
struct SchemaBuilder<'a> {
    /// ".pkg.Msg" → (descriptor, syntax of its file, file name).
    messages: HashMap<String, (&'a DescriptorProto, &'a str, &'a str)>,
    enums: HashMap<String, &'a EnumDescriptorProto>,
    message_index: HashMap<String, u32>,
    enum_index: HashMap<String, u32>,
    /// Messages given an index but not built yet.
    pending: Vec<String>,
    enum_tables: Vec<EnumTable>,
}

impl<'a> SchemaBuilder<'a> {
    fn new(set: &'a FileDescriptorSet) -> Self {
        let mut builder = SchemaBuilder {
            messages: HashMap::new(),
            enums: HashMap::new(),
            message_index: HashMap::new(),
            enum_index: HashMap::new(),
            pending: Vec::new(),
            enum_tables: Vec::new(),
        };
        for file in &set.file {
            let prefix = match file.package() {
                "" => String::new(),
                package => format!(".{package}"),
            };
            // protoc leaves `syntax` empty for proto2 files.
            let syntax = file.syntax.as_deref().unwrap_or("proto2");
            for message in &file.message_type {
                builder.collect(&prefix, message, syntax, file.name());
            }
            for e in &file.enum_type {
                builder.enums.insert(format!("{prefix}.{}", e.name()), e);
            }
        }
        builder
    }

    fn collect(
        &mut self,
        prefix: &str,
        message: &'a DescriptorProto,
        syntax: &'a str,
        file: &'a str,
    ) {
        let name = format!("{prefix}.{}", message.name());
        for nested in &message.nested_type {
            self.collect(&name, nested, syntax, file);
        }
        for e in &message.enum_type {
            self.enums.insert(format!("{name}.{}", e.name()), e);
        }
        self.messages.insert(name, (message, syntax, file));
    }

    fn build(mut self, root: &str) -> Result<JsonTranscoder, String> {
        let root = format!(".{}", root.trim_start_matches('.'));
        if !self.messages.contains_key(&root) {
            return Err(format!(
                "message {} is not in the descriptor set",
                &root[1..]
            ));
        }
        self.message_ref(&root)?;
        let mut tables = Vec::new();
        let mut next = 0;
        while let Some(name) = self.pending.get(next).cloned() {
            next += 1;
            tables.push(self.message_table(&name)?);
        }
        Ok(JsonTranscoder {
            messages: tables,
            enums: self.enum_tables,
        })
    }

    /// Index of a message table, scheduling it for building on first use.
    fn message_ref(&mut self, name: &str) -> Result<u32, String> {
        if let Some(&index) = self.message_index.get(name) {
            return Ok(index);
        }
        let index =
            u32::try_from(self.pending.len()).map_err(|_| "too many messages".to_string())?;
        self.message_index.insert(name.to_string(), index);
        self.pending.push(name.to_string());
        Ok(index)
    }

    fn enum_ref(&mut self, name: &str) -> Result<u32, String> {
        if let Some(&index) = self.enum_index.get(name) {
            return Ok(index);
        }
        let descriptor = *self.enums.get(name).ok_or_else(|| {
            format!(
                "enum {} is not in the descriptor set",
                name.trim_start_matches('.')
            )
        })?;
        let mut dense: Vec<Option<Box<[u8]>>> = Vec::new();
        let mut sparse: Vec<(i32, Box<[u8]>)> = Vec::new();
        for value in &descriptor.value {
            let number = value.number();
            // With allow_alias the first name of a number is the one prost and pbjson use.
            let quoted = json_quoted(value.name());
            if (0..DENSE_ENUM_LIMIT).contains(&number) {
                let slot = number as usize;
                if dense.len() <= slot {
                    dense.resize(slot + 1, None);
                }
                if let Some(entry) = dense.get_mut(slot)
                    && entry.is_none()
                {
                    *entry = Some(quoted);
                }
            } else if !sparse.iter().any(|(n, _)| *n == number) {
                sparse.push((number, quoted));
            }
        }
        sparse.sort_by_key(|(n, _)| *n);
        let index =
            u32::try_from(self.enum_tables.len()).map_err(|_| "too many enums".to_string())?;
        self.enum_tables.push(EnumTable { dense, sparse });
        self.enum_index.insert(name.to_string(), index);
        Ok(index)
    }

    fn message_table(&mut self, name: &str) -> Result<MessageTable, String> {
        let display = name.trim_start_matches('.').to_string();
        let (descriptor, syntax, file) = *self
            .messages
            .get(name)
            .ok_or_else(|| format!("message {display} is not in the descriptor set"))?;
        if name.starts_with(".google.protobuf.") && name != ".google.protobuf.Empty" {
            return Err(format!(
                "{display} is a well-known type with its own JSON form, which this transcoder does not write"
            ));
        }
        if syntax != "proto3" {
            return Err(format!(
                "{display} is declared in {file} with syntax \"{syntax}\"; only proto3 is supported"
            ));
        }
        if descriptor.options.as_ref().and_then(|o| o.map_entry) == Some(true) {
            return Err(format!("{display} is a map entry"));
        }

        // Synthetic oneofs (proto3 `optional`) are not oneofs for JSON purposes.
        let mut real_oneof = vec![NO_ONEOF; descriptor.oneof_decl.len()];
        let mut oneof_count = 0usize;
        for field in &descriptor.field {
            if let Some(i) = field.oneof_index
                && !field.proto3_optional()
                && let Some(slot) = real_oneof.get_mut(i as usize)
                && *slot == NO_ONEOF
            {
                *slot = u16::try_from(oneof_count)
                    .map_err(|_| format!("{display}: too many oneofs"))?;
                oneof_count += 1;
            }
        }

        let mut regular = Vec::new();
        let mut by_oneof: Vec<Vec<FieldEntry>> = (0..oneof_count).map(|_| Vec::new()).collect();
        for field in &descriptor.field {
            let field_name = format!("{display}.{}", field.name());
            let number = u32::try_from(field.number())
                .ok()
                .filter(|n| (1..=536_870_911).contains(n))
                .ok_or_else(|| format!("field {field_name} has an invalid number"))?;
            let repeated = field.label() == Label::Repeated;
            let kind = match field.r#type() {
                Type::Double => Kind::Double,
                Type::Float => Kind::Float,
                Type::Int64 => Kind::Int64,
                Type::Uint64 => Kind::Uint64,
                Type::Int32 => Kind::Int32,
                Type::Fixed64 => Kind::Fixed64,
                Type::Fixed32 => Kind::Fixed32,
                Type::Bool => Kind::Bool,
                Type::String => Kind::String,
                Type::Bytes => Kind::Bytes,
                Type::Uint32 => Kind::Uint32,
                Type::Sfixed32 => Kind::Sfixed32,
                Type::Sfixed64 => Kind::Sfixed64,
                Type::Sint32 => Kind::Sint32,
                Type::Sint64 => Kind::Sint64,
                Type::Group => return Err(format!("field {field_name} is a group")),
                Type::Enum => {
                    let type_name = absolute_type_name(field.type_name(), &field_name)?;
                    Kind::Enum(self.enum_ref(type_name)?)
                }
                Type::Message => {
                    let type_name = absolute_type_name(field.type_name(), &field_name)?;
                    let (target, _, _) = self.messages.get(type_name).ok_or_else(|| {
                        format!("field {field_name}: type {type_name} is not in the descriptor set")
                    })?;
                    if target.options.as_ref().and_then(|o| o.map_entry) == Some(true) {
                        return Err(format!(
                            "field {field_name} is a map, which is not supported"
                        ));
                    }
                    Kind::Message(self.message_ref(type_name)?)
                }
            };
            let oneof = match field.oneof_index {
                Some(i) if !field.proto3_optional() => {
                    real_oneof.get(i as usize).copied().unwrap_or(NO_ONEOF)
                }
                _ => NO_ONEOF,
            };
            let explicit_presence = field.proto3_optional() || oneof != NO_ONEOF;
            let json_name = match &field.json_name {
                Some(name) => name.clone(),
                None => lower_camel(field.name()),
            };
            let mut key = vec![b','];
            key.extend_from_slice(&json_quoted(&json_name));
            key.push(b':');
            let entry = FieldEntry {
                number,
                kind,
                repeated,
                implicit: !repeated && !explicit_presence && !matches!(kind, Kind::Message(_)),
                oneof,
                key: key.into_boxed_slice(),
            };
            match by_oneof.get_mut(oneof as usize) {
                Some(members) => members.push(entry),
                None => regular.push(entry),
            }
        }
        // pbjson writes regular fields in declaration order, then each oneof's members.
        let fields: Vec<FieldEntry> = regular
            .into_iter()
            .chain(by_oneof.into_iter().flatten())
            .collect();

        let max_dense = fields
            .iter()
            .map(|f| f.number)
            .filter(|&n| n < DENSE_FIELD_LIMIT)
            .max()
            .unwrap_or(0);
        let mut dense = vec![0u16; max_dense as usize + 1];
        let mut sparse = Vec::new();
        for (position, field) in fields.iter().enumerate() {
            let slot =
                u16::try_from(position + 1).map_err(|_| format!("{display}: too many fields"))?;
            let taken = if field.number < DENSE_FIELD_LIMIT {
                let entry = dense.get_mut(field.number as usize).ok_or("field table")?;
                std::mem::replace(entry, slot) != 0
            } else {
                let taken = sparse.iter().any(|&(n, _)| n == field.number);
                sparse.push((field.number, slot - 1));
                taken
            };
            if taken {
                return Err(format!(
                    "{display}: field number {} is used twice",
                    field.number
                ));
            }
        }
        sparse.sort_by_key(|&(n, _)| n);

        Ok(MessageTable {
            full_name: display,
            fields,
            dense: dense.into_boxed_slice(),
            sparse,
            oneof_count,
            streamable: oneof_count <= 64,
        })
    }
}

fn absolute_type_name<'n>(type_name: &'n str, field_name: &str) -> Result<&'n str, String> {
    if type_name.starts_with('.') {
        Ok(type_name)
    } else {
        Err(format!(
            "field {field_name}: type name \"{type_name}\" is not fully qualified"
        ))
    }
}

/// protoc's default json_name: drop underscores, capitalizing the letter after each.
fn lower_camel(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    let mut upper_next = false;
    for c in name.chars() {
        if c == '_' {
            upper_next = true;
        } else if upper_next {
            out.push(c.to_ascii_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn json_quoted(text: &str) -> Box<[u8]> {
    let mut out = Vec::with_capacity(text.len() + 2);
    write_json_string(&mut out, text.as_bytes());
    out.into_boxed_slice()
}

#[cfg(test)]
#[path = "transcode_tests.rs"]
mod tests;
