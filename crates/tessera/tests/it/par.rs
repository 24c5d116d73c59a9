//! Pushed authorization requests (RFC 9126) through the real server: the push in both dialects,
//! `/authorize` by reference (once, for its own client only, the query's other parameters
//! ignored), the token endpoint's errors, `--require-par` clients, and many uses of one
//! reference at once on every backend.

use base64::Engine as _;
use serde_json::json;

use crate::authcode::{Agent, CHALLENGE, REDIRECT, Setup, authorize, setup};
use crate::oidc::{basic as client_basic, redeem};
use crate::support::{Resp, TestServer, client_input, create_client};

/// The authorization request's parameters, as a client pushes them.
fn pushed<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut pairs = vec![
        ("response_type", "code"),
        ("redirect_uri", REDIRECT),
        ("scope", "crm"),
        ("state", "xyz-state"),
        ("code_challenge", CHALLENGE),
        ("code_challenge_method", "S256"),
    ];
    pairs.extend_from_slice(extra);
    pairs
}

async fn push(t: &TestServer, s: &Setup, extra: &[(&str, &str)]) -> Resp {
    t.form("/oauth/par", Some(&client_basic(s)), &pushed(extra))
        .await
}

fn by_reference(dialect: &str, client_id: &str, request_uri: &str, extra: &str) -> String {
    let prefix = if dialect == "partner" { "/v2" } else { "" };
    let q: String = form_urlencoded::Serializer::new(String::new())
        .append_pair("client_id", client_id)
        .append_pair("request_uri", request_uri)
        .finish();
    format!("{prefix}/oauth/authorize?{q}{extra}")
}

/// A server per backend: SQLite always, and PostgreSQL when the suite has one, where deleting
/// a pushed request is slowed (a trigger sleeps 300 ms) so that every concurrent use has read
/// it before the first delete commits: only the delete's own answer can then keep it to one.
async fn every_backend_with_slow_takes(name: &str) -> Vec<TestServer> {
    let mut servers = vec![TestServer::start().await];
    if let Some(admin) = crate::support::postgres_url(name) {
        let db = tessera_store::create_scratch_database(&admin)
            .await
            .unwrap();
        let master = tessera_core::master::MasterKey::generate();
        servers.push(TestServer::start_node(&db, &master, Default::default()).await);
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
        sqlx::raw_sql(
            "CREATE FUNCTION slow_take() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN IF OLD.id LIKE 'par.%' THEN PERFORM pg_sleep(0.3); END IF; RETURN OLD; END $$;
             CREATE TRIGGER slow_take BEFORE DELETE ON authorization_requests FOR EACH ROW
             EXECUTE FUNCTION slow_take();",
        )
        .execute(&mut c)
        .await
        .unwrap();
    }
    servers
}

#[tokio::test]
async fn a_pushed_request_runs_the_flow_once_in_both_dialects() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;

    // Standard dialect: the form, authenticated as at the token endpoint.
    let r = push(&t, &s, &[]).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.headers["cache-control"], "no-store");
    insta::assert_json_snapshot!("par_standard", r.body, {".request_uri" => "[request_uri]"});
    let uri = r.body["request_uri"].as_str().unwrap().to_string();
    assert!(uri.starts_with("urn:ietf:params:oauth:request_uri:"));

    // The browser carries only client_id and the reference; whatever else the query says is
    // ignored (the pushed state and scope are the ones used).
    let mut agent = Agent::new(&t.base);
    let path = by_reference(
        "standard",
        &s.client_id,
        &uri,
        "&state=forged&scope=transport",
    );
    let q = authorize(&mut agent, &s, &path).await;
    assert_eq!(q["state"], "xyz-state", "the pushed state, not the query's");
    assert_eq!(q["iss"], t.base);
    let pair = redeem(&t, &s, &q["code"]).await;
    let claims = crate::support::claims(pair["access_token"].as_str().unwrap());
    assert_eq!(claims["scope"], "crm");

    // A reference is good once: the second use is a page, not a redirect.
    let again = agent.get(&path).await;
    assert_eq!(again.status, 400, "{}", again.body);
    assert!(again.body.contains("already used"), "{}", again.body);

    // Partner dialect: the partner pushes for its client, in its JSON and envelope.
    let body = json!({
        "client_id": s.client_id, "response_type": "code", "redirect_uri": REDIRECT,
        "scope": "crm", "state": "partner-state", "code_challenge": CHALLENGE,
        "code_challenge_method": "S256"
    });
    let r = t
        .post("/v2/oauth/par", Some(&s.partner.basic()), &body.to_string())
        .await;
    assert_eq!(r.status, 201, "{}", r.body);
    insta::assert_json_snapshot!("par_partner", r.body, {
        ".meta.timestamp" => "[timestamp]", ".data.request_uri" => "[request_uri]"
    });
    // Signed in and consented already: straight back with a code.
    let r = agent
        .get(&by_reference(
            "partner",
            &s.client_id,
            &r.data("request_uri"),
            "",
        ))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let q = r.query();
    assert_eq!(q["state"], "partner-state");
    assert!(q["code"].starts_with("tac_"));
}

#[tokio::test]
async fn a_push_is_refused_as_the_token_endpoint_refuses() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let basic = client_basic(&s);
    let refused = |r: &Resp, status: u16, error: &str, about: &str| {
        assert_eq!((r.status, r.oauth_error()), (status, error), "{}", r.body);
        let description = r.body["error_description"].as_str().unwrap();
        assert!(description.contains(about), "{description}");
    };

    let r = t.form("/oauth/par", None, &pushed(&[])).await;
    refused(&r, 401, "invalid_client", "");
    let wrong = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{}:nope", s.client_id))
    );
    let r = t.form("/oauth/par", Some(&wrong), &pushed(&[])).await;
    refused(&r, 401, "invalid_client", "");
    let r = push(
        &t,
        &s,
        &[("request_uri", "urn:ietf:params:oauth:request_uri:x")],
    )
    .await;
    refused(&r, 400, "invalid_request", "request_uri cannot be pushed");
    let r = push(&t, &s, &[("client_id", "tc_someone_else")]).await;
    refused(&r, 400, "invalid_request", "differs");
    let mut other_redirect = pushed(&[]);
    other_redirect[1] = ("redirect_uri", "https://evil.example/cb");
    let r = t.form("/oauth/par", Some(&basic), &other_redirect).await;
    refused(&r, 400, "invalid_request", "redirect_uri is not one of");
    let mut no_challenge = pushed(&[]);
    no_challenge.retain(|(k, _)| *k != "code_challenge");
    let r = t.form("/oauth/par", Some(&basic), &no_challenge).await;
    refused(&r, 400, "invalid_request", "code_challenge is required");
    let mut scope = pushed(&[]);
    scope[2] = ("scope", "billing");
    let r = t.form("/oauth/par", Some(&basic), &scope).await;
    refused(&r, 400, "invalid_scope", "");
    let mut token = pushed(&[]);
    token[0] = ("response_type", "token");
    let r = t.form("/oauth/par", Some(&basic), &token).await;
    refused(&r, 400, "unsupported_response_type", "");
    let r = push(&t, &s, &[("state", "again")]).await;
    refused(&r, 400, "invalid_request", "repeated");
    insta::assert_json_snapshot!("par_standard_error", r.body);

    // Partner dialect: only the partner's own clients, in its envelope.
    let other = t.partner().await;
    let body = json!({"client_id": s.client_id, "response_type": "code",
        "code_challenge": CHALLENGE, "code_challenge_method": "S256"});
    let r = t
        .post("/v2/oauth/par", Some(&other.basic()), &body.to_string())
        .await;
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.code(), "OAUTH_CLIENT_NOT_BELONG_TO_PARTNER");
    let r = t
        .post(
            "/v2/oauth/par",
            Some(&s.partner.basic()),
            &json!({"response_type": "code"}).to_string(),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "VALIDATION_FAILED"),
        "{}",
        r.body
    );
    insta::assert_json_snapshot!("par_partner_error", r.body, {".meta.timestamp" => "[timestamp]"});
    // What /v2/oauth/authorize refuses, a push refuses (found by the attack on this feature: the
    // partner's JSON dropped these members, and form_post was silently answered in the query).
    for (member, value, code) in [
        (
            "request_uri",
            "urn:ietf:params:oauth:request_uri:x",
            "VALIDATION_FAILED",
        ),
        ("request", "a.b.c", "request_not_supported"),
        ("response_mode", "form_post", "VALIDATION_FAILED"),
    ] {
        let mut body = json!({"client_id": s.client_id, "response_type": "code",
            "redirect_uri": REDIRECT, "scope": "crm", "code_challenge": CHALLENGE,
            "code_challenge_method": "S256"});
        body[member] = value.into();
        let r = t
            .post("/v2/oauth/par", Some(&s.partner.basic()), &body.to_string())
            .await;
        assert_eq!((r.status, r.code()), (400, code), "{member}: {}", r.body);
    }

    // /authorize: a reference of this server only, for its own client only; nothing redirects
    // (the request, and so its redirect URI, is not known).
    let uri = push(&t, &s, &[]).await.body["request_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let mut agent = Agent::new(&t.base);
    let too_long = format!("urn:ietf:params:oauth:request_uri:{}", "a".repeat(65));
    let (other_client, _) = create_client(
        t.store.as_ref(),
        tessera_core::operations::CreateClient {
            redirect_uris: vec!["https://other.example/cb".into()],
            ..client_input(&s.partner.id, "Other", &["authorization_code"], "crm")
        },
    )
    .await;
    for (client_id, request_uri, says) in [
        (
            other_client.id.as_str(),
            uri.as_str(),
            "another application",
        ),
        (
            s.client_id.as_str(),
            "urn:ietf:params:oauth:request_uri:unknown",
            "expired",
        ),
        (s.client_id.as_str(), &too_long, "not issued by this server"),
    ] {
        let r = agent
            .get(&by_reference("standard", client_id, request_uri, ""))
            .await;
        assert_eq!((r.status, r.location.as_deref()), (400, None), "{}", r.body);
        assert!(r.body.contains(says), "{says}: {}", r.body);
    }
    // The mismatch did not use the reference up: its own client still can.
    let r = agent
        .get(&by_reference("standard", &s.client_id, &uri, ""))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
}

#[tokio::test]
async fn a_client_that_requires_par_cannot_send_its_request_in_the_query() {
    let t = TestServer::start().await;
    let base = setup(&t, &[], false).await;
    let (client, secret) = create_client(
        t.store.as_ref(),
        tessera_core::operations::CreateClient {
            redirect_uris: vec![REDIRECT.into()],
            require_par: true,
            ..client_input(
                &base.partner.id,
                "Acme CRM",
                &["authorization_code"],
                "crm transport",
            )
        },
    )
    .await;
    let s = Setup {
        client_id: client.id.clone(),
        client_secret: secret,
        ..crate::authcode::setup_clone(&base)
    };
    let mut agent = Agent::new(&t.base);
    let r = agent
        .get(&crate::authcode::authorize_path(
            "standard",
            &s.client_id,
            &[],
        ))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let q = r.query();
    assert_eq!(q["error"], "invalid_request");
    assert!(q["error_description"].contains("push"), "{q:?}");
    assert_eq!(q["state"], "xyz-state");

    let uri = push(&t, &s, &[]).await.body["request_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let q = authorize(
        &mut agent,
        &s,
        &by_reference("standard", &s.client_id, &uri, ""),
    )
    .await;
    assert!(q["code"].starts_with("tac_"), "{q:?}");
    let view = tessera_core::inventory::client(t.store.as_ref(), &s.client_id)
        .await
        .unwrap();
    assert!(view.require_par);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_uses_of_one_reference_at_once_let_one_through_on_every_backend() {
    for t in every_backend_with_slow_takes("par race on PostgreSQL").await {
        let s = setup(&t, &[], false).await;
        let uri = push(&t, &s, &[]).await.body["request_uri"]
            .as_str()
            .unwrap()
            .to_string();
        let path = by_reference("standard", &s.client_id, &uri, "");
        let uses = (0..24).map(|i| {
            let (base, path) = (t.base.clone(), path.clone());
            // Separate browsers at separate addresses: no throttle decides the race.
            let address = std::net::Ipv4Addr::new(127, 0, 3, 1 + i);
            tokio::spawn(async move { Agent::from(&base, address).get(&path).await })
        });
        let uses: Vec<_> = uses.collect(); // all in flight before any is awaited
        let mut statuses = Vec::new();
        for u in uses {
            statuses.push(u.await.unwrap().status);
        }
        statuses.sort_unstable();
        let through = statuses.iter().filter(|&&s| s == 303).count();
        assert_eq!(through, 1, "{statuses:?}");
        assert!(
            statuses.iter().all(|&s| s == 303 || s == 400),
            "{statuses:?}"
        );
    }
}

/// Each push stores a row for a minute: pushes count against the caller's token-request budget,
/// so an authenticated client cannot fill the table faster than it may ask for tokens.
#[tokio::test]
async fn pushes_count_against_the_token_request_budget() {
    let mut c = crate::support::config();
    c.token_rate_limit = 2;
    let t = TestServer::start_with(c).await;
    let s = setup(&t, &[], false).await;
    let mut statuses = Vec::new();
    for _ in 0..8 {
        statuses.push(push(&t, &s, &[]).await.status);
    }
    assert_eq!(statuses[0], 201, "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
    let r = push(&t, &s, &[]).await;
    if r.status == 429 {
        assert_eq!(r.oauth_error(), "too_many_requests");
        assert!(r.headers.contains_key("retry-after"));
    }
}
