//! Human passwords: Argon2id with OWASP parameters, run off the async threads behind a semaphore
//! (each hash holds ≈ 19 MiB), with the same cost for an unknown user as for a wrong password.
//! The queue in front of the semaphore is bounded ([`Passwords::admit`]): past it, a check is
//! refused at once rather than waiting behind a flood, so that the wait of a legitimate check
//! stays bounded and requests that need no password are not slowed.

use std::sync::Arc;

use argon2::{Argon2, PasswordHasher, PasswordVerifier};
use tokio::sync::Semaphore;
use zeroize::Zeroizing;

use crate::model::PasswordHash;
use crate::policy::{MAX_PASSWORD_LEN, MIN_PASSWORD_LEN};
use crate::secret::{SecretDigest, random_bytes};

#[derive(Clone)]
pub struct Passwords {
    permits: Arc<Semaphore>,
    /// Checks admitted (running or waiting) and how many may be at once.
    admitted: Arc<std::sync::atomic::AtomicUsize>,
    max_admitted: usize,
    /// Argon2 verifications run so far (for tests and metrics).
    verifications: Arc<std::sync::atomic::AtomicU64>,
    /// A hash of a random password, verified against when the user does not exist so that an
    /// unknown username costs the same as a wrong password.
    dummy: Arc<PasswordHash>,
}

impl Passwords {
    pub fn new() -> Passwords {
        Passwords::with_queue(crate::policy::PASSWORD_QUEUE)
    }

    /// At most `queue` checks waiting for an Argon2 slot, besides those running.
    pub fn with_queue(queue: usize) -> Passwords {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        let random = crate::secret::generate(crate::secret::SecretKind::ClientSecret);
        Passwords {
            permits: Arc::new(Semaphore::new(cores)),
            admitted: Arc::default(),
            max_admitted: cores + queue,
            verifications: Arc::default(),
            dummy: Arc::new(hash_blocking(random.expose())),
        }
    }

    /// A place in the queue for one password check, or `None` when the queue is full (answer
    /// "busy, retry shortly" at once). The place is held until the returned guard drops.
    pub fn admit(&self) -> Option<Admission> {
        use std::sync::atomic::Ordering;
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        if before >= self.max_admitted {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        Some(Admission(Arc::clone(&self.admitted)))
    }

    /// How many checks may be admitted at once (running and waiting).
    pub fn capacity(&self) -> usize {
        self.max_admitted
    }

    /// Checks admitted right now (running or waiting).
    pub fn queued(&self) -> usize {
        self.admitted.load(std::sync::atomic::Ordering::Acquire)
    }

    pub async fn hash(&self, password: &str) -> PasswordHash {
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore is never closed");
        let pw = Zeroizing::new(password.to_string());
        tokio::task::spawn_blocking(move || hash_blocking(&pw))
            .await
            .expect("hashing task panicked")
    }

    /// Verify `password` against `hash`, or against a dummy hash when `hash` is `None` (unknown
    /// user), in which case the answer is always `false` after the same work.
    pub async fn verify(&self, hash: Option<&PasswordHash>, password: &str) -> bool {
        let started = std::time::Instant::now();
        let _permit = self
            .permits
            .acquire()
            .await
            .expect("semaphore is never closed");
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let known = hash.is_some();
        let hash = hash.cloned().unwrap_or_else(|| (*self.dummy).clone());
        let pw = Zeroizing::new(password.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            Argon2::default()
                .verify_password(pw.as_bytes(), hash.0.as_str())
                .is_ok()
        })
        .await
        .expect("verification task panicked");
        crate::telemetry::password_check(started.elapsed().as_secs_f64());
        ok && known
    }
}

/// A held place in the password-check queue; released on drop.
pub struct Admission(Arc<std::sync::atomic::AtomicUsize>);

impl Drop for Admission {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
    }
}

impl Default for Passwords {
    fn default() -> Self {
        Self::new()
    }
}

/// How a stored password is checked.
pub enum StoredPassword<'a> {
    /// A password a person chose: Argon2id.
    Argon2(&'a PasswordHash),
    /// A secret Tessera generated (a `clientUserToken`): SHA-256, as for every generated secret.
    Generated(SecretDigest),
}

const GENERATED_PREFIX: &str = "sha256$";

impl<'a> StoredPassword<'a> {
    pub fn of(hash: &'a PasswordHash) -> StoredPassword<'a> {
        match hash
            .0
            .strip_prefix(GENERATED_PREFIX)
            .and_then(SecretDigest::from_hex)
        {
            Some(d) => StoredPassword::Generated(d),
            None => StoredPassword::Argon2(hash),
        }
    }
}

/// The stored form of a generated password.
pub fn generated_hash(secret: &crate::secret::Secret) -> PasswordHash {
    PasswordHash(format!("{GENERATED_PREFIX}{}", secret.digest().to_hex()))
}

impl Passwords {
    /// How many Argon2 verifications this process has run.
    pub fn verifications(&self) -> u64 {
        self.verifications
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Hash synchronously (CLI and start-up).
pub fn hash_blocking(password: &str) -> PasswordHash {
    let salt = random_bytes::<16>();
    let phc = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters and a 16-byte salt cannot fail");
    PasswordHash(phc.to_string())
}

/// Refuse passwords a person should not be allowed to set.
pub fn check_strength(password: &str) -> Result<(), String> {
    let chars = password.chars().count();
    if chars < MIN_PASSWORD_LEN {
        return Err(format!(
            "the password is too weak: use at least {MIN_PASSWORD_LEN} characters"
        ));
    }
    if password.len() > MAX_PASSWORD_LEN {
        return Err(format!(
            "the password is longer than {MAX_PASSWORD_LEN} bytes"
        ));
    }
    let first = password.chars().next();
    if password.chars().all(|c| Some(c) == first) {
        return Err("the password is too weak: it repeats one character".into());
    }
    let lower = password.to_lowercase();
    if ["password", "123456789", "qwertyuiop", "letmein"]
        .iter()
        .any(|w| lower.contains(w))
    {
        return Err("the password is too weak: it contains a common password".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn verifies_right_and_refuses_wrong_and_unknown() {
        let p = Passwords::new();
        let h = p.hash("correct horse battery").await;
        assert!(h.0.starts_with("$argon2id$"));
        assert!(p.verify(Some(&h), "correct horse battery").await);
        assert!(!p.verify(Some(&h), "wrong horse battery").await);
        assert!(!p.verify(None, "correct horse battery").await);
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(check_strength("short").is_err());
        assert!(check_strength("aaaaaaaaaaaaaaaa").is_err());
        assert!(check_strength("MyPassword2024!").is_err());
        assert!(check_strength("violet-harbor-engine").is_ok());
    }
}
