//! Login tokens, as Backrest makes them: JWT, HS256, claims exactly
//! `{"sub": <user>, "exp": <now + 7 days>}`, signed with the raw bytes of
//! `<data-dir>/jwt-secret` (64 random bytes, mode 0600, made on first start).
//! A data directory Backrest created keeps working: its secret is used as is,
//! so tokens it issued stay valid here and the other way round.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

/// How long a login token is valid (Backrest: 7 days).
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(7 * 24 * 3600);
/// The secret's file name inside the data directory.
pub const SECRET_FILE: &str = "jwt-secret";
const SECRET_LEN: usize = 64;

#[derive(Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub exp: u64,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
}

impl TokenKeys {
    pub fn new(secret: &[u8]) -> anyhow::Result<TokenKeys> {
        // Only HS256 is accepted: `alg: none`, other HMAC sizes and every
        // public-key algorithm fail before the signature is looked at.
        let mut validation = Validation::new(Algorithm::HS256);
        // Go's jwt library has no leeway by default; neither do we.
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub"]);
        Ok(TokenKeys {
            encoding: EncodingKey::from_secret(secret).context("invalid JWT secret")?,
            decoding: DecodingKey::from_secret(secret).context("invalid JWT secret")?,
            validation,
        })
    }

    /// A token for `user`, valid for [`TOKEN_LIFETIME`].
    pub fn issue(&self, user: &str) -> anyhow::Result<String> {
        let exp =
            SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + TOKEN_LIFETIME.as_secs();
        let claims = Claims {
            sub: user.to_string(),
            exp,
        };
        Ok(jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &self.encoding,
        )?)
    }

    /// The user a token names, if its algorithm, signature (compared in
    /// constant time by the HMAC crate) and expiry are good. Whether that
    /// user still exists is the caller's check.
    pub fn verify(&self, token: &str) -> Result<String, jsonwebtoken::errors::Error> {
        Ok(
            jsonwebtoken::decode::<Claims>(token.as_bytes(), &self.decoding, &self.validation)?
                .claims
                .sub,
        )
    }
}

/// Reads `<data-dir>/jwt-secret`, or creates it (64 random bytes, 0600) when
/// it does not exist. An empty file (a crash between create and write) is
/// replaced: no token can have been signed with it.
pub fn load_or_create_secret(data_dir: &Path) -> anyhow::Result<Vec<u8>> {
    crate::datadir::load_or_create_secret(data_dir, SECRET_FILE, SECRET_LEN, "JWT secret")
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn issue_and_verify() {
        let keys = TokenKeys::new(b"0123456789abcdef0123456789abcdef").unwrap();
        let t = keys.issue("alice").unwrap();
        assert_eq!(keys.verify(&t).unwrap(), "alice");
        // Header and claims are Backrest's exactly.
        let parts: Vec<&str> = t.split('.').collect();
        let header: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header, serde_json::json!({"alg": "HS256", "typ": "JWT"}));
        let claims: serde_json::Value =
            serde_json::from_slice(&B64.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(
            claims.as_object().unwrap().keys().collect::<Vec<_>>(),
            ["exp", "sub"]
        );
        // Another key refuses it.
        assert!(TokenKeys::new(b"another key").unwrap().verify(&t).is_err());
    }

    #[test]
    fn refuses_none_other_algorithms_and_expired() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let keys = TokenKeys::new(secret).unwrap();
        let future = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs()
            + 3600;
        let claims = B64.encode(format!(r#"{{"sub":"alice","exp":{future}}}"#));
        let none = format!("{}.{claims}.", B64.encode(r#"{"alg":"none","typ":"JWT"}"#));
        assert!(keys.verify(&none).is_err());
        let hs384 = jsonwebtoken::encode(
            &Header::new(Algorithm::HS384),
            &Claims {
                sub: "alice".into(),
                exp: future,
            },
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap();
        assert!(keys.verify(&hs384).is_err());
        let expired = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &Claims {
                sub: "alice".into(),
                exp: future - 7200,
            },
            &EncodingKey::from_secret(secret).unwrap(),
        )
        .unwrap();
        assert!(keys.verify(&expired).is_err());
        assert!(keys.verify("garbage").is_err());
    }

    #[test]
    fn secret_is_created_once_with_0600() {
        let dir = tempfile::tempdir().unwrap();
        let a = load_or_create_secret(dir.path()).unwrap();
        assert_eq!(a.len(), 64);
        let mode = std::fs::metadata(dir.path().join(SECRET_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create_secret(dir.path()).unwrap(), a);
        // A Backrest secret of any length is used as is.
        std::fs::write(dir.path().join(SECRET_FILE), b"backrest-secret").unwrap();
        assert_eq!(
            load_or_create_secret(dir.path()).unwrap(),
            b"backrest-secret"
        );
    }
}
