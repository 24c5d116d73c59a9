//! The four kinds of authentication: a partner's Basic email:password, a partner API token, a
//! client's id and secret, and a user's password. Human passwords cost Argon2id, so recently
//! verified pairs are served from the credential cache, concurrent checks of one new pair are
//! single-flighted, and every check passes the lockout.

use crate::audit::{AuditEvent, Event};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{Engine, VerifiedCredential};
use crate::caller::Caller;
use crate::error::EngineError;
use crate::identity::normalize_username;
use crate::lockout;
use crate::model::{Partner, PartnerStatus, Role, User};
use crate::password::StoredPassword;
use crate::policy;
use crate::secret::{SecretDigest, SecretKind};

impl Engine {
    /// `Authorization: Basic email:password`. Recently verified pairs are served from the
    /// credential cache (keyed by an HMAC of the pair, never the clear password); otherwise the
    /// password is checked with Argon2id, and an unknown email costs the same as a wrong password.
    #[tracing::instrument(skip_all, name = "partner_basic")]
    pub async fn authenticate_partner_basic(
        &self,
        email: &str,
        password: &str,
        now: i64,
    ) -> Result<Arc<Partner>, EngineError> {
        if email.len() > policy::MAX_EMAIL_LEN || password.len() > policy::MAX_PASSWORD_LEN {
            return Err(EngineError::InvalidCredentials);
        }
        let email = email.to_ascii_lowercase();
        let key = self
            .keyer
            .key(&[b"partner", email.as_bytes(), password.as_bytes()]);
        if let Some(hit) = self.credentials.get(&key)
            && let Some(p) = self.partner(&hit.owner).await?
        {
            crate::telemetry::cache("credential", true);
            return active(p);
        }
        crate::telemetry::cache("credential", false);
        let _flight = self.single_flight(key).await;
        if let Some(hit) = self.credentials.get(&key)
            && let Some(p) = self.partner(&hit.owner).await?
        {
            return active(p);
        }
        let place = self.admit_check()?;
        let lock_key = lockout::key("partner", &email);
        self.reserve_check(&lock_key, now, || {
            AuditEvent::new(Event::Lockout, now).username(&email)
        })
        .await?;
        let epoch = self.epoch.load(Ordering::Acquire);
        let partner = self.store.partner_by_email(&email).await?;
        let ok = self
            .passwords
            .verify_holding(place, partner.as_ref().map(|p| &p.password_hash), password)
            .await;
        let partner = match partner {
            Some(p) if ok => Arc::new(p),
            _ => {
                tracing::info!("partner authentication failed");
                self.audit(
                    AuditEvent::new(Event::PartnerSignInFailed, now)
                        .username(&email)
                        .detail("reason", "unknown email or wrong password"),
                );
                return Err(EngineError::InvalidCredentials);
            }
        };
        self.audit(
            AuditEvent::new(Event::PartnerSignIn, now)
                .partner(&partner.id)
                .username(&email),
        );
        self.store.clear_attempts(&lock_key).await?;
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
    ) -> Result<Arc<Partner>, EngineError> {
        if SecretKind::of(token) != Some(SecretKind::PartnerToken) || token.len() > 128 {
            return Err(EngineError::InvalidPartnerToken);
        }
        let digest = SecretDigest::of(token);
        let cached = self.partner_tokens.get(&digest);
        crate::telemetry::cache("partner_token", cached.is_some());
        let partner_id = match cached {
            Some(id) => id,
            None => {
                let epoch = self.epoch.load(Ordering::Acquire);
                let id: Arc<str> = self
                    .store
                    .partner_by_token(&digest)
                    .await?
                    .ok_or(EngineError::InvalidPartnerToken)?
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
            .ok_or(EngineError::InvalidPartnerToken)?;
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

    /// RFC 6749 §2.3.1: a client id and its secret. Secrets are 256-bit and stored as SHA-256,
    /// so this costs one hash and a constant-time comparison, never Argon2.
    #[tracing::instrument(skip_all, name = "client_auth")]
    pub async fn authenticate_client(
        &self,
        client_id: &str,
        secret: &str,
        now: i64,
    ) -> Result<Caller, EngineError> {
        if client_id.len() > 128 || secret.len() > 256 {
            return Err(EngineError::InvalidClient("unknown client or wrong secret"));
        }
        let presented = SecretDigest::of(secret);
        let client = self.client(client_id).await?;
        // The current secret, or the one before a rotation while its overlap lasts.
        let Some(client) = client.filter(|c| {
            let current = c.secret_digest.ct_eq(&presented);
            let previous = c
                .previous_secret
                .as_ref()
                .is_some_and(|(digest, until)| digest.ct_eq(&presented) && now < *until);
            current | previous
        }) else {
            tracing::info!("client authentication failed");
            return Err(EngineError::InvalidClient("unknown client or wrong secret"));
        };
        if client.disabled {
            return Err(EngineError::InvalidClient("the client is disabled"));
        }
        let partner = self
            .partner(&client.partner_id)
            .await?
            .ok_or(EngineError::InvalidClient("unknown client or wrong secret"))?;
        if partner.status != PartnerStatus::Active {
            return Err(EngineError::InvalidClient(
                "the client's organisation is inactive",
            ));
        }
        Ok(Caller::Client { client, partner })
    }

    /// A user's password, within one partner, for a user of one of `roles`. People's
    /// passwords are Argon2id behind the credential cache; generated `clientUserToken`s are
    /// SHA-256. Every refusal costs the same and says the same, so that neither timing nor the
    /// answer tells an unknown username from a wrong password or a user of another role: an
    /// uncached check that fails runs one Argon2id whatever is stored and whatever the password
    /// looks like, and a user of the wrong role is refused as a wrong password (and never cached
    /// for this path). Every uncached check reserves a unit of the username's lockout bucket
    /// first.
    #[tracing::instrument(skip_all, name = "user_password")]
    pub async fn authenticate_user(
        &self,
        partner_id: &str,
        client_id: &str,
        username: &str,
        password: &str,
        roles: &[Role],
        now: i64,
    ) -> Result<Arc<User>, EngineError> {
        let username = normalize_username(username);
        if username.is_empty()
            || username.len() > policy::MAX_EMAIL_LEN
            || password.len() > policy::MAX_PASSWORD_LEN
        {
            return Err(EngineError::InvalidUserCredentials);
        }
        let owner = format!("{partner_id}:{username}");
        let path: Vec<u8> = roles.iter().map(|r| *r as u8).collect();
        let key = self
            .keyer
            .key(&[b"user", &path, owner.as_bytes(), password.as_bytes()]);
        // A role the path allows, and a client the user may sign in through (a customer only
        // the one that signed it up): anyone else is refused as a wrong password is.
        let may = |u: &User| roles.contains(&u.role) && u.signs_in_through(client_id);
        if self.credentials.get(&key).is_some()
            && let Some(u) = self.user(partner_id, &username).await?
            && may(&u)
        {
            crate::telemetry::cache("credential", true);
            return Ok(u);
        }
        crate::telemetry::cache("credential", false);
        let _flight = self.single_flight(key).await;
        if self.credentials.get(&key).is_some()
            && let Some(u) = self.user(partner_id, &username).await?
            && may(&u)
        {
            return Ok(u);
        }
        let place = self.admit_check()?;
        let lock_key = lockout::key("user", &owner);
        self.reserve_check(&lock_key, now, || {
            AuditEvent::new(Event::Lockout, now)
                .partner(partner_id)
                .username(&username)
                .client(client_id)
        })
        .await?;
        let epoch = self.epoch.load(Ordering::Acquire);
        let user = self.user(partner_id, &username).await?;
        let matched = match user
            .as_deref()
            .map(|u| StoredPassword::of(&u.password_hash))
        {
            Some(StoredPassword::Generated(digest)) => {
                digest.ct_eq(&SecretDigest::of(password)) || {
                    // As slow as every other refusal.
                    self.passwords.verify_holding(place, None, password).await
                }
            }
            Some(StoredPassword::Argon2(hash)) => {
                self.passwords
                    .verify_holding(place, Some(hash), password)
                    .await
            }
            None => self.passwords.verify_holding(place, None, password).await,
        };
        let user = match user {
            Some(u) if matched && may(&u) => u,
            _ => {
                tracing::info!("user authentication failed");
                self.audit(
                    AuditEvent::new(Event::UserSignInFailed, now)
                        .partner(partner_id)
                        .username(&username)
                        .client(client_id)
                        .detail("reason", "unknown username or wrong password"),
                );
                return Err(EngineError::InvalidUserCredentials);
            }
        };
        self.audit(
            AuditEvent::new(Event::UserSignIn, now)
                .partner(partner_id)
                .username(&username)
                .client(client_id)
                .detail("user_id", user.id.as_str()),
        );
        self.store.clear_attempts(&lock_key).await?;
        if self.epoch.load(Ordering::Acquire) == epoch {
            self.credentials.insert(
                key,
                VerifiedCredential {
                    owner: Arc::from(owner.as_str()),
                },
            );
        }
        Ok(user)
    }

    /// A place in the bounded queue of password checks, or "busy" at once: a flood of uncached
    /// checks cannot make a legitimate one wait without bound, and costs no lockout unit.
    pub(crate) fn admit_check(&self) -> Result<crate::password::Admission, EngineError> {
        let source = crate::audit::current_requester();
        self.passwords.admit(source.as_deref()).ok_or_else(|| {
            crate::telemetry::refused("password_queue");
            tracing::info!("password check refused: the Argon2 queue is full");
            EngineError::Busy {
                retry_after_secs: 1,
            }
        })
    }

    /// Reserve one password check of a username in its lockout bucket, or refuse it.
    /// A refusal is recorded in the audit trail as `lockout()` describes it.
    async fn reserve_check(
        &self,
        lock_key: &[u8; 32],
        now: i64,
        lockout: impl FnOnce() -> AuditEvent,
    ) -> Result<(), EngineError> {
        match self
            .store
            .reserve_attempt(lock_key, now, &self.lockout)
            .await?
        {
            Ok(()) => Ok(()),
            Err(retry_after_secs) => {
                crate::telemetry::lockout();
                // One audit event per username a minute: a flood of refused guesses (each
                // cheap, no Argon2) must not become a flood of rows.
                let noted = self.lockouts_noted.get(lock_key);
                if noted.is_none_or(|at| now - at >= 60) {
                    self.lockouts_noted.insert(*lock_key, now);
                    self.audit(lockout().detail("retry_after_secs", retry_after_secs));
                }
                tracing::info!(retry_after_secs, "password check refused: locked");
                Err(EngineError::Locked { retry_after_secs })
            }
        }
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

fn active(p: Arc<Partner>) -> Result<Arc<Partner>, EngineError> {
    match p.status {
        PartnerStatus::Active => Ok(p),
        PartnerStatus::Inactive => Err(EngineError::PartnerInactive),
    }
}
