//! Command hook: the rendered script is fed on stdin to `sh` (or to the interpreter named
//! by a `#!` first line, shell-split), with the server's environment and working
//! directory. The log gets `[script] [<argv>]`, every script line as `[script] …`, then the
//! merged stdout and stderr as `[output] …` lines. A non-zero exit is a hook error
//! (`exit status N`).
//!
//! Unlike Backrest, the script runs in its own process group, and cancellation (the parent
//! task cancelled, the server shutting down) ends the whole group: SIGTERM, then SIGKILL
//! after 5 s. There is deliberately no timeout otherwise: hooks may legitimately run long.

use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use super::{ActionEnv, ActionError};
use crate::pb::v1::hook;

/// How long a cancelled script gets between SIGTERM and SIGKILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// After the script's interpreter exits, output is still read this long: a background
/// process that inherited the output pipe must not keep the hook running forever.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);
/// A line longer than this is logged in pieces.
const MAX_LINE_BYTES: usize = 16 * 1024;

pub(super) async fn run(command: &hook::Command, env: &ActionEnv<'_>) -> Result<(), ActionError> {
    let rendered = (env.render)(&command.command)
        .map_err(|e| ActionError::new(format!("template rendering: {e}")))?;
    let (argv, script) = split_interpreter(&rendered)?;

    (env.log)(&format!("[script] [{}]", argv.join(" ")));
    for line in script.split('\n') {
        (env.log)(&format!("[script] {line}"));
    }

    let (output_reader, output_writer) =
        std::io::pipe().map_err(|e| ActionError::new(format!("creating the output pipe: {e}")))?;
    let stderr_writer = output_writer
        .try_clone()
        .map_err(|e| ActionError::new(format!("creating the output pipe: {e}")))?;
    let mut child = {
        let mut cmd = tokio::process::Command::new(&argv[0]);
        cmd.args(&argv[1..])
            .stdin(Stdio::piped())
            .stdout(output_writer)
            .stderr(stderr_writer)
            .process_group(0)
            .kill_on_drop(true);
        // `cmd` is dropped at the end of this block, closing our copies of the pipe's write
        // end, so the reader sees EOF once the script's processes are done with it.
        cmd.spawn()
            .map_err(|e| ActionError::new(format!("starting {}: {e}", argv[0])))?
    };
    let pgid = child.id().map(|pid| pid as i32);
    let mut group_guard = GroupGuard(pgid);

    let mut stdin = child.stdin.take().expect("stdin is piped");
    let script_bytes = script.as_bytes().to_vec();
    // A script that never reads its stdin would block this write; it runs beside the
    // main loop and ends with the process (broken pipe), so errors are expected.
    let feeder = tokio::spawn(async move {
        let _ = stdin.write_all(&script_bytes).await;
    });
    let _feeder_guard = AbortOnDrop(feeder);

    let mut output = tokio::net::unix::pipe::Receiver::from_owned_fd(OwnedFd::from(output_reader))
        .map_err(|e| ActionError::new(format!("reading the script's output: {e}")))?;
    let mut lines = LineWriter {
        prefix: "[output] ",
        pending: Vec::new(),
        log: env.log,
    };

    let mut chunk = vec![0u8; 8192];
    let mut status: Option<std::io::Result<ExitStatus>> = None;
    let mut output_done = false;
    let mut output_deadline: Option<Instant> = None;
    let mut cancelled = false;
    let mut kill_at: Option<Instant> = None;
    loop {
        if status.is_some() && output_done {
            break;
        }
        tokio::select! {
            read = output.read(&mut chunk), if !output_done => match read {
                Ok(0) | Err(_) => output_done = true,
                Ok(n) => lines.write(&chunk[..n]),
            },
            exit = child.wait(), if status.is_none() => {
                status = Some(exit);
                output_deadline = Some(Instant::now() + OUTPUT_GRACE);
            },
            _ = env.cancel.cancelled(), if !cancelled => {
                cancelled = true;
                signal_group(pgid, libc::SIGTERM);
                kill_at = Some(Instant::now() + TERM_GRACE);
            },
            _ = sleep_until(kill_at), if kill_at.is_some() => {
                signal_group(pgid, libc::SIGKILL);
                kill_at = None;
            },
            _ = sleep_until(output_deadline), if output_deadline.is_some() && !output_done => {
                output_done = true;
            },
        }
    }
    lines.flush();
    // From here on the group is handled explicitly: killed when cancelled, left alone
    // otherwise (a hook may start a daemon on purpose).
    group_guard.0 = None;

    if cancelled {
        // The interpreter is gone; make sure the rest of its group is too.
        let kill_at = kill_at.unwrap_or_else(Instant::now);
        while group_alive(pgid) {
            if Instant::now() >= kill_at {
                signal_group(pgid, libc::SIGKILL);
                let give_up = Instant::now() + Duration::from_secs(1);
                while group_alive(pgid) && Instant::now() < give_up {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        return Err(ActionError::cancelled());
    }

    match status.expect("loop ends after exit") {
        Ok(status) if status.success() => Ok(()),
        Ok(status) => Err(ActionError::new(describe_exit(status))),
        Err(e) => Err(ActionError::new(format!("waiting for {}: {e}", argv[0]))),
    }
}

/// `#!<interpreter line>` chooses the interpreter (shell-split); the rest is the script.
fn split_interpreter(text: &str) -> Result<(Vec<String>, &str), ActionError> {
    if text.len() <= 2 || !text.starts_with("#!") {
        return Ok((vec!["sh".to_string()], text));
    }
    let (first_line, script) = match text.find('\n') {
        Some(end) => (&text[2..end], &text[end + 1..]),
        None => (&text[2..], ""),
    };
    let argv = shlex::split(first_line.trim_matches(' ')).ok_or_else(|| {
        ActionError::new("parsing shell for command: unbalanced quotes or trailing backslash")
    })?;
    if argv.is_empty() {
        return Err(ActionError::new("must specify shell for command"));
    }
    Ok((argv, script))
}

fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    match status.signal() {
        Some(signal) => format!("terminated by signal {} ({signal})", signal_name(signal)),
        None => format!("ended abnormally ({status})"),
    }
}

fn signal_name(signal: i32) -> &'static str {
    match signal {
        libc::SIGHUP => "SIGHUP",
        libc::SIGINT => "SIGINT",
        libc::SIGQUIT => "SIGQUIT",
        libc::SIGILL => "SIGILL",
        libc::SIGABRT => "SIGABRT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGFPE => "SIGFPE",
        libc::SIGKILL => "SIGKILL",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGPIPE => "SIGPIPE",
        libc::SIGALRM => "SIGALRM",
        libc::SIGTERM => "SIGTERM",
        libc::SIGUSR1 => "SIGUSR1",
        libc::SIGUSR2 => "SIGUSR2",
        _ => "unknown signal",
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn signal_group(pgid: Option<i32>, signal: i32) {
    if let Some(pgid) = pgid.filter(|&p| p > 0) {
        // SAFETY: kill(2) with a negative pid signals a process group; no memory involved.
        unsafe {
            libc::kill(-pgid, signal);
        }
    }
}

/// Whether any live (non-zombie) process is left in the group. Zombies count as gone:
/// orphans are reaped by init, which may take a moment (or forever in a container whose
/// init does not reap).
pub(crate) fn group_alive(pgid: Option<i32>) -> bool {
    let Some(pgid) = pgid.filter(|&p| p > 0) else {
        return false;
    };
    // SAFETY: signal 0 only checks for existence.
    if unsafe { libc::kill(-pgid, 0) } != 0
        && std::io::Error::last_os_error().raw_os_error() == Some(libc::ESRCH)
    {
        return false;
    }
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return true;
    };
    entries.filter_map(Result::ok).any(|entry| {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            return false;
        };
        // "<pid> (<comm>) <state> <ppid> <pgrp> …"; comm may contain anything, so parse
        // from the last ')'.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            return false;
        };
        let mut fields = rest.split_whitespace();
        let state = fields.next();
        let pgrp = fields.nth(1).and_then(|f| f.parse::<i32>().ok());
        pgrp == Some(pgid) && state != Some("Z") && state != Some("X")
    })
}

/// Kills the group if the hook future is dropped mid-run (e.g. the parent task aborted);
/// disarmed (`None`) once the run ends normally.
struct GroupGuard(Option<i32>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if group_alive(self.0) {
            signal_group(self.0, libc::SIGKILL);
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Splits output into lines and logs each with a prefix; a last line without a newline
/// is logged by `flush`.
struct LineWriter<'a> {
    prefix: &'static str,
    pending: Vec<u8>,
    log: &'a (dyn Fn(&str) + Send + Sync),
}

impl LineWriter<'_> {
    fn write(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        while let Some(end) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=end).collect();
            self.emit(&line[..line.len() - 1]);
        }
        while self.pending.len() > MAX_LINE_BYTES {
            let piece: Vec<u8> = self.pending.drain(..MAX_LINE_BYTES).collect();
            self.emit(&piece);
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            let rest = std::mem::take(&mut self.pending);
            self.emit(&rest);
        }
    }

    fn emit(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        (self.log)(&format!("{}{}", self.prefix, String::from_utf8_lossy(line)));
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio_util::sync::CancellationToken;

    use super::group_alive;
    use crate::hooks::actions::test_support::{run_action, run_action_with};
    use crate::pb::v1::hook;

    fn action(script: &str) -> hook::Action {
        hook::Action::ActionCommand(hook::Command {
            command: script.into(),
        })
    }

    async fn run(script: &str) -> (Result<(), crate::hooks::actions::ActionError>, Vec<String>) {
        run_action(
            action(script),
            hook::Condition::SnapshotStart,
            "http://127.0.0.1:9",
        )
        .await
    }

    #[tokio::test]
    async fn output_is_captured_with_prefixes() {
        let (result, log) = run("echo out\necho err >&2\nprintf 'no newline'").await;
        result.unwrap();
        assert_eq!(
            log,
            vec![
                "[script] [sh]",
                "[script] echo out",
                "[script] echo err >&2",
                "[script] printf 'no newline'",
                "[output] out",
                "[output] err",
                "[output] no newline",
            ]
        );
    }

    #[tokio::test]
    async fn a_trailing_newline_logs_an_empty_script_line_like_backrest() {
        let (result, log) = run("true\n").await;
        result.unwrap();
        assert_eq!(log, vec!["[script] [sh]", "[script] true", "[script] "]);
    }

    #[tokio::test]
    async fn a_non_zero_exit_is_an_error() {
        let (result, log) = run("echo before\nexit 3\necho after").await;
        let err = result.unwrap_err();
        assert_eq!(err.message(), "exit status 3");
        assert!(!err.is_cancelled());
        assert!(log.contains(&"[output] before".to_string()));
        assert!(!log.contains(&"[output] after".to_string()));
    }

    #[tokio::test]
    async fn a_signal_is_reported_readably() {
        let (result, _) = run("kill -KILL $$").await;
        assert_eq!(
            result.unwrap_err().message(),
            "terminated by signal SIGKILL (9)"
        );
    }

    #[tokio::test]
    async fn the_environment_is_inherited() {
        let (result, log) = run("echo \"${PATH:+path is set}\"").await;
        result.unwrap();
        assert_eq!(log.last().unwrap(), "[output] path is set");
    }

    #[tokio::test]
    async fn a_shebang_chooses_the_interpreter() {
        let (result, log) =
            run("#!bash -e\necho \"${BASH_VERSION:+bash}\"\nfalse\necho unreachable").await;
        assert_eq!(result.unwrap_err().message(), "exit status 1");
        assert_eq!(
            log,
            vec![
                "[script] [bash -e]",
                "[script] echo \"${BASH_VERSION:+bash}\"",
                "[script] false",
                "[script] echo unreachable",
                "[output] bash",
            ]
        );
    }

    #[tokio::test]
    async fn a_bad_shebang_is_an_error() {
        let (result, log) = run("#!   \necho hi").await;
        assert_eq!(
            result.unwrap_err().message(),
            "must specify shell for command"
        );
        assert!(log.is_empty());
        let (result, _) = run("#!sh 'unclosed\necho hi").await;
        assert!(
            result
                .unwrap_err()
                .message()
                .starts_with("parsing shell for command: ")
        );
        let (result, _) = run("#!/no/such/interpreter\necho hi").await;
        assert!(
            result
                .unwrap_err()
                .message()
                .starts_with("starting /no/such/interpreter: ")
        );
    }

    #[tokio::test]
    async fn a_template_error_is_reported() {
        let (result, _) = run("echo {{ fail }}").await;
        assert_eq!(
            result.unwrap_err().message(),
            "template rendering: template: function \"fail\" not defined"
        );
    }

    #[tokio::test]
    async fn background_processes_holding_the_output_do_not_block_the_hook() {
        let marker = marker();
        let started = std::time::Instant::now();
        let (result, log) = run(&format!("sh -c 'sleep 30; : {marker}' &\necho done")).await;
        result.unwrap();
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(log.last().unwrap(), "[output] done");
        // A process the hook left running on purpose is not killed.
        let background = find_marked_shell(&marker).expect("the background process still runs");
        // SAFETY: plain kill(2) of the process this test started.
        unsafe { libc::kill(background, libc::SIGKILL) };
    }

    /// Runs `script` (whose inner `sh -c` carries `marker`), cancels as soon as that inner
    /// shell shows up, and returns its process group, the result and how long the run
    /// took after cancellation.
    async fn run_and_cancel(
        script: &str,
        marker: &str,
    ) -> (
        i32,
        Result<(), crate::hooks::actions::ActionError>,
        Duration,
    ) {
        let cancel = CancellationToken::new();
        let run = run_action_with(
            action(script),
            hook::Condition::SnapshotStart,
            "http://127.0.0.1:9",
            cancel.clone(),
        );
        let watch = async {
            loop {
                tokio::time::sleep(Duration::from_millis(50)).await;
                if let Some(pid) = find_marked_shell(marker) {
                    // SAFETY: getpgid only reads process state.
                    let pgid = unsafe { libc::getpgid(pid) };
                    assert!(
                        pgid > 0 && pgid != unsafe { libc::getpgid(0) },
                        "the hook runs in its own group"
                    );
                    let at = std::time::Instant::now();
                    cancel.cancel();
                    return (pgid, at);
                }
            }
        };
        let ((result, _log), (pgid, cancelled_at)) = tokio::join!(run, watch);
        (pgid, result, cancelled_at.elapsed())
    }

    /// The pid of a live process whose command line contains `marker`.
    fn find_marked_shell(marker: &str) -> Option<i32> {
        std::fs::read_dir("/proc")
            .ok()?
            .filter_map(Result::ok)
            .find_map(|entry| {
                let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
                let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
                String::from_utf8_lossy(&cmdline)
                    .contains(marker)
                    .then_some(pid)
            })
    }

    fn marker() -> String {
        format!("BACKREST_RS_TEST_MARK_{}", uuid::Uuid::new_v4().simple())
    }

    #[tokio::test]
    async fn cancellation_kills_the_process_group() {
        let marker = marker();
        let script = format!("echo started\nsh -c 'sleep 100; : {marker}'\n");
        let (pgid, result, elapsed) = run_and_cancel(&script, &marker).await;
        let err = result.unwrap_err();
        assert!(err.is_cancelled());
        assert_eq!(err.message(), "cancelled");
        assert!(elapsed < Duration::from_secs(4), "took {elapsed:?}");
        assert!(!group_alive(Some(pgid)), "group {pgid} still alive");
        assert!(find_marked_shell(&marker).is_none());
    }

    #[tokio::test]
    async fn a_group_ignoring_sigterm_is_killed_after_the_grace_period() {
        let marker = marker();
        let script = format!("trap '' TERM\nsh -c 'sleep 100; : {marker}'\n");
        let (pgid, result, elapsed) = run_and_cancel(&script, &marker).await;
        assert!(result.unwrap_err().is_cancelled());
        assert!(
            elapsed >= Duration::from_millis(4500) && elapsed < Duration::from_secs(9),
            "took {elapsed:?}"
        );
        assert!(!group_alive(Some(pgid)), "group {pgid} still alive");
    }
}
