//! Tokens stay bound to what they came from (issue 9, items 2 and 3): a client cannot launder
//! another client's user token through token exchange, an exchanged token lives no longer than
//! its subject and dies with it, withdrawing a grant ends its access tokens even without a refresh
//! family, and an inactive partner's tokens stop working everywhere.

use tessera_core::model::PartnerStatus;
use tessera_core::unix_now;

use crate::authcode::{self, Agent, REDIRECT, Setup, VERIFIER, authorize, authorize_path};
use crate::support::{Resp, TestServer, claims, machine_token_body, within_one_second};

const EXCHANGE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
const ACCESS_TOKEN: &str = "urn:ietf:params:oauth:token-type:access_token";

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// Another client of the setup's partner.
async fn client(t: &TestServer, s: &Setup, grants: &[&str]) -> (String, String) {
    authcode::another_client(t, s, grants, false, false).await
}

/// The user signs in and consents for `client_id`; the tokens its code gives.
async fn user_tokens(t: &TestServer, s: &Setup, client_id: &str, secret: &str) -> Resp {
    let mut agent = Agent::new(&t.base);
    let s2 = Setup {
        partner: s.partner.clone(),
        client_id: client_id.to_string(),
        client_secret: secret.to_string(),
        user_email: s.user_email.clone(),
        user_password: s.user_password.clone(),
        user_id: s.user_id.clone(),
        account_id: s.account_id.clone(),
    };
    let q = authorize(&mut agent, &s2, &authorize_path("standard", client_id, &[])).await;
    let r = t
        .form(
            "/oauth/token",
            Some(&basic(client_id, secret)),
            &[
                ("grant_type", "authorization_code"),
                ("code", &q["code"]),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

async fn exchange(t: &TestServer, auth: &str, subject: &str) -> Resp {
    t.form(
        "/oauth/token",
        Some(auth),
        &[
            ("grant_type", EXCHANGE),
            ("subject_token", subject),
            ("subject_token_type", ACCESS_TOKEN),
        ],
    )
    .await
}

async fn active(t: &TestServer, auth: &str, token: &str) -> bool {
    let r = t
        .form("/oauth/introspect", Some(auth), &[("token", token)])
        .await;
    r.body["active"].as_bool().unwrap()
}

#[tokio::test]
async fn a_client_cannot_exchange_another_clients_user_token() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let grants = ["authorization_code", "refresh_token", "token_exchange"];
    let (a_id, a_secret) = client(&t, &s, &grants).await;
    let a = user_tokens(&t, &s, &a_id, &a_secret).await;
    let user_token = a.body["access_token"].as_str().unwrap();
    let (b_id, b_secret) = client(&t, &s, &["token_exchange", "refresh_token"]).await;
    let b = basic(&b_id, &b_secret);
    let r = exchange(&t, &b, user_token).await;
    assert_eq!(
        (r.status, r.oauth_error()),
        (400, "invalid_grant"),
        "{}",
        r.body
    );
    // Nor may the consenting client carry the user's consent over to another account.
    let (a_id2, a_secret2) = (a_id.clone(), a_secret.clone());
    let other_account = t
        .post(
            "/v2/accounts",
            Some(&s.partner.basic()),
            r#"{"name":"Someone else"}"#,
        )
        .await
        .data("account_id");
    let r = t
        .form(
            "/oauth/token",
            Some(&basic(&a_id2, &a_secret2)),
            &[
                ("grant_type", EXCHANGE),
                ("subject_token", user_token),
                ("subject_token_type", ACCESS_TOKEN),
                ("requested_subject", &other_account),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.oauth_error()),
        (400, "invalid_grant"),
        "{}",
        r.body
    );
    // The client the user consented to may exchange it; no new refresh family comes of it.
    let own = basic(&a_id, &a_secret);
    let r = exchange(&t, &own, user_token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
    let x = claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(
        x["sid"],
        claims(user_token)["sid"],
        "bound to the user's family"
    );
}

#[tokio::test]
async fn an_exchanged_user_token_keeps_its_lifetime_and_dies_with_it() {
    let t = TestServer::start().await;
    let o = t
        .onboard(&["password", "token_exchange", "refresh_token"])
        .await;
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[
                ("grant_type", "password"),
                ("username", &o.admin_email),
                ("password", &o.admin_password),
            ],
        )
        .await;
    let user_token = r.body["access_token"].as_str().unwrap().to_string();
    let r = exchange(&t, &o.basic(), &user_token).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
    let exchanged = r.body["access_token"].as_str().unwrap().to_string();
    let (u, x) = (claims(&user_token), claims(&exchanged));
    assert!(x["exp"].as_i64() <= u["exp"].as_i64(), "{x} outlives {u}");
    assert!(r.body["expires_in"].as_i64().unwrap() <= 3600);
    // Revoking the user_token revokes what was exchanged from it.
    let r = t
        .form("/oauth/revoke", Some(&o.basic()), &[("token", &user_token)])
        .await;
    assert_eq!(r.status, 200);
    assert!(!active(&t, &o.basic(), &exchanged).await);
}

#[tokio::test]
async fn withdrawing_consent_ends_exchanged_tokens_and_tokens_without_refresh() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    // A client registered without the refresh_token grant: its access token has no family row.
    let (id, secret) = client(&t, &s, &["authorization_code", "token_exchange"]).await;
    let auth = basic(&id, &secret);
    let r = user_tokens(&t, &s, &id, &secret).await;
    assert!(r.body.get("refresh_token").is_none());
    let access = r.body["access_token"].as_str().unwrap().to_string();
    let r = exchange(&t, &auth, &access).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
    let exchanged = r.body["access_token"].as_str().unwrap().to_string();
    assert!(active(&t, &auth, &access).await && active(&t, &auth, &exchanged).await);
    let me = t
        .get("/api/users/me", Some(&format!("Bearer {access}")))
        .await;
    assert_eq!(me.status, 200, "{}", me.body);

    assert!(
        tessera_core::operations::revoke_grant(
            t.store.as_ref(),
            &crate::support::operator(),
            &s.user_id,
            &id,
            unix_now()
        )
        .await
        .unwrap()
        .revoked
    );
    within_one_second("the grant's tokens go inactive", async || {
        !active(&t, &auth, &access).await && !active(&t, &auth, &exchanged).await
    })
    .await;
    let me = t
        .get("/api/users/me", Some(&format!("Bearer {access}")))
        .await;
    assert_eq!(me.status, 401, "{}", me.body);
}

#[tokio::test]
async fn an_inactive_partners_tokens_stop_working_within_a_second() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let (id, secret) = client(&t, &s, &["client_credentials", "token_exchange"]).await;
    let auth = basic(&id, &secret);
    let machine = t
        .post(
            "/v2/oauth/token",
            Some(&s.partner.basic()),
            &machine_token_body("crm"),
        )
        .await
        .data("access_token");
    let app = t
        .form(
            "/oauth/token",
            Some(&auth),
            &[("grant_type", "client_credentials")],
        )
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let user = user_tokens(&t, &s, &s.client_id, &s.client_secret)
        .await
        .body["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let me = |token: String| {
        let t = &t;
        async move {
            t.get("/api/users/me", Some(&format!("Bearer {token}")))
                .await
                .status
        }
    };
    for token in [&machine, &app, &user] {
        assert_eq!(me(token.clone()).await, 200);
    }
    tessera_core::operations::set_partner_status(
        t.store.as_ref(),
        &crate::support::operator(),
        &s.partner.id,
        PartnerStatus::Inactive,
        unix_now(),
    )
    .await
    .unwrap();
    within_one_second("every token of the partner refused", async || {
        let mut all = true;
        for token in [&machine, &app, &user] {
            all &= me(token.clone()).await != 200;
        }
        all
    })
    .await;
    // And back when the partner is active again.
    tessera_core::operations::set_partner_status(
        t.store.as_ref(),
        &crate::support::operator(),
        &s.partner.id,
        PartnerStatus::Active,
        unix_now(),
    )
    .await
    .unwrap();
    within_one_second("the partner's tokens work again", async || {
        me(machine.clone()).await == 200
    })
    .await;
}

/// Found by the attack on issue 18: a token exchanged from a user's access token that belongs to
/// a refresh family carried only the family's `sid`, so revoking the subject token itself (RFC
/// 7009) left every token exchanged from it, and from those, active. The chain is in each
/// exchanged token now.
#[tokio::test]
async fn revoking_a_family_token_ends_the_chain_exchanged_from_it() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let (id, secret) = client(
        &t,
        &s,
        &["authorization_code", "refresh_token", "token_exchange"],
    )
    .await;
    let auth = basic(&id, &secret);
    let r = user_tokens(&t, &s, &id, &secret).await;
    assert!(
        r.body.get("refresh_token").is_some(),
        "a family: {}",
        r.body
    );
    let first = r.body["access_token"].as_str().unwrap().to_string();
    let r = exchange(&t, &auth, &first).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let second = r.body["access_token"].as_str().unwrap().to_string();
    let r = exchange(&t, &auth, &second).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let third = r.body["access_token"].as_str().unwrap().to_string();
    let r = t
        .form("/oauth/revoke", Some(&auth), &[("token", &first)])
        .await;
    assert_eq!(r.status, 200);
    for (name, token) in [("first", &first), ("second", &second), ("third", &third)] {
        assert!(
            !active(&t, &auth, token).await,
            "the {name} token is still active"
        );
    }
    let r = exchange(&t, &auth, &second).await;
    assert_eq!(
        r.status, 400,
        "exchanged again after its subject was revoked: {}",
        r.body
    );
    // Refused where it is presented, too.
    let me = t
        .get("/api/users/me", Some(&format!("Bearer {second}")))
        .await;
    assert_eq!(me.status, 401, "{}", me.body);
}

/// Found by the attack on PAR: a sign-in begun before its client was disabled could still be
/// approved, and the code redeemed once the client was enabled again. No page of a disabled
/// client's request continues now, and `/authorize` refuses it outright.
#[tokio::test]
async fn a_disabled_clients_sign_in_stops_on_every_page() {
    use tessera_core::operations::{ClientStatus, set_client_status};
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);
    authorize(
        &mut agent,
        &s,
        &authorize_path("standard", &s.client_id, &[]),
    )
    .await;
    // A request waiting on its consent page (prompt=consent asks again).
    let r = agent
        .get(&authorize_path(
            "standard",
            &s.client_id,
            &[("prompt", "consent")],
        ))
        .await;
    let consent = r.location.expect("to the consent page");
    let page = agent.get(&consent).await;
    let (request, csrf) = (page.hidden("request"), page.hidden("csrf"));
    let status = |to| {
        let t = &t;
        let id = s.client_id.clone();
        async move {
            set_client_status(
                t.store.as_ref(),
                &crate::support::operator(),
                &id,
                to,
                unix_now(),
            )
            .await
            .unwrap();
            t.settle().await;
        }
    };
    status(ClientStatus::Disabled).await;
    let approve = [
        ("request", request.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
    ];
    let r = agent.post("/oauth/consent", &approve).await;
    assert_eq!((r.status, r.location.as_deref()), (400, None), "{}", r.body);
    assert!(r.body.contains("disabled"), "{}", r.body);
    assert_eq!(agent.get(&consent).await.status, 400);
    let r = agent
        .get(&authorize_path("standard", &s.client_id, &[]))
        .await;
    assert_eq!((r.status, r.location.as_deref()), (400, None), "{}", r.body);
    // Enabled again, the flow runs (the user's approval now is of an active client).
    status(ClientStatus::Active).await;
    let q = authorize(
        &mut agent,
        &s,
        &authorize_path("standard", &s.client_id, &[]),
    )
    .await;
    assert!(q["code"].starts_with("tac_"));
}
