//! The configuration store: Backrest's config.json (proto3 JSON of `v1.Config`).
//!
//! One cached config, replaced as a whole on every change. Readers take the
//! cached `Arc` ([`ConfigStore::get`]) or follow changes
//! ([`ConfigStore::subscribe`]); every mutation goes through
//! [`ConfigStore::transform`], which validates, persists and only then
//! publishes.
//!
//! Differences from Backrest, on purpose:
//! * a missing config file is created with the default config on first start
//!   (Backrest only writes on the first change), so the sync identity is
//!   stable from the first run;
//! * a non-empty file without `version` (hand-written) is read as the
//!   current version, with a warning (Backrest refuses to start).

pub mod cron;
pub mod identity;
pub mod jsonfile;
pub mod migrate;
pub mod sanitize;
pub mod validate;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, anyhow};
use tokio::sync::{Mutex, watch};

use crate::connect::ConnectError;
use crate::pb::v1;

pub use migrate::CURRENT_VERSION;
pub use sanitize::{rehydrate, sanitize_for_network};
pub use validate::{ValidationError, validate};

pub struct ConfigStore {
    path: PathBuf,
    current: watch::Sender<Arc<v1::Config>>,
    /// Serializes read-modify-write cycles. Shared with the blocking write so
    /// that a cancelled caller cannot let the next transform start early.
    write_lock: Arc<Mutex<()>>,
}

impl ConfigStore {
    /// Loads the config at `path`, migrating and validating it, or creates
    /// and writes the default config when there is no file.
    pub fn open(path: &Path) -> anyhow::Result<ConfigStore> {
        Self::open_with_env(path, &|name| std::env::var(name).ok())
    }

    /// [`ConfigStore::open`] with an explicit environment lookup (used by
    /// migration 005).
    pub fn open_with_env(
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<ConfigStore> {
        let cfg = load(path, env)?;
        Ok(ConfigStore {
            path: path.to_path_buf(),
            current: watch::Sender::new(Arc::new(cfg)),
            write_lock: Arc::new(Mutex::new(())),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The current config, unsanitized. Treat it as a snapshot.
    pub fn get(&self) -> Arc<v1::Config> {
        self.current.borrow().clone()
    }

    /// A receiver that sees every config stored from now on.
    pub fn subscribe(&self) -> watch::Receiver<Arc<v1::Config>> {
        self.current.subscribe()
    }

    /// Read-modify-write, one at a time. `f` gets a copy of the current
    /// config and returns the new one, or `None` to change nothing. The new
    /// config is validated (and normalized), written to disk, cached and
    /// announced to subscribers, in that order; if validation or the write
    /// fails, neither the file nor the cache changes. Returns the config that
    /// is current afterwards.
    ///
    /// `f` runs while the store is locked: it must not call `transform`.
    pub async fn transform<F>(&self, f: F) -> Result<Arc<v1::Config>, ConnectError>
    where
        F: FnOnce(v1::Config) -> Result<Option<v1::Config>, ConnectError>,
    {
        let guard = self.write_lock.clone().lock_owned().await;
        let current = self.get();
        let Some(mut next) = f((*current).clone())? else {
            return Ok(current);
        };
        validate(&mut next)
            .map_err(|e| ConnectError::invalid_argument(format!("validation error: {e}")))?;
        let data = jsonfile::encode(&next)
            .map_err(|e| ConnectError::internal(format!("cannot encode config: {e}")))?;

        // The write and the cache update happen together on a blocking
        // thread that holds the lock, so dropping this future midway cannot
        // leave the file and the cache disagreeing.
        let path = self.path.clone();
        let sender = self.current.clone();
        let next = Arc::new(next);
        let stored = next.clone();
        let written = tokio::task::spawn_blocking(move || {
            let _guard = guard;
            jsonfile::write(&path, &data).map_err(|e| {
                format!(
                    "failed to update config: cannot write {}: {e}",
                    path.display()
                )
            })?;
            sender.send_replace(stored);
            Ok::<(), String>(())
        })
        .await
        .map_err(|e| ConnectError::internal(format!("config writer failed: {e}")))?;
        written.map_err(|e| {
            tracing::error!("{e}");
            ConnectError::unknown(e)
        })?;
        Ok(next)
    }
}

/// A new installation's config: current version, no instance id, no repos or
/// plans, authentication disabled, a fresh sync identity.
pub fn default_config() -> anyhow::Result<v1::Config> {
    let mut cfg = v1::Config {
        version: CURRENT_VERSION,
        auth: Some(v1::Auth {
            disabled: true,
            users: Vec::new(),
        }),
        ..Default::default()
    };
    populate_required_fields(&mut cfg)?;
    Ok(cfg)
}

/// Adds what every config must have: the `sync` section and an identity in
/// it. Returns whether anything was added.
pub fn populate_required_fields(cfg: &mut v1::Config) -> anyhow::Result<bool> {
    let multihost = cfg.multihost.get_or_insert_with(Default::default);
    let mut changed = false;
    if multihost.identity.is_none() {
        multihost.identity = Some(identity::generate()?);
        changed = true;
    }
    Ok(changed)
}

/// Brings a config read from disk to the current version and fills in the
/// required fields. The config is not validated here.
pub fn upgrade(cfg: &mut v1::Config, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<()> {
    if cfg.version == 0 {
        if *cfg != v1::Config::default() {
            tracing::warn!(
                "the config has no \"version\" field; reading it as version {CURRENT_VERSION} \
                 (Backrest itself would refuse it)"
            );
        }
        cfg.version = CURRENT_VERSION;
    }
    if cfg.version != CURRENT_VERSION {
        migrate::apply(cfg, env)?;
    }
    populate_required_fields(cfg)?;
    Ok(())
}

fn load(path: &Path, env: &dyn Fn(&str) -> Option<String>) -> anyhow::Result<v1::Config> {
    let Some(mut cfg) = jsonfile::read(path)? else {
        let mut cfg = default_config()?;
        validate(&mut cfg).map_err(|e| anyhow!("the default config is invalid: {e}"))?;
        write_now(path, &cfg)?;
        tracing::info!(path = %path.display(), "created a new config");
        return Ok(cfg);
    };

    // Compare encodings rather than messages: that is what decides whether
    // the file would change, and it is immune to NaN != NaN.
    let before = jsonfile::encode(&cfg)?;
    upgrade(&mut cfg, env)?;
    let changed = jsonfile::encode(&cfg)? != before;
    if changed {
        validate(&mut cfg).map_err(|e| anyhow!("invalid config after migration: {e}"))?;
        write_now(path, &cfg)?;
        tracing::info!(path = %path.display(), version = cfg.version, "config upgraded and saved");
    } else {
        validate(&mut cfg).map_err(|e| anyhow!("invalid config: {e}"))?;
    }
    Ok(cfg)
}

fn write_now(path: &Path, cfg: &v1::Config) -> anyhow::Result<()> {
    let data = jsonfile::encode(cfg)?;
    jsonfile::write(path, &data).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests;
