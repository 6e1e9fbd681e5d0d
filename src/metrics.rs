//! Prometheus metrics at `GET /metrics` (behind the auth gate), in the text
//! exposition format 0.0.4, with Backrest's metric names (reference §11.2)
//! plus two of our own:
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `backrest_backup_bytes_processed` | gauge | repo_id, plan_id |
//! | `backrest_backup_bytes_added` | gauge | repo_id, plan_id |
//! | `backrest_backup_file_warnings` | gauge | repo_id, plan_id |
//! | `backrest_tasks_duration_secs` | gauge | repo_id, plan_id, task_type |
//! | `backrest_tasks_run_total` | counter | repo_id, plan_id, task_type, status |
//! | `backrest_last_task_status` | gauge | repo_id, plan_id, task_type, status |
//! | `backrest_backup_last_success_timestamp_seconds` | gauge | repo_id, plan_id |
//! | `backrest_operation_duration_seconds` | histogram | repo_id, plan_id, task_type |
//!
//! The last-success timestamp is the one to alert on ("no good backup for a
//! day"): the end time of the newest SUCCESS or WARNING backup that was not a
//! dry run. It is loaded from the operation log at start-up, so it survives
//! restarts; everything else counts from process start, as in Backrest.
//!
//! Metrics are fed by the operation log's events, not by the orchestrator: an
//! operation that was seen running and then reaches a final status is one
//! task run. Its duration is its end minus its start; SUCCESS and WARNING
//! count as `success`, ERROR and cancellations as `failed` (Backrest's
//! rule: a task "succeeds" when it returns no error, which partial backups
//! do). Operations cancelled before they started never ran and are not
//! counted. Tasks without an operation of their own (`index_snapshots`,
//! `collect_garbage`) are therefore not counted; index operations are
//! results, not runs. `backrest_backup_file_warnings` is the number of
//! per-file errors the backup operation recorded (the backup task keeps at
//! most about 20).

use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::response::IntoResponse;
use axum::routing::get;
use prost::Message;
use tokio::sync::broadcast::error::RecvError;

use crate::config::ConfigStore;
use crate::oplog::{OpEvent, OpLog, Query};
use crate::orchestrator::task::{SYSTEM_PLAN, UNASSOCIATED};
use crate::pb::v1::{self, OperationStatus, operation::Op};
use crate::sync_ext::LockExt;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds (seconds) of the operation duration histogram: a second to
/// six hours, roughly ×2–×3 apart.
pub const DURATION_BUCKETS: &[f64] = &[
    1.0, 5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 21600.0,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// A metric family's fixed description.
#[derive(Debug)]
pub struct Spec {
    pub name: &'static str,
    pub help: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
}

const REPO_PLAN: &[&str] = &["repo_id", "plan_id"];
const REPO_PLAN_TASK: &[&str] = &["repo_id", "plan_id", "task_type"];
const REPO_PLAN_TASK_STATUS: &[&str] = &["repo_id", "plan_id", "task_type", "status"];

pub const BACKUP_BYTES_PROCESSED: Spec = Spec {
    name: "backrest_backup_bytes_processed",
    help: "The total number of bytes processed during a backup",
    kind: Kind::Gauge,
    labels: REPO_PLAN,
};
pub const BACKUP_BYTES_ADDED: Spec = Spec {
    name: "backrest_backup_bytes_added",
    help: "The total number of bytes added during a backup",
    kind: Kind::Gauge,
    labels: REPO_PLAN,
};
pub const BACKUP_FILE_WARNINGS: Spec = Spec {
    name: "backrest_backup_file_warnings",
    help: "The total number of file warnings during a backup",
    kind: Kind::Gauge,
    labels: REPO_PLAN,
};
pub const TASKS_DURATION: Spec = Spec {
    name: "backrest_tasks_duration_secs",
    help: "The duration of a task in seconds",
    kind: Kind::Gauge,
    labels: REPO_PLAN_TASK,
};
pub const TASKS_RUN: Spec = Spec {
    name: "backrest_tasks_run_total",
    help: "The total number of tasks run",
    kind: Kind::Counter,
    labels: REPO_PLAN_TASK_STATUS,
};
pub const LAST_TASK_STATUS: Spec = Spec {
    name: "backrest_last_task_status",
    help: "The status of the last task",
    kind: Kind::Gauge,
    labels: REPO_PLAN_TASK_STATUS,
};
pub const BACKUP_LAST_SUCCESS: Spec = Spec {
    name: "backrest_backup_last_success_timestamp_seconds",
    help: "Unix time at which the last successful (or partial) backup that was not a dry run ended",
    kind: Kind::Gauge,
    labels: REPO_PLAN,
};
pub const OPERATION_DURATION: Spec = Spec {
    name: "backrest_operation_duration_seconds",
    help: "How long task runs took, from start to end",
    kind: Kind::Histogram,
    labels: REPO_PLAN_TASK,
};

#[derive(Clone, Debug, PartialEq)]
enum Value {
    Number(f64),
    Histogram(Histogram),
}

#[derive(Clone, Debug, PartialEq)]
struct Histogram {
    /// Observations per bucket (not cumulative); the last is `+Inf`.
    counts: Vec<u64>,
    sum: f64,
    count: u64,
}

impl Histogram {
    fn new() -> Histogram {
        Histogram {
            counts: vec![0; DURATION_BUCKETS.len() + 1],
            sum: 0.0,
            count: 0,
        }
    }

    fn observe(&mut self, v: f64) {
        let i = DURATION_BUCKETS
            .iter()
            .position(|le| v <= *le)
            .unwrap_or(DURATION_BUCKETS.len());
        self.counts[i] += 1;
        self.sum += v;
        self.count += 1;
    }
}

struct Family {
    spec: &'static Spec,
    /// By label values (in `spec.labels` order), so output is sorted.
    series: BTreeMap<Vec<String>, Value>,
}

/// A set of metric families and their text exposition.
#[derive(Default)]
pub struct Registry {
    families: BTreeMap<&'static str, Family>,
}

impl Registry {
    fn series(&mut self, spec: &'static Spec) -> &mut BTreeMap<Vec<String>, Value> {
        &mut self
            .families
            .entry(spec.name)
            .or_insert_with(|| Family {
                spec,
                series: BTreeMap::new(),
            })
            .series
    }

    fn check(spec: &Spec, labels: &[&str]) {
        debug_assert_eq!(spec.labels.len(), labels.len(), "labels of {}", spec.name);
    }

    pub fn set(&mut self, spec: &'static Spec, labels: &[&str], v: f64) {
        Self::check(spec, labels);
        self.series(spec).insert(owned(labels), Value::Number(v));
    }

    pub fn inc(&mut self, spec: &'static Spec, labels: &[&str]) {
        Self::check(spec, labels);
        let v = self
            .series(spec)
            .entry(owned(labels))
            .or_insert(Value::Number(0.0));
        if let Value::Number(n) = v {
            *n += 1.0;
        }
    }

    pub fn observe(&mut self, spec: &'static Spec, labels: &[&str], v: f64) {
        Self::check(spec, labels);
        let h = self
            .series(spec)
            .entry(owned(labels))
            .or_insert_with(|| Value::Histogram(Histogram::new()));
        if let Value::Histogram(h) = h {
            h.observe(v);
        }
    }

    /// Removes every series whose first labels equal `prefix`.
    pub fn remove_matching(&mut self, spec: &'static Spec, prefix: &[&str]) {
        self.series(spec)
            .retain(|values, _| !values.iter().zip(prefix).all(|(a, b)| a == b));
    }

    /// The text exposition: families sorted by name, each with `# HELP` and
    /// `# TYPE`, series sorted by label values. Families without series are
    /// left out.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for family in self.families.values().filter(|f| !f.series.is_empty()) {
            let spec = family.spec;
            out.push_str(&format!(
                "# HELP {} {}\n",
                spec.name,
                escape_help(spec.help)
            ));
            out.push_str(&format!("# TYPE {} {}\n", spec.name, spec.kind.as_str()));
            for (values, value) in &family.series {
                let labels: Vec<(&str, &str)> = spec
                    .labels
                    .iter()
                    .copied()
                    .zip(values.iter().map(String::as_str))
                    .collect();
                match value {
                    Value::Number(v) => sample(&mut out, spec.name, &labels, None, *v),
                    Value::Histogram(h) => {
                        let name = format!("{}_bucket", spec.name);
                        let mut cumulative = 0;
                        for (i, n) in h.counts.iter().enumerate() {
                            cumulative += n;
                            let le = DURATION_BUCKETS.get(i).copied().unwrap_or(f64::INFINITY);
                            let le = format_value(le);
                            sample(&mut out, &name, &labels, Some(&le), cumulative as f64);
                        }
                        sample(
                            &mut out,
                            &format!("{}_sum", spec.name),
                            &labels,
                            None,
                            h.sum,
                        );
                        let count = h.count as f64;
                        sample(
                            &mut out,
                            &format!("{}_count", spec.name),
                            &labels,
                            None,
                            count,
                        );
                    }
                }
            }
        }
        out
    }
}

fn owned(labels: &[&str]) -> Vec<String> {
    labels.iter().map(|s| s.to_string()).collect()
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], le: Option<&str>, v: f64) {
    out.push_str(name);
    let pairs = labels.iter().copied().chain(le.map(|le| ("le", le)));
    let rendered: Vec<String> = pairs
        .map(|(k, v)| format!("{k}=\"{}\"", escape_label(v)))
        .collect();
    if !rendered.is_empty() {
        out.push('{');
        out.push_str(&rendered.join(","));
        out.push('}');
    }
    out.push(' ');
    out.push_str(&format_value(v));
    out.push('\n');
}

/// Label values escape `\`, `"` and line feeds.
pub fn escape_label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

/// Help text escapes `\` and line feeds (quotes stay).
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

/// Go's spellings of the special values; otherwise the shortest decimal
/// that reads back as the same number.
pub fn format_value(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v == f64::INFINITY {
        "+Inf".into()
    } else if v == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        format!("{v}")
    }
}

/// Empty ids become `_unassociated_`, as in Backrest.
fn id_label(id: &str) -> &str {
    if id.is_empty() { UNASSOCIATED } else { id }
}

/// The server's metrics.
#[derive(Default)]
pub struct Metrics {
    registry: Mutex<Registry>,
}

impl Metrics {
    pub fn new() -> Metrics {
        Metrics::default()
    }

    /// One task run. `backrest_last_task_status` keeps only the newest
    /// status per (repo, plan, task type): 0 for success, 1 for failed.
    pub fn record_task_run(
        &self,
        repo_id: &str,
        plan_id: &str,
        task_type: &str,
        duration_secs: f64,
        success: bool,
    ) {
        let (repo, plan) = (id_label(repo_id), id_label(plan_id));
        let status = if success { "success" } else { "failed" };
        let mut r = self.registry.locked();
        r.remove_matching(&LAST_TASK_STATUS, &[repo, plan, task_type]);
        let code = if success { 0.0 } else { 1.0 };
        r.set(&LAST_TASK_STATUS, &[repo, plan, task_type, status], code);
        r.inc(&TASKS_RUN, &[repo, plan, task_type, status]);
        r.set(&TASKS_DURATION, &[repo, plan, task_type], duration_secs);
        r.observe(&OPERATION_DURATION, &[repo, plan, task_type], duration_secs);
    }

    /// What restic reported for a backup that was not a dry run.
    pub fn record_backup_summary(
        &self,
        repo_id: &str,
        plan_id: &str,
        bytes_processed: i64,
        bytes_added: i64,
        file_warnings: i64,
    ) {
        let labels = [id_label(repo_id), id_label(plan_id)];
        let mut r = self.registry.locked();
        r.set(&BACKUP_BYTES_PROCESSED, &labels, bytes_processed as f64);
        r.set(&BACKUP_BYTES_ADDED, &labels, bytes_added as f64);
        r.set(&BACKUP_FILE_WARNINGS, &labels, file_warnings as f64);
    }

    /// A backup that was not a dry run ended well at `end_ms`.
    pub fn record_backup_success(&self, repo_id: &str, plan_id: &str, end_ms: i64) {
        let labels = [id_label(repo_id), id_label(plan_id)];
        self.registry
            .locked()
            .set(&BACKUP_LAST_SUCCESS, &labels, end_ms as f64 / 1000.0);
    }

    pub fn render(&self) -> String {
        self.registry.locked().render()
    }

    /// Loads the last-success gauge from the log, subscribes to it, and
    /// feeds the metrics from its events for as long as it lives.
    pub async fn start(oplog: &OpLog, config: &ConfigStore) -> Arc<Metrics> {
        let metrics = Arc::new(Metrics::new());
        // Subscribe first: a change between the reads below and the
        // subscription would otherwise be lost.
        let mut events = oplog.subscribe();
        let mut tracker = Tracker::default();
        if let Err(e) = tracker.resync(oplog).await {
            tracing::warn!("metrics: cannot read running operations: {e}");
        }
        if let Err(e) = load_last_successes(&metrics, oplog, &config.get()).await {
            tracing::warn!("metrics: cannot read the last successful backups: {e}");
        }
        let feeding = metrics.clone();
        let oplog = oplog.clone();
        tokio::spawn(async move {
            loop {
                match events.recv().await {
                    Ok(event) => tracker.on_event(&event, &feeding),
                    Err(RecvError::Lagged(n)) => {
                        // The runs that ended in the missed events are lost;
                        // the ones still running are picked up again.
                        tracing::warn!("metrics: missed {n} operation log events");
                        if let Err(e) = tracker.resync(&oplog).await {
                            tracing::warn!("metrics: cannot read running operations: {e}");
                        }
                    }
                    Err(RecvError::Closed) => break,
                }
            }
        });
        metrics
    }
}

/// Which operations are running, to tell a run's end from other writes.
#[derive(Default)]
pub struct Tracker {
    running: HashSet<i64>,
}

impl Tracker {
    async fn resync(&mut self, oplog: &OpLog) -> Result<(), crate::oplog::OpLogError> {
        let running = oplog
            .query_by_status(&[OperationStatus::StatusInprogress])
            .await?;
        self.running = running.iter().map(|o| o.id).collect();
        Ok(())
    }

    pub fn on_event(&mut self, event: &OpEvent, metrics: &Metrics) {
        match event {
            OpEvent::Created(ops) | OpEvent::Updated(ops) => {
                for op in ops {
                    self.on_write(op, metrics);
                }
            }
            OpEvent::Deleted(ids) => {
                for id in ids {
                    self.running.remove(id);
                }
            }
        }
    }

    fn on_write(&mut self, op: &v1::Operation, metrics: &Metrics) {
        let status = OperationStatus::try_from(op.status).unwrap_or(OperationStatus::StatusUnknown);
        if status == OperationStatus::StatusInprogress {
            self.running.insert(op.id);
            return;
        }
        let success = match status {
            OperationStatus::StatusSuccess | OperationStatus::StatusWarning => true,
            OperationStatus::StatusError
            | OperationStatus::StatusUserCancelled
            | OperationStatus::StatusSystemCancelled => false,
            _ => return,
        };
        if !self.running.remove(&op.id) {
            return;
        }
        let Some(task_type) = task_type(op) else {
            return;
        };
        let duration_secs = (op.unix_time_end_ms - op.unix_time_start_ms).max(0) as f64 / 1000.0;
        metrics.record_task_run(&op.repo_id, &op.plan_id, task_type, duration_secs, success);
        if let Some(Op::OperationBackup(b)) = &op.op {
            if b.dry_run {
                return;
            }
            if let Some(summary) = backup_summary(b) {
                metrics.record_backup_summary(
                    &op.repo_id,
                    &op.plan_id,
                    summary.total_bytes_processed,
                    summary.data_added,
                    b.errors.len() as i64,
                );
            }
            if success {
                metrics.record_backup_success(&op.repo_id, &op.plan_id, op.unix_time_end_ms);
            }
        }
    }
}

fn backup_summary(b: &v1::OperationBackup) -> Option<&v1::BackupProgressSummary> {
    match b.last_status.as_ref()?.entry.as_ref()? {
        v1::backup_progress_entry::Entry::Summary(s) => Some(s),
        _ => None,
    }
}

/// Backrest's task type names (the orchestrator's `TaskKind::label`) for
/// the operation a task records. Forget operations come from three tasks:
/// the repo's own policy runs as the system plan, a single-snapshot forget
/// names its snapshot (or has no policy), a plan's retention has a policy.
pub fn task_type(op: &v1::Operation) -> Option<&'static str> {
    Some(match op.op.as_ref()? {
        Op::OperationBackup(_) => "backup",
        Op::OperationForget(f) => {
            if op.plan_id == SYSTEM_PLAN {
                "scheduled_forget"
            } else if !op.snapshot_id.is_empty() || f.policy.is_none() {
                "forget_snapshot"
            } else {
                "forget"
            }
        }
        Op::OperationPrune(_) => "prune",
        Op::OperationCheck(_) => "check",
        Op::OperationStats(_) => "stats",
        Op::OperationRestore(_) => "restore",
        Op::OperationRunCommand(_) => "run_command",
        Op::OperationRunHook(_) => "hook",
        Op::OperationIndexSnapshot(_) => return None,
    })
}

/// Sets the last-success gauge of every configured plan from its newest
/// successful backup in the log (read newest first, stopping there).
async fn load_last_successes(
    metrics: &Metrics,
    oplog: &OpLog,
    config: &v1::Config,
) -> Result<(), crate::oplog::OpLogError> {
    for plan in &config.plans {
        let q = Query::all()
            .instance_id(config.instance.clone())
            .original_instance_keyid("")
            .plan_id(plan.id.clone())
            .statuses([
                OperationStatus::StatusSuccess,
                OperationStatus::StatusWarning,
            ])
            .reversed();
        let mut newest: Option<v1::Operation> = None;
        oplog
            .scan_raw(&q, |_, blob| match v1::Operation::decode(blob) {
                Ok(op) if matches!(&op.op, Some(Op::OperationBackup(b)) if !b.dry_run) => {
                    newest = Some(op);
                    ControlFlow::Break(())
                }
                _ => ControlFlow::Continue(()),
            })
            .await?;
        if let Some(op) = newest {
            metrics.record_backup_success(&op.repo_id, &op.plan_id, op.unix_time_end_ms);
        }
    }
    Ok(())
}

/// `GET /metrics`. The auth gate in front of the router protects it.
pub fn routes(metrics: Arc<Metrics>) -> Router {
    Router::new()
        .route("/metrics", get(serve))
        .with_state(metrics)
}

async fn serve(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(http::header::CONTENT_TYPE, CONTENT_TYPE)],
        metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::task::TaskKind;

    fn op(id: i64, status: OperationStatus, kind: Op) -> v1::Operation {
        v1::Operation {
            id,
            repo_id: "r1".into(),
            plan_id: "p1".into(),
            status: status as i32,
            unix_time_start_ms: 1_700_000_000_000,
            unix_time_end_ms: 1_700_000_090_500,
            op: Some(kind),
            ..Default::default()
        }
    }

    fn backup_op(id: i64, status: OperationStatus, dry_run: bool) -> v1::Operation {
        op(
            id,
            status,
            Op::OperationBackup(v1::OperationBackup {
                last_status: Some(v1::BackupProgressEntry {
                    entry: Some(v1::backup_progress_entry::Entry::Summary(
                        v1::BackupProgressSummary {
                            total_bytes_processed: 5000,
                            data_added: 700,
                            ..Default::default()
                        },
                    )),
                }),
                errors: vec![Default::default(); 3],
                dry_run,
            }),
        )
    }

    fn lines(m: &Metrics) -> Vec<String> {
        m.render().lines().map(str::to_string).collect()
    }

    fn has(m: &Metrics, line: &str) -> bool {
        lines(m).iter().any(|l| l == line)
    }

    #[test]
    fn exposition_escapes_labels_and_help_and_sorts() {
        let mut r = Registry::default();
        static ODD: Spec = Spec {
            name: "odd_metric",
            help: "back\\slash and\nnewline \"quoted\"",
            kind: Kind::Gauge,
            labels: &["a", "b"],
        };
        r.set(&ODD, &["q\"uote", "back\\slash\nline"], 1.5);
        r.set(&ODD, &["a", "é ünïcode"], f64::NAN);
        r.set(&TASKS_DURATION, &["r", "p", "t"], f64::INFINITY);
        assert_eq!(
            r.render(),
            "# HELP backrest_tasks_duration_secs The duration of a task in seconds\n\
             # TYPE backrest_tasks_duration_secs gauge\n\
             backrest_tasks_duration_secs{repo_id=\"r\",plan_id=\"p\",task_type=\"t\"} +Inf\n\
             # HELP odd_metric back\\\\slash and\\nnewline \"quoted\"\n\
             # TYPE odd_metric gauge\n\
             odd_metric{a=\"a\",b=\"é ünïcode\"} NaN\n\
             odd_metric{a=\"q\\\"uote\",b=\"back\\\\slash\\nline\"} 1.5\n"
        );
    }

    #[test]
    fn values_are_printed_exactly() {
        assert_eq!(format_value(0.0), "0");
        assert_eq!(format_value(42.0), "42");
        assert_eq!(format_value(1_700_000_090.5), "1700000090.5");
        assert_eq!(format_value(1e21), "1000000000000000000000");
        assert_eq!(format_value(-0.25), "-0.25");
        assert_eq!(format_value(f64::NEG_INFINITY), "-Inf");
        assert_eq!(
            format_value(9_007_199_254_740_993_i64 as f64),
            "9007199254740992"
        );
    }

    #[test]
    fn histograms_are_cumulative_with_sum_and_count() {
        let mut r = Registry::default();
        for v in [0.5, 1.0, 1.0001, 59.0, 100_000.0] {
            r.observe(&OPERATION_DURATION, &["r", "p", "backup"], v);
        }
        let text = r.render();
        let l = "repo_id=\"r\",plan_id=\"p\",task_type=\"backup\"";
        let expect = [
            ("1", 2),
            ("5", 3),
            ("15", 3),
            ("30", 3),
            ("60", 4),
            ("120", 4),
            ("21600", 4),
            ("+Inf", 5),
        ];
        for (le, n) in expect {
            let line = format!("backrest_operation_duration_seconds_bucket{{{l},le=\"{le}\"}} {n}");
            assert!(text.lines().any(|x| x == line), "missing {line} in\n{text}");
        }
        assert_eq!(
            text.lines().filter(|x| x.contains("_bucket{")).count(),
            DURATION_BUCKETS.len() + 1
        );
        assert!(text.contains(&format!(
            "backrest_operation_duration_seconds_sum{{{l}}} {}\n",
            format_value(0.5 + 1.0 + 1.0001 + 59.0 + 100_000.0)
        )));
        assert!(text.contains(&format!(
            "backrest_operation_duration_seconds_count{{{l}}} 5\n"
        )));
        assert!(text.contains("# TYPE backrest_operation_duration_seconds histogram\n"));
        // Buckets ascend, so the parser sees them in order.
        let bounds: Vec<f64> = DURATION_BUCKETS.to_vec();
        assert!(bounds.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(*bounds.last().unwrap(), 6.0 * 3600.0);
    }

    #[test]
    fn empty_registry_renders_nothing() {
        assert_eq!(Metrics::new().render(), "");
    }

    #[test]
    fn last_task_status_keeps_only_the_newest_status() {
        let m = Metrics::new();
        m.record_task_run("r1", "p1", "backup", 2.0, true);
        m.record_task_run("r1", "p1", "prune", 3.0, true);
        m.record_task_run("r1", "p1", "backup", 4.0, false);
        let status: Vec<String> = lines(&m)
            .into_iter()
            .filter(|l| l.starts_with("backrest_last_task_status{"))
            .collect();
        assert_eq!(
            status,
            [
                "backrest_last_task_status{repo_id=\"r1\",plan_id=\"p1\",task_type=\"backup\",status=\"failed\"} 1",
                "backrest_last_task_status{repo_id=\"r1\",plan_id=\"p1\",task_type=\"prune\",status=\"success\"} 0",
            ]
        );
        assert!(has(
            &m,
            "backrest_tasks_run_total{repo_id=\"r1\",plan_id=\"p1\",task_type=\"backup\",status=\"success\"} 1"
        ));
        assert!(has(
            &m,
            "backrest_tasks_run_total{repo_id=\"r1\",plan_id=\"p1\",task_type=\"backup\",status=\"failed\"} 1"
        ));
        assert!(has(
            &m,
            "backrest_tasks_duration_secs{repo_id=\"r1\",plan_id=\"p1\",task_type=\"backup\"} 4"
        ));
        // Empty ids are "_unassociated_".
        m.record_task_run("", "", "hook", 1.0, true);
        assert!(has(
            &m,
            "backrest_tasks_run_total{repo_id=\"_unassociated_\",plan_id=\"_unassociated_\",task_type=\"hook\",status=\"success\"} 1"
        ));
    }

    #[test]
    fn a_run_counts_once_when_a_running_operation_ends() {
        let m = Metrics::new();
        let mut t = Tracker::default();
        let running = backup_op(7, OperationStatus::StatusInprogress, false);
        let done = backup_op(7, OperationStatus::StatusWarning, false);
        t.on_event(
            &OpEvent::Created(vec![backup_op(7, OperationStatus::StatusPending, false)]),
            &m,
        );
        t.on_event(&OpEvent::Updated(vec![running.clone()]), &m);
        t.on_event(&OpEvent::Updated(vec![running]), &m);
        assert_eq!(m.render(), "", "nothing until it ends");
        t.on_event(&OpEvent::Updated(vec![done.clone()]), &m);
        // A later rewrite of the finished operation is not another run.
        t.on_event(&OpEvent::Updated(vec![done]), &m);
        let labels = "repo_id=\"r1\",plan_id=\"p1\"";
        for line in [
            format!(
                "backrest_tasks_run_total{{{labels},task_type=\"backup\",status=\"success\"}} 1"
            ),
            format!("backrest_tasks_duration_secs{{{labels},task_type=\"backup\"}} 90.5"),
            format!("backrest_operation_duration_seconds_count{{{labels},task_type=\"backup\"}} 1"),
            format!("backrest_backup_bytes_processed{{{labels}}} 5000"),
            format!("backrest_backup_bytes_added{{{labels}}} 700"),
            format!("backrest_backup_file_warnings{{{labels}}} 3"),
            format!("backrest_backup_last_success_timestamp_seconds{{{labels}}} 1700000090.5"),
        ] {
            assert!(has(&m, &line), "missing {line} in\n{}", m.render());
        }
    }

    #[test]
    fn failures_dry_runs_and_unstarted_operations() {
        let m = Metrics::new();
        let mut t = Tracker::default();
        // Cancelled while queued: never ran.
        t.on_event(
            &OpEvent::Created(vec![backup_op(1, OperationStatus::StatusPending, false)]),
            &m,
        );
        t.on_event(
            &OpEvent::Updated(vec![backup_op(
                1,
                OperationStatus::StatusUserCancelled,
                false,
            )]),
            &m,
        );
        // Final at creation (an index operation, a record made elsewhere).
        t.on_event(
            &OpEvent::Created(vec![backup_op(2, OperationStatus::StatusSuccess, false)]),
            &m,
        );
        assert_eq!(m.render(), "");

        // A dry run: a task run, but no backup gauges.
        t.on_event(
            &OpEvent::Updated(vec![backup_op(3, OperationStatus::StatusInprogress, true)]),
            &m,
        );
        t.on_event(
            &OpEvent::Updated(vec![backup_op(3, OperationStatus::StatusSuccess, true)]),
            &m,
        );
        let text = m.render();
        assert!(text.contains("task_type=\"backup\",status=\"success\"} 1"));
        assert!(!text.contains("backrest_backup_"), "{text}");

        // A failed backup with a summary: gauges, but no success time.
        t.on_event(
            &OpEvent::Updated(vec![backup_op(4, OperationStatus::StatusInprogress, false)]),
            &m,
        );
        t.on_event(
            &OpEvent::Updated(vec![backup_op(4, OperationStatus::StatusError, false)]),
            &m,
        );
        let text = m.render();
        assert!(text.contains("status=\"failed\"} 1"));
        assert!(text.contains("backrest_backup_bytes_added{repo_id=\"r1\",plan_id=\"p1\"} 700"));
        assert!(!text.contains("backrest_backup_last_success"), "{text}");

        // Deleted while running: forgotten.
        t.on_event(
            &OpEvent::Updated(vec![backup_op(5, OperationStatus::StatusInprogress, false)]),
            &m,
        );
        t.on_event(&OpEvent::Deleted(vec![5]), &m);
        t.on_event(
            &OpEvent::Updated(vec![backup_op(5, OperationStatus::StatusSuccess, false)]),
            &m,
        );
        assert!(!m.render().contains("backrest_backup_last_success"));

        // A running index-snapshot operation is not a task.
        let idx = |s| op(6, s, Op::OperationIndexSnapshot(Default::default()));
        t.on_event(
            &OpEvent::Updated(vec![idx(OperationStatus::StatusInprogress)]),
            &m,
        );
        t.on_event(
            &OpEvent::Updated(vec![idx(OperationStatus::StatusSuccess)]),
            &m,
        );
        assert!(!m.render().contains("index"));
    }

    #[test]
    fn task_types_match_the_orchestrators_labels() {
        let plan = || "p".to_string();
        let cases = [
            (
                Op::OperationBackup(Default::default()),
                "p1",
                "",
                TaskKind::Backup {
                    plan_id: plan(),
                    dry_run: false,
                },
            ),
            (
                Op::OperationForget(v1::OperationForget {
                    forget: vec![],
                    policy: Some(Default::default()),
                }),
                "p1",
                "",
                TaskKind::Forget { plan_id: plan() },
            ),
            (
                Op::OperationForget(v1::OperationForget {
                    forget: vec![],
                    policy: Some(Default::default()),
                }),
                SYSTEM_PLAN,
                "",
                TaskKind::RepoForget,
            ),
            (
                Op::OperationForget(Default::default()),
                "p1",
                "abcd",
                TaskKind::ForgetSnapshot {
                    plan_id: plan(),
                    snapshot_id: "abcd".into(),
                },
            ),
            (
                Op::OperationPrune(Default::default()),
                SYSTEM_PLAN,
                "",
                TaskKind::Prune,
            ),
            (
                Op::OperationCheck(Default::default()),
                SYSTEM_PLAN,
                "",
                TaskKind::Check,
            ),
            (
                Op::OperationStats(Default::default()),
                SYSTEM_PLAN,
                "",
                TaskKind::Stats,
            ),
            (
                Op::OperationRestore(Default::default()),
                "p1",
                "",
                TaskKind::Restore {
                    plan_id: plan(),
                    snapshot_id: String::new(),
                    path: String::new(),
                    target: String::new(),
                },
            ),
            (
                Op::OperationRunCommand(Default::default()),
                SYSTEM_PLAN,
                "",
                TaskKind::RunCommand {
                    command: String::new(),
                },
            ),
        ];
        for (kind, plan_id, snapshot_id, task) in cases {
            let o = v1::Operation {
                plan_id: plan_id.into(),
                snapshot_id: snapshot_id.into(),
                op: Some(kind),
                ..Default::default()
            };
            assert_eq!(task_type(&o), Some(task.label()), "{o:?}");
        }
        let hook = op(
            1,
            OperationStatus::StatusSuccess,
            Op::OperationRunHook(Default::default()),
        );
        assert_eq!(task_type(&hook), Some("hook"));
        assert_eq!(task_type(&v1::Operation::default()), None);
    }

    #[tokio::test]
    async fn start_up_loads_the_newest_successful_backup_per_plan() {
        let dir = tempfile::tempdir().unwrap();
        let oplog = OpLog::open(&dir.path().join("oplog.sqlite")).await.unwrap();
        let base = |id_offset: i64, status, dry_run, end: i64| {
            let mut o = backup_op(0, status, dry_run);
            o.id = 0;
            o.instance_id = "me".into();
            o.repo_guid = "g".into();
            o.unix_time_start_ms = 1_000_000 + id_offset;
            o.unix_time_end_ms = end;
            o
        };
        let mut elsewhere = base(50, OperationStatus::StatusSuccess, false, 9_000_000);
        elsewhere.instance_id = "other".into();
        let mut idx = base(60, OperationStatus::StatusSuccess, false, 9_500_000);
        idx.op = Some(Op::OperationIndexSnapshot(Default::default()));
        oplog
            .add(vec![
                base(10, OperationStatus::StatusSuccess, false, 2_000_000),
                base(20, OperationStatus::StatusWarning, false, 3_000_500),
                base(30, OperationStatus::StatusSuccess, true, 4_000_000),
                base(40, OperationStatus::StatusError, false, 5_000_000),
                elsewhere,
                idx,
            ])
            .await
            .unwrap();
        let cfg_dir = tempfile::tempdir().unwrap();
        let path = cfg_dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"version": 6, "instance": "me", "repos": [{"id": "r1", "uri": "/x", "password": "x", "guid": "1111111111111111111111111111111111111111111111111111111111111111"}], "plans": [{"id": "p1", "repo": "r1", "paths": ["/src"]}, {"id": "p2", "repo": "r1", "paths": ["/src"]}]}"#,
        )
        .unwrap();
        let config = ConfigStore::open(&path).unwrap();
        let m = Metrics::start(&oplog, &config).await;
        let text = m.render();
        assert!(
            text.contains(
                "backrest_backup_last_success_timestamp_seconds{repo_id=\"r1\",plan_id=\"p1\"} 3000.5\n"
            ),
            "{text}"
        );
        assert_eq!(
            text.matches("backrest_backup_last_success_timestamp_seconds{")
                .count(),
            1
        );

        // And it follows the log from then on.
        let mut running = base(70, OperationStatus::StatusInprogress, false, 0);
        running = oplog.add(vec![running]).await.unwrap().remove(0);
        running.status = OperationStatus::StatusSuccess as i32;
        running.unix_time_end_ms = 8_000_000;
        oplog.update(vec![running]).await.unwrap();
        for _ in 0..200 {
            if m.render().contains("plan_id=\"p1\"} 8000\n") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        assert!(m.render().contains(
            "backrest_backup_last_success_timestamp_seconds{repo_id=\"r1\",plan_id=\"p1\"} 8000\n"
        ));
        oplog.close().await;
    }
}
