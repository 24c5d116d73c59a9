//! The records Tessera keeps, as the engine sees them.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::scope::ScopeSet;
use crate::secret::SecretDigest;

pub use tessera_proto::admin::{AdminScope, PartnerStatus, Role};

/// An Argon2id PHC string. `Debug` does not print it.
#[derive(Clone, PartialEq, Eq)]
pub struct PasswordHash(pub String);

impl fmt::Debug for PasswordHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordHash(<redacted>)")
    }
}

#[derive(Clone, Debug)]
pub struct Partner {
    pub id: String,
    pub name: String,
    /// Lower-cased; unique.
    pub email: String,
    pub org_code: String,
    pub status: PartnerStatus,
    pub scopes: ScopeSet,
    pub password_hash: PasswordHash,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub partner_id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub created_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GrantType {
    ClientCredentials,
    Password,
    RefreshToken,
    AuthorizationCode,
    TokenExchange,
}

impl GrantType {
    pub const ALL: [GrantType; 5] = [
        GrantType::ClientCredentials,
        GrantType::Password,
        GrantType::RefreshToken,
        GrantType::AuthorizationCode,
        GrantType::TokenExchange,
    ];

    /// The grant type's short name: the one operators give (`tessera client create
    /// --grant-types`), metrics label and the audit trail records.
    pub fn name(self) -> &'static str {
        match self {
            GrantType::ClientCredentials => "client_credentials",
            GrantType::Password => "password",
            GrantType::RefreshToken => "refresh_token",
            GrantType::AuthorizationCode => "authorization_code",
            GrantType::TokenExchange => "token_exchange",
        }
    }

    /// The `grant_type` value a token request sends for it (RFC 8693's URN for the exchange).
    pub fn wire(self) -> &'static str {
        use tessera_proto::grant_type as wire;
        match self {
            GrantType::ClientCredentials => wire::CLIENT_CREDENTIALS,
            GrantType::Password => wire::PASSWORD,
            GrantType::RefreshToken => wire::REFRESH_TOKEN,
            GrantType::AuthorizationCode => wire::AUTHORIZATION_CODE,
            GrantType::TokenExchange => wire::TOKEN_EXCHANGE,
        }
    }

    /// The grant type a [`GrantType::name`] or a [`GrantType::wire`] value names.
    pub fn parse(s: &str) -> Option<GrantType> {
        GrantType::ALL
            .into_iter()
            .find(|g| g.name() == s || g.wire() == s)
    }
}

#[derive(Clone, Debug)]
pub struct Client {
    pub id: String,
    pub partner_id: String,
    pub name: String,
    pub secret_digest: SecretDigest,
    pub grant_types: Vec<GrantType>,
    pub scopes: ScopeSet,
    pub redirect_uris: Vec<String>,
    pub frame_origins: Vec<String>,
    pub dev: bool,
    /// Whether PKCE `plain` is accepted (S256 always is).
    pub pkce_plain: bool,
    /// Whether `/authorize` takes this client's requests only by reference to one it pushed
    /// first (RFC 9126 `require_pushed_authorization_requests`).
    pub require_par: bool,
    /// Whether Tessera's registration page may create accounts through this client.
    pub allow_registration: bool,
    /// The secret before the last rotation and until when it still authenticates.
    pub previous_secret: Option<(SecretDigest, i64)>,
    /// A disabled client authenticates no more and its tokens stop verifying.
    pub disabled: bool,
    pub created_at: i64,
}

#[derive(Clone, Debug)]
pub struct User {
    pub id: String,
    pub partner_id: String,
    pub account_id: Option<String>,
    /// Lower-cased email or phone; unique within the partner.
    pub username: String,
    pub role: Role,
    /// Argon2id for passwords people chose; `sha256$<hex>` for a generated `clientUserToken`.
    pub password_hash: PasswordHash,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    /// The partner's own id for this user (`clientUserId` at sign-up).
    pub external_id: Option<String>,
    /// For a customer, the client that signed it up (`POST /v2/api/users/sign-up`): only that
    /// client may sign it up again or sign it in. `None` for staff users and for customers
    /// signed up before Tessera recorded it.
    pub signed_up_by: Option<String>,
    pub created_at: i64,
}

impl User {
    /// Whether this user may sign in through the client `client_id`: anyone of the partner,
    /// except a customer, which signs in only through the client that signed it up.
    pub fn signs_in_through(&self, client_id: &str) -> bool {
        self.role != Role::Customer
            || self
                .signed_up_by
                .as_deref()
                .is_none_or(|owner| owner == client_id)
    }
}

/// One refresh token. The clear token is never stored; `digest` is its SHA-256.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshToken {
    pub digest: SecretDigest,
    /// Every token rotated from one issuance shares the family; revoking it revokes them all.
    pub family_id: String,
    pub partner_id: String,
    pub client_id: String,
    /// Whom the access tokens speak for (`sub`).
    pub subject: String,
    pub account_id: Option<String>,
    pub scope: String,
    pub issued_at: i64,
    pub expires_at: i64,
    /// When the family was first issued; bounds its total life.
    pub family_issued_at: i64,
    pub rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
    /// The user's consent this family rests on (authorization-code flows); revoking the grant
    /// revokes the family.
    pub grant_id: Option<String>,
    /// Who acts for the subject (RFC 8693 `act`), for a family begun by a token exchange: every
    /// access token of the family names the same actor.
    pub actor: Option<crate::jwt::Actor>,
}

/// A refresh family: every token rotated from one issuance, and the access tokens they gave
/// (their `sid`). It is the parent whose revoked state every rotation reads inside its write
/// (see [`crate::store::TokenStore`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefreshFamily {
    pub id: String,
    /// The user's consent the family rests on (authorization-code flows).
    pub grant_id: Option<String>,
    /// When the family began; it ends `refresh_family_lifetime` later.
    pub issued_at: i64,
}

impl RefreshFamily {
    /// The family a family's first token names.
    pub fn of(token: &RefreshToken) -> RefreshFamily {
        RefreshFamily {
            id: token.family_id.clone(),
            grant_id: token.grant_id.clone(),
            issued_at: token.family_issued_at,
        }
    }
}

/// A user's consent that a client may act with some scopes (a "grant").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Grant {
    pub id: String,
    pub user_id: String,
    pub client_id: String,
    /// Space-separated, canonical.
    pub scope: String,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// A pending `/authorize` request, validated, waiting for the user to log in and consent.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationRequest {
    pub id: String,
    pub client_id: String,
    pub redirect_uri: String,
    pub scope: String,
    pub state: Option<String>,
    pub code_challenge: String,
    pub code_challenge_method: String,
    /// Which front end began the request, as the server labels it (its dialect, whose error
    /// codes a later failure redirect carries). Opaque to the engine.
    pub dialect: String,
    pub expires_at: i64,
    /// OpenID Connect: the client's `nonce`, bound to the code and echoed in the ID token.
    pub nonce: Option<String>,
    /// OpenID Connect `prompt`, validated: space-separated `login`, `consent` or `none`
    /// (`max_age=0` adds `login`).
    pub prompt: Option<String>,
    /// The oldest sign-in this request accepts (from `prompt=login` and `max_age`): a browser
    /// session that authenticated earlier must sign in again.
    pub min_auth_time: Option<i64>,
    /// With `prompt=login`: the session created on this request's own login form, the only
    /// one that satisfies it (set by [`crate::store::AuthorizationStore::set_request_login`]).
    pub login_sid: Option<String>,
    /// OpenID Connect `id_token_hint`: the user the hint names. Only that user's sign-in
    /// completes the request, on whichever page it happens.
    pub subject: Option<String>,
}

impl AuthorizationRequest {
    /// Whether `prompt` names `value`.
    pub fn prompts(&self, value: &str) -> bool {
        self.prompt
            .as_deref()
            .is_some_and(|p| p.split(' ').any(|v| v == value))
    }

    /// Whether the request asks for OpenID Connect (an ID token).
    pub fn is_openid(&self) -> bool {
        self.scope.split(' ').any(|s| s == crate::scope::OPENID)
    }
}

/// An authorization code as stored: the SHA-256 of the code and everything it is bound to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuthorizationCode {
    pub digest: SecretDigest,
    pub client_id: String,
    pub redirect_uri: String,
    pub code_challenge: String,
    pub code_challenge_method: String,
    pub user_id: String,
    pub account_id: Option<String>,
    pub scope: String,
    pub grant_id: String,
    /// The refresh family the code's first use issues, so that a second use can revoke it.
    pub family_id: String,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// OpenID Connect: the request's nonce, when sent.
    pub nonce: Option<String>,
    /// When the user last authenticated (the ID token's `auth_time`).
    pub auth_time: Option<i64>,
    /// The browser session's id (the ID token's `sid`).
    pub sid: Option<String>,
}

/// A signed-in browser session on the authorization pages. Only the SHA-256 of the cookie is
/// stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Session {
    pub digest: SecretDigest,
    pub user_id: String,
    pub expires_at: i64,
    /// When the user signed in (entered their password) to start it.
    pub authenticated_at: i64,
}

impl Session {
    /// The session's public id (OpenID Connect `sid`): derived from the stored digest, so it
    /// needs no column and reveals nothing of the cookie.
    pub fn sid(&self) -> String {
        use base64::Engine as _;
        let mut h = aws_lc_rs::digest::Context::new(&aws_lc_rs::digest::SHA256);
        h.update(b"tessera session id v1");
        h.update(&self.digest.0);
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&h.finish().as_ref()[..16])
    }
}

/// Something that changed in the store and that every node's caches must learn of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// A partner's status, password or scopes changed.
    Partner(String),
    /// A partner API token was created or revoked.
    PartnerToken(String),
    Client(String),
    /// A user's password (or `clientUserToken`) changed.
    User {
        partner_id: String,
        username: String,
    },
    Scopes,
    Keys,
    /// A token `jti` or a refresh family `sid` was revoked; the value is when it no longer
    /// matters (the latest expiry of any access token it covers).
    Revoked {
        id: String,
        until: i64,
    },
}

impl Change {
    /// `(kind, key)` as the change feed stores them.
    pub fn encode(&self) -> (&'static str, String) {
        match self {
            Change::Partner(id) => ("partner", id.clone()),
            Change::PartnerToken(id) => ("partner_token", id.clone()),
            Change::Client(id) => ("client", id.clone()),
            Change::User {
                partner_id,
                username,
            } => ("user", format!("{partner_id}:{username}")),
            Change::Scopes => ("scopes", String::new()),
            Change::Keys => ("keys", String::new()),
            Change::Revoked { id, until } => ("revoked", format!("{until}:{id}")),
        }
    }

    pub fn decode(kind: &str, key: &str) -> Option<Change> {
        Some(match kind {
            "partner" => Change::Partner(key.to_string()),
            "partner_token" => Change::PartnerToken(key.to_string()),
            "client" => Change::Client(key.to_string()),
            "user" => {
                let (partner_id, username) = key.split_once(':')?;
                Change::User {
                    partner_id: partner_id.to_string(),
                    username: username.to_string(),
                }
            }
            "scopes" => Change::Scopes,
            "keys" => Change::Keys,
            "revoked" => {
                let (until, id) = key.split_once(':')?;
                Change::Revoked {
                    id: id.to_string(),
                    until: until.parse().ok()?,
                }
            }
            _ => return None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_round_trip_through_the_feed_encoding() {
        for c in [
            Change::Partner("p".into()),
            Change::PartnerToken("p".into()),
            Change::Client("c".into()),
            Change::User {
                partner_id: "p".into(),
                username: "+1:555".into(),
            },
            Change::Scopes,
            Change::Keys,
            Change::Revoked {
                id: "j:1".into(),
                until: 42,
            },
        ] {
            let (k, v) = c.encode();
            assert_eq!(Change::decode(k, &v), Some(c));
        }
        assert_eq!(Change::decode("nope", ""), None);
    }

    #[test]
    fn secrets_stay_out_of_debug() {
        let h = PasswordHash("$argon2id$secret".into());
        assert!(!format!("{h:?}").contains("secret"));
    }
}

/// A `subject_token_type` as the dialect recognised it (RFC 8693 §3 identifiers and seed 000's
/// machine-token type, whose wire names live in `tessera-proto`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenType {
    MachineToken,
    AccessToken,
    Jwt,
    /// Anything else: refused, with the type the caller should have sent.
    Unrecognised,
}

/// An operator's token for the admin HTTP API: only its SHA-256 is stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdminToken {
    pub id: String,
    pub name: String,
    pub digest: SecretDigest,
    pub scopes: Vec<AdminScope>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// What the store holds for an `Idempotency-Key`: the request's fingerprint, whether a change
/// of the request committed, and, once the request finished, its answer as the caller kept it
/// (sealed, and opaque to the store).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdempotentRecord {
    pub fingerprint: SecretDigest,
    /// An audited change of the request that reserved the key committed (set in the change's
    /// own transaction, from its `admin.change` event's request id).
    pub carried_out: bool,
    pub answer: Option<Vec<u8>>,
    /// When the first request with the key began.
    pub reserved_at: i64,
}
