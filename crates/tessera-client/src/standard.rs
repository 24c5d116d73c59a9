//! The standard dialect (RFC 6749, form-encoded, `/oauth/...`): [`StandardClient`] for a
//! registered OAuth client with its id and secret.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Deserialize;

use crate::Error;

pub use tessera_proto::standard::{Introspection, Me, SignUp, SignedUp, TokenResponse};

#[derive(Deserialize)]
struct OAuthError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

/// A registered OAuth client's connection to one Tessera deployment, authenticating with
/// `client_secret_basic`.
///
/// ```no_run
/// # async fn demo() -> Result<(), tessera_client::Error> {
/// use tessera_client::StandardClient;
/// let client = StandardClient::new("https://auth.example.com", "client-id", "client-secret");
/// let app = client.client_credentials(Some("WRITE")).await?;
/// let admin = client.password("admin@acme.example", "a long password", Some("WRITE")).await?;
/// let next = client.refresh(admin.refresh_token.as_deref().unwrap_or_default()).await;
/// let seen = client.introspect(&app.access_token).await?;
/// assert!(seen.active);
/// # let _ = next; Ok(()) }
/// ```
#[derive(Clone)]
pub struct StandardClient {
    base: String,
    client_id: String,
    client_secret: String,
    http: reqwest::Client,
}

impl fmt::Debug for StandardClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandardClient")
            .field("base", &self.base)
            .field("client_id", &self.client_id)
            .field("client_secret", &"<redacted>")
            .finish()
    }
}

impl StandardClient {
    pub fn new(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self::with_http(base_url, client_id, client_secret, reqwest::Client::new())
    }

    pub fn with_http(
        base_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        http: reqwest::Client,
    ) -> Self {
        StandardClient {
            base: base_url.into().trim_end_matches('/').to_string(),
            client_id: client_id.into(),
            client_secret: client_secret.into(),
            http,
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The client's own token (seed 002's app_token).
    pub async fn client_credentials(&self, scope: Option<&str>) -> Result<TokenResponse, Error> {
        let mut form = vec![("grant_type", "client_credentials")];
        form.extend(scope.map(|s| ("scope", s)));
        self.token(&form).await
    }

    /// An org admin's user_token, or a buyer's customer_token (its `clientUserToken` as the
    /// password).
    pub async fn password(
        &self,
        username: &str,
        password: &str,
        scope: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let mut form = vec![
            ("grant_type", "password"),
            ("username", username),
            ("password", password),
        ];
        form.extend(scope.map(|s| ("scope", s)));
        self.token(&form).await
    }

    /// Rotate a refresh token: the answer carries its successor; the presented one is spent.
    pub async fn refresh(&self, refresh_token: &str) -> Result<TokenResponse, Error> {
        self.token(&[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ])
        .await
    }

    /// RFC 8693 token exchange; `subject_token_type` is a URN such as
    /// [`crate::ACCESS_TOKEN_TYPE`].
    pub async fn exchange(
        &self,
        subject_token: &str,
        subject_token_type: &str,
        requested_subject: Option<&str>,
        scope: Option<&str>,
    ) -> Result<TokenResponse, Error> {
        let mut form = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange",
            ),
            ("subject_token", subject_token),
            ("subject_token_type", subject_token_type),
        ];
        form.extend(requested_subject.map(|s| ("requested_subject", s)));
        form.extend(scope.map(|s| ("scope", s)));
        self.token(&form).await
    }

    /// Redeem an authorization code with its PKCE verifier.
    pub async fn authorization_code(
        &self,
        code: &str,
        redirect_uri: &str,
        code_verifier: &str,
    ) -> Result<TokenResponse, Error> {
        self.token(&[
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", redirect_uri),
            ("code_verifier", code_verifier),
        ])
        .await
    }

    /// RFC 7662: whether a token of this client is active, and its claims.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, Error> {
        self.form("/oauth/introspect", &[("token", token)]).await
    }

    /// RFC 7009: revoke a token of this client (an unknown token is no error).
    pub async fn revoke(&self, token: &str) -> Result<(), Error> {
        let response = self.send_form("/oauth/revoke", &[("token", token)]).await?;
        if response.status().is_success() {
            // RFC 7009 §2.2: 200 with no body to read.
            return Ok(());
        }
        read::<serde_json::Value>(response).await.map(|_| ())
    }

    /// Seed 002's buyer sign-up, with the client's app_token.
    pub async fn sign_up(&self, app_token: &str, buyer: &SignUp) -> Result<SignedUp, Error> {
        let response = self
            .http
            .post(format!("{}/v2/api/users/sign-up", self.base))
            .bearer_auth(app_token)
            .json(buyer)
            .send()
            .await?;
        Ok(read::<tessera_proto::standard::Data<SignedUp>>(response)
            .await?
            .data)
    }

    /// Seed 002's `GET /api/users/me`: who `access_token` speaks for (the same type the server
    /// renders).
    pub async fn me(&self, access_token: &str) -> Result<Me, Error> {
        let response = self
            .http
            .get(format!("{}/api/users/me", self.base))
            .bearer_auth(access_token)
            .send()
            .await?;
        Ok(read::<tessera_proto::standard::Data<Me>>(response)
            .await?
            .data)
    }

    async fn token(&self, form: &[(&str, &str)]) -> Result<TokenResponse, Error> {
        self.form("/oauth/token", form).await
    }

    async fn form<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<T, Error> {
        read(self.send_form(path, form).await?).await
    }

    async fn send_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
    ) -> Result<reqwest::Response, Error> {
        let body = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(form)
            .finish();
        let basic = STANDARD.encode(format!(
            "{}:{}",
            form_urlencoded::byte_serialize(self.client_id.as_bytes()).collect::<String>(),
            form_urlencoded::byte_serialize(self.client_secret.as_bytes()).collect::<String>()
        ));
        let response = self
            .http
            .post(format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, format!("Basic {basic}"))
            .header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
            .body(body)
            .send()
            .await?;
        Ok(response)
    }
}

/// A JSON body on success; RFC 6749 §5.2's `{"error", "error_description"}` otherwise.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T, Error> {
    let status = response.status().as_u16();
    let retry_after = crate::retry_after(&response);
    let bytes = response.bytes().await?;
    if (200..300).contains(&status) {
        if let Ok(v) = serde_json::from_slice::<T>(&bytes) {
            return Ok(v);
        }
    } else if let Ok(e) = serde_json::from_slice::<OAuthError>(&bytes) {
        return Err(Error::Api {
            status,
            code: e.error,
            message: e.error_description.unwrap_or_default(),
            retry_after,
        });
    }
    Err(Error::Unexpected {
        status,
        body: String::from_utf8_lossy(&bytes).chars().take(500).collect(),
    })
}
