//! Hooks through the real binary and real restic: command hooks rendering
//! Backrest's template variables, the onError policies (cancel, fatal,
//! ignore, retry), notification deliveries to a local receiver, and the API
//! page's chaining hook (curl to Backup of the next plan).

mod common;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const INSTANCE: &str = "hooks-test";

struct Env {
    s: Server,
    tmp: tempfile::TempDir,
    src: PathBuf,
}

impl Env {
    fn path(&self, p: &str) -> PathBuf {
        self.tmp.path().join(p)
    }
}

/// A server with repo r1 (AddRepo'd at <tmp>/repo) and plan p1 backing up
/// <tmp>/src, with `plan_hooks` on p1 and `repo_hooks` on r1.
async fn setup_with(builder: ServerBuilder, plan_hooks: Value, repo_hooks: Value) -> Env {
    let s = builder.start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha\n".repeat(100)).unwrap();
    std::fs::write(src.join("sub/b.txt"), "bravo\n".repeat(50)).unwrap();
    set_instance(&s, INSTANCE).await;
    let mut cfg = add_repo(&s, "r1", &tmp.path().join("repo"), "pw").await;
    cfg["repos"][0]["hooks"] = repo_hooks;
    cfg["plans"] = json!([{
        "id": "p1", "repo": "r1", "paths": [src],
        "retention": {"policyKeepAll": true},
        "hooks": plan_hooks,
    }]);
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;
    Env { s, tmp, src }
}

async fn setup(plan_hooks: Value) -> Env {
    setup_with(ServerBuilder::new(), plan_hooks, json!([])).await
}

fn command_hook(conditions: &[&str], on_error: &str, command: &str) -> Value {
    json!({"conditions": conditions, "onError": on_error, "actionCommand": {"command": command}})
}

fn of_kind<'a>(list: &'a [Value], kind: &str) -> Vec<&'a Value> {
    list.iter().filter(|o| o.get(kind).is_some()).collect()
}

/// Polls until `pred` holds for plan p1's operations.
async fn wait_p1_ops(env: &Env, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    wait_ops(
        &env.s,
        json!({"planId": "p1"}),
        Duration::from_secs(60),
        what,
        pred,
    )
    .await
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

fn sh_path(p: &Path) -> String {
    p.to_string_lossy().into_owned()
}

// A command hook on SNAPSHOT_START and SNAPSHOT_END writes Backrest's
// template variables; each run is an OperationRunHook in the backup's flow
// with its own log.
#[tokio::test]
async fn command_hooks_render_variables_and_are_recorded_in_the_flow() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("vars.txt");
    let cmd = concat!(
        "echo \"{{ .Event }}|{{ .Task }}|{{ .Plan.Id }}|{{ .Repo.Id }}|{{ .Repo.Uri }}",
        "|{{ .SnapshotId }}|{{ if .SnapshotStats }}{{ .SnapshotStats.TotalFilesProcessed }}{{ end }}",
        "|{{ .EventName .Event }}|{{ .IsError .Event }}\" >> OUT\n",
        "echo shell:{{ .ShellEscape \"it's; $(x)\" }} >> OUT\n",
        "echo \"summary-start\" >> OUT\n",
        "echo \"{{ .Summary }}\" >> OUT\n",
        "echo \"summary-end\" >> OUT\n",
    )
    .replace("OUT", &sh_path(&out));
    let env = setup(json!([command_hook(
        &["CONDITION_SNAPSHOT_START", "CONDITION_SNAPSHOT_END"],
        "ON_ERROR_IGNORE",
        &cmd
    )]))
    .await;
    ok_json(&env.s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    let list = wait_p1_ops(&env, "two hook runs", |l| {
        of_kind(l, "operationRunHook")
            .iter()
            .filter(|o| str_of(&o["status"]) == "STATUS_SUCCESS")
            .count()
            == 2
    })
    .await;
    let backup = of_kind(&list, "operationBackup")[0];
    assert_eq!(backup["status"], "STATUS_SUCCESS", "{backup}");
    let snap = str_of(&backup["snapshotId"]).to_string();
    assert_eq!(snap.len(), 64, "{backup}");

    let text = read(&out);
    // (sh drops the double quotes of the task name, `backup for plan "p1"`)
    let lines: Vec<&str> = text.lines().filter(|l| l.contains('|')).collect();
    assert_eq!(lines.len(), 2, "{text}");
    let repo_uri = env.path("repo").to_string_lossy().into_owned();
    assert_eq!(
        lines[0],
        format!(
            "CONDITION_SNAPSHOT_START|backup for plan p1|p1|r1|{repo_uri}|||snapshot start|false"
        ),
        "{text}"
    );
    assert_eq!(
        lines[1],
        format!(
            "CONDITION_SNAPSHOT_END|backup for plan p1|p1|r1|{repo_uri}|{snap}|2|snapshot end|false"
        ),
        "{text}"
    );
    // ShellEscape quotes for sh: the text arrives unchanged, nothing ran.
    let shell: Vec<&str> = text.lines().filter(|l| l.starts_with("shell:")).collect();
    assert_eq!(shell, ["shell:it's; $(x)", "shell:it's; $(x)"], "{text}");
    // Backrest's built-in summaries: the start one lists the plan's paths,
    // the end one the snapshot and its statistics.
    assert!(
        text.contains("Backrest Notification for Snapshot Start"),
        "{text}"
    );
    assert!(
        // `{{ range .Plan.Paths -}}` eats the space before the dash.
        text.contains(&format!("\n- {}\n", env.src.to_string_lossy())),
        "{text}"
    );
    assert!(text.contains("Backrest Snapshot Notification"), "{text}");
    assert!(text.contains(&format!("Snapshot: {snap}")), "{text}");
    assert!(text.contains("- Total files processed: 2"), "{text}");

    // The hook operations: in the backup's flow, pointing at it, with logs.
    let hooks = of_kind(&list, "operationRunHook");
    let mut conditions: Vec<&str> = hooks
        .iter()
        .map(|h| str_of(&h["operationRunHook"]["condition"]))
        .collect();
    conditions.sort();
    assert_eq!(
        conditions,
        ["CONDITION_SNAPSHOT_END", "CONDITION_SNAPSHOT_START"]
    );
    for h in &hooks {
        assert_eq!(h["flowId"], backup["flowId"], "{h}");
        assert_eq!(
            num(&h["operationRunHook"]["parentOp"]),
            num(&backup["id"]),
            "{h}"
        );
        assert_eq!(h["operationRunHook"]["name"], "command hook plan/p1/hook/0");
        assert!(
            str_of(&h["displayMessage"]).starts_with(
                "running command hook plan/p1/hook/0 triggered by CONDITION_SNAPSHOT_"
            ),
            "{h}"
        );
        let log = read_log(&env.s, str_of(&h["logref"])).await;
        assert!(log.contains("[script]"), "{log}");
    }
}

// Backrest's TestHookOnErrorHandling, through the real binary: a failing
// SNAPSHOT_START hook with CANCEL cancels the backup, with FATAL fails it,
// with IGNORE lets it succeed; error hooks run for cancel and fatal.
#[tokio::test]
async fn on_error_policies_of_a_failing_start_hook() {
    for (policy, want_status, want_rpc_ok) in [
        ("ON_ERROR_CANCEL", "STATUS_USER_CANCELLED", false),
        ("ON_ERROR_FATAL", "STATUS_ERROR", false),
        ("ON_ERROR_IGNORE", "STATUS_SUCCESS", true),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let marker = tmp.path().join("error-hook.txt");
        let env = setup(json!([
            command_hook(
                &["CONDITION_SNAPSHOT_START"],
                policy,
                "echo failing on purpose; exit 3"
            ),
            command_hook(
                &["CONDITION_ANY_ERROR"],
                "ON_ERROR_IGNORE",
                &"echo \"{{ .Event }}: {{ .Error }}\" >> OUT".replace("OUT", &sh_path(&marker))
            ),
        ]))
        .await;
        let (code, body) = call_json(&env.s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
        assert_eq!(code == 200, want_rpc_ok, "{policy}: {code} {body}");
        let list = ops(&env.s, json!({"planId": "p1"})).await;
        let backup = of_kind(&list, "operationBackup")[0];
        assert_eq!(backup["status"], want_status, "{policy}: {backup}");
        let start_hook = of_kind(&list, "operationRunHook")
            .into_iter()
            .find(|h| h["operationRunHook"]["condition"] == "CONDITION_SNAPSHOT_START")
            .expect("the start hook ran");
        assert_eq!(
            start_hook["status"], "STATUS_ERROR",
            "{policy}: {start_hook}"
        );
        assert!(
            str_of(&start_hook["displayMessage"]).contains("exit status 3"),
            "{policy}: {start_hook}"
        );
        let log = read_log(&env.s, str_of(&start_hook["logref"])).await;
        assert!(log.contains("failing on purpose"), "{policy}: {log}");
        if want_rpc_ok {
            assert!(read(&marker).is_empty(), "{policy}: no error hooks");
            assert!(!str_of(&backup["snapshotId"]).is_empty(), "{backup}");
        } else {
            let msg = str_of(&body["message"]);
            assert!(msg.contains("snapshot start hook"), "{policy}: {body}");
            let word = if policy == "ON_ERROR_CANCEL" {
                "cancel"
            } else {
                "fatal"
            };
            assert!(msg.contains(word), "{policy}: {body}");
            assert_eq!(
                body["code"],
                if policy == "ON_ERROR_CANCEL" {
                    "canceled"
                } else {
                    "unknown"
                },
                "{policy}: {body}"
            );
            // The backup never ran restic: no snapshot.
            assert!(str_of(&backup["snapshotId"]).is_empty(), "{backup}");
            let m = read(&marker);
            assert!(
                m.starts_with(
                    "CONDITION_ANY_ERROR: snapshot start hook: run hook command hook plan/p1/hook/0"
                ),
                "{policy}: {m}"
            );
        }
    }
}

// RETRY_EXPONENTIAL_BACKOFF: the first run's start hook fails, the backup
// goes back to PENDING ("waiting for retry") and runs again ~10 s later; the
// second attempt's hook succeeds, the backup succeeds and the Backup RPC,
// which waited all along, answers 200. Only the last attempt's hook run stays.
#[tokio::test]
async fn retry_policy_retries_the_backup() {
    let tmp = tempfile::tempdir().unwrap();
    let flag = tmp.path().join("failed-once");
    let cmd = format!(
        "if [ -f {f} ]; then echo second attempt; else touch {f}; echo first attempt; exit 1; fi",
        f = sh_path(&flag)
    );
    let env = setup(json!([command_hook(
        &["CONDITION_SNAPSHOT_START"],
        "ON_ERROR_RETRY_EXPONENTIAL_BACKOFF",
        &cmd
    )]))
    .await;
    let srv_base = env.s.base.clone();
    let call = tokio::spawn(async move {
        let started = Instant::now();
        let r = client()
            .post(format!("{srv_base}/v1.Backrest/Backup"))
            .header("content-type", "application/json")
            .body(r#"{"value":"p1"}"#)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), started.elapsed())
    });
    let pending = wait_p1_ops(&env, "the backup waiting for its retry", |l| {
        of_kind(l, "operationBackup").iter().any(|b| {
            str_of(&b["status"]) == "STATUS_PENDING"
                && str_of(&b["displayMessage"])
                    .starts_with("waiting for retry, current backoff delay: 10s")
        })
    })
    .await;
    let first_hook = of_kind(&pending, "operationRunHook")[0].clone();
    assert_eq!(first_hook["status"], "STATUS_ERROR", "{first_hook}");

    let (code, waited) = call.await.unwrap();
    assert_eq!(code, 200, "the retried backup succeeded");
    assert!(
        waited >= Duration::from_secs(9),
        "retried after the backoff: {waited:?}"
    );
    let list = ops(&env.s, json!({"planId": "p1"})).await;
    let backup = of_kind(&list, "operationBackup")[0];
    assert_eq!(backup["status"], "STATUS_SUCCESS", "{backup}");
    assert!(
        str_of(&backup["displayMessage"]).contains("running after 1 retries"),
        "{backup}"
    );
    let hooks = of_kind(&list, "operationRunHook");
    assert_eq!(
        hooks.len(),
        1,
        "the first attempt's hook run is gone: {hooks:?}"
    );
    assert_eq!(hooks[0]["status"], "STATUS_SUCCESS");
    assert_ne!(hooks[0]["id"], first_hook["id"]);
    let log = read_log(&env.s, str_of(&hooks[0]["logref"])).await;
    assert!(log.contains("second attempt"), "{log}");
}

// A backup that fails in restic fires SNAPSHOT_ERROR (first match), with
// `.Error` carrying restic's words, and SNAPSHOT_END hooks.
#[tokio::test]
async fn failing_backup_fires_error_and_end_hooks() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("events.txt");
    let line = "echo \"{{ .Event }}\" >> OUT".replace("OUT", &sh_path(&out));
    let env = setup(json!([
        command_hook(
            &["CONDITION_SNAPSHOT_ERROR", "CONDITION_ANY_ERROR"],
            "ON_ERROR_IGNORE",
            &line
        ),
        command_hook(&["CONDITION_SNAPSHOT_END"], "ON_ERROR_IGNORE", &line),
        command_hook(&["CONDITION_SNAPSHOT_SUCCESS"], "ON_ERROR_IGNORE", &line),
    ]))
    .await;
    // Break the repository's password behind the server's back.
    let mut cfg = ok_json(&env.s, "/v1.Backrest/GetConfig", json!({})).await;
    cfg["repos"][0]["password"] = json!("wrong");
    ok_json(&env.s, "/v1.Backrest/SetConfig", cfg).await;
    let (code, body) = call_json(&env.s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    assert_ne!(code, 200, "{body}");
    let text = read(&out);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        ["CONDITION_SNAPSHOT_ERROR", "CONDITION_SNAPSHOT_END"],
        "{text}"
    );
}

/// One request seen by the local receiver.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    uri: String,
    content_type: String,
    body: String,
}

/// A local HTTP receiver on 127.0.0.1:0 that answers 200 to everything.
async fn receiver() -> (String, Arc<Mutex<Vec<Seen>>>) {
    let seen: Arc<Mutex<Vec<Seen>>> = Arc::default();
    let store = seen.clone();
    let app = axum::Router::new().fallback(move |req: axum::extract::Request| {
        let store = store.clone();
        async move {
            let (parts, body) = req.into_parts();
            let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            store.lock().unwrap().push(Seen {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                content_type: parts
                    .headers
                    .get("content-type")
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
                body: String::from_utf8_lossy(&bytes).into_owned(),
            });
            "{\"ok\":true}"
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn find<'a>(seen: &'a [Seen], path_prefix: &str) -> &'a Seen {
    seen.iter()
        .find(|r| r.uri.starts_with(path_prefix))
        .unwrap_or_else(|| panic!("no request to {path_prefix}: {seen:#?}"))
}

// Every notification kind delivers the rendered template to the receiver,
// in the request shape of its service.
#[tokio::test]
async fn notifications_deliver_the_expected_requests() {
    let (base, seen) = receiver().await;
    let host = base.trim_start_matches("http://").to_string();
    let end = ["CONDITION_SNAPSHOT_END"];
    let tpl = "plan {{ .Plan.Id }} event {{ .Event }}";
    let want = "plan p1 event CONDITION_SNAPSHOT_END";
    let hooks = json!([
        {"conditions": end, "actionDiscord": {"webhookUrl": format!("{base}/discord/123/tok"), "template": tpl}},
        {"conditions": end, "actionSlack": {"webhookUrl": format!("{base}/slack/T/B/X"), "template": tpl}},
        {"conditions": end, "actionGotify": {"baseUrl": format!("{base}/gotify/"), "token": "g t&k", "template": tpl, "titleTemplate": "title {{ .Repo.Id }}", "priority": 5}},
        {"conditions": end, "actionHealthchecks": {"webhookUrl": format!("{base}/hc/uuid-1"), "template": tpl}},
        {"conditions": end, "actionTelegram": {"botToken": "12345:abc", "chatId": "-100", "template": tpl}},
        {"conditions": end, "actionWebhook": {"webhookUrl": format!("{base}/webhook-post"), "method": "POST", "template": tpl}},
        {"conditions": end, "actionWebhook": {"webhookUrl": format!("{base}/webhook-get?x=1"), "method": "GET", "template": tpl}},
        {"conditions": end, "actionShoutrrr": {"shoutrrrUrl": format!("generic://{host}/generic?disabletls=yes"), "template": tpl}},
        {"conditions": end, "actionShoutrrr": {"shoutrrrUrl": format!("ntfy://{host}/backups?scheme=http"), "template": tpl}},
        {"conditions": end, "actionDiscord": {"webhookUrl": format!("{base}/discord-default")}},
    ]);
    let env = setup_with(
        ServerBuilder::new().env("BACKREST_TELEGRAM_API_URL", &format!("{base}/tg")),
        hooks,
        json!([]),
    )
    .await;
    ok_json(&env.s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    let list = wait_p1_ops(&env, "ten hook runs", |l| {
        of_kind(l, "operationRunHook")
            .iter()
            .filter(|o| !matches!(str_of(&o["status"]), "STATUS_PENDING" | "STATUS_INPROGRESS"))
            .count()
            == 10
    })
    .await;
    for h in of_kind(&list, "operationRunHook") {
        assert_eq!(h["status"], "STATUS_SUCCESS", "{h}");
    }
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 10, "{seen:#?}");

    let json_of = |r: &Seen| -> Value { serde_json::from_str(&r.body).expect(&r.body) };
    let d = find(&seen, "/discord/123/tok");
    assert_eq!(
        (d.method.as_str(), d.content_type.as_str()),
        ("POST", "application/json")
    );
    assert_eq!(json_of(d), json!({"content": want}));

    let sl = find(&seen, "/slack/T/B/X");
    assert_eq!(
        json_of(sl),
        json!({"text": format!("Backrest Notification\n{want}")})
    );

    let g = find(&seen, "/gotify/message?token=");
    // Go's url.QueryEscape, as Backrest: space as '+'.
    assert_eq!(g.uri, "/gotify/message?token=g+t%26k", "{g:?}");
    assert_eq!(
        json_of(g),
        json!({"message": want, "title": "title r1", "priority": 5})
    );

    let hc = find(&seen, "/hc/uuid-1");
    assert_eq!(hc.uri, "/hc/uuid-1/log");
    assert_eq!(hc.body, want);
    assert!(hc.content_type.starts_with("text/plain"), "{hc:?}");

    let tg = find(&seen, "/tg/bot12345:abc/sendMessage");
    assert_eq!(
        json_of(tg),
        json!({"chat_id": "-100", "text": want, "parse_mode": "HTML"})
    );

    let wp = find(&seen, "/webhook-post");
    assert_eq!((wp.method.as_str(), wp.body.as_str()), ("POST", want));
    let wg = find(&seen, "/webhook-get");
    assert_eq!(
        (wg.method.as_str(), wg.uri.as_str(), wg.body.as_str()),
        ("GET", "/webhook-get?x=1", "")
    );

    let generic = find(&seen, "/generic");
    assert_eq!(generic.method, "POST");
    assert!(generic.body.contains(want), "{generic:?}");

    let nt = find(&seen, "/backups");
    assert_eq!(nt.method, "POST");
    assert_eq!(nt.body, want, "{nt:?}");

    // An empty template sends Backrest's built-in summary.
    let dd = find(&seen, "/discord-default");
    let content = json_of(dd)["content"].as_str().unwrap().to_string();
    assert!(
        content.contains("Backrest Snapshot Notification"),
        "{content}"
    );
    assert!(content.contains("Event: snapshot end"), "{content}");
}

// The API page's chaining hook, verbatim but for the port and the plan id:
// on SNAPSHOT_END of p1, curl starts the backup of p2 and gives up waiting
// after a second (`-m 1 || exit 0`); p2 really runs. With auth on, as the
// page shows (`-u USERNAME:PASSWORD`).
#[tokio::test]
async fn chaining_hook_starts_the_next_plan() {
    let env = setup(json!([])).await;
    let port = env
        .s
        .base
        .rsplit(':')
        .next()
        .unwrap()
        .trim_end_matches('/')
        .to_string();
    let documented = r#"curl -X POST 'localhost:9898/v1.Backrest/Backup' --data '{"value": "ID_OF_NEXT_PLAN"}' -H 'Content-Type: application/json' -u USERNAME:PASSWORD -m 1 || exit 0"#;
    let cmd = documented
        .replace("9898", &port)
        .replace("ID_OF_NEXT_PLAN", "p2")
        .replace("USERNAME:PASSWORD", "chain:s3cret");
    let hash = ok_json(
        &env.s,
        "/v1.Authentication/HashPassword",
        json!({"value": "s3cret"}),
    )
    .await;
    let mut cfg = ok_json(&env.s, "/v1.Backrest/GetConfig", json!({})).await;
    let src2 = env.path("src2");
    std::fs::create_dir_all(&src2).unwrap();
    std::fs::write(src2.join("x.txt"), "x\n").unwrap();
    cfg["plans"][0]["hooks"] = json!([command_hook(
        &["CONDITION_SNAPSHOT_END"],
        "ON_ERROR_IGNORE",
        &cmd
    )]);
    cfg["plans"].as_array_mut().unwrap().push(json!({
        "id": "p2", "repo": "r1", "paths": [src2], "retention": {"policyKeepAll": true}
    }));
    cfg["auth"] =
        json!({"disabled": false, "users": [{"name": "chain", "passwordBcrypt": hash["value"]}]});
    // From here on, calls need the credentials.
    let c = client();
    let r = c
        .post(env.s.url("/v1.Backrest/SetConfig"))
        .json(&cfg)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    let r = c
        .post(env.s.url("/v1.Backrest/Backup"))
        .basic_auth("chain", Some("s3cret"))
        .json(&json!({"value": "p1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = c
            .post(env.s.url("/v1.Backrest/GetOperations"))
            .basic_auth("chain", Some("s3cret"))
            .json(&json!({"selector": {"planId": "p2"}}))
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let list = v["operations"].as_array().cloned().unwrap_or_default();
        if let Some(b) = of_kind(&list, "operationBackup").first()
            && b["status"] == "STATUS_SUCCESS"
        {
            assert_eq!(str_of(&b["snapshotId"]).len(), 64, "{b}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "p2 never backed up: {list:?}\n{}",
            env.s.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

// Repo hooks on the prune, check and forget events fire around those tasks
// with the task's own plan (`_system_` for repo tasks), and Healthchecks
// gets `/start` for a start event.
#[tokio::test]
async fn prune_check_and_forget_fire_their_start_and_success_hooks() {
    let (base, seen) = receiver().await;
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("events.txt");
    let line = "echo \"{{ .Event }} {{ .Plan.Id }} {{ .EventName .Event }}\" >> OUT"
        .replace("OUT", &sh_path(&out));
    let all = [
        "CONDITION_PRUNE_START",
        "CONDITION_PRUNE_SUCCESS",
        "CONDITION_CHECK_START",
        "CONDITION_CHECK_SUCCESS",
        "CONDITION_FORGET_START",
        "CONDITION_FORGET_SUCCESS",
    ];
    let repo_hooks = json!([
        command_hook(&all, "ON_ERROR_IGNORE", &line),
        {"conditions": ["CONDITION_CHECK_START"], "actionHealthchecks": {"webhookUrl": format!("{base}/hc/check"), "template": "checking {{ .Repo.Id }}"}},
    ]);
    let env = setup_with(ServerBuilder::new(), json!([]), repo_hooks).await;
    // Plan retention that forgets: keep the last snapshot only.
    let mut cfg = ok_json(&env.s, "/v1.Backrest/GetConfig", json!({})).await;
    cfg["plans"][0]["retention"] = json!({"policyKeepLastN": 1});
    ok_json(&env.s, "/v1.Backrest/SetConfig", cfg).await;

    ok_json(&env.s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    std::fs::write(env.src.join("new.txt"), "n\n").unwrap();
    ok_json(&env.s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    // The forget follow-ups of both backups.
    let deadline = Instant::now() + Duration::from_secs(60);
    while read(&out).matches("CONDITION_FORGET_SUCCESS").count() < 2 {
        assert!(Instant::now() < deadline, "no forget hooks: {}", read(&out));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for task in ["TASK_PRUNE", "TASK_CHECK"] {
        let v = ok_json(
            &env.s,
            "/v1.Backrest/DoRepoTask",
            json!({"repoId": "r1", "task": task}),
        )
        .await;
        let op = wait_op(&env.s, num(&v["operationId"]), Duration::from_secs(60)).await;
        assert_eq!(str_of(&op["status"]), "STATUS_SUCCESS", "{task}: {op}");
    }
    let text = read(&out);
    assert_eq!(
        text.lines().collect::<Vec<_>>(),
        [
            "CONDITION_FORGET_START p1 forget start",
            "CONDITION_FORGET_SUCCESS p1 forget success",
            "CONDITION_FORGET_START p1 forget start",
            "CONDITION_FORGET_SUCCESS p1 forget success",
            "CONDITION_PRUNE_START _system_ prune start",
            "CONDITION_PRUNE_SUCCESS _system_ prune success",
            "CONDITION_CHECK_START _system_ check start",
            "CONDITION_CHECK_SUCCESS _system_ check success",
        ],
        "{text}"
    );
    let seen = seen.lock().unwrap().clone();
    let hc = find(&seen, "/hc/check");
    assert_eq!(
        (hc.uri.as_str(), hc.body.as_str()),
        ("/hc/check/start", "checking r1")
    );
}

// A template that does not parse fails its hook with Go's words, once
// prefixed as Backrest prefixes them; with ON_ERROR_IGNORE the backup
// still succeeds.
#[tokio::test]
async fn a_broken_template_is_a_clear_hook_error() {
    let env = setup(json!([command_hook(
        &["CONDITION_SNAPSHOT_END"],
        "ON_ERROR_IGNORE",
        "echo {{ .Plan.Id }"
    )]))
    .await;
    ok_json(&env.s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;
    let list = wait_p1_ops(&env, "the failed hook run", |l| {
        of_kind(l, "operationRunHook")
            .iter()
            .any(|h| str_of(&h["status"]) == "STATUS_ERROR")
    })
    .await;
    let backup = of_kind(&list, "operationBackup")[0];
    assert_eq!(backup["status"], "STATUS_SUCCESS", "{backup}");
    let hook = of_kind(&list, "operationRunHook")[0];
    let msg = str_of(&hook["displayMessage"]);
    assert!(
        msg.starts_with("template rendering: parse template: template: "),
        "{msg}"
    );
    assert_eq!(msg.matches("template rendering").count(), 1, "{msg}");
}
