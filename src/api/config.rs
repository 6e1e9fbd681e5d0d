//! GetConfig and SetConfig.

use crate::config::{rehydrate, sanitize_for_network};
use crate::connect::ConnectError;
use crate::pb::v1;
use crate::server::AppState;

/// The current config with the private key and password hashes masked.
pub async fn get_config(state: &AppState) -> Result<v1::Config, ConnectError> {
    Ok(sanitize_for_network(&state.config.get()))
}

/// Replaces the whole config. The request must carry the `modno` it read;
/// masked secrets are restored from the stored config, the result is
/// validated, stored with `modno + 1` and returned masked.
///
/// Two fixes over Backrest: `version` is always the stored one (a client
/// that leaves it out would otherwise write a file that cannot be loaded),
/// and a request without `sync` keeps the stored `sync` (Backrest drops the
/// identity, which then changes on the next start).
pub async fn set_config(state: &AppState, req: v1::Config) -> Result<v1::Config, ConnectError> {
    let stored = state
        .config
        .transform(move |current| replace_config(current, req).map(Some))
        .await?;
    Ok(sanitize_for_network(&stored))
}

/// The read-modify-write step of SetConfig: `current` is the stored config,
/// `req` what the client sent. Validation is left to the store.
fn replace_config(current: v1::Config, req: v1::Config) -> Result<v1::Config, ConnectError> {
    if current.modno != req.modno {
        return Err(ConnectError::failed_precondition(
            "config modno mismatch, reload and try again",
        ));
    }
    let mut next = rehydrate(req, &current);
    if next.multihost.is_none() {
        next.multihost = current.multihost.clone();
    }
    next.version = current.version;
    next.modno = current.modno.wrapping_add(1);
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigStore, sanitize::MASKED_HASH};
    use crate::connect::Code;
    use crate::pb::v1::user::Password;

    /// SetConfig as the handler runs it, against a bare store.
    async fn set(store: &ConfigStore, req: v1::Config) -> Result<v1::Config, ConnectError> {
        let stored = store
            .transform(move |current| replace_config(current, req).map(Some))
            .await?;
        Ok(sanitize_for_network(&stored))
    }

    fn user(name: &str, hash: &str) -> v1::User {
        v1::User {
            name: name.into(),
            password: Some(Password::PasswordBcrypt(hash.into())),
        }
    }

    #[tokio::test]
    async fn set_config_round_trip_keeps_secrets_version_and_identity() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConfigStore::open(&dir.path().join("config.json")).unwrap();
        let identity = store.get().multihost.clone().unwrap().identity.unwrap();

        // First SetConfig on a fresh install: modno 0, enable auth.
        let mut req = sanitize_for_network(&store.get());
        req.instance = "box".into();
        req.auth = Some(v1::Auth {
            disabled: false,
            users: vec![user("admin", "c2VjcmV0LWhhc2g=")],
        });
        let resp = set(&store, req).await.unwrap();
        assert_eq!(resp.modno, 1);
        assert_eq!(
            resp.auth.as_ref().unwrap().users[0].password,
            Some(Password::PasswordBcrypt(MASKED_HASH.into()))
        );
        let id = resp.multihost.as_ref().unwrap().identity.as_ref().unwrap();
        assert_eq!(
            id,
            &v1::PrivateKey {
                keyid: identity.keyid.clone(),
                ..Default::default()
            }
        );

        // Second: the client echoes the masked config but drops `version`
        // and `sync` entirely.
        let mut req = resp.clone();
        req.version = 0;
        req.multihost = None;
        req.plans.clear();
        let resp = set(&store, req).await.unwrap();
        assert_eq!(resp.modno, 2);
        assert_eq!(resp.version, crate::config::CURRENT_VERSION);

        let stored = store.get();
        assert_eq!(stored.modno, 2);
        assert_eq!(stored.version, crate::config::CURRENT_VERSION);
        assert_eq!(
            stored
                .multihost
                .as_ref()
                .unwrap()
                .identity
                .as_ref()
                .unwrap(),
            &identity
        );
        assert_eq!(
            stored.auth.as_ref().unwrap().users[0],
            user("admin", "c2VjcmV0LWhhc2g=")
        );

        // What is on disk loads again with the same identity.
        drop(store);
        let reopened = ConfigStore::open(&dir.path().join("config.json")).unwrap();
        assert_eq!(reopened.get(), stored);
    }

    #[tokio::test]
    async fn set_config_rejects_a_stale_modno_and_invalid_configs() {
        let dir = tempfile::tempdir().unwrap();
        let store = ConfigStore::open(&dir.path().join("config.json")).unwrap();
        let mut req = sanitize_for_network(&store.get());
        req.instance = "box".into();
        set(&store, req.clone()).await.unwrap();

        // Same request again: its modno (0) is now stale.
        let before = store.get();
        let err = set(&store, req).await.unwrap_err();
        assert_eq!(
            err,
            ConnectError::failed_precondition("config modno mismatch, reload and try again")
        );
        assert_eq!(store.get(), before);

        let mut req = sanitize_for_network(&store.get());
        req.auth = Some(v1::Auth {
            disabled: false,
            users: vec![],
        });
        let err = set(&store, req).await.unwrap_err();
        assert_eq!(err.code, Code::InvalidArgument);
        assert_eq!(
            err.message,
            "validation error: auth: auth enabled but no users"
        );
        assert_eq!(store.get(), before);
        assert_eq!(store.get().modno, 1);
    }
}
