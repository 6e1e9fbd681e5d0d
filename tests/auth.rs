//! Authentication over real HTTP against the real binary: every RPC refused
//! without credentials when auth is on and answered with Basic auth or a
//! Login token; bad passwords and tokens refused; login throttling; a
//! Backrest-made config and JWT secret; public routes; PathAutocomplete;
//! CORS; the open-server warning.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use backrest_rs::connect::envelope;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use common::*;
use prost::Message;
use serde_json::{Value, json};

const USER: &str = "admin";
const PASS: &str = "correct horse battery staple";

#[derive(Clone)]
enum Cred {
    None,
    Basic(String, String),
    Bearer(String),
}

fn basic(u: &str, p: &str) -> Cred {
    Cred::Basic(u.to_string(), p.to_string())
}

fn with_cred(rb: reqwest::RequestBuilder, cred: &Cred) -> reqwest::RequestBuilder {
    match cred {
        Cred::None => rb,
        Cred::Basic(u, p) => rb.basic_auth(u, Some(p)),
        Cred::Bearer(t) => rb.bearer_auth(t),
    }
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body.get("code").and_then(|c| c.as_str()).unwrap_or("")
    }
}

/// A unary JSON call with credentials, optionally from a given forwarded address.
async fn call(s: &Server, procedure: &str, body: Value, cred: &Cred, xff: Option<&str>) -> Answer {
    let mut rb = client()
        .post(s.url(procedure))
        .header("content-type", "application/json")
        .body(body.to_string());
    if let Some(x) = xff {
        rb = rb.header("x-forwarded-for", x);
    }
    let resp = with_cred(rb, cred).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let bytes = resp.bytes().await.unwrap();
    let body = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
    };
    Answer {
        status,
        headers,
        body,
    }
}

async fn login(s: &Server, user: &str, pass: &str, xff: Option<&str>) -> Answer {
    call(
        s,
        "/v1.Authentication/Login",
        json!({"username": user, "password": pass}),
        &Cred::None,
        xff,
    )
    .await
}

async fn token(s: &Server, user: &str, pass: &str) -> String {
    let a = login(s, user, pass, None).await;
    assert_eq!(a.status, 200, "login failed: {}", a.body);
    a.body["token"].as_str().unwrap().to_string()
}

async fn hash_password(s: &Server, pass: &str) -> String {
    let a = call(
        s,
        "/v1.Authentication/HashPassword",
        json!({"value": pass}),
        &Cred::None,
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    a.body["value"].as_str().unwrap().to_string()
}

/// Turns auth on with one user (the way the UI does: HashPassword, then SetConfig).
async fn enable_auth(s: &Server) {
    let hash = hash_password(s, PASS).await;
    let mut cfg = ok_json(s, "/v1.Backrest/GetConfig", json!({})).await;
    cfg["instance"] = json!("auth-test");
    cfg["auth"] = json!({"disabled": false, "users": [{"name": USER, "passwordBcrypt": hash}]});
    ok_json(s, "/v1.Backrest/SetConfig", cfg).await;
}

fn assert_unauthenticated(a: &Answer, what: &str) {
    assert_eq!(a.status, 401, "{what}: {}", a.body);
    assert_eq!(a.code(), "unauthenticated", "{what}: {}", a.body);
    assert_eq!(a.headers["content-type"], "application/json", "{what}");
}

/// Every procedure of every service in the compiled proto, with its kind.
fn all_procedures() -> Vec<(String, bool /* streaming */)> {
    let set = prost_types::FileDescriptorSet::decode(backrest_rs::pb::DESCRIPTOR_SET).unwrap();
    let mut out = Vec::new();
    for f in &set.file {
        for svc in &f.service {
            for m in &svc.method {
                let streaming = m.server_streaming() || m.client_streaming();
                out.push((
                    format!("/{}.{}/{}", f.package(), svc.name(), m.name()),
                    streaming,
                ));
            }
        }
    }
    assert!(out.len() >= 25, "{out:?}");
    out
}

/// Calls `procedure` with an empty request (a stream: an enveloped `{}`) and
/// returns (status, Connect error code and message if the answer is an HTTP
/// error, content type).
async fn call_any(
    s: &Server,
    procedure: &str,
    streaming: bool,
    cred: &Cred,
) -> (u16, String, String, String) {
    let rb = if streaming {
        client()
            .post(s.url(procedure))
            .header("content-type", "application/connect+json")
            .header("connect-protocol-version", "1")
            .body(envelope::encode(0, b"{}").to_vec())
    } else {
        client()
            .post(s.url(procedure))
            .header("content-type", "application/json")
            .body("{}")
    };
    let resp = with_cred(rb, cred).send().await.unwrap();
    let status = resp.status().as_u16();
    let ct = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    if status == 200 {
        // Streams may never end (GetOperationEvents): do not read the body.
        return (status, String::new(), String::new(), ct);
    }
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    let field = |k: &str| body[k].as_str().unwrap_or("").to_string();
    (status, field("code"), field("message"), ct)
}

#[tokio::test]
async fn every_rpc_needs_credentials_and_accepts_basic_and_bearer() {
    let s = Server::start();
    enable_auth(&s).await;
    let procedures = all_procedures();
    let bearer = Cred::Bearer(token(&s, USER, PASS).await);

    for (proc_, streaming) in &procedures {
        let public = proc_.starts_with("/v1.Authentication/");
        let (status, code, message, ct) = call_any(&s, proc_, *streaming, &Cred::None).await;
        if public {
            // Login's own answer to an empty request is `unauthenticated`
            // "invalid password"; the gate's would name the missing header.
            assert!(
                status != 401 || message == "invalid password",
                "{proc_} is public: {status} {code} {message}"
            );
        } else {
            assert_eq!(
                (status, code.as_str()),
                (401, "unauthenticated"),
                "{proc_} without credentials"
            );
            assert_eq!(ct, "application/json", "{proc_}");
        }
        // Wrong credentials are refused the same way.
        if !public {
            let (status, code, _, _) =
                call_any(&s, proc_, *streaming, &Cred::Bearer("x.y.z".into())).await;
            assert_eq!(
                (status, code.as_str()),
                (401, "unauthenticated"),
                "{proc_} with a bad token"
            );
        }
        // SetConfig with `{}` would be refused for its stale modno anyway;
        // send the real config so the answer is a success.
        for cred in [basic(USER, PASS), bearer.clone()] {
            if proc_ == "/v1.Backrest/SetConfig" {
                let cfg = call(&s, "/v1.Backrest/GetConfig", json!({}), &cred, None).await;
                assert_eq!(cfg.status, 200);
                let a = call(&s, proc_, cfg.body, &cred, None).await;
                assert_eq!(a.status, 200, "SetConfig with credentials: {}", a.body);
                continue;
            }
            let (status, code, message, _) = call_any(&s, proc_, *streaming, &cred).await;
            if proc_ != "/v1.Authentication/Login" {
                assert_ne!(status, 401, "{proc_} with credentials");
                assert_ne!(
                    code, "unauthenticated",
                    "{proc_} with credentials: {message}"
                );
            }
        }
    }
    // The two services' answers are the RPCs' own: GetConfig works, and
    // SetupSftp's own validation answers a request without a host.
    let a = call(
        &s,
        "/v1.Backrest/GetConfig",
        json!({}),
        &basic(USER, PASS),
        None,
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body["auth"]["users"][0]["name"], USER);
    let a = call(&s, "/v1.Backrest/SetupSftp", json!({}), &bearer, None).await;
    assert_eq!(a.code(), "invalid_argument", "{}", a.body);
    assert_eq!(a.body["message"], "host is required", "{}", a.body);

    // Binary protobuf without credentials gets the same Connect error (JSON, per the spec).
    let err = call_proto::<pbjson_types::Empty, backrest_rs::pb::v1::Config>(
        &s,
        "/v1.Backrest/GetConfig",
        &pbjson_types::Empty {},
    )
    .await
    .unwrap_err();
    assert_eq!(err.0, 401);
    assert_eq!(err.1["code"], "unauthenticated");
}

#[tokio::test]
async fn curl_dash_u_exactly_as_documented() {
    let s = Server::start();
    enable_auth(&s).await;
    let run = |userpass: String| {
        let url = s.url("/v1.Backrest/GetConfig");
        async move {
            tokio::task::spawn_blocking(move || {
                std::process::Command::new("curl")
                    .args([
                        "-sS",
                        "-X",
                        "POST",
                        &url,
                        "-H",
                        "Content-Type: application/json",
                        "--data",
                        "{}",
                    ])
                    .args(["-u", &userpass, "-w", "\n%{http_code}"])
                    .output()
                    .expect("curl is installed")
            })
            .await
            .unwrap()
        }
    };
    let out = run(format!("{USER}:{PASS}")).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "200", "{text}");
    let cfg: Value = serde_json::from_str(body).unwrap();
    assert_eq!(cfg["instance"], "auth-test");

    let out = run(format!("{USER}:wrong")).await;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(text.ends_with("\n401"), "{text}");
    assert!(text.contains("\"unauthenticated\""), "{text}");
}

#[tokio::test]
async fn wrong_passwords_and_bad_tokens_are_refused() {
    let s = Server::start();
    enable_auth(&s).await;
    let get = |cred: Cred| {
        let s = &s;
        async move { call(s, "/v1.Backrest/GetConfig", json!({}), &cred, None).await }
    };
    assert_unauthenticated(&get(Cred::None).await, "no credentials");
    assert_unauthenticated(&get(basic(USER, "wrong")).await, "wrong password");
    assert_unauthenticated(&get(basic("nobody", PASS)).await, "unknown user");
    assert_eq!(get(basic(USER, PASS)).await.status, 200);

    // Login: unknown user and wrong password get the very same answer.
    let wrong = login(&s, USER, "wrong", None).await;
    let unknown = login(&s, "nobody", "wrong", None).await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        wrong.body,
        json!({"code": "unauthenticated", "message": "invalid password"})
    );
    assert_eq!(unknown.body, wrong.body);

    let good = token(&s, USER, PASS).await;
    assert_eq!(get(Cred::Bearer(good.clone())).await.status, 200);
    let parts: Vec<&str> = good.split('.').collect();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["sub"], USER);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let exp = claims["exp"].as_i64().unwrap();
    assert!(
        (exp - now - 7 * 24 * 3600).abs() < 60,
        "exp {exp} now {now}"
    );

    // Tampered signature, tampered claims.
    let mut sig = parts[2].as_bytes().to_vec();
    sig[5] = if sig[5] == b'A' { b'B' } else { b'A' };
    let bad_sig = format!(
        "{}.{}.{}",
        parts[0],
        parts[1],
        String::from_utf8(sig).unwrap()
    );
    assert_unauthenticated(&get(Cred::Bearer(bad_sig)).await, "tampered signature");
    let other_claims = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"root","exp":{}}}"#, now + 3600));
    assert_unauthenticated(
        &get(Cred::Bearer(format!(
            "{}.{other_claims}.{}",
            parts[0], parts[2]
        )))
        .await,
        "tampered claims",
    );

    // alg: none.
    let none_header = URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#);
    let claims_b64 = URL_SAFE_NO_PAD.encode(format!(r#"{{"sub":"{USER}","exp":{}}}"#, now + 3600));
    assert_unauthenticated(
        &get(Cred::Bearer(format!("{none_header}.{claims_b64}."))).await,
        "alg none",
    );

    // Signed with the real secret, but expired / another algorithm / unknown user.
    let secret = std::fs::read(s.data_dir().join("jwt-secret")).unwrap();
    assert_eq!(secret.len(), 64);
    assert_eq!(
        std::fs::metadata(s.data_dir().join("jwt-secret"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o600
    );
    let sign = |alg: jsonwebtoken::Algorithm, sub: &str, exp: i64| {
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(alg),
            &json!({"sub": sub, "exp": exp}),
            &jsonwebtoken::EncodingKey::from_secret(&secret).unwrap(),
        )
        .unwrap()
    };
    let ok = sign(jsonwebtoken::Algorithm::HS256, USER, now + 3600);
    assert_eq!(
        get(Cred::Bearer(ok)).await.status,
        200,
        "a token we sign like Backrest is accepted"
    );
    assert_unauthenticated(
        &get(Cred::Bearer(sign(
            jsonwebtoken::Algorithm::HS256,
            USER,
            now - 10,
        )))
        .await,
        "expired",
    );
    assert_unauthenticated(
        &get(Cred::Bearer(sign(
            jsonwebtoken::Algorithm::HS512,
            USER,
            now + 3600,
        )))
        .await,
        "HS512",
    );
    assert_unauthenticated(
        &get(Cred::Bearer(sign(
            jsonwebtoken::Algorithm::HS256,
            "ghost",
            now + 3600,
        )))
        .await,
        "unknown user",
    );
    let no_exp = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": USER}),
        &jsonwebtoken::EncodingKey::from_secret(&secret).unwrap(),
    )
    .unwrap();
    assert_unauthenticated(&get(Cred::Bearer(no_exp)).await, "no exp");
    assert_unauthenticated(&get(Cred::Bearer("garbage".into())).await, "garbage");
}

#[tokio::test]
async fn changing_a_password_or_removing_a_user_takes_effect_at_once() {
    let s = Server::start();
    enable_auth(&s).await;
    let admin = basic(USER, PASS);
    // Add carol; her Basic credential gets cached and she gets a token.
    let carol_hash = hash_password(&s, "carol-1").await;
    let mut cfg = call(&s, "/v1.Backrest/GetConfig", json!({}), &admin, None)
        .await
        .body;
    cfg["auth"]["users"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "carol", "passwordBcrypt": carol_hash}));
    assert_eq!(
        call(&s, "/v1.Backrest/SetConfig", cfg, &admin, None)
            .await
            .status,
        200
    );
    for _ in 0..3 {
        assert_eq!(
            call(
                &s,
                "/v1.Backrest/GetConfig",
                json!({}),
                &basic("carol", "carol-1"),
                None
            )
            .await
            .status,
            200
        );
    }
    let carol_token = token(&s, "carol", "carol-1").await;

    // New password: the cached old one stops working immediately.
    let new_hash = hash_password(&s, "carol-2").await;
    let mut cfg = call(&s, "/v1.Backrest/GetConfig", json!({}), &admin, None)
        .await
        .body;
    cfg["auth"]["users"][1]["passwordBcrypt"] = json!(new_hash);
    assert_eq!(
        call(&s, "/v1.Backrest/SetConfig", cfg, &admin, None)
            .await
            .status,
        200
    );
    assert_unauthenticated(
        &call(
            &s,
            "/v1.Backrest/GetConfig",
            json!({}),
            &basic("carol", "carol-1"),
            None,
        )
        .await,
        "old password",
    );
    assert_eq!(
        call(
            &s,
            "/v1.Backrest/GetConfig",
            json!({}),
            &basic("carol", "carol-2"),
            None
        )
        .await
        .status,
        200
    );
    // Her token stays valid while she exists (JWTs are not tied to the password, as in Backrest)...
    assert_eq!(
        call(
            &s,
            "/v1.Backrest/GetConfig",
            json!({}),
            &Cred::Bearer(carol_token.clone()),
            None
        )
        .await
        .status,
        200
    );
    // ...and dies with her account.
    let mut cfg = call(&s, "/v1.Backrest/GetConfig", json!({}), &admin, None)
        .await
        .body;
    cfg["auth"]["users"].as_array_mut().unwrap().truncate(1);
    assert_eq!(
        call(&s, "/v1.Backrest/SetConfig", cfg, &admin, None)
            .await
            .status,
        200
    );
    assert_unauthenticated(
        &call(
            &s,
            "/v1.Backrest/GetConfig",
            json!({}),
            &Cred::Bearer(carol_token),
            None,
        )
        .await,
        "removed user",
    );
    assert_unauthenticated(
        &call(
            &s,
            "/v1.Backrest/GetConfig",
            json!({}),
            &basic("carol", "carol-2"),
            None,
        )
        .await,
        "removed user",
    );

    // Disabling auth opens everything again, as in Backrest.
    let mut cfg = call(&s, "/v1.Backrest/GetConfig", json!({}), &admin, None)
        .await
        .body;
    cfg["auth"]["disabled"] = json!(true);
    assert_eq!(
        call(&s, "/v1.Backrest/SetConfig", cfg, &admin, None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&s, "/v1.Backrest/GetConfig", json!({}), &Cred::None, None)
            .await
            .status,
        200
    );
}

const BACKOFF_MS: u64 = 400;

fn assert_throttled(a: &Answer, what: &str) {
    assert_eq!(a.status, 429, "{what}: {}", a.body);
    assert_eq!(a.code(), "resource_exhausted", "{what}");
    assert!(
        a.body["message"]
            .as_str()
            .unwrap()
            .contains("try again in 1 s"),
        "{what}: {}",
        a.body
    );
    assert_eq!(a.headers["retry-after"], "1", "{what}");
}

#[tokio::test]
async fn login_throttling_kicks_in_and_lifts() {
    let s = ServerBuilder::new()
        .env("BACKREST_LOGIN_BACKOFF_MS", &BACKOFF_MS.to_string())
        .start();
    enable_auth(&s).await;
    let backoff = Duration::from_millis(BACKOFF_MS);
    let get = |cred: Cred, xff: &'static str| {
        let s = &s;
        async move { call(s, "/v1.Backrest/GetConfig", json!({}), &cred, Some(xff)).await }
    };

    // Per address: five failures (any usernames), then even the right password waits.
    for i in 0..5 {
        let a = login(&s, &format!("nobody-{i}"), "x", Some("10.0.0.1")).await;
        assert_eq!(a.status, 401, "attempt {i}: {}", a.body);
    }
    assert_throttled(
        &login(&s, USER, PASS, Some("10.0.0.1")).await,
        "login from a locked address",
    );
    assert_throttled(
        &get(basic(USER, PASS), "10.0.0.1").await,
        "Basic auth from a locked address",
    );
    // Tokens are not throttled, and other addresses are not affected.
    let t = token(&s, USER, PASS).await;
    assert_eq!(get(Cred::Bearer(t), "10.0.0.1").await.status, 200);
    assert_eq!(login(&s, USER, PASS, Some("10.0.0.2")).await.status, 200);
    // It lifts after the back-off.
    tokio::time::sleep(backoff + Duration::from_millis(100)).await;
    assert_eq!(login(&s, USER, PASS, Some("10.0.0.1")).await.status, 200);

    // Exponential: after the first lock, the next failure locks twice as long.
    for i in 0..5 {
        assert_eq!(
            login(&s, &format!("x-{i}"), "x", Some("10.0.0.3"))
                .await
                .status,
            401
        );
    }
    tokio::time::sleep(backoff + Duration::from_millis(100)).await;
    assert_eq!(login(&s, "x-5", "x", Some("10.0.0.3")).await.status, 401);
    tokio::time::sleep(backoff + Duration::from_millis(100)).await;
    assert_eq!(
        login(&s, USER, PASS, Some("10.0.0.3")).await.status,
        429,
        "still locked: 2x the back-off"
    );
    tokio::time::sleep(backoff).await;
    assert_eq!(login(&s, USER, PASS, Some("10.0.0.3")).await.status, 200);

    // Per username: ten failures for admin from ten addresses (Basic auth
    // counts too), then admin waits wherever the attempt comes from.
    for i in 0..10 {
        let xff: &'static str = Box::leak(format!("10.1.0.{i}").into_boxed_str());
        if i % 2 == 0 {
            assert_eq!(login(&s, USER, "wrong", Some(xff)).await.status, 401);
        } else {
            assert_unauthenticated(
                &get(basic(USER, "wrong"), xff).await,
                "wrong Basic password",
            );
        }
    }
    assert_throttled(
        &login(&s, USER, PASS, Some("10.2.0.1")).await,
        "locked username",
    );
    assert_throttled(
        &get(basic(USER, PASS), "10.2.0.2").await,
        "locked username over Basic",
    );
    // A username that does not exist is throttled just the same (no tell).
    for i in 0..10 {
        let xff: &'static str = Box::leak(format!("10.3.0.{i}").into_boxed_str());
        assert_eq!(login(&s, "ghost", "wrong", Some(xff)).await.status, 401);
    }
    assert_throttled(
        &login(&s, "ghost", "wrong", Some("10.4.0.1")).await,
        "locked unknown username",
    );
    tokio::time::sleep(backoff + Duration::from_millis(100)).await;
    assert_eq!(login(&s, USER, PASS, Some("10.2.0.1")).await.status, 200);
    assert!(
        s.stderr().contains("failed login"),
        "failed logins are logged"
    );
    assert!(!s.stderr().contains(PASS), "passwords are never logged");
}

#[tokio::test]
async fn unknown_users_take_as_long_as_wrong_passwords() {
    let s = Server::start();
    enable_auth(&s).await;
    let time = |user: &'static str, n: u32| {
        let s = &s;
        async move {
            let mut total = Duration::ZERO;
            for i in 0..3 {
                let xff = format!("10.9.{n}.{i}");
                let t0 = Instant::now();
                let a = login(s, user, "wrong", Some(&xff)).await;
                total += t0.elapsed();
                assert_eq!(a.body["message"], "invalid password");
            }
            total
        }
    };
    let known = time(USER, 1).await;
    let unknown = time("nobody", 2).await;
    let ratio = unknown.as_secs_f64() / known.as_secs_f64();
    assert!(
        (0.5..2.0).contains(&ratio),
        "unknown {unknown:?} vs known {known:?}"
    );
}

#[tokio::test]
async fn a_backrest_config_and_jwt_secret_keep_working() {
    let dir = tempfile::tempdir().unwrap();
    // A user hashed the way Backrest (Go, bcrypt.DefaultCost) does: $2a$, cost 10.
    let go_hash = bcrypt::non_truncating_hash_with_result("hunter2", 10)
        .unwrap()
        .format_for_version(bcrypt::Version::TwoA);
    assert!(go_hash.starts_with("$2a$10$"));
    std::fs::create_dir_all(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/config.json"),
        json!({"version": 6, "modno": 3, "instance": "legacy",
               "auth": {"users": [{"name": "bob", "passwordBcrypt": STANDARD.encode(&go_hash)}]}})
        .to_string(),
    )
    .unwrap();
    // Backrest's data dir with its 64-byte secret.
    let secret: Vec<u8> = (0..64u8)
        .map(|i| i.wrapping_mul(37).wrapping_add(11))
        .collect();
    std::fs::create_dir_all(dir.path().join("data")).unwrap();
    std::fs::write(dir.path().join("data/jwt-secret"), &secret).unwrap();

    let mut s = ServerBuilder::in_dir(dir.path()).start();
    assert_unauthenticated(
        &call(&s, "/v1.Backrest/GetConfig", json!({}), &Cred::None, None).await,
        "auth on",
    );
    let t = token(&s, "bob", "hunter2").await;
    assert_eq!(
        call(
            &s,
            "/v1.Backrest/GetConfig",
            json!({}),
            &Cred::Bearer(t.clone()),
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        call(
            &s,
            "/v1.Backrest/GetConfig",
            json!({}),
            &basic("bob", "hunter2"),
            None
        )
        .await
        .status,
        200
    );
    // The token is signed with the existing secret: Backrest would accept it, and we accept Backrest's.
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.leeway = 0;
    let claims = jsonwebtoken::decode::<Value>(
        &t,
        &jsonwebtoken::DecodingKey::from_secret(&secret).unwrap(),
        &v,
    )
    .unwrap()
    .claims;
    assert_eq!(claims["sub"], "bob");
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let backrest_token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "bob", "exp": now + 3600}),
        &jsonwebtoken::EncodingKey::from_secret(&secret).unwrap(),
    )
    .unwrap();
    assert_eq!(
        call(
            &s,
            "/v1.Backrest/GetConfig",
            json!({}),
            &Cred::Bearer(backrest_token),
            None
        )
        .await
        .status,
        200
    );
    assert_eq!(
        std::fs::read(dir.path().join("data/jwt-secret")).unwrap(),
        secret,
        "the secret is kept as it is"
    );

    // Tokens survive a restart.
    assert!(s.stop().success());
    let s = ServerBuilder::in_dir(dir.path()).start();
    assert_eq!(
        call(
            &s,
            "/v1.Backrest/GetConfig",
            json!({}),
            &Cred::Bearer(t),
            None
        )
        .await
        .status,
        200
    );

    // HashPassword makes what Backrest stores.
    let h = hash_password(&s, "pw").await;
    let raw = String::from_utf8(STANDARD.decode(&h).unwrap()).unwrap();
    assert!(raw.starts_with("$2a$10$") && raw.len() == 60, "{raw}");
    assert!(bcrypt::verify("pw", &raw).unwrap());
    // Over 72 bytes: refused, not silently truncated.
    let a = call(
        &s,
        "/v1.Authentication/HashPassword",
        json!({"value": "x".repeat(73)}),
        &Cred::None,
        None,
    )
    .await;
    assert_eq!(a.code(), "invalid_argument", "{}", a.body);
}

#[tokio::test]
async fn public_routes_stay_open() {
    let s = Server::start();
    enable_auth(&s).await;
    let c = client();
    let h = c.get(s.url("/healthz")).send().await.unwrap();
    assert_eq!(h.status(), 200);
    let page = c.get(s.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["x-content-type-options"], "nosniff");
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let missing = c.get(s.url("/assets/index-1234.js")).send().await.unwrap();
    assert_eq!(
        missing.status(),
        404,
        "web UI files are public (404 here: no UI dir)"
    );
    assert_eq!(missing.headers()["x-frame-options"], "DENY");
    for p in ["/openapi.json", "/docs", "/download/sometoken/file.txt"] {
        let st = c.get(s.url(p)).send().await.unwrap().status().as_u16();
        assert_ne!(st, 401, "{p}");
    }
    assert_ne!(login(&s, USER, PASS, None).await.status, 401);
    hash_password(&s, "x").await;
    // CORS preflight passes the gate.
    let pre = c
        .request(reqwest::Method::OPTIONS, s.url("/v1.Backrest/GetConfig"))
        .send()
        .await
        .unwrap();
    assert_ne!(pre.status(), 401);

    // /metrics and anything that is not a page need credentials; non-Connect
    // paths get Backrest's plain-text 401.
    let m = c.get(s.url("/metrics")).send().await.unwrap();
    assert_eq!(m.status(), 401);
    assert!(
        m.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(m.text().await.unwrap().starts_with("Unauthorized"));
    let m = c
        .get(s.url("/metrics"))
        .basic_auth(USER, Some(PASS))
        .send()
        .await
        .unwrap();
    assert_ne!(m.status(), 401);
    assert_eq!(
        c.post(s.url("/anything")).send().await.unwrap().status(),
        401
    );
    assert_eq!(
        c.get(s.url("/v1.Backrest/GetConfig"))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
}

async fn autocomplete(s: &Server, dir: &str, cred: &Cred) -> Answer {
    call(
        s,
        "/v1.Backrest/PathAutocomplete",
        json!({"value": dir}),
        cred,
        None,
    )
    .await
}

#[tokio::test]
async fn path_autocomplete_lists_directories() {
    let s = Server::start();
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("photos")).unwrap();
    std::fs::create_dir(d.path().join("Documents")).unwrap();
    std::fs::write(d.path().join("notes.txt"), "x").unwrap();
    std::fs::write(d.path().join(".hidden"), "x").unwrap();
    let dir = format!("{}/", d.path().display());

    let a = autocomplete(&s, &dir, &Cred::None).await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(
        a.body["values"],
        json!([".hidden", "Documents", "notes.txt", "photos"])
    );
    // Binary protobuf too.
    let list: backrest_rs::pb::types::StringList = call_proto(
        &s,
        "/v1.Backrest/PathAutocomplete",
        &backrest_rs::pb::types::StringValue {
            value: d.path().display().to_string(),
        },
    )
    .await
    .unwrap();
    assert_eq!(list.values, [".hidden", "Documents", "notes.txt", "photos"]);

    // A directory that does not exist (yet): an empty list, as in Backrest.
    let a = autocomplete(&s, &format!("{dir}nope/"), &Cred::None).await;
    assert_eq!(a.status, 200);
    assert!(
        a.body
            .get("values")
            .is_none_or(|v| v.as_array().unwrap().is_empty()),
        "{}",
        a.body
    );
    // A file: a clear error naming the path.
    let a = autocomplete(&s, &format!("{dir}notes.txt"), &Cred::None).await;
    assert_eq!(a.code(), "unknown", "{}", a.body);
    let msg = a.body["message"].as_str().unwrap();
    assert!(
        msg.contains("notes.txt") && msg.contains("not a directory"),
        "{msg}"
    );
    // Unreadable (only meaningful when not root: root reads anything).
    if unsafe { libc::geteuid() } != 0 {
        let locked = d.path().join("photos");
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();
        let a = autocomplete(&s, locked.to_str().unwrap(), &Cred::None).await;
        std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(a.code(), "unknown");
        assert!(
            a.body["message"]
                .as_str()
                .unwrap()
                .contains("permission denied"),
            "{}",
            a.body
        );
    }

    // With auth on it needs credentials like every other RPC.
    enable_auth(&s).await;
    assert_unauthenticated(
        &autocomplete(&s, &dir, &Cred::None).await,
        "PathAutocomplete",
    );
    let a = autocomplete(&s, &dir, &basic(USER, PASS)).await;
    assert_eq!(a.body["values"].as_array().unwrap().len(), 4);
}

#[tokio::test]
async fn cors_is_off_by_default_and_opt_in() {
    let preflight = |s: &Server| {
        client()
            .request(reqwest::Method::OPTIONS, s.url("/v1.Backrest/GetConfig"))
            .header("origin", "http://localhost:5173")
            .header("access-control-request-method", "POST")
            .header(
                "access-control-request-headers",
                "content-type,authorization,connect-protocol-version",
            )
            .send()
    };
    let s = Server::start();
    let r = preflight(&s).await.unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());

    let s = ServerBuilder::new()
        .arg("-cors-allow-origin")
        .arg("http://localhost:5173")
        .start();
    let r = preflight(&s).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    let allowed = r.headers()["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("connect-protocol-version"),
        "{allowed}"
    );
    // A 401 carries the CORS headers too, so the page can read it.
    enable_auth(&s).await;
    let r = client()
        .post(s.url("/v1.Backrest/GetConfig"))
        .header("origin", "http://localhost:5173")
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert_eq!(
        r.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );
    // Another origin is not allowed.
    let r = client()
        .request(reqwest::Method::OPTIONS, s.url("/v1.Backrest/GetConfig"))
        .header("origin", "http://evil.example")
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert!(r.headers().get("access-control-allow-origin").is_none());
}

#[tokio::test]
async fn open_server_on_a_public_address_warns_loudly() {
    let s = ServerBuilder::new()
        .arg("-bind-address")
        .arg("0.0.0.0:0")
        .start();
    // Still reachable on loopback, and open (auth is disabled).
    let base = s.base.replace("0.0.0.0", "127.0.0.1");
    let r = client()
        .post(format!("{base}/v1.Backrest/GetConfig"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        s.stderr().contains("AUTHENTICATION IS DISABLED"),
        "{}",
        s.stderr()
    );
    let quiet = Server::start();
    assert!(!quiet.stderr().contains("AUTHENTICATION IS DISABLED"));
}
