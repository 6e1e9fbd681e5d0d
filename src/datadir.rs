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
