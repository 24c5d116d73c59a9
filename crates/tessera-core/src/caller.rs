//! Who is asking ([`Caller`], as a dialect authenticated them) and what they may have: the
//! scope rules every grant and the authorization pages share.

use std::sync::Arc;

use crate::error::EngineError;
use crate::model::{Client, GrantType, Partner};
use crate::scope::ScopeSet;
use crate::store::TokenOwner;

/// Who is asking, as the dialect authenticated them.
#[derive(Clone, Debug)]
pub enum Caller {
    /// A partner, by Basic email:password or a partner API token (partner dialect). The partner
    /// is its own OAuth client: `client_id` claims name the partner id.
    Partner(Arc<Partner>),
    /// A registered OAuth client of a partner, by its id and secret (standard dialect).
    Client {
        client: Arc<Client>,
        partner: Arc<Partner>,
    },
}

impl Caller {
    /// `partner` or `client`, for metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Caller::Partner(_) => "partner",
            Caller::Client { .. } => "client",
        }
    }

    pub fn partner(&self) -> &Arc<Partner> {
        match self {
            Caller::Partner(p) => p,
            Caller::Client { partner, .. } => partner,
        }
    }

    /// The OAuth client id the caller's tokens are issued to.
    pub fn client_id(&self) -> &str {
        match self {
            Caller::Partner(p) => &p.id,
            Caller::Client { client, .. } => &client.id,
        }
    }

    /// Scopes the caller may ask for at all: the partner's, narrowed by the client's.
    pub fn allowed_scopes(&self) -> ScopeSet {
        match self {
            Caller::Partner(p) => p.scopes.clone(),
            Caller::Client { client, partner } => ScopeSet::from_names(
                client
                    .scopes
                    .iter()
                    .filter(|s| partner.scopes.contains(s))
                    .map(str::to_string),
            ),
        }
    }

    /// Whether the caller may use `grant`: partners use the partner dialect's grants; clients
    /// only those registered for them.
    pub fn may_use(&self, grant: GrantType) -> bool {
        match self {
            Caller::Partner(_) => !matches!(grant, GrantType::Password),
            Caller::Client { client, .. } => client.grant_types.contains(&grant),
        }
    }

    /// Whose refresh tokens the caller may use.
    pub fn token_owner(&self) -> TokenOwner {
        match self {
            Caller::Partner(p) => TokenOwner::Partner(p.id.clone()),
            Caller::Client { client, .. } => TokenOwner::Client(client.id.clone()),
        }
    }

    /// Whether the caller may introspect or revoke an access token issued to `client_id` of
    /// `partner_id`: a client only its own tokens (RFC 7009 §2.1), a partner (partner dialect)
    /// every token of its organisation.
    pub fn holds_token(&self, client_id: &str, partner_id: Option<&str>) -> bool {
        match self {
            Caller::Partner(p) => partner_id == Some(p.id.as_str()),
            Caller::Client { client, .. } => {
                client_id == client.id && partner_id == Some(client.partner_id.as_str())
            }
        }
    }

    /// The key its token requests are rate-limited under.
    pub(crate) fn rate_key(&self) -> &str {
        self.client_id()
    }
}

/// The requested scope, or all the caller may have when none was requested (RFC 6749 §3.3),
/// refused when it reaches outside what the caller may have.
pub(crate) fn effective_scope(
    requested: ScopeSet,
    caller: &Caller,
) -> Result<ScopeSet, EngineError> {
    let allowed = caller.allowed_scopes();
    if requested.is_empty() {
        return Ok(allowed);
    }
    require_within(&requested, &allowed)?;
    Ok(requested)
}

/// Refuse scopes outside `allowed`.
pub(crate) fn require_within(requested: &ScopeSet, allowed: &ScopeSet) -> Result<(), EngineError> {
    let outside = requested.outside(allowed);
    if outside.is_empty() {
        Ok(())
    } else {
        Err(EngineError::ScopeForbidden(outside))
    }
}
