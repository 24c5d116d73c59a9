//! Every error of the partner dialect (README, *Partner dialect*) that the partner dialect can answer so far, each provoked by a request.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use tessera_core::model::PartnerStatus;

use crate::support::{Resp, TestServer, config, exchange_body, machine_token_body, refresh_body};

#[track_caller]
fn expect(r: &Resp, status: u16, code: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{}", r.body);
    assert!(
        r.body["error"]["message"]
            .as_str()
            .is_some_and(|m| m.len() > 10),
        "{}",
        r.body
    );
    assert!(r.body["meta"]["timestamp"].is_i64(), "{}", r.body);
}

async fn machine(t: &TestServer, auth: &str, scope: &str) -> String {
    let r = t
        .post("/v2/oauth/token", Some(auth), &machine_token_body(scope))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.data("access_token")
}

async fn account(t: &TestServer, auth: &str) -> String {
    let r = t.post("/v2/accounts", Some(auth), r#"{"name":"A"}"#).await;
    assert_eq!(r.status, 201, "{}", r.body);
    r.data("account_id")
}

#[tokio::test]
async fn validation_failed_names_each_field() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let b = p.basic();
    let r = t.post("/v2/oauth/token", Some(&b), "{not json").await;
    expect(&r, 400, "VALIDATION_FAILED");
    assert_eq!(r.body["error"]["details"][0]["field"], "body");

    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            r#"{"grant_type":"client_credentials"}"#,
        )
        .await;
    expect(&r, 400, "VALIDATION_FAILED");
    insta::assert_json_snapshot!("validation_missing_data", r.body, {".meta.timestamp" => "[timestamp]"});

    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            r#"{"grant_type":"client_credentials","client_credentials_data":{"scope":42}}"#,
        )
        .await;
    expect(&r, 400, "VALIDATION_FAILED");
    assert_eq!(
        r.body["error"]["details"][0]["field"],
        "client_credentials_data.scope"
    );

    let r = t
        .post("/v2/oauth/token", Some(&b), r#"{"grant_type":7}"#)
        .await;
    expect(&r, 400, "VALIDATION_FAILED");
    assert_eq!(r.body["error"]["details"][0]["field"], "grant_type");

    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            r#"{"grant_type":"client_credentials","client_credentials_data":{"scope":" , "}}"#,
        )
        .await;
    expect(&r, 400, "VALIDATION_FAILED");

    let r = t.post("/v2/accounts", Some(&b), r#"{"name":""}"#).await;
    expect(&r, 400, "VALIDATION_FAILED");
    assert_eq!(r.body["error"]["details"][0]["field"], "name");

    let r = t
        .post(
            "/v2/accounts",
            Some(&b),
            r#"{"name":"x","external_id":"e1"}"#,
        )
        .await;
    assert_eq!(r.status, 201);
    let r = t
        .post(
            "/v2/accounts",
            Some(&b),
            r#"{"name":"y","external_id":"e1"}"#,
        )
        .await;
    expect(&r, 400, "VALIDATION_FAILED");
    assert_eq!(r.body["error"]["details"][0]["field"], "external_id");

    let r = t.get("/v2/accounts?limit=abc", Some(&b)).await;
    expect(&r, 400, "VALIDATION_FAILED");
    let r = t.get("/v2/accounts?limit=100000", Some(&b)).await;
    expect(&r, 400, "VALIDATION_FAILED");
}

#[tokio::test]
async fn invalid_grant_type() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&p.basic()),
            r#"{"grant_type":"implicit"}"#,
        )
        .await;
    expect(&r, 400, "OAUTH_INVALID_GRANT_TYPE");
}

#[tokio::test]
async fn authorization_header_problems() {
    let t = TestServer::start().await;
    let body = machine_token_body("crm");
    let r = t.post("/v2/oauth/token", None, &body).await;
    expect(&r, 401, "OAUTH_AUTHORIZATION_HEADER_INVALID");
    for bad in [
        "Basic not-base64!!",
        "Digest abc",
        "Basic",
        &format!("Basic {}", STANDARD.encode("no-colon")),
    ] {
        let r = t.post("/v2/oauth/token", Some(bad), &body).await;
        expect(&r, 401, "OAUTH_AUTHORIZATION_HEADER_INVALID");
    }
}

#[tokio::test]
async fn invalid_partner_token() {
    let t = TestServer::start().await;
    for bad in ["Bearer tpt_unknown", "Bearer something-else"] {
        let r = t.post("/v2/accounts", Some(bad), r#"{"name":"x"}"#).await;
        expect(&r, 401, "OAUTH_INVALID_PARTNER_TOKEN");
    }
}

#[tokio::test]
async fn partner_not_found_for_wrong_password_or_unknown_email() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let wrong = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:wrong-password-x", p.email))
    );
    let unknown = format!(
        "Basic {}",
        STANDARD.encode(format!("nobody@example.com:{}", p.password))
    );
    let a = t
        .post("/v2/oauth/token", Some(&wrong), &machine_token_body("crm"))
        .await;
    let b = t
        .post(
            "/v2/oauth/token",
            Some(&unknown),
            &machine_token_body("crm"),
        )
        .await;
    expect(&a, 401, "OAUTH_PARTNER_NOT_FOUND");
    expect(&b, 401, "OAUTH_PARTNER_NOT_FOUND");
    assert_eq!(a.body["error"], b.body["error"]);
}

#[tokio::test]
async fn partner_inactive_takes_effect_at_once_even_for_cached_credentials() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    machine(&t, &p.basic(), "crm").await; // now cached
    tessera_core::operations::set_partner_status(
        t.store.as_ref(),
        &crate::support::operator(),
        &p.id,
        PartnerStatus::Inactive,
        tessera_core::unix_now(),
    )
    .await
    .unwrap();
    t.settle().await;
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&p.basic()),
            &machine_token_body("crm"),
        )
        .await;
    expect(&r, 403, "OAUTH_PARTNER_INACTIVE");
    tessera_core::operations::set_partner_status(
        t.store.as_ref(),
        &crate::support::operator(),
        &p.id,
        PartnerStatus::Active,
        tessera_core::unix_now(),
    )
    .await
    .unwrap();
    t.settle().await;
    machine(&t, &p.basic(), "crm").await;
}

#[tokio::test]
async fn scope_forbidden_outside_partner_or_machine_token() {
    let t = TestServer::start().await;
    let p = t.partner_with_scopes("transport crm").await;
    let b = p.basic();
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            &machine_token_body("crm,billing"),
        )
        .await;
    expect(&r, 403, "OAUTH_SCOPE_FORBIDDEN");
    insta::assert_json_snapshot!("scope_forbidden", r.body, {".meta.timestamp" => "[timestamp]"});

    let mt = machine(&t, &b, "crm").await;
    let acc = account(&t, &b).await;
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&mt, &acc, "crm transport"),
        )
        .await;
    expect(&r, 403, "OAUTH_SCOPE_FORBIDDEN");
}

#[tokio::test]
async fn subject_token_type_mismatch() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let b = p.basic();
    let mt = machine(&t, &b, "crm").await;
    let acc = account(&t, &b).await;
    let body = exchange_body(&mt, &acc, "crm").replace(
        "urn:wazzup:oauth:token-type:machine_token",
        "urn:ietf:params:oauth:token-type:access_token",
    );
    let r = t.post("/v2/oauth/token", Some(&b), &body).await;
    expect(&r, 400, "OAUTH_SUBJECT_TOKEN_TYPE_MISMATCH");

    // A client access token is not a machine token, whatever the declared type says.
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await;
    let access = r.data("access_token");
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&access, &acc, "crm"),
        )
        .await;
    expect(&r, 400, "OAUTH_SUBJECT_TOKEN_TYPE_MISMATCH");
}

#[tokio::test]
async fn requested_subject_mismatch_and_foreign_accounts() {
    let t = TestServer::start().await;
    let a = t.partner().await;
    let b = t.partner().await;
    let mt_a = machine(&t, &a.basic(), "crm").await;
    let acc_a = account(&t, &a.basic()).await;
    let acc_b = account(&t, &b.basic()).await;

    // B presents A's machine token.
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b.basic()),
            &exchange_body(&mt_a, &acc_b, "crm"),
        )
        .await;
    expect(&r, 400, "OAUTH_REQUESTED_SUBJECT_MISMATCH");

    // A asks for B's account, or one that does not exist: the same answer.
    for acc in [acc_b.as_str(), "no-such-account"] {
        let r = t
            .post(
                "/v2/oauth/token",
                Some(&a.basic()),
                &exchange_body(&mt_a, acc, "crm"),
            )
            .await;
        expect(&r, 403, "OAUTH_CLIENT_NOT_BELONG_TO_PARTNER");
        let r = t
            .get(&format!("/v2/accounts/{acc}"), Some(&a.basic()))
            .await;
        expect(&r, 403, "OAUTH_CLIENT_NOT_BELONG_TO_PARTNER");
    }
    let r = t
        .get(&format!("/v2/accounts/{acc_a}"), Some(&a.basic()))
        .await;
    assert_eq!(r.status, 200);
    let r = t.get("/v2/accounts", Some(&b.basic())).await;
    assert_eq!(r.body["data"]["accounts"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn token_invalid_or_expired() {
    let mut c = config();
    c.machine_token_ttl = 1;
    let t = TestServer::start_with(c).await;
    let p = t.partner().await;
    let b = p.basic();
    let acc = account(&t, &b).await;
    let mt = machine(&t, &b, "crm").await;

    let mut tampered = mt.clone();
    tampered.replace_range(mt.len() - 6.., "AAAAAA");
    for bad in ["garbage", "a.b.c", tampered.as_str()] {
        let r = t
            .post(
                "/v2/oauth/token",
                Some(&b),
                &exchange_body(bad, &acc, "crm"),
            )
            .await;
        expect(&r, 401, "OAUTH_TOKEN_INVALID_OR_EXPIRED");
    }
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await;
    expect(&r, 401, "OAUTH_TOKEN_INVALID_OR_EXPIRED");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expired")
    );
}

#[tokio::test]
async fn token_unknown_or_revoked() {
    let t = TestServer::start().await;
    let other = TestServer::start().await;
    let p = t.partner().await;
    let b = p.basic();
    let acc = account(&t, &b).await;

    // A well-formed token from another deployment's keys.
    let q = other.partner().await;
    let foreign = machine(&other, &q.basic(), "crm").await;
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&foreign, &acc, "crm"),
        )
        .await;
    expect(&r, 401, "OAUTH_TOKEN_UNKNOWN_OR_REVOKED");

    // A revoked machine token's jti is refused at exchange.
    let mt = machine(&t, &b, "crm").await;
    let r = t
        .post(
            "/v2/oauth/revoke",
            Some(&b),
            &serde_json::json!({"token": mt}).to_string(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&b),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await;
    expect(&r, 401, "OAUTH_TOKEN_UNKNOWN_OR_REVOKED");
}

#[tokio::test]
async fn refresh_token_invalid_and_client_id_mismatch() {
    let t = TestServer::start().await;
    let a = t.partner().await;
    let b = t.partner().await;
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&a.basic()),
            &refresh_body("trt_unknown"),
        )
        .await;
    expect(&r, 400, "OAUTH_REFRESH_TOKEN_INVALID");
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&a.basic()),
            &refresh_body("not-ours"),
        )
        .await;
    expect(&r, 400, "OAUTH_REFRESH_TOKEN_INVALID");

    let mt = machine(&t, &a.basic(), "crm").await;
    let acc = account(&t, &a.basic()).await;
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&a.basic()),
            &exchange_body(&mt, &acc, "crm"),
        )
        .await;
    let rt = r.data("refresh_token");
    // Another partner presents A's refresh token: refused, and A's token is untouched.
    let r = t
        .post("/v2/oauth/token", Some(&b.basic()), &refresh_body(&rt))
        .await;
    expect(&r, 400, "OAUTH_CLIENT_ID_MISMATCH");
    let r = t
        .post("/v2/oauth/token", Some(&a.basic()), &refresh_body(&rt))
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

#[tokio::test]
async fn too_many_requests_with_retry_after() {
    let mut c = config();
    c.token_rate_limit = 2;
    let t = TestServer::start_with(c).await;
    let p = t.partner().await;
    let other = t.partner().await;
    let mut statuses = Vec::new();
    let mut limited = None;
    for _ in 0..4 {
        let r = t
            .post(
                "/v2/oauth/token",
                Some(&p.basic()),
                &machine_token_body("crm"),
            )
            .await;
        statuses.push(r.status);
        if r.status == 429 {
            limited = Some(r);
        }
    }
    assert_eq!(&statuses[..2], &[200, 200]);
    let r = limited.expect("a 429 after the burst");
    expect(&r, 429, "TOO_MANY_REQUESTS");
    let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((1..=2).contains(&retry), "{retry}");
    insta::assert_json_snapshot!("too_many_requests", r.body, {".meta.timestamp" => "[timestamp]"});
    // The budget is per partner.
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&other.basic()),
            &machine_token_body("crm"),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn revoke_answers_200_for_unknown_and_403_for_foreign_tokens() {
    let t = TestServer::start().await;
    let a = t.partner().await;
    let b = t.partner().await;
    for token in ["trt_nothing", "nothing", "e30.e30.e30"] {
        let r = t
            .post(
                "/v2/oauth/revoke",
                Some(&a.basic()),
                &serde_json::json!({"token": token}).to_string(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.body);
        assert_eq!(r.body["data"], serde_json::json!({}));
    }
    let mt = machine(&t, &a.basic(), "crm").await;
    let r = t
        .post(
            "/v2/oauth/revoke",
            Some(&b.basic()),
            &serde_json::json!({"token": mt}).to_string(),
        )
        .await;
    expect(&r, 403, "OAUTH_CLIENT_NOT_BELONG_TO_PARTNER");
    let r = t
        .post(
            "/v2/oauth/revoke",
            Some(&a.basic()),
            &serde_json::json!({"token": mt, "token_type_hint": "bogus"}).to_string(),
        )
        .await;
    expect(&r, 400, "VALIDATION_FAILED");
}

#[tokio::test]
async fn concurrent_requests_with_new_credentials_cost_one_argon2() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let before = t.engine().passwords().verifications();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (http, url, b) = (t.http.clone(), t.url("/v2/oauth/token"), p.basic());
        tasks.push(tokio::spawn(async move {
            http.post(url)
                .header("Authorization", b)
                .header("Content-Type", "application/json")
                .body(machine_token_body("crm"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), 200);
    }
    assert_eq!(t.engine().passwords().verifications() - before, 1);
}
