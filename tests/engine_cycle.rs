//! The restic engine end to end: the real binary, the real restic CLI, real
//! repositories in temp dirs. Backup (also through the documented curl
//! commands), AddRepo / CheckRepoExists, snapshots and their files, restore,
//! retention forget, prune, check, stats, index snapshots, RunCommand, and
//! failing and dry-run backups.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

const INSTANCE: &str = "engine-test";
/// Files in the source tree `make_tree` writes.
const FILES: i64 = 5;

/// A server with instance `engine-test`, repo `r1` (initialized by AddRepo
/// at `<tmp>/repo`, password `pw`) and plan `p1` backing up `<tmp>/src`.
struct Env {
    s: Server,
    tmp: tempfile::TempDir,
    repo: PathBuf,
    src: PathBuf,
    /// AddRepo's answer (the sanitized config).
    added: Value,
}

impl Env {
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }

    fn src_str(&self) -> String {
        self.src.to_string_lossy().into_owned()
    }
}

async fn setup(retention: Value) -> Env {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    make_tree(&src);
    let repo = tmp.path().join("repo");

    set_instance(&s, INSTANCE).await;
    let added = add_repo(&s, "r1", &repo, "pw").await;
    // AddRepo's answer carries the latest modno: echo it with the plan added.
    let mut cfg = added.clone();
    cfg["plans"] = json!([{"id": "p1", "repo": "r1", "paths": [src], "retention": retention}]);
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;
    Env {
        s,
        tmp,
        repo,
        src,
        added,
    }
}

/// `FILES` files, two levels of subdirectories, ~100 KB.
fn make_tree(src: &Path) {
    std::fs::create_dir_all(src.join("sub/deep")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha line\n".repeat(300)).unwrap();
    std::fs::write(src.join("b.bin"), noise(1, 40_000)).unwrap();
    std::fs::write(src.join("sub/c.txt"), "charlie line\n".repeat(100)).unwrap();
    std::fs::write(src.join("sub/d.bin"), noise(2, 30_000)).unwrap();
    std::fs::write(src.join("sub/deep/e.txt"), "echo\n").unwrap();
}

fn restic_repo_id(repo: &Path, password: &str) -> String {
    let out = restic_ok(repo, password, &["cat", "config", "--no-lock"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    v["id"].as_str().unwrap().to_string()
}

fn is_hex64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
}

fn index_ops(list: &[Value]) -> Vec<&Value> {
    list.iter()
        .filter(|o| o.get("operationIndexSnapshot").is_some())
        .collect()
}

fn backup_ops(list: &[Value]) -> Vec<&Value> {
    list.iter()
        .filter(|o| o.get("operationBackup").is_some())
        .collect()
}

async fn list_snapshots(env: &Env, plan: Option<&str>) -> Vec<Value> {
    let mut req = json!({"repoId": "r1"});
    if let Some(p) = plan {
        req["planId"] = json!(p);
    }
    let v = ok_json(&env.s, "/v1.Backrest/ListSnapshots", req).await;
    v["snapshots"].as_array().cloned().unwrap_or_default()
}

fn ids(snaps: &[Value]) -> Vec<String> {
    snaps.iter().map(|x| str_of(&x["id"]).to_string()).collect()
}

async fn backup(env: &Env) {
    ok_json(&env.s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
}

/// Schedules a repo task; returns the operation id (0 when it has none).
async fn repo_task(env: &Env, task: &str) -> i64 {
    let v = ok_json(
        &env.s,
        "/v1.Backrest/DoRepoTask",
        json!({"repoId": "r1", "task": task}),
    )
    .await;
    num(&v["operationId"])
}

fn port_of(s: &Server) -> String {
    s.base
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string()
}

/// Runs a documented curl command line verbatim through `sh -c`, with the
/// server's port for 9898 and `plan` for PLAN_ID; `-w` appends the HTTP
/// status on its own line. Returns (status, body).
fn curl(srv: &Server, documented: &str, plan: &str) -> (u16, String) {
    let cmd = documented
        .replace("9898", &port_of(srv))
        .replace("PLAN_ID", plan);
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} -w '\\n%{{http_code}}'"))
        .output()
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (body, code) = text.rsplit_once('\n').expect("status line");
    (code.trim().parse().unwrap(), body.to_string())
}

// 1. The seed's curl examples, verbatim.
#[tokio::test]
async fn documented_curl_backup_blocks_and_get_operations_shows_it() {
    let env = setup(json!({"policyKeepLastN": 1})).await;

    let backup_cmd = r#"curl -X POST localhost:9898/v1.Backrest/Backup --data '{"value": "PLAN_ID"}' -H 'Content-Type: application/json'"#;
    let ops_cmd = r#"curl -X POST 'localhost:9898/v1.Backrest/GetOperations' --data '{"selector": {"planId": "PLAN_ID"}}' -H 'Content-Type: application/json'"#;
    let all_cmd = r#"curl -X POST localhost:9898/v1.Backrest/GetOperations -H 'Content-Type: application/json' --data '{}'"#;

    let (code, body) = curl(&env.s, backup_cmd, "p1");
    assert_eq!(code, 200, "Backup answered {code}: {body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), json!({}));

    // The call blocked until the backup finished: it is already a success.
    let (code, body) = curl(&env.s, ops_cmd, "p1");
    assert_eq!(code, 200, "{body}");
    let list: Value = serde_json::from_str(&body).unwrap();
    let list = list["operations"].as_array().cloned().unwrap_or_default();
    let backups = backup_ops(&list);
    assert_eq!(backups.len(), 1, "{list:?}");
    let b = backups[0].clone();
    assert_eq!(b["status"], "STATUS_SUCCESS", "{b}");
    assert_eq!(b["planId"], "p1");
    assert_eq!(b["repoId"], "r1");
    assert_eq!(b["instanceId"], INSTANCE);
    let snap = str_of(&b["snapshotId"]).to_string();
    assert!(is_hex64(&snap), "snapshotId {snap:?} is not a full id");
    let summary = &b["operationBackup"]["lastStatus"]["summary"];
    assert_eq!(num(&summary["filesNew"]), FILES, "{b}");
    assert_eq!(str_of(&summary["snapshotId"]), snap);
    assert!(num(&b["unixTimeEndMs"]) >= num(&b["unixTimeStartMs"]));
    // It is the snapshot restic has.
    let listed = restic_ok(&env.repo, "pw", &["snapshots", "--json", "--no-lock"]);
    assert!(listed.contains(&snap), "{listed}");

    // The follow-up index task records the snapshot, in the backup's flow.
    let list = wait_ops(
        &env.s,
        json!({"planId": "p1"}),
        Duration::from_secs(15),
        "index op of the backup's snapshot",
        |l| index_ops(l).iter().any(|o| o["snapshotId"] == snap),
    )
    .await;
    let idx = index_ops(&list)
        .into_iter()
        .find(|o| o["snapshotId"] == snap)
        .unwrap()
        .clone();
    assert_eq!(idx["status"], "STATUS_SUCCESS");
    assert_eq!(idx["instanceId"], INSTANCE);
    assert_eq!(
        idx["flowId"], b["flowId"],
        "the index op joins the backup's flow"
    );
    assert_eq!(
        idx["operationIndexSnapshot"]["snapshot"]["id"],
        snap.as_str()
    );
    assert!(idx["operationIndexSnapshot"]["forgot"].as_bool() != Some(true));

    // The documented `{}` returns the whole history (it holds the backup).
    let (code, body) = curl(&env.s, all_cmd, "p1");
    assert_eq!(code, 200, "{body}");
    let all: Value = serde_json::from_str(&body).unwrap();
    let all = all["operations"].as_array().cloned().unwrap_or_default();
    assert!(all.iter().any(|o| o["id"] == b["id"]), "{all:?}");

    // keep-last-1 retention runs after each backup in its flow: a second
    // backup forgets the first snapshot.
    let (code, body) = curl(&env.s, backup_cmd, "p1");
    assert_eq!(code, 200, "{body}");
    let list = ops(&env.s, json!({"planId": "p1"})).await;
    let second = backup_ops(&list)
        .into_iter()
        .find(|o| o["id"] != b["id"])
        .expect("second backup")
        .clone();
    assert_eq!(second["status"], "STATUS_SUCCESS", "{second}");
    let snap2 = str_of(&second["snapshotId"]).to_string();
    let flow2 = second["flowId"].clone();
    let list = wait_ops(
        &env.s,
        json!({"flowId": flow2}),
        Duration::from_secs(15),
        "retention forget in the second backup's flow",
        |l| {
            l.iter()
                .any(|o| o.get("operationForget").is_some() && is_done(o))
        },
    )
    .await;
    let forget = list
        .iter()
        .find(|o| o.get("operationForget").is_some())
        .unwrap();
    assert_eq!(forget["status"], "STATUS_SUCCESS", "{forget}");
    let removed: Vec<&str> = forget["operationForget"]["forget"]
        .as_array()
        .map(|a| a.iter().map(|x| str_of(&x["id"])).collect())
        .unwrap_or_default();
    assert_eq!(removed, vec![snap.as_str()], "{forget}");
    assert_eq!(ids(&list_snapshots(&env, None).await), vec![snap2.clone()]);
    wait_ops(
        &env.s,
        json!({"snapshotId": snap}),
        Duration::from_secs(15),
        "first snapshot's index op marked forgotten",
        |l| {
            index_ops(l)
                .iter()
                .any(|o| o["operationIndexSnapshot"]["forgot"] == true)
        },
    )
    .await;
}

// 2. AddRepo and CheckRepoExists.
#[tokio::test]
async fn add_repo_initializes_adopts_and_rejects_a_wrong_password() {
    let env = setup(json!({"policyKeepLastN": 1})).await;

    // A new repo was initialized, and its guid is restic's repository id.
    assert!(env.repo.join("config").is_file());
    let r1 = env.added["repos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "r1")
        .unwrap()
        .clone();
    let guid = str_of(&r1["guid"]).to_string();
    assert!(is_hex64(&guid), "guid {guid:?}");
    assert_eq!(guid, restic_repo_id(&env.repo, "pw"));
    assert!(r1.get("autoInitialize").is_none_or(|v| v == false), "{r1}");

    // An existing repository, made by plain restic, is adopted as is.
    let repo2 = env.path("repo2");
    restic_ok(&repo2, "pw2", &["init"]);
    restic_ok(
        &repo2,
        "pw2",
        &["backup", &format!("{}/a.txt", env.src_str())],
    );
    let foreign: Value = serde_json::from_str(&restic_ok(
        &repo2,
        "pw2",
        &["snapshots", "--json", "--no-lock"],
    ))
    .unwrap();
    let foreign_id = str_of(&foreign[0]["id"]).to_string();
    let config_before = std::fs::read(repo2.join("config")).unwrap();
    let keys = |p: &Path| std::fs::read_dir(p.join("keys")).unwrap().count();
    assert_eq!(keys(&repo2), 1);
    let cfg = ok_json(
        &env.s,
        "/v1.Backrest/AddRepo",
        json!({"repo": {"id": "r2", "uri": repo2, "password": "pw2"}}),
    )
    .await;
    let r2 = cfg["repos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "r2")
        .unwrap()
        .clone();
    assert_eq!(str_of(&r2["guid"]), restic_repo_id(&repo2, "pw2"));
    assert_eq!(
        std::fs::read(repo2.join("config")).unwrap(),
        config_before,
        "the repo was re-initialized"
    );
    assert_eq!(keys(&repo2), 1);
    // Its snapshots get indexed (untagged: `_unassociated_`).
    let list = wait_ops(
        &env.s,
        json!({"repoGuid": r2["guid"]}),
        Duration::from_secs(15),
        "index op of the adopted repo's snapshot",
        |l| {
            index_ops(l)
                .iter()
                .any(|o| o["snapshotId"] == foreign_id.as_str())
        },
    )
    .await;
    let idx = index_ops(&list)[0].clone();
    assert_eq!(
        (
            str_of(&idx["planId"]),
            str_of(&idx["instanceId"]),
            str_of(&idx["repoId"])
        ),
        ("_unassociated_", "_unassociated_", "r2"),
        "{idx}"
    );

    // A wrong password on an existing repository is refused with restic's words.
    let (status, err) = call_json(
        &env.s,
        "/v1.Backrest/AddRepo",
        json!({"repo": {"id": "r3", "uri": repo2, "password": "not-it"}}),
    )
    .await;
    assert_ne!(status, 200, "{err}");
    let msg = str_of(&err["message"]);
    assert!(msg.starts_with("failed to init repo"), "{err}");
    assert!(msg.contains("wrong password"), "{err}");
    let cfg = ok_json(&env.s, "/v1.Backrest/GetConfig", json!({})).await;
    assert!(
        !cfg["repos"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["id"] == "r3"),
        "a failed AddRepo must not add the repo"
    );
    assert_eq!(keys(&repo2), 1);

    // CheckRepoExists: yes, no, and restic's error.
    let v = ok_json(
        &env.s,
        "/v1.Backrest/CheckRepoExists",
        json!({"repo": {"id": "r1", "uri": env.repo, "password": "pw"}}),
    )
    .await;
    assert_eq!(v["exists"], true, "{v}");
    let empty = env.path("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let v = ok_json(
        &env.s,
        "/v1.Backrest/CheckRepoExists",
        json!({"repo": {"id": "probe", "uri": empty, "password": "pw"}}),
    )
    .await;
    assert!(v.get("exists").is_none_or(|e| e == false), "{v}");
    assert!(
        !empty.join("config").exists(),
        "CheckRepoExists must not initialize"
    );
    let (status, err) = call_json(
        &env.s,
        "/v1.Backrest/CheckRepoExists",
        json!({"repo": {"id": "probe", "uri": env.repo, "password": "nope"}}),
    )
    .await;
    assert_ne!(status, 200, "{err}");
    assert!(str_of(&err["message"]).contains("wrong password"), "{err}");
}

// 3. backup → snapshots → files → restore → more backups → forget → index →
//    prune → check → stats → index again.
#[tokio::test]
async fn full_cycle_backup_browse_restore_forget_prune_check_stats() {
    // Keep 5 at first, so the follow-up forgets remove nothing.
    let env = setup(json!({"policyKeepLastN": 5})).await;
    let src = env.src_str();

    // A snapshot another instance made for a plan of the same name (before
    // our backups: restic takes locks, the server's forget an exclusive one).
    restic_ok(
        &env.repo,
        "pw",
        &[
            "backup",
            "--tag",
            "plan:p1",
            "--tag",
            "created-by:someone-else",
            &format!("{src}/a.txt"),
        ],
    );
    backup(&env).await;
    let snaps = list_snapshots(&env, Some("p1")).await;
    assert_eq!(snaps.len(), 1, "{snaps:?}");
    let first = snaps[0].clone();
    let snap1 = str_of(&first["id"]).to_string();
    assert!(is_hex64(&snap1), "{first}");
    assert_eq!(first["paths"], json!([src]));
    let tags: Vec<&str> = first["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(str_of)
        .collect();
    assert!(tags.contains(&"plan:p1"), "{tags:?}");
    assert!(
        tags.contains(&format!("created-by:{INSTANCE}").as_str()),
        "{tags:?}"
    );
    assert!(num(&first["unixTimeMs"]) > 0);
    // The repo has both; the plan only its own.
    let all = list_snapshots(&env, None).await;
    assert_eq!(all.len(), 2, "{all:?}");
    assert!(ids(&all).contains(&snap1));
    let (status, err) = call_json(
        &env.s,
        "/v1.Backrest/ListSnapshots",
        json!({"repoId": "r1", "planId": "nope"}),
    )
    .await;
    assert_eq!((status, str_of(&err["code"])), (404, "not_found"), "{err}");

    // The snapshot's files.
    let v = ok_json(
        &env.s,
        "/v1.Backrest/ListSnapshotFiles",
        json!({"repoId": "r1", "snapshotId": snap1, "path": src}),
    )
    .await;
    assert_eq!(str_of(&v["path"]), src);
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    let entry = |p: &str| {
        entries
            .iter()
            .find(|e| str_of(&e["path"]) == p)
            .cloned()
            .unwrap_or_else(|| panic!("no entry {p} in {entries:?}"))
    };
    assert_eq!(entry(&format!("{src}/a.txt"))["type"], "file");
    assert_eq!(
        num(&entry(&format!("{src}/a.txt"))["size"]),
        "alpha line\n".len() as i64 * 300
    );
    assert_eq!(num(&entry(&format!("{src}/b.bin"))["size"]), 40_000);
    assert_eq!(entry(&format!("{src}/sub"))["type"], "dir");
    assert_eq!(entry(&format!("{src}/a.txt"))["name"], "a.txt");
    // Direct children only.
    assert!(
        !entries
            .iter()
            .any(|e| str_of(&e["path"]).ends_with("c.txt")),
        "{entries:?}"
    );
    let v = ok_json(
        &env.s,
        "/v1.Backrest/ListSnapshotFiles",
        json!({"repoId": "r1", "snapshotId": snap1, "path": format!("{src}/sub")}),
    )
    .await;
    let entries = v["entries"].as_array().cloned().unwrap_or_default();
    let find = |p: String| {
        entries
            .iter()
            .find(|e| str_of(&e["path"]) == p)
            .cloned()
            .unwrap_or_else(|| panic!("no entry {p} in {entries:?}"))
    };
    assert_eq!(
        num(&find(format!("{src}/sub/c.txt"))["size"]),
        "charlie line\n".len() as i64 * 100
    );
    assert_eq!(num(&find(format!("{src}/sub/d.bin"))["size"]), 30_000);
    assert_eq!(find(format!("{src}/sub/deep"))["type"], "dir");
    // The UI asks with a trailing slash; "/" is the snapshot's top.
    let v = ok_json(
        &env.s,
        "/v1.Backrest/ListSnapshotFiles",
        json!({"repoId": "r1", "snapshotId": snap1, "path": format!("{src}/sub/")}),
    )
    .await;
    assert_eq!(str_of(&v["path"]), format!("{src}/sub/"));
    assert!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| str_of(&e["path"]) == format!("{src}/sub/c.txt")),
        "{v}"
    );
    let v = ok_json(
        &env.s,
        "/v1.Backrest/ListSnapshotFiles",
        json!({"repoId": "r1", "snapshotId": snap1, "path": "/"}),
    )
    .await;
    let top = src.split('/').nth(1).unwrap();
    assert!(
        v["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| str_of(&e["name"]) == top && e["type"] == "dir"),
        "{v}"
    );
    let (status, err) = call_json(
        &env.s,
        "/v1.Backrest/ListSnapshotFiles",
        json!({"repoId": "r1", "snapshotId": snap1, "path": ""}),
    )
    .await;
    assert_eq!(status, 400, "{err}");

    // Restore a subdirectory: it lands at <target>/sub.
    let target = env.path("restored");
    let v = ok_json(
        &env.s,
        "/v1.Backrest/Restore",
        json!({"repoId": "r1", "planId": "p1", "snapshotId": snap1, "path": format!("{src}/sub"), "target": target}),
    )
    .await;
    let rid = num(&v["operationId"]);
    assert!(rid > 0, "{v}");
    let op = wait_op(&env.s, rid, Duration::from_secs(30)).await;
    assert_eq!(op["status"], "STATUS_SUCCESS", "{op}");
    assert_eq!(op["snapshotId"], snap1.as_str());
    assert_eq!(
        str_of(&op["operationRestore"]["target"]),
        target.to_string_lossy()
    );
    for f in ["c.txt", "d.bin", "deep/e.txt"] {
        let want = std::fs::read(env.src.join("sub").join(f)).unwrap();
        let got = std::fs::read(target.join("sub").join(f))
            .unwrap_or_else(|e| panic!("{f} not restored: {e}"));
        assert!(got == want, "{f} restored with different bytes");
    }
    let top: Vec<String> = std::fs::read_dir(&target)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        top,
        vec!["sub".to_string()],
        "only the item lands in the target"
    );
    // A target that exists is refused.
    let (status, err) = call_json(
        &env.s,
        "/v1.Backrest/Restore",
        json!({"repoId": "r1", "planId": "p1", "snapshotId": snap1, "path": src, "target": target}),
    )
    .await;
    assert_eq!(status, 400, "{err}");

    // Two more backups of a changed source.
    std::fs::write(env.src.join("a.txt"), "changed\n").unwrap();
    backup(&env).await;
    std::fs::write(env.src.join("f.txt"), "new file\n").unwrap();
    backup(&env).await;
    let plan_snaps = ids(&list_snapshots(&env, Some("p1")).await);
    assert_eq!(
        plan_snaps.len(),
        3,
        "keep-last-5 follow-ups must forget nothing: {plan_snaps:?}"
    );
    assert_eq!(plan_snaps[0], snap1);
    let newest = plan_snaps[2].clone();
    // Each backup's follow-ups (index, retention forget) have run; keep-last-5
    // forgot nothing. (A follow-up still queued would run with the config
    // changed below.)
    let list = wait_ops(
        &env.s,
        json!({"planId": "p1"}),
        Duration::from_secs(30),
        "index ops and follow-up forgets of the three backups",
        |l| {
            plan_snaps
                .iter()
                .all(|id| index_ops(l).iter().any(|o| &o["snapshotId"] == id))
                && l.iter()
                    .filter(|o| o.get("operationForget").is_some() && is_done(o))
                    .count()
                    == 3
        },
    )
    .await;
    for f in list.iter().filter(|o| o.get("operationForget").is_some()) {
        assert_eq!(f["status"], "STATUS_SUCCESS", "{f}");
        assert!(
            f["operationForget"]["forget"]
                .as_array()
                .is_none_or(|a| a.is_empty()),
            "{f}"
        );
        assert!(
            backup_ops(&list).iter().any(|b| b["flowId"] == f["flowId"]),
            "a follow-up forget joins its backup's flow: {f}"
        );
    }

    // Retention keep-last-1 through the Forget RPC.
    let mut cfg = ok_json(&env.s, "/v1.Backrest/GetConfig", json!({})).await;
    cfg["plans"][0]["retention"] = json!({"policyKeepLastN": 1});
    ok_json(&env.s, "/v1.Backrest/SetConfig", cfg).await;
    // SetConfig runs garbage collection 1 s later (§7.10), which deletes the
    // flows of forgotten snapshots: let it pass first, so they can be seen.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let v = ok_json(
        &env.s,
        "/v1.Backrest/Forget",
        json!({"repoId": "r1", "planId": "p1"}),
    )
    .await;
    let fid = num(&v["operationId"]);
    assert!(fid > 0, "{v}");
    let op = wait_op(&env.s, fid, Duration::from_secs(30)).await;
    assert_eq!(op["status"], "STATUS_SUCCESS", "{op}");
    let mut removed: Vec<String> = op["operationForget"]["forget"]
        .as_array()
        .unwrap_or_else(|| {
            panic!(
                "nothing forgotten: {op}\nsnapshots: {}",
                restic_ok(&env.repo, "pw", &["snapshots", "--no-lock"])
            )
        })
        .iter()
        .map(|x| str_of(&x["id"]).to_string())
        .collect();
    removed.sort();
    let mut want = plan_snaps[..2].to_vec();
    want.sort();
    assert_eq!(removed, want, "{op}");
    assert_eq!(
        op["operationForget"]["policy"],
        json!({"policyKeepLastN": 1})
    );
    assert_eq!(
        ids(&list_snapshots(&env, Some("p1")).await),
        vec![newest.clone()]
    );
    // Only the plan's own snapshots were touched.
    assert_eq!(list_snapshots(&env, None).await.len(), 2);

    // Index: the removed snapshots' index ops are forgotten, the kept one isn't.
    assert_eq!(repo_task(&env, "TASK_INDEX_SNAPSHOTS").await, 0);
    let list = wait_ops(
        &env.s,
        json!({"planId": "p1"}),
        Duration::from_secs(15),
        "forgotten index ops",
        |l| {
            want.iter().all(|id| {
                index_ops(l).iter().any(|o| {
                    &o["snapshotId"] == id && o["operationIndexSnapshot"]["forgot"] == true
                })
            })
        },
    )
    .await;
    let kept = index_ops(&list)
        .into_iter()
        .find(|o| o["snapshotId"] == newest.as_str())
        .unwrap();
    assert!(kept["operationIndexSnapshot"]["forgot"] != true, "{kept}");

    // A no-op config round trip runs GC: the forgotten snapshots' flows
    // (backup, index, follow-up forget) go; the kept one and the restore stay.
    let cfg = ok_json(&env.s, "/v1.Backrest/GetConfig", json!({})).await;
    ok_json(&env.s, "/v1.Backrest/SetConfig", cfg).await;
    let list = wait_ops(
        &env.s,
        json!({}),
        Duration::from_secs(15),
        "GC of the forgotten snapshots' flows",
        |l| {
            !l.iter().any(|o| {
                want.contains(&str_of(&o["snapshotId"]).to_string())
                    && o.get("operationRestore").is_none()
            })
        },
    )
    .await;
    assert!(
        list.iter().any(|o| num(&o["id"]) == rid),
        "the restore op must stay: {list:?}"
    );
    assert!(
        index_ops(&list)
            .iter()
            .any(|o| o["snapshotId"] == newest.as_str()),
        "{list:?}"
    );
    assert!(
        backup_ops(&list)
            .iter()
            .any(|o| o["snapshotId"] == newest.as_str()),
        "{list:?}"
    );

    // Prune: its output streams as text.
    let pid = repo_task(&env, "TASK_PRUNE").await;
    assert!(pid > 0);
    let op = wait_op(&env.s, pid, Duration::from_secs(30)).await;
    assert_eq!(op["status"], "STATUS_SUCCESS", "{op}");
    let logref = str_of(&op["operationPrune"]["outputLogref"]).to_string();
    assert!(!logref.is_empty(), "{op}");
    let text = read_log(&env.s, &logref).await;
    assert!(
        text.contains("collecting packs for deletion and repacking"),
        "prune output: {text}"
    );
    assert!(
        !text.contains("[restic]"),
        "the output log is restic's text only: {text}"
    );

    // Check.
    let cid = repo_task(&env, "TASK_CHECK").await;
    let op = wait_op(&env.s, cid, Duration::from_secs(30)).await;
    assert_eq!(op["status"], "STATUS_SUCCESS", "{op}");
    let text = read_log(&env.s, str_of(&op["operationCheck"]["outputLogref"])).await;
    assert!(
        text.contains("no errors were found"),
        "check output: {text}"
    );

    // Stats.
    let sid = repo_task(&env, "TASK_STATS").await;
    let op = wait_op(&env.s, sid, Duration::from_secs(30)).await;
    assert_eq!(op["status"], "STATUS_SUCCESS", "{op}");
    let stats = &op["operationStats"]["stats"];
    assert!(num(&stats["totalSize"]) > 0, "{op}");
    assert_eq!(num(&stats["snapshotCount"]), 2, "{op}");
    assert!(num(&stats["totalBlobCount"]) > 0, "{op}");

    // Index twice more: idempotent. A stats task queued after them (same
    // repo, lower priority) finishes only once both have run.
    let before = index_ops(&ops(&env.s, json!({})).await).len();
    assert_eq!(repo_task(&env, "TASK_INDEX_SNAPSHOTS").await, 0);
    assert_eq!(repo_task(&env, "TASK_INDEX_SNAPSHOTS").await, 0);
    let barrier = repo_task(&env, "TASK_STATS").await;
    wait_op(&env.s, barrier, Duration::from_secs(30)).await;
    let all = ops(&env.s, json!({})).await;
    let idx = index_ops(&all);
    assert_eq!(
        idx.len(),
        before,
        "indexing again added operations: {idx:?}"
    );
    let mut per_snapshot = std::collections::HashMap::new();
    for o in &idx {
        *per_snapshot
            .entry(str_of(&o["snapshotId"]).to_string())
            .or_insert(0) += 1;
    }
    assert!(
        per_snapshot.values().all(|n| *n == 1),
        "duplicate index ops: {per_snapshot:?}"
    );
    // Every snapshot restic has is indexed (the foreign one too).
    for id in ids(&list_snapshots(&env, None).await) {
        assert!(per_snapshot.contains_key(&id), "snapshot {id} not indexed");
    }
}

// 4. RunCommand.
#[tokio::test]
async fn run_command_output_goes_to_its_log_and_failures_are_errors() {
    let env = setup(json!({"policyKeepLastN": 1})).await;
    backup(&env).await;
    let snaps = ids(&list_snapshots(&env, None).await);
    assert_eq!(snaps.len(), 1);

    let v = ok_json(
        &env.s,
        "/v1.Backrest/RunCommand",
        json!({"repoId": "r1", "command": "snapshots --json"}),
    )
    .await;
    let id = num(&v["operationId"]);
    assert!(id > 0, "{v}");
    let op = op_by_id(&env.s, id).await;
    assert_eq!(
        op["status"], "STATUS_SUCCESS",
        "RunCommand answers once the command has finished: {op}"
    );
    assert_eq!(op["planId"], "_system_");
    assert_eq!(op["operationRunCommand"]["command"], "snapshots --json");
    let logref = str_of(&op["operationRunCommand"]["outputLogref"]).to_string();
    assert!(!logref.is_empty(), "{op}");
    let text = read_log(&env.s, &logref).await;
    assert!(
        text.contains(&snaps[0]),
        "output of `snapshots --json`: {text}"
    );
    assert!(
        num(&op["operationRunCommand"]["outputSizeBytes"]) > 0,
        "{op}"
    );

    let (status, err) = call_json(
        &env.s,
        "/v1.Backrest/RunCommand",
        json!({"repoId": "r1", "command": "nosuchcommand"}),
    )
    .await;
    assert_ne!(status, 200, "{err}");
    assert!(
        err["code"].is_string() && str_of(&err["message"]).contains("nosuchcommand"),
        "{err}"
    );
    let list = ops(&env.s, json!({"planId": "_system_"})).await;
    let bad = list
        .iter()
        .find(|o| o["operationRunCommand"]["command"] == "nosuchcommand")
        .unwrap_or_else(|| panic!("no op for the failed command: {list:?}"));
    assert_eq!(bad["status"], "STATUS_ERROR", "{bad}");
    let text = read_log(&env.s, str_of(&bad["operationRunCommand"]["outputLogref"])).await;
    assert!(
        text.contains("unknown command"),
        "restic's diagnostic belongs in the output log: {text}"
    );
    // Commands within 30 minutes share a flow (the UI groups a session).
    assert_eq!(bad["flowId"], op["flowId"]);

    // Unknown repo.
    let (status, err) = call_json(
        &env.s,
        "/v1.Backrest/RunCommand",
        json!({"repoId": "nope", "command": "snapshots"}),
    )
    .await;
    assert_eq!((status, str_of(&err["code"])), (404, "not_found"), "{err}");
}

// 5. Failing backups.
#[tokio::test]
async fn failing_backups_answer_errors_and_record_them() {
    let env = setup(json!({"policyKeepLastN": 1})).await;

    // Unknown plan.
    let (status, err) = call_json(&env.s, "/v1.Backrest/Backup", json!({"value": "nope"})).await;
    assert_eq!((status, str_of(&err["code"])), (404, "not_found"), "{err}");

    // A plan whose path doesn't exist.
    let missing = env.path("missing-dir");
    let mut cfg = ok_json(&env.s, "/v1.Backrest/GetConfig", json!({})).await;
    cfg["plans"].as_array_mut().unwrap().push(
        json!({"id": "p2", "repo": "r1", "paths": [missing], "retention": {"policyKeepLastN": 1}}),
    );
    ok_json(&env.s, "/v1.Backrest/SetConfig", cfg).await;
    let (status, err) = call_json(&env.s, "/v1.Backrest/Backup", json!({"value": "p2"})).await;
    assert_ne!(status, 200, "{err}");
    assert!(
        str_of(&err["message"]).contains(&*missing.to_string_lossy()),
        "{err}"
    );
    let list = ops(&env.s, json!({"planId": "p2"})).await;
    let b = backup_ops(&list);
    assert_eq!(b.len(), 1, "{list:?}");
    assert_eq!(b[0]["status"], "STATUS_ERROR");
    assert!(
        str_of(&b[0]["displayMessage"]).contains(&*missing.to_string_lossy()),
        "{}",
        b[0]
    );

    // The password changed under the repo: restic's words reach the caller.
    let mut cfg = ok_json(&env.s, "/v1.Backrest/GetConfig", json!({})).await;
    let repo = cfg["repos"]
        .as_array_mut()
        .unwrap()
        .iter_mut()
        .find(|r| r["id"] == "r1")
        .unwrap();
    repo["password"] = json!("wrong");
    ok_json(&env.s, "/v1.Backrest/SetConfig", cfg).await;
    let (status, err) = call_json(&env.s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    assert_ne!(status, 200, "{err}");
    assert_eq!(str_of(&err["code"]), "unknown", "{err}");
    assert!(str_of(&err["message"]).contains("wrong password"), "{err}");
    let list = ops(&env.s, json!({"planId": "p1"})).await;
    let b = backup_ops(&list);
    assert_eq!(b.len(), 1, "{list:?}");
    assert_eq!(b[0]["status"], "STATUS_ERROR", "{}", b[0]);
    assert!(
        str_of(&b[0]["displayMessage"]).contains("wrong password"),
        "{}",
        b[0]
    );
    assert!(str_of(&b[0]["snapshotId"]).is_empty());
    assert_eq!(
        restic_ok(&env.repo, "pw", &["snapshots", "--json", "--no-lock"]).trim(),
        "[]"
    );
}

// 6. Dry run.
#[tokio::test]
async fn dry_run_backup_saves_nothing() {
    let env = setup(json!({"policyKeepLastN": 1})).await;
    assert!(list_snapshots(&env, None).await.is_empty());

    ok_json(
        &env.s,
        "/v1.Backrest/Backup",
        json!({"value": "p1", "dryRun": true}),
    )
    .await;
    let list = ops(&env.s, json!({"planId": "p1"})).await;
    let b = backup_ops(&list);
    assert_eq!(b.len(), 1, "{list:?}");
    let b = b[0];
    assert_eq!(b["status"], "STATUS_SUCCESS", "{b}");
    assert_eq!(b["operationBackup"]["dryRun"], true, "{b}");
    assert!(str_of(&b["snapshotId"]).is_empty(), "{b}");
    assert!(
        str_of(&b["displayMessage"])
            .to_lowercase()
            .contains("dry run"),
        "{b}"
    );
    let summary = &b["operationBackup"]["lastStatus"]["summary"];
    assert_eq!(num(&summary["filesNew"]), FILES, "{b}");
    assert!(
        str_of(&summary["snapshotId"]).is_empty(),
        "restic 0.14's phantom dry-run id must not leak: {b}"
    );
    assert!(list_snapshots(&env, None).await.is_empty());
    assert_eq!(
        restic_ok(&env.repo, "pw", &["snapshots", "--json", "--no-lock"]).trim(),
        "[]"
    );
    // No follow-ups: no forget op in its flow.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let flow = ops(&env.s, json!({"flowId": b["flowId"]})).await;
    assert_eq!(flow.len(), 1, "a dry run has no follow-ups: {flow:?}");
}

// Prune queues a *non-forced* stats task (§7.5, §7.7): it runs only when no
// stats operation ended in the last 24 hours.
#[tokio::test]
async fn prune_after_recent_stats_does_not_run_stats_again() {
    let env = setup(json!({"policyKeepLastN": 1})).await;
    let sid = repo_task(&env, "TASK_STATS").await;
    let op = wait_op(&env.s, sid, Duration::from_secs(30)).await;
    assert_eq!(op["status"], "STATUS_SUCCESS", "{op}");

    let pid = repo_task(&env, "TASK_PRUNE").await;
    let op = wait_op(&env.s, pid, Duration::from_secs(30)).await;
    assert_eq!(op["status"], "STATUS_SUCCESS", "{op}");
    // Follow-ups are queued (their PENDING op recorded) as the prune ends.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let stats: Vec<Value> = ops(&env.s, json!({"planId": "_system_"}))
        .await
        .into_iter()
        .filter(|o| o.get("operationStats").is_some())
        .collect();
    assert_eq!(
        stats.len(),
        1,
        "stats ran minutes ago: the prune's stats follow-up must not run: {stats:?}"
    );
}

/// The task log of the newest backup operation of plan p1.
/// Waits for the index operation of snapshot `id` in plan p1.
async fn wait_indexed(env: &Env, id: &str) {
    wait_ops(
        &env.s,
        json!({"planId": "p1"}),
        Duration::from_secs(30),
        "index op",
        |l| index_ops(l).iter().any(|o| str_of(&o["snapshotId"]) == id),
    )
    .await;
}

async fn last_backup_log(env: &Env) -> (Value, String) {
    let list = ops(&env.s, json!({"planId": "p1"})).await;
    let b = (*backup_ops(&list).last().expect("a backup op")).clone();
    let text = read_log(&env.s, str_of(&b["logref"])).await;
    (b, text)
}

// With a current snapshot index the backup takes its parent from the index
// (no `restic snapshots` run, one repository open saved) and, on a local
// repository, the full snapshot id from the repository's folder (restic 0.14
// prints 8 characters). A parent removed behind the server's back is looked up
// in the repository and the backup still succeeds.
#[tokio::test]
async fn backup_parent_comes_from_a_current_index() {
    let env = setup(json!({"policyKeepAll": true})).await;
    backup(&env).await;
    let (first, log1) = last_backup_log(&env).await;
    let first_id = str_of(&first["snapshotId"]).to_string();
    assert!(is_hex64(&first_id), "{first}");
    // Fresh server: the index pass of AddRepo ran, the repo had no snapshot.
    assert!(!log1.contains("--parent"), "{log1}");
    // Wait for the backup's index pass, which makes the index current again.
    wait_indexed(&env, &first_id).await;

    std::fs::write(env.src.join("new-file.txt"), b"second backup\n").unwrap();
    backup(&env).await;
    let (second, log2) = last_backup_log(&env).await;
    let second_id = str_of(&second["snapshotId"]).to_string();
    assert!(is_hex64(&second_id) && second_id != first_id, "{second}");
    let commands: Vec<&str> = log2.lines().filter(|l| l.contains("command:")).collect();
    assert_eq!(commands.len(), 1, "one restic process per backup: {log2}");
    assert!(
        commands[0].contains(&format!("--parent {first_id}")),
        "{log2}"
    );
    // The full id matches what restic itself lists.
    let listed = restic_ok(&env.repo, "pw", &["snapshots", "--json", "--no-lock"]);
    assert!(listed.contains(&second_id), "{listed}");

    // Remove the indexed parent behind the server's back.
    wait_indexed(&env, &second_id).await;
    restic_ok(&env.repo, "pw", &["forget", &second_id]);
    std::fs::write(env.src.join("third.txt"), b"third backup\n").unwrap();
    backup(&env).await;
    let (third, log3) = last_backup_log(&env).await;
    assert_eq!(third["status"], "STATUS_SUCCESS", "{third}");
    assert!(log3.contains("no longer exists"), "{log3}");
    assert!(log3.contains(&format!("--parent {first_id}")), "{log3}");
}
