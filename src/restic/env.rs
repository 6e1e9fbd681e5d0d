//! The environment and argument conventions Backrest uses for restic:
//! `${VAR}` expansion, the repo's env and flags, and nice/ionice prefixes.

use crate::pb::v1;

/// Expands `${VAR}` from `lookup`; unknown variables become empty, and `$VAR`
/// without braces is left alone (as Backrest does).
pub fn expand_env(s: &str, lookup: &dyn Fn(&str) -> Option<String>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find('}') {
            Some(end) => {
                out.push_str(&lookup(&after[..end]).unwrap_or_default());
                rest = &after[end + 1..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The environment restic gets for `repo`, on top of the server's own: the
/// configured password wins over inherited RESTIC_PASSWORD_FILE/COMMAND, then
/// the repo's `env` entries, then the repository URI.
pub fn repo_env(repo: &v1::Repo, lookup: &dyn Fn(&str) -> Option<String>) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: String| {
        env.retain(|(key, _)| key != k);
        env.push((k.to_string(), v));
    };
    if !repo.password.is_empty() {
        set("RESTIC_PASSWORD", repo.password.clone());
        set("RESTIC_PASSWORD_FILE", String::new());
        set("RESTIC_PASSWORD_COMMAND", String::new());
    }
    for entry in &repo.env {
        if let Some((k, v)) = expand_env(entry, lookup).split_once('=') {
            set(k, v.to_string());
        }
    }
    set("RESTIC_REPOSITORY", expand_env(&repo.uri, lookup));
    env
}

/// Splits a flag string the way a POSIX shell would.
pub fn shell_split(s: &str) -> Result<Vec<String>, String> {
    shlex::split(s).ok_or_else(|| format!("cannot split {s:?} into arguments: unbalanced quotes"))
}

/// The repo's `flags`, `${VAR}`-expanded and shell-split.
pub fn repo_flags(
    repo: &v1::Repo,
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for f in &repo.flags {
        out.extend(
            shell_split(&expand_env(f, lookup))
                .map_err(|e| format!("repo {:?} flag: {e}", repo.id))?,
        );
    }
    Ok(out)
}

/// `nice`/`ionice` prefix for the repo's command prefix, checking that the
/// tools exist when a non-default level asks for them.
pub fn command_prefix(
    repo: &v1::Repo,
    which: &dyn Fn(&str) -> bool,
) -> Result<Vec<String>, String> {
    use v1::command_prefix::{CpuNiceLevel, IoNiceLevel};
    let Some(p) = &repo.command_prefix else {
        return Ok(vec![]);
    };
    let mut out = Vec::new();
    let cpu: &[&str] = match CpuNiceLevel::try_from(p.cpu_nice).unwrap_or(CpuNiceLevel::CpuDefault)
    {
        CpuNiceLevel::CpuDefault => &[],
        CpuNiceLevel::CpuHigh => &["nice", "-n", "-10"],
        CpuNiceLevel::CpuLow => &["nice", "-n", "10"],
    };
    if !cpu.is_empty() {
        if !which("nice") {
            return Err("nice is not available on this machine, so cpu_nice cannot be used".into());
        }
        out.extend(cpu.iter().map(|s| s.to_string()));
    }
    let io: &[&str] = match IoNiceLevel::try_from(p.io_nice).unwrap_or(IoNiceLevel::IoDefault) {
        IoNiceLevel::IoDefault => &[],
        IoNiceLevel::IoIdle => &["ionice", "-c", "3"],
        IoNiceLevel::IoBestEffortLow => &["ionice", "-c", "2", "-n", "7"],
        IoNiceLevel::IoBestEffortHigh => &["ionice", "-c", "2", "-n", "0"],
    };
    if !io.is_empty() {
        if !which("ionice") {
            return Err(
                "ionice is not available on this machine, so io_nice cannot be used".into(),
            );
        }
        out.extend(io.iter().map(|s| s.to_string()));
    }
    Ok(out)
}

/// Whether `name` is an executable on PATH.
pub fn on_path(name: &str) -> bool {
    find_on_path(name).is_some()
}

pub fn find_on_path(name: &str) -> Option<std::path::PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lookup(k: &str) -> Option<String> {
        match k {
            "HOME" => Some("/home/u".into()),
            "PW" => Some("s3cret".into()),
            _ => None,
        }
    }

    #[test]
    fn expansion_matches_backrest() {
        assert_eq!(expand_env("${HOME}/repo", &lookup), "/home/u/repo");
        assert_eq!(expand_env("$HOME/${NOPE}x", &lookup), "$HOME/x");
        assert_eq!(expand_env("a${unterminated", &lookup), "a${unterminated");
    }

    #[test]
    fn env_order_and_override() {
        let repo = v1::Repo {
            uri: "${HOME}/r".into(),
            password: "pw".into(),
            env: vec![
                "RESTIC_PASSWORD=${PW}".into(),
                "AWS_KEY=k=v".into(),
                "junk".into(),
            ],
            ..Default::default()
        };
        let env = repo_env(&repo, &lookup);
        let get = |k: &str| {
            env.iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("RESTIC_PASSWORD"), Some("s3cret"));
        assert_eq!(get("RESTIC_PASSWORD_FILE"), Some(""));
        assert_eq!(get("AWS_KEY"), Some("k=v"));
        assert_eq!(get("RESTIC_REPOSITORY"), Some("/home/u/r"));
        assert_eq!(
            env.iter().filter(|(k, _)| k == "RESTIC_PASSWORD").count(),
            1
        );
    }

    #[test]
    fn flags_and_prefix() {
        let repo = v1::Repo {
            flags: vec![
                "--limit-upload 100".into(),
                "--option=sftp.args='-i /k'".into(),
            ],
            command_prefix: Some(v1::CommandPrefix {
                io_nice: 3,
                cpu_nice: 2,
            }),
            ..Default::default()
        };
        assert_eq!(
            repo_flags(&repo, &lookup).unwrap(),
            vec!["--limit-upload", "100", "--option=sftp.args=-i /k"]
        );
        assert_eq!(
            command_prefix(&repo, &|_| true).unwrap(),
            vec!["nice", "-n", "10", "ionice", "-c", "3"]
        );
        assert!(
            command_prefix(&repo, &|t| t != "ionice")
                .unwrap_err()
                .contains("ionice")
        );
        let bad = v1::Repo {
            flags: vec!["--x 'open".into()],
            ..Default::default()
        };
        assert!(repo_flags(&bad, &lookup).is_err());
    }
}
