//! The payload of Tessera's JWT access tokens: [`Claims`], written by the server (which signs
//! it) and read by the SDK's verifier (which checks the signature), defined once here.

use serde::{Deserialize, Serialize};

/// What a token is for; the `token_use` claim. Names are those of the README's *Tokens*.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenUse {
    /// A partner's own token (partner dialect, `client_credentials`).
    MachineToken,
    /// A token acting for an account or user with a refresh token beside it.
    ClientAccessToken,
    /// A client's own token (standard dialect, `client_credentials`).
    AppToken,
    /// A partner admin user's token (standard dialect, `password`).
    UserToken,
    /// A partner customer's token (standard dialect, `password`).
    CustomerToken,
}

impl TokenUse {
    /// The claim's value.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenUse::MachineToken => "machine_token",
            TokenUse::ClientAccessToken => "client_access_token",
            TokenUse::AppToken => "app_token",
            TokenUse::UserToken => "user_token",
            TokenUse::CustomerToken => "customer_token",
        }
    }
}

/// RFC 8693 §4.1 actor claim; `act` nests the earlier actors of a delegation chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Box<Actor>>,
}

/// The claims of a Tessera access token (RFC 9068, with Tessera's own), as the server signs them
/// and a resource server reads them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    pub sub: String,
    pub aud: String,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    /// Space-separated.
    pub scope: String,
    pub token_use: TokenUse,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partner_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org_code: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub act: Option<Actor>,
    /// The refresh-token family (session) this token belongs to, if any: revoking the family
    /// makes the token inactive.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// The `jti`s of the tokens this one was exchanged from (RFC 8693), oldest first: revoking
    /// any of them makes this token inactive too. (Bounded by the longest token accepted as a
    /// subject, like the `act` chain.)
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exchanged_from: Vec<String>,
}

impl Claims {
    /// Whether the token carries `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scope.split(' ').any(|s| s == scope)
    }
}
