//! The request gate: every route needs credentials when auth is enabled,
//! except the public ones.
//!
//! Public, exactly: `/v1.Authentication/*` (Login, HashPassword), `/healthz`,
//! `/openapi.json`, `/docs` (and `/docs/*`), signed `/download/<token>/…`
//! links, and `GET`/`HEAD` of web UI files (any other path). Everything under
//! a Connect service prefix (taken from the compiled descriptor set, so a new
//! service is covered without an edit here), any `/v1.*` or `/v1sync.*` path,
//! `/metrics`, and every non-`GET` request to a path not listed above need
//! credentials. A new `GET` route that must be protected has to be added to
//! [`classify`]. `OPTIONS` always passes (CORS preflight), as in Backrest.
//!
//! One difference from Backrest: `/v1sync.BackrestSyncService/Sync` is public
//! there (peers authenticate with their own keys), but it only answers
//! `unimplemented` here, so it stays behind the gate until multihost sync is
//! built; that work must exempt it.
//!
//! Credentials: HTTP Basic (`curl -u user:pass`) or `Authorization: Bearer
//! <token from Login>`. With `auth` absent or disabled everything is open,
//! as in Backrest.
//!
//! Refusals are HTTP 401. For Connect paths the body is a Connect error
//! (`{"code":"unauthenticated",...}`, `application/json`), which every
//! Connect client reads as `unauthenticated`; elsewhere it is Backrest's plain
//! text. For server-streaming procedures this is also a plain HTTP 401 with
//! a JSON body rather than a 200 with an end-of-stream error: the Connect
//! protocol allows an HTTP error before the stream starts, and connect-web
//! and connect-go map the 401 status to `unauthenticated` (that is exactly
//! what Backrest's middleware sends them too).
//!
//! A throttled login (Basic auth here, or the Login RPC) is HTTP 429,
//! Connect `resource_exhausted`, with a `Retry-After` header.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use prost::Message;

use super::{Auth, LoginError, retry_after_secs};
use crate::connect::{Code, ConnectError};
use crate::server::AppState;

/// The identity a request was authenticated as (a request extension).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthenticatedUser(pub String);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Public,
    /// `/v1.Authentication/Login`: public, but its handler needs the client
    /// address (throttling) and may ask for a `Retry-After` header.
    Login,
    Protected,
}

pub const LOGIN_PATH: &str = "/v1.Authentication/Login";
const AUTH_SERVICE_PREFIX: &str = "/v1.Authentication/";

/// `/<package>.<Service>/` of every service in the proto, except Authentication.
fn protected_service_prefixes() -> &'static [String] {
    static PREFIXES: OnceLock<Vec<String>> = OnceLock::new();
    PREFIXES.get_or_init(|| {
        let set = prost_types::FileDescriptorSet::decode(crate::pb::DESCRIPTOR_SET)
            .expect("valid descriptor set");
        set.file
            .iter()
            .flat_map(|f| {
                f.service
                    .iter()
                    .map(move |s| format!("/{}.{}/", f.package(), s.name()))
            })
            .filter(|p| p != AUTH_SERVICE_PREFIX)
            .collect()
    })
}

/// Whether `path` belongs to the Connect API (errors there are Connect JSON).
pub fn is_connect_path(path: &str) -> bool {
    path.starts_with("/v1.")
        || path.starts_with("/v1sync.")
        || protected_service_prefixes()
            .iter()
            .any(|p| path.starts_with(p.as_str()))
}

/// Which routes need credentials (see the module docs).
pub fn classify(method: &Method, path: &str) -> Access {
    if path == LOGIN_PATH {
        return Access::Login;
    }
    if path.starts_with(AUTH_SERVICE_PREFIX)
        || matches!(path, "/healthz" | "/openapi.json" | "/docs")
        || path.starts_with("/docs/")
        || path.starts_with("/download/")
    {
        return Access::Public;
    }
    if is_connect_path(path) || path == "/metrics" || path.starts_with("/metrics/") {
        return Access::Protected;
    }
    if *method == Method::GET || *method == Method::HEAD {
        // The web UI: static files, public as in Backrest (all data comes
        // from authenticated RPCs).
        return Access::Public;
    }
    Access::Protected
}

/// The address a request comes from: the TCP peer, or — when the peer is a
/// loopback address, i.e. a reverse proxy on this host — the right-most
/// `X-Forwarded-For` entry, which is the one that proxy added.
pub fn client_ip(req: &Request) -> Option<IpAddr> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    if peer.is_none_or(|p| p.is_loopback()) {
        let forwarded = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|s| s.trim().parse::<IpAddr>().ok())
            .next_back();
        if forwarded.is_some() && peer.is_some() {
            return forwarded;
        }
    }
    peer
}

/// What the Login handler shares with the middleware around it.
pub struct LoginScope {
    pub client: Option<IpAddr>,
    retry_after: Mutex<Option<Duration>>,
}

tokio::task_local! {
    static LOGIN: Arc<LoginScope>;
}

/// The client address of the Login call being handled (None outside one).
pub fn login_client() -> Option<IpAddr> {
    LOGIN.try_with(|s| s.client).ok().flatten()
}

/// Asks the middleware to send `Retry-After` with the Login call's answer.
pub fn set_login_retry_after(after: Duration) {
    let _ =
        LOGIN.try_with(|s| *s.retry_after.lock().unwrap_or_else(|p| p.into_inner()) = Some(after));
}

/// The middleware. Installed around the whole router in `server::app`.
pub async fn require_auth(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let access = classify(req.method(), req.uri().path());
    let connect = is_connect_path(req.uri().path());
    match access {
        Access::Public => return next.run(req).await,
        Access::Login => {
            let scope = Arc::new(LoginScope {
                client: client_ip(&req),
                retry_after: Mutex::new(None),
            });
            let mut resp = LOGIN.scope(scope.clone(), next.run(req)).await;
            let after = *scope.retry_after.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(after) = after
                && resp.status() == StatusCode::TOO_MANY_REQUESTS
            {
                resp.headers_mut().insert(
                    header::RETRY_AFTER,
                    HeaderValue::from(retry_after_secs(after)),
                );
            }
            return resp;
        }
        Access::Protected => {}
    }
    if req.method() == Method::OPTIONS {
        return next.run(req).await;
    }
    let cfg = state.config.get();
    if !Auth::enabled(&cfg) {
        return next.run(req).await;
    }
    match credentials(req.headers()) {
        Credentials::Basic(user, pass) => match state
            .auth
            .check_password(client_ip(&req), &user, &pass)
            .await
        {
            Ok(()) => {
                req.extensions_mut().insert(AuthenticatedUser(user));
                next.run(req).await
            }
            Err(LoginError::Throttled(after)) => refuse(
                connect,
                Code::ResourceExhausted,
                &LoginError::retry_message(after),
                Some(after),
            ),
            Err(LoginError::Invalid) => refuse(
                connect,
                Code::Unauthenticated,
                "Unauthorized (Bad Credentials)",
                None,
            ),
        },
        Credentials::Bearer(token) => match state.auth.verify_token(&token) {
            Some(user) => {
                req.extensions_mut().insert(AuthenticatedUser(user));
                next.run(req).await
            }
            None => refuse(
                connect,
                Code::Unauthenticated,
                "Unauthorized (Bad Token)",
                None,
            ),
        },
        Credentials::None => refuse(
            connect,
            Code::Unauthenticated,
            "Unauthorized (No Authorization Header): send HTTP Basic credentials (curl -u USER:PASS) \
             or a bearer token from /v1.Authentication/Login",
            None,
        ),
    }
}

enum Credentials {
    Basic(String, String),
    Bearer(String),
    None,
}

/// Reads `Authorization`. The scheme name is case-insensitive (RFC 7235);
/// Basic's user is everything before the first `:`.
fn credentials(headers: &HeaderMap) -> Credentials {
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return Credentials::None;
    };
    let Some((scheme, rest)) = value.trim().split_once(' ') else {
        return Credentials::None;
    };
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(rest) else {
            return Credentials::None;
        };
        let text = String::from_utf8_lossy(&raw);
        match text.split_once(':') {
            Some((u, p)) => Credentials::Basic(u.to_string(), p.to_string()),
            None => Credentials::None,
        }
    } else if scheme.eq_ignore_ascii_case("bearer") && !rest.is_empty() {
        Credentials::Bearer(rest.to_string())
    } else {
        Credentials::None
    }
}

fn refuse(connect: bool, code: Code, message: &str, retry_after: Option<Duration>) -> Response {
    let mut resp = if connect {
        ConnectError::new(code, message).into_response()
    } else {
        let mut r = (code.http_status(), format!("{message}\n")).into_response();
        r.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
        r
    };
    let h = resp.headers_mut();
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if let Some(after) = retry_after {
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_secs(after)),
        );
    }
    resp
}

/// CORS for the origins given by `-cors-allow-origin` (`*` = any), or none.
///
/// Backrest sends CORS headers only in dev builds (`Access-Control-Allow-Origin:
/// *` for everything); its release builds, like this server by default, are
/// same-origin only. Opting in allows what a Connect web client needs:
/// `GET`/`POST` (plus Backrest's `PUT`/`DELETE`), the Connect headers and
/// `Authorization`, and exposes the response headers it reads.
pub fn cors(origins: &[String]) -> Option<tower_http::cors::CorsLayer> {
    use tower_http::cors::{AllowOrigin, CorsLayer};
    if origins.is_empty() {
        return None;
    }
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| match HeaderValue::from_str(o) {
                    Ok(v) => Some(v),
                    Err(_) => {
                        tracing::warn!("ignoring invalid CORS origin {o:?}");
                        None
                    }
                }),
        )
    };
    let h = |s: &'static str| http::HeaderName::from_static(s);
    Some(
        CorsLayer::new()
            .allow_origin(allow)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::DELETE,
                Method::OPTIONS,
            ])
            .allow_headers([
                header::CONTENT_TYPE,
                header::AUTHORIZATION,
                header::ACCEPT_ENCODING,
                header::CONTENT_ENCODING,
                h("connect-protocol-version"),
                h("connect-timeout-ms"),
                h("connect-accept-encoding"),
                h("connect-content-encoding"),
            ])
            .expose_headers([
                header::CONTENT_ENCODING,
                header::RETRY_AFTER,
                h("connect-content-encoding"),
            ])
            .max_age(Duration::from_secs(7200)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_classified() {
        let post = Method::POST;
        let get = Method::GET;
        assert_eq!(classify(&post, "/v1.Authentication/Login"), Access::Login);
        assert_eq!(
            classify(&post, "/v1.Authentication/HashPassword"),
            Access::Public
        );
        for p in [
            "/v1.Backrest/GetConfig",
            "/v1.Backrest/Nope",
            "/v1sync.BackrestSyncStateService/SetRemoteClientConfig",
            "/v1sync.BackrestSyncService/Sync",
            "/v1.Future/X",
        ] {
            assert_eq!(classify(&post, p), Access::Protected, "{p}");
            assert_eq!(classify(&get, p), Access::Protected, "{p}");
        }
        assert_eq!(classify(&get, "/metrics"), Access::Protected);
        for p in [
            "/healthz",
            "/openapi.json",
            "/docs",
            "/docs/x.css",
            "/download/tok/a",
        ] {
            assert_eq!(classify(&get, p), Access::Public, "{p}");
        }
        assert_eq!(classify(&get, "/"), Access::Public);
        assert_eq!(classify(&get, "/assets/index-abc.js"), Access::Public);
        assert_eq!(classify(&Method::HEAD, "/favicon.ico"), Access::Public);
        assert_eq!(classify(&post, "/"), Access::Protected);
        assert_eq!(classify(&Method::DELETE, "/anything"), Access::Protected);
    }

    #[test]
    fn every_proto_service_but_authentication_is_protected() {
        let prefixes = protected_service_prefixes();
        for p in [
            "/v1.Backrest/",
            "/v1sync.BackrestSyncStateService/",
            "/v1sync.BackrestSyncService/",
        ] {
            assert!(prefixes.iter().any(|x| x == p), "{p} in {prefixes:?}");
        }
        assert!(!prefixes.iter().any(|x| x == AUTH_SERVICE_PREFIX));
    }

    #[test]
    fn authorization_header_forms() {
        let mut h = HeaderMap::new();
        assert!(matches!(credentials(&h), Credentials::None));
        h.insert(
            header::AUTHORIZATION,
            "Basic YWxpY2U6cGE6c3M=".parse().unwrap(),
        ); // alice:pa:ss
        assert!(
            matches!(credentials(&h), Credentials::Basic(u, p) if u == "alice" && p == "pa:ss")
        );
        h.insert(
            header::AUTHORIZATION,
            "basic YWxpY2U6cGE6c3M=".parse().unwrap(),
        );
        assert!(matches!(credentials(&h), Credentials::Basic(..)));
        h.insert(header::AUTHORIZATION, "Bearer abc.def.ghi".parse().unwrap());
        assert!(matches!(credentials(&h), Credentials::Bearer(t) if t == "abc.def.ghi"));
        h.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert!(matches!(credentials(&h), Credentials::None));
        h.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert!(matches!(credentials(&h), Credentials::None));
    }

    #[test]
    fn forwarded_for_only_from_loopback_peers() {
        let mk = |peer: &str, xff: Option<&str>| {
            let mut req = Request::new(axum::body::Body::empty());
            req.extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
            if let Some(x) = xff {
                req.headers_mut()
                    .insert("x-forwarded-for", x.parse().unwrap());
            }
            client_ip(&req)
        };
        assert_eq!(mk("127.0.0.1:5", None), Some("127.0.0.1".parse().unwrap()));
        assert_eq!(
            mk("127.0.0.1:5", Some("1.1.1.1, 2.2.2.2")),
            Some("2.2.2.2".parse().unwrap())
        );
        assert_eq!(
            mk("8.8.8.8:5", Some("2.2.2.2")),
            Some("8.8.8.8".parse().unwrap())
        );
        assert_eq!(client_ip(&Request::new(axum::body::Body::empty())), None);
    }
}
