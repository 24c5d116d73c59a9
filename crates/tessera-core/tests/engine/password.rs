//! `password`: an org admin's user_token and a customer's customer_token (1 hour, no refresh
//! token); members and partners are refused.

use tessera_core::EngineError;
use tessera_core::grants::{GrantRequest, password};
use tessera_core::jwt::TokenUse;
use tessera_core::model::{GrantType, Role};
use tessera_core::scope::ScopeSet;

use crate::support::{PASSWORD, T0, World, refused};

fn request(username: &str, password: &str) -> GrantRequest {
    GrantRequest::Password(password::Request {
        username: username.into(),
        password: password.into(),
        scope: ScopeSet::default(),
    })
}

#[tokio::test]
async fn an_admin_gets_a_user_token_and_a_customer_a_customer_token() {
    let w = World::new().await;
    let (caller, _, _) = w.client(&["password"]).await;
    for (role, token_use) in [
        (Role::Admin, TokenUse::UserToken),
        (Role::Customer, TokenUse::CustomerToken),
    ] {
        let user = w.user(role, None).await;
        // Usernames compare case-insensitively.
        let issued = w
            .grant(
                &caller,
                request(&user.username.to_uppercase(), PASSWORD),
                T0,
            )
            .await
            .unwrap();
        assert_eq!(issued.token_use, token_use);
        assert_eq!(issued.expires_in, 3600);
        assert!(issued.refresh_token.is_none());
        let claims = w.claims(&issued.access_token, T0);
        assert_eq!(claims.sub, user.id);
        assert_eq!(claims.role.as_deref(), Some(role.as_str()));
        assert_eq!(claims.exp, T0 + 3600);
    }
}

#[tokio::test]
async fn wrong_passwords_unknown_users_and_members_are_refused() {
    let w = World::new().await;
    let (caller, _, _) = w.client(&["password"]).await;
    let admin = w.user(Role::Admin, None).await;
    let e = refused(
        w.grant(&caller, request(&admin.username, "not-the-password"), T0)
            .await,
    );
    assert!(matches!(e, EngineError::InvalidUserCredentials), "{e:?}");
    let e = refused(
        w.grant(&caller, request("nobody@buyer.test", PASSWORD), T0)
            .await,
    );
    assert!(matches!(e, EngineError::InvalidUserCredentials), "{e:?}");
    let account = w.account().await;
    let member = w.user(Role::Member, Some(&account)).await;
    let e = refused(
        w.grant(&caller, request(&member.username, PASSWORD), T0)
            .await,
    );
    // A member's right password is refused exactly as a wrong one: no oracle.
    assert!(matches!(e, EngineError::InvalidUserCredentials), "{e:?}");
}

#[tokio::test]
async fn partners_have_no_password_grant() {
    let w = World::new().await;
    let admin = w.user(Role::Admin, None).await;
    let e = refused(
        w.grant(&w.partner_caller(), request(&admin.username, PASSWORD), T0)
            .await,
    );
    assert!(
        matches!(e, EngineError::UnauthorizedClient(GrantType::Password)),
        "{e:?}"
    );
}

#[tokio::test]
async fn users_of_another_partner_are_unknown() {
    let w = World::new().await;
    let other = w.other_partner().await;
    let (caller, _, _) = w.client_of(&other, &["password"]).await;
    let admin = w.user(Role::Admin, None).await;
    let e = refused(
        w.grant(&caller, request(&admin.username, PASSWORD), T0)
            .await,
    );
    assert!(matches!(e, EngineError::InvalidUserCredentials), "{e:?}");
}
