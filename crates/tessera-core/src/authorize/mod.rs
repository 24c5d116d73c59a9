//! The front half of the authorization-code flow (RFC 6749 §4.1, RFC 7636, RFC 9207): validating
//! `/authorize`, signing the user in (or registering an account), consent, and the code that goes
//! back to the client. The pages in `tessera-server` call these; the back half is the
//! `authorization_code` grant.
//!
//! Errors before the redirect URI is known to be registered for the client are shown on an error
//! page and never redirected (RFC 6749 §4.1.2.1, RFC 9700 §4.1); every later error is a value
//! (`AuthorizeError::Redirect`) that the server sends back with `error`, `error_description`,
//! `state` and `iss`, as it sends an approval ([`Approved`]) back with `code`, `state` and
//! `iss`: this crate builds no URL.
//!
//! OpenID Connect (Core 1.0) rides on the same flow: the `openid` scope, `nonce` (bound to the
//! code), `prompt` and `max_age` are checked in `request`, the sign-in time and session id go
//! into the code at consent, and the `authorization_code` grant mints the ID token.
//!
//! By step: `request` validates `/authorize` and keeps the pending request (`pushed` does the
//! same for a request the client pushed first, RFC 9126, and takes it back), `session` signs
//! the user in or registers an account and keeps the browser session, `consent` records the
//! user's grant, mints the code, and lists and withdraws grants. PKCE is in [`crate::pkce`].

mod consent;
mod pushed;
mod request;
mod session;

pub use consent::{Approved, ConsentView};
pub use pushed::{PUSHED_REQUEST_TTL, Pushed, REQUEST_URI_PREFIX};
pub use session::SignedIn;

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
    /// OpenID Connect Core §3.1.2.1.
    pub nonce: Option<String>,
    pub prompt: Option<String>,
    pub max_age: Option<String>,
    /// Request objects (Core §6) and response modes other than `query` are not supported;
    /// they are read only to be refused rather than silently ignored.
    pub request: Option<String>,
    /// A reference to a request the client pushed (RFC 9126); any other `request_uri` (a
    /// request object by reference) is refused.
    pub request_uri: Option<String>,
    pub response_mode: Option<String>,
    /// An ID token naming the user the client expects (Core §3.1.2.1); the server checks it
    /// against the browser's session.
    pub id_token_hint: Option<String>,
}

impl AuthorizeParams {
    /// Set the parameter `name` (as RFC 6749, RFC 7636 and OpenID Connect name it); any other
    /// name is ignored (RFC 6749 §3.1). The caller refuses a repeated parameter.
    pub fn set(&mut self, name: &str, value: String) {
        let slot = match name {
            "response_type" => &mut self.response_type,
            "client_id" => &mut self.client_id,
            "redirect_uri" => &mut self.redirect_uri,
            "scope" => &mut self.scope,
            "state" => &mut self.state,
            "code_challenge" => &mut self.code_challenge,
            "code_challenge_method" => &mut self.code_challenge_method,
            "nonce" => &mut self.nonce,
            "prompt" => &mut self.prompt,
            "max_age" => &mut self.max_age,
            "request" => &mut self.request,
            "request_uri" => &mut self.request_uri,
            "response_mode" => &mut self.response_mode,
            "id_token_hint" => &mut self.id_token_hint,
            _ => return,
        };
        *slot = Some(value);
    }
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
    /// OpenID Connect `prompt=none` without a (recent enough) sign-in.
    LoginRequired,
    /// OpenID Connect `prompt=none` where the user has not consented to the scopes.
    ConsentRequired,
    /// OpenID Connect `request` (a request object), which Tessera does not support.
    RequestNotSupported,
    /// A `request_uri` other than a pushed request's (a request object by reference).
    RequestUriNotSupported,
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
