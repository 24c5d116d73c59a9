//! Consent: what the user is asked, the grant their approval records, the code that goes back to
//! the client, and the connected-applications list from which a grant is withdrawn.

use super::SignedIn;
use crate::audit::{AuditEvent, Event};
use crate::engine::Engine;
use crate::error::EngineError;
use crate::model::{AuthorizationCode, AuthorizationRequest, Client, Grant, User};
use crate::policy::AUTHORIZATION_CODE_TTL;
use crate::scope::ScopeSet;
use crate::secret::{SecretKind, generate, new_id};

/// A consent page's content.
pub struct ConsentView {
    pub client_name: String,
    pub scopes: Vec<(String, String)>,
}

/// An approved authorization request: the code for the client, where it goes, and the
/// request's `state`; the server sends the browser there (with `iss`, RFC 9207).
pub struct Approved {
    pub redirect_uri: String,
    /// Shown once; only its digest is stored.
    pub code: crate::secret::Secret,
    pub state: Option<String>,
}

impl Engine {
    /// The user's active grant for the client if it covers the request's scopes (never with
    /// `prompt=consent`); `None`: the user must consent.
    pub async fn covering_grant(
        &self,
        request: &AuthorizationRequest,
        user: &User,
    ) -> Result<Option<Grant>, EngineError> {
        if request.prompts("consent") {
            return Ok(None);
        }
        let requested = ScopeSet::parse(&request.scope).map_err(|_| EngineError::Internal)?;
        Ok(self
            .flows()
            .active_grant(&user.id, &request.client_id)
            .await?
            .filter(|g| requested.is_subset(&ScopeSet::parse(&g.scope).unwrap_or_default())))
    }

    /// What the consent page shows: the application and each scope with a human description.
    pub async fn consent_view(
        &self,
        request: &AuthorizationRequest,
        client: &Client,
    ) -> Result<ConsentView, EngineError> {
        let described: std::collections::HashMap<String, Option<String>> =
            self.scope_descriptions().await?.into_iter().collect();
        let scopes = request
            .scope
            .split(' ')
            .filter(|s| !s.is_empty())
            .map(|s| {
                let openid = crate::scope::OPENID_SCOPES
                    .iter()
                    .find(|(name, _)| request.is_openid() && *name == s)
                    .map(|(_, text)| text.to_string());
                let text = openid
                    .or_else(|| described.get(s).cloned().flatten())
                    .unwrap_or_else(|| format!("Use “{s}” on your behalf"));
                (s.to_string(), text)
            })
            .collect();
        Ok(ConsentView {
            client_name: client.name.clone(),
            scopes,
        })
    }

    /// End a pending request: it is approved or denied once. A second use (a replayed consent,
    /// a second tab) is refused.
    pub async fn consume_authorization(
        &self,
        request: &AuthorizationRequest,
    ) -> Result<(), EngineError> {
        if self
            .flows()
            .consume_authorization_request(&request.id)
            .await?
        {
            Ok(())
        } else {
            Err(EngineError::InvalidGrant(
                "this sign-in request was already used; go back to the application and start again",
            ))
        }
    }

    /// The user approved on the consent page (`covering` is `None`: record the grant), or had
    /// approved before (`covering`, read by [`Engine::covering_grant`]: nothing is written to
    /// it): end the pending request, mint a code bound to the sign-in and to that grant, and
    /// return the redirect back to the client.
    pub async fn approve(
        &self,
        request: &AuthorizationRequest,
        signed_in: &SignedIn,
        covering: Option<&Grant>,
        now: i64,
    ) -> Result<Approved, EngineError> {
        // The pages send an old sign-in to the login page first; this holds whatever they do.
        if !signed_in.satisfies(request) {
            return Err(EngineError::InvalidGrant(
                "this application asks you to sign in again; go back to the application and start again",
            ));
        }
        let user = &signed_in.user;
        self.consume_authorization(request).await?;
        // Only the user's own approval writes a grant. Without a page the code rests on the
        // grant that was read: if it is withdrawn meanwhile, the code's redemption refuses it
        // (the family's start reads the grant), instead of a new grant appearing unasked.
        let grant = match covering {
            Some(g) => g.clone(),
            None => {
                let grant = self
                    .flows()
                    .upsert_grant(&user.id, &request.client_id, &request.scope, now)
                    .await?;
                self.audit(
                    AuditEvent::new(Event::GrantGiven, now)
                        .partner(&user.partner_id)
                        .username(&user.username)
                        .client(&request.client_id)
                        .detail("grant_id", grant.id.as_str())
                        .detail("scope", grant.scope.as_str()),
                );
                grant
            }
        };
        let code = generate(SecretKind::AuthorizationCode);
        self.flows()
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
                nonce: request.nonce.clone(),
                auth_time: Some(signed_in.auth_time),
                sid: Some(signed_in.sid.clone()),
            })
            .await?;
        Ok(Approved {
            redirect_uri: request.redirect_uri.clone(),
            code,
            state: request.state.clone(),
        })
    }

    /// The user's connected applications: each active grant with its client's name.
    pub async fn user_grants(&self, user: &User) -> Result<Vec<(Grant, String)>, EngineError> {
        let mut out = Vec::new();
        for g in self.flows().list_grants(&user.id).await? {
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
    ) -> Result<bool, EngineError> {
        let until = crate::policy::family_revocation_until(now);
        let revoked = self
            .flows()
            .revoke_grant(&user.id, client_id, until, now, &[])
            .await?;
        if revoked {
            self.audit(
                AuditEvent::new(Event::GrantWithdrawn, now)
                    .partner(&user.partner_id)
                    .username(&user.username)
                    .client(client_id)
                    .detail("by", "user"),
            );
            // Apply the revocations to this node now rather than at the next feed poll.
            self.sync(now).await?;
        }
        Ok(revoked)
    }
}
