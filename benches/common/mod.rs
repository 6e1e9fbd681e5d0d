//! Helpers shared by the `harness = false` benches (`mod common;` in each):
//! the release server on 127.0.0.1:0, /proc readings, statistics, env knobs
//! and the PASS/FAIL summary. Cargo builds only top-level files in benches/
//! as bench targets, so this folder is compiled into each bench, not on its own.

// Every bench compiles this module but uses only some of it, so each bench
// crate alone would call the rest dead.
#![allow(
    dead_code,
    reason = "each bench uses a different subset of these helpers"
)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The release server binary cargo built for this bench.
pub const BIN: &str = env!("CARGO_BIN_EXE_backrest-rs");

/// The server binary to measure: [`BIN`], or `BENCH_SERVER_BIN` (e.g. a
/// build with debug symbols, for `perf`).
pub fn server_bin() -> String {
    std::env::var("BENCH_SERVER_BIN").unwrap_or_else(|_| BIN.to_string())
}

/// reqwest has rustls without a default crypto provider (see Cargo.toml).
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

// ---------------------------------------------------------------------------
// Environment knobs

/// A whole-number knob, `default` when unset or not a number.
pub fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// An on/off knob: on only when set to `1`.
pub fn env_flag(name: &str) -> bool {
    std::env::var(name).is_ok_and(|v| v == "1")
}

/// Whether `BENCH_ONLY` (a comma-separated list of sections) names `section`.
pub fn asked_for(section: &str) -> bool {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    only.split(',').any(|s| s.trim() == section)
}

/// Whether to run `section`: `BENCH_ONLY` is unset (everything a default run
/// includes) or names it.
pub fn want(section: &str) -> bool {
    std::env::var("BENCH_ONLY").unwrap_or_default().is_empty() || asked_for(section)
}

// ---------------------------------------------------------------------------
// The server process

/// The server binary running on a temp dir; killed (SIGKILL) and reaped on drop.
pub struct ServerProc {
    child: Child,
    /// `http://127.0.0.1:PORT`, as the server printed it.
    pub base: String,
}

impl ServerProc {
    /// A command running `bin` with its data and config in `dir`, listening
    /// on 127.0.0.1:0, with `HOME=home`, stdout piped (for the address) and
    /// stderr in `dir/server.log`. Benches add their own env and args.
    pub fn command(bin: &str, dir: &Path, home: &Path) -> Command {
        std::fs::create_dir_all(dir).expect("server dir");
        let stderr = std::fs::File::create(dir.join("server.log")).expect("server log file");
        let mut cmd = Command::new(bin);
        cmd.arg("-data-dir")
            .arg(dir.join("data"))
            .arg("-config-file")
            .arg(dir.join("config").join("config.json"))
            .arg("-bind-address")
            .arg("127.0.0.1:0")
            .env("HOME", home)
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr);
        cmd
    }

    /// Spawns `cmd` (from [`ServerProc::command`] on `dir`) and waits up to
    /// 60 s for the line with the address it listens on.
    pub fn spawn(mut cmd: Command, dir: &Path) -> ServerProc {
        let mut child = cmd.spawn().expect("spawn backrest-rs");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("backrest-rs listening on ") {
                    let _ = tx.send(addr.to_string());
                }
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(base) => ServerProc { child, base },
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "server did not start; stderr:\n{}",
                    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
                );
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---------------------------------------------------------------------------
// /proc

/// The fields of /proc/PID/stat after "(comm)" (the name may hold spaces and
/// parentheses): index 0 is field 3 (state), so field N is index N - 3.
pub fn proc_stat_fields(pid: u32) -> Option<Vec<String>> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.rsplit_once(')')?.1;
    Some(rest.split_whitespace().map(String::from).collect())
}

/// The sum of clock-tick fields of [`proc_stat_fields`] (by index), in ms:
/// USER_HZ is 100 on Linux, so a tick is 10 ms. Missing fields count as 0.
pub fn ticks_ms(fields: &[String], indexes: &[usize]) -> f64 {
    let ticks: f64 = indexes
        .iter()
        .map(|&i| {
            fields
                .get(i)
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0)
        })
        .sum();
    ticks * 10.0
}

/// User + system CPU time a process has used so far, in ms (utime and
/// stime, fields 14 and 15); 0 if it is gone.
pub fn pid_cpu_ms(pid: u32) -> f64 {
    ticks_ms(&proc_stat_fields(pid).unwrap_or_default(), &[11, 12])
}

/// The 1, 5 and 15-minute load averages, space-separated.
pub fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

/// The trimmed stdout of a shell command (machine facts for the header);
/// empty if it fails.
pub fn sh(cmd: &str) -> String {
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------
// Deterministic data

/// splitmix64: deterministic, no dependency. Benches add the draws they need.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

// ---------------------------------------------------------------------------
// Statistics and verdicts

pub struct Stats {
    pub n: usize,
    pub min: f64,
    pub median: f64,
    pub p90: f64,
    pub max: f64,
}

/// Summary of samples (at least one); the median of an even count is the
/// mean of the middle two, p90 the nearest-rank 90th percentile.
pub fn stats(samples: &[f64]) -> Stats {
    let mut s = samples.to_vec();
    s.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let n = s.len();
    assert!(n > 0, "no samples");
    let median = if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    };
    let p90 = s[((n as f64 * 0.9).ceil() as usize).clamp(1, n) - 1];
    Stats {
        n,
        min: s[0],
        median,
        p90,
        max: s[n - 1],
    }
}

pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub fn pass(ok: bool) -> &'static str {
    if ok { "PASS" } else { "FAIL" }
}

/// One target's outcome, for the summary.
pub struct Verdict {
    pub name: String,
    pub value: String,
    pub ok: bool,
}

/// Prints the end load average and the summary (names padded to
/// `name_width`), and exits with 1 if a target failed and `strict` is set.
pub fn finish(verdicts: &[Verdict], name_width: usize, strict: bool) {
    println!("load avg:    {} (end)", loadavg());
    println!("== summary ==");
    for v in verdicts {
        println!("{:<4} {:<name_width$} {}", pass(v.ok), v.name, v.value);
    }
    let all = verdicts.iter().all(|v| v.ok);
    println!(
        "{}",
        if all {
            "ALL TARGETS MET"
        } else {
            "SOME TARGETS MISSED"
        }
    );
    if strict && !all {
        std::process::exit(1);
    }
}
