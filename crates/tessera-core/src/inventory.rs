//! What an operator can list and look at: partners, clients, users, grants and scopes, as views
//! that carry no secret (no password hash, no secret digest), a page at a time. The CLI prints
//! them as JSON; the admin API serves the same views.
//!
//! Pages are keyset-paginated by id: `next` is the last id of a full page, to be passed as
//! `after` for the page that follows, and `None` once the listing is exhausted.

use crate::admin::AdminError;
use crate::identity::normalize_username;
use crate::model::{Client, Grant, Partner, User};
use crate::store::{GrantsOf, Store, UserFilter};
pub use tessera_proto::admin::{ClientView, GrantView, Page, PartnerView, ScopeView, UserView};

/// Records per page when none is asked for, and the most a page holds.
pub const DEFAULT_PAGE: u32 = 100;
pub const MAX_PAGE: u32 = 1000;

/// Where a page starts and how long it is.
#[derive(Debug, Clone, Default)]
pub struct PageRequest {
    pub after: Option<String>,
    pub limit: Option<u32>,
}

impl PageRequest {
    fn limit(&self) -> Result<u32, AdminError> {
        match self.limit.unwrap_or(DEFAULT_PAGE) {
            0 => Err(AdminError::Invalid("limit must be at least 1".into())),
            n if n > MAX_PAGE => Err(AdminError::Invalid(format!(
                "limit must be at most {MAX_PAGE}"
            ))),
            n => Ok(n),
        }
    }
}

fn page<R, T>(records: Vec<R>, limit: u32, id: fn(&R) -> &str, view: fn(R) -> T) -> Page<T> {
    let next = (records.len() == limit as usize)
        .then(|| records.last().map(|r| id(r).to_string()))
        .flatten();
    Page {
        items: records.into_iter().map(view).collect(),
        next,
    }
}

impl From<Partner> for PartnerView {
    fn from(p: Partner) -> Self {
        PartnerView {
            partner_id: p.id,
            name: p.name,
            email: p.email,
            org_code: p.org_code,
            status: p.status.as_str(),
            scopes: p.scopes.to_claim(),
            created_at: p.created_at,
        }
    }
}

impl From<Client> for ClientView {
    fn from(c: Client) -> Self {
        ClientView {
            client_id: c.id,
            partner_id: c.partner_id,
            name: c.name,
            grant_types: c.grant_types.iter().map(|g| g.wire()).collect(),
            scopes: c.scopes.to_claim(),
            redirect_uris: c.redirect_uris,
            frame_origins: c.frame_origins,
            dev: c.dev,
            pkce_plain: c.pkce_plain,
            require_par: c.require_par,
            allow_registration: c.allow_registration,
            status: if c.disabled { "disabled" } else { "active" },
            previous_secret_valid_until: c.previous_secret.map(|(_, until)| until),
            created_at: c.created_at,
        }
    }
}

impl From<User> for UserView {
    fn from(u: User) -> Self {
        UserView {
            user_id: u.id,
            partner_id: u.partner_id,
            account_id: u.account_id,
            username: u.username,
            role: u.role.as_str(),
            first_name: u.first_name,
            last_name: u.last_name,
            external_id: u.external_id,
            created_at: u.created_at,
        }
    }
}

impl From<Grant> for GrantView {
    fn from(g: Grant) -> Self {
        GrantView {
            grant_id: g.id,
            user_id: g.user_id,
            client_id: g.client_id,
            scope: g.scope,
            created_at: g.created_at,
            revoked_at: g.revoked_at,
        }
    }
}

pub async fn partners(
    store: &dyn Store,
    req: &PageRequest,
) -> Result<Page<PartnerView>, AdminError> {
    let limit = req.limit()?;
    let rows = store.list_partners(req.after.as_deref(), limit).await?;
    Ok(page(rows, limit, |p| &p.id, PartnerView::from))
}

pub async fn partner(store: &dyn Store, id: &str) -> Result<PartnerView, AdminError> {
    store
        .partner_by_id(id)
        .await?
        .map(PartnerView::from)
        .ok_or_else(|| AdminError::NotFound(format!("no partner {id}")))
}

pub async fn clients(
    store: &dyn Store,
    partner_id: Option<&str>,
    req: &PageRequest,
) -> Result<Page<ClientView>, AdminError> {
    let limit = req.limit()?;
    let rows = store
        .list_clients(partner_id, req.after.as_deref(), limit)
        .await?;
    Ok(page(rows, limit, |c| &c.id, ClientView::from))
}

pub async fn client(store: &dyn Store, id: &str) -> Result<ClientView, AdminError> {
    store
        .client_by_id(id)
        .await?
        .map(ClientView::from)
        .ok_or_else(|| AdminError::NotFound(format!("no client {id}")))
}

pub async fn users(
    store: &dyn Store,
    filter: UserFilter,
    req: &PageRequest,
) -> Result<Page<UserView>, AdminError> {
    let limit = req.limit()?;
    let filter = UserFilter {
        username: filter.username.as_deref().map(normalize_username),
        ..filter
    };
    let rows = store
        .list_users(&filter, req.after.as_deref(), limit)
        .await?;
    Ok(page(rows, limit, |u| &u.id, UserView::from))
}

pub async fn user(store: &dyn Store, id: &str) -> Result<UserView, AdminError> {
    store
        .user_by_id(id)
        .await?
        .map(UserView::from)
        .ok_or_else(|| AdminError::NotFound(format!("no user {id}")))
}

pub async fn grants(
    store: &dyn Store,
    of: &GrantsOf,
    req: &PageRequest,
) -> Result<Page<GrantView>, AdminError> {
    let limit = req.limit()?;
    let rows = store
        .list_grants_of(of, req.after.as_deref(), limit)
        .await?;
    Ok(page(rows, limit, |g| &g.id, GrantView::from))
}

pub async fn scopes(store: &dyn Store) -> Result<Vec<ScopeView>, AdminError> {
    Ok(store
        .scope_descriptions()
        .await?
        .into_iter()
        .map(|(name, description)| ScopeView { name, description })
        .collect())
}
