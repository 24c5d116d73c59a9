//! Seed 000, Steps 1–3, sent exactly as its curl requests are written (host changed), with the
//! response bodies snapshot-tested.

use serde_json::{Value, json};

use crate::support::{TestServer, claims};

fn redactions() -> insta::internals::Redaction {
    insta::dynamic_redaction(|value, _| match value.as_str() {
        Some(_) => "[redacted]".into(),
        None => value,
    })
}

#[tokio::test]
async fn steps_1_to_3_exactly_as_the_seed_writes_them() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let basic = p.basic();

    // Step 1: create an end-customer account.
    let r = t
        .post("/v2/accounts", Some(&basic), r#"{"name": "Acme Ltd"}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let account_id = r.data("account_id");
    insta::assert_json_snapshot!("step1_account", r.body, {
        ".meta.timestamp" => "[timestamp]",
        ".data.account_id" => redactions(),
        ".data.created_at" => "[timestamp]",
    });

    // Step 2: the machine token, body byte for byte as in the seed.
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&basic),
            r#"{
"grant_type": "client_credentials",
"client_credentials_data": {
"scope": "transport,crm"
}
}"#,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    insta::assert_json_snapshot!("step2_machine_token", r.body, {
        ".meta.timestamp" => "[timestamp]",
        ".data.access_token" => "[jwt]",
    });
    let machine = r.data("access_token");
    let mc = claims(&machine);
    assert_eq!(mc["token_use"], "machine_token");
    assert_eq!(mc["sub"], p.id.as_str());
    assert_eq!(mc["scope"], "crm transport");
    assert_eq!(mc["org_code"], p.org_code.as_str());
    assert_eq!(
        mc["exp"].as_i64().unwrap() - mc["iat"].as_i64().unwrap(),
        28800
    );

    // Step 3: the token exchange, as written, with the machine token and account id filled in.
    let body = format!(
        r#"{{
"grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
"token_exchange_data": {{
"subject_token": "{machine}",
"subject_token_type": "urn:wazzup:oauth:token-type:machine_token",
"requested_subject": "{account_id}",
"scope": "transport,crm"
}}
}}"#
    );
    let r = t.post("/v2/oauth/token", Some(&basic), &body).await;
    assert_eq!(r.status, 200, "{}", r.body);
    insta::assert_json_snapshot!("step3_exchange", r.body, {
        ".meta.timestamp" => "[timestamp]",
        ".data.access_token" => "[jwt]",
        ".data.refresh_token" => "[refresh_token]",
    });
    let access = r.data("access_token");
    assert!(r.data("refresh_token").starts_with("trt_"));
    let ac = claims(&access);
    assert_eq!(ac["sub"], account_id.as_str());
    assert_eq!(ac["account_id"], account_id.as_str());
    assert_eq!(ac["act"], json!({"sub": p.id}));
    assert_eq!(ac["token_use"], "client_access_token");
    assert_eq!(ac["partner_id"], p.id.as_str());
    assert_eq!(ac["client_id"], p.id.as_str());
    assert_eq!(ac["iss"], t.base.as_str());
    assert_eq!(
        ac["exp"].as_i64().unwrap() - ac["iat"].as_i64().unwrap(),
        86400
    );
    // RFC 9068 header, and the key is published.
    let header: Value = serde_json::from_slice(
        &base64::Engine::decode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            access.split('.').next().unwrap(),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    let jwks = t.get("/.well-known/jwks.json", None).await;
    assert!(
        jwks.body["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == header["kid"])
    );
    // The engine itself accepts the token it minted.
    t.engine()
        .verify_token(&access, tessera_core::unix_now())
        .unwrap();
}

#[tokio::test]
async fn the_sdk_runs_the_same_flow_and_pages_accounts() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let c = t.client(&p);
    let mut ids = Vec::new();
    for i in 0..5 {
        let a = c
            .create_account(&format!("Customer {i}"), Some(&format!("ext-{i}")))
            .await
            .unwrap();
        ids.push(a.account_id);
    }
    let got = c.account(&ids[2]).await.unwrap();
    assert_eq!(got.name, "Customer 2");
    assert_eq!(got.external_id.as_deref(), Some("ext-2"));

    let mut seen = Vec::new();
    let mut cursor = None;
    loop {
        let page = c.list_accounts(cursor.as_deref(), Some(2)).await.unwrap();
        assert!(page.accounts.len() <= 2);
        seen.extend(page.accounts.into_iter().map(|a| a.account_id));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, ids);

    let machine = c.machine_token("transport crm").await.unwrap();
    assert_eq!(machine.token_type, "Bearer");
    assert_eq!(machine.expires_in, 28800);
    assert!(machine.refresh_token.is_none());
    let pair = c
        .exchange(&machine.access_token, &ids[0], "transport")
        .await
        .unwrap();
    let next = c
        .refresh(pair.refresh_token.as_deref().unwrap())
        .await
        .unwrap();
    assert_ne!(next.refresh_token, pair.refresh_token);
    assert_eq!(claims(&next.access_token)["scope"], "transport");
    assert_eq!(
        claims(&next.access_token)["sid"],
        claims(&pair.access_token)["sid"]
    );
}

#[tokio::test]
async fn a_partner_api_token_authenticates_like_basic() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let token = tessera_core::operations::create_partner_token(
        t.store.as_ref(),
        &crate::support::operator(),
        &p.id,
        tessera_core::unix_now(),
    )
    .await
    .unwrap()
    .partner_token;
    let bearer = format!("Bearer {token}");
    let r = t
        .post("/v2/accounts", Some(&bearer), r#"{"name":"Via token"}"#)
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&bearer),
            &crate::support::machine_token_body("crm"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn health_and_readiness() {
    let t = TestServer::start().await;
    let r = t.get("/healthz", None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ok")));
    let r = t.get("/readyz", None).await;
    assert_eq!((r.status, r.body["status"].as_str()), (200, Some("ready")));
    let r = t.get("/no/such/thing", None).await;
    assert_eq!(r.status, 404);
    let r = t.get("/v2/nothing", None).await;
    assert_eq!((r.status, r.code()), (404, "NOT_FOUND"));
}
