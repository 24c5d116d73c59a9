//! Pushed authorization requests (RFC 9126): the client posts its authorization request,
//! authenticated, to the server directly and gets back a `request_uri`; the browser then carries
//! only `client_id` and that reference to `/authorize`. The request's parameters never pass
//! through the browser, so they cannot be read or altered there, and the client is known
//! before the user sees a page.
//!
//! A pushed request is validated exactly as `/authorize` validates one, and kept as a pending
//! request under the digest of its reference for [`PUSHED_REQUEST_TTL`] seconds. `/authorize`
//! takes it once: the store's delete decides which of two concurrent uses wins, on every node,
//! and the winner continues under a fresh pending id, as a request sent in the query does.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::request::RedirectProblem;
use super::{AuthorizeError, AuthorizeFailure, AuthorizeParams};
use crate::caller::Caller;
use crate::engine::Engine;
use crate::error::EngineError;
use crate::model::{AuthorizationRequest, Client};
use crate::policy::AUTHORIZATION_REQUEST_TTL;
use crate::secret::{SecretDigest, random_bytes};

/// How long a pushed request waits for `/authorize` (RFC 9126 §2.2: short; FAPI 2.0 asks for
/// under 600 seconds, and the browser is sent there at once).
pub const PUSHED_REQUEST_TTL: i64 = 60;

/// The prefix of every `request_uri` this server returns (RFC 9126 §2.2).
pub const REQUEST_URI_PREFIX: &str = "urn:ietf:params:oauth:request_uri:";

/// Pending ids of pushed requests start with this; a random pending id never does (it is
/// base64url, without dots), so a pushed request is never continued by its stored id.
const PUSHED_ID_PREFIX: &str = "par.";

/// A request the client pushed: what the pushed authorization request endpoint answers.
pub struct Pushed {
    /// `urn:ietf:params:oauth:request_uri:` and 32 random bytes in base64url.
    pub request_uri: String,
    pub expires_in: i64,
}

/// The reference starts the user's flow for the client: not for logs.
impl std::fmt::Debug for Pushed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pushed")
            .field("expires_in", &self.expires_in)
            .finish_non_exhaustive()
    }
}

fn invalid(description: &str) -> EngineError {
    EngineError::AuthorizationRequest {
        failure: AuthorizeFailure::InvalidRequest,
        description: description.to_string(),
    }
}

/// The id a pushed request is stored under: a digest of its reference, so that the database
/// holds nothing a browser could present.
fn pushed_id(reference: &str) -> String {
    format!(
        "{PUSHED_ID_PREFIX}{}",
        URL_SAFE_NO_PAD.encode(SecretDigest::of(reference).0)
    )
}

/// Whether `id` names a pushed request (which only `/authorize` may take, by its reference).
pub(super) fn is_pushed_id(id: &str) -> bool {
    id.starts_with(PUSHED_ID_PREFIX)
}

impl Engine {
    /// RFC 9126 §2: validate `params` for `caller`'s client as `/authorize` would and keep the
    /// request for [`PUSHED_REQUEST_TTL`] seconds. `caller` is an authenticated client (whose
    /// own id `client_id` must be, when given) or partner (whose client `client_id` must name).
    /// Each push stores a row: it counts against the caller's token-request budget.
    pub async fn push_authorization(
        &self,
        caller: &Caller,
        params: AuthorizeParams,
        origin: &str,
        now: i64,
    ) -> Result<Pushed, EngineError> {
        self.check_rate(caller.rate_key()).await?;
        if params.request_uri.is_some() {
            return Err(invalid(
                "request_uri cannot be pushed: send the authorization request's own parameters",
            ));
        }
        let client = match caller {
            Caller::Client { client, .. } => {
                if params
                    .client_id
                    .as_deref()
                    .is_some_and(|id| id != client.id)
                {
                    return Err(invalid(
                        "client_id differs from the client that authenticated the request",
                    ));
                }
                Arc::clone(client)
            }
            Caller::Partner(partner) => {
                let id = params
                    .client_id
                    .as_deref()
                    .filter(|c| !c.is_empty() && c.len() <= 128)
                    .ok_or_else(|| invalid("client_id is required: name one of your clients"))?;
                self.client(id)
                    .await?
                    .filter(|c| c.partner_id == partner.id && !c.disabled)
                    .ok_or(EngineError::NotPartnersResource("client"))?
            }
        };
        let redirect_uri = self
            .redirect_uri(&client, &params)
            .map_err(|why| match why {
                RedirectProblem::Unregistered => {
                    invalid("redirect_uri is not one of the client's registered redirect URIs")
                }
                RedirectProblem::Missing => {
                    invalid("redirect_uri is required: the client registered more than one")
                }
            })?;
        let mut request = self
            .validate_authorization(&params, &client, redirect_uri, origin, now)
            .await
            .map_err(|e| match e {
                AuthorizeError::Page(description) => invalid(&description),
                AuthorizeError::Redirect {
                    failure,
                    description,
                    ..
                } => EngineError::AuthorizationRequest {
                    failure,
                    description,
                },
            })?;
        let reference = URL_SAFE_NO_PAD.encode(random_bytes::<32>());
        request.id = pushed_id(&reference);
        request.expires_at = now + PUSHED_REQUEST_TTL;
        self.flows().insert_authorization_request(&request).await?;
        Ok(Pushed {
            request_uri: format!("{REQUEST_URI_PREFIX}{reference}"),
            expires_in: PUSHED_REQUEST_TTL,
        })
    }

    /// `/authorize` with a `request_uri` (RFC 9126 §4): take the pushed request it names, once,
    /// if `client_id` is its client's, and continue it as a pending request of its own. Every
    /// other parameter of the query is ignored: the pushed ones were validated and are used.
    /// Nothing here is redirected: until the request is found, its redirect URI is unknown.
    pub(super) async fn take_pushed(
        &self,
        params: &AuthorizeParams,
        origin: &str,
        now: i64,
    ) -> Result<(AuthorizationRequest, Arc<Client>), AuthorizeError> {
        let page = |m: &str| AuthorizeError::Page(m.to_string());
        let gone = || {
            page(
                "This sign-in link has expired or was already used. Go back to the application \
                 and start again.",
            )
        };
        let reference = params
            .request_uri
            .as_deref()
            .and_then(|uri| uri.strip_prefix(REQUEST_URI_PREFIX))
            .filter(|r| !r.is_empty() && r.len() <= 64)
            .ok_or_else(|| page("The request's request_uri was not issued by this server."))?;
        let client_id = params
            .client_id
            .as_deref()
            .ok_or_else(|| page("The request names no client (client_id is missing)."))?;
        let id = pushed_id(reference);
        let unavailable = |_| page("The service is temporarily unavailable. Try again shortly.");
        let pushed = self
            .flows()
            .authorization_request(&id, now)
            .await
            .map_err(unavailable)?
            .ok_or_else(gone)?;
        // RFC 9126 §4: the request must be the client's that sends the browser here.
        if pushed.client_id != client_id {
            return Err(page(
                "The request's request_uri belongs to another application, so Tessera stopped here.",
            ));
        }
        // One use, on every node: only the caller whose delete removed the row continues.
        if !self
            .flows()
            .consume_authorization_request(&id)
            .await
            .map_err(unavailable)?
        {
            return Err(gone());
        }
        let client = self.active_client(client_id).await?;
        let request = AuthorizationRequest {
            id: URL_SAFE_NO_PAD.encode(random_bytes::<16>()),
            dialect: origin.to_string(),
            expires_at: now + AUTHORIZATION_REQUEST_TTL,
            ..pushed
        };
        self.keep_pending(request, client).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pushed_request_is_stored_under_a_digest_no_random_id_can_equal() {
        let reference = URL_SAFE_NO_PAD.encode([7u8; 32]);
        let id = pushed_id(&reference);
        assert!(is_pushed_id(&id));
        assert!(!id.contains(&reference), "the reference is not stored");
        assert_eq!(
            id,
            pushed_id(&reference),
            "the same reference, the same row"
        );
        assert_ne!(id, pushed_id(&URL_SAFE_NO_PAD.encode([8u8; 32])));
        // A pending id of a request sent in the query: base64url, never the prefix.
        let random = URL_SAFE_NO_PAD.encode(random_bytes::<16>());
        assert!(!is_pushed_id(&random));
        assert!(id.len() <= 64, "within the pending-id bound of the pages");
    }
}
