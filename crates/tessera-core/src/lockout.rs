//! Brute-force protection for every password check (partner Basic, password grant).
//!
//! Policy, per username: the first [`LockoutPolicy::free_failures`] failures cost nothing extra;
//! each later failure locks the username for `base_secs · 2^(n − free − 1)` seconds, capped at
//! `max_lock_secs` (15 minutes by default), so an attacker gets ~20 guesses an hour per username
//! and can never lock anyone out for longer than the cap after their last attempt. A success
//! resets the count; so does `forget_after_secs` without a failure. While locked, the password is
//! not checked at all (no Argon2 either) and the caller gets the dialect's normal credential
//! error plus `Retry-After`.
//!
//! A credential pair that was verified recently (the engine's credential cache) bypasses the lock:
//! an attacker who does not know the password cannot lock out an integration that does.
//!
//! State is per process, keyed by an HMAC of the username, bounded at `max_entries` (beyond that,
//! new usernames are tracked only after old entries expire). With many nodes, each node counts
//! separately: the effective allowance is multiplied by the node count.

use dashmap::DashMap;

#[derive(Clone, Copy, Debug)]
pub struct LockoutPolicy {
    pub free_failures: u32,
    pub base_secs: i64,
    pub max_lock_secs: i64,
    pub forget_after_secs: i64,
    pub max_entries: usize,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            free_failures: 5,
            base_secs: 1,
            max_lock_secs: 900,
            forget_after_secs: 900,
            max_entries: 200_000,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    failures: u32,
    locked_until: i64,
    last_failure: i64,
}

pub struct Lockout {
    policy: LockoutPolicy,
    entries: DashMap<[u8; 32], Entry>,
}

impl Lockout {
    pub fn new(policy: LockoutPolicy) -> Lockout {
        Lockout {
            policy,
            entries: DashMap::new(),
        }
    }

    /// `Err(seconds)` while the key is locked.
    pub fn check(&self, key: &[u8; 32], now: i64) -> Result<(), u64> {
        match self.entries.get(key) {
            Some(e) if e.locked_until > now => Err((e.locked_until - now) as u64),
            _ => Ok(()),
        }
    }

    /// Record a failure; returns the lock it causes, in seconds (0 for none).
    pub fn failure(&self, key: &[u8; 32], now: i64) -> u64 {
        let p = self.policy;
        if self.entries.len() >= p.max_entries && !self.entries.contains_key(key) {
            self.prune(now);
            if self.entries.len() >= p.max_entries {
                return 0;
            }
        }
        let mut e = self.entries.entry(*key).or_insert(Entry {
            failures: 0,
            locked_until: 0,
            last_failure: now,
        });
        if now - e.last_failure > p.forget_after_secs {
            e.failures = 0;
        }
        e.failures += 1;
        e.last_failure = now;
        if e.failures <= p.free_failures {
            return 0;
        }
        let exp = (e.failures - p.free_failures - 1).min(30);
        let lock = p.base_secs.saturating_mul(1i64 << exp).min(p.max_lock_secs);
        e.locked_until = now + lock;
        lock as u64
    }

    pub fn success(&self, key: &[u8; 32]) {
        self.entries.remove(key);
    }

    /// Drop entries that neither lock nor count any more.
    pub fn prune(&self, now: i64) {
        let forget = self.policy.forget_after_secs;
        self.entries
            .retain(|_, e| e.locked_until > now || now - e.last_failure <= forget);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const K: [u8; 32] = [1; 32];

    #[test]
    fn free_failures_then_exponential_backoff_capped() {
        let l = Lockout::new(LockoutPolicy::default());
        let mut now = 1000;
        for _ in 0..5 {
            assert_eq!(l.failure(&K, now), 0);
            assert_eq!(l.check(&K, now), Ok(()));
        }
        let mut locks = Vec::new();
        for _ in 0..14 {
            let lock = l.failure(&K, now);
            assert_eq!(l.check(&K, now), Err(lock));
            locks.push(lock);
            now += lock as i64; // the attacker waits out each lock
            assert_eq!(l.check(&K, now), Ok(()));
        }
        assert_eq!(&locks[..4], &[1, 2, 4, 8]);
        assert!(locks.iter().all(|&s| s <= 900));
        assert_eq!(*locks.last().unwrap(), 900);
    }

    #[test]
    fn success_resets_and_quiet_time_forgets() {
        let l = Lockout::new(LockoutPolicy::default());
        for _ in 0..6 {
            l.failure(&K, 0);
        }
        assert!(l.check(&K, 0).is_err());
        l.success(&K);
        assert_eq!(l.check(&K, 0), Ok(()));
        for _ in 0..5 {
            l.failure(&K, 0);
        }
        // 15 minutes later the count starts again.
        assert_eq!(l.failure(&K, 901), 0);
        l.prune(10_000);
        assert!(l.entries.is_empty());
    }

    #[test]
    fn the_table_is_bounded() {
        let l = Lockout::new(LockoutPolicy {
            max_entries: 3,
            ..Default::default()
        });
        for i in 0..10u8 {
            l.failure(&[i; 32], 0);
        }
        assert_eq!(l.entries.len(), 3);
        // After the entries expire, new usernames are tracked again.
        l.failure(&[42; 32], 5000);
        assert!(l.entries.contains_key(&[42; 32]));
    }
}
