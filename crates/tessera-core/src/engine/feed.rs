//! The change feed: apply what other nodes and the CLI committed, and the periodic housekeeping.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Engine;
use crate::error::EngineError;
use crate::janitor::JANITOR_BUDGET;
use crate::keys::KeySet;
use crate::model::{Change, PartnerStatus};
use crate::store::Purge;

impl Engine {
    /// Apply every change committed since the last call. Run every 250 ms by
    /// [`Engine::spawn_sync`]; tests call it directly.
    pub async fn sync(&self, now: i64) -> Result<usize, EngineError> {
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
                self.synced_at.store(now, Ordering::Release);
                crate::telemetry::feed_applied(applied);
                return Ok(applied);
            }
        }
    }

    async fn apply(&self, change: Change, now: i64) -> Result<(), EngineError> {
        tracing::debug!(?change, "applying change");
        match change {
            Change::Partner(id) => {
                self.epoch.fetch_add(1, Ordering::AcqRel);
                self.partners.remove(&id);
                let inactive = self
                    .store
                    .partner_by_id(&id)
                    .await?
                    .is_some_and(|p| p.status == PartnerStatus::Inactive);
                self.set_partner_inactive(&id, inactive);
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
                let disabled = self
                    .store
                    .client_by_id(&id)
                    .await?
                    .is_some_and(|c| c.disabled);
                self.set_client_disabled(&id, disabled);
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

    async fn reload_keys(&self, now: i64) -> Result<(), EngineError> {
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

    /// Forget revocations of tokens that have expired anyway, rate-limit state of idle keys,
    /// drained lockout buckets and old change-feed entries.
    pub async fn housekeeping(&self, now: i64) {
        self.revoked.retain(|_, until| *until > now);
        if let Some(l) = &self.limiter {
            l.retain_recent();
        }
        self.flows.retain_recent();
        self.registrations.retain_recent();
        if let Err(e) = self.store.prune_attempts(now, &self.lockout).await {
            tracing::warn!(error = %e, "could not prune the lockout buckets");
        }
        if let Err(e) = self.store.prune_changes(now - 86_400).await {
            tracing::warn!(error = %e, "could not prune the change feed");
        }
        self.purge(now, JANITOR_BUDGET).await;
    }

    /// The janitor: delete what can never be used again (see [`crate::janitor`]); stops after
    /// `budget`. Returns the rows deleted of each kind.
    pub async fn purge(&self, now: i64, budget: Duration) -> Vec<(Purge, u64)> {
        let deleted = crate::janitor::run(
            self.store.as_ref(),
            now,
            self.config.refresh_reuse_grace,
            self.config.audit_retention,
            budget,
        )
        .await;
        for (what, rows) in &deleted {
            if *rows > 0 {
                crate::telemetry::janitor_deleted(what.as_str(), *rows);
                tracing::info!(what = what.as_str(), rows, "janitor deleted");
            }
        }
        deleted
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
                    engine.housekeeping(now).await;
                }
            }
        })
    }
}
