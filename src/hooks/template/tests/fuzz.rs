//! No input may panic the engine: thousands of generated templates, from
//! token soup to grammatical programs, parsed and executed against the
//! fixture and against no data. Any result is fine; a panic fails.

use std::panic::{AssertUnwindSafe, catch_unwind};

use super::fix;
use crate::hooks::template::gofmt::sprintf;
use crate::hooks::template::{Value, render};

/// A small deterministic generator (xorshift64*), so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const TOKENS: &[&str] = &[
    "{{",
    "}}",
    "{{-",
    "-}}",
    "{{- ",
    " -}}",
    " ",
    "  ",
    ".",
    ".Str",
    ".List",
    ".M",
    ".MA",
    ".P",
    ".NilP",
    ".Any",
    ".When",
    ".D",
    ".Int",
    ".Greet",
    ".Add",
    ".Fail",
    ".Join",
    ".Name",
    ".x",
    "$",
    "$x",
    "$y",
    ":=",
    "=",
    "|",
    "(",
    ")",
    "if",
    "else",
    "end",
    "range",
    "with",
    "define",
    "template",
    "block",
    "break",
    "continue",
    "\"s\"",
    "\"a\\tb\\u00e9\"",
    "`raw`",
    "'c'",
    "'\\n'",
    "1",
    "2.5",
    "-3",
    "0x1F",
    "1e3",
    "1_0",
    "nil",
    "true",
    "false",
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "call",
    "\"%d %s %v %q %x %5.2f %-3d %*d %[2]d %! %T %U %c %e %g %08.3f %+q\"",
    "/*",
    "*/",
    ",",
    "\n",
    "\t",
    "é",
    "\\",
    "\"",
    "'",
    "`",
    "#",
    "}",
    "{",
    "0",
    "99999999999999999999",
    "$.Str",
];

fn token_soup(rng: &mut Rng) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(40) {
        match rng.below(10) {
            0 => s.push(char::from(rng.below(128) as u8)),
            1 => s.push(char::from_u32(rng.below(0x3000) as u32).unwrap_or('?')),
            _ => s.push_str(rng.pick(TOKENS)),
        }
    }
    s
}

const OPERANDS: &[&str] = &[
    ".",
    ".Str",
    ".Empty",
    ".Int",
    ".Neg",
    ".I64",
    ".I32",
    ".U",
    ".F",
    ".Big",
    ".T",
    ".Fl",
    ".List",
    ".EmptyL",
    ".Ints",
    ".M",
    ".M.a",
    ".MI",
    ".MA",
    ".MA.k",
    ".P",
    ".P.Name",
    ".P.Tags",
    ".NilP",
    ".Any",
    ".When",
    ".UTC",
    ".D",
    "$",
    "$.Str",
    "\"x\"",
    "\"\"",
    "1",
    "0",
    "-2",
    "2.5",
    "'a'",
    "true",
    "false",
    "nil",
    ".Missing",
    ".When.Unix",
    ".D.Seconds",
    ".When.Month",
];
const FUNCS: &[&str] = &[
    "and",
    "or",
    "not",
    "len",
    "index",
    "slice",
    "print",
    "printf",
    "println",
    "eq",
    "ne",
    "lt",
    "le",
    "gt",
    "ge",
    "html",
    "js",
    "urlquery",
    "call",
    ".Greet",
    ".Add",
    ".Join",
    ".Fail",
    ".P.Hello",
    ".NilP.Hello",
];

fn expr(rng: &mut Rng, depth: usize) -> String {
    if depth > 3 || rng.below(3) == 0 {
        return rng.pick(OPERANDS).to_string();
    }
    let mut s = rng.pick(FUNCS).to_string();
    for _ in 0..rng.below(4) {
        s.push(' ');
        if rng.below(4) == 0 {
            s.push_str(&format!("({})", expr(rng, depth + 1)));
        } else {
            s.push_str(rng.pick(OPERANDS));
        }
    }
    if rng.below(5) == 0 {
        s = format!("{} | {}", s, rng.pick(FUNCS));
    }
    s
}

fn program(rng: &mut Rng, depth: usize) -> String {
    let mut s = String::new();
    for _ in 0..rng.below(5) + 1 {
        match rng.below(9) {
            0 => s.push_str("text "),
            1 if depth < 4 => s.push_str(&format!(
                "{{{{if {}}}}}{}{{{{else}}}}{}{{{{end}}}}",
                expr(rng, 0),
                program(rng, depth + 1),
                program(rng, depth + 1)
            )),
            2 if depth < 4 => s.push_str(&format!(
                "{{{{range $i, $v := {}}}}}{}{{{{if $i}}}}{{{{break}}}}{{{{end}}}}{{{{end}}}}",
                rng.pick(OPERANDS),
                program(rng, depth + 1)
            )),
            3 if depth < 4 => s.push_str(&format!(
                "{{{{with {}}}}}{}{{{{end}}}}",
                expr(rng, 0),
                program(rng, depth + 1)
            )),
            4 => s.push_str(&format!("{{{{$x := {}}}}}{{{{$x}}}}", expr(rng, 0))),
            5 => s.push_str(&format!("{{{{- {} -}}}}", expr(rng, 0))),
            _ => s.push_str(&format!("{{{{{}}}}}", expr(rng, 0))),
        }
    }
    s
}

fn must_not_panic(input: &str) {
    let data = fix();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let _ = render("t", input, &data);
        let _ = render("t", input, &Value::Invalid);
    }));
    assert!(result.is_ok(), "panicked on template {input:?}");
}

#[test]
fn garbage_templates_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..6000 {
        must_not_panic(&token_soup(&mut rng));
    }
}

#[test]
fn generated_programs_never_panic() {
    let mut rng = Rng(0xD1B5_4A32_D192_ED03);
    for _ in 0..3000 {
        must_not_panic(&program(&mut rng, 0));
    }
}

#[test]
fn printf_formats_never_panic() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    let pieces = [
        "%",
        "d",
        "s",
        "v",
        "q",
        "x",
        "X",
        "f",
        "e",
        "g",
        "t",
        "c",
        "U",
        "T",
        "*",
        "[",
        "]",
        "1",
        "2",
        "9",
        ".",
        "-",
        "+",
        "#",
        " ",
        "0",
        "%%",
        "é",
        "[0]",
        "[99]",
        "999999999",
    ];
    let args = [
        Value::int(-12),
        Value::string("str"),
        Value::float(2.5),
        fix(),
        Value::Nil,
        Value::Bool(true),
        Value::Duration(1_500_000),
    ];
    for _ in 0..4000 {
        let mut format = String::new();
        for _ in 0..rng.below(12) {
            format.push_str(rng.pick(&pieces));
        }
        let result = catch_unwind(AssertUnwindSafe(|| sprintf(&format, &args)));
        assert!(result.is_ok(), "printf panicked on {format:?}");
    }
}
