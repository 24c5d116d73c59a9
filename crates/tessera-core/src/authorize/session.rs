//! Signing the user in on Tessera's pages (or registering a new account), and the browser
//! session that follows: a random cookie, stored as SHA-256.

use std::sync::Arc;

use crate::engine::Engine;
use crate::error::{EngineError, Field, FieldError};
use crate::identity::{is_email, normalize_username};
use crate::model::{Account, Client, Role, Session, User};
use crate::password::check_strength;
use crate::policy::{MAX_NAME_LEN, SESSION_TTL};
use crate::secret::{Secret, SecretDigest, SecretKind, generate, new_id};
use crate::store::StoreError;

/// A browser session's user, with what OpenID Connect says of the sign-in.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub user: User,
    /// When the user entered their password (the ID token's `auth_time`).
    pub auth_time: i64,
    /// The session's public id (the ID token's `sid`).
    pub sid: String,
}

impl SignedIn {
    /// Whether this sign-in is good enough for `request`: for `prompt=login` (or
    /// `max_age=0`), the sign-in on the request's own login form; for `max_age`, recent enough;
    /// for an `id_token_hint`, the user it names; for any request, a user who may sign in
    /// through its client (a customer only through the client that signed it up).
    pub fn satisfies(&self, request: &crate::model::AuthorizationRequest) -> bool {
        let fresh = !request.prompts("login") || request.login_sid.as_deref() == Some(&self.sid);
        fresh
            && request.min_auth_time.is_none_or(|t| self.auth_time >= t)
            && self.is_hinted(request)
            && self.user.signs_in_through(&request.client_id)
    }

    /// Whether this is the user the request's `id_token_hint` names (or it names none).
    pub fn is_hinted(&self, request: &crate::model::AuthorizationRequest) -> bool {
        request.subject.as_deref().is_none_or(|s| s == self.user.id)
    }
}

impl Engine {
    /// Sign in an end customer of the client's partner: an account member or a customer.
    pub async fn page_login(
        &self,
        client: &Client,
        username: &str,
        password: &str,
        now: i64,
    ) -> Result<Arc<User>, EngineError> {
        // Organisation administrators cannot connect applications, nor can a customer another
        // client signed up; they are refused exactly as a wrong password is, so the page is no
        // oracle for their passwords.
        self.authenticate_user(
            &client.partner_id,
            &client.id,
            username,
            password,
            &[Role::Member, Role::Customer],
            now,
        )
        .await
    }

    /// Register a new end-customer account of the client's partner with its first user: only
    /// through a client registered with registration allowed, and at most a few a minute from
    /// one `source` (the server passes the client's IP address) and per partner.
    pub async fn register_account(
        &self,
        client: &Client,
        account_name: &str,
        email: &str,
        password: &str,
        source: &str,
        now: i64,
    ) -> Result<User, EngineError> {
        if !client.allow_registration {
            return Err(EngineError::Forbidden(
                "this application does not offer registration",
            ));
        }
        let mut errors = Vec::new();
        let account_name = account_name.trim();
        if account_name.is_empty() || account_name.chars().count() > MAX_NAME_LEN {
            errors.push(FieldError::new(
                Field::AccountName,
                format!("Enter a name of 1 to {MAX_NAME_LEN} characters."),
            ));
        }
        let email = normalize_username(email);
        if !is_email(&email) {
            errors.push(FieldError::new(
                Field::Email,
                "Enter a valid email address.",
            ));
        }
        if let Err(why) = check_strength(password) {
            errors.push(FieldError::new(Field::Password, why));
        }
        if !errors.is_empty() {
            return Err(EngineError::Validation(errors));
        }
        if self.user(&client.partner_id, &email).await?.is_some() {
            return Err(EngineError::field(
                Field::Email,
                "An account with this email already exists. Sign in instead.",
            ));
        }
        // Through the password queue, before anything is written: a refusal ("busy") leaves
        // no account behind.
        let place = self.admit_check()?;
        // Only a registration that would be made counts against the budgets (found by an
        // attack: five empty forms from one address spent a partner's budget for everyone).
        self.check_registration_rate(&client.partner_id, source)
            .await?;
        let password_hash = self.passwords.hash(place, password).await;
        let account = Account {
            id: new_id(),
            partner_id: client.partner_id.clone(),
            name: account_name.to_string(),
            external_id: None,
            created_at: now,
        };
        let user = User {
            id: new_id(),
            partner_id: client.partner_id.clone(),
            account_id: Some(account.id.clone()),
            username: email,
            role: Role::Member,
            password_hash,
            first_name: None,
            last_name: None,
            external_id: None,
            signed_up_by: None,
            created_at: now,
        };
        match self.insert_member(account, &user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(EngineError::field(
                    Field::Email,
                    "An account with this email already exists. Sign in instead.",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        Ok(user)
    }

    /// Start a browser session for `user`, signed in at `now`; returns the cookie value (shown
    /// once, stored hashed) and the sign-in.
    pub async fn create_session(
        &self,
        user: &User,
        now: i64,
    ) -> Result<(Secret, SignedIn), EngineError> {
        let secret = generate(SecretKind::Session);
        let session = Session {
            digest: secret.digest(),
            user_id: user.id.clone(),
            expires_at: now + SESSION_TTL,
            authenticated_at: now,
        };
        // The session is stored only if the password verified for `user` is still the user's
        // (a reset, or a stale cache on another node, in between refuses it).
        if !self
            .flows()
            .insert_session(&session, &user.password_hash)
            .await?
        {
            return Err(EngineError::InvalidGrant(
                "your password was changed while you were signing in; sign in again",
            ));
        }
        let signed_in = SignedIn {
            user: user.clone(),
            auth_time: now,
            sid: session.sid(),
        };
        Ok((secret, signed_in))
    }

    /// The user signed in on `request`'s own login form: what `prompt=login` then accepts.
    pub async fn note_request_login(
        &self,
        request: &mut crate::model::AuthorizationRequest,
        signed_in: &SignedIn,
    ) -> Result<(), EngineError> {
        if request.prompts("login") {
            if !self
                .flows()
                .set_request_login(&request.id, &signed_in.sid)
                .await?
            {
                return Err(EngineError::InvalidGrant(
                    "this sign-in request was already used; go back to the application and start again",
                ));
            }
            request.login_sid = Some(signed_in.sid.clone());
        }
        Ok(())
    }

    /// The user of a session cookie, if the session is live.
    pub async fn session_user(&self, cookie: &str, now: i64) -> Result<Option<User>, EngineError> {
        Ok(self.signed_in(cookie, now).await?.map(|s| s.user))
    }

    /// The sign-in of a session cookie, if the session is live.
    pub async fn signed_in(&self, cookie: &str, now: i64) -> Result<Option<SignedIn>, EngineError> {
        if SecretKind::of(cookie) != Some(SecretKind::Session) || cookie.len() > 128 {
            return Ok(None);
        }
        let Some(session) = self.flows().session(&SecretDigest::of(cookie), now).await? else {
            return Ok(None);
        };
        Ok(self
            .user_by_id(&session.user_id)
            .await?
            .map(|user| SignedIn {
                user,
                auth_time: session.authenticated_at,
                sid: session.sid(),
            }))
    }

    pub async fn end_session(&self, cookie: &str) -> Result<(), EngineError> {
        if SecretKind::of(cookie) == Some(SecretKind::Session) {
            self.flows()
                .delete_session(&SecretDigest::of(cookie))
                .await?;
        }
        Ok(())
    }
}
