//! Go's `time.Time` and `time.Duration` as templates see them: layout-based
//! formatting (`Format("2006-01-02T15:04:05Z07:00")`), `String()` texts, and
//! the methods templates call on them (`.CurTime.Unix`, `.Duration.Seconds`).

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, Datelike, FixedOffset, Timelike};

use super::value::{EnumType, FloatKind, IntKind, Method, Param, Value};

pub const NANOS_PER_SECOND: i64 = 1_000_000_000;

const LONG_MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const LONG_DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

fn unknown_month(_: &EnumType, n: i64) -> String {
    format!("%!Month({n})")
}

fn unknown_weekday(_: &EnumType, n: i64) -> String {
    format!("%!Weekday({n})")
}

/// `time.Month`.
pub static MONTH: LazyLock<Arc<EnumType>> = LazyLock::new(|| {
    Arc::new(EnumType {
        name: "time.Month".to_string(),
        values: (1..=12)
            .map(|m| (m as i64, LONG_MONTHS[m - 1].to_string()))
            .collect(),
        kind: IntKind::Int,
        unknown: unknown_month,
    })
});

/// `time.Weekday`.
pub static WEEKDAY: LazyLock<Arc<EnumType>> = LazyLock::new(|| {
    Arc::new(EnumType {
        name: "time.Weekday".to_string(),
        values: (0..7)
            .map(|d| (d as i64, LONG_DAYS[d].to_string()))
            .collect(),
        kind: IntKind::Int,
        unknown: unknown_weekday,
    })
});

/// `time.Duration.String()`: `1h2m3.5s`, `1.5ms`, `0s`.
pub fn duration_string(d: i64) -> String {
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    let mut out = String::new();
    if u < NANOS_PER_SECOND as u64 {
        if u == 0 {
            return "0s".to_string();
        }
        let (prec, unit) = if u < 1_000 {
            (0, "ns")
        } else if u < 1_000_000 {
            (3, "µs")
        } else {
            (6, "ms")
        };
        let (frac, whole) = fraction(u, prec);
        out.push_str(&whole.to_string());
        out.push_str(&frac);
        out.push_str(unit);
    } else {
        let (frac, secs) = fraction(u, 9);
        u = secs;
        let seconds = format!("{}{frac}s", u % 60);
        u /= 60;
        if u > 0 {
            let minutes = u % 60;
            u /= 60;
            if u > 0 {
                out.push_str(&format!("{u}h"));
            }
            out.push_str(&format!("{minutes}m"));
        }
        out.push_str(&seconds);
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

/// Splits `v` into `v / 10^prec` and the fraction as ".ddd" without
/// trailing zeros (empty when the fraction is zero).
fn fraction(v: u64, prec: u32) -> (String, u64) {
    let scale = 10u64.pow(prec);
    let whole = v / scale;
    let frac = v % scale;
    if frac == 0 {
        return (String::new(), whole);
    }
    let digits = format!("{frac:0width$}", width = prec as usize);
    (format!(".{}", digits.trim_end_matches('0')), whole)
}

/// `time.Duration.Truncate`.
pub fn duration_truncate(d: i64, m: i64) -> i64 {
    if m <= 0 { d } else { d - d % m }
}

/// `time.Duration.Round`: halfway values round away from zero.
fn duration_round(d: i64, m: i64) -> i64 {
    if m <= 0 {
        return d;
    }
    let mut r = d % m;
    if d < 0 {
        r = -r;
        if r + r < m {
            return d + r;
        }
        return d.checked_sub(m - r).unwrap_or(i64::MIN);
    }
    if r + r < m {
        return d - r;
    }
    d.checked_add(m - r).unwrap_or(i64::MAX)
}

/// The zone abbreviation Go would print for `MST`: our times carry only an
/// offset, so UTC is named and other offsets print numerically (as Go does
/// for zones without an abbreviation).
fn zone_name(t: &DateTime<FixedOffset>) -> Option<&'static str> {
    (t.offset().local_minus_utc() == 0).then_some("UTC")
}

/// `time.Time.String()` (without the monotonic clock reading Go appends to
/// `time.Now()` values).
pub fn time_string(t: &DateTime<FixedOffset>) -> String {
    format_layout(t, "2006-01-02 15:04:05.999999999 -0700 MST")
}

/// `time.RFC3339`.
pub const RFC3339: &str = "2006-01-02T15:04:05Z07:00";
/// `time.RFC3339Nano`, which `encoding/json` uses for times.
pub const RFC3339_NANO: &str = "2006-01-02T15:04:05.999999999Z07:00";

enum Chunk {
    Literal(String),
    LongMonth,
    Month,
    NumMonth,
    ZeroMonth,
    LongWeekDay,
    WeekDay,
    Day,
    UnderDay,
    ZeroDay,
    UnderYearDay,
    ZeroYearDay,
    Hour,
    Hour12,
    ZeroHour12,
    Minute,
    ZeroMinute,
    Second,
    ZeroSecond,
    LongYear,
    Year,
    PM,
    Pm,
    Tz,
    /// Numeric zone: (use Z for UTC, with colons, include hours only,
    /// include seconds).
    NumTz {
        iso: bool,
        colon: bool,
        hours_only: bool,
        seconds: bool,
    },
    /// Fractional seconds: separator, digit count, trim trailing zeros.
    Frac {
        sep: char,
        digits: usize,
        trim: bool,
    },
}

/// Splits a Go layout string into literal text and the standard chunks Go
/// recognises (`2006`, `Jan`, `15`, `Z07:00`, `.000`, …).
fn parse_layout(layout: &str) -> Vec<Chunk> {
    let b = layout.as_bytes();
    let mut chunks = Vec::new();
    let mut lit_start = 0;
    let mut i = 0;
    let starts = |i: usize, s: &str| layout[i..].starts_with(s);
    while i < b.len() {
        let (chunk, len): (Option<Chunk>, usize) = match b[i] {
            b'J' if starts(i, "January") => (Some(Chunk::LongMonth), 7),
            b'J' if starts(i, "Jan") => (Some(Chunk::Month), 3),
            b'M' if starts(i, "Monday") => (Some(Chunk::LongWeekDay), 6),
            b'M' if starts(i, "Mon") => (Some(Chunk::WeekDay), 3),
            b'M' if starts(i, "MST") => (Some(Chunk::Tz), 3),
            b'0' if i + 1 < b.len() && (b'1'..=b'6').contains(&b[i + 1]) => (
                Some(match b[i + 1] {
                    b'1' => Chunk::ZeroMonth,
                    b'2' => Chunk::ZeroDay,
                    b'3' => Chunk::ZeroHour12,
                    b'4' => Chunk::ZeroMinute,
                    b'5' => Chunk::ZeroSecond,
                    _ => Chunk::Year,
                }),
                2,
            ),
            b'0' if starts(i, "002") => (Some(Chunk::ZeroYearDay), 3),
            b'1' if starts(i, "15") => (Some(Chunk::Hour), 2),
            b'1' => (Some(Chunk::NumMonth), 1),
            b'2' if starts(i, "2006") => (Some(Chunk::LongYear), 4),
            b'2' => (Some(Chunk::Day), 1),
            // "_2006" is a literal underscore followed by the year.
            b'_' if starts(i, "_2006") => (None, 1),
            b'_' if starts(i, "_2") => (Some(Chunk::UnderDay), 2),
            b'_' if starts(i, "__2") => (Some(Chunk::UnderYearDay), 3),
            b'3' => (Some(Chunk::Hour12), 1),
            b'4' => (Some(Chunk::Minute), 1),
            b'5' => (Some(Chunk::Second), 1),
            b'P' if starts(i, "PM") => (Some(Chunk::PM), 2),
            b'p' if starts(i, "pm") => (Some(Chunk::Pm), 2),
            b'-' | b'Z' => {
                let iso = b[i] == b'Z';
                let rest = &layout[i + 1..];
                if rest.starts_with("070000") {
                    (Some(numtz(iso, false, false, true)), 7)
                } else if rest.starts_with("07:00:00") {
                    (Some(numtz(iso, true, false, true)), 9)
                } else if rest.starts_with("0700") {
                    (Some(numtz(iso, false, false, false)), 5)
                } else if rest.starts_with("07:00") {
                    (Some(numtz(iso, true, false, false)), 6)
                } else if rest.starts_with("07") {
                    (Some(numtz(iso, false, true, false)), 3)
                } else {
                    (None, 1)
                }
            }
            c @ (b'.' | b',') if i + 1 < b.len() && (b[i + 1] == b'0' || b[i + 1] == b'9') => {
                let digit = b[i + 1];
                let mut j = i + 1;
                while j < b.len() && b[j] == digit {
                    j += 1;
                }
                if j < b.len() && b[j].is_ascii_digit() {
                    (None, 1)
                } else {
                    (
                        Some(Chunk::Frac {
                            sep: c as char,
                            digits: j - i - 1,
                            trim: digit == b'9',
                        }),
                        j - i,
                    )
                }
            }
            _ => (None, 1),
        };
        match chunk {
            Some(c) => {
                if lit_start < i {
                    chunks.push(Chunk::Literal(layout[lit_start..i].to_string()));
                }
                chunks.push(c);
                i += len;
                lit_start = i;
            }
            None => {
                // Advance by one character (layouts may contain UTF-8).
                i += layout[i..].chars().next().map(char::len_utf8).unwrap_or(1);
            }
        }
    }
    if lit_start < b.len() {
        chunks.push(Chunk::Literal(layout[lit_start..].to_string()));
    }
    chunks
}

fn numtz(iso: bool, colon: bool, hours_only: bool, seconds: bool) -> Chunk {
    Chunk::NumTz {
        iso,
        colon,
        hours_only,
        seconds,
    }
}

/// `time.Time.Format(layout)`.
pub fn format_layout(t: &DateTime<FixedOffset>, layout: &str) -> String {
    let mut out = String::new();
    let offset = t.offset().local_minus_utc();
    for chunk in parse_layout(layout) {
        match chunk {
            Chunk::Literal(s) => out.push_str(&s),
            Chunk::LongMonth => out.push_str(LONG_MONTHS[t.month0() as usize]),
            Chunk::Month => out.push_str(&LONG_MONTHS[t.month0() as usize][..3]),
            Chunk::NumMonth => out.push_str(&t.month().to_string()),
            Chunk::ZeroMonth => out.push_str(&format!("{:02}", t.month())),
            Chunk::LongWeekDay => {
                out.push_str(LONG_DAYS[t.weekday().num_days_from_sunday() as usize])
            }
            Chunk::WeekDay => {
                out.push_str(&LONG_DAYS[t.weekday().num_days_from_sunday() as usize][..3])
            }
            Chunk::Day => out.push_str(&t.day().to_string()),
            Chunk::UnderDay => out.push_str(&format!("{:>2}", t.day())),
            Chunk::ZeroDay => out.push_str(&format!("{:02}", t.day())),
            Chunk::UnderYearDay => out.push_str(&format!("{:>3}", t.ordinal())),
            Chunk::ZeroYearDay => out.push_str(&format!("{:03}", t.ordinal())),
            Chunk::Hour => out.push_str(&format!("{:02}", t.hour())),
            Chunk::Hour12 => out.push_str(&hour12(t.hour()).to_string()),
            Chunk::ZeroHour12 => out.push_str(&format!("{:02}", hour12(t.hour()))),
            Chunk::Minute => out.push_str(&t.minute().to_string()),
            Chunk::ZeroMinute => out.push_str(&format!("{:02}", t.minute())),
            Chunk::Second => out.push_str(&t.second().to_string()),
            Chunk::ZeroSecond => out.push_str(&format!("{:02}", t.second())),
            Chunk::LongYear => {
                let y = t.year();
                if y < 0 {
                    out.push_str(&format!("-{:04}", -y));
                } else {
                    out.push_str(&format!("{y:04}"));
                }
            }
            Chunk::Year => out.push_str(&format!("{:02}", t.year().rem_euclid(100))),
            Chunk::PM => out.push_str(if t.hour() >= 12 { "PM" } else { "AM" }),
            Chunk::Pm => out.push_str(if t.hour() >= 12 { "pm" } else { "am" }),
            Chunk::Tz => match zone_name(t) {
                Some(name) => out.push_str(name),
                None => {
                    let minutes = offset / 60;
                    out.push(if minutes < 0 { '-' } else { '+' });
                    let m = minutes.abs();
                    out.push_str(&format!("{:02}{:02}", m / 60, m % 60));
                }
            },
            Chunk::NumTz {
                iso,
                colon,
                hours_only,
                seconds,
            } => {
                if iso && offset == 0 {
                    out.push('Z');
                    continue;
                }
                let abs = offset.abs();
                out.push(if offset < 0 { '-' } else { '+' });
                out.push_str(&format!("{:02}", abs / 3600));
                if !hours_only {
                    if colon {
                        out.push(':');
                    }
                    out.push_str(&format!("{:02}", (abs / 60) % 60));
                }
                if seconds {
                    if colon {
                        out.push(':');
                    }
                    out.push_str(&format!("{:02}", abs % 60));
                }
            }
            Chunk::Frac { sep, digits, trim } => {
                let nanos = t.nanosecond().min(999_999_999);
                let full = format!("{nanos:09}");
                let mut frac = full[..digits.min(9)].to_string();
                if digits > 9 {
                    frac.push_str(&"0".repeat(digits - 9));
                }
                if trim {
                    let trimmed = frac.trim_end_matches('0');
                    if !trimmed.is_empty() {
                        out.push(sep);
                        out.push_str(trimmed);
                    }
                } else {
                    out.push(sep);
                    out.push_str(&frac);
                }
            }
        }
    }
    out
}

fn hour12(h: u32) -> u32 {
    match h % 12 {
        0 => 12,
        x => x,
    }
}

fn time_of(v: &Value) -> Result<DateTime<FixedOffset>, String> {
    match v {
        Value::Time(t) => Ok(*t),
        _ => Err("receiver is not a time.Time".to_string()),
    }
}

fn duration_of(v: &Value) -> i64 {
    match v {
        Value::Duration(d) => *d,
        _ => 0,
    }
}

fn method(
    params: Vec<Param>,
    f: impl Fn(&Value, &[Value]) -> Result<Value, String> + Send + Sync + 'static,
) -> Method {
    Method {
        params,
        variadic: None,
        func: Arc::new(f),
    }
}

fn int64(n: i64) -> Value {
    Value::Int(n, IntKind::Int64)
}

fn unix_nanos(t: &DateTime<FixedOffset>) -> i128 {
    t.timestamp() as i128 * NANOS_PER_SECOND as i128 + t.timestamp_subsec_nanos() as i128
}

/// Methods of `time.Time` callable from templates.
pub fn time_method(name: &str) -> Option<Method> {
    let simple = |f: fn(&DateTime<FixedOffset>) -> Value| {
        method(vec![], move |recv, _| Ok(f(&time_of(recv)?)))
    };
    Some(match name {
        "Unix" => simple(|t| int64(t.timestamp())),
        "UnixMilli" => simple(|t| int64((unix_nanos(t) / 1_000_000) as i64)),
        "UnixMicro" => simple(|t| int64((unix_nanos(t) / 1_000) as i64)),
        "UnixNano" => simple(|t| int64(unix_nanos(t) as i64)),
        "String" => simple(|t| Value::string(time_string(t))),
        "Year" => simple(|t| Value::int(t.year() as i64)),
        "Month" => simple(|t| Value::Enum(t.month() as i64, MONTH.clone())),
        "Day" => simple(|t| Value::int(t.day() as i64)),
        "Hour" => simple(|t| Value::int(t.hour() as i64)),
        "Minute" => simple(|t| Value::int(t.minute() as i64)),
        "Second" => simple(|t| Value::int(t.second() as i64)),
        "Nanosecond" => simple(|t| Value::int(t.nanosecond().min(999_999_999) as i64)),
        "YearDay" => simple(|t| Value::int(t.ordinal() as i64)),
        "Weekday" => {
            simple(|t| Value::Enum(t.weekday().num_days_from_sunday() as i64, WEEKDAY.clone()))
        }
        // Go's zero time is January 1, year 1, 00:00:00 UTC.
        "IsZero" => {
            simple(|t| Value::Bool(t.timestamp() == -62_135_596_800 && t.nanosecond() == 0))
        }
        "UTC" => simple(|t| {
            Value::Time(t.with_timezone(&FixedOffset::east_opt(0).expect("zero offset")))
        }),
        // Hook times are already in the server's zone.
        "Local" => simple(|t| Value::Time(*t)),
        "Format" => method(vec![Param::String], |recv, args| {
            let layout = args.first().and_then(Value::as_str).unwrap_or("");
            Ok(Value::string(format_layout(&time_of(recv)?, layout)))
        }),
        "Add" => method(vec![Param::Duration], |recv, args| {
            let t = time_of(recv)?;
            let d = args.first().map(duration_of).unwrap_or(0);
            Ok(t.checked_add_signed(chrono::Duration::nanoseconds(d))
                .map(Value::Time)
                .unwrap_or(Value::Time(t)))
        }),
        "Sub" => method(vec![Param::Time], |recv, args| {
            let t = time_of(recv)?;
            let u = time_of(args.first().unwrap_or(&Value::Invalid))?;
            let diff = unix_nanos(&t) - unix_nanos(&u);
            Ok(Value::Duration(
                diff.clamp(i64::MIN as i128, i64::MAX as i128) as i64,
            ))
        }),
        "Before" | "After" | "Equal" => {
            let which = name.to_string();
            method(vec![Param::Time], move |recv, args| {
                let t = unix_nanos(&time_of(recv)?);
                let u = unix_nanos(&time_of(args.first().unwrap_or(&Value::Invalid))?);
                Ok(Value::Bool(match which.as_str() {
                    "Before" => t < u,
                    "After" => t > u,
                    _ => t == u,
                }))
            })
        }
        _ => return None,
    })
}

/// Methods of `time.Duration` callable from templates.
pub fn duration_method(name: &str) -> Option<Method> {
    let float = |f: fn(i64) -> f64| {
        method(vec![], move |recv, _| {
            Ok(Value::Float(f(duration_of(recv)), FloatKind::F64))
        })
    };
    let int = |f: fn(i64) -> i64| method(vec![], move |recv, _| Ok(int64(f(duration_of(recv)))));
    Some(match name {
        "String" => method(vec![], |recv, _| {
            Ok(Value::string(duration_string(duration_of(recv))))
        }),
        "Seconds" => float(|d| {
            let sec = d / NANOS_PER_SECOND;
            let nsec = d % NANOS_PER_SECOND;
            sec as f64 + nsec as f64 / 1e9
        }),
        "Minutes" => float(|d| {
            let min = d / (60 * NANOS_PER_SECOND);
            let nsec = d % (60 * NANOS_PER_SECOND);
            min as f64 + nsec as f64 / (60e9)
        }),
        "Hours" => float(|d| {
            let hour = d / (3600 * NANOS_PER_SECOND);
            let nsec = d % (3600 * NANOS_PER_SECOND);
            hour as f64 + nsec as f64 / (3600e9)
        }),
        "Milliseconds" => int(|d| d / 1_000_000),
        "Microseconds" => int(|d| d / 1_000),
        "Nanoseconds" => int(|d| d),
        "Abs" => method(vec![], |recv, _| {
            let d = duration_of(recv);
            Ok(Value::Duration(if d == i64::MIN {
                i64::MAX
            } else {
                d.abs()
            }))
        }),
        "Truncate" => method(vec![Param::Duration], |recv, args| {
            Ok(Value::Duration(duration_truncate(
                duration_of(recv),
                args.first().map(duration_of).unwrap_or(0),
            )))
        }),
        "Round" => method(vec![Param::Duration], |recv, args| {
            Ok(Value::Duration(duration_round(
                duration_of(recv),
                args.first().map(duration_of).unwrap_or(0),
            )))
        }),
        _ => return None,
    })
}

/// A fixed time for tests, with the arguments of Go's `time.Date`.
#[cfg(test)]
#[allow(clippy::too_many_arguments)]
pub fn fixed(
    y: i32,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    nanos: u32,
    offset_secs: i32,
) -> DateTime<FixedOffset> {
    use chrono::TimeZone;
    let tz = FixedOffset::east_opt(offset_secs).expect("valid offset");
    tz.with_ymd_and_hms(y, mo, d, h, mi, s)
        .single()
        .expect("valid time")
        + chrono::Duration::nanoseconds(nanos as i64)
}
