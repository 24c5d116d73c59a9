//! Refresh-token rotation through the real server: a retry after a lost response, one live head
//! among concurrent uses, reuse after the grace period revokes the family (and its access
//! tokens), and refreshes of an exchanged family keep its actor.

use std::time::Duration;

use tessera_core::unix_now;

use crate::support::{TestServer, config, exchange_body, machine_token_body, refresh_body};

async fn pair(t: &TestServer, auth: &str) -> (String, String) {
    let r = t
        .post("/v2/oauth/token", Some(auth), &machine_token_body("crm"))
        .await;
    let mt = r.data("access_token");
    let r = t.post("/v2/accounts", Some(auth), r#"{"name":"A"}"#).await;
    let acc = r.data("account_id");
    let r = t
        .post(
            "/v2/oauth/token",
            Some(auth),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    (r.data("access_token"), r.data("refresh_token"))
}

#[tokio::test]
async fn a_retry_after_a_lost_response_gets_a_fresh_pair_and_reuse_is_still_refused() {
    let t = TestServer::start().await; // grace 30 s
    let p = t.partner().await;
    let b = p.basic();
    let (_, rt1) = pair(&t, &b).await;
    let refresh = |rt: String| {
        let (t, b) = (&t, b.clone());
        async move {
            t.post("/v2/oauth/token", Some(&b), &refresh_body(&rt))
                .await
        }
    };
    // The response carrying rt2 is lost; the client retries rt1 and gets a fresh pair.
    let r = refresh(rt1.clone()).await;
    assert_eq!(r.status, 200);
    let lost = r.data("refresh_token");
    let r = refresh(rt1.clone()).await;
    assert_eq!(r.status, 200, "a retry within the grace period: {}", r.body);
    let rt3 = r.data("refresh_token");
    assert_ne!(rt3, lost);
    // The lost successor is dead; the new one is the family's head.
    assert_eq!(refresh(lost).await.code(), "OAUTH_REFRESH_TOKEN_INVALID");
    let r = refresh(rt3).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let rt4 = r.data("refresh_token");
    // Once the successor was used, presenting rt1 again is reuse: refused, family kept.
    let r = refresh(rt1).await;
    assert_eq!(r.code(), "OAUTH_REFRESH_TOKEN_INVALID");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("already been used")
    );
    assert_eq!(refresh(rt4).await.status, 200);
}

#[tokio::test]
async fn reuse_after_grace_revokes_the_family_and_its_access_tokens() {
    let mut c = config();
    c.refresh_reuse_grace = 0;
    let t = TestServer::start_with(c).await;
    let p = t.partner().await;
    let b = p.basic();
    let (at1, rt1) = pair(&t, &b).await;
    let r = t
        .post("/v2/oauth/token", Some(&b), &refresh_body(&rt1))
        .await;
    let (at2, rt2) = (r.data("access_token"), r.data("refresh_token"));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let r = t
        .post("/v2/oauth/token", Some(&b), &refresh_body(&rt1))
        .await;
    assert_eq!(r.code(), "OAUTH_REFRESH_TOKEN_INVALID");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked")
    );
    let r = t
        .post("/v2/oauth/token", Some(&b), &refresh_body(&rt2))
        .await;
    assert_eq!(r.code(), "OAUTH_REFRESH_TOKEN_INVALID", "{}", r.body);
    for at in [at1, at2] {
        assert!(matches!(
            t.engine().verify_token(&at, unix_now()),
            Err(tessera_core::EngineError::TokenUnknownOrRevoked)
        ));
    }
}

#[tokio::test]
async fn concurrent_uses_of_one_token_leave_exactly_one_live_head() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let b = p.basic();
    let (_, rt) = pair(&t, &b).await;
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, url, b, body) = (
            t.http.clone(),
            t.url("/v2/oauth/token"),
            b.clone(),
            refresh_body(&rt),
        );
        tasks.push(tokio::spawn(async move {
            let r = http
                .post(url)
                .header("Authorization", b)
                .header("Content-Type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = r.status().as_u16();
            (status, r.json::<serde_json::Value>().await.unwrap())
        }));
    }
    let mut handed_out = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            (200, v) => handed_out.push(v["data"]["refresh_token"].as_str().unwrap().to_string()),
            (400, _) => {}
            (other, v) => panic!("unexpected status {other}: {v}"),
        }
    }
    // Concurrent uses within the grace period are retries; of everything handed out, exactly
    // one token is still the family's head.
    assert!(!handed_out.is_empty());
    let mut live = 0;
    for rt in &handed_out {
        let r = t.post("/v2/oauth/token", Some(&b), &refresh_body(rt)).await;
        live += usize::from(r.status == 200);
    }
    assert_eq!(live, 1, "{} handed out", handed_out.len());
}

#[tokio::test]
async fn revoking_a_refresh_token_revokes_its_family() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let b = p.basic();
    let (at, rt1) = pair(&t, &b).await;
    let r = t
        .post("/v2/oauth/token", Some(&b), &refresh_body(&rt1))
        .await;
    let rt2 = r.data("refresh_token");
    let r = t
        .post(
            "/v2/oauth/revoke",
            Some(&b),
            &serde_json::json!({"token": rt2, "token_type_hint": "refresh_token"}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = t
        .post("/v2/oauth/token", Some(&b), &refresh_body(&rt2))
        .await;
    assert_eq!(r.code(), "OAUTH_REFRESH_TOKEN_INVALID");
    assert!(t.engine().verify_token(&at, unix_now()).is_err());
}

#[tokio::test]
async fn revoking_an_access_token_revokes_only_it() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let b = p.basic();
    let (at, rt) = pair(&t, &b).await;
    let r = t
        .post(
            "/v2/oauth/revoke",
            Some(&b),
            &serde_json::json!({"token": at}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200);
    assert!(t.engine().verify_token(&at, unix_now()).is_err());
    let r = t
        .post("/v2/oauth/token", Some(&b), &refresh_body(&rt))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn refreshes_of_an_exchanged_family_keep_its_actor() {
    let t = TestServer::start().await;
    let o = t
        .onboard(&["client_credentials", "refresh_token", "token_exchange"])
        .await;
    let machine = t
        .post(
            "/v2/oauth/token",
            Some(&o.partner.basic()),
            &machine_token_body("WRITE crm"),
        )
        .await
        .data("access_token");
    let acc = t
        .post("/v2/accounts", Some(&o.partner.basic()), r#"{"name":"A"}"#)
        .await
        .data("account_id");
    // The partner's machine token as actor: `act.sub` is the partner, not the client.
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", &machine),
                (
                    "subject_token_type",
                    "urn:wazzup:oauth:token-type:machine_token",
                ),
                ("requested_subject", &acc),
                ("actor_token", &machine),
                (
                    "actor_token_type",
                    "urn:wazzup:oauth:token-type:machine_token",
                ),
                ("scope", "WRITE"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let first = crate::support::claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(first["act"]["sub"], o.partner.id.as_str());
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", r.body["refresh_token"].as_str().unwrap()),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refreshed = crate::support::claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(
        refreshed["act"], first["act"],
        "the actor survives the refresh"
    );
}
