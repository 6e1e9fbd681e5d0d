//! SetupSftp: an ssh key pair for an SFTP host, its host key in a
//! known_hosts file, and (with a password) the public key installed on the
//! host. Also the flag clean-up AddRepo/CheckRepoExists apply to the UI's
//! `--option=sftp.args='…'` flag.
//!
//! Files live in `<config dir>/.backrest-ssh/` (0700), named as Backrest names
//! them: `id_ed25519_<host>` (0600), `id_ed25519_<host>.pub` (0644) and
//! `known_hosts` (0600, hashed entries from `ssh-keyscan -H`).

use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::SigningKey;
use tokio::process::Command;

use crate::connect::ConnectError;
use crate::pb::v1;
use crate::server::AppState;

/// The folder next to the config file that holds SetupSftp's files.
pub const SSH_DIR_NAME: &str = ".backrest-ssh";

/// ssh-keyscan and the key installation talk to the network: bounded.
const KEYSCAN_LIMIT: Duration = Duration::from_secs(30);
const INSTALL_LIMIT: Duration = Duration::from_secs(60);

/// One SetupSftp at a time: two calls for one host must not both create a key.
static SETUP_LOCK: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub async fn setup_sftp(
    state: &AppState,
    req: v1::SetupSftpRequest,
) -> Result<v1::SetupSftpResponse, ConnectError> {
    if cfg!(windows) {
        return Err(ConnectError::unimplemented(
            "automated SFTP setup is not supported on Windows",
        ));
    }
    let host = validate_host(&req.host)?;
    let port = validate_port(&req.port)?;
    let password = req.password.as_deref().filter(|p| !p.is_empty());
    let user = match password {
        Some(_) => Some(validate_user(&req.username)?),
        None => None,
    };

    let ssh_dir = ssh_dir(state.config.path());
    let _one_at_a_time = SETUP_LOCK.lock().await;

    let dir = ssh_dir.clone();
    let host2 = host.clone();
    let (public_key, key_path) = tokio::task::spawn_blocking(move || ensure_key(&dir, &host2))
        .await
        .map_err(|e| ConnectError::internal(format!("key generation stopped: {e}")))?
        .map_err(|e| ConnectError::unknown(format!("failed to generate key: {e}")))?;

    let known_hosts_path = ssh_dir.join("known_hosts");
    let trusted_in = match add_host_key(&host, port, &ssh_dir).await {
        Ok(file) => Ok(file),
        Err(e) => {
            tracing::warn!("SFTP host key scan for {host} failed: {e}");
            Err(format!(
                "Could not scan host key ({e}). Add the host key to known_hosts manually or \
                 ensure the host is reachable."
            ))
        }
    };

    if let (Some(password), Some(user)) = (password, user) {
        let known_hosts = trusted_in.as_ref().map_err(|warning| {
            ConnectError::failed_precondition(format!(
                "cannot install the key on {user}@{host} without trusting its host key: {warning}"
            ))
        })?;
        install_key(&host, port, &user, password, &public_key, known_hosts).await?;
        tracing::info!(
            "installed the SFTP key {} on {user}@{host}",
            key_path.display()
        );
    }

    Ok(v1::SetupSftpResponse {
        public_key,
        key_path: key_path.to_string_lossy().into_owned(),
        known_hosts_path: known_hosts_path.to_string_lossy().into_owned(),
        error: trusted_in.err().unwrap_or_default(),
    })
}

/// The UI wraps paths in its sftp.args flag in double quotes, which restic's
/// `-o` parser rejects ("bare \" in non-quoted-field"), and older UIs wrote
/// `-i @<path>`. Both are cleaned before the repo is used or saved, as
/// Backrest does on AddRepo and CheckRepoExists.
pub fn sanitize_sftp_flags(repo: &mut v1::Repo) {
    for flag in &mut repo.flags {
        if flag.starts_with("--option=sftp.args=") {
            *flag = flag.replace("-i @", "-i ").replace('"', "");
        }
    }
}

/// `<directory of the config file>/.backrest-ssh`.
pub fn ssh_dir(config_file: &Path) -> PathBuf {
    config_file
        .parent()
        .unwrap_or(Path::new("."))
        .join(SSH_DIR_NAME)
}

fn validate_host(host: &str) -> Result<String, ConnectError> {
    if host.is_empty() {
        return Err(ConnectError::invalid_argument("host is required"));
    }
    if host.starts_with('-') {
        return Err(ConnectError::invalid_argument(format!(
            "host {host:?} must not start with '-'"
        )));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | ':' | '%');
    if let Some(c) = host.chars().find(|c| !ok(*c)) {
        return Err(ConnectError::invalid_argument(format!(
            "host {host:?} is not a host name or IP address (it contains {c:?})"
        )));
    }
    Ok(host.to_string())
}

fn validate_port(port: &str) -> Result<u16, ConnectError> {
    if port.is_empty() {
        return Ok(22);
    }
    match port.parse::<u16>() {
        Ok(p) if p >= 1 && port.bytes().all(|b| b.is_ascii_digit()) => Ok(p),
        _ => Err(ConnectError::invalid_argument(format!(
            "port {port:?} is not a number between 1 and 65535"
        ))),
    }
}

fn validate_user(user: &str) -> Result<String, ConnectError> {
    if user.is_empty() {
        return Err(ConnectError::invalid_argument(
            "username is required to install the key with a password",
        ));
    }
    if user.starts_with('-') {
        return Err(ConnectError::invalid_argument(format!(
            "username {user:?} must not start with '-'"
        )));
    }
    let ok = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@' | '$');
    if let Some(c) = user.chars().find(|c| !ok(*c)) {
        return Err(ConnectError::invalid_argument(format!(
            "username {user:?} contains {c:?}, which is not allowed"
        )));
    }
    Ok(user.to_string())
}

/// `id_ed25519_<host>` with every character outside `[A-Za-z0-9.-]` as `_`.
pub fn key_file_name(host: &str) -> String {
    let safe: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("id_ed25519_{safe}")
}

/// The host's key pair: reused when the private key exists, else generated.
/// Returns the public key file's text and the private key's path.
fn ensure_key(ssh_dir: &Path, host: &str) -> Result<(String, PathBuf), String> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(ssh_dir)
        .map_err(|e| format!("failed to create {}: {e}", ssh_dir.display()))?;
    let key_path = ssh_dir.join(key_file_name(host));
    let pub_path = with_suffix(&key_path, ".pub");
    if key_path.exists() {
        let public = std::fs::read_to_string(&pub_path)
            .map_err(|e| format!("failed to read public key {}: {e}", pub_path.display()))?;
        return Ok((public, key_path));
    }

    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| format!("cannot read random bytes: {e}"))?;
    let mut check = [0u8; 4];
    getrandom::fill(&mut check).map_err(|e| format!("cannot read random bytes: {e}"))?;
    let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
    let private_pem = openssh_private_key(&seed, &public, u32::from_be_bytes(check));
    let public_line = authorized_key_line(&public);

    // The public half first, and the private one by rename: a key file that
    // exists is always complete and always has its .pub.
    write_file(&pub_path, public_line.as_bytes(), 0o644)?;
    let tmp = with_suffix(&key_path, ".tmp");
    let _ = std::fs::remove_file(&tmp);
    write_file(&tmp, private_pem.as_bytes(), 0o600)?;
    std::fs::rename(&tmp, &key_path)
        .map_err(|e| format!("failed to write private key {}: {e}", key_path.display()))?;
    tracing::info!("generated SFTP key {}", key_path.display());
    Ok((public_line, key_path))
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn write_file(path: &Path, data: &[u8], mode: u32) -> Result<(), String> {
    let res = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(path)
        .and_then(|mut f| {
            f.write_all(data)?;
            // The mode above only applies to a new file.
            f.set_permissions(std::fs::Permissions::from_mode(mode))
        });
    res.map_err(|e| format!("failed to write {}: {e}", path.display()))
}

/// An SSH wire-format string: u32 big-endian length, then the bytes.
fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

fn public_key_blob(public: &[u8; 32]) -> Vec<u8> {
    let mut blob = Vec::new();
    put_string(&mut blob, b"ssh-ed25519");
    put_string(&mut blob, public);
    blob
}

/// `ssh-ed25519 AAAA…` and a newline, as authorized_keys wants it.
pub fn authorized_key_line(public: &[u8; 32]) -> String {
    format!("ssh-ed25519 {}\n", B64.encode(public_key_blob(public)))
}

/// An unencrypted private key in OpenSSH's own format
/// (`-----BEGIN OPENSSH PRIVATE KEY-----`, PROTOCOL.key in OpenSSH).
pub fn openssh_private_key(seed: &[u8; 32], public: &[u8; 32], check: u32) -> String {
    let mut private = Vec::new();
    // The same random number twice: OpenSSH's "decrypted correctly" check.
    private.extend_from_slice(&check.to_be_bytes());
    private.extend_from_slice(&check.to_be_bytes());
    put_string(&mut private, b"ssh-ed25519");
    put_string(&mut private, public);
    let mut keypair = seed.to_vec();
    keypair.extend_from_slice(public);
    put_string(&mut private, &keypair);
    put_string(&mut private, b""); // comment
    let mut pad = 1u8;
    while private.len() % 8 != 0 {
        private.push(pad);
        pad += 1;
    }

    let mut blob = b"openssh-key-v1\0".to_vec();
    put_string(&mut blob, b"none"); // cipher
    put_string(&mut blob, b"none"); // kdf
    put_string(&mut blob, b""); // kdf options
    blob.extend_from_slice(&1u32.to_be_bytes()); // number of keys
    put_string(&mut blob, &public_key_blob(public));
    put_string(&mut blob, &private);

    let encoded = B64.encode(&blob);
    let mut pem = String::from("-----BEGIN OPENSSH PRIVATE KEY-----\n");
    for line in encoded.as_bytes().chunks(70) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str("-----END OPENSSH PRIVATE KEY-----\n");
    pem
}

/// What a finished helper process said.
struct Ran {
    success: bool,
    code: Option<i32>,
    stdout: Vec<u8>,
    stderr: String,
}

/// Runs a helper (ssh-keygen, ssh-keyscan, ssh) with a time limit, feeding
/// `input` on stdin. The child dies with the future (timeout, cancelled RPC).
async fn run(mut cmd: Command, input: Option<&[u8]>, limit: Duration) -> Result<Ran, String> {
    let program = cmd.as_std().get_program().to_string_lossy().into_owned();
    cmd.stdin(if input.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => {
            format!("{program} is not installed (Debian/Ubuntu package openssh-client)")
        }
        _ => format!("cannot run {program}: {e}"),
    })?;
    if let (Some(data), Some(mut stdin)) = (input, child.stdin.take()) {
        use tokio::io::AsyncWriteExt as _;
        // A few hundred bytes: fits the pipe, so no reader is needed first.
        stdin
            .write_all(data)
            .await
            .map_err(|e| format!("cannot write to {program}: {e}"))?;
    }
    match tokio::time::timeout(limit, child.wait_with_output()).await {
        Ok(Ok(out)) => Ok(Ran {
            success: out.status.success(),
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        }),
        Ok(Err(e)) => Err(format!("{program} failed: {e}")),
        Err(_) => Err(format!(
            "{program} did not finish within {}s",
            limit.as_secs()
        )),
    }
}

/// Whether `ssh-keygen -F <spec> -f <file>` finds the host in `file`.
async fn known_in(spec: &str, file: &Path) -> bool {
    if !file.is_file() {
        return false;
    }
    let mut cmd = Command::new("ssh-keygen");
    cmd.arg("-F").arg(spec).arg("-f").arg(file);
    matches!(run(cmd, None, KEYSCAN_LIMIT).await, Ok(r) if r.success)
}

/// Makes sure the host's key is trusted: already in our known_hosts or the
/// user's `~/.ssh/known_hosts`, else scanned into ours. Returns the file
/// that trusts it.
async fn add_host_key(host: &str, port: u16, ssh_dir: &Path) -> Result<PathBuf, String> {
    let spec = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let ours = ssh_dir.join("known_hosts");
    if known_in(&spec, &ours).await {
        return Ok(ours);
    }
    if let Some(home) = std::env::var_os("HOME") {
        let users = Path::new(&home).join(".ssh").join("known_hosts");
        if users != ours && known_in(&spec, &users).await {
            return Ok(users);
        }
    }

    let mut cmd = Command::new("ssh-keyscan");
    cmd.args(["-H", "-T", "10", "-p", &port.to_string(), host]);
    let scan = run(cmd, None, KEYSCAN_LIMIT).await?;
    if !scan.success {
        return Err(format!(
            "ssh-keyscan for host {host} failed with exit code {} ({})",
            scan.code.unwrap_or(-1),
            scan.stderr
        ));
    }
    if scan.stdout.iter().all(u8::is_ascii_whitespace) {
        let why = if scan.stderr.is_empty() {
            "nothing answered".to_string()
        } else {
            scan.stderr
        };
        return Err(format!(
            "ssh-keyscan for host {host} port {port} returned no keys ({why})"
        ));
    }
    let appended = std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .open(&ours)
        .and_then(|mut f| f.write_all(&scan.stdout));
    appended.map_err(|e| format!("failed to write {}: {e}", ours.display()))?;
    tracing::info!("added SFTP host {spec} to {}", ours.display());
    Ok(ours)
}

/// Run by the remote user's shell through `sh -c '…'` (so it must hold no
/// single quote). Reads the key line from stdin; creates ~/.ssh (0700) and
/// authorized_keys (0600) when missing, leaves existing modes alone, and
/// appends the key only if that exact line is not there yet.
const INSTALL_SCRIPT: &str = r#"umask 077
key=$(cat)
[ -n "$key" ] || { echo "no key received" >&2; exit 3; }
cd || exit 4
[ -d .ssh ] || mkdir .ssh || exit 5
f=.ssh/authorized_keys
if [ -f "$f" ] && grep -qxF "$key" "$f"; then echo backrest-key-present; exit 0; fi
if [ -s "$f" ] && [ -n "$(tail -c 1 "$f")" ]; then echo >> "$f" || exit 6; fi
printf "%s\n" "$key" >> "$f" || exit 6
echo backrest-key-installed"#;

/// Prints the password it finds in the environment: ssh runs it instead of
/// prompting, so the password never appears in an argument list.
const ASKPASS_SCRIPT: &str = "#!/bin/sh\nprintf '%s\\n' \"$BACKREST_SFTP_PASSWORD\"\n";

/// A private temporary folder, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Result<TempDir, String> {
        let mut suffix = [0u8; 8];
        getrandom::fill(&mut suffix).map_err(|e| format!("cannot read random bytes: {e}"))?;
        let path = std::env::temp_dir().join(format!("backrest-askpass-{}", hex::encode(suffix)));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(TempDir(path))
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Logs in with the password (ssh + SSH_ASKPASS, host key checked against
/// `known_hosts`) and adds the public key to the user's authorized_keys.
async fn install_key(
    host: &str,
    port: u16,
    user: &str,
    password: &str,
    public_key: &str,
    known_hosts: &Path,
) -> Result<(), ConnectError> {
    let tmp = TempDir::new().map_err(ConnectError::internal)?;
    let askpass = tmp.0.join("askpass");
    write_file(&askpass, ASKPASS_SCRIPT.as_bytes(), 0o700).map_err(ConnectError::internal)?;

    let mut cmd = Command::new("ssh");
    cmd.arg("-oBatchMode=no")
        .arg("-oStrictHostKeyChecking=yes")
        .arg(format!("-oUserKnownHostsFile={}", known_hosts.display()))
        .arg("-oPubkeyAuthentication=no")
        .arg("-oPreferredAuthentications=password,keyboard-interactive")
        .arg("-oNumberOfPasswordPrompts=1")
        .arg("-oConnectTimeout=15")
        .arg("-oLogLevel=ERROR")
        .arg("-p")
        .arg(port.to_string())
        .arg("-l")
        .arg(user)
        .arg(host)
        .arg(format!("sh -c '{INSTALL_SCRIPT}'"))
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("BACKREST_SFTP_PASSWORD", password)
        // Without a terminal of its own ssh cannot fall back to prompting.
        .process_group(0);
    let target = format!("{user}@{host}");
    let key_line = format!("{}\n", public_key.trim());
    let ran = run(cmd, Some(key_line.as_bytes()), INSTALL_LIMIT)
        .await
        .map_err(|e| ConnectError::unavailable(format!("cannot connect to {target}: {e}")))?;
    if ran.success {
        return Ok(());
    }
    let lower = ran.stderr.to_ascii_lowercase();
    Err(if ran.code == Some(255) {
        if lower.contains("permission denied") {
            ConnectError::permission_denied(format!(
                "authentication failed for {target}: the password was not accepted"
            ))
        } else if lower.contains("host key verification failed")
            || lower.contains("remote host identification has changed")
        {
            ConnectError::failed_precondition(format!(
                "host key verification failed for {host}: the key it presented does not match {}",
                known_hosts.display()
            ))
        } else {
            ConnectError::unavailable(format!(
                "cannot connect to {target} port {port}: {}",
                ran.stderr
            ))
        }
    } else {
        ConnectError::unknown(format!(
            "logged in to {target} but could not add the key to ~/.ssh/authorized_keys \
             (exit code {}: {}); add the public key there yourself",
            ran.code.unwrap_or(-1),
            ran.stderr
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get_string<'a>(b: &mut &'a [u8]) -> &'a [u8] {
        let n = u32::from_be_bytes(b[..4].try_into().unwrap()) as usize;
        let s = &b[4..4 + n];
        *b = &b[4 + n..];
        s
    }

    #[test]
    fn private_key_has_openssh_layout() {
        let seed = [7u8; 32];
        let public = SigningKey::from_bytes(&seed).verifying_key().to_bytes();
        let pem = openssh_private_key(&seed, &public, 0xdead_beef);
        assert!(pem.starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        assert!(pem.ends_with("\n-----END OPENSSH PRIVATE KEY-----\n"));
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        assert!(pem.lines().all(|l| l.len() <= 70));
        let raw = B64.decode(body).unwrap();
        let mut b = raw.strip_prefix(b"openssh-key-v1\0".as_slice()).unwrap();
        assert_eq!(get_string(&mut b), b"none");
        assert_eq!(get_string(&mut b), b"none");
        assert_eq!(get_string(&mut b), b"");
        assert_eq!(u32::from_be_bytes(b[..4].try_into().unwrap()), 1);
        b = &b[4..];
        assert_eq!(get_string(&mut b), public_key_blob(&public).as_slice());
        let mut p = get_string(&mut b);
        assert!(b.is_empty());
        assert_eq!(p.len() % 8, 0);
        assert_eq!(&p[..8], &[0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef]);
        p = &p[8..];
        assert_eq!(get_string(&mut p), b"ssh-ed25519");
        assert_eq!(get_string(&mut p), public.as_slice());
        let pair = get_string(&mut p);
        assert_eq!(&pair[..32], seed.as_slice());
        assert_eq!(&pair[32..], public.as_slice());
        assert_eq!(get_string(&mut p), b"");
        assert_eq!(p, &[1u8, 2, 3, 4, 5, 6, 7][..p.len()]);
    }

    #[test]
    fn public_key_line_is_authorized_keys_form() {
        let public = [1u8; 32];
        let line = authorized_key_line(&public);
        let (kind, b64) = line.trim_end().split_once(' ').unwrap();
        assert_eq!(kind, "ssh-ed25519");
        assert!(line.ends_with('\n'));
        assert_eq!(B64.decode(b64).unwrap(), public_key_blob(&public));
        assert!(b64.starts_with("AAAAC3NzaC1lZDI1NTE5AAAAI"));
    }

    #[test]
    fn key_files_are_named_like_backrest() {
        assert_eq!(key_file_name("nas.local"), "id_ed25519_nas.local");
        assert_eq!(key_file_name("fe80::1%eth0"), "id_ed25519_fe80__1_eth0");
        assert_eq!(key_file_name("my_host"), "id_ed25519_my_host");
    }

    #[test]
    fn inputs_are_validated() {
        assert_eq!(validate_port("").unwrap(), 22);
        assert_eq!(validate_port("2222").unwrap(), 2222);
        for bad in ["0", "65536", "-1", "+22", "22 ", "ssh"] {
            let e = validate_port(bad).unwrap_err();
            assert!(e.message.contains("between 1 and 65535"), "{bad}: {e:?}");
        }
        assert!(validate_host("").unwrap_err().message.contains("required"));
        assert!(
            validate_host("-oProxyCommand=evil")
                .unwrap_err()
                .message
                .contains("must not start with '-'")
        );
        assert!(validate_host("a b").is_err());
        assert!(validate_host("h;rm").is_err());
        assert!(validate_host("192.168.1.5").is_ok());
        assert!(validate_host("::1").is_ok());
        assert!(validate_user("").is_err());
        assert!(validate_user("-lroot").is_err());
        assert!(validate_user("bob smith").is_err());
        assert!(validate_user("backup.user").is_ok());
    }

    #[test]
    fn sanitizing_strips_quotes_only_from_sftp_args() {
        let mut repo = v1::Repo {
            flags: vec![
                r#"--option=sftp.args='-oBatchMode=yes -i "/k/id" -oUserKnownHostsFile="/k/kh"'"#
                    .into(),
                "--option=sftp.args='-i @/old/key'".into(),
                r#"--exclude="x y""#.into(),
            ],
            ..Default::default()
        };
        sanitize_sftp_flags(&mut repo);
        assert_eq!(
            repo.flags,
            vec![
                "--option=sftp.args='-oBatchMode=yes -i /k/id -oUserKnownHostsFile=/k/kh'",
                "--option=sftp.args='-i /old/key'",
                r#"--exclude="x y""#,
            ]
        );
    }

    #[test]
    fn keys_are_generated_once_and_reused() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("cfg").join(SSH_DIR_NAME);
        let (public, path) = ensure_key(&dir, "10.0.0.1").unwrap();
        assert_eq!(path, dir.join("id_ed25519_10.0.0.1"));
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&with_suffix(&path, ".pub")), 0o644);
        let private = std::fs::read_to_string(&path).unwrap();
        let (again, _) = ensure_key(&dir, "10.0.0.1").unwrap();
        assert_eq!(again, public);
        assert_eq!(std::fs::read_to_string(&path).unwrap(), private);
        let (other, _) = ensure_key(&dir, "10.0.0.2").unwrap();
        assert_ne!(other, public);
        // A key whose .pub went missing is an error, not silently replaced.
        std::fs::remove_file(with_suffix(&path, ".pub")).unwrap();
        assert!(
            ensure_key(&dir, "10.0.0.1")
                .unwrap_err()
                .contains("failed to read public key")
        );
    }
}
