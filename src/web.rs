//! Everything that is not an RPC: the web UI (or a built-in landing page) and
//! `/healthz`.

use std::path::{Component, Path, PathBuf};

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;

use crate::server::AppState;

pub fn routes(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/", get(index))
        .fallback(get(static_file))
        .with_state(state)
}

async fn healthz() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"status\":\"ok\",\"version\":\"{}\"}}", crate::VERSION),
    )
}

async fn index(State(state): State<AppState>, headers: HeaderMap) -> Response {
    match &state.options.webui_dir {
        Some(dir) => serve_from(dir, "index.html", &headers).await,
        None => with_security_headers(Html(landing_page()).into_response()),
    }
}

async fn static_file(State(state): State<AppState>, req: Request) -> Response {
    let Some(dir) = &state.options.webui_dir else {
        return not_found();
    };
    let rel = req.uri().path().trim_start_matches('/');
    let rel = if rel.is_empty() || rel.ends_with('/') {
        format!("{rel}index.html")
    } else {
        rel.to_string()
    };
    serve_from(dir, &rel, req.headers()).await
}

/// Resolves `rel` inside `dir`, refusing anything that could escape it.
fn safe_join(dir: &Path, rel: &str) -> Option<PathBuf> {
    let decoded = percent_decode(rel)?;
    let mut out = dir.to_path_buf();
    for comp in Path::new(&decoded).components() {
        match comp {
            Component::Normal(c) => out.push(c),
            Component::CurDir => {}
            _ => return None,
        }
    }
    Some(out)
}

/// `%XX` escapes decoded; `None` for a bad escape, non-UTF-8 or a NUL.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    let s = String::from_utf8(out).ok()?;
    if s.contains('\0') { None } else { Some(s) }
}

/// Serves `rel` from the web UI directory. Backrest's UI build stores every
/// asset gzip-compressed only (`X.gz`), so a missing `X` is served from `X.gz`:
/// as-is with `Content-Encoding: gzip` when the client accepts gzip, else
/// decompressed.
async fn serve_from(dir: &Path, rel: &str, headers: &HeaderMap) -> Response {
    let Some(path) = safe_join(dir, rel) else {
        return not_found();
    };
    let mime = mime_guess::from_path(&path)
        .first_or_octet_stream()
        .to_string();
    if let Ok(meta) = tokio::fs::metadata(&path).await
        && meta.is_file()
        && let Ok(bytes) = tokio::fs::read(&path).await
    {
        return file_response(&mime, bytes, false);
    }
    let mut gz = path.clone().into_os_string();
    gz.push(".gz");
    let Ok(bytes) = tokio::fs::read(&gz).await else {
        return not_found();
    };
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            crate::connect::compression::negotiate(Some(v))
                == crate::connect::compression::Encoding::Gzip
        });
    if accepts_gzip {
        file_response(&mime, bytes, true)
    } else {
        match crate::connect::compression::gunzip(&bytes, 256 * 1024 * 1024) {
            Ok(plain) => file_response(&mime, plain, false),
            Err(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "corrupt compressed asset",
            )
                .into_response(),
        }
    }
}

fn file_response(mime: &str, bytes: Vec<u8>, gzipped: bool) -> Response {
    let mut resp = Response::new(Body::from(bytes));
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_str(mime).unwrap_or(HeaderValue::from_static("application/octet-stream")),
    );
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if gzipped {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    with_security_headers(resp)
}

fn not_found() -> Response {
    with_security_headers((StatusCode::NOT_FOUND, "404 page not found\n").into_response())
}

pub fn with_security_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    resp
}

fn landing_page() -> String {
    format!(
        r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>backrest-rs</title>
<style>body{{font-family:system-ui,sans-serif;max-width:46rem;margin:3rem auto;padding:0 1rem;line-height:1.5}}
code,pre{{background:#f3f3f3;padding:.1rem .3rem;border-radius:3px}}pre{{padding:.8rem;overflow:auto}}</style></head>
<body>
<h1>backrest-rs {version}</h1>
<p>A server for self-hosted restic backups that speaks Backrest's API. No web UI is
configured: start the server with <code>-webui-dir DIR</code> (or <code>BACKREST_WEBUI_DIR</code>)
pointing at a built Backrest web UI to serve it here.</p>
<h2>API</h2>
<p>The API is served with the Connect protocol at <code>POST /&lt;package&gt;.&lt;Service&gt;/&lt;Method&gt;</code>,
as JSON (<code>application/json</code>) or binary protobuf (<code>application/proto</code>). Services:
<code>v1.Backrest</code>, <code>v1.Authentication</code>, <code>v1sync.BackrestSyncStateService</code>.</p>
<pre>curl -X POST http://HOST/v1.Backrest/GetConfig -H 'Content-Type: application/json' --data '{{}}'
curl -X POST http://HOST/v1.Backrest/GetOperations -H 'Content-Type: application/json' \
     --data '{{"selector": {{"planId": "PLAN_ID"}}, "lastN": "10"}}'</pre>
<p>Health check: <a href="healthz">/healthz</a>.</p>
</body></html>
"#,
        version = crate::VERSION
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_join_refuses_escapes() {
        let d = Path::new("/srv/ui");
        assert_eq!(
            safe_join(d, "assets/a.js"),
            Some(PathBuf::from("/srv/ui/assets/a.js"))
        );
        assert_eq!(safe_join(d, "./a.js"), Some(PathBuf::from("/srv/ui/a.js")));
        assert_eq!(safe_join(d, "../etc/passwd"), None);
        assert_eq!(safe_join(d, "a/%2e%2e/%2e%2e/x"), None);
        assert_eq!(safe_join(d, "/etc/passwd"), None);
        assert_eq!(safe_join(d, "a%00b"), None);
    }
}
