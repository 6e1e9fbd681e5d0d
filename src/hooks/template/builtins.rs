//! Go's template builtins (`not len index slice eq ne lt le gt ge print
//! printf println html js urlquery call`; `and`/`or` are evaluated lazily
//! by the executor), with Go's parameter types and error texts.

use std::sync::Arc;

use super::gofmt;
use super::value::{Method, MethodFn, Param, UintKind, Value};

fn method(params: Vec<Param>, variadic: Option<Param>, f: MethodFn) -> Method {
    Method {
        params,
        variadic,
        func: f,
    }
}

/// The builtin function `name` as a callable with Go's signature.
pub fn builtin(name: &str) -> Option<Method> {
    use Param::{Any, Reflect, String as Str};
    let f =
        |f: fn(&[Value]) -> Result<Value, String>| -> MethodFn { Arc::new(move |_, args| f(args)) };
    Some(match name {
        "not" => method(vec![Reflect], None, f(|a| Ok(Value::Bool(!a[0].is_true())))),
        "len" => method(vec![Reflect], None, f(|a| length(&a[0]))),
        "index" => method(vec![Reflect], Some(Reflect), f(|a| index(&a[0], &a[1..]))),
        "slice" => method(vec![Reflect], Some(Reflect), f(|a| slice(&a[0], &a[1..]))),
        "eq" => method(
            vec![Reflect],
            Some(Reflect),
            f(|a| eq(&a[0], &a[1..]).map(Value::Bool)),
        ),
        "ne" => method(
            vec![Reflect, Reflect],
            None,
            f(|a| eq(&a[0], &a[1..2]).map(|e| Value::Bool(!e))),
        ),
        "lt" => method(
            vec![Reflect, Reflect],
            None,
            f(|a| lt(&a[0], &a[1]).map(Value::Bool)),
        ),
        "le" => method(
            vec![Reflect, Reflect],
            None,
            f(|a| le(&a[0], &a[1]).map(Value::Bool)),
        ),
        "gt" => method(
            vec![Reflect, Reflect],
            None,
            f(|a| le(&a[0], &a[1]).map(|x| Value::Bool(!x))),
        ),
        "ge" => method(
            vec![Reflect, Reflect],
            None,
            f(|a| lt(&a[0], &a[1]).map(|x| Value::Bool(!x))),
        ),
        "print" => method(
            vec![],
            Some(Any),
            f(|a| Ok(Value::string(gofmt::sprint(a)))),
        ),
        "println" => method(
            vec![],
            Some(Any),
            f(|a| Ok(Value::string(gofmt::sprintln(a)))),
        ),
        "printf" => method(
            vec![Str],
            Some(Any),
            f(|a| {
                Ok(Value::string(gofmt::sprintf(
                    a[0].as_str().unwrap_or(""),
                    &a[1..],
                )))
            }),
        ),
        "html" => method(
            vec![],
            Some(Any),
            f(|a| Ok(Value::string(html_escape(&gofmt::eval_args(a))))),
        ),
        "js" => method(
            vec![],
            Some(Any),
            f(|a| Ok(Value::string(js_escape(&gofmt::eval_args(a))))),
        ),
        "urlquery" => method(
            vec![],
            Some(Any),
            f(|a| Ok(Value::string(query_escape(&gofmt::eval_args(a))))),
        ),
        _ => return None,
    })
}

/// `call`: templates here hold no function values, so this reports what Go
/// reports for a nil or non-function callee.
pub fn call_method(callee: String) -> Method {
    method(
        vec![Param::Reflect],
        Some(Param::Reflect),
        Arc::new(move |_, args| match args.first() {
            None | Some(Value::Invalid) | Some(Value::Nil) => Err("call of nil".to_string()),
            Some(v) => Err(format!(
                "non-function {callee} of type {}",
                v.type_name_or_nil()
            )),
        }),
    )
}

/// Methods of enum values: `String()`, and proto enums' `Number()`.
pub fn enum_method(name: &str, is_proto: bool) -> Option<Method> {
    let f: MethodFn = match name {
        "String" => Arc::new(|recv, _| match recv {
            Value::Enum(n, e) => Ok(Value::string(e.name_of(*n))),
            _ => Ok(Value::string("")),
        }),
        "Number" if is_proto => Arc::new(|recv, _| {
            Ok(Value::Int(
                recv.as_i64().unwrap_or(0),
                super::value::IntKind::Int32,
            ))
        }),
        _ => return None,
    };
    Some(method(vec![], None, f))
}

fn length(item: &Value) -> Result<Value, String> {
    let n = match item {
        Value::NilPtr(_) => return Err("len of nil pointer".to_string()),
        Value::String(s) => s.len(),
        Value::List(l) => l.items.len(),
        Value::Map(m) => m.entries.len(),
        Value::Invalid | Value::Nil => {
            return Err("reflect: call of reflect.Value.Type on zero Value".to_string());
        }
        other => return Err(format!("len of type {}", other.type_name_or_nil())),
    };
    Ok(Value::int(n as i64))
}

/// An index argument as a position in `0..=cap`.
fn index_arg(index: &Value, cap: usize) -> Result<usize, String> {
    let x: i128 = match index {
        Value::Int(n, _) | Value::Enum(n, _) | Value::Duration(n) => *n as i128,
        Value::Uint(n, _) => *n as i128,
        Value::Invalid | Value::Nil => return Err("cannot index slice/array with nil".to_string()),
        other => {
            return Err(format!(
                "cannot index slice/array with type {}",
                other.type_name_or_nil()
            ));
        }
    };
    if x < 0 || x > cap as i128 {
        return Err(format!("index out of range: {x}"));
    }
    Ok(x as usize)
}

fn index(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    let mut item = match item {
        Value::Invalid | Value::Nil => return Err("index of untyped nil".to_string()),
        v => v.clone(),
    };
    for idx in indexes {
        item = match &item {
            Value::NilPtr(_) => return Err("index of nil pointer".to_string()),
            Value::List(list) => {
                let x = index_arg(idx, list.items.len())?;
                match list.items.get(x) {
                    Some(v) => v.clone(),
                    None => return Err("reflect: slice index out of range".to_string()),
                }
            }
            Value::String(s) => {
                let x = index_arg(idx, s.len())?;
                match s.as_bytes().get(x) {
                    Some(b) => Value::Uint(*b as u64, UintKind::Uint8),
                    None => return Err("reflect: string index out of range".to_string()),
                }
            }
            Value::Map(map) => {
                let key = match idx {
                    Value::String(k) => k.clone(),
                    Value::Invalid | Value::Nil => {
                        return Err("value is nil; should be of type string".to_string());
                    }
                    other => {
                        return Err(format!(
                            "value has type {}; should be string",
                            other.type_name_or_nil()
                        ));
                    }
                };
                match map.entries.get(key.as_ref()) {
                    Some(v) => v.clone(),
                    None => Value::zero_of(&map.elem_type),
                }
            }
            other => {
                return Err(format!(
                    "can't index item of type {}",
                    other.type_name_or_nil()
                ));
            }
        };
    }
    Ok(item)
}

fn slice(item: &Value, indexes: &[Value]) -> Result<Value, String> {
    if matches!(item, Value::Invalid | Value::Nil) {
        return Err("slice of untyped nil".to_string());
    }
    if indexes.len() > 3 {
        return Err(format!("too many slice indexes: {}", indexes.len()));
    }
    let len = match item {
        Value::String(s) => {
            if indexes.len() == 3 {
                return Err("cannot 3-index slice a string".to_string());
            }
            s.len()
        }
        Value::List(l) => l.items.len(),
        other => {
            return Err(format!(
                "can't slice item of type {}",
                other.type_name_or_nil()
            ));
        }
    };
    let mut idx = [0, len, len];
    for (i, index) in indexes.iter().enumerate() {
        idx[i] = index_arg(index, len)?;
    }
    if idx[0] > idx[1] {
        return Err(format!("invalid slice index: {} > {}", idx[0], idx[1]));
    }
    if indexes.len() == 3 && idx[1] > idx[2] {
        return Err(format!("invalid slice index: {} > {}", idx[1], idx[2]));
    }
    Ok(match item {
        Value::String(s) => {
            let bytes = &s.as_bytes()[idx[0]..idx[1]];
            Value::string(String::from_utf8_lossy(bytes).into_owned())
        }
        Value::List(l) => Value::List(Arc::new(super::value::List {
            elem_type: l.elem_type.clone(),
            items: l.items[idx[0]..idx[1]].to_vec(),
            nil: false,
        })),
        _ => Value::Invalid,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Basic {
    Invalid,
    Bool,
    Int,
    Uint,
    Float,
    String,
}

fn basic_kind(v: &Value) -> Basic {
    match v {
        Value::Bool(_) => Basic::Bool,
        Value::Int(..) | Value::Enum(..) | Value::Duration(_) => Basic::Int,
        Value::Uint(..) => Basic::Uint,
        Value::Float(..) => Basic::Float,
        Value::String(_) => Basic::String,
        _ => Basic::Invalid,
    }
}

/// A nil interface compares as "no value".
fn concrete(v: &Value) -> &Value {
    match v {
        Value::Nil => &Value::Invalid,
        v => v,
    }
}

fn is_valid(v: &Value) -> bool {
    !matches!(v, Value::Invalid)
}

fn is_nil(v: &Value) -> bool {
    match v {
        Value::Invalid | Value::Nil | Value::NilPtr(_) => true,
        Value::List(l) => l.nil,
        _ => false,
    }
}

fn as_uint(v: &Value) -> u64 {
    match v {
        Value::Uint(n, _) => *n,
        _ => 0,
    }
}

fn as_int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

fn as_float(v: &Value) -> f64 {
    match v {
        Value::Float(f, _) => *f,
        _ => 0.0,
    }
}

fn incompatible(a: &Value, b: &Value) -> String {
    format!(
        "incompatible types for comparison: {} and {}",
        a.type_name_or_nil(),
        b.type_name_or_nil()
    )
}

/// Go's `==` for values that are not basic kinds: pointers compare by
/// identity, structs field by field; slices and maps are not comparable.
fn go_equal(a: &Value, b: &Value) -> Result<bool, String> {
    Ok(match (a, b) {
        (Value::Object(x), Value::Object(y)) if x.ty.pointer && y.ty.pointer => Arc::ptr_eq(x, y),
        (Value::Object(x), Value::Object(y)) => {
            if x.ty.name != y.ty.name {
                return Ok(false);
            }
            for (f, g) in x.fields.iter().zip(y.fields.iter()) {
                let same = match (basic_kind(f), basic_kind(g)) {
                    (Basic::Invalid, _) | (_, Basic::Invalid) => {
                        if is_nil(f) || is_nil(g) {
                            is_nil(f) == is_nil(g)
                        } else {
                            go_equal(f, g)?
                        }
                    }
                    _ => eq(f, std::slice::from_ref(g))?,
                };
                if !same {
                    return Ok(false);
                }
            }
            true
        }
        (Value::Time(x), Value::Time(y)) => x == y && x.offset() == y.offset(),
        (Value::List(_) | Value::Map(_), _) => {
            return Err(format!(
                "non-comparable type {}: {}",
                gofmt::sprint(std::slice::from_ref(b)),
                b.type_name_or_nil()
            ));
        }
        _ => a.type_name() == b.type_name(),
    })
}

fn kind_name_eq(a: &Value, b: &Value) -> bool {
    a.kind() == b.kind()
}

/// `eq arg1 arg2...`: true if arg1 equals any of the others.
fn eq(arg1: &Value, others: &[Value]) -> Result<bool, String> {
    let arg1 = concrete(arg1);
    if others.is_empty() {
        return Err("missing argument for comparison".to_string());
    }
    let k1 = basic_kind(arg1);
    for arg in others {
        let arg = concrete(arg);
        let k2 = basic_kind(arg);
        let truth = if k1 != k2 {
            match (k1, k2) {
                (Basic::Int, Basic::Uint) => {
                    as_int(arg1) >= 0 && as_int(arg1) as u64 == as_uint(arg)
                }
                (Basic::Uint, Basic::Int) => {
                    as_int(arg) >= 0 && as_uint(arg1) == as_int(arg) as u64
                }
                _ => {
                    if is_valid(arg1) && is_valid(arg) {
                        return Err(incompatible(arg1, arg));
                    }
                    false
                }
            }
        } else {
            match k1 {
                Basic::Bool => matches!((arg1, arg), (Value::Bool(a), Value::Bool(b)) if a == b),
                Basic::Float => as_float(arg1) == as_float(arg),
                Basic::Int => as_int(arg1) == as_int(arg),
                Basic::String => arg1.as_str() == arg.as_str(),
                Basic::Uint => as_uint(arg1) == as_uint(arg),
                Basic::Invalid => {
                    let can_compare = kind_name_eq(arg1, arg) || !is_valid(arg1) || !is_valid(arg);
                    if !can_compare {
                        return Err(format!(
                            "non-comparable types {}: {}, {}: {}",
                            gofmt::sprint(std::slice::from_ref(arg1)),
                            arg1.type_name_or_nil(),
                            arg.type_name_or_nil(),
                            gofmt::sprint(std::slice::from_ref(arg))
                        ));
                    }
                    if is_nil(arg1) || is_nil(arg) {
                        is_nil(arg) == is_nil(arg1)
                    } else {
                        go_equal(arg1, arg)?
                    }
                }
            }
        };
        if truth {
            return Ok(true);
        }
    }
    Ok(false)
}

fn lt(arg1: &Value, arg2: &Value) -> Result<bool, String> {
    let arg1 = concrete(arg1);
    let arg2 = concrete(arg2);
    let k1 = basic_kind(arg1);
    if k1 == Basic::Invalid {
        return Err("invalid type for comparison".to_string());
    }
    let k2 = basic_kind(arg2);
    if k2 == Basic::Invalid {
        return Err("invalid type for comparison".to_string());
    }
    if k1 != k2 {
        return match (k1, k2) {
            (Basic::Int, Basic::Uint) => {
                Ok(as_int(arg1) < 0 || (as_int(arg1) as u64) < as_uint(arg2))
            }
            (Basic::Uint, Basic::Int) => {
                Ok(as_int(arg2) >= 0 && as_uint(arg1) < as_int(arg2) as u64)
            }
            _ => Err(incompatible(arg1, arg2)),
        };
    }
    Ok(match k1 {
        Basic::Bool | Basic::Invalid => return Err("invalid type for comparison".to_string()),
        Basic::Float => as_float(arg1) < as_float(arg2),
        Basic::Int => as_int(arg1) < as_int(arg2),
        Basic::String => arg1.as_str() < arg2.as_str(),
        Basic::Uint => as_uint(arg1) < as_uint(arg2),
    })
}

fn le(arg1: &Value, arg2: &Value) -> Result<bool, String> {
    if lt(arg1, arg2)? {
        return Ok(true);
    }
    eq(arg1, std::slice::from_ref(arg2))
}

/// Go's `template.HTMLEscapeString`.
pub fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\0' => out.push('\u{FFFD}'),
            '"' => out.push_str("&#34;"),
            '\'' => out.push_str("&#39;"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

/// Go's `template.JSEscapeString`.
pub fn js_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '<' => out.push_str("\\u003C"),
            '>' => out.push_str("\\u003E"),
            '&' => out.push_str("\\u0026"),
            '=' => out.push_str("\\u003D"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u00{:02X}", c as u32)),
            c if (c as u32) < 0x80 => out.push(c),
            c if gofmt::is_print(c) => out.push(c),
            c => out.push_str(&format!("\\u{:04X}", c as u32)),
        }
    }
    out
}

/// Go's `url.QueryEscape`.
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            b => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}
