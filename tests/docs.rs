//! The API documentation: `/openapi.json` against the descriptor set the
//! server is built from (no RPC, field or enum value may be missing, nor any
//! extra), the embedded Redoc bundle, the `/docs` page in headless Chromium,
//! the curl commands of the README and of the document, run against the server.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use backrest_rs::docs::{OPENAPI_JSON, REDOC_JS, REDOC_SHA256SUMS};
use common::*;
use prost::Message;
use prost_types::field_descriptor_proto::Label;
use prost_types::{DescriptorProto, EnumDescriptorProto, FileDescriptorSet};
use serde_json::{Value, json};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// A throwaway user for servers with authentication configured. The hash is
/// `v1.Authentication/HashPassword` of FUZZ_PASSWORD (shared with
/// scripts/schemathesis/fuzz.py).
const FUZZ_USER: &str = "fuzz";
const FUZZ_PASSWORD: &str = "fuzz-password";
const FUZZ_PASSWORD_BCRYPT: &str =
    "JDJhJDEwJE1keWx5UjJGa3BOZ3NwZXd6Tkwxb082S2RZSlBkdjgwRnBIOGFhTlNDakpDSGtLRkF6V2VL";

fn spec() -> Value {
    serde_json::from_str(OPENAPI_JSON).expect("openapi.json is JSON")
}

fn descriptors() -> FileDescriptorSet {
    FileDescriptorSet::decode(backrest_rs::pb::DESCRIPTOR_SET).expect("descriptor set")
}

/// Every message and enum of the descriptor set, by full name (no dot).
fn types(
    fds: &FileDescriptorSet,
) -> (
    BTreeMap<String, DescriptorProto>,
    BTreeMap<String, EnumDescriptorProto>,
) {
    fn walk(
        prefix: &str,
        m: &DescriptorProto,
        msgs: &mut BTreeMap<String, DescriptorProto>,
        enums: &mut BTreeMap<String, EnumDescriptorProto>,
    ) {
        let full = format!("{prefix}{}", m.name());
        for n in &m.nested_type {
            walk(&format!("{full}."), n, msgs, enums);
        }
        for e in &m.enum_type {
            enums.insert(format!("{full}.{}", e.name()), e.clone());
        }
        msgs.insert(full, m.clone());
    }
    let (mut msgs, mut enums) = (BTreeMap::new(), BTreeMap::new());
    for f in &fds.file {
        let prefix = format!("{}.", f.package());
        for m in &f.message_type {
            walk(&prefix, m, &mut msgs, &mut enums);
        }
        for e in &f.enum_type {
            enums.insert(format!("{prefix}{}", e.name()), e.clone());
        }
    }
    (msgs, enums)
}

fn schema_ref(name: &str) -> Value {
    json!(format!("#/components/schemas/{name}"))
}

// 1. The document and the descriptor set agree.

#[test]
fn every_rpc_of_the_descriptor_set_has_its_operation_and_nothing_else_does() {
    let spec = spec();
    assert_eq!(spec["openapi"], "3.1.0");
    let paths = spec["paths"].as_object().unwrap();
    let mut expected = BTreeSet::new();
    for file in descriptors().file {
        for service in &file.service {
            let full = format!("{}.{}", file.package(), service.name());
            for m in &service.method {
                let path = format!("/{full}/{}", m.name());
                let op = &paths
                    .get(&path)
                    .unwrap_or_else(|| panic!("{path} is missing from /openapi.json"))["post"];
                assert_eq!(op["operationId"], format!("{full}.{}", m.name()), "{path}");
                assert_eq!(op["summary"], m.name(), "{path}");
                assert_eq!(op["tags"], json!([full]), "{path}");
                let input = m.input_type().trim_start_matches('.');
                let output = m.output_type().trim_start_matches('.');
                let (ct, streaming) = match (m.client_streaming(), m.server_streaming()) {
                    (false, false) => ("application/json", None),
                    (false, true) => ("application/connect+json", Some("server")),
                    (true, _) => ("application/connect+json", Some("bidi")),
                };
                assert_eq!(
                    op["requestBody"]["content"][ct]["schema"]["$ref"],
                    schema_ref(&format!("{input}Input")),
                    "{path}"
                );
                assert_eq!(
                    op.get("x-connect-streaming").and_then(Value::as_str),
                    streaming,
                    "{path}"
                );
                if streaming != Some("bidi") {
                    assert_eq!(
                        op["responses"]["200"]["content"][ct]["schema"]["$ref"],
                        schema_ref(output),
                        "{path}"
                    );
                }
                assert_eq!(
                    op["responses"]["default"]["$ref"], "#/components/responses/ConnectError",
                    "{path}"
                );
                let curl = op["x-codeSamples"][0]["source"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{path}: no curl sample"));
                assert!(
                    curl.contains(&format!("localhost:9898{path}")),
                    "{path}: {curl}"
                );
                assert!(
                    op["description"].as_str().is_some_and(|d| !d.is_empty()),
                    "{path}: no description"
                );
                expected.insert(path);
            }
        }
    }
    let documented: BTreeSet<String> = paths.keys().cloned().collect();
    assert_eq!(
        documented, expected,
        "operations without an RPC in the descriptor set"
    );
}

#[test]
fn every_message_field_and_enum_value_is_in_its_schemas() {
    let spec = spec();
    let schemas = spec["components"]["schemas"].as_object().unwrap();
    let (msgs, enums) = types(&descriptors());
    let mut checked = 0;
    for (name, schema) in schemas {
        let (full, input) = match name.strip_suffix("Input") {
            Some(base) => (base, true),
            None => (name.as_str(), false),
        };
        if let Some(m) = msgs
            .get(full)
            .filter(|_| !full.starts_with("google.protobuf."))
        {
            let want: BTreeSet<String> =
                m.field.iter().map(|f| f.json_name().to_string()).collect();
            let got: BTreeSet<String> = schema["properties"]
                .as_object()
                .unwrap()
                .keys()
                .cloned()
                .collect();
            assert_eq!(got, want, "schema {name} and message {full} disagree");
            assert_eq!(
                schema["additionalProperties"],
                if input { Value::Null } else { json!(false) },
                "{name}"
            );
            for f in &m.field {
                let p = &schema["properties"][f.json_name()];
                let ty = if input { &p["type"][0] } else { &p["type"] };
                if f.label() == Label::Repeated && !is_map(&msgs, f) {
                    assert_eq!(ty, "array", "{name}.{}", f.json_name());
                }
            }
            checked += 1;
        } else if let Some(e) = enums.get(full) {
            let names: Vec<&str> = e.value.iter().map(|v| v.name()).collect();
            let listed = if input {
                &schema["anyOf"][0]["enum"]
            } else {
                &schema["enum"]
            };
            assert_eq!(listed, &json!(names), "enum schema {name}");
            if input {
                let numbers: Vec<i32> = e.value.iter().map(|v| v.number()).collect();
                assert_eq!(
                    schema["anyOf"][1]["enum"],
                    json!(numbers),
                    "enum schema {name}"
                );
            }
            checked += 1;
        } else {
            assert!(
                full.starts_with("google.protobuf.") || name == "connect.error",
                "schema {name} has no message or enum in the descriptor set"
            );
        }
    }
    assert!(checked > 100, "only {checked} schemas checked");
    // Every reference resolves.
    let mut refs = BTreeSet::new();
    collect_refs(&spec, &mut refs);
    for r in refs {
        let target = r
            .strip_prefix("#/")
            .unwrap_or_else(|| panic!("external reference {r}"));
        let mut v = &spec;
        for part in target.split('/') {
            v = v
                .get(part)
                .unwrap_or_else(|| panic!("dangling reference {r}"));
        }
    }
}

fn is_map(msgs: &BTreeMap<String, DescriptorProto>, f: &prost_types::FieldDescriptorProto) -> bool {
    msgs.get(f.type_name().trim_start_matches('.'))
        .and_then(|m| m.options.as_ref())
        .and_then(|o| o.map_entry)
        .unwrap_or(false)
}

fn collect_refs(v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                out.insert(r.clone());
            }
            map.values().for_each(|v| collect_refs(v, out));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

#[test]
fn the_json_mapping_is_proto3_json() {
    let spec = spec();
    let s = &spec["components"]["schemas"];
    // int64: a string out; a string or a number in.
    assert_eq!(s["v1.Operation"]["properties"]["id"]["type"], "string");
    assert_eq!(
        s["v1.OperationInput"]["properties"]["id"]["type"],
        json!(["string", "integer", "null"])
    );
    // int32 stays a number out.
    assert_eq!(s["v1.Config"]["properties"]["modno"]["type"], "integer");
    // json_name overrides, as pbjson uses them.
    assert!(s["v1.Config"]["properties"].get("sync").is_some());
    assert!(s["v1.Plan"]["properties"].get("backup_flags").is_some());
    assert!(s["v1.PrivateKey"]["properties"].get("keyId").is_some());
    // Enums by name out, name or number in.
    assert_eq!(
        s["v1.Operation"]["properties"]["status"]["$ref"],
        "#/components/schemas/v1.OperationStatus"
    );
    assert_eq!(s["v1.OperationStatus"]["type"], "string");
    // Oneof members: optional properties with a note; at most one on input.
    let note = s["v1.Hook"]["properties"]["actionCommand"]["description"]
        .as_str()
        .unwrap();
    assert!(note.contains("oneof `action`"), "{note}");
    assert!(s["v1.HookInput"]["not"]["anyOf"].as_array().unwrap().len() == 8 * 7 / 2);
    // Empty is {}; bytes are base64.
    assert_eq!(s["google.protobuf.Empty"]["type"], "object");
    assert_eq!(
        s["types.BytesValue"]["properties"]["value"]["contentEncoding"],
        "base64"
    );
    // Comments become descriptions.
    assert!(
        s["v1.Config"]["properties"]["modno"]["description"]
            .as_str()
            .unwrap()
            .contains("Optimistic-concurrency")
    );
    assert!(
        spec["paths"]["/v1.Backrest/GetOperations"]["post"]["description"]
            .as_str()
            .unwrap()
            .contains("last_n")
    );
    // Errors and security.
    assert_eq!(
        s["connect.error"]["properties"]["code"]["enum"]
            .as_array()
            .unwrap()
            .len(),
        16
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["basicAuth"]["scheme"],
        "basic"
    );
    assert_eq!(
        spec["components"]["securitySchemes"]["bearerAuth"]["scheme"],
        "bearer"
    );
    assert_eq!(
        spec["paths"]["/v1.Authentication/Login"]["post"]["security"],
        json!([])
    );
    assert_eq!(
        spec["paths"]["/v1sync.BackrestSyncService/Sync"]["post"]["x-backrest-rs-unsupported"],
        true
    );
}

// 2. Serving it.

fn write_config(dir: &Path, config: Value) {
    let path = dir.join("config").join("config.json");
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, config.to_string()).unwrap();
}

fn start_with_config(config: Value) -> (tempfile::TempDir, Server) {
    let tmp = tempfile::tempdir().unwrap();
    write_config(tmp.path(), config);
    let s = ServerBuilder::in_dir(tmp.path()).start();
    (tmp, s)
}

/// A config with a user: authentication is on (once it is built).
fn auth_config() -> Value {
    json!({"instance": "docs-test", "auth": {"users": [{"name": FUZZ_USER, "passwordBcrypt": FUZZ_PASSWORD_BCRYPT}]}})
}

async fn get(s: &Server, path: &str, gzip: bool) -> reqwest::Response {
    let mut req = client().get(s.url(path));
    if gzip {
        req = req.header("accept-encoding", "gzip");
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn openapi_json_and_docs_are_served_without_credentials() {
    let (_tmp, s) = start_with_config(auth_config());
    let resp = get(&s, "/openapi.json", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "application/json");
    assert_eq!(resp.text().await.unwrap(), OPENAPI_JSON);

    let resp = get(&s, "/docs", false).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-type"], "text/html; charset=utf-8");
    assert!(resp.headers().contains_key("content-security-policy"));
    let html = resp.text().await.unwrap();
    assert!(
        html.contains("docs/redoc.standalone.js") && html.contains("openapi.json"),
        "{html}"
    );

    let no_redirects = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let resp = no_redirects.get(s.url("/docs/")).send().await.unwrap();
    assert_eq!(resp.status(), 308);
    assert_eq!(resp.headers()["location"], "../docs");

    // The bundle, plain and gzip-compressed.
    let resp = get(&s, "/docs/redoc.standalone.js", false).await;
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/javascript")
    );
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(&resp.bytes().await.unwrap()[..], REDOC_JS);
    let resp = get(&s, "/docs/redoc.standalone.js", true).await;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    let gz = resp.bytes().await.unwrap();
    assert!(
        gz.len() < REDOC_JS.len() / 2,
        "{} bytes compressed",
        gz.len()
    );
    let mut plain = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut plain)
        .unwrap();
    assert_eq!(plain, REDOC_JS);
    let resp = get(&s, "/openapi.json", true).await;
    assert_eq!(resp.headers()["content-encoding"], "gzip");
}

#[test]
fn the_vendored_redoc_bundle_matches_its_checksum_and_stays_small() {
    use sha2::{Digest, Sha256};
    let dir = PathBuf::from(ROOT).join("assets/redoc");
    let on_disk = std::fs::read(dir.join("redoc.standalone.js")).unwrap();
    assert_eq!(
        on_disk, REDOC_JS,
        "the embedded bundle is the file in assets/redoc/"
    );
    let (sum, file) = REDOC_SHA256SUMS
        .trim()
        .split_once("  ")
        .expect("`<sha256>  <file>`");
    assert_eq!(file, "redoc.standalone.js");
    assert_eq!(
        hex::encode(Sha256::digest(REDOC_JS)),
        sum,
        "assets/redoc/redoc.standalone.js changed: see assets/redoc/README.md"
    );
    assert!(
        REDOC_JS.len() < 5 << 20,
        "the bundle is {} bytes: keep what git carries small",
        REDOC_JS.len()
    );
    assert!(dir.join("LICENSE").exists());
}

// 3. The curl commands: the README's and the document's.

/// The curl commands in the README's "The API" section, continuation lines joined.
fn readme_curls() -> Vec<String> {
    let readme = std::fs::read_to_string(PathBuf::from(ROOT).join("README.md")).unwrap();
    let start = readme
        .find("\n## The API")
        .expect("README has a `## The API` section");
    let section = &readme[start + 1..];
    let section = &section[..section[3..].find("\n## ").map_or(section.len(), |i| i + 3)];
    let mut out = Vec::new();
    let mut lines = section.lines();
    while let Some(line) = lines.next() {
        if !line.starts_with("curl ") {
            continue;
        }
        let mut cmd = line.to_string();
        while cmd.ends_with('\\') {
            cmd.pop();
            cmd.push_str(lines.next().unwrap_or("").trim_start());
        }
        out.push(cmd);
    }
    out
}

/// Runs a curl command line through `sh -c` against `srv`, with its port for
/// 9898 and `plan` for PLAN_ID; returns (HTTP status, body).
fn run_curl(srv: &Server, cmd: &str, plan: &str) -> (u16, Vec<u8>) {
    let port = srv.base.rsplit(':').next().unwrap().trim_end_matches('/');
    let cmd = cmd
        .replace("localhost:9898", &format!("127.0.0.1:{port}"))
        .replace("PLAN_ID", plan)
        .replace("USERNAME:PASSWORD", &format!("{FUZZ_USER}:{FUZZ_PASSWORD}"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("{cmd} -sS -m 60 -w '\\n%{{http_code}}'"))
        .output()
        .expect("run sh");
    assert!(
        out.status.success(),
        "`{cmd}` failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let text = out.stdout;
    let nl = text.iter().rposition(|b| *b == b'\n').expect("status line");
    let status = std::str::from_utf8(&text[nl + 1..])
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    (status, text[..nl].to_vec())
}

#[tokio::test]
async fn the_readme_curl_commands_work_as_shown() {
    let curls = readme_curls();
    let has = |needle: &str| curls.iter().any(|c| c.contains(needle));
    // The seed's examples are all there.
    assert!(
        curls.contains(&r#"curl -X POST localhost:9898/v1.Backrest/Backup --data '{"value": "PLAN_ID"}' -H 'Content-Type: application/json'"#.to_string()),
        "{curls:#?}"
    );
    assert!(
        has("/v1.Backrest/GetOperations")
            && has(r#"--data '{}'"#)
            && has(r#"{"selector": {"planId": "PLAN_ID"}}"#),
        "{curls:#?}"
    );
    assert!(has("-u USERNAME:PASSWORD"), "{curls:#?}");

    // A plan to back up: repo r1 in a temp dir (initialized by AddRepo), plan p1.
    let s = Server::start();
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(src.join("a.txt"), "docs test\n").unwrap();
    let mut cfg = ok_json(&s, "/v1.Backrest/GetConfig", json!({})).await;
    cfg["instance"] = json!("docs-test");
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;
    let mut cfg = ok_json(
        &s,
        "/v1.Backrest/AddRepo",
        json!({"repo": {"id": "r1", "uri": tmp.path().join("repo"), "password": "pw"}}),
    )
    .await;
    cfg["plans"] = json!([{"id": "p1", "repo": "r1", "paths": [src]}]);
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;

    // The credentials line runs against a server with that user configured.
    let (_tmp, with_user) = start_with_config(auth_config());

    let mut backup_done = false;
    for cmd in &curls {
        let target = if cmd.contains("USERNAME:PASSWORD") {
            &with_user
        } else {
            &s
        };
        let (status, body) = run_curl(target, cmd, "p1");
        assert_eq!(
            status,
            200,
            "`{cmd}` answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
        let v: Value =
            serde_json::from_slice(&body).unwrap_or_else(|e| panic!("`{cmd}`: not JSON ({e})"));
        if cmd.contains("/Backup") {
            assert_eq!(v, json!({}), "{cmd}");
            backup_done = true;
        }
        if cmd.contains(r#""planId": "PLAN_ID""#) {
            assert!(
                backup_done,
                "the README shows Backup before the plan's GetOperations"
            );
            let ops = v["operations"].as_array().cloned().unwrap_or_default();
            let backup = ops
                .iter()
                .find(|o| o.get("operationBackup").is_some())
                .unwrap_or_else(|| panic!("no backup in {v}"));
            assert_eq!(backup["status"], "STATUS_SUCCESS", "{backup}");
            assert!(ops.iter().all(|o| o["planId"] == "p1"), "{v}");
        }
        if cmd.contains("GetConfig") {
            assert!(v.get("instance").is_some(), "{v}");
        }
    }
}

#[tokio::test]
async fn a_streaming_code_sample_frames_its_request() {
    let spec = spec();
    let s = Server::start();
    let sample = spec["paths"]["/v1.Backrest/GetLogs"]["post"]["x-codeSamples"][0]["source"]
        .as_str()
        .unwrap();
    assert!(sample.contains("printf"), "{sample}");
    let (status, body) = run_curl(&s, sample, "");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Envelopes: (flags, length, JSON)*, the last one flagged end-of-stream.
    let mut rest = &body[..];
    let mut frames = Vec::new();
    while rest.len() >= 5 {
        let len = u32::from_be_bytes(rest[1..5].try_into().unwrap()) as usize;
        frames.push((
            rest[0],
            serde_json::from_slice::<Value>(&rest[5..5 + len]).expect("JSON frame"),
        ));
        rest = &rest[5 + len..];
    }
    assert!(rest.is_empty(), "trailing bytes");
    let (flags, end) = frames.last().expect("frames");
    assert_eq!(*flags, 2, "the last frame ends the stream: {frames:?}");
    // The request was read (a frame the server could not decode would end in invalid_argument).
    assert_ne!(end["error"]["code"], "invalid_argument", "{end}");
}

// 4. The page, in a real browser.

fn chromium() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("CHROMIUM") {
        return Some(PathBuf::from(p));
    }
    ["chromium", "chromium-browser", "google-chrome"]
        .iter()
        .find_map(|name| {
            std::env::var_os("PATH")?
                .to_str()?
                .split(':')
                .map(|dir| Path::new(dir).join(name))
                .find(|p| p.is_file())
        })
}

fn headless(chromium: &Path, profile: &Path, args: &[&str], url: &str) -> std::process::Output {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--virtual-time-budget=20000",
        "--window-size=1400,1000",
    ])
    .arg(format!("--user-data-dir={}", profile.display()))
    .args(args)
    .arg(url);
    let child = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start chromium");
    wait_output(child, Duration::from_secs(120))
}

fn wait_output(mut child: std::process::Child, timeout: Duration) -> std::process::Output {
    let deadline = std::time::Instant::now() + timeout;
    let mut stdout = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = Vec::new();
            let _ = child.stderr.take().unwrap().read_to_end(&mut stderr);
            return std::process::Output {
                status,
                stdout: reader.join().unwrap(),
                stderr,
            };
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn the_docs_page_renders_every_rpc_in_headless_chromium() {
    let Some(chromium) = chromium() else {
        let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        assert!(
            !ci,
            "CI is set but Chromium is not installed (scripts/test installs the Debian package `chromium` as root)"
        );
        eprintln!(
            "SKIPPED: Chromium not found (install the Debian package `chromium`, or set CHROMIUM)"
        );
        return;
    };
    // Authentication on: the page and what it loads must still be public.
    let (_tmp, s) = start_with_config(auth_config());
    let url = s.url("/docs");
    let profile = tempfile::tempdir().unwrap();

    let out = headless(&chromium, profile.path(), &["--dump-dom"], &url);
    assert!(
        out.status.success(),
        "chromium --dump-dom failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(
        dom.contains("GetOperations"),
        "the rendered page does not list GetOperations:\n{}",
        &dom[..dom.len().min(3000)]
    );
    // Every RPC is on the page, each with its curl command.
    let spec = spec();
    for (path, item) in spec["paths"].as_object().unwrap() {
        let name = item["post"]["summary"].as_str().unwrap();
        assert!(
            dom.contains(&format!(">{name}<")),
            "{name} is not on the rendered page"
        );
        assert!(
            dom.contains(&format!("localhost:9898{path}")),
            "no curl command for {path} on the rendered page"
        );
    }

    let shot = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("docs-screenshot.png");
    let _ = std::fs::remove_file(&shot);
    let profile = tempfile::tempdir().unwrap();
    let out = headless(
        &chromium,
        profile.path(),
        &[&format!("--screenshot={}", shot.display())],
        &url,
    );
    assert!(
        out.status.success(),
        "chromium --screenshot failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let png = std::fs::read(&shot).expect("screenshot written");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A blank 1400x1000 page compresses to a few KB; the rendered docs are far larger.
    assert!(
        png.len() > 40_000,
        "the screenshot looks blank ({} bytes): {}",
        png.len(),
        shot.display()
    );
    eprintln!("screenshot of /docs: {}", shot.display());
}
