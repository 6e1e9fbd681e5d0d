//! Acceptance benchmark of authentication (see BENCHMARKS.md). A plain
//! `harness = false` bench: `cargo bench --bench auth`.
//!
//! Starts the real release binary on 127.0.0.1:0 in a temp dir, enables auth
//! (HashPassword + SetConfig, as the UI does) and times GetConfig over
//! loopback HTTP keep-alive connections:
//!
//! * with HTTP Basic credentials (`curl -u` style) — verified by bcrypt once,
//!   then remembered for 60 s under a keyed SHA-256;
//! * with `Authorization: Bearer <token from Login>` (an HMAC-SHA256 check);
//! * for reference, with Basic and the credential cache off
//!   (`BACKREST_BASIC_AUTH_CACHE_SECS=0`): a bcrypt per request, which is
//!   what Backrest pays.
//!
//! Each is run with one connection (sequential requests) and with
//! `BENCH_CONCURRENCY` connections (default 8). Target (the auth issue):
//! Basic ≥ 50% of Bearer requests per second. Knobs: `BENCH_SECS` (seconds
//! per case, default 3), `BENCH_STRICT=1` (exit 1 if the target fails).

mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{BIN, ServerProc, env_flag, env_num, loadavg, pass};
use serde_json::{Value, json};

const USER: &str = "bench";
const PASS: &str = "bench-password-1";
const TARGET_RATIO: f64 = 0.5;

/// The release binary on `dir` with `env` added.
fn start_server(dir: &Path, env: &[(&str, &str)]) -> ServerProc {
    let mut cmd = ServerProc::command(BIN, dir, dir);
    cmd.envs(env.iter().copied());
    ServerProc::spawn(cmd, dir)
}

#[derive(Clone)]
enum Cred {
    Basic,
    Bearer(String),
}

async fn post(
    c: &reqwest::Client,
    base: &str,
    path: &str,
    body: Value,
    cred: Option<&Cred>,
) -> (u16, Value) {
    let mut rb = c
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.to_string());
    match cred {
        Some(Cred::Basic) => rb = rb.basic_auth(USER, Some(PASS)),
        Some(Cred::Bearer(t)) => rb = rb.bearer_auth(t),
        None => {}
    }
    let resp = rb.send().await.expect("request");
    let status = resp.status().as_u16();
    let v = resp.json().await.unwrap_or(Value::Null);
    (status, v)
}

/// Enables auth with one user; returns a Login token.
async fn setup(c: &reqwest::Client, base: &str) -> String {
    let (st, h) = post(
        c,
        base,
        "/v1.Authentication/HashPassword",
        json!({"value": PASS}),
        None,
    )
    .await;
    assert_eq!(st, 200, "{h}");
    let (st, mut cfg) = post(c, base, "/v1.Backrest/GetConfig", json!({}), None).await;
    assert_eq!(st, 200);
    cfg["instance"] = json!("bench");
    cfg["auth"] =
        json!({"disabled": false, "users": [{"name": USER, "passwordBcrypt": h["value"]}]});
    let (st, v) = post(c, base, "/v1.Backrest/SetConfig", cfg, None).await;
    assert_eq!(st, 200, "{v}");
    let (st, _) = post(c, base, "/v1.Backrest/GetConfig", json!({}), None).await;
    assert_eq!(st, 401, "auth is on");
    let (st, t) = post(
        c,
        base,
        "/v1.Authentication/Login",
        json!({"username": USER, "password": PASS}),
        None,
    )
    .await;
    assert_eq!(st, 200, "{t}");
    t["token"].as_str().unwrap().to_string()
}

/// GetConfig requests per second over `conns` keep-alive connections for `secs`.
async fn measure(base: &str, cred: &Cred, conns: usize, secs: f64) -> f64 {
    let done = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        // One client per task: one connection each.
        let c = reqwest::Client::builder()
            .pool_max_idle_per_host(1)
            .build()
            .unwrap();
        let base = base.to_string();
        let cred = cred.clone();
        let done = done.clone();
        tasks.push(tokio::spawn(async move {
            // Warm the connection (and, for Basic, the credential cache).
            let (st, _) = post(&c, &base, "/v1.Backrest/GetConfig", json!({}), Some(&cred)).await;
            assert_eq!(st, 200);
            while Instant::now() < deadline {
                let (st, _) =
                    post(&c, &base, "/v1.Backrest/GetConfig", json!({}), Some(&cred)).await;
                assert_eq!(st, 200);
                done.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    done.load(Ordering::Relaxed) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    common::install_crypto_provider();
    // `cargo bench` passes `--bench`; nothing else to parse.
    let secs = env_num("BENCH_SECS", 3) as f64;
    let conc = env_num("BENCH_CONCURRENCY", 8) as usize;
    let strict = env_flag("BENCH_STRICT");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::tempdir().unwrap();

    println!("auth benchmark: GetConfig over loopback, release binary, {secs} s per case");
    println!(
        "machine: {} cores, load average {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        loadavg()
    );
    let mut all_ok = true;
    rt.block_on(async {
        let server = start_server(&tmp.path().join("cached"), &[]);
        let c = reqwest::Client::new();
        let token = setup(&c, &server.base).await;
        let bearer = Cred::Bearer(token);
        println!();
        println!(
            "| connections | Bearer req/s | Basic req/s (cached) | Basic / Bearer | target ≥ 50% |"
        );
        println!("|---|---|---|---|---|");
        for conns in [1, conc] {
            // Interleave the two to even out noise; keep each one's best.
            let mut best = (0.0f64, 0.0f64);
            for _ in 0..2 {
                best.0 = best
                    .0
                    .max(measure(&server.base, &bearer, conns, secs / 2.0).await);
                best.1 = best
                    .1
                    .max(measure(&server.base, &Cred::Basic, conns, secs / 2.0).await);
            }
            let ratio = best.1 / best.0;
            let ok = ratio >= TARGET_RATIO;
            all_ok &= ok;
            println!(
                "| {conns} | {:.0} | {:.0} | {:.0}% | {} |",
                best.0,
                best.1,
                ratio * 100.0,
                pass(ok)
            );
        }
        drop(server);

        // Reference: Basic with the cache off, a bcrypt per request (Backrest's cost).
        let server = start_server(
            &tmp.path().join("uncached"),
            &[("BACKREST_BASIC_AUTH_CACHE_SECS", "0")],
        );
        setup(&c, &server.base).await;
        println!();
        println!("| connections | Basic req/s, cache off (a bcrypt per request, as Backrest) |");
        println!("|---|---|");
        for conns in [1, conc] {
            let rps = measure(&server.base, &Cred::Basic, conns, secs / 2.0).await;
            println!("| {conns} | {rps:.1} |");
        }
    });
    println!();
    println!("load average after: {}", loadavg());
    println!(
        "{}: Basic ≥ 50% of Bearer requests per second",
        pass(all_ok)
    );
    if strict && !all_ok {
        std::process::exit(1);
    }
}
