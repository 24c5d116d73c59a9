//! OAuth clients: create, rotate the secret, enable and disable.

use super::*;

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
