//! OAuth clients: create, rotate the secret, enable and disable.

use super::*;
pub use tessera_proto::admin::{
    ClientCreated, ClientStatus, ClientStatusSet, CreateClient, SecretRotated,
};

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
