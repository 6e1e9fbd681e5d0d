//! Downloads straight from a snapshot: a link of type `"snapshot"` names an
//! index-snapshot operation and a path inside its snapshot, and is served by
//! streaming `restic dump --archive tar` (a file as its bytes, a folder as a
//! tar).
//!
//! As in Backrest, the first 32 KiB of restic's output are read before any
//! header is sent. That is what lets an early failure (a path not in the
//! snapshot, a forgotten snapshot, a wrong password) become an error answer
//! with restic's words, and lets the download be named `<name>.tar` when the
//! output turns out to be a tar archive. Past that point the status has been
//! sent: a failure is logged and the body is cut off, so the client sees a
//! broken transfer rather than a short file that looks complete. A client
//! that goes away drops the body, and with it restic (see `restic::dump`).

use std::io;
use std::path::{Component, Path};

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;

use super::handler::attachment;
use crate::pb::v1;
use crate::pb::v1::operation::Op;
use crate::restic::dump::Dump;
use crate::restic::{ErrorKind, RepoClient, ResticError};
use crate::server::AppState;

/// How much output is held back before the headers go out (Backrest: 32 KiB).
pub const SNIFF_LEN: usize = 32 * 1024;
/// Size of the pieces sent after that.
const CHUNK: usize = 64 * 1024;

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum SnapshotPathError {
    #[error("the path is empty")]
    Empty,
    #[error("the path must not contain a NUL byte")]
    Nul,
    #[error("the path must be absolute inside the snapshot (start with '/')")]
    Relative,
    #[error("the path must not contain '..'")]
    ParentDir,
}

/// Checks a path inside a snapshot as the snapshot browser sends it (an
/// entry's absolute path, e.g. `/home/u/file.txt`). restic resolves it within
/// the snapshot, so `..` could not escape anyway; it is refused so that what
/// a link names is plain to see.
pub fn check_snapshot_path(path: &str) -> Result<(), SnapshotPathError> {
    if path.is_empty() {
        return Err(SnapshotPathError::Empty);
    }
    if path.contains('\0') {
        return Err(SnapshotPathError::Nul);
    }
    if !path.starts_with('/') {
        return Err(SnapshotPathError::Relative);
    }
    if Path::new(path)
        .components()
        .any(|c| c == Component::ParentDir)
    {
        return Err(SnapshotPathError::ParentDir);
    }
    Ok(())
}

/// Whether `buf` starts with a tar header: a 512-byte block whose stored
/// checksum matches its bytes (what a tar reader checks before anything
/// else). `restic dump --archive tar` writes a file's bytes as they are and
/// a folder as a tar, so this tells which one was asked for. An empty file
/// or one of zeros is not a tar: a block of zeros has no valid checksum.
pub fn starts_with_tar_header(buf: &[u8]) -> bool {
    let Some(block) = buf.get(..512) else {
        return false;
    };
    let Some(stored) = parse_octal(&block[148..156]) else {
        return false;
    };
    // The checksum field itself counts as eight spaces.
    let unsigned: u64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as u64
            }
        })
        .sum();
    // Some old tar writers summed signed bytes; readers accept either.
    let signed: i64 = block
        .iter()
        .enumerate()
        .map(|(i, &b)| {
            if (148..156).contains(&i) {
                32
            } else {
                b as i8 as i64
            }
        })
        .sum();
    stored == unsigned || stored as i64 == signed
}

/// A tar numeric field: octal digits, surrounded by spaces or NULs.
fn parse_octal(field: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(field).ok()?;
    let digits = text.trim_matches(|c| c == ' ' || c == '\0');
    if digits.is_empty() {
        return None;
    }
    u64::from_str_radix(digits, 8).ok()
}

/// The name a download is saved under: the last name in `path` (`/` itself
/// is the snapshot's root), with `.tar` added when the output is a tar and
/// the name does not already say so.
pub fn download_name(path: &str, is_tar: bool) -> String {
    let base = path
        .trim_end_matches('/')
        .rsplit('/')
        .find(|s| !s.is_empty() && *s != ".")
        .unwrap_or("snapshot");
    if is_tar && !base.to_ascii_lowercase().ends_with(".tar") {
        format!("{base}.tar")
    } else {
        base.to_string()
    }
}

/// The configured repository an operation belongs to: by its GUID, else by
/// its id; refused when the repository behind that id is another one now.
pub fn repo_of(op: &v1::Operation, repos: &[v1::Repo]) -> Result<v1::Repo, (StatusCode, String)> {
    let by_guid = (!op.repo_guid.is_empty())
        .then(|| repos.iter().find(|r| r.guid == op.repo_guid))
        .flatten();
    let repo = by_guid
        .or_else(|| repos.iter().find(|r| r.id == op.repo_id))
        .ok_or_else(|| {
            (
                StatusCode::NOT_FOUND,
                format!(
                    "repository {:?} of this snapshot is no longer configured",
                    op.repo_id
                ),
            )
        })?;
    if repo.guid != op.repo_guid {
        return Err((StatusCode::NOT_FOUND, "repo GUID does not match".into()));
    }
    Ok(repo.clone())
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", message.into()),
    )
        .into_response()
}

/// A restic failure before anything was sent: what restic said (its own
/// words and our hint, not the command line), as 404 when the path or the
/// snapshot is not there and 500 otherwise.
fn dump_failed(e: &ResticError) -> Response {
    let lower = e.output.to_ascii_lowercase();
    let status = if lower.contains("not found in snapshot") || lower.contains("no matching id") {
        StatusCode::NOT_FOUND
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    let mut msg = format!("error dumping snapshot: {}", e.output);
    if e.output.is_empty() {
        msg.push_str(&format!("restic exited with code {:?}", e.exit_code));
    }
    if let Some(hint) = e.hint() {
        msg.push_str(&format!(" ({hint})"));
    }
    refuse(status, msg)
}

/// Serves a `"snapshot"` link for operation `op_id` and `path` (already
/// checked with [`check_snapshot_path`]).
pub async fn serve(state: &AppState, op_id: i64, path: &str) -> Response {
    let op = match state.oplog.get(op_id).await {
        Ok(Some(op)) => op,
        Ok(None) => {
            return refuse(
                StatusCode::NOT_FOUND,
                "snapshot not found: its operation was removed from the history",
            );
        }
        Err(e) => {
            tracing::error!(op_id, "download: cannot read the operation log: {e}");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the operation log",
            );
        }
    };
    let snapshot_id = match &op.op {
        Some(Op::OperationIndexSnapshot(i)) => i
            .snapshot
            .as_ref()
            .map(|s| s.id.clone())
            .unwrap_or_default(),
        _ => return refuse(StatusCode::NOT_FOUND, "snapshot not found"),
    };
    if snapshot_id.is_empty() {
        return refuse(
            StatusCode::NOT_FOUND,
            "snapshot not found: the operation names no snapshot",
        );
    }
    let repo = match repo_of(&op, &state.config.get().repos) {
        Ok(repo) => repo,
        Err((status, msg)) => return refuse(status, msg),
    };
    let restic = match state.orchestrator.restic() {
        Ok(r) => r,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let client = match RepoClient::new(restic, repo) {
        Ok(c) => c,
        Err(e) => return refuse(StatusCode::INTERNAL_SERVER_ERROR, e),
    };
    let mut dump = match client.dump_tar(&snapshot_id, path) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!(op_id, "download: {e}");
            let status = if e.kind == ErrorKind::Spawn {
                StatusCode::INTERNAL_SERVER_ERROR
            } else {
                StatusCode::NOT_IMPLEMENTED
            };
            return refuse(
                status,
                format!("cannot download from the snapshot: {}", e.output),
            );
        }
    };
    tracing::info!(op_id, command = dump.command(), "download from snapshot");

    let mut first = vec![0u8; SNIFF_LEN];
    let n = match dump.read_full(&mut first).await {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(op_id, "download: reading restic's output failed: {e}");
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "reading restic's output failed",
            );
        }
    };
    first.truncate(n);
    let is_tar = starts_with_tar_header(&first);
    let name = download_name(path, is_tar);
    let complete = n < SNIFF_LEN;
    let body = if complete {
        // All of it is here: restic's exit decides between the file and an
        // error, and the length can be announced.
        if let Err(e) = dump.finish().await {
            tracing::warn!(op_id, "download from snapshot failed: {e}");
            return dump_failed(&e);
        }
        Body::from(first)
    } else {
        Body::from_stream(rest_of(dump, first, op_id))
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(if is_tar {
            "application/x-tar"
        } else {
            "application/octet-stream"
        }),
    );
    if complete {
        h.insert(header::CONTENT_LENGTH, HeaderValue::from(n));
    }
    h.insert(header::CONTENT_DISPOSITION, attachment(&name));
    resp
}

/// The body after the headers: the held-back bytes, then the rest of
/// restic's output; an error (restic failed or its output broke) ends it
/// abruptly.
fn rest_of(
    mut dump: Dump,
    first: Vec<u8>,
    op_id: i64,
) -> impl futures::Stream<Item = io::Result<Bytes>> + Send {
    async_stream::stream! {
        yield Ok(Bytes::from(first));
        loop {
            let mut buf = vec![0u8; CHUNK];
            match dump.read(&mut buf).await {
                Ok(0) => break,
                Ok(n) => {
                    buf.truncate(n);
                    yield Ok(Bytes::from(buf));
                }
                Err(e) => {
                    tracing::error!(op_id, "download from snapshot: reading restic's output failed: {e}");
                    yield Err(e);
                    return;
                }
            }
        }
        if let Err(e) = dump.finish().await {
            tracing::error!(op_id, "download from snapshot failed after it started: {e}");
            yield Err(io::Error::other(e.to_string()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_paths() {
        assert_eq!(check_snapshot_path("/home/u/file.txt"), Ok(()));
        assert_eq!(check_snapshot_path("/"), Ok(()));
        assert_eq!(check_snapshot_path("/a/./b..c/"), Ok(()));
        assert_eq!(check_snapshot_path(""), Err(SnapshotPathError::Empty));
        assert_eq!(check_snapshot_path("/a\0b"), Err(SnapshotPathError::Nul));
        assert_eq!(
            check_snapshot_path("home/u"),
            Err(SnapshotPathError::Relative)
        );
        assert_eq!(
            check_snapshot_path("/a/../etc"),
            Err(SnapshotPathError::ParentDir)
        );
        assert_eq!(
            check_snapshot_path("/.."),
            Err(SnapshotPathError::ParentDir)
        );
    }

    #[test]
    fn names() {
        assert_eq!(download_name("/home/u/file.txt", false), "file.txt");
        assert_eq!(download_name("/home/u/dir", true), "dir.tar");
        assert_eq!(download_name("/home/u/dir/", true), "dir.tar");
        assert_eq!(download_name("/home/u/old.tar", true), "old.tar");
        assert_eq!(download_name("/home/u/OLD.TAR", true), "OLD.TAR");
        assert_eq!(download_name("/home/u/x.tar.gz", false), "x.tar.gz");
        assert_eq!(download_name("/", true), "snapshot.tar");
        assert_eq!(download_name("/a/.", true), "a.tar");
    }

    fn tar_of(name: &str, data: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(data.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, data).unwrap();
        b.into_inner().unwrap()
    }

    #[test]
    fn tar_sniffing() {
        let t = tar_of("dir/a.txt", b"hello");
        assert!(starts_with_tar_header(&t));
        assert!(starts_with_tar_header(&t[..512]));
        assert!(!starts_with_tar_header(&t[..511]), "a cut header");
        let mut corrupt = t.clone();
        corrupt[0] ^= 1;
        assert!(!starts_with_tar_header(&corrupt), "checksum mismatch");
        assert!(!starts_with_tar_header(&[0u8; 1024]), "zeros");
        assert!(!starts_with_tar_header(b""));
        assert!(!starts_with_tar_header(&[b'x'; 4096]), "text");
        let mut gnu = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_gnu();
        h.set_size(0);
        gnu.append_data(&mut h, "d", &b""[..]).unwrap();
        assert!(starts_with_tar_header(&gnu.into_inner().unwrap()));
    }

    fn op(repo_id: &str, guid: &str) -> v1::Operation {
        v1::Operation {
            repo_id: repo_id.into(),
            repo_guid: guid.into(),
            ..Default::default()
        }
    }

    fn repo(id: &str, guid: &str) -> v1::Repo {
        v1::Repo {
            id: id.into(),
            guid: guid.into(),
            ..Default::default()
        }
    }

    #[test]
    fn repo_lookup() {
        let repos = [repo("a", "g1"), repo("b", "g2")];
        // By GUID, even when the repo was renamed.
        assert_eq!(repo_of(&op("old-name", "g2"), &repos).unwrap().id, "b");
        // By id when the operation has no GUID... which must then match.
        assert_eq!(
            repo_of(&op("a", ""), &repos).unwrap_err(),
            (StatusCode::NOT_FOUND, "repo GUID does not match".into())
        );
        // The id now names another repository.
        assert_eq!(
            repo_of(&op("a", "g9"), &repos).unwrap_err(),
            (StatusCode::NOT_FOUND, "repo GUID does not match".into())
        );
        let (status, msg) = repo_of(&op("gone", "g9"), &repos).unwrap_err();
        assert_eq!(status, StatusCode::NOT_FOUND);
        assert!(msg.contains("no longer configured"), "{msg}");
    }
}
