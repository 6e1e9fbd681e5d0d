//! One repository's restic commands. Every call builds the same command line
//! shape as Backrest (`[prefix] restic <subcommand…> <repo flags…> <per-call
//! flags…>`), runs it in its own process group, and turns failures into a
//! classified `ResticError` carrying restic's own words.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use super::env;
use super::error::{ErrorKind, ResticError};
use super::output::{
    self, BackupEvent, BackupSummary, ForgetGroup, LsLine, RepoConfig, Snapshot, Stats,
};
use super::process::{self, Exit, Invocation, Source};
use super::sftp;
use super::{Feature, Restic};
use crate::pb::v1;

/// Where a command's output lines go (the task log). Called once per line.
pub type LogSink<'a> = &'a mut (dyn FnMut(&str) + Send);

/// A do-nothing sink for calls whose output nobody keeps.
pub fn discard() -> impl FnMut(&str) + Send {
    |_: &str| {}
}

#[derive(Clone)]
pub struct RepoClient {
    pub restic: Arc<Restic>,
    pub repo: v1::Repo,
    env: Vec<(String, String)>,
    flags: Vec<String>,
    prefix: Vec<String>,
}

/// Arguments of one backup.
#[derive(Clone, Debug, Default)]
pub struct BackupArgs {
    pub paths: Vec<String>,
    pub excludes: Vec<String>,
    pub iexcludes: Vec<String>,
    pub tags: Vec<String>,
    pub parent: Option<String>,
    /// The plan's `backup_flags`, already shell-split.
    pub extra_flags: Vec<String>,
    pub dry_run: bool,
}

/// What a backup produced.
#[derive(Clone, Debug)]
pub struct BackupResult {
    pub summary: BackupSummary,
    /// restic exit code 3: the snapshot exists but some files were unreadable.
    pub partial: bool,
}

impl RepoClient {
    pub fn new(restic: Arc<Restic>, repo: v1::Repo) -> Result<RepoClient, String> {
        let lookup = |k: &str| std::env::var(k).ok();
        let env = env::repo_env(&repo, &lookup);
        let mut flags = env::repo_flags(&repo, &lookup)?;
        if !restic.supports(Feature::SftpArgs) {
            let uri = env::expand_env(&repo.uri, &lookup);
            flags = sftp::sftp_args_as_command(&uri, flags)
                .map_err(|e| format!("repo {:?}: {e}", repo.id))?;
        }
        let prefix = env::command_prefix(&repo, &env::on_path)?;
        Ok(RepoClient {
            restic,
            repo,
            env,
            flags,
            prefix,
        })
    }

    /// `[prefix] restic <args> <repo flags> <per_call>`.
    pub fn invocation(&self, args: &[&str], per_call: Vec<String>) -> Invocation {
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(self.flags.iter().cloned());
        // Never let ssh stop at a password prompt (restic ≥ 0.16.1 only knows
        // sftp.args; older ones got an sftp.command in `new`). restic refuses
        // sftp.args next to the user's own sftp.command.
        if self.repo.uri.starts_with("sftp:")
            && self.restic.supports(Feature::SftpArgs)
            && !self
                .flags
                .iter()
                .any(|f| f.contains("sftp.args") || f.contains("sftp.command"))
        {
            all.push("-o".into());
            all.push("sftp.args=-oBatchMode=yes".into());
        }
        all.extend(per_call);
        Invocation {
            prefix: self.prefix.clone(),
            program: self.restic.bin.clone(),
            args: all,
            env: self.env.clone(),
            env_remove: vec![],
            cwd: None,
        }
    }

    /// Runs `inv`, sending every line to `log` (prefixed) and to `on_line`.
    /// Returns the exit and the captured output (for errors).
    async fn exec(
        &self,
        inv: &Invocation,
        cancel: &CancellationToken,
        log: LogSink<'_>,
        mut on_line: impl FnMut(Source, &str),
    ) -> Result<(Exit, String), ResticError> {
        let display = inv.display();
        log(&format!("command: {display}"));
        let mut captured = String::new();
        let exit = process::run(inv, cancel, |src, line| {
            log(&format!("[restic] {line}"));
            // Keep text for error messages; JSON progress lines are noise there.
            if !(src == Source::Stdout && line.starts_with("{\"message_type\":\"status\""))
                && captured.len() < 64 * 1024
            {
                captured.push_str(line);
                captured.push('\n');
            }
            on_line(src, line);
        })
        .await
        .map_err(|e| ResticError::new(ErrorKind::Spawn, &display, None, &e.to_string()))?;
        if exit.cancelled {
            return Err(ResticError::new(
                ErrorKind::Cancelled,
                &display,
                exit.code,
                "",
            ));
        }
        Ok((exit, captured))
    }

    /// The error for a failed run. restic 0.14 can exit before it relays
    /// ssh's complaint and then only says "unable to start the sftp session":
    /// ssh is asked directly, so an untrusted host key is still recognised.
    async fn failure(&self, inv: &Invocation, code: Option<i32>, captured: &str) -> ResticError {
        let mut output = captured.to_string();
        if captured.contains("unable to start the sftp session")
            && !captured.contains("subprocess ssh:")
        {
            let uri = self
                .env
                .iter()
                .find(|(k, _)| k == "RESTIC_REPOSITORY")
                .map(|(_, v)| v.as_str())
                .unwrap_or(&self.repo.uri);
            if let Some(argv) = sftp::ssh_argv(uri, &self.flags)
                && let Some(said) = sftp::ssh_complaint(&argv, &self.env).await
            {
                output.push_str(&format!("ssh: {said}\n"));
            }
        }
        ResticError::classify(&inv.display(), code, &output)
    }

    /// Runs a command that must exit 0 and returns its stdout.
    async fn run_stdout(
        &self,
        args: &[&str],
        per_call: Vec<String>,
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<String, ResticError> {
        let inv = self.invocation(args, per_call);
        let mut stdout = String::new();
        let (exit, captured) = self
            .exec(&inv, cancel, log, |src, line| {
                if src == Source::Stdout {
                    stdout.push_str(line);
                    stdout.push('\n');
                }
            })
            .await?;
        if !exit.success() {
            return Err(self.failure(&inv, exit.code, &captured).await);
        }
        Ok(stdout)
    }

    fn bad_output(&self, args: &[&str], msg: String) -> ResticError {
        ResticError::new(
            ErrorKind::BadOutput,
            &self.invocation(args, vec![]).display(),
            Some(0),
            &msg,
        )
    }

    /// `restic cat config`: the repository's id. Fails with RepoNotFound when
    /// nothing is there.
    pub async fn cat_config(
        &self,
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<RepoConfig, ResticError> {
        let args = ["cat", "config", "--no-lock"];
        let out = self.run_stdout(&args, vec![], cancel, log).await?;
        output::parse_json_output::<RepoConfig>(&out).map_err(|e| self.bad_output(&args, e))
    }

    /// Whether a repository exists at the URI (other failures are errors).
    pub async fn exists(
        &self,
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<bool, ResticError> {
        match self.cat_config(cancel, log).await {
            Ok(_) => Ok(true),
            Err(e) if e.kind == ErrorKind::RepoNotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// `restic init`, then `cat config` for the new repository's id.
    pub async fn init(
        &self,
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<RepoConfig, ResticError> {
        let args: &[&str] = if self.restic.supports(Feature::InitJson) {
            &["init", "--json"]
        } else {
            &["init"]
        };
        self.run_stdout(args, vec![], cancel, &mut *log).await?;
        self.cat_config(cancel, log).await
    }

    /// `restic snapshots --json`, optionally filtered by a tag expression
    /// (`plan:x,created-by:y` = both tags), sorted by time.
    pub async fn snapshots(
        &self,
        tag_filter: Option<&str>,
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<Vec<Snapshot>, ResticError> {
        let args = ["snapshots", "--json", "--no-lock"];
        let per_call = tag_filter
            .map(|t| vec!["--tag".to_string(), t.to_string()])
            .unwrap_or_default();
        let out = self.run_stdout(&args, per_call, cancel, log).await?;
        let mut snaps: Vec<Snapshot> =
            output::parse_json_output(&out).map_err(|e| self.bad_output(&args, e))?;
        snaps.sort_by_key(|s| s.unix_time_ms());
        Ok(snaps)
    }

    /// `restic backup --json`. `on_event` sees every parsed line (progress,
    /// errors, the summary). Exit code 3 is a partial success.
    pub async fn backup(
        &self,
        a: &BackupArgs,
        cancel: &CancellationToken,
        log: LogSink<'_>,
        mut on_event: impl FnMut(&BackupEvent),
    ) -> Result<BackupResult, ResticError> {
        let mut args: Vec<&str> = vec!["backup", "--json"];
        args.extend(a.paths.iter().map(String::as_str));
        let mut per_call = vec!["--exclude-caches".to_string()];
        for t in &a.tags {
            per_call.extend(["--tag".into(), t.clone()]);
        }
        for e in &a.excludes {
            per_call.extend(["--exclude".into(), e.clone()]);
        }
        for e in &a.iexcludes {
            per_call.extend(["--iexclude".into(), e.clone()]);
        }
        if let Some(p) = &a.parent {
            per_call.extend(["--parent".into(), p.clone()]);
        }
        per_call.extend(a.extra_flags.iter().cloned());
        if a.dry_run {
            per_call.push("--dry-run".into());
        }
        let mut inv = self.invocation(&args, per_call);
        inv.env.push(("RESTIC_PROGRESS_FPS".into(), "2".into()));
        let mut summary: Option<BackupSummary> = None;
        let mut exit_error: Option<String> = None;
        let (exit, captured) = self
            .exec(&inv, cancel, log, |_, line| {
                if !line.starts_with('{') {
                    return;
                }
                if let Ok(ev) = serde_json::from_str::<BackupEvent>(line) {
                    match &ev {
                        BackupEvent::Summary(s) => summary = Some(s.clone()),
                        BackupEvent::ExitError(e) => exit_error = Some(e.message.clone()),
                        _ => {}
                    }
                    on_event(&ev);
                }
            })
            .await?;
        let partial = exit.code == Some(3);
        if !exit.success() && !partial {
            let mut e = self.failure(&inv, exit.code, &captured).await;
            if let Some(msg) = exit_error {
                e.output = super::error::trim_output(&msg);
            }
            return Err(e);
        }
        let summary = summary.ok_or_else(|| {
            ResticError::new(
                ErrorKind::BadOutput,
                &inv.display(),
                exit.code,
                "restic printed no backup summary",
            )
        })?;
        Ok(BackupResult { summary, partial })
    }

    /// The full id of the one snapshot file starting with `short` in a local
    /// repository's `snapshots/` folder; `None` for remote repositories, or
    /// when the folder can't be read or the prefix is ambiguous.
    async fn local_snapshot_file(&self, short: &str) -> Option<String> {
        let uri = self
            .repo
            .uri
            .strip_prefix("local:")
            .unwrap_or(&self.repo.uri);
        let dir = std::path::Path::new(uri);
        if !dir.is_absolute() || short.is_empty() || !short.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let mut entries = tokio::fs::read_dir(dir.join("snapshots")).await.ok()?;
        let mut found = None;
        while let Ok(Some(e)) = entries.next_entry().await {
            let name = e.file_name();
            let Some(name) = name.to_str() else { continue };
            if name.len() == 64
                && name.starts_with(short)
                && name.bytes().all(|b| b.is_ascii_hexdigit())
            {
                if found.is_some() {
                    return None;
                }
                found = Some(name.to_string());
            }
        }
        found
    }

    /// Resolves a (possibly short) snapshot id to the full 64-character id.
    pub async fn resolve_snapshot_id(
        &self,
        short: &str,
        cancel: &CancellationToken,
    ) -> Result<String, ResticError> {
        if short.len() == 64 {
            return Ok(short.to_string());
        }
        // A local repository names each snapshot file by its id: reading the
        // folder saves a restic process and its repository open.
        if let Some(id) = self.local_snapshot_file(short).await {
            return Ok(id);
        }
        let args = ["snapshots", "--json", "--no-lock", short];
        let out = self
            .run_stdout(&args, vec![], cancel, &mut discard())
            .await?;
        let snaps: Vec<Snapshot> =
            output::parse_json_output(&out).map_err(|e| self.bad_output(&args, e))?;
        snaps
            .into_iter()
            .find(|s| s.id.starts_with(short))
            .map(|s| s.id)
            .ok_or_else(|| {
                self.bad_output(&args, format!("snapshot {short} not found after backup"))
            })
    }

    /// `restic forget --json` with keep flags (from a retention policy).
    pub async fn forget(
        &self,
        keep_flags: Vec<String>,
        per_call: Vec<String>,
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<Vec<ForgetGroup>, ResticError> {
        let mut args: Vec<&str> = vec!["forget", "--json"];
        args.extend(keep_flags.iter().map(String::as_str));
        let out = self.run_stdout(&args, per_call, cancel, log).await?;
        if out.trim().is_empty() {
            return Ok(vec![]);
        }
        // `forget --prune` appends text after the JSON line: parse line one.
        let first = out
            .lines()
            .find(|l| l.trim_start().starts_with('['))
            .unwrap_or("[]");
        output::parse_json_output(first).map_err(|e| self.bad_output(&args, e))
    }

    /// `restic forget <ids>`.
    pub async fn forget_snapshots(
        &self,
        ids: &[String],
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<(), ResticError> {
        let mut args: Vec<&str> = vec!["forget"];
        args.extend(ids.iter().map(String::as_str));
        self.run_stdout(&args, vec![], cancel, log)
            .await
            .map(|_| ())
    }

    /// `restic prune`; returns its text output.
    pub async fn prune(
        &self,
        max_unused: Option<String>,
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<String, ResticError> {
        let per_call = max_unused
            .map(|m| vec!["--max-unused".to_string(), m])
            .unwrap_or_default();
        self.run_stdout(&["prune"], per_call, cancel, log).await
    }

    /// `restic check`, optionally reading a percentage of the data.
    pub async fn check(
        &self,
        read_data_percent: Option<f64>,
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<String, ResticError> {
        let per_call = read_data_percent
            .filter(|p| *p > 0.0)
            .map(|p| vec![format!("--read-data-subset={}%", trim_float(p))])
            .unwrap_or_default();
        self.run_stdout(&["check"], per_call, cancel, log).await
    }

    /// `restic stats --json --mode=raw-data`.
    pub async fn stats(
        &self,
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<Stats, ResticError> {
        let args = ["stats", "--json", "--mode=raw-data", "--no-lock"];
        let out = self.run_stdout(&args, vec![], cancel, log).await?;
        output::parse_json_output(&out).map_err(|e| self.bad_output(&args, e))
    }

    /// `restic unlock` (stale locks only).
    pub async fn unlock(
        &self,
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<(), ResticError> {
        self.run_stdout(&["unlock"], vec![], cancel, log)
            .await
            .map(|_| ())
    }

    /// `restic ls --json <snapshot> <path>`: the nodes listed.
    pub async fn ls(
        &self,
        snapshot: &str,
        path: &str,
        cancel: &CancellationToken,
    ) -> Result<Vec<LsLine>, ResticError> {
        let args = ["ls", "--json", "--no-lock", snapshot, path];
        let out = self
            .run_stdout(&args, vec![], cancel, &mut discard())
            .await?;
        let mut nodes = Vec::new();
        for line in out.lines().filter(|l| !l.trim().is_empty()) {
            let parsed: LsLine = serde_json::from_str(line)
                .map_err(|e| self.bad_output(&args, format!("error parsing JSON: {e}")))?;
            if parsed.is_node() {
                nodes.push(parsed);
            }
        }
        Ok(nodes)
    }

    /// Starts `restic dump --archive tar <snapshot> <path>` (read-only, so
    /// `--no-lock` like `ls`): a file comes out as its bytes, a folder as a
    /// tar of everything below it. Needs restic ≥ 0.12 for `--archive`.
    pub fn dump_tar(&self, snapshot: &str, path: &str) -> Result<super::dump::Dump, ResticError> {
        let args = ["dump", "--no-lock", "--archive", "tar", snapshot, path];
        let inv = self.invocation(&args, vec![]);
        if !self.restic.supports(Feature::DumpArchive) {
            return Err(ResticError::new(
                ErrorKind::Failed,
                &inv.display(),
                None,
                &self.restic.lacks(
                    Feature::DumpArchive,
                    "downloading from a snapshot (`dump --archive`)",
                ),
            ));
        }
        super::dump::Dump::start(&inv)
    }

    /// `restic restore`. With restic ≥ 0.16 progress lines reach `on_line`.
    pub async fn restore(
        &self,
        snapshot: &str,
        path: &str,
        target: &str,
        cancel: &CancellationToken,
        log: LogSink<'_>,
        on_line: impl FnMut(Source, &str),
    ) -> Result<(), ResticError> {
        let json = self.restic.supports(Feature::RestoreProgress);
        let mut args: Vec<String> = vec!["restore".into()];
        if json {
            args.push("--json".into());
        }
        let path = path.trim_end_matches('/');
        let per_call =
            if self.restic.supports(Feature::RestoreSubfolder) && !path.is_empty() && path != "/" {
                // Restore the folder's content into the target, as Backrest does.
                let (dir, base) = match path.rsplit_once('/') {
                    Some((d, b)) => (if d.is_empty() { "/" } else { d }, b),
                    None => ("/", path),
                };
                args.push(format!("{snapshot}:{dir}"));
                vec![
                    "--target".into(),
                    target.into(),
                    "--include".into(),
                    format!("/{base}"),
                ]
            } else {
                args.push(snapshot.into());
                if path.is_empty() || path == "/" {
                    vec!["--target".into(), target.into()]
                } else {
                    vec![
                        "--target".into(),
                        target.into(),
                        "--include".into(),
                        path.into(),
                    ]
                }
            };
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let mut inv = self.invocation(&arg_refs, per_call);
        inv.env.push(("RESTIC_PROGRESS_FPS".into(), "2".into()));
        let (exit, captured) = self.exec(&inv, cancel, log, on_line).await?;
        if !exit.success() {
            return Err(self.failure(&inv, exit.code, &captured).await);
        }
        Ok(())
    }

    /// Runs user-given restic arguments (RunCommand). Output goes to `log`.
    pub async fn run_command(
        &self,
        user_args: &[String],
        cancel: &CancellationToken,
        log: LogSink<'_>,
    ) -> Result<(), ResticError> {
        let args: Vec<&str> = user_args.iter().map(String::as_str).collect();
        let inv = self.invocation(&args, vec![]);
        let (exit, captured) = self.exec(&inv, cancel, log, |_, _| {}).await?;
        if !exit.success() {
            return Err(self.failure(&inv, exit.code, &captured).await);
        }
        Ok(())
    }
}

fn trim_float(p: f64) -> String {
    let s = format!("{p:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// Keep flags for a retention policy, in Backrest's order.
pub fn keep_flags(policy: &v1::RetentionPolicy) -> Result<Vec<String>, String> {
    use v1::retention_policy::Policy;
    let mut flags = Vec::new();
    let mut push = |name: &str, n: i32| {
        if n > 0 {
            flags.push(format!("--keep-{name}"));
            flags.push(n.to_string());
        }
    };
    match &policy.policy {
        Some(Policy::PolicyKeepLastN(n)) => push("last", *n),
        Some(Policy::PolicyTimeBucketed(b)) => {
            push("last", b.keep_last_n);
            push("hourly", b.hourly);
            push("daily", b.daily);
            push("weekly", b.weekly);
            push("monthly", b.monthly);
            push("yearly", b.yearly);
        }
        Some(Policy::PolicyKeepAll(_)) => return Ok(vec![]),
        None => return Err("retention policy must specify a policy".into()),
    }
    Ok(flags)
}
