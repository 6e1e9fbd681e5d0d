//! sftp repositories on restic older than 0.16.1.
//!
//! Backrest's web UI configures an sftp repository with one repo flag,
//! `--option=sftp.args='-oBatchMode=yes -i <key> [-p <port>] -oUserKnownHostsFile=<kh>'`,
//! and Backrest itself adds `-o sftp.args=-oBatchMode=yes` to every sftp
//! command. restic only learned `sftp.args` in 0.16.1; older releases (Debian
//! ships 0.14) stop with "option sftp.args is not known". They do have
//! `sftp.command`, the whole ssh command line, so we rewrite the flag into the
//! command restic ≥ 0.16.1 would have run itself:
//!
//! `ssh <host> [-p <port>] [-l <user>] <sftp.args…> -s sftp`
//!
//! Both options are split by the same restic splitter, so appending the
//! `sftp.args` text verbatim keeps its words exactly as a newer restic would
//! see them.

use std::fmt;

/// Where an sftp repository URI points, as restic reads it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SftpTarget {
    pub host: String,
    pub port: Option<String>,
    pub user: Option<String>,
}

impl SftpTarget {
    /// Parses restic's two sftp URI forms: `sftp:[user@]host:path` and
    /// `sftp://[user@]host[:port]/path`.
    pub fn parse(uri: &str) -> Result<SftpTarget, String> {
        if let Some(rest) = uri.strip_prefix("sftp://") {
            let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err(format!("{uri:?} names no directory"));
            }
            let (user, hostport) = match authority.rsplit_once('@') {
                // A password in the URL is not used by ssh; only the name is.
                Some((info, hp)) => (Some(info.split(':').next().unwrap_or("")), hp),
                None => (None, authority),
            };
            let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
                let (h, after) = v6
                    .split_once(']')
                    .ok_or_else(|| format!("{uri:?} has an unterminated [IPv6] host"))?;
                match after {
                    "" => (h, None),
                    p if p.starts_with(':') => (h, Some(&p[1..])),
                    _ => return Err(format!("{uri:?} has text after its [IPv6] host")),
                }
            } else {
                match hostport.rsplit_once(':') {
                    Some((h, p)) => (h, Some(p)),
                    None => (hostport, None),
                }
            };
            let port = match port {
                None | Some("") => None,
                Some(p) if p.bytes().all(|b| b.is_ascii_digit()) => Some(p.to_string()),
                Some(p) => return Err(format!("{uri:?} has an invalid port {p:?}")),
            };
            if user.is_some_and(|u| u.contains('%')) {
                return Err(format!(
                    "{uri:?} has a percent-encoded user name; write it as sftp:user@host:/path"
                ));
            }
            return SftpTarget::checked(uri, host, port, user);
        }
        if let Some(rest) = uri.strip_prefix("sftp:") {
            let (userhost, _path) = rest
                .split_once(':')
                .ok_or_else(|| format!("{uri:?} has no ':' between host and path"))?;
            let (user, host) = match userhost.rsplit_once('@') {
                Some((u, h)) => (Some(u), h),
                None => (None, userhost),
            };
            return SftpTarget::checked(uri, host, None, user);
        }
        Err(format!("{uri:?} is not an sftp: repository"))
    }

    fn checked(
        uri: &str,
        host: &str,
        port: Option<String>,
        user: Option<&str>,
    ) -> Result<SftpTarget, String> {
        if host.is_empty() {
            return Err(format!("{uri:?} names no host"));
        }
        let user = user.filter(|u| !u.is_empty()).map(str::to_string);
        for word in [Some(host), user.as_deref()].into_iter().flatten() {
            if let Some(c) = word.chars().find(|c| !representable(*c)) {
                return Err(format!(
                    "{word:?} in {uri:?} contains {c:?}, which cannot be passed inside -o sftp.command"
                ));
            }
            if word.starts_with('-') {
                return Err(format!("{word:?} in {uri:?} starts with '-'"));
            }
        }
        Ok(SftpTarget {
            host: host.to_string(),
            port,
            user,
        })
    }

    /// The ssh command restic ≥ 0.16.1 runs for this target with `args`
    /// (already in restic's own quoting).
    pub fn ssh_command(&self, args: &str) -> String {
        let mut cmd = format!("ssh {}", self.host);
        if let Some(p) = &self.port {
            cmd.push_str(&format!(" -p {p}"));
        }
        if let Some(u) = &self.user {
            cmd.push_str(&format!(" -l {u}"));
        }
        if !args.trim().is_empty() {
            cmd.push(' ');
            cmd.push_str(args.trim());
        }
        cmd.push_str(" -s sftp");
        cmd
    }
}

/// Whether `c` survives restic's `-o` parsing (a CSV field, then a
/// whitespace/quote/backslash splitter) as part of one unquoted word.
fn representable(c: char) -> bool {
    !(c.is_whitespace() || c.is_control() || matches!(c, '"' | '\'' | '\\' | ','))
}

/// Why a repo's sftp flags cannot be run by this restic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TranslateError(String);

impl fmt::Display for TranslateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this restic has no -o sftp.args (added in restic 0.16.1) and the repo's sftp.args \
             flag cannot be turned into the equivalent -o sftp.command: {}",
            self.0
        )
    }
}

/// One `-o`/`--option` occurrence among the argv items of the repo flags.
struct OptionUse {
    /// Index of the first argv item and how many items it spans (1 or 2).
    at: usize,
    len: usize,
    key: String,
    value: String,
}

/// Finds every extended option in `flags`, in any spelling pflag accepts:
/// `--option=k=v`, `--option k=v`, `-o k=v`, `-o=k=v`, `-ok=v`.
fn option_uses(flags: &[String]) -> Vec<OptionUse> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < flags.len() {
        let f = flags[i].as_str();
        let (opt, len) = if (f == "-o" || f == "--option") && i + 1 < flags.len() {
            (Some(flags[i + 1].as_str()), 2)
        } else if let Some(v) = f.strip_prefix("--option=") {
            (Some(v), 1)
        } else if let Some(v) = f.strip_prefix("-o=") {
            (Some(v), 1)
        } else if let Some(v) = f.strip_prefix("-o").filter(|v| !v.is_empty()) {
            (Some(v), 1)
        } else {
            (None, 1)
        };
        if let Some((key, value)) = opt.and_then(|o| o.split_once('=')) {
            out.push(OptionUse {
                at: i,
                len,
                key: key.trim().to_string(),
                value: value.to_string(),
            });
        }
        i += len;
    }
    out
}

/// Rewrites `flags` (already `${VAR}`-expanded and shell-split) for a restic
/// without `sftp.args`, for the repository at `uri`.
///
/// * not an sftp repository: unchanged (restic ignores sftp options there);
/// * an `sftp.args` flag: replaced in place by the equivalent `sftp.command`;
/// * neither `sftp.args` nor `sftp.command`: an `sftp.command` with
///   `-oBatchMode=yes` is appended, which is what Backrest's default
///   `-o sftp.args=-oBatchMode=yes` achieves on newer restic (ssh must never
///   wait at a password prompt). If the URI cannot be read, restic reports it.
pub fn sftp_args_as_command(uri: &str, flags: Vec<String>) -> Result<Vec<String>, TranslateError> {
    if !uri.starts_with("sftp:") {
        return Ok(flags);
    }
    let uses = option_uses(&flags);
    let args: Vec<&OptionUse> = uses.iter().filter(|u| u.key == "sftp.args").collect();
    let has_command = uses.iter().any(|u| u.key == "sftp.command");
    match args.as_slice() {
        [] => {
            let mut flags = flags;
            if !has_command && let Ok(target) = SftpTarget::parse(uri) {
                flags.push("-o".into());
                flags.push(format!(
                    "sftp.command={}",
                    target.ssh_command("-oBatchMode=yes")
                ));
            }
            Ok(flags)
        }
        [one] => {
            if has_command {
                return Err(TranslateError(
                    "the repo sets both sftp.command and sftp.args (restic refuses that too)"
                        .into(),
                ));
            }
            if let Some(c) = one.value.chars().find(|c| matches!(c, '"' | ',')) {
                return Err(TranslateError(format!(
                    "the sftp.args value {:?} contains {c:?}, which restic's -o parsing rejects",
                    one.value
                )));
            }
            let target = SftpTarget::parse(uri).map_err(TranslateError)?;
            let mut out = flags[..one.at].to_vec();
            out.push("-o".into());
            out.push(format!("sftp.command={}", target.ssh_command(&one.value)));
            out.extend_from_slice(&flags[one.at + one.len..]);
            Ok(out)
        }
        _ => Err(TranslateError(
            "sftp.args is given more than once (restic refuses that too)".into(),
        )),
    }
}

/// Splits an `sftp.command` / `sftp.args` value as restic does: whitespace
/// and backslashes separate words; a quote (`"` or `'`) also ends the current
/// word and starts a quoted one, kept verbatim up to the same quote.
pub fn restic_split(s: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut quote: Option<char> = None;
    let mut last = '\0';
    for c in s.chars() {
        let separator = if last != '\\' && quote == Some(c) {
            quote = None;
            true
        } else if last != '\\' && quote.is_none() && (c == '"' || c == '\'') {
            quote = Some(c);
            true
        } else {
            last = c;
            quote.is_none() && (c == '\\' || c.is_whitespace())
        };
        if separator {
            words.extend(word.take());
        } else {
            word.get_or_insert_with(String::new).push(c);
        }
    }
    words.extend(word);
    match quote {
        Some(q) => Err(format!("{q}-quoted string not terminated in {s:?}")),
        None if words.is_empty() => Err("command string is empty".into()),
        None => Ok(words),
    }
}

/// The ssh command line restic runs for the repository at `uri` given its
/// final flags (after [`sftp_args_as_command`] on older restic); `None` when
/// it cannot be known.
pub fn ssh_argv(uri: &str, flags: &[String]) -> Option<Vec<String>> {
    let uses = option_uses(flags);
    if let Some(cmd) = uses.iter().find(|u| u.key == "sftp.command") {
        return restic_split(&cmd.value).ok();
    }
    let target = SftpTarget::parse(uri).ok()?;
    let args = uses
        .iter()
        .find(|u| u.key == "sftp.args")
        .map(|u| u.value.as_str())
        .unwrap_or("-oBatchMode=yes");
    restic_split(&target.ssh_command(args)).ok()
}

/// What ssh prints when run as restic runs it, with nothing on stdin (an
/// sftp session that opens ends at once). restic 0.14 may exit before it
/// relays ssh's own words ("Host key verification failed.") and then only
/// says "unable to start the sftp session"; this gets them back.
pub async fn ssh_complaint(argv: &[String], env: &[(String, String)]) -> Option<String> {
    let (program, args) = argv.split_first()?;
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(std::time::Duration::from_secs(20), cmd.output())
        .await
        .ok()?
        .ok()?;
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    (!out.status.success() && !said.is_empty()).then_some(said)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn parses_both_uri_forms() {
        assert_eq!(
            SftpTarget::parse("sftp:alice@example.org:/srv/repo").unwrap(),
            SftpTarget {
                host: "example.org".into(),
                port: None,
                user: Some("alice".into())
            }
        );
        assert_eq!(
            SftpTarget::parse("sftp:backup-host:relative/repo").unwrap(),
            SftpTarget {
                host: "backup-host".into(),
                port: None,
                user: None
            }
        );
        assert_eq!(
            SftpTarget::parse("sftp://bob@10.0.0.5:2222//abs/repo").unwrap(),
            SftpTarget {
                host: "10.0.0.5".into(),
                port: Some("2222".into()),
                user: Some("bob".into())
            }
        );
        assert_eq!(
            SftpTarget::parse("sftp://[::1]:22/home/repo").unwrap(),
            SftpTarget {
                host: "::1".into(),
                port: Some("22".into()),
                user: None
            }
        );
        // A user name with '@' (domain accounts): the host follows the last '@'.
        assert_eq!(
            SftpTarget::parse("sftp:me@corp@nas:/r").unwrap().user,
            Some("me@corp".into())
        );
    }

    #[test]
    fn rejects_what_cannot_become_a_command() {
        for (uri, why) in [
            ("sftp:hostonly", "no ':'"),
            ("sftp://host", "names no directory"),
            ("sftp://host:ssh/r", "invalid port"),
            ("sftp::/path", "names no host"),
            ("sftp:my user@host:/r", "cannot be passed"),
            ("sftp:-oProxyCommand=x:/r", "starts with '-'"),
            ("s3:bucket", "not an sftp"),
        ] {
            let e = SftpTarget::parse(uri).unwrap_err();
            assert!(e.contains(why), "{uri}: {e}");
        }
    }

    #[test]
    fn ui_flag_becomes_the_command_newer_restic_would_run() {
        // The UI's flag after Backrest's quote stripping and shell splitting.
        let flags = v(&[
            "--limit-upload",
            "100",
            "--option=sftp.args=-oBatchMode=yes -i /cfg/.backrest-ssh/id_ed25519_nas -p 2222 -oUserKnownHostsFile=/cfg/.backrest-ssh/known_hosts",
        ]);
        let out = sftp_args_as_command("sftp:root@nas:/srv/r", flags).unwrap();
        assert_eq!(
            out,
            v(&[
                "--limit-upload",
                "100",
                "-o",
                "sftp.command=ssh nas -l root -oBatchMode=yes -i /cfg/.backrest-ssh/id_ed25519_nas -p 2222 -oUserKnownHostsFile=/cfg/.backrest-ssh/known_hosts -s sftp",
            ])
        );
    }

    #[test]
    fn every_option_spelling_is_found() {
        let uri = "sftp://u@h:2200//r";
        let want = "sftp.command=ssh h -p 2200 -l u -i /k -s sftp";
        for flags in [
            v(&["-o", "sftp.args=-i /k"]),
            v(&["--option", "sftp.args=-i /k"]),
            v(&["-o=sftp.args=-i /k"]),
            v(&["-osftp.args=-i /k"]),
            v(&["--option=sftp.args=-i /k"]),
        ] {
            assert_eq!(
                sftp_args_as_command(uri, flags.clone()).unwrap(),
                v(&["-o", want]),
                "{flags:?}"
            );
        }
    }

    #[test]
    fn default_batch_mode_and_untouched_cases() {
        assert_eq!(
            sftp_args_as_command("sftp:u@h:/r", v(&["--no-cache"])).unwrap(),
            v(&[
                "--no-cache",
                "-o",
                "sftp.command=ssh h -l u -oBatchMode=yes -s sftp"
            ])
        );
        // The user's own sftp.command is left as it is.
        let own = v(&["-o", "sftp.command=ssh -F /cfg h -s sftp"]);
        assert_eq!(sftp_args_as_command("sftp:h:/r", own.clone()).unwrap(), own);
        // Other backends ignore sftp options: nothing to do.
        let local = v(&["--option=sftp.args=-i /k"]);
        assert_eq!(
            sftp_args_as_command("/srv/repo", local.clone()).unwrap(),
            local
        );
        // An unreadable URI gets no default; restic explains the URI itself.
        assert_eq!(
            sftp_args_as_command("sftp:nohost", vec![]).unwrap(),
            Vec::<String>::new()
        );
    }

    #[test]
    fn untranslatable_flags_are_explained() {
        let both = v(&["-o", "sftp.args=-i /k", "-o", "sftp.command=ssh h -s sftp"]);
        let e = sftp_args_as_command("sftp:h:/r", both)
            .unwrap_err()
            .to_string();
        assert!(e.contains("both sftp.command and sftp.args"), "{e}");
        assert!(e.contains("0.16.1"), "{e}");

        let twice = v(&["-o", "sftp.args=-i /k", "-o", "sftp.args=-p 2"]);
        let e = sftp_args_as_command("sftp:h:/r", twice)
            .unwrap_err()
            .to_string();
        assert!(e.contains("more than once"), "{e}");

        let quoted = v(&["--option=sftp.args=-i \"/k\""]);
        let e = sftp_args_as_command("sftp:h:/r", quoted)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'\"'"), "{e}");

        let bad_uri = v(&["--option=sftp.args=-i /k"]);
        let e = sftp_args_as_command("sftp:nohost", bad_uri)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no ':' between host and path"), "{e}");
    }

    #[test]
    fn splits_like_restic() {
        assert_eq!(
            restic_split("ssh h -p 22 -i '/my keys/k' x\\y").unwrap(),
            v(&["ssh", "h", "-p", "22", "-i", "/my keys/k", "x", "y"])
        );
        // A quote inside a word ends the word, as in restic.
        assert_eq!(
            restic_split("-oFoo='/a b'").unwrap(),
            v(&["-oFoo=", "/a b"])
        );
        assert!(
            restic_split("ssh 'open")
                .unwrap_err()
                .contains("not terminated")
        );
        assert!(restic_split("  ").is_err());
    }

    #[test]
    fn ssh_argv_is_what_restic_runs() {
        let translated =
            sftp_args_as_command("sftp:u@h:/r", v(&["--option=sftp.args=-i /k -p 2222"])).unwrap();
        let want = v(&[
            "ssh", "h", "-l", "u", "-i", "/k", "-p", "2222", "-s", "sftp",
        ]);
        assert_eq!(ssh_argv("sftp:u@h:/r", &translated).unwrap(), want);
        // Newer restic: the flag itself, or Backrest's default.
        assert_eq!(
            ssh_argv("sftp:u@h:/r", &v(&["--option=sftp.args=-i /k -p 2222"])).unwrap(),
            want
        );
        assert_eq!(
            ssh_argv("sftp://h:2//r", &[]).unwrap(),
            v(&["ssh", "h", "-p", "2", "-oBatchMode=yes", "-s", "sftp"])
        );
        assert_eq!(ssh_argv("sftp:nohost", &[]), None);
    }
}
