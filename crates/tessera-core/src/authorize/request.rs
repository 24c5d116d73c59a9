//! `/authorize` (RFC 6749 §4.1.1, RFC 7636 §4.3): validate the request and keep it pending in
//! the database, so that any node can continue the flow.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{AuthorizeError, AuthorizeFailure, AuthorizeParams};
use crate::caller::{Caller, effective_scope};
use crate::engine::Engine;
use crate::model::{AuthorizationRequest, Client, GrantType};
use crate::pkce::pkce_value_ok;
use crate::policy::{AUTHORIZATION_REQUEST_TTL, MAX_NONCE_LEN, MAX_STATE_LEN};
use crate::scope::ScopeSet;
use crate::secret::random_bytes;

impl Engine {
    /// Validate an `/authorize` request and store it as pending. `origin` is an opaque label of
    /// the front end that received it (the server keeps its dialect there, to answer later
    /// errors in the same words); the engine stores it and never reads it. A request that names
    /// a `request_uri` is one the client pushed (RFC 9126): it is taken instead (see `pushed`).
    pub async fn begin_authorization(
        &self,
        params: AuthorizeParams,
        origin: &str,
        now: i64,
    ) -> Result<(AuthorizationRequest, Arc<Client>), AuthorizeError> {
        let page = |m: &str| AuthorizeError::Page(m.to_string());
        if params
            .request_uri
            .as_deref()
            .is_some_and(|uri| uri.starts_with(super::REQUEST_URI_PREFIX))
        {
            return self.take_pushed(&params, origin, now).await;
        }
        let client_id = params
            .client_id
            .as_deref()
            .filter(|c| !c.is_empty() && c.len() <= 128)
            .ok_or_else(|| page("The request names no client (client_id is missing)."))?;
        let client = self.active_client(client_id).await?;
        let redirect_uri = self.redirect_uri(&client, &params).map_err(|why| {
            page(match why {
                RedirectProblem::Unregistered => {
                    "The application asked to send you to an address it has not registered, so \
                     Tessera stopped here."
                }
                RedirectProblem::Missing => {
                    "The request does not say where to return (redirect_uri is missing)."
                }
            })
        })?;
        if client.require_par {
            return Err(AuthorizeError::Redirect {
                redirect_uri,
                state: params.state.clone(),
                failure: AuthorizeFailure::InvalidRequest,
                description: "this client must push its authorization requests (RFC 9126): \
                              POST them to the pushed authorization request endpoint and send \
                              only client_id and request_uri here"
                    .into(),
            });
        }
        let request = self
            .validate_authorization(&params, &client, redirect_uri, origin, now)
            .await?;
        self.keep_pending(request, client).await
    }

    /// The client a request names, if registered and not disabled (a page otherwise: nothing
    /// is redirected before the client is known).
    pub(super) async fn active_client(&self, id: &str) -> Result<Arc<Client>, AuthorizeError> {
        let page = |m: &str| AuthorizeError::Page(m.to_string());
        let client = self
            .client(id)
            .await
            .map_err(|_| page("The service is temporarily unavailable. Try again shortly."))?
            .ok_or_else(|| page("The application that sent you here is not registered."))?;
        if client.disabled {
            return Err(page(DISABLED));
        }
        Ok(client)
    }

    /// Store `request` as pending; a failure goes back to the client, whose redirect URI the
    /// request holds.
    pub(super) async fn keep_pending(
        &self,
        request: AuthorizationRequest,
        client: Arc<Client>,
    ) -> Result<(AuthorizationRequest, Arc<Client>), AuthorizeError> {
        self.flows()
            .insert_authorization_request(&request)
            .await
            .map_err(|_| AuthorizeError::Redirect {
                redirect_uri: request.redirect_uri.clone(),
                state: request.state.clone(),
                failure: AuthorizeFailure::ServerError,
                description: "temporarily unavailable".into(),
            })?;
        Ok((request, client))
    }

    /// The redirect URI of a request of `client`: the one it names if registered, or the
    /// client's only one.
    pub(super) fn redirect_uri(
        &self,
        client: &Client,
        params: &AuthorizeParams,
    ) -> Result<String, RedirectProblem> {
        let dev_redirect = self.config.dev_redirect_uri.as_deref();
        match params.redirect_uri.as_deref() {
            Some(uri) if client.redirect_uris.iter().any(|r| r == uri) => Ok(uri.to_string()),
            Some(uri) if client.dev && dev_redirect == Some(uri) => Ok(uri.to_string()),
            Some(_) => Err(RedirectProblem::Unregistered),
            None if client.redirect_uris.len() == 1 => Ok(client.redirect_uris[0].clone()),
            None => Err(RedirectProblem::Missing),
        }
    }

    /// Check every parameter of a request of `client` whose redirect URI is trusted, and make
    /// the pending request (not stored): what `/authorize` and a push share.
    pub(super) async fn validate_authorization(
        &self,
        params: &AuthorizeParams,
        client: &Arc<Client>,
        redirect_uri: String,
        origin: &str,
        now: i64,
    ) -> Result<AuthorizationRequest, AuthorizeError> {
        let page = |m: &str| AuthorizeError::Page(m.to_string());
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
        // RFC 9700 §2.1.1: plain only where the client was registered for it.
        if method == "plain" && !client.pkce_plain {
            return Err(fail(
                AuthorizeFailure::CodeChallengeMethodUnsupported,
                "this client must use code_challenge_method=S256",
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
            client: Arc::clone(client),
            partner,
        };
        // Never echo request input into a redirect (RFC 9700 §4.1; a reflected-markup vector).
        let requested = ScopeSet::parse(params.scope.as_deref().unwrap_or("")).map_err(|_| {
            fail(
                AuthorizeFailure::InvalidScope,
                "the scope parameter is malformed: send registered scope names separated by spaces",
            )
        })?;
        // With `openid`, the OpenID Connect scopes are the flow's own, open to every client of
        // it; the rest must lie within the client's, and only those asked for are granted: an
        // app that only signs users in gets no API access. Without `openid`, `profile` or
        // `email` are whatever the partner registered, and no scope means the client's own.
        let (openid, requested) = if requested.contains(crate::scope::OPENID) {
            requested.split_openid()
        } else {
            (ScopeSet::default(), requested)
        };
        let api = if !openid.is_empty() && requested.is_empty() {
            Ok(ScopeSet::default())
        } else {
            effective_scope(requested, &caller)
        };
        let scope = api
            .map_err(|_| {
                fail(
                    AuthorizeFailure::InvalidScope,
                    "a requested scope is not allowed for this client",
                )
            })?
            .union(openid);
        if params.request.is_some() {
            return Err(fail(
                AuthorizeFailure::RequestNotSupported,
                "request objects are not supported: send the parameters in the query",
            ));
        }
        if params
            .response_mode
            .as_deref()
            .is_some_and(|m| m != "query")
        {
            return Err(fail(
                AuthorizeFailure::InvalidRequest,
                "response_mode must be query",
            ));
        }
        if params.request_uri.is_some() {
            return Err(fail(
                AuthorizeFailure::RequestUriNotSupported,
                "request_uri must be one this server's pushed authorization request endpoint \
                 returned: request objects by reference are not supported",
            ));
        }
        let oidc = openid_params(params, now)
            .map_err(|why| fail(AuthorizeFailure::InvalidRequest, why))?;
        // OpenID Connect Core §3.1.2.1: the hint must be an ID token of ours for this client; the
        // user it names is the only one who may complete the request.
        let subject = match params.id_token_hint.as_deref() {
            None => None,
            Some(hint) => Some(
                self.id_token_hint_subject(hint, &client.id)
                    .ok_or_else(|| {
                        fail(
                            AuthorizeFailure::InvalidRequest,
                            "id_token_hint is not an ID token this server issued to this client",
                        )
                    })?,
            ),
        };
        Ok(AuthorizationRequest {
            id: URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
            client_id: client.id.clone(),
            redirect_uri: redirect_uri.clone(),
            scope: scope.to_claim(),
            state: params.state.clone(),
            code_challenge: challenge,
            code_challenge_method: method,
            dialect: origin.to_string(),
            expires_at: now + AUTHORIZATION_REQUEST_TTL,
            nonce: oidc.nonce,
            prompt: oidc.prompt,
            min_auth_time: oidc.min_auth_time,
            login_sid: None,
            subject,
        })
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
        // A pushed request is continued only through its reference (`take_pushed`).
        if id.len() > 64 || super::pushed::is_pushed_id(id) {
            return Err(expired());
        }
        let request = self
            .flows()
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
        // Disabled since the request began: no page of it continues, so no code is minted
        // that re-enabling the client would make good (found by the attack on PAR).
        if client.disabled {
            return Err(AuthorizeError::Page(DISABLED.into()));
        }
        Ok((request, client))
    }
}

/// The page of a request whose client is disabled.
const DISABLED: &str =
    "The application that sent you here is disabled. Ask its provider, then start again.";

/// Why a request's redirect URI cannot be trusted.
pub(super) enum RedirectProblem {
    /// It names one the client did not register.
    Unregistered,
    /// It names none, and the client registered several.
    Missing,
}

/// `nonce`, `prompt` and `max_age`, validated (OpenID Connect Core §3.1.2.1).
struct OpenIdParams {
    nonce: Option<String>,
    prompt: Option<String>,
    min_auth_time: Option<i64>,
}

fn openid_params(params: &AuthorizeParams, now: i64) -> Result<OpenIdParams, &'static str> {
    let nonce = match params.nonce.as_deref() {
        None => None,
        Some(n) if n.is_empty() || n.len() > MAX_NONCE_LEN => {
            return Err("nonce must be 1 to 255 characters");
        }
        Some(n) if !n.bytes().all(|b| (0x21..=0x7e).contains(&b)) => {
            return Err("nonce must be printable ASCII without spaces");
        }
        Some(n) => Some(n.to_string()),
    };
    let mut prompts: Vec<&str> = Vec::with_capacity(3);
    for value in params.prompt.as_deref().unwrap_or("").split(' ') {
        match value {
            "" => {}
            "none" | "login" | "consent" => {
                if !prompts.contains(&value) {
                    prompts.push(value);
                }
            }
            "select_account" => return Err("prompt=select_account is not supported"),
            _ => return Err("prompt must be none, login or consent"),
        }
    }
    if prompts.contains(&"none") && prompts.len() > 1 {
        return Err("prompt=none cannot be combined with other prompt values");
    }
    let max_age = match params.max_age.as_deref() {
        None => None,
        Some(v) => match v.parse::<u32>() {
            Ok(age) => Some(i64::from(age)),
            Err(_) => return Err("max_age must be a whole number of seconds"),
        },
    };
    // max_age=0 asks for a sign-in now: prompt=login, which only a sign-in on the request's
    // own login form satisfies (a time check in whole seconds would accept a session of the
    // same second). A positive max_age is a time: the oldest sign-in it accepts.
    if max_age == Some(0) && !prompts.contains(&"login") {
        if prompts.contains(&"none") {
            return Err("prompt=none cannot be combined with max_age=0");
        }
        prompts.push("login");
    }
    let min_auth_time = max_age.filter(|&age| age > 0).map(|age| now - age);
    Ok(OpenIdParams {
        nonce,
        prompt: (!prompts.is_empty()).then(|| prompts.join(" ")),
        min_auth_time,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(nonce: Option<&str>, prompt: Option<&str>, max_age: Option<&str>) -> AuthorizeParams {
        AuthorizeParams {
            nonce: nonce.map(str::to_string),
            prompt: prompt.map(str::to_string),
            max_age: max_age.map(str::to_string),
            ..Default::default()
        }
    }

    #[test]
    fn prompt_login_and_max_age_set_the_oldest_acceptable_sign_in() {
        let now = 1_000_000;
        let p = openid_params(&params(None, None, None), now).unwrap();
        assert_eq!((p.prompt, p.min_auth_time), (None, None));
        // prompt=login is no time: only a sign-in on the request's own form satisfies it.
        let p = openid_params(&params(None, Some("login consent"), None), now).unwrap();
        assert_eq!(p.prompt.as_deref(), Some("login consent"));
        assert_eq!(p.min_auth_time, None);
        let p = openid_params(&params(None, None, Some("300")), now).unwrap();
        assert_eq!(p.min_auth_time, Some(now - 300));
        let p = openid_params(&params(None, Some("login"), Some("300")), now).unwrap();
        assert_eq!(
            (p.prompt.as_deref(), p.min_auth_time),
            (Some("login"), Some(now - 300))
        );
        // max_age=0 is prompt=login.
        let p = openid_params(&params(None, None, Some("0")), now).unwrap();
        assert_eq!(
            (p.prompt.as_deref(), p.min_auth_time),
            (Some("login"), None)
        );
        assert!(openid_params(&params(None, Some("none"), Some("0")), now).is_err());
    }

    #[test]
    fn bad_openid_parameters_are_refused() {
        let now = 0;
        for (n, p, a) in [
            (Some(""), None, None),
            (Some("has space"), None, None),
            (None, Some("none login"), None),
            (None, Some("select_account"), None),
            (None, Some("always"), None),
            (None, None, Some("-1")),
            (None, None, Some("soon")),
        ] {
            assert!(
                openid_params(&params(n, p, a), now).is_err(),
                "{n:?} {p:?} {a:?}"
            );
        }
        let long = "n".repeat(MAX_NONCE_LEN + 1);
        assert!(openid_params(&params(Some(&long), None, None), now).is_err());
        let ok = openid_params(&params(Some("n-0S6_WzA2Mj"), Some("none"), None), now).unwrap();
        assert_eq!(ok.nonce.as_deref(), Some("n-0S6_WzA2Mj"));
    }
}
