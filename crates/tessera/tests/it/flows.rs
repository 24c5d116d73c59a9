//! The authorization pages under attack (issue 9, items 6-8 and 10): a pending request is used
//! once and only by the browser that began it; a code presented by another client is not spent;
//! CSRF tokens are bound to the session so a planted cookie forges nothing; redirects never
//! reflect request input; a client introspects and revokes only its own tokens.

use tessera_core::unix_now;

use crate::authcode::{self, Agent, REDIRECT, Setup, VERIFIER, authorize_path};
use crate::support::{TestServer, client_input, create_client};

fn basic(id: &str, secret: &str) -> String {
    use base64::Engine as _;
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"))
    )
}

/// Sign in on the agent up to the consent page; the page's request id and CSRF token.
async fn to_consent(s: &Setup, agent: &mut Agent) -> (String, String) {
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
                ("password", &s.user_password),
            ],
        )
        .await;
    assert_eq!(r.status, 303, "{}", r.body);
    let consent = agent.get(r.location.as_deref().unwrap()).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    (consent.hidden("request"), consent.hidden("csrf"))
}

#[tokio::test]
async fn a_pending_request_is_approved_once() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);
    let (request, csrf) = to_consent(&s, &mut agent).await;
    let approve = [
        ("request", request.as_str()),
        ("csrf", csrf.as_str()),
        ("decision", "approve"),
    ];
    let first = agent.post("/oauth/consent", &approve).await;
    assert_eq!(first.status, 303);
    assert!(first.query().contains_key("code"));
    for _ in 0..2 {
        let again = agent.post("/oauth/consent", &approve).await;
        assert_eq!(
            again.status, 400,
            "a replayed approval: {:?}",
            again.location
        );
        assert!(again.location.is_none());
    }
}

#[tokio::test]
async fn a_pending_request_belongs_to_the_browser_that_began_it() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let mut victim = Agent::new(&t.base);
    let mut attacker = Agent::new(&t.base);
    // The attacker begins a request and hands its sign-in link to the victim.
    let link = attacker
        .get(&authorize_path("standard", &s.client_id, &[]))
        .await
        .location
        .unwrap();
    let page = victim.get(&link).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert!(
        page.body.contains("started in another browser"),
        "{}",
        page.body
    );
    // The browser that began it goes on.
    assert_eq!(attacker.get(&link).await.status, 200);
}

#[tokio::test]
async fn a_code_presented_by_another_client_is_not_spent() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let (other, secret) =
        authcode::another_client(&t, &s, &["authorization_code"], false, false).await;
    let mut agent = Agent::new(&t.base);
    let q = authcode::authorize(
        &mut agent,
        &s,
        &authorize_path("standard", &s.client_id, &[]),
    )
    .await;
    let redeem = |id: &str, secret: &str| {
        let (t, auth, code) = (&t, basic(id, secret), q["code"].clone());
        async move {
            t.form(
                "/oauth/token",
                Some(&auth),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await
        }
    };
    let r = redeem(&other, &secret).await;
    assert_eq!(
        (r.status, r.oauth_error()),
        (400, "invalid_grant"),
        "{}",
        r.body
    );
    let r = redeem(&s.client_id, &s.client_secret).await;
    assert_eq!(
        r.status, 200,
        "the rightful client still redeems it: {}",
        r.body
    );
}

#[tokio::test]
async fn a_planted_csrf_cookie_forges_no_consent() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);
    let (request, _) = to_consent(&s, &mut agent).await;
    // The attacker plants a cookie of their choosing and submits the same value in the form.
    agent
        .cookies
        .insert("tessera_csrf".into(), "planted".into());
    agent
        .cookies
        .insert("tessera_browser".into(), "planted".into());
    let r = agent
        .post(
            "/oauth/consent",
            &[
                ("request", request.as_str()),
                ("csrf", "planted"),
                ("decision", "approve"),
            ],
        )
        .await;
    assert_eq!(r.status, 403, "{:?} {}", r.location, r.body);
}

#[tokio::test]
async fn redirects_never_reflect_request_input() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);
    let path = authorize_path("standard", &s.client_id, &[])
        .replace("scope=crm", "scope=%22%3E%3Csvg%2Fonload%3Dalert(1)%3E");
    let r = agent.get(&path).await;
    assert_eq!(r.status, 303);
    let q = r.query();
    assert_eq!(q["error"], "invalid_scope");
    let d = &q["error_description"];
    assert!(
        !d.contains('<') && !d.contains('>') && !d.contains("svg"),
        "{d}"
    );
    assert!(
        d.chars()
            .all(|c| (' '..='~').contains(&c) && c != '"' && c != '\\')
    );
}

#[tokio::test]
async fn pages_limit_where_their_forms_may_lead() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.base);
    let r = agent
        .get(&authorize_path("standard", &s.client_id, &[]))
        .await;
    let login = agent.get(r.location.as_deref().unwrap()).await;
    let csp = login.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("form-action 'self' https://app.example;"),
        "{csp}"
    );
}

#[tokio::test]
async fn a_client_introspects_and_revokes_only_its_own_tokens() {
    let t = TestServer::start().await;
    let a = t.onboard(&["client_credentials"]).await;
    let sibling = client_input(&a.partner.id, "Sibling", &["client_credentials"], "crm");
    let (b, b_secret) = create_client(t.store.as_ref(), sibling).await;
    let b_id = b.id;
    let b = basic(&b_id, &b_secret);
    let token = t.app_token(&a).await;
    let r = t
        .form("/oauth/introspect", Some(&b), &[("token", &token)])
        .await;
    assert_eq!(r.body, serde_json::json!({"active": false}));
    let r = t
        .form("/oauth/revoke", Some(&b), &[("token", &token)])
        .await;
    assert_eq!(r.status, 200);
    let r = t
        .form("/oauth/introspect", Some(&a.basic()), &[("token", &token)])
        .await;
    assert_eq!(r.body["active"], true, "a sibling client cannot revoke it");
}

/// A client of the setup's partner with the given policy flags.
async fn client_with(
    t: &TestServer,
    s: &Setup,
    pkce_plain: bool,
    allow_registration: bool,
) -> String {
    authcode::another_client(
        t,
        s,
        &["authorization_code"],
        pkce_plain,
        allow_registration,
    )
    .await
    .0
}

#[tokio::test]
async fn pkce_plain_only_for_clients_registered_for_it() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let strict = client_with(&t, &s, false, false).await;
    let mut agent = Agent::new(&t.base);
    let plain = authorize_path("standard", &strict, &[])
        .replace("code_challenge_method=S256", "code_challenge_method=plain");
    let absent =
        authorize_path("standard", &strict, &[]).replace("&code_challenge_method=S256", "");
    for path in [plain, absent] {
        let r = agent.get(&path).await;
        assert_eq!(r.status, 303);
        assert_eq!(r.query()["error"], "invalid_request", "{path}");
    }
    // S256 works for every client.
    let r = agent.get(&authorize_path("standard", &strict, &[])).await;
    assert!(r.location.unwrap().starts_with("/oauth/login"));
    // Discovery advertises what every client accepts.
    let d = t.get("/.well-known/oauth-authorization-server", None).await;
    assert_eq!(
        d.body["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
}

/// Register an account through `client` from a fresh browser; the page's status.
async fn register(t: &TestServer, client: &str, n: usize) -> u16 {
    register_from(t, client, n, std::net::Ipv4Addr::LOCALHOST, true).await
}

/// Register an account through `client` from a fresh browser at `address`, with a valid form
/// or an empty one; the page's status.
async fn register_from(
    t: &TestServer,
    client: &str,
    n: usize,
    address: std::net::Ipv4Addr,
    valid: bool,
) -> u16 {
    let mut agent = Agent::from(&t.base, address);
    let r = agent.get(&authorize_path("standard", client, &[])).await;
    let login = r.location.unwrap();
    let page = agent
        .get(&login.replace("/oauth/login", "/oauth/register"))
        .await;
    if page.status != 200 {
        return page.status;
    }
    let email = format!("new-{n}-{}@customer.example", crate::support::uuid_suffix());
    let (name, email, password) = if valid {
        ("Spam Ltd", email, "violet-harbor-engine-42")
    } else {
        ("", String::new(), "")
    };
    agent
        .post(
            "/oauth/register",
            &[
                ("request", &page.hidden("request")),
                ("csrf", &page.hidden("csrf")),
                ("account_name", name),
                ("email", &email),
                ("password", password),
            ],
        )
        .await
        .status
}

#[tokio::test]
async fn registration_is_off_unless_allowed_and_throttled_when_on() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let closed = client_with(&t, &s, false, false).await;
    assert_eq!(register(&t, &closed, 0).await, 403);
    let mut agent = Agent::new(&t.base);
    let r = agent.get(&authorize_path("standard", &closed, &[])).await;
    let login = agent.get(&r.location.unwrap()).await;
    assert!(
        !login.body.contains("register-link"),
        "no link to a closed door"
    );

    let open = client_with(&t, &s, false, true).await;
    let mut statuses = Vec::new();
    for n in 0..20 {
        statuses.push(register(&t, &open, n).await);
    }
    // One requester: two back to back.
    let created = statuses.iter().filter(|&&s| s == 303).count();
    assert_eq!(created, 2, "{statuses:?}");
    assert!(statuses[2..].iter().all(|&s| s == 429), "{statuses:?}");
}

/// Found by the third attack on the limits: registrations were counted before the form was
/// checked, against one budget for a requester and for the partner, so five empty forms from
/// one address spent the partner's registrations for everyone, on every node. Now only a
/// registration that would be made counts, and a requester gets at most 2 of the partner's 5.
#[tokio::test]
async fn one_requester_cannot_spend_a_partners_registrations() {
    use std::net::Ipv4Addr;
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let open = client_with(&t, &s, false, true).await;
    let attacker = Ipv4Addr::new(127, 0, 0, 2);
    for n in 0..5 {
        assert_eq!(register_from(&t, &open, n, attacker, false).await, 400);
    }
    let mut statuses = Vec::new();
    for (n, from) in [2, 2, 2, 3, 3, 4, 5].into_iter().enumerate() {
        let from = Ipv4Addr::new(127, 0, 0, from);
        statuses.push(register_from(&t, &open, 10 + n, from, true).await);
    }
    // Two for the attacker's address, refused its third; two for the next; the partner's
    // fifth for the third address, and then no more for anyone.
    assert_eq!(statuses, [303, 303, 429, 303, 303, 303, 429]);
}

/// Found by the fourth attack on the limits: while a node could not lease a budget (one
/// stalled lease was enough) it counted registrations on its own, so each node gave a partner
/// whose budget the database had spent a fresh one. Registrations are now refused, "busy",
/// while their budgets cannot be leased. Here a session holds the partner's budget row past
/// `--db-timeout` (2 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_refused_while_their_budget_cannot_be_leased() {
    use sqlx::Connection;
    use std::net::Ipv4Addr;
    let Some(admin) = crate::support::postgres_url("flows on PostgreSQL") else {
        return;
    };
    let db = tessera_store::create_scratch_database(&admin)
        .await
        .unwrap();
    let master = tessera_core::master::MasterKey::generate();
    let t = TestServer::start_node(&db, &master, Default::default()).await;
    let s = authcode::setup(&t, &[], false).await;
    let open = client_with(&t, &s, false, true).await;
    let mut c = sqlx::PgConnection::connect(&db).await.unwrap();
    let mut holding = c.begin().await.unwrap();
    sqlx::query("INSERT INTO rate_budgets (key, tat) VALUES ($1, 0)")
        .bind(format!("registrations:partner:{}", s.partner.id))
        .execute(&mut *holding)
        .await
        .unwrap();
    let stalled = register_from(&t, &open, 0, Ipv4Addr::new(127, 0, 0, 2), true).await;
    holding.rollback().await.unwrap();
    assert_eq!(stalled, 503, "refused while the budget cannot be leased");
    // And for the rest of the spell (5 s), not counted on this node alone.
    let next = register_from(&t, &open, 1, Ipv4Addr::new(127, 0, 0, 3), true).await;
    assert_eq!(next, 503);
}

#[tokio::test]
async fn anonymous_authorize_requests_are_bounded_per_browser_and_per_address() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let path = authorize_path("standard", &s.client_id, &[]);
    // One browser holds at most 8 unfinished sign-ins.
    let mut browser = Agent::new(&t.base);
    for _ in 0..8 {
        assert_eq!(browser.get(&path).await.status, 303);
    }
    let r = browser.get(&path).await;
    assert_eq!(r.status, 429, "{}", r.body);
    // One address gets 30 at once (the browser's 9 included), then one every 2 seconds.
    let mut statuses = Vec::new();
    for _ in 0..25 {
        statuses.push(Agent::new(&t.base).get(&path).await.status);
    }
    assert!(statuses.contains(&429), "{statuses:?}");
    assert!(
        statuses.iter().filter(|&&s| s == 303).count() <= 21,
        "{statuses:?}"
    );
}

/// Attack 15: a relying party that renews silently (an existing session and grant, with and
/// without `prompt=none`) finishes each flow without a page; a finished flow must not count
/// against the browser's eight unfinished sign-ins.
#[tokio::test]
async fn silent_renewals_leave_no_unfinished_sign_in_behind() {
    let t = TestServer::start().await;
    let s = authcode::setup(&t, &[], false).await;
    let mut agent = Agent::new(&t.url(""));
    let path = authorize_path("standard", &s.client_id, &[]);
    authcode::authorize(&mut agent, &s, &path).await;
    let silent = authorize_path("standard", &s.client_id, &[("prompt", "none")]);
    for round in 0..20 {
        let path = if round % 2 == 0 { &path } else { &silent };
        let r = agent.get(path).await;
        assert_eq!(r.status, 303, "renewal {round}: {}", r.body);
        // Nothing is set that a client could keep (set, then cleared in the same answer, is
        // one a client may well keep).
        for c in r.headers.get_all("set-cookie") {
            let c = c.to_str().unwrap();
            assert!(
                !c.contains("tessera_flow_") || c.contains("Max-Age=0"),
                "renewal {round} set a flow cookie: {c}"
            );
        }
        let to = r.location.clone().unwrap();
        assert!(
            to.starts_with(REDIRECT) && to.contains("code="),
            "renewal {round}: {to}"
        );
        let flows = agent
            .cookies
            .keys()
            .filter(|k| k.contains("tessera_flow_"))
            .count();
        assert_eq!(flows, 0, "renewal {round} left a flow cookie");
    }
}

/// Attack 14 (issue 18): revocation was not rate limited, and each call wrote a revocation entry
/// (and a change-feed row) that every node keeps until the token's expiry. It now counts against
/// the caller's token-request budget, and revoking what is already revoked writes nothing.
#[tokio::test]
async fn self_revocation_is_rate_limited_and_writes_once() {
    let mut c = crate::support::config();
    c.token_rate_limit = 2;
    let t = TestServer::start_with(c).await;
    let o = t.onboard(&["client_credentials"]).await;
    let token = t.app_token(&o).await;
    // Let the budget refill (2 a second), then revoke the same token over and over: a burst of
    // 2, then about one every 500 ms, however slow the machine.
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let before = t.store.latest_change().await.unwrap();
    let mut statuses = Vec::new();
    for _ in 0..12 {
        let r = t
            .form("/oauth/revoke", Some(&o.basic()), &[("token", &token)])
            .await;
        statuses.push(r.status);
    }
    assert_eq!(statuses[0], 200, "{statuses:?}");
    assert!(statuses[2..].contains(&429), "{statuses:?}");
    let fed = t.store.changes_since(before, 100).await.unwrap();
    assert_eq!(fed.len(), 1, "one revocation entry for one token: {fed:?}");
}

/// Found by the attack on issue 18: silent `/authorize` requests (`prompt=none`, an existing
/// session and grant) racing the user's withdrawal re-created the grant without the user (the
/// silent path upserted the grant it had just read). Only the consent page writes a grant now:
/// after the withdrawal returns, no grant is active, and no code of the race redeems.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_authorizations_racing_a_withdrawal_recreate_no_grant() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};
    let t = Arc::new(
        TestServer::start_with({
            let mut c = crate::support::config();
            c.flow_burst = 0;
            c
        })
        .await,
    );
    let s = Arc::new(authcode::setup(&t, &[], false).await);
    let mut agent = Agent::new(&t.url(""));
    authcode::authorize(
        &mut agent,
        &s,
        &authorize_path("standard", &s.client_id, &[]),
    )
    .await;
    let silent = authorize_path("standard", &s.client_id, &[("prompt", "none")]);
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let mut browser = Agent::new(&t.url(""));
        browser.cookies = agent.cookies.clone();
        let (stop, silent) = (Arc::clone(&stop), silent.clone());
        tasks.push(tokio::spawn(async move {
            let mut codes = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let r = browser.get(&silent).await;
                if let Some(code) = r.location.as_deref().and_then(|l| {
                    l.split_once("code=")
                        .map(|(_, c)| c.split('&').next().unwrap().to_string())
                }) {
                    codes.push(code);
                }
            }
            codes
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
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
    // Silent requests go on after the withdrawal returned.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    stop.store(true, Ordering::Relaxed);
    let mut codes = Vec::new();
    for task in tasks {
        codes.extend(task.await.unwrap());
    }
    assert!(!codes.is_empty(), "the race ran");
    assert!(
        t.store
            .active_grant(&s.user_id, &s.client_id)
            .await
            .unwrap()
            .is_none(),
        "a grant came back without the user's consent"
    );
    let basic = format!(
        "Basic {}",
        base64::Engine::encode(
            &base64::engine::general_purpose::STANDARD,
            format!("{}:{}", s.client_id, s.client_secret)
        )
    );
    for code in &codes {
        let r = t
            .form(
                "/oauth/token",
                Some(&basic),
                &[
                    ("grant_type", "authorization_code"),
                    ("code", code),
                    ("redirect_uri", REDIRECT),
                    ("code_verifier", VERIFIER),
                ],
            )
            .await;
        assert_eq!(r.status, 400, "a code of the race redeemed: {}", r.body);
    }
}
