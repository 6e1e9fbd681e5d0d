//! What the network sees of the config, and how a config coming back from the
//! network gets its secrets restored.
//!
//! Only two things are masked, as in Backrest: the sync identity is reduced
//! to its key id, and every user password hash becomes `********`. Repo
//! passwords, env, hook credentials and pairing secrets are sent as they are.

use crate::pb::v1;
use crate::pb::v1::user::Password;

/// What a masked password hash looks like on the wire.
pub const MASKED_HASH: &str = "********";

/// A copy of `cfg` fit for an RPC response.
pub fn sanitize_for_network(cfg: &v1::Config) -> v1::Config {
    let mut out = cfg.clone();
    if let Some(identity) = out.multihost.as_mut().and_then(|m| m.identity.as_mut()) {
        *identity = v1::PrivateKey {
            keyid: std::mem::take(&mut identity.keyid),
            ..Default::default()
        };
    }
    if let Some(auth) = out.auth.as_mut() {
        for user in &mut auth.users {
            if user.password.is_some() {
                user.password = Some(Password::PasswordBcrypt(MASKED_HASH.to_string()));
            }
        }
    }
    out
}

/// Restores into `request` (a config the client sent, usually one it got
/// from [`sanitize_for_network`]) the secrets that were masked:
/// * a request identity is laid over the stored one: its non-empty fields
///   win, so `{keyId}` alone gets the stored keys back;
/// * a user whose hash is exactly `********` is replaced by the stored user
///   of the same name, if there is one.
pub fn rehydrate(mut request: v1::Config, stored: &v1::Config) -> v1::Config {
    if let Some(sent) = request.multihost.as_mut().and_then(|m| m.identity.as_mut()) {
        let mut full = stored
            .multihost
            .as_ref()
            .and_then(|m| m.identity.clone())
            .unwrap_or_default();
        for (dst, src) in [
            (&mut full.keyid, &mut sent.keyid),
            (&mut full.ed25519priv, &mut sent.ed25519priv),
            (&mut full.ed25519pub, &mut sent.ed25519pub),
        ] {
            if !src.is_empty() {
                *dst = std::mem::take(src);
            }
        }
        *sent = full;
    }

    let stored_users = stored
        .auth
        .as_ref()
        .map(|a| a.users.as_slice())
        .unwrap_or_default();
    if let Some(auth) = request.auth.as_mut() {
        for user in &mut auth.users {
            let masked =
                matches!(&user.password, Some(Password::PasswordBcrypt(h)) if h == MASKED_HASH);
            if !masked {
                continue;
            }
            if let Some(original) = stored_users.iter().find(|u| u.name == user.name) {
                *user = original.clone();
            }
        }
    }
    request
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::identity;

    fn user(name: &str, hash: Option<&str>) -> v1::User {
        v1::User {
            name: name.into(),
            password: hash.map(|h| Password::PasswordBcrypt(h.into())),
        }
    }

    fn stored() -> v1::Config {
        v1::Config {
            modno: 3,
            instance: "host".into(),
            auth: Some(v1::Auth {
                disabled: false,
                users: vec![
                    user("alice", Some("YWxpY2UtaGFzaA==")),
                    user("bob", Some("Ym9iLWhhc2g=")),
                ],
            }),
            multihost: Some(v1::Multihost {
                identity: Some(identity::generate().unwrap()),
                ..Default::default()
            }),
            repos: vec![v1::Repo {
                id: "r".into(),
                password: "repo-secret".into(),
                ..Default::default()
            }],
            ..Default::default()
        }
    }

    #[test]
    fn sanitize_masks_only_hashes_and_private_key() {
        let cfg = stored();
        let s = sanitize_for_network(&cfg);
        let id = s.multihost.as_ref().unwrap().identity.as_ref().unwrap();
        let full = cfg.multihost.as_ref().unwrap().identity.as_ref().unwrap();
        assert_eq!(
            id,
            &v1::PrivateKey {
                keyid: full.keyid.clone(),
                ..Default::default()
            }
        );
        for u in &s.auth.as_ref().unwrap().users {
            assert_eq!(
                u.password,
                Some(Password::PasswordBcrypt(MASKED_HASH.into()))
            );
        }
        // Not redacted, as in Backrest.
        assert_eq!(s.repos[0].password, "repo-secret");
        // A user without a hash stays without one.
        let mut cfg = stored();
        cfg.auth.as_mut().unwrap().users.push(user("carol", None));
        let s = sanitize_for_network(&cfg);
        assert_eq!(s.auth.unwrap().users[2].password, None);
    }

    #[test]
    fn sanitize_then_rehydrate_gives_back_the_stored_config() {
        let cfg = stored();
        let round = rehydrate(sanitize_for_network(&cfg), &cfg);
        assert_eq!(round, cfg);
    }

    #[test]
    fn rehydrate_keeps_new_hashes_and_unknown_masked_users() {
        let cfg = stored();
        let mut req = sanitize_for_network(&cfg);
        let users = &mut req.auth.as_mut().unwrap().users;
        users[1] = user("bob", Some("bmV3LWhhc2g="));
        users.push(user("dave", Some(MASKED_HASH)));
        let out = rehydrate(req, &cfg);
        let users = &out.auth.as_ref().unwrap().users;
        assert_eq!(users[0], cfg.auth.as_ref().unwrap().users[0]);
        assert_eq!(users[1], user("bob", Some("bmV3LWhhc2g=")));
        // No stored user named dave: the mask stays (and validation will
        // accept it as an opaque hash, as Backrest does).
        assert_eq!(users[2], user("dave", Some(MASKED_HASH)));
    }

    #[test]
    fn rehydrate_lays_a_sent_identity_over_the_stored_one() {
        let cfg = stored();
        let mut req = sanitize_for_network(&cfg);
        let other = identity::generate().unwrap();
        req.multihost.as_mut().unwrap().identity = Some(v1::PrivateKey {
            keyid: other.keyid.clone(),
            ..Default::default()
        });
        let out = rehydrate(req, &cfg);
        let id = out.multihost.unwrap().identity.unwrap();
        let full = cfg.multihost.as_ref().unwrap().identity.as_ref().unwrap();
        assert_eq!(id.keyid, other.keyid);
        assert_eq!(id.ed25519priv, full.ed25519priv);
        assert_eq!(id.ed25519pub, full.ed25519pub);
    }
}
