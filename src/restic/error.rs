//! Errors from running restic, classified so callers (and users) know what
//! went wrong and what to do. restic 0.14 reports almost everything as exit
//! code 1 with a `Fatal:` line; newer versions add exit codes 10/11/12. We
//! classify from both.

use std::fmt;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The binary could not be started.
    Spawn,
    /// No repository at the URI.
    RepoNotFound,
    /// Wrong password (or no key matched).
    WrongPassword,
    /// Another process holds a lock on the repository.
    RepoLocked,
    /// `init` on a repository that already exists.
    AlreadyInitialized,
    /// ssh refused the host key.
    HostKeyUntrusted,
    /// The operation was cancelled (we stopped restic).
    Cancelled,
    /// The output was not what we expected.
    BadOutput,
    /// Anything else restic reported.
    Failed,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResticError {
    pub kind: ErrorKind,
    /// The command line, shortened (never includes the password: that travels in the environment).
    pub command: String,
    pub exit_code: Option<i32>,
    /// restic's own words: the relevant stderr/stdout text, trimmed.
    pub output: String,
}

/// Captured output kept for error messages (as Backrest: about 1000 bytes).
pub const OUTPUT_LIMIT: usize = 1000;

impl ResticError {
    pub fn new(kind: ErrorKind, command: &str, exit_code: Option<i32>, output: &str) -> Self {
        ResticError {
            kind,
            command: shorten_command(command),
            exit_code,
            output: trim_output(output),
        }
    }

    /// Classifies a failed run from its exit code and output.
    pub fn classify(command: &str, exit_code: Option<i32>, output: &str) -> Self {
        let lower = output.to_ascii_lowercase();
        let kind = match exit_code {
            Some(10) => ErrorKind::RepoNotFound,
            Some(11) => ErrorKind::RepoLocked,
            Some(12) => ErrorKind::WrongPassword,
            Some(130) => ErrorKind::Cancelled,
            _ if lower.contains("wrong password or no key found") => ErrorKind::WrongPassword,
            _ if lower.contains("is there a repository at the following location?") => {
                ErrorKind::RepoNotFound
            }
            _ if lower.contains("repository does not exist") => ErrorKind::RepoNotFound,
            _ if lower.contains("repository is already locked") => ErrorKind::RepoLocked,
            _ if lower.contains("config file already exists")
                || lower.contains("already initialized") =>
            {
                ErrorKind::AlreadyInitialized
            }
            _ if lower.contains("host key verification failed")
                || lower.contains("remote host identification has changed") =>
            {
                ErrorKind::HostKeyUntrusted
            }
            _ => ErrorKind::Failed,
        };
        ResticError::new(kind, command, exit_code, output)
    }

    /// What a person should do about it, when we know.
    pub fn hint(&self) -> Option<&'static str> {
        match self.kind {
            ErrorKind::WrongPassword => {
                Some("check the repository's password (and RESTIC_PASSWORD* entries in its env)")
            }
            ErrorKind::RepoNotFound => {
                Some("check the repository URI, or add the repository again to initialize it")
            }
            ErrorKind::RepoLocked => Some(
                "another restic process holds a lock on this repository; if none is running, \
                 run the Unlock task (or enable auto-unlock for the repo)",
            ),
            ErrorKind::HostKeyUntrusted => {
                Some("the SFTP host's key is not trusted yet: add it to known_hosts")
            }
            ErrorKind::Spawn => {
                Some("check that restic is installed, or pass its path with -restic-cmd")
            }
            _ => None,
        }
    }
}

impl fmt::Display for ResticError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "command \"{}\" failed", self.command)?;
        match (self.kind, self.exit_code) {
            (ErrorKind::Cancelled, _) => write!(f, ": cancelled")?,
            (ErrorKind::Spawn, _) => write!(f, ": could not start")?,
            (_, Some(code)) => write!(f, ": exit code {code}")?,
            (_, None) => {}
        }
        if !self.output.is_empty() {
            write!(f, ": {}", self.output)?;
        }
        if let Some(h) = self.hint() {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

impl std::error::Error for ResticError {}

fn shorten_command(cmd: &str) -> String {
    if cmd.chars().count() <= 100 {
        cmd.to_string()
    } else {
        format!("{}...", cmd.chars().take(100).collect::<String>())
    }
}

/// Keeps restic's words readable: drops blank lines and progress-bar noise,
/// and keeps at most the last OUTPUT_LIMIT bytes (restic's fatal message comes
/// last), noting how much was dropped.
pub fn trim_output(output: &str) -> String {
    let lines: Vec<&str> = output
        .lines()
        .map(str::trim_end)
        .filter(|l| !l.trim().is_empty())
        .filter(|l| !l.starts_with("[0:") && !l.starts_with("[1:"))
        .collect();
    let joined = lines.join("\n");
    if joined.len() <= OUTPUT_LIMIT {
        return joined;
    }
    let mut cut = joined.len() - OUTPUT_LIMIT;
    while !joined.is_char_boundary(cut) {
        cut += 1;
    }
    format!("... {cut} bytes truncated ...\n{}", &joined[cut..])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classifies_restic_0_14_messages() {
        let c = |out: &str| ResticError::classify("restic x", Some(1), out).kind;
        assert_eq!(
            c("Fatal: wrong password or no key found\n"),
            ErrorKind::WrongPassword
        );
        assert_eq!(
            c(
                "Fatal: unable to open config file: stat /r/config: no such file or directory\nIs there a repository at the following location?\n/r"
            ),
            ErrorKind::RepoNotFound
        );
        assert_eq!(
            c(
                "unable to create lock in backend: repository is already locked exclusively by PID 1 on vm by root"
            ),
            ErrorKind::RepoLocked
        );
        assert_eq!(
            c("Fatal: create repository at /r failed: config file already exists"),
            ErrorKind::AlreadyInitialized
        );
        assert_eq!(
            c("Host key verification failed."),
            ErrorKind::HostKeyUntrusted
        );
        assert_eq!(c("something else"), ErrorKind::Failed);
        assert_eq!(
            ResticError::classify("r", Some(10), "").kind,
            ErrorKind::RepoNotFound
        );
        assert_eq!(
            ResticError::classify("r", Some(12), "").kind,
            ErrorKind::WrongPassword
        );
    }

    #[test]
    fn message_carries_restics_words_and_a_hint() {
        let e = ResticError::classify(
            "restic snapshots --json",
            Some(1),
            "\nFatal: wrong password or no key found\n\n",
        );
        let s = e.to_string();
        assert!(
            s.starts_with(
                "command \"restic snapshots --json\" failed: exit code 1: Fatal: wrong password"
            ),
            "{s}"
        );
        assert!(s.contains("check the repository's password"));
    }

    #[test]
    fn long_output_and_commands_are_trimmed() {
        let out = "x".repeat(5000);
        let e = ResticError::classify(&"c".repeat(300), Some(1), &out);
        assert!(e.output.starts_with("... 4000 bytes truncated ...\n"));
        assert_eq!(e.command.len(), 103);
        assert_eq!(
            trim_output("[0:00] 100.00%  5 / 5 snapshots\nreal line"),
            "real line"
        );
    }
}
