//! When a schedule next fires (Backrest's `ResolveSchedule`, §6.8), as a pure
//! function of the schedule, the task's last run, the current instant and the
//! server's time zone — no clock is read here, so every case is testable.
//!
//! # Semantics
//!
//! * No schedule kind, or `disabled` (whatever its value) → never (`Ok(None)`).
//! * Base time: `CLOCK_DEFAULT` / `CLOCK_LOCAL` / `CLOCK_UTC` → `now`;
//!   `CLOCK_LAST_RUN_TIME` → `last_run`, or `now` when the task never ran.
//!   An unknown clock number is an error (`unknown clock type: N`), as in
//!   Backrest.
//! * `maxFrequencyDays: N` → base + N×24 h of real time; `maxFrequencyHours: N`
//!   → base + N h. N < 1 is an error.
//! * `cron` → the first fire time strictly after the base. Cron is evaluated
//!   on the wall clock of the server's zone, except under `CLOCK_UTC`, where it
//!   is evaluated in UTC. **Deliberate difference from Backrest:** Backrest's
//!   cron library ignores the zone of its input, so its UTC cron schedules
//!   fire at local wall-clock times (`0 0 * * *` under `CLOCK_UTC` fires at
//!   08:00Z in Los Angeles). Here it fires at 00:00Z. Fire times are always on
//!   a whole minute (Backrest sometimes keeps the seconds of the base).
//! * `CLOCK_LAST_RUN_TIME` catch-up: a result before `now` (runs were missed
//!   while the server was down, or the last run is long ago) becomes `now` —
//!   one run right away, not one per missed slot. With the other clocks the
//!   result is always after `now` by construction.
//!
//! # Daylight saving time
//!
//! Cron fields describe wall-clock times. When the clock springs forward a
//! range of wall times never happens (a *gap*); when it falls back a range
//! happens twice (a *fold*). croner has DST rules of its own, but it decides
//! per pattern: only patterns with a single minute and a single hour count as
//! "fixed-time", so `0 2,14 * * *` would silently lose its 02:00 run on
//! spring-forward day and `30 1,13 * * *` would run twice at 01:30 on
//! fall-back day. We therefore use croner only to enumerate wall-clock
//! matches (on `NaiveDateTime`, which has no DST) and map each wall-clock fire
//! time `w` to real instants ourselves, per fire time:
//!
//! * `w` is **interval-like** if the pattern also fires at another *existing*
//!   wall time within `max(shift, 1 h)` of `w` (closed range; `shift` is the
//!   size of the clock change). Such fire times follow real time: one in a gap
//!   is dropped (its neighbours already cover that stretch of real time) and
//!   one in a fold fires at both of its instants. So `0 * * * *`, `*/15 …`,
//!   `0 1-3 * * *` neither fire twice within one real hour nor leave a real
//!   hour out.
//! * Otherwise `w` is **time-of-day-like** (daily 02:30, `0 2,14`, weekly …):
//!   in a gap it fires once at the first real instant after the gap (03:00
//!   local on US/EU spring-forward day, so the day is never skipped), and in a
//!   fold it fires once, at the first of its two instants. A server that starts
//!   inside the fold after that first instant waits for the next day, as it
//!   would for any other missed slot with a non-LAST_RUN clock.
//!
//! With the time-of-day rule several gap fire times can land on the same
//! instant (e.g. `0,30 2 * * *`); the "strictly after the base" rule makes that
//! one run.
//!
//! A pattern whose days never exist (`0 0 30 2 *`) is an error ("never
//! fires"), found up front rather than by croner's search to the year 5000.

use chrono::{DateTime, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Utc};
use croner::Cron;

use crate::config::cron as cron_expr;
use crate::pb::v1;
use v1::schedule::{Clock, Schedule as Kind};

/// An upper bound on how far a time zone's clock jumps at one change
/// (real DST shifts are at most 2 h). Fire times up to this far behind the
/// base's wall clock are examined, because after a fall-back they can still
/// lie ahead in real time, and the search runs this far past the best
/// candidate found, because a fold can place later wall times at earlier
/// instants.
const MAX_SHIFT: TimeDelta = TimeDelta::hours(3);

/// Fire times closer than this (on the wall clock) to another fire time of
/// the same pattern are interval-like even when the clock change is shorter
/// (e.g. the 30-minute shift of Australia/Lord_Howe).
const MIN_NEIGHBOURHOOD: TimeDelta = TimeDelta::hours(1);

/// When a schedule next fires. `now` is the current instant, `last_run` when this task last
/// finished (None if it never ran), `local` the server's time zone (chrono::Local in production).
pub fn next_run<Tz: TimeZone>(
    schedule: &v1::Schedule,
    last_run: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    local: &Tz,
) -> Result<Option<DateTime<Utc>>, String> {
    let kind = match &schedule.schedule {
        None | Some(Kind::Disabled(_)) => return Ok(None),
        Some(kind) => kind,
    };
    let clock = Clock::try_from(schedule.clock)
        .map_err(|_| format!("unknown clock type: {}", schedule.clock))?;
    let base = match clock {
        Clock::Default | Clock::Local | Clock::Utc => now,
        Clock::LastRunTime => last_run.unwrap_or(now),
    };
    let next = match kind {
        Kind::Disabled(_) => unreachable!("handled above"),
        Kind::MaxFrequencyDays(n) => add_hours(base, *n, 24, "max frequency days")?,
        Kind::MaxFrequencyHours(n) => add_hours(base, *n, 1, "max frequency hours")?,
        Kind::Cron(expr) => {
            let cron = cron_expr::parse(expr).map_err(|e| format!("invalid cron {expr:?}: {e}"))?;
            if !has_a_real_date(&cron) {
                return Err(format!("cron {expr:?}: the expression never fires"));
            }
            let next = match clock {
                Clock::Utc => next_fire(&cron, base, &Utc),
                _ => next_fire(&cron, base, local),
            };
            next.map_err(|e| format!("cron {expr:?}: {e}"))?
        }
    };
    if clock == Clock::LastRunTime && next < now {
        return Ok(Some(now));
    }
    Ok(Some(next))
}

fn add_hours(
    base: DateTime<Utc>,
    n: i32,
    hours_per_unit: i64,
    what: &str,
) -> Result<DateTime<Utc>, String> {
    if n < 1 {
        return Err(format!("invalid {what}: {n} (must be at least 1)"));
    }
    TimeDelta::try_hours(i64::from(n) * hours_per_unit)
        .and_then(|d| base.checked_add_signed(d))
        .ok_or_else(|| format!("invalid {what}: {n} (out of range)"))
}

/// Whether some selected day of the month exists in some selected month
/// (`0 0 30 2 *` never fires). croner would only find that out by searching
/// up to the year 5000, which takes about half a second. When a (month, day)
/// pair exists, its weekday runs through all seven days over the years, so
/// the day-of-week field (never empty, see `config::cron`) cannot starve it.
fn has_a_real_date(cron: &Cron) -> bool {
    const DAYS_IN_MONTH: [u16; 12] = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    let last_day = cron
        .pattern
        .months
        .values()
        .into_iter()
        .filter_map(|m| DAYS_IN_MONTH.get(usize::from(m).wrapping_sub(1)))
        .max();
    let first_day = cron.pattern.days.values().into_iter().min();
    matches!((first_day, last_day), (Some(first), Some(last)) if first <= *last)
}

fn cron_err(e: croner::errors::CronError) -> String {
    match e {
        croner::errors::CronError::TimeSearchLimitExceeded => {
            "the expression never fires".to_string()
        }
        other => other.to_string(),
    }
}

/// The first instant strictly after `base` at which `cron`, read on the wall
/// clock of `tz`, fires (with the DST rules of the module docs).
fn next_fire<Tz: TimeZone>(
    cron: &Cron,
    base: DateTime<Utc>,
    tz: &Tz,
) -> Result<DateTime<Utc>, String> {
    let base_wall = base.with_timezone(tz).naive_local();
    let mut cursor = base_wall - MAX_SHIFT;
    // The best candidate so far and its wall-clock time.
    let mut best: Option<(DateTime<Utc>, NaiveDateTime)> = None;
    loop {
        let w = cron
            .find_next_occurrence(&cursor, false)
            .map_err(cron_err)?;
        if let Some((_, best_wall)) = best
            && w > best_wall + MAX_SHIFT
        {
            break;
        }
        for t in instants(cron, w, tz)? {
            if t > base && best.is_none_or(|(b, _)| t < b) {
                best = Some((t, t.with_timezone(tz).naive_local()));
            }
        }
        cursor = w;
    }
    Ok(best.expect("loop only ends with a candidate").0)
}

fn offset_secs<Tz: TimeZone>(tz: &Tz, t: DateTime<Utc>) -> i64 {
    i64::from(
        tz.offset_from_utc_datetime(&t.naive_utc())
            .fix()
            .local_minus_utc(),
    )
}

/// The real instants at which the wall-clock fire time `w` runs: one
/// normally, none or one in a gap, one or two in a fold.
fn instants<Tz: TimeZone>(
    cron: &Cron,
    w: NaiveDateTime,
    tz: &Tz,
) -> Result<Vec<DateTime<Utc>>, String> {
    Ok(match tz.from_local_datetime(&w) {
        LocalResult::Single(t) => vec![t.with_timezone(&Utc)],
        LocalResult::Ambiguous(earlier, later) => {
            let (earlier, later) = (earlier.with_timezone(&Utc), later.with_timezone(&Utc));
            if has_neighbour(cron, w, later - earlier, tz)? {
                vec![earlier, later]
            } else {
                vec![earlier]
            }
        }
        LocalResult::None => {
            let after = first_instant_after_gap(w, tz)?;
            let shift = TimeDelta::seconds(
                offset_secs(tz, after) - offset_secs(tz, after - TimeDelta::seconds(1)),
            );
            if has_neighbour(cron, w, shift, tz)? {
                vec![]
            } else {
                vec![after]
            }
        }
    })
}

/// Whether `cron` fires at an existing wall time other than `w` within
/// `max(|shift|, MIN_NEIGHBOURHOOD)` of `w`, bounds included.
fn has_neighbour<Tz: TimeZone>(
    cron: &Cron,
    w: NaiveDateTime,
    shift: TimeDelta,
    tz: &Tz,
) -> Result<bool, String> {
    let radius = shift.abs().max(MIN_NEIGHBOURHOOD);
    let end = w + radius;
    let mut cursor = w - radius;
    let mut inclusive = true;
    loop {
        let n = cron
            .find_next_occurrence(&cursor, inclusive)
            .map_err(cron_err)?;
        if n > end {
            return Ok(false);
        }
        if n != w && tz.from_local_datetime(&n).earliest().is_some() {
            return Ok(true);
        }
        cursor = n;
        inclusive = false;
    }
}

/// The first real instant whose wall clock is after `w`, a wall time inside a
/// gap: the moment the clock jumped. Found by doubling the step until a wall
/// time exists, then bisecting to the second (gaps are hours long at most and
/// months apart, so existence is monotonic over the searched range).
fn first_instant_after_gap<Tz: TimeZone>(
    w: NaiveDateTime,
    tz: &Tz,
) -> Result<DateTime<Utc>, String> {
    const LIMIT_SECS: i64 = 4 * 24 * 3600;
    let resolve = |secs: i64| {
        tz.from_local_datetime(&(w + TimeDelta::seconds(secs)))
            .earliest()
    };
    let (mut lo, mut hi) = (0i64, 60i64);
    while resolve(hi).is_none() {
        lo = hi;
        hi *= 2;
        if hi > LIMIT_SECS {
            return Err(format!(
                "local time {w} falls in a time zone gap longer than 4 days"
            ));
        }
    }
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if resolve(mid).is_some() {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Ok(resolve(hi).expect("checked above").with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono_tz::America::{Los_Angeles, New_York};
    use chrono_tz::Asia::Kolkata;
    use chrono_tz::Australia::Lord_Howe;
    use chrono_tz::Europe::Berlin;

    const CLOCKS: [Clock; 4] = [Clock::Default, Clock::Local, Clock::Utc, Clock::LastRunTime];

    /// An instant written as RFC 3339 (`Z` or an explicit offset).
    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .unwrap_or_else(|e| panic!("{s}: {e}"))
            .with_timezone(&Utc)
    }

    fn sched(kind: Option<Kind>, clock: Clock) -> v1::Schedule {
        v1::Schedule {
            clock: clock as i32,
            schedule: kind,
        }
    }

    fn cron(expr: &str, clock: Clock) -> v1::Schedule {
        sched(Some(Kind::Cron(expr.to_string())), clock)
    }

    /// Repeatedly asks for the next run, feeding each result back as `now`
    /// (plus one second), and returns the fire instants.
    fn sequence<Tz: TimeZone>(
        s: &v1::Schedule,
        start: &str,
        tz: &Tz,
        n: usize,
    ) -> Vec<DateTime<Utc>> {
        let mut now = at(start);
        let mut out = Vec::new();
        for _ in 0..n {
            let next = next_run(s, None, now, tz).unwrap().expect("fires");
            assert!(next > now, "{next} is not after {now}");
            out.push(next);
            now = next + TimeDelta::seconds(1);
        }
        out
    }

    fn instants_of(list: &[&str]) -> Vec<DateTime<Utc>> {
        list.iter().map(|s| at(s)).collect()
    }

    #[test]
    fn never_when_unset_or_disabled() {
        let now = at("2026-01-15T12:00:00Z");
        for clock in CLOCKS {
            for kind in [
                None,
                Some(Kind::Disabled(true)),
                Some(Kind::Disabled(false)),
            ] {
                for last in [None, Some(at("2026-01-01T00:00:00Z"))] {
                    let s = sched(kind.clone(), clock);
                    assert_eq!(next_run(&s, last, now, &Los_Angeles), Ok(None), "{s:?}");
                }
            }
        }
    }

    #[test]
    fn unknown_clock_is_an_error() {
        let s = v1::Schedule {
            clock: 9,
            schedule: Some(Kind::MaxFrequencyHours(1)),
        };
        let err = next_run(&s, None, at("2026-01-15T12:00:00Z"), &Utc).unwrap_err();
        assert!(err.contains("unknown clock type: 9"), "{err}");
    }

    #[test]
    fn max_frequency_for_every_clock() {
        let now = at("2026-01-15T12:00:00Z");
        let recent = at("2026-01-15T10:00:00Z");
        let old = at("2025-12-01T00:00:00Z");
        // (kind, last_run, expected for DEFAULT/LOCAL/UTC, expected for LAST_RUN_TIME)
        let cases: Vec<(Kind, Option<DateTime<Utc>>, &str, &str)> = vec![
            // Never ran: LAST_RUN_TIME counts from now as well.
            (
                Kind::MaxFrequencyDays(1),
                None,
                "2026-01-16T12:00:00Z",
                "2026-01-16T12:00:00Z",
            ),
            (
                Kind::MaxFrequencyHours(6),
                None,
                "2026-01-15T18:00:00Z",
                "2026-01-15T18:00:00Z",
            ),
            // Ran 2 h ago: the other clocks ignore it; LAST_RUN_TIME is anchored to it.
            (
                Kind::MaxFrequencyDays(2),
                Some(recent),
                "2026-01-17T12:00:00Z",
                "2026-01-17T10:00:00Z",
            ),
            (
                Kind::MaxFrequencyHours(6),
                Some(recent),
                "2026-01-15T18:00:00Z",
                "2026-01-15T16:00:00Z",
            ),
            // Ran 2 h ago with a 1 h period: already due, so LAST_RUN_TIME says "now".
            (
                Kind::MaxFrequencyHours(1),
                Some(recent),
                "2026-01-15T13:00:00Z",
                "2026-01-15T12:00:00Z",
            ),
            // Last run weeks ago: run now, once.
            (
                Kind::MaxFrequencyDays(7),
                Some(old),
                "2026-01-22T12:00:00Z",
                "2026-01-15T12:00:00Z",
            ),
        ];
        for (kind, last, other, last_run_clock) in cases {
            for clock in CLOCKS {
                let want = if clock == Clock::LastRunTime {
                    last_run_clock
                } else {
                    other
                };
                let s = sched(Some(kind.clone()), clock);
                assert_eq!(
                    next_run(&s, last, now, &Los_Angeles),
                    Ok(Some(at(want))),
                    "{kind:?} {clock:?} last={last:?}"
                );
            }
        }
    }

    #[test]
    fn max_frequency_days_are_24_real_hours_across_dst() {
        // 2026-03-07 12:00 EST; the clocks spring forward overnight, so 24 h
        // later it is 13:00 EDT on the wall clock.
        let s = sched(Some(Kind::MaxFrequencyDays(1)), Clock::Local);
        let next = next_run(&s, None, at("2026-03-07T12:00:00-05:00"), &New_York)
            .unwrap()
            .unwrap();
        assert_eq!(next, at("2026-03-08T13:00:00-04:00"));
    }

    #[test]
    fn max_frequency_below_one_or_overflowing_is_an_error() {
        let now = at("2026-01-15T12:00:00Z");
        for clock in CLOCKS {
            for kind in [
                Kind::MaxFrequencyDays(0),
                Kind::MaxFrequencyDays(-1),
                Kind::MaxFrequencyHours(0),
                Kind::MaxFrequencyHours(i32::MIN),
                Kind::MaxFrequencyDays(i32::MAX), // ~5.9 million years: past chrono's range
            ] {
                let s = sched(Some(kind.clone()), clock);
                let err = next_run(&s, Some(now), now, &Utc).unwrap_err();
                assert!(err.starts_with("invalid max frequency"), "{kind:?}: {err}");
            }
        }
        // The largest hour count is fine (~245,000 years).
        let s = sched(Some(Kind::MaxFrequencyHours(i32::MAX)), Clock::Utc);
        assert!(next_run(&s, None, now, &Utc).unwrap().is_some());
    }

    #[test]
    fn cron_local_vs_utc_in_los_angeles() {
        // (expr, now, expected with DEFAULT and LOCAL (LA wall clock), expected with UTC)
        let cases = [
            // Winter (PST, -8): local midnight is 08:00Z; UTC midnight is 00:00Z.
            (
                "0 0 * * *",
                "2026-01-15T12:00:00Z",
                "2026-01-16T08:00:00Z",
                "2026-01-16T00:00:00Z",
            ),
            // Summer (PDT, -7): local midnight is 07:00Z.
            (
                "0 0 * * *",
                "2026-07-15T12:00:00Z",
                "2026-07-16T07:00:00Z",
                "2026-07-16T00:00:00Z",
            ),
            // Every 15 minutes: LA's offset is whole hours, so both agree; strictly after now.
            (
                "*/15 * * * *",
                "2026-01-15T12:07:30Z",
                "2026-01-15T12:15:00Z",
                "2026-01-15T12:15:00Z",
            ),
            (
                "*/15 * * * *",
                "2026-01-15T12:15:00Z",
                "2026-01-15T12:30:00Z",
                "2026-01-15T12:30:00Z",
            ),
            (
                "*/15 * * * *",
                "2026-01-15T12:14:59.500Z",
                "2026-01-15T12:15:00Z",
                "2026-01-15T12:15:00Z",
            ),
            // Hours 0,4,8,…: 13:00Z = 06:00 PDT → 08:00 PDT = 15:00Z; in UTC → 16:00Z.
            (
                "0 0/4 * * *",
                "2026-07-15T13:00:00Z",
                "2026-07-15T15:00:00Z",
                "2026-07-15T16:00:00Z",
            ),
            // Fri 2026-01-16 08:00 PST (16:00Z): local 09:00 is still ahead today;
            // 09:00Z Friday has passed, so UTC waits for Monday.
            (
                "0 9 * * MON-FRI",
                "2026-01-16T16:00:00Z",
                "2026-01-16T17:00:00Z",
                "2026-01-19T09:00:00Z",
            ),
            // Fri 10:00 PST (18:00Z): both wait for Monday the 19th.
            (
                "0 9 * * MON-FRI",
                "2026-01-16T18:00:00Z",
                "2026-01-19T17:00:00Z",
                "2026-01-19T09:00:00Z",
            ),
            // Sat 2026-01-17: Monday either way.
            (
                "0 9 * * MON-FRI",
                "2026-01-17T20:00:00Z",
                "2026-01-19T17:00:00Z",
                "2026-01-19T09:00:00Z",
            ),
            // Monthly. Jan 31 12:00 PST: Feb 1 local midnight (08:00Z) / Feb 1 00:00Z.
            (
                "0 0 1 * *",
                "2026-01-31T20:00:00Z",
                "2026-02-01T08:00:00Z",
                "2026-02-01T00:00:00Z",
            ),
            // Feb 1 04:00Z is still Jan 31 in LA, but February has begun in UTC.
            (
                "0 0 1 * *",
                "2026-02-01T04:00:00Z",
                "2026-02-01T08:00:00Z",
                "2026-03-01T00:00:00Z",
            ),
            // April 1 local midnight is in PDT (07:00Z).
            (
                "0 0 1 * *",
                "2026-03-15T00:00:00Z",
                "2026-04-01T07:00:00Z",
                "2026-04-01T00:00:00Z",
            ),
        ];
        for (expr, now, want_local, want_utc) in cases {
            for clock in [Clock::Default, Clock::Local, Clock::Utc] {
                let want = if clock == Clock::Utc {
                    want_utc
                } else {
                    want_local
                };
                // last_run is ignored by these clocks.
                let last = Some(at("2020-01-01T00:00:00Z"));
                assert_eq!(
                    next_run(&cron(expr, clock), last, at(now), &Los_Angeles),
                    Ok(Some(at(want))),
                    "{expr} {clock:?} now={now}"
                );
            }
        }
    }

    #[test]
    fn cron_utc_ignores_a_half_hour_local_offset() {
        // Kolkata is +05:30: local hours start at :30 UTC.
        let now = at("2026-01-15T12:10:00Z");
        let local = next_run(&cron("0 * * * *", Clock::Local), None, now, &Kolkata)
            .unwrap()
            .unwrap();
        let utc = next_run(&cron("0 * * * *", Clock::Utc), None, now, &Kolkata)
            .unwrap()
            .unwrap();
        assert_eq!(local, at("2026-01-15T12:30:00Z"));
        assert_eq!(utc, at("2026-01-15T13:00:00Z"));
    }

    #[test]
    fn cron_with_last_run_time() {
        let lr = Clock::LastRunTime;
        // (expr, last_run, now, expected) in Los Angeles.
        let cases = [
            // Never ran: next fire after now (PST midnight = 08:00Z).
            (
                "0 0 * * *",
                None,
                "2026-01-15T12:00:00Z",
                "2026-01-16T08:00:00Z",
            ),
            // Ran at 01:00 PST today; the next midnight is still ahead.
            (
                "0 0 * * *",
                Some("2026-01-15T09:00:00Z"),
                "2026-01-15T12:00:00Z",
                "2026-01-16T08:00:00Z",
            ),
            // Ran at 04:30 PDT; the next slot (08:00 PDT = 15:00Z) is after now.
            (
                "0 0/4 * * *",
                Some("2026-07-15T11:30:00Z"),
                "2026-07-15T12:00:00Z",
                "2026-07-15T15:00:00Z",
            ),
            // Ran at 03:30 PDT; the 04:00 PDT slot (11:00Z) was missed → now.
            (
                "0 0/4 * * *",
                Some("2026-07-15T10:30:00Z"),
                "2026-07-15T12:00:00Z",
                "2026-07-15T12:00:00Z",
            ),
            // Last run months ago: many missed slots, one run now.
            (
                "*/15 * * * *",
                Some("2025-09-01T00:00:00Z"),
                "2026-01-15T12:07:00Z",
                "2026-01-15T12:07:00Z",
            ),
            (
                "0 0 1 * *",
                Some("2025-06-01T07:00:00Z"),
                "2026-01-15T12:00:00Z",
                "2026-01-15T12:00:00Z",
            ),
            // Ran Friday 09:00 PST; now is Saturday; Monday 09:00 PST is next.
            (
                "0 9 * * MON-FRI",
                Some("2026-01-16T17:00:00Z"),
                "2026-01-17T12:00:00Z",
                "2026-01-19T17:00:00Z",
            ),
        ];
        for (expr, last, now, want) in cases {
            let last = last.map(at);
            assert_eq!(
                next_run(&cron(expr, lr), last, at(now), &Los_Angeles),
                Ok(Some(at(want))),
                "{expr} last={last:?} now={now}"
            );
        }
    }

    #[test]
    fn interval_clock_results_are_after_now_even_with_a_stale_last_run() {
        let now = at("2026-01-15T12:00:00Z");
        let last = Some(at("2025-01-01T00:00:00Z"));
        for clock in [Clock::Default, Clock::Local, Clock::Utc] {
            for expr in [
                "0 0 * * *",
                "*/15 * * * *",
                "0 0/4 * * *",
                "0 9 * * MON-FRI",
                "0 0 1 * *",
            ] {
                let next = next_run(&cron(expr, clock), last, now, &Los_Angeles)
                    .unwrap()
                    .unwrap();
                assert!(next > now, "{expr} {clock:?}: {next}");
            }
        }
    }

    #[test]
    fn invalid_cron_is_an_error() {
        let now = at("2026-01-15T12:00:00Z");
        for clock in CLOCKS {
            for expr in [
                "bad cron",
                "",
                "* * * *",
                "60 * * * *",
                "0 0 * * 7",
                "@daily",
                "0 0 30 2 *",
                "0 0 31 4,6,9,11 *",
            ] {
                let err = next_run(&cron(expr, clock), None, now, &Los_Angeles).unwrap_err();
                assert!(err.contains(&format!("{expr:?}")), "{expr}: {err}");
            }
        }
        // Impossible dates parse but never fire.
        let err = next_run(&cron("0 0 30 2 *", Clock::Utc), None, now, &Utc).unwrap_err();
        assert!(err.contains("never fires"), "{err}");
    }

    #[test]
    fn rare_but_real_dates_fire() {
        let now = at("2026-04-15T12:00:00Z");
        let cases = [
            ("0 0 29 2 *", "2028-02-29T00:00:00Z"),
            // February 29th that is a Monday: 2028 Tue, 2032 Sun, 2036 Fri, 2040 Wed, 2044 Mon.
            ("0 0 29 2 MON", "2044-02-29T00:00:00Z"),
            // 31st: April has none, May has.
            ("0 0 31 * *", "2026-05-31T00:00:00Z"),
            ("0 0 30,31 2,4 *", "2026-04-30T00:00:00Z"),
        ];
        for (expr, want) in cases {
            assert_eq!(
                next_run(&cron(expr, Clock::Utc), None, now, &Utc),
                Ok(Some(at(want))),
                "{expr}"
            );
        }
    }

    // ---- Daylight saving time ----
    // New York 2026: 03-08 02:00 EST → 03:00 EDT (07:00Z); 11-01 02:00 EDT → 01:00 EST (06:00Z).
    // Berlin 2026:   03-29 02:00 CET → 03:00 CEST (01:00Z); 10-25 03:00 CEST → 02:00 CET (01:00Z).

    #[test]
    fn dst_daily_job_in_the_gap_runs_once_after_it() {
        // New York: 02:30 does not exist on March 8 → 03:00 EDT.
        let got = sequence(
            &cron("30 2 * * *", Clock::Local),
            "2026-03-06T12:00:00Z",
            &New_York,
            4,
        );
        let want = [
            "2026-03-07T02:30:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:30:00-04:00",
            "2026-03-10T02:30:00-04:00",
        ];
        assert_eq!(got, instants_of(&want));
        // Berlin: 02:30 does not exist on March 29 → 03:00 CEST.
        let got = sequence(
            &cron("30 2 * * *", Clock::Default),
            "2026-03-27T12:00:00Z",
            &Berlin,
            4,
        );
        let want = [
            "2026-03-28T02:30:00+01:00",
            "2026-03-29T03:00:00+02:00",
            "2026-03-30T02:30:00+02:00",
            "2026-03-31T02:30:00+02:00",
        ];
        assert_eq!(got, instants_of(&want));
    }

    #[test]
    fn dst_daily_job_in_the_fold_runs_once_at_the_first_occurrence() {
        // New York: 01:30 happens at 05:30Z (EDT) and 06:30Z (EST) on Nov 1.
        let got = sequence(
            &cron("30 1 * * *", Clock::Local),
            "2026-10-30T12:00:00Z",
            &New_York,
            4,
        );
        let want = [
            "2026-10-31T01:30:00-04:00",
            "2026-11-01T01:30:00-04:00",
            "2026-11-02T01:30:00-05:00",
            "2026-11-03T01:30:00-05:00",
        ];
        assert_eq!(got, instants_of(&want));
        // Berlin: 02:30 happens at 00:30Z (CEST) and 01:30Z (CET) on Oct 25.
        let got = sequence(
            &cron("30 2 * * *", Clock::Local),
            "2026-10-23T12:00:00Z",
            &Berlin,
            4,
        );
        let want = [
            "2026-10-24T02:30:00+02:00",
            "2026-10-25T02:30:00+02:00",
            "2026-10-26T02:30:00+01:00",
            "2026-10-27T02:30:00+01:00",
        ];
        assert_eq!(got, instants_of(&want));
    }

    #[test]
    fn dst_server_starting_inside_the_fold_does_not_rerun_the_daily_job() {
        // 06:10Z on Nov 1 is 01:10 EST, the second pass through 01:xx; the
        // 01:30 run already had its turn at 05:30Z.
        let next = next_run(
            &cron("30 1 * * *", Clock::Local),
            None,
            at("2026-11-01T06:10:00Z"),
            &New_York,
        );
        assert_eq!(next, Ok(Some(at("2026-11-02T01:30:00-05:00"))));
        // Before the first pass it is the first 01:30.
        let next = next_run(
            &cron("30 1 * * *", Clock::Local),
            None,
            at("2026-11-01T05:10:00Z"),
            &New_York,
        );
        assert_eq!(next, Ok(Some(at("2026-11-01T01:30:00-04:00"))));
    }

    #[test]
    fn dst_hourly_jobs_follow_real_hours() {
        let hourly = cron("0 * * * *", Clock::Local);
        // New York spring: 00:00 EST, 01:00 EST, (02:00 missing), 03:00 EDT — consecutive real hours.
        let got = sequence(&hourly, "2026-03-08T04:30:00Z", &New_York, 4);
        assert_eq!(
            got,
            instants_of(&[
                "2026-03-08T05:00:00Z",
                "2026-03-08T06:00:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-08T08:00:00Z"
            ])
        );
        // New York fall: 00:00 EDT, 01:00 EDT, 01:00 EST, 02:00 EST — one per real hour.
        let got = sequence(&hourly, "2026-11-01T03:30:00Z", &New_York, 5);
        assert_eq!(
            got,
            instants_of(&[
                "2026-11-01T04:00:00Z",
                "2026-11-01T05:00:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T07:00:00Z",
                "2026-11-01T08:00:00Z"
            ])
        );
        // Berlin spring: 00:00 CET, 01:00 CET, (02:00 missing), 03:00 CEST.
        let got = sequence(&hourly, "2026-03-28T22:30:00Z", &Berlin, 4);
        assert_eq!(
            got,
            instants_of(&[
                "2026-03-28T23:00:00Z",
                "2026-03-29T00:00:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T02:00:00Z"
            ])
        );
        // Berlin fall: 01:00 CEST, 02:00 CEST, 02:00 CET, 03:00 CET.
        let got = sequence(&hourly, "2026-10-24T22:30:00Z", &Berlin, 5);
        assert_eq!(
            got,
            instants_of(&[
                "2026-10-24T23:00:00Z",
                "2026-10-25T00:00:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T02:00:00Z",
                "2026-10-25T03:00:00Z"
            ])
        );
        // The same with an hour range instead of `*`.
        let got = sequence(
            &cron("0 0-5 * * *", Clock::Local),
            "2026-11-01T03:30:00Z",
            &New_York,
            4,
        );
        assert_eq!(
            got,
            instants_of(&[
                "2026-11-01T04:00:00Z",
                "2026-11-01T05:00:00Z",
                "2026-11-01T06:00:00Z",
                "2026-11-01T07:00:00Z"
            ])
        );
    }

    #[test]
    fn dst_quarter_hourly_job_follows_real_time() {
        let every15 = cron("*/15 * * * *", Clock::Local);
        let step = |start: &str, n: i32| -> Vec<DateTime<Utc>> {
            (0..n)
                .map(|i| at(start) + TimeDelta::minutes(15 * i64::from(i)))
                .collect()
        };
        // Through New York's spring gap (01:45 EST is followed by 03:00 EDT) …
        assert_eq!(
            sequence(&every15, "2026-03-08T06:00:00Z", &New_York, 8),
            step("2026-03-08T06:15:00Z", 8)
        );
        // … and through its fall fold (01:00–01:45 twice).
        assert_eq!(
            sequence(&every15, "2026-11-01T04:50:00Z", &New_York, 12),
            step("2026-11-01T05:00:00Z", 12)
        );
        // Berlin, both ways.
        assert_eq!(
            sequence(&every15, "2026-03-29T00:00:00Z", &Berlin, 8),
            step("2026-03-29T00:15:00Z", 8)
        );
        assert_eq!(
            sequence(&every15, "2026-10-24T23:50:00Z", &Berlin, 12),
            step("2026-10-25T00:00:00Z", 12)
        );
    }

    #[test]
    fn dst_twice_daily_job_keeps_both_slots() {
        // croner alone would drop the 02:00 run on spring-forward day.
        let got = sequence(
            &cron("0 2,14 * * *", Clock::Local),
            "2026-03-06T20:00:00Z",
            &New_York,
            5,
        );
        let want = [
            "2026-03-07T02:00:00-05:00",
            "2026-03-07T14:00:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-08T14:00:00-04:00",
            "2026-03-09T02:00:00-04:00",
        ];
        assert_eq!(got, instants_of(&want));
        // … and would run twice at 01:00 on fall-back day.
        let got = sequence(
            &cron("0 1,13 * * *", Clock::Local),
            "2026-10-30T20:00:00Z",
            &New_York,
            5,
        );
        let want = [
            "2026-10-31T01:00:00-04:00",
            "2026-10-31T13:00:00-04:00",
            "2026-11-01T01:00:00-04:00",
            "2026-11-01T13:00:00-05:00",
            "2026-11-02T01:00:00-05:00",
        ];
        assert_eq!(got, instants_of(&want));
        // Two slots inside the gap collapse into one run at its end.
        let got = sequence(
            &cron("0,30 2 * * *", Clock::Local),
            "2026-03-07T12:00:00Z",
            &New_York,
            3,
        );
        let want = [
            "2026-03-08T03:00:00-04:00",
            "2026-03-09T02:00:00-04:00",
            "2026-03-09T02:30:00-04:00",
        ];
        assert_eq!(got, instants_of(&want));
    }

    #[test]
    fn dst_weekly_sunday_job_is_not_skipped() {
        // US clocks change on Sundays; 2026-03-01, -08 and -15 are Sundays.
        let got = sequence(
            &cron("30 2 * * SUN", Clock::Local),
            "2026-02-28T12:00:00Z",
            &New_York,
            3,
        );
        let want = [
            "2026-03-01T02:30:00-05:00",
            "2026-03-08T03:00:00-04:00",
            "2026-03-15T02:30:00-04:00",
        ];
        assert_eq!(got, instants_of(&want));
    }

    #[test]
    fn dst_does_not_move_utc_schedules() {
        let got = sequence(
            &cron("0 0 * * *", Clock::Utc),
            "2026-03-06T12:00:00Z",
            &New_York,
            4,
        );
        assert_eq!(
            got,
            instants_of(&[
                "2026-03-07T00:00:00Z",
                "2026-03-08T00:00:00Z",
                "2026-03-09T00:00:00Z",
                "2026-03-10T00:00:00Z"
            ])
        );
        let got = sequence(
            &cron("30 1 * * *", Clock::Utc),
            "2026-10-31T12:00:00Z",
            &New_York,
            3,
        );
        assert_eq!(
            got,
            instants_of(&[
                "2026-11-01T01:30:00Z",
                "2026-11-02T01:30:00Z",
                "2026-11-03T01:30:00Z"
            ])
        );
    }

    #[test]
    fn dst_last_run_time_across_the_gap() {
        // Ran Saturday 02:30 EST; now is Sunday 01:00 EST, before the gap:
        // Sunday's 02:30 doesn't exist, so the next run is 03:00 EDT (07:00Z).
        let s = cron("30 2 * * *", Clock::LastRunTime);
        let next = next_run(
            &s,
            Some(at("2026-03-07T07:30:00Z")),
            at("2026-03-08T06:00:00Z"),
            &New_York,
        );
        assert_eq!(next, Ok(Some(at("2026-03-08T07:00:00Z"))));
        // The server was down over that slot: once, now.
        let next = next_run(
            &s,
            Some(at("2026-03-07T07:30:00Z")),
            at("2026-03-08T09:00:00Z"),
            &New_York,
        );
        assert_eq!(next, Ok(Some(at("2026-03-08T09:00:00Z"))));
    }

    #[test]
    fn dst_half_hour_shift_hourly_job_does_not_double_fire() {
        // Lord Howe Island 2026-10-04: 02:00 +10:30 → 02:30 +11 (15:30Z).
        // 02:00 has a neighbour one hour away, so it is dropped rather than
        // moved to 02:30 (which would fire 30 minutes before 03:00).
        let got = sequence(
            &cron("0 * * * *", Clock::Local),
            "2026-10-03T14:00:00Z",
            &Lord_Howe,
            3,
        );
        let want = [
            "2026-10-04T01:00:00+10:30",
            "2026-10-04T03:00:00+11:00",
            "2026-10-04T04:00:00+11:00",
        ];
        assert_eq!(got, instants_of(&want));
        // A daily 02:15 moves to the end of the gap, 02:30 +11.
        let got = sequence(
            &cron("15 2 * * *", Clock::Local),
            "2026-10-02T00:00:00Z",
            &Lord_Howe,
            2,
        );
        let want = ["2026-10-03T02:15:00+10:30", "2026-10-04T02:30:00+11:00"];
        assert_eq!(got, instants_of(&want));
    }
}
