//! The instance's ed25519 sync identity (`Config.sync.identity`).
//!
//! Encoding, as Backrest stores it: `ed25519priv` is the 32-byte seed and
//! `ed25519pub` the 32-byte public key, both standard base64 without padding;
//! `keyId` is `"ed25519."` followed by the unpadded URL-safe base64 of the
//! SHA-256 of the public key.

use base64::Engine as _;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use ed25519_dalek::SigningKey;
use sha2::{Digest, Sha256};

use crate::pb::v1;

/// Prefix of every ed25519 key id.
pub const KEY_ID_PREFIX: &str = "ed25519.";

const SEED_LEN: usize = 32;
const PUBLIC_KEY_LEN: usize = 32;

/// Standard alphabet, no padding on output, padding refused on input (like
/// Go's `RawStdEncoding`), and non-zero trailing bits tolerated (Go's decoder
/// is not strict about them either).
const RAW_STD: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

/// The key id of a public key.
pub fn derive_key_id(public_key: &[u8]) -> String {
    let digest = Sha256::digest(public_key);
    format!(
        "{KEY_ID_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// A fresh identity from the operating system's random source.
pub fn generate() -> anyhow::Result<v1::PrivateKey> {
    let mut seed = [0u8; SEED_LEN];
    getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("cannot read random bytes: {e}"))?;
    Ok(from_seed(&seed))
}

/// The identity whose private key is `seed`.
pub fn from_seed(seed: &[u8; SEED_LEN]) -> v1::PrivateKey {
    let public = SigningKey::from_bytes(seed).verifying_key().to_bytes();
    v1::PrivateKey {
        keyid: derive_key_id(&public),
        ed25519priv: RAW_STD.encode(seed),
        ed25519pub: RAW_STD.encode(public),
    }
}

/// Checks that an identity is usable: both keys decode to 32 bytes, the key
/// id is the one derived from the public key, and the seed produces that
/// public key. Returns the signing key.
pub fn verify(key: &v1::PrivateKey) -> Result<SigningKey, String> {
    let seed = RAW_STD
        .decode(&key.ed25519priv)
        .map_err(|e| format!("decode private key: {e}"))?;
    let seed: [u8; SEED_LEN] = seed.as_slice().try_into().map_err(|_| {
        format!(
            "invalid ed25519 private key seed size: got {}, want {SEED_LEN}",
            seed.len()
        )
    })?;
    let public = RAW_STD
        .decode(&key.ed25519pub)
        .map_err(|e| format!("decode public key: {e}"))?;
    if public.len() != PUBLIC_KEY_LEN {
        return Err(format!(
            "invalid ed25519 public key size: got {}, want {PUBLIC_KEY_LEN}",
            public.len()
        ));
    }
    let derived = derive_key_id(&public);
    if derived != key.keyid {
        return Err(format!(
            "public key_id provided does not match the derived key: {derived} != {}",
            key.keyid
        ));
    }
    let signing = SigningKey::from_bytes(&seed);
    if signing.verifying_key().as_bytes().as_slice() != public.as_slice() {
        return Err("private key does not match public key".to_string());
    }
    Ok(signing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identity_verifies_and_has_the_documented_shape() {
        let key = generate().unwrap();
        assert!(key.keyid.starts_with(KEY_ID_PREFIX));
        // 32 bytes in unpadded base64 are 43 characters.
        assert_eq!(key.ed25519priv.len(), 43);
        assert_eq!(key.ed25519pub.len(), 43);
        assert!(!key.ed25519priv.contains('='));
        // sha256 (32 bytes) in unpadded URL-safe base64 is 43 characters.
        assert_eq!(key.keyid.len(), KEY_ID_PREFIX.len() + 43);
        verify(&key).unwrap();
        assert_ne!(
            generate().unwrap().keyid,
            key.keyid,
            "two fresh identities must differ"
        );
    }

    #[test]
    fn known_seed_gives_the_rfc8032_public_key() {
        // RFC 8032, section 7.1, test 1.
        let seed: [u8; 32] =
            hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
                .unwrap()
                .try_into()
                .unwrap();
        let key = from_seed(&seed);
        let public = RAW_STD.decode(&key.ed25519pub).unwrap();
        assert_eq!(
            hex::encode(&public),
            "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
        );
        let digest = Sha256::digest(&public);
        let expected_id = format!(
            "ed25519.{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
        );
        assert_eq!(key.keyid, expected_id);
    }

    #[test]
    fn verify_rejects_each_kind_of_damage() {
        let good = generate().unwrap();
        let other = generate().unwrap();
        let cases = [
            (
                v1::PrivateKey {
                    ed25519priv: "!!!".into(),
                    ..good.clone()
                },
                "decode private key",
            ),
            (
                v1::PrivateKey {
                    ed25519priv: RAW_STD.encode([1u8; 16]),
                    ..good.clone()
                },
                "seed size: got 16",
            ),
            (
                v1::PrivateKey {
                    ed25519pub: "***".into(),
                    ..good.clone()
                },
                "decode public key",
            ),
            (
                v1::PrivateKey {
                    ed25519pub: RAW_STD.encode([1u8; 31]),
                    ..good.clone()
                },
                "public key size: got 31",
            ),
            (
                v1::PrivateKey {
                    keyid: "ed25519.nope".into(),
                    ..good.clone()
                },
                "does not match the derived key",
            ),
            (
                v1::PrivateKey {
                    ed25519priv: other.ed25519priv.clone(),
                    ..good.clone()
                },
                "private key does not match public key",
            ),
        ];
        for (key, want) in cases {
            let err = verify(&key).expect_err(want);
            assert!(err.contains(want), "{err:?} should contain {want:?}");
        }
    }
}
