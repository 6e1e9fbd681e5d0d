//! `restic dump` with its stdout read as bytes, for streaming a snapshot's
//! file or folder to an HTTP client.
//!
//! Unlike the line-based commands in `repo`, the output here is the payload
//! itself, so the caller reads it in chunks and only at the end learns
//! whether restic succeeded ([`Dump::finish`]). Dropping a [`Dump`] early —
//! the client went away — kills restic's whole process group at once: the
//! command runs with `--no-lock`, so there is no lock to clean up and no
//! reason to wait for a graceful exit.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::process::{Child, ChildStdout};
use tokio::task::JoinHandle;

use super::error::{ErrorKind, ResticError};
use super::process::{self, Invocation};

/// restic's stderr kept for the error message (restic's fatal line comes last).
const STDERR_LIMIT: usize = 64 * 1024;

/// A running `restic dump`.
pub struct Dump {
    child: Child,
    pid: Option<i32>,
    stdout: ChildStdout,
    stderr: Option<JoinHandle<String>>,
    command: String,
    done: bool,
}

impl Dump {
    /// Starts `inv` (a `restic dump …` built by `RepoClient`).
    pub fn start(inv: &Invocation) -> Result<Dump, ResticError> {
        let command = inv.display();
        let mut child = process::spawn(inv)
            .map_err(|e| ResticError::new(ErrorKind::Spawn, &command, None, &e.to_string()))?;
        let pid = child.id().map(|p| p as i32);
        let stdout = child.stdout.take().expect("piped stdout");
        let stderr = child.stderr.take().expect("piped stderr");
        Ok(Dump {
            child,
            pid,
            stdout,
            stderr: Some(tokio::spawn(collect_tail(stderr))),
            command,
            done: false,
        })
    }

    /// The command line (no secrets: those travel in the environment).
    pub fn command(&self) -> &str {
        &self.command
    }

    /// Reads the next piece of restic's stdout; 0 at its end.
    pub async fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        self.stdout.read(buf).await
    }

    /// Fills `buf` as far as possible: returns fewer bytes than its length
    /// only when stdout has ended.
    pub async fn read_full(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.stdout.read(&mut buf[filled..]).await? {
                0 => break,
                n => filled += n,
            }
        }
        Ok(filled)
    }

    /// Waits for restic to exit (call after stdout ended): Ok when it
    /// succeeded, else what it said.
    pub async fn finish(mut self) -> Result<(), ResticError> {
        let status = self.child.wait().await;
        self.done = true;
        let said = match self.stderr.take() {
            Some(task) => task.await.unwrap_or_default(),
            None => String::new(),
        };
        let status = status.map_err(|e| {
            ResticError::new(ErrorKind::Failed, &self.command, None, &e.to_string())
        })?;
        if status.success() {
            return Ok(());
        }
        Err(ResticError::classify(&self.command, status.code(), &said))
    }
}

impl Drop for Dump {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Not finished: nobody wants the rest. restic and anything it
        // started (ssh, rclone) go; the child itself is also killed and
        // reaped by tokio (`kill_on_drop`).
        if let Some(pid) = self.pid {
            process::signal_group(pid, libc::SIGKILL);
        }
        if let Some(task) = self.stderr.take() {
            task.abort();
        }
    }
}

/// Everything `r` writes, keeping only the last [`STDERR_LIMIT`] bytes.
async fn collect_tail<R: AsyncRead + Unpin>(mut r: R) -> String {
    let mut kept: Vec<u8> = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * STDERR_LIMIT {
                    kept.drain(..kept.len() - STDERR_LIMIT);
                }
            }
        }
    }
    if kept.len() > STDERR_LIMIT {
        kept.drain(..kept.len() - STDERR_LIMIT);
    }
    String::from_utf8_lossy(&kept).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restic::process::tests::sh;
    use std::time::Duration;

    #[tokio::test]
    async fn streams_stdout_and_reports_success() {
        let mut d = Dump::start(&sh("printf 'hello '; printf world")).unwrap();
        let mut buf = [0u8; 64];
        let n = d.read_full(&mut buf).await.unwrap();
        assert_eq!(&buf[..n], b"hello world");
        d.finish().await.unwrap();
    }

    #[tokio::test]
    async fn a_failure_carries_stderr() {
        let mut d = Dump::start(&sh("echo 'Fatal: no such path' >&2; exit 1")).unwrap();
        let mut buf = [0u8; 64];
        assert_eq!(d.read_full(&mut buf).await.unwrap(), 0);
        let e = d.finish().await.unwrap_err();
        assert_eq!(e.exit_code, Some(1));
        assert_eq!(e.output, "Fatal: no such path");
    }

    #[tokio::test]
    async fn dropping_kills_the_process_group() {
        let dir = tempfile::tempdir().unwrap();
        let pidfile = dir.path().join("pid");
        // A grandchild that would outlive a kill of the shell alone.
        let script = format!(
            "sleep 60 & echo $! > {p}; echo started; wait",
            p = pidfile.display()
        );
        let mut d = Dump::start(&sh(&script)).unwrap();
        let mut buf = [0u8; 8];
        assert!(d.read(&mut buf).await.unwrap() > 0);
        let grandchild: i32 = std::fs::read_to_string(&pidfile)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        drop(d);
        let gone = async {
            // SAFETY: signal 0 only checks whether the process exists.
            while unsafe { libc::kill(grandchild, 0) } == 0 {
                // A killed child stays a zombie until its parent (the
                // killed shell, then init) reaps it.
                let stat =
                    std::fs::read_to_string(format!("/proc/{grandchild}/stat")).unwrap_or_default();
                if stat.split_whitespace().nth(2) == Some("Z") {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), gone)
            .await
            .expect("the grandchild was killed");
    }
}
