//! The standard dialect beyond the seed: every error of the standard dialect (README, *Standard dialect*) provoked by a request,
//! introspection, revocation, token exchange on the wire, discovery, and the password lockout.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::support::{Resp, TestServer, claims, config};

#[track_caller]
fn expect(r: &Resp, status: u16, error: &str) {
    assert_eq!((r.status, r.oauth_error()), (status, error), "{}", r.body);
    assert!(
        r.body["error_description"]
            .as_str()
            .is_some_and(|d| d.len() > 10),
        "{}",
        r.body
    );
}

#[tokio::test]
async fn every_token_endpoint_error_of_spec_4() {
    let t = TestServer::start().await;
    let o = t.onboard(&["client_credentials", "password"]).await;
    let cc = [("grant_type", "client_credentials")];

    // invalid_client, 401 with WWW-Authenticate: Basic, for a wrong secret or unknown client.
    let wrong = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:tcs_wrong", o.client_id))
    );
    let unknown = format!("Basic {}", STANDARD.encode("tc_nobody:tcs_wrong"));
    for auth in [Some(wrong.as_str()), Some(unknown.as_str()), None] {
        let r = t.form("/oauth/token", auth, &cc).await;
        expect(&r, 401, "invalid_client");
        assert_eq!(r.headers["www-authenticate"], "Basic realm=\"tessera\"");
    }
    insta::assert_json_snapshot!(
        "invalid_client",
        t.form("/oauth/token", Some(&wrong), &cc).await.body
    );

    // invalid_grant, 401, for a wrong username or password.
    for (user, pw) in [
        (o.admin_email.as_str(), "wrong-password-1"),
        ("nobody@org.example", "x"),
    ] {
        let r = t
            .form(
                "/oauth/token",
                Some(&o.basic()),
                &[
                    ("grant_type", "password"),
                    ("username", user),
                    ("password", pw),
                ],
            )
            .await;
        expect(&r, 401, "invalid_grant");
    }

    // unsupported_grant_type, invalid_scope, unauthorized_client.
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[("grant_type", "client_credentails")],
        )
        .await;
    expect(&r, 400, "unsupported_grant_type");
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[("grant_type", "client_credentials"), ("scope", "READ")],
        )
        .await;
    expect(&r, 400, "invalid_scope");
    insta::assert_json_snapshot!("invalid_scope", r.body);
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[("grant_type", "refresh_token"), ("refresh_token", "trt_x")],
        )
        .await;
    expect(&r, 400, "unauthorized_client");

    // invalid_request: repeated or missing parameters, two auth methods, wrong media type.
    let r = t
        .form_raw(
            "/oauth/token",
            Some(&o.basic()),
            "grant_type=client_credentials&grant_type=password",
        )
        .await;
    expect(&r, 400, "invalid_request");
    let r = t
        .form("/oauth/token", Some(&o.basic()), &[("scope", "WRITE")])
        .await;
    expect(&r, 400, "invalid_request");
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[("grant_type", "password"), ("username", "x")],
        )
        .await;
    expect(&r, 400, "invalid_request");
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &o.client_id),
                ("client_secret", &o.client_secret),
            ],
        )
        .await;
    expect(&r, 400, "invalid_request");
    let r = t
        .post(
            "/oauth/token",
            Some(&o.basic()),
            r#"{"grant_type":"client_credentials"}"#,
        )
        .await;
    expect(&r, 400, "invalid_request");

    // client_secret_post works on its own.
    let r = t
        .form(
            "/oauth/token",
            None,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &o.client_id),
                ("client_secret", &o.client_secret),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    // Without a scope the client gets everything it may have, and is told so.
    assert_eq!(r.body["scope"], "WRITE crm");

    // 429 with Retry-After from the same limiter as the partner dialect.
    let mut c = config();
    c.token_rate_limit = 2;
    let t = TestServer::start_with(c).await;
    let o = t.onboard(&["client_credentials"]).await;
    let mut last = None;
    for _ in 0..6 {
        let r = t.form("/oauth/token", Some(&o.basic()), &cc).await;
        if r.status == 429 {
            last = Some(r);
            break;
        }
    }
    let r = last.expect("a 429");
    expect(&r, 429, "too_many_requests");
    assert!(r.headers.contains_key("retry-after"));
}

#[tokio::test]
async fn introspection_and_revocation() {
    let t = TestServer::start().await;
    let o = t
        .onboard(&["client_credentials", "refresh_token", "token_exchange"])
        .await;
    let other = t.onboard(&["client_credentials"]).await;
    let app = t.app_token(&o).await;

    let introspect = |token: String, auth: String| {
        let t = &t;
        async move {
            t.form(
                "/oauth/introspect",
                Some(&auth),
                &[("token", token.as_str())],
            )
            .await
        }
    };
    let r = introspect(app.clone(), o.basic()).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["active"], true);
    assert_eq!(r.body["client_id"], o.client_id.as_str());
    assert_eq!(r.body["token_use"], "app_token");
    assert_eq!(r.headers["cache-control"], "no-store");
    insta::assert_json_snapshot!("introspection_active", r.body, {
        ".exp" => "[ts]", ".iat" => "[ts]", ".jti" => "[jti]", ".sub" => "[client]",
        ".client_id" => "[client]", ".iss" => "[iss]", ".aud" => "[iss]",
        ".partner_id" => "[partner]", ".org_code" => "[org]"
    });

    // Another organisation's client learns nothing; garbage is inactive; unauthenticated fails.
    for (token, auth) in [
        (app.clone(), other.basic()),
        ("garbage".to_string(), o.basic()),
        ("trt_unknown".to_string(), o.basic()),
    ] {
        let r = introspect(token, auth).await;
        assert_eq!(r.body, serde_json::json!({"active": false}));
    }
    let r = t.form("/oauth/introspect", None, &[("token", &app)]).await;
    assert_eq!(r.status, 401);

    // Token exchange on the wire (no client library covers it). An app_token cannot name an
    // account to act for (only the partner's machine token can); it exchanges for itself.
    let acc = t
        .post(
            "/v2/accounts",
            Some(&o.partner.basic()),
            r#"{"name":"Shop"}"#,
        )
        .await
        .data("account_id");
    let exchange_app = |requested_subject: Option<&str>| {
        let mut pairs = vec![
            (
                "grant_type",
                "urn:ietf:params:oauth:grant-type:token-exchange".to_string(),
            ),
            ("subject_token", app.clone()),
            (
                "subject_token_type",
                "urn:ietf:params:oauth:token-type:access_token".to_string(),
            ),
            ("scope", "WRITE".to_string()),
        ];
        if let Some(acc) = requested_subject {
            pairs.push(("requested_subject", acc.to_string()));
        }
        let (t, auth) = (&t, o.basic());
        async move {
            let pairs: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (*k, v.as_str())).collect();
            t.form("/oauth/token", Some(&auth), &pairs).await
        }
    };
    expect(&exchange_app(Some(&acc)).await, 400, "invalid_grant");
    let r = exchange_app(None).await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.body["issued_token_type"],
        "urn:ietf:params:oauth:token-type:access_token"
    );
    let access = r.body["access_token"].as_str().unwrap().to_string();
    let c = claims(&access);
    assert_eq!(c["sub"], o.client_id.as_str());
    assert_eq!(c["act"]["sub"], o.client_id.as_str());
    // Bound to the app_token it came from: no refresh token, no longer life, its jti as sid.
    assert!(r.body.get("refresh_token").is_none(), "{}", r.body);
    let a = claims(&app);
    assert!(c["exp"].as_i64() <= a["exp"].as_i64());
    assert_eq!(c["sid"], a["jti"]);

    // The partner's machine token is what starts a refresh family.
    let machine = t
        .post(
            "/v2/oauth/token",
            Some(&o.partner.basic()),
            &crate::support::machine_token_body("WRITE crm"),
        )
        .await
        .data("access_token");
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
                ("scope", "WRITE"),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refresh = r.body["refresh_token"].as_str().unwrap().to_string();
    let family_access = r.body["access_token"].as_str().unwrap().to_string();
    let r = introspect(refresh.clone(), o.basic()).await;
    assert_eq!(
        (r.body["active"].as_bool(), r.body["token_type"].as_str()),
        // RFC 7662's token_type is an access token's type (RFC 6749 §7.1); a refresh token has
        // none.
        (Some(true), None)
    );

    // An actor token names the actor; the subject's own actor nests under it.
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", &access),
                ("subject_token_type", "urn:ietf:params:oauth:token-type:jwt"),
                ("actor_token", &app),
                (
                    "actor_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = claims(r.body["access_token"].as_str().unwrap());
    assert_eq!(c["sub"], o.client_id.as_str());
    assert_eq!(c["act"]["act"]["sub"], o.client_id.as_str());
    // A subject token of another organisation is refused.
    let foreign = t.app_token(&other).await;
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", &foreign),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
            ],
        )
        .await;
    expect(&r, 400, "invalid_grant");
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[
                (
                    "grant_type",
                    "urn:ietf:params:oauth:grant-type:token-exchange",
                ),
                ("subject_token", &app),
                (
                    "subject_token_type",
                    "urn:ietf:params:oauth:token-type:access_token",
                ),
                ("audience", "https://elsewhere.example"),
            ],
        )
        .await;
    expect(&r, 400, "invalid_target");

    // Refresh with a narrower scope, then revocation.
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("scope", "crm"),
            ],
        )
        .await;
    expect(&r, 400, "invalid_scope");
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let refresh2 = r.body["refresh_token"].as_str().unwrap().to_string();

    for token in ["trt_unknown", "garbage", &foreign] {
        let r = t
            .form("/oauth/revoke", Some(&o.basic()), &[("token", token)])
            .await;
        assert_eq!(r.status, 200, "{token}: {}", r.body);
    }
    // The foreign token was not revoked by the wrong client.
    assert_eq!(
        introspect(foreign, other.basic()).await.body["active"],
        true
    );
    let r = t
        .form(
            "/oauth/revoke",
            Some(&o.basic()),
            &[("token", &refresh2), ("token_type_hint", "refresh_token")],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        introspect(refresh2.clone(), o.basic()).await.body["active"],
        false
    );
    assert_eq!(
        introspect(family_access, o.basic()).await.body["active"],
        false
    );
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh2),
            ],
        )
        .await;
    expect(&r, 400, "invalid_grant");
    assert_eq!(
        introspect(access.clone(), o.basic()).await.body["active"],
        true
    );
    let r = t
        .form("/oauth/revoke", Some(&o.basic()), &[("token", &app)])
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(introspect(app, o.basic()).await.body["active"], false);
    // What was exchanged from the app_token goes with it.
    assert_eq!(introspect(access, o.basic()).await.body["active"], false);
}

#[tokio::test]
async fn discovery_lists_what_is_implemented() {
    let t = TestServer::start().await;
    let a = t.get("/.well-known/oauth-authorization-server", None).await;
    let b = t.get("/.well-known/openid-configuration", None).await;
    assert_eq!(a.status, 200);
    assert_eq!(a.body, b.body);
    assert_eq!(a.body["issuer"], t.base.as_str());
    insta::assert_json_snapshot!("discovery", a.body, {
        ".issuer" => "[issuer]",
        ".authorization_endpoint" => "[issuer]/oauth/authorize",
        ".token_endpoint" => "[issuer]/oauth/token",
        ".jwks_uri" => "[issuer]/.well-known/jwks.json",
        ".introspection_endpoint" => "[issuer]/oauth/introspect",
        ".userinfo_endpoint" => "[issuer]/oauth/userinfo",
        ".revocation_endpoint" => "[issuer]/oauth/revoke",
        ".pushed_authorization_request_endpoint" => "[issuer]/oauth/par",
    });
    // Every endpoint it names answers.
    for key in ["jwks_uri"] {
        let url = a.body[key].as_str().unwrap();
        assert_eq!(t.http.get(url).send().await.unwrap().status(), 200);
    }
}

#[tokio::test]
async fn repeated_password_failures_lock_the_username_for_a_bounded_time() {
    // A four-second decay instead of three minutes, so that the lock's end is seen (and five
    // Argon2 checks on a loaded machine still fit in one decay period).
    let mut config = crate::support::config();
    config.lockout.decay_secs = 4;
    let t = TestServer::start_with(config).await;
    let o = t.onboard(&["password"]).await;
    let attempt = |pw: &'static str| {
        let (t, basic, user) = (&t, o.basic(), o.admin_email.clone());
        async move {
            t.form(
                "/oauth/token",
                Some(&basic),
                &[
                    ("grant_type", "password"),
                    ("username", &user),
                    ("password", pw),
                ],
            )
            .await
        }
    };
    for _ in 0..5 {
        let r = attempt("wrong-password-1").await;
        expect(&r, 401, "invalid_grant");
        assert!(!r.headers.contains_key("retry-after"));
    }
    // The allowance is spent: the sixth check waits (at most one decay period), whatever the
    // password.
    let r = attempt("wrong-password-1").await;
    expect(&r, 401, "invalid_grant");
    assert!(r.headers.contains_key("retry-after"));
    let pw: &'static str = Box::leak(o.admin_password.clone().into_boxed_str());
    let r = attempt(pw).await;
    expect(&r, 401, "invalid_grant");
    let wait: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!(
        (1..=4).contains(&wait),
        "even the right password waits out the lock"
    );
    tokio::time::sleep(Duration::from_millis(wait * 1000 + 200)).await;
    assert_eq!(attempt(pw).await.status, 200, "the lock ends by itself");
    // Success reset the count: five more failures lock nothing.
    for _ in 0..5 {
        assert!(
            !attempt("wrong-password-1")
                .await
                .headers
                .contains_key("retry-after")
        );
    }
}

#[tokio::test]
async fn a_locked_partner_email_still_serves_the_integration_that_knows_the_password() {
    let t = TestServer::start().await;
    let p = t.partner().await;
    let body = crate::support::machine_token_body("crm");
    assert_eq!(
        t.post("/v2/oauth/token", Some(&p.basic()), &body)
            .await
            .status,
        200
    );
    let wrong = format!(
        "Basic {}",
        STANDARD.encode(format!("{}:not-the-password", p.email))
    );
    for _ in 0..7 {
        t.post("/v2/oauth/token", Some(&wrong), &body).await;
    }
    let r = t.post("/v2/oauth/token", Some(&wrong), &body).await;
    assert_eq!(r.code(), "OAUTH_PARTNER_NOT_FOUND");
    assert!(r.headers.contains_key("retry-after"));
    // The verified pair in the cache bypasses the lock.
    assert_eq!(
        t.post("/v2/oauth/token", Some(&p.basic()), &body)
            .await
            .status,
        200
    );
}

/// Attack 13: RFC 6749 §5.2 allows an `error_description` only %x20-21 / %x23-5B / %x5D-7E;
/// a description that quotes the request's scope must not carry its `"` or `\` (or anything
/// else outside the set) back.
#[tokio::test]
async fn token_error_descriptions_keep_to_rfc_6749_characters() {
    let t = TestServer::start().await;
    let o = t.onboard(&["client_credentials"]).await;
    for scope in ["WRITE a\"b", "WRITE c\\d", "WRITE <e>", "WRITE é"] {
        let r = t
            .form(
                "/oauth/token",
                Some(&o.basic()),
                &[("grant_type", "client_credentials"), ("scope", scope)],
            )
            .await;
        assert_eq!(r.status, 400, "{scope}: {}", r.body);
        let d = r.body["error_description"].as_str().unwrap();
        assert!(
            d.bytes().all(|b| b == 0x20
                || b == 0x21
                || (0x23..=0x5B).contains(&b)
                || (0x5D..=0x7E).contains(&b)),
            "{scope}: {d:?}"
        );
    }
}
