use std::path::{Path, PathBuf};

use prost::Message;
use sqlx::{Connection, SqliteConnection};

use super::*;
use crate::api::operations::list_operations;
use crate::connect::Code;
use crate::pb::v1::{OpSelector, Operation, OperationStatus, operation};

const SNAP: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn op(plan: &str, start: i64) -> Operation {
    Operation {
        repo_id: "repo1".into(),
        repo_guid: "guid1".into(),
        plan_id: plan.into(),
        instance_id: "inst1".into(),
        unix_time_start_ms: start,
        status: OperationStatus::StatusSuccess as i32,
        op: Some(operation::Op::OperationBackup(Default::default())),
        ..Default::default()
    }
}

async fn open_temp() -> (tempfile::TempDir, PathBuf, OpLog) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oplog.sqlite");
    let log = OpLog::open(&path).await.unwrap();
    (dir, path, log)
}

#[tokio::test]
async fn add_assigns_sequential_ids_modnos_and_flows() {
    let (_dir, _path, log) = open_temp().await;
    let added = log.add(vec![op("a", 10), op("b", 20)]).await.unwrap();
    assert_eq!(
        added
            .iter()
            .map(|o| (o.id, o.modno, o.flow_id))
            .collect::<Vec<_>>(),
        [(1, 1, 1), (2, 2, 2)]
    );

    let mut with_flow = op("c", 30);
    with_flow.flow_id = 1;
    let added = log.add(vec![with_flow]).await.unwrap();
    assert_eq!((added[0].id, added[0].modno, added[0].flow_id), (3, 3, 1));

    // Update takes the next modno; the id and flow stay.
    let mut changed = added[0].clone();
    changed.status = OperationStatus::StatusError as i32;
    let updated = log.update(vec![changed]).await.unwrap();
    assert_eq!(
        (updated[0].id, updated[0].modno, updated[0].flow_id),
        (3, 4, 1)
    );
    assert_eq!(log.get(3).await.unwrap().unwrap(), updated[0]);
    assert_eq!(log.get(99).await.unwrap(), None);
    assert_eq!(log.last_id_and_modno().await, (3, 4));
}

#[tokio::test]
async fn add_rejects_preset_ids_and_invalid_operations_without_writing() {
    let (_dir, _path, log) = open_temp().await;
    let mut preset = op("a", 1);
    preset.id = 5;
    assert!(matches!(
        log.add(vec![preset]).await,
        Err(OpLogError::Invalid(_))
    ));
    let mut preset = op("a", 1);
    preset.modno = 5;
    assert!(matches!(
        log.add(vec![preset]).await,
        Err(OpLogError::Invalid(_))
    ));

    type Breaks = fn(&mut Operation);
    let cases: [(Breaks, &str); 6] = [
        (|o| o.plan_id.clear(), "plan_id is required"),
        (|o| o.repo_id.clear(), "repo_id is required"),
        (|o| o.repo_guid.clear(), "repo_guid is required"),
        (|o| o.instance_id.clear(), "instance_id is required"),
        (
            |o| o.unix_time_start_ms = 0,
            "unix_time_start_ms must be non-zero",
        ),
        (
            |o| o.snapshot_id = "abc".into(),
            "operation.snapshot_id is invalid",
        ),
    ];
    for (breaks, message) in cases {
        let mut bad = op("a", 1);
        breaks(&mut bad);
        // A valid op in the same call is not stored either.
        match log.add(vec![op("ok", 1), bad]).await {
            Err(OpLogError::Invalid(m)) => assert!(m.starts_with(message), "{m:?} vs {message:?}"),
            other => panic!("{other:?}"),
        }
    }
    assert!(log.query(&Query::all()).await.unwrap().is_empty());
    let mut good = op("a", 1);
    good.snapshot_id = SNAP.into();
    assert_eq!(
        log.add(vec![good]).await.unwrap()[0].id,
        1,
        "rejected adds use up no ids"
    );
}

#[tokio::test]
async fn update_of_a_missing_operation_fails_and_changes_nothing() {
    let (_dir, _path, log) = open_temp().await;
    let added = log.add(vec![op("a", 1)]).await.unwrap();
    let mut changed = added[0].clone();
    changed.display_message = "changed".into();
    let mut missing = op("a", 1);
    missing.id = 99;
    missing.flow_id = 99;
    match log.update(vec![changed, missing]).await {
        Err(OpLogError::NotFound(m)) => {
            assert_eq!(m, "couldn't update 99: operation does not exist")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(log.get(added[0].id).await.unwrap().unwrap(), added[0]);
    let no_id = op("a", 1);
    assert!(matches!(
        log.update(vec![no_id]).await,
        Err(OpLogError::Invalid(_))
    ));
}

#[tokio::test]
async fn delete_returns_the_operations_and_a_missing_id_deletes_nothing() {
    let (_dir, _path, log) = open_temp().await;
    let added = log
        .add(vec![op("a", 1), op("b", 2), op("c", 3)])
        .await
        .unwrap();
    match log.delete(&[1, 999, 2]).await {
        Err(OpLogError::NotFound(m)) => {
            assert!(
                m.starts_with("couldn't find all operations to delete: operation does not exist"),
                "{m}"
            );
            assert!(m.contains("999"), "{m}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(log.query(&Query::all()).await.unwrap().len(), 3);

    let deleted = log.delete(&[2, 1, 2]).await.unwrap();
    assert_eq!(deleted, added[..2]);
    assert_eq!(log.get(1).await.unwrap(), None);
    assert_eq!(log.query(&Query::all()).await.unwrap(), added[2..]);
    assert!(log.delete(&[]).await.unwrap().is_empty());
}

#[tokio::test]
async fn every_subscriber_gets_created_updated_deleted_events() {
    let (_dir, _path, log) = open_temp().await;
    let mut a = log.subscribe();
    let mut b = log.subscribe();
    let added = log.add(vec![op("a", 1), op("b", 2)]).await.unwrap();
    let updated = log.update(vec![added[0].clone()]).await.unwrap();
    log.delete(&[added[1].id]).await.unwrap();
    // A transform is silent.
    log.transform(&Query::all(), Some).await.unwrap();
    log.add(vec![op("c", 3)]).await.unwrap();
    for rx in [&mut a, &mut b] {
        assert_eq!(rx.recv().await.unwrap(), OpEvent::Created(added.clone()));
        assert_eq!(rx.recv().await.unwrap(), OpEvent::Updated(updated.clone()));
        assert_eq!(
            rx.recv().await.unwrap(),
            OpEvent::Deleted(vec![added[1].id])
        );
        assert!(matches!(rx.recv().await.unwrap(), OpEvent::Created(ops) if ops[0].plan_id == "c"));
        assert!(rx.is_empty());
    }
}

#[tokio::test]
async fn concurrent_adds_get_distinct_ids_and_events_in_commit_order() {
    let (_dir, _path, log) = open_temp().await;
    let mut rx = log.subscribe();
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let log = log.clone();
            tokio::spawn(async move { log.add(vec![op(&format!("p{i}"), i + 1)]).await.unwrap() })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let mut ids = Vec::new();
    while let Ok(OpEvent::Created(ops)) = rx.try_recv() {
        ids.push(ops[0].id);
    }
    assert_eq!(ids, (1..=20).collect::<Vec<_>>());
}

#[tokio::test]
async fn transform_rewrites_with_fresh_modnos_in_one_transaction() {
    let (_dir, _path, log) = open_temp().await;
    let mut pending = op("a", 1);
    pending.status = OperationStatus::StatusInprogress as i32;
    log.add(vec![pending, op("b", 2)]).await.unwrap();
    let n = log
        .transform(
            &Query::all().statuses([OperationStatus::StatusInprogress]),
            |mut o| {
                o.status = OperationStatus::StatusError as i32;
                o.display_message =
                    "Operation was incomplete when orchestrator was restarted.".into();
                Some(o)
            },
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let o = log.get(1).await.unwrap().unwrap();
    assert_eq!(
        (o.status, o.modno),
        (OperationStatus::StatusError as i32, 3)
    );
    assert!(
        log.query_by_status(&[OperationStatus::StatusInprogress])
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        log.query_by_status(&[OperationStatus::StatusError])
            .await
            .unwrap()
            .len(),
        1
    );

    // A failing transform changes nothing.
    let err = log
        .transform(&Query::all(), |mut o| {
            if o.id == 2 {
                o.plan_id.clear();
            } else {
                o.display_message = "x".into();
            }
            Some(o)
        })
        .await;
    assert!(matches!(err, Err(OpLogError::Invalid(_))));
    assert_eq!(log.get(1).await.unwrap().unwrap(), o);
}

/// ~50 operations varying every selectable field, including ties on start
/// time, empty strings and synced (peer) operations.
async fn seed(log: &OpLog) -> Vec<Operation> {
    let mut ops = Vec::new();
    for i in 0..50i64 {
        let mut o = op(
            ["plan-a", "plan-b", "_system_"][(i % 3) as usize],
            1_000 + (i * 7) % 13,
        );
        o.instance_id = ["inst1", "inst2"][(i % 2) as usize].into();
        o.repo_guid =
            ["guid1", "guid2", "guid3"][(i % 3 == 0) as usize + (i % 5 == 0) as usize].into();
        o.original_instance_keyid = if i % 4 == 0 {
            "peer-key".into()
        } else {
            String::new()
        };
        if i % 6 == 0 {
            o.snapshot_id = format!("{:0>64}", i);
        }
        if i >= 10 && i % 10 < 3 {
            o.flow_id = i - i % 10 + 1; // small flows of 3
        }
        ops.push(o);
    }
    let mut stored = Vec::new();
    for chunk in ops.chunks(7) {
        stored.extend(log.add(chunk.to_vec()).await.unwrap());
    }
    // Some updates so that modnos differ from ids.
    let touched: Vec<Operation> = stored.iter().filter(|o| o.id % 5 == 0).cloned().collect();
    for o in log.update(touched).await.unwrap() {
        let index = (o.id - 1) as usize;
        stored[index] = o;
    }
    stored
}

/// What GetOperations must return, computed directly.
fn expected(all: &[Operation], keep: impl Fn(&Operation) -> bool, last_n: i64) -> Vec<Operation> {
    let mut v: Vec<Operation> = all.iter().filter(|o| keep(o)).cloned().collect();
    if last_n != 0 {
        v.sort_by_key(|o| std::cmp::Reverse((o.unix_time_start_ms, o.id)));
        if last_n > 0 {
            v.truncate(last_n as usize);
        }
    }
    v.sort_by_key(|o| o.id);
    v
}

#[tokio::test]
async fn every_selector_field_and_last_n() {
    let (_dir, _path, log) = open_temp().await;
    let all = seed(&log).await;
    let s = |f: fn(&mut OpSelector)| {
        let mut sel = OpSelector::default();
        f(&mut sel);
        sel
    };
    type Keep = Box<dyn Fn(&Operation) -> bool>;
    let cases: Vec<(OpSelector, Keep)> = vec![
        (OpSelector::default(), Box::new(|_| true)),
        (
            s(|x| x.instance_id = Some("inst2".into())),
            Box::new(|o| o.instance_id == "inst2"),
        ),
        (
            s(|x| x.instance_id = Some("nope".into())),
            Box::new(|_| false),
        ),
        (
            s(|x| x.original_instance_keyid = Some(String::new())),
            Box::new(|o| o.original_instance_keyid.is_empty()),
        ),
        (
            s(|x| x.original_instance_keyid = Some("peer-key".into())),
            Box::new(|o| o.original_instance_keyid == "peer-key"),
        ),
        (
            s(|x| x.repo_guid = Some("guid2".into())),
            Box::new(|o| o.repo_guid == "guid2"),
        ),
        (
            s(|x| x.plan_id = Some("_system_".into())),
            Box::new(|o| o.plan_id == "_system_"),
        ),
        (
            s(|x| x.snapshot_id = Some(format!("{:0>64}", 12))),
            Box::new(|o| o.snapshot_id == format!("{:0>64}", 12)),
        ),
        (
            s(|x| x.snapshot_id = Some(String::new())),
            Box::new(|o| o.snapshot_id.is_empty()),
        ),
        (s(|x| x.flow_id = Some(21)), Box::new(|o| o.flow_id == 21)),
        (s(|x| x.modno_gte = Some(45)), Box::new(|o| o.modno >= 45)),
        (
            s(|x| x.ids = vec![3, 17, 42, 1000]),
            Box::new(|o| [3, 17, 42].contains(&o.id)),
        ),
        (
            s(|x| {
                x.plan_id = Some("plan-a".into());
                x.instance_id = Some("inst1".into());
                x.original_instance_keyid = Some(String::new());
            }),
            Box::new(|o| {
                o.plan_id == "plan-a"
                    && o.instance_id == "inst1"
                    && o.original_instance_keyid.is_empty()
            }),
        ),
    ];
    for (sel, keep) in &cases {
        for last_n in [0, 1, 5, 1000, -1] {
            let got = list_operations(&log, Some(sel), last_n).await.unwrap();
            let want = expected(&all, keep, last_n);
            assert_eq!(
                got.iter().map(|o| o.id).collect::<Vec<_>>(),
                want.iter().map(|o| o.id).collect::<Vec<_>>(),
                "selector {sel:?}, last_n {last_n}"
            );
            assert_eq!(got, want);
        }
    }
    // No selector at all = everything.
    assert_eq!(list_operations(&log, None, 0).await.unwrap(), all);
    // The oplog's own order: start time, then id; reversed for last_n.
    let newest = log.query(&Query::all().last_n(3)).await.unwrap();
    let mut by_start = all.clone();
    by_start.sort_by_key(|o| std::cmp::Reverse((o.unix_time_start_ms, o.id)));
    assert_eq!(newest, by_start[..3]);
    assert_eq!(
        log.count(&Query::all().plan_id("plan-b").limit(1))
            .await
            .unwrap(),
        17
    );
}

#[tokio::test]
async fn ids_cannot_be_combined_with_other_selector_fields() {
    let (_dir, _path, log) = open_temp().await;
    log.add(vec![op("a", 1)]).await.unwrap();
    let sel = OpSelector {
        ids: vec![1],
        plan_id: Some("a".into()),
        ..Default::default()
    };
    assert!(
        matches!(Query::from_selector(&sel), Err(OpLogError::Invalid(m)) if m == IDS_AND_QUERY)
    );
    let err = list_operations(&log, Some(&sel), 0).await.unwrap_err();
    assert_eq!(err.code, Code::InvalidArgument);
    assert!(
        err.message.contains("cannot specify both query and ids"),
        "{}",
        err.message
    );
    // An explicitly empty string counts as set, too.
    let sel = OpSelector {
        ids: vec![1],
        original_instance_keyid: Some(String::new()),
        ..Default::default()
    };
    assert!(Query::from_selector(&sel).is_err());
    let sel = OpSelector {
        ids: vec![1],
        ..Default::default()
    };
    assert_eq!(Query::from_selector(&sel).unwrap(), Query::all().ids([1]));
}

#[tokio::test]
async fn reopening_keeps_data_and_never_reuses_ids() {
    let (_dir, path, log) = open_temp().await;
    let added = log
        .add(vec![op("a", 1), op("b", 2), op("c", 3)])
        .await
        .unwrap();
    log.update(vec![added[0].clone()]).await.unwrap(); // modno 4
    log.delete(&[3]).await.unwrap();
    log.close().await;
    drop(log);

    let log = OpLog::open(&path).await.unwrap();
    assert_eq!(log.query(&Query::all()).await.unwrap().len(), 2);
    let next = log.add(vec![op("d", 4)]).await.unwrap();
    assert_eq!(
        (next[0].id, next[0].modno),
        (4, 5),
        "id 3 was used before, even though deleted"
    );
    log.close().await;
}

#[tokio::test]
async fn a_new_log_has_backrests_version_markers() {
    let (_dir, path, log) = open_temp().await;
    log.close().await;
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let v: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, 6);
    let blob: Vec<u8> =
        sqlx::query_scalar("SELECT value FROM oplog_metadata WHERE key = 'version'")
            .fetch_one(&mut conn)
            .await
            .unwrap();
    assert_eq!(blob, 6u64.to_le_bytes());
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(mode, "wal");
}

/// Backrest's own DDL (internal/oplog/sqlitestore/migrations.go at schema 6,
/// plus its kvstore table), as Backrest creates it.
const BACKREST_DDL: &str = r#"
PRAGMA user_version = 6;
CREATE TABLE operations (
	id INTEGER PRIMARY KEY AUTOINCREMENT,
	ogid INTEGER NOT NULL,
	original_id INTEGER NOT NULL,
	original_flow_id INTEGER NOT NULL,
	modno INTEGER NOT NULL,
	flow_id INTEGER NOT NULL,
	start_time_ms INTEGER NOT NULL,
	status INTEGER NOT NULL,
	snapshot_id STRING NOT NULL,
	operation BLOB NOT NULL,
	FOREIGN KEY (ogid) REFERENCES operation_groups (ogid)
);
CREATE INDEX operation_ogid ON operations (ogid);
CREATE INDEX operation_snapshot_id ON operations (snapshot_id);
CREATE INDEX operation_flow_id ON operations (flow_id);
CREATE INDEX operation_start_time_ms ON operations (start_time_ms);
CREATE INDEX operation_original_id ON operations (ogid, original_id);
CREATE INDEX operation_original_flow_id ON operations (ogid, original_flow_id);
CREATE INDEX operation_modno ON operations (modno);
CREATE TABLE operation_groups (
	ogid INTEGER PRIMARY KEY AUTOINCREMENT,
	instance_id STRING NOT NULL,
	original_instance_keyid STRING NOT NULL,
	repo_guid STRING NOT NULL,
	repo_id STRING NOT NULL,
	plan_id STRING NOT NULL
);
CREATE INDEX group_repo_instance ON operation_groups (repo_id, instance_id);
CREATE INDEX group_repo_guid ON operation_groups (repo_guid);
CREATE INDEX group_instance ON operation_groups (instance_id);
CREATE TABLE IF NOT EXISTS oplog_metadata (
	key TEXT PRIMARY KEY,
	value BLOB
);
CREATE INDEX IF NOT EXISTS oplog_metadata_key_idx ON oplog_metadata (key);
"#;

async fn backrest_db(path: &Path, user_version: i64, data_version: u64) -> Operation {
    let mut conn = SqliteConnection::connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(BACKREST_DDL)
        .execute(&mut conn)
        .await
        .unwrap();
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "PRAGMA user_version = {user_version}"
    )))
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query("INSERT INTO oplog_metadata (key, value) VALUES ('version', ?)")
        .bind(data_version.to_le_bytes().to_vec())
        .execute(&mut conn)
        .await
        .unwrap();
    let mut stored = op("backrest-plan", 1_700_000_000_000);
    stored.id = 41;
    stored.modno = 77;
    stored.flow_id = 40;
    stored.snapshot_id = SNAP.into();
    stored.logref = "t-1234".into();
    stored.display_message = "written by Backrest".into();
    sqlx::query(
        "INSERT INTO operation_groups (ogid, instance_id, original_instance_keyid, repo_guid, repo_id, plan_id)
         VALUES (3, ?, '', ?, ?, ?)",
    )
    .bind(&stored.instance_id)
    .bind(&stored.repo_guid)
    .bind(&stored.repo_id)
    .bind(&stored.plan_id)
    .execute(&mut conn)
    .await
    .unwrap();
    sqlx::query(
        "INSERT INTO operations (id, ogid, original_id, original_flow_id, modno, flow_id, start_time_ms, status, snapshot_id, operation)
         VALUES (?, 3, 0, 0, ?, ?, ?, ?, ?, ?)",
    )
    .bind(stored.id)
    .bind(stored.modno)
    .bind(stored.flow_id)
    .bind(stored.unix_time_start_ms)
    .bind(stored.status)
    .bind(&stored.snapshot_id)
    .bind(stored.encode_to_vec())
    .execute(&mut conn)
    .await
    .unwrap();
    conn.close().await.unwrap();
    stored
}

#[tokio::test]
async fn opens_a_log_written_by_backrest() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oplog.sqlite");
    let stored = backrest_db(&path, 6, 6).await;

    let log = OpLog::open(&path).await.unwrap();
    assert_eq!(log.get(41).await.unwrap().unwrap(), stored);
    let found = log
        .query(
            &Query::all()
                .plan_id("backrest-plan")
                .original_instance_keyid(""),
        )
        .await
        .unwrap();
    assert_eq!(found, std::slice::from_ref(&stored));
    assert_eq!(
        log.query(&Query::all().snapshot_id(SNAP)).await.unwrap(),
        std::slice::from_ref(&stored)
    );
    // Counters continue from the file; the existing group is reused.
    let next = log.add(vec![op("backrest-plan", 5)]).await.unwrap();
    assert_eq!((next[0].id, next[0].modno), (42, 78));
    let mut same_group = stored.clone();
    same_group.snapshot_id.clear();
    same_group.id = 0;
    same_group.modno = 0;
    let third = log.add(vec![same_group]).await.unwrap();
    log.close().await;

    let mut conn = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let ogid: i64 = sqlx::query_scalar("SELECT ogid FROM operations WHERE id = ?")
        .bind(third[0].id)
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(ogid, 3);
    let v: i64 = sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(v, 6);
    // Our one extra index is there; Backrest's schema is otherwise untouched.
    let indexes: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'operations' \
         AND sql IS NOT NULL ORDER BY name",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap();
    assert_eq!(
        indexes,
        [
            "backrest_rs_operation_group_start_time",
            "operation_flow_id",
            "operation_modno",
            "operation_ogid",
            "operation_original_flow_id",
            "operation_original_id",
            "operation_snapshot_id",
            "operation_start_time_ms",
        ]
    );
}

#[tokio::test]
async fn refuses_other_schema_or_data_versions() {
    let dir = tempfile::tempdir().unwrap();
    let old_schema = dir.path().join("old.sqlite");
    backrest_db(&old_schema, 5, 6).await;
    let err = OpLog::open(&old_schema).await.err().unwrap().to_string();
    assert!(err.contains("schema version 5"), "{err}");

    let new_data = dir.path().join("new.sqlite");
    backrest_db(&new_data, 6, 7).await;
    let err = OpLog::open(&new_data).await.err().unwrap().to_string();
    assert!(err.contains("data version 7"), "{err}");
}

/// Set in the child process of `survives_kill_9`: where to write.
const KILL9_ENV: &str = "BACKREST_RS_TEST_KILL9_OPLOG";

/// Not a test on its own: in the child process started by
/// `survives_kill_9` it writes, then kills itself mid-flight.
#[tokio::test]
async fn kill9_child() {
    let Some(path) = std::env::var_os(KILL9_ENV) else {
        return;
    };
    let log = OpLog::open(Path::new(&path)).await.unwrap();
    for i in 0..10 {
        log.add(vec![op(&format!("p{i}"), i + 1)]).await.unwrap();
    }
    let added = log.get(10).await.unwrap().unwrap();
    log.update(vec![added]).await.unwrap();
    // SAFETY: signals our own process.
    unsafe { libc::kill(libc::getpid(), libc::SIGKILL) };
    unreachable!("killed");
}

#[tokio::test]
async fn survives_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("oplog.sqlite");
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "oplog::tests::kill9_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(KILL9_ENV, &path)
        .stdout(std::process::Stdio::null())
        .status()
        .unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");

    let log = OpLog::open(&path).await.unwrap();
    let all = log.query(&Query::all()).await.unwrap();
    assert_eq!(all.len(), 10);
    assert_eq!(all[9].modno, 11, "the update was committed too");
    assert_eq!(log.add(vec![op("after", 1)]).await.unwrap()[0].id, 11);
}

/// The plans SQLite makes for the packed reads (`Query::packed_sql`). Without
/// `ANALYZE` statistics they don't depend on the data, so a small log shows
/// what a large one gets. Every shape must be driven by an index that finds
/// its rows, never by a walk over the whole log testing each row.
#[tokio::test]
async fn query_plans_use_an_index_for_every_selector_shape() {
    use query::Groups;
    let (_dir, _path, log) = open_temp().await;
    seed(&log).await;
    let mut conn = log.inner.pool.acquire().await.unwrap();
    const GROUP_INDEX: &str = "backrest_rs_operation_group_start_time";
    let covering_group = format!("COVERING INDEX {GROUP_INDEX} (ogid=?)");
    let group = format!("INDEX {GROUP_INDEX} (ogid=?)");
    let one = [1i64];
    let two = [1i64, 2];
    // (query, groups, what the plan must contain, what it must not)
    let cases: Vec<(Query, Groups, Vec<&str>, Vec<&str>)> = vec![
        // One plan's latest N: the group index, already in order, no sort.
        (
            Query::all().plan_id("p").last_n(1000),
            Groups::Only(&one),
            vec![covering_group.as_str()],
            vec!["TEMP B-TREE", "SCAN operations"],
        ),
        // The same with a status filter: still walks the group in order.
        (
            Query::all()
                .plan_id("p")
                .statuses([OperationStatus::StatusError])
                .last_n(1000),
            Groups::Only(&one),
            vec![group.as_str()],
            vec!["TEMP B-TREE", "SCAN operations"],
        ),
        // A repo's latest N (several groups): the group index, then a sort
        // of the matching ids only.
        (
            Query::all().repo_guid("r").last_n(1000),
            Groups::Only(&two),
            vec![covering_group.as_str()],
            vec!["SCAN operations"],
        ),
        // Everything, latest N: the start-time index from the end.
        (
            Query::all().last_n(1000),
            Groups::Any,
            vec!["SCAN operations USING COVERING INDEX operation_start_time_ms"],
            vec!["TEMP B-TREE"],
        ),
        (
            Query::all().flow_id(5).last_n(10),
            Groups::Any,
            vec!["INDEX operation_flow_id (flow_id=?)"],
            vec!["SCAN operations"],
        ),
        (
            Query::all().snapshot_id(SNAP).last_n(10),
            Groups::Any,
            vec!["INDEX operation_snapshot_id (snapshot_id=?)"],
            vec!["SCAN operations"],
        ),
        (
            Query::all().modno_gte(40).last_n(10),
            Groups::Any,
            vec!["INDEX operation_modno (modno>?)"],
            vec!["SCAN operations"],
        ),
        (
            Query::all().ids([1, 2]).last_n(10),
            Groups::Any,
            vec!["INTEGER PRIMARY KEY (rowid=?)"],
            vec!["SCAN operations"],
        ),
        // Without lastN: the rows of the groups, no sort in SQL at all.
        (
            Query::all().plan_id("p"),
            Groups::Only(&one),
            vec![group.as_str()],
            vec!["TEMP B-TREE", "SCAN operations"],
        ),
        (
            Query::all().repo_guid("r"),
            Groups::Only(&two),
            vec![group.as_str()],
            vec!["TEMP B-TREE", "SCAN operations"],
        ),
        (
            Query::all().flow_id(5),
            Groups::Any,
            vec!["INDEX operation_flow_id (flow_id=?)"],
            vec!["TEMP B-TREE", "SCAN operations"],
        ),
        // Everything: one pass over the table in rowid order.
        (
            Query::all(),
            Groups::Any,
            vec!["SCAN operations"],
            vec!["TEMP B-TREE"],
        ),
    ];
    for (q, groups, mut must, must_not) in cases {
        if q.is_limited() {
            // Then only the picked rows are read, by id.
            must.push("SEARCH operations USING INTEGER PRIMARY KEY (rowid=?)");
        }
        let sql = q.packed_sql(groups).sql().as_str().to_string();
        // Unbound parameters are NULL; the plan doesn't depend on them.
        let rows: Vec<(i64, i64, i64, String)> =
            sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
                .fetch_all(&mut *conn)
                .await
                .unwrap();
        let plan = rows
            .iter()
            .map(|r| r.3.as_str())
            .collect::<Vec<_>>()
            .join(" | ");
        for want in must {
            assert!(
                plan.contains(want),
                "{q:?}\n{sql}\nplan: {plan}\nwants: {want}"
            );
        }
        for unwanted in must_not {
            assert!(
                !plan.contains(unwanted),
                "{q:?}\n{sql}\nplan: {plan}\nmust not: {unwanted}"
            );
        }
    }
}

/// Operations come back byte for byte through the packed read, whatever
/// bytes their encoding holds (NUL, bytes that aren't UTF-8), with and
/// without a limit, and empty selections are empty.
#[tokio::test]
async fn packed_reads_return_operations_byte_for_byte() {
    let (_dir, _path, log) = open_temp().await;
    let mut ops = Vec::new();
    for (i, message) in ["\0", "\u{ff}\u{0}\u{1F600}", "", "plain"]
        .iter()
        .enumerate()
    {
        let mut o = op("plan", i64::MAX - i as i64);
        o.display_message = (*message).into();
        o.unix_time_end_ms = -1;
        ops.push(o);
    }
    let added = log.add(ops).await.unwrap();
    assert!(added.iter().any(|o| o.encode_to_vec().contains(&0)));
    let mut newest_first = added.clone();
    newest_first.sort_by_key(|o| std::cmp::Reverse((o.unix_time_start_ms, o.id)));
    assert_eq!(
        log.query(&Query::all()).await.unwrap(),
        newest_first.iter().rev().cloned().collect::<Vec<_>>()
    );
    assert_eq!(
        log.query(&Query::all().plan_id("plan").last_n(2))
            .await
            .unwrap(),
        newest_first[..2]
    );
    assert_eq!(
        log.query(&Query::all().last_n(-1)).await.unwrap(),
        newest_first
    );
    let page = Query {
        offset: Some(1),
        ..Query::all().plan_id("plan").last_n(2)
    };
    assert_eq!(log.query(&page).await.unwrap(), newest_first[1..3]);
    assert!(
        log.query(&Query::all().plan_id("none"))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        log.query(&Query::all().flow_id(12345).last_n(3))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        log.count(&Query::all().plan_id("plan").limit(1))
            .await
            .unwrap(),
        4
    );
    assert_eq!(log.count(&Query::all().plan_id("none")).await.unwrap(), 0);
}

/// A transaction that fails after creating a group must not leave that group
/// remembered: the next write to it (which skips the lookup when the group
/// is known) would point at a row that was rolled back.
#[tokio::test]
async fn a_rolled_back_group_is_not_remembered() {
    let (_dir, path, log) = open_temp().await;
    log.add(vec![op("old", 1)]).await.unwrap();
    let mut other = SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TRIGGER refuse BEFORE INSERT ON operations WHEN NEW.start_time_ms = 666
         BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
    )
    .execute(&mut other)
    .await
    .unwrap();
    // A new group, then a row the trigger refuses: all rolled back.
    let err = log
        .add(vec![op("new", 5), op("old", 666)])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused by test"), "{err}");
    sqlx::raw_sql("DROP TRIGGER refuse")
        .execute(&mut other)
        .await
        .unwrap();
    other.close().await.unwrap();

    let added = log.add(vec![op("new", 6)]).await.unwrap();
    assert_eq!(
        log.query(&Query::all().plan_id("new")).await.unwrap(),
        added
    );
    // Single updates take the one-statement path too.
    let mut changed = added[0].clone();
    changed.display_message = "changed".into();
    let updated = log.update(vec![changed]).await.unwrap();
    assert_eq!(
        log.query(&Query::all().plan_id("new")).await.unwrap(),
        updated
    );
    let mut missing = updated[0].clone();
    missing.id = 999;
    assert!(matches!(
        log.update(vec![missing]).await,
        Err(OpLogError::NotFound(_))
    ));
}

#[tokio::test]
async fn writes_after_close_fail_cleanly() {
    let (_dir, _path, log) = open_temp().await;
    log.add(vec![op("a", 1)]).await.unwrap();
    log.close().await;
    assert!(matches!(
        log.add(vec![op("a", 2)]).await,
        Err(OpLogError::Db(_))
    ));
    assert!(matches!(log.delete(&[1]).await, Err(OpLogError::Db(_))));
    assert!(log.query(&Query::all()).await.is_err());
}

/// Writes leave checkpoints to a background task: after every batch of
/// writes it copies the WAL into the database file, so that with pauses
/// between writes the WAL file starts over and stays small (without the task
/// 1,000 writes grow it to ~40 MB).
#[tokio::test]
async fn background_checkpoints_keep_the_wal_small() {
    let (_dir, path, log) = open_temp().await;
    for round in 0..10 {
        let done = log.inner.checkpoints.done();
        for i in 0..checkpoint::OPS_PER_CHECKPOINT as i64 {
            log.add(vec![op("a", round * 1000 + i + 1)]).await.unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while log.inner.checkpoints.done() == done {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint ran in round {round}"
            );
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    }
    let wal = std::fs::metadata(format!("{}-wal", path.display()))
        .unwrap()
        .len();
    assert!(wal < 12 << 20, "WAL file is {wal} bytes");
    assert_eq!(log.count(&Query::all()).await.unwrap(), 1000);
}

/// Back-to-back writes leave the background checkpoints no pause in which
/// the WAL could start over; the writer's own checkpoint bounds it then
/// (6,000 writes would otherwise make ~240 MB). On a loaded machine the
/// writer's checkpoint can find the background one still running and skip a
/// turn, so the bound allows two rounds of the limit (~100 MB).
#[tokio::test]
async fn the_wal_stays_bounded_under_back_to_back_writes() {
    let (_dir, path, log) = open_temp().await;
    for i in 0..6000 {
        log.add(vec![op("a", i + 1)]).await.unwrap();
    }
    let wal = std::fs::metadata(format!("{}-wal", path.display()))
        .unwrap()
        .len();
    let limit = 2 * (checkpoint::WAL_PAGES_LIMIT as u64 + 2000) * 4120;
    assert!(wal < limit, "WAL file is {wal} bytes, limit {limit}");
    assert_eq!(log.count(&Query::all()).await.unwrap(), 6000);
}

/// A large selection is decoded on several threads; the result is the same
/// operations in the same order.
#[tokio::test]
async fn large_reads_keep_their_order() {
    let (_dir, _path, log) = open_temp().await;
    let ops: Vec<Operation> = (0..9000).map(|i| op("p", 1 + (i * 7919) % 5000)).collect();
    let added = log.add(ops).await.unwrap();
    let mut want = added.clone();
    want.sort_by_key(|o| (o.unix_time_start_ms, o.id));
    assert_eq!(log.query(&Query::all()).await.unwrap(), want);
    want.reverse();
    assert_eq!(
        log.query(&Query::all().plan_id("p").last_n(8500))
            .await
            .unwrap(),
        want[..8500]
    );
}
