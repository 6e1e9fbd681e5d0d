//! Command-line flags and environment variables, as Backrest takes them.
//!
//! Backrest uses Go's `flag` package, so `-data-dir X`, `-data-dir=X`,
//! `--data-dir X` and `--data-dir=X` are all the same flag; we accept each form.

use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Options {
    pub config_file: PathBuf,
    pub data_dir: PathBuf,
    pub bind_address: String,
    pub restic_cmd: Option<PathBuf>,
    pub webui_dir: Option<PathBuf>,
    /// How often GetOperationEvents sends a keep-alive (Backrest: 60s).
    pub keepalive_interval: Duration,
    /// How many tasks may run at once across repositories (one per repo).
    pub max_parallel_tasks: usize,
    /// Origins allowed to call the API from a browser (CORS); empty = none,
    /// `*` = any. Backrest sends CORS headers only in its dev builds.
    pub cors_allow_origin: Vec<String>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Command {
    Run(Options),
    Version,
    Help,
}

pub const USAGE: &str = "\
Usage: backrest-rs [flags]

  -bind-address ADDR   address to listen on (env BACKREST_PORT; default 127.0.0.1:9898;
                       a bare port such as 9898 listens on all interfaces)
  -config-file PATH    config.json path (env BACKREST_CONFIG;
                       default $XDG_CONFIG_HOME/backrest/config.json)
  -data-dir DIR        data directory (env BACKREST_DATA; default $XDG_DATA_HOME/backrest
                       or ~/.local/share/backrest)
  -restic-cmd PATH     restic binary (env BACKREST_RESTIC_COMMAND)
  -webui-dir DIR       serve a built web UI from DIR (env BACKREST_WEBUI_DIR)
  -keepalive-interval D  keep-alive period of event streams, e.g. 60s or 500ms
                       (env BACKREST_KEEPALIVE_INTERVAL; default 60s)
  -max-parallel-tasks N  tasks that may run at once, on different repos
                       (env BACKREST_MAX_PARALLEL_TASKS; default 4; 1 = Backrest's behaviour)
  -cors-allow-origin O  let web pages from origin O (comma-separated list, or *) call the API
                       (env BACKREST_CORS_ALLOW_ORIGIN; default none: same-origin only)
  -version             print the version and exit

Flags may be written with one or two dashes, and as -flag=value or -flag value.
Log verbosity comes from RUST_LOG (e.g. RUST_LOG=debug).";

/// Parses argv (without the program name) against the given environment lookup.
pub fn parse<I, S>(args: I, env: &dyn Fn(&str) -> Option<String>) -> Result<Command, String>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut flags: Vec<(String, Option<String>)> = Vec::new();
    let mut it = args.into_iter().map(Into::into).peekable();
    while let Some(arg) = it.next() {
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            return Err(format!("unexpected argument {arg:?}"));
        };
        if stripped.is_empty() {
            return Err(format!("unexpected argument {arg:?}"));
        }
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (stripped.to_string(), None),
        };
        match name.as_str() {
            "version" | "help" | "h" => {
                if let Some(v) = &inline
                    && !matches!(v.as_str(), "true" | "1" | "false" | "0")
                {
                    return Err(format!("invalid boolean value {v:?} for -{name}"));
                }
                flags.push((name, inline));
            }
            "bind-address" | "config-file" | "data-dir" | "restic-cmd" | "webui-dir"
            | "keepalive-interval" | "max-parallel-tasks" | "cors-allow-origin" => {
                let value = match inline {
                    Some(v) => v,
                    None => it
                        .next()
                        .ok_or_else(|| format!("flag needs an argument: -{name}"))?,
                };
                flags.push((name, Some(value)));
            }
            _ => return Err(format!("flag provided but not defined: -{name}")),
        }
    }
    let get = |n: &str| {
        flags
            .iter()
            .rev()
            .find(|(k, _)| k == n)
            .map(|(_, v)| v.clone())
    };
    let is_true = |n: &str| {
        matches!(get(n), Some(None) | Some(Some(_)))
            && !matches!(get(n), Some(Some(ref v)) if v == "false" || v == "0")
    };
    if is_true("help") || is_true("h") {
        return Ok(Command::Help);
    }
    if is_true("version") {
        return Ok(Command::Version);
    }
    let flag = |n: &str| get(n).flatten().filter(|v| !v.is_empty());
    let nonempty_env = |n: &str| env(n).filter(|v| !v.is_empty());

    let home = nonempty_env("HOME").map(PathBuf::from);
    let config_file = match flag("config-file").or_else(|| nonempty_env("BACKREST_CONFIG")) {
        Some(p) => PathBuf::from(p),
        None => {
            let base = nonempty_env("XDG_CONFIG_HOME")
                .map(PathBuf::from)
                .or_else(|| home.as_ref().map(|h| h.join(".config")));
            base.ok_or("cannot find a config location: set HOME, XDG_CONFIG_HOME or -config-file")?
                .join("backrest")
                .join("config.json")
        }
    };
    let data_dir = match flag("data-dir").or_else(|| nonempty_env("BACKREST_DATA")) {
        Some(p) => PathBuf::from(p),
        None => match nonempty_env("XDG_DATA_HOME") {
            Some(x) => Path::new(&x).join("backrest"),
            None => home
                .as_ref()
                .map(|h| h.join(".local").join("share").join("backrest"))
                .ok_or("cannot find a data location: set HOME, XDG_DATA_HOME or -data-dir")?,
        },
    };
    let bind = flag("bind-address")
        .or_else(|| nonempty_env("BACKREST_PORT"))
        .unwrap_or_else(|| "127.0.0.1:9898".into());
    let bind_address = normalize_bind(&bind);
    let restic_cmd = flag("restic-cmd")
        .or_else(|| nonempty_env("BACKREST_RESTIC_COMMAND"))
        .map(PathBuf::from);
    let webui_dir = flag("webui-dir")
        .or_else(|| nonempty_env("BACKREST_WEBUI_DIR"))
        .map(PathBuf::from);
    let keepalive_interval =
        match flag("keepalive-interval").or_else(|| nonempty_env("BACKREST_KEEPALIVE_INTERVAL")) {
            Some(v) => parse_duration(&v).ok_or_else(|| {
                format!("invalid duration {v:?} for -keepalive-interval (use e.g. 60s, 500ms, 2m)")
            })?,
            None => Duration::from_secs(60),
        };
    let max_parallel_tasks = match flag("max-parallel-tasks")
        .or_else(|| nonempty_env("BACKREST_MAX_PARALLEL_TASKS"))
    {
        Some(v) => v.parse::<usize>().ok().filter(|n| *n >= 1).ok_or_else(|| {
            format!("invalid value {v:?} for -max-parallel-tasks: use a whole number of at least 1")
        })?,
        None => 4,
    };
    let cors_allow_origin = flag("cors-allow-origin")
        .or_else(|| nonempty_env("BACKREST_CORS_ALLOW_ORIGIN"))
        .map(|v| {
            v.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_string())
                .filter(|o| !o.is_empty())
                .collect()
        })
        .unwrap_or_default();
    Ok(Command::Run(Options {
        config_file,
        data_dir,
        bind_address,
        restic_cmd,
        webui_dir,
        keepalive_interval,
        max_parallel_tasks,
        cors_allow_origin,
    }))
}

/// A Go-style duration with one unit: `ms`, `s`, `m` or `h`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit() && c != '.')?;
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    (secs > 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs))
}

/// Go's listener takes `:9898` as "all interfaces"; Backrest also turns a
/// bare `9898` into `:9898`.
pub fn normalize_bind(addr: &str) -> String {
    let addr = if addr.contains(':') {
        addr.to_string()
    } else {
        format!(":{addr}")
    };
    if let Some(port) = addr.strip_prefix(':') {
        format!("0.0.0.0:{port}")
    } else if let Some(rest) = addr.strip_prefix("localhost:") {
        format!("127.0.0.1:{rest}")
    } else {
        addr
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |k| {
            pairs
                .iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        }
    }

    fn run(args: &[&str], env: &dyn Fn(&str) -> Option<String>) -> Options {
        match parse(args.iter().copied(), env).unwrap() {
            Command::Run(o) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn defaults_follow_backrest() {
        let o = run(&[], &env_of(&[("HOME", "/home/u")]));
        assert_eq!(
            o.config_file,
            PathBuf::from("/home/u/.config/backrest/config.json")
        );
        assert_eq!(o.data_dir, PathBuf::from("/home/u/.local/share/backrest"));
        assert_eq!(o.bind_address, "127.0.0.1:9898");
        let o = run(
            &[],
            &env_of(&[
                ("HOME", "/h"),
                ("XDG_CONFIG_HOME", "/c"),
                ("XDG_DATA_HOME", "/d"),
            ]),
        );
        assert_eq!(o.config_file, PathBuf::from("/c/backrest/config.json"));
        assert_eq!(o.data_dir, PathBuf::from("/d/backrest"));
    }

    #[test]
    fn flag_forms_and_env() {
        let env = env_of(&[
            ("HOME", "/h"),
            ("BACKREST_PORT", "9999"),
            ("BACKREST_DATA", "/envdata"),
            ("BACKREST_RESTIC_COMMAND", "/bin/r"),
        ]);
        let o = run(&["-config-file", "/x.json", "--data-dir=/dd"], &env);
        assert_eq!(o.config_file, PathBuf::from("/x.json"));
        assert_eq!(o.data_dir, PathBuf::from("/dd"));
        assert_eq!(o.bind_address, "0.0.0.0:9999");
        assert_eq!(o.restic_cmd, Some(PathBuf::from("/bin/r")));
        let o = run(&["--bind-address", "127.0.0.1:0", "-restic-cmd=/r2"], &env);
        assert_eq!(o.bind_address, "127.0.0.1:0");
        assert_eq!(o.data_dir, PathBuf::from("/envdata"));
        assert_eq!(o.restic_cmd, Some(PathBuf::from("/r2")));
    }

    #[test]
    fn version_help_and_errors() {
        let env = env_of(&[("HOME", "/h")]);
        assert_eq!(parse(["-version"], &env).unwrap(), Command::Version);
        assert_eq!(parse(["--version"], &env).unwrap(), Command::Version);
        assert_eq!(parse(["-h"], &env).unwrap(), Command::Help);
        assert!(parse(["-nope"], &env).unwrap_err().contains("not defined"));
        assert!(
            parse(["-data-dir"], &env)
                .unwrap_err()
                .contains("needs an argument")
        );
        assert!(parse(["stray"], &env).is_err());
        assert!(parse(["-keepalive-interval", "soon"], &env).is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("60s"), Some(Duration::from_secs(60)));
        assert_eq!(parse_duration("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Some(Duration::from_secs(120)));
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("5"), None);
    }
}
