//! Failed-login throttling, per client address and per username.
//!
//! Each key (an address, or a username whether or not it exists) counts its
//! recent failures. The first few are free; from then on every failure locks
//! the key for `base * 2^(failures - free)`, capped at [`MAX_LOCK`]. A locked
//! key is refused before any password is looked at (even a right one, or
//! the lock would only slow down wrong guesses). A success clears both keys;
//! a key with no failure for [`FORGET_AFTER`] past its lock is forgotten.
//!
//! Memory is bounded: each table holds at most [`MAX_ENTRIES`] keys. When a
//! table is full, forgotten keys are dropped first, then the unlocked key
//! with the oldest failure, then the key whose lock ends first.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures an address may make before the back-off starts.
pub const FREE_PER_ADDRESS: u32 = 5;
/// Failures a username may get (from any address) before the back-off starts.
pub const FREE_PER_USER: u32 = 10;
/// The longest lock.
pub const MAX_LOCK: Duration = Duration::from_secs(15 * 60);
/// Failures are forgotten after this long without a new one (after the lock ends).
pub const FORGET_AFTER: Duration = Duration::from_secs(15 * 60);
/// Keys kept per table.
pub const MAX_ENTRIES: usize = 10_000;
/// Usernames are kept to this many bytes (a longer name shares the entry of its prefix).
const MAX_USER_KEY: usize = 128;

/// The address a login comes from, as the throttle keys it: IPv4 addresses
/// whole, IPv6 addresses by their /64 (one host usually owns a whole /64).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddrKey {
    V4(u32),
    V6(u64),
    Unknown,
}

impl AddrKey {
    pub fn of(ip: Option<IpAddr>) -> AddrKey {
        match ip {
            Some(IpAddr::V4(v4)) => AddrKey::V4(u32::from(v4)),
            Some(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => AddrKey::V4(u32::from(v4)),
                None => AddrKey::V6((u128::from(v6) >> 64) as u64),
            },
            None => AddrKey::Unknown,
        }
    }
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last_failure: Instant,
    locked_until: Option<Instant>,
}

impl Entry {
    fn lock_left(&self, now: Instant) -> Option<Duration> {
        self.locked_until.filter(|t| *t > now).map(|t| t - now)
    }
    fn forgotten(&self, now: Instant) -> bool {
        let quiet_since = self
            .locked_until
            .map_or(self.last_failure, |t| t.max(self.last_failure));
        now >= quiet_since + FORGET_AFTER
    }
}

struct Table<K> {
    map: HashMap<K, Entry>,
    free: u32,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(free: u32) -> Self {
        Table {
            map: HashMap::new(),
            free,
        }
    }

    fn lock_left(&mut self, key: &K, now: Instant) -> Option<Duration> {
        let e = self.map.get(key)?;
        if e.forgotten(now) {
            self.map.remove(key);
            return None;
        }
        e.lock_left(now)
    }

    fn failure(&mut self, key: &K, base: Duration, now: Instant) -> Option<Duration> {
        if !self.map.contains_key(key) && self.map.len() >= MAX_ENTRIES {
            self.make_room(now);
        }
        let free = self.free;
        let e = self.map.entry(key.clone()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: None,
        });
        if e.forgotten(now) {
            *e = Entry {
                failures: 0,
                last_failure: now,
                locked_until: None,
            };
        }
        e.failures = e.failures.saturating_add(1);
        e.last_failure = now;
        if e.failures >= free {
            let lock = backoff(base, e.failures - free);
            e.locked_until = Some(now + lock);
            Some(lock)
        } else {
            None
        }
    }

    fn make_room(&mut self, now: Instant) {
        self.map.retain(|_, e| !e.forgotten(now));
        if self.map.len() < MAX_ENTRIES {
            return;
        }
        let victim = self
            .map
            .iter()
            .filter(|(_, e)| e.lock_left(now).is_none())
            .min_by_key(|(_, e)| e.last_failure)
            .or_else(|| self.map.iter().min_by_key(|(_, e)| e.locked_until))
            .map(|(k, _)| k.clone());
        if let Some(k) = victim {
            self.map.remove(&k);
        }
    }
}

/// `base * 2^n`, at most [`MAX_LOCK`].
pub fn backoff(base: Duration, n: u32) -> Duration {
    let factor = 1u32.checked_shl(n.min(31)).unwrap_or(u32::MAX);
    base.checked_mul(factor).unwrap_or(MAX_LOCK).min(MAX_LOCK)
}

pub struct Throttle {
    base: Duration,
    tables: Mutex<(Table<AddrKey>, Table<String>)>,
}

fn user_key(user: &str) -> String {
    let mut end = user.len().min(MAX_USER_KEY);
    while !user.is_char_boundary(end) {
        end -= 1;
    }
    user[..end].to_string()
}

impl Throttle {
    /// `base`: the first lock's length (doubled at each further failure).
    pub fn new(base: Duration) -> Throttle {
        Throttle {
            base,
            tables: Mutex::new((Table::new(FREE_PER_ADDRESS), Table::new(FREE_PER_USER))),
        }
    }

    /// `Err(time left)` while the address or the username is locked.
    pub fn check(&self, addr: AddrKey, user: &str, now: Instant) -> Result<(), Duration> {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let a = t.0.lock_left(&addr, now);
        let u = t.1.lock_left(&user_key(user), now);
        match a.max(u) {
            Some(d) => Err(d),
            None => Ok(()),
        }
    }

    /// Records a failed attempt; returns the lock it started, if any.
    pub fn failure(&self, addr: AddrKey, user: &str, now: Instant) -> Option<Duration> {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        let a = t.0.failure(&addr, self.base, now);
        let u = t.1.failure(&user_key(user), self.base, now);
        a.max(u)
    }

    /// A successful login clears the address and the username.
    pub fn success(&self, addr: AddrKey, user: &str) {
        let mut t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        t.0.map.remove(&addr);
        t.1.map.remove(&user_key(user));
    }

    /// Keys held (address table, user table): for tests.
    pub fn len(&self) -> (usize, usize) {
        let t = self.tables.lock().unwrap_or_else(|p| p.into_inner());
        (t.0.map.len(), t.1.map.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: Duration = Duration::from_secs(1);

    fn v4(n: u32) -> AddrKey {
        AddrKey::V4(n)
    }

    #[test]
    fn address_backs_off_exponentially_and_lifts() {
        let t = Throttle::new(BASE);
        let t0 = Instant::now();
        for i in 1..FREE_PER_ADDRESS {
            assert_eq!(t.failure(v4(1), &format!("u{i}"), t0), None);
            assert!(t.check(v4(1), "x", t0).is_ok());
        }
        assert_eq!(t.failure(v4(1), "u", t0), Some(BASE));
        assert_eq!(t.check(v4(1), "anyone", t0), Err(BASE));
        // Another address is not affected.
        assert!(t.check(v4(2), "anyone", t0).is_ok());
        let t1 = t0 + BASE;
        assert!(t.check(v4(1), "x", t1).is_ok());
        assert_eq!(t.failure(v4(1), "u", t1), Some(BASE * 2));
        assert_eq!(t.failure(v4(1), "u", t1 + BASE * 2), Some(BASE * 4));
        // Success clears it.
        t.success(v4(1), "u");
        assert!(t.check(v4(1), "u", t1 + BASE * 2).is_ok());
    }

    #[test]
    fn username_is_throttled_across_addresses() {
        let t = Throttle::new(BASE);
        let now = Instant::now();
        for i in 0..FREE_PER_USER - 1 {
            assert_eq!(t.failure(v4(i), "admin", now), None);
        }
        assert_eq!(t.failure(v4(999), "admin", now), Some(BASE));
        assert!(t.check(v4(12345), "admin", now).is_err());
        assert!(t.check(v4(12345), "other", now).is_ok());
    }

    #[test]
    fn failures_are_forgotten_and_lock_is_capped() {
        let t = Throttle::new(BASE);
        let now = Instant::now();
        for _ in 0..100 {
            t.failure(v4(1), "u", now);
        }
        assert_eq!(t.check(v4(1), "u", now), Err(MAX_LOCK));
        let later = now + MAX_LOCK + FORGET_AFTER;
        assert!(t.check(v4(1), "u", later).is_ok());
        assert_eq!(t.len(), (0, 0));
        assert_eq!(t.failure(v4(1), "u", later), None);
        assert_eq!(backoff(BASE, 40), MAX_LOCK);
    }

    #[test]
    fn memory_is_bounded() {
        let t = Throttle::new(BASE);
        let now = Instant::now();
        for i in 0..(MAX_ENTRIES as u32 + 500) {
            t.failure(v4(i), &format!("user-{i}"), now);
        }
        let (a, u) = t.len();
        assert!(a <= MAX_ENTRIES && u <= MAX_ENTRIES, "{a} {u}");
        // Long usernames share a bounded key.
        t.failure(v4(1), &"é".repeat(1000), now);
    }

    #[test]
    fn ipv6_keys_by_prefix() {
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff:2".parse().unwrap();
        let c: IpAddr = "2001:db9::1".parse().unwrap();
        assert_eq!(AddrKey::of(Some(a)), AddrKey::of(Some(b)));
        assert_ne!(AddrKey::of(Some(a)), AddrKey::of(Some(c)));
        let mapped: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(
            AddrKey::of(Some(mapped)),
            AddrKey::of(Some("10.0.0.1".parse().unwrap()))
        );
    }
}
