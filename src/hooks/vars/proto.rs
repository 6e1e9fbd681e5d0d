//! Proto messages as the Go structs templates see in Backrest: fields under
//! their Go names (`.Repo.PrunePolicy.MaxUnusedPercent`), getters
//! (`.Repo.GetId`), oneofs as interface fields holding wrapper structs,
//! `encoding/json` tags (snake_case, omitempty) and a `String()` method.
//!
//! Values are built from a message's proto3 JSON (pbjson) plus the compiled
//! descriptor set, which says what every field is: fields pbjson omits get
//! their Go zero value, int64 strings become integers, enum names numbers.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock};

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FieldDescriptorProto, FileDescriptorSet};

use crate::hooks::template::{
    EnumType, FieldDef, FloatKind, IntKind, JsonName, List, Method, ObjectType, UintKind, Value,
};

/// Backrest declares these messages' fields in a different order than our
/// `proto/` does; Go's struct order (which `encoding/json` and prototext
/// follow) is Backrest's declaration order.
const GO_FIELD_ORDER: &[(&str, &[&str])] = &[
    (
        ".v1.Repo",
        &[
            "id",
            "uri",
            "guid",
            "password",
            "env",
            "flags",
            "prune_policy",
            "check_policy",
            "hooks",
            "auto_unlock",
            "auto_initialize",
            "command_prefix",
            "shared",
            "origin_instance_id",
            "forget_policy",
        ],
    ),
    (
        ".v1.Plan",
        &[
            "id",
            "repo",
            "paths",
            "excludes",
            "iexcludes",
            "schedule",
            "retention",
            "hooks",
            "backup_flags",
            "skip_if_unchanged",
        ],
    ),
];

/// The descriptor set indexed by full name (`.v1.Repo`).
struct Registry {
    messages: HashMap<String, (String, DescriptorProto)>,
    enums: HashMap<String, Arc<EnumType>>,
}

/// Go identifiers from proto names: `prune_policy` → `PrunePolicy`,
/// `maxFrequencyDays` → `MaxFrequencyDays` (protoc-gen-go's camel-casing).
pub fn go_camel_case(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        let next_lower = i + 1 < b.len() && b[i + 1].is_ascii_lowercase();
        if c == b'.' && next_lower {
            // ".x" joins words.
        } else if c == b'.' {
            out.push('_');
        } else if c == b'_' && (i == 0 || b[i - 1] == b'.') {
            out.push('X');
        } else if c == b'_' && next_lower {
            // "_x" joins words.
        } else if c.is_ascii_digit() {
            out.push(c as char);
        } else {
            out.push(c.to_ascii_uppercase() as char);
            while i + 1 < b.len() && b[i + 1].is_ascii_lowercase() {
                i += 1;
                out.push(b[i] as char);
            }
        }
        i += 1;
    }
    out
}

static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let set = FileDescriptorSet::decode(crate::pb::DESCRIPTOR_SET).unwrap_or_default();
    let mut registry = Registry {
        messages: HashMap::new(),
        enums: HashMap::new(),
    };
    for file in &set.file {
        let package = file.package().to_string();
        let prefix = format!(".{package}");
        for m in &file.message_type {
            index_message(&mut registry, &package, &prefix, "", m);
        }
        for e in &file.enum_type {
            index_enum(&mut registry, &package, &prefix, "", e);
        }
    }
    registry
});

fn index_message(
    r: &mut Registry,
    package: &str,
    prefix: &str,
    go_prefix: &str,
    m: &DescriptorProto,
) {
    let full = format!("{prefix}.{}", m.name());
    let go_name = format!("{go_prefix}{}", m.name());
    for nested in &m.nested_type {
        index_message(r, package, &full, &format!("{go_name}_"), nested);
    }
    for e in &m.enum_type {
        index_enum(r, package, &full, &format!("{go_name}_"), e);
    }
    r.messages
        .insert(full, (format!("{package}.{go_name}"), m.clone()));
}

fn index_enum(
    r: &mut Registry,
    package: &str,
    prefix: &str,
    go_prefix: &str,
    e: &prost_types::EnumDescriptorProto,
) {
    let full = format!("{prefix}.{}", e.name());
    let ty = EnumType {
        name: format!("{package}.{go_prefix}{}", e.name()),
        values: e
            .value
            .iter()
            .map(|v| (v.number() as i64, v.name().to_string()))
            .collect(),
        kind: IntKind::Int32,
        unknown: EnumType::unknown_as_number,
    };
    r.enums.insert(full, Arc::new(ty));
}

/// The Go enum type of a proto enum (e.g. `.v1.Hook.Condition` →
/// `v1.Hook_Condition`).
pub fn enum_type(full_name: &str) -> Arc<EnumType> {
    REGISTRY.enums.get(full_name).cloned().unwrap_or_else(|| {
        Arc::new(EnumType {
            name: full_name.trim_start_matches('.').to_string(),
            values: Vec::new(),
            kind: IntKind::Int32,
            unknown: EnumType::unknown_as_number,
        })
    })
}

/// One Go struct field of a message: a proto field, or a oneof's interface
/// field holding one of its members.
enum GoField {
    Plain(FieldDescriptorProto),
    Oneof {
        go_name: String,
        members: Vec<FieldDescriptorProto>,
    },
}

fn is_real_oneof_member(f: &FieldDescriptorProto) -> bool {
    f.oneof_index.is_some() && !f.proto3_optional()
}

/// A message's Go struct fields, in Go's order.
fn go_fields(full_name: &str, m: &DescriptorProto) -> Vec<GoField> {
    let mut fields: Vec<FieldDescriptorProto> = m.field.clone();
    if let Some((_, order)) = GO_FIELD_ORDER.iter().find(|(n, _)| *n == full_name) {
        fields.sort_by_key(|f| {
            order
                .iter()
                .position(|n| *n == f.name())
                .unwrap_or(usize::MAX)
        });
    }
    let mut out = Vec::new();
    let mut seen_oneofs = Vec::new();
    for f in &fields {
        if is_real_oneof_member(f) {
            let idx = f.oneof_index();
            if seen_oneofs.contains(&idx) {
                continue;
            }
            seen_oneofs.push(idx);
            let name = m
                .oneof_decl
                .get(idx as usize)
                .map(|o| o.name().to_string())
                .unwrap_or_default();
            out.push(GoField::Oneof {
                go_name: go_camel_case(&name),
                members: fields
                    .iter()
                    .filter(|g| is_real_oneof_member(g) && g.oneof_index() == idx)
                    .cloned()
                    .collect(),
            });
        } else {
            out.push(GoField::Plain(f.clone()));
        }
    }
    out
}

fn is_repeated(f: &FieldDescriptorProto) -> bool {
    f.label() == Label::Repeated
}

/// The map entry message of a map field, if it is one.
fn map_entry(f: &FieldDescriptorProto) -> Option<&'static DescriptorProto> {
    if f.r#type() != Type::Message || !is_repeated(f) {
        return None;
    }
    let (_, m) = REGISTRY.messages.get(f.type_name())?;
    m.options
        .as_ref()
        .and_then(|o| o.map_entry)
        .unwrap_or(false)
        .then_some(m)
}

/// Go type name of a field's element (without the `[]` of repeated).
fn go_elem_type(f: &FieldDescriptorProto) -> String {
    match f.r#type() {
        Type::Double => "float64".into(),
        Type::Float => "float32".into(),
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => "int64".into(),
        Type::Uint64 | Type::Fixed64 => "uint64".into(),
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => "int32".into(),
        Type::Uint32 | Type::Fixed32 => "uint32".into(),
        Type::Bool => "bool".into(),
        Type::String => "string".into(),
        Type::Bytes => "[]uint8".into(),
        Type::Enum => enum_type(f.type_name()).name.clone(),
        Type::Message | Type::Group => match REGISTRY.messages.get(f.type_name()) {
            Some((go, _)) => format!("*{go}"),
            None => "*struct {}".into(),
        },
    }
}

/// Go zero value of a field.
fn zero_value(f: &FieldDescriptorProto) -> Value {
    if let Some(entry) = map_entry(f) {
        let elem = entry.field.get(1).map(go_elem_type).unwrap_or_default();
        return Value::map(&elem, Default::default());
    }
    if is_repeated(f) {
        return Value::List(Arc::new(List {
            elem_type: go_elem_type(f),
            items: Vec::new(),
            nil: true,
        }));
    }
    scalar_from_json(f, None)
}

fn json_i64(v: &serde_json::Value) -> i64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        serde_json::Value::Number(n) => n
            .as_i64()
            .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as i64),
        _ => 0,
    }
}

fn json_u64(v: &serde_json::Value) -> u64 {
    match v {
        serde_json::Value::String(s) => s.parse().unwrap_or(0),
        serde_json::Value::Number(n) => n
            .as_u64()
            .unwrap_or_else(|| n.as_f64().unwrap_or(0.0) as u64),
        _ => 0,
    }
}

fn json_f64(v: &serde_json::Value) -> f64 {
    match v {
        serde_json::Value::Number(n) => n.as_f64().unwrap_or(0.0),
        serde_json::Value::String(s) => match s.as_str() {
            "NaN" => f64::NAN,
            "Infinity" => f64::INFINITY,
            "-Infinity" => f64::NEG_INFINITY,
            s => s.parse().unwrap_or(0.0),
        },
        _ => 0.0,
    }
}

/// A single (non-repeated) field value from its JSON (None: absent).
fn scalar_from_json(f: &FieldDescriptorProto, json: Option<&serde_json::Value>) -> Value {
    let json = json.filter(|j| !j.is_null());
    match f.r#type() {
        Type::Double => Value::Float(json.map(json_f64).unwrap_or(0.0), FloatKind::F64),
        Type::Float => Value::Float(
            json.map(json_f64).unwrap_or(0.0) as f32 as f64,
            FloatKind::F32,
        ),
        Type::Int64 | Type::Sint64 | Type::Sfixed64 => {
            Value::Int(json.map(json_i64).unwrap_or(0), IntKind::Int64)
        }
        Type::Int32 | Type::Sint32 | Type::Sfixed32 => {
            Value::Int(json.map(json_i64).unwrap_or(0), IntKind::Int32)
        }
        Type::Uint64 | Type::Fixed64 => {
            Value::Uint(json.map(json_u64).unwrap_or(0), UintKind::Uint64)
        }
        Type::Uint32 | Type::Fixed32 => {
            Value::Uint(json.map(json_u64).unwrap_or(0), UintKind::Uint32)
        }
        Type::Bool => Value::Bool(json.and_then(|j| j.as_bool()).unwrap_or(false)),
        Type::String => Value::string(json.and_then(|j| j.as_str()).unwrap_or("")),
        Type::Bytes => {
            use base64::Engine as _;
            let bytes = json
                .and_then(|j| j.as_str())
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .unwrap_or_default();
            Value::List(Arc::new(List {
                elem_type: "uint8".into(),
                nil: bytes.is_empty(),
                items: bytes
                    .into_iter()
                    .map(|b| Value::Uint(b as u64, UintKind::Uint8))
                    .collect(),
            }))
        }
        Type::Enum => {
            let ty = enum_type(f.type_name());
            let n = match json {
                Some(serde_json::Value::String(name)) => ty
                    .values
                    .iter()
                    .find(|(_, v)| v == name)
                    .map(|(n, _)| *n)
                    .unwrap_or(0),
                Some(other) => json_i64(other),
                None => 0,
            };
            Value::Enum(n, ty)
        }
        Type::Message | Type::Group => message_value(f.type_name(), json),
    }
}

/// A field value (repeated, map or single) from the message's JSON.
fn field_from_json(f: &FieldDescriptorProto, json: Option<&serde_json::Value>) -> Value {
    if let Some(entry) = map_entry(f) {
        // Entries are (key, value); keys arrive as JSON object keys.
        let Some(value_field) = entry.field.get(1) else {
            return zero_value(f);
        };
        let entries = json
            .and_then(|j| j.as_object())
            .map(|o| {
                o.iter()
                    .map(|(k, v)| (k.clone(), scalar_from_json(value_field, Some(v))))
                    .collect()
            })
            .unwrap_or_default();
        return Value::map(&go_elem_type(value_field), entries);
    }
    if is_repeated(f) {
        let items: Vec<Value> = json
            .and_then(|j| j.as_array())
            .map(|a| a.iter().map(|v| scalar_from_json(f, Some(v))).collect())
            .unwrap_or_default();
        return Value::List(Arc::new(List {
            elem_type: go_elem_type(f),
            nil: items.is_empty(),
            items,
        }));
    }
    scalar_from_json(f, json)
}

/// Go's struct types of messages, built once per message.
static TYPES: LazyLock<std::sync::Mutex<HashMap<String, Arc<ObjectType>>>> =
    LazyLock::new(|| std::sync::Mutex::new(HashMap::new()));

/// The Go type (`*v1.Repo`) of the message `full_name`.
pub fn object_type(full_name: &str) -> Arc<ObjectType> {
    if let Some(t) = TYPES.lock().ok().and_then(|m| m.get(full_name).cloned()) {
        return t;
    }
    let ty = Arc::new(build_object_type(full_name));
    if let Ok(mut m) = TYPES.lock() {
        m.entry(full_name.to_string()).or_insert_with(|| ty.clone());
    }
    ty
}

fn getter(f: impl Fn(&Value) -> Value + Send + Sync + 'static) -> Method {
    Method {
        params: vec![],
        variadic: None,
        func: Arc::new(move |recv, _| Ok(f(recv))),
    }
}

fn build_object_type(full_name: &str) -> ObjectType {
    let Some((msg_go_name, desc)) = REGISTRY.messages.get(full_name) else {
        return ObjectType {
            name: format!("*{}", full_name.trim_start_matches('.')),
            pointer: true,
            fields: vec![],
            methods: vec![],
            stringer: None,
        };
    };
    let fields = go_fields(full_name, desc);
    let mut defs = Vec::new();
    let mut methods: Vec<(String, Method)> = Vec::new();
    for (index, field) in fields.iter().enumerate() {
        match field {
            GoField::Plain(f) => {
                let name = go_camel_case(f.name());
                defs.push(FieldDef {
                    name: name.clone(),
                    json: JsonName::Tag {
                        name: f.name().to_string(),
                        omitempty: true,
                    },
                });
                let zero = f.clone();
                methods.push((
                    format!("Get{name}"),
                    getter(move |recv| match recv {
                        Value::Object(o) => o.fields.get(index).cloned().unwrap_or(Value::Invalid),
                        _ => zero_value(&zero),
                    }),
                ));
            }
            GoField::Oneof { go_name, members } => {
                defs.push(FieldDef {
                    name: go_name.clone(),
                    json: JsonName::GoName,
                });
                methods.push((
                    format!("Get{go_name}"),
                    getter(move |recv| match recv {
                        Value::Object(o) => o.fields.get(index).cloned().unwrap_or(Value::Nil),
                        _ => Value::Nil,
                    }),
                ));
                for member in members {
                    let member_go = go_camel_case(member.name());
                    let wrapper_name = format!("*{msg_go_name}_{member_go}");
                    let m = member.clone();
                    methods.push((
                        format!("Get{member_go}"),
                        getter(move |recv| {
                            if let Value::Object(o) = recv
                                && let Some(Value::Object(w)) = o.fields.get(index)
                                && w.ty.name == wrapper_name
                            {
                                return w.fields.first().cloned().unwrap_or(Value::Invalid);
                            }
                            zero_value(&m)
                        }),
                    ));
                }
            }
        }
    }
    let message = full_name.to_string();
    methods.push((
        "String".to_string(),
        getter(move |recv| Value::string(prototext(&message, recv))),
    ));
    let stringer_name = full_name.to_string();
    ObjectType {
        name: format!("*{msg_go_name}"),
        pointer: true,
        fields: defs,
        methods,
        stringer: Some(Arc::new(move |v| prototext(&stringer_name, v))),
    }
}

/// The wrapper struct type of a oneof member (`*v1.Schedule_Cron`).
fn wrapper_type(message_go_name: &str, member: &FieldDescriptorProto) -> Arc<ObjectType> {
    let member_go = go_camel_case(member.name());
    Arc::new(ObjectType {
        name: format!("*{message_go_name}_{member_go}"),
        pointer: true,
        fields: vec![FieldDef {
            name: member_go,
            json: JsonName::GoName,
        }],
        methods: vec![],
        stringer: None,
    })
}

/// A message value from its proto3 JSON; `None` is a nil pointer.
pub fn message_value(full_name: &str, json: Option<&serde_json::Value>) -> Value {
    let ty = object_type(full_name);
    let Some(obj) = json.and_then(|j| j.as_object()) else {
        return Value::NilPtr(ty);
    };
    let Some((go_name, desc)) = REGISTRY.messages.get(full_name) else {
        return Value::object(ty, vec![]);
    };
    let mut values = Vec::new();
    for field in go_fields(full_name, desc) {
        match field {
            GoField::Plain(f) => values.push(field_from_json(&f, obj.get(f.json_name()))),
            GoField::Oneof { members, .. } => {
                let set = members.iter().find(|m| obj.get(m.json_name()).is_some());
                values.push(match set {
                    Some(m) => {
                        let inner = field_from_json(m, obj.get(m.json_name()));
                        Value::object(wrapper_type(go_name, m), vec![inner])
                    }
                    None => Value::Nil,
                });
            }
        }
    }
    Value::object(ty, values)
}

/// A prost message as its Go struct value.
pub fn from_message<M: serde::Serialize>(full_name: &str, message: &M) -> Value {
    match serde_json::to_value(message) {
        Ok(json) => message_value(full_name, Some(&json)),
        Err(_) => Value::NilPtr(object_type(full_name)),
    }
}

/// The message's `String()`: compact prototext (`id:"r" uri:"/x"`) of the
/// fields that are set, in Go field order. (Go randomises the spacing of
/// this text between builds, so nothing can depend on it byte for byte.)
fn prototext(full_name: &str, v: &Value) -> String {
    let Value::Object(o) = v else {
        return "<nil>".to_string();
    };
    let Some((_, desc)) = REGISTRY.messages.get(full_name) else {
        return String::new();
    };
    let mut parts = Vec::new();
    for (field, value) in go_fields(full_name, desc).iter().zip(o.fields.iter()) {
        match field {
            GoField::Plain(f) => push_text_field(&mut parts, f, value),
            GoField::Oneof { members, .. } => {
                if let Value::Object(w) = value {
                    let name =
                        w.ty.fields
                            .first()
                            .map(|d| d.name.clone())
                            .unwrap_or_default();
                    if let Some(m) = members.iter().find(|m| go_camel_case(m.name()) == name) {
                        let inner = w.fields.first().cloned().unwrap_or(Value::Invalid);
                        parts.push(format!("{}:{}", m.name(), text_scalar(m, &inner)));
                    }
                }
            }
        }
    }
    parts.join(" ")
}

fn push_text_field(parts: &mut Vec<String>, f: &FieldDescriptorProto, value: &Value) {
    match value {
        Value::List(l) if f.r#type() != Type::Bytes || is_repeated(f) => {
            for item in &l.items {
                parts.push(format!("{}:{}", f.name(), text_scalar(f, item)));
            }
        }
        Value::Map(m) => {
            for (k, item) in &m.entries {
                parts.push(format!(
                    "{}:{{key:{} value:{}}}",
                    f.name(),
                    crate::hooks::template::fmt::quote(k),
                    crate::hooks::template::fmt::sprint(std::slice::from_ref(item))
                ));
            }
        }
        v if v.is_true() => parts.push(format!("{}:{}", f.name(), text_scalar(f, v))),
        _ => {}
    }
}

fn text_scalar(f: &FieldDescriptorProto, v: &Value) -> String {
    match (f.r#type(), v) {
        (Type::String, Value::String(s)) => crate::hooks::template::fmt::quote(s),
        (Type::Message, Value::Object(_)) => {
            format!("{{{}}}", prototext(f.type_name(), v))
        }
        (Type::Enum, Value::Enum(n, e)) => e.name_of(*n),
        _ => crate::hooks::template::fmt::sprint(std::slice::from_ref(v)),
    }
}
