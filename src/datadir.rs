//! The data directory and its single-instance lock.

use std::fs::{self, File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// Holds `<data>/oplog.sqlite.lock` (the file Backrest locks too) for the
/// process lifetime, so two servers never share one oplog.
pub struct DataDirLock {
    _file: File,
    pub path: PathBuf,
}

pub fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .with_context(|| format!("cannot create data directory {}", dir.display()))
}

pub fn lock(dir: &Path) -> anyhow::Result<DataDirLock> {
    let path = dir.join("oplog.sqlite.lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    // SAFETY: flock on a valid, owned file descriptor.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc != 0 {
        let err = std::io::Error::last_os_error();
        if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
            bail!(
                "the data directory {} is already in use by another backrest-rs or Backrest process \
                 (lock held on {}); stop that process or choose another -data-dir",
                dir.display(),
                path.display()
            );
        }
        return Err(err).with_context(|| format!("cannot lock {}", path.display()));
    }
    Ok(DataDirLock { _file: file, path })
}

/// Reads the secret key `<dir>/<name>`, or creates it (`len` random bytes,
/// mode 0600) when it does not exist. `what` names it in messages ("JWT
/// secret"). The file is written under a temporary name and renamed, so a
/// crash never leaves half a key; an empty file (a crash on a filesystem that
/// reordered the rename) is replaced, as nothing can have been signed with it.
/// Existing keys of any length are used as they are.
pub fn load_or_create_secret(
    dir: &Path,
    name: &str,
    len: usize,
    what: &str,
) -> anyhow::Result<Vec<u8>> {
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    let path = dir.join(name);
    match fs::read(&path) {
        Ok(bytes) if !bytes.is_empty() => {
            if fs::metadata(&path).is_ok_and(|m| m.permissions().mode() & 0o077 != 0) {
                tracing::warn!(path = %path.display(), "the {what} is readable by other users; consider chmod 600");
            }
            return Ok(bytes);
        }
        Ok(_) => {
            tracing::warn!(path = %path.display(), "the {what} file is empty; generating a new one")
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e).with_context(|| format!("cannot read the {what} {}", path.display()));
        }
    }
    let mut secret = vec![0u8; len];
    getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("cannot get random bytes: {e}"))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let _ = fs::remove_file(&tmp);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("cannot create {}", tmp.display()))?;
    f.write_all(&secret)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, &path)
        .with_context(|| format!("cannot create the {what} {}", path.display()))?;
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
    tracing::info!(path = %path.display(), "generated a new {what}");
    Ok(secret)
}
