//! Refresh-token rotation: each use returns a new token; reuse within the grace period is
//! refused without harm, reuse after it revokes the family; tokens are bound to their client.

use tessera_core::EngineError;
use tessera_core::grants::token_exchange::{self, TokenType};
use tessera_core::grants::{GrantRequest, client_credentials, refresh_token};
use tessera_core::policy;
use tessera_core::scope::ScopeSet;

use crate::support::{T0, World, refused};

/// A fresh refresh token of the world's partner for a new account.
async fn family(w: &World) -> String {
    let caller = w.partner_caller();
    let account = w.account().await;
    let machine = w
        .grant(
            &caller,
            GrantRequest::ClientCredentials(client_credentials::Request {
                scope: ScopeSet::parse("crm").unwrap(),
            }),
            T0,
        )
        .await
        .unwrap()
        .access_token;
    let issued = w
        .grant(
            &caller,
            GrantRequest::TokenExchange(token_exchange::Request {
                subject_token: machine,
                subject_token_type: TokenType::MachineToken,
                requested_subject: Some(account.id),
                scope: ScopeSet::parse("crm").unwrap(),
                actor_token: None,
                audience: None,
            }),
            T0,
        )
        .await
        .unwrap();
    issued.refresh_token.unwrap().expose().to_string()
}

fn refresh(token: &str) -> GrantRequest {
    GrantRequest::RefreshToken(refresh_token::Request {
        refresh_token: token.into(),
        scope: None,
    })
}

#[tokio::test]
async fn each_use_rotates_and_keeps_the_family() {
    let w = World::new().await;
    let caller = w.partner_caller();
    let first = family(&w).await;
    let a = w.grant(&caller, refresh(&first), T0 + 60).await.unwrap();
    let second = a.refresh_token.unwrap().expose().to_string();
    assert_ne!(second, first);
    let b = w.grant(&caller, refresh(&second), T0 + 120).await.unwrap();
    let (ca, cb) = (
        w.claims(&a.access_token, T0 + 120),
        w.claims(&b.access_token, T0 + 120),
    );
    assert_eq!(ca.sid, cb.sid, "one family");
    assert_eq!(ca.sub, cb.sub);
    assert_eq!(cb.exp, T0 + 120 + policy::CLIENT_ACCESS_TOKEN_TTL);
}

#[tokio::test]
async fn a_retry_within_the_grace_period_replaces_a_lost_successor() {
    let w = World::new().await;
    let caller = w.partner_caller();
    let first = family(&w).await;
    let rotated_at = T0 + 60;
    let lost = w.grant(&caller, refresh(&first), rotated_at).await.unwrap();
    let at = rotated_at + policy::REFRESH_REUSE_GRACE;
    // At the last second of the grace period the retry still gets a fresh pair...
    let retry = w.grant(&caller, refresh(&first), at).await.unwrap();
    let head = retry.refresh_token.unwrap().expose().to_string();
    // ...and the lost successor is dead, without harm to the family.
    let lost = lost.refresh_token.unwrap().expose().to_string();
    let e = refused(w.grant(&caller, refresh(&lost), at).await);
    assert!(matches!(e, EngineError::RefreshTokenInvalid(_)), "{e:?}");
    let next = w.grant(&caller, refresh(&head), at).await.unwrap();
    // The successor was used now: presenting the first token again is reuse, refused.
    let e = refused(w.grant(&caller, refresh(&first), at).await);
    assert!(matches!(e, EngineError::RefreshTokenInvalid(_)), "{e:?}");
    let next = next.refresh_token.unwrap().expose().to_string();
    assert!(w.grant(&caller, refresh(&next), at).await.is_ok());
}

#[tokio::test]
async fn a_family_ends_at_its_lifetime_however_often_refreshed() {
    let w = World::with_config(|c| c.refresh_family_lifetime = 3_600).await;
    let caller = w.partner_caller();
    let mut token = family(&w).await;
    for step in 1..=5 {
        let issued = w
            .grant(&caller, refresh(&token), T0 + step * 600)
            .await
            .unwrap();
        token = issued.refresh_token.unwrap().expose().to_string();
    }
    let e = refused(w.grant(&caller, refresh(&token), T0 + 3_600).await);
    assert!(matches!(e, EngineError::RefreshTokenInvalid(_)), "{e:?}");
}

#[tokio::test]
async fn reuse_after_the_grace_period_revokes_the_family() {
    let w = World::new().await;
    let caller = w.partner_caller();
    let first = family(&w).await;
    let rotated_at = T0 + 60;
    let next = w.grant(&caller, refresh(&first), rotated_at).await.unwrap();
    let at = rotated_at + policy::REFRESH_REUSE_GRACE + 1;
    let e = refused(w.grant(&caller, refresh(&first), at).await);
    assert!(matches!(e, EngineError::RefreshTokenInvalid(_)), "{e:?}");
    let successor = next.refresh_token.unwrap().expose().to_string();
    let e = refused(w.grant(&caller, refresh(&successor), at).await);
    assert!(matches!(e, EngineError::RefreshTokenInvalid(_)), "{e:?}");
    // The family's access token is revoked too.
    assert!(matches!(
        w.engine.verify_token(&next.access_token, at),
        Err(EngineError::TokenUnknownOrRevoked)
    ));
}

#[tokio::test]
async fn a_refresh_token_expires_after_its_lifetime() {
    let w = World::new().await;
    let caller = w.partner_caller();
    let first = family(&w).await;
    let e = refused(
        w.grant(&caller, refresh(&first), T0 + policy::REFRESH_TOKEN_TTL)
            .await,
    );
    assert!(matches!(e, EngineError::RefreshTokenInvalid(_)), "{e:?}");
    let first = family(&w).await;
    assert!(
        w.grant(&caller, refresh(&first), T0 + policy::REFRESH_TOKEN_TTL - 1)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn another_client_cannot_use_it_and_it_stays_usable() {
    let w = World::new().await;
    let first = family(&w).await;
    let (client, _, _) = w.client(&["refresh_token"]).await;
    let e = refused(w.grant(&client, refresh(&first), T0 + 1).await);
    assert!(matches!(e, EngineError::ClientIdMismatch), "{e:?}");
    assert!(
        w.grant(&w.partner_caller(), refresh(&first), T0 + 2)
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn garbage_and_unknown_tokens_are_refused() {
    let w = World::new().await;
    let caller = w.partner_caller();
    for token in [
        "not-a-token",
        "trt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    ] {
        let e = refused(w.grant(&caller, refresh(token), T0).await);
        assert!(
            matches!(e, EngineError::RefreshTokenInvalid(_)),
            "{token}: {e:?}"
        );
    }
}

#[tokio::test]
async fn a_family_shorter_than_a_token_ends_its_first_token_too() {
    // Found by an attack: the first token of a family outlived a short family lifetime, and
    // introspection called it active after a refresh with it was refused.
    let w = World::with_config(|c| c.refresh_family_lifetime = 60).await;
    let caller = w.partner_caller();
    let first = family(&w).await;
    let answer = w.engine.introspect(&caller, &first, T0 + 61).await.unwrap();
    assert!(
        matches!(answer, tessera_core::introspect::Introspection::Inactive),
        "{answer:?}"
    );
    let e = refused(w.grant(&caller, refresh(&first), T0 + 61).await);
    assert!(matches!(e, EngineError::RefreshTokenInvalid(_)), "{e:?}");
}
