//! A full flow, then a look at everything the test binary logged: no password, secret or token
//! of this flow may appear.

use crate::support::{TestServer, exchange_body, logs, machine_token_body, refresh_body};

#[tokio::test]
async fn no_secret_reaches_the_logs() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let b = p.basic();
    let partner_token = tessera_core::admin::create_partner_token(
        t.store.as_ref(),
        &p.id,
        tessera_core::unix_now(),
    )
    .await
    .unwrap();
    let bearer = format!("Bearer {}", partner_token.expose());
    let r = t
        .post("/v2/accounts", Some(&bearer), r#"{"name":"L"}"#)
        .await;
    let acc = r.data("account_id");
    let mt = t
        .post("/v2/oauth/token", Some(&b), &machine_token_body("crm"))
        .await
        .data("access_token");
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await;
    let (at, rt) = (r.data("access_token"), r.data("refresh_token"));
    let r = t
        .post("/v2/oauth/token", Some(&b), &refresh_body(&rt))
        .await;
    let rt2 = r.data("refresh_token");
    // Failures log too: a wrong password and a reused token.
    let wrong = b.replace(&b[10..14], "AAAA");
    t.post("/v2/oauth/token", Some(&wrong), &machine_token_body("crm"))
        .await;
    t.post("/v2/oauth/token", Some(&b), &refresh_body(&rt))
        .await;
    t.post(
        "/v2/oauth/revoke",
        Some(&b),
        &serde_json::json!({"token": rt2}).to_string(),
    )
    .await;

    let logged = logs();
    assert!(
        logged.contains("tessera::access") && logged.contains("/v2/oauth/token"),
        "the access log should record requests"
    );
    for (what, secret) in [
        ("partner password", p.password.as_str()),
        ("basic header", &b[6..]),
        ("partner token", partner_token.expose()),
        ("machine token signature", mt.rsplit('.').next().unwrap()),
        ("access token signature", at.rsplit('.').next().unwrap()),
        ("refresh token", &rt[4..]),
        ("rotated refresh token", &rt2[4..]),
    ] {
        assert!(!logged.contains(secret), "the {what} appeared in the logs");
    }
}
