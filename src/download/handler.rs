//! `GET /download/<token>/[<path>]`: serves what a download link grants.
//!
//! The token names an operation and a path inside its restore target (see
//! `token`), or, for a link of type `"snapshot"`, an index-snapshot operation
//! and a path inside that snapshot (served by `snapshot`). An empty `<path>`
//! (the URL `GetDownloadURL` returns, and the only one Backrest's UI opens)
//! fetches that path; a non-empty one picks something below it, so one
//! directory link also serves each file in it. A restored file is sent as it
//! is, a restored directory as a `.tar.gz` made on the fly.
//!
//! Refusals are short plain text: 403 for a bad or expired token or a path
//! whose links lead out of the target, 400 for a malformed path (`..`, an
//! absolute path, NUL, bad percent-encoding), 404 for what does not exist.
//! The route needs no login (the token is the authorization), so the token
//! is never logged.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use bytes::Bytes;
use tokio::io::AsyncReadExt;

use super::archive::{open_regular, tar_gz_stream};
use super::resolve::{ResolveError, relative_path, resolve_inside};
use super::snapshot::{self, check_snapshot_path};
use crate::pb::v1::operation::Op;
use crate::server::AppState;

pub const PREFIX: &str = "/download/";

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/download/{*rest}", get(download))
        .layer(axum::middleware::map_response(download_headers))
        .with_state(state)
}

/// On every answer of this route, errors included.
async fn download_headers(resp: Response) -> Response {
    let mut resp = crate::web::with_security_headers(resp);
    let h = resp.headers_mut();
    // Private files: no shared cache may keep them, and the token must not
    // leak to another site through a Referer header.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Should a browser ever render a download instead of saving it, it gets
    // no scripts and no origin.
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static("default-src 'none'; sandbox"),
    );
    resp
}

fn refuse(status: StatusCode, message: impl Into<String>) -> Response {
    Refusal(status, message.into()).into_response()
}

/// A refusal decided off the async runtime, answered as plain text.
struct Refusal(StatusCode, String);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        (
            self.0,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            format!("{}\n", self.1),
        )
            .into_response()
    }
}

async fn download(State(state): State<AppState>, uri: Uri) -> Response {
    // The raw path, not axum's decoded capture: the checks below must see
    // exactly what the client sent (`%2e%2e` included).
    let raw = uri.path().strip_prefix(PREFIX).unwrap_or_default();
    let (token, rest) = raw.split_once('/').unwrap_or((raw, ""));
    let link = match state.download_links.verify(token) {
        Ok(link) => link,
        Err(e) => return refuse(StatusCode::FORBIDDEN, e.to_string()),
    };
    let Some(rest) = crate::web::percent_decode(rest) else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "the path in this link is not valid (bad percent-encoding, NUL or not UTF-8)",
        );
    };
    if link.kind == "snapshot" {
        return snapshot_download(&state, link.op_id, &link.file_path, &rest).await;
    }
    // (Joining an empty path would add a trailing slash, which a file fails.)
    let rel = match relative_path(&link.file_path).and_then(|base| {
        let below = relative_path(&rest)?;
        Ok(if below.as_os_str().is_empty() {
            base
        } else {
            base.join(below)
        })
    }) {
        Ok(rel) => rel,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let op = match state.oplog.get(link.op_id).await {
        Ok(Some(op)) => op,
        Ok(None) => {
            return refuse(
                StatusCode::NOT_FOUND,
                "restore not found: its operation was removed from the history",
            );
        }
        Err(e) => {
            tracing::error!(
                op_id = link.op_id,
                "download: cannot read the operation log: {e}"
            );
            return refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot read the operation log",
            );
        }
    };
    let target = match op.op {
        Some(Op::OperationRestore(r)) if !r.target.is_empty() => PathBuf::from(r.target),
        Some(Op::OperationRestore(_)) => {
            return refuse(StatusCode::NOT_FOUND, "restore target not found");
        }
        _ => return refuse(StatusCode::NOT_FOUND, "restore not found"),
    };
    let found = {
        let rel = rel.clone();
        tokio::task::spawn_blocking(move || locate(&target, &rel)).await
    };
    let found = match found {
        Ok(Ok(found)) => found,
        Ok(Err(refusal)) => return refusal.into_response(),
        Err(e) => {
            tracing::error!("download: lookup task failed: {e}");
            return refuse(StatusCode::INTERNAL_SERVER_ERROR, "internal error");
        }
    };
    tracing::info!(op_id = link.op_id, path = %rel.display(), "download");
    match found {
        Found::File { file, len, name } => file_response(file, len, &name),
        Found::Dir { path, name } => dir_response(path, &name),
    }
}

/// A `"snapshot"` link: `file_path` is absolute inside the snapshot, and
/// `rest` (relative, like below a restore link) picks something inside it.
async fn snapshot_download(state: &AppState, op_id: i64, file_path: &str, rest: &str) -> Response {
    let below = match relative_path(rest) {
        Ok(below) => below,
        Err(e) => return refuse(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let path = if below.as_os_str().is_empty() {
        file_path.to_string()
    } else {
        format!(
            "{}/{}",
            file_path.trim_end_matches('/'),
            below.to_string_lossy()
        )
    };
    if let Err(e) = check_snapshot_path(&path) {
        return refuse(StatusCode::BAD_REQUEST, e.to_string());
    }
    snapshot::serve(state, op_id, &path).await
}

enum Found {
    File { file: File, len: u64, name: String },
    Dir { path: PathBuf, name: String },
}

fn locate(target: &Path, rel: &Path) -> Result<Found, Refusal> {
    let (_, real) = resolve_inside(target, rel).map_err(|e| match e {
        ResolveError::TargetGone | ResolveError::NotFound => {
            Refusal(StatusCode::NOT_FOUND, e.to_string())
        }
        ResolveError::Outside => Refusal(StatusCode::FORBIDDEN, e.to_string()),
        ResolveError::Io(e) => io_refusal(target, rel, e),
    })?;
    let name = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "download".into());
    let meta = std::fs::metadata(&real).map_err(|e| io_refusal(target, rel, e))?;
    if meta.is_dir() {
        return Ok(Found::Dir { path: real, name });
    }
    match open_regular(&real) {
        Ok(Some((file, meta))) => Ok(Found::File {
            file,
            len: meta.len(),
            name,
        }),
        Ok(None) => Err(Refusal(
            StatusCode::NOT_FOUND,
            "not a regular file or directory".into(),
        )),
        Err(e) => Err(io_refusal(target, rel, e)),
    }
}

fn io_refusal(target: &Path, rel: &Path, e: io::Error) -> Refusal {
    // The details (server paths) go to the log, not to whoever holds a link.
    tracing::warn!("download: cannot read {}: {e}", target.join(rel).display());
    if e.kind() == io::ErrorKind::PermissionDenied {
        Refusal(
            StatusCode::FORBIDDEN,
            "the server may not read this file".into(),
        )
    } else {
        Refusal(
            StatusCode::INTERNAL_SERVER_ERROR,
            "cannot read this file".into(),
        )
    }
}

fn file_response(file: File, len: u64, name: &str) -> Response {
    let mime = mime_guess::from_path(name).first_or_octet_stream();
    let mut file = tokio::fs::File::from_std(file);
    let body = async_stream::stream! {
        let mut left = len;
        while left > 0 {
            let mut buf = vec![0u8; left.min(64 * 1024) as usize];
            match file.read(&mut buf).await {
                Ok(0) => {
                    // Shrunk since it was opened: abort rather than end
                    // short, the length has been announced already.
                    yield Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file shrank while it was being sent"));
                    break;
                }
                Ok(n) => {
                    buf.truncate(n);
                    left -= n as u64;
                    yield Ok::<Bytes, io::Error>(Bytes::from(buf));
                }
                Err(e) => {
                    yield Err(e);
                    break;
                }
            }
        }
    };
    let mut resp = Response::new(Body::from_stream(body));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime.as_ref())
            .unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
    h.insert(header::CONTENT_DISPOSITION, attachment(name));
    resp
}

fn dir_response(dir: PathBuf, name: &str) -> Response {
    let rx = tar_gz_stream(dir);
    let body = Body::from_stream(tokio_stream::wrappers::ReceiverStream::new(rx));
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/gzip"),
    );
    h.insert(
        header::CONTENT_DISPOSITION,
        attachment(&format!("{name}.tar.gz")),
    );
    resp
}

/// `attachment; filename="…"`, plus RFC 6266's `filename*` when the name
/// does not survive as plain ASCII. Quotes, backslashes, control characters
/// and path separators never reach the header: browsers could read them as
/// header syntax or as directories. `%` stays out of the plain form because
/// some browsers percent-decode it.
pub fn attachment(name: &str) -> HeaderValue {
    let cleaned: String = name
        .chars()
        .map(|c| {
            if c.is_control() || matches!(c, '"' | '\\' | '/') {
                '_'
            } else {
                c
            }
        })
        .collect();
    let cleaned = match cleaned.trim_matches(|c| c == ' ' || c == '.') {
        "" => "download",
        c => c,
    };
    let plain: String = cleaned
        .chars()
        .map(|c| if c.is_ascii() && c != '%' { c } else { '_' })
        .collect();
    let mut value = format!("attachment; filename=\"{plain}\"");
    if plain != cleaned {
        value.push_str("; filename*=UTF-8''");
        for b in cleaned.bytes() {
            if b.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&b) {
                value.push(b as char);
            } else {
                value.push_str(&format!("%{b:02X}"));
            }
        }
    }
    HeaderValue::from_str(&value).unwrap_or(HeaderValue::from_static("attachment"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attachment_names_are_safe() {
        let cd = |n: &str| attachment(n).to_str().unwrap().to_string();
        assert_eq!(cd("report.pdf"), "attachment; filename=\"report.pdf\"");
        assert_eq!(
            cd("a \"quoted\"\\name.txt"),
            "attachment; filename=\"a _quoted__name.txt\""
        );
        assert_eq!(
            cd("résumé 100%.txt"),
            "attachment; filename=\"r_sum_ 100_.txt\"; filename*=UTF-8''r%C3%A9sum%C3%A9%20100%25.txt"
        );
        assert_eq!(
            cd("evil\r\nSet-Cookie: x"),
            "attachment; filename=\"evil__Set-Cookie: x\""
        );
        assert_eq!(cd(".."), "attachment; filename=\"download\"");
        assert_eq!(cd("a/b"), "attachment; filename=\"a_b\"");
    }
}
