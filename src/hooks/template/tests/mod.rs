//! Tests of the template engine: a table of Go-verified cases
//! (`go_table.rs`) run against a fixture mirroring a Go struct, checks of
//! behaviour newer than the Go release the table was verified with, the
//! engine's own bounds, and a no-panic sweep over generated garbage.

mod fuzz;
mod go_table;

use std::collections::BTreeMap;
use std::sync::Arc;

use super::gotime::fixed;
use super::value::{
    FieldDef, FloatKind, IntKind, JsonName, List, Method, ObjectType, Param, UintKind, Value,
};
use super::{Template, render};

pub enum Data {
    Fix,
    Nil,
}

pub enum Want {
    Out(&'static str),
    Err(&'static str),
    ErrContains(&'static str),
}

pub struct Case {
    pub name: &'static str,
    pub tmpl: &'static str,
    pub data: Data,
    pub want: Want,
}

fn struct_type(
    name: &str,
    pointer: bool,
    fields: &[&str],
    methods: Vec<(String, Method)>,
) -> Arc<ObjectType> {
    Arc::new(ObjectType {
        name: name.to_string(),
        pointer,
        fields: fields
            .iter()
            .map(|f| FieldDef {
                name: f.to_string(),
                json: JsonName::GoName,
            })
            .collect(),
        methods,
        stringer: None,
    })
}

fn method(
    params: Vec<Param>,
    variadic: Option<Param>,
    f: fn(&Value, &[Value]) -> Result<Value, String>,
) -> Method {
    Method {
        params,
        variadic,
        func: Arc::new(f),
    }
}

fn inner_type() -> Arc<ObjectType> {
    // `func (i *Inner) Hello() string { return "hi " + i.Name }`
    let hello = method(vec![], None, |recv, _| match recv {
        Value::Object(o) => Ok(Value::string(format!(
            "hi {}",
            o.fields[0].as_str().unwrap_or("")
        ))),
        _ => Err("runtime error: invalid memory address or nil pointer dereference".to_string()),
    });
    struct_type(
        "*main.Inner",
        true,
        &["Name", "N", "Tags"],
        vec![("Hello".to_string(), hello)],
    )
}

fn strings(items: &[&str]) -> Value {
    Value::list("string", items.iter().map(|s| Value::string(*s)).collect())
}

/// The `main.Fix` value the Go side of the table used.
pub fn fix() -> Value {
    let methods = vec![
        (
            "Greet".to_string(),
            method(vec![Param::String], None, |_, a| {
                Ok(Value::string(format!(
                    "hello {}",
                    a[0].as_str().unwrap_or("")
                )))
            }),
        ),
        (
            "Add".to_string(),
            method(
                vec![Param::Int(IntKind::Int), Param::Int(IntKind::Int)],
                None,
                |_, a| {
                    Ok(Value::int(
                        a[0].as_i64().unwrap_or(0) + a[1].as_i64().unwrap_or(0),
                    ))
                },
            ),
        ),
        (
            "Fail".to_string(),
            method(vec![], None, |_, _| Err("boom".to_string())),
        ),
        (
            "Join".to_string(),
            method(vec![Param::String], Some(Param::String), |_, a| {
                let sep = a[0].as_str().unwrap_or("");
                let parts: Vec<&str> = a[1..].iter().filter_map(Value::as_str).collect();
                Ok(Value::string(parts.join(sep)))
            }),
        ),
    ];
    let names = [
        "Str", "Empty", "Quote", "Int", "Neg", "Zero", "I64", "I32", "U", "F", "F2", "Big",
        "Small", "Whole", "T", "Fl", "List", "EmptyL", "Ints", "M", "MI", "MA", "P", "NilP", "Any",
        "When", "UTC", "D",
    ];
    let ty = struct_type("main.Fix", false, &names, methods);
    let map = |elem: &str, entries: Vec<(&str, Value)>| {
        Value::map(
            elem,
            entries
                .into_iter()
                .map(|(k, v)| (k.to_string(), v))
                .collect::<BTreeMap<_, _>>(),
        )
    };
    let inner = inner_type();
    Value::object(
        ty,
        vec![
            Value::string("hello"),
            Value::string(""),
            Value::string("a\"b<c>&'d"),
            Value::int(42),
            Value::int(-7),
            Value::int(0),
            Value::Int(1234567890123, IntKind::Int64),
            Value::Int(5, IntKind::Int32),
            Value::Uint(7, UintKind::Uint),
            Value::float(3.5),
            Value::float(0.1),
            Value::float(1e21),
            Value::float(1e-7),
            Value::float(100.0),
            Value::Bool(true),
            Value::Bool(false),
            strings(&["a", "b", "c"]),
            Value::List(Arc::new(List {
                elem_type: "string".into(),
                items: vec![],
                nil: true,
            })),
            Value::list("int", vec![Value::int(3), Value::int(1), Value::int(2)]),
            map(
                "string",
                vec![
                    ("x", Value::string("1")),
                    ("b", Value::string("2")),
                    ("a", Value::string("3")),
                ],
            ),
            map("int", vec![("one", Value::int(1)), ("two", Value::int(2))]),
            map(
                "interface {}",
                vec![("k", Value::string("v")), ("n", Value::int(2))],
            ),
            Value::object(
                inner.clone(),
                vec![Value::string("in"), Value::int(3), strings(&["t1"])],
            ),
            Value::NilPtr(inner),
            Value::Nil,
            Value::Time(fixed(2024, 3, 5, 7, 8, 9, 123_456_789, 5 * 3600 + 1800)),
            Value::Time(fixed(2024, 12, 31, 23, 59, 59, 0, 0)),
            Value::Duration(3_723_500_000_000),
        ],
    )
}

fn data(d: &Data) -> Value {
    match d {
        Data::Fix => fix(),
        Data::Nil => Value::Invalid,
    }
}

/// Runs a table of cases, reporting every mismatch at once.
pub fn check_cases<'a>(
    cases: impl IntoIterator<Item = (&'a str, Result<String, String>, &'a Want)>,
) {
    let mut failures = Vec::new();
    let mut count = 0;
    for (name, got, want) in cases {
        count += 1;
        let ok = match (want, &got) {
            (Want::Out(w), Ok(g)) => w == g,
            (Want::Err(w), Err(g)) => w == g,
            (Want::ErrContains(w), Err(g)) => g.contains(w),
            _ => false,
        };
        if !ok {
            let want = match want {
                Want::Out(w) => format!("output {w:?}"),
                Want::Err(w) => format!("error {w:?}"),
                Want::ErrContains(w) => format!("error containing {w:?}"),
            };
            failures.push(format!("{name}:\n   want {want}\n    got {got:?}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {count} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn go_verified_table() {
    assert!(go_table::CASES.len() >= 60);
    check_cases(go_table::CASES.iter().map(|c| {
        let got = render("t", c.tmpl, &data(&c.data)).map_err(|e| e.to_string());
        (c.name, got, &c.want)
    }));
}

fn run(tmpl: &str) -> Result<String, String> {
    render("t", tmpl, &fix()).map_err(|e| e.to_string())
}

// Behaviour added to text/template after the Go release the table was
// verified with (range over integers in Go 1.22, `else with` in Go 1.23),
// checked against Go's documented semantics.

#[test]
fn range_over_integer() {
    assert_eq!(run("{{range 3}}{{.}},{{end}}").unwrap(), "0,1,2,");
    assert_eq!(
        run("{{range $i := .Int}}{{if ge $i 2}}{{break}}{{end}}{{$i}}{{end}}").unwrap(),
        "01"
    );
    assert_eq!(run("{{range .Zero}}x{{else}}none{{end}}").unwrap(), "none");
    let err = run("{{range $i, $v := 3}}{{end}}").unwrap_err();
    assert!(
        err.contains("can't use 3 to iterate over more than one variable"),
        "{err}"
    );
}

#[test]
fn else_with() {
    assert_eq!(
        run("{{with .Empty}}a{{else with .Str}}{{.}}{{end}}").unwrap(),
        "hello"
    );
    assert_eq!(
        run("{{with .Empty}}a{{else with .Zero}}b{{else}}c{{end}}").unwrap(),
        "c"
    );
}

#[test]
fn range_assigns_existing_variables() {
    assert_eq!(
        run("{{$i := 0}}{{$v := 0}}{{range $i, $v = .List}}{{end}}{{$i}}{{$v}}").unwrap(),
        "2c"
    );
}

#[test]
fn call_names_the_callee() {
    let err = run("{{call .Str}}").unwrap_err();
    assert!(
        err.ends_with("error calling call: non-function .Str of type string"),
        "{err}"
    );
}

#[test]
fn comparisons_name_incompatible_types() {
    let err = run("{{eq 1 \"a\"}}").unwrap_err();
    assert!(
        err.ends_with("incompatible types for comparison: int and string"),
        "{err}"
    );
}

#[test]
fn error_positions_point_at_the_node() {
    let err = run("line one\n  {{ .Nope }}").unwrap_err();
    assert_eq!(
        err,
        "template: t:2:5: executing \"t\" at <.Nope>: can't evaluate field Nope in type main.Fix"
    );
    let err = run("{{define \"inner\"}}\n{{.Missing}}{{end}}{{template \"inner\" .}}").unwrap_err();
    assert_eq!(
        err,
        "template: t:2:2: executing \"inner\" at <.Missing>: can't evaluate field Missing in type main.Fix"
    );
}

#[test]
fn execute_named_template() {
    let t = Template::parse("t", "{{define \"x\"}}[{{.}}]{{end}}top").unwrap();
    assert_eq!(t.execute(&Value::int(1)).unwrap(), "top");
    assert_eq!(t.execute_template("x", &Value::int(1)).unwrap(), "[1]");
    let err = t.execute_template("nope", &Value::Invalid).unwrap_err();
    assert_eq!(
        err.to_string(),
        "template: no template \"nope\" associated with template \"t\""
    );
}

#[test]
fn recursion_is_bounded() {
    let err = render(
        "t",
        "{{define \"r\"}}{{template \"r\" .}}{{end}}{{template \"r\" .}}",
        &Value::Invalid,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("exceeded maximum template depth"), "{err}");
}

/// The worst nesting the limits allow (maximal recursion, each level
/// evaluating a maximally parenthesised expression) fits in a 2 MiB stack,
/// the size of tokio's worker threads.
#[test]
fn worst_case_fits_a_small_stack() {
    let parens = format!("{}1{}", "(".repeat(45), ")".repeat(45));
    let text = format!(
        "{{{{define \"r\"}}}}{{{{with $x := {parens}}}}}{{{{range $i := 1}}}}{{{{template \"r\" $x}}}}{{{{end}}}}{{{{end}}}}{{{{end}}}}{{{{template \"r\"}}}}"
    );
    let handle = std::thread::Builder::new()
        .stack_size(2 << 20)
        .spawn(move || render("t", &text, &Value::Invalid).map_err(|e| e.to_string()))
        .unwrap();
    let err = handle.join().expect("no stack overflow").unwrap_err();
    assert!(err.contains("exceeded maximum template depth"), "{err}");
}

#[test]
fn deep_nesting_is_rejected_at_parse_time() {
    let deep = format!("{{{{{}1{}}}}}", "(".repeat(60), ")".repeat(60));
    let err = render("t", &deep, &Value::Invalid).unwrap_err().to_string();
    assert!(err.contains("max expression depth exceeded"), "{err}");
    let ifs = format!("{}x{}", "{{if 1}}".repeat(60), "{{end}}".repeat(60));
    let err = render("t", &ifs, &Value::Invalid).unwrap_err().to_string();
    assert!(err.contains("max expression depth exceeded"), "{err}");
    // Moderate nesting is fine.
    let ok = format!("{}x{}", "{{if 1}}".repeat(40), "{{end}}".repeat(40));
    assert_eq!(render("t", &ok, &Value::Invalid).unwrap(), "x");
}

#[test]
fn runaway_loops_stop() {
    let err = render("t", "{{range 100000000000}}x{{end}}", &Value::Invalid)
        .unwrap_err()
        .to_string();
    assert!(err.contains("execution exceeded"), "{err}");
}

#[test]
fn time_local_and_enum_methods() {
    assert_eq!(
        run("{{.When.Local.Format \"15:04 -07:00\"}} {{.When.Month.String}}").unwrap(),
        "07:08 +05:30 March"
    );
    let err = run("{{.When.Month.Number}}").unwrap_err();
    assert!(
        err.contains("can't evaluate field Number in type time.Month"),
        "{err}"
    );
}

#[test]
fn float32_prints_with_float32_digits() {
    let v = Value::Float(0.1f32 as f64, FloatKind::F32);
    assert_eq!(render("t", "{{.}}", &v).unwrap(), "0.1");
}
