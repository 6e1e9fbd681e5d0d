//! Downloads of restored files, end to end: the real binary and the real
//! restic back up a tree (nested directories, a link pointing outside it, a
//! link inside it), restore it, and GetDownloadURL links then serve a file as
//! it is and a directory as a `.tar.gz` (decoded and checked here). Escapes
//! (`..`, `%2e%2e`, absolute paths, NUL, links out) and forged tokens are
//! refused; the RPC needs a login when auth is on but the link does not; a
//! link survives a restart and expires 24 hours after issue (checked by
//! restarting with the testing clock knob). Links to a snapshot's files
//! (index-snapshot operations) stream `restic dump`: a file as it is, a
//! folder as a tar; restic's errors come back before the headers, a restic
//! that dies later truncates the transfer, and a client that leaves takes
//! restic with it.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SECRET: &str = "TOP SECRET: this must never be downloadable";
const TIME_OFFSET_ENV: &str = "BACKREST_RS_TEST_TIME_OFFSET_SECS";

/// The tree that gets backed up: regular files at three depths, a name
/// that needs encoding, a link pointing out of the tree (at `secret`), a
/// link that stays inside.
fn make_tree(src: &Path, secret: &Path) {
    std::fs::create_dir_all(src.join("nested/deeper")).unwrap();
    std::fs::write(src.join("top.txt"), "top file\n").unwrap();
    std::fs::write(src.join("data.bin"), noise(7, 200_000)).unwrap();
    std::fs::write(src.join("naïve file.txt"), "accents\n").unwrap();
    std::fs::write(src.join("nested/inner.txt"), "inner\n".repeat(50)).unwrap();
    std::fs::write(src.join("nested/deeper/leaf.txt"), "leaf\n").unwrap();
    std::os::unix::fs::symlink(secret, src.join("link-out")).unwrap();
    std::os::unix::fs::symlink("../top.txt", src.join("nested/link-in")).unwrap();
}

struct Env {
    s: Server,
    tmp: tempfile::TempDir,
}

impl Env {
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
}

/// A server with repo `r1` and plan `p1` over `<tmp>/src`, backed up once.
/// `extra_plans` may make more files under `<tmp>` and returns more plans.
async fn setup(extra_plans: impl FnOnce(&Path) -> Vec<Value>) -> Env {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("outside")).unwrap();
    let secret = tmp.path().join("outside/secret.txt");
    std::fs::write(&secret, SECRET).unwrap();
    make_tree(&tmp.path().join("src"), &secret);

    set_instance(&s, "downloads-test").await;
    let mut cfg = add_repo(&s, "r1", &tmp.path().join("repo"), "pw").await;
    let mut plans = vec![json!({"id": "p1", "repo": "r1", "paths": [tmp.path().join("src")]})];
    plans.extend(extra_plans(tmp.path()));
    cfg["plans"] = json!(plans);
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;
    ok_json(&s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    Env { s, tmp }
}

/// Polls until `pred` gives a value.
async fn wait_for<T>(
    s: &Server,
    what: &str,
    timeout: Duration,
    mut pred: impl AsyncFnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = pred().await {
            return v;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not within {timeout:?}\nserver log:\n{}",
                s.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn s_status(op: &Value) -> &str {
    str_of(&op["status"])
}

async fn snapshot_of(env: &Env, plan: &str) -> String {
    let v = ok_json(
        &env.s,
        "/v1.Backrest/ListSnapshots",
        json!({"repoId": "r1", "planId": plan}),
    )
    .await;
    str_of(&v["snapshots"][0]["id"]).to_string()
}

/// Schedules a restore of all of `<tmp>/src` into `<tmp>/<target>` (the tree
/// lands at `<tmp>/<target>/src`); returns the operation id.
async fn restore(env: &Env, snapshot: &str, target: &str) -> i64 {
    let v = ok_json(
        &env.s,
        "/v1.Backrest/Restore",
        json!({"repoId": "r1", "planId": "p1", "snapshotId": snapshot,
               "path": env.path("src"), "target": env.path(target)}),
    )
    .await;
    num(&v["operationId"])
}

/// GetDownloadURL: Ok(the relative URL) or Err((HTTP status, Connect code)).
async fn download_url(s: &Server, op_id: i64, file_path: &str) -> Result<String, (u16, String)> {
    let (status, v) = call_json(
        s,
        "/v1.Backrest/GetDownloadURL",
        json!({"opId": op_id.to_string(), "filePath": file_path}),
    )
    .await;
    if status == 200 {
        Ok(s_str(&v["value"]))
    } else {
        Err((status, s_str(&v["code"])))
    }
}

fn s_str(v: &Value) -> String {
    str_of(v).to_string()
}

/// The absolute path of a URL that GetDownloadURL returned (`./download/…`).
fn link_path(url: &str) -> String {
    let rest = url
        .strip_prefix("./download/")
        .unwrap_or_else(|| panic!("not a ./download/ URL: {url}"));
    assert!(url.ends_with('/'), "{url}");
    format!("/download/{rest}")
}

struct Got {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Got {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap())
            .unwrap_or("")
    }
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn get(s: &Server, path: &str) -> Got {
    let resp = client().get(s.url(path)).send().await.unwrap();
    Got {
        status: resp.status().as_u16(),
        headers: resp.headers().clone(),
        body: resp.bytes().await.unwrap().to_vec(),
    }
}

/// A GET sent byte for byte as written: HTTP clients normalize `..` and
/// `%2e%2e` out of URLs before sending, which would hide what the server
/// does with them. Returns (status, body).
fn raw_get(s: &Server, path: &str) -> (u16, String) {
    let addr = s.base.strip_prefix("http://").unwrap();
    let mut conn = std::net::TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = Vec::new();
    conn.read_to_end(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer).into_owned();
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer}"));
    let body = answer
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

#[derive(Debug, PartialEq)]
enum Entry {
    Dir,
    File(Vec<u8>),
    Link(String),
}

/// A `.tar.gz` as name → entry.
fn untar(targz: &[u8]) -> BTreeMap<String, Entry> {
    let mut ar = tar::Archive::new(flate2::read::GzDecoder::new(targz));
    let mut out = BTreeMap::new();
    for e in ar.entries().expect("a tar archive") {
        let mut e = e.expect("a complete tar entry");
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let entry = match e.header().entry_type() {
            tar::EntryType::Directory => Entry::Dir,
            tar::EntryType::Symlink => Entry::Link(
                e.link_name()
                    .unwrap()
                    .unwrap()
                    .to_string_lossy()
                    .into_owned(),
            ),
            tar::EntryType::Regular => {
                let mut data = Vec::new();
                e.read_to_end(&mut data).unwrap();
                Entry::File(data)
            }
            other => panic!("unexpected entry type {other:?} for {name}"),
        };
        assert!(out.insert(name.clone(), entry).is_none(), "{name} twice");
    }
    out
}

fn assert_download_headers(g: &Got, what: &str) {
    assert_eq!(g.header("x-content-type-options"), "nosniff", "{what}");
    assert_eq!(g.header("x-frame-options"), "DENY", "{what}");
    assert_eq!(g.header("cache-control"), "no-store", "{what}");
}

/// Escapes and bad tokens never get the secret file, and say why.
fn assert_refused(got: (u16, String), status: u16, what: &str) {
    assert_eq!(got.0, status, "{what}: {}", got.1);
    assert!(!got.1.contains(SECRET), "{what} leaked the secret");
    assert!(!got.1.trim().is_empty(), "{what}: the refusal says why");
}

#[tokio::test]
async fn restored_files_and_directories_download_and_nothing_escapes() {
    let mut env = setup(|_| vec![]).await;
    let snap = snapshot_of(&env, "p1").await;
    let rid = restore(&env, &snap, "restored").await;
    let op = wait_op(&env.s, rid, Duration::from_secs(60)).await;
    assert_eq!(s_status(&op), "STATUS_SUCCESS", "{op}");
    let src = env.path("src");

    // A file, as it is.
    let url = download_url(&env.s, rid, "src/top.txt").await.unwrap();
    let top_link = link_path(&url);
    let g = get(&env.s, &top_link).await;
    assert_eq!(g.status, 200, "{}", g.text());
    assert_eq!(g.body, std::fs::read(src.join("top.txt")).unwrap());
    assert_eq!(g.header("content-type"), "text/plain");
    assert_eq!(g.header("content-length"), "9");
    assert_eq!(
        g.header("content-disposition"),
        "attachment; filename=\"top.txt\""
    );
    assert_download_headers(&g, "file");
    let url = download_url(&env.s, rid, "src/data.bin").await.unwrap();
    let g = get(&env.s, &link_path(&url)).await;
    assert_eq!(g.status, 200);
    assert!(g.body == noise(7, 200_000), "data.bin differs");
    assert_eq!(g.header("content-type"), "application/octet-stream");
    // A name that is not ASCII keeps its spelling in filename*.
    let url = download_url(&env.s, rid, "src/naïve file.txt")
        .await
        .unwrap();
    let g = get(&env.s, &link_path(&url)).await;
    assert_eq!(g.body, b"accents\n");
    assert_eq!(
        g.header("content-disposition"),
        "attachment; filename=\"na_ve file.txt\"; filename*=UTF-8''na%C3%AFve%20file.txt"
    );

    // A directory, as a .tar.gz of everything below it; links stay links.
    let url = download_url(&env.s, rid, "src").await.unwrap();
    let dir_link = link_path(&url);
    let g = get(&env.s, &dir_link).await;
    assert_eq!(g.status, 200, "{}", g.text());
    assert_eq!(g.header("content-type"), "application/gzip");
    assert_eq!(
        g.header("content-disposition"),
        "attachment; filename=\"src.tar.gz\""
    );
    assert_download_headers(&g, "directory");
    let tree = untar(&g.body);
    let file = |p: &str| Entry::File(std::fs::read(src.join(p)).unwrap());
    let want = BTreeMap::from([
        ("data.bin".to_string(), file("data.bin")),
        (
            "link-out".to_string(),
            Entry::Link(env.path("outside/secret.txt").to_string_lossy().into()),
        ),
        ("naïve file.txt".to_string(), file("naïve file.txt")),
        ("nested".to_string(), Entry::Dir),
        ("nested/deeper".to_string(), Entry::Dir),
        (
            "nested/deeper/leaf.txt".to_string(),
            file("nested/deeper/leaf.txt"),
        ),
        ("nested/inner.txt".to_string(), file("nested/inner.txt")),
        (
            "nested/link-in".to_string(),
            Entry::Link("../top.txt".into()),
        ),
        ("top.txt".to_string(), file("top.txt")),
    ]);
    assert_eq!(tree, want);

    // The whole restore (the UI's "Download files": file path "").
    let url = download_url(&env.s, rid, "").await.unwrap();
    let g = get(&env.s, &link_path(&url)).await;
    assert_eq!(g.status, 200);
    assert_eq!(
        g.header("content-disposition"),
        "attachment; filename=\"restored.tar.gz\""
    );
    let whole = untar(&g.body);
    assert_eq!(whole.get("src"), Some(&Entry::Dir));
    assert_eq!(
        whole.get("src/nested/deeper/leaf.txt"),
        Some(&file("nested/deeper/leaf.txt"))
    );
    assert_eq!(whole.len(), want.len() + 1);

    // Below a directory link: one file, or a subdirectory; a link inside
    // the restore is followed.
    let g = get(&env.s, &format!("{dir_link}nested/inner.txt")).await;
    assert_eq!(
        (g.status, g.body),
        (200, std::fs::read(src.join("nested/inner.txt")).unwrap())
    );
    let g = get(&env.s, &format!("{dir_link}nested/deeper/")).await;
    assert_eq!(
        untar(&g.body),
        BTreeMap::from([("leaf.txt".to_string(), file("nested/deeper/leaf.txt"))])
    );
    let g = get(&env.s, &format!("{dir_link}nested/link-in")).await;
    assert_eq!((g.status, g.body), (200, b"top file\n".to_vec()));
    let g = get(&env.s, &format!("{dir_link}na%C3%AFve%20file.txt")).await;
    assert_eq!((g.status, g.body), (200, b"accents\n".to_vec()));

    // Escapes, sent byte for byte.
    let escapes = [
        ("../../outside/secret.txt", 400, "dot-dot"),
        (
            "nested/../../../outside/secret.txt",
            400,
            "dot-dot after a name",
        ),
        ("%2e%2e/%2e%2e/outside/secret.txt", 400, "encoded dot-dot"),
        (
            "%2E%2E%2F%2E%2E%2Foutside%2Fsecret.txt",
            400,
            "encoded dot-dot and slashes",
        ),
        ("/etc/passwd", 400, "absolute path"),
        ("%2Fetc%2Fpasswd", 400, "encoded absolute path"),
        ("top.txt%00.png", 400, "NUL"),
        ("%zz", 400, "bad percent-encoding"),
        ("link-out", 403, "a link pointing outside"),
        ("nested/../link-out", 400, "dot-dot to a link"),
        ("missing.txt", 404, "a file that does not exist"),
    ];
    for (rest, status, what) in escapes {
        assert_refused(raw_get(&env.s, &format!("{dir_link}{rest}")), status, what);
    }
    // The same through the RPC: no link is issued.
    for (path, code) in [
        ("../outside/secret.txt", "invalid_argument"),
        ("src/../../outside", "invalid_argument"),
        ("/etc/passwd", "invalid_argument"),
        ("src/link-out", "invalid_argument"),
        ("src/missing.txt", "not_found"),
    ] {
        let err = download_url(&env.s, rid, path).await.unwrap_err();
        assert_eq!(err.1, code, "GetDownloadURL({path:?})");
    }
    // The link-out file link was never issued, but a link to the restore's
    // top cannot reach through it either.
    let url = download_url(&env.s, rid, "").await.unwrap();
    assert_refused(
        raw_get(&env.s, &format!("{}src/link-out", link_path(&url))),
        403,
        "a link out, from the top",
    );

    // Forged and broken tokens.
    let token = top_link
        .strip_prefix("/download/")
        .unwrap()
        .trim_end_matches('/');
    let mut tampered = token.to_string().into_bytes();
    let i = tampered.len() - 3;
    tampered[i] = if tampered[i] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let (header, rest) = token.split_once('.').unwrap();
    let (_, sig) = rest.split_once('.').unwrap();
    use base64::Engine;
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    // The same signature over a payload naming another path.
    let claims: Value =
        serde_json::from_slice(&b64.decode(rest.split('.').next().unwrap()).unwrap()).unwrap();
    let mut sub: Value = serde_json::from_str(str_of(&claims["sub"])).unwrap();
    sub["file_path"] = json!("src/link-out");
    let forged_claims = json!({"sub": sub.to_string(), "exp": claims["exp"]});
    let forged = format!("{header}.{}.{sig}", b64.encode(forged_claims.to_string()));
    for (t, what) in [
        (tampered.as_str(), "tampered signature"),
        (forged.as_str(), "payload changed under the signature"),
        ("not-a-token", "garbage"),
        ("", "no token"),
    ] {
        let got = raw_get(&env.s, &format!("/download/{t}/"));
        assert_refused(got.clone(), 403, what);
        assert!(got.1.contains("not valid"), "{what}: {}", got.1);
    }

    // With auth on, the RPC needs a login; the link does not.
    let hash = ok_json(
        &env.s,
        "/v1.Authentication/HashPassword",
        json!({"value": "pw123"}),
    )
    .await;
    let mut cfg = ok_json(&env.s, "/v1.Backrest/GetConfig", json!({})).await;
    cfg["auth"] =
        json!({"disabled": false, "users": [{"name": "admin", "passwordBcrypt": hash["value"]}]});
    ok_json(&env.s, "/v1.Backrest/SetConfig", cfg).await;
    let err = download_url(&env.s, rid, "src/top.txt").await.unwrap_err();
    assert_eq!(err, (401, "unauthenticated".to_string()));
    let resp = client()
        .post(env.s.url("/v1.Backrest/GetDownloadURL"))
        .basic_auth("admin", Some("pw123"))
        .header("content-type", "application/json")
        .body(json!({"opId": rid.to_string(), "filePath": "src/nested/inner.txt"}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    let inner_link = link_path(str_of(&v["value"]));
    let g = get(&env.s, &inner_link).await;
    assert_eq!((g.status, g.body), (200, "inner\n".repeat(50).into_bytes()));
    assert_eq!(get(&env.s, &top_link).await.status, 200);

    // The key is kept in the data directory, readable by the owner only.
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::metadata(env.s.data_dir().join("download-secret")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);

    // A restart: links issued before it still work.
    env.s.stop();
    let dir = env.s.dir.clone();
    let s2 = ServerBuilder::in_dir(&dir).start();
    let g = get(&s2, &top_link).await;
    assert_eq!(
        (g.status, g.body),
        (200, b"top file\n".to_vec()),
        "after a restart"
    );
    assert_eq!(untar(&get(&s2, &dir_link).await.body), want);
    drop(s2);
    // 23 hours later they still work; 25 hours later they have expired.
    let s3 = ServerBuilder::in_dir(&dir)
        .env(TIME_OFFSET_ENV, &(23 * 3600).to_string())
        .start();
    assert_eq!(
        get(&s3, &top_link).await.status,
        200,
        "23 hours after issue"
    );
    drop(s3);
    let s4 = ServerBuilder::in_dir(&dir)
        .env(TIME_OFFSET_ENV, &(25 * 3600).to_string())
        .start();
    for link in [&top_link, &dir_link, &inner_link] {
        let got = raw_get(&s4, link);
        assert_refused(got.clone(), 403, "25 hours after issue");
        assert!(got.1.contains("expired"), "{}", got.1);
    }
}

#[tokio::test]
async fn links_only_for_successful_restores() {
    // A plan whose backup crawls (rate-limited upload), so a restore queued
    // behind it on the same repo stays PENDING.
    let env = setup(|tmp| {
        let slow = tmp.join("slow");
        std::fs::create_dir(&slow).unwrap();
        std::fs::write(slow.join("big.bin"), noise(3, 4 << 20)).unwrap();
        vec![json!({
            "id": "slow", "repo": "r1", "paths": [slow],
            "backupFlags": ["--limit-upload 1024"]
        })]
    })
    .await;
    let snap = snapshot_of(&env, "p1").await;

    let err = download_url(&env.s, 999_999, "").await.unwrap_err();
    assert_eq!(err, (404, "not_found".to_string()));

    let all = ops(&env.s, json!({"planId": "p1"})).await;
    let backup_op = all
        .iter()
        .find(|o| o.get("operationBackup").is_some())
        .expect("a backup operation");
    let err = download_url(&env.s, num(&backup_op["id"]), "")
        .await
        .unwrap_err();
    assert_eq!(err, (400, "invalid_argument".to_string()), "a backup");
    let index_op = wait_for(
        &env.s,
        "an index operation",
        Duration::from_secs(30),
        async || {
            ops(&env.s, json!({"repoId": "r1"}))
                .await
                .into_iter()
                .find(|o| o.get("operationIndexSnapshot").is_some())
        },
    )
    .await;
    // An index operation gives snapshot links (see below), but for an
    // absolute path inside the snapshot only.
    let err = download_url(&env.s, num(&index_op["id"]), "")
        .await
        .unwrap_err();
    assert_eq!(
        err,
        (400, "invalid_argument".to_string()),
        "an index operation, no path"
    );

    // A restore that failed.
    let failed = restore(&env, "0123456789abcdef", "failed-target").await;
    let op = wait_op(&env.s, failed, Duration::from_secs(60)).await;
    assert_eq!(s_status(&op), "STATUS_ERROR", "{op}");
    let err = download_url(&env.s, failed, "").await.unwrap_err();
    assert_eq!(
        err,
        (400, "failed_precondition".to_string()),
        "a failed restore"
    );

    // A restore still waiting for its turn; once it ran, links work.
    let base = env.s.base.clone();
    let slow_backup = tokio::spawn(async move {
        client()
            .post(format!("{base}/v1.Backrest/Backup"))
            .header("content-type", "application/json")
            .body(json!({"value": "slow"}).to_string())
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let slow_op = wait_for(
        &env.s,
        "the slow backup to run",
        Duration::from_secs(60),
        async || {
            ops(&env.s, json!({"planId": "slow"}))
                .await
                .into_iter()
                .find(|o| o.get("operationBackup").is_some() && s_status(o) == "STATUS_INPROGRESS")
        },
    )
    .await;
    let queued = restore(&env, &snap, "queued-target").await;
    let op = op_by_id(&env.s, queued).await;
    assert_eq!(s_status(&op), "STATUS_PENDING", "{op}");
    let (status, v) = call_json(
        &env.s,
        "/v1.Backrest/GetDownloadURL",
        json!({"opId": queued.to_string(), "filePath": ""}),
    )
    .await;
    assert_eq!(
        (status, str_of(&v["code"])),
        (400, "failed_precondition"),
        "{v}"
    );
    assert!(str_of(&v["message"]).contains("STATUS_PENDING"), "{v}");
    ok_json(
        &env.s,
        "/v1.Backrest/Cancel",
        json!({"operationId": slow_op["id"]}),
    )
    .await;
    let _ = slow_backup.await;
    let op = wait_op(&env.s, queued, Duration::from_secs(60)).await;
    assert_eq!(s_status(&op), "STATUS_SUCCESS", "{op}");
    let url = download_url(&env.s, queued, "src/top.txt").await.unwrap();
    let g = get(&env.s, &link_path(&url)).await;
    assert_eq!((g.status, g.body), (200, b"top file\n".to_vec()));

    // The restored files were removed since: the link answers 404, and no
    // new link is issued.
    std::fs::remove_dir_all(env.path("queued-target")).unwrap();
    let g = get(&env.s, &link_path(&url)).await;
    assert_eq!(g.status, 404, "{}", g.text());
    let err = download_url(&env.s, queued, "").await.unwrap_err();
    assert_eq!(err, (400, "failed_precondition".to_string()));
}

/// `restic dump` processes whose command line mentions `needle`.
fn dump_pids(needle: &str) -> Vec<u32> {
    let mut pids = vec![];
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let Ok(cmd) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let args: Vec<String> = cmd
            .split(|&b| b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        let state = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        let zombie = state
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
        if !zombie && args.iter().any(|a| a == "dump") && args.iter().any(|a| a.contains(needle)) {
            pids.push(pid);
        }
    }
    pids
}

/// A tar as name → contents (regular files only; restic 0.14 writes no
/// entry for the folder asked for itself).
fn untar_plain(tar_bytes: &[u8]) -> BTreeMap<String, Vec<u8>> {
    let mut ar = tar::Archive::new(tar_bytes);
    let mut out = BTreeMap::new();
    for e in ar.entries().expect("a tar archive") {
        let mut e = e.expect("a complete tar entry");
        if e.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = e.path().unwrap().to_string_lossy().into_owned();
        let mut data = Vec::new();
        e.read_to_end(&mut data).unwrap();
        out.insert(name, data);
    }
    out
}

/// A token for `payload`, signed with the server's own download key: what
/// a link to an operation GetDownloadURL refuses would look like.
fn signed_token(s: &Server, payload: Value) -> String {
    let key = std::fs::read(s.data_dir().join("download-secret")).unwrap();
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": payload.to_string(), "exp": exp}),
        &jsonwebtoken::EncodingKey::from_secret(&key).unwrap(),
    )
    .unwrap()
}

const REPO_PASSWORD: &str = "dump-test-repo-password";

#[tokio::test]
async fn snapshot_files_and_folders_download_through_restic_dump() {
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("snap");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("known.txt"), "known content\n").unwrap();
    std::fs::write(src.join("sub/a.txt"), "first\n").unwrap();
    std::fs::write(src.join("sub/b.txt"), noise(5, 40_000)).unwrap();
    std::fs::write(src.join("crème brûlée.txt"), "dessert\n").unwrap();
    // Several times what the server holds back, and more than the pipes
    // and socket buffers between restic and a client that stops reading.
    let big = noise(11, 24 << 20);
    std::fs::write(src.join("big.bin"), &big).unwrap();
    set_instance(&s, "snapshot-downloads").await;
    let mut cfg = add_repo(&s, "r1", &tmp.path().join("repo"), REPO_PASSWORD).await;
    cfg["plans"] = json!([{"id": "p1", "repo": "r1", "paths": [src]}]);
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;
    ok_json(&s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    let index_op = wait_for(
        &s,
        "an index operation",
        Duration::from_secs(60),
        async || {
            ops(&s, json!({"repoId": "r1"}))
                .await
                .into_iter()
                .find(|o| o.get("operationIndexSnapshot").is_some())
        },
    )
    .await;
    let index_id = num(&index_op["id"]);
    let in_snap = |p: &str| format!("{}/{p}", src.display());

    // A file: its bytes, named after it, with its length (it fits in what
    // the server holds back).
    let url = download_url(&s, index_id, &in_snap("known.txt"))
        .await
        .unwrap();
    let g = get(&s, &link_path(&url)).await;
    assert_eq!(g.status, 200, "{}", g.text());
    assert_eq!(g.body, b"known content\n");
    assert_eq!(
        g.header("content-disposition"),
        "attachment; filename=\"known.txt\""
    );
    assert_eq!(g.header("content-type"), "application/octet-stream");
    assert_eq!(g.header("content-length"), "14");
    assert_download_headers(&g, "snapshot file");

    // A name that is not ASCII keeps its spelling in filename*.
    let url = download_url(&s, index_id, &in_snap("crème brûlée.txt"))
        .await
        .unwrap();
    let g = get(&s, &link_path(&url)).await;
    assert_eq!((g.status, g.body.as_slice()), (200, &b"dessert\n"[..]));
    assert_eq!(
        g.header("content-disposition"),
        "attachment; filename=\"cr_me br_l_e.txt\"; \
         filename*=UTF-8''cr%C3%A8me%20br%C3%BBl%C3%A9e.txt"
    );

    // A big file, streamed past the held-back part.
    let url = download_url(&s, index_id, &in_snap("big.bin"))
        .await
        .unwrap();
    let big_link = link_path(&url);
    let g = get(&s, &big_link).await;
    assert_eq!(g.status, 200, "{}", g.text());
    assert!(g.body == big, "big.bin differs ({} bytes)", g.body.len());
    assert_eq!(g.header("content-type"), "application/octet-stream");

    // A folder: a tar (restic's, with the snapshot's full paths) named .tar.
    let url = download_url(&s, index_id, &in_snap("sub")).await.unwrap();
    let sub_link = link_path(&url);
    let g = get(&s, &sub_link).await;
    assert_eq!(g.status, 200, "{}", g.text());
    assert_eq!(g.header("content-type"), "application/x-tar");
    assert_eq!(
        g.header("content-disposition"),
        "attachment; filename=\"sub.tar\""
    );
    let prefix = in_snap("sub/");
    let prefix = prefix.trim_start_matches('/');
    assert_eq!(
        untar_plain(&g.body),
        BTreeMap::from([
            (format!("{prefix}a.txt"), b"first\n".to_vec()),
            (format!("{prefix}b.txt"), noise(5, 40_000)),
        ])
    );
    // Below a folder link: one file of it.
    let g = get(&s, &format!("{sub_link}a.txt")).await;
    assert_eq!((g.status, g.body.as_slice()), (200, &b"first\n"[..]));
    assert_refused(
        raw_get(&s, &format!("{sub_link}../known.txt")),
        400,
        "dot-dot",
    );

    // Not in the snapshot: restic's own words, before any header.
    let url = download_url(&s, index_id, &in_snap("missing.txt"))
        .await
        .unwrap();
    let g = get(&s, &link_path(&url)).await;
    assert_eq!(g.status, 404, "{}", g.text());
    assert!(g.text().contains("not found in snapshot"), "{}", g.text());
    assert!(!g.text().contains(REPO_PASSWORD), "{}", g.text());

    // Paths GetDownloadURL refuses.
    for path in ["", "snap/known.txt", "/a/../known.txt", "/a\0b"] {
        let err = download_url(&s, index_id, path).await.unwrap_err();
        assert_eq!(err, (400, "invalid_argument".into()), "{path:?}");
    }
    // Operations that are not snapshots, and ones that do not exist.
    let backup_op = ops(&s, json!({"planId": "p1"}))
        .await
        .into_iter()
        .find(|o| o.get("operationBackup").is_some())
        .expect("a backup operation");
    let backup_id = num(&backup_op["id"]);
    let err = download_url(&s, backup_id, &in_snap("known.txt"))
        .await
        .unwrap_err();
    assert_eq!(err, (400, "invalid_argument".into()), "a backup operation");
    let err = download_url(&s, 999_999, &in_snap("known.txt"))
        .await
        .unwrap_err();
    assert_eq!(err, (404, "not_found".into()));
    // A genuine snapshot link naming a backup operation, or one that is
    // gone: 404, as Backrest.
    for (op_id, what) in [(backup_id, "a backup operation"), (999_999, "no operation")] {
        let t = signed_token(
            &s,
            json!({"op_id": op_id, "type": "snapshot", "file_path": in_snap("known.txt")}),
        );
        let got = raw_get(&s, &format!("/download/{t}/"));
        assert_refused(got.clone(), 404, what);
    }
    let g = get(&s, "/download/not-a-token/").await;
    assert_eq!(g.status, 403, "{}", g.text());

    // A client that leaves half way takes restic with it.
    let needle = in_snap("big.bin");
    let mut resp = client().get(s.url(&big_link)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.chunk().await.unwrap().is_some());
    assert!(!dump_pids(&needle).is_empty(), "restic dump is running");
    drop(resp);
    wait_for(
        &s,
        "restic dump to be stopped",
        Duration::from_secs(10),
        async || dump_pids(&needle).is_empty().then_some(()),
    )
    .await;

    // restic dying after the headers went out: the transfer breaks, it
    // does not end as a short "complete" file.
    let mut resp = client().get(s.url(&big_link)).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut got = resp.chunk().await.unwrap().expect("a first piece").len();
    let pids = dump_pids(&needle);
    assert_eq!(pids.len(), 1, "{pids:?}");
    let killed = std::process::Command::new("kill")
        .args(["-9", &pids[0].to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let ended = loop {
        match resp.chunk().await {
            Ok(Some(c)) => got += c.len(),
            Ok(None) => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    assert!(
        ended.is_err(),
        "the transfer ended normally after {got} of {} bytes",
        big.len()
    );
    assert!(got < big.len(), "{got} bytes");
}
