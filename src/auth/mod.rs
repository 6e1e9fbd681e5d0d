//! Authentication, as Backrest does it, with abuse protection added.
//!
//! * Users and their bcrypt hashes live in `config.auth.users` ([`password`]).
//! * `Login` trades a username and password for a JWT ([`jwt`]).
//! * Every route except the public ones needs HTTP Basic credentials or a
//!   bearer token when auth is enabled ([`middleware`]).
//! * Failed logins — by `Login` or by Basic auth — are throttled per client
//!   address and per username ([`throttle`]).
//!
//! A verified Basic credential is remembered for [`Auth::basic_cache_ttl`]
//! (default 60 s) under a keyed SHA-256 of user, password and the stored
//! hash — never the password itself — so a script sending `curl -u` on every
//! request pays one bcrypt a minute instead of one per request. Changing the
//! user's hash changes the key, so the old password stops working at once.

pub mod jwt;
pub mod middleware;
pub mod password;
pub mod throttle;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::ConfigStore;
use crate::pb::v1;
use throttle::{AddrKey, Throttle};

/// Environment: the first lock after repeated failed logins, in
/// milliseconds (it doubles with each further failure). Default 1000.
pub const ENV_BACKOFF_MS: &str = "BACKREST_LOGIN_BACKOFF_MS";
/// Environment: how long a verified Basic credential is remembered, in
/// seconds; 0 checks bcrypt on every request as Backrest does. Default 60.
pub const ENV_BASIC_CACHE_SECS: &str = "BACKREST_BASIC_AUTH_CACHE_SECS";

const BASIC_CACHE_MAX: usize = 1024;

/// Why a username/password check failed.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginError {
    /// Wrong user or password (the two are never told apart).
    Invalid,
    /// Too many recent failures from this address or for this user.
    Throttled(Duration),
}

impl LoginError {
    /// The message for a throttled attempt, with the retry hint.
    pub fn retry_message(after: Duration) -> String {
        format!(
            "too many failed login attempts; try again in {} s",
            retry_after_secs(after)
        )
    }
}

/// Whole seconds for `Retry-After`, rounded up, at least 1.
pub fn retry_after_secs(d: Duration) -> u64 {
    (d.as_millis().div_ceil(1000) as u64).max(1)
}

pub struct Auth {
    config: Arc<ConfigStore>,
    tokens: jwt::TokenKeys,
    throttle: Throttle,
    basic_cache: Mutex<HashMap<[u8; 32], Instant>>,
    basic_cache_ttl: Duration,
    /// A per-process key for the cache's hashes.
    cache_key: [u8; 32],
    /// bcrypt is ~50 ms of CPU: at most this many run at once, so a flood of
    /// guesses cannot take every core from the server.
    bcrypt_slots: Semaphore,
}

impl Auth {
    /// Loads (or creates) the JWT secret in `data_dir`; reads the knobs from the environment.
    pub fn open(data_dir: &Path, config: Arc<ConfigStore>) -> anyhow::Result<Auth> {
        let secret = jwt::load_or_create_secret(data_dir)?;
        let env_num = |name: &str, default: u64| -> u64 {
            match std::env::var(name) {
                Ok(v) if !v.is_empty() => v.parse().unwrap_or_else(|_| {
                    tracing::warn!("ignoring {name}={v:?}: not a whole number; using {default}");
                    default
                }),
                _ => default,
            }
        };
        let backoff = Duration::from_millis(env_num(ENV_BACKOFF_MS, 1000).max(1));
        let ttl = Duration::from_secs(env_num(ENV_BASIC_CACHE_SECS, 60));
        Auth::new(config, &secret, backoff, ttl)
    }

    pub fn new(
        config: Arc<ConfigStore>,
        secret: &[u8],
        backoff: Duration,
        basic_cache_ttl: Duration,
    ) -> anyhow::Result<Auth> {
        let mut cache_key = [0u8; 32];
        let _ = getrandom::fill(&mut cache_key);
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        password::warm_up();
        Ok(Auth {
            config,
            tokens: jwt::TokenKeys::new(secret)?,
            throttle: Throttle::new(backoff),
            basic_cache: Mutex::new(HashMap::new()),
            basic_cache_ttl,
            cache_key,
            bcrypt_slots: Semaphore::new(cores.max(2)),
        })
    }

    pub fn basic_cache_ttl(&self) -> Duration {
        self.basic_cache_ttl
    }

    /// Whether requests need credentials: `auth` present and not disabled.
    pub fn enabled(cfg: &v1::Config) -> bool {
        cfg.auth.as_ref().is_some_and(|a| !a.disabled)
    }

    /// A login token for `user` (see [`jwt`]).
    pub fn issue_token(&self, user: &str) -> anyhow::Result<String> {
        self.tokens.issue(user)
    }

    /// The configured user a bearer token names, if the token is good and
    /// that user still exists.
    pub fn verify_token(&self, token: &str) -> Option<String> {
        let user = match self.tokens.verify(token) {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!("refused a bearer token: {e}");
                return None;
            }
        };
        let cfg = self.config.get();
        if stored_hash(&cfg, &user).is_none() {
            tracing::warn!(user = ?user, "refused a bearer token: no such user");
            return None;
        }
        Some(user)
    }

    /// Checks a username and password (for `Login` and Basic auth), with
    /// throttling. Unknown users cost the same bcrypt as known ones and get
    /// the same answer. With auth disabled or absent nobody can log in, as
    /// in Backrest.
    pub async fn check_password(
        &self,
        client: Option<std::net::IpAddr>,
        user: &str,
        pass: &str,
    ) -> Result<(), LoginError> {
        let addr = AddrKey::of(client);
        self.throttle
            .check(addr, user, Instant::now())
            .map_err(LoginError::Throttled)?;

        let cfg = self.config.get();
        let stored = if Self::enabled(&cfg) {
            stored_hash(&cfg, user).map(str::to_string)
        } else {
            None
        };
        let cache_key = stored.as_deref().map(|h| self.cache_key(user, pass, h));
        if let Some(k) = &cache_key
            && self.cache_hit(k)
        {
            return Ok(());
        }

        let ok = {
            let _slot = self
                .bcrypt_slots
                .acquire()
                .await
                .expect("semaphore never closed");
            let pass = pass.to_string();
            let stored_b64 = stored.clone();
            tokio::task::spawn_blocking(move || password::verify(stored_b64.as_deref(), &pass))
                .await
                .unwrap_or(false)
        };
        if ok {
            if let Some(k) = cache_key {
                self.cache_insert(k);
            }
            self.throttle.success(addr, user);
            Ok(())
        } else {
            let client_s = client.map_or_else(|| "unknown".to_string(), |c| c.to_string());
            match self.throttle.failure(addr, user, Instant::now()) {
                Some(lock) => tracing::warn!(
                    user = ?user, client = %client_s,
                    "failed login; further attempts from this address or for this user are refused for {} s",
                    retry_after_secs(lock)
                ),
                None => tracing::warn!(user = ?user, client = %client_s, "failed login"),
            }
            Err(LoginError::Invalid)
        }
    }

    /// `base64(bcrypt(password))`, on a blocking thread within the bcrypt slots.
    pub async fn hash_password(&self, password: String) -> Result<String, String> {
        let _slot = self
            .bcrypt_slots
            .acquire()
            .await
            .expect("semaphore never closed");
        tokio::task::spawn_blocking(move || password::hash(&password))
            .await
            .map_err(|e| format!("hashing failed: {e}"))?
    }

    fn cache_key(&self, user: &str, pass: &str, stored: &str) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(self.cache_key);
        for part in [user.as_bytes(), pass.as_bytes(), stored.as_bytes()] {
            h.update((part.len() as u64).to_le_bytes());
            h.update(part);
        }
        h.finalize().into()
    }

    fn cache_hit(&self, key: &[u8; 32]) -> bool {
        if self.basic_cache_ttl.is_zero() {
            return false;
        }
        let cache = self.basic_cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).is_some_and(|exp| *exp > Instant::now())
    }

    fn cache_insert(&self, key: [u8; 32]) {
        if self.basic_cache_ttl.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut cache = self.basic_cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= BASIC_CACHE_MAX {
            cache.retain(|_, exp| *exp > now);
            if cache.len() >= BASIC_CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, now + self.basic_cache_ttl);
    }
}

/// The stored `passwordBcrypt` of the first user named `user` (Backrest only
/// tries the first match).
pub fn stored_hash<'a>(cfg: &'a v1::Config, user: &str) -> Option<&'a str> {
    let u = cfg.auth.as_ref()?.users.iter().find(|u| u.name == user)?;
    match &u.password {
        Some(v1::user::Password::PasswordBcrypt(h)) => Some(h.as_str()),
        None => Some(""),
    }
}

/// Logs a loud warning when anyone who can reach the port can use the server.
pub fn warn_if_open(bind_address: &str, cfg: &v1::Config) {
    if Auth::enabled(cfg) {
        return;
    }
    let loopback = bind_address
        .parse::<SocketAddr>()
        .is_ok_and(|a| a.ip().is_loopback());
    if !loopback {
        tracing::warn!(
            "!!! AUTHENTICATION IS DISABLED and the server listens on {bind_address}, which is not a loopback \
             address: anyone who can reach this port can read, restore and delete your backups and run \
             commands. Add a user in Settings (or auth.users in the config) or bind to 127.0.0.1. !!!"
        );
    }
}
