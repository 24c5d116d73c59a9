//! The engine's caches: fast, but never outliving the change that made them stale (the change
//! feed), and never a way around revocation, expiry or the lockout.

use tessera_core::EngineError;
use tessera_core::model::PartnerStatus;
use tessera_core::operations as ops;

use crate::support::{PASSWORD, T0, World, operator};

#[tokio::test]
async fn a_cached_partner_is_refreshed_by_the_change_feed() {
    let w = World::new().await;
    let email = w.partner.email.clone();
    w.engine
        .authenticate_partner_basic(&email, PASSWORD, T0)
        .await
        .unwrap();
    ops::set_partner_status(
        w.store.as_ref(),
        &operator(),
        &w.partner.id,
        PartnerStatus::Inactive,
        T0,
    )
    .await
    .unwrap();
    // The change is committed with its feed entry; this node learns of it at its next sync.
    assert!(w.engine.sync(T0).await.unwrap() >= 1);
    let e = w
        .engine
        .authenticate_partner_basic(&email, PASSWORD, T0)
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::PartnerInactive), "{e:?}");
}

#[tokio::test]
async fn a_changed_password_invalidates_the_verified_pair() {
    let w = World::new().await;
    let email = w.partner.email.clone();
    w.engine
        .authenticate_partner_basic(&email, PASSWORD, T0)
        .await
        .unwrap();
    let new_hash = w
        .engine
        .passwords()
        .hash_queued("another-long-passphrase-7")
        .await
        .unwrap();
    w.store
        .set_partner_password(&w.partner.id, &new_hash, &[])
        .await
        .unwrap();
    w.engine.sync(T0).await.unwrap();
    let e = w
        .engine
        .authenticate_partner_basic(&email, PASSWORD, T0)
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::InvalidCredentials), "{e:?}");
    w.engine
        .authenticate_partner_basic(&email, "another-long-passphrase-7", T0)
        .await
        .unwrap();
}

#[tokio::test]
async fn failures_lock_the_username_until_the_lock_ends() {
    let w = World::new().await;
    let email = w.partner.email.clone();
    let mut locked_for = None;
    for _ in 0..6 {
        match w
            .engine
            .authenticate_partner_basic(&email, "wrong-password", T0)
            .await
        {
            Err(EngineError::InvalidCredentials) => {}
            Err(EngineError::Locked { retry_after_secs }) => {
                locked_for = Some(retry_after_secs);
                break;
            }
            other => panic!("{other:?}"),
        }
    }
    // Five free failures, then the sixth attempt locks.
    let e = w
        .engine
        .authenticate_partner_basic(&email, PASSWORD, T0)
        .await
        .unwrap_err();
    let EngineError::Locked { retry_after_secs } = e else {
        panic!("{e:?} after {locked_for:?}");
    };
    // While locked even the right password is not checked; once the lock ends it is.
    let until = T0 + retry_after_secs as i64;
    assert!(
        w.engine
            .authenticate_partner_basic(&email, PASSWORD, until)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_client_secret_is_checked_against_the_cached_client() {
    let w = World::new().await;
    let (_, client, secret) = w.client(&["client_credentials"]).await;
    assert!(
        w.engine
            .authenticate_client(&client.id, &secret, T0)
            .await
            .is_ok()
    );
    let e = w
        .engine
        .authenticate_client(&client.id, "tcs_wrong", T0)
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::InvalidClient(_)), "{e:?}");
    ops::set_partner_status(
        w.store.as_ref(),
        &operator(),
        &w.partner.id,
        PartnerStatus::Inactive,
        T0,
    )
    .await
    .unwrap();
    w.engine.sync(T0).await.unwrap();
    let e = w
        .engine
        .authenticate_client(&client.id, &secret, T0)
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::InvalidClient(_)), "{e:?}");
}

#[tokio::test]
async fn the_janitor_deletes_expired_refresh_tokens_and_keeps_live_ones() {
    use tessera_core::grants::{GrantRequest, client_credentials, refresh_token, token_exchange};
    use tessera_core::scope::ScopeSet;
    let w = World::new().await;
    let caller = w.partner_caller();
    let account = w.account().await;
    let exchange = |now: i64| {
        let (w, caller, account) = (&w, caller.clone(), account.id.clone());
        async move {
            let machine = w
                .grant(
                    &caller,
                    GrantRequest::ClientCredentials(client_credentials::Request {
                        scope: ScopeSet::parse("crm").unwrap(),
                    }),
                    now,
                )
                .await
                .unwrap()
                .access_token;
            w.grant(
                &caller,
                GrantRequest::TokenExchange(token_exchange::Request {
                    subject_token: machine,
                    subject_token_type: token_exchange::TokenType::MachineToken,
                    requested_subject: Some(account),
                    scope: ScopeSet::parse("crm").unwrap(),
                    actor_token: None,
                    audience: None,
                }),
                now,
            )
            .await
            .unwrap()
            .refresh_token
            .unwrap()
            .expose()
            .to_string()
        }
    };
    let old = exchange(T0).await;
    let later = T0 + tessera_core::policy::REFRESH_TOKEN_TTL + 100;
    let young = exchange(later - 60).await;
    let deleted = w
        .engine
        .purge(later, std::time::Duration::from_secs(5))
        .await;
    let rows = deleted
        .iter()
        .find(|(what, _)| *what == tessera_core::store::Purge::RefreshTokens)
        .unwrap()
        .1;
    assert_eq!(rows, 1, "{deleted:?}");
    let refresh = |token: &str| {
        GrantRequest::RefreshToken(refresh_token::Request {
            refresh_token: token.into(),
            scope: None,
        })
    };
    // The expired token is gone (unknown now); the young one still refreshes.
    let e = w.grant(&caller, refresh(&old), later).await.unwrap_err();
    assert!(
        matches!(e, EngineError::RefreshTokenInvalid(m) if m.contains("unknown")),
        "{e:?}"
    );
    assert!(w.grant(&caller, refresh(&young), later).await.is_ok());
}

#[tokio::test]
async fn a_node_away_longer_than_the_feed_keeps_reloads_instead_of_trusting_it() {
    let w = World::new().await;
    let email = w.partner.email.clone();
    w.engine
        .authenticate_partner_basic(&email, PASSWORD, T0)
        .await
        .unwrap();
    let machine = w
        .grant(
            &w.partner_caller(),
            tessera_core::grants::GrantRequest::ClientCredentials(
                tessera_core::grants::client_credentials::Request {
                    scope: tessera_core::scope::ScopeSet::parse("crm").unwrap(),
                },
            ),
            T0,
        )
        .await
        .unwrap()
        .access_token;
    // While this node is away, the partner is deactivated and, a day later, the feed entry
    // that said so is pruned.
    ops::set_partner_status(
        w.store.as_ref(),
        &operator(),
        &w.partner.id,
        PartnerStatus::Inactive,
        T0,
    )
    .await
    .unwrap();
    let later = T0 + 2 * 86_400;
    w.store.prune_changes(later - 86_400).await.unwrap();
    assert!(w.store.changes_since(0, 10).await.unwrap().is_empty());
    // The feed is silent, but the node knows it was away too long and reloads.
    w.engine.sync(later).await.unwrap();
    let e = w
        .engine
        .authenticate_partner_basic(&email, PASSWORD, later)
        .await
        .unwrap_err();
    assert!(matches!(e, EngineError::PartnerInactive), "{e:?}");
    assert!(w.engine.verify_token(&machine, T0 + 60).is_err());
}

#[tokio::test]
async fn scheduled_rotation_announces_the_next_key_a_day_before_it_signs() {
    const DAY: i64 = 86_400;
    let w = World::with_config(|c| c.key_rotation = Some(10 * DAY)).await;
    let first = w.engine.jwks()["keys"][0]["kid"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        !w.engine
            .rotate_keys_on_schedule(T0 + 8 * DAY)
            .await
            .unwrap()
    );
    // Nine days in: the next key is published, the first still signs.
    w.engine.housekeeping(T0 + 9 * DAY).await;
    let jwks = w.engine.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    // Each lane (access tokens, ID tokens) publishes its next key beside its active one.
    assert_eq!(kids.len(), 4, "{jwks}");
    let rs256 = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "RS256")
        .count();
    assert_eq!(rs256, 2, "the ID-token lane rotates on the same schedule");
    assert!(
        !w.engine
            .rotate_keys_on_schedule(T0 + 9 * DAY)
            .await
            .unwrap(),
        "one pending key"
    );
    let caller = w.partner_caller();
    let machine = |now| {
        w.grant(
            &caller,
            tessera_core::grants::GrantRequest::ClientCredentials(
                tessera_core::grants::client_credentials::Request {
                    scope: tessera_core::scope::ScopeSet::parse("crm").unwrap(),
                },
            ),
            now,
        )
    };
    let before = machine(T0 + 10 * DAY - 60).await.unwrap().access_token;
    assert_eq!(crate::support::kid(&before), first);
    // Ten days in: the next key signs; a token of the first still verifies.
    w.engine.housekeeping(T0 + 10 * DAY).await;
    let after = machine(T0 + 10 * DAY).await.unwrap().access_token;
    assert_ne!(crate::support::kid(&after), first);
    assert!(kids.contains(&crate::support::kid(&after).as_str()));
    assert!(w.engine.verify_token(&before, T0 + 10 * DAY + 60).is_ok());
}
