//! The lockout under concurrency (issue 9, item 1): wrong guesses sent all at once, on every path
//! that checks a password, and across nodes sharing PostgreSQL, get no more password checks than
//! the allowance, and the right password sent after them is not checked either. Each test fails
//! on a lockout that reads before Argon2 and counts after it (all 30 were checked).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::future::join_all;
use tessera_core::master::MasterKey;

use crate::authcode::{self, authorize_path};
use crate::support::{TestServer, machine_token_body};

/// Checks a default lockout lets through back to back.
const ALLOWANCE: usize = 5;
const GUESSES: usize = 30;

/// A password queue whose per-requester share (an eighth) holds all the guesses: these tests
/// send them from one address, and the lockout, not the queue, must be what stops them.
fn roomy_queue() -> tessera_core::EngineConfig {
    let mut c = crate::support::config();
    c.password_queue = 8 * GUESSES;
    c
}

fn basic(email: &str, password: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{email}:{password}")))
}

/// How many answers show a checked password: a success, or a refusal without `Retry-After`.
fn checked(answers: &[(u16, bool)]) -> usize {
    answers
        .iter()
        .filter(|(status, locked)| *status == 200 || *status == 303 || !*locked)
        .count()
}

/// `GUESSES` wrong passwords at once, spread over `nodes`, then the right one.
async fn partner_burst(
    nodes: &[&TestServer],
    email: &str,
    right: &str,
) -> (Vec<(u16, bool)>, (u16, bool)) {
    let body = machine_token_body("crm");
    let send = |node: &TestServer, password: String| {
        let (auth, body) = (basic(email, &password), body.clone());
        let node_url = node.url("/v2/oauth/token");
        let http = node.http.clone();
        async move {
            let r = http
                .post(node_url)
                .header("Content-Type", "application/json")
                .header("Authorization", auth)
                .body(body)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.headers().contains_key("retry-after"))
        }
    };
    let guesses = (0..GUESSES).map(|i| send(nodes[i % nodes.len()], format!("wrong-guess-{i}")));
    let answers = join_all(guesses).await;
    let right = send(nodes[0], right.to_string()).await;
    (answers, right)
}

#[tokio::test]
async fn concurrent_basic_guesses_get_the_allowance_and_no_more() {
    let t = TestServer::start_with(roomy_queue()).await;
    let p = t.partner().await;
    let before = t.engine().passwords().verifications();
    let (answers, right) = partner_burst(&[&t], &p.email, &p.password).await;
    let argon2 = t.engine().passwords().verifications() - before;
    assert_eq!(right, (401, true), "the right password waits too");
    assert!(
        checked(&answers) <= ALLOWANCE,
        "{} of {GUESSES} guesses were checked: {answers:?}",
        checked(&answers)
    );
    assert!(argon2 <= ALLOWANCE as u64, "{argon2} Argon2 checks");
    assert!(
        answers.iter().filter(|(_, locked)| *locked).count() >= GUESSES - ALLOWANCE,
        "the rest were told to wait: {answers:?}"
    );
}

#[tokio::test]
async fn concurrent_password_grant_guesses_get_the_allowance_and_no_more() {
    let t = TestServer::start_with(roomy_queue()).await;
    let o = t.onboard(&["password"]).await;
    let sends = (0..GUESSES).map(|i| {
        let password = format!("wrong-guess-{i}");
        let (t, auth, user) = (&t, o.basic(), o.admin_email.clone());
        async move {
            let r = t
                .form(
                    "/oauth/token",
                    Some(&auth),
                    &[
                        ("grant_type", "password"),
                        ("username", &user),
                        ("password", &password),
                    ],
                )
                .await;
            (r.status, r.headers.contains_key("retry-after"))
        }
    });
    let answers = join_all(sends).await;
    assert!(
        checked(&answers) <= ALLOWANCE,
        "{} of {GUESSES} guesses were checked: {answers:?}",
        checked(&answers)
    );
    let r = t
        .form(
            "/oauth/token",
            Some(&o.basic()),
            &[
                ("grant_type", "password"),
                ("username", &o.admin_email),
                ("password", &o.admin_password),
            ],
        )
        .await;
    assert_eq!(
        (r.status, r.headers.contains_key("retry-after")),
        (401, true),
        "the right password waits too"
    );
}

#[tokio::test]
async fn concurrent_sign_in_page_guesses_get_the_allowance_and_no_more() {
    let t = TestServer::start_with(roomy_queue()).await;
    let s = authcode::setup(&t, &[], false).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    // One browser: a pending request, its flow cookie, and the sign-in form's CSRF token.
    let mut agent = authcode::Agent::new(&t.base);
    let r = agent
        .get(&authorize_path("standard", &s.client_id, &[]))
        .await;
    let page = agent.get(r.location.as_deref().unwrap()).await;
    let cookie = agent
        .cookies
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");
    let hidden = |name: &str| page.hidden(name);
    let (request, csrf) = (hidden("request"), hidden("csrf"));
    let attempt = |password: String| {
        let form: String = form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("request", request.as_str()),
                ("csrf", csrf.as_str()),
                ("username", s.user_email.as_str()),
                ("password", password.as_str()),
            ])
            .finish();
        let req = http
            .post(t.url("/oauth/login"))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Cookie", cookie.clone())
            .body(form);
        async move {
            let r = req.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            (status, text.contains("Too many failed attempts"))
        }
    };
    let answers = join_all((0..GUESSES).map(|i| attempt(format!("wrong-guess-{i}")))).await;
    assert!(
        checked(&answers) <= ALLOWANCE,
        "{} of {GUESSES} guesses were checked: {answers:?}",
        checked(&answers)
    );
    assert_eq!(
        attempt(s.user_password.clone()).await,
        (401, true),
        "the right password waits too"
    );
}

#[tokio::test]
async fn nodes_sharing_postgresql_share_the_allowance() {
    let Some(admin) = crate::support::postgres_url("lockout on PostgreSQL") else {
        return;
    };
    let db = tessera_store::create_scratch_database(&admin)
        .await
        .unwrap();
    let master = MasterKey::generate();
    let n1 = TestServer::start_node_with(&db, &master, Default::default(), roomy_queue()).await;
    let n2 = TestServer::start_node_with(&db, &master, Default::default(), roomy_queue()).await;
    let n3 = TestServer::start_node_with(&db, &master, Default::default(), roomy_queue()).await;
    let p = n1.partner().await;
    let (answers, right) = partner_burst(&[&n1, &n2, &n3], &p.email, &p.password).await;
    assert_eq!(right, (401, true), "the right password waits too");
    assert!(
        checked(&answers) <= ALLOWANCE,
        "{} of {GUESSES} guesses over three nodes were checked: {answers:?}",
        checked(&answers)
    );
}
