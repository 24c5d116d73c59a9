//! Seed 002's requests (host changed), with the response shapes the seed shows: app_token,
//! user_token, buyer sign-up, customer_token, and `me`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_core::master::MasterKey;

use crate::support::{Onboarded, TestServer, claims};

#[tokio::test]
async fn the_three_tokens_and_sign_up_as_the_seed_writes_them() {
    let t = TestServer::start().await;
    let o = t
        .onboard(&["client_credentials", "password", "refresh_token"])
        .await;

    // Step 1: app_token — curl -u "$ID:$PASSWORD" -d "grant_type=client_credentials&scope=WRITE"
    let r = t
        .form_raw(
            "/oauth/token",
            Some(&o.basic()),
            "grant_type=client_credentials&scope=WRITE",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    insta::assert_json_snapshot!("app_token", r.body, {".access_token" => "[jwt]"});
    let app_token = r.body["access_token"].as_str().unwrap().to_string();
    let c = claims(&app_token);
    assert_eq!(
        (c["token_use"].as_str(), c["sub"].as_str()),
        (Some("app_token"), Some(o.client_id.as_str()))
    );
    assert_eq!(c["org_code"], o.partner.org_code.as_str());
    assert_eq!(c["partner_id"], o.partner.id.as_str());

    // Step 2: user_token with --data-urlencode (the admin's email has an '@').
    let body = format!(
        "grant_type=password&username={}&password={}&scope=WRITE",
        form_urlencoded::byte_serialize(o.admin_email.as_bytes()).collect::<String>(),
        form_urlencoded::byte_serialize(o.admin_password.as_bytes()).collect::<String>(),
    );
    let r = t.form_raw("/oauth/token", Some(&o.basic()), &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    insta::assert_json_snapshot!("user_token", r.body, {".access_token" => "[jwt]"});
    let user_token = r.body["access_token"].as_str().unwrap().to_string();
    let c = claims(&user_token);
    assert_eq!(c["token_use"], "user_token");
    assert_eq!(c["role"], "admin");
    assert_eq!(c["org_code"], o.partner.org_code.as_str());

    // Step 3: sign up the buyer with the app_token.
    let signup = serde_json::json!({
        "phoneNumber": "+966501234567", "firstName": "Sara", "lastName": "Ali", "clientUserId": "buyer-77"
    })
    .to_string();
    let r = t
        .post(
            "/v2/api/users/sign-up",
            Some(&format!("Bearer {app_token}")),
            &signup,
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    insta::assert_json_snapshot!("sign_up", r.body, {
        ".data.id" => "[id]", ".data.clientUserToken" => "[clientUserToken]"
    });
    let buyer_id = r.data("id");
    let first_token = r.data("clientUserToken");
    assert!(first_token.starts_with("tcu_"));

    // customer_token: the clientUserToken is the buyer's password.
    let customer = |password: String| {
        let (t, basic) = (&t, o.basic());
        async move {
            t.form(
                "/oauth/token",
                Some(&basic),
                &[
                    ("grant_type", "password"),
                    ("username", "+966501234567"),
                    ("password", &password),
                    ("scope", "WRITE"),
                ],
            )
            .await
        }
    };
    let r = customer(first_token.clone()).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["expires_in"], 3600);
    assert!(r.body.get("refresh_token").is_none());
    let customer_token = r.body["access_token"].as_str().unwrap().to_string();
    let c = claims(&customer_token);
    assert_eq!(
        (
            c["token_use"].as_str(),
            c["role"].as_str(),
            c["sub"].as_str()
        ),
        (
            Some("customer_token"),
            Some("customer"),
            Some(buyer_id.as_str())
        )
    );

    // Signing up the same phone again: same id, preExistingUser, a new token; the old one dies.
    let r = t
        .post(
            "/v2/api/users/sign-up",
            Some(&format!("Bearer {app_token}")),
            &signup,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["data"]["preExistingUser"], true);
    assert_eq!(r.data("id"), buyer_id);
    let second_token = r.data("clientUserToken");
    assert_ne!(second_token, first_token);
    assert_eq!(customer(first_token).await.oauth_error(), "invalid_grant");
    assert_eq!(customer(second_token).await.status, 200);

    // me, for each token kind.
    let r = t
        .get("/api/users/me", Some(&format!("Bearer {customer_token}")))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.data("id"), buyer_id);
    assert_eq!(r.data("phoneNumber"), "+966501234567");
    assert_eq!(r.data("firstName"), "Sara");
    assert_eq!(r.data("clientUserId"), "buyer-77");
    let r = t
        .get("/api/users/me", Some(&format!("Bearer {user_token}")))
        .await;
    assert_eq!(r.data("role"), "admin");
    assert_eq!(r.data("username"), o.admin_email.to_lowercase());
    let r = t
        .get("/api/users/me", Some(&format!("Bearer {app_token}")))
        .await;
    assert_eq!(r.data("id"), o.client_id);
}

#[tokio::test]
async fn sign_up_needs_an_app_token() {
    let t = TestServer::start().await;
    let o = t.onboard(&["client_credentials", "password"]).await;
    let body =
        r#"{"phoneNumber":"+15550001111","firstName":"A","lastName":"B","clientUserId":"c"}"#;
    let r = t.post("/v2/api/users/sign-up", None, body).await;
    assert_eq!((r.status, r.oauth_error()), (401, "invalid_token"));
    assert!(
        r.headers["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = t
        .post("/v2/api/users/sign-up", Some("Bearer not.a.jwt"), body)
        .await;
    assert_eq!((r.status, r.oauth_error()), (401, "invalid_token"));

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
    let r = t
        .post(
            "/v2/api/users/sign-up",
            Some(&format!("Bearer {user_token}")),
            body,
        )
        .await;
    assert_eq!((r.status, r.oauth_error()), (403, "insufficient_scope"));

    let app = t.app_token(&o).await;
    let r = t
        .post(
            "/v2/api/users/sign-up",
            Some(&format!("Bearer {app}")),
            r#"{"phoneNumber":"call me","firstName":"A"}"#,
        )
        .await;
    assert_eq!((r.status, r.oauth_error()), (400, "invalid_request"));
    assert!(
        r.body["error_description"]
            .as_str()
            .unwrap()
            .contains("phoneNumber")
    );
    // A staff username cannot be taken over by a customer sign-up.
    let r = t
        .post(
            "/v2/api/users/sign-up",
            Some(&format!("Bearer {app}")),
            &serde_json::json!({"phoneNumber": "+15550002222"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
}

/// Another client of `o`'s partner, allowed the same grants: `Basic` credentials.
async fn second_client(t: &TestServer, o: &Onboarded) -> String {
    let (id, secret) = t
        .standard_client(&o.partner.id, &["client_credentials", "password"])
        .await;
    format!("Basic {}", STANDARD.encode(format!("{id}:{secret}")))
}

async fn app_token_of(t: &TestServer, basic: &str) -> String {
    app_token_scoped(t, basic, "WRITE").await
}

/// An app_token (client credentials) of the client `basic` authenticates, for `scope`.
async fn app_token_scoped(t: &TestServer, basic: &str, scope: &str) -> String {
    let r = t
        .form(
            "/oauth/token",
            Some(basic),
            &[("grant_type", "client_credentials"), ("scope", scope)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["access_token"].as_str().unwrap().to_string()
}

async fn sign_up(t: &TestServer, app: &str, phone: &str, name: &str) -> crate::support::Resp {
    t.post(
        "/v2/api/users/sign-up",
        Some(&format!("Bearer {app}")),
        &serde_json::json!({"phoneNumber": phone, "firstName": name}).to_string(),
    )
    .await
}

async fn customer_sign_in(
    t: &TestServer,
    basic: &str,
    phone: &str,
    token: &str,
) -> (u16, serde_json::Value) {
    let r = t
        .form(
            "/oauth/token",
            Some(basic),
            &[
                ("grant_type", "password"),
                ("username", phone),
                ("password", token),
            ],
        )
        .await;
    (r.status, r.body)
}

/// Issue 18 row 5: client X of a partner signing up the phone client Y signed up got Y's
/// customer, a clientUserToken that replaced Y's, and overwrote the name. A customer belongs to
/// the client that signed it up.
async fn one_client_cannot_take_over_anothers_customer(x: &TestServer, y: &TestServer) {
    let o = x.onboard(&["client_credentials", "password"]).await;
    let x_basic = o.basic();
    let y_basic = second_client(x, &o).await;
    let (x_app, y_app) = (
        app_token_of(x, &x_basic).await,
        app_token_of(y, &y_basic).await,
    );

    let phone = "+966500000005";
    let r = sign_up(y, &y_app, phone, "Yara").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let y_token = r.body["data"]["clientUserToken"]
        .as_str()
        .unwrap()
        .to_string();
    let y_id = r.body["data"]["id"].as_str().unwrap().to_string();

    let r = sign_up(x, &x_app, phone, "Mallory").await;
    assert_eq!(
        (r.status, r.oauth_error()),
        (400, "invalid_request"),
        "{}",
        r.body
    );
    let why = r.body["error_description"].as_str().unwrap();
    assert!(
        why.contains("phoneNumber") && why.contains("another client"),
        "{why}"
    );
    assert!(
        !r.body.to_string().contains(&y_id),
        "the refusal names no user: {}",
        r.body
    );

    // Y's token still signs the customer in through Y, and through Y only.
    x.settle().await;
    assert_eq!(customer_sign_in(y, &y_basic, phone, &y_token).await.0, 200);
    // Through X, Y's token is refused as a wrong password is, and says no more.
    let wrong = customer_sign_in(x, &x_basic, phone, "not-the-token").await;
    let through_x = customer_sign_in(x, &x_basic, phone, &y_token).await;
    assert!(wrong.0 >= 400, "{wrong:?}");
    assert_eq!(through_x, wrong);
    // Y signing it up again is the seed's pre-existing user, still named as Y named it.
    let r = sign_up(y, &y_app, phone, "Yasmin").await;
    assert_eq!(
        (r.status, r.body["data"]["id"].as_str()),
        (200, Some(y_id.as_str()))
    );
    assert!(!r.body.to_string().contains("Mallory"), "{}", r.body);

    // Both clients signing up one new phone at once: it goes to exactly one of them.
    let phone = "+966500000006";
    let mut racers = Vec::new();
    for i in 0..16 {
        let (t, app) = if i % 2 == 0 {
            (x, x_app.clone())
        } else {
            (y, y_app.clone())
        };
        racers.push(async move { (i % 2, sign_up(t, &app, phone, "Racer").await) });
    }
    let results = futures_util::future::join_all(racers).await;
    let winners: std::collections::BTreeSet<_> = results
        .iter()
        .filter(|(_, r)| r.status < 300)
        .map(|(side, _)| *side)
        .collect();
    let statuses: Vec<_> = results.iter().map(|(side, r)| (*side, r.status)).collect();
    assert_eq!(
        winners.len(),
        1,
        "both clients got the customer: {statuses:?}"
    );
    for (side, r) in &results {
        if !winners.contains(side) {
            assert_eq!(r.status, 400, "{}", r.body);
        }
    }
}

#[tokio::test]
async fn a_customer_belongs_to_the_client_that_signed_it_up() {
    let t = TestServer::start().await;
    one_client_cannot_take_over_anothers_customer(&t, &t).await;
}

#[tokio::test]
async fn a_customer_belongs_to_its_client_across_postgres_nodes() {
    let Some(admin_url) = crate::support::postgres_url("seed002 on PostgreSQL") else {
        return;
    };
    let db = tessera_store::create_scratch_database(&admin_url)
        .await
        .unwrap();
    let master = MasterKey::generate();
    let a = TestServer::start_node(&db, &master, Default::default()).await;
    let b = TestServer::start_node(&db, &master, Default::default()).await;
    one_client_cannot_take_over_anothers_customer(&a, &b).await;
}

/// Found by the attack on issue 18's fixes: the password grant refused another client's
/// customer, but the authorization pages did not. Client B's login page signed in client A's
/// customer (with A's clientUserToken) and gave B a code, and a browser signed in as the
/// customer through A went through B's consent. A customer's sign-in, and its session, count
/// only for the client that signed it up.
#[tokio::test]
async fn the_pages_sign_a_customer_in_only_for_its_own_client() {
    use crate::authcode::{self, Agent, Setup, authorize_path};
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let (a_id, a_secret) = authcode::another_client(
        &t,
        &s,
        &["client_credentials", "authorization_code"],
        false,
        false,
    )
    .await;
    let a_basic = format!("Basic {}", STANDARD.encode(format!("{a_id}:{a_secret}")));
    let a_app = app_token_scoped(&t, &a_basic, "crm").await;
    let phone = "+966500000007";
    let r = sign_up(&t, &a_app, phone, "Amal").await;
    assert_eq!(r.status, 201, "{}", r.body);
    let token = r.body["data"]["clientUserToken"]
        .as_str()
        .unwrap()
        .to_string();

    // B's login page with A's customer's credentials: refused as a wrong password.
    let mut browser = Agent::new(&t.base);
    let b_path = authorize_path("standard", &s.client_id, &[]);
    let login = browser.get(&b_path).await.location.unwrap();
    let page = browser.get(&login).await;
    let r = browser
        .post(
            "/oauth/login",
            &[
                ("request", &page.hidden("request")),
                ("csrf", &page.hidden("csrf")),
                ("username", phone),
                ("password", &token),
            ],
        )
        .await;
    assert_ne!(r.status, 303, "B signed in A's customer: {:?}", r.location);

    // Through A, the customer signs in and consents; that session is no sign-in for B.
    let customer = Setup {
        client_id: a_id.clone(),
        client_secret: a_secret.clone(),
        user_email: phone.into(),
        user_password: token.clone(),
        ..authcode::setup_clone(&s)
    };
    let mut browser = Agent::new(&t.base);
    let q = authcode::authorize(
        &mut browser,
        &customer,
        &authorize_path("standard", &a_id, &[]),
    )
    .await;
    assert!(q.contains_key("code"));
    let r = browser.get(&b_path).await;
    assert!(
        r.location.as_deref().unwrap().starts_with("/oauth/login"),
        "A's customer's session counted for B: {:?}",
        r.location
    );
    let r = browser
        .get(&authorize_path(
            "standard",
            &s.client_id,
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(r.query()["error"], "login_required");
}

/// Found by the attack on issue 18's fixes: a customer an operator made belongs to no client,
/// so client B could sign it in; when client A then signed the phone up and claimed it, B's
/// refresh token and a code in flight went on working. The claim withdraws the customer's
/// grants to every other client, with all they issued.
#[tokio::test]
async fn claiming_a_customer_withdraws_what_other_clients_hold() {
    use crate::authcode::{self, Agent, Setup, authorize_path};
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let phone = "+966500000008";
    crate::support::create_user(
        t.store.as_ref(),
        &s.partner.id,
        phone,
        "quartz-meadow-lantern-87",
        tessera_core::model::Role::Customer,
        None,
    )
    .await;
    // Client B (s's client) signs the unowned customer in and holds a refresh token and a code.
    let b = Setup {
        user_email: phone.into(),
        user_password: "quartz-meadow-lantern-87".into(),
        ..authcode::setup_clone(&s)
    };
    let mut browser = Agent::new(&t.base);
    let path = authorize_path("standard", &s.client_id, &[]);
    let q = authcode::authorize(&mut browser, &b, &path).await;
    let tokens = crate::oidc::redeem(&t, &b, &q["code"]).await;
    let refresh = tokens["refresh_token"].as_str().unwrap().to_string();
    let spare = browser.get(&path).await.query()["code"].clone();

    // Client A signs the phone up: it claims the customer.
    let (a_id, a_secret) =
        authcode::another_client(&t, &s, &["client_credentials"], false, false).await;
    let a_basic = format!("Basic {}", STANDARD.encode(format!("{a_id}:{a_secret}")));
    let a_app = app_token_scoped(&t, &a_basic, "crm").await;
    let r = sign_up(&t, &a_app, phone, "Amal").await;
    assert_eq!(
        (r.status, r.body["data"]["preExistingUser"].as_bool()),
        (200, Some(true))
    );

    let b_basic = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:{}", s.client_id, s.client_secret))
    );
    let r = t
        .form(
            "/oauth/token",
            Some(&b_basic),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(
        r.status, 400,
        "B's refresh token outlived the claim: {}",
        r.body
    );
    let r = t
        .form(
            "/oauth/token",
            Some(&b_basic),
            &[
                ("grant_type", "authorization_code"),
                ("code", &spare),
                ("redirect_uri", crate::authcode::REDIRECT),
                ("code_verifier", crate::authcode::VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.status, 400, "B's code outlived the claim: {}", r.body);
    t.settle().await;
    let r = t
        .form(
            "/oauth/introspect",
            Some(&b_basic),
            &[("token", tokens["access_token"].as_str().unwrap())],
        )
        .await;
    assert_eq!(
        r.body["active"], false,
        "B's access token outlived the claim"
    );
}
