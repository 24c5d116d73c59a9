//! OpenID Connect (issue 12, item 3): a relying-party library nobody here wrote (the
//! `openidconnect` crate) discovers Tessera, signs a user in through the real pages, validates
//! the ID token (signature from the JWKS, `iss`, `aud`, `exp`, `nonce`, `at_hash`) and reads
//! UserInfo; then `prompt`, `max_age` and `nonce` at their edges, driven by hand.

use base64::Engine as _;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreProviderMetadata, CoreUserInfoClaims,
};
use openidconnect::{
    AccessTokenHash, AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce,
    OAuth2TokenResponse, PkceCodeChallenge, RedirectUrl, Scope, TokenResponse,
};

use crate::authcode::{Agent, CHALLENGE, REDIRECT, Setup, VERIFIER, authorize, setup};
use crate::support::{TestServer, claims};

#[tokio::test]
async fn the_openidconnect_crate_signs_a_user_in() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let http = crate::interop::transport(reqwest::Client::new());

    // Discovery 1.0: the crate refuses a document without its required fields or whose issuer
    // differs; it does not check that RS256 is offered, so this test does.
    let raw = t.get("/.well-known/openid-configuration", None).await.body;
    for field in [
        "issuer",
        "authorization_endpoint",
        "token_endpoint",
        "userinfo_endpoint",
        "jwks_uri",
        "response_types_supported",
        "subject_types_supported",
        "id_token_signing_alg_values_supported",
    ] {
        assert!(raw.get(field).is_some(), "discovery lacks {field}");
    }
    assert!(
        raw["id_token_signing_alg_values_supported"]
            .as_array()
            .unwrap()
            .contains(&"RS256".into()),
        "Discovery §3: RS256 MUST be included"
    );
    assert!(
        raw["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&"openid".into())
    );
    let metadata =
        CoreProviderMetadata::discover_async(IssuerUrl::new(t.base.clone()).unwrap(), &http)
            .await
            .expect("discovery validates");
    let client = CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(s.client_id.clone()),
        Some(ClientSecret::new(s.client_secret.clone())),
    )
    .set_redirect_uri(RedirectUrl::new(REDIRECT.into()).unwrap());

    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(
            CoreAuthenticationFlow::AuthorizationCode,
            CsrfToken::new_random,
            Nonce::new_random,
        )
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("crm".into()))
        .set_pkce_challenge(challenge)
        .url();
    let mut agent = Agent::new(&t.base);
    let q = authorize(&mut agent, &s, url.as_str()).await;
    assert_eq!(&q["state"], state.secret());

    let tokens = client
        .exchange_code(AuthorizationCode::new(q["code"].clone()))
        .unwrap()
        .set_pkce_verifier(verifier)
        .request_async(&http)
        .await
        .expect("the code redeems");
    let id_token = tokens.id_token().expect("an ID token for scope openid");
    let id_verifier = client.id_token_verifier();
    let id_claims = id_token
        .claims(&id_verifier, &nonce)
        .expect("the ID token validates");
    assert_eq!(id_claims.subject().as_str(), s.user_id);
    assert!(id_claims.auth_time().is_some());
    let expected = AccessTokenHash::from_token(
        tokens.access_token(),
        id_token.signing_alg().unwrap(),
        id_token.signing_key(&id_verifier).unwrap(),
    )
    .unwrap();
    assert_eq!(id_claims.access_token_hash(), Some(&expected));
    // A different nonce is refused: the nonce is bound to the code.
    assert!(
        id_token
            .claims(&id_verifier, &Nonce::new("another".into()))
            .is_err()
    );
    let raw_id = claims(&id_token.to_string());
    assert_eq!(raw_id["aud"], s.client_id.as_str());
    assert!(raw_id["sid"].as_str().is_some_and(|sid| !sid.is_empty()));

    let info: CoreUserInfoClaims = client
        .user_info(tokens.access_token().clone(), None)
        .unwrap()
        .request_async(&http)
        .await
        .expect("userinfo");
    assert_eq!(info.subject().as_str(), s.user_id);
    let email = s.user_email.to_lowercase();
    assert_eq!(info.email().map(|e| e.as_str()), Some(email.as_str()));
    assert_eq!(info.email_verified(), Some(false));
}

pub(crate) fn basic(s: &Setup) -> String {
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", s.client_id, s.client_secret))
    )
}

pub(crate) fn oidc_path(s: &Setup, scope: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", &s.client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", scope)
        .append_pair("state", "st-1")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    format!("/oauth/authorize?{}", q.finish())
}

/// Redeem a code in the standard dialect; the token response.
pub(crate) async fn redeem(t: &TestServer, s: &Setup, code: &str) -> serde_json::Value {
    let r = t
        .form(
            "/oauth/token",
            Some(&basic(s)),
            &[
                ("grant_type", "authorization_code"),
                ("code", code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body
}

#[tokio::test]
async fn prompt_max_age_and_nonce_at_their_edges() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);

    // prompt=none before any sign-in: straight back with login_required, state and iss.
    let r = agent
        .get(&oidc_path(&s, "openid crm", &[("prompt", "none")]))
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let q = r.query();
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str(), q["iss"].as_str()),
        ("login_required", "st-1", t.base.as_str())
    );
    // Malformed OpenID parameters come back as invalid_request.
    for extra in [
        [("prompt", "none login")],
        [("prompt", "select_account")],
        [("max_age", "-5")],
        [("nonce", "has space")],
    ] {
        let r = agent.get(&oidc_path(&s, "openid crm", &extra)).await;
        assert_eq!(r.query()["error"], "invalid_request", "{extra:?}");
    }

    // A sign-in with a nonce: the ID token carries it, in the partner dialect too.
    let before = tessera_core::unix_now();
    let q = authorize(
        &mut agent,
        &s,
        &oidc_path(&s, "openid crm", &[("nonce", "n-first")]),
    )
    .await;
    let body = redeem(&t, &s, &q["code"]).await;
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(id["nonce"], "n-first");
    assert_eq!(id["aud"], s.client_id.as_str());
    let auth_time = id["auth_time"].as_i64().unwrap();
    assert!(auth_time >= before);
    let first_sid = id["sid"].as_str().unwrap().to_string();
    let access = body["access_token"].as_str().unwrap().to_string();
    let id_token = body["id_token"].as_str().unwrap().to_string();

    // The ID token is no access token: userinfo and `me` refuse it.
    for path in ["/oauth/userinfo", "/api/users/me"] {
        let r = t.get(path, Some(&format!("Bearer {id_token}"))).await;
        assert_eq!(r.status, 401, "{path}: {}", r.body);
    }
    let r = t
        .get("/oauth/userinfo", Some(&format!("Bearer {access}")))
        .await;
    assert_eq!(
        (r.status, r.body["sub"].as_str()),
        (200, Some(s.user_id.as_str()))
    );
    assert!(r.body.get("email").is_none(), "no email scope, no email");

    // prompt=none with a session and consent: a code, no page; its ID token has no nonce.
    let r = agent
        .get(&oidc_path(&s, "openid crm", &[("prompt", "none")]))
        .await;
    assert!(r.location.as_deref().unwrap().starts_with(REDIRECT));
    let body = redeem(&t, &s, &r.query()["code"]).await;
    let id = claims(body["id_token"].as_str().unwrap());
    assert!(id.get("nonce").is_none());
    assert_eq!(
        id["auth_time"].as_i64(),
        Some(auth_time),
        "the same sign-in"
    );
    // prompt=none for scopes not consented to: consent_required.
    let r = agent
        .get(&oidc_path(
            &s,
            "openid crm transport",
            &[("prompt", "none")],
        ))
        .await;
    assert_eq!(r.query()["error"], "consent_required");

    // prompt=consent: the consent page though consent was given.
    let r = agent
        .get(&oidc_path(&s, "openid crm", &[("prompt", "consent")]))
        .await;
    assert!(r.location.as_deref().unwrap().starts_with("/oauth/consent"));

    // prompt=login with a live session, even one signed in this very second: the login page;
    // and the consent page of that request, opened directly with the old session, sends the
    // browser to sign in too (no bypass; found by an attack when it was a time check).
    let r = agent
        .get(&oidc_path(&s, "openid crm", &[("prompt", "login consent")]))
        .await;
    let login = r.location.clone().unwrap();
    assert!(login.starts_with("/oauth/login"), "{login}");
    let request = login.split("request=").nth(1).unwrap().to_string();
    let r = agent
        .get(&format!("/oauth/consent?request={request}"))
        .await;
    assert!(
        r.location.as_deref().unwrap().starts_with("/oauth/login"),
        "an old sign-in cannot consent to a prompt=login request"
    );
    let q = authorize(
        &mut agent,
        &s,
        &oidc_path(&s, "openid crm", &[("prompt", "login")]),
    )
    .await;
    let id = claims(
        redeem(&t, &s, &q["code"]).await["id_token"]
            .as_str()
            .unwrap(),
    );
    assert!(id["auth_time"].as_i64().unwrap() >= auth_time);
    assert_ne!(
        id["sid"].as_str(),
        Some(first_sid.as_str()),
        "signed in again"
    );

    // max_age: 0 asks for a fresh sign-in (even right after one); an hour accepts the session.
    let r = agent
        .get(&oidc_path(&s, "openid crm", &[("max_age", "0")]))
        .await;
    assert!(r.location.as_deref().unwrap().starts_with("/oauth/login"));
    let r = agent
        .get(&oidc_path(&s, "openid crm", &[("max_age", "3600")]))
        .await;
    assert!(r.location.as_deref().unwrap().starts_with(REDIRECT));

    // Narrowing a refresh to profile or email without openid is refused (found by an attack:
    // it turned a claim scope into an API scope of that name); with openid it is fine.
    let q = authorize(
        &mut agent,
        &s,
        &oidc_path(&s, "openid profile crm", &[("prompt", "consent")]),
    )
    .await;
    let pair = redeem(&t, &s, &q["code"]).await;
    let refresh = |rt: String, scope: &'static str| {
        let (t, auth) = (&t, basic(&s));
        async move {
            t.form(
                "/oauth/token",
                Some(&auth),
                &[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", &rt),
                    ("scope", scope),
                ],
            )
            .await
        }
    };
    let rt = pair["refresh_token"].as_str().unwrap().to_string();
    let r = refresh(rt.clone(), "profile").await;
    assert_eq!(
        (r.status, r.oauth_error()),
        (400, "invalid_scope"),
        "{}",
        r.body
    );
    let r = refresh(rt, "openid profile").await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A token without openid reads no UserInfo; after the user withdraws consent, none does.
    let q = authorize(&mut agent, &s, &oidc_path(&s, "crm", &[])).await;
    let plain = redeem(&t, &s, &q["code"]).await;
    assert!(plain.get("id_token").is_none());
    let r = t
        .get(
            "/oauth/userinfo",
            Some(&format!(
                "Bearer {}",
                plain["access_token"].as_str().unwrap()
            )),
        )
        .await;
    assert_eq!(
        (r.status, r.body["error"].as_str()),
        (403, Some("insufficient_scope"))
    );
    let grants = agent.get("/oauth/grants").await;
    let r = agent
        .post(
            "/oauth/grants/revoke",
            &[
                ("csrf", &grants.hidden("csrf")),
                ("client_id", &s.client_id),
            ],
        )
        .await;
    assert_eq!(r.status, 303);
    let r = t
        .get("/oauth/userinfo", Some(&format!("Bearer {access}")))
        .await;
    assert_eq!(r.status, 401, "{}", r.body);
}

#[tokio::test]
async fn the_partner_dialect_returns_the_id_token_too() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);
    let path = crate::authcode::authorize_path(
        "partner",
        &s.client_id,
        &[("scope", "openid profile crm"), ("nonce", "n-partner")],
    );
    // authorize_path sets scope=crm first; a repeated parameter is refused, so build it here.
    assert!(path.contains("scope=crm"));
    let path = path.replace("scope=crm&", "");
    let q = authorize(&mut agent, &s, &path).await;
    let body = serde_json::json!({"grant_type": "authorization_code", "authorization_code_data": {
        "client_id": s.client_id, "code": q["code"], "redirect_uri": REDIRECT,
        "code_verifier": VERIFIER}})
    .to_string();
    let r = t
        .post("/v2/oauth/token", Some(&s.partner.basic()), &body)
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let id = claims(&r.data("id_token"));
    assert_eq!(
        (id["nonce"].as_str(), id["aud"].as_str()),
        (Some("n-partner"), Some(s.client_id.as_str()))
    );
    assert_eq!(
        claims(&r.data("access_token"))["scope"],
        "crm openid profile"
    );
}

/// Found by the last attack: `id_token_hint`, request objects and response modes were
/// ignored. A hint naming another user makes the browser's session count for nothing; what
/// Tessera does not support is refused, not skipped.
#[tokio::test]
async fn id_token_hint_and_unsupported_parameters() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let mut ann = Agent::new(&t.base);
    let q = authorize(&mut ann, &s, &oidc_path(&s, "openid crm", &[])).await;
    let anns = redeem(&t, &s, &q["code"]).await;
    let ann_id_token = anns["id_token"].as_str().unwrap().to_string();

    // Bob, another user of the partner, signs in in his own browser.
    let bob_email = another_member(&t, &s).await;
    let bob = Setup {
        user_email: bob_email,
        ..crate::authcode::setup_clone(&s)
    };
    let mut bobs_browser = Agent::new(&t.base);
    authorize(&mut bobs_browser, &bob, &oidc_path(&s, "openid crm", &[])).await;

    // Ann's hint in Bob's browser, prompt=none: not Bob's code, login_required.
    let r = bobs_browser
        .get(&oidc_path(
            &s,
            "openid crm",
            &[("prompt", "none"), ("id_token_hint", &ann_id_token)],
        ))
        .await;
    assert_eq!(r.query()["error"], "login_required", "{:?}", r.location);
    // Without prompt=none: the login page, not Bob's session.
    let r = bobs_browser
        .get(&oidc_path(
            &s,
            "openid crm",
            &[("id_token_hint", &ann_id_token)],
        ))
        .await;
    assert!(r.location.as_deref().unwrap().starts_with("/oauth/login"));
    // Ann's own hint in her browser: a code, silently.
    let r = ann
        .get(&oidc_path(
            &s,
            "openid crm",
            &[("prompt", "none"), ("id_token_hint", &ann_id_token)],
        ))
        .await;
    assert!(r.query().contains_key("code"), "{:?}", r.location);
    // A hint that is no ID token of ours for this client: invalid_request. An access token
    // is not one either.
    let access = anns["access_token"].as_str().unwrap();
    for hint in ["garbage", access] {
        let r = ann
            .get(&oidc_path(
                &s,
                "openid crm",
                &[("prompt", "none"), ("id_token_hint", hint)],
            ))
            .await;
        assert_eq!(r.query()["error"], "invalid_request", "{hint}");
    }

    for (extra, error) in [
        (
            ("request", "eyJhbGciOiJub25lIn0.e30."),
            "request_not_supported",
        ),
        (
            ("request_uri", "https://evil.example/r"),
            "request_uri_not_supported",
        ),
        (("response_mode", "fragment"), "invalid_request"),
    ] {
        let r = ann.get(&oidc_path(&s, "openid crm", &[extra])).await;
        assert_eq!(r.query()["error"], error, "{extra:?}");
    }
    let r = ann
        .get(&oidc_path(&s, "openid crm", &[("response_mode", "query")]))
        .await;
    assert!(r.query().contains_key("code"));

    // An OpenID Connect access token exchanged without a scope: its API scopes, not openid's.
    let (id, secret) = crate::authcode::another_client(
        &t,
        &s,
        &["authorization_code", "refresh_token", "token_exchange"],
        false,
        false,
    )
    .await;
    let exchanger = Setup {
        client_id: id,
        client_secret: secret,
        ..crate::authcode::setup_clone(&s)
    };
    let q = authorize(
        &mut ann,
        &exchanger,
        &oidc_path(&exchanger, "openid crm", &[]),
    )
    .await;
    let pair = redeem(&t, &exchanger, &q["code"]).await;
    let access = pair["access_token"].as_str().unwrap();
    let r = t
        .form(
            "/oauth/token",
            Some(&basic(&exchanger)),
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", access),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        claims(r.body["access_token"].as_str().unwrap())["scope"],
        "crm"
    );
}

/// Bob: another member of `s`'s account, whose password is `a-long-customer-secret`; his email.
async fn another_member(t: &TestServer, s: &Setup) -> String {
    let email = format!("bob-{}@customer.example", crate::support::uuid_suffix());
    crate::support::create_user(
        t.store.as_ref(),
        &s.partner.id,
        &email,
        "a-long-customer-secret",
        tessera_core::model::Role::Member,
        Some(&s.account_id),
    )
    .await;
    email
}

/// Issue 18 row 10: the `id_token_hint` was checked once, at `/authorize`. Bob signing in on
/// the login page of a request that hints Ann, or Bob's session arriving at the consent page of
/// Ann's request, got a code and an ID token for Bob. The request now carries the hinted user
/// and every page checks it.
#[tokio::test]
async fn the_hinted_user_is_checked_on_every_page_of_the_flow() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let mut ann = Agent::new(&t.base);
    let q = authorize(&mut ann, &s, &oidc_path(&s, "openid crm", &[])).await;
    let ann_id_token = redeem(&t, &s, &q["code"]).await["id_token"]
        .as_str()
        .unwrap()
        .to_string();
    let bob_email = another_member(&t, &s).await;
    let hinted = oidc_path(&s, "openid crm", &[("id_token_hint", &ann_id_token)]);

    // Bob, on the login page of a request that hints Ann: login_required, no code.
    let mut bobs = Agent::new(&t.base);
    let r = bobs.get(&hinted).await;
    let login = r.location.clone().unwrap();
    assert!(login.starts_with("/oauth/login"), "{login}");
    let page = bobs.get(&login).await;
    let r = bobs
        .post(
            "/oauth/login",
            &[
                ("request", &page.hidden("request")),
                ("csrf", &page.hidden("csrf")),
                ("username", &bob_email),
                ("password", "a-long-customer-secret"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let q = r.query();
    assert_eq!(
        q.get("error").map(String::as_str),
        Some("login_required"),
        "{q:?}"
    );
    assert!(!q.contains_key("code"));

    // Ann's hinted request reaches its consent page; Bob's session opens it (he signed in in
    // that browser meanwhile): the login page, not Bob's consent.
    let ask = oidc_path(
        &s,
        "openid crm",
        &[("id_token_hint", &ann_id_token), ("prompt", "consent")],
    );
    let r = ann.get(&ask).await;
    let consent = r.location.clone().unwrap();
    assert!(consent.starts_with("/oauth/consent"), "{consent}");
    let mut taken = Agent::new(&t.base);
    taken.cookies = ann.cookies.clone();
    taken.cookies.insert(
        "tessera_session".into(),
        bobs.cookies["tessera_session"].clone(),
    );
    let r = taken.get(&consent).await;
    assert_eq!(r.status, 303, "Bob got Ann's consent page: {}", r.body);
    assert!(r.location.as_deref().unwrap().starts_with("/oauth/login"));
    // Ann herself still consents.
    let page = ann.get(&consent).await;
    let r = ann
        .post(
            "/oauth/consent",
            &[
                ("request", &page.hidden("request")),
                ("csrf", &page.hidden("csrf")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert!(r.query().contains_key("code"), "{:?}", r.location);
}

/// Least privilege (issue 21): `openid profile email` alone signs the user in and grants no API
/// scope (it used to grant all of the client's); an API scope must be asked for. Without
/// `openid`, no scope still means the client's own.
#[tokio::test]
async fn signing_in_alone_grants_no_api_scope() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);
    // Signed in (and consented to crm) through an ordinary flow first.
    authorize(&mut agent, &s, &oidc_path(&s, "crm", &[])).await;
    // A client that may also exchange its users' tokens.
    let (client_id, client_secret) = crate::authcode::another_client(
        &t,
        &s,
        &["authorization_code", "token_exchange"],
        false,
        false,
    )
    .await;
    let s = Setup {
        client_id,
        client_secret,
        ..crate::authcode::setup_clone(&s)
    };

    let r = agent.get(&oidc_path(&s, "openid profile email", &[])).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let next = r.location.unwrap();
    assert!(next.starts_with("/oauth/consent"), "{next}");
    let page = agent.get(&next).await;
    let r = agent
        .post(
            "/oauth/consent",
            &[
                ("request", &page.hidden("request")),
                ("csrf", &page.hidden("csrf")),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let pair = redeem(&t, &s, &r.query()["code"]).await;
    let access = pair["access_token"].as_str().unwrap();
    assert_eq!(claims(access)["scope"], "email openid profile");
    assert!(pair["id_token"].is_string());
    let info = t
        .get("/oauth/userinfo", Some(&format!("Bearer {access}")))
        .await;
    assert_eq!(info.status, 200, "{}", info.body);
    // Nothing to exchange: the token is a sign-in's.
    let r = t
        .form(
            "/oauth/token",
            Some(&basic(&s)),
            &[
                ("grant_type", tessera_proto::grant_type::TOKEN_EXCHANGE),
                ("subject_token", access),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.oauth_error()),
        (400, "invalid_grant"),
        "{}",
        r.body
    );

    // An API scope asked for is granted with it; no scope without openid is the client's own.
    let q = authorize(&mut agent, &s, &oidc_path(&s, "openid crm", &[])).await;
    let pair = redeem(&t, &s, &q["code"]).await;
    assert_eq!(
        claims(pair["access_token"].as_str().unwrap())["scope"],
        "crm openid"
    );
    let q = authorize(&mut agent, &s, &oidc_path(&s, "", &[])).await;
    let pair = redeem(&t, &s, &q["code"]).await;
    assert_eq!(
        claims(pair["access_token"].as_str().unwrap())["scope"],
        "crm transport"
    );
}
