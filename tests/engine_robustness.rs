//! Engine robustness with the real binary and the real restic (temp dirs):
//! cancelling a running and a queued backup, a Backup caller that goes away,
//! kill -9 of the server mid-backup and restart (interrupted and never-started
//! operations, stale restic locks, the post-crash unlock), SIGTERM mid-backup,
//! parallel-across-repos / serial-per-repo scheduling (and
//! `-max-parallel-tasks 1`), and the operation log surviving kill -9.
//!
//! The heavy tests of this file (hundreds of MB through restic, timings) run
//! one at a time: the machine may have 2 cores.
#![allow(clippy::await_holding_lock)]

mod common;

use std::collections::BTreeMap;
use std::io::Read;
use std::path::Path;
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use backrest_rs::oplog::{OpLog, Query};
use backrest_rs::pb::{types, v1};
use common::*;
use serde_json::{Value, json};

const RESTIC: &str = "/usr/bin/restic";
const PASSWORD: &str = "pw";
const MB: u64 = 1_000_000;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

static HEAVY: Mutex<()> = Mutex::new(());

/// Tests that move hundreds of MB through restic (and measure timings) take
/// this lock, so only one runs at a time; the light ones (rate-limited
/// uploads, small data) run beside them. A failed test doesn't poison it.
fn heavy() -> MutexGuard<'static, ()> {
    HEAVY.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` files of `each` random (incompressible) bytes in `dir`.
fn random_files(dir: &Path, n: usize, each: u64) {
    std::fs::create_dir_all(dir).unwrap();
    for i in 0..n {
        let mut src = std::fs::File::open("/dev/urandom").unwrap().take(each);
        let mut dst = std::fs::File::create(dir.join(format!("f{i:02}.bin"))).unwrap();
        std::io::copy(&mut src, &mut dst).unwrap();
    }
}

/// A unary JSON call with a long timeout, usable from spawned tasks (only
/// needs the base URL): (HTTP status, body).
async fn rpc(base: &str, method: &str, body: Value) -> (u16, Value) {
    let resp = reqwest::Client::builder()
        .timeout(Duration::from_secs(300))
        .build()
        .unwrap()
        .post(format!("{base}/v1.Backrest/{method}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap_or_else(|e| panic!("{method}: {e}"));
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let v = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, v)
}

async fn ok(base: &str, method: &str, body: Value) -> Value {
    let (status, v) = rpc(base, method, body).await;
    assert_eq!(status, 200, "{method} failed: {v}");
    v
}

/// An int64 from JSON (a string in proto3 JSON, absent when 0).
fn int(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap(),
        Value::Number(n) => n.as_i64().unwrap(),
        _ => 0,
    }
}

fn status(op: &Value) -> &str {
    op["status"].as_str().unwrap_or("STATUS_UNKNOWN")
}

fn message(op: &Value) -> &str {
    op["displayMessage"].as_str().unwrap_or("")
}

/// All operations (sorted by id).
async fn all_ops(base: &str) -> Vec<Value> {
    ok(base, "GetOperations", json!({})).await["operations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The backup operations of a plan, oldest first.
async fn backup_ops(base: &str, plan: &str) -> Vec<Value> {
    let v = ok(base, "GetOperations", json!({"selector": {"planId": plan}})).await;
    v["operations"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|o| o.get("operationBackup").is_some())
        .collect()
}

async fn op_by_id(base: &str, id: i64) -> Value {
    let v = ok(
        base,
        "GetOperations",
        json!({"selector": {"ids": [id.to_string()]}}),
    )
    .await;
    v["operations"][0].clone()
}

/// Polls `f` every 100 ms until it returns Some, or panics after `timeout`.
async fn wait_for<T, F, Fut>(what: &str, timeout: Duration, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The single backup operation of `plan` once it is INPROGRESS with some
/// bytes done. Panics if it finished first (the test would prove nothing).
async fn wait_backup_running(base: &str, plan: &str) -> Value {
    wait_for(
        &format!("the backup of {plan} to run and report progress"),
        Duration::from_secs(60),
        || async {
            let ops = backup_ops(base, plan).await;
            let op = ops.last()?.clone();
            match status(&op) {
                "STATUS_PENDING" => None,
                "STATUS_INPROGRESS" => {
                    let done = int(&op["operationBackup"]["lastStatus"]["status"]["bytesDone"]);
                    (done > 0).then_some(op)
                }
                other => panic!(
                    "the backup of {plan} ended ({other}) before the test could interrupt it: {op}"
                ),
            }
        },
    )
    .await
}

/// Waits until no operation is PENDING or INPROGRESS and the operation
/// count has been stable for a second (follow-up indexing done).
async fn wait_quiet(base: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut stable: Option<(usize, Instant)> = None;
    loop {
        let ops = all_ops(base).await;
        let busy = ops
            .iter()
            .any(|o| matches!(status(o), "STATUS_PENDING" | "STATUS_INPROGRESS"));
        if busy {
            stable = None;
        } else {
            match stable {
                Some((n, since)) if n == ops.len() => {
                    if since.elapsed() > Duration::from_millis(1200) {
                        return ops;
                    }
                }
                _ => stable = Some((ops.len(), Instant::now())),
            }
        }
        assert!(
            Instant::now() < deadline,
            "the server did not go idle within 60 s: {ops:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The instance id, repos (id, dir, auto_unlock) added with AddRepo, then plans
/// (id, repo, paths, backup_flags) with SetConfig.
async fn configure(
    base: &str,
    repos: &[(&str, &Path, bool)],
    plans: &[(&str, &str, Vec<&Path>, Vec<&str>)],
) {
    let mut cfg = ok(base, "GetConfig", json!({})).await;
    cfg["instance"] = json!("robust-host");
    ok(base, "SetConfig", cfg).await;
    for (id, dir, auto_unlock) in repos {
        ok(
            base,
            "AddRepo",
            json!({"repo": {"id": id, "uri": dir.display().to_string(), "password": PASSWORD, "autoUnlock": auto_unlock}}),
        )
        .await;
    }
    let mut cfg = ok(base, "GetConfig", json!({})).await;
    let plans: Vec<Value> = plans
        .iter()
        .map(|(id, repo, paths, flags)| {
            json!({"id": id, "repo": repo,
                   "paths": paths.iter().map(|p| p.display().to_string()).collect::<Vec<_>>(),
                   "backup_flags": flags})
        })
        .collect();
    cfg["plans"] = json!(plans);
    ok(base, "SetConfig", cfg).await;
}

/// The whole task log `logref` via GetLogs; the stream must end (a log whose
/// writer is gone must not be followed forever).
async fn read_log(s: &Server, logref: &str) -> String {
    assert!(!logref.is_empty(), "operation without a log");
    let payload = serde_json::to_vec(&json!({"ref": logref})).unwrap();
    let mut stream = StreamReader::open(s, "/v1.Backrest/GetLogs", true, payload).await;
    let mut bytes = Vec::new();
    loop {
        match stream.next(Duration::from_secs(10)).await {
            Some(Frame::Message(m)) => {
                let chunk: types::BytesValue = serde_json::from_slice(&m).unwrap();
                bytes.extend_from_slice(&chunk.value);
            }
            Some(Frame::End(v)) => {
                assert_eq!(v, json!({}), "GetLogs {logref} ended with an error");
                break;
            }
            None => panic!("GetLogs {logref}: stream ended without end-of-stream"),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

fn restic(repo: &Path, args: &[&str]) -> std::process::Output {
    Command::new(RESTIC)
        .arg("-r")
        .arg(repo)
        .arg("--no-cache")
        .args(args)
        .env("RESTIC_PASSWORD", PASSWORD)
        .output()
        .expect("run restic")
}

/// Snapshots in the repo, optionally only those tagged `tag`.
fn snapshots(repo: &Path, tag: Option<&str>) -> Vec<Value> {
    let mut args = vec!["snapshots", "--json", "--no-lock"];
    if let Some(t) = tag {
        args.extend(["--tag", t]);
    }
    let out = restic(repo, &args);
    assert!(
        out.status.success(),
        "restic snapshots: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&out.stdout).unwrap_or_default()
}

/// The lock files in the repo (`restic list locks --no-lock`).
fn locks(repo: &Path) -> Vec<String> {
    let out = restic(repo, &["--no-lock", "list", "locks"]);
    assert!(
        out.status.success(),
        "restic list locks: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(String::from)
        .collect()
}

/// The content of each lock file, for failure messages.
fn describe_locks(repo: &Path) -> String {
    locks(repo)
        .iter()
        .map(|id| {
            let out = restic(repo, &["--no-lock", "cat", "lock", id]);
            format!("{id}: {}", String::from_utf8_lossy(&out.stdout).trim())
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// PIDs of live `restic` processes whose parent is `ppid`.
fn restic_children(ppid: u32) -> Vec<u32> {
    let mut out = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else {
            continue;
        };
        let comm = &stat[open + 1..close];
        let rest: Vec<&str> = stat[close + 2..].split(' ').collect();
        // rest[0] = state, rest[1] = ppid
        if comm == "restic"
            && rest.get(1).and_then(|p| p.parse::<u32>().ok()) == Some(ppid)
            && rest[0] != "Z"
        {
            out.push(pid);
        }
    }
    out
}

/// The process state letter, "-" when gone.
fn proc_state(pid: u32) -> String {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .map(|c| stat[c + 2..c + 3].to_string())
            .unwrap_or_default(),
        Err(_) => "-".into(),
    }
}

fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rfind(')')
            .map(|c| !stat[c + 2..].starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

fn server_pid(s: &Server) -> u32 {
    s.child.as_ref().expect("running").id()
}

fn start_in(dir: &Path, args: &[&str]) -> Server {
    let mut b = ServerBuilder::in_dir(dir);
    for a in args {
        b = b.arg(a);
    }
    b.start()
}

// ---------------------------------------------------------------------------
// 1. Cancelling a running backup
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_running_large_backup() {
    let _g = heavy();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (big, small, repo) = (root.join("big"), root.join("small"), root.join("repo1"));
    random_files(&big, 6, 50 * MB);
    random_files(&small, 2, 100_000);

    let s = start_in(root, &[]);
    let base = s.base.clone();
    configure(
        &base,
        &[("r1", &repo, false)],
        &[
            ("big", "r1", vec![&big], vec![]),
            ("small", "r1", vec![&small], vec![]),
        ],
    )
    .await;

    let b2 = base.clone();
    let backup = tokio::spawn(async move {
        let r = rpc(&b2, "Backup", json!({"value": "big"})).await;
        (r, Instant::now())
    });
    let op = wait_backup_running(&base, "big").await;
    let op_id = int(&op["id"]);
    let children = restic_children(server_pid(&s));
    assert!(
        !children.is_empty(),
        "no restic child of the server while the backup runs"
    );

    let cancelled_at = Instant::now();
    ok(&base, "Cancel", json!({"operationId": op_id.to_string()})).await;
    let ((code, err), returned_at) = tokio::time::timeout(Duration::from_secs(30), backup)
        .await
        .expect("the Backup call did not return within 30 s of Cancel")
        .unwrap();
    let took = returned_at - cancelled_at;
    assert_eq!(code, 499, "Backup after Cancel: {err}");
    assert_eq!(err["code"], "canceled", "{err}");
    assert!(
        took < Duration::from_secs(15),
        "Backup returned {took:?} after Cancel"
    );
    // restic got SIGINT and exited with the call (it was not left running).
    for pid in &children {
        assert!(
            !alive(*pid),
            "restic {pid} still running after the cancelled Backup returned"
        );
    }

    let op = op_by_id(&base, op_id).await;
    assert_eq!(status(&op), "STATUS_USER_CANCELLED", "{op}");
    assert!(message(&op).contains("cancelled by user request"), "{op}");
    assert!(
        int(&op["unixTimeEndMs"]) >= int(&op["unixTimeStartMs"]),
        "{op}"
    );
    assert!(op["snapshotId"].as_str().unwrap_or("").is_empty(), "{op}");
    let log = read_log(&s, op["logref"].as_str().unwrap_or("")).await;
    assert!(
        log.contains("restic backup") && log.contains("cancelled by user request"),
        "task log:\n{log}"
    );

    // Nothing was saved, and restic removed its lock.
    assert_eq!(snapshots(&repo, Some("plan:big")), Vec::<Value>::new());
    assert!(
        locks(&repo).is_empty(),
        "the cancelled backup left locks:\n{}",
        describe_locks(&repo)
    );

    // The repo is usable at once.
    let t = Instant::now();
    ok(&base, "Backup", json!({"value": "small"})).await;
    assert!(
        t.elapsed() < Duration::from_secs(30),
        "small backup took {:?}",
        t.elapsed()
    );
    let ops = backup_ops(&base, "small").await;
    assert_eq!(status(&ops[0]), "STATUS_SUCCESS", "{}", ops[0]);
    assert_eq!(snapshots(&repo, Some("plan:small")).len(), 1);
    assert_eq!(snapshots(&repo, Some("plan:big")).len(), 0);
    // Cancelling a finished operation (or an unknown one) changes nothing.
    ok(&base, "Cancel", json!({"operationId": ops[0]["id"]})).await;
    ok(&base, "Cancel", json!({"operationId": "987654321"})).await;
    assert_eq!(
        status(&op_by_id(&base, int(&ops[0]["id"])).await),
        "STATUS_SUCCESS"
    );
    assert_eq!(
        status(&op_by_id(&base, op_id).await),
        "STATUS_USER_CANCELLED"
    );
    eprintln!("cancel → Backup answered in {took:?}");
}

// ---------------------------------------------------------------------------
// 2. Cancelling a queued backup
// ---------------------------------------------------------------------------

/// A slow backup (rate-limited upload) runs; a second Backup waits behind it
/// (same repo, or another repo with `-max-parallel-tasks 1`) and is cancelled
/// while PENDING.
async fn cancel_queued(same_repo: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (slow_dir, quick_dir) = (root.join("slowdata"), root.join("quickdata"));
    let (repo1, repo2) = (root.join("repo1"), root.join("repo2"));
    random_files(&slow_dir, 1, 8 * MB);
    random_files(&quick_dir, 1, 100_000);
    let args: &[&str] = if same_repo {
        &[]
    } else {
        &["-max-parallel-tasks", "1"]
    };
    let s = start_in(root, args);
    let base = s.base.clone();
    let quick_repo = if same_repo { "r1" } else { "r2" };
    configure(
        &base,
        &[("r1", &repo1, false), ("r2", &repo2, false)],
        &[
            ("slow", "r1", vec![&slow_dir], vec!["--limit-upload 2048"]),
            ("quick", quick_repo, vec![&quick_dir], vec![]),
        ],
    )
    .await;
    // AddRepo's snapshot indexing must not be what holds the queue.
    wait_quiet(&base).await;

    let b = base.clone();
    let slow = tokio::spawn(async move { rpc(&b, "Backup", json!({"value": "slow"})).await });
    let slow_op = wait_backup_running(&base, "slow").await;

    let b = base.clone();
    let quick = tokio::spawn(async move {
        let r = rpc(&b, "Backup", json!({"value": "quick"})).await;
        (r, Instant::now())
    });
    let quick_op = wait_for(
        "the second backup to be queued",
        Duration::from_secs(10),
        || async { backup_ops(&base, "quick").await.first().cloned() },
    )
    .await;
    // Still queued after a moment: it really waits behind the slow one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let quick_op = op_by_id(&base, int(&quick_op["id"])).await;
    assert_eq!(
        status(&quick_op),
        "STATUS_PENDING",
        "the second backup should wait: {quick_op}"
    );
    assert!(!quick.is_finished());

    let cancelled_at = Instant::now();
    ok(&base, "Cancel", json!({"operationId": quick_op["id"]})).await;
    let ((code, err), returned_at) = tokio::time::timeout(Duration::from_secs(5), quick)
        .await
        .expect("the queued Backup did not answer within 5 s of Cancel")
        .unwrap();
    assert_eq!(code, 499, "{err}");
    assert_eq!(err["code"], "canceled", "{err}");
    assert!(
        returned_at - cancelled_at < Duration::from_secs(2),
        "answered after {:?}",
        returned_at - cancelled_at
    );
    let q = op_by_id(&base, int(&quick_op["id"])).await;
    assert_eq!(status(&q), "STATUS_USER_CANCELLED", "{q}");
    assert!(message(&q).contains("cancelled by user request"), "{q}");

    // The running one was not disturbed and finishes.
    let s_now = op_by_id(&base, int(&slow_op["id"])).await;
    assert_eq!(status(&s_now), "STATUS_INPROGRESS", "{s_now}");
    let (code, v) = tokio::time::timeout(Duration::from_secs(60), slow)
        .await
        .expect("slow backup finishes")
        .unwrap();
    assert_eq!(code, 200, "slow backup: {v}");
    let s_done = op_by_id(&base, int(&slow_op["id"])).await;
    assert_eq!(status(&s_done), "STATUS_SUCCESS", "{s_done}");

    // The cancelled one never runs later.
    wait_quiet(&base).await;
    let q = op_by_id(&base, int(&quick_op["id"])).await;
    assert_eq!(status(&q), "STATUS_USER_CANCELLED", "{q}");
    assert_eq!(backup_ops(&base, "quick").await.len(), 1);
    let quick_repo_dir = if same_repo { &repo1 } else { &repo2 };
    assert!(snapshots(quick_repo_dir, Some("plan:quick")).is_empty());
    assert_eq!(snapshots(&repo1, Some("plan:slow")).len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_queued_backup_same_repo() {
    cancel_queued(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_queued_backup_max_parallel_one() {
    cancel_queued(false).await;
}

// ---------------------------------------------------------------------------
// 2b. A Backup caller that goes away (`curl -m 1`) doesn't stop the backup
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backup_continues_when_the_caller_disconnects() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let (data, repo) = (root.join("src"), root.join("repo"));
    random_files(&data, 1, 6 * MB);
    let s = start_in(root, &[]);
    let base = s.base.clone();
    configure(
        &base,
        &[("r1", &repo, false)],
        &[("p", "r1", vec![&data], vec!["--limit-upload 2048"])],
    )
    .await;
    let err = reqwest::Client::builder()
        .timeout(Duration::from_secs(1))
        .build()
        .unwrap()
        .post(format!("{base}/v1.Backrest/Backup"))
        .header("content-type", "application/json")
        .body(json!({"value": "p"}).to_string())
        .send()
        .await
        .expect_err("a slow backup answers after more than 1 s");
    assert!(err.is_timeout(), "{err}");
    let op = wait_for("the backup to finish", Duration::from_secs(60), || async {
        let op = backup_ops(&base, "p").await.first().cloned()?;
        (!matches!(status(&op), "STATUS_PENDING" | "STATUS_INPROGRESS")).then_some(op)
    })
    .await;
    assert_eq!(status(&op), "STATUS_SUCCESS", "{op}");
    assert_eq!(snapshots(&repo, Some("plan:p")).len(), 1);
}

// ---------------------------------------------------------------------------
// 3. kill -9 mid-backup, restart
// ---------------------------------------------------------------------------

/// Waits (up to 15 s) until the processes are gone from /proc (exited and
/// reaped: restic treats a zombie's lock as held). Returns a timeline of their
/// states for the log, and those still there.
async fn wait_reaped(pids: &[u32]) -> (String, Vec<u32>) {
    let t = Instant::now();
    let mut timeline = vec![];
    let mut last = String::new();
    loop {
        let st = pids
            .iter()
            .map(|p| proc_state(*p))
            .collect::<Vec<_>>()
            .join(",");
        if st != last {
            timeline.push(format!("{:?}: {st}", t.elapsed()));
            last = st.clone();
        }
        if st.split(',').all(|x| x == "-") || t.elapsed() > Duration::from_secs(15) {
            let left = pids
                .iter()
                .copied()
                .filter(|p| proc_state(*p) != "-")
                .collect();
            return (timeline.join("; "), left);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// A server with repo r1 (`auto_unlock` as given) and plans p (`big_files` ×
/// 50 MB) and q (small), killed with -9 while p's backup runs and q's waits in
/// the queue. Returns (root dir, p's op id, q's op id, locks left behind).
/// The orphaned restic is waited for until it is reaped.
async fn killed_mid_backup(root: &Path, auto_unlock: bool, big_files: usize) -> (i64, i64, String) {
    let (data, small, repo) = (root.join("data-src"), root.join("small"), root.join("repo"));
    random_files(&data, big_files, 50 * MB);
    random_files(&small, 1, 10_000);

    let mut s = start_in(root, &[]);
    let base = s.base.clone();
    configure(
        &base,
        &[("r1", &repo, auto_unlock)],
        &[
            // Throttled so it is still running when the test kills the
            // server, however fast the machine is.
            ("p", "r1", vec![&data], vec!["--limit-upload 8192"]),
            ("q", "r1", vec![&small], vec![]),
        ],
    )
    .await;
    let b = base.clone();
    let backup = tokio::spawn(async move { rpc_lossy(&b, "Backup", json!({"value": "p"})).await });
    let op = wait_backup_running(&base, "p").await;
    let children = restic_children(server_pid(&s));
    assert!(
        !children.is_empty(),
        "no restic child while the backup runs"
    );
    // A second backup waits in the queue when the server dies.
    let b = base.clone();
    let queued = tokio::spawn(async move { rpc_lossy(&b, "Backup", json!({"value": "q"})).await });
    let q_op = wait_for(
        "the second backup to be queued",
        Duration::from_secs(10),
        || async { backup_ops(&base, "q").await.first().cloned() },
    )
    .await;
    assert_eq!(status(&q_op), "STATUS_PENDING", "{q_op}");

    s.kill9();
    let _ = backup.await;
    let _ = queued.await;
    // What happens to the orphaned restic is reported, not required.
    let (timeline, left) = wait_reaped(&children).await;
    let stale = describe_locks(&repo);
    eprintln!(
        "after kill -9: restic {children:?} states: {timeline} (still there: {left:?}); locks left: {}",
        if stale.is_empty() { "none" } else { &stale }
    );
    for p in left {
        unsafe { libc::kill(p as i32, libc::SIGKILL) };
    }
    (int(&op["id"]), int(&q_op["id"]), stale)
}

/// kill -9 of the server while a backup runs, then a restart on the same
/// directories: the interrupted operations are recorded as such, the next
/// backup succeeds, and the killed restic's lock (it dies of SIGPIPE once the
/// server's end of its pipes is gone, without removing its lock) is cleaned
/// up so that an exclusive-lock task (check) succeeds.
async fn kill9_mid_backup(auto_unlock: bool) {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let repo = root.join("repo");
    let (op_id, q_id, stale) = killed_mid_backup(&root, auto_unlock, 2).await;

    let s2 = start_in(&root, &[]);
    let base = s2.base.clone();
    let op = op_by_id(&base, op_id).await;
    assert_eq!(status(&op), "STATUS_ERROR", "{op}");
    assert!(
        message(&op).contains("server stopped while this operation was running"),
        "{op}"
    );
    assert!(
        int(&op["unixTimeEndMs"]) >= int(&op["unixTimeStartMs"]),
        "{op}"
    );
    // Its task log, cut short by the kill, is still readable and complete up to then.
    let log = read_log(&s2, op["logref"].as_str().unwrap_or("")).await;
    assert!(
        log.contains("starting backup for plan") && log.contains("restic backup"),
        "task log:\n{log}"
    );
    assert_eq!(backup_ops(&base, "p").await.len(), 1);
    let q_op = op_by_id(&base, q_id).await;
    assert_eq!(status(&q_op), "STATUS_ERROR", "{q_op}");
    assert!(
        message(&q_op).contains("before this operation started"),
        "{q_op}"
    );

    // The next backup of the plan succeeds.
    let t = Instant::now();
    let (code, v) = tokio::time::timeout(
        Duration::from_secs(120),
        rpc(&base, "Backup", json!({"value": "p"})),
    )
    .await
    .expect("the backup after restart did not finish within 120 s");
    assert_eq!(
        code,
        200,
        "backup after kill -9 and restart (auto_unlock={auto_unlock}) failed after {:?}: {v}\nlocks left by the killed restic:\n{stale}\nlocks now:\n{}",
        t.elapsed(),
        describe_locks(&repo)
    );
    let ops = backup_ops(&base, "p").await;
    assert_eq!(ops.len(), 2);
    assert_eq!(status(&ops[1]), "STATUS_SUCCESS", "{}", ops[1]);
    assert_eq!(snapshots(&repo, Some("plan:p")).len(), 1);

    // The stale lock goes (the server unlocks after an unclean stop).
    wait_quiet(&base).await;
    wait_for(
        "the stale lock to be removed",
        Duration::from_secs(15),
        || async { locks(&repo).is_empty().then_some(()) },
    )
    .await;
    let r = ok(
        &base,
        "DoRepoTask",
        json!({"repoId": "r1", "task": "TASK_CHECK"}),
    )
    .await;
    let check = wait_op_done(&base, int(&r["operationId"])).await;
    assert_eq!(
        status(&check),
        "STATUS_SUCCESS",
        "check after restart (auto_unlock={auto_unlock}): {}",
        message(&check)
    );
    // The never-started backup was not run behind the user's back.
    assert_eq!(backup_ops(&base, "q").await.len(), 1);
    assert!(snapshots(&repo, Some("plan:q")).is_empty());
}

async fn wait_op_done(base: &str, id: i64) -> Value {
    wait_for(
        &format!("operation {id} to finish"),
        Duration::from_secs(60),
        || async {
            let op = op_by_id(base, id).await;
            (!matches!(status(&op), "STATUS_PENDING" | "STATUS_INPROGRESS")).then_some(op)
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_backup_then_restart_auto_unlock_off() {
    let _g = heavy();
    kill9_mid_backup(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_mid_backup_then_restart_auto_unlock_on() {
    let _g = heavy();
    kill9_mid_backup(true).await;
}

/// After kill -9 the server runs `restic unlock` on the repos that had a task
/// running, promising (recovery.rs, Orchestrator::unlock_after_crash) to do so
/// "before their next task". A check queued right after the restart must
/// therefore not run while that unlock is still going, and must not trip over
/// the killed restic's stale lock.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_crash_unlock_runs_before_the_repos_next_task() {
    let _g = heavy();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    // The killed restic usually leaves its lock (not always: sometimes its
    // SIGINT cleanup wins over the SIGPIPE); the ordering is checked either way.
    let (_, _, stale) = killed_mid_backup(&root, false, 2).await;

    let s2 = start_in(&root, &[]);
    let base = s2.base.clone();
    let pid = server_pid(&s2);
    let r = ok(
        &base,
        "DoRepoTask",
        json!({"repoId": "r1", "task": "TASK_CHECK"}),
    )
    .await;
    let check_id = int(&r["operationId"]);
    // Watch the server's restic children until the check is over.
    let mut overlap: Option<Vec<String>> = None;
    let mut seen_unlock = false;
    let deadline = Instant::now() + Duration::from_secs(60);
    let check = loop {
        let cmds: Vec<String> = restic_children(pid)
            .iter()
            .filter_map(|p| cmdline(*p))
            .collect();
        if cmds.iter().any(|c| c.contains(" unlock")) {
            seen_unlock = true;
            if cmds.len() > 1 && overlap.is_none() {
                overlap = Some(cmds.clone());
            }
        }
        let op = op_by_id(&base, check_id).await;
        if !matches!(status(&op), "STATUS_PENDING" | "STATUS_INPROGRESS") {
            break op;
        }
        assert!(Instant::now() < deadline, "check did not finish");
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    eprintln!(
        "post-crash unlock seen: {seen_unlock}; overlap: {overlap:?}; check: {} {}",
        status(&check),
        message(&check)
    );
    assert!(
        overlap.is_none(),
        "the post-crash `restic unlock` ran at the same time as the repo's next task: {overlap:?}\ncheck ended {}: {}",
        status(&check),
        message(&check)
    );
    assert_eq!(
        status(&check),
        "STATUS_SUCCESS",
        "a check queued right after the restart failed; locks left by the killed restic:\n{stale}\ncheck: {}\nserver log:\n{}",
        message(&check),
        s2.stderr()
    );
}

fn cmdline(pid: u32) -> Option<String> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .trim()
            .to_string(),
    )
}

/// Like `rpc`, but a dropped connection is a value, not a panic.
async fn rpc_lossy(base: &str, method: &str, body: Value) -> Result<(u16, String), String> {
    let resp = reqwest::Client::new()
        .post(format!("{base}/v1.Backrest/{method}"))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let code = resp.status().as_u16();
    Ok((code, resp.text().await.map_err(|e| e.to_string())?))
}

// ---------------------------------------------------------------------------
// 3b. SIGTERM mid-backup: graceful stop
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_mid_backup_records_interruption_and_leaves_no_lock() {
    let _g = heavy();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let (data, repo) = (root.join("data-src"), root.join("repo"));
    random_files(&data, 3, 50 * MB);
    let mut s = start_in(&root, &[]);
    let base = s.base.clone();
    configure(
        &base,
        &[("r1", &repo, false)],
        &[("p", "r1", vec![&data], vec![])],
    )
    .await;
    let b = base.clone();
    let backup = tokio::spawn(async move { rpc_lossy(&b, "Backup", json!({"value": "p"})).await });
    let op = wait_backup_running(&base, "p").await;
    let op_id = int(&op["id"]);
    let children = restic_children(server_pid(&s));
    let t = Instant::now();
    let st = s.stop();
    let took = t.elapsed();
    assert!(
        st.success(),
        "server exit after SIGTERM: {st:?}\n{}",
        s.stderr()
    );
    assert!(
        took < Duration::from_secs(15),
        "graceful stop took {took:?}"
    );
    let answer = backup.await.unwrap();
    eprintln!("Backup call during SIGTERM answered: {answer:?}");
    for p in &children {
        assert!(
            !alive(*p),
            "restic {p} still running after the server stopped"
        );
    }
    assert!(
        locks(&repo).is_empty(),
        "SIGTERM of the server left restic locks:\n{}",
        describe_locks(&repo)
    );
    assert!(snapshots(&repo, None).is_empty());

    let s2 = start_in(&root, &[]);
    let op = op_by_id(&s2.base, op_id).await;
    assert_eq!(status(&op), "STATUS_ERROR", "{op}");
    assert!(
        message(&op).contains("interrupted by server shutdown"),
        "{op}"
    );
}

/// SIGTERM while one backup runs and another waits in the queue: the server
/// stops promptly, and the caller waiting for the queued backup gets an
/// answer (a Connect error) instead of a connection cut when the process ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_queued_backup_answers_its_caller() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let (slow, small, repo) = (root.join("slow"), root.join("small"), root.join("repo"));
    random_files(&slow, 1, 8 * MB);
    random_files(&small, 1, 10_000);
    let mut s = start_in(&root, &[]);
    let base = s.base.clone();
    configure(
        &base,
        &[("r1", &repo, false)],
        &[
            ("p", "r1", vec![&slow], vec!["--limit-upload 1024"]),
            ("q", "r1", vec![&small], vec![]),
        ],
    )
    .await;
    let b = base.clone();
    let running = tokio::spawn(async move { rpc_lossy(&b, "Backup", json!({"value": "p"})).await });
    wait_backup_running(&base, "p").await;
    let b = base.clone();
    let queued = tokio::spawn(async move { rpc_lossy(&b, "Backup", json!({"value": "q"})).await });
    let q_op = wait_for(
        "the second backup to be queued",
        Duration::from_secs(10),
        || async { backup_ops(&base, "q").await.first().cloned() },
    )
    .await;
    assert_eq!(status(&q_op), "STATUS_PENDING", "{q_op}");

    let t = Instant::now();
    let st = s.stop();
    let took = t.elapsed();
    let running = running.await.unwrap();
    let queued = queued.await.unwrap();
    eprintln!(
        "SIGTERM: stopped in {took:?}; running Backup answered {running:?}; queued Backup answered {queued:?}"
    );
    assert!(
        st.success(),
        "server exit after SIGTERM: {st:?}\n{}",
        s.stderr()
    );
    let log = s.stderr();
    assert!(
        took < Duration::from_secs(8),
        "graceful stop with a queued Backup took {took:?}; queued Backup answered {queued:?}\nserver log:\n{log}"
    );
    match &queued {
        Ok((code, body)) => assert!(
            *code != 200 && body.contains("\"code\""),
            "queued Backup: {code} {body}"
        ),
        Err(e) => panic!(
            "the queued Backup's caller got no answer, the connection was cut: {e}\nserver log:\n{log}"
        ),
    }
    assert!(locks(&repo).is_empty(), "{}", describe_locks(&repo));

    // After the restart both are recorded as not completed.
    let s2 = start_in(&root, &[]);
    let q = op_by_id(&s2.base, int(&q_op["id"])).await;
    assert_eq!(status(&q), "STATUS_ERROR", "{q}");
}

// ---------------------------------------------------------------------------
// 4. Parallel across repos, serial per repo
// ---------------------------------------------------------------------------

/// Runs Backup of `plans` concurrently; returns each backup op's (start, end) ms.
async fn concurrent_backups(base: &str, plans: &[&str]) -> Vec<(i64, i64)> {
    let calls: Vec<_> = plans
        .iter()
        .map(|p| {
            let (b, p) = (base.to_string(), p.to_string());
            tokio::spawn(async move { rpc(&b, "Backup", json!({"value": p})).await })
        })
        .collect();
    for (c, p) in calls.into_iter().zip(plans) {
        let (code, v) = c.await.unwrap();
        assert_eq!(code, 200, "Backup {p}: {v}");
    }
    let mut out = vec![];
    for p in plans {
        let ops = backup_ops(base, p).await;
        assert_eq!(ops.len(), 1, "{ops:?}");
        assert_eq!(status(&ops[0]), "STATUS_SUCCESS", "{}", ops[0]);
        out.push((
            int(&ops[0]["unixTimeStartMs"]),
            int(&ops[0]["unixTimeEndMs"]),
        ));
    }
    out
}

fn overlap(a: (i64, i64), b: (i64, i64)) -> bool {
    a.0 < b.1 && b.0 < a.1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_across_repos_serial_per_repo() {
    let _g = heavy();
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let (da, db, dc, dd) = (
        root.join("da"),
        root.join("db"),
        root.join("dc"),
        root.join("dd"),
    );
    random_files(&da, 2, 50 * MB);
    random_files(&db, 2, 50 * MB);
    // The serial cases only need backups that take a moment: both calls are
    // made at once, so running them in parallel would overlap them.
    random_files(&dc, 1, 15 * MB);
    random_files(&dd, 1, 15 * MB);

    let dir = root.join("s1");
    std::fs::create_dir_all(&dir).unwrap();
    let s = start_in(&dir, &[]);
    let (ra, rb) = (dir.join("ra"), dir.join("rb"));
    configure(
        &s.base,
        &[("ra", &ra, false), ("rb", &rb, false)],
        &[
            ("pa", "ra", vec![&da], vec![]),
            ("pb", "rb", vec![&db], vec![]),
            ("sc", "ra", vec![&dc], vec![]),
            ("sd", "ra", vec![&dd], vec![]),
        ],
    )
    .await;
    wait_quiet(&s.base).await;
    // Two repos, ~100 MB each, default parallelism: they run at the same time.
    let iv = concurrent_backups(&s.base, &["pa", "pb"]).await;
    eprintln!("two repos, parallel: {iv:?}");
    assert!(
        overlap(iv[0], iv[1]),
        "backups on different repos did not overlap: {iv:?}"
    );
    wait_quiet(&s.base).await;
    // One repo, two plans: one after the other.
    let iv = concurrent_backups(&s.base, &["sc", "sd"]).await;
    eprintln!("one repo: {iv:?}");
    assert!(
        !overlap(iv[0], iv[1]),
        "backups on the same repo overlapped: {iv:?}"
    );
    assert_eq!(snapshots(&ra, None).len(), 3);

    // Two repos with -max-parallel-tasks 1: one after the other.
    let dir = root.join("s2");
    std::fs::create_dir_all(&dir).unwrap();
    let s = start_in(&dir, &["-max-parallel-tasks", "1"]);
    let (ra, rb) = (dir.join("ra"), dir.join("rb"));
    configure(
        &s.base,
        &[("ra", &ra, false), ("rb", &rb, false)],
        &[
            ("pc", "ra", vec![&dc], vec![]),
            ("pd", "rb", vec![&dd], vec![]),
        ],
    )
    .await;
    wait_quiet(&s.base).await;
    let iv = concurrent_backups(&s.base, &["pc", "pd"]).await;
    eprintln!("two repos, -max-parallel-tasks 1: {iv:?}");
    assert!(
        !overlap(iv[0], iv[1]),
        "with -max-parallel-tasks 1 backups overlapped: {iv:?}"
    );
}

// ---------------------------------------------------------------------------
// 5. The oplog survives kill -9
// ---------------------------------------------------------------------------

/// An operation's outcome: status, message, start and end (ms), snapshot id,
/// plan id, flow id.
type OutcomeFields = (String, String, i64, i64, String, String, i64);

/// The fields that make an operation's outcome, keyed by id.
fn outcome_fields(ops: &[Value]) -> BTreeMap<i64, OutcomeFields> {
    ops.iter()
        .map(|o| {
            (
                int(&o["id"]),
                (
                    status(o).to_string(),
                    message(o).to_string(),
                    int(&o["unixTimeStartMs"]),
                    int(&o["unixTimeEndMs"]),
                    o["snapshotId"].as_str().unwrap_or("").to_string(),
                    o["planId"].as_str().unwrap_or("").to_string(),
                    int(&o["flowId"]),
                ),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oplog_survives_kill9() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().to_path_buf();
    let (data, slow_data, repo) = (root.join("src"), root.join("slow"), root.join("repo"));
    random_files(&data, 3, 200_000);
    random_files(&slow_data, 1, 8 * MB);
    let missing = root.join("does-not-exist");

    let mut s = start_in(&root, &[]);
    let base = s.base.clone();
    configure(
        &base,
        &[("r1", &repo, false)],
        &[
            ("good", "r1", vec![&data], vec![]),
            ("bad", "r1", vec![missing.as_path()], vec![]),
            ("slow", "r1", vec![&slow_data], vec!["--limit-upload 2048"]),
        ],
    )
    .await;
    ok(&base, "Backup", json!({"value": "good"})).await;
    let (code, err) = rpc(&base, "Backup", json!({"value": "bad"})).await;
    assert_eq!(code, 500, "{err}");
    // A cancelled running backup.
    let b = base.clone();
    let slow = tokio::spawn(async move { rpc(&b, "Backup", json!({"value": "slow"})).await });
    let op = wait_backup_running(&base, "slow").await;
    ok(&base, "Cancel", json!({"operationId": op["id"]})).await;
    let (code, _) = slow.await.unwrap();
    assert_eq!(code, 499);
    std::fs::write(data.join("new.txt"), "changed").unwrap();
    ok(&base, "Backup", json!({"value": "good"})).await;
    let r = ok(
        &base,
        "DoRepoTask",
        json!({"repoId": "r1", "task": "TASK_STATS"}),
    )
    .await;
    let stats_id = int(&r["operationId"]);
    assert!(stats_id > 0);

    let before = wait_quiet(&base).await;
    let statuses: Vec<&str> = before.iter().map(status).collect();
    for want in ["STATUS_SUCCESS", "STATUS_ERROR", "STATUS_USER_CANCELLED"] {
        assert!(statuses.contains(&want), "{statuses:?}");
    }
    // backup ×4, stats, 2 indexed snapshots at least.
    assert!(before.len() >= 7, "{before:?}");

    s.kill9();
    let mut s2 = start_in(&root, &[]);
    let after = all_ops(&s2.base).await;
    assert_eq!(outcome_fields(&before), outcome_fields(&after));
    // Nothing else changed either (recovery had nothing to fix).
    assert_eq!(before, after);
    s2.stop();

    // The SQLite file, read directly, agrees.
    let oplog = OpLog::open(&root.join("data").join("oplog.sqlite"))
        .await
        .unwrap();
    let stored = oplog.query(&Query::all()).await.unwrap();
    oplog.close().await;
    let direct: BTreeMap<i64, OutcomeFields> = stored
        .iter()
        .map(|o| {
            let st = v1::OperationStatus::try_from(o.status)
                .unwrap()
                .as_str_name()
                .to_string();
            (
                o.id,
                (
                    st,
                    o.display_message.clone(),
                    o.unix_time_start_ms,
                    o.unix_time_end_ms,
                    o.snapshot_id.clone(),
                    o.plan_id.clone(),
                    o.flow_id,
                ),
            )
        })
        .collect();
    assert_eq!(direct, outcome_fields(&after));
}
