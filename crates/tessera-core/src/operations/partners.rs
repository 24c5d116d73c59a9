//! Partners: create, status, password, API tokens.

use super::*;
pub use tessera_proto::admin::{
    CreatePartner, PartnerCreated, PartnerRef, PartnerStatusSet, PartnerTokenCreated, Revoked,
};

impl TryFrom<CreatePartner> for NewPartner {
    type Error = AdminError;

    fn try_from(w: CreatePartner) -> Result<NewPartner, AdminError> {
        Ok(NewPartner {
            scopes: scopes(&w.scopes)?,
            name: w.name,
            email: w.email,
            password: w.password,
            org_code: w.org_code,
        })
    }
}

pub async fn create_partner(
    store: &dyn Store,
    passwords: &Passwords,
    by: &Operator,
    input: &NewPartner,
    now: i64,
) -> Result<PartnerCreated, AdminError> {
    let changing = Changing {
        by,
        change: "partner.create",
        now,
    };
    let p = admin::create_partner(store, passwords, input, &changing).await?;
    Ok(PartnerCreated {
        partner_id: p.id,
        org_code: p.org_code,
    })
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
