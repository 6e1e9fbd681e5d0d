//! Acceptance benchmark of the restic engine (see BENCHMARKS.md). A plain
//! `harness = false` bench: `cargo bench --bench engine`.
//!
//! The restic-engine issue's line: "the wrapper's overhead on the same repo:
//! Backup RPC wall time vs plain restic backup of a 200 MB / 10,000-file tree
//! (target ≤ 5% plus one repo-open), and the time to list 1,000 snapshots
//! (target: no restic call when the index is current)".
//!
//! 1. Writes a deterministic 200 MB / 10,000-file tree (restic.md's gentree:
//!    every third file repetitive text, the rest random bytes, 17×5 folders),
//!    starts the real release binary, and lets AddRepo initialize the
//!    repository, so both sides below pay the same scrypt key cost. That
//!    cost (`restic cat config --no-lock`, median of 5) is "one repo-open".
//! 2. After a first (full) backup and one warm-up each, interleaves N rounds
//!    of (a) plain `restic backup --json <tree> --exclude-caches --tag plan:P
//!    --tag created-by:I --parent <its own previous snapshot>` (the argv
//!    backrest-rs builds; each side chains on its own snapshots, so both read
//!    the same changed files; same
//!    env: RESTIC_PASSWORD/RESTIC_REPOSITORY/RESTIC_PROGRESS_FPS=2, same
//!    cache dir) and (b) the Backup RPC (JSON) for a plan on that tree, timed
//!    from request to 200. Nothing changed between them; then a few rounds
//!    after appending to 1% of the files. A /proc watcher lists every restic
//!    process the server starts during an RPC (argv, wall, CPU): the
//!    breakdown of the wrapper's extra repo-opens.
//! 3. Makes 1,000 snapshots in a second AddRepo'd repository (plain restic
//!    backups of an unchanged 1-file folder with `--time` steps, several at
//!    once), times the live ListSnapshots path (restic runs), indexes
//!    (DoRepoTask TASK_INDEX_SNAPSHOTS, waits for 1,000 index ops) and times
//!    the indexed path, JSON and binary, checking that the server starts no
//!    restic process (the /proc watcher, and the server's reaped-children
//!    CPU time in /proc/PID/stat) during the timed calls.
//!
//! The machine is shared: before the timed parts the bench waits (up to
//! `BENCH_LOAD_WAIT_SECS`, default 1200, polling every 30 s) for the 1-minute
//! load average to drop below `BENCH_MAX_LOAD` (default 1.5), and reports
//! the load during each part.
//!
//! Knobs: `BENCH_ROUNDS` (timed nothing-changed rounds, default 5),
//! `BENCH_CHANGED_ROUNDS` (1%-changed rounds, default 3), `BENCH_SNAPSHOTS`
//! (default 1000), `BENCH_LIST_ITERS` (default 20), `BENCH_LIVE_ITERS`
//! (default 3), `BENCH_JOBS` (parallel restic backups making snapshots,
//! default 4), `BENCH_FILES` / `BENCH_TREE_MB` (default 10000 / 200),
//! `BENCH_ONLY=backup,list`, `BENCH_STRICT=1` (exit 1 if a target fails),
//! `BENCH_SERVER_BIN` (another server binary), `BENCH_RESTIC` (restic binary,
//! default `restic` on PATH; the server gets the same one).

mod common;

use std::collections::{HashMap, HashSet};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backrest_rs::pb::v1::{ListSnapshotsRequest, ResticSnapshotList};
use common::{
    Rng, ServerProc, Verdict, env_flag, env_num, loadavg, ms, pass, proc_stat_fields, server_bin,
    sh, stats, ticks_ms, want,
};
use prost::Message;
use serde_json::{Value, json};

const INSTANCE: &str = "bench-host";
const PLAN: &str = "big";
const LIST_PLAN: &str = "list";
const PASSWORD: &str = "bench-pw";
/// Backup RPC overhead allowance: this fraction of plain restic, plus one repo-open.
const TARGET_FRACTION: f64 = 0.05;

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn restic_bin() -> String {
    std::env::var("BENCH_RESTIC").unwrap_or_else(|_| "restic".to_string())
}

// ---------------------------------------------------------------------------
// Statistics and machine context

fn median(samples: &[f64]) -> f64 {
    stats(samples).median
}

fn load1() -> f64 {
    loadavg()
        .split_whitespace()
        .next()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// Waits until the 1-minute load average is below `BENCH_MAX_LOAD`.
fn wait_for_quiet(what: &str) {
    let max = env_f64("BENCH_MAX_LOAD", 1.5);
    let budget = Duration::from_secs(env_num("BENCH_LOAD_WAIT_SECS", 1200));
    let t = Instant::now();
    loop {
        let l = load1();
        if l < max {
            println!(
                "load {} before {what} (waited {:.0} s)",
                loadavg(),
                t.elapsed().as_secs_f64()
            );
            return;
        }
        if t.elapsed() >= budget {
            println!(
                "load {} before {what}: still >= {max} after {:.0} s, measuring anyway (numbers are noisier)",
                loadavg(),
                t.elapsed().as_secs_f64()
            );
            return;
        }
        println!(
            "  load {} >= {max}: waiting for a quieter machine before {what} ({:.0} s so far)",
            loadavg(),
            t.elapsed().as_secs_f64()
        );
        std::io::stdout().flush().ok();
        std::thread::sleep(Duration::from_secs(30));
    }
}

/// Samples the 1-minute load average every second while alive (the load
/// during a measured part).
struct LoadSampler {
    stop: Arc<AtomicBool>,
    samples: Arc<Mutex<Vec<f64>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl LoadSampler {
    fn start() -> LoadSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let samples = Arc::new(Mutex::new(vec![load1()]));
        let (s2, v2) = (stop.clone(), samples.clone());
        let handle = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(1000));
                v2.lock().unwrap().push(load1());
            }
        });
        LoadSampler {
            stop,
            samples,
            handle: Some(handle),
        }
    }

    /// "min–max (1-min load average)".
    fn finish(mut self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
        let v = self.samples.lock().unwrap().clone();
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        format!("{lo:.2}–{hi:.2}")
    }
}

// ---------------------------------------------------------------------------
// The source tree (restic.md's gentree, in Rust)

impl Rng {
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn fill(&mut self, buf: &mut [u8]) {
        for chunk in buf.chunks_mut(8) {
            let v = self.next().to_le_bytes();
            chunk.copy_from_slice(&v[..chunk.len()]);
        }
    }
}

fn tree_file(root: &Path, i: usize) -> PathBuf {
    let ext = if i.is_multiple_of(3) { "txt" } else { "bin" };
    root.join(format!("dir{:02}", i % 17))
        .join(format!("sub{}", i % 5))
        .join(format!("file{i:05}.{ext}"))
}

/// `files` files totalling about `total` bytes; returns (bytes, folders).
fn make_tree(root: &Path, files: usize, total: usize, seed: u64) -> (usize, usize) {
    let mut rng = Rng(seed);
    let avg = total / files;
    let mut bytes = 0;
    let mut dirs = HashSet::new();
    let mut buf = Vec::new();
    for i in 0..files {
        let path = tree_file(root, i);
        let dir = path.parent().unwrap().to_path_buf();
        if dirs.insert(dir.clone()) {
            std::fs::create_dir_all(&dir).unwrap();
        }
        let size = ((0.2 + 1.6 * rng.unit()) * avg as f64).max(1.0) as usize;
        buf.clear();
        if i % 3 == 0 {
            let line = format!("line of text number {i} ").repeat(4) + "\n";
            while buf.len() < size {
                buf.extend_from_slice(line.as_bytes());
            }
            buf.truncate(size);
        } else {
            buf.resize(size, 0);
            rng.fill(&mut buf);
        }
        std::fs::write(&path, &buf).unwrap();
        bytes += size;
    }
    // Top-level dirXX folders and the root count too (restic.md: 103 folders).
    (bytes, dirs.len() + 17 + 1)
}

/// Appends a line to 1% of the binary files (a different set each `round`).
fn touch_one_percent(root: &Path, files: usize, round: u64) -> usize {
    let mut rng = Rng(0xC0FF_EE00 + round);
    let want = (files / 100).max(1);
    let mut picked = HashSet::new();
    while picked.len() < want {
        let i = (rng.next() % files as u64) as usize;
        if !i.is_multiple_of(3) {
            picked.insert(i);
        }
    }
    for i in &picked {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(tree_file(root, *i))
            .unwrap();
        writeln!(f, "changed in round {round}").unwrap();
    }
    picked.len()
}

// ---------------------------------------------------------------------------
// Plain restic

/// The environment backrest-rs gives restic for a repo (src/restic/env.rs),
/// with the server's HOME so both use the same cache folder.
fn restic_cmd(repo: &Path, home: &Path) -> Command {
    let mut c = Command::new(restic_bin());
    c.env("RESTIC_PASSWORD", PASSWORD)
        .env("RESTIC_PASSWORD_FILE", "")
        .env("RESTIC_PASSWORD_COMMAND", "")
        .env("RESTIC_REPOSITORY", repo)
        .env("HOME", home)
        .env_remove("XDG_CACHE_HOME")
        .env_remove("RESTIC_CACHE_DIR")
        .stdin(Stdio::null());
    c
}

/// CPU time (user + sys, ms) of this process's waited-for children.
fn children_cpu_ms() -> f64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 * 1000.0 + t.tv_usec as f64 / 1000.0;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs a restic command; returns (wall ms, CPU ms, stdout). Panics on failure.
fn run_restic(
    repo: &Path,
    home: &Path,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> (f64, f64, String) {
    let mut c = restic_cmd(repo, home);
    c.args(args);
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let cpu0 = children_cpu_ms();
    let t = Instant::now();
    let out = c.output().expect("run restic");
    let wall = ms(t.elapsed());
    let cpu = children_cpu_ms() - cpu0;
    assert!(
        out.status.success(),
        "restic {args:?} failed ({:?}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    (wall, cpu, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One plain restic backup.
struct PlainRun {
    wall: f64,
    cpu: f64,
    id: String,
    /// ms from spawn to its last stdout line (the summary).
    to_last_line: f64,
}

/// One Backup RPC.
struct RpcRun {
    wall: f64,
    calls: Vec<ResticCall>,
    id: String,
    op: Value,
    phases: Option<Phases>,
    log: String,
}

struct LineRun {
    wall: f64,
    cpu: f64,
    to_last_line: f64,
    stdout: String,
}

/// Runs a restic command reading stdout line by line (as the server does),
/// noting when the last line arrived. Panics on failure.
fn run_restic_lines(
    repo: &Path,
    home: &Path,
    args: &[&str],
    extra_env: &[(&str, &str)],
) -> LineRun {
    let mut c = restic_cmd(repo, home);
    c.args(args).stdout(Stdio::piped()).stderr(Stdio::piped());
    for (k, v) in extra_env {
        c.env(k, v);
    }
    let cpu0 = children_cpu_ms();
    let t = Instant::now();
    let mut child = c.spawn().expect("run restic");
    let mut err = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut err, &mut s);
        s
    });
    let mut stdout = String::new();
    let mut last = t;
    for line in BufReader::new(child.stdout.take().unwrap())
        .lines()
        .map_while(Result::ok)
    {
        last = Instant::now();
        stdout.push_str(&line);
        stdout.push('\n');
    }
    let status = child.wait().unwrap();
    let wall = ms(t.elapsed());
    let cpu = children_cpu_ms() - cpu0;
    let stderr = err_reader.join().unwrap();
    assert!(
        status.success(),
        "restic {args:?} failed ({status:?}): {stderr}"
    );
    LineRun {
        wall,
        cpu,
        to_last_line: ms(last - t),
        stdout,
    }
}

/// ms since midnight UTC.
fn day_ms(t: std::time::SystemTime) -> f64 {
    let d = t.duration_since(std::time::UNIX_EPOCH).unwrap();
    (d.as_millis() % 86_400_000) as f64
}

/// Where a Backup RPC's time goes, from its task log's timestamps (ms):
/// request sent -> task started -> parent lookup spawned -> backup spawned ->
/// backup's last output line -> 200.
#[derive(Clone, Copy)]
struct Phases {
    to_task: f64,
    to_first_spawn: f64,
    parent_lookup: f64,
    backup_to_last_line: f64,
    after_last_line: f64,
}

impl Phases {
    fn from_log(log: &str, sent_ms: f64, wall: f64) -> Option<Phases> {
        let stamp = |l: &str| -> Option<f64> {
            let s = l.split(' ').next()?.strip_suffix('Z')?;
            let mut it = s.split(':');
            let h: f64 = it.next()?.parse().ok()?;
            let m: f64 = it.next()?.parse().ok()?;
            let sec: f64 = it.next()?.parse().ok()?;
            Some(((h * 60.0 + m) * 60.0 + sec) * 1000.0)
        };
        let lines: Vec<(f64, &str)> = log.lines().filter_map(|l| Some((stamp(l)?, l))).collect();
        let rel = |t: f64| (t - sent_ms).rem_euclid(86_400_000.0);
        let start = rel(lines.first()?.0);
        let first_cmd = rel(lines.iter().find(|(_, l)| l.contains(" command: "))?.0);
        let backup_cmd = rel(lines
            .iter()
            .find(|(_, l)| l.contains(" command: ") && l.contains(" backup "))?
            .0);
        let last_line = rel(lines
            .iter()
            .rev()
            .find(|(_, l)| l.contains(" [restic] "))?
            .0);
        Some(Phases {
            to_task: start,
            to_first_spawn: first_cmd - start,
            parent_lookup: backup_cmd - first_cmd,
            backup_to_last_line: last_line - backup_cmd,
            after_last_line: wall - last_line,
        })
    }
}

/// Medians of the RPC phases, next to plain restic's exit tail.
fn print_phases(phases: &[Phases], plain_tail: &[f64]) {
    if phases.is_empty() {
        println!("  (no task-log phases)");
        return;
    }
    let m = |f: fn(&Phases) -> f64| median(&phases.iter().map(f).collect::<Vec<_>>());
    let tail = median(plain_tail);
    println!(
        "  RPC phases from the task log's ms timestamps (median of {}):",
        phases.len()
    );
    println!(
        "    request sent -> task started (HTTP, queue, operation insert) {:>6.0} ms",
        m(|p| p.to_task)
    );
    println!(
        "    task started -> first restic spawned                         {:>6.0} ms",
        m(|p| p.to_first_spawn)
    );
    println!(
        "    parent lookup (`snapshots --tag`, spawn to next spawn)        {:>6.0} ms",
        m(|p| p.parent_lookup)
    );
    println!(
        "    `backup` spawned -> its last output line                      {:>6.0} ms",
        m(|p| p.backup_to_last_line)
    );
    println!(
        "    last output line -> 200 (restic exits, full-id lookup, oplog)  {:>6.0} ms  (plain restic: last line -> exit {tail:.0} ms)",
        m(|p| p.after_last_line)
    );
}

/// The full id of a snapshot in a local repository, from its short id
/// (the file name under `snapshots/`; no restic call).
fn full_snapshot_id(repo: &Path, short: &str) -> String {
    let found: Vec<String> = std::fs::read_dir(repo.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with(short))
        .collect();
    assert_eq!(found.len(), 1, "snapshot {short}: {found:?}");
    found[0].clone()
}

/// The scrypt parameters of the repository's (first) key: what one repo-open costs.
fn scrypt_params(repo: &Path, home: &Path) -> String {
    let Some(key) = std::fs::read_dir(repo.join("keys"))
        .ok()
        .and_then(|mut d| d.next())
        .and_then(|e| e.ok())
    else {
        return "?".into();
    };
    let name = key.file_name().to_string_lossy().into_owned();
    let (_, _, out) = run_restic(repo, home, &["cat", "key", &name, "--no-lock"], &[]);
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    format!("N={} r={} p={}", v["N"], v["r"], v["p"])
}

/// The summary line of `restic backup --json` output.
fn backup_summary(stdout: &str) -> Value {
    stdout
        .lines()
        .rev()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v["message_type"] == "summary")
        .unwrap_or_else(|| panic!("no backup summary in: {stdout}"))
}

// ---------------------------------------------------------------------------
// Server process and the restic processes it starts

impl ServerProc {
    /// The server binary on `dir` with `HOME=home` (the cache folder plain
    /// restic uses too), none of the user's restic settings, and restic from
    /// `BENCH_RESTIC` if set.
    fn start(dir: &Path, home: &Path) -> ServerProc {
        let mut cmd = ServerProc::command(&server_bin(), dir, home);
        cmd.env_remove("XDG_CACHE_HOME")
            .env_remove("RESTIC_CACHE_DIR")
            .env_remove("RESTIC_PASSWORD")
            .env_remove("RESTIC_PASSWORD_FILE")
            .env_remove("RESTIC_PASSWORD_COMMAND")
            .env_remove("RESTIC_REPOSITORY");
        if let Ok(r) = std::env::var("BENCH_RESTIC") {
            cmd.arg("-restic-cmd").arg(r);
        }
        // If the bench is interrupted, the server goes too.
        unsafe {
            use std::os::unix::process::CommandExt;
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        ServerProc::spawn(cmd, dir)
    }

    /// CPU ms of the server's waited-for children (cutime + cstime, fields 16 and 17).
    fn children_cpu_ms(&self) -> f64 {
        ticks_ms(&proc_stat_fields(self.pid()).unwrap_or_default(), &[13, 14])
    }
}

#[derive(Clone, Debug)]
struct ResticCall {
    args: Vec<String>,
    first_seen: Instant,
    last_seen: Instant,
    /// user + sys CPU ms at the last sight.
    cpu_ms: f64,
    running: bool,
}

impl ResticCall {
    fn wall_ms(&self) -> f64 {
        ms(self.last_seen - self.first_seen)
    }

    /// "snapshots --json --no-lock --tag plan:big,created-by:bench-host" etc.
    fn short(&self) -> String {
        let a: Vec<&str> = self.args.iter().skip(1).map(String::as_str).collect();
        let mut out = Vec::new();
        for w in a {
            if w.starts_with('/') {
                out.push("<path>".to_string());
            } else if w.len() >= 32 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push("<id>".to_string());
            } else if w.len() == 8 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                out.push("<short-id>".to_string());
            } else {
                out.push(w.to_string());
            }
        }
        out.join(" ")
    }
}

/// Polls /proc every few ms for restic processes whose parent is the server.
struct Watcher {
    stop: Arc<AtomicBool>,
    calls: Arc<Mutex<Vec<ResticCall>>>,
    handle: Option<std::thread::JoinHandle<()>>,
}

impl Watcher {
    fn start(server_pid: u32, every: Duration) -> Watcher {
        let stop = Arc::new(AtomicBool::new(false));
        let calls: Arc<Mutex<Vec<ResticCall>>> = Arc::default();
        let (s2, c2) = (stop.clone(), calls.clone());
        let handle = std::thread::spawn(move || {
            let ppid = server_pid.to_string();
            // pid -> index into calls (restic children), or None (not ours / not restic yet).
            let mut known: HashMap<u32, Option<usize>> = HashMap::new();
            while !s2.load(Ordering::Relaxed) {
                let now = Instant::now();
                let mut alive = HashSet::new();
                if let Ok(rd) = std::fs::read_dir("/proc") {
                    for e in rd.flatten() {
                        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok())
                        else {
                            continue;
                        };
                        alive.insert(pid);
                        match known.get(&pid) {
                            Some(None) => continue,
                            Some(Some(idx)) => {
                                if let Some(f) = proc_stat_fields(pid) {
                                    let mut calls = c2.lock().unwrap();
                                    let c = &mut calls[*idx];
                                    c.last_seen = now;
                                    c.cpu_ms = ticks_ms(&f, &[11, 12]);
                                }
                            }
                            None => {
                                let Some(f) = proc_stat_fields(pid) else {
                                    continue;
                                };
                                if f.get(1).map(String::as_str) != Some(ppid.as_str()) {
                                    known.insert(pid, None);
                                    continue;
                                }
                                // A child of the server: restic once it has exec'd.
                                let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
                                    .unwrap_or_default();
                                let args: Vec<String> = cmdline
                                    .split(|b| *b == 0)
                                    .filter(|a| !a.is_empty())
                                    .map(|a| String::from_utf8_lossy(a).into_owned())
                                    .collect();
                                let is_restic = args.first().is_some_and(|a| {
                                    a.rsplit('/').next().unwrap_or("").contains("restic")
                                });
                                if is_restic {
                                    let mut calls = c2.lock().unwrap();
                                    calls.push(ResticCall {
                                        args,
                                        first_seen: now,
                                        last_seen: now,
                                        cpu_ms: ticks_ms(&f, &[11, 12]),
                                        running: true,
                                    });
                                    known.insert(pid, Some(calls.len() - 1));
                                }
                                // Not exec'd yet: look again next time.
                            }
                        }
                    }
                }
                // Forget pids that are gone; their calls have ended.
                known.retain(|pid, idx| {
                    if alive.contains(pid) {
                        return true;
                    }
                    if let Some(i) = idx {
                        c2.lock().unwrap()[*i].running = false;
                    }
                    false
                });
                std::thread::sleep(every);
            }
        });
        Watcher {
            stop,
            calls,
            handle: Some(handle),
        }
    }

    fn count(&self) -> usize {
        self.calls.lock().unwrap().len()
    }

    fn since(&self, n: usize) -> Vec<ResticCall> {
        self.calls.lock().unwrap()[n..].to_vec()
    }

    fn running(&self) -> bool {
        self.calls.lock().unwrap().iter().any(|c| c.running)
    }

    /// Waits until no server restic child has run for `quiet`.
    fn wait_quiet(&self, quiet: Duration, timeout: Duration) {
        let t = Instant::now();
        let mut calm_since = Instant::now();
        loop {
            if self.running() {
                calm_since = Instant::now();
            } else if calm_since.elapsed() >= quiet {
                return;
            }
            if t.elapsed() > timeout {
                println!("  (server still running restic after {timeout:?})");
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

// ---------------------------------------------------------------------------
// HTTP

struct Api {
    client: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(&self, method: &str, body: Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}/v1.Backrest/{method}", self.base))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method}: {e}"));
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.unwrap();
        let v = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| json!(String::from_utf8_lossy(&bytes)))
        };
        (status, v)
    }

    async fn ok(&self, method: &str, body: Value) -> Value {
        let (status, v) = self.call(method, body).await;
        assert_eq!(status, 200, "{method} failed: {v}");
        v
    }

    async fn ops(&self, selector: Value) -> Vec<Value> {
        let v = self
            .ok("GetOperations", json!({ "selector": selector }))
            .await;
        v["operations"].as_array().cloned().unwrap_or_default()
    }

    /// A whole task log (GetLogs, connect+json) as text.
    async fn log(&self, logref: &str) -> String {
        let payload = serde_json::to_vec(&json!({ "ref": logref })).unwrap();
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(payload.len() as u32).to_be_bytes());
        framed.extend_from_slice(&payload);
        let resp = self
            .client
            .post(format!("{}/v1.Backrest/GetLogs", self.base))
            .header("content-type", "application/connect+json")
            .header("connect-protocol-version", "1")
            .body(framed)
            .send()
            .await
            .unwrap();
        let body = resp.bytes().await.unwrap();
        let mut out = Vec::new();
        let mut rest = &body[..];
        while rest.len() >= 5 {
            let flags = rest[0];
            let len = u32::from_be_bytes([rest[1], rest[2], rest[3], rest[4]]) as usize;
            let msg = &rest[5..5 + len];
            if flags & 2 == 0 {
                let chunk: backrest_rs::pb::types::BytesValue =
                    serde_json::from_slice(msg).expect("BytesValue JSON");
                out.extend_from_slice(&chunk.value);
            }
            rest = &rest[5 + len..];
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

fn s(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

fn num(v: &Value) -> i64 {
    match v {
        Value::String(s) => s.parse().unwrap_or(0),
        Value::Number(n) => n.as_i64().unwrap_or(0),
        _ => 0,
    }
}

/// Finds the newest backup operation of `plan`.
async fn last_backup(api: &Api, plan: &str) -> Value {
    let list = api.ops(json!({ "planId": plan })).await;
    list.into_iter()
        .filter(|o| o.get("operationBackup").is_some())
        .max_by_key(|o| num(&o["id"]))
        .expect("a backup operation")
}

/// Waits until the index op of `snapshot` exists and the server has no restic running.
async fn wait_indexed(api: &Api, watcher: &Watcher, snapshot: &str) {
    let t = Instant::now();
    loop {
        let list = api.ops(json!({ "snapshotId": snapshot })).await;
        if list
            .iter()
            .any(|o| o.get("operationIndexSnapshot").is_some())
        {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "snapshot {snapshot} was not indexed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    watcher.wait_quiet(Duration::from_millis(300), Duration::from_secs(60));
}

// ---------------------------------------------------------------------------

/// What both parts measure with: the server, its restic watcher, and
/// where the trees, repositories and restic's cache go.
#[derive(Clone, Copy)]
struct Bench<'a> {
    rt: &'a tokio::runtime::Runtime,
    api: &'a Api,
    watcher: &'a Watcher,
    server: &'a ServerProc,
    tmp: &'a Path,
    /// HOME of the server and of plain restic: one cache folder for both.
    home: &'a Path,
}

fn main() {
    common::install_crypto_provider();
    let rounds = env_num("BENCH_ROUNDS", 5).max(1) as usize;
    let changed_rounds = env_num("BENCH_CHANGED_ROUNDS", 3) as usize;
    let n_snaps = env_num("BENCH_SNAPSHOTS", 1000) as usize;
    let list_iters = env_num("BENCH_LIST_ITERS", 20).max(1) as usize;
    let live_iters = env_num("BENCH_LIVE_ITERS", 3).max(1) as usize;
    let jobs = env_num("BENCH_JOBS", 4).max(1) as usize;
    let files = env_num("BENCH_FILES", 10_000).max(100) as usize;
    let tree_mb = env_num("BENCH_TREE_MB", 200).max(1) as usize;
    let strict = env_flag("BENCH_STRICT");

    println!("== backrest-rs restic engine benchmark ==");
    println!("date:        {}", sh("date -u '+%Y-%m-%d %H:%M UTC'"));
    println!(
        "machine:     {} CPUs ({}), {} RAM, kernel {}",
        sh("nproc"),
        sh("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs"),
        sh("free -h | awk '/Mem:/{print $2}'"),
        sh("uname -r")
    );
    println!(
        "restic:      {} ({})",
        sh(&format!("{} version", restic_bin())),
        sh(&format!("command -v {}", restic_bin()))
    );
    println!("server:      {}", server_bin());
    println!(
        "source:      git {}{}",
        sh("git rev-parse --short HEAD 2>/dev/null"),
        if sh("git status --porcelain -- src 2>/dev/null").is_empty() {
            ""
        } else {
            " + uncommitted changes in src/"
        }
    );
    println!("load avg:    {} (start)", loadavg());
    println!();

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let tmp = tempfile::Builder::new()
        .prefix("backrest-engine-bench-")
        .tempdir()
        .expect("tempdir");
    let home = tmp.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let server_dir = tmp.path().join("server");
    std::fs::create_dir_all(&server_dir).unwrap();
    let server = ServerProc::start(&server_dir, &home);
    let watcher = Watcher::start(server.pid(), Duration::from_millis(10));
    let api = Api {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(1800))
            .build()
            .unwrap(),
        base: server.base.clone(),
    };
    rt.block_on(async {
        let mut cfg = api.ok("GetConfig", json!({})).await;
        cfg["instance"] = json!(INSTANCE);
        api.ok("SetConfig", cfg).await;
    });

    let bench = Bench {
        rt: &rt,
        api: &api,
        watcher: &watcher,
        server: &server,
        tmp: tmp.path(),
        home: &home,
    };
    let mut verdicts: Vec<Verdict> = Vec::new();

    if want("backup") {
        backup_part(bench, files, tree_mb, rounds, changed_rounds, &mut verdicts);
    }
    if want("list") {
        list_part(bench, n_snaps, jobs, list_iters, live_iters, &mut verdicts);
    }

    drop(watcher);
    drop(server);
    drop(tmp);

    common::finish(&verdicts, 62, strict);
}

fn backup_part(
    bench: Bench,
    files: usize,
    tree_mb: usize,
    rounds: usize,
    changed_rounds: usize,
    verdicts: &mut Vec<Verdict>,
) {
    let Bench {
        rt,
        api,
        watcher,
        server,
        tmp,
        home,
    } = bench;
    // ---- The tree and the repository ----------------------------------------
    let tree = tmp.join("tree");
    let t = Instant::now();
    let (bytes, dirs) = make_tree(&tree, files, tree_mb * 1_000_000, 1);
    println!(
        "-- backup: source tree {files} files, {:.1} MB, {dirs} folders (1/3 text, 2/3 random), written in {:.1} s --",
        bytes as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let repo = tmp.join("repo-backup");
    let tree_s = tree.to_string_lossy().into_owned();
    let guid = rt.block_on(async {
        let added = api
            .ok(
                "AddRepo",
                json!({"repo": {"id": "r1", "uri": repo, "password": PASSWORD}}),
            )
            .await;
        let guid = added["repos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "r1")
            .map(|r| s(&r["guid"]).to_string())
            .unwrap();
        let mut cfg = added.clone();
        cfg["plans"] = json!([{"id": PLAN, "repo": "r1", "paths": [tree_s]}]);
        api.ok("SetConfig", cfg).await;
        guid
    });
    watcher.wait_quiet(Duration::from_millis(500), Duration::from_secs(60));
    let key_params = scrypt_params(&repo, home);
    println!(
        "repository {} (AddRepo'd, id {}…), key scrypt {key_params}",
        repo.display(),
        &guid[..12]
    );

    // First backup (the full 200 MB), through the RPC: info only.
    let t = Instant::now();
    rt.block_on(api.ok("Backup", json!({"value": PLAN})));
    let first_ms = ms(t.elapsed());
    let mut latest =
        rt.block_on(async { s(&last_backup(api, PLAN).await["snapshotId"]).to_string() });
    rt.block_on(wait_indexed(api, watcher, &latest));
    println!(
        "first (full) backup through the RPC: {:.2} s (info)",
        first_ms / 1000.0
    );

    // Plain restic: the argv backrest-rs builds (src/restic/repo.rs backup()).
    let tag_plan = format!("plan:{PLAN}");
    let tag_inst = format!("created-by:{INSTANCE}");
    let plain_backup = |parent: &str| -> PlainRun {
        let args = [
            "backup",
            "--json",
            &tree_s,
            "--exclude-caches",
            "--tag",
            &tag_plan,
            "--tag",
            &tag_inst,
            "--parent",
            parent,
        ];
        let run = run_restic_lines(&repo, home, &args, &[("RESTIC_PROGRESS_FPS", "2")]);
        let summary = backup_summary(&run.stdout);
        let id = full_snapshot_id(&repo, s(&summary["snapshot_id"]));
        PlainRun {
            wall: run.wall,
            cpu: run.cpu,
            id,
            to_last_line: run.to_last_line,
        }
    };
    let rpc_backup = |latest: &str| -> RpcRun {
        let n0 = watcher.count();
        let sent = std::time::SystemTime::now();
        let t = Instant::now();
        rt.block_on(api.ok("Backup", json!({"value": PLAN})));
        let wall = ms(t.elapsed());
        // Calls that started before the answer (the follow-up index runs after).
        let calls: Vec<ResticCall> = watcher
            .since(n0)
            .into_iter()
            .filter(|c| c.first_seen <= t + Duration::from_secs_f64(wall / 1000.0))
            .collect();
        let op = rt.block_on(last_backup(api, PLAN));
        let id = s(&op["snapshotId"]).to_string();
        assert_eq!(id.len(), 64, "{op}");
        assert_ne!(id, latest, "the RPC made no new snapshot");
        let log = rt.block_on(api.log(s(&op["logref"])));
        let phases = Phases::from_log(&log, day_ms(sent), wall);
        rt.block_on(wait_indexed(api, watcher, &id));
        RpcRun {
            wall,
            calls,
            id,
            op,
            phases,
            log,
        }
    };

    // Repo-open cost and the single calls the wrapper adds, as plain restic.
    let mut open = Vec::new();
    let mut open_cpu = Vec::new();
    let mut parent_lookup = Vec::new();
    let mut id_lookup = Vec::new();
    let filter = format!("{tag_plan},{tag_inst}");
    let short = latest[..8].to_string();
    for _ in 0..5 {
        let (w, c, _) = run_restic(&repo, home, &["cat", "config", "--no-lock"], &[]);
        open.push(w);
        open_cpu.push(c);
        parent_lookup.push(
            run_restic(
                &repo,
                home,
                &["snapshots", "--json", "--no-lock", "--tag", &filter],
                &[],
            )
            .0,
        );
        id_lookup.push(
            run_restic(
                &repo,
                home,
                &["snapshots", "--json", "--no-lock", &short],
                &[],
            )
            .0,
        );
    }
    let repo_open = median(&open);
    println!(
        "one repo-open (`restic cat config --no-lock`, median of 5): {repo_open:.0} ms wall, {:.0} ms CPU; \
         plain `snapshots --json --no-lock --tag plan:P,created-by:I`: {:.0} ms; `snapshots --json --no-lock <short-id>`: {:.0} ms",
        median(&open_cpu),
        median(&parent_lookup),
        median(&id_lookup)
    );

    // One warm-up each.
    let p = plain_backup(&latest);
    latest = p.id;
    let p_id_after_warmup = latest.clone();
    let r = rpc_backup(&latest);
    latest = r.id;
    println!("warm-up: plain {:.0} ms, RPC {:.0} ms", p.wall, r.wall);
    // Each side's parent is its own previous snapshot, so both read the same
    // changed files: the server takes its parent from its snapshot index,
    // which (by design, until its next index pass) doesn't know snapshots
    // made outside it, like the plain runs here.
    let mut plain_parent = p_id_after_warmup.clone();

    // ---- Nothing changed: interleaved rounds ----------------------------------
    wait_for_quiet("the backup rounds");
    let load = LoadSampler::start();
    let mut plain = Vec::new();
    let mut plain_cpu = Vec::new();
    let mut rpc = Vec::new();
    let mut rpc_calls: Vec<Vec<ResticCall>> = Vec::new();
    let mut last_op = Value::Null;
    let mut last_log = String::new();
    let mut plain_tail = Vec::new();
    let mut rpc_phases = Vec::new();
    for r in 0..rounds {
        // Alternate which goes first, so drift hits both sides alike.
        let order: [bool; 2] = if r % 2 == 0 {
            [true, false]
        } else {
            [false, true]
        };
        for is_plain in order {
            if is_plain {
                let p = plain_backup(&plain_parent);
                plain.push(p.wall);
                plain_cpu.push(p.cpu);
                plain_tail.push(p.wall - p.to_last_line);
                latest = p.id;
                plain_parent = latest.clone();
            } else {
                let r = rpc_backup(&latest);
                rpc.push(r.wall);
                rpc_calls.push(r.calls);
                rpc_phases.extend(r.phases);
                latest = r.id;
                last_op = r.op;
                last_log = r.log;
            }
        }
        println!(
            "  round {}: plain {:.0} ms, RPC {:.0} ms",
            r + 1,
            plain[r],
            rpc[r]
        );
        std::io::stdout().flush().ok();
    }
    let load_unchanged = load.finish();
    let ps = stats(&plain);
    let rs = stats(&rpc);
    let diff = rs.median - ps.median;
    let allowance = TARGET_FRACTION * ps.median + repo_open;
    let ok = diff <= allowance;
    println!(
        "-- Backup, nothing changed: {rounds} interleaved rounds (ms; load {load_unchanged}) --"
    );
    println!(
        "{:<44} {:>8} {:>8} {:>8} {:>8}",
        "", "min", "median", "p90", "max"
    );
    println!(
        "{:<44} {:>8.0} {:>8.0} {:>8.0} {:>8.0}",
        "plain restic backup (wall)", ps.min, ps.median, ps.p90, ps.max
    );
    println!(
        "{:<44} {:>8.0} {:>8.0} {:>8.0} {:>8.0}",
        "Backup RPC (request -> 200)", rs.min, rs.median, rs.p90, rs.max
    );
    println!(
        "plain restic CPU (user+sys) median {:.0} ms",
        median(&plain_cpu)
    );
    println!(
        "overhead: {diff:+.0} ms ({:+.1}%); allowance 5% x {:.0} + one repo-open {repo_open:.0} = {allowance:.0} ms: {}",
        100.0 * diff / ps.median,
        ps.median,
        pass(ok)
    );
    print_breakdown(&rpc_calls, &rpc, repo_open);
    print_phases(&rpc_phases, &plain_tail);
    verdicts.push(Verdict {
        name: "Backup RPC - plain restic <= 5% + 1 repo-open (unchanged tree)".into(),
        value: format!("{diff:+.0} ms vs {allowance:.0} ms allowed (plain {:.0}, RPC {:.0}, open {repo_open:.0})", ps.median, rs.median),
        ok,
    });

    // The task log of the last RPC backup: the commands it shows.
    let logref = s(&last_op["logref"]).to_string();
    if !logref.is_empty() {
        let text = last_log;
        let cmds: Vec<&str> = text.lines().filter(|l| l.contains(" command: ")).collect();
        println!(
            "task log of the last RPC backup ({logref}): {} `command:` lines",
            cmds.len()
        );
        for c in &cmds {
            let c = c.replace(&tree_s, "<tree>").replace(&latest, "<id>");
            println!("  {}", shorten_ids(&c));
        }
    }
    println!();

    // ---- 1% changed -----------------------------------------------------------
    if changed_rounds > 0 {
        wait_for_quiet("the 1%-changed rounds");
        let load = LoadSampler::start();
        let mut plain = Vec::new();
        let mut rpc = Vec::new();
        let mut calls_all = Vec::new();
        let mut plain_tail = Vec::new();
        let mut phases = Vec::new();
        let mut round = 0u64;
        for r in 0..changed_rounds {
            let order: [bool; 2] = if r % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_plain in order {
                round += 1;
                touch_one_percent(&tree, files, round);
                if is_plain {
                    let p = plain_backup(&plain_parent);
                    plain.push(p.wall);
                    plain_tail.push(p.wall - p.to_last_line);
                    latest = p.id;
                    plain_parent = latest.clone();
                } else {
                    let r = rpc_backup(&latest);
                    rpc.push(r.wall);
                    calls_all.push(r.calls);
                    phases.extend(r.phases);
                    latest = r.id;
                }
            }
            println!(
                "  round {}: plain {:.0} ms, RPC {:.0} ms",
                r + 1,
                plain[r],
                rpc[r]
            );
        }
        let load_changed = load.finish();
        let ps = stats(&plain);
        let rs = stats(&rpc);
        let diff = rs.median - ps.median;
        let allowance = TARGET_FRACTION * ps.median + repo_open;
        let ok = diff <= allowance;
        println!(
            "-- Backup after appending to 1% of the files ({} files per run): {changed_rounds} interleaved rounds (ms; load {load_changed}) --",
            files / 100
        );
        println!(
            "{:<44} {:>8.0} median (min {:.0}, max {:.0})",
            "plain restic backup (wall)", ps.median, ps.min, ps.max
        );
        println!(
            "{:<44} {:>8.0} median (min {:.0}, max {:.0})",
            "Backup RPC (request -> 200)", rs.median, rs.min, rs.max
        );
        println!(
            "overhead: {diff:+.0} ms ({:+.1}%); allowance {allowance:.0} ms: {}",
            100.0 * diff / ps.median,
            pass(ok)
        );
        print_breakdown(&calls_all, &rpc, repo_open);
        print_phases(&phases, &plain_tail);
        verdicts.push(Verdict {
            name: "Backup RPC - plain restic <= 5% + 1 repo-open (1% changed)".into(),
            value: format!(
                "{diff:+.0} ms vs {allowance:.0} ms allowed (plain {:.0}, RPC {:.0})",
                ps.median, rs.median
            ),
            ok,
        });
        println!();
    }
    let _ = server;
}

/// Replaces 64/8-hex ids in a log line with placeholders.
fn shorten_ids(line: &str) -> String {
    line.split(' ')
        .map(|w| {
            if w.len() >= 32 && w.bytes().all(|b| b.is_ascii_hexdigit()) {
                "<id>".to_string()
            } else {
                w.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The restic processes the server ran during the RPCs, by command.
fn print_breakdown(calls: &[Vec<ResticCall>], rpc: &[f64], repo_open: f64) {
    let per_rpc: Vec<usize> = calls.iter().map(Vec::len).collect();
    println!(
        "restic processes the server started per Backup RPC (/proc watcher, 10 ms polls): {per_rpc:?}"
    );
    let mut by_cmd: Vec<(String, Vec<f64>, Vec<f64>)> = Vec::new();
    for c in calls.iter().flatten() {
        let key = c.short();
        match by_cmd.iter_mut().find(|(k, _, _)| *k == key) {
            Some((_, w, cpu)) => {
                w.push(c.wall_ms());
                cpu.push(c.cpu_ms);
            }
            None => by_cmd.push((key, vec![c.wall_ms()], vec![c.cpu_ms])),
        }
    }
    let mut backup_wall = Vec::new();
    for (i, cs) in calls.iter().enumerate() {
        let b: f64 = cs
            .iter()
            .filter(|c| c.args.get(1).map(String::as_str) == Some("backup"))
            .map(|c| c.wall_ms())
            .sum();
        let others: f64 = cs
            .iter()
            .filter(|c| c.args.get(1).map(String::as_str) != Some("backup"))
            .map(|c| c.wall_ms())
            .sum();
        backup_wall.push((rpc[i] - b, others));
    }
    for (cmd, w, cpu) in &by_cmd {
        println!(
            "  {:>3} x {:<80} wall median {:>5.0} ms, CPU {:>5.0} ms",
            w.len(),
            cmd,
            median(w),
            median(cpu)
        );
    }
    let outside: Vec<f64> = backup_wall.iter().map(|x| x.0).collect();
    let other_calls: Vec<f64> = backup_wall.iter().map(|x| x.1).collect();
    let extra = by_cmd
        .iter()
        .filter(|(k, _, _)| !k.starts_with("backup"))
        .map(|(_, w, _)| w.len())
        .sum::<usize>() as f64
        / calls.len().max(1) as f64;
    println!(
        "  RPC time outside `restic backup`: median {:.0} ms, of which the other restic calls {:.0} ms; \
         extra restic calls per RPC: {extra:.1} (each opens the repository: ~{repo_open:.0} ms); the rest (HTTP, queue, oplog, process plumbing): {:.0} ms",
        median(&outside),
        median(&other_calls),
        median(&outside) - median(&other_calls)
    );
}

fn list_part(
    bench: Bench,
    n_snaps: usize,
    jobs: usize,
    list_iters: usize,
    live_iters: usize,
    verdicts: &mut Vec<Verdict>,
) {
    let Bench {
        rt,
        api,
        watcher,
        server,
        tmp,
        home,
    } = bench;
    // ---- A repository with n_snaps snapshots ----------------------------------
    let tiny = tmp.join("tiny");
    std::fs::create_dir_all(&tiny).unwrap();
    std::fs::write(tiny.join("f.txt"), "one small file\n").unwrap();
    let repo = tmp.join("repo-list");
    let tiny_s = tiny.to_string_lossy().into_owned();
    let guid = rt.block_on(async {
        let added = api
            .ok(
                "AddRepo",
                json!({"repo": {"id": "r2", "uri": repo, "password": PASSWORD}}),
            )
            .await;
        let guid = added["repos"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["id"] == "r2")
            .map(|r| s(&r["guid"]).to_string())
            .unwrap();
        let mut cfg = added.clone();
        let plan = json!({"id": LIST_PLAN, "repo": "r2", "paths": [tiny_s]});
        match cfg["plans"].as_array_mut() {
            Some(plans) => plans.push(plan),
            None => cfg["plans"] = json!([plan]),
        }
        api.ok("SetConfig", cfg).await;
        guid
    });
    watcher.wait_quiet(Duration::from_millis(500), Duration::from_secs(60));
    let tags = [
        format!("plan:{LIST_PLAN}"),
        format!("created-by:{INSTANCE}"),
    ];
    let base = chrono::NaiveDate::from_ymd_opt(2026, 1, 1)
        .unwrap()
        .and_hms_opt(0, 0, 0)
        .unwrap();
    let time_of = |i: usize| {
        (base + chrono::Duration::minutes(i as i64))
            .format("%Y-%m-%d %H:%M:%S")
            .to_string()
    };
    let make = |i: usize, parent: Option<&str>| -> String {
        let t = time_of(i);
        // "." from inside the folder: restic then stores no tree nodes for its
        // ancestors (/tmp changes all the time), so every snapshot has the same
        // tree and the repository gets no new pack or index per snapshot.
        let mut args = vec![
            "backup",
            "--json",
            ".",
            "--tag",
            tags[0].as_str(),
            "--tag",
            tags[1].as_str(),
            "--time",
            t.as_str(),
        ];
        if let Some(p) = parent {
            args.extend(["--parent", p]);
        }
        for attempt in 0..3 {
            let mut c = restic_cmd(&repo, home);
            c.args(&args).current_dir(&tiny);
            let out = c.output().expect("run restic");
            if out.status.success() {
                return s(&backup_summary(&String::from_utf8_lossy(&out.stdout))["snapshot_id"])
                    .to_string();
            }
            eprintln!(
                "snapshot {i}: attempt {attempt} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("could not make snapshot {i}");
    };
    let t = Instant::now();
    let first = full_snapshot_id(&repo, &make(0, None));
    let next = AtomicUsize::new(1);
    let done = AtomicUsize::new(1);
    std::thread::scope(|sc| {
        for _ in 0..jobs {
            sc.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= n_snaps {
                        break;
                    }
                    make(i, Some(&first));
                    let d = done.fetch_add(1, Ordering::SeqCst) + 1;
                    if d.is_multiple_of(100) {
                        println!(
                            "  {d} snapshots ({:.0} s, load {})",
                            t.elapsed().as_secs_f64(),
                            loadavg()
                        );
                        std::io::stdout().flush().ok();
                    }
                }
            });
        }
    });
    let make_s = t.elapsed().as_secs_f64();
    let on_disk = std::fs::read_dir(repo.join("snapshots")).unwrap().count();
    assert_eq!(on_disk, n_snaps, "snapshots in the repository");
    println!(
        "-- list: {n_snaps} snapshots made in {make_s:.0} s ({jobs} plain `restic backup --time` at once of a 1-file folder, {:.2} s each), {} index file(s) in the repo --",
        make_s / n_snaps as f64 * jobs as f64,
        std::fs::read_dir(repo.join("index")).unwrap().count()
    );
    let json_req = json!({"repoId": "r2"});
    let proto_req = ListSnapshotsRequest {
        repo_id: "r2".into(),
        plan_id: String::new(),
    }
    .encode_to_vec();

    // What a client sees right after another writer added snapshots, with the
    // index AddRepo made still trusted (INDEX_TRUST = 10 min).
    let n0 = watcher.count();
    let t = Instant::now();
    let v = rt.block_on(api.ok("ListSnapshots", json_req.clone()));
    let first_ms = ms(t.elapsed());
    let got = v["snapshots"].as_array().map(Vec::len).unwrap_or(0);
    let end = t + first_ms_dur(first_ms);
    let ran = watcher
        .since(n0)
        .iter()
        .filter(|c| c.first_seen <= end && c.last_seen <= end)
        .count();
    println!(
        "first ListSnapshots after they were made (the index from AddRepo, {make_s:.0} s old): {got} snapshots in {first_ms:.0} ms, {ran} restic call(s) during it{}",
        if got < n_snaps {
            " — the index served the state before the plain restic writes (trusted for 10 min by design)"
        } else {
            ""
        }
    );
    watcher.wait_quiet(Duration::from_millis(500), Duration::from_secs(120));

    let restic_list = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(run_restic(&repo, home, &["snapshots", "--json", "--no-lock"], &[]).0);
        }
        median(&v)
    };
    let open = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(run_restic(&repo, home, &["cat", "config", "--no-lock"], &[]).0);
        }
        median(&v)
    };

    // ---- Live path: the index is not current ----------------------------------
    wait_for_quiet("the ListSnapshots timings");
    let load = LoadSampler::start();
    let mut live = Vec::new();
    let mut live_calls = Vec::new();
    let mut live_cmds: Vec<String> = Vec::new();
    for _ in 0..live_iters {
        // RunCommand changes snapshots as far as the server knows: the index is stale.
        rt.block_on(api.ok("RunCommand", json!({"repoId": "r2", "command": "version"})));
        watcher.wait_quiet(Duration::from_millis(200), Duration::from_secs(60));
        let n0 = watcher.count();
        let t = Instant::now();
        let v = rt.block_on(api.ok("ListSnapshots", json_req.clone()));
        let el = ms(t.elapsed());
        assert_eq!(
            v["snapshots"].as_array().map(Vec::len).unwrap_or(0),
            n_snaps,
            "live ListSnapshots"
        );
        live.push(el);
        // Calls that ran within this one (the index refresh it queues may
        // start before the 400 KB answer has arrived; it ends later).
        let end = t + first_ms_dur(el);
        let during: Vec<String> = watcher
            .since(n0)
            .iter()
            .filter(|c| c.first_seen <= end && c.last_seen <= end)
            .map(|c| c.short())
            .collect();
        live_calls.push(during.len());
        live_cmds.extend(during);
        // It queued an index refresh (another restic call): let it run and
        // finish, so it can't overlap the next timed call.
        let t_wait = Instant::now();
        while watcher.since(n0).len() < 2 && t_wait.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(20));
        }
        watcher.wait_quiet(Duration::from_millis(500), Duration::from_secs(120));
    }
    let ls = stats(&live);
    println!(
        "live path (index not current; restic runs): {live_iters} calls, median {:.0} ms (min {:.0}, max {:.0}), restic calls during each: {live_calls:?}",
        ls.median, ls.min, ls.max
    );
    live_cmds.sort();
    live_cmds.dedup();
    println!(
        "  restic commands seen during the live calls: {}",
        live_cmds.join("; ")
    );
    println!(
        "for reference, plain `restic snapshots --json --no-lock` on this repo: {restic_list:.0} ms; one repo-open: {open:.0} ms (key scrypt {})",
        scrypt_params(&repo, home)
    );

    // ---- Index, then the indexed path --------------------------------------------
    let t = Instant::now();
    rt.block_on(async {
        api.ok(
            "DoRepoTask",
            json!({"repoId": "r2", "task": "TASK_INDEX_SNAPSHOTS"}),
        )
        .await;
        loop {
            let list = api.ops(json!({"repoGuid": guid})).await;
            let n = list
                .iter()
                .filter(|o| {
                    o.get("operationIndexSnapshot").is_some()
                        && o["operationIndexSnapshot"]["forgot"] != true
                })
                .count();
            if n >= n_snaps {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(300),
                "only {n} index ops after 300 s"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    });
    watcher.wait_quiet(Duration::from_millis(500), Duration::from_secs(120));
    println!(
        "index pass: {n_snaps} index ops present {:.1} s after DoRepoTask",
        t.elapsed().as_secs_f64()
    );

    let calls0 = watcher.count();
    let cpu0 = server.children_cpu_ms();
    let mut sizes = (0, 0);
    let (json_ms, proto_ms, plan_ms) = rt.block_on(async {
        let mut json_ms = Vec::new();
        let mut proto_ms = Vec::new();
        let mut plan_ms = Vec::new();
        let url = format!("{}/v1.Backrest/ListSnapshots", api.base);
        for i in 0..(3 + list_iters) {
            let t = Instant::now();
            let resp = api
                .client
                .post(&url)
                .header("content-type", "application/json")
                .body(json_req.to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let body = resp.bytes().await.unwrap();
            let el = ms(t.elapsed());
            let v: ResticSnapshotList =
                serde_json::from_slice(&body).expect("JSON ResticSnapshotList");
            assert_eq!(v.snapshots.len(), n_snaps);
            sizes.0 = body.len();
            if i >= 3 {
                json_ms.push(el);
            }
        }
        for i in 0..(3 + list_iters) {
            let t = Instant::now();
            let resp = api
                .client
                .post(&url)
                .header("content-type", "application/proto")
                .header("connect-protocol-version", "1")
                .body(proto_req.clone())
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status().as_u16(), 200);
            let body = resp.bytes().await.unwrap();
            let el = ms(t.elapsed());
            let v = ResticSnapshotList::decode(body.clone()).expect("proto ResticSnapshotList");
            assert_eq!(v.snapshots.len(), n_snaps);
            sizes.1 = body.len();
            if i >= 3 {
                proto_ms.push(el);
            }
        }
        let plan_req = json!({"repoId": "r2", "planId": LIST_PLAN});
        for i in 0..(3 + list_iters) {
            let t = Instant::now();
            let v = api.ok("ListSnapshots", plan_req.clone()).await;
            let el = ms(t.elapsed());
            assert_eq!(
                v["snapshots"].as_array().map(Vec::len).unwrap_or(0),
                n_snaps
            );
            if i >= 3 {
                plan_ms.push(el);
            }
        }
        (json_ms, proto_ms, plan_ms)
    });
    // Let a process that started at the very end be seen.
    std::thread::sleep(Duration::from_millis(50));
    let spawned = watcher.since(calls0);
    let cpu_delta = server.children_cpu_ms() - cpu0;
    let load_list = load.finish();
    let (js, ps, pl) = (stats(&json_ms), stats(&proto_ms), stats(&plan_ms));
    println!(
        "-- ListSnapshots {{repoId}} with the index current: {list_iters} timed calls after 3 warm-ups each (ms; load {load_list}) --"
    );
    println!(
        "{:<34} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "", "min", "median", "p90", "max", "size"
    );
    println!(
        "{:<34} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10}",
        "JSON",
        js.min,
        js.median,
        js.p90,
        js.max,
        format!("{} KB", sizes.0 / 1000)
    );
    println!(
        "{:<34} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>10}",
        "binary proto",
        ps.min,
        ps.median,
        ps.p90,
        ps.max,
        format!("{} KB", sizes.1 / 1000)
    );
    println!(
        "{:<34} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
        "JSON, {repoId, planId} (info)", pl.min, pl.median, pl.p90, pl.max
    );
    assert_eq!(js.n + ps.n + pl.n, 3 * list_iters);
    let zero = spawned.is_empty() && cpu_delta == 0.0;
    println!(
        "restic processes the server started during the {} indexed calls: {} (/proc watcher); server's reaped-children CPU grew by {cpu_delta:.0} ms: {}",
        3 * (3 + list_iters),
        spawned.len(),
        pass(zero)
    );
    for c in &spawned {
        println!("  unexpected: {}", c.short());
    }
    println!(
        "speed-up over the live path: {:.0}x (JSON median)",
        ls.median / js.median
    );
    verdicts.push(Verdict {
        name: format!("ListSnapshots of {n_snaps} with the index current: 0 restic calls"),
        value: format!(
            "{} calls; JSON median {:.2} ms, proto {:.2} ms (live path {:.0} ms)",
            spawned.len(),
            js.median,
            ps.median,
            ls.median
        ),
        ok: zero,
    });
    println!();
}

fn first_ms_dur(ms: f64) -> Duration {
    Duration::from_secs_f64(ms / 1000.0)
}
