//! Human passwords: Argon2id with OWASP parameters, run off the async threads behind a semaphore
//! (each hash holds ≈ 19 MiB), with the same cost for an unknown user as for a wrong password.
//! The queue in front of the semaphore is bounded ([`Passwords::admit`]): past it, a check is
//! refused at once rather than waiting behind a flood, so that the wait of a legitimate check
//! stays bounded and requests that need no password are not slowed. The queue is shared fairly:
//! one requester (an address, or an IPv6 /64) holds at most an eighth of its places, and the
//! last quarter is kept for requesters that hold none, so a flood from one source, or from a
//! handful, is refused at its share while everyone else's first sign-in still gets in. Denying
//! everyone takes about as many flooding sources as the queue has places.

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
    /// Places held per requester, and how many one requester may hold.
    by_source: Arc<dashmap::DashMap<String, usize>>,
    max_per_source: usize,
    /// Places that only a requester holding none may take.
    reserved: usize,
    /// Argon2 verifications run so far (for tests and metrics).
    verifications: Arc<std::sync::atomic::AtomicU64>,
    /// A hash of a random password, verified against when the user does not exist so that an
    /// unknown username costs the same as a wrong password. Made once, off the async threads
    /// ([`Passwords::prepare`], or the first unknown user's check), so that a `Passwords` the
    /// CLI makes for one change costs no Argon2 run of its own.
    dummy: Arc<std::sync::OnceLock<PasswordHash>>,
}

impl Passwords {
    pub fn new() -> Passwords {
        Passwords::with_queue(crate::policy::PASSWORD_QUEUE)
    }

    /// At most `queue` checks waiting for an Argon2 slot, besides those running.
    pub fn with_queue(queue: usize) -> Passwords {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        Passwords {
            permits: Arc::new(Semaphore::new(cores)),
            admitted: Arc::default(),
            max_admitted: cores + queue,
            by_source: Arc::default(),
            max_per_source: ((cores + queue) / 8).max(1),
            reserved: (cores + queue) / 4,
            verifications: Arc::default(),
            dummy: Arc::default(),
        }
    }

    /// Make the unknown-user hash now (a server calls this at start-up, so that the first
    /// unknown username costs what every later one does).
    pub async fn prepare(&self) {
        let dummy = Arc::clone(&self.dummy);
        tokio::task::spawn_blocking(move || {
            dummy_hash(&dummy);
        })
        .await
        .expect("hashing task panicked");
    }

    /// A place in the queue for one password check of `source` (a requester key; `None` for
    /// work no request asked for), or `None` when the queue is full, or `source` holds its
    /// share already, or holds a place and only the reserve is left (answer "busy, retry
    /// shortly" at once). The place is held until the returned guard drops.
    pub fn admit(&self, source: Option<&str>) -> Option<Admission> {
        use std::sync::atomic::Ordering;
        let mut limit = self.max_admitted;
        let source = match source {
            None => None,
            Some(key) => {
                let mut held = self.by_source.entry(key.to_string()).or_insert(0);
                if *held >= self.max_per_source {
                    return None;
                }
                if *held > 0 {
                    limit -= self.reserved;
                }
                *held += 1;
                Some((Arc::clone(&self.by_source), key.to_string()))
            }
        };
        // From here the guard gives back what was taken, also on refusal.
        let mut place = Admission {
            admitted: None,
            source,
        };
        let before = self.admitted.fetch_add(1, Ordering::AcqRel);
        if before >= limit {
            self.admitted.fetch_sub(1, Ordering::AcqRel);
            return None;
        }
        place.admitted = Some(Arc::clone(&self.admitted));
        Some(place)
    }

    /// How many places one requester may hold at once.
    pub fn per_source(&self) -> usize {
        self.max_per_source
    }

    /// How many checks may be admitted at once (running and waiting).
    pub fn capacity(&self) -> usize {
        self.max_admitted
    }

    /// Checks admitted right now (running or waiting).
    pub fn queued(&self) -> usize {
        self.admitted.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The permit a computation holds until it ends: moved into the blocking task, so a caller
    /// cancelled mid-way (a client that hung up) frees no slot while the work still runs.
    async fn slot(&self) -> tokio::sync::OwnedSemaphorePermit {
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("semaphore is never closed")
    }

    /// Hash a password a person chose, for a `place` admitted to the queue: like a check, the
    /// place and the slot are held until the Argon2 run ends, on a blocking thread. Every
    /// password Tessera stores is hashed here (sign-up, the admin API, the CLI), so none runs
    /// on an async worker or past the queue's bound.
    pub async fn hash(&self, place: Admission, password: &str) -> PasswordHash {
        let permit = self.slot().await;
        let pw = Zeroizing::new(password.to_string());
        tokio::task::spawn_blocking(move || {
            let _held = (permit, place);
            hash_blocking(&pw)
        })
        .await
        .expect("hashing task panicked")
    }

    /// [`Passwords::hash`] with a place taken for the requester being served (none outside a
    /// request), or `None` when the queue has no place for it: answer "busy, retry shortly".
    pub async fn hash_queued(&self, password: &str) -> Option<PasswordHash> {
        let place = self.admit(crate::audit::current_requester().as_deref())?;
        Some(self.hash(place, password).await)
    }

    /// Verify `password` against `hash`, or against a dummy hash when `hash` is `None` (unknown
    /// user), in which case the answer is always `false` after the same work.
    pub async fn verify(&self, hash: Option<&PasswordHash>, password: &str) -> bool {
        self.verify_with(None, hash, password).await
    }

    /// [`Passwords::verify`] for a check admitted to the queue: its `place` is held until the
    /// computation ends, like its slot, even when the caller is cancelled before, so that
    /// requests abandoned mid-check (the attack on issue 18's fixes reset each connection after
    /// a few milliseconds) cannot start more Argon2 work than the queue and the slots allow.
    pub async fn verify_holding(
        &self,
        place: Admission,
        hash: Option<&PasswordHash>,
        password: &str,
    ) -> bool {
        self.verify_with(Some(place), hash, password).await
    }

    async fn verify_with(
        &self,
        place: Option<Admission>,
        hash: Option<&PasswordHash>,
        password: &str,
    ) -> bool {
        let started = std::time::Instant::now();
        let permit = self.slot().await;
        self.verifications
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let known = hash.is_some();
        let hash = hash.cloned();
        let dummy = Arc::clone(&self.dummy);
        let pw = Zeroizing::new(password.to_string());
        let ok = tokio::task::spawn_blocking(move || {
            let _held = (permit, place);
            let hash = hash.as_ref().unwrap_or_else(|| dummy_hash(&dummy));
            let ok = Argon2::default()
                .verify_password(pw.as_bytes(), hash.0.as_str())
                .is_ok();
            hashed();
            ok
        })
        .await
        .expect("verification task panicked");
        crate::telemetry::password_check(started.elapsed().as_secs_f64());
        ok && known
    }
}

/// A held place in the password-check queue (and in its requester's share); released on drop.
pub struct Admission {
    admitted: Option<Arc<std::sync::atomic::AtomicUsize>>,
    source: Option<(Arc<dashmap::DashMap<String, usize>>, String)>,
}

impl Drop for Admission {
    fn drop(&mut self) {
        if let Some(admitted) = self.admitted.take() {
            admitted.fetch_sub(1, std::sync::atomic::Ordering::AcqRel);
        }
        if let Some((by_source, key)) = self.source.take() {
            // The last place of a requester removes its entry: the map holds only requesters
            // with checks in flight.
            by_source.remove_if_mut(&key, |_, held| {
                *held -= 1;
                *held == 0
            });
        }
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

/// The unknown-user hash, made on first use (on a blocking thread).
fn dummy_hash(dummy: &std::sync::OnceLock<PasswordHash>) -> &PasswordHash {
    dummy.get_or_init(|| {
        let random = crate::secret::generate(crate::secret::SecretKind::ClientSecret);
        hash_blocking(random.expose())
    })
}

/// What runs on the hashing thread after each Argon2 run, whose ≈ 19 MiB block was just
/// freed ([`after_each_hash`]).
static AFTER_HASH: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// Set what runs after each Argon2 run (once per process; a later call is ignored). The server
/// binary gives its allocator's collection here, so that a hash's block goes back to the
/// system at once: kept for the allocator's purge delay (1 s), each sign-in on a new thread
/// added its 19 MiB to the peak resident memory.
pub fn after_each_hash(release: fn()) {
    let _ = AFTER_HASH.set(release);
}

fn hashed() {
    if let Some(release) = AFTER_HASH.get() {
        release();
    }
}

/// One Argon2id run, on the calling thread: only ever called on a blocking thread, through
/// [`Passwords::hash`] or [`Passwords::prepare`].
fn hash_blocking(password: &str) -> PasswordHash {
    let salt = random_bytes::<16>();
    let phc = Argon2::default()
        .hash_password_with_salt(password.as_bytes(), &salt)
        .expect("Argon2 with default parameters and a 16-byte salt cannot fail")
        .to_string();
    hashed();
    PasswordHash(phc)
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

    #[test]
    fn one_requester_holds_at_most_its_share_of_the_queue() {
        let p = Passwords::with_queue(30);
        let share = p.per_source();
        assert!(share >= 1 && share < p.capacity());
        let flood: Vec<_> = (0..100)
            .filter_map(|_| p.admit(Some("203.0.113.66")))
            .collect();
        assert_eq!(flood.len(), share, "a single source past its share");
        assert_eq!(p.queued(), share, "refusals hold no place");
        // Everyone else still gets in, until the queue itself is full.
        let others: Vec<_> = (0..100)
            .filter_map(|i| p.admit(Some(&format!("198.51.100.{i}"))))
            .collect();
        assert_eq!(flood.len() + others.len(), p.capacity());
        assert!(p.admit(Some("192.0.2.1")).is_none() && p.admit(None).is_none());
        drop(flood);
        assert_eq!(p.queued(), p.capacity() - share);
        assert!(
            p.by_source.get("203.0.113.66").is_none(),
            "entries end with their checks"
        );
        // Past the reserve line, a requester that holds none gets one place, and no more.
        let again: Vec<_> = (0..share)
            .filter_map(|_| p.admit(Some("203.0.113.66")))
            .collect();
        assert_eq!(again.len(), 1);
    }

    #[test]
    fn a_handful_of_flooding_sources_leave_the_reserve_to_newcomers() {
        let p = Passwords::with_queue(30);
        let unreserved = p.capacity() - p.reserved;
        // Sources flooding as hard as they can fill the unreserved places at their shares; past
        // that line each later source gets its first place only.
        let sources = unreserved / p.per_source() + 2;
        let flood: Vec<_> = (0..sources)
            .flat_map(|s| (0..100).map(move |_| s))
            .filter_map(|s| p.admit(Some(&format!("203.0.113.{s}"))))
            .collect();
        assert_eq!(flood.len(), unreserved + 2);
        // Newcomers' first checks get the rest of the reserve, one place each.
        let first: Vec<_> = (0..100)
            .filter_map(|i| p.admit(Some(&format!("198.51.100.{i}"))))
            .collect();
        assert_eq!(first.len(), p.reserved - 2);
        assert!(p.admit(Some("192.0.2.1")).is_none(), "the queue is full");
    }

    /// Found by the attack on issue 18's fixes: a check whose request was abandoned gave back
    /// its place and its slot at once while its Argon2 run went on, so resetting connections a
    /// few milliseconds in started work without bound (13 runs at once on 2 slots).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_abandoned_check_holds_its_place_and_slot_until_its_work_ends() {
        let p = Arc::new(Passwords::with_queue(4));
        let slots = p.permits.available_permits();
        let hash = p.hash_queued("correct horse battery").await.unwrap();
        let place = p.admit(Some("203.0.113.66")).unwrap();
        let started = p.verifications();
        let check = {
            let (p, hash) = (Arc::clone(&p), hash.clone());
            tokio::spawn(async move { p.verify_holding(place, Some(&hash), "guess").await })
        };
        while p.verifications() == started {
            tokio::task::yield_now().await;
        }
        check.abort();
        assert!(check.await.is_err(), "cancelled");
        assert_eq!(p.queued(), 1, "the place is held while the work runs");
        assert_eq!(p.permits.available_permits(), slots - 1, "and the slot");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while p.queued() > 0 || p.permits.available_permits() < slots {
            assert!(std::time::Instant::now() < deadline, "never given back");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        assert!(p.by_source.is_empty());
    }

    #[tokio::test]
    async fn verifies_right_and_refuses_wrong_and_unknown() {
        let p = Passwords::new();
        let h = p.hash_queued("correct horse battery").await.unwrap();
        assert!(h.0.starts_with("$argon2id$"));
        assert!(p.verify(Some(&h), "correct horse battery").await);
        assert!(!p.verify(Some(&h), "wrong horse battery").await);
        assert!(!p.verify(None, "correct horse battery").await);
    }

    #[tokio::test]
    async fn a_hash_takes_a_place_in_the_queue_and_is_refused_when_it_is_full() {
        let p = Passwords::with_queue(1);
        let held: Vec<_> = (0..p.capacity()).filter_map(|_| p.admit(None)).collect();
        assert_eq!(held.len(), p.capacity());
        assert!(p.hash_queued("correct horse battery").await.is_none());
        drop(held);
        assert!(p.hash_queued("correct horse battery").await.is_some());
        assert_eq!(p.queued(), 0, "the place is given back when the hash ends");
    }

    #[test]
    fn weak_passwords_are_refused() {
        assert!(check_strength("short").is_err());
        assert!(check_strength("aaaaaaaaaaaaaaaa").is_err());
        assert!(check_strength("MyPassword2024!").is_err());
        assert!(check_strength("violet-harbor-engine").is_ok());
    }
}
