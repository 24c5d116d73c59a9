//! A machine token kept fresh for any number of tasks: [`MachineTokenSource`].

use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::{Error, PartnerClient};

/// The partner's machine token, cached and renewed before it expires, with one renewal in
/// flight however many tasks ask at once (single flight): the first task to find the token
/// stale renews it while the others wait for that answer instead of sending their own.
///
/// ```no_run
/// # async fn demo() -> Result<(), tessera_client::Error> {
/// use tessera_client::{Credentials, MachineTokenSource, PartnerClient};
///
/// let client = PartnerClient::new(
///     "https://auth.example.com",
///     Credentials::basic("ops@acme.example", "a-long-enough-secret"),
/// );
/// let source = std::sync::Arc::new(MachineTokenSource::new(client, "crm transport"));
/// // From any task: a valid token, renewed a minute before it would expire.
/// let token = source.token().await?;
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
pub struct MachineTokenSource {
    client: PartnerClient,
    scope: String,
    renew_before: Duration,
    cached: RwLock<Option<Cached>>,
    /// Held by the one task renewing.
    renewing: tokio::sync::Mutex<()>,
}

#[derive(Clone)]
struct Cached {
    token: String,
    renew_at: Instant,
}

impl std::fmt::Debug for MachineTokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MachineTokenSource")
            .field("scope", &self.scope)
            .field("renew_before", &self.renew_before)
            .finish_non_exhaustive()
    }
}

impl MachineTokenSource {
    /// Tokens for `scope`, renewed a minute before they expire.
    pub fn new(client: PartnerClient, scope: impl Into<String>) -> Self {
        MachineTokenSource {
            client,
            scope: scope.into(),
            renew_before: Duration::from_secs(60),
            cached: RwLock::new(None),
            renewing: tokio::sync::Mutex::new(()),
        }
    }

    /// Renew this long before expiry instead of a minute (clamped to the token's lifetime).
    pub fn renew_before(mut self, margin: Duration) -> Self {
        self.renew_before = margin;
        self
    }

    /// A valid machine token: the cached one while it is fresh, otherwise a new one.
    pub async fn token(&self) -> Result<String, Error> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _renewing = self.renewing.lock().await;
        // Whoever held the lock before may have renewed it meanwhile.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let asked = Instant::now();
        let issued = self.client.machine_token(&self.scope).await?;
        let lifetime = Duration::from_secs(issued.expires_in.max(0) as u64);
        let cached = Cached {
            token: issued.access_token.clone(),
            renew_at: asked + lifetime.saturating_sub(self.renew_before),
        };
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(cached);
        Ok(issued.access_token)
    }

    /// Forget the cached token (say, after the resource server refused it).
    pub fn invalidate(&self) {
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn fresh(&self) -> Option<String> {
        let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|c| Instant::now() < c.renew_at)
            .map(|c| c.token.clone())
    }
}
