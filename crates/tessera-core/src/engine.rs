//! The engine: one per process, shared by both dialects. It owns the store handle, the key set,
//! and the in-process caches that keep Argon2 and database round trips off the hot paths, and it
//! keeps those caches coherent with the database through the change feed ([`Engine::sync`]).
//!
//! Cache coherence: every cache is either immutable data (accounts never change owner) or is
//! invalidated by a [`Change`] read from the feed, which the store writes in the same transaction
//! as the change itself. A loader that raced with an invalidation does not insert what it read
//! (the `epoch` check), so a stale entry cannot outlive the change that made it stale.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use quick_cache::sync::Cache;

use crate::error::GrantError;
use crate::grants::Caller;
use crate::jwt::{self, Claims, JwtError};
use crate::keys::{Alg, KeyError, KeySet, MasterKey, generate_key};
use crate::lockout::{Lockout, LockoutPolicy};
use crate::model::{Account, Change, Client, Partner, PartnerStatus, User};
use crate::password::{Passwords, StoredPassword};
use crate::policy;
use crate::secret::{CacheKeyer, SecretDigest, SecretKind};
use crate::store::Store;

/// Settings of the engine; the server fills them from its configuration.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// `iss` of every token, and the issuer a presented token must name.
    pub issuer: String,
    /// `aud` of access tokens.
    pub audience: String,
    /// Algorithm of a signing key created at start-up when none exists.
    pub signing_alg: Alg,
    pub machine_token_ttl: i64,
    pub client_access_token_ttl: i64,
    /// Standard dialect: `client_credentials` (app_token).
    pub app_token_ttl: i64,
    /// Standard dialect: `password` grant (user_token, customer_token).
    pub user_token_ttl: i64,
    pub refresh_token_ttl: i64,
    /// Seconds during which reuse of a rotated refresh token is refused without revoking the
    /// family.
    pub refresh_reuse_grace: i64,
    /// Token requests a second per partner or client, with a burst of as many; 0 turns it off.
    pub token_rate_limit: u32,
    /// Entries in the verified-credential cache.
    pub credential_cache_size: usize,
}

impl EngineConfig {
    pub fn new(issuer: impl Into<String>) -> EngineConfig {
        let issuer = issuer.into();
        EngineConfig {
            audience: issuer.clone(),
            issuer,
            signing_alg: Alg::ES256,
            machine_token_ttl: policy::MACHINE_TOKEN_TTL,
            client_access_token_ttl: policy::CLIENT_ACCESS_TOKEN_TTL,
            app_token_ttl: policy::APP_TOKEN_TTL,
            user_token_ttl: policy::USER_TOKEN_TTL,
            refresh_token_ttl: policy::REFRESH_TOKEN_TTL,
            refresh_reuse_grace: policy::REFRESH_REUSE_GRACE,
            token_rate_limit: 50,
            credential_cache_size: 10_000,
        }
    }
}

/// Entries in the verified-token cache (≈ 0.5 KiB each).
const VERIFIED_TOKEN_CACHE: usize = 20_000;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("could not read the database: {0}")]
    Store(#[from] crate::store::StoreError),
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// A credential pair verified recently. `owner` is the partner id for a partner's login, and
/// `partner_id:username` for a user's, so that invalidations can find it.
#[derive(Clone)]
struct VerifiedCredential {
    owner: Arc<str>,
}

pub struct Engine {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) config: EngineConfig,
    master: MasterKey,
    keys: ArcSwap<KeySet>,
    pub(crate) passwords: Passwords,
    keyer: CacheKeyer,
    /// keyed hash of (email, password) → partner, for credentials verified recently.
    credentials: Cache<[u8; 32], VerifiedCredential>,
    /// Single flight: a credential pair being checked right now → the lock its other
    /// presentations wait on, so that 32 concurrent requests with a new pair cost one Argon2,
    /// not 32.
    checking: DashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>,
    partners: Cache<String, Arc<Partner>>,
    partner_tokens: Cache<SecretDigest, Arc<str>>,
    clients: Cache<String, Arc<Client>>,
    /// (partner id, username) → user.
    users: Cache<(String, String), Arc<User>>,
    lockout: Lockout,
    /// The scope registry, for discovery.
    scopes: ArcSwap<Vec<String>>,
    accounts: Cache<String, Arc<Account>>,
    /// SHA-256 of a presented JWT → its verified claims. A signature that verified stays valid
    /// until the token expires (retired keys stay published that long), so repeated presentations
    /// skip the signature check (≈ 76 µs for ES256); expiry and revocation are still checked on
    /// every use.
    verified: Cache<[u8; 32], Arc<Claims>>,
    /// Revoked `jti`s and refresh-family `sid`s → until when the revocation matters.
    revoked: DashMap<String, i64>,
    limiter: Option<DefaultKeyedRateLimiter<String>>,
    /// Highest change-feed sequence applied.
    seq: AtomicI64,
    /// Bumped on every invalidation; see the module comment.
    epoch: AtomicU64,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("issuer", &self.config.issuer)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Load keys (creating the first signing key when the store has none), revocations and the
    /// change-feed position.
    pub async fn start(
        store: Arc<dyn Store>,
        config: EngineConfig,
        master: MasterKey,
        now: i64,
    ) -> Result<Engine, StartError> {
        for ttl in [
            config.machine_token_ttl,
            config.client_access_token_ttl,
            config.app_token_ttl,
            config.user_token_ttl,
        ] {
            if !(1..=policy::MAX_ACCESS_TOKEN_TTL).contains(&ttl) {
                return Err(StartError::Config(format!(
                    "access-token lifetimes must lie between 1 and {} seconds",
                    policy::MAX_ACCESS_TOKEN_TTL
                )));
            }
        }
        let seq = store.latest_change().await?;
        let keys = match KeySet::load(&store.list_keys().await?, &master, now)? {
            Some(keys) => keys,
            None => {
                let key = generate_key(config.signing_alg, &master, now)?;
                store.rotate_keys(&key, now).await?;
                tracing::info!(kid = %key.kid, alg = key.alg.as_str(), "created the first signing key");
                KeySet::load(&store.list_keys().await?, &master, now)?
                    .ok_or_else(|| StartError::Config("no usable signing key".into()))?
            }
        };
        let revoked = DashMap::new();
        for (id, until) in store.active_revocations(now).await? {
            revoked.insert(id, until);
        }
        let limiter = NonZeroU32::new(config.token_rate_limit)
            .map(|n| RateLimiter::keyed(Quota::per_second(n).allow_burst(n)));
        let cache = config.credential_cache_size.max(16);
        let scopes = store.list_scopes().await?;
        Ok(Engine {
            store,
            master,
            keys: ArcSwap::from_pointee(keys),
            passwords: Passwords::new(),
            keyer: CacheKeyer::new(),
            credentials: Cache::new(cache),
            checking: DashMap::new(),
            partners: Cache::new(cache),
            partner_tokens: Cache::new(cache),
            clients: Cache::new(cache),
            users: Cache::new(cache),
            lockout: Lockout::new(LockoutPolicy::default()),
            scopes: ArcSwap::from_pointee(scopes),
            accounts: Cache::new(cache * 4),
            verified: Cache::new(VERIFIED_TOKEN_CACHE),
            revoked,
            limiter,
            seq: AtomicI64::new(seq),
            epoch: AtomicU64::new(0),
            config,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// The registered scope names.
    pub fn scopes(&self) -> Arc<Vec<String>> {
        self.scopes.load_full()
    }

    /// The published keys as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.load().jwks().clone()
    }

    // ---- change feed -------------------------------------------------------------------------

    /// Apply every change committed since the last call. Run every 250 ms by
    /// [`Engine::spawn_sync`]; tests call it directly.
    pub async fn sync(&self, now: i64) -> Result<usize, GrantError> {
        let mut applied = 0;
        loop {
            let after = self.seq.load(Ordering::Acquire);
            let changes = self.store.changes_since(after, 500).await?;
            let n = changes.len();
            for (seq, change) in changes {
                self.apply(change, now).await?;
                self.seq.store(seq, Ordering::Release);
                applied += 1;
            }
            if n < 500 {
                return Ok(applied);
            }
        }
    }

    async fn apply(&self, change: Change, now: i64) -> Result<(), GrantError> {
        tracing::debug!(?change, "applying change");
        match change {
            Change::Partner(id) => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                self.partners.remove(&id);
                let users_prefix = format!("{id}:");
                self.credentials
                    .retain(|_, v| *v.owner != *id && !v.owner.starts_with(&users_prefix));
                self.partner_tokens.retain(|_, v| **v != *id);
            }
            Change::User {
                partner_id,
                username,
            } => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                let owner = format!("{partner_id}:{username}");
                self.credentials.retain(|_, v| *v.owner != *owner);
                self.users.remove(&(partner_id, username));
            }
            Change::PartnerToken(id) => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                self.partner_tokens.retain(|_, v| **v != *id);
            }
            Change::Client(id) => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                self.clients.remove(&id);
            }
            Change::Scopes => self.scopes.store(Arc::new(self.store.list_scopes().await?)),
            Change::Keys => self.reload_keys(now).await?,
            Change::Revoked { id, until } => {
                if until > now {
                    self.revoked.insert(id, until);
                }
            }
        }
        Ok(())
    }

    async fn reload_keys(&self, now: i64) -> Result<(), GrantError> {
        let stored = self.store.list_keys().await?;
        match KeySet::load(&stored, &self.master, now) {
            Ok(Some(keys)) => {
                tracing::info!(active_kid = %keys.signer().kid, "signing keys reloaded");
                self.keys.store(Arc::new(keys));
                Ok(())
            }
            Ok(None) => {
                tracing::error!("the store has no active signing key; keeping the current keys");
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "could not load signing keys; keeping the current keys");
                Ok(())
            }
        }
    }

    /// Forget revocations of tokens that have expired anyway, and rate-limit state of idle keys.
    pub fn housekeeping(&self, now: i64) {
        self.revoked.retain(|_, until| *until > now);
        self.lockout.prune(now);
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
    }

    /// Run [`Engine::sync`] every 250 ms and housekeeping every minute, until the process ends.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_millis(250));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut n: u64 = 0;
            let mut failing = false;
            loop {
                tick.tick().await;
                let now = crate::unix_now();
                match engine.sync(now).await {
                    Err(e) if !failing => {
                        failing = true;
                        tracing::warn!(error = %e, "change feed sync failing; retrying every 250 ms");
                    }
                    Ok(_) if failing => {
                        failing = false;
                        tracing::info!("change feed sync recovered");
                    }
                    _ => {}
                }
                n += 1;
                if n.is_multiple_of(240) {
                    engine.housekeeping(now);
                    if let Err(e) = engine.store.prune_changes(now - 86_400).await {
                        tracing::warn!(error = %e, "could not prune the change feed");
                    }
                }
            }
        })
    }

    // ---- caches ------------------------------------------------------------------------------

    pub(crate) async fn partner(&self, id: &str) -> Result<Option<Arc<Partner>>, GrantError> {
        if let Some(p) = self.partners.get(id) {
            return Ok(Some(p));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let Some(p) = self.store.partner_by_id(id).await? else {
            return Ok(None);
        };
        let p = Arc::new(p);
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.partners.insert(id.to_string(), Arc::clone(&p));
        }
        Ok(Some(p))
    }

    pub(crate) async fn account(&self, id: &str) -> Result<Option<Arc<Account>>, GrantError> {
        if let Some(a) = self.accounts.get(id) {
            return Ok(Some(a));
        }
        let Some(a) = self.store.account_by_id(id).await? else {
            return Ok(None);
        };
        let a = Arc::new(a);
        self.accounts.insert(id.to_string(), Arc::clone(&a));
        Ok(Some(a))
    }

    pub(crate) fn remember_account(&self, account: Account) {
        self.accounts.insert(account.id.clone(), Arc::new(account));
    }

    // ---- partner authentication --------------------------------------------------------------

    /// `Authorization: Basic email:password`. Recently verified pairs are served from the
    /// credential cache (keyed by an HMAC of the pair, never the clear password); otherwise the
    /// password is checked with Argon2id, and an unknown email costs the same as a wrong password.
    #[tracing::instrument(skip_all, name = "partner_basic")]
    pub async fn authenticate_partner_basic(
        &self,
        email: &str,
        password: &str,
        now: i64,
    ) -> Result<Arc<Partner>, GrantError> {
        if email.len() > policy::MAX_EMAIL_LEN || password.len() > policy::MAX_PASSWORD_LEN {
            return Err(GrantError::InvalidCredentials);
        }
        let email = email.to_ascii_lowercase();
        let key = self
            .keyer
            .key(&[b"partner", email.as_bytes(), password.as_bytes()]);
        if let Some(hit) = self.credentials.get(&key)
            && let Some(p) = self.partner(&hit.owner).await?
        {
            return active(p);
        }
        let _flight = self.single_flight(key).await;
        if let Some(hit) = self.credentials.get(&key)
            && let Some(p) = self.partner(&hit.owner).await?
        {
            return active(p);
        }
        let lock_key = self.keyer.key(&[b"lock-partner", email.as_bytes()]);
        self.lockout
            .check(&lock_key, now)
            .map_err(|retry_after_secs| GrantError::Locked { retry_after_secs })?;
        let epoch = self.epoch.load(Ordering::Acquire);
        let partner = self.store.partner_by_email(&email).await?;
        let ok = self
            .passwords
            .verify(partner.as_ref().map(|p| &p.password_hash), password)
            .await;
        let partner = match partner {
            Some(p) if ok => Arc::new(p),
            _ => {
                let locked_for = self.lockout.failure(&lock_key, now);
                tracing::info!(locked_for, "partner authentication failed");
                return Err(GrantError::InvalidCredentials);
            }
        };
        self.lockout.success(&lock_key);
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.credentials.insert(
                key,
                VerifiedCredential {
                    owner: Arc::from(partner.id.as_str()),
                },
            );
            self.partners
                .insert(partner.id.clone(), Arc::clone(&partner));
        }
        active(partner)
    }

    /// `Authorization: Bearer <partner API token>`: SHA-256 look-up, cached.
    #[tracing::instrument(skip_all, name = "partner_token")]
    pub async fn authenticate_partner_token(
        &self,
        token: &str,
    ) -> Result<Arc<Partner>, GrantError> {
        if SecretKind::of(token) != Some(SecretKind::PartnerToken) || token.len() > 128 {
            return Err(GrantError::InvalidPartnerToken);
        }
        let digest = SecretDigest::of(token);
        let partner_id = match self.partner_tokens.get(&digest) {
            Some(id) => id,
            None => {
                let epoch = self.epoch.load(Ordering::Acquire);
                let id: Arc<str> = self
                    .store
                    .partner_by_token(&digest)
                    .await?
                    .ok_or(GrantError::InvalidPartnerToken)?
                    .into();
                if self.epoch.load(Ordering::Acquire) == epoch {
                    self.partner_tokens.insert(digest, Arc::clone(&id));
                }
                id
            }
        };
        let partner = self
            .partner(&partner_id)
            .await?
            .ok_or(GrantError::InvalidPartnerToken)?;
        active(partner)
    }

    /// Wait until no other task is checking this credential pair, then hold the right to check
    /// it. The guard releases on drop and forgets the entry once nobody else waits.
    async fn single_flight(&self, key: [u8; 32]) -> FlightGuard<'_> {
        let lock = Arc::clone(
            self.checking
                .entry(key)
                .or_insert_with(|| Arc::new(tokio::sync::Mutex::new(())))
                .value(),
        );
        let guard = Arc::clone(&lock).lock_owned().await;
        FlightGuard {
            engine: self,
            key,
            lock,
            _guard: guard,
        }
    }

    // ---- client and user authentication (standard dialect) ------------------------------------

    pub async fn client(&self, id: &str) -> Result<Option<Arc<Client>>, GrantError> {
        if let Some(c) = self.clients.get(id) {
            return Ok(Some(c));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let Some(c) = self.store.client_by_id(id).await? else {
            return Ok(None);
        };
        let c = Arc::new(c);
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.clients.insert(id.to_string(), Arc::clone(&c));
        }
        Ok(Some(c))
    }

    /// RFC 6749 §2.3.1: a client id and its secret. Secrets are 256-bit and stored as SHA-256,
    /// so this costs one hash and a constant-time comparison, never Argon2.
    #[tracing::instrument(skip_all, name = "client_auth")]
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
    ) -> Result<Caller, GrantError> {
        if client_id.len() > 128 || secret.len() > 256 {
            return Err(GrantError::InvalidClient("unknown client or wrong secret"));
        }
        let presented = SecretDigest::of(secret);
        let client = self.client(client_id).await?;
        let Some(client) = client.filter(|c| c.secret_digest.ct_eq(&presented)) else {
            tracing::info!("client authentication failed");
            return Err(GrantError::InvalidClient("unknown client or wrong secret"));
        };
        let partner = self
            .partner(&client.partner_id)
            .await?
            .ok_or(GrantError::InvalidClient("unknown client or wrong secret"))?;
        if partner.status != PartnerStatus::Active {
            return Err(GrantError::InvalidClient(
                "the client's organisation is inactive",
            ));
        }
        Ok(Caller::Client { client, partner })
    }

    pub(crate) async fn user(
        &self,
        partner_id: &str,
        username: &str,
    ) -> Result<Option<Arc<User>>, GrantError> {
        let key = (partner_id.to_string(), username.to_string());
        if let Some(u) = self.users.get(&key) {
            return Ok(Some(u));
        }
        let epoch = self.epoch.load(Ordering::Acquire);
        let Some(u) = self.store.user_by_username(partner_id, username).await? else {
            return Ok(None);
        };
        let u = Arc::new(u);
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.users.insert(key, Arc::clone(&u));
        }
        Ok(Some(u))
    }

    pub(crate) fn forget_user(&self, partner_id: &str, username: &str) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        let owner = format!("{partner_id}:{username}");
        self.credentials.retain(|_, v| *v.owner != *owner);
        self.users
            .remove(&(partner_id.to_string(), username.to_string()));
    }

    /// A user's password, within one partner. People's passwords are Argon2id behind the
    /// credential cache; generated `clientUserToken`s are SHA-256. An unknown username costs what
    /// a wrong password of the same shape costs. Every check goes through the lockout.
    #[tracing::instrument(skip_all, name = "user_password")]
    pub async fn authenticate_user(
        &self,
        partner_id: &str,
        username: &str,
        password: &str,
        now: i64,
    ) -> Result<Arc<User>, GrantError> {
        let username = normalize_username(username);
        if username.is_empty()
            || username.len() > policy::MAX_EMAIL_LEN
            || password.len() > policy::MAX_PASSWORD_LEN
        {
            return Err(GrantError::InvalidUserCredentials);
        }
        let owner = format!("{partner_id}:{username}");
        let key = self
            .keyer
            .key(&[b"user", owner.as_bytes(), password.as_bytes()]);
        if self.credentials.get(&key).is_some()
            && let Some(u) = self.user(partner_id, &username).await?
        {
            return Ok(u);
        }
        let _flight = self.single_flight(key).await;
        if self.credentials.get(&key).is_some()
            && let Some(u) = self.user(partner_id, &username).await?
        {
            return Ok(u);
        }
        let lock_key = self.keyer.key(&[b"lock-user", owner.as_bytes()]);
        self.lockout
            .check(&lock_key, now)
            .map_err(|retry_after_secs| GrantError::Locked { retry_after_secs })?;
        let epoch = self.epoch.load(Ordering::Acquire);
        let user = self.user(partner_id, &username).await?;
        let generated_shape = SecretKind::of(password) == Some(SecretKind::ClientUserToken);
        let (ok, slow) = match user
            .as_deref()
            .map(|u| StoredPassword::of(&u.password_hash))
        {
            Some(StoredPassword::Generated(digest)) => {
                (digest.ct_eq(&SecretDigest::of(password)), false)
            }
            Some(StoredPassword::Argon2(hash)) => {
                (self.passwords.verify(Some(hash), password).await, true)
            }
            None if generated_shape => {
                let _ = SecretDigest::of(password).ct_eq(&SecretDigest([0; 32]));
                (false, false)
            }
            None => (self.passwords.verify(None, password).await, true),
        };
        let user = match user {
            Some(u) if ok => u,
            _ => {
                let locked_for = self.lockout.failure(&lock_key, now);
                tracing::info!(locked_for, "user authentication failed");
                return Err(GrantError::InvalidUserCredentials);
            }
        };
        self.lockout.success(&lock_key);
        if slow && self.epoch.load(Ordering::Acquire) == epoch {
            self.credentials.insert(
                key,
                VerifiedCredential {
                    owner: Arc::from(owner.as_str()),
                },
            );
        }
        Ok(user)
    }

    // ---- tokens ------------------------------------------------------------------------------

    /// Count one token request against `key`'s budget.
    pub fn check_rate(&self, key: &str) -> Result<(), GrantError> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        // Keys are partner ids and client ids: bounded by the registry, not by callers.
        limiter.check_key(&key.to_string()).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            GrantError::RateLimited {
                retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
            }
        })
    }

    pub(crate) fn mint(&self, claims: &Claims) -> String {
        jwt::encode(&self.keys.load(), claims)
    }

    /// Verify a presented access token: signature, issuer, expiry, and revocation.
    pub fn verify_token(&self, token: &str, now: i64) -> Result<Claims, GrantError> {
        let key = token_digest(token);
        let claims = match self.verified.get(&key) {
            Some(c) => {
                if c.exp <= now {
                    return Err(GrantError::TokenInvalid(JwtError::Expired));
                }
                c
            }
            None => {
                let c = Arc::new(
                    jwt::decode(&self.keys.load(), token, &self.config.issuer, now)
                        .map_err(jwt_error)?,
                );
                self.verified.insert(key, Arc::clone(&c));
                c
            }
        };
        if self.is_revoked(&claims) {
            return Err(GrantError::TokenUnknownOrRevoked);
        }
        Ok((*claims).clone())
    }

    /// Signature and issuer only (revocation of expired tokens).
    pub(crate) fn verify_token_ignoring_expiry(&self, token: &str) -> Result<Claims, GrantError> {
        jwt::decode_ignoring_expiry(&self.keys.load(), token, &self.config.issuer)
            .map_err(jwt_error)
    }

    pub(crate) fn is_revoked(&self, claims: &Claims) -> bool {
        self.revoked.contains_key(&claims.jti)
            || claims
                .sid
                .as_ref()
                .is_some_and(|sid| self.revoked.contains_key(sid))
    }

    pub(crate) fn note_revoked(&self, id: &str, until: i64) {
        self.revoked.insert(id.to_string(), until);
    }
}

struct FlightGuard<'a> {
    engine: &'a Engine,
    key: [u8; 32],
    lock: Arc<tokio::sync::Mutex<()>>,
    _guard: tokio::sync::OwnedMutexGuard<()>,
}

impl Drop for FlightGuard<'_> {
    fn drop(&mut self) {
        // Held here, by the guard, and by the map: 3 means nobody else is waiting.
        self.engine.checking.remove_if(&self.key, |_, l| {
            Arc::ptr_eq(l, &self.lock) && Arc::strong_count(l) <= 3
        });
    }
}

/// Usernames (emails, phone numbers) compare case-insensitively and without spaces around.
pub fn normalize_username(username: &str) -> String {
    username.trim().to_lowercase()
}

fn token_digest(token: &str) -> [u8; 32] {
    let d = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

fn jwt_error(e: JwtError) -> GrantError {
    match e {
        JwtError::NotOurs => GrantError::TokenUnknownOrRevoked,
        other => GrantError::TokenInvalid(other),
    }
}

fn active(p: Arc<Partner>) -> Result<Arc<Partner>, GrantError> {
    match p.status {
        PartnerStatus::Active => Ok(p),
        PartnerStatus::Inactive => Err(GrantError::PartnerInactive),
    }
}
