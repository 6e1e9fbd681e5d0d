//! The real Connect-ES client (`@connectrpc/connect-node`, code generated from
//! our `proto/` by protoc-gen-es) against the real server, over both the
//! binary and the JSON Connect transports: see `tests/node/client.test.ts`.
//!
//! The oplog is seeded before the server starts:
//!   - plan "plan-a": `PLAN_A_COUNT` operations ("seed-a-1", ...), which the
//!     client reads back with GetOperations;
//!   - plan "plan-b": one operation that a plan-a query must not return;
//!   - plans "clear-binary" and "clear-json": one operation each, which the
//!     client of that mode deletes with ClearHistory and must then see as a
//!     `deletedOperations` event on GetOperationEvents.
//!
//! Needs Node.js >= 20 and npm. Installs `tests/node/node_modules` with
//! `npm ci` when missing and (re)generates `tests/node/gen` when missing or
//! older than `proto/`.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use backrest_rs::oplog::OpLog;
use backrest_rs::pb::v1;
use common::*;

const PLAN_A_COUNT: usize = 2;

fn node_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("node")
}

fn op(plan: &str, repo: &str, msg: &str, start_ms: i64) -> v1::Operation {
    v1::Operation {
        repo_id: repo.into(),
        repo_guid: format!("guid-{repo}"),
        plan_id: plan.into(),
        instance_id: "seed-instance".into(),
        unix_time_start_ms: start_ms,
        unix_time_end_ms: start_ms + 1000,
        status: v1::OperationStatus::StatusSuccess as i32,
        display_message: msg.into(),
        ..Default::default()
    }
}

/// Seeds the oplog; returns the ids given to the "clear-binary" and
/// "clear-json" operations.
async fn seed_oplog(data_dir: &Path) -> (i64, i64) {
    // Recent times: the server's garbage collection (a second after start)
    // trims operations older than 30 days.
    let base = chrono::Utc::now().timestamp_millis() - 3_600_000;
    let mut ops = Vec::new();
    for i in 1..=PLAN_A_COUNT {
        ops.push(op(
            "plan-a",
            "repo-a",
            &format!("seed-a-{i}"),
            base + i as i64 * 60_000,
        ));
    }
    ops.push(op("plan-b", "repo-b", "seed-b-1", base + 10 * 60_000));
    ops.push(op(
        "clear-binary",
        "repo-a",
        "clear-me-binary",
        base + 20 * 60_000,
    ));
    ops.push(op(
        "clear-json",
        "repo-a",
        "clear-me-json",
        base + 30 * 60_000,
    ));
    let oplog = OpLog::open(&data_dir.join("oplog.sqlite"))
        .await
        .expect("open the oplog for seeding");
    let added = oplog.add(ops).await.expect("seed the oplog");
    oplog.close().await;
    assert_eq!(
        added.len(),
        PLAN_A_COUNT + 3,
        "OpLog::add returns every added operation"
    );
    let id_of = |plan: &str| {
        let op = added.iter().find(|o| o.plan_id == plan).unwrap();
        assert!(op.id > 0, "OpLog::add assigns ids: {op:?}");
        op.id
    };
    (id_of("clear-binary"), id_of("clear-json"))
}

/// Runs `program args` in `dir`, with its output captured to `log`, killing
/// it after `timeout`. Returns (success, combined output).
fn run_logged(
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
    log: &Path,
    timeout: Duration,
) -> (bool, String) {
    let out = std::fs::File::create(log).unwrap();
    let err = out.try_clone().unwrap();
    let mut cmd = Command::new(program);
    cmd.args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let what = format!("{program} {}", args.join(" "));
    let mut child = cmd.spawn().unwrap_or_else(|e| {
        panic!(
            "could not run `{what}` in {}: {e}\n(the Connect-ES test needs Node.js >= 20 and npm on PATH)",
            dir.display()
        )
    });
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut output = std::fs::read_to_string(log).unwrap_or_default();
    match status {
        Some(st) if st.success() => (true, output),
        Some(st) => {
            output.push_str(&format!("\n[`{what}` exited with {st}]"));
            (false, output)
        }
        None => {
            output.push_str(&format!("\n[`{what}` killed after {timeout:?}]"));
            (false, output)
        }
    }
}

fn newest_mtime(dir: &Path) -> SystemTime {
    let mut newest = SystemTime::UNIX_EPOCH;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = entry.metadata().unwrap();
        let t = if meta.is_dir() {
            newest_mtime(&entry.path())
        } else {
            meta.modified().unwrap()
        };
        newest = newest.max(t);
    }
    newest
}

/// `npm ci` when node_modules is missing; `npm run generate` when gen/ is
/// missing or older than proto/ (or buf.gen.yaml).
fn prepare_node_project(logs: &Path) {
    let dir = node_dir();
    if !dir.join("node_modules").join(".bin").join("tsx").exists() {
        let (ok, out) = run_logged(
            &dir,
            "npm",
            &["ci", "--no-audit", "--no-fund"],
            &[],
            &logs.join("npm-ci.log"),
            Duration::from_secs(600),
        );
        assert!(ok, "`npm ci` in {} failed:\n{out}", dir.display());
    }
    let stamp = dir.join("gen").join("v1").join("service_pb.ts");
    let proto_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("proto");
    let inputs = newest_mtime(&proto_dir).max(
        std::fs::metadata(dir.join("buf.gen.yaml"))
            .unwrap()
            .modified()
            .unwrap(),
    );
    let fresh = std::fs::metadata(&stamp)
        .map(|m| m.modified().unwrap() >= inputs)
        .unwrap_or(false);
    if !fresh {
        let (ok, out) = run_logged(
            &dir,
            "npm",
            &["run", "generate"],
            &[],
            &logs.join("npm-generate.log"),
            Duration::from_secs(300),
        );
        assert!(
            ok,
            "`npm run generate` (buf + protoc-gen-es over proto/) in {} failed:\n{out}",
            dir.display()
        );
        assert!(
            stamp.exists(),
            "`npm run generate` did not produce {}",
            stamp.display()
        );
    }
}

#[test]
fn connect_es_client_binary_and_json() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(tmp.path().join("data")).unwrap();
    let (clear_binary, clear_json) = {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(seed_oplog(&tmp.path().join("data")))
    };

    prepare_node_project(tmp.path());

    let s = ServerBuilder::in_dir(tmp.path())
        .arg("-keepalive-interval")
        .arg("200ms")
        .start();
    let count = PLAN_A_COUNT.to_string();
    let (clear_binary, clear_json) = (clear_binary.to_string(), clear_json.to_string());
    let (ok, out) = run_logged(
        &node_dir(),
        "npm",
        &["test", "--silent"],
        &[
            ("BACKREST_URL", &s.base),
            ("PLAN_A_COUNT", &count),
            ("CLEAR_ID_BINARY", &clear_binary),
            ("CLEAR_ID_JSON", &clear_json),
            ("NO_COLOR", "1"),
        ],
        &tmp.path().join("client.log"),
        Duration::from_secs(180),
    );
    assert!(
        ok,
        "the Connect-ES client (tests/node/client.test.ts) failed against {}:\n\
         ---- client output ----\n{out}\n---- server stderr ----\n{}",
        s.base,
        s.stderr()
    );
    // Shown with `cargo test -- --nocapture`.
    println!("{out}");
    // The client really ran both modes (guards against a silently empty run).
    for suite in [
        "Connect-ES client, binary format",
        "Connect-ES client, json format",
    ] {
        assert!(
            out.contains(suite),
            "client output lacks the suite {suite:?}:\n{out}"
        );
    }
    assert!(
        out.contains("fail 0"),
        "client output has no `fail 0` summary:\n{out}"
    );
}
