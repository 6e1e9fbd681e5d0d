//! Shared harness for integration tests: starts the real `backrest-rs` binary
//! on 127.0.0.1:0 in a temp dir and talks to it over real HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use backrest_rs::connect::envelope::{self, StreamDecoder};
use bytes::Bytes;
use futures::StreamExt;
use prost::Message;

pub const BIN: &str = env!("CARGO_BIN_EXE_backrest-rs");

/// A running server and the temp dir it owns.
pub struct Server {
    pub child: Option<Child>,
    pub base: String,
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub stderr_path: PathBuf,
}

pub struct ServerBuilder {
    dir: PathBuf,
    tmp: Option<tempfile::TempDir>,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

impl ServerBuilder {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().expect("tempdir");
        ServerBuilder {
            dir: tmp.path().to_path_buf(),
            tmp: Some(tmp),
            args: vec![],
            env: vec![],
        }
    }

    /// Reuse an existing directory (for restart tests); the caller keeps it alive.
    pub fn in_dir(dir: &Path) -> Self {
        ServerBuilder {
            dir: dir.to_path_buf(),
            tmp: None,
            args: vec![],
            env: vec![],
        }
    }

    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_string());
        self
    }

    pub fn env(mut self, k: &str, v: &str) -> Self {
        self.env.push((k.into(), v.into()));
        self
    }

    pub fn start(self) -> Server {
        install_tls();
        let dir = self.dir;
        let stderr_path = dir.join(format!(
            "server-{}.log",
            std::process::id() as u128 * 1000 + rand_suffix()
        ));
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        let mut cmd = Command::new(BIN);
        cmd.arg("-data-dir")
            .arg(dir.join("data"))
            .arg("-config-file")
            .arg(dir.join("config").join("config.json"))
            .arg("-bind-address")
            .arg("127.0.0.1:0")
            .args(&self.args)
            .env("RUST_LOG", "info")
            .env("HOME", &dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("spawn backrest-rs");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("backrest-rs listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        let base = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "server did not start; stderr:\n{}",
                    std::fs::read_to_string(&stderr_path).unwrap_or_default()
                );
            }
        };
        Server {
            child: Some(child),
            base,
            dir,
            _tmp: self.tmp,
            stderr_path,
        }
    }
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u128
}

impl Server {
    pub fn start() -> Server {
        ServerBuilder::new().start()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.join("config").join("config.json")
    }

    pub fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// SIGTERM and wait; returns the exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running");
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = child.try_wait().unwrap() {
                return st;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("server did not stop within 20s after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("running");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// reqwest is built with rustls but no default crypto provider (the server
/// picks ring itself): every process that builds a client installs it first.
pub fn install_tls() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub fn client() -> reqwest::Client {
    install_tls();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .unwrap()
}

/// A unary JSON call: (HTTP status, parsed JSON body).
pub async fn call_json(
    s: &Server,
    procedure: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let resp = client()
        .post(s.url(procedure))
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = resp.bytes().await.unwrap();
    let v = if bytes.is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|e| panic!("non-JSON body ({e}): {}", String::from_utf8_lossy(&bytes)))
    };
    (status, v)
}

/// A unary JSON call that must succeed.
pub async fn ok_json(s: &Server, procedure: &str, body: serde_json::Value) -> serde_json::Value {
    let (status, v) = call_json(s, procedure, body).await;
    assert_eq!(status, 200, "{procedure} failed: {v}");
    v
}

/// A unary binary-protobuf call: Ok(message) or Err((status, JSON error)).
pub async fn call_proto<Req: Message, Resp: Message + Default>(
    s: &Server,
    procedure: &str,
    req: &Req,
) -> Result<Resp, (u16, serde_json::Value)> {
    let resp = client()
        .post(s.url(procedure))
        .header("content-type", "application/proto")
        .header("connect-protocol-version", "1")
        .body(req.encode_to_vec())
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let bytes = resp.bytes().await.unwrap();
    if status == 200 {
        assert_eq!(ct, "application/proto");
        Ok(Resp::decode(bytes).expect("valid proto response"))
    } else {
        assert_eq!(ct, "application/json");
        Err((status, serde_json::from_slice(&bytes).unwrap()))
    }
}

/// A live server stream: yields decoded frames as they arrive.
pub struct StreamReader {
    body: futures::stream::BoxStream<'static, reqwest::Result<Bytes>>,
    decoder: StreamDecoder,
    pub content_type: String,
}

pub enum Frame {
    Message(Bytes),
    End(serde_json::Value),
}

impl StreamReader {
    pub async fn open(s: &Server, procedure: &str, json: bool, payload: Vec<u8>) -> StreamReader {
        let ct = if json {
            "application/connect+json"
        } else {
            "application/connect+proto"
        };
        let resp = client()
            .post(s.url(procedure))
            .header("content-type", ct)
            .header("connect-protocol-version", "1")
            .body(envelope::encode(0, &payload).to_vec())
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200);
        let content_type = resp.headers()["content-type"].to_str().unwrap().to_string();
        StreamReader {
            body: resp.bytes_stream().boxed(),
            decoder: StreamDecoder::default(),
            content_type,
        }
    }

    /// Next frame, or None when the body ends; panics after `timeout`.
    pub async fn next(&mut self, timeout: Duration) -> Option<Frame> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(env) = self.decoder.next() {
                return Some(if env.flags & envelope::FLAG_END_STREAM != 0 {
                    Frame::End(serde_json::from_slice(&env.payload).expect("end-stream JSON"))
                } else {
                    Frame::Message(env.payload)
                });
            }
            match tokio::time::timeout_at(deadline, self.body.next()).await {
                Err(_) => panic!("no stream frame within {timeout:?}"),
                Ok(None) => return None,
                Ok(Some(chunk)) => self.decoder.push(&chunk.unwrap()),
            }
        }
    }
}

/// Reads a whole log (`GetLogs`, JSON codec) as text: the stream ends when
/// the log is complete (a log still being written is followed live).
pub async fn read_log(s: &Server, logref: &str) -> String {
    let payload = serde_json::to_vec(&serde_json::json!({ "ref": logref })).unwrap();
    let mut stream = StreamReader::open(s, "/v1.Backrest/GetLogs", true, payload).await;
    let mut bytes = Vec::new();
    loop {
        match stream.next(Duration::from_secs(30)).await {
            Some(Frame::Message(m)) => {
                let chunk: backrest_rs::pb::types::BytesValue =
                    serde_json::from_slice(&m).expect("BytesValue JSON");
                bytes.extend_from_slice(&chunk.value);
            }
            Some(Frame::End(v)) => {
                assert!(
                    v.get("error").is_none(),
                    "GetLogs({logref}) ended with an error: {v}"
                );
                break;
            }
            None => panic!("GetLogs({logref}) ended without end-of-stream"),
        }
    }
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A protojson string field, or "" when absent.
pub fn str_of(v: &serde_json::Value) -> &str {
    v.as_str().unwrap_or("")
}

/// An int64 in protojson (a string), a number, or absent (0).
pub fn num(v: &serde_json::Value) -> i64 {
    use serde_json::Value;
    match v {
        Value::String(s) => s
            .parse()
            .unwrap_or_else(|_| panic!("not an integer: {s:?}")),
        Value::Number(n) => n.as_i64().unwrap_or_else(|| n.as_f64().unwrap() as i64),
        Value::Null => 0,
        other => panic!("not an integer: {other}"),
    }
}

/// Deterministic bytes that don't compress.
pub fn noise(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// Sets the instance ID through GetConfig and SetConfig.
pub async fn set_instance(s: &Server, instance: &str) {
    let mut cfg = ok_json(s, "/v1.Backrest/GetConfig", serde_json::json!({})).await;
    cfg["instance"] = serde_json::json!(instance);
    ok_json(s, "/v1.Backrest/SetConfig", cfg).await;
}

/// Adds (and initializes) repo `id` at `uri`; returns AddRepo's answer, the new config.
pub async fn add_repo(s: &Server, id: &str, uri: &Path, password: &str) -> serde_json::Value {
    ok_json(
        s,
        "/v1.Backrest/AddRepo",
        serde_json::json!({"repo": {"id": id, "uri": uri, "password": password}}),
    )
    .await
}

/// GetOperations(selector).
pub async fn ops(s: &Server, selector: serde_json::Value) -> Vec<serde_json::Value> {
    let v = ok_json(
        s,
        "/v1.Backrest/GetOperations",
        serde_json::json!({ "selector": selector }),
    )
    .await;
    v["operations"].as_array().cloned().unwrap_or_default()
}

pub async fn op_by_id(s: &Server, id: i64) -> serde_json::Value {
    let found = ops(s, serde_json::json!({"ids": [id.to_string()]})).await;
    assert_eq!(found.len(), 1, "operation {id} not found");
    found.into_iter().next().unwrap()
}

/// Whether an operation has a final status.
pub fn is_done(op: &serde_json::Value) -> bool {
    !matches!(
        str_of(&op["status"]),
        "STATUS_PENDING" | "STATUS_INPROGRESS" | ""
    )
}

/// Polls until operation `id` has a final status.
pub async fn wait_op(s: &Server, id: i64, timeout: Duration) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    loop {
        let op = op_by_id(s, id).await;
        if is_done(&op) {
            return op;
        }
        if Instant::now() > deadline {
            panic!(
                "operation {id} not finished after {timeout:?}: {op}\nserver log:\n{}",
                s.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls GetOperations(selector) until `pred` holds for the list.
pub async fn wait_ops(
    s: &Server,
    selector: serde_json::Value,
    timeout: Duration,
    what: &str,
    pred: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let deadline = Instant::now() + timeout;
    loop {
        let list = ops(s, selector.clone()).await;
        if pred(&list) {
            return list;
        }
        if Instant::now() > deadline {
            panic!(
                "{what}: not seen within {timeout:?}; operations: {}\nserver log:\n{}",
                serde_json::Value::Array(list),
                s.stderr()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The plain restic CLI against `repo`, ignoring any restic settings in the environment.
pub fn restic(repo: &Path, password: &str, args: &[&str]) -> std::process::Output {
    Command::new("restic")
        .arg("-r")
        .arg(repo)
        .arg("--no-cache")
        .args(args)
        .env("RESTIC_PASSWORD", password)
        .env_remove("RESTIC_PASSWORD_FILE")
        .env_remove("RESTIC_PASSWORD_COMMAND")
        .env_remove("RESTIC_REPOSITORY")
        .output()
        .expect("run restic")
}

/// [`restic`], which must succeed; its standard output.
pub fn restic_ok(repo: &Path, password: &str, args: &[&str]) -> String {
    let out = restic(repo, password, args);
    assert!(
        out.status.success(),
        "restic {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}
