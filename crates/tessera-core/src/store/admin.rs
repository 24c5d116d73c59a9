//! What the operator's side of Tessera needs from a database: listings (`InventoryStore`), the
//! audit trail (`AuditStore`), and the admin API's tokens and `Idempotency-Key`s (`AdminStore`).

use super::*;

/// Which users to list; every field that is set must match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UserFilter {
    pub partner_id: Option<String>,
    pub account_id: Option<String>,
    pub role: Option<crate::model::Role>,
    /// Compared after normalisation (lower case), exactly.
    pub username: Option<String>,
}

/// Whose grants to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GrantsOf {
    User(String),
    Client(String),
}

/// Listings for operators (the CLI, the admin API): ordered by id, a page of at most `limit`
/// records after the id `after` (keyset pagination: a page does not shift when rows are added
/// before it).
#[async_trait]
pub trait InventoryStore {
    async fn list_partners(&self, after: Option<&str>, limit: u32) -> StoreResult<Vec<Partner>>;
    /// Clients of one partner, or of all.
    async fn list_clients(
        &self,
        partner_id: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Client>>;
    async fn list_users(
        &self,
        filter: &UserFilter,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<User>>;
    /// Grants of a user or a client, withdrawn ones included (`revoked_at` set).
    async fn list_grants_of(
        &self,
        of: &GrantsOf,
        after: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Grant>>;
}

/// The audit trail (see [`crate::audit`]).
#[async_trait]
pub trait AuditStore {
    /// Append `events` (each a row) and `issued` (stored in compact batches) in one
    /// transaction. Ids follow the order of `events`, then of `issued`; every id is unique and
    /// larger than any before it.
    async fn append_audit(
        &self,
        events: &[crate::audit::AuditEvent],
        issued: &[crate::audit::TokenIssued],
    ) -> StoreResult<()>;
    /// The events matching `query`, newest first.
    async fn query_audit(
        &self,
        query: &crate::audit::AuditQuery,
    ) -> StoreResult<Vec<crate::audit::AuditEvent>>;
}

/// Everything the engine needs from a database.
/// Admin API tokens and the `Idempotency-Key`s of their requests.
#[async_trait]
pub trait AdminStore {
    async fn insert_admin_token(&self, token: &AdminToken, audit: Audit<'_>) -> StoreResult<()>;
    /// The token with this digest, revoked or not.
    async fn admin_token(&self, digest: &SecretDigest) -> StoreResult<Option<AdminToken>>;
    async fn list_admin_tokens(&self) -> StoreResult<Vec<AdminToken>>;
    /// `false` when there is no such unrevoked token.
    async fn revoke_admin_token(&self, id: &str, now: i64, audit: Audit<'_>) -> StoreResult<bool>;
    /// Reserve `key` for `token_id`'s request `request_id` with this fingerprint: `None` when
    /// it was free (the caller now runs the request), else what is held (in flight, or its
    /// answer). Reservations older than `older_than` are forgotten first. Any write whose
    /// audit events include an `admin.change` of `request_id` marks the reservation
    /// `carried_out` in its own transaction.
    async fn reserve_idempotency_key(
        &self,
        token_id: &str,
        key: &str,
        request_id: Option<&str>,
        fingerprint: &SecretDigest,
        now: i64,
        older_than: i64,
    ) -> StoreResult<Option<IdempotentRecord>>;
    /// Keep the answer of a reserved key: bytes the caller made (and sealed).
    async fn finish_idempotency_key(
        &self,
        token_id: &str,
        key: &str,
        answer: &[u8],
    ) -> StoreResult<()>;
    /// Free a reserved key whose request failed, so that it may be sent again, unless a change
    /// of its request committed (or is committing: the release waits for it). `true` when freed.
    async fn release_idempotency_key(&self, token_id: &str, key: &str) -> StoreResult<bool>;
}
