//! `authorization_code` with PKCE, driven through the engine's own front half (`/authorize`
//! validation, sign-in, consent) exactly as the pages call it.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use tessera_core::authorize::AuthorizeParams;
use tessera_core::grants::{GrantRequest, authorization_code, refresh_token};
use tessera_core::model::{Client, Role, User};
use tessera_core::{Caller, EngineError, policy};

use crate::support::{PASSWORD, T0, World, refused};

const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
const REDIRECT: &str = "https://app.test/cb";

struct Flow {
    caller: Caller,
    client: Arc<Client>,
    user: User,
}

async fn flow(w: &World, grants: &[&str]) -> Flow {
    let (caller, client, _) = w.client(grants).await;
    let account = w.account().await;
    let user = w.user(Role::Member, Some(&account)).await;
    Flow {
        caller,
        client,
        user,
    }
}

/// Run `/authorize`, sign-in and consent at `now`; the code from the redirect.
async fn code(w: &World, f: &Flow, now: i64) -> String {
    let challenge = URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()).as_ref(),
    );
    let params = AuthorizeParams {
        response_type: Some("code".into()),
        client_id: Some(f.client.id.clone()),
        redirect_uri: Some(REDIRECT.into()),
        scope: Some("crm".into()),
        state: Some("st".into()),
        code_challenge: Some(challenge),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    };
    let (request, client) = w
        .engine
        .begin_authorization(params, "standard", now)
        .await
        .unwrap();
    let user = w
        .engine
        .page_login(&client, &f.user.username, PASSWORD, now)
        .await
        .unwrap();
    let (_, signed_in) = w.engine.create_session(&user, now).await.unwrap();
    let approved = w
        .engine
        .approve(&request, &signed_in, None, now)
        .await
        .unwrap();
    assert_eq!(approved.redirect_uri, REDIRECT);
    assert_eq!(approved.state.as_deref(), Some("st"));
    approved.code.expose().to_string()
}

fn redeem(code: &str, verifier: &str) -> GrantRequest {
    GrantRequest::AuthorizationCode(authorization_code::Request {
        client_id: None,
        code: code.into(),
        redirect_uri: Some(REDIRECT.into()),
        code_verifier: Some(verifier.into()),
    })
}

#[tokio::test]
async fn a_code_and_its_verifier_give_the_users_tokens() {
    let w = World::new().await;
    let f = flow(&w, &["authorization_code", "refresh_token"]).await;
    let code = code(&w, &f, T0).await;
    let issued = w
        .grant(&f.caller, redeem(&code, VERIFIER), T0 + 5)
        .await
        .unwrap();
    assert!(issued.refresh_token.is_some());
    let claims = w.claims(&issued.access_token, T0 + 5);
    assert_eq!(claims.sub, f.user.id);
    assert_eq!(claims.account_id, f.user.account_id);
    assert_eq!(claims.client_id, f.client.id);
    assert_eq!(claims.scope, "crm");
    assert!(claims.act.is_none());
}

#[tokio::test]
async fn a_code_works_once_and_its_reuse_revokes_what_it_gave() {
    let w = World::new().await;
    let f = flow(&w, &["authorization_code", "refresh_token"]).await;
    let code = code(&w, &f, T0).await;
    let issued = w
        .grant(&f.caller, redeem(&code, VERIFIER), T0 + 5)
        .await
        .unwrap();
    let e = refused(w.grant(&f.caller, redeem(&code, VERIFIER), T0 + 6).await);
    assert!(
        matches!(e, EngineError::AuthorizationCodeInvalid(_)),
        "{e:?}"
    );
    assert!(matches!(
        w.engine.verify_token(&issued.access_token, T0 + 6),
        Err(EngineError::TokenUnknownOrRevoked)
    ));
    let rt = issued.refresh_token.unwrap().expose().to_string();
    let e = refused(
        w.grant(
            &f.caller,
            GrantRequest::RefreshToken(refresh_token::Request {
                refresh_token: rt,
                scope: None,
            }),
            T0 + 7,
        )
        .await,
    );
    assert!(matches!(e, EngineError::RefreshTokenInvalid(_)), "{e:?}");
}

#[tokio::test]
async fn a_code_expires_after_five_minutes() {
    let w = World::new().await;
    let f = flow(&w, &["authorization_code"]).await;
    let c = code(&w, &f, T0).await;
    let e = refused(
        w.grant(
            &f.caller,
            redeem(&c, VERIFIER),
            T0 + policy::AUTHORIZATION_CODE_TTL,
        )
        .await,
    );
    assert!(
        matches!(e, EngineError::AuthorizationCodeInvalid(_)),
        "{e:?}"
    );
    let c = code(&w, &f, T0).await;
    assert!(
        w.grant(
            &f.caller,
            redeem(&c, VERIFIER),
            T0 + policy::AUTHORIZATION_CODE_TTL - 1
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn the_verifier_must_answer_the_challenge() {
    let w = World::new().await;
    let f = flow(&w, &["authorization_code"]).await;
    let c = code(&w, &f, T0).await;
    let wrong = "x".repeat(43);
    let e = refused(w.grant(&f.caller, redeem(&c, &wrong), T0 + 1).await);
    assert!(matches!(e, EngineError::CodeVerifierInvalid(_)), "{e:?}");
}

#[tokio::test]
async fn another_client_cannot_redeem_the_code() {
    let w = World::new().await;
    let f = flow(&w, &["authorization_code"]).await;
    let (other, _, _) = w.client(&["authorization_code"]).await;
    let c = code(&w, &f, T0).await;
    let e = refused(w.grant(&other, redeem(&c, VERIFIER), T0 + 1).await);
    assert!(
        matches!(e, EngineError::AuthorizationCodeInvalid(_)),
        "{e:?}"
    );
}

#[tokio::test]
async fn withdrawing_the_grant_stops_its_refresh_tokens() {
    let w = World::new().await;
    let f = flow(&w, &["authorization_code", "refresh_token"]).await;
    let c = code(&w, &f, T0).await;
    let issued = w
        .grant(&f.caller, redeem(&c, VERIFIER), T0 + 1)
        .await
        .unwrap();
    assert!(
        w.engine
            .revoke_user_grant(&f.user, &f.client.id, T0 + 2)
            .await
            .unwrap()
    );
    let e = refused(
        w.grant(
            &f.caller,
            GrantRequest::RefreshToken(refresh_token::Request {
                refresh_token: issued.refresh_token.unwrap().expose().to_string(),
                scope: None,
            }),
            T0 + 3,
        )
        .await,
    );
    assert!(matches!(e, EngineError::MissingGrant), "{e:?}");
}

/// A pushed request (RFC 9126) is taken by reference until its 60 seconds are up, once, with
/// the clock at each boundary; it continues under a pending id of its own.
#[tokio::test]
async fn a_pushed_request_lives_sixty_seconds_and_is_taken_once() {
    let w = World::new().await;
    let f = flow(&w, &["authorization_code"]).await;
    let challenge = URL_SAFE_NO_PAD.encode(
        aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, VERIFIER.as_bytes()).as_ref(),
    );
    let params = AuthorizeParams {
        response_type: Some("code".into()),
        redirect_uri: Some(REDIRECT.into()),
        scope: Some("crm".into()),
        state: Some("st".into()),
        code_challenge: Some(challenge),
        code_challenge_method: Some("S256".into()),
        ..Default::default()
    };
    let push = || async {
        w.engine
            .push_authorization(&f.caller, params.clone(), "standard", T0)
            .await
            .unwrap()
    };
    let by_reference = |uri: &str| AuthorizeParams {
        client_id: Some(f.client.id.clone()),
        request_uri: Some(uri.to_string()),
        ..Default::default()
    };
    let pushed = push().await;
    assert_eq!(
        pushed.expires_in,
        tessera_core::authorize::PUSHED_REQUEST_TTL
    );
    // At its last second it is taken, and continues as a pending request of its own.
    let (request, _) = w
        .engine
        .begin_authorization(by_reference(&pushed.request_uri), "standard", T0 + 59)
        .await
        .unwrap();
    assert_eq!(request.state.as_deref(), Some("st"));
    assert_eq!(
        request.expires_at,
        T0 + 59 + policy::AUTHORIZATION_REQUEST_TTL
    );
    let (pending, _) = w
        .engine
        .pending_authorization(&request.id, T0 + 60)
        .await
        .unwrap();
    assert_eq!(pending.redirect_uri, REDIRECT);
    // Once only.
    let again = w
        .engine
        .begin_authorization(by_reference(&pushed.request_uri), "standard", T0 + 59)
        .await;
    assert!(
        matches!(again, Err(tessera_core::authorize::AuthorizeError::Page(_))),
        "{again:?}"
    );
    // At 60 seconds it is gone.
    let late = push().await;
    let gone = w
        .engine
        .begin_authorization(by_reference(&late.request_uri), "standard", T0 + 60)
        .await;
    assert!(
        matches!(gone, Err(tessera_core::authorize::AuthorizeError::Page(_))),
        "{gone:?}"
    );
}
