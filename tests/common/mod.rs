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
