//! Download links: who may fetch what, and until when.
//!
//! A link carries a token in Backrest's shape: an HS256 JWT whose `sub` is a
//! JSON payload `{"op_id", "type", "file_path"}` and whose `exp` is 24 hours
//! after issue. Unlike Backrest, whose key lives only in memory (so every
//! restart kills every link), the key is `<data-dir>/download-secret`, kept
//! apart from the login key so that neither kind of token can pass for the
//! other. Signatures are checked in constant time by the HMAC crate.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How long a link works (Backrest: 24 hours).
pub const LINK_LIFETIME: Duration = Duration::from_secs(24 * 3600);
/// The key's file name inside the data directory.
pub const SECRET_FILE: &str = "download-secret";
const SECRET_LEN: usize = 32;

/// Testing knob: seconds added to the clock that issues and checks links, so
/// a test can restart the server "25 hours later" and see a link expire.
/// Only download links use this clock; nothing else in the server does.
pub const TIME_OFFSET_ENV: &str = "BACKREST_RS_TEST_TIME_OFFSET_SECS";

/// What a link grants: the files of one operation below `file_path`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkPayload {
    pub op_id: i64,
    /// `"restore"` or `"snapshot"` (as Backrest).
    #[serde(rename = "type")]
    pub kind: String,
    pub file_path: String,
}

#[derive(Serialize, Deserialize)]
struct Claims {
    sub: String,
    exp: i64,
}

#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkError {
    #[error("this download link has expired")]
    Expired,
    #[error("this download link is not valid")]
    Invalid,
}

/// "Now" for links: the system clock, shifted by [`TIME_OFFSET_ENV`] in tests.
#[derive(Clone, Copy, Debug, Default)]
pub struct Clock {
    offset_secs: i64,
}

impl Clock {
    pub fn with_offset(offset_secs: i64) -> Clock {
        Clock { offset_secs }
    }

    /// Reads [`TIME_OFFSET_ENV`]; unset means the real clock.
    pub fn from_env() -> anyhow::Result<Clock> {
        match std::env::var(TIME_OFFSET_ENV) {
            Err(_) => Ok(Clock::default()),
            Ok(v) => {
                let offset_secs: i64 = v.trim().parse().map_err(|_| {
                    anyhow::anyhow!("{TIME_OFFSET_ENV}={v:?} is not a whole number of seconds")
                })?;
                tracing::warn!(
                    offset_secs,
                    "{TIME_OFFSET_ENV} is set: download links are issued and checked with a shifted clock (a testing knob)"
                );
                Ok(Clock { offset_secs })
            }
        }
    }

    pub fn now_unix(&self) -> i64 {
        let real = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        real.saturating_add(self.offset_secs)
    }
}

pub struct LinkSigner {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    clock: Clock,
}

impl LinkSigner {
    pub fn new(secret: &[u8], clock: Clock) -> anyhow::Result<LinkSigner> {
        let mut validation = Validation::new(Algorithm::HS256);
        // Expiry is checked against our own (injectable) clock below.
        validation.validate_exp = false;
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(LinkSigner {
            encoding: EncodingKey::from_secret(secret)?,
            decoding: DecodingKey::from_secret(secret)?,
            validation,
            clock,
        })
    }

    /// Loads (or creates, 0600) `<data-dir>/download-secret`.
    pub fn open(data_dir: &Path, clock: Clock) -> anyhow::Result<LinkSigner> {
        let secret = crate::datadir::load_or_create_secret(
            data_dir,
            SECRET_FILE,
            SECRET_LEN,
            "download-link secret",
        )?;
        LinkSigner::new(&secret, clock)
    }

    pub fn sign(&self, payload: &LinkPayload) -> anyhow::Result<String> {
        let claims = Claims {
            sub: serde_json::to_string(payload)?,
            exp: self.clock.now_unix() + LINK_LIFETIME.as_secs() as i64,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The payload of a genuine, unexpired token. The signature is checked
    /// before anything in the token is believed, the expiry included.
    pub fn verify(&self, token: &str) -> Result<LinkPayload, LinkError> {
        let claims =
            jsonwebtoken::decode::<Claims>(token.as_bytes(), &self.decoding, &self.validation)
                .map_err(|_| LinkError::Invalid)?
                .claims;
        if claims.exp <= self.clock.now_unix() {
            return Err(LinkError::Expired);
        }
        serde_json::from_str(&claims.sub).map_err(|_| LinkError::Invalid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    fn payload() -> LinkPayload {
        LinkPayload {
            op_id: 42,
            kind: "restore".into(),
            file_path: "docs/a.txt".into(),
        }
    }

    #[test]
    fn round_trip_in_backrests_shape() {
        use base64::Engine;
        let signer = LinkSigner::new(KEY, Clock::default()).unwrap();
        let token = signer.sign(&payload()).unwrap();
        assert_eq!(signer.verify(&token).unwrap(), payload());
        let claims = token.split('.').nth(1).unwrap();
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(claims)
                .unwrap(),
        )
        .unwrap();
        let sub: serde_json::Value = serde_json::from_str(claims["sub"].as_str().unwrap()).unwrap();
        assert_eq!(
            sub,
            serde_json::json!({"op_id": 42, "type": "restore", "file_path": "docs/a.txt"})
        );
        let exp = claims["exp"].as_i64().unwrap();
        let want = Clock::default().now_unix() + 24 * 3600;
        assert!((want - 5..=want).contains(&exp), "exp {exp}, want ~{want}");
    }

    #[test]
    fn refuses_other_keys_tampering_and_garbage() {
        let signer = LinkSigner::new(KEY, Clock::default()).unwrap();
        let token = signer.sign(&payload()).unwrap();
        let other = LinkSigner::new(b"another key", Clock::default()).unwrap();
        assert_eq!(other.verify(&token), Err(LinkError::Invalid));
        // Flip one character of the signature.
        let mut bytes = token.clone().into_bytes();
        let last = bytes.len() - 2;
        bytes[last] = if bytes[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(
            signer.verify(&String::from_utf8(bytes).unwrap()),
            Err(LinkError::Invalid)
        );
        // Another operation's payload swapped in under the old signature.
        let parts: Vec<&str> = token.split('.').collect();
        let forged = other
            .sign(&LinkPayload {
                op_id: 43,
                ..payload()
            })
            .unwrap();
        let forged_claims = forged.split('.').nth(1).unwrap();
        let spliced = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(signer.verify(&spliced), Err(LinkError::Invalid));
        assert_eq!(signer.verify(""), Err(LinkError::Invalid));
        assert_eq!(signer.verify("a.b.c"), Err(LinkError::Invalid));
    }

    #[test]
    fn expires_after_24_hours_on_the_injected_clock() {
        let issuer = LinkSigner::new(KEY, Clock::default()).unwrap();
        let token = issuer.sign(&payload()).unwrap();
        let later = |h: i64| LinkSigner::new(KEY, Clock::with_offset(h * 3600)).unwrap();
        assert!(later(23).verify(&token).is_ok());
        assert_eq!(later(25).verify(&token), Err(LinkError::Expired));
    }

    #[test]
    fn key_is_created_once_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = LinkSigner::open(dir.path(), Clock::default()).unwrap();
        let token = a.sign(&payload()).unwrap();
        let meta = std::fs::metadata(dir.path().join(SECRET_FILE)).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert_eq!(meta.len(), SECRET_LEN as u64);
        // A second start reads the same key: the link still works.
        let b = LinkSigner::open(dir.path(), Clock::default()).unwrap();
        assert_eq!(b.verify(&token).unwrap(), payload());
    }
}
