//! Go's `fmt` formatting of template values: `Sprint`, `Sprintln`,
//! `Sprintf` (the `print`, `println` and `printf` builtins and `{{ x }}`
//! output), including `strconv`'s float and string-quoting rules, and Go's
//! error notation for bad verbs (`%!d(string=x)`), missing and extra args.

use super::value::{FloatKind, Object, Value};

/// `fmt.Sprint`: operands formatted with `%v`, with a space between two
/// operands when neither is a string.
pub fn sprint(args: &[Value]) -> String {
    let mut out = String::new();
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::String(_));
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        format_value(&mut out, arg, 'v', &Flags::default(), 0);
        prev_string = is_string;
    }
    out
}

/// `fmt.Sprintln`: operands formatted with `%v`, always space-separated,
/// followed by a newline.
pub fn sprintln(args: &[Value]) -> String {
    let mut out = String::new();
    for (i, arg) in args.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        format_value(&mut out, arg, 'v', &Flags::default(), 0);
    }
    out.push('\n');
    out
}

#[derive(Clone, Default)]
struct Flags {
    /// `%+v`: struct fields with their names.
    plus_v: bool,
    plus: bool,
    minus: bool,
    sharp: bool,
    space: bool,
    zero: bool,
    width: Option<usize>,
    prec: Option<usize>,
}

/// Widths and precisions above this are rejected, as Go's fmt does.
const MAX_WIDTH: usize = 1_000_000;

/// `fmt.Sprintf`.
pub fn sprintf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let bytes = format.as_bytes();
    let end = bytes.len();
    let mut arg_num = 0usize;
    let mut reordered = false;
    let mut i = 0usize;
    while i < end {
        let lit_start = i;
        while i < end && bytes[i] != b'%' {
            i += 1;
        }
        out.push_str(&format[lit_start..i]);
        if i >= end {
            break;
        }
        i += 1; // the '%'
        let mut flags = Flags::default();
        // Flags.
        while i < end {
            match bytes[i] {
                b'#' => flags.sharp = true,
                b'0' => flags.zero = !flags.minus,
                b'+' => flags.plus = true,
                b'-' => {
                    flags.minus = true;
                    flags.zero = false;
                }
                b' ' => flags.space = true,
                _ => break,
            }
            i += 1;
        }
        // Argument index, then width.
        let mut good_arg_num = true;
        let (n, ni, after_index) = arg_number(format, i, arg_num, args.len(), &mut good_arg_num);
        arg_num = n;
        i = ni;
        if after_index {
            reordered = true;
        }
        if i < end && bytes[i] == b'*' {
            i += 1;
            match int_from_arg(args, arg_num) {
                Some(w) => {
                    arg_num += 1;
                    if w < 0 {
                        flags.minus = true;
                        flags.zero = false;
                        flags.width = Some(w.unsigned_abs() as usize);
                    } else {
                        flags.width = Some(w as usize);
                    }
                    if flags.width.unwrap_or(0) > MAX_WIDTH {
                        flags.width = None;
                        out.push_str("%!(BADWIDTH)");
                    }
                }
                None => {
                    if arg_num < args.len() {
                        arg_num += 1;
                    }
                    out.push_str("%!(BADWIDTH)");
                }
            }
        } else {
            let (num, ni) = parse_num(bytes, i);
            if let Some(num) = num {
                if after_index {
                    // "%[3]2d": an index must come after the width.
                    good_arg_num = false;
                }
                if num > MAX_WIDTH {
                    out.push_str("%!(BADWIDTH)");
                } else {
                    flags.width = Some(num);
                }
            }
            i = ni;
        }
        // Precision.
        if i < end && bytes[i] == b'.' {
            i += 1;
            let (n, ni, after) = arg_number(format, i, arg_num, args.len(), &mut good_arg_num);
            arg_num = n;
            i = ni;
            if after {
                reordered = true;
            }
            if i < end && bytes[i] == b'*' {
                i += 1;
                match int_from_arg(args, arg_num) {
                    Some(p) if p >= 0 && (p as usize) <= MAX_WIDTH => {
                        arg_num += 1;
                        flags.prec = Some(p as usize);
                    }
                    Some(_) => {
                        arg_num += 1;
                        out.push_str("%!(BADPREC)");
                    }
                    None => {
                        if arg_num < args.len() {
                            arg_num += 1;
                        }
                        out.push_str("%!(BADPREC)");
                    }
                }
            } else {
                let (num, ni) = parse_num(bytes, i);
                i = ni;
                match num {
                    Some(n) if n > MAX_WIDTH => out.push_str("%!(BADPREC)"),
                    Some(n) => flags.prec = Some(n),
                    None => flags.prec = Some(0),
                }
            }
        }
        let (n, ni, after) = arg_number(format, i, arg_num, args.len(), &mut good_arg_num);
        arg_num = n;
        i = ni;
        if after {
            reordered = true;
        }
        if i >= end {
            out.push_str("%!(NOVERB)");
            break;
        }
        let verb = format[i..].chars().next().unwrap_or('?');
        i += verb.len_utf8();

        if verb == '%' {
            out.push('%');
            continue;
        }
        if !good_arg_num {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(BADINDEX)");
            continue;
        }
        if arg_num >= args.len() {
            out.push_str("%!");
            out.push(verb);
            out.push_str("(MISSING)");
            continue;
        }
        let arg = &args[arg_num];
        arg_num += 1;
        if verb == 'T' {
            pad(&mut out, &arg.type_name_or_nil(), &flags);
            continue;
        }
        if verb == 'w' {
            bad_verb(&mut out, arg, verb);
            continue;
        }
        if verb == 'v' {
            // For %v the '+' flag selects field names, not signs.
            flags.plus_v = flags.plus;
            flags.plus = false;
        }
        format_value(&mut out, arg, verb, &flags, 0);
    }

    if !reordered && arg_num < args.len() {
        out.push_str("%!(EXTRA ");
        for (k, arg) in args[arg_num..].iter().enumerate() {
            if k > 0 {
                out.push_str(", ");
            }
            match arg.type_name() {
                None => out.push_str("<nil>"),
                Some(t) => {
                    out.push_str(&t);
                    out.push('=');
                    format_value(&mut out, arg, 'v', &Flags::default(), 0);
                }
            }
        }
        out.push(')');
    }
    out
}

/// Parses a `[n]` argument index at `i`. Returns the (possibly new) argument
/// number, the position after the index, and whether an index was present.
fn arg_number(
    format: &str,
    i: usize,
    arg_num: usize,
    num_args: usize,
    good: &mut bool,
) -> (usize, usize, bool) {
    let bytes = format.as_bytes();
    if i >= bytes.len() || bytes[i] != b'[' {
        return (arg_num, i, false);
    }
    // Find the closing bracket.
    let mut j = i + 1;
    while j < bytes.len() && bytes[j] != b']' {
        j += 1;
    }
    if j >= bytes.len() {
        *good = false;
        return (arg_num, i + 1, false);
    }
    let (num, after) = parse_num(bytes, i + 1);
    match num {
        Some(n) if after == j && n >= 1 && n <= num_args => (n - 1, j + 1, true),
        _ => {
            *good = false;
            (arg_num, j + 1, true)
        }
    }
}

fn parse_num(bytes: &[u8], mut i: usize) -> (Option<usize>, usize) {
    let start = i;
    let mut n: usize = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        n = n
            .saturating_mul(10)
            .saturating_add((bytes[i] - b'0') as usize);
        i += 1;
    }
    if i == start { (None, i) } else { (Some(n), i) }
}

fn int_from_arg(args: &[Value], n: usize) -> Option<i64> {
    match args.get(n)? {
        Value::Int(v, _) => Some(*v),
        Value::Uint(v, _) => i64::try_from(*v).ok(),
        _ => None,
    }
}

/// `%!verb(type=value)`.
fn bad_verb(out: &mut String, arg: &Value, verb: char) {
    out.push_str("%!");
    out.push(verb);
    out.push('(');
    match arg.type_name() {
        None => out.push_str("<nil>"),
        Some(t) => {
            out.push_str(&t);
            out.push('=');
            format_value(out, arg, 'v', &Flags::default(), 0);
        }
    }
    out.push(')');
}

/// The text of a value's `String()` method, for types that have one.
fn stringer_text(v: &Value) -> Option<String> {
    match v {
        Value::Enum(n, e) => Some(e.name_of(*n)),
        Value::Duration(d) => Some(super::gotime::duration_string(*d)),
        Value::Time(t) => Some(super::gotime::time_string(t)),
        Value::Object(o) => o.ty.stringer.as_ref().map(|s| s(v)),
        Value::NilPtr(t) => t.stringer.as_ref().map(|s| s(v)),
        _ => None,
    }
}

fn format_value(out: &mut String, v: &Value, verb: char, flags: &Flags, depth: usize) {
    // Types with a String() method print through it for the string verbs.
    if matches!(verb, 'v' | 's' | 'x' | 'X' | 'q')
        && let Some(text) = stringer_text(v)
    {
        fmt_string(out, &text, verb, flags);
        return;
    }
    match v {
        Value::Invalid => {
            if depth == 0 {
                out.push_str("%!");
                out.push(verb);
                out.push_str("(<invalid reflect.Value>)");
            } else {
                out.push_str("<invalid reflect.Value>");
            }
        }
        Value::Nil => match verb {
            'v' => pad(out, "<nil>", flags),
            _ => {
                out.push_str("%!");
                out.push(verb);
                out.push_str("(<nil>)");
            }
        },
        Value::Bool(b) => match verb {
            't' | 'v' => pad(out, if *b { "true" } else { "false" }, flags),
            _ => bad_verb(out, v, verb),
        },
        Value::Int(n, _) | Value::Enum(n, _) | Value::Duration(n) => {
            let neg = *n < 0;
            fmt_integer(out, n.unsigned_abs(), neg, verb, flags, v)
        }
        Value::Uint(n, _) => fmt_integer(out, *n, false, verb, flags, v),
        Value::Float(f, kind) => fmt_float_verb(out, *f, *kind, verb, flags, v),
        Value::String(s) => match verb {
            'v' | 's' | 'x' | 'X' | 'q' => fmt_string(out, s, verb, flags),
            _ => bad_verb(out, v, verb),
        },
        Value::List(list) => {
            let mut inner = String::from("[");
            for (i, item) in list.items.iter().enumerate() {
                if i > 0 {
                    inner.push(' ');
                }
                format_value(&mut inner, item, verb, flags, depth + 1);
            }
            inner.push(']');
            out.push_str(&inner);
        }
        Value::Map(map) => {
            out.push_str("map[");
            for (i, (k, item)) in map.entries.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                format_value(out, &Value::string(k.as_str()), verb, flags, depth + 1);
                out.push(':');
                format_value(out, item, verb, flags, depth + 1);
            }
            out.push(']');
        }
        // A pointer to a struct prints as &{…}. (Below the top level Go
        // would print the pointer's address, which is meaningless here.)
        Value::Object(o) => format_struct(out, o, verb, flags, depth, o.ty.pointer),
        Value::NilPtr(_) => match verb {
            'v' => pad(out, "<nil>", flags),
            _ => bad_verb(out, v, verb),
        },
        Value::Time(_) => bad_verb(out, v, verb),
    }
}

fn format_struct(
    out: &mut String,
    o: &Object,
    verb: char,
    flags: &Flags,
    depth: usize,
    ampersand: bool,
) {
    if ampersand {
        out.push('&');
    }
    out.push('{');
    for (i, (def, field)) in o.ty.fields.iter().zip(o.fields.iter()).enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if flags.plus_v && verb == 'v' {
            out.push_str(&def.name);
            out.push(':');
        }
        format_value(out, field, verb, flags, depth + 1);
    }
    out.push('}');
}

/// Formats a value as `{{ x }}` prints it (Go's `printableValue` followed
/// by `fmt.Fprint`): a pointer to a struct without a `String` method prints
/// as the struct itself.
pub fn sprint_printable(v: &Value) -> String {
    let mut out = String::new();
    format_printable(&mut out, v);
    out
}

fn format_printable(out: &mut String, v: &Value) {
    match v {
        Value::Object(o) if o.ty.stringer.is_none() => {
            format_struct(out, o, 'v', &Flags::default(), 0, false)
        }
        _ => format_value(out, v, 'v', &Flags::default(), 0),
    }
}

/// The text `html`, `js` and `urlquery` escape (Go's `evalArgs`): a single
/// string as is, otherwise the printable forms joined like `fmt.Sprint`;
/// nil arguments read `<no value>`.
pub fn eval_args(args: &[Value]) -> String {
    if let [Value::String(s)] = args {
        return s.to_string();
    }
    let mut out = String::new();
    let mut prev_string = false;
    for (i, arg) in args.iter().enumerate() {
        let is_string = matches!(arg, Value::String(_) | Value::Nil | Value::Invalid);
        if i > 0 && !is_string && !prev_string {
            out.push(' ');
        }
        match arg {
            Value::Nil | Value::Invalid => out.push_str("<no value>"),
            _ => format_printable(&mut out, arg),
        }
        prev_string = is_string;
    }
    out
}

fn fmt_string(out: &mut String, s: &str, verb: char, flags: &Flags) {
    // A precision truncates the string (in runes) before formatting.
    let truncated: &str = match flags.prec {
        Some(p) => match s.char_indices().nth(p) {
            Some((idx, _)) => &s[..idx],
            None => s,
        },
        None => s,
    };
    match verb {
        'v' | 's' => pad(out, truncated, flags),
        'q' => {
            let quoted = if flags.sharp && can_backquote(truncated) {
                format!("`{truncated}`")
            } else if flags.plus {
                quote_with(truncated, true)
            } else {
                quote(truncated)
            };
            pad(out, &quoted, flags);
        }
        'x' | 'X' => {
            let upper = verb == 'X';
            let mut hex = String::new();
            for (i, b) in truncated.bytes().enumerate() {
                if flags.space && i > 0 {
                    hex.push(' ');
                }
                if flags.sharp && (flags.space || i == 0) {
                    hex.push_str(if upper { "0X" } else { "0x" });
                }
                push_hex_byte(&mut hex, b, upper);
            }
            pad(out, &hex, flags);
        }
        _ => {}
    }
}

fn push_hex_byte(out: &mut String, b: u8, upper: bool) {
    let digits: &[u8; 16] = if upper {
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    out.push(digits[(b >> 4) as usize] as char);
    out.push(digits[(b & 15) as usize] as char);
}

/// Pads to the width with spaces (or zeros with the `0` flag), on the left,
/// or on the right with the `-` flag. Width counts runes.
fn pad(out: &mut String, s: &str, flags: &Flags) {
    let width = flags.width.unwrap_or(0);
    let len = s.chars().count();
    if len >= width {
        out.push_str(s);
        return;
    }
    let fill = width - len;
    if flags.minus {
        out.push_str(s);
        out.extend(std::iter::repeat_n(' ', fill));
    } else {
        let c = if flags.zero { '0' } else { ' ' };
        out.extend(std::iter::repeat_n(c, fill));
        out.push_str(s);
    }
}

fn pad_spaces_only(out: &mut String, s: &str, flags: &Flags) {
    let mut f = flags.clone();
    f.zero = false;
    pad(out, s, &f);
}

#[allow(clippy::too_many_arguments)]
fn fmt_integer(
    out: &mut String,
    magnitude: u64,
    negative: bool,
    verb: char,
    flags: &Flags,
    original: &Value,
) {
    let (base, upper) = match verb {
        'v' | 'd' => (10, false),
        'b' => (2, false),
        'o' | 'O' => (8, false),
        'x' => (16, false),
        'X' => (16, true),
        'c' => {
            let c = char::from_u32(magnitude as u32)
                .filter(|_| !negative && magnitude <= u32::MAX as u64)
                .unwrap_or('\u{FFFD}');
            pad(out, &c.to_string(), flags);
            return;
        }
        'q' => {
            let c = char::from_u32(magnitude as u32)
                .filter(|_| !negative && magnitude <= u32::MAX as u64)
                .unwrap_or('\u{FFFD}');
            pad(out, &quote_rune(c, flags.plus), flags);
            return;
        }
        'U' => {
            let mut s = format!("U+{magnitude:04X}");
            if flags.sharp
                && let Some(c) = char::from_u32(magnitude as u32)
                && is_print(c)
            {
                s.push_str(&format!(" '{c}'"));
            }
            pad(out, &s, flags);
            return;
        }
        _ => {
            bad_verb(out, original, verb);
            return;
        }
    };
    let mut digits = match base {
        10 => magnitude.to_string(),
        2 => format!("{magnitude:b}"),
        8 => format!("{magnitude:o}"),
        _ if upper => format!("{magnitude:X}"),
        _ => format!("{magnitude:x}"),
    };
    // Precision (or a zero-padded width) sets a minimum digit count.
    let min_digits = match flags.prec {
        Some(0) if magnitude == 0 => {
            pad_spaces_only(out, "", flags);
            return;
        }
        Some(p) => p,
        None if flags.zero && flags.width.is_some() && !flags.minus => {
            let mut w = flags.width.unwrap_or(0);
            if negative || flags.plus || flags.space {
                w = w.saturating_sub(1);
            }
            w
        }
        None => 0,
    };
    if digits.len() < min_digits {
        digits = "0".repeat(min_digits - digits.len()) + &digits;
    }
    let mut prefix = String::new();
    if negative {
        prefix.push('-');
    } else if flags.plus {
        prefix.push('+');
    } else if flags.space {
        prefix.push(' ');
    }
    match verb {
        'b' if flags.sharp => prefix.push_str("0b"),
        'o' if flags.sharp && !digits.starts_with('0') => prefix.push('0'),
        'O' => prefix.push_str("0o"),
        'x' if flags.sharp => prefix.push_str("0x"),
        'X' if flags.sharp => prefix.push_str("0X"),
        _ => {}
    }
    pad_spaces_only(out, &(prefix + &digits), flags);
}

fn fmt_float_verb(
    out: &mut String,
    f: f64,
    kind: FloatKind,
    verb: char,
    flags: &Flags,
    orig: &Value,
) {
    let bits = if kind == FloatKind::F32 { 32 } else { 64 };
    let (fmt, prec) = match verb {
        'v' => ('g', None),
        'g' | 'G' | 'e' | 'E' | 'f' | 'F' => {
            let default = if matches!(verb, 'g' | 'G') {
                None
            } else {
                Some(6)
            };
            (verb, flags.prec.or(default))
        }
        _ => {
            bad_verb(out, orig, verb);
            return;
        }
    };
    let fmt = if fmt == 'F' { 'f' } else { fmt };
    let mut num = format_float(f, fmt, prec.map(|p| p as i64).unwrap_or(-1), bits);
    // Sign handling follows fmt: '+' flag shows a plus, ' ' flag a space.
    let has_sign = num.starts_with('-') || num.starts_with('+');
    if !has_sign {
        num.insert(0, '+');
    }
    if flags.space && num.starts_with('+') && !flags.plus {
        num.replace_range(0..1, " ");
    }
    let special = num[1..].starts_with('I') || num[1..].starts_with('N');
    if special {
        if num[1..].starts_with('N') && !flags.space && !flags.plus {
            num.remove(0);
        }
        pad_spaces_only(out, &num, flags);
        return;
    }
    if flags.plus || !num.starts_with('+') {
        let width = flags.width.unwrap_or(0);
        if flags.zero && !flags.minus && width > num.len() {
            out.push_str(&num[..1]);
            out.extend(std::iter::repeat_n('0', width - num.len()));
            out.push_str(&num[1..]);
            return;
        }
        pad(out, &num, flags);
        return;
    }
    let unsigned = &num[1..];
    let width = flags.width.unwrap_or(0);
    if flags.zero && !flags.minus && width > unsigned.len() {
        out.extend(std::iter::repeat_n('0', width - unsigned.len()));
        out.push_str(unsigned);
        return;
    }
    pad(out, unsigned, flags);
}

/// Decimal digits of a float: `digits` (no trailing zeros; empty for zero)
/// with the decimal point `dp` places from the left.
struct Decimal {
    digits: Vec<u8>,
    dp: i64,
}

/// Parses Rust's `{:e}` output (`d.ddde±x`) into digits and point position.
fn decimal_from_exp(s: &str) -> Decimal {
    let (mantissa, exp) = s.split_once('e').unwrap_or((s, "0"));
    let exp: i64 = exp.parse().unwrap_or(0);
    let mut digits: Vec<u8> = mantissa.bytes().filter(|b| b.is_ascii_digit()).collect();
    while digits.last() == Some(&b'0') {
        digits.pop();
    }
    if digits.is_empty() {
        return Decimal { digits, dp: 0 };
    }
    Decimal {
        digits,
        dp: exp + 1,
    }
}

/// Shortest digits that round-trip (Go's precision -1).
fn shortest(abs: f64, bits: u32) -> Decimal {
    if abs == 0.0 {
        return Decimal {
            digits: vec![],
            dp: 0,
        };
    }
    if bits == 32 {
        decimal_from_exp(&format!("{:e}", abs as f32))
    } else {
        decimal_from_exp(&format!("{abs:e}"))
    }
}

/// `n` significant digits, correctly rounded.
fn significant(abs: f64, n: usize) -> Decimal {
    if abs == 0.0 {
        return Decimal {
            digits: vec![],
            dp: 0,
        };
    }
    decimal_from_exp(&format!("{:.*e}", n.saturating_sub(1), abs))
}

/// `strconv.FormatFloat(f, fmt, prec, bits)` for fmt in `e E f g G`.
pub fn format_float(f: f64, fmt: char, prec: i64, bits: u32) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let neg = f.is_sign_negative();
    let abs = f.abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    let upper = fmt.is_ascii_uppercase();
    match fmt.to_ascii_lowercase() {
        'e' => {
            let (d, p) = if prec < 0 {
                let d = shortest(abs, bits);
                let p = d.digits.len().saturating_sub(1);
                (d, p)
            } else {
                (significant(abs, prec as usize + 1), prec as usize)
            };
            fmt_e(&mut out, &d, p, upper);
        }
        'f' => {
            if prec < 0 {
                let d = shortest(abs, bits);
                let p = (d.digits.len() as i64 - d.dp).max(0) as usize;
                fmt_f(&mut out, &d, p);
            } else {
                out.push_str(&format!("{:.*}", prec as usize, abs));
            }
        }
        _ => {
            let shortest_mode = prec < 0;
            let (d, mut p) = if shortest_mode {
                let d = shortest(abs, bits);
                let p = d.digits.len() as i64;
                (d, p)
            } else {
                let p = if prec == 0 { 1 } else { prec };
                (significant(abs, p as usize), p)
            };
            let nd = d.digits.len() as i64;
            let mut eprec = p;
            if eprec > nd && nd >= d.dp {
                eprec = nd;
            }
            if shortest_mode {
                eprec = 6;
            }
            let exp = d.dp - 1;
            if exp < -4 || exp >= eprec {
                if p > nd {
                    p = nd;
                }
                fmt_e(&mut out, &d, (p - 1).max(0) as usize, upper);
            } else {
                if p > d.dp {
                    p = nd;
                }
                fmt_f(&mut out, &d, (p - d.dp).max(0) as usize);
            }
        }
    }
    out
}

fn fmt_e(out: &mut String, d: &Decimal, prec: usize, upper: bool) {
    out.push(d.digits.first().map(|b| *b as char).unwrap_or('0'));
    if prec > 0 {
        out.push('.');
        for i in 1..=prec {
            out.push(d.digits.get(i).map(|b| *b as char).unwrap_or('0'));
        }
    }
    out.push(if upper { 'E' } else { 'e' });
    let exp = if d.digits.is_empty() { 0 } else { d.dp - 1 };
    out.push(if exp < 0 { '-' } else { '+' });
    let e = exp.unsigned_abs();
    if e < 10 {
        out.push('0');
    }
    out.push_str(&e.to_string());
}

fn fmt_f(out: &mut String, d: &Decimal, prec: usize) {
    if d.dp > 0 {
        for i in 0..d.dp as usize {
            out.push(d.digits.get(i).map(|b| *b as char).unwrap_or('0'));
        }
    } else {
        out.push('0');
    }
    if prec > 0 {
        out.push('.');
        for i in 1..=prec as i64 {
            let j = d.dp + i - 1;
            let c = if j >= 0 {
                d.digits.get(j as usize).map(|b| *b as char).unwrap_or('0')
            } else {
                '0'
            };
            out.push(c);
        }
    }
}

/// Go's `unicode.IsPrint`, approximated without Unicode tables: graphic
/// characters and the ASCII space; controls, format characters, separators,
/// surrogates, private-use and noncharacters are not printable.
pub fn is_print(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    if c.is_control() || c.is_whitespace() {
        return false;
    }
    !matches!(u,
        0xAD | 0x600..=0x605 | 0x61C | 0x6DD | 0x70F | 0x180E | 0x200B..=0x200F
        | 0x202A..=0x202E | 0x2060..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0xE000..=0xF8FF | 0xFDD0..=0xFDEF | 0xF0000..=0x10FFFF)
        && (u & 0xFFFE) != 0xFFFE
}

/// `strconv.Quote`.
pub fn quote(s: &str) -> String {
    quote_with(s, false)
}

/// `strconv.Quote`, or `strconv.QuoteToASCII` when `ascii_only`.
pub fn quote_with(s: &str, ascii_only: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        push_escaped(&mut out, c, '"', ascii_only);
    }
    out.push('"');
    out
}

fn quote_rune(c: char, ascii_only: bool) -> String {
    let mut out = String::from("'");
    push_escaped(&mut out, c, '\'', ascii_only);
    out.push('\'');
    out
}

fn push_escaped(out: &mut String, c: char, quote: char, ascii_only: bool) {
    if c == quote || c == '\\' {
        out.push('\\');
        out.push(c);
        return;
    }
    if ascii_only {
        if (c as u32) < 0x80 && is_print(c) {
            out.push(c);
            return;
        }
    } else if is_print(c) {
        out.push(c);
        return;
    }
    match c {
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        c if (c as u32) < 0x20 || c as u32 == 0x7f => {
            out.push_str(&format!("\\x{:02x}", c as u32));
        }
        c if (c as u32) < 0x10000 => out.push_str(&format!("\\u{:04x}", c as u32)),
        c => out.push_str(&format!("\\U{:08x}", c as u32)),
    }
}

/// `strconv.CanBackquote`.
fn can_backquote(s: &str) -> bool {
    s.chars().all(|c| {
        c != '`' && c != '\u{FEFF}' && (c == '\t' || !((c as u32) < 0x20 || c as u32 == 0x7f))
    })
}
