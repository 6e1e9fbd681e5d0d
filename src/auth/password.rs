//! Password hashes as Backrest stores them: standard base64 (with padding) of
//! a bcrypt hash string, made with Go's `bcrypt.DefaultCost` (10) and the
//! `$2a$` prefix Go writes. Verification accepts `$2a$`, `$2b$` and `$2y$`.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Go's `bcrypt.DefaultCost`, which Backrest uses.
pub const COST: u32 = 10;

/// `base64(bcrypt(password))`, exactly as Backrest's `HashPassword` makes it.
/// Passwords longer than 72 bytes are refused (Go's bcrypt refuses them too;
/// silently truncating would accept other passwords sharing the prefix).
pub fn hash(password: &str) -> Result<String, String> {
    let parts = bcrypt::non_truncating_hash_with_result(password, COST).map_err(|e| match e {
        bcrypt::BcryptError::Truncation(n) => {
            format!("password is {n} bytes long; bcrypt allows at most 72")
        }
        other => format!("cannot hash password: {other}"),
    })?;
    Ok(STANDARD.encode(parts.format_for_version(bcrypt::Version::TwoA)))
}

/// Checks `password` against a stored `passwordBcrypt` value. A value that is
/// not base64 or not a bcrypt hash never matches; it still costs a bcrypt
/// round so that the time taken does not tell anything.
pub fn verify(stored_b64: Option<&str>, password: &str) -> bool {
    let decoded = stored_b64
        .and_then(|s| STANDARD.decode(s.trim()).ok())
        .and_then(|b| String::from_utf8(b).ok())
        .filter(|h| h.starts_with("$2"));
    match decoded {
        Some(h) => match bcrypt::non_truncating_verify(password, &h) {
            Ok(ok) => ok,
            Err(_) => {
                burn(password);
                false
            }
        },
        None => {
            burn(password);
            false
        }
    }
}

/// Spends the time of one cost-10 bcrypt check, for unknown users and broken
/// hashes, so that a failed login looks the same whatever the reason.
pub fn burn(password: &str) {
    let _ = bcrypt::verify(password, dummy_hash());
}

/// A valid cost-10 hash of a random password, made once per process.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let mut seed = [0u8; 16];
        let _ = getrandom::fill(&mut seed);
        bcrypt::hash(hex::encode(seed), COST).expect("bcrypt of a short password")
    })
}

/// Computes the dummy hash now (at start-up) rather than on the first failed login.
pub fn warm_up() {
    let _ = dummy_hash();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_backrest_format_and_verifies() {
        let stored = hash("s3cret").unwrap();
        let raw = String::from_utf8(STANDARD.decode(&stored).unwrap()).unwrap();
        assert!(raw.starts_with("$2a$10$"), "{raw}");
        assert_eq!(raw.len(), 60);
        assert!(verify(Some(&stored), "s3cret"));
        assert!(!verify(Some(&stored), "s3cret "));
        assert!(!verify(None, "s3cret"));
        assert!(!verify(Some("not base64!"), "s3cret"));
        assert!(!verify(Some(&STANDARD.encode("plain")), "plain"));
        assert!(hash(&"x".repeat(73)).unwrap_err().contains("72"));
    }

    #[test]
    fn go_style_2b_and_2y_hashes_verify() {
        let parts = bcrypt::hash_with_result("pw", 4).unwrap();
        for v in [
            bcrypt::Version::TwoA,
            bcrypt::Version::TwoB,
            bcrypt::Version::TwoY,
        ] {
            assert!(verify(
                Some(&STANDARD.encode(parts.format_for_version(v))),
                "pw"
            ));
        }
    }
}
