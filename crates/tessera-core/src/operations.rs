//! An operator's operations, written once for the `tessera` CLI and the admin HTTP API: each
//! takes its input as data, validates it and writes through the registry writes (`admin`,
//! private to this module) with its `admin.change` audit event naming who did it
//! ([`Operator`]) in the same store transaction, and returns what the operator is shown. The CLI parses flags into these inputs and prints the outputs; the admin API
//! deserializes them from JSON and serializes the outputs. Reads are [`crate::inventory`].

use serde::{Deserialize, Serialize};
use serde_json::json;

pub use crate::admin::AdminError;
use crate::admin::{self, Changing, NewClient, NewPartner, NewUser};
use crate::keys::{Alg, KeyState, KeyUse};
use crate::master::MasterKey;
use crate::model::{AdminScope, AdminToken, PartnerStatus, Role};
use crate::password::Passwords;
use crate::secret::{SecretDigest, SecretKind, generate, new_id};
use crate::store::Store;

/// Who performs an operation, as the audit trail names them: `cli:<login>` or
/// `api:<admin token id>`.
#[derive(Clone, Debug)]
pub struct Operator(pub String);

impl Operator {
    /// The admin API, calling with the admin token `token_id`.
    pub fn api(token_id: &str) -> Operator {
        Operator(format!("api:{token_id}"))
    }
}

/// A secret-bearing input prints no secret.
macro_rules! redacted {
    ($ty:ident { $($field:ident),* } secret { $($secret:ident),* }) => {
        impl std::fmt::Debug for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    $(.field(stringify!($secret), &"<redacted>"))*
                    .finish()
            }
        }
    };
}

#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePartner {
    pub name: String,
    pub email: String,
    pub password: String,
    /// Space- or comma-separated registered scopes.
    pub scopes: String,
    #[serde(default)]
    pub org_code: Option<String>,
}
redacted!(CreatePartner { name, email, scopes, org_code } secret { password });

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartnerCreated {
    pub partner_id: String,
    pub org_code: String,
}

pub async fn create_partner(
    store: &dyn Store,
    passwords: &Passwords,
    by: &Operator,
    input: &CreatePartner,
    now: i64,
) -> Result<PartnerCreated, AdminError> {
    let p = admin::create_partner(
        store,
        passwords,
        NewPartner {
            name: &input.name,
            email: &input.email,
            password: &input.password,
            scopes: &input.scopes,
            org_code: input.org_code.as_deref(),
        },
        &Changing {
            by,
            change: "partner.create",
            now,
        },
    )
    .await?;
    Ok(PartnerCreated {
        partner_id: p.id,
        org_code: p.org_code,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartnerStatusSet {
    pub partner_id: String,
    pub status: PartnerStatus,
}

pub async fn set_partner_status(
    store: &dyn Store,
    by: &Operator,
    partner_id: &str,
    status: PartnerStatus,
    now: i64,
) -> Result<PartnerStatusSet, AdminError> {
    admin::set_partner_status(
        store,
        partner_id,
        status,
        &Changing {
            by,
            change: "partner.set_status",
            now,
        },
    )
    .await?;
    Ok(PartnerStatusSet {
        partner_id: partner_id.into(),
        status,
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartnerRef {
    pub partner_id: String,
}

pub async fn set_partner_password(
    store: &dyn Store,
    passwords: &Passwords,
    by: &Operator,
    partner_id: &str,
    password: &str,
    now: i64,
) -> Result<PartnerRef, AdminError> {
    let changing = Changing {
        by,
        change: "partner.set_password",
        now,
    };
    admin::set_partner_password(store, passwords, partner_id, password, &changing).await?;
    Ok(PartnerRef {
        partner_id: partner_id.into(),
    })
}

/// A new partner API token, shown once.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PartnerTokenCreated {
    pub partner_token: String,
}
redacted!(PartnerTokenCreated {} secret { partner_token });

pub async fn create_partner_token(
    store: &dyn Store,
    by: &Operator,
    partner_id: &str,
    now: i64,
) -> Result<PartnerTokenCreated, AdminError> {
    let token = admin::create_partner_token(
        store,
        partner_id,
        &Changing {
            by,
            change: "partner_token.create",
            now,
        },
    )
    .await?;
    Ok(PartnerTokenCreated {
        partner_token: token.expose().to_string(),
    })
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Revoked {
    pub revoked: u64,
}

/// Revoke every API token of a partner, or the one token given.
pub async fn revoke_partner_tokens(
    store: &dyn Store,
    by: &Operator,
    which: PartnerTokens<'_>,
    now: i64,
) -> Result<Revoked, AdminError> {
    let changing = Changing {
        by,
        change: "partner_token.revoke",
        now,
    };
    let revoked = match which {
        PartnerTokens::AllOf(partner_id) => {
            admin::revoke_partner_tokens(store, partner_id, &changing).await?
        }
        PartnerTokens::One(token) => {
            admin::revoke_partner_token(store, token, &changing).await?;
            1
        }
    };
    Ok(Revoked { revoked })
}

pub enum PartnerTokens<'a> {
    AllOf(&'a str),
    One(&'a str),
}

#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    pub partner_id: String,
    pub name: String,
    pub grant_types: Vec<String>,
    /// Space- or comma-separated scopes within the partner's.
    pub scopes: String,
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    #[serde(default)]
    pub frame_origins: Vec<String>,
    #[serde(default)]
    pub dev: bool,
    /// Allow `code_challenge_method=plain` besides S256.
    #[serde(default)]
    pub pkce_plain: bool,
    #[serde(default)]
    pub allow_registration: bool,
}

/// A new client and its secret, shown once.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientCreated {
    pub client_id: String,
    pub client_secret: String,
}
redacted!(ClientCreated { client_id } secret { client_secret });

pub async fn create_client(
    store: &dyn Store,
    by: &Operator,
    input: &CreateClient,
    now: i64,
) -> Result<ClientCreated, AdminError> {
    let (client, secret) = admin::create_client(
        store,
        NewClient {
            partner_id: &input.partner_id,
            name: &input.name,
            grant_types: &input.grant_types,
            scopes: &input.scopes,
            redirect_uris: &input.redirect_uris,
            frame_origins: &input.frame_origins,
            dev: input.dev,
            pkce_plain: input.pkce_plain,
            allow_registration: input.allow_registration,
        },
        &Changing {
            by,
            change: "client.create",
            now,
        },
    )
    .await?;
    Ok(ClientCreated {
        client_id: client.id,
        client_secret: secret.expose().to_string(),
    })
}

/// A client's new secret, shown once, and until when the previous one still works.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SecretRotated {
    pub client_id: String,
    pub client_secret: String,
    pub previous_secret_valid_until: Option<i64>,
}
redacted!(SecretRotated { client_id, previous_secret_valid_until } secret { client_secret });

pub async fn rotate_client_secret(
    store: &dyn Store,
    by: &Operator,
    client_id: &str,
    overlap_secs: Option<i64>,
    now: i64,
) -> Result<SecretRotated, AdminError> {
    let changing = Changing {
        by,
        change: "client.rotate_secret",
        now,
    };
    let secret = admin::rotate_client_secret(store, client_id, overlap_secs, &changing).await?;
    Ok(SecretRotated {
        client_id: client_id.into(),
        client_secret: secret.expose().to_string(),
        previous_secret_valid_until: overlap_secs.map(|o| now + o),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    Active,
    Disabled,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ClientStatusSet {
    pub client_id: String,
    pub status: ClientStatus,
}

pub async fn set_client_status(
    store: &dyn Store,
    by: &Operator,
    client_id: &str,
    status: ClientStatus,
    now: i64,
) -> Result<ClientStatusSet, AdminError> {
    let changing = Changing {
        by,
        change: "client.set_status",
        now,
    };
    admin::set_client_disabled(
        store,
        client_id,
        status == ClientStatus::Disabled,
        &changing,
    )
    .await?;
    Ok(ClientStatusSet {
        client_id: client_id.into(),
        status,
    })
}

#[derive(Clone, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateUser {
    pub partner_id: String,
    pub username: String,
    pub password: String,
    pub role: Role,
    #[serde(default)]
    pub account_id: Option<String>,
}
redacted!(CreateUser { partner_id, username, role, account_id } secret { password });

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct UserRef {
    pub user_id: String,
}

pub async fn create_user(
    store: &dyn Store,
    passwords: &Passwords,
    by: &Operator,
    input: &CreateUser,
    now: i64,
) -> Result<UserRef, AdminError> {
    let user = admin::create_user(
        store,
        passwords,
        NewUser {
            partner_id: &input.partner_id,
            username: &input.username,
            password: &input.password,
            role: input.role,
            account_id: input.account_id.as_deref(),
        },
        &Changing {
            by,
            change: "user.create",
            now,
        },
    )
    .await?;
    Ok(UserRef { user_id: user.id })
}

pub async fn set_user_password(
    store: &dyn Store,
    passwords: &Passwords,
    by: &Operator,
    partner_id: &str,
    username: &str,
    password: &str,
    now: i64,
) -> Result<UserRef, AdminError> {
    let changing = Changing {
        by,
        change: "user.set_password",
        now,
    };
    let id = admin::set_user_password(store, passwords, partner_id, username, password, &changing)
        .await?;
    Ok(UserRef { user_id: id })
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SessionsEnded {
    pub user_id: String,
    /// Browser sessions that ended.
    pub sessions: u64,
}

/// End every browser session of a user (`tessera user sessions revoke`).
pub async fn end_user_sessions(
    store: &dyn Store,
    by: &Operator,
    partner_id: &str,
    username: &str,
    now: i64,
) -> Result<SessionsEnded, AdminError> {
    let changing = Changing {
        by,
        change: "user.sessions_revoke",
        now,
    };
    let (user_id, sessions) =
        admin::end_user_sessions(store, partner_id, username, &changing).await?;
    Ok(SessionsEnded { user_id, sessions })
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScopesAdded {
    pub scopes: Vec<String>,
}

pub async fn add_scopes(
    store: &dyn Store,
    by: &Operator,
    names: &[String],
    description: Option<&str>,
    now: i64,
) -> Result<ScopesAdded, AdminError> {
    let changing = Changing {
        by,
        change: "scope.add",
        now,
    };
    let added = admin::add_scopes(store, names, description, &changing).await?;
    Ok(ScopesAdded { scopes: added })
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct GrantRevoked {
    pub user_id: String,
    pub client_id: String,
    pub revoked: bool,
}

/// Withdraw a user's consent for a client, as the user could on the connected-applications page.
pub async fn revoke_grant(
    store: &dyn Store,
    by: &Operator,
    user_id: &str,
    client_id: &str,
    now: i64,
) -> Result<GrantRevoked, AdminError> {
    let changing = Changing {
        by,
        change: "grant.revoke",
        now,
    };
    if !admin::revoke_grant(store, user_id, client_id, &changing).await? {
        return Err(AdminError::NotFound(format!(
            "user {user_id} has no active grant for client {client_id}"
        )));
    }
    Ok(GrantRevoked {
        user_id: user_id.into(),
        client_id: client_id.into(),
        revoked: true,
    })
}

/// A signing key as an operator sees it: no key material.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyView {
    pub kid: String,
    pub alg: String,
    pub purpose: String,
    pub state: String,
    pub created_at: i64,
    pub activates_at: i64,
    pub retired_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

pub async fn list_keys(store: &dyn Store, now: i64) -> Result<KeyList, AdminError> {
    let stored = store.list_keys().await?;
    let keys = stored
        .iter()
        .map(|k| KeyView {
            kid: k.kid.clone(),
            alg: k.alg.as_str().into(),
            purpose: k.purpose.as_str().into(),
            state: k.state(&stored, now).as_str().into(),
            created_at: k.created_at,
            activates_at: k.activation(),
            retired_at: k.retired_at,
            revoked_at: k.revoked_at,
        })
        .collect();
    Ok(KeyList { keys })
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyRotated {
    pub kid: String,
    pub alg: String,
    pub purpose: String,
}

/// Make a new key of `purpose`'s lane active (ID-token keys are always RS256).
pub async fn rotate_keys(
    store: &dyn Store,
    by: &Operator,
    master: &MasterKey,
    purpose: KeyUse,
    alg: Alg,
    now: i64,
) -> Result<KeyRotated, AdminError> {
    let alg = purpose.alg(alg);
    let changing = Changing {
        by,
        change: "keys.rotate",
        now,
    };
    let key = admin::rotate_keys(store, master, purpose, alg, &changing).await?;
    let out = KeyRotated {
        kid: key.kid,
        alg: key.alg.as_str().into(),
        purpose: purpose.as_str().into(),
    };
    Ok(out)
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct KeyRevoked {
    pub kid: String,
    pub replaced_by: Option<String>,
}

/// Revoke a compromised key; when it is its lane's active key, a new key takes over first.
pub async fn revoke_key(
    store: &dyn Store,
    by: &Operator,
    master: &MasterKey,
    kid: &str,
    now: i64,
) -> Result<KeyRevoked, AdminError> {
    let stored = store.list_keys().await?;
    let key = stored
        .iter()
        .find(|k| k.kid == kid)
        .ok_or_else(|| AdminError::NotFound(format!("no signing key {kid}")))?;
    if key.revoked_at.is_some() {
        return Err(AdminError::Invalid(format!(
            "signing key {kid} is already revoked"
        )));
    }
    // The replacement is a change of its own, recorded as a rotation by the same operator.
    let rotating = Changing {
        by,
        change: "keys.rotate",
        now,
    };
    let replaced_by = if key.state(&stored, now) == KeyState::Active {
        Some(
            admin::rotate_keys(store, master, key.purpose, key.alg, &rotating)
                .await?
                .kid,
        )
    } else {
        None
    };
    let out = KeyRevoked {
        kid: kid.into(),
        replaced_by,
    };
    let changing = Changing {
        by,
        change: "keys.revoke",
        now,
    };
    let event = changing.event(serde_json::to_value(&out).expect("serializes"));
    store.revoke_key(kid, now, &[event]).await?;
    Ok(out)
}

/// A new admin API token, shown once.
#[derive(Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminTokenCreated {
    pub id: String,
    pub admin_token: String,
    pub scopes: Vec<AdminScope>,
}
redacted!(AdminTokenCreated { id, scopes } secret { admin_token });

/// An admin API token as an operator sees it: no secret, no digest.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminTokenView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<AdminScope>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

/// Create an admin API token (`tat_` + 256 bits; only its SHA-256 is stored).
pub async fn create_admin_token(
    store: &dyn Store,
    by: &Operator,
    name: &str,
    scopes: &[AdminScope],
    now: i64,
) -> Result<AdminTokenCreated, AdminError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > crate::policy::MAX_NAME_LEN {
        return Err(AdminError::Invalid(format!(
            "the name must be 1 to {} characters",
            crate::policy::MAX_NAME_LEN
        )));
    }
    if scopes.is_empty() {
        return Err(AdminError::Invalid(
            "give at least one scope: read, write".into(),
        ));
    }
    let mut scopes = scopes.to_vec();
    scopes.sort_by_key(|s| s.as_str());
    scopes.dedup();
    let secret = generate(SecretKind::AdminToken);
    let token = AdminToken {
        id: new_id(),
        name: name.to_string(),
        digest: secret.digest(),
        scopes: scopes.clone(),
        created_at: now,
        revoked_at: None,
    };
    let changing = Changing {
        by,
        change: "admin_token.create",
        now,
    };
    let event = changing.event(json!({"admin_token_id": token.id, "scopes": scopes}));
    store.insert_admin_token(&token, &[event]).await?;
    Ok(AdminTokenCreated {
        id: token.id,
        admin_token: secret.expose().to_string(),
        scopes,
    })
}

pub async fn list_admin_tokens(store: &dyn Store) -> Result<Vec<AdminTokenView>, AdminError> {
    Ok(store
        .list_admin_tokens()
        .await?
        .into_iter()
        .map(|t| AdminTokenView {
            id: t.id,
            name: t.name,
            scopes: t.scopes,
            created_at: t.created_at,
            revoked_at: t.revoked_at,
        })
        .collect())
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AdminTokenRevoked {
    pub id: String,
    pub revoked: bool,
}

/// Revoke an admin API token: its next call is refused (tokens are looked up on every call).
pub async fn revoke_admin_token(
    store: &dyn Store,
    by: &Operator,
    id: &str,
    now: i64,
) -> Result<AdminTokenRevoked, AdminError> {
    let changing = Changing {
        by,
        change: "admin_token.revoke",
        now,
    };
    let event = changing.event(json!({"admin_token_id": id}));
    if !store.revoke_admin_token(id, now, &[event]).await? {
        return Err(AdminError::NotFound(format!(
            "no unrevoked admin token {id}; see `tessera admin-token list`"
        )));
    }
    Ok(AdminTokenRevoked {
        id: id.into(),
        revoked: true,
    })
}

/// The unrevoked admin token a caller presented, if any.
pub async fn authenticate_admin(
    store: &dyn Store,
    presented: &str,
) -> Result<Option<AdminToken>, AdminError> {
    if SecretKind::of(presented) != Some(SecretKind::AdminToken) || presented.len() > 128 {
        return Ok(None);
    }
    Ok(store
        .admin_token(&SecretDigest::of(presented))
        .await?
        .filter(|t| t.revoked_at.is_none()))
}
