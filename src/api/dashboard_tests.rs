//! The dashboard aggregation on seeded histories with a fixed `now` and
//! time zone. Every operation goes through the slim decoder, as in the RPC.

use chrono::{NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use prost::Message;

use super::*;
use crate::pb::v1::operation::Op;
use v1::summary_dashboard_response::Summary;

const ME: &str = "me";
const GUID_1: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const GUID_2: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const HOUR: i64 = 3_600_000;
const S: i32 = OperationStatus::StatusSuccess as i32;
const E: i32 = OperationStatus::StatusError as i32;
const W: i32 = OperationStatus::StatusWarning as i32;
const P: i32 = OperationStatus::StatusPending as i32;
const RUNNING: i32 = OperationStatus::StatusInprogress as i32;
const CANCELLED: i32 = OperationStatus::StatusUserCancelled as i32;

fn tokyo() -> Tz {
    chrono_tz::Asia::Tokyo
}

/// Local wall time `y-m-d h:mi` in `tz` as unix ms (must exist, unambiguous).
fn at(tz: Tz, y: i32, m: u32, d: u32, h: u32, mi: u32) -> i64 {
    tz.with_ymd_and_hms(y, m, d, h, mi, 0)
        .single()
        .expect("an unambiguous local time")
        .timestamp_millis()
}

fn utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap()
}

fn days(n: i32) -> Option<v1::Schedule> {
    Some(v1::Schedule {
        schedule: Some(v1::schedule::Schedule::MaxFrequencyDays(n)),
        ..Default::default()
    })
}

fn hours(n: i32) -> Option<v1::Schedule> {
    Some(v1::Schedule {
        schedule: Some(v1::schedule::Schedule::MaxFrequencyHours(n)),
        ..Default::default()
    })
}

fn cron(expr: &str) -> Option<v1::Schedule> {
    Some(v1::Schedule {
        schedule: Some(v1::schedule::Schedule::Cron(expr.into())),
        clock: v1::schedule::Clock::Local as i32,
    })
}

fn disabled() -> Option<v1::Schedule> {
    Some(v1::Schedule {
        schedule: Some(v1::schedule::Schedule::Disabled(true)),
        ..Default::default()
    })
}

/// Repos r1 (GUID_1) and r2 (GUID_2); plans (id, repo, schedule).
fn config(plans: &[(&str, &str, Option<v1::Schedule>)]) -> v1::Config {
    v1::Config {
        instance: ME.into(),
        repos: vec![
            v1::Repo {
                id: "r1".into(),
                guid: GUID_1.into(),
                ..Default::default()
            },
            v1::Repo {
                id: "r2".into(),
                guid: GUID_2.into(),
                ..Default::default()
            },
        ],
        plans: plans
            .iter()
            .map(|(id, repo, schedule)| v1::Plan {
                id: id.to_string(),
                repo: repo.to_string(),
                schedule: schedule.clone(),
                ..Default::default()
            })
            .collect(),
        ..Default::default()
    }
}

/// A backup builder, stored and decoded as the RPC reads it.
#[derive(Clone)]
struct B {
    op: v1::Operation,
}

fn backup(plan: &str, status: i32, start: i64) -> B {
    let guid = if plan == "p3" { GUID_2 } else { GUID_1 };
    B {
        op: v1::Operation {
            instance_id: ME.into(),
            plan_id: plan.into(),
            repo_id: if guid == GUID_1 { "r1" } else { "r2" }.into(),
            repo_guid: guid.into(),
            status,
            unix_time_start_ms: start,
            unix_time_end_ms: start + 10_000,
            flow_id: start / 1000,
            display_message: "some message the dashboard never reads".into(),
            op: Some(Op::OperationBackup(v1::OperationBackup::default())),
            ..Default::default()
        },
    }
}

impl B {
    fn summary(mut self, processed: i64, added: i64) -> B {
        if let Some(Op::OperationBackup(b)) = self.op.op.as_mut() {
            b.last_status = Some(v1::BackupProgressEntry {
                entry: Some(v1::backup_progress_entry::Entry::Summary(
                    v1::BackupProgressSummary {
                        total_bytes_processed: processed,
                        data_added: added,
                        files_new: 7,
                        snapshot_id: "abc".into(),
                        total_duration: 1.5,
                        ..Default::default()
                    },
                )),
            });
        }
        self
    }
    fn dry(mut self) -> B {
        if let Some(Op::OperationBackup(b)) = self.op.op.as_mut() {
            b.dry_run = true;
        }
        self
    }
    fn took(mut self, ms: i64) -> B {
        self.op.unix_time_end_ms = self.op.unix_time_start_ms + ms;
        self
    }
    fn instance(mut self, id: &str) -> B {
        self.op.instance_id = id.into();
        self
    }
    fn flow(mut self, id: i64) -> B {
        self.op.flow_id = id;
        self
    }
}

/// An index operation; `snapshot` is padded to a 64-character id.
fn index(plan: &str, guid: &str, instance: &str, snapshot: &str, forgot: bool) -> v1::Operation {
    let snapshot = if snapshot.is_empty() {
        String::new()
    } else {
        format!("{snapshot:0>64}")
    };
    let snapshot = snapshot.as_str();
    v1::Operation {
        instance_id: instance.into(),
        plan_id: plan.into(),
        repo_id: "r".into(),
        repo_guid: guid.into(),
        status: S,
        unix_time_start_ms: 1,
        snapshot_id: snapshot.into(),
        op: Some(Op::OperationIndexSnapshot(v1::OperationIndexSnapshot {
            snapshot: Some(v1::ResticSnapshot {
                id: snapshot.into(),
                paths: vec!["/a/long/path".into(); 20],
                ..Default::default()
            }),
            forgot,
        })),
        ..Default::default()
    }
}

fn decoded(op: &v1::Operation) -> DashboardOp {
    DashboardOp::decode(&op.encode_to_vec()).expect("decodes")
}

/// Runs the aggregation over `ops` sorted newest first, as the oplog query
/// delivers them.
fn run(cfg: &v1::Config, ops: &[v1::Operation], now: i64, tz: Tz) -> v1::SummaryDashboardResponse {
    let mut ops: Vec<&v1::Operation> = ops.iter().collect();
    ops.sort_by_key(|o| std::cmp::Reverse((o.unix_time_start_ms, o.id)));
    let decoded: Vec<DashboardOp> = ops.iter().map(|o| decoded(o)).collect();
    summarize(cfg, &decoded, utc(now), tz)
}

fn plan<'a>(r: &'a v1::SummaryDashboardResponse, id: &str) -> &'a Summary {
    r.plan_summaries.iter().find(|s| s.id == id).unwrap()
}

fn repo<'a>(r: &'a v1::SummaryDashboardResponse, id: &str) -> &'a Summary {
    r.repo_summaries.iter().find(|s| s.id == id).unwrap()
}

fn ops(bs: &[B]) -> Vec<v1::Operation> {
    bs.iter().map(|b| b.op.clone()).collect()
}

fn overdue_days(s: &Summary) -> Vec<usize> {
    s.history_last_30days
        .iter()
        .enumerate()
        .filter(|(_, b)| b.overdue)
        .map(|(i, _)| i)
        .collect()
}

fn counts(b: &v1::summary_dashboard_response::DayStatusBucket) -> Vec<(i32, i64)> {
    b.status_counts
        .iter()
        .map(|c| (c.status, c.count))
        .collect()
}

#[test]
fn slim_decoding_reads_exactly_the_fields_of_the_full_operation() {
    let full = backup("p1", W, 1_700_000_000_000)
        .summary(1234, 56)
        .took(4321)
        .op;
    let mut with_errors = full.clone();
    if let Some(Op::OperationBackup(b)) = with_errors.op.as_mut() {
        b.errors = vec![v1::BackupProgressError {
            item: "/x".into(),
            during: "archival".into(),
            message: "boom".into(),
        }];
    }
    let d = decoded(&with_errors);
    assert_eq!(
        d,
        DashboardOp {
            instance_id: ME.into(),
            plan_id: "p1".into(),
            repo_guid: GUID_1.into(),
            status: W,
            unix_time_start_ms: 1_700_000_000_000,
            unix_time_end_ms: 1_700_000_004_321,
            flow_id: 1_700_000_000,
            snapshot_id: String::new(),
            kind: DashboardKind::Backup {
                dry_run: false,
                summary: Some(BytesSummary {
                    total_bytes_processed: 1234,
                    data_added: 56
                }),
            },
        }
    );

    // A backup still reporting progress has no summary.
    let mut running = backup("p1", RUNNING, 5).dry().op;
    if let Some(Op::OperationBackup(b)) = running.op.as_mut() {
        b.last_status = Some(v1::BackupProgressEntry {
            entry: Some(v1::backup_progress_entry::Entry::Status(
                v1::BackupProgressStatusEntry {
                    bytes_done: 99,
                    ..Default::default()
                },
            )),
        });
    }
    assert_eq!(
        decoded(&running).kind,
        DashboardKind::Backup {
            dry_run: true,
            summary: None
        }
    );

    let idx = decoded(&index("p1", GUID_1, ME, "snap", true));
    assert_eq!(idx.kind, DashboardKind::IndexSnapshot { forgot: true });
    assert_eq!(idx.snapshot_id, format!("{:0>64}", "snap"));

    let forget = v1::Operation {
        op: Some(Op::OperationForget(v1::OperationForget {
            forget: vec![v1::ResticSnapshot::default(); 3],
            policy: None,
        })),
        ..Default::default()
    };
    assert_eq!(decoded(&forget).kind, DashboardKind::Other);
    assert!(DashboardOp::decode(&[0xff, 0xff, 0xff]).is_err());
}

#[test]
fn window_starts_at_local_midnight_29_days_before_today() {
    let tz = tokyo();
    let cfg = config(&[("p1", "r1", None)]);
    let now = at(tz, 2024, 6, 30, 15, 0);
    let cutoff = at(tz, 2024, 6, 1, 0, 0);
    let first_in = backup("p1", S, cutoff).summary(10, 1);
    let last_out = backup("p1", S, cutoff - 1).summary(1000, 100);
    let r = run(&cfg, &ops(&[first_in.clone(), last_out]), now, tz);
    let p = plan(&r, "p1");
    assert_eq!(p.backups_success_last_30days, 1);
    assert_eq!(p.bytes_scanned_last_30days, 10);
    assert_eq!(
        p.recent_backups.as_ref().unwrap().timestamp_ms,
        vec![cutoff]
    );
    // History goes back further: 30 buckets, from the cutoff day to today.
    assert_eq!(p.history_last_30days.len(), 30);
    assert_eq!(p.history_last_30days[0].timestamp_ms, cutoff);
    assert_eq!(counts(&p.history_last_30days[0]), vec![(S, 1)]);
    assert_eq!(
        p.history_last_30days[29].timestamp_ms,
        at(tz, 2024, 6, 30, 0, 0)
    );

    // Without the older backup the history starts at the oldest day seen.
    let r = run(&cfg, &ops(&[first_in]), now, tz);
    assert_eq!(plan(&r, "p1").history_last_30days.len(), 30);
    let late = backup("p1", S, at(tz, 2024, 6, 28, 23, 59));
    let r = run(&cfg, &ops(&[late]), now, tz);
    let h = &plan(&r, "p1").history_last_30days;
    assert_eq!(
        h.iter().map(|b| b.timestamp_ms).collect::<Vec<_>>(),
        vec![
            at(tz, 2024, 6, 28, 0, 0),
            at(tz, 2024, 6, 29, 0, 0),
            at(tz, 2024, 6, 30, 0, 0)
        ]
    );

    // No backups at all: just today, empty.
    let r = run(&cfg, &[], now, tz);
    let p = plan(&r, "p1");
    assert_eq!(p.history_last_30days.len(), 1);
    assert_eq!(
        p.history_last_30days[0].timestamp_ms,
        at(tz, 2024, 6, 30, 0, 0)
    );
    assert!(p.history_last_30days[0].status_counts.is_empty());
    assert_eq!(p.bytes_scanned_avg, 0);
    assert_eq!(p.recent_backups, Some(Default::default()));

    // The day boundary is local: 23:30 UTC on the 31st of May is already
    // June 1st in Tokyo, so it is inside the window there but not in UTC.
    let edge = backup(
        "p1",
        S,
        Utc.with_ymd_and_hms(2024, 5, 31, 23, 30, 0)
            .unwrap()
            .timestamp_millis(),
    );
    let r = run(&cfg, &ops(std::slice::from_ref(&edge)), now, tz);
    assert_eq!(plan(&r, "p1").backups_success_last_30days, 1);
    let r = run(
        &cfg,
        &ops(&[edge]),
        at(chrono_tz::UTC, 2024, 6, 30, 15, 0),
        chrono_tz::UTC,
    );
    assert_eq!(plan(&r, "p1").backups_success_last_30days, 0);
}

#[test]
fn pending_backups_give_the_next_backup_time() {
    let tz = tokyo();
    let cfg = config(&[("p1", "r1", None), ("p2", "r1", None)]);
    let now = at(tz, 2024, 6, 30, 15, 0);
    let r = run(
        &cfg,
        &ops(&[
            backup("p1", P, now + 5 * HOUR),
            backup("p1", P, now + 2 * HOUR),
            backup("p1", S, now - HOUR),
            backup("p2", P, now + HOUR),
        ]),
        now,
        tz,
    );
    // Newest first, each pending overwrites: the earliest pending wins.
    assert_eq!(plan(&r, "p1").next_backup_time_ms, now + 2 * HOUR);
    assert_eq!(plan(&r, "p2").next_backup_time_ms, now + HOUR);
    assert_eq!(repo(&r, "r1").next_backup_time_ms, now + HOUR);
    assert_eq!(repo(&r, "r2").next_backup_time_ms, 0);
    // Pending ops are not examined.
    assert_eq!(
        plan(&r, "p1").recent_backups.as_ref().unwrap().status,
        vec![S]
    );
    assert_eq!(plan(&r, "p2").history_last_30days.len(), 1);
}

#[test]
fn counts_sums_averages_and_protected_bytes() {
    let tz = tokyo();
    let cfg = config(&[("p1", "r1", None)]);
    let now = at(tz, 2024, 6, 30, 15, 0);
    let t = |d: u32, h: u32| at(tz, 2024, 6, d, h, 0);
    let r = run(
        &cfg,
        &ops(&[
            // Newest: a dry run with a summary (counts as a success, adds
            // bytes, but protects nothing).
            backup("p1", S, t(30, 12)).dry().summary(900, 0),
            // An error that still reported a summary: bytes count, no protection.
            backup("p1", E, t(30, 11)).summary(800, 8),
            // OK without a summary: skipped for protection.
            backup("p1", S, t(30, 10)),
            // The newest OK backup with a summary.
            backup("p1", W, t(29, 10)).summary(700, 7),
            backup("p1", S, t(28, 10)).summary(600, 6),
            backup("p1", RUNNING, t(27, 10)),
            backup("p1", CANCELLED, t(26, 10)),
            backup("p1", E, t(25, 10)),
        ]),
        now,
        tz,
    );
    let p = plan(&r, "p1");
    assert_eq!(p.backups_success_last_30days, 3);
    assert_eq!(p.backups_failed_30days, 2);
    assert_eq!(p.backups_warning_last_30days, 1);
    assert_eq!(p.bytes_scanned_last_30days, 900 + 800 + 700 + 600);
    assert_eq!(p.bytes_added_last_30days, 8 + 7 + 6);
    // Eight examined (running and cancelled included): integer division.
    assert_eq!(p.bytes_scanned_avg, 3000 / 8);
    assert_eq!(p.bytes_added_avg, 21 / 8);
    assert_eq!(p.protected_bytes, 700);
    assert_eq!(p.total_snapshots, 0);
    let today = p.history_last_30days.last().unwrap();
    assert_eq!(counts(today), vec![(S, 2), (E, 1)]);
    assert_eq!(today.bytes_scanned, 900 + 800);
    assert_eq!(today.bytes_added, 8);
    assert_eq!(p.history_last_30days.len(), 6);
    assert_eq!(counts(&p.history_last_30days[1]), vec![(CANCELLED, 1)]);
    assert_eq!(counts(&p.history_last_30days[2]), vec![(RUNNING, 1)]);
    // Repo r1 sees the same backups.
    let r1 = repo(&r, "r1");
    assert_eq!(r1.backups_success_last_30days, 3);
    assert_eq!(r1.protected_bytes, 700);
    assert_eq!(r1.history_last_30days, p.history_last_30days);
    // As in Backrest's code, a newest OK backup that processed 0 bytes is
    // passed over for the next one that processed something.
    let r = run(
        &cfg,
        &ops(&[
            backup("p1", S, t(30, 10)).summary(0, 0),
            backup("p1", S, t(29, 10)).summary(500, 5),
        ]),
        now,
        tz,
    );
    assert_eq!(plan(&r, "p1").protected_bytes, 500);
}

#[test]
fn chart_holds_the_60_newest_with_a_minimum_duration() {
    let tz = tokyo();
    let cfg = config(&[("p1", "r1", None)]);
    let now = at(tz, 2024, 6, 30, 15, 0);
    let mut bs = Vec::new();
    for i in 0..70i64 {
        let start = now - (i + 1) * HOUR;
        let b = backup("p1", if i % 3 == 0 { E } else { S }, start).flow(1000 + i);
        let b = match i {
            0 => b.took(999).summary(1, 11),
            1 => b.took(1000),
            2 => b.took(1001).summary(5, 0),
            3 => b.took(-5_000),
            _ => b.took(60_000),
        };
        bs.push(b);
    }
    let r = run(&cfg, &ops(&bs), now, tz);
    let c = plan(&r, "p1").recent_backups.clone().unwrap();
    assert_eq!(c.timestamp_ms.len(), 60);
    assert_eq!(c.flow_id, (1000..1060).collect::<Vec<_>>());
    assert_eq!(c.timestamp_ms[0], now - HOUR);
    assert_eq!(c.timestamp_ms[59], now - 60 * HOUR);
    assert_eq!(&c.duration_ms[..5], &[1000, 1000, 1001, 1000, 60_000]);
    assert_eq!(&c.bytes_added[..3], &[11, 0, 0]);
    assert_eq!(&c.status[..4], &[E, S, S, E]);
    assert_eq!(plan(&r, "p1").backups_failed_30days, 24);
}

#[test]
fn only_this_instances_backups_of_configured_plans_and_repos_count() {
    let tz = tokyo();
    let cfg = config(&[("p1", "r1", None), ("p3", "r2", None)]);
    let now = at(tz, 2024, 6, 30, 15, 0);
    let mut stray = backup("gone", S, now - HOUR).summary(5, 5);
    stray.op.repo_guid = "unknown-guid".into();
    let mut moved = backup("p1", S, now - 2 * HOUR).summary(7, 7);
    moved.op.repo_guid = GUID_2.into();
    let r = run(
        &cfg,
        &ops(&[
            backup("p1", S, now - 3 * HOUR)
                .instance("elsewhere")
                .summary(100, 100),
            stray,
            moved,
            backup("p3", E, now - 4 * HOUR),
        ]),
        now,
        tz,
    );
    assert_eq!(
        r.plan_summaries
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["p1", "p3"]
    );
    assert_eq!(
        r.repo_summaries
            .iter()
            .map(|s| s.id.as_str())
            .collect::<Vec<_>>(),
        ["r1", "r2"]
    );
    // p1's backup that went to r2 counts for p1 and for r2.
    assert_eq!(plan(&r, "p1").bytes_scanned_last_30days, 7);
    assert_eq!(
        repo(&r, "r1")
            .recent_backups
            .as_ref()
            .unwrap()
            .flow_id
            .len(),
        0
    );
    assert_eq!(repo(&r, "r2").bytes_scanned_last_30days, 7);
    assert_eq!(repo(&r, "r2").backups_failed_30days, 1);
    assert_eq!(repo(&r, "r2").backups_success_last_30days, 1);
}

#[test]
fn total_snapshots_counts_distinct_unforgotten_indexed_snapshots() {
    let tz = tokyo();
    let cfg = config(&[("p1", "r1", None), ("p2", "r1", None)]);
    let now = at(tz, 2024, 6, 30, 15, 0);
    let r = run(
        &cfg,
        &[
            index("p1", GUID_1, ME, "s1", false),
            index("p1", GUID_1, ME, "s2", false),
            // Forgotten, then indexed again: counts once.
            index("p1", GUID_1, ME, "s2", true),
            index("p1", GUID_1, ME, "s3", true),
            // Made by another instance's plan p1: the repo's, not this p1's.
            index("p1", GUID_1, "other", "s4", false),
            index("_unassociated_", GUID_1, "_unassociated_", "s5", false),
            index("p2", GUID_2, ME, "s6", false),
            // An index op without a snapshot id is ignored.
            index("p2", GUID_1, ME, "", false),
        ],
        now,
        tz,
    );
    assert_eq!(plan(&r, "p1").total_snapshots, 2);
    assert_eq!(plan(&r, "p2").total_snapshots, 1);
    assert_eq!(repo(&r, "r1").total_snapshots, 4);
    assert_eq!(repo(&r, "r2").total_snapshots, 1);
    // Index ops are not backups.
    assert_eq!(plan(&r, "p1").history_last_30days.len(), 1);
}

#[test]
fn overdue_days_follow_the_schedule_with_a_quarter_of_grace() {
    let tz = tokyo();
    // Daily: 30 h allowed. Every 12 h: 15 h. Disabled: never overdue.
    let cfg = config(&[
        ("p1", "r1", days(1)),
        ("p2", "r1", hours(12)),
        ("p3", "r2", disabled()),
    ]);
    let now = at(tz, 2024, 6, 30, 15, 0);
    let t = |d: u32, h: u32, m: u32| at(tz, 2024, 6, d, h, m);
    let r = run(
        &cfg,
        &ops(&[
            backup("p1", S, t(20, 10, 0)).summary(1, 1),
            // 23:00 on the 23rd covers the 24th (25 h ≤ 30 h at its end).
            backup("p1", S, t(23, 23, 0)),
            // Errors and dry runs don't reset the clock.
            backup("p1", E, t(26, 10, 0)),
            backup("p1", S, t(27, 10, 0)).dry(),
            backup("p1", W, t(29, 6, 0)),
            backup("p2", S, t(28, 8, 0)),
            backup("p3", E, t(25, 10, 0)),
        ]),
        now,
        tz,
    );
    // p1: history from the 20th. 21st: 38 h since the 20th 10:00 > 30 h;
    // 25th: 49 h since the 23rd 23:00; today: 15:00 − the 29th 06:00 = 33 h.
    let p1 = plan(&r, "p1");
    let day = |d: u32| (d - 20) as usize;
    assert_eq!(p1.history_last_30days.len(), 11);
    assert_eq!(
        overdue_days(p1),
        vec![
            day(21),
            day(22),
            day(25),
            day(26),
            day(27),
            day(28),
            day(30)
        ]
    );
    // p2 (15 h): the 29th (40 h at its end) and today (now − 28th 08:00 = 55 h).
    let p2 = plan(&r, "p2");
    assert_eq!(p2.history_last_30days.len(), 3);
    assert_eq!(overdue_days(p2), vec![1, 2]);
    // r1 uses the widest plan period (30 h) over both plans' OK backups:
    // p2's backup covers the 28th, which p1 alone left overdue.
    let r1 = repo(&r, "r1");
    assert_eq!(
        overdue_days(r1),
        vec![day(21), day(22), day(25), day(26), day(27), day(30)]
    );
    assert!(overdue_days(plan(&r, "p3")).is_empty());
    assert!(overdue_days(repo(&r, "r2")).is_empty());

    // Today's checkpoint is now: at 06:00 on the 30th only 24 h have passed
    // since p1's last OK backup.
    let r = run(&cfg, &ops(&[backup("p1", W, t(29, 6, 0))]), t(30, 6, 0), tz);
    assert!(overdue_days(plan(&r, "p1")).is_empty());
    let r = run(
        &cfg,
        &ops(&[backup("p1", W, t(29, 6, 0))]),
        t(30, 12, 1),
        tz,
    );
    assert_eq!(overdue_days(plan(&r, "p1")), vec![1]);
}

#[test]
fn a_backup_later_than_now_does_not_count_yet() {
    let tz = tokyo();
    let cfg = config(&[("p1", "r1", hours(1))]);
    let now = at(tz, 2024, 6, 30, 15, 0);
    // One starts later today than now (clock skew): today's checkpoint is
    // now, so today is measured against yesterday's backup (27 h > 1.25 h).
    let r = run(
        &cfg,
        &ops(&[
            backup("p1", S, at(tz, 2024, 6, 30, 20, 0)),
            backup("p1", S, at(tz, 2024, 6, 29, 12, 0)),
        ]),
        now,
        tz,
    );
    assert_eq!(overdue_days(plan(&r, "p1")), vec![1]);
}

#[test]
fn the_pre_window_anchor_applies_only_when_the_window_has_no_ok_backup() {
    let tz = tokyo();
    let cfg = config(&[("p1", "r1", days(1))]);
    let now = at(tz, 2024, 6, 30, 15, 0);
    let old_ok = backup("p1", S, at(tz, 2024, 5, 20, 10, 0)).summary(9, 9);
    let older_ok = backup("p1", S, at(tz, 2024, 5, 10, 10, 0));
    let old_err = backup("p1", E, at(tz, 2024, 5, 25, 10, 0));

    // Stalled since before the window: every day is overdue.
    let r = run(
        &cfg,
        &ops(&[old_ok.clone(), older_ok.clone(), old_err.clone()]),
        now,
        tz,
    );
    let p = plan(&r, "p1");
    assert_eq!(p.history_last_30days.len(), 30);
    assert_eq!(overdue_days(p), (0..30).collect::<Vec<_>>());
    // Pre-window backups count nowhere else.
    assert_eq!(p.backups_success_last_30days, 0);
    assert_eq!(p.backups_failed_30days, 0);
    assert_eq!(p.protected_bytes, 0);

    // With an OK backup on the 10th of June, the days before it are settled
    // history, not overdue.
    let june = backup("p1", S, at(tz, 2024, 6, 10, 10, 0));
    let r = run(&cfg, &ops(&[old_ok, older_ok, old_err, june]), now, tz);
    let from_10th: Vec<usize> = (10..30).collect();
    assert_eq!(overdue_days(plan(&r, "p1")), from_10th);

    // Only an old error: no OK backup anywhere, nothing overdue.
    let r = run(
        &cfg,
        &ops(&[backup("p1", E, at(tz, 2024, 5, 25, 10, 0))]),
        now,
        tz,
    );
    assert!(overdue_days(plan(&r, "p1")).is_empty());
    assert_eq!(plan(&r, "p1").history_last_30days.len(), 30);
}

#[test]
fn days_are_23_or_25_hours_long_across_daylight_saving_changes() {
    let ny = chrono_tz::America::New_York;
    let cfg = config(&[("p1", "r1", hours(20))]);
    // Spring forward on 2024-03-10 (23 h), fall back on 2024-11-03 (25 h).
    for (y, m, d) in [(2024, 3, 10), (2024, 11, 3)] {
        let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
        let before = day.pred_opt().unwrap();
        let after = day.succ_opt().unwrap();
        let now = local_midnight_ms(after, &ny) + 20 * HOUR;
        // One backup at 22:00 the day before the change.
        let start = ny
            .from_local_datetime(&before.and_hms_opt(22, 0, 0).unwrap())
            .single()
            .unwrap()
            .timestamp_millis();
        let r = run(&cfg, &ops(&[backup("p1", S, start)]), now, ny);
        let h = &plan(&r, "p1").history_last_30days;
        assert_eq!(h.len(), 3);
        let lengths: Vec<i64> = h
            .windows(2)
            .map(|w| w[1].timestamp_ms - w[0].timestamp_ms)
            .collect();
        let change_day_hours = if m == 3 { 23 } else { 25 };
        assert_eq!(lengths, vec![24 * HOUR, change_day_hours * HOUR]);
        // Allowed: 25 h. The change day ends 2 h + its length after 22:00.
        // 23 h day: 25 h ≤ 25 h, not overdue. 25 h day: 27 h, overdue.
        let expected = if m == 3 { vec![2] } else { vec![1, 2] };
        assert_eq!(overdue_days(plan(&r, "p1")), expected, "{y}-{m}-{d}");
        // Each bucket starts at that day's local midnight.
        for (b, date) in h.iter().zip([before, day, after]) {
            let wall = NaiveDateTime::new(date, NaiveTime::MIN);
            assert_eq!(utc(b.timestamp_ms).with_timezone(&ny).naive_local(), wall);
        }
    }
}

#[test]
fn a_day_whose_midnight_is_skipped_starts_when_the_clock_jumps() {
    // São Paulo sprang forward at midnight on 2018-11-04: 00:00 → 01:00 (-02).
    let sp = chrono_tz::America::Sao_Paulo;
    let day = NaiveDate::from_ymd_opt(2018, 11, 4).unwrap();
    let start = local_midnight_ms(day, &sp);
    assert_eq!(
        start,
        Utc.with_ymd_and_hms(2018, 11, 4, 3, 0, 0)
            .unwrap()
            .timestamp_millis()
    );
    assert_eq!(
        utc(start).with_timezone(&sp).naive_local(),
        day.and_hms_opt(1, 0, 0).unwrap()
    );
    // It fell back at midnight on 2019-02-17 (00:00 → 23:00 the day before):
    // the 16th has 25 hours and the 17th starts at the one midnight there is.
    let feb16 = NaiveDate::from_ymd_opt(2019, 2, 16).unwrap();
    let feb17 = feb16.succ_opt().unwrap();
    assert_eq!(
        local_midnight_ms(feb17, &sp) - local_midnight_ms(feb16, &sp),
        25 * HOUR
    );
    // A backup right after the jump lands on the 4th, in the first bucket.
    let cfg = config(&[("p1", "r1", None)]);
    let r = run(
        &cfg,
        &ops(&[backup("p1", S, start + 60_000)]),
        start + 5 * HOUR,
        sp,
    );
    let h = &plan(&r, "p1").history_last_30days;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].timestamp_ms, start);
    assert_eq!(counts(&h[0]), vec![(S, 1)]);
}

#[test]
fn nominal_periods_of_every_schedule_kind() {
    let tz = tokyo();
    // A Wednesday.
    let now = utc(at(tz, 2024, 6, 12, 15, 0));
    let p = |s: Option<v1::Schedule>| nominal_period_ms(s.as_ref(), now, &tz).unwrap();
    assert_eq!(p(days(2)), Some(48 * HOUR));
    assert_eq!(p(hours(6)), Some(6 * HOUR));
    assert_eq!(p(disabled()), None);
    assert_eq!(p(None), None);
    assert_eq!(p(Some(v1::Schedule::default())), None);
    assert_eq!(p(cron("*/15 * * * *")), Some(HOUR / 4));
    assert_eq!(p(cron("0 3 * * *")), Some(24 * HOUR));
    // Weekdays at 09:00: the 8 gaps after now include a weekend.
    assert_eq!(p(cron("0 9 * * 1-5")), Some(72 * HOUR));
    // 1st of the month: 30 days (June → July), then 31.
    assert_eq!(p(cron("0 0 1 * *")), Some(31 * 24 * HOUR));
    assert!(nominal_period_ms(cron("not a cron").as_ref(), now, &tz).is_err());
    assert!(nominal_period_ms(cron("0 0 30 2 *").as_ref(), now, &tz).is_err());

    let a = |s: Option<v1::Schedule>| allowed_staleness_ms(s.as_ref(), now, &tz).unwrap();
    assert_eq!(a(days(1)), 30 * HOUR);
    assert_eq!(a(hours(12)), 15 * HOUR);
    assert_eq!(a(cron("0 9 * * 1-5")), 90 * HOUR);
    assert_eq!(a(disabled()), 0);
    assert_eq!(a(hours(0)), 0);

    // A broken schedule disables overdue marking instead of failing.
    let cfg = config(&[("p1", "r1", cron("61 * * * *"))]);
    let now_ms = at(tz, 2024, 6, 30, 15, 0);
    let r = run(
        &cfg,
        &ops(&[backup("p1", S, at(tz, 2024, 6, 20, 10, 0))]),
        now_ms,
        tz,
    );
    assert!(overdue_days(plan(&r, "p1")).is_empty());
}

#[test]
fn a_repos_allowance_is_its_widest_plans() {
    let tz = tokyo();
    let now = at(tz, 2024, 6, 30, 15, 0);
    // r1: hourly and every-3-days plans → 90 h; r2 has no plans → 0.
    let cfg = config(&[("p1", "r1", hours(1)), ("p2", "r1", days(3))]);
    let r = run(
        &cfg,
        &ops(&[backup("p1", S, at(tz, 2024, 6, 27, 12, 0))]),
        now,
        tz,
    );
    // 28th: 36 h at its end; 29th: 60 h; 30th: 75 h (≤ 90 h) → none for r1.
    assert!(overdue_days(repo(&r, "r1")).is_empty());
    // p1 (1.25 h) is overdue every day after the 27th.
    assert_eq!(overdue_days(plan(&r, "p1")), vec![1, 2, 3]);
}

#[tokio::test]
async fn the_oplog_is_read_newest_first_through_the_slim_decoder() {
    let dir = tempfile::tempdir().unwrap();
    let oplog = OpLog::open(&dir.path().join("oplog.sqlite")).await.unwrap();
    let tz = tokyo();
    let now = at(tz, 2024, 6, 30, 15, 0);
    let cfg = config(&[("p1", "r1", days(1)), ("p2", "r1", hours(4))]);
    let mut all = vec![
        backup("p1", S, now - 30 * HOUR).summary(100, 10).op,
        backup("p1", P, now + 3 * HOUR).op,
        backup("p1", P, now + HOUR).op,
        backup("p1", W, now - 2 * HOUR).summary(200, 20).op,
        backup("p2", E, now - 50 * HOUR).op,
        backup("p1", S, now - 40 * 24 * HOUR).op,
        index("p1", GUID_1, ME, "s1", false),
        index("p1", GUID_1, ME, "s2", true),
    ];
    // Synced from a peer: ignored, even though it names this instance.
    let mut synced = backup("p1", S, now - HOUR).summary(999, 999).op;
    synced.original_instance_keyid = "ed25519.peer".into();
    all.push(synced);
    // Same start time: the higher id is newer.
    all.push(backup("p2", S, now - 50 * HOUR).op);
    let added = oplog.add(all.clone()).await.unwrap();

    let got = from_oplog(&oplog, &cfg, utc(now), tz).await.unwrap();
    let local: Vec<v1::Operation> = added
        .into_iter()
        .filter(|o| o.original_instance_keyid.is_empty())
        .collect();
    assert_eq!(got, run(&cfg, &local, now, tz));
    let p1 = plan(&got, "p1");
    assert_eq!(p1.next_backup_time_ms, now + HOUR);
    assert_eq!(p1.bytes_scanned_last_30days, 300);
    assert_eq!(p1.total_snapshots, 1);
    assert_eq!(p1.history_last_30days.len(), 30);
    let p2 = plan(&got, "p2");
    assert_eq!(p2.recent_backups.as_ref().unwrap().status, vec![S, E]);
    oplog.close().await;
}
