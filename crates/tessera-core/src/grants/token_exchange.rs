//! RFC 8693 token exchange.
//!
//! Partner dialect (seed 000, Step 3): a partner trades its own machine_token for a client access
//! token and a refresh token that act for one of its accounts (`requested_subject`); the token
//! names the account in `sub` and `account_id` and the partner in `act` (§4.1).
//!
//! Standard dialect: a client presents its partner's machine token, or a Tessera access token
//! issued **to itself** (`subject_token_type` access_token, jwt or the machine-token type), and
//! gets a token for the same subject; with the machine token only, `requested_subject` (as
//! Keycloak accepts it) names one of the partner's accounts. The actor is the `actor_token`'s subject when one is given,
//! else the client; an actor already in the subject token is nested under it (§4.1 delegation
//! chain).
//!
//! What an exchange yields never outgrows what it came from (RFC 9700 §2.2: no laundering of a
//! token past its client, its consent or its lifetime). Only a machine token starts a new
//! refresh family (with a refresh token when the caller may refresh). Any other subject yields a
//! token without a refresh token that lives no longer than the subject and stays bound to it: it
//! carries the subject's `sid` (its refresh family, under the user's grant), or the subject's
//! `jti` when it has none, and in `exchanged_from` the `jti`s of the subject and of every token
//! the subject was itself exchanged from, so revoking the subject's family, its grant, the
//! subject token or any token before it in the chain revokes the exchanged token too.

use crate::caller::{Caller, require_within};
use crate::engine::Engine;
use crate::error::{EngineError, Field};
use crate::grants::{Issued, base_claims, new_jti};
use crate::jwt::{Actor, Claims, TokenUse};
pub use crate::model::TokenType;
use crate::model::{GrantType, RefreshToken};
use crate::scope::ScopeSet;
use crate::secret::{SecretKind, generate};

pub struct Request {
    /// A bearer credential: never printed by `Debug`.
    pub subject_token: String,
    pub subject_token_type: TokenType,
    /// The account to act for; required when a partner exchanges its machine token.
    pub requested_subject: Option<String>,
    /// Empty means "the subject token's scope".
    pub scope: ScopeSet,
    /// A Tessera access token naming the actor (its type checked by the dialect); never
    /// printed by `Debug`.
    pub actor_token: Option<String>,
    pub audience: Option<String>,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenExchange")
            .field("subject_token", &"<redacted>")
            .field("subject_token_type", &self.subject_token_type)
            .field("requested_subject", &self.requested_subject)
            .field("scope", &self.scope)
            .field(
                "actor_token",
                &self.actor_token.as_ref().map(|_| "<redacted>"),
            )
            .field("audience", &self.audience)
            .finish()
    }
}

#[tracing::instrument(skip_all, name = "token_exchange", fields(client_id = caller.client_id()))]
pub async fn grant(
    engine: &Engine,
    caller: &Caller,
    request: Request,
    now: i64,
) -> Result<Issued, EngineError> {
    let partner = caller.partner();
    let type_ok = match caller {
        Caller::Partner(_) => request.subject_token_type == TokenType::MachineToken,
        Caller::Client { .. } => request.subject_token_type != TokenType::Unrecognised,
    };
    if !type_ok {
        return Err(EngineError::SubjectTokenTypeMismatch {
            expected: match caller {
                Caller::Partner(_) => TokenType::MachineToken,
                Caller::Client { .. } => TokenType::AccessToken,
            },
        });
    }
    if let Some(aud) = &request.audience
        && aud != &engine.config.audience
        && aud != &engine.config.issuer
    {
        return Err(EngineError::InvalidTarget);
    }
    let subject = engine.verify_token(&request.subject_token, now)?;
    let is_machine = subject.token_use == TokenUse::MachineToken;
    if (request.subject_token_type == TokenType::MachineToken
        || matches!(caller, Caller::Partner(_)))
        && !is_machine
    {
        return Err(EngineError::SubjectTokenTypeMismatch {
            expected: TokenType::MachineToken,
        });
    }
    if subject.partner_id.as_deref() != Some(partner.id.as_str()) {
        return Err(EngineError::RequestedSubjectMismatch);
    }
    // Another client's token (a user's consent to *that* client) is not this client's to trade.
    if !is_machine && subject.client_id != caller.client_id() {
        return Err(EngineError::ClientIdMismatch);
    }
    let granted = ScopeSet::parse(&subject.scope).map_err(|_| EngineError::Internal)?;
    let scope = if request.scope.is_empty() {
        if matches!(caller, Caller::Partner(_)) {
            return Err(EngineError::field(
                Field::Scope,
                "request at least one scope",
            ));
        }
        // The subject's scopes, without OpenID Connect's: they are about a sign-in, and an
        // exchanged token is for the partner's API.
        if granted.contains(crate::scope::OPENID) {
            let api = granted.clone().split_openid().1;
            if api.is_empty() {
                return Err(EngineError::InvalidGrant(
                    "the subject token grants no API scope: it is a sign-in's, without access",
                ));
            }
            api
        } else {
            granted.clone()
        }
    } else {
        request.scope
    };
    require_within(&scope, &granted)?;
    require_within(&scope, &caller.allowed_scopes())?;

    let actor = match &request.actor_token {
        Some(token) => {
            let a = engine.verify_token(token, now)?;
            if a.partner_id.as_deref() != Some(partner.id.as_str()) {
                return Err(EngineError::RequestedSubjectMismatch);
            }
            // The same rule as for the subject: the partner's machine token or the caller's own.
            if a.token_use != TokenUse::MachineToken && a.client_id != caller.client_id() {
                return Err(EngineError::ClientIdMismatch);
            }
            a.sub
        }
        None => caller.client_id().to_string(),
    };

    let (sub, account_id) = match (&request.requested_subject, caller) {
        // Acting for another account is the partner's to grant: only its machine token may
        // name one. A user's consent (or a client's own app token) stays with its own subject.
        (Some(account), _)
            if !is_machine && subject.account_id.as_deref() != Some(account.as_str()) =>
        {
            return Err(EngineError::InvalidGrant(
                "requested_subject needs the partner's machine token as subject_token",
            ));
        }
        (Some(account), _) => {
            let account = engine
                .account(account)
                .await?
                .filter(|a| a.partner_id == partner.id)
                .ok_or(EngineError::NotPartnersResource("account"))?;
            (account.id.clone(), Some(account.id.clone()))
        }
        (None, Caller::Partner(_)) => {
            return Err(EngineError::field(Field::RequestedSubject, "is required"));
        }
        (None, Caller::Client { .. }) => (subject.sub.clone(), subject.account_id.clone()),
    };
    let act = Actor {
        sub: actor,
        act: subject.act.clone().map(Box::new),
    };

    let wants_refresh = is_machine
        && match caller {
            Caller::Partner(_) => true,
            Caller::Client { client, .. } => client.grant_types.contains(&GrantType::RefreshToken),
        };
    let (refresh, sid) = if wants_refresh {
        let refresh = generate(SecretKind::RefreshToken);
        let family_id = new_jti();
        let record = RefreshToken {
            digest: refresh.digest(),
            family_id: family_id.clone(),
            partner_id: partner.id.clone(),
            client_id: caller.client_id().to_string(),
            subject: sub.clone(),
            account_id: account_id.clone(),
            scope: scope.to_claim(),
            issued_at: now,
            expires_at: engine.config.first_refresh_expiry(now),
            family_issued_at: now,
            rotated_at: None,
            revoked_at: None,
            grant_id: None,
            actor: Some(act.clone()),
        };
        // Durable before it is shown: the response is built only after the commit.
        engine.tokens().insert_refresh_token(&record).await?;
        (Some(refresh), Some(family_id))
    } else if is_machine {
        (None, None)
    } else {
        (
            None,
            Some(subject.sid.clone().unwrap_or_else(|| subject.jti.clone())),
        )
    };

    // A machine token may be traded for a longer-lived account token (seed 000); anything else
    // lends the exchanged token at most its own remaining lifetime.
    let mut ttl = engine.config.client_access_token_ttl;
    if !is_machine {
        ttl = ttl.min(subject.exp - now).max(1);
    } else if refresh.is_some() {
        ttl = engine.config.ttl_within_family(ttl, now, now);
    }
    let role = if request.requested_subject.is_none() {
        subject.role.clone()
    } else {
        None
    };
    // A token exchanged from another (not from a machine token, which starts a family of its
    // own) goes with it: revoking the subject, or any token it was exchanged from, revokes this.
    let exchanged_from = if is_machine {
        Vec::new()
    } else {
        let mut chain = subject.exchanged_from.clone();
        chain.push(subject.jti.clone());
        chain
    };
    let claims = Claims {
        account_id,
        role,
        act: Some(act),
        sid,
        exchanged_from,
        ..base_claims(
            engine,
            caller,
            sub,
            scope.to_claim(),
            TokenUse::ClientAccessToken,
            ttl,
            now,
        )
    };
    Ok(Issued {
        access_token: engine.mint(&claims),
        jti: claims.jti.clone(),
        subject: claims.sub.clone(),
        expires_in: ttl,
        refresh_token: refresh,
        scope,
        token_use: TokenUse::ClientAccessToken,
        id_token: None,
    })
}

/// Claims of a client access token for the subject (and family) of a refresh-token record; the
/// actor is the one the family's exchange named.
pub(crate) fn account_claims(
    engine: &Engine,
    caller: &Caller,
    record: &RefreshToken,
    ttl: i64,
    now: i64,
) -> Claims {
    Claims {
        client_id: record.client_id.clone(),
        partner_id: Some(record.partner_id.clone()),
        account_id: record.account_id.clone(),
        // The family's original actor; for families from before actors were kept, the client.
        act: Some(record.actor.clone().unwrap_or(Actor {
            sub: record.client_id.clone(),
            act: None,
        })),
        sid: Some(record.family_id.clone()),
        ..base_claims(
            engine,
            caller,
            record.subject.clone(),
            record.scope.clone(),
            TokenUse::ClientAccessToken,
            ttl,
            now,
        )
    }
}
