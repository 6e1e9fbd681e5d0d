//! config.json on disk: proto3 JSON of `v1.Config`, written atomically with
//! timestamped backups of the previous version.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::pb::v1;

/// How many `<config>.bak.<timestamp>` files are kept.
pub const KEEP_BACKUPS: usize = 10;

/// Reads and parses the config file; `Ok(None)` when it does not exist.
/// Unknown fields are ignored.
pub fn read(path: &Path) -> anyhow::Result<Option<v1::Config>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let cfg: v1::Config = serde_json::from_slice(&bytes)
        .with_context(|| format!("cannot parse {} as a Backrest config", path.display()))?;
    Ok(Some(cfg))
}

/// The file contents for `cfg`: two-space indented proto3 JSON with the
/// json names and default values omitted, plus a final newline.
pub fn encode(cfg: &v1::Config) -> serde_json::Result<Vec<u8>> {
    let mut out = serde_json::to_vec_pretty(cfg)?;
    out.push(b'\n');
    Ok(out)
}

/// Replaces the file at `path` with `data`: creates the directory if needed,
/// copies the current file to `<path>.bak.<YYYY-MM-DD-HH-MM-SS>` (keeping
/// the newest [`KEEP_BACKUPS`]), then writes atomically with mode 0600. If
/// this fails, the file at `path` is the old one.
pub fn write(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o755)
        .create(&dir)?;
    backup(path, &dir)?;
    write_atomic(path, data)
}

fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn file_name(path: &Path) -> io::Result<String> {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} has no file name", path.display()),
            )
        })
}

fn backup(path: &Path, dir: &Path) -> io::Result<()> {
    let current = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    let stamp = chrono::Local::now().format("%Y-%m-%d-%H-%M-%S");
    let mut backup_path = path.as_os_str().to_owned();
    backup_path.push(format!(".bak.{stamp}"));
    write_atomic(Path::new(&backup_path), &current)?;

    let prefix = format!("{}.bak.", file_name(path)?);
    let mut backups: Vec<PathBuf> = fs::read_dir(dir)?
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
        .map(|e| e.path())
        .collect();
    backups.sort();
    let excess = backups.len().saturating_sub(KEEP_BACKUPS);
    for old in &backups[..excess] {
        if let Err(e) = fs::remove_file(old) {
            tracing::warn!(path = %old.display(), "cannot remove an old config backup: {e}");
        }
    }
    Ok(())
}

/// Writes `data` to a temporary file next to `path`, syncs it, sets mode
/// 0600 and renames it over `path`, then syncs the directory. The temporary
/// file is removed if anything fails before the rename.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    let dir = parent_dir(path);
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).map_err(|e| io::Error::other(e.to_string()))?;
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name(path)?,
        std::process::id(),
        hex::encode(suffix)
    ));

    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        file.write_all(data)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.sync_all()?;
        drop(file);
        #[cfg(test)]
        failpoint::check(path)?;
        fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(e);
    }
    // The new file is in place; a failed directory sync only weakens
    // durability, so it is logged rather than reported as a failed write.
    if let Err(e) = File::open(&dir).and_then(|d| d.sync_all()) {
        tracing::warn!(dir = %dir.display(), "cannot sync the config directory: {e}");
    }
    Ok(())
}

/// Test-only fault injection: make the rename onto a given path fail.
#[cfg(test)]
pub(crate) mod failpoint {
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::Mutex;

    static FAIL_RENAME_ONTO: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

    pub fn fail_rename_onto(path: &Path) {
        FAIL_RENAME_ONTO.lock().unwrap().push(path.to_path_buf());
    }

    pub fn clear(path: &Path) {
        FAIL_RENAME_ONTO.lock().unwrap().retain(|p| p != path);
    }

    pub(super) fn check(path: &Path) -> io::Result<()> {
        if FAIL_RENAME_ONTO.lock().unwrap().iter().any(|p| p == path) {
            return Err(io::Error::other("injected failure before rename"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn write_creates_directories_with_mode_0600_and_no_leftovers() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("a/b/config.json");
        write(&path, b"{}\n").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"{}\n");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // First write: nothing to back up, no temp file left behind.
        assert_eq!(
            names(path.parent().unwrap()),
            vec!["config.json".to_string()]
        );

        write(&path, b"{\"modno\": 1}\n").unwrap();
        let listing = names(path.parent().unwrap());
        assert_eq!(listing.len(), 2, "{listing:?}");
        let bak = listing
            .iter()
            .find(|n| n.starts_with("config.json.bak."))
            .unwrap();
        // config.json.bak.YYYY-MM-DD-HH-MM-SS
        let stamp = &bak["config.json.bak.".len()..];
        assert!(
            chrono::NaiveDateTime::parse_from_str(stamp, "%Y-%m-%d-%H-%M-%S").is_ok(),
            "{bak}"
        );
        let bak_path = path.parent().unwrap().join(bak);
        assert_eq!(fs::read(&bak_path).unwrap(), b"{}\n");
        assert_eq!(
            fs::metadata(&bak_path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }

    #[test]
    fn keeps_only_the_ten_newest_backups() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.json");
        fs::write(&path, b"current").unwrap();
        // Twelve older backups, named as earlier writes would have named them.
        for i in 0..12 {
            fs::write(
                tmp.path()
                    .join(format!("config.json.bak.2001-01-01-00-00-{i:02}")),
                b"old",
            )
            .unwrap();
        }
        fs::write(
            tmp.path().join("other.json.bak.2000-01-01-00-00-00"),
            b"unrelated",
        )
        .unwrap();
        write(&path, b"new").unwrap();
        let baks: Vec<String> = names(tmp.path())
            .into_iter()
            .filter(|n| n.starts_with("config.json.bak."))
            .collect();
        assert_eq!(baks.len(), KEEP_BACKUPS, "{baks:?}");
        // The three oldest went; the fresh one (of "current") is kept.
        assert!(!baks.contains(&"config.json.bak.2001-01-01-00-00-02".to_string()));
        assert!(baks.contains(&"config.json.bak.2001-01-01-00-00-03".to_string()));
        let newest = baks.last().unwrap();
        assert_eq!(fs::read(tmp.path().join(newest)).unwrap(), b"current");
        assert!(
            tmp.path()
                .join("other.json.bak.2000-01-01-00-00-00")
                .exists()
        );
    }

    #[test]
    fn a_failed_write_leaves_the_old_file_and_no_temp_file() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("config.json");
        fs::write(&path, b"old contents").unwrap();
        failpoint::fail_rename_onto(&path);
        let err = write(&path, b"new contents");
        failpoint::clear(&path);
        assert!(err.is_err());
        assert_eq!(fs::read(&path).unwrap(), b"old contents");
        assert!(
            names(tmp.path()).iter().all(|n| !n.contains(".tmp-")),
            "{:?}",
            names(tmp.path())
        );
    }

    #[test]
    fn write_fails_when_the_directory_cannot_be_created() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("file"), b"x").unwrap();
        assert!(write(&tmp.path().join("file/config.json"), b"{}").is_err());
    }
}
