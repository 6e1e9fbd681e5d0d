//! GetSummaryDashboard against a seeded history (every number worked out by
//! hand below), and /metrics after real restic backups, behind the auth gate,
//! read with a Prometheus text-format parser, before and after a restart.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use backrest_rs::oplog::OpLog;
use backrest_rs::pb::v1;
use backrest_rs::pb::v1::operation::Op;
use chrono::{NaiveDate, TimeZone, Timelike, Utc};
use common::*;
use openmetrics_parser::{PrometheusType, PrometheusValue};
use serde_json::{Value, json};
use v1::summary_dashboard_response::Summary;

const INSTANCE: &str = "dash-test";
const G1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const G2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const TZ_NAME: &str = "Asia/Tokyo";
const TZ: chrono_tz::Tz = chrono_tz::Asia::Tokyo;

const S: i32 = v1::OperationStatus::StatusSuccess as i32;
const E: i32 = v1::OperationStatus::StatusError as i32;
const W: i32 = v1::OperationStatus::StatusWarning as i32;
const C: i32 = v1::OperationStatus::StatusUserCancelled as i32;

/// Waits while Tokyo's clock is within minutes of midnight, so that the
/// seeded days and the server's "today" agree (today's backup is at 00:02).
async fn away_from_midnight() {
    loop {
        let t = Utc::now().with_timezone(&TZ);
        let minute = t.hour() * 60 + t.minute();
        if (5..23 * 60 + 58).contains(&minute) {
            return;
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
}

/// Unix ms of `h:m` local time, `days_ago` days before today (Tokyo).
fn local(today: NaiveDate, days_ago: i64, h: u32, m: u32) -> i64 {
    let day = today - chrono::TimeDelta::days(days_ago);
    TZ.from_local_datetime(&day.and_hms_opt(h, m, 0).unwrap())
        .single()
        .unwrap()
        .timestamp_millis()
}

fn midnight(today: NaiveDate, days_ago: i64) -> i64 {
    local(today, days_ago, 0, 0)
}

struct Backup {
    plan: &'static str,
    instance: &'static str,
    status: i32,
    start: i64,
    took_ms: i64,
    /// (total bytes processed, data added)
    summary: Option<(i64, i64)>,
    dry_run: bool,
    file_errors: usize,
}

fn backup(plan: &'static str, status: i32, start: i64, took_ms: i64) -> Backup {
    Backup {
        plan,
        instance: INSTANCE,
        status,
        start,
        took_ms,
        summary: None,
        dry_run: false,
        file_errors: 0,
    }
}

impl Backup {
    fn summary(mut self, processed: i64, added: i64) -> Backup {
        self.summary = Some((processed, added));
        self
    }

    fn op(&self) -> v1::Operation {
        let (repo, guid) = if self.plan == "p3" {
            ("r2", G2)
        } else {
            ("r1", G1)
        };
        v1::Operation {
            instance_id: self.instance.into(),
            repo_id: repo.into(),
            repo_guid: guid.into(),
            plan_id: self.plan.into(),
            status: self.status,
            unix_time_start_ms: self.start,
            unix_time_end_ms: self.start + self.took_ms,
            op: Some(Op::OperationBackup(v1::OperationBackup {
                last_status: self
                    .summary
                    .map(|(processed, added)| v1::BackupProgressEntry {
                        entry: Some(v1::backup_progress_entry::Entry::Summary(
                            v1::BackupProgressSummary {
                                total_bytes_processed: processed,
                                data_added: added,
                                ..Default::default()
                            },
                        )),
                    }),
                errors: vec![
                    v1::BackupProgressError {
                        item: "/x".into(),
                        during: "archival".into(),
                        message: "unreadable".into(),
                    };
                    self.file_errors
                ],
                dry_run: self.dry_run,
            })),
            ..Default::default()
        }
    }
}

fn index_op(
    plan: &str,
    instance: &str,
    snapshot: char,
    flow_id: i64,
    start: i64,
    forgot: bool,
) -> v1::Operation {
    let id: String = std::iter::repeat_n(snapshot, 64).collect();
    v1::Operation {
        instance_id: instance.into(),
        repo_id: "r1".into(),
        repo_guid: G1.into(),
        plan_id: plan.into(),
        status: S,
        unix_time_start_ms: start,
        unix_time_end_ms: start,
        flow_id,
        snapshot_id: id.clone(),
        op: Some(Op::OperationIndexSnapshot(v1::OperationIndexSnapshot {
            snapshot: Some(v1::ResticSnapshot {
                id,
                unix_time_ms: start,
                ..Default::default()
            }),
            forgot,
        })),
        ..Default::default()
    }
}

/// The seeded backups, by letter (see the test for the expected numbers).
struct Seeded {
    ids: std::collections::HashMap<char, i64>,
    starts: std::collections::HashMap<char, i64>,
}

async fn seed(dir: &Path, today: NaiveDate) -> Seeded {
    let d = |days_ago, h, m| local(today, days_ago, h, m);
    let mut dry = backup("p1", S, d(10, 12, 0), 20_000).summary(2100, 0);
    dry.dry_run = true;
    let mut warned = backup("p1", W, d(10, 10, 0), 120_000).summary(2000, 50);
    warned.file_errors = 1;
    let mut elsewhere = backup("p2", S, d(1, 10, 0), 1000).summary(99_999, 99_999);
    elsewhere.instance = "other-inst";
    let backups: Vec<(char, Backup)> = vec![
        // p1, daily.
        (
            'a',
            backup("p1", S, d(35, 10, 0), 60_000).summary(5000, 500),
        ),
        (
            'b',
            backup("p1", S, d(20, 10, 0), 60_000).summary(1000, 100),
        ),
        ('c', backup("p1", E, d(20, 22, 0), 500)),
        ('d', backup("p1", S, d(15, 23, 0), 10_000).summary(1500, 10)),
        ('e', warned),
        ('f', dry),
        ('g', backup("p1", C, d(3, 9, 0), 5000)),
        ('h', backup("p1", S, d(0, 0, 2), 30_000).summary(3000, 300)),
        // p2, every 12 hours.
        ('j', backup("p2", S, d(2, 8, 0), 5000).summary(700, 70)),
        ('k', elsewhere),
        // p3, disabled.
        ('m', backup("p3", E, d(5, 10, 0), 2000)),
    ];
    let data = dir.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let oplog = OpLog::open(&data.join("oplog.sqlite")).await.unwrap();
    let added = oplog
        .add(backups.iter().map(|(_, b)| b.op()).collect())
        .await
        .unwrap();
    let ids: std::collections::HashMap<char, i64> = backups
        .iter()
        .zip(&added)
        .map(|((c, _), op)| (*c, op.id))
        .collect();
    let starts = backups.iter().map(|(c, b)| (*c, b.start)).collect();
    // Snapshots: 0, 1 and 3 from p1's backups a, b, h (in their flows, so
    // garbage collection keeps a, older than 30 days); 2 is forgotten; 4
    // was made by another instance's p2 in the same repo.
    let mut others = vec![
        index_op("p1", INSTANCE, '0', ids[&'a'], d(35, 10, 0), false),
        index_op("p1", INSTANCE, '1', ids[&'b'], d(20, 10, 0), false),
        index_op("p1", INSTANCE, '3', ids[&'h'], d(0, 0, 2), false),
        index_op("p1", INSTANCE, '2', 0, d(10, 10, 0), true),
        index_op("p2", "other-inst", '4', 0, d(1, 10, 0), false),
    ];
    // Not a backup: ignored.
    others.push(v1::Operation {
        instance_id: INSTANCE.into(),
        repo_id: "r1".into(),
        repo_guid: G1.into(),
        plan_id: "_system_".into(),
        status: S,
        unix_time_start_ms: d(1, 3, 0),
        unix_time_end_ms: d(1, 3, 0) + 1000,
        op: Some(Op::OperationPrune(Default::default())),
        ..Default::default()
    });
    oplog.add(others).await.unwrap();
    oplog.close().await;

    let config = json!({
        "version": 6,
        "instance": INSTANCE,
        "auth": {"disabled": true},
        "repos": [
            {"id": "r1", "uri": dir.join("no-repo-1"), "password": "pw", "guid": G1},
            {"id": "r2", "uri": dir.join("no-repo-2"), "password": "pw", "guid": G2}
        ],
        "plans": [
            {"id": "p1", "repo": "r1", "paths": [dir], "schedule": {"maxFrequencyDays": 1}},
            {"id": "p2", "repo": "r1", "paths": [dir], "schedule": {"maxFrequencyHours": 12}},
            {"id": "p3", "repo": "r2", "paths": [dir], "schedule": {"disabled": true}}
        ]
    });
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(dir.join("config/config.json"), config.to_string()).unwrap();
    Seeded { ids, starts }
}

/// The start time of the scheduler's pending backup of `plan`.
async fn pending_backup(s: &Server, plan: &str) -> i64 {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = ok_json(
            s,
            "/v1.Backrest/GetOperations",
            json!({"selector": {"planId": plan}}),
        )
        .await;
        let pending: Vec<i64> = list["operations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|o| o["status"] == "STATUS_PENDING" && o.get("operationBackup").is_some())
            .map(|o| num(&o["unixTimeStartMs"]))
            .collect();
        if let [t] = pending[..] {
            return t;
        }
        assert!(pending.is_empty(), "several pending backups: {list}");
        assert!(Instant::now() < deadline, "no pending backup of {plan}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn history_overdue(s: &Summary, today: NaiveDate) -> Vec<i64> {
    s.history_last_30days
        .iter()
        .filter(|b| b.overdue)
        .map(|b| {
            (0..40)
                .find(|k| midnight(today, *k) == b.timestamp_ms)
                .expect("bucket at a local midnight")
        })
        .collect()
}

fn bucket(
    s: &Summary,
    today: NaiveDate,
    days_ago: i64,
) -> &v1::summary_dashboard_response::DayStatusBucket {
    s.history_last_30days
        .iter()
        .find(|b| b.timestamp_ms == midnight(today, days_ago))
        .unwrap_or_else(|| panic!("no bucket for {days_ago} days ago"))
}

fn status_counts(b: &v1::summary_dashboard_response::DayStatusBucket) -> Vec<(i32, i64)> {
    let mut c: Vec<(i32, i64)> = b
        .status_counts
        .iter()
        .map(|c| (c.status, c.count))
        .collect();
    c.sort();
    c
}

#[tokio::test]
async fn dashboard_numbers_match_a_seeded_history() {
    away_from_midnight().await;
    let today = Utc::now().with_timezone(&TZ).date_naive();
    let dir = tempfile::tempdir().unwrap();
    let seeded = seed(dir.path(), today).await;
    let id = |c: char| seeded.ids[&c];
    let start = |c: char| seeded.starts[&c];
    let s = ServerBuilder::in_dir(dir.path()).env("TZ", TZ_NAME).start();
    let next_p1 = pending_backup(&s, "p1").await;
    let next_p2 = pending_backup(&s, "p2").await;

    let json_answer = ok_json(&s, "/v1.Backrest/GetSummaryDashboard", json!({})).await;
    let r: v1::SummaryDashboardResponse = serde_json::from_value(json_answer.clone()).unwrap();
    let binary: v1::SummaryDashboardResponse = call_proto(
        &s,
        "/v1.Backrest/GetSummaryDashboard",
        &pbjson_types::Empty {},
    )
    .await
    .unwrap();
    assert_eq!(binary, r, "JSON and binary answers differ");
    // Wire names, as the web UI reads them.
    assert_eq!(
        num(&json_answer["planSummaries"][0]["backupsSuccessLast30days"]),
        4
    );
    assert!(json_answer["planSummaries"][0]["historyLast30days"].is_array());

    assert_eq!(r.config_path, s.config_path().display().to_string());
    assert_eq!(r.data_path, s.data_dir().display().to_string());
    let ids = |v: &[Summary]| v.iter().map(|s| s.id.clone()).collect::<Vec<_>>();
    assert_eq!(ids(&r.plan_summaries), ["p1", "p2", "p3"]);
    assert_eq!(ids(&r.repo_summaries), ["r1", "r2"]);
    let (p1, p2, p3) = (
        &r.plan_summaries[0],
        &r.plan_summaries[1],
        &r.plan_summaries[2],
    );
    let (r1, r2) = (&r.repo_summaries[0], &r.repo_summaries[1]);

    // p1 in the window: b c d e f g h (a is 35 days old). Success b d f h
    // (f is a dry run, still a success), error c, warning e, g cancelled.
    assert_eq!(p1.backups_success_last_30days, 4);
    assert_eq!(p1.backups_failed_30days, 1);
    assert_eq!(p1.backups_warning_last_30days, 1);
    assert_eq!(
        p1.bytes_scanned_last_30days,
        1000 + 1500 + 2000 + 2100 + 3000
    );
    assert_eq!(p1.bytes_added_last_30days, 100 + 10 + 50 + 300);
    assert_eq!(p1.bytes_scanned_avg, 9600 / 7);
    assert_eq!(p1.bytes_added_avg, 460 / 7);
    assert_eq!(p1.protected_bytes, 3000);
    // Snapshots 0, 1, 3 (2 is forgotten, 4 isn't this instance's).
    assert_eq!(p1.total_snapshots, 3);
    assert_eq!(p1.next_backup_time_ms, next_p1);
    let chart = p1.recent_backups.as_ref().unwrap();
    let newest_first = ['h', 'g', 'f', 'e', 'd', 'c', 'b'];
    assert_eq!(chart.flow_id, newest_first.map(id));
    assert_eq!(chart.timestamp_ms, newest_first.map(start));
    assert_eq!(
        chart.duration_ms,
        [30_000, 5000, 20_000, 120_000, 10_000, 1000, 60_000]
    );
    assert_eq!(chart.status, [S, C, S, W, S, E, S]);
    assert_eq!(chart.bytes_added, [300, 0, 0, 50, 10, 0, 100]);
    // History: a predates the window, so all 30 days, oldest first.
    assert_eq!(p1.history_last_30days.len(), 30);
    assert_eq!(p1.history_last_30days[0].timestamp_ms, midnight(today, 29));
    assert_eq!(p1.history_last_30days[29].timestamp_ms, midnight(today, 0));
    assert_eq!(status_counts(bucket(p1, today, 20)), [(S, 1), (E, 1)]);
    assert_eq!(
        (
            bucket(p1, today, 20).bytes_added,
            bucket(p1, today, 20).bytes_scanned
        ),
        (100, 1000)
    );
    assert_eq!(status_counts(bucket(p1, today, 10)), [(S, 1), (W, 1)]);
    assert_eq!(
        (
            bucket(p1, today, 10).bytes_added,
            bucket(p1, today, 10).bytes_scanned
        ),
        (50, 4100)
    );
    assert_eq!(status_counts(bucket(p1, today, 3)), [(C, 1)]);
    assert_eq!(status_counts(bucket(p1, today, 0)), [(S, 1)]);
    assert!(bucket(p1, today, 1).status_counts.is_empty());
    // Daily → 30 h allowed. OK backups: 20 days ago 10:00, 15 days ago
    // 23:00 (covers the next day: 25 h), 10 days ago 10:00, today 00:02.
    assert_eq!(
        history_overdue(p1, today),
        [19, 18, 17, 16, 13, 12, 11, 9, 8, 7, 6, 5, 4, 3, 2, 1]
    );

    // p2: only j (k is another instance's).
    assert_eq!(
        (
            p2.backups_success_last_30days,
            p2.backups_failed_30days,
            p2.backups_warning_last_30days
        ),
        (1, 0, 0)
    );
    assert_eq!(
        (p2.bytes_scanned_last_30days, p2.bytes_added_last_30days),
        (700, 70)
    );
    assert_eq!((p2.bytes_scanned_avg, p2.bytes_added_avg), (700, 70));
    assert_eq!(p2.protected_bytes, 700);
    assert_eq!(p2.total_snapshots, 0);
    assert_eq!(p2.next_backup_time_ms, next_p2);
    assert_eq!(p2.recent_backups.as_ref().unwrap().flow_id, [id('j')]);
    // From j's day: 3 buckets. 12 h → 15 h allowed: yesterday and today.
    assert_eq!(p2.history_last_30days.len(), 3);
    assert_eq!(history_overdue(p2, today), [1, 0]);

    // p3: one error, a disabled schedule (never overdue), nothing pending.
    assert_eq!(p3.backups_failed_30days, 1);
    assert_eq!(p3.backups_success_last_30days, 0);
    assert_eq!(p3.next_backup_time_ms, 0);
    assert_eq!(p3.protected_bytes, 0);
    assert_eq!(p3.bytes_scanned_avg, 0);
    assert_eq!(p3.history_last_30days.len(), 6);
    assert!(history_overdue(p3, today).is_empty());
    assert_eq!(p3.recent_backups.as_ref().unwrap().duration_ms, [2000]);

    // r1: p1's and p2's backups of this instance.
    assert_eq!(r1.backups_success_last_30days, 5);
    assert_eq!(r1.backups_failed_30days, 1);
    assert_eq!(r1.backups_warning_last_30days, 1);
    assert_eq!(r1.bytes_scanned_last_30days, 10_300);
    assert_eq!(r1.bytes_added_last_30days, 530);
    assert_eq!(r1.bytes_scanned_avg, 10_300 / 8);
    assert_eq!(r1.bytes_added_avg, 530 / 8);
    assert_eq!(r1.protected_bytes, 3000);
    // Snapshots 0, 1, 3 and the other instance's 4.
    assert_eq!(r1.total_snapshots, 4);
    assert_eq!(r1.next_backup_time_ms, next_p1.min(next_p2));
    assert_eq!(
        r1.recent_backups.as_ref().unwrap().flow_id,
        ['h', 'j', 'g', 'f', 'e', 'd', 'c', 'b'].map(id)
    );
    assert_eq!(r1.history_last_30days.len(), 30);
    assert_eq!(status_counts(bucket(r1, today, 2)), [(S, 1)]);
    assert_eq!(bucket(r1, today, 2).bytes_added, 70);
    // The widest plan period (daily, 30 h); j covers 2 days ago, but 40 h
    // pass from j to yesterday's end.
    assert_eq!(
        history_overdue(r1, today),
        [19, 18, 17, 16, 13, 12, 11, 9, 8, 7, 6, 5, 4, 3, 1]
    );

    assert_eq!(r2.backups_failed_30days, 1);
    assert_eq!(r2.total_snapshots, 0);
    assert_eq!(r2.history_last_30days, p3.history_last_30days);
}

// ---------------------------------------------------------------------------
// Metrics

const USER: &str = "metrics-admin";
const PASS: &str = "s3cret metrics pass";

fn parse(text: &str) -> openmetrics_parser::MetricsExposition<PrometheusType, PrometheusValue> {
    openmetrics_parser::prometheus::parse_prometheus(text)
        .unwrap_or_else(|e| panic!("not a valid exposition ({e:?}):\n{text}"))
}

/// The value of the series of `family` whose labels include `labels`
/// (exactly one must match).
fn value(
    m: &openmetrics_parser::MetricsExposition<PrometheusType, PrometheusValue>,
    family: &str,
    labels: &[(&str, &str)],
) -> PrometheusValue {
    let f = m
        .families
        .get(family)
        .unwrap_or_else(|| panic!("no family {family}"));
    let found: Vec<PrometheusValue> = f
        .iter_samples()
        .filter(|s| {
            let set = s.get_labelset().unwrap();
            labels
                .iter()
                .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .map(|s| s.value.clone())
        .collect();
    assert_eq!(found.len(), 1, "{family} {labels:?}: {found:?}");
    found.into_iter().next().unwrap()
}

fn gauge(v: PrometheusValue) -> f64 {
    match v {
        PrometheusValue::Gauge(n) => n.as_f64(),
        other => panic!("not a gauge: {other:?}"),
    }
}

fn counter(v: PrometheusValue) -> f64 {
    match v {
        PrometheusValue::Counter(c) => c.value.as_f64(),
        other => panic!("not a counter: {other:?}"),
    }
}

async fn get_metrics(s: &Server, cred: Option<(&str, &str)>) -> reqwest::Response {
    let mut rb = client().get(s.url("/metrics"));
    if let Some((u, p)) = cred {
        rb = rb.basic_auth(u, Some(p));
    }
    rb.send().await.unwrap()
}

/// The backup operations of plan p1, oldest first.
async fn p1_backups(s: &Server) -> Vec<Value> {
    let list = ok_json(
        s,
        "/v1.Backrest/GetOperations",
        json!({"selector": {"planId": "p1"}}),
    )
    .await;
    let mut ops: Vec<Value> = list["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.get("operationBackup").is_some())
        .cloned()
        .collect();
    ops.sort_by_key(|o| num(&o["id"]));
    ops
}

fn duration_secs(op: &Value) -> f64 {
    (num(&op["unixTimeEndMs"]) - num(&op["unixTimeStartMs"])) as f64 / 1000.0
}

#[tokio::test]
async fn metrics_follow_real_backups_behind_auth_and_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.bin"), noise(1, 50_000)).unwrap();
    std::fs::write(src.join("sub/b.txt"), "metrics\n".repeat(500)).unwrap();
    let mut s = ServerBuilder::in_dir(dir.path()).start();

    set_instance(&s, "metrics-test").await;
    let mut cfg = add_repo(&s, "r1", &dir.path().join("repo"), "pw").await;
    cfg["plans"] = json!([{"id": "p1", "repo": "r1", "paths": [src]}]);
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;

    // A real backup, a dry run, then a failing one (its path is gone).
    ok_json(&s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    ok_json(
        &s,
        "/v1.Backrest/Backup",
        json!({"value": "p1", "dryRun": true}),
    )
    .await;
    let mut cfg = ok_json(&s, "/v1.Backrest/GetConfig", json!({})).await;
    cfg["plans"][0]["paths"] = json!([dir.path().join("missing")]);
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;
    let (status, err) = call_json(&s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    assert_ne!(status, 200, "{err}");

    let ops = p1_backups(&s).await;
    assert_eq!(ops.len(), 3, "{ops:?}");
    let (good, dry, failed) = (&ops[0], &ops[1], &ops[2]);
    assert_eq!(good["status"], "STATUS_SUCCESS", "{good}");
    assert_eq!(dry["operationBackup"]["dryRun"], true, "{dry}");
    assert_eq!(failed["status"], "STATUS_ERROR", "{failed}");
    let summary = &good["operationBackup"]["lastStatus"]["summary"];
    let processed = num(&summary["totalBytesProcessed"]);
    let added = num(&summary["dataAdded"]);
    assert!(processed > 50_000 && added > 0, "{summary}");
    let warnings = good["operationBackup"]["errors"]
        .as_array()
        .map_or(0, |a| a.len());
    let good_end = num(&good["unixTimeEndMs"]);

    // The metrics follow the operation log: wait for the failed run.
    let deadline = Instant::now() + Duration::from_secs(20);
    while !get_metrics(&s, None)
        .await
        .text()
        .await
        .unwrap()
        .contains("status=\"failed\"")
    {
        assert!(Instant::now() < deadline, "the failed run never showed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Now turn authentication on.
    let hash = ok_json(
        &s,
        "/v1.Authentication/HashPassword",
        json!({"value": PASS}),
    )
    .await["value"]
        .as_str()
        .unwrap()
        .to_string();
    let mut cfg = ok_json(&s, "/v1.Backrest/GetConfig", json!({})).await;
    cfg["auth"] = json!({"disabled": false, "users": [{"name": USER, "passwordBcrypt": hash}]});
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;

    assert_eq!(get_metrics(&s, None).await.status(), 401);
    assert_eq!(get_metrics(&s, Some((USER, "wrong"))).await.status(), 401);
    let resp = get_metrics(&s, Some((USER, PASS))).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let text = resp.text().await.unwrap();
    let m = parse(&text);

    let p1 = [("repo_id", "r1"), ("plan_id", "p1")];
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&'static str, &'static str)> {
        p1.iter().chain(extra).copied().collect()
    };
    let backup = with(&[("task_type", "backup")]);

    // Backrest's series.
    assert_eq!(
        m.families["backrest_tasks_run_total"].family_type,
        PrometheusType::Counter
    );
    let ok_runs = counter(value(
        &m,
        "backrest_tasks_run_total",
        &with(&[("task_type", "backup"), ("status", "success")]),
    ));
    let failed_runs = counter(value(
        &m,
        "backrest_tasks_run_total",
        &with(&[("task_type", "backup"), ("status", "failed")]),
    ));
    assert_eq!((ok_runs, failed_runs), (2.0, 1.0));
    // Only the newest status per task type is kept.
    let last = &m.families["backrest_last_task_status"];
    assert_eq!(last.iter_samples().count(), 1, "{text}");
    assert_eq!(
        gauge(value(
            &m,
            "backrest_last_task_status",
            &with(&[("task_type", "backup"), ("status", "failed")])
        )),
        1.0
    );
    assert_eq!(
        gauge(value(&m, "backrest_tasks_duration_secs", &backup)),
        duration_secs(failed)
    );
    // From the real backup (the dry run and the failure leave them alone).
    assert_eq!(
        gauge(value(&m, "backrest_backup_bytes_processed", &p1)),
        processed as f64
    );
    assert_eq!(
        gauge(value(&m, "backrest_backup_bytes_added", &p1)),
        added as f64
    );
    assert_eq!(
        gauge(value(&m, "backrest_backup_file_warnings", &p1)),
        warnings as f64
    );
    // Ours: the alerting gauge and the duration histogram.
    assert_eq!(
        gauge(value(
            &m,
            "backrest_backup_last_success_timestamp_seconds",
            &p1
        )),
        good_end as f64 / 1000.0
    );
    let durations = [
        duration_secs(good),
        duration_secs(dry),
        duration_secs(failed),
    ];
    match value(&m, "backrest_operation_duration_seconds", &backup) {
        PrometheusValue::Histogram(h) => {
            assert_eq!(h.count, Some(3));
            let sum = h.sum.unwrap().as_f64();
            assert!(
                (sum - durations.iter().sum::<f64>()).abs() < 1e-6,
                "{sum} vs {durations:?}"
            );
            assert_eq!(h.buckets.len(), 14, "1 s … 6 h and +Inf");
            for b in &h.buckets {
                let within = durations.iter().filter(|d| **d <= b.upper_bound).count();
                assert_eq!(b.count.as_f64(), within as f64, "le={}", b.upper_bound);
            }
            assert_eq!(h.buckets.last().unwrap().upper_bound, f64::INFINITY);
            assert_eq!(h.buckets[h.buckets.len() - 2].upper_bound, 21_600.0);
        }
        other => panic!("not a histogram: {other:?}"),
    }
    // Index operations are results, not task runs.
    assert!(!text.contains("index_snapshots"), "{text}");

    // After a restart the run counters start over, but the time of the
    // last good backup is read back from the operation log.
    s.stop();
    let s = ServerBuilder::in_dir(dir.path()).start();
    assert_eq!(get_metrics(&s, None).await.status(), 401);
    let text = get_metrics(&s, Some((USER, PASS)))
        .await
        .text()
        .await
        .unwrap();
    let m = parse(&text);
    assert_eq!(
        gauge(value(
            &m,
            "backrest_backup_last_success_timestamp_seconds",
            &p1
        )),
        good_end as f64 / 1000.0
    );
    assert!(
        !m.families.contains_key("backrest_tasks_run_total"),
        "{text}"
    );
}
