//! The registry writes behind [`crate::operations`], private to them: each function validates
//! its input and writes through the store, with the audit event of the change ([`Changing`]) in
//! the same transaction, so no change is made unrecorded and no record names a change that was
//! not made. Changes reach running servers through the change feed the store writes alongside.

use std::collections::HashSet;

use serde_json::json;

use crate::audit::{AuditEvent, Event};
use crate::keys::{Alg, KeyUse, StoredKey, generate_key_for};
use crate::master::MasterKey;
use crate::model::PasswordHash;
use crate::model::{Client, GrantType, Partner, PartnerStatus, Role, User};
use crate::password::{Passwords, check_strength};
use crate::policy::MAX_EMAIL_LEN;
use crate::scope::ScopeSet;
use crate::secret::{Secret, SecretKind, generate, random_bytes};
use crate::store::{Store, StoreError};

mod changing;
mod rules;

pub(crate) use changing::Changing;

use rules::{check_email, check_name, check_origin, check_redirect_uri};

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("{0}")]
    Invalid(String),
    #[error("a partner with email {0} already exists")]
    DuplicateEmail(String),
    #[error("org code {0} is already used by another partner")]
    DuplicateOrgCode(String),
    #[error("user {0} already exists for this partner")]
    DuplicateUsername(String),
    /// A partner named in an input (a new client's or user's) does not exist.
    #[error("unknown partner {0}")]
    UnknownPartner(String),
    /// The record a change is about (named by its id, as in an admin API path) does not exist.
    #[error("{0}")]
    NotFound(String),
    #[error("unknown account {0} (or it belongs to another partner)")]
    UnknownAccount(String),
    #[error("unknown scope(s): {} (register them first)", .0.join(", "))]
    UnknownScopes(Vec<String>),
    #[error("scope(s) outside the partner's allowed scopes: {}", .0.join(", "))]
    ScopesOutsidePartner(Vec<String>),
    /// The password queue is full (a flood of password checks): nothing was written.
    #[error("the server is busy hashing passwords; retry in a second")]
    Busy,
    #[error(transparent)]
    Keys(#[from] crate::keys::KeyError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A partner to create, as the operations take it: its scopes parsed. Built from the admin
/// API's `CreatePartner` by `TryFrom` (the CLI builds that from its flags). No `Debug`: it holds
/// a password.
pub struct NewPartner {
    pub name: String,
    pub email: String,
    pub password: String,
    pub scopes: ScopeSet,
    pub org_code: Option<String>,
}

/// Check the scopes are registered.
async fn registered(store: &dyn Store, set: &ScopeSet) -> Result<(), AdminError> {
    let known: HashSet<String> = store.list_scopes().await?.into_iter().collect();
    let unknown: Vec<String> = set
        .iter()
        .filter(|s| !known.contains(*s))
        .map(str::to_string)
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(AdminError::UnknownScopes(unknown))
    }
}

fn new_org_code() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    random_bytes::<8>()
        .iter()
        .map(|b| ALPHABET[(*b as usize) % ALPHABET.len()] as char)
        .collect()
}

/// A password's hash, through the server's bounded password queue (on a blocking thread, like
/// every Argon2 run), or [`AdminError::Busy`].
async fn hash(passwords: &Passwords, password: &str) -> Result<PasswordHash, AdminError> {
    passwords
        .hash_queued(password)
        .await
        .ok_or(AdminError::Busy)
}

pub(crate) async fn create_partner(
    store: &dyn Store,
    passwords: &Passwords,
    input: &NewPartner,
    changing: &Changing<'_>,
) -> Result<Partner, AdminError> {
    let now = changing.now;
    check_name(&input.name)?;
    let email = check_email(&input.email)?;
    check_strength(&input.password).map_err(AdminError::Invalid)?;
    registered(store, &input.scopes).await?;
    if store.partner_by_email(&email).await?.is_some() {
        return Err(AdminError::DuplicateEmail(email));
    }
    let org_code = match input.org_code.as_deref() {
        Some(c) => {
            if !(2..=32).contains(&c.len())
                || !c
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                return Err(AdminError::Invalid(
                    "the org code must be 2 to 32 letters, digits, '-' or '_'".into(),
                ));
            }
            c.to_string()
        }
        None => new_org_code(),
    };
    let partner = Partner {
        id: uuid::Uuid::now_v7().to_string(),
        name: input.name.trim().to_string(),
        email: email.clone(),
        org_code: org_code.clone(),
        status: PartnerStatus::Active,
        scopes: input.scopes.clone(),
        password_hash: hash(passwords, &input.password).await?,
        created_at: now,
    };
    let event = changing.event(json!({"partner_id": partner.id, "username": partner.email}));
    match store.insert_partner(&partner, &[event]).await {
        Ok(()) => Ok(partner),
        Err(StoreError::Conflict("email")) => Err(AdminError::DuplicateEmail(email)),
        Err(StoreError::Conflict(_)) => Err(AdminError::DuplicateOrgCode(org_code)),
        Err(e) => Err(e.into()),
    }
}

pub(crate) async fn set_partner_status(
    store: &dyn Store,
    partner_id: &str,
    status: PartnerStatus,
    changing: &Changing<'_>,
) -> Result<(), AdminError> {
    let event = changing.event(json!({"partner_id": partner_id, "status": status.as_str()}));
    match store.set_partner_status(partner_id, status, &[event]).await {
        Err(StoreError::NotFound(_)) => {
            Err(AdminError::NotFound(format!("no partner {partner_id}")))
        }
        other => Ok(other?),
    }
}

/// Mint a partner API token; the clear token is returned once.
pub(crate) async fn create_partner_token(
    store: &dyn Store,
    partner_id: &str,
    changing: &Changing<'_>,
) -> Result<Secret, AdminError> {
    let token = generate(SecretKind::PartnerToken);
    let event = changing.event(json!({"partner_id": partner_id}));
    match store
        .insert_partner_token(partner_id, &token.digest(), changing.now, &[event])
        .await
    {
        Err(StoreError::NotFound(_)) => {
            Err(AdminError::NotFound(format!("no partner {partner_id}")))
        }
        other => {
            other?;
            Ok(token)
        }
    }
}

/// A client to register, as the operations take it: its grant types and scopes parsed. Built
/// from the admin API's `CreateClient` by `TryFrom`.
#[derive(Clone, Debug)]
pub struct NewClient {
    pub partner_id: String,
    pub name: String,
    /// At least one, each once.
    pub grant_types: Vec<GrantType>,
    pub scopes: ScopeSet,
    pub redirect_uris: Vec<String>,
    pub frame_origins: Vec<String>,
    pub dev: bool,
    /// Accept PKCE `plain` besides S256 (the partner dialect's contract lists it; off unless
    /// asked for).
    pub pkce_plain: bool,
    /// Take authorization requests only by reference to one pushed first (RFC 9126).
    pub require_par: bool,
    /// Let Tessera's registration page create accounts through this client.
    pub allow_registration: bool,
}

/// Register a client; returns it and its secret, shown once.
pub(crate) async fn create_client(
    store: &dyn Store,
    input: &NewClient,
    changing: &Changing<'_>,
) -> Result<(Client, Secret), AdminError> {
    let now = changing.now;
    check_name(&input.name)?;
    let partner = store
        .partner_by_id(&input.partner_id)
        .await?
        .ok_or_else(|| AdminError::UnknownPartner(input.partner_id.clone()))?;
    if input.grant_types.is_empty() {
        return Err(AdminError::Invalid("give at least one grant type".into()));
    }
    let mut grant_types = Vec::new();
    for g in &input.grant_types {
        if !grant_types.contains(g) {
            grant_types.push(*g);
        }
    }
    let scopes = input.scopes.clone();
    registered(store, &scopes).await?;
    let outside = scopes.outside(&partner.scopes);
    if !outside.is_empty() {
        return Err(AdminError::ScopesOutsidePartner(outside));
    }
    for uri in &input.redirect_uris {
        check_redirect_uri(uri)?;
    }
    for origin in &input.frame_origins {
        check_origin(origin)?;
    }
    let secret = generate(SecretKind::ClientSecret);
    let client = Client {
        id: format!("tc_{}", uuid::Uuid::now_v7().simple()),
        partner_id: partner.id,
        name: input.name.trim().to_string(),
        secret_digest: secret.digest(),
        grant_types,
        scopes,
        redirect_uris: input.redirect_uris.clone(),
        frame_origins: input.frame_origins.clone(),
        dev: input.dev,
        pkce_plain: input.pkce_plain,
        require_par: input.require_par,
        allow_registration: input.allow_registration,
        previous_secret: None,
        disabled: false,
        created_at: now,
    };
    let event = changing.event(json!({"partner_id": client.partner_id, "client_id": client.id}));
    store.insert_client(&client, &[event]).await?;
    Ok((client, secret))
}

/// Rotate a client's secret (shown once); with `overlap_secs`, the old secret keeps working
/// that long so a deployment can switch without downtime.
pub(crate) async fn rotate_client_secret(
    store: &dyn Store,
    client_id: &str,
    overlap_secs: Option<i64>,
    changing: &Changing<'_>,
) -> Result<Secret, AdminError> {
    let now = changing.now;
    if overlap_secs.is_some_and(|s| !(1..=30 * 86_400).contains(&s)) {
        return Err(AdminError::Invalid(
            "the overlap must be 1 second to 30 days".into(),
        ));
    }
    let secret = generate(SecretKind::ClientSecret);
    let event = changing.event(json!({"client_id": client_id, "overlap": overlap_secs}));
    let until = overlap_secs.map(|s| now + s);
    match store
        .rotate_client_secret(client_id, &secret.digest(), until, &[event])
        .await
    {
        Err(StoreError::NotFound(_)) => Err(AdminError::NotFound(format!("no client {client_id}"))),
        other => {
            other?;
            Ok(secret)
        }
    }
}

/// Disable a client (it authenticates no more and its tokens stop verifying) or enable it.
pub(crate) async fn set_client_disabled(
    store: &dyn Store,
    client_id: &str,
    disabled: bool,
    changing: &Changing<'_>,
) -> Result<(), AdminError> {
    let status = if disabled { "disabled" } else { "active" };
    let event = changing.event(json!({"client_id": client_id, "status": status}));
    match store
        .set_client_disabled(client_id, disabled, &[event])
        .await
    {
        Err(StoreError::NotFound(_)) => Err(AdminError::NotFound(format!("no client {client_id}"))),
        other => Ok(other?),
    }
}

/// Revoke one partner API token by its value; whose it was.
pub(crate) async fn revoke_partner_token(
    store: &dyn Store,
    token: &str,
    changing: &Changing<'_>,
) -> Result<String, AdminError> {
    if SecretKind::of(token) != Some(SecretKind::PartnerToken) {
        return Err(AdminError::Invalid(
            "that is not a partner API token".into(),
        ));
    }
    let digest = crate::secret::SecretDigest::of(token);
    // Whose it is, for the record (read first: the event is written with the revocation).
    let owner = store.partner_by_token(&digest).await?;
    let event = changing.event(json!({"partner_id": owner, "revoked": "one"}));
    store
        .revoke_partner_token(&digest, changing.now, &[event])
        .await?
        .ok_or_else(|| AdminError::Invalid("no active partner token has that value".into()))
}

/// Revoke every API token of a partner; how many.
pub(crate) async fn revoke_partner_tokens(
    store: &dyn Store,
    partner_id: &str,
    changing: &Changing<'_>,
) -> Result<u64, AdminError> {
    store
        .partner_by_id(partner_id)
        .await?
        .ok_or_else(|| AdminError::NotFound(format!("no partner {partner_id}")))?;
    let event = changing.event(json!({"partner_id": partner_id, "revoked": "all"}));
    Ok(store
        .revoke_partner_tokens(partner_id, changing.now, &[event])
        .await?)
}

/// Replace a partner's password (checked for strength). Running servers drop the partner's
/// verified credentials within a second.
pub(crate) async fn set_partner_password(
    store: &dyn Store,
    passwords: &Passwords,
    partner_id: &str,
    password: &str,
    changing: &Changing<'_>,
) -> Result<(), AdminError> {
    check_strength(password).map_err(AdminError::Invalid)?;
    let hash = hash(passwords, password).await?;
    let event = changing.event(json!({"partner_id": partner_id}));
    match store
        .set_partner_password(partner_id, &hash, &[event])
        .await
    {
        Err(StoreError::NotFound(_)) => {
            Err(AdminError::NotFound(format!("no partner {partner_id}")))
        }
        other => Ok(other?),
    }
}

/// Replace a user's password (checked for strength); the user's id.
pub(crate) async fn set_user_password(
    store: &dyn Store,
    passwords: &Passwords,
    partner_id: &str,
    username: &str,
    password: &str,
    changing: &Changing<'_>,
) -> Result<String, AdminError> {
    check_strength(password).map_err(AdminError::Invalid)?;
    let username = username.trim().to_ascii_lowercase();
    let hash = hash(passwords, password).await?;
    let user_id = store
        .user_by_username(partner_id, &username)
        .await?
        .map(|u| u.id);
    let event =
        changing.event(json!({"partner_id": partner_id, "username": username, "user_id": user_id}));
    match store
        .set_user_password(partner_id, &username, &hash, &[event])
        .await
    {
        Err(StoreError::NotFound(_)) => Err(AdminError::Invalid(format!(
            "no user {username:?} in partner {partner_id:?}"
        ))),
        other => Ok(other?),
    }
}

/// End every browser session of a user (after a leak, or to sign them out everywhere): the
/// user's id and how many sessions ended. A new `/authorize` then needs a fresh sign-in.
pub(crate) async fn end_user_sessions(
    store: &dyn Store,
    partner_id: &str,
    username: &str,
    changing: &Changing<'_>,
) -> Result<(String, u64), AdminError> {
    let username = username.trim().to_ascii_lowercase();
    let Some(user) = store.user_by_username(partner_id, &username).await? else {
        return Err(AdminError::Invalid(format!(
            "no user {username:?} in partner {partner_id:?}"
        )));
    };
    let event =
        changing.event(json!({"partner_id": partner_id, "username": username, "user_id": user.id}));
    let ended = store.end_user_sessions(&user.id, &[event]).await?;
    Ok((user.id, ended))
}

pub struct NewUser<'a> {
    pub partner_id: &'a str,
    pub username: &'a str,
    pub password: &'a str,
    pub role: Role,
    pub account_id: Option<&'a str>,
}

pub(crate) async fn create_user(
    store: &dyn Store,
    passwords: &Passwords,
    input: NewUser<'_>,
    changing: &Changing<'_>,
) -> Result<User, AdminError> {
    let now = changing.now;
    let username = input.username.trim().to_ascii_lowercase();
    if username.is_empty() || username.len() > MAX_EMAIL_LEN {
        return Err(AdminError::Invalid(format!(
            "the username must be 1 to {MAX_EMAIL_LEN} characters"
        )));
    }
    check_strength(input.password).map_err(AdminError::Invalid)?;
    store
        .partner_by_id(input.partner_id)
        .await?
        .ok_or_else(|| AdminError::UnknownPartner(input.partner_id.into()))?;
    match (input.role, input.account_id) {
        (Role::Member, None) => {
            return Err(AdminError::Invalid(
                "a member user belongs to an account: give its account id".into(),
            ));
        }
        (Role::Admin | Role::Customer, Some(_)) => {
            return Err(AdminError::Invalid(
                "only member users belong to an account: give no account id".into(),
            ));
        }
        (_, Some(account)) => {
            let owned = store
                .account_by_id(account)
                .await?
                .is_some_and(|a| a.partner_id == input.partner_id);
            if !owned {
                return Err(AdminError::UnknownAccount(account.into()));
            }
        }
        _ => {}
    }
    let user = User {
        id: uuid::Uuid::now_v7().to_string(),
        partner_id: input.partner_id.to_string(),
        account_id: input.account_id.map(str::to_string),
        username: username.clone(),
        role: input.role,
        password_hash: hash(passwords, input.password).await?,
        first_name: None,
        last_name: None,
        external_id: None,
        signed_up_by: None,
        created_at: now,
    };
    let event = changing.event(
        json!({"partner_id": user.partner_id, "username": user.username,
                                      "user_id": user.id, "role": user.role.as_str()}),
    );
    match store.insert_user(&user, &[event]).await {
        Err(StoreError::Conflict(_)) => Err(AdminError::DuplicateUsername(username)),
        other => {
            other?;
            Ok(user)
        }
    }
}

/// Revoke a user's consent for a client, with every refresh token issued under it.
/// The change is recorded twice, in its transaction: as the operator's `admin.change`, and as
/// the `grant.withdrawn` the user's own withdrawal records.
pub(crate) async fn revoke_grant(
    store: &dyn Store,
    user_id: &str,
    client_id: &str,
    changing: &Changing<'_>,
) -> Result<bool, AdminError> {
    let now = changing.now;
    let events = [
        changing.event(json!({"user_id": user_id, "client_id": client_id})),
        AuditEvent::new(Event::GrantWithdrawn, now)
            .client(client_id)
            .detail("user_id", user_id)
            .detail("by", changing.by.0.as_str())
            .in_request_context(),
    ];
    let until = crate::policy::family_revocation_until(now);
    Ok(store
        .revoke_grant(user_id, client_id, until, now, &events)
        .await?)
}

pub(crate) async fn add_scopes(
    store: &dyn Store,
    names: &ScopeSet,
    description: Option<&str>,
    changing: &Changing<'_>,
) -> Result<Vec<String>, AdminError> {
    if names.is_empty() {
        return Err(AdminError::Invalid("name at least one scope".into()));
    }
    let names: Vec<String> = names.iter().map(str::to_string).collect();
    // One description for several names would overwrite each one's own description.
    if description.is_some() && names.len() != 1 {
        return Err(AdminError::Invalid(
            "a description describes one scope: name exactly one with it".into(),
        ));
    }
    if description.is_some_and(|d| d.trim().is_empty() || d.chars().count() > 200) {
        return Err(AdminError::Invalid(
            "a scope description must be 1 to 200 characters".into(),
        ));
    }
    let event = changing.event(json!({"scopes": names}));
    store.add_scopes(&names, description, &[event]).await?;
    Ok(names)
}

/// Make a new key of `purpose`'s lane active; the lane's older keys stay published.
pub(crate) async fn rotate_keys(
    store: &dyn Store,
    master: &MasterKey,
    purpose: KeyUse,
    alg: Alg,
    changing: &Changing<'_>,
) -> Result<StoredKey, AdminError> {
    let now = changing.now;
    let key = generate_key_for(purpose, alg, master, now)?;
    let event = changing
        .event(json!({"kid": key.kid, "alg": key.alg.as_str(), "purpose": purpose.as_str()}));
    store.rotate_keys(&key, now, &[event]).await?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn org_codes_are_eight_unambiguous_characters() {
        let c = new_org_code();
        assert_eq!(c.len(), 8);
        assert!(!c.contains(['0', 'O', '1', 'I']));
    }
}
