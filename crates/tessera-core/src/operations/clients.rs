//! OAuth clients: create, rotate the secret, enable and disable.

use super::*;
pub use tessera_proto::admin::{
    ClientCreated, ClientStatus, ClientStatusSet, CreateClient, SecretRotated,
};

impl TryFrom<CreateClient> for NewClient {
    type Error = AdminError;

    /// Parse the grant types (each by its name, say `token_exchange`, by the `grant_type` a
    /// token request sends, or as `token-exchange`) and the scopes.
    fn try_from(w: CreateClient) -> Result<NewClient, AdminError> {
        let grant_types = w
            .grant_types
            .iter()
            .map(|g| {
                GrantType::parse(g)
                    .or((g == "token-exchange").then_some(GrantType::TokenExchange))
                    .ok_or_else(|| {
                        AdminError::Invalid(format!(
                            "unknown grant type {g:?}: use client_credentials, password, \
                             refresh_token, authorization_code or token_exchange"
                        ))
                    })
            })
            .collect::<Result<_, _>>()?;
        Ok(NewClient {
            partner_id: w.partner_id,
            name: w.name,
            grant_types,
            scopes: scopes(&w.scopes)?,
            redirect_uris: w.redirect_uris,
            frame_origins: w.frame_origins,
            dev: w.dev,
            pkce_plain: w.pkce_plain,
            require_par: w.require_par,
            allow_registration: w.allow_registration,
        })
    }
}

pub async fn create_client(
    store: &dyn Store,
    by: &Operator,
    input: &NewClient,
    now: i64,
) -> Result<ClientCreated, AdminError> {
    let changing = Changing {
        by,
        change: "client.create",
        now,
    };
    let (client, secret) = admin::create_client(store, input, &changing).await?;
    Ok(ClientCreated {
        client_id: client.id,
        client_secret: secret.expose().to_string(),
    })
}

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
