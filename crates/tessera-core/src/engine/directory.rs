//! Cached look-ups of partners, clients, users and accounts, and the writes that keep those
//! caches coherent on this node before the change feed reaches it. Every read of these records
//! goes through here.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::Engine;
use crate::error::EngineError;
use crate::model::{Account, Client, Partner, User};
use crate::store::StoreResult;

impl Engine {
    pub(crate) async fn partner(&self, id: &str) -> Result<Option<Arc<Partner>>, EngineError> {
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

    pub(crate) async fn account(&self, id: &str) -> Result<Option<Arc<Account>>, EngineError> {
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

    /// Store a new account and cache it (accounts never change owner, so no invalidation is
    /// ever needed).
    pub(crate) async fn insert_account(&self, account: Account) -> StoreResult<Arc<Account>> {
        self.store.insert_account(&account).await?;
        let account = Arc::new(account);
        self.accounts
            .insert(account.id.clone(), Arc::clone(&account));
        Ok(account)
    }

    /// A page of a partner's accounts, oldest first (uncached: listing is rare).
    pub(crate) async fn accounts_page(
        &self,
        partner_id: &str,
        cursor: Option<&str>,
        limit: u32,
    ) -> StoreResult<Vec<Account>> {
        self.store.list_accounts(partner_id, cursor, limit).await
    }

    pub async fn client(&self, id: &str) -> Result<Option<Arc<Client>>, EngineError> {
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

    pub(crate) async fn user(
        &self,
        partner_id: &str,
        username: &str,
    ) -> Result<Option<Arc<User>>, EngineError> {
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

    /// A user by id (uncached: sessions and `me` read it once per request).
    pub(crate) async fn user_by_id(&self, id: &str) -> StoreResult<Option<User>> {
        self.store.user_by_id(id).await
    }

    /// Store a member who registered and the account made for them, together; the account is
    /// cached and a cached absence of the username forgotten.
    pub(crate) async fn insert_member(&self, account: Account, user: &User) -> StoreResult<()> {
        self.store.insert_member(&account, user).await?;
        self.forget_user(&user.partner_id, &user.username);
        self.accounts.insert(account.id.clone(), Arc::new(account));
        Ok(())
    }

    /// Create or refresh a customer (sign-up); the cached user and verified passwords of that
    /// username are forgotten, since the generated password changes.
    pub(crate) async fn upsert_customer(&self, user: &User) -> StoreResult<(User, bool)> {
        let result = self.store.upsert_customer(user).await;
        self.forget_user(&user.partner_id, &user.username);
        result
    }

    /// Withdraw every grant the customer `user_id` gave a client other than `owner`, with all it
    /// issued (as a user's withdrawal does): a customer another client signed in before `owner`
    /// claimed it (one an operator made, or one from before ownership was recorded) keeps no
    /// way in through those clients. How many grants were withdrawn.
    pub(crate) async fn withdraw_other_clients(
        &self,
        user_id: &str,
        owner: &str,
        now: i64,
    ) -> StoreResult<usize> {
        let mut withdrawn = 0;
        for grant in self.store.list_grants(user_id).await? {
            if grant.client_id != owner
                && self
                    .store
                    .revoke_grant(
                        user_id,
                        &grant.client_id,
                        crate::policy::family_revocation_until(now),
                        now,
                        &[],
                    )
                    .await?
            {
                withdrawn += 1;
            }
        }
        Ok(withdrawn)
    }

    /// Each registered scope with its description, for the consent page.
    pub(crate) async fn scope_descriptions(&self) -> StoreResult<Vec<(String, Option<String>)>> {
        self.store.scope_descriptions().await
    }
}
