//! A resource server's check of Tessera access tokens, offline: [`Verifier`].

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::{JwkSet, KeyAlgorithm};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::{Deserialize, Serialize};
pub use tessera_proto::claims::{Claims, TokenUse};

use crate::standard::StandardClient;

/// The claims of a verified Tessera access token (RFC 9068 with Tessera's own): the server's
/// own [`Claims`] (`claims.client_id`, `claims.has_scope("crm")` reach them), in a type of the
/// SDK's so that the `axum` feature can extract it from a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct AccessClaims(pub Claims);

impl std::ops::Deref for AccessClaims {
    type Target = Claims;

    fn deref(&self) -> &Claims {
        &self.0
    }
}

/// Why a token was refused. [`VerifyError::status`] and [`VerifyError::code`] give the RFC 6750
/// answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("no bearer token was sent")]
    Missing,
    #[error("the token is not a Tessera access token: {0}")]
    Invalid(String),
    #[error("the token's key is not in the issuer's JWKS")]
    UnknownKey,
    #[error("the token has expired")]
    Expired,
    #[error("the token was revoked")]
    Revoked,
    #[error("the token lacks the scope(s) {0:?}")]
    InsufficientScope(Vec<String>),
    /// The JWKS (or introspection) could not be fetched: not the token's fault.
    #[error("the issuer could not be reached: {0}")]
    Unavailable(String),
}

impl VerifyError {
    /// 401, 403 (scope) or 503 (the issuer unreachable).
    pub fn status(&self) -> u16 {
        match self {
            VerifyError::InsufficientScope(_) => 403,
            VerifyError::Unavailable(_) => 503,
            _ => 401,
        }
    }

    /// RFC 6750 §3.1 `error` code, where one applies.
    pub fn code(&self) -> Option<&'static str> {
        match self {
            VerifyError::Missing => None,
            VerifyError::InsufficientScope(_) => Some("insufficient_scope"),
            VerifyError::Unavailable(_) => None,
            _ => Some("invalid_token"),
        }
    }
}

struct Keys {
    by_kid: HashMap<String, (Algorithm, DecodingKey)>,
    /// When `by_kid` was fetched, and for how long it may be trusted without asking again.
    fetched_at: Option<Instant>,
    fresh_for: Duration,
    /// The last fetch attempt, and whether it failed: attempts are rate limited whether they
    /// succeed or not, so an unreachable issuer is not asked once per request.
    attempted_at: Option<Instant>,
    failed: bool,
}

/// Clears the in-flight flag and wakes the waiters when the fetch ends, also when the task that
/// fetched is cancelled mid-way.
struct Fetching<'a>(&'a Verifier);

impl Drop for Fetching<'_> {
    fn drop(&mut self) {
        self.0.fetching.store(false, Ordering::Release);
        self.0.fetched.notify_waiters();
    }
}

/// Verifies Tessera access tokens from the issuer's JWKS, without a request per token: the
/// signature (with the key the header's `kid` names, in the algorithm that key has), `typ`
/// `at+jwt` (so an OpenID Connect ID token never passes), `iss`, `aud`, `exp` (30 s leeway),
/// and the scopes a caller asks for.
///
/// The JWKS is fetched when a token names a key the verifier lacks (a rotation) and, even when
/// every key is known, once the keys are older than the issuer's `Cache-Control: max-age` or
/// [`Verifier::max_key_age`] (5 minutes by default), whichever is shorter: a key the issuer
/// removed from its JWKS (`tessera keys revoke`) is refused from the next fetch on. Fetches are
/// at most one per [`Verifier::min_refetch`] (10 s by default) however many tokens arrive, one
/// at a time, each within [`Verifier::fetch_timeout`] (5 s by default). No lock is held across a
/// fetch: while one is in flight, tokens of known keys are verified with the keys at hand and
/// only tokens of unknown keys wait for it. When the issuer cannot be reached, known keys keep
/// working and unknown ones are refused as [`VerifyError::Unavailable`]. With
/// [`Verifier::introspect_with`], each token is also introspected, so a revoked one is refused
/// at once rather than at its expiry.
///
/// ```no_run
/// # async fn demo() -> Result<(), tessera_client::VerifyError> {
/// use tessera_client::Verifier;
/// let verifier = Verifier::new("https://auth.example.com");
/// let claims = verifier.verify_scopes("eyJ...", &["crm"]).await?;
/// println!("{} acts for account {:?}", claims.client_id, claims.account_id);
/// # Ok(()) }
/// ```
pub struct Verifier {
    issuer: String,
    audience: String,
    jwks_uri: String,
    http: reqwest::Client,
    min_refetch: Duration,
    max_key_age: Duration,
    fetch_timeout: Duration,
    leeway: u64,
    introspection: Option<StandardClient>,
    keys: RwLock<Keys>,
    /// Whether a fetch is in flight, and its end announced.
    fetching: AtomicBool,
    fetched: tokio::sync::Notify,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("issuer", &self.issuer)
            .field("audience", &self.audience)
            .field("jwks_uri", &self.jwks_uri)
            .field("introspection", &self.introspection.is_some())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Tokens of `issuer` (exactly as in its discovery document's `issuer`), whose audience is
    /// the issuer itself (what Tessera puts in `aud`), with keys from
    /// `<issuer>/.well-known/jwks.json`.
    pub fn new(issuer: impl Into<String>) -> Self {
        let issuer = issuer.into();
        Verifier {
            audience: issuer.clone(),
            jwks_uri: format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
            issuer,
            http: reqwest::Client::new(),
            min_refetch: Duration::from_secs(10),
            max_key_age: Duration::from_secs(300),
            fetch_timeout: Duration::from_secs(5),
            leeway: 30,
            introspection: None,
            keys: RwLock::new(Keys {
                by_kid: HashMap::new(),
                fetched_at: None,
                fresh_for: Duration::ZERO,
                attempted_at: None,
                failed: false,
            }),
            fetching: AtomicBool::new(false),
            fetched: tokio::sync::Notify::new(),
        }
    }

    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    pub fn jwks_uri(mut self, uri: impl Into<String>) -> Self {
        self.jwks_uri = uri.into();
        self
    }

    pub fn http(mut self, http: reqwest::Client) -> Self {
        self.http = http;
        self
    }

    /// The shortest time between two JWKS fetch attempts.
    pub fn min_refetch(mut self, interval: Duration) -> Self {
        self.min_refetch = interval;
        self
    }

    /// The longest the keys are trusted without asking the issuer again; the issuer's
    /// `Cache-Control: max-age`, when shorter, wins. This bounds how long a key the issuer
    /// revoked keeps being accepted.
    pub fn max_key_age(mut self, age: Duration) -> Self {
        self.max_key_age = age;
        self
    }

    /// How long one JWKS fetch may take, connection and body included.
    pub fn fetch_timeout(mut self, timeout: Duration) -> Self {
        self.fetch_timeout = timeout;
        self
    }

    /// Also introspect every token with this client's credentials (RFC 7662): revocation is
    /// seen at once, at the cost of a request per token.
    pub fn introspect_with(mut self, client: StandardClient) -> Self {
        self.introspection = Some(client);
        self
    }

    /// Verify `token`; its claims.
    pub async fn verify(&self, token: &str) -> Result<AccessClaims, VerifyError> {
        self.verify_scopes(token, &[]).await
    }

    /// Verify `token` and require every scope of `scopes`.
    pub async fn verify_scopes(
        &self,
        token: &str,
        scopes: &[&str],
    ) -> Result<AccessClaims, VerifyError> {
        let invalid = |why: &str| VerifyError::Invalid(why.to_string());
        if token.len() > 8192 {
            return Err(invalid("longer than any Tessera token"));
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| invalid("not a JWT"))?;
        if !matches!(header.typ.as_deref(), Some("at+jwt" | "application/at+jwt")) {
            return Err(invalid(
                "its typ is not at+jwt (an ID token is no access token)",
            ));
        }
        let kid = header.kid.ok_or_else(|| invalid("it names no key"))?;
        let (alg, key) = self.key(&kid).await?;
        if header.alg != alg {
            return Err(invalid("its alg is not its key's"));
        }
        let mut validation = Validation::new(alg);
        validation.set_issuer(&[&self.issuer]);
        validation.set_audience(&[&self.audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        validation.leeway = self.leeway;
        let claims = jsonwebtoken::decode::<AccessClaims>(token, &key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => VerifyError::Expired,
                jsonwebtoken::errors::ErrorKind::InvalidSignature => invalid("bad signature"),
                jsonwebtoken::errors::ErrorKind::InvalidIssuer => invalid("another issuer"),
                jsonwebtoken::errors::ErrorKind::InvalidAudience => invalid("another audience"),
                _ => invalid("malformed claims"),
            })?
            .claims;
        let missing: Vec<String> = scopes
            .iter()
            .filter(|s| !claims.has_scope(s))
            .map(|s| s.to_string())
            .collect();
        if !missing.is_empty() {
            return Err(VerifyError::InsufficientScope(missing));
        }
        if let Some(client) = &self.introspection {
            let seen = client
                .introspect(token)
                .await
                .map_err(|e| VerifyError::Unavailable(e.to_string()))?;
            if !seen.active {
                return Err(VerifyError::Revoked);
            }
        }
        Ok(claims)
    }

    /// The key `kid` names, fetching the JWKS first when the key is unknown or the keys are
    /// stale (and an attempt is due).
    async fn key(&self, kid: &str) -> Result<(Algorithm, DecodingKey), VerifyError> {
        let (known, stale, due) = {
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            (
                keys.by_kid.get(kid).cloned(),
                keys.fetched_at
                    .is_none_or(|at| at.elapsed() >= keys.fresh_for),
                keys.attempted_at
                    .is_none_or(|at| at.elapsed() >= self.min_refetch),
            )
        };
        match known {
            Some(key) if !stale || !due => return Ok(key),
            // Stale: ask again, unless another task is asking already; if the issuer cannot
            // answer, the keys at hand stay good.
            Some(key) => {
                if self.fetch(false).await.is_none() {
                    return Ok(key);
                }
            }
            // Unknown: wait for the fetch in flight, or fetch (at most once per min_refetch).
            None => self.fetch(true).await.unwrap_or(Ok(()))?,
        }
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
        keys.by_kid.get(kid).cloned().ok_or(VerifyError::UnknownKey)
    }

    /// Fetch the JWKS, or, when another task is fetching it, wait for that fetch to end
    /// (`wait`) or return `None` at once.
    async fn fetch(&self, wait: bool) -> Option<Result<(), VerifyError>> {
        // Listen before looking at the flag, so that an end between the two is not missed.
        let ended = self.fetched.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if self.fetching.swap(true, Ordering::AcqRel) {
            if !wait {
                return None;
            }
            ended.await;
            let keys = self.keys.read().unwrap_or_else(|e| e.into_inner());
            return Some(if keys.failed {
                Err(issuer_unreachable())
            } else {
                Ok(())
            });
        }
        let _fetching = Fetching(self);
        {
            let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
            // A fetch that ended just before this one started is as good.
            if keys
                .attempted_at
                .is_some_and(|at| at.elapsed() < self.min_refetch)
            {
                return Some(if keys.failed {
                    Err(issuer_unreachable())
                } else {
                    Ok(())
                });
            }
            keys.attempted_at = Some(Instant::now());
        }
        let fetched = self.fetch_jwks().await;
        let mut keys = self.keys.write().unwrap_or_else(|e| e.into_inner());
        match fetched {
            Ok((by_kid, max_age)) => {
                keys.by_kid = by_kid;
                keys.fetched_at = Some(Instant::now());
                keys.fresh_for = max_age
                    .unwrap_or(self.max_key_age)
                    .clamp(self.min_refetch, self.max_key_age.max(self.min_refetch));
                keys.failed = false;
                Some(Ok(()))
            }
            Err(e) => {
                keys.failed = true;
                Some(Err(e))
            }
        }
    }

    /// One GET of the JWKS: its usable keys by `kid`, and the `max-age` it came with.
    async fn fetch_jwks(
        &self,
    ) -> Result<(HashMap<String, (Algorithm, DecodingKey)>, Option<Duration>), VerifyError> {
        let unavailable = |e: reqwest::Error| VerifyError::Unavailable(e.to_string());
        let response = self
            .http
            .get(&self.jwks_uri)
            .timeout(self.fetch_timeout)
            .send()
            .await
            .and_then(|r| r.error_for_status())
            .map_err(unavailable)?;
        let max_age = response
            .headers()
            .get_all(reqwest::header::CACHE_CONTROL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .find_map(|d| d.trim().strip_prefix("max-age=")?.parse::<u64>().ok())
            .map(Duration::from_secs);
        let set: JwkSet = response.json().await.map_err(unavailable)?;
        let mut by_kid = HashMap::new();
        for jwk in &set.keys {
            let alg = match jwk.common.key_algorithm {
                Some(KeyAlgorithm::ES256) => Algorithm::ES256,
                Some(KeyAlgorithm::EdDSA) => Algorithm::EdDSA,
                Some(KeyAlgorithm::RS256) => Algorithm::RS256,
                _ => continue,
            };
            if let (Some(kid), Ok(key)) = (&jwk.common.key_id, DecodingKey::from_jwk(jwk)) {
                by_kid.insert(kid.clone(), (alg, key));
            }
        }
        Ok((by_kid, max_age))
    }
}

fn issuer_unreachable() -> VerifyError {
    VerifyError::Unavailable("the issuer's JWKS could not be fetched; asking again shortly".into())
}
