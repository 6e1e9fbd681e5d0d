//! Go's `encoding/json.Marshal` of template values, for `.JsonMarshal`:
//! struct fields by their json tags (omitempty honoured), times as RFC 3339
//! strings, durations and enums as numbers, HTML-safe string escaping, and
//! Go's float formatting.

use crate::hooks::template::gotime::{RFC3339_NANO, format_layout};
use crate::hooks::template::{FloatKind, JsonName, Value};

/// `json.Marshal(v)`; `None` where Go returns an error (NaN or infinite
/// floats).
pub fn marshal(v: &Value) -> Option<String> {
    let mut out = String::new();
    encode(&mut out, v)?;
    Some(out)
}

fn encode(out: &mut String, v: &Value) -> Option<()> {
    match v {
        Value::Invalid | Value::Nil | Value::NilPtr(_) => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(n, _) | Value::Enum(n, _) | Value::Duration(n) => out.push_str(&n.to_string()),
        Value::Uint(n, _) => out.push_str(&n.to_string()),
        Value::Float(f, kind) => out.push_str(&float(*f, *kind)?),
        Value::String(s) => string(out, s),
        Value::Time(t) => string(out, &format_layout(t, RFC3339_NANO)),
        Value::List(l) => {
            if l.nil {
                out.push_str("null");
            } else if l.elem_type == "uint8" {
                // []byte encodes as base64.
                use base64::Engine as _;
                let bytes: Vec<u8> = l
                    .items
                    .iter()
                    .map(|b| match b {
                        Value::Uint(n, _) => *n as u8,
                        _ => 0,
                    })
                    .collect();
                string(
                    out,
                    &base64::engine::general_purpose::STANDARD.encode(bytes),
                );
            } else {
                out.push('[');
                for (i, item) in l.items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    encode(out, item)?;
                }
                out.push(']');
            }
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, item)) in m.entries.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                string(out, k);
                out.push(':');
                encode(out, item)?;
            }
            out.push('}');
        }
        Value::Object(o) => {
            out.push('{');
            let mut first = true;
            for (def, field) in o.ty.fields.iter().zip(o.fields.iter()) {
                let name = match &def.json {
                    JsonName::GoName => def.name.as_str(),
                    JsonName::Tag { name, omitempty } => {
                        if *omitempty && is_empty(field) {
                            continue;
                        }
                        name.as_str()
                    }
                };
                if !first {
                    out.push(',');
                }
                first = false;
                string(out, name);
                out.push(':');
                encode(out, field)?;
            }
            out.push('}');
        }
    }
    Some(())
}

/// `omitempty`'s notion of empty.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Invalid | Value::Nil | Value::NilPtr(_) => true,
        Value::Bool(b) => !b,
        Value::Int(n, _) | Value::Enum(n, _) | Value::Duration(n) => *n == 0,
        Value::Uint(n, _) => *n == 0,
        Value::Float(f, _) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::List(l) => l.items.is_empty(),
        Value::Map(m) => m.entries.is_empty(),
        Value::Object(_) | Value::Time(_) => false,
    }
}

/// Go's float encoding: shortest digits, exponent form only for very small
/// or large magnitudes, `e-07` tidied to `e-7`.
fn float(f: f64, kind: FloatKind) -> Option<String> {
    if !f.is_finite() {
        return None;
    }
    let bits = if kind == FloatKind::F32 { 32 } else { 64 };
    let abs = f.abs();
    let exponent = abs != 0.0
        && if bits == 64 {
            !(1e-6..1e21).contains(&abs)
        } else {
            !(1e-6..1e21).contains(&(abs as f32 as f64))
        };
    let fmt = if exponent { 'e' } else { 'f' };
    let mut s = crate::hooks::template::fmt::format_float(f, fmt, -1, bits);
    if exponent {
        let n = s.len();
        let b = s.as_bytes();
        if n >= 4 && b[n - 4] == b'e' && b[n - 3] == b'-' && b[n - 2] == b'0' {
            s.remove(n - 2);
        }
    }
    Some(s)
}

/// A JSON string as Go writes it (HTML-safe).
fn string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}
