//! Access tokens kept fresh for any number of tasks: [`TokenSource`].

use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::standard::StandardClient;
use crate::{Error, PartnerClient};

/// How a source gets its next token.
enum Grant {
    /// The partner's machine token (partner dialect `client_credentials`).
    Machine {
        client: PartnerClient,
        scope: String,
    },
    /// A registered client's app_token (standard dialect `client_credentials`).
    ClientCredentials {
        client: StandardClient,
        scope: Option<String>,
    },
    /// Refresh-token rotation, in the dialect the pair came from. The current refresh token
    /// lives in [`TokenSource::renewing`], touched only by the one task renewing.
    PartnerRefresh(PartnerClient),
    StandardRefresh(StandardClient),
}

/// An access token, cached and renewed before it expires, with one renewal in flight however
/// many tasks ask at once (single flight): the first task to find the token stale renews it
/// while the others wait for that answer instead of sending their own.
///
/// A refreshing source ([`TokenSource::partner_refresh`], [`TokenSource::standard_refresh`])
/// rotates its refresh token safely: only the renewing task holds it, the successor replaces
/// it only once the answer arrived, and on a failure (say, a lost response) the old one is
/// kept, which Tessera accepts again within its reuse grace while the successor it answered
/// is unused: it replaces that successor with a new one, so the family keeps one live head.
///
/// ```no_run
/// # async fn demo() -> Result<(), tessera_client::Error> {
/// use tessera_client::{Credentials, PartnerClient, TokenSource};
///
/// let client = PartnerClient::new(
///     "https://auth.example.com",
///     Credentials::basic("ops@acme.example", "a-long-enough-secret"),
/// );
/// let source = std::sync::Arc::new(TokenSource::machine(client, "crm transport"));
/// // From any task: a valid token, renewed a minute before it would expire.
/// let token = source.token().await?;
/// # let _ = token;
/// # Ok(())
/// # }
/// ```
pub struct TokenSource {
    grant: Grant,
    renew_before: Duration,
    cached: RwLock<Option<Cached>>,
    /// Held by the one task renewing; holds the refresh token of a refreshing source.
    renewing: tokio::sync::Mutex<Option<String>>,
}

#[derive(Clone)]
struct Cached {
    token: String,
    /// When it was asked for, and when it expires (both by this machine's clock).
    asked: Instant,
    expires_at: Instant,
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match &self.grant {
            Grant::Machine { .. } => "machine",
            Grant::ClientCredentials { .. } => "client_credentials",
            Grant::PartnerRefresh(_) | Grant::StandardRefresh(_) => "refresh_token",
        };
        f.debug_struct("TokenSource")
            .field("grant", &kind)
            .field("renew_before", &self.renew_before)
            .finish_non_exhaustive()
    }
}

/// The machine-token source of the partner dialect (the name it first had).
pub type MachineTokenSource = TokenSource;

impl TokenSource {
    fn with(grant: Grant, refresh_token: Option<String>) -> Self {
        TokenSource {
            grant,
            renew_before: Duration::from_secs(60),
            cached: RwLock::new(None),
            renewing: tokio::sync::Mutex::new(refresh_token),
        }
    }

    /// The partner's machine tokens for `scope`, renewed a minute before they expire.
    pub fn machine(client: PartnerClient, scope: impl Into<String>) -> Self {
        Self::with(
            Grant::Machine {
                client,
                scope: scope.into(),
            },
            None,
        )
    }

    /// Alias of [`TokenSource::machine`].
    pub fn new(client: PartnerClient, scope: impl Into<String>) -> Self {
        Self::machine(client, scope)
    }

    /// A registered client's own tokens (standard dialect `client_credentials`).
    pub fn client_credentials(client: StandardClient, scope: Option<&str>) -> Self {
        Self::with(
            Grant::ClientCredentials {
                client,
                scope: scope.map(str::to_string),
            },
            None,
        )
    }

    /// An account's tokens from a partner-dialect pair (a token exchange or an authorization
    /// code): the access token is served until it is due, then the refresh token rotates.
    pub fn partner_refresh(
        client: PartnerClient,
        pair: &tessera_proto::partner::TokenResponse,
    ) -> Result<Self, Error> {
        let refresh = pair.refresh_token.clone().ok_or(Error::NoRefreshToken)?;
        let source = Self::with(Grant::PartnerRefresh(client), Some(refresh));
        source.store(&pair.access_token, pair.expires_in, Instant::now());
        Ok(source)
    }

    /// A user's tokens from a standard-dialect pair (password grant, authorization code).
    pub fn standard_refresh(
        client: StandardClient,
        pair: &crate::standard::TokenResponse,
    ) -> Result<Self, Error> {
        let refresh = pair.refresh_token.clone().ok_or(Error::NoRefreshToken)?;
        let source = Self::with(Grant::StandardRefresh(client), Some(refresh));
        source.store(&pair.access_token, pair.expires_in, Instant::now());
        Ok(source)
    }

    /// Renew this long before expiry instead of a minute (clamped to the token's lifetime).
    pub fn renew_before(mut self, margin: Duration) -> Self {
        self.renew_before = margin;
        self
    }

    /// A valid access token: the cached one while it is fresh, otherwise a new one.
    pub async fn token(&self) -> Result<String, Error> {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let mut refresh = self.renewing.lock().await;
        // Whoever held the lock before may have renewed it meanwhile.
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let asked = Instant::now();
        let (access, expires_in, next_refresh) = match &self.grant {
            Grant::Machine { client, scope } => {
                let t = client.machine_token(scope).await?;
                (t.access_token, t.expires_in, None)
            }
            Grant::ClientCredentials { client, scope } => {
                let t = client.client_credentials(scope.as_deref()).await?;
                (t.access_token, t.expires_in, None)
            }
            Grant::PartnerRefresh(client) => {
                let current = refresh.as_deref().ok_or(Error::NoRefreshToken)?;
                let t = client.refresh(current).await?;
                (t.access_token, t.expires_in, t.refresh_token)
            }
            Grant::StandardRefresh(client) => {
                let current = refresh.as_deref().ok_or(Error::NoRefreshToken)?;
                let t = client.refresh(current).await?;
                (t.access_token, t.expires_in, t.refresh_token)
            }
        };
        if let Some(next) = next_refresh {
            *refresh = Some(next);
        }
        self.store(&access, expires_in, asked);
        Ok(access)
    }

    /// The refresh token a refreshing source holds now (to persist it across restarts).
    pub async fn refresh_token(&self) -> Option<String> {
        self.renewing.lock().await.clone()
    }

    /// Forget the cached token (say, after the resource server refused it).
    pub fn invalidate(&self) {
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = None;
    }

    fn store(&self, token: &str, expires_in: i64, asked: Instant) {
        let cached = Cached {
            token: token.to_string(),
            asked,
            expires_at: asked + Duration::from_secs(expires_in.max(0) as u64),
        };
        *self.cached.write().unwrap_or_else(|e| e.into_inner()) = Some(cached);
    }

    fn fresh(&self) -> Option<String> {
        let cached = self.cached.read().unwrap_or_else(|e| e.into_inner());
        cached
            .as_ref()
            .filter(|c| {
                let renew_at = c
                    .expires_at
                    .checked_sub(self.renew_before)
                    .map_or(c.asked, |t| t.max(c.asked));
                Instant::now() < renew_at
            })
            .map(|c| c.token.clone())
    }
}
