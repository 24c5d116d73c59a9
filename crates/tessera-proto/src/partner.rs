//! The partner dialect (README, *Partner dialect*): JSON bodies, `{"data": …, "meta": {"timestamp": …}}` on success
//! and `{"error": {"code", "message", "details"?}, "meta": …}` on failure.

use std::fmt;

use serde::{Deserialize, Serialize};

/// `Debug` for types that carry bearer credentials: the named fields print as `<redacted>`.
macro_rules! redacted_debug {
    ($ty:ident { $($field:ident),* } secret { $($secret:ident),* }) => {
        impl fmt::Debug for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($ty))
                    $(.field(stringify!($field), &self.$field))*
                    $(.field(stringify!($secret), &"<redacted>"))*
                    .finish()
            }
        }
    };
}

/// `meta` of every response.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Meta {
    /// Unix seconds when the response was made.
    pub timestamp: i64,
}

/// A successful response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Envelope<T> {
    pub data: T,
    pub meta: Meta,
}

/// A failed response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
    pub meta: Meta,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    /// One of the partner dialect's error codes (README, *Partner dialect*), e.g. `OAUTH_SCOPE_FORBIDDEN`.
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<ErrorDetail>>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    /// JSON path of the offending field, e.g. `token_exchange_data.scope`.
    pub field: String,
    pub message: String,
}

/// `POST /v2/oauth/token`. Exactly one `*_data` object matches `grant_type`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenRequest {
    pub grant_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_credentials_data: Option<ClientCredentialsData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_exchange_data: Option<TokenExchangeData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token_data: Option<RefreshTokenData>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization_code_data: Option<AuthorizationCodeData>,
}

/// `authorization_code_data` (seed 000's authorization-code model).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuthorizationCodeData {
    pub client_id: String,
    pub code: String,
    pub redirect_uri: String,
    /// Optional on the wire so that a missing verifier gets OAUTH_CODE_VERIFIER_INVALID.
    #[serde(default)]
    pub code_verifier: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ClientCredentialsData {
    /// Comma- or space-separated scope names.
    pub scope: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenExchangeData {
    pub subject_token: String,
    /// `urn:wazzup:oauth:token-type:machine_token`.
    pub subject_token_type: String,
    /// The account to act for.
    pub requested_subject: String,
    pub scope: String,
}

#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RefreshTokenData {
    pub refresh_token: String,
}

redacted_debug!(TokenExchangeData { subject_token_type, requested_subject, scope } secret { subject_token });
redacted_debug!(RefreshTokenData {} secret { refresh_token });
redacted_debug!(AuthorizationCodeData { client_id, redirect_uri } secret { code, code_verifier });

/// `POST /v2/oauth/par` (RFC 9126): an authorization request of one of the partner's clients,
/// pushed before the browser is sent to `/v2/oauth/authorize` with `client_id` and the
/// `request_uri` it returns. The members are `/v2/oauth/authorize`'s query parameters.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PushRequest {
    pub client_id: Option<String>,
    /// `code`.
    pub response_type: Option<String>,
    pub redirect_uri: Option<String>,
    pub scope: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    /// `S256` (or `plain` for clients registered for it).
    pub code_challenge_method: Option<String>,
    pub nonce: Option<String>,
    pub prompt: Option<String>,
    /// Seconds.
    pub max_age: Option<u32>,
    pub id_token_hint: Option<String>,
    /// Read only to be refused, as `/v2/oauth/authorize` refuses them: `request_uri` cannot be
    /// pushed, request objects are not supported, and the response mode is `query`.
    pub request_uri: Option<String>,
    pub request: Option<String>,
    pub response_mode: Option<String>,
}

/// `data` of a successful token response.
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    /// Always `Bearer`.
    pub token_type: String,
    pub expires_in: i64,
    /// OpenID Connect: for an authorization code of a request with the `openid` scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

redacted_debug!(TokenResponse { token_type, expires_in } secret { access_token, refresh_token, id_token });

/// `POST /v2/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateAccountRequest {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
}

/// An end-customer account as the partner sees it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountView {
    pub account_id: String,
    pub name: String,
    pub external_id: Option<String>,
    pub created_at: i64,
}

/// `data` of `GET /v2/accounts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountPage {
    pub accounts: Vec<AccountView>,
    /// Pass as `cursor` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// `POST /v2/oauth/revoke` (RFC 7009 parameters in JSON).
#[derive(Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RevokeRequest {
    pub token: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_type_hint: Option<String>,
}

redacted_debug!(RevokeRequest { token_type_hint } secret { token });

/// The partner dialect's error codes, as constants for matching.
pub mod codes {
    pub const VALIDATION_FAILED: &str = "VALIDATION_FAILED";
    pub const OAUTH_INVALID_GRANT_TYPE: &str = "OAUTH_INVALID_GRANT_TYPE";
    pub const OAUTH_REDIRECT_URI_MISMATCH: &str = "OAUTH_REDIRECT_URI_MISMATCH";
    pub const OAUTH_AUTHORIZATION_CODE_INVALID: &str = "OAUTH_AUTHORIZATION_CODE_INVALID";
    pub const OAUTH_CODE_CHALLENGE_METHOD_UNSUPPORTED: &str =
        "OAUTH_CODE_CHALLENGE_METHOD_UNSUPPORTED";
    pub const OAUTH_CODE_VERIFIER_INVALID: &str = "OAUTH_CODE_VERIFIER_INVALID";
    pub const OAUTH_REQUESTED_SUBJECT_MISMATCH: &str = "OAUTH_REQUESTED_SUBJECT_MISMATCH";
    pub const OAUTH_SUBJECT_TOKEN_TYPE_MISMATCH: &str = "OAUTH_SUBJECT_TOKEN_TYPE_MISMATCH";
    pub const OAUTH_CLIENT_ID_MISMATCH: &str = "OAUTH_CLIENT_ID_MISMATCH";
    pub const OAUTH_REFRESH_TOKEN_INVALID: &str = "OAUTH_REFRESH_TOKEN_INVALID";
    pub const OAUTH_AUTHORIZATION_HEADER_INVALID: &str = "OAUTH_AUTHORIZATION_HEADER_INVALID";
    pub const OAUTH_INVALID_PARTNER_TOKEN: &str = "OAUTH_INVALID_PARTNER_TOKEN";
    pub const OAUTH_TOKEN_INVALID_OR_EXPIRED: &str = "OAUTH_TOKEN_INVALID_OR_EXPIRED";
    pub const OAUTH_TOKEN_UNKNOWN_OR_REVOKED: &str = "OAUTH_TOKEN_UNKNOWN_OR_REVOKED";
    pub const OAUTH_PARTNER_NOT_FOUND: &str = "OAUTH_PARTNER_NOT_FOUND";
    pub const OAUTH_PARTNER_INACTIVE: &str = "OAUTH_PARTNER_INACTIVE";
    pub const OAUTH_CLIENT_NOT_BELONG_TO_PARTNER: &str = "OAUTH_CLIENT_NOT_BELONG_TO_PARTNER";
    pub const OAUTH_SCOPE_FORBIDDEN: &str = "OAUTH_SCOPE_FORBIDDEN";
    pub const OAUTH_MISSING_GRANT: &str = "OAUTH_MISSING_GRANT";
    pub const TOO_MANY_REQUESTS: &str = "TOO_MANY_REQUESTS";
    pub const SERVICE_UNAVAILABLE: &str = "SERVICE_UNAVAILABLE";
    pub const INTERNAL_ERROR: &str = "INTERNAL_ERROR";
    pub const NOT_FOUND: &str = "NOT_FOUND";
}

/// `data` of an answer that has nothing to say, such as a revocation: always `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Empty {}
