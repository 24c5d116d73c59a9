//! Tessera's Rust SDK, for the three ways a platform meets Tessera (seed 000 and seed 002 are
//! the wire contracts described in `docs/wire-contracts.md`):
//!
//! - **Partners** ([`PartnerClient`], seed 000's JSON dialect): machine token, accounts, token
//!   exchange, refresh and revocation, with the wire types of `tessera-proto`.
//! - **Registered OAuth clients** ([`StandardClient`], RFC 6749's form dialect): client
//!   credentials, password, refresh, token exchange, authorization codes, introspection,
//!   revocation and seed 002's buyer sign-up.
//! - **Resource servers** ([`Verifier`]): Tessera access tokens checked offline from the JWKS
//!   (cached; fetched again for an unknown key and once the issuer's max-age or 5 minutes have
//!   passed, so a revoked key is refused; rate limited), optionally introspected; with
//!   feature `axum`, a middleware and an extractor ([`axum`]).
//!
//! [`TokenSource`] keeps an access token fresh for many tasks with one renewal in flight:
//! machine tokens, client credentials, or a refresh-token pair whose rotation it keeps safe.
//! Errors carry the server's code and message.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tessera_client::Error> {
//! use tessera_client::{Credentials, PartnerClient};
//! let client = PartnerClient::new(
//!     "http://127.0.0.1:8080",
//!     Credentials::basic("partner@example.com", "a long password"),
//! );
//! let machine = client.machine_token("transport,crm").await?;
//! let account = client.create_account("Acme", None).await?;
//! let pair = client
//!     .exchange(&machine.access_token, &account.account_id, "transport")
//!     .await?;
//! let next = client.refresh(pair.refresh_token.as_deref().unwrap()).await?;
//! # let _ = next; Ok(()) }
//! ```
//!
#[cfg(feature = "axum")]
pub mod axum;
pub mod standard;
mod token_source;
mod verifier;

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tessera_proto::partner::{
    AccountPage, AccountView, ClientCredentialsData, CreateAccountRequest, Envelope, ErrorEnvelope,
    RefreshTokenData, RevokeRequest, TokenExchangeData, TokenRequest, TokenResponse,
};

pub use standard::StandardClient;
pub use token_source::{MachineTokenSource, TokenSource};
pub use verifier::{AccessClaims, Claims, TokenUse, Verifier, VerifyError};

/// `subject_token_type` of a machine token.
pub const MACHINE_TOKEN_TYPE: &str = tessera_proto::token_type::MACHINE_TOKEN;
/// `subject_token_type` of an access token (RFC 8693 §3).
pub const ACCESS_TOKEN_TYPE: &str = tessera_proto::token_type::ACCESS_TOKEN;

/// How the partner authenticates.
#[derive(Clone)]
pub enum Credentials {
    Basic { email: String, password: String },
    PartnerToken(String),
}

impl Credentials {
    pub fn basic(email: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials::Basic {
            email: email.into(),
            password: password.into(),
        }
    }

    fn header(&self) -> String {
        match self {
            Credentials::Basic { email, password } => {
                format!("Basic {}", STANDARD.encode(format!("{email}:{password}")))
            }
            Credentials::PartnerToken(t) => format!("Bearer {t}"),
        }
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::Basic { email, .. } => write!(f, "Basic({email}, <redacted>)"),
            Credentials::PartnerToken(_) => f.write_str("PartnerToken(<redacted>)"),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error envelope.
    #[error("{status} {code}: {message}")]
    Api {
        status: u16,
        code: String,
        message: String,
        /// `Retry-After` seconds, for `TOO_MANY_REQUESTS`.
        retry_after: Option<u64>,
    },
    #[error("HTTP error: {0}")]
    Http(#[from] reqwest::Error),
    #[error("unexpected response ({status}): {body}")]
    Unexpected { status: u16, body: String },
    /// A refreshing [`TokenSource`] was given a pair without a refresh token.
    #[error("the token response has no refresh token to rotate")]
    NoRefreshToken,
}

/// A response's `Retry-After` seconds.
pub(crate) fn retry_after(response: &reqwest::Response) -> Option<u64> {
    response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok())
}

impl Error {
    /// The server's error code, if it sent one.
    pub fn code(&self) -> Option<&str> {
        match self {
            Error::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A partner's connection to one Tessera deployment.
#[derive(Clone, Debug)]
pub struct PartnerClient {
    base: String,
    credentials: Credentials,
    http: reqwest::Client,
}

impl PartnerClient {
    pub fn new(base_url: impl Into<String>, credentials: Credentials) -> Self {
        Self::with_http(base_url, credentials, reqwest::Client::new())
    }

    pub fn with_http(
        base_url: impl Into<String>,
        credentials: Credentials,
        http: reqwest::Client,
    ) -> Self {
        PartnerClient {
            base: base_url.into().trim_end_matches('/').to_string(),
            credentials,
            http,
        }
    }

    /// Step 2 of seed 000: the partner's machine token.
    pub async fn machine_token(&self, scope: &str) -> Result<TokenResponse, Error> {
        self.token(TokenRequest {
            grant_type: Some("client_credentials".into()),
            client_credentials_data: Some(ClientCredentialsData {
                scope: scope.into(),
            }),
            ..Default::default()
        })
        .await
    }

    /// Step 3 of seed 000: exchange a machine token for an account's token pair.
    pub async fn exchange(
        &self,
        machine_token: &str,
        account_id: &str,
        scope: &str,
    ) -> Result<TokenResponse, Error> {
        self.token(TokenRequest {
            grant_type: Some("urn:ietf:params:oauth:grant-type:token-exchange".into()),
            token_exchange_data: Some(TokenExchangeData {
                subject_token: machine_token.into(),
                subject_token_type: MACHINE_TOKEN_TYPE.into(),
                requested_subject: account_id.into(),
                scope: scope.into(),
            }),
            ..Default::default()
        })
        .await
    }

    /// Rotate a refresh token into a new pair.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, Error> {
        self.token(TokenRequest {
            grant_type: Some("refresh_token".into()),
            refresh_token_data: Some(RefreshTokenData {
                refresh_token: refresh_token.into(),
            }),
            ..Default::default()
        })
        .await
    }

    pub async fn token(&self, request: TokenRequest) -> Result<TokenResponse, Error> {
        self.post("/v2/oauth/token", &request).await
    }

    pub async fn revoke(&self, token: &str) -> Result<(), Error> {
        let _: serde_json::Value = self
            .post(
                "/v2/oauth/revoke",
                &RevokeRequest {
                    token: token.into(),
                    token_type_hint: None,
                },
            )
            .await?;
        Ok(())
    }

    pub async fn create_account(
        &self,
        name: &str,
        external_id: Option<&str>,
    ) -> Result<AccountView, Error> {
        self.post(
            "/v2/accounts",
            &CreateAccountRequest {
                name: name.into(),
                external_id: external_id.map(str::to_string),
            },
        )
        .await
    }

    pub async fn account(&self, account_id: &str) -> Result<AccountView, Error> {
        let url = format!("{}/v2/accounts/{}", self.base, urlencode(account_id));
        self.send(self.http.get(url)).await
    }

    pub async fn list_accounts(
        &self,
        cursor: Option<&str>,
        limit: Option<u32>,
    ) -> Result<AccountPage, Error> {
        let mut url = format!("{}/v2/accounts?", self.base);
        if let Some(l) = limit {
            url.push_str(&format!("limit={l}&"));
        }
        if let Some(c) = cursor {
            url.push_str(&format!("cursor={}", urlencode(c)));
        }
        self.send(self.http.get(url)).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, Error> {
        let url = format!("{}{}", self.base, path);
        self.send(self.http.post(url).json(body)).await
    }

    async fn send<T: DeserializeOwned>(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let response = request
            .header(reqwest::header::AUTHORIZATION, self.credentials.header())
            .send()
            .await?;
        let status = response.status().as_u16();
        let retry_after = retry_after(&response);
        let bytes = response.bytes().await?;
        if (200..300).contains(&status) {
            if let Ok(env) = serde_json::from_slice::<Envelope<T>>(&bytes) {
                return Ok(env.data);
            }
        } else if let Ok(env) = serde_json::from_slice::<ErrorEnvelope>(&bytes) {
            return Err(Error::Api {
                status,
                code: env.error.code,
                message: env.error.message,
                retry_after,
            });
        }
        Err(Error::Unexpected {
            status,
            body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
        })
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
