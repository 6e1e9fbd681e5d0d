//! API documentation: `GET /openapi.json`, the OpenAPI 3.1 document that
//! `build/openapi.rs` generates from `proto/` at build time, and `GET /docs`,
//! a page that renders it with Redoc. Redoc's bundle is vendored under
//! `assets/redoc/` (pinned, checksummed; see its README) and embedded in the
//! binary, so the page needs no network and no Node.js at build time.

use std::sync::OnceLock;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;

/// The generated OpenAPI document.
pub const OPENAPI_JSON: &str = include_str!(concat!(env!("OUT_DIR"), "/openapi.json"));

/// Redoc's standalone bundle (`redoc@2.5.4`, `bundles/redoc.standalone.js`).
pub const REDOC_JS: &[u8] = include_bytes!("../assets/redoc/redoc.standalone.js");
/// The bundle's pinned SHA-256 (`assets/redoc/SHA256SUMS`), checked by tests.
pub const REDOC_SHA256SUMS: &str = include_str!("../assets/redoc/SHA256SUMS");

pub const OPENAPI_PATH: &str = "/openapi.json";
pub const DOCS_PATH: &str = "/docs";
const REDOC_PATH: &str = "/docs/redoc.standalone.js";

/// Paths that never require credentials, even once authentication is enabled:
/// the documentation describes the API, it exposes no data. The auth
/// middleware must let these through (along with `/healthz` and
/// `v1.Authentication/*`).
pub const PUBLIC_PATHS: &[&str] = &[OPENAPI_PATH, DOCS_PATH, REDOC_PATH];

pub fn routes() -> Router {
    Router::new()
        .route(OPENAPI_PATH, get(openapi_json))
        .route(DOCS_PATH, get(docs_page))
        // The page loads `docs/…` and `openapi.json` relative to itself (so it
        // also works under a reverse proxy's path prefix): send `/docs/` back.
        .route("/docs/", get(|| async { Redirect::permanent("../docs") }))
        .route(REDOC_PATH, get(redoc_js))
}

async fn openapi_json(headers: HeaderMap) -> Response {
    static GZ: OnceLock<Vec<u8>> = OnceLock::new();
    asset(
        "application/json",
        OPENAPI_JSON.as_bytes(),
        &GZ,
        &headers,
        "no-cache",
    )
}

async fn redoc_js(headers: HeaderMap) -> Response {
    static GZ: OnceLock<Vec<u8>> = OnceLock::new();
    // The URL does not change with the bundle: revalidate after a day.
    asset(
        "text/javascript; charset=utf-8",
        REDOC_JS,
        &GZ,
        &headers,
        "public, max-age=86400",
    )
}

async fn docs_page() -> Response {
    let mut resp = (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        DOCS_HTML.replace("{version}", crate::VERSION),
    )
        .into_response();
    let h = resp.headers_mut();
    // Redoc injects styles and runs its search in a blob: worker; everything
    // else comes from this server. (Its footer's logo, from Redocly's CDN, is
    // blocked: the page makes no request elsewhere.)
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'",
        ),
    );
    crate::web::with_security_headers(resp)
}

/// Serves an embedded asset, gzip-compressed (once, lazily) when the client
/// accepts it.
fn asset(
    mime: &'static str,
    bytes: &'static [u8],
    gz: &'static OnceLock<Vec<u8>>,
    headers: &HeaderMap,
    cache: &'static str,
) -> Response {
    let accepts_gzip = headers
        .get(header::ACCEPT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            crate::connect::compression::negotiate(Some(v))
                == crate::connect::compression::Encoding::Gzip
        });
    let body = if accepts_gzip {
        Body::from(
            gz.get_or_init(|| crate::connect::compression::gzip(bytes))
                .as_slice(),
        )
    } else {
        Body::from(bytes)
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    if accepts_gzip {
        h.insert(header::CONTENT_ENCODING, HeaderValue::from_static("gzip"));
    }
    crate::web::with_security_headers(resp)
}

const DOCS_HTML: &str = r##"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>backrest-rs {version} API</title>
<style>body{margin:0;padding:0}</style>
</head>
<body>
<noscript><p>This page needs JavaScript. The API description itself is at <a href="openapi.json">/openapi.json</a>.</p></noscript>
<div id="redoc"></div>
<script src="docs/redoc.standalone.js"></script>
<script>
Redoc.init("openapi.json", {
  expandResponses: "200",
  hideDownloadButton: false,
  hideRequestPayloadSample: true,
  jsonSampleExpandLevel: 3,
  pathInMiddlePanel: true,
  requiredPropsFirst: true,
  sortPropsAlphabetically: false,
  theme: { typography: { fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif", headings: { fontFamily: "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif" }, code: { fontFamily: "ui-monospace, SFMono-Regular, Menlo, Consolas, monospace" } } }
}, document.getElementById("redoc"));
</script>
</body>
</html>
"##;
