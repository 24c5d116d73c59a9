//! Wire types of the admin HTTP API (`/admin/v1/...`, JSON): the operator's inputs and what an
//! operator is shown, the listings' views and pages, the audit trail's entries, and the enums
//! they name. `tessera_core::operations` and `tessera_core::inventory` take and return them
//! (and re-export them), the server serializes them and describes them in its OpenAPI document
//! (feature `openapi`), and the CLI prints them. Secret-bearing ones print no secret in `Debug`.

use serde::{Deserialize, Serialize};

/// A secret-bearing type prints no secret.
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

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum PartnerStatus {
    Active,
    Inactive,
}

impl PartnerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PartnerStatus::Active => "active",
            PartnerStatus::Inactive => "inactive",
        }
    }
}

impl std::str::FromStr for PartnerStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "active" => Ok(PartnerStatus::Active),
            "inactive" => Ok(PartnerStatus::Inactive),
            other => Err(format!("unknown status {other:?}: use active or inactive")),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Admin,
    Customer,
    Member,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Customer => "customer",
            Role::Member => "member",
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "admin" => Ok(Role::Admin),
            "customer" => Ok(Role::Customer),
            "member" => Ok(Role::Member),
            other => Err(format!(
                "unknown role {other:?}: use admin, customer or member"
            )),
        }
    }
}

/// What an admin API token may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum AdminScope {
    /// Lists, shows and the audit query.
    Read,
    /// Creates and changes (implies nothing about `read`).
    Write,
}

impl AdminScope {
    pub fn as_str(self) -> &'static str {
        match self {
            AdminScope::Read => "read",
            AdminScope::Write => "write",
        }
    }

    pub fn parse(s: &str) -> Option<AdminScope> {
        match s {
            "read" => Some(AdminScope::Read),
            "write" => Some(AdminScope::Write),
            _ => None,
        }
    }
}

#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerCreated {
    pub partner_id: String,
    pub org_code: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerStatusSet {
    pub partner_id: String,
    pub status: PartnerStatus,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerRef {
    pub partner_id: String,
}

/// A new partner API token, shown once.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerTokenCreated {
    pub partner_token: String,
}

redacted!(PartnerTokenCreated {} secret { partner_token });

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Revoked {
    pub revoked: u64,
}

#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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
    /// Accept authorization requests only by reference to one pushed first (RFC 9126).
    #[serde(default)]
    pub require_par: bool,
    #[serde(default)]
    pub allow_registration: bool,
}

/// A new client and its secret, shown once.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientCreated {
    pub client_id: String,
    pub client_secret: String,
}

redacted!(ClientCreated { client_id } secret { client_secret });

/// A client's new secret, shown once, and until when the previous one still works.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretRotated {
    pub client_id: String,
    pub client_secret: String,
    pub previous_secret_valid_until: Option<i64>,
}

redacted!(SecretRotated { client_id, previous_secret_valid_until } secret { client_secret });

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum ClientStatus {
    Active,
    Disabled,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientStatusSet {
    pub client_id: String,
    pub status: ClientStatus,
}

#[derive(Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserRef {
    pub user_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionsEnded {
    pub user_id: String,
    /// Browser sessions that ended.
    pub sessions: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScopesAdded {
    pub scopes: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantRevoked {
    pub user_id: String,
    pub client_id: String,
    pub revoked: bool,
}

/// A signing key as an operator sees it: no key material.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyList {
    pub keys: Vec<KeyView>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyRotated {
    pub kid: String,
    pub alg: String,
    pub purpose: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyRevoked {
    pub kid: String,
    pub replaced_by: Option<String>,
}

/// A new admin API token, shown once.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminTokenCreated {
    pub id: String,
    pub admin_token: String,
    pub scopes: Vec<AdminScope>,
}

redacted!(AdminTokenCreated { id, scopes } secret { admin_token });

/// An admin API token as an operator sees it: no secret, no digest.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminTokenView {
    pub id: String,
    pub name: String,
    pub scopes: Vec<AdminScope>,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AdminTokenRevoked {
    pub id: String,
    pub revoked: bool,
}

/// One page of a listing.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page<T> {
    pub items: Vec<T>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PartnerView {
    pub partner_id: String,
    pub name: String,
    pub email: String,
    pub org_code: String,
    pub status: &'static str,
    pub scopes: String,
    pub created_at: i64,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientView {
    pub client_id: String,
    pub partner_id: String,
    pub name: String,
    pub grant_types: Vec<&'static str>,
    pub scopes: String,
    pub redirect_uris: Vec<String>,
    pub frame_origins: Vec<String>,
    pub dev: bool,
    pub pkce_plain: bool,
    pub require_par: bool,
    pub allow_registration: bool,
    pub status: &'static str,
    /// While a rotated-out secret still authenticates: until when.
    pub previous_secret_valid_until: Option<i64>,
    pub created_at: i64,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UserView {
    pub user_id: String,
    pub partner_id: String,
    pub account_id: Option<String>,
    pub username: String,
    pub role: &'static str,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub external_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GrantView {
    pub grant_id: String,
    pub user_id: String,
    pub client_id: String,
    pub scope: String,
    pub created_at: i64,
    /// When the user (or an operator) withdrew it; absent while it stands.
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScopeView {
    pub name: String,
    pub description: Option<String>,
}

/// An audit event as the CLI and the admin API show it: the stored fields, and `time`, which is
/// `at` in RFC 3339 UTC for people reading it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    /// In order of appending.
    pub id: i64,
    /// Unix seconds.
    pub at: i64,
    pub event: String,
    pub partner_id: Option<String>,
    /// The username or partner email the event concerns.
    pub username: Option<String>,
    pub client_id: Option<String>,
    pub ip: Option<String>,
    pub request_id: Option<String>,
    /// What else there is to say: a reason, a grant, a `jti`, who made an admin change.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub detail: serde_json::Map<String, serde_json::Value>,
    /// `at` as `YYYY-MM-DDTHH:MM:SSZ`.
    pub time: String,
}

/// `PUT /admin/v1/partners/{id}/status`: `{"status": "active" | "inactive"}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PartnerStatusBody {
    pub status: PartnerStatus,
}

/// `PUT /admin/v1/clients/{id}/status`: `{"status": "active" | "disabled"}`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ClientStatusBody {
    pub status: ClientStatus,
}

/// `GET /admin/v1/scopes`: `{"scopes": [...]}`.
#[derive(Debug, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScopeList {
    pub scopes: Vec<ScopeView>,
}

/// `GET /admin/v1/audit`: `{"items": [...], "next"}`, newest first; `next` is the `before` of
/// the next page, absent on the last.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub items: Vec<AuditEntry>,
    pub next: Option<i64>,
}

/// An RFC 9457 problem, as every admin API error is answered (`application/problem+json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ProblemBody {
    /// `urn:tessera:problem:<kind>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
}
