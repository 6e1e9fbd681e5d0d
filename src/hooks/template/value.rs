//! The dynamic values templates operate on: a small model of the Go values
//! Backrest hands to `text/template` (strings, numbers, slices, maps, structs
//! and pointers to them, `time.Time`, `time.Duration`, enums), detailed enough
//! that truthiness, comparisons, printing and error messages come out as Go's.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, FixedOffset};

/// Go's signed integer types. The distinction matters where Go code switches
/// on the dynamic type (Backrest's `FormatSizeBytes` accepts int, int32 and
/// int64 only) and in type names shown by errors and `%T`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IntKind {
    Int,
    Int32,
    Int64,
}

/// Go's unsigned integer types.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UintKind {
    Uint,
    Uint8,
    Uint32,
    Uint64,
}

/// Go's float types: a float32 prints with float32's shortest digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FloatKind {
    F32,
    F64,
}

impl IntKind {
    pub fn go_name(self) -> &'static str {
        match self {
            IntKind::Int => "int",
            IntKind::Int32 => "int32",
            IntKind::Int64 => "int64",
        }
    }
}

impl UintKind {
    pub fn go_name(self) -> &'static str {
        match self {
            UintKind::Uint => "uint",
            UintKind::Uint8 => "uint8",
            UintKind::Uint32 => "uint32",
            UintKind::Uint64 => "uint64",
        }
    }
}

impl FloatKind {
    pub fn go_name(self) -> &'static str {
        match self {
            FloatKind::F32 => "float32",
            FloatKind::F64 => "float64",
        }
    }
}

/// A template value.
#[derive(Clone)]
pub enum Value {
    /// Go's invalid `reflect.Value`: what a missing map key or a field of
    /// nil data evaluates to. Printed as `<no value>`.
    Invalid,
    /// An untyped nil (a nil `interface{}`). Printed as `<nil>`.
    Nil,
    Bool(bool),
    Int(i64, IntKind),
    Uint(u64, UintKind),
    Float(f64, FloatKind),
    String(Arc<str>),
    List(Arc<List>),
    Map(Arc<Map>),
    Object(Arc<Object>),
    /// A nil pointer to a struct type: methods still resolve (Go calls them
    /// with a nil receiver), field access is a "nil pointer evaluating" error.
    NilPtr(Arc<ObjectType>),
    Time(DateTime<FixedOffset>),
    /// `time.Duration`, in nanoseconds.
    Duration(i64),
    /// A named integer type with a `String()` method (proto enums,
    /// `time.Month`, `time.Weekday`).
    Enum(i64, Arc<EnumType>),
}

/// A Go slice.
pub struct List {
    /// Go name of the element type, e.g. `string` (for `[]string`).
    pub elem_type: String,
    pub items: Vec<Value>,
    /// A nil slice (as opposed to an empty one): `null` in JSON.
    pub nil: bool,
}

/// A Go map with string keys; iteration and printing are in sorted key order,
/// as Go's fmt and text/template sort map keys.
pub struct Map {
    /// Go name of the element type, e.g. `string` (for `map[string]string`).
    pub elem_type: String,
    pub entries: BTreeMap<String, Value>,
}

/// A struct value (or a non-nil pointer to one).
pub struct Object {
    pub ty: Arc<ObjectType>,
    /// Parallel to `ty.fields`.
    pub fields: Vec<Value>,
}

/// How `encoding/json` names a struct field.
#[derive(Clone, Debug)]
pub enum JsonName {
    /// No tag: the Go field name, always emitted.
    GoName,
    /// A `json:"name"` / `json:"name,omitempty"` tag.
    Tag { name: String, omitempty: bool },
}

#[derive(Clone, Debug)]
pub struct FieldDef {
    pub name: String,
    pub json: JsonName,
}

/// The result of a method call: Go methods called from templates return a
/// value, or a value and an error.
pub type MethodResult = Result<Value, String>;

/// A method body: receives the receiver and the already type-checked args.
pub type MethodFn = Arc<dyn Fn(&Value, &[Value]) -> MethodResult + Send + Sync>;

/// A method's Go signature (parameter types drive how literals are converted
/// and which values are accepted) plus its body.
#[derive(Clone)]
pub struct Method {
    pub params: Vec<Param>,
    pub variadic: Option<Param>,
    pub func: MethodFn,
}

/// The Go type of a function parameter, as far as argument evaluation needs
/// to know it.
#[derive(Clone)]
pub enum Param {
    /// `interface{}` / `any`.
    Any,
    /// `reflect.Value` (builtins): receives even invalid values unchanged.
    Reflect,
    String,
    Bool,
    Int(IntKind),
    Float(FloatKind),
    Duration,
    Time,
    Enum(Arc<EnumType>),
}

impl Param {
    pub fn go_name(&self) -> String {
        match self {
            Param::Any => "interface {}".to_string(),
            Param::Reflect => "reflect.Value".to_string(),
            Param::String => "string".to_string(),
            Param::Bool => "bool".to_string(),
            Param::Int(k) => k.go_name().to_string(),
            Param::Float(k) => k.go_name().to_string(),
            Param::Duration => "time.Duration".to_string(),
            Param::Time => "time.Time".to_string(),
            Param::Enum(e) => e.name.clone(),
        }
    }
}

/// Renders a value the way its Go `String()` method would.
pub type StringerFn = Arc<dyn Fn(&Value) -> String + Send + Sync>;

/// A Go struct type as templates see it.
pub struct ObjectType {
    /// The Go type of the value as templates hold it, e.g. `*v1.Repo` or
    /// `tasks.HookVars`: used in error messages and `%T`.
    pub name: String,
    /// Whether values are pointers to the struct (`&{…}` when printed, nil
    /// pointers possible).
    pub pointer: bool,
    pub fields: Vec<FieldDef>,
    pub methods: Vec<(String, Method)>,
    /// The type's `String()` method, if it has one: fmt prints through it.
    pub stringer: Option<StringerFn>,
}

impl ObjectType {
    pub fn field_index(&self, name: &str) -> Option<usize> {
        self.fields.iter().position(|f| f.name == name)
    }

    pub fn method(&self, name: &str) -> Option<&Method> {
        self.methods.iter().find(|(n, _)| n == name).map(|(_, m)| m)
    }

    /// The struct type's name without the pointer star (`v1.Repo`).
    pub fn elem_name(&self) -> &str {
        self.name.strip_prefix('*').unwrap_or(&self.name)
    }
}

/// A named integer type whose `String()` maps numbers to names.
pub struct EnumType {
    pub name: String,
    pub values: Vec<(i64, String)>,
    pub kind: IntKind,
    /// Text for numbers without a name (proto enums print the number,
    /// `time.Month` prints `%!Month(13)`).
    pub unknown: fn(&EnumType, i64) -> String,
}

impl EnumType {
    pub fn name_of(&self, n: i64) -> String {
        match self.values.iter().find(|(v, _)| *v == n) {
            Some((_, name)) => name.clone(),
            None => (self.unknown)(self, n),
        }
    }

    /// `unknown` for proto enums: the number itself.
    pub fn unknown_as_number(_: &EnumType, n: i64) -> String {
        n.to_string()
    }
}

/// Go's `reflect.Kind`, as far as the template engine distinguishes kinds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Invalid,
    Interface,
    Bool,
    Int,
    Uint,
    Float,
    String,
    Slice,
    Map,
    Struct,
    Pointer,
}

impl Value {
    pub fn string(s: impl Into<Arc<str>>) -> Value {
        Value::String(s.into())
    }

    pub fn int(n: i64) -> Value {
        Value::Int(n, IntKind::Int)
    }

    pub fn float(f: f64) -> Value {
        Value::Float(f, FloatKind::F64)
    }

    pub fn list(elem_type: &str, items: Vec<Value>) -> Value {
        Value::List(Arc::new(List {
            elem_type: elem_type.to_string(),
            items,
            nil: false,
        }))
    }

    pub fn string_list(items: &[String]) -> Value {
        Value::List(Arc::new(List {
            elem_type: "string".to_string(),
            nil: items.is_empty(),
            items: items.iter().map(|s| Value::string(s.as_str())).collect(),
        }))
    }

    pub fn map(elem_type: &str, entries: BTreeMap<String, Value>) -> Value {
        Value::Map(Arc::new(Map {
            elem_type: elem_type.to_string(),
            entries,
        }))
    }

    pub fn object(ty: Arc<ObjectType>, fields: Vec<Value>) -> Value {
        debug_assert_eq!(ty.fields.len(), fields.len());
        Value::Object(Arc::new(Object { ty, fields }))
    }

    pub fn kind(&self) -> Kind {
        match self {
            Value::Invalid => Kind::Invalid,
            Value::Nil => Kind::Interface,
            Value::Bool(_) => Kind::Bool,
            Value::Int(..) | Value::Enum(..) | Value::Duration(_) => Kind::Int,
            Value::Uint(..) => Kind::Uint,
            Value::Float(..) => Kind::Float,
            Value::String(_) => Kind::String,
            Value::List(_) => Kind::Slice,
            Value::Map(_) => Kind::Map,
            Value::Object(o) if o.ty.pointer => Kind::Pointer,
            Value::Object(_) | Value::Time(_) => Kind::Struct,
            Value::NilPtr(_) => Kind::Pointer,
        }
    }

    /// The Go type name (`reflect.Type.String()`); `None` for invalid and
    /// untyped nil values, which have no type.
    pub fn type_name(&self) -> Option<String> {
        Some(match self {
            Value::Invalid | Value::Nil => return None,
            Value::Bool(_) => "bool".to_string(),
            Value::Int(_, k) => k.go_name().to_string(),
            Value::Uint(_, k) => k.go_name().to_string(),
            Value::Float(_, k) => k.go_name().to_string(),
            Value::String(_) => "string".to_string(),
            Value::List(l) => format!("[]{}", l.elem_type),
            Value::Map(m) => format!("map[string]{}", m.elem_type),
            Value::Object(o) => o.ty.name.clone(),
            Value::NilPtr(t) => t.name.clone(),
            Value::Time(_) => "time.Time".to_string(),
            Value::Duration(_) => "time.Duration".to_string(),
            Value::Enum(_, e) => e.name.clone(),
        })
    }

    /// Type name for messages, with Go's `<nil>` for typeless values.
    pub fn type_name_or_nil(&self) -> String {
        self.type_name().unwrap_or_else(|| "<nil>".to_string())
    }

    /// Go's template truthiness (`template.IsTrue`): the zero value of a type
    /// is false, structs are always true. Never fails for our value kinds.
    pub fn is_true(&self) -> bool {
        match self {
            Value::Invalid | Value::Nil | Value::NilPtr(_) => false,
            Value::Bool(b) => *b,
            Value::Int(n, _) | Value::Enum(n, _) | Value::Duration(n) => *n != 0,
            Value::Uint(n, _) => *n != 0,
            Value::Float(f, _) => *f != 0.0,
            Value::String(s) => !s.is_empty(),
            Value::List(l) => !l.items.is_empty(),
            Value::Map(m) => !m.entries.is_empty(),
            Value::Object(_) | Value::Time(_) => true,
        }
    }

    /// The integer held by an int-kinded value.
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            Value::Int(n, _) | Value::Enum(n, _) | Value::Duration(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// The zero value of a Go type named `type_name` (for missing map keys
    /// with `index`); types we do not model give an untyped nil.
    pub fn zero_of(type_name: &str) -> Value {
        match type_name {
            "string" => Value::string(""),
            "bool" => Value::Bool(false),
            "int" => Value::Int(0, IntKind::Int),
            "int32" => Value::Int(0, IntKind::Int32),
            "int64" => Value::Int(0, IntKind::Int64),
            "uint" => Value::Uint(0, UintKind::Uint),
            "uint32" => Value::Uint(0, UintKind::Uint32),
            "uint64" => Value::Uint(0, UintKind::Uint64),
            "float64" => Value::Float(0.0, FloatKind::F64),
            "float32" => Value::Float(0.0, FloatKind::F32),
            _ => Value::Nil,
        }
    }

    /// Builds a value from JSON the way Go's `encoding/json` decodes into
    /// `interface{}`: objects become `map[string]interface {}`, arrays
    /// `[]interface {}`, numbers float64.
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Nil,
            serde_json::Value::Bool(b) => Value::Bool(*b),
            serde_json::Value::Number(n) => Value::float(n.as_f64().unwrap_or(0.0)),
            serde_json::Value::String(s) => Value::string(s.as_str()),
            serde_json::Value::Array(items) => {
                Value::list("interface {}", items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::map(
                "interface {}",
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }
}

impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Value({}: {})",
            self.type_name_or_nil(),
            super::gofmt::sprint(std::slice::from_ref(self))
        )
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Value {
        Value::string(s)
    }
}

impl From<String> for Value {
    fn from(s: String) -> Value {
        Value::string(s)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Value {
        Value::Bool(b)
    }
}

impl From<i64> for Value {
    fn from(n: i64) -> Value {
        Value::int(n)
    }
}

impl From<f64> for Value {
    fn from(f: f64) -> Value {
        Value::float(f)
    }
}
