//! SFTP end to end against a real OpenSSH server on 127.0.0.1 that each test
//! starts with its own config and host key: SetupSftp (key pair, known_hosts,
//! password installation), CheckRepoExists' host_key_untrusted, and an sftp
//! repo added with the web UI's exact `--option=sftp.args='…'` flag, backed up
//! with the Backup RPC on the restic found on PATH (Debian's 0.14 has no
//! sftp.args: the server turns it into sftp.command).

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const SSHD: &str = "/usr/sbin/sshd";
const INSTANCE: &str = "sftp-test";

/// `openssl passwd -6 -salt backrestrs 'correct horse battery'`.
const PASSWORD: &str = "correct horse battery";
const PASSWORD_HASH: &str = "$6$backrestrs$mqKD9uAJvI8lFkThMCBYeRQBIFLmm2fQm9gKCQryYBSivmFIcjbDjAj.V049Ev5L0dmSQyTTBC08doAwvJtoz1";

fn ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// Whether sshd is installed; without it the test is skipped, except in CI.
fn sshd_installed() -> bool {
    if Path::new(SSHD).exists() {
        return true;
    }
    assert!(
        !ci(),
        "CI is set but {SSHD} is missing: install openssh-server (scripts/test does as root)"
    );
    eprintln!("SKIPPED: {SSHD} not found (apt-get install openssh-server openssh-client)");
    false
}

fn is_root() -> bool {
    unsafe { libc::geteuid() == 0 }
}

fn current_user() -> String {
    let out = Command::new("id").arg("-un").output().expect("run id -un");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn keygen(path: &Path) {
    run_ok(
        Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", ""])
            .arg("-f")
            .arg(path),
    );
}

/// The base64 key blob of an authorized_keys / .pub line.
fn key_blob(line: &str) -> String {
    line.split_whitespace()
        .nth(1)
        .expect("key blob")
        .to_string()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

enum Auth {
    /// Public keys from one file in the test's folder; no passwords.
    KeysFile,
    /// Passwords (root's is `PASSWORD`) and keys from `~/.ssh/authorized_keys`
    /// with a home in the test's folder: sshd runs in a private mount
    /// namespace that sees copies of /etc/passwd and /etc/shadow, so no
    /// system account is touched.
    PasswordForRoot,
}

/// A foreground sshd (`-D -e`) serving SFTP with internal-sftp.
struct Sshd {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
    log: PathBuf,
    /// The file sshd reads public keys from (KeysFile mode).
    authorized_keys: PathBuf,
    /// The host key's `.pub` line.
    host_key: String,
}

impl Sshd {
    fn start(auth: Auth) -> Sshd {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        let host_key_path = root.join("host_ed25519");
        keygen(&host_key_path);
        let host_key = std::fs::read_to_string(root.join("host_ed25519.pub")).unwrap();
        let authorized_keys = root.join("authorized_keys");
        std::fs::write(&authorized_keys, "").unwrap();
        std::fs::create_dir_all(root.join("repos")).unwrap();
        if is_root() {
            // sshd started by root insists on its privilege-separation folder.
            std::fs::create_dir_all("/run/sshd").unwrap();
        }
        let auth_lines = match auth {
            Auth::KeysFile => format!(
                "AuthorizedKeysFile {}\nPasswordAuthentication no\nPermitRootLogin prohibit-password\n",
                authorized_keys.display()
            ),
            Auth::PasswordForRoot => {
                let home = root.join("home");
                std::fs::create_dir_all(&home).unwrap();
                let passwd: String = std::fs::read_to_string("/etc/passwd")
                    .unwrap()
                    .lines()
                    .map(|l| {
                        let mut f: Vec<String> = l.split(':').map(String::from).collect();
                        if f[0] == "root" && f.len() == 7 {
                            f[5] = home.to_string_lossy().into_owned();
                            f[6] = "/bin/sh".into();
                        }
                        f.join(":") + "\n"
                    })
                    .collect();
                let shadow: String = std::fs::read_to_string("/etc/shadow")
                    .unwrap()
                    .lines()
                    .map(|l| {
                        let mut f: Vec<String> = l.split(':').map(String::from).collect();
                        if f[0] == "root" && f.len() > 2 {
                            f[1] = PASSWORD_HASH.into();
                        }
                        f.join(":") + "\n"
                    })
                    .collect();
                std::fs::write(root.join("passwd"), passwd).unwrap();
                std::fs::write(root.join("shadow"), shadow).unwrap();
                std::fs::set_permissions(root.join("shadow"), PermissionsExt::from_mode(0o600))
                    .unwrap();
                "AuthorizedKeysFile .ssh/authorized_keys\nPasswordAuthentication yes\nPermitRootLogin yes\n"
                    .to_string()
            }
        };
        let log = root.join("sshd.log");
        let mut last_log = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let config = root.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nPidFile none\nUsePAM no\n\
                     StrictModes no\nKbdInteractiveAuthentication no\nSubsystem sftp internal-sftp\n\
                     LogLevel VERBOSE\n{auth_lines}",
                    host_key_path.display()
                ),
            )
            .unwrap();
            let mut cmd = match auth {
                Auth::KeysFile => {
                    let mut c = Command::new(SSHD);
                    c.args(["-D", "-e", "-f"]).arg(&config);
                    c
                }
                Auth::PasswordForRoot => {
                    // unshare execs: the child is sshd itself.
                    let mut c = Command::new("unshare");
                    c.args(["-m", "--propagation", "private", "sh", "-c"]).arg(format!(
                        "mount --bind {r}/passwd /etc/passwd && mount --bind {r}/shadow /etc/shadow \
                         && exec {SSHD} -D -e -f {c}",
                        r = root.display(),
                        c = config.display()
                    ));
                    c
                }
            };
            let mut child = cmd
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            let listening = loop {
                if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    break true;
                }
                if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(Duration::from_millis(20));
            };
            if listening {
                return Sshd {
                    child,
                    port,
                    dir,
                    log,
                    authorized_keys,
                    host_key,
                };
            }
            // The port may have been taken meanwhile: try another one.
            let _ = child.kill();
            let _ = child.wait();
            last_log = std::fs::read_to_string(&log).unwrap_or_default();
        }
        panic!("sshd did not start; its log:\n{last_log}");
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn authorize(&self, public_key_line: &str) {
        let mut keys = std::fs::read_to_string(&self.authorized_keys).unwrap();
        keys.push_str(public_key_line.trim());
        keys.push('\n');
        std::fs::write(&self.authorized_keys, keys).unwrap();
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The flag Backrest's AddRepoModal composes for an sftp repo.
fn ui_flag(key: &str, port: u16, known_hosts: &Path) -> String {
    format!(
        "--option=sftp.args='-oBatchMode=yes -i \"{key}\" -p {port} -oUserKnownHostsFile=\"{}\"'",
        known_hosts.display()
    )
}

async fn setup_sftp(s: &Server, port: u16, extra: Value) -> (u16, Value) {
    let mut req =
        json!({"host": "127.0.0.1", "port": port.to_string(), "username": current_user()});
    for (k, v) in extra.as_object().unwrap() {
        req[k] = v.clone();
    }
    call_json(s, "/v1.Backrest/SetupSftp", req).await
}

async fn check_repo(s: &Server, repo: &Value) -> (u16, Value) {
    call_json(s, "/v1.Backrest/CheckRepoExists", json!({"repo": repo})).await
}

#[tokio::test]
async fn setup_sftp_then_an_sftp_repo_backs_up_with_the_ui_flag() {
    if !sshd_installed() {
        return;
    }
    let sshd = Sshd::start(Auth::KeysFile);
    let s = Server::start();
    set_instance(&s, INSTANCE).await;
    eprintln!("{}", run_ok(Command::new("restic").arg("version")).trim());

    // --- SetupSftp: a key pair and the host key, Backrest's file layout.
    let (status, first) = setup_sftp(&s, sshd.port, json!({})).await;
    assert_eq!(status, 200, "{first}");
    let ssh_dir = s.dir.join("config").join(".backrest-ssh");
    let key_path = ssh_dir.join("id_ed25519_127.0.0.1");
    let known_hosts = ssh_dir.join("known_hosts");
    assert_eq!(
        first["keyPath"],
        json!(key_path.to_string_lossy()),
        "{first}"
    );
    assert_eq!(
        first["knownHostsPath"],
        json!(known_hosts.to_string_lossy())
    );
    assert_eq!(
        first.get("error"),
        None,
        "the scan of a live sshd must not warn: {first}"
    );
    assert_eq!(mode(&ssh_dir), 0o700);
    assert_eq!(mode(&key_path), 0o600);
    assert_eq!(
        mode(&PathBuf::from(format!("{}.pub", key_path.display()))),
        0o644
    );
    assert_eq!(mode(&known_hosts), 0o600);
    let public_key = first["publicKey"].as_str().unwrap().to_string();
    assert_eq!(
        std::fs::read_to_string(format!("{}.pub", key_path.display())).unwrap(),
        public_key
    );
    assert!(public_key.starts_with("ssh-ed25519 AAAA"), "{public_key}");
    // ssh-keygen reads the private key back to the same public key.
    let derived = run_ok(
        Command::new("ssh-keygen")
            .arg("-y")
            .arg("-f")
            .arg(&key_path),
    );
    assert_eq!(key_blob(&derived), key_blob(&public_key));
    // known_hosts: hashed names, and the entry is this sshd's host key.
    let kh_text = std::fs::read_to_string(&known_hosts).unwrap();
    assert!(
        kh_text.lines().all(|l| l.starts_with("|1|")),
        "entries must be hashed: {kh_text}"
    );
    let spec = format!("[127.0.0.1]:{}", sshd.port);
    let found = run_ok(
        Command::new("ssh-keygen")
            .args(["-F", &spec, "-f"])
            .arg(&known_hosts),
    );
    assert!(found.contains(&key_blob(&sshd.host_key)), "{found}");

    // A second call reuses the key and does not scan again.
    let (status, second) = setup_sftp(&s, sshd.port, json!({})).await;
    assert_eq!(status, 200, "{second}");
    assert_eq!(second["publicKey"], first["publicKey"]);
    assert_eq!(std::fs::read_to_string(&known_hosts).unwrap(), kh_text);

    // --- CheckRepoExists: unknown and changed host keys are reported.
    let key = key_path.to_string_lossy().into_owned();
    let repo_dir = sshd.root().join("repos").join("r1");
    let uri = format!("sftp:{}@127.0.0.1:{}", current_user(), repo_dir.display());
    let empty_kh = sshd.root().join("empty_known_hosts");
    std::fs::write(&empty_kh, "").unwrap();
    let untrusted = json!({"id": "sftp1", "uri": uri, "password": "pw",
                           "flags": [ui_flag(&key, sshd.port, &empty_kh)]});
    let (status, v) = check_repo(&s, &untrusted).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["hostKeyUntrusted"], true, "{v}");
    assert_eq!(v.get("exists"), None, "{v}");

    let wrong_kh = sshd.root().join("wrong_known_hosts");
    std::fs::write(&wrong_kh, format!("{spec} {}", public_key.trim())).unwrap();
    let changed = json!({"id": "sftp1", "uri": uri, "password": "pw",
                         "flags": [ui_flag(&key, sshd.port, &wrong_kh)]});
    let (status, v) = check_repo(&s, &changed).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["hostKeyUntrusted"], true, "{v}");

    // AddRepo says so in words the web UI recognises.
    let (status, v) = call_json(&s, "/v1.Backrest/AddRepo", json!({"repo": untrusted})).await;
    assert_eq!(status, 500, "{v}");
    let msg = v["message"].as_str().unwrap().to_ascii_lowercase();
    assert!(msg.contains("host key verification failed"), "{msg}");

    // --- The trusted host, but the key is not authorized yet.
    let repo = json!({"id": "sftp1", "uri": uri, "password": "pw",
                      "flags": [ui_flag(&key, sshd.port, &known_hosts)]});
    let (status, v) = check_repo(&s, &repo).await;
    assert_eq!(status, 500, "{v}");
    assert!(
        v["message"].as_str().unwrap().contains("Permission denied"),
        "{v}"
    );

    // --- Authorized: no repository yet, then AddRepo initializes it over sftp.
    sshd.authorize(&public_key);
    let (status, v) = check_repo(&s, &repo).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({}), "no repository there yet, host trusted");

    let added = ok_json(&s, "/v1.Backrest/AddRepo", json!({"repo": repo})).await;
    assert!(
        repo_dir.join("config").is_file(),
        "restic init wrote no config over sftp"
    );
    let saved = added["repos"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["id"] == "sftp1")
        .unwrap()
        .clone();
    // Stored as Backrest stores it: the UI's double quotes stripped.
    assert_eq!(
        saved["flags"],
        json!([format!(
            "--option=sftp.args='-oBatchMode=yes -i {key} -p {} -oUserKnownHostsFile={}'",
            sshd.port,
            known_hosts.display()
        )])
    );
    assert_eq!(saved["guid"].as_str().unwrap().len(), 64, "{saved}");
    let (status, v) = check_repo(&s, &repo).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v["exists"], true, "{v}");

    // --- A plan on it and the Backup RPC.
    let src = sshd.root().join("src");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::write(src.join("a.txt"), "alpha\n".repeat(500)).unwrap();
    std::fs::write(src.join("sub/b.txt"), "bravo\n").unwrap();
    let mut cfg = added.clone();
    cfg["plans"] = json!([{"id": "p1", "repo": "sftp1", "paths": [src],
                           "retention": {"policyKeepLastN": 3}}]);
    ok_json(&s, "/v1.Backrest/SetConfig", cfg).await;
    ok_json(&s, "/v1.Backrest/Backup", json!({"value": "p1"})).await;

    let ops = ok_json(
        &s,
        "/v1.Backrest/GetOperations",
        json!({"selector": {"planId": "p1"}}),
    )
    .await;
    let backups: Vec<&Value> = ops["operations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o.get("operationBackup").is_some())
        .collect();
    assert_eq!(backups.len(), 1, "{ops}");
    assert_eq!(backups[0]["status"], "STATUS_SUCCESS", "{}", backups[0]);

    let listed = ok_json(
        &s,
        "/v1.Backrest/ListSnapshots",
        json!({"repoId": "sftp1", "planId": "p1"}),
    )
    .await;
    let snaps = listed["snapshots"].as_array().cloned().unwrap_or_default();
    assert_eq!(snaps.len(), 1, "{listed}");
    assert_eq!(snaps[0]["paths"], json!([src]), "{listed}");
    // The data really is in the directory sshd served.
    let on_disk: Vec<Value> = serde_json::from_str(&restic_ok(
        &repo_dir,
        "pw",
        &["snapshots", "--json", "--no-lock"],
    ))
    .unwrap();
    assert_eq!(on_disk.len(), 1);
    assert_eq!(on_disk[0]["id"], snaps[0]["id"]);
    assert!(sshd.log().contains("Accepted publickey"), "{}", sshd.log());
}

#[tokio::test]
async fn setup_sftp_rejects_bad_input_and_warns_about_unreachable_hosts() {
    let s = Server::start();
    for (req, want) in [
        (json!({"host": ""}), "host is required"),
        (
            json!({"host": "-oProxyCommand=sh"}),
            "must not start with '-'",
        ),
        (json!({"host": "a b"}), "not a host name"),
        (json!({"host": "h", "port": "70000"}), "between 1 and 65535"),
        (
            json!({"host": "h", "port": "22; true"}),
            "between 1 and 65535",
        ),
        (
            json!({"host": "h", "password": "x"}),
            "username is required",
        ),
        (
            json!({"host": "h", "username": "-oX", "password": "x"}),
            "must not start with '-'",
        ),
    ] {
        let (status, v) = call_json(&s, "/v1.Backrest/SetupSftp", req.clone()).await;
        assert_eq!(status, 400, "{req}: {v}");
        assert_eq!(v["code"], "invalid_argument", "{req}: {v}");
        assert!(v["message"].as_str().unwrap().contains(want), "{req}: {v}");
    }
    assert!(
        !s.dir.join("config").join(".backrest-ssh").exists(),
        "rejected requests create nothing"
    );

    // Nothing listens on this port: the key is still made, with Backrest's warning.
    let port = free_port();
    let (status, v) = call_json(
        &s,
        "/v1.Backrest/SetupSftp",
        json!({"host": "127.0.0.1", "port": port.to_string()}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    let warning = v["error"].as_str().unwrap();
    assert!(
        warning.starts_with("Could not scan host key (")
            && warning.ends_with(
                "). Add the host key to known_hosts manually or ensure the host is reachable."
            ),
        "{warning}"
    );
    assert!(Path::new(v["keyPath"].as_str().unwrap()).is_file());
    assert!(v["publicKey"].as_str().unwrap().starts_with("ssh-ed25519 "));
}

#[tokio::test]
async fn setup_sftp_installs_the_key_with_a_password() {
    if !sshd_installed() {
        return;
    }
    // sshd checks passwords against /etc/shadow: a private mount namespace
    // gives it a copy with a known root password. That needs root and
    // permission to create mount namespaces.
    let namespaces = is_root()
        && Command::new("unshare")
            .args(["-m", "true"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|st| st.success());
    if !namespaces {
        eprintln!(
            "SKIPPED: installing a key with a password needs root and `unshare -m` \
             (to give sshd a private /etc/shadow); the askpass path is not exercised"
        );
        return;
    }
    let sshd = Sshd::start(Auth::PasswordForRoot);
    let s = Server::start();
    set_instance(&s, INSTANCE).await;
    let home = sshd.root().join("home");

    // A wrong password: refused, in plain words, and sshd saw a password try.
    let (status, v) = setup_sftp(
        &s,
        sshd.port,
        json!({"username": "root", "password": "wrong"}),
    )
    .await;
    assert_eq!(status, 403, "{v}");
    assert_eq!(v["code"], "permission_denied", "{v}");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("authentication failed for root@127.0.0.1"),
        "{v}"
    );
    assert!(
        sshd.log().contains("Failed password for root"),
        "{}",
        sshd.log()
    );
    assert!(!home.join(".ssh").exists());

    // The right one: ~/.ssh (0700) and authorized_keys (0600) get the key.
    let (status, v) = setup_sftp(
        &s,
        sshd.port,
        json!({"username": "root", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v.get("error"), None, "{v}");
    let public_key = v["publicKey"].as_str().unwrap().trim().to_string();
    let authorized = home.join(".ssh").join("authorized_keys");
    assert_eq!(mode(&home.join(".ssh")), 0o700);
    assert_eq!(mode(&authorized), 0o600);
    assert_eq!(
        std::fs::read_to_string(&authorized).unwrap(),
        format!("{public_key}\n")
    );
    assert!(
        sshd.log().contains("Accepted password for root"),
        "{}",
        sshd.log()
    );

    // Again: the key is not added twice.
    let (status, v) = setup_sftp(
        &s,
        sshd.port,
        json!({"username": "root", "password": PASSWORD}),
    )
    .await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(
        std::fs::read_to_string(&authorized).unwrap(),
        format!("{public_key}\n")
    );

    // The installed key logs in: restic reaches the (empty) location over sftp.
    let repo_dir = sshd.root().join("repos").join("r2");
    let repo = json!({"id": "sftp2", "uri": format!("sftp:root@127.0.0.1:{}", repo_dir.display()),
                      "password": "pw",
                      "flags": [ui_flag(v["keyPath"].as_str().unwrap(), sshd.port,
                                        Path::new(v["knownHostsPath"].as_str().unwrap()))]});
    let (status, v) = check_repo(&s, &repo).await;
    assert_eq!(status, 200, "{v}");
    assert_eq!(v, json!({}));
    assert!(
        sshd.log().contains("Accepted publickey for root"),
        "{}",
        sshd.log()
    );

    // The password never reaches the server's log.
    assert!(!s.stderr().contains(PASSWORD));
}
