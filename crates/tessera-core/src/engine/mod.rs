//! The engine: one per process, shared by both dialects. It owns the store handle, the key set,
//! and the in-process caches that keep Argon2 and database round trips off the hot paths, and it
//! keeps those caches coherent with the database through the change feed ([`Engine::sync`]).
//!
//! Cache coherence: every cache is either immutable data (accounts never change owner) or is
//! invalidated by a [`Change`](crate::model::Change) read from the feed, which the store writes in the same transaction
//! as the change itself. A loader that raced with an invalidation does not insert what it read
//! (the `epoch` check), so a stale entry cannot outlive the change that made it stale.
//!
//! By job: this file holds the configuration, the state and the start-up; `directory` the
//! cached look-ups of partners, clients, users and accounts (and the writes that keep them
//! coherent); `authenticate` the four kinds of authentication (partner Basic, partner API
//! token, client secret, user password) with the lockout and single flight; `tokens` minting,
//! verification and the revoked set; `feed` the change feed and housekeeping.
//!
//! The store handle is private to this module: other modules read records through the cached
//! accessors, and reach only the uncached parts of the store (`Engine::tokens`,
//! `Engine::flows`), so none can skip a cache by accident.

mod authenticate;
mod directory;
mod feed;
mod limits;
mod tokens;

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use arc_swap::ArcSwap;
use dashmap::DashMap;
use quick_cache::sync::Cache;

use crate::budget::{Lane, Quota};
use crate::error::EngineError;
use crate::jwt::Claims;
use crate::keys::{Alg, KeyError, KeySet, KeyUse, generate_key_for};
use crate::lockout::LockoutPolicy;
use crate::master::MasterKey;
use crate::model::{Account, Client, Partner, PartnerStatus, User};
use crate::password::Passwords;
use crate::policy;
use crate::secret::{CacheKeyer, SecretDigest};
use crate::store::{AuthorizationStore, Store, StoreResult, TokenStore};
use limits::{Limiter, Unleased};

/// The self-registration limits for `n` an hour: per partner, `n` spread over the hour and at
/// most 5 back to back; per requester, half as many and at most 2 back to back (found by an
/// attack: with the partner's budget, one address spent it for everyone). Both refuse while
/// their budgets cannot be leased.
fn registration_limits(n: NonZeroU32, shared: bool) -> (Limiter, Limiter) {
    let period = std::time::Duration::from_secs(3600) / n.get();
    let limit = |name, period, most: u32| {
        let burst = n.min(NonZeroU32::new(most).expect("non-zero"));
        let quota = Quota::every(period, burst);
        Limiter::new(name, Lane::Requesters, Unleased::Refuse, quota, shared)
    };
    (
        limit("registrations", period, 5),
        limit("registration_sources", period * 2, 2),
    )
}

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
    /// Seconds during which a retry of a just-rotated refresh token replaces its unused
    /// successor (a lost response), and other reuse is refused without revoking the family.
    pub refresh_reuse_grace: i64,
    /// Seconds after which a refresh-token family ends however often it was refreshed.
    pub refresh_family_lifetime: i64,
    /// Token requests a second per partner or client, with a burst of as many; 0 turns it off.
    pub token_rate_limit: u32,
    /// `/authorize` requests one requester may send at once, then one every 2 seconds; `0` =
    /// off. Each request stores a pending request, so the default bounds what one source can
    /// make the database keep.
    pub flow_burst: u32,
    /// Self-registrations (the sign-in page's "create an account") a partner's users may make
    /// an hour, at most 5 back to back; one requester half of that, at most 2 back to back, so
    /// that no single requester can keep a partner's registrations spent; `0` = off.
    pub registrations_per_hour: u32,
    /// Entries in the verified-credential cache.
    pub credential_cache_size: usize,
    /// A redirect URI accepted for clients registered with `--dev`, besides their own: the
    /// server's development callback page. `None`: no such page.
    pub dev_redirect_uri: Option<String>,
    /// How many password checks a username gets, and how fast they come back.
    pub lockout: LockoutPolicy,
    /// Password checks that may wait for Argon2 besides those running; past it, "busy".
    pub password_queue: usize,
    /// Seconds audit events are kept before the janitor deletes them.
    pub audit_retention: i64,
    /// Whether each token issued is an audit event (`token.issued`); the other events are
    /// always recorded.
    pub audit_tokens: bool,
    /// Rotate the signing key every this many seconds (announcing the next key in the JWKS a
    /// day before it signs); `None`: only when an operator rotates.
    pub key_rotation: Option<i64>,
    /// How often the change feed is polled besides the database's announcements.
    pub feed_poll: std::time::Duration,
    /// How often the housekeeping (janitor, lockout and feed pruning, key schedule) runs, in a
    /// task of its own so that it never delays the change feed.
    pub housekeeping_every: std::time::Duration,
}

impl EngineConfig {
    /// When the first refresh token of a family issued at `now` expires: its lifetime, cut at
    /// the family's end (so that introspection never calls a token active that no refresh
    /// would accept).
    pub fn first_refresh_expiry(&self, now: i64) -> i64 {
        now + self.refresh_token_ttl.min(self.refresh_family_lifetime)
    }

    /// An access token's lifetime `ttl` at `now`, cut at the end of the refresh family begun at
    /// `family_issued_at` that it belongs to (its `sid`): no access token outlives its family,
    /// so a family's row and revocation entry need outlive only the family.
    pub fn ttl_within_family(&self, ttl: i64, family_issued_at: i64, now: i64) -> i64 {
        ttl.min(family_issued_at + self.refresh_family_lifetime - now)
            .max(1)
    }

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
            refresh_family_lifetime: policy::REFRESH_FAMILY_LIFETIME,
            token_rate_limit: 50,
            flow_burst: 30,
            registrations_per_hour: 10,
            credential_cache_size: 10_000,
            dev_redirect_uri: None,
            lockout: LockoutPolicy::default(),
            password_queue: policy::PASSWORD_QUEUE,
            audit_retention: policy::AUDIT_RETENTION,
            audit_tokens: true,
            key_rotation: None,
            feed_poll: std::time::Duration::from_millis(250),
            housekeeping_every: std::time::Duration::from_secs(60),
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
    store: Arc<dyn Store>,
    pub(crate) config: EngineConfig,
    master: MasterKey,
    /// Binds page values (CSRF tokens, flow cookies) to the browser; derived from the master
    /// key, so every node computes the same values.
    page_key: aws_lc_rs::hmac::Key,
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
    lockout: LockoutPolicy,
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
    /// Partners and clients whose every token stops working: inactive partners, disabled
    /// clients (kept current by the change feed).
    inactive_partners: ArcSwap<HashSet<String>>,
    disabled_clients: ArcSwap<HashSet<String>>,
    /// Token requests, per partner or client (`Caller::rate_key`); counted by every node
    /// together when they share the database (see `limits`).
    limiter: Option<Limiter>,
    /// Self-registration on the pages, per partner, and per requester at half that rate.
    registrations: Option<Limiter>,
    registrations_by_source: Option<Limiter>,
    /// Anonymous `/authorize` requests (each stores a pending request), per requester.
    flows: Option<Limiter>,
    /// The audit trail's queue.
    audit: crate::audit::Auditor,
    /// Lockout bucket → when this node last recorded a `lockout` event for it.
    lockouts_noted: Cache<[u8; 32], i64>,
    /// Highest change-feed sequence applied.
    seq: AtomicI64,
    /// When the change feed was last read without error (Unix seconds).
    synced_at: AtomicI64,
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
        // Each key lane needs an active key: create the first of each (ID-token keys came
        // with OpenID Connect, so an older database gets its first one here).
        let mut keys = KeySet::load(&store.list_keys().await?, &master, now)?;
        let missing = [
            (KeyUse::Access, keys.is_none()),
            (
                KeyUse::IdToken,
                keys.as_ref().is_none_or(|k| k.id_token_signer().is_none()),
            ),
        ];
        for (lane, absent) in missing {
            if absent {
                let key = generate_key_for(lane, lane.alg(config.signing_alg), &master, now)?;
                store.rotate_keys(&key, now, &[]).await?;
                tracing::info!(kid = %key.kid, alg = key.alg.as_str(), purpose = lane.as_str(), "created a signing key");
                keys = KeySet::load(&store.list_keys().await?, &master, now)?;
            }
        }
        let keys = keys.ok_or_else(|| StartError::Config("no usable signing key".into()))?;
        let revoked = DashMap::new();
        for (id, until) in store.active_revocations(now).await? {
            revoked.insert(id, until);
        }
        let shared = store.shared();
        let limiter = NonZeroU32::new(config.token_rate_limit).map(|n| {
            Limiter::new(
                "token",
                Lane::Callers,
                Unleased::CountAlone,
                Quota::per_second(n),
                shared,
            )
        });
        let (registrations, registrations_by_source) =
            NonZeroU32::new(config.registrations_per_hour)
                .map(|n| registration_limits(n, shared))
                .unzip();
        let cache = config.credential_cache_size.max(16);
        let scopes = store.list_scopes().await?;
        let inactive: HashSet<String> = store
            .partner_ids_with_status(PartnerStatus::Inactive)
            .await?
            .into_iter()
            .collect();
        let disabled: HashSet<String> = store.disabled_client_ids().await?.into_iter().collect();
        let passwords = Passwords::with_queue(config.password_queue);
        passwords.prepare().await;
        let page_key = aws_lc_rs::hmac::Key::new(
            aws_lc_rs::hmac::HMAC_SHA256,
            &master.derive(b"tessera page binding v1")[..],
        );
        Ok(Engine {
            audit: crate::audit::Auditor::start(Arc::clone(&store)),
            lockouts_noted: Cache::new(10_000),
            store,
            page_key,
            master,
            keys: ArcSwap::from_pointee(keys),
            passwords,
            keyer: CacheKeyer::new(),
            credentials: Cache::new(cache),
            checking: DashMap::new(),
            partners: Cache::new(cache),
            partner_tokens: Cache::new(cache),
            clients: Cache::new(cache),
            users: Cache::new(cache),
            lockout: config.lockout,
            scopes: ArcSwap::from_pointee(scopes),
            accounts: Cache::new(cache * 4),
            verified: Cache::new(VERIFIED_TOKEN_CACHE),
            revoked,
            inactive_partners: ArcSwap::from_pointee(inactive),
            disabled_clients: ArcSwap::from_pointee(disabled),
            limiter,
            // `flow_burst` at once, then one every 2 seconds per requester.
            flows: NonZeroU32::new(config.flow_burst).map(|burst| {
                let quota = Quota::every(std::time::Duration::from_secs(2), burst);
                Limiter::new(
                    "flows",
                    Lane::Requesters,
                    Unleased::CountAlone,
                    quota,
                    shared,
                )
            }),
            registrations,
            registrations_by_source,
            seq: AtomicI64::new(seq),
            synced_at: AtomicI64::new(now),
            epoch: AtomicU64::new(0),
            config,
        })
    }

    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Record a security event in the audit trail (queued; see [`crate::audit`]).
    pub fn audit(&self, event: crate::audit::AuditEvent) {
        self.audit.record(event);
    }

    /// Record a `token.issued` event (queued, typed; see [`crate::audit::TokenIssued`]).
    pub fn audit_issued(&self, event: crate::audit::TokenIssued) {
        self.audit.issued(event);
    }

    /// Wait until every audit event recorded so far is stored.
    pub async fn flush_audit(&self) {
        self.audit.flush().await;
    }

    /// Refresh tokens and revocations: nothing of theirs is cached, so grants write and read
    /// them here directly.
    pub(crate) fn tokens(&self) -> &dyn TokenStore {
        &*self.store
    }

    /// Pending authorization requests, sessions, grants and codes (uncached).
    pub(crate) fn flows(&self) -> &dyn AuthorizationStore {
        &*self.store
    }

    /// Whether the database answers (readiness).
    pub async fn ping(&self) -> StoreResult<()> {
        self.store.ping().await
    }

    /// The database pool's use now, for metrics.
    pub fn pool_use(&self) -> crate::store::PoolUse {
        self.store.pool_use()
    }

    pub fn passwords(&self) -> &Passwords {
        &self.passwords
    }

    /// The registered scope names.
    pub fn scopes(&self) -> Arc<Vec<String>> {
        self.scopes.load_full()
    }

    /// A keyed MAC of `value` for `purpose`, base64url: what the pages use to bind a CSRF token
    /// to the session (or the browser) and a pending request to the browser that began it.
    pub fn page_mac(&self, purpose: &str, value: &str) -> String {
        use base64::Engine as _;
        let mut ctx = aws_lc_rs::hmac::Context::with_key(&self.page_key);
        ctx.update(&(purpose.len() as u64).to_be_bytes());
        ctx.update(purpose.as_bytes());
        ctx.update(value.as_bytes());
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(ctx.sign().as_ref())
    }

    /// The published keys as a JWKS document.
    pub fn jwks(&self) -> serde_json::Value {
        self.keys.load().jwks().clone()
    }

    /// Count one self-registration (a valid one: the engine checks the form first) against
    /// its requester's budget and then its partner's (`registrations_per_hour`, at most 5 back
    /// to back; half of that and at most 2 for a requester). A requester over its own budget
    /// spends none of the partner's.
    pub(crate) async fn check_registration_rate(
        &self,
        partner_id: &str,
        source: &str,
    ) -> Result<(), EngineError> {
        let (Some(per_partner), Some(per_source)) =
            (&self.registrations, &self.registrations_by_source)
        else {
            return Ok(());
        };
        per_source
            .charge(&self.store, &format!("source:{source}"))
            .await?;
        per_partner
            .charge(&self.store, &format!("partner:{partner_id}"))
            .await
    }

    /// Count one `/authorize` request (it stores a pending request) against its requester's
    /// budget: `flow_burst` back to back, then one every 2 seconds.
    pub async fn check_flow_rate(&self, source: &str) -> Result<(), EngineError> {
        match &self.flows {
            Some(flows) => flows.charge(&self.store, source).await,
            None => Ok(()),
        }
    }

    /// Count one token request against `key`'s budget (`token_rate_limit` a second, as many
    /// at once). Keys are partner ids and client ids: bounded by the registry, not by callers.
    pub async fn check_rate(&self, key: &str) -> Result<(), EngineError> {
        match &self.limiter {
            Some(limiter) => limiter.charge(&self.store, key).await,
            None => Ok(()),
        }
    }
}

/// What [`Engine::gauges`] reads: the state a scrape reports, cheaper to read then than to
/// track on every request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gauges {
    /// Password checks admitted now (running or waiting), and how many may be.
    pub password_queue: usize,
    pub password_queue_capacity: usize,
    /// The last change-feed entry applied, and seconds since the feed was last read.
    pub feed_position: i64,
    pub feed_lag_secs: i64,
    /// Entries in the credential, verified-token and record caches.
    pub credential_cache: u64,
    pub token_cache: u64,
    pub record_cache: u64,
    /// Revoked token ids and sessions held in memory.
    pub revoked: usize,
}

impl Engine {
    /// The engine's state for a metrics scrape at `now`.
    pub fn gauges(&self, now: i64) -> Gauges {
        Gauges {
            password_queue: self.passwords.queued(),
            password_queue_capacity: self.passwords.capacity(),
            feed_position: self.seq.load(Ordering::Acquire),
            feed_lag_secs: (now - self.synced_at.load(Ordering::Acquire)).max(0),
            credential_cache: self.credentials.len() as u64,
            token_cache: self.verified.len() as u64,
            record_cache: (self.partners.len()
                + self.partner_tokens.len()
                + self.clients.len()
                + self.users.len()
                + self.accounts.len()) as u64,
            revoked: self.revoked.len(),
        }
    }
}
