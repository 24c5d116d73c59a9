//! RFC 8693 token exchange: a partner's machine token for an account's 24-hour access token and
//! a refresh token (seed 000), and a client's exchange of a token of its own partner.

use tessera_core::grants::token_exchange::{self, TokenType};
use tessera_core::grants::{GrantRequest, Issued, client_credentials};
use tessera_core::jwt::{JwtError, TokenUse};
use tessera_core::scope::ScopeSet;
use tessera_core::{Caller, policy};
use tessera_core::{EngineError, Field};

use crate::support::{T0, World, refused};

async fn machine_token(w: &World, caller: &Caller, scope: &str, now: i64) -> String {
    let request = GrantRequest::ClientCredentials(client_credentials::Request {
        scope: ScopeSet::parse(scope).unwrap(),
    });
    w.grant(caller, request, now).await.unwrap().access_token
}

fn exchange(subject: &str, account: Option<&str>, scope: &str) -> GrantRequest {
    GrantRequest::TokenExchange(token_exchange::Request {
        subject_token: subject.into(),
        subject_token_type: TokenType::MachineToken,
        requested_subject: account.map(str::to_string),
        scope: ScopeSet::parse(scope).unwrap(),
        actor_token: None,
        audience: None,
    })
}

#[tokio::test]
async fn a_machine_token_becomes_an_accounts_access_and_refresh_token() {
    let w = World::new().await;
    let caller = w.partner_caller();
    let account = w.account().await;
    let machine = machine_token(&w, &caller, "crm transport", T0).await;
    let issued: Issued = w
        .grant(
            &caller,
            exchange(&machine, Some(&account.id), "crm"),
            T0 + 10,
        )
        .await
        .unwrap();
    assert_eq!(issued.token_use, TokenUse::ClientAccessToken);
    assert_eq!(issued.expires_in, policy::CLIENT_ACCESS_TOKEN_TTL);
    assert!(issued.refresh_token.is_some());
    let claims = w.claims(&issued.access_token, T0 + 10);
    assert_eq!(claims.sub, account.id);
    assert_eq!(claims.account_id.as_deref(), Some(account.id.as_str()));
    assert_eq!(claims.act.as_ref().unwrap().sub, w.partner.id);
    assert_eq!(claims.scope, "crm");
    assert_eq!(claims.exp, T0 + 10 + 86_400);
    assert!(claims.sid.is_some(), "the token names its refresh family");
}

#[tokio::test]
async fn an_expired_machine_token_is_refused_at_its_expiry() {
    let w = World::new().await;
    let caller = w.partner_caller();
    let account = w.account().await;
    let machine = machine_token(&w, &caller, "crm", T0).await;
    let at = T0 + policy::MACHINE_TOKEN_TTL;
    let e = refused(
        w.grant(&caller, exchange(&machine, Some(&account.id), "crm"), at)
            .await,
    );
    assert!(
        matches!(e, EngineError::TokenInvalid(JwtError::Expired)),
        "{e:?}"
    );
    assert!(
        w.grant(
            &caller,
            exchange(&machine, Some(&account.id), "crm"),
            at - 1
        )
        .await
        .is_ok()
    );
}

#[tokio::test]
async fn another_partners_token_or_account_is_refused() {
    let w = World::new().await;
    let caller = w.partner_caller();
    let account = w.account().await;
    let other = w.other_partner().await;
    let other_caller = Caller::Partner(std::sync::Arc::new(other.clone()));
    let theirs = machine_token(&w, &other_caller, "crm", T0).await;
    let e = refused(
        w.grant(&caller, exchange(&theirs, Some(&account.id), "crm"), T0)
            .await,
    );
    assert!(matches!(e, EngineError::RequestedSubjectMismatch), "{e:?}");
    // Their machine token is fine for them, but the account is not theirs.
    let e = refused(
        w.grant(
            &other_caller,
            exchange(&theirs, Some(&account.id), "crm"),
            T0,
        )
        .await,
    );
    assert!(
        matches!(e, EngineError::NotPartnersResource("account")),
        "{e:?}"
    );
}

#[tokio::test]
async fn the_scope_stays_within_the_machine_tokens() {
    let w = World::new().await;
    let caller = w.partner_caller();
    let account = w.account().await;
    let machine = machine_token(&w, &caller, "crm", T0).await;
    let e = refused(
        w.grant(
            &caller,
            exchange(&machine, Some(&account.id), "crm transport"),
            T0,
        )
        .await,
    );
    assert!(matches!(e, EngineError::ScopeForbidden(_)), "{e:?}");
}

#[tokio::test]
async fn a_partner_must_present_a_machine_token_and_name_an_account() {
    let w = World::new().await;
    let caller = w.partner_caller();
    let machine = machine_token(&w, &caller, "crm", T0).await;
    let e = refused(w.grant(&caller, exchange(&machine, None, "crm"), T0).await);
    assert!(
        matches!(&e, EngineError::Validation(f) if f[0].field == Field::RequestedSubject),
        "{e:?}"
    );
    let mut request = exchange(&machine, None, "crm");
    if let GrantRequest::TokenExchange(r) = &mut request {
        r.subject_token_type = TokenType::AccessToken;
    }
    let e = refused(w.grant(&caller, request, T0).await);
    assert!(
        matches!(
            e,
            EngineError::SubjectTokenTypeMismatch {
                expected: TokenType::MachineToken
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_revoked_machine_token_cannot_be_exchanged() {
    let w = World::new().await;
    let caller = w.partner_caller();
    let account = w.account().await;
    let machine = machine_token(&w, &caller, "crm", T0).await;
    w.engine.revoke(&caller, &machine, T0 + 1).await.unwrap();
    let e = refused(
        w.grant(
            &caller,
            exchange(&machine, Some(&account.id), "crm"),
            T0 + 2,
        )
        .await,
    );
    assert!(matches!(e, EngineError::TokenUnknownOrRevoked), "{e:?}");
}
