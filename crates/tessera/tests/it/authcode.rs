//! The authorization-code flow over plain HTTP (cookies and redirects handled by hand, so every
//! hop is visible): `/authorize` errors in both dialects, login, consent, codes redeemed in both
//! dialects, PKCE S256 and plain, code reuse, grant revocation.

use std::collections::HashMap;

use base64::Engine as _;
use serde_json::json;
use tessera_core::unix_now;

use crate::support::{
    Resp, TestPartner, TestServer, claims, client_input, create_client, create_user,
};

pub const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
pub const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
pub const REDIRECT: &str = "https://app.example/callback";

/// A partner, an authorization-code client of it, and an account member who can sign in.
pub struct Setup {
    pub partner: TestPartner,
    pub client_id: String,
    pub client_secret: String,
    pub user_email: String,
    pub user_password: String,
    pub user_id: String,
    pub account_id: String,
}

/// A copy of `s`, to change a field or two of.
pub fn setup_clone(s: &Setup) -> Setup {
    Setup {
        partner: s.partner.clone(),
        client_id: s.client_id.clone(),
        client_secret: s.client_secret.clone(),
        user_email: s.user_email.clone(),
        user_password: s.user_password.clone(),
        user_id: s.user_id.clone(),
        account_id: s.account_id.clone(),
    }
}

pub async fn setup(t: &TestServer, frame_origins: &[String], dev: bool) -> Setup {
    let partner = t.partner().await;
    let grants = ["authorization_code", "refresh_token"];
    let input = tessera_core::operations::CreateClient {
        redirect_uris: vec![REDIRECT.into()],
        frame_origins: frame_origins.to_vec(),
        dev,
        pkce_plain: true,
        allow_registration: true,
        ..client_input(&partner.id, "Acme CRM", &grants, "crm transport")
    };
    let (client, secret) = create_client(t.store.as_ref(), input).await;
    let account_id = t
        .post(
            "/v2/accounts",
            Some(&partner.basic()),
            r#"{"name":"Customer Co"}"#,
        )
        .await
        .data("account_id");
    let user_email = format!("ann-{}@customer.example", crate::support::uuid_suffix());
    let user_password = "a-long-customer-secret".to_string();
    let member = tessera_core::model::Role::Member;
    let user = create_user(
        t.store.as_ref(),
        &partner.id,
        &user_email,
        &user_password,
        member,
        Some(&account_id),
    )
    .await;
    Setup {
        partner,
        client_id: client.id,
        client_secret: secret,
        user_email,
        user_password,
        user_id: user.id,
        account_id,
    }
}

/// Another client of the setup's partner, named like the first (the pages show the name), with
/// the given grants and policy flags; its id and secret.
pub async fn another_client(
    t: &TestServer,
    s: &Setup,
    grants: &[&str],
    pkce_plain: bool,
    allow_registration: bool,
) -> (String, String) {
    let input = tessera_core::operations::CreateClient {
        redirect_uris: vec![REDIRECT.into()],
        pkce_plain,
        allow_registration,
        ..client_input(&s.partner.id, "Acme CRM", grants, "crm transport")
    };
    let (c, secret) = create_client(t.store.as_ref(), input).await;
    (c.id, secret)
}

/// A cookie-keeping, non-redirecting HTTP client: a browser without the rendering.
pub struct Agent {
    http: reqwest::Client,
    base: String,
    pub cookies: HashMap<String, String>,
}

pub struct Page {
    pub status: u16,
    pub location: Option<String>,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The value of a hidden input in the page.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .body
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} in {}", self.body))
            + marker.len();
        self.body[start..].split('"').next().unwrap().to_string()
    }

    pub fn query(&self) -> HashMap<String, String> {
        let loc = self.location.as_deref().expect("a redirect");
        let q = loc.split_once('?').map_or("", |(_, q)| q);
        form_urlencoded::parse(q.as_bytes()).into_owned().collect()
    }
}

impl Agent {
    pub fn new(base: &str) -> Agent {
        Agent::from(base, std::net::Ipv4Addr::LOCALHOST)
    }

    /// A browser at another address of 127/8: another requester to the server's throttles.
    pub fn from(base: &str, address: std::net::Ipv4Addr) -> Agent {
        Agent {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .local_address(std::net::IpAddr::V4(address))
                .build()
                .unwrap(),
            base: base.to_string(),
            cookies: HashMap::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Page {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("Cookie", cookie.join("; "))
        };
        let r = req.send().await.unwrap();
        for c in r.headers().get_all("set-cookie") {
            let c = c.to_str().unwrap();
            let (kv, attrs) = c.split_once(';').unwrap_or((c, ""));
            let (k, v) = kv.split_once('=').unwrap();
            if attrs.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_string(), v.to_string());
            }
        }
        Page {
            status: r.status().as_u16(),
            location: r
                .headers()
                .get("location")
                .map(|l| l.to_str().unwrap().to_string()),
            headers: r.headers().clone(),
            body: r.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let req = self.http.get(self.url(path));
        self.send(req).await
    }

    pub async fn post(&mut self, path: &str, pairs: &[(&str, &str)]) -> Page {
        let body: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs(pairs)
            .finish();
        let req = self
            .http
            .post(self.url(path))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(body);
        self.send(req).await
    }

    pub fn has_session(&self) -> bool {
        self.cookies.contains_key("tessera_session")
    }
}

pub fn authorize_path(dialect: &str, client_id: &str, extra: &[(&str, &str)]) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", REDIRECT)
        .append_pair("scope", "crm")
        .append_pair("state", "xyz-state")
        .append_pair("code_challenge", CHALLENGE)
        .append_pair("code_challenge_method", "S256");
    for (k, v) in extra {
        q.append_pair(k, v);
    }
    let prefix = if dialect == "partner" {
        "/v2/oauth/authorize"
    } else {
        "/oauth/authorize"
    };
    format!("{prefix}?{}", q.finish())
}

/// Log in and approve; returns the redirect's query (code, state, iss).
pub async fn authorize(agent: &mut Agent, s: &Setup, path: &str) -> HashMap<String, String> {
    let r = agent.get(path).await;
    assert_eq!(r.status, 303, "{}", r.body);
    let mut next = r.location.clone().unwrap();
    if next.starts_with("/oauth/login") {
        let page = agent.get(&next).await;
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("Acme CRM"),
            "the login page names the application"
        );
        let (request, csrf) = (page.hidden("request"), page.hidden("csrf"));
        let form = [
            ("request", request.as_str()),
            ("csrf", csrf.as_str()),
            ("username", s.user_email.as_str()),
            ("password", s.user_password.as_str()),
        ];
        let mut r = agent.post("/oauth/login", &form).await;
        // A 503 says "try again" (the database or the password queue was busy: the suite runs
        // many servers on two cores, and the histories test three nodes at once); a person
        // would, so the test does, a few times.
        for _ in 0..5 {
            if r.status != 503 {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            r = agent.post("/oauth/login", &form).await;
        }
        assert_eq!(r.status, 303, "{}", r.body);
        next = r.location.clone().unwrap();
    }
    if next.starts_with("/oauth/consent") {
        let page = agent.get(&next).await;
        assert!(
            page.body.contains("Read and update your contacts"),
            "{}",
            page.body
        );
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
        assert_eq!(r.status, 303);
        next = r.location.clone().unwrap();
    }
    assert!(next.starts_with(REDIRECT), "{next}");
    Page {
        status: 303,
        location: Some(next),
        headers: Default::default(),
        body: String::new(),
    }
    .query()
}

fn code_body(s: &Setup, code: &str, verifier: Option<&str>, redirect: &str) -> String {
    let mut data = json!({"client_id": s.client_id, "code": code, "redirect_uri": redirect});
    if let Some(v) = verifier {
        data["code_verifier"] = v.into();
    }
    json!({"grant_type": "authorization_code", "authorization_code_data": data}).to_string()
}

/// A new code for a signed-in agent that already consented.
async fn fresh_code(agent: &mut Agent, path: &str) -> String {
    agent.get(path).await.query()["code"].clone()
}

#[track_caller]
fn partner_error(r: &Resp, status: u16, code: &str) {
    assert_eq!((r.status, r.code()), (status, code), "{}", r.body);
}

#[tokio::test]
async fn the_whole_flow_in_both_dialects() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);

    // Partner dialect: seed 000's authorization_code_data with the partner's Basic auth.
    let q = authorize(
        &mut agent,
        &s,
        &authorize_path("partner", &s.client_id, &[]),
    )
    .await;
    assert_eq!(q["state"], "xyz-state");
    assert_eq!(q["iss"], t.base, "RFC 9207 iss");
    let code = &q["code"];
    assert!(code.starts_with("tac_"));
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&s.partner.basic()),
            &code_body(&s, code, Some(VERIFIER), REDIRECT),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    insta::assert_json_snapshot!("authorization_code_partner", r.body, {
        ".meta.timestamp" => "[timestamp]", ".data.access_token" => "[jwt]", ".data.refresh_token" => "[refresh]"
    });
    let c = claims(&r.data("access_token"));
    assert_eq!(c["sub"], s.user_id.as_str());
    assert_eq!(c["account_id"], s.account_id.as_str());
    assert_eq!(c["client_id"], s.client_id.as_str());
    assert!(c.get("act").is_none());
    let refresh = r.data("refresh_token");
    // The partner refreshes its client's token in its own dialect.
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&s.partner.basic()),
            &crate::support::refresh_body(&refresh),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);

    // A second /authorize with the same scopes asks nothing: straight back with a new code.
    let r = agent
        .get(&authorize_path("standard", &s.client_id, &[]))
        .await;
    assert_eq!(r.status, 303);
    assert!(
        r.location.as_deref().unwrap().starts_with(REDIRECT),
        "consent is not asked again"
    );
    let code = r.query()["code"].clone();

    // Standard dialect: form with client authentication.
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", s.client_id, s.client_secret))
    );
    let r = t
        .form(
            "/oauth/token",
            Some(&basic),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body["refresh_token"]
            .as_str()
            .unwrap()
            .starts_with("trt_")
    );
    let access = r.body["access_token"].as_str().unwrap().to_string();

    // A second use of the code fails and revokes what the first issued.
    let r = t
        .form(
            "/oauth/token",
            Some(&basic),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", REDIRECT),
                ("code_verifier", VERIFIER),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.oauth_error()),
        (400, "invalid_grant"),
        "{}",
        r.body
    );
    let r = t
        .form("/oauth/introspect", Some(&basic), &[("token", &access)])
        .await;
    assert_eq!(
        r.body["active"], false,
        "the first use's tokens are revoked"
    );
}

#[tokio::test]
async fn pkce_plain_wrong_verifier_and_every_token_error() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let other = t.partner().await;
    let mut agent = Agent::new(&t.base);
    let plain_verifier = "plain-verifier-plain-verifier-plain-verifier-0123";
    let plain = authorize_path("partner", &s.client_id, &[])
        .replace(
            &format!("code_challenge={CHALLENGE}"),
            &format!("code_challenge={plain_verifier}"),
        )
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let q = authorize(&mut agent, &s, &plain).await;
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&s.partner.basic()),
            &code_body(&s, &q["code"], Some(plain_verifier), REDIRECT),
        )
        .await;
    assert_eq!(r.status, 200, "plain PKCE: {}", r.body);

    let b = s.partner.basic();
    let path = authorize_path("partner", &s.client_id, &[]);
    // Wrong verifier.
    let code = fresh_code(&mut agent, &path).await;
    let wrong = "x".repeat(43);
    partner_error(
        &t.post(
            "/v2/oauth/token",
            Some(&b),
            &code_body(&s, &code, Some(&wrong), REDIRECT),
        )
        .await,
        400,
        "OAUTH_CODE_VERIFIER_INVALID",
    );
    // Missing and malformed verifiers.
    let code = fresh_code(&mut agent, &path).await;
    partner_error(
        &t.post(
            "/v2/oauth/token",
            Some(&b),
            &code_body(&s, &code, None, REDIRECT),
        )
        .await,
        400,
        "OAUTH_CODE_VERIFIER_INVALID",
    );
    partner_error(
        &t.post(
            "/v2/oauth/token",
            Some(&b),
            &code_body(&s, &code, Some("short"), REDIRECT),
        )
        .await,
        400,
        "OAUTH_CODE_VERIFIER_INVALID",
    );
    // Another redirect URI than the authorization request's.
    partner_error(
        &t.post(
            "/v2/oauth/token",
            Some(&b),
            &code_body(&s, &code, Some(VERIFIER), "https://app.example/other"),
        )
        .await,
        400,
        "OAUTH_REDIRECT_URI_MISMATCH",
    );
    // Unknown, garbage and spent codes.
    partner_error(
        &t.post(
            "/v2/oauth/token",
            Some(&b),
            &code_body(&s, "tac_nope", Some(VERIFIER), REDIRECT),
        )
        .await,
        400,
        "OAUTH_AUTHORIZATION_CODE_INVALID",
    );
    partner_error(
        &t.post(
            "/v2/oauth/token",
            Some(&b),
            &code_body(&s, &code, Some(VERIFIER), REDIRECT),
        )
        .await,
        400,
        "OAUTH_AUTHORIZATION_CODE_INVALID",
    );
    // A client_id that is not the partner's, or not the code's.
    let code = fresh_code(&mut agent, &path).await;
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&other.basic()),
            &code_body(&s, &code, Some(VERIFIER), REDIRECT),
        )
        .await;
    partner_error(&r, 400, "OAUTH_CLIENT_ID_MISMATCH");
    let body = code_body(&s, &code, Some(VERIFIER), REDIRECT).replace(&s.client_id, "tc_unknown");
    partner_error(
        &t.post("/v2/oauth/token", Some(&b), &body).await,
        400,
        "OAUTH_CLIENT_ID_MISMATCH",
    );
}

#[tokio::test]
async fn authorize_errors_show_a_page_or_redirect_with_the_dialects_codes() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);

    // Unknown client and unregistered redirect URI: an error page, never a redirect.
    for path in [
        authorize_path("standard", "tc_nobody", &[]),
        authorize_path("standard", &s.client_id, &[])
            .replace("app.example%2Fcallback", "evil.example%2Fcallback"),
        format!(
            "{}&client_id=again",
            authorize_path("standard", &s.client_id, &[])
        ),
    ] {
        let r = agent.get(&path).await;
        assert_eq!(r.status, 400, "{path}");
        assert!(r.location.is_none());
        assert!(r.body.contains("cannot continue"));
        assert_eq!(r.headers["x-frame-options"], "DENY");
    }
    // The debug callback is only for --dev clients.
    let dbg = format!("{}/oauth/debug-callback", t.base);
    let r = agent
        .get(&authorize_path("standard", &s.client_id, &[]).replace(
            &form_urlencoded::byte_serialize(REDIRECT.as_bytes()).collect::<String>(),
            &form_urlencoded::byte_serialize(dbg.as_bytes()).collect::<String>(),
        ))
        .await;
    assert_eq!(r.status, 400);

    // Everything else redirects, with RFC codes on /oauth and seed 000's codes on /v2.
    let cases = [
        (
            "code_challenge_method=S256",
            "code_challenge_method=S512",
            "invalid_request",
            "OAUTH_CODE_CHALLENGE_METHOD_UNSUPPORTED",
        ),
        (
            &format!("code_challenge={CHALLENGE}"),
            "code_challenge=short",
            "invalid_request",
            "VALIDATION_FAILED",
        ),
        (
            "response_type=code",
            "response_type=token",
            "unsupported_response_type",
            "VALIDATION_FAILED",
        ),
        (
            "scope=crm",
            "scope=billing",
            "invalid_scope",
            "OAUTH_SCOPE_FORBIDDEN",
        ),
    ];
    for (from, to, standard, partner) in cases {
        for (dialect, expected) in [("standard", standard), ("partner", partner)] {
            let path = authorize_path(dialect, &s.client_id, &[]).replace(from, to);
            let r = agent.get(&path).await;
            assert_eq!(r.status, 303, "{path}");
            let q = r.query();
            assert_eq!(q["error"], expected, "{dialect} {to}");
            assert_eq!(q["state"], "xyz-state");
            assert!(q.contains_key("error_description") && q.contains_key("iss"));
        }
    }
    let path = authorize_path("standard", &s.client_id, &[])
        .replace(&format!("&code_challenge={CHALLENGE}"), "");
    assert_eq!(
        agent.get(&path).await.query()["error"],
        "invalid_request",
        "PKCE is required"
    );
}

#[tokio::test]
async fn deny_register_revoke_and_the_cli() {
    let t = TestServer::start().await;
    let s = setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);

    // Deny.
    let r = agent
        .get(&authorize_path("standard", &s.client_id, &[]))
        .await;
    let login = agent.get(r.location.as_deref().unwrap()).await;
    let r = agent
        .post(
            "/oauth/login",
            &[
                ("request", &login.hidden("request")),
                ("csrf", &login.hidden("csrf")),
                ("username", &s.user_email),
                ("password", "wrong-password-1"),
            ],
        )
        .await;
    assert_eq!(r.status, 401);
    assert!(r.body.contains("not right"));
    let r = agent
        .post(
            "/oauth/login",
            &[
                ("request", &login.hidden("request")),
                ("csrf", "forged"),
                ("username", &s.user_email),
                ("password", &s.user_password),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "a forged CSRF token is refused");
    let r = agent
        .post(
            "/oauth/login",
            &[
                ("request", &login.hidden("request")),
                ("csrf", &login.hidden("csrf")),
                ("username", &s.user_email),
                ("password", &s.user_password),
            ],
        )
        .await;
    assert!(agent.has_session());
    assert!(r.headers.get_all("set-cookie").iter().any(|c| {
        let c = c.to_str().unwrap();
        c.starts_with("tessera_session=") && c.contains("HttpOnly") && c.contains("SameSite=Lax")
    }));
    let consent = agent.get(r.location.as_deref().unwrap()).await;
    let r = agent
        .post(
            "/oauth/consent",
            &[
                ("request", &consent.hidden("request")),
                ("csrf", &consent.hidden("csrf")),
                ("decision", "deny"),
            ],
        )
        .await;
    let q = r.query();
    assert_eq!(
        (q["error"].as_str(), q["state"].as_str()),
        ("access_denied", "xyz-state")
    );

    // Register a new account and its first user, then approve.
    let mut newcomer = Agent::new(&t.base);
    let r = newcomer
        .get(&authorize_path("partner", &s.client_id, &[]))
        .await;
    let login = newcomer.get(r.location.as_deref().unwrap()).await;
    let reg = newcomer
        .get(&format!(
            "/oauth/register?request={}",
            login.hidden("request")
        ))
        .await;
    let bad = newcomer
        .post(
            "/oauth/register",
            &[
                ("request", &reg.hidden("request")),
                ("csrf", &reg.hidden("csrf")),
                ("account_name", "New Co"),
                ("email", "new@co.example"),
                ("password", "short"),
            ],
        )
        .await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("at least 12 characters"), "{}", bad.body);
    // With the password queue full (a flood of sign-ins), a sign-up's Argon2 run waits its
    // turn like a check does: "busy" at once, and no account is made.
    let passwords = t.engine().passwords();
    let flood: Vec<_> = (0..passwords.capacity())
        .filter_map(|_| passwords.admit(None))
        .collect();
    let busy = newcomer
        .post(
            "/oauth/register",
            &[
                ("request", &reg.hidden("request")),
                ("csrf", &reg.hidden("csrf")),
                ("account_name", "New Co"),
                ("email", "new@co.example"),
                ("password", "brand-new-secret-1"),
            ],
        )
        .await;
    assert_eq!(busy.status, 503, "{}", busy.body);
    assert!(busy.body.contains("Try again in a moment"), "{}", busy.body);
    drop(flood);
    let r = newcomer
        .post(
            "/oauth/register",
            &[
                ("request", &reg.hidden("request")),
                ("csrf", &reg.hidden("csrf")),
                ("account_name", "New Co"),
                ("email", "new@co.example"),
                ("password", "brand-new-secret-1"),
            ],
        )
        .await;
    assert!(r.location.as_deref().unwrap().starts_with("/oauth/consent"));
    let consent = newcomer.get(r.location.as_deref().unwrap()).await;
    let r = newcomer
        .post(
            "/oauth/consent",
            &[
                ("request", &consent.hidden("request")),
                ("csrf", &consent.hidden("csrf")),
                ("decision", "approve"),
            ],
        )
        .await;
    let code = r.query()["code"].clone();
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&s.partner.basic()),
            &code_body(&s, &code, Some(VERIFIER), REDIRECT),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let c = claims(&r.data("access_token"));
    let new_account = c["account_id"].as_str().unwrap().to_string();
    let listed = t
        .get(
            &format!("/v2/accounts/{new_account}"),
            Some(&s.partner.basic()),
        )
        .await;
    assert_eq!(
        listed.data("name"),
        "New Co",
        "the registered account belongs to the partner"
    );
    let refresh = r.data("refresh_token");
    let access = r.data("access_token");

    // Revoke it on the connected-applications page.
    let grants = newcomer.get("/oauth/grants").await;
    assert!(grants.body.contains("Acme CRM"));
    let r = newcomer
        .post(
            "/oauth/grants/revoke",
            &[
                ("csrf", &grants.hidden("csrf")),
                ("client_id", &s.client_id),
            ],
        )
        .await;
    assert_eq!(r.location.as_deref(), Some("/oauth/grants?notice=revoked"));
    let after = newcomer.get("/oauth/grants").await;
    assert!(after.body.contains("No application has access"));
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&s.partner.basic()),
            &crate::support::refresh_body(&refresh),
        )
        .await;
    partner_error(&r, 403, "OAUTH_MISSING_GRANT");
    assert!(
        t.engine().verify_token(&access, unix_now()).is_err(),
        "its access tokens are inactive"
    );

    // `tessera grant revoke` does the same for the first user.
    let q = authorize(
        &mut Agent::new(&t.base),
        &s,
        &authorize_path("partner", &s.client_id, &[]),
    )
    .await;
    let r = t
        .post(
            "/v2/oauth/token",
            Some(&s.partner.basic()),
            &code_body(&s, &q["code"], Some(VERIFIER), REDIRECT),
        )
        .await;
    let refresh = r.data("refresh_token");
    assert!(
        tessera_core::operations::revoke_grant(
            t.store.as_ref(),
            &crate::support::operator(),
            &s.user_id,
            &s.client_id,
            unix_now()
        )
        .await
        .unwrap()
        .revoked
    );
    let basic = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", s.client_id, s.client_secret))
    );
    let r = t
        .form(
            "/oauth/token",
            Some(&basic),
            &[("grant_type", "refresh_token"), ("refresh_token", &refresh)],
        )
        .await;
    assert_eq!((r.status, r.oauth_error()), (400, "invalid_grant"));

    // Sign out.
    let grants = newcomer.get("/oauth/grants").await;
    let r = newcomer
        .post("/oauth/logout", &[("csrf", &grants.hidden("csrf"))])
        .await;
    assert_eq!(r.status, 200);
    assert!(!newcomer.has_session());
    assert_eq!(newcomer.get("/oauth/grants").await.status, 401);
}

#[tokio::test]
async fn pages_are_framed_only_by_registered_origins() {
    let t = TestServer::start().await;
    let framed = setup(&t, &["https://partner.example".into()], false).await;
    let plain = setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);
    let r = agent
        .get(&authorize_path("standard", &framed.client_id, &[]))
        .await;
    let login = agent.get(r.location.as_deref().unwrap()).await;
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors https://partner.example"),
        "{csp}"
    );
    assert!(!login.headers.contains_key("x-frame-options"));
    let r = agent
        .get(&authorize_path("standard", &plain.client_id, &[]))
        .await;
    let login = agent.get(r.location.as_deref().unwrap()).await;
    assert!(
        login.headers["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(login.headers["x-frame-options"], "DENY");
    assert_eq!(login.headers["referrer-policy"], "no-referrer");
}
