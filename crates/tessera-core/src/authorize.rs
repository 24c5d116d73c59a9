//! The front half of the authorization-code flow (RFC 6749 §4.1, RFC 7636, RFC 9207): validating
//! `/authorize`, signing the user in (or registering an account), consent, and the code that goes
//! back to the client. The pages in `tessera-server` call these; the back half is the
//! `authorization_code` grant.
//!
//! Errors before the redirect URI is known to be registered for the client are shown on an error
//! page and never redirected (RFC 6749 §4.1.2.1, RFC 9700 §4.1); every later error redirects with
//! `error`, `error_description`, `state` and `iss`.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::engine::{Engine, normalize_username};
use crate::error::GrantError;
use crate::grants::Caller;
use crate::model::{
    Account, AuthorizationCode, AuthorizationRequest, Client, Grant, GrantType, Role, Session, User,
};
use crate::password::check_strength;
use crate::policy::{
    AUTHORIZATION_CODE_TTL, AUTHORIZATION_REQUEST_TTL, MAX_NAME_LEN, MAX_STATE_LEN, SESSION_TTL,
};
use crate::scope::ScopeSet;
use crate::secret::{Secret, SecretDigest, SecretKind, generate, new_id, random_bytes};
use crate::store::StoreError;

/// Path of the development callback page (`client create --dev`).
pub const DEBUG_CALLBACK_PATH: &str = "/oauth/debug-callback";

/// Which dialect's `/authorize` was called: it decides the error codes a redirect carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Partner,
    Standard,
}

impl Dialect {
    pub fn as_str(self) -> &'static str {
        match self {
            Dialect::Partner => "partner",
            Dialect::Standard => "standard",
        }
    }
    pub fn parse(s: &str) -> Dialect {
        if s == "partner" {
            Dialect::Partner
        } else {
            Dialect::Standard
        }
    }
}

/// The query of an `/authorize` request, as received.
#[derive(Debug, Default, Clone)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
}

/// Why an authorization request fails after the redirect URI is trusted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthorizeFailure {
    InvalidRequest,
    UnauthorizedClient,
    AccessDenied,
    UnsupportedResponseType,
    InvalidScope,
    CodeChallengeMethodUnsupported,
    ServerError,
}

#[derive(Debug)]
pub enum AuthorizeError {
    /// Show this on an error page (400); never redirect.
    Page(String),
    /// Send the user back to the client with an error.
    Redirect {
        redirect_uri: String,
        state: Option<String>,
        failure: AuthorizeFailure,
        description: String,
    },
}

/// A consent page's content.
pub struct ConsentView {
    pub client_name: String,
    pub scopes: Vec<(String, String)>,
}

/// RFC 7636 §4.1: 43–128 characters of `[A-Z] / [a-z] / [0-9] / "-" / "." / "_" / "~"`; the
/// same alphabet and lengths hold for a challenge.
pub fn pkce_value_ok(v: &str) -> bool {
    (43..=128).contains(&v.len())
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~'))
}

/// Whether `verifier` matches `challenge` under `method` (constant time).
pub fn pkce_matches(method: &str, challenge: &str, verifier: &str) -> bool {
    let expected = match method {
        "S256" => URL_SAFE_NO_PAD.encode(
            aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes()).as_ref(),
        ),
        "plain" => verifier.to_string(),
        _ => return false,
    };
    crate::secret::ct_eq(expected.as_bytes(), challenge.as_bytes())
}

/// `uri` with `params` added to its query (RFC 6749 §4.1.2: keep the registered query).
pub fn with_query(uri: &str, params: &[(&str, &str)]) -> String {
    let mut out = uri.to_string();
    let mut sep = if uri.contains('?') { '&' } else { '?' };
    for (k, v) in params {
        out.push(sep);
        sep = '&';
        out.push_str(&form_urlencoded::byte_serialize(k.as_bytes()).collect::<String>());
        out.push('=');
        out.push_str(&form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>());
    }
    out
}

impl Engine {
    /// The URL of the development callback page.
    pub fn debug_callback_uri(&self) -> String {
        format!("{}{DEBUG_CALLBACK_PATH}", self.config.issuer)
    }

    /// Validate an `/authorize` request and store it as pending.
    pub async fn begin_authorization(
        &self,
        params: AuthorizeParams,
        dialect: Dialect,
        now: i64,
    ) -> Result<(AuthorizationRequest, Arc<Client>), AuthorizeError> {
        let page = |m: &str| AuthorizeError::Page(m.to_string());
        let client_id = params
            .client_id
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 128)
            .ok_or_else(|| page("The request names no client (client_id is missing)."))?;
        let client = self
            .client(client_id)
            .await
            .map_err(|_| page("The service is temporarily unavailable. Try again shortly."))?
            .ok_or_else(|| page("The application that sent you here is not registered."))?;
        let debug = self.debug_callback_uri();
        let redirect_uri = match params.redirect_uri.as_deref() {
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => uri.to_string(),
            Some(uri) if uri == debug && client.dev => uri.to_string(),
            Some(_) => {
                return Err(page(
                    "The application asked to send you to an address it has not registered, so \
                     Tessera stopped here.",
                ));
            }
            None if client.redirect_uris.len() == 1 => client.redirect_uris[0].clone(),
            None => {
                return Err(page(
                    "The request does not say where to return (redirect_uri is missing).",
                ));
            }
        };
        let fail = |failure, description: &str| AuthorizeError::Redirect {
            redirect_uri: redirect_uri.clone(),
            state: params.state.clone(),
            failure,
            description: description.to_string(),
        };
        if params
            .state
            .as_ref()
            .is_some_and(|s| s.len() > MAX_STATE_LEN)
        {
            return Err(page("The request's state parameter is too long."));
        }
        if params.response_type.as_deref() != Some("code") {
            return Err(fail(
                AuthorizeFailure::UnsupportedResponseType,
                "response_type must be code",
            ));
        }
        if !client.grant_types.contains(&GrantType::AuthorizationCode) {
            return Err(fail(
                AuthorizeFailure::UnauthorizedClient,
                "the client is not registered for the authorization_code grant",
            ));
        }
        let method = params
            .code_challenge_method
            .clone()
            .unwrap_or_else(|| "plain".into());
        if method != "S256" && method != "plain" {
            return Err(fail(
                AuthorizeFailure::CodeChallengeMethodUnsupported,
                "code_challenge_method must be S256 or plain",
            ));
        }
        let challenge = match params.code_challenge.as_deref() {
            Some(c) if pkce_value_ok(c) => c.to_string(),
            Some(_) => {
                return Err(fail(
                    AuthorizeFailure::InvalidRequest,
                    "code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
                ));
            }
            None => {
                return Err(fail(
                    AuthorizeFailure::InvalidRequest,
                    "code_challenge is required (PKCE, RFC 7636)",
                ));
            }
        };
        let partner = self
            .partner(&client.partner_id)
            .await
            .map_err(|_| fail(AuthorizeFailure::ServerError, "temporarily unavailable"))?
            .ok_or_else(|| fail(AuthorizeFailure::UnauthorizedClient, "unknown partner"))?;
        let caller = Caller::Client {
            client: Arc::clone(&client),
            partner,
        };
        let requested = ScopeSet::parse(params.scope.as_deref().unwrap_or(""))
            .map_err(|e| fail(AuthorizeFailure::InvalidScope, &e.to_string()))?;
        let scope = crate::grants::effective_scope(requested, &caller).map_err(|_| {
            fail(
                AuthorizeFailure::InvalidScope,
                "a requested scope is not allowed for this client",
            )
        })?;
        let request = AuthorizationRequest {
            id: URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.clone(),
            scope: scope.to_claim(),
            state: params.state.clone(),
            code_challenge: challenge,
            code_challenge_method: method,
            dialect: dialect.as_str().into(),
            expires_at: now + AUTHORIZATION_REQUEST_TTL,
        };
        self.store
            .insert_authorization_request(&request)
            .await
            .map_err(|_| fail(AuthorizeFailure::ServerError, "temporarily unavailable"))?;
        Ok((request, client))
    }

    /// A pending request and its client, or a page error when it has expired.
    pub async fn pending_authorization(
        &self,
        id: &str,
        now: i64,
    ) -> Result<(AuthorizationRequest, Arc<Client>), AuthorizeError> {
        let expired = || {
            AuthorizeError::Page(
                "This sign-in link has expired. Go back to the application and start again.".into(),
            )
        };
        if id.len() > 64 {
            return Err(expired());
        }
        let request = self
            .store
            .authorization_request(id, now)
            .await
            .map_err(|_| AuthorizeError::Page("The service is temporarily unavailable.".into()))?
            .ok_or_else(expired)?;
        let client = self
            .client(&request.client_id)
            .await
            .ok()
            .flatten()
            .ok_or_else(expired)?;
        Ok((request, client))
    }

    /// Sign in an end customer of the client's partner: an account member or a customer.
    pub async fn page_login(
        &self,
        client: &Client,
        username: &str,
        password: &str,
        now: i64,
    ) -> Result<Arc<User>, GrantError> {
        let user = self
            .authenticate_user(&client.partner_id, username, password, now)
            .await?;
        if user.role == Role::Admin {
            return Err(GrantError::InvalidGrant(
                "organisation administrators cannot sign in to connect applications",
            ));
        }
        Ok(user)
    }

    /// Register a new end-customer account of the client's partner with its first user.
    pub async fn register_account(
        &self,
        client: &Client,
        account_name: &str,
        email: &str,
        password: &str,
        now: i64,
    ) -> Result<User, GrantError> {
        let mut errors = Vec::new();
        let account_name = account_name.trim();
        if account_name.is_empty() || account_name.chars().count() > MAX_NAME_LEN {
            errors.push(crate::FieldError::new(
                "account_name",
                format!("Enter a name of 1 to {MAX_NAME_LEN} characters."),
            ));
        }
        let email = normalize_username(email);
        let email_ok = email
            .split_once('@')
            .is_some_and(|(l, d)| !l.is_empty() && d.contains('.'))
            && email.len() <= crate::policy::MAX_EMAIL_LEN;
        if !email_ok {
            errors.push(crate::FieldError::new(
                "email",
                "Enter a valid email address.",
            ));
        }
        if let Err(why) = check_strength(password) {
            errors.push(crate::FieldError::new("password", sentence(&why)));
        }
        if !errors.is_empty() {
            return Err(GrantError::Validation(errors));
        }
        if self.user(&client.partner_id, &email).await?.is_some() {
            return Err(GrantError::field(
                "email",
                "An account with this email already exists. Sign in instead.",
            ));
        }
        let account = Account {
            id: new_id(),
            partner_id: client.partner_id.clone(),
            name: account_name.to_string(),
            external_id: None,
            created_at: now,
        };
        self.store.insert_account(&account).await?;
        let user = User {
            id: new_id(),
            partner_id: client.partner_id.clone(),
            account_id: Some(account.id.clone()),
            username: email,
            role: Role::Member,
            password_hash: self.passwords.hash(password).await,
            first_name: None,
            last_name: None,
            external_id: None,
            created_at: now,
        };
        match self.store.insert_user(&user).await {
            Ok(()) => {}
            Err(StoreError::Conflict(_)) => {
                return Err(GrantError::field(
                    "email",
                    "An account with this email already exists. Sign in instead.",
                ));
            }
            Err(e) => return Err(e.into()),
        }
        self.remember_account(account);
        Ok(user)
    }

    /// Start a browser session for `user`; returns the cookie value (shown once, stored hashed).
    pub async fn create_session(&self, user: &User, now: i64) -> Result<Secret, GrantError> {
        let secret = generate(SecretKind::Session);
        self.store
            .insert_session(&Session {
                digest: secret.digest(),
                user_id: user.id.clone(),
                expires_at: now + SESSION_TTL,
            })
            .await?;
        Ok(secret)
    }

    /// The user of a session cookie, if the session is live.
    pub async fn session_user(&self, cookie: &str, now: i64) -> Result<Option<User>, GrantError> {
        if SecretKind::of(cookie) != Some(SecretKind::Session) || cookie.len() > 128 {
            return Ok(None);
        }
        let Some(session) = self.store.session(&SecretDigest::of(cookie), now).await? else {
            return Ok(None);
        };
        Ok(self.store.user_by_id(&session.user_id).await?)
    }

    pub async fn end_session(&self, cookie: &str) -> Result<(), GrantError> {
        if SecretKind::of(cookie) == Some(SecretKind::Session) {
            self.store.delete_session(&SecretDigest::of(cookie)).await?;
        }
        Ok(())
    }

    /// Whether `user` must still consent to the request's scopes.
    pub async fn consent_needed(
        &self,
        request: &AuthorizationRequest,
        user: &User,
    ) -> Result<bool, GrantError> {
        let requested = ScopeSet::parse(&request.scope).map_err(|_| GrantError::Internal)?;
        Ok(
            match self
                .store
                .active_grant(&user.id, &request.client_id)
                .await?
            {
                Some(g) => !requested.is_subset(&ScopeSet::parse(&g.scope).unwrap_or_default()),
                None => true,
            },
        )
    }

    /// What the consent page shows: the application and each scope with a human description.
    pub async fn consent_view(
        &self,
        request: &AuthorizationRequest,
        client: &Client,
    ) -> Result<ConsentView, GrantError> {
        let described: std::collections::HashMap<String, Option<String>> =
            self.store.scope_descriptions().await?.into_iter().collect();
        let scopes = request
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| {
                let text = described
                    .get(s)
                    .cloned()
                    .flatten()
                    .unwrap_or_else(|| format!("Use “{s}” on your behalf"));
                (s.to_string(), text)
            })
            .collect();
        Ok(ConsentView {
            client_name: client.name.clone(),
            scopes,
        })
    }

    /// The user approved (or had approved before): record the grant, mint a code, and return
    /// the redirect back to the client.
    pub async fn approve(
        &self,
        request: &AuthorizationRequest,
        user: &User,
        now: i64,
    ) -> Result<String, GrantError> {
        let grant = self
            .store
            .upsert_grant(&user.id, &request.client_id, &request.scope, now)
            .await?;
        let code = generate(SecretKind::AuthorizationCode);
        self.store
            .insert_authorization_code(&AuthorizationCode {
                digest: code.digest(),
                client_id: request.client_id.clone(),
                redirect_uri: request.redirect_uri.clone(),
                code_challenge: request.code_challenge.clone(),
                code_challenge_method: request.code_challenge_method.clone(),
                user_id: user.id.clone(),
                account_id: user.account_id.clone(),
                scope: request.scope.clone(),
                grant_id: grant.id,
                family_id: new_id(),
                expires_at: now + AUTHORIZATION_CODE_TTL,
                used_at: None,
            })
            .await?;
        let mut params = vec![("code", code.expose())];
        if let Some(state) = &request.state {
            params.push(("state", state.as_str()));
        }
        params.push(("iss", self.config.issuer.as_str()));
        Ok(with_query(&request.redirect_uri, &params))
    }

    /// The redirect for an authorization error (RFC 6749 §4.1.2.1 with RFC 9207 `iss`).
    pub fn error_redirect(
        &self,
        redirect_uri: &str,
        state: Option<&str>,
        error: &str,
        description: &str,
    ) -> String {
        let mut params = vec![("error", error), ("error_description", description)];
        if let Some(s) = state {
            params.push(("state", s));
        }
        params.push(("iss", self.config.issuer.as_str()));
        with_query(redirect_uri, &params)
    }

    /// The user's connected applications: each active grant with its client's name.
    pub async fn user_grants(&self, user: &User) -> Result<Vec<(Grant, String)>, GrantError> {
        let mut out = Vec::new();
        for g in self.store.list_grants(&user.id).await? {
            let name = self
                .client(&g.client_id)
                .await?
                .map_or_else(|| g.client_id.clone(), |c| c.name.clone());
            out.push((g, name));
        }
        Ok(out)
    }

    /// Revoke the user's consent for a client: its refresh tokens at once, its access tokens
    /// inactive on every node within a second.
    pub async fn revoke_user_grant(
        &self,
        user: &User,
        client_id: &str,
        now: i64,
    ) -> Result<bool, GrantError> {
        let until = now + crate::policy::MAX_ACCESS_TOKEN_TTL;
        let revoked = self
            .store
            .revoke_grant(&user.id, client_id, until, now)
            .await?;
        if revoked {
            // Apply the revocations to this node now rather than at the next feed poll.
            self.sync(now).await?;
        }
        Ok(revoked)
    }
}

/// A message fragment as a sentence for a page: capitalised, with a full stop.
pub fn sentence(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().collect::<String>() + c.as_str() + ".",
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pkce_follows_rfc_7636_appendix_b() {
        let verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let challenge = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
        assert!(pkce_matches("S256", challenge, verifier));
        assert!(!pkce_matches(
            "S256",
            challenge,
            "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXx"
        ));
        assert!(pkce_matches("plain", verifier, verifier));
        assert!(!pkce_matches("S512", challenge, verifier));
        assert!(pkce_value_ok(verifier));
        assert!(!pkce_value_ok("short"));
        assert!(!pkce_value_ok(&"a".repeat(129)));
        assert!(!pkce_value_ok(&format!("{}+", "a".repeat(50))));
    }

    #[test]
    fn redirects_keep_the_registered_query_and_encode_values() {
        assert_eq!(
            with_query(
                "https://a.example/cb?x=1",
                &[("code", "c d"), ("state", "s&t")]
            ),
            "https://a.example/cb?x=1&code=c+d&state=s%26t"
        );
        assert_eq!(
            with_query("https://a.example/cb", &[("k", "v")]),
            "https://a.example/cb?k=v"
        );
    }
}
