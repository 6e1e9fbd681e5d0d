//! Cron expressions in the dialect Backrest accepts (gitploy-io/cronexpr):
//! exactly five fields (minute, hour, day of month, month, day of week),
//! `*`, `,`, `-`, `/` and the `N/step` shorthand for `N-max/step`, month
//! names JAN–DEC and day names SUN–SAT (any case). No seconds or years, no
//! `@` macros, no `?`, `L`, `W`, `#`. Day of month and day of week are ANDed.
//!
//! Parsing is done by `croner` after a pre-check that refuses what cronexpr
//! refuses. One more difference is smoothed over: cronexpr's day-of-week
//! values are 0–6, and a 7 silently never matches (croner would read it as
//! Sunday). The day-of-week field is therefore evaluated here with cronexpr's
//! rules and handed to croner as an explicit list of 0–6; a field that selects
//! no real weekday is reported as [`CronError::NeverFires`].

use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const WEEKDAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

const FIELD_NAMES: [&str; 5] = ["minute", "hour", "day-of-month", "month", "day-of-week"];
const MONTH_FIELD: usize = 3;
const DOW_FIELD: usize = 4;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CronError {
    /// The expression is not valid cron.
    Syntax(String),
    /// The expression parses but can never fire (e.g. day of week 7 only).
    NeverFires,
}

impl std::fmt::Display for CronError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CronError::Syntax(m) => f.write_str(m),
            CronError::NeverFires => f.write_str("the expression never fires"),
        }
    }
}

impl std::error::Error for CronError {}

fn syntax(m: impl Into<String>) -> CronError {
    CronError::Syntax(m.into())
}

/// Parses a Backrest cron expression.
pub fn parse(expr: &str) -> Result<Cron, CronError> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(syntax(format!(
            "expected 5 fields (minute hour day-of-month month day-of-week), got {}",
            fields.len()
        )));
    }
    let mut normalized = Vec::with_capacity(5);
    for (idx, field) in fields.iter().enumerate() {
        let names: &[&str] = match idx {
            MONTH_FIELD => &MONTHS,
            DOW_FIELD => &WEEKDAYS,
            _ => &[],
        };
        let numeric = replace_names(field, names, idx)?;
        for part in numeric.split(',') {
            if part.is_empty() || part.starts_with('/') || part.ends_with('/') {
                return Err(syntax(format!(
                    "{} field {field:?}: malformed list item {part:?}",
                    FIELD_NAMES[idx]
                )));
            }
        }
        if idx == DOW_FIELD && numeric != "*" {
            let days = weekday_set(&numeric)
                .map_err(|e| syntax(format!("day-of-week field {field:?}: {e}")))?;
            if days.is_empty() {
                return Err(CronError::NeverFires);
            }
            let list: Vec<String> = days.iter().map(u8::to_string).collect();
            normalized.push(list.join(","));
        } else {
            normalized.push(numeric);
        }
    }
    parser()
        .parse(&normalized.join(" "))
        .map_err(|e| syntax(e.to_string()))
}

fn parser() -> CronParser {
    CronParser::builder()
        .seconds(Seconds::Disallowed)
        .year(Year::Disallowed)
        .dom_and_dow(true)
        .sloppy_ranges(true)
        .build()
}

/// Replaces every run of letters with its index in `names` (offset by one for
/// months) and refuses any character outside digits and `* , - /`.
fn replace_names(field: &str, names: &[&str], idx: usize) -> Result<String, CronError> {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c.is_ascii_alphabetic() {
            let mut end = start + 1;
            while let Some(&(i, n)) = chars.peek() {
                if !n.is_ascii_alphabetic() {
                    break;
                }
                end = i + 1;
                chars.next();
            }
            let word = &field[start..end];
            let pos = names
                .iter()
                .position(|n| n.eq_ignore_ascii_case(word))
                .ok_or_else(|| {
                    syntax(format!(
                        "{} field {field:?}: unknown name {word:?}",
                        FIELD_NAMES[idx]
                    ))
                })?;
            let value = if idx == MONTH_FIELD { pos + 1 } else { pos };
            out.push_str(&value.to_string());
        } else if c.is_ascii_digit() || matches!(c, '*' | ',' | '-' | '/') {
            out.push(c);
        } else {
            return Err(syntax(format!(
                "{} field {field:?}: unsupported character {c:?}",
                FIELD_NAMES[idx]
            )));
        }
    }
    Ok(out)
}

/// The weekdays (0 = Sunday … 6 = Saturday) a numeric day-of-week field
/// selects, with cronexpr's rules: `*` spans the whole range, `N/s` means
/// `N-max/s`, and values above 6 select nothing.
fn weekday_set(field: &str) -> Result<Vec<u8>, String> {
    const MAX: u32 = 59; // cronexpr's bound for every field; only 0..=6 can match
    let mut selected = [false; 7];
    for part in field.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, s)) => {
                let step: u32 = s.parse().map_err(|_| format!("invalid step {s:?}"))?;
                if step == 0 {
                    return Err("step must be at least 1".to_string());
                }
                (r, Some(step))
            }
            None => (part, None),
        };
        let (begin, end) = if range == "*" {
            (0, MAX)
        } else {
            match range.split_once('-') {
                Some((a, b)) => (number(a)?, number(b)?),
                None => {
                    let n = number(range)?;
                    (n, if step.is_some() { MAX } else { n })
                }
            }
        };
        let step = step.unwrap_or(1);
        let mut v = begin;
        while v <= end && v <= MAX {
            if v <= 6 {
                selected[v as usize] = true;
            }
            v += step;
        }
    }
    Ok((0u8..7).filter(|d| selected[*d as usize]).collect())
}

fn number(s: &str) -> Result<u32, String> {
    s.parse().map_err(|_| format!("invalid value {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Datelike, TimeZone, Timelike, Utc};

    fn next_after(expr: &str, y: i32, m: u32, d: u32) -> chrono::DateTime<Utc> {
        let start = Utc.with_ymd_and_hms(y, m, d, 0, 0, 0).unwrap();
        parse(expr)
            .unwrap()
            .find_next_occurrence(&start, false)
            .unwrap()
    }

    #[test]
    fn accepts_backrest_forms() {
        for expr in [
            "0 0 * * *",
            "*/15 * * * *",
            "0 0/4 * * *",
            "30 2 1 JAN,jul MON-fri",
            "0 0 1 * *",
            "5 4 * * sun",
        ] {
            parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
        }
    }

    #[test]
    fn refuses_what_cronexpr_refuses() {
        for expr in [
            "",
            "* * * *",
            "0 * * * * *",
            "0 0 * * * 2030",
            "@daily",
            "0 0 L * *",
            "0 0 15W * *",
            "0 0 * * 5#2",
            "0 0 ? * *",
            "0 0 * * 5L",
            "0 0 * FOO *",
            "0 0 MON * *",
            "*/0 * * * *",
            "0 0 * * 1/0",
            "0 0 * * +1",
            "/5 * * * *",
        ] {
            assert!(
                matches!(parse(expr), Err(CronError::Syntax(_))),
                "{expr:?} should be refused"
            );
        }
    }

    #[test]
    fn step_shorthand_and_names_fire_when_expected() {
        // 0/4 on hours: 0,4,8,... ; first fire after midnight is 04:00.
        let t = next_after("0 0/4 * * *", 2026, 3, 10);
        assert_eq!((t.hour(), t.minute()), (4, 0));
        // Day of month AND day of week: the 1st that is a Monday (2026-06-01).
        let t = next_after("0 0 1 * MON", 2026, 1, 2);
        assert_eq!((t.year(), t.month(), t.day()), (2026, 6, 1));
        // Month names.
        let t = next_after("0 12 5 mar *", 2026, 1, 1);
        assert_eq!((t.month(), t.day(), t.hour()), (3, 5, 12));
    }

    #[test]
    fn day_of_week_seven_never_matches_like_cronexpr() {
        assert_eq!(parse("0 0 * * 7").unwrap_err(), CronError::NeverFires);
        // 5-7 keeps Friday and Saturday only: from Saturday 2026-03-14 the
        // next fire is Friday 2026-03-20, not Sunday the 15th.
        let t = next_after("0 0 * * 5-7", 2026, 3, 14);
        assert_eq!((t.day(), t.weekday()), (20, chrono::Weekday::Fri));
        assert_eq!(weekday_set("*/2").unwrap(), vec![0, 2, 4, 6]);
        assert_eq!(weekday_set("1/3").unwrap(), vec![1, 4]);
        assert_eq!(weekday_set("0,6").unwrap(), vec![0, 6]);
    }
}
