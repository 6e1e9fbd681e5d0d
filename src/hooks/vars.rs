//! The variables hook templates see (Backrest's `HookVars`, reference
//! §10.5) and [`render`], the one entry point the hook engine calls.
//!
//! Templates reach the data with Go names: `.Task`, `.Event` (prints as
//! `CONDITION_…`), `.Repo.Id`, `.Plan.Paths`, `.SnapshotStats.DataAdded`,
//! `.CurTime.Unix`, and call Backrest's helpers: `.Summary`, `.EventName`,
//! `.FormatTime`, `.FormatDuration`, `.FormatSizeBytes`, `.IsError`,
//! `.ShellEscape`, `.JsonMarshal`.

mod json;
mod proto;
mod summary;

#[cfg(test)]
mod tests;

use std::sync::{Arc, LazyLock};

use chrono::{DateTime, FixedOffset};

use crate::hooks::template::gotime::{RFC3339, duration_string, duration_truncate, format_layout};
use crate::hooks::template::{
    EnumType, FieldDef, FloatKind, IntKind, JsonName, Method, MethodResult, ObjectType, Param,
    Template, TemplateError, Value,
};
use crate::pb::v1;

/// What a hook's templates are rendered against.
#[derive(Clone, Debug)]
pub struct HookVars {
    /// Name of the task that triggered the hook.
    pub task: String,
    /// The condition the hook fired for.
    pub event: v1::hook::Condition,
    pub repo: Option<v1::Repo>,
    pub plan: Option<v1::Plan>,
    /// Backup end only.
    pub snapshot_id: String,
    /// Backup end only.
    pub snapshot_stats: Option<SnapshotStats>,
    /// Now, in the server's local zone.
    pub cur_time: DateTime<FixedOffset>,
    /// Time since the parent operation started.
    pub duration: std::time::Duration,
    /// The error on error paths, else empty.
    pub error: String,
}

/// restic's backup summary as Backrest hands it to templates (restic's
/// `BackupProgressEntry`, all of its fields; only the summary ones are set).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SnapshotStats {
    pub message_type: String,
    pub error: Option<serde_json::Value>,
    pub during: String,
    pub item: String,
    pub files_new: i64,
    pub files_changed: i64,
    pub files_unmodified: i64,
    pub dirs_new: i64,
    pub dirs_changed: i64,
    pub dirs_unmodified: i64,
    pub data_blobs: i64,
    pub tree_blobs: i64,
    pub data_added: i64,
    pub total_files_processed: i64,
    pub total_bytes_processed: i64,
    /// Seconds.
    pub total_duration: f64,
    pub snapshot_id: String,
    pub percent_done: f64,
    pub total_files: i64,
    pub files_done: i64,
    pub total_bytes: i64,
    pub bytes_done: i64,
    pub current_files: Vec<String>,
    pub action: String,
    pub exit_error: String,
    pub message: String,
}

impl SnapshotStats {
    /// The stats of a finished backup (restic's `summary` message).
    pub fn from_summary(s: &v1::BackupProgressSummary) -> Self {
        SnapshotStats {
            message_type: "summary".to_string(),
            files_new: s.files_new,
            files_changed: s.files_changed,
            files_unmodified: s.files_unmodified,
            dirs_new: s.dirs_new,
            dirs_changed: s.dirs_changed,
            dirs_unmodified: s.dirs_unmodified,
            data_blobs: s.data_blobs,
            tree_blobs: s.tree_blobs,
            data_added: s.data_added,
            total_files_processed: s.total_files_processed,
            total_bytes_processed: s.total_bytes_processed,
            total_duration: s.total_duration,
            snapshot_id: s.snapshot_id.clone(),
            ..SnapshotStats::default()
        }
    }
}

/// The name Backrest gives hook templates (it appears in error messages).
const TEMPLATE_NAME: &str = "template";

/// Renders a hook text (command script, notification body or title) with
/// the hook's variables, exactly as Backrest renders it. Errors read as
/// Backrest's do: `parse template: template: template:1: …` or
/// `execute template: template: template:1:3: executing …` (Backrest's
/// hooks then report them as `template rendering: <error>`).
pub fn render(template: &str, vars: &HookVars) -> Result<String, TemplateError> {
    Template::parse(TEMPLATE_NAME, template)
        .map_err(|e| e.prefixed("parse template: "))?
        .execute(&vars.to_value())
        .map_err(|e| e.prefixed("execute template: "))
}

impl HookVars {
    /// The Go value templates see: a `tasks.HookVars` struct with
    /// Backrest's fields and helper methods.
    pub fn to_value(&self) -> Value {
        let repo = match &self.repo {
            Some(r) => proto::from_message(".v1.Repo", r),
            None => Value::NilPtr(proto::object_type(".v1.Repo")),
        };
        let plan = match &self.plan {
            Some(p) => proto::from_message(".v1.Plan", p),
            None => Value::NilPtr(proto::object_type(".v1.Plan")),
        };
        let stats = match &self.snapshot_stats {
            Some(s) => s.to_value(),
            None => Value::NilPtr(STATS_TYPE.clone()),
        };
        let duration = i64::try_from(self.duration.as_nanos()).unwrap_or(i64::MAX);
        Value::object(
            HOOK_VARS_TYPE.clone(),
            vec![
                Value::string(self.task.as_str()),
                condition(self.event as i32 as i64),
                repo,
                plan,
                Value::string(self.snapshot_id.as_str()),
                stats,
                Value::Time(self.cur_time),
                Value::Duration(duration),
                Value::string(self.error.as_str()),
            ],
        )
    }
}

impl SnapshotStats {
    fn to_value(&self) -> Value {
        let int = |n: i64| Value::Int(n, IntKind::Int64);
        let float = |f: f64| Value::Float(f, FloatKind::F64);
        Value::object(
            STATS_TYPE.clone(),
            vec![
                Value::string(self.message_type.as_str()),
                self.error
                    .as_ref()
                    .map(Value::from_json)
                    .unwrap_or(Value::Nil),
                Value::string(self.during.as_str()),
                Value::string(self.item.as_str()),
                int(self.files_new),
                int(self.files_changed),
                int(self.files_unmodified),
                int(self.dirs_new),
                int(self.dirs_changed),
                int(self.dirs_unmodified),
                int(self.data_blobs),
                int(self.tree_blobs),
                int(self.data_added),
                int(self.total_files_processed),
                int(self.total_bytes_processed),
                float(self.total_duration),
                Value::string(self.snapshot_id.as_str()),
                float(self.percent_done),
                int(self.total_files),
                int(self.files_done),
                int(self.total_bytes),
                int(self.bytes_done),
                Value::string_list(&self.current_files),
                Value::string(self.action.as_str()),
                Value::string(self.exit_error.as_str()),
                Value::string(self.message.as_str()),
            ],
        )
    }
}

/// restic's `BackupProgressEntry`: Go field names and json tags.
static STATS_TYPE: LazyLock<Arc<ObjectType>> = LazyLock::new(|| {
    let fields = [
        ("MessageType", "message_type"),
        ("Error", "error"),
        ("During", "during"),
        ("Item", "item"),
        ("FilesNew", "files_new"),
        ("FilesChanged", "files_changed"),
        ("FilesUnmodified", "files_unmodified"),
        ("DirsNew", "dirs_new"),
        ("DirsChanged", "dirs_changed"),
        ("DirsUnmodified", "dirs_unmodified"),
        ("DataBlobs", "data_blobs"),
        ("TreeBlobs", "tree_blobs"),
        ("DataAdded", "data_added"),
        ("TotalFilesProcessed", "total_files_processed"),
        ("TotalBytesProcessed", "total_bytes_processed"),
        ("TotalDuration", "total_duration"),
        ("SnapshotId", "snapshot_id"),
        ("PercentDone", "percent_done"),
        ("TotalFiles", "total_files"),
        ("FilesDone", "files_done"),
        ("TotalBytes", "total_bytes"),
        ("BytesDone", "bytes_done"),
        ("CurrentFiles", "current_files"),
        ("Action", "action"),
        ("ExitError", "exit_error"),
        ("Message", "message"),
    ];
    Arc::new(ObjectType {
        name: "*restic.BackupProgressEntry".to_string(),
        pointer: true,
        fields: fields
            .iter()
            .map(|(go, json)| FieldDef {
                name: go.to_string(),
                json: JsonName::Tag {
                    name: json.to_string(),
                    omitempty: false,
                },
            })
            .collect(),
        methods: vec![],
        stringer: None,
    })
});

static CONDITION: LazyLock<Arc<EnumType>> =
    LazyLock::new(|| proto::enum_type(".v1.Hook.Condition"));

fn condition(n: i64) -> Value {
    Value::Enum(n, CONDITION.clone())
}

fn method(
    params: Vec<Param>,
    f: impl Fn(&Value, &[Value]) -> MethodResult + Send + Sync + 'static,
) -> Method {
    Method {
        params,
        variadic: None,
        func: Arc::new(f),
    }
}

fn field<'a>(recv: &'a Value, name: &str) -> Option<&'a Value> {
    match recv {
        Value::Object(o) => o.ty.field_index(name).and_then(|i| o.fields.get(i)),
        _ => None,
    }
}

/// Backrest's `HookVars` struct type with its methods.
static HOOK_VARS_TYPE: LazyLock<Arc<ObjectType>> = LazyLock::new(|| {
    let names = [
        "Task",
        "Event",
        "Repo",
        "Plan",
        "SnapshotId",
        "SnapshotStats",
        "CurTime",
        "Duration",
        "Error",
    ];
    let cond = || Param::Enum(CONDITION.clone());
    let methods = vec![
        (
            "EventName".to_string(),
            method(vec![cond()], |_, a| {
                Ok(Value::string(event_name(a[0].as_i64().unwrap_or(0))))
            }),
        ),
        (
            "FormatTime".to_string(),
            method(vec![Param::Time], |_, a| match &a[0] {
                Value::Time(t) => Ok(Value::string(format_layout(t, RFC3339))),
                _ => Ok(Value::string("")),
            }),
        ),
        (
            "FormatDuration".to_string(),
            method(vec![Param::Duration], |_, a| {
                let d = a[0].as_i64().unwrap_or(0);
                Ok(Value::string(duration_string(duration_truncate(
                    d, 1_000_000,
                ))))
            }),
        ),
        (
            "FormatSizeBytes".to_string(),
            method(vec![Param::Any], |_, a| {
                format_size_bytes(&a[0]).map(Value::string)
            }),
        ),
        (
            "IsError".to_string(),
            method(vec![cond()], |_, a| {
                Ok(Value::Bool(is_error(a[0].as_i64().unwrap_or(0))))
            }),
        ),
        (
            "ShellEscape".to_string(),
            method(vec![Param::String], |_, a| {
                Ok(Value::string(shell_escape(a[0].as_str().unwrap_or(""))))
            }),
        ),
        (
            "JsonMarshal".to_string(),
            method(vec![Param::Any], |_, a| {
                Ok(Value::string(json::marshal(&a[0]).unwrap_or_default()))
            }),
        ),
        (
            "Summary".to_string(),
            method(vec![], |recv, _| summary(recv)),
        ),
    ];
    Arc::new(ObjectType {
        name: "tasks.HookVars".to_string(),
        pointer: false,
        fields: names
            .iter()
            .map(|n| FieldDef {
                name: n.to_string(),
                json: JsonName::GoName,
            })
            .collect(),
        methods,
        stringer: None,
    })
});

/// `.EventName`: a condition's human label.
pub fn event_name(condition: i64) -> &'static str {
    use v1::hook::Condition as C;
    let Ok(c) = C::try_from(condition as i32) else {
        return "unknown";
    };
    match c {
        C::SnapshotStart => "snapshot start",
        C::SnapshotEnd => "snapshot end",
        C::AnyError => "error",
        C::SnapshotError => "snapshot error",
        C::SnapshotWarning => "snapshot warning",
        C::SnapshotSuccess => "snapshot success",
        C::SnapshotSkipped => "snapshot skipped",
        C::CheckStart => "check start",
        C::CheckError => "check error",
        C::CheckSuccess => "check success",
        C::PruneStart => "prune start",
        C::PruneError => "prune error",
        C::PruneSuccess => "prune success",
        C::ForgetStart => "forget start",
        C::ForgetError => "forget error",
        C::ForgetSuccess => "forget success",
        C::Unknown => "unknown",
    }
}

/// `.IsError`: only the two plain error conditions count.
pub fn is_error(condition: i64) -> bool {
    use v1::hook::Condition as C;
    condition == C::AnyError as i64 || condition == C::SnapshotError as i64
}

/// `.FormatSizeBytes`: decimal units with three decimals. Only Go's int,
/// int32 and int64 are sizes; anything else formats as zero. Like Backrest,
/// sizes past the petabyte range fail.
pub fn format_size_bytes(v: &Value) -> Result<String, String> {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    let n = match v {
        Value::Int(n, IntKind::Int | IntKind::Int32 | IntKind::Int64) => *n,
        _ => 0,
    };
    let mut size = n as f64;
    let mut i = 0;
    while size > 1000.0 {
        size /= 1000.0;
        i += 1;
    }
    match UNITS.get(i) {
        Some(unit) => Ok(format!(
            "{} {unit}",
            crate::hooks::template::fmt::format_float(size, 'f', 3, 64)
        )),
        None => Err(format!(
            "runtime error: index out of range [{i}] with length {}",
            UNITS.len()
        )),
    }
}

/// `.ShellEscape`: POSIX single-quoting, leaving safe words as they are.
pub fn shell_escape(s: &str) -> String {
    if s.is_empty() {
        return "''".to_string();
    }
    let safe = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_@%+=:,./-".contains(&b));
    if safe {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\"'\"'"))
}

/// `.Summary`: the built-in text for the event, rendered with the same
/// variables (named `t`, as Backrest names it).
fn summary(recv: &Value) -> MethodResult {
    use v1::hook::Condition as C;
    let event = field(recv, "Event").and_then(Value::as_i64).unwrap_or(0);
    let text = match C::try_from(event as i32) {
        Ok(C::SnapshotStart) => summary::SNAPSHOT_START,
        Ok(C::SnapshotEnd | C::SnapshotWarning | C::SnapshotSuccess) => summary::SNAPSHOT_END,
        _ => summary::GENERIC,
    };
    // Go's Summary returns the bare text/template error.
    Template::parse("t", text)
        .and_then(|t| t.execute(recv))
        .map(Value::string)
        .map_err(|e| e.to_string())
}
