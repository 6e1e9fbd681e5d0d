//! Running restic (or any child) in its own process group, streaming its
//! output line by line, and stopping it the way restic cleans up: SIGINT first
//! (restic removes its lock), SIGKILL after a grace period.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;
use tokio_util::sync::CancellationToken;

/// How long restic gets to clean up after SIGINT before it is killed.
pub const CANCEL_GRACE: Duration = Duration::from_secs(10);

/// Lines longer than this are cut (restic's JSON lines are short; this guards memory).
const MAX_LINE: usize = 10 * 1024 * 1024;

#[derive(Clone, Debug, Default)]
pub struct Invocation {
    /// Prefix commands (nice/ionice) run before the program.
    pub prefix: Vec<String>,
    pub program: PathBuf,
    pub args: Vec<String>,
    /// Environment set on top of (and overriding) the server's own.
    pub env: Vec<(String, String)>,
    /// Variables removed from the inherited environment.
    pub env_remove: Vec<String>,
    pub cwd: Option<PathBuf>,
}

impl Invocation {
    /// The command line for logs and error messages (no secrets: passwords
    /// travel in the environment, never in arguments).
    pub fn display(&self) -> String {
        let mut parts: Vec<String> = self.prefix.clone();
        parts.push(self.program.display().to_string());
        parts.extend(self.args.iter().map(|a| {
            if a.is_empty() || a.contains(' ') {
                format!("{a:?}")
            } else {
                a.clone()
            }
        }));
        parts.join(" ")
    }

    fn command(&self) -> Command {
        let mut all: Vec<String> = self.prefix.clone();
        all.push(self.program.display().to_string());
        all.extend(self.args.iter().cloned());
        let mut cmd = Command::new(&all[0]);
        cmd.args(&all[1..]);
        for k in &self.env_remove {
            cmd.env_remove(k);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        if let Some(d) = &self.cwd {
            cmd.current_dir(d);
        }
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Own process group: signals reach restic and anything it starts
        // (ssh, rclone), and a Ctrl-C on the server's terminal doesn't.
        cmd.process_group(0);
        cmd.kill_on_drop(true);
        // If the server dies without stopping it (kill -9, crash), the child
        // gets SIGINT — restic's "clean up and remove your lock" signal —
        // instead of running on orphaned, holding the repository's lock.
        // SAFETY: prctl is async-signal-safe and touches only this process.
        // Its output pipes break when the server dies, so it must also ignore
        // SIGPIPE: otherwise writing "cleaning up" would kill it before it
        // removes the lock (Go honours an inherited SIG_IGN for SIGPIPE).
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGINT as libc::c_ulong);
                libc::signal(libc::SIGPIPE, libc::SIG_IGN);
                Ok(())
            });
        }
        cmd
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Stdout,
    Stderr,
}

#[derive(Debug)]
pub struct Exit {
    /// The exit code; None when killed by a signal.
    pub code: Option<i32>,
    /// True when we stopped it because of cancellation.
    pub cancelled: bool,
}

impl Exit {
    pub fn success(&self) -> bool {
        self.code == Some(0) && !self.cancelled
    }
}

/// Runs `inv`, calling `on_line` for every output line (stdout and stderr
/// interleaved as they arrive). Stops the process group on `cancel`.
pub async fn run<F>(
    inv: &Invocation,
    cancel: &CancellationToken,
    mut on_line: F,
) -> std::io::Result<Exit>
where
    F: FnMut(Source, &str),
{
    let mut child = inv.command().spawn()?;
    let pid = child.id().map(|p| p as i32);
    let (tx, mut rx) = tokio::sync::mpsc::channel::<(Source, String)>(256);
    let out = child.stdout.take().expect("piped stdout");
    let err = child.stderr.take().expect("piped stderr");
    let t1 = tokio::spawn(pump(out, Source::Stdout, tx.clone()));
    let t2 = tokio::spawn(pump(err, Source::Stderr, tx));

    let mut cancelled = false;
    let mut killed = false;
    let kill_deadline = tokio::time::sleep(Duration::from_secs(3600 * 24 * 365));
    tokio::pin!(kill_deadline);
    let mut lines_open = true;
    let status = loop {
        tokio::select! {
            line = rx.recv(), if lines_open => match line {
                Some((src, text)) => on_line(src, &text),
                None => lines_open = false,
            },
            _ = cancel.cancelled(), if !cancelled => {
                cancelled = true;
                if let Some(pid) = pid {
                    signal_group(pid, libc::SIGINT);
                }
                kill_deadline.as_mut().reset(tokio::time::Instant::now() + CANCEL_GRACE);
            }
            _ = &mut kill_deadline, if cancelled && !killed => {
                killed = true;
                if let Some(pid) = pid {
                    signal_group(pid, libc::SIGKILL);
                }
            }
            status = child.wait() => break status?,
        }
    };
    // The child has exited. Its output may still be in flight, or held open
    // by a leftover grandchild: drain briefly, then kill the group.
    let drain_until = tokio::time::Instant::now() + Duration::from_secs(2);
    while lines_open {
        match tokio::time::timeout_at(drain_until, rx.recv()).await {
            Ok(Some((src, text))) => on_line(src, &text),
            Ok(None) => lines_open = false,
            Err(_) => {
                if let Some(pid) = pid {
                    signal_group(pid, libc::SIGKILL);
                }
                while let Ok(Some((src, text))) =
                    tokio::time::timeout(Duration::from_secs(1), rx.recv()).await
                {
                    on_line(src, &text);
                }
                break;
            }
        }
    }
    t1.abort();
    t2.abort();
    Ok(Exit {
        code: status.code(),
        cancelled,
    })
}

/// Runs `inv` and collects its output: (exit, stdout, combined output).
pub async fn run_collect(
    inv: &Invocation,
    cancel: &CancellationToken,
) -> std::io::Result<(Exit, String, String)> {
    let mut stdout = String::new();
    let mut combined = String::new();
    let exit = run(inv, cancel, |src, line| {
        if src == Source::Stdout {
            stdout.push_str(line);
            stdout.push('\n');
        }
        if combined.len() < 64 * 1024 {
            combined.push_str(line);
            combined.push('\n');
        }
    })
    .await?;
    Ok((exit, stdout, combined))
}

/// Starts `inv` (own process group, piped stdout/stderr, killed on drop) for
/// a caller that reads its output as bytes itself, e.g. `restic dump`
/// streamed into an HTTP response.
pub fn spawn(inv: &Invocation) -> std::io::Result<tokio::process::Child> {
    inv.command().spawn()
}

/// Sends `sig` to the process group led by `pid` (as made by [`spawn`]/[`run`]).
pub fn signal_group(pid: i32, sig: i32) {
    // SAFETY: kill(2) with a negative pid signals the process group we created.
    unsafe {
        libc::kill(-pid, sig);
    }
}

async fn pump<R: AsyncRead + Unpin>(
    r: R,
    src: Source,
    tx: tokio::sync::mpsc::Sender<(Source, String)>,
) {
    let mut reader = BufReader::with_capacity(64 * 1024, r);
    let mut buf = Vec::new();
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(_) => {
                if buf.len() > MAX_LINE {
                    buf.truncate(MAX_LINE);
                }
                let text = String::from_utf8_lossy(&buf);
                // restic redraws progress with \r in text mode; keep the last frame.
                let text = text.trim_end_matches(['\n', '\r']);
                let text = text.rsplit('\r').next().unwrap_or(text).to_string();
                if tx.send((src, text)).await.is_err() {
                    break;
                }
            }
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// `/bin/sh -c script`, for tests of code that runs processes.
    pub(crate) fn sh(script: &str) -> Invocation {
        Invocation {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn streams_both_outputs_and_exit_code() {
        let mut seen = vec![];
        let exit = run(
            &sh("echo out1; echo err1 >&2; echo out2; exit 3"),
            &CancellationToken::new(),
            |s, l| seen.push((s, l.to_string())),
        )
        .await
        .unwrap();
        assert_eq!(exit.code, Some(3));
        assert!(!exit.cancelled);
        assert!(seen.contains(&(Source::Stdout, "out1".into())));
        assert!(seen.contains(&(Source::Stdout, "out2".into())));
        assert!(seen.contains(&(Source::Stderr, "err1".into())));
    }

    #[tokio::test]
    async fn environment_is_applied() {
        let mut inv = sh("echo \"$FOO-$HOME_X\"");
        inv.env = vec![("FOO".into(), "bar".into())];
        let (exit, out, _) = run_collect(&inv, &CancellationToken::new()).await.unwrap();
        assert!(exit.success());
        assert_eq!(out, "bar-\n");
    }

    #[tokio::test]
    async fn cancel_sends_sigint_to_the_whole_group() {
        // The child traps SIGINT, like restic, and reports it; a grandchild must die too.
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("cleaned");
        let script = format!(
            "trap 'echo cleaned > {m}; exit 130' INT; sleep 30 & echo started; wait",
            m = marker.display()
        );
        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        let started = std::time::Instant::now();
        let exit = run(&sh(&script), &cancel, move |_, l| {
            if l == "started" {
                c2.cancel();
            }
        })
        .await
        .unwrap();
        assert!(exit.cancelled);
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "took {:?}",
            started.elapsed()
        );
        assert_eq!(std::fs::read_to_string(&marker).unwrap().trim(), "cleaned");
    }

    #[tokio::test]
    async fn missing_binary_is_an_error() {
        let inv = Invocation {
            program: "/nonexistent/restic".into(),
            ..Default::default()
        };
        assert!(
            run(&inv, &CancellationToken::new(), |_, _| {})
                .await
                .is_err()
        );
    }
}
