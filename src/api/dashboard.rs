//! GetSummaryDashboard: per-plan and per-repo backup statistics over the
//! last 30 days (reference §11.1), computed from the operation log.
//!
//! The aggregation is a pure function of the config, the operations (newest
//! first), the current instant and the server's time zone: [`summarize`], or
//! incrementally [`Aggregator`]. The RPC streams the log through it, decoding
//! only the few fields it reads ([`DashboardOp::decode`]).
//!
//! Semantics, as in Backrest:
//! * Only backups made by this instance (`instance_id == config.instance`)
//!   count. Each feeds the summary of its plan (if configured) and of its
//!   repo GUID (if configured).
//! * The window is today plus the 29 days before, in local days. Older
//!   backups only say "history goes back further" and provide a staleness
//!   anchor (the newest OK backup before the window).
//! * An OK backup is a SUCCESS or WARNING that is not a dry run. Counts per
//!   status count every backup, dry runs included; PENDING backups only set
//!   `next_backup_time_ms` (the oldest pending one in the window wins).
//! * `protected_bytes`: bytes processed by the newest OK backup with a summary
//!   that processed any (Backrest skips zeros).
//! * The chart holds the 60 newest examined backups; durations under a
//!   second show as one second.
//! * History: one bucket per local day from the window start (if history
//!   goes back further), else the oldest day with a backup, else today,
//!   through today. A day is overdue when it had no OK backup and, at its end
//!   (now, for today), the newest OK backup is older than the schedule's
//!   nominal period × 1.25. A repo uses the widest period of its plans.
//!   Disabled or unparseable schedules never mark days overdue.
//!
//! One addition: `total_snapshots` (Backrest leaves it 0) is the number of
//! distinct snapshots with a non-forgotten index operation — for a plan, those
//! made by this instance for it; for a repo, all of the repo's snapshots
//! (whoever made them), as `restic snapshots` would list them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::ControlFlow;

use chrono::{DateTime, LocalResult, NaiveDate, NaiveTime, TimeDelta, TimeZone, Utc};
use prost::Message;

use crate::connect::ConnectError;
use crate::oplog::{OpLog, OpLogError, Query};
use crate::orchestrator::schedule::next_run;
use crate::pb::v1::{self, OperationStatus};
use crate::server::AppState;
use v1::summary_dashboard_response::{BackupChart, DayStatusBucket, StatusAndCount, Summary};

/// Today plus the 29 days before.
pub const WINDOW_DAYS: u32 = 30;
/// How many recent backups each chart shows.
pub const CHART_BACKUPS: usize = 60;
/// Shortest duration a chart shows, so instant backups stay visible.
pub const MIN_CHART_DURATION_MS: i64 = 1000;
/// How many consecutive cron gaps are sampled for a cron schedule's period.
const CRON_PERIOD_SAMPLES: usize = 8;

pub async fn get_summary_dashboard(
    state: &AppState,
) -> Result<v1::SummaryDashboardResponse, ConnectError> {
    let config = state.config.get();
    let mut response = from_oplog(&state.oplog, &config, Utc::now(), chrono::Local).await?;
    response.config_path = state.options.config_file.display().to_string();
    response.data_path = state.options.data_dir.display().to_string();
    Ok(response)
}

/// The aggregation over the operation log, streamed newest first.
pub async fn from_oplog<Tz: TimeZone + Send>(
    oplog: &OpLog,
    config: &v1::Config,
    now: DateTime<Utc>,
    tz: Tz,
) -> Result<v1::SummaryDashboardResponse, OpLogError>
where
    Tz::Offset: Send,
{
    let mut agg = Aggregator::new(config, now, tz);
    // Only this server's own records: operations synced from peers describe
    // their instances, and their copies of a shared repo's index would
    // double-count snapshots.
    let query = Query::all().original_instance_keyid("").reversed();
    let mut undecodable = 0usize;
    oplog
        .scan_raw(&query, |_, blob| {
            match DashboardOp::decode(blob) {
                Ok(op) => agg.observe(&op),
                Err(_) => undecodable += 1,
            }
            ControlFlow::Continue(())
        })
        .await?;
    if undecodable > 0 {
        tracing::warn!("summary dashboard: skipped {undecodable} undecodable operations");
    }
    Ok(agg.finish())
}

/// What the dashboard reads of one operation.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DashboardOp {
    pub instance_id: String,
    pub plan_id: String,
    pub repo_guid: String,
    pub status: i32,
    pub unix_time_start_ms: i64,
    pub unix_time_end_ms: i64,
    pub flow_id: i64,
    pub snapshot_id: String,
    pub kind: DashboardKind,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum DashboardKind {
    Backup {
        dry_run: bool,
        /// The final summary, if restic produced one.
        summary: Option<BytesSummary>,
    },
    IndexSnapshot {
        forgot: bool,
    },
    /// Any other kind of operation (ignored).
    #[default]
    Other,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BytesSummary {
    pub total_bytes_processed: i64,
    pub data_added: i64,
}

impl DashboardOp {
    /// Decodes the dashboard's fields from a stored `v1.Operation`, skipping
    /// everything else (messages, progress, snapshot details, forget lists)
    /// without allocating it.
    pub fn decode(blob: &[u8]) -> Result<DashboardOp, prost::DecodeError> {
        let op = slim::Operation::decode(blob)?;
        let kind = match op.op {
            Some(slim::Kind::Backup(b)) => DashboardKind::Backup {
                dry_run: b.dry_run,
                summary: b.last_status.and_then(|s| s.summary).map(|s| BytesSummary {
                    total_bytes_processed: s.total_bytes_processed,
                    data_added: s.data_added,
                }),
            },
            Some(slim::Kind::IndexSnapshot(i)) => DashboardKind::IndexSnapshot { forgot: i.forgot },
            None => DashboardKind::Other,
        };
        Ok(DashboardOp {
            instance_id: op.instance_id,
            plan_id: op.plan_id,
            repo_guid: op.repo_guid,
            status: op.status,
            unix_time_start_ms: op.unix_time_start_ms,
            unix_time_end_ms: op.unix_time_end_ms,
            flow_id: op.flow_id,
            snapshot_id: op.snapshot_id,
            kind,
        })
    }
}

/// Subsets of the `v1` messages with the same field numbers: prost skips the
/// fields (and oneof cases) these don't declare.
mod slim {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Operation {
        #[prost(string, tag = "3")]
        pub plan_id: String,
        #[prost(int32, tag = "4")]
        pub status: i32,
        #[prost(int64, tag = "5")]
        pub unix_time_start_ms: i64,
        #[prost(int64, tag = "6")]
        pub unix_time_end_ms: i64,
        #[prost(string, tag = "8")]
        pub snapshot_id: String,
        #[prost(int64, tag = "10")]
        pub flow_id: i64,
        #[prost(string, tag = "11")]
        pub instance_id: String,
        #[prost(string, tag = "15")]
        pub repo_guid: String,
        #[prost(oneof = "Kind", tags = "100, 101")]
        pub op: Option<Kind>,
    }

    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Kind {
        #[prost(message, tag = "100")]
        Backup(Backup),
        #[prost(message, tag = "101")]
        IndexSnapshot(IndexSnapshot),
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Backup {
        #[prost(message, optional, tag = "3")]
        pub last_status: Option<ProgressEntry>,
        #[prost(bool, tag = "5")]
        pub dry_run: bool,
    }

    /// `BackupProgressEntry`: only its `summary` case.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ProgressEntry {
        #[prost(message, optional, tag = "2")]
        pub summary: Option<Summary>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Summary {
        #[prost(int64, tag = "9")]
        pub data_added: i64,
        #[prost(int64, tag = "11")]
        pub total_bytes_processed: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct IndexSnapshot {
        #[prost(bool, tag = "3")]
        pub forgot: bool,
    }
}

/// The whole aggregation at once: `ops` newest first (by start time).
pub fn summarize<'a, Tz: TimeZone>(
    config: &v1::Config,
    ops: impl IntoIterator<Item = &'a DashboardOp>,
    now: DateTime<Utc>,
    tz: Tz,
) -> v1::SummaryDashboardResponse {
    let mut agg = Aggregator::new(config, now, tz);
    for op in ops {
        agg.observe(op);
    }
    agg.finish()
}

/// The aggregation, fed one operation at a time, newest first.
pub struct Aggregator<Tz: TimeZone> {
    config: v1::Config,
    now: DateTime<Utc>,
    tz: Tz,
    today: NaiveDate,
    cutoff: NaiveDate,
    plans: HashMap<String, Acc>,
    /// By repo GUID.
    repos: HashMap<String, Acc>,
}

impl<Tz: TimeZone> Aggregator<Tz> {
    pub fn new(config: &v1::Config, now: DateTime<Utc>, tz: Tz) -> Self {
        let today = now.with_timezone(&tz).date_naive();
        let cutoff = today - TimeDelta::days(i64::from(WINDOW_DAYS) - 1);
        Aggregator {
            plans: config
                .plans
                .iter()
                .map(|p| (p.id.clone(), Acc::default()))
                .collect(),
            repos: config
                .repos
                .iter()
                .map(|r| (r.guid.clone(), Acc::default()))
                .collect(),
            config: config.clone(),
            now,
            tz,
            today,
            cutoff,
        }
    }

    pub fn observe(&mut self, op: &DashboardOp) {
        match &op.kind {
            DashboardKind::Backup { dry_run, summary } => {
                if op.instance_id != self.config.instance {
                    return;
                }
                let backup = Backup {
                    op,
                    day: local_date(op.unix_time_start_ms, &self.tz),
                    ok: !dry_run
                        && (op.status == OperationStatus::StatusSuccess as i32
                            || op.status == OperationStatus::StatusWarning as i32),
                    summary: *summary,
                };
                if let Some(acc) = self.plans.get_mut(&op.plan_id) {
                    acc.observe(&backup, self.cutoff);
                }
                if let Some(acc) = self.repos.get_mut(&op.repo_guid) {
                    acc.observe(&backup, self.cutoff);
                }
            }
            DashboardKind::IndexSnapshot { forgot: false } if !op.snapshot_id.is_empty() => {
                if op.instance_id == self.config.instance
                    && let Some(acc) = self.plans.get_mut(&op.plan_id)
                {
                    acc.snapshots.insert(op.snapshot_id.clone());
                }
                if let Some(acc) = self.repos.get_mut(&op.repo_guid) {
                    acc.snapshots.insert(op.snapshot_id.clone());
                }
            }
            _ => {}
        }
    }

    pub fn finish(self) -> v1::SummaryDashboardResponse {
        let window = Window {
            now_ms: self.now.timestamp_millis(),
            today: self.today,
            cutoff: self.cutoff,
        };
        let plan_allowed: HashMap<&str, i64> = self
            .config
            .plans
            .iter()
            .map(|p| {
                let allowed = allowed_staleness_ms(p.schedule.as_ref(), self.now, &self.tz)
                    .unwrap_or_else(|e| {
                        tracing::warn!("summary dashboard: plan {:?}: {e}", p.id);
                        0
                    });
                (p.id.as_str(), allowed)
            })
            .collect();
        let repo_summaries = self
            .config
            .repos
            .iter()
            .map(|r| {
                let widest = self
                    .config
                    .plans
                    .iter()
                    .filter(|p| p.repo == r.id)
                    .map(|p| plan_allowed[p.id.as_str()])
                    .max()
                    .unwrap_or(0);
                self.repos[&r.guid].finish(&r.id, widest, &window, &self.tz)
            })
            .collect();
        let plan_summaries = self
            .config
            .plans
            .iter()
            .map(|p| {
                self.plans[&p.id].finish(&p.id, plan_allowed[p.id.as_str()], &window, &self.tz)
            })
            .collect();
        v1::SummaryDashboardResponse {
            repo_summaries,
            plan_summaries,
            ..Default::default()
        }
    }
}

struct Window {
    now_ms: i64,
    today: NaiveDate,
    cutoff: NaiveDate,
}

/// One backup operation as an accumulator sees it.
struct Backup<'a> {
    op: &'a DashboardOp,
    /// Local day of its start.
    day: NaiveDate,
    /// SUCCESS or WARNING and not a dry run: it resets the staleness clock.
    ok: bool,
    summary: Option<BytesSummary>,
}

/// One plan's or repo's running totals.
#[derive(Default)]
struct Acc {
    examined: i64,
    success: i64,
    failed: i64,
    warning: i64,
    bytes_scanned: i64,
    bytes_added: i64,
    next_backup_ms: i64,
    protected_bytes: Option<i64>,
    chart: BackupChart,
    days: HashMap<NaiveDate, DayAcc>,
    oldest_day: Option<NaiveDate>,
    /// Some backup predates the window.
    reached_cutoff: bool,
    /// Start times of OK backups in the window.
    ok_times_ms: Vec<i64>,
    /// The newest OK backup before the window.
    last_ok_before_window_ms: Option<i64>,
    /// Non-forgotten indexed snapshot ids.
    snapshots: HashSet<String>,
}

#[derive(Default)]
struct DayAcc {
    bytes_added: i64,
    bytes_scanned: i64,
    /// By status number, so buckets list statuses in a stable order.
    status_counts: BTreeMap<i32, i64>,
}

impl Acc {
    fn observe(&mut self, b: &Backup, cutoff: NaiveDate) {
        let op = b.op;
        if b.day < cutoff {
            self.reached_cutoff = true;
            if b.ok && self.last_ok_before_window_ms.is_none() {
                self.last_ok_before_window_ms = Some(op.unix_time_start_ms);
            }
            return;
        }
        if op.status == OperationStatus::StatusPending as i32 {
            self.next_backup_ms = op.unix_time_start_ms;
            return;
        }
        self.examined += 1;
        match OperationStatus::try_from(op.status) {
            Ok(OperationStatus::StatusSuccess) => self.success += 1,
            Ok(OperationStatus::StatusError) => self.failed += 1,
            Ok(OperationStatus::StatusWarning) => self.warning += 1,
            _ => {}
        }
        if b.ok {
            self.ok_times_ms.push(op.unix_time_start_ms);
        }
        if let Some(s) = b.summary {
            self.bytes_scanned += s.total_bytes_processed;
            self.bytes_added += s.data_added;
            // Backrest keeps looking past a newest good backup that scanned
            // 0 bytes (an empty plan) for one that scanned something.
            if b.ok && self.protected_bytes.unwrap_or(0) == 0 {
                self.protected_bytes = Some(s.total_bytes_processed);
            }
        }
        let day = self.days.entry(b.day).or_default();
        *day.status_counts.entry(op.status).or_default() += 1;
        if let Some(s) = b.summary {
            day.bytes_added += s.data_added;
            day.bytes_scanned += s.total_bytes_processed;
        }
        if self.oldest_day.is_none_or(|d| b.day < d) {
            self.oldest_day = Some(b.day);
        }
        if self.chart.timestamp_ms.len() < CHART_BACKUPS {
            let duration = (op.unix_time_end_ms - op.unix_time_start_ms).max(MIN_CHART_DURATION_MS);
            self.chart.flow_id.push(op.flow_id);
            self.chart.timestamp_ms.push(op.unix_time_start_ms);
            self.chart.duration_ms.push(duration);
            self.chart.status.push(op.status);
            self.chart
                .bytes_added
                .push(b.summary.map_or(0, |s| s.data_added));
        }
    }

    fn finish<Tz: TimeZone>(&self, id: &str, allowed_ms: i64, w: &Window, tz: &Tz) -> Summary {
        let divisor = self.examined.max(1);
        Summary {
            id: id.to_string(),
            backups_failed_30days: self.failed,
            backups_warning_last_30days: self.warning,
            backups_success_last_30days: self.success,
            bytes_scanned_last_30days: self.bytes_scanned,
            bytes_added_last_30days: self.bytes_added,
            total_snapshots: self.snapshots.len() as i64,
            bytes_scanned_avg: self.bytes_scanned / divisor,
            bytes_added_avg: self.bytes_added / divisor,
            next_backup_time_ms: self.next_backup_ms,
            recent_backups: Some(self.chart.clone()),
            protected_bytes: self.protected_bytes.unwrap_or(0),
            history_last_30days: self.history(allowed_ms, w, tz),
        }
    }

    fn history<Tz: TimeZone>(&self, allowed_ms: i64, w: &Window, tz: &Tz) -> Vec<DayStatusBucket> {
        // The pre-window anchor counts only when the window has no OK backup:
        // a plan that stopped backing up long ago shows every day overdue,
        // while a stretch that ended before the window's first OK backup is
        // settled history.
        let mut ok_times = self.ok_times_ms.clone();
        if ok_times.is_empty() {
            ok_times.extend(self.last_ok_before_window_ms);
        }
        ok_times.sort_unstable();

        let start = if self.reached_cutoff {
            w.cutoff
        } else {
            self.oldest_day.unwrap_or(w.today)
        };
        let mut buckets = Vec::new();
        let mut last_ok: Option<i64> = None;
        let mut next_ok = 0;
        let mut day = start;
        let mut midnight = local_midnight_ms(day, tz);
        while day <= w.today {
            let Some(next_day) = day.succ_opt() else {
                break;
            };
            let next_midnight = local_midnight_ms(next_day, tz);
            let mut bucket = DayStatusBucket {
                timestamp_ms: midnight,
                ..Default::default()
            };
            if let Some(acc) = self.days.get(&day) {
                bucket.bytes_added = acc.bytes_added;
                bucket.bytes_scanned = acc.bytes_scanned;
                bucket.status_counts = acc
                    .status_counts
                    .iter()
                    .map(|(status, count)| StatusAndCount {
                        count: *count,
                        status: *status,
                    })
                    .collect();
            }
            if allowed_ms > 0 {
                let checkpoint = next_midnight.min(w.now_ms);
                while next_ok < ok_times.len() && ok_times[next_ok] <= checkpoint {
                    last_ok = Some(ok_times[next_ok]);
                    next_ok += 1;
                }
                // Days before the first OK backup are not overdue: schedules
                // start counting from the first real run. A day with an OK
                // backup of its own is covered even if it then sat idle
                // longer than allowed.
                bucket.overdue =
                    last_ok.is_some_and(|t| t < midnight && checkpoint - t > allowed_ms);
            }
            buckets.push(bucket);
            day = next_day;
            midnight = next_midnight;
        }
        buckets
    }
}

/// The local calendar day of an instant.
fn local_date<Tz: TimeZone>(ms: i64, tz: &Tz) -> NaiveDate {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or_default()
        .with_timezone(tz)
        .date_naive()
}

/// The first instant of a local day: its midnight, or, where the clock jumps
/// over midnight, the moment of the jump; after a fall-back to before
/// midnight, the first of the two midnights.
pub fn local_midnight_ms<Tz: TimeZone>(day: NaiveDate, tz: &Tz) -> i64 {
    let wall = day.and_time(NaiveTime::MIN);
    match tz.from_local_datetime(&wall) {
        LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.timestamp_millis(),
        LocalResult::None => {
            // Midnight is skipped: read it with the offset in force the day
            // before; that instant is the jump.
            let before = wall.and_utc() - TimeDelta::days(1);
            let offset = tz.offset_from_utc_datetime(&before.naive_utc());
            let shift = chrono::Offset::fix(&offset).local_minus_utc();
            (wall.and_utc() - TimeDelta::seconds(i64::from(shift))).timestamp_millis()
        }
    }
}

/// How long a plan may go without an OK backup before days count as
/// overdue: its nominal period × 1.25, or 0 (never overdue) for a missing,
/// disabled or invalid schedule.
pub fn allowed_staleness_ms<Tz: TimeZone>(
    schedule: Option<&v1::Schedule>,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Result<i64, String> {
    Ok(nominal_period_ms(schedule, now, tz)?.map_or(0, |p| p.max(0) * 5 / 4))
}

/// The time between runs a schedule implies (`None`: it never runs). For
/// cron, the widest gap among consecutive fire times after `now`, so
/// `0 9 * * 1-5` allows the weekend's gap.
pub fn nominal_period_ms<Tz: TimeZone>(
    schedule: Option<&v1::Schedule>,
    now: DateTime<Utc>,
    tz: &Tz,
) -> Result<Option<i64>, String> {
    use v1::schedule::Schedule as Kind;
    let Some(schedule) = schedule else {
        return Ok(None);
    };
    const HOUR_MS: i64 = 3_600_000;
    match &schedule.schedule {
        None | Some(Kind::Disabled(_)) => Ok(None),
        Some(Kind::MaxFrequencyDays(n)) => Ok(Some(i64::from(*n) * 24 * HOUR_MS)),
        Some(Kind::MaxFrequencyHours(n)) => Ok(Some(i64::from(*n) * HOUR_MS)),
        Some(Kind::Cron(_)) => {
            // Without a last run, every clock counts from `now`: the result
            // is the pattern's own consecutive fire times.
            let next = |t| {
                next_run(schedule, None, t, tz)?
                    .ok_or_else(|| "the cron schedule never fires".to_string())
            };
            let mut t = next(now)?;
            let mut widest = 0;
            for _ in 0..CRON_PERIOD_SAMPLES {
                let n = next(t)?;
                if n <= t {
                    return Err("the cron schedule's fire times do not advance".into());
                }
                widest = widest.max((n - t).num_milliseconds());
                t = n;
            }
            Ok(Some(widest))
        }
    }
}

#[cfg(test)]
#[path = "dashboard_tests.rs"]
mod tests;
