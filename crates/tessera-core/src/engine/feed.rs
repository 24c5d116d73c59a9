//! The change feed: apply what other nodes and the CLI committed, and the periodic housekeeping.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use super::Engine;
use crate::error::EngineError;
use crate::janitor::JANITOR_BUDGET;
use crate::keys::{KeySet, KeyState, KeyUse, StoredKey};
use crate::model::{Change, PartnerStatus};
use crate::policy::{FEED_GAP_MARGIN, FEED_RETENTION, KEY_ANNOUNCE_SECS};

/// Rate budgets deleted per statement by housekeeping.
const BUDGETS_PRUNED: u32 = 10_000;
use crate::store::Purge;

impl Engine {
    /// Apply every change committed since the last call. Run by [`Engine::spawn_sync`] when
    /// the database announces a change and every 250 ms; tests call it directly. A node that
    /// has not read the feed for longer than its retention (it was suspended, or cut off from
    /// the database) may have missed changes that were pruned meanwhile: it reloads everything
    /// it caches instead.
    pub async fn sync(&self, now: i64) -> Result<usize, EngineError> {
        if now - self.synced_at.load(Ordering::Acquire) >= FEED_RETENTION - FEED_GAP_MARGIN {
            self.reload(now).await?;
        }
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

    /// Forget every cached record and read again what is kept whole in memory (inactive
    /// partners, disabled clients, scopes, keys, revocations), from the feed's current end.
    async fn reload(&self, now: i64) -> Result<(), EngineError> {
        tracing::warn!(
            away_secs = now - self.synced_at.load(Ordering::Acquire),
            "the change feed was not read for longer than its retention; reloading all caches"
        );
        let seq = self.store.latest_change().await?;
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.credentials.clear();
        self.partners.clear();
        self.partner_tokens.clear();
        self.clients.clear();
        self.users.clear();
        self.accounts.clear();
        let inactive = self
            .store
            .partner_ids_with_status(PartnerStatus::Inactive)
            .await?;
        self.inactive_partners
            .store(Arc::new(inactive.into_iter().collect()));
        let disabled = self.store.disabled_client_ids().await?;
        self.disabled_clients
            .store(Arc::new(disabled.into_iter().collect()));
        self.scopes.store(Arc::new(self.store.list_scopes().await?));
        self.reload_keys(now).await?;
        for (id, until) in self.store.active_revocations(now).await? {
            self.revoked.insert(id, until);
        }
        self.seq.store(seq, Ordering::Release);
        self.synced_at.store(now, Ordering::Release);
        crate::telemetry::feed_reloaded();
        Ok(())
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
            Change::Keys => {
                self.reload_keys(now).await?;
                // A revoked key's tokens must fail now, even those verified before.
                self.verified.clear();
            }
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
                let before = self.keys.load();
                if before.signer().kid != keys.signer().kid || before.jwks() != keys.jwks() {
                    tracing::info!(active_kid = %keys.signer().kid, "signing keys changed");
                }
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
        let limits = [
            &self.limiter,
            &self.flows,
            &self.registrations,
            &self.registrations_by_source,
        ];
        for limit in limits.into_iter().flatten() {
            limit.retain_recent();
        }
        if self.store.shared() {
            self.prune_budgets().await;
        }
        if let Err(e) = self.store.prune_attempts(now, &self.lockout).await {
            tracing::warn!(error = %e, "could not prune the lockout buckets");
        }
        if let Err(e) = self.store.prune_changes(now - FEED_RETENTION).await {
            tracing::warn!(error = %e, "could not prune the change feed");
        }
        if let Err(e) = self.rotate_keys_on_schedule(now).await {
            tracing::warn!(error = %e, "could not schedule the next signing key");
        }
        // A pending key whose time has come starts signing, and a stopped key past its
        // publication leaves the JWKS, within a minute on every node; otherwise nothing to read.
        if self.keys.load().stale_at(now)
            && let Err(e) = self.reload_keys(now).await
        {
            tracing::warn!(error = %e, "could not reload the signing keys");
        }
        self.purge(now, JANITOR_BUDGET).await;
    }

    /// With `key_rotation` set, for each key lane (access tokens, ID tokens): once the lane's
    /// active key is within [`KEY_ANNOUNCE_SECS`] of its period's end and no key of the lane is
    /// pending, add the next key, published now and signing from the period's end (or a day
    /// from now, whichever is later). On a shared database the nodes race to add it and exactly
    /// one does (`schedule_key` is atomic).
    pub async fn rotate_keys_on_schedule(&self, now: i64) -> Result<bool, EngineError> {
        let Some(period) = self.config.key_rotation else {
            return Ok(false);
        };
        let keys = self.store.list_keys().await?;
        let mut added = false;
        for lane in KeyUse::ALL {
            added |= self.schedule_lane(lane, &keys, period, now).await?;
        }
        Ok(added)
    }

    async fn schedule_lane(
        &self,
        lane: KeyUse,
        all: &[StoredKey],
        period: i64,
        now: i64,
    ) -> Result<bool, EngineError> {
        let mut lane_keys = all.iter().filter(|k| k.purpose == lane);
        if lane_keys
            .clone()
            .any(|k| k.state(all, now) == KeyState::Pending)
        {
            return Ok(false);
        }
        let Some(active) = lane_keys.find(|k| k.state(all, now) == KeyState::Active) else {
            return Ok(false);
        };
        let activates_at = (active.activation() + period).max(now + KEY_ANNOUNCE_SECS);
        if activates_at - KEY_ANNOUNCE_SECS > now {
            return Ok(false);
        }
        let alg = lane.alg(self.config.signing_alg);
        let mut key = crate::keys::generate_key_for(lane, alg, &self.master, now).map_err(|e| {
            tracing::error!(error = %e, "could not generate the next signing key");
            EngineError::Internal
        })?;
        key.activates_at = Some(activates_at);
        let added = self.store.schedule_key(&key, now).await?;
        if added {
            // This node publishes it now; the others learn of it through the change feed.
            self.reload_keys(now).await?;
            tracing::info!(kid = %key.kid, purpose = lane.as_str(), activates_at, "next signing key published; it signs from activates_at");
            self.audit(
                crate::audit::AuditEvent::new(crate::audit::Event::AdminChange, now)
                    .detail("change", "keys.schedule")
                    .detail("by", "scheduler")
                    .detail("kid", key.kid.as_str())
                    .detail("purpose", lane.as_str())
                    .detail("activates_at", activates_at),
            );
        }
        Ok(added)
    }

    /// Delete rate budgets that are whole again, [`BUDGETS_PRUNED`] at a time, at most ten
    /// batches a round: a flood of requesters leaves many rows, and one unbounded `DELETE`
    /// could outlive the database timeout and never finish.
    async fn prune_budgets(&self) {
        for _ in 0..10 {
            match self.store.prune_budgets(BUDGETS_PRUNED).await {
                Ok(n) if n == u64::from(BUDGETS_PRUNED) => continue,
                Ok(_) => return,
                Err(e) => {
                    tracing::warn!(error = %e, "could not prune the rate budgets");
                    return;
                }
            }
        }
    }

    /// The janitor: delete what can never be used again (see [`crate::janitor`]); stops after
    /// `budget`. Returns the rows deleted of each kind.
    pub async fn purge(&self, now: i64, budget: Duration) -> Vec<(Purge, u64)> {
        let deleted = crate::janitor::run(
            self.store.as_ref(),
            now,
            crate::janitor::Retention {
                refresh_reuse_grace: self.config.refresh_reuse_grace,
                family_lifetime: self.config.refresh_family_lifetime,
                audit: self.config.audit_retention,
            },
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

    /// Run [`Engine::sync`] whenever the database announces a change and at least every
    /// `feed_poll` (250 ms), and, in a task of its own, housekeeping every
    /// `housekeeping_every` (a minute), until the returned task is aborted.
    pub fn spawn_sync(self: &Arc<Self>) -> tokio::task::JoinHandle<()> {
        // Housekeeping runs apart: a janitor working through its 20 s budget, or a store call
        // stuck behind a lock, must not hold back another node's revocation, which the loop
        // below applies within `feed_poll`. Aborting the sync task aborts it too.
        let housekeeper = AbortOnDrop(tokio::spawn({
            let engine = Arc::clone(self);
            async move {
                let mut every = tokio::time::interval_at(
                    tokio::time::Instant::now() + engine.config.housekeeping_every,
                    engine.config.housekeeping_every,
                );
                every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    every.tick().await;
                    engine.housekeeping(crate::unix_now()).await;
                }
            }
        }));
        let engine = Arc::clone(self);
        tokio::spawn(async move {
            let _housekeeper = housekeeper;
            let signal = engine.store.change_signal();
            let mut tick = tokio::time::interval(engine.config.feed_poll);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut failing = false;
            loop {
                match &signal {
                    Some(signal) => tokio::select! {
                        _ = tick.tick() => {}
                        () = signal.notified() => {}
                    },
                    None => {
                        tick.tick().await;
                    }
                }
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
            }
        })
    }
}

/// A task that ends when its handle is dropped.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
