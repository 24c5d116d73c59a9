//! The storage contract: traits shaped as OAuth operations, implemented once per database in
//! `tessera-store`. The traits live here, beside the grants that call them, so that the engine
//! depends on no database driver; the contracts in the doc comments are what the store
//! conformance suite checks on every backend.
//!
//! Every method that changes something other nodes cache (partners, clients, scopes, keys,
//! revocations) appends the matching [`Change`] to the change feed **in the same transaction**,
//! so that a node that reads the feed never misses a change that was committed.

use async_trait::async_trait;

use crate::keys::StoredKey;
use crate::lockout::LockoutPolicy;
use crate::model::{
    Account, AdminToken, AuthorizationCode, AuthorizationRequest, Change, Client, Grant,
    IdempotentRecord, Partner, PartnerStatus, RefreshFamily, RefreshToken, Session, User,
};
use crate::secret::SecretDigest;

mod admin;
mod budgets;

pub use admin::{AdminStore, AuditStore, GrantsOf, InventoryStore, UserFilter};
pub use budgets::BudgetStore;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the string names the field (`email`, `username`, …).
    #[error("{0} is already taken")]
    Conflict(&'static str),
    /// A referenced record does not exist; the string names it (`partner`, `account`, …).
    #[error("unknown {0}")]
    NotFound(&'static str),
    /// The write was refused because a parent it rests on is revoked (or gone): the string names
    /// it (`grant` or `family`). Nothing was written.
    #[error("the {0} is revoked")]
    Revoked(&'static str),
    /// The database could not be reached or did not answer in time.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error("storage error: {0}")]
    Other(String),
}

/// The audit events of an administrative change, for the store write that makes the change:
/// they are appended to the audit trail **in the same transaction**, so the change and its
/// record commit together or not at all (a write that changes nothing, such as revoking what
/// is already revoked, records nothing). Empty for writes no operator made (sign-up, the
/// engine's key schedule, a user's own revocation), which the engine audits its own way.
pub type Audit<'a> = &'a [crate::audit::AuditEvent];

pub type StoreResult<T> = Result<T, StoreError>;

/// What [`TokenStore::rotate_refresh_token`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The presented token was active and is now rotated; the successor is stored. Carries the
    /// presented token's record as it was before rotation.
    Rotated(RefreshToken),
    /// A retry within `Successor::retry_grace` of a token whose successor was never used (its
    /// response was lost): that successor is revoked and the new one takes its place, so the
    /// family still has exactly one live head. Carries the presented token's record.
    Replaced(RefreshToken),
    /// The presented token was not active (already rotated, revoked, expired, or its family past
    /// its lifetime); nothing was written. Carries its record so that the caller can tell reuse
    /// from expiry.
    NotActive(RefreshToken),
    /// No such token.
    Unknown,
    /// The token belongs to another client; nothing was written.
    WrongClient,
}

/// Who may use a refresh token: a registered client uses its own; a partner (partner dialect)
/// uses any of its own or its clients'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenOwner {
    Client(String),
    Partner(String),
}

impl TokenOwner {
    pub fn owns(&self, token: &RefreshToken) -> bool {
        match self {
            TokenOwner::Client(id) => token.client_id == *id,
            TokenOwner::Partner(id) => token.partner_id == *id,
        }
    }
}

/// What [`AuthorizationStore::take_authorization_code`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodeTaking {
    /// First use: the code is now spent. Expiry and binding are for the caller to check.
    Taken(AuthorizationCode),
    /// Already spent before this call (by the client it was issued to).
    Reused(AuthorizationCode),
    /// Issued to another client: nothing was spent, so a client cannot burn (or, by a reuse,
    /// revoke) another client's code.
    OtherClient,
    Unknown,
}

/// The new token of a rotation: everything else is copied from the presented one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Successor {
    pub digest: SecretDigest,
    /// Clamped by the store to the family's end (`family_issued_at + family_lifetime`).
    pub expires_at: i64,
    /// Seconds after a rotation during which a retry of the rotated token by its owner replaces
    /// the unused successor instead of being refused.
    pub retry_grace: i64,
    /// Seconds a family lives from `family_issued_at`; past it, rotation fails as expiry.
    pub family_lifetime: i64,
}

#[async_trait]
pub trait PartnerStore {
    /// Insert a partner. Fails with `Conflict("email")` or `Conflict("org_code")`.
    async fn insert_partner(&self, partner: &Partner, audit: Audit<'_>) -> StoreResult<()>;
    async fn partner_by_id(&self, id: &str) -> StoreResult<Option<Partner>>;
    /// Look up by lower-cased email.
    async fn partner_by_email(&self, email: &str) -> StoreResult<Option<Partner>>;
    /// Set the status; emits `Change::Partner`. `NotFound("partner")` when unknown.
    async fn set_partner_status(
        &self,
        id: &str,
        status: PartnerStatus,
        audit: Audit<'_>,
    ) -> StoreResult<()>;
    /// The ids of every partner with `status` (the engine keeps the inactive ones in memory).
    async fn partner_ids_with_status(&self, status: PartnerStatus) -> StoreResult<Vec<String>>;
    /// Replace the password hash; emits `Change::Partner`.
    async fn set_partner_password(
        &self,
        id: &str,
        hash: &crate::model::PasswordHash,
        audit: Audit<'_>,
    ) -> StoreResult<()>;
    /// Store a partner API token digest. `NotFound("partner")` when unknown.
    async fn insert_partner_token(
        &self,
        partner_id: &str,
        digest: &SecretDigest,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<()>;
    /// The partner owning an unrevoked API token.
    async fn partner_by_token(&self, digest: &SecretDigest) -> StoreResult<Option<String>>;
    /// Revoke one partner API token; the partner it belonged to when it was active. Emits
    /// `Change::PartnerToken`.
    async fn revoke_partner_token(
        &self,
        digest: &SecretDigest,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<Option<String>>;
    /// Revoke every active API token of a partner; how many. Emits `Change::PartnerToken`.
    async fn revoke_partner_tokens(
        &self,
        partner_id: &str,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<u64>;
}

#[async_trait]
pub trait AccountStore {
    /// Insert an account. `Conflict("external_id")` when the partner already has an account with
    /// that external id.
    async fn insert_account(&self, account: &Account) -> StoreResult<()>;
    async fn account_by_id(&self, id: &str) -> StoreResult<Option<Account>>;
    /// A page of the partner's accounts ordered by id, starting after `after`.
    async fn list_accounts(
        &self,
        partner_id: &str,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Account>>;
}

#[async_trait]
pub trait ClientStore {
    /// Insert a client. `NotFound("partner")` when its partner is unknown.
    async fn insert_client(&self, client: &Client, audit: Audit<'_>) -> StoreResult<()>;
    async fn client_by_id(&self, id: &str) -> StoreResult<Option<Client>>;
    /// Replace the client's secret; with `previous_until`, the old one still authenticates until
    /// then. Emits `Change::Client`; `NotFound("client")` when unknown.
    async fn rotate_client_secret(
        &self,
        id: &str,
        digest: &SecretDigest,
        previous_until: Option<i64>,
        audit: Audit<'_>,
    ) -> StoreResult<()>;
    /// Disable or enable a client. Emits `Change::Client`; `NotFound("client")` when unknown.
    async fn set_client_disabled(
        &self,
        id: &str,
        disabled: bool,
        audit: Audit<'_>,
    ) -> StoreResult<()>;
    /// The ids of every disabled client (the engine keeps them in memory).
    async fn disabled_client_ids(&self) -> StoreResult<Vec<String>>;
}

#[async_trait]
pub trait UserStore {
    /// Insert a user. `Conflict("username")` when the partner already has that username.
    async fn insert_user(&self, user: &User, audit: Audit<'_>) -> StoreResult<()>;
    /// A member who registered on the pages and the account made for them, in one transaction:
    /// on `Conflict("username")` no account is left either (concurrent registrations of one
    /// email, written apart, left accounts without a user).
    async fn insert_member(&self, account: &Account, user: &User) -> StoreResult<()>;
    async fn user_by_username(&self, partner_id: &str, username: &str)
    -> StoreResult<Option<User>>;
    async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>>;
    /// Replace a user's password hash and end the user's browser sessions (as
    /// [`AuthorizationStore::end_user_sessions`], in the same transaction); the user's id. Emits
    /// `Change::User`; `NotFound("user")` when unknown.
    async fn set_user_password(
        &self,
        partner_id: &str,
        username: &str,
        hash: &crate::model::PasswordHash,
        audit: Audit<'_>,
    ) -> StoreResult<String>;
    /// Sign-up of a `customer` user: if the partner has no user with `user.username`, insert
    /// `user`; if it has a customer with it, replace that user's password hash (and names and
    /// external id, when given), record `user.signed_up_by`, end its browser sessions (as a
    /// password reset does) and keep its id; if the username
    /// belongs to a user of another role, or to a customer another client signed up
    /// (`signed_up_by` set and different), change nothing and return that user. Atomic; emits
    /// `Change::User` when it writes.
    /// Returns the stored user and whether it existed before.
    async fn upsert_customer(&self, user: &User) -> StoreResult<(User, bool)>;
}

#[async_trait]
pub trait ScopeStore {
    /// Register scope names (an existing name keeps its description unless a new one is
    /// given); emits `Change::Scopes`.
    async fn add_scopes(
        &self,
        names: &[String],
        description: Option<&str>,
        audit: Audit<'_>,
    ) -> StoreResult<()>;
    /// Every scope with its human description, for consent pages.
    async fn scope_descriptions(&self) -> StoreResult<Vec<(String, Option<String>)>>;
    async fn list_scopes(&self) -> StoreResult<Vec<String>>;
}

#[async_trait]
pub trait KeyStore {
    async fn list_keys(&self) -> StoreResult<Vec<StoredKey>>;
    /// Insert `key` as the active key and retire every other unretired key at `now`, atomically;
    /// emits `Change::Keys`.
    async fn rotate_keys(&self, key: &StoredKey, now: i64, audit: Audit<'_>) -> StoreResult<()>;
    /// Add `key`, which activates later (`activates_at`), unless a key is already pending
    /// (activating after `now`, not revoked or retired): whether it was added. Atomic, so that
    /// of several nodes scheduling at once exactly one adds its key.
    async fn schedule_key(&self, key: &StoredKey, now: i64) -> StoreResult<bool>;
    /// Mark a key revoked at `now`; `NotFound` if no such key (or it is revoked already).
    /// With `replacement`, that key becomes its lane's active key (as [`KeyStore::rotate_keys`])
    /// in the same transaction, so a revoked active key is never left without a successor, and
    /// of two revocations racing for one key exactly one rotates.
    async fn revoke_key(
        &self,
        kid: &str,
        replacement: Option<&StoredKey>,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<()>;
}

/// # Revocation is a state of the parent
///
/// A refresh family ([`RefreshFamily`]) and a grant carry their revoked state, and every write
/// of a child checks that state **in the same transaction**, under a lock order that every
/// revocation also takes: grant, then family, then token.
///
/// - Starting a family under a grant ([`TokenStore::start_family`]) holds the grant (shared)
///   while it checks that it is active, and writes the family's row (which a revocation that
///   got there first has marked). A family of no grant (a token exchange's) has a fresh id that
///   nothing can have revoked: it gets a row only when something revokes it, and a family with
///   no row is live.
/// - A rotation ([`TokenStore::rotate_refresh_token`]) holds the family while it checks the
///   family's mark and writes the successor.
/// - A grant revocation marks the grant (exclusive), then holds and marks its families, then
///   revokes their tokens; a family revocation holds the family, marks it (creating its row
///   marked if there is none, so that a start racing with it is refused), then revokes its
///   tokens. A grant's mark is on its families too, so a rotation reads only the family's.
///
/// So a revocation that returns has won against every child write that had not committed (the
/// write sees the revoked parent and is refused), and sees every one that had (its successor is
/// revoked with the rest). On SQLite the writer's one transaction holds check and write; on
/// PostgreSQL "holding the family" is a transaction-scoped advisory lock named after it (no
/// write into the family's row on the hot path), taken before any of its tokens is touched, and
/// each statement after it reads what the previous holder committed (READ COMMITTED).
#[async_trait]
pub trait TokenStore: Send + Sync {
    /// Start `family` and store its first refresh token (`first`, whose `family_id` is
    /// `family.id`; `None` for a family whose access tokens come without a refresh token), in one
    /// transaction: `Revoked("grant")` when the family rests on a grant that is revoked or gone,
    /// `Revoked("family")` when a family of a grant was revoked before it started (a code
    /// presented twice at once: the other presentation revoked it first). Nothing is written
    /// then. A family of no grant must have a fresh id; only its first token is written.
    async fn start_family(
        &self,
        family: &RefreshFamily,
        first: Option<&RefreshToken>,
    ) -> StoreResult<()>;

    /// Store a new refresh token as the first of its family: [`TokenStore::start_family`] with
    /// the family the token names.
    async fn insert_refresh_token(&self, token: &RefreshToken) -> StoreResult<()> {
        self.start_family(&RefreshFamily::of(token), Some(token))
            .await
    }

    /// Atomically rotate `presented` into a successor: if and only if the presented token exists,
    /// belongs to `owner`, is neither rotated nor revoked, `expires_at > now`, its family is
    /// within `family_lifetime` and not revoked (nor, therefore, its grant), mark it rotated at
    /// `now`, remember its successor, and insert the
    /// successor (same family, client, subject, scope and grant, issued at `now`, with
    /// `successor`'s digest and expiry clamped to the family's end), in one transaction that
    /// holds the family. Of any number of concurrent calls with the same presented token (on
    /// any number of nodes), exactly one returns `Rotated`. A token of another owner is left
    /// untouched (`WrongClient`). A token whose family or grant is revoked is `NotActive` with
    /// `revoked_at` set.
    ///
    /// A token rotated at most `retry_grace` seconds ago whose successor is still unused (never
    /// rotated, not revoked) is a retry after a lost response: the successor is revoked and the
    /// new one inserted in its place (`Replaced`), by a compare-and-swap on the successor, so
    /// that the family keeps exactly one live head whatever the concurrency.
    async fn rotate_refresh_token(
        &self,
        presented: &SecretDigest,
        owner: &TokenOwner,
        successor: &Successor,
        now: i64,
    ) -> StoreResult<Rotation>;

    async fn refresh_token(&self, digest: &SecretDigest) -> StoreResult<Option<RefreshToken>>;

    /// Hold the family and mark it revoked at `now` (creating its row marked when it has none, so
    /// that a start racing with this is refused), then revoke every token of it, and record
    /// `Change::Revoked` for the family id (its `sid`) until `until`, in one transaction.
    /// Idempotent. Once it returns, no rotation of the family succeeds.
    async fn revoke_family(&self, family_id: &str, until: i64, now: i64) -> StoreResult<()>;

    /// Record that the access token `jti` is revoked until `until` (its `exp`); emits
    /// `Change::Revoked`. Idempotent.
    async fn revoke_jti(&self, jti: &str, until: i64) -> StoreResult<()>;

    /// Every revocation still in force at `now` as `(id, until)`.
    async fn active_revocations(&self, now: i64) -> StoreResult<Vec<(String, i64)>>;
}

/// The authorization-code flow: pending requests, browser sessions, consents and codes.
#[async_trait]
pub trait AuthorizationStore {
    async fn insert_authorization_request(&self, request: &AuthorizationRequest)
    -> StoreResult<()>;
    /// A pending request, if it exists and `expires_at > now`.
    async fn authorization_request(
        &self,
        id: &str,
        now: i64,
    ) -> StoreResult<Option<AuthorizationRequest>>;

    /// Delete a pending request; `true` only for the one caller that deleted it, so that a
    /// request is approved (or denied) once.
    async fn consume_authorization_request(&self, id: &str) -> StoreResult<bool>;
    /// Record that the user signed in on a pending request's own login form, in session `sid`
    /// (what `prompt=login` requires); `false` when the request is gone.
    async fn set_request_login(&self, id: &str, sid: &str) -> StoreResult<bool>;
    /// Store a session for its user, if `password` (the hash verified at sign-in) is still the
    /// user's, copying the user's session epoch in the same write (one snapshot): `false`, and
    /// nothing stored, when the password changed since (or the user is gone). A reset that
    /// commits after the copy moves the epoch on, so the session is dead at once.
    async fn insert_session(
        &self,
        session: &Session,
        password: &crate::model::PasswordHash,
    ) -> StoreResult<bool>;
    /// A session, if it exists, `expires_at > now` and it carries its user's current session
    /// epoch.
    async fn session(&self, digest: &SecretDigest, now: i64) -> StoreResult<Option<Session>>;
    /// End every browser session of `user_id`: move the user's session epoch on (so a session
    /// being created from an earlier sign-in is dead too) and delete the sessions; emits
    /// `Change::User`. How many sessions were deleted; `NotFound("user")` when unknown.
    async fn end_user_sessions(&self, user_id: &str, audit: Audit<'_>) -> StoreResult<u64>;
    async fn delete_session(&self, digest: &SecretDigest) -> StoreResult<()>;

    /// Record that `user_id` lets `client_id` use `scope`: the active grant's scope becomes the
    /// union of the old and the new; a revoked or missing grant is replaced by a new one.
    /// Returns the active grant.
    async fn upsert_grant(
        &self,
        user_id: &str,
        client_id: &str,
        scope: &str,
        now: i64,
    ) -> StoreResult<Grant>;
    async fn active_grant(&self, user_id: &str, client_id: &str) -> StoreResult<Option<Grant>>;
    async fn grant_by_id(&self, id: &str) -> StoreResult<Option<Grant>>;
    /// The user's active grants, oldest first.
    async fn list_grants(&self, user_id: &str) -> StoreResult<Vec<Grant>>;
    /// Revoke the active grant of `user_id` for `client_id` and, in the same transaction, every
    /// family started under it (found through the families, not through the tokens that exist
    /// now) and their refresh tokens, recording `Change::Revoked` for each family (its `sid`)
    /// until `until`. Returns whether a grant was revoked. Once it returns, no family starts under
    /// the grant and no rotation of its families succeeds (see [`TokenStore`]).
    async fn revoke_grant(
        &self,
        user_id: &str,
        client_id: &str,
        until: i64,
        now: i64,
        audit: Audit<'_>,
    ) -> StoreResult<bool>;

    async fn insert_authorization_code(&self, code: &AuthorizationCode) -> StoreResult<()>;
    /// Spend a code presented by `client_id`: atomically mark it used at `now` if it was unused
    /// and issued to that client. Of concurrent calls with one code exactly one gets `Taken`.
    async fn take_authorization_code(
        &self,
        digest: &SecretDigest,
        client_id: &str,
        now: i64,
    ) -> StoreResult<CodeTaking>;
}

#[async_trait]
pub trait ChangeFeed {
    /// The sequence number of the newest change (0 when none).
    async fn latest_change(&self) -> StoreResult<i64>;
    /// Changes with a sequence number above `after`, oldest first, at most `limit`.
    async fn changes_since(&self, after: i64, limit: u32) -> StoreResult<Vec<(i64, Change)>>;
    /// Delete changes older than `before` (unix seconds). A node away for longer than that may
    /// miss changes; the engine notices (it has not read the feed for longer than the
    /// retention) and reloads everything it caches instead.
    async fn prune_changes(&self, before: i64) -> StoreResult<u64>;
    /// Raised soon after any process commits a change, where the database can say so
    /// (PostgreSQL `LISTEN/NOTIFY`), so that nodes apply changes at once instead of at their
    /// next poll; also raised after a lost notification connection comes back (notifications
    /// may have been missed). `None`: poll only (SQLite). Polling stays on either way: the feed
    /// is the source of truth and a notification only says "read it now".
    fn change_signal(&self) -> Option<std::sync::Arc<tokio::sync::Notify>> {
        None
    }
}

/// What the janitor deletes, a batch at a time: rows that can never be used again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purge {
    /// Pending `/authorize` requests past their expiry.
    PendingRequests,
    /// Authorization codes past their expiry by more than an access token's longest life (their
    /// family ids let a withdrawn grant reach the access tokens they gave).
    Codes,
    /// Browser sessions past their expiry.
    Sessions,
    /// Refresh tokens past their expiry, or revoked more than the reuse grace ago: presenting
    /// one is refused either way. Rotated tokens that have not expired stay, as the evidence
    /// that makes a replayed one revoke its family.
    RefreshTokens,
    /// Revocation entries past the lifetime of the tokens they cover.
    Revocations,
    /// Refresh families begun before `now - grace` (`grace`: the family lifetime plus
    /// [`crate::policy::CLOCK_MARGIN`]): every token of such a family, access tokens included
    /// (they never outlive their family's end), has expired, so nothing can revoke or rotate it:
    /// a rotation refuses its tokens as past the family's lifetime, or as revoked.
    Families,
    /// Audit events older than the retention (passed as `grace` to [`Janitor::purge`]).
    AuditEvents,
}

impl Purge {
    pub const ALL: [Purge; 6] = [
        Purge::PendingRequests,
        Purge::Codes,
        Purge::Sessions,
        Purge::RefreshTokens,
        Purge::Revocations,
        Purge::Families,
    ];

    /// The times a purge of this kind at `now` compares with (`grace`: the refresh reuse grace;
    /// for [`Purge::AuditEvents`] the audit retention, for [`Purge::Families`] the family
    /// lifetime plus the clock margin; see [`crate::janitor::Retention`]): rows expired (or
    /// recorded) before the first go; refresh tokens revoked before the second go too. Every
    /// backend binds these.
    pub fn cutoffs(self, now: i64, grace: i64) -> (i64, i64) {
        let before = match self {
            // Codes outlive their expiry by an access token's longest life.
            Purge::Codes => now - crate::policy::MAX_ACCESS_TOKEN_TTL,
            Purge::AuditEvents | Purge::Families => now - grace,
            _ => now,
        };
        (before, now - grace)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Purge::PendingRequests => "pending requests",
            Purge::Codes => "authorization codes",
            Purge::Sessions => "sessions",
            Purge::RefreshTokens => "refresh tokens",
            Purge::Revocations => "revocations",
            Purge::Families => "refresh families",
            Purge::AuditEvents => "audit events",
        }
    }
}

/// Retention: deleting what can never be used again, in small batches.
#[async_trait]
pub trait Janitor {
    /// Delete at most `batch` rows of `what` (of each kind of refresh token) that can never be
    /// used again at `now` (`grace`: the refresh reuse grace; for [`Purge::AuditEvents`], the
    /// retention in seconds), in one short transaction, each
    /// kind found through its own index; how many rows went. On a shared database, a batch another node is deleting
    /// at the same moment is skipped (0), so nodes take turns.
    async fn purge(&self, what: Purge, now: i64, grace: i64, batch: u32) -> StoreResult<u64>;
}

/// The lockout's buckets (see [`crate::lockout`]), shared by every node of the database.
#[async_trait]
pub trait AttemptStore {
    /// Reserve one password check for `key` at `now` with [`crate::lockout::reserve`], read and
    /// written under one lock, so that concurrent reservations (from any node) never exceed the
    /// allowance. `Ok(Err(seconds))` when refused (nothing is written). A database that nodes
    /// share ([`BudgetStore::shared`]) counts in its own clock and ignores `now`, as it does in
    /// [`AttemptStore::prune_attempts`].
    async fn reserve_attempt(
        &self,
        key: &[u8; 32],
        now: i64,
        policy: &LockoutPolicy,
    ) -> StoreResult<Result<(), u64>>;
    /// A check of `key` succeeded: empty its bucket.
    async fn clear_attempts(&self, key: &[u8; 32]) -> StoreResult<()>;
    /// Delete drained buckets, then the oldest beyond `policy.max_entries`; returns how many.
    async fn prune_attempts(&self, now: i64, policy: &LockoutPolicy) -> StoreResult<u64>;
}

#[async_trait]
pub trait Store:
    PartnerStore
    + AccountStore
    + ClientStore
    + UserStore
    + ScopeStore
    + KeyStore
    + TokenStore
    + AuthorizationStore
    + AttemptStore
    + BudgetStore
    + Janitor
    + ChangeFeed
    + InventoryStore
    + AuditStore
    + AdminStore
    + Send
    + Sync
{
    /// A cheap round trip, for `/readyz`.
    async fn ping(&self) -> StoreResult<()>;

    /// The connection pool's use now, for metrics.
    fn pool_use(&self) -> PoolUse;
}

/// A connection pool's use at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolUse {
    /// Connections open, of which idle, and the most there may be.
    pub open: u32,
    pub idle: u32,
    pub max: u32,
}
