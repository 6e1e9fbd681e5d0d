//! The process and HTTP surface: flags, the data-dir lock, signals, the web
//! UI / landing page, health checks, HTTP/2 cleartext, protocol errors over a
//! real socket.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test]
async fn landing_page_health_and_version() {
    let s = Server::start();
    let resp = client().get(s.url("/")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-content-type-options"], "nosniff");
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("backrest-rs")
            && text.contains(env!("CARGO_PKG_VERSION"))
            && text.contains("/v1.Backrest/")
    );
    let health: serde_json::Value = client()
        .get(s.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(
        client()
            .get(s.url("/no/such/file"))
            .send()
            .await
            .unwrap()
            .status(),
        404
    );

    let out = std::process::Command::new(BIN)
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = std::process::Command::new(BIN)
        .arg("-bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flag provided but not defined: -bogus"));
}

#[tokio::test]
async fn serves_a_web_ui_directory_with_gzip_only_assets() {
    let root = tempfile::tempdir().unwrap();
    let ui = root.path().join("ui");
    std::fs::create_dir(&ui).unwrap();
    std::fs::write(
        ui.join("index.html.gz"),
        backrest_rs::connect::compression::gzip(b"<html>UI</html>"),
    )
    .unwrap();
    std::fs::create_dir(ui.join("assets")).unwrap();
    std::fs::write(ui.join("assets/app.js"), "console.log(1)").unwrap();
    // A file next to (outside) the UI directory must never be served.
    std::fs::write(root.path().join("secret.txt"), "x").unwrap();
    let s = ServerBuilder::new()
        .arg("-webui-dir")
        .arg(ui.to_str().unwrap())
        .start();

    // gzip-accepting client gets the stored bytes with Content-Encoding: gzip.
    let raw = reqwest::Client::builder().build().unwrap();
    let resp = raw
        .get(s.url("/"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-encoding"], "gzip");
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let body = resp.bytes().await.unwrap();
    assert_eq!(
        backrest_rs::connect::compression::gunzip(&body, 1000).unwrap(),
        b"<html>UI</html>"
    );
    // Others get it decompressed.
    let resp = raw.get(s.url("/")).send().await.unwrap();
    assert!(resp.headers().get("content-encoding").is_none());
    assert_eq!(resp.text().await.unwrap(), "<html>UI</html>");
    let resp = raw.get(s.url("/assets/app.js")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .contains("javascript")
    );
    // No escaping the directory.
    for p in [
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e/%2e%2e/secret.txt",
        "/..%2fsecret.txt",
        "/%2e%2e/%2e%2e/etc/passwd",
    ] {
        let resp = raw.get(s.url(p)).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{p}");
    }
    // The env var works too.
    let s2 = ServerBuilder::new()
        .env("BACKREST_WEBUI_DIR", ui.to_str().unwrap())
        .start();
    assert_eq!(
        raw.get(s2.url("/"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap(),
        "<html>UI</html>"
    );
}

#[tokio::test]
async fn second_instance_on_the_same_data_dir_exits_at_once() {
    let s = Server::start();
    let started = std::time::Instant::now();
    let out = std::process::Command::new(BIN)
        .arg("-data-dir")
        .arg(s.data_dir())
        .arg("-config-file")
        .arg(s.config_path())
        .arg("-bind-address")
        .arg("127.0.0.1:0")
        .output()
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already in use by another"), "{err}");
    // The first one still serves.
    assert_eq!(
        client()
            .get(s.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test]
async fn sigterm_shuts_down_gracefully_even_with_an_open_stream() {
    let mut s = ServerBuilder::new()
        .arg("-keepalive-interval")
        .arg("100ms")
        .start();
    let mut stream =
        StreamReader::open(&s, "/v1.Backrest/GetOperationEvents", true, b"{}".to_vec()).await;
    let status = s.stop();
    assert!(
        status.success(),
        "exit status {status:?}; stderr:\n{}",
        s.stderr()
    );
    // The stream got a proper end-of-stream rather than a cut connection.
    let mut saw_end = false;
    while let Some(f) = stream.next(Duration::from_secs(5)).await {
        if let Frame::End(v) = f {
            assert_eq!(v["error"]["code"], "unavailable", "{v}");
            saw_end = true;
        }
    }
    assert!(saw_end);
    assert!(s.stderr().contains("shutting down"));
}

#[tokio::test]
async fn protocol_errors_over_http() {
    let s = Server::start();
    let c = client();
    let r = c
        .post(s.url("/v1.Backrest/GetConfig"))
        .header("content-type", "text/plain")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 415);
    let r = c.get(s.url("/v1.Backrest/GetConfig")).send().await.unwrap();
    assert_eq!(r.status(), 405);
    let r = c
        .post(s.url("/v1.Backrest/DoesNotExist"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "unimplemented");
    let r = c
        .post(s.url("/v1.Authentication/Nope"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let (status, v) = call_json(
        &s,
        "/v1.Backrest/SetConfig",
        serde_json::json!({"modno": "not a number"}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(v["code"], "invalid_argument");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .contains("v1.Backrest/SetConfig")
    );
    let r = c
        .post(s.url("/v1.Backrest/GetConfig"))
        .header("content-type", "application/json")
        .header("content-encoding", "zstd")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 501);
    // Bidirectional sync is honestly unimplemented.
    let r = c
        .post(s.url("/v1sync.BackrestSyncService/Sync"))
        .header("content-type", "application/connect+proto")
        .body(vec![])
        .send()
        .await
        .unwrap();
    let v: serde_json::Value = r.json().await.unwrap();
    assert_eq!(v["code"], "unimplemented");
}

#[tokio::test]
async fn cleartext_http2_on_the_same_port() {
    let s = Server::start();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let r = h2.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_eq!(r.status(), 200);
    let r = h2
        .post(s.url("/v1.Backrest/GetConfig"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.version(), reqwest::Version::HTTP_2);
    assert_ne!(r.status(), 404);
}

#[tokio::test]
async fn gzip_timeouts_and_field_names_over_http() {
    use backrest_rs::connect::compression::{gunzip, gzip};
    let s = Server::start();
    let c = client();
    // Grow the config past the compression threshold.
    let mut cfg: serde_json::Value =
        ok_json(&s, "/v1.Backrest/GetConfig", serde_json::json!({})).await;
    cfg["instance"] = "gz".into();
    cfg["repos"] = (0..20)
        .map(|i| serde_json::json!({"id": format!("repo-{i}"), "uri": format!("/srv/restic/{i}"), "guid": "c".repeat(64), "password": "x"}))
        .collect::<Vec<_>>()
        .into();
    // A gzip-compressed request body is accepted...
    let r = c
        .post(s.url("/v1.Backrest/SetConfig"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .header("accept-encoding", "gzip")
        .body(gzip(cfg.to_string().as_bytes()))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // ...and the response comes back gzip-compressed when asked for.
    assert_eq!(r.headers()["content-encoding"], "gzip");
    let body = gunzip(&r.bytes().await.unwrap(), 1 << 20).unwrap();
    let saved: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(saved["repos"].as_array().unwrap().len(), 20);
    // Without Accept-Encoding: identity.
    let r = c
        .post(s.url("/v1.Backrest/GetConfig"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("content-encoding").is_none());
    // A bad gzip body is invalid_argument.
    let r = c
        .post(s.url("/v1.Backrest/GetConfig"))
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body("not gzip at all")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);

    // Malformed Connect-Timeout-Ms: invalid_argument.
    let r = c
        .post(s.url("/v1.Backrest/GetConfig"))
        .header("content-type", "application/json")
        .header("connect-timeout-ms", "-5")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // A stream with a deadline ends with deadline_exceeded in its end-of-stream.
    let resp = c
        .post(s.url("/v1.Backrest/GetOperationEvents"))
        .header("content-type", "application/connect+json")
        .header("connect-timeout-ms", "300")
        .body(backrest_rs::connect::envelope::encode(0, b"{}").to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let started = std::time::Instant::now();
    let body = resp.bytes().await.unwrap();
    assert!(started.elapsed() < Duration::from_secs(5));
    let frames = backrest_rs::connect::envelope::decode_all(body, 1 << 20).unwrap();
    let end: serde_json::Value = serde_json::from_slice(&frames.last().unwrap().payload).unwrap();
    assert_eq!(end["error"]["code"], "deadline_exceeded");

    // Proto field names and unknown fields in a request are fine; a wrong type is not.
    let (status, _) = call_json(
        &s,
        "/v1.Backrest/GetOperations",
        serde_json::json!({"selector": {"plan_id": "x"}, "last_n": 5, "futureField": true}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, err) = call_json(
        &s,
        "/v1.Backrest/GetOperations",
        serde_json::json!({"lastN": {"nested": 1}}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], "invalid_argument");
    assert!(
        err["message"].as_str().unwrap().contains("GetOperations"),
        "{err}"
    );
}

#[tokio::test]
async fn server_streams_work_over_cleartext_http2() {
    let s = ServerBuilder::new()
        .arg("-keepalive-interval")
        .arg("100ms")
        .start();
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(s.url("/v1.Backrest/GetOperationEvents"))
        .header("content-type", "application/connect+json")
        .header("connect-timeout-ms", "350")
        .body(backrest_rs::connect::envelope::encode(0, b"{}").to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let frames =
        backrest_rs::connect::envelope::decode_all(resp.bytes().await.unwrap(), 1 << 20).unwrap();
    // Keep-alives, then the deadline's end-of-stream.
    assert!(frames.len() >= 3, "{} frames", frames.len());
    assert_eq!(frames[0].payload.as_ref(), br#"{"keepAlive":{}}"#);
}
