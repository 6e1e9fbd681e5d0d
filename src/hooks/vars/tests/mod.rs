//! Tests of the hook variables: a table of Go-verified renders
//! (`go_table.rs`) against fixtures that mirror the Go side's, plus edge
//! cases of each helper.

mod go_table;

use chrono::{DateTime, FixedOffset, TimeZone};

use super::{HookVars, SnapshotStats, format_size_bytes, render, shell_escape};
use crate::hooks::template::tests::{Want, check_cases};
use crate::hooks::template::{ErrorKind, IntKind, Value};
use crate::pb::v1;
use crate::pb::v1::hook::Condition;

pub struct Case {
    pub name: &'static str,
    pub tmpl: &'static str,
    pub data: &'static str,
    pub want: Want,
}

#[allow(clippy::too_many_arguments)]
fn at(
    y: i32,
    mo: u32,
    d: u32,
    h: u32,
    mi: u32,
    s: u32,
    millis: u32,
    offset: i32,
) -> DateTime<FixedOffset> {
    FixedOffset::east_opt(offset)
        .unwrap()
        .with_ymd_and_hms(y, mo, d, h, mi, s)
        .unwrap()
        + chrono::Duration::milliseconds(millis as i64)
}

fn schedule(s: v1::schedule::Schedule, clock: v1::schedule::Clock) -> v1::Schedule {
    v1::Schedule {
        schedule: Some(s),
        clock: clock as i32,
    }
}

fn repo() -> v1::Repo {
    v1::Repo {
        id: "local-repo".into(),
        uri: "/mnt/backups/restic".into(),
        guid: "0f3c9a7e5b21".into(),
        password: "hunter2".into(),
        env: vec!["RESTIC_COMPRESSION=max".into()],
        flags: vec!["--no-lock".into()],
        prune_policy: Some(v1::PrunePolicy {
            max_unused_percent: 25.0,
            schedule: Some(schedule(
                v1::schedule::Schedule::Cron("0 0 * * 0".into()),
                v1::schedule::Clock::LastRunTime,
            )),
            ..Default::default()
        }),
        auto_unlock: true,
        ..Default::default()
    }
}

fn plan() -> v1::Plan {
    v1::Plan {
        id: "daily-docs".into(),
        repo: "local-repo".into(),
        paths: vec!["/home/alice/Documents".into(), "/etc".into()],
        excludes: vec!["*.tmp".into()],
        schedule: Some(schedule(
            v1::schedule::Schedule::MaxFrequencyDays(1),
            v1::schedule::Clock::Default,
        )),
        retention: Some(v1::RetentionPolicy {
            policy: Some(v1::retention_policy::Policy::PolicyTimeBucketed(
                v1::retention_policy::TimeBucketedCounts {
                    daily: 7,
                    weekly: 4,
                    ..Default::default()
                },
            )),
        }),
        hooks: vec![v1::Hook {
            conditions: vec![Condition::SnapshotEnd as i32],
            action: Some(v1::hook::Action::ActionCommand(v1::hook::Command {
                command: "echo hi".into(),
            })),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn stats() -> SnapshotStats {
    SnapshotStats::from_summary(&v1::BackupProgressSummary {
        files_new: 12,
        files_changed: 3,
        files_unmodified: 1045,
        dirs_new: 2,
        dirs_changed: 5,
        dirs_unmodified: 201,
        data_blobs: 17,
        tree_blobs: 8,
        data_added: 1048576,
        total_files_processed: 1060,
        total_bytes_processed: 5368709120,
        total_duration: 12.3456789,
        snapshot_id: "4f1c2d3e5a6b7c8d".into(),
    })
}

/// The hook fixtures of the Go side, by name.
pub fn hook(name: &str) -> HookVars {
    let mut v = HookVars {
        task: "backup for plan \"daily-docs\"".into(),
        event: Condition::Unknown,
        repo: Some(repo()),
        plan: Some(plan()),
        snapshot_id: String::new(),
        snapshot_stats: None,
        cur_time: at(2026, 7, 13, 11, 37, 12, 0, 19800),
        duration: std::time::Duration::from_micros(83_456_789),
        error: String::new(),
    };
    match name {
        "h_start" => {
            v.event = Condition::SnapshotStart;
            v.duration = std::time::Duration::ZERO;
        }
        "h_end" | "h_warning" => {
            v.event = if name == "h_end" {
                Condition::SnapshotEnd
            } else {
                Condition::SnapshotWarning
            };
            v.snapshot_id = "4f1c2d3e5a6b7c8d".into();
            v.snapshot_stats = Some(stats());
        }
        "h_end_err" => {
            v.event = Condition::SnapshotEnd;
            v.error = "exit status 3: some files could not be read".into();
        }
        "h_success_nostats" => v.event = Condition::SnapshotSuccess,
        "h_err" => {
            v.event = Condition::AnyError;
            v.task = "prune for repo \"local-repo\"".into();
            v.error = "restic: repository is locked".into();
        }
        "h_snap_err" => {
            v.event = Condition::SnapshotError;
            v.error = "it's <broken> & \"bad\"\n\tsecond line".into();
        }
        "h_notify" => {
            v.event = Condition::PruneSuccess;
            v.task = "prune for repo \"local-repo\"".into();
        }
        "h_utc" => {
            v.event = Condition::CheckStart;
            v.cur_time = at(2026, 1, 2, 3, 4, 5, 600, 0);
        }
        "h_nils" => {
            v.event = Condition::AnyError;
            v.repo = None;
            v.plan = None;
            v.error = "boom".into();
        }
        "h_system" => {
            v.event = Condition::ForgetStart;
            v.plan = Some(v1::Plan {
                id: "_system_".into(),
                ..Default::default()
            });
        }
        "h_unknown" => {}
        other => panic!("no hook fixture {other}"),
    }
    v
}

#[test]
fn go_verified_table() {
    // The one fixture whose event has no enum member: Go's `Hook_Condition(999)`.
    let unknown = |name: &str| {
        let vars = hook(name);
        if name == "h_unknown" {
            let mut value = vars.to_value();
            if let Value::Object(o) = &mut value {
                let o = std::sync::Arc::get_mut(o).expect("fresh value");
                o.fields[1] = super::condition(999);
            }
            return value;
        }
        vars.to_value()
    };
    check_cases(go_table::CASES.iter().map(|c| {
        let got = crate::hooks::template::render("template", c.tmpl, &unknown(c.data))
            .map_err(|e| e.to_string());
        (c.name, got, &c.want)
    }));
}

#[test]
fn render_is_the_hook_entry_point() {
    let vars = hook("h_end");
    assert_eq!(
        render("{{ .Repo.Id }}/{{ .Event }}", &vars).unwrap(),
        "local-repo/CONDITION_SNAPSHOT_END"
    );
    // Errors read as Backrest's RenderTemplate errors.
    let err = render("{{ .Nope }}", &vars).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Execute);
    assert_eq!(
        err.to_string(),
        "execute template: template: template:1:3: executing \"template\" at <.Nope>: can't evaluate field Nope in type tasks.HookVars"
    );
    let err = render("{{ if }}", &vars).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Parse);
    assert_eq!(
        err.to_string(),
        "parse template: template: template:1: missing value for if"
    );
}

#[test]
fn summary_errors_come_from_the_summary_template() {
    let err = render("{{ .Summary }}", &hook("h_nils"))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("execute template: template: template:1:3: executing \"template\" at <.Summary>: error calling Summary: template: t:"), "{err}");
    assert!(err.ends_with("nil pointer evaluating *v1.Repo.Id"), "{err}");
}

#[test]
fn format_size_bytes_edges() {
    let int = |n| Value::Int(n, IntKind::Int);
    assert_eq!(format_size_bytes(&int(0)).unwrap(), "0.000 B");
    assert_eq!(format_size_bytes(&int(1000)).unwrap(), "1000.000 B");
    assert_eq!(format_size_bytes(&int(1001)).unwrap(), "1.001 KB");
    assert_eq!(
        format_size_bytes(&Value::Int(1_048_576, IntKind::Int32)).unwrap(),
        "1.049 MB"
    );
    assert_eq!(
        format_size_bytes(&Value::Int(1_000_000_000_000_000_000, IntKind::Int64)).unwrap(),
        "1000.000 PB"
    );
    assert!(format_size_bytes(&Value::Int(1_000_000_000_001_000_000, IntKind::Int64)).is_err());
    assert_eq!(
        format_size_bytes(&Value::Uint(5000, crate::hooks::template::UintKind::Uint64)).unwrap(),
        "0.000 B"
    );
    assert_eq!(
        format_size_bytes(&Value::string("5000")).unwrap(),
        "0.000 B"
    );
}

#[test]
fn shell_escape_edges() {
    assert_eq!(shell_escape(""), "''");
    assert_eq!(
        shell_escape("a-b_c.d/e:f,g@h%i+j=k"),
        "a-b_c.d/e:f,g@h%i+j=k"
    );
    assert_eq!(shell_escape("it's"), "'it'\"'\"'s'");
    assert_eq!(shell_escape("a b"), "'a b'");
    assert_eq!(shell_escape("ünï"), "'ünï'");
    assert_eq!(shell_escape("$(rm -rf /)"), "'$(rm -rf /)'");
    assert_eq!(shell_escape("''"), "''\"'\"''\"'\"''");
}

#[test]
fn event_names_cover_every_condition() {
    for n in [
        1, 2, 3, 4, 5, 6, 7, 100, 101, 102, 200, 201, 202, 300, 301, 302,
    ] {
        assert_ne!(super::event_name(n), "unknown", "condition {n}");
    }
    assert_eq!(super::event_name(0), "unknown");
    assert_eq!(super::event_name(-1), "unknown");
    assert!(super::is_error(1) && super::is_error(4));
    assert!(!super::is_error(3) && !super::is_error(101) && !super::is_error(0));
}

#[test]
fn json_marshal_edges() {
    let v = hook("h_end");
    let render = |t: &str| render(t, &v).unwrap();
    // NaN has no JSON form: Go's Marshal fails and the helper gives "".
    let mut nan = v.clone();
    nan.snapshot_stats.as_mut().unwrap().total_duration = f64::NAN;
    assert_eq!(
        super::render("[{{ .JsonMarshal .SnapshotStats }}]", &nan).unwrap(),
        "[]"
    );
    // Go's float formatting switches to exponents at 1e21 and below 1e-6.
    let mut big = v.clone();
    big.snapshot_stats.as_mut().unwrap().total_duration = 1e21;
    assert!(
        super::render("{{ .JsonMarshal .SnapshotStats }}", &big)
            .unwrap()
            .contains("\"total_duration\":1e+21")
    );
    big.snapshot_stats.as_mut().unwrap().total_duration = 0.000_000_5;
    assert!(
        super::render("{{ .JsonMarshal .SnapshotStats }}", &big)
            .unwrap()
            .contains("\"total_duration\":5e-7")
    );
    // Errors restic reports as JSON objects come back as JSON.
    let mut with_error = v.clone();
    with_error.snapshot_stats.as_mut().unwrap().error =
        Some(serde_json::json!({"message": "boom", "code": 2}));
    assert!(
        super::render("{{ .JsonMarshal .SnapshotStats }}", &with_error)
            .unwrap()
            .contains("\"error\":{\"code\":2,\"message\":\"boom\"}")
    );
    assert_eq!(render("{{ .JsonMarshal .Repo.Flags }}"), "[\"--no-lock\"]");
    assert_eq!(render("{{ .JsonMarshal .Repo.CheckPolicy }}"), "null");
    assert_eq!(
        render("{{ .JsonMarshal \"<&>\" }}"),
        "\"\\u003c\\u0026\\u003e\""
    );
}

#[test]
fn proto_enum_methods() {
    let v = hook("h_end");
    assert_eq!(
        render(
            "{{ .Event.String }} {{ .Event.Number }} {{ .Repo.PrunePolicy.Schedule.Clock.Number }}",
            &v
        )
        .unwrap(),
        "CONDITION_SNAPSHOT_END 3 3"
    );
}

#[test]
fn durations_past_i64_clamp() {
    let mut v = hook("h_end");
    v.duration = std::time::Duration::from_secs(u64::MAX);
    assert_eq!(
        render("{{ .Duration.Nanoseconds }}", &v).unwrap(),
        i64::MAX.to_string()
    );
}
