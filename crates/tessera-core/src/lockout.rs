//! Brute-force protection for every password check (partner Basic, the password grant, the
//! sign-in page), as a leaky bucket per username.
//!
//! Each check **reserves** one unit of the username's bucket before the password is looked at,
//! atomically in the store (a row lock on PostgreSQL, so every node shares the count; SQLite's
//! write lock on one node), and the reservation is refused once the bucket holds
//! [`LockoutPolicy::allowance`] units. The bucket drains one unit every
//! [`LockoutPolicy::decay_secs`]. So whatever the concurrency and however many nodes serve:
//! - at most `allowance` checks of one username run back to back, then one per `decay_secs`
//!   (5, then 20 an hour, by default);
//! - a refused check costs no Argon2, and the caller gets the dialect's credential error plus
//!   `Retry-After`;
//! - failures decay: an attacker who tries once every few minutes is refused nothing and locks
//!   nobody out, and nobody is ever locked for longer than `decay_secs` after the attacker's
//!   last accepted attempt;
//! - a success empties the bucket.
//!
//! A credential pair verified recently (the engine's credential cache) skips the bucket: an
//! attacker who does not know the password cannot lock out an integration that does.
//!
//! The functions here are the arithmetic, pure and `now`-explicit; both stores call
//! [`reserve`] inside their own transaction. Keys are [`key`]s: SHA-256 of the username's
//! kind and name, the same on every node.

/// How many checks a username gets, and how fast they come back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LockoutPolicy {
    /// Checks allowed back to back (the bucket's size).
    pub allowance: u32,
    /// Seconds for one check to drain from the bucket.
    pub decay_secs: i64,
    /// Buckets kept; past it, housekeeping drops the oldest first.
    pub max_entries: u64,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        LockoutPolicy {
            allowance: 5,
            decay_secs: 180,
            max_entries: 200_000,
        }
    }
}

/// One username's bucket: its level when last touched, and when.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bucket {
    pub level: f64,
    pub at: i64,
}

impl Bucket {
    /// The level at `now`, after draining.
    pub fn level_at(self, now: i64, policy: &LockoutPolicy) -> f64 {
        let drained = (now - self.at).max(0) as f64 / policy.decay_secs.max(1) as f64;
        (self.level - drained).max(0.0)
    }
}

/// Reserve one check at `now`: the bucket after it, or `Err(seconds)` until one is free.
pub fn reserve(bucket: Option<Bucket>, now: i64, policy: &LockoutPolicy) -> Result<Bucket, u64> {
    let level = bucket.map_or(0.0, |b| b.level_at(now, policy));
    let room = f64::from(policy.allowance.max(1));
    if level + 1.0 > room + 1e-9 {
        let wait = (level + 1.0 - room) * policy.decay_secs as f64;
        return Err((wait.ceil() as u64).max(1));
    }
    Ok(Bucket {
        level: level + 1.0,
        at: now,
    })
}

/// Buckets last touched before this time have drained completely and can be deleted.
pub fn drained_before(now: i64, policy: &LockoutPolicy) -> i64 {
    now - i64::from(policy.allowance) * policy.decay_secs
}

/// The bucket key of a username of one kind (`partner`: an email; `user`: `partner_id:username`),
/// the same on every node.
pub fn key(kind: &str, username: &str) -> [u8; 32] {
    let mut input = Vec::with_capacity(32 + kind.len() + username.len());
    input.extend_from_slice(b"tessera-lockout\0");
    input.extend_from_slice(kind.as_bytes());
    input.push(0);
    input.extend_from_slice(username.as_bytes());
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &input);
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: LockoutPolicy = LockoutPolicy {
        allowance: 5,
        decay_secs: 180,
        max_entries: 10,
    };

    #[test]
    fn the_allowance_then_one_check_per_decay_period() {
        let mut b = None;
        for _ in 0..5 {
            b = Some(reserve(b, 1000, &P).unwrap());
        }
        // The sixth check at the same instant is refused, for one decay period.
        assert_eq!(reserve(b, 1000, &P), Err(180));
        assert_eq!(reserve(b, 1179, &P), Err(1));
        let next = reserve(b, 1180, &P).unwrap();
        assert!((next.level - 5.0).abs() < 1e-9);
        assert_eq!(reserve(Some(next), 1180, &P), Err(180));
    }

    #[test]
    fn a_slow_attacker_locks_nobody_out() {
        // One wrong attempt every 15 minutes never fills the bucket.
        let mut b = None;
        for i in 0..100 {
            b = Some(reserve(b, i * 900, &P).unwrap());
        }
        assert!(b.unwrap().level <= 1.0 + 1e-9);
    }

    #[test]
    fn a_full_bucket_drains_completely() {
        let mut b = None;
        for _ in 0..5 {
            b = Some(reserve(b, 0, &P).unwrap());
        }
        let full = b.unwrap();
        assert_eq!(drained_before(900, &P), 0);
        assert!(full.level_at(900, &P) < 1e-9);
        assert!(full.level_at(899, &P) > 0.0);
        // A clock that went backwards drains nothing and adds nothing.
        assert!((full.level_at(-50, &P) - 5.0).abs() < 1e-9);
    }

    #[test]
    fn keys_separate_kinds_and_names() {
        assert_ne!(key("partner", "a@b.c"), key("user", "a@b.c"));
        assert_ne!(key("user", "p:a"), key("user", "p:b"));
        assert_eq!(key("user", "p:a"), key("user", "p:a"));
    }
}
