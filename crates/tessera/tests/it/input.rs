//! Hostile input: oversized bodies, deep nesting, bytes that are not JSON, odd headers. Nothing
//! may panic or answer 5xx; everything answers the dialect's envelope.

use crate::support::TestServer;

#[tokio::test]
async fn oversized_bodies_are_refused() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let big = format!(r#"{{"name":"{}"}}"#, "x".repeat(70 * 1024));
    let r = t.post("/v2/accounts", Some(&p.basic()), &big).await;
    assert_eq!(
        (r.status, r.code()),
        (413, "VALIDATION_FAILED"),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn deep_and_garbage_bodies_answer_validation_failed() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let deep = format!("{}{}", "[".repeat(5000), "]".repeat(5000));
    let long_field = format!(
        r#"{{"grant_type":"refresh_token","refresh_token_data":{{"refresh_token":"{}"}}}}"#,
        "a".repeat(9000)
    );
    let long_name = format!(r#"{{"name":"{}"}}"#, "n".repeat(300));
    let inputs: Vec<String> = vec![
        deep,
        long_field,
        "\u{0}\u{1}\u{2}".into(),
        "null".into(),
        "[]".into(),
        "\"string\"".into(),
        r#"{"grant_type":null}"#.into(),
        r#"{"grant_type":"client_credentials","client_credentials_data":[]}"#.into(),
        r#"{"grant_type":"client_credentials","client_credentials_data":{"scope":"a\"b"}}"#.into(),
        r#"{"grant_type":"urn:ietf:params:oauth:grant-type:token-exchange","token_exchange_data":{"subject_token":"","subject_token_type":"","requested_subject":"","scope":""}}"#.into(),
        "{\"grant_type\":\"\u{10FFFF}\"}".into(),
    ];
    for body in &inputs {
        for path in ["/v2/oauth/token", "/v2/accounts", "/v2/oauth/revoke"] {
            let r = t.post(path, Some(&p.basic()), body).await;
            assert!(
                r.status == 400 || r.status == 403,
                "{path} {}: {} {}",
                &body[..body.len().min(40)],
                r.status,
                r.body
            );
            assert!(r.body["error"]["code"].is_string(), "{}", r.body);
        }
    }
    let r = t.post("/v2/accounts", Some(&p.basic()), &long_name).await;
    assert_eq!(r.code(), "VALIDATION_FAILED");
    assert_eq!(r.body["error"]["details"][0]["field"], "name");
}

#[tokio::test]
async fn odd_authorization_headers_never_cause_a_5xx() {
    let t = TestServer::start().await;
    let long = format!("Basic {}", "A".repeat(5000));
    for h in [
        "Basic ",
        "Basic ====",
        "Bearer",
        "basic Og==",
        "Bearer tpt_",
        long.as_str(),
        "\t",
    ] {
        let r = t.post("/v2/accounts", Some(h), r#"{"name":"x"}"#).await;
        assert!(r.status == 401, "{h:?}: {} {}", r.status, r.body);
    }
}

/// The partner dialect reads JSON and says so: a form body (the other dialect's, the usual
/// mix-up) and a body without `Content-Type: application/json` are refused with a message that
/// names the header, not "malformed JSON"; `application/json; charset=utf-8` and `+json` pass.
#[tokio::test]
async fn the_partner_dialect_wants_a_json_content_type() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let send = |content_type: Option<&'static str>, body: &'static str| {
        let mut r = t
            .http
            .post(t.url("/v2/oauth/token"))
            .header("Authorization", p.basic());
        if let Some(ct) = content_type {
            r = r.header("Content-Type", ct);
        }
        async move { crate::support::resp(r.body(body).send().await.unwrap()).await }
    };
    let json = r#"{"grant_type":"client_credentials","client_credentials_data":{"scope":"crm"}}"#;
    let form = "grant_type=client_credentials&scope=crm";
    let r = send(Some("application/x-www-form-urlencoded"), form).await;
    assert_eq!(
        (r.status, r.code()),
        (400, "VALIDATION_FAILED"),
        "{}",
        r.body
    );
    assert_eq!(r.body["error"]["details"][0]["field"], "Content-Type");
    assert!(
        r.body["error"]["details"][0]["message"]
            .as_str()
            .unwrap()
            .contains("reads JSON, not a form"),
        "{}",
        r.body
    );
    for missing in [None, Some("text/plain")] {
        let r = send(missing, json).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "VALIDATION_FAILED"),
            "{}",
            r.body
        );
        assert_eq!(r.body["error"]["details"][0]["field"], "Content-Type");
    }
    for good in [
        "application/json; charset=utf-8",
        "application/vnd.partner+json",
    ] {
        let r = send(Some(good), json).await;
        assert_eq!(r.status, 200, "{good}: {}", r.body);
    }
}

/// A NUL character (`%00`) in a path or a query string. PostgreSQL refuses NUL in text, so
/// there it reached the database and came back as a 500 (an account's id, the list's cursor)
/// or as a `server_error` redirect (`/authorize` stores its parameters); SQLite took it, and
/// `/authorize` sent it back in `state`. Refused as input now, on every backend.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_in_a_path_or_query_is_refused_on_every_backend() {
    let mut servers = vec![TestServer::start().await];
    if let Some(admin) = crate::support::postgres_url("input on PostgreSQL") {
        let db = tessera_store::create_scratch_database(&admin)
            .await
            .unwrap();
        let master = tessera_core::master::MasterKey::generate();
        servers.push(TestServer::start_node(&db, &master, Default::default()).await);
    }
    for t in &servers {
        let s = crate::authcode::setup(t, &[], false).await;
        let basic = s.partner.basic();
        // Answered as an id no account has (the seed's answer for those is a 403).
        let unknown = t.get("/v2/accounts/99999999", Some(&basic)).await;
        assert_eq!(unknown.status, 403, "{}", unknown.body);
        for id in ["a%00b", &format!("{}%00", s.account_id)] {
            let r = t.get(&format!("/v2/accounts/{id}"), Some(&basic)).await;
            assert_eq!((r.status, r.code()), (403, unknown.code()), "{}", r.body);
        }
        let r = t.get("/v2/accounts?cursor=a%00b", Some(&basic)).await;
        assert_eq!(
            (r.status, r.code()),
            (400, "VALIDATION_FAILED"),
            "{}",
            r.body
        );

        let mut agent = crate::authcode::Agent::new(&t.base);
        for dialect in ["standard", "partner"] {
            for (from, to) in [
                ("state=xyz-state", "state=a%00b"),
                ("scope=crm", "scope=crm&nonce=%00"),
            ] {
                let path =
                    crate::authcode::authorize_path(dialect, &s.client_id, &[]).replace(from, to);
                let r = agent.get(&path).await;
                assert_eq!(r.status, 400, "{dialect} {to}: {:?}", r.location);
                assert!(r.location.is_none());
                assert!(r.body.contains("NUL character"), "{}", r.body);
            }
        }
    }
}
