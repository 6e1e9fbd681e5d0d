//! Keeping downloads inside the restore target.
//!
//! Two layers, because either alone has a gap: the requested path is first
//! checked by its words (only plain names: no `..`, no leading `/`, no NUL),
//! then the joined path is resolved by the filesystem and must still lie
//! under the resolved target, which catches a symbolic link inside the
//! restore that points elsewhere (restic restores links as they were).

use std::io;
use std::path::{Component, Path, PathBuf};

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("the path must be relative to the restore target, not absolute")]
    Absolute,
    #[error("the path must not contain '..'")]
    ParentDir,
    #[error("the path must not contain a NUL byte")]
    Nul,
}

/// `s` as a path of plain names relative to a directory (`""` and `"."` are
/// the directory itself; repeated and trailing slashes are ignored).
pub fn relative_path(s: &str) -> Result<PathBuf, PathError> {
    if s.contains('\0') {
        return Err(PathError::Nul);
    }
    let mut out = PathBuf::new();
    for comp in Path::new(s).components() {
        match comp {
            Component::Normal(name) => out.push(name),
            Component::CurDir => {}
            Component::ParentDir => return Err(PathError::ParentDir),
            Component::RootDir | Component::Prefix(_) => return Err(PathError::Absolute),
        }
    }
    Ok(out)
}

#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// The restore target itself is gone (deleted or moved since the restore).
    #[error("the restored files are no longer on the server")]
    TargetGone,
    #[error("no such file or directory in the restore")]
    NotFound,
    /// A symbolic link on the way leads out of the target.
    #[error("the path leads outside the restore target")]
    Outside,
    #[error("{0}")]
    Io(io::Error),
}

/// The real location of `root/rel`, which exists and lies inside the real
/// location of `root`. `rel` must come from [`relative_path`]. Returns
/// (resolved root, resolved path).
pub fn resolve_inside(root: &Path, rel: &Path) -> Result<(PathBuf, PathBuf), ResolveError> {
    let real_root = std::fs::canonicalize(root).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => ResolveError::TargetGone,
        _ => ResolveError::Io(e),
    })?;
    let real = std::fs::canonicalize(real_root.join(rel)).map_err(|e| match e.kind() {
        // A dangling link, or a file under something that is not a directory.
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory => ResolveError::NotFound,
        _ => ResolveError::Io(e),
    })?;
    if !real.starts_with(&real_root) {
        return Err(ResolveError::Outside);
    }
    Ok((real_root, real))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn relative_paths_only_plain_names() {
        assert_eq!(relative_path("").unwrap(), PathBuf::new());
        assert_eq!(relative_path(".").unwrap(), PathBuf::new());
        assert_eq!(relative_path("a//b/./c/").unwrap(), PathBuf::from("a/b/c"));
        assert_eq!(relative_path("../x"), Err(PathError::ParentDir));
        assert_eq!(relative_path("a/../../x"), Err(PathError::ParentDir));
        assert_eq!(relative_path("a/.."), Err(PathError::ParentDir));
        assert_eq!(relative_path("/etc/passwd"), Err(PathError::Absolute));
        assert_eq!(relative_path("a\0b"), Err(PathError::Nul));
        // Dots inside a name are just a name.
        assert_eq!(relative_path("..a/b..").unwrap(), PathBuf::from("..a/b.."));
    }

    #[test]
    fn resolves_inside_and_refuses_links_out() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("target");
        std::fs::create_dir_all(root.join("dir")).unwrap();
        std::fs::write(root.join("dir/f.txt"), "x").unwrap();
        std::fs::write(tmp.path().join("secret"), "s").unwrap();
        symlink(tmp.path().join("secret"), root.join("out-abs")).unwrap();
        symlink("../secret", root.join("out-rel")).unwrap();
        symlink(tmp.path(), root.join("out-dir")).unwrap();
        symlink("dir/f.txt", root.join("in-link")).unwrap();
        symlink("nowhere", root.join("dangling")).unwrap();

        let (real_root, p) = resolve_inside(&root, Path::new("dir/f.txt")).unwrap();
        assert_eq!(p, real_root.join("dir/f.txt"));
        // A link that stays inside is followed.
        let (_, p) = resolve_inside(&root, Path::new("in-link")).unwrap();
        assert_eq!(p, real_root.join("dir/f.txt"));
        for out in ["out-abs", "out-rel", "out-dir", "out-dir/secret"] {
            assert!(
                matches!(
                    resolve_inside(&root, Path::new(out)),
                    Err(ResolveError::Outside)
                ),
                "{out}"
            );
        }
        for missing in ["nope", "dangling", "dir/f.txt/x"] {
            assert!(
                matches!(
                    resolve_inside(&root, Path::new(missing)),
                    Err(ResolveError::NotFound)
                ),
                "{missing}"
            );
        }
        assert!(matches!(
            resolve_inside(&tmp.path().join("gone"), Path::new("")),
            Err(ResolveError::TargetGone)
        ));
        // The target reached through a link of its own is fine.
        symlink(&root, tmp.path().join("target-link")).unwrap();
        assert!(resolve_inside(&tmp.path().join("target-link"), Path::new("dir")).is_ok());
    }
}
