//! Seed 002's requests (host changed), with the response shapes the seed shows: app_token,
//! user_token, buyer sign-up, customer_token, and `me`.

use crate::support::{TestServer, claims};

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
