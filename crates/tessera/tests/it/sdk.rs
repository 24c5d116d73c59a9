//! The SDK (issue 12, item 4) against the real server: token sources send one request however
//! many tasks ask at once and one renewal when due (counted through the server's own audit
//! trail, a `token.issued` row per token answered); the standard-dialect client; and the
//! resource-server verifier and its axum middleware.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tessera_client::MachineTokenSource;
use tessera_core::audit::AuditQuery;

use crate::support::{TestServer, claims};

async fn tokens_issued(t: &TestServer, partner_id: &str) -> usize {
    t.engine().flush_audit().await;
    t.store
        .query_audit(&AuditQuery {
            partner_id: Some(partner_id.into()),
            event: Some("token.issued".into()),
            limit: 10_000,
            ..AuditQuery::default()
        })
        .await
        .unwrap()
        .len()
}

async fn ask_100(source: &Arc<MachineTokenSource>) -> Vec<String> {
    join_all((0..100).map(|_| {
        let source = Arc::clone(source);
        async move { source.token().await.unwrap() }
    }))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_concurrent_callers_send_one_request_and_one_renewal() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let source = Arc::new(MachineTokenSource::new(t.client(&p), "crm"));
    let tokens = ask_100(&source).await;
    assert!(tokens.iter().all(|x| *x == tokens[0]));
    assert_eq!(
        tokens_issued(&t, &p.id).await,
        1,
        "one request for 100 callers"
    );
    // Cached: asking again sends nothing.
    assert_eq!(source.token().await.unwrap(), tokens[0]);
    assert_eq!(tokens_issued(&t, &p.id).await, 1);

    // A source that renews once less than its lifetime minus a second remains: due after 1 s.
    let c = claims(&tokens[0]);
    let lifetime = (c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap()) as u64;
    let due = Arc::new(
        MachineTokenSource::new(t.client(&p), "crm")
            .renew_before(Duration::from_secs(lifetime - 1)),
    );
    let first = due.token().await.unwrap();
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let renewed = ask_100(&due).await;
    assert!(renewed.iter().all(|x| *x == renewed[0]));
    assert_ne!(renewed[0], first, "renewed when due");
    assert_eq!(
        tokens_issued(&t, &p.id).await,
        3,
        "the second source: its first token and one renewal for 100 callers"
    );
}

/// The standard dialect through the SDK, and a refreshing token source: 100 callers of a due
/// source send one refresh, and the source holds the rotated refresh token.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_client_and_a_refreshing_source() {
    use tessera_client::standard::SignUp;
    use tessera_client::{MACHINE_TOKEN_TYPE, StandardClient, TokenSource};
    let t = TestServer::start().await;
    let o = t
        .onboard(&[
            "client_credentials",
            "password",
            "refresh_token",
            "token_exchange",
        ])
        .await;
    let sc = StandardClient::new(&t.base, &o.client_id, &o.client_secret);
    let app = sc.client_credentials(Some("WRITE")).await.unwrap();
    assert!(sc.introspect(&app.access_token).await.unwrap().active);
    let admin = sc
        .password(&o.admin_email, &o.admin_password, Some("WRITE"))
        .await
        .unwrap();
    assert_eq!(claims(&admin.access_token)["token_use"], "user_token");
    let wrong = StandardClient::new(&t.base, &o.client_id, "not-the-secret");
    let e = wrong.client_credentials(None).await.unwrap_err();
    assert_eq!(e.code(), Some("invalid_client"), "{e}");
    let buyer = sc
        .sign_up(
            &app.access_token,
            &SignUp {
                phone_number: "+966501234567".into(),
                first_name: Some("Sara".into()),
                ..SignUp::default()
            },
        )
        .await
        .unwrap();
    assert!(!buyer.pre_existing_user);
    assert!(!format!("{buyer:?}").contains(&buyer.client_user_token));
    // The buyer's own token, and `me` read back in the type the server renders.
    let customer = sc
        .password(&buyer.phone_number, &buyer.client_user_token, Some("WRITE"))
        .await
        .unwrap();
    let me = sc.me(&customer.access_token).await.unwrap();
    assert_eq!(
        (
            me.id.as_str(),
            me.token_use.as_str(),
            me.phone_number.as_deref()
        ),
        (buyer.id.as_str(), "customer_token", Some("+966501234567"))
    );
    assert_eq!(me.first_name.as_deref(), Some("Sara"));

    // A partner's machine token exchanged in the standard dialect: a pair with a refresh token.
    let partner = t.client(&o.partner);
    let machine = partner.machine_token("WRITE").await.unwrap();
    let account = partner.create_account("Acme", None).await.unwrap();
    let pair = sc
        .exchange(
            &machine.access_token,
            MACHINE_TOKEN_TYPE,
            Some(&account.account_id),
            Some("WRITE"),
        )
        .await
        .unwrap();
    let first_refresh = pair.refresh_token.clone().unwrap();
    let lifetime = Duration::from_secs(pair.expires_in as u64);
    let source = Arc::new(
        TokenSource::standard_refresh(sc.clone(), &pair)
            .unwrap()
            .renew_before(lifetime - Duration::from_secs(1)),
    );
    assert_eq!(
        source.token().await.unwrap(),
        pair.access_token,
        "served until due"
    );
    let before = tokens_issued(&t, &o.partner.id).await;
    tokio::time::sleep(Duration::from_millis(1_200)).await;
    let renewed = ask_100(&source).await;
    assert!(renewed.iter().all(|x| *x == renewed[0]));
    assert_ne!(renewed[0], pair.access_token);
    assert_eq!(
        tokens_issued(&t, &o.partner.id).await - before,
        1,
        "one refresh for 100 callers"
    );
    let rotated = source.refresh_token().await.unwrap();
    assert_ne!(rotated, first_refresh, "the source holds the successor");
    assert!(sc.introspect(&rotated).await.unwrap().active);

    sc.revoke(&app.access_token).await.unwrap();
    assert!(!sc.introspect(&app.access_token).await.unwrap().active);
}

/// A JWKS proxy that counts its fetches: what a resource server's verifier costs the issuer.
async fn counting_jwks(t: &TestServer) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = Arc::new(AtomicUsize::new(0));
    let upstream = t.url("/.well-known/jwks.json");
    let counter = Arc::clone(&count);
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let upstream = upstream.clone();
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                let body = reqwest::get(&upstream).await.unwrap().text().await.unwrap();
                ([("content-type", "application/json")], body)
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/jwks"), count)
}

/// The resource-server verifier: offline checks that fail closed, a JWKS fetched once for 100
/// concurrent first tokens and once more for a rotated key, rate limited for forged kids, and
/// introspection for revocation; and the axum middleware in front of a real service.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resource_server_verifies_tokens_offline() {
    use std::sync::atomic::Ordering;
    use tessera_client::{StandardClient, Verifier, VerifyError};
    let t = TestServer::start().await;
    let o = t.onboard(&["client_credentials"]).await;
    let sc = StandardClient::new(&t.base, &o.client_id, &o.client_secret);
    let token = sc
        .client_credentials(Some("WRITE"))
        .await
        .unwrap()
        .access_token;
    let (jwks, fetches) = counting_jwks(&t).await;
    let verifier = Arc::new(Verifier::new(&t.base).jwks_uri(&jwks));

    let all = join_all((0..100).map(|_| {
        let (v, token) = (Arc::clone(&verifier), token.clone());
        async move { v.verify(&token).await }
    }))
    .await;
    for c in &all {
        let c = c.as_ref().unwrap();
        assert_eq!(
            (c.client_id.as_str(), c.token_use.as_str()),
            (o.client_id.as_str(), "app_token")
        );
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        1,
        "one JWKS fetch for 100 first tokens"
    );

    // Fails closed: missing scope, tampered signature, another audience, garbage, an ID token.
    assert_eq!(
        verifier.verify_scopes(&token, &["crm"]).await,
        Err(VerifyError::InsufficientScope(vec!["crm".into()]))
    );
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    assert!(matches!(
        verifier.verify(&tampered).await,
        Err(VerifyError::Invalid(_))
    ));
    let elsewhere = Verifier::new(&t.base).audience("https://api.other.example");
    assert!(matches!(
        elsewhere.verify(&token).await,
        Err(VerifyError::Invalid(_))
    ));
    assert!(matches!(
        verifier.verify("nope").await,
        Err(VerifyError::Invalid(_))
    ));
    let s = crate::authcode::setup(&t, &[], false).await;
    let mut agent = crate::authcode::Agent::new(&t.base);
    let q = crate::authcode::authorize(
        &mut agent,
        &s,
        &crate::oidc::oidc_path(&s, "openid crm", &[]),
    )
    .await;
    let body = crate::oidc::redeem(&t, &s, &q["code"]).await;
    let id_token = body["id_token"].as_str().unwrap();
    assert!(matches!(
        verifier.verify(id_token).await,
        Err(VerifyError::Invalid(_))
    ));
    assert!(
        verifier
            .verify(body["access_token"].as_str().unwrap())
            .await
            .is_ok()
    );

    // Forged kids cost the issuer nothing more within the refetch interval.
    let forged = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[0] = b64.encode(br#"{"alg":"ES256","typ":"at+jwt","kid":"forged"}"#);
        parts.join(".")
    };
    let fetched = fetches.load(Ordering::SeqCst);
    for _ in 0..20 {
        assert_eq!(verifier.verify(&forged).await, Err(VerifyError::UnknownKey));
    }
    assert!(
        fetches.load(Ordering::SeqCst) <= fetched + 1,
        "rate limited"
    );

    // A rotated key: the first token naming it makes the verifier fetch the JWKS again.
    let verifier = Arc::new(
        Verifier::new(&t.base)
            .jwks_uri(&jwks)
            .min_refetch(Duration::ZERO),
    );
    assert!(verifier.verify(&token).await.is_ok());
    tessera_core::operations::rotate_keys(
        t.store.as_ref(),
        &crate::support::operator(),
        &t.master(),
        tessera_core::keys::KeyUse::Access,
        tessera_core::keys::Alg::EdDSA,
        tessera_core::unix_now(),
    )
    .await
    .unwrap();
    let mut rotated = token.clone();
    for _ in 0..50 {
        rotated = sc
            .client_credentials(Some("WRITE"))
            .await
            .unwrap()
            .access_token;
        if crate::support::claims(&rotated)["jti"] != claims(&token)["jti"]
            && jsonwebtoken::decode_header(&rotated).unwrap().alg == jsonwebtoken::Algorithm::EdDSA
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = fetches.load(Ordering::SeqCst);
    assert!(
        verifier.verify(&rotated).await.is_ok(),
        "the new key is fetched"
    );
    assert_eq!(fetches.load(Ordering::SeqCst), before + 1);

    // Offline, a revoked token still verifies until it expires; with introspection it does not.
    sc.revoke(&rotated).await.unwrap();
    assert!(verifier.verify(&rotated).await.is_ok());
    let strict = Verifier::new(&t.base).introspect_with(sc.clone());
    assert_eq!(strict.verify(&rotated).await, Err(VerifyError::Revoked));

    // The axum middleware and extractor in front of a service.
    use tessera_client::AccessClaims;
    use tessera_client::axum::{Guard, require_token};
    let service = axum::Router::new()
        .route(
            "/contacts",
            axum::routing::get(|c: AccessClaims| async move { c.0.client_id }),
        )
        .layer(axum::middleware::from_fn_with_state(
            Guard::new(Arc::clone(&verifier)).scopes(["WRITE"]),
            require_token,
        ))
        .route(
            "/crm",
            axum::routing::get(|c: AccessClaims| async move { c.0.sub }).layer(
                axum::middleware::from_fn_with_state(
                    Guard::new(Arc::clone(&verifier)).scopes(["crm"]),
                    require_token,
                ),
            ),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, service).await.unwrap() });
    let http = reqwest::Client::new();
    let get = |path: &str, bearer: Option<&str>| {
        let mut r = http.get(format!("{base}{path}"));
        if let Some(b) = bearer {
            r = r.bearer_auth(b);
        }
        r.send()
    };
    let fresh = sc
        .client_credentials(Some("WRITE"))
        .await
        .unwrap()
        .access_token;
    let r = get("/contacts", Some(&fresh)).await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), o.client_id);
    let r = get("/contacts", None).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let r = get("/contacts", Some(id_token)).await.unwrap();
    assert_eq!(r.status(), 401);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("invalid_token")
    );
    let r = get("/crm", Some(&fresh)).await.unwrap();
    assert_eq!(r.status(), 403);
    assert!(
        r.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .contains("insufficient_scope")
    );
}

/// An unreachable issuer is asked for its JWKS at most once per refetch interval, however many
/// tokens arrive meanwhile; each of them is refused as "unavailable", not as a bad token.
#[tokio::test]
async fn an_unreachable_issuer_is_not_asked_once_per_token() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tessera_client::{Verifier, VerifyError};
    let t = TestServer::start().await;
    let o = t.onboard(&["client_credentials"]).await;
    let token = tessera_client::StandardClient::new(&t.base, &o.client_id, &o.client_secret)
        .client_credentials(Some("WRITE"))
        .await
        .unwrap()
        .access_token;
    let asked = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&asked);
    let down = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                axum::http::StatusCode::SERVICE_UNAVAILABLE
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, down).await.unwrap() });
    let verifier = Verifier::new(&t.base).jwks_uri(jwks);
    for _ in 0..20 {
        assert!(matches!(
            verifier.verify(&token).await,
            Err(VerifyError::Unavailable(_))
        ));
    }
    assert_eq!(asked.load(Ordering::SeqCst), 1, "one attempt per interval");
}

/// The issuer's JWKS behind a proxy that counts fetches, answers with `cache_control`, and
/// hangs (never answers) while the returned flag is set.
async fn jwks_proxy(
    t: &TestServer,
    cache_control: &'static str,
) -> (
    String,
    Arc<std::sync::atomic::AtomicUsize>,
    Arc<std::sync::atomic::AtomicBool>,
) {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let (count, hang) = (
        Arc::new(AtomicUsize::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let upstream = t.url("/.well-known/jwks.json");
    let (counter, hanging) = (Arc::clone(&count), Arc::clone(&hang));
    let app = axum::Router::new().route(
        "/jwks",
        axum::routing::get(move || {
            let upstream = upstream.clone();
            let (counter, hanging) = (Arc::clone(&counter), Arc::clone(&hanging));
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                if hanging.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_secs(3600)).await;
                }
                let body = reqwest::get(&upstream).await.unwrap().text().await.unwrap();
                (
                    [
                        ("content-type", "application/json"),
                        ("cache-control", cache_control),
                    ],
                    body,
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}/jwks"), count, hang)
}

async fn app_token(t: &TestServer) -> String {
    let o = t.onboard(&["client_credentials"]).await;
    tessera_client::StandardClient::new(&t.base, &o.client_id, &o.client_secret)
        .client_credentials(Some("WRITE"))
        .await
        .unwrap()
        .access_token
}

/// Issue 18 row 7: after `keys revoke` of a published key the verifier kept accepting its
/// tokens for ever, because it fetched the JWKS again only for an unknown `kid`. Now the keys are
/// fetched again once they are older than the issuer's max-age (or the verifier's own bound),
/// and a key that left the JWKS is refused.
#[tokio::test]
async fn a_revoked_key_is_refused_once_the_keys_are_fetched_again() {
    use tessera_client::{Verifier, VerifyError};
    let t = TestServer::start().await;
    let token = app_token(&t).await;
    let verifier = Verifier::new(&t.base)
        .min_refetch(Duration::ZERO)
        .max_key_age(Duration::from_millis(300));
    assert!(verifier.verify(&token).await.is_ok());
    let kid = jsonwebtoken::decode_header(&token).unwrap().kid.unwrap();
    tessera_core::operations::revoke_key(
        t.store.as_ref(),
        &tessera_core::operations::Operator("test".into()),
        &t.master(),
        &kid,
        tessera_core::unix_now(),
    )
    .await
    .unwrap();
    let start = std::time::Instant::now();
    loop {
        match verifier.verify(&token).await {
            Err(VerifyError::UnknownKey) => break,
            Ok(_) => assert!(
                start.elapsed() < Duration::from_secs(3),
                "the revoked key is still accepted after 3 s"
            ),
            other => panic!("{other:?}"),
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The issuer's `Cache-Control: max-age` bounds how long keys are trusted (here 1 s, under the
/// verifier's default of 5 minutes); within it, known keys cost no fetch.
#[tokio::test]
async fn the_issuers_max_age_is_honoured() {
    use std::sync::atomic::Ordering;
    use tessera_client::Verifier;
    let t = TestServer::start().await;
    let token = app_token(&t).await;
    let (jwks, fetches, _) = jwks_proxy(&t, "public, max-age=1").await;
    let verifier = Verifier::new(&t.base)
        .jwks_uri(jwks)
        .min_refetch(Duration::ZERO);
    for _ in 0..20 {
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(fetches.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    for _ in 0..20 {
        verifier.verify(&token).await.unwrap();
    }
    assert_eq!(
        fetches.load(Ordering::SeqCst),
        2,
        "fetched again after max-age"
    );
}

/// A JWKS fetch that hangs holds nobody up: it ends at the fetch timeout, and while it is in
/// flight, tokens of known keys are verified at once with the keys at hand (the old verifier
/// held a mutex across a fetch that had no timeout).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_jwks_fetch_holds_nobody_up() {
    use std::sync::atomic::Ordering;
    use tessera_client::{Verifier, VerifyError};
    let t = TestServer::start().await;
    let token = app_token(&t).await;
    let (jwks, fetches, hang) = jwks_proxy(&t, "public, max-age=60").await;
    let verifier = Arc::new(
        Verifier::new(&t.base)
            .jwks_uri(jwks)
            .min_refetch(Duration::ZERO)
            .max_key_age(Duration::from_millis(200))
            .fetch_timeout(Duration::from_millis(1500)),
    );
    verifier.verify(&token).await.unwrap();
    hang.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(250)).await;
    // The keys are stale: this verification starts the fetch that hangs...
    let fetcher = {
        let (v, token) = (Arc::clone(&verifier), token.clone());
        tokio::spawn(async move {
            let start = std::time::Instant::now();
            let r = v.verify(&token).await;
            (r, start.elapsed())
        })
    };
    while fetches.load(Ordering::SeqCst) < 2 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // ...while others, of the same known key, go through at once.
    for _ in 0..10 {
        let start = std::time::Instant::now();
        verifier.verify(&token).await.unwrap();
        assert!(
            start.elapsed() < Duration::from_millis(500),
            "waited on the fetch"
        );
    }
    // A token of an unknown key waits for the fetch in flight, no longer than its timeout.
    let forged = {
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let mut parts: Vec<String> = token.split('.').map(str::to_string).collect();
        parts[0] = b64.encode(br#"{"alg":"ES256","typ":"at+jwt","kid":"unknown"}"#);
        parts.join(".")
    };
    let start = std::time::Instant::now();
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(VerifyError::Unavailable(_))
    ));
    assert!(start.elapsed() < Duration::from_secs(3));
    // The fetcher itself gives up at the timeout and keeps the keys it had.
    let (r, took) = fetcher.await.unwrap();
    assert!(r.is_ok(), "{r:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}
