//! `client_credentials`: a partner's machine token (8 hours), a client's app token (1 hour).

use tessera_core::grants::{GrantRequest, client_credentials};
use tessera_core::jwt::{JwtError, TokenUse};
use tessera_core::model::GrantType;
use tessera_core::scope::ScopeSet;
use tessera_core::{EngineError, Field};

use crate::support::{T0, World, refused};

fn request(scope: &str) -> GrantRequest {
    GrantRequest::ClientCredentials(client_credentials::Request {
        scope: ScopeSet::parse(scope).unwrap(),
    })
}

#[tokio::test]
async fn a_partner_gets_a_machine_token_that_expires_after_eight_hours() {
    let w = World::new().await;
    let issued = w
        .grant(&w.partner_caller(), request("crm"), T0)
        .await
        .unwrap();
    assert_eq!(issued.token_use, TokenUse::MachineToken);
    assert_eq!(issued.expires_in, 8 * 3600);
    assert!(issued.refresh_token.is_none());
    let claims = w.claims(&issued.access_token, T0);
    assert_eq!(claims.sub, w.partner.id);
    assert_eq!(claims.client_id, w.partner.id);
    assert_eq!(claims.scope, "crm");
    assert_eq!((claims.iat, claims.exp), (T0, T0 + 8 * 3600));
    // Valid up to the last second, expired at exp.
    assert!(
        w.engine
            .verify_token(&issued.access_token, T0 + 8 * 3600 - 1)
            .is_ok()
    );
    assert!(matches!(
        w.engine.verify_token(&issued.access_token, T0 + 8 * 3600),
        Err(EngineError::TokenInvalid(JwtError::Expired))
    ));
}

#[tokio::test]
async fn a_partner_must_name_scopes_within_its_own() {
    let w = World::new().await;
    let e = refused(w.grant(&w.partner_caller(), request(""), T0).await);
    assert!(
        matches!(&e, EngineError::Validation(f) if f[0].field == Field::Scope),
        "{e:?}"
    );
    let e = refused(
        w.grant(&w.partner_caller(), request("crm billing"), T0)
            .await,
    );
    assert!(
        matches!(&e, EngineError::ScopeForbidden(s) if s == &["billing".to_string()]),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_client_gets_an_app_token_with_everything_it_may_have_by_default() {
    let w = World::new().await;
    let (caller, client, _) = w.client(&["client_credentials"]).await;
    let issued = w.grant(&caller, request(""), T0).await.unwrap();
    assert_eq!(issued.token_use, TokenUse::AppToken);
    assert_eq!(issued.expires_in, 3600);
    let claims = w.claims(&issued.access_token, T0);
    assert_eq!(claims.sub, client.id);
    assert_eq!(claims.partner_id.as_deref(), Some(w.partner.id.as_str()));
    assert_eq!(
        ScopeSet::parse(&claims.scope).unwrap().to_claim(),
        "crm transport"
    );
}

#[tokio::test]
async fn a_client_may_use_only_its_registered_grants() {
    let w = World::new().await;
    let (caller, _, _) = w.client(&["refresh_token"]).await;
    let e = refused(w.grant(&caller, request(""), T0).await);
    assert!(
        matches!(
            e,
            EngineError::UnauthorizedClient(GrantType::ClientCredentials)
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_rate_limit_refuses_a_burst_past_its_budget() {
    let w = World::with_config(|c| c.token_rate_limit = 3).await;
    let caller = w.partner_caller();
    for _ in 0..3 {
        w.grant(&caller, request("crm"), T0).await.unwrap();
    }
    let e = refused(w.grant(&caller, request("crm"), T0).await);
    assert!(
        matches!(e, EngineError::RateLimited { retry_after_secs } if retry_after_secs >= 1),
        "{e:?}"
    );
}
